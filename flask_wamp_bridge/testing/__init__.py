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

import os
import socket
import typing as t

import pytest

from ..errors import ConfigError
from ..router.process import CrossbarProcess
from ..router.process import find_crossbar
from .client import TESTER_AUTHID as TESTER_AUTHID
from .client import TESTER_SECRET as TESTER_SECRET
from .client import WampClient as WampClient

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
]

#: The app peer's WAMP-CRA login on test routers.
TEST_PEER_AUTHID = "flask-app"
TEST_PEER_SECRET = "test-peer-secret-not-for-production"
_START_TIMEOUT = 90.0  # Crossbar takes ~5-10 s alone, more on a busy 2-core machine


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "crossbar: needs a real Crossbar router (flask_wamp_bridge.testing)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"crossbar_executable", "crossbar_router", "fresh_crossbar_router"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.crossbar)
