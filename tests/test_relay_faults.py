"""Sans-IO: when a relayed session ends for any reason but the browser's, every pending CALL gets one ERROR first."""

from __future__ import annotations

import typing as t

import pytest
from relay_pair import BROWSER_ROLES
from relay_pair import NOW
from relay_pair import REALM
from relay_pair import RelayPair

from flask_wamp_bridge.bridge import faults
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay_events import State

ANN = Identity("ann", "user")
CALL, ERROR, ABORT, GOODBYE, RESULT = 48, 8, 3, 6, 50


def with_calls(*request_ids: int, **options: t.Any) -> RelayPair:
    pair = RelayPair(ANN, **options)
    assert pair.login()[0] == 2
    for request_id in request_ids:
        pair.client_sends([CALL, request_id, {}, "app.slow"])
    return pair


def after_login(pair: RelayPair) -> list[list[t.Any]]:
    return pair.client_messages()[1:]  # past the WELCOME


def errors_then_end(pair: RelayPair, uri: str) -> tuple[list[int], list[t.Any]]:
    """The ERROR request ids (all with ``uri``), and the message that ended the session."""
    *answers, end = [m for m in after_login(pair) if m[0] != RESULT]
    assert all(a[:2] == [ERROR, CALL] and a[4] == uri for a in answers), answers
    return [a[2] for a in answers], end


@pytest.mark.parametrize("max_calls", [100, None])
def test_router_lost_answers_every_pending_call_then_aborts_1011(max_calls: int | None) -> None:
    pair = with_calls(1, 2, 3, max_calls_in_flight=max_calls)
    pair.router_sends([RESULT, 2, {}, ["done"]])
    pair._run(pair.relay.router_closed(1006, "abnormal"))
    answered, end = errors_then_end(pair, faults.ROUTER_LOST.uri)
    assert answered == [1, 3]  # call 2 had its result: exactly one answer each
    assert end[0] == ABORT and end[2] == faults.ROUTER_LOST.uri
    assert pair.closed is not None and pair.closed.code == 1011


def test_progressive_results_keep_a_call_pending() -> None:
    pair = with_calls(7)
    pair.router_sends([RESULT, 7, {"progress": True}, ["partial"]])
    pair._run(pair.relay.router_closed(1006, ""))
    answered, _ = errors_then_end(pair, faults.ROUTER_LOST.uri)
    assert answered == [7]


def test_silent_router_is_a_lost_router() -> None:
    pair = with_calls(4)
    pair._run(pair.relay.router_silent(15))
    answered, end = errors_then_end(pair, faults.ROUTER_SILENT.uri)
    assert answered == [4] and end[0] == ABORT
    assert pair.closed is not None and pair.closed.code == 1011
    assert "15 s" in str(pair.relay.error)


@pytest.mark.parametrize(("code", "fault"), [(1001, faults.SHUTDOWN), (1012, faults.RESTART)])
def test_shutdown_and_restart_answer_pending_calls(code: int, fault: faults.Fault) -> None:
    pair = with_calls(5, 6)
    pair._run(pair.relay.shutdown(code))
    answered, end = errors_then_end(pair, fault.uri)
    assert answered == [5, 6]
    assert end[0] == (GOODBYE if code == 1001 else ABORT)
    assert pair.router_messages()[-1][0] == GOODBYE
    assert pair.closed is not None and pair.closed.code == code


def test_router_goodbye_answers_pending_calls_with_its_reason() -> None:
    pair = with_calls(9)
    pair.router_sends([GOODBYE, {"message": "killed"}, "wamp.close.logout"])
    answered, end = errors_then_end(pair, "wamp.close.logout")
    assert answered == [9] and end[0] == GOODBYE
    pair.router_sends([ERROR, CALL, 9, {}, "wamp.error.canceled"])  # late answers are not passed on
    assert len(after_login(pair)) == 2


def test_router_abort_after_welcome_answers_pending_calls() -> None:
    pair = with_calls(9)
    pair.router_sends([ABORT, {"message": "bye"}, "wamp.error.system_shutdown"])
    answered, end = errors_then_end(pair, "wamp.error.system_shutdown")
    assert answered == [9] and end[0] == ABORT
    assert pair.closed is not None and pair.closed.code == 1011


def test_router_protocol_error_answers_pending_calls() -> None:
    pair = with_calls(11)
    pair.router_sends([4, "ticket", {}])  # a CHALLENGE after WELCOME
    answered, end = errors_then_end(pair, faults.ROUTER_PROTOCOL_ERROR.uri)
    assert answered == [11] and end[0] == ABORT
    assert pair.closed is not None and pair.closed.code == 1011


def test_unreachable_router_aborts_the_hello_with_1013() -> None:
    pair = RelayPair(ANN)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair._run(pair.relay.router_closed(None, "cannot connect: connection refused"))
    [abort] = pair.client_messages()
    assert abort[0] == ABORT and abort[2] == faults.ROUTER_UNREACHABLE.uri
    assert pair.closed is not None and pair.closed.code == 1013


def test_router_timeout_bounds_the_login_from_the_hello() -> None:
    pair = RelayPair(ANN, login_timeout=10, router_timeout=3)
    pair.tick(NOW + 1)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    assert pair.tick(NOW + 3.9) == []
    pair.tick(NOW + 4)
    [abort] = pair.client_messages()
    assert abort[2] == faults.ROUTER_LOGIN_TIMEOUT.uri
    assert pair.closed is not None and pair.closed.code == 1013


def test_router_timeout_starts_when_the_connect_gets_its_turn() -> None:
    pair = RelayPair(ANN, login_timeout=10, router_timeout=3)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.tick(NOW + 2)
    pair.relay.router_connecting(NOW + 2)  # queued 2 s behind other logins
    assert pair.tick(NOW + 4.5) == []
    pair.tick(NOW + 5)
    assert pair.client_messages()[0][2] == faults.ROUTER_LOGIN_TIMEOUT.uri
    assert pair.relay.login_deadline == NOW + 10


def test_no_login_deadline_runs_while_the_connect_waits_for_its_turn() -> None:
    pair = RelayPair(ANN, login_timeout=10, router_timeout=3)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.relay.router_queued(NOW)  # a login storm: 20 s in the queue, past both deadlines
    assert pair.tick(NOW + 20) == []
    pair.relay.router_connecting(NOW + 20)
    assert pair.relay.login_deadline == NOW + 30  # the wait does not count
    assert pair.tick(NOW + 22.9) == []
    pair.tick(NOW + 23)  # the router's 3 s run from the turn
    assert pair.client_messages()[0][2] == faults.ROUTER_LOGIN_TIMEOUT.uri
    assert pair.closed is not None and pair.closed.code == 1013


def test_the_full_login_deadline_moves_by_the_wait_in_the_queue() -> None:
    pair = RelayPair(ANN, login_timeout=10, router_timeout=3)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.relay.router_queued(NOW + 1)
    pair.relay.router_connecting(NOW + 6)
    pair.router_sends([4, "ticket", {}])
    assert pair.tick(NOW + 14.9) == []
    pair.tick(NOW + 15)
    assert pair.client_messages()[0][2] == faults.ROUTER_LOGIN_TIMEOUT.uri


def test_router_timeout_ends_with_the_challenge_then_the_login_deadline_holds() -> None:
    pair = RelayPair(ANN, login_timeout=10, router_timeout=3)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.router_sends([4, "ticket", {}])  # the router answers in time; the authenticator is slow
    assert pair.tick(NOW + 9.5) == []
    pair.tick(NOW + 10)
    [abort] = pair.client_messages()
    assert abort[2] == faults.ROUTER_LOGIN_TIMEOUT.uri
    assert "never answered" in str(pair.relay.error)  # the hint names the authenticator


def test_session_expiry_says_goodbye_and_closes_with_a_reason() -> None:
    pair = with_calls(21, expires_at=NOW + 60)
    assert pair.tick(NOW + 59.5) == []
    assert pair.relay.state is State.ESTABLISHED
    pair.tick(NOW + 60)
    answered, end = errors_then_end(pair, faults.SESSION_EXPIRED.uri)
    assert answered == [21]
    assert end[0] == GOODBYE and end[2] == "wamp_bridge.close.session_expired"
    assert pair.router_messages()[-1][0] == GOODBYE
    assert pair.closed is not None and pair.closed.code == 1008
    assert pair.closed.reason == "login session expired"


def test_session_expiry_before_the_login_closes_too() -> None:
    pair = RelayPair(ANN, expires_at=NOW + 1)
    pair.tick(NOW + 1)
    assert pair.closed is not None and pair.closed.code == 1008


def test_fault_table_uris_and_codes() -> None:
    for name, fault in faults.FAULTS.items():
        assert fault.uri.count(".") >= 2, name
        assert fault.close_code in (1000, 1001, 1008, 1011, 1012, 1013), name
        assert len(fault.reason.encode()) <= 123, name


# --- every call gets one answer: the bridge's own deadline per CALL ----------------------------------------------

CANCEL = 49


def test_a_call_without_an_answer_gets_canceled_at_the_ceiling_and_cancel_goes_upstream() -> None:
    pair = with_calls(1, 2, call_timeout=30)
    pair.router_sends([RESULT, 2, {}, ["done"]])
    assert pair.tick(NOW + 29.5) == []
    pair.tick(NOW + 30)
    error = after_login(pair)[-1]
    assert error[:5] == [ERROR, CALL, 1, {}, "wamp.error.canceled"] and "30 s" in error[5][0]
    assert pair.router_messages()[-1] == [CANCEL, 1, {"mode": "killnowait"}]  # the router frees the invocation
    assert pair.notices[-1].event == "call_deadline"
    assert pair.relay.calls_in_flight == 0 and pair.relay.state is State.ESTABLISHED
    seen = len(after_login(pair))
    pair.router_sends([ERROR, CALL, 1, {}, "wamp.error.canceled", ["killnowait"]])  # the router's late answer
    pair.router_sends([RESULT, 1, {}, ["too late"]])
    assert len(after_login(pair)) == seen  # dropped: exactly one answer per call
    pair.client_sends([CALL, 1, {}, "app.again"])  # the id used again: its answer is the new call's
    pair.router_sends([RESULT, 1, {}, ["fresh"]])
    assert after_login(pair)[-1] == [RESULT, 1, {}, ["fresh"]]


def test_a_calls_own_timeout_is_its_deadline_in_milliseconds_under_the_ceiling() -> None:
    pair = with_calls(call_timeout=60)
    pair.client_sends([CALL, 5, {"timeout": 2500}, "app.slow"])
    pair.client_sends([CALL, 6, {"timeout": 600_000}, "app.slow"])  # longer than the ceiling: the ceiling holds
    pair.tick(NOW + 2.5)
    assert [m[2] for m in after_login(pair)] == [5]
    pair.tick(NOW + 59)
    assert len(after_login(pair)) == 1
    pair.tick(NOW + 60)
    assert [m[2] for m in after_login(pair)] == [5, 6]


def test_no_ceiling_leaves_calls_without_their_own_timeout_alone() -> None:
    pair = with_calls(1, call_timeout=None)
    pair.tick(NOW + 10_000)
    assert after_login(pair) == [] and pair.relay.calls_in_flight == 1


def test_answered_calls_leave_no_deadline_behind() -> None:
    pair = with_calls(call_timeout=60)
    for request_id in range(1, 2001):
        pair.client_sends([CALL, request_id, {}, "app.fast"])
        pair.router_sends([RESULT, request_id, {}, [request_id]])
    assert len(pair.relay._deadlines) <= 16 + 2  # pruned as calls are answered: memory stays bounded
    pair.tick(NOW + 61)
    assert all(m[0] == RESULT for m in after_login(pair))


# --- every server-side end answers the calls in flight and says so first -----------------------------------------

def test_an_abuse_close_answers_calls_in_flight_then_goodbye_then_1008() -> None:
    from flask_wamp_bridge.bridge.checks import Limits

    pair = with_calls(1, 2, limits=Limits(max_strikes=2))
    for request_id in (10, 11, 12):
        pair.client_sends([CALL, request_id, {}, "not a uri"])  # refused, a strike each
    messages = after_login(pair)
    refusals = [m for m in messages if m[0] == ERROR and m[4] == "wamp.error.invalid_uri"]
    assert [m[2] for m in refusals] == [10, 11]
    pending = [m for m in messages if m[0] == ERROR and m[4] == faults.ABUSE.uri]
    assert [m[2] for m in pending] == [1, 2]  # exactly one answer for each call in flight
    assert messages[-1][0] == GOODBYE and messages[-1][2] == faults.ABUSE.uri
    assert pair.router_messages()[-1][0] == GOODBYE  # the router's session ends before its transport
    assert pair.closed is not None and pair.closed.code == 1008 and pair.closed.router_goodbye
    assert pair.notices[-1].event == "abuse"


def test_a_browser_that_vanishes_ends_the_router_session_with_goodbye_first() -> None:
    pair = with_calls(1)
    pair._run(pair.relay.client_closed())
    assert pair.router_messages()[-1][:1] == [GOODBYE] and pair.router_messages()[-1][2] == "wamp.close.normal"
    assert pair.closed is not None and pair.closed.code == 1000
    assert pair.closed.router_goodbye  # the IO layer waits (briefly) for the router's reply


def test_a_browser_gone_after_the_routers_goodbye_replies_to_it() -> None:
    pair = with_calls()
    pair.router_sends([GOODBYE, {}, "wamp.close.logout"])
    pair._run(pair.relay.client_closed())
    assert pair.router_messages()[-1] == [GOODBYE, {}, "wamp.close.goodbye_and_out"]
    assert pair.closed is not None and not pair.closed.router_goodbye


def test_the_browsers_goodbye_waits_for_the_routers_reply() -> None:
    pair = with_calls()
    pair.client_sends([GOODBYE, {}, "wamp.close.close_realm"])
    pair.router_sends([GOODBYE, {}, "wamp.close.goodbye_and_out"])
    assert pair.closed is not None and not pair.closed.router_goodbye  # the reply came


def test_a_router_lost_needs_no_goodbye() -> None:
    pair = with_calls(1)
    pair._run(pair.relay.router_closed(1006, ""))
    assert pair.closed is not None and not pair.closed.router_goodbye


# --- the router's trouble during a login is retryable ------------------------------------------------------------

@pytest.mark.parametrize(("uri", "fault"), [
    ("wamp.error.no_such_procedure", faults.AUTHENTICATOR_MISSING),  # no peer has registered it (yet)
    ("wamp.error.unavailable", faults.ROUTER_BUSY),
    ("wamp.error.runtime_error", faults.AUTHENTICATOR_FAILED),
])
def test_a_login_the_router_cannot_serve_yet_aborts_1013(uri: str, fault: faults.Fault) -> None:
    from flask_wamp_bridge.errors import ApplicationError

    def authenticate(*args: t.Any) -> t.NoReturn:
        raise ApplicationError(uri, "no callee registered for procedure <wamp_bridge.authenticate>")

    pair = RelayPair(ANN)
    pair.router.authenticate = authenticate
    abort = pair.login()
    assert abort[0] == ABORT and abort[2] == fault.uri and abort[1] == {"message": fault.message}
    assert pair.closed is not None and pair.closed.code == 1013
    assert pair.relay.router_refusal is not None and pair.relay.router_refusal.reason == uri  # for the log
    assert uri in faults.LOGIN_ABORTS


def test_a_refusal_of_the_browser_itself_stays_final() -> None:
    from flask_wamp_bridge.errors import ApplicationError

    def authenticate(*args: t.Any) -> t.NoReturn:
        raise ApplicationError("wamp.error.not_authorized", "not a browser role")

    pair = RelayPair(ANN)
    pair.router.authenticate = authenticate
    abort = pair.login()
    assert abort[2] == "wamp.error.not_authorized" and pair.closed is not None and pair.closed.code == 1008


def test_a_protocol_violation_answers_the_calls_in_flight_before_its_abort() -> None:
    pair = with_calls(1, 2)
    pair.client_sends([CALL, 1, {}, "app.again"])  # a request id already in flight: a violation
    messages = after_login(pair)
    assert [m[:3] for m in messages[:2]] == [[ERROR, CALL, 1], [ERROR, CALL, 2]]
    assert all(m[4] == "wamp.error.protocol_violation" for m in messages[:2])
    assert messages[2][0] == ABORT and len(messages) == 3
    assert pair.router_messages()[-1][0] == GOODBYE
    assert pair.closed is not None and pair.closed.code == 1002


def test_the_metrics_forget_every_call_the_bridge_gives_up_on_or_its_session_takes_along() -> None:
    pytest.importorskip("prometheus_client")
    import prometheus_client

    from flask_wamp_bridge import metrics_sink
    from flask_wamp_bridge.ops.metrics import Metrics
    from flask_wamp_bridge.ops.metrics import PrometheusSink

    class Recording(PrometheusSink):
        def __init__(self) -> None:
            super().__init__(Metrics(prometheus_client.CollectorRegistry()))
            self.open: set[tuple[int, int]] = set()

        def call_started(self, owner: object, request_id: int) -> None:
            super().call_started(owner, request_id)
            self.open.add((id(owner), request_id))

        def call_ended(self, owner: object, request_id: int, outcome: str) -> None:
            super().call_ended(owner, request_id, outcome)  # "canceled" too: no timing, no KeyError
            self.open.discard((id(owner), request_id))

    sink = Recording()
    previous = metrics_sink.install(sink)
    try:
        pair = with_calls(1, 2, call_timeout=30)
        pair.tick(NOW + 30)  # both given up on at their deadline
        assert pair.relay.calls_in_flight == 0 and sink.open == set()
        pair.client_sends([CALL, 3, {}, "app.slow"])
        pair.client_sends([CALL, 4, {}, "app.slow"])
        assert len(sink.open) == 2
        pair.router_sends([GOODBYE, {}, "wamp.close.system_shutdown"])  # the session ends with them pending
        assert sink.open == set()
    finally:
        metrics_sink.install(previous)


@pytest.mark.parametrize("peer_refused", [True, False])
def test_a_missing_authenticator_while_the_router_refuses_the_app_peer_is_a_misconfiguration(
        peer_refused: bool) -> None:
    from flask_wamp_bridge.errors import ApplicationError

    def authenticate(*args: t.Any) -> t.NoReturn:
        raise ApplicationError("wamp.error.no_such_procedure", "no callee registered for procedure")

    asked: list[bool] = []

    def refused() -> bool:
        asked.append(peer_refused)
        return peer_refused

    pair = RelayPair(ANN, peer_refused=refused)
    pair.router.authenticate = authenticate
    abort = pair.login()
    fault = faults.PEER_REFUSED if peer_refused else faults.AUTHENTICATOR_MISSING
    assert abort[0] == ABORT and abort[2] == fault.uri and abort[1] == {"message": fault.message}
    assert abort[2] == ("wamp_bridge.error.server_misconfigured" if peer_refused
                        else "wamp_bridge.error.router_unavailable")
    assert pair.closed is not None and pair.closed.code == 1013 and pair.closed.reason == fault.reason
    assert asked == [peer_refused]  # asked at the ABORT, not before


def test_a_refused_app_peer_changes_only_the_missing_authenticator() -> None:
    assert faults.login_fault("wamp.error.no_such_procedure", peer_refused=True) is faults.PEER_REFUSED
    assert faults.login_fault("wamp.error.unavailable", peer_refused=True) is faults.ROUTER_BUSY
    assert faults.login_fault("wamp.error.not_authorized", peer_refused=True) is None
