"""Python heap per idle relayed pair of WebSockets: what the WebSocket objects themselves cost.

Not a test. ``bench_relay_memory.py`` measures a whole worker's RSS, which the
machine's load and the allocator move by tens of percent; this counts, with
``tracemalloc``, the Python objects of one relayed session's two sockets in
one process, so two versions of the WebSocket class compare exactly. Each
pair is what the relay holds: a server-side browser socket with keepalive
(ping 25 s, idle 60 s, send timeout 10 s) that has received and sent a
message, and a client-side upstream socket (send timeout) read with
``receive_nowait`` and left waiting in ``notify_readable``; the other ends
are plain sockets, and the socket objects are counted out. Run from the repository
root::

    .venv/bin/python bench/bench_websocket_memory.py [--pairs 2000]
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
import typing as t

import gevent
from gevent import socket as gsocket

from flask_wamp_bridge.websocket import frames
from flask_wamp_bridge.websocket.connection import WebSocket


class Pairs:
    """Relayed pairs of WebSockets; the other ends are plain sockets written with raw frames."""

    def __init__(self) -> None:
        self.sockets: list[t.Any] = []
        self.legs: list[WebSocket] = []

    def add_sockets(self) -> tuple[t.Any, t.Any, t.Any, t.Any]:
        """Only the two socket pairs (counted out): browser, browser leg, router, upstream leg."""
        browser, browser_leg = gsocket.socketpair()
        router, router_leg = gsocket.socketpair()
        self.sockets += [browser, browser_leg, router, router_leg]
        return browser, browser_leg, router, router_leg

    def add_relayed(self) -> None:
        browser, browser_leg, router, router_leg = self.add_sockets()
        leg = WebSocket(browser_leg, role="server")
        leg.configure(max_message_size=1 << 20, ping_interval=25.0, idle_timeout=60.0, send_timeout=10.0)
        upstream = WebSocket(router_leg, role="client")
        upstream.configure(max_message_size=1 << 20, send_timeout=10.0)
        browser.sendall(frames.encode_frame(frames.OP_TEXT, b"hello", b"\x01\x02\x03\x04"))
        assert leg.receive() == "hello"
        leg.send("welcome")
        router.sendall(frames.encode_frame(frames.OP_TEXT, b"event", None))
        upstream.send("call")
        assert upstream.receive_nowait() == "event"
        upstream.notify_readable(lambda: None)
        self.legs += [leg, upstream]

    def close(self) -> None:
        for ws in self.legs:
            ws.abort(1006, "bench over")
        for sock in self.sockets:
            sock.close()


def heap_per(add: t.Callable[[], t.Any], count: int) -> float:
    gevent.sleep(0.01)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            add()
        gevent.sleep(0.01)  # let the hub run what the sends scheduled
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    options = parser.parse_args()
    pairs = Pairs()
    try:
        for _ in range(50):  # warm-up: first-use caches, the hub, the parser's tables
            pairs.add_relayed()
        sockets_only = heap_per(pairs.add_sockets, options.pairs)
        whole = heap_per(pairs.add_relayed, options.pairs)
    finally:
        pairs.close()
    print(f"{options.pairs} relayed pairs: {whole - sockets_only:.0f} bytes of Python heap per pair "
          f"(browser leg with keepalive + upstream leg; their sockets, {sockets_only:.0f} bytes, counted out)")


if __name__ == "__main__":
    main()
