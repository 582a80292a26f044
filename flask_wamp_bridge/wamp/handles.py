"""The procedures and topic handlers a :class:`~flask_wamp_bridge.wamp.peer.Peer` keeps across reconnects.

Each handle is also the :class:`~flask_wamp_bridge.wamp.peer_connection.ResultToken`
of its REGISTER or SUBSCRIBE (and of its UNREGISTER or UNSUBSCRIBE): the session
hands it back with the router's answer, which the handle keeps until it is
asked for (:meth:`Registration.wait_answer`). Releasing a handle is its owner's
business: the handle is given the callable that does it.
"""

from __future__ import annotations

import typing as t

import gevent.event

from .session import PeerCore

if t.TYPE_CHECKING:  # pragma: no cover
    from .handler_pool import HandlerPool

__all__ = ["Registration", "Subscription", "Release"]

#: ``release(handle, timeout)``: unregister (unsubscribe) a handle and forget it.
Release = t.Callable[["Registration", "float | None"], None]


class Registration:
    """A procedure the peer keeps registered (again after each reconnect)."""

    #: What the log says this handle does ("register", "subscribe to").
    verb = "register"

    def __init__(self, uri: str, fn: t.Callable[..., t.Any], options: dict[str, t.Any], release: Release,
                 pool: HandlerPool | None = None) -> None:
        self.uri = uri
        self.fn = fn
        self.options = options
        #: Where its invocations run; ``None``: the peer's pool.
        self.pool = pool
        #: The registration id in the current session, or ``None`` while not registered.
        self.id: int | None = None
        self._release = release
        self._answer: gevent.event.AsyncResult | None = None

    def unregister(self, timeout: float | None = None) -> None:
        """Stop serving this procedure (and do not register it again on reconnect)."""
        self._release(self, timeout)

    def request(self, core: PeerCore) -> list[t.Any]:
        """The REGISTER (SUBSCRIBE) message for ``core``'s session; its answer is awaited anew."""
        self._answer = gevent.event.AsyncResult()
        return self._request(core)[1]

    def release_request(self, core: PeerCore, handle_id: int) -> tuple[int, list[t.Any]] | None:
        """``(request id, UNREGISTER or UNSUBSCRIBE)`` for ``core``'s session, or ``None`` when none is needed.

        Its answer is awaited anew.
        """
        self._answer = gevent.event.AsyncResult()
        return self._release_request(core, handle_id)

    def wait_answer(self, timeout: float | None) -> t.Any:
        """The router's answer to the last request (the id, or ``None``).

        :raises gevent.Timeout: no answer within ``timeout``.
        :raises ApplicationError: the router refused.
        """
        assert self._answer is not None, "no request made"
        return self._answer.get(timeout=timeout)

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
        self._release(self, timeout)

    unregister = unsubscribe

    def _request(self, core: PeerCore) -> tuple[int, list[t.Any]]:
        return core.subscribe(self, self.uri, self.options)

    def _release_request(self, core: PeerCore, handle_id: int) -> tuple[int, list[t.Any]] | None:
        return core.unsubscribe(self, handle_id)

    def __repr__(self) -> str:
        return f"<Subscription {self.uri!r} id={self.id}>"
