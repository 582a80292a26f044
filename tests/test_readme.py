"""README.rst's code: the quickstart's files are shown verbatim, every other Python block runs.

A block preceded by ``.. file: PATH`` must equal that file of the repository. A
Python block preceded by ``.. not run: REASON`` is skipped (keep those few:
:data:`NOT_RUN_ALLOWED`). All other Python blocks run in order in one namespace
in a fresh interpreter, as a reader copying them one after the other would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.rst"
NOT_RUN_ALLOWED = 2


class Block(t.NamedTuple):
    language: str
    line: int  # 1-based line of the block's first code line
    code: str
    marker: str  # the RST comment right before the directive, if any ("file: ...", "not run: ...")


def read_blocks(text: str) -> list[Block]:
    """The ``.. code-block::`` blocks of an RST text."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        found = re.fullmatch(r"\.\. code-block:: *(\S+)", line)
        if not found:
            continue
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = previous[3:].strip() if previous.startswith(".. ") and "::" not in previous else ""
        body_start = index + 1
        while body_start < len(lines) and not lines[body_start].strip():
            body_start += 1
        body: list[str] = []
        end = body_start
        while end < len(lines) and (not lines[end].strip() or lines[end].startswith("    ")):
            body.append(lines[end][4:])
            end += 1
        while body and not body[-1].strip():
            body.pop()
        blocks.append(Block(found.group(1), body_start + 1, "\n".join(body) + "\n", marker))
    return blocks


BLOCKS = read_blocks(README.read_text())
FILE_BLOCKS = [b for b in BLOCKS if b.marker.startswith("file:")]
PYTHON_BLOCKS = [b for b in BLOCKS if b.language == "python" and not b.marker]
NOT_RUN = [b for b in BLOCKS if b.marker.startswith("not run:")]


def test_read_blocks_finds_code_markers_and_lines() -> None:
    text = "Intro\n\n.. file: x.py\n\n.. code-block:: python\n\n    a = 1\n\n    b = 2\n\nAfter\n"
    assert read_blocks(text) == [Block("python", 7, "a = 1\n\nb = 2\n", "file: x.py")]


def test_the_quickstart_files_are_all_shown() -> None:
    shown = {b.marker.split(":", 1)[1].strip() for b in FILE_BLOCKS}
    assert shown == {"examples/quickstart/app.py", "examples/quickstart/index.html", "examples/quickstart/test_app.py"}


@pytest.mark.parametrize("block", FILE_BLOCKS, ids=lambda b: b.marker.split(":", 1)[1].strip())
def test_readme_shows_the_file_verbatim(block: Block) -> None:
    path = REPO / block.marker.split(":", 1)[1].strip()
    assert block.code == path.read_text(), f"README.rst line {block.line} differs from {path.name}: copy it again"


def test_few_blocks_are_marked_not_run() -> None:
    assert len(NOT_RUN) <= NOT_RUN_ALLOWED, [f"README.rst:{b.line}" for b in NOT_RUN]
    assert all(b.marker.split(":", 1)[1].strip() for b in NOT_RUN), "say why a block does not run"


RUNNER = """
import json, sys
for line, code in json.load(sys.stdin):
    exec(compile("\\n" * (line - 1) + code, "README.rst", "exec"), globals())
print("ran", len(sys.argv))
"""


def test_every_other_python_block_runs_in_order(tmp_path: Path) -> None:
    assert len(PYTHON_BLOCKS) >= 4
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", RUNNER],
        input=json.dumps([(b.line, b.code) for b in PYTHON_BLOCKS]),
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_readme_is_valid_restructuredtext() -> None:
    """docutils reads it without a warning (a table row past its column is an error PyPI would show)."""
    import io

    import docutils.core

    problems = io.StringIO()
    docutils.core.publish_doctree(README.read_text(encoding="utf-8"),
                                  settings_overrides={"report_level": 2, "warning_stream": problems})
    assert problems.getvalue() == ""
