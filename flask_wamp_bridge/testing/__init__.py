"""Opt-in pytest plugin: a real Crossbar router and a blocking WAMP client for tests.

Enable it in ``conftest.py``::

    pytest_plugins = ["flask_wamp_bridge.testing"]

Fixtures:

``crossbar_router`` (session scope)
    A :class:`~flask_wamp_bridge.router.process.CrossbarProcess` on a free
    127.0.0.1 port, started from the config generated from your app's own
    settings (``wamp_bridge_app_config``: its roles, permissions, realm,
    authenticator, services ...) with the test ports and credentials. It has ``.url``,
    ``.realm``, ``.pid``, ``.restart()``, ``.log`` and ``.settings``: the
    ``WAMP_BRIDGE_*`` mapping that points an app at it (``app.config.update(...)``).
``fresh_crossbar_router`` (function scope)
    The same, private to one test: for tests that stop, kill or restart it.
``wamp_bridge_app_config`` (session scope)
    The app settings the test routers are generated from. By default the
    ``config`` of the app named by ``wamp_bridge_app = module:app_or_factory``
    in the pytest configuration (a factory is called without arguments), or
    no settings (the plugin's defaults) without it. Override the fixture to
    choose yourself::

        @pytest.fixture(scope="session")
        def wamp_bridge_app_config():
            return create_app().config

    For a router of other settings in one test, call :func:`start_router`
    (``start_router(tmp_path, app_config, WAMP_BRIDGE_REALM="other")``).
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
``backend``, or the app's ``WAMP_BRIDGE_PEER_ROLE``) is what :class:`WampClient` logs in as by default.

Importing from this module before pytest loads it as a plugin is fine: it
opts out of assertion rewriting (PYTEST_DONT_REWRITE), so pytest does not warn.
"""

from __future__ import annotations

import os
import typing as t

import pytest

from .. import settings as _settings
from ..errors import ConfigError
from ..router.process import CrossbarProcess
from ..router.process import find_crossbar
from .bridge_client import BridgeClient
from .bridge_client import BridgeServer
from .client import TESTER_AUTHID as TESTER_AUTHID
from .client import TESTER_SECRET as TESTER_SECRET
from .client import WampClient as WampClient
from .ports import free_port as free_port
from .ports import set_port_range

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
    "wamp_bridge_app_config",
    "bridge_client",
    "BridgeClient",
    "BridgeServer",
]

#: The app peer's WAMP-CRA login on test routers.
TEST_PEER_AUTHID = "flask-app"
TEST_PEER_SECRET = "test-peer-secret-not-for-production"
_START_TIMEOUT = 90.0  # Crossbar takes ~5-10 s alone, more on a busy 2-core machine


#: App settings a test router never takes from the app: where it listens, how the app's peer logs in, the cluster.
_TEST_OWNED = frozenset({"WAMP_BRIDGE_ROUTER_URL", "WAMP_BRIDGE_ROUTER_INTERFACE", "WAMP_BRIDGE_PEER_AUTHMETHOD",
                         "WAMP_BRIDGE_PEER_AUTHID", "WAMP_BRIDGE_PEER_SECRET", "WAMP_BRIDGE_CLUSTER",
                         "WAMP_BRIDGE_CLUSTER_SECRET"})


def router_settings(port: int, app_config: t.Mapping[str, t.Any] | None = None,
                    **overrides: t.Any) -> dict[str, t.Any]:
    """``WAMP_BRIDGE_*`` settings for a test router on ``127.0.0.1:port`` with the test credentials.

    :param app_config: the app's settings (e.g. ``app.config``): every ``WAMP_BRIDGE_*`` key is kept (roles,
        permissions, realm, services ...) except the router's address, the peer's login and the cluster; the
        tester principal joins the app's ``WAMP_BRIDGE_SERVICES``.
    """
    app = {key: value for key, value in (app_config or {}).items()
           if isinstance(key, str) and key.startswith("WAMP_BRIDGE_") and key not in _TEST_OWNED}
    peer_role = app.get("WAMP_BRIDGE_PEER_ROLE") or "backend"
    settings: dict[str, t.Any] = {
        "WAMP_BRIDGE_REALM": "realm1",
        "WAMP_BRIDGE_AUTHENTICATOR": "wamp_bridge.authenticate",
        "WAMP_BRIDGE_USER_ROLE": "user",
        "WAMP_BRIDGE_ANONYMOUS_ROLE": "anonymous",
        "WAMP_BRIDGE_PEER_ROLE": peer_role,
        **app,
        "WAMP_BRIDGE_ROUTER_URL": f"ws://127.0.0.1:{port}/ws",
        "WAMP_BRIDGE_PEER_AUTHID": TEST_PEER_AUTHID,
        "WAMP_BRIDGE_PEER_SECRET": TEST_PEER_SECRET,
        "WAMP_BRIDGE_SERVICES": {**(app.get("WAMP_BRIDGE_SERVICES") or {}),
                                 TESTER_AUTHID: {"secret": TESTER_SECRET, "role": peer_role}},
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


def start_router(cbdir: str | os.PathLike[str], app_config: t.Mapping[str, t.Any] | None = None,
                 **overrides: t.Any) -> CrossbarProcess:
    """Start a router for tests in ``cbdir`` on a free port (skips or fails when Crossbar is missing).

    Its config is generated from :func:`router_settings` (``app_config``, then ``overrides``).
    The caller must ``stop()`` it.
    """
    router = CrossbarProcess(router_settings(free_port(), app_config, **overrides), cbdir,
                             crossbar=_find_or_skip())
    router.start(timeout=_START_TIMEOUT)
    return router


@pytest.fixture(scope="session")
def crossbar_executable() -> str:
    """Path of the ``crossbar`` executable (skips the test, or fails it under CI, when missing)."""
    return _find_or_skip()


def _app_from_spec(spec: str) -> t.Mapping[str, t.Any]:
    """The ``config`` of ``module:name`` (a Flask app, or a factory called without arguments)."""
    import importlib

    module_name, _, name = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name or "app")
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"wamp_bridge_app = {spec}: {exc} (use module:app or module:create_app)") from exc
    app = found if hasattr(found, "config") else found()
    return t.cast(t.Mapping[str, t.Any], app.config)


@pytest.fixture(scope="session")
def wamp_bridge_app_config(pytestconfig: pytest.Config) -> t.Mapping[str, t.Any]:
    """The app settings the test routers are generated from (override this fixture, or set ``wamp_bridge_app``)."""
    spec = pytestconfig.getini("wamp_bridge_app")
    return _app_from_spec(spec) if spec else {}


def _running_router(tmp_path_factory: pytest.TempPathFactory,
                    app_config: t.Mapping[str, t.Any]) -> t.Iterator[CrossbarProcess]:
    router = start_router(tmp_path_factory.mktemp("crossbar"), app_config)
    try:
        yield router
    finally:
        router.stop()


@pytest.fixture(scope="session")
def crossbar_router(tmp_path_factory: pytest.TempPathFactory,
                    wamp_bridge_app_config: t.Mapping[str, t.Any]) -> t.Iterator[CrossbarProcess]:
    """One real Crossbar router shared by the test session, generated from the app's settings."""
    yield from _running_router(tmp_path_factory, wamp_bridge_app_config)


@pytest.fixture
def fresh_crossbar_router(tmp_path_factory: pytest.TempPathFactory,
                          wamp_bridge_app_config: t.Mapping[str, t.Any]) -> t.Iterator[CrossbarProcess]:
    """A real Crossbar router for this test alone (free to stop, kill or restart)."""
    yield from _running_router(tmp_path_factory, wamp_bridge_app_config)


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
        read = _settings.of(app)
        client = BridgeClient(server.url, wamp_path=_settings.get(read, "WAMP_BRIDGE_PATH"),
                              realm=_settings.get(read, "WAMP_BRIDGE_REALM"), serializer=serializer)
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
    parser.addini("wamp_bridge_app", "module:app_or_factory whose settings the test routers are generated from",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    set_port_range(config.getini("wamp_bridge_ports") or None)
    config.addinivalue_line("markers", "crossbar: needs a real Crossbar router (flask_wamp_bridge.testing)")


_ROUTER_FIXTURES = {"crossbar_executable", "crossbar_router", "fresh_crossbar_router", "wamp_bridge_settings"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _ROUTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.crossbar)
