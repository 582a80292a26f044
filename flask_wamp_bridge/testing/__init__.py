"""Opt-in pytest plugin: a real Crossbar router and a blocking WAMP client for tests.

Enable it in ``conftest.py``::

    pytest_plugins = ["flask_wamp_bridge.testing"]

Fixtures:

``crossbar_router`` (session scope)
    A :class:`~flask_wamp_bridge.router.process.CrossbarProcess` on a free
    127.0.0.1 port, started from a generated config. It has ``.url``,
    ``.realm``, ``.pid``, ``.restart()``, ``.log`` and ``.settings``: the
    ``WAMP_BRIDGE_*`` mapping that points an app at it (``app.config.update(...)``).
``fresh_crossbar_router`` (function scope)
    The same, private to one test: for tests that stop, kill or restart it.
``crossbar_executable`` (session scope)
    The path of ``crossbar``, e.g. for ``crossbar check``.
``wamp_client``
    A factory, ``wamp_client(router, authid=..., secret=..., ticket=...)``,
    returning a connected :class:`WampClient` (closed after the test).
``wamp_bridge_settings``
    ``crossbar_router.settings`` (a fresh dict per test): pass it to your app
    factory so ``init_app`` points the app at the test router.
``bridge_client``
    A factory, ``bridge_client(app, serializer="json")``, returning a
    :class:`~flask_wamp_bridge.testing.bridge_client.BridgeClient`: a browser
    that logs in over HTTP (``login(...)``) and calls, subscribes and publishes
    through the app's ``/wamp``. The app is served by a real gunicorn with the
    bridge's worker (one per app and test, see
    :class:`~flask_wamp_bridge.testing.bridge_client.BridgeServer`).

Ports: fixtures use free loopback ports, from ``wamp_bridge_ports = LOW-HIGH``
in the pytest configuration or ``$WAMP_BRIDGE_TEST_PORTS`` when set.

When no ``crossbar`` executable is found (see
:func:`~flask_wamp_bridge.router.process.find_crossbar`) these tests are skipped,
except when the environment variable ``CI`` is set: then they fail. Tests that
use the router fixtures get the ``crossbar`` marker automatically.

Test credentials (for these throw-away routers only): the app's peer is
:data:`TEST_PEER_AUTHID` / :data:`TEST_PEER_SECRET` (role ``backend``), and the
WAMP-CRA principal :data:`TESTER_AUTHID` / :data:`TESTER_SECRET` (role
``backend``) is what :class:`WampClient` logs in as by default.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import typing as t
import urllib.parse

import pytest

from ..errors import ApplicationError
from ..errors import CallTimeout
from ..errors import ConfigError
from ..errors import ConnectError
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from ..router.process import CrossbarProcess
from ..router.process import find_crossbar
from .bridge_client import BridgeClient
from .bridge_client import BridgeServer
from .ports import free_port as free_port
from .ports import set_port_range
from .tolerant import tolerant_serializer

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

__all__ = [
    "TEST_PEER_AUTHID",
    "TEST_PEER_SECRET",
    "TESTER_AUTHID",
    "TESTER_SECRET",
    "router_settings",
    "free_port",
    "start_router",
    "WampClient",
    "crossbar_executable",
    "crossbar_router",
    "fresh_crossbar_router",
    "wamp_client",
    "wamp_bridge_settings",
    "bridge_client",
    "BridgeClient",
    "BridgeServer",
]

#: The app peer's WAMP-CRA login on test routers.
TEST_PEER_AUTHID = "flask-app"
TEST_PEER_SECRET = "test-peer-secret-not-for-production"
#: A backend WAMP-CRA principal for test clients (:class:`WampClient`'s default).
TESTER_AUTHID = "tester"
TESTER_SECRET = "tester-secret-not-for-production"

_SERIALIZERS = {"json": "JsonSerializer", "msgpack": "MsgPackSerializer", "cbor": "CBORSerializer"}

_START_TIMEOUT = 90.0  # Crossbar takes ~5-10 s alone, more on a busy 2-core machine


def router_settings(port: int, **overrides: t.Any) -> dict[str, t.Any]:
    """``WAMP_BRIDGE_*`` settings for a test router on ``127.0.0.1:port`` with the test credentials."""
    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{port}/ws",
        "WAMP_BRIDGE_REALM": "realm1",
        "WAMP_BRIDGE_AUTHENTICATOR": "wamp_bridge.authenticate",
        "WAMP_BRIDGE_USER_ROLE": "user",
        "WAMP_BRIDGE_ANONYMOUS_ROLE": "anonymous",
        "WAMP_BRIDGE_PEER_AUTHID": TEST_PEER_AUTHID,
        "WAMP_BRIDGE_PEER_SECRET": TEST_PEER_SECRET,
        "WAMP_BRIDGE_PEER_ROLE": "backend",
        "WAMP_BRIDGE_SERVICES": {TESTER_AUTHID: {"secret": TESTER_SECRET, "role": "backend"}},
    }
    settings.update(overrides)
    return settings


def _find_or_skip() -> str:
    try:
        return find_crossbar()
    except ConfigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so a missing Crossbar is an error: {exc}", pytrace=False)
        pytest.skip(str(exc))


def start_router(cbdir: str | os.PathLike[str], **overrides: t.Any) -> CrossbarProcess:
    """Start a router for tests in ``cbdir`` on a free port (skips or fails when Crossbar is missing).

    The caller must ``stop()`` it.
    """
    router = CrossbarProcess(router_settings(free_port(), **overrides), cbdir, crossbar=_find_or_skip())
    router.start(timeout=_START_TIMEOUT)
    return router


@pytest.fixture(scope="session")
def crossbar_executable() -> str:
    """Path of the ``crossbar`` executable (skips the test, or fails it under CI, when missing)."""
    return _find_or_skip()


def _running_router(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[CrossbarProcess]:
    router = start_router(tmp_path_factory.mktemp("crossbar"))
    try:
        yield router
    finally:
        router.stop()


@pytest.fixture(scope="session")
def crossbar_router(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[CrossbarProcess]:
    """One real Crossbar router shared by the test session."""
    yield from _running_router(tmp_path_factory)


@pytest.fixture
def fresh_crossbar_router(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[CrossbarProcess]:
    """A real Crossbar router for this test alone (free to stop, kill or restart)."""
    yield from _running_router(tmp_path_factory)


@pytest.fixture
def wamp_client() -> t.Iterator[t.Callable[..., WampClient]]:
    """Factory: ``wamp_client(router, **kwargs)`` opens a :class:`WampClient` on ``router``."""
    clients: list[WampClient] = []

    def connect(router: CrossbarProcess, **kwargs: t.Any) -> WampClient:
        client = WampClient(router.url, router.realm, **kwargs)
        clients.append(client)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def wamp_bridge_settings(crossbar_router: CrossbarProcess) -> dict[str, t.Any]:
    """The ``WAMP_BRIDGE_*`` settings that point an app at the test router (a copy per test)."""
    assert crossbar_router.settings is not None
    return dict(crossbar_router.settings)


@pytest.fixture
def bridge_client(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Callable[..., BridgeClient]]:
    """Factory: ``bridge_client(app)`` serves ``app`` with gunicorn and returns a browser-like client.

    Each call returns a new client (its own cookies and WAMP session); the
    server is started once per app object and test, and stopped after it.
    """
    servers: dict[int, BridgeServer] = {}
    clients: list[BridgeClient] = []

    def make(app: Flask, *, serializer: str = "json", workers: int = 1) -> BridgeClient:
        server = servers.get(id(app))
        if server is None:
            log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
            server = BridgeServer(app, log, tester=(TESTER_AUTHID, TESTER_SECRET), workers=workers)
            servers[id(app)] = server.start()
        client = BridgeClient(server.url, wamp_path=app.config["WAMP_BRIDGE_PATH"],
                              realm=app.config["WAMP_BRIDGE_REALM"], serializer=serializer)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()
        for server in servers.values():
            server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("wamp_bridge_ports", "LOW-HIGH: loopback ports the flask_wamp_bridge fixtures may use", default="")


def pytest_configure(config: pytest.Config) -> None:
    set_port_range(config.getini("wamp_bridge_ports") or None)
    config.addinivalue_line("markers", "crossbar: needs a real Crossbar router (flask_wamp_bridge.testing)")


_ROUTER_FIXTURES = {"crossbar_executable", "crossbar_router", "fresh_crossbar_router", "wamp_bridge_settings"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _ROUTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.crossbar)


class WampClient:
    """A blocking WAMP client for tests: autobahn-python on an asyncio loop in its own thread.

    Logs in with WAMP-CRA (``authid``/``secret``, default the tester), with
    ``ticket`` when given (method ``ticket``: Crossbar asks the dynamic
    authenticator), or as ``anonymous`` when both are None. ``serializer``
    (json, msgpack, cbor), extra upgrade ``headers`` (e.g. ``Cookie``) and an
    ``origin`` make it act like a browser page talking to the bridge.
    Procedures and event handlers are plain functions, run in a
    thread pool; raising :class:`~flask_wamp_bridge.errors.ApplicationError`
    answers with its URI. Errors map to the library's exceptions:
    WAMP ERROR -> ``ApplicationError``, no result in time -> ``CallTimeout``,
    ABORT or lost connection -> ``ConnectionClosed`` (``.reason`` is the URI).

    Not for production: one loop thread per client.
    """

    def __init__(
        self,
        url: str,
        realm: str,
        *,
        authid: str = TESTER_AUTHID,
        secret: str | None = TESTER_SECRET,
        ticket: str | None = None,
        authextra: dict[str, t.Any] | None = None,
        timeout: float = 10.0,
        serializer: str = "json",
        headers: dict[str, str] | None = None,
        origin: str | None = None,
    ) -> None:
        self.url = url
        if serializer not in _SERIALIZERS:
            raise LocalProtocolError(f"serializer must be one of {sorted(_SERIALIZERS)}, got {serializer!r}")
        self._serializer_choice = serializer
        self._extra_headers = dict(headers or {})
        self._ws_origin = origin
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="wamp-test-client", daemon=True)
        self._thread.start()
        self._session: t.Any = None
        self._socket: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        try:
            self.details = self._run(self._connect(url, realm, authid, secret, ticket, authextra), timeout)
        except BaseException:
            self._stop_loop()
            raise

    @property
    def session_id(self) -> int:
        return int(self.details.session)

    @property
    def authid(self) -> str:
        return str(self.details.authid)

    @property
    def authrole(self) -> str:
        return str(self.details.authrole)

    @property
    def connected(self) -> bool:
        return self._session is not None and bool(self._session.is_attached())

    def call(
        self, procedure: str, *args: t.Any, timeout: float = 10.0, options: dict[str, t.Any] | None = None,
        **kwargs: t.Any,
    ) -> t.Any:
        """Call ``procedure`` and return its result (``timeout`` and ``options`` are not WAMP kwargs)."""
        from autobahn.wamp.types import CallOptions

        opts = CallOptions(**(options or {}))  # type: ignore[no-untyped-call]

        async def go() -> t.Any:
            return await self._session.call(procedure, *args, options=opts, **kwargs)

        return self._run(go(), timeout, what=f"call to {procedure!r}")

    def register(self, procedure: str, fn: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Register ``fn`` as ``procedure``; ``options`` go to autobahn's ``RegisterOptions``
        (e.g. ``invoke="roundrobin"``, ``details=True`` to get ``details`` with the caller)."""
        from autobahn.wamp.types import RegisterOptions

        opts = RegisterOptions(**options)  # type: ignore[no-untyped-call]
        handler = self._threaded(fn)

        async def go() -> None:
            await self._session.register(handler, procedure, options=opts)

        self._run(go(), 10.0, what=f"register {procedure!r}")

    def subscribe(self, topic: str, fn: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Subscribe ``fn`` to ``topic``; ``options`` go to autobahn's ``SubscribeOptions``."""
        from autobahn.wamp.types import SubscribeOptions

        opts = SubscribeOptions(**options)  # type: ignore[no-untyped-call]
        handler = self._threaded(fn)

        async def go() -> None:
            await self._session.subscribe(handler, topic, options=opts)

        self._run(go(), 10.0, what=f"subscribe to {topic!r}")

    def publish(self, topic: str, *args: t.Any, options: dict[str, t.Any] | None = None, **kwargs: t.Any) -> None:
        """Publish and wait for the router's acknowledgement; ``options`` go to ``PublishOptions``."""
        from autobahn.wamp.types import PublishOptions

        opts = PublishOptions(**{"acknowledge": True, **(options or {})})  # type: ignore[no-untyped-call]

        async def go() -> None:
            await self._session.publish(topic, *args, options=opts, **kwargs)

        self._run(go(), 10.0, what=f"publish to {topic!r}")

    def close(self, timeout: float = 5.0) -> None:
        """Leave the realm (GOODBYE), close the connection and stop the loop thread. Idempotent."""
        if self._loop.is_closed():
            return

        async def go() -> None:
            if self._session is not None and self._session.is_attached():
                self._session.leave()
            if self._closed is not None:
                await self._closed

        try:
            asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout)
        except Exception:  # the router may already be gone: the connection ends below anyway
            pass
        self._stop_loop()

    def __enter__(self) -> WampClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------

    def _stop_loop(self) -> None:
        async def drop_transport() -> None:
            sock = self._socket
            if sock is None:  # a subclass made the connection: reach it through the session
                sock = getattr(getattr(self._session, "_transport", None), "transport", None)
            if sock is not None:
                sock.abort()  # closes the socket in a callback soon: let it run
                for _ in range(3):
                    await asyncio.sleep(0)

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(drop_transport(), self._loop).result(2.0)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def _run_loop(self) -> None:
        # The loop is finished in its own thread: the caller's thread may run an
        # asyncio loop of its own (Playwright's sync API does), where
        # run_until_complete would raise.
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _run(self, coro: t.Coroutine[t.Any, t.Any, t.Any], timeout: float, what: str = "connect") -> t.Any:
        from autobahn.wamp.exception import ApplicationError as AutobahnApplicationError
        from autobahn.wamp.exception import TransportLost

        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if what == "connect":
                raise ConnectError(f"no WAMP session at {self.url} within {timeout:g} s") from None
            raise CallTimeout(None, f"{what} got no answer within {timeout:g} s") from None
        except AutobahnApplicationError as exc:
            raise ApplicationError(exc.error, *exc.args, **(exc.kwargs or {})) from exc
        except TransportLost as exc:
            raise ConnectionClosed(f"{what}: the connection to {self.url} is lost",
                                   reason="wamp.close.transport_lost") from exc

    def _threaded(self, fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        from autobahn.wamp.exception import ApplicationError as AutobahnApplicationError

        def invoke(args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> t.Any:
            try:
                return fn(*args, **kwargs)
            except ApplicationError as exc:
                raise AutobahnApplicationError(  # type: ignore[no-untyped-call]
                    exc.error, *exc.args, **exc.kwargs) from exc

        async def handler(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return await self._loop.run_in_executor(None, invoke, args, kwargs)

        return handler

    async def _connect(
        self,
        url: str,
        realm: str,
        authid: str,
        secret: str | None,
        ticket: str | None,
        authextra: dict[str, t.Any] | None,
    ) -> t.Any:
        from autobahn.asyncio.websocket import WampWebSocketClientFactory
        from autobahn.wamp.types import ComponentConfig

        loop = asyncio.get_running_loop()
        joined: asyncio.Future[t.Any] = loop.create_future()
        self._closed = loop.create_future()
        session_class = _session_class()
        self._session = session_class(
            ComponentConfig(realm),  # type: ignore[no-untyped-call]
            authid=authid, secret=secret, ticket=ticket, authextra=authextra,
            joined=joined, closed=self._closed,
        )
        factory = WampWebSocketClientFactory(  # type: ignore[no-untyped-call]
            lambda: self._session,
            url=url,
            serializers=[tolerant_serializer(_SERIALIZERS[self._serializer_choice])(self._session)],
            headers=self._extra_headers,
            origin=self._ws_origin,
        )
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise ConfigError(f"the WebSocket URL {url!r} has no host; use one like 'ws://127.0.0.1:8080/ws'")
        try:
            self._socket, protocol = await loop.create_connection(factory, parts.hostname, parts.port or 80)
        except OSError as exc:
            raise ConnectError(f"cannot reach {url}: {exc}") from exc
        # A refused upgrade never reaches the session: watch the connection too.
        await asyncio.wait([joined, protocol.is_closed], return_when=asyncio.FIRST_COMPLETED)
        if joined.done():
            return joined.result()
        reason = getattr(protocol, "_onclose_reason", None) or getattr(protocol, "wasNotCleanReason", None)
        raise ConnectionClosed(f"the connection to {url} closed before a WAMP session began: {reason}")


@functools.lru_cache(maxsize=None)
def _session_class() -> type:
    # Built on first use: importing autobahn is needed only by tests that open a client.
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.wamp import auth

    class _Session(ApplicationSession):
        def __init__(self, config: t.Any, **login: t.Any) -> None:
            super().__init__(config)
            self._login = login

        def onConnect(self) -> None:
            login = self._login
            if login["ticket"] is not None:
                methods = ["ticket"]
            elif login["secret"] is not None:
                methods = ["wampcra"]
            else:
                methods = ["anonymous"]
            self.join(self.config.realm, authmethods=methods, authid=login["authid"], authextra=login["authextra"])

        def onChallenge(self, challenge: t.Any) -> str:
            login = self._login
            if challenge.method == "ticket" and login["ticket"] is not None:
                return str(login["ticket"])
            if challenge.method == "wampcra" and login["secret"] is not None:
                key = login["secret"]
                extra = challenge.extra
                if "salt" in extra:
                    key = auth.derive_key(key, extra["salt"], extra["iterations"], extra["keylen"])
                signature = auth.compute_wcs(key, extra["challenge"])
                return signature.decode("ascii") if isinstance(signature, bytes) else str(signature)
            raise ConnectError(f"no credentials for the {challenge.method!r} challenge")

        def onJoin(self, details: t.Any) -> None:
            if not self._login["joined"].done():
                self._login["joined"].set_result(details)

        def onLeave(self, details: t.Any) -> None:
            joined = self._login["joined"]
            if not joined.done():
                joined.set_exception(
                    ConnectionClosed(
                        f"the router refused the session: {details.reason} {details.message or ''}".rstrip(),
                        reason=details.reason,
                    )
                )
            self.disconnect()

        def onDisconnect(self) -> None:
            joined, closed = self._login["joined"], self._login["closed"]
            if not joined.done():
                joined.set_exception(ConnectionClosed("the connection closed before the session was welcomed"))
            if not closed.done():
                closed.set_result(None)

    return _Session
