"""Decisions of the dynamic authorizer of browser roles, without IO (pure; the clock is handed in).

With ``WAMP_BRIDGE_AUTHORIZER`` set, the generated config gives every browser
role Crossbar's dynamic authorizer instead of static permissions, and Crossbar
asks it about each CALL, REGISTER, PUBLISH and SUBSCRIBE of such a session
(after the relay's own checks). :class:`Authorization` answers in this order:

1. URIs of the router and the bridge (``wamp.*``, ``wamp_bridge.*``, the
   authenticator and the authorizer): the static rules alone, never the app;
2. the static rules of ``WAMP_BRIDGE_PERMISSIONS`` (or the role's default):
   what they allow is allowed, with the rule's ``disclose`` and ``cache`` (they
   hold for the whole role, which is how Crossbar caches: per realm, role, URI
   and action);
3. the app's ``@bridge.authorizer`` function, for what the static rules do not
   allow. Its answer is never cached by Crossbar (Crossbar 26.10.1 would reuse
   it for every session of the role); with ``cache: True`` the bridge reuses it
   for the same session in the same worker (:class:`DecisionCache`).

No app function, an error, a timeout or a malformed answer: denied.
"""

from __future__ import annotations

import collections
import dataclasses
import typing as t

from .config import matching_rule

__all__ = ["Caller", "Decision", "Authorization", "DecisionCache", "normalize_answer", "ACTIONS", "DENY"]

#: The actions Crossbar authorizes.
ACTIONS = ("call", "register", "publish", "subscribe")
_RESERVED_PREFIXES = ("wamp.", "wamp_bridge.")


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """The browser session asking to act: what Crossbar tells the authorizer about it."""

    authid: str
    authrole: str
    #: The WAMP session id (a browser tab's connection).
    session: int
    authextra: t.Mapping[str, t.Any] | None = None

    @classmethod
    def from_router(cls, details: t.Any) -> Caller | None:
        """From Crossbar's session details (a dict); None when they lack an authid, role or session."""
        if not isinstance(details, t.Mapping):
            return None
        authid, authrole, session = details.get("authid"), details.get("authrole"), details.get("session")
        if type(authid) is not str or type(authrole) is not str or type(session) is not int:
            return None
        extra = details.get("authextra")
        return cls(authid, authrole, session, extra if isinstance(extra, t.Mapping) else None)


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """An answer for Crossbar: ``allow``; ``disclose`` the caller/publisher to the callee/subscribers."""

    allow: bool
    disclose: bool = False
    #: Crossbar may cache it for the role (static rules only).
    router_cache: bool = False
    #: The bridge may reuse it for this session (the app said ``cache: True``).
    session_cache: bool = False

    def for_router(self) -> dict[str, bool]:
        return {"allow": self.allow, "disclose": self.disclose, "cache": self.router_cache}


DENY = Decision(False)


def normalize_answer(value: t.Any, action: str) -> Decision:
    """The app's answer as a :class:`Decision`: ``True``/``False`` or ``{"allow", "disclose", "cache"}``.

    ``disclose`` defaults to True for calls and publications (as static rules do).

    :raises TypeError: any other answer (the caller denies then).
    """
    if type(value) is bool:
        return Decision(value, disclose=value and action in ("call", "publish"))
    if isinstance(value, t.Mapping):
        unknown = set(value) - {"allow", "disclose", "cache"}
        flags = {key: value.get(key) for key in ("allow", "disclose", "cache") if key in value}
        if unknown or type(value.get("allow")) is not bool or not all(type(v) is bool for v in flags.values()):
            raise TypeError(f"an authorizer answers True, False or {{'allow': bool, 'disclose': bool, "
                            f"'cache': bool}}, got {value!r}")
        allow = bool(value["allow"])
        disclose = bool(value.get("disclose", action in ("call", "publish")))
        return Decision(allow, disclose=allow and disclose, session_cache=bool(value.get("cache", False)))
    raise TypeError(f"an authorizer answers True, False or a dict, got {type(value).__name__}")


class Authorization:
    """The static part of every decision (see the module docs).

    :param rules: the static rules of each browser role (:func:`~.config.browser_rules`).
    :param reserved: more URIs only the static rules decide (the authenticator, the authorizer).
    """

    def __init__(self, rules: t.Mapping[str, t.Sequence[t.Mapping[str, t.Any]]], reserved: t.Iterable[str] = ()):
        self._rules = {role: list(role_rules) for role, role_rules in rules.items()}
        self._reserved = frozenset(reserved)

    def static(self, caller: Caller, uri: str, action: str) -> Decision | None:
        """The static rules' decision, or None: the app decides."""
        if action not in ACTIONS or type(uri) is not str:
            return DENY
        rules = self._rules.get(caller.authrole)
        if rules is None:  # not a browser role: never one the authorizer serves
            return DENY
        rule = matching_rule(rules, uri)
        if rule is not None and rule["allow"][action]:
            disclose = rule["disclose"]["caller" if action == "call" else "publisher"]
            return Decision(True, disclose=bool(disclose) and action in ("call", "publish"),
                            router_cache=bool(rule["cache"]))
        if uri in self._reserved or uri.startswith(_RESERVED_PREFIXES):
            return DENY
        return None


class DecisionCache:
    """Decisions the app allowed caching, per (session, URI, action), for ``ttl`` seconds; at most ``size``.

    Session ids are never reused, so an entry of an ended session is never hit
    again; it ages out, or :meth:`forget_authid` drops it at logout.
    """

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: collections.OrderedDict[tuple[int, str, str], tuple[float, str, Decision]] = (
            collections.OrderedDict())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, caller: Caller, uri: str, action: str, now: float) -> Decision | None:
        key = (caller.session, uri, action)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now or entry[1] != caller.authid:
            del self._entries[key]
            return None
        return entry[2]

    def put(self, caller: Caller, uri: str, action: str, decision: Decision, now: float) -> None:
        if self.ttl <= 0 or not decision.session_cache:
            return
        entries = self._entries
        entries[(caller.session, uri, action)] = (now + self.ttl, caller.authid, decision)
        while len(entries) > self.size:
            entries.popitem(last=False)

    def forget_authid(self, authid: str) -> int:
        """Drop every entry of ``authid`` (at logout); returns how many."""
        keys = [key for key, entry in self._entries.items() if entry[1] == authid]
        for key in keys:
            del self._entries[key]
        return len(keys)
