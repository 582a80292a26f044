"""Who a browser's WAMP session is: the frozen :class:`Identity` and how to get one.

The bridge reads identity from the Flask session inside the WebSocket upgrade's
request context, freezes it into an :class:`Identity`, and only then spawns the
greenlets that relay the session. An identity loader (the app's hook, or
:func:`default_identity_loader`) may return an :class:`Identity`, an authid
string, a dict or an ``(authid, authrole[, authextra])`` tuple;
:func:`coerce_identity` turns any of those into an :class:`Identity`.

Nothing here writes ``flask.session``: after the 101 no ``Set-Cookie`` can
reach the browser.
"""

from __future__ import annotations

import collections.abc as c
import dataclasses
import math
import typing as t

from flask import current_app
from flask import session

from .. import settings
from ..errors import ConfigError

__all__ = [
    "Identity",
    "FrozenDict",
    "coerce_identity",
    "default_identity_loader",
    "thaw",
    "rewrite_hello",
]

#: What :func:`coerce_identity` accepts (``None`` means "no identity": anonymous or refused).
IdentityLike = t.Union["Identity", str, int, t.Mapping[str, t.Any], t.Sequence[t.Any], None]

_DICT_KEYS = frozenset({"authid", "authrole", "authextra"})


class FrozenDict(c.Mapping[str, t.Any]):
    """An immutable, hashable mapping with string keys (used for ``authextra``)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: t.Mapping[str, t.Any] | None = None) -> None:
        self._data: dict[str, t.Any] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> t.Any:
        return self._data[key]

    def __iter__(self) -> t.Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, c.Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


def _freeze(value: t.Any, where: str) -> t.Any:
    """Return an immutable copy of a JSON-like value, or raise ``TypeError``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}; authextra values must be finite numbers")
        return value
    if isinstance(value, c.Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has key {key!r}; authextra keys must be strings")
            frozen[key] = _freeze(item, f"{where}[{key!r}]")
        return FrozenDict(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item, f"{where}[{i}]") for i, item in enumerate(value))
    raise TypeError(
        f"{where} is a {type(value).__name__}; authextra must hold only JSON-like values "
        "(dict, list, str, int, float, bool, None)"
    )


def thaw(value: t.Any) -> t.Any:
    """Return a plain ``dict``/``list`` copy of a value frozen by :class:`Identity`."""
    if isinstance(value, c.Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


@dataclasses.dataclass(frozen=True, init=False)
class Identity:
    """The WAMP identity of one browser session, frozen before any greenlet sees it.

    :param authid: who the user is at the router (e.g. Flask-Login's user id).
    :param authrole: the router role the session gets (its permissions).
    :param authextra: extra JSON-like data for the router's WELCOME ``authextra``;
        stored as a :class:`FrozenDict` of immutable values.
    """

    __slots__ = ("authid", "authrole", "authextra")

    authid: str
    authrole: str
    authextra: t.Mapping[str, t.Any]

    def __init__(self, authid: str, authrole: str, authextra: t.Mapping[str, t.Any] | None = None) -> None:
        if not isinstance(authid, str) or not authid:
            raise TypeError(f"authid must be a non-empty str, got {authid!r}")
        if not isinstance(authrole, str) or not authrole:
            raise TypeError(f"authrole must be a non-empty str, got {authrole!r}")
        if authextra is None:
            authextra = {}
        if not isinstance(authextra, c.Mapping):
            raise TypeError(f"authextra must be a mapping, got {type(authextra).__name__}")
        object.__setattr__(self, "authid", authid)
        object.__setattr__(self, "authrole", authrole)
        object.__setattr__(self, "authextra", _freeze(authextra, "authextra"))

    def to_dict(self) -> dict[str, t.Any]:
        """Plain JSON-able form: ``{"authid", "authrole", "authextra"}``."""
        return {"authid": self.authid, "authrole": self.authrole, "authextra": thaw(self.authextra)}


def coerce_identity(value: IdentityLike, default_role: str | None) -> Identity | None:
    """Turn what an identity loader returned into an :class:`Identity` (or ``None``).

    Accepted forms:

    - ``None`` (or ``""``): no identity; the session is anonymous or refused;
    - an :class:`Identity`, returned as is;
    - a ``str`` (or ``int``) authid, given ``default_role``;
    - a dict with ``"authid"`` and optionally ``"authrole"`` and ``"authextra"``;
    - a tuple ``(authid, authrole)`` or ``(authid, authrole, authextra)``.

    :raises TypeError: the value has none of these forms.
    :raises ConfigError: an authid came without a role and ``default_role`` is ``None``.
    """
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, Identity):
        return value
    if isinstance(value, bool):
        raise TypeError(f"the identity loader returned {value!r}; return an authid str, a dict, "
                        "an (authid, authrole[, authextra]) tuple, an Identity, or None")
    if isinstance(value, (str, int)):
        return Identity(str(value), _need_role(default_role, str(value)))
    if isinstance(value, c.Mapping):
        unknown = set(value) - _DICT_KEYS
        if unknown:
            raise TypeError(f"identity dict has unknown keys {sorted(unknown)!r}; "
                            "use only 'authid', 'authrole' and 'authextra'")
        if "authid" not in value:
            raise TypeError("identity dict has no 'authid'; return None for no identity")
        authid = value["authid"]
        if isinstance(authid, int) and not isinstance(authid, bool):
            authid = str(authid)
        role = value.get("authrole") or _need_role(default_role, authid)
        return Identity(authid, role, value.get("authextra"))
    if isinstance(value, tuple) and len(value) in (2, 3):
        authid = value[0]
        if isinstance(authid, int) and not isinstance(authid, bool):
            authid = str(authid)
        return Identity(authid, *value[1:])
    raise TypeError(
        f"the identity loader returned a {type(value).__name__}; return an authid str, a dict "
        "{'authid', 'authrole', 'authextra'}, an (authid, authrole[, authextra]) tuple, an "
        "Identity, or None for no identity"
    )


def _need_role(default_role: str | None, authid: t.Any) -> str:
    if not default_role:
        raise ConfigError(
            f"identity {authid!r} has no authrole and no default role is configured; set "
            "WAMP_BRIDGE_USER_ROLE or return (authid, authrole) from the identity loader"
        )
    return default_role


def default_identity_loader() -> str | None:
    """Read the logged-in user's authid in the current request context.

    With Flask-Login installed and set up on the app, this is
    ``str(current_user.get_id())`` for an authenticated user. Otherwise it is
    ``flask.session.get(key)`` with the key ``WAMP_BRIDGE_IDENTITY_KEY`` (default
    ``"_user_id"``, Flask-Login's). Returns ``None`` when nobody is logged in.
    Never writes the session.
    """
    if getattr(current_app, "login_manager", None) is not None:
        try:
            from flask_login import current_user
        except ImportError:  # pragma: no cover - login_manager set by something else
            pass
        else:
            if current_user and current_user.is_authenticated:
                user_id = current_user.get_id()
                return None if user_id is None else str(user_id)
            return None
    key = settings.get(settings.of(current_app), "WAMP_BRIDGE_IDENTITY_KEY")
    user_id = session.get(key)
    if user_id is None or user_id == "":
        return None
    return str(user_id)


#: HELLO.Details keys that carry the client's claimed identity: replaced by the server's.
_AUTH_KEYS = ("authid", "authrole", "authmethods", "authextra")


def rewrite_hello(hello: list[t.Any], identity: Identity) -> list[t.Any]:
    """Return ``hello`` with the client's claimed identity replaced by ``identity``.

    ``authid``, ``authrole``, ``authmethods`` and ``authextra`` in the details
    are replaced (``authmethods`` becomes ``["ticket"]``); every other key, known
    or not, is kept as it was.
    """
    details = {key: value for key, value in hello[2].items() if key not in _AUTH_KEYS}
    details["authmethods"] = ["ticket"]
    details["authid"] = identity.authid
    if identity.authextra:
        details["authextra"] = thaw(identity.authextra)
    return [hello[0], hello[1], details, *hello[3:]]
