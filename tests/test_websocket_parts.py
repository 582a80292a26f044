"""The parts of a WebSocket, each on its own: keepalive deadlines, the frame writer, the socket-error mapping.

And the WebSocket's own close state through its public ``abort()`` and ``wait_closed()``. Socket pairs, no server.
"""

from __future__ import annotations

import socket
import ssl
import time
import typing as t

import gevent
import pytest
from gevent import socket as gsocket

from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.websocket import frames
from flask_wamp_bridge.websocket import socket_errors
from flask_wamp_bridge.websocket.connection import WebSocket
from flask_wamp_bridge.websocket.keepalive import IDLE
from flask_wamp_bridge.websocket.keepalive import PING
from flask_wamp_bridge.websocket.keepalive import Keepalive
from flask_wamp_bridge.websocket.writer import FrameWriter

# --- keepalive: deadlines only -------------------------------------------------------------------


def _keepalive(ping: float | None, idle: float | None, last_recv: float = 100.0) -> Keepalive:
    keepalive = Keepalive()
    keepalive.ping_interval, keepalive.idle_timeout = ping, idle
    keepalive.last_recv = last_recv
    keepalive.pinged(last_recv)
    return keepalive


def test_keepalive_due_says_how_long_to_wait_then_ping_then_idle() -> None:
    keepalive = _keepalive(ping=10.0, idle=25.0)
    assert keepalive.due(104.0) == pytest.approx(6.0)  # the ping comes first
    assert keepalive.due(110.0) == PING
    assert keepalive.pinged(110.0) == b"110000"  # the payload is the time in ms
    assert keepalive.due(110.0) == pytest.approx(10.0)  # the next ping, 10 s after this one
    assert keepalive.due(121.0) == PING
    keepalive.pinged(121.0)
    assert keepalive.due(124.0) == pytest.approx(1.0)  # the idle timeout comes before the next ping
    assert keepalive.due(125.0) == IDLE


def test_keepalive_due_leaves_pings_out_after_our_close_and_without_a_ping_interval() -> None:
    keepalive = _keepalive(ping=10.0, idle=25.0)
    assert keepalive.due(112.0, ping=False) == pytest.approx(13.0)
    assert _keepalive(ping=10.0, idle=None).due(150.0, ping=False) is None
    assert _keepalive(ping=None, idle=5.0).due(103.0) == pytest.approx(2.0)
    assert not _keepalive(ping=None, idle=None).active


def test_keepalive_wait_returns_none_when_its_time_is_up_and_the_data_otherwise() -> None:
    a, b = gsocket.socketpair()
    keepalive = Keepalive()
    before = keepalive.last_recv
    assert keepalive.wait(lambda: a.recv(10), time.monotonic() + 0.05) is None  # nothing came: woken
    assert keepalive.last_recv == before
    b.sendall(b"hi")
    assert keepalive.wait(lambda: a.recv(10), time.monotonic() + 5) == b"hi"
    assert keepalive.last_recv > before
    keepalive.stop()
    a.close()
    b.close()


# --- the frame writer: its own close state ---------------------------------------------------------


class Lost:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, code: int, reason: str) -> None:
        self.calls.append((code, reason))


def test_frame_writer_owns_whether_the_close_frame_was_sent() -> None:
    a, b = gsocket.socketpair()
    lost = Lost()
    writer = FrameWriter(a, mask=False, on_lost=lost)
    writer.send_frame(frames.OP_TEXT, b"before")
    writer.send_close(1000, "bye")
    assert writer.close_sent and not writer.dropped
    with pytest.raises(ConnectionClosed):
        writer.send_message("after", None)
    writer.send_close(1000, "again")  # never raises
    gevent.sleep(0)
    parser = frames.FrameParser("client")
    events = parser.feed(b.recv(65536))
    assert events[:2] == [frames.Message("before"), frames.Close(1000, "bye")]
    assert lost.calls == []
    a.close()
    b.close()


def test_frame_writer_reports_a_failed_write_through_on_lost_and_stops() -> None:
    a, b = gsocket.socketpair()
    b.close()
    lost = Lost()
    writer = FrameWriter(a, mask=True, on_lost=lost)
    with pytest.raises(ConnectionClosed, match="the connection was lost"):
        for _ in range(100):  # the first write may still reach the kernel
            writer.send_frame(frames.OP_BINARY, b"x" * 1000)
            gevent.sleep(0)
    gevent.sleep(0)
    assert writer.dropped and writer.close_sent
    assert lost.calls == [(1006, "connection lost")]
    a.close()


def test_frame_writer_drop_ends_writing_and_the_owner_is_not_told() -> None:
    a, b = gsocket.socketpair()
    lost = Lost()
    writer = FrameWriter(a, mask=False, on_lost=lost)
    writer.drop()
    with pytest.raises(ConnectionClosed):
        writer.send_frame(frames.OP_TEXT, b"late")
    assert lost.calls == []
    a.close()
    b.close()


# --- the WebSocket's own close state ---------------------------------------------------------------


def test_websocket_abort_is_public_idempotent_and_wakes_waiters() -> None:
    a, b = gsocket.socketpair()
    ws = WebSocket(a, role="client")
    waiter = gevent.spawn(ws.wait_closed, 10)
    reader = gevent.spawn(ws.receive)
    gevent.sleep(0.01)
    ws.abort(4000, "gone")
    assert waiter.get(timeout=10) is True
    assert reader.get(timeout=10) is None
    ws.abort(1006, "again")
    assert (ws.close_code, ws.close_reason, ws.closed) == (4000, "gone", True)
    assert ws.wait_closed(0) is True
    with pytest.raises(ConnectionClosed) as caught:
        ws.send("after")
    assert (caught.value.code, caught.value.reason) == (4000, "gone")
    b.close()


def test_websocket_send_on_a_lost_connection_says_how_it_ended() -> None:
    a, b = gsocket.socketpair()
    ws = WebSocket(a, role="client")
    b.close()
    with pytest.raises(ConnectionClosed) as caught:
        for _ in range(100):
            ws.send(b"x" * 1000)
            gevent.sleep(0)
    assert (caught.value.code, caught.value.reason) == (1006, "connection lost")
    assert ws.closed and ws.close_code == 1006 and ws.receive() is None


# --- the socket-error mapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (socket.timeout("timed out"), "no WebSocket handshake within 3 s"),
        (ConnectionRefusedError(111, "refused"), "connection refused (is the server running and listening on h:1?)"),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve host 'h'"),
        (ssl.SSLError(1, "bad certificate"), "TLS handshake failed"),
        (OSError(113, "No route to host"), "No route to host"),
    ],
)
def test_socket_errors_map_a_failed_connect_to_connect_error(error: OSError, text: str) -> None:
    mapped = socket_errors.connect_error(error, url="ws://h:1/", host="h", port=1, timeout=3)
    assert isinstance(mapped, ConnectError)
    assert str(mapped).startswith("could not connect to ws://h:1/: ")
    assert text in str(mapped)


def test_socket_errors_on_an_open_connection() -> None:
    lost = socket_errors.lost(BrokenPipeError(32, "Broken pipe"))
    assert (lost.code, lost.reason) == (1006, "connection lost")

    def fail(*_: t.Any) -> bytes:
        raise ConnectionResetError(104, "reset")

    def would_block(*_: t.Any) -> bytes:
        raise BlockingIOError(11, "again")

    assert socket_errors.read_or_eof(fail, 10) == b""
    assert socket_errors.read_nowait(fail, 10) == b""
    assert socket_errors.read_nowait(would_block, 10) is None
    assert socket_errors.failed(fail) and not socket_errors.failed(lambda: None)
    assert socket_errors.attempt(fail) is None and socket_errors.attempt(lambda: 7) == 7

    def not_a_socket_error(*_: t.Any) -> bytes:
        raise ValueError("a bug, not a socket error")

    with pytest.raises(ValueError):
        socket_errors.read_or_eof(not_a_socket_error, 1)
