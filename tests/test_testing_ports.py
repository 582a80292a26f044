"""The test fixtures' port range (flask_wamp_bridge.testing.ports) and the client's event collector."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import typing as t
from pathlib import Path

import pytest
from helpers import REPO_ROOT

from flask_wamp_bridge.testing import ports
from flask_wamp_bridge.testing.bridge_client import Events


@pytest.fixture(autouse=True)
def no_configured_range(monkeypatch: pytest.MonkeyPatch) -> t.Iterator[None]:
    monkeypatch.delenv(ports.PORTS_ENV, raising=False)
    ports.set_port_range(None)
    yield
    ports.set_port_range(None)


@pytest.mark.parametrize(("text", "expected"), [("20000-20999", (20000, 20999)), (" 8080 ", (8080, 8080))])
def test_parse_port_range(text: str, expected: tuple[int, int]) -> None:
    assert ports.parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "20999-20000", "0-10", "1-70000", "1-2-3"])
def test_parse_port_range_refuses_nonsense(text: str) -> None:
    with pytest.raises(ports.PortRangeError):
        ports.parse_port_range(text)


def test_free_port_comes_from_the_configured_range_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    ports.set_port_range("41000-41019")
    assert all(41000 <= ports.free_port() <= 41019 for _ in range(20))
    monkeypatch.setenv(ports.PORTS_ENV, "41100-41109")
    assert all(41100 <= ports.free_port() <= 41109 for _ in range(20))


def test_free_port_leaves_the_next_port_free_for_the_routers_rawsocket(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setenv(ports.PORTS_ENV, f"{port - 1}-{port + 1}")  # port - 1's next is taken, port itself too
        with pytest.raises(ports.PortRangeError):
            ports.free_port()
    monkeypatch.delenv(ports.PORTS_ENV)
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", ports.free_port() + 1))  # free: no OSError


def test_a_range_without_a_free_port_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setenv(ports.PORTS_ENV, f"{port}-{port}")
        with pytest.raises(ports.PortRangeError, match=str(port)):
            ports.free_port()


def test_the_plugin_reads_the_range_from_the_pytest_configuration(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["flask_wamp_bridge.testing"]\n')
    (tmp_path / "test_ports.py").write_text(
        "from flask_wamp_bridge.testing import free_port\n"
        "def test_in_range():\n"
        "    assert 42000 <= free_port() <= 42009\n"
    )
    env = {k: v for k, v in os.environ.items() if k != ports.PORTS_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:pytest_wampy", "-p", "no:cacheprovider", "-q",
         "-o", "wamp_bridge_ports=42000-42009", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_events_wait_for_a_count_and_keep_the_order() -> None:
    events = Events()
    threading.Timer(0.05, events, args=("a",), kwargs={"n": 1}).start()
    threading.Timer(0.1, events, args=("b",)).start()
    assert events.wait(2) == [(("a",), {"n": 1}), (("b",), {})]
    with pytest.raises(TimeoutError, match="2 event"):
        events.wait(3, timeout=0.05)
