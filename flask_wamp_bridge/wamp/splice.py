"""One element of an encoded WAMP message, read and replaced without decoding the rest (its payload).

Pure. For the router's messages to a browser whose details dict must change
(RESULT, EVENT): the elements before it are unsigned ints (type, ids), so its
place is found as :mod:`~flask_wamp_bridge.wamp.heads` finds the head; only the
details are decoded and encoded again, the arguments are copied as bytes.
"""

from __future__ import annotations

import io
import json
import re
import typing as t

import cbor2
import msgpack

__all__ = ["Splicer"]

Data = t.Union[str, bytes]

_WS = r"[ \t\n\r]*"
_JSON_UINT = _WS + r"(?:0|[1-9][0-9]{0,15})" + _WS + ","
_JSON_PREFIXES = {count: re.compile(_WS + r"\[" + _JSON_UINT * count + _WS, re.ASCII) for count in (2, 3)}
_JSON_DECODER = json.JSONDecoder()

# msgpack and CBOR: array header byte (+ big-endian length), then uints (a "fix" range, or a marker + bytes)
_BINARY = {
    "msgpack": ({0xDC: 2, 0xDD: 4}, {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}, range(0x90, 0xA0), range(0x00, 0x80)),
    "cbor": ({0x98: 1, 0x99: 2, 0x9A: 4, 0x9B: 8, 0x9F: 0}, {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8},
             range(0x80, 0x98), range(0x00, 0x18)),
}


def _binary_offset(codec: str, data: bytes, index: int) -> int | None:
    arrays, uints, fix_array, fix_uint = _BINARY[codec]
    try:
        lead = data[0]
        if lead in fix_array:
            pos = 1
        elif lead in arrays:
            pos = 1 + arrays[lead]
        else:
            return None
        for _ in range(index):
            byte = data[pos]
            if byte in fix_uint:
                pos += 1
            elif byte in uints:
                pos += 1 + uints[byte]
            else:
                return None
    except IndexError:
        return None
    return pos if pos < len(data) else None


def _read_json(data: str, index: int) -> tuple[t.Any, int, int] | None:
    prefix = _JSON_PREFIXES[index].match(data)
    if prefix is None:
        return None
    value, end = _JSON_DECODER.raw_decode(data, prefix.end())
    return value, prefix.end(), end


def _read_msgpack(data: bytes, index: int) -> tuple[t.Any, int, int] | None:
    start = _binary_offset("msgpack", data, index)
    if start is None:
        return None
    try:
        value = msgpack.unpackb(memoryview(data)[start:], raw=False)
    except msgpack.ExtraData as more:  # the rest of the message: how far the element went
        return more.unpacked, start, len(data) - len(more.extra)
    return value, start, len(data)


def _read_cbor(data: bytes, index: int) -> tuple[t.Any, int, int] | None:
    start = _binary_offset("cbor", data, index)
    if start is None:
        return None
    stream = io.BytesIO(data)
    stream.seek(start)
    value = cbor2.CBORDecoder(stream).decode()
    return value, start, stream.tell()


_READERS: dict[str, t.Callable[[t.Any, int], t.Optional[tuple[t.Any, int, int]]]] = {
    "json": _read_json, "msgpack": _read_msgpack, "cbor": _read_cbor,
}
_WRITERS: dict[str, t.Callable[[t.Any], Data]] = {
    "json": json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode,
    "msgpack": lambda value: t.cast(bytes, msgpack.packb(value, use_bin_type=True)),
    "cbor": cbor2.dumps,
}
_UNREADABLE = (ValueError, TypeError, KeyError, IndexError, RecursionError, EOFError, OverflowError,
               msgpack.UnpackException, cbor2.CBORDecodeError)


class Splicer:
    """Reads and replaces one element of the messages of one codec (a relayed session's)."""

    __slots__ = ("_read", "_write")

    def __init__(self, codec: str) -> None:
        self._read = _READERS[codec]
        self._write = _WRITERS[codec]

    def element_at(self, data: Data, index: int) -> tuple[t.Any, int, int] | None:
        """Element ``index`` (2 or 3) of the message ``data``, the elements before it unsigned ints:
        (value, start, end); None when the frame is not laid out that way or the element cannot be read."""
        try:
            return self._read(data, index)
        except _UNREADABLE:
            return None

    def replaced(self, data: Data, start: int, end: int, value: t.Any) -> Data:
        """``data`` with the element at ``start:end`` (from :meth:`element_at`) replaced by ``value`` encoded."""
        return data[:start] + self._write(value) + data[end:]  # type: ignore[operator]
