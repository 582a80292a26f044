"""The operators' HTTP endpoints: ``WAMP_BRIDGE_HEALTH_PATH`` and ``WAMP_BRIDGE_METRICS_PATH``.

Health answers anyone (a load balancer, Kubernetes' probes): 200 with
``{"status": "ok", ...}`` while this worker's peer is joined to the realm and
hears from the router (its keepalive ends a session whose router went silent
for ``WAMP_BRIDGE_UPSTREAM_PING_INTERVAL`` + ``..._TIMEOUT``), 503 otherwise.
Metrics answer only the addresses in ``WAMP_BRIDGE_METRICS_ALLOW`` (403 for
others); behind a proxy, ``request.remote_addr`` is the proxy's unless the app
uses Werkzeug's ``ProxyFix``.
"""

from __future__ import annotations

import ipaddress
import os
import typing as t

from flask import Flask
from flask import Response
from flask import abort
from flask import request

from ..errors import ConfigError
from ..websocket import lifecycle

if t.TYPE_CHECKING:  # pragma: no cover
    from .host import OperationsHost

__all__ = ["mount", "health"]

Network = t.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def mount(app: Flask, state: OperationsHost) -> None:
    """Add the health and metrics views the settings ask for (nothing when both paths are None)."""
    health_path = state.settings["WAMP_BRIDGE_HEALTH_PATH"]
    if health_path is not None:
        app.add_url_rule(health_path, "wamp_bridge_health", lambda: _health_response(state), methods=["GET"])
    metrics_path = state.settings["WAMP_BRIDGE_METRICS_PATH"]
    if metrics_path is None:
        return
    try:
        from . import metrics
    except ImportError as exc:
        raise ConfigError(f"WAMP_BRIDGE_METRICS_PATH needs prometheus_client: pip install "
                          f"\"Flask-WAMP-Bridge[metrics]\" ({exc})") from None
    allowed = [ipaddress.ip_network(entry, strict=False) for entry in state.settings["WAMP_BRIDGE_METRICS_ALLOW"]]

    def view() -> Response:
        if not _allowed(request.remote_addr, allowed):
            abort(403)
        metrics.start(state)
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    app.add_url_rule(metrics_path, "wamp_bridge_metrics", view, methods=["GET"])

    def start() -> None:
        metrics.start(state)

    lifecycle.on_worker_start(start)


def _allowed(remote: str | None, allowed: list[Network]) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return any(address in net or (mapped is not None and mapped in net) for net in allowed)


def health(state: OperationsHost) -> tuple[bool, dict[str, t.Any]]:
    """Whether this worker can serve WAMP now, and the JSON body that says so."""
    if not state.has_peer:
        peer = "not started"
        joined = False
    else:
        joined = state.peer.is_connected
        peer = "joined" if joined else "not joined"
    return joined, {"status": "ok" if joined else "unavailable", "peer": peer, "pid": os.getpid(),
                    "realm": state.settings["WAMP_BRIDGE_REALM"]}


def _health_response(state: OperationsHost) -> tuple[dict[str, t.Any], int]:
    ok, body = health(state)
    return body, 200 if ok else 503
