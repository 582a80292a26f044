"""The package's import hygiene and public surface."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO_ROOT

import flask_wamp_bridge

# Modules that must stay importable without gevent, gunicorn or gevent-websocket:
# everything a Flask app, the CLI, or a pure test imports.
LIGHT_MODULES = [
    "flask_wamp_bridge",
    "flask_wamp_bridge.errors",
    "flask_wamp_bridge.settings",
    "flask_wamp_bridge.wamp.messages",
    "flask_wamp_bridge.bridge.identity",
    "flask_wamp_bridge.bridge.tickets",
    "flask_wamp_bridge.bridge.relay",
    "flask_wamp_bridge.bridge.checks",
    "flask_wamp_bridge.bridge.security_log",
    "flask_wamp_bridge.bridge.router_text",
    "flask_wamp_bridge.testing.tolerant",
    "flask_wamp_bridge.wamp.bounds",
    "flask_wamp_bridge.wamp.heads",
    "flask_wamp_bridge.wamp.session",
    "flask_wamp_bridge.wamp.client_auth",
    "flask_wamp_bridge.extension",
    "flask_wamp_bridge.bridge.endpoint",
    "flask_wamp_bridge.websocket.routes",
    "flask_wamp_bridge.router.config",
    "flask_wamp_bridge.router.process",
    "flask_wamp_bridge.cli",
    "flask_wamp_bridge.websocket.frames",
    "flask_wamp_bridge.websocket.handshake",
    "flask_wamp_bridge.websocket.socket_errors",
    "flask_wamp_bridge.websocket.lifecycle",
    "flask_wamp_bridge.testing",
    "flask_wamp_bridge.testing.bridge_client",
    "flask_wamp_bridge.testing.ports",
]


def _fresh_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_imports_light_modules_import_no_gevent_gunicorn_or_logging_setup() -> None:
    code = f"""
import json, logging, sys
root_handlers = list(logging.getLogger().handlers)
for name in {LIGHT_MODULES!r}:
    __import__(name)
from flask import Flask
from flask_wamp_bridge import WampBridge, Sockets
app = Flask("x")
app.config["SECRET_KEY"] = "k"
WampBridge(app)
Sockets(app)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("gevent", "gunicorn", "geventwebsocket", "wampy"))
print(json.dumps({{"heavy": heavy, "handlers_changed": logging.getLogger().handlers != root_handlers}}))
"""
    out = json.loads(_fresh_python(code))
    assert out == {"heavy": [], "handlers_changed": False}


def test_imports_worker_attribute_is_the_worker_class_as_gunicorn_loads_it() -> None:
    code = """
from gunicorn.util import load_class
from gunicorn.workers.ggevent import GeventPyWSGIWorker
cls = load_class("flask_wamp_bridge.worker")
again = load_class("flask_wamp_bridge.worker")
print(cls.__name__, issubclass(cls, GeventPyWSGIWorker), cls is again)
"""
    assert _fresh_python(code).split() == ["BridgeWorker", "True", "True"]


def test_imports_all_lists_exactly_the_public_names() -> None:
    public = sorted(name for name in vars(flask_wamp_bridge)
                    if not name.startswith("_") and name not in ("annotations", "t")
                    and not isinstance(getattr(flask_wamp_bridge, name), type(sys)))
    assert sorted(n for n in flask_wamp_bridge.__all__ if n != "__version__") == public
    for name in flask_wamp_bridge.__all__:
        assert hasattr(flask_wamp_bridge, name)


def test_imports_public_types_come_from_the_package_without_gevent() -> None:
    code = """
import json, sys
from flask_wamp_bridge import CallResult, EventDetails, InvocationDetails, WebSocket
from flask_wamp_bridge.wamp import session_events
same = [CallResult is session_events.CallResult, EventDetails is session_events.EventDetails,
        InvocationDetails is session_events.InvocationDetails]
print(json.dumps({"same": same, "gevent": "gevent" in sys.modules}))
"""
    assert json.loads(_fresh_python(code)) == {"same": [True, True, True], "gevent": False}


def test_imports_the_websocket_type_fits_the_real_socket_and_not_others() -> None:
    import socket

    from flask_wamp_bridge.websocket.connection import WebSocket

    left, right = socket.socketpair()
    try:
        ws = WebSocket(left, role="client")
        assert isinstance(ws, flask_wamp_bridge.WebSocket)
        assert not isinstance(object(), flask_wamp_bridge.WebSocket)
    finally:
        left.close()
        right.close()


def test_imports_the_example_app_imports_only_the_package_top() -> None:
    import ast

    tree = ast.parse((REPO_ROOT / "examples" / "app.py").read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    ours = {name for name in modules if name and name.startswith("flask_wamp_bridge")}
    assert ours == {"flask_wamp_bridge"}
