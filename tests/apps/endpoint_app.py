"""Test app for the browser-facing WAMP endpoint (see tests/test_endpoint.py).

Configured from ``FLASK_*`` environment variables (``FLASK_WAMP_BRIDGE_ROUTER_URL``
...). ``POST /login`` with ``user=<authid>`` (and optionally ``role=``) logs a user in (Flask session
cookie); the WAMP route ``/wamp`` then relays that browser's session to the
router as that user.
"""

from __future__ import annotations

import typing as t

import gevent
from flask import Flask
from flask import g
from flask import jsonify
from flask import request
from flask import session

from flask_wamp_bridge import WampBridge

bridge = WampBridge()


def _caller() -> dict[str, t.Any]:
    details = g.wamp_details
    return {"authid": details.caller_authid, "authrole": details.caller_authrole}


@bridge.register("app.whoami")
def whoami() -> dict[str, t.Any]:
    return _caller()


@bridge.register("app.public.whoami")
def public_whoami() -> dict[str, t.Any]:
    return _caller()


@bridge.register("app.sleep")
def sleep(seconds: float) -> float:
    gevent.sleep(seconds)
    return seconds


@bridge.identity_loader
def load_identity() -> dict[str, t.Any] | None:
    """The logged-in user, with the role ``/login`` was given (default: ``WAMP_BRIDGE_USER_ROLE``)."""
    user = session.get("_user_id")
    return {"authid": user, "authrole": session.get("role")} if user else None


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "endpoint-app-secret-key"
    app.config.from_prefixed_env("FLASK")
    bridge.init_app(app)  # mounts /wamp and registers the ticket authenticator

    @app.post("/login")
    def login() -> t.Any:
        session["_user_id"] = request.form["user"]
        session["role"] = request.form.get("role")
        return "ok"

    @app.post("/logout/<authid>")
    def logout(authid: str) -> t.Any:
        return jsonify(killed=bridge.logout(authid))

    @app.get("/relays")
    def relays() -> t.Any:
        from flask_wamp_bridge.bridge import relay_io as _relay_io

        return jsonify(sorted(s.relay.identity.authid for s in _relay_io.live_sessions() if s.relay.identity))

    return app


app = create_app()
