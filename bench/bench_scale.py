"""Scaling out: calls/s and events/s through the bridge with 1 vs 3 hosts and 1 vs 2 router nodes.

Not a test. For each topology it starts throw-away Crossbar nodes on
127.0.0.1 (two nodes: the generated cluster configs, joined by an rlink) and
"hosts" (gunicorn, bridge worker, 2 workers each, on their own ports; hosts
a and b use node1 first, host c node2 first). Every worker registers
``app.bench.echo``; browsers are autobahn-python clients logged in by cookie
through a host's ``/wamp``, spread evenly over the hosts.

- calls: ``--clients`` browser processes each make ``--calls`` calls of
  ``app.bench.echo`` with ``--inflight`` outstanding; the callee is whichever
  worker the router picks (round-robin over all hosts' workers);
- events: ``--clients`` browser processes subscribe to ``app.bench.events``;
  every host's view publishes ``--events`` events in all (split over the
  hosts); events/s counts deliveries to browsers.

CPU: user + system seconds of the router processes and of all bridge workers
over each phase, per call (or per delivered event): that is where the
bottleneck sits. On a 2-core machine all processes share the same two cores,
so more hosts cannot add throughput here: the efficiency figure shows the
cost of the extra hops, and the CPU per call says what each part would need
on machines of its own. Bounded: about 2 minutes. Run from the repository root::

    .venv/bin/python bench/bench_scale.py [--clients 6] [--calls 1500] [--inflight 50] [--events 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_relay import _children  # noqa: E402
from bench_relay import _cpu  # noqa: E402
from bench_relay import _end  # noqa: E402
from bench_relay import _env  # noqa: E402
from bench_relay import _free_port  # noqa: E402
from bench_relay import _run  # noqa: E402
from bench_relay import _tree_cpu  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PEER_SECRET = "bench-peer-secret-not-for-production"
CLUSTER_SECRET = "bench-cluster-secret-not-for-production"
APP_SECRET_KEY = "bench-secret-key"
TOPIC = "app.bench.events"
ROLE_TIMEOUT = 240.0  # seconds per client process, a hard bound
# (hosts, router nodes, whether the rlink forwards calls)
TOPOLOGIES = ((1, 1, True), (3, 1, True), (3, 2, True), (3, 2, False))
HOST_NODES = {"a": 0, "b": 0, "c": 1}  # the node each host uses first (when there are two)


# --- the app each host serves: ``bench.bench_scale:create_app()`` -----------------------------------


def create_app() -> t.Any:
    from flask import Flask
    from flask import request
    from flask import session

    from flask_wamp_bridge import WampBridge

    app = Flask(__name__)
    app.config["SECRET_KEY"] = APP_SECRET_KEY
    app.config.from_prefixed_env("FLASK")
    bridge = WampBridge()
    bridge.register("app.bench.echo")(lambda value: value)
    bridge.init_app(app)

    @app.post("/login")
    def login() -> str:
        session["_user_id"] = request.form["user"]
        return "ok"

    @app.post("/publish")
    def publish() -> str:
        for n in range(int(request.form["n"])):
            bridge.publish(TOPIC, n)
        return "ok"

    return app


# --- browsers, each run as ``bench_scale.py --role ...`` in its own process -------------------------


def _login(http: str, user: str) -> str:
    body = urllib.parse.urlencode({"user": user}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{http}/login", data=body), timeout=30) as response:
        return str(response.headers["Set-Cookie"]).split(";", 1)[0]


def _post(url: str, form: dict[str, str]) -> None:
    body = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=ROLE_TIMEOUT):
        pass


def run_caller(args: argparse.Namespace) -> dict[str, t.Any]:
    import asyncio

    async def body(session: t.Any) -> dict[str, t.Any]:
        for n in range(100):  # warm-up
            assert await session.call("app.bench.echo", n) == n
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        limit = asyncio.Semaphore(args.inflight)

        async def one(n: int) -> bool:
            async with limit:
                return bool(await session.call("app.bench.echo", n) == n)

        start = time.time()
        results = await asyncio.gather(*(one(n) for n in range(args.calls)))
        return {"start": start, "end": time.time(), "calls": args.calls, "wrong": results.count(False)}

    http = args.url.replace("ws://", "http://", 1).rsplit("/", 1)[0]
    return _run(args.url, "realm1", body, wampcra=False, cookie=_login(http, "bench-caller"))


def run_subscriber(args: argparse.Namespace) -> dict[str, t.Any]:
    import asyncio

    async def body(session: t.Any) -> dict[str, t.Any]:
        times: list[float] = []
        done = asyncio.Event()

        def on_event(n: int) -> None:
            times.append(time.time())
            if len(times) >= args.events:
                done.set()

        await session.subscribe(on_event, TOPIC)
        print("ready", flush=True)
        try:
            await asyncio.wait_for(done.wait(), ROLE_TIMEOUT / 2)
        except asyncio.TimeoutError:
            pass
        return {"first": times[0] if times else 0.0, "last": times[-1] if times else 0.0, "count": len(times)}

    http = args.url.replace("ws://", "http://", 1).rsplit("/", 1)[0]
    return _run(args.url, "realm1", body, wampcra=False, cookie=_login(http, "bench-subscriber"))


# --- orchestration ------------------------------------------------------------------------------


def _spawn(role: str, url: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--role", role, "--url", url, "--calls", str(args.calls),
            "--inflight", str(args.inflight), "--events", str(args.events)]
    return subprocess.Popen(argv, cwd=REPO, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def _start_host(name: str, settings: dict[str, t.Any], urls: list[str], log: t.IO[bytes]) -> dict[str, t.Any]:
    port = _free_port()
    env = _env()
    for key, value in settings.items():
        env[f"FLASK_{key}"] = value if isinstance(value, str) else json.dumps(value)
    env["FLASK_WAMP_BRIDGE_ROUTER_URL"] = json.dumps(urls)
    env["FLASK_WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT"] = "null"
    argv = [sys.executable, "-m", "gunicorn", "-k", "flask_wamp_bridge.worker", "--no-control-socket",
            "-b", f"127.0.0.1:{port}", "-w", "2", "bench.bench_scale:create_app()"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    http = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _login(http, "probe")
            if len(_children(proc.pid)) >= 2:
                return {"name": name, "proc": proc, "http": http, "ws": f"ws://127.0.0.1:{port}/wamp"}
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _end(proc)
            raise SystemExit(f"host {name} did not start")
        time.sleep(0.2)


def _bridge_cpu(hosts: list[dict[str, t.Any]]) -> float:
    total = 0.0
    for host in hosts:
        for pid in _children(host["proc"].pid):
            try:
                total += _cpu(pid)
            except OSError:
                pass
    return total


def _routers_cpu(routers: list[t.Any]) -> float:
    return sum(_tree_cpu(router.pid) for router in routers)


def _phase(role: str, hosts: list[dict[str, t.Any]], args: argparse.Namespace,
           trigger: t.Callable[[], None]) -> list[dict[str, t.Any]]:
    procs = [_spawn(role, hosts[i % len(hosts)]["ws"], args) for i in range(args.clients)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"a {role} did not get ready")
        for proc in procs:  # all start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        trigger()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=ROLE_TIMEOUT)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if lines:
                results.append(json.loads(lines[-1]))
        return results
    finally:
        for proc in procs:
            _end(proc)


def measure(n_hosts: int, n_nodes: int, forward_calls: bool, args: argparse.Namespace,
            tmp: Path) -> dict[str, float]:
    from flask_wamp_bridge.router.cluster import write_node_key
    from flask_wamp_bridge.router.config import make_config
    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar

    urls = [f"ws://127.0.0.1:{_free_port()}/ws" for _ in range(n_nodes)]
    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_ROUTER_URL": urls[0],
        "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
        "WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0,
    }
    if n_nodes > 1:
        settings["WAMP_BRIDGE_CLUSTER"] = {f"node{i + 1}": url for i, url in enumerate(urls)}
        settings["WAMP_BRIDGE_CLUSTER_SECRET"] = CLUSTER_SECRET
        settings["WAMP_BRIDGE_CLUSTER_CALLS"] = forward_calls
    routers, hosts = [], []
    name = f"{n_hosts}-{n_nodes}-{forward_calls}"
    log = open(tmp / f"gunicorn-{name}.log", "wb")
    try:
        for i in range(n_nodes):
            node = f"node{i + 1}" if n_nodes > 1 else None
            cbdir = tmp / f"crossbar-{name}-{i}"
            if node is not None:
                write_node_key(settings, node, cbdir)
            router = CrossbarProcess(make_config(settings, node=node), cbdir, crossbar=find_crossbar())
            router.start(120)
            routers.append(router)
        host_settings = {k: v for k, v in settings.items() if not k.startswith("WAMP_BRIDGE_CLUSTER")}
        for name in "abc"[:n_hosts]:
            first = HOST_NODES[name] % n_nodes
            hosts.append(_start_host(name, host_settings, urls[first:] + urls[:first], log))
        time.sleep(2.0)  # registrations settle (and cross the rlink)

        cpu_router, cpu_bridge = _routers_cpu(routers), _bridge_cpu(hosts)
        calls = _phase("caller", hosts, args, lambda: None)
        total = sum(r["calls"] for r in calls)
        elapsed = max(r["end"] for r in calls) - min(r["start"] for r in calls)
        result = {
            "calls_per_s": total / elapsed, "wrong": sum(r["wrong"] for r in calls),
            "router_us_per_call": (_routers_cpu(routers) - cpu_router) / total * 1e6,
            "bridge_us_per_call": (_bridge_cpu(hosts) - cpu_bridge) / total * 1e6,
        }

        def publish() -> None:  # every host publishes its share at the same time
            shares = [args.events // len(hosts)] * len(hosts)
            shares[0] += args.events - sum(shares)
            threads = [threading.Thread(target=_post, args=(f"{host['http']}/publish", {"n": str(n)}))
                       for host, n in zip(hosts, shares, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(ROLE_TIMEOUT)

        cpu_router, cpu_bridge = _routers_cpu(routers), _bridge_cpu(hosts)
        events = _phase("subscriber", hosts, args, publish)
        delivered = sum(r["count"] for r in events)
        elapsed = max(r["last"] for r in events) - min(r["first"] for r in events if r["count"])
        result.update({
            "events_per_s": delivered / elapsed, "lost": args.events * args.clients - delivered,
            "router_us_per_event": (_routers_cpu(routers) - cpu_router) / delivered * 1e6,
            "bridge_us_per_event": (_bridge_cpu(hosts) - cpu_bridge) / delivered * 1e6,
        })
        return result
    finally:
        for host in hosts:
            _end(host["proc"])
        for router in routers:
            router.stop()
        log.close()


def report(results: dict[tuple[int, int, bool], dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\n{args.clients} browsers through /wamp (spread over the hosts); calls: {args.calls} each, "
          f"{args.inflight} in flight; events: {args.events} published, delivered to every browser")
    print(f"{'hosts':>5} {'nodes':>5} {'link calls':>10} {'calls/s':>8} {'eff':>5} {'router us/call':>15} "
          f"{'bridge us/call':>15} "
          f"{'events/s':>9} {'eff':>5} {'router us/ev':>13} {'bridge us/ev':>13} {'wrong':>5} {'lost':>5}")
    base = results.get((1, 1, True))
    for (hosts, nodes, forward_calls), r in results.items():
        link = ("yes" if forward_calls else "no") if nodes > 1 else "-"
        eff_calls = r["calls_per_s"] / (hosts * base["calls_per_s"]) if base else float("nan")
        eff_events = r["events_per_s"] / (hosts * base["events_per_s"]) if base else float("nan")
        print(f"{hosts:>5} {nodes:>5} {link:>10} {r['calls_per_s']:8.0f} {eff_calls:5.2f} "
              f"{r['router_us_per_call']:15.0f} "
              f"{r['bridge_us_per_call']:15.0f} {r['events_per_s']:9.0f} {eff_events:5.2f} "
              f"{r['router_us_per_event']:13.0f} {r['bridge_us_per_event']:13.0f} {int(r['wrong']):5d} "
              f"{int(r['lost']):5d}")
    print("link calls: whether the rlink forwards registrations (WAMP_BRIDGE_CLUSTER_CALLS); "
          "eff: throughput / (hosts x the 1-host, 1-node throughput); CPU: user+system seconds of all router "
          "processes and all bridge workers over the phase, per call or per delivered event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=6, help="browser processes per phase")
    parser.add_argument("--calls", type=int, default=1500, help="calls per browser")
    parser.add_argument("--inflight", type=int, default=50, help="calls outstanding per browser")
    parser.add_argument("--events", type=int, default=2000, help="events published in the events phase")
    parser.add_argument("--role", choices=("orchestrate", "caller", "subscriber"), default="orchestrate")
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    if args.role == "caller":
        print(json.dumps(run_caller(args)), flush=True)
        return
    if args.role == "subscriber":
        print(json.dumps(run_subscriber(args)), flush=True)
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for hosts, nodes, forward_calls in TOPOLOGIES:
            print(f"measuring {hosts} host(s), {nodes} router node(s) ...", flush=True)
            results[(hosts, nodes, forward_calls)] = measure(hosts, nodes, forward_calls, args, Path(tmp))
    report(results, args)


if __name__ == "__main__":
    main()
