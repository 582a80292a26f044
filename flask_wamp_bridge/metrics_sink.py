"""Where the relay reports what it counts: a no-op unless metrics are on.

The relay and its checks call ``metrics_sink.sink.<event>(...)`` on their hot
paths; by default :data:`sink` is a :class:`Sink` whose methods do nothing (one
attribute lookup and one call per message). With ``WAMP_BRIDGE_METRICS_PATH``
set, the worker installs the Prometheus sink
(:mod:`flask_wamp_bridge.ops.metrics`) with :func:`install`. Pure: no imports
of the package or of prometheus_client.
"""

from __future__ import annotations

__all__ = ["Sink", "sink", "install"]


class Sink:
    """The events the relay reports. Subclass and override what you count."""

    __slots__ = ()

    def relayed(self, leg: str, data: str | bytes) -> None:
        """One message received on ``leg`` (``"browser"`` or ``"router"``)."""

    def refused(self, kind: int, uri: str) -> None:
        """The checks refused a browser message of type ``kind`` with the ERROR ``uri``."""

    def login_failed(self, close_code: int | None, reason: str) -> None:
        """A browser session ended before the router welcomed it, closed with ``close_code`` and ``reason``."""

    def call_started(self, owner: object, request_id: int) -> None:
        """A browser's CALL went to the router (``owner``: its session's checks)."""

    def call_ended(self, owner: object, request_id: int, outcome: str) -> None:
        """That call got its final RESULT (``outcome`` ``"result"``) or ERROR (``"error"``), or the bridge gave
        up on it (``"canceled"``: past its deadline, untranslatable, or its session ended)."""


#: The sink in use in this process.
sink: Sink = Sink()


def install(new: Sink | None) -> Sink:
    """Use ``new`` (None: the no-op sink) from now on in this process; returns the previous one."""
    global sink
    previous, sink = sink, (new if new is not None else Sink())
    return previous
