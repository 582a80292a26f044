"""WAMP messages at the list level: type codes, serializers and shape checks.

Pure: no sockets, no gevent, no clock. A WAMP message is a plain ``list`` whose
first element is its type code; this module decodes frames into such lists,
checks their shape, and encodes them again. It raises only
:class:`~flask_wamp_bridge.errors.RemoteProtocolError` (for what came in) and
:class:`~flask_wamp_bridge.errors.LocalProtocolError` (for what we would send).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import typing as t

import cbor2
import msgpack

from ..errors import LocalProtocolError
from ..errors import PayloadOutOfBounds
from ..errors import RemoteProtocolError
from .bounds import JSON_DECODER
from .bounds import NO_BOUNDS
from .bounds import Bounds
from .bounds import check_decoded
from .bounds import check_frame
from .bounds import untag_cbor

__all__ = [
    "MessageType",
    "Serializer",
    "SERIALIZERS",
    "SUBPROTOCOLS",
    "serializer_for",
    "check_message",
    "decode_or_head",
    "Undecodable",
    "MAX_ID",
]

#: WAMP IDs are integers in [1, 2**53] (the spec's JavaScript-safe range).
MAX_ID = 2**53


class MessageType(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    ABORT = 3
    CHALLENGE = 4
    AUTHENTICATE = 5
    GOODBYE = 6
    ERROR = 8
    PUBLISH = 16
    PUBLISHED = 17
    SUBSCRIBE = 32
    SUBSCRIBED = 33
    UNSUBSCRIBE = 34
    UNSUBSCRIBED = 35
    EVENT = 36
    CALL = 48
    CANCEL = 49
    RESULT = 50
    REGISTER = 64
    REGISTERED = 65
    UNREGISTER = 66
    UNREGISTERED = 67
    INVOCATION = 68
    INTERRUPT = 69
    YIELD = 70


class Serializer:
    """One WAMP serializer: how a message list becomes a WebSocket frame and back.

    :attr:`binary` says whether its frames are binary (msgpack, cbor) or text (json).
    """

    name: str
    binary: bool

    @property
    def subprotocol(self) -> str:
        return f"wamp.2.{self.name}"

    def dumps(self, message: list[t.Any]) -> str | bytes:
        try:
            return self._dumps(message)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise LocalProtocolError(
                f"cannot serialize WAMP message with {self.name}: {exc}; pass only "
                "JSON-like values (dict, list, str, int, float, bool, None)"
            ) from exc

    def loads(self, data: str | bytes, bounds: Bounds | None = None) -> list[t.Any]:
        """Decode one frame into a message list, checking its shape.

        A frame holding a value the rules of :mod:`flask_wamp_bridge.wamp.bounds`
        refuse (a non-string map key, an integer beyond 64 bits, a float that is
        not finite, a CBOR tag, a msgpack ext type, ...) raises
        :class:`~flask_wamp_bridge.errors.PayloadOutOfBounds` (a subclass of
        :class:`~flask_wamp_bridge.errors.RemoteProtocolError`) before that value
        is built; so does, with ``bounds``, a frame past them, checked before the
        codec allocates. Decoding costs time linear in the frame.
        """
        if isinstance(data, str) == self.binary:
            kind = "text" if isinstance(data, str) else "binary"
            raise RemoteProtocolError(
                f"{kind} frame on the {self.subprotocol} subprotocol",
                close_code=1003,
            )
        measure = check_frame(data, self.name, NO_BOUNDS if bounds is None else bounds)
        try:
            message = self._loads(data)
        except PayloadOutOfBounds:  # a value the rules refuse (JSON: raised from inside the scanner)
            raise
        except RecursionError as exc:  # the codec's own depth guard
            raise PayloadOutOfBounds(f"frame nested too deep for {self.name}") from exc
        except Exception as exc:  # each codec raises its own family
            raise RemoteProtocolError(f"frame is not valid {self.name}: {exc}") from exc
        if measure:
            check_decoded(message, t.cast(Bounds, bounds))
        return check_message(message)

    def carries_tags(self, data: str | bytes) -> bool:
        """Whether ``data`` may hold tags that a router passing it to another serializer cannot carry.

        Such a frame is forwarded re-encoded from its decoded value, which holds none.
        """
        return False

    def _dumps(self, message: list[t.Any]) -> str | bytes:
        raise NotImplementedError

    def _loads(self, data: str | bytes) -> t.Any:
        raise NotImplementedError


class JsonSerializer(Serializer):
    name = "json"
    binary = False

    def _dumps(self, message: list[t.Any]) -> str:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def _loads(self, data: str | bytes) -> t.Any:
        return JSON_DECODER.decode(t.cast(str, data))  # text frames only: loads() checked


class MsgpackSerializer(Serializer):
    name = "msgpack"
    binary = True

    def _dumps(self, message: list[t.Any]) -> bytes:
        return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]

    def _loads(self, data: str | bytes) -> t.Any:
        return msgpack.unpackb(data, raw=False)  # string keys only (the walk refused any other)


_TAG_64 = b"\xd8\x40"


class CborSerializer(Serializer):
    name = "cbor"
    binary = True

    def _dumps(self, message: list[t.Any]) -> bytes:
        return cbor2.dumps(message)

    def carries_tags(self, data: str | bytes) -> bool:
        # Tag 64 (autobahn-js and cbor-x write every Uint8Array so): Crossbar hands it to a JSON or msgpack
        # peer as a CBORTag it cannot encode, and the call hangs. A stray match only costs a re-encode.
        return _TAG_64 in t.cast(bytes, data)

    def _loads(self, data: str | bytes) -> t.Any:
        return cbor2.loads(t.cast(bytes, data), tag_hook=untag_cbor)  # binary frames only: loads() checked


#: Serializers by WebSocket subprotocol, in order of preference.
SERIALIZERS: dict[str, Serializer] = {
    s.subprotocol: s for s in (JsonSerializer(), MsgpackSerializer(), CborSerializer())
}
#: The WAMP WebSocket subprotocols we speak, in order of preference.
SUBPROTOCOLS: tuple[str, ...] = tuple(SERIALIZERS)


def serializer_for(subprotocol: str) -> Serializer:
    try:
        return SERIALIZERS[subprotocol]
    except KeyError:
        raise LocalProtocolError(
            f"unsupported WAMP subprotocol {subprotocol!r}; use one of {', '.join(SUBPROTOCOLS)}"
        ) from None


# Field kinds for the shape table.
_ID, _URI, _DICT, _LIST, _INT, _STR = "id", "uri", "dict", "list", "int", "str"

# type -> (required fields after the type code, optional trailing fields)
_SHAPES: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    MessageType.HELLO: ((_URI, _DICT), ()),
    MessageType.WELCOME: ((_ID, _DICT), ()),
    MessageType.ABORT: ((_DICT, _URI), ()),
    MessageType.CHALLENGE: ((_STR, _DICT), ()),
    MessageType.AUTHENTICATE: ((_STR, _DICT), ()),
    MessageType.GOODBYE: ((_DICT, _URI), ()),
    MessageType.ERROR: ((_INT, _ID, _DICT, _URI), (_LIST, _DICT)),
    MessageType.PUBLISH: ((_ID, _DICT, _URI), (_LIST, _DICT)),
    MessageType.PUBLISHED: ((_ID, _ID), ()),
    MessageType.SUBSCRIBE: ((_ID, _DICT, _URI), ()),
    MessageType.SUBSCRIBED: ((_ID, _ID), ()),
    MessageType.UNSUBSCRIBE: ((_ID, _ID), ()),
    MessageType.UNSUBSCRIBED: ((_ID,), (_DICT,)),
    MessageType.EVENT: ((_ID, _ID, _DICT), (_LIST, _DICT)),
    MessageType.CALL: ((_ID, _DICT, _URI), (_LIST, _DICT)),
    MessageType.CANCEL: ((_ID, _DICT), ()),
    MessageType.RESULT: ((_ID, _DICT), (_LIST, _DICT)),
    MessageType.REGISTER: ((_ID, _DICT, _URI), ()),
    MessageType.REGISTERED: ((_ID, _ID), ()),
    MessageType.UNREGISTER: ((_ID, _ID), ()),
    MessageType.UNREGISTERED: ((_ID,), (_DICT,)),
    MessageType.INVOCATION: ((_ID, _ID, _DICT), (_LIST, _DICT)),
    MessageType.INTERRUPT: ((_ID, _DICT), ()),
    MessageType.YIELD: ((_ID, _DICT), (_LIST, _DICT)),
}


def _field_ok(kind: str, value: t.Any) -> bool:
    if kind == _ID:
        return type(value) is int and 0 <= value <= MAX_ID
    if kind == _URI or kind == _STR:
        return isinstance(value, str)
    if kind == _DICT:
        return isinstance(value, dict)
    if kind == _LIST:
        return isinstance(value, list)
    return type(value) is int


def check_message(message: t.Any) -> list[t.Any]:
    """Check a decoded message's shape; return it, or raise :class:`RemoteProtocolError`."""
    if not isinstance(message, list) or not message or type(message[0]) is not int:
        raise RemoteProtocolError("a WAMP message is a non-empty list starting with its type code")
    shape = _SHAPES.get(message[0])
    if shape is None:
        raise RemoteProtocolError(f"unknown WAMP message type {message[0]}")
    required, optional = shape
    fields = message[1:]
    if not len(required) <= len(fields) <= len(required) + len(optional):
        name = MessageType(message[0]).name
        raise RemoteProtocolError(f"{name} has {len(fields)} fields, expected {len(required)}"
                                  + (f" to {len(required) + len(optional)}" if optional else ""))
    for index, (kind, value) in enumerate(zip(required + optional, fields, strict=False), start=1):
        if not _field_ok(kind, value):
            name = MessageType(message[0]).name
            raise RemoteProtocolError(f"{name} field {index} must be a {kind}, got {type(value).__name__}")
    return message


@dataclasses.dataclass(frozen=True, slots=True)
class Undecodable:
    """A frame that could not be decoded (or was past its bounds), with what its head still tells.

    ``kind`` and ``request_id`` are None where the head cannot be read; for an
    ERROR, ``request_id`` is the request it answers and ``request_kind`` that request's type.
    """

    reason: str
    kind: int | None = None
    request_id: int | None = None
    request_kind: int | None = None


def decode_or_head(serializer: Serializer, data: str | bytes, bounds: Bounds) -> list[t.Any] | Undecodable:
    """Decode one frame within ``bounds``; on failure return what its head tells instead of raising.

    A peer uses this so that one payload it cannot take ends only the
    invocation, event or call it belongs to, never the session. A frame of the
    wrong kind (text on a binary subprotocol) still raises.
    """
    from .heads import peek_head

    try:
        return serializer.loads(data, bounds)
    except RemoteProtocolError as exc:
        if exc.close_code == 1003:
            raise
        head = peek_head(serializer.name, data)
        if head is None:
            return Undecodable(str(exc))
        kind, first, second = head
        if kind == MessageType.ERROR:
            return Undecodable(str(exc), kind, second, first)
        return Undecodable(str(exc), kind, first)
