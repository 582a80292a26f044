"""Sans-IO permessage-deflate (RFC 7692), server side: negotiation, compression, bounded decompression.

No sockets, no gevent. :func:`negotiate` reads a client's
``Sec-WebSocket-Extensions`` offers and returns the accepted
:class:`DeflateParams` with the response header value. By default both
``no_context_takeover`` parameters are in every response (a server may add
them to any offer, RFC 7692 section 7.1.1), so no compressor or decompressor
outlives a message and an idle connection holds no zlib state.

:class:`Deflater` compresses one message (or leaves a message below the
threshold uncompressed: the frame's RSV1 bit says which); :class:`Inflater`
decompresses one message with its output bounded: a message that would
inflate past ``max_size`` raises
:class:`~flask_wamp_bridge.errors.MessageTooBig` (close code 1009) after
producing at most ``max_size + 1`` bytes, however small the compressed input.
"""

from __future__ import annotations

import dataclasses
import typing as t
import zlib

from ..errors import MessageTooBig
from ..errors import RemoteProtocolError

__all__ = [
    "EXTENSION",
    "DeflateParams",
    "DeflateOptions",
    "parse_extensions",
    "negotiate",
    "Deflater",
    "SLICE",
    "Inflater",
]

EXTENSION = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"  # what RFC 7692 strips from (and appends to) each message
_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
           "server_max_window_bits", "client_max_window_bits")
_MIN_BITS = 9  # zlib's raw deflate does not do 8 (it silently uses 9), so an offer of 8 is declined
_CHUNK = 64 * 1024  # inflate output per step
_UNBOUNDED = 1 << 62
#: Bytes of a large outgoing message compressed between two pauses (about 1 ms at level 1 for text).
SLICE = 256 * 1024
#: The last message compressed on its own (no context takeover), for the next socket sending the same bytes: an
#: EVENT fanned out to many browsers is compressed once per worker. Only messages up to _RECENT_MAX bytes.
_recent: tuple[tuple[int, int], bytes, bytes] | None = None
_RECENT_MAX = 64 * 1024
_PROBE = 64 * 1024  # the first slice of a large message, to tell whether it compresses at all
_DEFAULT: t.Any = object()


@dataclasses.dataclass(frozen=True, slots=True)
class DeflateParams:
    """What was agreed for one connection."""

    server_no_context_takeover: bool = True
    client_no_context_takeover: bool = True
    #: The LZ77 window of our compressor (bits).
    server_max_window_bits: int = 15
    #: The client's window (bits) as it offered; our decompressor takes any window.
    client_max_window_bits: int = 15

    def response(self, *, server_bits_offered: bool = False) -> str:
        """The ``Sec-WebSocket-Extensions`` response value for these parameters.

        ``client_max_window_bits`` is never limited: our decompressor takes any window.
        """
        parts = [EXTENSION]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if server_bits_offered or self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class DeflateOptions:
    """What a server offers to compress with, when a client asks (``WebSocket.accept(deflate=...)``)."""

    #: Messages shorter than this many bytes are sent uncompressed.
    threshold: int = 512
    #: zlib compression level, 1 (fastest) to 9 (smallest).
    level: int = 1


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_extensions(header: str) -> list[tuple[str, dict[str, str | None]]]:
    """Parse a ``Sec-WebSocket-Extensions`` value (several headers joined by ``,``).

    :returns: ``[(extension name, {param: value or None})]`` in offer order;
        quoted values are unquoted, names lowercased.
    :raises RemoteProtocolError: an empty extension name or a parameter given twice.
    """
    offers: list[tuple[str, dict[str, str | None]]] = []
    for item in _split(header, ","):
        if not item.strip():
            continue
        name, *raw_params = (part.strip() for part in _split(item, ";"))
        if not name:
            raise RemoteProtocolError(f"an extension offer without a name in {header!r}")
        params: dict[str, str | None] = {}
        for raw in raw_params:
            key, equals, value = raw.partition("=")
            key = key.strip().lower()
            if not key or key in params:
                raise RemoteProtocolError(f"extension parameter {key!r} empty or repeated in {header!r}")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            params[key] = value if equals else None
        offers.append((name.lower(), params))
    return offers


def _bits(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 2:
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


def _accept(params: dict[str, str | None], no_context_takeover: bool) -> tuple[DeflateParams, str] | None:
    if set(params) - set(_PARAMS):
        return None  # an unknown parameter: decline this offer
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in params and params[flag] is not None:
            return None
    server_bits = 15
    if "server_max_window_bits" in params:
        bits = _bits(params["server_max_window_bits"])
        if bits is None or bits < _MIN_BITS:
            return None
        server_bits = bits
    client_bits = 15
    if "client_max_window_bits" in params:
        value = params["client_max_window_bits"]
        if value is not None:
            bits = _bits(value)
            if bits is None:
                return None
            client_bits = bits
    agreed = DeflateParams(
        server_no_context_takeover=no_context_takeover or "server_no_context_takeover" in params,
        client_no_context_takeover=no_context_takeover or "client_no_context_takeover" in params,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )
    response = agreed.response(server_bits_offered="server_max_window_bits" in params)
    return agreed, response


def negotiate(header: str | None, *, no_context_takeover: bool = True) -> tuple[DeflateParams, str] | None:
    """Choose the first acceptable permessage-deflate offer in a client's ``Sec-WebSocket-Extensions``.

    :param no_context_takeover: put both ``no_context_takeover`` parameters in
        the response whatever the client offered (bounded memory per connection).
    :returns: the agreed parameters and the response header value, or None
        (no header, no permessage-deflate offer, or none we can accept; then
        the connection goes on uncompressed).
    """
    if not header:
        return None
    try:
        offers = parse_extensions(header)
    except RemoteProtocolError:
        return None  # a malformed header: decline every extension
    for name, params in offers:
        if name == EXTENSION:
            accepted = _accept(params, no_context_takeover)
            if accepted is not None:
                return accepted
    return None


class Deflater:
    """Compresses outgoing messages with the agreed parameters.

    :param threshold: messages shorter than this many bytes go uncompressed.

    Without context takeover each message gets a compressor of its own, with a
    window just large enough for the message (a 4 KiB message touches 16 KiB
    of window and history instead of 128 KiB).
    Up to 64 KiB, the same bytes sent again (one EVENT to many browsers) reuse
    the last output: without context takeover it is the same. A larger message
    whose first 64 KiB do not shrink by a tenth is sent uncompressed (random or
    already compressed data: deflate would cost about 17 ms per MiB for
    nothing); the rest is compressed in slices of :data:`SLICE` bytes, with
    ``pause()`` (if given) between them.
    """

    __slots__ = ("params", "threshold", "level", "_compressor")

    def __init__(self, params: DeflateParams, threshold: int = 512, level: int = 1) -> None:
        self.params = params
        self.threshold = threshold
        self.level = level
        self._compressor: t.Any = None  # kept between messages only with context takeover

    def compress(
        self, message: bytes | bytearray | memoryview, pause: t.Callable[[], None] | None = None
    ) -> tuple[bytes, bool]:
        """``(payload, compressed)``: set RSV1 on the message's first frame when ``compressed``."""
        size = len(message)
        if size < self.threshold:
            return bytes(message), False
        fresh = self.params.server_no_context_takeover
        compressor = self._compressor
        if compressor is None:
            bits = self.params.server_max_window_bits
            if fresh:
                bits = min(bits, max(_MIN_BITS, (size - 1).bit_length()))
                if size <= _RECENT_MAX:
                    return self._compress_recent(message, bits)
            compressor = zlib.compressobj(self.level, zlib.DEFLATED, -bits)
            if not fresh:
                self._compressor = compressor
        if size <= _PROBE:  # (with context takeover)
            data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        else:
            view = memoryview(message)
            parts = [compressor.compress(view[:_PROBE])]
            if fresh:
                parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))  # to see how well it compresses
                if len(parts[0]) + len(parts[1]) > _PROBE * 9 // 10:
                    return bytes(message), False
            for start in range(_PROBE, size, SLICE):
                if pause is not None:
                    pause()
                parts.append(compressor.compress(view[start : start + SLICE]))
            parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
            data = b"".join(parts)
        if data.endswith(_TAIL):
            data = data[:-4]
        return data, True

    def _compress_recent(self, message: bytes | bytearray | memoryview, bits: int) -> tuple[bytes, bool]:
        """A message on its own, or the same bytes as the last one: the same output (fan-out to many sockets)."""
        global _recent
        key = (self.level, bits)
        recent = _recent
        if recent is not None and recent[0] == key and recent[1] == message:
            return recent[2], True
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -bits)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(_TAIL):
            data = data[:-4]
        _recent = (key, bytes(message), data)
        return data, True


class Inflater:
    """Decompresses incoming compressed messages with a bound on the output.

    :param max_size: the largest decompressed message accepted (the connection's message size limit; None: none).
    """

    __slots__ = ("params", "max_size", "_decompressor")

    def __init__(self, params: DeflateParams, max_size: int | None) -> None:
        self.params = params
        self.max_size = max_size
        self._decompressor: t.Any = None  # kept between messages only with context takeover

    def decompress(self, payload: bytes, max_size: int | None = _DEFAULT) -> bytes:
        """One message's payload (all its frames joined, RSV1 set on the first) decompressed.

        ``max_size`` overrides the inflater's bound for this message (None: none).

        :raises MessageTooBig: the output would be longer than ``max_size``.
        :raises RemoteProtocolError: not valid deflate data (close code 1007).
        """
        if max_size is _DEFAULT:
            max_size = self.max_size
        if max_size is None:
            max_size = _UNBOUNDED
        decompressor = self._decompressor or zlib.decompressobj(-zlib.MAX_WBITS)
        output: list[bytes] = []
        size = 0
        data = payload + _TAIL
        try:
            while True:
                limit = min(_CHUNK, max_size - size + 1)
                chunk = decompressor.decompress(data, limit)
                size += len(chunk)
                if size > max_size:
                    raise MessageTooBig(f"a compressed message inflates to more than {max_size} bytes")
                output.append(chunk)
                data = decompressor.unconsumed_tail
                if decompressor.eof or (not data and len(chunk) < limit):
                    break
        except zlib.error as exc:
            raise RemoteProtocolError(f"invalid permessage-deflate data: {exc}", close_code=1007) from exc
        # A block with BFINAL set ends the deflate stream (RFC 7692 7.2.3.4): the next message starts a new one.
        if not self.params.client_no_context_takeover and not decompressor.eof:
            self._decompressor = decompressor
        else:
            self._decompressor = None
        return b"".join(output)
