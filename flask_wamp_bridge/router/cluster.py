"""A cluster of Crossbar nodes joined by router-to-router links (pure, but for the key).

``WAMP_BRIDGE_CLUSTER`` names the nodes and their URLs, in order::

    WAMP_BRIDGE_CLUSTER = {"node1": "ws://10.0.0.1:8080/ws", "node2": "ws://10.0.0.2:8080/ws"}

:func:`node_config` turns the single-router config of
:func:`~flask_wamp_bridge.router.config.make_config` into node ``name``'s:
the node listens on its own URL, its controller id is its name (routers
report it to every session as ``x_cb_node``), and it opens one rlink to each
node listed before it (so every pair of nodes has exactly one link, which
forwards both ways). Links log in with WAMP-cryptosign: each node's Ed25519
key is derived from ``WAMP_BRIDGE_CLUSTER_SECRET`` (:func:`node_key_file`), so
every node's config can be generated anywhere from the same settings.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import re
import time
import typing as t
import urllib.parse
from pathlib import Path

from .. import settings as _settings
from ..errors import ConfigError

__all__ = ["cluster_nodes", "node_config", "node_key_file", "write_node_key", "RLINK_ROLE"]

#: The role a link from another node gets: full access, like the backend.
RLINK_ROLE = "rlink"

_NODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _get(settings: t.Mapping[str, t.Any], key: str) -> t.Any:
    return _settings.get(settings, key)


def cluster_nodes(settings: t.Mapping[str, t.Any]) -> dict[str, str]:
    """``WAMP_BRIDGE_CLUSTER`` checked: {node name: URL}, in order ({} for a single router)."""
    nodes = _get(settings, "WAMP_BRIDGE_CLUSTER")
    if not nodes:
        return {}
    if not isinstance(nodes, t.Mapping):
        raise ConfigError("WAMP_BRIDGE_CLUSTER must be a dict {node name: 'ws://host:port/ws'}")
    for name, url in nodes.items():
        if not isinstance(name, str) or not _NODE_RE.match(name):
            raise ConfigError(f"WAMP_BRIDGE_CLUSTER: node name {name!r} must be lowercase letters, digits or '_'")
        if not isinstance(url, str) or not url.startswith("ws://"):
            raise ConfigError(f"WAMP_BRIDGE_CLUSTER[{name!r}] must be a ws:// URL, got {url!r}")
    if len(set(nodes.values())) != len(nodes):
        raise ConfigError("WAMP_BRIDGE_CLUSTER: two nodes have the same URL")
    return dict(nodes)


def _seed(settings: t.Mapping[str, t.Any], node: str) -> bytes:
    secret = _get(settings, "WAMP_BRIDGE_CLUSTER_SECRET")
    if not isinstance(secret, str) or len(secret) < 16:
        raise ConfigError(
            "WAMP_BRIDGE_CLUSTER_SECRET must be a random string of at least 16 characters, the same for every "
            "node: the nodes' link keys are derived from it"
        )
    return hmac.new(secret.encode(), b"flask-wamp-bridge rlink key " + node.encode(), hashlib.sha256).digest()


def _public_key_hex(seed: bytes) -> str:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError("cluster configs need the 'cryptography' package: pip install "
                          "'Flask-WAMP-Bridge[cluster]'") from None
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw().hex()


def node_key_file(settings: t.Mapping[str, t.Any], node: str) -> str:
    """The text of node ``node``'s ``key.priv`` (Crossbar's node key file; keep it 0600)."""
    seed = _seed(settings, node)
    tags = {
        "creator": "flask-wamp-bridge",
        "created-at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(0)),
        "machine-id": node,
        "node-authid": node,
        "public-key-ed25519": _public_key_hex(seed),
        "private-key-ed25519": seed.hex(),
    }
    return "Crossbar.io node private key - KEEP THIS SAFE!\n\n" + "".join(f"{k}: {v}\n" for k, v in tags.items())


def _authid(node: str) -> str:
    return f"rlink-{node}"


def _websocket_of(transport: dict[str, t.Any]) -> dict[str, t.Any]:
    if transport.get("type") == "web":
        return t.cast(dict[str, t.Any], next(iter(transport["paths"].values())))
    return transport


def node_config(config: t.Mapping[str, t.Any], settings: t.Mapping[str, t.Any], node: str) -> dict[str, t.Any]:
    """Node ``node``'s config from the single-router ``config`` built for its URL."""
    nodes = cluster_nodes(settings)
    if node not in nodes:
        raise ConfigError(f"node {node!r} is not in WAMP_BRIDGE_CLUSTER ({', '.join(nodes) or 'empty'})")
    forward_calls = _get(settings, "WAMP_BRIDGE_CLUSTER_CALLS")
    if not isinstance(forward_calls, bool):
        raise ConfigError(f"WAMP_BRIDGE_CLUSTER_CALLS must be True or False, got {forward_calls!r}")
    result = copy.deepcopy(dict(config))
    result["controller"] = {"id": node}
    (worker,) = result["workers"]
    (realm,) = worker["realms"]
    realm["roles"].append({"name": RLINK_ROLE, "permissions": [{
        "uri": "", "match": "prefix", "allow": {a: True for a in ("call", "register", "publish", "subscribe")},
        "disclose": {"caller": True, "publisher": True}, "cache": True,
    }]})
    transport = worker["transports"][0]  # the WebSocket one (RawSocket ones follow)
    principals = {
        _authid(other): {"realm": realm["name"], "role": RLINK_ROLE,
                         "authorized_keys": [_public_key_hex(_seed(settings, other))]}
        for other in nodes if other != node
    }
    _websocket_of(transport)["auth"]["cryptosign"] = {"type": "static", "principals": principals}
    links = []
    for other, url in nodes.items():
        if other == node:
            break
        parts = urllib.parse.urlsplit(url)
        links.append({
            "id": f"to_{other}",
            "realm": realm["name"],
            "authid": _authid(node),
            "transport": {
                "type": "websocket",
                "url": url,
                "endpoint": {"type": "tcp", "host": parts.hostname, "port": parts.port or 80},
                "serializers": ["cbor", "msgpack", "json"],
            },
            "forward_local_events": True,
            "forward_remote_events": True,
            "forward_local_invocations": forward_calls,
            "forward_remote_invocations": forward_calls,
        })
    if links:
        realm["rlinks"] = links
    return result


def write_node_key(settings: t.Mapping[str, t.Any], node: str, cbdir: str | os.PathLike[str]) -> Path:
    """Write node ``node``'s ``key.priv`` into the Crossbar node directory ``cbdir`` (mode 0600)."""
    text = node_key_file(settings, node)
    path = Path(cbdir) / "key.priv"
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = Path(cbdir) / "key.pub"  # Crossbar re-creates it from key.priv
    if path.exists() and path.read_text() != text and stale.exists():
        stale.unlink()
    if not path.exists() or path.read_text() != text:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    return path
