"""When each relayed browser CALL must have its answer: the bridge's own deadline per call.

Pure: no clock of its own (``now`` is handed in), no timers. The relay notes a
deadline per CALL it forwards (the call's own ``timeout`` option, capped by the
ceiling ``WAMP_BRIDGE_BROWSER_CALL_TIMEOUT``) and the process ticker asks
:meth:`CallDeadlines.due` on every tick; that is O(1) while nothing is due, so
10,000 idle sessions cost one float comparison each per tick.

A call past its deadline gets ERROR ``wamp.error.canceled`` from the bridge and
a CANCEL (mode ``killnowait``) goes upstream, so the router drops the
invocation and interrupts the callee. The router's own answer to that call, if it
comes at all, is dropped: the page got exactly one answer. The ids of such calls
are remembered (the last ``forget_after`` of them) to recognise those late answers.
"""

from __future__ import annotations

import collections
import collections.abc as c
import typing as t

__all__ = ["CallDeadlines", "CANCEL_MODE", "call_deadline_error"]

#: The CANCEL mode the bridge sends upstream: the router answers at once and interrupts the callee.
CANCEL_MODE = "killnowait"
#: The ERROR URI of a call the bridge gave up on (as the router's own timeout says).
DEADLINE_ERROR = "wamp.error.canceled"
_ERROR, _CALL = 8, 48


def call_deadline_error(request_id: int, seconds: float) -> list[t.Any]:
    """The ERROR a page gets for a CALL with no answer ``seconds`` after it was sent."""
    return [_ERROR, _CALL, request_id, {}, DEADLINE_ERROR,
            [f"no answer within {seconds:g} s; the call was canceled (the callee or the router may be stuck)"],
            {"timeout": seconds}]


class CallDeadlines:
    """The deadlines of one session's CALLs in flight.

    :param ceiling: the longest any call may wait (seconds); None: only calls with their own ``timeout``.
    :param forget_after: how many given-up calls to remember for dropping their late answers.
    """

    __slots__ = ("ceiling", "next_due", "_deadlines", "_given_up", "_forget_after")

    def __init__(self, ceiling: float | None, forget_after: int = 1000) -> None:
        self.ceiling = ceiling
        self._deadlines: dict[int, tuple[float, float]] = {}  # request id -> (deadline, seconds allowed)
        #: No deadline is earlier (it may be stale, too early: :meth:`due` then looks and moves it on).
        self.next_due = float("inf")
        self._given_up: collections.OrderedDict[int, None] | None = None  # made on the first give-up (idle: none)
        self._forget_after = forget_after

    def __len__(self) -> int:
        return len(self._deadlines)

    def start(self, request_id: int, now: float, timeout_ms: t.Any, live: c.Container[int]) -> None:
        """A CALL went upstream: its deadline is its own ``timeout`` (milliseconds) or the ceiling, the earlier."""
        if self._given_up:
            self._given_up.pop(request_id, None)  # the id is used again: its answers are this call's
        seconds = self.ceiling
        if type(timeout_ms) is int and timeout_ms > 0:
            own = timeout_ms / 1000.0
            seconds = own if seconds is None else min(seconds, own)
        if seconds is None:
            return
        deadline = now + seconds
        deadlines = self._deadlines
        deadlines[request_id] = (deadline, seconds)
        if deadline < self.next_due:
            self.next_due = deadline
        if len(deadlines) > 2 * _size(live) + 16:  # answered calls are forgotten here, in bulk
            self._deadlines = {rid: value for rid, value in deadlines.items() if rid in live}

    def due(self, now: float, live: c.Container[int]) -> list[tuple[int, float]]:
        """The calls still in flight (in ``live``) whose deadline has passed, with their allowed seconds."""
        if now < self.next_due:
            return []
        expired: list[tuple[int, float]] = []
        given_up = self._given_up
        if given_up is None:
            given_up = self._given_up = collections.OrderedDict()
        kept: dict[int, tuple[float, float]] = {}
        earliest = float("inf")
        for request_id, (deadline, seconds) in self._deadlines.items():
            if request_id not in live:
                continue
            if deadline <= now:
                expired.append((request_id, seconds))
                given_up[request_id] = None
            else:
                kept[request_id] = (deadline, seconds)
                earliest = min(earliest, deadline)
        self._deadlines = kept
        self.next_due = earliest
        while len(given_up) > self._forget_after:
            given_up.popitem(last=False)
        return sorted(expired)

    def late(self, request_id: t.Any) -> bool:
        """An answer to a call the bridge gave up on (kept until the id is used again or the oldest are forgotten:
        progressive results may have crossed the CANCEL)."""
        given_up = self._given_up
        return bool(given_up) and request_id in t.cast(collections.OrderedDict[int, None], given_up)


def _size(live: c.Container[int]) -> int:
    return len(live) if isinstance(live, c.Sized) else 0
