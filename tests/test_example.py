"""The example app (examples/app.py) and its runner, with real Crossbar and real gunicorn.

The router runs the config generated from the example app's own settings
(plus a WAMP-CRA test principal, ``tester``, to look at the router's state);
gunicorn serves ``examples.app:app`` with two workers, as ``scripts/example`` does.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket
from helpers import REPO_ROOT
from helpers import GunicornProcess
from helpers import child_pids
from helpers import free_port
from helpers import wait_until

from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import WampClient

APP = "examples.app:app"
TESTER = ("tester", "example-tester-secret")
WAIT = 30.0  # generous: a busy 2-core machine


class ExampleStack:
    """Crossbar from the example app's generated config, and gunicorn serving the app.

    ``env`` holds the per-run settings the app reads from the environment,
    as the runner (examples/run.py) sets them.
    """

    def __init__(self, tmp: Path, crossbar: str, workers: int = 2) -> None:
        from examples.app import create_app

        self.env = {
            "SECRET_KEY": secrets.token_urlsafe(32),
            "WAMP_BRIDGE_PEER_SECRET": secrets.token_urlsafe(32),
            "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{free_port()}/ws",
            "EXAMPLE_DATABASE": str(tmp / "board.sqlite3"),
        }
        self.config = create_app(dict(self.env)).config
        settings = {key: value for key, value in self.config.items() if key.startswith("WAMP_BRIDGE_")}
        settings["WAMP_BRIDGE_SERVICES"] = {TESTER[0]: {"secret": TESTER[1], "role": "backend"}}
        self.realm: str = self.config["WAMP_BRIDGE_REALM"]
        self.router = CrossbarProcess(settings, tmp / "crossbar", crossbar=crossbar)
        self.server = GunicornProcess(APP, env=self.env, workers=workers)

    def start(self) -> ExampleStack:
        self.router.start(timeout=90)
        try:
            self.server.start()
            with self.tester() as tester:  # both workers' peers have registered
                wait_until(lambda: len(callees(tester, "app.board.post")) == self.server.workers, WAIT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> str:
        """Stop gunicorn, then Crossbar; returns gunicorn's log."""
        try:
            self.server.stop()
        finally:
            self.router.stop()
        return self.server.log()

    @property
    def url(self) -> str:
        return self.server.url

    def tester(self) -> WampClient:
        """A backend session straight on the router (not through the app)."""
        return WampClient(self.router.url, self.realm, authid=TESTER[0], secret=TESTER[1])

    def browser(self, cookie: str | None = None) -> WampClient:
        """A WAMP session through the app's ``/wamp`` endpoint, like a page of the app opens.

        The HELLO names a forged authid: the bridge ignores it and uses the Flask session.
        """
        headers = {"Cookie": cookie} if cookie else {}
        return WampClient(self.server.ws_url("/wamp"), self.realm, authid="mallory", secret=None,
                          headers=headers, origin=self.server.url, timeout=WAIT)


def callees(tester: WampClient, procedure: str) -> list[int]:
    registration = tester.call("wamp.registration.lookup", procedure)
    return [] if registration is None else list(tester.call("wamp.registration.list_callees", registration))


def request(url: str, data: t.Any = None, cookie: str | None = None, raw: bytes | None = None,
            content_type: str = "application/json") -> tuple[int, t.Any, str | None]:
    """An HTTP request: ``(status, JSON body, Set-Cookie)``; POST when ``data`` or ``raw`` is given."""
    body = raw if raw is not None else (None if data is None else json.dumps(data).encode())
    headers = {"Content-Type": content_type} if body is not None else {}
    if cookie:
        headers["Cookie"] = cookie
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as response:
            return response.status, json.loads(response.read()), response.headers["Set-Cookie"]
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read()), None


def login(stack: ExampleStack, username: str) -> str:
    """Log in over HTTP as the page does; returns the ``Cookie`` header value."""
    status, body, set_cookie = request(f"{stack.url}/login", {"username": username})
    assert (status, body) == (200, {"user": username})
    assert set_cookie is not None
    return set_cookie.split(";", 1)[0]


def running_stack(tmp_path_factory: pytest.TempPathFactory, crossbar_executable: str) -> t.Iterator[ExampleStack]:
    """Start the example stack, yield it, stop it, and fail if the server logged a traceback."""
    stack = ExampleStack(tmp_path_factory.mktemp("example"), crossbar_executable).start()
    try:
        yield stack
    finally:
        log = stack.stop()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, crossbar_executable: str) -> t.Iterator[ExampleStack]:
    yield from running_stack(tmp_path_factory, crossbar_executable)


@pytest.fixture(scope="module")
def tester(stack: ExampleStack) -> t.Iterator[WampClient]:
    with stack.tester() as client:
        yield client


class Inbox:
    """Collects events of a subscription (called from the client's thread pool)."""

    def __init__(self) -> None:
        self.items: list[t.Any] = []

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.items.append(args[0] if len(args) == 1 and not kwargs else (args, kwargs))

    def wait_for(self, predicate: t.Callable[[t.Any], bool]) -> t.Any:
        return wait_until(lambda: next((item for item in self.items if predicate(item)), None), WAIT)


# --- without servers ----------------------------------------------------------------------


def test_example_serves_wampy_js_or_says_how_to_install_it(tmp_path: Path) -> None:
    from examples.app import create_app

    installed = create_app({"EXAMPLE_DATABASE": str(tmp_path / "board.sqlite3")}).test_client()
    page = installed.get("/")
    assert page.status_code == 200 and b'src="/vendor/wampy.min.js"' in page.data
    if (REPO_ROOT / "node_modules" / "wampy" / "dist" / "browser" / "wampy.min.js").is_file():
        script = installed.get("/vendor/wampy.min.js")
        assert script.status_code == 200 and b"globalThis.Wampy" in script.data
        script.close()
    missing = create_app({"EXAMPLE_WAMPY_DIR": str(tmp_path)}).test_client().get("/vendor/wampy.min.js")
    assert missing.status_code == 500 and missing.mimetype == "text/javascript"
    assert b"run scripts/setup" in missing.data
    assert not (tmp_path / "board.sqlite3").exists()  # the database is made on first use only


def test_example_never_runs_with_known_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from examples.app import create_app

    for key in ("SECRET_KEY", "WAMP_BRIDGE_PEER_SECRET"):
        monkeypatch.delenv(key, raising=False)
    store = tmp_path / "secrets.json"
    with caplog.at_level("WARNING"):
        first = create_app({"EXAMPLE_SECRETS_FILE": str(store)}).config
    assert "generated random SECRET_KEY and WAMP_BRIDGE_PEER_SECRET" in caplog.text
    assert (store.stat().st_mode & 0o777) == 0o600
    second = create_app({"EXAMPLE_SECRETS_FILE": str(store)}).config  # another worker, the router CLI
    for key in ("SECRET_KEY", "WAMP_BRIDGE_PEER_SECRET"):
        assert len(first[key]) >= 32 and first[key] == second[key]
    other = create_app({"EXAMPLE_SECRETS_FILE": str(tmp_path / "elsewhere.json")}).config
    assert other["SECRET_KEY"] != first["SECRET_KEY"]  # random per machine, not a constant
    given = create_app({"EXAMPLE_SECRETS_FILE": str(tmp_path / "unused.json"), "SECRET_KEY": "k" * 32,
                        "WAMP_BRIDGE_PEER_SECRET": "p" * 32}).config
    assert given["SECRET_KEY"] == "k" * 32 and not (tmp_path / "unused.json").exists()


# --- the generated config and the peer -----------------------------------------------


def test_example_generated_config_serves_the_app_peers_in_every_worker(
        stack: ExampleStack, tester: WampClient) -> None:
    config = json.loads((stack.router.cbdir / "config.json").read_text())
    realm = config["workers"][0]["realms"][0]
    assert realm["name"] == "example"
    assert {role["name"] for role in realm["roles"]} == {"backend", "user", "anonymous"}
    for procedure in ("app.board.post", "app.public.board.history", "app.public.presence.list", "app.poke",
                      stack.config["WAMP_BRIDGE_AUTHENTICATOR"]):
        sessions = callees(tester, procedure)
        assert len(sessions) == 2, procedure  # one registration per worker, shared
        for session_id in sessions:
            details = tester.call("wamp.session.get", session_id)
            assert (details["authid"], details["authrole"]) == ("example-app", "backend")


def test_example_guest_may_use_only_the_public_part(stack: ExampleStack) -> None:
    with stack.browser() as guest:
        assert guest.authrole == "anonymous" and guest.authid.startswith("anonymous-")
        assert isinstance(guest.call("app.public.board.history"), list)
        wait_until(lambda: guest.call("app.public.presence.list")["guests"] >= 1, WAIT)  # from the join event
        guest.subscribe("app.public.board.messages", Inbox())
        for procedure, args in (("app.board.post", ["hello"]), ("app.poke", ["alice"]),
                                ("wamp.session.kill_by_authid", ["alice"])):
            with pytest.raises(ApplicationError) as refused:
                guest.call(procedure, *args)
            assert refused.value.error == "wamp.error.not_authorized", procedure
        with pytest.raises(ApplicationError) as refused:
            guest.subscribe("app.notify", Inbox())
        assert refused.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as refused:
            guest.publish("app.public.board.messages", {"author": "forged"})
        assert refused.value.error == "wamp.error.not_authorized"


def test_example_login_validates_the_username(stack: ExampleStack) -> None:
    assert request(f"{stack.url}/login", {"username": "x"})[0] == 400
    assert request(f"{stack.url}/login", {"username": "no spaces"})[0] == 400
    assert request(f"{stack.url}/login", {"username": "example-app"})[0] == 400  # the app peer's authid
    assert request(f"{stack.url}/login", {"username": "anonymous-1"})[0] == 400
    # a plain HTML form (what a cross-site page can send without CORS) is refused
    status, body, _ = request(f"{stack.url}/login", raw=b"username=eve",
                              content_type="application/x-www-form-urlencoded")
    assert status == 415 and "JSON" in body["error"]
    assert request(f"{stack.url}/login", {"username": "  Eve "})[1] == {"user": "eve"}


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"username": ' * 50_000, '{"username": ',
                                  '"eve"', '{"username": ' + "[" * 900 + "]" * 900 + "}"],
                         ids=["nested list", "nested object", "truncated", "not an object", "nested username"])
def test_example_login_answers_a_bad_json_body_with_400(body: str) -> None:
    from examples.app import create_app

    client = create_app({"SECRET_KEY": "test", "WAMP_BRIDGE_PEER_SECRET": "test"}).test_client()
    response = client.post("/login", data=body, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]


def test_example_users_post_and_get_their_own_notifications(stack: ExampleStack) -> None:
    alice, bob = login(stack, "alice"), login(stack, "bob")
    with stack.browser(alice) as a, stack.browser(bob) as b:
        assert (a.authid, a.authrole, b.authid) == ("alice", "user", "bob")
        board_a, board_b, notes_a, notes_b = Inbox(), Inbox(), Inbox(), Inbox()
        for client, board, notes in ((a, board_a, notes_a), (b, board_b, notes_b)):
            client.subscribe("app.public.board.messages", board)
            client.subscribe("app.notify", notes)

        # presence follows the router's join events: a moment after WELCOME in each worker
        wait_until(lambda: {"alice", "bob"} <= set(a.call("app.public.presence.list")["users"]), WAIT)

        # the author is the caller the router discloses, whatever the client claims
        posted = a.call("app.board.post", "  hello @bob  ")
        assert (posted["author"], posted["text"], posted["via"]) == ("alice", "hello @bob", "wamp")
        for board in (board_a, board_b):  # a broadcast: both get it
            board.wait_for(lambda m: m["id"] == posted["id"])
        mention = notes_b.wait_for(lambda n: n["kind"] == "mention")
        assert (mention["from"], mention["text"]) == ("alice", "hello @bob")
        assert posted in a.call("app.public.board.history")

        with pytest.raises(ApplicationError) as refused:
            a.call("app.board.post", "   ")
        assert refused.value.error == "app.error.invalid_argument"

        assert a.call("app.poke", "bob") == {"poked": "bob"}
        poke = notes_b.wait_for(lambda n: n["kind"] == "poke")
        assert poke["from"] == "alice"
        # Now bob pokes alice. The router sends alice's events in order and one
        # worker relays them in order, so had the poke for bob reached alice too,
        # it would be in her inbox before this one.
        b.call("app.poke", "alice")
        notes_a.wait_for(lambda n: n["kind"] == "poke" and n["from"] == "bob")
        assert [(n["kind"], n["from"]) for n in notes_a.items] == [("poke", "bob")]
        assert [(n["kind"], n["from"]) for n in notes_b.items] == [("mention", "alice"), ("poke", "alice")]

        # the HTTP view posts as the session's user and publishes the same way
        status, body, _ = request(f"{stack.url}/api/messages", {"text": "over http"}, cookie=bob)
        assert status == 201 and body["message"]["author"] == "bob" and body["message"]["via"] == "http"
        board_a.wait_for(lambda m: m["id"] == body["message"]["id"])
        assert request(f"{stack.url}/api/messages", {"text": "no login"})[0] == 401


def test_example_logout_ends_the_live_session(stack: ExampleStack, tester: WampClient) -> None:
    carol = login(stack, "carol")
    with stack.browser(carol) as first, stack.browser(carol) as second, stack.browser() as bystander:
        status, body, set_cookie = request(f"{stack.url}/logout", {}, cookie=carol)
        assert status == 200 and body == {"user": None, "closed_sessions": 2}
        wait_until(lambda: not first.connected and not second.connected, WAIT)
        # presence follows the router's leave events, which reach each worker a moment after the sockets close
        wait_until(lambda: "carol" not in bystander.call("app.public.presence.list")["users"], WAIT)
        assert not [sid for sid in tester.call("wamp.session.list", ["user"])
                    if tester.call("wamp.session.get", sid)["authid"] == "carol"]
        assert bystander.connected
    # the cookie the logout sent back is anonymous again
    assert set_cookie is not None
    with stack.browser(set_cookie.split(";", 1)[0]) as again:
        assert again.authrole == "anonymous"


def test_example_presence_follows_sessions_across_workers(stack: ExampleStack) -> None:
    with stack.browser() as watcher:
        updates = Inbox()
        watcher.subscribe("app.public.presence", updates)
        dave = login(stack, "dave")
        with stack.browser(dave):
            joined = updates.wait_for(lambda p: "dave" in p["users"])
        seen = updates.items.index(joined)
        wait_until(lambda: any("dave" not in p["users"] for p in updates.items[seen + 1:]), WAIT)


def test_example_echo_route_echoes_text_and_binary(stack: ExampleStack) -> None:
    ws = websocket.create_connection(stack.server.ws_url("/echo"), origin=stack.url, timeout=WAIT)
    try:
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send_binary(b"\x00\xffbinary")
        assert ws.recv() == b"\x00\xffbinary"
    finally:
        ws.close()
        ws.shutdown()


# --- two workers behind one router ----------------------------------------------------------


def _socket_inodes(port: int, peer_port: int) -> set[str]:
    """Inodes of the server-side TCP sockets ``127.0.0.1:port`` <-> ``peer_port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and int(remote.rsplit(":", 1)[1], 16) == peer_port:
                inodes.add(inode)
    return inodes


def worker_holding(server: GunicornProcess, client_port: int) -> int | None:
    """The gunicorn worker that accepted the client connection from ``client_port``."""
    inodes = _socket_inodes(server.port, client_port)
    for pid in server.worker_pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    return None


def test_example_event_from_a_view_in_one_worker_reaches_a_client_of_the_other(stack: ExampleStack) -> None:
    server = stack.server
    # a raw JSON WAMP client: its socket tells which worker relays it
    ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                     timeout=WAIT)
    try:
        ws.send(json.dumps([1, stack.realm, {"roles": {"subscriber": {}}}]))
        assert json.loads(ws.recv())[0] == 2  # WELCOME
        ws.send(json.dumps([32, 1, {}, "app.public.board.messages"]))
        assert json.loads(ws.recv())[:2] == [33, 1]  # SUBSCRIBED
        assert ws.sock is not None
        relay = worker_holding(server, ws.sock.getsockname()[1])
        assert relay in server.worker_pids()

        cookie = login(stack, "erin")
        served_by = set()
        for attempt in range(200):  # each request is a new connection; either worker may take it
            status, body, _ = request(f"{stack.url}/api/messages", {"text": f"from the other worker? {attempt}"},
                                      cookie=cookie)
            assert status == 201
            served_by.add(body["worker"])
            if body["worker"] != relay:
                break
        else:
            pytest.fail(f"200 requests were all served by worker {relay}")
        assert served_by <= set(server.worker_pids())
        wanted = body["message"]["id"]
        while True:  # events of the earlier attempts come first
            message = json.loads(ws.recv())
            if message[0] == 36 and message[4][0]["id"] == wanted:
                break
        assert message[4][0]["worker"] == body["worker"] != relay
    finally:
        ws.close()
        ws.shutdown()


# --- the runner -------------------------------------------------------------------------------------


def _identity(pid: int) -> tuple[int, int] | None:
    """``(pid, start time)`` of a live process: a PID reused by another process does not match."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return None if fields[0] == b"Z" else (pid, int(fields[19]))


def _descendants(pid: int) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    todo = [pid]
    while todo:
        for child in child_pids(todo.pop()):
            identity = _identity(child)
            if identity is not None and identity not in found:
                found.add(identity)
                todo.append(child)
    return found


def _alive(identity: tuple[int, int]) -> bool:
    return _identity(identity[0]) == identity


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_example_runner_serves_the_page_and_stops_cleanly(tmp_path: Path, crossbar_executable: str,
                                                          stop_signal: int) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    output = tmp_path / "runner.log"
    env = {key: value for key, value in os.environ.items()
           if key not in ("SECRET_KEY", "WAMP_BRIDGE_PEER_SECRET", "WAMP_BRIDGE_ROUTER_URL", "EXAMPLE_DATABASE")}
    env["WAMP_BRIDGE_CROSSBAR"] = crossbar_executable
    with open(output, "wb") as log:
        runner = subprocess.Popen([sys.executable, "-m", "examples.run", "--port", str(port), "--run-dir",
                                   str(run_dir)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started: set[tuple[int, int]] = set()
    try:
        wait_until(lambda: "Live board:" in output.read_text() or runner.poll() is not None, 120)
        assert runner.poll() is None, output.read_text()
        started = _descendants(runner.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=WAIT) as page:
            assert page.status == 200 and b"Live board" in page.read()
        lines = [line for line in output.read_text().splitlines() if line.strip()]
        assert lines[-1].strip() == f"Live board: http://127.0.0.1:{port}/", lines[-5:]  # last, and quiet
        assert "/api/me" not in output.read_text()
        assert json.loads((run_dir / "config.json").read_text())["workers"][0]["realms"][0]["name"] == "example"
        assert len(started) >= 5  # Crossbar's controller and router, gunicorn's master and its 2 workers

        runner.send_signal(stop_signal)
        assert runner.wait(90) == 0, output.read_text()
        wait_until(lambda: not any(_alive(process) for process in started), WAIT)
    finally:
        started |= _descendants(runner.pid)
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
        for process in started:
            if _alive(process):  # only what this runner started (same PID and start time)
                os.kill(process[0], signal.SIGKILL)
    assert "Stopped." in output.read_text()
