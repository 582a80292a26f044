"""Waiting for a :class:`~flask_wamp_bridge.websocket.connection.WebSocket` to become readable, with no greenlet.

An idle relayed session must not keep a greenlet (and its stack) blocked on
the router's socket: :meth:`WebSocket.notify_readable` arms a
:class:`ReadableWatch` (made on first use), whose callback runs in the hub
when the socket has bytes; the caller then reads with ``receive_nowait()``.
"""

from __future__ import annotations

import typing as t

import gevent

__all__ = ["ReadableWatch"]


class ReadableWatch:
    """One socket's read watcher and the callback it runs once."""

    __slots__ = ("_watcher", "_callback", "_fired")

    def __init__(self, fileno: int, fired: t.Callable[[], None]) -> None:
        self._watcher = gevent.get_hub().loop.io(fileno, 1)
        self._callback: t.Callable[[], None] | None = None
        self._fired = fired  # told first (the socket has unread bytes now)

    def arm(self, callback: t.Callable[[], None]) -> None:
        self._callback = callback
        self._watcher.start(self._on_readable)

    def _on_readable(self) -> None:
        self._fired()
        self._watcher.stop()
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def release(self) -> None:
        """The connection is gone: stop watching; a pending callback still runs (from the hub)."""
        self._watcher.stop()
        self._watcher.close()
        callback, self._callback = self._callback, None
        if callback is not None:
            gevent.get_hub().loop.run_callback(callback)
