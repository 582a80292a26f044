"""RawSocket and serializer translation on a real Crossbar.

One router with the generated config plus RawSocket transports (Unix socket
and TCP, :func:`with_rawsocket`). Clients are the sans-IO RawSocket codec over
plain sockets (:class:`RawSocketClient`), so the tests see the exact bytes
Crossbar sends.

The translation table sends every value kind over every message type
Crossbar routes with a payload (PUBLISH->EVENT, CALL->INVOCATION,
YIELD->RESULT, ERROR->ERROR) from a JSON, a msgpack and a CBOR client
straight to a client of each serializer (the reference: what Crossbar itself
delivers), and again the way the bridge will: translated to msgpack, through
Crossbar between msgpack sessions, translated to the receiver's serializer.
Both must arrive the same, except for the few values the translation refuses
on purpose (:data:`REFUSED`). Run with ``-s`` to see the table.
"""

from __future__ import annotations

import functools
import math
import socket
import threading
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
from flask_wamp_bridge.wamp.client_auth import TicketAuth
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
    config = with_rawsocket(make_config(router_settings(free_port(), WAMP_BRIDGE_UPSTREAM="websocket")),
                            path=unix, port=port)
    process = CrossbarProcess(config, cbdir, crossbar=crossbar_executable)
    process.start(timeout=90)
    try:
        yield Router(process, unix, ("127.0.0.1", port))
    finally:
        process.stop()


def joined(address: str | tuple[str, int], serializer: str) -> RawSocketClient:
    client = RawSocketClient(address, serializer, max_length=MAX_MESSAGE, timeout=5)
    client.join(REALM, WampCraAuth(TESTER_AUTHID, TESTER_SECRET))
    return client


def test_with_rawsocket_config_keeps_websocket_and_logins() -> None:
    base = make_config(router_settings(8080, WAMP_BRIDGE_UPSTREAM="websocket"))
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


def test_ticket_login_over_rawsocket(router: Router) -> None:
    # The relay's login: ticket, checked by the dynamic authenticator (here answered by a test callee).
    seen: list[t.Any] = []
    with joined(router.tcp, "cbor") as authenticator:
        authenticator.send([64, 1, {}, "wamp_bridge.authenticate"])
        assert authenticator.receive()[0] == 65

        def answer() -> None:
            invocation = authenticator.receive()
            seen.append(invocation[4])
            authenticator.send([70, invocation[1], {}, [{"authid": "joe", "role": "user"}]])

        thread = threading.Thread(target=answer)
        thread.start()
        with RawSocketClient(router.unix, "json", timeout=10) as browser:
            welcome = browser.join(REALM, TicketAuth("joe", "ticket-from-the-bridge"))
        thread.join(10)
    assert welcome[2]["authid"] == "joe" and welcome[2]["authrole"] == "user"
    realm, authid, details = seen[0]
    assert (realm, authid, details["ticket"]) == (REALM, "joe", "ticket-from-the-bridge")
    transport = details["transport"]
    assert transport["channel_framing"] == "rawsocket" and transport["channel_serializer"] == "json"
    # over a Unix socket Crossbar names every peer just "unix": a ticket bound to the bridge's end of its
    # connection (tickets.peer_descriptor, tcp4:HOST:PORT) cannot tell two such connections apart
    assert transport["peer"] == "unix"


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


def test_crossbar_silently_skips_a_message_over_the_clients_maximum(router: Router) -> None:
    # So the bridge's upstream must announce the most (16 MiB) and bound sizes itself: a RESULT
    # over the announced maximum would never arrive and its call never be answered.
    small = RawSocketClient(router.unix, "msgpack", max_length=1024, timeout=5)
    with small, joined(router.unix, "msgpack") as publisher:
        small.join(REALM, WampCraAuth(TESTER_AUTHID, TESTER_SECRET))
        small.send([32, 1, {}, "test.rawsocket.max"])
        assert small.receive()[0] == 33
        publisher.send([16, 1, {"acknowledge": True}, "test.rawsocket.max", ["x" * 2000]])
        publisher.send([16, 2, {"acknowledge": True}, "test.rawsocket.max", ["after"]])
        assert [publisher.receive()[0], publisher.receive()[0]] == [17, 17]
        event = small.receive()
        assert event[0] == 36 and event[4] == ["after"]  # the 2 KB event was skipped, the connection kept


# --- translation: what each serializer's client sees, directly and through a translation ---------

#: name -> (JSON literal, value a msgpack client sends, value a CBOR client sends); None/NO: no such form.
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
#: The message types Crossbar routes with a payload: (what the origin sends, what the destination gets).
HOPS = ("PUBLISH->EVENT", "CALL->INVOCATION", "YIELD->RESULT", "ERROR->ERROR")
#: (value, origin) the translation refuses where Crossbar delivers something (or drops the connection), and why.
REFUSED = {
    ("NaN", "json"): "NaN has no JSON form a browser can parse (Crossbar sends the literal NaN)",
    ("NaN", "msgpack"): "same",
    ("NaN", "cbor"): "same",
    ("2**64", "json"): "msgpack upstream carries no integer >= 2**64",
    ("2**64", "cbor"): "same",
    ("int key", "cbor"): "Crossbar refuses non-string map keys from msgpack sessions",
    ("bad base64", "json"): "Crossbar drops the sender's connection; the translation refuses the one message",
}
#: Values for which Crossbar drops the sender's connection (its answer to later messages is then a race).
DROPS = {"bad base64"}
TOPIC = "test.translate"
PROCEDURE = "test.translate"
HOLE = "<value>"


def kinded(value: t.Any) -> t.Any:
    """A value with every leaf's type made visible (1 != 1.0 != True; NaN == NaN)."""
    if isinstance(value, list):
        return ["list", [kinded(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", sorted((kinded(k), kinded(v)) for k, v in value.items())]
    if isinstance(value, float):
        return ["float", repr(value)]
    return [type(value).__name__, repr(value)]


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


def with_value(serializer: str, template: list[t.Any], value_name: str) -> bytes | None:
    """``template`` with :data:`HOLE` replaced by the value, as a client of ``serializer`` writes it."""
    json_literal, msgpack_value, cbor_value = VALUES[value_name]
    if serializer == "json":
        if json_literal is None:
            return None
        return dumps("json", template).replace(f'"{HOLE}"'.encode(), json_literal.encode())
    value = msgpack_value if serializer == "msgpack" else cbor_value
    if value is NO:
        return None
    return dumps(serializer, [[value] if part == [HOLE] else part for part in template])


Build = t.Callable[[int], bytes]


class Clients:
    """Per serializer: a publisher, a subscriber, a caller and a callee (registered as PROCEDURE.<serializer>)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.roles: dict[str, dict[str, RawSocketClient]] = {
            role: {s: joined(router.unix, s) for s in SERIALIZERS}
            for role in ("publisher", "subscriber", "caller", "callee")
        }
        self.marker = joined(router.unix, "msgpack")
        for serializer in SERIALIZERS:
            self._prepare("subscriber", serializer)
            self._prepare("callee", serializer)
        self.count = 0

    def _prepare(self, role: str, serializer: str) -> None:
        client = self.roles[role][serializer]
        if role == "subscriber":
            client.send([32, 1, {}, TOPIC])
            assert client.receive()[0] == 33
        elif role == "callee":
            client.send([64, 1, {}, f"{PROCEDURE}.{serializer}"])
            assert client.receive()[0] == 65

    def close(self) -> None:
        for client in [*(c for role in self.roles.values() for c in role.values()), self.marker]:
            client.close()

    def _renew(self, role: str, serializer: str) -> str:
        self.roles[role][serializer].close()
        self.roles[role][serializer] = joined(self.router.unix, serializer)
        self._prepare(role, serializer)
        return f"{role}'s connection dropped"

    def event(self, origin: str, message: bytes) -> dict[str, bytes | str | None]:
        """PUBLISH ``message`` from ``origin``: the EVENT each subscriber got (bytes), None, or a failure."""
        publisher = self.roles["publisher"][origin]
        publisher.send_bytes(message)
        try:
            reply = publisher.receive()
        except ConnectionClosed:
            failure = self._renew("publisher", origin)
            return {s: failure for s in SERIALIZERS}
        assert reply[0] == 17, reply
        self.count += 1
        self.marker.send([16, self.count, {"acknowledge": True}, TOPIC, ["marker", self.count]])
        assert self.marker.receive()[0] == 17
        seen: dict[str, bytes | str | None] = {}
        for serializer, client in self.roles["subscriber"].items():
            got: list[bytes] = []
            while loads(serializer, data := client.receive_bytes())[4:5] != [["marker", self.count]]:
                got.append(data)
            assert len(got) <= 1
            seen[serializer] = got[0] if got else None
        return seen

    def invocation(self, origin: str, destination: str, build: Build) -> bytes | str | None:
        """A CALL built by ``build(request id)`` from ``origin``'s caller to ``destination``'s callee:
        the INVOCATION the callee got."""
        return self._call(origin, destination, build, None)[0]

    def answer(self, origin: str, destination: str, build: Build) -> bytes | str | None:
        """``origin``'s callee answers a CALL from ``destination``'s caller with ``build(invocation id)``
        (a YIELD or ERROR): what the caller got."""
        return self._call(destination, origin, None, build)[1]

    def _call(self, caller_s: str, callee_s: str, call: Build | None, answer: Build | None,
              ) -> tuple[bytes | str | None, bytes | str | None]:
        caller, callee = self.roles["caller"][caller_s], self.roles["callee"][callee_s]
        procedure = f"{PROCEDURE}.{callee_s}"
        self.count += 1
        first, marker = self.count * 2, self.count * 2 + 1
        if call is None:
            caller.send([48, first, {}, procedure, [], {"call": first}])
        else:
            caller.send_bytes(call(first))
        caller.send([48, marker, {}, procedure, [], {"marker": marker}])
        invocation: bytes | str | None = None
        while True:
            try:
                data = callee.receive_bytes()
            except ConnectionClosed:
                return self._renew("callee", callee_s), None
            decoded = loads(callee_s, data)
            if decoded[0] != 68:
                continue
            if decoded[5:6] != [{"call": first}]:  # the marker, or left over from an earlier call
                callee.send([70, decoded[1], {}, []])
                if decoded[5:6] == [{"marker": marker}]:
                    break
                continue
            invocation = data
            if answer is None:
                callee.send([70, decoded[1], {}, []])
            else:
                callee.send_bytes(answer(decoded[1]))
        reply: bytes | str | None = None
        while True:
            try:
                data = caller.receive_bytes()
            except ConnectionClosed:
                return invocation, self._renew("caller", caller_s)
            decoded = loads(caller_s, data)
            request = decoded[2] if decoded[0] == 8 else decoded[1]
            if request == marker:
                return invocation, reply
            if request == first:
                reply = data


def template(hop: str, request: int, procedure: str) -> list[t.Any]:
    """The origin's message for ``hop`` with the value's place held by :data:`HOLE`."""
    return {
        "PUBLISH->EVENT": [16, request, {"acknowledge": True}, TOPIC, [HOLE]],
        "CALL->INVOCATION": [48, request, {}, procedure, [HOLE], {"call": request}],
        "YIELD->RESULT": [70, request, {}, [HOLE]],
        "ERROR->ERROR": [8, 68, request, {}, "app.error.test", [HOLE]],
    }[hop]


def message(origin: str, hop: str, name: str, request: int, destination: str) -> bytes:
    """The origin's message for ``hop`` carrying value ``name``, as the origin's client writes it."""
    return t.cast(bytes, with_value(origin, template(hop, request, f"{PROCEDURE}.{destination}"), name))


def translated(origin: str, hop: str, name: str, request: int, destination: str) -> bytes:
    """:func:`message` translated to msgpack, as the bridge sends it upstream."""
    data = message(origin, hop, name, request, destination)
    return t.cast(bytes, translate(data.decode() if origin == "json" else data, origin, "msgpack"))


def route(clients: Clients, hop: str, origin: str, name: str, upstream: bool = False,
          destinations: tuple[str, ...] = SERIALIZERS) -> dict[str, bytes | str | None]:
    """Send value ``name`` from ``origin`` over ``hop``: what each destination's client got.

    With ``upstream``, the bridge's way: translated to msgpack and sent between msgpack clients
    (then only the msgpack destination is asked).
    """
    sender = "msgpack" if upstream else origin
    destinations = ("msgpack",) if upstream else destinations
    make = translated if upstream else message
    if hop == "PUBLISH->EVENT":
        return clients.event(sender, make(origin, hop, name, 1, "msgpack"))
    if hop == "CALL->INVOCATION":
        return {d: clients.invocation(sender, d, functools.partial(make, origin, hop, name, destination=d))
                for d in destinations}
    return {d: clients.answer(sender, d, functools.partial(make, origin, hop, name, destination=d))
            for d in destinations}


def through_bridge(clients: Clients, hop: str, origin: str, name: str) -> dict[str, t.Any]:
    """What each destination gets the bridge's way: msgpack upstream, translated to its serializer."""
    arrived = route(clients, hop, origin, name, upstream=True)["msgpack"]
    via: dict[str, t.Any] = {}
    for destination in SERIALIZERS:
        if not isinstance(arrived, bytes):
            via[destination] = payload_of(destination, arrived)
            continue
        try:
            down = translate(arrived, "msgpack", destination)
        except PayloadOutOfBounds:
            via[destination] = "refused"
            continue
        via[destination] = payload_of(destination, down.encode() if isinstance(down, str) else down)
    return via


def payload_of(serializer: str, data: bytes | str | None) -> t.Any:
    """The routed message's value (its first positional argument), kinded; or what happened instead."""
    if data is None:
        return "nothing"
    if isinstance(data, str):
        return data
    message = loads(serializer, data)
    args = {36: 4, 68: 4, 50: 3, 8: 5}[message[0]]
    return kinded(message[args][0])


def test_translation_matches_crossbar_for_every_value_kind(router: Router) -> None:
    clients = Clients(router)
    table: list[tuple[str, str, str, dict[str, t.Any], dict[str, t.Any]]] = []
    try:
        for hop in HOPS:
            for name in VALUES:
                for origin in SERIALIZERS:
                    if with_value(origin, template(hop, 1, PROCEDURE), name) is None:
                        continue
                    if name in DROPS:  # Crossbar drops the sender: a fresh set of clients for each destination
                        got = {}
                        for destination in SERIALIZERS:
                            clients.close()
                            clients = Clients(router)
                            got.update(route(clients, hop, origin, name, destinations=(destination,)))
                        clients.close()
                        clients = Clients(router)
                    else:
                        got = route(clients, hop, origin, name)
                    direct = {d: payload_of(d, got_d) for d, got_d in got.items()}
                    try:
                        translated(origin, hop, name, 1, "msgpack")
                    except PayloadOutOfBounds:
                        via = {d: "refused" for d in SERIALIZERS}
                    else:
                        via = through_bridge(clients, hop, origin, name)
                    table.append((hop, name, origin, direct, via))
    finally:
        clients.close()

    print("\nhop / value / origin -> what a json | msgpack | cbor client got directly on Crossbar "
          "(and through the translation, where it differs)")
    for hop, name, origin, direct, via in table:
        print(f"{hop:17} {name:20} {origin:8} -> " + " | ".join(brief(direct[s]) for s in SERIALIZERS))
        if via != direct:
            print(f"{'':17} {'':20} {'bridge':8} -> " + " | ".join(brief(via[s]) for s in SERIALIZERS))
    differing = {(name, origin) for hop, name, origin, direct, via in table if direct != via}
    assert differing == set(REFUSED)
    assert all("refused" in via.values() for hop, name, origin, direct, via in table if (name, origin) in REFUSED)
    assert {hop for hop, *_ in table} == set(HOPS)
    found = {(hop, name, origin): direct for hop, name, origin, direct, via in table}
    # where Crossbar itself changes values (the reference the translation follows)
    for hop in HOPS:
        assert found[(hop, "NUL-prefixed string", "msgpack")]["json"] == ["str", repr("\x00AQID")]  # binary to JSON
        assert found[(hop, "binary", "json")]["msgpack"] == ["bytes", repr(b"\x01\x02\x03")]
        assert found[(hop, "whole float", "json")]["msgpack"] == ["float", "1.0"]
        assert found[(hop, "int key", "cbor")]["json"] == ["dict", [(["str", "'1'"], ["str", "'one'"])]]
