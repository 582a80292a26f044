"""Crossbar.io router configuration from ``WAMP_BRIDGE_*`` settings (pure).

:func:`make_config` turns a settings mapping (``app.config`` or a plain dict)
into the dict Crossbar reads as ``config.json``. The generated node has one
router worker with one realm and one WebSocket transport, meant only for the
bridge's relays and backend peers (loopback by default):

- ``wampcra`` (static users): the app's peer (``WAMP_BRIDGE_PEER_AUTHID`` /
  ``_PEER_SECRET``) and each of ``WAMP_BRIDGE_SERVICES``;
- ``ticket`` (dynamic): browser sessions arriving through the bridge; Crossbar
  calls ``WAMP_BRIDGE_AUTHENTICATOR``, which the app's peer registers;
- roles: the backend role(s) may do everything (including the meta API and
  registering the authenticator); the user role may call and subscribe under
  ``app.``; the anonymous role may call and subscribe under ``app.public.``.
  ``WAMP_BRIDGE_PERMISSIONS`` replaces these per role;
- ``allowed_origins`` admits no browser page (see :func:`make_config`).

:mod:`flask_wamp_bridge.router.process` runs Crossbar with such a config.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import os
import re
import typing as t
import urllib.parse
from pathlib import Path

from .. import settings as _settings
from ..errors import ConfigError
from ..wamp.meta_api import BROWSER_META_CALLS
from ..wamp.meta_api import META_PREFIX
from .cluster import cluster_nodes
from .cluster import node_config

__all__ = ["ACTIONS", "make_config", "with_rawsocket", "write_config", "save_config", "defined_roles",
           "browser_rules", "matching_rule", "meta_enabled"]

#: What a permission rule can allow.
ACTIONS: tuple[str, ...] = ("call", "register", "publish", "subscribe")

_DEFAULT_USER_PREFIX = "app."
_DEFAULT_ANONYMOUS_PREFIX = "app.public."
_MAX_MESSAGE_SIZE_LIMIT = 64 * 1024 * 1024  # Crossbar's own upper bound
_SERIALIZERS = ["json", "msgpack", "cbor"]
# What a browser role must never be allowed: with these a browser could approve
# its own logins (while the peer is away) or end other users' sessions.
_BROWSER_FORBIDDEN = (
    ("call", "wamp.session.kill"),
    ("call", "wamp.session.kill_by_authid"),
    ("call", "wamp.session.kill_by_authrole"),
)
_REALM_RE = re.compile(r"^[A-Za-z][A-Za-z\d_\-@.]{2,254}$")  # Crossbar's realm name rule
_STRICT_URI_RE = re.compile(r"^([\da-z_]+\.)*([\da-z_]+)$")  # for the authenticator
_RULE_URI_RE = re.compile(r"^(([^\s.#]+\.)|\.)*([^\s.#]+)?$")  # Crossbar's permission URI rule
_PATH_RE = re.compile(r"^[a-zA-Z0-9_\-]+$")


def _get(settings: t.Mapping[str, t.Any], key: str) -> t.Any:
    return _settings.get(settings, key)


def _name(settings: t.Mapping[str, t.Any], key: str) -> str:
    value = _get(settings, key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _seconds_to_ms(settings: t.Mapping[str, t.Any], key: str) -> int:
    value = _get(settings, key)
    if value is None or value == 0:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ConfigError(f"{key} must be a number of seconds >= 1 (or 0 to disable), got {value!r}")
    return int(value * 1000)


def _parse_url(settings: t.Mapping[str, t.Any]) -> tuple[str, int, str]:
    """Return (host, port, path segment or "") of WAMP_BRIDGE_ROUTER_URL."""
    url = _get(settings, "WAMP_BRIDGE_ROUTER_URL")
    if isinstance(url, (list, tuple)) and len(url) == 1:
        url = url[0]
    elif isinstance(url, (list, tuple)):
        raise ConfigError(
            "WAMP_BRIDGE_ROUTER_URL lists several routers: generate each node's config with "
            "make_config(settings, node=...) (flask wamp config --node NAME) from WAMP_BRIDGE_CLUSTER"
        )
    if not isinstance(url, str):
        raise ConfigError(f"WAMP_BRIDGE_ROUTER_URL must be a string like 'ws://127.0.0.1:8080/ws', got {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "wss":
        raise ConfigError(
            f"WAMP_BRIDGE_ROUTER_URL {url!r} uses wss://, but the generated config has no TLS keys: "
            "keep the router on loopback with ws://, or add an 'endpoint.tls' section to the config yourself"
        )
    if parts.scheme != "ws" or not parts.hostname:
        raise ConfigError(f"WAMP_BRIDGE_ROUTER_URL must look like 'ws://127.0.0.1:8080/ws', got {url!r}")
    if parts.query or parts.fragment or parts.username:
        raise ConfigError(f"WAMP_BRIDGE_ROUTER_URL {url!r} must not carry a query, fragment or user info")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"WAMP_BRIDGE_ROUTER_URL {url!r} has an invalid port") from None
    path = parts.path.strip("/")
    if path and not _PATH_RE.match(path):
        raise ConfigError(
            f"WAMP_BRIDGE_ROUTER_URL path {parts.path!r} must be '/' or one segment of letters, digits, '_' "
            "or '-' (like '/ws')"
        )
    return parts.hostname, port, path


def _interface(settings: t.Mapping[str, t.Any], host: str) -> str:
    value = _get(settings, "WAMP_BRIDGE_ROUTER_INTERFACE")
    if value is None:
        if host == "localhost":
            return "127.0.0.1"
        value = host
        hint = (
            f"the host of WAMP_BRIDGE_ROUTER_URL ({host!r}) is not an IP address: set "
            "WAMP_BRIDGE_ROUTER_INTERFACE to the address Crossbar should listen on (e.g. '127.0.0.1')"
        )
    else:
        hint = f"WAMP_BRIDGE_ROUTER_INTERFACE must be an IP address like '127.0.0.1', got {value!r}"
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(hint) from None


def _normalize_rule(role: str, index: int, rule: t.Any) -> dict[str, t.Any]:
    where = f"WAMP_BRIDGE_PERMISSIONS[{role!r}][{index}]"
    if not isinstance(rule, t.Mapping):
        raise ConfigError(f"{where} must be a dict like {{'uri': 'app.', 'allow': ['call']}}, got {rule!r}")
    unknown = set(rule) - {"uri", "match", "allow", "disclose", "cache"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; use uri, match, allow, disclose, cache")
    uri = rule.get("uri")
    if not isinstance(uri, str) or not _RULE_URI_RE.match(uri):
        raise ConfigError(f"{where}['uri'] must be a URI or URI prefix like 'app.public.', got {uri!r}")
    if "*" in uri:
        raise ConfigError(f"{where}['uri'] is {uri!r}: write the prefix without '*' and 'match': 'prefix'")
    default_match = "prefix" if uri == "" or uri.endswith(".") else "exact"
    match = rule.get("match", default_match)
    if match not in ("exact", "prefix", "wildcard"):
        raise ConfigError(f"{where}['match'] must be 'exact', 'prefix' or 'wildcard', got {match!r}")

    allow_in = rule.get("allow", ())
    if isinstance(allow_in, t.Mapping):
        bad = [k for k, v in allow_in.items() if k not in ACTIONS or not isinstance(v, bool)]
        allowed = {k for k, v in allow_in.items() if v is True}
    elif isinstance(allow_in, (list, tuple, set, frozenset)):
        bad = [k for k in allow_in if k not in ACTIONS]
        allowed = set(allow_in)
    else:
        bad, allowed = [allow_in], set()
    if bad:
        raise ConfigError(
            f"{where}['allow'] must list actions from {list(ACTIONS)} (or map them to booleans), got {allow_in!r}"
        )

    disclose = rule.get("disclose", True)
    if isinstance(disclose, bool):
        disclose = {"caller": disclose, "publisher": disclose}
    elif not (
        isinstance(disclose, t.Mapping)
        and set(disclose) <= {"caller", "publisher"}
        and all(isinstance(v, bool) for v in disclose.values())
    ):
        raise ConfigError(f"{where}['disclose'] must be a bool or {{'caller': bool, 'publisher': bool}}")
    cache = rule.get("cache", True)
    if not isinstance(cache, bool):
        raise ConfigError(f"{where}['cache'] must be a bool, got {cache!r}")
    return {
        "uri": uri,
        "match": match,
        "allow": {action: action in allowed for action in ACTIONS},
        "disclose": {"caller": True, "publisher": True, **disclose},
        "cache": cache,
    }


def _allows(rules: list[dict[str, t.Any]], action: str, uri: str) -> bool:
    """Whether Crossbar would let a role with ``rules`` do ``action`` on ``uri`` (see :func:`matching_rule`)."""
    found = matching_rule(rules, uri)
    return found is not None and bool(found["allow"][action])


def matching_rule(rules: t.Sequence[t.Mapping[str, t.Any]], uri: str) -> t.Mapping[str, t.Any] | None:
    """The rule of ``rules`` (normalized) that Crossbar applies to ``uri``, or None (no rule: denied).

    Mirrors ``RouterRoleStaticAuth.authorize``: the longest rule URI that is a
    string prefix of ``uri`` wins (and counts only if it is a prefix rule or an
    exact hit); unless that is an exact rule, a matching wildcard rule (URI
    with ``..``) keyed by its part before ``..`` overrides it; no rule denies.
    """
    plain: dict[str, t.Mapping[str, t.Any]] = {}
    wild: dict[str, t.Mapping[str, t.Any]] = {}
    for rule in rules:  # later rules for the same URI replace earlier ones
        if ".." in rule["uri"]:
            wild[rule["uri"][: rule["uri"].index("..")]] = rule
        else:
            plain[rule["uri"]] = rule
    found: t.Mapping[str, t.Any] | None = None
    keys = [key for key in plain if uri.startswith(key)]
    if keys:
        found = plain[max(keys, key=len)]
        if found["match"] != "prefix" and uri != found["uri"]:
            found = None
    if found is None or found["match"] != "exact":
        keys = [key for key in wild if uri.startswith(key)]
        if keys:
            rule = wild[max(keys, key=len)]
            want, got = rule["uri"].split("."), uri.split(".")
            if len(want) == len(got) and all(w in ("", g) for w, g in zip(want, got, strict=True)):
                found = rule
    return found


def _full_access() -> list[dict[str, t.Any]]:
    return [_normalize_rule("backend", 0, {"uri": "", "match": "prefix", "allow": ACTIONS})]


def _app_access(prefix: str) -> list[dict[str, t.Any]]:
    return [_normalize_rule("default", 0, {"uri": prefix, "match": "prefix", "allow": ["call", "subscribe"]})]


def _users(settings: t.Mapping[str, t.Any], peer_role: str) -> dict[str, dict[str, t.Any]]:
    peer_authid = _name(settings, "WAMP_BRIDGE_PEER_AUTHID")
    method = _get(settings, "WAMP_BRIDGE_PEER_AUTHMETHOD")
    if method != "wampcra":
        raise ConfigError(
            f"WAMP_BRIDGE_PEER_AUTHMETHOD is {method!r}, but the generated Crossbar config logs the app's peer "
            "in with WAMP-CRA: set it to 'wampcra' (the default), or write the router config yourself"
        )
    secret = _get(settings, "WAMP_BRIDGE_PEER_SECRET")
    if not isinstance(secret, str) or not secret:
        raise ConfigError(
            "WAMP_BRIDGE_PEER_SECRET is not set: the app's peer logs in to Crossbar with WAMP-CRA using it. "
            "Set it to a long random string, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    users = {peer_authid: {"secret": secret, "role": peer_role}}
    services = _get(settings, "WAMP_BRIDGE_SERVICES") or {}
    if not isinstance(services, t.Mapping):
        raise ConfigError("WAMP_BRIDGE_SERVICES must be a dict {authid: {'secret': ..., 'role': ...}}")
    for authid, entry in services.items():
        where = f"WAMP_BRIDGE_SERVICES[{authid!r}]"
        if not isinstance(authid, str) or not authid:
            raise ConfigError(f"{where}: the authid must be a non-empty string")
        if authid in users:
            raise ConfigError(f"{where}: authid {authid!r} is already the app peer's; give the service its own")
        if not isinstance(entry, t.Mapping) or set(entry) - {"secret", "role"}:
            raise ConfigError(f"{where} must be a dict with 'secret' and optionally 'role', got {entry!r}")
        if not isinstance(entry.get("secret"), str) or not entry["secret"]:
            raise ConfigError(f"{where}['secret'] must be a non-empty string")
        role = entry.get("role", peer_role)
        if not isinstance(role, str) or not role:
            raise ConfigError(f"{where}['role'] must be a non-empty string, got {role!r}")
        users[authid] = {"secret": entry["secret"], "role": role}
    return users


def _roles(settings: t.Mapping[str, t.Any], peer_role: str,
           backend_roles: list[str]) -> dict[str, list[dict[str, t.Any]]]:
    user_role = _name(settings, "WAMP_BRIDGE_USER_ROLE")
    anonymous_role = _get(settings, "WAMP_BRIDGE_ANONYMOUS_ROLE")
    if anonymous_role is not None and (not isinstance(anonymous_role, str) or not anonymous_role):
        raise ConfigError(f"WAMP_BRIDGE_ANONYMOUS_ROLE must be a role name or None, got {anonymous_role!r}")
    for key, role in (("WAMP_BRIDGE_USER_ROLE", user_role), ("WAMP_BRIDGE_ANONYMOUS_ROLE", anonymous_role)):
        if role in backend_roles:
            raise ConfigError(
                f"{key} is {role!r}, a backend role: browsers must not get backend rights; pick another name"
            )
    permissions = _get(settings, "WAMP_BRIDGE_PERMISSIONS") or {}
    if not isinstance(permissions, t.Mapping):
        raise ConfigError("WAMP_BRIDGE_PERMISSIONS must be a dict {role: [rule, ...]}")

    defaults: dict[str, list[dict[str, t.Any]]] = {peer_role: _full_access()}
    defaults[user_role] = _app_access(_DEFAULT_USER_PREFIX)
    if anonymous_role is not None:
        defaults[anonymous_role] = _app_access(_DEFAULT_ANONYMOUS_PREFIX)
    names = list(dict.fromkeys([*backend_roles, *defaults, *permissions]))

    roles: dict[str, list[dict[str, t.Any]]] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"WAMP_BRIDGE_PERMISSIONS keys must be role names, got {name!r}")
        if name in permissions:
            rules = permissions[name]
            if not isinstance(rules, (list, tuple)):
                raise ConfigError(f"WAMP_BRIDGE_PERMISSIONS[{name!r}] must be a list of rules, got {rules!r}")
            roles[name] = [_normalize_rule(name, i, rule) for i, rule in enumerate(rules)]
        elif name in defaults:
            roles[name] = defaults[name]
        else:  # a service role nobody described
            raise ConfigError(
                f"role {name!r} of WAMP_BRIDGE_SERVICES has no permissions: add WAMP_BRIDGE_PERMISSIONS[{name!r}] "
                f"or give the service the role {peer_role!r}"
            )

    if meta_enabled(settings):  # the page's history and presence calls, rewritten by the relay
        meta_rule = _normalize_rule("meta", 0, {"uri": META_PREFIX, "allow": ["call"]})
        for name, rules in roles.items():
            if name not in backend_roles:
                roles[name] = [*rules, meta_rule]
    authenticator = _get(settings, "WAMP_BRIDGE_AUTHENTICATOR")
    authorizer = _get(settings, "WAMP_BRIDGE_AUTHORIZER")
    needs = [("register", authenticator), ("call", "wamp.session.kill_by_authid")]
    if authorizer:
        needs.append(("register", authorizer))
    missing = [f"{a} {u!r}" for a, u in needs if not _allows(roles[peer_role], a, u)]
    if missing:
        raise ConfigError(
            f"WAMP_BRIDGE_PERMISSIONS[{peer_role!r}] must allow the app's peer to {' and '.join(missing)}"
        )
    for name, rules in roles.items():
        if name in backend_roles:
            continue
        for action, uri in (("register", authenticator), *_browser_forbidden(settings, authorizer)):
            if _allows(rules, action, uri):
                raise ConfigError(
                    f"WAMP_BRIDGE_PERMISSIONS[{name!r}] lets browser sessions {action} {uri!r}; "
                    "narrow its URI prefixes (e.g. 'app.') so only backend roles reach the authenticator "
                    "and the session meta API"
                )
    return roles


def _browser_forbidden(settings: t.Mapping[str, t.Any], authorizer: str | None) -> list[tuple[str, str]]:
    forbidden = list(_BROWSER_FORBIDDEN)
    if meta_enabled(settings):  # a page answering them would answer for other users
        forbidden += [("register", uri) for uri in BROWSER_META_CALLS.values()]
    if authorizer:
        forbidden += [("register", authorizer), ("call", authorizer)]
    return forbidden


def meta_enabled(settings: t.Mapping[str, t.Any]) -> bool:
    """Whether pages may reach event history or presence (the bridge's meta procedures are registered)."""
    return bool(_get(settings, "WAMP_BRIDGE_EVENT_HISTORY") or _get(settings, "WAMP_BRIDGE_PRESENCE_TOPICS"))


def browser_rules(settings: t.Mapping[str, t.Any]) -> dict[str, list[dict[str, t.Any]]]:
    """The static rules of each browser role, as :func:`make_config` checks them.

    With ``WAMP_BRIDGE_AUTHORIZER`` the generated config gives these roles the
    authorizer instead of permissions, and the authorizer applies these rules first.
    """
    peer_role = _name(settings, "WAMP_BRIDGE_PEER_ROLE")
    backend_roles = list(dict.fromkeys(u["role"] for u in _users(settings, peer_role).values()))
    roles = _roles(settings, peer_role, backend_roles)
    return {name: rules for name, rules in roles.items() if name not in backend_roles}


def _role_entries(settings: t.Mapping[str, t.Any], roles: dict[str, list[dict[str, t.Any]]],
                  backend_roles: list[str]) -> list[dict[str, t.Any]]:
    authorizer = _get(settings, "WAMP_BRIDGE_AUTHORIZER")
    if authorizer is not None and not _STRICT_URI_RE.match(authorizer):
        raise ConfigError(f"WAMP_BRIDGE_AUTHORIZER {authorizer!r} must be a strict URI, like 'wamp_bridge.authorize'")
    return [{"name": name, "authorizer": authorizer} if authorizer and name not in backend_roles
            else {"name": name, "permissions": rules} for name, rules in roles.items()]


def defined_roles(settings: t.Mapping[str, t.Any]) -> list[str]:
    """The roles :func:`make_config` defines for these settings (without checking them).

    The backend role(s), the user and anonymous roles and every role of
    ``WAMP_BRIDGE_PERMISSIONS``: an identity with another role cannot join.
    """
    return list(_settings.roles(settings).defined)


def _origins(host: str, port: int) -> list[str]:
    # Browsers always send an http(s) Origin (or "null"), so this admits no
    # browser page: only the router's own origin (no page is served there) and
    # the ws(s) "origins" some WAMP clients send (wampy). Clients without an
    # Origin header are always accepted.
    if ":" in host:
        host = f"[{host}]"
    return [f"http://{host}:{port}", "ws://*", "wss://*"]


def make_config(settings: t.Mapping[str, t.Any], node: str | None = None) -> dict[str, t.Any]:
    """Build a Crossbar ``config.json`` dict from ``WAMP_BRIDGE_*`` settings.

    With ``node``, the config of that node of ``WAMP_BRIDGE_CLUSTER`` (it
    listens on the node's URL and links to the other nodes; see
    :mod:`flask_wamp_bridge.router.cluster`).

    :param settings: ``app.config`` or any mapping; missing keys take their defaults
        (:data:`flask_wamp_bridge.settings.SETTINGS`). ``WAMP_BRIDGE_PEER_SECRET`` is required.
    :raises ConfigError: a setting is missing or invalid (the message names it).

    Permission rules are ``{"uri", "match", "allow", "disclose", "cache"}``:
    ``allow`` is a list of :data:`ACTIONS` (or Crossbar's ``{action: bool}``),
    ``match`` defaults to ``"prefix"`` for a URI ending in ``.`` (or empty) and
    ``"exact"`` otherwise, ``disclose`` (caller and publisher identity to the
    backend) and ``cache`` default to True. Rules given for a role replace its
    defaults. The WebSocket transport admits no browser page (``allowed_origins``
    lists only the router's own http origin and ``ws://*``/``wss://*``, which
    browsers never send): browsers reach the router only through the bridge.
    """
    _settings.check(settings)
    if node is not None:
        nodes = cluster_nodes(settings)
        if node not in nodes:
            raise ConfigError(f"node {node!r} is not in WAMP_BRIDGE_CLUSTER ({', '.join(nodes) or 'empty'})")
        settings = collections.ChainMap({"WAMP_BRIDGE_ROUTER_URL": nodes[node]}, dict(settings))
    host, port, path = _parse_url(settings)
    interface = _interface(settings, host)
    realm = _name(settings, "WAMP_BRIDGE_REALM")
    if not _REALM_RE.match(realm):
        raise ConfigError(
            f"WAMP_BRIDGE_REALM {realm!r} is not a valid realm name: 3-255 letters, digits, '_', '-', '@' or '.', "
            "starting with a letter"
        )
    authenticator = _name(settings, "WAMP_BRIDGE_AUTHENTICATOR")
    if not _STRICT_URI_RE.match(authenticator):
        raise ConfigError(
            f"WAMP_BRIDGE_AUTHENTICATOR {authenticator!r} must be a strict URI (lowercase letters, digits, '_', "
            "dot-separated), like 'wamp_bridge.authenticate'"
        )
    peer_role = _name(settings, "WAMP_BRIDGE_PEER_ROLE")
    users = _users(settings, peer_role)
    backend_roles = list(dict.fromkeys(u["role"] for u in users.values()))
    roles = _role_entries(settings, _roles(settings, peer_role, backend_roles), backend_roles)

    size = _get(settings, "WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= _MAX_MESSAGE_SIZE_LIMIT:
        raise ConfigError(
            f"WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE must be a number of bytes from 1 to {_MAX_MESSAGE_SIZE_LIMIT}, "
            f"got {size!r}"
        )
    ping_interval = _seconds_to_ms(settings, "WAMP_BRIDGE_ROUTER_PING_INTERVAL")
    ping_timeout = _seconds_to_ms(settings, "WAMP_BRIDGE_ROUTER_PING_TIMEOUT")
    options: dict[str, t.Any] = {
        "allowed_origins": _origins(host, port),
        "allow_null_origin": False,
        "require_websocket_subprotocol": True,
        "max_message_size": size,
        "max_frame_size": size,
        "open_handshake_timeout": 5000,
        "close_handshake_timeout": 2000,
        "auto_ping_interval": ping_interval,
        "auto_ping_timeout": ping_timeout if ping_interval else 0,
        "auto_ping_size": 12,
        "auto_ping_restart_on_any_traffic": True,
        "enable_webstatus": False,
        "show_server_version": False,
    }
    websocket = {
        "type": "websocket",
        "serializers": list(_SERIALIZERS),
        "options": options,
        "auth": {
            "wampcra": {"type": "static", "users": users},
            "ticket": {"type": "dynamic", "authenticator": authenticator},
        },
    }
    # Crossbar's default listen backlog is 50: a login storm (every browser's relay and
    # every worker's peer connecting at once) would overflow it and see SYNs dropped.
    endpoint: dict[str, t.Any] = {"type": "tcp", "interface": interface, "port": port,
                                  "backlog": _get(settings, "WAMP_BRIDGE_ROUTER_BACKLOG")}
    if ipaddress.ip_address(interface).version == 6:
        endpoint["version"] = 6
    if path:
        transport = {"type": "web", "endpoint": endpoint, "paths": {path: websocket}}
    else:
        transport = {**websocket, "endpoint": endpoint}
    realm_config: dict[str, t.Any] = {"name": realm, "roles": roles, "options": {"enable_meta_api": True}}
    config = {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": [realm_config],
                "transports": [transport],
            }
        ],
    }
    path_setting = _get(settings, "WAMP_BRIDGE_RAWSOCKET_PATH")
    port_setting = _get(settings, "WAMP_BRIDGE_RAWSOCKET_PORT")
    rawsocket = "rawsocket" in (_get(settings, "WAMP_BRIDGE_UPSTREAM"), _get(settings, "WAMP_BRIDGE_PEER_UPSTREAM"))
    if path_setting is None and port_setting is None and rawsocket:
        port_setting = port + 1
        if port_setting > 65535:
            raise ConfigError(f"the router URL's port {port} leaves no port + 1 for the RawSocket transport: set "
                              "WAMP_BRIDGE_RAWSOCKET_PORT or WAMP_BRIDGE_RAWSOCKET_PATH")
    if path_setting is not None or port_setting is not None:
        config = with_rawsocket(config, path=path_setting, port=port_setting, interface=interface)
    return config if node is None else node_config(config, settings, node)


def with_rawsocket(
    config: t.Mapping[str, t.Any],
    *,
    path: str | os.PathLike[str] | None = None,
    port: int | None = None,
    interface: str = "127.0.0.1",
) -> dict[str, t.Any]:
    """A copy of :func:`make_config`'s ``config`` with WAMP RawSocket transports added.

    A Unix socket at ``path`` (for a router on the same host) and/or TCP on
    ``interface:port``, each with the WebSocket transport's serializers and
    logins, msgpack first; the maximum message size is the WebSocket one,
    capped at 16 MiB (the most a RawSocket handshake can announce), and the
    listen backlog is the WebSocket one. The WebSocket transport stays for
    other clients.
    """
    if path is None and port is None:
        raise ConfigError("with_rawsocket needs a Unix socket path, a TCP port, or both")
    config = json.loads(json.dumps(config))  # a deep copy of plain data
    router = config["workers"][0]
    first = router["transports"][0]
    websocket = first if first["type"] == "websocket" else next(iter(first["paths"].values()))
    size = min(websocket["options"]["max_message_size"], 1 << 24)
    endpoints: list[dict[str, t.Any]] = []
    if path is not None:
        endpoints.append({"type": "unix", "path": os.fspath(path)})
    if port is not None:
        endpoint: dict[str, t.Any] = {"type": "tcp", "interface": str(ipaddress.ip_address(interface)), "port": port}
        if ipaddress.ip_address(interface).version == 6:
            endpoint["version"] = 6
        endpoints.append(endpoint)
    for endpoint in endpoints:
        if "backlog" in first["endpoint"]:  # the same login storm arrives here
            endpoint["backlog"] = first["endpoint"]["backlog"]
        router["transports"].append({
            "type": "rawsocket",
            "endpoint": endpoint,
            "serializers": ["msgpack", "cbor", "json"],
            "options": {"max_message_size": size},
            "auth": websocket["auth"],
        })
    return t.cast(dict[str, t.Any], config)


def write_config(settings: t.Mapping[str, t.Any], cbdir: str | os.PathLike[str]) -> Path:
    """Write :func:`make_config` ``(settings)`` to ``cbdir/config.json``; return its path."""
    return save_config(make_config(settings), Path(cbdir) / "config.json")


def save_config(config: t.Mapping[str, t.Any], path: str | os.PathLike[str]) -> Path:
    """Write a config dict as JSON to ``path`` with mode 0600 (it holds secrets); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.chmod(path, 0o600)  # the file may have existed with wider rights
    return path
