"""Sans-IO RFC 6455 opening handshake: build and check a request, build and check a response.

No sockets, no gevent. The client side (:func:`build_request`,
:func:`split_head`, :func:`parse_response`, :func:`check_response`) is used
by :func:`~flask_wamp_bridge.websocket.client.connect`, the router's readiness
probe and the tests' raw sockets; the server side (:func:`is_upgrade`,
:func:`check_request`, :func:`build_response`) by the gunicorn worker.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import typing as t

from ..errors import ConfigError
from ..errors import ConnectError

__all__ = [
    "make_key",
    "is_valid_key",
    "accept_key",
    "parse_header_tokens",
    "build_request",
    "is_upgrade",
    "request_headers",
    "check_request",
    "Refusal",
    "build_response",
    "split_head",
    "Response",
    "parse_response",
    "refusal_excerpt",
    "check_response",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def make_key() -> str:
    """A fresh random ``Sec-WebSocket-Key``."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def is_valid_key(key: str) -> bool:
    """Whether ``key`` is a base64-encoded 16-byte value, as RFC 6455 4.1 requires."""
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except ValueError:
        return False


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``Sec-WebSocket-Key`` ``key``."""
    digest = hashlib.sha1(key.strip().encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_header_tokens(value: str | None) -> list[str]:
    """Split a comma-separated header value (``Sec-WebSocket-Protocol``, ``Connection``) into tokens."""
    if not value:
        return []
    return [token.strip() for token in value.split(",") if token.strip()]


def _check_field(name: str, value: str, what: str) -> None:
    if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
        raise ConfigError(f"{what} {name!r} contains a line break")


# --- the client's request -----------------------------------------------------------------


def build_request(
    target: str,
    host: str,
    key: str,
    *,
    subprotocols: t.Sequence[str] = (),
    headers: t.Iterable[tuple[str, str]] = (),
) -> bytes:
    """The upgrade request for ``target`` (path and query) at ``host`` (the ``Host`` header's value).

    ``subprotocols`` are offered in order of preference; ``headers`` follow the
    handshake's own. :raises ConfigError: a header contains a line break.
    """
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    for name, value in headers:
        _check_field(name, value, "header")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- the server's side --------------------------------------------------------------------


def is_upgrade(upgrade: str | None) -> bool:
    """Whether an ``Upgrade`` header value asks for a WebSocket."""
    return "websocket" in parse_header_tokens((upgrade or "").lower())


def request_headers(environ: t.Mapping[str, t.Any]) -> dict[str, str]:
    """The handshake's request headers from a WSGI ``environ``, by lowercase name."""
    names = ("connection", "sec-websocket-version", "sec-websocket-key", "sec-websocket-protocol", "upgrade")
    return {name: environ.get("HTTP_" + name.upper().replace("-", "_"), "") for name in names}


class Refusal(t.NamedTuple):
    """Why an upgrade request is not a valid handshake (answered 400), and headers for the answer."""

    message: str
    headers: list[tuple[str, str]]


def check_request(method: str, http_version: str, headers: t.Mapping[str, str]) -> Refusal | None:
    """Check an upgrade request (``headers`` by lowercase name, as :func:`request_headers`); None when valid."""
    if method != "GET":
        return Refusal("A WebSocket handshake must be a GET request.", [])
    if http_version != "HTTP/1.1":
        return Refusal("A WebSocket handshake needs HTTP/1.1.", [])
    if "upgrade" not in parse_header_tokens(headers.get("connection", "").lower()):
        return Refusal("A WebSocket handshake needs 'Connection: Upgrade'.", [])
    if headers.get("sec-websocket-version", "").strip() != "13":
        return Refusal("Unsupported Sec-WebSocket-Version: this server speaks version 13.",
                       [("Sec-WebSocket-Version", "13")])
    if not is_valid_key(headers.get("sec-websocket-key", "")):
        return Refusal("Missing or malformed Sec-WebSocket-Key.", [])
    return None


def build_response(
    key: str, subprotocol: str | None, headers: t.Iterable[tuple[str, str]] = ()
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The ``101 Switching Protocols`` answering ``Sec-WebSocket-Key`` ``key``: the head, and its headers encoded.

    :raises ConfigError: a header contains a line break.
    """
    fields = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        fields.append(("Sec-WebSocket-Protocol", subprotocol))
    fields.extend(headers)
    head = bytearray(b"HTTP/1.1 101 Switching Protocols\r\n")
    encoded = []
    for name, value in fields:
        _check_field(name, value, "response header")
        pair = (name.encode("latin-1"), value.encode("latin-1"))
        encoded.append(pair)
        head += pair[0] + b": " + pair[1] + b"\r\n"
    head += b"\r\n"
    return bytes(head), encoded


# --- the client's check of the response -----------------------------------------------------


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """``(head, rest)`` once ``data`` holds a whole response head (without its blank line), else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    return data[:end], data[end + 4 :]


class Response(t.NamedTuple):
    """A response head: its status line, the status code (0 when it is not HTTP) and headers by lowercase name."""

    status_line: str
    status: int
    fields: dict[str, str]


def parse_response(head: bytes) -> Response:
    """Parse a response head; repeated headers are joined with commas."""
    text = head.decode("latin-1")
    status_line, _, header_block = text.partition("\r\n")
    fields: dict[str, str] = {}
    for line in header_block.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            name = name.strip().lower()
            fields[name] = f"{fields[name]}, {value.strip()}" if name in fields else value.strip()
    words = status_line.split(None, 2)
    status = 0
    if len(words) >= 2 and words[0].startswith("HTTP/") and words[1].isdigit():
        status = int(words[1])
    return Response(status_line, status, fields)


def refusal_excerpt(body: bytes) -> str:
    """The text of a refusal's body, for an error message (HTML tags and runs of space dropped)."""
    text = re.sub(r"<[^>]*>", " ", body[:2000].decode("utf-8", "replace"))
    return " ".join(text.split())[:300]


def check_response(head: bytes, key: str, offered: t.Sequence[str], *, url: str, body: bytes = b"") -> str | None:
    """Check the server's answer to a request made with ``key`` offering ``offered``; the chosen subprotocol.

    :param body: what followed a refusal's head, quoted in the error.
    :raises ConnectError: not HTTP, not a 101, or a 101 that breaks the handshake.
    """
    response = parse_response(head)
    words = response.status_line.split(None, 2)
    if len(words) < 2 or not words[0].startswith("HTTP/"):
        raise ConnectError(f"{url} did not answer with HTTP: {response.status_line[:100]!r}")
    if words[1] != "101":
        excerpt = refusal_excerpt(body)
        detail = f": {excerpt}" if excerpt else ""
        raise ConnectError(f"{url} refused the WebSocket handshake with {response.status_line.strip()!r}{detail}")
    fields = response.fields
    if fields.get("upgrade", "").lower() != "websocket" or "upgrade" not in parse_header_tokens(
        fields.get("connection", "").lower()
    ):
        raise ConnectError(f"{url} answered 101 without 'Upgrade: websocket' and 'Connection: Upgrade'")
    if fields.get("sec-websocket-accept") != accept_key(key):
        raise ConnectError(f"{url} answered with a wrong Sec-WebSocket-Accept; it is not a WebSocket server")
    chosen = fields.get("sec-websocket-protocol") or None
    if offered:
        if chosen is None:
            raise ConnectError(
                f"{url} accepted the WebSocket but chose none of the offered subprotocols ({', '.join(offered)})"
            )
        if chosen not in offered:
            raise ConnectError(
                f"{url} chose subprotocol {chosen!r}, which was not offered ({', '.join(offered)})"
            )
    elif chosen is not None:
        raise ConnectError(f"{url} chose subprotocol {chosen!r} although none was offered")
    if fields.get("sec-websocket-extensions"):
        raise ConnectError(f"{url} enabled extensions that were not offered: {fields['sec-websocket-extensions']}")
    return chosen
