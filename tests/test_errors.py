"""The exceptions: hierarchy, messages, and pickling with their arguments intact."""

from __future__ import annotations

import copy
import pickle
import typing as t

import pytest

from flask_wamp_bridge import errors
from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.errors import BridgeError
from flask_wamp_bridge.errors import CallTimeout
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.errors import ProtocolError


class Denied(ApplicationError):
    """An application's own error: the URI comes from the class."""

    uri = "app.error.denied"


class WithInit(ApplicationError):
    """A subclass whose constructor differs from ApplicationError's."""

    def __init__(self, user: str) -> None:
        super().__init__("app.error.with_init", user, reason="custom")
        self.user = user


def _examples() -> list[BridgeError]:
    """One instance of every exception class the module exports, with arguments where it takes them."""
    made: dict[type[BaseException], BridgeError] = {
        ProtocolError: ProtocolError("bad frame", 1007),
        MessageTooBig: MessageTooBig("too big"),
        ConnectionClosed: ConnectionClosed("closed", 1001, "going away"),
        ApplicationError: ApplicationError("app.error.x", 1, 2, k=3),
        CallTimeout: CallTimeout(None, "late", timeout=1.5),
    }
    for name in errors.__all__:
        cls = getattr(errors, name)
        made.setdefault(cls, cls(f"{name} happened"))
    return list(made.values())


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert a.args == b.args
    assert vars(a) == vars(b)
    assert str(a) == str(b) and repr(a) == repr(b)


@pytest.mark.parametrize("exc", _examples(), ids=lambda e: type(e).__name__)
def test_errors_every_exception_pickles_and_copies_with_its_arguments(exc: BridgeError) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        _same(exc, pickle.loads(pickle.dumps(exc, protocol)))
    _same(exc, copy.copy(exc))
    _same(exc, copy.deepcopy(exc))


def test_errors_application_error_round_trip_keeps_uri_payload_and_kwargs() -> None:
    back = pickle.loads(pickle.dumps(ApplicationError("app.error.x", 1, 2, k=3)))
    assert (back.error, back.args, back.kwargs) == ("app.error.x", (1, 2), {"k": 3})
    assert str(back) == "app.error.x: 1, 2: k=3"


@pytest.mark.parametrize(
    "exc",
    [Denied(), Denied("app.error.other", "x"), WithInit("ann")],
    ids=["class-uri", "explicit-uri", "own-init"],
)
def test_errors_application_error_subclasses_pickle(exc: ApplicationError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    _same(exc, back)
    assert back.error == exc.error


def test_errors_application_error_defaults_and_attributes() -> None:
    assert Denied().error == "app.error.denied"
    assert CallTimeout().error == "wamp.error.canceled"
    assert ApplicationError().error == "wamp.error.runtime_error"
    assert WithInit("ann").user == "ann"
    assert ProtocolError("x").close_code == 1002 and MessageTooBig("x").close_code == 1009
    closed = ConnectionClosed("gone")
    assert (closed.code, closed.reason) == (None, "")


def test_errors_everything_derives_from_bridge_error() -> None:
    exported: list[t.Any] = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, BridgeError) for cls in exported)
