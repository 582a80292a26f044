from __future__ import annotations

import typing as t

import itsdangerous
import pytest

from flask_wamp_bridge.bridge import tickets
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.errors import ExpiredTicket
from flask_wamp_bridge.errors import InvalidTicket

NOW = 1_700_000_000.0
SECRET = "ticket-secret"
ANN = Identity("ann", "user", {"groups": ["a"], "name": "Ann"})


def test_ticket_round_trip():
    signed = tickets.sign(ANN, SECRET, NOW)
    assert isinstance(signed, str)
    assert tickets.verify(signed, SECRET, NOW + 1, 30) == ANN
    bare = Identity("bob", "admin")
    assert tickets.verify(tickets.sign(bare, SECRET, NOW), SECRET, NOW, 30) == bare


def test_ticket_expires_after_max_age():
    signed = tickets.sign(ANN, SECRET, NOW)
    assert tickets.verify(signed, SECRET, NOW + 30, 30) == ANN
    with pytest.raises(ExpiredTicket, match="30 s maximum"):
        tickets.verify(signed, SECRET, NOW + 30.5, 30)


def test_ticket_from_the_future_is_refused_beyond_the_leeway():
    signed = tickets.sign(ANN, SECRET, NOW + 3)
    assert tickets.verify(signed, SECRET, NOW, 30) == ANN  # within the clock leeway
    signed = tickets.sign(ANN, SECRET, NOW + 60)
    with pytest.raises(ExpiredTicket, match="future"):
        tickets.verify(signed, SECRET, NOW, 30)


def test_ticket_tampered_is_invalid():
    signed = tickets.sign(ANN, SECRET, NOW)
    payload, signature = signed.rsplit(".", 1)
    forged = tickets.sign(Identity("mallory", "admin"), SECRET, NOW).rsplit(".", 1)[0]
    for bad in (forged + "." + signature, payload + "." + signature[::-1], signed[:-2], "", "x"):
        with pytest.raises(InvalidTicket):
            tickets.verify(bad, SECRET, NOW, 30)
    with pytest.raises(InvalidTicket):
        tickets.verify(None, SECRET, NOW, 30)


def test_ticket_with_the_wrong_key_is_invalid():
    signed = tickets.sign(ANN, "other-secret", NOW)
    with pytest.raises(InvalidTicket, match="WAMP_BRIDGE_TICKET_SECRET"):
        tickets.verify(signed, SECRET, NOW, 30)
    assert not isinstance(pytest.raises(InvalidTicket, tickets.verify, signed, SECRET, NOW, 30).value,
                          ExpiredTicket)


def test_ticket_with_the_wrong_salt_is_invalid():
    # same key, same payload shape, another itsdangerous salt (e.g. a Flask session cookie)
    other = itsdangerous.URLSafeSerializer(SECRET, salt="cookie-session")
    with pytest.raises(InvalidTicket):
        tickets.verify(other.dumps({"i": "ann", "r": "user", "t": NOW}), SECRET, NOW, 30)
    flask_cookie = itsdangerous.URLSafeTimedSerializer(SECRET, salt="cookie-session")
    with pytest.raises(InvalidTicket):
        tickets.verify(flask_cookie.dumps({"_user_id": "ann"}), SECRET, NOW, 30)


def test_ticket_key_rotation_verifies_old_tickets():
    signed = tickets.sign(ANN, "old", NOW)
    assert tickets.verify(signed, ["old", "new"], NOW, 30) == ANN


def test_ticket_realm_binding():
    signed = tickets.sign(ANN, SECRET, NOW, realm="realm1")
    assert tickets.verify(signed, SECRET, NOW, 30, realm="realm1") == ANN
    with pytest.raises(InvalidTicket, match="realm"):
        tickets.verify(signed, SECRET, NOW, 30, realm="realm2")


def test_ticket_without_a_realm_is_refused_where_a_realm_is_required():
    unbound = tickets.sign(ANN, SECRET, NOW)
    with pytest.raises(InvalidTicket, match="realm"):
        tickets.verify(unbound, SECRET, NOW, 30, realm="realm1")
    authenticate = tickets.make_authenticator(SECRET, 30, clock=lambda: NOW)
    with pytest.raises(ApplicationError) as info:
        authenticate("realm1", "ann", {"ticket": unbound})
    assert info.value.error == "wamp.error.authentication_failed"

def test_ticket_authenticator_returns_authid_role_and_extra():
    authenticate = tickets.make_authenticator(SECRET, 30, realm="realm1", clock=lambda: NOW + 2)
    signed = tickets.sign(ANN, SECRET, NOW, realm="realm1")
    principal = authenticate("realm1", "ann", {"ticket": signed, "authmethod": "ticket", "authextra": {}})
    assert principal == {"authid": "ann", "role": "user", "extra": {"groups": ["a"], "name": "Ann"}}


def test_ticket_authenticator_refuses_an_authid_mismatch():
    authenticate = tickets.make_authenticator(SECRET, 30, clock=lambda: NOW)
    signed = tickets.sign(ANN, SECRET, NOW)
    with pytest.raises(ApplicationError) as info:
        authenticate("realm1", "mallory", {"ticket": signed})
    assert info.value.error == "wamp.error.authentication_failed"


def test_ticket_authenticator_refuses_bad_tickets_and_realms():
    authenticate = tickets.make_authenticator(SECRET, 30, realm="realm1", clock=lambda: NOW + 31)
    signed = tickets.sign(ANN, SECRET, NOW, realm="realm1")
    with pytest.raises(ApplicationError) as expired:
        authenticate("realm1", "ann", {"ticket": signed})
    assert expired.value.error == "wamp_bridge.error.router_unavailable"  # late (overload), not forged: retry
    assert "old" in str(expired.value)
    with pytest.raises(ApplicationError) as realm:
        authenticate("realm2", "ann", {"ticket": signed})
    assert realm.value.error == "wamp.error.not_authorized"
    with pytest.raises(ApplicationError):
        authenticate("realm1", "ann", {"ticket": "garbage"})
    with pytest.raises(ApplicationError):
        authenticate("realm1", "ann", {"authmethod": "wampcra", "ticket": signed})


def test_ticket_secret_prefers_the_setting_then_derives_from_secret_key():
    assert tickets.ticket_secret({"WAMP_BRIDGE_TICKET_SECRET": "t", "SECRET_KEY": "k"}) == "t"
    derived = tickets.ticket_secret({"SECRET_KEY": "k"})
    assert derived not in ("k", b"k")
    assert derived == tickets.ticket_secret({"SECRET_KEY": b"k"})
    assert derived != tickets.ticket_secret({"SECRET_KEY": "k2"})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        tickets.ticket_secret({})


POLICY = tickets.browser_policy({
    "WAMP_BRIDGE_USER_ROLE": "user", "WAMP_BRIDGE_ANONYMOUS_ROLE": "anonymous",
    "WAMP_BRIDGE_PEER_AUTHID": "flask-app", "WAMP_BRIDGE_PEER_ROLE": "backend",
    "WAMP_BRIDGE_SERVICES": {"billing": {"secret": "x", "role": "ops"}},
    "WAMP_BRIDGE_PERMISSIONS": {"editor": [], "ops": []},
    "WAMP_BRIDGE_BROWSER_ROLES": ["viewer"],
})


def test_browser_policy_has_the_browser_roles_and_never_a_backend_one():
    assert POLICY.roles == {"user", "anonymous", "editor", "viewer"}
    assert POLICY.backend_roles == {"backend", "ops"}
    assert POLICY.backend_authids == {"flask-app", "billing"}
    assert POLICY.refusal("ann", "editor") is None
    assert "backend" in t.cast(str, POLICY.refusal("ann", "backend"))
    assert "backend" in t.cast(str, POLICY.refusal("flask-app", "user"))
    assert "not a browser role" in t.cast(str, POLICY.refusal("ann", "admin"))


@pytest.mark.parametrize("identity", [Identity("eve", "backend"), Identity("eve", "ops"),
                                      Identity("flask-app", "user"), Identity("billing", "user"),
                                      Identity("eve", "admin")])
def test_ticket_authenticator_refuses_non_browser_principals(identity: Identity):
    authenticate = tickets.make_authenticator(SECRET, 5, realm="realm1", policy=POLICY, clock=lambda: NOW)
    signed = tickets.sign(identity, SECRET, NOW, realm="realm1")
    with pytest.raises(ApplicationError) as info:
        authenticate("realm1", identity.authid, {"ticket": signed})
    assert info.value.error == "wamp.error.not_authorized"
    ok = tickets.sign(Identity("eve", "viewer"), SECRET, NOW, realm="realm1")
    assert authenticate("realm1", "eve", {"ticket": ok})["role"] == "viewer"


def test_ticket_bound_to_a_connection_is_refused_on_another():
    authenticate = tickets.make_authenticator(SECRET, 5, realm="realm1", bind_peer=True, clock=lambda: NOW)
    signed = tickets.sign(ANN, SECRET, NOW, realm="realm1", peer="tcp4:127.0.0.1:40000")
    assert authenticate("realm1", "ann", {"ticket": signed, "transport": {"peer": "tcp4:127.0.0.1:40000"}})
    for details in ({"ticket": signed, "transport": {"peer": "tcp4:127.0.0.1:40001"}},
                    {"ticket": signed},
                    {"ticket": tickets.sign(ANN, SECRET, NOW, realm="realm1"),
                     "transport": {"peer": "tcp4:127.0.0.1:40000"}}):
        with pytest.raises(ApplicationError) as info:
            authenticate("realm1", "ann", details)
        assert info.value.error == "wamp.error.authentication_failed"


def test_ticket_default_lifetime_is_a_few_seconds():
    assert tickets.DEFAULT_MAX_AGE <= 5
    signed = tickets.sign(ANN, SECRET, NOW)
    with pytest.raises(ExpiredTicket):
        tickets.verify(signed, SECRET, NOW + tickets.DEFAULT_MAX_AGE + 0.5, tickets.DEFAULT_MAX_AGE)


def test_peer_descriptor_is_crossbars_notation():
    assert tickets.peer_descriptor(("127.0.0.1", 5000)) == "tcp4:127.0.0.1:5000"
    assert tickets.peer_descriptor(("::1", 5000, 0, 0)) == "tcp6:::1:5000"
    assert tickets.peer_descriptor(None) is None
    # a Unix socket's (unnamed client end): Crossbar names every Unix peer "unix"
    assert tickets.peer_descriptor("") == "unix" and tickets.peer_descriptor(b"") == "unix"
