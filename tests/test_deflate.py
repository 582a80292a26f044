"""Unit tests for permessage-deflate (RFC 7692): negotiation, compression, the decompression bound.

Interoperability is checked against autobahn-python's own permessage-deflate
(the client side a Python WAMP client uses): it must accept our responses
and read what we compress, and we must read what it compresses.
"""

from __future__ import annotations

import os
import typing as t
import zlib

import pytest

from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.websocket.deflate import DeflateParams
from flask_wamp_bridge.websocket.deflate import Deflater
from flask_wamp_bridge.websocket.deflate import Inflater
from flask_wamp_bridge.websocket.deflate import negotiate
from flask_wamp_bridge.websocket.deflate import parse_extensions

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
