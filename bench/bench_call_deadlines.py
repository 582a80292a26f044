"""The cost of the bridge's deadline per browser CALL, side by side with the relay without it.

Not a test. Sans-IO, one process: a logged-in :class:`~flask_wamp_bridge.bridge.relay.Relay` relays CALL +
RESULT pairs (with ``call_timeout`` 60 s, and None: no deadline for calls without their own ``timeout``), and
the process ticker's work per tick for 10,000 idle sessions and for 10,000 sessions with 5 calls each in
flight. Reported as ratios (this machine is noisy: compare within one run)::

    .venv/bin/python bench/bench_call_deadlines.py [--calls 100000] [--sessions 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from relay_pair import NOW  # noqa: E402
from relay_pair import RelayPair  # noqa: E402

from flask_wamp_bridge.bridge.checks import Limits  # noqa: E402
from flask_wamp_bridge.bridge.identity import Identity  # noqa: E402


def _pair(call_timeout: float | None) -> RelayPair:
    limits = Limits(max_calls_in_flight=None, message_rate=None)  # the clock stands still here: no token bucket
    pair = RelayPair(Identity("ann", "user"), call_timeout=call_timeout, limits=limits)
    assert pair.login()[0] == 2
    return pair


def calls_per_second(call_timeout: float | None, count: int) -> float:
    pair = _pair(call_timeout)
    relay, dumps = pair.relay, pair.serializer.dumps
    calls = [dumps([48, i, {}, "app.echo", [i]]) for i in range(1, count + 1)]
    results = [dumps([50, i, {}, [i]]) for i in range(1, count + 1)]
    start = time.perf_counter()
    for call, result in zip(calls, results, strict=True):
        relay.from_client(call)
        relay.from_router(result)
    return count / (time.perf_counter() - start)


def tick_seconds(call_timeout: float | None, sessions: int, in_flight: int) -> float:
    pairs = [_pair(call_timeout) for _ in range(sessions)]
    for pair in pairs:
        for i in range(1, in_flight + 1):
            pair.relay.from_client(pair.serializer.dumps([48, i, {}, "app.slow"]))
    start = time.perf_counter()
    rounds = 20
    for round_ in range(rounds):
        now = NOW + 0.5 * (round_ + 1)
        for pair in pairs:
            pair.relay.tick(now)
    return (time.perf_counter() - start) / rounds


def _best(measure: t.Callable[[float | None], float], repeats: int, higher: bool) -> tuple[float, float]:
    """With and without deadlines, interleaved ``repeats`` times; the best of each (the least disturbed run)."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(repeats):
        on.append(measure(60.0))
        off.append(measure(None))
    pick = max if higher else min
    return pick(on), pick(off)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    on, off = _best(lambda timeout: calls_per_second(timeout, args.calls), args.repeats, True)
    print(f"CALL+RESULT through one relay: {on:,.0f}/s with deadlines, {off:,.0f}/s without ({on / off:.2f}x)")
    for in_flight in (0, 5):
        on, off = _best(lambda timeout, n=in_flight: tick_seconds(timeout, args.sessions, n), args.repeats, False)
        print(f"one tick of {args.sessions:,} sessions, {in_flight} calls in flight each: {1000 * on:.1f} ms with "
              f"deadlines, {1000 * off:.1f} ms without ({on / off:.2f}x)")


if __name__ == "__main__":
    main()
