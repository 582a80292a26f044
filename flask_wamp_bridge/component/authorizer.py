"""The dynamic authorizer the app's peer registers for Crossbar: ``@bridge.authorizer`` with a deadline.

Crossbar calls ``WAMP_BRIDGE_AUTHORIZER`` with ``(session details, uri,
action, options)`` for each action of a browser-role session. The static rules
answer first (:class:`~flask_wamp_bridge.router.authorization.Authorization`);
otherwise the app's function runs in its own greenlet, in an app context, at
most ``concurrency`` at once per worker, for at most ``timeout`` seconds. A
full pool, a timeout, an exception or a malformed answer denies, with one log
line: a router waiting on the authorizer holds the browser's request, so it
must always get an answer, soon.
"""

from __future__ import annotations

import logging
import os
import time
import typing as t

import gevent
import gevent.pool
from flask import Flask

from ..router.authorization import DENY
from ..router.authorization import Authorization
from ..router.authorization import Caller
from ..router.authorization import Decision
from ..router.authorization import DecisionCache
from ..router.authorization import normalize_answer

__all__ = ["AuthorizerService", "AuthorizeFunction"]

log = logging.getLogger("flask_wamp_bridge.authorizer")

#: ``authorize(caller, uri, action)`` -> True, False or ``{"allow", "disclose", "cache"}``.
AuthorizeFunction = t.Callable[[Caller, str, str], t.Any]


class AuthorizerService:
    """The procedure behind ``WAMP_BRIDGE_AUTHORIZER`` in one worker (see the module docs)."""

    def __init__(self, app_ref: t.Callable[[], Flask | None], authorization: Authorization,
                 function: t.Callable[[], AuthorizeFunction | None], *, timeout: float, concurrency: int,
                 cache_ttl: float, clock: t.Callable[[], float] = time.monotonic) -> None:
        self._app_ref = app_ref
        self._authorization = authorization
        self._function = function
        self.timeout = timeout
        self.pool = gevent.pool.Pool(concurrency)
        self.cache = DecisionCache(cache_ttl)
        self.pid = os.getpid()
        self._clock = clock

    def __call__(self, session: t.Any, uri: t.Any, action: t.Any, options: t.Any = None) -> dict[str, bool]:
        """Crossbar's call: an answer for it, always, within about ``timeout`` seconds."""
        return self.decide(session, uri, action, options).for_router()

    def decide(self, session: t.Any, uri: t.Any, action: t.Any, options: t.Any = None) -> Decision:
        caller = Caller.from_router(session)
        if caller is None or type(uri) is not str or type(action) is not str:
            log.warning("authorizer: denied a malformed request (session %r, uri %r, action %r)",
                        session, uri, action)
            return DENY
        static = self._authorization.static(caller, uri, action)
        if static is not None:
            return static
        match = options.get("match") if isinstance(options, t.Mapping) else None
        if match not in (None, "exact"):  # the app's function judges URIs, not patterns
            log.info("authorizer: denied %s of the %s pattern %r for %r: patterns only by the static rules",
                     action, match, uri, caller.authid)
            return DENY
        function = self._function()
        if function is None:
            return DENY
        now = self._clock()
        cached = self.cache.get(caller, uri, action, now)
        if cached is not None:
            return cached
        if self.pool.full():  # the gate: beyond ``concurrency`` running, denied at once (never queued)
            log.warning("authorizer: denied %s %r for %r: %d decisions already running in this worker "
                        "(WAMP_BRIDGE_AUTHORIZER_CONCURRENCY)", action, uri, caller.authid, self.pool.size)
            return DENY
        decision = self._ask(function, caller, uri, action)
        self.cache.put(caller, uri, action, decision, self._clock())
        return decision

    def _ask(self, function: AuthorizeFunction, caller: Caller, uri: str, action: str) -> Decision:
        greenlet = self.pool.spawn(self._run, function, caller, uri, action)
        try:
            answer = greenlet.get(timeout=self.timeout)
        except gevent.Timeout:
            greenlet.kill(block=False)
            log.warning("authorizer: denied %s %r for %r: no answer within %g s (WAMP_BRIDGE_AUTHORIZER_TIMEOUT)",
                        action, uri, caller.authid, self.timeout)
            return DENY
        if isinstance(answer, _Raised):
            exc = answer.exc
            log.warning("authorizer: denied %s %r for %r: it raised %s: %s", action, uri, caller.authid,
                        type(exc).__name__, exc)
            return DENY
        try:
            return normalize_answer(answer, action)
        except TypeError as exc:
            log.warning("authorizer: denied %s %r for %r: %s", action, uri, caller.authid, exc)
            return DENY

    def _run(self, function: AuthorizeFunction, caller: Caller, uri: str, action: str) -> t.Any:
        app = self._app_ref()
        if app is None:
            raise RuntimeError("the Flask app is gone")
        with app.app_context():
            try:
                return function(caller, uri, action)
            except Exception as exc:  # reported by the waiting caller (not by gevent's hub, as a traceback)
                return _Raised(exc)


class _Raised(t.NamedTuple):
    exc: Exception
