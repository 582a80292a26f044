"""Keepalive deadlines of a :class:`~flask_wamp_bridge.websocket.connection.WebSocket`: pings and the idle timeout.

While a greenlet waits in ``receive()``, a ping goes out after
``ping_interval`` quiet seconds, and the connection is closed (1011) when
nothing at all, not even a pong, arrived for ``idle_timeout`` seconds. A
socket gets a :class:`Keepalive` only when one of the two is set.

The :class:`Keepalive` holds no socket: :meth:`Keepalive.due` says what is
due (:data:`PING`, :data:`IDLE`, or how long to wait) and the WebSocket acts
on it; :meth:`Keepalive.wait` runs a blocking read that a hub timer
interrupts when the wait is over.
"""

from __future__ import annotations

import time
import typing as t

import gevent

__all__ = ["Keepalive", "PING", "IDLE"]


#: :meth:`Keepalive.due`: a ping is due now.
PING: t.Final = "ping"
#: :meth:`Keepalive.due`: nothing arrived for ``idle_timeout``: close the connection.
IDLE: t.Final = "idle"


class _Wake(BaseException):
    """Thrown by the keepalive timer into a greenlet blocked reading: its wait is over."""


class Keepalive:
    """The keepalive deadlines of one WebSocket, and the one timer that ends a read's wait."""

    __slots__ = ("ping_interval", "idle_timeout", "last_recv", "_last_ping", "_timer", "_at", "_until",
                 "_receiver")

    def __init__(self) -> None:
        self.ping_interval: float | None = None
        self.idle_timeout: float | None = None
        self.last_recv = self._last_ping = time.monotonic()
        self._timer: t.Any = None
        self._at: float | None = None  # when the timer fires
        self._until = 0.0  # when the wait of the greenlet in wait() ends
        self._receiver: t.Any = None  # the greenlet waiting in wait()

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

    def due(self, now: float, *, ping: bool = True) -> t.Literal["ping", "idle"] | float | None:
        """What is due at ``now``: :data:`IDLE`, :data:`PING`, or seconds until the next deadline (None: none).

        ``ping=False`` leaves pings out (our close frame was sent).
        """
        wait = None
        if self.idle_timeout:
            idle_at = self.last_recv + self.idle_timeout
            if now >= idle_at:
                return IDLE
            wait = idle_at - now
        if ping and self.ping_interval:
            ping_at = max(self.last_recv, self._last_ping) + self.ping_interval
            if now >= ping_at:
                return PING
            wait = ping_at - now if wait is None else min(wait, ping_at - now)
        return wait

    def pinged(self, now: float) -> bytes:
        """A ping goes out at ``now``: its payload (the time in milliseconds)."""
        self._last_ping = now
        return b"%d" % int(now * 1000)

    def wait(self, recv: t.Callable[[], bytes], until: float) -> bytes | None:
        """``recv()``, interrupted at ``until`` (monotonic): None when it was, else what it read."""
        self._arm(until)
        self._until = until
        self._receiver = gevent.getcurrent()
        try:
            data = recv()
        except _Wake:
            return None
        finally:
            self._receiver = None
        self.last_recv = time.monotonic()
        return data

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
        """Hub callback: wake the receiving greenlet if its wait is over."""
        self._at = None
        receiver = self._receiver
        if receiver is None:
            return  # nobody waits: the next wait() re-arms
        if time.monotonic() >= self._until - 0.001:
            receiver.throw(_Wake)
        else:
            self._arm(self._until)
