"""Self-healing registrations: find callees of the app's procedures that are no live session, and remove them.

Crossbar 26.10.1 can keep a session that is gone as a callee of every procedure
it had (``list_callees`` shows ``null``): when it drops a stalled peer by its ping
timeout while that peer serves a call whose caller's transport was just aborted,
its ``Dealer.detach`` fails half way ("Failed to detach session" in its log).
Every call and login routed to that ghost then waits forever. The router never
clears it by itself; ``wamp.registration.remove_callee`` with the ghost's old
session id does (Crossbar answers it with an error, but the ghost is gone).

So every worker's :class:`Healer` remembers the ids of sessions that left
(``wamp.session.on_leave``, published before the detach fails), and one elected
worker (a job of :mod:`~flask_wamp_bridge.component.schedule`) checks every
``WAMP_BRIDGE_HEALING_INTERVAL`` seconds, and a second after a callee it saw
leaves, that each callee of the app's procedures is a live session, removing
the dead ones through the router and logging what it did and why. A check costs
two meta calls per procedure and one per distinct callee (the workers' peers).
A ``null`` callee is removed by trying the ids that left, former callees first,
at most :data:`MAX_TRIES` per check (the rest at the next checks; an id that left
cleanly is tried once); one that none of them removes is logged once, and not
tried again unless the procedure gets another one.
"""

from __future__ import annotations

import collections
import logging
import time
import typing as t

import gevent

from ..errors import ApplicationError
from ..errors import BridgeError
from .schedule import Job

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.peer import Peer

__all__ = ["Healer", "Repair", "JOB_NAME", "MAX_LEFT", "MAX_TRIES", "SETTLE"]

log = logging.getLogger("flask_wamp_bridge.healing")

#: The elected job's name (its election URI is the scheduler's prefix plus this).
JOB_NAME = "wamp_bridge.healing"
#: Session ids that left, remembered per worker (the newest; 16 bytes or so each).
MAX_LEFT = 10_000
#: ``remove_callee`` tries of ids that left, per check (mostly browsers: the rest wait for the next checks).
MAX_TRIES = 100
#: Seconds after a leave before the elected worker checks (the router finishes the detach meanwhile).
SETTLE = 1.0

_GONE = "wamp.error.no_such_session"
_NOT_ON_IT = "wamp.error.no_such_registration"


class Repair(t.NamedTuple):
    """One dead callee removed from one procedure."""

    uri: str
    registration: int
    callee: int | None  # as ``list_callees`` showed it (None: the session's id is gone)
    session: int  # the id it was removed by
    cause: str


class Healer:
    """Remembers sessions that left; when elected, checks and heals the callees of ``peer``'s procedures.

    :param peer: the worker's peer.
    :param interval: seconds between the elected worker's checks.
    :param extra_uris: more procedures to watch (the scheduled jobs' elections), called at each check.
    """

    def __init__(self, peer: Peer, interval: float,
                 extra_uris: t.Callable[[], t.Iterable[str]] = lambda: ()) -> None:
        self.peer = peer
        self.interval = interval
        self.extra_uris = extra_uris
        #: Set by the scheduler: whether this worker holds the healing job now.
        self.elected: t.Callable[[], bool] = lambda: False
        self.repairs = 0  #: dead callees removed by this worker
        self._left: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._seen_callees: set[int] = set()  # the live callees the last check saw
        self._unhealed: dict[int, int] = {}  # registration: its null callees no id that left removed (logged)
        self._tries = MAX_TRIES  # left in this check
        self._prompt: gevent.Greenlet | None = None

    def attach(self) -> None:
        """Subscribe to the leave meta event (in every worker: whoever is elected later needs the history)."""
        self.peer.subscribe("wamp.session.on_leave", self._on_leave)

    def job(self) -> Job:
        return Job(JOB_NAME, self.interval, self.check)

    # -- what every worker does ------------------------------------------------------------

    def _on_leave(self, session_id: t.Any = None, *args: t.Any, **kwargs: t.Any) -> None:
        if type(session_id) is not int:
            return
        self._left[session_id] = time.time()
        self._left.move_to_end(session_id)
        while len(self._left) > MAX_LEFT:
            self._left.popitem(last=False)
        # a browser leaving costs nothing more; a callee of ours leaving gets a check at once
        if session_id in self._seen_callees and self.elected() and self._prompt is None:
            self._prompt = gevent.spawn_later(SETTLE, self._prompt_check)

    def _prompt_check(self) -> None:
        try:
            if self.elected():
                self.check()
        except BridgeError as exc:
            log.info("healing: the check after a leave did not finish: %s", exc)
        finally:
            self._prompt = None

    # -- what the elected worker does -----------------------------------------------------

    def watched(self) -> list[tuple[str, dict[str, t.Any]]]:
        """``(uri, lookup options)`` of every procedure to check."""
        seen: dict[tuple[str, str], None] = {}
        for handle in self.peer.handles():
            if handle.verb == "register":
                seen[(handle.uri, str(handle.options.get("match") or "exact"))] = None
        for uri in self.extra_uris():
            seen[(uri, "exact")] = None
        return [(uri, {"match": match} if match != "exact" else {}) for uri, match in seen]

    def check(self) -> list[Repair]:
        """Check every watched procedure's callees; remove those that are no live session."""
        repairs: list[Repair] = []
        alive: dict[int, bool] = {}
        seen: set[int] = set()
        self._tries = MAX_TRIES
        reported, self._unhealed = self._unhealed, {}
        for uri, options in self.watched():
            registration = self.peer.call("wamp.registration.lookup", uri, options) if options else \
                self.peer.call("wamp.registration.lookup", uri)
            if registration is None:
                continue
            try:
                callees = self.peer.call("wamp.registration.list_callees", registration)
            except ApplicationError as exc:
                if exc.error == _NOT_ON_IT:  # deleted in the meantime
                    continue
                raise
            callees = list(callees or ())
            nulls = callees.count(None)
            unhealed = min(nulls, reported.get(registration, 0))  # reported: no id that left was one
            if unhealed:
                self._unhealed[registration] = unhealed
            to_try = nulls - unhealed
            for callee in callees:
                if callee is not None and self._alive(callee, alive):
                    seen.add(callee)
                    continue
                if callee is None:
                    if to_try == 0:
                        continue
                    to_try -= 1
                repair = self._remove(uri, registration, callee)
                if repair is not None:
                    repairs.append(repair)
        self._seen_callees = seen
        self.repairs += len(repairs)
        return repairs

    def _alive(self, session_id: int, known: dict[int, bool]) -> bool:
        if session_id not in known:
            try:
                self.peer.call("wamp.session.get", session_id)
                known[session_id] = True
            except ApplicationError as exc:
                known[session_id] = exc.error != _GONE
        return known[session_id]

    def _remove(self, uri: str, registration: int, callee: int | None) -> Repair | None:
        """Remove one dead callee: by its id when the router still shows it, else by the ids that left."""
        if callee is not None:
            candidates: list[int] = [callee]
        else:  # the ghost is almost always a callee the last check saw alive: those first
            newest = list(reversed(self._left))
            seen = self._seen_callees
            candidates = [c for c in newest if c in seen] + [c for c in newest if c not in seen]
        before = self._callees(registration)
        for tried, session_id in enumerate(candidates):
            if callee is None:
                if self._tries <= 0:
                    log.info("healing: %r (registration %s) has a null callee; %d ids that left are left to try "
                             "at the next check", uri, registration, len(candidates) - tried)
                    return None
                self._tries -= 1
            try:
                self.peer.call("wamp.registration.remove_callee", registration, session_id,
                               reason="wamp_bridge.healing.dead_callee")
            except ApplicationError as exc:
                if exc.error == _GONE:  # it left cleanly: never a ghost, forget it
                    self._left.pop(session_id, None)
                    continue
                if exc.error == _NOT_ON_IT:  # a ghost, or gone, but not a callee of this one
                    continue
                # Crossbar 26.10.1 removes the callee, then fails publishing the meta event: check
            after = self._callees(registration)
            if after is not None and before is not None and len(after) >= len(before):
                continue
            left = self._left.get(session_id)
            cause = (f"session {session_id} left at {time.strftime('%H:%M:%S', time.localtime(left))} "
                     "but the router kept it registered (a failed detach: see the router's log)"
                     if left is not None else f"session {session_id} is no live session")
            log.warning("healing: removed a dead callee (%s) of %r, registration %s: %s",
                        "null" if callee is None else callee, uri, registration, cause)
            return Repair(uri, registration, callee, session_id, cause)
        log.error("healing: %r (registration %s) has a callee %s that is no live session, and no session that "
                  "left is it; calls routed to it are not answered until the router restarts", uri, registration,
                  "null" if callee is None else callee)
        if callee is None:  # logged once: tried again only when the procedure gets another one
            self._unhealed[registration] = self._unhealed.get(registration, 0) + 1
        return None

    def _callees(self, registration: int) -> list[t.Any] | None:
        try:
            return list(self.peer.call("wamp.registration.list_callees", registration) or [])
        except ApplicationError:  # deleted: its last callee is gone
            return None
