"""Sans-IO core of the server-side WAMP peer: one WAMP session's bookkeeping.

Theory of operation
-------------------
:class:`PeerCore` is the state of one WAMP session, with no sockets, no
greenlets and no clock. The IO layer
(:mod:`flask_wamp_bridge.wamp.peer_connection`) feeds it every decoded message
from the router with :meth:`PeerCore.receive`, which returns a list of actions
(:mod:`flask_wamp_bridge.wamp.session_events`): ``Send`` (a message to write
back, e.g. the AUTHENTICATE answering a CHALLENGE) and events the IO layer acts
on (``Joined``, ``Result``, ``Invoke``, ...). Requests we start
(:meth:`~PeerCore.call`, :meth:`~PeerCore.register`, ...) take an opaque
``token`` (the IO layer's waiter) and return ``(request_id, message)``; the
answer for that request id comes back as an event carrying the same token.

States: ``CLOSED -> JOINING -> ESTABLISHED -> CLOSING -> CLOSED``. A message
that breaks the protocol (a RESULT for a request we never made, a message the
state does not allow) raises :class:`~flask_wamp_bridge.errors.RemoteProtocolError`;
the IO layer then calls :meth:`PeerCore.abort` and drops the connection.

Messages are plain lists (see :mod:`flask_wamp_bridge.wamp.messages`): they are
cheap to build and inspect, and unlike wampproto 0.4.0 they cover CANCEL,
INTERRUPT and progressive results.
"""

from __future__ import annotations

import enum
import typing as t

from ..errors import AuthError
from ..errors import LocalProtocolError
from ..errors import NotConnected
from ..errors import RemoteProtocolError
from .messages import MAX_ID
from .messages import MessageType
from .session_events import Action
from .session_events import Closed
from .session_events import Deliver
from .session_events import EventDetails
from .session_events import Failed
from .session_events import Interrupt
from .session_events import InvocationDetails
from .session_events import Invoke
from .session_events import Joined
from .session_events import Published
from .session_events import Registered
from .session_events import Result
from .session_events import Revoked
from .session_events import Send
from .session_events import Subscribed
from .session_events import Unregistered
from .session_events import Unsubscribed

if t.TYPE_CHECKING:  # pragma: no cover
    from .client_auth import ClientAuth

__all__ = [
    "PeerState",
    "PeerCore",
    "CLIENT_ROLES",
    "invocation_error_message",
    "backoff_delay",
]

# Plain ints of :class:`MessageType` (the dispatch tables and hot paths compare ints).
_HELLO = int(MessageType.HELLO)
_WELCOME = int(MessageType.WELCOME)
_ABORT = int(MessageType.ABORT)
_CHALLENGE = int(MessageType.CHALLENGE)
_AUTHENTICATE = int(MessageType.AUTHENTICATE)
_GOODBYE = int(MessageType.GOODBYE)
_ERROR = int(MessageType.ERROR)
_PUBLISH = int(MessageType.PUBLISH)
_PUBLISHED = int(MessageType.PUBLISHED)
_SUBSCRIBE = int(MessageType.SUBSCRIBE)
_SUBSCRIBED = int(MessageType.SUBSCRIBED)
_UNSUBSCRIBE = int(MessageType.UNSUBSCRIBE)
_UNSUBSCRIBED = int(MessageType.UNSUBSCRIBED)
_EVENT = int(MessageType.EVENT)
_CALL = int(MessageType.CALL)
_CANCEL = int(MessageType.CANCEL)
_RESULT = int(MessageType.RESULT)
_REGISTER = int(MessageType.REGISTER)
_REGISTERED = int(MessageType.REGISTERED)
_UNREGISTER = int(MessageType.UNREGISTER)
_UNREGISTERED = int(MessageType.UNREGISTERED)
_INVOCATION = int(MessageType.INVOCATION)
_INTERRUPT = int(MessageType.INTERRUPT)
_YIELD = int(MessageType.YIELD)

#: Roles and features announced in HELLO. Crossbar sends INTERRUPT only to a
#: callee announcing ``call_canceling``.
CLIENT_ROLES: dict[str, t.Any] = {
    "caller": {"features": {"call_canceling": True, "call_timeout": True, "progressive_call_results": True,
                            "caller_identification": True}},
    "callee": {"features": {"call_canceling": True, "progressive_call_results": True,
                            "caller_identification": True, "pattern_based_registration": True,
                            "shared_registration": True}},
    "publisher": {"features": {"publisher_exclusion": True, "publisher_identification": True,
                               "subscriber_blackwhite_listing": True}},
    "subscriber": {"features": {"pattern_based_subscription": True, "publisher_identification": True}},
}

#: Answers to requests we cancelled (or gave up on) that we still expect; capped.
_MAX_FORGOTTEN = 10_000


class PeerState(enum.Enum):
    CLOSED = "closed"
    JOINING = "joining"
    ESTABLISHED = "established"
    CLOSING = "closing"


def backoff_delay(attempt: int, *, initial: float, maximum: float, factor: float, rand: float) -> float:
    """Delay before reconnect ``attempt`` (0-based): exponential with "equal jitter".

    ``rand`` is a uniform random number in [0, 1) supplied by the caller; the
    delay lies in ``[d/2, d)`` where ``d = min(maximum, initial * factor**attempt)``.
    """
    base = min(maximum, initial * factor ** min(attempt, 64))
    return base / 2 + base / 2 * rand


# -- the core ----------------------------------------------------------------

# pending kinds; the int is the request type an ERROR names
_KIND_CALL, _KIND_PUBLISH, _KIND_REGISTER, _KIND_UNREGISTER = _CALL, _PUBLISH, _REGISTER, _UNREGISTER
_KIND_SUBSCRIBE, _KIND_UNSUBSCRIBE = _SUBSCRIBE, _UNSUBSCRIBE


class PeerCore:
    """Bookkeeping for one WAMP session of a client peer (caller, callee, publisher, subscriber).

    :param realm: the realm to join.
    :param auth: how to authenticate (see :mod:`flask_wamp_bridge.wamp.client_auth`).
    :param roles: roles and features for HELLO (default :data:`CLIENT_ROLES`).
    """

    def __init__(self, realm: str, auth: ClientAuth, *, roles: dict[str, t.Any] | None = None,
                 agent: str = "flask_wamp_bridge") -> None:
        self.realm = realm
        self.auth = auth
        self.roles = roles if roles is not None else CLIENT_ROLES
        self.agent = agent
        self.state = PeerState.CLOSED
        self.session_id: int | None = None
        self.welcome_details: dict[str, t.Any] = {}
        self._next_id = 1
        # request id -> (kind, token, payload); payload is the registration /
        # subscription id for unregister / unsubscribe, the URI for register /
        # subscribe, else None
        self._pending: dict[int, tuple[int, t.Any, t.Any]] = {}
        self._forgotten: dict[int, None] = {}
        self._registrations: dict[int, tuple[t.Any, str]] = {}  # registration id -> (token, uri)
        self._subscriptions: dict[int, tuple[list[t.Any], str]] = {}  # subscription id -> (tokens, topic)
        self._invocations: dict[int, int] = {}  # invocation request id -> registration id

    # -- session ------------------------------------------------------------

    @property
    def is_established(self) -> bool:
        return self.state is PeerState.ESTABLISHED

    def hello(self) -> list[t.Any]:
        """Start joining: the HELLO to send first on a new connection."""
        if self.state is not PeerState.CLOSED:
            raise LocalProtocolError(f"HELLO in state {self.state.value}: use a new PeerCore per connection")
        self._reset()
        self.state = PeerState.JOINING
        details: dict[str, t.Any] = {"roles": self.roles, "agent": self.agent}
        if self.auth.authid is not None:
            details["authid"] = self.auth.authid
        details["authmethods"] = list(self.auth.authmethods)
        if self.auth.authextra:
            details["authextra"] = dict(self.auth.authextra)
        return [_HELLO, self.realm, details]

    def goodbye(self, reason: str = "wamp.close.close_realm", message: str | None = None) -> list[t.Any]:
        """Leave the session: the GOODBYE to send; the router's reply ends it (:class:`Closed`)."""
        if self.state is not PeerState.ESTABLISHED:
            raise NotConnected("cannot say GOODBYE: the WAMP session is not established")
        self.state = PeerState.CLOSING
        return [_GOODBYE, {"message": message} if message else {}, reason]

    def abort(self, reason: str, message: str) -> list[Action]:
        """Give up on the session at once (protocol violation): ABORT to send plus :class:`Closed`."""
        actions: list[Action] = []
        if self.state is not PeerState.CLOSED:
            actions.append(Send([_ABORT, {"message": message}, reason]))
        actions.append(self._close(reason, message, aborted=True))
        return actions

    def connection_lost(self, message: str = "the connection to the router was lost") -> Closed:
        """The transport is gone: :class:`Closed` with every pending token."""
        return self._close("wamp.close.transport_lost", message, aborted=True)

    def _close(self, reason: str, message: str, *, aborted: bool) -> Closed:
        pending = tuple(entry[1] for entry in self._pending.values() if entry[1] is not None)
        self.state = PeerState.CLOSED
        self._reset()
        return Closed(reason, message, aborted, pending)

    def _reset(self) -> None:
        self.session_id = None
        self._next_id = 1
        self._pending.clear()
        self._forgotten.clear()
        self._registrations.clear()
        self._subscriptions.clear()
        self._invocations.clear()

    # -- outgoing requests ----------------------------------------------------

    def _new_id(self) -> int:
        request_id = self._next_id
        while request_id in self._pending or request_id in self._forgotten:  # only after wrapping 2**53
            request_id = request_id + 1 if request_id < MAX_ID else 1
        self._next_id = request_id + 1 if request_id < MAX_ID else 1
        return request_id

    def _check_established(self) -> None:
        if self.state is not PeerState.ESTABLISHED:
            raise NotConnected(
                "the WAMP session is not established (router down, reconnecting, or closing); "
                "retry later or check that the router is running"
            )

    def call(self, token: t.Any, procedure: str, args: t.Sequence[t.Any] = (),
             kwargs: dict[str, t.Any] | None = None,
             options: dict[str, t.Any] | None = None) -> tuple[int, list[t.Any]]:
        """Start a call; its :class:`Result`/:class:`Failed` will carry ``token``."""
        self._check_established()
        request_id = self._new_id()
        self._pending[request_id] = (_KIND_CALL, token, None)
        return request_id, _with_payload([_CALL, request_id, options or {}, procedure], args, kwargs)

    def cancel(self, request_id: int, mode: str = "killnowait") -> list[t.Any] | None:
        """Cancel a pending call: the CANCEL to send, or ``None`` when it is no longer pending.

        The call's token is dropped at once: whatever the router answers later is ignored.
        """
        entry = self._pending.get(request_id)
        if entry is None or entry[0] != _KIND_CALL:
            return None
        self.forget(request_id)
        if self.state is not PeerState.ESTABLISHED:
            return None
        return [_CANCEL, request_id, {"mode": mode}]

    def forget(self, request_id: int) -> None:
        """Stop waiting for the answer to a request; later answers are silently dropped.

        The last :data:`_MAX_FORGOTTEN` forgotten ids are remembered for the session.
        """
        if self._pending.pop(request_id, None) is None:
            return
        self._forgotten[request_id] = None
        if len(self._forgotten) > _MAX_FORGOTTEN:
            del self._forgotten[next(iter(self._forgotten))]

    def publish(self, token: t.Any, topic: str, args: t.Sequence[t.Any] = (),
                kwargs: dict[str, t.Any] | None = None,
                options: dict[str, t.Any] | None = None) -> tuple[int, list[t.Any]]:
        """Publish; with ``options["acknowledge"]`` the :class:`Published` carries ``token``."""
        self._check_established()
        options = options or {}
        request_id = self._new_id()
        if options.get("acknowledge"):
            self._pending[request_id] = (_KIND_PUBLISH, token, None)
        return request_id, _with_payload([_PUBLISH, request_id, options, topic], args, kwargs)

    def register(self, token: t.Any, procedure: str,
                 options: dict[str, t.Any] | None = None) -> tuple[int, list[t.Any]]:
        """Register ``procedure``; its INVOCATIONs will carry ``token`` as ``handler``."""
        self._check_established()
        request_id = self._new_id()
        self._pending[request_id] = (_KIND_REGISTER, token, procedure)
        return request_id, [_REGISTER, request_id, options or {}, procedure]

    def unregister(self, token: t.Any, registration_id: int) -> tuple[int, list[t.Any]]:
        self._check_established()
        if registration_id not in self._registrations:
            raise LocalProtocolError(f"no registration {registration_id} in this session")
        request_id = self._new_id()
        self._pending[request_id] = (_KIND_UNREGISTER, token, registration_id)
        return request_id, [_UNREGISTER, request_id, registration_id]

    def subscribe(self, token: t.Any, topic: str,
                  options: dict[str, t.Any] | None = None) -> tuple[int, list[t.Any]]:
        """Subscribe to ``topic``; its EVENTs will list ``token`` among the handlers."""
        self._check_established()
        request_id = self._new_id()
        self._pending[request_id] = (_KIND_SUBSCRIBE, token, topic)
        return request_id, [_SUBSCRIBE, request_id, options or {}, topic]

    def unsubscribe(self, token: t.Any, subscription_id: int) -> tuple[int, list[t.Any]] | None:
        """Remove ``token`` from a subscription; the UNSUBSCRIBE only once no handler is left.

        Returns ``None`` (nothing to send, nothing to wait for) while other
        handlers remain on the subscription.
        """
        self._check_established()
        entry = self._subscriptions.get(subscription_id)
        if entry is None or token not in entry[0]:
            raise LocalProtocolError(f"no subscription {subscription_id} for this handler in this session")
        if len(entry[0]) > 1:
            entry[0].remove(token)
            return None
        request_id = self._new_id()
        self._pending[request_id] = (_KIND_UNSUBSCRIBE, token, subscription_id)
        return request_id, [_UNSUBSCRIBE, request_id, subscription_id]

    # -- answering invocations --------------------------------------------------

    def yield_(self, request_id: int, args: t.Sequence[t.Any] = (), kwargs: dict[str, t.Any] | None = None,
               *, progress: bool = False) -> list[t.Any] | None:
        """The YIELD for an invocation, or ``None`` when it was interrupted or the session is gone."""
        if request_id not in self._invocations or self.state is PeerState.CLOSED:
            return None
        if progress:
            return _with_payload([_YIELD, request_id, {"progress": True}], args, kwargs)
        del self._invocations[request_id]
        return _with_payload([_YIELD, request_id, {}], args, kwargs)

    def invocation_error(self, request_id: int, error: str, args: t.Sequence[t.Any] = (),
                         kwargs: dict[str, t.Any] | None = None) -> list[t.Any] | None:
        """The ERROR answering an invocation, or ``None`` when no answer is expected any more."""
        if self._invocations.pop(request_id, None) is None or self.state is PeerState.CLOSED:
            return None
        return invocation_error_message(request_id, error, args, kwargs)

    def invocation_active(self, request_id: int) -> bool:
        """Whether invocation ``request_id`` still awaits our answer (not interrupted, session alive)."""
        return request_id in self._invocations and self.state is not PeerState.CLOSED

    # -- incoming -----------------------------------------------------------------

    def receive(self, message: list[t.Any]) -> list[Action]:
        """Handle one message from the router (already shape-checked by :mod:`~flask_wamp_bridge.wamp.messages`)."""
        code = message[0]
        state = self.state
        if state is PeerState.ESTABLISHED or state is PeerState.CLOSING:
            handler = _ESTABLISHED_HANDLERS.get(code)
            if handler is not None:
                return handler(self, message)
        elif state is PeerState.JOINING:
            if code == _WELCOME:
                return self._on_welcome(message)
            if code == _CHALLENGE:
                return self._on_challenge(message)
            if code == _ABORT:
                return [self._close(message[2], _message_of(message[1]), aborted=True)]
        else:
            raise RemoteProtocolError(f"{_name(code)} received with no session; a new connection starts with HELLO")
        raise RemoteProtocolError(f"{_name(code)} is not allowed while the session is {state.value}")

    def _on_welcome(self, message: list[t.Any]) -> list[Action]:
        self.state = PeerState.ESTABLISHED
        self.session_id = message[1]
        self.welcome_details = message[2]
        return [Joined(message[1], message[2])]

    def _on_challenge(self, message: list[t.Any]) -> list[Action]:
        method, extra = message[1], message[2]
        try:
            signature = self.auth.respond(method, extra)
        except AuthError as exc:
            return self.abort("wamp.error.authentication_failed", str(exc))
        return [Send([_AUTHENTICATE, signature, {}])]

    def _on_goodbye(self, message: list[t.Any]) -> list[Action]:
        if self.state is PeerState.CLOSING:  # the router's reply to our GOODBYE
            return [self._close(message[2], _message_of(message[1]), aborted=False)]
        closed = self._close(message[2], _message_of(message[1]), aborted=False)
        return [Send([_GOODBYE, {}, "wamp.close.goodbye_and_out"]), closed]

    def _on_abort(self, message: list[t.Any]) -> list[Action]:
        return [self._close(message[2], _message_of(message[1]), aborted=True)]

    def _take(self, request_id: int, kind: int, name: str) -> tuple[int, t.Any, t.Any] | None:
        entry = self._pending.pop(request_id, None)
        if entry is None:
            if request_id in self._forgotten:
                # kept after a first answer: Crossbar sends a second ERROR for a
                # canceled call when the callee leaves later
                return None
            raise RemoteProtocolError(f"{name} for request {request_id}, which this session never sent or "
                                      "already got an answer for")
        if entry[0] != kind:
            self._pending[request_id] = entry
            raise RemoteProtocolError(f"{name} for request {request_id}, which is a {_name(entry[0])}")
        return entry

    def _on_result(self, message: list[t.Any]) -> list[Action]:
        request_id = message[1]
        progress = bool(message[2].get("progress"))
        if progress:
            entry = self._pending.get(request_id)
            if entry is None or entry[0] != _KIND_CALL:
                if request_id in self._forgotten:
                    return []
                raise RemoteProtocolError(f"progressive RESULT for request {request_id}, which is not a "
                                          "pending call of this session")
        else:
            entry = self._take(request_id, _KIND_CALL, "RESULT")
            if entry is None:
                return []
        n = len(message)
        return [Result(entry[1], message[3] if n > 3 else [], message[4] if n > 4 else {}, progress)]

    def _on_error(self, message: list[t.Any]) -> list[Action]:
        request_type, request_id = message[1], message[2]
        if request_type not in (_CALL, _PUBLISH, _REGISTER, _UNREGISTER, _SUBSCRIBE, _UNSUBSCRIBE):
            raise RemoteProtocolError(f"ERROR for a {_name(request_type)}, which a client never sends")
        entry = self._take(request_id, request_type, "ERROR")
        if entry is None:
            return []
        n = len(message)
        return [Failed(entry[1], message[4], message[5] if n > 5 else [], message[6] if n > 6 else {})]

    def _on_registered(self, message: list[t.Any]) -> list[Action]:
        entry = self._take(message[1], _KIND_REGISTER, "REGISTERED")
        if entry is None:
            return []
        self._registrations[message[2]] = (entry[1], entry[2])
        return [Registered(entry[1], message[2])]

    def _on_unregistered(self, message: list[t.Any]) -> list[Action]:
        if message[1] == 0:  # router-initiated: details name the registration
            details = message[2] if len(message) > 2 else {}
            registration = details.get("registration")
            gone = self._registrations.pop(registration, None) if type(registration) is int else None
            if gone is None:
                return []
            self._drop_invocations_of(registration)
            return [Revoked("registration", (gone[0],), details.get("reason"))]
        entry = self._take(message[1], _KIND_UNREGISTER, "UNREGISTERED")
        if entry is None:
            return []
        self._registrations.pop(entry[2], None)
        return [Unregistered(entry[1])]

    def _drop_invocations_of(self, registration_id: t.Any) -> None:
        for request_id, reg in list(self._invocations.items()):
            if reg == registration_id:
                del self._invocations[request_id]

    def _on_subscribed(self, message: list[t.Any]) -> list[Action]:
        entry = self._take(message[1], _KIND_SUBSCRIBE, "SUBSCRIBED")
        if entry is None:
            return []
        existing = self._subscriptions.get(message[2])
        if existing is None:
            self._subscriptions[message[2]] = ([entry[1]], entry[2])
        elif entry[1] not in existing[0]:
            existing[0].append(entry[1])
        return [Subscribed(entry[1], message[2])]

    def _on_unsubscribed(self, message: list[t.Any]) -> list[Action]:
        if message[1] == 0:
            details = message[2] if len(message) > 2 else {}
            subscription = details.get("subscription")
            gone = self._subscriptions.pop(subscription, None) if type(subscription) is int else None
            if gone is None:
                return []
            return [Revoked("subscription", tuple(gone[0]), details.get("reason"))]
        entry = self._take(message[1], _KIND_UNSUBSCRIBE, "UNSUBSCRIBED")
        if entry is None:
            return []
        self._subscriptions.pop(entry[2], None)
        return [Unsubscribed(entry[1])]

    def _on_published(self, message: list[t.Any]) -> list[Action]:
        entry = self._take(message[1], _KIND_PUBLISH, "PUBLISHED")
        if entry is None:
            return []
        return [Published(entry[1], message[2])]

    def _on_invocation(self, message: list[t.Any]) -> list[Action]:
        request_id, registration_id, raw = message[1], message[2], message[3]
        registration = self._registrations.get(registration_id)
        if registration is None:
            # Crossbar may still route to a registration we just unregistered:
            # answer rather than break the session.
            return [Send(invocation_error_message(request_id, "wamp.error.no_such_registration"))]
        if self.state is PeerState.CLOSING:
            return [Send(invocation_error_message(request_id, "wamp.error.canceled"))]
        if request_id in self._invocations:
            raise RemoteProtocolError(f"INVOCATION {request_id} while an invocation with that id is running")
        self._invocations[request_id] = registration_id
        n = len(message)
        details = InvocationDetails(
            procedure=raw.get("procedure") or registration[1],
            registration=registration_id,
            request_id=request_id,
            caller=raw.get("caller"),
            caller_authid=raw.get("caller_authid"),
            caller_authrole=raw.get("caller_authrole"),
            receive_progress=bool(raw.get("receive_progress")),
            timeout=raw.get("timeout"),
            raw=raw,
        )
        return [Invoke(request_id, registration[0], message[4] if n > 4 else [], message[5] if n > 5 else {},
                       details)]

    def _on_interrupt(self, message: list[t.Any]) -> list[Action]:
        request_id = message[1]
        if self._invocations.pop(request_id, None) is None:
            return []  # already answered: the INTERRUPT crossed our YIELD
        mode = message[2].get("mode", "kill")
        # "kill": the router waits for this ERROR to answer the caller;
        # "killnowait": it answered already, and the ERROR lets it drop the
        # invocation (else Crossbar keeps it until we leave)
        return [Interrupt(request_id, mode), Send(invocation_error_message(request_id, "wamp.error.canceled"))]

    def _on_event(self, message: list[t.Any]) -> list[Action]:
        subscription = self._subscriptions.get(message[1])
        if subscription is None or self.state is PeerState.CLOSING:
            return []  # EVENTs may still be in flight after UNSUBSCRIBE
        raw = message[3]
        n = len(message)
        details = EventDetails(
            topic=raw.get("topic") or subscription[1],
            subscription=message[1],
            publication=message[2],
            publisher=raw.get("publisher"),
            publisher_authid=raw.get("publisher_authid"),
            publisher_authrole=raw.get("publisher_authrole"),
            raw=raw,
        )
        return [Deliver(tuple(subscription[0]), message[4] if n > 4 else [], message[5] if n > 5 else {}, details)]


_ESTABLISHED_HANDLERS: dict[int, t.Callable[[PeerCore, list[t.Any]], list[Action]]] = {
    _RESULT: PeerCore._on_result,
    _ERROR: PeerCore._on_error,
    _INVOCATION: PeerCore._on_invocation,
    _INTERRUPT: PeerCore._on_interrupt,
    _EVENT: PeerCore._on_event,
    _PUBLISHED: PeerCore._on_published,
    _REGISTERED: PeerCore._on_registered,
    _UNREGISTERED: PeerCore._on_unregistered,
    _SUBSCRIBED: PeerCore._on_subscribed,
    _UNSUBSCRIBED: PeerCore._on_unsubscribed,
    _GOODBYE: PeerCore._on_goodbye,
    _ABORT: PeerCore._on_abort,
}


def invocation_error_message(request_id: int, error: str, args: t.Sequence[t.Any] = (),
                             kwargs: dict[str, t.Any] | None = None) -> list[t.Any]:
    """An ERROR answering INVOCATION ``request_id`` (no state involved)."""
    return _with_payload([_ERROR, _INVOCATION, request_id, {}, error], args, kwargs)


def _with_payload(message: list[t.Any], args: t.Sequence[t.Any], kwargs: dict[str, t.Any] | None) -> list[t.Any]:
    if kwargs:
        message.append(list(args))
        message.append(kwargs)
    elif args:
        message.append(args if type(args) is list else list(args))
    return message


def _message_of(details: dict[str, t.Any]) -> str:
    message = details.get("message")
    return message if isinstance(message, str) else ""


def _name(code: int) -> str:
    try:
        return MessageType(code).name
    except ValueError:
        return f"message type {code}"
