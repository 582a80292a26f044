"""Where the peer runs invocations and event handlers: a bounded pool of greenlets, first come first served.

The peer has one pool for the app's procedures and handlers; a registration may
have a pool of its own (the ticket authenticator does), so that a burst of one
kind of work never queues the other.
"""

from __future__ import annotations

import collections
import typing as t

import gevent

__all__ = ["HandlerPool"]


class HandlerPool:
    """Runs invocations and event handlers, each in its own greenlet: ``concurrency`` at once, ``backlog`` waiting."""

    def __init__(self, concurrency: int, backlog: int, name: str = "handlers") -> None:
        self.concurrency = concurrency
        self.backlog = backlog
        #: What the log calls this pool.
        self.name = name
        self._active = 0
        self._waiting: collections.deque[tuple[t.Callable[..., None], tuple[t.Any, ...]]] = collections.deque()

    @property
    def active(self) -> int:
        """Greenlets running now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Submissions waiting for a free greenlet."""
        return len(self._waiting)

    def submit(self, fn: t.Callable[..., None], *args: t.Any) -> bool:
        """Run ``fn(*args)`` now or later; False when the backlog is full (nothing will run)."""
        if self._active < self.concurrency:
            self._active += 1
            gevent.spawn(self._task, fn, args)
        elif len(self._waiting) < self.backlog:
            self._waiting.append((fn, args))
        else:
            return False
        return True

    def _task(self, fn: t.Callable[..., None], args: tuple[t.Any, ...]) -> None:
        try:
            fn(*args)
        finally:
            if self._waiting:
                next_fn, next_args = self._waiting.popleft()
                gevent.spawn(self._task, next_fn, next_args)
            else:
                self._active -= 1
