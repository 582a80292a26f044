"""A TCP proxy on 127.0.0.1 for fault tests: forwards both directions, and can stop forwarding one of them.

``TcpProxy(target_port)`` listens on a free port. :meth:`TcpProxy.hold` stops
forwarding one direction of every connection open now (``"down"``: target to
client, ``"up"``: client to target): the bytes stay unread in the kernel, as on
a link that silently died in that direction, while the connection stays open.
Connections made later forward normally. Threads, not greenlets: it runs beside
gevent code in the test process and keeps going while that code blocks.
"""

from __future__ import annotations

import socket
import threading
import typing as t

__all__ = ["TcpProxy"]


class _Link:
    def __init__(self, client: socket.socket, target: socket.socket) -> None:
        self.client = client
        self.target = target
        self.held = {"up": threading.Event(), "down": threading.Event()}

    def pipe(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        held = self.held[direction]
        try:
            while True:
                if held.is_set():
                    threading.Event().wait(0.05)
                    continue
                data = source.recv(65536)
                if not data:
                    break
                while held.is_set():  # held in the middle: this chunk waits too
                    threading.Event().wait(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if not held.is_set():
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


class TcpProxy:
    """Forward 127.0.0.1:``port`` to 127.0.0.1:``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.links: list[_Link] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                target = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            target.settimeout(None)
            link = _Link(client, target)
            self.links.append(link)
            threading.Thread(target=link.pipe, args=(client, target, "up"), daemon=True).start()
            threading.Thread(target=link.pipe, args=(target, client, "down"), daemon=True).start()

    def hold(self, direction: t.Literal["up", "down"], links: t.Sequence[_Link] | None = None) -> None:
        """Stop forwarding ``direction`` on ``links`` (default: every connection open now)."""
        for link in list(self.links) if links is None else links:
            link.held[direction].set()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for link in self.links:
            for sock in (link.client, link.target):
                try:
                    sock.close()
                except OSError:
                    pass
