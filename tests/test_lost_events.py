"""No lost events: a healthy subscriber sees every numbered event while other browsers vanish or are cut.

Real Crossbar and gunicorn. A publisher (directly on the router) publishes numbered events at a steady rate; a
reader counts them. Meanwhile browsers through the bridge log in, subscribe to the same topic and vanish (the TCP
connection just ends: no GOODBYE, no close frame), and a slow consumer that never reads is cut by the bridge.
Crossbar keeps a session attached while its transport's close handshake runs, and an event published in that
moment raises in its broker's dispatch loop, so every subscriber after it missed the event; the relay now ends
every upstream session with GOODBYE first, and the reader must see every number exactly once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import typing as t

import pytest
import websocket
from helpers import wait_until
from test_endpoint import _start
from test_endpoint import _stop
from test_endpoint import get_json
from test_endpoint import login

TOPIC = "app.numbers"
EVENTS = 1000
RATE = 200.0  # events per second: 5 s of publishing (longer on a busy machine)
CHURNERS = 16  # browsers subscribing and vanishing at once, over and over
PAYLOAD = "x" * 8000  # fills a slow consumer's buffers quickly
MARKER = -1  # published after the numbered events: once the reader has it, the stream is all in

pytestmark = pytest.mark.timeout(180)


def _publish(publisher: t.Any, done: threading.Event) -> None:
    start = time.monotonic()
    for number in range(EVENTS):
        delay = start + number / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(TOPIC, number, PAYLOAD)
    done.set()


def _vanishing_browser(url: str, origin: str, cookie: str) -> bool:
    """Log in, subscribe, read a little, then drop the TCP connection without a word. True if it subscribed."""
    from flask_wamp_bridge.websocket.client import connect

    ws = connect(url, subprotocols=["wamp.2.json"], headers={"Cookie": cookie, "Origin": origin}, timeout=30)
    try:
        ws.send(json.dumps([1, "realm1", {"roles": {"subscriber": {}}}]))
        welcome = ws.receive()
        if welcome is None or json.loads(welcome)[0] != 2:
            return False
        ws.send(json.dumps([32, 1, {}, TOPIC]))
        while True:  # SUBSCRIBED, then an event or two
            data = ws.receive()
            if data is None:
                return False
            if json.loads(data)[0] == 36:
                return True
    finally:
        sock = ws._sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a RST: the tab is gone


def _slow_consumer(server: t.Any, cookie: str) -> websocket.WebSocket:
    """A browser that subscribes, then never reads again (the bridge cuts it once a few MB are stuck)."""
    ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                     cookie=cookie, timeout=30,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    ws.send(json.dumps([1, "realm1", {"roles": {"subscriber": {}}}]))
    assert json.loads(ws.recv())[0] == 2
    ws.send(json.dumps([32, 1, {}, TOPIC]))
    assert json.loads(ws.recv())[0] == 33
    return ws


def test_a_subscriber_loses_no_event_while_others_vanish_or_are_cut(crossbar_router: t.Any,
                                                                     wamp_client: t.Any) -> None:
    import gevent

    server = _start(crossbar_router, WAMP_BRIDGE_WS_SEND_TIMEOUT=1)
    slow: list[websocket.WebSocket] = []
    try:
        got: list[int] = []
        lock = threading.Lock()

        def count(number: int, payload: str) -> None:
            with lock:
                got.append(number)

        reader = wamp_client(crossbar_router)
        reader.subscribe(TOPIC, count)
        publisher = wamp_client(crossbar_router)
        cookie = login(server, "churn")
        done = threading.Event()
        subscribed = [0]

        def churn() -> None:
            while not done.is_set():
                try:
                    if _vanishing_browser(server.ws_url("/wamp"), server.url, cookie):
                        subscribed[0] += 1
                except Exception:  # a refused or slow login: try again
                    gevent.sleep(0.05)

        slow_cookie = login(server, "slowpoke")
        slow.append(_slow_consumer(server, slow_cookie))
        thread = threading.Thread(target=_publish, args=(publisher, done), daemon=True)
        thread.start()
        churners = [gevent.spawn(churn) for _ in range(CHURNERS)]
        while not done.is_set():
            gevent.sleep(0.1)
            if len(slow) < 2 and len(got) > EVENTS // 4:
                slow.append(_slow_consumer(server, slow_cookie))  # cut in the middle of the stream, too
        gevent.killall(churners, timeout=10)  # one may wait for an event that no longer comes
        thread.join(30)
        # One publisher's events reach a subscriber in the order published: whatever the reader was ever going
        # to get of the stream (a duplicate included) arrives before the marker published after it.
        publisher.publish(TOPIC, MARKER, "")
        wait_until(lambda: MARKER in got, timeout=30)
        got.remove(MARKER)
        missing = sorted(set(range(EVENTS)) - set(got))
        assert missing == [] and len(got) == EVENTS, (
            f"{len(missing)} of {EVENTS} events lost ({missing[:20]}), {len(got) - len(set(got))} duplicated, "
            f"with {subscribed[0]} browsers vanished")
        assert subscribed[0] >= 100  # the churn really happened while events flowed
        assert len(slow) == 2
        wait_until(lambda: "slowpoke" not in get_json(server, "/relays"), timeout=30)  # both were cut
    finally:
        for ws in slow:
            ws.shutdown()
        _stop(server)
