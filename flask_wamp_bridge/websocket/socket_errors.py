"""What a socket error means: the one place where ``OSError`` becomes the package's errors (or nothing).

A socket error while connecting is a :class:`~flask_wamp_bridge.errors.ConnectError`
whose message says what to check (:data:`CONNECT_FAILURES`); on an open
connection it means the peer is gone: a send raises
:class:`~flask_wamp_bridge.errors.ConnectionClosed` with 1006, a read sees the
end of the stream, and shutting down or closing a socket that is gone has
nothing left to do. Every socket error in :mod:`flask_wamp_bridge.websocket` is
handled here: by the helpers below, or where a send or a connect catches one, by
turning it into its error with :func:`lost` or :func:`connect_error`.
"""

from __future__ import annotations

import socket
import ssl
import typing as t

from ..errors import ConnectError
from ..errors import ConnectionClosed

__all__ = [
    "LOST_CODE",
    "TIMED_OUT",
    "CONNECT_FAILURES",
    "connect_error",
    "lost",
    "failed",
    "attempt",
    "read_or_eof",
    "read_nowait",
]

#: The close code of a connection that ended without a close frame.
LOST_CODE = 1006

TIMED_OUT = "no WebSocket handshake within {timeout:g} s"

#: The socket errors of connecting and what each means to the user; the first match wins.
CONNECT_FAILURES: tuple[tuple[type[OSError], str], ...] = (
    (socket.timeout, TIMED_OUT),
    (ConnectionRefusedError, "connection refused (is the server running and listening on {host}:{port}?)"),
    (socket.gaierror, "cannot resolve host {host!r} ({exc})"),
    (ssl.SSLError, "TLS handshake failed ({exc})"),
    (OSError, "{exc}"),
)

T = t.TypeVar("T")

_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError)


def connect_error(exc: OSError, *, url: str, host: str, port: int, timeout: float) -> ConnectError:
    """The error for a failed connect (or handshake) to ``url``."""
    for kind, text in CONNECT_FAILURES:
        if isinstance(exc, kind):
            return ConnectError(f"could not connect to {url}: " + text.format(exc=exc, host=host, port=port,
                                                                               timeout=timeout))
    raise AssertionError("OSError is the last entry")  # pragma: no cover


def lost(exc: OSError, message: str = "the connection was lost") -> ConnectionClosed:
    """The error for a send on a connection whose socket failed (code 1006)."""
    return ConnectionClosed(f"{message}: {exc}", LOST_CODE, "connection lost")


def failed(call: t.Callable[..., object], *args: t.Any) -> bool:
    """Run a socket call whose failure only means the socket is gone (shutdown, close, options); True if it failed."""
    try:
        call(*args)
    except OSError:
        return True
    return False


def attempt(call: t.Callable[[], T]) -> T | None:
    """``call()``, or None when the socket failed (its answer is unknown then: the socket is gone)."""
    try:
        return call()
    except OSError:
        return None


def read_or_eof(read: t.Callable[[int], bytes], size: int) -> bytes:
    """``read(size)``; ``b""`` (the end of the stream) when the socket failed."""
    try:
        return read(size)
    except OSError:
        return b""


def read_nowait(read: t.Callable[[int], bytes], size: int) -> bytes | None:
    """``read(size)`` on a non-blocking socket: None when nothing is there yet, ``b""`` when the socket failed."""
    try:
        return read(size)
    except _WOULD_BLOCK:
        return None
    except OSError:
        return b""
