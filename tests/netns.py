"""Network namespaces as separate hosts for the scale-out tests (needs root and ``ip``).

::

    with Network(["router", "a", "client"]) as net:
        ip = net.addr("router")                         # 10.x.y.2, only inside the namespaces
        router = net.run("router", lambda: CrossbarProcess(...).start())
        net.run("client", urllib.request.urlopen, f"http://{net.addr('a')}:8000/")

Every member is a namespace with one veth into a "switch" namespace that
holds a bridge, on a private /24 chosen per run; nothing is added to the
test's own namespace. Names carry a per-run prefix, so parallel runs never
collide. :meth:`Network.run` calls a function in a thread that has entered
the member's namespace: sockets it opens, threads and processes it starts
(gunicorn, Crossbar, an asyncio client's loop thread) stay in that
namespace. :meth:`Network.close` kills whatever still runs in the
namespaces (only processes inside them, so only this run's) and deletes them.
"""

from __future__ import annotations

import ctypes
import os
import random
import secrets
import shutil
import signal
import subprocess
import threading
import typing as t

__all__ = ["Network", "unavailable_reason"]

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root, as CI does)"
    name = f"fwbprobe{os.getpid()}{secrets.token_hex(2)}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return f"cannot create a network namespace: {detail.decode(errors='replace').strip() or exc}"
    _ip("netns", "del", name)
    return None


class Network:
    """Namespaces ``members`` joined by a bridge; see the module docstring."""

    def __init__(self, members: t.Sequence[str]) -> None:
        self.prefix = f"fwb{os.getpid():x}{secrets.token_hex(2)}"
        self.members = list(members)
        self.subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self._created: list[str] = []

    def ns(self, member: str) -> str:
        return f"{self.prefix}-{member}"

    def addr(self, member: str) -> str:
        return f"{self.subnet}.{self.members.index(member) + 2}"

    def start(self) -> Network:
        try:
            switch = self.ns("switch")
            self._add(switch)
            _ip("-n", switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", switch, "link", "set", "br0", "up")
            tag = secrets.token_hex(3)
            for index, member in enumerate(self.members):
                ns = self.ns(member)
                self._add(ns)
                inner, outer = f"v{tag}{index}", f"s{tag}{index}"
                _ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", switch)
                _ip("-n", switch, "link", "set", outer, "master", "br0", "up")
                _ip("-n", ns, "addr", "add", f"{self.addr(member)}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._created.append(ns)

    def run(self, member: str, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        """``fn(*args, **kwargs)`` in a thread inside ``member``'s namespace; its result or exception."""
        outcome: dict[str, t.Any] = {}

        def enter_and_run() -> None:
            try:
                fd = os.open(f"/run/netns/{self.ns(member)}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                outcome["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=enter_and_run, name=f"netns-{member}", daemon=True)
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def kill_all(self, member: str) -> None:
        """SIGKILL every process in ``member``'s namespace (all started by this run)."""
        result = subprocess.run(["ip", "netns", "pids", self.ns(member)], capture_output=True, text=True,
                                timeout=30)
        for pid in result.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        for ns in reversed(self._created):
            member = ns[len(self.prefix) + 1:]
            if member in self.members:
                self.kill_all(member)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._created.clear()

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
