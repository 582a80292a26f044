"""The gunicorn master's share of multi-process metrics: one folder for its workers' values.

prometheus_client's multi-process mode keeps each worker's values in files
under ``PROMETHEUS_MULTIPROC_DIR``; a scrape of any worker sums them. The
variable must be set before a worker builds its first metric, so the master
sets it up (:func:`prepare`, from the worker class's ``check_config``): the
operator's folder, emptied of a previous run's files, or a private temporary
folder removed when the master exits. When a worker dies (even by SIGKILL) the
master marks it dead, so its live gauges (open sessions ...) stop counting.
Nothing happens when prometheus_client is not installed.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import shutil
import tempfile
import typing as t

__all__ = ["ENV", "prepare", "mark_dead"]

#: prometheus_client's variable naming the folder.
ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "wamp-bridge-metrics-"


def prepare(cfg: t.Any, log: t.Any) -> str | None:
    """In the master, before it forks: the folder every worker writes to (None: no prometheus_client)."""
    if importlib.util.find_spec("prometheus_client") is None:
        return None
    path = os.environ.get(ENV)
    if path and not os.path.basename(path).startswith(_PREFIX):
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):  # a previous run's values
            os.remove(stale)
    else:  # none, or a master's own before a re-exec (USR2): that master removes it when it exits
        path = os.environ[ENV] = tempfile.mkdtemp(prefix=_PREFIX)
        atexit.register(_remove_in, os.getpid(), path)
    log.debug("metrics of the workers in %s", path)
    previous = cfg.child_exit

    def child_exit(arbiter: t.Any, worker: t.Any) -> None:
        mark_dead(worker.pid, path)
        previous(arbiter, worker)

    cfg.set("child_exit", child_exit)
    return path


def _remove_in(master: int, path: str) -> None:
    if os.getpid() == master:  # the workers inherit this handler
        shutil.rmtree(path, ignore_errors=True)


def mark_dead(pid: int, path: str) -> None:
    """Drop the live gauges of the dead worker ``pid`` (prometheus_client's ``mark_process_dead``)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
