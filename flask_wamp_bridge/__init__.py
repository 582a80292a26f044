"""flask_wamp_bridge: make a Flask app a first-class member of a WAMP system.

``gunicorn -k flask_wamp_bridge.worker app:app`` runs the app on the bridge's
gevent worker; :class:`WampBridge` adds the WAMP endpoint and the worker's own
WAMP peer; :class:`Sockets` adds plain WebSocket routes. The types a view
meets are here too: :class:`WebSocket` (a protocol), :class:`CallResult`,
:class:`InvocationDetails` and :class:`EventDetails`.

Importing this package imports neither gevent nor gunicorn: the worker class
is resolved on first access of ``flask_wamp_bridge.worker``.
"""

from __future__ import annotations

import typing as t

from .bridge.identity import Identity as Identity
from .errors import ApplicationError as ApplicationError
from .errors import AuthError as AuthError
from .errors import BridgeError as BridgeError
from .errors import CallTimeout as CallTimeout
from .errors import ConfigError as ConfigError
from .errors import ConnectError as ConnectError
from .errors import ConnectionClosed as ConnectionClosed
from .errors import ExpiredTicket as ExpiredTicket
from .errors import InvalidTicket as InvalidTicket
from .errors import LocalProtocolError as LocalProtocolError
from .errors import MessageTooBig as MessageTooBig
from .errors import NotAuthenticated as NotAuthenticated
from .errors import NotConnected as NotConnected
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import TransportError as TransportError
from .extension import WampBridge as WampBridge
from .wamp.session_events import CallResult as CallResult
from .wamp.session_events import EventDetails as EventDetails
from .wamp.session_events import InvocationDetails as InvocationDetails
from .websocket.interface import WebSocket as WebSocket
from .websocket.routes import Sockets as Sockets
from .websocket.routes import WebSocketBlueprint as WebSocketBlueprint

__version__ = "0.1.0"

__all__ = [
    "ApplicationError",
    "AuthError",
    "BridgeError",
    "CallResult",
    "CallTimeout",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "EventDetails",
    "ExpiredTicket",
    "Identity",
    "InvalidTicket",
    "InvocationDetails",
    "LocalProtocolError",
    "MessageTooBig",
    "NotAuthenticated",
    "NotConnected",
    "ProtocolError",
    "RemoteProtocolError",
    "Sockets",
    "TransportError",
    "WampBridge",
    "WebSocket",
    "WebSocketBlueprint",
    "__version__",
]


def __getattr__(name: str) -> t.Any:
    # ``gunicorn -k flask_wamp_bridge.worker`` imports this package and reads the
    # attribute ``worker``. The class lives in ``_worker`` (not ``worker``): a
    # submodule named ``worker`` would rebind this attribute to the module on
    # import and break gunicorn's lookup after a SIGHUP reload.
    if name == "worker":
        from .websocket.worker import BridgeWorker

        return BridgeWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
