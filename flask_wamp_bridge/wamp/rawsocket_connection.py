"""A gevent WAMP RawSocket connection to the router: the sans-IO codec of :mod:`.rawsocket` over a socket.

It has the surface a relay uses of an upstream WebSocket: ``send``,
``receive``, ``receive_nowait`` with ``notify_readable`` (no greenlet while
idle), ``close``, ``configure``, ``local_address``, ``subprotocol``. A frame
goes out as its 4-octet header and the payload in one ``sendmsg`` (the payload
is not copied); sends from several greenlets are serialized and each is
bounded by the send timeout (past it the connection is dropped).

Crossbar (26.10.1) knows no RawSocket PING: this connection has no ``ping``.
Liveness is the connection's end: a Unix socket reads EOF the moment the
router's process goes away; a TCP one has kernel keepalives (``keepalive``
seconds idle, then probes). The handshake announces :data:`~.rawsocket.MAX_LENGTH`
(Crossbar skips, silently, a message longer than announced) and the size bound
is kept here: a longer frame from the router drops the connection
(:class:`~flask_wamp_bridge.errors.MessageTooBig`), before its payload is kept.
"""

from __future__ import annotations

import os
import socket as _socket
import typing as t

import gevent
import gevent.lock
from gevent import socket as gsocket

from ..errors import ConnectError
from ..errors import ConnectionClosed
from ..errors import MessageTooBig
from ..errors import RemoteProtocolError
from ..websocket import socket_errors
from ..websocket.connection import WOULD_BLOCK
from ..websocket.readiness import ReadableWatch
from . import rawsocket as _rs

__all__ = ["RawSocketConnection", "connect_rawsocket", "Address"]

#: A Unix socket path, or ``(host, port)`` for TCP.
Address = t.Union[str, "os.PathLike[str]", tuple[str, int]]

_RECV_SIZE = 64 * 1024


class RawSocketConnection:
    """One open RawSocket connection (the handshake is done); see the module docs."""

    __slots__ = ("_sock", "_codec", "_lock", "_watch", "_closed", "send_timeout", "max_message_size",
                 "close_code", "close_reason", "subprotocol", "local_address", "__weakref__")

    def __init__(self, sock: t.Any, codec: _rs.RawSocket, *, max_message_size: int | None,
                 send_timeout: float | None = None) -> None:
        self._sock = sock
        self._codec = codec
        self._lock = gevent.lock.Semaphore()
        self._watch: ReadableWatch | None = None
        self._closed = False
        #: Seconds one send may block (None: forever).
        self.send_timeout = send_timeout
        #: The largest message taken from the router (None: what the handshake allows).
        self.max_message_size = max_message_size
        self.close_code: int | None = None
        self.close_reason = ""
        #: The WAMP subprotocol this connection speaks (``wamp.2.<serializer>``).
        self.subprotocol = f"wamp.2.{codec.serializer}"
        #: The socket's own address (``getsockname()``): ``(host, port)``, or the Unix socket's (empty) name.
        self.local_address = socket_errors.attempt(sock.getsockname)
        if max_message_size is not None:
            codec.limit_incoming(max_message_size)

    def configure(self, *, max_message_size: int | None = None, send_timeout: float | None = None) -> None:
        """The relay's bounds, as a WebSocket's ``configure`` takes them."""
        if max_message_size is not None:
            self.max_message_size = max_message_size
            self._codec.limit_incoming(max_message_size)
        if send_timeout is not None:
            self.send_timeout = send_timeout

    # --- sending ------------------------------------------------------------------

    def send(self, message: str | bytes) -> None:
        """Send one serialized message.

        :raises ConnectionClosed: the connection is closed, or a send made no progress for ``send_timeout``.
        :raises MessageTooBig: longer than the router accepts (nothing is sent; the connection stays).
        """
        payload = message.encode("utf-8") if isinstance(message, str) else message
        handshake = t.cast(_rs.Handshake, self._codec.handshake)
        if len(payload) > handshake.max_length:
            raise MessageTooBig(f"a message of {len(payload)} bytes is longer than the router accepts "
                                f"({handshake.max_length})")
        header = _rs.frame_header(len(payload))
        with self._lock:
            if self._closed:
                raise ConnectionClosed("the RawSocket connection is closed")
            timer = gevent.Timeout(self.send_timeout) if self.send_timeout else None
            if timer is not None:
                timer.start()
            try:
                self._write(header, payload)
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                self._drop("send timeout")
                raise ConnectionClosed(f"the router took nothing for {self.send_timeout:g} s") from None
            except OSError as exc:
                self._drop("connection lost")
                raise socket_errors.lost(exc) from None
            finally:
                if timer is not None:
                    timer.close()

    def _write(self, header: bytes, payload: bytes) -> None:
        sent = self._sock.sendmsg([header, payload])
        total = len(header) + len(payload)
        if sent < total:  # the kernel took part of it: the rest, as the socket drains
            rest = (header + payload)[sent:] if sent < len(header) else memoryview(payload)[sent - len(header):]
            self._sock.sendall(rest)

    # --- receiving ----------------------------------------------------------------

    def _next_message(self) -> bytes | None:
        event = self._codec.next_event()
        while event is not _rs.NEED_DATA:
            if type(event) is _rs.Message:
                return event.data
            event = self._codec.next_event()  # PONGs and such: Crossbar sends none
        return None

    def receive(self) -> bytes | None:
        """The next message; None once the connection ended."""
        while not self._closed:
            data = self._next_message()
            if data is not None:
                return data
            chunk = socket_errors.read_or_eof(self._sock.recv, _RECV_SIZE)
            if not chunk:
                self._drop("connection lost")
                return None
            self._codec.receive_data(chunk)
        return None

    def receive_nowait(self) -> t.Any:
        """The next message, :data:`~flask_wamp_bridge.websocket.connection.WOULD_BLOCK`, or None once ended."""
        while not self._closed:
            data = self._next_message()
            if data is not None:
                return data
            chunk = self._readable().read(self._sock, self._sock.recv, _RECV_SIZE, buffered=False)
            if chunk is None:
                return WOULD_BLOCK
            if not chunk:
                self._drop("connection lost")
                return None
            self._codec.receive_data(chunk)
        return None

    def _readable(self) -> ReadableWatch:
        watch = self._watch
        if watch is None:
            watch = self._watch = ReadableWatch(self._sock.fileno())
        return watch

    def notify_readable(self, callback: t.Callable[[], None]) -> None:
        """Call ``callback()`` once, from the hub, when there is something to read (or the connection ended)."""
        # (receive_nowait says WOULD_BLOCK only with no whole frame buffered: the socket will signal)
        if self._closed:
            gevent.get_hub().loop.run_callback(callback)
            return
        self._readable().arm(callback)

    # --- closing ------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (RawSocket has no close handshake: the WAMP GOODBYE was it)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._drop(reason)

    def _drop(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, reason
        watch = self._watch
        if watch is not None:
            self._watch = None
            watch.release()
        socket_errors.failed(self._sock.shutdown, _socket.SHUT_RDWR)
        socket_errors.failed(self._sock.close)


def connect_rawsocket(
    address: Address,
    serializer: str,
    *,
    timeout: float = 10.0,
    max_message_size: int | None = None,
    keepalive: float | None = 12.0,
) -> RawSocketConnection:
    """Open a RawSocket connection and do the handshake (announcing :data:`~.rawsocket.MAX_LENGTH`).

    :param address: a Unix socket path, or ``(host, port)``.
    :param serializer: json, msgpack or cbor.
    :param timeout: seconds for the connect and the handshake together.
    :param max_message_size: the largest message taken from the router (bytes).
    :param keepalive: TCP only: seconds idle before the kernel probes the router (None: the system's).
    :raises ConnectError: unreachable, refused, or the handshake failed or timed out.
    """
    codec = _rs.RawSocket(_rs.Role.CLIENT, serializer, _rs.MAX_LENGTH)
    tcp = isinstance(address, tuple)
    where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else os.fspath(address)
    sock: t.Any = None
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        if isinstance(address, tuple):
            sock = gsocket.create_connection(address)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if keepalive:
                _keepalive(sock, keepalive)
        else:
            sock = gsocket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.connect(os.fspath(address))
        sock.sendall(codec.initiate())
        while True:
            event = codec.next_event()
            if isinstance(event, _rs.Handshake):
                break
            chunk = sock.recv(4)  # only the reply: nothing else comes before our HELLO
            if not chunk:
                raise ConnectError(f"the router at {where} closed the RawSocket connection during the handshake "
                                   f"(is {serializer} among the transport's serializers?)")
            codec.receive_data(chunk)
    except gevent.Timeout as exc:
        if sock is not None:
            socket_errors.failed(sock.close)
        if exc is not timer:
            raise
        raise ConnectError(f"no RawSocket handshake from the router at {where} within {timeout:g} s") from None
    except (OSError, ConnectError, RemoteProtocolError) as exc:
        if sock is not None:
            socket_errors.failed(sock.close)
        if isinstance(exc, ConnectError):
            raise
        kind = "TCP" if tcp else "Unix socket"
        raise ConnectError(f"cannot open a RawSocket connection ({kind}) to the router at {where}: {exc}") from exc
    finally:
        timer.close()
    sock.settimeout(None)
    return RawSocketConnection(sock, codec, max_message_size=max_message_size)


def _keepalive(sock: t.Any, idle: float) -> None:
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
    seconds = max(1, int(idle))
    for name, value in (("TCP_KEEPIDLE", seconds), ("TCP_KEEPINTVL", max(1, seconds // 4)), ("TCP_KEEPCNT", 3)):
        option = getattr(_socket, name, None)
        if option is not None:
            socket_errors.failed(sock.setsockopt, _socket.IPPROTO_TCP, option, value)
