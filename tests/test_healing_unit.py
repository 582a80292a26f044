"""The healer's decisions against a scripted router (fast; tests/test_healing.py runs it against Crossbar)."""

from __future__ import annotations

import logging
import typing as t

import pytest

from flask_wamp_bridge.component.healing import Healer
from flask_wamp_bridge.errors import ApplicationError


class ScriptedRouter:
    """Just enough of a peer: its handles, and the meta procedures of a router holding ``callees``."""

    def __init__(self, callees: list[t.Any], zombies: set[int], live: set[int]) -> None:
        self.callees = callees  # of registration 7, "app.x"
        self.zombies = zombies  # ids the router still holds but lists as null
        self.live = live
        self.calls: list[tuple[str, tuple[t.Any, ...]]] = []

    def handles(self) -> list[t.Any]:
        handle = type("Handle", (), {"verb": "register", "uri": "app.x", "options": {}})()
        return [handle]

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        self.calls.append((procedure, args))
        if procedure == "wamp.registration.lookup":
            return 7 if self.callees else None
        if procedure == "wamp.registration.list_callees":
            return list(self.callees)
        if procedure == "wamp.session.get":
            if args[0] in self.live:
                return {"session": args[0]}
            raise ApplicationError("wamp.error.no_such_session")
        if procedure == "wamp.registration.remove_callee":
            session = args[1]
            if session in self.zombies:
                self.zombies.discard(session)
                self.callees.remove(session if session in self.callees else None)
                raise ApplicationError("wamp.error.runtime_error", "'NoneType' object has no attribute 'forward_for'")
            if session in self.live:
                raise ApplicationError("wamp.error.no_such_registration")
            raise ApplicationError("wamp.error.no_such_session")
        raise AssertionError(procedure)


def removals(router: ScriptedRouter) -> list[int]:
    return [args[1] for procedure, args in router.calls if procedure == "wamp.registration.remove_callee"]


def test_a_null_callee_is_removed_by_the_id_that_left_trying_former_callees_first() -> None:
    router = ScriptedRouter([1, 2], zombies=set(), live={1, 2})
    healer = Healer(t.cast(t.Any, router), interval=10)
    assert healer.check() == []  # both alive: seen as callees
    router.callees[:] = [1, None]  # 2 became a ghost
    router.live.discard(2)
    router.zombies.add(2)
    for session in (2, 50, 51, 52):  # browsers left after it
        healer._on_leave(session)
    repairs = healer.check()
    assert [(r.callee, r.session) for r in repairs] == [(None, 2)]
    assert removals(router) == [2]  # the former callee first: no browser id tried
    assert router.callees == [1]


def test_ids_that_left_cleanly_are_forgotten_and_an_unknown_ghost_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    router = ScriptedRouter([1, None], zombies=set(), live={1})
    healer = Healer(t.cast(t.Any, router), interval=10)
    for session in (50, 51):
        healer._on_leave(session)
    with caplog.at_level(logging.ERROR, logger="flask_wamp_bridge.healing"):
        assert healer.check() == []
    assert sorted(removals(router)) == [50, 51]
    assert list(healer._left) == []  # both were detached cleanly: never tried again
    assert "no session that left is it" in caplog.text


def test_a_callee_whose_id_is_no_session_is_removed_by_that_id() -> None:
    router = ScriptedRouter([1, 3], zombies={3}, live={1})
    healer = Healer(t.cast(t.Any, router), interval=10)
    assert [(r.callee, r.session) for r in healer.check()] == [(3, 3)]
    assert removals(router) == [3] and router.callees == [1]


def test_a_ghost_no_id_that_left_removes_costs_a_bounded_number_of_tries_per_check_and_one_log(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_wamp_bridge.component import healing

    monkeypatch.setattr(healing, "MAX_TRIES", 10)
    router = ScriptedRouter([1, None], zombies=set(), live={1})
    healer = Healer(t.cast(t.Any, router), interval=10)
    for session in range(100, 125):  # browsers that left cleanly: none is the ghost
        healer._on_leave(session)
    with caplog.at_level(logging.INFO, logger="flask_wamp_bridge.healing"):
        tried = []
        for _ in range(4):
            router.calls.clear()
            assert healer.check() == []
            tried.append(len(removals(router)))
    assert tried == [10, 10, 5, 0]  # every id tried once, at most 10 a check; then no more tries
    assert caplog.text.count("no session that left is it") == 1
    router.callees.append(None)  # another ghost: 7 left since, and it is one of them
    router.zombies.add(7)
    healer._on_leave(7)
    router.calls.clear()
    with caplog.at_level(logging.INFO, logger="flask_wamp_bridge.healing"):
        assert [(r.callee, r.session) for r in healer.check()] == [(None, 7)]
    assert removals(router) == [7]  # the ghost reported before is not tried again, nor logged
    assert caplog.text.count("no session that left is it") == 1
