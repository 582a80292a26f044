"""Work in slices, so that one busy connection cannot starve the others of its worker.

gevent switches greenlets only when one waits, and a greenlet whose socket
always has data ready never waits: a client flooding messages, or sending a
16 MiB one, would hold the worker until it is done (every other session's
round trip stalls meanwhile). The loops that read a connection and the masking
of a large frame call these helpers instead, which yield to the hub once
:data:`SLICE` seconds of work have passed; the work goes on right after the
others' turn, in the same order. They yield with ``gevent.idle()``: the hub
polls the sockets before the work resumes (``gevent.sleep(0)`` would only run
greenlets that are ready already, never one whose data is waiting).
"""

from __future__ import annotations

import time
import typing as t

import gevent

from . import frames as _frames

__all__ = ["SLICE", "MASK_SLICE", "Slice", "mask_in_slices", "encode_frame_in_slices"]

#: Seconds a loop works before it yields to the hub (the others' wait is about this long, per busy connection).
SLICE = 0.002
#: Payload bytes masked between two yields (about 2 ms).
MASK_SLICE = 1 << 20

_monotonic = time.monotonic


class Slice:
    """The running slice of one loop of work (made in the greenlet doing it; not for the hub).

    A slice begins anew whenever the hub has polled since the last look (the
    loop waited for the network, or yielded): only work done without a break
    counts.
    """

    __slots__ = ("_loop", "_start", "_iteration")

    def __init__(self) -> None:
        self._loop = gevent.get_hub().loop
        self._start = _monotonic()
        self._iteration = self._iteration_now()

    def _iteration_now(self) -> int:
        return int(getattr(self._loop, "iteration", 0))

    def pause_if_due(self) -> None:
        """Yield to the hub (until it has polled every socket) if :data:`SLICE` seconds of work have passed."""
        iteration = self._iteration_now()
        if iteration != self._iteration:  # the hub ran since: the others had their turn
            self._iteration = iteration
            self._start = _monotonic()
        elif _monotonic() - self._start >= SLICE:
            gevent.idle()
            self._iteration = self._iteration_now()
            self._start = _monotonic()


def mask_in_slices(payload: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """:func:`~.frames.mask`, yielding to the hub between slices of :data:`MASK_SLICE` bytes (not in the hub)."""
    size = len(payload)
    if size <= MASK_SLICE or gevent.getcurrent() is gevent.get_hub():
        return _frames.mask(payload, key)
    view = memoryview(payload)
    parts: list[bytes] = []
    for start in range(0, size, MASK_SLICE):  # MASK_SLICE is a multiple of 4: each slice starts at key phase 0
        parts.append(_frames.mask(view[start : start + MASK_SLICE], key))
        gevent.idle()
    return b"".join(parts)


def encode_frame_in_slices(opcode: int, payload: t.Any, mask_key: bytes | None) -> bytes:
    """:func:`~.frames.encode_frame` for a data frame, masking a large payload in slices."""
    if mask_key is None or len(payload) <= MASK_SLICE:
        return _frames.encode_frame(opcode, payload, mask_key)
    return _frames.encode_header(opcode, len(payload), mask_key) + mask_in_slices(payload, mask_key)
