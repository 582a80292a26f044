"""Every ``WAMP_BRIDGE_*`` setting, once: default, type, one-line doc and check.

:data:`SETTINGS` is the one table. The extension, the browser endpoint, the
WebSocket routes and the Crossbar config generator all read their keys through
it, and the README's configuration table is generated from it
(:func:`rst_table`). Adding a setting is one :class:`Setting` entry::

    Setting("WAMP_BRIDGE_<NAME>", 5.0, "seconds", "Seconds a ... may take", positive_seconds(), "endpoint",
            feeds=("RelaySession.<parameter>",))

(key, default, type for the README, one-line doc, check, group, and ``feeds``:
what the value goes into). A setting feeds constructor parameters, named
``"Target.parameter"`` (the target listed in :data:`TARGETS`); the code that
builds ``Target`` passes ``**settings.arguments_for("Target", snapshot)`` and
writes no ``parameter=config["WAMP_BRIDGE_..."]`` line, and the parameter's own
default is the table's (``tests/test_settings.py`` checks both). A setting that
code reads itself says ``feeds=(BY_NAME,)``.

``init_app`` reads the settings once, into a read-only :func:`snapshot`
(``state.settings``, also ``app.extensions[SNAPSHOT]``); after it every read
goes through that snapshot (:func:`of` finds it for an app), and a value
changed in ``app.config`` afterwards is a :class:`ConfigError`. Code that gets
any mapping reads ``settings.get(config, key)`` (the default when missing; an
unknown key raises KeyError). Pure: imports only the errors.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import ipaddress
import os
import types
import typing as t
import urllib.parse
import warnings

from .errors import ConfigError

__all__ = [
    "Setting",
    "Check",
    "BY_NAME",
    "TARGETS",
    "SNAPSHOT",
    "arguments_for",
    "of",
    "Roles",
    "roles",
    "CANCEL_MODES",
    "INVOKE_POLICIES",
    "PEER_AUTHMETHODS",
    "VALIDATION_MODES",
    "UPSTREAMS",
    "SETTINGS",
    "DEFAULTS",
    "GROUPS",
    "GROUP_TITLES",
    "get",
    "install",
    "check",
    "snapshot",
    "unknown_keys",
    "ENVIRONMENT_ONLY",
    "changed_keys",
    "describe_change",
    "rst_table",
    "normalize_origin",
    "check_origins",
    "one_of",
    "text",
    "any_string",
    "secret_text",
    "flag",
    "positive_seconds",
    "positive_number",
    "seconds_or_off",
    "count",
    "mapping",
]

#: A check: ``check(key, value)`` raises :class:`ConfigError` naming ``key`` when ``value`` is invalid.
Check = t.Callable[[str, t.Any], None]

#: In :attr:`Setting.feeds`: code reads the value by its key (``settings["WAMP_BRIDGE_..."]``), not as a parameter.
BY_NAME = "by name"

#: The objects settings feed, by the name :attr:`Setting.feeds` uses: ``{name: "module.qualified.name"}``.
#: Each is built with ``**arguments_for(name, snapshot)``.
TARGETS: t.Mapping[str, str] = types.MappingProxyType({
    "Peer": "flask_wamp_bridge.wamp.peer.Peer",
    "auth_from_config": "flask_wamp_bridge.wamp.client_auth.auth_from_config",
    "Tasks": "flask_wamp_bridge.component.tasks.Tasks",
    "Tickets": "flask_wamp_bridge.bridge.tickets.Tickets",
    "Relay": "flask_wamp_bridge.bridge.relay.Relay",
    "RelaySession": "flask_wamp_bridge.bridge.relay_io.RelaySession",
    "Limits": "flask_wamp_bridge.bridge.checks.Limits",
    "Bounds": "flask_wamp_bridge.wamp.bounds.Bounds",
    "Caps": "flask_wamp_bridge.bridge.budgets.Caps",
    "accept_websocket": "flask_wamp_bridge.websocket.routes.accept_websocket",
    "DeflateOptions": "flask_wamp_bridge.websocket.deflate.DeflateOptions",
})

#: Where ``WampBridge.init_app`` keeps its :func:`snapshot`: ``app.extensions[SNAPSHOT]``.
SNAPSHOT = "wamp_bridge.settings"

#: Which part of the package reads a setting: the plain WebSocket routes (``Sockets`` installs
#: only these), the browser endpoint, the app's peer, only the generated router config, or the
#: operators' endpoints (health, metrics).
GROUPS = ("websocket", "endpoint", "peer", "router", "operations")
#: How the docs title each group's table.
GROUP_TITLES = {"websocket": "WebSocket routes", "endpoint": "The browser endpoint", "peer": "The app's peer",
                "router": "The generated router config", "operations": "Health and metrics"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ``WAMP_BRIDGE_*`` key."""

    key: str
    default: t.Any
    #: The type as the README shows it (``"seconds"``, ``"int"``, ``"str | None"`` ...).
    type: str
    #: One line for the README's configuration table (reStructuredText).
    doc: str
    check: Check
    group: str
    #: How the README shows the default when the value itself says too little.
    shown_default: str | None = None
    #: Never put the value in a message (it is, or holds, a secret).
    secret: bool = False
    #: A value of None falls back to the environment variable of the same name (in :func:`install`).
    environ: bool = False
    #: What the value goes into: ``"Target.parameter"`` for each parameter of a :data:`TARGETS` entry it
    #: fills (through :func:`arguments_for`), and :data:`BY_NAME` when code reads ``settings[key]`` itself.
    feeds: tuple[str, ...] = ()


# --- checks -------------------------------------------------------------------------------


def _is_number(value: t.Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _fail(key: str, need: str, value: t.Any) -> t.NoReturn:
    raise ConfigError(f"{key} must be {need}, got {value!r}")


def one_of(*allowed: str) -> Check:
    """The value is one of ``allowed``."""

    def check(key: str, value: t.Any) -> None:
        if value not in allowed:
            raise ConfigError(f"{key} is {value!r}; use one of {', '.join(map(repr, allowed))}")

    return check


def text(*, optional: bool = False, what: str = "a non-empty string") -> Check:
    """A non-empty string (or None when ``optional``)."""

    def check(key: str, value: t.Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value:
            _fail(key, what + (" (or None)" if optional else ""), value)

    return check


def any_string() -> Check:
    """Any string, empty included."""

    def check(key: str, value: t.Any) -> None:
        if not isinstance(value, str):
            _fail(key, "a string", value)

    return check


def secret_text() -> Check:
    """A string or None (unset); the value never appears in the message."""

    def check(key: str, value: t.Any) -> None:
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key} must be a string (or None), got a {type(value).__name__}")

    return check


def flag() -> Check:
    """True or False."""

    def check(key: str, value: t.Any) -> None:
        if not isinstance(value, bool):
            _fail(key, "True or False", value)

    return check


def positive_seconds(*, optional: bool = False) -> Check:
    """A number of seconds > 0 (or None when ``optional``)."""

    def check(key: str, value: t.Any) -> None:
        if value is None and optional:
            return
        if not _is_number(value) or value <= 0:
            _fail(key, "a positive number of seconds" + (" (or None)" if optional else ""), value)

    return check


def positive_number(*, optional: bool = False) -> Check:
    """A number > 0 (or None when ``optional``)."""

    def check(key: str, value: t.Any) -> None:
        if value is None and optional:
            return
        if not _is_number(value) or value <= 0:
            _fail(key, "a positive number" + (" or None" if optional else ""), value)

    return check


def seconds_or_off(*, minimum: float = 0.0) -> Check:
    """A number of seconds >= ``minimum`` (and > 0), or 0 / None: off."""

    def check(key: str, value: t.Any) -> None:
        if value is None or (_is_number(value) and value == 0):
            return
        if not _is_number(value) or value < minimum or value <= 0:
            least = f"a number of seconds >= {minimum:g}" if minimum else "a positive number of seconds"
            _fail(key, least + " (0 or None: off)", value)

    return check


def count(*, minimum: int, optional: bool = False) -> Check:
    """An integer >= ``minimum`` (or None when ``optional``)."""

    def check(key: str, value: t.Any) -> None:
        if value is None and optional:
            return
        if type(value) is not int or value < minimum:
            need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            _fail(key, need + (" or None" if optional else ""), value)

    return check


def mapping(example: str) -> Check:
    """A dict (or None, meaning empty)."""

    def check(key: str, value: t.Any) -> None:
        if value is not None and not isinstance(value, t.Mapping):
            raise ConfigError(f"{key} must be a dict {example}")

    return check


def _networks(key: str, value: t.Any) -> None:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        _fail(key, "a list of addresses or networks like '10.0.0.0/8'", value)
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError):
            _fail(key, "a list of addresses or networks like '10.0.0.0/8'", value)


def _zlib_level(key: str, value: t.Any) -> None:
    if type(value) is not int or not 1 <= value <= 9:
        _fail(key, "an integer from 1 to 9", value)


def _message_size(key: str, value: t.Any) -> None:
    if value and (type(value) is not int or value < 1024):
        _fail(key, "an integer number of bytes >= 1024 (or 0 for no limit)", value)


def _router_url(key: str, value: t.Any) -> None:
    urls = value.replace(",", " ").split() if isinstance(value, str) else value
    if (not isinstance(urls, (list, tuple)) or not urls
            or not all(isinstance(url, str) and url.startswith(("ws://", "wss://")) for url in urls)):
        _fail(key, "a URL like 'ws://127.0.0.1:8080/ws' (ws:// or wss://), or a list of them (router nodes)", value)


def _cluster(key: str, value: t.Any) -> None:
    if value is None:
        return
    if not isinstance(value, t.Mapping) or not all(
            isinstance(name, str) and isinstance(url, str) for name, url in value.items()):
        _fail(key, "None or a dict {node name: 'ws://host:port/ws'}", value)


def _socket_path(key: str, value: t.Any) -> None:
    if value is not None and (not isinstance(value, (str, os.PathLike)) or not os.fspath(value)):
        _fail(key, "a Unix socket path (or None)", value)


def _port(key: str, value: t.Any) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= 65535):
        _fail(key, "a TCP port from 1 to 65535 (or None)", value)


def _url_path(key: str, value: t.Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        _fail(key, "a URL path like '/wamp' (or None)", value)


def _ticket_secret(key: str, value: t.Any) -> None:
    if value is None:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, (str, bytes)) and v for v in values):
        raise ConfigError(f"{key} must be a non-empty string or bytes (or a list of them, for key rotation)")


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin like ``https://app.example.com``, or None if it is not one."""
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def check_origins(where: str, origins: t.Any) -> None:
    """Raise :class:`ConfigError` unless ``origins`` is a valid allow-list.

    Valid: None or empty, a list (or comma-separated string) of ``"*"``,
    ``"null"`` or origins like ``"https://app.example.com:8443"``. An entry
    that can never match (no scheme, a path, a ``*.`` wildcard) is an error,
    not a silent refusal of every browser.
    """
    if not origins:
        return
    if isinstance(origins, str):
        entries: list[t.Any] = origins.split(",")
    elif isinstance(origins, (list, tuple, set, frozenset)):
        entries = list(origins)
    else:
        raise ConfigError(f"{where} must be a list of origins like ['https://app.example.com'], '*', "
                          f"or None (same origin only), got {origins!r}")
    for entry in entries:
        if not isinstance(entry, str):
            raise ConfigError(f"{where} entries must be strings like 'https://app.example.com', got {entry!r}")
        value = entry.strip()
        if not value or value in ("*", "null"):
            continue
        try:
            parts = urllib.parse.urlsplit(value)
        except ValueError:
            parts = None
        if (parts is None or normalize_origin(value) is None or parts.path not in ("", "/") or parts.query
                or parts.fragment or parts.username is not None or "*" in value):
            raise ConfigError(f"{where} entry {value!r} is not an origin: write scheme, host and optional port, "
                              "like 'https://app.example.com:8443' (no path, no wildcards; '*' alone allows any)")


def _backlog(key: str, value: t.Any) -> None:
    if type(value) is not int or not 1 <= value <= 65535:
        _fail(key, "an integer from 1 to 65535 (the kernel caps it at net.core.somaxconn)", value)


def _role_names(key: str, value: t.Any) -> None:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) or not all(
            isinstance(role, str) and role for role in value):
        _fail(key, "a list of role names", value)


def _topics(key: str, value: t.Any) -> None:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) or not all(
            isinstance(topic, str) and topic and topic.strip() == topic for topic in value):
        _fail(key, "a list of topic URIs ('app.board.posts') or prefixes ending in '.' ('app.team.')", value)


def _event_history(key: str, value: t.Any) -> None:
    if value is None:
        return
    if not isinstance(value, t.Mapping) or not all(
            isinstance(topic, str) and topic and type(limit) is int and 1 <= limit <= 100_000
            for topic, limit in value.items()):
        _fail(key, "a dict {topic or prefix ending in '.': events kept (1 to 100000)}", value)


# --- the table ------------------------------------------------------------------------------

#: WAMP CANCEL modes (``WAMP_BRIDGE_CANCEL_MODE``; the peer checks its argument against them too).
CANCEL_MODES = ("killnowait", "kill", "skip")
#: How the app's peer logs in (``WAMP_BRIDGE_PEER_AUTHMETHOD``).
PEER_AUTHMETHODS = ("wampcra", "ticket", "anonymous")
#: Invocation policies of shared registrations (``WAMP_BRIDGE_INVOKE``).
INVOKE_POLICIES = ("single", "roundrobin", "random", "first", "last")


def _invoke_policies(key: str, value: t.Any) -> None:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) or not all(
            policy in INVOKE_POLICIES for policy in value):
        _fail(key, f"a list of invoke policies ({', '.join(INVOKE_POLICIES)})", value)
#: How annotated handlers' arguments are checked (``WAMP_BRIDGE_VALIDATION``).
VALIDATION_MODES = ("lax", "strict", "off")
#: How the relays and the app's peer reach the router (``WAMP_BRIDGE_UPSTREAM``, ``WAMP_BRIDGE_PEER_UPSTREAM``).
UPSTREAMS = ("rawsocket", "websocket")

_ROLE = "a role name"

#: Every ``WAMP_BRIDGE_*`` key, in the order the README lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting("WAMP_BRIDGE_ROUTER_URL", "ws://127.0.0.1:8080/ws", "str | list[str]",
            "Router transport for the bridge and the app's peer; several: router nodes, tried in order",
            _router_url, "peer", feeds=("Peer.url", "RelaySession.router_url", BY_NAME)),
    Setting("WAMP_BRIDGE_REALM", "realm1", "str",
            "The realm; browsers must ask for this one", text(), "peer",
            feeds=("Peer.realm", "Relay.realm", "Tickets.realm", BY_NAME)),
    Setting("WAMP_BRIDGE_PATH", "/wamp", "str | None",
            "Path of the browser WAMP endpoint (``None``: none)", _url_path, "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ALLOWED_ORIGINS", (), "list[str]",
            "Other allowed origins, exact ``scheme://host[:port]``", check_origins, "websocket", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ALLOW_MISSING_ORIGIN", True, "bool",
            "Accept upgrades without ``Origin`` (non-browsers)", flag(), "websocket", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_IDENTITY_KEY", "_user_id", "str",
            "Session key the default identity loader reads", text(), "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_USER_ROLE", "user", "str | None",
            "Role of a logged-in user when the loader gives none", text(optional=True, what=_ROLE), "endpoint",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ANONYMOUS_ROLE", "anonymous", "str | None",
            "Role without a login; ``None`` refuses anonymous", text(optional=True, what=_ROLE), "endpoint",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_TICKET_SECRET", None, "str | None",
            "Key of the bridge's tickets; same on every host", _ticket_secret, "endpoint",
            shown_default="derived from ``SECRET_KEY``", secret=True, feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_TICKET_MAX_AGE", 5.0, "seconds",
            "Seconds a ticket is valid", positive_seconds(), "endpoint", feeds=("Tickets.max_age",)),
    Setting("WAMP_BRIDGE_TICKET_BIND_PEER", True, "bool",
            "Tickets only good on the bridge's own upstream connection", flag(), "endpoint",
            feeds=("Tickets.bind_peer",)),
    Setting("WAMP_BRIDGE_BROWSER_ROLES", (), "list[str]",
            "More roles a loader may give browsers", _role_names, "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_LOGIN_TIMEOUT", 10.0, "seconds",
            "Seconds from connect to WELCOME for a browser (not counting a wait for a turn)",
            positive_seconds(), "endpoint", feeds=("Relay.login_timeout",)),
    Setting("WAMP_BRIDGE_MAX_LOGINS", 64, "int",
            "Browser logins under way upstream at once per worker; more queue", count(minimum=1), "endpoint",
            feeds=("RelaySession.max_logins",)),
    Setting("WAMP_BRIDGE_LOGIN_QUEUE_TIMEOUT", 30.0, "seconds",
            "Longest wait in that queue (then ABORT, 1013)", positive_seconds(), "endpoint",
            feeds=("RelaySession.login_queue_timeout",)),
    Setting("WAMP_BRIDGE_WS_MAX_LIFETIME", None, "seconds | None",
            "Longest browser WAMP session (else: the Flask session's)", seconds_or_off(), "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT", 100, "int | None",
            "Calls one browser session may have outstanding", count(minimum=1, optional=True), "endpoint",
            feeds=("Limits.max_calls_in_flight",)),
    Setting("WAMP_BRIDGE_MAX_DEPTH", 32, "int",
            "Nesting depth of one browser message", count(minimum=2), "endpoint", feeds=("Bounds.max_depth",)),
    Setting("WAMP_BRIDGE_MAX_ELEMENTS", 100_000, "int",
            "List and map elements of one browser message", count(minimum=1), "endpoint",
            feeds=("Bounds.max_elements",)),
    Setting("WAMP_BRIDGE_STRICT_URIS", False, "bool",
            "Browser URIs must be strict, not just loose", flag(), "endpoint", feeds=("Limits.strict_uris",)),
    Setting("WAMP_BRIDGE_MAX_SUBSCRIPTIONS", 1000, "int | None",
            "Subscriptions one browser session may hold", count(minimum=1, optional=True), "endpoint",
            feeds=("Limits.max_subscriptions",)),
    Setting("WAMP_BRIDGE_MAX_REGISTRATIONS", 100, "int | None",
            "Registrations one browser session may hold", count(minimum=1, optional=True), "endpoint",
            feeds=("Limits.max_registrations",)),
    Setting("WAMP_BRIDGE_MESSAGE_RATE", 1000.0, "float | None",
            "Requests per second of one browser session", positive_number(optional=True), "endpoint",
            feeds=("Limits.message_rate",)),
    Setting("WAMP_BRIDGE_MESSAGE_BURST", 2000, "int",
            "Requests one browser session may burst above the rate", count(minimum=1), "endpoint",
            feeds=("Limits.message_burst",)),
    Setting("WAMP_BRIDGE_MAX_URI_LENGTH", 512, "int",
            "Characters of one URI or pattern a browser sends", count(minimum=16), "endpoint",
            feeds=("Limits.max_uri_length",)),
    Setting("WAMP_BRIDGE_MAX_URI_COMPONENTS", 32, "int",
            "Components of one URI or pattern a browser sends", count(minimum=2), "endpoint",
            feeds=("Limits.max_uri_components",)),
    Setting("WAMP_BRIDGE_MAX_URI_BYTES", 32768, "int | None",
            "URI bytes of one browser session's subscriptions and registrations together",
            count(minimum=1, optional=True), "endpoint", feeds=("Limits.max_uri_bytes",)),
    Setting("WAMP_BRIDGE_BYTE_RATE", float(1 << 20), "float | None",
            "Bytes per second one browser session may send", positive_number(optional=True), "endpoint",
            feeds=("Limits.byte_rate",)),
    Setting("WAMP_BRIDGE_BYTE_BURST", 1 << 20, "int",
            "Bytes one browser session may burst above that rate", count(minimum=1), "endpoint",
            feeds=("Limits.byte_burst",)),
    Setting("WAMP_BRIDGE_USER_BYTE_RATE", float(2 << 20), "float | None",
            "Bytes per second one user may send across their sessions, per worker",
            positive_number(optional=True), "endpoint", feeds=("Caps.user_byte_rate",)),
    Setting("WAMP_BRIDGE_USER_BYTE_BURST", 4 << 20, "int",
            "Bytes one user may burst above that rate, per worker", count(minimum=1), "endpoint",
            feeds=("Caps.user_byte_burst",)),
    Setting("WAMP_BRIDGE_MAX_SESSIONS_PER_USER", 1000, "int | None",
            "Browser sessions one authid may hold, per worker", count(minimum=1, optional=True), "endpoint",
            feeds=("Caps.sessions_per_user",)),
    Setting("WAMP_BRIDGE_MAX_SESSIONS_PER_IP", None, "int | None",
            "Browser sessions one ``remote_addr`` may hold, per worker (see Cost limits)",
            count(minimum=1, optional=True), "endpoint", feeds=("Caps.sessions_per_address",)),
    Setting("WAMP_BRIDGE_PROGRESSIVE_CALLS", False, "bool",
            "Browsers may send progressive call inputs", flag(), "endpoint", feeds=("Limits.progressive_calls",)),
    Setting("WAMP_BRIDGE_BROWSER_INVOKE", ("single",), "list[str]",
            "Invoke policies a browser may register with", _invoke_policies, "endpoint",
            feeds=("Limits.invoke_policies",)),
    Setting("WAMP_BRIDGE_TARGETED_PUBLISH", False, "bool",
            "Browsers may publish with ``eligible*``, ``exclude_auth*``", flag(), "endpoint",
            feeds=("Limits.targeted_publish",)),
    Setting("WAMP_BRIDGE_DISCLOSE_BACKEND", False, "bool",
            "RESULT and EVENT details keep the identity of the app's peer and services", flag(), "endpoint",
            feeds=("Limits.disclose_backend",)),
    Setting("WAMP_BRIDGE_BROWSER_CALL_TIMEOUT", 60.0, "seconds | None",
            "Longest a browser's call waits (or its ``timeout``); then ``wamp.error.canceled``",
            seconds_or_off(), "endpoint", feeds=("Relay.call_timeout",)),
    Setting("WAMP_BRIDGE_UPSTREAM_GOODBYE_WAIT", 2.0, "seconds",
            "Wait for the router's GOODBYE reply before closing a browser's upstream", positive_seconds(),
            "endpoint", feeds=("RelaySession.router_goodbye_timeout",)),
    Setting("WAMP_BRIDGE_UPSTREAM", "rawsocket", "str",
            "How relays reach the router: ``rawsocket`` (msgpack; CBOR for CBOR browsers) or ``websocket``",
            one_of(*UPSTREAMS), "endpoint", feeds=("RelaySession.upstream", BY_NAME)),
    Setting("WAMP_BRIDGE_RAWSOCKET_PATH", None, "str | None",
            "Router's RawSocket Unix socket (same host; else TCP)", _socket_path, "endpoint",
            feeds=("RelaySession.rawsocket_path", "Peer.rawsocket_path", BY_NAME)),
    Setting("WAMP_BRIDGE_RAWSOCKET_PORT", None, "int | None",
            "Router's RawSocket TCP port (without a Unix socket)", _port, "endpoint",
            shown_default="router URL's port + 1",
            feeds=("RelaySession.rawsocket_port", "Peer.rawsocket_port", BY_NAME)),
    Setting("WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE", 1 << 20, "int",
            "Largest WebSocket message, bytes (close 1009)", _message_size, "websocket",
            feeds=("accept_websocket.max_message_size", "RelaySession.max_message_size", "Bounds.max_bytes", BY_NAME)),
    Setting("WAMP_BRIDGE_WS_PING_INTERVAL", 25.0, "seconds",
            "Seconds between server pings (``0``: off)", seconds_or_off(), "websocket",
            feeds=("accept_websocket.ping_interval",)),
    Setting("WAMP_BRIDGE_WS_IDLE_TIMEOUT", 60.0, "seconds",
            "Close after this long with no traffic (``0``: off)", seconds_or_off(), "websocket",
            feeds=("accept_websocket.idle_timeout",)),
    Setting("WAMP_BRIDGE_WS_SEND_TIMEOUT", 10.0, "seconds",
            "Close a client that stops reading for this long", seconds_or_off(), "websocket",
            feeds=("accept_websocket.send_timeout", "RelaySession.send_timeout")),
    Setting("WAMP_BRIDGE_WS_DEFLATE", True, "bool",
            "permessage-deflate with browsers that offer it", flag(), "websocket",
            feeds=("accept_websocket.deflate",)),
    Setting("WAMP_BRIDGE_WS_DEFLATE_THRESHOLD", 512, "int",
            "Messages from this many bytes up are sent compressed", count(minimum=0), "websocket",
            feeds=("DeflateOptions.threshold",)),
    Setting("WAMP_BRIDGE_WS_DEFLATE_LEVEL", 1, "int",
            "zlib level of that compression, 1 (fastest) to 9", _zlib_level, "websocket",
            feeds=("DeflateOptions.level",)),
    Setting("WAMP_BRIDGE_PEER_AUTHMETHOD", "wampcra", "str",
            "How the app's peer logs in (``wampcra``, ``ticket``)", one_of(*PEER_AUTHMETHODS), "peer",
            feeds=("auth_from_config.method", BY_NAME)),
    Setting("WAMP_BRIDGE_PEER_AUTHID", "flask-app", "str",
            "The app's peer authid", text(), "peer", feeds=("auth_from_config.authid", BY_NAME)),
    Setting("WAMP_BRIDGE_PEER_SECRET", None, "str",
            "The app's peer secret (env ``WAMP_BRIDGE_PEER_SECRET``)", secret_text(), "peer",
            shown_default="from the environment", secret=True, environ=True,
            feeds=("auth_from_config.secret", BY_NAME)),
    Setting("WAMP_BRIDGE_PEER_ROLE", "backend", "str",
            "The app's peer role (generated config)", text(what=_ROLE), "peer", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_PREFIX", "", "str",
            "URI prefix of default procedure/topic names", any_string(), "peer", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_INVOKE", "roundrobin", "str",
            "Invocation policy of the app's registrations",
            one_of(*INVOKE_POLICIES), "peer", feeds=("Peer.invoke",)),
    Setting("WAMP_BRIDGE_CALL_TIMEOUT", 10.0, "seconds | None",
            "Seconds a call waits; then CANCEL + ``CallTimeout``", positive_seconds(optional=True), "peer",
            feeds=("Peer.call_timeout",)),
    Setting("WAMP_BRIDGE_CANCEL_MODE", "killnowait", "str",
            "CANCEL mode on timeout", one_of(*CANCEL_MODES), "peer", feeds=("Peer.cancel_mode",)),
    Setting("WAMP_BRIDGE_PEER_CONCURRENCY", 100, "int",
            "Invocations/events handled at once per worker", count(minimum=1), "peer", feeds=("Peer.concurrency",)),
    Setting("WAMP_BRIDGE_PEER_BACKLOG", 1000, "int",
            "More wait here; beyond it invocations are refused", count(minimum=0), "peer", feeds=("Peer.backlog",)),
    Setting("WAMP_BRIDGE_PEER_AUTOSTART", True, "bool",
            "Start the peer when the worker boots", flag(), "peer", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_VALIDATION", "lax", "str",
            "Check annotated handlers' arguments: ``lax`` (coerce), ``strict`` or ``off``",
            one_of(*VALIDATION_MODES), "peer", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_MAX_TASKS", 100, "int",
            "Background tasks (``bridge.spawn``) running at once per worker", count(minimum=1), "peer",
            feeds=("Tasks.limit",)),
    Setting("WAMP_BRIDGE_CONNECT_TIMEOUT", 5.0, "seconds",
            "Peer: connect and join; browser: HELLO to the router's answer", positive_seconds(), "peer",
            feeds=("Peer.connect_timeout", "RelaySession.connect_timeout", "Relay.router_timeout")),
    Setting("WAMP_BRIDGE_UPSTREAM_PING_INTERVAL", 12.0, "seconds",
            "Ping a router silent this long (peer, relays; ``0``: off)", seconds_or_off(), "peer",
            feeds=("Peer.ping_interval", "RelaySession.ping_interval")),
    Setting("WAMP_BRIDGE_UPSTREAM_PING_TIMEOUT", 3.0, "seconds",
            "Then, this much more silence: the router is lost", positive_seconds(), "peer",
            feeds=("Peer.ping_timeout", "RelaySession.ping_timeout")),
    Setting("WAMP_BRIDGE_RECONNECT_INITIAL", 0.5, "seconds",
            "First reconnect delay (jittered)", positive_seconds(), "peer", feeds=("Peer.reconnect_initial",)),
    Setting("WAMP_BRIDGE_RECONNECT_FACTOR", 2.0, "float",
            "Backoff growth", positive_number(), "peer", feeds=("Peer.reconnect_factor",)),
    Setting("WAMP_BRIDGE_RECONNECT_MAX", 2.5, "seconds",
            "Longest reconnect delay (jittered down to half): back within seconds of the router",
            positive_seconds(), "peer", feeds=("Peer.reconnect_max",)),
    Setting("WAMP_BRIDGE_AUTH_CONCURRENCY", 16, "int",
            "Logins the ticket authenticator checks at once per worker (its own pool)", count(minimum=1), "peer",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_AUTH_BACKLOG", 1000, "int",
            "More logins wait here, first come first served; beyond it they are refused", count(minimum=0), "peer",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_HEALING", True, "bool",
            "Find and remove dead callees of the app's procedures (one elected worker)", flag(), "peer",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_HEALING_INTERVAL", 10.0, "seconds",
            "How often the elected worker checks every procedure's callees", positive_seconds(), "peer",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_PEER_UPSTREAM", "websocket", "str",
            "How the peer reaches the router: ``websocket`` or ``rawsocket`` (msgpack; no stalled-peer drop)",
            one_of(*UPSTREAMS), "peer", feeds=("Peer.upstream",)),
    Setting("WAMP_BRIDGE_AUTHENTICATOR", "wamp_bridge.authenticate", "str",
            "URI of the dynamic ticket authenticator", text(), "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_AUTHORIZER", None, "str | None",
            "URI of the dynamic authorizer of browser roles (``@bridge.authorizer``); None: static rules only",
            text(optional=True), "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_AUTHORIZER_TIMEOUT", 2.0, "seconds",
            "Seconds the app's authorizer may take; then the action is denied", positive_seconds(), "endpoint",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_AUTHORIZER_CONCURRENCY", 16, "int",
            "Authorizer decisions running at once per worker; beyond, denied at once", count(minimum=1),
            "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_AUTHORIZER_CACHE", 60.0, "seconds",
            "Seconds a decision answered with ``cache: True`` is reused for the same session (0: never)",
            seconds_or_off(), "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_PRESENCE_TOPICS", (), "list[str]",
            "Topics (or prefixes ending in ``.``) whose subscribers' authids a subscribed page may ask for",
            _topics, "endpoint", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_RETAIN_TOPICS", (), "list[str]",
            "Topics (or prefixes ending in ``.``) a browser may publish to with ``retain``", _topics, "endpoint",
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_SERVICES", {}, "dict",
            "Other backend principals: ``{authid: {secret, role}}``",
            mapping("{authid: {'secret': ..., 'role': ...}}"), "router", secret=True, feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_PERMISSIONS", {}, "dict",
            "Per-role permissions for the generated config", mapping("{role: [rule, ...]}"), "router",
            shown_default="two rules (below)", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ROUTER_INTERFACE", None, "str | None",
            "Interface to listen on when the URL names a host", text(optional=True), "router", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ROUTER_BACKLOG", 4096, "int",
            "Router's listen backlog (generated config; Crossbar: 50)", _backlog, "router", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ROUTER_PING_INTERVAL", 10.0, "seconds",
            "Router-side ping interval (generated config)", seconds_or_off(minimum=1), "router", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_ROUTER_PING_TIMEOUT", 5.0, "seconds",
            "Router-side ping timeout (generated config)", seconds_or_off(minimum=1), "router", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_CLUSTER", None, "dict | None",
            "Router nodes ``{name: url}`` for ``flask wamp config --node``", _cluster, "router", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_CLUSTER_SECRET", None, "str | None",
            "Seed of the nodes' link keys; the same for every node", text(optional=True), "router", secret=True,
            feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_CLUSTER_CALLS", True, "bool",
            "Whether rlinks forward registrations (else events only)", flag(), "router", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_HEALTH_PATH", None, "str | None",
            "Health check path (e.g. ``/healthz``): 200 while the peer is joined, else 503",
            _url_path, "operations", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_METRICS_PATH", None, "str | None",
            "Prometheus metrics path (e.g. ``/metrics``; the ``metrics`` extra)", _url_path,
            "operations", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_METRICS_ALLOW", ("127.0.0.0/8", "::1"), "list[str]",
            "Addresses or networks that may read the metrics (others get 403)", _networks, "operations",
            shown_default="loopback", feeds=(BY_NAME,)),
    Setting("WAMP_BRIDGE_EVENT_HISTORY", {}, "dict",
            "Events the app's peer keeps per topic (or prefix ending in ``.``) for ``get_events``: ``{topic: n}``",
            _event_history, "endpoint", feeds=(BY_NAME,)),
)

_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}

#: ``WAMP_BRIDGE_*`` names read from the environment only, never from ``app.config``: the
#: worker's request-head timeout, the path of ``crossbar`` and the test plugin's port range (see the README).
ENVIRONMENT_ONLY = frozenset({"WAMP_BRIDGE_HANDSHAKE_TIMEOUT", "WAMP_BRIDGE_CROSSBAR", "WAMP_BRIDGE_TEST_PORTS"})

#: ``{key: default}`` of every setting (read-only).
DEFAULTS: t.Mapping[str, t.Any] = types.MappingProxyType({s.key: s.default for s in SETTINGS})


def _feeds_by_target() -> dict[str, list[tuple[str, str]]]:
    """``{target: [(parameter, key), ...]}`` from the settings' ``feeds``."""
    found: dict[str, list[tuple[str, str]]] = {}
    for setting in SETTINGS:
        for feed in setting.feeds:
            if feed != BY_NAME:
                target, _, parameter = feed.partition(".")
                found.setdefault(target, []).append((parameter, setting.key))
    return found


_FEEDS = _feeds_by_target()


def _setting(key: str) -> Setting:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"{key} is not a setting of flask_wamp_bridge.settings.SETTINGS") from None


def _selected(groups: t.Iterable[str] | None) -> list[Setting]:
    if groups is None:
        return list(SETTINGS)
    chosen = set(groups)
    return [s for s in SETTINGS if s.group in chosen]


# --- reading ---------------------------------------------------------------------------------


def get(config: t.Mapping[str, t.Any], key: str) -> t.Any:
    """``config[key]``, or the key's default when ``config`` lacks it (unknown keys raise KeyError)."""
    setting = _setting(key)
    return config.get(key, setting.default)


def arguments_for(target: str, config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """``{parameter: value}`` of every setting that feeds ``target`` (a :data:`TARGETS` name), from ``config``.

    ``config`` is normally the snapshot ``init_app`` took; missing keys take their defaults.
    """
    if target not in TARGETS:
        raise KeyError(f"{target} is not in flask_wamp_bridge.settings.TARGETS")
    return {parameter: get(config, key) for parameter, key in _FEEDS.get(target, ())}


def of(app: t.Any) -> t.Mapping[str, t.Any]:
    """The settings of a Flask ``app``: what ``WampBridge.init_app`` read, else (no bridge) ``app.config``.

    Read a key with :func:`get`, which gives the default of a key ``app.config`` lacks.
    """
    read: t.Mapping[str, t.Any] | None = app.extensions.get(SNAPSHOT)
    return read if read is not None else t.cast(t.Mapping[str, t.Any], app.config)


def install(config: t.MutableMapping[str, t.Any], groups: t.Iterable[str] | None = None) -> None:
    """Put the defaults of the settings of ``groups`` (default: all) into ``config`` and check them.

    Sets only missing keys (``setdefault``); a setting with ``environ`` left at
    None takes the environment variable of the same name. A ``WAMP_BRIDGE_*``
    key that is no setting (a typo) gets a warning naming the closest one.

    :raises ConfigError: a value is invalid (the message names the key).
    """
    for key in unknown_keys(config):
        close = difflib.get_close_matches(key, list(_BY_KEY), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.warn(f"{key} is not a flask_wamp_bridge setting and is ignored{hint}", stacklevel=3)
    chosen = _selected(groups)
    for setting in chosen:
        config.setdefault(setting.key, copy.deepcopy(setting.default))
        if setting.environ and config[setting.key] is None:
            config[setting.key] = os.environ.get(setting.key)
    check(config, groups)


def check(config: t.Mapping[str, t.Any], groups: t.Iterable[str] | None = None) -> None:
    """Run the check of every setting of ``groups`` (default: all) on its value in ``config``.

    :raises ConfigError: a value is invalid (the message names the key).
    """
    chosen = _selected(groups)
    for setting in chosen:
        setting.check(setting.key, config.get(setting.key, setting.default))
    keys = {setting.key for setting in chosen}
    if {"WAMP_BRIDGE_RAWSOCKET_PATH", "WAMP_BRIDGE_ROUTER_URL"} <= keys:
        _one_router_per_socket(config)


def _one_router_per_socket(config: t.Mapping[str, t.Any]) -> None:
    """A Unix socket is one router on this host: failover over several router URLs would retry that one."""
    if get(config, "WAMP_BRIDGE_RAWSOCKET_PATH") is None:
        return
    value = get(config, "WAMP_BRIDGE_ROUTER_URL")
    urls = dict.fromkeys(value.replace(",", " ").split() if isinstance(value, str) else value)
    if len(urls) > 1:
        raise ConfigError(f"WAMP_BRIDGE_RAWSOCKET_PATH is one router's Unix socket, but WAMP_BRIDGE_ROUTER_URL "
                          f"names {len(urls)} routers: every relay would reach the same one; unset "
                          "WAMP_BRIDGE_RAWSOCKET_PATH (relays then use each router's RawSocket TCP port) or "
                          "name one router URL")


def unknown_keys(config: t.Mapping[str, t.Any]) -> list[str]:
    """The ``WAMP_BRIDGE_*`` keys of ``config`` that are not settings (environment-only names aside)."""
    return [key for key in config
            if isinstance(key, str) and key.startswith("WAMP_BRIDGE_") and key not in _BY_KEY
            and key not in ENVIRONMENT_ONLY]


def snapshot(config: t.Mapping[str, t.Any]) -> t.Mapping[str, t.Any]:
    """A read-only deep copy of every setting's value in ``config`` (what ``init_app`` read)."""
    return types.MappingProxyType({s.key: copy.deepcopy(get(config, s.key)) for s in SETTINGS})


def changed_keys(read: t.Mapping[str, t.Any], config: t.Mapping[str, t.Any]) -> list[str]:
    """The keys whose value in ``config`` differs from the ``read`` :func:`snapshot`."""
    return [s.key for s in SETTINGS if get(config, s.key) != read[s.key]]


def describe_change(read: t.Mapping[str, t.Any], config: t.Mapping[str, t.Any], key: str) -> str:
    """``KEY ('old' -> 'new')``, without the values of secret settings."""
    if _setting(key).secret:
        return key
    return f"{key} ({read[key]!r} -> {get(config, key)!r})"


# --- roles ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Roles:
    """The role sets of an app's settings (:func:`roles`): derived here only."""

    #: The app peer's role and every service's (``WAMP_BRIDGE_PEER_ROLE``, ``WAMP_BRIDGE_SERVICES``).
    backend: frozenset[str]
    #: The app peer's authid and every service's: never a browser's.
    backend_authids: frozenset[str]
    #: Roles a browser may have: the user and anonymous roles, those of ``WAMP_BRIDGE_PERMISSIONS``
    #: and ``WAMP_BRIDGE_BROWSER_ROLES``, less the backend roles.
    browser: frozenset[str]
    #: The roles the generated router config defines, in its order (backend, user, anonymous, services', the
    #: permissions'): an identity with another role cannot join a router with that config.
    defined: tuple[str, ...]


def roles(config: t.Mapping[str, t.Any]) -> Roles:
    """The :class:`Roles` of ``config`` (missing keys take their defaults; malformed entries are left out)."""
    peer_role = get(config, "WAMP_BRIDGE_PEER_ROLE")
    services = get(config, "WAMP_BRIDGE_SERVICES") or {}
    services = services if isinstance(services, t.Mapping) else {}
    permissions = get(config, "WAMP_BRIDGE_PERMISSIONS") or {}
    permissions = permissions if isinstance(permissions, t.Mapping) else {}
    service_roles = [(entry.get("role") or peer_role) if isinstance(entry, t.Mapping) else peer_role
                     for entry in services.values()]
    user_roles = [get(config, "WAMP_BRIDGE_USER_ROLE"), get(config, "WAMP_BRIDGE_ANONYMOUS_ROLE")]

    def names(values: t.Iterable[t.Any]) -> list[str]:
        return list(dict.fromkeys(v for v in values if isinstance(v, str) and v))

    backend = frozenset(names([peer_role, *service_roles]))
    browser = frozenset(names([*user_roles, *permissions, *(get(config, "WAMP_BRIDGE_BROWSER_ROLES") or ())]))
    return Roles(
        backend=backend,
        backend_authids=frozenset(names([get(config, "WAMP_BRIDGE_PEER_AUTHID"), *services])),
        browser=browser - backend,
        defined=tuple(names([peer_role, *user_roles, *service_roles, *permissions])),
    )


# --- documentation ---------------------------------------------------------------------------


def _shown_default(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    value = setting.default
    if isinstance(value, float):
        return f"``{value:g}``"
    if isinstance(value, str):
        return f"``{value}``" if value else '``""``'
    return f"``{value!r}``"


def rst_table(group: str | None = None) -> str:
    """The README's configuration table (a reStructuredText simple table), from :data:`SETTINGS`.

    With ``group``, only that group's settings (the docs show one table per group).
    """
    rows = [("Key", "Type", "Default", "Meaning")]
    rows += [(f"``{s.key}``", s.type, _shown_default(s), s.doc) for s in SETTINGS if group in (None, s.group)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    rule = "  ".join("=" * w for w in widths)

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule]) + "\n"
