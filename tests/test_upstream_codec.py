"""The relay's two serializers (sans-IO): a JSON browser over a msgpack upstream, and what cannot be translated."""

from __future__ import annotations

import json
import typing as t

import msgpack
import pytest
from relay_pair import RelayPair
from relay_pair import ScriptedRouter

from flask_wamp_bridge.bridge import upstream_codec
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay import UNTRANSLATABLE
from flask_wamp_bridge.bridge.upstream_codec import UpstreamCodec
from flask_wamp_bridge.bridge.upstream_codec import upstream_serializer
from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.wamp.messages import serializer_for

ANN = Identity("ann", "user")
JSON = serializer_for("wamp.2.json")
MSGPACK = serializer_for("wamp.2.msgpack")
CBOR = serializer_for("wamp.2.cbor")
CALL, RESULT, ERROR, EVENT, INVOCATION, YIELD = 48, 50, 8, 36, 68, 70


def pack(message: list[t.Any]) -> bytes:
    return t.cast(bytes, msgpack.packb(message, use_bin_type=True))


def unpack(data: bytes) -> list[t.Any]:
    return t.cast(list[t.Any], msgpack.unpackb(data, raw=False))


class Pair(RelayPair):
    """A JSON browser; the router speaks msgpack."""

    def __init__(self) -> None:
        super().__init__(ANN, upstream_serializer=MSGPACK)
        self.router = ScriptedRouter(MSGPACK)

    def router_says(self, message: list[t.Any]) -> None:
        self._run(self.relay.from_router(pack(message)))


def established() -> Pair:
    pair = Pair()
    welcome = pair.login()
    assert welcome[0] == 2 and isinstance(pair.at_client[-1], str)
    assert all(type(frame) is bytes for frame in pair.at_router)  # HELLO, AUTHENTICATE in msgpack
    return pair


def test_upstream_serializer_is_msgpack_but_for_cbor_browsers() -> None:
    assert upstream_serializer(JSON) is MSGPACK and upstream_serializer(MSGPACK) is MSGPACK
    assert upstream_serializer(CBOR) is CBOR  # exact: CBOR bytes pass both ways


def test_same_serializer_passes_the_bytes_themselves() -> None:
    data = pack([EVENT, 1, 2, {}, [b"x"]])
    assert UpstreamCodec(MSGPACK, MSGPACK).to_browser(data) is data


def test_json_browser_binary_goes_up_as_bytes_and_comes_back_as_base64() -> None:
    pair = established()
    pair.client_sends(json.dumps([CALL, 1, {}, "app.echo", ["\u0000AAH/", 2**64 - 1, 1.0]]))
    assert unpack(t.cast(bytes, pair.at_router[-1])) == [CALL, 1, {}, "app.echo", [b"\x00\x01\xff", 2**64 - 1, 1.0]]
    pair.router_says([RESULT, 1, {}, [b"\x00\x01\xff", 1.0]])
    assert pair.at_client[-1] == '[50,1,{},["\\u0000AAH/",1.0]]'
    assert pair.relay.calls_in_flight == 0


def test_an_event_is_translated_once_for_every_subscriber() -> None:
    first, second = established(), established()
    event = pack([EVENT, 5, 6, {}, [b"fan-out"]])
    first._run(first.relay.from_router(event))
    second._run(second.relay.from_router(event))
    assert first.at_client[-1] is second.at_client[-1]  # the cached translation itself
    assert json.loads(first.at_client[-1])[4] == ["\u0000" + "ZmFuLW91dA=="]
    assert len(upstream_codec._event_cache) <= upstream_codec.EVENT_CACHE_SIZE


def test_a_browser_call_that_cannot_be_translated_gets_an_error_and_nothing_goes_up() -> None:
    pair = established()
    sent = len(pair.at_router)
    pair.client_sends(json.dumps([CALL, 7, {}, "app.echo", ["\u0000not base64!"]]))
    assert len(pair.at_router) == sent
    error = pair.client_messages()[-1]
    assert error[:5] == [ERROR, CALL, 7, {}, UNTRANSLATABLE]
    assert pair.relay.calls_in_flight == 0 and pair.closed is None  # the session stays


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_router_messages_json_cannot_carry(value: float) -> None:
    pair = established()
    pair.client_sends(json.dumps([CALL, 1, {}, "app.echo", []]))
    shown = len(pair.at_client)
    pair.router_says([EVENT, 5, 6, {}, [value]])  # dropped
    assert len(pair.at_client) == shown
    pair.router_says([RESULT, 1, {}, [value]])  # the call still gets its one answer
    assert pair.client_messages()[-1][:5] == [ERROR, CALL, 1, {}, UNTRANSLATABLE]
    assert pair.relay.calls_in_flight == 0
    pair.router_says([INVOCATION, 9, 3, {}, [value]])  # answered to the router, never shown
    assert unpack(t.cast(bytes, pair.at_router[-1]))[:5] == [ERROR, INVOCATION, 9, {}, UNTRANSLATABLE]
    assert len(pair.client_messages()) == shown + 1 and pair.closed is None


def test_a_checked_json_message_is_not_decoded_again_for_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_wamp_bridge.wamp import translate

    pair = established()

    def no_second_decode(*args: t.Any) -> t.NoReturn:
        raise AssertionError("decoded twice")

    monkeypatch.setattr(translate, "decode", no_second_decode)
    pair.client_sends(json.dumps([CALL, 2, {}, "app.echo", ["\u0000AAE=", 1.5]]))
    assert unpack(t.cast(bytes, pair.at_router[-1])) == [CALL, 2, {}, "app.echo", [b"\x00\x01", 1.5]]


def test_the_event_cache_is_bounded_in_entries_and_bytes() -> None:
    codec = UpstreamCodec(JSON, MSGPACK)
    for n in range(5):  # 700 KiB each: at most two fit under the byte bound
        codec.to_browser(pack([EVENT, 5, n, {}, [b"x" * 700_000]]))
    assert sum(map(len, upstream_codec._event_cache)) <= 2 * upstream_codec.EVENT_CACHE_MAX_BYTES
    assert len(upstream_codec._event_cache) == 2
    for n in range(20):
        codec.to_browser(pack([EVENT, 5, n, {}, ["small"]]))
    assert len(upstream_codec._event_cache) == upstream_codec.EVENT_CACHE_SIZE
    big = pack([EVENT, 5, 99, {}, [b"x" * (upstream_codec.EVENT_CACHE_MAX_BYTES + 1)]])
    assert codec.to_browser(big) is not codec.to_browser(big)  # past the bound: translated each time


def test_a_json_uri_written_as_binary_never_reaches_the_router_as_bytes() -> None:
    """The checks judge a string; translated, a string starting with U+0000 would be bytes upstream."""
    pair = established()
    sent = len(pair.at_router)
    pair.client_sends('[48,2,{},"\\u0000YXBwLng=",[]]')  # "app.x" as binary
    pair.client_sends('[48,3,{},"\\u0000d2FtcC5zZXNzaW9uLmtpbGxfYnlfYXV0aGlk",["bob"]]')  # wamp.session.kill_by_authid
    assert len(pair.at_router) == sent
    assert [message[:5] for message in pair.client_messages()[-2:]] == [
        [ERROR, CALL, 2, {}, "wamp.error.invalid_uri"], [ERROR, CALL, 3, {}, "wamp.error.invalid_uri"]]
    assert pair.closed is None


def test_a_message_the_upstream_will_not_take_is_answered_for_its_request_alone() -> None:
    """The IO layer's RawSocket refuses a message past the router's maximum (nothing sent, the connection stays)."""
    pair = established()
    too_big = MessageTooBig("a message of 2000000 bytes is longer than the router accepts (1048576)")
    pair.client_sends(json.dumps([16, 4, {"acknowledge": True}, "app.t", ["big"]]))
    pair._run(pair.relay.too_big_for_router(pair.at_router[-1], too_big))
    assert pair.client_messages()[-1][:5] == [ERROR, 16, 4, {}, UNTRANSLATABLE]
    pair.router_says([INVOCATION, 9, 3, {}, []])
    pair._run(pair.relay.too_big_for_router(pack([YIELD, 9, {}, ["big"]]), too_big))
    assert unpack(t.cast(bytes, pair.at_router[-1]))[:5] == [ERROR, INVOCATION, 9, {}, UNTRANSLATABLE]
    assert pair.closed is None and pair.relay.calls_in_flight == 0
