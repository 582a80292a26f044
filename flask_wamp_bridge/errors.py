"""The exceptions flask_wamp_bridge raises.

Everything the library raises derives from :class:`BridgeError`::

    BridgeError
    ├── ConfigError                 bad or missing WAMP_BRIDGE_* setting
    ├── ProtocolError               a WebSocket or WAMP rule was broken (.close_code)
    │   ├── LocalProtocolError      we were asked to send something illegal
    │   └── RemoteProtocolError     the other side sent something illegal
    │       ├── MessageTooBig       a message over the configured size limit
    │       └── PayloadOutOfBounds  nested too deep, too many elements, a length bomb, a refused value
    ├── AuthError                   identity could not be established
    │   ├── NotAuthenticated        no identity in the Flask session
    │   └── InvalidTicket           a bridge ticket failed verification
    │       └── ExpiredTicket       ... because it is too old
    ├── TransportError              the connection itself failed
    │   ├── ConnectError            could not reach the router / server
    │   ├── ConnectionClosed        the connection closed (.code, .reason)
    │   └── NotConnected            the worker's WAMP session is down right now
    └── ApplicationError            a WAMP ERROR: .error (URI), .args, .kwargs
        └── CallTimeout             a call got no result in time (and was canceled)

Foreign exceptions (socket, gevent, serializers) are mapped to these at one
boundary each, with ``raise ... from exc``. Every exception pickles (and
copies) with its arguments and attributes intact, so it can cross a process
boundary.
"""

from __future__ import annotations

import typing as t

__all__ = [
    "BridgeError",
    "ConfigError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "MessageTooBig",
    "PayloadOutOfBounds",
    "AuthError",
    "NotAuthenticated",
    "InvalidTicket",
    "ExpiredTicket",
    "TransportError",
    "ConnectError",
    "ConnectionClosed",
    "NotConnected",
    "ApplicationError",
    "CallTimeout",
]


class BridgeError(Exception):
    """Base class of every exception the library raises."""


class ConfigError(BridgeError):
    """A ``WAMP_BRIDGE_*`` setting is missing or invalid. Raised early, in ``init_app``."""


class ProtocolError(BridgeError):
    """A WebSocket or WAMP rule was broken.

    :attr:`close_code` is the WebSocket close code to end the connection with.
    """

    close_code: int = 1002

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        if close_code is not None:
            self.close_code = close_code


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The other side (browser, client or router) sent something the protocol does not allow."""


class MessageTooBig(RemoteProtocolError):
    """A message is larger than the configured maximum (close code 1009)."""

    close_code = 1009


class PayloadOutOfBounds(RemoteProtocolError):
    """A message is past a decoding bound: nesting depth, element count, size, a length prefix
    claiming more than the frame holds, or a value the decoding rules refuse (a non-string map key, an
    integer beyond 64 bits, a float that is not finite, a CBOR tag, ...: see
    :mod:`flask_wamp_bridge.wamp.bounds`). Refused before (or instead of) decoding it."""


class AuthError(BridgeError):
    """Identity could not be established."""


class NotAuthenticated(AuthError):
    """The Flask session holds no identity and anonymous access is not allowed."""


class InvalidTicket(AuthError):
    """A bridge ticket is malformed, tampered with, or signed with another key."""


class ExpiredTicket(InvalidTicket):
    """A bridge ticket was valid once but is older than its maximum age."""


class StaleTicket(ExpiredTicket):
    """A bridge ticket reached the authenticator after its maximum age: late (an overloaded one), not forged."""


class TransportError(BridgeError):
    """The connection itself failed."""


class ConnectError(TransportError):
    """The router (or server) could not be reached or refused the connection."""


class ConnectionClosed(TransportError):
    """The connection is closed; :attr:`code` and :attr:`reason` say how, when known."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class NotConnected(TransportError):
    """The worker's WAMP session is not established (router down or reconnecting)."""


class ApplicationError(BridgeError):
    """A WAMP ERROR: the error URI plus the args and kwargs that came with it.

    Raise it (or a subclass that sets the class attribute :attr:`uri`) in a
    procedure to answer the caller with that error.
    """

    #: Default error URI for subclasses raised without one.
    uri: t.ClassVar[str] = "wamp.error.runtime_error"

    def __init__(self, error: str | None = None, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(error or self.uri)
        self.error: str = error or self.uri
        self.args = args  # the WAMP positional payload, as autobahn's ApplicationError
        self.kwargs: dict[str, t.Any] = kwargs

    def __reduce__(self) -> tuple[t.Any, ...]:
        # ``self.args`` is the WAMP payload, not the constructor's arguments: rebuild from both
        return (_rebuild_application_error, (type(self), self.args), self.__dict__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error!r}, args={self.args!r}, kwargs={self.kwargs!r})"

    def __str__(self) -> str:
        parts = [self.error]
        if self.args:
            parts.append(", ".join(repr(a) for a in self.args))
        if self.kwargs:
            parts.append(", ".join(f"{k}={v!r}" for k, v in self.kwargs.items()))
        return ": ".join(parts)


class CallTimeout(ApplicationError):
    """A call got no result within its timeout; the call was canceled at the router."""

    uri = "wamp.error.canceled"


def _rebuild_application_error(cls: type[ApplicationError], args: tuple[t.Any, ...]) -> ApplicationError:
    """Unpickle an :class:`ApplicationError` (or subclass): its payload, then its ``__dict__`` (``error``, ...)."""
    exc = cls.__new__(cls)
    exc.args = args
    return exc
