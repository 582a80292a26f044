"""The gevent RawSocket connection over a socket pair: framing, readiness, the size bound, the send timeout, EOF."""

from __future__ import annotations

import typing as t

import gevent
import gevent.event
import pytest
from gevent import socket as gsocket

from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.wamp import rawsocket as rs
from flask_wamp_bridge.wamp.rawsocket_connection import RawSocketConnection
from flask_wamp_bridge.websocket.connection import WOULD_BLOCK

_open: list[t.Any] = []


@pytest.fixture(autouse=True)
def _closed() -> t.Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def pair(*, max_message_size: int = 1024, send_timeout: float | None = None) -> tuple[RawSocketConnection, t.Any]:
    ours, router = gsocket.socketpair()
    codec = rs.RawSocket(rs.Role.CLIENT, "msgpack")
    codec.receive_data(rs.router_reply("msgpack"))
    assert isinstance(codec.next_event(), rs.Handshake)
    conn = RawSocketConnection(ours, codec, max_message_size=max_message_size, send_timeout=send_timeout)
    _open.extend([conn, router])
    return conn, router


def test_a_message_goes_out_as_header_and_payload() -> None:
    conn, router = pair()
    conn.send(b"\x93\x01\x02\x03")
    assert router.recv(100) == rs.frame_header(4) + b"\x93\x01\x02\x03"
    assert conn.subprotocol == "wamp.2.msgpack"


def test_readable_callback_then_receive_nowait() -> None:
    conn, router = pair()
    assert conn.receive_nowait() is WOULD_BLOCK
    woke = gevent.event.Event()
    conn.notify_readable(woke.set)
    router.sendall(rs.encode_frame(b"one") + rs.encode_frame(b"two")[:3])
    assert woke.wait(5)
    assert conn.receive_nowait() == b"one"
    assert conn.receive_nowait() is WOULD_BLOCK  # half a frame: wait for the rest
    router.sendall(rs.encode_frame(b"two")[3:])
    assert conn.receive() == b"two"


def test_a_frame_over_the_bound_fails_from_its_header() -> None:
    conn, router = pair(max_message_size=1024)
    router.sendall(rs.frame_header(1025))
    with pytest.raises(MessageTooBig):
        conn.receive_nowait()


def test_a_router_that_reads_nothing_is_dropped_after_the_send_timeout() -> None:
    conn, router = pair(send_timeout=0.3)
    with pytest.raises(ConnectionClosed):
        with gevent.Timeout(10):
            while True:
                conn.send(b"x" * 65536)
    assert conn.close_code == 1006
    with pytest.raises(ConnectionClosed):
        conn.send(b"late")


def test_eof_ends_the_connection() -> None:
    conn, router = pair()
    router.close()
    assert conn.receive() is None
    assert conn.receive_nowait() is None
    woke = gevent.event.Event()
    conn.notify_readable(woke.set)  # a closed connection calls back at once
    assert woke.wait(5)
