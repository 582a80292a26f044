"""Sans-IO WAMP RawSocket: the 4-byte opening handshake and length-prefixed frames.

No sockets, no gevent, no clock. The WAMP spec's RawSocket transport, as
Crossbar speaks it (autobahn's ``autobahn.twisted.rawsocket``):

- the client opens with 4 octets ``0x7F, (L << 4) | S, 0, 0``: it asks the
  other side to send messages of at most ``2 ** (9 + L)`` bytes, in the
  serializer ``S`` (:data:`SERIALIZER_IDS`);
- the router answers the same way (its own length exponent, the serializer
  echoed), or with an error in the high nibble and a zero low nibble
  (:class:`HandshakeError`);
- then each message is a 4-octet header (5 reserved bits, a 3-bit
  :class:`FrameType`, a 24-bit big-endian length) and the payload.

:class:`RawSocket` is one side's state machine in the style of h11: feed it
bytes with :meth:`RawSocket.receive_data`, take events from
:meth:`RawSocket.next_event`, send what :meth:`RawSocket.data_to_send`
returns. A frame longer than the agreed maximum is refused from its header,
before any of its payload is kept.

Crossbar 26.10.1 reads frames with Twisted's ``Int32StringReceiver``: it
knows no PING or PONG frames (their type bits make the length look larger
than 16 MiB, and it drops the connection) and never sends them; it answers a
bad handshake by closing the connection, without an error reply; and a
message longer than the client announced it is skipped with a warning in its
log (the connection stays, the message is lost: a RESULT never arrives). So a
client of Crossbar must not send :data:`FrameType.PING` and should announce
:data:`MAX_LENGTH`, bounding message sizes itself.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import typing as t

from ..errors import ConnectError
from ..errors import LocalProtocolError
from ..errors import MessageTooBig
from ..errors import RemoteProtocolError

__all__ = [
    "MAGIC",
    "MIN_LENGTH",
    "MAX_LENGTH",
    "SERIALIZER_IDS",
    "FrameType",
    "HandshakeError",
    "Role",
    "Handshake",
    "Message",
    "Ping",
    "Pong",
    "NEED_DATA",
    "Event",
    "length_exponent",
    "client_handshake",
    "parse_client_handshake",
    "router_reply",
    "router_error_reply",
    "parse_router_reply",
    "frame_header",
    "encode_frame",
    "FrameParser",
    "RawSocket",
]

MAGIC = 0x7F
#: The smallest and largest message size a handshake can announce (2**9 .. 2**24).
MIN_LENGTH = 1 << 9
MAX_LENGTH = 1 << 24

#: RawSocket serializer ids of the WAMP spec, by serializer name.
SERIALIZER_IDS: dict[str, int] = {"json": 1, "msgpack": 2, "cbor": 3}
_SERIALIZER_NAMES = {number: name for name, number in SERIALIZER_IDS.items()}

_HEADER = struct.Struct("!I")
_TYPE_SHIFT = 24
_LENGTH_MASK = (1 << 24) - 1


class FrameType(enum.IntEnum):
    """The 3-bit message type of a frame header."""

    MESSAGE = 0
    PING = 1
    PONG = 2


class HandshakeError(enum.IntEnum):
    """The error codes a router may put in the high nibble of its handshake reply."""

    SERIALIZER_UNSUPPORTED = 1
    MAX_LENGTH_UNACCEPTABLE = 2
    RESERVED_BITS = 3
    MAX_CONNECTIONS = 4


_ERROR_TEXT = {
    HandshakeError.SERIALIZER_UNSUPPORTED: "the serializer is not offered on this RawSocket transport",
    HandshakeError.MAX_LENGTH_UNACCEPTABLE: "the maximum message length is not acceptable",
    HandshakeError.RESERVED_BITS: "a feature was asked for by reserved bits that is not supported",
    HandshakeError.MAX_CONNECTIONS: "the maximum number of connections is reached",
}


class Role(enum.Enum):
    CLIENT = "client"
    ROUTER = "router"


def length_exponent(max_length: int) -> int:
    """The handshake's length nibble for ``max_length`` bytes: the smallest L with 2**(9+L) >= it.

    :raises LocalProtocolError: ``max_length`` is not in [:data:`MIN_LENGTH`, :data:`MAX_LENGTH`].
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not MIN_LENGTH <= max_length <= MAX_LENGTH:
        raise LocalProtocolError(
            f"a RawSocket maximum message length must be from {MIN_LENGTH} to {MAX_LENGTH} bytes, got {max_length!r}"
        )
    return max(0, (max_length - 1).bit_length() - 9)


def _serializer_id(serializer: str) -> int:
    try:
        return SERIALIZER_IDS[serializer]
    except KeyError:
        raise LocalProtocolError(
            f"no RawSocket serializer id for {serializer!r}; use one of {', '.join(SERIALIZER_IDS)}"
        ) from None


def _octets(nibble_high: int, nibble_low: int) -> bytes:
    return bytes((MAGIC, (nibble_high << 4) | nibble_low, 0, 0))


def client_handshake(serializer: str, max_length: int = MAX_LENGTH) -> bytes:
    """The client's 4 opening octets: ``serializer`` and the largest message it accepts."""
    return _octets(length_exponent(max_length), _serializer_id(serializer))


def router_reply(serializer: str, max_length: int = MAX_LENGTH) -> bytes:
    """The router's 4 octets accepting ``serializer``, announcing the largest message it accepts."""
    return _octets(length_exponent(max_length), _serializer_id(serializer))


def router_error_reply(error: HandshakeError) -> bytes:
    """The router's 4 octets refusing the connection with ``error``."""
    return _octets(HandshakeError(error), 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Handshake:
    """The opening handshake is done: ``serializer`` is spoken and the other side accepts
    messages of at most ``max_length`` bytes (never send a longer one)."""

    serializer: str
    max_length: int


def _check_octets(data: bytes) -> tuple[int, int]:
    if len(data) != 4:
        raise RemoteProtocolError(f"a RawSocket handshake is 4 octets, got {len(data)}")
    if data[0] != MAGIC:
        raise RemoteProtocolError(
            f"not a WAMP RawSocket peer: the handshake starts with 0x{data[0]:02x}, not 0x7f"
        )
    if data[2] or data[3]:
        raise RemoteProtocolError("the RawSocket handshake's reserved octets are not zero")
    return data[1] >> 4, data[1] & 0x0F


def parse_client_handshake(
    data: bytes, serializers: t.Collection[str] = tuple(SERIALIZER_IDS)
) -> Handshake | HandshakeError:
    """The router side: read a client's 4 opening octets.

    :param serializers: the serializers this router speaks.
    :returns: the handshake, or the error to reply with (a serializer not in ``serializers``).
    :raises RemoteProtocolError: not a RawSocket handshake.
    """
    exponent, number = _check_octets(data)
    name = _SERIALIZER_NAMES.get(number)
    if name is None or name not in serializers:
        return HandshakeError.SERIALIZER_UNSUPPORTED
    return Handshake(name, 1 << (9 + exponent))


def parse_router_reply(data: bytes, serializer: str) -> Handshake:
    """The client side: read the router's 4 reply octets to our request for ``serializer``.

    :raises ConnectError: the router refused (its error code, in words).
    :raises RemoteProtocolError: not a RawSocket reply, or another serializer than asked for.
    """
    high, low = _check_octets(data)
    if low == 0:
        try:
            reason = _ERROR_TEXT[HandshakeError(high)]
        except ValueError:
            reason = f"error code {high}"
        raise ConnectError(f"the router refused the RawSocket handshake: {reason}")
    if low != _serializer_id(serializer):
        raise RemoteProtocolError(
            f"the router answered the RawSocket handshake with serializer id {low}, not {serializer!r}"
        )
    return Handshake(serializer, 1 << (9 + high))


def frame_header(length: int, kind: FrameType = FrameType.MESSAGE) -> bytes:
    """The 4-octet header of a frame with a ``length``-byte payload."""
    if not 0 <= length <= _LENGTH_MASK:
        raise LocalProtocolError(f"a RawSocket frame holds at most {_LENGTH_MASK} bytes, not {length}")
    return _HEADER.pack((int(kind) << _TYPE_SHIFT) | length)


def encode_frame(payload: bytes, kind: FrameType = FrameType.MESSAGE) -> bytes:
    """One whole frame: header and ``payload``."""
    return frame_header(len(payload), kind) + payload


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A serialized WAMP message (its bytes, to decode with the handshake's serializer)."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    data: bytes


class _NeedData:
    """Sentinel: :meth:`RawSocket.next_event` needs more bytes."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

Event = t.Union[Handshake, Message, Ping, Pong]
_EVENT_OF_TYPE: dict[int, type[Message] | type[Ping] | type[Pong]] = {
    FrameType.MESSAGE: Message,
    FrameType.PING: Ping,
    FrameType.PONG: Pong,
}


class FrameParser:
    """Incremental frame parser with a length bound.

    :param max_length: the largest payload accepted; a header announcing more
        raises :class:`~flask_wamp_bridge.errors.MessageTooBig` before any of
        the payload is buffered.
    """

    __slots__ = ("max_length", "_buffer", "_want")

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        self._want: tuple[int, int] | None = None  # (frame type, payload length) once the header is read

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer)

    def next_frame(self) -> Message | Ping | Pong | None:
        """The next whole frame, or None when more bytes are needed.

        :raises MessageTooBig: a frame longer than ``max_length``.
        :raises RemoteProtocolError: reserved bits set or an unknown frame type.
        """
        if self._want is None:
            if len(self._buffer) < 4:
                return None
            (word,) = _HEADER.unpack_from(self._buffer)
            del self._buffer[:4]
            kind, length = word >> _TYPE_SHIFT, word & _LENGTH_MASK
            if kind >> 3:
                raise RemoteProtocolError("a RawSocket frame header has reserved bits set")
            if kind not in _EVENT_OF_TYPE:
                raise RemoteProtocolError(f"unknown RawSocket frame type {kind}")
            if length > self.max_length:
                raise MessageTooBig(f"RawSocket frame of {length} bytes, more than the agreed {self.max_length}")
            self._want = (kind, length)
        kind, length = self._want
        if len(self._buffer) < length:
            return None
        with memoryview(self._buffer) as view:
            payload = bytes(view[:length])  # one copy (a bytearray slice would be two)
        del self._buffer[:length]
        self._want = None
        return _EVENT_OF_TYPE[kind](payload)


class RawSocket:
    """One side of a RawSocket connection, sans-IO.

    A client: :meth:`initiate` gives the opening octets; the first event is
    the router's :class:`Handshake`. A router: the first event is the
    client's :class:`Handshake` (the reply is already queued in
    :meth:`data_to_send`). Then :class:`Message`, :class:`Ping` (answered by
    a queued PONG) and :class:`Pong` events. Errors raise (see
    :meth:`next_event`); the connection is then unusable.

    :param serializer: the client's serializer (for a router: unused).
    :param max_length: the largest message we accept (announced in the handshake).
    :param serializers: the serializers a router speaks.
    """

    def __init__(
        self,
        role: Role,
        serializer: str = "msgpack",
        max_length: int = MAX_LENGTH,
        serializers: t.Collection[str] = tuple(SERIALIZER_IDS),
    ) -> None:
        length_exponent(max_length)  # checks it
        self.role = role
        self.serializer = serializer
        self.max_length = max_length
        self._serializers = serializers
        #: The handshake's outcome, once done: what the other side accepts.
        self.handshake: Handshake | None = None
        self._incoming = bytearray()
        self._outgoing = bytearray()
        self._parser = FrameParser(max_length)
        self._failed = False

    def limit_incoming(self, max_length: int) -> None:
        """Refuse frames longer than ``max_length`` from now on (the handshake still announces :attr:`max_length`:
        a router that would otherwise skip a longer message silently is told the most it may send)."""
        self._parser.max_length = min(self.max_length, max_length)

    @property
    def buffered(self) -> int:
        """Bytes received after the handshake and not yet returned as frames."""
        return self._parser.buffered

    def initiate(self) -> bytes:
        """The client's opening octets (send them first)."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("only a RawSocket client opens the handshake")
        return client_handshake(self.serializer, self.max_length)

    def receive_data(self, data: bytes) -> None:
        """Bytes from the other side (an empty ``data`` is not special: watch EOF yourself)."""
        if self.handshake is None:
            self._incoming += data
        else:
            self._parser.feed(data)

    def next_event(self) -> Event | _NeedData:
        """The next event, or :data:`NEED_DATA`.

        :raises ConnectError: the router refused the handshake.
        :raises MessageTooBig: a frame over our maximum length.
        :raises RemoteProtocolError: anything else the other side got wrong.
        """
        if self._failed:
            raise LocalProtocolError("the RawSocket connection failed earlier")
        try:
            return self._next_event()
        except Exception:
            self._failed = True
            raise

    def _next_event(self) -> Event | _NeedData:
        if self.handshake is None:
            if len(self._incoming) < 4:
                return NEED_DATA
            octets, rest = bytes(self._incoming[:4]), bytes(self._incoming[4:])
            self._incoming.clear()
            if self.role is Role.CLIENT:
                self.handshake = parse_router_reply(octets, self.serializer)
            else:
                found = parse_client_handshake(octets, self._serializers)
                if isinstance(found, HandshakeError):
                    self._outgoing += router_error_reply(found)
                    raise RemoteProtocolError(f"RawSocket handshake refused: {_ERROR_TEXT[found]}")
                self.handshake = found
                self.serializer = found.serializer
                self._outgoing += router_reply(self.serializer, self.max_length)
            self._parser.feed(rest)
            return self.handshake
        frame = self._parser.next_frame()
        if frame is None:
            return NEED_DATA
        if isinstance(frame, Ping):
            self._outgoing += encode_frame(frame.data, FrameType.PONG)
        return frame

    def send(self, payload: bytes) -> bytes:
        """The frame carrying one serialized message.

        :raises LocalProtocolError: before the handshake, or longer than the other side accepts.
        """
        return self._frame(payload, FrameType.MESSAGE)

    def ping(self, payload: bytes = b"") -> bytes:
        """A PING frame (not for Crossbar, which drops the connection on one)."""
        return self._frame(payload, FrameType.PING)

    def _frame(self, payload: bytes, kind: FrameType) -> bytes:
        if self.handshake is None:
            raise LocalProtocolError("the RawSocket handshake is not done yet")
        if len(payload) > self.handshake.max_length:
            raise LocalProtocolError(
                f"a message of {len(payload)} bytes is longer than the other side accepts "
                f"({self.handshake.max_length})"
            )
        return encode_frame(payload, kind)

    def data_to_send(self) -> bytes:
        """Bytes queued by the protocol itself (a router's handshake reply, PONGs); empties the queue."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data
