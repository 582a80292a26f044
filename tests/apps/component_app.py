"""Test app for the component features (tests/test_component.py): validation, hooks, signals,
background tasks, a scheduled job. Configured from ``FLASK_*`` environment variables; every
process appends what happened to the JSON-lines file ``COMPONENT_RECORD``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import typing as t
from pathlib import Path

import gevent
from flask import Flask
from flask import abort
from flask import g
from flask import render_template
from flask import request
from flask import send_file
from flask import session

from flask_wamp_bridge import ApplicationError
from flask_wamp_bridge import WampBridge
from flask_wamp_bridge import signals

bridge = WampBridge()


def record(kind: str, **data: t.Any) -> None:
    path = os.environ.get("COMPONENT_RECORD")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"kind": kind, "pid": os.getpid(), **data}) + "\n")


@dataclasses.dataclass
class Point:
    x: int
    y: int


@bridge.register()
def add(a: int, b: int) -> int:
    return a + b


@bridge.register()
def mirror(p: Point) -> Point:
    return Point(p.y, p.x)


# -- middleware: order, refusal, a role check, timing ---------------------------------------

@bridge.before_call
def first() -> None:
    g.steps = ["before first"]


@bridge.before_call
def refuse_closed() -> None:
    if g.wamp_details.procedure.endswith(".closed"):
        raise ApplicationError("app.error.closed", "this procedure is closed")
    g.steps.append("before second")


@bridge.before_call
def start_timer() -> None:
    g.started = time.perf_counter()


@bridge.after_call
def stop_timer(result: t.Any) -> t.Any:
    g.elapsed = time.perf_counter() - g.started  # an app would log or export it
    if isinstance(result, list):
        result.append("after timer")
    return result


@bridge.after_call
def last(result: t.Any) -> t.Any:
    if isinstance(result, list):
        result.append("after last")
    return result


@bridge.call_errorhandler(KeyError)
def missing_key(exc: KeyError) -> dict[str, str]:
    return {"missing": str(exc.args[0])}


def requires_role(role: str) -> t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]:
    def decorate(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        @functools.wraps(fn)
        def check(*args: t.Any, **kwargs: t.Any) -> t.Any:
            if g.wamp_details.caller_authrole != role:
                raise ApplicationError("app.error.forbidden", f"needs role {role}")
            return fn(*args, **kwargs)
        return check
    return decorate


@bridge.register()
def steps() -> list[str]:
    g.steps.append("procedure")
    return g.steps


@bridge.register()
def closed() -> str:
    return "never"


@bridge.register()
def lookup(key: str) -> str:
    return {"a": "A"}[key]


@bridge.register()
@requires_role("admin")
def admin_only(n: int) -> int:
    return n


@bridge.subscribe()
def number(n: int) -> None:
    record("event", n=n)


# -- background tasks and a scheduled job -----------------------------------------------------

@bridge.register()
def sleeper() -> str:
    def sleep_forever() -> None:
        try:
            gevent.sleep(3600)
        finally:
            record("task_stopped")

    bridge.spawn(sleep_forever)
    return "spawned"


if os.environ.get("COMPONENT_TICK"):
    @bridge.every(1.0)
    def tick() -> None:
        start = time.time()
        gevent.sleep(0.2)
        record("tick", start=start, end=time.time())


# -- signals ------------------------------------------------------------------------------

def _recorder(name: str) -> t.Callable[..., None]:
    def receive(sender: t.Any, **kwargs: t.Any) -> None:
        record("signal", name=name, sender=getattr(sender, "name", repr(sender)),
               **{k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, list, type(None)))})
    return receive


_receivers = {name: _recorder(name) for name in signals.__all__ if name != "send"}
for _name, _receiver in _receivers.items():
    getattr(signals, _name).connect(_receiver)



@bridge.identity_loader
def load_identity() -> dict[str, t.Any] | None:
    user = session.get("user")
    return {"authid": user, "authrole": None} if user else None


app = Flask(__name__)
app.config.from_prefixed_env()
bridge.init_app(app)


@app.post("/login")
def login() -> str:
    session["user"] = request.form["user"]
    return "ok"


@app.get("/page")
def page() -> str:
    return render_template("component_page.html", prefix=app.config["WAMP_BRIDGE_PREFIX"],
                           realm=app.config["WAMP_BRIDGE_REALM"])


@app.get("/wampy.min.js")
def wampy_js() -> t.Any:
    path = Path(__file__).resolve().parents[2] / "node_modules" / "wampy" / "dist" / "browser" / "wampy.min.js"
    if not path.is_file():
        abort(404)
    return send_file(path)
