"""The relay's vocabulary: the states of a relayed session and the actions it hands to its IO layer.

:class:`~flask_wamp_bridge.bridge.relay.Relay` (the state machine, with its
theory of operation) returns these.
"""

from __future__ import annotations

import dataclasses
import enum
import typing as t

__all__ = [
    "Data",
    "State",
    "Action",
    "ConnectRouter",
    "SendToRouter",
    "SendToClient",
    "Close",
    "Notice",
    "RouterRefusal",
]

Data = t.Union[str, bytes]


class RouterRefusal(t.NamedTuple):
    """The router's ABORT of a login: its reason URI and its message (if any)."""

    reason: str
    message: str | None


class State(enum.Enum):
    """Where one relayed session is; see the module's theory of operation."""

    AWAIT_HELLO = "await_hello"
    AUTHENTICATING = "authenticating"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


class Action:
    """Base of what a :class:`Relay` asks the IO layer to do. Don't subclass."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectRouter(Action):
    """Open the upstream WebSocket (same subprotocol as the browser's) before the next send."""


@dataclasses.dataclass(frozen=True, slots=True)
class SendToRouter(Action):
    """Send one message upstream, as is."""

    data: Data


@dataclasses.dataclass(frozen=True, slots=True)
class SendToClient(Action):
    """Send one message to the browser, as is."""

    data: Data


@dataclasses.dataclass(frozen=True, slots=True)
class Close(Action):
    """End the session: close the browser's socket with ``code``/``reason`` and the upstream with 1000.

    ``reason`` is free text; the socket cuts it to fit a close frame
    (:func:`~flask_wamp_bridge.websocket.frames.truncate_reason`). ``router_goodbye``: the relay said GOODBYE
    upstream and the router's reply has not come; wait for it (briefly) before closing the upstream, so the
    router detaches the session before its transport goes.
    """

    code: int
    reason: str = ""
    router_goodbye: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Notice(Action):
    """Something for the log, no action: ``event`` and ``reason``.

    Events: ``protocol_violation`` (the browser's), ``abort`` (the relay ABORTs the browser), ``refused`` (one
    message refused or stripped), ``abuse`` (closed 1008), ``router_abort`` (the router's ABORT, its full
    text), ``router_text`` (the full text the browser did not get) and ``call_deadline`` (calls the bridge
    answered itself at their deadline).
    """

    event: str
    reason: str
