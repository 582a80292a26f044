"""Bounds on what decoding one WAMP frame may cost: nesting depth, element count, size.

Pure. :func:`check_frame` runs before a codec sees the frame. For msgpack and
CBOR it walks the item headers without building anything, so a length prefix
that claims more than the frame holds, a container nested too deep or too many
elements are refused before the codec allocates. A JSON frame is checked by
counting its brackets and its length (each element takes at least one
character); only a frame those counts cannot clear is measured after decoding
(:func:`check_decoded`; the codec's own recursion guard bounds the decode).
"""

from __future__ import annotations

import dataclasses
import typing as t

from ..errors import PayloadOutOfBounds

__all__ = ["Bounds", "DEFAULT_BOUNDS", "PEER_BOUNDS", "check_frame", "check_decoded"]


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


def check_frame(data: str | bytes, codec: str, bounds: Bounds) -> bool:
    """Refuse a frame past ``bounds`` before decoding; return True if it must be measured after decoding.

    :raises PayloadOutOfBounds: the frame is past a bound (or a length prefix lies).
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


class _Walk:
    """Item-by-item walk of one binary frame: counts what is still open at each depth."""

    __slots__ = ("data", "size", "pos", "open", "elements", "bounds")

    def __init__(self, data: bytes, bounds: Bounds) -> None:
        self.data = data
        self.size = len(data)
        self.pos = 0
        self.open = [1]  # items still to read, per open container; -1: indefinite (CBOR)
        self.elements = 0
        self.bounds = bounds

    def uint(self, width: int) -> int:
        end = self.pos + width
        if end > self.size:
            raise PayloadOutOfBounds("a length or value runs past the end of the frame")
        value = int.from_bytes(self.data[self.pos:end], "big")
        self.pos = end
        return value

    def skip(self, length: int) -> None:
        if length > self.size - self.pos:
            raise PayloadOutOfBounds(f"a length prefix claims {length} bytes, more than the frame holds")
        self.pos += length

    def container(self, count: int) -> None:
        if count < 0:
            count = -1  # indefinite: ends at a break byte
        elif count > self.size - self.pos:  # each item takes a byte at least
            raise PayloadOutOfBounds(f"a length prefix claims {count} elements, more than the frame holds")
        else:
            self.elements += count
            if self.elements > self.bounds.max_elements:
                raise PayloadOutOfBounds(f"more than {self.bounds.max_elements} elements")
        self.open.append(count)
        if len(self.open) - 1 > self.bounds.max_depth:
            raise PayloadOutOfBounds(f"nested deeper than {self.bounds.max_depth}")

    def count_indefinite(self) -> None:
        self.elements += 1
        if self.elements > self.bounds.max_elements:
            raise PayloadOutOfBounds(f"more than {self.bounds.max_elements} elements")


# msgpack: marker byte -> (width of the big-endian length, multiplier for containers (0: bytes), fixed extra)
_MSGPACK_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
                  0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
_MSGPACK_BYTES = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
                  0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}
_MSGPACK_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _scan_msgpack(data: bytes, bounds: Bounds) -> None:
    walk = _Walk(data, bounds)
    open_ = walk.open
    while open_:
        if open_[-1] == 0:
            open_.pop()
            continue
        open_[-1] -= 1
        if walk.pos >= walk.size:
            raise PayloadOutOfBounds("the frame ends inside a container")
        byte = data[walk.pos]
        walk.pos += 1
        if byte <= 0x7F or byte >= 0xE0 or byte in (0xC0, 0xC2, 0xC3):
            continue
        if byte <= 0x8F:
            walk.container(2 * (byte & 0x0F))
        elif byte <= 0x9F:
            walk.container(byte & 0x0F)
        elif byte <= 0xBF:
            walk.skip(byte & 0x1F)
        elif byte in _MSGPACK_FIXED:
            walk.skip(_MSGPACK_FIXED[byte])
        elif byte in _MSGPACK_BYTES:
            width, extra = _MSGPACK_BYTES[byte]
            walk.skip(walk.uint(width) + extra)
        elif byte in _MSGPACK_CONTAINERS:
            width, factor = _MSGPACK_CONTAINERS[byte]
            walk.container(factor * walk.uint(width))
        else:
            raise PayloadOutOfBounds(f"invalid msgpack byte 0x{byte:02x}")


def _scan_cbor(data: bytes, bounds: Bounds) -> None:
    walk = _Walk(data, bounds)
    open_ = walk.open
    while open_:
        if open_[-1] == 0:
            open_.pop()
            continue
        if walk.pos >= walk.size:
            raise PayloadOutOfBounds("the frame ends inside a container")
        byte = data[walk.pos]
        walk.pos += 1
        if byte == 0xFF:  # break: ends the innermost indefinite container
            if open_[-1] != -1:
                raise PayloadOutOfBounds("a CBOR break outside an indefinite-length item")
            open_.pop()
            continue
        if open_[-1] > 0:
            open_[-1] -= 1
        else:
            walk.count_indefinite()
        major, info = byte >> 5, byte & 0x1F
        if info < 24:
            value = info
        elif info < 28:
            value = walk.uint(1 << (info - 24))
        elif info == 31 and major in (2, 3, 4, 5):
            walk.container(-1)
            continue
        else:
            raise PayloadOutOfBounds(f"invalid CBOR byte 0x{byte:02x}")
        if major == 2 or major == 3:
            walk.skip(value)
        elif major == 4:
            walk.container(value)
        elif major == 5:
            if value > walk.size:
                raise PayloadOutOfBounds(f"a length prefix claims {value} entries, more than the frame holds")
            walk.container(2 * value)
        elif major == 6:  # a tag wraps one item: counts as a level of nesting
            walk.container(1)
        # majors 0, 1 and 7 (ints, simple values, floats): the head was all of it


_SCANNERS: dict[str, t.Callable[[bytes, Bounds], None]] = {"msgpack": _scan_msgpack, "cbor": _scan_cbor}
