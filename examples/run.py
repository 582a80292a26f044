"""Run the example (Crossbar.io + gunicorn) with one command: ``scripts/example``.

::

    python -m examples.run [--port 8000] [--workers 2] [--host 127.0.0.1] [--access-log]

1. Makes per-run secrets (``SECRET_KEY``, ``WAMP_BRIDGE_PEER_SECRET``) unless
   the environment sets them, and picks a free loopback port for the router
   unless ``WAMP_BRIDGE_ROUTER_URL`` is set.
2. Writes the Crossbar config generated from the example app's own settings
   into ``.crossbar-run/`` (git-ignored) and starts Crossbar.
3. Starts ``gunicorn -k flask_wamp_bridge.worker examples.app:app`` and prints
   the URL, as its last line, once every worker answers (no per-request log
   unless ``--access-log``).
4. On Ctrl-C or SIGTERM stops gunicorn, then Crossbar (each by its PID), and
   exits 0. If either dies on its own, the other is stopped and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["main", "parse_args"]


class _Stop(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM while something is starting."""


def parse_args(argv: t.Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/example", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address gunicorn listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port of the web page (default 8000)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--router-port", type=int, default=0,
                        help="Crossbar's loopback port (default: a free one; WAMP_BRIDGE_ROUTER_URL overrides)")
    parser.add_argument("--run-dir", default=str(REPO_ROOT / ".crossbar-run"),
                        help="where the generated Crossbar config, its log and the board's database go "
                             "(default .crossbar-run/ in the repository)")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request (gunicorn's access log)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _free_port() -> int:
    """A free port whose next port is free too (the router's RawSocket transport: its URL's port + 1)."""
    import socket

    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def _environment(args: argparse.Namespace, run_dir: Path) -> dict[str, str]:
    """The variables the app reads, per run unless already set (the workers inherit them)."""
    env: dict[str, str] = {}
    env["SECRET_KEY"] = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32)
    env["WAMP_BRIDGE_PEER_SECRET"] = os.environ.get("WAMP_BRIDGE_PEER_SECRET") or secrets.token_urlsafe(32)
    env["WAMP_BRIDGE_ROUTER_URL"] = (os.environ.get("WAMP_BRIDGE_ROUTER_URL")
                                     or f"ws://127.0.0.1:{args.router_port or _free_port()}/ws")
    env["EXAMPLE_DATABASE"] = os.environ.get("EXAMPLE_DATABASE") or str(run_dir / "board.sqlite3")
    return env


def _crossbar_executable() -> str:
    from flask_wamp_bridge.router.process import find_crossbar

    local = REPO_ROOT / ".crossbar-venv" / "bin" / "crossbar"
    if not os.environ.get("WAMP_BRIDGE_CROSSBAR") and local.is_file():
        return str(local)
    return find_crossbar()


def _wait_for_page(url: str, gunicorn: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {gunicorn.returncode} while starting "
                               "(its messages are above; if the port is taken, choose another with --port)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the page at {url} did not answer within {timeout:g} s")
        time.sleep(0.2)


def _wait_for_workers(url: str, workers: int, timeout: float) -> None:
    """Best effort: wait until every worker has answered a request (each is then fully booted).

    A worker that gets SIGTERM before it has installed its own signal handlers
    misses it and is killed only after gunicorn's graceful timeout, so the
    runner says "ready" only once all of them serve.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "api/me", timeout=5) as response:
                seen.add(json.loads(response.read())["worker"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)  # the kernel picks the worker: ask again shortly, without flooding it


def _stop_gunicorn(proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    """SIGTERM to gunicorn (the bridge worker closes its WebSockets and exits); SIGKILL if it lingers.

    gunicorn runs in its own process group (start_new_session), so signalling
    the group reaches only its master and workers. The SIGTERM is repeated: a
    worker still booting when the first one came has missed it.
    """
    if proc is None or proc.poll() is not None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(2.0)
            return
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def main(argv: t.Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(args, run_dir)
    os.environ.update(env)  # create_app() below reads the same settings as the workers will

    from examples.app import create_app
    from flask_wamp_bridge.errors import BridgeError
    from flask_wamp_bridge.router.process import CrossbarProcess

    settings = {key: value for key, value in create_app().config.items() if key.startswith("WAMP_BRIDGE_")}
    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: t.Any) -> None:
        stop.set()
        if starting:
            raise _Stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    router: CrossbarProcess | None = None
    gunicorn: subprocess.Popen[bytes] | None = None
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}/"
    code = 0
    try:
        router = CrossbarProcess(settings, run_dir, crossbar=_crossbar_executable())
        print(f"Starting Crossbar.io on {router.url} (config and log in {run_dir})", flush=True)
        router.start(timeout=90)
        command = [
            sys.executable, "-m", "gunicorn",
            "-k", "flask_wamp_bridge.worker",
            "--bind", f"{args.host}:{args.port}",
            "--workers", str(args.workers),
            "--no-control-socket",
            *(["--access-logfile", "-"] if args.access_log else []),
            "examples.app:app",
        ]
        child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                             os.environ.get("PYTHONPATH")]))}
        print(f"Starting gunicorn with {args.workers} worker(s) on {args.host}:{args.port}", flush=True)
        # its own session: Ctrl-C reaches only this runner, which then stops gunicorn in order
        gunicorn = subprocess.Popen(command, cwd=REPO_ROOT, env=child_env, start_new_session=True)
        _wait_for_page(url, gunicorn, timeout=60)
        _wait_for_workers(url, args.workers, timeout=30)
        starting = False
        if stop.is_set():
            raise _Stop()
        # the URL is the last line: nothing is logged per request unless --access-log
        print(f"\n  Open the live board in two browser windows and log in as two users; Ctrl-C stops."
              f"\n  Live board: {url}", flush=True)
        while not stop.wait(0.5):
            if gunicorn.poll() is not None:
                print(f"gunicorn exited with code {gunicorn.returncode}; stopping Crossbar", file=sys.stderr)
                code = 1
                break
            if router.pid is None:
                print(f"Crossbar exited; stopping gunicorn (see {router.log})", file=sys.stderr)
                code = 1
                break
    except _Stop:
        pass
    except (BridgeError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        starting = False
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("Stopping...", flush=True)
        _stop_gunicorn(gunicorn)
        if router is not None:
            router.stop()
        print("Stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
