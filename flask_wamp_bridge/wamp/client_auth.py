"""Client-side WAMP authentication for the server-side peer: anonymous, ticket, WAMP-CRA.

Pure: each authenticator says what goes into HELLO (``authid``,
``authmethods``, ``authextra``) and answers a CHALLENGE with the signature
for AUTHENTICATE. WAMP-CRA follows the spec (and autobahn's
``compute_wcs``/``derive_key``): the signature is
``base64(HMAC-SHA256(key, challenge))`` where ``key`` is the secret, or, when
the router sends a ``salt``, ``base64(PBKDF2-HMAC-SHA256(secret, salt,
iterations, keylen))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import typing as t

from ..errors import AuthError
from ..errors import ConfigError
from ..errors import RemoteProtocolError
from ..settings import PEER_AUTHMETHODS

__all__ = [
    "ClientAuth",
    "AnonymousAuth",
    "TicketAuth",
    "WampCraAuth",
    "derive_key",
    "compute_signature",
    "auth_from_config",
]


class ClientAuth:
    """Base: what to announce in HELLO and how to answer a CHALLENGE."""

    authid: str | None = None
    authmethods: tuple[str, ...] = ()
    authextra: dict[str, t.Any] | None = None

    def respond(self, method: str, extra: dict[str, t.Any]) -> str:
        """The AUTHENTICATE signature for a CHALLENGE; :class:`AuthError` when we cannot answer."""
        raise AuthError(
            f"the router challenged with {method!r} but this peer is configured for "
            f"{', '.join(self.authmethods) or 'nothing'}; set WAMP_BRIDGE_PEER_AUTHMETHOD to match the router"
        )

    def __repr__(self) -> str:  # never show secrets
        return f"{type(self).__name__}(authid={self.authid!r})"


class AnonymousAuth(ClientAuth):
    """No credentials: the router's anonymous role applies."""

    authmethods = ("anonymous",)

    def __init__(self, authid: str | None = None) -> None:
        self.authid = authid


class TicketAuth(ClientAuth):
    """Ticket authentication: the ticket is sent as the signature."""

    authmethods = ("ticket",)

    def __init__(self, authid: str, ticket: str, authextra: dict[str, t.Any] | None = None) -> None:
        self.authid = authid
        self._ticket = ticket
        self.authextra = authextra

    def respond(self, method: str, extra: dict[str, t.Any]) -> str:
        if method != "ticket":
            return super().respond(method, extra)
        return self._ticket


def derive_key(secret: str | bytes, salt: str | bytes, iterations: int = 1000, keylen: int = 32) -> bytes:
    """The salted WAMP-CRA key: base64 of PBKDF2-HMAC-SHA256 (as autobahn's ``derive_key``)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if isinstance(salt, str):
        salt = salt.encode("utf-8")
    key = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, keylen)
    return base64.b64encode(key)


def compute_signature(key: str | bytes, challenge: str | bytes) -> str:
    """The WAMP-CRA signature of ``challenge``: base64 of HMAC-SHA256 keyed with ``key``."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    if isinstance(challenge, str):
        challenge = challenge.encode("utf-8")
    return base64.b64encode(hmac.new(key, challenge, hashlib.sha256).digest()).decode("ascii")


class WampCraAuth(ClientAuth):
    """WAMP-CRA (challenge-response), with the salted key derivation when the router asks for it."""

    authmethods = ("wampcra",)

    def __init__(self, authid: str, secret: str | bytes, authextra: dict[str, t.Any] | None = None) -> None:
        self.authid = authid
        self._secret = secret
        self.authextra = authextra

    def respond(self, method: str, extra: dict[str, t.Any]) -> str:
        if method != "wampcra":
            return super().respond(method, extra)
        challenge = extra.get("challenge")
        if not isinstance(challenge, str):
            raise RemoteProtocolError("WAMP-CRA CHALLENGE without a 'challenge' string in its extra")
        key: str | bytes = self._secret
        if "salt" in extra:
            salt, iterations, keylen = extra["salt"], extra.get("iterations", 1000), extra.get("keylen", 32)
            if not isinstance(salt, (str, bytes)) or type(iterations) is not int or type(keylen) is not int:
                raise RemoteProtocolError("WAMP-CRA CHALLENGE with a malformed salt, iterations or keylen")
            key = derive_key(self._secret, salt, iterations, keylen)
        return compute_signature(key, challenge)


def auth_from_config(method: str, authid: str | None, secret: str | None) -> ClientAuth:
    """Build the authenticator for ``WAMP_BRIDGE_PEER_AUTHMETHOD`` / ``_AUTHID`` / ``_SECRET``."""
    if method not in PEER_AUTHMETHODS:
        raise ConfigError(
            f"WAMP_BRIDGE_PEER_AUTHMETHOD is {method!r}; use one of {', '.join(map(repr, PEER_AUTHMETHODS))}"
        )
    if method == "anonymous":
        return AnonymousAuth(authid or None)
    if not authid:
        raise ConfigError(f"WAMP_BRIDGE_PEER_AUTHID must be set for {method} authentication")
    if not secret:
        raise ConfigError(
            f"WAMP_BRIDGE_PEER_SECRET is not set: put the {method} secret of principal {authid!r} in the "
            "app config or in the WAMP_BRIDGE_PEER_SECRET environment variable, or set "
            "WAMP_BRIDGE_PEER_AUTHMETHOD = 'anonymous'"
        )
    if method == "ticket":
        return TicketAuth(authid, secret)
    return WampCraAuth(authid, secret)
