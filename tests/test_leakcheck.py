"""The leak check (tests/leakcheck.py) catches what a test leaves behind, and lets a clean test pass."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import gevent
import leakcheck
import pytest
from leakcheck import Snapshot
from leakcheck import leftovers

pytest_plugins = ["pytester"]


def test_leakcheck_sees_a_greenlet_and_a_socket_left_running() -> None:
    before = Snapshot()
    sleeper = gevent.spawn(gevent.sleep, 30)
    left, right = socket.socketpair()
    try:
        found = leftovers(before, grace=0.1)
        assert any(item.startswith("greenlet") and "sleep" in item for item in found)
        assert sum(item.startswith("socket") for item in found) == 2
    finally:
        sleeper.kill()
        left.close()
        right.close()
    assert leftovers(before, grace=0.1) == []


def test_leakcheck_waits_for_what_is_closing() -> None:
    before = Snapshot()
    gevent.spawn(gevent.sleep, 0.2)
    assert leftovers(before, grace=5.0) == []


def test_leakcheck_fails_a_leaking_test_and_passes_a_clean_one(pytester: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    here = str(Path(leakcheck.__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    pytester.makeconftest('pytest_plugins = ["leakcheck"]')
    pytester.makepyfile(test_sample=textwrap.dedent("""
        import socket
        import gevent

        kept = []

        def test_leaks_a_greenlet():
            kept.append(gevent.spawn(gevent.sleep, 60))

        def test_leaks_a_socket():
            kept.append(socket.socket())

        def test_cleans_up():
            g = gevent.spawn(gevent.sleep, 60)
            s = socket.socket()
            g.kill()
            s.close()
    """))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:pytest_wampy", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks_a_greenlet*", "*left behind: greenlet*"])
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks_a_socket*", "*left behind: socket*"])
