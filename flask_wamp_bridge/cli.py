"""``flask wamp ...``: generate the Crossbar config and run a development router.

The extension attaches :data:`wamp_cli` with ``app.cli.add_command(wamp_cli)``:

- ``flask wamp config [--output FILE] [--node NAME]`` prints (or writes) the generated config JSON
  (with ``--node``, of that node of ``WAMP_BRIDGE_CLUSTER``; ``--output`` then also writes its ``key.priv``);
- ``flask wamp router [--cbdir DIR] [--config FILE] [--node NAME]`` runs Crossbar in the
  foreground until Ctrl-C: with ``--config``, on that file as it is (e.g. the
  one ``flask wamp config -o FILE`` wrote, edited or not); without it, on a
  config generated afresh into ``DIR/config.json`` (with ``--node``, that
  node's, and its ``key.priv`` in ``DIR``);
- ``flask wamp run`` runs the app as a WAMP component: its peer alone, no HTTP,
  in the foreground with gevent, until Ctrl-C or SIGTERM (it then leaves with GOODBYE).

Crossbar is looked up by :func:`~flask_wamp_bridge.router.process.find_crossbar`:
first in the app's own environment (``pip install "Flask-WAMP-Bridge[router]"``).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from . import settings as _settings
from .errors import ConfigError
from .router.cluster import write_node_key
from .router.config import make_config
from .router.config import save_config
from .router.process import find_crossbar

__all__ = ["wamp_cli"]

#: The ``flask wamp`` command group.
wamp_cli = AppGroup("wamp", help="WAMP bridge: Crossbar router config and a development router.")


def _config(node: str | None = None) -> dict[str, t.Any]:
    try:
        return make_config(_settings.of(current_app), node=node)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _write_key(node: str | None, cbdir: Path) -> None:
    if node is not None:  # a cluster node: its link key (Crossbar's key.priv) goes next to the config
        write_node_key(_settings.of(current_app), node, cbdir)
        click.echo(f"wrote {cbdir / 'key.priv'}", err=True)


_node_option = click.option(
    "--node", default=None, metavar="NAME",
    help="Generate the config of this node of WAMP_BRIDGE_CLUSTER (and its key.priv next to it).",
)


@wamp_cli.command("config")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write config.json here (mode 0600) instead of printing it.",
)
@_node_option
def config_command(output: Path | None, node: str | None) -> None:
    """Print the Crossbar config generated from the app's WAMP_BRIDGE_* settings."""
    config = _config(node)
    if output is None:
        click.echo(json.dumps(config, indent=2))
        return
    save_config(config, output)
    click.echo(f"wrote {output}", err=True)
    _write_key(node, output.parent)


@wamp_cli.command("router")
@click.option(
    "--cbdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".crossbar-run"),
    show_default=True,
    help="Crossbar node directory (keys, node.pid; config.json unless --config).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Run this config file (e.g. written by `flask wamp config -o`) instead of generating one.",
)
@_node_option
def router_command(cbdir: Path, config_file: Path | None, node: str | None) -> None:
    """Run Crossbar in the foreground (Ctrl-C stops it) with the generated config or --config FILE."""
    try:
        crossbar = find_crossbar()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    command = [crossbar, "start", "--cbdir", str(cbdir)]
    if config_file is None:
        config_file = cbdir / "config.json"
        save_config(_config(node), config_file)
    else:
        cbdir.mkdir(parents=True, exist_ok=True)
        config_file = config_file.resolve()
        command += ["--config", str(config_file)]
    _write_key(node, cbdir)
    click.echo(f"starting Crossbar ({crossbar}) with {config_file}", err=True)
    proc = subprocess.Popen(command)
    # Ctrl-C reaches Crossbar too (same process group); SIGTERM is passed on.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
    try:
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            try:
                code = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else code)


@wamp_cli.command("run")
def run_command() -> None:
    """Run the app's WAMP peer alone (no HTTP) until Ctrl-C or SIGTERM, then say GOODBYE.

    Handlers doing blocking IO need gevent's monkey-patching:
    ``python -m gevent.monkey -m flask --app APP wamp run``.
    """
    from .component.run import run_component  # imports gevent

    state = current_app.extensions.get("wamp_bridge")
    if state is None:
        raise click.ClickException("this app has no WampBridge: call bridge.init_app(app)")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_component(state)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
