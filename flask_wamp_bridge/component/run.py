"""Component mode: the app's peer alone, in the foreground, no HTTP (``flask wamp run``)."""

from __future__ import annotations

import logging
import signal
import typing as t

import gevent
import gevent.event

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.peer import Peer

__all__ = ["ComponentHost", "run_component"]

log = logging.getLogger("flask_wamp_bridge.component")


class ComponentHost(t.Protocol):
    """What running as a component needs of the app's bridge (the extension's per-app state fits)."""

    @property
    def peer(self) -> Peer:
        """The app's WAMP peer (not started yet)."""
        ...

    def start_scheduler(self) -> None:
        """Start the ``@bridge.every`` jobs."""
        ...

    def stop_peer(self) -> None:
        """Stop the jobs and leave the router with GOODBYE."""
        ...


def run_component(state: ComponentHost, ready_timeout: float | None = None) -> None:
    """Start the peer and the ``@bridge.every`` jobs; on SIGINT or SIGTERM leave with GOODBYE and return.

    :param ready_timeout: seconds to wait for the first join before logging that the router is not there yet.
    """
    stop = gevent.event.Event()
    handlers = [gevent.signal_handler(signum, stop.set) for signum in (signal.SIGINT, signal.SIGTERM)]
    try:
        peer = state.peer
        peer.start()
        state.start_scheduler()
        if not peer.wait_ready(ready_timeout if ready_timeout is not None else peer.connect_timeout):
            log.warning("not joined to %s yet; the peer keeps trying", peer.url)
        else:
            log.info("serving WAMP as session %s; Ctrl-C or SIGTERM to stop", peer.session_id)
        stop.wait()
        log.info("stopping: GOODBYE to the router")
    finally:
        for handler in handlers:
            handler.cancel()
        state.stop_peer()
