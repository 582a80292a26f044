"""Shared test helpers: free ports, waiting for servers, real gunicorn processes.

::

    with GunicornProcess("tests.apps.ws_app:app", env={"X": "1"}) as server:
        ws = websocket.create_connection(server.ws_url("/echo"))
        ...
        server.stop()          # SIGTERM to the master; returns its exit code

Every process is started by the helper and ended by PID (the master, then
any worker it left behind); nothing else is ever signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

__all__ = [
    "REPO_ROOT",
    "free_port",
    "wait_for_port",
    "wait_until",
    "child_pids",
    "GunicornProcess",
    "raw_handshake",
    "read_until_close",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now, and so is the next one.

    The next one is a router's RawSocket transport when the port is a router's
    (``WAMP_BRIDGE_RAWSOCKET_PORT`` defaults to the router URL's port + 1).
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no two free ports in a row on {host}")


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Wait until something accepts TCP connections on ``host:port``; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


def wait_until(predicate: t.Callable[[], t.Any], timeout: float = 15.0, interval: float = 0.05) -> t.Any:
    """Poll ``predicate`` until it returns a true value (returned); TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s: {predicate!r}")
        time.sleep(interval)


def child_pids(pid: int) -> list[int]:
    """PIDs of the live children of ``pid`` (Linux /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command may contain spaces and parentheses: fields follow the last ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            children.append(int(entry))
    return sorted(children)


def _gunicorn_command() -> list[str]:
    script = Path(sys.executable).with_name("gunicorn")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gunicorn"]


class GunicornProcess:
    """A real ``gunicorn -k flask_wamp_bridge.worker`` serving ``app_spec`` on 127.0.0.1.

    :param app_spec: ``module:variable``, imported with the repository root as cwd.
    :param env: extra environment variables for the server.
    :param workers: number of worker processes.
    :param extra_args: more gunicorn command-line arguments.
    :param worker_class: the ``-k`` value (the bridge worker by default).
    :param probe: on start, wait until a plain HTTP request is answered (turn off for TLS).
    :param host: the address to bind (another host's, inside a network namespace).
    :param port: the port (default: a free one on 127.0.0.1).
    """

    def __init__(
        self,
        app_spec: str,
        *,
        env: t.Mapping[str, str] | None = None,
        workers: int = 1,
        extra_args: t.Sequence[str] = (),
        worker_class: str = "flask_wamp_bridge.worker",
        start_timeout: float = 30.0,
        probe: bool = True,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.app_spec = app_spec
        self.host = host
        self.port = port or free_port()
        self.workers = workers
        self.start_timeout = start_timeout
        self.probe = probe
        self._env = dict(env or {})
        self._args = [
            *_gunicorn_command(),
            "-k",
            worker_class,
            "--no-control-socket",
            "-b",
            f"{self.host}:{self.port}",
            "-w",
            str(workers),
            "--access-logfile",
            "-",
            "--log-level",
            "info",
            *extra_args,
            app_spec,
        ]
        self.log_path = Path(tempfile.gettempdir()) / "fwb-gunicorn-not-started.log"
        self._final_log: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._known_workers: set[int] = set()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> GunicornProcess:
        env = os.environ.copy()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.update(self._env)
        fd, name = tempfile.mkstemp(prefix="fwb-gunicorn-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            self._proc = subprocess.Popen(
                self._args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.host, self.port, self.start_timeout)
            if self.probe:
                self.wait_until_serving(self.start_timeout)
            self.wait_for_workers(self.workers)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self

    def __enter__(self) -> GunicornProcess:
        return self.start()

    def __exit__(self, *exc_info: t.Any) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def worker_pids(self) -> list[int]:
        """The master's live worker processes."""
        pids = child_pids(self.pid)
        self._known_workers.update(pids)
        return pids

    def wait_for_workers(self, count: int, exclude: t.Iterable[int] = (), timeout: float = 30.0) -> list[int]:
        """Wait until ``count`` workers not in ``exclude`` have booted; returns their PIDs."""
        excluded = set(exclude)

        def booted() -> list[int] | None:
            log = self.log()
            pids = [p for p in self.worker_pids() if p not in excluded and f"Booting worker with pid: {p}" in log]
            return pids if len(pids) >= count else None

        return t.cast(list, wait_until(booted, timeout))

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        """Wait until a worker answers an HTTP request (any status)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=5.0) as s:
                    s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    response = b""
                    while chunk := s.recv(65536):  # read to EOF: HTTP/1.0 closes
                        response += chunk
                    if response.startswith(b"HTTP/"):
                        return
            except OSError:
                pass
            if self.returncode is not None:
                raise RuntimeError(f"gunicorn exited with {self.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gunicorn did not serve within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        """Signal the master process."""
        assert self._proc is not None
        self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the master to exit; returns its exit code (TimeoutExpired otherwise)."""
        assert self._proc is not None
        return self._proc.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop the master with ``sig`` and wait; SIGKILL it and its workers if it lingers."""
        proc = self._proc
        if proc is None:
            return None
        workers = set(self._known_workers)
        if proc.poll() is None:
            workers.update(child_pids(proc.pid))
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid in workers:  # workers of this master only; reaped by it or orphaned to init
            try:
                os.kill(pid, 0)
            except OSError:
                continue
            if _parent_of(pid) in (proc.pid, 1) and self._is_ours(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self._final_log is None:
            self._final_log = self.log()
            self.log_path.unlink(missing_ok=True)
        return proc.returncode

    def _is_ours(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            return False
        return f"{self.host}:{self.port}".encode() in cmdline

    # --- output ----------------------------------------------------------------------------

    def log(self) -> str:
        """Everything gunicorn wrote so far (error log and access log); kept after stop()."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 15.0) -> None:
        wait_until(lambda: text in self.log(), timeout)


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def raw_handshake(
    host: str, port: int, path: str, headers: t.Mapping[str, str] | None = None, timeout: float = 10.0
) -> tuple[socket.socket, str, bytes]:
    """A WebSocket handshake over a plain socket, for tests that send hand-made frames.

    Returns ``(sock, response_head, leftover)``: the response head as text and
    any bytes that arrived after it. The caller closes ``sock``.
    """
    from flask_wamp_bridge.websocket import handshake

    request = handshake.build_request(path, f"{host}:{port}", handshake.make_key(), headers=(headers or {}).items())
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(request)
    buf = b""
    while (parts := handshake.split_head(buf)) is None:
        chunk = sock.recv(65536)
        if not chunk:
            parts = buf, b""
            break
        buf += chunk
    head, rest = parts
    return sock, head.decode("latin-1"), rest


def read_until_close(sock: socket.socket, initial: bytes = b"", timeout: float = 10.0) -> tuple[list[t.Any], t.Any]:
    """Read server frames until its close frame or EOF: ``(events before it, Close event or None)``."""
    from flask_wamp_bridge.websocket import frames as _frames

    parser = _frames.FrameParser("client", max_message_size=None)
    events: list[t.Any] = []
    sock.settimeout(timeout)
    data = initial
    while True:
        for event in parser.feed(data):
            if isinstance(event, _frames.Close):
                return events, event
            events.append(event)
        try:
            data = sock.recv(65536)
        except OSError:
            return events, None
        if not data:
            return events, None
