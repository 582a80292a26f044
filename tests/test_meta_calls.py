"""The few meta calls a browser may make, and retain, through the relay's checks (no sockets)."""

from __future__ import annotations

import pytest
import test_checks
from test_checks import Forward
from test_checks import Reply
from test_checks import Rewritten
from test_checks import Row
from test_checks import Violation
from test_checks import client
from test_checks import router

from flask_wamp_bridge.bridge.checks import Limits
from flask_wamp_bridge.bridge.meta_calls import MetaRefusal
from flask_wamp_bridge.bridge.meta_calls import rewrite_meta_call
from flask_wamp_bridge.wamp.messages import SUBPROTOCOLS
from flask_wamp_bridge.wamp.meta_api import TopicSet

META = Limits(meta_calls=True)
SUBSCRIBED = (client([32, 1, {}, "app.board"]), router([33, 1, 500]))
DENIED = "wamp.error.not_authorized"

ROWS = [
    Row("get_events of a held subscription goes to the bridge's procedure",
        [48, 2, {}, "wamp.subscription.get_events", [500, 10]],
        Rewritten([48, 2, {}, "wamp_bridge.meta.get_events", [500, 10]]), SUBSCRIBED, META),
    Row("list_subscribers of a held subscription goes to the bridge's procedure",
        [48, 2, {}, "wamp.subscription.list_subscribers", [500]],
        Rewritten([48, 2, {}, "wamp_bridge.meta.list_subscribers", [500]]), SUBSCRIBED, META),
    Row("count_subscribers of a held subscription goes to the bridge's procedure",
        [48, 2, {}, "wamp.subscription.count_subscribers", [500]],
        Rewritten([48, 2, {}, "wamp_bridge.meta.count_subscribers", [500]]), SUBSCRIBED, META),
    Row("a subscription id past 2**32 sent as a float (msgpackr, cbor-x) goes as an int",
        [48, 2, {}, "wamp.subscription.count_subscribers", [float(2**53)]],
        Rewritten([48, 2, {}, "wamp_bridge.meta.count_subscribers", [2**53]]),
        (client([32, 1, {}, "app.board"]), router([33, 1, 2**53])), META),
    Row("a subscription id that is not a whole number", [48, 2, {}, "wamp.subscription.get_events", [500.5]],
        Reply(DENIED), SUBSCRIBED, META),
    Row("get_events of a subscription not held", [48, 2, {}, "wamp.subscription.get_events", [501, 10]],
        Reply(DENIED), SUBSCRIBED, META),
    Row("get_events after unsubscribing", [48, 3, {}, "wamp.subscription.get_events", [500]],
        Reply(DENIED), (*SUBSCRIBED, client([34, 2, 500])), META),
    Row("get_events without arguments", [48, 2, {}, "wamp.subscription.get_events"], Reply(DENIED), SUBSCRIBED,
        META),
    Row("get_events when the app offers none", [48, 2, {}, "wamp.subscription.get_events", [500]],
        Reply(DENIED), SUBSCRIBED),
    Row("the rest of the meta API", [48, 2, {}, "wamp.session.list", []], Reply(DENIED), SUBSCRIBED, META),
    Row("the bridge's meta procedures directly", [48, 2, {}, "wamp_bridge.meta.get_events", [500]],
        Reply(DENIED), SUBSCRIBED, META),
    Row("a meta call reusing the id of a call in flight (its refusal would be a second answer)",
        [48, 1, {}, "wamp.session.list", []], Violation(), (client([48, 1, {}, "app.slow"]),), META),
    Row("an ordinary call is untouched", [48, 2, {}, "app.x", [500]], Forward(), SUBSCRIBED, META),
    Row("retain on an allowed topic", [16, 1, {"retain": True, "acknowledge": True}, "app.board.posts"],
        Forward(), limits=Limits(retain_topics=TopicSet(["app.board."]))),
    Row("retain elsewhere, acknowledged", [16, 1, {"retain": True, "acknowledge": True}, "app.other"],
        Reply(DENIED), limits=Limits(retain_topics=TopicSet(["app.board."]))),
    Row("retain off by default", [16, 1, {"retain": True, "acknowledge": True}, "app.board"], Reply(DENIED)),
]


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_meta_rule(row: Row, subprotocol: str) -> None:
    test_checks.test_rule(row, subprotocol)


def test_topic_set_exact_and_prefix() -> None:
    topics = TopicSet(["app.board.posts", "app.team."])
    assert "app.board.posts" in topics and "app.team.red.chat" in topics
    assert "app.board" not in topics and "app.teams" not in topics and 5 not in topics
    assert topics.covers("app.team.red.", "prefix") and not topics.covers("app.", "prefix")
    assert not topics.covers("app.team..chat", "wildcard") and not TopicSet()


def test_rewrite_meta_call_leaves_ordinary_procedures() -> None:
    assert rewrite_meta_call("app.wamp.x", [1], {1}, True) is None
    assert isinstance(rewrite_meta_call("wamp.subscription.get_events", [True], {1}, True), MetaRefusal)
