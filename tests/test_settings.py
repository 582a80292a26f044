"""The settings table: one entry per key, the README generated from it, and the guard rails around it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import typing as t

import pytest
from flask import Flask
from helpers import REPO_ROOT

from flask_wamp_bridge import ConfigError
from flask_wamp_bridge import Sockets
from flask_wamp_bridge import WampBridge
from flask_wamp_bridge import settings
from flask_wamp_bridge.settings import DEFAULTS
from flask_wamp_bridge.settings import ENVIRONMENT_ONLY
from flask_wamp_bridge.settings import SETTINGS


def _app(**config: t.Any) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s", **config)
    return app


def test_settings_readme_table_is_generated_from_the_table() -> None:
    readme = (REPO_ROOT / "README.rst").read_text(encoding="utf-8")
    assert readme.count("``WAMP_BRIDGE_ROUTER_URL``  ") == 1, "README.rst holds more than one settings table"
    assert settings.rst_table() in readme, (
        "README.rst's configuration table differs from flask_wamp_bridge.settings.SETTINGS; paste the output of "
        "python -c 'from flask_wamp_bridge import settings; print(settings.rst_table())'"
    )


def test_settings_every_key_the_package_names_is_in_the_table_once() -> None:
    assert len({s.key for s in SETTINGS}) == len(SETTINGS)
    package = REPO_ROOT / "flask_wamp_bridge"
    named: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for key in re.findall(r"WAMP_BRIDGE_[A-Z_]+", path.read_text(encoding="utf-8")):
            if not key.endswith("_"):  # "WAMP_BRIDGE_PEER_*" and the like
                named.setdefault(key, set()).add(str(path.relative_to(package)))
    unknown = {key: paths for key, paths in named.items() if key not in DEFAULTS and key not in ENVIRONMENT_ONLY}
    assert unknown == {}, "declare these keys in flask_wamp_bridge/settings.py"


def test_settings_defaults_pass_their_own_checks_and_have_docs() -> None:
    settings.check({})
    for setting in SETTINGS:
        assert setting.doc and "\n" not in setting.doc and setting.type
        assert setting.group in settings.GROUPS


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("WAMP_BRIDGE_WS_PING_INTERVAL", -1, "WAMP_BRIDGE_WS_PING_INTERVAL must be a positive number of seconds"),
        ("WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT", 0, "positive integer or None"),
        ("WAMP_BRIDGE_PEER_AUTOSTART", "yes", "True or False"),
        ("WAMP_BRIDGE_PATH", "wamp", "URL path"),
        ("WAMP_BRIDGE_TICKET_SECRET", "", "WAMP_BRIDGE_TICKET_SECRET must be a non-empty string"),
        ("WAMP_BRIDGE_PERMISSIONS", [], "WAMP_BRIDGE_PERMISSIONS must be a dict"),
        ("WAMP_BRIDGE_RECONNECT_FACTOR", 0, "positive number"),
    ],
)
def test_settings_check_names_the_key(key: str, value: t.Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings.check({key: value})


def test_settings_secret_values_never_appear_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        settings.check({"WAMP_BRIDGE_PEER_SECRET": b"hunter2"})
    assert "hunter2" not in str(info.value)
    read = settings.snapshot({"WAMP_BRIDGE_PEER_SECRET": "hunter2", "WAMP_BRIDGE_PREFIX": "a"})
    now = {"WAMP_BRIDGE_PEER_SECRET": "hunter3", "WAMP_BRIDGE_PREFIX": "b"}
    assert settings.changed_keys(read, now) == ["WAMP_BRIDGE_PEER_SECRET", "WAMP_BRIDGE_PREFIX"]
    assert settings.describe_change(read, now, "WAMP_BRIDGE_PEER_SECRET") == "WAMP_BRIDGE_PEER_SECRET"
    assert settings.describe_change(read, now, "WAMP_BRIDGE_PREFIX") == "WAMP_BRIDGE_PREFIX ('a' -> 'b')"


def test_settings_get_uses_defaults_and_refuses_unknown_keys() -> None:
    assert settings.get({}, "WAMP_BRIDGE_REALM") == "realm1"
    assert settings.get({"WAMP_BRIDGE_REALM": "r2"}, "WAMP_BRIDGE_REALM") == "r2"
    with pytest.raises(KeyError, match="WAMP_BRIDGE_REALMS"):
        settings.get({}, "WAMP_BRIDGE_REALMS")


def test_settings_install_copies_mutable_defaults_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAMP_BRIDGE_PEER_SECRET", "from-env")
    first: dict[str, t.Any] = {}
    second: dict[str, t.Any] = {}
    settings.install(first)
    settings.install(second)
    assert first["WAMP_BRIDGE_PEER_SECRET"] == "from-env"
    first["WAMP_BRIDGE_PERMISSIONS"]["user"] = []
    assert second["WAMP_BRIDGE_PERMISSIONS"] == {} == DEFAULTS["WAMP_BRIDGE_PERMISSIONS"]


def test_settings_a_misspelled_key_gets_a_warning_with_the_right_name() -> None:
    app = _app(WAMP_BRIDGE_PREFX="app", WAMP_BRIDGE_CROSSBAR="/usr/bin/crossbar")
    with pytest.warns(UserWarning, match="WAMP_BRIDGE_PREFX is not a flask_wamp_bridge setting.*WAMP_BRIDGE_PREFIX"):
        WampBridge(app)
    assert settings.unknown_keys(app.config) == ["WAMP_BRIDGE_PREFX"]  # the environment-only name is known


def test_settings_sockets_installs_only_the_websocket_keys() -> None:
    app = Flask(__name__)
    Sockets(app)
    installed = {key for key in app.config if key.startswith("WAMP_BRIDGE_")}
    assert installed == {s.key for s in SETTINGS if s.group == "websocket"}


def test_settings_changed_after_init_app_fail_the_first_request() -> None:
    app = _app()
    WampBridge(app)
    app.add_url_rule("/ok", "ok", lambda: "ok")
    app.config["WAMP_BRIDGE_PREFIX"] = "app"  # too late: the README's mistake
    with pytest.raises(ConfigError, match=r"WAMP_BRIDGE_PREFIX \(''\s*->\s*'app'\) changed after"):
        app.test_client().get("/ok")
    app.config["WAMP_BRIDGE_PREFIX"] = ""  # back to what init_app read: fine again
    assert app.test_client().get("/ok").data == b"ok"


def test_settings_changed_after_init_app_fail_peer_start_without_showing_secrets() -> None:
    app = _app(WAMP_BRIDGE_PEER_AUTOSTART=False)
    bridge = WampBridge(app)
    app.config["WAMP_BRIDGE_PEER_SECRET"] = "changed-secret"
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_PEER_SECRET changed after") as info:
        bridge.state(app).start_peer()
    assert "changed-secret" not in str(info.value)
    with app.app_context(), pytest.raises(ConfigError, match="changed after"):
        _ = bridge.peer


# --- how settings reach objects: one declaration per setting (Setting.feeds) ----------------------------

#: Targets whose parameters default to None meaning "the setting's value, read when called".
_NONE_READS_THE_SETTING = {"accept_websocket"}


def _target(name: str) -> t.Any:
    module, _, attribute = settings.TARGETS[name].rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def _parameters(name: str) -> t.Mapping[str, inspect.Parameter]:
    target = _target(name)
    return inspect.signature(target.__init__ if isinstance(target, type) else target).parameters


def _package_sources() -> dict[str, str]:
    """The package's modules by path; the settings module without its table (which names every key)."""
    package = REPO_ROOT / "flask_wamp_bridge"
    sources = {str(path.relative_to(package)): path.read_text(encoding="utf-8")
               for path in sorted(package.rglob("*.py"))}
    before, _, rest = sources["settings.py"].partition("\nSETTINGS: tuple[Setting, ...] = (\n")
    sources["settings.py"] = before + rest.partition("\n)\n")[2]
    assert rest and "WAMP_BRIDGE_PEER_ROLE" in sources["settings.py"]  # the table is cut out, the code kept
    return sources


def test_settings_every_setting_declares_what_it_feeds_and_is_read() -> None:
    sources = _package_sources()
    problems = []
    for setting in SETTINGS:
        if not setting.feeds:
            problems.append(
                f"{setting.key} declares nothing it feeds: add feeds=(\"Target.parameter\",) to its Setting in "
                f"flask_wamp_bridge/settings.py (one per constructor parameter it fills; Target in settings.TARGETS), "
                f"or feeds=(BY_NAME,) when code reads settings[\"{setting.key}\"] itself")
        elif settings.BY_NAME in setting.feeds and not any(
                re.search(rf"[\"']{setting.key}[\"']", text) for text in sources.values()):
            problems.append(f"{setting.key} says feeds=(BY_NAME,) but no module reads \"{setting.key}\": "
                            "remove the setting, or declare the parameter it feeds")
    assert not problems, "\n".join(problems)


def test_settings_feed_parameters_that_exist_with_the_table_default() -> None:
    problems = []
    for setting in SETTINGS:
        for feed in setting.feeds:
            if feed == settings.BY_NAME:
                continue
            name, _, parameter = feed.partition(".")
            if name not in settings.TARGETS:
                problems.append(f"{setting.key} feeds {feed}, but {name!r} is not in settings.TARGETS: add "
                                f"\"{name}\": \"flask_wamp_bridge.<module>.{name}\" there")
                continue
            found = _parameters(name).get(parameter)
            if found is None or found.kind not in (found.POSITIONAL_OR_KEYWORD, found.KEYWORD_ONLY):
                problems.append(f"{setting.key} feeds {feed}, but {name} has no keyword parameter {parameter!r}: "
                                f"fix the feeds of {setting.key} in flask_wamp_bridge/settings.py")
                continue
            default = found.default
            if default is found.empty or (default is None and name in _NONE_READS_THE_SETTING):
                continue
            same = default == setting.default or (
                isinstance(default, (frozenset, set)) and default == frozenset(setting.default))
            if not same:
                problems.append(f"{name}({parameter}=...) defaults to {default!r}, the table to "
                                f"{setting.default!r}: write {parameter}: ... = DEFAULTS[\"{setting.key}\"] "
                                "(from flask_wamp_bridge.settings) or drop the default")
    assert not problems, "\n".join(problems)


def _mapped_by_hand(text: str) -> list[str]:
    """``parameter=config["WAMP_BRIDGE_..."]`` (or wrapped in ``bool(...)`` and the like) in ``text``."""
    pattern = r"\b\w+=\s*(?:bool|frozenset|float|int)?\(?\s*\w+\[[\"']WAMP_BRIDGE_\w+[\"']\]"
    return [match.group(0) for match in re.finditer(pattern, text)]


def test_settings_every_target_is_built_from_its_declaration_and_no_argument_is_mapped_by_hand() -> None:
    sources = _package_sources()
    every = "\n".join(sources.values())
    unused = [name for name in settings.TARGETS if f'arguments_for("{name}"' not in every]
    assert unused == [], "build these with **settings.arguments_for(name, snapshot), or drop them from TARGETS"
    by_hand = [f"{path}: {found}" for path, text in sources.items() for found in _mapped_by_hand(text)]
    assert by_hand == [], ("declare each of these as feeds=(\"Target.parameter\",) on the setting in "
                           "flask_wamp_bridge/settings.py and build Target with **settings.arguments_for(...)")


def test_settings_arguments_for_gives_each_declared_parameter_its_value() -> None:
    assert settings.arguments_for("Peer", {"WAMP_BRIDGE_CONNECT_TIMEOUT": 7.0})["connect_timeout"] == 7.0
    assert settings.arguments_for("RelaySession", {})["connect_timeout"] == DEFAULTS["WAMP_BRIDGE_CONNECT_TIMEOUT"]
    with pytest.raises(KeyError, match="TARGETS"):
        settings.arguments_for("Nothing", {})


def test_settings_the_feed_checks_catch_a_drifted_default_and_a_missing_parameter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    entry = next(s for s in SETTINGS if s.key == "WAMP_BRIDGE_CONNECT_TIMEOUT")
    table = tuple(s for s in SETTINGS if s is not entry)
    for feeds in [("Peer.no_such_parameter",), ()]:
        monkeypatch.setattr(settings, "SETTINGS", (*table, dataclasses.replace(entry, feeds=feeds)))
        monkeypatch.setattr(sys.modules[__name__], "SETTINGS", settings.SETTINGS)
        with pytest.raises(AssertionError, match="WAMP_BRIDGE_CONNECT_TIMEOUT"):
            test_settings_feed_parameters_that_exist_with_the_table_default()
            test_settings_every_setting_declares_what_it_feeds_and_is_read()
    unread = dataclasses.replace(entry, key="WAMP_BRIDGE_NOBODY_READS", feeds=(settings.BY_NAME,))
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", (*SETTINGS, unread))
    with pytest.raises(AssertionError, match="no module reads \"WAMP_BRIDGE_NOBODY_READS\""):
        test_settings_every_setting_declares_what_it_feeds_and_is_read()
    assert _mapped_by_hand('Peer(url, connect_timeout=cfg["WAMP_BRIDGE_CONNECT_TIMEOUT"], '
                           "strict=bool(settings['WAMP_BRIDGE_STRICT_URIS']))") == [
        'connect_timeout=cfg["WAMP_BRIDGE_CONNECT_TIMEOUT"]', "strict=bool(settings['WAMP_BRIDGE_STRICT_URIS']"]
    assert _mapped_by_hand('timeout = settings["WAMP_BRIDGE_CONNECT_TIMEOUT"]; a == cfg["WAMP_BRIDGE_REALM"]') == []
    drifted = dataclasses.replace(entry, default=60.0)
    monkeypatch.setattr(settings, "SETTINGS", (*table, drifted))
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", settings.SETTINGS)
    with pytest.raises(AssertionError, match=r"Peer\(connect_timeout=...\) defaults to 5.0, the table to 60.0"):
        test_settings_feed_parameters_that_exist_with_the_table_default()


@pytest.mark.parametrize("urls", [["ws://a:8080/ws", "ws://b:8080/ws"], "ws://a:8080/ws, ws://b:8080/ws"])
def test_a_unix_socket_with_several_router_urls_is_refused(urls: t.Any) -> None:
    config = {"WAMP_BRIDGE_RAWSOCKET_PATH": "/run/router.sock", "WAMP_BRIDGE_ROUTER_URL": urls}
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_RAWSOCKET_PATH .* WAMP_BRIDGE_ROUTER_URL names 2 routers"):
        settings.check(config)
    settings.check({**config, "WAMP_BRIDGE_ROUTER_URL": ["ws://a:8080/ws", "ws://a:8080/ws"]})  # one router
    settings.check({**config, "WAMP_BRIDGE_RAWSOCKET_PATH": None})  # TCP: each router's own port
