"""The app's authorizer, event history and presence against a real Crossbar and gunicorn with 2 workers.

Raw WebSocket clients play the pages (tests/apps/authz_app.py has the rules):
per-user decisions for each action, cached decisions and their end at logout,
an authorizer that raises or sleeps past its deadline, ``get_events`` only for
a held subscription, presence with authids.
"""

from __future__ import annotations

import json
import typing as t
import urllib.request
from pathlib import Path

import pytest
from helpers import GunicornProcess
from helpers import wait_until
from test_endpoint import _env
from test_endpoint import login
from test_relay_security import Raw

from flask_wamp_bridge.testing import start_router

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

APP = "tests.apps.authz_app:app"
BOARD = "app.board.posts"
SETTINGS = {
    "WAMP_BRIDGE_AUTHORIZER": "wamp_bridge.authorize",
    "WAMP_BRIDGE_AUTHORIZER_TIMEOUT": 1.0,
    "WAMP_BRIDGE_EVENT_HISTORY": {BOARD: 50},
    "WAMP_BRIDGE_PRESENCE_TOPICS": ["app.team."],
    "WAMP_BRIDGE_RETAIN_TOPICS": ["app.board."],
}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    from apps.authz_app import PERMISSIONS

    router = start_router(tmp_path_factory.mktemp("crossbar-authz"), WAMP_BRIDGE_PERMISSIONS=PERMISSIONS, **SETTINGS)
    try:
        yield router
    finally:
        router.stop()


@pytest.fixture(scope="module")
def authz_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authz") / "decisions.log"


@pytest.fixture(scope="module")
def server(router: t.Any, authz_log: Path) -> t.Iterator[GunicornProcess]:
    server = GunicornProcess(APP, env={**_env(router.settings), "AUTHZ_LOG": str(authz_log)}, workers=2)
    server.start()
    try:
        wait_until(lambda: _peers_ready(server), timeout=30)
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.log(), server.log()


def _peers_ready(server: GunicornProcess) -> bool:
    try:
        return bool(_get(server, "/online/red") == [])
    except OSError:
        return False


def _get(server: GunicornProcess, path: str) -> t.Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def _post(server: GunicornProcess, path: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(f"{server.url}{path}", data=b""), timeout=15) as resp:
        return t.cast(bytes, resp.read())


class Page(Raw):
    """A logged-in page's WAMP session (JSON)."""

    def __init__(self, server: GunicornProcess, user: str) -> None:
        super().__init__(server, "wamp.2.json", login(server, user))
        self.request = 100

    @property
    def session_id(self) -> int:
        return int(self.welcome[1])

    def ask(self, message: list[t.Any]) -> list[t.Any]:
        self.request += 1
        message[1] = self.request
        self.send(message)
        return self.recv()

    def subscribe(self, topic: str, **options: t.Any) -> list[t.Any]:
        return self.ask([32, 0, options, topic])

    def publish(self, topic: str, *args: t.Any) -> list[t.Any]:
        return self.ask([16, 0, {"acknowledge": True}, topic, list(args)])

    def register(self, procedure: str) -> list[t.Any]:
        return self.ask([64, 0, {}, procedure])

    def rpc(self, procedure: str, *args: t.Any) -> list[t.Any]:
        return self.ask([48, 0, {}, procedure, list(args)])


def _asked(log: Path, who: str, uri: str, action: str) -> int:
    lines = log.read_text().splitlines() if log.exists() else []
    return lines.count(f"{who} {uri} {action}")


def test_authorizer_decides_per_user_for_each_action(server: GunicornProcess) -> None:
    alice, bob = Page(server, "alice"), Page(server, "bob")
    try:
        assert alice.subscribe("app.team.red.chat")[0] == 33
        assert alice.subscribe("app.team.blue.chat")[:2] == [8, 32]
        assert bob.subscribe("app.team.blue.chat")[0] == 33
        assert alice.publish("app.team.red.chat", "hi")[0] == 17
        refused = alice.publish("app.team.blue.chat", "hi")
        assert refused[0] == 8 and refused[4] == "wamp.error.not_authorized"
        assert alice.rpc("app.doc.alice.save")[0] == 50
        assert bob.rpc("app.doc.alice.save")[4] == "wamp.error.not_authorized"
        assert alice.register("app.user.alice.echo")[0] == 65
        assert alice.register("app.user.bob.echo")[4] == "wamp.error.not_authorized"
        assert alice.rpc("app.whoami")[3] == ["alice"]  # the static rules: the app is not asked
    finally:
        alice.close()
        bob.close()


def test_cached_decisions_last_for_the_session_and_end_at_logout(server: GunicornProcess, authz_log: Path) -> None:
    def subscribe_a_few(page: Page, topic: str) -> None:
        for _ in range(6):
            subscribed = page.subscribe(topic)
            assert subscribed[0] == 33, subscribed
            assert page.ask([34, 0, subscribed[2]])[0] == 35

    carol = Page(server, "carol")
    subscribe_a_few(carol, "app.team.red.cached.chat")
    subscribe_a_few(carol, "app.team.red.chat")
    # cached: asked at most once per worker; not cached: asked every time
    assert 1 <= _asked(authz_log, "carol", "app.team.red.cached.chat", "subscribe") <= 2
    assert _asked(authz_log, "carol", "app.team.red.chat", "subscribe") == 6
    killed = json.loads(_post(server, "/logout/carol"))["killed"]
    assert killed == [carol.session_id]
    carol.close()
    before = _asked(authz_log, "carol", "app.team.red.cached.chat", "subscribe")
    again = Page(server, "carol")
    try:
        assert again.subscribe("app.team.red.cached.chat")[0] == 33
        assert _asked(authz_log, "carol", "app.team.red.cached.chat", "subscribe") == before + 1
    finally:
        again.close()


@pytest.mark.parametrize("uri", ["app.slow.x", "app.boom.x"])
def test_failing_or_slow_authorizer_denies_cleanly(server: GunicornProcess, uri: str) -> None:
    alice = Page(server, "alice")
    try:
        refused = alice.subscribe(uri)
        assert refused[:2] == [8, 32] and refused[4] == "wamp.error.not_authorized"
        assert alice.rpc("app.whoami")[3] == ["alice"]  # the session goes on
    finally:
        alice.close()
    why = "no answer within 1 s" if "slow" in uri else "it raised RuntimeError: the database is down"
    wait_until(lambda: f"denied subscribe {uri!r} for 'alice': {why}" in server.log(), timeout=10)


def test_history_only_for_a_held_subscription(server: GunicornProcess) -> None:
    alice, bob = Page(server, "alice"), Page(server, "bob")
    try:
        subscribed = alice.subscribe(BOARD)
        subscription = subscribed[2]
        for text in ("one", "two", "three"):
            _post(server, f"/post/{text}")
        seen = [alice.recv() for _ in range(3)]  # in the router's order (the posts come from either worker)
        assert sorted(event[4][0] for event in seen) == ["one", "three", "two"]
        result = alice.rpc("wamp.subscription.get_events", subscription, 2)
        assert result[0] == 50, result
        events = result[3][0]  # the last two, newest first, as the router dispatched them
        assert [(e["args"], e["publication"]) for e in events] == [(seen[2][4], seen[2][2]), (seen[1][4], seen[1][2])]
        assert all("session_id" not in e and "authid" not in e for e in events)
        refused = bob.rpc("wamp.subscription.get_events", subscription, 2)  # bob holds none
        assert refused[0] == 8 and refused[4] == "wamp.error.not_authorized"
        assert bob.rpc("wamp.session.list")[4] == "wamp.error.not_authorized"
        assert bob.rpc("wamp_bridge.meta.get_events", subscription)[4] == "wamp.error.not_authorized"
    finally:
        alice.close()
        bob.close()


def test_retain_only_on_the_topics_the_app_allows(server: GunicornProcess) -> None:
    alice, bob = Page(server, "alice"), Page(server, "bob")
    try:
        assert alice.ask([16, 0, {"acknowledge": True, "retain": True}, "app.board.news", ["kept"]])[0] == 17
        refused = alice.ask([16, 0, {"acknowledge": True, "retain": True}, "app.team.red.chat", ["no"]])
        assert refused[0] == 8 and refused[4] == "wamp.error.not_authorized"
        assert bob.subscribe("app.board.news", get_retained=True)[0] == 33
        event = bob.recv()
        assert event[0] == 36 and event[4] == ["kept"] and event[3].get("retained") is True
    finally:
        alice.close()
        bob.close()


def test_presence_names_users_not_sessions(server: GunicornProcess) -> None:
    alice, alice_again, carol, bob = (Page(server, "alice"), Page(server, "alice"), Page(server, "carol"),
                                      Page(server, "bob"))
    try:
        subscription = alice.subscribe("app.team.red.chat")[2]
        assert alice_again.subscribe("app.team.red.chat")[0] == 33
        assert carol.subscribe("app.team.red.chat")[0] == 33
        assert alice.rpc("wamp.subscription.list_subscribers", subscription)[3] == [["alice", "carol"]]
        assert alice.rpc("wamp.subscription.count_subscribers", subscription)[3] == [2]
        assert bob.rpc("wamp.subscription.list_subscribers", subscription)[4] == "wamp.error.not_authorized"
        assert _get(server, "/online/red") == ["alice", "carol"]
        board = alice.subscribe(BOARD)[2]  # not a presence topic
        assert alice.rpc("wamp.subscription.list_subscribers", board)[4] == "wamp.error.not_authorized"
    finally:
        for page in (alice, alice_again, carol, bob):
            page.close()


# --- recovery in the browser: the recipes of docs/authorization.rst, run as written ---------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "authorization.rst"


def recipe(name: str) -> str:
    """The JavaScript code block of docs/authorization.rst that starts with ``// recipe: <name>``."""
    blocks = DOC.read_text().split(".. code-block:: javascript\n")[1:]
    for block in blocks:
        lines = []
        for line in block.splitlines()[1:]:
            if line and not line.startswith("    "):
                break
            lines.append(line[4:])
        code = "\n".join(lines).strip()
        if code.startswith(f"// recipe: {name}\n"):
            return code
    raise LookupError(f"no recipe {name!r} in {DOC}")


PAGES = {
    "wampy.js": """async ([url, topic]) => {
      %s
      const b = window.board = {shown: [], fetched: 0};
      const ws = new Wampy(url, {realm: 'realm1', reconnectInterval: 2500});
      const call = ws.call.bind(ws);
      ws.call = (uri, ...rest) => {
        if (uri === 'wamp.subscription.get_events') b.fetched++;
        return call(uri, ...rest);
      };
      await ws.connect();
      await followWithRecovery(ws, topic, (post) => b.shown.push(post.text), (post) => post.id);
      b.cut = () => ws._ws.close();
    }""",
    "autobahn-js": """async ([url, topic]) => {
      %s
      const b = window.board = {shown: [], fetched: 0};
      const connection = new autobahn.Connection({url, realm: 'realm1', max_retries: -1, initial_retry_delay: 2.5,
                                                  max_retry_delay: 2.5, retry_delay_jitter: 0});
      followWithRecovery(connection, topic, (post) => b.shown.push(post.text));
      const recovering = connection.onopen;
      const opened = new Promise((resolve) => {
        connection.onopen = async (session, details) => {
          const call = session.call.bind(session);
          session.call = (uri, ...rest) => {
            if (uri === 'wamp.subscription.get_events') b.fetched++;
            return call(uri, ...rest);
          };
          await recovering(session, details);
          resolve();
        };
      });
      connection.open();
      await opened;
      b.cut = () => connection._transport.close(4000, 'cut');
    }""",
}


@pytest.fixture
def page(server: GunicornProcess) -> t.Iterator[t.Any]:
    from test_browser import CHROMIUM_ARGS
    from test_browser import _chromium
    from test_browser import _require

    path = _chromium()
    _require(path, "Debian's chromium is not installed: run scripts/setup --browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            name, value = login(server, "alice").split("=", 1)
            context.add_cookies([{"name": name, "value": value, "url": server.url}])
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}/clients")
            yield page
            assert not errors, errors
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("client", ["wampy.js", "autobahn-js"])
def test_page_shows_missed_events_after_its_socket_is_cut(page: t.Any, server: GunicornProcess, router: t.Any,
                                                           client: str) -> None:
    from flask_wamp_bridge.testing.client import WampClient

    publisher = WampClient(router.settings["WAMP_BRIDGE_ROUTER_URL"], "realm1")
    try:
        page.evaluate(PAGES[client] % recipe(client), [server.ws_url("/wamp"), BOARD])

        def shown(count: int) -> list[str]:
            wait_until(lambda: len(page.evaluate("window.board.shown")) >= count, timeout=20)
            return t.cast(list[str], page.evaluate("window.board.shown"))

        def post(*names: str) -> None:
            for name in names:
                publisher.publish(BOARD, {"id": f"{client}-{name}", "text": name})

        post("a1", "a2")
        assert shown(2) == ["a1", "a2"]
        page.evaluate("window.board.cut()")
        # Publish once the page's session has left the router: Crossbar 26.10.1 stops dispatching an event at a
        # subscriber whose transport is closing (TransportLost), so the others (the history) could miss it.
        wait_until(lambda: _get(server, f"/subscribers/{BOARD}") == [], timeout=5, interval=0.02)
        missed = [f"m{i}" for i in range(5)]
        post(*missed)
        shown(7)
        post("z1")
        assert shown(8) == ["a1", "a2", *missed, "z1"]
        assert page.evaluate("window.board.fetched") == 1
    finally:
        publisher.close()
