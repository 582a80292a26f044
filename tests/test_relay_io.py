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
from flask_wamp_bridge.bridge.relay_events import State
from flask_wamp_bridge.wamp.messages import serializer_for

pytestmark = pytest.mark.timeout(60)

SUBPROTOCOL = "wamp.2.json"
SERIALIZER = serializer_for(SUBPROTOCOL)
LOGIN_TIMEOUT = 3600.0  # deadlines fire only when a test ticks the clock itself


class Harness:
    """One RelaySession between a test browser and a scripted router, each on a socket pair."""

    def __init__(self, *, login: bool = True, refuse: int = 0, connect: t.Any = None,
                 **session_options: t.Any) -> None:
        authenticator = ScriptedRouter(SERIALIZER, clock=time.time)
        self.router = PairRouter(login=authenticator.answer if login else (lambda frame: []), refuse=refuse,
                                 answers={"app.ping": "pong"})
        self.browser, server_side = socket_pair(self.router.pairs, SUBPROTOCOL)
        self.start = time.monotonic()  # the relay's clock (tickets alone use wall-clock time)
        self.relay = Relay(Identity("alice", "user"), REALM, SERIALIZER,
                           lambda identity, peer: tickets.sign(identity, SECRET, time.time(), realm=REALM),
                           self.start, login_timeout=LOGIN_TIMEOUT)
        self.session = relay_io.RelaySession(server_side, self.relay, "ws://scripted.invalid/ws", SUBPROTOCOL,
                                             connect=connect or self.router.connect, close_timeout=1.0,
                                             **session_options)
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


def test_relay_io_a_vanished_browser_ends_the_router_session_with_goodbye_first(
        harness: t.Callable[..., Harness]) -> None:
    h = harness()
    assert h.login() is not None
    end = h.router.ends[0]
    h.browser.abort(1006, "the browser tab closed")  # no close frame, no GOODBYE
    assert end.expect(GOODBYE)[2] == "wamp.close.normal"  # before the transport closes
    assert h.ended()
    assert end.ws.wait_closed(5) and end.ws.close_code == 1000


def test_relay_io_a_router_that_never_answers_goodbye_is_closed_after_the_bound(
        harness: t.Callable[..., Harness]) -> None:
    h = harness(router_goodbye_timeout=0.3)
    assert h.login() is not None
    end = h.router.ends[0]
    end.greenlet.kill()  # the router reads nothing more: no GOODBYE reply will come
    h.browser.abort(1006, "the browser tab closed")
    assert h.ended()  # all the same (ended() gives up after 10 s: an unbounded wait would hang here)


def test_relay_io_out_of_descriptors_at_connect_says_so_and_aborts_1013(
        harness: t.Callable[..., Harness], caplog: pytest.LogCaptureFixture) -> None:
    import errno

    from flask_wamp_bridge.errors import ConnectError

    def connect(url: str, **options: t.Any) -> t.NoReturn:
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError as exc:
            raise ConnectError(f"could not connect to {url}: {exc}") from exc

    relay_io._warned.clear()
    h = harness(connect=connect)
    with caplog.at_level("WARNING", logger="flask_wamp_bridge.bridge.relay_io"):
        abort = h.login()
        assert abort is not None and abort[0] == ABORT and abort[2] == "wamp_bridge.error.router_unavailable"
        assert abort[1]["message"] == "the server is at its connection limit; try again later"
        assert h.receive() is None
    assert h.browser.close_code == 1013
    assert "out of file descriptors" in caplog.text and "ulimit -n" in caplog.text
    assert "WAMP_BRIDGE_ROUTER_URL" not in caplog.text  # not a router problem


def test_relay_io_the_pong_wait_follows_the_measured_round_trip(harness: t.Callable[..., Harness]) -> None:
    fast = harness(ping_timeout=3.0)
    assert fast.login() is not None
    assert fast.session.pong_wait() == 3.0  # a fast link: the configured timeout

    def slow_connect(url: str, **options: t.Any) -> t.Any:
        gevent.sleep(2.4)  # a link with a 1.2 s round trip: TCP and HTTP handshakes take two
        return slow.router.connect(url, **options)

    slow = harness(ping_timeout=3.0, connect=slow_connect)
    assert slow.login() is not None
    assert slow.session.pong_wait() >= 3.5  # 3 round trips: a slow link is not taken for a dead one
