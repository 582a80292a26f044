"""What a browser session shares with its worker, and what it learns of the app: sans-IO.

Per-user byte buckets and session caps (:mod:`flask_wamp_bridge.bridge.budgets`), the backend's identity kept
out of RESULT and EVENT details, a reserved procedure refused word for word as an existing one, and a ticket that
reached a slow authenticator late ending the login as retryable (1013), not as a bad credential.
"""

from __future__ import annotations

import typing as t

import pytest
from relay_pair import NOW
from relay_pair import SECRET
from relay_pair import RelayPair
from relay_pair import ScriptedRouter

from flask_wamp_bridge.bridge import tickets
from flask_wamp_bridge.bridge.budgets import Caps
from flask_wamp_bridge.bridge.budgets import WorkerBudgets
from flask_wamp_bridge.bridge.checks import ByteBucket
from flask_wamp_bridge.bridge.checks import Limits
from flask_wamp_bridge.bridge.checks import Shared
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay import TOO_MANY_SESSIONS
from flask_wamp_bridge.errors import StaleTicket
from flask_wamp_bridge.wamp.messages import SUBPROTOCOLS

ALICE = Identity("alice", "user")
BACKEND = {"callee": 77, "callee_authid": "flask-app", "callee_authrole": "backend"}


def joined(**options: t.Any) -> RelayPair:
    pair = RelayPair(ALICE, **options)
    assert pair.login()[0] == 2
    return pair


# --- the user's bytes across sessions -----------------------------------------------------------------


def test_a_users_sessions_share_one_byte_bucket() -> None:
    budgets = WorkerBudgets(Caps(user_byte_rate=1.0, user_byte_burst=1000))
    first, second = (budgets.admit("alice", "10.0.0.1", NOW) for _ in range(2))
    assert first.user_bytes is second.user_bytes is not None
    one = joined(shared=Shared(first.user_bytes))
    two = joined(shared=Shared(second.user_bytes))
    one.client_sends([48, 1, {}, "app.x", ["x" * 3000]])  # within the session's own bucket, not the user's
    assert one.router_messages()[-1][0] == 48
    two.client_sends([48, 1, {}, "app.x"])
    assert two.client_messages()[-1][:5] == [8, 48, 1, {}, "wamp.error.canceled"]
    other = budgets.admit("bob", "10.0.0.1", NOW)
    assert other.user_bytes is not first.user_bytes


def test_a_bucket_in_debt_refills_at_its_rate() -> None:
    bucket = ByteBucket(100.0, 50, 0.0)
    assert bucket.ready(0.0)
    bucket.take(250)
    assert not bucket.ready(1.0)
    assert bucket.ready(2.0)
    assert bucket.tokens == 0.0
    assert bucket.ready(100.0) and bucket.tokens == 50.0
    bucket.take(100)
    assert not bucket.ready(99.0)  # a session a moment late refills nothing ...
    assert not bucket.ready(100.4) and bucket.tokens == pytest.approx(-10.0)  # ... nor twice the same time


# --- sessions per user and per address, per worker ------------------------------------------------------


def test_sessions_per_user_and_address_are_capped_and_given_back() -> None:
    budgets = WorkerBudgets(Caps(sessions_per_user=2, sessions_per_address=3))
    a1, a2 = budgets.admit("alice", "10.0.0.1", NOW), budgets.admit("alice", "10.0.0.2", NOW)
    refused = budgets.admit("alice", "10.0.0.3", NOW)
    assert a1.refusal is None and a2.refusal is None and refused.refusal is not None
    refused.release()  # holds nothing
    assert budgets.sessions_of("alice") == 2
    b1, b2 = budgets.admit("bob", "10.0.0.1", NOW), budgets.admit("carol", "10.0.0.1", NOW)
    assert b1.refusal is None and b2.refusal is None
    assert budgets.admit("dave", "10.0.0.1", NOW).refusal is not None  # the address holds 3
    a1.release()
    a1.release()  # once only
    assert budgets.sessions_of("alice") == 1
    assert budgets.admit("dave", "10.0.0.1", NOW).refusal is None
    assert budgets.admit("alice", "10.0.0.9", NOW).refusal is None


def test_no_caps_by_address_by_default() -> None:
    budgets = WorkerBudgets(Caps())
    assert all(budgets.admit(f"guest-{i}", "10.0.0.1", NOW).refusal is None for i in range(2000))


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_a_session_past_the_cap_gets_abort_and_1008_without_the_router(subprotocol: str) -> None:
    pair = RelayPair(ALICE, subprotocol=subprotocol, refusal="this user has 2 sessions open here")
    abort = pair.login()
    assert abort[0] == 3 and abort[2] == TOO_MANY_SESSIONS
    assert pair.closed is not None and pair.closed.code == 1008
    assert not pair.router_connected


# --- what a browser learns of the app --------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_result_and_event_details_lose_the_backends_identity(subprotocol: str) -> None:
    pair = joined(subprotocol=subprotocol)
    pair.client_sends([48, 1, {}, "app.x"])
    pair.router_sends([50, 1, {**BACKEND, "progress": False}, ["r"]])
    pair.router_sends([36, 9, 10, {"publisher": 77, "publisher_authid": "flask-app",
                                   "publisher_authrole": "backend", "topic": "app.t"}, ["e"]])
    pair.router_sends([36, 9, 11, {"publisher": 78, "publisher_authid": "bob", "publisher_authrole": "user"}, ["e"]])
    result, event, from_user = pair.client_messages()[-3:]
    assert result == [50, 1, {"progress": False}, ["r"]]
    assert event == [36, 9, 10, {"topic": "app.t"}, ["e"]]
    assert from_user[3] == {"publisher": 78, "publisher_authid": "bob", "publisher_authrole": "user"}
    assert pair.relay.calls_in_flight == 0


def test_result_details_keep_the_backend_when_configured() -> None:
    pair = joined(limits=Limits(disclose_backend=True))
    pair.client_sends([48, 1, {}, "app.x"])
    pair.router_sends([50, 1, dict(BACKEND), ["r"]])
    assert pair.client_messages()[-1][2] == BACKEND


def test_a_result_without_identity_is_forwarded_as_it_came() -> None:
    pair = joined()
    pair.client_sends([48, 1, {}, "app.x"])
    frame = pair.serializer.dumps([50, 1, {}, ["the callee said hi"]])
    pair.router_sends(frame)
    assert pair.at_client[-1] is frame


def test_a_reserved_procedure_is_refused_as_the_router_refuses_an_existing_one() -> None:
    pair = joined(shared=Shared(reserved=lambda: frozenset({"app.serve"})))
    pair.client_sends([64, 1, {}, "app.serve"])
    pair.client_sends([64, 2, {}, "app.taken"])
    pair.router_sends([8, 64, 2, {}, "wamp.error.procedure_already_exists",
                       ["register for already registered procedure 'app.taken'"]])
    reserved, existing = pair.client_messages()[-2:]
    assert reserved[2:] == [1, {}, "wamp.error.procedure_already_exists", ["the router refused the request"], {}]
    assert reserved[:2] + reserved[3:6] == existing[:2] + existing[3:]


# --- overload is not a bad credential ---------------------------------------------------------------------


def test_the_ticket_is_signed_when_the_router_challenges() -> None:
    pair = RelayPair(ALICE)
    pair.client_sends([1, "realm1", {"roles": {"caller": {}}}])
    pair.tick(NOW + 3.0)  # the router takes its time to challenge
    pair.pump_router()
    assert pair.client_messages()[-1][0] == 2
    tickets.verify(pair.router.tickets[-1], SECRET, NOW + 3.0, 0.5)  # its age counts from the challenge
    with pytest.raises(StaleTicket):
        tickets.verify(pair.router.tickets[-1], SECRET, NOW + 4.0, 0.5)


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_a_ticket_that_reached_a_slow_authenticator_late_ends_the_login_as_retryable(subprotocol: str) -> None:
    pair = RelayPair(ALICE, subprotocol=subprotocol)
    pair.router = ScriptedRouter(pair.serializer, clock=lambda: NOW + 31.0)  # 30 s maximum age
    abort = pair.login()
    assert abort[0] == 3 and abort[2] == "wamp_bridge.error.router_unavailable"
    assert "ticket" not in repr(abort)
    assert pair.closed is not None and pair.closed.code == 1013


def test_a_ticket_the_authenticator_cannot_verify_is_not_a_stale_one() -> None:
    """Another secret at the authenticator: its own retryable URI, not the overload's.

    A browser never holds a ticket."""
    pair = RelayPair(ALICE)
    pair.router = ScriptedRouter(pair.serializer, secret="another-key")
    abort = pair.login()
    assert abort[2] == "wamp_bridge.error.authenticator_failed"
    assert pair.closed is not None and pair.closed.code == 1013


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest.mark.parametrize("message", [
    [50, 1, "callee", ["details not a dict"]],
    [50, 1.5, {"callee": 77}, ["an id that is no uint"]],
    [50, 1, {"other": "callee"}, ["the word in the payload only"]],
], ids=["details not a dict", "float id", "word in the payload"])
def test_results_the_checks_cannot_read_that_way_go_as_they_came(subprotocol: str, message: list[t.Any]) -> None:
    pair = joined(subprotocol=subprotocol)
    pair.client_sends([48, 1, {}, "app.x"])
    frame = pair.serializer.dumps(message)
    pair.router_sends(frame)
    assert pair.at_client[-1] is frame


# --- the app's procedures, as the extension tells the endpoint ---------------------------------------------


def test_the_app_procedures_are_its_declared_and_live_registrations() -> None:
    from flask import Flask

    from flask_wamp_bridge import WampBridge

    bridge = WampBridge()

    @bridge.register("app.serve")
    def serve() -> None: ...

    @bridge.register()
    def add() -> None: ...

    @bridge.subscribe("app.news")
    def news() -> None: ...

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PREFIX="shop", WAMP_BRIDGE_PEER_SECRET="p")
    bridge.init_app(app)
    state = app.extensions["wamp_bridge"]
    assert state.app_procedures() == {"app.serve", "shop.add", "wamp_bridge.authenticate"}
    state.peer.register("app.live", lambda: None)  # recorded by the peer (not started), registered once it joins
    assert state.app_procedures() == {"app.serve", "shop.add", "wamp_bridge.authenticate", "app.live"}


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_scrubbing_remembers_details_it_has_seen_and_stays_right(subprotocol: str) -> None:
    pair = joined(subprotocol=subprotocol)
    expected = []
    for n in range(1, 21):  # more distinct details than a session remembers, each seen twice, two roles
        role = "backend" if n % 3 else "user"
        details = {"callee": 1000 + n % 10, "callee_authid": f"who-{n % 10}", "callee_authrole": role}
        for request_id in (n, n + 1000):
            pair.client_sends([48, request_id, {}, "app.x"])
            pair.router_sends([50, request_id, details, [request_id]])
            expected.append([50, request_id, {} if role == "backend" else details, [request_id]])
    assert pair.client_messages()[-len(expected):] == expected
