"""Crossbar's console output, minus a harmless notice that looks like a crash.

Crossbar's WAMP library tries the optional ``bjdata`` (UBJSON) serializer; a
``bjdata`` wheel built for NumPy 1.x under NumPy 2 makes NumPy print a notice
and a traceback to stderr (not a Python warning, so ``PYTHONWARNINGS`` cannot
hide it), after which Crossbar runs normally without UBJSON, which the bridge
never uses. :class:`NumpyNotice` replaces that block with one line;
:func:`import_quietly` keeps it out of a process that imports that library
itself (the pytest plugin's client), logging the line at debug instead.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import typing as t

__all__ = ["NumpyNotice", "import_quietly"]

log = logging.getLogger(__name__)

_START = "A module that was compiled using NumPy 1.x"
_END = "_ARRAY_API not found"
_MAX_LINES = 80  # the notice and its traceback are ~40 lines: never swallow more than this
SUMMARY = ("(Crossbar's optional UBJSON serializer is off: its bjdata module was built for NumPy 1.x; harmless, "
           "the bridge does not use UBJSON)\n")


class NumpyNotice:
    """Feed Crossbar's lines one by one to :meth:`filter`; it returns what to show."""

    def __init__(self) -> None:
        self._skipped: int | None = None  # lines dropped so far while inside the notice

    def filter(self, line: str) -> str:
        if self._skipped is None:
            if _START in line:
                self._skipped = 1
                return ""
            return line
        self._skipped += 1
        if _END in line or self._skipped >= _MAX_LINES:
            self._skipped = None
            return SUMMARY
        return ""


class _Filtered:
    """A stderr stand-in: whole lines through a :class:`NumpyNotice`, the rest to ``target``."""

    def __init__(self, target: t.TextIO) -> None:
        self.target = target
        self.notice = NumpyNotice()
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            shown = self.notice.filter(line + "\n")
            if shown == SUMMARY:
                log.debug(SUMMARY.strip())
            elif shown:
                self.target.write(shown)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.target.write(self.pending)
            self.pending = ""
        self.target.flush()


def import_quietly(*modules: str) -> None:
    """Import ``modules`` in order with NumPy's notice filtered out of stderr; everything else still goes there."""
    if all(module in sys.modules for module in modules):
        return
    filtered = _Filtered(sys.stderr)
    try:
        with contextlib.redirect_stderr(t.cast(t.TextIO, filtered)):
            for module in modules:
                importlib.import_module(module)
    finally:
        filtered.flush()
