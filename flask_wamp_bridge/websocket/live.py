"""The live server-side WebSockets of this process, and closing them all when the worker stops."""

from __future__ import annotations

import logging
import time
import typing as t
import weakref

import gevent

__all__ = ["LiveSocket", "live_sockets", "shutdown_all", "track", "untrack"]

log = logging.getLogger(__name__)


class LiveSocket(t.Protocol):
    """What closing at shutdown needs of a socket (:class:`~.connection.WebSocket` fits)."""

    on_server_shutdown: t.Callable[[int], None] | None

    @property
    def closed(self) -> bool: ...

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None: ...

    def wait_closed(self, timeout: float | None = None) -> bool: ...

    def abort(self, code: int, reason: str) -> None: ...


_registry: weakref.WeakSet[LiveSocket] = weakref.WeakSet()


def track(ws: LiveSocket) -> None:
    """``ws`` was accepted: it is live until :func:`untrack`."""
    _registry.add(ws)


def untrack(ws: LiveSocket) -> None:
    _registry.discard(ws)


def live_sockets() -> list[LiveSocket]:
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

    def close_one(ws: LiveSocket) -> None:
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
        ws.abort(code, "server shutting down")
    gevent.killall([g for g in greenlets if not g.dead], block=False)
    return len(sockets)
