"""The test client's serializers: autobahn's, made to survive any payload a router delivers.

Like the library's own peer, a message past the peer's bounds, holding a
value the decoding rules refuse (:mod:`flask_wamp_bridge.wamp.bounds`) or not
decodable ends only its invocation, event or call, never the session. Our
decoder judges each message first, so autobahn's decodes only what it took.
"""

from __future__ import annotations

import functools
import logging
import typing as t

from ..wamp.bounds import PEER_BOUNDS
from ..wamp.messages import MessageType
from ..wamp.messages import Undecodable
from ..wamp.messages import decode_or_head
from ..wamp.messages import serializer_for

__all__ = ["tolerant_serializer"]

log = logging.getLogger(__name__)

_NAMES = {"JsonSerializer": "json", "MsgPackSerializer": "msgpack", "CBORSerializer": "cbor"}


@functools.lru_cache(maxsize=None)
def tolerant_serializer(class_name: str) -> type:
    """autobahn's serializer class ``class_name``, made to survive any payload (like the library's own peer).

    A message past the peer's bounds (:data:`~flask_wamp_bridge.wamp.bounds.PEER_BOUNDS`) or not
    decodable ends only its invocation (ERROR ``wamp.error.invalid_argument``), event (dropped) or
    call (it fails with that error), with a warning; the session stays.
    """
    from autobahn.wamp import message
    from autobahn.wamp import serializer as serializers
    from autobahn.wamp.exception import ProtocolError as AutobahnProtocolError

    base: type = getattr(serializers, class_name)
    ours = serializer_for(f"wamp.2.{_NAMES[class_name]}")
    text = "the message could not be decoded within the test client's bounds"

    class Tolerant(base):  # type: ignore[misc]
        def __init__(self, session: t.Any) -> None:
            super().__init__()
            self._session = session

        def unserialize(self, payload: bytes, isBinary: bool | None = None) -> list[t.Any]:  # noqa: N803
            if isBinary is None or isBinary == ours.binary:
                try:
                    data: str | bytes = payload if ours.binary else payload.decode("utf-8")
                except UnicodeDecodeError:
                    data = b""
                bad = decode_or_head(ours, data, PEER_BOUNDS) if data else None
                if isinstance(bad, Undecodable):
                    self._undecodable(bad)
                    return []
            return t.cast(list[t.Any], super().unserialize(payload, isBinary))

        def _undecodable(self, bad: Undecodable) -> None:
            log.warning("test client: dropped a message it cannot decode: %s", bad.reason)
            session, request_id = self._session, bad.request_id
            if request_id is None:
                return
            if bad.kind == MessageType.INVOCATION and session.transport is not None:
                session.transport.send(message.Error(  # type: ignore[no-untyped-call]
                    message.Invocation.MESSAGE_TYPE, request_id, "wamp.error.invalid_argument", args=[text]))
            elif bad.kind == MessageType.RESULT or (bad.kind == MessageType.ERROR
                                                    and bad.request_kind == MessageType.CALL):
                # the call fails alone, as if the router had answered it with this ERROR
                try:
                    session.onMessage(message.Error(  # type: ignore[no-untyped-call]
                        message.Call.MESSAGE_TYPE, request_id, "wamp.error.invalid_argument", args=[text]))
                except AutobahnProtocolError:  # the call is no longer pending (canceled, or answered)
                    pass

    return Tolerant
