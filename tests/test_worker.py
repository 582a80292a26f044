"""The gunicorn worker, run exactly as documented: ``gunicorn -k flask_wamp_bridge.worker``."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
import typing as t
import urllib.request
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

