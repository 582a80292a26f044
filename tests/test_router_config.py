"""Crossbar config generation (pure), the config file writer, find_crossbar and ``flask wamp config``."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_wamp_bridge.cli import wamp_cli
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.router.config import ACTIONS
from flask_wamp_bridge.router.config import _allows
from flask_wamp_bridge.router.config import make_config
from flask_wamp_bridge.router.config import write_config
from flask_wamp_bridge.router.process import find_crossbar
from flask_wamp_bridge.settings import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
SECRET = "peer-secret"


def settings(**overrides: t.Any) -> dict[str, t.Any]:
    return {"WAMP_BRIDGE_PEER_SECRET": SECRET, **overrides}


def router(config: dict[str, t.Any]) -> dict[str, t.Any]:
    (worker,) = config["workers"]
    assert worker["type"] == "router"
    return worker


def websocket(config: dict[str, t.Any]) -> dict[str, t.Any]:
    transport = router(config)["transports"][0]
    if transport["type"] == "web":
        (service,) = transport["paths"].values()
        return service
    return transport


def roles(config: dict[str, t.Any]) -> dict[str, list[dict[str, t.Any]]]:
    (realm,) = router(config)["realms"]
    return {role["name"]: role["permissions"] for role in realm["roles"]}


def allowed(rules: list[dict[str, t.Any]], uri: str) -> set[str]:
    return {action for action in ACTIONS if _allows(rules, action, uri)}


def test_make_config_defaults_layout() -> None:
    config = make_config(settings())
    assert config["version"] == 2
    (realm,) = router(config)["realms"]
    assert realm["name"] == "realm1"
    assert realm["options"] == {"enable_meta_api": True}
    (transport, rawsocket) = router(config)["transports"]
    assert transport["type"] == "web"
    assert transport["endpoint"] == {"type": "tcp", "interface": "127.0.0.1", "port": 8080, "backlog": 4096}
    # the relays' upstream: RawSocket on the next port (WAMP_BRIDGE_UPSTREAM = "rawsocket")
    assert rawsocket["type"] == "rawsocket" and rawsocket["serializers"] == ["msgpack", "cbor", "json"]
    assert rawsocket["endpoint"] == {"type": "tcp", "interface": "127.0.0.1", "port": 8081, "backlog": 4096}
    assert list(transport["paths"]) == ["ws"]
    ws = transport["paths"]["ws"]
    assert ws["type"] == "websocket"
    assert ws["serializers"] == ["json", "msgpack", "cbor"]
    assert ws["auth"] == {
        "wampcra": {"type": "static", "users": {"flask-app": {"secret": SECRET, "role": "backend"}}},
        "ticket": {"type": "dynamic", "authenticator": "wamp_bridge.authenticate"},
    }


def test_make_config_default_roles_and_permissions() -> None:
    by_role = roles(make_config(settings()))
    assert list(by_role) == ["backend", "user", "anonymous"]
    (backend,) = by_role["backend"]
    assert backend == {
        "uri": "",
        "match": "prefix",
        "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
        "disclose": {"caller": True, "publisher": True},
        "cache": True,
    }
    assert allowed(by_role["backend"], "wamp_bridge.authenticate") == set(ACTIONS)
    assert allowed(by_role["backend"], "wamp.session.kill_by_authid") == set(ACTIONS)
    for role, prefix in (("user", "app."), ("anonymous", "app.public.")):
        (rule,) = by_role[role]
        assert rule["uri"] == prefix and rule["match"] == "prefix"
        assert rule["disclose"] == {"caller": True, "publisher": True}
        assert allowed(by_role[role], prefix + "x") == {"call", "subscribe"}
        assert allowed(by_role[role], "wamp_bridge.authenticate") == set()
        assert allowed(by_role[role], "wamp.session.kill_by_authid") == set()
    assert allowed(by_role["anonymous"], "app.private") == set()


def test_make_config_custom_names_flow_through() -> None:
    config = make_config(
        settings(
            WAMP_BRIDGE_REALM="com.example.realm",
            WAMP_BRIDGE_AUTHENTICATOR="com.example.auth",
            WAMP_BRIDGE_PEER_AUTHID="web",
            WAMP_BRIDGE_PEER_ROLE="server",
            WAMP_BRIDGE_USER_ROLE="member",
            WAMP_BRIDGE_ANONYMOUS_ROLE="guest",
        )
    )
    assert router(config)["realms"][0]["name"] == "com.example.realm"
    assert list(roles(config)) == ["server", "member", "guest"]
    auth = websocket(config)["auth"]
    assert auth["wampcra"]["users"] == {"web": {"secret": SECRET, "role": "server"}}
    assert auth["ticket"]["authenticator"] == "com.example.auth"


def test_make_config_anonymous_role_none_has_no_anonymous_role() -> None:
    assert list(roles(make_config(settings(WAMP_BRIDGE_ANONYMOUS_ROLE=None)))) == ["backend", "user"]


def test_make_config_services_become_wampcra_users() -> None:
    config = make_config(
        settings(
            WAMP_BRIDGE_SERVICES={
                "worker": {"secret": "w"},
                "monitor": {"secret": "m", "role": "monitor"},
            },
            WAMP_BRIDGE_PERMISSIONS={"monitor": [{"uri": "wamp.session.count", "allow": ["call"]}]},
        )
    )
    assert websocket(config)["auth"]["wampcra"]["users"] == {
        "flask-app": {"secret": SECRET, "role": "backend"},
        "worker": {"secret": "w", "role": "backend"},
        "monitor": {"secret": "m", "role": "monitor"},
    }
    by_role = roles(config)
    assert list(by_role) == ["backend", "monitor", "user", "anonymous"]
    assert by_role["monitor"][0]["match"] == "exact"
    assert allowed(by_role["monitor"], "wamp.session.count") == {"call"}
    assert allowed(by_role["monitor"], "wamp.session.count2") == set()


def test_make_config_permissions_replace_defaults_and_add_roles() -> None:
    by_role = roles(
        make_config(
            settings(
                WAMP_BRIDGE_PERMISSIONS={
                    "user": [
                        {"uri": "shop.", "allow": ["call", "publish"], "disclose": False, "cache": False},
                        {"uri": "shop.admin", "allow": {"call": False, "subscribe": True}},
                    ],
                    "admin": [{"uri": "shop..orders", "match": "wildcard", "allow": ("subscribe",)}],
                }
            )
        )
    )
    assert list(by_role) == ["backend", "user", "anonymous", "admin"]
    first, second = by_role["user"]
    assert first == {
        "uri": "shop.",
        "match": "prefix",
        "allow": {"call": True, "register": False, "publish": True, "subscribe": False},
        "disclose": {"caller": False, "publisher": False},
        "cache": False,
    }
    assert second["match"] == "exact"
    assert second["allow"] == {"call": False, "register": False, "publish": False, "subscribe": True}
    assert allowed(by_role["user"], "app.x") == set()  # the default rule is gone
    assert allowed(by_role["user"], "shop.cart") == {"call", "publish"}
    assert allowed(by_role["user"], "shop.admin") == {"subscribe"}
    assert by_role["anonymous"][0]["uri"] == "app.public."  # untouched default
    assert allowed(by_role["admin"], "shop.eu.orders") == {"subscribe"}
    assert allowed(by_role["admin"], "shop.eu.orders.x") == set()


def test_allows_follows_crossbar_precedence() -> None:
    rules = [
        {"uri": "", "match": "prefix", "allow": dict.fromkeys(ACTIONS, True)},
        {"uri": "app.admin", "match": "exact", "allow": dict.fromkeys(ACTIONS, False)},
        {"uri": "app..secret", "match": "wildcard", "allow": dict.fromkeys(ACTIONS, False)},
    ]
    assert allowed(rules, "app.other") == set(ACTIONS)
    assert allowed(rules, "app.admin") == set()
    # Crossbar's quirk: the exact rule is the longest string prefix of "app.adminx", so nothing applies.
    assert allowed(rules, "app.adminx") == set()
    assert allowed(rules, "app.x.secret") == set()
    assert allowed(rules, "app.x.secret.y") == set(ACTIONS)
    assert allowed([], "app.x") == set()


def test_make_config_exact_deny_lets_browser_role_have_broad_prefix() -> None:
    deny = dict.fromkeys(ACTIONS, False)
    rules = [
        {"uri": "", "allow": ["call", "subscribe", "register"]},
        {"uri": "wamp_bridge.authenticate", "allow": deny},
        {"uri": "wamp.session.", "allow": []},
    ]
    by_role = roles(make_config(settings(WAMP_BRIDGE_PERMISSIONS={"user": rules})))
    assert allowed(by_role["user"], "anything.else") == {"call", "subscribe", "register"}


def test_make_config_transport_options() -> None:
    options = websocket(make_config(settings(WAMP_BRIDGE_ROUTER_URL="ws://127.0.0.1:9100/ws")))["options"]
    assert options["allowed_origins"] == ["http://127.0.0.1:9100", "ws://*", "wss://*"]
    assert options["allow_null_origin"] is False
    assert options["require_websocket_subprotocol"] is True
    assert options["max_message_size"] == options["max_frame_size"] == 1024 * 1024
    assert options["auto_ping_interval"] == 10000
    assert options["auto_ping_timeout"] == 5000
    assert options["auto_ping_size"] == 12
    assert options["enable_webstatus"] is False


def test_make_config_transport_options_follow_settings() -> None:
    options = websocket(
        make_config(
            settings(
                WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE=65536,
                WAMP_BRIDGE_ROUTER_PING_INTERVAL=2.5,
                WAMP_BRIDGE_ROUTER_PING_TIMEOUT=1,
            )
        )
    )["options"]
    assert options["max_message_size"] == options["max_frame_size"] == 65536
    assert (options["auto_ping_interval"], options["auto_ping_timeout"]) == (2500, 1000)
    options = websocket(make_config(settings(WAMP_BRIDGE_ROUTER_PING_INTERVAL=None)))["options"]
    assert (options["auto_ping_interval"], options["auto_ping_timeout"]) == (0, 0)


def test_make_config_root_path_uses_websocket_transport() -> None:
    transport = router(make_config(settings(WAMP_BRIDGE_ROUTER_URL="ws://127.0.0.1:9000")))["transports"][0]
    assert transport["type"] == "websocket"
    assert transport["endpoint"] == {"type": "tcp", "interface": "127.0.0.1", "port": 9000, "backlog": 4096}
    assert "auth" in transport and "options" in transport


@pytest.mark.parametrize(
    ("url", "interface", "expected"),
    [
        ("ws://localhost:9000/ws", None, {"type": "tcp", "interface": "127.0.0.1", "port": 9000}),
        ("ws://[::1]:9000/ws", None, {"type": "tcp", "interface": "::1", "port": 9000, "version": 6}),
        ("ws://router.internal:9000/ws", "10.0.0.5", {"type": "tcp", "interface": "10.0.0.5", "port": 9000}),
        ("ws://127.0.0.1/ws", None, {"type": "tcp", "interface": "127.0.0.1", "port": 80}),
    ],
)
def test_make_config_endpoint_from_url(url: str, interface: str | None, expected: dict[str, t.Any]) -> None:
    config = make_config(settings(WAMP_BRIDGE_ROUTER_URL=url, WAMP_BRIDGE_ROUTER_INTERFACE=interface))
    assert router(config)["transports"][0]["endpoint"] == {**expected, "backlog": 4096}


def test_make_config_listen_backlog_fits_a_login_storm() -> None:
    endpoint = router(make_config(settings(WAMP_BRIDGE_ROUTER_BACKLOG=1024)))["transports"][0]["endpoint"]
    assert endpoint["backlog"] == 1024  # Crossbar's default (50) drops SYNs when 1,000 browsers log in at once
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_ROUTER_BACKLOG"):
        make_config(settings(WAMP_BRIDGE_ROUTER_BACKLOG=0))


def test_make_config_is_pure_and_json_ready() -> None:
    given = settings(
        WAMP_BRIDGE_SERVICES={"tester": {"secret": "t", "role": "backend"}},
        WAMP_BRIDGE_PERMISSIONS={"user": [{"uri": "app.", "allow": ["call"]}]},
    )
    before = copy.deepcopy(given)
    first, second = make_config(given), make_config(given)
    assert given == before
    assert first == second
    assert json.loads(json.dumps(first)) == first
    first["workers"][0]["realms"][0]["roles"][0]["permissions"].clear()
    assert make_config(given) == second  # no shared mutable state between calls


def test_make_config_reads_flask_config() -> None:
    app = Flask(__name__)
    app.config.update(settings(WAMP_BRIDGE_REALM="flask.realm"))
    assert router(make_config(app.config))["realms"][0]["name"] == "flask.realm"


def test_defaults_are_the_documented_values() -> None:
    assert DEFAULTS["WAMP_BRIDGE_ROUTER_URL"] == "ws://127.0.0.1:8080/ws"
    assert DEFAULTS["WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"] == 1024 * 1024
    assert DEFAULTS["WAMP_BRIDGE_PEER_SECRET"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"WAMP_BRIDGE_PEER_SECRET": None}, "WAMP_BRIDGE_PEER_SECRET is not set"),
        ({"WAMP_BRIDGE_PEER_SECRET": ""}, "WAMP_BRIDGE_PEER_SECRET is not set"),
        ({"WAMP_BRIDGE_ROUTER_URL": "wss://127.0.0.1:8080/ws"}, "TLS"),
        ({"WAMP_BRIDGE_ROUTER_URL": "http://127.0.0.1:8080/ws"}, "ws://127.0.0.1:8080/ws"),
        ({"WAMP_BRIDGE_ROUTER_URL": 8080}, "must be a URL like"),
        ({"WAMP_BRIDGE_ROUTER_URL": "ws://127.0.0.1:8080/a/b"}, "one segment"),
        ({"WAMP_BRIDGE_ROUTER_URL": "ws://127.0.0.1:8080/ws?x=1"}, "query"),
        ({"WAMP_BRIDGE_ROUTER_URL": "ws://127.0.0.1:99999/ws"}, "invalid port"),
        ({"WAMP_BRIDGE_ROUTER_URL": "ws://router.internal:8080/ws"}, "WAMP_BRIDGE_ROUTER_INTERFACE"),
        ({"WAMP_BRIDGE_ROUTER_INTERFACE": "eth0"}, "WAMP_BRIDGE_ROUTER_INTERFACE must be an IP address"),
        ({"WAMP_BRIDGE_REALM": "r"}, "WAMP_BRIDGE_REALM"),
        ({"WAMP_BRIDGE_REALM": None}, "WAMP_BRIDGE_REALM must be a non-empty string"),
        ({"WAMP_BRIDGE_AUTHENTICATOR": "Auth.Bad-URI"}, "strict URI"),
        ({"WAMP_BRIDGE_PEER_AUTHID": ""}, "WAMP_BRIDGE_PEER_AUTHID"),
        ({"WAMP_BRIDGE_PEER_AUTHMETHOD": "anonymous"}, "set it to 'wampcra'"),
        ({"WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE": 0}, "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"),
        ({"WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE": 65 * 1024 * 1024}, "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"),
        ({"WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE": True}, "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"),
        ({"WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0.5}, "WAMP_BRIDGE_ROUTER_PING_INTERVAL"),
        ({"WAMP_BRIDGE_ROUTER_PING_TIMEOUT": "5"}, "WAMP_BRIDGE_ROUTER_PING_TIMEOUT"),
        ({"WAMP_BRIDGE_USER_ROLE": "backend"}, "browsers must not get backend rights"),
        ({"WAMP_BRIDGE_ANONYMOUS_ROLE": "backend"}, "browsers must not get backend rights"),
        ({"WAMP_BRIDGE_ANONYMOUS_ROLE": ""}, "WAMP_BRIDGE_ANONYMOUS_ROLE"),
        ({"WAMP_BRIDGE_SERVICES": ["tester"]}, "WAMP_BRIDGE_SERVICES must be a dict"),
        ({"WAMP_BRIDGE_SERVICES": {"flask-app": {"secret": "x"}}}, "already the app peer's"),
        ({"WAMP_BRIDGE_SERVICES": {"svc": {"secret": ""}}}, "['secret'] must be a non-empty string"),
        ({"WAMP_BRIDGE_SERVICES": {"svc": {"secret": "x", "salt": "y"}}}, "WAMP_BRIDGE_SERVICES['svc']"),
        ({"WAMP_BRIDGE_SERVICES": {"svc": {"secret": "x", "role": "ops"}}}, "WAMP_BRIDGE_PERMISSIONS['ops']"),
        ({"WAMP_BRIDGE_PERMISSIONS": [("user", [])]}, "WAMP_BRIDGE_PERMISSIONS must be a dict"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": {"uri": "app."}}}, "must be a list of rules"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": ["app."]}}, "WAMP_BRIDGE_PERMISSIONS['user'][0] must be a dict"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"allow": ["call"]}]}}, "['uri']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.*"}]}}, "without '*'"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "a b"}]}}, "['uri']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "match": "regex"}]}}, "['match']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "allow": ["read"]}]}}, "['allow']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "allow": "call"}]}}, "['allow']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "allow": {"call": 1}}]}}, "['allow']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "disclose": "yes"}]}}, "['disclose']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "cache": 1}]}}, "['cache']"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "allowed": ["call"]}]}}, "unknown keys"),
        ({"WAMP_BRIDGE_PERMISSIONS": {"": []}}, "role names"),
        (
            {"WAMP_BRIDGE_PERMISSIONS": {"backend": [{"uri": "app.", "allow": list(ACTIONS)}]}},
            "must allow the app's peer to register 'wamp_bridge.authenticate' and call "
            "'wamp.session.kill_by_authid'",
        ),
        (
            {"WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "", "allow": ["register"]}]}},
            "lets browser sessions register 'wamp_bridge.authenticate'",
        ),
        (
            {"WAMP_BRIDGE_PERMISSIONS": {"anonymous": [{"uri": "wamp.session.", "allow": ["call"]}]}},
            "lets browser sessions call 'wamp.session.kill'",
        ),
        (
            {"WAMP_BRIDGE_PERMISSIONS": {"editor": [{"uri": "wamp..kill_by_authid", "allow": ["call"]}]}},
            "WAMP_BRIDGE_PERMISSIONS['editor'] lets browser sessions call 'wamp.session.kill_by_authid'",
        ),
    ],
)
def test_make_config_rejects_bad_settings(overrides: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(settings(**overrides))
    assert message in str(info.value)


def test_make_config_requires_secret_when_settings_are_empty() -> None:
    with pytest.raises(ConfigError, match="secrets.token_urlsafe"):
        make_config({})


def test_write_config_writes_private_file(tmp_path: t.Any) -> None:
    cbdir = tmp_path / "node"
    path = write_config(settings(), cbdir)
    assert path == cbdir / "config.json"
    assert json.loads(path.read_text()) == make_config(settings())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    write_config(settings(), cbdir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _executable(path: t.Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_find_crossbar_order(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _executable(tmp_path / "bin" / "crossbar")
    local = _executable(tmp_path / "repo" / ".crossbar-venv" / "bin" / "crossbar")
    from_env = _executable(tmp_path / "elsewhere" / "crossbar")
    beside_python = tmp_path / "appenv" / "bin" / "crossbar"
    monkeypatch.setattr(sys, "executable", str(tmp_path / "appenv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("WAMP_BRIDGE_CROSSBAR", from_env)
    assert find_crossbar() == from_env
    monkeypatch.delenv("WAMP_BRIDGE_CROSSBAR")
    assert find_crossbar() == local
    _executable(beside_python)  # installed into the app's own environment: that one wins
    assert find_crossbar() == str(beside_python)
    beside_python.unlink()
    monkeypatch.chdir(tmp_path)
    assert find_crossbar() == on_path


def test_find_crossbar_missing_names_the_pip_command(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAMP_BRIDGE_CROSSBAR", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape('pip install "Flask-WAMP-Bridge[router]"')):
        find_crossbar()
    monkeypatch.setenv("WAMP_BRIDGE_CROSSBAR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_CROSSBAR"):
        find_crossbar()


def _recording_crossbar(tmp_path: t.Any) -> tuple[str, t.Any]:
    """A fake ``crossbar`` that records its arguments and the config it was given, then exits 0."""
    record = tmp_path / "record.json"
    script = tmp_path / "fake" / "crossbar"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "cbdir = args[args.index('--cbdir') + 1]\n"
        "config = args[args.index('--config') + 1] if '--config' in args else 'config.json'\n"
        "with open(os.path.join(cbdir, config)) as f: used = json.load(f)\n"
        f"json.dump({{'args': args, 'config': used}}, open({str(record)!r}, 'w'))\n"
    )
    script.chmod(0o755)
    return str(script), record


def test_cli_router_runs_the_written_config_when_told(
    cli_app: Flask, tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crossbar, record = _recording_crossbar(tmp_path)
    monkeypatch.setenv("WAMP_BRIDGE_CROSSBAR", crossbar)
    written = tmp_path / "crossbar" / "config.json"
    runner = cli_app.test_cli_runner()
    assert runner.invoke(args=["wamp", "config", "-o", str(written)]).exit_code == 0
    edited = json.loads(written.read_text())
    edited["controller"] = {"id": "edited-by-hand"}
    written.write_text(json.dumps(edited))

    result = runner.invoke(args=["wamp", "router", "--config", str(written), "--cbdir", str(tmp_path / "node")])
    assert result.exit_code == 0, result.output
    assert json.loads(record.read_text())["config"] == edited  # the file as written, not a regenerated one

    result = runner.invoke(args=["wamp", "router", "--cbdir", str(tmp_path / "node")])
    assert result.exit_code == 0, result.output
    assert json.loads(record.read_text())["config"] == make_config(cli_app.config)


def test_cli_router_without_crossbar_names_the_pip_command(
    cli_app: Flask, tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAMP_BRIDGE_CROSSBAR", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = cli_app.test_cli_runner().invoke(args=["wamp", "router"])
    assert result.exit_code == 1
    assert 'pip install "Flask-WAMP-Bridge[router]"' in result.output


@pytest.fixture
def cli_app() -> Flask:
    app = Flask(__name__)
    app.config.update(settings(WAMP_BRIDGE_REALM="cli.realm"))
    app.cli.add_command(wamp_cli)
    return app


def test_cli_config_prints_generated_json(cli_app: Flask) -> None:
    result = cli_app.test_cli_runner().invoke(args=["wamp", "config"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == make_config(cli_app.config)


def test_cli_config_writes_output_file(cli_app: Flask, tmp_path: t.Any) -> None:
    target = tmp_path / "out" / "crossbar.json"
    result = cli_app.test_cli_runner().invoke(args=["wamp", "config", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == make_config(cli_app.config)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_cli_config_reports_config_error(cli_app: Flask) -> None:
    cli_app.config["WAMP_BRIDGE_PEER_SECRET"] = None
    result = cli_app.test_cli_runner().invoke(args=["wamp", "config"])
    assert result.exit_code == 1
    assert "WAMP_BRIDGE_PEER_SECRET is not set" in result.output


PLUGIN_TEST = '''
def test_needs_router(crossbar_router):
    raise AssertionError("must not run without Crossbar")
'''


@pytest.mark.parametrize(("ci", "outcome"), [(None, "1 skipped"), ("1", "1 error")])
def test_plugin_skips_without_crossbar_unless_ci(tmp_path: t.Any, ci: str | None, outcome: str) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["flask_wamp_bridge.testing"]\n')
    (tmp_path / "test_plugin_use.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(WAMP_BRIDGE_CROSSBAR=str(tmp_path / "no-crossbar-here"), PYTHONPATH=str(REPO))
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:pytest_wampy", "-p", "no:cacheprovider", "-rs", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "WAMP_BRIDGE_CROSSBAR" in result.stdout  # the reason says what to fix


def test_defined_roles_are_the_roles_of_the_generated_config() -> None:
    from flask_wamp_bridge.router.config import defined_roles

    given = settings(WAMP_BRIDGE_SERVICES={"ops": {"secret": "x", "role": "operator"}},
                     WAMP_BRIDGE_PERMISSIONS={"operator": [{"uri": "", "allow": list(ACTIONS)}],
                                              "editor": [{"uri": "app.", "allow": ["call"]}]})
    generated = {role["name"] for role in router(make_config(given))["realms"][0]["roles"]}
    assert set(defined_roles(given)) == generated == {"backend", "user", "anonymous", "operator", "editor"}
    assert "anonymous" not in defined_roles(settings(WAMP_BRIDGE_ANONYMOUS_ROLE=None))


def test_make_config_rawsocket_transports_follow_the_settings() -> None:
    def rawsockets(**overrides: t.Any) -> list[dict[str, t.Any]]:
        return [transport["endpoint"] for transport in router(make_config(settings(**overrides)))["transports"]
                if transport["type"] == "rawsocket"]

    assert rawsockets(WAMP_BRIDGE_UPSTREAM="websocket") == []
    assert [e["port"] for e in rawsockets(WAMP_BRIDGE_UPSTREAM="websocket", WAMP_BRIDGE_PEER_UPSTREAM="rawsocket")] \
        == [8081]  # the app's peer alone over RawSocket
    assert rawsockets(WAMP_BRIDGE_RAWSOCKET_PATH="/run/router.sock") == [
        {"type": "unix", "path": "/run/router.sock", "backlog": 4096}]
    assert rawsockets(WAMP_BRIDGE_RAWSOCKET_PORT=9999) == [
        {"type": "tcp", "interface": "127.0.0.1", "port": 9999, "backlog": 4096}]
    assert len(rawsockets(WAMP_BRIDGE_RAWSOCKET_PATH="/run/router.sock", WAMP_BRIDGE_RAWSOCKET_PORT=9999)) == 2
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_RAWSOCKET_PORT"):
        make_config(settings(WAMP_BRIDGE_ROUTER_URL="ws://127.0.0.1:65535/ws"))
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_UPSTREAM"):
        make_config(settings(WAMP_BRIDGE_UPSTREAM="tcp"))
