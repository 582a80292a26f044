"""The peer's IO loop in process: socket pairs and a scripted router (no Crossbar).

Reconnect with re-registration, the join and call timeouts, cancel (a killed
caller, an INTERRUPT from the router), shutdown, and the probe of a silent
router over a transport without pings, each over real frames.
"""

from __future__ import annotations

import typing as t

import gevent
import gevent.event
import pytest
from pair_router import ABORT
from pair_router import CALL
from pair_router import CANCEL
from pair_router import ERROR
from pair_router import GOODBYE
from pair_router import HELLO
from pair_router import INTERRUPT
from pair_router import INVOCATION
from pair_router import REGISTER
from pair_router import WELCOME
from pair_router import YIELD
from pair_router import PairRouter

from flask_wamp_bridge import signals
from flask_wamp_bridge.errors import CallTimeout
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import NotConnected
from flask_wamp_bridge.wamp.client_auth import AnonymousAuth
from flask_wamp_bridge.wamp.messages import serializer_for
from flask_wamp_bridge.wamp.peer import Peer
from flask_wamp_bridge.wamp.peer_connection import PROBE_PROCEDURE

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def router() -> t.Iterator[PairRouter]:
    scripted = PairRouter(answers={"app.ping": "pong"})
    yield scripted
    scripted.close()


@pytest.fixture
def make_peer() -> t.Iterator[t.Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(router: PairRouter, **options: t.Any) -> Peer:
        options = {"connect_timeout": 2.0, "call_timeout": 5.0, "reconnect_initial": 0.01,
                   "reconnect_max": 0.05, "connect": router.connect, **options}
        peer = Peer("ws://scripted.invalid/ws", "realm1", AnonymousAuth(), **options)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.stop(timeout=1.0)


def test_peer_io_joins_and_calls_over_the_seam(router: PairRouter, make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router)
    assert peer.wait_ready(5)
    assert peer.session_id == 1000
    assert peer.call("app.ping") == "pong"
    end = router.ends[0]
    assert [m[0] for m in end.received] == [HELLO, CALL]
    assert end.received[1][3] == "app.ping"


def test_peer_io_reconnects_and_registers_again(router: PairRouter, make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router)
    assert peer.wait_ready(5)
    reg = peer.register("app.add", lambda a, b: a + b)
    first = router.next_connection()
    assert first.expect(REGISTER)[3] == "app.add"
    first_id = reg.id
    first.drop()
    second = router.next_connection()
    assert second.expect(REGISTER)[3] == "app.add"
    assert peer.wait_ready(5)
    assert reg.id is not None and reg.id != first_id
    second.send([INVOCATION, 7, reg.id, {}, [2, 3]])
    assert second.expect(YIELD)[1:] == [7, {}, [5]]


def test_peer_io_retries_refused_connections(make_peer: t.Callable[..., Peer]) -> None:
    router = PairRouter(refuse=2)
    try:
        peer = make_peer(router)
        assert peer.wait_ready(5)
        assert router.attempts == 3
    finally:
        router.close()


def test_peer_io_join_timeout_closes_and_tries_again(make_peer: t.Callable[..., Peer]) -> None:
    router = PairRouter(welcome=False)
    try:
        peer = make_peer(router, connect_timeout=0.2)
        peer.start()
        first = router.next_connection()
        first.expect(HELLO)
        assert first.ws.wait_closed(5)  # the peer gave up waiting for WELCOME
        router.next_connection().expect(HELLO)
        with pytest.raises(NotConnected):
            peer.call("app.ping")
    finally:
        router.close()


def test_peer_io_call_timeout_cancels(router: PairRouter, make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router, cancel_mode="kill")
    assert peer.wait_ready(5)
    with pytest.raises(CallTimeout):
        peer.call_with("app.silent", timeout=0.1)
    end = router.ends[0]
    call = end.expect(CALL)
    cancel = end.expect(CANCEL)
    assert cancel[1] == call[1] and cancel[2] == {"mode": "kill"}


def test_peer_io_killed_caller_cancels(router: PairRouter, make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router)
    assert peer.wait_ready(5)
    caller = gevent.spawn(peer.call, "app.silent")
    end = router.ends[0]
    call = end.expect(CALL)
    caller.kill()
    assert end.expect(CANCEL)[1] == call[1]


def test_peer_io_interrupt_kills_the_invocation(router: PairRouter, make_peer: t.Callable[..., Peer]) -> None:
    started, finished = gevent.event.Event(), gevent.event.Event()

    def slow() -> str:
        started.set()
        try:
            gevent.sleep(30)
        finally:
            finished.set()
        return "late"

    peer = make_peer(router)
    assert peer.wait_ready(5)
    reg = peer.register("app.slow", slow)
    end = router.ends[0]
    end.send([INVOCATION, 9, reg.id, {}, []])
    assert started.wait(5)
    end.send([INTERRUPT, 9, {"mode": "kill"}])
    assert finished.wait(5)
    assert peer.call("app.ping") == "pong"  # a round trip: whatever the peer sent before has arrived
    answers = [m for m in end.received if m[0] in (YIELD, ERROR)]
    assert answers == [[ERROR, INVOCATION, 9, {}, "wamp.error.canceled"]]  # never the late "late"


def test_peer_io_lost_connection_fails_pending_calls(router: PairRouter,
                                                     make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router)
    assert peer.wait_ready(5)
    caller = gevent.spawn(peer.call, "app.silent")
    end = router.ends[0]
    end.expect(CALL)
    end.drop()
    with pytest.raises(ConnectionClosed):
        caller.get(timeout=5)


def test_peer_io_stop_says_goodbye_and_closes(router: PairRouter, make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router)
    assert peer.wait_ready(5)
    end = router.ends[0]
    peer.stop(timeout=2.0)
    assert end.expect(GOODBYE)[2] == "wamp.close.system_shutdown"
    assert end.ws.wait_closed(5)
    assert end.ws.close_code == 1001
    assert not peer.started and not peer.is_connected
    with pytest.raises(NotConnected):
        peer.call("app.ping")
    assert len(router.ends) == 1  # no reconnect after stop


class NoPings:
    """A transport without pings (as RawSocket is): the scripted router's WebSocket, ``ping`` hidden."""

    def __init__(self, ws: t.Any) -> None:
        self.ws = ws
        self.subprotocol = ws.subprotocol

    def receive(self) -> str | bytes | None:
        return t.cast("str | bytes | None", self.ws.receive())

    def send(self, message: str | bytes) -> None:
        self.ws.send(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.ws.close(code, reason)


def without_pings(router: PairRouter) -> t.Callable[..., NoPings]:
    return lambda url, **options: NoPings(router.connect(url, **options))


def test_peer_io_probes_a_silent_router_with_a_call_it_answers(make_peer: t.Callable[..., Peer]) -> None:
    router = PairRouter(answers={PROBE_PROCEDURE: 3, "app.ping": "pong"})
    try:
        peer = make_peer(router, connect=without_pings(router), ping_interval=0.2, ping_timeout=0.5)
        assert peer.wait_ready(5)
        end = router.ends[0]
        for _ in range(2):  # probed again and again while silent; answered, the connection stays
            assert end.expect(CALL)[3] == PROBE_PROCEDURE
        assert peer.call("app.ping") == "pong"
        assert len(router.ends) == 1
    finally:
        router.close()


def test_peer_io_a_router_that_answers_no_probe_is_lost(make_peer: t.Callable[..., Peer]) -> None:
    router = PairRouter(answers={"app.ping": "pong"})  # a stalled router: its socket open, nothing answered
    try:
        peer = make_peer(router, connect=without_pings(router), ping_interval=0.2, ping_timeout=0.3,
                         call_timeout=None)
        assert peer.wait_ready(5)
        caller = gevent.spawn(peer.call, "app.silent")
        first = router.next_connection()
        first.expect(CALL)
        assert first.expect(CALL)[3] == PROBE_PROCEDURE
        with pytest.raises(ConnectionClosed):
            caller.get(timeout=5)  # not after call_timeout (none here): when the probe went unanswered
        router.next_connection().expect(HELLO)  # and the peer connects again
    finally:
        router.close()


def test_peer_io_a_transport_with_pings_is_not_probed(router: PairRouter,
                                                      make_peer: t.Callable[..., Peer]) -> None:
    peer = make_peer(router, ping_interval=0.2, ping_timeout=0.5)
    assert peer.wait_ready(5)
    gevent.sleep(0.6)  # silent for longer than ping_interval: the WebSocket pings, no CALL
    assert peer.call("app.ping") == "pong"
    assert [m[0] for m in router.ends[0].received] == [HELLO, CALL]


def test_peer_io_refuses_rawsocket_tcp_for_a_tls_router_url() -> None:
    with pytest.raises(ConfigError, match="wss://"):  # RawSocket over TCP here is plain text
        Peer(["ws://a.example/ws", "wss://b.example/ws"], "realm1", AnonymousAuth(), upstream="rawsocket")
    Peer("wss://b.example/ws", "realm1", AnonymousAuth(), upstream="rawsocket", rawsocket_path="/run/router.sock")
    Peer("wss://b.example/ws", "realm1", AnonymousAuth())


def test_peer_io_signals_a_refused_join(make_peer: t.Callable[..., Peer]) -> None:
    json = serializer_for("wamp.2.json")
    answers = [json.dumps([ABORT, {"message": "WAMP-CRA signature is invalid"}, "wamp.error.not_authorized"]),
               json.dumps([WELCOME, 77, {"authid": "peer", "authrole": "backend", "roles": {"dealer": {}}}])]
    router = PairRouter(login=lambda frame: [answers.pop(0)] if answers else [])
    peer = make_peer(router)
    refused: list[dict[str, t.Any]] = []

    def heard(sender: object, **kwargs: t.Any) -> None:
        refused.append({"sender": sender, **kwargs})

    signals.peer_refused.connect(heard, sender=peer)
    try:
        assert peer.wait_ready(5)  # joined at the second attempt
    finally:
        signals.peer_refused.disconnect(heard, sender=peer)
        router.close()
    assert refused == [{"sender": peer, "reason": "wamp.error.not_authorized",
                        "message": "WAMP-CRA signature is invalid"}]
    assert peer.session_id == 77
