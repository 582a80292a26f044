"""RawSocket and serializer translation on a real Crossbar.

One router with the generated config plus RawSocket transports (Unix socket
and TCP, :func:`with_rawsocket`). Clients are the sans-IO RawSocket codec over
plain sockets (:class:`RawSocketClient`), so the tests see the exact bytes
Crossbar sends.

The translation table sends every value kind from a JSON, a msgpack and a
CBOR publisher straight to subscribers of each serializer (the reference:
what Crossbar itself delivers), and again the way the bridge will: translated
to msgpack, through Crossbar on a msgpack session, translated to the
subscriber's serializer. Both must arrive the same, except for the few
values the translation refuses on purpose (:data:`REFUSED`).
"""

from __future__ import annotations

import math
import socket
import typing as t

import pytest

from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import PayloadOutOfBounds
from flask_wamp_bridge.router.config import make_config
from flask_wamp_bridge.router.config import with_rawsocket
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import TESTER_SECRET
from flask_wamp_bridge.testing import crossbar_executable  # noqa: F401  (fixture)
from flask_wamp_bridge.testing import free_port
from flask_wamp_bridge.testing import router_settings
from flask_wamp_bridge.testing.rawsocket_client import RawSocketClient
from flask_wamp_bridge.testing.rawsocket_client import dumps
from flask_wamp_bridge.testing.rawsocket_client import loads
from flask_wamp_bridge.wamp import rawsocket as R
from flask_wamp_bridge.wamp.client_auth import WampCraAuth
from flask_wamp_bridge.wamp.translate import translate

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

SERIALIZERS = ("json", "msgpack", "cbor")
REALM = "realm1"
MAX_MESSAGE = 1 << 20


class Router(t.NamedTuple):
    process: CrossbarProcess
    unix: str
    tcp: tuple[str, int]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory, crossbar_executable: str) -> t.Iterator[Router]:  # noqa: F811
    cbdir = tmp_path_factory.mktemp("rawsocket")
    unix = str(cbdir / "rs.sock")
    port = free_port()
    config = with_rawsocket(make_config(router_settings(free_port())), path=unix, port=port)
    process = CrossbarProcess(config, cbdir, crossbar=crossbar_executable)
    process.start(timeout=90)
    try:
        yield Router(process, unix, ("127.0.0.1", port))
    finally:
        process.stop()


def joined(address: str | tuple[str, int], serializer: str) -> RawSocketClient:
    client = RawSocketClient(address, serializer, max_length=MAX_MESSAGE)
    client.join(REALM, WampCraAuth(TESTER_AUTHID, TESTER_SECRET))
    return client


def test_with_rawsocket_config_keeps_websocket_and_logins() -> None:
    base = make_config(router_settings(8080))
    config = with_rawsocket(base, path="/run/router.sock", port=8081)
    transports = config["workers"][0]["transports"]
    assert transports[0] == base["workers"][0]["transports"][0]  # unchanged, and base not modified
    assert len(base["workers"][0]["transports"]) == 1
    websocket = transports[0]["paths"]["ws"]
    unix, tcp = transports[1:]
    backlog = transports[0]["endpoint"]["backlog"]
    assert unix["endpoint"] == {"type": "unix", "path": "/run/router.sock", "backlog": backlog}
    assert tcp["endpoint"]["port"] == 8081 and tcp["endpoint"]["interface"] == "127.0.0.1"
    for transport in (unix, tcp):
        assert transport["type"] == "rawsocket"
        assert transport["serializers"][0] == "msgpack"
        assert transport["auth"] == websocket["auth"]
        assert transport["options"] == {"max_message_size": websocket["options"]["max_message_size"]}


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_rawsocket_call_through_crossbar(router: Router, transport: str) -> None:
    address = router.unix if transport == "unix" else router.tcp
    other = router.tcp if transport == "unix" else router.unix
    with joined(address, "msgpack") as caller, joined(other, "cbor") as callee:
        assert caller.handshake == R.Handshake("msgpack", 1 << 20)  # the transport's max_message_size
        procedure = f"test.rawsocket.add.{transport}"
        callee.send([64, 1, {}, procedure])
        assert callee.receive()[0] == 33 + 32  # REGISTERED
        caller.send([48, 7, {}, procedure, [2, 3], {"big": b"\x00" * 70_000}])
        invocation = callee.receive()
        assert invocation[0] == 68 and invocation[4] == [2, 3] and invocation[5] == {"big": b"\x00" * 70_000}
        callee.send([70, invocation[1], {}, [5]])
        result = caller.receive()
        assert result[:2] == [50, 7] and result[3] == [5]
        count = caller.call("wamp.session.count")
        assert count[0] == 50 and count[3][0] >= 2


def closed_soon(client: RawSocketClient) -> bool:
    client.sock.settimeout(5)
    try:
        return client.sock.recv(100) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def test_crossbar_drops_a_rawsocket_ping(router: Router) -> None:
    with joined(router.unix, "msgpack") as client:
        client.send_frame(R.encode_frame(b"are you there", R.FrameType.PING))
        assert closed_soon(client)  # no PONG: Crossbar reads a PING header as an over-long frame


def test_crossbar_closes_on_unoffered_serializer_without_error_reply(router: Router) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(router.unix)
    sock.sendall(b"\x7f\xf4\x00\x00")  # UBJSON, not configured
    assert sock.recv(4) == b""
    sock.close()


def test_crossbar_drops_an_over_length_frame(router: Router) -> None:
    with joined(router.tcp, "msgpack") as client:
        client.send_frame(R.frame_header((1 << 20) + 1))  # more than Crossbar announced
        assert closed_soon(client)


# --- translation: what each serializer's client sees, directly and through a translation ---------

#: name -> (JSON literal, value a msgpack publisher sends, value a CBOR publisher sends); None: no such form.
NO = object()
VALUES: dict[str, tuple[str | None, t.Any, t.Any]] = {
    "int": ("42", 42, 42),
    "negative int": ("-7", -7, -7),
    "2**53": (str(2**53), 2**53, 2**53),
    "2**64-1": (str(2**64 - 1), 2**64 - 1, 2**64 - 1),
    "-2**63": (str(-(2**63)), -(2**63), -(2**63)),
    "2**64": (str(2**64), NO, 2**64),
    "float": ("1.5", 1.5, 1.5),
    "whole float": ("1.0", 1.0, 1.0),
    "exponent float": ("1e2", NO, NO),
    "negative zero": ("-0.0", -0.0, -0.0),
    "subnormal": ("5e-324", 5e-324, 5e-324),
    "NaN": ("NaN", math.nan, math.nan),
    "true": ("true", True, True),
    "null": ("null", None, None),
    "unicode": ('"h\\u00e9llo \\ud83d\\ude00"', "héllo 😀", "héllo 😀"),
    "NUL inside": ('"a\\u0000b"', "a\x00b", "a\x00b"),
    "binary": ('"\\u0000AQID"', b"\x01\x02\x03", b"\x01\x02\x03"),
    "empty binary": ('"\\u0000"', b"", b""),
    "NUL-prefixed string": (None, "\x00AQID", "\x00AQID"),
    "lenient base64": ('"\\u0000AQ*ID"', NO, NO),
    "bad base64": ('"\\u0000AQI"', NO, NO),
    "nested": ('{"a":[1,{"b":null}],"c":"","d":"\\u0000/w=="}', {"a": [1, {"b": None}], "c": "", "d": b"\xff"},
               {"a": [1, {"b": None}], "c": "", "d": b"\xff"}),
    "NUL key": ('{"\\u0000AQID":1}', {"\x00AQID": 1}, {"\x00AQID": 1}),
    "int key": (None, NO, {1: "one"}),
}
#: (value, publisher) the translation refuses where Crossbar delivers something, and why.
REFUSED = {
    ("NaN", "json"): "NaN has no JSON form a browser can parse (Crossbar sends the literal NaN)",
    ("NaN", "msgpack"): "same",
    ("NaN", "cbor"): "same",
    ("2**64", "json"): "msgpack upstream carries no integer >= 2**64",
    ("2**64", "cbor"): "same",
    ("int key", "cbor"): "Crossbar refuses non-string map keys from msgpack sessions",
    ("bad base64", "json"): "Crossbar drops the publisher's connection; the translation refuses the one message",
}
TOPIC = "test.translate"


def kinded(value: t.Any) -> t.Any:
    """A value with every leaf's type made visible (1 != 1.0 != True; NaN == NaN)."""
    if isinstance(value, list):
        return ["list", [kinded(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", sorted((kinded(k), kinded(v)) for k, v in value.items())]
    if isinstance(value, float):
        return ["float", repr(value)]
    return [type(value).__name__, repr(value)]


class Bench:
    """A publisher per serializer (direct), the msgpack "upstream" publisher, and a subscriber per serializer."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.publishers = {s: joined(router.unix, s) for s in SERIALIZERS}
        self.subscribers = {s: joined(router.unix, s) for s in SERIALIZERS}
        self.marker = joined(router.unix, "msgpack")
        for client in self.subscribers.values():
            client.send([32, 1, {}, TOPIC])
            assert client.receive()[0] == 33
        self.count = 0

    def close(self) -> None:
        for client in [*self.publishers.values(), *self.subscribers.values(), self.marker]:
            client.close()

    def publish(self, serializer: str, payload: bytes) -> str | None:
        """Publish ``payload`` (a whole PUBLISH); return None when acknowledged, else what happened."""
        client = self.publishers[serializer]
        client.send_bytes(payload)
        try:
            reply = client.receive()
        except (ConnectionClosed, OSError):
            client.close()
            self.publishers[serializer] = joined(self.router.unix, serializer)
            return "publisher's connection dropped"
        return None if reply[0] == 17 else f"answered {reply[:1] + reply[4:5]}"

    def collect(self) -> dict[str, t.Any]:
        """What each subscriber got (decoded plainly) before the next marker event."""
        self.count += 1
        self.marker.send([16, self.count, {"acknowledge": True}, TOPIC, ["marker", self.count]])
        assert self.marker.receive()[0] == 17
        seen: dict[str, t.Any] = {}
        for serializer, client in self.subscribers.items():
            got: list[bytes] = []
            while True:
                data = client.receive_bytes()
                if loads(serializer, data)[4:5] == [["marker", self.count]]:
                    break
                got.append(data)
            seen[serializer] = got
        return seen


def publish_literal(request: int, serializer: str, json_literal: str | None, value: t.Any) -> bytes | None:
    if serializer == "json":
        if json_literal is None:
            return None
        return f'[16,{request},{{"acknowledge":true}},"{TOPIC}",[{json_literal}]]'.encode()
    if value is NO:
        return None
    return dumps(serializer, [16, request, {"acknowledge": True}, TOPIC, [value]])


def brief(value: t.Any) -> str:
    """A :func:`kinded` value (or a failure text) in a short form for the printed table."""
    if isinstance(value, str):
        return value
    kind, inner = value
    if kind == "list":
        return "[" + ", ".join(brief(v) for v in inner) + "]"
    if kind == "dict":
        return "{" + ", ".join(f"{brief(k)}: {brief(v)}" for k, v in inner) + "}"
    return f"{kind} {inner}"


def arrived(serializer: str, events: list[bytes]) -> t.Any:
    if not events:
        return "nothing"
    return [kinded(loads(serializer, data)[4][0]) for data in events]


def test_translation_matches_crossbar_for_every_value_kind(router: Router) -> None:
    bench = Bench(router)
    table: list[tuple[str, str, dict[str, t.Any], dict[str, t.Any]]] = []
    try:
        for name, (json_literal, msgpack_value, cbor_value) in VALUES.items():
            for source, value in (("json", None), ("msgpack", msgpack_value), ("cbor", cbor_value)):
                payload = publish_literal(100, source, json_literal, value)
                if payload is None:
                    continue
                failure = bench.publish(source, payload)
                direct = {s: failure or arrived(s, got) for s, got in bench.collect().items()}

                # the bridge's way: translate to msgpack, through Crossbar, translate to each subscriber's
                data: str | bytes = payload.decode() if source == "json" else payload
                try:
                    upstream = translate(data, source, "msgpack")
                except PayloadOutOfBounds:
                    via = {s: "refused" for s in SERIALIZERS}
                else:
                    failure = bench.publish("msgpack", t.cast(bytes, upstream))
                    events = bench.collect()["msgpack"]
                    via = {}
                    for target in SERIALIZERS:
                        try:
                            down = [translate(e, "msgpack", target) for e in events]
                        except PayloadOutOfBounds:
                            via[target] = "refused"
                            continue
                        raw = [d.encode() if isinstance(d, str) else d for d in down]
                        via[target] = failure or arrived(target, raw)
                table.append((name, source, direct, via))
    finally:
        bench.close()

    print("\nvalue / publisher -> what a json | msgpack | cbor subscriber got directly (and through translation)")
    for name, source, direct, via in table:
        cells = [brief(direct[s]) if isinstance(direct[s], str) else brief(["list", direct[s]]) for s in SERIALIZERS]
        print(f"{name:20} {source:8} -> " + " | ".join(cells))
        if via != direct:
            cells = [brief(via[s]) if isinstance(via[s], str) else brief(["list", via[s]]) for s in SERIALIZERS]
            print(f"{'':20} {'bridge':8} -> " + " | ".join(cells))
    differing = {(name, source) for name, source, direct, via in table if direct != via}
    assert differing == set(REFUSED)
    for name, source, _direct, via in table:
        if (name, source) in REFUSED:
            assert "refused" in via.values()
    found = {(name, source): (direct, via) for name, source, direct, via in table}
    # where Crossbar itself changes values (the reference the translation follows)
    assert found[("NUL-prefixed string", "msgpack")][0]["json"] == [["str", repr("\x00AQID")]]  # json: binary
    assert found[("binary", "json")][0]["msgpack"] == [["bytes", repr(b"\x01\x02\x03")]]
    assert found[("whole float", "json")][0]["msgpack"] == [["float", "1.0"]]
