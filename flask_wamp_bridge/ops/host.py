"""What the operators' views and clients need of the app's bridge (the extension's per-app state fits)."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    from ..wamp.peer import Peer

__all__ = ["OperationsHost"]


class OperationsHost(t.Protocol):
    """The settings snapshot and the app's peers, as :class:`~flask_wamp_bridge.extension.BridgeState` has them."""

    settings: t.Mapping[str, t.Any]

    @property
    def has_peer(self) -> bool:
        """Whether this worker's peer exists yet."""
        ...

    @property
    def peer(self) -> Peer:
        """This worker's peer."""
        ...

    def bare_peer(self, url: str | None = None) -> Peer:
        """A new peer with the app's credentials and nothing registered, not started."""
        ...
