"""The non-blocking read mode of a :class:`~flask_wamp_bridge.websocket.connection.WebSocket`.

An idle relayed session must not keep a greenlet (and its stack) blocked on
the router's socket: :meth:`WebSocket.notify_readable` arms a
:class:`ReadableWatch` (made on first use), whose callback runs in the hub
when the socket has bytes; the caller then reads with ``receive_nowait()``,
which reads through :meth:`ReadableWatch.read` without blocking.
"""

from __future__ import annotations

import typing as t

import gevent

from . import socket_errors

__all__ = ["ReadableWatch"]


class ReadableWatch:
    """One socket's non-blocking reads: whether it may hold unread bytes, and a watcher that calls back once."""

    __slots__ = ("_watcher", "_callback", "_unread")

    def __init__(self, fileno: int) -> None:
        self._watcher = gevent.get_hub().loop.io(fileno, 1)
        self._callback: t.Callable[[], None] | None = None
        self._unread = True  # the socket may hold more than was read

    def read(self, sock: t.Any, read: t.Callable[[int], bytes], size: int, *, buffered: bool) -> bytes | None:
        """``read(size)`` without blocking: None when the socket has nothing yet, ``b""`` when it failed.

        ``buffered``: the socket decrypts (TLS), so it may hold bytes the kernel no longer does.
        """
        if not self._unread:
            return None  # the last read emptied the socket: wait for the watcher
        previous = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            data = socket_errors.read_nowait(read, size)
        finally:
            sock.settimeout(previous)
        if data is None:
            self._unread = False
        elif data:
            # a short read emptied the kernel buffer (TLS may still hold decrypted bytes)
            self._unread = len(data) >= size or buffered
        return data

    def arm(self, callback: t.Callable[[], None]) -> None:
        """Call ``callback()`` once, from the hub, when the socket is readable."""
        self._callback = callback
        self._watcher.start(self._on_readable)

    def _on_readable(self) -> None:
        self._unread = True
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
