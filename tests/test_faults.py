"""Faults end to end: real Crossbar (killed, stalled, unreachable), real gunicorn, raw WebSocket browsers.

Each fault is scripted and bounded in time; the tests assert on what the
clients receive (an ERROR per pending call, the ABORT or GOODBYE URI, the close
code), never on how long it took: the timings are in bench/bench_faults.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import typing as t

import pytest
import websocket
from helpers import GunicornProcess
from helpers import wait_until
from test_endpoint import _start
from test_endpoint import _stop
from test_endpoint import get_json
from test_endpoint import login
from test_endpoint import raw_session
from test_endpoint import raw_socket

FAST_LIVENESS = {"WAMP_BRIDGE_UPSTREAM_PING_INTERVAL": 2, "WAMP_BRIDGE_UPSTREAM_PING_TIMEOUT": 1,
                 "WAMP_BRIDGE_CALL_TIMEOUT": 120}
ERROR, CALL, ABORT, GOODBYE = 8, 48, 3, 6


def until_close(ws: websocket.WebSocket) -> tuple[list[t.Any], int]:
    """Every WAMP message up to the close frame, and the close code."""
    messages = []
    while True:
        opcode, frame = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return messages, int.from_bytes(frame[:2], "big")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            messages.append(json.loads(frame))


def pending_calls(ws: websocket.WebSocket, count: int) -> list[int]:
    ids = list(range(1, count + 1))
    for request_id in ids:
        ws.send(json.dumps([CALL, request_id, {}, "app.sleep", [60]]))
    return ids


def assert_one_error_per_call(messages: list[t.Any], ids: list[int], uri: str) -> list[t.Any]:
    """Exactly one ERROR with ``uri`` for each id, before the rest; returns the rest."""
    errors = [m for m in messages if m[0] == ERROR]
    assert sorted(m[2] for m in errors) == ids, messages
    assert all(m[1] == CALL and m[4] == uri for m in errors), errors
    assert messages[:len(errors)] == errors, messages  # the answers come before the session ends
    return messages[len(errors):]


@contextlib.contextmanager
def stalled(router: t.Any) -> t.Iterator[None]:
    """Freeze the router's whole process group (SIGSTOP), then let it go on (SIGCONT)."""
    os.killpg(router.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(router.pid, signal.SIGCONT)


def _peer_call_in_background(server: GunicornProcess) -> tuple[threading.Thread, dict[str, t.Any]]:
    outcome: dict[str, t.Any] = {}

    def run() -> None:
        outcome.update(get_json(server, "/peer-call/sleep/60"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_killed_router_answers_every_pending_call_then_aborts_1011(fresh_crossbar_router: t.Any) -> None:
    server = _start(fresh_crossbar_router, **FAST_LIVENESS)
    try:
        ws, _ = raw_session(server, login(server, "kim"))
        try:
            ids = pending_calls(ws, 8)
            thread, outcome = _peer_call_in_background(server)
            wait_until(lambda: get_json(server, "/sleeping") == 9)  # every call reached the procedure
            os.killpg(fresh_crossbar_router.pid, signal.SIGKILL)
            messages, code = until_close(ws)
            rest = assert_one_error_per_call(messages, ids, "wamp_bridge.error.router_lost")
            assert [m[0] for m in rest] == [ABORT] and rest[0][2] == "wamp_bridge.error.router_lost"
            assert code == 1011
            thread.join(30)
            assert outcome.get("error") == "ConnectionClosed", outcome  # g.wampy: an exception at once
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def test_stalled_router_is_detected_and_every_pending_call_answered(fresh_crossbar_router: t.Any) -> None:
    server = _start(fresh_crossbar_router, **FAST_LIVENESS)
    try:
        ws, _ = raw_session(server, login(server, "sam"))
        ws.settimeout(60)  # bound: detection is interval + timeout (3 s here)
        try:
            ids = pending_calls(ws, 8)
            thread, outcome = _peer_call_in_background(server)
            wait_until(lambda: get_json(server, "/sleeping") == 9)
            with stalled(fresh_crossbar_router):
                messages, code = until_close(ws)
                thread.join(60)
            rest = assert_one_error_per_call(messages, ids, "wamp_bridge.error.router_lost")
            assert [m[0] for m in rest] == [ABORT]
            assert code == 1011
            assert outcome.get("error") == "ConnectionClosed", outcome
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def test_stalled_router_at_login_aborts_with_1013(fresh_crossbar_router: t.Any) -> None:
    server = _start(fresh_crossbar_router, WAMP_BRIDGE_CONNECT_TIMEOUT=2)
    try:
        with stalled(fresh_crossbar_router):
            ws = raw_socket(server)
            ws.settimeout(30)
            try:
                ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
                messages, code = until_close(ws)
            finally:
                ws.close()
                ws.shutdown()
        assert [m[:1] + m[2:] for m in messages] == [[ABORT, "wamp_bridge.error.router_unavailable"]]
        assert code == 1013
        server.wait_for_log("cannot reach the router")  # with what to check
        assert "never answers the handshake" in server.log()
    finally:
        _stop(server)


@pytest.mark.parametrize(("sig", "ends_with", "code"), [(signal.SIGTERM, GOODBYE, 1001), (signal.SIGHUP, ABORT, 1012)],
                         ids=["shutdown", "reload"])
def test_worker_shutdown_and_reload_answer_every_pending_call(crossbar_router: t.Any, sig: int, ends_with: int,
                                                              code: int) -> None:
    server = _start(crossbar_router)
    try:
        ws, _ = raw_session(server, login(server, "lee"))
        try:
            ids = pending_calls(ws, 8)
            wait_until(lambda: get_json(server, "/sleeping") == 8)
            server.send_signal(sig)
            messages, closed_with = until_close(ws)
            rest = assert_one_error_per_call(messages, ids, "wamp.close.system_shutdown")
            assert [m[0] for m in rest] == [ends_with] and rest[0][2] == "wamp.close.system_shutdown"
            assert closed_with == code
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def test_max_requests_recycles_the_worker_and_its_sockets_close_1012(crossbar_router: t.Any) -> None:
    assert crossbar_router.settings is not None
    from test_endpoint import _env

    server = GunicornProcess("tests.apps.endpoint_app:app", env=_env(crossbar_router.settings),
                             extra_args=["--max-requests", "6", "--max-requests-jitter", "3"])
    server.start()
    try:
        [first] = server.worker_pids()
        ws, _ = raw_session(server, login(server, "max"))  # two requests: the login and the upgrade
        try:
            ids = pending_calls(ws, 2)
            wait_until(lambda: get_json(server, "/sleeping") == 2)
            for _ in range(12):  # at most max_requests + jitter in all
                if ws.sock is None or server.worker_pids() != [first]:
                    break
                with contextlib.suppress(OSError):
                    get_json(server, "/relays")
            messages, code = until_close(ws)
            rest = assert_one_error_per_call(messages, ids, "wamp.close.system_shutdown")
            assert [m[0] for m in rest] == [ABORT]
            assert code == 1012  # drained as on a reload: the page reconnects
        finally:
            ws.close()
            ws.shutdown()
        [second] = server.wait_for_workers(1, exclude=[first])
        assert second != first
        assert get_json(server, "/sleeping") == 0  # the new worker serves
    finally:
        _stop(server)


# --- misconfiguration is logged with a hint ------------------------------------------------


def _hello_answer(server: GunicornProcess) -> tuple[list[t.Any], int]:
    ws = raw_socket(server)
    ws.settimeout(30)
    try:
        ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
        return until_close(ws)
    finally:
        ws.close()
        ws.shutdown()


def test_missing_and_silent_authenticators_are_logged_with_a_hint(fresh_crossbar_router: t.Any,
                                                                  wamp_client: t.Any) -> None:
    import threading as _threading

    # the app registers its authenticator under another URI than the router calls
    server = _start(fresh_crossbar_router, WAMP_BRIDGE_AUTHENTICATOR="app.not_the_authenticator",
                    WAMP_BRIDGE_CONNECT_TIMEOUT=2)
    released = _threading.Event()
    try:
        messages, code = _hello_answer(server)
        # the router's wamp.error.no_such_procedure: the server's trouble, retryable (a peer may join soon)
        assert [m[:1] + m[2:] for m in messages] == [[ABORT, "wamp_bridge.error.router_unavailable"]]
        assert code == 1013
        server.wait_for_log("the ticket authenticator is not registered")
        assert "WAMP_BRIDGE_PEER_SECRET" in server.log()  # the suspect when it lasts

        # now one that never answers
        service = wamp_client(fresh_crossbar_router)
        service.register("wamp_bridge.authenticate", lambda *args, **kwargs: released.wait(60))
        messages, code = _hello_answer(server)
        assert [m[:1] + m[2:] for m in messages] == [[ABORT, "wamp_bridge.error.router_unavailable"]]
        assert code == 1013
        server.wait_for_log("the ticket authenticator (WAMP_BRIDGE_AUTHENTICATOR) never answered")
    finally:
        released.set()
        _stop(server)


def test_a_peer_the_router_refuses_is_logged_with_a_hint(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router, WAMP_BRIDGE_PEER_SECRET="not-the-secret-in-the-router-config")
    try:
        server.wait_for_log("the router refused to join realm 'realm1': wamp.error.not_authorized")
        assert "check WAMP_BRIDGE_PEER_SECRET" in server.log()
    finally:
        _stop(server)


# --- a worker killed with SIGKILL -------------------------------------------------------------


def _owner_of_connection(pids: list[int], client_port: int, server_port: int) -> int:
    """Which of ``pids`` holds the server end of the TCP connection from ``client_port``."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                inode = fields[9]
    assert inode is not None, "no such connection"
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no worker holds socket {inode}")


def test_a_killed_workers_registrations_never_swallow_calls(fresh_crossbar_router: t.Any,
                                                            wamp_client: t.Any) -> None:
    from test_endpoint import _env

    router = fresh_crossbar_router
    server = GunicornProcess("tests.apps.endpoint_app:app", env=_env(router.settings), workers=2)
    server.start()
    try:
        tester = wamp_client(router)

        def callees() -> int:
            registration = tester.call("wamp.registration.lookup", "app.sleep")
            return len(tester.call("wamp.registration.list_callees", registration)) if registration else 0

        wait_until(lambda: callees() == 2)  # both workers' peers registered (round-robin)
        ws, _ = raw_session(server, login(server, "kai"))
        ws.settimeout(30)
        try:
            relay_worker = _owner_of_connection(server.worker_pids(), ws.sock.getsockname()[1], server.port)
            [victim] = [pid for pid in server.worker_pids() if pid != relay_worker]
            ws.send(json.dumps([CALL, 1, {}, "app.sleep", [60]]))  # round-robin: one per worker
            ws.send(json.dumps([CALL, 2, {}, "app.sleep", [60]]))
            ws.send(json.dumps([CALL, 3, {}, "app.whoami"]))  # answered once 1 and 2 are routed
            assert json.loads(ws.recv())[:2] == [50, 3]
            os.kill(victim, signal.SIGKILL)
            error = json.loads(ws.recv())  # the other call sleeps on: this comes from the dead callee
            assert error[:2] == [ERROR, CALL] and error[2] in (1, 2) and error[4] == "wamp.error.canceled", error
            ws.send(json.dumps([CALL, 4, {}, "app.sleep", [0]]))  # the next call reaches the live worker
            assert json.loads(ws.recv())[:2] == [50, 4]
            server.wait_for_workers(2, exclude=[victim])
            fresh, _ = raw_session(server, login(server, "kai2"))  # a fresh browser logs in and calls
            try:
                fresh.send(json.dumps([CALL, 1, {}, "app.whoami"]))
                result = json.loads(fresh.recv())
                assert result[:2] == [50, 1] and result[3] == [{"authid": "kai2", "authrole": "user"}], result
            finally:
                fresh.close()
                fresh.shutdown()
        finally:
            ws.close()
            ws.shutdown()
    finally:
        server.stop()


def test_a_login_storm_larger_than_the_login_cap_all_gets_welcome(crossbar_router: t.Any) -> None:
    """150 browsers at once through one worker that runs 4 upstream logins at a time: all queue, none refused."""
    import gevent

    from flask_wamp_bridge.websocket.client import connect

    server = _start(crossbar_router, WAMP_BRIDGE_MAX_LOGINS=4)
    try:
        cookie = login(server, "storm")
        replies: list[t.Any] = []
        sockets: list[t.Any] = []

        def browser() -> None:
            ws = connect(server.ws_url("/wamp"), subprotocols=["wamp.2.json"],
                         headers={"Cookie": cookie, "Origin": server.url}, timeout=60)
            sockets.append(ws)
            ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
            data = ws.receive()
            replies.append(json.loads(data) if isinstance(data, str) else data)

        with gevent.Timeout(120):
            gevent.joinall([gevent.spawn(browser) for _ in range(150)], raise_error=True)
        assert len(replies) == 150
        assert [reply for reply in replies if reply[0] != 2] == []  # every one a WELCOME
        assert all(reply[2]["authid"] == "storm" for reply in replies)
        for ws in sockets:
            ws.close()
    finally:
        _stop(server)
