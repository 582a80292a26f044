"""Signals (blinker, as :mod:`flask.signals`): what happens to the peer and to browser sessions.

Connect a receiver with ``signals.peer_joined.connect(fn)`` (or
``connect_via(app)`` for one app). The sender is the Flask app the peer or
browser session belongs to (the :class:`~flask_wamp_bridge.wamp.peer.Peer`
itself for a peer made without the extension); keyword arguments as listed.
Receivers run in the greenlet where it happened: keep them short, and spawn
(``bridge.spawn``) anything slow. An exception in a receiver is logged, never
passed on to the peer or the relay.

Each signal is sent once per event.
"""

from __future__ import annotations

import logging
import typing as t

from blinker import Namespace

__all__ = [
    "peer_joined",
    "peer_left",
    "router_lost",
    "peer_refused",
    "peer_reregistered",
    "registration_failed",
    "call_timed_out",
    "browser_session_opened",
    "browser_session_closed",
    "message_refused",
    "send",
]

log = logging.getLogger("flask_wamp_bridge.signals")

_signals = Namespace()

#: The peer joined the realm: ``session_id``, ``authid``, ``authrole``.
peer_joined = _signals.signal("wamp-peer-joined")
#: The peer's session ended (closed, aborted or the connection was lost): ``reason``, ``message``.
peer_left = _signals.signal("wamp-peer-left")
#: The peer's connection to a router node ended while its session was open (the router went away, or stopped
#: answering the peer's liveness check), after ``peer_left``: ``url`` (the node), ``message``. Not sent when the
#: session ended by GOODBYE or ABORT, nor when a (re)join fails.
router_lost = _signals.signal("wamp-router-lost")
#: The router refused the peer's join (ABORT before WELCOME: a wrong secret or role, an unknown realm):
#: ``reason`` (the ABORT's URI), ``message``. Until the next ``peer_joined``, this worker cannot register its
#: ticket authenticator.
peer_refused = _signals.signal("wamp-peer-refused")
#: After a rejoin, every registration and subscription was made again: ``session_id``, ``uris``.
peer_reregistered = _signals.signal("wamp-peer-reregistered")
#: The router refused (or did not answer) a REGISTER or SUBSCRIBE: ``uri``, ``kind``
#: (``"register"``/``"subscribe"``), ``error`` (the exception).
registration_failed = _signals.signal("wamp-registration-failed")
#: A call through the peer got no result in time and was canceled: ``procedure``, ``timeout``.
call_timed_out = _signals.signal("wamp-call-timed-out")
#: A browser's WAMP session through the bridge was welcomed by the router:
#: ``authid``, ``role``, ``session_id``.
browser_session_opened = _signals.signal("wamp-browser-session-opened")
#: That session ended: ``authid``, ``role``, ``session_id``, ``reason`` (the close reason).
browser_session_closed = _signals.signal("wamp-browser-session-closed")
#: The relay's checks refused (or stripped) one message of a browser: ``authid``, ``role``, ``session_id``
#: (None before WELCOME), ``reason``.
message_refused = _signals.signal("wamp-message-refused")


def send(signal: t.Any, sender: t.Any, **kwargs: t.Any) -> None:
    """Send ``signal``; a receiver's exception is logged and goes no further."""
    if not signal.receivers:
        return
    try:
        signal.send(sender, **kwargs)
    except Exception:
        log.exception("a receiver of %s raised", signal.name)
