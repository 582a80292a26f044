"""Unit tests for the sans-IO WAMP RawSocket codec (no sockets; the real Crossbar is in test_upstream_crossbar.py)."""

from __future__ import annotations

import math
import struct
import typing as t

import pytest

from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.wamp import rawsocket as R


def test_rawsocket_length_exponent_matches_autobahn() -> None:
    # autobahn: exponent = ceil(log2(max_message_size)) - 9
    for size in (512, 513, 1000, 1024, 65536, 1_000_000, 1 << 20, (1 << 20) + 1, R.MAX_LENGTH):
        assert R.length_exponent(size) == math.ceil(math.log(size, 2)) - 9
    for bad in (0, 511, R.MAX_LENGTH + 1, True, 1.5):
        with pytest.raises(LocalProtocolError):
            R.length_exponent(bad)  # type: ignore[arg-type]


def test_rawsocket_handshake_octets() -> None:
    assert R.client_handshake("json", 1 << 24) == b"\x7f\xf1\x00\x00"
    assert R.client_handshake("msgpack", 512) == b"\x7f\x02\x00\x00"
    assert R.client_handshake("cbor", 1 << 20) == b"\x7f\xb3\x00\x00"
    assert R.router_error_reply(R.HandshakeError.MAX_CONNECTIONS) == b"\x7f\x40\x00\x00"
    with pytest.raises(LocalProtocolError):
        R.client_handshake("ubjson")


def test_rawsocket_router_parses_client_handshake() -> None:
    assert R.parse_client_handshake(b"\x7f\xb2\x00\x00") == R.Handshake("msgpack", 1 << 20)
    assert R.parse_client_handshake(b"\x7f\x23\x00\x00", ["msgpack"]) is R.HandshakeError.SERIALIZER_UNSUPPORTED
    assert R.parse_client_handshake(b"\x7f\x24\x00\x00") is R.HandshakeError.SERIALIZER_UNSUPPORTED
    for bad in (b"GET ", b"\x7f\x21\x00\x01", b"\x7f\x21\x00"):
        with pytest.raises(RemoteProtocolError):
            R.parse_client_handshake(bad)


def test_rawsocket_client_parses_router_reply() -> None:
    assert R.parse_router_reply(b"\x7f\x12\x00\x00", "msgpack") == R.Handshake("msgpack", 1024)
    with pytest.raises(RemoteProtocolError, match="serializer id 1"):
        R.parse_router_reply(b"\x7f\x11\x00\x00", "msgpack")
    for error in R.HandshakeError:
        with pytest.raises(ConnectError, match="refused"):
            R.parse_router_reply(R.router_error_reply(error), "msgpack")
    with pytest.raises(ConnectError, match="error code 9"):
        R.parse_router_reply(b"\x7f\x90\x00\x00", "json")
    with pytest.raises(RemoteProtocolError, match="0x48"):
        R.parse_router_reply(b"HTTP", "json")


def test_rawsocket_frame_header_layout() -> None:
    assert R.frame_header(5) == b"\x00\x00\x00\x05"
    assert R.frame_header(0x123456, R.FrameType.PING) == b"\x01\x12\x34\x56"
    assert R.encode_frame(b"ab", R.FrameType.PONG) == b"\x02\x00\x00\x02ab"
    with pytest.raises(LocalProtocolError):
        R.frame_header(1 << 24)


def test_rawsocket_parser_is_incremental() -> None:
    parser = R.FrameParser(100)
    stream = R.encode_frame(b"hello") + R.encode_frame(b"", R.FrameType.PING) + R.encode_frame(b"x" * 100)
    frames: list[t.Any] = []
    for byte in stream:  # one byte at a time
        parser.feed(bytes([byte]))
        while (frame := parser.next_frame()) is not None:
            frames.append(frame)
    assert frames == [R.Message(b"hello"), R.Ping(b""), R.Message(b"x" * 100)]
    assert parser.buffered == 0


def test_rawsocket_parser_refuses_over_length_from_the_header() -> None:
    parser = R.FrameParser(1024)
    parser.feed(struct.pack("!I", 1025))  # no payload sent yet
    with pytest.raises(MessageTooBig) as info:
        parser.next_frame()
    assert info.value.close_code == 1009
    assert parser.buffered == 0


@pytest.mark.parametrize("header", [b"\x08\x00\x00\x00", b"\x80\x00\x00\x00", b"\x03\x00\x00\x00", b"\x07\x00\x00\x01"])
def test_rawsocket_parser_refuses_reserved_bits_and_types(header: bytes) -> None:
    parser = R.FrameParser(1024)
    parser.feed(header)
    with pytest.raises(RemoteProtocolError):
        parser.next_frame()


def pair(serializer: str = "msgpack", client_max: int = 1 << 16, router_max: int = 1 << 20,
         ) -> tuple[R.RawSocket, R.RawSocket]:
    client = R.RawSocket(R.Role.CLIENT, serializer, client_max)
    router = R.RawSocket(R.Role.ROUTER, max_length=router_max)
    router.receive_data(client.initiate())
    assert router.next_event() == R.Handshake(serializer, client_max)
    client.receive_data(router.data_to_send())
    assert client.next_event() == R.Handshake(serializer, router_max)
    return client, router


def test_rawsocket_connection_pair_exchanges_messages_and_pings() -> None:
    client, router = pair("cbor")
    router.receive_data(client.send(b"\x83\x01") + client.ping(b"p1"))
    assert router.next_event() == R.Message(b"\x83\x01")
    assert router.next_event() == R.Ping(b"p1")
    assert router.next_event() is R.NEED_DATA
    client.receive_data(router.data_to_send())  # the automatic PONG
    assert client.next_event() == R.Pong(b"p1")
    assert client.next_event() is R.NEED_DATA


def test_rawsocket_connection_enforces_both_maximums() -> None:
    client, router = pair(client_max=1024, router_max=2048)
    with pytest.raises(LocalProtocolError, match="longer than the other side accepts"):
        router.send(b"x" * 1025)  # the client asked for at most 1024
    client.send(b"x" * 2048)
    with pytest.raises(LocalProtocolError):
        client.send(b"x" * 2049)
    client.receive_data(R.encode_frame(b"x" * 1025))  # a router ignoring the bound
    with pytest.raises(MessageTooBig):
        client.next_event()
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        client.next_event()


def test_rawsocket_router_refuses_unknown_serializer_with_error_reply() -> None:
    router = R.RawSocket(R.Role.ROUTER, serializers=["msgpack"])
    router.receive_data(R.client_handshake("json"))
    with pytest.raises(RemoteProtocolError, match="not offered"):
        router.next_event()
    client = R.RawSocket(R.Role.CLIENT, "json")
    client.receive_data(router.data_to_send())
    with pytest.raises(ConnectError, match="serializer is not offered"):
        client.next_event()


def test_rawsocket_handshake_and_first_frame_in_one_read() -> None:
    client = R.RawSocket(R.Role.CLIENT, "json")
    client.initiate()
    client.receive_data(R.router_reply("json", 4096) + R.encode_frame(b"[2,1,{}]"))
    assert client.next_event() == R.Handshake("json", 4096)
    assert client.next_event() == R.Message(b"[2,1,{}]")
    with pytest.raises(LocalProtocolError):
        R.RawSocket(R.Role.ROUTER).initiate()
    with pytest.raises(LocalProtocolError, match="not done"):
        R.RawSocket(R.Role.CLIENT).send(b"x")
