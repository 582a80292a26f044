"""A router that cannot be reached, seen from headless Chromium: wampy.js and autobahn-js connects reject.

Real gunicorn serving the example app with its router URL pointing at a closed
port. The page's HELLO gets ABORT ``wamp_bridge.error.router_unavailable`` and
close 1013 within the connect timeout, so ``await wampy.connect()`` rejects
with that URI instead of hanging, and autobahn-js closes with it.
"""

from __future__ import annotations

import secrets
import typing as t
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from helpers import GunicornProcess
from helpers import free_port
from test_browser import CHROMIUM_ARGS
from test_browser import WAMPY_JS
from test_browser import _require
from test_browser import chromium  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

AUTOBAHN_JS = REPO_ROOT / "node_modules" / "autobahn-browser" / "autobahn.min.js"
UNAVAILABLE = "wamp_bridge.error.router_unavailable"

WAMPY_CONNECT = """async () => {
    const wampy = new Wampy("/wamp", {realm: "example", autoReconnect: false});
    try {
        await wampy.connect();
        return {connected: true};
    } catch (error) {
        return {connected: false, uri: error.errorUri, name: error.name};
    }
}"""

AUTOBAHN_CONNECT = """(url) => new Promise((resolve) => {
    const connection = new autobahn.Connection({url, realm: "example", max_retries: 0,
                                                retry_if_unreachable: false});
    connection.onopen = () => resolve({connected: true});
    connection.onclose = (reason, details) => {
        resolve({connected: false, reason, uri: details && details.reason});
        return true;  // no retry
    };
    connection.open();
})"""


@pytest.fixture(scope="module")
def server(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[GunicornProcess]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("unreachable")
    env = {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "WAMP_BRIDGE_PEER_SECRET": secrets.token_urlsafe(32),
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{free_port()}/ws",  # nothing listens there
        "WAMP_BRIDGE_CONNECT_TIMEOUT": "2",
        "EXAMPLE_DATABASE": str(tmp / "board.sqlite3"),
    }
    with GunicornProcess("examples.app:app", env=env) as proc:
        yield proc


def _page(chromium_path: str, url: str, scripts: list[Path]) -> t.Any:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page()
    page.goto(url)
    for script in scripts:
        page.add_script_tag(path=str(script))
    return playwright, browser, page


def test_wampy_connect_rejects_with_the_router_unavailable_uri(chromium: str,  # noqa: F811
                                                              server: GunicornProcess) -> None:
    playwright, browser, page = _page(chromium, f"{server.url}/api/me", [WAMPY_JS])
    try:
        outcome = page.evaluate(WAMPY_CONNECT)
    finally:
        browser.close()
        playwright.stop()
    assert outcome == {"connected": False, "uri": UNAVAILABLE, "name": outcome.get("name")}, outcome


def test_autobahn_js_closes_with_the_router_unavailable_uri(chromium: str,  # noqa: F811
                                                            server: GunicornProcess) -> None:
    _require(AUTOBAHN_JS.is_file(), "autobahn-browser is not installed in node_modules/: run scripts/setup")
    playwright, browser, page = _page(chromium, f"{server.url}/api/me", [AUTOBAHN_JS])
    try:
        outcome = page.evaluate(AUTOBAHN_CONNECT, server.ws_url("/wamp"))
    finally:
        browser.close()
        playwright.stop()
    assert outcome["connected"] is False and outcome["uri"] == UNAVAILABLE, outcome
