"""``flask wamp ...``: the router's config, a development router, component mode and operator commands.

The extension attaches :data:`wamp_cli` with ``app.cli.add_command(wamp_cli)``:

- ``flask wamp config [--output FILE] [--node NAME]`` prints (or writes) the generated config JSON
  (with ``--node``, of that node of ``WAMP_BRIDGE_CLUSTER``; ``--output`` then also writes its ``key.priv``);
- ``flask wamp router [--cbdir DIR] [--config FILE] [--node NAME]`` runs Crossbar in the
  foreground until Ctrl-C: with ``--config``, on that file as it is (e.g. the
  one ``flask wamp config -o FILE`` wrote, edited or not); without it, on a
  config generated afresh into ``DIR/config.json`` (with ``--node``, that
  node's, and its ``key.priv`` in ``DIR``). One router runs per ``DIR``
  (default ``.crossbar-run``): a second one needs its own ``--cbdir``;
- ``flask wamp run`` runs the app as a WAMP component: its peer alone, no HTTP,
  in the foreground with gevent, until Ctrl-C or SIGTERM (it then leaves with GOODBYE);
- ``flask wamp sessions`` lists who is connected, by authid, on every router node;
  ``flask wamp kick USER`` ends every session of that authid on every node;
  ``flask wamp call URI [ARG...] [--kw NAME=VALUE]`` and ``flask wamp publish TOPIC [ARG...]``
  call and publish from a shell, cron or a script (each argument is JSON, else a string),
  through a short-lived session with the app's peer credentials
  (:func:`flask_wamp_bridge.ops.client.connected`).

Crossbar is looked up by :func:`~flask_wamp_bridge.router.process.find_crossbar`:
first in the app's own environment (``pip install "Flask-WAMP-Bridge[router]"``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
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
from .router.output import NumpyNotice
from .router.process import find_crossbar

__all__ = ["wamp_cli"]

#: The ``flask wamp`` command group.
wamp_cli = AppGroup("wamp", help="WAMP bridge: router config, a development router, component mode, operator "
                                 "commands (sessions, kick, call, publish).")


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
    help="Crossbar node directory (keys, node.pid; config.json unless --config). One router runs per "
    "directory: give a second router its own --cbdir.",
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
    running = _running_router(cbdir)
    if running is not None:
        raise click.ClickException(
            f"a router already runs from {cbdir} (PID {running}): stop it, or run a second router with its own "
            "node directory: flask wamp router --cbdir OTHER_DIR (and a port of its own)")
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
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    echo = threading.Thread(target=_echo_output, args=(proc,), daemon=True)
    echo.start()
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
        echo.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    sys.exit(0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else code)


def _echo_output(proc: subprocess.Popen[str]) -> None:
    """Crossbar's output to ours, without NumPy's harmless notice (:mod:`~flask_wamp_bridge.router.output`)."""
    notice = NumpyNotice()
    assert proc.stdout is not None
    for line in proc.stdout:
        shown = notice.filter(line)
        if shown:
            sys.stdout.write(shown)
            sys.stdout.flush()


def _running_router(cbdir: Path) -> int | None:
    """The PID of the Crossbar running from ``cbdir`` (its ``node.pid``), if that process lives."""
    try:
        pid = int(json.loads((cbdir / "node.pid").read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


@wamp_cli.command("run")
def run_command() -> None:
    """Run the app's WAMP peer alone (no HTTP) until Ctrl-C or SIGTERM, then say GOODBYE.

    \b
    Handlers doing blocking IO need gevent's monkey-patching:
      python -m gevent.monkey -m flask --app APP wamp run
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


# --- operator commands: a short-lived session with the app's peer credentials ----------------


def _state() -> t.Any:
    state = current_app.extensions.get("wamp_bridge")
    if state is None:
        raise click.ClickException("this app has no WampBridge: call bridge.init_app(app)")
    return state


def _value(text: str) -> t.Any:
    """A command-line argument: JSON when it parses (``3``, ``true``, ``{"a": 1}``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _keywords(pairs: t.Sequence[str]) -> dict[str, t.Any]:
    kwargs = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--kw")
        kwargs[name] = _value(text)
    return kwargs


def _operate(action: t.Callable[[], t.Any]) -> t.Any:
    from .errors import BridgeError

    try:
        return action()
    except BridgeError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _jsonable(value: t.Any) -> t.Any:
    from .component.validation import to_plain

    args = getattr(value, "args", None)
    if isinstance(args, tuple) and isinstance(getattr(value, "kwargs", None), dict):  # a CallResult
        return {"args": [to_plain(a) for a in args], "kwargs": to_plain(value.kwargs)}
    return to_plain(value)


_args = click.argument("args", nargs=-1)
_kw_option = click.option("--kw", "kw", multiple=True, metavar="NAME=VALUE",
                          help="A keyword argument (VALUE is JSON, else a string); repeat for more.")


@wamp_cli.command("call")
@click.argument("uri")
@_args
@_kw_option
def call_command(uri: str, args: tuple[str, ...], kw: tuple[str, ...]) -> None:
    """Call procedure URI with ARGS (each JSON, else a string) and print the result as JSON."""
    state = _state()

    def call() -> t.Any:
        with state.bridge.connected(current_app) as peer:
            return peer.call_with(uri, [_value(a) for a in args], _keywords(kw))

    click.echo(json.dumps(_jsonable(_operate(call)), indent=2, default=repr))


@wamp_cli.command("publish")
@click.argument("topic")
@_args
@_kw_option
def publish_command(topic: str, args: tuple[str, ...], kw: tuple[str, ...]) -> None:
    """Publish an event to TOPIC with ARGS (each JSON, else a string); waits for the router's acknowledgement."""
    state = _state()

    def publish() -> t.Any:
        with state.bridge.connected(current_app) as peer:
            return peer.publish_with(topic, [_value(a) for a in args], _keywords(kw), acknowledge=True)

    click.echo(f"published to {topic} (publication {_operate(publish)})", err=True)


@wamp_cli.command("sessions")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def sessions_command(as_json: bool) -> None:
    """List who is connected, by authid, on every router node of WAMP_BRIDGE_ROUTER_URL."""
    from .ops.client import sessions_by_user

    state = _state()
    users = _operate(lambda: sessions_by_user(state))
    if as_json:
        click.echo(json.dumps([user._asdict() for user in users], indent=2))
        return
    rows = [("AUTHID", "ROLES", "SESSIONS", "NODES")]
    rows += [(u.authid, ",".join(u.roles), str(len(u.sessions)), " ".join(u.nodes)) for u in users]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip())


@wamp_cli.command("kick")
@click.argument("user")
@click.option("--reason", default="wamp.close.logout", show_default=True, help="The GOODBYE reason URI.")
@click.option("--message", default=None, help="A message for the kicked sessions.")
def kick_command(user: str, reason: str, message: str | None) -> None:
    """End every WAMP session of authid USER, on every router node."""
    from .ops.client import kick

    state = _state()
    killed = _operate(lambda: kick(state, user, reason, message))
    click.echo(f"ended {len(killed)} session(s) of {user!r}" + (f": {', '.join(map(str, killed))}" if killed else ""))
