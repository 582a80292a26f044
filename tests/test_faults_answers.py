"""Every call gets one answer, end to end: real Crossbar, real gunicorn, raw WebSocket browsers.

A call the router never answers (a callee that never yields, a link that lost one direction through a TCP proxy)
gets ``wamp.error.canceled`` at its deadline; an abuse close answers the calls in flight before its GOODBYE and
1008; a worker at its descriptor limit says so at boot and at accept, does not spin, and recovers.
"""

from __future__ import annotations

import json
import re
import socket
import typing as t
import urllib.parse

import pytest
import websocket
from helpers import GunicornProcess
from helpers import wait_until
from tcp_proxy import TcpProxy
from test_endpoint import APP
from test_endpoint import _env
from test_endpoint import _start
from test_endpoint import _stop
from test_endpoint import get_json
from test_endpoint import login
from test_endpoint import raw_session
from test_faults import assert_one_error_per_call
from test_faults import pending_calls
from test_faults import until_close

ERROR, CALL, ABORT, GOODBYE, RESULT = 8, 48, 3, 6, 50
CANCELED = "wamp.error.canceled"

pytestmark = pytest.mark.timeout(120)


def _next(ws: websocket.WebSocket) -> list[t.Any]:
    return t.cast(list[t.Any], json.loads(ws.recv()))


def test_a_call_the_callee_never_answers_is_canceled_at_its_deadline(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router, WAMP_BRIDGE_BROWSER_CALL_TIMEOUT=3)
    try:
        ws, _ = raw_session(server, login(server, "dee"))
        ws.settimeout(30)
        try:
            ws.send(json.dumps([CALL, 1, {}, "app.sleep", [60]]))  # the ceiling: 3 s
            ws.send(json.dumps([CALL, 2, {"timeout": 500}, "app.sleep", [60]]))  # its own: 0.5 s
            first, second = _next(ws), _next(ws)
            assert first[:5] == [ERROR, CALL, 2, {}, CANCELED], first
            assert second[:5] == [ERROR, CALL, 1, {}, CANCELED], second
            assert "3 s" in second[5][0]
            ws.send(json.dumps([CALL, 3, {}, "app.whoami"]))  # the session goes on
            assert _next(ws)[:2] == [RESULT, 3]
            wait_until(lambda: get_json(server, "/sleeping") == 0)  # CANCEL killnowait: the callee was interrupted
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def test_an_abuse_close_answers_the_calls_in_flight_then_goodbye_then_1008(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router)
    try:
        ws, _ = raw_session(server, login(server, "mal"))
        ws.settimeout(30)
        try:
            ids = pending_calls(ws, 3)
            wait_until(lambda: get_json(server, "/sleeping") == 3)
            for request_id in range(100, 220):  # refused one by one: a strike each, past the limit
                ws.send(json.dumps([CALL, request_id, {}, "not a uri"]))
            messages, code = until_close(ws)
            refused = [m for m in messages if m[0] == ERROR and m[4] == "wamp.error.invalid_uri"]
            assert len(refused) >= 100
            rest = assert_one_error_per_call([m for m in messages if m not in refused], ids,
                                             "wamp_bridge.close.too_many_refusals")
            assert [m[0] for m in rest] == [GOODBYE] and rest[0][2] == "wamp_bridge.close.too_many_refusals"
            assert code == 1008
            wait_until(lambda: get_json(server, "/sleeping") == 0)  # the router ended the session: calls dropped
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def _router_port(router: t.Any) -> int:
    port = urllib.parse.urlsplit(router.url).port
    assert port is not None
    return port


@pytest.mark.parametrize("direction", ["down", "up"])
def test_a_half_open_link_through_a_proxy_still_answers_every_call(fresh_crossbar_router: t.Any,
                                                                   direction: str) -> None:
    """router->bridge stops: liveness drops the link (router_lost). bridge->router stops, the bridge's pings off
    (a router that pings by itself keeps the bridge from noticing): the call's deadline answers it."""
    proxy = TcpProxy(_router_port(fresh_crossbar_router))
    # the WebSocket upstream's liveness (its pings); a RawSocket upstream has none: its end is its liveness
    server = _start(fresh_crossbar_router, WAMP_BRIDGE_ROUTER_URL=proxy.url(), WAMP_BRIDGE_UPSTREAM="websocket",
                    WAMP_BRIDGE_UPSTREAM_PING_INTERVAL=2 if direction == "down" else 0,
                    WAMP_BRIDGE_UPSTREAM_PING_TIMEOUT=1,
                    WAMP_BRIDGE_BROWSER_CALL_TIMEOUT=30 if direction == "down" else 3,
                    WAMP_BRIDGE_TICKET_BIND_PEER=False)  # the router sees the proxy's address
    try:
        wait_until(lambda: get_json(server, "/peer")["session"] is not None)
        ws, _ = raw_session(server, login(server, "hal"))
        ws.settimeout(60)
        try:
            relay_link = proxy.links[-1]  # the peer connected at boot; this browser's upstream is the newest
            if direction == "down":
                ids = pending_calls(ws, 3)
                wait_until(lambda: get_json(server, "/sleeping") == 3)
                proxy.hold("down", [relay_link])
                messages, code = until_close(ws)
                rest = assert_one_error_per_call(messages, ids, "wamp_bridge.error.router_lost")
                assert [m[0] for m in rest] == [ABORT] and code == 1011
            else:
                proxy.hold("up", [relay_link])
                ws.send(json.dumps([CALL, 1, {}, "app.whoami"]))  # it never reaches the router
                error = _next(ws)
                assert error[:5] == [ERROR, CALL, 1, {}, CANCELED], error
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)
        proxy.close()


# --- a worker at its descriptor limit -------------------------------------------------------------------------


_ACCEPT_LINE = re.compile(r"cannot accept connections: .*?stopped accepting for [\d.]+ s(?: \((\d+) more since)?")


def test_a_worker_at_its_descriptor_limit_warns_sheds_and_recovers(crossbar_router: t.Any) -> None:
    assert crossbar_router.settings is not None
    env = _env(crossbar_router.settings)
    env["TEST_NOFILE"] = "64"
    server = GunicornProcess(APP, env=env, extra_args=["-c", "python:tests.apps.low_nofile"])
    server.start()
    sockets: list[websocket.WebSocket] = []
    parked: list[socket.socket] = []
    try:
        server.wait_for_log("which needs about 2032 file descriptors")  # at boot, with the numbers and the fix
        assert "but the nofile limit is 64" in server.log() and "ulimit -n" in server.log()
        wait_until(lambda: get_json(server, "/peer")["session"] is not None)
        cookie = login(server, "fd")
        shed: list[t.Any] = []
        for _ in range(40):  # 2 descriptors each: the limit comes first
            try:
                ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, cookie=cookie,
                                                 subprotocols=["wamp.2.json"], timeout=3)
            except (OSError, websocket.WebSocketException):
                break  # not accepted: it waits in the backlog
            sockets.append(ws)
            ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
            try:
                reply = _next(ws)
            except (OSError, websocket.WebSocketException):
                break
            if reply[0] != 2:
                shed.append(reply)
                break
        assert sockets and len(sockets) < 40
        # Plain connections take what a shed session gave back; the last ones wait in the backlog.
        parked.extend(socket.create_connection((server.host, server.port), timeout=5) for _ in range(6))
        server.wait_for_log("out of file descriptors")
        assert "check WAMP_BRIDGE_ROUTER_URL" not in server.log() and "check WAMP_BRIDGE_RAWSOCKET" not in server.log()
        for reply in shed:  # a session the worker could not connect upstream: told to retry
            assert reply[0] == ABORT and reply[2] == "wamp_bridge.error.router_unavailable", reply
        # Paused, not spinning on accept: a connection waiting in the backlog fails every accept, and the worker's
        # next line (one per 10 s) counts the failures since its first. Pauses doubling from 0.1 s to 2 s leave
        # room for at most 8 of them, however fast or slow the machine; a busy loop makes thousands.
        lines = wait_until(lambda: list(_ACCEPT_LINE.finditer(server.log()))[1:], timeout=60)
        assert int(lines[0].group(1) or 0) < 20, lines[0].group(0)
        for ws in sockets:
            ws.close(timeout=1)
        sockets.clear()
        for sock in parked:
            sock.close()
        wait_until(lambda: get_json(server, "/sleeping") == 0, timeout=30)  # plain HTTP is served again
    finally:
        for ws in sockets:
            ws.shutdown()
        for sock in parked:
            sock.close()
        server.stop()


def test_logins_after_a_router_restart_see_1013_until_the_authenticator_is_back(
        fresh_crossbar_router: t.Any) -> None:
    """Between the router's return and the peer's re-registration, a login is told to retry, never refused."""
    import time

    server = _start(fresh_crossbar_router, WAMP_BRIDGE_RECONNECT_MAX=2, WAMP_BRIDGE_CONNECT_TIMEOUT=2)
    try:
        cookie = login(server, "rex")
        raw_session(server, cookie)[0].close()
        fresh_crossbar_router.stop()
        time.sleep(3)  # an outage: the peer's reconnects fail meanwhile
        fresh_crossbar_router.start(120)  # the same port
        outcomes: list[tuple[t.Any, int | None]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, cookie=cookie,
                                             subprotocols=["wamp.2.json"], timeout=30)
            try:
                ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
                reply = _next(ws)
                if reply[0] == 2:
                    outcomes.append(("WELCOME", None))
                    break
                _, code = until_close(ws)
                outcomes.append((reply[2], code))
            finally:
                ws.close()
                ws.shutdown()
            time.sleep(0.05)
        assert outcomes and outcomes[-1] == ("WELCOME", None), outcomes
        refusals = set(outcomes[:-1])
        assert refusals <= {("wamp_bridge.error.router_unavailable", 1013)}, refusals  # retry, not refused
    finally:
        _stop(server)
