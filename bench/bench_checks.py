"""The per-message checks' CPU cost, in process: the relay before them and after, on the same frames.

Not a test. Drives each relay (``bench/relay_before.py``: the relay before the
checks; the package's: every browser message checked) through a scripted
login, then feeds it ``--calls`` CALLs from the browser and their RESULTs from
the router, and reports the process CPU time per call (one message each way)
for each serializer at 64 B and 4 KiB. No sockets: this is the sans-IO cost
only (bench_relay.py measures the whole worker). Limits that would refuse the
bench's own load are lifted (no cap on calls in flight, a rate of 10**9/s,
10**15 bytes/s). The RESULTs carry the callee's identity as Crossbar sends it
(the checks strip it).

Then the adversarial corpus (``tests/decode_corpus.py``, ``WORST``): for each
serializer and size, the worst CPU time of one frame over every worst-case
shape, per KiB, and the slope of a least-squares line through the worst times
(linear: the per-KiB times stay flat). Once through a browser session's checks
(``SessionChecks.check``: the browser's default bounds refuse a frame past
100,000 elements), once decoded with no shape bounds at all (what a HELLO, the
peer or the test client meets, the value rules only)::

    .venv/bin/python bench/bench_checks.py [--calls 20000] [--part calls|adversarial|both]
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


ADVERSARIAL_SIZES = (16 << 10, 64 << 10, 256 << 10, (1 << 20) - (4 << 10))


def worst_cpu(decode: t.Callable[[t.Any], object], frames: list[t.Any], repeat: int) -> tuple[float, int]:
    """The worst CPU time (s) of one frame over ``frames`` (each the best of ``repeat`` runs), and which frame."""
    worst, which = 0.0, 0
    for index, frame in enumerate(frames):
        best = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            decode(frame)
            best = min(best, time.process_time() - start)
        if best > worst:
            worst, which = best, index
    return worst, which


def decoders(name: str) -> dict[str, t.Callable[[t.Any], None]]:
    """Through a browser session's checks, and decoded with no shape bounds."""
    from flask_wamp_bridge.bridge.checks import SessionChecks
    from flask_wamp_bridge.errors import RemoteProtocolError
    from flask_wamp_bridge.wamp.bounds import NO_BOUNDS
    from flask_wamp_bridge.wamp.messages import serializer_for

    serializer = serializer_for(f"wamp.2.{name}")
    checks = SessionChecks(serializer, Limits(max_calls_in_flight=None, message_rate=1e9, message_burst=10**9), 0.0)

    def checked(frame: t.Any) -> None:
        checks.check(frame, 0.0)
        checks.calls.clear()  # every frame is CALL 1

    def unbounded(frame: t.Any) -> None:
        try:
            serializer.loads(frame, NO_BOUNDS)
        except RemoteProtocolError:
            pass

    return {"checks": checked, "unbounded": unbounded}


def adversarial(repeat: int) -> None:
    from decode_corpus import WORST

    print(f"\n{'serializer':<10} {'path':<10} " + " ".join(f"{size >> 10:>6}K" for size in ADVERSARIAL_SIZES)
          + "   slope us/KiB   worst ms   (us per KiB of the worst frame at each size; the worst frame of all)")
    kib = [size / 1024 for size in ADVERSARIAL_SIZES]
    mean_x = sum(kib) / len(kib)
    for name, shapes in WORST.items():
        for path, decode in decoders(name).items():
            worst = [worst_cpu(decode, [build(size) for _, build in shapes], repeat) for size in ADVERSARIAL_SIZES]
            seconds = [spent for spent, _ in worst]
            mean_y = sum(seconds) / len(seconds)
            slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(kib, seconds, strict=True))
                     / sum((x - mean_x) ** 2 for x in kib))
            per_kib = " ".join(f"{spent / k * 1e6:7.1f}" for spent, k in zip(seconds, kib, strict=True))
            spent, which = max(worst)
            size = ADVERSARIAL_SIZES[worst.index((spent, which))] >> 10
            print(f"{name:<10} {path:<10} {per_kib}   {slope * 1e6:12.1f}   {spent * 1e3:8.1f}   "
                  f"({shapes[which][0]}, {size} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--part", choices=("calls", "adversarial", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each adversarial frame (the best counts)")
    args = parser.parse_args()
    if args.part != "adversarial":
        calls(args.calls)
    if args.part != "calls":
        adversarial(args.repeat)


def calls(count: int) -> None:
    print(f"{'serializer':<15} {'payload':>7} {'before us':>10} {'after us':>9} {'added us':>9}   (per call: CALL in, "
          "RESULT out)")
    for subprotocol in SUBPROTOCOLS:
        for size in SIZES:
            before = cpu_per_call(relay_before.Relay, subprotocol, size, count)
            after = cpu_per_call(Relay, subprotocol, size, count)
            print(f"{subprotocol:<15} {size:>6}B {before:10.1f} {after:9.1f} {after - before:+9.1f}")


if __name__ == "__main__":
    main()
