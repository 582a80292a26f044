"""Periodic jobs run by one worker of all workers and hosts, elected through the router.

Each job has a procedure ``wamp_bridge.schedule.<prefix><name>`` registered with
invoke ``single``: the router lets one session hold it. Every worker's
:class:`Scheduler` tries to register it; the one that succeeds runs the job
every ``seconds`` for as long as it holds the registration (checked before
each run), the others try again every :data:`RETRY` seconds. When the
holder's session ends (stop, crash, lost connection) the router frees the
registration and the next try of another worker wins; when the router keeps a
holder that is no live session (a ghost of a failed detach, see
:mod:`~flask_wamp_bridge.component.healing`), a non-holder takes the election
over with ``force_reregister``.

Runs never overlap: a holder runs its job in one greenlet, one run after the
other, and before each run it proves through the router that it still holds the
election (it calls its own election procedure: the router routes that call to
the holder, which answers with its session id). A worker that was stalled past
the router's ping timeout, and replaced, learns so before it would run again. A
run that takes longer than the job's period (its lease) is logged: another
worker may have run the job meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import typing as t

import gevent

from ..errors import ApplicationError
from ..errors import BridgeError

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.handler_pool import HandlerPool
    from ..wamp.handles import Registration
    from ..wamp.peer import Peer
    from .tasks import Tasks

__all__ = ["Job", "Scheduler", "RETRY", "HOLDER_CHECK", "PROOF_TIMEOUT", "URI_PREFIX"]

log = logging.getLogger("flask_wamp_bridge.schedule")

#: Seconds between a non-holder's attempts to take a job over.
RETRY = 1.0
#: Seconds between a non-holder's checks that the holder is a live session.
HOLDER_CHECK = 5.0
#: Longest wait for the proof, before each run, that this worker still holds the election.
PROOF_TIMEOUT = 5.0
URI_PREFIX = "wamp_bridge.schedule."


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    seconds: float
    fn: t.Callable[[], t.Any]


class Scheduler:
    """Elects and runs this process's share of the jobs (one greenlet per job, spawned as tasks)."""

    def __init__(self, peer: Peer, tasks: Tasks, jobs: t.Sequence[Job], prefix: str,
                 pool: HandlerPool | None = None) -> None:
        self.pid = os.getpid()
        self.peer = peer
        #: Where the router's proof calls run (None: the peer's pool, behind the app's procedures).
        self.pool = pool
        self.tasks = tasks
        self.jobs = list(jobs)
        self.prefix = prefix
        self.runs: dict[str, int] = {job.name: 0 for job in self.jobs}
        self._greenlets: list[gevent.Greenlet] = []
        self._holding: set[str] = set()
        self._holder_checked: dict[str, float] = {}

    def uri(self, job: Job) -> str:
        return URI_PREFIX + self.prefix + job.name

    def uris(self) -> list[str]:
        return [self.uri(job) for job in self.jobs]

    def holds(self, name: str) -> bool:
        """Whether this worker runs job ``name`` now (as far as it knows)."""
        return name in self._holding

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._elect, job) for job in self.jobs]

    def stop(self) -> None:
        gevent.killall(self._greenlets, timeout=2.0)
        self._greenlets = []

    def _elect(self, job: Job) -> None:
        uri = self.uri(job)
        peer = self.peer
        while True:
            if not peer.is_connected:
                gevent.sleep(RETRY)
                continue
            try:
                reg = peer.register(uri, self._holder_info(job), invoke="single", report=False, pool=self.pool)
            except BridgeError as exc:  # held by another session (or no answer)
                log.debug("job %r: not elected (%s)", job.name, exc)
                self._forget(uri)
                taken = self._take_over_from_a_ghost(job, uri)
                if taken is None:
                    gevent.sleep(RETRY)
                    continue
                reg = taken
            log.info("job %r: elected to run it every %g s", job.name, job.seconds)
            self._holding.add(job.name)
            try:
                self._hold(job, reg)  # stopping (GreenletExit) leaves the registration to the GOODBYE
            finally:
                self._holding.discard(job.name)
            log.info("job %r: no longer the runner", job.name)
            self._forget(uri)

    def _forget(self, uri: str) -> None:
        """Drop this peer's record of the job's registration, so that a reconnect does not make it again."""
        for handle in self.peer.handles():
            if handle.uri == uri:
                try:
                    handle.unregister()
                except BridgeError:  # no answer: the session is going anyway
                    pass

    def _take_over_from_a_ghost(self, job: Job, uri: str) -> Registration | None:
        """Take the election over when its holder is no live session (at most every :data:`HOLDER_CHECK` s)."""
        now = time.monotonic()
        if now - self._holder_checked.get(job.name, -HOLDER_CHECK) < HOLDER_CHECK:
            return None
        self._holder_checked[job.name] = now
        peer = self.peer
        try:
            registration = peer.call("wamp.registration.lookup", uri)
            if registration is None:
                return None
            callees = peer.call("wamp.registration.list_callees", registration) or []
            if not callees or any(callee is not None and _alive(peer, callee) for callee in callees):
                return None
            reg = peer.register(uri, self._holder_info(job), invoke="single", force_reregister=True, report=False,
                                pool=self.pool)
        except BridgeError as exc:
            log.debug("job %r: could not check its holder (%s)", job.name, exc)
            self._forget(uri)
            return None
        reg.options.pop("force_reregister", None)  # a reconnect registers it plainly
        log.warning("job %r: its runner (session %s) is no live session, but the router kept it registered; "
                    "took the election over", job.name, ", ".join("null" if c is None else str(c) for c in callees))
        return reg

    def _hold(self, job: Job, reg: Registration) -> None:
        next_run = time.monotonic()
        while reg.id is not None and self.peer.is_connected:
            now = time.monotonic()
            if now < next_run:
                gevent.sleep(min(next_run - now, RETRY))
                continue
            if not self._still_holder(job):
                return
            # in this greenlet, so that runs never overlap; tasks give the app context and error logging
            started = time.monotonic()
            self.tasks.run_here(job.fn)
            took = time.monotonic() - started
            self.runs[job.name] += 1
            if took > job.seconds:
                log.warning("job %r: a run took %.1f s, longer than its lease (the period, %g s): another worker "
                            "may have taken the election over and run it meanwhile", job.name, took, job.seconds)
            next_run += job.seconds
            if next_run < time.monotonic():  # a run took longer than the period: skip the missed ones
                next_run = time.monotonic() + job.seconds

    def _still_holder(self, job: Job) -> bool:
        """Prove through the router that this session holds the election: call it, see who answers."""
        session_id = self.peer.session_id
        try:
            holder = self.peer.call_with(self.uri(job), timeout=PROOF_TIMEOUT)
        except BridgeError as exc:
            log.warning("job %r: skipped a run: the router did not confirm this worker as its runner (%s)",
                        job.name, exc)
            return False
        if not isinstance(holder, dict) or holder.get("session") != session_id or session_id is None:
            log.warning("job %r: skipped a run: the router names another runner (%s)", job.name, holder)
            return False
        return True

    def _holder_info(self, job: Job) -> t.Callable[[], dict[str, t.Any]]:
        def holder() -> dict[str, t.Any]:
            return {"job": job.name, "pid": self.pid, "runs": self.runs[job.name], "session": self.peer.session_id}

        return holder


def _alive(peer: Peer, session_id: int) -> bool:
    try:
        peer.call("wamp.session.get", session_id)
    except ApplicationError as exc:
        return exc.error != "wamp.error.no_such_session"
    return True
