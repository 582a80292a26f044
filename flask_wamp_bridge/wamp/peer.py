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
:class:`~flask_wamp_bridge.wamp.session_events.InvocationDetails` or
:class:`~flask_wamp_bridge.wamp.session_events.EventDetails` of what is being handled
(caller identity when the router discloses it; ``progress`` to send
progressive results).

Subscribers run in *every* worker process (each has its own session): work
that must happen exactly once belongs in a procedure (a shared registration
gives each call to one worker).

The peer reaches the router over a WebSocket (``upstream="websocket"``, the
default), or over WAMP RawSocket as the relays do (``"rawsocket"``): msgpack,
on the router's Unix socket (``rawsocket_path``) or else TCP (each node's
address from its URL: :func:`~flask_wamp_bridge.wamp.router_urls.rawsocket_address`).
Crossbar knows no RawSocket PING, so over RawSocket a silent router is probed
with a WAMP CALL it answers (see :mod:`~flask_wamp_bridge.wamp.peer_connection`);
the other way round, Crossbar cannot tell a stalled worker's peer from an idle
one and keeps its registrations (calls routed to it wait until it resumes),
where over a WebSocket its ping timeout drops the session.

This module is the peer's public face and its reconnect loop; each transport
and the session on it is a :class:`~flask_wamp_bridge.wamp.peer_connection.PeerConnection`.
Both are gevent code, imported lazily by the extension, never by
``import flask_wamp_bridge``.
"""

from __future__ import annotations

import logging
import random
import typing as t

import gevent
import gevent.event
import gevent.queue

from ..errors import BridgeError
from ..errors import CallTimeout
from ..errors import ConfigError
from ..errors import ConnectionClosed
from ..errors import NotConnected
from ..errors import ProtocolError
from ..settings import CANCEL_MODES
from ..settings import DEFAULTS
from ..settings import UPSTREAMS
from ..websocket.client import connect as default_connect
from .bounds import PEER_BOUNDS
from .bounds import Bounds
from .handler_pool import HandlerPool
from .handles import Registration
from .handles import Subscription
from .messages import SUBPROTOCOLS
from .messages import serializer_for
from .peer_connection import ConnectionConfig
from .peer_connection import PeerConnection
from .peer_connection import Stream
from .peer_connection import WebSocketLike
from .peer_connection import current
from .rawsocket_connection import RawSocketConnection
from .rawsocket_connection import connect_rawsocket
from .router_urls import check_rawsocket_keeps_tls
from .router_urls import next_url
from .router_urls import rawsocket_address
from .router_urls import router_urls
from .session import backoff_delay
from .session_events import EventDetails
from .session_events import InvocationDetails

if t.TYPE_CHECKING:  # pragma: no cover
    from .client_auth import ClientAuth

__all__ = ["Peer", "current_details", "DEFAULT", "Connector", "RAWSOCKET_SUBPROTOCOL"]

log = logging.getLogger(__name__)

#: What the peer speaks over RawSocket when offered: the router's cheapest serializer.
RAWSOCKET_SUBPROTOCOL = "wamp.2.msgpack"


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the peer's configured value" (for ``timeout``).
DEFAULT: t.Any = _Default()


#: ``connect(url, *, subprotocols, timeout, max_message_size)``: opens the peer's transport
#: (default: the router's RawSocket transport, or :func:`flask_wamp_bridge.websocket.client.connect`).
Connector = t.Callable[..., WebSocketLike]


def current_details() -> InvocationDetails | EventDetails | None:
    """Details of the invocation or event being handled by this greenlet, else ``None``."""
    return current.get()


class Peer:
    """A WAMP client session for one worker process, kept up for the life of the process.

    :param url: the router's WebSocket URL, or several (router nodes): after a failed
        attempt the peer tries the next one. Over RawSocket a node's TCP address is
        its URL's host and ``rawsocket_port`` (default: the URL's port + 1).
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
        up to ``reconnect_max``, with jitter (each delay lies between half and all of it). The low
        cap brings the peer back within seconds of the router's return, even after a long outage.
    :param debug: send exception type, message and traceback to callers (never in production).
    :param subprotocols: serializers to offer, in order of preference (over RawSocket: msgpack
        if among them, else the first).
    :param max_message_size: largest message accepted from the router (bytes), None for the transport's default.
    :param ping_interval: seconds of silence from the router before the peer
        pings it (None: never); after ``ping_timeout`` more the connection is
        taken as lost (pending calls fail, the peer reconnects). Over RawSocket
        the ping is a WAMP CALL to ``wamp.session.count`` (any answer will do).
    :param bounds: payload bounds for what the router delivers; a message past them (or not
        decodable) ends only its invocation (ERROR ``wamp.error.invalid_argument``), event or call.
    :param upstream: ``"websocket"`` (``url`` itself) or ``"rawsocket"`` (WAMP RawSocket:
        ``rawsocket_path``, else TCP on ``rawsocket_port``; see the module docs).
    :param rawsocket_path: the router's RawSocket Unix socket (a router on this host).
    :param rawsocket_port: the router's RawSocket TCP port (None: each URL's port + 1).
    :param connect: ``connect(url, *, subprotocols, timeout[, max_message_size])`` opening the
        transport instead (a seam for tests; ``upstream`` is then not used).
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
        connect_timeout: float = DEFAULTS["WAMP_BRIDGE_CONNECT_TIMEOUT"],
        reconnect_initial: float = 0.5,
        reconnect_max: float = 2.5,
        reconnect_factor: float = 2.0,
        debug: bool = False,
        subprotocols: t.Sequence[str] = SUBPROTOCOLS,
        max_message_size: int | None = None,
        ping_interval: float | None = 12.0,
        ping_timeout: float = 3.0,
        bounds: Bounds = PEER_BOUNDS,
        upstream: str = "websocket",
        rawsocket_path: str | None = None,
        rawsocket_port: int | None = None,
        connect: Connector | None = None,
    ) -> None:
        if cancel_mode not in CANCEL_MODES:
            raise ConfigError(f"cancel mode {cancel_mode!r} is not one of {', '.join(CANCEL_MODES)}")
        if concurrency < 1 or backlog < 0:
            raise ConfigError("concurrency must be at least 1 and backlog at least 0")
        for subprotocol in subprotocols:
            serializer_for(subprotocol)
        if upstream not in UPSTREAMS:
            raise ConfigError(f"upstream {upstream!r} is not one of {', '.join(UPSTREAMS)}")
        #: The router nodes to try, in order; :attr:`url` is the one in use (or tried next).
        self.urls = router_urls(url)
        self.url = self.urls[0]
        if upstream == "rawsocket":
            check_rawsocket_keeps_tls(self.urls, rawsocket_path, "the app's peer", "WAMP_BRIDGE_PEER_UPSTREAM")
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
        #: How the peer reaches the router: ``"rawsocket"`` or ``"websocket"``.
        self.upstream = upstream
        self.rawsocket_path = rawsocket_path
        self.rawsocket_port = rawsocket_port
        self._open = connect
        #: Where invocations and events run (a registration may have a pool of its own).
        self.handlers = HandlerPool(concurrency, backlog)
        self._pools: dict[str, HandlerPool] = {}
        self._registrations: list[Registration] = []
        self._subscriptions: list[Subscription] = []
        # gevent objects are made in start(): the peer may be built before fork
        self._conn: PeerConnection | None = None
        self._runner: gevent.Greenlet | None = None
        self._stopping = False
        self._close_code = 1000
        self._first_attempt: gevent.event.Event | None = None
        self._ready: gevent.event.Event | None = None
        self._wakeup: gevent.event.Event | None = None
        self.signal_sender: t.Callable[[], object] | None = None  #: gives the signals' sender (None: the peer)
        self.joins = 0  # sessions established so far (a rejoin re-registers)

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
        # 1001 "going away" when the process stops; the reader closes with it too when it sees the GOODBYE first
        self._close_code = 1001 if reason == "wamp.close.system_shutdown" else 1000
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
            conn.close_transport(self._close_code)
        if runner is not None:
            runner.join(timeout)
            runner.kill(block=True, timeout=timeout)
        self._conn = None

    # -- caller / publisher ---------------------------------------------------------

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Call ``procedure`` with these arguments and return its result.

        A single result value is returned as is; several, or keyword results,
        come as a :class:`~flask_wamp_bridge.wamp.session_events.CallResult`. Uses the
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
                conn.cancel_quietly(request_id, cancel_mode)
                raise
            if not waiter.ready():
                raise conn.timed_out(request_id, procedure, timeout, cancel_mode)
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
        token = Stream()
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
                    raise conn.timed_out(request_id, procedure, timeout, cancel_mode) from None
                if kind == Stream.FAILED:
                    done = True
                    raise value
                yield value, kind == Stream.FINAL
                if kind == Stream.FINAL:
                    done = True
                    return
        finally:
            if not done:  # the consumer stopped early (or was killed): cancel
                conn.cancel_quietly(request_id, cancel_mode)

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

    def _connection(self) -> PeerConnection:
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
                 report: bool = True, pool: HandlerPool | None = None, **options: t.Any) -> Registration:
        """Serve ``fn`` as procedure ``uri`` (REGISTER ``options``: ``match``, ``invoke``, ...).

        ``invoke`` defaults to the peer's policy (``"roundrobin"``), so every
        worker can register the same URI. Before the session is up this only
        records the registration; it is made (again) on every join. When
        connected it waits for the router's answer (``report=False``: no ``registration_failed`` signal).
        ``pool``: run its invocations there instead of in the peer's :attr:`handlers`.

        :raises ApplicationError: the router refused (e.g. not authorized).
        """
        if self.invoke and self.invoke != "single":
            options.setdefault("invoke", self.invoke)
        reg = Registration(uri, fn, options, self._release, pool)
        self._registrations.append(reg)
        self._sync(reg, timeout, owner=self._registrations, report=report)
        return reg

    def subscribe(self, topic: str, fn: t.Callable[..., t.Any], *, timeout: float | None = DEFAULT,
                  **options: t.Any) -> Subscription:
        """Run ``fn`` for each event on ``topic`` (SUBSCRIBE ``options``: ``match``).

        Subscribers run in every worker process; see the module docstring.
        """
        sub = Subscription(topic, fn, options, self._release)
        self._subscriptions.append(sub)
        self._sync(sub, timeout, owner=self._subscriptions)
        return sub

    def pool(self, name: str, concurrency: int, backlog: int) -> HandlerPool:
        """The peer's handler pool called ``name`` (made on first use): pass it to :meth:`register`."""
        if concurrency < 1 or backlog < 0:
            raise ConfigError(f"pool {name!r}: concurrency must be at least 1 and backlog at least 0")
        found = self._pools.get(name)
        if found is None:
            found = self._pools[name] = HandlerPool(concurrency, backlog, name)
        return found

    def _sync(self, reg: Registration, timeout: float | None, owner: list[t.Any], report: bool = True) -> None:
        conn = self._conn
        if conn is not None and conn.core.is_established:
            conn.request_and_wait(reg, self.call_timeout if timeout is DEFAULT else timeout, owner, report)

    def _release(self, reg: Registration, timeout: float | None) -> None:
        """UNREGISTER or UNSUBSCRIBE ``reg`` and forget it."""
        owner: list[t.Any] = self._subscriptions if isinstance(reg, Subscription) else self._registrations
        if reg in owner:
            owner.remove(reg)
        conn = self._conn
        if reg.id is None or conn is None or not conn.core.is_established:
            reg.id = None
            return
        # the handle is the token: its answer comes back to reg.set()/set_exception()
        request = reg.release_request(conn.core, reg.id)
        reg.id = None
        if request is None:
            return
        conn.send(request[1])
        try:
            reg.wait_answer(self.call_timeout if timeout is None else timeout)
        except gevent.Timeout:
            conn.core.forget(request[0])
            raise CallTimeout(None, f"the router did not answer unregistering {reg.uri!r} in time") from None

    # -- the connection loop --------------------------------------------------------------

    def handles(self) -> list[Registration]:
        """Every registration and subscription the peer keeps (made again on each new session)."""
        return [*self._registrations, *self._subscriptions]

    def _run(self) -> None:
        attempt = 0
        assert self._first_attempt is not None and self._wakeup is not None
        while not self._stopping:
            conn = None
            joined = False
            try:
                conn = self._connect()
                self._conn = conn
                joined = conn.serve()
            except BridgeError as exc:
                log.warning("WAMP peer: cannot join realm %r at %s as authid %r: %s", self.realm, self.url,
                            self.auth.authid, exc)
            except Exception:
                log.exception("WAMP peer: unexpected error on the connection to %s", self.url)
            finally:
                if conn is not None:
                    conn.close_transport(self._close_code if self._stopping else 1000)
                    self._lost(conn, "the connection to the router was lost")
                self._first_attempt.set()
                if joined:
                    attempt = 0
                else:  # this node did not take us: try the next one (if there are several)
                    self.url = next_url(self.urls, self.url)
            if self._stopping:
                break
            delay = backoff_delay(attempt, initial=self.reconnect_initial, maximum=self.reconnect_max,
                                           factor=self.reconnect_factor, rand=random.random())
            attempt += 1
            log.info("WAMP peer: reconnecting to %s in %.1f s", self.url, delay)
            self._wakeup.wait(delay)

    def _connect(self) -> PeerConnection:
        connect = self._open
        if connect is None:
            connect = t.cast(Connector, self._connect_rawsocket if self.upstream == "rawsocket" else default_connect)
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
        configure = getattr(ws, "configure", None)
        pings = hasattr(ws, "ping")  # a WebSocket: a stalled router is pinged, then lost after the timeout
        if self.ping_interval and pings and configure is not None:
            configure(ping_interval=self.ping_interval, idle_timeout=self.ping_interval + self.ping_timeout)
        config = ConnectionConfig(url=self.url, realm=self.realm, auth=self.auth, serializer=serializer,
                                  connect_timeout=self.connect_timeout, cancel_mode=self.cancel_mode,
                                  bounds=self.bounds, debug=self.debug,
                                  probe_interval=None if pings else self.ping_interval,
                                  probe_timeout=self.ping_timeout)
        return PeerConnection(config, self, ws)

    def _connect_rawsocket(self, url: str, *, subprotocols: t.Sequence[str], timeout: float,
                           max_message_size: int | None = None) -> RawSocketConnection:
        """Open the RawSocket transport of the router node at ``url`` (msgpack when offered)."""
        wanted = RAWSOCKET_SUBPROTOCOL if RAWSOCKET_SUBPROTOCOL in subprotocols else subprotocols[0]
        return connect_rawsocket(rawsocket_address(url, self.rawsocket_path, self.rawsocket_port),
                                 serializer_for(wanted).name, timeout=timeout, max_message_size=max_message_size,
                                 keepalive=self.ping_interval)

    # -- the connection's owner (a peer_connection.ConnectionOwner): called by the connection --

    def connection_joined(self, conn: PeerConnection) -> bool:
        """``conn``'s session is established; whether an earlier one was (then everything is made again)."""
        self.joins += 1
        return self.joins > 1

    def connection_ready(self, conn: PeerConnection) -> None:
        """``conn`` joined and every registration and subscription was answered."""
        if conn is self._conn and conn.core.is_established and self._ready is not None:
            self._ready.set()
        if self._first_attempt is not None:
            self._first_attempt.set()

    def connection_closed(self, conn: PeerConnection) -> None:
        """``conn``'s session ended (its transport may still be open)."""
        if self._ready is not None and conn is self._conn:
            self._ready.clear()

    def _lost(self, conn: PeerConnection, message: str) -> None:
        if self._conn is conn:
            self._conn = None
        if self._ready is not None:
            self._ready.clear()
        conn.lost(message)
        for reg in self.handles():
            reg.id = None
