"""What the sans-IO peer session hands to its IO layer: result and details values, and actions.

:class:`~flask_wamp_bridge.wamp.session.PeerCore` returns these from
:meth:`~flask_wamp_bridge.wamp.session.PeerCore.receive`; the public ones
(:class:`CallResult`, :class:`InvocationDetails`, :class:`EventDetails`) are
exported from the package.
"""

from __future__ import annotations

import dataclasses
import typing as t

__all__ = [
    "CallResult",
    "result_value",
    "yield_payload",
    "InvocationDetails",
    "EventDetails",
    "Send",
    "Joined",
    "Closed",
    "Result",
    "Failed",
    "Registered",
    "Unregistered",
    "Subscribed",
    "Unsubscribed",
    "Published",
    "Invoke",
    "Interrupt",
    "Deliver",
    "Revoked",
    "Action",
]


# -- values ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CallResult:
    """A result with several positional values or with keyword values.

    A procedure returns one to answer with exactly these ``args``/``kwargs``;
    a call returns one when the result is not a single positional value.
    """

    args: tuple[t.Any, ...] = ()
    kwargs: dict[str, t.Any] = dataclasses.field(default_factory=dict)


def result_value(args: list[t.Any] | tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> t.Any:
    """The Python value of a RESULT (or EVENT) payload, as autobahn maps it.

    ``[]`` -> ``None``; ``[x]`` -> ``x``; anything else -> :class:`CallResult`.
    A wampy callee answers ``[x]`` plus ``{"message": x, "meta": {...}}``: that is ``x`` too.
    """
    if kwargs:
        if len(args) == 1 and kwargs.keys() == {"message", "meta"} and kwargs["message"] == args[0]:
            return args[0]
        return CallResult(tuple(args), kwargs)
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return CallResult(tuple(args))


def yield_payload(value: t.Any) -> tuple[list[t.Any], dict[str, t.Any]]:
    """The ``(args, kwargs)`` a procedure's return value is sent as."""
    if isinstance(value, CallResult):
        return list(value.args), dict(value.kwargs)
    return [value], {}


@dataclasses.dataclass(frozen=True)
class InvocationDetails:
    """What a procedure may know about the call it is answering.

    ``caller``, ``caller_authid`` and ``caller_authrole`` are set only when the
    router discloses the caller (Crossbar: ``"disclose": {"caller": true}`` in
    the caller's role). ``progress`` is a callable sending a progressive result
    when the caller asked for them, else ``None`` (autobahn's convention).
    """

    procedure: str
    registration: int
    request_id: int
    caller: int | None = None
    caller_authid: str | None = None
    caller_authrole: str | None = None
    receive_progress: bool = False
    timeout: float | None = None
    progress: t.Callable[..., None] | None = None
    raw: dict[str, t.Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class EventDetails:
    """What a subscriber may know about the event it got (publisher when disclosed)."""

    topic: str
    subscription: int
    publication: int
    publisher: int | None = None
    publisher_authid: str | None = None
    publisher_authrole: str | None = None
    raw: dict[str, t.Any] = dataclasses.field(default_factory=dict, repr=False)


# -- actions -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Send:
    """Write this message to the router."""

    message: list[t.Any]


@dataclasses.dataclass(frozen=True)
class Joined:
    """WELCOME: the session is established."""

    session_id: int
    details: dict[str, t.Any]


@dataclasses.dataclass(frozen=True)
class Closed:
    """The session ended. ``pending`` holds the tokens of requests that will never be answered."""

    reason: str
    message: str
    aborted: bool
    pending: tuple[t.Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    """RESULT for a call; ``progress`` is true for a progressive (non-final) result."""

    token: t.Any
    args: list[t.Any]
    kwargs: dict[str, t.Any]
    progress: bool = False


@dataclasses.dataclass(frozen=True)
class Failed:
    """ERROR answering one of our requests."""

    token: t.Any
    error: str
    args: list[t.Any]
    kwargs: dict[str, t.Any]


@dataclasses.dataclass(frozen=True)
class Registered:
    token: t.Any
    registration_id: int


@dataclasses.dataclass(frozen=True)
class Unregistered:
    token: t.Any


@dataclasses.dataclass(frozen=True)
class Subscribed:
    token: t.Any
    subscription_id: int


@dataclasses.dataclass(frozen=True)
class Unsubscribed:
    token: t.Any


@dataclasses.dataclass(frozen=True)
class Published:
    token: t.Any
    publication_id: int


@dataclasses.dataclass(frozen=True)
class Invoke:
    """INVOCATION of the procedure registered with ``handler`` (the register token)."""

    request_id: int
    handler: t.Any
    args: list[t.Any]
    kwargs: dict[str, t.Any]
    details: InvocationDetails


@dataclasses.dataclass(frozen=True)
class Interrupt:
    """INTERRUPT: the caller canceled invocation ``request_id``; stop working on it."""

    request_id: int
    mode: str


@dataclasses.dataclass(frozen=True)
class Deliver:
    """EVENT for a subscription, to every handler (subscribe token) on it."""

    handlers: tuple[t.Any, ...]
    args: list[t.Any]
    kwargs: dict[str, t.Any]
    details: EventDetails


@dataclasses.dataclass(frozen=True)
class Revoked:
    """The router removed a registration or subscription by itself (e.g. a meta API kill)."""

    kind: str  # "registration" or "subscription"
    tokens: tuple[t.Any, ...]
    reason: str | None


Action = t.Union[Send, Joined, Closed, Result, Failed, Registered, Unregistered, Subscribed,
                 Unsubscribed, Published, Invoke, Interrupt, Deliver, Revoked]
