"""A browser message that grows past the router's maximum in translation: that request is refused, the session stays.

In process: a JSON browser on a WebSocket pair, the relay's RawSocket upstream (msgpack) on a socket pair whose
router end announces 1 MiB (Crossbar's announcement for the default ``WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE``) and
answers the ticket login (``relay_pair.ScriptedRouter``) and calls.
"""

from __future__ import annotations

import json
import time
import typing as t

import gevent
import msgpack
import pytest
from gevent import socket as gsocket
from pair_router import _Pairs
from pair_router import socket_pair
from relay_pair import BROWSER_ROLES
from relay_pair import REALM
from relay_pair import SECRET
from relay_pair import ScriptedRouter

from flask_wamp_bridge.bridge import relay_io
from flask_wamp_bridge.bridge import tickets
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay import UNTRANSLATABLE
from flask_wamp_bridge.bridge.relay import Relay
from flask_wamp_bridge.wamp import rawsocket as rs
from flask_wamp_bridge.wamp.messages import serializer_for
from flask_wamp_bridge.wamp.rawsocket_connection import RawSocketConnection

pytestmark = pytest.mark.timeout(60)

JSON = serializer_for("wamp.2.json")
MSGPACK = serializer_for("wamp.2.msgpack")
ROUTER_MAX = 1 << 20
CALL, RESULT, ERROR, GOODBYE = 48, 50, 8, 6


def _serve_router(sock: t.Any) -> None:
    login = ScriptedRouter(MSGPACK, clock=time.time)
    frames = rs.FrameParser(rs.MAX_LENGTH)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        frames.feed(data)
        frame = frames.next_frame()
        while frame is not None:
            message = msgpack.unpackb(frame.data, raw=False)
            if message[0] == CALL:
                replies = [MSGPACK.dumps([RESULT, message[1], {}, ["pong"]])]
            elif message[0] == GOODBYE:
                replies = [MSGPACK.dumps([GOODBYE, {}, "wamp.close.goodbye_and_out"])]
            else:
                replies = login.answer(frame.data)
            for reply in replies:
                sock.sendall(rs.encode_frame(t.cast(bytes, reply)))
            frame = frames.next_frame()


def test_a_call_too_big_for_the_router_once_translated_gets_an_error_and_the_session_stays() -> None:
    pairs = _Pairs()
    ours, theirs = gsocket.socketpair()
    router = gevent.spawn(_serve_router, theirs)

    def connect(url: str, **options: t.Any) -> RawSocketConnection:
        codec = rs.RawSocket(rs.Role.CLIENT, "msgpack")
        codec.receive_data(rs.router_reply("msgpack", ROUTER_MAX))
        assert isinstance(codec.next_event(), rs.Handshake)
        return RawSocketConnection(ours, codec, max_message_size=options["max_message_size"])

    browser, server_side = socket_pair(pairs, JSON.subprotocol)
    relay = Relay(Identity("alice", "user"), REALM, JSON,
                  lambda identity, peer: tickets.sign(identity, SECRET, time.time(), realm=REALM),
                  time.monotonic(), login_timeout=3600.0, upstream_serializer=MSGPACK)
    session = relay_io.RelaySession(server_side, relay, "ws://scripted.invalid/ws", JSON.subprotocol,
                                   connect=connect, close_timeout=1.0)
    runner = gevent.spawn(session.run)

    def receive() -> list[t.Any]:
        with gevent.Timeout(10, AssertionError("the browser got nothing within 10 s")):
            return t.cast(list[t.Any], JSON.loads(t.cast(str, browser.receive())))

    try:
        browser.send(JSON.dumps([1, REALM, {"roles": BROWSER_ROLES}]))
        assert receive()[0] == 2
        big = json.dumps([CALL, 1, {}, "app.x", [1.5] * 99_000 + ["x" * 200_000]], separators=(",", ":"))
        assert len(big) < 1 << 20 < len(MSGPACK.dumps(json.loads(big)))  # within the browser's bound, not after
        browser.send(big)
        error = receive()
        assert error[:5] == [ERROR, CALL, 1, {}, UNTRANSLATABLE] and "longer than the router accepts" in error[5][0]
        browser.send(JSON.dumps([CALL, 2, {}, "app.ping", []]))
        assert receive() == [RESULT, 2, {}, ["pong"]]
        assert relay.calls_in_flight == 0 and not runner.dead
    finally:
        browser.close(timeout=0.5)
        runner.join(10)
        runner.kill()
        router.kill()
        for sock in (ours, theirs):
            sock.close()
        pairs.close()
