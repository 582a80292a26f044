"""NodeSessions: logout and per-user publications on every router node (fake peers, no router)."""

from __future__ import annotations

import typing as t

import pytest

from flask_wamp_bridge.bridge.nodes import NodeSessions
from flask_wamp_bridge.errors import NotConnected

N1, N2, N3 = "ws://10.0.0.1:8080/ws", "ws://10.0.0.2:8080/ws", "ws://10.0.0.3:8080/ws"


class FakePeer:
    def __init__(self, url: str, urls: t.Sequence[str] = (), *, down: bool = False) -> None:
        self.url, self.urls, self.down = url, tuple(urls) or (url,), down
        self.calls: list[tuple[str, list[t.Any], dict[str, t.Any]]] = []
        self.published: list[tuple[str, t.Sequence[t.Any], dict[str, t.Any], dict[str, t.Any]]] = []
        self.started = self.stopped = 0

    def start(self) -> None:
        self.started += 1

    def stop(self, reason: str = "") -> None:
        self.stopped += 1

    def call_with(self, procedure: str, args: list[t.Any], kwargs: dict[str, t.Any]) -> list[int]:
        if self.down:
            raise NotConnected(f"{self.url} is down")
        self.calls.append((procedure, args, kwargs))
        return [len(self.calls) * 100 + int(self.url.split(".")[-1][0])]

    def publish_with(self, topic: str, args: t.Sequence[t.Any], kwargs: dict[str, t.Any], *,
                     options: dict[str, t.Any]) -> None:
        if self.down:
            raise NotConnected(f"{self.url} is down")
        self.published.append((topic, args, kwargs, options))


def make(main_url: str = N2, down: t.Iterable[str] = ()) -> tuple[NodeSessions, FakePeer, dict[str, FakePeer]]:
    main = FakePeer(main_url, (N1, N2, N3), down=main_url in down)
    side: dict[str, FakePeer] = {}

    def make_peer(url: str) -> FakePeer:
        side[url] = FakePeer(url, down=url in down)
        return side[url]

    return NodeSessions(t.cast(t.Any, main), t.cast(t.Any, make_peer)), main, side


def test_logout_kills_on_every_node_through_the_peer_and_one_side_session_per_other_node() -> None:
    nodes, main, side = make()
    killed = nodes.logout("ann", {"reason": "wamp.close.logout"})
    assert len(killed) == 3
    assert set(side) == {N1, N3}  # the main peer serves its own node
    for peer in (main, *side.values()):
        assert peer.calls == [("wamp.session.kill_by_authid", ["ann"], {"reason": "wamp.close.logout"})]
    assert all(peer.started == 1 for peer in side.values())
    nodes.logout("bob", {})
    assert set(side) == {N1, N3} and all(peer.started == 1 for peer in side.values())  # kept, not reopened


def test_publish_to_restricts_the_publication_on_every_node() -> None:
    nodes, main, side = make(main_url=N1)
    nodes.publish_to(["erin"], "app.private", ["hi"], {"k": 1})
    for peer in (main, side[N2], side[N3]):
        assert peer.published == [("app.private", ["hi"], {"k": 1}, {"eligible_authid": ["erin"]})]


def test_an_unreachable_node_is_skipped_and_no_reachable_node_is_an_error() -> None:
    nodes, main, side = make(down={N3})
    assert len(nodes.logout("ann", {})) == 2
    nodes, main, side = make(down={N1, N2, N3})
    with pytest.raises(NotConnected):
        nodes.logout("ann", {})


def test_an_error_other_than_a_bridge_error_is_not_swallowed() -> None:
    nodes, main, _ = make()

    def refuse(peer: t.Any) -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError):
        nodes.run("test", refuse)


def test_stop_ends_the_side_sessions() -> None:
    nodes, main, side = make()
    nodes.logout("ann", {})
    nodes.stop()
    assert all(peer.stopped == 1 for peer in side.values()) and main.stopped == 0
