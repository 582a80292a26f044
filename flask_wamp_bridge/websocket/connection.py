"""The gevent WebSocket object: ``environ['wsgi.websocket']`` on the server, and the client's socket.

It keeps gevent-websocket's API shape, so Flask-Sockets code keeps working::

    ws.receive()            -> str | bytes | None   (None once closed; see close_code)
    ws.send(message, binary=None)
    ws.close(code=1000, reason="")
    ws.closed, ws.environ, ws.path, ws.origin, ws.subprotocol
    for message in ws: ...

and adds what it lacked: an explicit :meth:`WebSocket.accept` (the 101 is sent
only then, so the Flask view decides Origin, cookies and subprotocol first),
close codes on the wire, a message size limit, server pings, an idle timeout
and a send timeout.

Concurrency: any number of greenlets may :meth:`~WebSocket.send` at once
(frames stay whole); one greenlet receives. Control frames (ping, pong, close)
are handled inside :meth:`~WebSocket.receive`. Real OS threads are not
supported.

Writes are batched: the first frame of a burst goes to the kernel at once;
frames sent before the sending greenlet yields to the hub (a relay forwarding
several messages from one read, many greenlets answering at once) are joined
and written with one system call when it does. Frames the kernel cannot take
yet wait in a queue bounded by :data:`MAX_QUEUED` bytes, written by one writer
greenlet; beyond the bound ``send()`` blocks, and a write that makes no progress
for ``send_timeout`` seconds drops the connection (later sends raise
:class:`~flask_wamp_bridge.errors.ConnectionClosed`, ``receive()`` returns None).
:meth:`~WebSocket.close` writes everything queued before its close frame.

Framing is done by the sans-IO :mod:`._frames`; this module only moves bytes.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import ssl
import time
import typing as t
import weakref

import gevent
from gevent.event import Event

from ..errors import ConfigError
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from . import frames as _frames

__all__ = [
    "WebSocket",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CLOSE_TIMEOUT",
    "MAX_QUEUED",
    "WOULD_BLOCK",
    "live_sockets",
    "shutdown_all",
]

log = logging.getLogger(__name__)

#: Default largest message a WebSocket accepts (payload bytes).
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: Seconds to wait for the peer's close frame (and TCP close) after ours.
CLOSE_TIMEOUT = 2.0

#: Bytes of outgoing frames that may wait for the kernel (a slow peer); beyond
#: it :meth:`WebSocket.send` blocks, up to the send timeout.
MAX_QUEUED = 256 * 1024

_RECV_SIZE = 1 << 16
_CONNECTING, _OPEN, _CLOSED = "connecting", "open", "closed"

_registry: weakref.WeakSet[WebSocket] = weakref.WeakSet()
_UNSET: t.Any = object()


#: What :meth:`WebSocket.receive_nowait` returns when nothing can be read yet.
WOULD_BLOCK: t.Any = type("WouldBlock", (), {"__repr__": lambda self: "WOULD_BLOCK", "__slots__": ()})()

_keys: list[bytes] = []


class _Wake(BaseException):
    """Thrown by the keepalive timer into a greenlet blocked reading: a deadline is due."""


def _mask_key() -> bytes:
    """A fresh masking key: 4 bytes of ``os.urandom``, fetched 4 KiB at a time (one system call per 1,024 frames)."""
    if not _keys:
        pool = os.urandom(4096)
        _keys.extend(pool[i : i + 4] for i in range(0, 4096, 4))
    return _keys.pop()


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
        "offered_subprotocols", "close_code", "close_reason", "ping_interval", "idle_timeout", "send_timeout",
        "_sock", "_read", "_buffered", "_mask", "_accept_handler", "_state", "_opened", "_parser", "_events",
        "_initial", "_close_sent", "_out", "_out_size", "_writer", "_burst", "_drained", "_hub_loop",
        "_send_nb", "_reading", "_rwatch", "_rcallback", "_unread", "_closed_event", "_last_recv", "_last_ping",
        "_ka_timer", "_ka_at", "_receiver",
    )

    def __init__(
        self,
        sock: t.Any,
        *,
        role: t.Literal["server", "client"],
        read: t.Callable[[int], bytes] | None = None,
        initial: bytes = b"",
        environ: dict[str, t.Any] | None = None,
        accept_handler: t.Callable[[str | None, t.Sequence[tuple[str, str]]], None] | None = None,
        subprotocol: str | None = None,
        path: str | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        #: When set, the worker calls ``on_server_shutdown(close_code)`` on shutdown
        #: (1001) or reload (1012) instead of ``close(close_code)``; it must close the
        #: socket itself, soon (a WAMP relay sends GOODBYE first).
        self.on_server_shutdown: t.Callable[[int], None] | None = None
        self._sock = sock
        self.role = role
        self._read = read if read is not None else sock.recv
        # A buffered reader (the worker's rfile) is read once, for what it may hold
        # already; then the socket directly: a greenlet blocked in the buffered
        # reader keeps about 9 KiB more of C stack per idle connection.
        self._buffered = read is not None and hasattr(sock, "settimeout")
        self._mask = role == "client"
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
        self.offered_subprotocols: list[str] = _frames.parse_header_tokens(env.get("HTTP_SEC_WEBSOCKET_PROTOCOL"))
        #: Close code that ended the connection (None while open). The peer's code when it
        #: closed first (1005: its close frame had none), ours when we did, 1006 when the
        #: connection dropped without a close frame.
        self.close_code: int | None = None
        #: Close reason that goes with :attr:`close_code`.
        self.close_reason: str = ""
        self.ping_interval: float | None = None
        self.idle_timeout: float | None = None
        self.send_timeout: float | None = None
        self._accept_handler = accept_handler
        self._state = _CONNECTING if accept_handler is not None else _OPEN
        self._opened = accept_handler is None
        self._parser = _frames.FrameParser("server" if role == "server" else "client", max_message_size)
        self._events: collections.deque[_frames.Event] = collections.deque()
        self._initial = initial
        self._close_sent = False
        # Outgoing frames not yet handed to the kernel (see _send_frame), their size in
        # bytes (with what the writer holds), and the greenlet writing them, if any.
        self._out: list[bytes] = []
        self._out_size = 0
        self._writer: t.Any = None
        self._burst = False
        self._drained: Event | None = None  # made when a sender first has to wait
        self._hub_loop: t.Any = None
        self._send_nb = None if hasattr(sock, "_sslobj") else getattr(sock, "send", None)
        self._reading = False  # a greenlet is in receive() (one reader at a time)
        self._rwatch: t.Any = None  # notify_readable's watcher and callback
        self._rcallback: t.Callable[[], None] | None = None
        self._unread = True  # receive_nowait: the socket may hold more than was read
        self._closed_event = Event()
        self._last_recv = self._last_ping = time.monotonic()
        self._ka_timer: t.Any = None  # keepalive timer (see _read_keepalive) and when it fires
        self._ka_at: float | None = None
        self._receiver: t.Any = None  # the greenlet waiting in a keepalive read

    # --- properties -------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """Whether the handshake completed (the 101 was sent, or received by the client)."""
        return self._opened

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection dropped."""
        return self._state == _CLOSED or self._close_sent

    @property
    def max_message_size(self) -> int | None:
        """Largest message accepted (payload bytes); a bigger one closes with 1009."""
        return self._parser.max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int | None) -> None:
        _check_option("max_message_size", value, integer=True)
        self._parser.max_message_size = value

    @property
    def local_address(self) -> t.Any:
        """This end's socket address (``getsockname()``), or None when unknown."""
        try:
            return self._sock.getsockname()
        except (OSError, AttributeError):
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
        self.configure(
            max_message_size=max_message_size,
            ping_interval=ping_interval,
            idle_timeout=idle_timeout,
            send_timeout=send_timeout,
        )
        try:
            self._accept_handler(subprotocol, headers)
        except OSError as exc:
            self._state = _CLOSED
            self.close_code = 1006
            self._closed_event.set()
            raise ConnectionClosed("the client went away during the WebSocket handshake", 1006) from exc
        self.subprotocol = subprotocol
        self._state = _OPEN
        self._opened = True
        self._last_recv = self._last_ping = time.monotonic()
        _registry.add(self)

    def configure(
        self,
        *,
        max_message_size: t.Any = _UNSET,
        ping_interval: t.Any = _UNSET,
        idle_timeout: t.Any = _UNSET,
        send_timeout: t.Any = _UNSET,
    ) -> None:
        """Change the options :meth:`accept` takes, on an open socket too; omitted ones stay."""
        if max_message_size is not _UNSET:
            _check_option("max_message_size", max_message_size, integer=True)
        for name, value in (
            ("ping_interval", ping_interval),
            ("idle_timeout", idle_timeout),
            ("send_timeout", send_timeout),
        ):
            if value is not _UNSET:
                _check_option(name, value)
        if max_message_size is not _UNSET:
            self._parser.max_message_size = max_message_size
        if ping_interval is not _UNSET:
            self.ping_interval = ping_interval
        if idle_timeout is not _UNSET:
            self.idle_timeout = idle_timeout
        if send_timeout is not _UNSET:
            self.send_timeout = send_timeout

    # --- receiving ------------------------------------------------------------------

    def receive(self) -> str | bytes | None:
        """The next message: ``str`` (text) or ``bytes`` (binary); None once the connection is closed.

        Accepts the connection first (no subprotocol) if the app has not.
        Answers pings and the peer's close frame; a protocol violation by the
        peer closes the connection with the matching code (1002, 1007, 1009).
        """
        if self._state == _CONNECTING:
            self.accept()
        self._claim_reader()
        try:
            while self._state != _CLOSED:
                message = self._step()
                if message is not None:
                    return message
            return None
        finally:
            self._reading = False

    def _claim_reader(self) -> None:
        """Mark this greenlet as the one receiving; the caller clears ``_reading`` in a ``finally``."""
        if self._reading:
            raise LocalProtocolError(
                "receive() is already waiting in another greenlet; only one greenlet may receive"
            )
        self._reading = True

    def __iter__(self) -> t.Iterator[str | bytes]:
        return self

    def __next__(self) -> str | bytes:
        message = self.receive()
        if message is None:
            raise StopIteration
        return message

    def _step(self) -> str | bytes | None:
        """Handle one pending event, or read more bytes. Returns a message or None."""
        if self._events:
            event = self._events.popleft()
            kind = type(event)
            if kind is _frames.Message:
                if self._close_sent:
                    return None  # data after our close frame is ignored (RFC 6455 5.5.1)
                return event.data  # type: ignore[union-attr]
            if kind is _frames.Ping:
                if not self._close_sent:
                    try:
                        self._send_frame(_frames.OP_PONG, event.payload)  # type: ignore[union-attr]
                    except ConnectionClosed:
                        pass
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
            data = self._read_keepalive() if (self.ping_interval or self.idle_timeout) else self._recv()
            if not data:
                self._lost()
                return None
        self._events.extend(self._parser.feed(data))
        return None

    def receive_nowait(self) -> t.Any:
        """Like :meth:`receive`, but :data:`WOULD_BLOCK` instead of waiting for the network.

        For an accepted (or client) socket. No keepalive pings or idle timeout
        here: those belong to :meth:`receive`. Use it with :meth:`notify_readable`
        to read a socket without keeping a greenlet blocked on it.
        """
        if self._state == _CONNECTING:
            raise LocalProtocolError("accept() the WebSocket before receive_nowait()")
        self._claim_reader()
        try:
            while self._state != _CLOSED:
                if not self._events and not self._initial:
                    if not self._unread:
                        return WOULD_BLOCK  # the last read emptied the socket: wait for the watcher
                    data = self._read_buffered() if self._buffered else self._recv_nb()
                    if data is None:
                        return WOULD_BLOCK
                    if not data:
                        self._lost()
                        return None
                    self._events.extend(self._parser.feed(data))
                    continue
                message = self._step()
                if message is not None:
                    return message
            return None
        finally:
            self._reading = False

    def _recv_nb(self) -> bytes | None:
        sock = self._sock
        previous = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            data = t.cast(bytes, self._read(_RECV_SIZE))
        except (BlockingIOError, ssl.SSLWantReadError):
            self._unread = False
            return None
        except OSError:
            return b""
        finally:
            sock.settimeout(previous)
        # a short read emptied the kernel buffer (TLS may still hold decrypted bytes)
        self._unread = len(data) >= _RECV_SIZE or self._send_nb is None
        return data

    def notify_readable(self, callback: t.Callable[[], None]) -> None:
        """Call ``callback()`` once, from the hub (it must not block), when there is something to read.

        Also called when the connection is released (it was closed or dropped):
        :meth:`receive_nowait` then returns None.
        """
        if self._state == _CLOSED:
            self._loop().run_callback(callback)
            return
        if self._events or self._initial or self._buffered:
            self._loop().run_callback(callback)  # already buffered: the socket may never signal
            return
        watcher = self._rwatch
        if watcher is None:
            watcher = self._rwatch = self._loop().io(self._sock.fileno(), 1)
        self._rcallback = callback
        watcher.start(self._on_readable)

    def _on_readable(self) -> None:
        self._unread = True
        watcher = self._rwatch
        if watcher is not None:
            watcher.stop()
        callback, self._rcallback = self._rcallback, None
        if callback is not None:
            callback()

    def _read_buffered(self) -> bytes:
        """What the buffered reader holds (without blocking); from then on read the socket."""
        self._buffered = False
        sock = self._sock
        try:
            previous = sock.gettimeout()
            sock.settimeout(0.0)
            try:
                data = self._read(_RECV_SIZE)
            finally:
                sock.settimeout(previous)
        except OSError:
            data = b""
        self._read = sock.recv
        return data or b""

    def _recv(self) -> bytes:
        try:
            return self._read(_RECV_SIZE)
        except OSError:
            return b""

    def _read_keepalive(self) -> bytes:
        while self._state != _CLOSED:
            now = time.monotonic()
            wait = None
            if self.idle_timeout:
                idle_at = self._last_recv + self.idle_timeout
                if now >= idle_at:
                    self._close_now(1011, f"idle timeout: nothing received for {self.idle_timeout:g} s")
                    return b""
                wait = idle_at - now
            if self.ping_interval and not self._close_sent:
                ping_at = max(self._last_recv, self._last_ping) + self.ping_interval
                if now >= ping_at:
                    self._last_ping = now
                    try:
                        self._send_frame(_frames.OP_PING, b"%d" % int(now * 1000))
                    except ConnectionClosed:
                        return b""
                    continue
                wait = ping_at - now if wait is None else min(wait, ping_at - now)
            if wait is None:  # pragma: no cover - only ping_interval set while closing
                return self._recv()
            self._arm_keepalive(now + wait)
            self._receiver = gevent.getcurrent()
            try:
                data = self._recv()
            except _Wake:
                continue
            finally:
                self._receiver = None
            self._last_recv = time.monotonic()
            return data
        return b""

    # One timer per socket, not one per receive: it is re-armed only when it
    # fires before the (moving) deadline, i.e. at most once per ping interval.
    def _arm_keepalive(self, at: float) -> None:
        armed = self._ka_at
        if armed is not None and armed <= at:
            return  # fires early enough; _keepalive_fired looks again then
        timer = self._ka_timer
        if timer is not None:
            timer.close()
        self._ka_at = at
        self._ka_timer = timer = self._loop().timer(max(0.0, at - time.monotonic()), ref=False)
        timer.start(self._keepalive_fired)

    def _keepalive_fired(self) -> None:
        """Hub callback: wake the receiving greenlet if a ping or the idle timeout is due."""
        self._ka_at = None
        receiver = self._receiver
        if receiver is None or self._state == _CLOSED:
            return  # nobody waits in receive(): the next receive() re-arms
        now = time.monotonic()
        due = None
        if self.idle_timeout:
            due = self._last_recv + self.idle_timeout
        if self.ping_interval and not self._close_sent:
            ping_at = max(self._last_recv, self._last_ping) + self.ping_interval
            due = ping_at if due is None else min(due, ping_at)
        if due is None:
            return
        if now >= due - 0.001:
            receiver.throw(_Wake)
        else:
            self._arm_keepalive(due)

    # --- closing -----------------------------------------------------------------------

    def _on_close_frame(self, event: _frames.Close) -> None:
        if not self._close_sent:
            # the peer closes first: echo its code (1000 for an empty close frame)
            self.close_code = event.code if event.code is not None else 1005
            self.close_reason = event.reason
            self._send_close(event.code if event.code is not None else 1000, "")
        self._terminate(drain=True)

    def _on_failure(self, event: _frames.Failure) -> None:
        log.debug("closing %r: %s", self, event.reason)
        if not self._close_sent:
            self.close_code = event.code
            self.close_reason = event.reason
            self._send_close(event.code, event.reason)
        self._terminate(drain=True)

    def _lost(self) -> None:
        if self.close_code is None:
            self.close_code = 1006
            self.close_reason = "connection lost"
        self._terminate(drain=False)

    def _close_now(self, code: int, reason: str) -> None:
        """Send a close frame and drop the connection without waiting for the peer."""
        if not self._close_sent:
            self.close_code = code
            self.close_reason = reason
            self._send_close(code, reason)
        self._terminate(drain=False)

    def _send_close(self, code: int, reason: str) -> None:
        if self._close_sent:
            return
        self._close_sent = True  # no data frame may follow the close frame
        frame = _frames.encode_close(code, reason, _mask_key() if self._mask else None)
        self._write_sync(frame, self.send_timeout or CLOSE_TIMEOUT, closing=True)

    def _terminate(self, *, drain: bool) -> None:
        """End the TCP connection: half-close, optionally read until the peer's FIN, then shut down."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._close_sent = True
        try:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                drain = False
            if drain:
                # Reading until EOF avoids a reset that could destroy our close frame in flight.
                with gevent.Timeout(CLOSE_TIMEOUT, False):
                    while self._recv():
                        pass
        finally:
            self._release()

    def _abort(self, code: int, reason: str) -> None:
        """Drop the connection at once (no close frame); wakes a greenlet blocked in receive()."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._close_sent = True
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._out = []  # frames not written yet are lost with the connection
        self._release()

    def _release(self) -> None:
        watcher, self._rwatch = self._rwatch, None
        if watcher is not None:
            watcher.stop()
            watcher.close()
        callback, self._rcallback = self._rcallback, None
        if callback is not None:
            self._loop().run_callback(callback)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.role == "client":
            try:
                self._sock.close()
            except OSError:
                pass
        _registry.discard(self)
        timer, self._ka_timer = self._ka_timer, None
        if timer is not None:
            timer.close()
        self._closed_event.set()
        if self._drained is not None:
            self._drained.set()  # senders waiting for room see the closed state

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
            self._close_sent = True
            self._closed_event.set()
            return
        if self._state == _CLOSED:
            return
        if not self._close_sent:
            self.close_code, self.close_reason = code, reason
            self._send_close(code, reason)
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
            self._closed_event.wait(wait)
        if self._state != _CLOSED:
            self._abort(code, reason)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed; False if ``timeout`` passed first."""
        return bool(self._closed_event.wait(timeout))

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
        if self._close_sent:  # before the type check: send(None) after receive() -> None
            raise ConnectionClosed("the WebSocket is closed", self.close_code, self.close_reason)
        if isinstance(message, str):
            payload: t.Any = message.encode("utf-8")
            opcode = _frames.OP_BINARY if binary else _frames.OP_TEXT
        elif isinstance(message, (bytes, bytearray, memoryview)):
            payload = message
            opcode = _frames.OP_TEXT if binary is False else _frames.OP_BINARY
        else:
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}")
        self._send_frame(opcode, payload)

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (the pong is consumed inside :meth:`receive`)."""
        self._send_frame(_frames.OP_PING, payload)

    def _send_frame(self, opcode: int, payload: t.Any) -> None:
        if self._close_sent:
            raise ConnectionClosed("the WebSocket is closed", self.close_code, self.close_reason)
        frame = _frames.encode_frame(opcode, payload, _mask_key() if self._mask else None)
        if self._send_nb is None:  # TLS: no non-blocking write, every frame is written in place
            self._write_sync(frame, self.send_timeout)
            return
        if self._writer is None and not self._burst and not self._out:
            # The first frame of a burst is written at once; frames sent before this
            # greenlet yields to the hub are queued and written together, in one
            # system call, by _end_burst (like an event loop's transport does).
            self._burst = True
            self._loop().run_callback(self._end_burst)
            self._write_nb(frame, in_hub=False)
            return
        if self._out_size >= MAX_QUEUED:
            self._wait_drained(self.send_timeout)
        self._out.append(frame)
        self._out_size += len(frame)
        if self._writer is None and not self._burst:  # the writer finished while we waited
            self._burst = True
            self._loop().run_callback(self._end_burst)

    def _loop(self) -> t.Any:
        loop = self._hub_loop
        if loop is None:
            loop = self._hub_loop = gevent.get_hub().loop
        return loop

    def _end_burst(self) -> None:
        """Hub callback: write what was queued during the burst (never blocks)."""
        self._burst = False
        out = self._out
        if out and self._writer is None and self._state != _CLOSED:
            data = out[0] if len(out) == 1 else b"".join(out)
            self._out = []
            self._out_size -= len(data)
            self._write_nb(data, in_hub=True)
            if self._drained is not None:
                self._drained.set()  # senders waiting for room look again

    def _write_nb(self, data: bytes, *, in_hub: bool) -> None:
        """Write ``data`` without blocking; a remainder goes to a writer greenlet.

        Called only while no writer greenlet exists and nothing is queued.
        """
        try:
            sent = self._send_nb(data, 0, 0.0)  # type: ignore[misc]
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if in_hub:  # closing sockets wakes greenlets: not from inside the hub
                gevent.spawn(self._abort, 1006, "connection lost")
                return
            self._abort(1006, "connection lost")
            raise ConnectionClosed(f"the connection was lost: {exc}", self.close_code, self.close_reason) from exc
        if sent < len(data):
            rest = data[sent:]
            self._out_size += len(rest)
            self._writer = gevent.spawn(self._drain_quietly, rest, self.send_timeout)

    def _drain_quietly(self, data: bytes, timeout: float | None) -> None:
        try:
            self._drain(data, timeout)
        except ConnectionClosed:
            pass  # the socket is closed now: the next send() raises, receive() returns None

    def _wait_drained(self, timeout: float | None, *, idle: bool = False) -> None:
        """Block until the queue is below :data:`MAX_QUEUED` (``idle``: until no writer is left)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state != _CLOSED and (self._writer is not None if idle else self._out_size >= MAX_QUEUED):
            drained = self._drained
            if drained is None:
                drained = self._drained = Event()
            drained.clear()
            wait = None if deadline is None else deadline - time.monotonic()
            if (wait is not None and wait <= 0) or not drained.wait(wait):
                self._abort(1006, f"send timed out after {timeout:g} s: the peer is not reading")
                raise ConnectionClosed(
                    f"send timed out after {timeout:g} s (the peer stopped reading); the connection was closed",
                    self.close_code,
                    self.close_reason,
                )
        if self._state == _CLOSED or (self._close_sent and not idle):
            raise ConnectionClosed("the WebSocket is closed", self.close_code, self.close_reason)

    def _write_sync(self, frame: bytes, timeout: float | None, *, closing: bool = False) -> None:
        """Write ``frame`` after everything queued, in this greenlet; returns once it is in the kernel."""
        if self._writer is not None:
            try:
                self._wait_drained(timeout, idle=True)
            except ConnectionClosed:
                if closing:
                    return
                raise
        if self._state == _CLOSED or (self._close_sent and not closing):  # closed while we waited
            if closing:
                return
            raise ConnectionClosed("the WebSocket is closed", self.close_code, self.close_reason)
        out = self._out
        out.append(frame)
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self._out_size = len(data)
        self._writer = gevent.getcurrent()
        try:
            self._drain(data, timeout)
        except ConnectionClosed:
            if not closing:
                raise

    def _drain(self, data: bytes, timeout: float | None) -> None:
        """The writer: write ``data``, then whatever was queued meanwhile, until the queue is empty.

        Runs in a greenlet of its own (after a partial write) or in the sender's
        (:meth:`_write_sync`); :attr:`_writer` names it while it runs.
        """
        done = False
        try:
            while True:
                timer = gevent.Timeout(timeout) if timeout else None
                if timer is not None:
                    timer.start()
                try:
                    self._sock.sendall(data)
                except gevent.Timeout as exc:
                    if exc is not timer:
                        raise
                    self._abort(1006, f"send timed out after {timeout:g} s: the peer is not reading")
                    raise ConnectionClosed(
                        f"send timed out after {timeout:g} s (the peer stopped reading); the connection was closed",
                        self.close_code,
                        self.close_reason,
                    ) from None
                except OSError as exc:
                    self._abort(1006, "connection lost")
                    raise ConnectionClosed(
                        f"the connection was lost: {exc}", self.close_code, self.close_reason
                    ) from exc
                finally:
                    if timer is not None:
                        timer.cancel()
                self._out_size -= len(data)
                out = self._out
                if not out or self._state == _CLOSED:
                    done = True
                    break
                data = out[0] if len(out) == 1 else b"".join(out)
                self._out = []
                if self._drained is not None:
                    self._drained.set()
        finally:
            if not done and self._state != _CLOSED:  # killed: a partial frame may be on the wire
                self._abort(1006, "send interrupted")
            self._writer = None
            self._out_size = 0 if done else self._out_size
            if self._drained is not None:
                self._drained.set()

    # --- used by the worker's handler -------------------------------------------------------

    def _finish_server_session(self) -> None:
        """Called after the app returned: close with 1000 if still open, release everything."""
        if self._state == _OPEN:
            self.close(1000)
        if self._state != _CLOSED:
            self._abort(1006, "handler finished")


def live_sockets() -> list[WebSocket]:
    """Accepted server-side WebSockets of this process that are not closed yet."""
    return [ws for ws in list(_registry) if not ws.closed]


def shutdown_all(code: int, timeout: float = 5.0) -> int:
    """Close every live server-side WebSocket with ``code`` (1001 shutdown, 1012 reload).

    Sockets with an ``on_server_shutdown`` callback get it called instead of
    ``close(code)``. Waits up to ``timeout`` seconds in all, then drops what is
    still open. Returns how many sockets were live.
    """
    sockets = live_sockets()
    if not sockets:
        return 0

    def close_one(ws: WebSocket) -> None:
        try:
            callback = ws.on_server_shutdown
            if callback is not None:
                callback(code)
            else:
                ws.close(code, "server shutting down" if code == 1001 else "server restarting")
        except Exception:
            log.exception("closing %r on shutdown failed", ws)

    greenlets = [gevent.spawn(close_one, ws) for ws in sockets]
    deadline = time.monotonic() + timeout
    for ws in sockets:
        ws.wait_closed(max(0.0, deadline - time.monotonic()))
    for ws in sockets:
        ws._abort(code, "server shutting down")
    gevent.killall([g for g in greenlets if not g.dead], block=False)
    return len(sockets)
