"""The cheap look at a WAMP frame's head: its leading unsigned integers, without decoding the rest.

Pure. Used where a full decode is not needed (the router's messages) or has
failed (a browser message past its bounds still names its type and request id).
"""

from __future__ import annotations

import re
import typing as t

__all__ = ["Head", "PEEKERS", "peek_head"]

# Each returns (type, first, second): the message's leading unsigned integers,
# None where the element is not one; or None when the head cannot be read.

Head = t.Tuple[int, t.Optional[int], t.Optional[int]]

# JSON's own whitespace and ASCII digits only: Unicode ones (U+00A0, U+0664) would
# read as a head here while the frame is not JSON at all.
_JSON_HEAD = re.compile(
    r"[ \t\n\r]*\[[ \t\n\r]*(\d{1,16})(?![\d.eE])"
    r"(?:[ \t\n\r]*,[ \t\n\r]*(\d{1,16})(?![\d.eE])(?:[ \t\n\r]*,[ \t\n\r]*(\d{1,16})(?![\d.eE]))?)?",
    re.ASCII,
)


def _peek_json(data: t.Any) -> Head | None:
    match = _JSON_HEAD.match(data)
    if match is None:
        return None
    first, second, third = match.groups()
    return int(first), (int(second) if second else None), (int(third) if third else None)


def _peek_binary(data: t.Any, arrays: dict[int, int], uints: dict[int, int], fix_array: range,
                 fix_uint: range) -> Head | None:
    # msgpack and CBOR both start an array with a header byte (and maybe a
    # big-endian length) and encode small unsigned ints the same way: a "fix"
    # range, or a marker byte followed by 1/2/4/8 big-endian bytes.
    found: list[int | None] = []
    try:
        lead = data[0]
        if lead in fix_array:
            pos = 1
        elif lead in arrays:
            pos = 1 + arrays[lead]
        else:
            return None
        while len(found) < 3:
            byte = data[pos]
            if byte in fix_uint:
                found.append(byte - fix_uint.start)
                pos += 1
            elif byte in uints:
                size = uints[byte]
                if pos + 1 + size > len(data):
                    return None
                found.append(int.from_bytes(data[pos + 1:pos + 1 + size], "big"))
                pos += 1 + size
            else:
                break
    except IndexError:
        if not found:
            return None
    if not found:
        return None
    found.extend([None] * (3 - len(found)))
    return t.cast(Head, tuple(found))


_MSGPACK_ARRAYS = {0xDC: 2, 0xDD: 4}
_MSGPACK_UINTS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_CBOR_ARRAYS = {0x98: 1, 0x99: 2, 0x9A: 4, 0x9B: 8, 0x9F: 0}
_CBOR_UINTS = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}


def _peek_msgpack(data: t.Any) -> Head | None:
    return _peek_binary(data, _MSGPACK_ARRAYS, _MSGPACK_UINTS, range(0x90, 0xA0), range(0x00, 0x80))


def _peek_cbor(data: t.Any) -> Head | None:
    return _peek_binary(data, _CBOR_ARRAYS, _CBOR_UINTS, range(0x80, 0x98), range(0x00, 0x18))


PEEKERS: dict[str, t.Callable[[t.Any], t.Optional[Head]]] = {
    "json": _peek_json,
    "msgpack": _peek_msgpack,
    "cbor": _peek_cbor,
}


def peek_head(codec: str, data: t.Any) -> Head | None:
    """The head of ``data`` in ``codec`` (json, msgpack, cbor), or None if it cannot be read that way."""
    return PEEKERS[codec](data)
