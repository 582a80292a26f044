"""Unit tests for the sans-IO RFC 6455 codec (no sockets)."""

from __future__ import annotations

import os
import struct

import pytest

from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.errors import MessageTooBig
from flask_wamp_bridge.websocket import frames as F

KEY = b"\x37\xfa\x21\x3d"


def naive_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, key: bytes = KEY) -> bytes:
    """A masked frame as a client sends it (built by hand, independent of the encoder)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return head + key + naive_mask(payload, key)


def feed_all(parser: F.FrameParser, data: bytes, step: int | None = None) -> list[F.Event]:
    if step is None:
        return parser.feed(data)
    events: list[F.Event] = []
    for i in range(0, len(data), step):
        events += parser.feed(data[i : i + step])
    return events


def failure_code(events: list[F.Event]) -> int:
    assert events and isinstance(events[-1], F.Failure), events
    return events[-1].code


# --- masking -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 4095, 4096, 4097, 70000])
@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_mask_matches_bytewise_xor(size: int, offset: int) -> None:
    data = os.urandom(size)
    assert F.mask(data, KEY, offset) == naive_mask(data, KEY, offset)


def test_mask_is_its_own_inverse() -> None:
    data = os.urandom(10000)
    assert F.mask(F.mask(data, KEY), KEY) == data


# --- encoder ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 100000])
def test_encode_frame_length_encodings_round_trip(size: int) -> None:
    payload = os.urandom(size)
    server_side = F.FrameParser("server", max_message_size=None)
    assert server_side.feed(F.encode_frame(F.OP_BINARY, payload, KEY)) == [F.Message(payload)]
    client_side = F.FrameParser("client", max_message_size=None)
    assert client_side.feed(F.encode_frame(F.OP_BINARY, payload)) == [F.Message(payload)]


def test_encode_frame_masked_matches_hand_built_frame() -> None:
    assert F.encode_frame(F.OP_TEXT, b"hello", KEY) == client_frame(F.OP_TEXT, b"hello")


def test_encode_close_puts_code_and_reason_on_the_wire() -> None:
    frame = F.encode_close(1001, "going away")
    assert frame[0] == 0x88
    assert frame[2:4] == struct.pack("!H", 1001)
    assert frame[4:] == b"going away"


def test_encode_close_truncates_reason_at_a_character_boundary() -> None:
    frame = F.encode_close(1000, "é" * 100)  # 200 bytes of UTF-8
    payload = frame[2:]
    assert len(payload) <= 125
    payload[2:].decode("utf-8")  # still valid UTF-8
    parsed = F.FrameParser("client").feed(frame)
    assert isinstance(parsed[0], F.Close) and parsed[0].code == 1000


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_encode_close_refuses_codes_that_cannot_be_sent(code: int) -> None:
    with pytest.raises(LocalProtocolError):
        F.encode_close(code)


def test_encode_frame_refuses_big_or_fragmented_control_frames() -> None:
    with pytest.raises(LocalProtocolError):
        F.encode_frame(F.OP_PING, b"x" * 126)
    with pytest.raises(LocalProtocolError):
        F.encode_frame(F.OP_PING, b"x", fin=False)


# --- parser: messages ---------------------------------------------------------------------


def test_parser_text_message_byte_by_byte() -> None:
    text = "héllo wörld ✓ 𝄞"
    frame = client_frame(F.OP_TEXT, text.encode())
    assert feed_all(F.FrameParser("server"), frame, step=1) == [F.Message(text)]


def test_parser_fragmented_text_split_inside_a_character() -> None:
    raw = "aé𝄞z".encode()  # split the 4-byte character across fragments
    data = (
        client_frame(F.OP_TEXT, raw[:4], fin=False)
        + client_frame(F.OP_CONTINUATION, raw[4:6], fin=False)
        + client_frame(F.OP_CONTINUATION, raw[6:])
    )
    for step in (None, 1, 3):
        assert feed_all(F.FrameParser("server"), data, step) == [F.Message("aé𝄞z")]


def test_parser_fragmented_binary_with_ping_in_between() -> None:
    data = (
        client_frame(F.OP_BINARY, b"ab", fin=False)
        + client_frame(F.OP_PING, b"p")
        + client_frame(F.OP_CONTINUATION, b"", fin=False)
        + client_frame(F.OP_CONTINUATION, b"cd")
    )
    assert F.FrameParser("server").feed(data) == [F.Ping(b"p"), F.Message(b"abcd")]


def test_parser_several_messages_in_one_chunk() -> None:
    data = client_frame(F.OP_TEXT, b"one") + client_frame(F.OP_BINARY, b"two") + client_frame(F.OP_PONG, b"3")
    assert F.FrameParser("server").feed(data) == [F.Message("one"), F.Message(b"two"), F.Pong(b"3")]


def test_parser_empty_messages() -> None:
    data = client_frame(F.OP_TEXT, b"") + client_frame(F.OP_BINARY, b"")
    assert F.FrameParser("server").feed(data) == [F.Message(""), F.Message(b"")]


def test_parser_large_frame_arriving_in_pieces() -> None:
    payload = os.urandom(300000)
    events = feed_all(F.FrameParser("server", max_message_size=None), client_frame(F.OP_BINARY, payload), 7000)
    assert events == [F.Message(payload)]


def test_parser_client_role_reads_unmasked_frames() -> None:
    assert F.FrameParser("client").feed(F.encode_frame(F.OP_TEXT, b"hi")) == [F.Message("hi")]


# --- parser: close ---------------------------------------------------------------------------


def test_parser_close_with_code_and_reason() -> None:
    events = F.FrameParser("server").feed(client_frame(F.OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert events == [F.Close(1000, "bye")]


def test_parser_empty_close_has_no_code() -> None:
    assert F.FrameParser("server").feed(client_frame(F.OP_CLOSE)) == [F.Close(None, "")]


def test_parser_ignores_everything_after_close() -> None:
    parser = F.FrameParser("server")
    events = parser.feed(client_frame(F.OP_CLOSE, struct.pack("!H", 1000)) + client_frame(F.OP_TEXT, b"late"))
    assert events == [F.Close(1000, "")]
    assert parser.done
    assert parser.feed(client_frame(F.OP_TEXT, b"later")) == []


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999])
def test_parser_accepts_valid_close_codes(code: int) -> None:
    events = F.FrameParser("server").feed(client_frame(F.OP_CLOSE, struct.pack("!H", code)))
    assert events == [F.Close(code, "")]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_parser_invalid_close_code_is_protocol_error(code: int) -> None:
    events = F.FrameParser("server").feed(client_frame(F.OP_CLOSE, struct.pack("!H", code)))
    assert failure_code(events) == 1002


def test_parser_one_byte_close_payload_is_protocol_error() -> None:
    assert failure_code(F.FrameParser("server").feed(client_frame(F.OP_CLOSE, b"\x03"))) == 1002


def test_parser_close_reason_invalid_utf8_is_1007() -> None:
    payload = struct.pack("!H", 1000) + b"\xce\xba\xed\xa0\x80"
    assert failure_code(F.FrameParser("server").feed(client_frame(F.OP_CLOSE, payload))) == 1007


# --- parser: protocol violations -----------------------------------------------------------------


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_parser_reserved_bits_are_protocol_error(rsv: int) -> None:
    frame = bytearray(client_frame(F.OP_TEXT, b"x"))
    frame[0] |= rsv
    assert failure_code(F.FrameParser("server").feed(bytes(frame))) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_parser_reserved_opcodes_are_protocol_error(opcode: int) -> None:
    assert failure_code(F.FrameParser("server").feed(client_frame(opcode, b"x"))) == 1002


def test_parser_fragmented_control_frame_is_protocol_error() -> None:
    assert failure_code(F.FrameParser("server").feed(client_frame(F.OP_PING, b"x", fin=False))) == 1002


def test_parser_oversized_control_frame_is_protocol_error_before_its_payload() -> None:
    head = client_frame(F.OP_PING, b"x" * 126)[:8]  # header only, payload never sent
    assert failure_code(F.FrameParser("server").feed(head)) == 1002


def test_parser_server_refuses_unmasked_frames() -> None:
    assert failure_code(F.FrameParser("server").feed(F.encode_frame(F.OP_TEXT, b"x"))) == 1002


def test_parser_client_refuses_masked_frames() -> None:
    assert failure_code(F.FrameParser("client").feed(client_frame(F.OP_TEXT, b"x"))) == 1002


def test_parser_continuation_without_start_is_protocol_error() -> None:
    assert failure_code(F.FrameParser("server").feed(client_frame(F.OP_CONTINUATION, b"x"))) == 1002


def test_parser_new_message_inside_fragmented_message_is_protocol_error() -> None:
    data = client_frame(F.OP_TEXT, b"a", fin=False) + client_frame(F.OP_TEXT, b"b")
    assert failure_code(F.FrameParser("server").feed(data)) == 1002


def test_parser_64bit_length_with_top_bit_is_protocol_error() -> None:
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + KEY
    assert failure_code(F.FrameParser("server", max_message_size=None).feed(head)) == 1002


def test_parser_stops_after_failure() -> None:
    parser = F.FrameParser("server")
    events = parser.feed(client_frame(F.OP_TEXT, b"ok") + client_frame(7) + client_frame(F.OP_TEXT, b"no"))
    assert events[0] == F.Message("ok")
    assert failure_code(events) == 1002 and len(events) == 2
    assert parser.feed(client_frame(F.OP_TEXT, b"later")) == []


# --- parser: UTF-8 ----------------------------------------------------------------------------------


def test_parser_invalid_utf8_text_is_1007() -> None:
    assert failure_code(F.FrameParser("server").feed(client_frame(F.OP_TEXT, b"ok\xff"))) == 1007


def test_parser_invalid_utf8_fails_fast_within_an_incomplete_frame() -> None:
    valid = "κόσμε".encode()
    frame = client_frame(F.OP_TEXT, valid + b"\xf4\x90\x80\x80" + b"more text to come")
    parser = F.FrameParser("server")
    assert parser.feed(frame[: 6 + len(valid)]) == []  # header + the valid part
    assert failure_code(parser.feed(frame[6 + len(valid) : 6 + len(valid) + 2])) == 1007


def test_parser_invalid_utf8_fails_on_the_fragment_not_at_the_end() -> None:
    parser = F.FrameParser("server")
    assert parser.feed(client_frame(F.OP_TEXT, "κόσμε".encode(), fin=False)) == []
    events = parser.feed(client_frame(F.OP_CONTINUATION, b"\xed\xa0\x80", fin=False))  # a surrogate
    assert failure_code(events) == 1007


def test_parser_text_ending_inside_a_character_is_1007() -> None:
    data = client_frame(F.OP_TEXT, b"ok\xe2\x82", fin=False) + client_frame(F.OP_CONTINUATION, b"")
    assert failure_code(F.FrameParser("server").feed(data)) == 1007


# --- parser: size limit ---------------------------------------------------------------------------------


def test_parser_too_big_is_decided_from_the_header() -> None:
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 30) + KEY  # claims 1 GiB, sends nothing more
    events = F.FrameParser("server", max_message_size=1 << 20).feed(head)
    assert failure_code(events) == 1009
    assert isinstance(events[0].error, MessageTooBig)  # type: ignore[union-attr]


def test_parser_too_big_counts_fragments_running_total() -> None:
    parser = F.FrameParser("server", max_message_size=100)
    assert parser.feed(client_frame(F.OP_BINARY, b"x" * 60, fin=False)) == []
    head = client_frame(F.OP_CONTINUATION, b"y" * 60)[:6]
    assert failure_code(parser.feed(head)) == 1009


def test_parser_message_at_the_limit_is_accepted() -> None:
    parser = F.FrameParser("server", max_message_size=100)
    assert parser.feed(client_frame(F.OP_BINARY, b"x" * 100)) == [F.Message(b"x" * 100)]


def test_parser_limit_applies_to_each_message_separately() -> None:
    parser = F.FrameParser("server", max_message_size=100)
    data = client_frame(F.OP_TEXT, b"a" * 50, fin=False) + client_frame(F.OP_CONTINUATION, b"b" * 50)
    data += client_frame(F.OP_TEXT, b"c" * 100)
    assert parser.feed(data) == [F.Message("a" * 50 + "b" * 50), F.Message("c" * 100)]



@pytest.mark.parametrize("opcode", [F.OP_BINARY, F.OP_TEXT])
def test_parser_tiny_fragments_hold_little_more_than_the_payload(opcode: int) -> None:
    # A message sent as 2-byte continuation frames must not cost a Python object
    # per fragment: that held ~25x the size limit per connection.
    import tracemalloc

    pieces = 50_000
    data = client_frame(opcode, b"ab", fin=False)
    data += client_frame(F.OP_CONTINUATION, b"ab", fin=False) * (pieces - 1)
    parser = F.FrameParser("server", max_message_size=1 << 20)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(0, len(data), 65536):
            assert parser.feed(data[i : i + 65536]) == []
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 3 * 2 * pieces
    events = parser.feed(client_frame(F.OP_CONTINUATION, b"!"))
    expected = b"ab" * pieces + b"!"
    assert events == [F.Message(expected if opcode == F.OP_BINARY else expected.decode())]
