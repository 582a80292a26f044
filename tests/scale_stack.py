"""Hosts, routers and browsers in network namespaces, for the scale-out tests.

A host is a namespace running ``gunicorn -k flask_wamp_bridge.worker -w 2``
with tests/apps/scale_app.py on its own address; a router node is a namespace
running Crossbar from the generated config, listening on its address; the
browsers and the HTTP requests come from a "client" namespace.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import typing as t
import urllib.parse
import urllib.request

import pytest
from helpers import GunicornProcess
from helpers import wait_until
from netns import Network
from netns import unavailable_reason
from test_endpoint import BrowserClient

from flask_wamp_bridge.router.cluster import write_node_key
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.router.process import find_crossbar
from flask_wamp_bridge.testing import router_settings

APP = "tests.apps.scale_app:app"
HTTP_PORT = 8000
ROUTER_PORT = 8080
CLUSTER_SECRET = "cluster-secret-for-tests-only"


def require_netns() -> None:
    """Skip (fail when CI is set) unless network namespaces and Crossbar are available."""
    reason = unavailable_reason()
    if reason is None:
        try:
            find_crossbar()
        except Exception as exc:
            reason = str(exc)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this is an error: {reason}", pytrace=False)
        pytest.skip(reason)


def router_url(net: Network, member: str) -> str:
    return f"ws://{net.addr(member)}:{ROUTER_PORT}/ws"


def settings(net: Network, routers: t.Sequence[str]) -> dict[str, t.Any]:
    """The app's settings for these router namespaces (several: a cluster, in this order)."""
    base = router_settings(ROUTER_PORT, WAMP_BRIDGE_ROUTER_URL=router_url(net, routers[0]))
    if len(routers) > 1:
        base["WAMP_BRIDGE_CLUSTER"] = {name: router_url(net, name) for name in routers}
        base["WAMP_BRIDGE_CLUSTER_SECRET"] = CLUSTER_SECRET
    return base


def start_router(net: Network, member: str, app_settings: t.Mapping[str, t.Any], cbdir: str,
                 node: str | None = None) -> CrossbarProcess:
    from flask_wamp_bridge.router.config import make_config

    if node is not None:
        write_node_key(app_settings, node, cbdir)
    router = CrossbarProcess(make_config(app_settings, node=node), cbdir)
    net.run(member, router.start, timeout=120.0)
    return router


def start_host(net: Network, member: str, app_settings: t.Mapping[str, t.Any],
               urls: t.Sequence[str]) -> GunicornProcess:
    env = {f"FLASK_{key}": value if isinstance(value, str) else json.dumps(value)
           for key, value in app_settings.items() if not key.startswith("WAMP_BRIDGE_CLUSTER")}
    env["FLASK_WAMP_BRIDGE_ROUTER_URL"] = json.dumps(list(urls))
    env["FLASK_HOST_NAME"] = member
    env["FLASK_WAMP_BRIDGE_RECONNECT_MAX"] = "2"
    server = GunicornProcess(APP, env=env, workers=2, host=net.addr(member), port=HTTP_PORT)
    net.run(member, server.start)
    return server


def kill_host(server: GunicornProcess) -> None:
    """SIGKILL the master and its workers (a host that dies, no goodbye)."""
    workers = server.worker_pids()
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    server.stop(signal.SIGKILL)


class Client:
    """HTTP requests and browser sessions from the client namespace."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def url(self, host: str, path: str) -> str:
        return f"http://{self.net.addr(host)}:{HTTP_PORT}{path}"

    def _request(self, request: urllib.request.Request) -> t.Any:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.headers, resp.read()

    def get(self, host: str, path: str) -> t.Any:
        _, body = self.net.run("client", self._request, urllib.request.Request(self.url(host, path)))
        return json.loads(body)

    def post(self, host: str, path: str, **form: str) -> t.Any:
        request = urllib.request.Request(self.url(host, path), data=urllib.parse.urlencode(form).encode())
        headers, body = self.net.run("client", self._request, request)
        return headers, body

    def login(self, host: str, user: str) -> str:
        headers, _ = self.post(host, "/login", user=user)
        return str(headers["Set-Cookie"]).split(";", 1)[0]

    def browser(self, host: str, cookie: str) -> Browser:
        return t.cast(Browser, self.net.run("client", Browser, self.url(host, "/wamp").replace("http", "ws", 1),
                                            cookie, self.url(host, "")))


class Browser(BrowserClient):
    """A logged-in browser session through a host's ``/wamp``, recording events per topic."""

    def __init__(self, url: str, cookie: str, origin: str) -> None:
        super().__init__(url, "realm1", cookie=cookie, origin=origin)
        self.events: dict[str, list[t.Any]] = {}
        self._lock = threading.Lock()

    def watch(self, topic: str) -> None:
        self.events.setdefault(topic, [])

        def record(message: t.Any) -> None:
            with self._lock:
                self.events[topic].append(message)

        self.subscribe(topic, record)

    def wait_for(self, topic: str, message: t.Any, timeout: float = 20.0) -> list[t.Any]:
        """Wait until ``message`` came on ``topic``; returns the topic's events so far."""
        wait_until(lambda: message in self.events[topic], timeout)
        return list(self.events[topic])

    def wait_reachable(self, client: Client, host: str, topic: str, timeout: float = 30.0) -> None:
        """Publish probes on ``topic`` from a view on ``host`` until one arrives.

        A new subscription reaches the other router nodes asynchronously (the
        rlink subscribes there on its behalf when it sees it): until then,
        events published on another node miss it.
        """
        probe = f"probe from {host}"

        def arrived() -> bool:
            client.post(host, f"/publish/{topic}", message=probe)
            return probe in self.events[topic]

        wait_until(arrived, timeout, interval=0.2)

    def wait_closed(self, timeout: float = 20.0) -> None:
        wait_until(lambda: not self.connected, timeout)
