"""The pytest plugin's routers are the app's router: generated from the app's own settings."""

from __future__ import annotations

import json
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path

import websocket
from helpers import GunicornProcess

from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import router_settings
from flask_wamp_bridge.testing import start_router

ADMIN_APP = {
    "WAMP_BRIDGE_REALM": "ops",
    "WAMP_BRIDGE_BROWSER_ROLES": ["admin"],
    "WAMP_BRIDGE_PERMISSIONS": {"admin": [{"uri": "app.admin.", "match": "prefix", "allow": ["call"]}]},
    "WAMP_BRIDGE_ROUTER_URL": "ws://prod.example.com/ws",
    "WAMP_BRIDGE_PEER_SECRET": "the production secret",
    "WAMP_BRIDGE_SERVICES": {"billing": {"secret": "b", "role": "backend"}},
}


def test_router_settings_keep_the_apps_and_own_address_and_credentials() -> None:
    settings = router_settings(4321, ADMIN_APP)
    assert settings["WAMP_BRIDGE_PERMISSIONS"] == ADMIN_APP["WAMP_BRIDGE_PERMISSIONS"]
    assert settings["WAMP_BRIDGE_REALM"] == "ops"
    assert settings["WAMP_BRIDGE_ROUTER_URL"] == "ws://127.0.0.1:4321/ws"
    assert settings["WAMP_BRIDGE_PEER_SECRET"] != "the production secret"
    assert set(settings["WAMP_BRIDGE_SERVICES"]) == {"billing", TESTER_AUTHID}
    assert "WAMP_BRIDGE_PERMISSIONS" not in router_settings(4321)


def test_the_test_router_honours_an_app_role(tmp_path: Path) -> None:
    router = start_router(tmp_path, ADMIN_APP)
    assert router.settings is not None
    env = {f"FLASK_{key}": value if isinstance(value, str) else json.dumps(value)
           for key, value in router.settings.items()}
    server = GunicornProcess("tests.apps.endpoint_app:app", env=env).start()
    try:
        body = urllib.parse.urlencode({"user": "root", "role": "admin"}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{server.url}/login", data=body), timeout=10) as resp:
            cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
        ws = websocket.create_connection(server.ws_url("/wamp"), origin=server.url, subprotocols=["wamp.2.json"],
                                         cookie=cookie, timeout=10)
        ws.send(json.dumps([1, "ops", {"roles": {"caller": {"features": {}}}}]))
        welcome = json.loads(ws.recv())
        assert welcome[0] == 2 and welcome[2]["authrole"] == "admin", welcome
        ws.send(json.dumps([48, 1, {}, "app.whoami"]))  # the admin role's rules allow app.admin.* only
        assert json.loads(ws.recv())[4] == "wamp.error.not_authorized"
        ws.close()
    finally:
        server.stop()
        router.stop()


def test_wamp_bridge_app_names_the_app_whose_settings_are_used(tmp_path: Path, monkeypatch: t.Any) -> None:
    from flask_wamp_bridge.testing import _app_from_spec

    (tmp_path / "someapp.py").write_text(
        "from flask import Flask\n"
        "def create_app():\n"
        "    app = Flask(__name__)\n"
        "    app.config['WAMP_BRIDGE_REALM'] = 'mine'\n"
        "    return app\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _app_from_spec("someapp:create_app")["WAMP_BRIDGE_REALM"] == "mine"


def test_importing_from_the_plugin_before_pytest_loads_it_does_not_warn(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from helpers import REPO_ROOT

    (tmp_path / "test_mine.py").write_text(
        "from flask_wamp_bridge.testing import router_settings\n\n"
        "pytest_plugins = ['flask_wamp_bridge.testing']\n\n\n"
        "def test_it():\n    assert router_settings(1)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:pytest_wampy",
                           "-W", "error::pytest.PytestAssertRewriteWarning", "test_mine.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stdout.lower(), done.stdout
