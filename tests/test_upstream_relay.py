"""Browsers through the bridge over a RawSocket upstream see what they see directly on Crossbar.

Real Crossbar (its RawSocket transport on a Unix socket, as for a router on the same host), a real gunicorn
bridge worker, autobahn-python as the browser in JSON, msgpack and CBOR. The upstream speaks msgpack (CBOR for
a CBOR browser), translated per message; the values that differ between serializers (binary, big integers,
floats) come back as they do from Crossbar directly, in RPC and PubSub.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import typing as t
from pathlib import Path

import pytest
from helpers import GunicornProcess
from test_endpoint import APP
from test_endpoint import _env
from test_endpoint import browser
from test_endpoint import login

from flask_wamp_bridge.testing import WampClient
from flask_wamp_bridge.testing import start_router

# what differs between serializers: binary, integers at the ends of 64 bits, whole and large floats
VALUES: list[t.Any] = [b"\x00\x01\xfe\xff", b"", 2**63, 2**64 - 1, -(2**63), 2**53 + 1, 1.0, 1.5, -0.0, 1e300,
                       "text", {"nested": [b"bin", 7, 2.5]}]
SERIALIZERS = ["json", "msgpack", "cbor"]


@pytest.fixture(scope="module")
def unix_router() -> t.Iterator[t.Any]:
    cbdir = Path(tempfile.mkdtemp(prefix="rs"))  # short: a Unix socket path holds at most 107 bytes
    router = start_router(cbdir, WAMP_BRIDGE_RAWSOCKET_PATH=str(cbdir / "router.sock"))
    try:
        yield router
    finally:
        router.stop()
        shutil.rmtree(cbdir, ignore_errors=True)


@pytest.fixture(scope="module")
def server(unix_router: t.Any) -> t.Iterator[GunicornProcess]:
    server = GunicornProcess(APP, env=_env(unix_router.settings))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def echo(unix_router: t.Any) -> t.Iterator[WampClient]:
    with WampClient(unix_router.url, unix_router.realm, serializer="msgpack") as backend:
        backend.register("app.echo", lambda *args, **kwargs: args[0] if len(args) == 1 and not kwargs else None)
        yield backend


def test_router_config_has_the_unix_rawsocket_transport(unix_router: t.Any) -> None:
    (unix,) = [tr for tr in unix_router.config["workers"][0]["transports"] if tr["type"] == "rawsocket"]
    assert unix["endpoint"]["type"] == "unix"
    assert Path(unix["endpoint"]["path"]).is_socket()


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_calls_through_the_bridge_return_what_crossbar_returns_directly(
        server: GunicornProcess, unix_router: t.Any, echo: WampClient, serializer: str) -> None:
    with WampClient(unix_router.url, unix_router.realm, serializer=serializer) as direct, \
            browser(server, cookie=login(server, "ann"), serializer=serializer) as relayed:
        for value in VALUES:
            expected = direct.call("app.echo", value)
            assert relayed.call("app.echo", value) == expected, (serializer, value)
        # the value itself survives where the serializer can carry it
        assert direct.call("app.echo", b"\x00\xff") == b"\x00\xff"


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_events_through_the_bridge_are_what_crossbar_delivers_directly(
        server: GunicornProcess, unix_router: t.Any, serializer: str) -> None:
    got_direct: queue.Queue[t.Any] = queue.Queue()
    got_relayed: queue.Queue[t.Any] = queue.Queue()
    with WampClient(unix_router.url, unix_router.realm, serializer=serializer) as direct, \
            browser(server, cookie=login(server, "ann"), serializer=serializer) as relayed, \
            WampClient(unix_router.url, unix_router.realm, serializer="msgpack") as publisher:
        direct.subscribe("app.board", lambda *args, **kwargs: got_direct.put(args))
        relayed.subscribe("app.board", lambda *args, **kwargs: got_relayed.put(args))
        for value in VALUES:
            publisher.publish("app.board", value, options={"acknowledge": True, "exclude_me": True})
            assert got_relayed.get(timeout=10) == got_direct.get(timeout=10), (serializer, value)


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_the_upstream_session_is_rawsocket_in_the_cheap_serializer(
        server: GunicornProcess, unix_router: t.Any, serializer: str) -> None:
    with browser(server, cookie=login(server, "ann"), serializer=serializer) as relayed, \
            WampClient(unix_router.url, unix_router.realm) as tester:
        details = tester.call("wamp.session.get", relayed.session_id)
        transport = details["transport"]
        assert transport["channel_framing"] == "rawsocket", transport
        assert transport["channel_serializer"] == ("cbor" if serializer == "cbor" else "msgpack"), transport
        assert transport["peer"] == "unix", transport
