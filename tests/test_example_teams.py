"""The example's team channels, channel presence and board recovery, in headless Chromium.

Team channels are guarded by the example's authorizer (membership in its
database); the channel lists who is on it by username; a page whose socket is
cut shows the board posts published meanwhile, fetched from the event history
(``wamp.subscription.get_events``) after it reconnects.
"""

from __future__ import annotations

import typing as t

import pytest
from helpers import wait_until
from test_browser import WAIT_MS
from test_browser import Tab
from test_browser import browser  # noqa: F401 (a fixture)
from test_browser import chromium  # noqa: F401 (a fixture)
from test_browser import stack  # noqa: F401 (a fixture)
from test_example import ExampleStack
from test_example import login
from test_example import request

from flask_wamp_bridge.errors import ApplicationError

pytestmark = [pytest.mark.browser, pytest.mark.crossbar, pytest.mark.timeout(240)]

if t.TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser

#: Keeps every WebSocket the page opens, so a test can cut one.
KEEP_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (...args) { const ws = new Native(...args); window.__sockets.push(ws); return ws; };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""


@pytest.fixture
def tab(browser: Browser, stack: ExampleStack) -> t.Iterator[t.Callable[[], Tab]]:  # noqa: F811
    opened: list[Tab] = []

    def open_tab() -> Tab:
        tab = Tab.__new__(Tab)
        tab.context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab.context.add_init_script(KEEP_SOCKETS)
        tab.page = tab.context.new_page()
        tab.errors = []
        tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.page.goto(stack.url)
        opened.append(tab)
        return tab

    yield open_tab
    for opened_tab in opened:
        opened_tab.close()


def _join(tab: Tab, team: str) -> None:
    tab.page.click(f"#team-pick button[data-team='{team}']")
    tab.expect("#team-name").to_have_text(f"team {team}", timeout=WAIT_MS)
    tab.expect("#team-composer").to_be_visible(timeout=WAIT_MS)


def _online(example: ExampleStack, team: str) -> list[str]:
    status, body, _ = request(f"{example.url}/api/team/{team}/online")
    assert status == 200
    return t.cast(list[str], body["users"])


def test_team_channels_presence_and_board_recovery(tab: t.Callable[[], Tab], stack: ExampleStack) -> None:  # noqa: F811
    alice, carol, bob = tab(), tab(), tab()
    for page, name in ((alice, "alice"), (carol, "carol"), (bob, "bob")):
        page.login(name)
    _join(alice, "red")
    _join(carol, "red")
    _join(bob, "blue")
    # who is on the channel: usernames, as the page's presence call answers them
    for page in (alice, carol):
        page.expect("#team-online li[data-user='alice']").to_be_visible(timeout=WAIT_MS)
        page.expect("#team-online li[data-user='carol']").to_be_visible(timeout=WAIT_MS)
    assert _online(stack, "red") == ["alice", "carol"]
    bob.expect("#team-online li[data-user='alice']").to_have_count(0)

    alice.page.fill("#team-text", "red only")
    alice.page.click("#team-composer button[type=submit]")
    carol.expect("#team-messages").to_contain_text("alice: red only", timeout=WAIT_MS)
    bob.expect("#team-messages li").to_have_count(0)
    # the authorizer asks the app's database: bob is not on the red team
    mallory = stack.browser(login(stack, "bob"))
    try:
        with pytest.raises(ApplicationError) as refused:
            mallory.subscribe("app.team.red.chat", lambda *args: None)
        assert refused.value.error == "wamp.error.not_authorized"
    finally:
        mallory.close()

    # alice's socket is cut; bob posts meanwhile; her page shows the posts once it is back
    alice.page.evaluate("window.__sockets.filter((ws) => ws.readyState === 1).forEach((ws) => ws.close())")
    wait_until(lambda: _online(stack, "red") == ["carol"], timeout=10, interval=0.02)  # her session left
    bob_cookie = login(stack, "bob")
    for text in ("missed one", "missed two"):
        status, _, _ = request(f"{stack.url}/api/messages", {"text": text}, cookie=bob_cookie)
        assert status == 201
    alice.expect("body").to_have_attribute("data-recovered", "1", timeout=WAIT_MS)
    for text in ("missed one", "missed two"):
        alice.message("bob", text).wait_for(timeout=WAIT_MS)
    alice.expect("#messages li[data-author='bob']").to_have_count(2)
