"""What the router says, made fit for a browser: URIs kept, the router's own words and internals left out.

Pure. The router's free text (an ABORT's or GOODBYE's message, the args of
the ERRORs it makes itself) may carry an authorizer's exception, a database
URL or a host name; Crossbar's WELCOME carries its node, PID and worker and
the bridge's own address in ``x_cb_*`` keys. Outside debug the browser gets a
generic text instead, and the relay logs the full one.
"""

from __future__ import annotations

import typing as t

from ..errors import RemoteProtocolError
from ..wamp.messages import MessageType
from ..wamp.messages import Serializer

__all__ = ["ROUTER_ERRORS", "GENERIC_TEXT", "sanitized", "welcome_details"]

_ABORT, _GOODBYE, _ERROR = int(MessageType.ABORT), int(MessageType.GOODBYE), int(MessageType.ERROR)
#: Prefix of the keys Crossbar adds about itself (x_cb_node, x_cb_pid, x_cb_peer, x_cb_worker).
_ROUTER_INTERNAL = "x_cb_"

#: ERROR URIs the router itself answers with: their text is replaced. ERRORs with the app's URIs pass.
ROUTER_ERRORS = frozenset(f"wamp.error.{name}" for name in (
    "not_authorized", "authorization_failed", "authentication_failed", "no_such_procedure", "no_such_registration",
    "no_such_subscription", "no_such_session", "no_such_realm", "no_such_role", "no_such_principal",
    "procedure_already_exists", "procedure_exists_invocation_policy_conflict", "no_eligible_callee",
    "invalid_uri", "option_not_allowed", "option_disallowed.disclose_me", "protocol_violation", "unavailable",
    "timeout", "system_shutdown", "close_realm"))
#: What the browser reads instead of the router's own words.
GENERIC_TEXT = {_ABORT: "the router ended the session", _GOODBYE: "the session was closed",
                _ERROR: "the router refused the request"}


def sanitized(serializer: Serializer, kind: int, data: str | bytes) -> tuple[list[t.Any] | None, str]:
    """A router ABORT, GOODBYE or ERROR without the router's own text.

    Returns the message to send instead (None: ``data`` may go as it is) and
    the full text for the log (empty when there was none).
    """
    try:
        message = serializer.loads(data)
    except RemoteProtocolError:
        return None, ""
    if kind == _ERROR:
        uri, text = message[4], message[5:]
        if uri not in ROUTER_ERRORS or (not text and not message[3]):
            return None, ""
        return [*message[:3], {}, uri, [GENERIC_TEXT[kind]]], f"{uri}: {text!r}"
    uri, details = message[2], message[1]
    if not details:
        return None, ""
    return [kind, {"message": GENERIC_TEXT[kind]}, uri], f"{uri}: {details!r}"


def welcome_details(details: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """WELCOME.Details without ``x_cb_*`` keys (top level and ``authextra``); None if there were none."""
    extra = details.get("authextra")
    internal = any(key.startswith(_ROUTER_INTERNAL) for key in details)
    if isinstance(extra, dict) and any(key.startswith(_ROUTER_INTERNAL) for key in extra):
        details = {**details, "authextra": {key: value for key, value in extra.items()
                                            if not key.startswith(_ROUTER_INTERNAL)}}
        internal = True
    if not internal:
        return None
    return {key: value for key, value in details.items() if not key.startswith(_ROUTER_INTERNAL)}
