"""Sans-IO RFC 6455 codec: frame parser and encoder for both roles.

No sockets, no gevent, no clock. Feed received bytes to :class:`FrameParser`
and act on the events it returns; build outgoing frames with
:func:`encode_frame` and :func:`encode_close`.

Theory of operation
-------------------
The parser streams: a data frame's payload is unmasked, size-checked and
(for text) UTF-8 validated as its bytes arrive, so a frame is never buffered
twice, and

* the message size limit is enforced from the frame *header* (and, for
  fragmented messages, from the running total) before any payload is kept:
  a 14-byte header claiming 1 GiB fails at once with 1009;
* invalid UTF-8 fails as soon as the offending bytes arrive (1007), even in
  the middle of a frame that is still being received.

With permessage-deflate negotiated (:attr:`FrameParser.inflater` set), RSV1 on
the first frame of a data message marks it compressed: its frames are kept as
they are, and the whole message is inflated (bounded by the size limit: a
compression bomb fails with 1009) before its UTF-8 is validated. RSV1 anywhere
else, RSV2 and RSV3 are protocol errors (1002).

Control frames (at most 125 bytes) are handled whole. The first protocol
violation produces a :class:`Failure` event carrying the close code to send
(1002 protocol error, 1007 invalid UTF-8, 1009 too big); a :class:`Close`
event or a :class:`Failure` ends parsing, later input is ignored.

Masking is a whole-buffer operation (``int`` XOR over chunks of up to 4 KiB),
never a Python loop over bytes.
"""

from __future__ import annotations

import codecs
import dataclasses
import struct
import typing as t

from ..errors import LocalProtocolError
from ..errors import MessageTooBig
from ..errors import RemoteProtocolError
from .deflate import Inflater

__all__ = [
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "RSV1",
    "Message",
    "Ping",
    "Pong",
    "Close",
    "Failure",
    "Event",
    "FrameParser",
    "encode_header",
    "encode_frame",
    "encode_close",
    "mask",
    "is_valid_close_code",
    "truncate_reason",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
#: The first header byte's RSV1 bit: a compressed message (permessage-deflate); ``encode_header`` takes
#: it or-ed into the opcode.
RSV1 = 0x40

_DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
_CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))
_MAX_CONTROL_PAYLOAD = 125
_MAX_REASON_BYTES = 123  # close payload = 2 bytes of code + reason

# --- events -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``str`` for a text message, ``bytes`` for binary."""

    data: str | bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    """A ping; answer it with a pong carrying the same payload."""

    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    """A pong (answer to our ping, or unsolicited heartbeat)."""

    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame. ``code`` is None when the frame carried no status code."""

    code: int | None
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """The peer broke the protocol; close the connection with :attr:`code`."""

    error: RemoteProtocolError

    @property
    def code(self) -> int:
        return self.error.close_code

    @property
    def reason(self) -> str:
        return str(self.error)


Event = t.Union[Message, Ping, Pong, Close, Failure]

# --- masking --------------------------------------------------------------------

_CHUNK = 4096  # int XOR is linear only up to a few KiB: bigger payloads go chunk by chunk


def mask(data: bytes | bytearray | memoryview, key: bytes, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte ``key``, starting at key position ``offset`` (0-3).

    Masking and unmasking are the same operation. It runs as ``int`` XORs over
    4 KiB chunks (about 1.7 ns per byte), never a Python loop over bytes.
    """
    n = len(data)
    if not n:
        return b""
    if offset & 3:
        offset &= 3
        key = key[offset:] + key[:offset]
    from_bytes = int.from_bytes
    if n <= _CHUNK:
        stream = (key * ((n >> 2) + 1))[:n]
        return (from_bytes(data, "little") ^ from_bytes(stream, "little")).to_bytes(n, "little")
    view = memoryview(data)
    whole = n - n % _CHUNK
    key_int = from_bytes(key * (_CHUNK // 4), "little")
    parts = [
        (from_bytes(view[i : i + _CHUNK], "little") ^ key_int).to_bytes(_CHUNK, "little")
        for i in range(0, whole, _CHUNK)
    ]
    if whole < n:
        parts.append(mask(view[whole:], key))  # whole is a multiple of 4: the key phase is unchanged
    return b"".join(parts)


# --- close codes ----------------------------------------------------------------


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (RFC 6455 7.4, IANA registry).

    1005, 1006 and 1015 are reserved for local use and never sent.
    """
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def truncate_reason(reason: str) -> bytes:
    """``reason`` as UTF-8, cut at a character boundary to fit in a close frame (123 bytes)."""
    raw = reason.encode("utf-8")
    if len(raw) <= _MAX_REASON_BYTES:
        return raw
    return raw[:_MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


# --- encoder ----------------------------------------------------------------------


def encode_header(opcode: int, length: int, mask_key: bytes | None = None, *, fin: bool = True) -> bytes:
    """The frame header for a payload of ``length`` bytes (mask key included when given).

    ``opcode | RSV1`` marks the first frame of a compressed message.
    """
    b0 = (0x80 if fin else 0) | opcode
    mbit = 0x80 if mask_key is not None else 0
    if length < 126:
        header = struct.pack("!BB", b0, mbit | length)
    elif length < 0x10000:
        header = struct.pack("!BBH", b0, mbit | 126, length)
    else:
        header = struct.pack("!BBQ", b0, mbit | 127, length)
    if mask_key is not None:
        if len(mask_key) != 4:
            raise LocalProtocolError("a WebSocket mask key is exactly 4 bytes")
        header += mask_key
    return header


def encode_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview = b"",
    mask_key: bytes | None = None,
    *,
    fin: bool = True,
) -> bytes:
    """One complete frame. Clients pass a fresh random ``mask_key`` per frame; servers pass None."""
    if opcode in _CONTROL_OPCODES:
        if len(payload) > _MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError(f"control frame payload is {len(payload)} bytes; the limit is 125")
        if not fin:
            raise LocalProtocolError("control frames cannot be fragmented")
    elif opcode not in _DATA_OPCODES:
        raise LocalProtocolError(f"unknown WebSocket opcode {opcode:#x}")
    header = encode_header(opcode, len(payload), mask_key, fin=fin)
    if mask_key is not None:
        return header + mask(payload, mask_key)
    return header + bytes(payload)


def encode_close(code: int | None = 1000, reason: str = "", mask_key: bytes | None = None) -> bytes:
    """A close frame with ``code`` on the wire (None: an empty close frame).

    The reason is truncated to fit (123 bytes of UTF-8).
    """
    if code is None:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return encode_frame(OP_CLOSE, b"", mask_key)
    if not is_valid_close_code(code):
        raise LocalProtocolError(
            f"close code {code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
        )
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + truncate_reason(reason), mask_key)


# --- parser -----------------------------------------------------------------------


class _Fail(Exception):
    """Internal: carries the RemoteProtocolError out of the parse loop."""

    def __init__(self, error: RemoteProtocolError) -> None:
        self.error = error


def _fail(message: str, code: int = 1002) -> _Fail:
    return _Fail(RemoteProtocolError(message, code))


_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
#: Pieces of a message kept apart before they are joined into one (bounds per-fragment overhead).
_MERGE_PIECES = 256


class FrameParser:
    """Incremental RFC 6455 frame parser for one direction of one connection.

    :param role: ``"server"`` parses what a client sends (frames must be masked),
        ``"client"`` parses what a server sends (frames must not be masked).
    :param max_message_size: largest message, in payload bytes, or None for no limit.
        Exceeding it yields a :class:`Failure` with code 1009.

    Set :attr:`inflater` once permessage-deflate is negotiated: then compressed messages are accepted.
    """

    #: Inflates compressed messages (permessage-deflate negotiated); None: RSV1 is a protocol error.
    #: (Class-level defaults: a connection without the extension holds nothing more for it.)
    inflater: Inflater | None = None
    _msg_compressed = False  # the message being assembled came with RSV1

    def __init__(self, role: t.Literal["server", "client"], max_message_size: int | None = 1 << 20) -> None:
        if role not in ("server", "client"):
            raise ValueError("role must be 'server' or 'client'")
        self._expect_mask = role == "server"
        self.max_message_size = max_message_size
        self._pending = b""  # an incomplete header (or control frame)
        self._done = False
        # the data frame whose payload is being received
        self._in_frame = False
        self._frame_fin = False
        self._frame_left = 0
        self._frame_key: bytes | None = None
        self._frame_keypos = 0
        # the data message being assembled
        self._msg_opcode: int | None = None
        self._msg_size = 0
        self._msg_parts: list[t.Any] = []
        self._msg_merged = 0  # pieces of _msg_parts already joined
        self._decoder: t.Any = None

    @property
    def done(self) -> bool:
        """True once a :class:`Close` or :class:`Failure` was produced; later input is ignored."""
        return self._done

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Parse received bytes and return the events they complete (possibly none)."""
        events: list[Event] = []
        if self._done or not data:
            return events
        if self._pending:
            data = self._pending + bytes(data)
            self._pending = b""
        elif not isinstance(data, bytes):
            data = bytes(data)
        try:
            self._parse(data, events)
        except _Fail as exc:
            self._done = True
            self._msg_parts = []
            self._msg_merged = 0
            events.append(Failure(exc.error))
        return events

    # The loop is one method so that the hot path stays free of attribute lookups per frame.
    def _parse(self, data: bytes, events: list[Event]) -> None:  # noqa: C901
        n = len(data)
        pos = 0
        while pos < n:
            if self._in_frame:
                pos = self._take_payload(data, pos, events)
                continue
            if n - pos < 2:
                self._pending = data[pos:]
                return
            b0 = data[pos]
            b1 = data[pos + 1]
            fin = bool(b0 & 0x80)
            opcode = b0 & 0x0F
            if b0 & 0x70:
                self._compressed_frame(b0, opcode)
            masked = bool(b1 & 0x80)
            length = b1 & 0x7F
            if opcode in _CONTROL_OPCODES:
                if not fin:
                    raise _fail("control frames must not be fragmented")
                if length > _MAX_CONTROL_PAYLOAD:
                    raise _fail("control frame payload is longer than 125 bytes")
            elif opcode not in _DATA_OPCODES:
                raise _fail(f"unknown opcode {opcode:#x}")
            if masked != self._expect_mask:
                if self._expect_mask:
                    raise _fail("client frames must be masked")
                raise _fail("server frames must not be masked")
            hlen = 2
            if length == 126:
                hlen = 4
            elif length == 127:
                hlen = 10
            if masked:
                hlen += 4
            if n - pos < hlen:
                self._pending = data[pos:]
                return
            if length == 126:
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                if length >> 63:
                    raise _fail("frame length has its most significant bit set")
            key = data[pos + hlen - 4 : pos + hlen] if masked else None

            if opcode in _CONTROL_OPCODES:
                end = pos + hlen + length
                if end > n:
                    self._pending = data[pos:]
                    return
                payload = data[pos + hlen : end]
                if key is not None:
                    payload = mask(payload, key)
                pos = end
                if opcode == OP_PING:
                    events.append(Ping(payload))
                elif opcode == OP_PONG:
                    events.append(Pong(payload))
                else:
                    events.append(_parse_close(payload))
                    self._done = True
                    return
                continue

            # data frame
            if opcode == OP_CONTINUATION:
                if self._msg_opcode is None:
                    raise _fail("continuation frame without a message to continue")
            elif self._msg_opcode is not None:
                raise _fail("new data frame while a fragmented message is incomplete")
            limit = self.max_message_size
            if limit is not None and self._msg_size + length > limit and not (
                self._msg_compressed and self._msg_size + length <= limit + (limit >> 10) + 64
            ):  # (compressing an incompressible message adds a little: a few bytes per 16 KiB)
                raise _Fail(
                    MessageTooBig(
                        f"message of at least {self._msg_size + length} bytes exceeds the limit of {limit} bytes"
                    )
                )
            pos += hlen
            if opcode != OP_CONTINUATION:
                self._msg_opcode = opcode
                # fast path: a whole unfragmented message that is already here
                if fin and n - pos >= length and not b0 & RSV1:
                    payload = data[pos : pos + length]
                    if key is not None:
                        payload = mask(payload, key)
                    pos += length
                    self._msg_opcode = None
                    if opcode == OP_TEXT:
                        try:
                            events.append(Message(payload.decode("utf-8")))
                        except UnicodeDecodeError:
                            raise _fail("text message is not valid UTF-8", 1007) from None
                    else:
                        events.append(Message(payload))
                    continue
                if opcode == OP_TEXT and not b0 & RSV1:
                    self._decoder = _Utf8Decoder()
            self._msg_size += length
            self._in_frame = True
            self._frame_fin = fin
            self._frame_left = length
            self._frame_key = key
            self._frame_keypos = 0
            if length == 0:
                pos = self._take_payload(data, pos, events)

    def _compressed_frame(self, b0: int, opcode: int) -> None:
        """Reserved bits are set: only RSV1, only on a data message's first frame, only with deflate."""
        if b0 & 0x70 != RSV1 or self.inflater is None:
            raise _fail("reserved bits are set but no extension was negotiated")
        if opcode not in (OP_TEXT, OP_BINARY):
            raise _fail("RSV1 (compressed) is set on a control or continuation frame")
        self._msg_compressed = True

    def _take_payload(self, data: bytes, pos: int, events: list[Event]) -> int:
        take = min(self._frame_left, len(data) - pos)
        if take:
            chunk = data[pos : pos + take]
            key = self._frame_key
            if key is not None:
                chunk = mask(chunk, key, self._frame_keypos)
                self._frame_keypos = (self._frame_keypos + take) & 3
            if self._decoder is not None:
                try:
                    piece: t.Any = self._decoder.decode(chunk, False)
                except UnicodeDecodeError:
                    raise _fail("text message is not valid UTF-8", 1007) from None
            else:
                piece = chunk
            parts = self._msg_parts
            parts.append(piece)
            if len(parts) - self._msg_merged >= _MERGE_PIECES:
                # Many small fragments: join the recent pieces, else each one costs a
                # Python object (~40 bytes) and memory grows far past the size limit.
                tail = parts[self._msg_merged :]
                del parts[self._msg_merged :]
                parts.append(piece[:0].join(tail))
                self._msg_merged = len(parts)
            self._frame_left -= take
            pos += take
        if self._frame_left == 0:
            self._in_frame = False
            if self._frame_fin:
                events.append(self._finish_message())
        return pos

    def _finish_message(self) -> Message:
        parts = self._msg_parts
        decoder = self._decoder
        opcode = self._msg_opcode
        self._msg_parts = []
        self._msg_merged = 0
        self._msg_opcode = None
        self._msg_size = 0
        self._decoder = None
        if self._msg_compressed:
            self._msg_compressed = False
            return self._inflate(opcode, parts[0] if len(parts) == 1 else b"".join(parts))
        if decoder is not None:
            try:
                parts.append(decoder.decode(b"", True))
            except UnicodeDecodeError:
                raise _fail("text message ends inside a UTF-8 sequence", 1007) from None
            return Message("".join(parts))
        if len(parts) == 1:
            return Message(parts[0])
        return Message(b"".join(parts))


    def _inflate(self, opcode: int | None, payload: bytes) -> Message:
        """A compressed message's payload, inflated within the size limit, then UTF-8-checked if text."""
        assert self.inflater is not None  # RSV1 is refused without it
        try:
            data = self.inflater.decompress(payload, self.max_message_size)
        except RemoteProtocolError as exc:  # MessageTooBig (1009) or invalid deflate data (1007)
            raise _Fail(exc) from None
        if opcode == OP_TEXT:
            try:
                return Message(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise _fail("text message is not valid UTF-8", 1007) from None
        return Message(data)


def _parse_close(payload: bytes) -> Close:
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        raise _fail("close frame payload of 1 byte (a status code needs 2)")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise _fail(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("close reason is not valid UTF-8", 1007) from None
    return Close(code, reason)
