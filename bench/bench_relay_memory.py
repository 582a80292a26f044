"""Memory per idle relayed WAMP session: the gunicorn worker's RSS growth per open browser session.

Not a test. Starts a throw-away Crossbar on 127.0.0.1 and one gunicorn bridge
worker (the app of ``bench_relay.py``, with ``--worker-connections`` raised),
then opens ``--sessions`` WebSocket sessions through the bridge's ``/wamp``
endpoint from this process (gevent, the library's own client), each joined
(HELLO, ticket login by the bridge, WELCOME) and then left idle. Every
session holds one browser socket and one upstream socket in the worker, and
a session on Crossbar.

Crossbar's side: its RSS (the node and its router worker) is read around the
relayed sessions, then around ``--direct`` sessions opened directly on it (same
user, role and ticket login the bridge uses, the library's own client, JSON),
left open beside them; the two growths per session compare what a relayed and
a direct session cost the router.

The worker's RSS is read from ``/proc`` after ``--warmup`` sessions (so the
allocator, imports and the first-use caches are paid for) and again after
all sessions are open and the worker has settled; the difference divided by
the number of added sessions is the cost of one idle session. Target: <= 24
KiB per session at 5,000 sessions. Raises the soft fd limit to the hard limit
for the processes it starts (each session costs 2 fds in the worker, 1 here
and 1 in Crossbar; and 2 more per direct session). Run from the repository root::

    .venv/bin/python bench/bench_relay_memory.py [--sessions 5000] [--direct 2000] [--warmup 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_relay import APP_SECRET_KEY  # noqa: E402
from bench.bench_relay import BENCH_AUTHID  # noqa: E402
from bench.bench_relay import BENCH_SECRET  # noqa: E402
from bench.bench_relay import BENCH_USER  # noqa: E402
from bench.bench_relay import PEER_SECRET  # noqa: E402
from bench.bench_relay import _children  # noqa: E402
from bench.bench_relay import _end  # noqa: E402
from bench.bench_relay import _free_port  # noqa: E402

SETTLE = 3.0  # seconds to let the worker settle before reading its RSS


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _tree_rss_kib(pid: int | None) -> int:
    """RSS of ``pid`` and its children (Crossbar runs its router in a child)."""
    if pid is None:
        return 0
    total = 0
    for each in [pid, *_children(pid)]:
        try:
            total += _rss_kib(each)
        except (OSError, RuntimeError):  # ended meanwhile
            pass
    return total


def _raise_fd_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the processes started below
    return min(hard, max(soft, need))


def _start_bridge(settings: dict[str, t.Any], connections: int, log: t.IO[bytes]) -> tuple[t.Any, int, int]:
    from bench.bench_relay import _start_bridge as start

    return start(settings, log, ["--worker-connections", str(connections), "--backlog", "2048"])


def _open_sessions(url: str, realm: str, cookie: str, count: int, concurrency: int,
                   into: list[t.Any]) -> int:
    """Open ``count`` joined sessions (appended to ``into``); returns how many failed."""
    import gevent
    import gevent.pool

    from flask_wamp_bridge.websocket.client import connect

    hello = json.dumps([1, realm, {"roles": {"caller": {}, "subscriber": {}}}])
    failures = [0]

    def one() -> None:
        try:
            ws = connect(url, subprotocols=["wamp.2.json"], headers={"Cookie": cookie}, timeout=60)
            ws.send(hello)
            with gevent.Timeout(60):
                reply = ws.receive()
            if not isinstance(reply, str) or not reply.startswith("[2,"):
                failures[0] += 1
                ws.close()
                return
            into.append(ws)
        except Exception:
            failures[0] += 1

    pool = gevent.pool.Pool(concurrency)
    for _ in range(count):
        pool.spawn(one)
    pool.join()
    return failures[0]


def _open_direct(url: str, realm: str, count: int, concurrency: int, into: list[t.Any]) -> int:
    """Open ``count`` sessions directly on the router, logged in as the bridge logs a browser in; returns failures."""
    import gevent
    import gevent.pool

    from flask_wamp_bridge.bridge import tickets
    from flask_wamp_bridge.bridge.identity import Identity
    from flask_wamp_bridge.websocket.client import connect

    secret = tickets.ticket_secret({"SECRET_KEY": APP_SECRET_KEY})
    hello = json.dumps([1, realm, {"roles": {"caller": {}, "subscriber": {}}, "authmethods": ["ticket"],
                                   "authid": BENCH_USER}])
    failures = [0]

    def one() -> None:
        try:
            ws = connect(url, subprotocols=["wamp.2.json"], timeout=60)
            ws.send(hello)
            with gevent.Timeout(60):
                challenge = ws.receive()
                if not isinstance(challenge, str) or not challenge.startswith("[4,"):
                    raise ValueError(f"no CHALLENGE: {challenge!r}")
                peer = tickets.peer_descriptor(ws.local_address)
                ticket = tickets.sign(Identity(BENCH_USER, "user"), secret, time.time(), realm=realm, peer=peer)
                ws.send(json.dumps([5, ticket, {}]))
                reply = ws.receive()
            if not isinstance(reply, str) or not reply.startswith("[2,"):
                raise ValueError(f"no WELCOME: {reply!r}")
            into.append(ws)
        except Exception:
            failures[0] += 1

    pool = gevent.pool.Pool(concurrency)
    for _ in range(count):
        pool.spawn(one)
    pool.join()
    return failures[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000, help="idle sessions to open in all")
    parser.add_argument("--direct", type=int, default=2000,
                        help="sessions opened directly on the router afterwards")
    parser.add_argument("--warmup", type=int, default=200, help="sessions opened before the baseline RSS")
    parser.add_argument("--concurrency", type=int, default=50, help="logins under way at once")
    args = parser.parse_args()
    import gevent

    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar

    direct = args.direct
    limit = _raise_fd_limit((args.sessions + direct) * 2 + 500)
    if (args.sessions + direct) * 2 + 500 > limit:
        args.sessions = direct = (limit - 500) // 4
        print(f"fd limit {limit}: measuring {args.sessions} sessions each way", flush=True)
    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{_free_port()}/ws",
        "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
        "WAMP_BRIDGE_SERVICES": {BENCH_AUTHID: {"secret": BENCH_SECRET, "role": "backend"}},
        "WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0,
        "WAMP_BRIDGE_MAX_SESSIONS_PER_USER": None,  # every session is the bench user's
    }
    sockets: list[t.Any] = []
    direct_sockets: list[t.Any] = []
    with tempfile.TemporaryDirectory(prefix="bench-relay-memory-") as tmp:
        router = CrossbarProcess(settings, Path(tmp) / "crossbar", crossbar=find_crossbar())
        print(f"starting Crossbar on {router.url} ...", flush=True)
        router.start(120)
        log = open(Path(tmp) / "gunicorn.log", "wb")
        bridge = None
        try:
            bridge, port, worker = _start_bridge(settings, args.sessions + 200, log)
            base = f"http://127.0.0.1:{port}"
            login = urllib.parse.urlencode({"user": BENCH_USER}).encode()
            request = urllib.request.Request(f"{base}/login", data=login)
            with urllib.request.urlopen(request, timeout=10) as response:
                cookie = response.headers["Set-Cookie"].split(";", 1)[0]
            url = f"ws://127.0.0.1:{port}/wamp"
            print(f"bridge worker pid {worker}; idle RSS {_rss_kib(worker)} KiB", flush=True)
            failed = _open_sessions(url, router.realm, cookie, args.warmup, args.concurrency, sockets)
            gevent.sleep(SETTLE)
            base_rss, base_n = _rss_kib(worker), len(sockets)
            router_base = _tree_rss_kib(router.pid)
            print(f"{base_n} sessions open ({failed} failed): worker RSS {base_rss} KiB", flush=True)
            start = time.monotonic()
            step = 1000
            while len(sockets) < args.sessions:
                want = min(step, args.sessions - len(sockets))
                failed += _open_sessions(url, router.realm, cookie, want, args.concurrency, sockets)
                print(f"  {len(sockets)} sessions open ({failed} failed), worker RSS {_rss_kib(worker)} KiB, "
                      f"{time.monotonic() - start:.0f} s", flush=True)
                if failed > args.sessions // 10:
                    print("too many failures: stopping here", flush=True)
                    break
            gevent.sleep(SETTLE)
            rss, n = _rss_kib(worker), len(sockets)
            router_relayed = _tree_rss_kib(router.pid)
            direct_failed = _open_direct(router.url, router.realm, direct, args.concurrency, direct_sockets)
            gevent.sleep(SETTLE)
            router_direct = _tree_rss_kib(router.pid)
            alive = sum(1 for ws in sockets if not ws.closed)
            added = n - base_n
            print(f"\n{n} idle sessions through the bridge ({alive} still open, {failed} failed logins)")
            print(f"worker RSS: {base_rss} KiB at {base_n} sessions -> {rss} KiB at {n} sessions")
            if added > 0:
                print(f"RSS per idle proxied session: {(rss - base_rss) / added:.1f} KiB (target <= 24 KiB)")
                print(f"Crossbar RSS per relayed session: {(router_relayed - router_base) / added:.1f} KiB "
                      f"({router_base} -> {router_relayed} KiB)")
            if direct_sockets:
                print(f"Crossbar RSS per direct session: "
                      f"{(router_direct - router_relayed) / len(direct_sockets):.1f} KiB ({len(direct_sockets)} "
                      f"sessions, {direct_failed} failed; {router_relayed} -> {router_direct} KiB)")
        finally:
            for ws in [*sockets, *direct_sockets]:
                ws.abort(1006, "bench over")  # drop at once: closing 5,000 handshakes is not measured
            if bridge is not None:
                _end(bridge)
            log.close()
            router.stop()


if __name__ == "__main__":
    main()
