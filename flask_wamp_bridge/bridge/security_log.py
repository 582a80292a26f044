"""Warnings about refused or hostile browsers, rate-limited so that an attacker cannot flood the log.

One logger, ``flask_wamp_bridge.security``; every line names the event, the
remote address, the authid (``-`` before one is known) and the reason. Past
:data:`BURST` lines, at most :data:`RATE` a second are written; the next line
written says how many were left out meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["warn", "log", "RATE", "BURST"]

log = logging.getLogger("flask_wamp_bridge.security")

#: Warning lines per second, sustained (per process).
RATE = 5.0
#: Warning lines in a burst.
BURST = 50


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.suppressed = 0
        self.lock = threading.Lock()

    def take(self) -> int | None:
        """None if the line must be left out; else how many were left out before it."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1.0:
                self.suppressed += 1
                return None
            self.tokens -= 1.0
            suppressed, self.suppressed = self.suppressed, 0
            return suppressed


_bucket = _Bucket(RATE, BURST)


def warn(event: str, remote: str | None, authid: str | None, reason: str) -> None:
    """Log one security event at warning (unless over the rate)."""
    if not log.isEnabledFor(logging.WARNING):
        return
    suppressed = _bucket.take()
    if suppressed is None:
        return
    more = f" ({suppressed} similar lines left out)" if suppressed else ""
    log.warning("wamp %s: remote %s authid %s: %s%s", event, remote or "-", authid or "-", reason[:300], more)
