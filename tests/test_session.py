"""The peer's sans-IO session (``PeerCore``): handshake, request-id correlation, dispatch, errors. No sockets."""

from __future__ import annotations

import pytest
from autobahn.wamp import auth as ab_auth

from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.errors import NotConnected
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.wamp.client_auth import AnonymousAuth
from flask_wamp_bridge.wamp.client_auth import WampCraAuth
from flask_wamp_bridge.wamp.messages import MAX_ID
from flask_wamp_bridge.wamp.messages import check_message
from flask_wamp_bridge.wamp.session import PeerCore
from flask_wamp_bridge.wamp.session import PeerState
from flask_wamp_bridge.wamp.session import backoff_delay
from flask_wamp_bridge.wamp.session_events import CallResult
from flask_wamp_bridge.wamp.session_events import Closed
from flask_wamp_bridge.wamp.session_events import Deliver
from flask_wamp_bridge.wamp.session_events import Failed
from flask_wamp_bridge.wamp.session_events import Interrupt
from flask_wamp_bridge.wamp.session_events import Invoke
from flask_wamp_bridge.wamp.session_events import Joined
from flask_wamp_bridge.wamp.session_events import Published
from flask_wamp_bridge.wamp.session_events import Registered
from flask_wamp_bridge.wamp.session_events import Result
from flask_wamp_bridge.wamp.session_events import Revoked
from flask_wamp_bridge.wamp.session_events import Send
from flask_wamp_bridge.wamp.session_events import Subscribed
from flask_wamp_bridge.wamp.session_events import Unsubscribed
from flask_wamp_bridge.wamp.session_events import result_value
from flask_wamp_bridge.wamp.session_events import yield_payload


def joined_core() -> PeerCore:
    core = PeerCore("realm1", AnonymousAuth())
    core.hello()
    actions = core.receive([2, 9001, {"authid": "me", "authrole": "backend"}])
    assert actions == [Joined(9001, {"authid": "me", "authrole": "backend"})]
    return core


def registered(core: PeerCore, token: object, uri: str) -> int:
    request_id, _ = core.register(token, uri)
    registration_id = 5000 + request_id
    assert core.receive([65, request_id, registration_id]) == [Registered(token, registration_id)]
    return registration_id


def test_peercore_hello_announces_roles_and_auth() -> None:
    core = PeerCore("realm1", WampCraAuth("flask-app", "s3cret"))
    hello = core.hello()
    check_message(hello)
    assert hello[:2] == [1, "realm1"]
    details = hello[2]
    assert details["authid"] == "flask-app"
    assert details["authmethods"] == ["wampcra"]
    assert details["roles"]["callee"]["features"]["call_canceling"] is True
    assert details["roles"]["caller"]["features"]["progressive_call_results"] is True
    assert core.state is PeerState.JOINING
    with pytest.raises(LocalProtocolError):
        core.hello()


def test_peercore_challenge_answered_with_wampcra_signature() -> None:
    core = PeerCore("realm1", WampCraAuth("flask-app", "s3cret"))
    core.hello()
    challenge = '{"nonce": "n1", "session": 77}'
    actions = core.receive([4, "wampcra", {"challenge": challenge, "salt": "pepper", "iterations": 10,
                                           "keylen": 32}])
    key = ab_auth.derive_key("s3cret", "pepper", 10, 32)
    assert actions == [Send([5, ab_auth.compute_wcs(key, challenge).decode(), {}])]
    assert core.state is PeerState.JOINING


def test_peercore_challenge_for_unsupported_method_aborts() -> None:
    core = PeerCore("realm1", WampCraAuth("flask-app", "s3cret"))
    core.hello()
    actions = core.receive([4, "ticket", {}])
    assert isinstance(actions[0], Send) and actions[0].message[0] == 3
    assert actions[0].message[2] == "wamp.error.authentication_failed"
    assert isinstance(actions[1], Closed) and actions[1].aborted
    assert core.state is PeerState.CLOSED


def test_peercore_abort_while_joining_closes() -> None:
    core = PeerCore("realm1", AnonymousAuth())
    core.hello()
    actions = core.receive([3, {"message": "no"}, "wamp.error.no_such_realm"])
    assert actions == [Closed("wamp.error.no_such_realm", "no", True, ())]


def test_peercore_requests_rejected_before_join() -> None:
    core = PeerCore("realm1", AnonymousAuth())
    with pytest.raises(NotConnected):
        core.call("t", "com.x")
    core.hello()
    with pytest.raises(NotConnected):
        core.publish(None, "com.x")
    with pytest.raises(RemoteProtocolError):
        core.receive([50, 1, {}])


def test_peercore_results_matched_by_request_id() -> None:
    core = joined_core()
    sent = {}
    for n in range(20):
        request_id, message = core.call(f"token-{n}", "com.echo", [n])
        assert message == [48, request_id, {}, "com.echo", [n]]
        sent[request_id] = n
    assert len(sent) == 20
    # the router answers in reverse order; each answer reaches its own token
    for request_id in reversed(list(sent)):
        (action,) = core.receive([50, request_id, {}, [sent[request_id] * 10]])
        assert action == Result(f"token-{sent[request_id]}", [sent[request_id] * 10], {}, False)


def test_peercore_request_ids_unique_and_wrap_below_2_53() -> None:
    core = joined_core()
    core._next_id = MAX_ID - 1
    first, _ = core.call("a", "com.x")
    second, _ = core.call("b", "com.x")
    third, _ = core.call("c", "com.x")
    assert (first, second, third) == (MAX_ID - 1, MAX_ID, 1)
    # after wrapping, ids still pending are skipped
    core._next_id = MAX_ID - 1
    fourth, _ = core.call("d", "com.x")
    assert fourth == 2


def test_peercore_unknown_result_is_protocol_error() -> None:
    core = joined_core()
    request_id, _ = core.call("a", "com.x")
    with pytest.raises(RemoteProtocolError, match="never sent"):
        core.receive([50, request_id + 1, {}, [1]])
    # a duplicate answer is a violation too
    core.receive([50, request_id, {}, [1]])
    with pytest.raises(RemoteProtocolError):
        core.receive([50, request_id, {}, [1]])


def test_peercore_answer_of_wrong_kind_is_protocol_error() -> None:
    core = joined_core()
    request_id, _ = core.register("h", "com.proc")
    with pytest.raises(RemoteProtocolError, match="REGISTER"):
        core.receive([50, request_id, {}, [1]])
    # the pending register survives and can still be answered
    assert core.receive([65, request_id, 42]) == [Registered("h", 42)]


def test_peercore_error_maps_to_failed() -> None:
    core = joined_core()
    request_id, _ = core.call("tok", "com.fail")
    actions = core.receive([8, 48, request_id, {}, "com.example.oops", [1, 2], {"why": "because"}])
    assert actions == [Failed("tok", "com.example.oops", [1, 2], {"why": "because"})]
    with pytest.raises(RemoteProtocolError):
        core.receive([8, 68, 1, {}, "wamp.error.x"])


def test_peercore_progressive_results_keep_call_pending() -> None:
    core = joined_core()
    request_id, message = core.call("tok", "com.stream", options={"receive_progress": True})
    assert message[2] == {"receive_progress": True}
    for n in range(3):
        assert core.receive([50, request_id, {"progress": True}, [n]]) == [Result("tok", [n], {}, True)]
    assert core.receive([50, request_id, {}, ["done"]]) == [Result("tok", ["done"], {}, False)]
    with pytest.raises(RemoteProtocolError):
        core.receive([50, request_id, {"progress": True}, [4]])


def test_peercore_cancel_sends_cancel_and_ignores_late_answer() -> None:
    core = joined_core()
    request_id, _ = core.call("tok", "com.slow")
    assert core.cancel(request_id, "killnowait") == [49, request_id, {"mode": "killnowait"}]
    assert core.cancel(request_id) is None
    assert core.receive([8, 48, request_id, {}, "wamp.error.canceled"]) == []
    # Crossbar sends a second ERROR for a canceled call when the callee leaves: dropped too
    assert core.receive([8, 48, request_id, {}, "wamp.error.canceled"]) == []
    # ids never sent stay violations
    with pytest.raises(RemoteProtocolError):
        core.receive([50, request_id + 1, {}, []])


def test_peercore_publish_acknowledged_only_when_asked() -> None:
    core = joined_core()
    _, message = core.publish(None, "com.topic", ["hi"], {"k": 1})
    assert message[3:] == ["com.topic", ["hi"], {"k": 1}]
    request_id, _ = core.publish("tok", "com.topic", options={"acknowledge": True})
    assert core.receive([17, request_id, 777]) == [Published("tok", 777)]


def test_peercore_invocation_dispatched_to_registration_token() -> None:
    core = joined_core()
    add = registered(core, "add-handler", "com.add")
    mul = registered(core, "mul-handler", "com.mul")
    (invoke,) = core.receive([68, 31, mul, {"caller": 12, "caller_authid": "joe", "caller_authrole": "user"},
                              [3, 4]])
    assert isinstance(invoke, Invoke)
    assert (invoke.request_id, invoke.handler, invoke.args, invoke.kwargs) == (31, "mul-handler", [3, 4], {})
    details = invoke.details
    assert (details.procedure, details.caller, details.caller_authid, details.caller_authrole) == (
        "com.mul", 12, "joe", "user")
    assert details.progress is None and not details.receive_progress
    (invoke,) = core.receive([68, 32, add, {"procedure": "com.add.exact"}, [], {"a": 1}])
    assert invoke.handler == "add-handler" and invoke.kwargs == {"a": 1}
    assert invoke.details.procedure == "com.add.exact"
    assert core.yield_(31, [12]) == [70, 31, {}, [12]]
    assert core.yield_(31, [12]) is None  # already answered
    assert core.invocation_error(32, "com.err", ["bad"]) == [8, 68, 32, {}, "com.err", ["bad"]]


def test_peercore_invocation_progress_then_final_yield() -> None:
    core = joined_core()
    reg = registered(core, "h", "com.stream")
    (invoke,) = core.receive([68, 8, reg, {"receive_progress": True}])
    assert invoke.details.receive_progress
    assert core.yield_(8, [1], progress=True) == [70, 8, {"progress": True}, [1]]
    assert core.yield_(8, [], {"n": 2}, progress=True) == [70, 8, {"progress": True}, [], {"n": 2}]
    assert core.yield_(8, ["end"]) == [70, 8, {}, ["end"]]
    assert core.yield_(8, ["again"], progress=True) is None


def test_peercore_interrupt_stops_answers() -> None:
    core = joined_core()
    reg = registered(core, "h", "com.slow")
    core.receive([68, 8, reg, {}])
    # the ERROR lets Crossbar drop the invocation (it already answered the caller)
    assert core.receive([69, 8, {"mode": "killnowait"}]) == [
        Interrupt(8, "killnowait"), Send([8, 68, 8, {}, "wamp.error.canceled"])]
    assert core.yield_(8, [1]) is None
    assert core.invocation_error(8, "wamp.error.canceled") is None
    # an INTERRUPT crossing our YIELD is harmless
    core.receive([68, 9, reg, {}])
    core.yield_(9, [])
    assert core.receive([69, 9, {"mode": "kill"}]) == []


def test_peercore_interrupt_kill_mode_answers_canceled() -> None:
    core = joined_core()
    reg = registered(core, "h", "com.slow")
    core.receive([68, 8, reg, {}])
    assert core.invocation_active(8)
    # in "kill" mode the router waits for the callee's ERROR before answering the caller
    assert core.receive([69, 8, {"mode": "kill"}]) == [
        Interrupt(8, "kill"), Send([8, 68, 8, {}, "wamp.error.canceled"])]
    assert not core.invocation_active(8)


def test_peercore_invocation_for_unknown_registration_answered_with_error() -> None:
    core = joined_core()
    actions = core.receive([68, 3, 999, {}])
    assert actions == [Send([8, 68, 3, {}, "wamp.error.no_such_registration"])]


def test_peercore_duplicate_invocation_id_is_protocol_error() -> None:
    core = joined_core()
    reg = registered(core, "h", "com.x")
    core.receive([68, 3, reg, {}])
    with pytest.raises(RemoteProtocolError):
        core.receive([68, 3, reg, {}])


def test_peercore_event_delivered_to_every_handler_of_subscription() -> None:
    core = joined_core()
    first, _ = core.subscribe("h1", "com.topic")
    second, _ = core.subscribe("h2", "com.topic")
    assert core.receive([33, first, 700]) == [Subscribed("h1", 700)]
    assert core.receive([33, second, 700]) == [Subscribed("h2", 700)]
    (deliver,) = core.receive([36, 700, 1234, {"publisher_authid": "joe"}, ["hi"], {"n": 1}])
    assert isinstance(deliver, Deliver)
    assert deliver.handlers == ("h1", "h2")
    assert (deliver.args, deliver.kwargs) == (["hi"], {"n": 1})
    assert (deliver.details.topic, deliver.details.publication, deliver.details.publisher_authid) == (
        "com.topic", 1234, "joe")
    # events for an unknown subscription (in flight after unsubscribe) are dropped
    assert core.receive([36, 701, 1, {}]) == []


def test_peercore_unsubscribe_sent_only_for_last_handler() -> None:
    core = joined_core()
    for token in ("h1", "h2"):
        request_id, _ = core.subscribe(token, "com.topic")
        core.receive([33, request_id, 700])
    assert core.unsubscribe("h1", 700) is None
    request_id, message = core.unsubscribe("h2", 700)
    assert message == [34, request_id, 700]
    assert core.receive([35, request_id]) == [Unsubscribed("h2")]
    assert core.receive([36, 700, 1, {}]) == []
    with pytest.raises(LocalProtocolError):
        core.unsubscribe("h2", 700)


def test_peercore_router_revokes_registration() -> None:
    core = joined_core()
    reg = registered(core, "h", "com.x")
    assert core.receive([67, 0, {"registration": reg, "reason": "wamp.error.killed"}]) == [
        Revoked("registration", ("h",), "wamp.error.killed")]
    assert core.receive([68, 4, reg, {}]) == [Send([8, 68, 4, {}, "wamp.error.no_such_registration"])]


def test_peercore_goodbye_from_router_is_answered_and_fails_pending() -> None:
    core = joined_core()
    core.call("c1", "com.x")
    core.register("r1", "com.y")
    actions = core.receive([6, {"message": "bye"}, "wamp.close.system_shutdown"])
    assert actions == [Send([6, {}, "wamp.close.goodbye_and_out"]),
                       Closed("wamp.close.system_shutdown", "bye", False, ("c1", "r1"))]
    assert core.state is PeerState.CLOSED


def test_peercore_our_goodbye_completes_on_reply() -> None:
    core = joined_core()
    reg = registered(core, "h", "com.x")
    assert core.goodbye("wamp.close.system_shutdown") == [6, {}, "wamp.close.system_shutdown"]
    assert core.state is PeerState.CLOSING
    # an invocation racing our GOODBYE is refused, not dispatched
    assert core.receive([68, 5, reg, {}]) == [Send([8, 68, 5, {}, "wamp.error.canceled"])]
    assert core.receive([6, {}, "wamp.close.goodbye_and_out"]) == [
        Closed("wamp.close.goodbye_and_out", "", False, ())]


def test_peercore_connection_lost_returns_pending_tokens() -> None:
    core = joined_core()
    core.call("c1", "com.x")
    core.call("c2", "com.x")
    core.publish(None, "com.t")  # unacknowledged: nothing to fail
    closed = core.connection_lost()
    assert closed.reason == "wamp.close.transport_lost" and set(closed.pending) == {"c1", "c2"}
    assert core.state is PeerState.CLOSED
    # a new connection starts a fresh session with ids from 1
    core.hello()
    core.receive([2, 1, {}])
    assert core.call("c3", "com.x")[0] == 1


def test_peercore_abort_for_protocol_violation() -> None:
    core = joined_core()
    core.call("c1", "com.x")
    send, closed = core.abort("wamp.error.protocol_violation", "bad RESULT")
    assert send == Send([3, {"message": "bad RESULT"}, "wamp.error.protocol_violation"])
    assert isinstance(closed, Closed) and closed.pending == ("c1",)


def test_peercore_message_not_allowed_in_state() -> None:
    core = PeerCore("realm1", AnonymousAuth())
    core.hello()
    with pytest.raises(RemoteProtocolError, match="joining"):
        core.receive([36, 1, 1, {}])
    established = joined_core()
    with pytest.raises(RemoteProtocolError):
        established.receive([2, 1, {}])


def test_result_value_maps_like_autobahn() -> None:
    assert result_value([], {}) is None
    assert result_value([5], {}) == 5
    assert result_value([1, 2], {}) == CallResult((1, 2))
    assert result_value([1], {"a": 2}) == CallResult((1,), {"a": 2})
    # wampy 1.1.0 callees repeat the value as kwargs["message"] with a "meta" dict
    assert result_value([7], {"message": 7, "meta": {"procedure_name": "p"}}) == 7
    assert result_value([7], {"message": 8, "meta": {}}) == CallResult((7,), {"message": 8, "meta": {}})


def test_yield_payload_of_return_values() -> None:
    assert yield_payload(5) == ([5], {})
    assert yield_payload(None) == ([None], {})
    assert yield_payload(CallResult((1, 2), {"k": 3})) == ([1, 2], {"k": 3})


def test_backoff_delay_grows_caps_and_jitters() -> None:
    delays = [backoff_delay(n, initial=0.5, maximum=8.0, factor=2.0, rand=0.0) for n in range(8)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert backoff_delay(3, initial=0.5, maximum=8.0, factor=2.0, rand=0.999) == pytest.approx(3.998)
    assert backoff_delay(10_000, initial=0.5, maximum=8.0, factor=2.0, rand=0.5) == 6.0
