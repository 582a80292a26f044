from __future__ import annotations

import random

import pytest
from relay_pair import BROWSER_ROLES
from relay_pair import NOW
from relay_pair import REALM
from relay_pair import SECRET
from relay_pair import RelayPair

from flask_wamp_bridge.bridge import tickets
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.identity import rewrite_hello
from flask_wamp_bridge.bridge.relay import CALLS_IN_FLIGHT_ERROR
from flask_wamp_bridge.bridge.relay import Relay
from flask_wamp_bridge.bridge.relay_events import Close
from flask_wamp_bridge.bridge.relay_events import ConnectRouter
from flask_wamp_bridge.bridge.relay_events import SendToClient
from flask_wamp_bridge.bridge.relay_events import SendToRouter
from flask_wamp_bridge.bridge.relay_events import State
from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.wamp.heads import _peek_cbor
from flask_wamp_bridge.wamp.heads import _peek_json
from flask_wamp_bridge.wamp.heads import _peek_msgpack
from flask_wamp_bridge.wamp.messages import serializer_for
from flask_wamp_bridge.websocket import frames

ANN = Identity("ann", "user", {"name": "Ann"})
SUBPROTOCOLS = ["wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor"]

FORGED_DETAILS = {
    "roles": BROWSER_ROLES,
    "agent": "wampy.js v7",
    "authid": "mallory",
    "authrole": "admin",
    "authmethods": ["anonymous", "wampcra"],
    "authextra": {"proxy_authid": "mallory", "proxy_authrole": "admin"},
    "x_custom": {"nested": [1, 2, 3]},
}


def established(identity: Identity = ANN, **options) -> RelayPair:
    pair = RelayPair(identity, **options)
    welcome = pair.login()
    assert welcome[0] == 2, welcome
    assert pair.relay.state is State.ESTABLISHED
    return pair


# --- login ---------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_relay_rewrites_hello_keeping_unknown_keys(subprotocol):
    pair = RelayPair(ANN, subprotocol=subprotocol)
    pair.login(FORGED_DETAILS)
    hello = pair.router_messages()[0]
    assert hello[:2] == [1, REALM]
    assert hello[2] == {
        "roles": BROWSER_ROLES,
        "agent": "wampy.js v7",
        "x_custom": {"nested": [1, 2, 3]},
        "authmethods": ["ticket"],
        "authid": "ann",
        "authextra": {"name": "Ann"},
    }
    assert "authrole" not in hello[2]


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_relay_login_ignores_the_forged_identity(subprotocol):
    pair = RelayPair(ANN, subprotocol=subprotocol)
    welcome = pair.login(FORGED_DETAILS)
    assert welcome[0] == 2
    assert welcome[2]["authid"] == "ann"
    assert welcome[2]["authrole"] == "user"
    assert welcome[2]["authextra"] == {"name": "Ann"}
    assert pair.relay.session_id == pair.router.session_id


def test_relay_answers_the_challenge_and_swallows_it():
    pair = RelayPair(ANN)
    pair.login()
    kinds = [message[0] for message in pair.router_messages()]
    assert kinds == [1, 5]  # HELLO, AUTHENTICATE
    assert [message[0] for message in pair.client_messages()] == [2]  # only WELCOME: no CHALLENGE
    issued = pair.router.tickets[0]
    assert tickets.verify(issued, SECRET, NOW, 30, realm=REALM) == ANN
    assert all(issued not in frame for frame in pair.at_client)
    # the upstream is opened only with a valid HELLO, before anything is sent to it
    assert isinstance(pair.actions[0], ConnectRouter)


def test_relay_wampproto_joiner_as_browser_gets_the_servers_identity():
    pytest.importorskip("wampproto")
    from wampproto.auth import TicketAuthenticator
    from wampproto.joiner import Joiner
    from wampproto.serializers import JSONSerializer

    joiner = Joiner(REALM, JSONSerializer(), TicketAuthenticator("mallory", "my-forged-ticket", {"role": "admin"}))
    pair = RelayPair(ANN)
    pair.client_sends(joiner.send_hello())
    pair.pump_router()
    assert joiner.receive(pair.at_client[-1]) is None  # WELCOME: no AUTHENTICATE was asked of it
    details = joiner.get_session_details()
    assert (details.authid, details.authrole) == ("ann", "user")
    assert "my-forged-ticket" not in pair.at_router[1]


def test_relay_anonymous_identity_logs_in_as_itself():
    anonymous = Identity("anonymous-3f2a", "anonymous")
    pair = established(anonymous)
    welcome = pair.client_messages()[-1]
    assert (welcome[2]["authid"], welcome[2]["authrole"]) == ("anonymous-3f2a", "anonymous")


def test_relay_without_identity_aborts_not_authorized():
    pair = RelayPair(None)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES, "authid": "ann"}])
    assert pair.client_messages() == [[3, {"message": pair.client_messages()[0][1]["message"]},
                                       "wamp.error.not_authorized"]]
    assert "log in" in pair.client_messages()[0][1]["message"]
    assert pair.closed.code == 1008
    assert not pair.router_connected and pair.at_router == []
    assert pair.relay.router_refusal is None  # the bridge refused, not the router


def test_relay_router_abort_is_forwarded_with_its_text_for_the_log_only():
    pair = RelayPair(ANN)
    pair.router.authenticate = tickets.make_authenticator(SECRET, 30, realm="another-realm", clock=lambda: NOW)
    last = pair.login()
    assert last[0] == 3 and last[2] == "wamp.error.not_authorized"
    assert pair.closed.code == 1008
    assert pair.relay.state is State.CLOSED
    refusal = pair.relay.router_refusal  # for the endpoint's log line
    assert refusal is not None and refusal.reason == "wamp.error.not_authorized"
    assert "another-realm" in refusal.message  # the router's text: logged ...
    assert last[1] == {"message": "the router ended the session"}  # ... not shown to the browser


def test_relay_ticket_the_authenticator_cannot_check_is_retryable():
    """Another ticket secret (or a clock off): the bridge's own ticket failed, never the browser's fault."""
    pair = RelayPair(ANN)
    pair.router.authenticate = tickets.make_authenticator("another-secret", 30, realm=REALM,
                                                          clock=lambda: NOW)
    last = pair.login()
    assert last[0] == 3 and last[2] == "wamp_bridge.error.authenticator_failed"
    assert pair.closed.code == 1013
    refusal = pair.relay.router_refusal  # the endpoint logs it with the hint
    assert refusal is not None and refusal.reason == "wamp.error.authentication_failed"
    assert "signature does not match" in refusal.message
    assert "signature" not in last[1]["message"]



def test_relay_signs_the_ticket_for_the_upstreams_local_address():
    """The IO layer tells the relay its end of the upstream; the ticket the relay answers with is bound to it."""
    pair = RelayPair(ANN)
    assert pair.login()[0] == 2
    assert pair.signed_for == ["tcp4:127.0.0.1:40000"]  # UPSTREAM_ADDRESS in Crossbar's notation
    assert len(pair.router.tickets) == 1

    unbound = []
    relay = Relay(ANN, REALM, pair.serializer, lambda who, peer: unbound.append(peer) or "ticket", NOW)
    relay.from_client(pair.serializer.dumps([1, REALM, {"roles": BROWSER_ROLES}]))
    relay.router_connected(None)  # a socket without an address (not TCP): nothing to bind to
    relay.from_router(pair.serializer.dumps([4, "ticket", {}]))
    assert unbound == [None]


# --- bad input before WELCOME ---------------------------------------------------


@pytest.mark.parametrize("frame, fragment", [
    ([48, 1, {}, "com.example.add"], "expected HELLO first"),
    ('[1, "realm1", {"roles": {}', "not valid json"),
    ('{"hello": 1}', "non-empty list"),
    ("[]", "non-empty list"),
    ('[1, "realm1"]', "HELLO has 1 fields"),
    ('[1, "realm1", []]', "must be a dict"),
    ([1, REALM, {}], "roles"),
    ([99, 1], "unknown WAMP message type"),
    # values no serializer must build or carry: refused while decoding
    ('[1, "realm1", {"roles": {"caller": {}}, "x": NaN}]', "NaN is not a number"),
    ('[1, "realm1", {"roles": {"caller": {}}, "x": 1e400}]', "beyond the range of a double"),
    ('[1, "realm1", {"roles": {"caller": {}}, "x": ' + "9" * 5000 + "}]", "beyond 64 bits"),
])
def test_relay_bad_first_message_is_a_protocol_violation(frame, fragment):
    pair = RelayPair(ANN)
    pair.client_sends(frame)
    [abort] = pair.client_messages()
    assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
    assert fragment in abort[1]["message"]
    assert pair.closed.code == 1002
    assert not pair.router_connected and pair.at_router == []
    assert pair.relay.state is State.CLOSED


def test_relay_deeply_nested_hello_gets_an_abort_not_an_exception():
    # Around the recursion limit a HELLO can decode and then fail to encode again.
    for depth in range(500, 1100):
        pair = RelayPair(ANN)
        nested = "[" * depth + "]" * depth
        pair.client_sends('[1, "realm1", {"roles": {"caller": {}}, "x": ' + nested + "}]")
        if pair.router_connected:  # small enough to pass on whole
            assert pair.router_messages()[0][2]["authid"] == "ann"
            continue
        [abort] = pair.client_messages()
        assert abort[2] == "wamp.error.protocol_violation"
        assert pair.closed.code == 1002


def test_relay_hello_for_another_realm_is_no_such_realm():
    pair = RelayPair(ANN)
    pair.client_sends([1, "other", {"roles": BROWSER_ROLES}])
    [abort] = pair.client_messages()
    assert abort[2] == "wamp.error.no_such_realm"
    assert pair.closed.code == 1008
    assert not pair.router_connected


@pytest.mark.parametrize("subprotocol, frame", [
    ("wamp.2.json", b'[1, "realm1", {}]'),
    ("wamp.2.msgpack", '[1, "realm1", {}]'),
    ("wamp.2.cbor", "text"),
])
def test_relay_wrong_frame_type_closes_1003(subprotocol, frame):
    pair = RelayPair(ANN, subprotocol=subprotocol)
    pair.client_sends(frame)
    assert pair.at_client == []
    assert pair.closed.code == 1003
    assert not pair.router_connected


def test_relay_wrong_frame_type_after_welcome_closes_1003():
    pair = established()
    pair.client_sends(b"[16, 1, {}, \"t\"]")
    assert pair.closed.code == 1003
    assert len(pair.at_router) == 3  # HELLO, AUTHENTICATE, then only the GOODBYE that ends the router's session
    assert pair.router_messages()[-1] == [6, {}, "wamp.error.protocol_violation"]


def test_relay_second_hello_is_a_protocol_violation():
    pair = established()
    before = len(pair.at_router)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES, "authid": "admin"}])
    assert len(pair.at_router) == before + 1
    assert pair.router_messages()[-1] == [6, {}, "wamp.error.protocol_violation"]
    abort = pair.client_messages()[-1]
    assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
    assert pair.closed.code == 1002


def test_relay_second_hello_during_login_is_a_protocol_violation():
    pair = RelayPair(ANN)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    assert len(pair.at_router) == 1
    assert pair.client_messages()[-1][2] == "wamp.error.protocol_violation"
    assert pair.closed.code == 1002


@pytest.mark.parametrize("frame", [
    [5, "my-ticket", {}],
    [48, 1, {}, "com.example.add"],
    "not json",
])
def test_relay_browser_speaking_during_login_is_a_protocol_violation(frame):
    pair = RelayPair(ANN)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.client_sends(frame)
    assert len(pair.at_router) == 1
    assert pair.client_messages()[-1][2] == "wamp.error.protocol_violation"
    assert pair.closed.code == 1002


def test_relay_browser_abort_during_login_is_forwarded():
    pair = RelayPair(ANN)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.client_sends([3, {}, "wamp.close.goodbye_and_out"])
    assert pair.router_messages()[-1] == [3, {}, "wamp.close.goodbye_and_out"]
    assert pair.closed.code == 1000


@pytest.mark.parametrize("after_welcome", ['{"a": 1}', "[", "", "[-16, 1]",
                                           '\u00a0[48, 1, {}, "x"]', '[\u0664\u0668, 1, {}, "x"]'])
def test_relay_garbage_after_welcome_is_a_protocol_violation(after_welcome):
    pair = established()
    pair.client_sends(after_welcome)
    assert len(pair.at_router) == 3
    assert pair.router_messages()[-1] == [6, {}, "wamp.error.protocol_violation"]
    assert pair.client_messages()[-1][2] == "wamp.error.protocol_violation"
    assert pair.closed.code == 1002


def test_relay_refuses_input_after_it_closed():
    pair = RelayPair(ANN)
    pair.client_sends("garbage")
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.relay.from_client("[1]")
    with pytest.raises(LocalProtocolError):
        pair.relay.from_router("[1]")
    assert pair.relay.client_closed() == []
    assert pair.relay.router_closed() == []
    assert pair.relay.tick(NOW + 1000) == []
    assert pair.relay.shutdown() == []


# --- router misbehaving during the login ----------------------------------------


def _hello_sent(**options) -> RelayPair:
    pair = RelayPair(ANN, **options)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    return pair


def assert_router_failure_aborted(pair: RelayPair) -> None:
    """A router that breaks the login gets the browser an ABORT naming that, never what the router sent."""
    assert [message[0] for message in pair.client_messages()] == [3]
    assert pair.client_messages()[0][2] == "wamp_bridge.error.router_protocol_error"


def test_relay_refuses_a_challenge_for_another_method():
    pair = _hello_sent()
    pair.router_sends([4, "wampcra", {"challenge": "{}"}])
    assert_router_failure_aborted(pair)
    assert pair.router_messages()[-1][0] == 3
    assert pair.closed.code == 1011
    assert "ticket authentication" in str(pair.relay.error)


def test_relay_refuses_a_second_challenge():
    pair = _hello_sent()
    pair.router_sends([4, "ticket", {}])
    pair.router_sends([4, "ticket", {}])
    assert_router_failure_aborted(pair)
    assert pair.closed.code == 1011


def test_relay_refuses_a_welcome_for_another_authid():
    # what Crossbar does when the authenticator returns only a role and the HELLO named someone else
    pair = _hello_sent()
    pair.router_sends([4, "ticket", {}])
    pair.router_sends([2, 1, {"authid": "mallory", "authrole": "admin", "roles": {}}])
    assert_router_failure_aborted(pair)
    assert pair.closed.code == 1011
    assert "must return the ticket's authid" in str(pair.relay.error)


def test_relay_strips_crossbar_internals_from_the_welcome():
    pair = _hello_sent()
    pair.router_sends([4, "ticket", {}])  # the relay answers with a ticket
    extra = {"x_cb_node": "node1", "x_cb_pid": 4242, "x_cb_peer": "tcp4:127.0.0.1:5555", "team": "blue"}
    pair.router_sends([2, 7, {"authid": "ann", "authrole": "user", "roles": {"dealer": {}}, "authextra": extra}])
    welcome = pair.client_messages()[-1]
    assert welcome[:2] == [2, 7]
    assert welcome[2]["authextra"] == {"team": "blue"}
    assert welcome[2]["roles"] == {"dealer": {}}
    assert pair.relay.state is State.ESTABLISHED


def test_relay_refuses_a_welcome_without_challenge():
    pair = _hello_sent()
    pair.router_sends([2, 1, {"authid": "ann", "authrole": "user", "roles": {}}])
    assert_router_failure_aborted(pair)
    assert pair.closed.code == 1011


def test_relay_router_speaking_out_of_turn_during_login_fails():
    pair = _hello_sent()
    pair.router_sends([36, 1, 2, {}])
    assert_router_failure_aborted(pair)
    assert pair.closed.code == 1011


# --- deadlines ------------------------------------------------------------------


def test_relay_login_deadline_without_hello():
    pair = RelayPair(ANN, login_timeout=10)
    assert pair.tick(NOW + 9.9) == []
    pair.tick(NOW + 10)
    [abort] = pair.client_messages()
    assert abort[2] == "wamp.error.protocol_violation"
    assert "no HELLO within 10 s" in abort[1]["message"]
    assert pair.closed.code == 1002


def test_relay_login_deadline_when_the_router_never_welcomes():
    pair = RelayPair(ANN, login_timeout=10)
    pair.tick(NOW + 5)
    pair.client_sends([1, REALM, {"roles": BROWSER_ROLES}])
    pair.router_sends([4, "ticket", {}])
    assert pair.tick(NOW + 9) == []
    pair.tick(NOW + 10.5)
    [abort] = pair.client_messages()
    assert abort[0] == 3 and abort[2] == "wamp_bridge.error.router_unavailable"
    assert pair.closed.code == 1013


def test_relay_no_deadline_once_established():
    pair = established(login_timeout=10)
    assert pair.tick(NOW + 3600) == []
    assert pair.relay.state is State.ESTABLISHED


# --- pass-through -----------------------------------------------------------------


PASS_THROUGH = {
    "wamp.2.json": [
        '[16,1,{"acknowledge":true},"com.example.topic",["\u00fc",1.5],{"k":null}]',
        '[ 32 , 2 , { } , "com.example.topic" ]',
        '[64,3,{},"com.example.proc"]',
        '[70,7,{},["x"]]',
        '[49,5,{"mode":"kill"}]',
        '[48,9007199254740992,{},"com.example.add",[1,2]]',
    ],
}


def _frames(subprotocol):
    if subprotocol in PASS_THROUGH:
        return PASS_THROUGH[subprotocol]
    serializer = serializer_for(subprotocol)
    return [serializer.dumps([16, 1, {"acknowledge": True}, "com.example.topic", [b"\x00\xff", 1.5]]),
            serializer.dumps([64, 3, {}, "com.example.proc"]),
            serializer.dumps([48, 2**53, {}, "com.example.add", [1, 2]])]


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_relay_pass_through_is_byte_identical(subprotocol):
    pair = established(subprotocol=subprotocol)
    pair.router_sends([68, 7, 77, {}, [1]])  # the YIELD below answers it
    pair.client_sends([48, 5, {}, "com.example.slow"])  # the CANCEL below cancels it
    for frame in _frames(subprotocol):
        actions = pair.client_sends(frame)
        assert actions == [SendToRouter(frame)]
        assert pair.at_router[-1] is frame
    serializer = serializer_for(subprotocol)
    for message in ([36, 5, 6, {}, ["x" * 4096]], [65, 3, 77], [68, 8, 77, {}, [1]], [50, 2**53, {}, [3]]):
        frame = serializer.dumps(message)
        assert pair.router_sends(frame) == [SendToClient(frame)]
        assert pair.at_client[-1] is frame
    assert pair.closed is None


# --- calls in flight ----------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_relay_caps_calls_in_flight(subprotocol):
    pair = established(subprotocol=subprotocol, max_calls_in_flight=3)
    big = 2**53
    for request_id in (1, 300, big):
        pair.client_sends([48, request_id, {}, "com.example.slow"])
    assert pair.relay.calls_in_flight == 3
    routed = len(pair.at_router)
    pair.client_sends([48, 4, {}, "com.example.slow", [1]])
    assert len(pair.at_router) == routed  # not forwarded
    error = pair.client_messages()[-1]
    assert error[:5] == [8, 48, 4, {}, CALLS_IN_FLIGHT_ERROR]
    assert "limit 3" in error[5][0]
    # a final RESULT frees a slot; a progressive one does not; an ERROR for a CALL does
    pair.router_sends([50, 1, {"progress": True}, ["partial"]])
    assert pair.relay.calls_in_flight == 3
    pair.router_sends([50, 1, {}, ["done"]])
    assert pair.relay.calls_in_flight == 2
    pair.router_sends([8, 48, big, {}, "wamp.error.canceled"])
    assert pair.relay.calls_in_flight == 1
    pair.router_sends([8, 64, 300, {}, "wamp.error.procedure_already_exists"])  # not a CALL error
    assert pair.relay.calls_in_flight == 1
    pair.client_sends([48, 5, {}, "com.example.slow"])
    assert pair.router_messages()[-1][:2] == [48, 5]
    assert pair.relay.calls_in_flight == 2
    assert pair.closed is None


def test_relay_call_cap_can_be_disabled():
    pair = established(max_calls_in_flight=None)
    for request_id in range(1, 501):
        pair.client_sends([48, request_id, {}, "com.example.slow"])
    assert len(pair.at_router) == 502
    assert pair.at_client[1:] == []


def test_relay_progress_word_in_a_payload_is_not_progress():
    pair = established(max_calls_in_flight=2)
    pair.client_sends([48, 1, {"receive_progress": True}, "com.example.slow"])
    pair.router_sends([50, 1, {}, ["progress"]])
    assert pair.relay.calls_in_flight == 0


# --- closing ------------------------------------------------------------------------


def test_relay_goodbye_from_browser_closes_cleanly():
    pair = established()
    pair.client_sends([6, {}, "wamp.close.close_realm"])
    assert pair.router_messages()[-1] == [6, {}, "wamp.close.close_realm"]
    assert pair.relay.state is State.CLOSING
    pair.router_sends([36, 1, 2, {}])  # a late event is dropped
    pair.router_sends([6, {}, "wamp.close.goodbye_and_out"])
    assert pair.client_messages()[-1] == [6, {}, "wamp.close.goodbye_and_out"]
    assert [m[0] for m in pair.client_messages()] == [2, 6]
    assert pair.closed == Close(1000, "session closed")


def test_relay_goodbye_from_router_logout_closes_cleanly():
    pair = established()
    pair.router_sends([6, {"message": "bye"}, "wamp.close.logout"])
    assert pair.client_messages()[-1][2] == "wamp.close.logout"
    pair.client_sends([6, {}, "wamp.close.goodbye_and_out"])
    assert pair.router_messages()[-1] == [6, {}, "wamp.close.goodbye_and_out"]
    assert pair.closed.code == 1000


def test_relay_goodbye_reply_deadline():
    pair = established(goodbye_timeout=5)
    pair.tick(NOW + 1)
    pair.router_sends([6, {}, "wamp.close.logout"])
    assert pair.tick(NOW + 5) == []
    pair.tick(NOW + 6)
    assert pair.closed.code == 1000


def test_relay_router_lost_closes_1011_and_browser_lost_closes_1000():
    pair = established()
    pair._run(pair.relay.router_closed(1006, "abnormal"))
    assert pair.closed.code == 1011
    assert "1006" in str(pair.relay.error)
    pair = established()
    pair._run(pair.relay.client_closed())
    assert pair.closed.code == 1000


def test_relay_router_closing_after_goodbye_is_clean():
    pair = established()
    pair.router_sends([6, {}, "wamp.close.logout"])
    pair._run(pair.relay.router_closed(1000))
    assert pair.closed.code == 1000


def test_relay_shutdown_says_goodbye_both_ways():
    pair = established()
    pair._run(pair.relay.shutdown(1001))
    assert pair.client_messages()[-1][2] == "wamp.close.system_shutdown"
    assert pair.router_messages()[-1][:1] + pair.router_messages()[-1][2:] == [6, "wamp.close.system_shutdown"]
    assert pair.closed.code == 1001
    pair = _hello_sent()
    pair._run(pair.relay.shutdown(1012))
    assert pair.client_messages()[-1][0] == 3
    assert pair.closed.code == 1012


def test_relay_restart_closes_the_browser_without_goodbye_so_it_reconnects():
    pair = established()
    before = len(pair.client_messages())
    pair._run(pair.relay.shutdown(1012))
    # ABORT, no GOODBYE: wampy.js reconnects after an ABORT on an open session, not after a GOODBYE
    assert [m[0] for m in pair.client_messages()[before:]] == [3]
    assert pair.router_messages()[-1][0] == 6  # the router still gets a clean GOODBYE
    assert pair.closed.code == 1012


def test_relay_long_close_reason_is_cut_by_the_frame_encoder():
    pair = RelayPair(ANN)
    pair.client_sends([1, "r" * 500, {"roles": BROWSER_ROLES}])
    assert "r" * 200 in pair.closed.reason  # the relay keeps it whole (for the log) ...
    frame = frames.encode_close(pair.closed.code, pair.closed.reason)
    assert len(frame) == 2 + 2 + 123  # ... the close frame carries 123 bytes of it


# --- the cheap look at frame heads ---------------------------------------------------


def _random_message(rng: random.Random) -> list:
    def uint():
        return rng.choice([0, 1, 23, 24, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53])

    tail = [rng.choice([{}, {"a": 1}, "uri", [1, 2], -5, 1.5, None, "x" * rng.randrange(40)])
            for _ in range(rng.randrange(4))]
    return [rng.choice([1, 8, 16, 36, 48, 50, 70])] + [uint() for _ in range(rng.randrange(4))] + tail


@pytest.mark.parametrize("subprotocol, peek", [
    ("wamp.2.json", _peek_json), ("wamp.2.msgpack", _peek_msgpack), ("wamp.2.cbor", _peek_cbor),
])
def test_relay_peek_agrees_with_full_decoding(subprotocol, peek):
    serializer = serializer_for(subprotocol)
    rng = random.Random(7)
    for _ in range(2000):
        message = _random_message(rng)
        data = serializer._dumps(message)
        expected = []
        for value in message:
            if type(value) is not int or value < 0 or len(expected) == 3:
                break
            expected.append(value)
        expected += [None] * (3 - len(expected))
        assert peek(data) == tuple(expected), message


def test_relay_peek_gives_up_on_what_it_cannot_read():
    assert _peek_json('{"a": 1}') is None
    assert _peek_json("[-1, 2]") is None
    assert _peek_json("[1.5, 2]") is None
    assert _peek_json("[48, 1.5]") == (48, None, None)
    assert _peek_msgpack(b"") is None
    assert _peek_msgpack(b"\x80") is None  # a map
    assert _peek_cbor(b"\xa0") is None
    assert _peek_cbor(b"\x82\x18") is None  # truncated


def test_relay_rewrite_hello_does_not_touch_its_input():
    hello = [1, REALM, dict(FORGED_DETAILS)]
    rewritten = rewrite_hello(hello, Identity("ann", "user"))
    assert hello[2] == FORGED_DETAILS
    assert rewritten[2]["authid"] == "ann" and "authextra" not in rewritten[2]
