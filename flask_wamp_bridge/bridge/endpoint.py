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
import os
import secrets
import time
import typing as t
import weakref

from flask import Flask
from flask import current_app
from flask import request
from flask import session
from werkzeug.exceptions import Forbidden
from werkzeug.routing.exceptions import WebsocketMismatch

from .. import settings as _settings
from ..errors import NotAuthenticated
from ..signals import peer_joined
from ..signals import peer_refused
from ..signals import router_lost
from ..wamp.bounds import Bounds
from ..wamp.messages import SUBPROTOCOLS
from ..wamp.messages import serializer_for
from ..wamp.meta_api import TopicSet
from ..wamp.router_urls import check_rawsocket_keeps_tls
from ..wamp.router_urls import router_urls
from ..websocket.routes import accept_websocket
from ..websocket.routes import check_origin
from ..websocket.routes import handle_websocket_mismatch
from . import security_log
from .budgets import Caps
from .budgets import WorkerBudgets
from .checks import Limits
from .checks import Shared
from .faults import LOGIN_REFUSAL_HINTS
from .faults import PEER_REFUSED
from .faults import login_fault
from .identity import Identity
from .identity import coerce_identity
from .relay import Relay
from .relay_events import RouterRefusal
from .tickets import browser_policy
from .upstream_codec import upstream_serializer

__all__ = ["Endpoint", "ENDPOINT"]

log = logging.getLogger(__name__)

#: Flask endpoint name of the WAMP route.
ENDPOINT = "wamp_bridge.wamp"


class Endpoint:
    """The WAMP route of one app: its settings, identity loader and ticket signer.

    :param settings: the app's ``WAMP_BRIDGE_*`` values as ``init_app`` read them.
    :param identity_loader: returns what the app's identity loader returns for the current request.
    :param sign: ``sign(identity, peer) -> ticket`` (:meth:`~flask_wamp_bridge.bridge.tickets.Tickets.sign`;
        ``peer`` names the bridge's end of the upstream connection).
    :param generated_roles: the roles the generated router config defines; a login the router
        refuses for a role outside them is logged with the fix.
    :param reserved_procedures: ``() -> set of URIs``: the app's own procedures, which no browser may register.
    """

    def __init__(
        self,
        settings: t.Mapping[str, t.Any],
        identity_loader: t.Callable[[], t.Any],
        sign: t.Callable[[Identity, str | None], str],
        generated_roles: t.Collection[str] = (),
        reserved_procedures: t.Callable[[], t.AbstractSet[str]] = frozenset,
    ) -> None:
        self.settings = settings
        self.identity_loader = identity_loader
        self.sign = sign
        self.generated_roles = tuple(generated_roles)
        self.reserved_procedures = reserved_procedures
        self._limits = limits_from_settings(settings)
        self._policy = browser_policy(settings)
        self._relay_arguments = _settings.arguments_for("Relay", settings)
        self._relay_arguments["call_timeout"] = self._relay_arguments["call_timeout"] or None  # 0: off
        self._session_arguments = _settings.arguments_for("RelaySession", settings)
        self._rawsocket = _settings.get(settings, "WAMP_BRIDGE_UPSTREAM") == "rawsocket"
        if self._rawsocket:
            check_rawsocket_keeps_tls(router_urls(_settings.get(settings, "WAMP_BRIDGE_ROUTER_URL")),
                                      self._session_arguments["rawsocket_path"], "the browsers' relays",
                                      "WAMP_BRIDGE_UPSTREAM")
        for off in ("max_message_size", "ping_interval"):  # 0: off
            self._session_arguments[off] = self._session_arguments[off] or None
        # the browser's socket may have no send timeout; the upstream always has one
        self._session_arguments["send_timeout"] = (self._session_arguments["send_timeout"]
                                                   or _settings.DEFAULTS["WAMP_BRIDGE_WS_SEND_TIMEOUT"])
        self._budgets: WorkerBudgets | None = None
        self._budgets_pid: int | None = None
        self._refused_apps: weakref.WeakSet[Flask] = weakref.WeakSet()  # whose peer's latest join was refused

    @property
    def budgets(self) -> WorkerBudgets:
        """This worker process's sessions per user and address, and each user's byte bucket."""
        pid = os.getpid()
        if self._budgets is None or self._budgets_pid != pid:  # not a forked copy of another process's
            self._budgets = WorkerBudgets(caps_from_settings(self.settings))
            self._budgets_pid = pid
        return self._budgets

    def mount(self, app: Flask) -> None:
        """Add the WebSocket route ``WAMP_BRIDGE_PATH`` to ``app`` (nothing when it is None)."""
        path = self.settings["WAMP_BRIDGE_PATH"]
        if path is None:
            return
        app.add_url_rule(path, ENDPOINT, self.serve, websocket=True, provide_automatic_options=False)
        app.register_error_handler(WebsocketMismatch, handle_websocket_mismatch)
        router_lost.connect(self._router_lost, sender=app)
        peer_refused.connect(self._peer_refused, sender=app)
        peer_joined.connect(self._peer_joined, sender=app)

    def _peer_refused(self, sender: Flask, **_: t.Any) -> None:
        self._refused_apps.add(sender)

    def _peer_joined(self, sender: Flask, **_: t.Any) -> None:
        self._refused_apps.discard(sender)

    def peer_is_refused(self, app: Flask) -> bool:
        """The router refused the latest join of ``app``'s peer in this worker (cleared when it joins)."""
        return app in self._refused_apps

    def _router_lost(self, sender: object, **kwargs: t.Any) -> None:
        """The app's peer lost a router node: its relays there that cannot tell themselves end (the ticker)."""
        from . import relay_io  # the peer runs on gevent: importing it costs nothing more

        relay_io.router_lost(sender, **kwargs)

    def load_identity(self) -> Identity | None:
        """The frozen identity of the current request: the loader's, else anonymous, else None.

        Must run in the upgrade's request context. An anonymous session gets role
        ``WAMP_BRIDGE_ANONYMOUS_ROLE`` and an authid of its own (``anonymous-<random>``).

        :raises NotAuthenticated: the loader named the app's peer or a backend service.
        """
        settings = self.settings
        identity = coerce_identity(self.identity_loader(), settings["WAMP_BRIDGE_USER_ROLE"])
        if identity is None and settings["WAMP_BRIDGE_ANONYMOUS_ROLE"]:
            identity = Identity(f"anonymous-{secrets.token_urlsafe(12)}", settings["WAMP_BRIDGE_ANONYMOUS_ROLE"])
        if identity is not None:
            self._refuse_backend_principal(identity)
        return identity

    def _refuse_backend_principal(self, identity: Identity) -> None:
        """A browser never becomes the app's peer or a backend service, and has a browser role.

        Such a session could kill every worker's peer with ``bridge.logout``, use the
        meta API, or register the authenticator itself. The router's authenticator
        applies the same :class:`~flask_wamp_bridge.bridge.tickets.BrowserPolicy`.
        """
        refusal = self._policy.refusal(identity.authid, identity.authrole)
        if refusal is not None:
            raise NotAuthenticated(f"the identity loader returned {refusal}; give users their own authids and roles")

    def serve(self) -> t.Any:
        """The view: check the Origin, freeze the identity, accept, relay until either side closes."""
        from . import relay_io  # imports gevent: only once a socket is relayed

        remote = request.remote_addr
        try:
            check_origin()  # first: a foreign page must not even get the identity loader run
        except Forbidden:
            security_log.warn("origin_refused", remote, None, f"Origin {request.headers.get('Origin')!r}")
            raise
        _log_tampered_cookie(remote)
        try:
            identity = self.load_identity()  # frozen before any greenlet exists
        except NotAuthenticated as exc:
            log.error("refusing a browser WAMP session: %s", exc)
            identity = None  # its HELLO gets ABORT wamp.error.not_authorized
        # subprotocol (400 unless a WAMP one is offered), then the 101
        ws = accept_websocket(SUBPROTOCOLS, require_subprotocol=True, origin_checked=True,
                              **_settings.arguments_for("accept_websocket", self.settings))
        subprotocol = t.cast(str, ws.subprotocol)  # required above: never None here

        now = time.monotonic()
        admission = self.budgets.admit(identity.authid if identity is not None else None, remote, now)
        serializer = serializer_for(subprotocol)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        relay = Relay(
            identity,
            serializer=serializer,
            upstream_serializer=upstream_serializer(serializer) if self._rawsocket else None,
            ticket_signer=self.sign,
            now=now,
            expires_at=now + self.session_life(),
            limits=self._limits,
            shared=Shared(admission.user_bytes, self.reserved_procedures),
            refusal=admission.refusal,
            debug=bool(current_app.debug),
            peer_refused=lambda: self.peer_is_refused(app),
            **self._relay_arguments,
        )
        relayed = relay_io.RelaySession(
            ws,
            relay,
            subprotocol=subprotocol,
            remote=remote,
            signal_sender=app,
            **self._session_arguments,
        )
        try:
            relayed.run()
        finally:
            admission.release()
        if relay.router_refusal is not None and identity is not None:
            self._log_refusal(identity, relay.router_refusal, peer_refused=self.peer_is_refused(app))
        return current_app.response_class(status=204)  # discarded by the worker after the 101

    def session_life(self) -> float:
        """Seconds until the Flask session of the current request ends (at most ``WAMP_BRIDGE_WS_MAX_LIFETIME``).

        With Flask's signed-cookie sessions the end is the cookie's signing time
        plus ``PERMANENT_SESSION_LIFETIME`` (Flask refuses the cookie after that);
        with another session interface, or no cookie, that lifetime from now.
        """
        from flask import request
        from itsdangerous import BadData

        app = current_app
        lifetime = app.permanent_session_lifetime.total_seconds()
        life = lifetime
        cookie = request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        get_signer = getattr(app.session_interface, "get_signing_serializer", None)
        signer = get_signer(app) if cookie and get_signer is not None else None
        if signer is not None:
            try:
                _, signed_at = signer.loads(cookie, max_age=lifetime, return_timestamp=True)
            except BadData:
                pass  # no session for the identity loader either
            else:
                life = signed_at.timestamp() + lifetime - time.time()
        longest = self.settings["WAMP_BRIDGE_WS_MAX_LIFETIME"]
        return float(min(life, longest) if longest else life)

    def _log_refusal(self, identity: Identity, refusal: RouterRefusal, *, peer_refused: bool) -> None:
        """The router refused a browser's login: say who, why, and (for an unknown role) the fix."""
        why = refusal.reason + (f" ({refusal.message})" if refusal.message else "")
        hint = ""
        role = identity.authrole
        if self.generated_roles and role not in self.generated_roles:
            hint = (
                f"; the identity loader returned role {role!r}, which the generated router config does not define "
                f"(it defines {', '.join(map(repr, self.generated_roles))}): add WAMP_BRIDGE_PERMISSIONS[{role!r}] "
                f"= [{{'uri': 'app.', 'allow': ['call', 'subscribe']}}] (or return one of those roles) and "
                "regenerate the router config with `flask wamp config`"
            )
        if not hint and refusal.reason in LOGIN_REFUSAL_HINTS:
            hint = "; " + LOGIN_REFUSAL_HINTS[refusal.reason]
        fault = login_fault(refusal.reason, peer_refused=peer_refused)
        if fault is PEER_REFUSED:
            hint = ("; the router refuses this worker's WAMP peer (which registers the authenticator): check that "
                    "WAMP_BRIDGE_PEER_SECRET and WAMP_BRIDGE_PEER_ROLE match the router's config (regenerate it "
                    "with `flask wamp config`); the peer's own log line says why it was refused")
        if fault is not None:  # the server's trouble, hitting every login for a while: a line per 10 s
            from .relay_io import warn_limited

            warn_limited(f"login refused {refusal.reason} {fault.uri}", "the router could not log in the WAMP session "
                         "of authid %r (role %r): %s; the page got ABORT %s and %d (try again)%s", identity.authid,
                         role, why, fault.uri, fault.close_code, hint)
            return
        log.warning("the router refused the WAMP session of authid %r (role %r): %s%s",
                    identity.authid, role, why, hint)


def limits_from_settings(settings: t.Mapping[str, t.Any]) -> Limits:
    """The per-message limits of a browser session, from the ``WAMP_BRIDGE_*`` settings."""
    bounds = _settings.arguments_for("Bounds", settings)
    bounds["max_bytes"] = bounds["max_bytes"] or (1 << 62)  # 0: no size limit
    limits = _settings.arguments_for("Limits", settings)
    limits["invoke_policies"] = frozenset(limits["invoke_policies"])
    offers_meta = bool(settings["WAMP_BRIDGE_EVENT_HISTORY"] or settings["WAMP_BRIDGE_PRESENCE_TOPICS"])
    retained = TopicSet(settings["WAMP_BRIDGE_RETAIN_TOPICS"])
    return Limits(bounds=Bounds(**bounds), backend_roles=_settings.roles(settings).backend,
                  meta_calls=offers_meta, retain_topics=retained, **limits)


def caps_from_settings(settings: t.Mapping[str, t.Any]) -> Caps:
    """The per-worker caps across browser sessions, from the ``WAMP_BRIDGE_*`` settings."""
    return Caps(**_settings.arguments_for("Caps", settings))


def _log_tampered_cookie(remote: str | None) -> None:
    """Log a session cookie whose signature fails (Flask then just starts an empty session)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cookie = request.cookies.get(app.config.get("SESSION_COOKIE_NAME", "session"))
    if not cookie or session:
        return
    signer = getattr(app.session_interface, "get_signing_serializer", None)
    serializer = signer(app) if signer is not None else None
    if serializer is None:
        return
    from itsdangerous import BadSignature

    try:
        serializer.loads(cookie)
    except BadSignature:
        security_log.warn("cookie_refused", remote, None, "the session cookie's signature does not match")
