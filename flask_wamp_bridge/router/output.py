"""Crossbar's console output, minus a harmless notice that looks like a crash.

Crossbar's WAMP library tries the optional ``bjdata`` (UBJSON) serializer; a
``bjdata`` wheel built for NumPy 1.x under NumPy 2 makes NumPy print a notice
and a traceback to stderr (not a Python warning, so ``PYTHONWARNINGS`` cannot
hide it), after which Crossbar runs normally without UBJSON, which the bridge
never uses. :class:`NumpyNotice` replaces that block with one line.
"""

from __future__ import annotations

__all__ = ["NumpyNotice"]

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
