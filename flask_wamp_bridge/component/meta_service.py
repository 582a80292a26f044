"""Event history and presence for pages, answered by the app's peer (the relay sends pages' meta calls here).

**History.** For each topic (or prefix ending in ``.``) of
``WAMP_BRIDGE_EVENT_HISTORY`` the peer of every worker holds a subscription
and keeps the last ``n`` events (:class:`EventHistory`), so the history lives
while no page listens. Crossbar's own memory event store is not used: in
26.10.1 it records an event once per subscribing session (two pages: each
event twice), records nothing while no session subscribes, fails
``get_events`` with ``wamp.error.runtime_error`` once two or more subscribers
pass its limit, and makes ``wamp.subscription.list_subscribers`` fail on its
topics. ``get_events`` is registered with ``invoke: first``: the worker that
joined first (the longest history) answers.

**Presence.** ``count_subscribers`` / ``list_subscribers`` answer for
subscriptions lying inside ``WAMP_BRIDGE_PRESENCE_TOPICS``, with the distinct
authids of browser sessions (never session ids, never the backend's own
sessions).

Each procedure checks again that the caller (disclosed by the router) is
subscribed to the subscription it names. Cost per call to the worker: one
router call (the subscriber list), one more the first time a subscription id
is seen; a presence answer is reused for :data:`PRESENCE_TTL` and looks up each
new session's authid once. The relay's message rate bounds how often a page asks.
"""

from __future__ import annotations

import collections
import itertools
import os
import time
import typing as t

import gevent.pool
from flask import g

from ..errors import ApplicationError
from ..wamp.meta_api import TopicSet

__all__ = ["EventHistory", "MetaService", "MAX_PRESENCE_SESSIONS", "PRESENCE_TTL"]

#: The most subscriber sessions a presence answer looks at (their authids are looked up once each).
MAX_PRESENCE_SESSIONS = 1000
#: Seconds a page's presence answer is reused for other pages' calls on the same subscription (per worker).
PRESENCE_TTL = 1.0
_LOOKUPS_AT_ONCE = 8
_NOT_AUTHORIZED = "wamp.error.not_authorized"

Call = t.Callable[..., t.Any]


class EventHistory:
    """The last events of each history topic (pure: the clock is handed in)."""

    def __init__(self, limits: t.Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self._events: dict[tuple[str, str], collections.deque[dict[str, t.Any]]] = {
            (topic, _match_of(topic)): collections.deque(maxlen=limit) for topic, limit in self.limits.items()}
        self._kept: dict[tuple[str, str], set[int]] = {key: set() for key in self._events}

    def subscriptions(self) -> list[tuple[str, str]]:
        """``(topic, match)`` of each history subscription."""
        return list(self._events)

    def record(self, key: tuple[str, str], publication: int, topic: str, args: t.Sequence[t.Any],
               kwargs: t.Mapping[str, t.Any], now: float) -> None:
        events, kept = self._events[key], self._kept[key]
        if publication in kept:
            return  # a publication is recorded once
        if len(events) == events.maxlen:
            kept.discard(events[0]["publication"])
        kept.add(publication)
        events.append({"publication": publication, "topic": topic, "args": list(args), "kwargs": dict(kwargs),
                       "timestamp": now})

    def events(self, key: tuple[str, str], limit: int) -> list[dict[str, t.Any]] | None:
        """At most ``limit`` events, newest first (as Crossbar's ``get_events``); None: no history kept."""
        events = self._events.get(key)
        if events is None:
            return None
        return list(itertools.islice(reversed(events), max(0, limit)))


def _match_of(topic: str) -> str:
    return "prefix" if topic.endswith(".") else "exact"


class MetaService:
    """The bridge's meta procedures and the presence API of one app in one worker.

    :param call: the peer's ``call(procedure, *args)`` (blocking).
    :param browser_roles: the roles presence counts (the backend's sessions are left out).
    """

    def __init__(self, call: Call, history: t.Mapping[str, int], presence: t.Iterable[str],
                 browser_roles: t.Iterable[str], clock: t.Callable[[], float] = time.time) -> None:
        self._call = call
        self.history = EventHistory(history)
        self.presence = TopicSet(presence)
        self.browser_roles = frozenset(browser_roles)
        self.pid = os.getpid()
        self._clock = clock
        self._authids: collections.OrderedDict[int, tuple[str, str] | None] = collections.OrderedDict()
        # a subscription id names one (uri, match) while it lives: asked once
        self._subscriptions: collections.OrderedDict[int, tuple[str, str]] = collections.OrderedDict()
        self._answers: dict[int, tuple[float, list[str]]] = {}  # presence answers, reused for PRESENCE_TTL

    # -- history subscriptions (the peer's handlers) -------------------------------------------

    def record(self, key: tuple[str, str], args: t.Sequence[t.Any], kwargs: t.Mapping[str, t.Any]) -> None:
        """Keep an event of history subscription ``key`` (run as its handler, with ``g.wamp_details``)."""
        details = g.wamp_details
        self.history.record(key, details.publication, details.topic, args, kwargs, self._clock())

    # -- browser meta calls (rewritten by the relay) ---------------------------------------------

    def get_events(self, subscription: int, limit: int = 10) -> list[dict[str, t.Any]]:
        if type(limit) is not int or limit < 1:
            raise ApplicationError("wamp.error.invalid_argument", "limit must be a positive integer")
        uri, match, _ = self._held(subscription)
        events = self.history.events((uri, match), limit)
        if events is None:
            raise ApplicationError("wamp.error.history_unavailable",
                                   f"no event history is kept for {uri!r} ({match}); see WAMP_BRIDGE_EVENT_HISTORY")
        return events

    def count_subscribers_of(self, subscription: int) -> int:
        return len(self._present(subscription))

    def list_subscribers_of(self, subscription: int) -> list[str]:
        return self._present(subscription)

    def _present(self, subscription: int) -> list[str]:
        uri, match, sessions = self._held(subscription)
        if not self.presence.covers(uri, match):
            raise ApplicationError(_NOT_AUTHORIZED, f"presence is not shown for {uri!r} ({match}); "
                                                    "see WAMP_BRIDGE_PRESENCE_TOPICS")
        now = self._clock()
        answer = self._answers.get(subscription)
        if answer is None or answer[0] <= now:
            if len(self._answers) > MAX_PRESENCE_SESSIONS:
                self._answers = {key: value for key, value in self._answers.items() if value[0] > now}
            answer = self._answers[subscription] = (now + PRESENCE_TTL, self.users(subscription, sessions))
        return answer[1]

    def _held(self, subscription: t.Any) -> tuple[str, str, list[int]]:
        """The subscription's ``(uri, match, subscriber sessions)``, if the disclosed caller holds it."""
        caller = getattr(g.wamp_details, "caller", None)
        if type(subscription) is not int or caller is None:
            raise ApplicationError(_NOT_AUTHORIZED, "a subscription id of the caller's is needed")
        sessions = list(self._call("wamp.subscription.list_subscribers", subscription) or ())
        if caller not in sessions:
            raise ApplicationError(_NOT_AUTHORIZED, f"the caller holds no subscription {subscription}")
        known = self._subscriptions.get(subscription)
        if known is None:
            found = self._call("wamp.subscription.get", subscription)
            known = self._subscriptions[subscription] = (str(found["uri"]), str(found["match"]))
            while len(self._subscriptions) > 10 * MAX_PRESENCE_SESSIONS:
                self._subscriptions.popitem(last=False)
        return known[0], known[1], sessions

    # -- presence for the app's views ---------------------------------------------------------------

    def users(self, subscription: int, sessions: list[int] | None = None) -> list[str]:
        """The distinct authids of the browser sessions subscribed to ``subscription``, sorted."""
        if sessions is None:
            sessions = list(self._call("wamp.subscription.list_subscribers", subscription) or ())
        sessions = sessions[:MAX_PRESENCE_SESSIONS]
        unknown = [session for session in sessions if session not in self._authids]
        if unknown:
            pool = gevent.pool.Pool(_LOOKUPS_AT_ONCE)
            for session, identity in zip(unknown, pool.imap(self._lookup, unknown), strict=True):
                self._remember(session, identity)
        authids = set()
        for session in sessions:
            identity = self._authids.get(session)
            if identity is not None and identity[1] in self.browser_roles:
                authids.add(identity[0])
        return sorted(authids)

    def subscribers(self, topic: str, match: str = "exact") -> list[str]:
        """The distinct authids of users subscribed to ``topic`` (with ``match``), for the app's views."""
        subscription = self._call("wamp.subscription.lookup", topic, {"match": match})
        return [] if subscription is None else self.users(subscription)

    def _lookup(self, session: int) -> tuple[str, str] | None:
        try:
            details = self._call("wamp.session.get", session)
        except ApplicationError:  # gone meanwhile
            return None
        authid, authrole = details.get("authid"), details.get("authrole")
        return (authid, authrole) if isinstance(authid, str) and isinstance(authrole, str) else None

    def _remember(self, session: int, identity: tuple[str, str] | None) -> None:
        if identity is None:
            return  # a session that left: asked again if it shows up (it will not)
        self._authids[session] = identity
        while len(self._authids) > 10 * MAX_PRESENCE_SESSIONS:
            self._authids.popitem(last=False)
