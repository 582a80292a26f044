"""A gevent WebSocket client on the same codec and :class:`~.connection.WebSocket` class as the server.

Used to reach Crossbar (the WAMP peer and the per-browser relay). It uses
``gevent.socket`` directly, so it works in a plain process that has not
monkey-patched as well as inside the gevent worker::

    ws = connect("ws://127.0.0.1:8080/ws", subprotocols=["wamp.2.json"])
    ws.subprotocol          # "wamp.2.json": the server's choice
    ws.send('[1, "realm1", {}]')
    reply = ws.receive()
"""

from __future__ import annotations

import re
import socket as _stdsocket
import typing as t
import urllib.parse

import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl

from ..errors import ConfigError
from ..errors import ConnectError
from . import handshake
from . import socket_errors
from .connection import WebSocket

__all__ = ["connect"]

_MAX_RESPONSE_HEAD = 64 * 1024


def connect(
    url: str,
    *,
    subprotocols: t.Sequence[str] = (),
    headers: t.Mapping[str, str] | None = None,
    timeout: float = 10.0,
    max_message_size: int = 16 * 1024 * 1024,
    ssl_context: gssl.SSLContext | None = None,
) -> WebSocket:
    """Open a WebSocket to ``url`` (``ws://host:port/path`` or ``wss://...``).

    :param subprotocols: offered in ``Sec-WebSocket-Protocol``, in order of
        preference; when given, the server must choose one of them.
    :param headers: extra request headers (``Origin``, ``Cookie``, ...).
    :param timeout: seconds for the whole handshake (connect, request, response).
    :param max_message_size: largest message accepted from the server; None for no limit.
    :param ssl_context: a ``gevent.ssl.SSLContext`` for ``wss://`` (default: system CAs, hostname checked).
    :returns: an open :class:`WebSocket`; its ``subprotocol`` is the server's choice.
    :raises ConnectError: refused connection, timeout, TLS failure, a status other
        than 101, or a missing or unknown subprotocol in the response.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"WebSocket URL {url!r} must look like ws://host:port/path or wss://host/path")
    secure = parts.scheme == "wss"
    host = parts.hostname
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        raise ConfigError(f"WebSocket URL {url!r} has an invalid port") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{port}"
    key = handshake.make_key()
    request = handshake.build_request(target, host_header, key, subprotocols=subprotocols,
                                      headers=(headers or {}).items())

    sock: t.Any = None
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        sock = gsocket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        if secure:
            context = ssl_context or gssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host)
        sock.sendall(request)
        head, rest = _read_head(sock)
        if not head.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
            rest = _read_body_excerpt(sock, head, rest)  # the refusal's reason, for the error
    except gevent.Timeout as exc:
        _close(sock)
        if exc is not timer:
            raise
        raise ConnectError(f"could not connect to {url}: {socket_errors.TIMED_OUT.format(timeout=timeout)}") from None
    except ConnectError:
        _close(sock)
        raise
    except OSError as exc:
        _close(sock)
        raise socket_errors.connect_error(exc, url=url, host=host, port=port, timeout=timeout) from exc
    finally:
        timer.cancel()

    try:
        subprotocol = handshake.check_response(head, key, subprotocols, url=url, body=rest)
    except ConnectError:
        _close(sock)
        raise
    sock.settimeout(None)
    return WebSocket(
        sock,
        role="client",
        initial=rest,
        subprotocol=subprotocol,
        path=parts.path or "/",
        max_message_size=max_message_size,
    )


def _close(sock: t.Any) -> None:
    if sock is not None:
        socket_errors.failed(sock.close)


def _read_head(sock: t.Any) -> tuple[bytes, bytes]:
    buf = b""
    while True:
        if (parts := handshake.split_head(buf)) is not None:
            return parts
        if len(buf) > _MAX_RESPONSE_HEAD:
            raise ConnectError("the server's handshake response headers are larger than 64 KiB")
        chunk = sock.recv(16384)
        if not chunk:
            if not buf:
                raise ConnectError("the server closed the connection without answering the WebSocket handshake")
            return buf, b""
        buf += chunk


def _read_body_excerpt(sock: t.Any, head: bytes, rest: bytes, limit: int = 2000) -> bytes:
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if not match:
        return rest[:limit]  # chunked or unknown length: keep what came with the head
    want = min(int(match.group(1)), limit)
    while len(rest) < want:
        chunk = socket_errors.read_or_eof(sock.recv, limit)
        if not chunk:
            break
        rest += chunk
    return rest[:want]
