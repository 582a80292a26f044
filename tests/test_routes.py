"""Flask-Sockets-style routes served by a real gunicorn with the bridge worker, real clients."""

from __future__ import annotations

import json
import struct
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pytest
import websocket
from helpers import GunicornProcess
from helpers import raw_handshake
from helpers import read_until_close
from helpers import wait_until

from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.websocket import frames as _frames
from flask_wamp_bridge.websocket import handshake
from flask_wamp_bridge.websocket.routes import Sockets
from flask_wamp_bridge.websocket.routes import check_origin
from flask_wamp_bridge.websocket.routes import negotiate_subprotocol

APP = "tests.apps.ws_app:app"
KEY = b"\x01\x02\x03\x04"


@pytest.fixture(scope="module")
def server() -> t.Iterator[GunicornProcess]:
    with GunicornProcess(APP) as proc:
        yield proc
        log = proc.log()
    # the only traceback in the log is the one test_route_handler_exception_closes_with_1011 provokes
    unexpected = [block for block in log.split("Traceback")[1:] if "handler failed on purpose" not in block]
    assert not unexpected, log


def connect(server: GunicornProcess, path: str, **kwargs: t.Any) -> websocket.WebSocket:
    return websocket.create_connection(server.ws_url(path), timeout=10, **kwargs)


def close_code(ws: websocket.WebSocket) -> int | None:
    """Read until the server's close frame and return its code (then drop the socket)."""
    try:
        while True:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
    finally:
        ws.shutdown()


def http_get(server: GunicornProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def stats(server: GunicornProcess) -> dict[str, t.Any]:
    return t.cast(dict, json.loads(http_get(server, "/stats")[1]))


def test_route_echo_text_and_binary(server: GunicornProcess) -> None:
    ws = connect(server, "/echo")
    ws.send("héllo")
    assert ws.recv() == "héllo"
    ws.send_binary(b"\x00\xffbin")
    assert ws.recv() == b"\x00\xffbin"
    big = "z" * 200_000
    ws.send(big)
    assert ws.recv() == big
    ws.close()


def test_route_flask_sockets_readme_loop_ends_quietly(server: GunicornProcess) -> None:
    ws = connect(server, "/classic")
    ws.send("once")
    assert ws.recv() == "once"
    ws.close()
    # the module fixture asserts that no traceback reached the log


def test_route_client_close_code_reaches_handler(server: GunicornProcess) -> None:
    ws = connect(server, "/echo")
    ws.send("x")
    ws.recv()
    ws.close(status=4001, reason=b"done here")
    assert wait_until(lambda: stats(server).get("echo_close") == [4001, "done here"])


def test_route_url_variables_passed_after_ws(server: GunicornProcess) -> None:
    ws = connect(server, "/rooms/lobby/7")
    assert json.loads(ws.recv()) == {"room": "lobby", "seat": 7, "path": "/rooms/lobby/7"}
    ws.close()


def test_route_websocket_blueprint(server: GunicornProcess) -> None:
    ws = connect(server, "/bp/echo/alice")
    ws.send("hi")
    assert ws.recv() == "alice:hi"
    ws.close()


def test_route_plain_blueprint_registered_with_sockets(server: GunicornProcess) -> None:
    ws = connect(server, "/legacy/echo")
    ws.send("hi")
    assert ws.recv() == "legacy:hi"
    ws.close()


def test_route_session_cookie_from_http_login_is_visible(server: GunicornProcess) -> None:
    data = urllib.parse.urlencode({"user": "alice"}).encode()
    with urllib.request.urlopen(server.url + "/login", data=data, timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
    assert cookie.startswith("session=")
    ws = connect(server, "/whoami", cookie=cookie)
    assert json.loads(ws.recv()) == {"user": "alice", "cookie": True}
    ws.close()
    anonymous = connect(server, "/whoami")
    assert json.loads(anonymous.recv()) == {"user": None, "cookie": False}
    anonymous.close()


def test_route_subprotocol_negotiated(server: GunicornProcess) -> None:
    ws = connect(server, "/wamp", subprotocols=["wamp.2.json"])
    assert ws.getsubprotocol() == "wamp.2.json"
    assert ws.recv() == "wamp.2.json"
    ws.close()
    # the client's order of preference wins among supported ones
    ws = connect(server, "/wamp", subprotocols=["wamp.2.cbor", "wamp.2.msgpack", "wamp.2.json"])
    assert ws.getsubprotocol() == "wamp.2.msgpack"
    ws.close()


def test_route_unsupported_subprotocol_refused_with_400(server: GunicornProcess) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(server, "/wamp", subprotocols=["wamp.2.cbor"])
    assert info.value.status_code == 400
    body = (info.value.resp_body or b"").decode()
    assert "wamp.2.json" in body and "wamp.2.msgpack" in body


def test_route_foreign_origin_refused_with_403_before_101(server: GunicornProcess) -> None:
    sock, head, _ = raw_handshake(server.host, server.port, "/echo", {"Origin": "http://evil.example"})
    sock.close()
    assert head.startswith("HTTP/1.1 403")
    assert "101" not in head.split("\r\n", 1)[0]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(server, "/echo", origin="http://evil.example")
    assert info.value.status_code == 403
    assert b"WAMP_BRIDGE_ALLOWED_ORIGINS" in (info.value.resp_body or b"")


def test_route_same_and_allowed_origins_accepted(server: GunicornProcess) -> None:
    for origin in (f"http://127.0.0.1:{server.port}", "https://trusted.example", "https://TRUSTED.example:443", None):
        ws = connect(server, "/echo", **({"origin": origin} if origin else {"suppress_origin": True}))
        ws.send("ok")
        assert ws.recv() == "ok"
        ws.close()
    for origin in (f"https://127.0.0.1:{server.port}", "http://127.0.0.1:1", "null", "http://trusted.example"):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            connect(server, "/echo", origin=origin)
        assert info.value.status_code == 403, origin


def test_route_plain_http_get_answered_400(server: GunicornProcess) -> None:
    status, body = http_get(server, "/echo")
    assert status == 400
    assert "only accepts WebSocket connections" in body


def test_route_websocket_to_http_route_answered_400(server: GunicornProcess) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(server, "/stats")
    assert info.value.status_code == 400
    assert b"does not accept WebSocket" in (info.value.resp_body or b"")


def test_route_oversized_message_closed_with_1009(server: GunicornProcess) -> None:
    ws = connect(server, "/limited")
    ws.send("a" * 1024)
    assert ws.recv() == "a" * 1024
    ws.send("b" * 1025)
    assert close_code(ws) == 1009
    assert wait_until(lambda: stats(server).get("limited_close", [None])[0] == 1009)


def test_route_header_claiming_huge_length_closed_with_1009_without_payload(server: GunicornProcess) -> None:
    sock, head, rest = raw_handshake(server.host, server.port, "/limited")
    assert head.startswith("HTTP/1.1 101")
    sock.sendall(_frames.encode_header(_frames.OP_BINARY, 1 << 30, KEY))  # 1 GiB announced, none sent
    events, close = read_until_close(sock, rest)
    sock.close()
    assert close is not None and close.code == 1009


def test_route_invalid_utf8_closed_with_1007(server: GunicornProcess) -> None:
    ws = connect(server, "/echo")
    ws.send(b"valid then \xc3\x28 invalid", opcode=websocket.ABNF.OPCODE_TEXT)
    assert close_code(ws) == 1007


def test_route_protocol_error_closed_with_1002(server: GunicornProcess) -> None:
    sock, head, rest = raw_handshake(server.host, server.port, "/echo")
    sock.sendall(_frames.encode_frame(_frames.OP_TEXT, b"unmasked"))  # clients must mask
    _, close = read_until_close(sock, rest)
    sock.close()
    assert close is not None and close.code == 1002


def test_route_server_pings_while_handler_waits(server: GunicornProcess) -> None:
    ws = connect(server, "/pinged")
    opcode, frame = ws.recv_data_frame(True)  # websocket-client answers it with a pong
    assert opcode == websocket.ABNF.OPCODE_PING
    ws.send("still here")
    assert ws.recv() == "still here"
    ws.close()


def test_route_idle_timeout_closes_silent_client(server: GunicornProcess) -> None:
    sock, head, rest = raw_handshake(server.host, server.port, "/idle")
    assert head.startswith("HTTP/1.1 101")
    _, close = read_until_close(sock, rest, timeout=15)  # never answers anything
    sock.close()
    assert close is not None and close.code == 1011
    assert wait_until(lambda: stats(server).get("idle_close", [None])[0] == 1011)


def test_route_send_timeout_closes_a_client_that_stops_reading(server: GunicornProcess) -> None:
    sock, head, _ = raw_handshake(server.host, server.port, "/flood")
    assert head.startswith("HTTP/1.1 101")
    try:
        flood = wait_until(lambda: stats(server).get("flood"), timeout=30)
    finally:
        sock.close()
    assert "send timed out" in flood["error"]
    assert flood["sent"] > 0


def test_route_handler_exception_closes_with_1011(server: GunicornProcess) -> None:
    ws = connect(server, "/fail")
    ws.send("go")
    assert close_code(ws) == 1011
    server.wait_for_log("handler failed on purpose")


def test_route_raw_environ_socket_accepts_implicitly(server: GunicornProcess) -> None:
    ws = connect(server, "/raw")
    ws.send("x")
    assert ws.recv() == "raw:x"
    assert close_code(ws) == 1000  # the worker closes when the view returns


def test_route_concurrent_senders_keep_frames_whole(server: GunicornProcess) -> None:
    ws = connect(server, "/burst?senders=10&count=30")
    seen = set()
    for _ in range(300):
        message = ws.recv()
        i, j, tail = message.split(":", 2)
        assert tail == "y" * (1000 + 37 * int(j))
        seen.add((int(i), int(j)))
    assert len(seen) == 300
    ws.close()


def test_route_without_the_worker_says_how_to_run_it() -> None:
    from tests.apps.ws_app import app  # noqa: PLC0415

    app.testing = True
    client = app.test_client()
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": handshake.make_key(),
        "Sec-WebSocket-Version": "13",
    }
    with pytest.raises(ConfigError, match="gunicorn -k flask_wamp_bridge.worker"):
        client.get("/echo", headers=headers)


# --- without a server: registration and the pure checks ---------------------------------------


def test_sockets_init_app_registers_routes_on_each_app() -> None:
    from flask import Flask

    sockets = Sockets()

    @sockets.route("/early")
    def early(ws: t.Any) -> None: ...

    apps = [Flask("one"), Flask("two")]
    for app in apps:
        sockets.init_app(app)

    @sockets.route("/late", endpoint="late_socket")
    def late(ws: t.Any) -> None: ...

    for app in apps:
        rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
        assert rules["/early"].websocket and rules["/late"].websocket
        assert rules["/late"].endpoint == "late_socket"
        assert app.extensions["wamp_bridge.sockets"] is sockets
        assert app.config["WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"] == 1 << 20
        status = app.test_client().get("/early").status_code
        assert status == 400


@pytest.mark.parametrize(
    ("host", "scheme", "origin", "allowed"),
    [
        ("example.com", "http", "http://example.com", True),
        ("example.com", "http", "http://EXAMPLE.com:80", True),
        ("example.com:8080", "http", "http://example.com:8080", True),
        ("example.com", "https", "https://example.com", True),
        ("example.com", "https", "http://example.com", False),  # scheme matters
        ("example.com", "http", "http://example.com:8080", False),  # port matters
        ("example.com", "http", "http://evil.com", False),
        ("example.com", "http", "http://example.com.evil.com", False),
        ("[::1]:5000", "http", "http://[::1]:5000", True),
        ("example.com", "http", "null", False),
        ("example.com", "http", "not a url", False),
        ("example.com", "http", None, True),  # no Origin: not a browser
    ],
)
def test_check_origin_same_origin_rules(host: str, scheme: str, origin: str | None, allowed: bool) -> None:
    from flask import Flask
    from werkzeug.exceptions import Forbidden

    app = Flask(__name__)
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    with app.test_request_context("/", headers=headers, base_url=f"{scheme}://{host}"):
        if allowed:
            check_origin()
        else:
            with pytest.raises(Forbidden):
                check_origin()


def test_check_origin_allow_list_from_config_and_argument() -> None:
    from flask import Flask
    from werkzeug.exceptions import Forbidden

    app = Flask(__name__)
    app.config["WAMP_BRIDGE_ALLOWED_ORIGINS"] = "https://a.example, https://b.example:8443"
    with app.test_request_context("/", headers={"Origin": "https://b.example:8443"}):
        check_origin()
        with pytest.raises(Forbidden):
            check_origin(["https://c.example"])  # the argument replaces the config list
    with app.test_request_context("/", headers={"Origin": "https://c.example"}):
        check_origin(["https://c.example"])
        check_origin("*")
    with app.test_request_context("/", headers={"Origin": "null"}):
        check_origin(["null"])


def test_check_origin_missing_origin_is_a_setting() -> None:
    from flask import Flask
    from werkzeug.exceptions import Forbidden

    app = Flask(__name__)
    with app.test_request_context("/"):
        check_origin()  # default: a non-browser client (no Origin) is accepted
    app.config["WAMP_BRIDGE_ALLOW_MISSING_ORIGIN"] = False
    with app.test_request_context("/"):
        with pytest.raises(Forbidden, match="WAMP_BRIDGE_ALLOW_MISSING_ORIGIN"):
            check_origin()
    with app.test_request_context("/", headers={"Origin": "http://localhost"}):
        check_origin()  # browsers still get in


def test_negotiate_subprotocol_first_offer_the_route_accepts() -> None:
    from werkzeug.exceptions import BadRequest

    assert negotiate_subprotocol(["b", "a"], ["a", "b"]) == "b"
    assert negotiate_subprotocol([], ["a"]) is None
    with pytest.raises(BadRequest, match="supported: a, b"):
        negotiate_subprotocol(["c"], ["a", "b"])
    with pytest.raises(BadRequest, match="needs a WebSocket subprotocol"):
        negotiate_subprotocol([], ["a"], required=True)


@pytest.mark.parametrize(
    "origins",
    ["example.com", "https://*.example.com", "https://example.com/app", ["https://ok.example", 5], {"a": 1}],
)
def test_allowed_origins_that_can_never_match_are_config_errors(origins: t.Any) -> None:
    from flask import Flask

    from flask_wamp_bridge.errors import ConfigError

    app = Flask(__name__)
    app.config["WAMP_BRIDGE_ALLOWED_ORIGINS"] = origins
    with pytest.raises(ConfigError, match="(?i)origin"):
        Sockets(app)
    other = Flask(__name__)
    with pytest.raises(ConfigError, match="(?i)origin"):
        Sockets(other).route("/x", origins=origins)(lambda ws: None)


@pytest.mark.parametrize(
    "origins", [None, (), "", "*", "null", "https://a.example, http://b.example:8080/", ["HTTPS://A.example"]]
)
def test_allowed_origins_valid_forms_are_accepted(origins: t.Any) -> None:
    from flask import Flask

    app = Flask(__name__)
    app.config["WAMP_BRIDGE_ALLOWED_ORIGINS"] = origins
    Sockets(app).route("/x", origins=origins)(lambda ws: None)
    assert app.url_map.bind("localhost").match("/x", websocket=True)[0] == "<lambda>"


def _deflate_handshake(server: GunicornProcess, path: str) -> tuple[t.Any, str, bytes]:
    sock, head, rest = raw_handshake(server.host, server.port, path,
                                     {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
    assert head.startswith("HTTP/1.1 101")
    return sock, handshake.parse_response(head.encode("latin-1")).fields.get("sec-websocket-extensions", ""), rest


def test_route_deflate_on_by_default_off_by_route_option(server: GunicornProcess) -> None:
    sock, extensions, _ = _deflate_handshake(server, "/echo")
    sock.close()
    assert extensions == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    sock, extensions, rest = _deflate_handshake(server, "/uncompressed")
    try:
        assert extensions == ""
        sock.sendall(_frames.encode_frame(_frames.OP_TEXT, b"x" * 2000, b"abcd")
                     + _frames.encode_close(1000, "", b"abcd"))
        events, close = read_until_close(sock, rest)
        assert events == [_frames.Message("x" * 2000)] and close.code == 1000  # plain frames: no RSV1 came back
    finally:
        sock.close()


def test_route_deflate_bound_is_the_routes_inflated_size_limit(server: GunicornProcess) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = (compressor.compress(b"a" * 2048) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]  # ~20 bytes on the wire
    sock, extensions, rest = _deflate_handshake(server, "/limited")  # max_message_size=1024
    try:
        assert extensions
        sock.sendall(_frames.encode_header(_frames.OP_TEXT | _frames.RSV1, len(payload), b"abcd")
                     + _frames.mask(payload, b"abcd"))
        assert read_until_close(sock, rest)[1].code == 1009
    finally:
        sock.close()
