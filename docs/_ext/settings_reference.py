"""``.. wamp-bridge-settings::``: the configuration reference, generated from the settings table.

One section and table per group of :data:`flask_wamp_bridge.settings.GROUPS`
(titled by ``GROUP_TITLES``), each :func:`flask_wamp_bridge.settings.rst_table`
of that group, built from :data:`flask_wamp_bridge.settings.SETTINGS`, the one
place where each ``WAMP_BRIDGE_*`` key, its default, type and meaning are defined.
"""

from __future__ import annotations

import typing as t

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


class SettingsReference(SphinxDirective):
    def run(self) -> list[t.Any]:
        from flask_wamp_bridge import settings

        lines: list[str] = []
        for group in settings.GROUPS:
            title = settings.GROUP_TITLES[group]
            lines += [title, "-" * len(title), "", *settings.rst_table(group).splitlines(), ""]
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, settings.__file__), holder)
        return holder.children


def setup(app: t.Any) -> dict[str, t.Any]:
    app.add_directive("wamp-bridge-settings", SettingsReference)
    return {"parallel_read_safe": True}
