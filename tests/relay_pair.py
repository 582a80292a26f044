"""A scripted browser <-> Relay <-> scripted router, with no sockets.

:class:`RelayPair` feeds frames into a :class:`~flask_wamp_bridge.bridge.relay.Relay`
and carries out its actions the way the IO layer would, recording what each
side received. :class:`ScriptedRouter` plays Crossbar's part of the ticket
login: CHALLENGE("ticket"), then the app's dynamic authenticator (the real
:func:`~flask_wamp_bridge.bridge.tickets.make_authenticator`), then WELCOME with the
authid and role it returned, or ABORT.
"""

from __future__ import annotations

import functools
import typing as t

from flask_wamp_bridge.bridge import tickets
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay import Relay
from flask_wamp_bridge.bridge.relay_events import Action
from flask_wamp_bridge.bridge.relay_events import Close
from flask_wamp_bridge.bridge.relay_events import ConnectRouter
from flask_wamp_bridge.bridge.relay_events import Notice
from flask_wamp_bridge.bridge.relay_events import SendToClient
from flask_wamp_bridge.bridge.relay_events import SendToRouter
from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.wamp.messages import Serializer
from flask_wamp_bridge.wamp.messages import serializer_for

__all__ = ["RelayPair", "ScriptedRouter", "SECRET", "REALM", "NOW", "BROWSER_ROLES"]

SECRET = "test-ticket-secret"
REALM = "realm1"
NOW = 1_700_000_000.0
#: The bridge's end of the scripted upstream connection (what ``getsockname()`` would say).
UPSTREAM_ADDRESS = ("127.0.0.1", 40000)
BROWSER_ROLES = {
    "caller": {"features": {"progressive_call_results": True, "call_canceling": True}},
    "callee": {"features": {}},
    "publisher": {"features": {}},
    "subscriber": {"features": {}},
}


class ScriptedRouter:
    """Crossbar's side of a ticket login, with a dynamic authenticator.

    :param keep_hello_authid: behave like Crossbar with an authenticator that
        returns only a role: the session keeps the HELLO's authid.
    """

    def __init__(self, serializer: Serializer, *, clock: t.Callable[[], float] = lambda: NOW,
                 secret: str = SECRET, keep_hello_authid: bool = False) -> None:
        self.serializer = serializer
        self.authenticate = tickets.make_authenticator(secret, 30.0, realm=REALM, clock=clock)
        self.keep_hello_authid = keep_hello_authid
        self.hello: list[t.Any] | None = None
        self.tickets: list[str] = []
        self.session_id = 4242
        #: extra WELCOME details (Crossbar adds x_cb_* keys); ``authextra`` in here is merged into the principal's
        self.welcome_details: dict[str, t.Any] = {}

    def answer(self, data: str | bytes) -> list[str | bytes]:
        """Frames the router sends back for one frame it got during the login."""
        message = self.serializer.loads(data)
        if message[0] == 1:
            self.hello = message
            return [self.serializer.dumps([4, "ticket", {}])]
        if message[0] == 5:
            assert self.hello is not None
            self.tickets.append(message[1])
            details = {"ticket": message[1], "authmethod": "ticket",
                       "authextra": self.hello[2].get("authextra", {}), "session": self.session_id,
                       "transport": {"type": "websocket"}}
            try:
                principal = self.authenticate(self.hello[1], self.hello[2].get("authid"), details)
            except ApplicationError as exc:
                return [self.serializer.dumps([3, {"message": str(exc)}, exc.error])]
            authid = self.hello[2].get("authid") if self.keep_hello_authid else principal["authid"]
            extra = {**principal["extra"], **self.welcome_details.get("authextra", {})}
            welcome = [2, self.session_id, {
                "realm": self.hello[1], "authid": authid, "authrole": principal["role"],
                "authmethod": "ticket", "authprovider": "dynamic", **self.welcome_details, "authextra": extra,
                "roles": {"broker": {"features": {}}, "dealer": {"features": {}}}}]
            return [self.serializer.dumps(welcome)]
        return []


class RelayPair:
    """One relay with a recording browser on one side and a recording router on the other."""

    def __init__(self, identity: Identity | None, *, subprotocol: str = "wamp.2.json",
                 now: float = NOW, realm: str = REALM, **relay_options: t.Any) -> None:
        self.serializer = serializer_for(subprotocol)
        self.signer = functools.partial(self._sign)
        self.now = now
        self.relay = Relay(identity, realm, self.serializer, self.signer, now, **relay_options)
        self.router = ScriptedRouter(self.serializer)
        #: frames the router received / the browser received, in order
        self.at_router: list[str | bytes] = []
        self.at_client: list[str | bytes] = []
        self.actions: list[Action] = []
        self.router_connected = False
        self.closed: Close | None = None
        #: the relay's notices for the log, in order
        self.notices: list[Notice] = []
        self._answered = 0
        #: the peer each ticket was signed for (the upstream's local address, in Crossbar's notation)
        self.signed_for: list[str | None] = []

    def _sign(self, identity: Identity, peer: str | None) -> str:
        self.signed_for.append(peer)
        return tickets.sign(identity, SECRET, self.now, realm=REALM)

    # --- driving ------------------------------------------------------------

    def client_sends(self, message: list[t.Any] | str | bytes) -> list[Action]:
        data = self._encode(message)
        return self._run(self.relay.from_client(data))

    def router_sends(self, message: list[t.Any] | str | bytes) -> list[Action]:
        data = self._encode(message)
        return self._run(self.relay.from_router(data))

    def tick(self, now: float) -> list[Action]:
        self.now = now
        return self._run(self.relay.tick(now))

    def login(self, hello_details: dict[str, t.Any] | None = None) -> list[t.Any]:
        """Send a HELLO and let the scripted router answer until the login ends; return the browser's last message."""
        details = {"roles": BROWSER_ROLES} if hello_details is None else hello_details
        self.client_sends([1, REALM, details])
        self.pump_router()
        return self.client_messages()[-1]

    def pump_router(self) -> None:
        """Let the scripted router answer every frame it has not answered yet."""
        while self._answered < len(self.at_router) and self.closed is None:
            frame = self.at_router[self._answered]
            self._answered += 1
            for reply in self.router.answer(frame):
                self._run(self.relay.from_router(reply))

    def _encode(self, message: list[t.Any] | str | bytes) -> str | bytes:
        if isinstance(message, list):
            return self.serializer.dumps(message)
        return message

    def _run(self, actions: list[Action]) -> list[Action]:
        self.actions.extend(actions)
        for action in actions:
            assert self.closed is None, f"action {action!r} after {self.closed!r}"
            if isinstance(action, ConnectRouter):
                assert not self.router_connected, "ConnectRouter twice"
                self.router_connected = True
                self.relay.router_connected(UPSTREAM_ADDRESS)
            elif isinstance(action, SendToRouter):
                assert self.router_connected, "SendToRouter before ConnectRouter"
                self.at_router.append(action.data)
            elif isinstance(action, SendToClient):
                self.at_client.append(action.data)
            elif isinstance(action, Close):
                self.closed = action
            elif isinstance(action, Notice):
                self.notices.append(action)
            else:  # pragma: no cover
                raise AssertionError(f"unknown action {action!r}")
        return actions

    # --- reading ------------------------------------------------------------

    def client_messages(self) -> list[list[t.Any]]:
        return [self.serializer.loads(frame) for frame in self.at_client]

    def router_messages(self) -> list[list[t.Any]]:
        return [self.serializer.loads(frame) for frame in self.at_router]
