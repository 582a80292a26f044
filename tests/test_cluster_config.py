"""Router URL lists and cluster node configs (pure), and ``flask wamp config --node``."""

from __future__ import annotations

import stat
import typing as t
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from flask_wamp_bridge import WampBridge
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.router.cluster import RLINK_ROLE
from flask_wamp_bridge.router.cluster import node_key_file
from flask_wamp_bridge.router.config import make_config
from flask_wamp_bridge.wamp.router_urls import in_order_from
from flask_wamp_bridge.wamp.router_urls import next_url
from flask_wamp_bridge.wamp.router_urls import rawsocket_address
from flask_wamp_bridge.wamp.router_urls import router_urls

N1, N2, N3 = "ws://10.0.0.1:8080/ws", "ws://10.0.0.2:8080/ws", "ws://10.0.0.3:9000/ws"


def cluster_settings(**overrides: t.Any) -> dict[str, t.Any]:
    return {
        "WAMP_BRIDGE_PEER_SECRET": "peer-secret",
        "WAMP_BRIDGE_CLUSTER": {"node1": N1, "node2": N2, "node3": N3},
        "WAMP_BRIDGE_CLUSTER_SECRET": "cluster-secret-0123456789",
        **overrides,
    }


def key_tags(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.split("\n\n", 1)[1].splitlines())


@pytest.mark.parametrize("value", [N1, [N1], (N1,)])
def test_router_urls_one(value: t.Any) -> None:
    assert router_urls(value) == (N1,)


@pytest.mark.parametrize("value", [f"{N1},{N2}", f"{N1} {N2}", f" {N1} ,\n {N2} ", [N1, N2], [N1, N2, N1]])
def test_router_urls_several_in_order_without_repeats(value: t.Any) -> None:
    assert router_urls(value) == (N1, N2)


@pytest.mark.parametrize("value", ["", [], 8080, ["http://x/ws"], "ws://a/ws, 10.0.0.1:8080", [N1, None]])
def test_router_urls_refuse_what_is_not_a_url_list(value: t.Any) -> None:
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_ROUTER_URL"):
        router_urls(value)


def test_next_url_wraps_and_in_order_from_starts_at_the_last_good_one() -> None:
    urls = (N1, N2, N3)
    assert [next_url(urls, u) for u in urls] == [N2, N3, N1]
    assert next_url(urls, "ws://gone/ws") == N1
    assert next_url((N1,), N1) == N1
    assert in_order_from(urls, N2) == [N2, N3, N1]
    assert in_order_from(urls, "") == [N1, N2, N3]


def test_rawsocket_address_of_each_node() -> None:
    assert [rawsocket_address(u) for u in (N1, N2, N3)] == [("10.0.0.1", 8081), ("10.0.0.2", 8081),
                                                            ("10.0.0.3", 9001)]
    assert rawsocket_address(N3, port=7000) == ("10.0.0.3", 7000)
    assert rawsocket_address(N3, "/run/router.sock", 7000) == "/run/router.sock"  # a router on this host
    assert rawsocket_address("ws://router/ws") == ("router", 81)


def test_extension_accepts_a_router_url_list_and_refuses_a_bad_one() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_ROUTER_URL=[N1, N2])
    WampBridge(app)
    bad = Flask(__name__)
    bad.config.update(SECRET_KEY="k", WAMP_BRIDGE_ROUTER_URL=[N1, "tcp://10.0.0.2:8080"])
    with pytest.raises(ConfigError, match="ws://"):
        WampBridge(bad)


def test_node_config_listens_on_its_url_and_links_to_each_earlier_node_once() -> None:
    configs = {node: make_config(cluster_settings(), node=node) for node in ("node1", "node2", "node3")}
    for node, config in configs.items():
        assert config["controller"] == {"id": node}
        (worker,) = config["workers"]
        transport = worker["transports"][0]
        url = cluster_settings()["WAMP_BRIDGE_CLUSTER"][node]
        assert transport["endpoint"]["interface"] == url.split("//")[1].split(":")[0]
        assert transport["endpoint"]["port"] == int(url.rsplit(":", 1)[1].split("/")[0])
    links = {node: c["workers"][0]["realms"][0].get("rlinks", []) for node, c in configs.items()}
    assert links["node1"] == []
    assert [link["transport"]["url"] for link in links["node2"]] == [N1]
    assert [link["transport"]["url"] for link in links["node3"]] == [N1, N2]
    link = links["node3"][1]
    assert link["authid"] == "rlink-node3"
    assert link["transport"]["endpoint"] == {"type": "tcp", "host": "10.0.0.2", "port": 8080}
    assert all(link[f"forward_{side}_{kind}"] for side in ("local", "remote") for kind in ("events", "invocations"))


def test_node_config_admits_the_other_nodes_links_by_their_derived_keys() -> None:
    settings = cluster_settings()
    config = make_config(settings, node="node1")
    (realm,) = config["workers"][0]["realms"]
    websocket = config["workers"][0]["transports"][0]["paths"]["ws"]
    principals = websocket["auth"]["cryptosign"]["principals"]
    assert set(principals) == {"rlink-node2", "rlink-node3"}
    for other in ("node2", "node3"):
        tags = key_tags(node_key_file(settings, other))
        seed = bytes.fromhex(tags["private-key-ed25519"])
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw().hex()
        assert tags["public-key-ed25519"] == public
        assert principals[f"rlink-{other}"] == {"realm": realm["name"], "role": RLINK_ROLE,
                                                "authorized_keys": [public]}
    assert RLINK_ROLE in [role["name"] for role in realm["roles"]]
    # the keys are derived from the secret: another secret, other keys
    other = node_key_file(cluster_settings(WAMP_BRIDGE_CLUSTER_SECRET="another-secret-0123456789"), "node2")
    assert key_tags(other)["public-key-ed25519"] != key_tags(node_key_file(settings, "node2"))["public-key-ed25519"]


def test_node_config_can_keep_calls_on_their_node() -> None:
    config = make_config(cluster_settings(WAMP_BRIDGE_CLUSTER_CALLS=False), node="node2")
    (link,) = config["workers"][0]["realms"][0]["rlinks"]
    assert link["forward_local_events"] and link["forward_remote_events"]
    assert not link["forward_local_invocations"] and not link["forward_remote_invocations"]


@pytest.mark.parametrize(
    ("overrides", "node", "message"),
    [
        ({}, "node9", "not in WAMP_BRIDGE_CLUSTER"),
        ({"WAMP_BRIDGE_CLUSTER": None}, "node1", "not in WAMP_BRIDGE_CLUSTER"),
        ({"WAMP_BRIDGE_CLUSTER_SECRET": None}, "node1", "WAMP_BRIDGE_CLUSTER_SECRET"),
        ({"WAMP_BRIDGE_CLUSTER_SECRET": "short"}, "node1", "WAMP_BRIDGE_CLUSTER_SECRET"),
        ({"WAMP_BRIDGE_CLUSTER": {"Node-1": N1}}, "Node-1", "node name"),
        ({"WAMP_BRIDGE_CLUSTER": {"node1": N1, "node2": N1}}, "node1", "same URL"),
        ({"WAMP_BRIDGE_CLUSTER": {"node1": "wss://10.0.0.1/ws"}}, "node1", "ws:// URL"),
        ({"WAMP_BRIDGE_CLUSTER_CALLS": "yes"}, "node1", "CLUSTER_CALLS"),
    ],
)
def test_node_config_errors_name_the_setting(overrides: dict[str, t.Any], node: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(cluster_settings(**overrides), node=node)


def test_single_router_config_refuses_a_url_list() -> None:
    with pytest.raises(ConfigError, match="--node"):
        make_config(cluster_settings(WAMP_BRIDGE_ROUTER_URL=[N1, N2]))
    assert make_config(cluster_settings(WAMP_BRIDGE_ROUTER_URL=[N1]))["controller"] == {}


def test_cli_config_node_writes_the_config_and_the_node_key(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", **cluster_settings())
    WampBridge(app)
    target = tmp_path / "node2" / "config.json"
    result = app.test_cli_runner().invoke(args=["wamp", "config", "--node", "node2", "--output", str(target)])
    assert result.exit_code == 0, result.output
    key = tmp_path / "node2" / "key.priv"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text() == node_key_file(app.config, "node2")
    assert '"id": "node2"' in target.read_text()
    result = app.test_cli_runner().invoke(args=["wamp", "config", "--node", "node7"])
    assert result.exit_code != 0 and "node7" in result.output
