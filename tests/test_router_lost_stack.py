"""A stalled router ends idle RawSocket relays: real Crossbar (SIGSTOP), real gunicorn, a raw WebSocket browser.

Relays over RawSocket (the default upstream) send no ping; the app's peer notices the stalled router
(``WAMP_BRIDGE_UPSTREAM_PING_INTERVAL`` + ``_TIMEOUT``, short here) and its ``router_lost`` signal ends them.
A session with calls in flight is ``test_faults.test_stalled_router_is_detected_and_every_pending_call_answered``.
"""

from __future__ import annotations

import json
import typing as t

import pytest
from helpers import wait_until
from test_endpoint import _start
from test_endpoint import _stop
from test_endpoint import login
from test_endpoint import raw_session
from test_endpoint import raw_socket
from test_faults import ABORT
from test_faults import FAST_LIVENESS
from test_faults import stalled
from test_faults import until_close

pytestmark = pytest.mark.timeout(120)
WELCOME = 2


def test_a_stalled_router_ends_an_idle_rawsocket_relay_with_router_lost_1011(fresh_crossbar_router: t.Any) -> None:
    server = _start(fresh_crossbar_router, WAMP_BRIDGE_UPSTREAM="rawsocket", **FAST_LIVENESS)
    try:
        ws, _ = raw_session(server, login(server, "ida"))
        ws.settimeout(60)  # bound: the peer's detection is interval + timeout (3 s here)
        try:
            with stalled(fresh_crossbar_router):
                messages, code = until_close(ws)
            assert [m[0] for m in messages] == [ABORT], messages
            assert messages[0][2] == "wamp_bridge.error.router_lost"
            assert messages[0][1]["message"] == "the router stopped answering; reconnect"
            assert code == 1011
            server.wait_for_log("the app's peer lost the router")
        finally:
            ws.close()
            ws.shutdown()
        wait_until(lambda: _welcomed(server, "ida"), 30)  # the router runs again: once the peer is back, logins work
    finally:
        _stop(server)


def _welcomed(server: t.Any, user: str) -> bool:
    ws = raw_socket(server, cookie=login(server, user))
    try:
        ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
        answer = json.loads(ws.recv())
        return bool(answer[0] == WELCOME and answer[2]["authid"] == user)
    finally:
        ws.close()
        ws.shutdown()
