"""Overload is not a bad credential: a login behind a slow authenticator ends retryable, against a real Crossbar.

(The same server shows that PUBLISH options that target or retain are refused by default, and holds a user to
``WAMP_BRIDGE_MAX_SESSIONS_PER_USER`` sessions.)

The test app's authenticator waits per authid before checking the ticket (an overloaded authenticator). The
router is this module's own: the authenticator is a shared registration, and another app's fast one would answer.
"""

from __future__ import annotations

import json
import typing as t

import pytest
import websocket
from helpers import GunicornProcess
from helpers import wait_until
from test_endpoint import _env
from test_endpoint import close_code
from test_endpoint import login

from flask_wamp_bridge.testing import start_router

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(120)]

APP = "tests.apps.endpoint_app:app"
#: Seconds each user's ticket waits at the authenticator: past the ticket's 1 s, past the 2.5 s login, none.
WAITS = {"late": 1.5, "stuck": 4.0, "quick": 0.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[GunicornProcess]:
    router = start_router(tmp_path_factory.mktemp("crossbar-overload"))
    server = GunicornProcess(APP, env=_env(router.settings, WAMP_BRIDGE_TICKET_MAX_AGE=1.0,
                                           WAMP_BRIDGE_LOGIN_TIMEOUT=2.5, TEST_SLOW_AUTHENTICATOR=WAITS,
                                           WAMP_BRIDGE_MAX_SESSIONS_PER_USER=2))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        router.stop()


def hello(server: GunicornProcess, user: str) -> tuple[websocket.WebSocket, list[t.Any]]:
    ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                     timeout=15, cookie=login(server, user))
    ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
    return ws, json.loads(ws.recv())


@pytest.mark.parametrize("user", ["late", "stuck"])
def test_a_login_behind_a_slow_authenticator_is_retryable(server: GunicornProcess, user: str) -> None:
    ws, abort = hello(server, user)
    try:
        assert abort[0] == 3 and abort[2] == "wamp_bridge.error.router_unavailable", abort
        assert close_code(ws) == 1013
    finally:
        ws.close()
        ws.shutdown()


def test_a_quick_authenticator_welcomes(server: GunicornProcess) -> None:
    ws, welcome = hello(server, "quick")
    ws.close()
    ws.shutdown()
    assert welcome[0] == 2 and welcome[2]["authid"] == "quick"


def test_publish_options_that_target_or_retain_are_refused_by_default(server: GunicornProcess) -> None:
    ws, welcome = hello(server, "quick")
    try:
        assert welcome[0] == 2
        for request_id, options in enumerate(({"eligible_authid": ["flask-app"]}, {"retain": True},
                                               {"exclude_authrole": ["user"]}), start=1):
            ws.send(json.dumps([16, request_id, {"acknowledge": True, **options}, "app.board", ["x"]]))
            assert json.loads(ws.recv())[:5] == [8, 16, request_id, {}, "wamp.error.not_authorized"]
    finally:
        ws.close()
        ws.shutdown()


def test_a_user_past_the_session_cap_gets_abort_and_1008_until_one_closes(server: GunicornProcess) -> None:
    first, _ = hello(server, "many")
    second, _ = hello(server, "many")
    third, abort = hello(server, "many")
    try:
        assert abort[0] == 3 and abort[2] == "wamp_bridge.error.too_many_sessions", abort
        assert close_code(third) == 1008
        first.close()
        first.shutdown()
        assert wait_until(lambda: hello_and_close(server, "many")[0] == 2)
    finally:
        for ws in (second, third):
            ws.close()
            ws.shutdown()


def hello_and_close(server: GunicornProcess, user: str) -> list[t.Any]:
    ws, reply = hello(server, user)
    ws.close()
    ws.shutdown()
    return reply
