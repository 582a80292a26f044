"""Client-side peer authentication, checked against autobahn's implementation."""

from __future__ import annotations

import pytest
from autobahn.wamp import auth as ab_auth

from flask_wamp_bridge.errors import AuthError
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.wamp.client_auth import AnonymousAuth
from flask_wamp_bridge.wamp.client_auth import TicketAuth
from flask_wamp_bridge.wamp.client_auth import WampCraAuth
from flask_wamp_bridge.wamp.client_auth import auth_from_config
from flask_wamp_bridge.wamp.client_auth import compute_signature
from flask_wamp_bridge.wamp.client_auth import derive_key

CHALLENGE = '{"authid":"flask-app","authrole":"backend","authmethod":"wampcra","session":4711,"nonce":"abc"}'


def test_compute_signature_matches_autobahn() -> None:
    expected = ab_auth.compute_wcs(b"s3cret", CHALLENGE.encode()).decode()
    assert compute_signature("s3cret", CHALLENGE) == expected


def test_derive_key_matches_autobahn() -> None:
    assert derive_key("s3cret", "salt123", 100, 16) == ab_auth.derive_key("s3cret", "salt123", 100, 16)
    assert derive_key(b"s3cret", b"salt", 1000, 32) == ab_auth.derive_key(b"s3cret", b"salt", 1000, 32)


def test_wampcra_unsalted_challenge_matches_autobahn() -> None:
    auth = WampCraAuth("flask-app", "s3cret")
    signature = auth.respond("wampcra", {"challenge": CHALLENGE})
    assert signature == ab_auth.compute_wcs("s3cret", CHALLENGE).decode()


def test_wampcra_salted_challenge_uses_derived_key() -> None:
    auth = WampCraAuth("flask-app", "s3cret")
    extra = {"challenge": CHALLENGE, "salt": "salt123", "iterations": 100, "keylen": 16}
    key = ab_auth.derive_key("s3cret", "salt123", 100, 16)
    assert auth.respond("wampcra", extra) == ab_auth.compute_wcs(key, CHALLENGE).decode()
    # and it differs from the unsalted answer, so the salt really was used
    assert auth.respond("wampcra", extra) != auth.respond("wampcra", {"challenge": CHALLENGE})


def test_wampcra_malformed_challenge_is_remote_protocol_error() -> None:
    auth = WampCraAuth("flask-app", "s3cret")
    with pytest.raises(RemoteProtocolError):
        auth.respond("wampcra", {})
    with pytest.raises(RemoteProtocolError):
        auth.respond("wampcra", {"challenge": CHALLENGE, "salt": "x", "iterations": "many"})


def test_auth_unexpected_method_raises_auth_error() -> None:
    with pytest.raises(AuthError, match="WAMP_BRIDGE_PEER_AUTHMETHOD"):
        WampCraAuth("a", "s").respond("ticket", {})
    with pytest.raises(AuthError):
        TicketAuth("a", "t").respond("wampcra", {"challenge": "x"})
    with pytest.raises(AuthError):
        AnonymousAuth().respond("ticket", {})


def test_ticket_auth_answers_with_ticket() -> None:
    auth = TicketAuth("svc", "tkt-1")
    assert auth.authmethods == ("ticket",)
    assert auth.respond("ticket", {}) == "tkt-1"


def test_auth_repr_hides_secret() -> None:
    assert "s3cret" not in repr(WampCraAuth("svc", "s3cret"))
    assert "tkt-1" not in repr(TicketAuth("svc", "tkt-1"))


def test_auth_from_config_builds_each_method() -> None:
    assert isinstance(auth_from_config("wampcra", "svc", "x"), WampCraAuth)
    assert isinstance(auth_from_config("ticket", "svc", "x"), TicketAuth)
    anon = auth_from_config("anonymous", "", None)
    assert isinstance(anon, AnonymousAuth) and anon.authid is None


def test_auth_from_config_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_PEER_SECRET"):
        auth_from_config("wampcra", "svc", None)
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_PEER_AUTHID"):
        auth_from_config("ticket", "", "x")
    with pytest.raises(ConfigError, match="cryptosign"):
        auth_from_config("cryptosign", "svc", "x")
