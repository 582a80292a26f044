"""Test app for the WebSocket layer, served by real gunicorn processes in the tests.

Environment:
``HOOK_FILE``: the worker's shutdown hook appends ``"<pid> <code>"`` lines to it.
"""

from __future__ import annotations

import json
import os
import typing as t

from flask import Blueprint
from flask import Flask
from flask import jsonify
from flask import request
from flask import session

from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.websocket import lifecycle as _lifecycle
from flask_wamp_bridge.websocket.routes import Sockets
from flask_wamp_bridge.websocket.routes import WebSocketBlueprint

app = Flask(__name__)
app.config["SECRET_KEY"] = "test-secret"
app.config["WAMP_BRIDGE_ALLOWED_ORIGINS"] = ["https://trusted.example"]
sockets = Sockets(app)

#: per-worker record of what happened, read through GET /stats
STATS: dict[str, t.Any] = {"start_hook": None}


@_lifecycle.on_worker_start
def _started() -> None:
    from gevent import monkey

    STATS["start_hook"] = {
        "pid": os.getpid(),
        "in_worker": _lifecycle.in_worker(),
        "socket_patched": monkey.is_module_patched("socket"),
    }


@_lifecycle.on_worker_shutdown
def _stopping(code: int) -> None:
    path = os.environ.get("HOOK_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {code}\n")


# --- HTTP ---------------------------------------------------------------------------


@app.get("/")
def index() -> str:
    return "ok"


@app.post("/login")
def login() -> str:
    session["user"] = request.form["user"]
    return "logged in"


@app.get("/stats")
def stats() -> t.Any:
    return jsonify(STATS)


@app.get("/pid")
def pid() -> str:
    return str(os.getpid())


# --- WebSocket routes ---------------------------------------------------------------------


@sockets.route("/echo")
def echo(ws: t.Any) -> None:
    for message in ws:
        ws.send(message)
    STATS["echo_close"] = [ws.close_code, ws.close_reason]


@sockets.route("/classic")
def classic(ws: t.Any) -> None:
    # the Flask-Sockets README loop: send(None) after the close must end it quietly
    while not ws.closed:
        message = ws.receive()
        ws.send(message)


@sockets.route("/rooms/<room>/<int:seat>")
def room(ws: t.Any, room: str, seat: int) -> None:
    ws.send(json.dumps({"room": room, "seat": seat, "path": request.path}))


@sockets.route("/whoami")
def whoami(ws: t.Any) -> None:
    ws.send(json.dumps({"user": session.get("user"), "cookie": "session" in request.cookies}))
    session["written"] = True  # documented as not persisted


@sockets.route("/wamp", subprotocols=["wamp.2.json", "wamp.2.msgpack"])
def wamp(ws: t.Any) -> None:
    ws.send(ws.subprotocol or "")


@sockets.route("/limited", max_message_size=1024)
def limited(ws: t.Any) -> None:
    for message in ws:
        ws.send(message)
    STATS["limited_close"] = [ws.close_code, ws.close_reason]


@sockets.route("/pinged", ping_interval=0.3, idle_timeout=0)
def pinged(ws: t.Any) -> None:
    for message in ws:
        ws.send(message)


@sockets.route("/idle", idle_timeout=1.0, ping_interval=0)
def idle(ws: t.Any) -> None:
    for message in ws:
        ws.send(message)
    STATS["idle_close"] = [ws.close_code, ws.close_reason]


@sockets.route("/flood", send_timeout=1.0)
def flood(ws: t.Any) -> None:
    chunk = b"x" * 65536
    sent = 0
    try:
        while True:
            ws.send(chunk)
            sent += 1
    except ConnectionClosed as exc:
        STATS["flood"] = {"sent": sent, "error": str(exc), "close_code": ws.close_code}


@sockets.route("/burst")
def burst(ws: t.Any) -> None:
    import gevent

    senders, count = int(request.args["senders"]), int(request.args["count"])

    def send_all(i: int) -> None:
        for j in range(count):
            ws.send(f"{i}:{j}:" + "y" * (1000 + 37 * j))

    gevent.joinall([gevent.spawn(send_all, i) for i in range(senders)], raise_error=True)
    ws.receive()  # wait for the client to close


@sockets.route("/goodbye")
def goodbye(ws: t.Any) -> None:
    def on_shutdown(code: int) -> None:
        ws.send(f"bye {code}")
        ws.close(code, "see you")

    ws.on_server_shutdown = on_shutdown
    for message in ws:
        ws.send(message)


@sockets.route("/fail")
def fail(ws: t.Any) -> None:
    ws.receive()
    raise RuntimeError("handler failed on purpose")


@sockets.route("/proxy")
def proxy(ws: t.Any) -> None:
    # the client runs inside the worker: relay to this server's own /echo
    from flask_wamp_bridge.websocket.client import connect

    with connect(f"ws://{request.host}/echo") as upstream:
        for message in ws:
            upstream.send(message)
            ws.send(upstream.receive())


# A blueprint of WebSocket routes, and a plain Flask-Sockets-style blueprint.
ws_bp = WebSocketBlueprint("wsbp", __name__, url_prefix="/bp")


@ws_bp.route("/echo/<name>")
def bp_echo(ws: t.Any, name: str) -> None:
    for message in ws:
        ws.send(f"{name}:{message}")


legacy_bp = Blueprint("legacy", __name__)


@legacy_bp.route("/echo")
def legacy_echo(ws: t.Any) -> None:
    for message in ws:
        ws.send(f"legacy:{message}")


app.register_blueprint(ws_bp)
sockets.register_blueprint(legacy_bp, url_prefix="/legacy")


# Routes that use environ['wsgi.websocket'] directly, as Flask-Sockets code does.
@app.route("/raw", websocket=True)
def raw() -> str:
    ws = request.environ["wsgi.websocket"]
    message = ws.receive()  # accepts implicitly
    ws.send(f"raw:{message}")
    return ""


@app.route("/manual-accept", websocket=True)
def manual_accept() -> str:
    ws = request.environ["wsgi.websocket"]
    ws.accept()  # ignores any subprotocol the client offered
    ws.send("accepted")
    ws.receive()
    return ""


@sockets.route("/uncompressed", deflate=False)
def uncompressed(ws: t.Any) -> None:
    for message in ws:
        ws.send(message)
