"""A browser stays untrusted after WELCOME: the relay's checks against a real Crossbar and gunicorn bridge.

Raw WebSocket clients in all three serializers play the hostile browser; the
app's own procedures and subscriber (tests/apps/endpoint_app.py) report whom
the router says they heard from.
"""

from __future__ import annotations

import json
import typing as t
import urllib.request

import pytest
import websocket
from helpers import GunicornProcess
from helpers import wait_until
from test_endpoint import _env
from test_endpoint import browser
from test_endpoint import close_code
from test_endpoint import login

from flask_wamp_bridge.testing import start_router
from flask_wamp_bridge.wamp.messages import serializer_for

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

APP = "tests.apps.endpoint_app:app"
BOB = [{"session": 1, "authid": "bob", "authrole": "user"}]
PERMISSIONS = {
    "user": [{"uri": "app.", "match": "prefix", "allow": ["call", "subscribe", "publish", "register"]}],
    "anonymous": [{"uri": "app.public.", "match": "prefix", "allow": ["call", "subscribe"]}],
}
SERIALIZERS = ["wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor"]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    router = start_router(tmp_path_factory.mktemp("crossbar-security"), WAMP_BRIDGE_PERMISSIONS=PERMISSIONS)
    try:
        yield router
    finally:
        router.stop()


@pytest.fixture(scope="module")
def server(router: t.Any) -> t.Iterator[GunicornProcess]:
    # the browser-client tests share this server: wampy.js and autobahn-js may send every publish option
    server = GunicornProcess(APP, env=_env(router.settings, WAMP_BRIDGE_TARGETED_PUBLISH=True))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.log(), server.log()


class Raw:
    """A raw WAMP session through the bridge in one serializer: what a hostile page can send."""

    def __init__(self, server: GunicornProcess, subprotocol: str, cookie: str | None = None) -> None:
        self.serializer = serializer_for(subprotocol)
        options: dict[str, t.Any] = {"cookie": cookie} if cookie else {}
        self.ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=[subprotocol],
                                              timeout=15, **options)
        self.send([1, "realm1", {"roles": {"caller": {}, "publisher": {}, "subscriber": {}, "callee": {}}}])
        self.welcome = self.recv()
        assert self.welcome[0] == 2, self.welcome

    def send(self, message: list[t.Any]) -> None:
        self.send_frame(self.serializer.dumps(message))

    def send_frame(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def recv(self) -> list[t.Any]:
        return self.serializer.loads(self.ws.recv())

    def call(self, request_id: int, procedure: str, *args: t.Any, **options: t.Any) -> list[t.Any]:
        self.send([48, request_id, options, procedure, list(args)])
        return self.recv()

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()


def get_json(server: GunicornProcess, path: str) -> t.Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def nested_json(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("subprotocol", SERIALIZERS)
def test_call_with_forward_for_is_refused_and_the_callee_sees_the_user(server: GunicornProcess,
                                                                       subprotocol: str) -> None:
    raw = Raw(server, subprotocol, login(server, "alice"))
    try:
        for ff in (BOB, [{"session": 1, "authid": "flask-app", "authrole": "backend"}]):
            refused = raw.call(1, "app.whoami", forward_for=ff)
            assert refused[:5] == [8, 48, 1, {}, "wamp.error.not_authorized"]
        result = raw.call(2, "app.whoami")
        assert result[:2] == [50, 2] and result[3] == [{"authid": "alice", "authrole": "user"}]
    finally:
        raw.close()


@pytest.mark.parametrize("subprotocol", SERIALIZERS)
def test_publish_with_forward_for_never_reaches_subscribers_as_another(server: GunicornProcess,
                                                                       subprotocol: str) -> None:
    raw = Raw(server, subprotocol, login(server, "alice"))
    marker = f"post-{subprotocol}"
    try:
        raw.send([16, 1, {"acknowledge": True, "forward_for": BOB}, "app.board", [marker, "forged"]])
        assert raw.recv()[:5] == [8, 16, 1, {}, "wamp.error.not_authorized"]
        raw.send([16, 2, {"forward_for": BOB}, "app.board", [marker, "forged, unacknowledged"]])  # dropped
        raw.send([16, 3, {"acknowledge": True}, "app.board", [marker, "real"]])
        assert raw.recv()[:2] == [17, 3]
        assert wait_until(lambda: any(post[0] == [marker, "real"] for post in get_json(server, "/board")))
        mine = [post for post in get_json(server, "/board") if post[0][0] == marker]
        assert mine == [[[marker, "real"], "alice", "user"]]
    finally:
        raw.close()


def test_a_guests_deeply_nested_argument_gets_an_error_and_the_peer_keeps_its_session(
        server: GunicornProcess) -> None:
    assert wait_until(lambda: get_json(server, "/peer")["session"] is not None)
    peer_session = get_json(server, "/peer")["session"]
    raw = Raw(server, "wamp.2.json")  # a guest: no cookie
    try:
        for depth in (40, 5_000, 100_000):
            raw.send_frame(f'[48,{depth},{{}},"app.public.whoami",[{nested_json(depth)}]]')
            assert raw.recv()[:5] == [8, 48, depth, {}, "wamp.error.invalid_argument"]
        guest = raw.call(1, "app.public.whoami")  # the session stays
        assert guest[0] == 50 and guest[3][0]["authrole"] == "anonymous"
    finally:
        raw.close()
    assert get_json(server, "/peer")["session"] == peer_session


def test_a_reused_request_id_is_a_protocol_violation(server: GunicornProcess) -> None:
    raw = Raw(server, "wamp.2.json", login(server, "carol"))
    try:
        raw.send([48, 7, {}, "app.sleep", [2]])
        raw.send([48, 7, {}, "app.sleep", [2]])
        answer = raw.recv()  # the call in flight gets its one answer first
        assert answer[:3] == [8, 48, 7] and answer[4] == "wamp.error.protocol_violation"
        abort = raw.recv()
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        assert "already in flight" in abort[1]["message"]
        assert close_code(raw.ws) == 1002
    finally:
        raw.close()
    server.wait_for_log("wamp protocol_violation: remote 127.0.0.1 authid carol: CALL request id 7")


@pytest.mark.parametrize("subprotocol", SERIALIZERS)
@pytest.mark.parametrize("message", [[99, 1, {}], [1, "realm1", {"roles": {}}], [36, 1, 2, {}]],
                         ids=["unknown type", "HELLO again", "EVENT"])
def test_types_a_browser_may_not_send_end_the_session(server: GunicornProcess, subprotocol: str,
                                                      message: list[t.Any]) -> None:
    raw = Raw(server, subprotocol)
    try:
        raw.send(message)
        abort = raw.recv()
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        assert close_code(raw.ws) == 1002
    finally:
        raw.close()


BOMBS = {
    "wamp.2.msgpack": [b"\x95\x30\x01\x80\xb1app.public.whoami\x91\xdb\xff\xff\xff\xffabc",
                       b"\x95\x30\x01\x80\xb1app.public.whoami\x91\xdd\xff\xff\xff\xff\x01"],
    "wamp.2.cbor": [b"\x85\x18\x30\x01\xa0\x71app.public.whoami\x81\x7b\x00\x00\x00\xff\xff\xff\xff\xffabc",
                    b"\x85\x18\x30\x01\xa0\x71app.public.whoami\x81\x9b\x00\x00\x00\x00\xff\xff\xff\xff\x01"],
    "wamp.2.json": ['[48,1,{},"app.public.whoami",[' + "[" * 200_000 + "]" * 200_000 + "]]"],
}


@pytest.mark.parametrize("subprotocol", SERIALIZERS)
def test_length_bombs_get_invalid_argument_and_the_session_stays(server: GunicornProcess, subprotocol: str) -> None:
    raw = Raw(server, subprotocol)
    try:
        for bomb in BOMBS[subprotocol]:
            raw.send_frame(bomb)
            assert raw.recv()[:5] == [8, 48, 1, {}, "wamp.error.invalid_argument"]
        assert raw.call(2, "app.public.whoami")[0] == 50
    finally:
        raw.close()


def test_router_error_text_is_replaced_for_the_browser(server: GunicornProcess) -> None:
    raw = Raw(server, "wamp.2.json")  # a guest may not call app.whoami
    try:
        error = raw.call(1, "app.whoami")
        assert error[:5] == [8, 48, 1, {}, "wamp.error.not_authorized"]
        assert error[5] == ["the router refused the request"]
        assert not any(key.startswith("x_cb_") for key in raw.welcome[2])
        assert not any(key.startswith("x_cb_") for key in raw.welcome[2].get("authextra", {}))
    finally:
        raw.close()


def test_refused_handshakes_are_logged_with_the_remote_address(server: GunicornProcess) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(server.ws_url("/wamp"), origin="https://evil.example",
                                    subprotocols=["wamp.2.json"], timeout=10)
    server.wait_for_log("wamp origin_refused: remote 127.0.0.1 authid -: Origin 'https://evil.example'")
    cookie = login(server, "dave")
    name, value = cookie.split("=", 1)
    tampered = f"{name}={value[:-4]}AAAA"
    with browser(server, cookie=tampered) as client:
        assert client.authrole == "anonymous"  # Flask drops the cookie; the bridge says so in the log
    server.wait_for_log("wamp cookie_refused: remote 127.0.0.1 authid -: the session cookie's signature")


# --- cost and ownership: what only the router shows ------------------------------------------------------


def test_a_browser_may_not_register_the_apps_procedure(server: GunicornProcess) -> None:
    raw = Raw(server, "wamp.2.json", login(server, "erin"))
    other = Raw(server, "wamp.2.msgpack", login(server, "frank"))
    try:
        raw.send([64, 1, {}, "app.whoami"])
        taken = raw.recv()
        raw.send([64, 2, {}, "app.erin.own"])
        assert raw.recv()[:2] == [65, 2]
        other.send([64, 1, {}, "app.erin.own"])  # really registered: the router says it exists, in the same words
        exists = other.recv()
        assert taken[:2] + taken[3:6] == exists[:2] + exists[3:6]
        assert taken[4] == "wamp.error.procedure_already_exists"
        raw.send([64, 3, {"invoke": "roundrobin"}, "app.whoami"])
        assert raw.recv()[:5] == [8, 64, 3, {}, "wamp.error.not_authorized"]
        assert other.call(2, "app.whoami")[3] == [{"authid": "frank", "authrole": "user"}]  # still the app's
    finally:
        raw.close()
        other.close()


@pytest.mark.parametrize("subprotocol", SERIALIZERS)
def test_a_long_prefix_subscribe_and_a_progressive_call_are_refused(server: GunicornProcess,
                                                                    subprotocol: str) -> None:
    raw = Raw(server, subprotocol, login(server, "gina"))
    try:
        raw.send([32, 1, {"match": "prefix"}, "app." + "x" * 100_000])
        assert raw.recv()[:5] == [8, 32, 1, {}, "wamp.error.invalid_uri"]
        raw.send([32, 2, {"match": "wildcard"}, "app" + "." * 300])
        assert raw.recv()[:5] == [8, 32, 2, {}, "wamp.error.invalid_uri"]
        raw.send([48, 3, {"progress": True}, "app.sleep", [0]])
        assert raw.recv()[:5] == [8, 48, 3, {}, "wamp.error.feature_not_supported"]
        raw.send([48, 4, {"timeout": 2**40}, "app.sleep", [0]])  # past the uint32 the router passes on
        assert raw.recv()[:5] == [8, 48, 4, {}, "wamp.error.invalid_argument"]
        raw.send([32, 5, {"match": "prefix"}, "app."])
        assert raw.recv()[:2] == [33, 5]
    finally:
        raw.close()


@pytest.mark.parametrize("subprotocol", SERIALIZERS)
def test_results_do_not_name_the_apps_peer(server: GunicornProcess, subprotocol: str) -> None:
    raw = Raw(server, subprotocol, login(server, "hank"))
    try:
        result = raw.call(1, "app.whoami")  # Crossbar names the callee (callee, callee_authid, callee_authrole)
        assert result[0] == 50 and result[3] == [{"authid": "hank", "authrole": "user"}]
        assert not [key for key in result[2] if key.startswith("callee")], result[2]
    finally:
        raw.close()
