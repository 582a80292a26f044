"""Work in slices: a large message or frame yields to the hub, so a connection whose data waits gets its turn."""

from __future__ import annotations

import io
import os
import typing as t

import gevent
import pytest
from pair_router import _Pairs

from flask_wamp_bridge.websocket import frames
from flask_wamp_bridge.websocket import slices
from flask_wamp_bridge.websocket.connection import WebSocket

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pairs() -> t.Iterator[_Pairs]:
    made = _Pairs()
    yield made
    made.close()


def other_connection(pairs: _Pairs) -> tuple[gevent.Greenlet, list[str]]:
    """A greenlet blocked on a socket whose data is already there: it runs as soon as the hub polls."""
    left, right = pairs.make()
    order: list[str] = []

    def read() -> None:
        right.recv(1)
        order.append("other")

    reader = gevent.spawn(read)
    gevent.sleep(0)  # it waits on the socket now
    left.send(b"x")
    return reader, order


@pytest.mark.parametrize("size", [0, 1, 4097, slices.MASK_SLICE, 3 * slices.MASK_SLICE + 3])
def test_masking_in_slices_gives_the_same_bytes(size: int) -> None:
    payload, key = os.urandom(size), os.urandom(4)
    assert slices.mask_in_slices(payload, key) == frames.mask(payload, key)
    assert slices.encode_frame_in_slices(frames.OP_BINARY, payload, key) == frames.encode_frame(
        frames.OP_BINARY, payload, key)
    assert slices.encode_frame_in_slices(frames.OP_TEXT, payload, None) == frames.encode_frame(frames.OP_TEXT, payload)


def test_masking_a_large_frame_lets_a_waiting_connection_run(pairs: _Pairs) -> None:
    reader, order = other_connection(pairs)
    slices.mask_in_slices(bytes(4 * slices.MASK_SLICE), b"abcd")
    order.append("masked")
    assert order == ["other", "masked"]
    reader.join()


def test_a_used_up_slice_yields_until_the_hub_has_polled(pairs: _Pairs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slices, "SLICE", 0.0)
    reader, order = other_connection(pairs)
    slices.Slice().pause_if_due()
    order.append("paused")
    assert order == ["other", "paused"]  # gevent.sleep(0) would have run nothing: the reader waits on IO
    reader.join()


class _InMemory:
    """A socket whose received bytes are all there already (a fast sender): reading never waits."""

    def __init__(self, sock: t.Any) -> None:
        self._sock = sock

    def send(self, *args: t.Any) -> int:
        return int(self._sock.send(*args))

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def close(self) -> None:
        self._sock.close()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)


def test_receiving_a_large_message_lets_a_waiting_connection_run(pairs: _Pairs) -> None:
    message = "x" * (8 << 20)  # parsed in far more than one slice
    wire = io.BytesIO(frames.encode_frame(frames.OP_TEXT, message.encode(), b"abcd"))
    left, _ = pairs.make()
    server = WebSocket(_InMemory(left), role="server", read=wire.read, subprotocol="wamp.2.json",
                       max_message_size=16 << 20)
    reader, order = other_connection(pairs)
    assert server.receive() == message
    order.append("received")
    assert order == ["other", "received"]
    reader.join()
