"""Every ``WAMP_BRIDGE_*`` setting, once: default, type, one-line doc and check.

:data:`SETTINGS` is the one table. The extension, the browser endpoint, the
WebSocket routes and the Crossbar config generator all read their keys through
it, and the README's configuration table is generated from it
(:func:`rst_table`). Adding a setting is one :class:`Setting` entry::

    Setting("WAMP_BRIDGE_<NAME>", 5.0, "seconds", "Seconds a ... may take", positive_seconds(), "endpoint")

(key, default, type for the README, one-line doc, check, group). Code that has
the bridge's state reads ``state.settings[key]`` (what ``init_app`` read);
code that gets any mapping reads ``settings.get(config, key)`` (the default
when missing; an unknown key raises KeyError). Pure: imports only the errors.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing as t
import urllib.parse
import warnings

from .errors import ConfigError

__all__ = [
    "Setting",
    "Check",
    "CANCEL_MODES",
    "INVOKE_POLICIES",
    "PEER_AUTHMETHODS",
    "VALIDATION_MODES",
    "SETTINGS",
    "DEFAULTS",
    "GROUPS",
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

#: Which part of the package reads a setting: the plain WebSocket routes (``Sockets`` installs
#: only these), the browser endpoint, the app's peer, or only the generated router config.
GROUPS = ("websocket", "endpoint", "peer", "router")


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


# --- the table ------------------------------------------------------------------------------

#: WAMP CANCEL modes (``WAMP_BRIDGE_CANCEL_MODE``; the peer checks its argument against them too).
CANCEL_MODES = ("killnowait", "kill", "skip")
#: How the app's peer logs in (``WAMP_BRIDGE_PEER_AUTHMETHOD``).
PEER_AUTHMETHODS = ("wampcra", "ticket", "anonymous")
#: Invocation policies of shared registrations (``WAMP_BRIDGE_INVOKE``).
INVOKE_POLICIES = ("single", "roundrobin", "random", "first", "last")
#: How annotated handlers' arguments are checked (``WAMP_BRIDGE_VALIDATION``).
VALIDATION_MODES = ("lax", "strict", "off")

_ROLE = "a role name"

#: Every ``WAMP_BRIDGE_*`` key, in the order the README lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting("WAMP_BRIDGE_ROUTER_URL", "ws://127.0.0.1:8080/ws", "str | list[str]",
            "Router transport for the bridge and the app's peer; several: router nodes, tried in order",
            _router_url, "peer"),
    Setting("WAMP_BRIDGE_REALM", "realm1", "str",
            "The realm; browsers must ask for this one", text(), "peer"),
    Setting("WAMP_BRIDGE_PATH", "/wamp", "str | None",
            "Path of the browser WAMP endpoint (``None``: none)", _url_path, "endpoint"),
    Setting("WAMP_BRIDGE_ALLOWED_ORIGINS", (), "list[str]",
            "Other allowed origins, exact ``scheme://host[:port]``", check_origins, "websocket"),
    Setting("WAMP_BRIDGE_ALLOW_MISSING_ORIGIN", True, "bool",
            "Accept upgrades without ``Origin`` (non-browsers)", flag(), "websocket"),
    Setting("WAMP_BRIDGE_IDENTITY_KEY", "_user_id", "str",
            "Session key the default identity loader reads", text(), "endpoint"),
    Setting("WAMP_BRIDGE_USER_ROLE", "user", "str | None",
            "Role of a logged-in user when the loader gives none", text(optional=True, what=_ROLE), "endpoint"),
    Setting("WAMP_BRIDGE_ANONYMOUS_ROLE", "anonymous", "str | None",
            "Role without a login; ``None`` refuses anonymous", text(optional=True, what=_ROLE), "endpoint"),
    Setting("WAMP_BRIDGE_TICKET_SECRET", None, "str | None",
            "Key of the bridge's tickets; same on every host", _ticket_secret, "endpoint",
            shown_default="derived from ``SECRET_KEY``", secret=True),
    Setting("WAMP_BRIDGE_TICKET_MAX_AGE", 5.0, "seconds",
            "Seconds a ticket is valid", positive_seconds(), "endpoint"),
    Setting("WAMP_BRIDGE_TICKET_BIND_PEER", True, "bool",
            "Tickets only good on the bridge's own upstream connection", flag(), "endpoint"),
    Setting("WAMP_BRIDGE_BROWSER_ROLES", (), "list[str]",
            "More roles a loader may give browsers", _role_names, "endpoint"),
    Setting("WAMP_BRIDGE_LOGIN_TIMEOUT", 10.0, "seconds",
            "Seconds from connect to WELCOME for a browser (not counting a wait for a turn)",
            positive_seconds(), "endpoint"),
    Setting("WAMP_BRIDGE_MAX_LOGINS", 64, "int",
            "Browser logins under way upstream at once per worker; more queue", count(minimum=1), "endpoint"),
    Setting("WAMP_BRIDGE_LOGIN_QUEUE_TIMEOUT", 30.0, "seconds",
            "Longest wait in that queue (then ABORT, 1013)", positive_seconds(), "endpoint"),
    Setting("WAMP_BRIDGE_WS_MAX_LIFETIME", None, "seconds | None",
            "Longest browser WAMP session (else: the Flask session's)", seconds_or_off(), "endpoint"),
    Setting("WAMP_BRIDGE_MAX_CALLS_IN_FLIGHT", 100, "int | None",
            "Calls one browser session may have outstanding", count(minimum=1, optional=True), "endpoint"),
    Setting("WAMP_BRIDGE_MAX_DEPTH", 32, "int",
            "Nesting depth of one browser message", count(minimum=2), "endpoint"),
    Setting("WAMP_BRIDGE_MAX_ELEMENTS", 100_000, "int",
            "List and map elements of one browser message", count(minimum=1), "endpoint"),
    Setting("WAMP_BRIDGE_STRICT_URIS", False, "bool",
            "Browser URIs must be strict, not just loose", flag(), "endpoint"),
    Setting("WAMP_BRIDGE_MAX_SUBSCRIPTIONS", 1000, "int | None",
            "Subscriptions one browser session may hold", count(minimum=1, optional=True), "endpoint"),
    Setting("WAMP_BRIDGE_MAX_REGISTRATIONS", 100, "int | None",
            "Registrations one browser session may hold", count(minimum=1, optional=True), "endpoint"),
    Setting("WAMP_BRIDGE_MESSAGE_RATE", 1000.0, "float | None",
            "Requests per second of one browser session", positive_number(optional=True), "endpoint"),
    Setting("WAMP_BRIDGE_MESSAGE_BURST", 2000, "int",
            "Requests one browser session may burst above the rate", count(minimum=1), "endpoint"),
    Setting("WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE", 1 << 20, "int",
            "Largest WebSocket message, bytes (close 1009)", _message_size, "websocket"),
    Setting("WAMP_BRIDGE_WS_PING_INTERVAL", 25.0, "seconds",
            "Seconds between server pings (``0``: off)", seconds_or_off(), "websocket"),
    Setting("WAMP_BRIDGE_WS_IDLE_TIMEOUT", 60.0, "seconds",
            "Close after this long with no traffic (``0``: off)", seconds_or_off(), "websocket"),
    Setting("WAMP_BRIDGE_WS_SEND_TIMEOUT", 10.0, "seconds",
            "Close a client that stops reading for this long", seconds_or_off(), "websocket"),
    Setting("WAMP_BRIDGE_PEER_AUTHMETHOD", "wampcra", "str",
            "How the app's peer logs in (``wampcra``, ``ticket``)", one_of(*PEER_AUTHMETHODS), "peer"),
    Setting("WAMP_BRIDGE_PEER_AUTHID", "flask-app", "str",
            "The app's peer authid", text(), "peer"),
    Setting("WAMP_BRIDGE_PEER_SECRET", None, "str",
            "The app's peer secret (env ``WAMP_BRIDGE_PEER_SECRET``)", secret_text(), "peer",
            shown_default="from the environment", secret=True, environ=True),
    Setting("WAMP_BRIDGE_PEER_ROLE", "backend", "str",
            "The app's peer role (generated config)", text(what=_ROLE), "peer"),
    Setting("WAMP_BRIDGE_PREFIX", "", "str",
            "URI prefix of default procedure/topic names", any_string(), "peer"),
    Setting("WAMP_BRIDGE_INVOKE", "roundrobin", "str",
            "Invocation policy of the app's registrations",
            one_of(*INVOKE_POLICIES), "peer"),
    Setting("WAMP_BRIDGE_CALL_TIMEOUT", 10.0, "seconds | None",
            "Seconds a call waits; then CANCEL + ``CallTimeout``", positive_seconds(optional=True), "peer"),
    Setting("WAMP_BRIDGE_CANCEL_MODE", "killnowait", "str",
            "CANCEL mode on timeout", one_of(*CANCEL_MODES), "peer"),
    Setting("WAMP_BRIDGE_PEER_CONCURRENCY", 100, "int",
            "Invocations/events handled at once per worker", count(minimum=1), "peer"),
    Setting("WAMP_BRIDGE_PEER_BACKLOG", 1000, "int",
            "More wait here; beyond it invocations are refused", count(minimum=0), "peer"),
    Setting("WAMP_BRIDGE_PEER_AUTOSTART", True, "bool",
            "Start the peer when the worker boots", flag(), "peer"),
    Setting("WAMP_BRIDGE_VALIDATION", "lax", "str",
            "Check annotated handlers' arguments: ``lax`` (coerce), ``strict`` or ``off``",
            one_of(*VALIDATION_MODES), "peer"),
    Setting("WAMP_BRIDGE_MAX_TASKS", 100, "int",
            "Background tasks (``bridge.spawn``) running at once per worker", count(minimum=1), "peer"),
    Setting("WAMP_BRIDGE_CONNECT_TIMEOUT", 5.0, "seconds",
            "Peer: connect and join; browser: HELLO to the router's answer", positive_seconds(), "peer"),
    Setting("WAMP_BRIDGE_UPSTREAM_PING_INTERVAL", 12.0, "seconds",
            "Ping a router silent this long (peer, relays; ``0``: off)", seconds_or_off(), "peer"),
    Setting("WAMP_BRIDGE_UPSTREAM_PING_TIMEOUT", 3.0, "seconds",
            "Then, this much more silence: the router is lost", positive_seconds(), "peer"),
    Setting("WAMP_BRIDGE_RECONNECT_INITIAL", 0.5, "seconds",
            "First reconnect delay (jittered)", positive_seconds(), "peer"),
    Setting("WAMP_BRIDGE_RECONNECT_FACTOR", 2.0, "float",
            "Backoff growth", positive_number(), "peer"),
    Setting("WAMP_BRIDGE_RECONNECT_MAX", 2.5, "seconds",
            "Longest reconnect delay (jittered down to half): back within seconds of the router",
            positive_seconds(), "peer"),
    Setting("WAMP_BRIDGE_AUTH_CONCURRENCY", 16, "int",
            "Logins the ticket authenticator checks at once per worker (its own pool)", count(minimum=1), "peer"),
    Setting("WAMP_BRIDGE_AUTH_BACKLOG", 1000, "int",
            "More logins wait here, first come first served; beyond it they are refused", count(minimum=0), "peer"),
    Setting("WAMP_BRIDGE_HEALING", True, "bool",
            "Find and remove dead callees of the app's procedures (one elected worker)", flag(), "peer"),
    Setting("WAMP_BRIDGE_HEALING_INTERVAL", 10.0, "seconds",
            "How often the elected worker checks every procedure's callees", positive_seconds(), "peer"),
    Setting("WAMP_BRIDGE_AUTHENTICATOR", "wamp_bridge.authenticate", "str",
            "URI of the dynamic ticket authenticator", text(), "endpoint"),
    Setting("WAMP_BRIDGE_SERVICES", {}, "dict",
            "Other backend principals: ``{authid: {secret, role}}``",
            mapping("{authid: {'secret': ..., 'role': ...}}"), "router", secret=True),
    Setting("WAMP_BRIDGE_PERMISSIONS", {}, "dict",
            "Per-role permissions for the generated config", mapping("{role: [rule, ...]}"), "router"),
    Setting("WAMP_BRIDGE_ROUTER_INTERFACE", None, "str | None",
            "Interface to listen on when the URL names a host", text(optional=True), "router"),
    Setting("WAMP_BRIDGE_ROUTER_BACKLOG", 4096, "int",
            "Router's listen backlog (generated config; Crossbar: 50)", _backlog, "router"),
    Setting("WAMP_BRIDGE_ROUTER_PING_INTERVAL", 10.0, "seconds",
            "Router-side ping interval (generated config)", seconds_or_off(minimum=1), "router"),
    Setting("WAMP_BRIDGE_ROUTER_PING_TIMEOUT", 5.0, "seconds",
            "Router-side ping timeout (generated config)", seconds_or_off(minimum=1), "router"),
    Setting("WAMP_BRIDGE_CLUSTER", None, "dict | None",
            "Router nodes ``{name: url}`` for ``flask wamp config --node``", _cluster, "router"),
    Setting("WAMP_BRIDGE_CLUSTER_SECRET", None, "str | None",
            "Seed of the nodes' link keys; the same for every node", text(optional=True), "router", secret=True),
    Setting("WAMP_BRIDGE_CLUSTER_CALLS", True, "bool",
            "Whether rlinks forward registrations (else events only)", flag(), "router"),
)

_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}

#: ``WAMP_BRIDGE_*`` names read from the environment only, never from ``app.config``: the
#: worker's request-head timeout, the path of ``crossbar`` and the test plugin's port range (see the README).
ENVIRONMENT_ONLY = frozenset({"WAMP_BRIDGE_HANDSHAKE_TIMEOUT", "WAMP_BRIDGE_CROSSBAR", "WAMP_BRIDGE_TEST_PORTS"})

#: ``{key: default}`` of every setting (read-only).
DEFAULTS: t.Mapping[str, t.Any] = types.MappingProxyType({s.key: s.default for s in SETTINGS})


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
    for setting in _selected(groups):
        setting.check(setting.key, config.get(setting.key, setting.default))


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


def rst_table() -> str:
    """The README's configuration table (a reStructuredText simple table), from :data:`SETTINGS`."""
    rows = [("Key", "Type", "Default", "Meaning")]
    rows += [(f"``{s.key}``", s.type, _shown_default(s), s.doc) for s in SETTINGS]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    rule = "  ".join("=" * w for w in widths)

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule]) + "\n"
