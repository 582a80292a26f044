"""The WAMP endpoint end to end: real Crossbar, real gunicorn bridge worker, autobahn-python as the browser."""

from __future__ import annotations

import asyncio
import json
import signal
import typing as t
import urllib.error
import urllib.parse
import urllib.request

import pytest
import websocket
from helpers import GunicornProcess
from helpers import free_port
from helpers import wait_until

from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.testing import WampClient

APP = "tests.apps.endpoint_app:app"
MAX_CALLS = 5
FORGED_EXTRA = {"proxy_authid": "admin", "proxy_authrole": "backend", "role": "backend"}


class BrowserClient(WampClient):
    """An autobahn-python client that connects like a browser page: cookie and Origin headers.

    It names a forged identity in its HELLO (authid ``mallory``, ``ticket``
    method, authextra asking for a backend role): the bridge must ignore it.
    """

    def __init__(self, url: str, realm: str, *, cookie: str | None = None, origin: str | None = None,
                 serializer: str = "json", **kwargs: t.Any) -> None:
        self._headers = {"Cookie": cookie} if cookie else {}
        self._origin = origin
        self._serializer_name = serializer
        kwargs.setdefault("authid", "mallory")
        kwargs.setdefault("secret", None)
        kwargs.setdefault("ticket", "forged-ticket")
        kwargs.setdefault("authextra", FORGED_EXTRA)
        super().__init__(url, realm, **kwargs)

    async def _connect(self, url: str, realm: str, authid: str, secret: str | None, ticket: str | None,
                       authextra: dict[str, t.Any] | None) -> t.Any:
        from autobahn.asyncio.websocket import WampWebSocketClientFactory
        from autobahn.wamp import serializer as serializers
        from autobahn.wamp.types import ComponentConfig

        from flask_wamp_bridge.testing.client import _session_class

        chosen = {"json": serializers.JsonSerializer, "msgpack": serializers.MsgPackSerializer,
                  "cbor": serializers.CBORSerializer}[self._serializer_name]()
        loop = asyncio.get_running_loop()
        joined: asyncio.Future[t.Any] = loop.create_future()
        self._closed = loop.create_future()
        self._session = _session_class()(
            ComponentConfig(realm), authid=authid, secret=secret, ticket=ticket, authextra=authextra,
            joined=joined, closed=self._closed,
        )
        factory = WampWebSocketClientFactory(lambda: self._session, url=url, serializers=[chosen],
                                             headers=self._headers, origin=self._origin)
        parts = urllib.parse.urlsplit(url)
        await loop.create_connection(factory, parts.hostname, parts.port)
        return await joined


def _env(settings: t.Mapping[str, t.Any], **overrides: t.Any) -> dict[str, str]:
    env = {}
    for key, value in {**settings, **overrides}.items():
        env[f"FLASK_{key}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def _start(crossbar_router: t.Any, **overrides: t.Any) -> GunicornProcess:
    assert crossbar_router.settings is not None
    server = GunicornProcess(APP, env=_env(crossbar_router.settings, **overrides))
    server.start()
    return server


def _stop(server: GunicornProcess) -> None:
    server.stop()
    log = server.log()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def server(crossbar_router: t.Any) -> t.Iterator[GunicornProcess]:
    server = _start(crossbar_router, WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT=MAX_CALLS)
    try:
        yield server
    finally:
        _stop(server)


def login(server: GunicornProcess, user: str, role: str | None = None) -> str:
    """Log ``user`` in over HTTP (with ``role``, else the default role); returns the ``Cookie`` header value."""
    body = urllib.parse.urlencode({"user": user, **({"role": role} if role else {})}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{server.url}/login", data=body), timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"]
    return cookie.split(";", 1)[0]


def post_json(server: GunicornProcess, path: str) -> t.Any:
    with urllib.request.urlopen(urllib.request.Request(f"{server.url}{path}", data=b""), timeout=15) as resp:
        return json.loads(resp.read())


def get_json(server: GunicornProcess, path: str) -> t.Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def raw_socket(server: GunicornProcess, **kwargs: t.Any) -> websocket.WebSocket:
    return websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                       timeout=10, **kwargs)


def close_code(ws: websocket.WebSocket) -> int:
    """Read up to the server's close frame; return its code."""
    while True:
        opcode, frame = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame[:2], "big")


def raw_session(server: GunicornProcess, cookie: str | None = None) -> tuple[websocket.WebSocket, list[t.Any]]:
    """A raw JSON WAMP session through the bridge: returns the socket and the WELCOME."""
    ws = raw_socket(server, **({"cookie": cookie} if cookie else {}))
    ws.send(json.dumps([1, "realm1", {"roles": {"caller": {"features": {}}}, "authid": "mallory"}]))
    welcome = json.loads(ws.recv())
    assert welcome[0] == 2, welcome
    return ws, welcome


def browser(server: GunicornProcess, **kwargs: t.Any) -> BrowserClient:
    kwargs.setdefault("origin", server.url)
    return BrowserClient(server.ws_url("/wamp"), "realm1", **kwargs)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
def test_endpoint_logged_in_user_is_the_wamp_identity(server: GunicornProcess, serializer: str) -> None:
    cookie = login(server, "ann")
    with browser(server, cookie=cookie, serializer=serializer) as client:
        assert (client.authid, client.authrole) == ("ann", "user")  # the WELCOME, despite the forged HELLO
        # the router itself discloses the caller to the app's procedure
        assert client.call("app.whoami") == {"authid": "ann", "authrole": "user"}


def test_endpoint_without_cookie_is_anonymous(server: GunicornProcess) -> None:
    with browser(server) as client, browser(server) as other:
        assert client.authrole == "anonymous"
        assert client.authid.startswith("anonymous-")
        assert other.authid != client.authid  # each anonymous session has its own authid
        assert client.call("app.public.whoami") == {"authid": client.authid, "authrole": "anonymous"}
        with pytest.raises(ApplicationError) as refused:
            client.call("app.whoami")
        assert refused.value.error == "wamp.error.not_authorized"


def test_endpoint_refuses_anonymous_when_configured(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router, WAMP_BRIDGE_ANONYMOUS_ROLE=None)
    try:
        # (a raw client: the ABORT and the close code are what a browser gets)
        ws = raw_socket(server)
        try:
            ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}, "authid": "ann"}]))
            abort = json.loads(ws.recv())
            assert abort[0] == 3 and abort[2] == "wamp.error.not_authorized"
            assert close_code(ws) == 1008
        finally:
            ws.close()
            ws.shutdown()
        with browser(server, cookie=login(server, "bob")) as client:
            assert client.authid == "bob"
    finally:
        _stop(server)


def test_endpoint_login_the_router_refuses_is_logged_with_authid_reason_and_fix(fresh_crossbar_router: t.Any) -> None:
    # a browser role the app declares, but the router's config does not define (a router of its own: the
    # shared one also has the other test servers' authenticators, which refuse the undeclared role)
    server = _start(fresh_crossbar_router, WAMP_BRIDGE_BROWSER_ROLES=["admin"])
    try:
        ws = raw_socket(server, cookie=login(server, "frank", role="admin"))
        try:
            ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
            abort = json.loads(ws.recv())
            assert abort[0] == 3 and abort[2] == "wamp.error.no_such_role"
            assert close_code(ws) == 1008
        finally:
            ws.close()
            ws.shutdown()
        server.wait_for_log("the router refused the WAMP session of authid 'frank' (role 'admin'): "
                            "wamp.error.no_such_role")
        assert "add WAMP_BRIDGE_PERMISSIONS['admin']" in server.log()
    finally:
        _stop(server)


def test_endpoint_refuses_a_role_the_app_never_declared_for_browsers(server: GunicornProcess) -> None:
    ws = raw_socket(server, cookie=login(server, "gus", role="admin"))
    try:
        ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
        abort = json.loads(ws.recv())
        assert abort[0] == 3 and abort[2] == "wamp.error.not_authorized"
        assert close_code(ws) == 1008
    finally:
        ws.close()
        ws.shutdown()
    server.wait_for_log("authrole 'admin' is not a browser role")


def test_endpoint_refuses_a_foreign_origin_before_the_upgrade(server: GunicornProcess) -> None:
    cookie = login(server, "ann")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(server.ws_url("/wamp"), origin="https://evil.example", cookie=cookie,
                                    subprotocols=["wamp.2.json"], timeout=10)
    assert refused.value.status_code == 403
    ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, cookie=cookie,
                                     subprotocols=["wamp.2.json"], timeout=10)
    try:
        assert ws.getsubprotocol() == "wamp.2.json"
    finally:
        ws.close()
        ws.shutdown()  # after the server's close frame, close() alone leaves the socket open


def test_endpoint_needs_a_wamp_subprotocol(server: GunicornProcess) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(server.ws_url("/wamp"), origin=server.url, timeout=10)
    assert refused.value.status_code == 400
    with pytest.raises(urllib.error.HTTPError) as plain_http:
        urllib.request.urlopen(f"{server.url}/wamp", timeout=10)
    plain_http.value.close()
    assert plain_http.value.code == 400


def test_endpoint_bad_hello_gets_protocol_violation(server: GunicornProcess) -> None:
    ws = raw_socket(server)
    try:
        ws.send(json.dumps([48, 1, {}, "app.public.whoami"]))
        abort = json.loads(ws.recv())
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        assert close_code(ws) == 1002
    finally:
        ws.close()
        ws.shutdown()  # after the server's close frame, close() alone leaves the socket open


def test_endpoint_logout_kills_the_users_sessions(server: GunicornProcess) -> None:
    cookie = login(server, "carol")
    with browser(server, cookie=cookie) as first, browser(server, cookie=cookie) as second, \
            browser(server) as bystander:
        assert first.authid == second.authid == "carol"
        killed = post_json(server, "/logout/carol")["killed"]
        assert sorted(killed) == sorted([first.session_id, second.session_id])
        wait_until(lambda: not first.connected and not second.connected, timeout=10)
        wait_until(lambda: "carol" not in get_json(server, "/relays"), timeout=10)
        assert bystander.connected
        assert bystander.call("app.public.whoami")["authrole"] == "anonymous"


def test_endpoint_caps_calls_in_flight(server: GunicornProcess) -> None:
    ws, welcome = raw_session(server, login(server, "dave"))
    try:
        assert welcome[2]["authid"] == "dave"
        for request_id in range(1, MAX_CALLS + 2):
            ws.send(json.dumps([48, request_id, {}, "app.sleep", [0.5]]))
        answers = [json.loads(ws.recv()) for _ in range(MAX_CALLS + 1)]
        # the excess call is answered at once by the bridge, the others by the procedure
        assert answers[0][:5] == [8, 48, MAX_CALLS + 1, {}, "wamp.error.canceled"]
        assert sorted(a[1] for a in answers[1:]) == list(range(1, MAX_CALLS + 1))
        assert all(a[0] == 50 and a[3] == [0.5] for a in answers[1:])
        ws.send(json.dumps([48, 99, {}, "app.sleep", [0]]))  # slots are free again
        assert json.loads(ws.recv())[:2] == [50, 99]
    finally:
        ws.close()
        ws.shutdown()


def test_endpoint_worker_shutdown_says_goodbye_and_closes_1001(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router)
    try:
        ws, _ = raw_session(server, login(server, "erin"))
        try:
            server.send_signal(signal.SIGTERM)
            goodbye = json.loads(ws.recv())
            assert goodbye[0] == 6 and goodbye[2] == "wamp.close.system_shutdown"
            assert close_code(ws) == 1001
        finally:
            ws.close()
            ws.shutdown()
        assert server.wait(30) == 0
    finally:
        _stop(server)


def test_endpoint_unreachable_router_aborts_the_hello_and_closes_1013(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router, WAMP_BRIDGE_ROUTER_URL=f"ws://127.0.0.1:{free_port()}/ws",
                    WAMP_BRIDGE_CONNECT_TIMEOUT=2)
    try:
        ws = raw_socket(server)
        try:
            ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}}]))
            abort = json.loads(ws.recv())
            assert abort[0] == 3 and abort[2] == "wamp_bridge.error.router_unavailable", abort
            assert close_code(ws) == 1013  # try again later
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def test_endpoint_session_expiry_closes_the_socket_with_a_reason(crossbar_router: t.Any) -> None:
    server = _start(crossbar_router, PERMANENT_SESSION_LIFETIME=3)
    try:
        ws, _ = raw_session(server, login(server, "fay"))
        try:
            ws.send(json.dumps([48, 1, {}, "app.sleep", [30]]))  # still waiting when the session expires
            error = json.loads(ws.recv())
            assert error[:3] == [8, 48, 1] and error[4] == "wamp_bridge.close.session_expired", error
            goodbye = json.loads(ws.recv())
            assert goodbye[0] == 6 and goodbye[2] == "wamp_bridge.close.session_expired", goodbye
            while True:
                opcode, frame = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
            assert int.from_bytes(frame[:2], "big") == 1008
            assert frame[2:].decode() == "login session expired"
        finally:
            ws.close()
            ws.shutdown()
    finally:
        _stop(server)


def _endpoint(app: t.Any) -> t.Any:
    """The :class:`~flask_wamp_bridge.bridge.endpoint.Endpoint` mounted on ``app``."""
    return app.view_functions["wamp_bridge.wamp"].__self__


def test_endpoint_checks_the_origin_before_running_the_identity_loader() -> None:
    from flask import Flask
    from werkzeug.exceptions import Forbidden

    from flask_wamp_bridge import WampBridge

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="p")
    bridge = WampBridge(app)
    loaded: list[str] = []

    @bridge.identity_loader
    def load() -> str:
        loaded.append("ran")
        return "ann"

    class UnacceptedSocket:
        offered_subprotocols = ["wamp.2.json"]

        def accept(self, *args: t.Any, **kwargs: t.Any) -> None:  # pragma: no cover - must not happen
            raise AssertionError("accepted a foreign origin")

    view = app.view_functions["wamp_bridge.wamp"]
    headers = {"Origin": "https://evil.example", "Upgrade": "websocket"}
    with app.test_request_context("/wamp", headers=headers, environ_overrides={"wsgi.websocket": UnacceptedSocket()}):
        with pytest.raises(Forbidden):
            view()
    assert loaded == []


@pytest.mark.parametrize(
    ("loaded", "fragment"),
    [
        ("flask-app", "'flask-app'"),  # the app's own peer
        ({"authid": "ann", "authrole": "backend"}, "'backend'"),  # the backend role
        ("billing", "'billing'"),  # a backend service
        ({"authid": "ann", "authrole": "accounting"}, "'accounting'"),  # a service's role
    ],
)
def test_endpoint_refuses_identities_of_backend_principals(loaded: t.Any, fragment: str) -> None:
    from flask import Flask

    from flask_wamp_bridge import NotAuthenticated
    from flask_wamp_bridge import WampBridge

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="p",
                      WAMP_BRIDGE_SERVICES={"billing": {"secret": "s", "role": "accounting"}})
    bridge = WampBridge(app)
    bridge.identity_loader(lambda: loaded)
    with app.test_request_context("/wamp"):
        with pytest.raises(NotAuthenticated, match=fragment):
            _endpoint(app).load_identity()


def test_endpoint_ordinary_users_are_not_backend_principals() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="p")
    bridge = WampBridge(app)
    bridge.identity_loader(lambda: "ann")
    with app.test_request_context("/wamp"):
        identity = _endpoint(app).load_identity()
    assert identity is not None and (identity.authid, identity.authrole) == ("ann", "user")


def _direct_ticket_login(router_url: str, identity: t.Any, *, bind_to: str | None = None) -> tuple[list[t.Any], str]:
    """Log in on Crossbar directly (no bridge) with a ticket from the endpoint app's key.

    The ticket is bound to ``bind_to``, else to this very connection. Returns
    the router's last answer (WELCOME or ABORT) and this connection's peer name.
    """
    import time

    from flask_wamp_bridge.bridge import tickets

    ws = websocket.create_connection(router_url, subprotocols=["wamp.2.json"], timeout=10)
    try:
        own = tickets.peer_descriptor(ws.sock.getsockname())
        assert own is not None
        ws.send(json.dumps([1, "realm1", {"roles": {"caller": {}}, "authid": identity.authid,
                                          "authmethods": ["ticket"]}]))
        challenge = json.loads(ws.recv())
        assert challenge[0] == 4 and challenge[1] == "ticket", challenge
        secret = tickets.ticket_secret({"SECRET_KEY": "endpoint-app-secret-key"})
        signed = tickets.sign(identity, secret, time.time(), realm="realm1", peer=bind_to or own)
        ws.send(json.dumps([5, signed, {}]))
        return json.loads(ws.recv()), own
    finally:
        ws.close()


def test_endpoint_ticket_for_a_backend_role_is_refused_by_the_router(server: GunicornProcess,
                                                                   crossbar_router: t.Any) -> None:
    from flask_wamp_bridge.bridge.identity import Identity

    welcome, _ = _direct_ticket_login(crossbar_router.url, Identity("walt", "user"))
    assert welcome[0] == 2 and welcome[2]["authrole"] == "user"  # the same login with a browser role works
    for forged in (Identity("walt", "backend"), Identity("walt", "admin"), Identity("flask-app", "user")):
        abort, _ = _direct_ticket_login(crossbar_router.url, forged)
        assert abort[0] == 3, abort
        assert abort[2] in ("wamp.error.not_authorized", "wamp.error.authentication_failed"), abort


def test_endpoint_ticket_replayed_on_a_second_connection_is_refused(server: GunicornProcess,
                                                                   crossbar_router: t.Any) -> None:
    from flask_wamp_bridge.bridge.identity import Identity

    ann = Identity("ann", "user")
    welcome, first_peer = _direct_ticket_login(crossbar_router.url, ann)
    assert welcome[0] == 2, welcome
    abort, _ = _direct_ticket_login(crossbar_router.url, ann, bind_to=first_peer)
    assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed", abort


def test_endpoint_refuses_rawsocket_over_tcp_for_a_wss_router() -> None:
    """The relays' RawSocket on TCP would be plain text where the router URL asks for TLS: refused at init_app."""
    from flask import Flask

    from flask_wamp_bridge import WampBridge
    from flask_wamp_bridge.errors import ConfigError

    def app(**config: t.Any) -> Flask:
        made = Flask(__name__)
        made.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_PEER_AUTOSTART=False,
                           WAMP_BRIDGE_ROUTER_URL="wss://router.example/ws", **config)
        return made

    with pytest.raises(ConfigError, match="wss://"):
        WampBridge(app())
    WampBridge(app(WAMP_BRIDGE_RAWSOCKET_PATH="/run/router.sock"))  # a Unix socket stays on this host
    WampBridge(app(WAMP_BRIDGE_UPSTREAM="websocket"))


def test_endpoint_knows_while_the_router_refuses_its_apps_peer(caplog: pytest.LogCaptureFixture) -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge
    from flask_wamp_bridge import signals
    from flask_wamp_bridge.bridge.identity import Identity
    from flask_wamp_bridge.bridge.relay_events import RouterRefusal

    app, other = Flask(__name__), Flask(__name__)
    for one in (app, other):
        one.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="p")
        WampBridge(one)
    endpoint = _endpoint(app)
    assert not endpoint.peer_is_refused(app)
    signals.send(signals.peer_refused, app, reason="wamp.error.not_authorized", message="")
    assert endpoint.peer_is_refused(app) and not _endpoint(other).peer_is_refused(other)
    with caplog.at_level("WARNING", logger="flask_wamp_bridge"):
        endpoint._log_refusal(Identity("ann", "user"), RouterRefusal("wamp.error.no_such_procedure", None),
                              peer_refused=endpoint.peer_is_refused(app))
    logged = caplog.text
    assert "wamp_bridge.error.server_misconfigured and 1013" in logged
    assert "WAMP_BRIDGE_PEER_SECRET" in logged and "flask wamp config" in logged
    signals.send(signals.peer_joined, app, session_id=1, authid="flask-app", authrole="backend")
    assert not endpoint.peer_is_refused(app)
