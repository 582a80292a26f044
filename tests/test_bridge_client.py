"""The plugin's browser-like client (``bridge_client``) against a real Crossbar and a real gunicorn."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask import request
from flask import session

from flask_wamp_bridge import ConnectError
from flask_wamp_bridge import WampBridge
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import TESTER_AUTHID
from flask_wamp_bridge.testing import TESTER_SECRET
from flask_wamp_bridge.testing import start_router
from flask_wamp_bridge.testing.bridge_client import BridgeServer

ROOMS = {"user": [{"uri": "app.", "match": "prefix", "allow": ["call", "subscribe", "publish"]}]}


def make_app(settings: t.Mapping[str, t.Any]) -> Flask:
    bridge = WampBridge()

    @bridge.register("app.echo")
    def echo(*args: t.Any) -> t.Any:
        return list(args)

    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", **settings)
    bridge.init_app(app)

    @app.post("/login")
    def login() -> dict[str, bool]:
        session["_user_id"] = request.form["name"]
        return {"ok": True}

    @app.post("/logout")
    def logout() -> dict[str, bool]:
        session.pop("_user_id", None)
        return {"ok": True}

    return app


@pytest.fixture
def rooms_router(tmp_path: Path) -> t.Iterator[CrossbarProcess]:
    """A router whose users may publish (the default permissions let browsers only call and subscribe)."""
    router = start_router(tmp_path / "crossbar", WAMP_BRIDGE_PERMISSIONS=ROOMS)
    try:
        yield router
    finally:
        router.stop()


def test_browsers_publish_and_subscribe_with_msgpack(
    rooms_router: CrossbarProcess, bridge_client: t.Callable[..., t.Any]
) -> None:
    assert rooms_router.settings is not None
    app = make_app(rooms_router.settings)
    ann, bob = bridge_client(app, serializer="msgpack"), bridge_client(app, serializer="msgpack")
    ann.login(name="ann")
    bob.login(name="bob")
    heard = bob.subscribe("app.room.1")
    ann.publish("app.room.1", b"\x00bytes", who="ann")
    assert heard.wait(1) == [((b"\x00bytes",), {"who": "ann"})]
    assert ann.call("app.echo", 1, "two") == [1, "two"]


def test_login_and_logout_change_who_the_session_is(
    wamp_bridge_settings: dict[str, t.Any], bridge_client: t.Callable[..., t.Any]
) -> None:
    client = bridge_client(make_app(wamp_bridge_settings))
    assert client.authrole == "anonymous"
    client.login(name="ann")
    assert (client.authid, client.authrole) == ("ann", "user")
    client.logout()
    assert client.authrole == "anonymous"


def test_an_app_not_wired_to_the_test_router_is_explained(
    wamp_bridge_settings: dict[str, t.Any], tmp_path: Path
) -> None:
    app = make_app({**wamp_bridge_settings, "WAMP_BRIDGE_REALM": "elsewhere"})  # a realm the test router lacks
    server = BridgeServer(app, tmp_path / "gunicorn.log", tester=(TESTER_AUTHID, TESTER_SECRET))
    with pytest.raises(ConnectError, match="wamp_bridge_settings"):
        server.start()
    assert server.pid is None
