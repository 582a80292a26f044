"""Run Crossbar.io for a generated config: :class:`CrossbarProcess` and :func:`find_crossbar`.

:class:`CrossbarProcess` runs ``crossbar start`` as a subprocess and waits until
the router welcomes a real WAMP session. The config generation itself is pure
and lives in :mod:`flask_wamp_bridge.router.config`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

from ..errors import ConfigError
from ..errors import ConnectError
from ..errors import RemoteProtocolError
from ..wamp.client_auth import WampCraAuth
from ..wamp.messages import MessageType
from ..wamp.messages import serializer_for
from ..websocket import frames as _frames
from ..websocket import handshake
from .config import make_config
from .config import save_config

__all__ = [
    "CROSSBAR_ENV",
    "INSTALL_HINT",
    "find_crossbar",
    "CrossbarProcess",
]

#: Environment variable naming the ``crossbar`` executable (checked first by :func:`find_crossbar`).
CROSSBAR_ENV = "WAMP_BRIDGE_CROSSBAR"

#: How a pip user gets Crossbar into the app's own environment.
INSTALL_HINT = 'pip install "Flask-WAMP-Bridge[router]"'


def find_crossbar() -> str:
    """Path of the ``crossbar`` executable.

    Looks at ``$WAMP_BRIDGE_CROSSBAR``, then next to the running Python (the
    app's own environment, where ``pip install "Flask-WAMP-Bridge[router]"``
    puts it), then ``./.crossbar-venv/bin/crossbar`` (the repository's own
    setup), then ``crossbar`` on ``PATH``.

    :raises ConfigError: none found; the message names the pip command.
    """
    env = os.environ.get(CROSSBAR_ENV)
    if env:
        if _is_executable(Path(env)):
            return env
        raise ConfigError(f"${CROSSBAR_ENV} is {env!r}, which is not an executable file: fix or unset it")
    candidates = (
        Path(sys.executable).parent / "crossbar",  # not resolved: a venv's python is a symlink
        Path.cwd() / ".crossbar-venv" / "bin" / "crossbar",
    )
    for candidate in candidates:
        if _is_executable(candidate):
            return str(candidate)
    found = shutil.which("crossbar")
    if found:
        return found
    raise ConfigError(
        f"Crossbar.io was not found: install it into this environment with `{INSTALL_HINT}` "
        f"(Python >= 3.11), or set ${CROSSBAR_ENV} to the path of a crossbar executable"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


class _Probe(t.NamedTuple):
    host: str
    port: int
    path: str
    realm: str
    authid: str | None
    secret: str | None


def _probe_target(config: t.Mapping[str, t.Any]) -> _Probe:
    """Where and as whom to test that a config's router accepts sessions."""
    try:
        worker = next(w for w in config["workers"] if w.get("type") == "router")
        realm = worker["realms"][0]["name"]
        transport = worker["transports"][0]
        endpoint = transport["endpoint"]
        if transport["type"] == "web":
            segment, websocket = next((p, s) for p, s in transport["paths"].items() if s["type"] == "websocket")
            path = "/" if segment == "/" else f"/{segment}"
        else:
            path, websocket = "/", transport
        port = int(endpoint["port"])
        interface = endpoint.get("interface", "127.0.0.1")
    except (KeyError, IndexError, StopIteration, TypeError, ValueError) as exc:
        raise ConfigError(
            "the Crossbar config needs a router worker with a realm and a websocket (or web) transport first "
            f"in its lists: {exc!r}"
        ) from exc
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(interface, interface)
    users = websocket.get("auth", {}).get("wampcra", {}).get("users", {})
    for authid, user in users.items():
        return _Probe(host, port, path, realm, authid, user["secret"])
    return _Probe(host, port, path, realm, None, None)


def _url(probe: _Probe) -> str:
    host = f"[{probe.host}]" if ":" in probe.host else probe.host
    return f"ws://{host}:{probe.port}{probe.path}"


class _NotReady(Exception):
    pass

_JSON = serializer_for("wamp.2.json")


class _ProbeSocket:
    """A blocking WAMP-over-WebSocket client leg, just enough to open one session."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._parser = _frames.FrameParser("client", max_message_size=1 << 20)
        self._pending: list[t.Any] = []

    def send(self, message: list[t.Any]) -> None:
        payload = t.cast(str, _JSON.dumps(message)).encode("utf-8")
        self._sock.sendall(_frames.encode_frame(_frames.OP_TEXT, payload, os.urandom(4)))

    def receive(self) -> list[t.Any]:
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, _frames.Message) and isinstance(event.data, str):
                    return _JSON.loads(event.data)
                if isinstance(event, (_frames.Close, _frames.Failure)):
                    raise _NotReady("the router closed the WebSocket")
            data = self._sock.recv(65536)
            if not data:
                raise _NotReady("connection closed")
            self._pending.extend(self._parser.feed(data))


def _probe_session(probe: _Probe, timeout: float) -> None:
    """Open one WAMP session (and close it again), or raise :class:`_NotReady` / :class:`ConnectError`."""
    with socket.create_connection((probe.host, probe.port), timeout=timeout) as sock:
        key = handshake.make_key()
        sock.sendall(handshake.build_request(probe.path, f"{probe.host}:{probe.port}", key,
                                             subprotocols=["wamp.2.json"]))
        head = b""
        while (parts := handshake.split_head(head)) is None:
            chunk = sock.recv(1)  # byte by byte: nothing after the head may be consumed here
            if not chunk:
                raise _NotReady("connection closed during the handshake")
            head += chunk
        head = parts[0]
        if handshake.parse_response(head).status != 101:
            raise _NotReady(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        handshake.check_response(head, key, ["wamp.2.json"], url=_url(probe))
        leg = _ProbeSocket(sock)
        details: dict[str, t.Any] = {"roles": {"caller": {}}}
        if probe.authid is not None:
            details.update(authmethods=["wampcra"], authid=probe.authid)
        leg.send([MessageType.HELLO, probe.realm, details])
        while True:
            message = leg.receive()
            if message[0] == MessageType.WELCOME:
                leg.send([MessageType.GOODBYE, {}, "wamp.close.close_realm"])
                try:
                    leg.receive()  # the router's GOODBYE
                except (OSError, _NotReady, RemoteProtocolError):
                    pass
                return
            if message[0] == MessageType.CHALLENGE:
                if probe.secret is None:  # no credentials: a challenge shows the realm is served
                    return
                signature = WampCraAuth(probe.authid or "", probe.secret).respond("wampcra", message[2])
                leg.send([MessageType.AUTHENTICATE, signature, {}])
            elif message[0] == MessageType.ABORT:  # the router is up and said no
                raise ConnectError(
                    f"Crossbar refused the readiness session as {probe.authid!r} in realm {probe.realm!r}: "
                    f"{message[2]} {message[1].get('message', '')}".rstrip()
                )


class CrossbarProcess:
    """One ``crossbar start`` subprocess for a generated (or given) config.

    :param settings_or_config: ``WAMP_BRIDGE_*`` settings (passed to
        :func:`make_config`) or a ready Crossbar config dict (has ``"workers"``).
    :param cbdir: the node directory; ``config.json`` and the log go there.
    :param crossbar: the executable; default :func:`find_crossbar`.

    Crossbar runs in its own process group; :meth:`stop` ends only that group.
    """

    def __init__(
        self,
        settings_or_config: t.Mapping[str, t.Any],
        cbdir: str | os.PathLike[str],
        crossbar: str | None = None,
    ) -> None:
        if "workers" in settings_or_config:
            self.settings: dict[str, t.Any] | None = None
            self.config = dict(settings_or_config)
        else:
            self.settings = dict(settings_or_config)
            self.config = make_config(self.settings)
        self.cbdir = Path(cbdir)
        self._crossbar = crossbar
        self._probe = _probe_target(self.config)
        self._proc: subprocess.Popen[bytes] | None = None
        #: Path of the file that captures Crossbar's output (appended to on restart).
        self.log = self.cbdir / "crossbar.log"

    @property
    def url(self) -> str:
        """The router's WebSocket URL (as a client on this host reaches it)."""
        return _url(self._probe)

    @property
    def realm(self) -> str:
        return self._probe.realm

    @property
    def pid(self) -> int | None:
        """PID of the running Crossbar node controller, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, timeout: float = 60.0) -> None:
        """Start Crossbar and return once the router has welcomed a WAMP session.

        :raises ConnectError: it exited or did not accept a session within ``timeout`` seconds.
        :raises ConfigError: no crossbar executable (see :func:`find_crossbar`).
        """
        if self.pid is not None:
            return
        self.stop()  # reap a node that exited by itself
        crossbar = self._crossbar or find_crossbar()
        save_config(self.config, self.cbdir / "config.json")
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [crossbar, "start", "--cbdir", str(self.cbdir), "--color", "false", "--loglevel", "info"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        reason = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ConnectError(f"Crossbar exited with code {code} while starting; see {self.log}:\n{self._tail()}")
            try:
                _probe_session(self._probe, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                return
            except (OSError, _NotReady, RemoteProtocolError) as exc:
                reason = str(exc) or type(exc).__name__
            except ConnectError:
                self.stop()
                raise
            if time.monotonic() >= deadline:
                self.stop()
                raise ConnectError(
                    f"Crossbar did not accept a WAMP session at {self.url} within {timeout:g} s (last: {reason}); "
                    f"see {self.log}:\n{self._tail()}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Crossbar: SIGTERM to its PID, SIGKILL to its process group after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not _wait_unreaped(proc.pid, timeout):
                _killpg(proc.pid)
                _wait_unreaped(proc.pid, timeout)
            # The controller is a zombie now, so its PID (= our group id) cannot be
            # reused: end any worker it left behind in the group, then reap it.
            _killpg(proc.pid)
        proc.wait()

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again on the same port and cbdir."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> CrossbarProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` (our child) to exit without reaping it; True when it has."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if result is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
