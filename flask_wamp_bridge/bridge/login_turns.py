"""Upstream logins under way at once in one worker: a bounded, first-come-first-served queue.

In a login storm every browser's HELLO asks for its own upstream connection.
Opening them all at once makes the router work on every login at the same
time, so all of them finish late, together, near the login deadline, and the
slowest miss it. :class:`LoginTurns` lets ``limit`` logins run their router
part at once (from the upstream connect to the router's first answer, its
ticket CHALLENGE, or the end of the login) and queues the rest in arrival
order: a freed turn is handed to the oldest waiter, never taken by a
newcomer, so the first browsers in are the first ones welcomed.
"""

from __future__ import annotations

import collections

import gevent.event

__all__ = ["LoginTurns", "Turn", "turns_for", "waiting_logins"]


class Turn:
    """One login's place: waiting in the queue, then holding a turn until :meth:`LoginTurns.release`."""

    __slots__ = ("granted", "_event")

    def __init__(self) -> None:
        self.granted = False
        self._event = gevent.event.Event()

    def wake(self) -> None:
        """Stop waiting (the session ended): :meth:`LoginTurns.wait` returns at once."""
        self._event.set()


class LoginTurns:
    """At most ``limit`` turns held at once; the others wait in arrival order."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.held = 0
        self._waiting: collections.deque[Turn] = collections.deque()

    @property
    def waiting(self) -> int:
        """Logins waiting for a turn."""
        return len(self._waiting)

    def enter(self) -> Turn:
        """Take a turn now if one is free and nobody waits (``granted``), else join the queue."""
        turn = Turn()
        if self.held < self.limit and not self._waiting:
            self.held += 1
            turn.granted = True
        else:
            self._waiting.append(turn)
        return turn

    def wait(self, turn: Turn, timeout: float | None) -> bool:
        """Block until ``turn`` is granted (True), or the timeout or :meth:`Turn.wake` (False: it left the queue)."""
        if not turn.granted:
            turn._event.wait(timeout)
        if turn.granted:
            return True
        try:
            self._waiting.remove(turn)
        except ValueError:  # pragma: no cover - granted and removed in between: cannot happen without a switch
            pass
        return False

    def release(self, turn: Turn) -> None:
        """Give a held turn back: the oldest waiter gets it."""
        if not turn.granted:
            return
        turn.granted = False
        if self._waiting and self.held <= self.limit:  # handed on: the count of held turns stays
            nxt = self._waiting.popleft()
            nxt.granted = True
            nxt._event.set()
        else:
            self.held -= 1


_turns: list[LoginTurns] = []  # per process, made on first use (after fork)


def turns_for(limit: int) -> LoginTurns:
    """The process's queue (its limit follows the latest ``limit`` asked for)."""
    if not _turns:
        _turns.append(LoginTurns(limit))
    turns = _turns[0]
    if turns.limit != limit:
        turns.limit = limit
    return turns


def waiting_logins() -> int:
    """Logins of this process waiting for their turn (0 before the first login)."""
    return _turns[0].waiting if _turns else 0
