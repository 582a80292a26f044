"""The gevent side of the WAMP endpoint: runs one :class:`~flask_wamp_bridge.bridge.relay.Relay` between two sockets.

:class:`RelaySession` owns the browser's WebSocket (accepted by the endpoint)
and, once the relay asks for it, one upstream WebSocket to the router. The
request's own greenlet reads the browser; the router leg holds no greenlet
while idle: the upstream socket calls back when it is readable, and a greenlet
spawned then reads what is there (``receive_nowait``) and ends (about 9 KiB
less per idle session). Both feed what they read to the relay and carry out its
actions; the sockets batch the resulting writes. When either direction ends, the relay says ``Close`` and both
sockets are closed with explicit codes.

Bounded memory: a send to a peer that does not read times out (the sockets'
``send_timeout``; the connection is then dropped); each socket has a maximum
message size (the browser's from the accept options, the upstream's from
``connect``); while a send blocks, its greenlet reads nothing more, so TCP
backpressure reaches the sender; the upstream connect has a timeout and the
login a deadline (the relay's). Keepalive pings: the browser socket's
(accept options) and the router's own (its transport's auto-ping).

Upstream liveness costs no timer and no greenlet per session: the socket's
readable callback notes when the router last sent anything (data, its own
pings, pongs), and the process ticker looks at that. An upstream silent for
``ping_interval`` gets one ping (the generated router config pings every 10 s
by itself, so an idle healthy router is heard before the bridge ever pings);
silent for ``ping_interval + ping_timeout`` it is a lost router.

A RawSocket upstream (``upstream="rawsocket"``, :mod:`~flask_wamp_bridge.wamp.rawsocket_connection`) has no
ping: Crossbar knows no RawSocket PING (it drops the connection on one) and answers no WAMP message that would
not reach the browser's session. Its liveness is the connection's end: a Unix socket reads EOF as soon as the
router's process is gone, a TCP one has kernel keepalives (``ping_interval`` idle, then probes). A router that
is up but stalled is noticed by the app's peer, which keeps a liveness check of its own: when it sends
:data:`~flask_wamp_bridge.signals.router_lost` for a node, :func:`router_lost` notes it and the ticker's next
pass ends every relay of that app to that node that keeps no liveness check of its own (no ping) and has heard
nothing from the router since, with the router-silent fault. Relays that heard the router since stay (it is
alive for them), and so do relays to other nodes; a peer that is down for another reason (its login refused, a
GOODBYE) sends no such signal.

The wait for a pong follows the link: at least ``ping_timeout``, or three
smoothed round trips (measured on the connect and on each ping) when longer.
A ``Close`` after the relay said GOODBYE upstream reads the upstream (up to
``router_goodbye_timeout``) for the router's reply before closing it.

A process-local registry holds the live sessions; one ticker greenlet per
process drives every relay's clock (login and GOODBYE deadlines). On worker
shutdown each session says GOODBYE ``wamp.close.system_shutdown`` both ways
and closes with 1001.

Foreign exceptions (socket, gevent, the WebSocket layers) are mapped at one
place, ``_LEG_ERRORS``: to this module a failing socket is a closed one.
"""

from __future__ import annotations

import logging
import time
import typing as t
import weakref

import gevent

from .. import metrics_sink
from ..errors import BridgeError
from ..errors import MessageTooBig
from ..settings import DEFAULTS
from ..signals import browser_session_closed
from ..signals import browser_session_opened
from ..signals import message_refused
from ..signals import send as send_signal
from ..wamp.heads import peek_head
from ..wamp.rawsocket_connection import RawSocketConnection
from ..wamp.rawsocket_connection import connect_rawsocket
from ..wamp.router_urls import in_order_from
from ..wamp.router_urls import rawsocket_address
from ..wamp.router_urls import router_urls
from ..websocket.client import connect as default_connect
from ..websocket.connection import WOULD_BLOCK
from ..websocket.descriptors import OUT_OF_DESCRIPTORS
from ..websocket.descriptors import errno_of
from ..websocket.descriptors import hint_for
from ..websocket.slices import Slice
from . import faults
from . import security_log
from .login_turns import Turn
from .login_turns import turns_for
from .relay import Relay
from .relay_events import Close
from .relay_events import ConnectRouter
from .relay_events import Notice
from .relay_events import SendToClient
from .relay_events import SendToRouter
from .relay_events import State

__all__ = [
    "RelaySession",
    "live_sessions",
    "router_lost",
    "TICK_INTERVAL",
]

log = logging.getLogger(__name__)

#: Seconds between two ticks of every relay's clock.
TICK_INTERVAL = 0.5
#: The wait for a pong is at least this many smoothed round trips to the router (and ``ping_timeout``) ...
RTT_FACTOR = 3.0
#: ... and at most this many seconds.
MAX_PONG_WAIT = 30.0
_GOODBYE, _ABORT = 6, 3


class WebSocketLike(t.Protocol):
    """What this module needs of a WebSocket (:class:`flask_wamp_bridge.websocket.connection.WebSocket` fits).

    ``send`` must be safe from several greenlets at once and bound its own
    blocking (a send timeout); ``receive`` returns None once closed.
    """

    def receive(self) -> str | bytes | None: ...

    def send(self, message: str | bytes) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...


Connector = t.Callable[..., WebSocketLike]

# The router URL that last took a relay, per URL list: new relays start there.
_last_good: dict[tuple[str, ...], str] = {}

# The one mapping boundary: whatever a socket raises on receive or send means
# "that leg is gone". BridgeError covers the WebSocket layers' own
# (ConnectionClosed, ProtocolError, MessageTooBig); the rest are what sockets
# and gevent raise underneath.
_LEG_ERRORS: tuple[type[BaseException], ...] = (OSError, BridgeError, EOFError, gevent.Timeout)


class RelaySession:
    """One browser's WAMP session relayed to the router.

    :param client: the browser's accepted WebSocket.
    :param relay: the session's state machine (identity already frozen in it).
    :param router_url: the router's WebSocket URL, or several (router nodes): tried
        in order, from the one that last worked in this process.
    :param subprotocol: the negotiated WAMP subprotocol (used upstream as well).
    :param connect: ``connect(url, *, subprotocols, timeout, max_message_size)``
        opening the upstream (default: ``flask_wamp_bridge.websocket.client.connect``).
    :param connect_timeout: seconds to open the upstream.
    :param send_timeout: seconds a send upstream may block (the browser
        socket has its own, from the accept options).
    :param close_timeout: seconds to wait for a closing handshake.
    :param max_message_size: upstream message size limit (bytes), None for none.
    :param ping_interval: seconds of upstream silence before the bridge pings
        the router; None: no liveness check.
    :param ping_timeout: seconds more of silence after which the router is lost.
    :param max_logins: upstream logins under way at once in this process (connect to the router's CHALLENGE); more
        wait their turn, first come first served (:mod:`~flask_wamp_bridge.bridge.login_turns`).
    :param login_queue_timeout: seconds a login may wait for its turn (then the router is unavailable).
    :param router_goodbye_timeout: seconds to wait for the router's reply to the relay's GOODBYE before closing
        the upstream (the router detaches the session first, so other subscribers lose no event meanwhile).
    :param upstream: ``"rawsocket"`` (the relay's upstream serializer, over the router's RawSocket transport:
        ``rawsocket_path``, else TCP on the router URL's host and ``rawsocket_port``) or ``"websocket"``
        (the router URL, the browser's subprotocol).
    :param rawsocket_path: the router's RawSocket Unix socket (a router on this host).
    :param rawsocket_port: the router's RawSocket TCP port (None: the router URL's port + 1).
    :param remote: the browser's address, for the log.
    :param signal_sender: the sender of this session's :mod:`~flask_wamp_bridge.signals` (the Flask app).
    """

    def __init__(
        self,
        client: WebSocketLike,
        relay: Relay,
        router_url: str | t.Sequence[str],
        subprotocol: str,
        *,
        connect: Connector | None = None,
        connect_timeout: float = DEFAULTS["WAMP_BRIDGE_CONNECT_TIMEOUT"],
        send_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_message_size: int | None = 1 << 20,
        ping_interval: float | None = 12.0,
        ping_timeout: float = 3.0,
        max_logins: int = 64,
        login_queue_timeout: float = 30.0,
        router_goodbye_timeout: float = 2.0,
        upstream: str = "rawsocket",
        rawsocket_path: str | None = None,
        rawsocket_port: int | None = None,
        remote: str | None = None,
        signal_sender: object | None = None,
    ) -> None:
        self.client = client
        self.relay = relay
        self.router_urls = router_urls(router_url)
        self.router_url = self.router_urls[0]
        self.subprotocol = subprotocol
        self.upstream: WebSocketLike | None = None
        self.name = f"{relay.identity.authid if relay.identity else '<none>'}#{id(self):x}"
        self._connect = connect
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._max_message_size = max_message_size
        self.remote = remote
        self._router_reader: gevent.Greenlet | None = None
        self._closed = False
        self._signal_sender = signal_sender if signal_sender is not None else self
        self._opened = False  # browser_session_opened was sent
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._heard = 0.0  # time.monotonic() when the router last sent anything
        self._pinged = False
        self._ping_at = 0.0  # when the bridge pinged
        self._round_trip: float | None = None  # smoothed round trip to the router (seconds), once measured
        self._router_goodbye_timeout = router_goodbye_timeout
        self._router_goodbye_heard = False
        self._max_logins = max_logins
        self._login_queue_timeout = login_queue_timeout
        self._turn: Turn | None = None  # this login's place in the process's queue, until the router answers
        self._rawsocket = upstream == "rawsocket"
        self._rawsocket_path = rawsocket_path
        self._rawsocket_port = rawsocket_port

    # --- running ------------------------------------------------------------

    def run(self) -> None:
        """Relay until the session ends; returns once both sockets are closed."""
        _register(self)
        try:
            try:
                self.client.on_server_shutdown = self.shutdown  # type: ignore[attr-defined]
            except AttributeError:  # pragma: no cover - a socket without the hook
                pass
            self._pump(self.client, self.relay.from_client, "browser")
        finally:
            self._close_all(1011, "relay ended")
            reader = self._router_reader
            if reader is not None and not reader.dead:
                reader.join(timeout=self._close_timeout)
                reader.kill(block=False)
            _unregister(self)
            self._log_end()
            if self._opened:
                self._send_signal(browser_session_closed, reason=self._end_reason())
            else:
                metrics_sink.sink.login_failed(getattr(self.relay.closed_with, "code", None), self._end_reason())

    def _read_router(self) -> None:
        assert self.upstream is not None
        self._pump(self.upstream, self.relay.from_router, "router")

    # An idle session keeps no greenlet on the router leg: the upstream socket
    # calls back when it is readable, a greenlet reads what is there and ends.
    def _await_router(self) -> None:
        notify = getattr(self.upstream, "notify_readable", None)
        if notify is None:  # a socket without the hook: one greenlet for the life of the session
            self._router_reader = gevent.spawn(self._read_router)
        else:
            notify(self._router_readable)

    def _router_readable(self) -> None:
        now = self._heard = time.monotonic()
        if self._pinged:  # the first thing heard after a ping on a silent link: (at most) a round trip
            self._note_round_trip(now - self._ping_at)
            self._pinged = False
        if not self._closed:  # from the hub: the reading needs a greenlet (sends may block)
            self._router_reader = gevent.spawn(self._read_router_ready)

    def _read_router_ready(self) -> None:
        try:
            self._read_router_now()
        finally:
            if self._router_reader is gevent.getcurrent():  # done: an idle session keeps no (dead) greenlet
                self._router_reader = None

    def _read_router_now(self) -> None:
        upstream = t.cast(t.Any, self.upstream)
        feed = self.relay.from_router
        work = Slice()
        while not self._closed:
            work.pause_if_due()  # a router flooding this session yields to the others
            try:
                data = upstream.receive_nowait()
            except _LEG_ERRORS as exc:
                self._leg_failed("router", exc)
                return
            if data is WOULD_BLOCK:
                if not self._closed:
                    upstream.notify_readable(self._router_readable)
                return
            self._heard = time.monotonic()
            if not self._handle(upstream, feed, "router", data):
                return

    def _pump(self, source: WebSocketLike, feed: t.Callable[[t.Any], list[t.Any]], leg: str) -> None:
        """One direction: read ``source`` and feed the relay until this leg or the session ends."""
        work = Slice()
        while not self._closed:
            try:
                data = source.receive()
            except _LEG_ERRORS as exc:
                self._leg_failed(leg, exc)
                return
            if not self._handle(source, feed, leg, data):
                return
            work.pause_if_due()  # a flooding browser yields to the other sessions between messages

    def _handle(self, source: WebSocketLike, feed: t.Callable[[t.Any], list[t.Any]], leg: str,
                data: t.Any) -> bool:
        """Feed one received message (None: the leg closed) to the relay; False once this leg is done."""
        relay = self.relay
        if self._closed or relay.state is State.CLOSED:  # ended meanwhile by the other direction
            if leg == "router" and data is not None and self._is_goodbye(data):
                self._router_goodbye_heard = True  # the reply the closing session waits for
            return False
        if data is None:
            if leg == "browser":
                self._execute(relay.client_closed())
            else:
                code = getattr(source, "close_code", None)
                self._execute(relay.router_closed(code, getattr(source, "close_reason", "") or ""))
            return False
        if type(data) is not str and type(data) is not bytes:  # a bytearray or memoryview
            data = bytes(t.cast(t.Any, data))
        metrics_sink.sink.relayed(leg, data)
        self._execute(feed(data))
        if not self._opened and relay.state is State.ESTABLISHED:
            self._opened = True
            self._send_signal(browser_session_opened)
        return True

    def _send_signal(self, signal: t.Any, **kwargs: t.Any) -> None:
        identity = self.relay.identity
        if signal.receivers and identity is not None:
            send_signal(signal, self._signal_sender, authid=identity.authid, role=identity.authrole,
                        session_id=self.relay.session_id, **kwargs)

    def _end_reason(self) -> str:
        closed = self.relay.closed_with
        return closed.reason if closed is not None and closed.reason else "connection lost"

    # --- actions --------------------------------------------------------------

    def _execute(self, actions: list[t.Any]) -> None:
        for action in actions:
            kind = type(action)
            if kind is SendToRouter:
                upstream = self.upstream
                if upstream is not None and not self._closed:
                    try:
                        upstream.send(action.data)
                    except MessageTooBig as exc:  # nothing was sent, the connection stays (RawSocket)
                        self._execute(self.relay.too_big_for_router(action.data, exc))
                    except _LEG_ERRORS as exc:
                        self._leg_failed("router", exc)
            elif kind is SendToClient:
                if not self._closed:
                    try:
                        self.client.send(action.data)
                    except _LEG_ERRORS as exc:
                        self._leg_failed("browser", exc)
            elif kind is ConnectRouter:
                _run_shallow(self._open_upstream)
            elif kind is Close:
                self._close_all(action.code, action.reason, router_goodbye=action.router_goodbye)
            elif kind is Notice:
                self._notice(action)
            if self._closed:
                break
        turn = self._turn
        answered = self.relay.challenged or self.relay.state is not State.AUTHENTICATING
        if turn is not None and turn.granted and answered:
            self._end_turn()  # the router answered (or the login ended): the next login may connect

    def _notice(self, notice: Notice) -> None:
        identity = self.relay.identity
        authid = identity.authid if identity is not None else None
        if notice.event == "router_text":
            log.info("wamp relay %s: the router said %s (not shown to the browser)", self.name, notice.reason)
        elif notice.event == "call_deadline":
            warn_limited("call deadline", "wamp relay %s: %s", self.name, notice.reason)
        else:
            security_log.warn(notice.event, self.remote, authid, notice.reason)
            if notice.event == "refused":
                self._send_signal(message_refused, reason=notice.reason)

    def _open_upstream(self) -> None:
        connect = self._connect
        if connect is None:
            connect = self._connect_rawsocket if self._rawsocket else t.cast(Connector, default_connect)
        wanted = self.relay.upstream_serializer.subprotocol
        if not self._wait_for_turn():
            return
        upstream = None
        error: BaseException | None = None
        fault = None
        try:
            self.relay.router_connecting(time.monotonic())
            for url in in_order_from(self.router_urls, _last_good.get(self.router_urls, "")):
                self.router_url = url
                started = time.monotonic()
                try:
                    upstream = connect(url, subprotocols=[wanted],
                                       timeout=self._connect_timeout, max_message_size=self._max_message_size)
                except _LEG_ERRORS as exc:
                    error = exc
                    if errno_of(exc) in OUT_OF_DESCRIPTORS:  # this worker's trouble: another router won't help
                        what, hint = t.cast(tuple[str, str], hint_for(exc))
                        warn_limited("descriptors", "wamp relay %s: cannot open a connection to the router: %s "
                                     "(%s); the browser gets ABORT %s and 1013. %s", self.name, what, exc,
                                     faults.OUT_OF_DESCRIPTORS.uri, hint)
                        fault = faults.OUT_OF_DESCRIPTORS
                        break
                    cause = hint_for(exc)
                    if cause is not None:
                        warn_limited("unreachable", "wamp relay %s: cannot reach the router at %s: %s (%s): %s",
                                     self.name, url, cause[0], exc, cause[1])
                    else:
                        warn_limited("unreachable", "wamp relay %s: cannot reach the router at %s: %s (check "
                                     "%s, and that the router runs and is not stalled or "
                                     "overloaded: one that accepts TCP but never answers the handshake looks like "
                                     "this too)", self.name, url, exc,
                                     "WAMP_BRIDGE_RAWSOCKET_PATH or _PORT (its RawSocket transport: generate the "
                                     "config with the same settings)" if self._rawsocket else "WAMP_BRIDGE_ROUTER_URL")
                    if self._closed:
                        break
                else:
                    _last_good[self.router_urls] = url
                    self._round_trip = (time.monotonic() - started) / 2  # TCP and HTTP handshakes: two round trips
                    break
        finally:
            if upstream is None or self._closed:
                self._end_turn()
        if upstream is None:
            self._execute(self.relay.router_closed(None, f"cannot connect: {error}", fault=fault))
            return
        if self._closed:  # ended while connecting (deadline, shutdown)
            self._close_quietly(upstream, 1000, "session ended")
            return
        chosen = getattr(upstream, "subprotocol", wanted)
        if chosen != wanted:
            self._close_quietly(upstream, 1000, "wrong subprotocol")
            self._execute(self.relay.router_closed(
                None, f"the router chose subprotocol {chosen!r}, not {wanted!r}; enable "
                      "the json, msgpack and cbor serializers on the router's transport"))
            return
        configure = getattr(upstream, "configure", None)
        if configure is not None:  # a router that stops reading must not block this relay forever
            configure(max_message_size=self._max_message_size, send_timeout=self._send_timeout)
        if not hasattr(upstream, "ping"):  # RawSocket: its end is its liveness (see the module docs)
            self._ping_interval = None
        self.upstream = upstream
        self.relay.router_connected(getattr(upstream, "local_address", None))
        self._heard = time.monotonic()
        self._await_router()

    def _connect_rawsocket(self, url: str, *, subprotocols: t.Sequence[str], timeout: float,
                           max_message_size: int | None) -> RawSocketConnection:
        """Open the router's RawSocket transport: its Unix socket, else TCP on ``url``'s host."""
        address = rawsocket_address(url, self._rawsocket_path, self._rawsocket_port)
        return connect_rawsocket(address, subprotocols[0].rpartition(".")[2], timeout=timeout,
                                 max_message_size=max_message_size, keepalive=self._ping_interval)

    def _wait_for_turn(self) -> bool:
        """Take this login's turn (queued first come, first served); False if the session ended meanwhile."""
        turns = turns_for(self._max_logins)
        self._turn = turn = turns.enter()
        if not turn.granted:
            self.relay.router_queued(time.monotonic())
            if not turns.wait(turn, self._login_queue_timeout):
                self._turn = None
                if not self._closed:
                    self._execute(self.relay.router_closed(
                        None, f"no turn to log in within {self._login_queue_timeout:g} s: {turns.limit} "
                              f"logins under way and {turns.waiting} waiting (WAMP_BRIDGE_MAX_LOGINS)"))
                return False
        if self._closed:  # ended while waiting (shutdown, the browser went away)
            self._end_turn()
            return False
        return True

    def _end_turn(self) -> None:
        """The login is over (WELCOME, refused, failed): the next one waiting may connect."""
        turn = self._turn
        if turn is not None:
            self._turn = None
            turns_for(self._max_logins).release(turn)
            turn.wake()

    def _leg_failed(self, leg: str, exc: BaseException) -> None:
        log.debug("wamp relay %s: %s leg failed: %r", self.name, leg, exc)
        if self._closed:
            return
        if leg == "browser":
            self._execute(self.relay.client_closed())
        else:
            self._execute(self.relay.router_closed(getattr(exc, "code", None), str(exc)))

    def _close_all(self, code: int, reason: str, *, router_goodbye: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        turn = self._turn
        if turn is not None:
            if turn.granted:
                self._end_turn()
            else:
                turn.wake()  # waiting in the queue: leave it now
        upstream = self.upstream
        if self.relay.state is not State.CLOSED:  # an end the relay did not decide (IO failure)
            for action in self.relay.client_closed():
                if type(action) is SendToRouter and upstream is not None:  # its GOODBYE still goes first
                    self._send_quietly(upstream, action.data)
                elif type(action) is Close:
                    router_goodbye = action.router_goodbye
        if upstream is not None and router_goodbye:
            self._await_router_goodbye(upstream)
        self._close_quietly(self.client, code, reason)
        if upstream is not None:
            self._close_quietly(upstream, 1000, "session ended")

    def _await_router_goodbye(self, upstream: WebSocketLike) -> None:
        """Read the upstream until the router's GOODBYE (or ABORT) answers the relay's, for a short while.

        The router detaches the session when it reads the GOODBYE; its reply says it has. Events that still
        arrive meanwhile are dropped (the browser's session is over).
        """
        try:
            with gevent.Timeout(self._router_goodbye_timeout, False):
                while not self._router_goodbye_heard:  # (read by the router leg meanwhile)
                    data = upstream.receive()
                    if data is None or self._is_goodbye(data):
                        return
        except _LEG_ERRORS as exc:  # another greenlet is reading it, or it failed: just close
            log.debug("wamp relay %s: no GOODBYE reply from the router: %r", self.name, exc)

    def _is_goodbye(self, data: t.Any) -> bool:
        head = peek_head(self.relay.upstream_serializer.name, data)
        return head is not None and head[0] in (_GOODBYE, _ABORT)

    def _send_quietly(self, ws: WebSocketLike, data: str | bytes) -> None:
        try:
            ws.send(data)
        except _LEG_ERRORS as exc:
            log.debug("wamp relay %s: a send failed while closing: %r", self.name, exc)

    def _close_quietly(self, ws: WebSocketLike, code: int, reason: str) -> None:
        # the sockets bound their own closing handshake; this timeout is a safety net
        try:
            with gevent.Timeout(self._close_timeout * 2 + 1):
                ws.close(code, reason)
        except _LEG_ERRORS as exc:
            log.debug("wamp relay %s: closing a socket failed: %r", self.name, exc)

    def _log_end(self) -> None:
        closed = self.relay.closed_with
        how = f"{closed.code} {closed.reason}" if closed else "no close"
        if closed is not None and closed.reason == "login timed out":
            warn_limited("login timeout", "wamp relay %s: %s", self.name, self.relay.error)
        elif self.relay.error is not None:
            log.info("wamp relay %s ended (%s): %s", self.name, how, self.relay.error)
        else:
            log.debug("wamp relay %s ended (%s)", self.name, how)

    # --- inputs from outside --------------------------------------------------

    def tick(self, now: float, lost: t.Mapping[tuple[object, str], float] | None = None) -> None:
        """Advance the relay's clock (called by the process ticker).

        :param lost: when the app's peer lost a router node, by (signal sender, URL), since the last tick.
        """
        if self._closed:
            return
        actions = self.relay.tick(now)
        if not actions and self.upstream is not None:
            if self._ping_interval:
                actions = self._check_router()
            elif lost:
                actions = self._check_peer_news(lost)
        if actions:
            gevent.spawn(self._execute, actions)

    def _check_peer_news(self, lost: t.Mapping[tuple[object, str], float]) -> list[t.Any]:
        """End the session if the app's peer lost this relay's router node and it heard nothing from it since."""
        lost_at = lost.get((self._signal_sender, self.router_url))
        if lost_at is None or self._heard >= lost_at or self.relay.state is not State.ESTABLISHED:
            return []
        silent = time.monotonic() - self._heard
        log.warning("wamp relay %s: the app's peer lost the router at %s and this relay heard nothing from it "
                    "for %.1f s; taking it as lost", self.name, self.router_url, silent)
        return self.relay.router_silent(round(silent, 1), "and the app's peer lost it")

    def _check_router(self) -> list[t.Any]:
        """Ping a router silent for ``ping_interval``; past :meth:`pong_wait` more, it is lost."""
        now = time.monotonic()
        silent = now - self._heard
        interval = t.cast(float, self._ping_interval)
        if silent < interval or self.relay.state is not State.ESTABLISHED:
            return []
        if silent >= interval + self.pong_wait():
            log.warning("wamp relay %s: the router sent nothing for %.1f s, not even a pong; "
                        "taking it as lost", self.name, silent)
            return self.relay.router_silent(round(silent, 1))
        if not self._pinged:
            self._pinged = True
            self._ping_at = now
            try:
                t.cast(t.Any, self.upstream).ping(b"")
            except _LEG_ERRORS as exc:
                self._leg_failed("router", exc)
        return []

    def pong_wait(self) -> float:
        """Seconds a ping may go unanswered: ``ping_timeout``, or :data:`RTT_FACTOR` measured round trips if longer
        (a slow link is not a dead one), at most :data:`MAX_PONG_WAIT`."""
        round_trip = self._round_trip
        if round_trip is None:
            return self._ping_timeout
        return max(self._ping_timeout, min(RTT_FACTOR * round_trip, MAX_PONG_WAIT))

    def _note_round_trip(self, sample: float) -> None:
        """A measured round trip: smoothed as TCP does (7/8 old, 1/8 new)."""
        previous = self._round_trip
        self._round_trip = sample if previous is None else previous + (sample - previous) / 8

    def shutdown(self, code: int = 1001) -> None:
        """The worker is stopping: GOODBYE both ways, then close with ``code``."""
        if not self._closed:
            self._execute(self.relay.shutdown(code))


def _run_shallow(work: t.Callable[[], None]) -> None:
    """``work()`` in a greenlet of its own, waited for (its exception raised here).

    Connecting and the handshake run deep; a greenlet keeps for its whole life the memory its deepest stack
    touched. The browser's greenlet waits for the session's whole life: it stays shallow (a few KiB less per idle
    session) and the deep work's memory goes with its own greenlet.
    """
    worker = gevent.spawn(work)
    try:
        worker.get()
    except BaseException:
        worker.kill(block=False)
        raise


# --- warnings a storm of browsers must not multiply ------------------------------

#: Seconds between two warnings of one kind; the ones in between are counted.
WARNING_INTERVAL = 10.0
_warned: dict[str, list[float]] = {}  # kind -> [when last logged, how many suppressed since]


def warn_limited(kind: str, message: str, *args: t.Any) -> None:
    """``log.warning`` at most once per :data:`WARNING_INTERVAL` per ``kind`` (a misconfiguration hits every login)."""
    now = time.monotonic()
    seen = _warned.get(kind)
    if seen is not None and now - seen[0] < WARNING_INTERVAL:
        seen[1] += 1
        return
    suppressed = int(seen[1]) if seen is not None else 0
    _warned[kind] = [now, 0]
    if suppressed:
        message += f" ({suppressed} more like this in the last {WARNING_INTERVAL:g} s)"
    log.warning(message, *args)


# --- the process-local registry and its ticker ----------------------------------

_sessions: weakref.WeakSet[RelaySession] = weakref.WeakSet()
_ticker: list[gevent.Greenlet] = []
# Router nodes the app's peer lost since the last tick: (signal sender, URL) -> when (time.monotonic()).
_lost_routers: dict[tuple[object, str], float] = {}


def live_sessions() -> list[RelaySession]:
    """The relayed sessions open in this process."""
    return list(_sessions)


def _register(session: RelaySession) -> None:
    _sessions.add(session)
    if not _ticker or _ticker[0].dead:
        _ticker[:] = [gevent.spawn(_tick_forever)]


def _unregister(session: RelaySession) -> None:
    _sessions.discard(session)


def router_lost(sender: object, *, url: str, **_: t.Any) -> None:
    """A :data:`~flask_wamp_bridge.signals.router_lost` receiver: the app's peer (of ``sender``) lost ``url``.

    Only noted here; the ticker's next pass ends the relays it concerns (see the module docs).
    """
    if _sessions:
        _lost_routers[(sender, url)] = time.monotonic()


def _tick_forever() -> None:
    while _sessions:
        gevent.sleep(TICK_INTERVAL)
        now = time.monotonic()
        lost = dict(_lost_routers)
        _lost_routers.clear()
        for session in list(_sessions):
            try:
                session.tick(now, lost)
            except Exception:
                log.exception("wamp relay %s: tick failed", session.name)
