"""Which serializer a relay speaks to the router, and the per-message translation between the two legs.

Pure. The router's cheapest serializer is msgpack (Crossbar's JSON decoder is
autobahn's pure-Python scanner); a browser speaking JSON or msgpack gets a
msgpack upstream. A CBOR browser gets a CBOR upstream: its bytes pass both
ways untouched (exact), where msgpack would need a translation per message
for nothing Crossbar decodes much faster.

Translation follows the WAMP spec's rules as Crossbar applies them
(:mod:`~flask_wamp_bridge.wamp.translate`): a JSON browser's binary strings
(``"\\u0000"`` + base64) are bytes upstream and back. The same serializer on
both legs returns the bytes unchanged. The router sends the same EVENT bytes to
every subscriber of a topic, so a JSON browser's EVENTs are translated once per
worker through a small cache of the last few (:data:`EVENT_CACHE_SIZE`).
"""

from __future__ import annotations

import typing as t

from ..wamp.messages import SERIALIZERS
from ..wamp.messages import Serializer
from ..wamp.translate import translate

__all__ = ["upstream_serializer", "UpstreamCodec", "EVENT_CACHE_SIZE", "EVENT_CACHE_MAX_BYTES"]

#: EVENTs (upstream bytes -> browser message) kept per worker for fan-out.
EVENT_CACHE_SIZE = 8
#: EVENTs longer than this are translated each time (the cache's memory stays bounded).
EVENT_CACHE_MAX_BYTES = 1 << 20

_MSGPACK_EVENT = 36  # the positive fixint after a msgpack fixarray marker
_event_cache: dict[bytes, str | bytes] = {}


def upstream_serializer(browser: Serializer) -> Serializer:
    """The serializer a relay speaks upstream for a browser speaking ``browser``."""
    return browser if browser.name == "cbor" else SERIALIZERS["wamp.2.msgpack"]


class UpstreamCodec:
    """One relay's translation between the browser's serializer and the upstream's.

    :raises PayloadOutOfBounds: (from both methods) a value the target cannot carry.
    :raises RemoteProtocolError: data not valid in its own serializer.
    """

    __slots__ = ("browser", "upstream", "same")

    def __init__(self, browser: Serializer, upstream: Serializer) -> None:
        self.browser = browser
        self.upstream = upstream
        #: Nothing to translate: both legs speak the same serializer.
        self.same = browser.name == upstream.name

    def to_router(self, data: str | bytes, decoded: list[t.Any] | None = None) -> str | bytes:
        """A browser message (already checked) for the router; ``decoded``: the checks' decoded copy, if kept."""
        if self.same:
            return data
        return translate(data, self.browser.name, self.upstream.name, decoded)

    def to_browser(self, data: str | bytes) -> str | bytes:
        """A router message for the browser (EVENTs from msgpack through the per-worker cache)."""
        if self.same:
            return data
        cacheable = (type(data) is bytes and self.upstream.name == "msgpack" and len(data) > 1
                     and data[1] == _MSGPACK_EVENT and data[0] & 0xF0 == 0x90 and len(data) <= EVENT_CACHE_MAX_BYTES)
        if cacheable:
            cached = _event_cache.get(t.cast(bytes, data))
            if cached is not None:
                return cached
        out = translate(data, self.upstream.name, self.browser.name)
        if cacheable:
            if len(_event_cache) >= EVENT_CACHE_SIZE:
                del _event_cache[next(iter(_event_cache))]
            _event_cache[t.cast(bytes, data)] = out
        return out
