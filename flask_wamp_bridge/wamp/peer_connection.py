"""One connection of the peer: a transport, the session (a :class:`~.session.PeerCore`) on it, its actions.

:class:`~flask_wamp_bridge.wamp.peer.Peer` (the public face) makes one
:class:`PeerConnection` per transport it opens, with a frozen
:class:`ConnectionConfig` and itself as the :class:`ConnectionOwner`: what the
connection needs of the peer (its handles, its handler pool, the signals'
sender, and to hear when the session joins, is ready and closes), and nothing
more. The connection reads the router, feeds the core, and carries out the
core's actions through one table (:data:`PeerConnection.ACTIONS`); invocations
and events run in the owner's
:class:`~flask_wamp_bridge.wamp.handler_pool.HandlerPool` (or the registration's
own). A connection never reconnects: when it ends, the peer makes a new one.

Liveness over a transport without pings (RawSocket: Crossbar drops the
connection on a RawSocket PING): once the session is up, a router silent for
``probe_interval`` gets a WAMP CALL to :data:`PROBE_PROCEDURE`, which Crossbar
answers itself (a RESULT, or an ERROR if the role may not call it: any answer
will do); nothing from the router for ``probe_timeout`` more and the
connection is taken as lost (a stalled router: its socket stays open). One
greenlet per connection, asleep while the router is heard.

The tokens the core hands back with answers are :class:`ResultToken`\\s:
gevent's ``AsyncResult`` for a plain call, a :class:`Stream` for a call with
progressive results, and the :class:`~flask_wamp_bridge.wamp.handles.Registration`
itself for REGISTER and SUBSCRIBE.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
import traceback
import typing as t

import gevent
import gevent.event
import gevent.queue

from ..errors import ApplicationError
from ..errors import BridgeError
from ..errors import CallTimeout
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from ..errors import NotConnected
from ..errors import ProtocolError
from ..errors import TransportError
from ..signals import call_timed_out
from ..signals import peer_joined
from ..signals import peer_left
from ..signals import peer_refused
from ..signals import peer_reregistered
from ..signals import registration_failed
from ..signals import router_lost
from ..signals import send as send_from
from .hints import JOIN_TIMEOUT_HINT
from .hints import PEER_JOIN_HINTS
from .messages import MessageType
from .messages import Serializer
from .messages import Undecodable
from .messages import decode_or_head
from .session import PeerCore
from .session import PeerState
from .session import invocation_error_message
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
from .session_events import result_value
from .session_events import yield_payload

if t.TYPE_CHECKING:  # pragma: no cover
    from .bounds import Bounds
    from .client_auth import ClientAuth
    from .handler_pool import HandlerPool
    from .handles import Registration

__all__ = ["PeerConnection", "ConnectionConfig", "ConnectionOwner", "ResultToken", "Stream", "WebSocketLike",
           "current", "QUIET_CLOSE_REASONS", "PROBE_PROCEDURE"]

log = logging.getLogger("flask_wamp_bridge.wamp.peer")

#: The details of the invocation or event the running greenlet handles.
current: contextvars.ContextVar[InvocationDetails | EventDetails | None] = contextvars.ContextVar(
    "flask_wamp_bridge_details", default=None
)

#: Session ends logged at INFO (the others are warnings).
QUIET_CLOSE_REASONS = frozenset(
    ("wamp.close.system_shutdown", "wamp.close.goodbye_and_out", "wamp.close.normal", "wamp.close.close_realm")
)


#: What a silent router is asked over a transport without pings: a meta procedure the router answers itself.
PROBE_PROCEDURE = "wamp.session.count"


class ResultToken(t.Protocol):
    """What waits for the answer to one request: the core hands it back with the answer."""

    def set(self, value: t.Any) -> None:
        """The answer came: the result value (a call), the id (register, subscribe, publish) or None."""

    def set_exception(self, exc: BaseException) -> None:
        """The request failed: an ERROR from the router, or the session ended first."""


class WebSocketLike(t.Protocol):
    """What the peer needs of its transport (:class:`flask_wamp_bridge.websocket.connection.WebSocket` fits)."""

    subprotocol: str | None

    def receive(self) -> str | bytes | None: ...

    def send(self, message: str | bytes) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclasses.dataclass(frozen=True)
class ConnectionConfig:
    """What one connection needs to know, fixed for its life."""

    #: The router node this connection goes to.
    url: str
    realm: str
    auth: ClientAuth
    #: The serializer of the subprotocol the router chose.
    serializer: Serializer
    #: Seconds for joining, and for the router to answer each registration on a new session.
    connect_timeout: float
    #: CANCEL mode for a call that timed out, unless the call names its own.
    cancel_mode: str
    #: Payload bounds for what the router delivers.
    bounds: Bounds
    #: Send exception type, message and traceback to callers.
    debug: bool = False
    #: Seconds of silence before the router is probed with a CALL (None: never; a WebSocket pings instead).
    probe_interval: float | None = None
    #: Then, seconds without anything from the router before the connection is taken as lost.
    probe_timeout: float = 3.0


class ConnectionOwner(t.Protocol):
    """What a connection needs of the peer that owns it (:class:`~flask_wamp_bridge.wamp.peer.Peer` is one)."""

    @property
    def handlers(self) -> HandlerPool:
        """Where invocations and events run (unless a registration has a pool of its own)."""

    @property
    def signal_sender(self) -> t.Callable[[], object] | None:
        """Gives the signals' sender (``None``: the owner itself)."""

    def handles(self) -> list[Registration]:
        """Every registration and subscription to make on a new session."""

    def connection_joined(self, conn: PeerConnection) -> bool:
        """``conn``'s session is established; returns whether an earlier one was (a rejoin)."""

    def connection_ready(self, conn: PeerConnection) -> None:
        """``conn`` joined and every registration and subscription was answered."""

    def connection_closed(self, conn: PeerConnection) -> None:
        """``conn``'s session ended."""


class Stream:
    """Token of a call with progressive results: everything goes through a queue to the caller."""

    __slots__ = ("queue",)

    PROGRESS, FINAL, FAILED = 0, 1, 2

    def __init__(self) -> None:
        self.queue: gevent.queue.Queue[tuple[int, t.Any]] = gevent.queue.Queue()

    def progress(self, value: t.Any) -> None:
        self.queue.put((self.PROGRESS, value))

    def set(self, value: t.Any) -> None:
        self.queue.put((self.FINAL, value))

    def set_exception(self, exc: BaseException) -> None:
        self.queue.put((self.FAILED, exc))


class PeerConnection:
    """One transport to the router and the WAMP session on it."""

    __slots__ = ("config", "owner", "ws", "core", "serializer", "joined", "closed", "_dumps", "_running", "_heard",
                 "_prober")

    def __init__(self, config: ConnectionConfig, owner: ConnectionOwner, ws: WebSocketLike) -> None:
        self.config = config
        self.owner = owner
        self.ws = ws
        self.core = PeerCore(config.realm, config.auth)
        self.serializer = config.serializer
        self._dumps = config.serializer.dumps
        self.joined = gevent.event.Event()
        self.closed = gevent.event.Event()
        # invocation request id -> the greenlet running it (for INTERRUPT)
        self._running: dict[int, gevent.Greenlet] = {}
        self._heard = time.monotonic()  # when the router last sent anything
        self._prober: gevent.Greenlet | None = None

    # -- sending --------------------------------------------------------------------------

    def send(self, message: list[t.Any]) -> None:
        self.send_data(self._dumps(message))

    def send_data(self, data: str | bytes) -> None:
        try:
            self.ws.send(data)
        except OSError as exc:  # the one boundary for socket errors on send
            raise ConnectionClosed(f"cannot send to the router: {exc}") from exc

    def _send_quietly(self, message: list[t.Any] | None) -> None:
        if message is not None:
            try:
                self.send(message)
            except TransportError:
                pass

    def cancel_quietly(self, request_id: int, cancel_mode: str | None) -> None:
        self._send_quietly(self.core.cancel(request_id, cancel_mode or self.config.cancel_mode))

    def timed_out(self, request_id: int, procedure: str, timeout: float | None,
                  cancel_mode: str | None) -> CallTimeout:
        """Cancel a call that got no result in time; the error to raise."""
        mode = cancel_mode or self.config.cancel_mode
        self.cancel_quietly(request_id, mode)
        send_signal(self.owner, call_timed_out, procedure=procedure, timeout=timeout)
        return CallTimeout(
            None, f"call to {procedure!r} got no result within {timeout:g} s and was canceled ({mode}); "
                  "pass a longer timeout or set WAMP_BRIDGE_CALL_TIMEOUT"
        )

    def request_and_wait(self, reg: Registration, timeout: float | None, owner: list[t.Any], report: bool) -> None:
        """REGISTER or SUBSCRIBE ``reg`` and wait for the answer; refused: drop it from ``owner`` and raise.

        :raises ApplicationError: the router refused.
        :raises CallTimeout: no answer in time (``reg`` is made again on the next session).
        """
        try:
            self.send_request(reg)
            reg.wait_answer(timeout)
        except gevent.Timeout:
            error: BridgeError = CallTimeout(None, f"the router did not answer registering {reg.uri!r} in time; "
                                                   "it is registered again on the next reconnect")
        except ApplicationError as exc:
            owner.remove(reg)
            error = exc
        else:
            return
        if report:
            self.registration_failed(reg, error)
        raise error from None

    def registration_failed(self, reg: Registration, error: BaseException) -> None:
        """Send the :data:`~flask_wamp_bridge.signals.registration_failed` signal for ``reg``."""
        send_signal(self.owner, registration_failed, uri=reg.uri, kind=reg.verb.split()[0], error=error)

    def send_request(self, reg: Registration) -> None:
        """REGISTER or SUBSCRIBE ``reg``; its answer comes back to ``reg.set()``/``set_exception()``."""
        self.send(reg.request(self.core))

    def close_transport(self, code: int) -> None:
        try:
            self.ws.close(code)
        except Exception:  # closing an already broken socket
            pass

    # -- reading --------------------------------------------------------------------------

    def serve(self) -> bool:
        """Say HELLO and read until the connection ends; returns whether a session was established."""
        self.send(self.core.hello())
        deadline = gevent.spawn_later(self.config.connect_timeout, self._join_deadline)
        try:
            self._read()
        finally:
            deadline.kill(block=False)
            if self._prober is not None:
                self._prober.kill(block=False)
        return bool(self.joined.is_set())

    def _join_deadline(self) -> None:
        if not self.joined.is_set():
            log.warning("WAMP peer: no WELCOME from %s within %g s; %s", self.config.url,
                        self.config.connect_timeout, JOIN_TIMEOUT_HINT)
            self.close_transport(1000)

    def _read(self) -> None:
        receive = self.ws.receive
        act = self.act
        clock = time.monotonic
        while True:
            try:
                data = receive()
            except TransportError:
                return
            if data is None:
                return
            self._heard = clock()
            try:
                message = self.decode(data)
                if isinstance(message, Undecodable):
                    actions = self._undecodable(message)
                else:
                    actions = self.core.receive(message)
            except ProtocolError as exc:
                log.error("WAMP peer: protocol violation by the router: %s", exc)
                for action in self.core.abort("wamp.error.protocol_violation", str(exc)):
                    act(action)
                self.close_transport(exc.close_code)
                return
            for action in actions:
                act(action)
            if self.closed.is_set():
                return

    def _probe_router(self, interval: float, timeout: float) -> None:
        """Probe a router silent for ``interval``; nothing heard ``timeout`` after: close (see the module docs)."""
        while self.core.is_established:
            silent = time.monotonic() - self._heard
            if silent < interval:
                gevent.sleep(interval - silent)
                continue
            asked = time.monotonic()
            answer = gevent.event.AsyncResult()
            request_id = None
            timer = gevent.Timeout(timeout)  # a send blocked by a router that reads nothing counts too
            timer.start()
            try:
                request_id, message = self.core.call(answer, PROBE_PROCEDURE)
                self.send(message)
                answer.wait()
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
            except BridgeError:  # the session or the transport ended meanwhile: the reader sees it
                return
            finally:
                timer.close()
            if answer.ready():
                continue
            if self._heard >= asked:  # busy, but alive
                if request_id is not None:
                    self.core.forget(request_id)
                continue
            log.warning("WAMP peer: the router at %s sent nothing for %.1f s, not even an answer to a probe; "
                        "taking the connection as lost", self.config.url, time.monotonic() - self._heard)
            self.close_transport(1000)
            return

    def decode(self, data: str | bytes) -> list[t.Any] | Undecodable:
        """The one place a message from the router is decoded, within the peer's bounds.

        :returns: the message, or what could be read of one that cannot be taken.
        :raises ProtocolError: not even the message's head can be read.
        """
        return decode_or_head(self.serializer, data, self.config.bounds)

    def _undecodable(self, bad: Undecodable) -> list[t.Any]:
        """A message the peer cannot take ends only what it belongs to, never the session."""
        kind, request_id = bad.kind, bad.request_id
        try:
            name = MessageType(kind).name if kind is not None else "message"
        except ValueError:  # not a kind WAMP knows
            name = "message"
        log.warning("WAMP peer: dropped a %s from the router that cannot be decoded: %s", name, bad.reason)
        if request_id is None:
            return []
        answer: list[t.Any] = [8, None, request_id, {}, "wamp.error.invalid_argument",
                               ["the message could not be decoded within the peer's bounds"]]
        if kind == MessageType.INVOCATION:
            answer[1] = int(MessageType.INVOCATION)
            return [Send(answer)]
        if kind == MessageType.RESULT or kind == MessageType.ERROR:  # the call (or request) fails, alone
            answer[1] = bad.request_kind if kind == MessageType.ERROR else int(MessageType.CALL)
            try:
                return self.core.receive(answer)
            except ProtocolError:
                return []
        return []  # an EVENT, or anything else: dropped

    def lost(self, message: str) -> None:
        """The transport is gone: end the session, failing whatever still waits for an answer."""
        if self.core.state is not PeerState.CLOSED:
            closed = self.core.connection_lost(message)
            self.closed.set()
            if self.joined.is_set():
                send_signal(self.owner, peer_left, reason=closed.reason, message=closed.message)
                send_signal(self.owner, router_lost, url=self.config.url, message=message)
            _fail_pending(closed.pending, closed.reason, closed.message)

    # -- the core's actions, one handler each ---------------------------------------------

    def act(self, action: t.Any) -> None:
        self.ACTIONS[type(action)](self, action)

    def _on_result(self, action: Result) -> None:
        value = result_value(action.args, action.kwargs)
        if action.progress:
            progress = getattr(action.token, "progress", None)
            if progress is not None:
                progress(value)
        else:
            action.token.set(value)

    def _on_failed(self, action: Failed) -> None:
        action.token.set_exception(_application_error(action.error, action.args, action.kwargs))

    def _on_registered(self, action: Registered) -> None:
        action.token.set(action.registration_id)

    def _on_subscribed(self, action: Subscribed) -> None:
        action.token.set(action.subscription_id)

    def _on_done(self, action: Unregistered | Unsubscribed) -> None:
        if action.token is not None:
            action.token.set(None)

    def _on_published(self, action: Published) -> None:
        if action.token is not None:
            action.token.set(action.publication_id)

    def _on_send(self, action: Send) -> None:
        self._send_quietly(action.message)

    def _on_invoke(self, action: Invoke) -> None:
        pool = action.handler.pool or self.owner.handlers
        if pool.submit(self._invoke, action):
            return
        log.error("WAMP peer: %d %s busy and %d waiting; refusing a call to %r",
                  pool.concurrency, pool.name, pool.backlog, action.details.procedure)
        self._send_quietly(self.core.invocation_error(action.request_id, "wamp.error.unavailable",
                                                      ["the server is overloaded; retry later"]))

    def _on_deliver(self, action: Deliver) -> None:
        pool = self.owner.handlers
        for handler in action.handlers:
            if not pool.submit(_deliver, handler, action):
                log.error("WAMP peer: %d handlers busy and %d waiting; dropping an event on %r",
                          pool.concurrency, pool.backlog, action.details.topic)

    def _on_interrupt(self, action: Interrupt) -> None:
        greenlet = self._running.pop(action.request_id, None)
        if greenlet is not None:
            greenlet.kill(block=False)

    def _on_joined(self, action: Joined) -> None:
        details = action.details
        log.info("WAMP peer: joined realm %r as %r (role %r), session %s", self.config.realm,
                 details.get("authid"), details.get("authrole"), action.session_id)
        self.joined.set()
        rejoin = self.owner.connection_joined(self)
        if self.config.probe_interval:
            self._prober = gevent.spawn(self._probe_router, self.config.probe_interval, self.config.probe_timeout)
        send_signal(self.owner, peer_joined, session_id=action.session_id, authid=details.get("authid"),
                              authrole=details.get("authrole"))
        gevent.spawn(self._restore, rejoin)

    def _on_closed(self, action: Closed) -> None:
        self.closed.set()
        self.owner.connection_closed(self)
        if action.aborted and not self.joined.is_set():
            hint = PEER_JOIN_HINTS.get(action.reason, "")
            log.warning("WAMP peer: the router refused to join realm %r: %s %s%s", self.config.realm, action.reason,
                        action.message, f"; {hint}" if hint else "")
            send_signal(self.owner, peer_refused, reason=action.reason, message=action.message)
        else:
            level = logging.INFO if action.reason in QUIET_CLOSE_REASONS else logging.WARNING
            log.log(level, "WAMP peer: session closed: %s %s", action.reason, action.message)
        _fail_pending(action.pending, action.reason, action.message)
        if self.joined.is_set():
            send_signal(self.owner, peer_left, reason=action.reason, message=action.message)
        if action.aborted and not self.joined.is_set():
            self.close_transport(1000)

    def _on_revoked(self, action: Revoked) -> None:
        for token in action.tokens:
            token.id = None
        log.warning("WAMP peer: the router removed %s %s (%s)", action.kind,
                    ", ".join(repr(token.uri) for token in action.tokens), action.reason)

    ACTIONS: t.ClassVar[dict[type, t.Callable[[PeerConnection, t.Any], None]]] = {
        Result: _on_result,
        Failed: _on_failed,
        Registered: _on_registered,
        Subscribed: _on_subscribed,
        Unregistered: _on_done,
        Unsubscribed: _on_done,
        Published: _on_published,
        Send: _on_send,
        Invoke: _on_invoke,
        Deliver: _on_deliver,
        Interrupt: _on_interrupt,
        Joined: _on_joined,
        Closed: _on_closed,
        Revoked: _on_revoked,
    }

    # -- a new session: register and subscribe everything again ---------------------------

    def _restore(self, rejoin: bool) -> None:
        """(Re-)register and (re-)subscribe everything on a new session, then tell the owner it is ready."""
        owner = self.owner
        pending = []
        for reg in owner.handles():
            try:
                self.send_request(reg)
            except BridgeError:
                break
            pending.append(reg)
        for reg in pending:
            try:
                reg.wait_answer(self.config.connect_timeout)
            except gevent.Timeout:
                log.error("WAMP peer: no answer registering %r", reg.uri)
                self.registration_failed(reg, CallTimeout(None, f"no answer registering {reg.uri!r}"))
            except BridgeError as exc:
                log.error("WAMP peer: cannot %s %r: %s", reg.verb, reg.uri, exc)
                self.registration_failed(reg, exc)
        if rejoin and self.core.is_established:
            send_signal(owner, peer_reregistered, session_id=self.core.session_id,
                             uris=[reg.uri for reg in pending if reg.id is not None])
        owner.connection_ready(self)

    # -- running a procedure --------------------------------------------------------------

    def _invoke(self, action: Invoke) -> None:
        request_id = action.request_id
        core = self.core
        if not core.invocation_active(request_id):
            return  # interrupted while it waited in the backlog
        details = action.details
        if details.receive_progress:
            details = dataclasses.replace(details, progress=_ProgressSender(self, request_id))
        reg: Registration = action.handler
        self._running[request_id] = gevent.getcurrent()
        token = current.set(details)
        try:
            value = reg.fn(*action.args, **action.kwargs)
        except gevent.GreenletExit:
            log.info("WAMP peer: call to %r interrupted by the caller", details.procedure)
            return
        except Exception as exc:
            message = core.invocation_error(request_id, *self._error_payload(exc, details.procedure))
        else:
            message = core.yield_(request_id, *yield_payload(value))
        finally:
            current.reset(token)
            self._running.pop(request_id, None)
        if message is None:
            return
        try:
            data = self._dumps(message)
        except LocalProtocolError as exc:  # the return value cannot be serialized
            data = self._dumps(invocation_error_message(
                request_id, *self._error_payload(exc, details.procedure)))
        try:
            self.send_data(data)
        except TransportError as exc:
            log.warning("WAMP peer: could not answer a call to %r: %s", details.procedure, exc)

    def _error_payload(self, exc: BaseException, procedure: str) -> tuple[str, list[t.Any], dict[str, t.Any]]:
        if isinstance(exc, ApplicationError):
            log.debug("WAMP peer: %r answered with %s", procedure, exc.error)
            return exc.error, list(exc.args), dict(exc.kwargs)
        uri = getattr(type(exc), "uri", None)
        if isinstance(uri, str) and uri:
            log.debug("WAMP peer: %r answered with %s", procedure, uri)
            return uri, list(exc.args), {}
        log.error("WAMP peer: procedure %r raised", procedure, exc_info=exc)
        if self.config.debug:
            return "wamp.error.runtime_error", [f"{type(exc).__name__}: {exc}"], {
                "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}
        return "wamp.error.runtime_error", ["the procedure failed; the server log has the details"], {}


def _deliver(sub: Registration, action: Deliver) -> None:
    token = current.set(action.details)
    try:
        sub.fn(*action.args, **action.kwargs)
    except Exception:
        log.exception("WAMP peer: event handler for %r raised", action.details.topic)
    finally:
        current.reset(token)


def send_signal(owner: ConnectionOwner, signal: t.Any, **kwargs: t.Any) -> None:
    """Send one of :mod:`~flask_wamp_bridge.signals` (sender: ``owner.signal_sender()``, else the owner)."""
    if signal.receivers:
        sender = owner.signal_sender
        send_from(signal, sender() if sender is not None else owner, **kwargs)


def _fail_pending(tokens: tuple[t.Any, ...], reason: str, message: str) -> None:
    for token in tokens:
        token.set_exception(ConnectionClosed(
            f"the WAMP session ended before the answer came ({reason}{': ' + message if message else ''}); "
            "the call may or may not have run", reason=reason))


def _application_error(error: str, args: list[t.Any], kwargs: dict[str, t.Any]) -> ApplicationError:
    # set after construction: a WAMP kwarg may be called "error"
    exc = ApplicationError(error)
    exc.args = tuple(args)
    exc.kwargs = dict(kwargs)
    return exc


class _ProgressSender:
    """``details.progress(*args, **kwargs)``: send one progressive result of this invocation."""

    __slots__ = ("_conn", "_request_id")

    def __init__(self, conn: PeerConnection, request_id: int) -> None:
        self._conn = conn
        self._request_id = request_id

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> None:
        message = self._conn.core.yield_(self._request_id, args, kwargs, progress=True)
        if message is None:
            raise NotConnected("the call was canceled or the session ended; stop sending progress")
        self._conn.send(message)
