"""Test app for the server-side peer under a real gunicorn worker (see tests/test_extension.py).

Configured from ``FLASK_*`` environment variables (``FLASK_WAMP_BRIDGE_ROUTER_URL`` ...).
Procedures live under ``WAMP_BRIDGE_PREFIX`` (``app.peertest.`` in the tests).
"""

from __future__ import annotations

import os
import random
import typing as t

import gevent
from flask import Flask
from flask import current_app
from flask import g
from flask import request

from flask_wamp_bridge import ApplicationError
from flask_wamp_bridge import CallTimeout
from flask_wamp_bridge import NotConnected
from flask_wamp_bridge import WampBridge
from flask_wamp_bridge.wamp.peer import current_details

bridge = WampBridge()
events: list[dict[str, t.Any]] = []
inflight = {"now": 0, "max": 0}


@bridge.register()
def echo(n: int) -> int:
    gevent.sleep(random.random() * 0.01)  # answers leave out of order
    return n


@bridge.register()
def pid() -> int:
    return os.getpid()


@bridge.register()
def whoami() -> dict[str, t.Any]:
    details = g.wamp_details
    assert details is current_details()
    return {"app": current_app.name, "caller_authid": details.caller_authid, "procedure": details.procedure}


@bridge.register()
def fail(kind: str) -> None:
    if kind == "app":
        raise ApplicationError("app.peertest.refused", "no way", code=7)
    raise RuntimeError("internal detail that must not leak")


@bridge.register()
def add(a: int, b: int) -> dict[str, int]:
    """Both a procedure and an HTTP view (routed in create_app)."""
    return {"sum": a + b}


@bridge.subscribe()
def news(*args: t.Any, **kwargs: t.Any) -> None:
    kwargs.pop("meta", None)  # wampy publishers add their own
    events.append({"args": list(args), "kwargs": kwargs, "topic": g.wamp_details.topic})
    # tell the tests which worker saw it (subscribers run in every worker)
    bridge.publish(bridge.state().prefix + "news_seen", os.getpid())


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "peer-app-secret-key"
    app.config.from_prefixed_env("FLASK")
    bridge.init_app(app)
    app.add_url_rule("/add/<int:a>/<int:b>", view_func=add)

    @app.route("/echo/<int:n>")
    def echo_view(n: int) -> dict[str, t.Any]:
        inflight["now"] += 1
        inflight["max"] = max(inflight["max"], inflight["now"])
        try:
            return {"n": n, "got": g.wampy.rpc.echo(n)}
        finally:
            inflight["now"] -= 1

    @app.route("/inflight")
    def inflight_view() -> dict[str, int]:
        return inflight

    @app.route("/call/<procedure>", methods=["POST"])
    def call_view(procedure: str) -> t.Any:
        body = request.get_json()
        try:
            result = g.wampy.call(procedure, *body.get("args", []), **body.get("kwargs", {}))
        except CallTimeout as exc:
            return {"timeout": exc.error}, 504
        except ApplicationError as exc:
            return {"error": exc.error, "args": list(exc.args), "kwargs": exc.kwargs}, 502
        except NotConnected as exc:
            return {"not_connected": str(exc)}, 503
        return {"result": result}

    @app.route("/publish", methods=["POST"])
    def publish_view() -> dict[str, t.Any]:
        body = request.get_json()
        g.wampy.publish(topic=body["topic"], message=body["message"])  # wampy style
        return {"ok": True}

    @app.route("/events")
    def events_view() -> dict[str, t.Any]:
        return {"events": events}

    @app.route("/pid")
    def pid_view() -> dict[str, t.Any]:
        return {"pid": os.getpid()}

    return app


app = create_app()
