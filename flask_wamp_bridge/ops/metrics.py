"""Prometheus metrics (the ``metrics`` extra): what operators ask first, summed over every gunicorn worker.

Turned on by ``WAMP_BRIDGE_METRICS_PATH``; each worker builds its metrics when
it starts (:func:`start`), never at import or in ``init_app``. Under the
bridge's worker, gunicorn's master gives all workers one
``PROMETHEUS_MULTIPROC_DIR`` (:mod:`~flask_wamp_bridge.websocket.metrics_dir`)
and a scrape of any worker reports the sum; a dead worker's sessions stop
counting. Outside gunicorn the values are this process's.

Sources: the :mod:`~flask_wamp_bridge.signals` (browser sessions, the peer),
the relay's :mod:`~flask_wamp_bridge.metrics_sink` (messages, bytes, refusals,
failed logins, call latency) and a sampler each second (login queue, router).
Messages and bytes are added up in plain integers and handed to
prometheus_client by the sampler and at each scrape, so the per-message cost
is an addition.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import typing as t
import weakref

import prometheus_client
from prometheus_client import multiprocess
from prometheus_client import values

from .. import metrics_sink
from .. import signals
from ..bridge.login_turns import waiting_logins
from ..wamp.messages import MessageType
from ..websocket import lifecycle

__all__ = ["METRICS", "Metrics", "PrometheusSink", "start", "exposition", "SAMPLE_INTERVAL"]

#: Seconds between two samples of the gauges and flushes of the message counts.
SAMPLE_INTERVAL = 1.0

#: The one table: name, kind, labels, help, multi-process mode of a gauge.
METRICS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    ("wamp_bridge_workers", "gauge", (), "Worker processes serving (each counts 1 while it lives)", "livesum"),
    ("wamp_bridge_sessions", "gauge", ("role",), "Open browser WAMP sessions (welcomed by the router)", "livesum"),
    ("wamp_bridge_logins", "counter", ("outcome", "reason"),
     "Browser logins: outcome welcomed or refused; reason of a refused one: its URI or close code", ""),
    ("wamp_bridge_refused", "counter", ("type", "rule"),
     "Browser messages the relay's checks refused: message type and the ERROR URI of the rule", ""),
    ("wamp_bridge_messages", "counter", ("direction",),
     "WAMP messages through the relays: from_browser or from_router", ""),
    ("wamp_bridge_bytes", "counter", ("direction",),
     "Size of those messages: bytes (characters for JSON text frames)", ""),
    ("wamp_bridge_call_seconds", "histogram", ("outcome",),
     "Browser calls through the bridge, CALL to RESULT (outcome result) or ERROR (error)", ""),
    ("wamp_bridge_peer_joined", "gauge", (), "Workers whose server-side peer is joined to the realm", "livesum"),
    ("wamp_bridge_peer_reconnects", "counter", (), "Times a worker's peer joined again after losing its session", ""),
    ("wamp_bridge_router_up", "gauge", (),
     "1 while every worker's peer hears from the router (its keepalive), else 0", "livemin"),
    ("wamp_bridge_login_queue", "gauge", (), "Browser logins waiting for their turn (WAMP_BRIDGE_MAX_LOGINS)",
     "livesum"),
)

log = logging.getLogger(__name__)

_DIRECTIONS = {"browser": "from_browser", "router": "from_router"}
_URI = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+){1,7}$")


def _bounded(reason: str) -> str:
    """A label value from a free-text reason: a WAMP URI as is, a few known texts, else ``other``."""
    if _URI.match(reason) or reason in ("connection lost", "login timed out"):
        return reason
    return "other"


class Metrics:
    """This process's metric objects (one set per process, however many apps)."""

    def __init__(self, registry: prometheus_client.CollectorRegistry | None) -> None:
        self.by_name: dict[str, t.Any] = {}
        for name, kind, labels, doc, mode in METRICS:
            kwargs: dict[str, t.Any] = {"labelnames": labels, "registry": registry}
            if kind == "gauge":
                kwargs["multiprocess_mode"] = mode
                metric: t.Any = prometheus_client.Gauge(name, doc, **kwargs)
            elif kind == "counter":
                metric = prometheus_client.Counter(name, doc, **kwargs)
            else:
                metric = prometheus_client.Histogram(name, doc, **kwargs)
            self.by_name[name] = metric

    def __getitem__(self, name: str) -> t.Any:
        return self.by_name[name]


class PrometheusSink(metrics_sink.Sink):
    """The relay's events into :class:`Metrics`; message counts are kept in integers until :meth:`flush`."""

    __slots__ = ("metrics", "_counts", "_calls", "_lock", "_latency")

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._counts: dict[str, list[int]] = {leg: [0, 0] for leg in _DIRECTIONS}
        self._calls: weakref.WeakKeyDictionary[object, dict[int, float]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        histogram = metrics["wamp_bridge_call_seconds"]
        self._latency = {outcome: histogram.labels(outcome).observe for outcome in ("result", "error")}

    def relayed(self, leg: str, data: str | bytes) -> None:
        counts = self._counts[leg]
        counts[0] += 1
        counts[1] += len(data)

    def flush(self) -> None:
        with self._lock:
            for leg, counts in self._counts.items():
                messages, size = counts
                if messages:
                    counts[0] = counts[1] = 0
                    self.metrics["wamp_bridge_messages"].labels(_DIRECTIONS[leg]).inc(messages)
                    self.metrics["wamp_bridge_bytes"].labels(_DIRECTIONS[leg]).inc(size)

    def refused(self, kind: int, uri: str) -> None:
        try:
            name = MessageType(kind).name
        except ValueError:
            name = "other"
        self.metrics["wamp_bridge_refused"].labels(name, _bounded(uri)).inc()

    def login_failed(self, close_code: int | None, reason: str) -> None:
        label = reason if _URI.match(reason) else f"close_{close_code}" if close_code else "no_close"
        self.metrics["wamp_bridge_logins"].labels("refused", label).inc()

    def call_started(self, owner: object, request_id: int) -> None:
        calls = self._calls.get(owner)
        if calls is None:
            calls = self._calls[owner] = {}
        calls[request_id] = time.perf_counter()

    def call_ended(self, owner: object, request_id: int, outcome: str) -> None:
        calls = self._calls.get(owner)
        started = calls.pop(request_id, None) if calls is not None else None
        observe = self._latency.get(outcome)  # "canceled": the bridge gave up on it, not timed
        if started is not None and observe is not None:
            observe(time.perf_counter() - started)


class _Process:
    """What :func:`start` set up in this process."""

    def __init__(self) -> None:
        self.pid = 0
        self.sink: PrometheusSink | None = None
        self.registry: prometheus_client.CollectorRegistry | None = None
        self.apps: weakref.WeakSet[t.Any] = weakref.WeakSet()
        self.joins = 0
        self.receivers: list[tuple[t.Any, t.Callable[..., None]]] = []

    def forget(self) -> None:
        """Undo what a parent process set up before fork (its receivers, its registered metrics)."""
        for signal, receiver in self.receivers:
            signal.disconnect(receiver)
        if self.registry is not None and self.sink is not None:
            for metric in self.sink.metrics.by_name.values():
                self.registry.unregister(metric)


_process = _Process()


def multiprocess_dir() -> str | None:
    """The folder of the workers' values, when this process writes there (else None: its own values only)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and values.ValueClass is values.MutexValue:  # prometheus_client was imported before it was set
        if not _warned:
            _warned.append(True)
            log.warning("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set (by the app in "
                        "gunicorn's master, e.g. with --preload?): each worker reports only its own metrics. Set "
                        "PROMETHEUS_MULTIPROC_DIR before starting gunicorn, or import prometheus_client later")
        return None
    return path


_warned: list[bool] = []


def start(state: t.Any) -> PrometheusSink:
    """Build this process's metrics (once), install the sink, connect the signals, sample ``state``'s peer."""
    global _process
    process = _process
    if process.pid != os.getpid():  # first use in this process (after fork: the parent's is not ours)
        process.forget()
        process = _process = _Process()
        process.pid = os.getpid()
        process.registry = None if multiprocess_dir() else prometheus_client.REGISTRY
        process.sink = PrometheusSink(Metrics(process.registry))
        metrics_sink.install(process.sink)
        metrics = process.sink.metrics
        metrics["wamp_bridge_workers"].set(1)
        metrics["wamp_bridge_router_up"].set(0)
        _connect_signals(process)
        if lifecycle.in_worker():  # elsewhere each scrape samples
            _spawn_sampler(process)
    process.apps.add(state)
    assert process.sink is not None
    return process.sink


def _connect_signals(process: _Process) -> None:
    metrics = t.cast(PrometheusSink, process.sink).metrics

    def opened(sender: t.Any, role: str | None = None, **kwargs: t.Any) -> None:
        metrics["wamp_bridge_sessions"].labels(role or "").inc()
        metrics["wamp_bridge_logins"].labels("welcomed", "").inc()

    def closed(sender: t.Any, role: str | None = None, **kwargs: t.Any) -> None:
        metrics["wamp_bridge_sessions"].labels(role or "").dec()

    def joined(sender: t.Any, **kwargs: t.Any) -> None:
        if _is_app_peer(sender, process):
            process.joins += 1
            if process.joins > 1:
                metrics["wamp_bridge_peer_reconnects"].inc()
            _sample(process)

    def left(sender: t.Any, **kwargs: t.Any) -> None:
        if _is_app_peer(sender, process):
            _sample(process, leaving=True)

    # strong references: the receivers live as long as the process
    process.receivers = [(signals.browser_session_opened, opened), (signals.browser_session_closed, closed),
                         (signals.peer_joined, joined), (signals.peer_left, left)]
    for signal, receiver in process.receivers:
        signal.connect(receiver, weak=False)


def _is_app_peer(sender: t.Any, process: _Process) -> bool:
    for state in list(process.apps):
        try:
            if state.app is sender:
                return True
        except RuntimeError:  # that app is gone (its state outlived it): stop watching it
            process.apps.discard(state)
    return False


def _sample(process: _Process, *, leaving: bool = False) -> None:
    sink = process.sink
    if sink is None:
        return
    sink.flush()
    states = [state for state in process.apps if state.has_peer]
    joined = sum(1 for state in states if state.peer.is_connected) if not leaving else 0
    metrics = sink.metrics
    metrics["wamp_bridge_peer_joined"].set(joined)
    metrics["wamp_bridge_router_up"].set(1 if states and joined == len(states) else 0)
    metrics["wamp_bridge_login_queue"].set(waiting_logins())


def _spawn_sampler(process: _Process) -> None:
    import gevent

    def run() -> None:
        while process.pid == os.getpid():
            gevent.sleep(SAMPLE_INTERVAL)
            try:
                _sample(process)
            except Exception:  # pragma: no cover - a sampler must not die
                log.exception("metrics sampler failed")

    gevent.spawn(run)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format (of every worker in multi-process mode) and its content type."""
    _sample(_process)
    path = multiprocess_dir()
    if path:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST
    return prometheus_client.generate_latest(prometheus_client.REGISTRY), prometheus_client.CONTENT_TYPE_LATEST
