"""Translate a WAMP message from one serializer to another, by the WAMP spec's rules, as Crossbar does.

Pure. A router that sees a message from a JSON client and hands it to a
msgpack client decodes it into values and encodes those again; this module
does the same with the same value model, so a client sees through a
translation what it would see from Crossbar directly:

==========  ===============================  ==================================
value       JSON (text)                      msgpack / CBOR
==========  ===============================  ==================================
binary      a string ``"\\u0000" + base64``  bin / byte string
integer     any size                         msgpack: -2**63 .. 2**64-1;
                                             CBOR: any size (bignum tags)
float       ``1.5``, ``1.0``, ``1e2`` (all   float64 (a whole float stays a
            floats)                          float: 1.0 is not 1)
map key     string                           string (msgpack: Crossbar takes
                                             only string keys)
==========  ===============================  ==================================

As autobahn's JSON decoder, only *values* (not map keys) starting with
``"\\u0000"`` are binary, and their base64 is read leniently (characters
outside the alphabet are skipped; wrong padding fails). Encoding binary for
JSON uses standard base64 with padding.

What the target cannot carry raises
:class:`~flask_wamp_bridge.errors.PayloadOutOfBounds`, for that message
only: an integer outside msgpack's range, a non-string map key or a CBOR tag
for msgpack, a NaN or infinity for JSON (Crossbar would send ``NaN``, which a
browser's ``JSON.parse`` refuses), malformed base64 in a JSON binary string.

A message not valid in its source serializer raises
:class:`~flask_wamp_bridge.errors.RemoteProtocolError` (the bridge normally
hands over the message it already decoded and checked).

:func:`translate` does no work when source and target are the same (the
bytes go on unchanged), and a JSON text without ``\\u0000`` is not walked at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing as t

import cbor2
import msgpack

from ..errors import PayloadOutOfBounds
from ..errors import RemoteProtocolError

__all__ = ["SERIALIZERS", "decode", "encode", "binary_from_json", "translate"]

#: The serializers this module translates between.
SERIALIZERS = ("json", "msgpack", "cbor")

_NUL_ESCAPE = "\\u0000"  # how U+0000 must appear in JSON text (raw control characters are invalid)
_MSGPACK_INT = (-(1 << 63), (1 << 64) - 1)


def _json_default(value: t.Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "\x00" + base64.b64encode(value).decode("ascii")
    raise TypeError(f"a {type(value).__name__} has no JSON form")


# one encoder for every call: json.dumps with options builds a new one each time
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)


def binary_from_json(message: t.Any, text: str | None = None) -> t.Any:
    """Turn the ``"\\u0000" + base64`` strings of a JSON-decoded message into bytes, in place.

    With the JSON ``text`` it came from, a text holding no ``\\u0000`` escape
    is returned as is without a walk (no string can start with U+0000).

    :raises PayloadOutOfBounds: malformed base64.
    """
    if text is not None and _NUL_ESCAPE not in text:
        return message
    stack = [message]
    while stack:
        container = stack.pop()
        items = container.items() if type(container) is dict else enumerate(container)
        for key, value in items:
            kind = type(value)
            if kind is str:
                if value and value[0] == "\x00":
                    try:
                        container[key] = base64.b64decode(value[1:])
                    except (binascii.Error, ValueError) as exc:
                        raise PayloadOutOfBounds(f"a JSON binary string is not valid base64: {exc}") from exc
            elif kind is list or kind is dict:
                stack.append(value)
    return message


def _check_for_msgpack(message: t.Any) -> None:
    low, high = _MSGPACK_INT
    stack = [message]
    while stack:
        container = stack.pop()
        if type(container) is dict:
            for key in container:
                if type(key) is not str:
                    raise PayloadOutOfBounds(f"a map key of type {type(key).__name__}: msgpack upstream takes strings")
            values: t.Iterable[t.Any] = container.values()
        else:
            values = container
        for value in values:
            kind = type(value)
            if kind is list or kind is dict:
                stack.append(value)
            elif kind is int and not low <= value <= high:
                raise PayloadOutOfBounds("an integer outside msgpack's range (-2**63 .. 2**64-1)")
            elif kind not in _PLAIN:
                raise PayloadOutOfBounds(f"a {kind.__name__} value has no msgpack form")


_PLAIN = frozenset({str, bytes, int, float, bool, type(None), list, dict})


def decode(serializer: str, data: str | bytes) -> list[t.Any]:
    """Decode one message into the value model (binary as bytes in every serializer).

    :raises RemoteProtocolError: not valid in ``serializer`` (:class:`PayloadOutOfBounds`: bad base64).
    """
    if serializer not in SERIALIZERS:
        raise ValueError(f"unknown serializer {serializer!r}; use one of {', '.join(SERIALIZERS)}")
    try:
        if serializer == "json":
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            return t.cast(list[t.Any], binary_from_json(json.loads(text), text))
        if serializer == "msgpack":
            return t.cast(list[t.Any], msgpack.unpackb(data, raw=False, strict_map_key=False))
        return t.cast(list[t.Any], cbor2.loads(t.cast(bytes, data)))
    except RemoteProtocolError:
        raise
    except Exception as exc:  # each codec raises its own family
        raise RemoteProtocolError(f"a message is not valid {serializer}: {exc}") from exc


def encode(serializer: str, message: list[t.Any], *, checked: bool = False) -> str | bytes:
    """Encode a value-model message in ``serializer`` (JSON as text).

    :param checked: for msgpack: the message holds only string map keys and plain values (no walk).
    :raises PayloadOutOfBounds: a value the serializer cannot carry.
    """
    try:
        if serializer == "json":
            return _JSON_ENCODER.encode(message)
        if serializer == "msgpack":
            if not checked:
                _check_for_msgpack(message)
            return t.cast(bytes, msgpack.packb(message, use_bin_type=True))
        if serializer == "cbor":
            return cbor2.dumps(message)
    except PayloadOutOfBounds:
        raise
    except (TypeError, ValueError, OverflowError, cbor2.CBOREncodeError) as exc:
        raise PayloadOutOfBounds(f"the message has no {serializer} form: {exc}") from exc
    raise ValueError(f"unknown serializer {serializer!r}; use one of {', '.join(SERIALIZERS)}")


def translate(
    data: str | bytes, source: str, target: str, decoded: list[t.Any] | None = None
) -> str | bytes:
    """``data`` (one message in ``source``) as the same message in ``target``.

    :param decoded: the message as the bridge's plain decoder already made it
        from ``data`` (JSON binary strings still strings); it is changed in place.
    :returns: ``data`` itself when ``source == target``.
    :raises PayloadOutOfBounds: a value ``target`` cannot carry (see the module docstring).
    """
    if source == target:
        return data
    if decoded is None:
        message = decode(source, data)
    elif source == "json":
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        message = binary_from_json(decoded, text)
    else:
        message = decoded
    # JSON holds no map key but strings and no tags (packb itself refuses a too large integer):
    # only a CBOR message needs the walk
    return encode(target, message, checked=source != "cbor")
