"""The sending half of a :class:`~flask_wamp_bridge.websocket.connection.WebSocket`: frames out, in order.

Writes are batched: the first frame of a burst goes to the kernel at once;
frames sent before the sending greenlet yields to the hub (a relay forwarding
several messages from one read, many greenlets answering at once) are joined
and written with one system call when it does. Frames the kernel cannot take
yet wait in a queue bounded by :data:`MAX_QUEUED` bytes, written by one writer
greenlet; beyond the bound ``send()`` blocks, and a write that makes no progress
for the send timeout drops the connection (later sends raise
:class:`~flask_wamp_bridge.errors.ConnectionClosed`, ``receive()`` returns None).
A close frame is written after everything queued before it. With
permessage-deflate negotiated (:attr:`FrameWriter.deflater` set), messages
from the threshold up are compressed and sent with RSV1.

The writer owns its side of the close: whether our close frame was sent (no
data frame may follow it) and whether the connection was dropped (nothing more
is written). It tells its owner through ``on_lost(code, reason)`` when a write
fails or times out, and is told by :meth:`FrameWriter.drop` when the owner ends
the connection.
"""

from __future__ import annotations

import os
import time
import typing as t

import gevent
from gevent.event import Event

from ..errors import ConnectionClosed
from . import frames as _frames
from . import socket_errors
from .deflate import SLICE
from .deflate import Deflater
from .slices import encode_frame_in_slices
from .slices import mask_in_slices

__all__ = ["FrameWriter", "MAX_QUEUED", "CLOSE_TIMEOUT"]

#: Bytes of outgoing frames that may wait for the kernel (a slow peer); beyond
#: it :meth:`WebSocket.send` blocks, up to the send timeout.
MAX_QUEUED = 256 * 1024
#: Seconds to wait for the peer's close frame (and TCP close) after ours; also bounds writing our close frame.
CLOSE_TIMEOUT = 2.0

_keys: list[bytes] = []


def _mask_key() -> bytes:
    """A fresh masking key: 4 bytes of ``os.urandom``, fetched 4 KiB at a time (one system call per 1,024 frames)."""
    if not _keys:
        pool = os.urandom(4096)
        _keys.extend(pool[i : i + 4] for i in range(0, 4096, 4))
    return _keys.pop()


class FrameWriter:
    """Encodes and writes one WebSocket's frames; any number of greenlets may send at once.

    :param mask: mask every frame (the client side).
    :param on_lost: called with ``(1006, reason)`` when a write fails, times
        out or is interrupted: the connection is then dropped.

    Errors it raises are :class:`ConnectionClosed` without a code: the owner
    knows how its connection ended.
    """

    # Slots: one writer per connection, thousands per worker.
    __slots__ = ("_on_lost", "_sock", "_send_nb", "_mask", "timeout", "_out", "_out_size", "_writer", "_burst",
                 "_drained", "close_sent", "dropped", "deflater")

    def __init__(self, sock: t.Any, *, mask: bool, on_lost: t.Callable[[int, str], None]) -> None:
        self._on_lost = on_lost
        self._sock = sock
        # TLS has no non-blocking write: every frame is then written in place
        self._send_nb = None if hasattr(sock, "_sslobj") else getattr(sock, "send", None)
        self._mask = mask
        #: Seconds a send may make no progress before the connection is dropped (None: forever).
        self.timeout: float | None = None
        # Frames not yet handed to the kernel, their size in bytes (with what the
        # writer holds), and the greenlet writing them, if any.
        self._out: list[bytes] = []
        self._out_size = 0
        self._writer: t.Any = None
        self._burst = False
        self._drained: Event | None = None  # made when a sender first has to wait
        #: Our close frame was sent (or the connection ended): no data frame may follow.
        self.close_sent = False
        #: The connection is gone: nothing more is written.
        self.dropped = False
        #: Compresses messages (permessage-deflate negotiated), else None.
        self.deflater: Deflater | None = None

    @property
    def queued(self) -> int:
        """Bytes handed to send() and not yet to the kernel."""
        return self._out_size

    @property
    def tls(self) -> bool:
        return self._send_nb is None

    def _closed(self, message: str = "the WebSocket is closed") -> ConnectionClosed:
        return ConnectionClosed(message)

    def _lose(self, reason: str) -> None:
        """A write failed: the connection is dropped; the owner hears why."""
        self.close_sent = self.dropped = True
        self._on_lost(socket_errors.LOST_CODE, reason)

    # --- data and control frames ------------------------------------------------------

    def send_message(self, message: str | bytes | bytearray | memoryview, binary: bool | None) -> None:
        """One message: ``str`` as text, bytes as binary (``binary`` overrides; see ``WebSocket.send``)."""
        if self.close_sent:  # before the type check: send(None) after receive() -> None
            raise self._closed()
        if self.deflater is not None:
            self._send_compressed(message, binary)
        elif isinstance(message, str):
            self.send_frame(_frames.OP_BINARY if binary else _frames.OP_TEXT, message.encode("utf-8"))
        elif isinstance(message, (bytes, bytearray, memoryview)):
            self.send_frame(_frames.OP_TEXT if binary is False else _frames.OP_BINARY, message)
        else:
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}")

    def _send_compressed(self, message: str | bytes | bytearray | memoryview, binary: bool | None) -> None:
        payload: bytes | bytearray | memoryview
        if isinstance(message, str):
            opcode, payload = (_frames.OP_BINARY if binary else _frames.OP_TEXT), message.encode("utf-8")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            opcode, payload = (_frames.OP_TEXT if binary is False else _frames.OP_BINARY), message
        else:
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}")
        assert self.deflater is not None
        if len(payload) < self.deflater.threshold:
            self.send_frame(opcode, payload)
            return
        big = len(payload) > SLICE and gevent.getcurrent() is not gevent.get_hub()
        data, compressed = self.deflater.compress(payload, gevent.idle if big else None)
        self.send_frame(opcode, data if compressed else payload, compressed=compressed)

    def send_frame(self, opcode: int, payload: t.Any, *, compressed: bool = False) -> None:
        """One frame; ``compressed``: ``payload`` is a deflated message (its frame gets RSV1)."""
        if self.close_sent:
            raise self._closed()
        if compressed:
            key = _mask_key() if self._mask else None
            header = _frames.encode_header(opcode | _frames.RSV1, len(payload), key)
            frame = header + (payload if key is None else mask_in_slices(payload, key))
        else:
            frame = encode_frame_in_slices(opcode, payload, _mask_key() if self._mask else None)
        if self._send_nb is None:
            self.write_sync(frame, self.timeout)
            return
        if self._writer is None and not self._burst and not self._out:
            # The first frame of a burst is written at once; frames sent before this
            # greenlet yields to the hub are queued and written together, in one
            # system call, by _end_burst (like an event loop's transport does).
            self._burst = True
            gevent.get_hub().loop.run_callback(self._end_burst)
            self._write_nb(frame, in_hub=False)
            return
        if self._out_size >= MAX_QUEUED:
            self._wait_drained(self.timeout)
        self._out.append(frame)
        self._out_size += len(frame)
        if self._writer is None and not self._burst:  # the writer finished while we waited
            self._burst = True
            gevent.get_hub().loop.run_callback(self._end_burst)

    def send_close(self, code: int, reason: str) -> None:
        """Write a close frame after everything queued (no data frame may follow it); never raises."""
        self.close_sent = True
        frame = _frames.encode_close(code, reason, _mask_key() if self._mask else None)
        self.write_sync(frame, self.timeout or CLOSE_TIMEOUT, closing=True)

    def drop(self) -> None:
        """The connection is gone: frames not written yet are lost with it; wake waiting senders."""
        self.close_sent = self.dropped = True
        self._out = []
        if self._drained is not None:
            self._drained.set()

    # --- batching -----------------------------------------------------------------------

    def _end_burst(self) -> None:
        """Hub callback: write what was queued during the burst (never blocks)."""
        self._burst = False
        out = self._out
        if out and self._writer is None and not self.dropped:
            data = out[0] if len(out) == 1 else b"".join(out)
            self._out = []
            self._out_size -= len(data)
            self._write_nb(data, in_hub=True)
            if self._drained is not None:
                self._drained.set()  # senders waiting for room look again

    def _write_nb(self, data: bytes, *, in_hub: bool) -> None:
        """Write ``data`` without blocking; a remainder goes to a writer greenlet.

        Called only while no writer greenlet exists and nothing is queued.
        """
        try:
            sent = self._send_nb(data, 0, 0.0)  # type: ignore[misc]
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if in_hub:  # closing sockets wakes greenlets: not from inside the hub
                self.close_sent = self.dropped = True
                gevent.spawn(self._on_lost, socket_errors.LOST_CODE, "connection lost")
                return
            self._lose("connection lost")
            raise socket_errors.lost(exc) from exc
        if sent < len(data):
            rest = data[sent:]
            self._out_size += len(rest)
            self._writer = gevent.spawn(self._drain_quietly, rest, self.timeout)

    # --- the writer greenlet ------------------------------------------------------------------

    def _drain_quietly(self, data: bytes, timeout: float | None) -> None:
        try:
            self._drain(data, timeout)
        except ConnectionClosed:
            pass  # the socket is closed now: the next send() raises, receive() returns None

    def _timed_out(self, timeout: float | None) -> ConnectionClosed:
        self._lose(f"send timed out after {timeout:g} s: the peer is not reading")
        return self._closed(f"send timed out after {timeout:g} s (the peer stopped reading); the connection was closed")

    def _wait_drained(self, timeout: float | None, *, idle: bool = False) -> None:
        """Block until the queue is below :data:`MAX_QUEUED` (``idle``: until no writer is left)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.dropped and (self._writer is not None if idle else self._out_size >= MAX_QUEUED):
            drained = self._drained
            if drained is None:
                drained = self._drained = Event()
            drained.clear()
            wait = None if deadline is None else deadline - time.monotonic()
            if (wait is not None and wait <= 0) or not drained.wait(wait):
                raise self._timed_out(timeout)
        if self.dropped or (self.close_sent and not idle):
            raise self._closed()

    def write_sync(self, frame: bytes, timeout: float | None, *, closing: bool = False) -> None:
        """Write ``frame`` after everything queued, in this greenlet; returns once it is in the kernel."""
        if self._writer is not None:
            try:
                self._wait_drained(timeout, idle=True)
            except ConnectionClosed:
                if closing:
                    return
                raise
        if self.dropped or (self.close_sent and not closing):  # closed while we waited
            if closing:
                return
            raise self._closed()
        out = self._out
        out.append(frame)
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self._out_size = len(data)
        self._writer = gevent.getcurrent()
        try:
            self._drain(data, timeout)
        except ConnectionClosed:
            if not closing:
                raise

    def _drain(self, data: bytes, timeout: float | None) -> None:
        """The writer: write ``data``, then whatever was queued meanwhile, until the queue is empty.

        Runs in a greenlet of its own (after a partial write) or in the sender's
        (:meth:`write_sync`); :attr:`_writer` names it while it runs.
        """
        done = False
        try:
            while True:
                timer = gevent.Timeout(timeout) if timeout else None
                if timer is not None:
                    timer.start()
                try:
                    self._sock.sendall(data)
                except gevent.Timeout as exc:
                    if exc is not timer:
                        raise
                    raise self._timed_out(timeout) from None
                except OSError as exc:
                    self._lose("connection lost")
                    raise socket_errors.lost(exc) from exc
                finally:
                    if timer is not None:
                        timer.cancel()
                self._out_size -= len(data)
                out = self._out
                if not out or self.dropped:
                    done = True
                    break
                data = out[0] if len(out) == 1 else b"".join(out)
                self._out = []
                if self._drained is not None:
                    self._drained.set()
        finally:
            if not done and not self.dropped:  # killed: a partial frame may be on the wire
                self._lose("send interrupted")
            self._writer = None
            self._out_size = 0 if done else self._out_size
            if self._drained is not None:
                self._drained.set()
