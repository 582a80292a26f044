"""Three hosts behind one router, each its own network namespace (needs root; CI runs as root).

Hosts a, b and c each run gunicorn with the bridge worker and 2 workers;
Crossbar runs in a fourth namespace from the generated config, listening on
its own address; browsers come from a fifth.
"""

from __future__ import annotations

import json
import typing as t
import urllib.error

import pytest
from helpers import wait_until
from netns import Network
from scale_stack import Client
from scale_stack import kill_host
from scale_stack import require_netns
from scale_stack import router_url
from scale_stack import settings
from scale_stack import start_host
from scale_stack import start_router

pytestmark = pytest.mark.crossbar

HOSTS = ("a", "b", "c")


class Stack(t.NamedTuple):
    net: Network
    client: Client
    servers: dict[str, t.Any]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Stack]:
    require_netns()
    net = Network(["router", *HOSTS, "client"])
    net.start()
    started: list[t.Any] = []
    try:
        app_settings = settings(net, ["router"])
        started.append(start_router(net, "router", app_settings, str(tmp_path_factory.mktemp("router"))))
        servers = {}
        for host in HOSTS:
            servers[host] = start_host(net, host, app_settings, [router_url(net, "router")])
            started.append(servers[host])
        ready = Stack(net, Client(net), servers)
        # Every worker's peer has joined and registered before a test counts on it.
        workers = wait_until(lambda: {(h, pid) for h in HOSTS for pid in servers[h].worker_pids()}
                             if all(len(servers[h].worker_pids()) == 2 for h in HOSTS) else None, timeout=60)
        wait_until(lambda: _workers_seen(ready, "b", 12) == workers, timeout=60, interval=0.5)
        yield ready
    finally:
        for process in reversed(started):
            process.stop()
        net.close()


def _workers_seen(stack: Stack, host: str, calls: int) -> set[tuple[str, int]]:
    """The workers that answered ``calls`` calls made by a view on ``host`` (none if a call failed)."""
    try:
        return {(r["host"], r["pid"]) for r in stack.client.get(host, f"/where?n={calls}")}
    except urllib.error.HTTPError:  # a call failed: while a host goes away, calls in flight do
        return set()


def test_hosts_event_published_on_c_reaches_a_browser_on_a(stack: Stack) -> None:
    client = stack.client
    with client.browser("a", client.login("a", "ann")) as browser:
        browser.watch("app.news")
        client.post("c", "/publish/app.news", message="from c")
        assert browser.wait_for("app.news", "from c") == ["from c"]


def test_hosts_procedure_is_load_balanced_over_all_six_workers(stack: Stack) -> None:
    expected = {(host, pid) for host in HOSTS for pid in stack.servers[host].worker_pids()}
    assert len(expected) == 6
    seen = _workers_seen(stack, "b", 24)  # round-robin: each of the 6 registrations in turn
    assert seen == expected


def test_hosts_logout_on_b_ends_the_users_sessions_on_a_and_c(stack: Stack) -> None:
    client = stack.client
    cookie = client.login("a", "dora")
    with client.browser("a", cookie) as on_a, client.browser("c", cookie) as on_c, \
            client.browser("c", client.login("c", "other")) as bystander:
        _, body = client.post("b", "/logout/dora")
        on_a.wait_closed()
        on_c.wait_closed()
        assert len(json.loads(body)["killed"]) == 2
        assert bystander.connected
        assert bystander.call("app.where")["host"] in HOSTS


def test_hosts_publish_to_reaches_the_user_on_whichever_host(stack: Stack) -> None:
    client = stack.client
    with client.browser("c", client.login("c", "erin")) as erin, \
            client.browser("a", client.login("a", "frank")) as frank:
        for browser in (erin, frank):
            browser.watch("app.private")
        client.post("a", "/publish_to/erin/app.private", message="for erin")
        assert erin.wait_for("app.private", "marker") == ["for erin", "marker"]
        # the marker comes from the same session after the private message: frank had his chance
        assert frank.wait_for("app.private", "marker") == ["marker"]


def test_hosts_b_and_c_serve_when_a_is_killed(stack: Stack) -> None:
    client = stack.client
    kill_host(stack.servers["a"])
    remaining = {(host, pid) for host in ("b", "c") for pid in stack.servers[host].worker_pids()}
    # the router drops a's registrations when its connections close
    wait_until(lambda: _workers_seen(stack, "b", 8) == remaining, timeout=30)
    with client.browser("c", client.login("b", "gus")) as browser:
        assert browser.call("app.where")["host"] in ("b", "c")
        browser.watch("app.news")
        client.post("b", "/publish/app.news", message="after a died")
        browser.wait_for("app.news", "after a died")
