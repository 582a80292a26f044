"""The gevent WebSocket client against the real worker, from this plain (unpatched) pytest process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import typing as t
import urllib.request

import gevent
import pytest
from gevent import monkey
from gevent import ssl as gssl
from helpers import GunicornProcess
from helpers import free_port
from helpers import wait_until

from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.errors import ConnectError
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.websocket.client import connect

APP = "tests.apps.ws_app:app"


@pytest.fixture(scope="module")
def server() -> t.Iterator[GunicornProcess]:
    with GunicornProcess(APP) as proc:
        yield proc


def stats(server: GunicornProcess) -> dict[str, t.Any]:
    with urllib.request.urlopen(server.url + "/stats", timeout=10) as resp:
        return t.cast(dict, json.loads(resp.read()))


def test_client_runs_in_an_unpatched_process() -> None:
    assert not monkey.is_module_patched("socket")


def test_client_echo_text_binary_and_large(server: GunicornProcess) -> None:
    with connect(server.ws_url("/echo")) as ws:
        assert ws.subprotocol is None
        ws.send("héllo")
        assert ws.receive() == "héllo"
        ws.send(b"\x00\x01\x02")
        assert ws.receive() == b"\x00\x01\x02"
        big = os.urandom(900_000)  # masked by the client, checked by the server's parser
        ws.send(big)
        assert ws.receive() == big
        ws.send("as binary", binary=True)
        assert ws.receive() == b"as binary"


def test_client_subprotocol_is_the_servers_choice(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/wamp"), subprotocols=["wamp.2.msgpack", "wamp.2.json"])
    assert ws.subprotocol == "wamp.2.msgpack"
    assert ws.receive() == "wamp.2.msgpack"
    assert ws.receive() is None  # the handler returned: the worker closed with 1000
    assert ws.close_code == 1000
    assert ws.closed


def test_client_close_sends_code_and_reason(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/echo"))
    ws.send("x")
    assert ws.receive() == "x"
    ws.close(4002, "client done")
    assert ws.closed and ws.close_code == 4002
    assert wait_until(lambda: stats(server).get("echo_close") == [4002, "client done"])
    ws.close()  # idempotent
    with pytest.raises(ConnectionClosed):
        ws.send("after close")
    assert ws.receive() is None


def test_client_headers_reach_the_server(server: GunicornProcess) -> None:
    with pytest.raises(ConnectError, match="403"):
        connect(server.ws_url("/echo"), headers={"Origin": "http://evil.example"})
    ws = connect(server.ws_url("/echo"), headers={"Origin": "https://trusted.example"})
    ws.send("ok")
    assert ws.receive() == "ok"
    ws.close()


def test_client_bad_status_is_connect_error_with_the_reason(server: GunicornProcess) -> None:
    with pytest.raises(ConnectError, match="400.*wamp.2.json"):
        connect(server.ws_url("/wamp"), subprotocols=["wamp.2.cbor"])
    with pytest.raises(ConnectError, match="404"):
        connect(server.ws_url("/no-such-route"))


def test_client_missing_subprotocol_is_connect_error(server: GunicornProcess) -> None:
    with pytest.raises(ConnectError, match="chose none of the offered subprotocols"):
        connect(server.ws_url("/manual-accept"), subprotocols=["wamp.2.json"])


def test_client_refused_connection_is_connect_error() -> None:
    port = free_port()
    with pytest.raises(ConnectError, match="connection refused"):
        connect(f"ws://127.0.0.1:{port}/ws", timeout=5)


def test_client_handshake_timeout_is_connect_error() -> None:
    with socket.socket() as silent:  # accepts TCP (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(ConnectError, match="no WebSocket handshake within 0.5 s"):
            connect(f"ws://127.0.0.1:{port}/ws", timeout=0.5)


def test_client_rejects_a_malformed_url() -> None:
    with pytest.raises(ConfigError):
        connect("http://127.0.0.1:1/ws")


def test_client_concurrent_senders_from_many_greenlets(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/echo"))
    expected = {f"{i}:{j}:" + "m" * (j * 101) for i in range(20) for j in range(25)}

    def sender(i: int) -> None:
        for j in range(25):
            ws.send(f"{i}:{j}:" + "m" * (j * 101))

    senders = [gevent.spawn(sender, i) for i in range(20)]
    received = {ws.receive() for _ in range(len(expected))}
    gevent.joinall(senders, raise_error=True)
    assert received == expected
    ws.close()


def test_client_only_one_greenlet_may_receive(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/echo"))
    reader = gevent.spawn(ws.receive)
    gevent.sleep(0.05)
    with pytest.raises(LocalProtocolError, match="only one greenlet"):
        ws.receive()
    ws.send("for the reader")
    assert reader.get(timeout=10) == "for the reader"
    ws.close()


def test_client_close_from_another_greenlet_ends_receive(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/echo"))
    reader = gevent.spawn(ws.receive)
    gevent.sleep(0.05)
    ws.close(1000)
    assert reader.get(timeout=10) is None
    assert ws.close_code == 1000


def test_client_sees_server_close_codes(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/limited"))
    ws.send(b"x" * 2000)
    assert ws.receive() is None
    assert ws.close_code == 1009


def test_client_limits_server_messages(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/echo"), max_message_size=1000)
    ws.send("s" * 1000)
    assert ws.receive() == "s" * 1000
    ws.send("b" * 1001)  # the echo is one byte over the client's limit
    assert ws.receive() is None
    assert ws.close_code == 1009
    assert wait_until(lambda: stats(server).get("echo_close", [None])[0] == 1009)


def test_client_works_inside_the_worker(server: GunicornProcess) -> None:
    # /proxy relays through a client connect()ed inside the gevent worker
    with connect(server.ws_url("/proxy")) as ws:
        for text in ("one", "two", "x" * 70_000):
            ws.send(text)
            assert ws.receive() == text


def test_client_iteration_stops_when_closed(server: GunicornProcess) -> None:
    ws = connect(server.ws_url("/rooms/r/1"))
    assert [json.loads(m)["room"] for m in ws] == ["r"]
    assert ws.close_code == 1000


def test_client_wss_to_a_tls_worker(tmp_path: t.Any) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    with GunicornProcess(APP, extra_args=["--certfile", str(cert), "--keyfile", str(key)], probe=False) as tls:
        context = gssl.create_default_context(cafile=str(cert))
        with connect(f"wss://127.0.0.1:{tls.port}/echo", ssl_context=context) as ws:
            ws.send("over TLS")
            assert ws.receive() == "over TLS"
        with pytest.raises(ConnectError, match="TLS"):
            connect(f"wss://127.0.0.1:{tls.port}/echo")  # the system CAs do not know this certificate


# --- write batching, the send queue bound and the keepalive timer, on a socket pair ----------------


class CountingSocket:
    """A gevent socket that counts the writes reaching it."""

    def __init__(self, sock: t.Any) -> None:
        self.sock = sock
        self.writes = 0

    def send(self, data: t.Any, flags: int = 0, timeout: t.Any = None) -> int:
        self.writes += 1
        return int(self.sock.send(data, flags, timeout))

    def sendall(self, data: t.Any) -> None:
        self.writes += 1
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self.sock, name)


def socket_pair() -> tuple[t.Any, t.Any]:
    from gevent import socket as gsocket

    return gsocket.socketpair()


def read_messages(sock: t.Any, count: int) -> list[t.Any]:
    from flask_wamp_bridge.websocket import frames as _frames

    parser = _frames.FrameParser("server")
    events: list[t.Any] = []
    with gevent.Timeout(10):
        while len(events) < count:
            events.extend(parser.feed(sock.recv(65536)))
    return events


def test_websocket_burst_of_sends_is_written_in_two_writes() -> None:
    from flask_wamp_bridge.websocket.connection import WebSocket

    a, b = socket_pair()
    counting = CountingSocket(a)
    ws = WebSocket(counting, role="client")
    for i in range(50):  # no yield in between: one burst
        ws.send(f"message {i}")
    assert counting.writes == 1  # the first frame went at once, the others wait for the hub
    gevent.sleep(0)
    assert counting.writes == 2
    events = read_messages(b, 50)
    assert [e.data for e in events] == [f"message {i}" for i in range(50)]
    ws.abort(1006, "test over")
    b.close()


def test_websocket_sends_from_many_greenlets_are_joined() -> None:
    from flask_wamp_bridge.websocket.connection import WebSocket

    a, b = socket_pair()
    counting = CountingSocket(a)
    ws = WebSocket(counting, role="client")
    senders = [gevent.spawn(ws.send, f"from {i}") for i in range(30)]
    gevent.joinall(senders, raise_error=True)
    gevent.sleep(0)
    assert counting.writes < 30
    events = read_messages(b, 30)
    assert sorted(e.data for e in events) == sorted(f"from {i}" for i in range(30))
    ws.abort(1006, "test over")
    b.close()


def test_websocket_close_writes_queued_frames_before_the_close_frame() -> None:
    from flask_wamp_bridge.websocket import frames as _frames
    from flask_wamp_bridge.websocket.connection import WebSocket

    a, b = socket_pair()
    ws = WebSocket(a, role="client")
    for i in range(5):
        ws.send(b"%d" % i)
    ws.close(4001, "bye", timeout=0.1)  # nobody answers the close: dropped after the timeout
    events = read_messages(b, 6)
    assert [e.data for e in events[:5]] == [b"%d" % i for i in range(5)]
    assert events[5] == _frames.Close(4001, "bye")
    assert ws.close_code == 4001
    b.close()


def test_websocket_send_queue_is_bounded_and_a_stuck_peer_times_out() -> None:
    from flask_wamp_bridge.websocket.connection import WebSocket
    from flask_wamp_bridge.websocket.writer import MAX_QUEUED

    a, b = socket_pair()  # b never reads
    ws = WebSocket(a, role="client")
    ws.configure(send_timeout=0.5)
    chunk = b"x" * 60000
    largest = 0
    with pytest.raises(ConnectionClosed):
        for _ in range(10000):
            ws.send(chunk)
            largest = max(largest, ws._writer.queued)
    assert largest <= MAX_QUEUED + len(chunk) + 14
    # the sender's wait or the writer greenlet, whichever deadline the hub runs first, dropped it
    assert ws.closed and ws.close_code == 1006 and ws.close_reason.startswith("send timed out")
    with pytest.raises(ConnectionClosed):
        ws.send("after")
    b.close()


def test_websocket_pings_a_quiet_peer_and_closes_an_idle_one() -> None:
    from flask_wamp_bridge.websocket import frames as _frames
    from flask_wamp_bridge.websocket.connection import WebSocket

    a, b = socket_pair()
    ws = WebSocket(a, role="server")
    ws.configure(ping_interval=0.1, idle_timeout=0.6)
    reader = gevent.spawn(ws.receive)
    parser = _frames.FrameParser("client")
    seen: list[t.Any] = []
    with gevent.Timeout(10):
        while not any(isinstance(e, _frames.Close) for e in seen):
            data = b.recv(65536)
            if not data:
                break
            seen.extend(parser.feed(data))
    pings = [e for e in seen if isinstance(e, _frames.Ping)]
    assert len(pings) >= 2  # one per quiet ping interval until the idle timeout
    assert seen[-1] == _frames.Close(1011, "idle timeout: nothing received for 0.6 s")
    assert reader.get(timeout=10) is None
    assert ws.close_code == 1011
    a.close()  # a server-side WebSocket leaves its socket to the worker
    b.close()


def test_websocket_receive_nowait_and_notify_readable() -> None:
    from gevent.event import Event

    from flask_wamp_bridge.websocket import frames as _frames
    from flask_wamp_bridge.websocket.connection import WOULD_BLOCK
    from flask_wamp_bridge.websocket.connection import WebSocket

    a, b = socket_pair()
    ws = WebSocket(a, role="client")
    assert ws.receive_nowait() is WOULD_BLOCK
    woken = Event()
    ws.notify_readable(woken.set)
    gevent.sleep(0.01)
    assert not woken.is_set()  # nothing to read yet
    b.sendall(_frames.encode_frame(_frames.OP_TEXT, b"one") + _frames.encode_frame(_frames.OP_BINARY, b"two"))
    assert woken.wait(10)
    assert ws.receive_nowait() == "one"
    assert ws.receive_nowait() == b"two"
    assert ws.receive_nowait() is WOULD_BLOCK
    ended = Event()
    ws.notify_readable(ended.set)
    b.close()  # the peer goes away: readable, and the read says closed
    assert ended.wait(10)
    assert ws.receive_nowait() is None
    assert ws.close_code == 1006


def test_websocket_notify_readable_fires_when_the_socket_is_dropped() -> None:
    from gevent.event import Event

    from flask_wamp_bridge.websocket.connection import WebSocket

    a, b = socket_pair()
    ws = WebSocket(a, role="client")
    woken = Event()
    ws.notify_readable(woken.set)
    ws.abort(1006, "dropped here")  # e.g. a failed write
    assert woken.wait(10)
    assert ws.receive_nowait() is None
    b.close()
