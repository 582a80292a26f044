"""Per-process start and shutdown hooks, run by the worker.

Pure bookkeeping (no gevent): the extension records here what must start in
each worker process (the server-side WAMP peer) and what must happen when the
worker shuts down (GOODBYE to the router). ``init_app`` may run in the gunicorn
master (``--preload``), so nothing here starts anything by itself: the worker
calls :func:`run_start_hooks` after fork and :func:`run_shutdown_hooks` on exit.
"""

from __future__ import annotations

import logging
import sys
import typing as t

__all__ = [
    "on_worker_start",
    "on_worker_shutdown",
    "run_start_hooks",
    "run_shutdown_hooks",
    "in_worker",
    "warn_if_wrong_worker",
]

log = logging.getLogger(__name__)

_start_hooks: list[t.Callable[[], None]] = []
_shutdown_hooks: list[t.Callable[[int], None]] = []
_state = {"in_worker": False}


def on_worker_start(hook: t.Callable[[], None]) -> t.Callable[[], None]:
    """Run ``hook()`` in each worker process once it has forked and loaded the app.

    When a worker is already running (the app was created lazily inside it),
    the hook runs at once.
    """
    _start_hooks.append(hook)
    if _state["in_worker"]:
        hook()
    return hook


def on_worker_shutdown(hook: t.Callable[[int], None]) -> t.Callable[[int], None]:
    """Run ``hook(close_code)`` when the worker stops (1001) or is replaced on reload (1012)."""
    _shutdown_hooks.append(hook)
    return hook


def in_worker() -> bool:
    """Whether this process is a flask_wamp_bridge gunicorn worker that has started."""
    return _state["in_worker"]


def run_start_hooks() -> None:
    _state["in_worker"] = True
    for hook in list(_start_hooks):
        try:
            hook()
        except Exception:
            log.exception("worker start hook %r failed", hook)


def run_shutdown_hooks(close_code: int) -> None:
    for hook in list(_shutdown_hooks):
        try:
            hook(close_code)
        except Exception:
            log.exception("worker shutdown hook %r failed", hook)


_WORKER_MODULE = "flask_wamp_bridge.websocket.worker"


def warn_if_wrong_worker() -> bool:
    """Log an error (at boot, from ``init_app``) when gunicorn serves the app with another worker class.

    The bridge's worker module is loaded by gunicorn before the app whenever
    ``-k flask_wamp_bridge.worker`` is used; under gunicorn without it, the
    WebSocket routes, ``/wamp`` and the peer cannot work. Returns whether it logged.
    """
    if "gunicorn.arbiter" not in sys.modules or _WORKER_MODULE in sys.modules:
        return False
    log.error("gunicorn serves this app with another worker class: WebSocket routes, the WAMP endpoint and the "
              "server-side peer need the bridge's. Start it with `gunicorn -k flask_wamp_bridge.worker ...` "
              "(not -k gevent, -k sync or -k gthread)")
    return True
