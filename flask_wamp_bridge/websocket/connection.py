"""The gevent WebSocket object: ``environ['wsgi.websocket']`` on the server, and the client's socket.

It keeps gevent-websocket's API shape, so Flask-Sockets code keeps working::

    ws.receive()            -> str | bytes | None   (None once closed; see close_code)
    ws.send(message, binary=None)
    ws.close(code=1000, reason="")
    ws.closed, ws.environ, ws.path, ws.origin, ws.subprotocol
    for message in ws: ...

and adds what it lacked: an explicit :meth:`WebSocket.accept` (the 101 is sent only then, so the Flask view
decides Origin, cookies and subprotocol first), close codes on the wire, a message size limit, server pings,
an idle timeout, a send timeout and permessage-deflate (RFC 7692) when the client offers it.

Concurrency: any number of greenlets may :meth:`~WebSocket.send` at once (frames stay whole); one greenlet
receives. Control frames (ping, pong, close) are handled inside :meth:`~WebSocket.receive`. Real OS threads
are not supported.

The object owns the connection's state and is helped by parts that own theirs: its
:class:`~.writer.FrameWriter` sends (batched writes, a bounded queue, the send timeout) and knows whether
our close frame went out and whether the connection was dropped; its :class:`~.keepalive.Keepalive` (only
when ``ping_interval`` or ``idle_timeout`` is set) says when a ping or the idle timeout is due, and this
class acts on it; its :class:`~.readiness.ReadableWatch` serves :meth:`WebSocket.receive_nowait`. Framing is
done by the sans-IO :mod:`.frames`, the opening handshake by :mod:`.handshake`; these modules only move bytes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import typing as t

import gevent
from gevent.event import Event

from ..errors import ConfigError
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from . import frames as _frames
from . import live as _live
from . import socket_errors
from .deflate import DeflateOptions
from .deflate import DeflateParams
from .deflate import Deflater
from .deflate import Inflater
from .deflate import negotiate
from .handshake import parse_header_tokens
from .keepalive import IDLE
from .keepalive import PING
from .keepalive import Keepalive
from .readiness import ReadableWatch
from .slices import Slice
from .writer import CLOSE_TIMEOUT
from .writer import FrameWriter

__all__ = [
    "WebSocket",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "WOULD_BLOCK",
]

log = logging.getLogger(__name__)

#: Default largest message a WebSocket accepts (payload bytes).
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

_RECV_SIZE = 1 << 16
_CONNECTING, _OPEN, _CLOSED = "connecting", "open", "closed"

_UNSET: t.Any = object()

#: What :meth:`WebSocket.receive_nowait` returns when nothing can be read yet.
WOULD_BLOCK: t.Any = type("WouldBlock", (), {"__repr__": lambda self: "WOULD_BLOCK", "__slots__": ()})()

_RELEASED = Event()  # shared by every released socket: waiting for it returns at once
_RELEASED.set()

_NO_EVENTS: list[_frames.Event] = []  # shared while nothing is pending: never appended to


def _check_option(name: str, value: t.Any, *, integer: bool = False) -> None:
    if value is None:
        return
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or t.cast(float, value) <= 0:
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ConfigError(f"WebSocket option {name} must be {kind} or None, got {value!r}")


class WebSocket:
    """One WebSocket connection, server side or client side.

    Server-side sockets are created by the worker's handler (unaccepted) and
    reach the app as ``environ['wsgi.websocket']``; client-side sockets come
    from :func:`flask_wamp_bridge.websocket.client.connect`. Do not construct it
    directly.
    """

    # Slots: thousands of idle connections per worker; an instance dict costs ~1.5 KiB each.
    __slots__ = (
        "__weakref__", "on_server_shutdown", "role", "environ", "subprotocol", "path", "origin",
        "offered_subprotocols", "close_code", "close_reason", "_sock", "_read", "_buffered", "_release_read",
        "_accept_handler",
        "_state", "_opened", "_parser", "_events", "_initial", "_writer", "_keepalive",
        "_reading", "_watch", "_closed_event",
    )

    def __init__(
        self,
        sock: t.Any,
        *,
        role: t.Literal["server", "client"],
        read: t.Callable[[int], bytes] | None = None,
        release_read: t.Callable[[], None] | None = None,
        initial: bytes = b"",
        environ: dict[str, t.Any] | None = None,
        accept_handler: t.Callable[[str | None, t.Sequence[tuple[str, str]]], None] | None = None,
        subprotocol: str | None = None,
        path: str | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        #: When set, the worker calls ``on_server_shutdown(close_code)`` on shutdown (1001) or reload (1012)
        #: instead of ``close(close_code)``; it must close the socket itself, soon (a WAMP relay says GOODBYE first).
        self.on_server_shutdown: t.Callable[[int], None] | None = None
        self._sock = sock
        self.role = role
        self._read = read if read is not None else sock.recv
        # A buffered reader (the worker's rfile) is read once, for what it may hold already; then the socket
        # directly: a greenlet blocked in the buffered reader keeps about 9 KiB more of C stack per idle connection.
        self._buffered = read is not None and hasattr(sock, "settimeout")
        # Called once the buffered reader was read: its owner may free it (the worker's rfile holds 8 KiB).
        self._release_read = release_read
        #: The WSGI environ of the upgrade request (server side), else None.
        self.environ = environ
        #: The subprotocol in effect (``Sec-WebSocket-Protocol``), or None.
        self.subprotocol = subprotocol
        env = environ or {}
        #: The request path (server side) or the URL path (client side).
        self.path: str | None = path if path is not None else env.get("PATH_INFO")
        #: The ``Origin`` header of the upgrade request, if any.
        self.origin: str | None = env.get("HTTP_ORIGIN")
        #: Subprotocols the client offered, in its order of preference (server side).
        self.offered_subprotocols: list[str] = parse_header_tokens(env.get("HTTP_SEC_WEBSOCKET_PROTOCOL"))
        #: Close code that ended the connection (None while open). The peer's code when it closed first (1005: its
        #: close frame had none), ours when we did, 1006 when the connection dropped without a close frame.
        self.close_code: int | None = None
        #: Close reason that goes with :attr:`close_code`.
        self.close_reason: str = ""
        self._accept_handler = accept_handler
        self._state = _CONNECTING if accept_handler is not None else _OPEN
        self._opened = accept_handler is None
        self._parser = _frames.FrameParser("server" if role == "server" else "client", max_message_size)
        # Events parsed but not handled yet, last first (popped); the parser is fed once they are all handled.
        self._events = _NO_EVENTS
        self._initial = initial
        self._writer = FrameWriter(sock, mask=role == "client", on_lost=self.abort)
        self._keepalive: Keepalive | None = None  # made when ping_interval or idle_timeout is set
        self._reading = False  # a greenlet is in receive() (one reader at a time)
        self._watch: ReadableWatch | None = None  # made by the first receive_nowait() or notify_readable()
        self._closed_event: Event | None = None  # made by the first wait for the release; _RELEASED after it

    # --- properties -------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """Whether the handshake completed (the 101 was sent, or received by the client)."""
        return self._opened

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection dropped."""
        return self._state == _CLOSED or self._writer.close_sent

    @property
    def ping_interval(self) -> float | None:
        """Seconds of quiet after which a ping is sent while a greenlet waits in :meth:`receive`."""
        return self._keepalive.ping_interval if self._keepalive is not None else None

    @property
    def idle_timeout(self) -> float | None:
        """Seconds with nothing received after which :meth:`receive` closes the connection (1011)."""
        return self._keepalive.idle_timeout if self._keepalive is not None else None

    @property
    def send_timeout(self) -> float | None:
        """Seconds a send may make no progress before the connection is dropped."""
        return self._writer.timeout

    @property
    def max_message_size(self) -> int | None:
        """Largest message accepted (payload bytes); a bigger one closes with 1009."""
        return self._parser.max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int | None) -> None:
        _check_option("max_message_size", value, integer=True)
        self._parser.max_message_size = value

    @property
    def deflate(self) -> DeflateParams | None:
        """The permessage-deflate parameters agreed in the handshake, or None (messages go uncompressed)."""
        deflater = self._writer.deflater
        return deflater.params if deflater is not None else None

    @property
    def local_address(self) -> t.Any:
        """This end's socket address (``getsockname()``), or None when unknown."""
        with contextlib.suppress(AttributeError):
            return socket_errors.attempt(self._sock.getsockname)
        return None

    def __repr__(self) -> str:
        return f"<WebSocket {self.role} {self.path!r} {self._state} code={self.close_code}>"

    # --- handshake ----------------------------------------------------------------

    def accept(
        self,
        subprotocol: str | None = None,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        ping_interval: float | None = None,
        idle_timeout: float | None = None,
        send_timeout: float | None = None,
        headers: t.Sequence[tuple[str, str]] = (),
        deflate: DeflateOptions | None = None,
    ) -> None:
        """Complete the handshake: send ``101 Switching Protocols``.

        :param subprotocol: one of :attr:`offered_subprotocols`, echoed in
            ``Sec-WebSocket-Protocol``; None selects none.
        :param max_message_size: largest message accepted (payload bytes), None for no limit.
        :param ping_interval: send a ping after this many quiet seconds while the
            app waits in :meth:`receive`.
        :param idle_timeout: close (1011) when nothing at all, not even a pong,
            arrived for this many seconds while the app waits in :meth:`receive`.
        :param send_timeout: a send that cannot complete in this many seconds
            (the peer stopped reading) closes the connection and raises
            :class:`~flask_wamp_bridge.errors.ConnectionClosed`.
        :param headers: extra response headers for the 101.
        :param deflate: agree to permessage-deflate if the client offers it
            (both ``no_context_takeover`` parameters: no zlib state between
            messages); messages from ``deflate.threshold`` bytes up are then
            compressed. None: never.
        """
        if self._accept_handler is None:
            raise LocalProtocolError("only a server-side WebSocket can be accepted")
        if self._state != _CONNECTING:
            raise LocalProtocolError("this WebSocket was already accepted or closed")
        if subprotocol is not None and subprotocol not in self.offered_subprotocols:
            offered = ", ".join(self.offered_subprotocols) or "none"
            raise LocalProtocolError(
                f"subprotocol {subprotocol!r} was not offered by the client (offered: {offered}); "
                "accept one of the offered subprotocols or None"
            )
        self.configure(max_message_size=max_message_size, ping_interval=ping_interval, idle_timeout=idle_timeout,
                       send_timeout=send_timeout)
        if deflate is not None:
            headers = self._negotiate_deflate(deflate, headers)
        try:
            self._accept_handler(subprotocol, headers)
        except OSError as exc:
            self._state = _CLOSED
            self._writer.drop()
            self.close_code = socket_errors.LOST_CODE
            self._set_released()
            lost = socket_errors.lost(exc, "the client went away during the WebSocket handshake")
            raise self._how_closed(lost) from exc
        self.subprotocol = subprotocol
        self._state = _OPEN
        self._opened = True
        if self._keepalive is not None:
            self._keepalive.restart()
        _live.track(self)

    def _negotiate_deflate(
        self, deflate: DeflateOptions, headers: t.Sequence[tuple[str, str]]
    ) -> t.Sequence[tuple[str, str]]:
        """Agree to the client's permessage-deflate offer, if any: the 101's headers with our answer."""
        if any(name.lower() == "sec-websocket-extensions" for name, _ in headers):
            raise LocalProtocolError("Sec-WebSocket-Extensions is the server's to answer: pass deflate=None")
        agreed = negotiate((self.environ or {}).get("HTTP_SEC_WEBSOCKET_EXTENSIONS"))
        if agreed is None:
            return headers
        params, response = agreed
        self._parser.inflater = Inflater(params, self._parser.max_message_size)
        self._writer.deflater = Deflater(params, deflate.threshold, deflate.level)
        return [*headers, ("Sec-WebSocket-Extensions", response)]

    def configure(
        self,
        *,
        max_message_size: t.Any = _UNSET,
        ping_interval: t.Any = _UNSET,
        idle_timeout: t.Any = _UNSET,
        send_timeout: t.Any = _UNSET,
    ) -> None:
        """Change the options :meth:`accept` takes, on an open socket too; omitted ones stay."""
        options = {"ping_interval": ping_interval, "idle_timeout": idle_timeout, "send_timeout": send_timeout}
        for name, value in {"max_message_size": max_message_size, **options}.items():
            if value is not _UNSET:
                _check_option(name, value, integer=name == "max_message_size")
        if max_message_size is not _UNSET:
            self._parser.max_message_size = max_message_size
        if send_timeout is not _UNSET:
            self._writer.timeout = send_timeout
        if (ping_interval is not _UNSET and ping_interval) or (idle_timeout is not _UNSET and idle_timeout):
            if self._keepalive is None:
                self._keepalive = Keepalive()
        keepalive = self._keepalive
        if keepalive is not None:
            if ping_interval is not _UNSET:
                keepalive.ping_interval = ping_interval
            if idle_timeout is not _UNSET:
                keepalive.idle_timeout = idle_timeout

    # --- receiving ------------------------------------------------------------------

    def receive(self) -> str | bytes | None:
        """The next message: ``str`` (text) or ``bytes`` (binary); None once the connection is closed.

        Accepts the connection first (no subprotocol) if the app has not.
        Answers pings and the peer's close frame; a protocol violation by the
        peer closes the connection with the matching code (1002, 1007, 1009).
        """
        if self._state == _CONNECTING:
            self.accept()
        work = self._claim_reader()
        try:
            while self._state != _CLOSED:
                if (message := self._step()) is not None:
                    return message
                work.pause_if_due()
            return None
        finally:
            self._reading = False

    def _claim_reader(self) -> Slice:
        """Mark this greenlet as the one receiving (the caller clears ``_reading`` in a ``finally``)."""
        if self._reading:
            raise LocalProtocolError("receive() is already waiting in another greenlet; only one greenlet may receive")
        self._reading = True
        return Slice()  # a large message or a flood arriving fast is handled in slices

    def __iter__(self) -> t.Iterator[str | bytes]:
        return self

    def __next__(self) -> str | bytes:
        if (message := self.receive()) is None:
            raise StopIteration
        return message

    def _step(self) -> str | bytes | None:
        """Handle one pending event, or read more bytes. Returns a message or None."""
        if self._events:
            event = self._events.pop()
            kind = type(event)
            if kind is _frames.Message:
                if self._writer.close_sent:
                    return None  # data after our close frame is ignored (RFC 6455 5.5.1)
                return event.data  # type: ignore[union-attr]
            if kind is _frames.Ping and not self._writer.close_sent:
                with contextlib.suppress(ConnectionClosed):
                    self._writer.send_frame(_frames.OP_PONG, event.payload)  # type: ignore[union-attr]
            elif kind is _frames.Close:
                self._on_close_frame(event)  # type: ignore[arg-type]
            elif kind is _frames.Failure:
                self._on_failure(event)  # type: ignore[arg-type]
            return None
        if self._initial:
            data, self._initial = self._initial, b""
        elif self._buffered and (data := self._read_buffered()):
            pass
        else:
            keepalive = self._keepalive
            data = self._recv_kept_alive(keepalive) if keepalive is not None and keepalive.active else self._recv()
            if not data:
                self._lost()
                return None
        self._feed(data)
        return None

    def _recv_kept_alive(self, keepalive: Keepalive) -> bytes:
        """``_recv()``, sending pings and enforcing the idle timeout meanwhile; ``b""`` when the connection ended."""
        while self._state != _CLOSED:
            now = time.monotonic()
            due = keepalive.due(now, ping=not self._writer.close_sent)
            if due == IDLE:
                self._close_now(1011, f"idle timeout: nothing received for {keepalive.idle_timeout:g} s")
                return b""
            if due == PING:
                try:
                    self._writer.send_frame(_frames.OP_PING, keepalive.pinged(now))
                except ConnectionClosed:
                    return b""
                continue
            if due is None:  # pragma: no cover - only ping_interval set while closing
                return self._recv()
            data = keepalive.wait(self._recv, now + due)
            if data is not None:
                return data
        return b""

    def _feed(self, data: bytes) -> None:
        """Parse received bytes (only once every earlier event was handled)."""
        events = self._parser.feed(data)
        if events:
            events.reverse()
            self._events = events

    def receive_nowait(self) -> t.Any:
        """Like :meth:`receive`, but :data:`WOULD_BLOCK` instead of waiting for the network.

        For an accepted (or client) socket. No keepalive pings or idle timeout
        here: those belong to :meth:`receive`. Use it with :meth:`notify_readable`
        to read a socket without keeping a greenlet blocked on it.
        """
        if self._state == _CONNECTING:
            raise LocalProtocolError("accept() the WebSocket before receive_nowait()")
        work = self._claim_reader()
        try:
            while self._state != _CLOSED:
                work.pause_if_due()
                if not self._events and not self._initial:
                    data = self._read_buffered() if self._buffered else self._readable().read(
                        self._sock, self._read, _RECV_SIZE, buffered=self._writer.tls)
                    if data is None:
                        return WOULD_BLOCK
                    if not data:
                        self._lost()
                        return None
                    self._feed(data)
                    continue
                message = self._step()
                if message is not None:
                    return message
            return None
        finally:
            self._reading = False

    def _readable(self) -> ReadableWatch:
        watch = self._watch
        if watch is None:
            watch = self._watch = ReadableWatch(self._sock.fileno())
        return watch

    def notify_readable(self, callback: t.Callable[[], None]) -> None:
        """Call ``callback()`` once, from the hub (it must not block), when there is something to read.

        Also called when the connection is released (it was closed or dropped):
        :meth:`receive_nowait` then returns None.
        """
        loop = gevent.get_hub().loop
        if self._state == _CLOSED:
            loop.run_callback(callback)
            return
        if self._events or self._initial or self._buffered:
            loop.run_callback(callback)  # already buffered: the socket may never signal
            return
        self._readable().arm(callback)

    def _read_buffered(self) -> bytes:
        """What the buffered reader holds (without blocking); from then on read the socket."""
        self._buffered = False
        sock = self._sock
        previous = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            data = socket_errors.read_nowait(self._read, _RECV_SIZE)
        finally:
            sock.settimeout(previous)
        self._read = sock.recv
        release, self._release_read = self._release_read, None
        if release is not None:
            release()
        return data or b""

    def _recv(self) -> bytes:
        return socket_errors.read_or_eof(self._read, _RECV_SIZE)

    # --- closing -----------------------------------------------------------------------

    def _say_close(self, code: int, reason: str, wire: tuple[int, str] | None = None) -> None:
        """Record why the connection ends and send our close frame (``wire``: another code), unless sent already."""
        if not self._writer.close_sent:
            self.close_code, self.close_reason = code, reason
            self._writer.send_close(*(wire or (code, reason)))  # no data frame may follow it

    def _on_close_frame(self, event: _frames.Close) -> None:
        # the peer closes first: echo its code (1000 for an empty close frame)
        code = event.code
        self._say_close(1005 if code is None else code, event.reason, (1000 if code is None else code, ""))
        self._terminate(drain=True)

    def _on_failure(self, event: _frames.Failure) -> None:
        log.debug("closing %r: %s", self, event.reason)
        self._say_close(event.code, event.reason)
        self._terminate(drain=True)

    def _lost(self) -> None:
        if self.close_code is None:
            self.close_code = 1006
            self.close_reason = "connection lost"
        self._terminate(drain=False)

    def _close_now(self, code: int, reason: str) -> None:
        """Send a close frame and drop the connection without waiting for the peer."""
        self._say_close(code, reason)
        self._terminate(drain=False)

    def _terminate(self, *, drain: bool) -> None:
        """End the TCP connection: half-close, optionally read until the peer's FIN, then shut down."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._writer.drop()
        try:
            if socket_errors.failed(self._sock.shutdown, socket.SHUT_WR):
                drain = False
            if drain:
                # Reading until EOF avoids a reset that could destroy our close frame in flight.
                with gevent.Timeout(CLOSE_TIMEOUT, False):
                    while self._recv():
                        pass
        finally:
            self._release()

    def abort(self, code: int = 1006, reason: str = "") -> None:
        """Drop the connection at once, with no close frame; a greenlet blocked in :meth:`receive` wakes.

        ``code`` and ``reason`` become :attr:`close_code` and :attr:`close_reason`
        unless the connection ended already. Idempotent.
        """
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._writer.drop()
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._release()

    def _release(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.release()
        socket_errors.failed(self._sock.shutdown, socket.SHUT_RDWR)
        if self.role == "client":
            socket_errors.failed(self._sock.close)
        _live.untrack(self)
        if self._keepalive is not None:
            self._keepalive.stop()
        self._set_released()
        self._writer.drop()  # frames not written yet are lost; waiting senders see the closed state

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Close the connection with ``code`` on the wire; wait (briefly) for the peer's close frame.

        Idempotent. ``reason`` is truncated to fit a close frame (123 bytes of
        UTF-8). ``timeout`` (default :data:`CLOSE_TIMEOUT`) bounds the wait
        for the peer, after which the connection is dropped. On a socket that
        was never accepted nothing is sent (there was no 101).
        """
        if self._state == _CONNECTING:
            self._state = _CLOSED
            self.close_code, self.close_reason = code, reason
            self._writer.drop()
            self._set_released()
            return
        if self._state == _CLOSED:
            return
        self._say_close(code, reason)
        wait = CLOSE_TIMEOUT if timeout is None else timeout
        if not self._reading:
            # nobody is receiving: read the peer's close frame ourselves
            self._reading = True
            try:
                with gevent.Timeout(wait, False):
                    while self._state != _CLOSED:
                        self._step()
            finally:
                self._reading = False
        else:
            # a greenlet is in receive(): it will see the peer's close frame
            self._wait_released(wait)
        if self._state != _CLOSED:
            self.abort(code, reason)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed; False if ``timeout`` passed first."""
        return self._wait_released(timeout)

    def _wait_released(self, timeout: float | None) -> bool:
        event = self._closed_event
        if event is None:
            event = self._closed_event = Event()
        return bool(event.wait(timeout))

    def _set_released(self) -> None:
        event, self._closed_event = self._closed_event, _RELEASED
        if event is not None:
            event.set()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self.close()

    # --- sending ---------------------------------------------------------------------------

    def send(self, message: str | bytes | bytearray | memoryview, binary: bool | None = None) -> None:
        """Send one message: ``str`` as a text frame, bytes as a binary frame.

        ``binary=True`` sends a ``str`` as binary; ``binary=False`` sends bytes
        as text (the caller guarantees they are UTF-8). Safe to call from many
        greenlets at once. Accepts the connection first if the app has not.

        :raises ConnectionClosed: the connection is closed, or the send timed out.
        """
        if self._state == _CONNECTING:
            self.accept()
        try:
            self._writer.send_message(message, binary)
        except ConnectionClosed as exc:
            self._how_closed(exc)
            raise

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (the pong is consumed inside :meth:`receive`)."""
        try:
            self._writer.send_frame(_frames.OP_PING, payload)
        except ConnectionClosed as exc:
            self._how_closed(exc)
            raise

    def _how_closed(self, exc: ConnectionClosed) -> ConnectionClosed:
        """The writer's error, with this connection's close code and reason."""
        exc.code, exc.reason = self.close_code, self.close_reason
        return exc

    # --- used by the worker's handler -------------------------------------------------------

    def finish_server_session(self) -> None:
        """Called by the worker after the app returned: close with 1000 if still open, release everything."""
        if self._state == _OPEN:
            self.close(1000)
        if self._state != _CLOSED:
            self.abort(1006, "handler finished")

