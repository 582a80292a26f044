"""``.. readme-section:: Title``: the body of README.rst's section ``Title`` (without its heading).

The README stays the short path and the one copy of what it says; the docs
pages reuse its sections instead of repeating them. A missing title is an error.
"""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

README = Path(__file__).resolve().parents[2] / "README.rst"
#: README sections that are docs pages of their own: links to them (`Title`_) become links to the page.
PAGES = {
    "Quickstart": "tutorial",
    "Configuration reference": "configuration",
    "Deployment": "deployment",
    "Scaling out": "scaling",
    "Security notes": "security",
    "Known limits (Crossbar 26.10.1)": "limits",
    "Testing your app": "testing",
    "API reference": "api",
}
_SECTION_LINK = re.compile(r"`([^`<>]+)`_(?!_)")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}$")


def section_lines(lines: list[str], title: str) -> list[str]:
    """The lines of the section titled ``title``, up to the next title of the same or a higher level."""
    levels: list[str] = []  # underline characters in the order they first appear = heading levels
    start = level = None
    for index in range(len(lines) - 1):
        found = _UNDERLINE.match(lines[index + 1])
        if not found or not lines[index].strip() or len(lines[index + 1]) < len(lines[index].rstrip()):
            continue
        char = found.group(1)
        if char not in levels:
            levels.append(char)
        if start is not None and level is not None and levels.index(char) <= level:
            return lines[start:index]
        if start is None and lines[index].strip() == title:
            start, level = index + 2, levels.index(char)
    if start is None:
        raise ValueError(f"README.rst has no section titled {title!r}")
    return lines[start:]


def _relink(line: str) -> str:
    def page(found: re.Match[str]) -> str:
        title = found.group(1)
        return f":doc:`{title} <{PAGES[title]}>`" if title in PAGES else found.group(0)

    return _SECTION_LINK.sub(page, line)


class ReadmeSection(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[t.Any]:
        self.env.note_dependency(str(README))
        body = [_relink(line) for line in section_lines(README.read_text().splitlines(), self.arguments[0])]
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, StringList(body, str(README)), holder)
        return holder.children


def setup(app: t.Any) -> dict[str, t.Any]:
    app.add_directive("readme-section", ReadmeSection)
    return {"parallel_read_safe": True}
