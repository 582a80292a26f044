"""How a relayed session ends when the browser did not ask it to: one table.

Each :class:`Fault` says what a page sees, in this order: an ERROR with
:attr:`Fault.uri` for every CALL it still waits on (exactly one answer per
call), then GOODBYE (``final``: the page should not reconnect on its own) or
ABORT (it may: wampy.js reconnects after an ABORT on an open session, not after
a GOODBYE) with the same URI, then the WebSocket close code. README.rst has the
same table for app authors.
"""

from __future__ import annotations

import collections.abc as c
import dataclasses
import typing as t

from ..errors import RemoteProtocolError
from ..wamp.messages import MessageType
from ..wamp.messages import Serializer

__all__ = [
    "Fault",
    "ROUTER_LOST",
    "ROUTER_SILENT",
    "ROUTER_UNREACHABLE",
    "ROUTER_LOGIN_TIMEOUT",
    "ROUTER_PROTOCOL_ERROR",
    "SHUTDOWN",
    "RESTART",
    "SESSION_EXPIRED",
    "ABUSE",
    "BROWSER_GONE",
    "AUTHENTICATOR_MISSING",
    "AUTHENTICATOR_FAILED",
    "PEER_REFUSED",
    "ROUTER_BUSY",
    "OUT_OF_DESCRIPTORS",
    "FAULTS",
    "LOGIN_ABORTS",
    "LOGIN_REFUSAL_HINTS",
    "LOGIN_TIMEOUT_HINTS",
    "login_fault",
    "pending_errors",
    "last_words",
]

_ABORT, _GOODBYE, _ERROR, _CALL = (int(MessageType[name]) for name in ("ABORT", "GOODBYE", "ERROR", "CALL"))


@dataclasses.dataclass(frozen=True)
class Fault:
    """One way a session can end from the server's side."""

    #: ERROR URI of each pending CALL, and the GOODBYE/ABORT reason.
    uri: str
    #: Text that goes with it (in the ERROR's args and the GOODBYE/ABORT details).
    message: str
    #: WebSocket close code of the browser's socket.
    close_code: int
    #: GOODBYE (True: the page should not reconnect by itself) or ABORT (False).
    final: bool
    #: Short close reason (WebSocket close frames hold 123 bytes).
    reason: str


ROUTER_LOST = Fault("wamp_bridge.error.router_lost", "the connection to the router was lost; reconnect",
                    1011, False, "router connection lost")
ROUTER_SILENT = Fault("wamp_bridge.error.router_lost", "the router stopped answering; reconnect",
                      1011, False, "router not answering")
ROUTER_UNREACHABLE = Fault("wamp_bridge.error.router_unavailable",
                           "the router cannot be reached right now; try again later",
                           1013, False, "router unavailable")
ROUTER_LOGIN_TIMEOUT = Fault("wamp_bridge.error.router_unavailable",
                             "the router did not complete the login in time; try again later",
                             1013, False, "login timed out")
ROUTER_PROTOCOL_ERROR = Fault("wamp_bridge.error.router_protocol_error",
                              "the router broke the WAMP protocol; reconnect", 1011, False, "router protocol error")
SHUTDOWN = Fault("wamp.close.system_shutdown", "the server is shutting down; reconnect later",
                 1001, True, "server shutting down")
RESTART = Fault("wamp.close.system_shutdown", "the server is restarting; reconnect",
                1012, False, "server restarting")
SESSION_EXPIRED = Fault("wamp_bridge.close.session_expired", "the login session expired; log in again",
                        1008, True, "login session expired")
ABUSE = Fault("wamp_bridge.close.too_many_refusals",
              "too many of this session's messages were refused; the server log says which", 1008, True,
              "too many refused messages")
BROWSER_GONE = Fault("wamp.close.normal", "the browser went away", 1000, True, "browser went away")
AUTHENTICATOR_MISSING = Fault("wamp_bridge.error.router_unavailable",
                              "the router cannot log you in yet (its authenticator is not ready); try again shortly",
                              1013, False, "authenticator not ready")
AUTHENTICATOR_FAILED = Fault("wamp_bridge.error.authenticator_failed",
                             "the server could not check this login (its log says why); try again later",
                             1013, False, "authenticator failed")
PEER_REFUSED = Fault("wamp_bridge.error.server_misconfigured",
                     "the server cannot log you in: its connection to the router is refused (its log says why); "
                     "try again later", 1013, False, "app peer refused")
ROUTER_BUSY = Fault("wamp_bridge.error.router_unavailable", "the router is busy or restarting; try again later",
                    1013, False, "router busy")
OUT_OF_DESCRIPTORS = Fault("wamp_bridge.error.router_unavailable",
                           "the server is at its connection limit; try again later", 1013, False,
                           "server at its connection limit")

#: Every fault by name (for the README table and the tests).
FAULTS: dict[str, Fault] = {
    "router_lost": ROUTER_LOST,
    "router_silent": ROUTER_SILENT,
    "router_unreachable": ROUTER_UNREACHABLE,
    "router_login_timeout": ROUTER_LOGIN_TIMEOUT,
    "router_protocol_error": ROUTER_PROTOCOL_ERROR,
    "shutdown": SHUTDOWN,
    "restart": RESTART,
    "session_expired": SESSION_EXPIRED,
    "abuse": ABUSE,
    "browser_gone": BROWSER_GONE,
    "authenticator_missing": AUTHENTICATOR_MISSING,
    "authenticator_failed": AUTHENTICATOR_FAILED,
    "peer_refused": PEER_REFUSED,
    "router_busy": ROUTER_BUSY,
    "out_of_descriptors": OUT_OF_DESCRIPTORS,
}

#: A router's ABORT of a login that is the server's trouble, not the browser's, by its URI: the page gets the
#: fault (retryable: close 1013) instead of the router's URI and 1008. Other refusals pass (URI kept, 1008).
#: A ticket the bridge signed itself is never the browser's fault, so a failed check of it is retryable too.
LOGIN_ABORTS: dict[str, Fault] = {
    "wamp.error.no_such_procedure": AUTHENTICATOR_MISSING,  # the authenticator is not registered (yet)
    "wamp.error.no_eligible_callee": AUTHENTICATOR_MISSING,
    "wamp.error.unavailable": ROUTER_BUSY,  # the authenticator's peer is full (its backlog)
    "wamp.error.canceled": ROUTER_BUSY,
    "wamp.error.timeout": ROUTER_BUSY,
    "wamp.close.system_shutdown": ROUTER_BUSY,
    "wamp.error.system_shutdown": ROUTER_BUSY,
    "wamp.error.authentication_failed": AUTHENTICATOR_FAILED,  # another ticket secret, a clock off, a crash
    "wamp.error.runtime_error": AUTHENTICATOR_FAILED,  # the authenticator raised
    ROUTER_UNREACHABLE.uri: ROUTER_BUSY,  # the authenticator saw the ticket too late (an overloaded router)
}


def login_fault(reason: str, *, peer_refused: bool) -> Fault | None:
    """The fault for a router's ABORT of a login (None: the browser's own refusal).

    A missing authenticator while the router refuses this worker's app peer is no passing gap: that peer, which
    registers the authenticator, cannot join until the deployment is fixed.
    """
    fault = LOGIN_ABORTS.get(reason)
    if fault is AUTHENTICATOR_MISSING and peer_refused:
        return PEER_REFUSED
    return fault


def pending_errors(pending: c.Iterable[int], uri: str, message: str) -> list[list[t.Any]]:
    """One ERROR for each CALL still waiting (by request id): the session ends before its result can come."""
    return [[_ERROR, _CALL, request_id, {}, uri, [message]] for request_id in sorted(pending)]


def router_ended(serializer: Serializer, data: str | bytes, pending: c.Iterable[int]) -> list[list[t.Any]]:
    """The router ended the session (its GOODBYE or ABORT ``data``): an ERROR per pending CALL with its reason URI.

    The URI only: the router's own text is not for browsers.
    """
    try:
        uri = str(serializer.loads(data)[2])
    except (RemoteProtocolError, IndexError):
        uri = ROUTER_LOST.uri
    return pending_errors(pending, uri, "the router ended the session")


def last_words(fault: Fault, pending: c.Iterable[int], *, established: bool) -> list[list[t.Any]]:
    """What the page gets for ``fault``: an ERROR per pending CALL, then GOODBYE or ABORT (ABORT before WELCOME)."""
    details = {"message": fault.message}
    if not established:
        return [[_ABORT, details, fault.uri]]
    ending = _GOODBYE if fault.final else _ABORT
    return [*pending_errors(pending, fault.uri, fault.message), [ending, details, fault.uri]]


#: What to check when the router refuses a browser's login, by the ABORT's URI (logged with the refusal).
LOGIN_REFUSAL_HINTS: dict[str, str] = {
    "wamp.error.no_such_procedure": (
        "the ticket authenticator is not registered: no app peer has joined the router yet (for a second or "
        "two after a router restart this is normal; the page was told to retry). If it lasts, see the "
        "'WAMP peer' log lines: a peer refused with wamp.error.authentication_failed or not_authorized has a "
        "WAMP_BRIDGE_PEER_SECRET that is not the router config's (regenerate it with `flask wamp config`), "
        "or WAMP_BRIDGE_AUTHENTICATOR differs from the router config's"),
    "wamp.error.runtime_error": (
        "the ticket authenticator raised an exception: the app's log (WAMP peer) has the traceback"),
    "wamp.error.unavailable": (
        "the app's peers had no free slot for the authenticator (WAMP_BRIDGE_PEER_CONCURRENCY, "
        "WAMP_BRIDGE_PEER_BACKLOG): a login storm, or handlers that block"),
    "wamp.error.authentication_failed": (
        "the authenticator refused the ticket: every worker and host must share SECRET_KEY (or "
        "WAMP_BRIDGE_TICKET_SECRET) and a clock within a second or two; with a proxy between the bridge and "
        "the router set WAMP_BRIDGE_TICKET_BIND_PEER = False"),
    "wamp.error.not_authorized": (
        "the authenticator refused this identity's role or authid: the identity loader returned a role that "
        "the worker running the authenticator does not count as a browser role (WAMP_BRIDGE_USER_ROLE, "
        "WAMP_BRIDGE_ANONYMOUS_ROLE, WAMP_BRIDGE_PERMISSIONS, WAMP_BRIDGE_BROWSER_ROLES), or the peer's or a "
        "service's role or authid (WAMP_BRIDGE_PEER_*, WAMP_BRIDGE_SERVICES), which a browser never gets; every "
        "worker and host must have the same settings, since any of them may run the authenticator"),
    "wamp.error.no_such_realm": (
        "WAMP_BRIDGE_REALM is not a realm of the router: regenerate its config with `flask wamp config`"),
}

#: Why a login timed out, by whether the router had challenged the HELLO (logged with the timeout).
LOGIN_TIMEOUT_HINTS: dict[bool, str] = {
    True: ("the router sent the ticket challenge, then no WELCOME: the ticket authenticator "
           "(WAMP_BRIDGE_AUTHENTICATOR) never answered; is the app's peer joined, and are its "
           "WAMP_BRIDGE_AUTH_CONCURRENCY slots (its own pool) all busy?"),
    False: ("the router never answered the HELLO: is WAMP_BRIDGE_ROUTER_URL the router's transport with "
            "ticket authentication, and is the router overloaded or stalled?"),
}
