"""Crossbar's CPU per call for each upstream form: which transport and serializer is cheapest for the router.

Not a test. Starts a throw-away Crossbar (the generated config plus RawSocket
transports on a Unix socket and TCP) and one callee process (the RawSocket
codec, msgpack over the Unix socket, echoing its arguments), then calls it
sequentially from this process in each form, one after the other:

- ``ws-json`` / ``ws-msgpack``: WebSocket (masked frames, as the bridge's
  upstream is today) with JSON or msgpack;
- ``rs-tcp-msgpack``, ``rs-unix-msgpack``, ``rs-unix-cbor``, ``rs-unix-json``:
  WAMP RawSocket over TCP or the Unix socket.

Payloads are realistic JSON-like structures (a list of small objects) of
about 64 B, 4 KiB and 300 KB. Crossbar's CPU is read from
``/proc/<pid>/stat`` (user + system, every Crossbar process) before and
after each run; each row also gives what translating the payload's CALL from
JSON to msgpack and its RESULT back cost the bridge (in this process). Ratios are against
``ws-json``, the browser's usual form. Run from the repository root::

    .venv/bin/python bench/bench_upstream.py [--calls 1000] [--big-calls 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_AUTHID = "bench"
BENCH_SECRET = "bench-secret-not-for-production"
PEER_SECRET = "bench-peer-secret-not-for-production"
PROCEDURE = "bench.echo"
REALM = "realm1"
FORMS = ("ws-json", "ws-msgpack", "rs-tcp-msgpack", "rs-unix-msgpack", "rs-unix-cbor", "rs-unix-json")
SIZES = {"64 B": 64, "4 KiB": 4096, "300 KB": 300_000}


def payload(size: int) -> list[t.Any]:
    """A list of small objects whose JSON is about ``size`` bytes (at least one item)."""
    items: list[t.Any] = []
    while not items or len(json.dumps(items, separators=(",", ":"))) < size - 40:
        n = len(items)
        items.append({"id": n, "name": f"item {n}", "ok": n % 2 == 0, "score": n / 7})
    return items


def auth() -> t.Any:
    from flask_wamp_bridge.wamp.client_auth import WampCraAuth

    return WampCraAuth(BENCH_AUTHID, BENCH_SECRET)


# --- the callee, run as ``bench_upstream.py --role callee --address PATH`` -----------------------


def run_callee(address: str) -> None:
    from flask_wamp_bridge.testing.rawsocket_client import RawSocketClient

    client = RawSocketClient(address, "msgpack", timeout=None)
    client.join(REALM, auth())
    client.send([64, 1, {}, PROCEDURE])
    assert client.receive()[0] == 65, "could not register"
    print("ready", flush=True)
    while True:
        message = client.receive()
        if message[0] == 68:
            client.send([70, message[1], {}, *message[4:5]])


# --- callers ----------------------------------------------------------------------------------


class Caller(t.Protocol):
    serializer: str

    def send(self, data: bytes) -> None: ...

    def receive(self) -> bytes: ...

    def close(self) -> None: ...


class WebSocketCaller:
    def __init__(self, url: str, serializer: str) -> None:
        from flask_wamp_bridge.websocket.client import connect

        self.serializer = serializer
        self.ws = connect(url, subprotocols=[f"wamp.2.{serializer}"])

    def send(self, data: bytes) -> None:
        self.ws.send(data.decode() if self.serializer == "json" else data)

    def receive(self) -> bytes:
        message = self.ws.receive()
        assert message is not None, "the router closed the WebSocket"
        return message.encode() if isinstance(message, str) else bytes(message)

    def close(self) -> None:
        self.ws.close()


class RawSocketCaller:
    def __init__(self, address: str | tuple[str, int], serializer: str) -> None:
        from flask_wamp_bridge.testing.rawsocket_client import RawSocketClient

        self.serializer = serializer
        self.client = RawSocketClient(address, serializer)

    def send(self, data: bytes) -> None:
        self.client.send_bytes(data)

    def receive(self) -> bytes:
        return self.client.receive_bytes()

    def close(self) -> None:
        self.client.close()


def join(caller: Caller) -> None:
    from flask_wamp_bridge.testing.rawsocket_client import dumps
    from flask_wamp_bridge.testing.rawsocket_client import loads

    login = auth()
    hello = {"roles": {"caller": {}}, "authmethods": list(login.authmethods), "authid": login.authid}
    caller.send(dumps(caller.serializer, [1, REALM, hello]))
    reply = loads(caller.serializer, caller.receive())
    if reply[0] == 4:
        caller.send(dumps(caller.serializer, [5, login.respond(reply[1], reply[2]), {}]))
        reply = loads(caller.serializer, caller.receive())
    assert reply[0] == 2, f"not welcomed: {reply}"


def calls(caller: Caller, args_: list[t.Any], count: int, first_request: int) -> None:
    """``count`` sequential CALLs of the echo; each answer is checked for its request id."""
    from flask_wamp_bridge.testing.rawsocket_client import dumps
    from flask_wamp_bridge.testing.rawsocket_client import loads

    for request in range(first_request, first_request + count):
        caller.send(dumps(caller.serializer, [48, request, {}, PROCEDURE, [args_]]))
        reply = loads(caller.serializer, caller.receive())
        assert reply[0] == 50 and reply[1] == request, f"unexpected answer {reply[:3]}"


def crossbar_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by Crossbar: ``pid`` and its children (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def translate_cost(items: list[t.Any], rounds: int) -> tuple[float, float]:
    """Microseconds to translate one CALL with ``items`` from JSON (already decoded) to msgpack,
    and its RESULT from msgpack to JSON."""
    import msgpack

    from flask_wamp_bridge.wamp.messages import serializer_for
    from flask_wamp_bridge.wamp.translate import translate

    text = json.dumps([48, 1, {}, PROCEDURE, [items]], separators=(",", ":"))
    json_serializer = serializer_for("wamp.2.json")
    start = time.process_time()
    for _ in range(rounds):
        translate(text, "json", "msgpack", json_serializer.loads(text))
    decode_and_translate = time.process_time() - start
    start = time.process_time()
    for _ in range(rounds):
        json_serializer.loads(text)
    decode_only = time.process_time() - start
    result = msgpack.packb([50, 1, {}, [items]], use_bin_type=True)
    start = time.process_time()
    for _ in range(rounds):
        translate(result, "msgpack", "json")
    down = time.process_time() - start
    return max(0.0, decode_and_translate - decode_only) / rounds * 1e6, down / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per form at 64 B and 4 KiB")
    parser.add_argument("--big-calls", type=int, default=5, help="calls per form at 300 KB")
    parser.add_argument("--role", choices=("orchestrate", "callee"), default="orchestrate")
    parser.add_argument("--address", default="")
    args = parser.parse_args()
    if args.role == "callee":
        run_callee(args.address)
        return
    if not 1 <= args.calls <= 100_000 or not 1 <= args.big_calls <= 100:
        parser.error("--calls must be 1..100000 and --big-calls 1..100")
    orchestrate(args)


def orchestrate(args: argparse.Namespace) -> None:
    from flask_wamp_bridge.router.config import make_config
    from flask_wamp_bridge.router.config import with_rawsocket
    from flask_wamp_bridge.router.process import CrossbarProcess
    from flask_wamp_bridge.router.process import find_crossbar
    from flask_wamp_bridge.testing.ports import free_port

    ws_port, rs_port = free_port(), free_port()
    settings = {
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{ws_port}/ws",
        "WAMP_BRIDGE_PEER_SECRET": PEER_SECRET,
        "WAMP_BRIDGE_SERVICES": {BENCH_AUTHID: {"secret": BENCH_SECRET, "role": "backend"}},
        "WAMP_BRIDGE_ROUTER_PING_INTERVAL": 0,
        "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE": 1 << 22,
    }
    with tempfile.TemporaryDirectory(prefix="bench-upstream-") as cbdir:
        unix = os.path.join(cbdir, "router.sock")
        config = with_rawsocket(make_config(settings), path=unix, port=rs_port)
        router = CrossbarProcess(config, cbdir, crossbar=find_crossbar())
        print(f"starting Crossbar on {router.url} ...", flush=True)
        router.start(120)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        callee = subprocess.Popen(
            [sys.executable, __file__, "--role", "callee", "--address", unix],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        try:
            assert callee.stdout is not None
            if callee.stdout.readline().strip() != "ready":
                raise SystemExit("the callee did not start")
            assert router.pid is not None
            results = measure(router.url, unix, ("127.0.0.1", rs_port), router.pid, args)
        finally:
            callee.terminate()
            callee.wait(10)
            router.stop()
    report(results, args)


def open_caller(form: str, url: str, unix: str, tcp: tuple[str, int]) -> Caller:
    transport, *rest = form.split("-")
    serializer = rest[-1]
    if transport == "ws":
        return WebSocketCaller(url, serializer)
    return RawSocketCaller(unix if rest[0] == "unix" else tcp, serializer)


def measure(url: str, unix: str, tcp: tuple[str, int], pid: int, args: argparse.Namespace,
            ) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {size: {} for size in SIZES}
    for size_name, size in SIZES.items():
        items = payload(size)
        count = args.big_calls if size > 100_000 else args.calls
        for form in FORMS:
            caller = open_caller(form, url, unix, tcp)
            try:
                join(caller)
                calls(caller, items, min(count, 20), 1)  # warm up
                before = crossbar_cpu(pid)
                calls(caller, items, count, 1000)
                results[size_name][form] = (crossbar_cpu(pid) - before) / count * 1e6
            finally:
                caller.close()
            time.sleep(0.2)  # let Crossbar finish the session's teardown outside the next window
        up, down = translate_cost(items, max(3, min(200, count)))
        results[size_name]["translate up"], results[size_name]["translate down"] = up, down
    return results


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\nCrossbar CPU per call (us), {args.calls} calls at 64 B / 4 KiB, {args.big_calls} at 300 KB; "
          "ratio to ws-json in ()")
    header = f"{'form':18}" + "".join(f"{name:>22}" for name in SIZES)
    print(header)
    for form in FORMS:
        row = f"{form:18}"
        for size_name in SIZES:
            value, base = results[size_name][form], results[size_name]["ws-json"]
            ratio = value / base if base else float("nan")
            row += f"{value:>14.0f} ({ratio:4.2f}x)"
        print(row)
    print("bridge CPU per message (us) to translate")
    for key, label in (("translate up", "CALL json->msgpack"), ("translate down", "RESULT msgpack->json")):
        print(f"{label:18}" + "".join(f"{results[s][key]:>14.1f}" + " " * 8 for s in SIZES))


if __name__ == "__main__":
    main()
