"""Which loopback ports the test fixtures use: any free one, or one from a configured range.

Set a range when the machine's firewall or other services need it, either in
the pytest configuration (``wamp_bridge_ports = 20000-20999`` under
``[pytest]``/``[tool.pytest.ini_options]``) or in the environment
(``WAMP_BRIDGE_TEST_PORTS=20000-20999``, which wins).
"""

from __future__ import annotations

import os
import random
import socket

__all__ = ["PORTS_ENV", "PortRangeError", "parse_port_range", "set_port_range", "free_port"]

#: Environment variable with a port range, ``LOW-HIGH`` (inclusive).
PORTS_ENV = "WAMP_BRIDGE_TEST_PORTS"

_configured: tuple[int, int] | None = None


class PortRangeError(ValueError):
    """A port range that is not ``LOW-HIGH`` with 1 <= LOW <= HIGH <= 65535, or has no free port."""


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` -> ``(20000, 20999)``."""
    low, sep, high = text.strip().partition("-")
    try:
        bounds = (int(low), int(high if sep else low))
    except ValueError:
        raise PortRangeError(f"a port range is LOW-HIGH, e.g. 20000-20999, not {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1] <= 65535:
        raise PortRangeError(f"a port range needs 1 <= LOW <= HIGH <= 65535, not {text!r}")
    return bounds


def set_port_range(text: str | None) -> None:
    """Use ports from ``text`` (``LOW-HIGH``) from now on; ``None`` or ``""``: any free port."""
    global _configured
    _configured = parse_port_range(text) if text else None


def _range() -> tuple[int, int] | None:
    env = os.environ.get(PORTS_ENV)
    return parse_port_range(env) if env else _configured


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, and so was the one after it.

    The one after it is the router's RawSocket transport when the port is a router's
    (``WAMP_BRIDGE_RAWSOCKET_PORT`` defaults to the router URL's port + 1). The port
    comes from the configured range, if any (its last port is never handed out).
    """
    bounds = _range()
    if bounds is None:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port < 65535 and _is_free(port + 1):
                return port
        raise PortRangeError("no free pair of ports on 127.0.0.1")
    candidates = list(range(bounds[0], bounds[1]))
    random.shuffle(candidates)  # parallel test runs rarely race for the same port
    for port in candidates:
        if _is_free(port) and _is_free(port + 1):
            return port
    raise PortRangeError(f"no free port in {bounds[0]}-{bounds[1]} (from ${PORTS_ENV} or wamp_bridge_ports)")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
