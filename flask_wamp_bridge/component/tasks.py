"""Background tasks: ``bridge.spawn(fn, ...)`` in the worker's hub, bounded, tracked, stopped at shutdown."""

from __future__ import annotations

import logging
import os
import typing as t

import gevent
from flask import Flask
from flask import g

from ..errors import BridgeError

__all__ = ["Tasks", "TooManyTasks"]

log = logging.getLogger("flask_wamp_bridge.tasks")


class TooManyTasks(BridgeError):
    """``WAMP_BRIDGE_MAX_TASKS`` background tasks are already running in this worker."""


class Tasks:
    """The background tasks of one app in one process."""

    def __init__(self, app_ref: t.Callable[[], Flask | None], wampy: t.Any, limit: int) -> None:
        self.pid = os.getpid()
        self._app_ref = app_ref
        self._wampy = wampy
        self.limit = limit
        self.running: set[gevent.Greenlet] = set()
        self._stopping = False

    def spawn(self, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> gevent.Greenlet:
        """Start ``fn(*args, **kwargs)`` in an app context with ``g.wampy``.

        :raises TooManyTasks: the limit is reached, or the worker is shutting down.
        """
        if self._stopping:
            raise TooManyTasks("the worker is shutting down: no new background tasks")
        if len(self.running) >= self.limit:
            raise TooManyTasks(f"{len(self.running)} background tasks are running (WAMP_BRIDGE_MAX_TASKS = "
                               f"{self.limit}); wait for some to finish or raise the limit")
        greenlet = gevent.Greenlet(self.run_here, fn, args, kwargs)
        self.running.add(greenlet)
        greenlet.link(self.running.discard)
        greenlet.start()
        return greenlet

    def run_here(self, fn: t.Callable[..., t.Any], args: tuple[t.Any, ...] = (),
                 kwargs: dict[str, t.Any] | None = None) -> t.Any:
        """Run ``fn`` in this greenlet in an app context with ``g.wampy``; an exception is logged (result None)."""
        app = self._app_ref()
        if app is None:
            return None
        with app.app_context():
            g.wampy = self._wampy
            try:
                return fn(*args, **(kwargs or {}))
            except gevent.GreenletExit:
                raise
            except Exception:
                log.exception("background task %s raised", getattr(fn, "__qualname__", fn))
                return None

    def stop(self, timeout: float = 2.0) -> None:
        """Kill every running task (they get ``GreenletExit``), waiting up to ``timeout`` seconds."""
        self._stopping = True
        running = list(self.running)
        if running:
            log.info("stopping %d background task(s)", len(running))
            gevent.killall(running, timeout=timeout)
            self.running.difference_update(greenlet for greenlet in running if greenlet.dead)
