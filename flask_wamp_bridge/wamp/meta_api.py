"""Names of the router's subscription meta API a browser may reach, and the bridge's procedures behind them.

A browser never calls the router's meta API itself: the relay rewrites the few
meta calls a page may make (:data:`BROWSER_META_CALLS`) into the bridge's own
procedures, which the app's peer registers and which answer without session
ids of other users. Pure constants.
"""

from __future__ import annotations

__all__ = ["META_PREFIX", "BROWSER_META_CALLS", "GET_EVENTS", "COUNT_SUBSCRIBERS", "LIST_SUBSCRIBERS"]

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
