"""The generated config on a real Crossbar: ``crossbar check``, sessions, permissions, restart, CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import pytest
from helpers import raw_handshake

from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.router.config import ACTIONS
from flask_wamp_bridge.router.config import _allows
from flask_wamp_bridge.router.config import make_config
from flask_wamp_bridge.router.config import save_config
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import TEST_PEER_AUTHID
from flask_wamp_bridge.testing import TEST_PEER_SECRET
from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import TESTER_SECRET
from flask_wamp_bridge.testing import WampClient
from flask_wamp_bridge.testing import free_port
from flask_wamp_bridge.testing import router_settings
from flask_wamp_bridge.testing import start_router

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
NOT_AUTHORIZED = "wamp.error.not_authorized"


def wait_for(predicate: t.Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- crossbar check ----------------------------------------------------------

CHECK_VARIANTS = {
    "defaults": {},
    "root-path-no-anonymous-services": {
        "WAMP_BRIDGE_ROUTER_URL": "ws://127.0.0.1:9000",
        "WAMP_BRIDGE_ANONYMOUS_ROLE": None,
        "WAMP_BRIDGE_SERVICES": {"ops": {"secret": "o", "role": "ops"}, "worker": {"secret": "w"}},
        "WAMP_BRIDGE_PERMISSIONS": {
            "ops": [{"uri": "wamp.session.", "allow": ["call"]}],
            "user": [{"uri": "shop..orders", "match": "wildcard", "allow": {"subscribe": True}}],
        },
        "WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0,
    },
    "ipv6-custom-names": {
        "WAMP_BRIDGE_ROUTER_URL": "ws://[::1]:9001/wamp",
        "WAMP_BRIDGE_REALM": "com.example.realm",
        "WAMP_BRIDGE_AUTHENTICATOR": "com.example.authenticate",
        "WAMP_BRIDGE_PEER_ROLE": "server",
        "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE": 64 * 1024 * 1024,
    },
}


def crossbar_check(crossbar: str, config: dict[str, t.Any], cbdir: Path) -> subprocess.CompletedProcess[str]:
    save_config(config, cbdir / "config.json")
    return subprocess.run(
        [crossbar, "check", "--cbdir", str(cbdir)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("variant", list(CHECK_VARIANTS))
def test_crossbar_check_accepts_generated_config(crossbar_executable: str, tmp_path: Path, variant: str) -> None:
    config = make_config({"WAMP_BRIDGE_PEER_SECRET": "s", **CHECK_VARIANTS[variant]})
    result = crossbar_check(crossbar_executable, config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration looks good" in result.stdout


def test_crossbar_check_rejects_a_broken_config(crossbar_executable: str, tmp_path: Path) -> None:
    # Shows the check above can fail: one unknown WebSocket option.
    config = make_config({"WAMP_BRIDGE_PEER_SECRET": "s"})
    config["workers"][0]["transports"][0]["paths"]["ws"]["options"]["max_mesage_size"] = 1
    result = crossbar_check(crossbar_executable, config, tmp_path)
    assert result.returncode != 0
    assert "max_mesage_size" in result.stdout + result.stderr


# --- sessions on the shared router ------------------------------------------


def test_crossbar_router_fixture_settings(crossbar_router: CrossbarProcess) -> None:
    settings = crossbar_router.settings
    assert settings is not None
    assert settings["WAMP_BRIDGE_ROUTER_URL"] == crossbar_router.url
    assert crossbar_router.url.startswith("ws://127.0.0.1:")
    assert settings["WAMP_BRIDGE_REALM"] == crossbar_router.realm == "realm1"
    assert (settings["WAMP_BRIDGE_PEER_AUTHID"], settings["WAMP_BRIDGE_PEER_SECRET"]) == (
        TEST_PEER_AUTHID,
        TEST_PEER_SECRET,
    )
    assert settings["WAMP_BRIDGE_SERVICES"][TESTER_AUTHID]["secret"] == TESTER_SECRET
    assert crossbar_router.pid is not None


def test_crossbar_router_wampcra_clients_register_and_call(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient]
) -> None:
    callee = wamp_client(crossbar_router)
    assert (callee.authid, callee.authrole) == (TESTER_AUTHID, "backend")
    seen: list[t.Any] = []

    def add(x: int, y: int, details: t.Any = None) -> int:
        seen.append((details.caller, details.caller_authid, details.caller_authrole))
        return x + y

    callee.register("app.test.add", add, details=True)
    caller = wamp_client(crossbar_router, authid=TEST_PEER_AUTHID, secret=TEST_PEER_SECRET)
    assert caller.call("app.test.add", 2, 3) == 5
    assert seen == [(caller.session_id, TEST_PEER_AUTHID, "backend")]  # caller disclosed to the backend
    with pytest.raises(ApplicationError) as info:
        caller.call("app.test.missing")
    assert info.value.error == "wamp.error.no_such_procedure"


def test_crossbar_router_refuses_wrong_secret(crossbar_router: CrossbarProcess) -> None:
    with pytest.raises(ConnectionClosed) as info:
        WampClient(crossbar_router.url, crossbar_router.realm, authid=TESTER_AUTHID, secret="wrong")
    assert info.value.reason == NOT_AUTHORIZED


TICKETS = {"anon-ticket": "anonymous", "user-ticket": "user"}


@pytest.fixture
def authenticator(crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient]) -> WampClient:
    """A backend client answering Crossbar's dynamic ticket authenticator, as the app's peer does."""
    backend = wamp_client(crossbar_router)

    def authenticate(realm: str, authid: str, details: dict[str, t.Any]) -> dict[str, t.Any]:
        role = TICKETS.get(details["ticket"])
        if role is None:
            raise ApplicationError("wamp.error.not_authorized", "bad ticket")
        return {"authid": authid, "role": role, "extra": {"via": "test"}}

    assert crossbar_router.settings is not None
    backend.register(crossbar_router.settings["WAMP_BRIDGE_AUTHENTICATOR"], authenticate)
    backend.register("app.public.echo", lambda value: value)
    backend.register("app.private.echo", lambda value: value)
    return backend


def error_of(fn: t.Callable[..., t.Any], *args: t.Any) -> str | None:
    try:
        fn(*args)
    except ApplicationError as exc:
        return exc.error
    return None


def test_crossbar_router_ticket_roles_get_only_their_permissions(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient], authenticator: WampClient
) -> None:
    anon = wamp_client(crossbar_router, authid="visitor", secret=None, ticket="anon-ticket")
    assert (anon.authid, anon.authrole) == ("visitor", "anonymous")
    assert anon.call("app.public.echo", "hi") == "hi"
    assert error_of(anon.call, "app.private.echo", "hi") == NOT_AUTHORIZED
    assert error_of(anon.register, "app.public.mine", lambda: None) == NOT_AUTHORIZED
    assert error_of(anon.publish, "app.public.news", "x") == NOT_AUTHORIZED
    assert error_of(anon.subscribe, "app.public.news", lambda *a: None) is None
    assert error_of(anon.subscribe, "app.private.news", lambda *a: None) == NOT_AUTHORIZED

    user = wamp_client(crossbar_router, authid="alice", secret=None, ticket="user-ticket")
    assert (user.authid, user.authrole) == ("alice", "user")
    assert user.details.authextra["via"] == "test"  # Crossbar adds x_cb_node, x_cb_peer, ... too
    assert user.call("app.private.echo", 1) == 1
    assert error_of(user.call, "wamp.session.kill_by_authid", "visitor") == NOT_AUTHORIZED
    assert error_of(user.call, "wamp_bridge.authenticate", "realm1", "x", {}) == NOT_AUTHORIZED

    with pytest.raises(ConnectionClosed) as info:
        WampClient(crossbar_router.url, crossbar_router.realm, authid="mallory", secret=None, ticket="forged")
    assert info.value.reason == NOT_AUTHORIZED


def test_crossbar_router_backend_may_kill_sessions_by_authid(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient], authenticator: WampClient
) -> None:
    first = wamp_client(crossbar_router, authid="bob", secret=None, ticket="user-ticket")
    second = wamp_client(crossbar_router, authid="bob", secret=None, ticket="user-ticket")
    killed = authenticator.call("wamp.session.kill_by_authid", "bob", reason="wamp.close.logout")
    assert sorted(killed) == sorted([first.session_id, second.session_id])
    assert wait_for(lambda: not first.connected and not second.connected)


def handshake_status(url: str, origin: str | None) -> str:
    """The status line the router answers a WebSocket upgrade with."""
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, _, port = host_port.rpartition(":")
    headers = {"Sec-WebSocket-Protocol": "wamp.2.json"}
    if origin is not None:
        headers["Origin"] = origin
    sock, head, _ = raw_handshake(host, int(port), f"/{path}", headers)
    sock.close()
    return head.split("\r\n", 1)[0]


def test_crossbar_router_refuses_browser_origins(crossbar_router: CrossbarProcess) -> None:
    url = crossbar_router.url
    port = url.split(":")[2].split("/")[0]
    assert " 101 " in handshake_status(url, None)
    assert " 101 " in handshake_status(url, f"ws://127.0.0.1:{port}")  # what wampy sends
    assert " 101 " in handshake_status(url, f"http://127.0.0.1:{port}")  # websocket-client's default
    for origin in ("https://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null", "http://localhost:5000"):
        assert " 101 " not in handshake_status(url, origin), origin


WAMPY_SCRIPT = textwrap.dedent(
    """
    import sys
    from wampy.peers.clients import Client
    url, realm, authid = sys.argv[1:4]
    roles = {"roles": {"caller": {}}, "authmethods": ["wampcra"], "authid": authid}
    with Client(url=url, realm=realm, roles=roles) as client:
        print("RESULT", client.call("app.wampy.add", 20, 22), flush=True)
    """
)


def test_crossbar_router_accepts_wampy_client(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient]
) -> None:
    # wampy monkey-patches with gevent on import, so it runs in its own process.
    wamp_client(crossbar_router).register("app.wampy.add", lambda x, y: x + y)
    env = {**os.environ, "WAMPYSECRET": TESTER_SECRET}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", WAMPY_SCRIPT, crossbar_router.url, crossbar_router.realm, TESTER_AUTHID],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "RESULT 42" in result.stdout, result.stdout + result.stderr


# --- permissions: the pure model agrees with the real router -----------------

LIMITED_RULES = [
    {"uri": "", "allow": ["call", "subscribe"]},
    {"uri": "app.admin", "match": "exact", "allow": []},
    {"uri": "app..secret", "match": "wildcard", "allow": ["register"]},
    {"uri": "app.open.", "allow": list(ACTIONS), "disclose": False},
]
PROBE_URIS = ["zz.other", "app.admin", "app.adminx", "app.x.secret", "app.x.secret.y", "app.open.thing"]


@pytest.fixture(scope="module")
def limited_router(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[CrossbarProcess]:
    router = start_router(
        tmp_path_factory.mktemp("crossbar-limited"),
        WAMP_BRIDGE_SERVICES={
            TESTER_AUTHID: {"secret": TESTER_SECRET, "role": "backend"},
            "limited": {"secret": "limited-secret", "role": "limited"},
        },
        WAMP_BRIDGE_PERMISSIONS={"limited": LIMITED_RULES},
    )
    try:
        yield router
    finally:
        router.stop()


def test_allows_matches_real_crossbar_authorization(
    limited_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient]
) -> None:
    config_rules = {r["name"]: r["permissions"] for r in limited_router.config["workers"][0]["realms"][0]["roles"]}
    rules = config_rules["limited"]
    client = wamp_client(limited_router, authid="limited", secret="limited-secret")
    predicted, actual = {}, {}
    for uri in PROBE_URIS:
        predicted[uri] = {a for a in ("call", "subscribe", "register") if _allows(rules, a, uri)}
        real = set()
        if error_of(client.call, uri) == "wamp.error.no_such_procedure":
            real.add("call")
        if error_of(client.subscribe, uri, lambda *a: None) is None:
            real.add("subscribe")
        if error_of(client.register, uri, lambda *a: None) is None:
            real.add("register")
        actual[uri] = real
    assert predicted == actual
    assert {frozenset(v) for v in actual.values()} >= {frozenset(), frozenset({"call", "subscribe"})}


# --- launcher: restart, stop, failure ----------------------------------------


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_crossbar_process_restart_same_url_then_stop(
    fresh_crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient]
) -> None:
    router = fresh_crossbar_router
    url, old_pid = router.url, router.pid
    assert old_pid is not None
    before = wamp_client(router)
    router.restart()
    assert router.url == url
    assert router.pid is not None and router.pid != old_pid
    assert not group_alive(old_pid)
    assert wait_for(lambda: not before.connected)
    after = wamp_client(router)
    after.register("app.restart.ping", lambda: "pong")
    assert after.call("app.restart.ping") == "pong"

    pid = router.pid
    router.stop()
    assert router.pid is None
    assert not group_alive(pid)  # controller and router worker are gone
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()


def test_crossbar_process_start_fails_when_port_is_taken(crossbar_executable: str, tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        process = CrossbarProcess(router_settings(port), tmp_path, crossbar=crossbar_executable)
        with pytest.raises(ConnectError) as info:
            process.start(timeout=90)
    assert str(tmp_path / "crossbar.log") in str(info.value)
    assert process.pid is None


# --- flask wamp router ---------------------------------------------------------

CLI_APP = textwrap.dedent(
    """
    import json, os
    from flask import Flask
    from flask_wamp_bridge.cli import wamp_cli
    app = Flask(__name__)
    app.config.update(json.loads(os.environ["TEST_WAMP_SETTINGS"]))
    app.cli.add_command(wamp_cli)
    """
)


def test_cli_router_runs_in_foreground_until_interrupted(crossbar_executable: str, tmp_path: Path) -> None:
    (tmp_path / "wamp_cli_app.py").write_text(CLI_APP)
    settings = router_settings(free_port())
    env = {
        **os.environ,
        "TEST_WAMP_SETTINGS": json.dumps(settings),
        "WAMP_BRIDGE_CROSSBAR": crossbar_executable,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)]),
    }
    log = open(tmp_path / "cli.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wamp_cli_app", "wamp", "router", "--cbdir", "node"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # like a terminal's foreground job: Ctrl-C goes to the whole group
    )
    try:
        client: list[WampClient] = []

        def connected() -> bool:
            try:
                client.append(WampClient(settings["WAMP_BRIDGE_ROUTER_URL"], "realm1", timeout=5))
            except (ConnectError, ConnectionClosed):
                return proc.poll() is not None
            return True

        assert wait_for(connected, timeout=90), (tmp_path / "cli.log").read_text()
        assert client, (tmp_path / "cli.log").read_text()
        client[0].close()
        assert json.loads((tmp_path / "node" / "config.json").read_text()) == make_config(settings)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / "cli.log").read_text()
        assert wait_for(lambda: not group_alive(proc.pid), timeout=30)
    finally:
        if proc.poll() is None or group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()


@pytest.mark.parametrize("serializer", ["msgpack", "cbor"])
def test_wamp_client_binary_serializers(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient], serializer: str
) -> None:
    callee = wamp_client(crossbar_router, serializer=serializer)
    callee.register(f"app.test.{serializer}", lambda data: data[::-1])
    caller = wamp_client(crossbar_router, serializer=serializer)
    assert caller.details.serializer.startswith(serializer)
    assert caller.call(f"app.test.{serializer}", b"\x00\x01") == b"\x01\x00"


def test_wamp_client_origin_and_anonymous_are_refused_by_the_router(crossbar_router: CrossbarProcess) -> None:
    with pytest.raises(ConnectionClosed):
        WampClient(crossbar_router.url, crossbar_router.realm, origin="https://evil.example")
    with pytest.raises(ConnectionClosed) as info:  # the router transport has no anonymous login
        WampClient(crossbar_router.url, crossbar_router.realm, authid="nobody", secret=None)
    assert info.value.reason == "wamp.error.no_auth_method"
