"""Names of the router's subscription meta API a browser may reach, and the bridge's procedures behind them.

A browser never calls the router's meta API itself: the relay rewrites the few
meta calls a page may make (:data:`BROWSER_META_CALLS`) into the bridge's own
procedures, which the app's peer registers and which answer without session
ids of other users. Pure constants.
"""

from __future__ import annotations

import typing as t

__all__ = ["META_PREFIX", "BROWSER_META_CALLS", "GET_EVENTS", "COUNT_SUBSCRIBERS", "LIST_SUBSCRIBERS", "TopicSet"]

#: Prefix of the bridge's meta procedures (registered by the app's peer, callable by browser roles).
META_PREFIX = "wamp_bridge.meta."

GET_EVENTS = "wamp.subscription.get_events"
COUNT_SUBSCRIBERS = "wamp.subscription.count_subscribers"
LIST_SUBSCRIBERS = "wamp.subscription.list_subscribers"

#: Meta procedure a page calls -> the bridge procedure the relay sends the CALL to instead.
BROWSER_META_CALLS: dict[str, str] = {
    GET_EVENTS: META_PREFIX + "get_events",
    COUNT_SUBSCRIBERS: META_PREFIX + "count_subscribers",
    LIST_SUBSCRIBERS: META_PREFIX + "list_subscribers",
}


class TopicSet:
    """Topics given as exact URIs or prefixes ending in ``.`` (``"app.team."``)."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: t.Iterable[str] = ()) -> None:
        patterns = list(patterns)
        self._exact = frozenset(p for p in patterns if not p.endswith("."))
        self._prefixes = tuple(p for p in patterns if p.endswith("."))

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def __contains__(self, topic: object) -> bool:
        return type(topic) is str and (topic in self._exact or topic.startswith(self._prefixes))

    def covers(self, uri: str, match: str) -> bool:
        """Whether a subscription on ``uri`` with ``match`` lies wholly inside the set."""
        if match == "exact":
            return uri in self
        if match == "prefix":
            return any(uri.startswith(prefix) for prefix in self._prefixes)
        return False  # a wildcard subscription may reach any topic
