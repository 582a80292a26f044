"""Short-lived signed tickets that carry a browser's identity to the router.

The relay answers the router's ``CHALLENGE("ticket")`` with :func:`sign`; the
router hands the ticket to the app's dynamic authenticator (registered by the
server-side peer from :func:`make_authenticator`), which checks it with
:func:`verify`. The ticket only travels between the bridge and the router: the
browser never sees it.

Pure: the clock is passed in (``now``, seconds since the epoch). Tickets are
itsdangerous signatures with their own salt, so neither a Flask session
cookie nor any other itsdangerous token signed with the same key is a ticket.

A ticket is good for one login on one connection: it names the bridge's own
end of the upstream connection (``peer``, in Crossbar's peer notation such as
``tcp4:127.0.0.1:51234``), and the authenticator compares it with the
``transport.peer`` Crossbar reports for the connection that presents it. A
ticket copied to any other connection is refused, and a connection logs in
once. The authenticator also accepts only browser roles (:class:`BrowserPolicy`):
a ticket never makes anyone the app's peer or a backend service.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import time
import typing as t

from itsdangerous import BadData
from itsdangerous import URLSafeSerializer

from .. import settings
from ..errors import ApplicationError
from ..errors import ConfigError
from ..errors import ExpiredTicket
from ..errors import InvalidTicket
from ..errors import StaleTicket
from .faults import ROUTER_UNREACHABLE
from .identity import Identity
from .identity import thaw

__all__ = [
    "SALT",
    "DEFAULT_MAX_AGE",
    "CLOCK_LEEWAY",
    "sign",
    "verify",
    "make_authenticator",
    "ticket_secret",
    "BrowserPolicy",
    "browser_policy",
    "peer_descriptor",
    "Tickets",
]

#: itsdangerous salt of bridge tickets (Flask's session cookie uses "cookie-session").
SALT = "flask-wamp-bridge.ticket"
#: Default ``WAMP_BRIDGE_TICKET_MAX_AGE``: a ticket is used within a second of signing.
DEFAULT_MAX_AGE = 5.0
#: How far in the future a ticket's time may be (clock skew between hosts).
CLOCK_LEEWAY = 5.0

Secret = t.Union[str, bytes, t.Sequence[str], t.Sequence[bytes]]


def _serializer(secret: Secret) -> URLSafeSerializer:
    if not secret:
        raise ConfigError("the ticket secret is empty; set WAMP_BRIDGE_TICKET_SECRET or SECRET_KEY")
    return URLSafeSerializer(secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


def sign(identity: Identity, secret: Secret, now: float, *, realm: str | None = None,
         peer: str | None = None) -> str:
    """Sign a ticket for ``identity`` issued at ``now``, optionally bound to ``realm`` and a connection.

    :param peer: the bridge's end of the upstream connection as the router
        sees it (:func:`peer_descriptor`); only that connection may present it.

    With a list of secrets (key rotation), the last one signs.
    """
    payload: dict[str, t.Any] = {
        "i": identity.authid,
        "r": identity.authrole,
        "t": round(float(now), 3),
    }
    if identity.authextra:
        payload["e"] = thaw(identity.authextra)
    if realm is not None:
        payload["m"] = realm
    if peer is not None:
        payload["p"] = peer
    return _serializer(secret).dumps(payload)


def verify(
    ticket: t.Any,
    secret: Secret,
    now: float,
    max_age: float,
    *,
    realm: str | None = None,
    peer: str | None = None,
    leeway: float = CLOCK_LEEWAY,
) -> Identity:
    """Check a ticket and return the identity it carries.

    :param now: the current time, seconds since the epoch.
    :param max_age: how many seconds after signing the ticket is still valid.
    :param realm: when given, only a ticket bound to this realm is accepted.
    :param peer: when given, only a ticket bound to this connection is accepted.
    :param leeway: how far in the future the ticket's time may be (clock skew).
    :raises ExpiredTicket: the ticket is older than ``max_age`` (:class:`~flask_wamp_bridge.errors.StaleTicket`)
        or too far in the future.
    :raises InvalidTicket: the ticket is malformed, tampered with, signed with
        another key or salt, or bound to another realm.
    """
    if not isinstance(ticket, str) or not ticket:
        raise InvalidTicket("the ticket is missing or not a string")
    try:
        payload = _serializer(secret).loads(ticket)
    except BadData as exc:
        raise InvalidTicket("the ticket's signature does not match: it was tampered with, or "
                            "signed with another WAMP_BRIDGE_TICKET_SECRET") from exc
    if not isinstance(payload, dict):
        raise InvalidTicket("the ticket's payload is not an object")
    issued = payload.get("t")
    if isinstance(issued, bool) or not isinstance(issued, (int, float)) or not math.isfinite(issued):
        raise InvalidTicket("the ticket has no issue time")
    age = now - issued
    if age > max_age:
        raise StaleTicket(f"the ticket is {age:.1f} s old, over the {max_age:g} s maximum; "
                            "check that the bridge's and the authenticator's clocks agree")
    if age < -leeway:
        raise ExpiredTicket(f"the ticket was issued {-age:.1f} s in the future; "
                            "check that the bridge's and the authenticator's clocks agree")
    bound = payload.get("m")
    if realm is not None and bound != realm:
        # an unbound ticket would be good for every realm sharing the key
        where = f"realm {bound!r}" if bound is not None else "no realm"
        raise InvalidTicket(f"the ticket is for {where}, not {realm!r}; sign it with realm={realm!r}")
    if peer is not None and payload.get("p") != peer:
        # a ticket seen on one connection (a log, a proxy) is worth nothing on another
        raise InvalidTicket("the ticket was issued for another connection; a ticket is good for one login "
                            "on the connection it was signed for (see WAMP_BRIDGE_TICKET_BIND_PEER)")
    try:
        return Identity(payload.get("i"), payload.get("r"), payload.get("e"))  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidTicket(f"the ticket's identity is malformed: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class BrowserPolicy:
    """Which principals a browser may be: its roles, and the backend authids and roles it may never take."""

    roles: frozenset[str]
    backend_authids: frozenset[str]
    backend_roles: frozenset[str]

    def refusal(self, authid: str, authrole: str) -> str | None:
        """Why a browser may not be ``authid``/``authrole``, or None when it may."""
        if authid in self.backend_authids or authrole in self.backend_roles:
            return (f"authid {authid!r} / authrole {authrole!r} belong to the app's peer or a backend service "
                    "(WAMP_BRIDGE_PEER_*, WAMP_BRIDGE_SERVICES): a browser session may not take them")
        if authrole not in self.roles:
            return (f"authrole {authrole!r} is not a browser role ({', '.join(sorted(self.roles))}); declare it "
                    "in WAMP_BRIDGE_PERMISSIONS or WAMP_BRIDGE_BROWSER_ROLES")
        return None


def browser_policy(config: t.Mapping[str, t.Any]) -> BrowserPolicy:
    """The :class:`BrowserPolicy` of an app's settings.

    Browser roles are ``WAMP_BRIDGE_USER_ROLE``, ``WAMP_BRIDGE_ANONYMOUS_ROLE``,
    the roles of ``WAMP_BRIDGE_PERMISSIONS`` and ``WAMP_BRIDGE_BROWSER_ROLES``,
    less the backend roles (``WAMP_BRIDGE_PEER_ROLE`` and the services' roles): :func:`settings.roles
    <flask_wamp_bridge.settings.roles>`, where every role set is derived.
    """
    roles = settings.roles(config)
    return BrowserPolicy(roles.browser, roles.backend_authids, roles.backend)


def peer_descriptor(address: t.Any) -> str | None:
    """Crossbar's name for a TCP peer (``tcp4:HOST:PORT``, ``tcp6:HOST:PORT``) from a ``getsockname()``.

    A Unix socket's (a ``str`` or ``bytes`` name) is ``unix``: Crossbar names every Unix peer so, so a ticket
    bound to it is bound to the router's Unix socket, not to one connection; the socket file's permissions
    decide who may connect there (keep it in a directory only the app's and the router's users can enter).
    """
    if isinstance(address, (str, bytes)):
        return "unix"
    if not isinstance(address, tuple) or len(address) < 2:
        return None
    host, port = address[0], address[1]
    return f"{'tcp6' if ':' in host else 'tcp4'}:{host}:{port}"


def make_authenticator(
    secret: Secret,
    max_age: float = DEFAULT_MAX_AGE,
    *,
    realm: str | None = None,
    policy: BrowserPolicy | None = None,
    bind_peer: bool = False,
    clock: t.Callable[[], float] = time.time,
) -> t.Callable[[str, str, t.Mapping[str, t.Any]], dict[str, t.Any]]:
    """Build the router's dynamic ticket authenticator ``authenticate(realm, authid, details)``.

    The server-side peer registers it (shared) at ``WAMP_BRIDGE_AUTHENTICATOR``.
    It returns ``{"authid", "role", "extra"}`` (the authid must be returned:
    with only a role, Crossbar keeps whatever authid the HELLO named) and raises
    :class:`~flask_wamp_bridge.errors.ApplicationError` to deny. A ticket past
    ``max_age`` was signed at the router's CHALLENGE and reached the authenticator
    late (overload): it is denied with ``wamp_bridge.error.router_unavailable``,
    which the relay passes on with close 1013 (retry), not as a bad credential.

    :param realm: when given, logins to any other realm are refused.
    :param policy: when given, only its browser roles are accepted, and never
        a backend authid.
    :param bind_peer: accept a ticket only on the connection it was signed for
        (``details["transport"]["peer"]``, which Crossbar fills in).
    """

    def authenticate(realm_: str, authid: str, details: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        if realm is not None and realm_ != realm:
            raise ApplicationError("wamp.error.not_authorized",
                                   f"the bridge authenticator serves realm {realm!r}, not {realm_!r}")
        if not isinstance(details, t.Mapping) or details.get("authmethod", "ticket") != "ticket":
            raise ApplicationError("wamp.error.authentication_failed",
                                   "the bridge authenticator handles only the ticket method")
        peer = None
        if bind_peer:
            transport = details.get("transport")
            peer = transport.get("peer") if isinstance(transport, t.Mapping) else None
            if not isinstance(peer, str) or not peer:
                raise ApplicationError("wamp.error.authentication_failed",
                                       "the router did not say which connection presents the ticket "
                                       "(details.transport.peer); set WAMP_BRIDGE_TICKET_BIND_PEER = False")
        try:
            identity = verify(details.get("ticket"), secret, clock(), max_age, realm=realm_, peer=peer)
        except StaleTicket as exc:
            # signed at the router's CHALLENGE, so its age is the router's and this authenticator's delay:
            # overload, which the browser may retry (ABORT router_unavailable, close 1013)
            raise ApplicationError(ROUTER_UNREACHABLE.uri, f"{exc} (the authenticator answered late)") from exc
        except InvalidTicket as exc:
            raise ApplicationError("wamp.error.authentication_failed", str(exc)) from exc
        if identity.authid != authid:
            raise ApplicationError("wamp.error.authentication_failed",
                                   "the ticket was issued for another authid than the HELLO names")
        refusal = policy.refusal(identity.authid, identity.authrole) if policy is not None else None
        if refusal is not None:
            raise ApplicationError("wamp.error.not_authorized", refusal)
        return {"authid": identity.authid, "role": identity.authrole, "extra": thaw(identity.authextra)}

    return authenticate


def ticket_secret(config: t.Mapping[str, t.Any]) -> Secret:
    """The ticket key: ``WAMP_BRIDGE_TICKET_SECRET``, else one derived from ``SECRET_KEY``.

    Every worker and host that signs or verifies tickets must get the same key.

    :raises ConfigError: neither setting is present.
    """
    secret = settings.get(config, "WAMP_BRIDGE_TICKET_SECRET")
    if secret:
        return t.cast(Secret, secret)
    key = config.get("SECRET_KEY")
    if not key:
        raise ConfigError("set WAMP_BRIDGE_TICKET_SECRET (or SECRET_KEY) so the bridge can sign "
                          "tickets; every worker and host must use the same value")
    if isinstance(key, str):
        key = key.encode("utf-8")
    return hmac.new(key, b"flask-wamp-bridge.ticket-secret", hashlib.sha256).hexdigest()


class Tickets:
    """The bridge's tickets, wired once in ``init_app``: the relays sign, the peer's authenticator verifies.

    Holds the key (:func:`ticket_secret`, derived once), the realm tickets are
    bound to and their lifetime. Signing reads the wall clock: a ticket's time
    is compared on another host (the authenticator may run in any worker).
    """

    def __init__(self, secret: Secret, realm: str, max_age: float = DEFAULT_MAX_AGE, *,
                 policy: BrowserPolicy | None = None,
                 bind_peer: bool = settings.DEFAULTS["WAMP_BRIDGE_TICKET_BIND_PEER"]) -> None:
        _serializer(secret)  # an empty key fails here, at startup
        self._secret = secret
        self.realm = realm
        self.max_age = max_age
        #: Who a browser may be (None: anyone the ticket names).
        self.policy = policy
        #: Whether a ticket is good only on the upstream connection it was signed for.
        self.bind_peer = bind_peer

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Tickets:
        """From ``WAMP_BRIDGE_TICKET_SECRET`` (or ``SECRET_KEY``), ``_REALM``, ``_TICKET_MAX_AGE``,
        ``_TICKET_BIND_PEER`` and the :func:`browser_policy`.

        :raises ConfigError: there is no key.
        """
        return cls(ticket_secret(config), policy=browser_policy(config), **settings.arguments_for("Tickets", config))

    def sign(self, identity: Identity, peer: str | None = None) -> str:
        """A ticket for ``identity``, issued now, bound to the realm and (with ``bind_peer``) to ``peer``."""
        return sign(identity, self._secret, time.time(), realm=self.realm, peer=peer if self.bind_peer else None)

    def authenticator(self) -> t.Callable[[str, str, t.Mapping[str, t.Any]], dict[str, t.Any]]:
        """The router's dynamic authenticator for these tickets (see :func:`make_authenticator`)."""
        return make_authenticator(self._secret, self.max_age, realm=self.realm, policy=self.policy,
                                  bind_peer=self.bind_peer)
