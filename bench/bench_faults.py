"""Faults, timed: detection, recovery, login storms and one session's stall caused by another.

Not a test. Starts a throw-away Crossbar on 127.0.0.1 (the generated config)
and gunicorn bridge workers serving the app of ``bench_relay.py``; the
browsers are the library's own gevent WebSocket client in this process,
speaking raw JSON WAMP. Reports, in one run:

- detection: seconds from a stalled (SIGSTOP) or killed (SIGKILL) router to
  the moment every open browser session got its ABORT and close (liveness:
  ``WAMP_BRIDGE_UPSTREAM_PING_INTERVAL`` + ``_TIMEOUT``, 12 + 3 s by default);
- recovery: seconds from a restarted router accepting sessions to a fresh
  browser's WELCOME through the bridge (the app's peer has rejoined and
  registered the authenticator), and from ``kill -9`` of a worker to a fresh
  browser's WELCOME;
- login storm: ``N`` browsers logging in at once (100 and 1,000), sessions/s
  and p50/p99 connect-to-WELCOME, through the bridge and directly on Crossbar
  (a ticket login, as the bridge does);
- hung worker: browsers with calls in flight on both workers' callees, one
  worker frozen (SIGSTOP) for ``--hang`` seconds, then SIGCONT: seconds until
  every call was answered, how many before the worker resumed, and how
  (RESULT, ``wamp.error.canceled``, the bridge's own faults);
- half-open link: a TCP proxy between the bridge and the router stops
  forwarding one direction of the browsers' upstreams (router->bridge, then
  bridge->router) with calls in flight: seconds until every call was answered,
  and how;
- fairness: the p50/p99/max round trip of a probe session while another
  session on the same worker sends max-size messages, and while it floods
  calls (the probe's round trip is a CALL the router answers with ERROR
  ``no_such_procedure``: bridge and router, no callee; and a plain HTTP
  request to the same worker: the worker alone).

The machine's other load moves these figures: compare within one run. Run from
the repository root::

    .venv/bin/python bench/bench_faults.py [--storms 100,1000] [--probe 300] [--phases storms,fairness]
    .venv/bin/python bench/bench_faults.py --phases hung,halfopen [--hang 20] [--sessions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_relay import APP_SECRET_KEY  # noqa: E402
from bench.bench_relay import BENCH_AUTHID  # noqa: E402
from bench.bench_relay import BENCH_SECRET  # noqa: E402
from bench.bench_relay import PEER_SECRET  # noqa: E402
from bench.bench_relay import _children  # noqa: E402
from bench.bench_relay import _end  # noqa: E402
from bench.bench_relay import _free_port  # noqa: E402
from bench.bench_relay import _start_bridge  # noqa: E402

HELLO = {"roles": {"caller": {}, "subscriber": {}}}
BOUND = 60.0  # seconds: no phase waits longer for anything


def _login_cookie(port: int, user: str) -> str:
    body = urllib.parse.urlencode({"user": user}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/login", data=body),
                                timeout=10) as response:
        return str(response.headers["Set-Cookie"].split(";", 1)[0])


def _browser(port: int, realm: str, cookie: str) -> t.Any:
    """A joined session through the bridge (the socket), or raise."""
    import gevent

    from flask_wamp_bridge.websocket.client import connect

    ws = connect(f"ws://127.0.0.1:{port}/wamp", subprotocols=["wamp.2.json"], headers={"Cookie": cookie},
                 timeout=BOUND)
    ws.send(json.dumps([1, realm, HELLO]))
    with gevent.Timeout(BOUND):
        reply = ws.receive()
    if not isinstance(reply, str) or not reply.startswith("[2,"):
        ws.close()
        raise RuntimeError(f"no WELCOME: {reply!r}")
    return ws


def _direct(router_url: str, realm: str, user: str) -> t.Any:
    """A joined session directly on Crossbar with a connection-bound ticket (what the bridge does)."""
    import gevent

    from flask_wamp_bridge.bridge import tickets
    from flask_wamp_bridge.bridge.identity import Identity
    from flask_wamp_bridge.websocket.client import connect

    ws = connect(router_url, subprotocols=["wamp.2.json"], timeout=BOUND)
    ws.send(json.dumps([1, realm, {**HELLO, "authid": user, "authmethods": ["ticket"]}]))
    with gevent.Timeout(BOUND):
        challenge = ws.receive()
        secret = tickets.ticket_secret({"SECRET_KEY": APP_SECRET_KEY})
        peer = tickets.peer_descriptor(ws.local_address)
        signed = tickets.sign(Identity(user, "user"), secret, time.time(), realm=realm, peer=peer)
        assert isinstance(challenge, str) and challenge.startswith("[4,"), challenge
        ws.send(json.dumps([5, signed, {}]))
        reply = ws.receive()
    if not isinstance(reply, str) or not reply.startswith("[2,"):
        ws.close()
        raise RuntimeError(f"no WELCOME: {reply!r}")
    return ws


def _until_closed(sockets: list[t.Any]) -> float:
    """Seconds until every socket was closed by the other side (messages before the close are read)."""
    import gevent

    start = time.monotonic()

    def drain(ws: t.Any) -> None:
        try:
            while ws.receive() is not None:
                pass
        except Exception:  # a dropped connection is closed too
            return

    with gevent.Timeout(BOUND):
        gevent.joinall([gevent.spawn(drain, ws) for ws in sockets])
    return time.monotonic() - start


def _retry_login(login: t.Callable[[], t.Any]) -> float:
    """Seconds until ``login()`` succeeds (retried at once on failure)."""
    start = time.monotonic()
    while time.monotonic() - start < BOUND:
        try:
            login().close()
            return time.monotonic() - start
        except Exception:
            time.sleep(0.02)
    return float("nan")


def _storm(login: t.Callable[[int], t.Any], count: int) -> dict[str, float]:
    import gevent

    times: list[float] = []
    sockets: list[t.Any] = []
    failed = [0]

    def one(i: int) -> None:
        start = time.monotonic()
        try:
            sockets.append(login(i))
            times.append(time.monotonic() - start)
        except Exception:
            failed[0] += 1

    start = time.monotonic()
    gevent.joinall([gevent.spawn(one, i) for i in range(count)])
    elapsed = time.monotonic() - start
    for ws in sockets:
        ws.close()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("nan")
    return {"ok": len(times), "failed": failed[0], "per_s": len(times) / elapsed,
            "p50_ms": 1000 * statistics.median(times) if times else float("nan"), "p99_ms": 1000 * p99}


def _probe(ws: t.Any, count: int) -> dict[str, float]:
    """Round trips of a CALL the router answers with ERROR (no callee): p50, p99, max in ms."""
    times = []
    for i in range(1, count + 1):
        start = time.monotonic()
        ws.send(json.dumps([48, i, {}, "app.bench.nobody"]))
        while True:
            reply = ws.receive()
            if reply is None:
                raise RuntimeError("the probe session ended")
            if json.loads(reply)[:3] == [8, 48, i]:
                break
        times.append(time.monotonic() - start)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(len(times) * 0.99) - 1],
            "max_ms": 1000 * times[-1]}


def _probe_http(port: int, count: int) -> dict[str, float]:
    """Round trips of a plain HTTP request to the same worker (no router involved): p50, p99, max in ms."""
    times = []
    for _ in range(count):
        start = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/nowhere", timeout=BOUND) as response:
                response.read()
        except urllib.error.HTTPError as error:  # the 404 is the answer
            error.read()
        times.append(time.monotonic() - start)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(len(times) * 0.99) - 1],
            "max_ms": 1000 * times[-1]}


def _noise(ws: t.Any, kind: str, size: int) -> None:
    """Keep a session busy, until killed: max-size CALLs one after another, or a flood of small ones."""
    i = 0
    arg = "x" * (size - 200)
    print("noise", flush=True)
    while True:
        i += 1
        if kind == "big":
            ws.send(json.dumps([48, i, {}, "app.bench.nobody", [arg]]))
            ws.receive()
        else:
            for _ in range(50):
                i += 1
                ws.send(json.dumps([48, i, {}, "app.bench.nobody"]))
            for _ in range(50):
                ws.receive()


def _fairness(port: int, realm: str, cookie: str, probe_count: int, size: int) -> dict[str, t.Any]:
    """The probe here; the noisy session in a process of its own (so only the bridge is shared)."""
    import subprocess

    from bench.bench_relay import _env

    probe = _browser(port, realm, cookie)
    results: dict[str, t.Any] = {"size": size, "alone": _probe(probe, probe_count),
                                 "alone_http": _probe_http(port, probe_count)}
    for kind in ("big", "flood"):
        noisy = subprocess.Popen([sys.executable, __file__, "--noise", kind, "--port", str(port), "--realm", realm,
                                  "--cookie", cookie, "--size", str(size)], cwd=REPO, env=_env(),
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert noisy.stdout is not None and noisy.stdout.readline().strip() == "noise"
            time.sleep(0.5)
            results[kind] = _probe(probe, probe_count)
            results[f"{kind}_http"] = _probe_http(port, probe_count)
        finally:
            _end(noisy)
    probe.close()
    return results


def _answers(calls: list[tuple[t.Any, list[int]]], bound: float) -> tuple[dict[int, tuple[float, str]], t.Any]:
    """Read every session's answers in greenlets: ``{call key: (seconds since now, how)}``, filled as they come."""
    import gevent

    start = time.monotonic()
    answered: dict[int, tuple[float, str]] = {}

    def read(index: int, ws: t.Any, ids: list[int]) -> None:
        waiting = set(ids)
        with gevent.Timeout(bound, False):
            while waiting:
                try:
                    data = ws.receive()
                except Exception:
                    data = None
                if data is None:
                    for request_id in waiting:  # the session ended without an answer: lost
                        answered.setdefault(index * 100_000 + request_id, (time.monotonic() - start, "lost"))
                    return
                message = json.loads(data)
                if message[0] == 50 and message[1] in waiting:
                    how, request_id = "RESULT", message[1]
                elif message[0] == 8 and message[1] == 48 and message[2] in waiting:
                    how, request_id = message[4], message[2]
                else:
                    continue
                waiting.discard(request_id)
                answered[index * 100_000 + request_id] = (time.monotonic() - start, how)

    readers = [gevent.spawn(read, i, ws, ids) for i, (ws, ids) in enumerate(calls)]
    return answered, readers


def _summary(answered: dict[int, tuple[float, str]], total: int) -> dict[str, t.Any]:
    hows: dict[str, int] = {}
    for _, how in answered.values():
        hows[how] = hows.get(how, 0) + 1
    times = sorted(seconds for seconds, how in answered.values() if how != "lost")
    return {"calls": total, "answered": len(times), "all_answered_s": times[-1] if len(times) == total else None,
            "p50_s": statistics.median(times) if times else None, "how": hows}


def _calls_in_flight(port: int, realm: str, cookie: str, sessions: int, per: int,
                     seconds: float) -> list[tuple[t.Any, list[int]]]:
    calls = []
    for _ in range(sessions):
        ws = _browser(port, realm, cookie)
        ids = list(range(1, per + 1))
        for request_id in ids:
            ws.send(json.dumps([48, request_id, {}, "app.bench.sleep", [seconds]]))
        calls.append((ws, ids))
    return calls


def _hung_worker(bridge: t.Any, port: int, realm: str, cookie: str, sessions: int, hang: float) -> dict[str, t.Any]:
    """Calls in flight on both workers' callees; one worker SIGSTOPped for ``hang`` s: when is every call answered?"""
    import gevent

    calls = _calls_in_flight(port, realm, cookie, sessions, 4, 3.0)
    time.sleep(0.5)  # every invocation reached a callee (round robin: both workers)
    victim = _children(bridge.pid)[0]
    os.kill(victim, signal.SIGSTOP)
    answered, readers = _answers(calls, hang + BOUND)
    try:
        gevent.sleep(hang)
        before = dict(answered)
    finally:
        os.kill(victim, signal.SIGCONT)
    gevent.joinall(readers)
    for ws, _ in calls:
        ws.close()
    total = sum(len(ids) for _, ids in calls)
    return {"hang_s": hang, "before_resume": _summary(before, total), "after": _summary(answered, total)}


def _half_open(settings: dict[str, t.Any], log: t.IO[bytes], sessions: int) -> dict[str, t.Any]:
    """A proxy between bridge and router stops one direction of the browsers' upstreams, calls in flight."""
    import gevent

    from tests.tcp_proxy import TcpProxy

    router_port = urllib.parse.urlsplit(settings["WAMP_BRIDGE_ROUTER_URL"]).port
    proxy = TcpProxy(t.cast(int, router_port))
    proxied = {**settings, "WAMP_BRIDGE_ROUTER_URL": proxy.url(), "WAMP_BRIDGE_TICKET_BIND_PEER": False}
    bridge, port, _ = _start_bridge(proxied, log, ["-w", "1"])
    results: dict[str, t.Any] = {}
    try:
        realm = "realm1"
        cookie = _login_cookie(port, "bench-user")
        _retry_login(lambda: _browser(port, realm, cookie))
        for direction in ("down", "up"):
            known = len(proxy.links)
            calls = _calls_in_flight(port, realm, cookie, sessions, 4, 120.0)
            time.sleep(0.5)
            proxy.hold(t.cast(t.Any, direction), proxy.links[known:])  # the browsers' upstreams, not the peer's
            answered, readers = _answers(calls, 2 * BOUND)
            gevent.joinall(readers)
            results[direction] = _summary(answered, sum(len(ids) for _, ids in calls))
            for ws, _ in calls:
                ws.close()
    finally:
        _end(bridge)
        proxy.close()
    return results


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storms", default="100,1000", help="browsers logging in at once, comma-separated")
    parser.add_argument("--probe", type=int, default=300, help="probe round trips per fairness phase")
    parser.add_argument("--sessions", type=int, default=20, help="open sessions during the router faults")
    parser.add_argument("--phases", default="faults,storms,fairness,hung,halfopen",
                        help="which phases to run, comma-separated (faults, storms, fairness, hung, halfopen)")
    parser.add_argument("--hang", type=float, default=20.0,
                        help="seconds a worker stays frozen in the hung-worker phase (under gunicorn's 30 s timeout)")
    parser.add_argument("--max-size", type=int, default=1 << 20,
                        help="WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE, and the noisy session's message size (fairness)")
    parser.add_argument("--max-logins", type=int, help="WAMP_BRIDGE_MAX_LOGINS (default: the library's)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=JSON",
                        help="another WAMP_BRIDGE_* setting for the bridge, e.g. WAMP_BRIDGE_LOGIN_TIMEOUT=2")
    parser.add_argument("--noise", help=argparse.SUPPRESS)  # internal: be the noisy session
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--realm", help=argparse.SUPPRESS)
    parser.add_argument("--cookie", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1 << 20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noise:
        _noise(_browser(args.port, args.realm, args.cookie), args.noise, args.size)
        return
    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar

    _raise_fd_limit()
    size = args.max_size
    phases = set(args.phases.split(","))
    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{_free_port()}/ws",
        "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
        "WAMP_BRIDGE_SERVICES": {BENCH_AUTHID: {"secret": BENCH_SECRET, "role": "backend"}},
        "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE": size,
    }
    for item in args.setting:
        key, _, value = item.partition("=")
        settings[key] = json.loads(value)
    if args.max_logins:
        settings["WAMP_BRIDGE_MAX_LOGINS"] = args.max_logins
    report: dict[str, t.Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        router = CrossbarProcess(settings, Path(tmp) / "crossbar", crossbar=find_crossbar())
        router.start(120)
        log = open(Path(tmp) / "gunicorn.log", "wb")
        bridge = None
        try:
            bridge, port, _ = _start_bridge(settings, log, ["-w", "2", "--worker-connections", "3000"])
            realm = router.realm
            cookie = _login_cookie(port, "bench-user")
            for _ in range(10):  # the workers' peers have joined (the authenticator answers)
                _retry_login(lambda: _browser(port, realm, cookie))

            if "faults" in phases:
                # router stalled, then killed: when do open sessions learn it?
                for fault, sig in (("stalled", signal.SIGSTOP), ("killed", signal.SIGKILL)):
                    _retry_login(lambda: _browser(port, realm, cookie))  # the peers are back from the last fault
                    sockets = [_browser(port, realm, cookie) for _ in range(args.sessions)]
                    assert router.pid is not None
                    os.killpg(router.pid, sig)
                    report[f"detect_{fault}_s"] = _until_closed(sockets)
                    if sig == signal.SIGSTOP:
                        os.killpg(router.pid, signal.SIGCONT)
                router.stop()
                router.start(120)  # same port
                report["recover_router_restart_s"] = _retry_login(lambda: _browser(port, realm, cookie))

                workers = _children(bridge.pid)
                os.kill(workers[0], signal.SIGKILL)
                report["recover_worker_kill_s"] = _retry_login(lambda: _browser(port, realm, cookie))

            if "hung" in phases:
                _retry_login(lambda: _browser(port, realm, cookie))
                report["hung_worker"] = _hung_worker(bridge, port, realm, cookie, args.sessions, args.hang)

            for count in (int(n) for n in args.storms.split(",") if "storms" in phases):
                report[f"storm_{count}_bridge"] = _storm(lambda i: _browser(port, realm, cookie), count)
                report[f"storm_{count}_direct"] = _storm(lambda i: _direct(router.url, realm, f"u{i}"), count)
        finally:
            if bridge is not None:
                _end(bridge)
                bridge = None
        try:
            if "halfopen" in phases:
                report["half_open"] = _half_open(settings, log, args.sessions)
            if "fairness" in phases:
                bridge, port, _ = _start_bridge(settings, log, ["-w", "1"])
                cookie = _login_cookie(port, "bench-user")
                report["fairness"] = _fairness(port, router.realm, cookie, args.probe, size)
        finally:
            if bridge is not None:
                _end(bridge)
            router.stop()
            log.close()
    _print(report)


def _print(report: dict[str, t.Any]) -> None:
    if "detect_stalled_s" in report:
        print("\nfault                               seconds")
        for key in ("detect_stalled_s", "detect_killed_s", "recover_router_restart_s", "recover_worker_kill_s"):
            print(f"  {key:<34}{report.get(key, float('nan')):8.2f}")
    print("\nlogin storm        path     ok  failed  sessions/s  p50 ms  p99 ms")
    for key, value in report.items():
        if key.startswith("storm_"):
            _, count, path = key.split("_")
            print(f"  {count:>6} at once  {path:<7}{value['ok']:>5}{value['failed']:>8}{value['per_s']:>12.0f}"
                  f"{value['p50_ms']:>8.0f}{value['p99_ms']:>8.0f}")
    for count in {key.split("_")[1] for key in report if key.startswith("storm_")}:
        bridge, direct = report[f"storm_{count}_bridge"], report[f"storm_{count}_direct"]
        print(f"  {count}: bridge/direct sessions/s {bridge['per_s'] / direct['per_s']:.2f}x, "
              f"p99 {bridge['p99_ms'] / direct['p99_ms']:.2f}x")
    if "fairness" in report:
        size = report["fairness"]["size"]
        big = f"sends {size / (1 << 20):g} MiB messages"
        print("\nprobe round trip while another session ...   p50 ms  p99 ms  max ms"
              "   (HTTP to the worker: p50  p99  max)")
        for kind, label in (("alone", "is idle"), ("big", big), ("flood", "floods calls")):
            value, http = report["fairness"][kind], report["fairness"][f"{kind}_http"]
            print(f"  {label:<43}{value['p50_ms']:>7.1f}{value['p99_ms']:>8.1f}{value['max_ms']:>8.1f}"
                  f"   {http['p50_ms']:>17.1f}{http['p99_ms']:>5.1f}{http['max_ms']:>5.1f}")
    for name, label in (("hung_worker", "worker frozen"), ("half_open", "half-open link")):
        if name in report:
            print(f"\n{label}: calls answered (seconds until all; how)")
            cases = report[name].items() if name == "half_open" else [
                ("before resume", report[name]["before_resume"]), ("in all", report[name]["after"])]
            for case, value in cases:
                if not isinstance(value, dict):
                    continue
                print(f"  {case:<16}{value['answered']:>5} of {value['calls']:<5} all in "
                      f"{value['all_answered_s'] if value['all_answered_s'] is not None else '-'!s:>8} s  "
                      f"{value['how']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
