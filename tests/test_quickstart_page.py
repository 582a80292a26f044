"""The quickstart's page (examples/quickstart/index.html) in headless Chromium, served by gunicorn.

It logs in over HTTP, joins through /wamp with wampy.js (served by the app's
``/wampy.min.js`` route from node_modules), calls, and shows a shout that a
view published for another user.
"""

from __future__ import annotations

import importlib.util
import sys
import typing as t
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from test_browser import CHROMIUM_ARGS
from test_browser import chromium  # noqa: F401  (fixture)

from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import TESTER_SECRET
from flask_wamp_bridge.testing.bridge_client import BridgeClient
from flask_wamp_bridge.testing.bridge_client import BridgeServer

pytestmark = pytest.mark.browser
WAIT_MS = 30_000


def _quickstart() -> t.Any:
    name = "quickstart_app_for_browser_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "examples" / "quickstart" / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_quickstart_page_logs_in_calls_and_hears_shouts(
    chromium: str, wamp_bridge_settings: dict[str, t.Any], tmp_path: Path  # noqa: F811
) -> None:
    from playwright.sync_api import expect
    from playwright.sync_api import sync_playwright

    app = _quickstart().create_app(wamp_bridge_settings)
    with BridgeServer(app, tmp_path / "gunicorn.log", tester=(TESTER_AUTHID, TESTER_SECRET)) as server:
        wampy = BridgeClient(server.url).get("/wampy.min.js")
        assert wampy.status == 200 and b"Wampy" in wampy.body
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(server.url + "/")
                page.fill("input[name=name]", "ann")
                page.click("button")
                out = page.locator("#out")
                expect(out).to_contain_text("joined as ann (user)", timeout=WAIT_MS)
                expect(out).to_contain_text("2 + 3 = 5", timeout=WAIT_MS)
                expect(out).to_contain_text("listening for shouts", timeout=WAIT_MS)

                bob = BridgeClient(server.url)
                bob.login(name="bob")
                assert bob.post("/shout", data={"text": "hello"}).status == 200
                expect(out).to_contain_text("bob: hello", timeout=WAIT_MS)
                assert not errors, errors
            finally:
                browser.close()
