"""Periodic jobs run by one worker of all workers and hosts, elected through the router.

Each job has a procedure ``wamp_bridge.schedule.<prefix><name>`` registered with
invoke ``single``: the router lets one session hold it. Every worker's
:class:`Scheduler` tries to register it; the one that succeeds runs the job
every ``seconds`` for as long as it holds the registration (checked before
each run), the others try again every :data:`RETRY` seconds. When the
holder's session ends (stop, crash, lost connection) the router frees the
registration and the next try of another worker wins. Runs never overlap:
a holder runs its job in one greenlet, one run after the other, and a worker
that loses its session stops before the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import typing as t

import gevent

from ..errors import BridgeError

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.peer import Peer
    from ..wamp.peer import Registration
    from .tasks import Tasks

__all__ = ["Job", "Scheduler", "RETRY", "URI_PREFIX"]

log = logging.getLogger("flask_wamp_bridge.schedule")

#: Seconds between a non-holder's attempts to take a job over.
RETRY = 1.0
URI_PREFIX = "wamp_bridge.schedule."


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    seconds: float
    fn: t.Callable[[], t.Any]


class Scheduler:
    """Elects and runs this process's share of the jobs (one greenlet per job, spawned as tasks)."""

    def __init__(self, peer: Peer, tasks: Tasks, jobs: t.Sequence[Job], prefix: str) -> None:
        self.pid = os.getpid()
        self.peer = peer
        self.tasks = tasks
        self.jobs = list(jobs)
        self.prefix = prefix
        self.runs: dict[str, int] = {job.name: 0 for job in self.jobs}
        self._greenlets: list[gevent.Greenlet] = []

    def uri(self, job: Job) -> str:
        return URI_PREFIX + self.prefix + job.name

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
                reg = peer.register(uri, self._holder_info(job), invoke="single", report=False)
            except BridgeError as exc:  # held by another session (or no answer)
                log.debug("job %r: not elected (%s)", job.name, exc)
                self._forget(uri)
                gevent.sleep(RETRY)
                continue
            log.info("job %r: elected to run it every %g s", job.name, job.seconds)
            self._hold(job, reg)  # stopping (GreenletExit) leaves the registration to the GOODBYE
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

    def _hold(self, job: Job, reg: Registration) -> None:
        next_run = time.monotonic()
        while reg.id is not None and self.peer.is_connected:
            now = time.monotonic()
            if now < next_run:
                gevent.sleep(min(next_run - now, RETRY))
                continue
            # in this greenlet, so that runs never overlap; tasks give the app context and error logging
            self.tasks.run_here(job.fn)
            self.runs[job.name] += 1
            next_run += job.seconds
            if next_run < time.monotonic():  # a run took longer than the period: skip the missed ones
                next_run = time.monotonic() + job.seconds

    def _holder_info(self, job: Job) -> t.Callable[[], dict[str, t.Any]]:
        def holder() -> dict[str, t.Any]:
            return {"job": job.name, "pid": self.pid, "runs": self.runs[job.name]}

        return holder
