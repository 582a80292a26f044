"""The browser-facing WAMP endpoint: ``WAMP_BRIDGE_PATH`` on Flask's own socket.

``new Wampy('/wamp', {realm})`` on a page of the app opens a WebSocket to this
route, carrying the Flask session cookie. In the upgrade's request context the
endpoint checks ``Origin`` (a foreign one is refused with 403, before the
101), reads the identity through the app's identity loader, freezes it, and
only then accepts the socket and relays the browser's WAMP session to the
router as that identity (see :mod:`flask_wamp_bridge.bridge.relay`).

Without an identity the session is anonymous (role ``WAMP_BRIDGE_ANONYMOUS_ROLE``,
its own random authid) or, when that setting is None, its HELLO is answered
with ABORT ``wamp.error.not_authorized``: a browser cannot read the status of
a refused upgrade, so only a foreign Origin is refused before the 101.

Nothing here writes ``flask.session`` (after the 101 no ``Set-Cookie`` reaches
the browser). gevent is imported only when a socket is relayed.
"""

from __future__ import annotations

import logging
import secrets
import time
import typing as t

from flask import Flask
from flask import current_app
from flask import request
from flask import session
from werkzeug.exceptions import Forbidden
from werkzeug.routing.exceptions import WebsocketMismatch

from ..errors import ConfigError
from ..errors import NotAuthenticated
from ..wamp.bounds import Bounds
from ..wamp.messages import SUBPROTOCOLS
from ..wamp.messages import serializer_for
from . import security_log
from . import tickets as tickets
from .checks import Limits
from .identity import Identity
from .identity import coerce_identity
from .relay import Relay

if t.TYPE_CHECKING:  # pragma: no cover
    from ..extension import BridgeState

__all__ = ["DEFAULTS", "install_endpoint", "load_identity", "ENDPOINT"]

log = logging.getLogger(__name__)

#: Flask endpoint name of the WAMP route.
ENDPOINT = "wamp_bridge.wamp"

#: Config keys of the endpoint and their defaults (``app.config.setdefault``).
DEFAULTS: dict[str, t.Any] = {
    #: URL path of the browser-facing WAMP endpoint; None mounts none.
    "WAMP_BRIDGE_PATH": "/wamp",
    #: Role of a logged-in user whose identity loader returned only an authid.
    "WAMP_BRIDGE_USER_ROLE": "user",
    #: Role of sessions without a login; None refuses them (ABORT wamp.error.not_authorized).
    "WAMP_BRIDGE_ANONYMOUS_ROLE": "anonymous",
    #: Session key the default identity loader reads (Flask-Login's).
    "WAMP_BRIDGE_IDENTITY_KEY": "_user_id",
    #: Key that signs tickets; None derives one from SECRET_KEY. The same on every worker and host.
    "WAMP_BRIDGE_TICKET_SECRET": None,
    #: Seconds a ticket stays valid (it is used within the login, at once).
    "WAMP_BRIDGE_TICKET_MAX_AGE": tickets.DEFAULT_MAX_AGE,
    #: Seconds from the browser's connect to WELCOME.
    "WAMP_BRIDGE_LOGIN_TIMEOUT": 10.0,
    #: CALLs of one browser session waiting for results at once (None: no limit).
    "WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT": 100,
    #: Seconds to open the upstream connection to the router.
    "WAMP_BRIDGE_CONNECT_TIMEOUT": 10.0,
    #: Nesting depth of a browser message (the message list is depth 1); deeper: ERROR invalid_argument.
    "WAMP_BRIDGE_MAX_DEPTH": 32,
    #: Elements (list items, map entries count twice) of one browser message.
    "WAMP_BRIDGE_MAX_ELEMENTS": 100_000,
    #: Strict WAMP URIs ([0-9a-z_] components) in browser messages instead of loose ones.
    "WAMP_BRIDGE_STRICT_URIS": False,
    #: Subscriptions of one browser session (None: no limit).
    "WAMP_BRIDGE_MAX_SUBSCRIPTIONS": 1000,
    #: Registrations of one browser session (None: no limit).
    "WAMP_BRIDGE_MAX_REGISTRATIONS": 100,
    #: Requests (CALL, PUBLISH, SUBSCRIBE, REGISTER) per second of one browser session (None: no limit).
    "WAMP_BRIDGE_MESSAGE_RATE": 1000.0,
    #: Requests in a burst above WAMP_BRIDGE_MESSAGE_RATE.
    "WAMP_BRIDGE_MESSAGE_BURST": 2000,
}

_COUNTS = ("WAMP_BRIDGE_MAX_DEPTH", "WAMP_BRIDGE_MAX_ELEMENTS", "WAMP_BRIDGE_MESSAGE_BURST")
_COUNTS_OR_NONE = ("WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT", "WAMP_BRIDGE_MAX_SUBSCRIPTIONS",
                   "WAMP_BRIDGE_MAX_REGISTRATIONS")

_POSITIVE = (
    "WAMP_BRIDGE_TICKET_MAX_AGE", "WAMP_BRIDGE_LOGIN_TIMEOUT", "WAMP_BRIDGE_CONNECT_TIMEOUT",
)
_POSITIVE_OR_NONE = ("WAMP_BRIDGE_WS_PING_INTERVAL", "WAMP_BRIDGE_WS_IDLE_TIMEOUT", "WAMP_BRIDGE_WS_SEND_TIMEOUT")


def install_endpoint(app: Flask, state: BridgeState | None = None) -> None:
    """Add the WAMP endpoint's config defaults and mount ``WAMP_BRIDGE_PATH`` as a WebSocket route.

    ``state`` supplies the identity loader (``state.identity_loader``);
    without it, :func:`~flask_wamp_bridge.bridge.identity.default_identity_loader`.
    The browser socket's limits and timers are the WebSocket routes' settings
    (``WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE``, ``_WS_PING_INTERVAL``,
    ``_WS_IDLE_TIMEOUT``, ``_WS_SEND_TIMEOUT``); ``WAMP_BRIDGE_ALLOWED_ORIGINS``
    lists the origins allowed besides the app's own.

    :raises ConfigError: an endpoint setting is invalid (checked here, once).
    """
    from ..websocket.routes import CONFIG_DEFAULTS
    from ..websocket.routes import handle_websocket_mismatch

    for key, value in {**CONFIG_DEFAULTS, **DEFAULTS}.items():
        app.config.setdefault(key, value)
    _check_config(app.config)
    path = app.config["WAMP_BRIDGE_PATH"]
    if path is None:
        return

    def wamp_endpoint() -> t.Any:
        return _serve(state)

    app.add_url_rule(path, ENDPOINT, wamp_endpoint, websocket=True, provide_automatic_options=False)
    app.register_error_handler(WebsocketMismatch, handle_websocket_mismatch)


def load_identity(state: BridgeState | None = None) -> Identity | None:
    """The frozen identity of the current request: the loader's, else anonymous, else None.

    Must run in the upgrade's request context. An anonymous session gets role
    ``WAMP_BRIDGE_ANONYMOUS_ROLE`` and an authid of its own (``anonymous-<random>``).
    """
    config = current_app.config
    loader = state.identity_loader if state is not None else None
    if loader is None:
        from .identity import default_identity_loader

        loader = default_identity_loader
    identity = coerce_identity(loader(), config["WAMP_BRIDGE_USER_ROLE"])
    if identity is None and config["WAMP_BRIDGE_ANONYMOUS_ROLE"]:
        identity = Identity(f"anonymous-{secrets.token_urlsafe(12)}", config["WAMP_BRIDGE_ANONYMOUS_ROLE"])
    if identity is not None:
        _refuse_backend_principal(identity, config)
    return identity


def _refuse_backend_principal(identity: Identity, config: t.Mapping[str, t.Any]) -> None:
    """A browser never becomes the app's peer or a backend service (authid or role).

    Such a session could kill every worker's peer with ``bridge.logout``, use the
    meta API, or register the authenticator itself.

    :raises NotAuthenticated: the identity names a backend principal.
    """
    services: t.Mapping[str, t.Mapping[str, t.Any]] = config.get("WAMP_BRIDGE_SERVICES") or {}
    authids = {config.get("WAMP_BRIDGE_PEER_AUTHID"), *services}
    roles = {config.get("WAMP_BRIDGE_PEER_ROLE", "backend"), *(s.get("role") for s in services.values())}
    if identity.authid in authids or identity.authrole in roles:
        raise NotAuthenticated(
            f"the identity loader returned authid {identity.authid!r} / authrole {identity.authrole!r}, "
            "which belong to the app's peer or a backend service (WAMP_BRIDGE_PEER_*, WAMP_BRIDGE_SERVICES): "
            "a browser session may not take them; give users their own authids and roles"
        )


def _serve(state: BridgeState | None) -> t.Any:
    from ..websocket.routes import accept_websocket
    from ..websocket.routes import check_origin
    from . import relay_io as _relay_io

    config = current_app.config
    remote = request.remote_addr
    try:
        check_origin()  # first: a foreign page must not even get the identity loader run
    except Forbidden:
        security_log.warn("origin_refused", remote, None, f"Origin {request.headers.get('Origin')!r}")
        raise
    _log_tampered_cookie(remote)
    try:
        identity = load_identity(state)  # frozen before any greenlet exists
    except NotAuthenticated as exc:
        log.error("refusing a browser WAMP session: %s", exc)
        identity = None  # its HELLO gets ABORT wamp.error.not_authorized
    secret = tickets.ticket_secret(config)
    realm: str = config["WAMP_BRIDGE_REALM"]
    max_size = config["WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"]
    # Origin check (403 before the 101), subprotocol (400 unless a WAMP one is offered), 101.
    ws = accept_websocket(SUBPROTOCOLS, require_subprotocol=True)
    subprotocol = t.cast(str, ws.subprotocol)  # required above: never None here

    def sign(who: Identity) -> str:
        return tickets.sign(who, secret, time.time(), realm=realm)

    relay = Relay(
        identity,
        realm,
        serializer_for(subprotocol),
        sign,
        time.time(),
        login_timeout=config["WAMP_BRIDGE_LOGIN_TIMEOUT"],
        limits=limits_from_config(config),
        debug=bool(current_app.debug),
    )
    relayed = _relay_io.RelaySession(
        ws,
        relay,
        config["WAMP_BRIDGE_ROUTER_URL"],
        subprotocol,
        connect_timeout=config["WAMP_BRIDGE_CONNECT_TIMEOUT"],
        send_timeout=config["WAMP_BRIDGE_WS_SEND_TIMEOUT"] or 10.0,
        max_message_size=max_size or None,
        remote=remote,
    )
    relayed.run()
    return current_app.response_class(status=204)  # discarded by the worker after the 101


def limits_from_config(config: t.Mapping[str, t.Any]) -> Limits:
    """The per-message limits of a browser session, from the ``WAMP_BRIDGE_*`` settings."""
    max_bytes = config.get("WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE") or (1 << 62)
    return Limits(
        bounds=Bounds(max_depth=config["WAMP_BRIDGE_MAX_DEPTH"], max_elements=config["WAMP_BRIDGE_MAX_ELEMENTS"],
                      max_bytes=max_bytes),
        strict_uris=bool(config["WAMP_BRIDGE_STRICT_URIS"]),
        max_calls_in_flight=config["WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT"],
        max_subscriptions=config["WAMP_BRIDGE_MAX_SUBSCRIPTIONS"],
        max_registrations=config["WAMP_BRIDGE_MAX_REGISTRATIONS"],
        message_rate=config["WAMP_BRIDGE_MESSAGE_RATE"],
        message_burst=config["WAMP_BRIDGE_MESSAGE_BURST"],
    )


def _log_tampered_cookie(remote: str | None) -> None:
    """Log a session cookie that fails its signature check (Flask then just starts an empty session)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cookie = request.cookies.get(app.config.get("SESSION_COOKIE_NAME", "session"))
    if not cookie or session:
        return
    signer = getattr(app.session_interface, "get_signing_serializer", None)
    if signer is None:
        return
    serializer = signer(app)
    if serializer is None:
        return
    from itsdangerous import BadSignature

    try:
        serializer.loads(cookie)
    except BadSignature:
        security_log.warn("cookie_refused", remote, None, "the session cookie's signature does not match")


def _check_config(config: t.Mapping[str, t.Any]) -> None:
    from ..websocket.routes import check_origins_setting

    path = config["WAMP_BRIDGE_PATH"]
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ConfigError(f"WAMP_BRIDGE_PATH must be a URL path like '/wamp' (or None), got {path!r}")
    for key in _POSITIVE:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    for key in _POSITIVE_OR_NONE:
        value = config[key]
        if value is None or (value == 0 and not isinstance(value, bool)):
            continue  # disabled
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{key} must be a positive number of seconds (0 or None: off), got {value!r}")
    for key in _COUNTS + _COUNTS_OR_NONE:
        value = config[key]
        if value is None and key in _COUNTS_OR_NONE:
            continue
        if type(value) is not int or value < 1:
            raise ConfigError(f"{key} must be a positive integer{' or None' if key in _COUNTS_OR_NONE else ''}, "
                              f"got {value!r}")
    rate = config["WAMP_BRIDGE_MESSAGE_RATE"]
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
        raise ConfigError(f"WAMP_BRIDGE_MESSAGE_RATE must be a positive number of requests per second or None, "
                          f"got {rate!r}")
    size = config["WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE"]
    if size and (type(size) is not int or size < 1024):
        raise ConfigError(f"WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE must be an integer number of bytes >= 1024 "
                          f"(or 0 for no limit), got {size!r}")
    for key in ("WAMP_BRIDGE_USER_ROLE", "WAMP_BRIDGE_ANONYMOUS_ROLE"):
        role = config[key]
        if role is not None and (not isinstance(role, str) or not role):
            raise ConfigError(f"{key} must be a role name (or None), got {role!r}")
    check_origins_setting(config["WAMP_BRIDGE_ALLOWED_ORIGINS"])
    tickets.ticket_secret(config)  # fail at startup, not at the first browser
