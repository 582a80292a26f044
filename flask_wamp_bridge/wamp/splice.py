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

# msgpack and CBOR: an array header (a "fix" byte, or a marker + big-endian length), then unsigned ints (a "fix"
# byte, or a marker + 1/2/4/8 bytes), as regular expressions over bytes (the same walk as the head's, in C)
_BINARY_HEADS = {
    "msgpack": (rb"(?:[\x90-\x9f]|\xdc.{2}|\xdd.{4})", rb"(?:[\x00-\x7f]|\xcc.|\xcd.{2}|\xce.{4}|\xcf.{8})"),
    "cbor": (rb"(?:[\x80-\x97]|\x98.|\x99.{2}|\x9a.{4}|\x9b.{8}|\x9f)",
             rb"(?:[\x00-\x17]|\x18.|\x19.{2}|\x1a.{4}|\x1b.{8})"),
}
_BINARY_PREFIXES = {(codec, count): re.compile(array + uint * count, re.DOTALL)
                    for codec, (array, uint) in _BINARY_HEADS.items() for count in (2, 3)}


def _json_start(data: str, index: int) -> int | None:
    prefix = _JSON_PREFIXES[index].match(data)
    return prefix.end() if prefix is not None else None


def _msgpack_start(data: bytes, index: int) -> int | None:
    prefix = _BINARY_PREFIXES["msgpack", index].match(data)
    return prefix.end() if prefix is not None and prefix.end() < len(data) else None


def _cbor_start(data: bytes, index: int) -> int | None:
    prefix = _BINARY_PREFIXES["cbor", index].match(data)
    return prefix.end() if prefix is not None and prefix.end() < len(data) else None


def _read_json(data: str, start: int) -> tuple[t.Any, int]:
    return _JSON_DECODER.raw_decode(data, start)


def _read_msgpack(data: bytes, start: int) -> tuple[t.Any, int]:
    try:
        value = msgpack.unpackb(memoryview(data)[start:], raw=False)
    except msgpack.ExtraData as more:  # the rest of the message: how far the element went
        return more.unpacked, len(data) - len(more.extra)
    return value, len(data)


def _read_cbor(data: bytes, start: int) -> tuple[t.Any, int]:
    stream = io.BytesIO(data)
    stream.seek(start)
    value = cbor2.CBORDecoder(stream).decode()
    return value, stream.tell()


_STARTS: dict[str, t.Callable[[t.Any, int], t.Optional[int]]] = {
    "json": _json_start, "msgpack": _msgpack_start, "cbor": _cbor_start,
}
_READERS: dict[str, t.Callable[[t.Any, int], tuple[t.Any, int]]] = {
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
    """Finds, reads and replaces one element of the messages of one codec (a relayed session's).

    An encoded element is self-delimiting: when ``data`` holds, at an element's start, the exact encoding of an
    element seen before, that is the whole element, which lets a caller reuse what it made of it.
    """

    __slots__ = ("start", "_read", "encode")

    def __init__(self, codec: str) -> None:
        #: ``start(data, index)``: where element ``index`` (2 or 3) begins, the elements before it unsigned ints;
        #: None when the frame is not laid out that way.
        self.start: t.Callable[[Data, int], t.Optional[int]] = _STARTS[codec]
        self._read = _READERS[codec]
        #: ``encode(value)``: one element's encoding.
        self.encode: t.Callable[[t.Any], Data] = _WRITERS[codec]

    def read(self, data: Data, start: int) -> tuple[t.Any, int] | None:
        """The element at ``start`` and where it ends, or None when it cannot be read."""
        try:
            return self._read(data, start)
        except _UNREADABLE:
            return None
