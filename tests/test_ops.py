"""Operators' endpoints end to end: Prometheus metrics summed over two real gunicorn workers, and the health check."""

from __future__ import annotations

import json
import os
import signal
import typing as t
import urllib.error
import urllib.request

import pytest
import websocket
from helpers import GunicornProcess
from helpers import wait_until

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

APP = "tests.apps.endpoint_app:app"


def _server(router: t.Any, workers: int) -> GunicornProcess:
    env = {f"FLASK_{key}": value if isinstance(value, str) else json.dumps(value)
           for key, value in router.settings.items()}
    env.update(FLASK_WAMP_BRIDGE_METRICS_PATH="/metrics", FLASK_WAMP_BRIDGE_HEALTH_PATH="/healthz")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return GunicornProcess(APP, env=env, workers=workers).start()


def scrape(server: GunicornProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(server: GunicornProcess, name: str, **labels: str) -> float:
    return scrape(server).get((name, tuple(sorted(labels.items()))), 0.0)


def health(server: GunicornProcess) -> tuple[int, t.Any]:
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def session(server: GunicornProcess) -> websocket.WebSocket:
    """An anonymous raw JSON WAMP session through /wamp (welcomed)."""
    ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                     timeout=10)
    ws.send(json.dumps([1, "realm1", {"roles": {"caller": {"features": {}}}}]))
    assert json.loads(ws.recv())[0] == 2
    return ws


def owner(server: GunicornProcess, ws: websocket.WebSocket) -> int:
    """The worker whose socket is the server end of ``ws`` (by socket inode, from /proc)."""
    client_port = ws.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server.port and int(remote.split(":")[1], 16) == client_port:
                inode = fields[9]
    assert inode is not None
    for pid in server.worker_pids():
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the socket")


def test_metrics_are_summed_over_workers_and_forget_a_killed_one(fresh_crossbar_router: t.Any) -> None:
    server = _server(fresh_crossbar_router, workers=2)
    sockets: list[websocket.WebSocket] = []
    try:
        wait_until(lambda: value(server, "wamp_bridge_peer_joined") == 2, timeout=60)
        assert value(server, "wamp_bridge_workers") == 2
        assert value(server, "wamp_bridge_router_up") == 1
        status, body = health(server)
        assert status == 200 and body["status"] == "ok" and body["peer"] == "joined"

        by_worker: dict[int, list[websocket.WebSocket]] = {}
        while len(by_worker) < 2 or len(sockets) < 4:  # sessions on both workers
            assert len(sockets) < 40, "every session went to one worker"
            ws = session(server)
            sockets.append(ws)
            by_worker.setdefault(owner(server, ws), []).append(ws)
        wait_until(lambda: value(server, "wamp_bridge_sessions", role="anonymous") == len(sockets))
        assert value(server, "wamp_bridge_logins_total", outcome="welcomed", reason="") == len(sockets)

        ws = sockets[0]
        ws.send(json.dumps([48, 1, {}, "app.public.whoami"]))
        assert json.loads(ws.recv())[0] == 50
        ws.send(json.dumps([48, 2, {}, "not a uri!"]))
        assert json.loads(ws.recv())[4] == "wamp.error.invalid_uri"
        wait_until(lambda: value(server, "wamp_bridge_refused_total", type="CALL", rule="wamp.error.invalid_uri") == 1)
        assert value(server, "wamp_bridge_call_seconds_count", outcome="result") == 1
        wait_until(lambda: value(server, "wamp_bridge_messages_total", direction="from_browser") >= len(sockets) + 2)
        assert value(server, "wamp_bridge_bytes_total", direction="from_router") > 0

        refused = websocket.create_connection(server.ws_url("/wamp"), origin=server.url,
                                              subprotocols=["wamp.2.json"], timeout=10)
        refused.send(json.dumps([1, "not-the-realm", {"roles": {"caller": {}}}]))
        assert json.loads(refused.recv())[0] == 3  # ABORT
        refused.close()
        wait_until(lambda: sum(v for (name, labels), v in scrape(server).items()
                               if name == "wamp_bridge_logins_total" and ("outcome", "refused") in labels) == 1)

        victim, doomed = next((pid, held) for pid, held in by_worker.items())
        os.kill(victim, signal.SIGKILL)
        server.wait_for_workers(2, exclude=[victim])
        alive = len(sockets) - len(doomed)
        wait_until(lambda: value(server, "wamp_bridge_workers") == 2
                   and value(server, "wamp_bridge_sessions", role="anonymous") == alive, timeout=60)
        assert value(server, "wamp_bridge_logins_total", outcome="welcomed", reason="") == len(sockets)

        fresh_crossbar_router.stop()
        wait_until(lambda: health(server)[0] == 503, timeout=30)
        assert health(server)[1]["peer"] == "not joined"
        wait_until(lambda: value(server, "wamp_bridge_router_up") == 0)
    finally:
        for ws in sockets:
            ws.close()
        server.stop()
    assert "Traceback" not in server.log()


def test_metrics_answer_only_allowed_addresses() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge
    from flask_wamp_bridge import metrics_sink

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_METRICS_PATH="/metrics",
                      WAMP_BRIDGE_METRICS_ALLOW=["10.0.0.0/8"], WAMP_BRIDGE_HEALTH_PATH="/healthz")
    WampBridge(app)
    client = app.test_client()
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 is not in the list
    try:
        response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    finally:
        metrics_sink.install(None)  # the scrape installed the Prometheus sink in this process
    assert response.status_code == 200 and b"wamp_bridge_sessions" in response.data
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["peer"] == "not started"


def test_secret_key_missing_at_init_app_names_the_order() -> None:
    from flask import Flask

    from flask_wamp_bridge import ConfigError
    from flask_wamp_bridge import WampBridge

    app = Flask(__name__)
    app.config.update(WAMP_BRIDGE_PEER_SECRET="s")
    with pytest.raises(ConfigError, match="set SECRET_KEY .* before calling init_app, not after it"):
        WampBridge(app)


def test_another_gunicorn_worker_class_is_reported_at_init_app(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    import sys
    import types

    from flask_wamp_bridge.websocket import lifecycle

    monkeypatch.setitem(sys.modules, "gunicorn.arbiter", types.ModuleType("gunicorn.arbiter"))
    monkeypatch.delitem(sys.modules, "flask_wamp_bridge.websocket.worker", raising=False)
    assert lifecycle.warn_if_wrong_worker()
    assert "-k flask_wamp_bridge.worker" in caplog.text
    monkeypatch.setitem(sys.modules, "flask_wamp_bridge.websocket.worker", types.ModuleType("w"))
    assert not lifecycle.warn_if_wrong_worker()


def test_every_metric_is_in_the_readme_and_the_dashboard() -> None:
    from helpers import REPO_ROOT

    from flask_wamp_bridge.ops.metrics import METRICS

    readme = (REPO_ROOT / "README.rst").read_text()
    dashboard = json.loads((REPO_ROOT / "examples" / "grafana-dashboard.json").read_text())
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for name, *_ in METRICS:
        assert f"``{name}" in readme, name
        assert name in queries, name


def test_gunicorn_with_another_worker_class_says_so_at_boot() -> None:
    server = GunicornProcess(APP, worker_class="gevent").start()
    try:
        server.wait_for_log("-k flask_wamp_bridge.worker")
    finally:
        server.stop()


def test_metrics_started_again_after_fork_forget_the_parents() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge
    from flask_wamp_bridge import metrics_sink
    from flask_wamp_bridge import signals
    from flask_wamp_bridge.ops import metrics

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", WAMP_BRIDGE_METRICS_PATH="/metrics")
    WampBridge(app)
    state = app.extensions["wamp_bridge"]
    metrics.start(state)
    metrics._process.pid = -1  # what a forked child finds: its parent's setup
    sink = metrics.start(state)
    try:
        assert metrics_sink.sink is sink
        before = value_of("wamp_bridge_sessions", role="tester")
        signals.send(signals.browser_session_opened, app, authid="a", role="tester", session_id=1)
        assert value_of("wamp_bridge_sessions", role="tester") == before + 1  # one receiver, not two
    finally:
        metrics_sink.install(None)


def value_of(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_master_prepares_the_workers_metrics_folder_only_when_metrics_are_asked_for(
        monkeypatch: pytest.MonkeyPatch, tmp_path: t.Any) -> None:
    import logging

    from flask_wamp_bridge.websocket import metrics_dir

    class Config:
        def __init__(self) -> None:
            self.child_exit = lambda arbiter, worker: None

        def set(self, name: str, value: t.Any) -> None:
            setattr(self, name, value)

    log = logging.getLogger("test")
    monkeypatch.delenv(metrics_dir.ENV, raising=False)
    monkeypatch.delenv(metrics_dir.METRICS_ENV, raising=False)
    cfg = Config()
    original = cfg.child_exit
    assert metrics_dir.prepare(cfg, log) is None  # an app without metrics: its own prometheus_client untouched
    assert metrics_dir.ENV not in os.environ and cfg.child_exit is original
    stale = tmp_path / "counter_1.db"
    stale.write_bytes(b"")
    monkeypatch.setenv(metrics_dir.ENV, str(tmp_path))  # the operator's folder
    assert metrics_dir.prepare(cfg, log) == str(tmp_path)
    assert not stale.exists() and cfg.child_exit is not original
    monkeypatch.delenv(metrics_dir.ENV)
    monkeypatch.setenv(metrics_dir.METRICS_ENV, "/metrics")  # the app's setting, from the environment
    path = metrics_dir.prepare(Config(), log)
    assert path is not None and os.environ[metrics_dir.ENV] == path and os.path.isdir(path)
    os.rmdir(path)
