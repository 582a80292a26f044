"""The gunicorn worker, run exactly as documented: ``gunicorn -k flask_wamp_bridge.worker``."""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import typing as t
import urllib.request
import zlib
from pathlib import Path

import pytest
import websocket
from helpers import REPO_ROOT
from helpers import GunicornProcess
from helpers import raw_handshake
from helpers import wait_until

from flask_wamp_bridge.websocket import frames as _frames
from flask_wamp_bridge.websocket import handshake

APP = "tests.apps.ws_app:app"


def close_frame(ws: websocket.WebSocket) -> tuple[int | None, str, list[t.Any]]:
    """Read until the server's close frame: (code, reason, messages before it)."""
    messages = []
    try:
        while True:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                return code, data[2:].decode(), messages
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                messages.append(frame.data.decode() if opcode == websocket.ABNF.OPCODE_TEXT else frame.data)
    finally:
        ws.shutdown()


def get(server: GunicornProcess, path: str) -> str:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return t.cast(str, resp.read().decode())


@pytest.fixture(scope="module")
def server() -> t.Iterator[GunicornProcess]:
    with GunicornProcess(APP, env={"WAMP_BRIDGE_HANDSHAKE_TIMEOUT": "1"}) as proc:
        yield proc


def test_worker_class_resolves_the_documented_way_twice() -> None:
    # gunicorn resolves -k on start and again on every SIGHUP reload
    code = (
        "from gunicorn.util import load_class\n"
        "from flask_wamp_bridge.websocket.worker import BridgeWorker\n"
        "assert load_class('flask_wamp_bridge.worker') is BridgeWorker\n"
        "assert load_class('flask_wamp_bridge.worker') is BridgeWorker\n"
        "import flask_wamp_bridge\n"
        "assert flask_wamp_bridge.worker is BridgeWorker\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


def test_worker_logs_websocket_and_http_requests(server: GunicornProcess) -> None:
    assert get(server, "/") == "ok"
    ws = websocket.create_connection(server.ws_url("/echo"), timeout=10)
    ws.send("x")
    ws.recv()
    ws.close()
    server.wait_for_log('"GET /echo HTTP/1.1" 101')
    server.wait_for_log('"GET / HTTP/1.1" 200')


def test_worker_start_hooks_run_after_monkey_patching(server: GunicornProcess) -> None:
    hook = json.loads(get(server, "/stats"))["start_hook"]
    assert hook == {"pid": int(get(server, "/pid")), "in_worker": True, "socket_patched": True}


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Sec-WebSocket-Version": "8"}, "Sec-WebSocket-Version"),
        ({"Sec-WebSocket-Key": "short"}, "Sec-WebSocket-Key"),
        ({"Connection": "keep-alive"}, "Connection: Upgrade"),
    ],
)
def test_worker_invalid_handshake_answered_400_before_the_app(
    server: GunicornProcess, headers: dict[str, str], problem: str
) -> None:
    lines = {
        "Host": f"{server.host}:{server.port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": handshake.make_key(),
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    request = "GET /echo HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines.items()) + "\r\n"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400")
    assert problem in body
    if "Sec-WebSocket-Version" in headers:
        assert "Sec-WebSocket-Version: 13" in head


def test_worker_drops_a_client_that_does_not_finish_its_headers(server: GunicornProcess) -> None:
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # never finished
        response = b""
        while chunk := sock.recv(65536):  # EOF once the 1 s handshake timeout drops us
            response += chunk
    assert response == b"" or response.startswith(b"HTTP/1.1 400")
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        assert sock.recv(65536) == b""  # not even a request line


def test_worker_handshake_timeout_spares_active_sockets(server: GunicornProcess) -> None:
    ws = websocket.create_connection(server.ws_url("/echo"), timeout=10)
    time.sleep(1.5)  # longer than the 1 s header timeout: it must not apply to open sockets
    ws.send("still open")
    assert ws.recv() == "still open"
    ws.close()


def test_worker_reads_frames_sent_with_the_upgrade_request(server: GunicornProcess) -> None:
    # The first frame arrives in the request's buffered reader; once it is read out the reader is closed (its
    # buffer freed for the connection's life) and later frames come from the socket itself.
    key = handshake.make_key()
    request = handshake.build_request("/echo", f"{server.host}:{server.port}", key)
    first = _frames.encode_frame(_frames.OP_TEXT, b"with the request", b"abcd")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request + first)
        parser = _frames.FrameParser("client")
        buf = b""
        while (parts := handshake.split_head(buf)) is None:
            buf += sock.recv(65536)
        head, rest = parts
        assert head.startswith(b"HTTP/1.1 101")
        received: list[t.Any] = []

        def next_message() -> t.Any:
            nonlocal rest
            while not received:
                data, rest = rest or sock.recv(65536), b""
                assert data, "the server closed the connection"
                received.extend(event for event in parser.feed(data) if isinstance(event, _frames.Message))
            return received.pop(0).data

        assert next_message() == "with the request"
        for text in ("after it", "x" * 20000):
            sock.sendall(_frames.encode_frame(_frames.OP_TEXT, text.encode(), b"wxyz"))
            assert next_message() == text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_stop_signal_closes_sockets_with_1001_and_exits(sig: int, tmp_path: Path) -> None:
    hook_file = tmp_path / "hooks.txt"
    with GunicornProcess(APP, env={"HOOK_FILE": str(hook_file)}) as server:
        [worker] = server.worker_pids()
        plain = websocket.create_connection(server.ws_url("/echo"), timeout=30)
        plain.send("x")
        assert plain.recv() == "x"
        polite = websocket.create_connection(server.ws_url("/goodbye"), timeout=30)
        polite.send("y")
        assert polite.recv() == "y"
        server.send_signal(sig)
        code, reason, _ = close_frame(plain)
        assert code == 1001
        code, reason, messages = close_frame(polite)  # its on_server_shutdown ran instead of close()
        assert (code, reason, messages) == (1001, "see you", ["bye 1001"])
        # graceful_timeout is 30 s: exiting within 25 s means the worker did not wait it out
        assert server.wait(timeout=25) == 0
    assert hook_file.read_text().split() == [str(worker), "1001"]


def test_worker_reload_closes_old_sockets_with_1012_and_keeps_serving(tmp_path: Path) -> None:
    hook_file = tmp_path / "hooks.txt"
    with GunicornProcess(APP, env={"HOOK_FILE": str(hook_file)}) as server:
        [old_worker] = server.worker_pids()
        old = websocket.create_connection(server.ws_url("/echo"), timeout=30)
        old.send("before")
        assert old.recv() == "before"
        server.send_signal(signal.SIGHUP)
        code, _, _ = close_frame(old)
        assert code == 1012
        [new_worker] = server.wait_for_workers(1, exclude=[old_worker])
        wait_until(lambda: server.worker_pids() == [new_worker], timeout=30)
        new = websocket.create_connection(server.ws_url("/echo"), timeout=30)
        new.send("after")
        assert new.recv() == "after"
        assert get(server, "/pid") == str(new_worker)
        assert hook_file.read_text().split() == [str(old_worker), "1012"]
        # a second reload works too (gunicorn resolves the worker class again)
        server.send_signal(signal.SIGHUP)
        assert close_frame(new)[0] == 1012
        server.wait_for_workers(1, exclude=[old_worker, new_worker])
        # and a real shutdown after reloads is 1001 again
        last = websocket.create_connection(server.ws_url("/echo"), timeout=30)
        last.send("z")
        assert last.recv() == "z"
        server.send_signal(signal.SIGTERM)
        assert close_frame(last)[0] == 1001
        assert server.wait(timeout=25) == 0


# --- the example app's /echo, against Autobahn-style scripted exchanges -------------------------

K = b"\x0f\x1e\x2d\x3c"


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    return _frames.encode_frame(opcode, payload, K, fin=fin)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def ctl(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A control frame built by hand (the encoder refuses the invalid ones we need)."""
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) if len(payload) < 126 else (
        bytes([(0x80 if fin else 0) | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
    )
    return head + K + _frames.mask(payload, K)


T, B, C, P = _frames.OP_TEXT, _frames.OP_BINARY, _frames.OP_CONTINUATION, _frames.OP_PING

CASES = {
    # name: (bytes sent, TCP chop size or None, expected events before the close, expected close code)
    "ping between fragments (5.6)": (
        frame(T, b"frag", fin=False) + ctl(P, b"ping!") + frame(C, b"ment"),
        None,
        [_frames.Pong(b"ping!"), _frames.Message("fragment")],
        None,
    ),
    "ten pings (2.10)": (
        b"".join(ctl(P, b"%d" % i) for i in range(10)), None, [_frames.Pong(b"%d" % i) for i in range(10)], None
    ),
    "64 KiB binary in 997-byte chops (1.2.8)": (
        frame(B, b"\xfe" * 65536), 997, [_frames.Message(b"\xfe" * 65536)], None
    ),
    "1 MiB text in 64-byte frames (9.3-like)": (
        b"".join(frame(T if i == 0 else C, b"abcdefgh" * 8, fin=(i == 16383)) for i in range(16384)),
        None,
        [_frames.Message("abcdefgh" * 8 * 16384)],
        None,
    ),
    "text then reserved opcode (4.1.3)": (frame(T, b"hi") + ctl(5, b""), None, [_frames.Message("hi")], 1002),
    "ping with 126 bytes (2.5)": (ctl(P, b"x" * 126), None, [], 1002),
    "fragmented ping (5.1)": (ctl(P, b"x", fin=False), None, [], 1002),
    "empty close (7.3.1)": (ctl(_frames.OP_CLOSE), None, [], 1000),
    "close with 1-byte payload (7.3.2)": (ctl(_frames.OP_CLOSE, b"\x03"), None, [], 1002),
    "close code echoed (7.7.x)": (ctl(_frames.OP_CLOSE, close_payload(3000)), None, [], 3000),
    "invalid close code (7.9.x)": (ctl(_frames.OP_CLOSE, close_payload(1004)), None, [], 1002),
    "invalid UTF-8 close reason (7.5.1)": (ctl(_frames.OP_CLOSE, close_payload(1000, b"\xed\xa0\x80")), None, [], 1007),
    "ping after close is ignored (7.1.3)": (
        ctl(_frames.OP_CLOSE, close_payload(1000)) + ctl(P, b"late"), None, [], 1000
    ),
    "continuation without start (5.9)": (frame(C, b"x"), None, [], 1002),
    "invalid UTF-8 text (6.x)": (frame(T, "κόσμε".encode() + b"\xed\xa0\x80edited"), None, [], 1007),
}


@pytest.fixture(scope="module")
def example_server() -> t.Iterator[GunicornProcess]:
    with GunicornProcess("examples.app:app") as proc:
        yield proc


@pytest.mark.parametrize("case", list(CASES))
def test_worker_example_echo_conformance(example_server: GunicornProcess, case: str) -> None:
    sent, chop, expected, code = CASES[case]
    sock, head, rest = raw_handshake(example_server.host, example_server.port, "/echo")
    try:
        assert head.startswith("HTTP/1.1 101")
        if chop:
            for i in range(0, len(sent), chop):
                sock.sendall(sent[i : i + chop])
        else:
            sock.sendall(sent)
        parser = _frames.FrameParser("client", max_message_size=None)
        events: list[t.Any] = []
        close = None
        sock.settimeout(15)
        data = rest
        while close is None:
            for event in parser.feed(data):
                if isinstance(event, _frames.Close):
                    close = event
                    break
                events.append(event)
            if close is not None:
                break
            if code is None and len(events) == len(expected):
                sock.sendall(ctl(_frames.OP_CLOSE, close_payload(1000)))  # our turn to close
                code = 1000
            data = sock.recv(65536)
            assert data, f"connection closed without a close frame after {events!r}"
        assert events == expected
        assert close.code == code
        while sock.recv(65536):  # the server then closes the TCP connection
            pass
    finally:
        sock.close()



# --- permessage-deflate (RFC 7692): Autobahn sections 12 (compressed messages) and 13 (parameters) --------------
#
# The client side is written here with zlib directly (not with the bridge's deflate module): what the server
# answers and what it echoes is read by an independent frame reader.

BOTH = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
SIZES = (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072)
TAIL = b"\x00\x00\xff\xff"
THRESHOLD = 512  # the WAMP_BRIDGE_WS_DEFLATE_THRESHOLD default


def deflate(data: bytes, bits: int = 15) -> bytes:
    """One message compressed as RFC 7692 7.2.1 says (its own deflate stream: no context takeover)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def compressed_frames(opcode: int, data: bytes, fragment: int | None = None, bits: int = 15) -> bytes:
    """A compressed message: RSV1 on its first frame only, masked, in frames of ``fragment`` bytes."""
    payload = deflate(data, bits)
    step = fragment or max(1, len(payload))
    pieces = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        op = (opcode | _frames.RSV1) if i == 0 else C
        out.append(_frames.encode_header(op, len(piece), K, fin=i == len(pieces) - 1) + _frames.mask(piece, K))
    return b"".join(out)


def text_payload(size: int) -> bytes:
    """Compressible UTF-8 text (JSON-like, with multi-byte characters), exactly ``size`` bytes."""
    unit = '{"id": 1, "name": "Zoë", "tags": ["wamp", "flask"], "κόσμε": true}, '.encode()
    return (unit * (size // len(unit) + 1))[:size].decode("utf-8", "ignore").encode().ljust(size, b" ")


def prose_payload(size: int) -> bytes:
    words = [b"to", b"be", b"or", b"not", b"that", b"is", b"the", b"question", b"whether", b"tis", b"nobler"]
    rng = random.Random(size)
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def binary_payload(size: int) -> bytes:
    return ((bytes(range(256)) + b"\x00" * 256) * (size // 512 + 1))[:size]


def random_payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


class ServerFrames:
    """Reads the server's (unmasked) frames and inflates its compressed messages with zlib."""

    def __init__(self, sock: socket.socket, data: bytes, window_bits: int = 15) -> None:
        self.sock, self.buf, self.bits = sock, data, window_bits

    def _frame(self) -> tuple[int, bool, bool, bytes]:
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames are never masked"
                length, head = b1 & 0x7F, 2
                if length == 126:
                    length, head = struct.unpack("!H", self.buf[2:4])[0], 4
                elif length == 127:
                    length, head = struct.unpack("!Q", self.buf[2:10])[0], 10
                if len(self.buf) >= head + length:
                    payload, self.buf = self.buf[head : head + length], self.buf[head + length :]
                    assert not b0 & 0x30, "RSV2/RSV3 are never set"
                    return b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40), payload
            chunk = self.sock.recv(1 << 16)
            assert chunk, "the server closed the connection"
            self.buf += chunk

    def message(self) -> tuple[int, bytes, bool]:
        """``(opcode, data, was_compressed)`` of the next data message, or ``(OP_CLOSE, payload, False)``."""
        opcode, fin, rsv1, payload = self._frame()
        while opcode == P or opcode == _frames.OP_PONG:
            opcode, fin, rsv1, payload = self._frame()
        if opcode == _frames.OP_CLOSE:
            return opcode, payload, False
        parts = [payload]
        while not fin:
            op, fin, more_rsv1, piece = self._frame()
            assert op == C and not more_rsv1, "RSV1 only on a message's first frame"
            parts.append(piece)
        data = b"".join(parts)
        if rsv1:  # the server does not take its context over: each message is a deflate stream of its own
            data = zlib.decompressobj(-self.bits).decompress(data + TAIL)
        return opcode, data, rsv1


def deflate_session(server: GunicornProcess, offer: str | None) -> tuple[socket.socket, str, bytes]:
    headers = {"Sec-WebSocket-Extensions": offer} if offer is not None else {}
    sock, head, rest = raw_handshake(server.host, server.port, "/echo", headers)
    assert head.startswith("HTTP/1.1 101"), head
    fields = handshake.parse_response(head.encode("latin-1")).fields
    return sock, fields.get("sec-websocket-extensions", ""), rest


def should_compress(data: bytes) -> bool:
    """What the server compresses: from the threshold up, except more than 64 KiB that do not compress."""
    return len(data) >= THRESHOLD and (len(data) <= 65536 or len(zlib.compress(data[:65536], 1)) < 58982)


def echo_compressed(sock: socket.socket, reader: ServerFrames, messages: list[tuple[int, bytes]], *,
                    fragment: int | None = None, chop: int | None = None, bits: int = 15) -> None:
    """Send each message compressed, check the echo (and that only those worth it come back compressed)."""
    wire = b"".join(compressed_frames(op, data, fragment, bits) for op, data in messages)
    sender = threading.Thread(target=lambda: [sock.sendall(wire[i : i + (chop or len(wire))])
                                              for i in range(0, len(wire), chop or len(wire))])
    sender.start()  # a thread: the echoes come back while we send
    try:
        for op, data in messages:
            got_op, got, was_compressed = reader.message()
            assert (got_op, len(got), got == data) == (op, len(data), True)
            assert was_compressed == should_compress(data)
    finally:
        sender.join()


def close_cleanly(sock: socket.socket, reader: ServerFrames) -> None:
    sock.sendall(ctl(_frames.OP_CLOSE, close_payload(1000)))
    op, payload, _ = reader.message()
    assert (op, payload[:2]) == (_frames.OP_CLOSE, close_payload(1000))


SECTION_12 = {
    # name: (payload maker, opcode, fragment size, TCP chop size)
    "12.1 text, sizes 16 B-128 KiB": (text_payload, T, None, None),
    "12.2 binary, sizes 16 B-128 KiB": (binary_payload, B, None, None),
    "12.3 prose text in 997-byte chops": (prose_payload, T, None, 997),
    "12.4 random (incompressible) binary": (random_payload, B, None, None),
    "12.5 text in 1 KiB fragments, 4 KiB chops": (text_payload, T, 1024, 4096),
    "12.5 random binary in 64-byte fragments": (random_payload, B, 64, None),
}


@pytest.mark.parametrize("case", list(SECTION_12))
def test_worker_example_echo_deflate_messages(example_server: GunicornProcess, case: str) -> None:
    make, opcode, fragment, chop = SECTION_12[case]
    sock, extensions, rest = deflate_session(example_server, "permessage-deflate; client_max_window_bits")
    try:
        assert extensions == BOTH
        reader = ServerFrames(sock, rest)
        echo_compressed(sock, reader, [(opcode, make(size)) for size in SIZES], fragment=fragment, chop=chop)
        close_cleanly(sock, reader)
    finally:
        sock.close()


SECTION_13 = {
    # name: (offer, expected response, client window bits used to compress, server window bits to inflate with)
    "13.1 bare offer (Firefox)": ("permessage-deflate", BOTH, 15, 15),
    "13.2 client_no_context_takeover": ("permessage-deflate; client_no_context_takeover", BOTH, 15, 15),
    "13.2 server_no_context_takeover": ("permessage-deflate; server_no_context_takeover", BOTH, 15, 15),
    "13.3 client_max_window_bits=9": ("permessage-deflate; client_max_window_bits=9", BOTH, 9, 15),
    "13.4 client_max_window_bits=15": ("permessage-deflate; client_max_window_bits=15", BOTH, 15, 15),
    "13.5 server_max_window_bits=9": (
        "permessage-deflate; server_max_window_bits=9", BOTH + "; server_max_window_bits=9", 15, 9),
    "13.6 both windows 10 and both no_context_takeover": (
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=10;"
        " server_max_window_bits=10", BOTH + "; server_max_window_bits=10", 10, 10),
    "13.7 several offers: first declined (window 8)": (
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits", BOTH, 15, 15),
    "13.7 several offers: unknown extension first": (
        "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=12",
        BOTH + "; server_max_window_bits=12", 15, 12),
    "13.7 an unknown parameter declines the first offer": (
        'permessage-deflate; foo=1, permessage-deflate; server_max_window_bits="11"; client_max_window_bits=11',
        BOTH + "; server_max_window_bits=11", 11, 11),
}


@pytest.mark.parametrize("case", list(SECTION_13))
def test_worker_example_echo_deflate_parameters(example_server: GunicornProcess, case: str) -> None:
    offer, response, client_bits, server_bits = SECTION_13[case]
    sock, extensions, rest = deflate_session(example_server, offer)
    try:
        assert extensions == response
        # inflating with the agreed server window fails ("distance too far back") if the server used a larger one
        reader = ServerFrames(sock, rest, server_bits)
        messages = [(T, text_payload(size)) for size in SIZES[:9]] + [(B, prose_payload(size)) for size in SIZES[:9]]
        echo_compressed(sock, reader, messages, bits=client_bits)
        close_cleanly(sock, reader)
    finally:
        sock.close()


@pytest.mark.parametrize("offer", [None, "permessage-deflate; server_max_window_bits=8", "permessage-deflate; x=1",
                                   "x-webkit-deflate-frame"])
def test_worker_example_echo_without_deflate_sends_plain_frames(example_server: GunicornProcess,
                                                                offer: str | None) -> None:
    sock, extensions, rest = deflate_session(example_server, offer)
    try:
        assert extensions == ""
        reader = ServerFrames(sock, rest)
        big = text_payload(65536)
        sock.sendall(frame(T, big))
        assert reader.message() == (T, big, False)
        sock.sendall(compressed_frames(T, big))  # RSV1 without the extension: a protocol error
        op, payload, _ = reader.message()
        assert (op, payload[:2]) == (_frames.OP_CLOSE, close_payload(1002))
    finally:
        sock.close()


def bomb_frame(size: int) -> bytes:
    """One compressed binary frame of ``size`` zero bytes (about 1,000 times smaller on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = (compressor.compress(b"\x00" * size) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    return _frames.encode_header(B | _frames.RSV1, len(payload), K) + _frames.mask(payload, K)


DEFLATE_FAILURES = {
    # name: (bytes sent after one good compressed message, close code)
    "RSV1 on a continuation frame": (
        frame(T, b"ab", fin=False) + _frames.encode_header(C | _frames.RSV1, 1, K) + _frames.mask(b"c", K), 1002),
    "RSV1 on a ping": (bytes([0x80 | 0x40 | P, 0x80]) + K, 1002),
    "RSV2 on a data frame": (bytes([0x80 | 0x20 | T, 0x81]) + K + _frames.mask(b"x", K), 1002),
    "RSV1 on the first fragment, then a new message before the end": (
        compressed_frames(T, prose_payload(2000), fragment=10)[:16] + frame(T, b"new"), 1002),
    "not deflate data (1007)": (
        _frames.encode_header(B | _frames.RSV1, 4, K) + _frames.mask(b"\xff\xff\xff\xff", K), 1007),
    "compressed invalid UTF-8 text (1007)": (compressed_frames(T, "κόσμε".encode() + b"\xed\xa0\x80" * 300), 1007),
    "compression bomb: 64 MiB from ~64 KB against a 16 MiB limit (1009)": (bomb_frame(64 << 20), 1009),
}


@pytest.mark.parametrize("case", list(DEFLATE_FAILURES))
def test_worker_example_echo_deflate_violations(example_server: GunicornProcess, case: str) -> None:
    sent, code = DEFLATE_FAILURES[case]
    sock, extensions, rest = deflate_session(example_server, "permessage-deflate; client_max_window_bits")
    try:
        assert extensions == BOTH
        reader = ServerFrames(sock, rest)
        good = text_payload(4096)
        sock.sendall(compressed_frames(T, good) + sent)
        assert reader.message() == (T, good, True)  # the connection worked until then
        op, payload, _ = reader.message()
        assert (op, payload[:2]) == (_frames.OP_CLOSE, close_payload(code))
    finally:
        sock.close()


def test_worker_example_echo_deflate_with_autobahn_client(example_server: GunicornProcess) -> None:
    """A real client's permessage-deflate (autobahn-python, asyncio) against /echo: compressed both ways."""
    import asyncio

    from autobahn.asyncio.websocket import WebSocketClientFactory
    from autobahn.asyncio.websocket import WebSocketClientProtocol
    from autobahn.websocket.compress import PerMessageDeflateOffer
    from autobahn.websocket.compress import PerMessageDeflateResponse
    from autobahn.websocket.compress import PerMessageDeflateResponseAccept

    messages: list[tuple[bytes, bool]] = [(text_payload(size), False) for size in SIZES] + [
        (prose_payload(size), True) for size in SIZES]
    result: dict[str, t.Any] = {"echoed": []}

    class Client(WebSocketClientProtocol):  # type: ignore[misc]
        def onOpen(self) -> None:  # noqa: N802
            agreed = self._perMessageCompress
            result["agreed"] = (type(agreed).__name__, agreed.server_no_context_takeover,
                                agreed.client_no_context_takeover)
            for data, binary in messages:
                self.sendMessage(data, isBinary=binary)

        def onMessage(self, payload: bytes, is_binary: bool) -> None:  # noqa: N802
            result["echoed"].append((payload, is_binary))
            if len(result["echoed"]) == len(messages):
                result["stats"] = (self.trafficStats.incomingOctetsWebSocketLevel,
                                   self.trafficStats.incomingOctetsAppLevel,
                                   self.trafficStats.outgoingOctetsWebSocketLevel,
                                   self.trafficStats.outgoingOctetsAppLevel)
                self.sendClose(1000)

        def onClose(self, was_clean: bool, code: int | None, reason: str) -> None:  # noqa: N802
            result["close"] = (was_clean, code)
            done.set_result(None)

    async def run() -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        factory = WebSocketClientFactory(example_server.ws_url("/echo"))
        factory.protocol = Client
        factory.setProtocolOptions(
            perMessageCompressionOffers=[PerMessageDeflateOffer(accept_max_window_bits=True)],
            perMessageCompressionAccept=lambda response: (
                PerMessageDeflateResponseAccept(response) if isinstance(response, PerMessageDeflateResponse) else None
            ),
        )
        transport, _ = await asyncio.get_running_loop().create_connection(
            factory, example_server.host, example_server.port)
        try:
            await asyncio.wait_for(done, 60)
        finally:
            transport.close()

    done: t.Any = None
    asyncio.run(run())
    assert result["agreed"] == ("PerMessageDeflate", True, True)
    assert result["echoed"] == messages
    assert result["close"] == (True, 1000)
    wire_in, app_in, wire_out, app_out = result["stats"]
    assert wire_in < app_in // 3 and wire_out < app_out // 3  # compressed both ways
