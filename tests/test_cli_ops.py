"""The operator commands against a real Crossbar: ``flask wamp sessions|kick|call|publish`` and ``bridge.connected``."""

from __future__ import annotations

import json
import threading
import typing as t

import pytest
from flask import Flask
from helpers import wait_until

from flask_wamp_bridge import WampBridge
from flask_wamp_bridge.testing import WampClient


def _app(settings: t.Mapping[str, t.Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_AUTOSTART=False, **settings)
    WampBridge(app)
    return app


@pytest.fixture
def app(crossbar_router: t.Any) -> Flask:
    return _app(crossbar_router.settings)


def test_cli_call_and_publish_reach_the_router(app: Flask, crossbar_router: t.Any,
                                              wamp_client: t.Callable[..., WampClient]) -> None:
    service = wamp_client(crossbar_router)
    service.register("test.cli.echo", lambda *args, **kwargs: {"args": list(args), "kwargs": kwargs})
    got: list[t.Any] = []
    arrived = threading.Event()
    service.subscribe("test.cli.news", lambda *args, **kwargs: (got.append((args, kwargs)), arrived.set()))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["wamp", "call", "test.cli.echo", "3", "text", '{"a": 1}', "--kw", "flag=true"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"args": [3, "text", {"a": 1}], "kwargs": {"flag": True}}

    result = runner.invoke(args=["wamp", "publish", "test.cli.news", "hello", "--kw", "n=2"])
    assert result.exit_code == 0, result.output
    assert arrived.wait(10) and got == [(("hello",), {"n": 2})]

    result = runner.invoke(args=["wamp", "call", "test.cli.nobody"])
    assert result.exit_code == 1 and "wamp.error.no_such_procedure" in result.output


def test_cli_sessions_lists_users_and_kick_ends_theirs(app: Flask, crossbar_router: t.Any,
                                                      wamp_client: t.Callable[..., WampClient]) -> None:
    first = wamp_client(crossbar_router)
    second = wamp_client(crossbar_router)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["wamp", "sessions", "--json"])
    assert result.exit_code == 0, result.output
    tester = next(user for user in json.loads(result.stdout) if user["authid"] == first.authid)
    assert {first.session_id, second.session_id} <= set(tester["sessions"])
    assert tester["roles"] == [first.authrole] and tester["nodes"] == [crossbar_router.url]
    assert first.authid in runner.invoke(args=["wamp", "sessions"]).output

    result = runner.invoke(args=["wamp", "kick", first.authid])
    assert result.exit_code == 0, result.output
    assert f"ended {len(tester['sessions'])} session(s)" in result.output
    wait_until(lambda: not first.connected and not second.connected)


def test_connected_fails_fast_with_the_fix_when_the_router_is_not_there(crossbar_router: t.Any) -> None:
    from helpers import free_port

    from flask_wamp_bridge.errors import NotConnected

    app = _app({**crossbar_router.settings, "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{free_port()}/ws",
                "WAMP_BRIDGE_CONNECT_TIMEOUT": 0.5})
    with pytest.raises(NotConnected, match="WAMP_BRIDGE_PEER_AUTHID"):
        with app.app_context():
            with app.extensions["wamp_bridge"].bridge.connected():
                pass  # pragma: no cover


def test_cli_router_says_to_pass_cbdir_when_one_already_runs_there(tmp_path: t.Any) -> None:
    import os

    (tmp_path / "node.pid").write_text(json.dumps({"pid": os.getpid()}))
    app = _app({})
    result = app.test_cli_runner().invoke(args=["wamp", "router", "--cbdir", str(tmp_path)])
    assert result.exit_code == 1 and "--cbdir OTHER_DIR" in result.output
    assert "give a second router its own --cbdir" in " ".join(
        app.test_cli_runner().invoke(args=["wamp", "router", "--help"]).output.split())


def test_cli_help_is_plain_text() -> None:
    output = _app({}).test_cli_runner().invoke(args=["wamp", "run", "--help"]).output
    assert "``" not in output and "  python -m gevent.monkey -m flask --app APP wamp run" in output


def test_cli_router_keeps_numpys_notice_out_of_crossbars_output(tmp_path: t.Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "crossbar"
    fake.write_text("#!/bin/sh\n"
                    "echo 'Router starting'\n"
                    "echo '[Router 1] A module that was compiled using NumPy 1.x cannot be run in' >&2\n"
                    "echo '[Router 1]   File \"bjdata/__init__.py\", line 31' >&2\n"
                    "echo '[Router 1] AttributeError: _ARRAY_API not found' >&2\n"
                    "echo 'Router ready'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("WAMP_BRIDGE_CROSSBAR", str(fake))
    app = _app({"WAMP_BRIDGE_PEER_SECRET": "s"})
    result = app.test_cli_runner().invoke(args=["wamp", "router", "--cbdir", str(tmp_path / "node")])
    assert result.exit_code == 0, result.output
    assert "compiled using NumPy" not in result.output and "_ARRAY_API" not in result.output
    assert result.output.index("Router starting") < result.output.index("harmless") < result.output.index(
        "Router ready")


def test_import_quietly_keeps_numpys_notice_out_and_the_rest_in(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from flask_wamp_bridge.router.output import import_quietly

    (tmp_path / "noisy_bjdata_user.py").write_text(
        "import sys\n"
        "sys.stderr.write('\\nA module that was compiled using NumPy 1.x cannot be run in\\n"
        "NumPy 2.4.6 as it may crash.\\nTraceback (most recent call last):\\n  File x\\n')\n"
        "sys.stderr.write('AttributeError: _ARRAY_API not found\\n')\n"
        "sys.stderr.write('a real problem\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "noisy_bjdata_user", raising=False)
    import_quietly("noisy_bjdata_user")
    assert "noisy_bjdata_user" in sys.modules
    err = capsys.readouterr().err
    assert "NumPy" not in err and "_ARRAY_API" not in err and "a real problem" in err
