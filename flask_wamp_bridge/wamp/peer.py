"""The server-side WAMP peer: one WAMP session per worker process, on gevent.

:class:`Peer` keeps one connection to the router and a :class:`~flask_wamp_bridge.wamp.session.PeerCore`
per connection. Any number of greenlets may :meth:`~Peer.call` and
:meth:`~Peer.publish` through it at once: answers are matched by request id.
Each INVOCATION and EVENT runs in its own greenlet, at most ``concurrency`` at
a time (more wait in a bounded backlog; the reader never blocks), so a slow
procedure never holds up others, and a procedure may itself call through the
same peer. When the connection drops, pending calls fail with
:class:`~flask_wamp_bridge.errors.ConnectionClosed`, new calls fail fast with
:class:`~flask_wamp_bridge.errors.NotConnected`, and the peer reconnects with
exponential backoff and jitter, registering and subscribing again by itself.

Inside a procedure or event handler, :func:`current_details` returns the
:class:`~flask_wamp_bridge.wamp.session.InvocationDetails` or
:class:`~flask_wamp_bridge.wamp.session.EventDetails` of what is being handled
(caller identity when the router discloses it; ``progress`` to send
progressive results).

Subscribers run in *every* worker process (each has its own session): work
that must happen exactly once belongs in a procedure (a shared registration
gives each call to one worker).

All gevent code of the peer lives here; this module is imported lazily by the
extension, never by ``import flask_wamp_bridge``.
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import logging
import random
import traceback
import typing as t

import gevent
import gevent.event
import gevent.queue

from ..errors import ApplicationError
from ..errors import BridgeError
from ..errors import CallTimeout
from ..errors import ConfigError
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from ..errors import NotConnected
from ..errors import ProtocolError
from ..errors import TransportError
from ..settings import CANCEL_MODES
from ..websocket.client import connect
from . import session as peercore
from .bounds import PEER_BOUNDS
from .bounds import Bounds
from .hints import JOIN_TIMEOUT_HINT
from .hints import PEER_JOIN_HINTS
from .messages import SUBPROTOCOLS
from .messages import MessageType
from .messages import Serializer
from .messages import Undecodable
from .messages import decode_or_head
from .messages import serializer_for
from .router_urls import next_url
from .router_urls import router_urls
from .session import EventDetails
from .session import InvocationDetails
from .session import PeerCore

if t.TYPE_CHECKING:  # pragma: no cover
    from .client_auth import ClientAuth

__all__ = ["Peer", "Registration", "Subscription", "current_details", "DEFAULT"]

log = logging.getLogger(__name__)

_current: contextvars.ContextVar[InvocationDetails | EventDetails | None] = contextvars.ContextVar(
    "flask_wamp_bridge_details", default=None
)


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the peer's configured value" (for ``timeout``).
DEFAULT: t.Any = _Default()



def current_details() -> InvocationDetails | EventDetails | None:
    """Details of the invocation or event being handled by this greenlet, else ``None``."""
    return _current.get()


class Registration:
    """A procedure the peer keeps registered (again after each reconnect)."""

    def __init__(self, peer: Peer, uri: str, fn: t.Callable[..., t.Any], options: dict[str, t.Any]) -> None:
        self.peer = peer
        self.uri = uri
        self.fn = fn
        self.options = options
        #: The registration id in the current session, or ``None`` while not registered.
        self.id: int | None = None
        self._answer: gevent.event.AsyncResult | None = None

    def unregister(self, timeout: float | None = None) -> None:
        """Stop serving this procedure (and do not register it again on reconnect)."""
        self.peer._unregister(self, timeout)

    # the peer core hands this object back as the token of REGISTER's answer
    def set(self, registration_id: int) -> None:
        self.id = registration_id
        if self._answer is not None:
            self._answer.set(registration_id)

    def set_exception(self, exc: BaseException) -> None:
        self.id = None
        if self._answer is not None:
            self._answer.set_exception(exc)

    def __repr__(self) -> str:
        return f"<Registration {self.uri!r} id={self.id}>"


class Subscription(Registration):
    """A topic handler the peer keeps subscribed (again after each reconnect)."""

    def unsubscribe(self, timeout: float | None = None) -> None:
        """Stop receiving this topic's events here (and do not subscribe again on reconnect)."""
        self.peer._unsubscribe(self, timeout)

    unregister = unsubscribe

    def __repr__(self) -> str:
        return f"<Subscription {self.uri!r} id={self.id}>"


class _Stream:
    """Token of a call with progressive results: everything goes through a queue to the caller."""

    __slots__ = ("queue",)

    def __init__(self) -> None:
        self.queue: gevent.queue.Queue[tuple[int, t.Any]] = gevent.queue.Queue()

    def progress(self, value: t.Any) -> None:
        self.queue.put((0, value))

    def set(self, value: t.Any) -> None:
        self.queue.put((1, value))

    def set_exception(self, exc: BaseException) -> None:
        self.queue.put((2, exc))


class _Connection:
    """One transport and the session state on it."""

    __slots__ = ("ws", "core", "serializer", "joined", "closed", "_dumps")

    def __init__(self, ws: t.Any, core: PeerCore, serializer: Serializer) -> None:
        self.ws = ws
        self.core = core
        self.serializer = serializer
        self._dumps = serializer.dumps
        self.joined = gevent.event.Event()
        self.closed = gevent.event.Event()

    def send(self, message: list[t.Any]) -> None:
        self.send_data(self._dumps(message))

    def send_data(self, data: str | bytes) -> None:
        try:
            self.ws.send(data)
        except OSError as exc:  # the one boundary for socket errors on send
            raise ConnectionClosed(f"cannot send to the router: {exc}") from exc


class Peer:
    """A WAMP client session for one worker process, kept up for the life of the process.

    :param url: the router's WebSocket URL, or several (router nodes): after a failed
        attempt the peer tries the next one.
    :param realm: the realm to join.
    :param auth: how to log in (see :mod:`flask_wamp_bridge.wamp.client_auth`).
    :param call_timeout: default seconds a call waits for its result before it is canceled.
    :param cancel_mode: CANCEL mode on timeout: ``"killnowait"``, ``"kill"`` or ``"skip"``.
    :param concurrency: invocations and events handled at once; more wait in a backlog.
    :param backlog: invocations and events that may wait; beyond it invocations are answered
        with ``wamp.error.unavailable`` and events dropped (both logged).
    :param invoke: default invocation policy for :meth:`register` (``"roundrobin"`` lets N workers
        register the same URI).
    :param connect_timeout: seconds for connecting and joining, and how long the first use of a
        peer that was never connected waits for it.
    :param reconnect_initial: first reconnect delay (seconds), grown by ``reconnect_factor``
        up to ``reconnect_max``, with jitter.
    :param debug: send exception type, message and traceback to callers (never in production).
    :param subprotocols: serializers to offer, in order of preference.
    :param ping_interval: seconds of silence from the router before the peer
        pings it (None: never); after ``ping_timeout`` more the connection is
        taken as lost (pending calls fail, the peer reconnects).
    :param bounds: payload bounds for what the router delivers; a message past them (or not
        decodable) ends only its invocation (ERROR ``wamp.error.invalid_argument``), event or call.
    """

    def __init__(
        self,
        url: str | t.Sequence[str],
        realm: str,
        auth: ClientAuth,
        *,
        call_timeout: float | None = 10.0,
        cancel_mode: str = "killnowait",
        concurrency: int = 100,
        backlog: int = 1000,
        invoke: str | None = "roundrobin",
        connect_timeout: float = 10.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        reconnect_factor: float = 2.0,
        debug: bool = False,
        subprotocols: t.Sequence[str] = SUBPROTOCOLS,
        max_message_size: int | None = None,
        ping_interval: float | None = 12.0,
        ping_timeout: float = 3.0,
        bounds: Bounds = PEER_BOUNDS,
    ) -> None:
        if cancel_mode not in CANCEL_MODES:
            raise ConfigError(f"cancel mode {cancel_mode!r} is not one of {', '.join(CANCEL_MODES)}")
        if concurrency < 1 or backlog < 0:
            raise ConfigError("concurrency must be at least 1 and backlog at least 0")
        for subprotocol in subprotocols:
            serializer_for(subprotocol)
        #: The router nodes to try, in order; :attr:`url` is the one in use (or tried next).
        self.urls = router_urls(url)
        self.url = self.urls[0]
        self.realm = realm
        self.auth = auth
        self.call_timeout = call_timeout
        self.cancel_mode = cancel_mode
        self.concurrency = concurrency
        self.backlog = backlog
        self.invoke = invoke
        self.connect_timeout = connect_timeout
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.reconnect_factor = reconnect_factor
        self.debug = debug
        self.subprotocols = tuple(subprotocols)
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.bounds = bounds
        self._registrations: list[Registration] = []
        self._subscriptions: list[Subscription] = []
        # gevent objects are made in start(): the peer may be built before fork
        self._conn: _Connection | None = None
        self._runner: gevent.Greenlet | None = None
        self._stopping = False
        self._first_attempt: gevent.event.Event | None = None
        self._ready: gevent.event.Event | None = None
        self._wakeup: gevent.event.Event | None = None
        self._active = 0
        self._waiting: collections.deque[tuple[t.Callable[..., None], tuple[t.Any, ...]]] = collections.deque()
        # (connection, invocation request id) -> greenlet; ids repeat across sessions
        self._running: dict[tuple[_Connection, int], gevent.Greenlet] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def is_connected(self) -> bool:
        """Whether a WAMP session is established right now."""
        conn = self._conn
        return conn is not None and conn.core.is_established

    @property
    def session_id(self) -> int | None:
        conn = self._conn
        return conn.core.session_id if conn is not None else None

    def start(self) -> None:
        """Start connecting (in the background) and keep the session up. Idempotent.

        Call it in the process that will use the peer (after fork): the
        extension does so from the gunicorn worker's start hook.
        """
        if self._runner is not None:
            return
        self._stopping = False
        self._first_attempt = gevent.event.Event()
        self._ready = gevent.event.Event()
        self._wakeup = gevent.event.Event()
        self._runner = gevent.spawn(self._run)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Start if needed, and wait until joined with every registration and subscription answered."""
        self.start()
        assert self._ready is not None
        return bool(self._ready.wait(timeout))

    def stop(self, timeout: float = 2.0, reason: str = "wamp.close.system_shutdown") -> None:
        """Leave the realm (GOODBYE ``reason``), wait up to ``timeout`` for the reply, close. Idempotent."""
        runner, self._runner = self._runner, None
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        conn = self._conn
        if conn is not None:
            if conn.core.is_established:
                try:
                    conn.send(conn.core.goodbye(reason))
                except BridgeError:
                    pass
                else:
                    conn.closed.wait(timeout)
            self._close_transport(conn, 1000 if reason != "wamp.close.system_shutdown" else 1001)
        if runner is not None:
            runner.join(timeout)
            runner.kill(block=True, timeout=timeout)
        self._conn = None

    # -- caller / publisher ---------------------------------------------------------

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Call ``procedure`` with these arguments and return its result.

        A single result value is returned as is; several, or keyword results,
        come as a :class:`~flask_wamp_bridge.wamp.session.CallResult`. Uses the
        default timeout; see :meth:`call_with` for options.

        :raises ApplicationError: the callee or router answered with an error.
        :raises CallTimeout: no result in time (the call was canceled).
        :raises NotConnected: no session right now.
        :raises ConnectionClosed: the connection dropped before the result came.
        """
        return self.call_with(procedure, args, kwargs)

    def call_with(
        self,
        procedure: str,
        args: t.Sequence[t.Any] = (),
        kwargs: dict[str, t.Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        on_progress: t.Callable[[t.Any], None] | None = None,
        cancel_mode: str | None = None,
        options: dict[str, t.Any] | None = None,
    ) -> t.Any:
        """:meth:`call` with options.

        :param timeout: seconds (``None``: wait forever); default the peer's ``call_timeout``.
        :param on_progress: receive progressive results: called (in this greenlet) with each.
        :param cancel_mode: CANCEL mode on timeout, default the peer's.
        :param options: further CALL options (e.g. ``{"disclose_me": True}``).
        """
        if on_progress is None:
            conn = self._connection()
            waiter = gevent.event.AsyncResult()
            request_id, message = conn.core.call(waiter, procedure, args, kwargs, options)
            conn.send(message)
            if timeout is DEFAULT:
                timeout = self.call_timeout
            try:
                waiter.wait(timeout)
            except BaseException:  # this greenlet was killed (e.g. the HTTP client went away)
                self._cancel_quietly(conn, request_id, cancel_mode)
                raise
            if not waiter.ready():
                raise self._timed_out(conn, request_id, procedure, timeout, cancel_mode)
            return waiter.get(block=False)
        last = None
        for item, final in self._stream(procedure, args, kwargs, timeout, cancel_mode, options):
            if final:
                last = item
            else:
                on_progress(item)
        return last

    def stream(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Iterator[t.Any]:
        """Call with progressive results: yield each progressive result, then the final result.

        The peer's ``call_timeout`` bounds the wait for each item; stopping the
        iteration early cancels the call. For other options use
        :meth:`call_with` with ``on_progress``.
        """
        for item, _ in self._stream(procedure, args, kwargs, DEFAULT, None, None):
            yield item

    def _stream(self, procedure: str, args: t.Sequence[t.Any], kwargs: dict[str, t.Any] | None,
                timeout: float | None, cancel_mode: str | None,
                options: dict[str, t.Any] | None) -> t.Iterator[tuple[t.Any, bool]]:
        conn = self._connection()
        token = _Stream()
        request_id, message = conn.core.call(token, procedure, args, kwargs,
                                             {**(options or {}), "receive_progress": True})
        conn.send(message)
        if timeout is DEFAULT:
            timeout = self.call_timeout
        done = False
        try:
            while True:
                try:
                    kind, value = token.queue.get(timeout=timeout)
                except gevent.queue.Empty:
                    done = True
                    raise self._timed_out(conn, request_id, procedure, timeout, cancel_mode) from None
                if kind == 2:
                    done = True
                    raise value
                yield value, kind == 1
                if kind == 1:
                    done = True
                    return
        finally:
            if not done:  # the consumer stopped early (or was killed): cancel
                self._cancel_quietly(conn, request_id, cancel_mode)

    def _cancel_quietly(self, conn: _Connection, request_id: int, cancel_mode: str | None) -> None:
        cancel = conn.core.cancel(request_id, cancel_mode or self.cancel_mode)
        if cancel is not None:
            try:
                conn.send(cancel)
            except TransportError:
                pass

    def _timed_out(self, conn: _Connection, request_id: int, procedure: str, timeout: float | None,
                   cancel_mode: str | None) -> CallTimeout:
        mode = cancel_mode or self.cancel_mode
        self._cancel_quietly(conn, request_id, mode)
        return CallTimeout(
            None, f"call to {procedure!r} got no result within {timeout:g} s and was canceled ({mode}); "
                  "pass a longer timeout or set WAMP_BRIDGE_CALL_TIMEOUT"
        )

    def publish(self, topic: str, *args: t.Any, **kwargs: t.Any) -> None:
        """Publish an event to ``topic`` (fire and forget).

        Unlike WAMP's default, the publishing session also gets the event
        (``exclude_me`` false), so subscribers in every worker, this one
        included, see it. Use :meth:`publish_with` for options.
        """
        self.publish_with(topic, args, kwargs)

    def publish_with(
        self,
        topic: str,
        args: t.Sequence[t.Any] = (),
        kwargs: dict[str, t.Any] | None = None,
        *,
        acknowledge: bool = False,
        timeout: float | None = DEFAULT,
        options: dict[str, t.Any] | None = None,
    ) -> int | None:
        """Publish with PUBLISH ``options`` (e.g. ``eligible_authid``, ``exclude_me``).

        With ``acknowledge`` wait for the router's answer (raising
        :class:`ApplicationError` when refused) and return the publication id.
        """
        conn = self._connection()
        opts = {"exclude_me": False, **(options or {})}
        if acknowledge:
            opts["acknowledge"] = True
            waiter = gevent.event.AsyncResult()
            request_id, message = conn.core.publish(waiter, topic, args, kwargs, opts)
            conn.send(message)
            if timeout is DEFAULT:
                timeout = self.call_timeout
            try:
                return t.cast(int, waiter.get(timeout=timeout))
            except gevent.Timeout:
                conn.core.forget(request_id)
                raise CallTimeout(None, f"publish to {topic!r} was not acknowledged within {timeout:g} s") from None
        _, message = conn.core.publish(None, topic, args, kwargs, opts)
        conn.send(message)
        return None

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.core.is_established:
            return conn
        if self._runner is None:
            if self._stopping:
                raise NotConnected("the WAMP peer was stopped (the worker is shutting down)")
            self.start()  # first use outside a gunicorn worker: connect lazily
        assert self._first_attempt is not None and self._ready is not None
        if not self._first_attempt.is_set():
            # the first connection attempt is under way: give it its time once
            self._first_attempt.wait(2 * self.connect_timeout)
            conn = self._conn
            if conn is not None and conn.core.is_established:
                return conn
        raise NotConnected(
            f"no WAMP session with the router at {self.url} (realm {self.realm!r}) right now; the peer "
            "keeps reconnecting in the background. Check that the router is running and that "
            "WAMP_BRIDGE_ROUTER_URL, WAMP_BRIDGE_REALM and the peer credentials are right"
        )

    # -- callee / subscriber --------------------------------------------------------

    def register(self, uri: str, fn: t.Callable[..., t.Any], *, timeout: float | None = DEFAULT,
                 **options: t.Any) -> Registration:
        """Serve ``fn`` as procedure ``uri`` (REGISTER ``options``: ``match``, ``invoke``, ...).

        ``invoke`` defaults to the peer's policy (``"roundrobin"``), so every
        worker can register the same URI. Before the session is up this only
        records the registration; it is made (again) on every join. When
        connected it waits for the router's answer.

        :raises ApplicationError: the router refused (e.g. not authorized).
        """
        if self.invoke and self.invoke != "single":
            options.setdefault("invoke", self.invoke)
        reg = Registration(self, uri, fn, options)
        self._registrations.append(reg)
        self._sync(reg, timeout, remove_on_error=self._registrations)
        return reg

    def subscribe(self, topic: str, fn: t.Callable[..., t.Any], *, timeout: float | None = DEFAULT,
                  **options: t.Any) -> Subscription:
        """Run ``fn`` for each event on ``topic`` (SUBSCRIBE ``options``: ``match``).

        Subscribers run in every worker process; see the module docstring.
        """
        sub = Subscription(self, topic, fn, options)
        self._subscriptions.append(sub)
        self._sync(sub, timeout, remove_on_error=self._subscriptions)
        return sub

    def _sync(self, reg: Registration, timeout: float | None, remove_on_error: list[t.Any]) -> None:
        conn = self._conn
        if conn is None or not conn.core.is_established:
            return
        if timeout is DEFAULT:
            timeout = self.call_timeout
        try:
            self._send_request(conn, reg)
            assert reg._answer is not None
            reg._answer.get(timeout=timeout)
        except gevent.Timeout:
            raise CallTimeout(None, f"the router did not answer registering {reg.uri!r} in time; it is "
                                    "registered again on the next reconnect") from None
        except ApplicationError:
            remove_on_error.remove(reg)
            raise

    def _send_request(self, conn: _Connection, reg: Registration) -> None:
        reg._answer = gevent.event.AsyncResult()
        if isinstance(reg, Subscription):
            _, message = conn.core.subscribe(reg, reg.uri, reg.options)
        else:
            _, message = conn.core.register(reg, reg.uri, reg.options)
        conn.send(message)

    def _unregister(self, reg: Registration, timeout: float | None) -> None:
        owner: list[t.Any] = self._subscriptions if isinstance(reg, Subscription) else self._registrations
        if reg in owner:
            owner.remove(reg)
        conn = self._conn
        if reg.id is None or conn is None or not conn.core.is_established:
            reg.id = None
            return
        # the handle is the token: its answer comes back to reg.set()/set_exception()
        waiter = reg._answer = gevent.event.AsyncResult()
        if isinstance(reg, Subscription):
            request = conn.core.unsubscribe(reg, reg.id)
        else:
            request = conn.core.unregister(reg, reg.id)
        reg.id = None
        if request is None:
            return
        conn.send(request[1])
        try:
            waiter.get(timeout=self.call_timeout if timeout is None else timeout)
        except gevent.Timeout:
            conn.core.forget(request[0])
            raise CallTimeout(None, f"the router did not answer unregistering {reg.uri!r} in time") from None

    _unsubscribe = _unregister

    # -- the connection loop --------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        assert self._first_attempt is not None and self._wakeup is not None
        while not self._stopping:
            conn = None
            joined = False
            try:
                conn = self._connect()
                joined = self._serve(conn)
            except BridgeError as exc:
                log.warning("WAMP peer: cannot join realm %r at %s as authid %r: %s", self.realm, self.url,
                            self.auth.authid, exc)
            except Exception:
                log.exception("WAMP peer: unexpected error on the connection to %s", self.url)
            finally:
                if conn is not None:
                    self._close_transport(conn, 1000)
                    self._lost(conn, "the connection to the router was lost")
                self._first_attempt.set()
                if joined:
                    attempt = 0
                else:  # this node did not take us: try the next one (if there are several)
                    self.url = next_url(self.urls, self.url)
            if self._stopping:
                break
            delay = peercore.backoff_delay(attempt, initial=self.reconnect_initial, maximum=self.reconnect_max,
                                           factor=self.reconnect_factor, rand=random.random())
            attempt += 1
            log.info("WAMP peer: reconnecting to %s in %.1f s", self.url, delay)
            self._wakeup.wait(delay)

    def _connect(self) -> _Connection:
        if self.max_message_size:
            ws = connect(self.url, subprotocols=self.subprotocols, timeout=self.connect_timeout,
                         max_message_size=self.max_message_size)
        else:
            ws = connect(self.url, subprotocols=self.subprotocols, timeout=self.connect_timeout)
        try:
            serializer = serializer_for(ws.subprotocol or "")
        except ProtocolError:
            ws.close(1002, "no WAMP subprotocol")
            raise ConnectionClosed(f"the router at {self.url} chose no WAMP subprotocol "
                                   f"(offered {', '.join(self.subprotocols)})") from None
        if self.ping_interval:  # a stalled router: ping after the interval, lost after the timeout
            ws.configure(ping_interval=self.ping_interval, idle_timeout=self.ping_interval + self.ping_timeout)
        return _Connection(ws, PeerCore(self.realm, self.auth), serializer)

    def _serve(self, conn: _Connection) -> bool:
        """Run one connection until it ends; returns whether a session was established."""
        self._conn = conn
        conn.send(conn.core.hello())
        deadline = gevent.spawn_later(self.connect_timeout, self._join_deadline, conn)
        try:
            self._read(conn)
        finally:
            deadline.kill(block=False)
        return bool(conn.joined.is_set())

    def _join_deadline(self, conn: _Connection) -> None:
        if not conn.joined.is_set():
            log.warning("WAMP peer: no WELCOME from %s within %g s; %s", self.url, self.connect_timeout,
                        JOIN_TIMEOUT_HINT)
            self._close_transport(conn, 1000)

    def _read(self, conn: _Connection) -> None:
        serializer, bounds = conn.serializer, self.bounds
        receive = conn.core.receive
        ws = conn.ws
        act = self._act
        while True:
            try:
                data = ws.receive()
            except TransportError:
                return
            if data is None:
                return
            try:
                message = decode_or_head(serializer, data, bounds)
                if isinstance(message, Undecodable):
                    actions = self._undecodable(conn, message)
                else:
                    actions = receive(message)
            except ProtocolError as exc:
                log.error("WAMP peer: protocol violation by the router: %s", exc)
                for action in conn.core.abort("wamp.error.protocol_violation", str(exc)):
                    act(conn, action)
                self._close_transport(conn, exc.close_code)
                return
            for action in actions:
                act(conn, action)
            if conn.closed.is_set():
                return

    def _undecodable(self, conn: _Connection, bad: Undecodable) -> list[t.Any]:
        """A message the peer cannot take ends only what it belongs to, never the session."""
        kind, request_id = bad.kind, bad.request_id
        name = MessageType(kind).name if kind is not None and kind in MessageType._value2member_map_ else "message"
        log.warning("WAMP peer: dropped a %s from the router that cannot be decoded: %s", name, bad.reason)
        if request_id is None:
            return []
        answer: list[t.Any] = [8, None, request_id, {}, "wamp.error.invalid_argument",
                               ["the message could not be decoded within the peer's bounds"]]
        if kind == MessageType.INVOCATION:
            answer[1] = int(MessageType.INVOCATION)
            return [peercore.Send(answer)]
        if kind == MessageType.RESULT or kind == MessageType.ERROR:  # the call (or request) fails, alone
            answer[1] = bad.request_kind if kind == MessageType.ERROR else int(MessageType.CALL)
            try:
                return conn.core.receive(answer)
            except ProtocolError:
                return []
        return []  # an EVENT, or anything else: dropped

    def _act(self, conn: _Connection, action: t.Any) -> None:
        kind = type(action)
        if kind is peercore.Result:
            value = peercore.result_value(action.args, action.kwargs)
            if action.progress:
                progress = getattr(action.token, "progress", None)
                if progress is not None:
                    progress(value)
            else:
                action.token.set(value)
        elif kind is peercore.Invoke:
            self._submit(self._invoke, (conn, action))
        elif kind is peercore.Deliver:
            for handler in action.handlers:
                self._submit(self._deliver, (handler, action))
        elif kind is peercore.Send:
            try:
                conn.send(action.message)
            except TransportError:
                pass
        elif kind is peercore.Failed:
            action.token.set_exception(_application_error(action.error, action.args, action.kwargs))
        elif kind in (peercore.Registered, peercore.Subscribed):
            action.token.set(action.registration_id if kind is peercore.Registered else action.subscription_id)
        elif kind in (peercore.Unregistered, peercore.Unsubscribed, peercore.Published):
            if action.token is not None:
                action.token.set(getattr(action, "publication_id", None))
        elif kind is peercore.Interrupt:
            greenlet = self._running.pop((conn, action.request_id), None)
            if greenlet is not None:
                greenlet.kill(block=False)
        elif kind is peercore.Joined:
            self._joined(conn, action)
        elif kind is peercore.Closed:
            self._closed(conn, action)
        elif kind is peercore.Revoked:
            for token in action.tokens:
                token.id = None
            log.warning("WAMP peer: the router removed %s %s (%s)", action.kind,
                        ", ".join(repr(token.uri) for token in action.tokens), action.reason)

    def _joined(self, conn: _Connection, action: peercore.Joined) -> None:
        details = action.details
        log.info("WAMP peer: joined realm %r as %r (role %r), session %s", self.realm,
                 details.get("authid"), details.get("authrole"), action.session_id)
        conn.joined.set()
        gevent.spawn(self._restore, conn)

    def _restore(self, conn: _Connection) -> None:
        """(Re-)register and (re-)subscribe everything on a new session, then mark the peer ready."""
        pending = []
        for reg in [*self._registrations, *self._subscriptions]:
            try:
                self._send_request(conn, reg)
            except BridgeError:
                break
            pending.append(reg)
        for reg in pending:
            assert reg._answer is not None
            try:
                reg._answer.get(timeout=self.connect_timeout)
            except gevent.Timeout:
                log.error("WAMP peer: no answer registering %r", reg.uri)
            except BridgeError as exc:
                log.error("WAMP peer: cannot %s %r: %s",
                          "subscribe to" if isinstance(reg, Subscription) else "register", reg.uri, exc)
        if conn is self._conn and conn.core.is_established and self._ready is not None:
            self._ready.set()
        if self._first_attempt is not None:
            self._first_attempt.set()

    def _closed(self, conn: _Connection, action: peercore.Closed) -> None:
        conn.closed.set()
        if self._ready is not None and conn is self._conn:
            self._ready.clear()
        level = logging.INFO if action.reason in ("wamp.close.system_shutdown", "wamp.close.goodbye_and_out",
                                                   "wamp.close.normal", "wamp.close.close_realm") else logging.WARNING
        if action.aborted and not conn.joined.is_set():
            hint = PEER_JOIN_HINTS.get(action.reason, "")
            log.warning("WAMP peer: the router refused to join realm %r: %s %s%s", self.realm, action.reason,
                        action.message, f"; {hint}" if hint else "")
        else:
            log.log(level, "WAMP peer: session closed: %s %s", action.reason, action.message)
        self._fail_pending(action.pending, action.reason, action.message)
        if action.aborted and not conn.joined.is_set():
            self._close_transport(conn, 1000)

    def _lost(self, conn: _Connection, message: str) -> None:
        if self._conn is conn:
            self._conn = None
        if self._ready is not None:
            self._ready.clear()
        if conn.core.state is not peercore.PeerState.CLOSED:
            closed = conn.core.connection_lost(message)
            conn.closed.set()
            self._fail_pending(closed.pending, closed.reason, closed.message)
        for reg in [*self._registrations, *self._subscriptions]:
            reg.id = None

    def _fail_pending(self, tokens: tuple[t.Any, ...], reason: str, message: str) -> None:
        for token in tokens:
            token.set_exception(ConnectionClosed(
                f"the WAMP session ended before the answer came ({reason}{': ' + message if message else ''}); "
                "the call may or may not have run", reason=reason))

    @staticmethod
    def _close_transport(conn: _Connection, code: int) -> None:
        try:
            conn.ws.close(code)
        except Exception:  # closing an already broken socket
            pass

    # -- running handlers ------------------------------------------------------------------

    def _submit(self, fn: t.Callable[..., None], args: tuple[t.Any, ...]) -> None:
        if self._active < self.concurrency:
            self._active += 1
            gevent.spawn(self._task, fn, args)
        elif len(self._waiting) < self.backlog:
            self._waiting.append((fn, args))
        elif fn == self._invoke:
            conn, action = args
            log.error("WAMP peer: %d handlers busy and %d waiting; refusing a call to %r",
                      self.concurrency, self.backlog, action.details.procedure)
            message = conn.core.invocation_error(action.request_id, "wamp.error.unavailable",
                                                 ["the server is overloaded; retry later"])
            if message is not None:
                try:
                    conn.send(message)
                except TransportError:
                    pass
        else:
            log.error("WAMP peer: %d handlers busy and %d waiting; dropping an event on %r",
                      self.concurrency, self.backlog, args[1].details.topic)

    def _task(self, fn: t.Callable[..., None], args: tuple[t.Any, ...]) -> None:
        try:
            fn(*args)
        finally:
            if self._waiting:
                next_fn, next_args = self._waiting.popleft()
                gevent.spawn(self._task, next_fn, next_args)
            else:
                self._active -= 1

    def _invoke(self, conn: _Connection, action: peercore.Invoke) -> None:
        request_id = action.request_id
        core = conn.core
        if not core.invocation_active(request_id):
            return  # interrupted while it waited in the backlog
        details = action.details
        if details.receive_progress:
            details = dataclasses.replace(details, progress=_ProgressSender(conn, request_id))
        reg: Registration = action.handler
        self._running[conn, request_id] = gevent.getcurrent()
        token = _current.set(details)
        try:
            value = reg.fn(*action.args, **action.kwargs)
        except gevent.GreenletExit:
            log.info("WAMP peer: call to %r interrupted by the caller", details.procedure)
            return
        except Exception as exc:
            message = core.invocation_error(request_id, *self._error_payload(exc, details.procedure))
        else:
            message = core.yield_(request_id, *peercore.yield_payload(value))
        finally:
            _current.reset(token)
            self._running.pop((conn, request_id), None)
        if message is None:
            return
        try:
            data = conn.serializer.dumps(message)
        except LocalProtocolError as exc:  # the return value cannot be serialized
            data = conn.serializer.dumps(peercore.invocation_error_message(
                request_id, *self._error_payload(exc, details.procedure)))
        try:
            conn.send_data(data)
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
        if self.debug:
            return "wamp.error.runtime_error", [f"{type(exc).__name__}: {exc}"], {
                "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}
        return "wamp.error.runtime_error", ["the procedure failed; the server log has the details"], {}

    def _deliver(self, sub: Subscription, action: peercore.Deliver) -> None:
        token = _current.set(action.details)
        try:
            sub.fn(*action.args, **action.kwargs)
        except Exception:
            log.exception("WAMP peer: event handler for %r raised", action.details.topic)
        finally:
            _current.reset(token)


def _application_error(error: str, args: list[t.Any], kwargs: dict[str, t.Any]) -> ApplicationError:
    # set after construction: a WAMP kwarg may be called "error"
    exc = ApplicationError(error)
    exc.args = tuple(args)
    exc.kwargs = dict(kwargs)
    return exc


class _ProgressSender:
    """``details.progress(*args, **kwargs)``: send one progressive result of this invocation."""

    __slots__ = ("_conn", "_request_id")

    def __init__(self, conn: _Connection, request_id: int) -> None:
        self._conn = conn
        self._request_id = request_id

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> None:
        message = self._conn.core.yield_(self._request_id, args, kwargs, progress=True)
        if message is None:
            raise NotConnected("the call was canceled or the session ended; stop sending progress")
        self._conn.send(message)

