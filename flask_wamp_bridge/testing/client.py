"""The blocking WAMP test client of :mod:`flask_wamp_bridge.testing`: autobahn-python in a thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import typing as t
import urllib.parse

from ..errors import ApplicationError
from ..errors import CallTimeout
from ..errors import ConfigError
from ..errors import ConnectError
from ..errors import ConnectionClosed
from ..errors import LocalProtocolError
from ..router.output import import_quietly
from .tolerant import tolerant_serializer

__all__ = ["WampClient", "TESTER_AUTHID", "TESTER_SECRET"]

#: A backend WAMP-CRA principal for test clients (:class:`WampClient`'s default).
TESTER_AUTHID = "tester"
TESTER_SECRET = "tester-secret-not-for-production"

_SERIALIZERS = {"json": "JsonSerializer", "msgpack": "MsgPackSerializer", "cbor": "CBORSerializer"}


class WampClient:
    """A blocking WAMP client for tests: autobahn-python on an asyncio loop in its own thread.

    Logs in with WAMP-CRA (``authid``/``secret``, default the tester), with
    ``ticket`` when given (method ``ticket``: Crossbar asks the dynamic
    authenticator), or as ``anonymous`` when both are None. ``serializer``
    (json, msgpack, cbor), extra upgrade ``headers`` (e.g. ``Cookie``) and an
    ``origin`` make it act like a browser page talking to the bridge.
    Procedures and event handlers are plain functions, run in a
    thread pool; raising :class:`~flask_wamp_bridge.errors.ApplicationError`
    answers with its URI. Errors map to the library's exceptions:
    WAMP ERROR -> ``ApplicationError``, no result in time -> ``CallTimeout``,
    ABORT or lost connection -> ``ConnectionClosed`` (``.reason`` is the URI).

    Not for production: one loop thread per client.
    """

    def __init__(
        self,
        url: str,
        realm: str,
        *,
        authid: str = TESTER_AUTHID,
        secret: str | None = TESTER_SECRET,
        ticket: str | None = None,
        authextra: dict[str, t.Any] | None = None,
        timeout: float = 10.0,
        serializer: str = "json",
        headers: dict[str, str] | None = None,
        origin: str | None = None,
    ) -> None:
        import_quietly("autobahn.asyncio.websocket", "autobahn.wamp.serializer")  # no NumPy notice (router.output)
        self.url = url
        if serializer not in _SERIALIZERS:
            raise LocalProtocolError(f"serializer must be one of {sorted(_SERIALIZERS)}, got {serializer!r}")
        self._serializer_choice = serializer
        self._extra_headers = dict(headers or {})
        self._ws_origin = origin
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="wamp-test-client", daemon=True)
        self._thread.start()
        self._session: t.Any = None
        self._socket: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        try:
            self.details = self._run(self._connect(url, realm, authid, secret, ticket, authextra), timeout)
        except BaseException:
            self._stop_loop()
            raise

    @property
    def session_id(self) -> int:
        return int(self.details.session)

    @property
    def authid(self) -> str:
        return str(self.details.authid)

    @property
    def authrole(self) -> str:
        return str(self.details.authrole)

    @property
    def connected(self) -> bool:
        return self._session is not None and bool(self._session.is_attached())

    def call(
        self, procedure: str, *args: t.Any, timeout: float = 10.0, options: dict[str, t.Any] | None = None,
        **kwargs: t.Any,
    ) -> t.Any:
        """Call ``procedure`` and return its result (``timeout`` and ``options`` are not WAMP kwargs)."""
        from autobahn.wamp.types import CallOptions

        opts = CallOptions(**(options or {}))  # type: ignore[no-untyped-call]

        async def go() -> t.Any:
            return await self._session.call(procedure, *args, options=opts, **kwargs)

        return self._run(go(), timeout, what=f"call to {procedure!r}")

    def register(self, procedure: str, fn: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Register ``fn`` as ``procedure``; ``options`` go to autobahn's ``RegisterOptions``
        (e.g. ``invoke="roundrobin"``, ``details=True`` to get ``details`` with the caller)."""
        from autobahn.wamp.types import RegisterOptions

        opts = RegisterOptions(**options)  # type: ignore[no-untyped-call]
        handler = self._threaded(fn)

        async def go() -> None:
            await self._session.register(handler, procedure, options=opts)

        self._run(go(), 10.0, what=f"register {procedure!r}")

    def subscribe(self, topic: str, fn: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Subscribe ``fn`` to ``topic``; ``options`` go to autobahn's ``SubscribeOptions``."""
        from autobahn.wamp.types import SubscribeOptions

        opts = SubscribeOptions(**options)  # type: ignore[no-untyped-call]
        handler = self._threaded(fn)

        async def go() -> None:
            await self._session.subscribe(handler, topic, options=opts)

        self._run(go(), 10.0, what=f"subscribe to {topic!r}")

    def publish(self, topic: str, *args: t.Any, options: dict[str, t.Any] | None = None, **kwargs: t.Any) -> None:
        """Publish and wait for the router's acknowledgement; ``options`` go to ``PublishOptions``."""
        from autobahn.wamp.types import PublishOptions

        opts = PublishOptions(**{"acknowledge": True, **(options or {})})  # type: ignore[no-untyped-call]

        async def go() -> None:
            await self._session.publish(topic, *args, options=opts, **kwargs)

        self._run(go(), 10.0, what=f"publish to {topic!r}")

    def close(self, timeout: float = 5.0) -> None:
        """Leave the realm (GOODBYE), close the connection and stop the loop thread. Idempotent."""
        if self._loop.is_closed():
            return

        async def go() -> None:
            if self._session is not None and self._session.is_attached():
                self._session.leave()
            if self._closed is not None:
                await self._closed

        try:
            asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout)
        except Exception:  # the router may already be gone: the connection ends below anyway
            pass
        self._stop_loop()

    def __enter__(self) -> WampClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------

    def _stop_loop(self) -> None:
        async def drop_transport() -> None:
            sock = self._socket
            if sock is None:  # a subclass made the connection: reach it through the session
                sock = getattr(getattr(self._session, "_transport", None), "transport", None)
            if sock is not None:
                sock.abort()  # closes the socket in a callback soon: let it run
                for _ in range(3):
                    await asyncio.sleep(0)

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(drop_transport(), self._loop).result(2.0)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def _run_loop(self) -> None:
        # The loop is finished in its own thread: the caller's thread may run an
        # asyncio loop of its own (Playwright's sync API does), where
        # run_until_complete would raise.
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _run(self, coro: t.Coroutine[t.Any, t.Any, t.Any], timeout: float, what: str = "connect") -> t.Any:
        from autobahn.wamp.exception import ApplicationError as AutobahnApplicationError
        from autobahn.wamp.exception import TransportLost

        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if what == "connect":
                raise ConnectError(f"no WAMP session at {self.url} within {timeout:g} s") from None
            raise CallTimeout(None, f"{what} got no answer within {timeout:g} s") from None
        except AutobahnApplicationError as exc:
            raise ApplicationError(exc.error, *exc.args, **(exc.kwargs or {})) from exc
        except TransportLost as exc:
            raise ConnectionClosed(f"{what}: the connection to {self.url} is lost",
                                   reason="wamp.close.transport_lost") from exc

    def _threaded(self, fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        from autobahn.wamp.exception import ApplicationError as AutobahnApplicationError

        def invoke(args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> t.Any:
            try:
                return fn(*args, **kwargs)
            except ApplicationError as exc:
                raise AutobahnApplicationError(  # type: ignore[no-untyped-call]
                    exc.error, *exc.args, **exc.kwargs) from exc

        async def handler(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return await self._loop.run_in_executor(None, invoke, args, kwargs)

        return handler

    async def _connect(
        self,
        url: str,
        realm: str,
        authid: str,
        secret: str | None,
        ticket: str | None,
        authextra: dict[str, t.Any] | None,
    ) -> t.Any:
        from autobahn.asyncio.websocket import WampWebSocketClientFactory
        from autobahn.wamp.types import ComponentConfig

        loop = asyncio.get_running_loop()
        joined: asyncio.Future[t.Any] = loop.create_future()
        self._closed = loop.create_future()
        session_class = _session_class()
        self._session = session_class(
            ComponentConfig(realm),  # type: ignore[no-untyped-call]
            authid=authid, secret=secret, ticket=ticket, authextra=authextra,
            joined=joined, closed=self._closed,
        )
        factory = WampWebSocketClientFactory(  # type: ignore[no-untyped-call]
            lambda: self._session,
            url=url,
            serializers=[tolerant_serializer(_SERIALIZERS[self._serializer_choice])(self._session)],
            headers=self._extra_headers,
            origin=self._ws_origin,
        )
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise ConfigError(f"the WebSocket URL {url!r} has no host; use one like 'ws://127.0.0.1:8080/ws'")
        try:
            self._socket, protocol = await loop.create_connection(factory, parts.hostname, parts.port or 80)
        except OSError as exc:
            raise ConnectError(f"cannot reach {url}: {exc}") from exc
        # A refused upgrade never reaches the session: watch the connection too.
        await asyncio.wait([joined, protocol.is_closed], return_when=asyncio.FIRST_COMPLETED)
        if joined.done():
            return joined.result()
        reason = getattr(protocol, "_onclose_reason", None) or getattr(protocol, "wasNotCleanReason", None)
        raise ConnectionClosed(f"the connection to {url} closed before a WAMP session began: {reason}")


@functools.lru_cache(maxsize=None)
def _session_class() -> type:
    # Built on first use: importing autobahn is needed only by tests that open a client.
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.wamp import auth

    class _Session(ApplicationSession):
        def __init__(self, config: t.Any, **login: t.Any) -> None:
            super().__init__(config)
            self._login = login

        def onConnect(self) -> None:
            login = self._login
            if login["ticket"] is not None:
                methods = ["ticket"]
            elif login["secret"] is not None:
                methods = ["wampcra"]
            else:
                methods = ["anonymous"]
            self.join(self.config.realm, authmethods=methods, authid=login["authid"], authextra=login["authextra"])

        def onChallenge(self, challenge: t.Any) -> str:
            login = self._login
            if challenge.method == "ticket" and login["ticket"] is not None:
                return str(login["ticket"])
            if challenge.method == "wampcra" and login["secret"] is not None:
                key = login["secret"]
                extra = challenge.extra
                if "salt" in extra:
                    key = auth.derive_key(key, extra["salt"], extra["iterations"], extra["keylen"])
                signature = auth.compute_wcs(key, extra["challenge"])
                return signature.decode("ascii") if isinstance(signature, bytes) else str(signature)
            raise ConnectError(f"no credentials for the {challenge.method!r} challenge")

        def onJoin(self, details: t.Any) -> None:
            if not self._login["joined"].done():
                self._login["joined"].set_result(details)

        def onLeave(self, details: t.Any) -> None:
            joined = self._login["joined"]
            if not joined.done():
                joined.set_exception(
                    ConnectionClosed(
                        f"the router refused the session: {details.reason} {details.message or ''}".rstrip(),
                        reason=details.reason,
                    )
                )
            self.disconnect()

        def onDisconnect(self) -> None:
            joined, closed = self._login["joined"], self._login["closed"]
            if not joined.done():
                joined.set_exception(ConnectionClosed("the connection closed before the session was welcomed"))
            if not closed.done():
                closed.set_result(None)

    return _Session
