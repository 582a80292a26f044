"""A blocking WAMP RawSocket client for tests and benchmarks: the sans-IO codec over a plain socket.

It sends and receives WAMP messages as bytes or as lists (encoded and decoded
with plain json/msgpack/cbor2, without autobahn's binary-string convention,
so a test sees exactly what is on the wire). Not for production: no
reconnect, no concurrency, one message at a time.
"""

from __future__ import annotations

import json
import os
import socket
import typing as t

import cbor2
import msgpack

from ..errors import ConnectError
from ..errors import ConnectionClosed
from ..wamp import rawsocket as _rs
from ..wamp.client_auth import ClientAuth

__all__ = ["RawSocketClient", "dumps", "loads"]


def dumps(serializer: str, message: t.Any) -> bytes:
    """Encode ``message`` plainly in ``serializer``."""
    if serializer == "json":
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if serializer == "msgpack":
        return t.cast(bytes, msgpack.packb(message, use_bin_type=True))
    return cbor2.dumps(message)


def loads(serializer: str, data: bytes) -> t.Any:
    """Decode ``data`` plainly from ``serializer`` (JSON ``"\\u0000..."`` strings stay strings)."""
    if serializer == "json":
        return json.loads(data.decode("utf-8"))
    if serializer == "msgpack":
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    return cbor2.loads(data)


class RawSocketClient:
    """One RawSocket connection to a router.

    :param address: a Unix socket path, or ``(host, port)`` for TCP.
    :param serializer: json, msgpack or cbor.
    """

    def __init__(
        self,
        address: str | os.PathLike[str] | tuple[str, int],
        serializer: str = "msgpack",
        *,
        timeout: float | None = 10.0,
        max_length: int = _rs.MAX_LENGTH,
    ) -> None:
        self.serializer = serializer
        self._conn = _rs.RawSocket(_rs.Role.CLIENT, serializer, max_length)
        try:
            if isinstance(address, tuple):
                self.sock = socket.create_connection(address, timeout=timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(os.fspath(address))
        except OSError as exc:
            raise ConnectError(f"cannot reach the RawSocket transport at {address!r}: {exc}") from exc
        self.sock.sendall(self._conn.initiate())
        event = self._next()
        assert isinstance(event, _rs.Handshake)
        self.handshake = event
        self._request = 0

    def _next(self) -> _rs.Event:
        while True:
            event = self._conn.next_event()
            if isinstance(event, (_rs.Handshake, _rs.Message, _rs.Ping, _rs.Pong)):
                return event
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError as exc:
                raise ConnectionClosed("the router reset the RawSocket connection") from exc
            if not data:
                raise ConnectionClosed("the router closed the RawSocket connection")
            self._conn.receive_data(data)

    def send_bytes(self, payload: bytes) -> None:
        self.sock.sendall(self._conn.send(payload))

    def send(self, message: list[t.Any]) -> None:
        self.send_bytes(dumps(self.serializer, message))

    def send_frame(self, frame: bytes) -> None:
        """Raw bytes on the socket, unframed (to test what a router does with a bad frame)."""
        self.sock.sendall(frame)

    def receive_bytes(self) -> bytes:
        """The next message's bytes (PINGs are answered, PONGs skipped)."""
        while True:
            event = self._next()
            if isinstance(event, _rs.Ping):
                self.sock.sendall(self._conn.data_to_send())
            elif isinstance(event, _rs.Message):
                return event.data

    def receive(self) -> list[t.Any]:
        return t.cast(list[t.Any], loads(self.serializer, self.receive_bytes()))

    def next_request(self) -> int:
        self._request += 1
        return self._request

    def join(self, realm: str, auth: ClientAuth) -> list[t.Any]:
        """HELLO (answering one CHALLENGE); returns WELCOME, raises :class:`ConnectionClosed` on ABORT."""
        details: dict[str, t.Any] = {
            "roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}},
            "authmethods": list(auth.authmethods),
        }
        if auth.authid is not None:
            details["authid"] = auth.authid
        self.send([1, realm, details])
        reply = self.receive()
        if reply[0] == 4:
            self.send([5, auth.respond(reply[1], reply[2]), {}])
            reply = self.receive()
        if reply[0] != 2:
            raise ConnectionClosed(f"the router did not welcome us: {reply!r}", reason=str(reply[-1]))
        return reply

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> list[t.Any]:
        """A CALL; returns the RESULT or ERROR message (as a list)."""
        request = self.next_request()
        self.send([48, request, {}, procedure, list(args), kwargs])
        while True:
            reply = self.receive()
            if reply[0] in (50, 8) and reply[1 if reply[0] == 50 else 2] == request:
                return reply

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSocketClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
