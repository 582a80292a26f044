"""The relay's IO loop in process: a browser and a scripted router on socket pairs (no Crossbar).

The router's side of the ticket login is the real authenticator (``relay_pair.ScriptedRouter``);
then :class:`pair_router.PairRouter` answers calls. Covers a session end to end,
an unreachable router, the login deadline, either side going away, and shutdown.
"""

from __future__ import annotations

import time
import typing as t

import gevent
import pytest
from pair_router import ABORT
from pair_router import CALL
from pair_router import GOODBYE
from pair_router import RESULT
from pair_router import WELCOME
from pair_router import PairRouter
from pair_router import socket_pair
from relay_pair import BROWSER_ROLES
from relay_pair import REALM
from relay_pair import SECRET
from relay_pair import ScriptedRouter

from flask_wamp_bridge.bridge import relay_io
from flask_wamp_bridge.bridge import tickets
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay import Relay
from flask_wamp_bridge.bridge.relay import State
from flask_wamp_bridge.wamp.messages import serializer_for

pytestmark = pytest.mark.timeout(60)

SUBPROTOCOL = "wamp.2.json"
SERIALIZER = serializer_for(SUBPROTOCOL)
LOGIN_TIMEOUT = 3600.0  # deadlines fire only when a test ticks the clock itself


class Harness:
    """One RelaySession between a test browser and a scripted router, each on a socket pair."""

    def __init__(self, *, login: bool = True, refuse: int = 0) -> None:
        authenticator = ScriptedRouter(SERIALIZER, clock=time.time)
        self.router = PairRouter(login=authenticator.answer if login else (lambda frame: []), refuse=refuse,
                                 answers={"app.ping": "pong"})
        self.browser, server_side = socket_pair(self.router.pairs, SUBPROTOCOL)
        self.start = time.monotonic()  # the relay's clock (tickets alone use wall-clock time)
        self.relay = Relay(Identity("alice", "user"), REALM, SERIALIZER,
                           lambda identity: tickets.sign(identity, SECRET, time.time(), realm=REALM),
                           self.start, login_timeout=LOGIN_TIMEOUT)
        self.session = relay_io.RelaySession(server_side, self.relay, "ws://scripted.invalid/ws", SUBPROTOCOL,
                                             connect=self.router.connect, close_timeout=1.0)
        self.runner = gevent.spawn(self.session.run)

    def send(self, message: list[t.Any]) -> None:
        self.browser.send(SERIALIZER.dumps(message))

    def receive(self) -> list[t.Any] | None:
        with gevent.Timeout(10, AssertionError("the browser got nothing within 10 s")):
            data = self.browser.receive()
        return None if data is None else SERIALIZER.loads(data)

    def login(self) -> list[t.Any] | None:
        self.send([1, REALM, {"roles": BROWSER_ROLES}])
        return self.receive()

    def ended(self) -> bool:
        """Wait for the session's greenlet to return (both sockets closed)."""
        self.runner.join(timeout=10)
        return self.runner.dead and self.session not in relay_io.live_sessions()

    def close(self) -> None:
        self.runner.kill()
        self.browser.close(timeout=0.5)
        self.router.close()


@pytest.fixture
def harness() -> t.Iterator[t.Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**options: t.Any) -> Harness:
        made.append(Harness(**options))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_relay_io_session_end_to_end(harness: t.Callable[..., Harness]) -> None:
    h = harness()
    welcome = h.login()
    assert welcome is not None and welcome[0] == WELCOME and welcome[2]["authid"] == "alice"
    h.send([CALL, 1, {}, "app.ping", []])
    assert h.receive() == [RESULT, 1, {}, ["pong"]]
    end = h.router.ends[0]
    assert end.expect(CALL)[3] == "app.ping"
    h.browser.close(1000)
    assert h.ended()
    assert end.ws.wait_closed(5) and end.ws.close_code == 1000
    assert h.relay.state is State.CLOSED


def test_relay_io_unreachable_router_aborts_the_login_and_closes_1013(harness: t.Callable[..., Harness]) -> None:
    h = harness(refuse=1)
    abort = h.login()
    assert abort is not None and abort[0] == ABORT and abort[2] == "wamp_bridge.error.router_unavailable"
    assert h.receive() is None
    assert h.browser.close_code == 1013  # "try again later": the browser reconnects
    assert h.ended()
    assert h.router.attempts == 1 and h.router.ends == []


def test_relay_io_login_deadline_closes_both_legs(harness: t.Callable[..., Harness]) -> None:
    h = harness(login=False)
    h.send([1, REALM, {"roles": BROWSER_ROLES}])
    end = h.router.next_connection()
    end.expect(1)  # the rewritten HELLO reached the router, which never answers
    h.session.tick(h.start + LOGIN_TIMEOUT + 1)
    abort = h.receive()
    assert abort is not None and abort[0] == ABORT
    assert h.receive() is None
    assert h.ended()
    assert end.ws.wait_closed(5)


def test_relay_io_router_lost_closes_the_browser_1011(harness: t.Callable[..., Harness]) -> None:
    h = harness()
    assert h.login() is not None
    h.router.ends[0].drop()
    while h.receive() is not None:
        pass
    assert h.browser.close_code == 1011
    assert h.ended()


def test_relay_io_browser_gone_mid_call_closes_the_router_leg(harness: t.Callable[..., Harness]) -> None:
    h = harness()
    assert h.login() is not None
    h.send([CALL, 1, {}, "app.silent", []])
    end = h.router.ends[0]
    end.expect(CALL)
    h.browser.abort(1006, "the browser tab closed")  # no close frame: the TCP connection just ends
    assert h.ended()
    assert end.ws.wait_closed(5)


def test_relay_io_shutdown_says_goodbye_both_ways_and_closes_1001(harness: t.Callable[..., Harness]) -> None:
    h = harness()
    assert h.login() is not None
    end = h.router.ends[0]
    h.session.shutdown(1001)  # what the worker calls through the socket's on_server_shutdown
    goodbye = h.receive()
    assert goodbye is not None and goodbye[0] == GOODBYE and goodbye[2] == "wamp.close.system_shutdown"
    assert end.expect(GOODBYE)[2] == "wamp.close.system_shutdown"
    assert h.receive() is None
    assert h.browser.close_code == 1001
    assert h.ended()
