"""The peer's reconnect backoff is capped: after a long router outage it is back within seconds.

The time from the router's return to the peer's new session is printed, not
asserted; what is asserted is that no reconnect delay exceeded the cap.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time

import gevent
import pytest
from test_peer import in_thread
from test_peer import make_peer

from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.settings import SETTINGS

pytestmark = [pytest.mark.crossbar, pytest.mark.timeout(180)]

OUTAGE = 8.0  # seconds: uncapped, the backoff would have grown to 4-8 s


def test_peer_rejoins_within_seconds_of_the_router_after_a_long_outage(
    fresh_crossbar_router: CrossbarProcess, caplog: pytest.LogCaptureFixture,
) -> None:
    default_max = next(s.default for s in SETTINGS if s.key == "WAMP_BRIDGE_RECONNECT_MAX")
    router = fresh_crossbar_router
    peer = make_peer(router, reconnect_max=default_max)
    try:
        peer.register("test.reconnect.echo", lambda value: value)
        assert peer.wait_ready(20)
        first = peer.session_id
        caplog.set_level(logging.INFO, logger="flask_wamp_bridge.wamp.peer")
        assert router.pid is not None
        os.killpg(router.pid, signal.SIGKILL)
        in_thread(router.stop)
        gevent.sleep(OUTAGE)
        starting = time.monotonic()
        in_thread(router.start, 90)
        ready = time.monotonic()
        assert peer.wait_ready(60) and peer.session_id != first
        print(f"\nrouter down {OUTAGE:g} s, then {ready - starting:.1f} s starting: the peer joined again "
              f"{time.monotonic() - ready:.1f} s after the router was ready")
        assert peer.call("test.reconnect.echo", 7) == 7
    finally:
        peer.stop()
    delays = [float(found) for found in re.findall(r"reconnecting to \S+ in ([0-9.]+) s", caplog.text)]
    assert len(delays) >= 3 and max(delays) <= default_max, delays
