"""The public type of a WebSocket, without gevent: what a view or a type hint needs to know.

``flask_wamp_bridge.WebSocket`` is this protocol, so annotating a handler
``def echo(ws: WebSocket)`` imports nothing heavy; the object a handler gets
(:class:`flask_wamp_bridge.websocket.connection.WebSocket`) fits it.
"""

from __future__ import annotations

import typing as t

__all__ = ["WebSocket"]


@t.runtime_checkable
class WebSocket(t.Protocol):
    """One WebSocket connection (``environ['wsgi.websocket']``, or what ``accept_websocket`` returns)."""

    #: The subprotocol in effect, or None.
    subprotocol: str | None
    #: The request path.
    path: str | None
    #: The ``Origin`` header of the upgrade request, if any.
    origin: str | None
    #: Close code that ended the connection (None while open).
    close_code: int | None
    #: Close reason that goes with ``close_code``.
    close_reason: str

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection dropped."""
        ...

    def receive(self) -> str | bytes | None:
        """The next message (``str`` text, ``bytes`` binary); None once closed."""
        ...

    def send(self, message: str | bytes | bytearray | memoryview, binary: bool | None = None) -> None:
        """Send one message; safe from several greenlets at once."""
        ...

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Close with ``code`` on the wire and wait briefly for the peer's close frame. Idempotent."""
        ...

    def __iter__(self) -> t.Iterator[str | bytes]: ...


if t.TYPE_CHECKING:  # the gevent class fits the protocol (checked by mypy, never imported at run time)
    from .connection import WebSocket as _Connection

    def _fits(ws: _Connection) -> WebSocket:
        return ws
