"""RPC throughput through one Crossbar: flask_wamp_bridge's peer vs autobahn-python vs wampy.

Not a test. Starts a throw-away Crossbar on 127.0.0.1 and one callee process
(``bench.echo``, the same for every caller: autobahn by default, ``--callee
ours`` for ours), then runs each caller library in its own process (``import
wampy`` monkey-patches, so nothing shares a process with it):

- sequential: one call at a time, ``--seq`` calls;
- in flight: ``--total`` calls with ``--inflight`` outstanding at once (wampy
  cannot: it has one queue and no request-id matching, so concurrent calls get
  each other's results; it is run sequentially only).

Our peer runs three times, by its upstream: ``ours`` over a WebSocket (JSON,
the default), ``ours-rawsocket`` over RawSocket on TCP and ``ours-unix`` over
RawSocket on the router's Unix socket (both msgpack).

Every call sends a distinct number and checks its own answer. Prints calls/s,
the caller's and the router's CPU per call, and the ratios of each of ours to
autobahn, wampy and ours over a WebSocket. Run from the repository root::

    .venv/bin/python bench/bench_rpc.py [--seq 2000] [--total 10000] [--inflight 1000]

``--validation`` measures instead what checking arguments against type hints
costs: the callee is a Flask app with ``WampBridge`` serving
``echo(n: int) -> int``, once with ``WAMP_BRIDGE_VALIDATION = "off"`` and once
``"lax"`` (pydantic if installed), one after the other in the same run, each
called by our peer; it prints calls/s and the callee's CPU per call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_AUTHID = "bench"
BENCH_SECRET = "bench-secret-not-for-production"
PEER_SECRET = "bench-peer-secret-not-for-production"
PROCEDURE = "bench.echo"
CALLER_TIMEOUT = 180.0  # seconds per caller process, a hard bound
#: Our peer by its upstream: WebSocket (JSON), RawSocket on TCP, RawSocket on the Unix socket (msgpack).
OURS = ("ours", "ours-rawsocket", "ours-unix")


# --- callers and callee, each run as ``bench_rpc.py --role ...`` in its own process --------------


def run_ours(url: str, realm: str, args: argparse.Namespace) -> dict[str, t.Any]:
    import gevent
    import gevent.pool

    from flask_wamp_bridge.wamp.client_auth import WampCraAuth
    from flask_wamp_bridge.wamp.peer import Peer

    upstream: dict[str, t.Any] = {}
    if args.lib == "ours-rawsocket":
        upstream = {"upstream": "rawsocket"}
    elif args.lib == "ours-unix":
        upstream = {"upstream": "rawsocket", "rawsocket_path": args.rawsocket_path}
    peer = Peer(url, realm, WampCraAuth(BENCH_AUTHID, BENCH_SECRET), call_timeout=60, **upstream)
    if not peer.wait_ready(30):
        raise SystemExit("our peer could not join")
    call = peer.call
    bad = 0
    for n in range(200):  # warm-up
        bad += call(PROCEDURE, n) != n
    start, cpu = time.perf_counter(), _cpu()
    for n in range(args.seq):
        bad += call(PROCEDURE, n) != n
    seq = args.seq / (time.perf_counter() - start)
    cpu_us = (_cpu() - cpu) / args.seq * 1e6

    pool = gevent.pool.Pool(args.inflight)
    results: list[bool] = []

    def one(n: int) -> None:
        results.append(call(PROCEDURE, n) == n)

    start = time.perf_counter()
    for n in range(args.total):
        pool.spawn(one, n)
    pool.join()
    conc = args.total / (time.perf_counter() - start)
    bad += results.count(False) + (args.total - len(results))
    peer.stop()
    return {"sequential": seq, "inflight": conc, "wrong": bad, "cpu_us": cpu_us}


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _autobahn_session(realm: str, body: t.Callable[[t.Any], t.Awaitable[dict[str, t.Any]]],
                      out: dict[str, t.Any]) -> type:
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.wamp import auth

    class Session(ApplicationSession):  # type: ignore[misc]
        def onConnect(self) -> None:
            self.join(realm, authmethods=["wampcra"], authid=BENCH_AUTHID)

        def onChallenge(self, challenge: t.Any) -> str:
            return auth.compute_wcs(BENCH_SECRET, challenge.extra["challenge"]).decode()

        async def onJoin(self, details: t.Any) -> None:
            out.update(await body(self))
            if out.get("leave", True):
                self.leave()

        def onDisconnect(self) -> None:
            import asyncio

            asyncio.get_event_loop().stop()

    return Session


def run_autobahn(url: str, realm: str, args: argparse.Namespace) -> dict[str, t.Any]:
    import asyncio

    from autobahn.asyncio.wamp import ApplicationRunner
    from autobahn.wamp.serializer import JsonSerializer

    async def body(session: t.Any) -> dict[str, t.Any]:
        bad = 0
        for n in range(200):
            bad += await session.call(PROCEDURE, n) != n
        start, cpu = time.perf_counter(), _cpu()
        for n in range(args.seq):
            bad += await session.call(PROCEDURE, n) != n
        seq = args.seq / (time.perf_counter() - start)
        cpu_us = (_cpu() - cpu) / args.seq * 1e6
        limit = asyncio.Semaphore(args.inflight)

        async def one(n: int) -> bool:
            async with limit:
                return bool(await session.call(PROCEDURE, n) == n)

        start = time.perf_counter()
        results = await asyncio.gather(*(one(n) for n in range(args.total)))
        conc = args.total / (time.perf_counter() - start)
        return {"sequential": seq, "inflight": conc, "wrong": bad + results.count(False), "cpu_us": cpu_us}

    out: dict[str, t.Any] = {}
    runner = ApplicationRunner(url, realm, serializers=[JsonSerializer()])
    runner.run(_autobahn_session(realm, body, out))
    return out


def run_wampy(url: str, realm: str, args: argparse.Namespace) -> dict[str, t.Any]:
    os.environ["WAMPYSECRET"] = BENCH_SECRET
    from wampy.constants import DEFAULT_ROLES
    from wampy.peers.clients import Client

    roles = json.loads(json.dumps(DEFAULT_ROLES))
    roles.update(authmethods=["wampcra"], authid=BENCH_AUTHID)
    client = Client(url=url, realm=realm, roles=roles, call_timeout=60)
    client.start()
    bad = 0
    for n in range(20):
        bad += client.call(PROCEDURE, n) != n
    count = args.seq_wampy
    start, cpu = time.perf_counter(), _cpu()
    for n in range(count):
        bad += client.call(PROCEDURE, n) != n
    seq = count / (time.perf_counter() - start)
    cpu_us = (_cpu() - cpu) / count * 1e6
    client.stop()
    return {"sequential": seq, "inflight": None, "wrong": bad, "cpu_us": cpu_us}


def run_app_callee(url: str, realm: str, validation: str) -> None:
    import gevent
    from flask import Flask

    from flask_wamp_bridge import WampBridge

    bridge = WampBridge()

    @bridge.register(PROCEDURE)
    def echo(n: int) -> int:
        return n

    app = Flask("bench_app")
    app.config.update(WAMP_BRIDGE_ROUTER_URL=url, WAMP_BRIDGE_REALM=realm, WAMP_BRIDGE_PEER_AUTHID=BENCH_AUTHID,
                      WAMP_BRIDGE_PEER_SECRET=BENCH_SECRET, WAMP_BRIDGE_PATH=None, WAMP_BRIDGE_VALIDATION=validation,
                      WAMP_BRIDGE_PEER_CONCURRENCY=2000, WAMP_BRIDGE_PEER_BACKLOG=10000)
    bridge.init_app(app)
    state = bridge.state(app)
    state.start_peer()
    if not state.peer.wait_ready(30):
        raise SystemExit("callee could not join")
    print("ready", flush=True)
    gevent.wait()


def run_callee(url: str, realm: str, lib: str) -> None:
    if lib.startswith("app-"):
        run_app_callee(url, realm, lib[len("app-"):])
        return
    if lib == "ours":
        import gevent

        from flask_wamp_bridge.wamp.client_auth import WampCraAuth
        from flask_wamp_bridge.wamp.peer import Peer

        peer = Peer(url, realm, WampCraAuth(BENCH_AUTHID, BENCH_SECRET), concurrency=2000, backlog=10000)
        peer.register(PROCEDURE, lambda n: n)
        if not peer.wait_ready(30):
            raise SystemExit("callee could not join")
        print("ready", flush=True)
        gevent.wait()
        return
    from autobahn.asyncio.wamp import ApplicationRunner
    from autobahn.wamp.serializer import JsonSerializer

    async def body(session: t.Any) -> dict[str, t.Any]:
        await session.register(lambda n: n, PROCEDURE)
        print("ready", flush=True)
        return {"leave": False}

    ApplicationRunner(url, realm, serializers=[JsonSerializer()]).run(_autobahn_session(realm, body, {}))


# --- orchestration -----------------------------------------------------------------------------


def _spawn(role: str, lib: str, url: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--role", role, "--lib", lib, "--url", url,
            "--seq", str(args.seq), "--seq-wampy", str(args.seq_wampy), "--total", str(args.total),
            "--inflight", str(args.inflight), "--rawsocket-path", args.rawsocket_path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def orchestrate(args: argparse.Namespace) -> None:
    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar

    with socket_port() as port:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-crossbar-") as cbdir:
        args.rawsocket_path = os.path.join(cbdir, "router.sock")
        settings = {
            "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{port}/ws",
            "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
            "WAMP_BRIDGE_SERVICES": {BENCH_AUTHID: {"secret": BENCH_SECRET, "role": "backend"}},
            "WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0,
            "WAMP_BRIDGE_RAWSOCKET_PATH": args.rawsocket_path,
            "WAMP_BRIDGE_RAWSOCKET_PORT": port + 1,
        }
        router = CrossbarProcess(settings, cbdir, crossbar=find_crossbar())
        print(f"starting Crossbar on {router.url} ...", flush=True)
        router.start(120)
        if args.validation:
            try:
                report_validation(validation_runs(router, args), args)
            finally:
                router.stop()
            return
        callee = _spawn("callee", args.callee, router.url, args)
        try:
            assert callee.stdout is not None
            if callee.stdout.readline().strip() != "ready":
                raise SystemExit("the callee did not start")
            results: dict[str, dict[str, t.Any]] = {}
            for lib in (*OURS, "autobahn", "wampy"):
                router_cpu = _tree_cpu(router.pid)
                proc = _spawn("caller", lib, router.url, args)
                try:
                    out, _ = proc.communicate(timeout=CALLER_TIMEOUT)
                except subprocess.TimeoutExpired:
                    _end(proc)
                    print(f"{lib}: gave up after {CALLER_TIMEOUT:g} s")
                    continue
                finally:
                    _end(proc)
                lines = [line for line in out.splitlines() if line.startswith("{")]
                if proc.returncode != 0 or not lines:
                    print(f"{lib}: failed (exit {proc.returncode})")
                    continue
                results[lib] = json.loads(lines[-1])
                calls = args.seq_wampy + 20 if lib == "wampy" else args.seq + 200 + args.total
                results[lib]["router_us"] = (_tree_cpu(router.pid) - router_cpu) / calls * 1e6
        finally:
            _end(callee)
            router.stop()
    report(results, args)


def validation_runs(router: t.Any, args: argparse.Namespace) -> dict[str, dict[str, t.Any]]:
    """Our peer calling the app callee without, then with, argument validation."""
    results: dict[str, dict[str, t.Any]] = {}
    calls = args.seq + 200 + args.total
    for mode in ("off", "lax", "strict"):
        callee = _spawn("callee", f"app-{mode}", router.url, args)
        try:
            assert callee.stdout is not None
            if callee.stdout.readline().strip() != "ready":
                raise SystemExit(f"the app callee ({mode}) did not start")
            callee_cpu = _tree_cpu(callee.pid)
            proc = _spawn("caller", "ours", router.url, args)
            try:
                out, _ = proc.communicate(timeout=CALLER_TIMEOUT)
            finally:
                _end(proc)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise SystemExit(f"the caller failed against validation {mode!r} (exit {proc.returncode})")
            results[mode] = json.loads(lines[-1])
            results[mode]["callee_us"] = (_tree_cpu(callee.pid) - callee_cpu) / calls * 1e6
        finally:
            _end(callee)
    return results


def check_cost(rounds: int = 20000) -> dict[str, float]:
    """Microseconds per call of the callee's wrapper (app context, hooks, check, result), in this process."""
    import timeit

    from flask import Flask

    from flask_wamp_bridge.component.middleware import Hooks
    from flask_wamp_bridge.component.middleware import procedure_runner
    from flask_wamp_bridge.component.validation import validator_for

    app = Flask("bench_check")
    costs: dict[str, float] = {}
    modes: tuple[tuple[str, dict[str, t.Any] | None], ...] = (
        ("off", None), ("lax", {}), ("strict", {"strict": True}), ("plain lax", {"use_pydantic": False}))
    cases: list[tuple[str, t.Callable[..., t.Any], tuple[t.Any, ...], tuple[t.Any, ...]]] = [
        ("echo(n: int)", _echo, (7,), (7,)),
        # unchecked (off) the procedure gets a Point; every checker builds it from the dict
        ("mirror(p: Point, scale: int)", _mirror, ({"x": 1, "y": 2}, 3), (BenchPoint(1, 2), 3)),
    ]
    for label, fn, wire_args, built_args in cases:
        for mode, options in modes:
            validator = None if options is None else validator_for(fn, name=label, **options)
            call_args = built_args if options is None else wire_args
            if validator is None:  # the whole wrapper, for scale
                run = procedure_runner(fn, lambda: app, None, Hooks(), None, lambda: None)
                best = min(timeit.repeat(lambda: run(*call_args), number=rounds, repeat=5))  # noqa: B023
                costs[f"{label}: wrapper without check"] = best / rounds * 1e6
                continue
            check = validator
            best = min(timeit.repeat(lambda: check(call_args, {}), number=rounds, repeat=5))  # noqa: B023
            costs[f"{label}: check, {mode}"] = best / rounds * 1e6
    return costs


@dataclasses.dataclass
class BenchPoint:
    x: int
    y: int


def _echo(n: int) -> int:
    return n


def _mirror(p: BenchPoint, scale: int = 1) -> BenchPoint:
    return BenchPoint(p.y * scale, p.x * scale)


def report_validation(results: dict[str, dict[str, t.Any]], args: argparse.Namespace) -> None:
    try:
        import pydantic

        checker = f"pydantic {pydantic.VERSION}"
    except ImportError:
        checker = "the plain checker (no pydantic)"
    print(f"\ncallee: WampBridge app, echo(n: int) -> int, checked by {checker}; caller: ours; "
          f"sequential: {args.seq} calls; in flight: {args.total} calls, {args.inflight} at once")
    print(f"{'validation':<11} {'sequential/s':>13} {'in-flight/s':>12} {'wrong':>6} {'callee CPU us/call':>19}")
    for mode, r in results.items():
        print(f"{mode:<11} {r['sequential']:13.0f} {r['inflight']:12.0f} {r['wrong']:6d} {r['callee_us']:19.1f}")
    off = results["off"]
    for mode in ("lax", "strict"):
        r = results[mode]
        print(f"{mode}: {r['callee_us'] - off['callee_us']:+.1f} us callee CPU per call; sequential "
              f"{1e6 / r['sequential'] - 1e6 / off['sequential']:+.1f} us per call (end to end: noisy)")
    print("\nin process, best of 5: the callee's wrapper (app context, hooks, plain result) and the check alone:")
    costs = check_cost()
    for label, us in costs.items():
        print(f"  {label:<52} {us:7.2f} us/call")


def report(results: dict[str, dict[str, t.Any]], args: argparse.Namespace) -> None:
    print(f"\ncallee: {args.callee}; sequential: {args.seq} calls (wampy {args.seq_wampy}); "
          f"in flight: {args.total} calls, {args.inflight} at once")
    print(f"{'client':<14} {'sequential/s':>13} {'in-flight/s':>12} {'wrong':>6} {'client CPU us/call':>19}"
          f" {'router CPU us/call':>19}")
    for lib, r in results.items():
        conc = f"{r['inflight']:12.0f}" if r["inflight"] else f"{'n/a':>12}"
        print(f"{lib:<14} {r['sequential']:13.0f} {conc} {r['wrong']:6d} {r['cpu_us']:19.0f}"
              f" {r['router_us']:19.0f}")
    print("(client CPU: the caller process, sequential part; router CPU: Crossbar, whole run)")
    for name in OURS:
        ours = results.get(name)
        if not ours:
            continue
        for other in ("autobahn", "wampy", "ours"):
            r = results.get(other)
            if not r or other == name:
                continue
            parts = [f"sequential {ours['sequential'] / r['sequential']:.2f}x"]
            if r["inflight"]:
                parts.append(f"in flight {ours['inflight'] / r['inflight']:.2f}x")
            elif other == "wampy":
                parts.append(f"in flight (vs wampy sequential) {ours['inflight'] / r['sequential']:.2f}x")
            if other == "ours":
                parts.append(f"router CPU per call {ours['router_us'] / r['router_us']:.2f}x")
            print(f"{name}/{other}: " + ", ".join(parts))


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its children (Linux /proc)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class socket_port:
    """A free 127.0.0.1 port (context manager, released on exit)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: t.Any) -> None:
        self._sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=2000, help="sequential calls (ours, autobahn)")
    parser.add_argument("--seq-wampy", type=int, default=300, help="sequential calls for wampy (slow)")
    parser.add_argument("--total", type=int, default=10000, help="calls in the in-flight run")
    parser.add_argument("--inflight", type=int, default=1000, help="calls outstanding at once")
    parser.add_argument("--callee", choices=("autobahn", "ours"), default="autobahn")
    parser.add_argument("--validation", action="store_true",
                        help="measure argument validation instead: app callee with validation off, lax, strict")
    parser.add_argument("--role", choices=("orchestrate", "caller", "callee"), default="orchestrate")
    parser.add_argument("--lib", default="")
    parser.add_argument("--url", default="")
    parser.add_argument("--rawsocket-path", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("seq", "seq_wampy", "total", "inflight"):
        if not 1 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    if args.role == "orchestrate":
        orchestrate(args)
    elif args.role == "callee":
        run_callee(args.url, "realm1", args.lib)
    else:
        runner = {**dict.fromkeys(OURS, run_ours), "autobahn": run_autobahn, "wampy": run_wampy}[args.lib]
        print(json.dumps(runner(args.url, "realm1", args)), flush=True)


if __name__ == "__main__":
    main()
