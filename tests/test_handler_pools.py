"""The ticket authenticator's own handler pool: logins and the app's procedures never queue behind each other.

A real Crossbar calls the peer's (slow) dynamic authenticator for raw ticket
logins while another peer calls an app procedure of the same peer. The peer
runs in this process's gevent hub. Times are printed side by side (shared pool
and own pool, one run), never asserted; what is asserted is the order: with its
own pool an app call is answered while the logins still wait, and the other way
round.
"""

from __future__ import annotations

import json
import time
import typing as t
from pathlib import Path

import gevent
import gevent.event
import pytest
from test_peer import make_peer

from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import start_router
from flask_wamp_bridge.websocket.client import connect

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

LOGINS = 48
AUTH_SECONDS = 0.5
SLOTS = 12  # app handlers and authenticator handlers per peer


@pytest.fixture
def router(tmp_path: Path) -> t.Iterator[CrossbarProcess]:
    router = start_router(tmp_path / "crossbar")
    try:
        yield router
    finally:
        router.stop()


def ticket_login(router: CrossbarProcess, n: int, welcomed: list[float]) -> None:
    ws = connect(router.url, subprotocols=["wamp.2.json"], timeout=60)
    try:
        ws.send(json.dumps([1, router.realm, {"roles": {"caller": {}}, "authmethods": ["ticket"],
                                              "authid": f"user{n}"}]))
        assert json.loads(t.cast(str, ws.receive()))[0] == 4  # CHALLENGE
        ws.send(json.dumps([5, "any-ticket", {}]))
        reply = json.loads(t.cast(str, ws.receive()))
        assert reply[0] == 2, reply  # WELCOME
        welcomed.append(time.monotonic())
    finally:
        ws.close()


def storm(router: CrossbarProcess, own_pool: bool, slow_app: bool) -> dict[str, t.Any]:
    """``LOGINS`` logins against a slow authenticator (or app calls against a slow procedure) and probes."""
    worker = make_peer(router, concurrency=SLOTS)
    caller = make_peer(router)
    try:
        def authenticate(realm: str, authid: str, details: t.Any) -> dict[str, t.Any]:
            gevent.sleep(AUTH_SECONDS)
            return {"role": "user", "authid": authid}

        pool = worker.pool("authenticator handlers", SLOTS, 1000) if own_pool else None
        worker.register("wamp_bridge.authenticate", authenticate, pool=pool)
        worker.register("app.echo", lambda value: value)
        worker.register("app.slow", lambda: gevent.sleep(AUTH_SECONDS))
        assert worker.wait_ready(20) and caller.wait_ready(20)
        welcomed: list[float] = []
        started = time.monotonic()
        if slow_app:
            load = [gevent.spawn(caller.call, "app.slow") for _ in range(LOGINS)]
        else:
            load = [gevent.spawn(ticket_login, router, n, welcomed) for n in range(LOGINS)]
        gevent.sleep(0.2)  # the load is queued
        if slow_app:
            login_started = time.monotonic()
            ticket_login(router, LOGINS, welcomed)
            probe = welcomed[-1] - login_started
            pending = sum(1 for job in load if not job.ready())
        else:
            probe_started = time.monotonic()
            assert caller.call("app.echo", 1) == 1
            probe = time.monotonic() - probe_started
            pending = LOGINS - len(welcomed)
        gevent.joinall(load, raise_error=True, timeout=60)
        return {"probe": probe, "pending": pending, "all": time.monotonic() - started}
    finally:
        caller.stop()
        worker.stop()


def test_logins_never_queue_app_calls_and_app_calls_never_starve_logins(router: CrossbarProcess) -> None:
    shared = storm(router, own_pool=False, slow_app=False)
    own = storm(router, own_pool=True, slow_app=False)
    own_reverse = storm(router, own_pool=True, slow_app=True)
    print(f"\n{LOGINS} logins, authenticator {AUTH_SECONDS} s, {SLOTS} slots: an app call took "
          f"{shared['probe'] * 1000:.0f} ms with a shared pool, {own['probe'] * 1000:.0f} ms with its own pool; "
          f"a login behind {LOGINS} slow app calls took {own_reverse['probe'] * 1000:.0f} ms")
    assert own["pending"] > 0  # answered while logins still waited for the authenticator
    assert own_reverse["pending"] > 0  # a login got through while app calls still waited


def test_the_extension_gives_the_authenticator_its_own_pool_and_the_app_procedures_the_peer_s() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge

    bridge = WampBridge()

    @bridge.register("app.echo")
    def echo(value: t.Any) -> t.Any:
        return value

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_AUTH_CONCURRENCY=3,
                      WAMP_BRIDGE_AUTH_BACKLOG=7)
    bridge.init_app(app)
    peer = app.extensions["wamp_bridge"].peer  # built, not started: nothing connects
    pools = {reg.uri: reg.pool for reg in peer.handles()}
    login_pool = pools["wamp_bridge.authenticate"]
    assert login_pool is not None and (login_pool.concurrency, login_pool.backlog) == (3, 7)
    assert login_pool is not peer.handlers
    assert pools["app.echo"] is None  # the peer's own pool


def test_a_burst_of_decisions_waits_only_behind_answers_given_at_once_never_behind_the_app_s_function() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge

    bridge = WampBridge()
    release = gevent.event.Event()

    @bridge.authorizer
    def authorize(caller: t.Any, uri: str, action: str) -> bool:
        release.wait(10)
        return True

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_AUTHORIZER="wamp_bridge.authorize",
                      WAMP_BRIDGE_AUTHORIZER_CONCURRENCY=1)
    bridge.init_app(app)
    state = app.extensions["wamp_bridge"]
    pool = {reg.uri: reg.pool for reg in state.peer.handles()}["wamp_bridge.authorize"]
    assert pool is not None and pool is not state.peer.handlers
    alice = {"authid": "alice", "authrole": "user", "session": 1}
    answers: list[tuple[str, bool]] = []

    def decide(name: str, session: t.Any, uri: str) -> None:  # what the peer runs for the router's INVOCATION
        answers.append((name, state.authorizer.decide(session, uri, "subscribe").allow))

    assert pool.submit(decide, "asks the app", alice, "team.a")  # no static rule: the app's function decides
    gevent.sleep(0)  # running, waiting on the app's function
    for n in range(20):  # a page's burst that the static rules answer at once
        assert pool.submit(decide, f"at once {n}", alice, f"app.b{n}")
    assert pool.submit(decide, "past the concurrency", alice, "team.c")
    gevent.sleep(0.05)
    assert len(answers) == 21 and ("past the concurrency", False) in answers  # denied at once, not queued
    assert ("asks the app", True) not in answers
    assert all(allow for name, allow in answers if name.startswith("at once"))
    release.set()
    gevent.sleep(0.05)
    assert answers[-1] == ("asks the app", True)


def test_the_pages_meta_calls_and_the_election_proofs_never_wait_behind_the_app_s_procedures() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge
    from flask_wamp_bridge.component.schedule import Job
    from flask_wamp_bridge.component.schedule import Scheduler
    from flask_wamp_bridge.wamp.handler_pool import HandlerPool
    from flask_wamp_bridge.wamp.meta_api import BROWSER_META_CALLS

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_PRESENCE_TOPICS=["app.room."])
    WampBridge(app)
    peer = app.extensions["wamp_bridge"].peer
    pools = {reg.uri: reg.pool for reg in peer.handles()}
    meta = {pools[uri] for uri in BROWSER_META_CALLS.values()}
    assert len(meta) == 1 and None not in meta and peer.handlers not in meta

    registered: list[dict[str, t.Any]] = []

    class ScriptedPeer:
        is_connected = True

        def register(self, uri: str, fn: t.Any, **options: t.Any) -> t.Any:
            registered.append(options)
            raise RuntimeError("enough")

    pool = HandlerPool(1, 1, "election handlers")
    job = Job("tick", 1.0, lambda: None)
    scheduler = Scheduler(t.cast(t.Any, ScriptedPeer()), t.cast(t.Any, None), [job], "", pool=pool)
    with pytest.raises(RuntimeError, match="enough"):
        scheduler._elect(job)
    assert registered[0]["pool"] is pool
