"""Relays without pings end when the app's peer loses their router node (``signals.router_lost``).

In process, on socket pairs with a scripted router: the peer sends the signal when its connection ends while
joined (its liveness check closed it, or the router went away), never for a GOODBYE or a refused join; a relay
(``test_relay_io.Harness``) whose upstream has no ping (``ping_interval=None``, as over RawSocket) then ends.
"""

from __future__ import annotations

import time
import typing as t

import gevent
import pytest
from pair_router import ABORT
from pair_router import CALL
from pair_router import ERROR
from pair_router import GOODBYE
from pair_router import RESULT
from pair_router import PairRouter
from test_relay_io import Harness

from flask_wamp_bridge import signals
from flask_wamp_bridge.bridge import relay_io
from flask_wamp_bridge.bridge.relay_events import State
from flask_wamp_bridge.wamp.client_auth import AnonymousAuth
from flask_wamp_bridge.wamp.messages import serializer_for
from flask_wamp_bridge.wamp.peer import Peer

pytestmark = pytest.mark.timeout(60)

URL = "ws://scripted.invalid/ws"


class App:
    """Stands for the Flask app: the sender of its peer's and its relays' signals."""


@pytest.fixture
def relayed() -> t.Iterator[t.Callable[..., Harness]]:
    made: list[Harness] = []

    def make(sender: object, **options: t.Any) -> Harness:
        options.setdefault("ping_interval", None)  # no pings, as over RawSocket
        made.append(Harness(signal_sender=sender, **options))
        one = made[-1]
        assert one.login() is not None
        return one

    yield make
    for one in made:
        one.close()


def still_relays(h: Harness, request_id: int) -> bool:
    """A call round trip: the session is up (a tick's actions, spawned before, have run by now)."""
    h.send([CALL, request_id, {}, "app.ping", []])
    return h.receive() == [RESULT, request_id, {}, ["pong"]] and h.relay.state is State.ESTABLISHED


def test_router_lost_ends_a_relay_without_pings_with_the_router_silent_fault(
        relayed: t.Callable[..., Harness]) -> None:
    app = App()
    h = relayed(app)
    h.send([CALL, 7, {}, "app.silent", []])  # never answered by the router
    h.router.ends[0].expect(CALL)
    h.router.ends[0].greenlet.kill()  # stalled: the connection stays open, nothing more comes
    with signals.router_lost.connected_to(relay_io.router_lost):
        signals.send(signals.router_lost, app, url=URL, message="the connection to the router was lost")
        error = h.receive()  # the ticker's next pass
        abort = h.receive()
    assert error is not None and error[:3] == [ERROR, CALL, 7] and error[4] == "wamp_bridge.error.router_lost"
    assert abort is not None and abort[0] == ABORT and abort[2] == "wamp_bridge.error.router_lost"
    assert abort[1]["message"] == "the router stopped answering; reconnect"  # faults.ROUTER_SILENT
    assert h.receive() is None
    assert h.browser.close_code == 1011
    assert h.ended()
    assert "the app's peer lost it" in str(h.relay.error)  # the log says why


def test_router_lost_spares_other_nodes_other_apps_and_relays_that_heard_the_router_since(
        relayed: t.Callable[..., Harness]) -> None:
    app = App()
    h = relayed(app)
    before = time.monotonic()
    h.session.tick(time.monotonic(), {(app, "ws://other-node.invalid/ws"): before})  # another router node
    h.session.tick(time.monotonic(), {(App(), URL): before})  # another app's peer
    assert still_relays(h, 1)  # heard the router after ``before``
    h.session.tick(time.monotonic(), {(app, URL): before})  # alive for this relay: the peer's own trouble
    assert still_relays(h, 2)
    h.session.tick(time.monotonic(), {(app, URL): time.monotonic()})  # heard nothing since: lost
    error = h.receive()
    assert error is not None and error[0] == ABORT and error[2] == "wamp_bridge.error.router_lost"
    assert h.receive() is None and h.browser.close_code == 1011


def test_router_lost_leaves_relays_that_ping_to_their_own_check(relayed: t.Callable[..., Harness]) -> None:
    app = App()
    h = relayed(app)
    pinging = relayed(app, ping_interval=60.0)
    lost = {(app, URL): time.monotonic()}
    pinging.session.tick(time.monotonic(), lost)
    h.session.tick(time.monotonic(), lost)
    abort = h.receive()
    assert abort is not None and abort[0] == ABORT
    assert still_relays(pinging, 1)


# --- the peer's side: when it says router_lost ------------------------------------------------


@pytest.fixture
def peer_on() -> t.Iterator[t.Callable[..., tuple[Peer, list[dict[str, t.Any]]]]]:
    made: list[tuple[Peer, PairRouter, t.Callable[..., None]]] = []

    def make(router: PairRouter, **options: t.Any) -> tuple[Peer, list[dict[str, t.Any]]]:
        peer = Peer([URL, "ws://second-node.invalid/ws"], "realm1", AnonymousAuth(), connect=router.connect,
                    connect_timeout=2.0, reconnect_initial=0.01, reconnect_max=0.05, **options)
        heard: list[dict[str, t.Any]] = []

        def note(sender: object, **kwargs: t.Any) -> None:
            heard.append(kwargs)

        signals.router_lost.connect(note, sender=peer)
        made.append((peer, router, note))
        return peer, heard

    yield make
    for peer, router, note in made:
        signals.router_lost.disconnect(note, sender=peer)
        peer.stop(timeout=1.0)
        router.close()


def test_the_peer_says_router_lost_when_its_liveness_check_drops_a_stalled_router(
        peer_on: t.Callable[..., tuple[Peer, list[dict[str, t.Any]]]]) -> None:
    router = PairRouter()
    peer, heard = peer_on(router, ping_interval=0.3, ping_timeout=0.3)
    assert peer.wait_ready(5)
    router.ends[0].greenlet.kill()  # stalled: reads nothing, answers no ping
    with gevent.Timeout(10, AssertionError("no router_lost within 10 s")):
        while not heard:
            gevent.sleep(0.05)
    assert heard == [{"url": URL, "message": "the connection to the router was lost"}]


def test_the_peer_says_nothing_for_a_goodbye_or_a_refused_join(
        peer_on: t.Callable[..., tuple[Peer, list[dict[str, t.Any]]]]) -> None:
    router = PairRouter()
    peer, heard = peer_on(router)
    assert peer.wait_ready(5)
    router.next_connection().send([GOODBYE, {}, "wamp.close.killed"])  # the router ended it: not a lost router
    second = router.next_connection()  # the peer came back

    abort = serializer_for("wamp.2.json").dumps([ABORT, {}, "wamp.error.not_authorized"])
    refusing = PairRouter(login=lambda frame: [abort])
    refused, refused_heard = peer_on(refusing)
    refused.start()
    refusing.next_connection()
    refusing.next_connection()  # tried again after the refusal
    assert second.expect(1)  # HELLO: the new session
    second.drop()  # now lost: the one signal
    with gevent.Timeout(10, AssertionError("no router_lost within 10 s")):
        while not heard:
            gevent.sleep(0.05)
    assert [one["url"] for one in heard] == [URL]
    assert refused_heard == [] and not refused.is_connected
