"""The sans-IO relay between one browser's WAMP session and the router.

Theory of operation
===================

A :class:`Relay` sits between two WebSockets that the IO layer owns: the
browser's (the *client*) and one upstream connection to the router, opened for
this browser alone. It never touches a socket, a greenlet or the clock. The IO
layer feeds it what happened and carries out the actions it returns, in order:

====================================  =======================================
input                                 meaning
====================================  =======================================
``from_client(data)``                 one WebSocket message from the browser
``from_router(data)``                 one WebSocket message from the router
``client_closed()``                   the browser's socket ended
``router_closed()``                   the upstream ended (or could not connect)
``router_queued(now)``                the upstream connect waits for its turn
``router_connecting(now)``            the upstream connect starts (its turn came)
``router_connected(local_address)``   the upstream is open: the bridge's end of it
``too_big_for_router(data, exc)``     the upstream did not take one message: longer than the router accepts
``tick(now)``                         time passed: the only clock input
``shutdown(code)``                    the worker is stopping (1001) or reloading
====================================  =======================================

Actions (:mod:`~flask_wamp_bridge.bridge.relay_events`) are
:class:`~.relay_events.ConnectRouter` (open the upstream, with the browser's subprotocol),
:class:`~.relay_events.SendToRouter`, :class:`~.relay_events.SendToClient` and :class:`~.relay_events.Close`
(end both legs; the browser gets ``code``/``reason``). After a ``Close`` the
relay is :attr:`State.CLOSED <.relay_events.State.CLOSED>`: data fed to it then raises
:class:`~flask_wamp_bridge.errors.LocalProtocolError` (as h11 does), while
the ``*_closed``/``tick``/``shutdown`` inputs just return no actions, so the
IO layer's two directions can race to report the end.

States::

    AWAIT_HELLO --HELLO ok--> AUTHENTICATING --WELCOME--> ESTABLISHED --GOODBYE--> CLOSING
         |                        |  CHALLENGE(ticket) answered here,  |                |
         |                        |  never forwarded                   |                |
         +------------------------+------------------------------------+----------------+--> CLOSED

1. AWAIT_HELLO. The socket is accepted; the identity was frozen in the upgrade
   request. Only a HELLO for the configured realm is valid. Anything else
   (another message, bad JSON, a binary frame on ``wamp.2.json``, a HELLO past
   the session's payload bounds or holding a value decoding refuses) gets ABORT
   ``wamp.error.protocol_violation`` and close 1002 (1003 for the wrong frame
   type), and nothing reaches the router. The router is not even connected
   yet: :class:`~.relay_events.ConnectRouter` comes only with a valid HELLO, so junk and
   refused sessions cost no upstream connection. Without an identity (no
   login, anonymous access off) the HELLO gets ABORT
   ``wamp.error.not_authorized``; a browser cannot read the status of a refused
   upgrade, which is why the socket was accepted at all.

2. The HELLO is rewritten, not re-marshalled through a WAMP library: the
   decoded list is kept whole, and in its details ``authid``, ``authrole``,
   ``authmethods`` and ``authextra`` are replaced by the server's (``authmethods``
   is ``["ticket"]``); ``roles``, ``agent`` and unknown keys stay.

3. AUTHENTICATING. The router must answer with ``CHALLENGE("ticket")``, which
   the relay answers itself with a fresh signed ticket (``ticket_signer``, bound
   to the upstream's local address from ``router_connected``) and
   swallows: the browser never sees a ticket. Then WELCOME, which must name the
   identity's authid (a router whose authenticator returned only a role would
   keep the HELLO's authid; that misconfiguration is refused), is forwarded
   verbatim. A router ABORT is forwarded and the session closes (1008). The
   browser must be silent here, except for an ABORT of its own.

4. ESTABLISHED. The browser stays untrusted: each of its messages is decoded
   within payload bounds and judged by the per-type table of
   :mod:`flask_wamp_bridge.bridge.checks` (types, shapes, URIs, an options
   allow-list, request ids, rate and limits). Accepted bytes go upstream
   unchanged unless an option had to be dropped (then re-encoded); a refused
   request is answered by the relay itself with an ERROR; a protocol violation
   gets ABORT ``wamp.error.protocol_violation``, GOODBYE upstream and close
   1002; sustained abuse closes with 1008. A browser never sends
   session-level messages again (a second HELLO is a protocol violation:
   Crossbar would answer it with a second challenge). The router's messages get
   a cheap look at their leading integers (type, request ids) to track answers
   and INVOCATIONs; its ABORT, GOODBYE and ERRORs of the router's own
   ``wamp.error.*`` URIs reach the browser with the URI only, the text replaced
   by a generic one (unless ``debug``; the text goes to the log). GOODBYE in
   either direction starts a clean close.

5. CLOSING. One side said GOODBYE; the other's GOODBYE reply is forwarded and
   both legs close with 1000. Other messages are dropped (the spec says to
   ignore them). ``goodbye_timeout`` bounds the wait.

Every CALL gets exactly one answer. A forwarded CALL has a deadline (its own
``timeout`` option in milliseconds, at most ``call_timeout``); ``tick`` answers
a call past it with ERROR ``wamp.error.canceled`` and sends CANCEL
(``killnowait``) upstream, and drops the router's late answer
(:mod:`~flask_wamp_bridge.bridge.call_deadlines`). Every end the server decides
(:mod:`~flask_wamp_bridge.bridge.faults`, abuse included) answers the calls in
flight before its GOODBYE or ABORT. Whatever ended the browser's side, the
router's session ends with GOODBYE before its transport closes
(``Close.router_goodbye``: the IO layer waits briefly for the reply), so the
router detaches it first. A router ABORT of the login that is the server's
trouble (:data:`~flask_wamp_bridge.bridge.faults.LOGIN_ABORTS`: no
authenticator yet, busy, a ticket it cannot check) reaches the page as a
retryable ABORT with close 1013.

Crossbar ignores messages before HELLO and never times out a login, so the
relay keeps its own deadline: ``login_timeout`` seconds from the moment the
socket was accepted to WELCOME (this also bounds a browser that never sends a
HELLO), not counting the time the upstream connect waited for its turn in a
login storm (the IO layer bounds that wait). Close codes: 1000 normal, 1001 shutdown, 1002 protocol error, 1003
wrong frame type, 1008 policy/auth, 1011 upstream failure (the browser should
reconnect later).
"""

from __future__ import annotations

import dataclasses
import typing as t

from .. import metrics_sink
from ..errors import BridgeError
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from ..errors import MessageTooBig
from ..errors import PayloadOutOfBounds
from ..errors import ProtocolError
from ..errors import RemoteProtocolError
from ..errors import TransportError
from ..settings import DEFAULTS
from ..wamp.heads import PEEKERS
from ..wamp.heads import Head
from ..wamp.heads import head_of
from ..wamp.messages import MessageType
from ..wamp.messages import Serializer
from ..wamp.translate import decode
from . import faults
from .call_deadlines import CANCEL_MODE
from .call_deadlines import CallDeadlines
from .call_deadlines import call_deadline_error
from .checks import LIMIT_ERROR
from .checks import Limits
from .checks import SessionChecks
from .checks import Shared
from .checks import Verdict
from .identity import Identity
from .identity import rewrite_hello
from .relay_events import Action
from .relay_events import Close
from .relay_events import ConnectRouter
from .relay_events import Data
from .relay_events import Notice
from .relay_events import RouterRefusal
from .relay_events import SendToClient
from .relay_events import SendToRouter
from .relay_events import State
from .router_text import sanitized
from .router_text import welcome_details
from .tickets import peer_descriptor
from .upstream_codec import UpstreamCodec

__all__ = [
    "Relay",
    "CALLS_IN_FLIGHT_ERROR",
    "TOO_MANY_SESSIONS",
    "UNTRANSLATABLE",
]

#: The ERROR URI a CALL over the in-flight limit gets (the call never reached the router).
CALLS_IN_FLIGHT_ERROR = LIMIT_ERROR
#: The ERROR URI of a message one leg's serializer cannot carry (as a message past its bounds).
UNTRANSLATABLE = "wamp.error.invalid_argument"
#: The ABORT URI of a HELLO past the sessions a user or an address may hold in a worker.
TOO_MANY_SESSIONS = "wamp_bridge.error.too_many_sessions"

_HELLO = int(MessageType.HELLO)
_WELCOME = int(MessageType.WELCOME)
_ABORT = int(MessageType.ABORT)
_CHALLENGE = int(MessageType.CHALLENGE)
_AUTHENTICATE = int(MessageType.AUTHENTICATE)
_GOODBYE = int(MessageType.GOODBYE)
_ERROR = int(MessageType.ERROR)
_CALL = int(MessageType.CALL)
_CANCEL = int(MessageType.CANCEL)
_RESULT = int(MessageType.RESULT)
_EVENT = int(MessageType.EVENT)
_INVOCATION = int(MessageType.INVOCATION)
_PUBLISH = int(MessageType.PUBLISH)
_YIELD = int(MessageType.YIELD)
#: Types that end or restart a session: handled specially after WELCOME.
_SESSION_TYPES = frozenset({_HELLO, _WELCOME, _ABORT, _CHALLENGE, _AUTHENTICATE, _GOODBYE})


class Relay:
    """The WAMP state machine of one relayed browser session (see the module docs).

    :param identity: who the browser is (frozen in the upgrade request), or
        ``None`` to refuse its HELLO with ``wamp.error.not_authorized``.
    :param realm: the only realm a HELLO may name.
    :param serializer: the serializer of the negotiated subprotocol (the browser's leg).
    :param upstream_serializer: the serializer spoken to the router (default: the browser's); messages are
        translated between the two (:mod:`~flask_wamp_bridge.bridge.upstream_codec`): the relay's rules see
        every message in the browser's serializer.
    :param ticket_signer: ``signer(identity, peer) -> ticket``
        (:meth:`~flask_wamp_bridge.bridge.tickets.Tickets.sign`), called when the router challenges, with
        ``peer`` the bridge's end of the upstream in Crossbar's notation (None before :meth:`router_connected`);
        it reads the wall clock itself: the ticket is checked on another host.
    :param now: the current monotonic time (seconds; ``tick`` gets the same clock): the login deadline starts here.
    :param login_timeout: seconds from ``now`` until WELCOME must have happened.
    :param max_calls_in_flight: CALLs that may wait for a result at once;
        ``None`` for no limit (used when ``limits`` is not given).
    :param goodbye_timeout: seconds to wait for the GOODBYE reply.
    :param router_timeout: seconds from the HELLO to the router's first answer,
        its ticket CHALLENGE (the connect timeout); then ABORT
        ``wamp_bridge.error.router_unavailable``, close 1013. After the challenge
        the login deadline holds again (the authenticator may be busy in a storm). None: no such bound.
    :param expires_at: when the Flask session that opened this one ends (the
        clock of ``now``); then :data:`~.faults.SESSION_EXPIRED`. None: never.
    :param limits: the per-message rules' limits (:class:`~flask_wamp_bridge.bridge.checks.Limits`).
    :param shared: what the rules share with the worker (the user's byte bucket, the app's procedures).
    :param refusal: why this session may not open (e.g. too many sessions of the user): its HELLO gets ABORT
        ``wamp_bridge.error.too_many_sessions`` with this text, close 1008.
    :param debug: pass the router's free text (ABORT, GOODBYE, ERROR) to the browser unchanged.
    :param call_timeout: the longest a CALL waits for its answer (seconds; a CALL's own ``timeout`` option may
        be shorter); then the bridge answers ERROR ``wamp.error.canceled`` and sends CANCEL upstream
        (:mod:`~flask_wamp_bridge.bridge.call_deadlines`). None: only calls with their own ``timeout``.
    :param peer_refused: ``peer_refused() -> bool``, asked when the router aborts the login for a missing
        authenticator: True (the router refuses this worker's app peer) ends it with
        :data:`~.faults.PEER_REFUSED` instead of :data:`~.faults.AUTHENTICATOR_MISSING`.
    """

    def __init__(
        self,
        identity: Identity | None,
        realm: str,
        serializer: Serializer,
        ticket_signer: t.Callable[[Identity, str | None], str],
        now: float,
        *,
        login_timeout: float = 10.0,
        max_calls_in_flight: int | None = 100,
        goodbye_timeout: float = 5.0,
        router_timeout: float | None = DEFAULTS["WAMP_BRIDGE_CONNECT_TIMEOUT"],
        expires_at: float | None = None,
        limits: Limits | None = None,
        shared: Shared | None = None,
        refusal: str | None = None,
        debug: bool = False,
        call_timeout: float | None = 60.0,
        upstream_serializer: Serializer | None = None,
        peer_refused: t.Callable[[], bool] = lambda: False,
    ) -> None:
        if limits is None:
            limits = Limits(max_calls_in_flight=max_calls_in_flight)
        max_calls_in_flight = limits.max_calls_in_flight
        if max_calls_in_flight is not None and max_calls_in_flight < 1:
            raise ValueError("max_calls_in_flight must be at least 1, or None for no limit")
        self.identity = identity
        self.realm = realm
        self.serializer = serializer
        #: The serializer spoken to the router.
        self.upstream_serializer = upstream_serializer or serializer
        self._codec = UpstreamCodec(serializer, self.upstream_serializer)
        self._ticket_signer = ticket_signer
        self._peer_refused = peer_refused
        self._router_peer: str | None = None  # the bridge's end of the upstream, once connected
        self._now = now
        self._login_deadline = self._login_full_deadline = now + login_timeout
        self._login_timeout = login_timeout
        self._goodbye_timeout = goodbye_timeout
        self._goodbye_deadline = 0.0
        self._router_timeout = router_timeout
        self._expires_at = expires_at
        self._checks = SessionChecks(serializer, limits, now, shared or Shared())
        self._refusal = refusal
        self._debug = debug
        self._challenged = False
        self._queued_at: float | None = None  # when the upstream connect began waiting for its turn
        self._goodbye_from_client = False
        self._router_owes_goodbye = False  # the relay said GOODBYE upstream; the router's reply has not come
        self._deadlines = CallDeadlines(call_timeout)
        self._binary = serializer.binary
        self._peek = PEEKERS[serializer.name]
        self._state = State.AWAIT_HELLO
        #: Why the session failed (a protocol error of either side, a lost router), or None.
        self.error: BridgeError | None = None
        #: The :class:`~.relay_events.Close` that ended the session, once it has ended.
        self.closed_with: Close | None = None
        #: The WELCOME's session id, once established.
        self.session_id: int | None = None
        #: Why the router refused the login (its ABORT), or None.
        self.router_refusal: RouterRefusal | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def login_deadline(self) -> float:
        """When the login must be complete (the clock of ``now``): the latest an upstream connect may start."""
        return self._login_full_deadline

    @property
    def challenged(self) -> bool:
        """The router has answered the login (its ticket CHALLENGE)."""
        return self._challenged

    @property
    def calls_in_flight(self) -> int:
        """How many of the browser's CALLs are waiting for their result."""
        return len(self._checks.calls)

    # --- inputs -------------------------------------------------------------

    def from_client(self, data: Data) -> list[Action]:
        """Handle one message from the browser."""
        state = self._state
        if state is State.ESTABLISHED:
            if isinstance(data, str) is self._binary:
                return self._fail_client(self._frame_error(data, "browser"))
            head = self._peek(data)
            if head is not None and head[0] in _SESSION_TYPES and head[0] != _GOODBYE:
                return self._client_session_message(head[0], data)
            checks = self._checks
            actions = self._carry_out(checks.check(data, self._now))
            started = checks.started_call
            if started is not None:
                checks.started_call = None
                self._deadlines.start(started[0], self._now, started[1], checks.calls)
            return actions
        if state is State.AWAIT_HELLO:
            return self._on_hello(data)
        if state is State.AUTHENTICATING:
            return self._client_during_login(data)
        if state is State.CLOSING:
            return self._client_while_closing(data)
        raise self._closed_error()

    def from_router(self, data: Data) -> list[Action]:
        """Handle one message from the router (in the upstream's serializer)."""
        if not self._codec.same and self._state is not State.CLOSED:
            if isinstance(data, str) is self._codec.upstream.binary:
                return self._fail_router(RemoteProtocolError(
                    f"the router sent a {'text' if isinstance(data, str) else 'binary'} frame on "
                    f"{self._codec.upstream.subprotocol}"))
            try:
                data = self._codec.to_browser(data)
            except PayloadOutOfBounds as exc:
                return self._router_untranslatable(data, exc)
            except RemoteProtocolError as exc:
                return self._fail_router(exc)
        return self._router_message(data)

    def _router_message(self, data: Data) -> list[Action]:
        """A router message in the browser's serializer."""
        state = self._state
        if state is State.ESTABLISHED:
            if isinstance(data, str) is self._binary:
                return self._fail_router(self._frame_error(data, "router"))
            head = self._peek(data)
            if head is None:  # slow path: decode the whole frame
                try:
                    head = head_of(self.serializer.loads(data))
                except RemoteProtocolError as exc:
                    return self._fail_router(exc)
            kind = head[0]
            if kind in _SESSION_TYPES:
                return self._router_session_message(kind, data)
            if ((kind == _RESULT and self._deadlines.late(head[1]))
                    or (kind == _ERROR and head[1] == _CALL and self._deadlines.late(head[2]))):
                return []  # the answer to a call the bridge has answered itself (its deadline passed)
            verdict = self._checks.from_router(head, data)
            if verdict is not None:
                return [self._send_router(t.cast(list[t.Any], verdict.upstream)),
                        Notice("refused", "an INVOCATION past the limit of invocations in flight")]
            if kind == _ERROR:
                return self._sanitized(kind, data)
            clean = self._checks.scrub(kind, data)  # RESULT, EVENT: no backend identity
            return [SendToClient(data if clean is None else clean)]
        if state is State.AUTHENTICATING:
            return self._router_during_login(data)
        if state is State.CLOSING:
            return self._router_while_closing(data)
        if state is State.AWAIT_HELLO:
            self.error = RemoteProtocolError("the router spoke before the browser's HELLO", 1011)
            return self._close(1011, "router protocol error")
        raise self._closed_error()

    def client_closed(self) -> list[Action]:
        """The browser's socket ended (however it ended, the session ends with 1000).

        The router's session ends with GOODBYE before its transport closes (whatever ended the browser's
        side): a router that sees only the transport close keeps the session attached meanwhile, and
        Crossbar's broker then loses events for other subscribers.
        """
        state = self._state
        if state is State.CLOSED:
            return []
        if state is State.ESTABLISHED:
            return [self._goodbye_upstream(faults.BROWSER_GONE), *self._close(1000, "browser went away")]
        if state is State.CLOSING and not self._goodbye_from_client:  # the router said GOODBYE: reply
            return [self._send_router([_GOODBYE, {}, "wamp.close.goodbye_and_out"]),
                    *self._close(1000, "browser went away")]
        return self._close(1000, "browser went away")

    def router_closed(self, code: int | None = None, reason: str = "", *,
                      fault: faults.Fault | None = None) -> list[Action]:
        """The upstream ended, or could not be opened (``code`` None, ``reason`` why; ``fault``: what the page
        gets if the login was under way, by default :data:`~.faults.ROUTER_UNREACHABLE`)."""
        if self._state is State.CLOSED:
            return []
        self._router_owes_goodbye = False  # the router's transport is gone: no reply to wait for
        if self._state is State.CLOSING:
            return self._close(1000, "session closed")
        detail = f" ({code} {reason})" if code is not None else (f" ({reason})" if reason else "")
        self.error = ConnectionClosed(f"router connection lost{detail}", code, reason)
        if self._state is State.AUTHENTICATING:  # unreachable, or gone during the login: try again later
            return self._end(fault or faults.ROUTER_UNREACHABLE, tell_router=False)
        return self._end(faults.ROUTER_LOST, tell_router=False)

    def router_queued(self, now: float) -> None:
        """The upstream connect waits for its turn (a login storm): no login deadline runs while it waits.

        The IO layer bounds the wait itself (then ``router_closed``); the time waited is added to the login
        deadline by :meth:`router_connecting`.
        """
        if self._state is State.AUTHENTICATING and self._queued_at is None:
            self._queued_at = now

    def router_connecting(self, now: float) -> None:
        """The upstream connect starts only now (it waited its turn): the router's deadline starts here."""
        if self._queued_at is not None:
            self._login_full_deadline += max(0.0, now - self._queued_at)
            self._login_deadline = self._login_full_deadline
            self._queued_at = None
        if self._state is State.AUTHENTICATING and self._router_timeout is not None and not self._challenged:
            self._login_deadline = min(self._login_full_deadline, now + self._router_timeout)

    def router_connected(self, local_address: t.Any) -> None:
        """The upstream is open; ``local_address`` is its socket's own address (``getsockname()``).

        The router's ticket CHALLENGE is answered with a ticket bound to it
        (``WAMP_BRIDGE_TICKET_BIND_PEER``): only this connection may present the ticket.
        """
        self._router_peer = peer_descriptor(local_address)

    def too_big_for_router(self, data: Data, exc: MessageTooBig) -> list[Action]:
        """The upstream refused to send ``data`` (a message the relay gave it) as longer than the router accepts;
        nothing was sent and the connection stays. A browser message can grow so in translation (a JSON float
        is 9 bytes of msgpack): its request is answered as one past its bounds, the session stays."""
        if self._state is State.CLOSED:
            return []
        return self._client_untranslatable(PEEKERS[self.upstream_serializer.name](data), exc)

    def router_silent(self, seconds: float, why: str = "not even a pong") -> list[Action]:
        """The upstream has been silent for ``seconds`` past its ping (``why``: what else tells): the router is lost."""
        if self._state is State.CLOSED:
            return []
        self._router_owes_goodbye = False
        self.error = TransportError(f"the router sent nothing for {seconds:g} s, {why}")
        if self._state is State.AUTHENTICATING:
            return self._end(faults.ROUTER_UNREACHABLE, tell_router=False)
        if self._state is State.CLOSING:
            return self._close(1000, "session closed")
        return self._end(faults.ROUTER_SILENT, tell_router=False)

    def tick(self, now: float) -> list[Action]:
        """Let time pass: enforces the login, GOODBYE and session expiry deadlines."""
        self._now = now
        state = self._state
        if self._expires_at is not None and now >= self._expires_at and state is not State.CLOSED:
            self.error = None
            return self._end(faults.SESSION_EXPIRED)
        if state is State.AWAIT_HELLO and now >= self._login_deadline:
            return self._fail_client(RemoteProtocolError(
                f"no HELLO within {self._login_timeout:g} s of connecting"))
        if state is State.AUTHENTICATING and now >= self._login_deadline and self._queued_at is None:
            self.error = TransportError(f"the router did not complete the login within "
                                        f"{min(self._login_timeout, self._router_timeout or 1e300):g} s: "
                                        f"{faults.LOGIN_TIMEOUT_HINTS[self._challenged]}")
            return self._end(faults.ROUTER_LOGIN_TIMEOUT, tell_router=False)
        if state is State.CLOSING and now >= self._goodbye_deadline:
            self._router_owes_goodbye = False  # waited long enough
            return self._close(1000, "session closed")
        if state is State.ESTABLISHED and now >= self._deadlines.next_due:
            due = self._deadlines.due(now, self._checks.calls)
            if due:
                return self._give_up(due)
        return []

    def _give_up(self, due: list[tuple[int, float]]) -> list[Action]:
        """Calls past their deadline: ERROR ``wamp.error.canceled`` to the page, CANCEL upstream (``killnowait``)."""
        actions: list[Action] = []
        calls = self._checks.calls
        for request_id, seconds in due:
            calls.discard(request_id)
            metrics_sink.sink.call_ended(self._checks, request_id, "canceled")
            actions.append(self._send_client(call_deadline_error(request_id, seconds)))
            actions.append(self._send_router([_CANCEL, request_id, {"mode": CANCEL_MODE}]))
        ids = ", ".join(str(request_id) for request_id, _ in due[:5]) + (" ..." if len(due) > 5 else "")
        actions.append(Notice("call_deadline", f"{len(due)} call(s) without an answer by their deadline "
                                               f"(request ids {ids}); answered wamp.error.canceled, CANCEL sent"))
        return actions

    def shutdown(self, code: int = 1001) -> list[Action]:
        """The server is stopping: say so to both sides and close with ``code``.

        On a restart (1012, a gunicorn reload) the browser gets no GOODBYE,
        only the close code: wampy.js takes a GOODBYE as final and would not
        reconnect to the new worker.
        """
        if self._state is State.CLOSING:
            return self._close(code, "server shutting down")
        fault = faults.RESTART if code == 1012 else faults.SHUTDOWN
        if code not in (1001, 1012):
            fault = dataclasses.replace(fault, close_code=code)
        return self._end(fault)

    # --- handshake ----------------------------------------------------------

    def _on_hello(self, data: Data) -> list[Action]:
        try:
            message = self.serializer.loads(data, self._checks.limits.bounds)
        except RemoteProtocolError as exc:
            return self._fail_client(exc)
        if message[0] != _HELLO:
            name = MessageType(message[0]).name
            return self._fail_client(RemoteProtocolError(f"expected HELLO first, got {name}"))
        details = message[2]
        if not isinstance(details.get("roles"), dict) or not details["roles"]:
            return self._fail_client(RemoteProtocolError("HELLO.Details.roles must be a non-empty dict"))
        if message[1] != self.realm:
            return self._abort_client(
                "wamp.error.no_such_realm",
                f"no realm {message[1]!r} here; connect to realm {self.realm!r}", 1008)
        if self.identity is None:
            return self._abort_client(
                "wamp.error.not_authorized",
                "log in first: this WAMP endpoint does not allow anonymous sessions", 1008)
        if self._refusal is not None:
            return self._abort_client(TOO_MANY_SESSIONS, self._refusal, 1008)
        try:
            hello = self._forward(self.serializer.dumps(rewrite_hello(message, self.identity)))
        except (LocalProtocolError, PayloadOutOfBounds) as exc:  # decodable, yet not encodable (NaN, nesting)
            return self._fail_client(RemoteProtocolError(f"the HELLO cannot be passed on: {exc}"))
        self._state = State.AUTHENTICATING
        if self._router_timeout is not None:
            self._login_deadline = min(self._login_deadline, self._now + self._router_timeout)
        return [ConnectRouter(), hello]

    def _client_during_login(self, data: Data) -> list[Action]:
        try:
            message = self.serializer.loads(data, self._checks.limits.bounds)
        except RemoteProtocolError as exc:
            return self._fail_client(exc)
        if message[0] == _ABORT:
            return [self._forward_ending(_ABORT, data), *self._close(1000, "browser aborted the login")]
        name = MessageType(message[0]).name
        return self._fail_client(RemoteProtocolError(f"{name} sent before WELCOME"))

    def _router_during_login(self, data: Data) -> list[Action]:
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError as exc:
            return self._fail_router(exc)
        kind = message[0]
        if kind == _CHALLENGE:
            self._login_deadline = self._login_full_deadline  # the router answers: no longer its deadline
            if message[1] != "ticket":
                return self._fail_router(RemoteProtocolError(
                    f"the router challenged with {message[1]!r}; configure ticket authentication "
                    "(a dynamic authenticator) on the transport the bridge connects to", 1011))
            if self._challenged:
                return self._fail_router(RemoteProtocolError("the router challenged twice", 1011))
            self._challenged = True
            assert self.identity is not None
            ticket = self._ticket_signer(self.identity, self._router_peer)
            return [self._send_router([_AUTHENTICATE, ticket, {}])]
        if kind == _WELCOME:
            authid = message[2].get("authid")
            assert self.identity is not None
            if not self._challenged:
                return self._fail_router(RemoteProtocolError(
                    "the router welcomed the session without a ticket challenge; configure ticket "
                    "authentication on the transport the bridge connects to", 1011))
            if authid != self.identity.authid:
                return self._fail_router(RemoteProtocolError(
                    f"the router welcomed authid {authid!r} instead of {self.identity.authid!r}; "
                    "the authenticator must return the ticket's authid", 1011))
            self._state = State.ESTABLISHED
            self.session_id = message[1]
            details = welcome_details(message[2])  # without Crossbar's x_cb_* keys
            if details is not None:
                return [self._send_client([_WELCOME, message[1], details])]
            return [SendToClient(data)]
        if kind == _ABORT:
            text = message[1].get("message") if isinstance(message[1], dict) else None
            self.router_refusal = RouterRefusal(str(message[2]), text if isinstance(text, str) else None)
            reason = self.router_refusal.reason
            fault = faults.login_fault(reason, peer_refused=self._peer_refused())
            if fault is not None:  # the server's trouble, not the browser's: retryable
                return self._end(fault, tell_router=False)
            return [*self._sanitized(kind, data), *self._close(1008, str(message[2]))]
        name = MessageType(kind).name
        return self._fail_router(RemoteProtocolError(f"the router sent {name} during the login", 1011))

    # --- established --------------------------------------------------------

    def _carry_out(self, verdict: Verdict) -> list[Action]:
        """The relay's side of a :class:`~flask_wamp_bridge.bridge.checks.Verdict` on a browser message."""
        forward = verdict.forward
        if forward is not None:
            try:
                to_router = self._forward(forward, verdict.decoded)
            except PayloadOutOfBounds as exc:
                return self._client_untranslatable(self._peek(forward), exc)
            if verdict.closing:
                self._start_closing(from_client=True)
            if verdict.refused is None:
                return [to_router]
            return [to_router, Notice("refused", verdict.refused)]
        if verdict.reply is not None:
            return [self._send_client(verdict.reply), Notice("refused", t.cast(str, verdict.refused))]
        if verdict.upstream is not None:
            return [self._send_router(verdict.upstream), Notice("refused", t.cast(str, verdict.refused))]
        if verdict.violation is not None:
            return self._fail_client(RemoteProtocolError(verdict.violation))
        if verdict.abuse is not None:
            self.error = RemoteProtocolError(verdict.abuse, 1008)
            return [Notice("abuse", verdict.abuse), *self._end(faults.ABUSE)]
        return [Notice("refused", verdict.refused)] if verdict.refused else []

    def _sanitized(self, kind: int, data: Data) -> list[Action]:
        """A router ABORT, GOODBYE or ERROR for the browser: its URI kept, the router's own text replaced."""
        if self._debug:
            return [SendToClient(data), Notice("router_abort", repr(data))] if kind == _ABORT else [SendToClient(data)]
        clean, text = sanitized(self.serializer, kind, data)
        if clean is None:
            return [SendToClient(data)]
        return [self._send_client(clean), Notice("router_abort" if kind == _ABORT else "router_text", text)]

    def _client_session_message(self, kind: int, data: Data) -> list[Action]:
        if kind == _GOODBYE:
            self._start_closing(from_client=True)
            return [self._forward_ending(kind, data)]
        if kind == _ABORT:
            return [self._forward_ending(kind, data), *self._close(1000, "browser aborted the session")]
        name = MessageType(kind).name
        return self._fail_client(RemoteProtocolError(f"{name} sent after WELCOME"))

    def _router_session_message(self, kind: int, data: Data) -> list[Action]:
        if kind == _GOODBYE:
            answers = self._answer_pending_with_reason_of(data)
            self._start_closing(from_client=False)
            return [*answers, *self._sanitized(kind, data)]
        if kind == _ABORT:
            self.error = RemoteProtocolError("the router sent ABORT after WELCOME", 1011)
            answers = self._answer_pending_with_reason_of(data)
            return [*answers, *self._sanitized(kind, data), *self._close(1011, "router aborted the session")]
        name = MessageType(kind).name
        return self._fail_router(RemoteProtocolError(f"the router sent {name} after WELCOME", 1011))

    # --- closing ------------------------------------------------------------

    def _start_closing(self, *, from_client: bool) -> None:
        self._state = State.CLOSING
        self._goodbye_from_client = from_client
        self._router_owes_goodbye = from_client
        self._goodbye_deadline = self._now + self._goodbye_timeout

    def _client_while_closing(self, data: Data) -> list[Action]:
        head = self._peek(data) if isinstance(data, str) is not self._binary else None
        if head is not None and not self._goodbye_from_client and head[0] in (_GOODBYE, _ABORT):
            return [self._forward_ending(head[0], data), *self._close(1000, "session closed")]
        return []

    def _router_while_closing(self, data: Data) -> list[Action]:
        head = self._peek(data) if isinstance(data, str) is not self._binary else None
        if head is not None and self._goodbye_from_client and head[0] in (_GOODBYE, _ABORT):
            self._router_owes_goodbye = False
            return [*self._sanitized(head[0], data), *self._close(1000, "session closed")]
        return []

    # --- helpers ------------------------------------------------------------

    def _frame_error(self, data: Data, who: str) -> RemoteProtocolError:
        kind = "text" if isinstance(data, str) else "binary"
        return RemoteProtocolError(f"the {who} sent a {kind} frame on {self.serializer.subprotocol}", 1003)

    def _send_client(self, message: list[t.Any]) -> SendToClient:
        return SendToClient(self.serializer.dumps(message))

    def _send_router(self, message: list[t.Any]) -> SendToRouter:
        """A message of the relay's own (plain values) for the router."""
        return SendToRouter(self.upstream_serializer.dumps(message))

    def _forward(self, data: Data, decoded: list[t.Any] | None = None) -> SendToRouter:
        """The browser's message (checked; ``decoded``: as the check decoded it) for the router, in the upstream's
        serializer.

        :raises PayloadOutOfBounds: a value the upstream's serializer cannot carry.
        """
        return SendToRouter(self._codec.to_router(data, decoded))

    def _forward_ending(self, kind: int, data: Data) -> SendToRouter:
        """The browser's GOODBYE or ABORT for the router (a plain one if its own cannot be translated)."""
        try:
            return self._forward(data)
        except PayloadOutOfBounds:
            return self._send_router([kind, {}, "wamp.close.normal" if kind == _GOODBYE else "wamp.error.canceled"])

    def _client_untranslatable(self, head: Head | None, exc: RemoteProtocolError) -> list[Action]:
        """A checked browser message (``head``: its type and ids) the upstream cannot carry: answered like one past
        its bounds."""
        text = f"the message cannot be passed to the router: {exc}"
        kind, first, second = head or (None, None, None)
        checks = self._checks
        notice = Notice("refused", text)
        if kind == _CALL and first is not None:
            checks.calls.discard(first)
            checks.started_call = None
            metrics_sink.sink.call_ended(checks, first, "canceled")
            return [self._send_client([_ERROR, _CALL, first, {}, UNTRANSLATABLE, [text]]), notice]
        if kind == _PUBLISH and first is not None:
            pending = checks.pending[_PUBLISH]
            if first in pending:  # acknowledged: the browser waits for an answer
                pending.discard(first)
                return [self._send_client([_ERROR, _PUBLISH, first, {}, UNTRANSLATABLE, [text]]), notice]
            return [notice]
        invocation = first if kind == _YIELD else (second if kind == _ERROR and first == _INVOCATION else None)
        if invocation is not None:
            checks.invocations.discard(invocation)
            return [self._send_router([_ERROR, _INVOCATION, invocation, {}, UNTRANSLATABLE, [text]]), notice]
        return self._fail_client(RemoteProtocolError(text))

    def _router_untranslatable(self, data: Data, exc: PayloadOutOfBounds) -> list[Action]:
        """A router message the browser's serializer cannot carry: an EVENT is dropped, a RESULT or an ERROR
        becomes an ERROR for the call, an INVOCATION is answered with an ERROR to the router."""
        text = f"the router's message cannot be passed to the browser: {exc}"
        kind, first, second = PEEKERS[self.upstream_serializer.name](data) or (None, None, None)
        if self._state is State.ESTABLISHED:
            if kind == _EVENT:
                return [Notice("router_text", f"an EVENT dropped: {exc}")]
            if kind == _INVOCATION and first is not None:
                return [self._send_router([_ERROR, _INVOCATION, first, {}, UNTRANSLATABLE, [text]]),
                        Notice("router_text", f"an INVOCATION refused: {exc}")]
            if kind == _RESULT and first is not None:
                return [*self._router_message(self.serializer.dumps([_ERROR, _CALL, first, {}, UNTRANSLATABLE,
                                                                     [text]])),
                        Notice("router_text", f"a RESULT replaced by an ERROR: {exc}")]
            if kind == _ERROR and first is not None:
                message = decode(self.upstream_serializer.name, data)
                if len(message) > 4 and isinstance(message[4], str):
                    return [*self._router_message(self.serializer.dumps([_ERROR, first, message[2], {}, message[4],
                                                                         [text]])),
                            Notice("router_text", f"an ERROR without its arguments: {exc}")]
        return self._fail_router(exc)

    def _abort_client(self, uri: str, message: str, code: int, *, notice: bool = True) -> list[Action]:
        actions: list[Action] = [Notice("abort", f"{uri}: {message}")] if notice else []
        return [*actions, self._send_client([_ABORT, {"message": message}, uri]), *self._close(code, message)]

    def _fail_client(self, exc: ProtocolError) -> list[Action]:
        """The browser broke the protocol: ABORT it (unless it sent the wrong frame type) and close.

        The spec's rule for a protocol violation is ABORT, in any state.
        """
        self.error = exc
        code = exc.close_code
        notice = Notice("protocol_violation", str(exc))
        actions: list[Action] = [notice]
        if self._state is State.ESTABLISHED:  # end the router's session at once, not when the link drops
            actions.append(self._goodbye_upstream(None, "wamp.error.protocol_violation"))
        if code == 1003:
            return actions + self._close(1003, str(exc))
        if self._state is State.ESTABLISHED:  # one answer for each call in flight, before the ABORT
            actions += [self._send_client(error) for error in faults.pending_errors(
                self._checks.calls, "wamp.error.protocol_violation", "the session ended: a protocol violation")]
        return actions + self._abort_client("wamp.error.protocol_violation", str(exc), code, notice=False)

    def _fail_router(self, exc: ProtocolError) -> list[Action]:
        """The router broke the protocol (or is misconfigured): answer pending calls, ABORT, close 1011."""
        exc.close_code = 1011
        self.error = exc
        actions: list[Action] = []
        if self._state is State.AUTHENTICATING:
            actions.append(self._send_router([_ABORT, {"message": str(exc)}, "wamp.error.protocol_violation"]))
        return actions + self._end(faults.ROUTER_PROTOCOL_ERROR, tell_router=False)

    def _end(self, fault: faults.Fault, *, tell_router: bool = True) -> list[Action]:
        """End the session for ``fault``: an ERROR per pending CALL, GOODBYE or ABORT, then the close code."""
        if self._state is State.CLOSED:
            return []
        established = self._state is State.ESTABLISHED
        if established or self._state is State.AUTHENTICATING:
            to_client = faults.last_words(fault, self._checks.calls, established=established)
            actions: list[Action] = [self._send_client(message) for message in to_client]
            if established and tell_router:
                actions.append(self._goodbye_upstream(fault))
            return actions + self._close(fault.close_code, fault.reason)
        return self._close(fault.close_code, fault.reason)

    def _answer_pending_with_reason_of(self, data: Data) -> list[Action]:
        """The router ended the session (GOODBYE, ABORT): each pending CALL gets an ERROR with its reason."""
        answers: list[Action] = [self._send_client(error) for error in
                                 faults.router_ended(self.serializer, data, self._checks.calls)]
        self._calls_canceled()
        return answers

    def _goodbye_upstream(self, fault: faults.Fault | None, uri: str = "") -> SendToRouter:
        """GOODBYE to the router (``fault``'s, or just ``uri``): the IO layer waits briefly for its reply."""
        self._router_owes_goodbye = True
        if fault is None:
            return self._send_router([_GOODBYE, {}, uri])
        return self._send_router([_GOODBYE, {"message": fault.message}, fault.uri])

    def _close(self, code: int, reason: str) -> list[Action]:
        self._state = State.CLOSED
        self._calls_canceled()
        close = Close(code, reason, self._router_owes_goodbye)
        self.closed_with = close
        return [close]

    def _calls_canceled(self) -> None:
        """The session's calls in flight end here (answered by the bridge, or by no one)."""
        checks = self._checks
        for request_id in checks.calls:
            metrics_sink.sink.call_ended(checks, request_id, "canceled")
        checks.calls.clear()

    def _closed_error(self) -> LocalProtocolError:
        why = f" ({self.closed_with.code} {self.closed_with.reason})" if self.closed_with else ""
        return LocalProtocolError(f"the relay is closed{why}; feed it no more data")
