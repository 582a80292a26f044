"""An adversarial corpus for decoding: one value each, with the serializer, its encoding and the verdict.

Each :class:`Case` is one encoded *value* (an argument, a map value); :func:`call_frame` and
:func:`hello_frame` put it into a CALL or a HELLO. ``refused`` is a fragment of the refusal's
reason, or None where the value is taken. The known quadratic ones are large (256 KiB): a decoder
that builds them first takes seconds, a walk that refuses them reads a few bytes.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import typing as t

import cbor2
import msgpack

from flask_wamp_bridge.wamp.bounds import MAX_INT
from flask_wamp_bridge.wamp.bounds import MIN_INT

__all__ = ["Case", "CASES", "BIG", "call_frame", "hello_frame", "kinds_ok", "BASELINES", "WORST"]

#: The size of the known quadratic values.
BIG = 256 * 1024
_P = (1 << 61) - 1  # Python's int hash modulus: k * _P + c all hash to c


@dataclasses.dataclass(frozen=True)
class Case:
    serializer: str  # json, msgpack or cbor
    name: str
    value: str | bytes  # the encoded value
    refused: str | None = None  # a fragment of the reason; None: taken
    #: The codec must never see it (refused by the walk, or by JSON's scanner before the number is converted).
    before_codec: bool = True

    @property
    def id(self) -> str:
        return f"{self.serializer}-{self.name}"


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes([major << 5 | info]) + value.to_bytes(width, "big")
    raise ValueError(value)


def _cbor_bignum(size: int) -> bytes:
    return b"\xc2" + _cbor_head(2, size) + b"\x9a" * size


def _cbor_bytes(data: bytes) -> bytes:
    return _cbor_head(2, len(data)) + data


def _colliding_bignum_keys(count: int, size: int) -> bytes:
    # count bignums of ``size`` bytes that all hash alike, as the keys of one map
    base = 1 << (8 * size - 8)
    keys = [base - base % _P + 7 + i * _P for i in range(count)]
    return _cbor_head(5, count) + b"".join(b"\xc2" + _cbor_bytes(k.to_bytes(size, "big")) + b"\x01" for k in keys)


def _mp(value: t.Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


CASES: list[Case] = [
    # --- CBOR: the quadratic builds -------------------------------------------------------------
    Case("cbor", "decimal fraction with a bignum mantissa", b"\xc4\x82\x01" + _cbor_bignum(BIG), "tag 4"),
    Case("cbor", "bigfloat with a bignum mantissa", b"\xc5\x82\x01" + _cbor_bignum(BIG), "tag 5"),
    Case("cbor", "rational of bignums", b"\xd8\x1e\x82" + _cbor_bignum(BIG) + b"\x03", "tag 30"),
    Case("cbor", "positive bignum", _cbor_bignum(BIG), "tag 2"),
    Case("cbor", "negative bignum", b"\xc3" + _cbor_bytes(b"\x01" * BIG), "tag 3"),
    Case("cbor", "small bignum", b"\xc2\x41\x01", "tag 2"),
    Case("cbor", "set of bignums", b"\xd9\x01\x02\x82" + _cbor_bignum(BIG // 2) + _cbor_bignum(BIG // 2), "tag 258"),
    Case("cbor", "map keys: bignums with equal hashes", _colliding_bignum_keys(BIG // 64, 40), "map key"),
    # --- CBOR: values no other serializer carries -----------------------------------------------
    Case("cbor", "date/time string", b"\xc0" + cbor2.dumps("2026-12-05T19:00:00Z"), "tag 0"),
    Case("cbor", "epoch date/time", b"\xc1\x1a\x65\x00\x00\x00", "tag 1"),
    Case("cbor", "regular expression", b"\xd8\x23" + cbor2.dumps("(a+)+$"), "tag 35"),
    Case("cbor", "UUID", b"\xd8\x25" + _cbor_bytes(bytes(16)), "tag 37"),
    Case("cbor", "IPv4 address", b"\xd8\x34" + _cbor_bytes(bytes(4)), "tag 52"),
    Case("cbor", "string reference namespace", b"\xd9\x01\x00\x82\x63abc\xd8\x19\x00", "tag 256"),
    Case("cbor", "shared value and a reference to it", b"\xd8\x1c\x81\xd8\x1d\x00", "tag 28"),
    Case("cbor", "self-described CBOR", b"\xd9\xd9\xf7\x82\x01\x02", "tag 55799"),
    Case("cbor", "float32 typed array (tag 85)", b"\xd8\x55" + _cbor_bytes(bytes(8)), "tag 85"),
    Case("cbor", "unknown tag", b"\xd9\x04\xd2\x01", "tag 1234"),
    Case("cbor", "tag 64 around text", b"\xd8\x40\x62ab", "other than a byte string"),
    Case("cbor", "tag 64 around an array", b"\xd8\x40\x81\x01", "other than a byte string"),
    Case("cbor", "map key: an integer", b"\xa1\x01\x02", "map key"),
    Case("cbor", "map key: bytes", b"\xa1\x41a\x02", "map key"),
    Case("cbor", "map key: a float", b"\xa1\xf9\x3c\x00\x02", "map key"),
    Case("cbor", "map key: an array", b"\xa1\x81\x01\x02", "map key"),
    Case("cbor", "map key: null", b"\xa1\xf6\x02", "map key"),
    Case("cbor", "indefinite map key: an integer", b"\xbf\x61a\x01\x02\x03\xff", "map key"),
    Case("cbor", "integer below -2**63", b"\x3b\x80" + bytes(7), "beyond 64 bits"),
    Case("cbor", "NaN (half)", b"\xf9\x7e\x00", "not finite"),
    Case("cbor", "infinity (single)", b"\xfa\x7f\x80\x00\x00", "not finite"),
    Case("cbor", "-infinity (double)", b"\xfb" + struct.pack(">d", float("-inf")), "not finite"),
    Case("cbor", "NaN with a payload (double)", b"\xfb\x7f\xf0\x00\x00\x00\x00\x00\x01", "not finite"),
    Case("cbor", "simple value 5", b"\xe5", "simple value"),
    Case("cbor", "simple value 32", b"\xf8\x20", "simple value"),
    Case("cbor", "indefinite bytes with an integer chunk", b"\x5f\x01\xff", "chunk"),
    Case("cbor", "indefinite text with a bytes chunk", b"\x7f\x41a\xff", "chunk"),
    Case("cbor", "indefinite text nested in itself", b"\x7f\x7f\xff\xff", "chunk"),
    Case("cbor", "nested past the depth bound", b"\x81" * 40 + b"\x01", "nested deeper"),
    # --- CBOR: taken ----------------------------------------------------------------------------
    Case("cbor", "2**64 - 1", b"\x1b" + b"\xff" * 8),
    Case("cbor", "-2**63", b"\x3b\x7f" + b"\xff" * 7),
    Case("cbor", "tag 64 around bytes (autobahn-js Uint8Array)", b"\xd8\x40\x42\x01\x02"),
    Case("cbor", "tag 64 around indefinite bytes", b"\xd8\x40\x5f\x41\x01\x41\x02\xff"),
    Case("cbor", "undefined (cbor-x)", b"\xf7"),
    Case("cbor", "-0.0 (half)", b"\xf9\x80\x00"),
    Case("cbor", "largest half float", b"\xf9\x7b\xff"),
    Case("cbor", "largest double", b"\xfb" + struct.pack(">d", 1.7976931348623157e308)),
    Case("cbor", "indefinite map with a text key", b"\xbf\x7f\x61a\x61b\xff\x01\xff"),
    Case("cbor", "indefinite array", b"\x9f\x01\x02\xff"),
    # --- msgpack --------------------------------------------------------------------------------
    Case("msgpack", "map key: an integer", b"\x81\x01\x02", "map key"),
    Case("msgpack", "map key: uint64", b"\x81\xcf" + b"\xff" * 8 + b"\x02", "map key"),
    Case("msgpack", "map key: bytes", b"\x81\xc4\x01a\x02", "map key"),
    Case("msgpack", "map key: an array", b"\x81\x91\x01\x02", "map key"),
    Case("msgpack", "map key: a map", b"\x81\x80\x02", "map key"),
    Case("msgpack", "map key: a float", b"\x81\xcb" + struct.pack(">d", 0.5) + b"\x02", "map key"),
    Case("msgpack", "map key: nil", b"\x81\xc0\x02", "map key"),
    Case("msgpack", "map16 of integer keys with equal hashes",
         b"\xde\x00\x08" + b"".join(b"\xcf" + (7 + i * _P).to_bytes(8, "big") + b"\x01" for i in range(8)), "map key"),
    Case("msgpack", "timestamp (ext -1)", b"\xd6\xff\x00\x00\x00\x00", "extension type"),
    Case("msgpack", "ext 8", b"\xc7\x03\x05abc", "extension type"),
    Case("msgpack", "fixext 1 of another type", b"\xd4\x05\x00", "extension type"),
    Case("msgpack", "fixext 1 type 0 with another byte", b"\xd4\x00\x01", "extension type"),
    Case("msgpack", "large ext 32", b"\xc9" + BIG.to_bytes(4, "big") + b"\x05" + bytes(BIG), "extension type"),
    Case("msgpack", "NaN (float32)", b"\xca\x7f\xc0\x00\x00", "not finite"),
    Case("msgpack", "infinity (float64)", b"\xcb" + struct.pack(">d", float("inf")), "not finite"),
    Case("msgpack", "-infinity (float32)", b"\xca\xff\x80\x00\x00", "not finite"),
    Case("msgpack", "never-used byte 0xc1", b"\xc1", "invalid msgpack byte"),
    Case("msgpack", "nested past the depth bound", b"\x91" * 40 + b"\x01", "nested deeper"),
    Case("msgpack", "2**64 - 1 (uint64)", b"\xcf" + b"\xff" * 8),
    Case("msgpack", "2**63 (uint64, past int64)", b"\xcf\x80" + bytes(7)),
    Case("msgpack", "-2**63 (int64)", b"\xd3\x80" + bytes(7)),
    Case("msgpack", "undefined (msgpackr: ext 0)", b"\xd4\x00\x00"),
    Case("msgpack", "bytes", _mp(b"\x00\x01")),
    Case("msgpack", "str8 key", _mp({"k" * 40: 1})),
    Case("msgpack", "float32", b"\xca" + struct.pack(">f", 1.5)),
    Case("msgpack", "-0.0", _mp(-0.0)),
    # --- JSON -----------------------------------------------------------------------------------
    Case("json", "a million digits", "1" * 10**6, "beyond 64 bits"),
    Case("json", "5000 digits (past int()'s 4300)", "9" * 5000, "beyond 64 bits"),
    Case("json", "2**64", str(2**64), "beyond 64 bits"),
    Case("json", "-2**63 - 1", str(-(2**63) - 1), "beyond 64 bits"),
    Case("json", "NaN", "NaN", "NaN is not a number"),
    Case("json", "Infinity", "Infinity", "Infinity is not a number"),
    Case("json", "-Infinity", "-Infinity", "-Infinity is not a number"),
    Case("json", "1e400", "1e400", "beyond the range of a double", before_codec=False),
    Case("json", "-1e400", "-1e400", "beyond the range of a double", before_codec=False),
    Case("json", "a float of a million digits", "0." + "0" * 10**6 + "1", "characters"),
    Case("json", "a float of 101 characters", "1." + "0" * 99, "characters"),
    Case("json", "an exponent of a million digits", "1e" + "9" * 10**6, "characters"),
    Case("json", "infinity inside a map", '{"a":[1,{"b":1e999}]}', "beyond the range", before_codec=False),
    Case("json", "a lone high surrogate", '"\\ud800"', "lone UTF-16 surrogate", before_codec=False),
    Case("json", "a lone low surrogate as a map key", '{"a\\uDC00":1}', "lone UTF-16 surrogate", before_codec=False),
    Case("json", "-0", "-0"),
    Case("json", "-0.0", "-0.0"),
    Case("json", "1e-400 (underflows to 0)", "1e-400"),
    Case("json", "2**64 - 1", str(2**64 - 1)),
    Case("json", "-2**63", str(-(2**63))),
    Case("json", "largest double", "1.7976931348623157e308"),
    Case("json", "a float of 100 characters", "1." + "0" * 98),
    Case("json", "digits and NaN in a string", '"' + "9" * 10**5 + ' NaN Infinity"'),
    Case("json", "a surrogate pair", '"\\ud83d\\ude00"'),
    Case("json", "an escaped backslash before ud800", '"\\\\ud800"'),
]


def kinds_ok(value: t.Any) -> bool:
    """Only str-keyed dicts, lists, str, bytes, 64-bit ints, finite floats, bool, None (or a client's undefined)."""
    kind = type(value)
    if kind is dict:
        return all(type(key) is str and kinds_ok(key) and kinds_ok(item) for key, item in value.items())
    if kind is list:
        return all(kinds_ok(item) for item in value)
    if kind is int:
        return MIN_INT <= value <= MAX_INT
    if kind is float:
        return math.isfinite(value)
    if kind is str:
        return not any("\ud800" <= char <= "\udfff" for char in value)
    return (kind in (bytes, bool) or value is None or value is cbor2.undefined
            or value == msgpack.ExtType(0, b"\x00"))


def call_frame(case: Case) -> str | bytes:
    """CALL 1 of ``app.x`` with the case's value as its only argument."""
    if case.serializer == "json":
        return f'[48,1,{{}},"app.x",[{t.cast(str, case.value)}]]'
    if case.serializer == "msgpack":
        return b"\x95\x30\x01\x80\xa5app.x\x91" + t.cast(bytes, case.value)
    return b"\x85\x18\x30\x01\xa0\x65app.x\x81" + t.cast(bytes, case.value)


def hello_frame(case: Case, realm: str) -> str | bytes:
    """HELLO to ``realm`` with the case's value under the details' key ``x``."""
    roles = {"caller": {}}
    if case.serializer == "json":
        return f'[1,"{realm}",{{"roles":{{"caller":{{}}}},"x":{t.cast(str, case.value)}}}]'
    if case.serializer == "msgpack":
        return b"\x93\x01" + _mp(realm) + b"\x82" + _mp("roles") + _mp(roles) + _mp("x") + t.cast(bytes, case.value)
    dumps = cbor2.dumps
    return b"\x83\x01" + dumps(realm) + b"\xa2" + dumps("roles") + dumps(roles) + dumps("x") + t.cast(bytes, case.value)


# --- worst cases for cost: frames of about ``size`` bytes, each the densest of its kind ------------


def _repeat(unit: bytes | str, size: int) -> t.Any:
    return unit * max(1, size // len(unit))


def _msgpack_array(items: bytes, count: int) -> bytes:
    return b"\x95\x30\x01\x80\xa5app.x\xdd" + count.to_bytes(4, "big") + items


def _cbor_array(items: bytes, count: int | None = None) -> bytes:
    head = b"\x9f" if count is None else b"\x9a" + count.to_bytes(4, "big")
    return b"\x85\x18\x30\x01\xa0\x65app.x" + head + items + (b"\xff" if count is None else b"")


def _json_array(items: str) -> str:
    return f'[48,1,{{}},"app.x",[{items}]]'


def _units(unit: bytes, size: int) -> tuple[bytes, int]:
    count = max(1, size // len(unit))
    return unit * count, count


def _msgpack_of(unit: bytes, tail: bytes = b"") -> t.Callable[[int], bytes]:
    def build(size: int) -> bytes:
        items, count = _units(unit, size - len(tail))
        return _msgpack_array(items + tail, count + (1 if tail else 0))
    return build


def _cbor_of(unit: bytes, tail: bytes = b"", definite: bool = True) -> t.Callable[[int], bytes]:
    def build(size: int) -> bytes:
        items, count = _units(unit, size - len(tail))
        return _cbor_array(items + tail, count + (1 if tail else 0) if definite else None)
    return build


def _json_of(unit: str, tail: str = "") -> t.Callable[[int], str]:
    def build(size: int) -> str:
        return _json_array(_repeat(unit, size - len(tail)) + tail)
    return build


#: The linear baseline of each serializer: the densest array a frame can hold (one small int per byte or two).
BASELINES: dict[str, t.Callable[[int], str | bytes]] = {
    "msgpack": _msgpack_of(b"\x01"),
    "cbor": _cbor_of(b"\x01"),
    "json": _json_of("1,", tail="1"),
}

#: Worst cases per serializer: (name, builder of a frame of about ``size`` bytes).
WORST: dict[str, list[tuple[str, t.Callable[[int], str | bytes]]]] = {
    "msgpack": [
        ("small ints", BASELINES["msgpack"]),
        ("one-entry maps", _msgpack_of(b"\x81\xa1a\x01")),
        ("empty arrays", _msgpack_of(b"\x90")),
        ("undefined (ext 0)", _msgpack_of(b"\xd4\x00\x00")),
        ("float64", _msgpack_of(b"\xcb" + struct.pack(">d", 0.5))),
        ("uint64", _msgpack_of(b"\xcf" + b"\xff" * 8)),
        ("small ints, then an integer map key", _msgpack_of(b"\x01", tail=b"\x81\x01\x02")),
        ("small ints, then a timestamp", _msgpack_of(b"\x01", tail=b"\xd6\xff\x00\x00\x00\x00")),
        ("small ints, then NaN", _msgpack_of(b"\x01", tail=b"\xca\x7f\xc0\x00\x00")),
    ],
    "cbor": [
        ("small ints", BASELINES["cbor"]),
        ("small ints, indefinite array", _cbor_of(b"\x01", definite=False)),
        ("one-entry maps", _cbor_of(b"\xa1\x61a\x01")),
        ("indefinite one-entry maps", _cbor_of(b"\xbf\x61a\x01\xff")),
        ("empty byte string chunks", lambda size: _cbor_array(b"\x5f" + b"\x40" * size + b"\xff", 1)),
        ("empty text string chunks", lambda size: _cbor_array(b"\x7f" + b"\x60" * size + b"\xff", 1)),
        ("tag 64 around empty bytes", _cbor_of(b"\xd8\x40\x40")),
        ("half floats", _cbor_of(b"\xf9\x3c\x00")),
        ("undefined", _cbor_of(b"\xf7")),
        ("indefinite arrays nested", lambda size: _cbor_array(b"\x9f" * (size // 2) + b"\xff" * (size // 2), 1)),
        ("small ints, then a decimal fraction with a bignum mantissa",
         lambda size: _cbor_array(b"\x01" * (size // 2) + b"\xc4\x82\x01" + _cbor_bignum(size // 2), size // 2 + 1)),
        ("map keys: bignums with equal hashes", lambda size: _cbor_array(_colliding_bignum_keys(size // 48, 40), 1)),
        ("small ints, then a set", _cbor_of(b"\x01", tail=b"\xd9\x01\x02\x81\x01")),
        ("small ints, then an integer below -2**63", _cbor_of(b"\x01", tail=b"\x3b\x80" + bytes(7))),
    ],
    "json": [
        ("small ints", BASELINES["json"]),
        ("floats", _json_of("1.5,", tail="1")),
        ("-0", _json_of("-0,", tail="1")),
        ("20-digit ints", _json_of("18446744073709551615,", tail="1")),
        ("100-character floats", _json_of("1." + "0" * 98 + ",", tail="1")),
        ("empty strings", _json_of('"",', tail="1")),
        ("empty maps", _json_of("{},", tail="1")),
        ("one-entry maps", _json_of('{"a":1},', tail="1")),
        ("escapes", lambda size: _json_array('"' + _repeat("\\u00e9", size) + '"')),
        ("nested arrays", lambda size: _json_array("[" * (size // 2) + "]" * (size // 2))),
        ("small ints, then digits", lambda size: _json_array(_repeat("1,", size // 2) + "1" * (size // 2))),
        ("small ints, then a long float",
         lambda size: _json_array(_repeat("1,", size // 2) + "0." + "0" * (size // 2))),
        ("small ints, then NaN", _json_of("1,", tail="NaN")),
    ],
}
