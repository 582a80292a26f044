"""Test an app through ``/wamp`` as a browser would: :class:`BridgeServer` and :class:`BridgeClient`.

:class:`BridgeServer` serves a Flask app object with a real gunicorn and the
bridge's worker (``-k flask_wamp_bridge.worker``), forked from the test process
so the app needs no import path; :class:`BridgeClient` keeps cookies like a
browser, talks HTTP to the app (``login``, ``get``, ``post``) and joins its WAMP
endpoint with that cookie and the app's own ``Origin`` (``call``, ``subscribe``,
``publish``). The pytest plugin's ``bridge_client`` fixture builds both.
"""

from __future__ import annotations

import gc
import http.cookiejar
import json
import os
import signal
import sys
import threading
import time
import traceback
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from ..errors import BridgeError
from ..errors import ConnectError
from .ports import free_port

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

    from .client import WampClient

__all__ = ["BridgeServer", "BridgeClient", "HttpResponse", "Events"]

_WAIT = 60.0  # gunicorn boots in ~1 s; a busy 2-core machine may need much longer


class BridgeServer:
    """A real gunicorn (``flask_wamp_bridge.worker``) serving ``app`` on 127.0.0.1.

    The app must point at a running router (``app.config.update(router.settings)``
    before ``init_app``). :meth:`start` returns once the page answers and the
    router has the app's registrations and subscriptions (so a call right
    after it finds its procedure). ``tester`` (``(authid, secret)`` of a
    backend principal on that router) is used for that check. gunicorn's output
    goes to :attr:`log`. POSIX only (it forks).
    """

    def __init__(
        self,
        app: Flask,
        log: str | os.PathLike[str],
        *,
        tester: tuple[str, str],
        workers: int = 1,
        port: int | None = None,
        options: t.Mapping[str, t.Any] | None = None,
    ) -> None:
        self.app = app
        self.log = Path(log)
        self.tester = tester
        self.workers = workers
        self.port = port or free_port()
        self.options = dict(options or {})
        self.pid: int | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = _WAIT) -> BridgeServer:
        """Fork gunicorn and wait until the app serves and its peer has joined."""
        if self.pid is not None:
            return self
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # Python 3.12+ warns about fork in a process with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _run_gunicorn(self.app, self.log, self._gunicorn_options())
        self.pid = pid
        try:
            deadline = time.monotonic() + timeout
            self._wait(lambda: _answers(self.url), deadline, "answer HTTP")
            self._wait_for_peer(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to gunicorn (WebSockets close with 1001), SIGKILL to its process group if it lingers."""
        pid, self.pid = self.pid, None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                break
            time.sleep(0.05)
        else:  # the master and its workers, then reap the master
            _killpg(pid)
            os.waitpid(pid, 0)

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _gunicorn_options(self) -> dict[str, t.Any]:
        options: dict[str, t.Any] = {
            "bind": f"127.0.0.1:{self.port}",
            "worker_class": "flask_wamp_bridge.worker",
            "workers": self.workers,
            "errorlog": "-",
            "loglevel": "info",
            "graceful_timeout": 10,
            "control_socket_disable": True,  # gunicorn >= 27
        }
        options.update(self.options)
        return options

    def _wait(self, ready: t.Callable[[], bool], deadline: float, what: str) -> None:
        while not ready():
            assert self.pid is not None
            if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                self.pid = None
                raise ConnectError(f"gunicorn exited while starting; see {self.log}:\n{self._tail()}")
            if time.monotonic() > deadline:
                raise ConnectError(f"the app at {self.url} did not {what} in time; see {self.log}:\n{self._tail()}")
            time.sleep(0.1)

    def _wait_for_peer(self, deadline: float) -> None:
        """Until the router has every procedure and topic of the app's peer, from each worker."""
        from .client import WampClient

        state = self.app.extensions.get("wamp_bridge")
        if state is None:
            return
        wanted = [(h.kind, state.uri_for(h), h.options.get("match", "exact")) for h in state.handlers]
        config = state.settings
        authid, secret = self.tester
        try:
            tester = WampClient(config["WAMP_BRIDGE_ROUTER_URL"], config["WAMP_BRIDGE_REALM"], authid=authid,
                                secret=secret)
        except BridgeError as exc:
            raise ConnectError(
                f"could not log in to the app's router ({config['WAMP_BRIDGE_ROUTER_URL']}) as {authid!r} to see "
                f"the app's peer join: is the app configured with the plugin's wamp_bridge_settings? ({exc})"
            ) from exc
        with tester:
            def joined() -> bool:
                return all(_count(tester, kind, uri, match) >= self.workers for kind, uri, match in wanted)

            self._wait(joined, deadline, "join the router with every procedure and topic")

    def _tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _count(tester: WampClient, kind: str, uri: str, match: str) -> int:
    meta = "registration" if kind == "register" else "subscription"
    found = tester.call(f"wamp.{meta}.lookup", uri, {"match": match})
    if found is None:
        return 0
    return len(tester.call(f"wamp.{meta}.list_{'callees' if kind == 'register' else 'subscribers'}", found))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the worker serves
    except OSError:
        return False


def _killpg(pgid: int) -> bool:
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _run_gunicorn(app: Flask, log: Path, options: dict[str, t.Any]) -> t.NoReturn:  # pragma: no cover - child
    """In the forked child: become a process group leader, log to ``log``, run gunicorn, exit."""
    code = 1
    try:
        gc.collect()  # apps of earlier tests, so their start hooks (peers) do not run in the worker
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        warnings.resetwarnings()  # the test run may turn warnings into errors; not the server's concern
        signal.setitimer(signal.ITIMER_REAL, 0)  # a test timeout alarm is not ours
        from gunicorn.app.base import BaseApplication

        class Server(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                for key, value in options.items():
                    if key in self.cfg.settings:
                        self.cfg.set(key, value)

            def load(self) -> Flask:
                return app

        Server().run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


class HttpResponse(t.NamedTuple):
    """An HTTP answer: ``status``, ``headers``, ``body`` (bytes); :meth:`json` decodes it."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> t.Any:
        return json.loads(self.body)


class Events:
    """The events a :meth:`BridgeClient.subscribe` received, in order: ``(args, kwargs)`` pairs."""

    def __init__(self) -> None:
        self.received: list[tuple[tuple[t.Any, ...], dict[str, t.Any]]] = []
        self._changed = threading.Condition()

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> None:
        with self._changed:
            self.received.append((args, kwargs))
            self._changed.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[tuple[tuple[t.Any, ...], dict[str, t.Any]]]:
        """Wait until at least ``count`` events have come; returns them all.

        :raises TimeoutError: fewer came within ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"{len(self.received)} event(s) arrived, expected {count}")
            return list(self.received)


class BridgeClient:
    """A browser for tests: cookies over HTTP, then a WAMP session through the app's ``/wamp``.

    ::

        client = bridge_client(app)
        client.login(name="ann")               # POST /login, keeps the session cookie
        assert client.call("app.whoami")["authid"] == "ann"

    The WAMP session opens on the first ``call``/``subscribe``/``publish`` (or
    :meth:`join`) with the cookies held then, the serializer given, and the
    app's own origin; :meth:`logout` and :meth:`leave` end it. :attr:`session`
    is the underlying :class:`~flask_wamp_bridge.testing.WampClient`.
    """

    def __init__(self, base_url: str, *, wamp_path: str = "/wamp", realm: str = "realm1",
                 serializer: str = "json", timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.wamp_path = wamp_path
        self.realm = realm
        self.serializer = serializer
        self.timeout = timeout
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.session: WampClient | None = None

    # --- HTTP -------------------------------------------------------------------------

    def request(self, method: str, path: str, *, data: t.Mapping[str, t.Any] | None = None,
                json_body: t.Any = None, headers: t.Mapping[str, str] | None = None) -> HttpResponse:
        """Send a request with the client's cookies (form ``data`` or a ``json_body``); 4xx/5xx are returned."""
        body: bytes | None = None
        all_headers = {"Origin": self.base_url, **(headers or {})}
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base_url + path, data=body, headers=all_headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return HttpResponse(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return HttpResponse(error.code, dict(error.headers), error.read())

    def get(self, path: str, **kwargs: t.Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: t.Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def login(self, path: str = "/login", **form: t.Any) -> HttpResponse:
        """``POST`` the ``form`` to the app's login view; a live WAMP session is left and reopened as the new user.

        :raises AssertionError: the view answered with an error status.
        """
        response = self.post(path, data=form)
        assert response.status < 400, f"POST {path} answered {response.status}: {response.body[:200]!r}"
        self.leave()
        return response

    def logout(self, path: str = "/logout") -> HttpResponse:
        """``POST`` to the app's logout view, then leave the WAMP session (the app's logout ends it anyway)."""
        response = self.post(path)
        self.leave()
        return response

    # --- WAMP through the bridge ------------------------------------------------------

    def join(self) -> WampClient:
        """Open the WAMP session through the app's endpoint (if not open), as the logged-in user."""
        from .client import WampClient

        if self.session is not None and self.session.connected:
            return self.session
        self.leave()
        url = "ws" + self.base_url[len("http"):] + self.wamp_path
        cookie = urllib.request.Request(self.base_url + self.wamp_path)
        self.cookies.add_cookie_header(cookie)
        value = cookie.get_header("Cookie")
        headers = {"Cookie": value} if value else {}
        self.session = WampClient(url, self.realm, secret=None, timeout=self.timeout, serializer=self.serializer,
                                  headers=headers, origin=self.base_url)
        return self.session

    def leave(self) -> None:
        """Close the WAMP session, if any (the next call joins again)."""
        session, self.session = self.session, None
        if session is not None:
            session.close()

    @property
    def authid(self) -> str:
        """The authid the router gave this client's session (joins first)."""
        return self.join().authid

    @property
    def authrole(self) -> str:
        return self.join().authrole

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Call through the bridge; WAMP errors raise :class:`~flask_wamp_bridge.errors.ApplicationError`."""
        return self.join().call(procedure, *args, **kwargs)

    def subscribe(self, topic: str, **options: t.Any) -> Events:
        """Subscribe and return the :class:`Events` collector (``events.wait(1)``)."""
        events = Events()
        self.join().subscribe(topic, events, **options)
        return events

    def publish(self, topic: str, *args: t.Any, **kwargs: t.Any) -> None:
        """Publish through the bridge and wait for the router's acknowledgement."""
        self.join().publish(topic, *args, **kwargs)

    def close(self) -> None:
        self.leave()
