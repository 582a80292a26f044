"""What Prometheus metrics cost the relay's hot path, in process: the same CALL/RESULT stream with metrics off and on.

Not a test. Each mode runs in its own interpreter (prometheus_client picks its
multi-process mode at import), in rounds taking turns, on a scripted relay
(``tests/relay_pair.py``, as ``bench_checks.py``): per call, the browser's
CALL and the router's RESULT go through the relay's checks and through the
sink as ``relay_io`` reports them (``relayed`` per message, a latency
observation per call). Modes: ``off`` (the no-op sink: what every app without
``WAMP_BRIDGE_METRICS_PATH`` runs), ``counters`` (the per-message counters
alone, no latency), ``on`` (everything, one process), ``multiprocess``
(``PROMETHEUS_MULTIPROC_DIR`` set, as under gunicorn). Reports CPU µs per call
and the ratio to ``off``::

    .venv/bin/python bench/bench_metrics.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = ("off", "counters", "on", "multiprocess")
SUBPROTOCOLS = ("wamp.2.json", "wamp.2.msgpack")


def measure(mode: str, subprotocol: str, calls: int) -> float:
    """CPU µs per call (one message each way) in this process."""
    sys.path[:0] = [str(REPO / "tests"), str(REPO)]
    from relay_pair import RelayPair

    from flask_wamp_bridge import metrics_sink
    from flask_wamp_bridge.bridge.checks import Limits
    from flask_wamp_bridge.bridge.identity import Identity

    if mode != "off":
        import prometheus_client

        from flask_wamp_bridge.ops.metrics import Metrics
        from flask_wamp_bridge.ops.metrics import PrometheusSink

        class CountersOnly(PrometheusSink):
            __slots__ = ()

            def call_started(self, owner: object, request_id: int) -> None:
                pass

            def call_ended(self, owner: object, request_id: int, outcome: str) -> None:
                pass

        registry = None if mode == "multiprocess" else prometheus_client.CollectorRegistry()
        sink_class = CountersOnly if mode == "counters" else PrometheusSink
        metrics_sink.install(sink_class(Metrics(registry)))
    pair = RelayPair(Identity("bench", "user"), subprotocol=subprotocol,
                     limits=Limits(max_calls_in_flight=None, message_rate=1e9, message_burst=10**9))
    assert pair.login()[0] == 2
    relay, serializer = pair.relay, pair.serializer
    frames: list[tuple[t.Any, t.Any]] = [
        (serializer.dumps([48, i, {}, "app.bench.echo", ["x" * 64]]), serializer.dumps([50, i, {}, ["x" * 64]]))
        for i in range(1, calls + 1)]
    from_client, from_router = relay.from_client, relay.from_router
    start = time.process_time()
    for call, result in frames:
        metrics_sink.sink.relayed("browser", call)  # as RelaySession._handle reports each message
        from_client(call)
        metrics_sink.sink.relayed("router", result)
        from_router(result)
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SUBPROTOCOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.calls)))
        return
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
        for _ in range(args.rounds):
            for subprotocol in SUBPROTOCOLS:
                for mode in MODES:
                    env = dict(os.environ)
                    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
                    if mode == "multiprocess":
                        env["PROMETHEUS_MULTIPROC_DIR"] = folder
                    out = subprocess.run([sys.executable, __file__, "--calls", str(args.calls), "--child", mode,
                                          subprotocol], env=env, check=True, capture_output=True, text=True)
                    results.setdefault((subprotocol, mode), []).append(json.loads(out.stdout))
    print(f"{'serializer':<16}{'mode':<14}{'µs/call (median)':>18}{'x off':>8}")
    for subprotocol in SUBPROTOCOLS:
        base = statistics.median(results[(subprotocol, "off")])
        for mode in MODES:
            value = statistics.median(results[(subprotocol, mode)])
            print(f"{subprotocol:<16}{mode:<14}{value:>18.2f}{value / base:>8.2f}")


if __name__ == "__main__":
    main()
