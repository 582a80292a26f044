"""The Flask extension: contract and config (no network), then against a real Crossbar, in
process (Flask test client) and under real gunicorn workers with wampy and autobahn clients."""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import typing as t
import urllib.error
import urllib.request
import uuid

import pytest
from flask import Flask
from flask import current_app
from flask import g
from helpers import REPO_ROOT
from helpers import GunicornProcess

from flask_wamp_bridge import WampBridge
from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.extension import BridgeState
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.settings import DEFAULTS
from flask_wamp_bridge.testing import TEST_PEER_AUTHID
from flask_wamp_bridge.testing import TEST_PEER_SECRET
from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import TESTER_SECRET
from flask_wamp_bridge.testing import WampClient

# --- contract and config (no network) ------------------------------------------------


def _flask(name: str = __name__) -> Flask:
    """A Flask app with the SECRET_KEY the WAMP endpoint signs its tickets with."""
    app = Flask(name)
    app.config["SECRET_KEY"] = "test-extension-secret"
    return app


def _app_registrations(peer: t.Any) -> list[t.Any]:
    """The peer's registrations other than the ticket authenticator every app with an endpoint has."""
    return [r for r in peer._registrations if r.uri != DEFAULTS["WAMP_BRIDGE_AUTHENTICATOR"]]


def test_extension_init_app_sets_defaults_and_state() -> None:
    bridge = WampBridge()
    app = _flask(__name__)
    app.config["WAMP_BRIDGE_PREFIX"] = "shop"
    bridge.init_app(app)
    for key, value in DEFAULTS.items():
        if key not in ("WAMP_BRIDGE_PREFIX", "WAMP_BRIDGE_PEER_SECRET"):
            assert app.config[key] == value
    state = app.extensions["wamp_bridge"]
    assert isinstance(state, BridgeState)
    assert state.prefix == "shop."  # the dot is added
    assert not hasattr(bridge, "app")
    assert not state.has_peer  # init_app opens nothing


def test_extension_factory_pattern_and_two_apps() -> None:
    bridge = WampBridge()

    @bridge.register()
    def total(a: int, b: int) -> int:
        return a + b

    def create_app(prefix: str) -> Flask:
        app = _flask(__name__)
        app.config.update(WAMP_BRIDGE_PREFIX=prefix, WAMP_BRIDGE_PEER_SECRET="s")
        bridge.init_app(app)
        return app

    first, second = create_app("one."), create_app("two.")
    one, two = bridge.state(first), bridge.state(second)
    assert one is not two and one.app is first and two.app is second
    assert [one.uri_for(h) for h in bridge._handlers] == ["one.total"]
    assert [two.uri_for(h) for h in bridge._handlers] == ["two.total"]
    with first.app_context():
        assert bridge.state() is one
        assert bridge.peer is one.peer
    assert one.peer is not two.peer
    assert [r.uri for r in _app_registrations(one.peer)] == ["one.total"]
    # WampBridge(app) form
    third = _flask(__name__)
    assert WampBridge(third).state(third).app is third


def test_extension_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAMP_BRIDGE_PEER_SECRET", "from-env")
    app = _flask(__name__)
    WampBridge(app)
    assert app.config["WAMP_BRIDGE_PEER_SECRET"] == "from-env"
    app2 = _flask(__name__)
    app2.config["WAMP_BRIDGE_PEER_SECRET"] = "from-config"
    WampBridge(app2)
    assert app2.config["WAMP_BRIDGE_PEER_SECRET"] == "from-config"


@pytest.mark.parametrize("key,value,match", [
    ("WAMP_BRIDGE_PEER_AUTHMETHOD", "cryptosign", "wampcra"),
    ("WAMP_BRIDGE_INVOKE", "everyone", "roundrobin"),
    ("WAMP_BRIDGE_CANCEL_MODE", "nuke", "killnowait"),
    ("WAMP_BRIDGE_ROUTER_URL", "http://x", "ws://"),
    ("WAMP_BRIDGE_CALL_TIMEOUT", -1, "positive"),
    ("WAMP_BRIDGE_PEER_CONCURRENCY", 0, "positive integer"),
    ("WAMP_BRIDGE_RECONNECT_MAX", "soon", "positive number"),
    ("WAMP_BRIDGE_ALLOWED_ORIGINS", ["app.example.com"], "not an origin"),
])
def test_extension_invalid_config_raises_config_error(key: str, value: t.Any, match: str) -> None:
    app = _flask(__name__)
    app.config[key] = value
    with pytest.raises(ConfigError, match=match):
        WampBridge(app)


def test_extension_missing_secret_is_reported_when_the_peer_is_built() -> None:
    app = _flask(__name__)
    app.config["WAMP_BRIDGE_PEER_SECRET"] = None
    bridge = WampBridge()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WAMP_BRIDGE_PEER_SECRET", raising=False)
        bridge.init_app(app)
    with app.app_context(), pytest.raises(ConfigError, match="WAMP_BRIDGE_PEER_SECRET"):
        _ = bridge.peer


def test_extension_decorators_return_function_unchanged_and_view_still_works() -> None:
    bridge = WampBridge()

    def plain(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    assert bridge.register()(plain) is plain
    assert bridge.register(plain) is plain  # bare decorator form
    assert bridge.subscribe("app.topic", match="prefix")(plain) is plain
    app = _flask(__name__)
    app.config["WAMP_BRIDGE_PEER_SECRET"] = "s"
    bridge.init_app(app)
    app.add_url_rule("/sum/<int:a>/<int:b>", view_func=plain)
    assert app.test_client().get("/sum/2/3").get_json() == {"sum": 5}
    kinds = [(h.kind, bridge.state(app).uri_for(h), h.options) for h in bridge._handlers]
    assert kinds == [("register", "plain", {}), ("register", "plain", {}),
                     ("subscribe", "app.topic", {"match": "prefix"})]


def test_extension_handler_declared_after_peer_is_added_live() -> None:
    bridge = WampBridge()
    app = _flask(__name__)
    app.config.update(WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_PREFIX="late")
    bridge.init_app(app)
    peer = bridge.state(app).peer

    @bridge.register(invoke="random")
    def later() -> None:
        pass

    assert [(r.uri, r.options) for r in _app_registrations(peer)] == [("late.later", {"invoke": "random"})]


def test_extension_register_internal_records_without_building_the_peer() -> None:
    bridge = WampBridge()
    app = _flask(__name__)
    app.config["WAMP_BRIDGE_PEER_SECRET"] = None  # the peer could not even be built yet
    bridge.init_app(app)
    state = bridge.state(app)
    state.register_internal("test.internal", lambda: None)
    assert not state.has_peer
    built = _flask(__name__)
    built.config["WAMP_BRIDGE_PEER_SECRET"] = "s"
    bridge.init_app(built)
    bridge.state(built).register_internal("test.internal", lambda: None)
    other = _flask(__name__)
    other.config["WAMP_BRIDGE_PEER_SECRET"] = "s"
    bridge.init_app(other)
    # init_app recorded the ticket authenticator the same way
    assert sorted((r.uri, r.options["invoke"]) for r in bridge.state(built).peer._registrations) == [
        ("test.internal", "roundrobin"), ("wamp_bridge.authenticate", "roundrobin")]
    # internal registrations are per app
    assert [r.uri for r in bridge.state(other).peer._registrations] == ["wamp_bridge.authenticate"]


def test_extension_identity_loader_default_and_custom() -> None:
    from flask_wamp_bridge.bridge.identity import default_identity_loader

    bridge = WampBridge()
    app = _flask(__name__)
    bridge.init_app(app)
    assert bridge.state(app).identity_loader is default_identity_loader

    @bridge.identity_loader
    def load() -> str:
        return "joe"

    assert load() == "joe"
    assert bridge.state(app).identity_loader is load


def test_extension_state_of_app_without_init_app_raises() -> None:
    with _flask(__name__).app_context(), pytest.raises(ConfigError, match="init_app"):
        WampBridge().state()


def test_extension_peer_not_reused_across_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _flask(__name__)
    app.config["WAMP_BRIDGE_PEER_SECRET"] = "s"
    state = WampBridge(app).state(app)
    before = state.peer
    assert state.peer is before
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a child forked after the peer was built
    assert not state.has_peer
    assert state.peer is not before


def test_extension_starts_only_in_worker_hooks() -> None:
    """init_app imports no gevent and connects nowhere; the worker start hook starts the peer."""
    script = textwrap.dedent("""
        import json, sys
        from flask import Flask
        from flask_wamp_bridge import WampBridge
        from flask_wamp_bridge.websocket import lifecycle as _lifecycle
        app = Flask("x")
        app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_ROUTER_URL="ws://127.0.0.1:9/ws",
                          WAMP_BRIDGE_RECONNECT_INITIAL=30.0)
        bridge = WampBridge(app)
        state = app.extensions["wamp_bridge"]
        out = {"gevent_after_init": "gevent" in sys.modules, "peer_after_init": state.has_peer}
        _lifecycle.run_start_hooks()
        out["started"] = state.has_peer and state.peer.started
        _lifecycle.run_shutdown_hooks(1001)
        out["stopped"] = not state.peer.started
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"gevent_after_init": False, "peer_after_init": False,
                                         "started": True, "stopped": True}


# --- in process, against a real Crossbar --------------------------------------------------

# (The Flask test client runs views in this greenlet; the peer's reader runs in
# the gevent hub whenever a view waits for an answer.)


def in_thread(fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args, kwargs)


def gevent_wait(predicate: t.Callable[[], bool], timeout: float = 20.0) -> bool:
    import gevent

    with gevent.Timeout(timeout, False):
        while not predicate():
            gevent.sleep(0.05)
        return True
    return False


@pytest.fixture
def make_app(crossbar_router: CrossbarProcess) -> t.Iterator[t.Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(bridge: WampBridge, **config: t.Any) -> Flask:
        app = _flask(f"app{len(apps)}")
        app.config.update({k: v for k, v in (crossbar_router.settings or {}).items()
                           if k in DEFAULTS})
        app.config.update(WAMP_BRIDGE_PREFIX=f"app.ext{uuid.uuid4().hex[:8]}", **config)
        bridge.init_app(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["wamp_bridge"].stop_peer()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("upstream", ["websocket", "rawsocket"])
def test_extension_views_call_through_g_wampy_starting_the_peer_lazily(make_app: t.Callable[..., Flask],
                                                                       upstream: str) -> None:
    bridge = WampBridge()

    @bridge.register()
    def double(x: int) -> int:
        return 2 * x

    app = make_app(bridge, WAMP_BRIDGE_PEER_UPSTREAM=upstream)

    @app.route("/double/<int:x>")
    def view(x: int) -> dict[str, t.Any]:
        prefix = current_app.config["WAMP_BRIDGE_PREFIX"]
        return {"rpc": g.wampy.rpc.double(x), "call": g.wampy.call(f"{prefix}.double", x + 1)}

    state = bridge.state(app)
    assert not state.has_peer
    assert app.test_client().get("/double/4").get_json() == {"rpc": 8, "call": 10}
    assert state.peer.started and state.peer.is_connected
    with app.app_context():
        assert bridge.call(state.prefix + "double", 21) == 42
        transport = bridge.call("wamp.session.get", state.peer.session_id)["transport"]
    assert transport["channel_framing"] == upstream, transport  # WAMP_BRIDGE_PEER_UPSTREAM, as the router sees it


@pytest.mark.timeout(120)
def test_extension_callee_runs_in_app_context_with_caller_details(
    make_app: t.Callable[..., Flask], crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
) -> None:
    bridge = WampBridge()

    @bridge.register()
    def whoami(greeting: str) -> dict[str, t.Any]:
        return {"greeting": greeting, "app": current_app.name, "authid": g.wamp_details.caller_authid,
                "role": g.wamp_details.caller_authrole, "has_wampy": hasattr(g, "wampy")}

    app = make_app(bridge)
    state = bridge.state(app)
    assert state.peer.wait_ready(20)
    client = wamp_client(crossbar_router)
    got = in_thread(client.call, state.prefix + "whoami", "hi")
    assert got == {"greeting": "hi", "app": app.name, "authid": TESTER_AUTHID, "role": "backend",
                   "has_wampy": True}


@pytest.mark.timeout(120)
def test_extension_wampy_style_publish_reaches_subscribers_including_own(
    make_app: t.Callable[..., Flask], crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
) -> None:
    bridge = WampBridge()
    seen: list[t.Any] = []

    @bridge.subscribe()
    def chat(message: str | None = None) -> None:
        seen.append((message, g.wamp_details.topic))

    app = make_app(bridge)
    state = bridge.state(app)
    client = wamp_client(crossbar_router)
    remote: list[t.Any] = []
    client.subscribe(state.prefix + "chat", lambda *a, **k: remote.append(k))

    @app.route("/say/<text>")
    def say(text: str) -> str:
        g.wampy.publish(topic=state.prefix + "chat", message=text)
        return "ok"

    assert state.peer.wait_ready(20)
    assert app.test_client().get("/say/hello").status_code == 200
    assert gevent_wait(lambda: len(seen) == 1 and len(remote) == 1)
    assert seen == [("hello", state.prefix + "chat")]
    assert remote == [{"message": "hello"}]


@pytest.mark.timeout(120)
def test_extension_publish_to_authid_and_logout(
    make_app: t.Callable[..., Flask], crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
) -> None:
    bridge = WampBridge()
    app = make_app(bridge)
    topic = bridge.state(app).prefix + "private"
    tester = wamp_client(crossbar_router)
    other = wamp_client(crossbar_router, authid=TEST_PEER_AUTHID, secret=TEST_PEER_SECRET)
    got_tester: list[t.Any] = []
    got_other: list[t.Any] = []
    tester.subscribe(topic, lambda *a, **k: got_tester.append(a))
    other.subscribe(topic, lambda *a, **k: got_other.append(a))
    with app.app_context():
        bridge.publish_to(TESTER_AUTHID, topic, "for tester only")
        bridge.publish(topic, "for everyone")
        assert gevent_wait(lambda: len(got_tester) == 2 and len(got_other) == 1)
        assert sorted(got_tester) == [("for everyone",), ("for tester only",)]
        assert got_other == [("for everyone",)]

        killed = bridge.logout(TESTER_AUTHID)
        assert tester.session_id in killed and other.session_id not in killed
        assert gevent_wait(lambda: not tester.connected)
        assert other.connected


@pytest.mark.timeout(120)
def test_extension_two_apps_in_one_process_have_their_own_sessions(make_app: t.Callable[..., Flask]) -> None:
    bridge = WampBridge()

    @bridge.register()
    def name() -> str:
        return current_app.name

    first, second = make_app(bridge), make_app(bridge)
    with first.app_context():
        assert bridge.call(bridge.state().prefix + "name") == first.name
    with second.app_context():
        assert bridge.call(bridge.state().prefix + "name") == second.name
    assert bridge.state(first).peer.session_id != bridge.state(second).peer.session_id


# --- real gunicorn workers -------------------------------------------------------------


def app_env(router: CrossbarProcess, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "FLASK_WAMP_BRIDGE_ROUTER_URL": router.url,
        "FLASK_WAMP_BRIDGE_REALM": router.realm,
        "FLASK_WAMP_BRIDGE_PEER_AUTHID": TEST_PEER_AUTHID,
        "FLASK_WAMP_BRIDGE_PEER_SECRET": TEST_PEER_SECRET,
        "FLASK_WAMP_BRIDGE_PREFIX": prefix,
        **extra,
    }


def http(method: str, url: str, body: t.Any = None) -> tuple[int, t.Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_peer(server: GunicornProcess, prefix: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while http("POST", f"{server.url}/call/{prefix}.pid", {})[0] != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_extension_gunicorn_100_concurrent_requests_each_get_their_own_result(
    crossbar_router: CrossbarProcess,
) -> None:
    prefix = f"app.peertest{uuid.uuid4().hex[:8]}"
    with GunicornProcess("tests.apps.peer_app:app", env=app_env(crossbar_router, prefix)) as server:
        wait_for_peer(server, prefix)
        barrier = threading.Barrier(100)

        def one(n: int) -> tuple[int, t.Any]:
            barrier.wait(30)
            return http("GET", f"{server.url}/echo/{n}")

        with concurrent.futures.ThreadPoolExecutor(100) as pool:
            results = list(pool.map(one, range(1000, 1100)))
        assert all(status == 200 for status, _ in results), results
        mismatched = [body for _, body in results if body["got"] != body["n"]]
        assert mismatched == []
        assert sorted(body["n"] for _, body in results) == list(range(1000, 1100))
        # the requests really overlapped inside the one worker
        assert http("GET", f"{server.url}/inflight")[1]["max"] > 1
        assert server.stop() == 0


@pytest.mark.timeout(180)
def test_extension_gunicorn_two_workers_share_registration_and_both_subscribe(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
) -> None:
    prefix = f"app.peertest{uuid.uuid4().hex[:8]}"
    with GunicornProcess("tests.apps.peer_app:app", env=app_env(crossbar_router, prefix), workers=2) as server:
        workers = set(server.wait_for_workers(2))
        client = wamp_client(crossbar_router)
        deadline = time.monotonic() + 30
        pids: set[int] = set()
        while pids != workers:  # until both workers' registrations are in
            assert time.monotonic() < deadline, (pids, workers, server.log())
            try:
                pids.add(client.call(f"{prefix}.pid"))
            except ApplicationError:  # no worker registered yet
                time.sleep(0.1)
        # round-robin: consecutive calls alternate between the two workers
        answers = [client.call(f"{prefix}.pid") for _ in range(10)]
        assert set(answers) == workers
        assert all(a != b for a, b in zip(answers, answers[1:], strict=False))

        seen: "queue.Queue[int]" = queue.Queue()
        client.subscribe(f"{prefix}.news_seen", seen.put)
        client.publish(f"{prefix}.news", "to all workers")
        assert {seen.get(timeout=20), seen.get(timeout=20)} == workers
        assert server.stop() == 0


class WampyProcess:
    """The wampy client script (tests/apps/peer_wampy_client.py) in its own process."""

    def __init__(self, router: CrossbarProcess, topic: str) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "tests" / "apps" / "peer_wampy_client.py"), router.url, router.realm,
             TESTER_AUTHID, topic],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, "WAMPYSECRET": TESTER_SECRET},
        )
        self.lines: "queue.Queue[dict[str, t.Any]]" = queue.Queue()
        self.events: "queue.Queue[dict[str, t.Any]]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.next(60).get("ready"), self.stderr()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            (self.events if "event" in message else self.lines).put(message)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]

    def next(self, timeout: float = 30.0) -> dict[str, t.Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the wampy client; its log:\n{self.stderr()}") from None

    def command(self, **command: t.Any) -> dict[str, t.Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.next()

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


@pytest.mark.timeout(180)
def test_extension_gunicorn_interop_with_wampy_and_autobahn(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
) -> None:
    prefix = f"app.peertest{uuid.uuid4().hex[:8]}"
    env = app_env(crossbar_router, prefix, FLASK_WAMP_BRIDGE_CALL_TIMEOUT="2")
    with GunicornProcess("tests.apps.peer_app:app", env=env) as server:
        wait_for_peer(server, prefix)
        wampy = WampyProcess(crossbar_router, f"{prefix}.to_wampy")
        autobahn = wamp_client(crossbar_router)
        try:
            # wampy calls the app: results, caller identity, errors
            assert wampy.command(op="call", procedure=f"{prefix}.echo", args=[5]) == {"result": 5}
            assert wampy.command(op="call", procedure=f"{prefix}.whoami")["result"] == {
                "app": "tests.apps.peer_app", "caller_authid": TESTER_AUTHID, "procedure": f"{prefix}.whoami"}
            assert wampy.command(op="call", procedure=f"{prefix}.fail", args=["app"]) == {
                "error": "app.peertest.refused", "args": ["no way"], "kwargs": {"code": 7}}
            crash = wampy.command(op="call", procedure=f"{prefix}.fail", args=["crash"])
            assert crash["error"] == "wamp.error.runtime_error" and "internal detail" not in json.dumps(crash)

            # the app calls wampy's and autobahn's procedures
            assert http("POST", f"{server.url}/call/wampy_triple", {"args": [4]}) == (200, {"result": 12})
            autobahn.register(f"{prefix}.ab.concat", lambda *parts: "".join(parts))

            def refuse() -> None:
                raise ApplicationError("com.ab.refused", "nope")

            autobahn.register(f"{prefix}.ab.refuse", refuse)
            autobahn.register(f"{prefix}.ab.slow", lambda: time.sleep(5))
            assert http("POST", f"{server.url}/call/{prefix}.ab.concat", {"args": ["a", "b"]}) == (
                200, {"result": "ab"})
            assert http("POST", f"{server.url}/call/{prefix}.ab.refuse", {}) == (
                502, {"error": "com.ab.refused", "args": ["nope"], "kwargs": {}})
            assert http("POST", f"{server.url}/call/{prefix}.ab.slow", {}) == (
                504, {"timeout": "wamp.error.canceled"})
            assert http("POST", f"{server.url}/call/{prefix}.nobody", {})[1]["error"] == "wamp.error.no_such_procedure"

            # autobahn calls the app; the routed procedure is still an HTTP view
            assert autobahn.call(f"{prefix}.add", 2, 3) == {"sum": 5}
            assert http("GET", f"{server.url}/add/2/3") == (200, {"sum": 5})

            # events both ways, wampy style (message=...) included
            assert wampy.command(op="publish", topic=f"{prefix}.news", message="from wampy") == {"ok": True}
            autobahn.publish(f"{prefix}.news", "from autobahn")
            deadline = time.monotonic() + 20
            while len(http("GET", f"{server.url}/events")[1]["events"]) < 2:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            events = http("GET", f"{server.url}/events")[1]["events"]
            assert sorted(events, key=json.dumps) == sorted([
                {"args": [], "kwargs": {"message": "from wampy"}, "topic": f"{prefix}.news"},
                {"args": ["from autobahn"], "kwargs": {}, "topic": f"{prefix}.news"},
            ], key=json.dumps)
            assert http("POST", f"{server.url}/publish", {"topic": f"{prefix}.to_wampy", "message": "to wampy"}) == (
                200, {"ok": True})
            assert wampy.events.get(timeout=20) == {"event": {"args": [], "kwargs": {"message": "to wampy"}}}
        finally:
            wampy.close()
        assert server.stop() == 0
