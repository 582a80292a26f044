"""``.. wamp-bridge-settings::``: the configuration reference, generated from the settings table.

The table is :func:`flask_wamp_bridge.settings.rst_table`, built from
:data:`flask_wamp_bridge.settings.SETTINGS`, the one place where each
``WAMP_BRIDGE_*`` key, its default, type and meaning are defined.
"""

from __future__ import annotations

import typing as t

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class SettingsReference(SphinxDirective):
    def run(self) -> list[t.Any]:
        from flask_wamp_bridge import settings

        holder = nodes.container()
        self.state.nested_parse(StringList(settings.rst_table().splitlines(), settings.__file__), 0, holder)
        return holder.children


def setup(app: t.Any) -> dict[str, t.Any]:
    app.add_directive("wamp-bridge-settings", SettingsReference)
    return {"parallel_read_safe": True}
