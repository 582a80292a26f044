"""Decoding costs time linear in the frame: the adversarial corpus, and what the relay makes of it (sans-IO)."""

from __future__ import annotations

import builtins
import typing as t

import pytest
from decode_corpus import CASES
from decode_corpus import Case
from decode_corpus import call_frame
from decode_corpus import hello_frame
from decode_corpus import kinds_ok
from relay_pair import REALM
from relay_pair import RelayPair

from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.errors import PayloadOutOfBounds
from flask_wamp_bridge.wamp import bounds
from flask_wamp_bridge.wamp.bounds import DEFAULT_BOUNDS
from flask_wamp_bridge.wamp.bounds import PEER_BOUNDS
from flask_wamp_bridge.wamp.bounds import Bounds
from flask_wamp_bridge.wamp.messages import Undecodable
from flask_wamp_bridge.wamp.messages import decode_or_head
from flask_wamp_bridge.wamp.messages import serializer_for

ALICE = Identity("alice", "user")
REFUSED = [case for case in CASES if case.refused is not None]
#: Refused by the value rules, whatever the bounds (not by the browser's depth bound).
REFUSED_VALUES = [case for case in REFUSED if "nested deeper" not in t.cast(str, case.refused)]
TAKEN = [case for case in CASES if case.refused is None]


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def _serializer(case: Case) -> t.Any:
    return serializer_for(f"wamp.2.{case.serializer}")


#: Each refused case under the bounds that refuse it: a value rule under all three, 40 levels of nesting
#: only under the browser's (the peer's bounds and no bounds allow that depth).
REFUSALS = [
    pytest.param(case, limits, id=f"{name}-{case.id}")
    for name, limits in (("browser", DEFAULT_BOUNDS), ("peer", PEER_BOUNDS), ("unbounded", None))
    for case in (REFUSED if limits is DEFAULT_BOUNDS else REFUSED_VALUES)
]


@pytest.mark.parametrize(("case", "limits"), REFUSALS)
def test_refused_before_the_value_is_built(case: Case, limits: Bounds | None, monkeypatch: pytest.MonkeyPatch) -> None:
    serializer = _serializer(case)
    if case.before_codec:
        def never(*args: t.Any, **kwargs: t.Any) -> t.NoReturn:
            raise AssertionError("the codec built a value it should have refused")

        if case.serializer == "json":  # the scanner runs; a long number's text is never converted
            for name in ("int", "float"):
                convert = getattr(builtins, name)
                monkeypatch.setattr(bounds, name, lambda text, convert=convert: convert(text) if len(text) < 30
                                    else never(), raising=False)
        else:
            monkeypatch.setattr(type(serializer), "_loads", never)
    frame = call_frame(case)
    with pytest.raises(PayloadOutOfBounds) as refused:
        serializer.loads(frame, limits)
    assert t.cast(str, case.refused) in str(refused.value)


@pytest.mark.parametrize("case", TAKEN, ids=ids(TAKEN))
def test_taken_values_decode_to_kinds_every_serializer_carries(case: Case) -> None:
    serializer = _serializer(case)
    message = serializer.loads(call_frame(case), DEFAULT_BOUNDS)
    [value] = message[4]
    assert kinds_ok(value), value


def test_taken_extremes_decode_exactly() -> None:
    values = {case.name: _serializer(case).loads(call_frame(case))[4][0] for case in TAKEN}
    assert values["2**64 - 1 (uint64)"] == values["2**64 - 1"] == 2**64 - 1
    assert values["2**63 (uint64, past int64)"] == 2**63
    assert values["-2**63 (int64)"] == values["-2**63"] == -(2**63)
    assert values["tag 64 around bytes (autobahn-js Uint8Array)"] == b"\x01\x02"
    assert values["tag 64 around indefinite bytes"] == b"\x01\x02"
    assert values["-0"] == 0 and str(values["-0.0"]) == "-0.0" and values["1e-400 (underflows to 0)"] == 0.0


# --- the relay: refused as any payload past its bounds ---------------------------------------------


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_a_call_holding_a_refused_value_gets_invalid_argument(case: Case) -> None:
    pair = RelayPair(ALICE, subprotocol=f"wamp.2.{case.serializer}")
    assert pair.login()[0] == 2
    at_router = len(pair.at_router)
    pair.client_sends(call_frame(case))
    assert len(pair.at_router) == at_router  # nothing forwarded
    [error] = pair.client_messages()[-1:]
    assert error[:5] == [8, 48, 1, {}, "wamp.error.invalid_argument"]
    if "past" not in error[5][0]:
        assert t.cast(str, case.refused) in error[5][0]
    [notice] = [notice for notice in pair.notices if notice.event == "refused"]  # logged with the reason
    assert notice.reason == error[5][0]
    assert pair.closed is None


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_a_hello_holding_a_refused_value_is_a_protocol_violation(case: Case) -> None:
    pair = RelayPair(ALICE, subprotocol=f"wamp.2.{case.serializer}")
    pair.client_sends(hello_frame(case, REALM))
    [abort] = pair.client_messages()
    assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
    assert t.cast(str, case.refused) in abort[1]["message"]
    assert [notice.event for notice in pair.notices] == ["protocol_violation"]
    assert pair.closed is not None and pair.closed.code == 1002
    assert not pair.router_connected


@pytest.mark.parametrize("case", TAKEN, ids=ids(TAKEN))
def test_a_call_holding_a_taken_value_is_forwarded_with_that_value(case: Case) -> None:
    """Unchanged, but for CBOR tag 64, which goes re-encoded as plain bytes (no router peer could carry the tag),
    and a client's undefined, which goes as null (as its JSON would)."""
    pair = RelayPair(ALICE, subprotocol=f"wamp.2.{case.serializer}")
    assert pair.login()[0] == 2
    frame = call_frame(case)
    pair.client_sends(frame)
    if case.name.startswith("undefined"):
        assert _serializer(case).loads(pair.at_router[-1]) == [48, 1, {}, "app.x", [None]]
    elif isinstance(frame, bytes) and b"\xd8\x40" in frame:
        serializer = _serializer(case)
        assert b"\xd8\x40" not in pair.at_router[-1]
        assert serializer.loads(pair.at_router[-1]) == serializer.loads(frame)
    else:
        assert pair.at_router[-1] == frame


# --- the app's peer and the test client: the same rules ----------------------------------------


@pytest.mark.parametrize("case", REFUSED_VALUES, ids=ids(REFUSED_VALUES))
def test_the_peer_ends_only_the_invocation_holding_a_refused_value(case: Case) -> None:
    frame = call_frame(case)  # an INVOCATION [68, 1, 5, {}, [value]] has the same head shape as this CALL
    invocation = (frame.replace("[48,1,{}", "[68,1,5,{}").replace(',"app.x"', "") if isinstance(frame, str)
                  else _invocation(case, frame))
    bad = decode_or_head(_serializer(case), invocation, PEER_BOUNDS)
    assert isinstance(bad, Undecodable) and (bad.kind, bad.request_id) == (68, 1)
    assert t.cast(str, case.refused) in bad.reason


def _invocation(case: Case, call: bytes) -> bytes:
    value = call[len(call_frame(Case(case.serializer, "", b""))):]
    if case.serializer == "msgpack":
        return b"\x95\x44\x01\x05\x80\x91" + value
    return b"\x85\x18\x44\x01\x05\xa0\x81" + value


def test_the_test_client_refuses_what_the_peer_refuses() -> None:
    pytest.importorskip("autobahn.asyncio")  # txaio's framework, as the test client selects it
    from autobahn.wamp import message as autobahn_message

    from flask_wamp_bridge.testing.tolerant import tolerant_serializer

    sent: list[t.Any] = []

    class Transport:
        def send(self, msg: t.Any) -> None:
            sent.append(msg)

    class Session:
        transport = Transport()

    binary = [case for case in REFUSED_VALUES if case.serializer != "json"]
    for case in binary:
        class_name = {"msgpack": "MsgPackSerializer", "cbor": "CBORSerializer"}[case.serializer]
        serializer = tolerant_serializer(class_name)(Session())
        assert serializer.unserialize(_invocation(case, t.cast(bytes, call_frame(case))), True) == [], case.id
    assert len(sent) == len(binary)
    assert all(isinstance(msg, autobahn_message.Error) and msg.error == "wamp.error.invalid_argument" for msg in sent)


def test_the_test_client_fails_only_the_call_whose_result_it_refuses() -> None:
    pytest.importorskip("autobahn.asyncio")  # txaio's framework, as the test client selects it
    from autobahn.wamp import message as autobahn_message
    from autobahn.wamp.exception import ProtocolError as AutobahnProtocolError

    from flask_wamp_bridge.testing.tolerant import tolerant_serializer

    received: list[t.Any] = []

    class Session:
        transport = None
        pending = True

        def onMessage(self, msg: t.Any) -> None:  # noqa: N802 (autobahn's name)
            received.append(msg)
            if not self.pending:  # what autobahn says of an ERROR for a call it no longer waits for
                raise AutobahnProtocolError("ERROR received for non-pending request")

    session = Session()
    binary = [case for case in REFUSED_VALUES if case.serializer != "json"]
    for case in binary:
        class_name = {"msgpack": "MsgPackSerializer", "cbor": "CBORSerializer"}[case.serializer]
        serializer = tolerant_serializer(class_name)(session)
        assert serializer.unserialize(_result(case, t.cast(bytes, call_frame(case))), True) == [], case.id
    assert len(received) == len(binary)
    assert all(isinstance(msg, autobahn_message.Error) and msg.error == "wamp.error.invalid_argument"
               and (msg.request_type, msg.request) == (48, 1) for msg in received)
    session.pending = False  # a refused answer to a call that is gone is dropped, and the session stays
    assert serializer.unserialize(_result(binary[-1], t.cast(bytes, call_frame(binary[-1]))), True) == []


def _result(case: Case, call: bytes) -> bytes:
    """A RESULT ``[50, 1, {}, [value]]`` holding the CALL's value."""
    value = call[len(call_frame(Case(case.serializer, "", b""))):]
    if case.serializer == "msgpack":
        return b"\x94\x32\x01\x80\x91" + value
    return b"\x84\x18\x32\x01\xa0\x81" + value


@pytest.mark.parametrize("name", ["json", "msgpack", "cbor"])
def test_a_hello_is_decoded_within_the_sessions_bounds(name: str) -> None:
    """A HELLO is as bounded as any later message: 200,000 elements are refused before they are decoded."""
    pair = RelayPair(ALICE, subprotocol=f"wamp.2.{name}")
    pair.client_sends(hello_frame(Case(name, "", "[" + "1," * 199_999 + "1]" if name == "json" else
                                       (b"\xdd" if name == "msgpack" else b"\x9a") + (200_000).to_bytes(4, "big")
                                       + b"\x01" * 200_000), REALM))
    [abort] = pair.client_messages()
    assert abort[2] == "wamp.error.protocol_violation" and "more than 100000 elements" in abort[1]["message"]
    assert pair.closed is not None and pair.closed.code == 1002 and not pair.router_connected
