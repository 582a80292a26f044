"""Measure the WebSocket layer: codec cost per message, and direct vs relayed round trips.

Run from the repository root::

    .venv/bin/python bench/bench_frames.py

1. Parsing one masked text frame (unmask + UTF-8 check), ours against the
   per-byte loops of gevent-websocket 0.10.1 (``Header.mask_payload`` and its
   pure-Python ``Utf8Validator``).
2. Round trips of a 4 KiB text message through a real gunicorn worker:
   straight to ``/echo``, and through ``/proxy`` (a relay inside the worker that
   forwards each message over a second WebSocket to ``/echo`` in the same
   worker), with the worker's CPU time per round trip.
"""

from __future__ import annotations

import os
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from flask_wamp_bridge.websocket import frames as _frames  # noqa: E402

KEY = os.urandom(4)


def bench_codec() -> None:
    from geventwebsocket.utf8validator import Utf8Validator
    from geventwebsocket.websocket import Header

    print("parse one masked text frame (unmask + UTF-8 validation), microseconds per message")
    print(f"{'size':>9} {'ours':>10} {'gevent-websocket 0.10.1':>25} {'ratio':>7}")
    for size in (128, 4096, 65536, 1 << 20):
        payload = ("é" * (size // 2)).encode()[:size]
        frame = _frames.encode_frame(_frames.OP_TEXT, payload, KEY)
        header = Header(fin=True, opcode=1, length=len(payload))
        header.mask = KEY
        masked = frame[-len(payload) :]

        def ours(frame: bytes = frame) -> None:
            _frames.FrameParser("server", None).feed(frame)

        def theirs(header: Header = header, masked: bytes = masked) -> None:
            Utf8Validator().validate(bytes(header.mask_payload(masked)))

        number = max(1, 200_000 // size)
        t_ours = min(timeit.repeat(ours, number=number, repeat=3)) / number * 1e6
        number = max(1, 20_000 // size)
        t_theirs = min(timeit.repeat(theirs, number=number, repeat=3)) / number * 1e6
        print(f"{size:>9} {t_ours:>10.1f} {t_theirs:>25.1f} {t_theirs / t_ours:>6.0f}x")


def bench_round_trips(count: int = 2000) -> None:
    from helpers import GunicornProcess

    from flask_wamp_bridge.websocket.client import connect

    message = "x" * 4096
    with GunicornProcess("tests.apps.ws_app:app") as server:
        [worker] = server.worker_pids()
        results = {}
        for path in ("/echo", "/proxy"):
            ws = connect(server.ws_url(path))
            for _ in range(200):  # warm up
                ws.send(message)
                ws.receive()
            cpu0, t0 = _cpu_seconds(worker), time.perf_counter()
            for _ in range(count):
                ws.send(message)
                assert ws.receive() == message
            elapsed = time.perf_counter() - t0
            cpu = (_cpu_seconds(worker) - cpu0) / count * 1e6
            results[path] = (elapsed / count * 1e6, cpu)
            ws.close()
            print(f"{path:>7}: {results[path][0]:7.1f} us per 4 KiB round trip, worker CPU {cpu:6.1f} us")
        # /proxy runs three WebSocket legs in this one worker (the relay's server and client
        # legs, and the /echo it relays to); /echo runs one.
        print(f"worker CPU per WebSocket leg: {results['/proxy'][1] / 3:.1f} us through the relay, "
              f"{results['/echo'][1]:.1f} us direct")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    bench_codec()
    print()
    bench_round_trips()
