"""A pytest plugin (loaded by conftest): a test must leave no greenlet and no socket behind.

What the test's body starts (after its fixtures are set up) must be gone once
its fixtures are torn down; a short grace lets closing greenlets finish. A
leftover fails the test at teardown, naming what was left. Tests marked
``crossbar`` are not checked: their router clients run threads and sockets of
their own, shared across tests.
"""

from __future__ import annotations

import gc
import os
import time
import typing as t

import pytest

__all__ = ["Snapshot", "leftovers"]

_GRACE = 2.0
_KEY = pytest.StashKey["Snapshot"]()


class Snapshot:
    """The live greenlets and open sockets of this process at one moment."""

    def __init__(self) -> None:
        self.greenlets = {id(g): g for g in live_greenlets()}
        self.sockets = open_sockets()


def live_greenlets() -> list[t.Any]:
    """Greenlets that were started or scheduled and have not finished.

    gevent's own are left out: the hub, and the workers of its thread pool (the
    DNS resolver starts them on first use; they serve the whole process).
    """
    import sys

    if "gevent" not in sys.modules:
        return []
    import gevent.hub
    import gevent.threadpool
    import greenlet

    infrastructure = (gevent.hub.Hub, gevent.threadpool._WorkerGreenlet)
    return [obj for obj in gc.get_objects()
            if isinstance(obj, greenlet.greenlet) and obj.parent is not None and not obj.dead
            and not isinstance(obj, infrastructure) and _scheduled(obj)]


def _scheduled(obj: t.Any) -> bool:
    # a gevent.Greenlet that was made but never started (and will never run) holds nothing
    started = getattr(obj, "started", None)
    return bool(obj) or started is None or bool(started)


def open_sockets() -> set[str]:
    """The socket file descriptors of this process (``fd -> socket:[inode]``)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{fd}->{target}")
    return found


def leftovers(before: Snapshot, grace: float = _GRACE) -> list[str]:
    """What was started since ``before`` and is still there after ``grace`` seconds (as descriptions)."""
    deadline = time.monotonic() + grace
    while True:
        greenlets = [g for g in live_greenlets() if id(g) not in before.greenlets]
        sockets = sorted(open_sockets() - before.sockets)
        if (not greenlets and not sockets) or time.monotonic() >= deadline:
            return [f"greenlet {g!r}" for g in greenlets] + [f"socket {s}" for s in sockets]
        _pause()


def _pause() -> None:
    import sys

    if "gevent" in sys.modules:  # let the hub run what is closing
        import gevent

        gevent.sleep(0.05)
    else:
        time.sleep(0.05)


def _checked(item: pytest.Item) -> bool:
    return item.get_closest_marker("crossbar") is None and item.get_closest_marker("leaks_allowed") is None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "leaks_allowed: skip the no-greenlet/no-socket-left check (leakcheck)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> t.Iterator[None]:
    if _checked(item):
        item.stash[_KEY] = Snapshot()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> t.Iterator[None]:
    result = yield
    before = item.stash.get(_KEY, None)
    if before is not None:
        left = leftovers(before)
        if left:
            raise AssertionError("the test left behind: " + "; ".join(left))
    return result
