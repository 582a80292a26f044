"""Test app for the browser-facing WAMP endpoint (see tests/test_endpoint.py).

Configured from ``FLASK_*`` environment variables (``FLASK_WAMP_BRIDGE_ROUTER_URL``
...). ``POST /login`` with ``user=<authid>`` (and optionally ``role=``) logs a user in (Flask session
cookie); the WAMP route ``/wamp`` then relays that browser's session to the
router as that user.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import gevent
from flask import Flask
from flask import g
from flask import jsonify
from flask import request
from flask import send_from_directory
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


#: Invocations of app.sleep under way in this worker (the fault tests wait for their calls to arrive).
SLEEPING = [0]


@bridge.register("app.sleep")
def sleep(seconds: float) -> float:
    SLEEPING[0] += 1
    try:
        gevent.sleep(seconds)
    finally:
        SLEEPING[0] -= 1
    return seconds


@bridge.register("app.count")
def count(n: int) -> str:
    """Progressive results 0 .. n-1 (to a caller that asked for them), then ``"done"``."""
    progress = g.wamp_details.progress
    for i in range(n):
        if progress is not None:
            progress(i)
    return "done"


NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
#: The browser WAMP clients the client page loads (wampy.js with its serializers, autobahn-js).
CLIENT_SCRIPTS = ("wampy/dist/browser/wampy.min.js", "wampy/dist/browser/wampy-all.min.js",
                  "autobahn-browser/autobahn.min.js")

#: What the app's subscriber to ``app.board`` got: (args, publisher authid, publisher role).
board: list[tuple[t.Any, ...]] = []


@bridge.subscribe("app.board")
def on_board(*args: t.Any) -> None:
    details = g.wamp_details
    board.append((list(args), details.publisher_authid, details.publisher_authrole))


@bridge.identity_loader
def load_identity() -> dict[str, t.Any] | None:
    """The logged-in user, with the role ``/login`` was given (default: ``WAMP_BRIDGE_USER_ROLE``)."""
    user = session.get("_user_id")
    return {"authid": user, "authrole": session.get("role")} if user else None


def _slow_authenticator(seconds: dict[str, float]) -> None:
    """An overloaded authenticator: a ticket for authid waits ``seconds[authid]`` before it is checked."""
    from flask_wamp_bridge.bridge.tickets import Tickets

    original = Tickets.authenticator

    def authenticator(self: Tickets) -> t.Callable[..., t.Any]:
        authenticate = original(self)

        def late(realm: str, authid: str, details: t.Any) -> t.Any:
            gevent.sleep(seconds.get(authid, 0.0))
            return authenticate(realm, authid, details)

        return late

    Tickets.authenticator = authenticator  # type: ignore[method-assign]


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "endpoint-app-secret-key"
    app.config.from_prefixed_env("FLASK")
    if app.config.get("TEST_SLOW_AUTHENTICATOR"):
        _slow_authenticator(app.config["TEST_SLOW_AUTHENTICATOR"])
    bridge.init_app(app)  # mounts /wamp and registers the ticket authenticator

    @app.post("/login")
    def login() -> t.Any:
        session["_user_id"] = request.form["user"]
        session["role"] = request.form.get("role")
        return "ok"

    @app.post("/logout/<authid>")
    def logout(authid: str) -> t.Any:
        return jsonify(killed=bridge.logout(authid))

    @app.get("/sleeping")
    def sleeping() -> t.Any:
        return jsonify(SLEEPING[0])

    @app.get("/peer-call/sleep/<int:seconds>")
    def peer_call_sleep(seconds: int) -> t.Any:
        """A view waiting on a call through g.wampy: which exception it gets when the router goes."""
        try:
            return jsonify(result=g.wampy.call("app.sleep", seconds))
        except Exception as exc:  # reported to the test, whatever it is
            return jsonify(error=type(exc).__name__, message=str(exc))

    @app.get("/clients")
    def clients_page() -> str:
        """An empty page with the browser WAMP clients loaded: tests drive them with page.evaluate."""
        scripts = "".join(f'<script src="/js/{name}"></script>' for name in CLIENT_SCRIPTS)
        return f"<!doctype html><html><head><title>clients</title>{scripts}</head><body></body></html>"

    @app.get("/js/<path:name>")
    def client_script(name: str) -> t.Any:
        if name not in CLIENT_SCRIPTS:
            return "not found", 404
        return send_from_directory(NODE_MODULES, name, mimetype="text/javascript")

    @app.get("/board")
    def read_board() -> t.Any:
        return jsonify(board)

    @app.get("/peer")
    def peer_session() -> t.Any:
        return jsonify(session=bridge.peer.session_id)

    @app.get("/relays")
    def relays() -> t.Any:
        from flask_wamp_bridge.bridge import relay_io as _relay_io

        return jsonify(sorted(s.relay.identity.authid for s in _relay_io.live_sessions() if s.relay.identity))

    return app


app = create_app()
