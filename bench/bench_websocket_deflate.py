"""permessage-deflate toward browsers: bytes on the wire, worker CPU per message, memory per idle connection.

Not a test. Run from the repository root::

    .venv/bin/python bench/bench_websocket_deflate.py [--connections 1000]

1. Bytes on the wire for realistic WAMP JSON messages (an EVENT and a RESULT
   carrying a list of objects, about 4 KiB, and smaller and larger ones): one
   frame as the worker sends it, uncompressed and compressed, and what the
   compression costs the worker (its send path: compress + frame header) and
   saves the browser. The threshold default comes from this table.
2. Worker CPU per message: sending (``FrameWriter``'s encode: plain frame vs
   deflate at levels 1, 6, 9, and zlib with a full 32 KiB window, which
   ``Deflater`` avoids for small messages; and 1 MiB of random bytes, which
   ``Deflater`` sends plain after its first slice; one EVENT fanned out to
   1,000 sockets, compressed once) and receiving (``FrameParser`` on a
   masked frame: plain vs compressed, inflate + UTF-8 check).
3. Python heap per idle server WebSocket (``tracemalloc``, socket objects
   counted out, as ``bench_websocket_memory.py``) after it received and sent a
   4 KiB message: without the extension, with it (both ``no_context_takeover``:
   the default), and with context takeover, which the bridge never agrees to.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import timeit
import tracemalloc
import typing as t
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import gevent  # noqa: E402
from gevent import socket as gsocket  # noqa: E402

from flask_wamp_bridge.websocket import frames as _frames  # noqa: E402
from flask_wamp_bridge.websocket.connection import WebSocket  # noqa: E402
from flask_wamp_bridge.websocket.deflate import DeflateOptions  # noqa: E402
from flask_wamp_bridge.websocket.deflate import DeflateParams  # noqa: E402
from flask_wamp_bridge.websocket.deflate import Deflater  # noqa: E402
from flask_wamp_bridge.websocket.deflate import Inflater  # noqa: E402

KEY = os.urandom(4)
CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"


def people(count: int) -> list[dict[str, t.Any]]:
    """Rows as an app returns them: ids, names, e-mails, flags, numbers, timestamps."""
    return [
        {"id": 1000 + i, "name": f"User {i}", "email": f"user{i}@example.com", "role": "member" if i % 4 else "admin",
         "online": i % 3 == 0, "score": round(i * 1.37, 2), "last_seen": f"2026-12-05T19:{i % 60:02d}:00Z"}
        for i in range(count)
    ]


def messages() -> dict[str, bytes]:
    """WAMP JSON messages a browser receives, about 128 B to 64 KiB."""
    def event(rows: int) -> bytes:
        return json.dumps([36, 5512315355, 4429313566, {}, [people(rows)]], separators=(",", ":")).encode()

    result_4k = json.dumps([50, 7814135, {}, [people(26)]], separators=(",", ":")).encode()
    return {
        "EVENT 1 row": event(1),
        "EVENT 2 rows": event(2),
        "EVENT 3 rows": event(3),
        "EVENT 7 rows": event(7),
        "RESULT 26 rows (4 KiB)": result_4k,
        "EVENT 26 rows (4 KiB)": event(26),
        "EVENT 400 rows (64 KiB)": event(400),
    }


def variants(data: bytes, count: int = 64) -> t.Callable[[], bytes]:
    """The next of ``count`` same-sized copies of ``data`` differing in their last bytes.

    ``Deflater`` reuses its output for the same bytes sent again (fan-out); these
    are all different, so every call compresses.
    """
    copies = [data[:-4] + b"%04d" % i for i in range(count)]
    state = {"i": 0}

    def next_one() -> bytes:
        state["i"] = (state["i"] + 1) % count
        return copies[state["i"]]
    return next_one


def per_call(fn: t.Callable[[], t.Any], budget: float = 0.3) -> float:
    """Seconds per call, best of 5 runs of about ``budget`` / 5 seconds."""
    number = max(1, int(budget / 5 / max(timeit.timeit(fn, number=3) / 3, 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def bench_wire() -> None:
    print("1. bytes on the wire, one frame from the worker (header included), deflate at level 1 (the default)")
    print(f"{'message':<36}{'plain':>8}{'deflate':>9}{'ratio':>7}{'compress µs':>13}{'inflate µs':>12}")
    params = DeflateParams()
    deflater = Deflater(params, threshold=0)  # the default level, 1
    inflater = Inflater(params, None)
    for name, data in messages().items():
        plain = len(_frames.encode_frame(_frames.OP_TEXT, data))
        payload, _ = deflater.compress(data)
        compressed = len(_frames.encode_header(_frames.OP_TEXT | _frames.RSV1, len(payload))) + len(payload)
        fresh = variants(data)
        squeeze = per_call(lambda: deflater.compress(fresh()))  # noqa: B023
        inflate = per_call(lambda: inflater.decompress(payload))  # noqa: B023
        print(f"{name + f' ({len(data)} B)':<36}{plain:>8}{compressed:>9}{compressed / plain:>7.2f}"
              f"{squeeze * 1e6:>13.1f}{inflate * 1e6:>12.1f}")


def side_by_side(fns: dict[str, t.Callable[[], t.Any]], rounds: int = 7, budget: float = 0.05) -> dict[str, float]:
    """Seconds per call of each, measured in turns (round by round) so that the machine's load hits all alike."""
    numbers = {name: max(1, int(budget / max(timeit.timeit(fn, number=3) / 3, 1e-7))) for name, fn in fns.items()}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], timeit.timeit(fn, number=numbers[name]) / numbers[name])
    return best


def bench_cpu() -> None:
    data = messages()["EVENT 26 rows (4 KiB)"]
    print(f"\n2. worker CPU per {len(data)}-byte JSON message, microseconds (ratio to the plain frame)")

    def deflated(level: int) -> t.Callable[[], bytes]:
        deflater = Deflater(DeflateParams(), threshold=0, level=level)
        fresh = variants(data)

        def send() -> bytes:
            payload, _ = deflater.compress(fresh())
            return _frames.encode_header(_frames.OP_TEXT | _frames.RSV1, len(payload)) + payload
        return send

    def full_window() -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    sends = {
        "send, plain frame": lambda: _frames.encode_frame(_frames.OP_TEXT, data),
        "send, deflate level 1 (window to fit)": deflated(1),
        "send, deflate level 6 (window to fit)": deflated(6),
        "send, deflate level 9 (window to fit)": deflated(9),
        "send, zlib level 6, full 32 KiB window": full_window,
    }
    costs = side_by_side(sends)
    plain_send = costs["send, plain frame"]
    for name, fn in sends.items():
        print(f"  {name:<44}{costs[name] * 1e6:8.2f}  {costs[name] / plain_send:5.1f}x  ({len(fn())} B)")

    copies = [bytes(bytearray(data)) for _ in range(1000)]  # one EVENT as 1,000 relays receive it
    distinct = [data[:-8] + b"%08d" % i for i in range(1000)]  # 1,000 different EVENTs
    deflaters = [Deflater(DeflateParams(), threshold=0) for _ in range(1000)]
    costs = side_by_side({"same": lambda: [d.compress(m) for d, m in zip(deflaters, copies, strict=True)],
                          "distinct": lambda: [d.compress(m) for d, m in zip(deflaters, distinct, strict=True)]},
                         rounds=3, budget=0.3)
    print(f"  {'fan-out: one EVENT to 1,000 sockets, per socket':<44}{costs['same'] * 1e3:8.2f}  "
          f"(1,000 different EVENTs: {costs['distinct'] * 1e3:.2f})")

    noise = os.urandom(1 << 20)
    costs = side_by_side({"gives up": lambda: Deflater(DeflateParams()).compress(noise),
                          "zlib": lambda: zlib.compressobj(1, zlib.DEFLATED, -15).compress(noise)}, rounds=3)
    print(f"  {'send 1 MiB random: Deflater (gives up)':<44}{costs['gives up'] * 1e6:8.0f}  "
          f"(zlib level 1 on all of it: {costs['zlib'] * 1e6:.0f})")

    plain_frame = _frames.encode_frame(_frames.OP_TEXT, data, KEY)
    payload, _ = Deflater(DeflateParams(), threshold=0).compress(data)
    packed_frame = _frames.encode_header(_frames.OP_TEXT | _frames.RSV1, len(payload), KEY) + _frames.mask(payload, KEY)
    plain_parser = _frames.FrameParser("server", 1 << 20)
    packed_parser = _frames.FrameParser("server", 1 << 20)
    packed_parser.inflater = Inflater(DeflateParams(), 1 << 20)
    assert plain_parser.feed(plain_frame) == packed_parser.feed(packed_frame) == [_frames.Message(data.decode())]
    costs = side_by_side({"plain": lambda: plain_parser.feed(plain_frame),
                          "packed": lambda: packed_parser.feed(packed_frame)})
    print(f"  {'receive, plain masked frame (unmask, UTF-8)':<44}{costs['plain'] * 1e6:8.2f}    1.0x")
    print(f"  {f'receive, compressed ({len(packed_frame)} B, + inflate)':<44}{costs['packed'] * 1e6:8.2f}  "
          f"{costs['packed'] / costs['plain']:5.1f}x")


class Connections:
    """Idle server WebSockets after one 4 KiB message each way; the peers are plain sockets."""

    def __init__(self) -> None:
        self.sockets: list[t.Any] = []
        self.kept: list[WebSocket] = []
        self.message = messages()["EVENT 26 rows (4 KiB)"]
        self.packed, _ = Deflater(DeflateParams(), threshold=0).compress(self.message)

    def add_sockets(self) -> tuple[t.Any, t.Any]:
        browser, leg = gsocket.socketpair()
        self.sockets += [browser, leg]
        return browser, leg

    def add(self, mode: str) -> None:
        browser, leg = self.add_sockets()
        offer = {"HTTP_SEC_WEBSOCKET_EXTENSIONS": CHROMIUM_OFFER} if mode != "plain" else {}
        ws = WebSocket(leg, role="server", environ=offer, accept_handler=lambda subprotocol, headers: None)
        ws.accept(max_message_size=1 << 20, ping_interval=25.0, idle_timeout=60.0, send_timeout=10.0,
                  deflate=DeflateOptions() if mode != "plain" else None)
        if mode == "takeover":  # what a server that keeps zlib contexts holds (the bridge never agrees to it)
            params = DeflateParams(server_no_context_takeover=False, client_no_context_takeover=False)
            ws._writer.deflater = Deflater(params)
            ws._parser.inflater = Inflater(params, 1 << 20)
        if mode == "plain":
            browser.sendall(_frames.encode_frame(_frames.OP_TEXT, self.message, KEY))
        else:
            browser.sendall(_frames.encode_header(_frames.OP_TEXT | _frames.RSV1, len(self.packed), KEY)
                            + _frames.mask(self.packed, KEY))
        assert ws.receive() == self.message.decode()
        ws.send(self.message.decode())
        gevent.sleep(0)
        browser.recv(1 << 16)
        self.kept.append(ws)

    def close(self) -> None:
        for ws in self.kept:
            ws.abort(1006, "bench over")
        for sock in self.sockets:
            sock.close()


def heap_per(add: t.Callable[[], t.Any], count: int) -> float:
    gevent.sleep(0.01)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            add()
        gevent.sleep(0.01)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()


def bench_memory(count: int) -> None:
    print(f"\n3. Python heap per idle server WebSocket ({count} each; socket objects counted out)")
    connections = Connections()
    try:
        for mode in ("plain", "deflate", "takeover"):
            for _ in range(20):
                connections.add(mode)  # warm-up
        sockets_only = heap_per(connections.add_sockets, count)
        plain = heap_per(lambda: connections.add("plain"), count) - sockets_only
        deflate = heap_per(lambda: connections.add("deflate"), count) - sockets_only
        takeover = heap_per(lambda: connections.add("takeover"), max(1, count // 10)) - sockets_only
    finally:
        connections.close()
    print(f"  {'no extension':<44}{plain:9.0f} B")
    print(f"  {'permessage-deflate, no_context_takeover':<44}{deflate:9.0f} B  (+{deflate - plain:.0f} B)")
    print(f"  {'with context takeover (never agreed)':<44}{takeover:9.0f} B  (+{(takeover - plain) / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    options = parser.parse_args()
    bench_wire()
    bench_cpu()
    bench_memory(options.connections)


if __name__ == "__main__":
    main()
