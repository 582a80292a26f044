"""A scripted WAMP router on socket pairs: the IO loops (``Peer``, ``RelaySession``) in process, without Crossbar.

:class:`PairRouter` is a ``connect`` seam: each call makes a socket pair, gives
the caller a client-side :class:`~flask_wamp_bridge.websocket.connection.WebSocket`
on one end and serves the other end (a server-side WebSocket) in a greenlet
that answers like a router: HELLO -> WELCOME (or the ``login`` script's
frames), REGISTER/SUBSCRIBE -> their acknowledgements, CALL -> RESULT for the
procedures in ``answers`` (others get no answer), GOODBYE -> GOODBYE. Real
frames cross real sockets; what each end received is recorded, and a test
can send, wait for a message, or drop a connection.
"""

from __future__ import annotations

import itertools
import typing as t

import gevent
import gevent.queue
from gevent import socket as gsocket

from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.wamp.messages import serializer_for
from flask_wamp_bridge.websocket.connection import WebSocket

__all__ = ["PairRouter", "RouterEnd", "socket_pair"]

HELLO, WELCOME, ABORT, GOODBYE = 1, 2, 3, 6
ERROR, PUBLISH, PUBLISHED = 8, 16, 17
SUBSCRIBE, SUBSCRIBED, EVENT = 32, 33, 36
CALL, CANCEL, RESULT = 48, 49, 50
REGISTER, REGISTERED, INVOCATION, INTERRUPT, YIELD = 64, 65, 68, 69, 70

Login = t.Callable[[t.Union[str, bytes]], t.List[t.Union[str, bytes]]]


class _Pairs:
    """Every raw socket the harness made, so a test can close them all."""

    def __init__(self) -> None:
        self.sockets: list[t.Any] = []

    def make(self) -> tuple[t.Any, t.Any]:
        left, right = gsocket.socketpair()
        self.sockets += [left, right]
        return left, right

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def socket_pair(pairs: _Pairs, subprotocol: str) -> tuple[WebSocket, WebSocket]:
    """An open (client-side, server-side) pair of WebSockets over one socket pair (no HTTP handshake)."""
    left, right = pairs.make()
    client = WebSocket(left, role="client", subprotocol=subprotocol)
    server = WebSocket(right, role="server", subprotocol=subprotocol)
    return client, server


class RouterEnd:
    """The router's end of one connection."""

    def __init__(self, router: PairRouter, ws: WebSocket, number: int) -> None:
        self.router = router
        self.ws = ws
        self.number = number
        self.serializer = serializer_for(ws.subprotocol or "wamp.2.json")
        self.received: list[list[t.Any]] = []
        self._inbox: gevent.queue.Queue[list[t.Any]] = gevent.queue.Queue()
        self.greenlet = gevent.spawn(self._serve)

    def send(self, message: list[t.Any]) -> None:
        self.ws.send(self.serializer.dumps(message))

    def expect(self, code: int, timeout: float = 10.0) -> list[t.Any]:
        """The next message of type ``code`` this end receives (others before it are skipped)."""
        with gevent.Timeout(timeout, AssertionError(f"no message {code} at the router within {timeout} s")):
            while True:
                message = self._inbox.get()
                if message[0] == code:
                    return message

    def drop(self) -> None:
        """Lose the connection (no close frame)."""
        self.ws.abort(1006, "dropped by the test")

    def _serve(self) -> None:
        login = self.router.login
        while True:
            data = self.ws.receive()
            if data is None:
                return
            message = self.serializer.loads(data)
            self.received.append(message)
            self._inbox.put(message)
            if login is not None and message[0] in (HELLO, 5):  # HELLO, AUTHENTICATE
                for frame in login(data):
                    self.ws.send(frame)
            else:
                for reply in self._answer(message):
                    self.send(reply)

    def _answer(self, message: list[t.Any]) -> list[list[t.Any]]:
        router = self.router
        code = message[0]
        if code == HELLO:
            if not router.welcome:
                return []
            return [[WELCOME, 1000 + self.number, {"authid": "peer", "authrole": "backend",
                                                   "roles": {"broker": {}, "dealer": {}}}]]
        if code == REGISTER:
            return [[REGISTERED, message[1], next(router.ids)]]
        if code == SUBSCRIBE:
            return [[SUBSCRIBED, message[1], next(router.ids)]]
        if code == CALL and message[3] in router.answers:
            return [[RESULT, message[1], {}, [router.answers[message[3]]]]]
        if code == GOODBYE:
            return [[GOODBYE, {}, "wamp.close.goodbye_and_out"]]
        return []


class PairRouter:
    """The ``connect`` seam of the peer and the relay, answered by a scripted router.

    :param welcome: answer HELLO with WELCOME (False: never answer it).
    :param refuse: refuse this many connection attempts first (``ConnectError``).
    :param login: ``login(frame) -> frames`` answering HELLO and AUTHENTICATE instead.
    :param answers: procedure -> the single result value a CALL gets.
    """

    def __init__(self, *, welcome: bool = True, refuse: int = 0, login: Login | None = None,
                 answers: dict[str, t.Any] | None = None) -> None:
        self.welcome = welcome
        self.refuse = refuse
        self.login = login
        self.answers = dict(answers or {})
        self.ids = itertools.count(500)
        self.attempts = 0
        self.ends: list[RouterEnd] = []
        self.pairs = _Pairs()
        self._connected: gevent.queue.Queue[RouterEnd] = gevent.queue.Queue()

    def connect(self, url: str, *, subprotocols: t.Sequence[str] = (), timeout: float = 10.0,
                max_message_size: int | None = None) -> WebSocket:
        self.attempts += 1
        if self.refuse:
            self.refuse -= 1
            raise ConnectError(f"connection to {url} refused (scripted)")
        client, server = socket_pair(self.pairs, subprotocols[0] if subprotocols else "wamp.2.json")
        if max_message_size is not None:
            client.max_message_size = max_message_size
        end = RouterEnd(self, server, len(self.ends))
        self.ends.append(end)
        self._connected.put(end)
        return client

    def next_connection(self, timeout: float = 10.0) -> RouterEnd:
        """The next connection made to this router (in the order they were made)."""
        return self._connected.get(timeout=timeout)

    def close(self) -> None:
        """End every router greenlet and close every socket the router made."""
        gevent.killall([end.greenlet for end in self.ends])
        for end in self.ends:
            end.ws.abort(1006, "test over")
        self.pairs.close()
