"""The WAMP endpoint's cost: one client through the bridge vs the same client directly on Crossbar.

Not a test. Starts a throw-away Crossbar on 127.0.0.1, one callee process
(autobahn-python, procedure ``app.bench.echo``), and one gunicorn bridge worker
serving this module's app (``/wamp``). Then, for each payload size (64 B and
4 KiB strings), runs the same autobahn-python caller in its own process twice,
with the same identity and role both ways: directly on Crossbar (logging in
with a bridge ticket, as the bridge itself would), and through the bridge
(logged in by cookie). Direct and bridged runs alternate for ``--rounds``
rounds; the report gives medians.

- round trip: ``--seq`` sequential calls, median and 90th percentile;
- throughput: ``--total`` calls with ``--inflight`` outstanding at once;
- bridge CPU: user + system seconds of the gunicorn worker over the bridged
  run (it also runs the app's own WAMP peer, idle here), per call.

Bridges run side by side (``--bridges``): ``rawsocket`` (the package's relay
over a RawSocket upstream on the router's Unix socket, msgpack upstream
whatever the caller speaks), ``websocket`` (the same relay over a WebSocket
upstream in the caller's serializer, as the upstream was before), and, on
request, ``before`` (``bench/relay_before.py``, the relay as it was before the
per-message checks, which only peeked at each frame's head, over a WebSocket
upstream), so each difference is one run's. The caller speaks each of
``--serializers`` (JSON, msgpack). Router CPU per call is Crossbar's (its
processes' user + system time over the run). All run with the limits
that would refuse the bench's own load lifted (1,000 calls in flight; a rate
of 10**9 requests/s and 10**15 bytes/s, so the token buckets still run).

Targets: proxied round trip <= 1.2x direct, throughput >= 0.95x direct.
On a shared 2-core machine every process (router, callee, caller, bridge)
competes for the cores, so compare ratios from one run. Run from the
repository root::

    .venv/bin/python bench/bench_relay.py [--seq 1000] [--total 10000] [--inflight 1000] [--rounds 3]
        [--bridges websocket,rawsocket] [--serializers json,msgpack]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_AUTHID = "bench"
BENCH_SECRET = "bench-secret-not-for-production"
PEER_SECRET = "bench-peer-secret-not-for-production"
PROCEDURE = "app.bench.echo"
BENCH_USER = "bench-user"
APP_SECRET_KEY = "bench-secret-key"
SIZES = (64, 4096)
CALLER_TIMEOUT = 300.0  # seconds per caller process, a hard bound


# --- the app the gunicorn worker serves: ``bench.bench_relay:create_app()`` ------------------------


def create_app() -> t.Any:
    from flask import Flask
    from flask import request
    from flask import session

    from flask_wamp_bridge import WampBridge

    if os.environ.get("BENCH_RELAY") == "before":  # the relay without the per-message checks
        from bench import relay_before
        from flask_wamp_bridge.bridge import endpoint

        endpoint.Relay = relay_before.Relay  # type: ignore[misc]

    app = Flask(__name__)
    app.config["SECRET_KEY"] = APP_SECRET_KEY
    app.config.from_prefixed_env("FLASK")
    bridge = WampBridge()
    bridge.init_app(app)  # mounts /wamp and registers the ticket authenticator

    @bridge.register("app.bench.sleep")
    def sleep(seconds: float) -> float:  # a callee in every worker (bench_faults.py's hung-worker phase)
        import gevent

        gevent.sleep(seconds)
        return seconds

    @app.post("/login")
    def login() -> str:
        session["_user_id"] = request.form["user"]
        return "ok"

    return app


# --- caller and callee, each run as ``bench_relay.py --role ...`` in its own process ----------------


def _session_class(realm: str, body: t.Callable[[t.Any], t.Awaitable[dict[str, t.Any]]],
                   out: dict[str, t.Any], *, wampcra: bool,
                   ticket: t.Callable[[str | None], str] | None = None) -> type:
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.wamp import auth

    class Session(ApplicationSession):  # type: ignore[misc]
        def onConnect(self) -> None:
            if wampcra:
                self.join(realm, authmethods=["wampcra"], authid=BENCH_AUTHID)
            elif ticket is not None:  # directly on the router, as the bridge would log in
                self.join(realm, authmethods=["ticket"], authid=BENCH_USER)
            else:  # through the bridge: whatever a browser says, the cookie decides
                self.join(realm, authmethods=["anonymous"])

        def onChallenge(self, challenge: t.Any) -> str:
            if challenge.method == "ticket":
                from flask_wamp_bridge.bridge.tickets import peer_descriptor

                # Bound to this connection, as the bridge binds each ticket to its upstream socket.
                return ticket(peer_descriptor(self._transport.transport.get_extra_info("sockname")))
            return str(auth.compute_wcs(BENCH_SECRET, challenge.extra["challenge"]).decode())

        async def onJoin(self, details: t.Any) -> None:
            out["authid"] = details.authid
            out.update(await body(self))
            if out.get("leave", True):
                self.leave()

        def onDisconnect(self) -> None:
            import asyncio

            asyncio.get_event_loop().stop()

    return Session


def _run(url: str, realm: str, body: t.Callable[[t.Any], t.Awaitable[dict[str, t.Any]]], *, wampcra: bool,
         cookie: str | None = None, ticket: t.Callable[[str | None], str] | None = None,
         serializer: str = "json") -> dict[str, t.Any]:
    import asyncio

    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp.serializer import JsonSerializer
    from autobahn.wamp.serializer import MsgPackSerializer
    from autobahn.wamp.types import ComponentConfig

    out: dict[str, t.Any] = {}
    session_class = _session_class(realm, body, out, wampcra=wampcra, ticket=ticket)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    factory = WampWebSocketClientFactory(lambda: session_class(ComponentConfig(realm)), url=url,
                                         serializers=[MsgPackSerializer() if serializer == "msgpack"
                                                      else JsonSerializer()], loop=loop,
                                         headers={"Cookie": cookie} if cookie else None)
    parts = urllib.parse.urlsplit(url)
    loop.run_until_complete(loop.create_connection(factory, parts.hostname, parts.port))
    loop.run_forever()
    loop.close()
    return out


def run_caller(args: argparse.Namespace) -> dict[str, t.Any]:
    import asyncio

    payload = "x" * args.size

    async def body(session: t.Any) -> dict[str, t.Any]:
        call = session.call
        for _ in range(200):  # warm-up
            assert await call(PROCEDURE, payload) == payload
        rtts = []
        for _ in range(args.seq):
            start = time.perf_counter()
            answer = await call(PROCEDURE, payload)
            rtts.append(time.perf_counter() - start)
            assert answer == payload
        limit = asyncio.Semaphore(args.inflight)

        async def one() -> bool:
            async with limit:
                return bool(await call(PROCEDURE, payload) == payload)

        start = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(args.total)))
        elapsed = time.perf_counter() - start
        rtts.sort()
        return {"rtt_median": statistics.median(rtts), "rtt_p90": rtts[int(len(rtts) * 0.9)],
                "throughput": args.total / elapsed, "wrong": results.count(False),
                "calls": 200 + args.seq + args.total}

    if args.via == "bridge":
        base = args.url.replace("ws://", "http://", 1).rsplit("/", 1)[0]
        request = urllib.request.Request(f"{base}/login", data=urllib.parse.urlencode({"user": BENCH_USER}).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            cookie = response.headers["Set-Cookie"].split(";", 1)[0]
        return _run(args.url, args.realm, body, wampcra=False, cookie=cookie, serializer=args.serializer)
    # Directly on the router with the very identity, role and login the bridge would use.
    from flask_wamp_bridge.bridge import tickets
    from flask_wamp_bridge.bridge.identity import Identity

    secret = tickets.ticket_secret({"SECRET_KEY": APP_SECRET_KEY})
    def signed(peer: str | None) -> str:
        return tickets.sign(Identity(BENCH_USER, "user"), secret, time.time(), realm=args.realm, peer=peer)

    return _run(args.url, args.realm, body, wampcra=False, ticket=signed, serializer=args.serializer)


def run_callee(args: argparse.Namespace) -> None:
    import asyncio

    from autobahn.wamp.types import RegisterOptions

    async def body(session: t.Any) -> dict[str, t.Any]:
        await session.register(lambda value: value, PROCEDURE, options=RegisterOptions(invoke="roundrobin"))
        print("ready", flush=True)
        await asyncio.Event().wait()  # until terminated
        return {}

    _run(args.url, args.realm, body, wampcra=True)


# --- orchestration ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _spawn(role: str, url: str, realm: str, args: argparse.Namespace, **extra: t.Any) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--role", role, "--url", url, "--realm", realm, "--seq", str(args.seq),
            "--total", str(args.total), "--inflight", str(args.inflight)]
    for key, value in extra.items():
        argv += [f"--{key}", str(value)]
    return subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _end(proc: subprocess.Popen[t.Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds used so far by ``pid`` and its children (Crossbar runs its router in a child)."""
    if pid is None:
        return 0.0
    total = 0.0
    for child in [pid, *_children(pid)]:
        try:
            total += _cpu(child)
        except OSError:  # ended meanwhile
            pass
    return total


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _start_bridge(settings: dict[str, t.Any], log: t.IO[bytes],
                  extra_args: t.Sequence[str] = (), relay: str = "after",
                  upstream: str | None = None) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start the bench app on the bridge worker; return the master, its port and the worker's PID.

    ``relay`` ``"before"`` serves the relay without the per-message checks (``bench/relay_before.py``);
    ``upstream``: ``WAMP_BRIDGE_UPSTREAM`` (default: ``settings``' own).
    """
    port = _free_port()
    env = _env()
    for key, value in settings.items():
        env[f"FLASK_{key}"] = value if isinstance(value, str) else json.dumps(value)
    env["FLASK_WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT"] = "null"  # the bench keeps 1,000 calls in flight
    env["FLASK_WAMP_BRIDGE_MESSAGE_RATE"] = "1e9"  # ... at thousands of calls a second: the bucket runs, never empty
    env["FLASK_WAMP_BRIDGE_MESSAGE_BURST"] = str(10**9)
    env["FLASK_WAMP_BRIDGE_BYTE_RATE"] = "1e15"  # ... of up to 4 KiB each: the byte buckets run, never in debt
    env["FLASK_WAMP_BRIDGE_BYTE_BURST"] = str(10**15)
    env["FLASK_WAMP_BRIDGE_USER_BYTE_RATE"] = "1e15"
    env["FLASK_WAMP_BRIDGE_USER_BYTE_BURST"] = str(10**15)
    env["BENCH_RELAY"] = relay
    if upstream is not None:
        env["FLASK_WAMP_BRIDGE_UPSTREAM"] = upstream
    argv = [sys.executable, "-m", "gunicorn", "-k", "flask_wamp_bridge.worker", "--no-control-socket",
            "-b", f"127.0.0.1:{port}", "-w", "1", *extra_args, "bench.bench_relay:create_app()"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/login",
                                                               data=b"user=probe"), timeout=2):
                pass
            workers = _children(proc.pid)
            if workers:
                return proc, port, workers[0]
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _end(proc)
            raise SystemExit("the bridge did not start")
        time.sleep(0.1)


def _call(role_args: dict[str, t.Any], url: str, realm: str, args: argparse.Namespace) -> dict[str, t.Any] | None:
    proc = _spawn("caller", url, realm, args, **role_args)
    try:
        out, _ = proc.communicate(timeout=CALLER_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"{role_args}: gave up after {CALLER_TIMEOUT:g} s")
        return None
    finally:
        _end(proc)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{role_args}: failed (exit {proc.returncode})")
        return None
    return t.cast(dict, json.loads(lines[-1]))


def orchestrate(args: argparse.Namespace) -> None:
    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar

    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{_free_port()}/ws",
        "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
        "WAMP_BRIDGE_SERVICES": {BENCH_AUTHID: {"secret": BENCH_SECRET, "role": "backend"}},
        "WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0,
    }
    results: dict[tuple[int, str, str], list[dict[str, t.Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        settings["WAMP_BRIDGE_RAWSOCKET_PATH"] = str(Path(tmp) / "router.sock")
        router = CrossbarProcess(settings, Path(tmp) / "crossbar", crossbar=find_crossbar())
        print(f"starting Crossbar on {router.url} ...", flush=True)
        router.start(120)
        realm = router.realm
        callee = _spawn("callee", router.url, realm, args)
        log = open(Path(tmp) / "gunicorn.log", "wb")
        bridges: list[subprocess.Popen[bytes]] = []
        try:
            assert callee.stdout is not None
            if callee.stdout.readline().strip() != "ready":
                raise SystemExit("the callee did not start")
            paths: list[tuple[str, str, str, int | None]] = [("direct", "direct", router.url, None)]
            for name in args.bridges.split(","):
                relay, upstream = ("before", "websocket") if name == "before" else ("after", name)
                bridge, port, pid = _start_bridge(settings, log, relay=relay, upstream=upstream)
                bridges.append(bridge)
                paths.append((name, "bridge", f"ws://127.0.0.1:{port}/wamp", pid))
                print(f"bridge ({name}) worker pid {pid} on {paths[-1][2]}", flush=True)
            for round_ in range(1, args.rounds + 1):
                for size in SIZES:
                    for serializer in args.serializers.split(","):
                        for path, via, url, worker in paths:
                            cpu, router_cpu = (_cpu(worker) if worker else 0.0), _tree_cpu(router.pid)
                            result = _call({"via": via, "size": size, "serializer": serializer}, url, realm, args)
                            if result is None:
                                continue
                            result["bridge_us"] = (_cpu(worker) - cpu) / result["calls"] * 1e6 if worker else 0.0
                            result["router_us"] = (_tree_cpu(router.pid) - router_cpu) / result["calls"] * 1e6
                            results.setdefault((size, serializer, path), []).append(result)
                            print(f"  round {round_}: {size:>5} B {serializer:<7} {path:<9} done "
                                  f"(authid {result['authid']})", flush=True)
        finally:
            for bridge in bridges:
                _end(bridge)
            log.close()
            _end(callee)
            router.stop()
    report(results, args)


def report(runs: dict[tuple[int, str, str], list[dict[str, t.Any]]], args: argparse.Namespace) -> None:
    print(f"\nround trip: {args.seq} sequential calls; throughput: {args.total} calls, {args.inflight} in "
          f"flight; one autobahn-python client, same identity and role both ways; median of "
          f"{args.rounds} alternating rounds")
    print(f"{'payload':>8} {'ser':<7} {'path':<9} {'rtt median us':>14} {'rtt p90 us':>11} {'calls/s':>9} "
          f"{'wrong':>6} {'router CPU us/call':>19} {'bridge CPU us/call':>19}")
    results = {key: {name: statistics.median(r[name] for r in rs) for name in rs[0] if name != "authid"}
               for key, rs in runs.items()}
    order = {"direct": 0, "before": 1, "websocket": 2, "rawsocket": 3}
    for (size, ser, path), r in sorted(results.items(), key=lambda item: (item[0][0], item[0][1],
                                                                          order[item[0][2]])):
        cpu = f"{r['bridge_us']:19.0f}" if path != "direct" else f"{'-':>19}"
        print(f"{size:>7}B {ser:<7} {path:<9} {r['rtt_median'] * 1e6:14.0f} {r['rtt_p90'] * 1e6:11.0f} "
              f"{r['throughput']:9.0f} {int(r['wrong']):6d} {r['router_us']:19.0f} {cpu}")
    print("(websocket: the upstream as it was, WebSocket in the caller's serializer; rawsocket: RawSocket on the "
          "router's Unix socket, msgpack; before: no per-message checks, WebSocket upstream)")
    for size in SIZES:
        for ser in args.serializers.split(","):
            direct = results.get((size, ser, "direct"))
            for path in args.bridges.split(","):
                bridged = results.get((size, ser, path))
                if direct and bridged:
                    print(f"{size:>7}B {ser:<7} {path}/direct: round trip "
                          f"{bridged['rtt_median'] / direct['rtt_median']:.2f}x (target <= 1.05x), throughput "
                          f"{bridged['throughput'] / direct['throughput']:.2f}x (target >= 1.2x), router CPU/call "
                          f"{bridged['router_us'] / direct['router_us']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=1000, help="sequential calls for the round trip")
    parser.add_argument("--total", type=int, default=10000, help="calls in the throughput run")
    parser.add_argument("--inflight", type=int, default=1000, help="calls outstanding at once")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/bridge rounds")
    parser.add_argument("--role", choices=("orchestrate", "caller", "callee"), default="orchestrate")
    parser.add_argument("--url", default="")
    parser.add_argument("--realm", default="realm1")
    parser.add_argument("--via", choices=("direct", "bridge"), default="direct")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--serializer", choices=("json", "msgpack"), default="json")
    parser.add_argument("--serializers", default="json,msgpack", help="the callers' serializers, in turn")
    parser.add_argument("--bridges", default="websocket,rawsocket",
                        help="bridges to run beside direct: websocket, rawsocket, before")
    args = parser.parse_args()
    if args.role == "orchestrate":
        orchestrate(args)
    elif args.role == "caller":
        print(json.dumps(run_caller(args)), flush=True)
    else:
        run_callee(args)


if __name__ == "__main__":
    main()
