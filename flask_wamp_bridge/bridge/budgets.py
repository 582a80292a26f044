"""What the browser sessions of one worker share: caps on sessions per user and per address, and each user's bytes.

Pure: no sockets, no clock of its own. The endpoint keeps one
:class:`WorkerBudgets` per process and asks it to :meth:`~WorkerBudgets.admit`
each browser session before relaying it; the :class:`Admission` it gets says
whether the session may open and carries the user's
:class:`~flask_wamp_bridge.bridge.checks.ByteBucket` (the same object for every
session of that authid in this worker), and must be released when the session
ends. A worker sees only its own sessions: the caps hold per worker, so a user
may hold ``workers x cap`` sessions on a server.
"""

from __future__ import annotations

import dataclasses
import typing as t

from .checks import ByteBucket

__all__ = ["Caps", "Admission", "WorkerBudgets"]


@dataclasses.dataclass(frozen=True, slots=True)
class Caps:
    """Per-worker limits across sessions; ``None`` turns one off."""

    #: Browser sessions one authid may hold at once.
    sessions_per_user: int | None = 1000
    #: Browser sessions one remote address may hold at once.
    sessions_per_address: int | None = None
    #: Bytes per second one authid may send across its sessions, sustained.
    user_byte_rate: float | None = float(2 << 20)
    #: Bytes one authid may send in a burst above that rate.
    user_byte_burst: int = 4 << 20


@dataclasses.dataclass(slots=True)
class Admission:
    """One session's place in its worker: refused (``refusal``), or holding a slot until :meth:`release`."""

    #: Why the session may not open, or None.
    refusal: str | None
    #: The user's byte bucket (None: no per-user byte limit, or refused).
    user_bytes: ByteBucket | None
    _release: t.Callable[[], None] | None = None

    def release(self) -> None:
        """The session ended: give its slot back (once; a refused admission holds none)."""
        release, self._release = self._release, None
        if release is not None:
            release()


class _User:
    __slots__ = ("sessions", "bucket")

    def __init__(self, bucket: ByteBucket | None) -> None:
        self.sessions = 0
        self.bucket = bucket


class WorkerBudgets:
    """The sessions each user and address hold in this worker, and each user's byte bucket."""

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self._users: dict[str, _User] = {}
        self._addresses: dict[str, int] = {}

    def sessions_of(self, authid: str) -> int:
        user = self._users.get(authid)
        return user.sessions if user is not None else 0

    def admit(self, authid: str | None, address: str | None, now: float) -> Admission:
        """A slot for a session of ``authid`` from ``address`` (None: unknown; not counted), or a refusal."""
        caps = self.caps
        user = self._users.get(authid) if authid is not None else None
        if authid is not None and caps.sessions_per_user is not None and user is not None \
                and user.sessions >= caps.sessions_per_user:
            return Admission(f"this user has {user.sessions} sessions open here, the most allowed; "
                             "close one (another tab or window) first", None)
        held = self._addresses.get(address, 0) if address is not None else 0
        if address is not None and caps.sessions_per_address is not None and held >= caps.sessions_per_address:
            return Admission(f"{held} sessions are open here from this address, the most allowed; "
                             "close one first", None)
        if authid is not None:
            if user is None:
                bucket = (ByteBucket(caps.user_byte_rate, caps.user_byte_burst, now)
                          if caps.user_byte_rate is not None else None)
                user = self._users[authid] = _User(bucket)
            user.sessions += 1
        if address is not None:
            self._addresses[address] = held + 1
        return Admission(None, user.bucket if user is not None else None,
                         lambda: self._release(authid, address))

    def _release(self, authid: str | None, address: str | None) -> None:
        if authid is not None:
            user = self._users[authid]
            user.sessions -= 1
            if not user.sessions:
                del self._users[authid]
        if address is not None:
            left = self._addresses[address] - 1
            if left:
                self._addresses[address] = left
            else:
                del self._addresses[address]
