"""Reaching every router node: logout and per-user publications in a cluster.

Router-to-router links forward calls and events, but two things stay on one
node: ``wamp.session.kill_by_authid`` ends only that node's sessions, and a
publication restricted with ``eligible_authid`` is not forwarded (the link's
own session is not eligible). With several router URLs
(``WAMP_BRIDGE_ROUTER_URL`` lists the nodes), :class:`NodeSessions` runs these
on every node: through the worker's peer on the node it is attached to, and
through a side session (same credentials, nothing registered, opened on
first use and kept) on each other node. A node that cannot be reached is
skipped with a warning: its sessions ended with it.
"""

from __future__ import annotations

import logging
import typing as t

from ..errors import BridgeError

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.peer import Peer

__all__ = ["NodeSessions"]

log = logging.getLogger(__name__)


class NodeSessions:
    """One session per router node: the worker's ``peer`` and side peers made by ``make_peer(url)``."""

    def __init__(self, peer: Peer, make_peer: t.Callable[[str], Peer]) -> None:
        self.peer = peer
        self._make_peer = make_peer
        self._side: dict[str, Peer] = {}

    def _each(self) -> t.Iterator[tuple[str, Peer]]:
        for url in self.peer.urls:
            if url == self.peer.url:
                yield url, self.peer
                continue
            side = self._side.get(url)
            if side is None:
                side = self._side[url] = self._make_peer(url)
                side.start()
            yield url, side

    def run(self, action: str, fn: t.Callable[[Peer], t.Any]) -> list[t.Any]:
        """``fn(peer)`` on every node; the results of the nodes that answered.

        :raises BridgeError: no node answered (the first node's error).
        """
        results, errors = [], []
        for url, peer in self._each():
            try:
                results.append(fn(peer))
            except BridgeError as exc:
                log.warning("%s: router node %s skipped: %s", action, url, exc)
                errors.append(exc)
        if errors and not results:
            raise errors[0]
        return results

    def logout(self, authid: str, kwargs: dict[str, t.Any]) -> list[int]:
        """``wamp.session.kill_by_authid`` on every node; all killed session ids."""
        def kill(peer: Peer) -> list[int]:
            return list(peer.call_with("wamp.session.kill_by_authid", [authid], kwargs) or [])

        return [sid for killed in self.run("logout", kill) for sid in killed]

    def publish_to(self, eligible: list[str], topic: str, args: t.Sequence[t.Any], kwargs: dict[str, t.Any]) -> None:
        """Publish to the sessions of ``eligible`` on every node."""
        self.run("publish_to", lambda peer: peer.publish_with(
            topic, args, kwargs, options={"eligible_authid": eligible}))

    def stop(self) -> None:
        for side in self._side.values():
            side.stop(reason="wamp.close.system_shutdown")
        self._side.clear()
