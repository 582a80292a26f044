"""The authorizer's decisions without a router: config, static rules first, answers, cache, deadline, pool."""

from __future__ import annotations

import logging
import typing as t

import gevent
import pytest
from flask import Flask
from flask import current_app

from flask_wamp_bridge.component.authorizer import AuthorizerService
from flask_wamp_bridge.component.meta_service import EventHistory
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.router.authorization import DENY
from flask_wamp_bridge.router.authorization import Authorization
from flask_wamp_bridge.router.authorization import Caller
from flask_wamp_bridge.router.authorization import Decision
from flask_wamp_bridge.router.authorization import DecisionCache
from flask_wamp_bridge.router.authorization import normalize_answer
from flask_wamp_bridge.router.config import browser_rules
from flask_wamp_bridge.router.config import make_config
from flask_wamp_bridge.router.config import matching_rule

SETTINGS = {
    "WAMP_BRIDGE_PEER_SECRET": "s3cret",
    "WAMP_BRIDGE_AUTHORIZER": "wamp_bridge.authorize",
    "WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "allow": ["call", "subscribe"]},
                                         {"uri": "app.team.", "allow": []}]},
    "WAMP_BRIDGE_PRESENCE_TOPICS": ["app.team."],
}
ALICE = Caller("alice", "user", 7)
DETAILS = {"authid": "alice", "authrole": "user", "session": 7, "authmethod": "ticket"}


def realm_roles(settings: t.Mapping[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    (realm,) = make_config(settings)["workers"][0]["realms"]
    return {role["name"]: role for role in realm["roles"]}


def test_generated_config_gives_browser_roles_the_authorizer() -> None:
    roles = realm_roles(SETTINGS)
    assert roles["user"] == {"name": "user", "authorizer": "wamp_bridge.authorize"}
    assert roles["anonymous"] == {"name": "anonymous", "authorizer": "wamp_bridge.authorize"}
    assert "permissions" in roles["backend"]
    without = realm_roles({**SETTINGS, "WAMP_BRIDGE_AUTHORIZER": None})
    assert [rule["uri"] for rule in without["user"]["permissions"]] == ["app.", "app.team.", "wamp_bridge.meta."]


def test_generated_config_refuses_browser_rules_reaching_the_bridge() -> None:
    grabby = {"user": [{"uri": "", "allow": ["call", "register", "subscribe"]},
                       {"uri": "wamp_bridge.authenticate", "allow": []}, {"uri": "wamp.session.", "allow": []}]}
    with pytest.raises(ConfigError, match="wamp_bridge.authorize"):
        make_config({**SETTINGS, "WAMP_BRIDGE_PERMISSIONS": grabby, "WAMP_BRIDGE_PRESENCE_TOPICS": []})
    # the bridge's meta rule (call only) is longer than any browser prefix above it: no registering there
    rules = browser_rules({**SETTINGS, "WAMP_BRIDGE_PERMISSIONS": grabby, "WAMP_BRIDGE_AUTHORIZER": None})["user"]
    assert matching_rule(rules, "wamp_bridge.meta.get_events")["allow"] == {  # type: ignore[index]
        "call": True, "register": False, "publish": False, "subscribe": False}
    with pytest.raises(ConfigError, match="strict URI"):
        make_config({**SETTINGS, "WAMP_BRIDGE_AUTHORIZER": "Bad URI"})


def test_static_rules_answer_first_and_reserved_uris_never_reach_the_app() -> None:
    authorization = Authorization(browser_rules(SETTINGS), reserved=["wamp_bridge.authorize"])
    allowed = authorization.static(ALICE, "app.board", "call")
    assert allowed == Decision(True, disclose=True, router_cache=True)
    assert authorization.static(ALICE, "app.board", "register") is None  # the app decides
    assert authorization.static(ALICE, "app.team.red", "subscribe") is None
    assert authorization.static(ALICE, "wamp_bridge.meta.get_events", "call") == Decision(True, True, True)
    for uri, action in [("wamp.session.kill", "call"), ("wamp_bridge.authorize", "register"),
                        ("wamp_bridge.meta.get_events", "register"), ("app.x", "delete")]:
        assert authorization.static(ALICE, uri, action) is DENY
    assert authorization.static(Caller("svc", "backend", 1), "app.x", "call") is DENY


@pytest.mark.parametrize(("answer", "action", "decision"), [
    (True, "call", Decision(True, disclose=True)),
    (True, "subscribe", Decision(True)),
    (False, "call", DENY),
    ({"allow": True, "cache": True}, "publish", Decision(True, disclose=True, session_cache=True)),
    ({"allow": True, "disclose": False}, "call", Decision(True)),
    ({"allow": False, "disclose": True}, "call", DENY),
])
def test_answers(answer: t.Any, action: str, decision: Decision) -> None:
    assert normalize_answer(answer, action) == decision
    assert decision.for_router()["cache"] is False  # the app's cache flag never reaches Crossbar


@pytest.mark.parametrize("answer", [None, 1, "yes", {"allow": 1}, {"allow": True, "validate": {}}, {"cache": True}])
def test_malformed_answers(answer: t.Any) -> None:
    with pytest.raises(TypeError):
        normalize_answer(answer, "call")


def test_cache_is_per_session_bounded_and_dropped_by_authid() -> None:
    cache = DecisionCache(ttl=10.0, size=2)
    cached = Decision(True, session_cache=True)
    cache.put(ALICE, "app.team.red", "subscribe", cached, now=0.0)
    cache.put(ALICE, "app.team.x", "subscribe", Decision(True), now=0.0)  # not cacheable
    assert cache.get(ALICE, "app.team.red", "subscribe", now=5.0) == cached
    assert cache.get(Caller("alice", "user", 8), "app.team.red", "subscribe", now=5.0) is None  # another session
    assert cache.get(ALICE, "app.team.red", "subscribe", now=10.0) is None  # expired
    cache.put(ALICE, "a", "call", cached, now=0.0)
    cache.put(ALICE, "b", "call", cached, now=0.0)
    cache.put(ALICE, "c", "call", cached, now=0.0)
    assert len(cache) == 2 and cache.get(ALICE, "a", "call", now=1.0) is None
    assert cache.forget_authid("alice") == 2 and len(cache) == 0


def _service(fn: t.Any, *, timeout: float = 0.2, concurrency: int = 4) -> AuthorizerService:
    app = Flask(__name__)
    authorization = Authorization(browser_rules(SETTINGS))
    service = AuthorizerService(lambda: app, authorization, lambda: fn, timeout=timeout, concurrency=concurrency,
                                cache_ttl=60.0)
    service._test_app = app  # type: ignore[attr-defined]  # keep the app alive
    return service


def test_service_runs_the_function_in_an_app_context_and_caches_when_asked() -> None:
    asked: list[tuple[str, str, str]] = []

    def authorize(caller: Caller, uri: str, action: str) -> t.Any:
        asked.append((current_app.name, caller.authid, uri))
        return {"allow": uri.endswith("red"), "cache": True}

    service = _service(authorize)
    assert service(DETAILS, "app.team.red", "subscribe") == {"allow": True, "disclose": False, "cache": False}
    assert service(DETAILS, "app.team.red", "subscribe")["allow"] is True
    assert service(DETAILS, "app.team.blue", "subscribe")["allow"] is False
    assert asked == [("test_authorization", "alice", "app.team.red"), ("test_authorization", "alice", "app.team.blue")]
    assert service(DETAILS, "app.board", "call") == {"allow": True, "disclose": True, "cache": True}  # static
    assert len(asked) == 2


@pytest.mark.parametrize(("behaviour", "log"), [
    ("sleep", "no answer within 0.2 s"), ("raise", "it raised KeyError"), ("answer", "an authorizer answers"),
])
def test_service_denies_on_failure_with_a_log_line(behaviour: str, log: str, caplog: pytest.LogCaptureFixture) -> None:
    def authorize(caller: Caller, uri: str, action: str) -> t.Any:
        if behaviour == "sleep":
            gevent.sleep(5)
        if behaviour == "raise":
            raise KeyError("no such team")
        return "maybe"

    service = _service(authorize)
    with caplog.at_level(logging.WARNING, "flask_wamp_bridge.authorizer"), gevent.Timeout(2):
        assert service(DETAILS, "app.team.red", "subscribe")["allow"] is False
    assert log in caplog.text
    gevent.sleep(0.01)
    assert service.pool.free_count() == service.pool.size  # nothing left running


def test_service_denies_when_its_pool_is_full(caplog: pytest.LogCaptureFixture) -> None:
    service = _service(lambda caller, uri, action: gevent.sleep(5), timeout=1.0, concurrency=1)
    waiting = gevent.spawn(service, DETAILS, "app.team.red", "subscribe")
    gevent.sleep(0.05)
    with caplog.at_level(logging.WARNING, "flask_wamp_bridge.authorizer"):
        assert service(DETAILS, "app.team.blue", "subscribe")["allow"] is False
    assert "1 decisions already running" in caplog.text
    assert waiting.get(timeout=2)["allow"] is False


def test_service_leaves_patterns_to_the_static_rules() -> None:
    service = _service(lambda caller, uri, action: True)
    assert service(DETAILS, "app.team.red", "subscribe", {"match": "prefix"})["allow"] is False
    assert service(DETAILS, "app.team..chat", "subscribe", {"match": "wildcard"})["allow"] is False
    assert service(DETAILS, "app.team.red.chat", "subscribe", {"match": "exact"})["allow"] is True
    assert service(DETAILS, "app.", "subscribe", {"match": "prefix"})["allow"] is True  # a static rule


def test_service_denies_malformed_requests_and_without_a_function() -> None:
    assert _service(None)(DETAILS, "app.team.red", "subscribe")["allow"] is False
    assert _service(lambda *a: True)({"authid": "x"}, "app.team.red", "subscribe")["allow"] is False


def test_event_history_keeps_the_last_events_once_newest_first() -> None:
    history = EventHistory({"app.board": 2, "app.feed.": 5})
    assert history.subscriptions() == [("app.board", "exact"), ("app.feed.", "prefix")]
    for publication in (1, 2, 2, 3):
        history.record(("app.board", "exact"), publication, "app.board", [publication], {}, now=float(publication))
    assert [e["publication"] for e in t.cast(list[dict[str, t.Any]], history.events(("app.board", "exact"), 10))] \
        == [3, 2]
    assert history.events(("app.board", "prefix"), 10) is None


def test_an_authorizer_without_its_setting_is_a_config_error() -> None:
    from flask_wamp_bridge import WampBridge

    bridge = WampBridge()
    bridge.authorizer(lambda caller, uri, action: True)
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s")
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_AUTHORIZER is not set"):
        bridge.init_app(app)


def test_event_history_forgets_what_it_dropped() -> None:
    history = EventHistory({"app.board": 2})
    for publication in (1, 2, 3, 1):  # 1 was dropped when 3 came: a later copy counts again
        history.record(("app.board", "exact"), publication, "app.board", [], {}, now=0.0)
    events = t.cast(list[dict[str, t.Any]], history.events(("app.board", "exact"), 5))
    assert [e["publication"] for e in events] == [1, 3]
