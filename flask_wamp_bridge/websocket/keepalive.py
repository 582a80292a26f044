"""Keepalive of a :class:`~flask_wamp_bridge.websocket.connection.WebSocket`: pings and the idle timeout.

While a greenlet waits in ``receive()``, a ping goes out after
``ping_interval`` quiet seconds, and the connection is closed (1011) when
nothing at all, not even a pong, arrived for ``idle_timeout`` seconds. A
socket gets a :class:`Keepalive` only when one of the two is set.
"""

from __future__ import annotations

import time
import typing as t

import gevent

from ..errors import ConnectionClosed
from . import frames as _frames

if t.TYPE_CHECKING:  # pragma: no cover
    from .connection import WebSocket

__all__ = ["Keepalive"]


class _Wake(BaseException):
    """Thrown by the keepalive timer into a greenlet blocked reading: a deadline is due."""


class Keepalive:
    """The keepalive deadlines of one WebSocket and the one timer that enforces them."""

    __slots__ = ("_ws", "ping_interval", "idle_timeout", "last_recv", "_last_ping", "_timer", "_at", "_receiver")

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self.ping_interval: float | None = None
        self.idle_timeout: float | None = None
        self.last_recv = self._last_ping = time.monotonic()
        self._timer: t.Any = None
        self._at: float | None = None  # when the timer fires
        self._receiver: t.Any = None  # the greenlet waiting in read()

    @property
    def active(self) -> bool:
        return bool(self.ping_interval or self.idle_timeout)

    def restart(self) -> None:
        """The connection (re)opened: quiet time counts from now."""
        self.last_recv = self._last_ping = time.monotonic()

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def read(self, recv: t.Callable[[], bytes]) -> bytes:
        """``recv()``, pinging and enforcing the idle timeout meanwhile; ``b""`` when the connection ended."""
        ws = self._ws
        while not ws._released:
            now = time.monotonic()
            wait = None
            if self.idle_timeout:
                idle_at = self.last_recv + self.idle_timeout
                if now >= idle_at:
                    ws._close_now(1011, f"idle timeout: nothing received for {self.idle_timeout:g} s")
                    return b""
                wait = idle_at - now
            if self.ping_interval and not ws._close_sent:
                ping_at = max(self.last_recv, self._last_ping) + self.ping_interval
                if now >= ping_at:
                    self._last_ping = now
                    try:
                        ws._writer.send_frame(_frames.OP_PING, b"%d" % int(now * 1000))
                    except ConnectionClosed:
                        return b""
                    continue
                wait = ping_at - now if wait is None else min(wait, ping_at - now)
            if wait is None:  # pragma: no cover - only ping_interval set while closing
                return recv()
            self._arm(now + wait)
            self._receiver = gevent.getcurrent()
            try:
                data = recv()
            except _Wake:
                continue
            finally:
                self._receiver = None
            self.last_recv = time.monotonic()
            return data
        return b""

    # One timer per socket, not one per receive: it is re-armed only when it
    # fires before the (moving) deadline, i.e. at most once per ping interval.
    def _arm(self, at: float) -> None:
        armed = self._at
        if armed is not None and armed <= at:
            return  # fires early enough; _fired looks again then
        timer = self._timer
        if timer is not None:
            timer.close()
        self._at = at
        self._timer = timer = gevent.get_hub().loop.timer(max(0.0, at - time.monotonic()), ref=False)
        timer.start(self._fired)

    def _fired(self) -> None:
        """Hub callback: wake the receiving greenlet if a ping or the idle timeout is due."""
        self._at = None
        receiver = self._receiver
        ws = self._ws
        if receiver is None or ws._released:
            return  # nobody waits in receive(): the next receive() re-arms
        now = time.monotonic()
        due = None
        if self.idle_timeout:
            due = self.last_recv + self.idle_timeout
        if self.ping_interval and not ws._close_sent:
            ping_at = max(self.last_recv, self._last_ping) + self.ping_interval
            due = ping_at if due is None else min(due, ping_at)
        if due is None:
            return
        if now >= due - 0.001:
            receiver.throw(_Wake)
        else:
            self._arm(due)
