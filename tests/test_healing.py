"""Ghost callees: Crossbar 26.10.1 alone leaves them; the healer removes them through the router.

The peer runs in this process's gevent hub; the ghost is made by a separate
process (tests/ghost_callee.py) stopped past the router's ping timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import gevent
import pytest
from test_peer import in_thread
from test_peer import make_peer
from test_peer import wait_until

from flask_wamp_bridge.component.healing import Healer
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import TEST_PEER_AUTHID
from flask_wamp_bridge.testing import TEST_PEER_SECRET
from flask_wamp_bridge.testing import start_router

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

GHOST = Path(__file__).with_name("ghost_callee.py")
#: The router pings every second and drops a peer silent one more second.
FAST_PINGS = {"WAMP_BRIDGE_ROUTER_PING_INTERVAL": 1, "WAMP_BRIDGE_ROUTER_PING_TIMEOUT": 1}


@pytest.fixture
def fast_router(tmp_path: Path) -> t.Iterator[CrossbarProcess]:
    router = start_router(tmp_path / "crossbar", **FAST_PINGS)
    try:
        yield router
    finally:
        router.stop()


def make_ghost(router: CrossbarProcess, uri: str, left: t.Callable[[int], bool]) -> int:
    """Run tests/ghost_callee.py, stop it until the router dropped its callee, end it; the callee's old id."""
    child = subprocess.Popen([sys.executable, str(GHOST), router.url, router.realm, TEST_PEER_AUTHID,
                              TEST_PEER_SECRET, uri], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ids = json.loads(in_thread(child.stdout.readline))
        os.kill(child.pid, signal.SIGSTOP)
        assert wait_until(lambda: left(ids["callee"]) and left(ids["caller"]), 30)
        gevent.sleep(0.5)  # the detach runs after the leave event
    finally:
        child.kill()
        os.kill(child.pid, signal.SIGCONT)
        in_thread(child.wait)
        if child.stdout is not None:
            child.stdout.close()
    return t.cast(int, ids["callee"])


def callees(peer: t.Any, uri: str) -> list[t.Any]:
    registration = peer.call("wamp.registration.lookup", uri)
    return list(peer.call("wamp.registration.list_callees", registration) or []) if registration else []


def test_crossbar_keeps_a_ghost_callee_and_the_elected_healer_removes_it(fast_router: CrossbarProcess) -> None:
    uri = "test.healing.sleep"
    peer = make_peer(fast_router)
    try:
        peer.register(uri, lambda seconds: "live")
        healer = Healer(peer, interval=60.0)
        healer.attach()
        assert peer.wait_ready(20)
        ghost = make_ghost(fast_router, uri, lambda session: session in healer._left)

        # the known limit: the stopped process's callee stays, as null, and calls routed to it hang
        assert sorted(callees(peer, uri), key=lambda callee: callee is None) == [peer.session_id, None]
        assert "Failed to detach session" in fast_router.log.read_text(errors="replace")

        repairs = healer.check()
        assert [(r.uri, r.callee, r.session) for r in repairs] == [(uri, None, ghost)]
        assert callees(peer, uri) == [peer.session_id]
        assert [peer.call_with(uri, [0], timeout=5) for _ in range(4)] == ["live"] * 4  # none routed to a ghost
        assert healer.check() == []  # nothing left to heal
    finally:
        peer.stop()


def test_the_elected_healer_heals_right_after_the_leave(fast_router: CrossbarProcess) -> None:
    uri = "test.healing.prompt"
    peer = make_peer(fast_router)
    try:
        peer.register(uri, lambda seconds: "live")
        healer = Healer(peer, interval=60.0)
        healer.elected = lambda: True
        healer.attach()
        assert peer.wait_ready(20)
        make_ghost(fast_router, uri, lambda session: session in healer._left)
        assert wait_until(lambda: healer.repairs == 1, 20)  # no periodic check ran: the leave triggered it
        assert callees(peer, uri) == [peer.session_id]
    finally:
        peer.stop()
