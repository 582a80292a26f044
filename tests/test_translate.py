"""Unit tests for serializer translation (the reference against a real Crossbar is in test_upstream_crossbar.py)."""

from __future__ import annotations

import json
import math
import typing as t

import cbor2
import msgpack
import pytest

from flask_wamp_bridge.errors import PayloadOutOfBounds
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.wamp.messages import MessageType
from flask_wamp_bridge.wamp.messages import check_message
from flask_wamp_bridge.wamp.messages import serializer_for
from flask_wamp_bridge.wamp.translate import binary_from_json
from flask_wamp_bridge.wamp.translate import decode
from flask_wamp_bridge.wamp.translate import encode
from flask_wamp_bridge.wamp.translate import translate

SERIALIZERS = ("json", "msgpack", "cbor")
PAYLOAD = ([1, -2, 2**53, 1.5, 1.0, -0.0, "héllo", "a\x00b", b"\x00\xff", b"", True, None, [], {}],
           {"k": {"nested": [b"\x01", {"x": 2**64 - 1}]}, "\x00key": "v"})

#: One message of every type, with binary and every plain value kind where the type carries a payload.
MESSAGES: dict[MessageType, list[t.Any]] = {
    MessageType.HELLO: [1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authextra": {"b": b"\x01"}}],
    MessageType.WELCOME: [2, 123, {"authid": "joe", "roles": {"broker": {}}}],
    MessageType.ABORT: [3, {"message": "no"}, "wamp.error.not_authorized"],
    MessageType.CHALLENGE: [4, "ticket", {}],
    MessageType.AUTHENTICATE: [5, "secret-ticket", {}],
    MessageType.GOODBYE: [6, {}, "wamp.close.normal"],
    MessageType.ERROR: [8, 48, 7, {}, "app.error", *PAYLOAD],
    MessageType.PUBLISH: [16, 1, {"acknowledge": True}, "app.topic", *PAYLOAD],
    MessageType.PUBLISHED: [17, 1, 99],
    MessageType.SUBSCRIBE: [32, 2, {"match": "prefix"}, "app."],
    MessageType.SUBSCRIBED: [33, 2, 55],
    MessageType.UNSUBSCRIBE: [34, 3, 55],
    MessageType.UNSUBSCRIBED: [35, 3],
    MessageType.EVENT: [36, 55, 99, {"publisher": 5}, *PAYLOAD],
    MessageType.CALL: [48, 7, {"timeout": 1000}, "app.proc", *PAYLOAD],
    MessageType.CANCEL: [49, 7, {"mode": "kill"}],
    MessageType.RESULT: [50, 7, {"progress": False}, *PAYLOAD],
    MessageType.REGISTER: [64, 8, {}, "app.proc"],
    MessageType.REGISTERED: [65, 8, 66],
    MessageType.UNREGISTER: [66, 9, 66],
    MessageType.UNREGISTERED: [67, 9],
    MessageType.INVOCATION: [68, 10, 66, {}, *PAYLOAD],
    MessageType.INTERRUPT: [69, 10, {"mode": "kill"}],
    MessageType.YIELD: [70, 10, {}, *PAYLOAD],
}


def test_translate_table_covers_every_message_type() -> None:
    assert set(MESSAGES) == set(MessageType)


def plain_wire(serializer: str, message: list[t.Any]) -> str | bytes:
    """The message as a client of ``serializer`` puts it on the wire (by hand, per the WAMP spec)."""
    if serializer == "json":
        def spell(value: t.Any) -> t.Any:
            import base64

            if isinstance(value, bytes):
                return "\x00" + base64.b64encode(value).decode()
            if isinstance(value, list):
                return [spell(v) for v in value]
            if isinstance(value, dict):
                return {k: spell(v) for k, v in value.items()}
            return value
        return json.dumps(spell(message), ensure_ascii=False)
    if serializer == "msgpack":
        return t.cast(bytes, msgpack.packb(message, use_bin_type=True))
    return cbor2.dumps(message)


def same(a: t.Any, b: t.Any) -> bool:
    """Equal with the types of every leaf (1 != 1.0 != True, b'' != '')."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@pytest.mark.parametrize("kind", list(MESSAGES), ids=lambda k: k.name)
@pytest.mark.parametrize("target", SERIALIZERS)
@pytest.mark.parametrize("source", SERIALIZERS)
def test_translate_every_message_type_between_every_pair(kind: MessageType, source: str, target: str) -> None:
    message = MESSAGES[kind]
    data = plain_wire(source, message)
    out = translate(data, source, target)
    if source == target:
        assert out is data  # nothing re-encoded
    assert same(decode(target, out), message)
    assert out == plain_wire(target, message) or target == "json"  # json: our separators
    # the library's own decoder (checks shape) reads it
    wire = out if target != "json" else t.cast(str, out)
    check_message(serializer_for(f"wamp.2.{target}").loads(wire))


def test_translate_uses_the_already_decoded_message() -> None:
    text = '[48,1,{},"app.p",["\\u0000AQID","x"]]'
    decoded = serializer_for("wamp.2.json").loads(text)  # the relay's plain decode: still a string
    assert decoded[4][0] == "\x00AQID"
    out = translate(text, "json", "msgpack", decoded)
    assert msgpack.unpackb(out) == [48, 1, {}, "app.p", [b"\x01\x02\x03", "x"]]
    assert decoded[4][0] == b"\x01\x02\x03"  # converted in place


def test_binary_from_json_skips_the_walk_without_a_nul_escape() -> None:
    message = ["\x00AQID"]  # impossible from this text: the check is on the text only
    assert binary_from_json(message, '["AQID"]') == ["\x00AQID"]
    assert binary_from_json(message, '["\\u0000AQID"]') == [b"\x01\x02\x03"]
    nested: list[t.Any] = [{"\x00k": ["\x00", {"d": "\x00/w=="}]}]
    assert binary_from_json(nested) == [{"\x00k": [b"", {"d": b"\xff"}]}]  # keys stay strings


def test_binary_from_json_is_as_lenient_as_crossbar() -> None:
    assert binary_from_json(["\x00AQ*ID"]) == [b"\x01\x02\x03"]  # characters outside the alphabet skipped
    with pytest.raises(PayloadOutOfBounds, match="base64"):
        binary_from_json(["\x00AQI"])  # wrong padding


@pytest.mark.parametrize(("source", "data", "why"), [
    ("json", f'[16,1,{{}},"t",[{2**64}]]', "no msgpack form"),
    ("json", '[16,1,{},"t",[-9223372036854775809]]', "no msgpack form"),
    ("cbor", cbor2.dumps([16, 1, {}, "t", [2**64]]), "outside msgpack's range"),
    ("cbor", cbor2.dumps([16, 1, {}, "t", [{1: "one"}]]), "map key"),
    ("cbor", cbor2.dumps([16, 1, {}, "t", [cbor2.CBORTag(99, "x")]]), "no msgpack form"),
    ("cbor", cbor2.dumps([16, 1, {}, "t", [cbor2.undefined]]), "no msgpack form"),
])
def test_translate_refuses_what_msgpack_upstream_cannot_carry(source: str, data: str | bytes, why: str) -> None:
    with pytest.raises(PayloadOutOfBounds, match=why):
        translate(data, source, "msgpack")


def test_translate_refuses_nan_and_infinity_for_json() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(PayloadOutOfBounds, match="json"):
            translate(msgpack.packb([36, 1, 2, {}, [value]]), "msgpack", "json")
    assert math.isnan(cbor2.loads(translate(msgpack.packb([36, 1, 2, {}, [math.nan]]), "msgpack", "cbor"))[4][0])


def test_translate_msgpack_to_json_keeps_pythons_key_coercion() -> None:
    # Crossbar's own JSON encoder turns int keys into strings; bytes keys cannot be written
    assert json.loads(translate(msgpack.packb([36, 1, 2, {}, [{1: "a"}]]), "msgpack", "json"))[4] == [{"1": "a"}]
    with pytest.raises(PayloadOutOfBounds):
        translate(msgpack.packb([36, 1, 2, {}, [{b"k": "a"}]]), "msgpack", "json")


def test_translate_json_accepts_bytes_frames_and_rejects_unknown_serializers() -> None:
    assert translate(b'[17,1,2]', "json", "cbor") == cbor2.dumps([17, 1, 2])
    with pytest.raises(ValueError):
        translate(b"x", "ubjson", "json")
    for source, bad in (("json", b"\xff"), ("json", "[1,"), ("msgpack", b"\xc1"), ("cbor", b"\xff")):
        with pytest.raises(RemoteProtocolError):
            translate(bad, source, "cbor" if source != "cbor" else "json")
    with pytest.raises(ValueError):
        encode("ubjson", [17, 1, 2])
