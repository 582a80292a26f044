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
from . import frames as _frames
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
    key = _frames.make_key()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    for name, value in (headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ConfigError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

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
        raise ConnectError(f"could not connect to {url}: {_TIMED_OUT.format(timeout=timeout)}") from None
    except ConnectError:
        _close(sock)
        raise
    except OSError as exc:
        _close(sock)
        raise ConnectError(f"could not connect to {url}: {_connect_failure(exc, host, port, timeout)}") from exc
    finally:
        timer.cancel()

    try:
        subprotocol = _check_response(url, head, rest, key, subprotocols)
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


_TIMED_OUT = "no WebSocket handshake within {timeout:g} s"

#: The foreign errors of connecting and what each means to the user; the first match wins.
_CONNECT_FAILURES: tuple[tuple[type[OSError], str], ...] = (
    (_stdsocket.timeout, _TIMED_OUT),
    (ConnectionRefusedError, "connection refused (is the server running and listening on {host}:{port}?)"),
    (_stdsocket.gaierror, "cannot resolve host {host!r} ({exc})"),
    (gssl.SSLError, "TLS handshake failed ({exc})"),
    (OSError, "{exc}"),
)


def _connect_failure(exc: OSError, host: str, port: int, timeout: float) -> str:
    for kind, text in _CONNECT_FAILURES:
        if isinstance(exc, kind):
            return text.format(exc=exc, host=host, port=port, timeout=timeout)
    raise AssertionError("OSError is the last entry")  # pragma: no cover


def _close(sock: t.Any) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _read_head(sock: t.Any) -> tuple[bytes, bytes]:
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return buf[:end], buf[end + 4 :]
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
    try:
        while len(rest) < want:
            chunk = sock.recv(limit)
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    return rest[:want]


def _check_response(url: str, head: bytes, rest: bytes, key: str, offered: t.Sequence[str]) -> str | None:
    text = head.decode("latin-1")
    status_line, _, header_block = text.partition("\r\n")
    fields: dict[str, str] = {}
    for line in header_block.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            name = name.strip().lower()
            fields[name] = f"{fields[name]}, {value.strip()}" if name in fields else value.strip()
    words = status_line.split(None, 2)
    if len(words) < 2 or not words[0].startswith("HTTP/"):
        raise ConnectError(f"{url} did not answer with HTTP: {status_line[:100]!r}")
    if words[1] != "101":
        body = re.sub(r"<[^>]*>", " ", rest[:2000].decode("utf-8", "replace"))  # HTML error pages
        body = " ".join(body.split())[:300]
        detail = f": {body}" if body else ""
        raise ConnectError(f"{url} refused the WebSocket handshake with {status_line.strip()!r}{detail}")
    if fields.get("upgrade", "").lower() != "websocket" or "upgrade" not in _frames.parse_header_tokens(
        fields.get("connection", "").lower()
    ):
        raise ConnectError(f"{url} answered 101 without 'Upgrade: websocket' and 'Connection: Upgrade'")
    if fields.get("sec-websocket-accept") != _frames.accept_key(key):
        raise ConnectError(f"{url} answered with a wrong Sec-WebSocket-Accept; it is not a WebSocket server")
    chosen = fields.get("sec-websocket-protocol") or None
    if offered:
        if chosen is None:
            raise ConnectError(
                f"{url} accepted the WebSocket but chose none of the offered subprotocols ({', '.join(offered)})"
            )
        if chosen not in offered:
            raise ConnectError(
                f"{url} chose subprotocol {chosen!r}, which was not offered ({', '.join(offered)})"
            )
    elif chosen is not None:
        raise ConnectError(f"{url} chose subprotocol {chosen!r} although none was offered")
    if fields.get("sec-websocket-extensions"):
        raise ConnectError(f"{url} enabled extensions that were not offered: {fields['sec-websocket-extensions']}")
    return chosen
