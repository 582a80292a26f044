"""The descriptor budget and the errno hint table (in process; the worker at its limit is in test_faults_answers)."""

from __future__ import annotations

import errno
import logging

import pytest

from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.websocket import descriptors


def _connect_error(number: int) -> ConnectError:
    try:
        try:
            raise OSError(number, "boom")
        except OSError as exc:
            raise ConnectError("could not connect to ws://router/ws: boom") from exc
    except ConnectError as wrapped:
        return wrapped


def test_the_real_cause_is_found_under_the_wrapping_error() -> None:
    assert descriptors.errno_of(_connect_error(errno.EMFILE)) == errno.EMFILE
    what, hint = descriptors.hint_for(_connect_error(errno.EMFILE)) or ("", "")
    assert what == "out of file descriptors" and "ulimit -n" in hint and "worker-connections" in hint
    assert descriptors.hint_for(ConnectError("no errno")) is None
    assert descriptors.OUT_OF_DESCRIPTORS == {errno.EMFILE, errno.ENFILE}


def test_a_budget_past_the_hard_limit_warns_with_the_numbers(caplog: pytest.LogCaptureFixture) -> None:
    limits = descriptors.nofile_limits()
    assert limits is not None
    soft, hard = limits
    if hard == descriptors._infinity():
        pytest.skip("no hard nofile limit here")
    connections = hard  # needs twice as many descriptors as the hard limit allows
    with caplog.at_level(logging.WARNING):
        assert descriptors.check_budget(connections, logging.getLogger("test")) == soft
    assert f"worker_connections is {connections}" in caplog.text
    assert f"needs about {2 * connections + descriptors.RESERVED_DESCRIPTORS}" in caplog.text
    assert "LimitNOFILE" in caplog.text


def test_a_budget_within_the_soft_limit_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    limits = descriptors.nofile_limits()
    assert limits is not None
    with caplog.at_level(logging.INFO):
        assert descriptors.check_budget(1, logging.getLogger("test")) in (limits[0], -1)
    assert caplog.text == ""
