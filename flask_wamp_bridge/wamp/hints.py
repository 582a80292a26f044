"""What to check when the router refuses the app's peer: one table, by the ABORT's URI.

The peer logs the hint with the refusal, so a misconfigured deployment says
how to fix itself instead of only retrying.
"""

from __future__ import annotations

__all__ = ["PEER_JOIN_HINTS", "JOIN_TIMEOUT_HINT"]

PEER_JOIN_HINTS: dict[str, str] = {
    "wamp.error.authentication_failed": (
        "check that WAMP_BRIDGE_PEER_SECRET is the secret the router's config holds for WAMP_BRIDGE_PEER_AUTHID "
        "(regenerate it with `flask wamp config` from the same settings)"),
    "wamp.error.not_authorized": (
        "the router does not let WAMP_BRIDGE_PEER_AUTHID join WAMP_BRIDGE_REALM: check WAMP_BRIDGE_PEER_SECRET "
        "(Crossbar answers a wrong WAMP-CRA signature so) and compare the settings with the router's config "
        "(`flask wamp config`)"),
    "wamp.error.no_such_role": (
        "the router's realm has no role WAMP_BRIDGE_PEER_ROLE: regenerate the router's config with "
        "`flask wamp config` from the same settings"),
    "wamp.error.no_such_realm": "WAMP_BRIDGE_REALM is not a realm of the router",
    "wamp.error.no_auth_method": (
        "the router's transport does not offer WAMP_BRIDGE_PEER_AUTHMETHOD: use the transport of "
        "`flask wamp config` or change the method"),
}

JOIN_TIMEOUT_HINT = (
    "is WAMP_BRIDGE_ROUTER_URL the router's WebSocket transport, and is the router running, not stalled "
    "or overloaded?")
