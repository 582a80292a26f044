"""The example page end to end in headless Chromium (Playwright): two users, live.

Real Crossbar, real gunicorn (two workers) serving ``examples.app:app``, and
Debian's chromium (or ``$CHROMIUM``) driven by Playwright, which is never
asked to download a browser. Skipped when chromium, Playwright or wampy.js
(``scripts/setup``) is missing, except under ``CI``: then it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import typing as t
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from test_example import ExampleStack
from test_example import running_stack

pytestmark = pytest.mark.browser

WAIT_MS = 30_000  # generous waits for events; nothing here is timed
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAMPY_JS = REPO_ROOT / "node_modules" / "wampy" / "dist" / "browser" / "wampy.min.js"

if t.TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser
    from playwright.sync_api import Page


def _require(ok: t.Any, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this is an error, not a skip: {reason}", pytrace=False)
    pytest.skip(reason)


def _chromium() -> str | None:
    """``$CHROMIUM`` if set, else chromium on PATH."""
    if "CHROMIUM" in os.environ:
        return shutil.which(os.environ["CHROMIUM"])
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path, once everything the browser tests need is known to be there."""
    path = _chromium()
    _require(path, "Debian's chromium is not installed: run scripts/setup --browser")
    _require(WAMPY_JS.is_file(), "wampy.js is not installed in node_modules/: run scripts/setup")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "the Python package playwright is not installed: run scripts/setup")
    return t.cast(str, path)


@pytest.fixture(scope="module")
def stack(chromium: str, tmp_path_factory: pytest.TempPathFactory,
          crossbar_executable: str) -> t.Iterator[ExampleStack]:
    # `chromium` first: without a browser the test skips before any server starts
    yield from running_stack(tmp_path_factory, crossbar_executable)


@pytest.fixture(scope="module")
def browser(chromium: str, stack: ExampleStack) -> t.Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:  # never downloads a browser: we name the executable
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Tab:
    """One browser context (its own cookies: one user) with the example page open."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)

    def expect(self, selector: str) -> t.Any:
        from playwright.sync_api import expect

        return expect(self.page.locator(selector))

    def login(self, username: str) -> None:
        self.page.fill("#username", username)
        self.page.click("#login-form button[type=submit]")  # fetch('/login'), then a new WAMP session
        self.expect("#conn").to_have_text(f"live · {username}", timeout=WAIT_MS)
        self.expect("#me").to_have_text(username)

    def post(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.click("#composer button[type=submit]")  # wampy.call('app.board.post', [text])

    def message(self, author: str, text: str) -> t.Any:
        return self.page.locator(f"#messages li[data-author='{author}']", has_text=text)

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def tabs(browser: Browser, stack: ExampleStack) -> t.Iterator[t.Callable[[], Tab]]:
    opened: list[Tab] = []

    def open_tab() -> Tab:
        tab = Tab(browser, stack.url)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def test_browser_two_users_live_board(tabs: t.Callable[[], Tab], tmp_path: Path) -> None:
    a, b = tabs(), tabs()
    # a visitor is a guest first: live, read-only
    a.expect("body").to_have_attribute("data-state", "live", timeout=WAIT_MS)
    a.expect("#conn").to_have_text("live · guest")
    a.expect("#composer").to_be_hidden()

    a.login("alice")
    b.login("bob")
    for tab in (a, b):  # presence, from the router's session meta events
        tab.expect("#online li[data-user='alice']").to_be_visible(timeout=WAIT_MS)
        tab.expect("#online li[data-user='bob']").to_be_visible(timeout=WAIT_MS)

    # alice calls the app's procedure; the broadcast reaches both pages
    a.post("Hello from Alice")
    for tab in (a, b):
        tab.expect("#messages li[data-author='alice']").to_contain_text("Hello from Alice", timeout=WAIT_MS)
    # a live update from the other context, mentioning alice: only alice is notified
    b.post("Hi @alice, welcome to the board")
    a.message("bob", "welcome to the board").wait_for(timeout=WAIT_MS)
    a.expect("#notifications li[data-kind='mention'][data-from='bob']").to_be_visible(timeout=WAIT_MS)

    # a poke goes to bob only
    a.page.click("#online li[data-user='bob'] button.poke")
    b.expect("#notifications li[data-kind='poke'][data-from='alice']").to_be_visible(timeout=WAIT_MS)
    # bob pokes back. Alice's events arrive in order over one relay, so had
    # alice's poke for bob reached her too, it would be on her page by now.
    b.page.click("#online li[data-user='alice'] button.poke")
    a.expect("#notifications li[data-kind='poke'][data-from='bob']").to_be_visible(timeout=WAIT_MS)
    a.expect("#notifications li[data-kind]").to_have_count(2)  # bob's mention and bob's poke
    b.expect("#notifications li[data-kind]").to_have_count(1)  # alice's poke

    shot = tmp_path / "board-alice.png"
    a.page.screenshot(path=str(shot), full_page=True, animations="disabled")
    assert shot.stat().st_size > 10_000
    # what the screenshot shows is the live data
    a.expect("#messages").to_contain_text("Hello from Alice")
    a.expect("#messages").to_contain_text("Hi @alice, welcome to the board")
    a.expect("#messages .mention.me").to_have_text("@alice")
    a.expect("#signed-in").to_contain_text("alice")
    a.expect("#session-info").to_contain_text("alice (user)")
    b.page.screenshot(path=str(tmp_path / "board-bob.png"), full_page=True, animations="disabled")


def test_browser_logout_ends_the_live_session(tabs: t.Callable[[], Tab], tmp_path: Path) -> None:
    a, b = tabs(), tabs()
    a.login("carol")
    b.login("dan")
    b.expect("#online li[data-user='carol']").to_be_visible(timeout=WAIT_MS)

    a.page.click("#logout")  # fetch('/logout'): the server ends carol's WAMP sessions
    a.expect("body").to_have_attribute("data-state", "logged-out", timeout=WAIT_MS)
    a.expect("#banner").to_contain_text("You are logged out. The server ended 1 live WAMP session.")
    a.expect("#conn").to_have_text("logged out")
    a.expect("#login-form").to_be_visible()
    a.expect("#composer").to_be_hidden()
    # the router no longer has her session: the other page's presence drops her
    b.expect("#online li[data-user='carol']").to_have_count(0, timeout=WAIT_MS)
    b.expect("#online li[data-user='dan']").to_be_visible()
    a.page.screenshot(path=str(tmp_path / "logged-out.png"), full_page=True, animations="disabled")

    # the page stays disconnected until asked; then it watches as a guest
    a.page.click("#banner button")
    a.expect("#conn").to_have_text("live · guest", timeout=WAIT_MS)
    b.expect("#guest-count").to_contain_text("1 guest", timeout=WAIT_MS)


DEFLATE = """
async ([base, realm]) => {
  const open = (path, protocols) => new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path, protocols);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('could not open ' + path));
  });
  const next = (ws) => new Promise((resolve) => { ws.onmessage = (event) => resolve(event.data); });
  const out = {};
  const echo = await open('/echo');
  out.echo = echo.extensions;
  const json = JSON.stringify(Array.from({length: 4000}, (_, i) => ({id: i, name: 'user ' + i, online: i % 3 == 0})));
  let reply = next(echo);
  echo.send(json);
  out.text = [json.length, (await reply) === json];
  const bytes = new Uint8Array(300000).map((_, i) => (i * 7) % 251);
  reply = next(echo);
  echo.send(bytes);
  const back = new Uint8Array(await reply);
  out.binary = [back.length, back.every((value, i) => value === bytes[i])];
  echo.close();
  const wamp = await open('/wamp', ['wamp.2.json']);
  out.wamp = wamp.extensions;
  reply = next(wamp);
  wamp.send(JSON.stringify([1, realm, {roles: {caller: {}, subscriber: {}}}]));
  out.welcome = JSON.parse(await reply)[0];
  reply = next(wamp);  // a 200 KB CALL: inflated, checked by the relay, answered by the app
  wamp.send(JSON.stringify([48, 7, {}, 'app.board.post', ['x'.repeat(200000)]]));
  out.answer = JSON.parse(await reply).slice(0, 5);
  wamp.close();
  return out;
}
"""


def test_browser_websockets_are_compressed(tabs: t.Callable[[], Tab], stack: ExampleStack) -> None:
    # Chromium offers permessage-deflate on every WebSocket; ws.extensions is the 101's answer
    tab = tabs()
    tab.login("grace")
    out = tab.page.evaluate(DEFLATE, [stack.url.replace("http", "ws", 1), stack.realm])
    both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert out["echo"] == out["wamp"] == both
    assert out["text"][1] and out["text"][0] > 100_000
    assert out["binary"] == [300_000, True]
    assert out["welcome"] == 2
    assert out["answer"][:3] == [8, 48, 7]  # the app's answer: at most 500 characters
    assert out["answer"][4] == "app.error.invalid_argument"


def test_browser_page_reconnects_after_a_worker_restart(tabs: t.Callable[[], Tab], stack: ExampleStack) -> None:
    tab = tabs()
    tab.login("erin")
    before = tab.page.locator("#session-info").inner_text()
    assert before.startswith("WAMP session ") and before.endswith("erin (user)")
    old_workers = stack.server.worker_pids()
    stack.server.send_signal(signal.SIGHUP)  # gunicorn replaces its workers; they say GOODBYE first
    stack.server.wait_for_workers(2, exclude=old_workers)
    # a new WAMP session, as the same user, opened by the page on its own
    tab.expect("#session-info").not_to_have_text(before, timeout=WAIT_MS)
    tab.expect("#session-info").to_contain_text("erin (user)", timeout=WAIT_MS)
    tab.expect("#conn").to_have_text("live · erin", timeout=WAIT_MS)
    tab.post("still here after the restart")
    tab.message("erin", "still here after the restart").wait_for(timeout=WAIT_MS)
