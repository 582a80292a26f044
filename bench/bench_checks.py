"""The per-message checks' CPU cost, in process: the relay before them and after, on the same frames.

Not a test. Drives each relay (``bench/relay_before.py``: the relay before the
checks; the package's: every browser message checked) through a scripted
login, then feeds it ``--calls`` CALLs from the browser and their RESULTs from
the router, and reports the process CPU time per call (one message each way)
for each serializer at 64 B and 4 KiB. No sockets: this is the sans-IO cost
only (bench_relay.py measures the whole worker). Limits that would refuse the
bench's own load are lifted (no cap on calls in flight, a rate of 10**9/s,
10**15 bytes/s). The RESULTs carry the callee's identity as Crossbar sends it
(the checks strip it)::

    .venv/bin/python bench/bench_checks.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from relay_pair import RelayPair  # noqa: E402

from bench import relay_before  # noqa: E402
from flask_wamp_bridge.bridge.checks import Limits  # noqa: E402
from flask_wamp_bridge.bridge.identity import Identity  # noqa: E402
from flask_wamp_bridge.bridge.relay import Relay  # noqa: E402

SIZES = (64, 4096)
#: What Crossbar puts in a RESULT's details: the callee's identity (the checks strip it for browsers).
RESULT_DETAILS = {"callee": 3987199069964432, "callee_authid": "flask-app", "callee_authrole": "backend"}
SUBPROTOCOLS = ("wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor")


def cpu_per_call(relay_class: type, subprotocol: str, size: int, calls: int) -> float:
    import relay_pair

    relay_pair.Relay = relay_class  # type: ignore[attr-defined]
    try:
        pair = RelayPair(Identity("bench", "user"), subprotocol=subprotocol,
                         limits=Limits(max_calls_in_flight=None, message_rate=1e9, message_burst=10**9,
                                       byte_rate=1e15, byte_burst=10**15))
    finally:
        relay_pair.Relay = Relay  # type: ignore[attr-defined]
    assert pair.login()[0] == 2
    relay, serializer = pair.relay, pair.serializer
    payload = "x" * size
    frames: list[tuple[t.Any, t.Any]] = [
        (serializer.dumps([48, i, {}, "app.bench.echo", [payload]]),
         serializer.dumps([50, i, RESULT_DETAILS, [payload]]))
        for i in range(1, calls + 1)]
    from_client, from_router = relay.from_client, relay.from_router
    start = time.process_time()
    for call, result in frames:
        from_client(call)
        from_router(result)
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'serializer':<15} {'payload':>7} {'before us':>10} {'after us':>9} {'added us':>9}   (per call: CALL in, "
          "RESULT out)")
    for subprotocol in SUBPROTOCOLS:
        for size in SIZES:
            before = cpu_per_call(relay_before.Relay, subprotocol, size, args.calls)
            after = cpu_per_call(Relay, subprotocol, size, args.calls)
            print(f"{subprotocol:<15} {size:>6}B {before:10.1f} {after:9.1f} {after - before:+9.1f}")


if __name__ == "__main__":
    main()
