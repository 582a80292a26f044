"""Unit tests for permessage-deflate (RFC 7692): negotiation, compression, the decompression bound.

Then the frame parser with an inflater and the WebSocket (socket pairs, in process).
Interoperability is checked against autobahn-python's own permessage-deflate
(the client side a Python WAMP client uses): it must accept our responses
and read what we compress, and we must read what it compresses.
"""

from __future__ import annotations

import os
import typing as t
import zlib

import gevent
import pytest
from gevent import socket as gsocket

from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.websocket.connection import WebSocket
from flask_wamp_bridge.websocket.deflate import SLICE
from flask_wamp_bridge.websocket.deflate import DeflateOptions
from flask_wamp_bridge.websocket.deflate import DeflateParams
from flask_wamp_bridge.websocket.deflate import Deflater
from flask_wamp_bridge.websocket.deflate import Inflater
from flask_wamp_bridge.websocket.deflate import negotiate
from flask_wamp_bridge.websocket.deflate import parse_extensions
from flask_wamp_bridge.websocket.frames import OP_BINARY
from flask_wamp_bridge.websocket.frames import OP_CONTINUATION
from flask_wamp_bridge.websocket.frames import OP_PING
from flask_wamp_bridge.websocket.frames import OP_TEXT
from flask_wamp_bridge.websocket.frames import RSV1
from flask_wamp_bridge.websocket.frames import Failure
from flask_wamp_bridge.websocket.frames import FrameParser
from flask_wamp_bridge.websocket.frames import Message
from flask_wamp_bridge.websocket.frames import encode_frame
from flask_wamp_bridge.websocket.frames import encode_header
from flask_wamp_bridge.websocket.frames import mask

CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"
BOTH = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
TEXT = b'{"user": "joe", "items": [' + b", ".join(b'{"id": %d, "name": "item %d"}' % (i, i) for i in range(200)) + b"]}"


@pytest.mark.parametrize(("offer", "response"), [
    (CHROMIUM_OFFER, BOTH),
    ("permessage-deflate", BOTH),  # Firefox
    ("permessage-deflate; client_max_window_bits; server_max_window_bits=10", BOTH + "; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"', BOTH + "; server_max_window_bits=12"),
    ("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=9", BOTH),
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate", BOTH),  # 8: zlib cannot; next offer
    ("permessage-deflate; foo=1, permessage-deflate; client_no_context_takeover", BOTH),
])
def test_deflate_negotiate_accepts(offer: str, response: str) -> None:
    accepted = negotiate(offer)
    assert accepted is not None
    params, header = accepted
    assert header == response
    assert params.server_no_context_takeover and params.client_no_context_takeover


@pytest.mark.parametrize("offer", [
    None, "", "x-webkit-deflate-frame", "permessage-deflate; foo",
    "permessage-deflate; server_max_window_bits=16", "permessage-deflate; server_max_window_bits",
    "permessage-deflate; client_max_window_bits=7", "permessage-deflate; client_no_context_takeover=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  # repeated: malformed
    "; server_no_context_takeover",
])
def test_deflate_negotiate_declines(offer: str | None) -> None:
    assert negotiate(offer) is None


def test_deflate_negotiate_with_context_takeover_allowed() -> None:
    params, header = t.cast(tuple[DeflateParams, str], negotiate(CHROMIUM_OFFER, no_context_takeover=False))
    assert header == "permessage-deflate"
    assert not params.server_no_context_takeover and not params.client_no_context_takeover
    params, header = t.cast(tuple[DeflateParams, str],
                            negotiate("permessage-deflate; server_no_context_takeover", no_context_takeover=False))
    assert header == "permessage-deflate; server_no_context_takeover"


def test_deflate_parse_extensions() -> None:
    assert parse_extensions('A; b; c="x,y" , D;E=1') == [("a", {"b": None, "c": "x,y"}), ("d", {"e": "1"})]
    with pytest.raises(RemoteProtocolError):
        parse_extensions("a; b; b")


def test_deflate_threshold_and_round_trip() -> None:
    params = DeflateParams()
    deflater = Deflater(params, threshold=256)
    assert deflater.compress(b"short") == (b"short", False)
    payload, compressed = deflater.compress(TEXT)
    assert compressed and len(payload) < len(TEXT) // 4
    assert not payload.endswith(b"\x00\x00\xff\xff")
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == TEXT
    assert Inflater(params, 1 << 20).decompress(payload) == TEXT


def test_deflate_large_messages_in_slices_and_incompressible_ones_plain() -> None:
    pauses: list[None] = []
    text = TEXT * (3 * SLICE // len(TEXT))  # about 3 slices
    payload, compressed = Deflater(DeflateParams()).compress(text, lambda: pauses.append(None))
    assert compressed and len(pauses) == 3 and len(payload) < len(text) // 10
    assert Inflater(DeflateParams(), None).decompress(payload) == text
    noise = os.urandom(2 * SLICE)
    assert Deflater(DeflateParams()).compress(noise) == (noise, False)
    # with context takeover the stream is shared: never abandoned half way
    payload, compressed = Deflater(DeflateParams(server_no_context_takeover=False)).compress(noise)
    assert compressed and Inflater(DeflateParams(), None).decompress(payload) == noise


def test_deflate_the_same_message_to_many_sockets_is_compressed_once() -> None:
    event = bytearray(TEXT)
    first, _ = Deflater(DeflateParams()).compress(event)
    event[0:1] = b"["  # the sender's buffer changes: what was remembered does not
    again, _ = Deflater(DeflateParams()).compress(bytes(TEXT))
    assert again is first  # another socket's deflater, equal bytes: the output is reused
    other, _ = Deflater(DeflateParams()).compress(bytes(event))
    assert other is not first and Inflater(DeflateParams(), None).decompress(other) == bytes(event)
    level9, _ = Deflater(DeflateParams(), level=9).compress(bytes(event))
    assert level9 is not other and Inflater(DeflateParams(), None).decompress(level9) == bytes(event)


def test_deflate_no_context_takeover_keeps_no_state_between_messages() -> None:
    params = DeflateParams()
    deflater, inflater = Deflater(params), Inflater(params, 1 << 20)
    first, _ = deflater.compress(TEXT)
    second, _ = deflater.compress(TEXT)
    assert first == second  # each message on its own
    assert inflater.decompress(second) == TEXT
    assert deflater._compressor is None and inflater._decompressor is None


def test_deflate_context_takeover_when_agreed() -> None:
    params = DeflateParams(server_no_context_takeover=False, client_no_context_takeover=False)
    deflater, inflater = Deflater(params), Inflater(params, 1 << 20)
    first, _ = deflater.compress(TEXT)
    second, _ = deflater.compress(TEXT)
    assert len(second) < len(first) // 4  # refers back to the first message
    assert inflater.decompress(first) == TEXT
    assert inflater.decompress(second) == TEXT


def test_deflate_bomb_is_message_too_big() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = bomb.compress(b"\x00" * (64 << 20)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(payload) < 100_000  # 64 MiB in under 100 KB
    inflater = Inflater(DeflateParams(), max_size=1 << 20)
    with pytest.raises(MessageTooBig) as info:
        inflater.decompress(payload[:-4])
    assert info.value.close_code == 1009


def test_deflate_bound_is_exact_and_output_whole() -> None:
    data = os.urandom(1000) * 700  # 700 KB, compresses well, inflates in many steps
    deflated, _ = Deflater(DeflateParams()).compress(data)
    assert Inflater(DeflateParams(), len(data)).decompress(deflated) == data
    with pytest.raises(MessageTooBig):
        Inflater(DeflateParams(), len(data) - 1).decompress(deflated)


def test_deflate_invalid_data_and_final_block() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Inflater(DeflateParams(), 1 << 20).decompress(b"\xff\xff\xff\xff")
    assert info.value.close_code == 1007
    params = DeflateParams(client_no_context_takeover=False)
    inflater = Inflater(params, 1 << 20)
    final = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert inflater.decompress(final.compress(TEXT) + final.flush(zlib.Z_FINISH)) == TEXT  # BFINAL (RFC 7692 7.2.3.4)
    again, _ = Deflater(DeflateParams()).compress(TEXT)
    assert inflater.decompress(again) == TEXT  # a new stream after the final block


# --- against autobahn-python's permessage-deflate (client side) ---------------------------------


def autobahn_client(response: str) -> t.Any:
    from autobahn.websocket.compress_deflate import PerMessageDeflate
    from autobahn.websocket.compress_deflate import PerMessageDeflateResponse

    [(name, params)] = parse_extensions(response)
    assert name == "permessage-deflate"
    parsed = PerMessageDeflateResponse.parse({k: [True if v is None else v] for k, v in params.items()})
    return PerMessageDeflate(
        False, parsed.server_no_context_takeover, parsed.client_no_context_takeover,
        parsed.server_max_window_bits or 15, parsed.client_max_window_bits or 15, 8,
    )


@pytest.mark.parametrize("no_context_takeover", [True, False])
def test_deflate_interoperates_with_autobahn(no_context_takeover: bool) -> None:
    accepted = negotiate(CHROMIUM_OFFER, no_context_takeover=no_context_takeover)
    params, header = t.cast(tuple[DeflateParams, str], accepted)
    client = autobahn_client(header)
    deflater, inflater = Deflater(params, threshold=0), Inflater(params, 1 << 20)
    for message in (TEXT, TEXT, b"x", TEXT[::-1]):
        payload, _ = deflater.compress(message)
        client.start_decompress_message()
        assert client.decompress_message_data(payload) == message
        client.end_decompress_message()
        client.start_compress_message()
        sent = client.compress_message_data(message) + client.end_compress_message()
        assert inflater.decompress(sent) == message


# --- the frame parser with an inflater (RSV1) ------------------------------------------------------------------

KEY = b"\x01\x02\x03\x04"


def compressed(opcode: int, data: bytes, fragment: int | None = None) -> bytes:
    payload, _ = Deflater(DeflateParams(), threshold=0).compress(data)
    step = fragment or max(1, len(payload))
    pieces = [payload[i : i + step] for i in range(0, len(payload), step)]
    return b"".join(
        encode_header((opcode | RSV1) if i == 0 else OP_CONTINUATION, len(p), KEY, fin=i == len(pieces) - 1)
        + mask(p, KEY)
        for i, p in enumerate(pieces)
    )


def parser(max_size: int | None = 1 << 20, inflater: bool = True) -> FrameParser:
    p = FrameParser("server", max_size)
    if inflater:
        p.inflater = Inflater(DeflateParams(), max_size)
    return p


def test_deflate_parser_inflates_rsv1_messages_whole_fragmented_and_byte_by_byte() -> None:
    text = TEXT.decode()
    assert parser().feed(compressed(OP_TEXT, TEXT)) == [Message(text)]
    assert parser().feed(compressed(OP_BINARY, TEXT, fragment=7)) == [Message(TEXT)]
    p, events = parser(), []
    for byte in compressed(OP_TEXT, TEXT, fragment=50):
        events += p.feed(bytes([byte]))
    assert events == [Message(text)]
    # uncompressed messages still pass, before and after
    both = encode_frame(OP_TEXT, b"plain", KEY) + compressed(OP_TEXT, TEXT) + encode_frame(OP_BINARY, b"raw", KEY)
    assert parser().feed(both) == [Message("plain"), Message(text), Message(b"raw")]


@pytest.mark.parametrize(("data", "code"), [
    (compressed(OP_TEXT, TEXT), 1002),  # no extension negotiated (no inflater)
    (encode_frame(OP_TEXT, b"a", KEY, fin=False) + encode_header(OP_CONTINUATION | RSV1, 1, KEY) + mask(b"b", KEY),
     1002),
    (encode_header(OP_PING | RSV1, 0, KEY), 1002),
    (encode_header(OP_TEXT | 0x20, 0, KEY), 1002),  # RSV2
    (encode_header(OP_BINARY | RSV1, 4, KEY) + mask(b"\xff\xff\xff\xff", KEY), 1007),
    (compressed(OP_TEXT, b"ok \xed\xa0\x80" * 100), 1007),
])
def test_deflate_parser_failures(data: bytes, code: int) -> None:
    events = parser(inflater=code != 1002 or data != compressed(OP_TEXT, TEXT)).feed(data)
    assert isinstance(events[-1], Failure) and events[-1].code == code


def test_deflate_parser_bounds_the_inflated_size_not_just_the_wire_size() -> None:
    bomb, _ = Deflater(DeflateParams(), threshold=0).compress(b"\x00" * (8 << 20))
    frame = encode_header(OP_BINARY | RSV1, len(bomb), KEY) + mask(bomb, KEY)
    [failure] = parser(max_size=1 << 20).feed(frame)
    assert isinstance(failure, Failure) and failure.code == 1009
    # an incompressible message of exactly the limit grows a little when compressed: still accepted
    data = os.urandom(1 << 16)
    assert parser(max_size=1 << 16).feed(compressed(OP_BINARY, data)) == [Message(data)]
    [failure] = parser(max_size=(1 << 16) - 1).feed(compressed(OP_BINARY, data))
    assert isinstance(failure, Failure) and failure.code == 1009


# --- the WebSocket: negotiated in accept(), compressed by its writer -------------------------------------------


@pytest.fixture
def pair() -> t.Iterator[tuple[t.Any, t.Any]]:
    a, b = gsocket.socketpair()
    yield a, b
    a.close()
    b.close()


def server_socket(pair: tuple[t.Any, t.Any], offer: str | None
                  ) -> tuple[WebSocket, t.Any, list[t.Sequence[tuple[str, str]]]]:
    a, b = pair
    answered: list[t.Sequence[tuple[str, str]]] = []
    environ = {"HTTP_SEC_WEBSOCKET_EXTENSIONS": offer} if offer else {}
    ws = WebSocket(a, role="server", environ=environ, accept_handler=lambda _sub, headers: answered.append(headers))
    return ws, b, answered


def test_deflate_websocket_accept_negotiates_and_messages_round_trip(pair: tuple[t.Any, t.Any]) -> None:
    ws, peer, answered = server_socket(pair, CHROMIUM_OFFER)
    ws.accept(deflate=DeflateOptions(threshold=100))
    assert answered == [[("Sec-WebSocket-Extensions", BOTH)]]
    assert ws.deflate == DeflateParams()
    client = FrameParser("client", None)
    client.inflater = Inflater(DeflateParams(), None)
    ws.send(TEXT.decode())
    ws.send(b"tiny")  # under the threshold: plain
    gevent.sleep(0)
    raw = peer.recv(65536)
    assert raw[0] == 0x80 | RSV1 | OP_TEXT and len(raw) < len(TEXT) // 4
    assert client.feed(raw) == [Message(TEXT.decode()), Message(b"tiny")]
    peer.sendall(compressed(OP_BINARY, TEXT, fragment=100))
    assert ws.receive() == TEXT


@pytest.mark.parametrize(("offer", "options"), [(None, DeflateOptions()), (CHROMIUM_OFFER, None)])
def test_deflate_websocket_without_agreement_sends_plain_frames(
    pair: tuple[t.Any, t.Any], offer: str | None, options: DeflateOptions | None
) -> None:
    ws, peer, answered = server_socket(pair, offer)
    ws.accept(deflate=options)
    assert list(map(list, answered)) == [[]] and ws.deflate is None
    ws.send(TEXT)
    gevent.sleep(0)
    assert FrameParser("client", None).feed(peer.recv(65536)) == [Message(TEXT)]
    peer.sendall(compressed(OP_BINARY, TEXT))
    assert ws.receive() is None and ws.close_code == 1002


def test_deflate_websocket_app_cannot_answer_extensions_itself(pair: tuple[t.Any, t.Any]) -> None:
    ws, peer, _ = server_socket(pair, CHROMIUM_OFFER)
    with pytest.raises(LocalProtocolError, match="Sec-WebSocket-Extensions"):
        ws.accept(deflate=DeflateOptions(), headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
