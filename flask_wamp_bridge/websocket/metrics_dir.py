"""The gunicorn master's share of multi-process metrics: one folder for its workers' values.

prometheus_client's multi-process mode keeps each worker's values in files
under ``PROMETHEUS_MULTIPROC_DIR``; a scrape of any worker sums them. The
variable must be set before a worker builds its first metric, so the master
sets it up (:func:`prepare`, from the worker class's ``check_config``): the
operator's folder, emptied of a previous run's files, or a private temporary
folder removed when the master exits. When a worker dies (even by SIGKILL) the
master marks it dead, so its live gauges (open sessions ...) stop counting.

Only when metrics are asked for: the master cannot read the app's settings
(without ``--preload`` it has no app; with it, the app imported prometheus_client
before any folder could be set), so it goes by the environment: the operator's
``PROMETHEUS_MULTIPROC_DIR``, or ``FLASK_WAMP_BRIDGE_METRICS_PATH`` (the app's
setting through Flask's ``from_prefixed_env``). Otherwise nothing happens: an
app's own prometheus_client metrics stay in their single-process mode. Nothing
happens either when prometheus_client is not installed.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import shutil
import tempfile
import typing as t

__all__ = ["ENV", "METRICS_ENV", "prepare", "mark_dead"]

#: prometheus_client's variable naming the folder.
ENV = "PROMETHEUS_MULTIPROC_DIR"
#: ``WAMP_BRIDGE_METRICS_PATH`` as Flask's ``app.config.from_prefixed_env()`` reads it.
METRICS_ENV = "FLASK_WAMP_BRIDGE_METRICS_PATH"
_PREFIX = "wamp-bridge-metrics-"


def prepare(cfg: t.Any, log: t.Any) -> str | None:
    """In the master, before it forks: the workers' folder (None: not asked for, or no prometheus_client)."""
    path = os.environ.get(ENV)
    if not path and os.environ.get(METRICS_ENV, "null") in ("", "null"):
        return None
    if importlib.util.find_spec("prometheus_client") is None:
        return None
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
