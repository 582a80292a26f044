"""The sans-IO opening handshake: both sides against each other, and each refusal."""

from __future__ import annotations

import pytest

from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.websocket import handshake

URL = "ws://example.test/ws"


def test_accept_key_matches_rfc6455_example() -> None:
    assert handshake.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_is_valid_key() -> None:
    assert handshake.is_valid_key(handshake.make_key())
    assert not handshake.is_valid_key("")
    assert not handshake.is_valid_key("c2hvcnQ=")  # 5 bytes
    assert not handshake.is_valid_key("not base64!!")


def test_parse_header_tokens() -> None:
    assert handshake.parse_header_tokens(" wamp.2.json , wamp.2.msgpack,,") == ["wamp.2.json", "wamp.2.msgpack"]
    assert handshake.parse_header_tokens(None) == []


def _as_server_sees(request: bytes) -> tuple[str, str, dict[str, str]]:
    """The method, version and headers (as a WSGI environ holds them) of a request."""
    head, rest = handshake.split_head(request) or (b"", b"")
    assert rest == b""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, _target, version = request_line.split(" ")
    environ = {}
    for line in lines:
        name, _, value = line.partition(": ")
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return method, version, handshake.request_headers(environ)


def test_handshake_request_passes_the_server_check_and_the_response_passes_the_client_check() -> None:
    key = handshake.make_key()
    request = handshake.build_request("/ws?x=1", "example.test:8080", key,
                                      subprotocols=["wamp.2.json", "wamp.2.msgpack"],
                                      headers=[("Origin", "http://example.test")])
    assert request.startswith(b"GET /ws?x=1 HTTP/1.1\r\nHost: example.test:8080\r\n")
    assert b"\r\nSec-WebSocket-Protocol: wamp.2.json, wamp.2.msgpack\r\nOrigin: http://example.test\r\n\r\n" in request
    method, version, headers = _as_server_sees(request)
    assert handshake.check_request(method, version, headers) is None
    assert handshake.parse_header_tokens(headers["sec-websocket-protocol"])[1] == "wamp.2.msgpack"

    response, encoded = handshake.build_response(headers["sec-websocket-key"], "wamp.2.msgpack", [("X-Extra", "1")])
    assert (b"X-Extra", b"1") in encoded
    head, rest = handshake.split_head(response + b"\x81\x00") or (b"", b"")
    assert rest == b"\x81\x00"  # the first frame after the head is left to the codec
    assert handshake.parse_response(head).status == 101
    assert handshake.check_response(head, key, ["wamp.2.json", "wamp.2.msgpack"], url=URL) == "wamp.2.msgpack"


@pytest.mark.parametrize(
    ("method", "version", "change", "problem"),
    [
        ("POST", "HTTP/1.1", {}, "must be a GET request"),
        ("GET", "HTTP/1.0", {}, "needs HTTP/1.1"),
        ("GET", "HTTP/1.1", {"connection": "keep-alive"}, "Connection: Upgrade"),
        ("GET", "HTTP/1.1", {"sec-websocket-version": "8"}, "Sec-WebSocket-Version"),
        ("GET", "HTTP/1.1", {"sec-websocket-key": "short"}, "Sec-WebSocket-Key"),
    ],
)
def test_handshake_server_refuses_a_bad_request(
    method: str, version: str, change: dict[str, str], problem: str
) -> None:
    _, _, headers = _as_server_sees(handshake.build_request("/", "h", handshake.make_key()))
    refusal = handshake.check_request(method, version, {**headers, **change})
    assert refusal is not None and problem in refusal.message
    assert refusal.headers == ([("Sec-WebSocket-Version", "13")] if "version" in str(change) else [])


def test_handshake_is_upgrade_reads_the_token_list() -> None:
    assert handshake.is_upgrade("WebSocket")
    assert handshake.is_upgrade("h2c, websocket")
    assert not handshake.is_upgrade("h2c")
    assert not handshake.is_upgrade(None)


def test_handshake_line_breaks_in_headers_are_refused_on_both_sides() -> None:
    with pytest.raises(ConfigError, match="contains a line break"):
        handshake.build_request("/", "h", handshake.make_key(), headers=[("X", "a\r\nInjected: 1")])
    with pytest.raises(ConfigError, match="response header 'X'"):
        handshake.build_response(handshake.make_key(), None, [("X", "a\nb")])


def _response(key: str, subprotocol: str | None = None, extra: str = "") -> bytes:
    head, _ = handshake.build_response(key, subprotocol)
    return head[:-4] + extra.encode() if extra else head[:-4]


@pytest.mark.parametrize(
    ("head", "offered", "problem"),
    [
        (b"SSH-2.0-OpenSSH", [], "did not answer with HTTP"),
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9", [], "refused the WebSocket handshake with 'HTTP/1.1 403"),
        (b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\nConnection: Upgrade", [], "without 'Upgrade: websocket'"),
        ("wrong accept", [], "wrong Sec-WebSocket-Accept"),
        ("no subprotocol", ["wamp.2.json"], "chose none of the offered subprotocols (wamp.2.json)"),
        ("other subprotocol", ["wamp.2.json"], "which was not offered"),
        ("unasked subprotocol", [], "although none was offered"),
        ("extensions", [], "enabled extensions that were not offered"),
    ],
)
def test_handshake_client_refuses_a_bad_response(head: bytes | str, offered: list[str], problem: str) -> None:
    key = handshake.make_key()
    made = {
        "wrong accept": _response(handshake.make_key()),
        "no subprotocol": _response(key),
        "other subprotocol": _response(key, "wamp.2.cbor"),
        "unasked subprotocol": _response(key, "wamp.2.json"),
        "extensions": _response(key, None, "\r\nSec-WebSocket-Extensions: permessage-deflate"),
    }
    raw = made[head] if isinstance(head, str) else head
    with pytest.raises(ConnectError, match=problem.replace("(", r"\(").replace(")", r"\)")) as caught:
        handshake.check_response(raw, key, offered, url=URL, body=b"<h1>Forbidden</h1>")
    assert str(caught.value).startswith(URL)


def test_handshake_refusal_quotes_the_body_as_text() -> None:
    with pytest.raises(ConnectError, match=r"'HTTP/1.1 403 Forbidden': Forbidden here$"):
        handshake.check_response(b"HTTP/1.1 403 Forbidden", "k", [], url=URL, body=b"<h1>Forbidden</h1>\n here")


def test_handshake_split_head_waits_for_the_blank_line() -> None:
    assert handshake.split_head(b"HTTP/1.1 101 OK\r\nA: b\r\n") is None
    assert handshake.split_head(b"HTTP/1.1 101 OK\r\n\r\nrest") == (b"HTTP/1.1 101 OK", b"rest")
    assert handshake.parse_response(b"HTTP/1.1 101 OK\r\nA: 1\r\na: 2").fields == {"a": "1, 2"}
    assert handshake.parse_response(b"garbage").status == 0
