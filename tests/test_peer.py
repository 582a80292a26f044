"""The gevent peer against a real Crossbar, with autobahn clients as independent counterparts.

The peer runs in this process's gevent hub (no monkey-patching); the autobahn
test clients run in their own threads, so blocking calls on them go through
gevent's thread pool to keep the hub (and the peer) running meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import typing as t
import uuid
from pathlib import Path

import gevent
import gevent.event
import pytest
import websocket

from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.errors import CallTimeout
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import NotConnected
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import TEST_PEER_AUTHID
from flask_wamp_bridge.testing import TEST_PEER_SECRET
from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import TESTER_SECRET
from flask_wamp_bridge.testing import WampClient
from flask_wamp_bridge.testing import free_port
from flask_wamp_bridge.testing import start_router
from flask_wamp_bridge.wamp.client_auth import WampCraAuth
from flask_wamp_bridge.wamp.peer import Peer
from flask_wamp_bridge.wamp.peer import current_details
from flask_wamp_bridge.wamp.session_events import CallResult
from flask_wamp_bridge.wamp.session_events import EventDetails
from flask_wamp_bridge.wamp.session_events import InvocationDetails

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(120)]


def in_thread(fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
    """Run a blocking (thread-based) client call without blocking the gevent hub."""
    return gevent.get_hub().threadpool.apply(fn, args, kwargs)


def wait_until(predicate: t.Callable[[], bool], timeout: float = 20.0) -> bool:
    with gevent.Timeout(timeout, False):
        while not predicate():
            gevent.sleep(0.05)
        return True
    return False


def make_peer(router: CrossbarProcess, **options: t.Any) -> Peer:
    options.setdefault("call_timeout", 10.0)
    return Peer(router.url, router.realm, WampCraAuth(TEST_PEER_AUTHID, TEST_PEER_SECRET), **options)


@pytest.fixture
def uri() -> t.Callable[[str], str]:
    """Unique URIs per test, so tests on the shared router never see each other's handlers."""
    prefix = f"test.peer.{uuid.uuid4().hex[:10]}."
    return lambda name: prefix + name


@pytest.fixture
def peer_factory(crossbar_router: CrossbarProcess) -> t.Iterator[t.Callable[..., Peer]]:
    peers: list[Peer] = []

    def factory(router: CrossbarProcess = crossbar_router, **options: t.Any) -> Peer:
        peer = make_peer(router, **options)
        peers.append(peer)
        return peer

    yield factory
    for peer in peers:
        peer.stop()


@pytest.fixture
def peer(peer_factory: t.Callable[..., Peer]) -> Peer:
    return peer_factory()


def test_peer_concurrent_calls_matched_by_request_id(peer: Peer, uri: t.Callable[[str], str]) -> None:
    def echo(n: int) -> list[int]:
        gevent.sleep(0.001 * (n % 7))  # answers come back out of order
        return [n, n * n]

    peer.register(uri("echo"), echo)
    assert peer.wait_ready(20)
    calls = [gevent.spawn(peer.call, uri("echo"), n) for n in range(500)]
    gevent.joinall(calls, raise_error=True)
    assert [c.value for c in calls] == [[n, n * n] for n in range(500)]


def test_peer_calls_autobahn_procedure_and_autobahn_calls_peer(
    peer: Peer, crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
    uri: t.Callable[[str], str],
) -> None:
    client = wamp_client(crossbar_router)
    client.register(uri("ab.mul"), lambda a, b: a * b)

    def whoami(greeting: str) -> dict[str, t.Any]:
        details = current_details()
        assert isinstance(details, InvocationDetails)
        return {"greeting": greeting, "caller": details.caller, "authid": details.caller_authid,
                "procedure": details.procedure}

    peer.register(uri("peer.whoami"), whoami)
    assert peer.wait_ready(20)
    assert peer.call(uri("ab.mul"), 6, 7) == 42
    got = in_thread(client.call, uri("peer.whoami"), "hi")
    assert got == {"greeting": "hi", "caller": client.session_id, "authid": TESTER_AUTHID,
                   "procedure": uri("peer.whoami")}


def test_peer_result_shapes(peer: Peer, uri: t.Callable[[str], str]) -> None:
    peer.register(uri("pair"), lambda: CallResult((1, 2)))
    peer.register(uri("kw"), lambda: CallResult((1,), {"x": 2}))
    peer.register(uri("none"), lambda: None)
    peer.register(uri("kwargs_in"), lambda *args, **kwargs: [list(args), kwargs])
    assert peer.wait_ready(20)
    assert peer.call(uri("pair")) == CallResult((1, 2))
    assert peer.call(uri("kw")) == CallResult((1,), {"x": 2})
    assert peer.call(uri("none")) is None
    assert peer.call(uri("kwargs_in"), 1, "a", k=[1]) == [[1, "a"], {"k": [1]}]


class OutOfStock(Exception):
    uri = "com.shop.out_of_stock"


def test_peer_errors_map_both_ways(
    peer_factory: t.Callable[..., Peer], crossbar_router: CrossbarProcess,
    wamp_client: t.Callable[..., WampClient], uri: t.Callable[[str], str], caplog: pytest.LogCaptureFixture,
) -> None:
    peer = peer_factory()

    def app_error() -> None:
        raise ApplicationError("com.shop.invalid", "bad size", size=99)

    def declared() -> None:
        raise OutOfStock("widget")

    def crash() -> None:
        raise KeyError("database password is hunter2")

    peer.register(uri("app_error"), app_error)
    peer.register(uri("declared"), declared)
    peer.register(uri("crash"), crash)
    def ab_fail() -> None:
        raise ApplicationError("com.ab.nope", 1, why="x")

    client = wamp_client(crossbar_router)
    client.register(uri("ab.fail"), ab_fail)
    assert peer.wait_ready(20)

    with pytest.raises(ApplicationError) as info:
        peer.call(uri("app_error"))
    assert (info.value.error, info.value.args, info.value.kwargs) == ("com.shop.invalid", ("bad size",), {"size": 99})
    with pytest.raises(ApplicationError) as info:
        peer.call(uri("declared"))
    assert (info.value.error, info.value.args) == ("com.shop.out_of_stock", ("widget",))
    with caplog.at_level("ERROR", logger="flask_wamp_bridge.wamp.peer"):
        with pytest.raises(ApplicationError) as info:
            in_thread(client.call, uri("crash"))
    assert info.value.error == "wamp.error.runtime_error"
    assert "hunter2" not in repr(info.value) and not info.value.kwargs  # nothing leaked
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)  # but logged
    with pytest.raises(ApplicationError) as info:
        peer.call(uri("ab.fail"))
    assert (info.value.error, info.value.args, info.value.kwargs) == ("com.ab.nope", (1,), {"why": "x"})
    with pytest.raises(ApplicationError) as info:
        peer.call(uri("nobody"))
    assert info.value.error == "wamp.error.no_such_procedure"

    debug_peer = peer_factory(debug=True)
    debug_peer.register(uri("crash.debug"), crash)
    assert debug_peer.wait_ready(20)
    with pytest.raises(ApplicationError) as info:
        peer.call(uri("crash.debug"))
    assert "hunter2" in info.value.args[0] and "KeyError" in "".join(info.value.kwargs["traceback"])


def test_peer_call_timeout_cancels_and_interrupts_callee(peer: Peer, uri: t.Callable[[str], str]) -> None:
    interrupted = gevent.event.Event()
    release = gevent.event.Event()

    def stuck() -> str:
        try:
            release.wait(60)
        except gevent.GreenletExit:
            interrupted.set()
            raise
        return "late"

    peer.register(uri("stuck"), stuck)
    assert peer.wait_ready(20)
    with pytest.raises(CallTimeout) as info:
        peer.call_with(uri("stuck"), timeout=0.3)
    assert info.value.error == "wamp.error.canceled"
    assert isinstance(info.value, ApplicationError)
    assert interrupted.wait(20)  # killnowait reached the callee as INTERRUPT
    # the session is healthy afterwards
    peer.register(uri("ok"), lambda: "ok")
    assert peer.call(uri("ok")) == "ok"


def test_peer_cancel_kill_mode_reports_canceled_to_caller(peer: Peer, uri: t.Callable[[str], str]) -> None:
    peer.register(uri("sleepy"), lambda: gevent.sleep(60))
    assert peer.wait_ready(20)
    with pytest.raises(CallTimeout):
        peer.call_with(uri("sleepy"), timeout=0.3, cancel_mode="kill")
    assert peer.call("wamp.session.count") >= 1  # still connected


def test_peer_slow_invocation_does_not_block_others_and_callee_may_call(
    peer: Peer, uri: t.Callable[[str], str]
) -> None:
    release = gevent.event.Event()
    peer.register(uri("slow"), lambda: release.wait(30) and "slow done")
    peer.register(uri("fast"), lambda n: n + 1)
    peer.register(uri("nested"), lambda n: peer.call(uri("fast"), n) * 10)
    assert peer.wait_ready(20)
    slow = gevent.spawn(peer.call_with, uri("slow"), timeout=30)
    assert [peer.call(uri("nested"), n) for n in range(5)] == [10, 20, 30, 40, 50]
    assert not slow.ready()
    release.set()
    assert slow.get(timeout=20) == "slow done"


def test_peer_concurrency_is_bounded(peer_factory: t.Callable[..., Peer], uri: t.Callable[[str], str]) -> None:
    peer = peer_factory(concurrency=3)
    running = {"now": 0, "max": 0}
    release = gevent.event.Event()

    def work(n: int) -> int:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        try:
            release.wait(30)
        finally:
            running["now"] -= 1
        return n

    peer.register(uri("work"), work)
    assert peer.wait_ready(20)
    # caller greenlets do not count against the handler pool
    calls = [gevent.spawn(peer.call_with, uri("work"), [n], timeout=30) for n in range(10)]
    assert wait_until(lambda: running["now"] == 3)
    gevent.sleep(0.2)
    assert running["now"] == 3
    release.set()
    gevent.joinall(calls, raise_error=True)
    assert [c.value for c in calls] == list(range(10))
    assert running["max"] == 3


def test_peer_backlog_overflow_refuses_invocations(
    peer_factory: t.Callable[..., Peer], uri: t.Callable[[str], str]
) -> None:
    callee = peer_factory(concurrency=1, backlog=1)
    started = gevent.event.Event()
    release = gevent.event.Event()

    def hold(n: int) -> int:
        started.set()
        release.wait(30)
        return n

    callee.register(uri("hold"), hold)
    assert callee.wait_ready(20)
    caller = peer_factory()
    first = gevent.spawn(caller.call_with, uri("hold"), [1], timeout=30)
    assert started.wait(20)
    second = gevent.spawn(caller.call_with, uri("hold"), [2], timeout=30)  # waits in the backlog
    gevent.sleep(0)  # let it send its CALL before the next one
    with pytest.raises(ApplicationError) as info:
        caller.call_with(uri("hold"), [3], timeout=30)  # nowhere to go
    assert info.value.error == "wamp.error.unavailable"
    release.set()
    assert (first.get(timeout=20), second.get(timeout=20)) == (1, 2)


def test_peer_killed_caller_cancels_its_call(peer: Peer, uri: t.Callable[[str], str]) -> None:
    started = gevent.event.Event()
    interrupted = gevent.event.Event()

    def stuck() -> None:
        started.set()
        try:
            gevent.sleep(60)
        except gevent.GreenletExit:
            interrupted.set()
            raise

    peer.register(uri("stuck"), stuck)
    assert peer.wait_ready(20)
    caller = gevent.spawn(peer.call_with, uri("stuck"), timeout=60)
    assert started.wait(20)
    caller.kill()  # e.g. the HTTP request's greenlet ended
    assert interrupted.wait(20)


def test_peer_progressive_results_both_ways(
    peer: Peer, crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
    uri: t.Callable[[str], str],
) -> None:
    def countdown(n: int) -> str:
        details = current_details()
        assert isinstance(details, InvocationDetails)
        if details.progress is not None:
            for i in range(n, 0, -1):
                details.progress(i)
        return "liftoff"

    peer.register(uri("countdown"), countdown)
    assert peer.wait_ready(20)
    assert list(peer.stream(uri("countdown"), 3)) == [3, 2, 1, "liftoff"]
    seen: list[int] = []
    assert peer.call_with(uri("countdown"), [2], on_progress=seen.append) == "liftoff"
    assert seen == [2, 1]
    assert peer.call(uri("countdown"), 5) == "liftoff"  # no progress asked: only the result

    # progressive results from an autobahn callee
    client = wamp_client(crossbar_router)

    def ab_stream(n: int, details: t.Any = None) -> str:
        for i in range(n):
            details.progress(i)
        return "end"

    client.register(uri("ab.stream"), ab_stream, details=True)
    assert list(peer.stream(uri("ab.stream"), 3)) == [0, 1, 2, "end"]


def test_peer_publish_and_subscribe_with_autobahn(
    peer: Peer, crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
    uri: t.Callable[[str], str],
) -> None:
    events: list[tuple[t.Any, ...]] = []

    def on_event(*args: t.Any, **kwargs: t.Any) -> None:
        details = current_details()
        assert isinstance(details, EventDetails)
        events.append((args, kwargs, details.topic, details.publisher_authid))

    peer.subscribe(uri("news"), on_event)
    peer.subscribe(uri("prefixed."), on_event, match="prefix")
    assert peer.wait_ready(20)
    client = wamp_client(crossbar_router)
    in_thread(client.publish, uri("news"), "hello", n=1)
    in_thread(client.publish, uri("prefixed.deep.topic"), 2)
    assert wait_until(lambda: len(events) == 2)
    assert sorted(events, key=repr) == sorted([
        (("hello",), {"n": 1}, uri("news"), TESTER_AUTHID),
        ((2,), {}, uri("prefixed.deep.topic"), TESTER_AUTHID),
    ], key=repr)

    received: list[t.Any] = []
    client.subscribe(uri("from_peer"), lambda *a, **k: received.append((a, k)))
    peer.publish(uri("from_peer"), 1, 2, x=3)
    assert peer.publish_with(uri("from_peer"), ["acked"], acknowledge=True) > 0
    assert wait_until(lambda: len(received) == 2)
    assert received == [((1, 2), {"x": 3}), (("acked",), {})]
    # the publisher's own subscription gets its events too (exclude_me is off)
    peer.publish(uri("news"), "self")
    assert wait_until(lambda: len(events) == 3)


def test_peer_unregister_and_unsubscribe(peer: Peer, uri: t.Callable[[str], str]) -> None:
    reg = peer.register(uri("temp"), lambda: 1)
    hits: list[int] = []
    sub = peer.subscribe(uri("temp.topic"), lambda: hits.append(1))
    assert peer.wait_ready(20)
    assert peer.call(uri("temp")) == 1
    reg.unregister()
    sub.unsubscribe()
    with pytest.raises(ApplicationError) as info:
        peer.call(uri("temp"))
    assert info.value.error == "wamp.error.no_such_procedure"
    peer.publish_with(uri("temp.topic"), acknowledge=True)
    peer.register(uri("probe"), lambda: 2)  # a round trip after the publish
    assert peer.call(uri("probe")) == 2
    assert hits == []


def test_peer_register_refused_raises(
    peer_factory: t.Callable[..., Peer], uri: t.Callable[[str], str]
) -> None:
    first = peer_factory(invoke="single")
    first.register(uri("solo"), lambda: 1)
    assert first.wait_ready(20)
    second = peer_factory(invoke="single")
    assert second.wait_ready(20)
    with pytest.raises(ApplicationError) as info:
        second.register(uri("solo"), lambda: 2)
    assert info.value.error == "wamp.error.procedure_already_exists"


def test_peer_wrong_secret_fails_fast_with_not_connected(crossbar_router: CrossbarProcess) -> None:
    peer = Peer(crossbar_router.url, crossbar_router.realm, WampCraAuth(TEST_PEER_AUTHID, "wrong"),
                connect_timeout=10)
    try:
        with pytest.raises(NotConnected, match="WAMP_BRIDGE_ROUTER_URL"):
            peer.call("wamp.session.count")
        assert not peer.is_connected
    finally:
        peer.stop()


def test_peer_stop_says_goodbye(
    peer: Peer, crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient]
) -> None:
    assert peer.wait_ready(20)
    session_id = peer.session_id
    client = wamp_client(crossbar_router)
    assert session_id in in_thread(client.call, "wamp.session.list")
    leaves: list[t.Any] = []
    client.subscribe("wamp.session.on_leave", lambda *args: leaves.append(args))
    peer.stop()
    assert wait_until(lambda: any(session_id in args for args in leaves))
    with pytest.raises(NotConnected):
        peer.call("wamp.session.count")


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
def test_peer_reconnects_after_router_restart(
    peer_factory: t.Callable[..., Peer], fresh_crossbar_router: CrossbarProcess,
    uri: t.Callable[[str], str], kind: str,
) -> None:
    router = fresh_crossbar_router
    peer = peer_factory(router, reconnect_initial=0.2, reconnect_max=1.0, call_timeout=60, upstream=kind)
    release = gevent.event.Event()
    peer.register(uri("add"), lambda a, b: a + b)
    peer.register(uri("hang"), lambda: release.wait(120))
    events: list[t.Any] = []
    peer.subscribe(uri("evt"), events.append)
    assert peer.wait_ready(20)
    first_session = peer.session_id
    pending = gevent.spawn(peer.call, uri("hang"))
    gevent.sleep(0.2)

    # kill -9: no GOODBYE, the transport just drops (Crossbar runs in its own process group)
    assert router.pid is not None
    os.killpg(router.pid, signal.SIGKILL)
    # the pending call fails (it never hangs) and new calls fail fast, not after call_timeout
    with pytest.raises(ConnectionClosed):
        pending.get(timeout=20)
    with pytest.raises(NotConnected):
        peer.call(uri("add"), 1, 2)

    in_thread(router.stop)  # reaps the killed node
    in_thread(router.start, 90)
    assert peer.wait_ready(30)
    assert peer.session_id != first_session
    assert peer.call(uri("add"), 1, 2) == 3  # re-registered by itself
    peer.publish(uri("evt"), "back")  # re-subscribed by itself
    assert wait_until(lambda: events == ["back"])
    release.set()


def nested(depth: int) -> t.Any:
    value: t.Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("kind", ["rawsocket", "websocket"])
def test_peer_survives_payloads_past_its_bounds(
    peer_factory: t.Callable[..., Peer], crossbar_router: CrossbarProcess,
    wamp_client: t.Callable[..., WampClient], uri: t.Callable[[str], str], kind: str,
) -> None:
    """A payload the peer cannot take ends only its invocation, event or call: the session stays."""
    peer = peer_factory(upstream=kind)
    events: list[t.Any] = []
    peer.register(uri("echo"), lambda value: value)
    peer.subscribe(uri("news"), lambda value: events.append(value))
    assert peer.wait_ready(20)
    session_id = peer.session_id
    client = wamp_client(crossbar_router)
    client.register(uri("deep"), lambda: nested(200))

    with pytest.raises(ApplicationError) as refused:  # an INVOCATION past the bounds: ERROR for it alone
        in_thread(client.call, uri("echo"), nested(200))
    assert refused.value.error == "wamp.error.invalid_argument"
    in_thread(client.publish, uri("news"), nested(200))  # an EVENT past the bounds: dropped
    with pytest.raises(ApplicationError) as failed:  # a RESULT past the bounds: that call fails
        peer.call(uri("deep"))
    assert failed.value.error == "wamp.error.invalid_argument"
    if kind == "websocket":  # JSON: a value no serializer should build reaches the peer, refused alike
        with pytest.raises(ApplicationError) as bignum:
            in_thread(client.call, uri("echo"), 2**70)
        assert bignum.value.error == "wamp.error.invalid_argument"
    else:  # msgpack cannot carry it: Crossbar drops the INVOCATION, the caller's own timeout ends the call
        with pytest.raises(CallTimeout):
            in_thread(client.call, uri("echo"), 2**70, timeout=2)

    assert in_thread(client.call, uri("echo"), nested(10)) == nested(10)
    in_thread(client.publish, uri("news"), "fine")
    assert wait_until(lambda: events == ["fine"])
    assert peer.session_id == session_id and peer.is_connected


def raw_tester(router: CrossbarProcess) -> websocket.WebSocket:
    """A raw JSON WAMP session on the router as the test service: it sends frames no WAMP library would."""
    ws = websocket.create_connection(router.url, subprotocols=["wamp.2.json"], timeout=15)
    ws.send(json.dumps([1, router.realm, {"roles": {"caller": {}, "publisher": {}}, "authmethods": ["wampcra"],
                                          "authid": TESTER_AUTHID}]))
    challenge = json.loads(ws.recv())
    signature = WampCraAuth(TESTER_AUTHID, TESTER_SECRET).respond(challenge[1], challenge[2])
    ws.send(json.dumps([5, signature, {}]))
    assert json.loads(ws.recv())[0] == 2
    return ws


def test_the_test_client_survives_payloads_past_its_bounds(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient], uri: t.Callable[[str], str],
) -> None:
    client = wamp_client(crossbar_router)
    events: list[t.Any] = []
    client.register(uri("echo"), lambda value: value)
    client.subscribe(uri("news"), lambda value: events.append(value))
    session_id = client.session_id
    raw = raw_tester(crossbar_router)
    try:
        deep = "[" * 3000 + "]" * 3000
        raw.send(f'[48,1,{{}},"{uri("echo")}",[{deep}]]')  # past the bounds: ERROR for that invocation alone
        assert json.loads(raw.recv())[:5] == [8, 48, 1, {}, "wamp.error.invalid_argument"]
        raw.send(f'[16,2,{{}},"{uri("news")}",[{deep}]]')  # an EVENT past the bounds: dropped
        raw.send(f'[48,5,{{}},"{uri("echo")}",[{2**70}]]')  # beyond 64 bits: ERROR for that invocation alone
        assert json.loads(raw.recv())[:5] == [8, 48, 5, {}, "wamp.error.invalid_argument"]
        raw.send(f'[16,3,{{}},"{uri("news")}",["fine"]]')
        raw.send(f'[48,4,{{}},"{uri("echo")}",[[1,[2]]]]')
        result = json.loads(raw.recv())
        assert result[:2] == [50, 4] and result[3] == [[1, [2]]]
    finally:
        raw.close()
    assert wait_until(lambda: events == ["fine"])
    assert client.connected and client.session_id == session_id


# -- the upstream: WebSocket (the default), or RawSocket on a Unix socket or TCP ------------------------------


@pytest.fixture(scope="module")
def rawsocket_router() -> t.Iterator[CrossbarProcess]:
    """A router of its own (free to stall) with RawSocket on a Unix socket and on TCP."""
    cbdir = Path(tempfile.mkdtemp(prefix="rs"))  # short: a Unix socket path holds at most 107 bytes
    router = start_router(cbdir, WAMP_BRIDGE_RAWSOCKET_PATH=str(cbdir / "router.sock"),
                          WAMP_BRIDGE_RAWSOCKET_PORT=free_port())
    try:
        yield router
    finally:
        router.stop()
        shutil.rmtree(cbdir, ignore_errors=True)


def upstream(router: CrossbarProcess, kind: str) -> dict[str, t.Any]:
    """The peer's options for reaching ``router`` by ``kind``: unix, tcp or websocket."""
    assert router.settings is not None
    if kind == "unix":
        return {"upstream": "rawsocket", "rawsocket_path": router.settings["WAMP_BRIDGE_RAWSOCKET_PATH"]}
    if kind == "tcp":
        return {"upstream": "rawsocket", "rawsocket_port": router.settings["WAMP_BRIDGE_RAWSOCKET_PORT"]}
    return {"upstream": "websocket"}


UPSTREAM_KINDS = ["unix", "tcp", "websocket"]


@pytest.mark.parametrize("kind", UPSTREAM_KINDS)
def test_peer_reaches_the_router_over_its_upstream(
    peer_factory: t.Callable[..., Peer], rawsocket_router: CrossbarProcess, uri: t.Callable[[str], str], kind: str,
) -> None:
    peer = peer_factory(rawsocket_router, **upstream(rawsocket_router, kind))
    events: list[t.Any] = []
    peer.register(uri("add"), lambda a, b: a + b)
    peer.subscribe(uri("evt"), events.append)
    assert peer.wait_ready(20)
    assert peer.call(uri("add"), 2, 3) == 5
    peer.publish(uri("evt"), "news")
    assert wait_until(lambda: events == ["news"])
    transport = peer.call("wamp.session.get", peer.session_id)["transport"]  # as the router sees the peer
    if kind == "websocket":
        assert transport["channel_framing"] == "websocket", transport
        return
    assert transport["channel_framing"] == "rawsocket", transport
    assert transport["channel_serializer"] == "msgpack", transport
    expected_peer = "unix" if kind == "unix" else "tcp4:127.0.0.1:"
    assert transport["peer"].startswith(expected_peer), transport


@pytest.mark.parametrize("kind", UPSTREAM_KINDS)
def test_peer_notices_a_stalled_router(
    peer_factory: t.Callable[..., Peer], rawsocket_router: CrossbarProcess, uri: t.Callable[[str], str], kind: str,
) -> None:
    """A stalled router keeps its sockets open: a ping (WebSocket) or a probe CALL (RawSocket) goes unanswered."""
    peer = peer_factory(rawsocket_router, ping_interval=1.0, ping_timeout=1.0, call_timeout=120,
                        reconnect_initial=0.2, reconnect_max=1.0, **upstream(rawsocket_router, kind))
    release = gevent.event.Event()
    peer.register(uri("hang"), lambda: release.wait(120))
    assert peer.wait_ready(20)
    pending = gevent.spawn(peer.call, uri("hang"))
    gevent.sleep(0.2)
    assert rawsocket_router.pid is not None
    os.killpg(rawsocket_router.pid, signal.SIGSTOP)
    try:
        with pytest.raises(ConnectionClosed):  # not after call_timeout: once the router is taken as lost
            pending.get(timeout=30)
    finally:
        os.killpg(rawsocket_router.pid, signal.SIGCONT)
        release.set()
    assert peer.wait_ready(30)  # and back when the router is


def test_peer_fails_over_to_the_next_router_url(crossbar_router: CrossbarProcess) -> None:
    """Over RawSocket each URL's node is its host and port + 1: a dead first node, the peer joins the second."""
    with socket.socket() as bound:  # bound, never listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{bound.getsockname()[1] - 1}/ws"
        peer = Peer([dead, crossbar_router.url], crossbar_router.realm,
                    WampCraAuth(TEST_PEER_AUTHID, TEST_PEER_SECRET), reconnect_initial=0.1, upstream="rawsocket")
        try:
            assert peer.wait_ready(20)
            assert peer.url == crossbar_router.url
            assert peer.call("wamp.session.get", peer.session_id)["transport"]["channel_framing"] == "rawsocket"
        finally:
            peer.stop()
