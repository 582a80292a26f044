"""The gunicorn worker: ``gunicorn -k flask_wamp_bridge.worker app:app``.

:class:`BridgeWorker` is gunicorn's gevent pywsgi worker with
:class:`BridgeHandler`, which turns WebSocket upgrade requests into an
*unaccepted* :class:`~.connection.WebSocket` in ``environ['wsgi.websocket']``
and runs the app. Nothing is sent until the app calls ``ws.accept(...)`` (the
101); a refusal is an ordinary HTTP response. Flask-Sockets-style code that
never calls ``accept`` is accepted on its first ``receive()`` or ``send()``.

Capacity: each worker serves at most gunicorn's ``worker_connections``
(default 1000) connections at once, and an open WebSocket holds one of those
slots for its whole life (keep-alive HTTP connections hold one while idle, up
to the handshake timeout). When all slots are taken the worker stops
accepting and new connections wait in the listen backlog. Greenlets the app
spawns itself (e.g. a relay's upstream leg) are not counted. Size it as
``workers * worker_connections >= expected sockets + HTTP concurrency``.

Descriptors: a relayed browser session holds two (its socket and its upstream
to the router). At boot the worker compares ``worker_connections`` with the
``nofile`` limit (:func:`.descriptors.check_budget`): it raises the soft limit
up to the hard one when that is enough, else warns with the numbers and the
fix. Out of descriptors, :class:`BridgeServer` pauses accepting (no busy loop)
and logs the cause once per 10 s; connections wait in the listen backlog.

Shutdown: on SIGTERM, SIGINT or SIGQUIT the worker stops accepting, runs the
shutdown hooks (:func:`._lifecycle.run_shutdown_hooks`) and closes every live
WebSocket with 1001 (or calls its ``on_server_shutdown``) at once, then exits
as soon as its requests are done, instead of waiting out ``graceful_timeout``.
When gunicorn replaces the worker on a SIGHUP reload, or the worker recycles
itself after ``max_requests`` (plus ``max_requests_jitter``) requests, WebSocket
upgrades included, the code is 1012 (service restart), so clients know to reconnect.

Settings (environment, e.g. ``gunicorn --env NAME=value``):
``WAMP_BRIDGE_HANDSHAKE_TIMEOUT`` seconds a client has to send its request
line and headers, on a new or kept-alive connection (default 10).
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
import struct
import sys
import time
import typing as t
import weakref

import gevent
from gevent.pool import Pool
from gunicorn.http.wsgi import base_environ
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import VERSION
from gunicorn.workers.ggevent import GeventPyWSGIWorker
from gunicorn.workers.ggevent import PyWSGIHandler
from gunicorn.workers.ggevent import PyWSGIServer

from ..errors import ConfigError
from . import connection as _websocket
from . import descriptors as _descriptors
from . import handshake
from . import lifecycle as _lifecycle
from . import live as _live
from . import metrics_dir as _metrics_dir
from . import socket_errors

__all__ = ["BridgeHandler", "BridgeServer", "BridgeWorker", "DEFAULT_HANDSHAKE_TIMEOUT"]

#: Seconds a client has to send a complete request head (see WAMP_BRIDGE_HANDSHAKE_TIMEOUT).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
_SHUTDOWN_CLOSE_TIMEOUT = 5.0
_QUICK_CLOSE_TIMEOUT = 1.0


class _HeaderTimeout(ValueError):
    """The request head did not arrive in time (a ValueError: gevent answers it with 400)."""


class BridgeHandler(PyWSGIHandler):  # type: ignore[misc]
    """gunicorn's gevent handler (access log included) plus the WebSocket handshake."""

    _header_timer: t.Any = None
    _websocket: _websocket.WebSocket | None = None

    # --- handshake timeout ---------------------------------------------------------

    def _handshake_timeout(self) -> float:
        return float(getattr(self.server, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT))

    def handle_one_request(self) -> t.Any:
        try:
            return super().handle_one_request()
        finally:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

    def read_requestline(self) -> str:
        timeout = self._handshake_timeout()
        self._header_timer = gevent.Timeout(timeout) if timeout > 0 else None
        if self._header_timer is not None:
            self._header_timer.start()
        try:
            return super().read_requestline()  # type: ignore[no-any-return]
        except gevent.Timeout as exc:
            if exc is not self._header_timer:
                raise
            return ""  # no request line in time: drop the connection silently

    def read_request(self, raw_requestline: str) -> t.Any:
        timer = self._header_timer
        try:
            return super().read_request(raw_requestline)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise _HeaderTimeout(
                f"request headers not received within {self._handshake_timeout():g} s"
            ) from None
        finally:
            if timer is not None:
                timer.cancel()
            self._header_timer = None

    # --- WebSocket upgrade ----------------------------------------------------------------

    def run_application(self) -> None:
        count = getattr(self.server, "count_request", None)
        if count is not None:
            count()
        environ = self.environ
        if not handshake.is_upgrade(environ.get("HTTP_UPGRADE")):
            super().run_application()
            return
        problem = handshake.check_request(self.command, self.request_version, handshake.request_headers(environ))
        if problem is not None:
            self._refuse(problem)
            return
        ws = _websocket.WebSocket(
            self.socket,
            role="server",
            read=self.rfile.read1,
            release_read=self._release_rfile,
            environ=environ,
            accept_handler=self._send_101,
        )
        self._websocket = ws
        environ["wsgi.websocket"] = ws
        environ["wsgi.websocket_version"] = "13"
        try:
            self.result = self.application(environ, self._ws_start_response)
            if not ws.accepted:
                self.process_result()
        except Exception:
            if not ws.accepted:
                raise
            # The 101 is out: no HTTP error page can follow. Log, then close with 1011.
            self._log_error(*sys.exc_info())
            ws.close(1011, "internal server error")
        finally:
            close = getattr(self.result, "close", None)
            self.result = None
            try:
                if close is not None:
                    close()
            finally:
                if ws.accepted:
                    ws.finish_server_session()
                    self.close_connection = True
                else:
                    ws.close()  # never accepted: marks it closed, sends nothing
                    self.close_connection = True  # no keep-alive after a refused upgrade

    def _release_rfile(self) -> None:
        """The WebSocket took what the request's buffered reader held and reads the socket itself from now on:
        close the reader, which frees its 8 KiB buffer for the connection's life (the socket stays open)."""
        rfile = self.rfile
        wsgi_input = getattr(self, "wsgi_input", None)
        body_left = wsgi_input is not None and (
            wsgi_input.chunked_input or wsgi_input.position < (wsgi_input.content_length or 0))
        if rfile is not None and not body_left:  # an unread request body is discarded through it at the end
            rfile.close()

    def _refuse(self, problem: handshake.Refusal) -> None:
        message, extra = problem
        body = (message + "\n").encode("utf-8")
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *extra,
        ]
        self.close_connection = True
        self.start_response("400 Bad Request", headers)
        self.write(body)

    def _ws_start_response(self, status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Any:
        ws = self._websocket
        if ws is not None and ws.accepted:
            # The view returned after a WebSocket session: its response cannot be sent.
            return _discard
        return self.start_response(status, headers, exc_info)

    def _send_101(self, subprotocol: str | None, extra: t.Sequence[tuple[str, str]]) -> None:
        head, encoded = handshake.build_response(self.environ["HTTP_SEC_WEBSOCKET_KEY"], subprotocol, extra)
        # state read by gunicorn's access log
        self.status = b"101 Switching Protocols"
        self._orig_status = "101 Switching Protocols"
        self.code = 101
        self.response_headers = encoded
        # the parsed request (an email.message, ~1 KiB) is in the environ now; the access log reads only its items
        self.headers = _HeaderItems(t.cast(t.Any, self).headers.items())
        self.headers_sent = True
        self.connection_upgraded = True
        self.close_connection = True
        # small frames must not wait for ACKs (Nagle); fails on a unix socket, which has none
        socket_errors.failed(self.socket.setsockopt, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sendall(head)


def _discard(data: bytes) -> None:
    pass


class _HeaderItems(list[tuple[str, str]]):
    """A request's header fields, kept for the access log (``items()``) while a WebSocket connection lasts."""

    __slots__ = ()

    def items(self) -> list[tuple[str, str]]:
        return list(self)


class BridgeServer(PyWSGIServer):  # type: ignore[misc]
    """gunicorn's gevent server, with an accept loop that pauses (and says why) when the process runs out.

    gevent logs a traceback for every failed ``accept()`` and retries after 10 ms, doubling, but drops back
    to 10 ms after any one success: at the ``nofile`` limit, with descriptors freed and taken again by
    reconnecting clients, that is a busy loop of tracebacks. Here an accept that fails for want of a
    resource (:data:`~.descriptors.OUT_OF_DESCRIPTORS`, ENOBUFS, ENOMEM) stops accepting for
    :attr:`accept_pause` seconds (doubling up to :attr:`max_accept_pause` while it keeps failing), and
    logs one line with the cause and the fix per :attr:`log_interval`. Waiting clients stay in the backlog.
    """

    accept_pause = 0.1
    max_accept_pause = 2.0
    log_interval = 10.0
    _resource_errors = frozenset({*_descriptors.OUT_OF_DESCRIPTORS, errno.ENOBUFS, errno.ENOMEM})

    _pause = 0.0
    _failed_at = 0.0
    _logged_at = -1e9
    _suppressed = 0
    _resume: t.Any = None

    def do_read(self) -> t.Any:
        try:
            return super().do_read()
        except OSError as exc:
            if exc.errno not in self._resource_errors:
                raise
            self._pause_accepting(exc)
            return None  # gevent's loop then waits for the listener again: it is not watched meanwhile

    def _pause_accepting(self, exc: OSError) -> None:
        now = time.monotonic()
        recent = now - self._failed_at < self.max_accept_pause * 4
        self._pause = min(self.max_accept_pause, self._pause * 2) if recent and self._pause else self.accept_pause
        self._failed_at = now
        if now - self._logged_at >= self.log_interval:
            what, hint = _descriptors.OS_ERROR_HINTS.get(exc.errno or 0, (str(exc), ""))
            more = f" ({self._suppressed} more since the last line)" if self._suppressed else ""
            limits = _descriptors.nofile_limits()
            self.log.warning("cannot accept connections: %s (%s; nofile limit %s, %d connections open): "
                             "stopped accepting for %.1f s%s; %s", what, exc, limits[0] if limits else "unknown",
                             self.pool.size - self.pool.free_count() if self.pool is not None else -1,
                             self._pause, more, hint)
            self._logged_at = now
            self._suppressed = 0
        else:
            self._suppressed += 1
        self.stop_accepting()
        if self._resume is not None:
            self._resume.close()
        self._resume = self.loop.timer(self._pause)
        self._resume.start(self._accept_again)

    def _accept_again(self) -> None:
        self._resume = None
        if self.started:
            self.start_accepting()

    def close(self) -> None:
        if self._resume is not None:
            self._resume.close()
            self._resume = None
        super().close()


# --- telling a reload from a shutdown ---------------------------------------------------------
#
# gunicorn stops a worker with SIGTERM both on shutdown and when a SIGHUP reload
# replaces it (Arbiter.reload(): app.reload() builds a new Config, spawn_worker()
# constructs the new workers in the master, then manage_workers() SIGTERMs the
# oldest). The worker class is constructed in the master right before each
# fork, so the master can notice the new Config there and record, in memory
# shared with every worker it forked, the age of the first replacement worker.
# A worker that gets SIGTERM while an age above its own is recorded is being
# replaced (1012); otherwise it is shutting down (1001). USR2 re-exec starts a
# new master with its own board, so the old workers see 1001 there.

_board: mmap.mmap | None = None
_board_cfg: weakref.ref[t.Any] | None = None


def _note_spawn(age: int, cfg: t.Any) -> None:
    """In the master: remember which workers a reload replaces."""
    global _board, _board_cfg
    if _board is None:
        _board = mmap.mmap(-1, 8)  # anonymous, MAP_SHARED: inherited by every fork
    if _board_cfg is not None and _board_cfg() is not cfg:
        struct.pack_into("q", _board, 0, age)
    _board_cfg = weakref.ref(cfg)


def _replaced_by_reload(age: int) -> bool:
    return _board is not None and struct.unpack_from("q", _board, 0)[0] > age


class BridgeWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn gevent worker with WebSocket routes and prompt, coded shutdown.

    See the module docstring for capacity (``worker_connections``) and signals.
    """

    wsgi_handler = BridgeHandler
    server_class = BridgeServer

    def __init__(self, age: int, ppid: int, sockets: t.Any, app: t.Any, timeout: t.Any, cfg: t.Any, log: t.Any) -> None:
        super().__init__(age, ppid, sockets, app, timeout, cfg, log)
        if ppid == os.getpid():  # constructed by the arbiter, just before it forks
            _note_spawn(age, cfg)
        self._quick = False
        self._recycled = False
        self._servers: list[t.Any] = []

    @classmethod
    def check_config(cls, cfg: t.Any, log: t.Any) -> None:
        """In the master, before the first fork: the workers' shared metrics folder (see ``metrics_dir``)."""
        _metrics_dir.prepare(cfg, log)

    # signal handlers only set flags: the run loop does the work in a greenlet
    def handle_exit(self, sig: int, frame: t.Any) -> None:
        self.alive = False

    def handle_quit(self, sig: int, frame: t.Any) -> None:
        self._quick = True
        self.alive = False

    def shutdown_code(self) -> int:
        """1012 when a reload or ``max_requests`` replaces this worker, else 1001."""
        return 1012 if self._recycled or _replaced_by_reload(self.age) else 1001

    def count_request(self) -> None:
        """gunicorn's ``max_requests`` (with its jitter): the gevent base never counts requests."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request (max_requests %d): sockets close "
                          "with 1012", self.max_requests)
            self._recycled = True
            self.alive = False

    def run(self) -> None:
        # GeventWorker.run, with a run loop that reacts to stop signals at once
        # and a shutdown that closes WebSockets instead of waiting for them.
        handshake_timeout = _env_seconds("WAMP_BRIDGE_HANDSHAKE_TIMEOUT", DEFAULT_HANDSHAKE_TIMEOUT)
        _descriptors.check_budget(self.worker_connections, self.log)
        _lifecycle.run_start_hooks()
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        for listener in self.sockets:
            listener.setblocking(1)
            environ = base_environ(self.cfg)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": VERSION})
            server = self.server_class(
                listener,
                application=self.wsgi,
                spawn=Pool(self.worker_connections),
                log=self.log,
                handler_class=self.wsgi_handler,
                environ=environ,
                **ssl_args,
            )
            server.handshake_timeout = handshake_timeout
            server.count_request = self.count_request
            server.start()
            self._servers.append(server)

        last_notify = 0.0
        while self.alive:
            now = time.monotonic()
            if now - last_notify >= 1.0:
                self.notify()
                last_notify = now
            gevent.sleep(0.1)  # short, so a stop signal is acted on at once

        code = self.shutdown_code()
        self.log.info("Worker %s stopping: closing WebSockets with %d", self.pid, code)
        close_timeout = _QUICK_CLOSE_TIMEOUT if self._quick else _SHUTDOWN_CLOSE_TIMEOUT
        shutdown = gevent.spawn(self._shutdown, code, close_timeout)
        if self._quick:
            shutdown.join(close_timeout + 1.0)
            self.cfg.worker_int(self)
            return

        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline:
            if shutdown.dead and all(s.pool.free_count() == s.pool.size for s in self._servers):
                return
            if shutdown.dead and _live.live_sockets():
                # a handshake that was in flight was accepted after the first pass
                shutdown = gevent.spawn(_live.shutdown_all, code, close_timeout)
            if time.monotonic() - last_notify >= 1.0:
                self.notify()
                last_notify = time.monotonic()
            gevent.sleep(0.05)
        self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
        for server in self._servers:
            server.stop(timeout=1)

    def _shutdown(self, code: int, close_timeout: float) -> None:
        for server in self._servers:
            server.close()  # stop accepting
        hooks = gevent.spawn(_lifecycle.run_shutdown_hooks, code)
        _live.shutdown_all(code, timeout=close_timeout)
        hooks.join(close_timeout)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value
