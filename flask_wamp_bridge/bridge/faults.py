"""How a relayed session ends when the browser did not ask it to: one table.

Each :class:`Fault` says what a page sees, in this order: an ERROR with
:attr:`Fault.uri` for every CALL it still waits on (exactly one answer per
call), then GOODBYE (``final``: the page should not reconnect on its own) or
ABORT (it may: wampy.js reconnects after an ABORT on an open session, not after
a GOODBYE) with the same URI, then the WebSocket close code. README.rst has the
same table for app authors.
"""

from __future__ import annotations

import dataclasses

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
    "FAULTS",
]


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
}
