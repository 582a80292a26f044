"""Test app for the authorizer, event history and presence (tests/test_authorizer.py).

Users belong to teams (:data:`TEAMS`). The authorizer lets a user subscribe and
publish on ``app.team.<team>.`` of their own team, call ``app.doc.<owner>.save``
of their own documents and register under ``app.user.<authid>.``; topics under
``app.team.<team>.cached.`` are answered with ``cache: True``; ``app.slow.``
sleeps past the deadline and ``app.boom.`` raises. Every time the app's
function is asked, a line ``authid uri action`` goes to ``AUTHZ_LOG`` (a file:
the decisions happen in either worker). ``AUTHZ_QUERY_MS`` makes each
decision take that long, like a database query.
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import gevent
from flask import Flask
from flask import jsonify
from flask import request
from flask import send_from_directory
from flask import session

from flask_wamp_bridge import WampBridge

bridge = WampBridge()

TEAMS = {"alice": "red", "carol": "red", "bob": "blue"}
BOARD = "app.board.posts"
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
CLIENT_SCRIPTS = ("wampy/dist/browser/wampy.min.js", "autobahn-browser/autobahn.min.js")
#: The static rules: everything under app. may be called and subscribed, except where the authorizer decides.
PERMISSIONS = {"user": [{"uri": "app.", "allow": ["call", "subscribe"]},
                        *({"uri": prefix, "allow": []} for prefix in
                          ("app.team.", "app.doc.", "app.user.", "app.slow.", "app.boom."))]}


def _log(caller: t.Any, uri: str, action: str) -> None:
    path = os.environ.get("AUTHZ_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{caller.authid} {uri} {action}\n")


@bridge.authorizer
def authorize(caller: t.Any, uri: str, action: str) -> t.Any:
    _log(caller, uri, action)
    query = float(os.environ.get("AUTHZ_QUERY_MS", "0"))
    if query:  # what a database query would take (bench/bench_authorizer.py)
        gevent.sleep(query / 1000)
    parts = uri.split(".")
    if uri.startswith("app.slow."):
        gevent.sleep(30)
    if uri.startswith("app.boom."):
        raise RuntimeError("the database is down")
    if uri.startswith("app.team.") and len(parts) > 3 and action in ("subscribe", "publish"):
        allowed = TEAMS.get(caller.authid) == parts[2]
        return {"allow": allowed, "cache": parts[3] == "cached"}
    if uri.startswith("app.board.") and action == "publish":
        return True
    if uri.startswith("app.doc.") and action == "call":
        return len(parts) == 4 and parts[2] == caller.authid and parts[3] == "save"
    if uri.startswith("app.user.") and action == "register":
        return len(parts) > 3 and parts[2] == caller.authid
    return False


@bridge.register("app.doc.", match="prefix")
def save_document(*args: t.Any) -> str:
    return "saved"


@bridge.register("app.whoami")
def whoami() -> str:
    from flask import g

    return str(g.wamp_details.caller_authid)


@bridge.identity_loader
def load_identity() -> dict[str, t.Any] | None:
    user = session.get("_user_id")
    return {"authid": user} if user else None


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "authz-app-secret-key"
    app.config["WAMP_BRIDGE_PERMISSIONS"] = PERMISSIONS
    app.config["WAMP_BRIDGE_AUTHORIZER"] = "wamp_bridge.authorize"
    app.config.from_prefixed_env("FLASK")
    bridge.init_app(app)

    @app.post("/login")
    def login() -> t.Any:
        session["_user_id"] = request.form["user"]
        return "ok"

    @app.post("/logout/<authid>")
    def logout(authid: str) -> t.Any:
        return jsonify(killed=bridge.logout(authid))

    @app.post("/post/<text>")
    def post(text: str) -> t.Any:
        bridge.publish(BOARD, text)
        return "ok"

    @app.get("/online/<team>")
    def online(team: str) -> t.Any:
        return jsonify(bridge.subscribers(f"app.team.{team}.chat"))

    @app.get("/subscribers/<topic>")
    def subscribers(topic: str) -> t.Any:
        return jsonify(bridge.subscribers(topic))

    @app.get("/clients")
    def clients_page() -> str:
        scripts = "".join(f'<script src="/js/{name}"></script>' for name in CLIENT_SCRIPTS)
        return f"<!doctype html><html><head><title>clients</title>{scripts}</head><body></body></html>"

    @app.get("/js/<path:name>")
    def client_script(name: str) -> t.Any:
        if name not in CLIENT_SCRIPTS:
            return "not found", 404
        return send_from_directory(NODE_MODULES, name, mimetype="text/javascript")

    return app


app = create_app()
