"""The package layout: each folder imports only the layers below it.

websocket <- wamp <- bridge, router <- component <- testing <- extension, cli; ``errors``,
``settings``, ``signals`` and ``metrics_sink`` are the base every layer may use. ``component``
(the app's own peer: handlers' middleware, jobs, the authorizer, component mode) reads the
router's permission rules (pure) but never the bridge, which never imports it either. Every
import counts, the lazy
ones inside functions and the type-only ones too.
"""

from __future__ import annotations

import ast
import typing as t
from pathlib import Path

import flask_wamp_bridge

PACKAGE = Path(flask_wamp_bridge.__file__).parent
NAME = "flask_wamp_bridge"

BASE = {"errors", "settings", "signals", "metrics_sink"}
#: What each layer may import, besides itself and the base.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "websocket": set(),
    "wamp": {"websocket"},
    "bridge": {"websocket", "wamp"},
    "router": {"websocket", "wamp"},
    "component": {"websocket", "wamp", "router"},
    "testing": {"websocket", "wamp", "bridge", "router"},
    "top": {"websocket", "wamp", "bridge", "router", "component", "testing"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts == [NAME]:
        return "top"
    first = parts[1]
    if first in BASE:
        return "base"
    if first in ALLOWED:
        return first
    return "top"  # extension, cli and any other top-level module


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> t.Iterator[str]:
    """Every package module ``path`` imports, relative imports resolved."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == NAME:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != NAME:
                continue
            if node.module is None or target == NAME:  # "from . import x": x may be a module
                for alias in node.names:
                    yield f"{target}.{alias.name}"
            else:
                yield target


def edges() -> list[tuple[str, str]]:
    return [(module_name(path), target) for path in sorted(PACKAGE.rglob("*.py"))
            for target in imported_modules(path)]


def upward(edge: tuple[str, str]) -> bool:
    source, target = edge
    mine, theirs = layer_of(source), layer_of(target)
    if theirs == "base" or mine == theirs:
        return mine == "base" and theirs != "base"
    return theirs not in ALLOWED[mine]


def test_layout_each_folder_imports_only_downward() -> None:
    found = edges()
    assert len(found) > 50  # the walk sees the package's imports
    assert sorted({edge for edge in found if upward(edge)}) == []


def test_layout_rule_catches_an_upward_import() -> None:
    assert upward(("flask_wamp_bridge.websocket.connection", "flask_wamp_bridge.wamp.session"))
    assert upward(("flask_wamp_bridge.router.process", "flask_wamp_bridge.bridge.relay"))
    assert upward(("flask_wamp_bridge.errors", "flask_wamp_bridge.websocket.frames"))
    assert upward(("flask_wamp_bridge.testing", "flask_wamp_bridge.extension"))
    assert upward(("flask_wamp_bridge.component.run", "flask_wamp_bridge.extension"))
    assert upward(("flask_wamp_bridge.component.schedule", "flask_wamp_bridge.bridge.relay"))
    assert upward(("flask_wamp_bridge.wamp.peer", "flask_wamp_bridge.component.tasks"))
    assert not upward(("flask_wamp_bridge.component.schedule", "flask_wamp_bridge.wamp.peer"))
    assert not upward(("flask_wamp_bridge.extension", "flask_wamp_bridge.component.middleware"))
    assert not upward(("flask_wamp_bridge.bridge.relay_io", "flask_wamp_bridge.websocket.connection"))
    assert not upward(("flask_wamp_bridge.extension", "flask_wamp_bridge.cli"))
    assert not upward(("flask_wamp_bridge.settings", "flask_wamp_bridge.errors"))
