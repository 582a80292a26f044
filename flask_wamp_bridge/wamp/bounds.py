"""What decoding one WAMP frame may cost: its shape (depth, element count, size) and the kinds of value it holds.

Pure. Every decode costs time linear in the frame, before any value is built.

Shape. :func:`check_frame` runs before a codec sees the frame. For msgpack and
CBOR it walks the item headers without building anything, so a length prefix
that claims more than the frame holds, a container nested too deep or too many
elements are refused before the codec allocates. A JSON frame is checked by
counting its brackets and its length (each element takes at least one
character); only a frame those counts cannot clear is measured after decoding
(:func:`check_decoded`; the codec's own recursion guard bounds the decode).

Values (always, with or without :class:`Bounds`): only what JSON, msgpack and
CBOR peers can all carry, and nothing a codec builds in more than linear time:

- map keys are strings (an int, float, tuple or bignum key can be made to
  collide in a dict: quadratic; Python's string hashes are salted);
- integers fit 64 bits, from ``-2**63`` to ``2**64 - 1`` (msgpack's int64 and
  uint64, CBOR's heads): no bignum, whose conversion is quadratic;
- floats are finite (no NaN or Infinity, not in JSON either: ``1e400`` is
  refused, not read as infinity), and a JSON number has at most
  :data:`MAX_JSON_NUMBER_CHARS` characters (its digits are never converted
  beyond that; Python's ``int()`` would be quadratic up to its 4300-digit limit);
- strings are Unicode text: no lone UTF-16 surrogate, which a JSON escape
  (``"\\ud800"``) can make and no UTF-8 encoder takes (msgpack and CBOR
  strings are decoded as strict UTF-8 already);
- msgpack ext types are refused, but for msgpackr's ``undefined``
  (``ExtType(0, b"\\x00")``, which wampy.js sends for unset options);
- CBOR tags are refused, but for :data:`CBOR_TAGS` (tag 64 around a byte string);
  CBOR simple values other than false, true, null and undefined are refused.

The walk refuses these for msgpack and CBOR; JSON's own scanner hands each
number's text to :data:`JSON_DECODER`'s hooks before converting it.
Each refusal is a :class:`~flask_wamp_bridge.errors.PayloadOutOfBounds` naming the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing as t

from ..errors import PayloadOutOfBounds

__all__ = [
    "Bounds",
    "DEFAULT_BOUNDS",
    "PEER_BOUNDS",
    "NO_BOUNDS",
    "MIN_INT",
    "MAX_INT",
    "MAX_JSON_NUMBER_CHARS",
    "CBOR_TAGS",
    "JSON_DECODER",
    "untag_cbor",
    "check_frame",
    "check_decoded",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Bounds:
    """Limits for one decoded message (the message list itself is depth 1)."""

    #: Containers (lists, maps, CBOR tags) nested in each other.
    max_depth: int = 32
    #: Elements of all containers together (a map entry counts twice).
    max_elements: int = 100_000
    #: The frame's size in bytes (text: characters); decoded strings are never longer.
    max_bytes: int = 1 << 20


DEFAULT_BOUNDS = Bounds()
#: What a server-side peer takes from the router: deeper than a browser may send (the relay's default),
#: no size bound of its own (its socket has one).
PEER_BOUNDS = Bounds(max_depth=64, max_elements=1_000_000, max_bytes=1 << 62)
#: No bound on the shape (the codecs' own depth guards remain): only the value rules apply.
NO_BOUNDS = Bounds(max_depth=1 << 62, max_elements=1 << 62, max_bytes=1 << 62)

#: The integers every serializer carries: msgpack's int64 and uint64 together.
MIN_INT, MAX_INT = -(1 << 63), (1 << 64) - 1
_INT_CHARS = len(str(MIN_INT))  # 20, as many as str(MAX_INT)
#: Characters of one JSON number. No encoder writes a double in more than 25 (``-2.2250738585072014e-308``);
#: an integer in range has at most 20.
MAX_JSON_NUMBER_CHARS = 100

#: The CBOR tags a frame may hold. WAMP's values are JSON's plus binary, which CBOR carries without tags, so
#: only one is taken: 64 (RFC 8746, an array of uint8) around a byte string, which autobahn-js (node-cbor)
#: writes for every ``Uint8Array`` and cbor-x (wampy.js) under Node; it is decoded as plain ``bytes``.
#: cbor2 would build, for the others: 0/1 a ``datetime``; 2/3 an ``int`` of any size (quadratic); 4/5 a
#: ``Decimal`` (quadratic with a bignum mantissa); 30 a ``Fraction``; 258 a ``set`` (its members hashed: bignums
#: with equal hashes are quadratic); 35 a compiled ``re`` pattern; 36 an email message; 37 a ``UUID``;
#: 52/54/260/261 ``ipaddress`` objects; 25/256 string references and 28/29 shared (even cyclic) references;
#: 55799 (self-described CBOR) its content, arrays inside it as tuples; any other a ``CBORTag``. None of these
#: can be carried to a JSON or msgpack peer.
CBOR_TAGS = frozenset({64})
_CBOR_TAG_NAMES = {
    0: "a date/time", 1: "a date/time", 2: "a bignum", 3: "a bignum", 4: "a decimal fraction", 5: "a bigfloat",
    25: "a string reference", 256: "a string reference namespace", 28: "a shared value", 29: "a shared reference",
    30: "a rational", 35: "a regular expression", 36: "a MIME message", 37: "a UUID", 52: "an IP address",
    54: "an IP address", 260: "an IP address", 261: "an IP network", 258: "a set", 55799: "self-described CBOR",
}


def _json_int(text: str) -> int:
    if len(text) <= _INT_CHARS:
        value = int(text)
        if MIN_INT <= value <= MAX_INT:
            return value
    raise PayloadOutOfBounds(f"an integer beyond 64 bits ({text[:24]}{'...' if len(text) > 24 else ''})")


def _json_float(text: str) -> float:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise PayloadOutOfBounds(f"a number of {len(text)} characters, more than {MAX_JSON_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        raise PayloadOutOfBounds(f"a number beyond the range of a double ({text[:30]})")
    return value


def _json_constant(name: str) -> t.NoReturn:
    raise PayloadOutOfBounds(f"{name} is not a number every serializer carries")


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _JsonDecoder(json.JSONDecoder):
    def decode(self, s: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        value = super().decode(s, *args, **kwargs)
        # only an escape makes one (memchr for a backslash first: far cheaper than any search for "\ud")
        if "\\" in s and _SURROGATE_ESCAPE.search(s) is not None and _lone_surrogate(value):
            raise PayloadOutOfBounds("a string with a lone UTF-16 surrogate (not UTF-8)")
        return value


def _lone_surrogate(value: t.Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if _SURROGATE.search(item):
                return True
        elif kind is list:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item)
            stack.extend(item.values())
    return False


#: JSON's decoder with the value rules: each number's text is checked before it is converted; a string
#: with a lone surrogate (``"\\ud800"``, which no UTF-8 encoder takes) is refused after decoding.
JSON_DECODER: json.JSONDecoder = _JsonDecoder(parse_int=_json_int, parse_float=_json_float,
                                              parse_constant=_json_constant)


def untag_cbor(first: t.Any, second: t.Any) -> t.Any:
    """cbor2's ``tag_hook``: a tag of :data:`CBOR_TAGS` (64, around bytes the walk checked) is its bytes.

    cbor2 6 passes ``(tag, immutable)``, cbor2 5 ``(decoder, tag)``.
    """
    tag = first if hasattr(first, "tag") else second
    if tag.tag in CBOR_TAGS:
        return tag.value
    raise PayloadOutOfBounds(f"CBOR tag {tag.tag}")  # the walk refuses it first


def check_frame(data: str | bytes, codec: str, bounds: Bounds) -> bool:
    """Refuse a frame past ``bounds``, or a binary one holding a value the rules refuse, before decoding;
    return True if it must be measured after decoding.

    :raises PayloadOutOfBounds: the frame is past a bound, a length prefix lies, or it holds a refused value.
    """
    size = len(data)
    if size > bounds.max_bytes:
        raise PayloadOutOfBounds(f"message of {size} bytes, more than {bounds.max_bytes}")
    if codec == "json":
        if size <= bounds.max_depth and size <= bounds.max_elements:
            return False  # every container and element takes a character at least
        text = t.cast(str, data)
        return text.count("[") + text.count("{") > bounds.max_depth or size > bounds.max_elements
    _SCANNERS[codec](t.cast(bytes, data), bounds)
    return False


def check_decoded(message: t.Any, bounds: Bounds) -> None:
    """Measure a decoded message's depth and element count.

    :raises PayloadOutOfBounds: past a bound.
    """
    elements = 0
    stack: list[tuple[t.Any, int]] = [(message, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > bounds.max_depth:
            raise PayloadOutOfBounds(f"nested deeper than {bounds.max_depth}")
        elements += len(value)
        if elements > bounds.max_elements:
            raise PayloadOutOfBounds(f"more than {bounds.max_elements} elements")
        for item in (value.values() if type(value) is dict else value):
            kind = type(item)
            if kind is list or kind is dict:
                stack.append((item, depth + 1))


# What an open container holds: any items, map entries (keys must be strings), the chunks of an
# indefinite-length CBOR byte or text string, the byte string under CBOR tag 64.
_ARRAY, _MAP, _BYTE_CHUNKS, _TEXT_CHUNKS, _TAGGED_BYTES = 0, 1, 2, 3, 4

# The walks below keep their state in locals (a walk is the per-item hot loop of every binary message):
# ``open_`` holds the items still to read per open container (indefinite CBOR ones count down from -1),
# ``kinds`` what each open container holds.


def _past_end() -> PayloadOutOfBounds:
    return PayloadOutOfBounds("a length or value runs past the end of the frame")


def _too_long(length: int) -> PayloadOutOfBounds:
    return PayloadOutOfBounds(f"a length prefix claims {length} bytes, more than the frame holds")


def _too_many(count: int) -> PayloadOutOfBounds:
    return PayloadOutOfBounds(f"a length prefix claims {count} elements, more than the frame holds")


def _too_deep(bounds: Bounds) -> PayloadOutOfBounds:
    return PayloadOutOfBounds(f"nested deeper than {bounds.max_depth}")


def _too_big(bounds: Bounds) -> PayloadOutOfBounds:
    return PayloadOutOfBounds(f"more than {bounds.max_elements} elements")


_NOT_FINITE = "a float that is not finite (NaN or infinity)"

# msgpack: marker byte -> bytes after it (ints and floats)
_MSGPACK_FIXED = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
# marker byte -> width of the big-endian length (bin and str)
_MSGPACK_BYTES = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
# marker byte -> (width of the big-endian length, items per element)
_MSGPACK_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}
_MSGPACK_EXT = {0xD4: "fixext 1", 0xD5: "fixext 2", 0xD6: "fixext 4", 0xD7: "fixext 8", 0xD8: "fixext 16",
                0xC7: "ext 8", 0xC8: "ext 16", 0xC9: "ext 32"}
_MSGPACK_UNDEFINED = b"\xd4\x00\x00"  # msgpackr's undefined: ExtType(0, b"\x00")


def _scan_msgpack(data: bytes, bounds: Bounds) -> None:
    size, max_depth, max_elements = len(data), bounds.max_depth, bounds.max_elements
    open_, kinds = [1], [_ARRAY]
    pos = elements = 0
    while open_:
        left = open_[-1]
        if left == 0:
            open_.pop()
            kinds.pop()
            continue
        open_[-1] = left - 1
        if pos >= size:
            raise PayloadOutOfBounds("the frame ends inside a container")
        byte = data[pos]
        pos += 1
        if kinds[-1] and not left & 1 and not (0xA0 <= byte <= 0xBF or 0xD9 <= byte <= 0xDB):
            # a map's entries count twice, key first: the key is not a string
            raise PayloadOutOfBounds(f"a map key that is not a string (msgpack byte 0x{byte:02x})")
        if byte <= 0x7F or byte >= 0xE0 or byte in (0xC0, 0xC2, 0xC3):
            continue
        if 0xA0 <= byte <= 0xBF:
            length = byte & 0x1F
        elif byte <= 0x9F:  # fixmap, fixarray
            count = byte & 0x0F
            if count:
                if byte <= 0x8F:
                    count *= 2
                if count > size - pos:
                    raise _too_many(count)
                elements += count
                if elements > max_elements:
                    raise _too_big(bounds)
                open_.append(count)
                kinds.append(_MAP if byte <= 0x8F else _ARRAY)
                if len(open_) - 1 > max_depth:
                    raise _too_deep(bounds)
            elif len(open_) > max_depth:
                raise _too_deep(bounds)
            continue
        elif byte in _MSGPACK_FIXED:
            length = _MSGPACK_FIXED[byte]
        elif byte in _MSGPACK_BYTES or byte in _MSGPACK_CONTAINERS:
            width, factor = _MSGPACK_CONTAINERS.get(byte, (_MSGPACK_BYTES.get(byte, 0), 0))
            if pos + width > size:
                raise _past_end()
            length = int.from_bytes(data[pos:pos + width], "big")
            pos += width
            if factor:
                count = factor * length
                if count:
                    if count > size - pos:
                        raise _too_many(count)
                    elements += count
                    if elements > max_elements:
                        raise _too_big(bounds)
                    open_.append(count)
                    kinds.append(_MAP if factor == 2 else _ARRAY)
                    if len(open_) - 1 > max_depth:
                        raise _too_deep(bounds)
                elif len(open_) > max_depth:
                    raise _too_deep(bounds)
                continue
        elif byte == 0xCA or byte == 0xCB:
            length = 4 if byte == 0xCA else 8
            if length <= size - pos and data[pos] & 0x7F == 0x7F:
                mask = 0x80 if byte == 0xCA else 0xF0
                if data[pos + 1] & mask == mask:  # the exponent's bits all set
                    raise PayloadOutOfBounds(_NOT_FINITE)
        elif byte == 0xD4 and data[pos - 1:pos + 2] == _MSGPACK_UNDEFINED:
            length = 2
        elif byte in _MSGPACK_EXT:
            raise PayloadOutOfBounds(f"a msgpack extension type ({_MSGPACK_EXT[byte]})")
        else:
            raise PayloadOutOfBounds(f"invalid msgpack byte 0x{byte:02x}")
        if length > size - pos:
            raise _too_long(length)
        pos += length


def _cbor_finite(data: bytes, at: int, info: int) -> bool:
    # the exponent's bits are not all set: half (5 bits), single (8) or double (11) precision
    high = data[at] & 0x7F
    if info == 25:
        return high & 0x7C != 0x7C
    if high != 0x7F:
        return True
    mask = 0x80 if info == 26 else 0xF0
    return data[at + 1] & mask != mask


_CBOR_MAX_NEGATIVE = -1 - MIN_INT  # major type 1 holds -1 - n


def _scan_cbor(data: bytes, bounds: Bounds) -> None:
    size, max_depth, max_elements = len(data), bounds.max_depth, bounds.max_elements
    open_, kinds = [1], [_ARRAY]
    pos = elements = 0
    while open_:
        left = open_[-1]
        if left == 0:
            open_.pop()
            kinds.pop()
            continue
        if pos >= size:
            raise PayloadOutOfBounds("the frame ends inside a container")
        byte = data[pos]
        pos += 1
        if byte == 0xFF:  # break: ends the innermost indefinite container
            if left > 0:
                raise PayloadOutOfBounds("a CBOR break outside an indefinite-length item")
            open_.pop()
            kinds.pop()
            continue
        open_[-1] = left - 1
        if left < 0:
            elements += 1
            if elements > max_elements:
                raise _too_big(bounds)
        major, info = byte >> 5, byte & 0x1F
        kind = kinds[-1]
        if kind:
            if kind == _MAP:
                if (left & 1) ^ (left > 0) and major != 3:  # a key: definite maps count down from 2n, others from -1
                    raise PayloadOutOfBounds(f"a map key that is not a string (CBOR major type {major})")
            elif kind == _TAGGED_BYTES:
                if major != 2:
                    raise PayloadOutOfBounds("CBOR tag 64 around something other than a byte string")
            elif major != kind or info == 31:  # _BYTE_CHUNKS == 2, _TEXT_CHUNKS == 3: their major types
                raise PayloadOutOfBounds("an indefinite-length string with a chunk that is not a definite string")
        if info < 24:
            value = info
        elif info < 28:
            width = 1 << (info - 24)
            if pos + width > size:
                raise _past_end()
            if major == 7:
                if info == 24:
                    raise PayloadOutOfBounds(f"a CBOR simple value ({data[pos]})")
                if not _cbor_finite(data, pos, info):
                    raise PayloadOutOfBounds(_NOT_FINITE)
                pos += width
                continue
            value = int.from_bytes(data[pos:pos + width], "big")
            pos += width
        elif info == 31 and 2 <= major <= 5:
            open_.append(-1)  # indefinite: ends at a break byte
            kinds.append((_BYTE_CHUNKS, _TEXT_CHUNKS, _ARRAY, _MAP)[major - 2])
            if len(open_) - 1 > max_depth:
                raise _too_deep(bounds)
            continue
        else:
            raise PayloadOutOfBounds(f"invalid CBOR byte 0x{byte:02x}")
        if major == 0:  # unsigned ints to 2**64 - 1: the head was all of it
            continue
        if major == 2 or major == 3:
            if value > size - pos:
                raise _too_long(value)
            pos += value
        elif major == 4 or major == 5 or major == 6:
            if major == 6:  # a tag wraps one item: counts as a level of nesting
                if value not in CBOR_TAGS:
                    raise PayloadOutOfBounds(f"CBOR tag {value} ({_CBOR_TAG_NAMES.get(value, 'an unknown tag')})")
                count, holds = 1, _TAGGED_BYTES
            elif major == 5:
                if value > size:
                    raise PayloadOutOfBounds(f"a length prefix claims {value} entries, more than the frame holds")
                count, holds = 2 * value, _MAP
            else:
                count, holds = value, _ARRAY
            if count:
                if count > size - pos:  # each item takes a byte at least
                    raise _too_many(count)
                elements += count
                if elements > max_elements:
                    raise _too_big(bounds)
                open_.append(count)
                kinds.append(holds)
                if len(open_) - 1 > max_depth:
                    raise _too_deep(bounds)
            elif len(open_) > max_depth:
                raise _too_deep(bounds)
        elif major == 1:
            if value > _CBOR_MAX_NEGATIVE:
                raise PayloadOutOfBounds("an integer beyond 64 bits (below -2**63)")
        elif not 20 <= value <= 23:  # major 7: false, true, null, undefined
            raise PayloadOutOfBounds(f"a CBOR simple value ({value})")


_SCANNERS: dict[str, t.Callable[[bytes, Bounds], None]] = {"msgpack": _scan_msgpack, "cbor": _scan_cbor}
