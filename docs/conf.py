"""Sphinx configuration: ``./scripts/docs`` builds the HTML with warnings as errors."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS.parent)]

import flask_wamp_bridge  # noqa: E402

project = "Flask-WAMP-Bridge"
release = version = flask_wamp_bridge.__version__
extensions = ["sphinx.ext.autodoc", "readme_sections", "settings_reference"]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"Flask-WAMP-Bridge {release}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# The plugin's fixtures and the worker import pytest, gevent and gunicorn: all are installed where the docs build.
nitpicky = False
