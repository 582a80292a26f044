"""The router URL list: one URL per router node, tried in order (pure).

``WAMP_BRIDGE_ROUTER_URL`` is one URL or several (a list, or one string with
URLs separated by commas or spaces). The peer and the relays connect to the
first that answers and move on to the next one when a connection attempt
fails, so a host attached to a router node that died reconnects to another
node of the cluster.

Over RawSocket (``WAMP_BRIDGE_UPSTREAM = "rawsocket"``) each node's address
is derived from its URL: :func:`rawsocket_address`.
"""

from __future__ import annotations

import re
import typing as t
import urllib.parse

from ..errors import ConfigError

__all__ = ["router_urls", "next_url", "in_order_from", "rawsocket_address"]

_SEPARATORS = re.compile(r"[\s,]+")


def router_urls(value: str | t.Sequence[str]) -> tuple[str, ...]:
    """The URLs of a ``WAMP_BRIDGE_ROUTER_URL`` value, in order, without repeats.

    :raises ConfigError: no URL, or one that is not a ``ws://``/``wss://`` URL.
    """
    if isinstance(value, str):
        items: list[t.Any] = [u for u in _SEPARATORS.split(value) if u]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"WAMP_BRIDGE_ROUTER_URL must be a URL or a list of URLs, got {value!r}")
    for url in items:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"WAMP_BRIDGE_ROUTER_URL {url!r} must start with ws:// or wss://")
    if not items:
        raise ConfigError("WAMP_BRIDGE_ROUTER_URL names no router URL")
    return tuple(dict.fromkeys(items))


def next_url(urls: t.Sequence[str], current: str) -> str:
    """The URL to try after ``current`` failed (wrapping around)."""
    try:
        return urls[(list(urls).index(current) + 1) % len(urls)]
    except ValueError:
        return urls[0]


def in_order_from(urls: t.Sequence[str], first: str) -> list[str]:
    """All ``urls``, starting at ``first`` (e.g. the one that worked last) and wrapping around."""
    try:
        start = list(urls).index(first)
    except ValueError:
        start = 0
    return [*urls[start:], *urls[:start]]


def rawsocket_address(url: str, path: str | None = None, port: int | None = None) -> str | tuple[str, int]:
    """The RawSocket address of the router node at ``url``: the Unix socket ``path`` (a router on this host),
    else TCP on ``url``'s host and ``port`` (None: the URL's port + 1, as the generated config has it)."""
    if path:
        return path
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", port or (parts.port or 80) + 1


def check_rawsocket_keeps_tls(urls: t.Sequence[str], path: str | None, who: str, setting: str) -> None:
    """Refuse RawSocket over TCP for a ``wss://`` router URL: it would leave the URL's TLS behind.

    A Unix socket (``path``) stays on this host and is fine. ``who`` and ``setting`` name the side and the
    setting that chooses its upstream, for the message.

    :raises ConfigError: a ``wss://`` URL and no ``path``.
    """
    if not path and any(url.startswith("wss://") for url in urls):
        raise ConfigError(f"{who} over RawSocket TCP would leave the TLS of a wss:// router URL behind: use "
                          f'WAMP_BRIDGE_RAWSOCKET_PATH (a router on this host) or {setting} = "websocket"')
