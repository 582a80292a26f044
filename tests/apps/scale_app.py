"""Test app for several hosts and router nodes (see tests/test_scale_hosts.py, test_scale_cluster.py).

Configured from ``FLASK_*`` environment variables; ``FLASK_HOST_NAME`` names
the host. Every worker registers ``app.where`` (answers with its host and
pid), so calls show which worker served them. ``POST /login`` with
``user=<authid>`` logs a user in (the cookie is valid on every host: they
share ``SECRET_KEY``).
"""

from __future__ import annotations

import os
import typing as t

from flask import Flask
from flask import current_app
from flask import jsonify
from flask import request
from flask import session

from flask_wamp_bridge import WampBridge

bridge = WampBridge()


@bridge.register("app.where")
def where() -> dict[str, t.Any]:
    return {"host": current_app.config["HOST_NAME"], "pid": os.getpid()}


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "scale-app-secret-key"
    app.config["HOST_NAME"] = "?"
    app.config.from_prefixed_env("FLASK")
    bridge.init_app(app)

    @app.post("/login")
    def login() -> t.Any:
        session["_user_id"] = request.form["user"]
        return "ok"

    @app.get("/where")
    def where_view() -> t.Any:
        """``n`` calls of ``app.where`` from this worker: who answered each."""
        n = int(request.args.get("n", "1"))
        return jsonify([bridge.call("app.where") for _ in range(n)])

    @app.post("/publish/<topic>")
    def publish(topic: str) -> t.Any:
        bridge.publish(topic, request.form["message"])
        return jsonify(host=app.config["HOST_NAME"])

    @app.post("/publish_to/<authid>/<topic>")
    def publish_to(authid: str, topic: str) -> t.Any:
        """The message to ``authid`` only, then a broadcast marker from the same session (ordered after it)."""
        bridge.publish_to(authid, topic, request.form["message"])
        bridge.publish(topic, "marker")
        return jsonify(host=app.config["HOST_NAME"])

    @app.post("/logout/<authid>")
    def logout(authid: str) -> t.Any:
        return jsonify(killed=bridge.logout(authid))

    return app


app = create_app()
