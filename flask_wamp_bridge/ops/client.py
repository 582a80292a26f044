"""Short-lived WAMP sessions for processes that are not gunicorn workers: a shell, cron, a Celery task.

::

    with bridge.connected(app) as wamp:          # or bridge.connected() in an app context
        wamp.publish("app.news", "maintenance at 22:00")
        total = wamp.call("app.add", 2, 3)

The session logs in with the app's own peer credentials (``WAMP_BRIDGE_PEER_*``),
registers nothing, and says GOODBYE on leaving the block. It runs on gevent
(the process need not be monkey-patched: the calls block until answered).
``flask wamp call|publish|sessions|kick`` use it too. :func:`sessions_by_user`
and :func:`kick` reach every router node of ``WAMP_BRIDGE_ROUTER_URL``.
"""

from __future__ import annotations

import contextlib
import typing as t

from ..errors import NotConnected
from ..wamp.router_urls import router_urls

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.peer import Peer
    from .host import OperationsHost

__all__ = ["connected", "sessions_by_user", "kick", "UserSessions"]


@contextlib.contextmanager
def connected(state: OperationsHost, url: str | None = None, timeout: float | None = None) -> t.Iterator[Peer]:
    """A joined session with the app's credentials, on ``url`` (default: the first node that answers).

    :raises NotConnected: not joined within ``timeout`` (default ``WAMP_BRIDGE_CONNECT_TIMEOUT``).
    """
    peer = state.bare_peer(url)
    wait = timeout if timeout is not None else state.settings["WAMP_BRIDGE_CONNECT_TIMEOUT"]
    peer.start()
    try:
        if not peer.wait_ready(wait):
            raise NotConnected(
                f"could not join realm {peer.realm!r} at {url or ', '.join(peer.urls)} as "
                f"{peer.auth.authid!r} within {wait:g} s: check that the router runs there and that "
                "WAMP_BRIDGE_PEER_AUTHID/_SECRET match the router's config (see the log for the router's answer)")
        yield peer
    finally:
        peer.stop(reason="wamp.close.normal")


class UserSessions(t.NamedTuple):
    """The sessions of one authid across the nodes."""

    authid: str
    roles: tuple[str, ...]
    sessions: tuple[int, ...]
    nodes: tuple[str, ...]


def _nodes(state: OperationsHost) -> tuple[str, ...]:
    return router_urls(state.settings["WAMP_BRIDGE_ROUTER_URL"])


def sessions_by_user(state: OperationsHost, timeout: float | None = None) -> list[UserSessions]:
    """Who is connected, on every router node (Crossbar's ``wamp.session.list``/``get``), sorted by authid."""
    found: dict[str, dict[str, set[t.Any]]] = {}
    for url in _nodes(state):
        with connected(state, url, timeout) as peer:
            for session_id in peer.call("wamp.session.list") or []:
                if session_id == peer.session_id:
                    continue
                try:
                    details = peer.call("wamp.session.get", session_id)
                except Exception:  # gone meanwhile  # noqa: BLE001
                    continue
                user = found.setdefault(str(details.get("authid")), {"roles": set(), "sessions": set(),
                                                                     "nodes": set()})
                user["roles"].add(str(details.get("authrole")))
                user["sessions"].add(session_id)
                user["nodes"].add(url)
    return [UserSessions(authid, tuple(sorted(user["roles"])), tuple(sorted(user["sessions"])),
                         tuple(sorted(user["nodes"]))) for authid, user in sorted(found.items())]


def kick(state: OperationsHost, authid: str, reason: str = "wamp.close.logout", message: str | None = None,
         timeout: float | None = None) -> list[int]:
    """End every session of ``authid`` on every node (``wamp.session.kill_by_authid``); the ids killed."""
    kwargs: dict[str, t.Any] = {"reason": reason, **({"message": message} if message else {})}
    killed: list[int] = []
    for url in _nodes(state):
        with connected(state, url, timeout) as peer:
            killed += list(peer.call_with("wamp.session.kill_by_authid", [authid], kwargs) or [])
    return killed
