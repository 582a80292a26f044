"""What the app's authorizer costs a browser: a WAMP login plus its first subscribe, and a re-subscribe.

Not a test. Starts two throw-away stacks on 127.0.0.1 side by side, each a
Crossbar and a gunicorn bridge with 2 workers serving tests/apps/authz_app.py:

- ``static``: no authorizer, the topic allowed by ``WAMP_BRIDGE_PERMISSIONS``
  (what the bridge did before);
- with ``WAMP_BRIDGE_AUTHORIZER``: a topic the static rules allow (answered by
  the bridge's authorizer from the rules, then cached by Crossbar for the role),
  a topic the app's function decides without ``cache``, and one it decides with
  ``cache: True`` (reused for the same session in the same worker).

Each round logs a page in (WebSocket upgrade with the session cookie, HELLO to
WELCOME) and subscribes once, then subscribes and unsubscribes ``--again``
times more in that session; the variants take turns, ``--rounds`` rounds.
The app's decision takes ``--query-ms`` (a database query; default 2 ms).
Prints the median time of each and its ratio to ``static``. Run from the
repository root::

    .venv/bin/python bench/bench_authorizer.py [--rounds 60] [--again 5] [--query-ms 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

import websocket  # noqa: E402
from helpers import GunicornProcess  # noqa: E402
from test_endpoint import _env  # noqa: E402
from test_endpoint import login  # noqa: E402

from flask_wamp_bridge.testing import start_router  # noqa: E402

APP = "tests.apps.authz_app:app"
STATIC = {"user": [{"uri": "app.", "allow": ["call", "subscribe"]}]}
VARIANTS = {  # name: (stack, topic)
    "static": ("static", "app.team.red.chat"),
    "authorizer, static rule": ("dynamic", "app.board.posts"),
    "authorizer, app decides": ("dynamic", "app.team.red.chat"),
    "authorizer, app decides, cache": ("dynamic", "app.team.red.cached.chat"),
}


def _stack(name: str, tmp: Path, query_ms: float, **settings: t.Any) -> tuple[t.Any, GunicornProcess]:
    router = start_router(tmp / name, **settings)
    env = {**_env(router.settings, WAMP_BRIDGE_PERMISSIONS=settings["WAMP_BRIDGE_PERMISSIONS"]),
           "AUTHZ_QUERY_MS": str(query_ms)}
    server = GunicornProcess(APP, env=env, workers=2)
    server.start()
    return router, server


def _round(server: GunicornProcess, cookie: str, topic: str, again: int) -> tuple[float, float]:
    """Seconds for login + first subscribe, and per re-subscribe."""
    start = time.perf_counter()
    ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                     timeout=15, cookie=cookie)
    try:
        ws.send(json.dumps([1, "realm1", {"roles": {"subscriber": {}}}]))
        welcome = json.loads(ws.recv())
        assert welcome[0] == 2, welcome
        ws.send(json.dumps([32, 1, {}, topic]))
        subscribed = json.loads(ws.recv())
        assert subscribed[0] == 33, subscribed
        first = time.perf_counter() - start
        ws.send(json.dumps([34, 2, subscribed[2]]))
        assert json.loads(ws.recv())[0] == 35
        start = time.perf_counter()
        for i in range(again):
            ws.send(json.dumps([32, 10 + 2 * i, {}, topic]))
            subscribed = json.loads(ws.recv())
            assert subscribed[0] == 33, subscribed
            ws.send(json.dumps([34, 11 + 2 * i, subscribed[2]]))
            assert json.loads(ws.recv())[0] == 35
        return first, (time.perf_counter() - start) / max(again, 1)
    finally:
        ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--again", type=int, default=5)
    parser.add_argument("--query-ms", type=float, default=2.0, help="what the app's decision takes (a DB query)")
    args = parser.parse_args()
    from apps.authz_app import PERMISSIONS

    with tempfile.TemporaryDirectory() as tmp:
        stacks = {}
        try:
            stacks["static"] = _stack("static", Path(tmp), args.query_ms, WAMP_BRIDGE_PERMISSIONS=STATIC)
            stacks["dynamic"] = _stack("dynamic", Path(tmp), args.query_ms, WAMP_BRIDGE_PERMISSIONS=PERMISSIONS,
                                       WAMP_BRIDGE_AUTHORIZER="wamp_bridge.authorize")
            cookies = {name: login(server, "alice") for name, (_, server) in stacks.items()}
            for stack, topic in VARIANTS.values():  # warm up: peers joined, first decisions made
                _round(stacks[stack][1], cookies[stack], topic, 1)
            firsts: dict[str, list[float]] = {name: [] for name in VARIANTS}
            agains: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(args.rounds):
                for name, (stack, topic) in VARIANTS.items():
                    first, again = _round(stacks[stack][1], cookies[stack], topic, args.again)
                    firsts[name].append(first)
                    agains[name].append(again)
        finally:
            for router, server in stacks.values():
                server.stop()
                router.stop()
    base_first, base_again = statistics.median(firsts["static"]), statistics.median(agains["static"])
    print(f"{args.rounds} rounds, 2 workers, app decision {args.query_ms:g} ms; median ms (ratio to static)")
    print(f"{'variant':34} {'login + 1st subscribe':>24} {'re-subscribe':>20}")
    for name in VARIANTS:
        first, again = statistics.median(firsts[name]), statistics.median(agains[name])
        print(f"{name:34} {first * 1000:14.2f} ({first / base_first:4.2f}x) "
              f"{again * 1000:12.2f} ({again / base_again:4.2f}x)")


if __name__ == "__main__":
    main()
