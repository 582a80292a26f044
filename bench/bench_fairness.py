"""Fairness: one user's round trip while four guests send the largest messages as fast as the limits allow.

Not a test. Starts a throw-away Crossbar on 127.0.0.1 (the generated config)
and one gunicorn bridge worker serving the app of ``bench_relay.py`` with the
library's default limits (``WAMP_BRIDGE_BYTE_RATE``, ``_BYTE_BURST``,
``_MESSAGE_RATE`` ...). A logged-in user's probe session, in this process,
measures the round trip of a CALL the router answers with ERROR
``no_such_procedure`` (bridge and router, no callee), first alone, then while
four guests (anonymous sessions, each in a process of its own) send
``--size`` byte CALLs paced to the byte rate the bridge allows them: a message
whenever their own byte bucket is not in debt, as the bridge's bucket lets
through, replies read as they come. With ``--unbounded`` a third phase lifts
the byte limits (``WAMP_BRIDGE_BYTE_RATE = None``: what the message rate
alone allowed), with guests pacing themselves to ``--unbounded-rate`` bytes/s.

The target: the user's p99 under the guests within 50 ms of the idle p99. The
machine's other load moves these figures: compare within one run. Run from
the repository root::

    .venv/bin/python bench/bench_fairness.py [--probe 300] [--size 1047552] [--guests 4] [--unbounded]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_relay import BENCH_AUTHID  # noqa: E402
from bench.bench_relay import BENCH_SECRET  # noqa: E402
from bench.bench_relay import PEER_SECRET  # noqa: E402
from bench.bench_relay import _children  # noqa: E402
from bench.bench_relay import _end  # noqa: E402
from bench.bench_relay import _env  # noqa: E402
from bench.bench_relay import _free_port  # noqa: E402

HELLO = {"roles": {"caller": {}}}
BOUND = 60.0  # seconds: no step waits longer for anything
GUEST_TIME = 600.0  # seconds a guest process runs at most


def _connect(port: int, realm: str, cookie: str | None) -> t.Any:
    """A joined JSON session through the bridge (the socket)."""
    import gevent

    from flask_wamp_bridge.websocket.client import connect

    headers = {"Cookie": cookie} if cookie else {}
    ws = connect(f"ws://127.0.0.1:{port}/wamp", subprotocols=["wamp.2.json"], headers=headers, timeout=BOUND)
    ws.send(json.dumps([1, realm, HELLO]))
    with gevent.Timeout(BOUND):
        reply = ws.receive()
    if not isinstance(reply, str) or not reply.startswith("[2,"):
        ws.close()
        raise RuntimeError(f"no WELCOME: {reply!r}")
    return ws


def _probe(ws: t.Any, count: int, first_id: int) -> dict[str, float]:
    """Round trips of a CALL the router answers with ERROR (no callee), 20 ms apart: p50, p99, max in ms."""
    times = []
    for request_id in range(first_id, first_id + count):
        start = time.monotonic()
        ws.send(json.dumps([48, request_id, {}, "app.bench.nobody"]))
        while True:
            reply = ws.receive()
            if reply is None:
                raise RuntimeError("the probe session ended")
            if json.loads(reply)[:3] == [8, 48, request_id]:
                break
        times.append(time.monotonic() - start)
        time.sleep(0.02)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(len(times) * 0.99) - 1],
            "max_ms": 1000 * times[-1]}


def _guest(port: int, realm: str, size: int, rate: float, burst: int) -> None:
    """Send ``size``-byte CALLs whenever a bucket like the bridge's (``rate``, ``burst``) is not in debt."""
    import gevent

    ws = _connect(port, realm, None)
    refused = [0]

    def read() -> None:
        while True:
            reply = ws.receive()
            if reply is None:
                return
            if '"wamp.error.canceled"' in reply[:200]:
                refused[0] += 1

    reader = gevent.spawn(read)
    arg = "x" * (size - 100)
    tokens, stamp, request_id = float(burst), time.monotonic(), 0
    print("sending", flush=True)
    end = time.monotonic() + GUEST_TIME
    while time.monotonic() < end and not reader.dead:
        now = time.monotonic()
        tokens = min(float(burst), tokens + (now - stamp) * rate)
        stamp = now
        if tokens < 0:
            gevent.sleep(-tokens / rate + 0.001)
            continue
        request_id += 1
        frame = json.dumps([48, request_id, {}, "app.bench.nobody", [arg]])
        ws.send(frame)
        tokens -= len(frame)


def _start_bridge(settings: dict[str, t.Any], log: t.IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = _env()
    for key, value in settings.items():
        env[f"FLASK_{key}"] = value if isinstance(value, str) else json.dumps(value)
    env["BENCH_RELAY"] = "after"
    argv = [sys.executable, "-m", "gunicorn", "-k", "flask_wamp_bridge.worker", "--no-control-socket",
            "-b", f"127.0.0.1:{port}", "-w", "1", "bench.bench_relay:create_app()"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    import urllib.request

    deadline = time.monotonic() + BOUND
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/login",
                                                               data=b"user=probe"), timeout=2):
                pass
            if _children(proc.pid):
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _end(proc)
            raise SystemExit("the bridge did not start")
        time.sleep(0.1)


def _login_cookie(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/login", data=b"user=bench-user"),
                                timeout=10) as response:
        return str(response.headers["Set-Cookie"].split(";", 1)[0])


def _joined(port: int, realm: str, cookie: str) -> t.Any:
    start = time.monotonic()
    while True:  # the worker's peer joins (and registers the authenticator) after the worker starts
        try:
            return _connect(port, realm, cookie)
        except Exception:
            if time.monotonic() - start > BOUND:
                raise
            time.sleep(0.1)


def _phase(port: int, realm: str, args: argparse.Namespace, rate: float, burst: int) -> dict[str, float]:
    """The probe's round trips while ``--guests`` guests send at ``rate`` bytes/s."""
    from bench.bench_relay import _env as env

    probe = _joined(port, realm, _login_cookie(port))
    guests = [subprocess.Popen([sys.executable, __file__, "--guest", "--port", str(port), "--realm", realm,
                                "--size", str(args.size), "--rate", str(rate), "--burst", str(burst)],
                               cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True) for _ in range(args.guests)]
    try:
        for guest in guests:
            assert guest.stdout is not None and guest.stdout.readline().strip() == "sending"
        time.sleep(1.0)
        return _probe(probe, args.probe, 1)
    finally:
        for guest in guests:
            _end(guest)
        probe.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", type=int, default=300, help="probe round trips per phase")
    parser.add_argument("--guests", type=int, default=4, help="guest sessions sending large messages")
    parser.add_argument("--size", type=int, default=(1 << 20) - 1024, help="each guest message's size, bytes")
    parser.add_argument("--unbounded", action="store_true", help="also run with the byte limits lifted")
    parser.add_argument("--unbounded-rate", type=float, default=float(16 << 20),
                        help="bytes/s each guest sends with the byte limits lifted")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)  # internal: be a guest
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--realm", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--burst", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guest:
        _guest(args.port, args.realm, args.size, args.rate, args.burst)
        return
    from flask_wamp_bridge import settings as table
    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar

    rate, burst = table.DEFAULTS["WAMP_BRIDGE_BYTE_RATE"], table.DEFAULTS["WAMP_BRIDGE_BYTE_BURST"]
    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{_free_port()}/ws",
        "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
        "WAMP_BRIDGE_SERVICES": {BENCH_AUTHID: {"secret": BENCH_SECRET, "role": "backend"}},
    }
    report: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp:
        router = CrossbarProcess(settings, Path(tmp) / "crossbar", crossbar=find_crossbar())
        router.start(120)
        log = open(Path(tmp) / "gunicorn.log", "wb")
        try:
            runs = [("limits", settings, rate, burst)]
            if args.unbounded:
                runs.append(("unbounded", {**settings, "WAMP_BRIDGE_BYTE_RATE": None,
                                           "WAMP_BRIDGE_USER_BYTE_RATE": None},
                             args.unbounded_rate, int(args.unbounded_rate)))
            for name, bridge_settings, guest_rate, guest_burst in runs:
                bridge, port = _start_bridge(bridge_settings, log)
                try:
                    if name == "limits":
                        probe = _joined(port, router.realm, _login_cookie(port))
                        try:
                            report["idle"] = _probe(probe, args.probe, 1)
                        finally:
                            probe.close()
                    report[f"{args.guests} guests, {name}"] = _phase(port, router.realm, args, guest_rate,
                                                                     guest_burst)
                finally:
                    _end(bridge)
        finally:
            router.stop()
            log.close()
    print(f"\nthe user's round trip (ms); guests send {args.size} B CALLs, {rate:g} B/s each at the limits")
    print(f"  {'phase':<26}{'p50':>8}{'p99':>8}{'max':>8}{'p99 - idle':>12}{'p99 / idle':>12}")
    idle = report["idle"]["p99_ms"]
    for name, row in report.items():
        print(f"  {name:<26}{row['p50_ms']:8.1f}{row['p99_ms']:8.1f}{row['max_ms']:8.1f}"
              f"{row['p99_ms'] - idle:+12.1f}{row['p99_ms'] / idle:12.2f}")


if __name__ == "__main__":
    main()
