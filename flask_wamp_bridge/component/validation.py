"""Arguments checked against a handler's type hints; return values made plain data.

:func:`validator_for` builds a :class:`Validator` from a function's signature
(``None`` when no parameter is annotated: nothing to check). Calling it binds
a WAMP call's ``args``/``kwargs`` to the parameters and checks each annotated
value, coercing where lax validation allows (``"3"`` for an ``int``). Any
problem raises :class:`InvalidArgument` (``wamp.error.invalid_argument``)
whose ``kwargs["errors"]`` lists every problem as
``{"argument", "problem", "message"}`` (plus ``"location"`` inside a nested
value), which a page can show next to the field.

With pydantic v2 installed (extra ``validation``) every annotation pydantic
understands is checked by it; without, a plain checker covers the simple
types (``int``, ``float``, ``str``, ``bool``, ``bytes``, ``None``, ``list``,
``dict``, ``tuple``, ``set`` with simple items, ``Optional``/``|`` unions,
``Any``) and dataclasses of these (built from a dict, as pydantic does), so a
handler gets the same values whether pydantic is installed or not. Any other
annotation needs pydantic: without it, :func:`validator_for` raises
:class:`~flask_wamp_bridge.errors.ConfigError` naming the ``validation`` extra
(at ``init_app``), instead of passing the raw value on.

:func:`to_plain` turns dataclasses and pydantic models in a return value into
plain dicts and lists. Pure: no gevent, no Flask.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import types
import typing as t

from ..errors import ApplicationError
from ..errors import ConfigError

__all__ = ["InvalidArgument", "Validator", "validator_for", "to_plain", "INVALID_ARGUMENT"]

log = logging.getLogger("flask_wamp_bridge.validation")

INVALID_ARGUMENT = "wamp.error.invalid_argument"


@functools.cache
def _pydantic() -> t.Any:
    """The pydantic module (the optional extra ``validation``), or None; imported when a handler is first checked."""
    try:
        import pydantic
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return pydantic


class InvalidArgument(ApplicationError):
    """ERROR ``wamp.error.invalid_argument``: ``args[0]`` says what, ``kwargs["errors"]`` lists each problem."""

    def __init__(self, procedure: str, errors: list[dict[str, t.Any]]) -> None:
        summary = "; ".join(f"{error['argument']}: {error['message']}" for error in errors)
        super().__init__(INVALID_ARGUMENT, f"invalid arguments for {procedure}: {summary}", errors=errors)


_Check = t.Callable[[t.Any], t.Any]  # returns the (coerced) value or raises _Problem


class _Problem(Exception):
    def __init__(self, problems: list[dict[str, t.Any]]) -> None:
        super().__init__(problems)
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class _Param:
    name: str
    kind: t.Any  # inspect.Parameter kind
    required: bool
    check: _Check | None


class Validator:
    """Binds and checks one function's arguments; see the module docstring."""

    def __init__(self, name: str, params: list[_Param]) -> None:
        self.name = name
        self._positional = [p for p in params if p.kind in (_POS_ONLY, _POS_OR_KW)]
        self._by_name = {p.name: p for p in params if p.kind in (_POS_OR_KW, _KW_ONLY)}
        self._var_args = next((p for p in params if p.kind is _VAR_POS), None)
        self._var_kwargs = next((p for p in params if p.kind is _VAR_KW), None)
        self._required = [p for p in params if p.required]

    def __call__(self, args: t.Sequence[t.Any], kwargs: dict[str, t.Any]) -> tuple[list[t.Any], dict[str, t.Any]]:
        """The checked ``(args, kwargs)`` to call the function with.

        :raises InvalidArgument: missing, extra or wrongly typed arguments.
        """
        errors: list[dict[str, t.Any]] = []
        bound: dict[str, t.Any] = {}
        out_args: list[t.Any] = []
        out_kwargs: dict[str, t.Any] = {}
        positional = self._positional
        for index, value in enumerate(args):
            if index < len(positional):
                param = positional[index]
                bound[param.name] = value
                value = _run(param.check, param.name, value, errors)
                if param.kind is _POS_ONLY:
                    out_args.append(value)
                else:
                    out_kwargs[param.name] = value
            elif self._var_args is not None:
                out_args.append(_run(self._var_args.check, index, value, errors))
            else:
                errors.append(_error(index, "unexpected", f"takes at most {len(positional)} positional "
                                                          f"argument{'s' if len(positional) != 1 else ''}"))
        for name, value in kwargs.items():
            named = self._by_name.get(name)
            if named is not None:
                if name in bound:
                    errors.append(_error(name, "duplicate", "given both by position and by name"))
                    continue
                bound[name] = value
                out_kwargs[name] = _run(named.check, name, value, errors)
            elif self._var_kwargs is not None:
                out_kwargs[name] = _run(self._var_kwargs.check, name, value, errors)
            else:
                errors.append(_error(name, "unexpected", "no such argument"))
        for param in self._required:
            if param.name not in bound:
                errors.append(_error(param.name, "missing", "required"))
        if errors:
            raise InvalidArgument(self.name, errors)
        return out_args, out_kwargs

    def __repr__(self) -> str:
        return f"<Validator {self.name}>"


_POS_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POS_OR_KW = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POS = inspect.Parameter.VAR_POSITIONAL
_KW_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_KW = inspect.Parameter.VAR_KEYWORD


def _error(argument: str | int, problem: str, message: str) -> dict[str, t.Any]:
    return {"argument": argument, "problem": problem, "message": message}


def _run(check: _Check | None, argument: str | int, value: t.Any, errors: list[dict[str, t.Any]]) -> t.Any:
    if check is None:
        return value
    try:
        return check(value)
    except _Problem as exc:
        errors.extend({"argument": argument, **problem} for problem in exc.problems)
        return value


def validator_for(fn: t.Callable[..., t.Any], *, name: str, strict: bool = False,
                  use_pydantic: bool = True) -> Validator | None:
    """A :class:`Validator` for ``fn``'s annotated parameters, or ``None`` if none is annotated.

    Follows ``functools.wraps`` chains to the original function's signature.
    An annotation that cannot be resolved leaves its parameter unchecked (logged once).
    """
    target = inspect.unwrap(fn)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    try:
        hints = t.get_type_hints(target)
    except Exception as exc:  # a forward reference that does not resolve
        log.warning("%s: cannot resolve its type hints (%s); its arguments are not checked", name, exc)
        return None
    params: list[_Param] = []
    annotated = False
    for param in signature.parameters.values():
        hint = hints.get(param.name, inspect.Parameter.empty)
        check = None
        if hint is not inspect.Parameter.empty and hint is not t.Any:
            check = _pydantic_check(hint, strict) if use_pydantic and _pydantic() is not None else \
                _plain_check(hint, strict, name, param.name)
            annotated = annotated or check is not None
        required = param.default is inspect.Parameter.empty and param.kind not in (_VAR_POS, _VAR_KW)
        params.append(_Param(param.name, param.kind, required, check))
    return Validator(name, params) if annotated else None


# -- pydantic ------------------------------------------------------------------------------


def _pydantic_check(hint: t.Any, strict: bool) -> _Check | None:
    pydantic = _pydantic()
    try:
        adapter = pydantic.TypeAdapter(hint)
    except Exception as exc:  # pydantic cannot build a schema for it
        log.warning("annotation %r cannot be checked (%s); left unchecked", hint, exc)
        return None
    validate = adapter.validate_python
    validate_json = adapter.validate_json
    error_type = pydantic.ValidationError

    def check(value: t.Any) -> t.Any:
        try:
            if strict and type(value) in (dict, list):
                # pydantic's strict JSON rules: exact scalar types, but objects may become dataclasses/models
                try:
                    data = json.dumps(value)
                except (TypeError, ValueError):  # bytes inside (msgpack, CBOR): Python rules
                    return validate(value, strict=True)
                return validate_json(data, strict=True)
            return validate(value, strict=strict)
        except error_type as exc:
            raise _Problem([_from_pydantic(error) for error in exc.errors(include_url=False)]) from None

    return check


def _from_pydantic(error: t.Any) -> dict[str, t.Any]:
    problem = {"problem": error["type"], "message": error["msg"]}
    if error.get("loc"):
        problem["location"] = list(error["loc"])
    return problem


# -- plain fallback: simple types only -----------------------------------------------------

_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", bytes: "bytes",
               list: "list", dict: "object", tuple: "list", set: "list", type(None): "null"}
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def _plain_check(hint: t.Any, strict: bool, procedure: str, argument: str) -> _Check:
    check = _plain(hint, strict)
    if check is None:
        raise ConfigError(
            f"{procedure}: the annotation of argument {argument!r} ({_name(hint)}) needs pydantic to be checked: "
            "pip install \"Flask-WAMP-Bridge[validation]\" (or declare it with validate=False, or set "
            "WAMP_BRIDGE_VALIDATION = \"off\", to take the value as it comes)")
    return check


def _name(hint: t.Any) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


def _same(value: t.Any) -> t.Any:
    return value


def _plain(hint: t.Any, strict: bool) -> _Check | None:
    if hint is None:
        hint = type(None)
    if hint is t.Any or hint is object:
        return _same
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, strict)
    origin = t.get_origin(hint)
    if origin is t.Union or origin is types.UnionType:
        options = [_plain(arg, strict) for arg in t.get_args(hint)]
        if any(option is None for option in options):
            return None
        return _union(t.cast(list[_Check], options), hint)
    if origin in (list, set, tuple, dict):
        return _container(origin, t.get_args(hint), strict)
    if hint in (list, set, tuple, dict):
        return _container(hint, (), strict)
    if hint in _TYPE_NAMES:
        return _scalar(hint, strict)
    return None


def _fail(problem: str, message: str) -> t.NoReturn:
    raise _Problem([{"problem": problem, "message": message}])


def _scalar(kind: type, strict: bool) -> _Check:
    name = _TYPE_NAMES[kind]

    def check(value: t.Any) -> t.Any:
        if type(value) is kind:
            return value
        if kind is float and type(value) is int:
            return float(value)
        if not strict:
            coerced = _coerce(kind, value)
            if coerced is not _NO:
                return coerced
        _fail(f"{name}_type", f"expected {'a ' if kind is not int else 'an '}{name}, got {type(value).__name__}")

    return check


_NO = object()


def _coerce(kind: type, value: t.Any) -> t.Any:
    if kind is int:
        if type(value) is float and value.is_integer():
            return int(value)
        if type(value) is str and value.strip().lstrip("+-").isdigit():
            return int(value)
    elif kind is float and type(value) is str:
        try:
            return float(value)
        except ValueError:
            return _NO
    elif kind is bool:
        if type(value) is int and value in (0, 1):
            return bool(value)
        if type(value) is str and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
    return _NO


def _union(options: list[_Check], hint: t.Any) -> _Check:
    def check(value: t.Any) -> t.Any:
        for option in options:
            try:
                return option(value)
            except _Problem:
                continue
        _fail("union_type", f"expected {_describe(hint)}, got {type(value).__name__}")

    return check


def _container(kind: type, item_hints: tuple[t.Any, ...], strict: bool) -> _Check | None:
    accepted: tuple[type, ...] = (list, tuple) if kind in (list, tuple, set) else (dict,)
    items: list[_Check | None] = [_plain(hint, strict) for hint in item_hints if hint is not Ellipsis]
    if any(item is None for item in items):
        return None
    name = _TYPE_NAMES[kind]

    def check(value: t.Any) -> t.Any:
        if not isinstance(value, accepted):
            _fail(f"{name}_type", f"expected a {name}, got {type(value).__name__}")
        return _items(value)

    def _items(value: t.Any) -> t.Any:
        if kind is dict:
            if len(items) == 2:
                key_check, value_check = t.cast(list[_Check], items)
                return {key_check(k): value_check(v) for k, v in value.items()}
            return value
        if not items:
            return kind(value)
        checked = []
        problems: list[dict[str, t.Any]] = []
        fixed = kind is tuple and len(items) > 1 or (kind is tuple and len(item_hints) == 1)
        for index, item in enumerate(value):
            item_check = items[index] if fixed and index < len(items) else items[0]
            try:
                checked.append(t.cast(_Check, item_check)(item))
            except _Problem as exc:
                problems.extend({**p, "location": [index]} for p in exc.problems)
        if problems:
            raise _Problem(problems)
        return kind(checked)

    return check


def _dataclass(kind: type, strict: bool) -> _Check | None:
    """Build ``kind`` from a dict, each field checked (extra keys ignored, as pydantic does)."""
    try:
        hints = t.get_type_hints(kind)
    except Exception:  # a forward reference that does not resolve
        return None
    fields: list[tuple[str, _Check, bool]] = []
    for field in dataclasses.fields(kind):
        if not field.init:
            continue
        check = _plain(hints.get(field.name, t.Any), strict)
        if check is None:
            return None
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        fields.append((field.name, check, required))

    def build(value: t.Any) -> t.Any:
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            _fail("dataclass_type", f"expected an object ({kind.__name__}), got {type(value).__name__}")
        values: dict[str, t.Any] = {}
        problems: list[dict[str, t.Any]] = []
        for name, check, required in fields:
            if name not in value:
                if required:
                    problems.append({"problem": "missing", "message": "required", "location": [name]})
                continue
            try:
                values[name] = check(value[name])
            except _Problem as exc:
                problems.extend({**p, "location": [name, *p.get("location", [])]} for p in exc.problems)
        if problems:
            raise _Problem(problems)
        return kind(**values)

    return build


def _describe(hint: t.Any) -> str:
    return " or ".join(_TYPE_NAMES.get(arg, getattr(arg, "__name__", str(arg))) for arg in t.get_args(hint))


# -- return values -------------------------------------------------------------------------


def to_plain(value: t.Any) -> t.Any:
    """``value`` with dataclass instances and pydantic models turned into dicts (inside lists and dicts too)."""
    kind = type(value)
    if kind in (int, float, str, bool, bytes) or value is None:
        return value
    if kind is list or kind is tuple:
        return [to_plain(item) for item in value]
    if kind is dict:
        return {key: to_plain(item) for key, item in value.items()}
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value))
    return value
