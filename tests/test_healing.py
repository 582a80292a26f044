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
import time
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


def make_ghost(router: CrossbarProcess, uri: str, left: t.Callable[[int], bool],
               before_stop: t.Callable[[], t.Any] = lambda: None) -> int:
    """Leave a ghost callee of ``uri`` (tests/ghost_callee.py, stopped past the ping timeout); its old id.

    Crossbar drops the two sessions in either order; only the callee first leaves a ghost (most runs), so
    this tries up to five times, telling by the router's log line for that session.
    """
    for _ in range(5):
        callee = _stopped_callee(router, uri, left, before_stop)
        if f"Failed to detach session '{callee}'" in router.log.read_text(errors="replace"):
            return callee
    raise AssertionError("Crossbar detached the stopped callee cleanly five times: is it still 26.10.1?")


def _stopped_callee(router: CrossbarProcess, uri: str, left: t.Callable[[int], bool],
                    before_stop: t.Callable[[], t.Any]) -> int:
    child = subprocess.Popen([sys.executable, str(GHOST), router.url, router.realm, TEST_PEER_AUTHID,
                              TEST_PEER_SECRET, uri], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ids = json.loads(in_thread(child.stdout.readline))
        before_stop()
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


def test_force_reregister_is_no_cure_on_crossbar_26_10_1(fast_router: CrossbarProcess) -> None:
    """It drops every other callee of the list it iterates, then fails: the ghost stays, a live callee goes."""
    from flask_wamp_bridge.errors import CallTimeout

    uri = "test.healing.force"
    live, other = make_peer(fast_router), make_peer(fast_router)
    try:
        live.register(uri, lambda seconds: "live")
        healer = Healer(live, interval=60.0)
        healer.attach()
        assert live.wait_ready(20) and other.wait_ready(20)
        make_ghost(fast_router, uri, lambda session: session in healer._left)  # callees: [live, null]
        assert callees(live, uri) == [live.session_id, None]
        with pytest.raises(CallTimeout):  # no answer at all: the router's handler raised
            other.register(uri, lambda seconds: "other", force_reregister=True, timeout=3)
        assert callees(live, uri) == [None]  # the live callee was dropped, the ghost kept
    finally:
        other.stop()
        live.stop()


def test_the_elected_healer_heals_right_after_the_leave(fast_router: CrossbarProcess) -> None:
    uri = "test.healing.prompt"
    peer = make_peer(fast_router)
    try:
        peer.register(uri, lambda seconds: "live")
        healer = Healer(peer, interval=60.0)
        healer.elected = lambda: True
        healer.attach()
        assert peer.wait_ready(20)
        make_ghost(fast_router, uri, lambda session: session in healer._left, before_stop=healer.check)
        assert wait_until(lambda: healer.repairs == 1, 20)  # no periodic check ran: the callee's leave triggered it
        assert callees(peer, uri) == [peer.session_id]
    finally:
        peer.stop()


# --- the app's workers under gunicorn -------------------------------------------------------


def _live_callees(tester: t.Any, uri: str) -> list[t.Any] | None:
    """The callees of ``uri``, or None while one is null or no live session."""
    found = callees(tester, uri)
    sessions = set(tester.call("wamp.session.list") or [])
    return found if found and all(callee in sessions for callee in found) else None


def test_a_worker_stopped_past_the_ping_timeout_leaves_no_ghost(fast_router: CrossbarProcess,
                                                                 wamp_client: t.Any) -> None:
    from helpers import GunicornProcess
    from helpers import wait_until as wait_for
    from test_endpoint import _env
    from test_endpoint import login
    from test_endpoint import raw_session
    from test_faults import _owner_of_connection

    router = fast_router
    assert router.settings is not None
    server = GunicornProcess("tests.apps.endpoint_app:app", workers=2,
                             env=_env(router.settings, WAMP_BRIDGE_HEALING_INTERVAL=2))
    server.start()
    sockets = []
    try:
        tester = wamp_client(router)
        procedures = ["app.sleep", "app.whoami", "wamp_bridge.authenticate"]
        wait_for(lambda: all(len(_live_callees(tester, uri) or []) == 2 for uri in procedures), 60)
        pids = server.worker_pids()
        for n in range(8):  # browsers on both workers; the victim's call the sleeper, in flight on both peers
            ws, _ = raw_session(server, login(server, f"b{n}"))
            sockets.append(ws)
        owners = [_owner_of_connection(pids, ws.sock.getsockname()[1], server.port) for ws in sockets]
        victim = owners[0]
        for ws, owner in zip(sockets, owners, strict=True):
            if owner == victim:
                for request_id in range(1, 5):
                    ws.send(json.dumps([48, request_id, {}, "app.sleep", [60]]))
        os.kill(victim, signal.SIGSTOP)
        try:
            wait_for(lambda: len(callees(tester, "app.sleep")) < 2 or None in callees(tester, "app.sleep"), 30)
        finally:
            os.kill(victim, signal.SIGCONT)
        resumed = time.monotonic()
        ghost = "Failed to detach session" in router.log.read_text(errors="replace")
        # healed: every callee of every procedure is a live session again, both workers serve
        wait_for(lambda: all(len(_live_callees(tester, uri) or []) == 2 for uri in procedures), 60)
        print(f"\nghost callee: {ghost}; every procedure had two live callees {time.monotonic() - resumed:.1f} s "
              "after the worker resumed")
        for n in range(6):  # fresh logins and calls all succeed (none routed to a ghost)
            ws, _ = raw_session(server, login(server, f"fresh{n}"))
            sockets.append(ws)
            ws.send(json.dumps([48, 1, {}, "app.whoami"]))
            result = json.loads(ws.recv())
            assert result[:2] == [50, 1] and result[3][0]["authid"] == f"fresh{n}", result
        if ghost:
            assert "healing: removed a dead callee" in server.log(), server.log()[-3000:]
    finally:
        for ws in sockets:
            ws.close()
            ws.shutdown()
        server.stop()


def test_a_runner_stopped_past_the_ping_timeout_never_runs_its_job_again_alongside(
    fast_router: CrossbarProcess, tmp_path: Path,
) -> None:
    from helpers import GunicornProcess
    from test_component import component_env
    from test_component import records
    from test_component import wait_until as wait_for

    record = tmp_path / "record.jsonl"
    env = component_env(fast_router, "app.hung", record, COMPONENT_TICK="1")
    with GunicornProcess("tests.apps.component_app:app", env=env, workers=2) as server:
        server.wait_for_workers(2)
        wait_for(lambda: len(records(record, "tick")) >= 3, what="3 ticks")
        runner = records(record, "tick")[-1]["pid"]
        os.kill(runner, signal.SIGSTOP)
        try:  # the router drops it after 2 s; another worker takes the election over
            wait_for(lambda: [r for r in records(record, "tick") if r["pid"] != runner], 60, "a new runner")
        finally:
            os.kill(runner, signal.SIGCONT)
            resumed = records(record, "tick")[-1]["end"]
        wait_for(lambda: len([r for r in records(record, "tick") if r["start"] > resumed]) >= 4, 30, "4 more ticks")
        log = server.log()
        server.stop()
    ticks = records(record, "tick")
    ordered = sorted(ticks, key=lambda r: r["start"])
    overlaps = [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b["start"] < a["end"]]
    assert overlaps == []
    assert [r for r in ticks if r["pid"] == runner and r["start"] > resumed] == []  # the old runner never ran again
    assert "skipped a run" in log or "no longer the runner" in log
