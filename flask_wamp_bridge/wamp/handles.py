"""The procedures and topic handlers a :class:`~flask_wamp_bridge.wamp.peer.Peer` keeps across reconnects.

Each handle is also the :class:`~flask_wamp_bridge.wamp.peer_connection.ResultToken`
of its REGISTER or SUBSCRIBE: the session hands it back with the router's answer.
"""

from __future__ import annotations

import typing as t

import gevent.event

from .session import PeerCore

if t.TYPE_CHECKING:  # pragma: no cover
    from .handler_pool import HandlerPool
    from .peer import Peer

__all__ = ["Registration", "Subscription"]


class Registration:
    """A procedure the peer keeps registered (again after each reconnect)."""

    #: What the log says this handle does ("register", "subscribe to").
    verb = "register"

    def __init__(self, peer: Peer, uri: str, fn: t.Callable[..., t.Any], options: dict[str, t.Any],
                 pool: HandlerPool | None = None) -> None:
        self.peer = peer
        self.uri = uri
        self.fn = fn
        self.options = options
        #: Where its invocations run; ``None``: the peer's pool.
        self.pool = pool
        #: The registration id in the current session, or ``None`` while not registered.
        self.id: int | None = None
        self._answer: gevent.event.AsyncResult | None = None

    def unregister(self, timeout: float | None = None) -> None:
        """Stop serving this procedure (and do not register it again on reconnect)."""
        self.peer._release(self, timeout)

    def _request(self, core: PeerCore) -> tuple[int, list[t.Any]]:
        return core.register(self, self.uri, self.options)

    def _release_request(self, core: PeerCore, handle_id: int) -> tuple[int, list[t.Any]] | None:
        return core.unregister(self, handle_id)

    # a ResultToken: the peer core hands this object back with REGISTER's answer
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

    verb = "subscribe to"

    def unsubscribe(self, timeout: float | None = None) -> None:
        """Stop receiving this topic's events here (and do not subscribe again on reconnect)."""
        self.peer._release(self, timeout)

    unregister = unsubscribe

    def _request(self, core: PeerCore) -> tuple[int, list[t.Any]]:
        return core.subscribe(self, self.uri, self.options)

    def _release_request(self, core: PeerCore, handle_id: int) -> tuple[int, list[t.Any]] | None:
        return core.unsubscribe(self, handle_id)

    def __repr__(self) -> str:
        return f"<Subscription {self.uri!r} id={self.id}>"
