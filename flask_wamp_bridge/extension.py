"""The Flask extension: :class:`WampBridge`.

::

    bridge = WampBridge()

    @bridge.register()                 # procedure WAMP_BRIDGE_PREFIX + "add"
    def add(a, b):
        return a + b

    @bridge.subscribe("app.chat")      # runs in every worker process
    def on_chat(message):
        ...

    def create_app():
        app = Flask(__name__)
        bridge.init_app(app)
        return app

    @app.route("/sum")
    def view():
        return {"sum": g.wampy.rpc.add(1, 2)}     # or g.wampy.call("app.add", 1, 2)

Each app gets one WAMP session per worker process (:class:`~flask_wamp_bridge.wamp.peer.Peer`),
opened after fork by the worker's start hook (or on first use outside
gunicorn, or by ``bridge.peer.start()``). Procedures and event handlers run in
an app context with ``g.wamp_details`` (the
:class:`~flask_wamp_bridge.wamp.session_events.InvocationDetails` /
:class:`~flask_wamp_bridge.wamp.session_events.EventDetails`: caller identity when the
router discloses it, ``progress(...)`` for progressive results) and ``g.wampy``.

Subscribers run in every worker; work that must happen exactly once belongs in
a procedure (registrations are shared, ``WAMP_BRIDGE_INVOKE`` = round-robin).

Settings are read once, in ``init_app`` (:mod:`flask_wamp_bridge.settings`);
a ``WAMP_BRIDGE_*`` value changed afterwards is a :class:`ConfigError` at the
first request and at peer start. This module imports neither gevent nor the
peer until a peer is needed.
"""

from __future__ import annotations

import functools
import os
import typing as t
import weakref

from flask import Flask
from flask import current_app
from flask import g

from . import settings as _settings
from .bridge.endpoint import Endpoint
from .bridge.identity import default_identity_loader
from .bridge.tickets import Tickets
from .cli import wamp_cli
from .component.middleware import Hooks
from .component.middleware import event_runner
from .component.middleware import procedure_runner
from .component.validation import validator_for
from .errors import ConfigError
from .ops.views import mount as mount_operations
from .router.authorization import Authorization
from .router.config import browser_rules
from .router.config import meta_enabled
from .wamp.client_auth import auth_from_config
from .websocket import lifecycle as _lifecycle

if t.TYPE_CHECKING:  # pragma: no cover
    from .bridge.nodes import NodeSessions
    from .component.authorizer import AuthorizerService
    from .component.meta_service import MetaService
    from .wamp.handler_pool import HandlerPool
    from .wamp.peer import Peer

__all__ = ["WampBridge", "BridgeState", "Wampy"]

F = t.TypeVar("F", bound=t.Callable[..., t.Any])

_NO_HOOKS = Hooks()


class _Handler(t.NamedTuple):
    kind: str  # "register" or "subscribe"
    uri: str | None  # None: prefix + function name
    fn: t.Callable[..., t.Any]
    options: dict[str, t.Any]
    validate: str | bool | None = None  # None: WAMP_BRIDGE_VALIDATION


class _Rpc:
    """``g.wampy.rpc.<name>(...)``: call procedure prefix + name."""

    __slots__ = ("_wampy",)

    def __init__(self, wampy: Wampy) -> None:
        self._wampy = wampy

    def __getattr__(self, name: str) -> t.Callable[..., t.Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        uri = self._wampy._state.prefix + name
        return functools.partial(self._wampy.call, uri)


class Wampy:
    """The wampy-style surface in ``g.wampy``: ``rpc.<name>(...)``, ``call(...)``, ``publish(...)``."""

    def __init__(self, state: BridgeState) -> None:
        self._state = state
        #: ``rpc.add(1, 2)`` calls ``WAMP_BRIDGE_PREFIX + "add"``.
        self.rpc = _Rpc(self)

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Call ``procedure``; see :meth:`flask_wamp_bridge.wamp.peer.Peer.call`."""
        return self._state.peer.call(procedure, *args, **kwargs)

    def publish(self, topic: str, *args: t.Any, **kwargs: t.Any) -> None:
        """Publish to ``topic``; wampy's ``publish(topic=..., message=...)`` sends ``message`` as a kwarg."""
        self._state.peer.publish(topic, *args, **kwargs)


class BridgeState:
    """Per-app state, in ``app.extensions["wamp_bridge"]``."""

    def __init__(self, bridge: WampBridge, app: Flask) -> None:
        self.bridge = bridge
        self._app_ref = weakref.ref(app)
        #: The ``WAMP_BRIDGE_*`` values as ``init_app`` read them (read-only).
        self.settings = _settings.snapshot(app.config)
        self.prefix = _normalize_prefix(self.settings["WAMP_BRIDGE_PREFIX"])
        self.wampy = Wampy(self)
        self._internal: list[_Handler] = []
        self._peer: Peer | None = None
        self._peer_pid: int | None = None
        self._tasks: t.Any = None  # component.tasks.Tasks, made with the peer (gevent)
        self._scheduler: t.Any = None  # component.schedule.Scheduler
        self.healer: t.Any = None  # component.healing.Healer of this process (None: healing is off)
        self._nodes: NodeSessions | None = None
        self._authorization: Authorization | None = None
        self._authorizer: AuthorizerService | None = None
        self._meta: MetaService | None = None

    @property
    def app(self) -> Flask:
        app = self._app_ref()
        if app is None:
            raise RuntimeError("the Flask app of this WampBridge state is gone")
        return app

    @property
    def identity_loader(self) -> t.Callable[..., t.Any]:
        """The app's identity loader (``@bridge.identity_loader``), or the default one."""
        loader = self.bridge._identity_loader
        return loader if loader is not None else default_identity_loader

    def run_identity_loader(self) -> t.Any:
        """Run the identity loader declared now (it may be declared after ``init_app``)."""
        return self.identity_loader()

    def check_settings_unchanged(self) -> None:
        """:raises ConfigError: a ``WAMP_BRIDGE_*`` value differs from what ``init_app`` read."""
        changed = _settings.changed_keys(self.settings, self.app.config)
        if changed:
            what = ", ".join(_settings.describe_change(self.settings, self.app.config, key) for key in changed)
            raise ConfigError(
                f"{what} changed after bridge.init_app(app), which had read it: the bridge keeps the value it "
                "read. Set WAMP_BRIDGE_* settings before calling init_app (or create the app with them)"
            )

    @property
    def peer(self) -> Peer:
        """This worker process's peer for the app (built on first access; not started)."""
        pid = os.getpid()
        if self._peer is None or self._peer_pid != pid:
            # a peer inherited over fork (used in a --preload master) is not ours to use
            self._peer = self._build_peer()
            self._peer_pid = pid
            self._nodes = None
        return self._peer

    @property
    def nodes(self) -> NodeSessions:
        """A session on every router node of ``WAMP_BRIDGE_ROUTER_URL`` (for logout and ``publish_to``)."""
        peer = self.peer
        if self._nodes is None:
            from .bridge.nodes import NodeSessions

            self._nodes = NodeSessions(peer, lambda url: self._build_peer(url))
        return self._nodes

    @property
    def has_peer(self) -> bool:
        return self._peer is not None and self._peer_pid == os.getpid()

    def uri_for(self, handler: _Handler) -> str:
        return handler.uri if handler.uri is not None else self.prefix + handler.fn.__name__

    def app_procedures(self) -> frozenset[str]:
        """The procedures this app serves: declared (``@bridge.register``, the bridge's own) and, once this
        worker's peer exists, every one it keeps registered. Browsers may not register them."""
        declared = {self.uri_for(h) for h in [*self.bridge._handlers, *self._internal] if h.kind == "register"}
        if self.has_peer:
            from .wamp.handles import Subscription

            declared.update(h.uri for h in self.peer.handles() if not isinstance(h, Subscription))
        return frozenset(declared)

    def bare_peer(self, url: str | None = None) -> Peer:
        """A new peer with the app's credentials and nothing registered, not started (``url``: one node)."""
        return self._build_peer(url if url is not None else self.settings["WAMP_BRIDGE_ROUTER_URL"])

    def _build_peer(self, url: str | None = None) -> Peer:
        """The worker's peer; with ``url``, a side session on that one node (no handlers)."""
        from .wamp.peer import Peer  # imports gevent

        self.check_settings_unchanged()
        arguments = _settings.arguments_for("Peer", self.settings)
        if url is not None:
            arguments["url"] = url
        arguments["ping_interval"] = arguments["ping_interval"] or None  # 0: off
        auth = auth_from_config(**_settings.arguments_for("auth_from_config", self.settings))
        peer = Peer(auth=auth, debug=self.app.debug, **arguments)
        if url is not None:
            return peer
        peer.signal_sender = self._app_ref
        for handler in self.handlers:
            self._add(peer, handler)
        return peer

    @property
    def handlers(self) -> list[_Handler]:
        """What this app's peer registers and subscribes: the app's handlers, then the library's own."""
        return [*self.bridge._handlers, *self._internal]

    def subscribe_internal(self, topic: str, fn: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Subscribe a library-internal handler for this app only (like :meth:`register_internal`)."""
        handler = _Handler("subscribe", topic, fn, options, "off")
        self._internal.append(handler)
        if self.has_peer:
            self._add(self.peer, handler)

    @property
    def authorizer(self) -> AuthorizerService:
        """This process's dynamic authorizer (``WAMP_BRIDGE_AUTHORIZER``; made on first use)."""
        from .component.authorizer import AuthorizerService

        if self._authorizer is None or self._authorizer.pid != os.getpid():
            if self._authorization is None:
                self._authorization = Authorization(
                    browser_rules(self.settings),
                    reserved=[self.settings["WAMP_BRIDGE_AUTHENTICATOR"], self.settings["WAMP_BRIDGE_AUTHORIZER"]])
            self._authorizer = AuthorizerService(
                self._app_ref, self._authorization, lambda: self.bridge._authorize,
                timeout=self.settings["WAMP_BRIDGE_AUTHORIZER_TIMEOUT"],
                concurrency=self.settings["WAMP_BRIDGE_AUTHORIZER_CONCURRENCY"],
                cache_ttl=self.settings["WAMP_BRIDGE_AUTHORIZER_CACHE"] or 0.0)
        return self._authorizer

    @property
    def meta(self) -> MetaService:
        """This process's event history and presence service (made on first use)."""
        from .component.meta_service import MetaService

        if self._meta is None or self._meta.pid != os.getpid():
            roles = _settings.roles(self.settings)
            browser_roles = [role for role in roles.defined if role not in roles.backend]
            self._meta = MetaService(lambda procedure, *args: self.peer.call(procedure, *args),
                                     self.settings["WAMP_BRIDGE_EVENT_HISTORY"] or {},
                                     self.settings["WAMP_BRIDGE_PRESENCE_TOPICS"], browser_roles)
        return self._meta

    def forget_authorizations(self, authid: str) -> int:
        """Drop this worker's cached authorizer decisions for ``authid`` (its sessions ended)."""
        if self._authorizer is None or self._authorizer.pid != os.getpid():
            return 0
        return self._authorizer.cache.forget_authid(authid)

    def register_internal(self, uri: str, fn: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Register a library-internal procedure for this app only (e.g. the ticket authenticator).

        Safe to call in ``init_app``: it is only recorded, and registered (in
        an app context, with the configured invoke policy, so shared across
        workers) whenever this process's peer is built and joins.
        """
        handler = _Handler("register", uri, fn, options, "off")
        self._internal.append(handler)
        if self.has_peer:
            self._add(self.peer, handler)

    def validator(self, handler: _Handler) -> t.Any:
        """The argument checker of ``handler`` (None: none).

        :raises ConfigError: an annotation cannot be checked without pydantic (the ``validation`` extra).
        """
        mode = handler.validate
        if mode is None or mode is True:
            mode = self.settings["WAMP_BRIDGE_VALIDATION"] if mode is None else "lax"
        if not mode or mode == "off":
            return None
        return validator_for(handler.fn, name=self.uri_for(handler), strict=mode == "strict")

    def _add(self, peer: Peer, handler: _Handler) -> None:
        from .wamp.peer import current_details

        uri = self.uri_for(handler)
        validator = self.validator(handler)
        runner = procedure_runner if handler.kind == "register" else event_runner
        hooks = _NO_HOOKS if handler in self._internal else self.bridge.hooks  # the library's own: no app hooks
        fn = runner(handler.fn, self._app_ref, self.wampy, hooks, validator, current_details)
        if handler.kind == "register":
            options = dict(handler.options)
            pool = options.pop("pool", None)
            if pool is not None:
                options["pool"] = self.own_pool(peer, pool)
            peer.register(uri, fn, **options)
        else:
            peer.subscribe(uri, fn, **handler.options)

    def own_pool(self, peer: Peer, name: str) -> HandlerPool:
        """The peer's pool ``name`` of :data:`_OWN_POOLS`, sized by the settings (made on first use)."""
        concurrency, backlog = _OWN_POOLS[name](self.settings)
        return peer.pool(f"{name} handlers", concurrency, backlog)

    @property
    def tasks(self) -> t.Any:
        """This process's :class:`~flask_wamp_bridge.component.tasks.Tasks` (made on first use)."""
        from .component.tasks import Tasks

        if self._tasks is None or self._tasks.pid != os.getpid():
            self._tasks = Tasks(self._app_ref, self.wampy, **_settings.arguments_for("Tasks", self.settings))
        return self._tasks

    def start_scheduler(self) -> None:
        """Start electing a runner for each ``@bridge.every`` job and for healing (once per process)."""
        from .component.healing import JOB_NAME
        from .component.healing import Healer
        from .component.schedule import Scheduler

        healing = self.settings["WAMP_BRIDGE_HEALING"]
        if (self.bridge._jobs or healing) and (self._scheduler is None or self._scheduler.pid != os.getpid()):
            jobs = list(self.bridge._jobs)
            healer = None
            if healing:
                healer = Healer(self.peer, self.settings["WAMP_BRIDGE_HEALING_INTERVAL"])
                jobs.append(healer.job())
            scheduler = self._scheduler = Scheduler(self.peer, self.tasks, jobs, self.prefix,
                                                    pool=self.own_pool(self.peer, "election"))
            if healer is not None:
                healer.extra_uris = scheduler.uris
                healer.elected = functools.partial(scheduler.holds, JOB_NAME)
                healer.attach()
            self.healer = healer
            scheduler.start()

    def start_peer(self) -> None:
        self.check_settings_unchanged()
        if self.settings["WAMP_BRIDGE_PEER_AUTOSTART"]:
            self.peer.start()
            self.start_scheduler()

    def stop_peer(self) -> None:
        """Stop the scheduled jobs and background tasks, then leave with GOODBYE."""
        pid = os.getpid()
        if self._scheduler is not None and self._scheduler.pid == pid:
            self._scheduler.stop()
        if self._tasks is not None and self._tasks.pid == pid:
            self._tasks.stop()
        if self.has_peer:
            assert self._peer is not None
            self._peer.stop(reason="wamp.close.system_shutdown")
            if self._nodes is not None:
                self._nodes.stop()


class WampBridge:
    """Make a Flask app a WAMP peer (and, once mounted, a WAMP endpoint for browsers).

    Supports ``WampBridge(app)`` and the factory pattern (``bridge.init_app(app)``),
    and several apps in one process: handlers declared on the bridge are
    served by every app it is initialized with, each through its own peer.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._handlers: list[_Handler] = []
        #: The ``before_call``/``after_call``/... hooks, in declaration order.
        self.hooks = Hooks()
        self._jobs: list[t.Any] = []  # component.schedule.Job
        self._identity_loader: t.Callable[..., t.Any] | None = None
        self._authorize: t.Callable[..., t.Any] | None = None
        self._states: weakref.WeakSet[BridgeState] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and check the settings (defaults via ``setdefault``), record state, hook the worker lifecycle.

        Opens no connection: the peer starts in each worker after fork.

        :raises ConfigError: a setting is invalid.
        """
        _settings.install(app.config)
        if self._authorize is not None and not app.config.get("WAMP_BRIDGE_AUTHORIZER"):
            raise ConfigError("@bridge.authorizer is declared, but WAMP_BRIDGE_AUTHORIZER is not set: set it to the "
                              "URI the router calls (e.g. 'wamp_bridge.authorize') and regenerate the router config")
        state = BridgeState(self, app)
        for handler in self._handlers:  # an argument check that cannot work fails now, not at the first call
            state.validator(handler)
        app.extensions["wamp_bridge"] = state
        app.extensions[_settings.SNAPSHOT] = state.settings  # the one read path from now on (settings.of)
        self._states.add(state)
        app.before_request(_FirstRequestCheck(state))

        state_ref = weakref.ref(state)

        def start() -> None:
            live = state_ref()
            if live is not None:
                live.start_peer()

        def stop(_close_code: int) -> None:  # the peer says GOODBYE system_shutdown for any code
            live = state_ref()
            if live is not None:
                live.stop_peer()

        _lifecycle.on_worker_start(start)
        _lifecycle.on_worker_shutdown(stop)
        self._mount_endpoint(app, state)
        mount_operations(app, state)
        _lifecycle.warn_if_wrong_worker()
        app.cli.add_command(wamp_cli)  # `flask wamp config`, `flask wamp router`

    def _mount_endpoint(self, app: Flask, state: BridgeState) -> None:
        """Wire the bridge once: one :class:`Tickets` signs for the relays and verifies for the router.

        With ``WAMP_BRIDGE_PATH = None`` nothing is mounted or registered: this app relays no browsers.

        :raises ConfigError: there is no ticket key (``WAMP_BRIDGE_TICKET_SECRET`` or ``SECRET_KEY``).
        """
        if state.settings["WAMP_BRIDGE_PATH"] is None:
            return
        try:
            tickets = Tickets.from_config(app.config)  # in init_app: SECRET_KEY is read here too
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}. bridge.init_app(app) reads the key when it runs: set SECRET_KEY (or "
                "WAMP_BRIDGE_TICKET_SECRET) before calling init_app, not after it") from None
        # its own pool: a login storm never queues the app's procedures, nor they the logins
        state.register_internal(state.settings["WAMP_BRIDGE_AUTHENTICATOR"], tickets.authenticator(),
                                pool="authenticator")
        _wire_authorizer_and_meta(state)
        roles = _settings.roles(state.settings).defined
        Endpoint(state.settings, state.run_identity_loader, tickets.sign, roles,
                 reserved_procedures=state.app_procedures).mount(app)

    # -- declaring handlers --------------------------------------------------------------

    @t.overload
    def register(self, uri: F) -> F: ...

    @t.overload
    def register(self, uri: str | None = None, **options: t.Any) -> t.Callable[[F], F]: ...

    def register(self, uri: str | t.Callable[..., t.Any] | None = None, **options: t.Any) -> t.Any:
        """Decorator: serve the function as a WAMP procedure.

        The URI is ``WAMP_BRIDGE_PREFIX`` + the function's name unless given.
        ``options`` go into REGISTER: ``match="prefix"|"wildcard"``,
        ``invoke="roundrobin"|"random"|"single"|...`` (default ``WAMP_BRIDGE_INVOKE``).
        ``validate`` (not sent to the router): ``"lax"``/``True``, ``"strict"``
        or ``"off"``/``False`` checks this function's arguments against its type
        hints (default ``WAMP_BRIDGE_VALIDATION``; see the README).
        The function is returned unchanged (it can also be a Flask view). It
        runs in an app context; raise :class:`~flask_wamp_bridge.errors.ApplicationError`
        (or an exception class with a ``uri`` attribute) to answer with an error URI.
        """
        if callable(uri):
            return self.register()(uri)
        return self._decorator("register", uri, options)

    @t.overload
    def subscribe(self, topic: F) -> F: ...

    @t.overload
    def subscribe(self, topic: str | None = None, **options: t.Any) -> t.Callable[[F], F]: ...

    def subscribe(self, topic: str | t.Callable[..., t.Any] | None = None, **options: t.Any) -> t.Any:
        """Decorator: run the function for each event on a topic (default prefix + name).

        ``options`` go into SUBSCRIBE (``match="prefix"|"wildcard"``);
        ``validate`` as for :meth:`register` (an event that fails is logged and dropped). Runs in
        *every* worker process: do exactly-once work in a procedure instead.
        """
        if callable(topic):
            return self.subscribe()(topic)
        return self._decorator("subscribe", topic, options)

    def _decorator(self, kind: str, uri: str | None, options: dict[str, t.Any]) -> t.Callable[[F], F]:
        validate = options.pop("validate", None)
        if validate not in (None, True, False, "lax", "strict", "off"):
            raise ConfigError(f"validate={validate!r}: use True, False, 'lax', 'strict' or 'off'")

        def decorate(fn: F) -> F:
            handler = _Handler(kind, uri, fn, options, "off" if validate is False else validate)
            for state in list(self._states):
                state.validator(handler)
            self._handlers.append(handler)
            for state in list(self._states):
                if state.has_peer:  # declared after the peer was built: add it live
                    state._add(state.peer, handler)
            return fn

        return decorate

    # -- middleware (component.middleware has the order) -----------------------------------

    def before_call(self, fn: F) -> F:
        """Decorator: ``fn()`` runs before each procedure, with ``g.wamp_details``.

        Raise :class:`~flask_wamp_bridge.errors.ApplicationError` to refuse the
        call; return a value other than ``None`` to answer it without running the procedure.
        """
        self.hooks.before_call.append(fn)
        return fn

    def after_call(self, fn: F) -> F:
        """Decorator: ``fn(result)`` runs after each procedure (reverse order) and returns the result to send."""
        self.hooks.after_call.append(fn)
        return fn

    def call_errorhandler(self, exc_class: type[BaseException]) -> t.Callable[[F], F]:
        """Decorator: ``fn(exc)`` handles ``exc_class`` raised by a procedure or hook; returns the result or raises."""
        def decorate(fn: F) -> F:
            self.hooks.call_errorhandlers[exc_class] = fn
            return fn

        return decorate

    def before_event(self, fn: F) -> F:
        """Decorator: ``fn()`` runs before each event handler; raise ApplicationError to drop the event."""
        self.hooks.before_event.append(fn)
        return fn

    def after_event(self, fn: F) -> F:
        """Decorator: ``fn()`` runs after each event handler that returned normally (reverse order)."""
        self.hooks.after_event.append(fn)
        return fn

    # -- background work -------------------------------------------------------------------

    def spawn(self, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run ``fn(*args, **kwargs)`` in a greenlet of this worker, in an app context; returns the greenlet.

        At most ``WAMP_BRIDGE_MAX_TASKS`` run at once per worker (beyond:
        :class:`~flask_wamp_bridge.component.tasks.TooManyTasks`); an error is
        logged; tasks still running at worker shutdown are killed.
        """
        return self.state().tasks.spawn(fn, *args, **kwargs)

    def every(self, seconds: float, *, name: str | None = None) -> t.Callable[[F], F]:
        """Decorator: run ``fn()`` every ``seconds``, in one worker of all workers and hosts at a time.

        The runner is the peer holding the registration (invoke ``single``) of
        ``wamp_bridge.schedule.`` + prefix + ``name`` (default: the function's
        name); the others try to register it again every second or so and take
        over when the holder's session ends.
        """
        from .component.schedule import Job

        def decorate(fn: F) -> F:
            self._jobs.append(Job(name or fn.__name__, float(seconds), fn))
            return fn

        return decorate

    def authorizer(self, fn: F) -> F:
        """Decorator: ``fn(caller, uri, action)`` decides what browser sessions may do beyond the static rules.

        Needs ``WAMP_BRIDGE_AUTHORIZER`` (the URI Crossbar calls; the generated
        config names it for the browser roles). ``caller`` is a
        :class:`~flask_wamp_bridge.router.authorization.Caller` (``authid``,
        ``authrole``, ``session``), ``action`` one of ``call``, ``register``,
        ``publish``, ``subscribe``. Return True, False or ``{"allow": bool,
        "disclose": bool, "cache": bool}``; ``cache: True`` lets this worker
        reuse the answer for the same session (``WAMP_BRIDGE_AUTHORIZER_CACHE``
        seconds, dropped by :meth:`logout`). Runs in an app context, within
        ``WAMP_BRIDGE_AUTHORIZER_TIMEOUT``; an error or a timeout denies. What
        ``WAMP_BRIDGE_PERMISSIONS`` allows is allowed without asking it; it is
        asked about exact URIs only (a pattern the static rules do not allow is denied).
        """
        self._authorize = fn
        return fn

    def subscribers(self, topic: str, match: str = "exact") -> list[str]:
        """The authids of the users (browser sessions) subscribed to ``topic`` now, sorted (needs an app context)."""
        return self.state().meta.subscribers(topic, match)

    def count_subscribers(self, topic: str, match: str = "exact") -> int:
        """How many distinct users are subscribed to ``topic`` now (needs an app context)."""
        return len(self.subscribers(topic, match))

    def identity_loader(self, fn: F) -> F:
        """Decorator: the callable that turns the Flask session into a WAMP identity for browsers."""
        self._identity_loader = fn
        return fn

    # -- using the peer (in an app context) ---------------------------------------------

    def state(self, app: Flask | None = None) -> BridgeState:
        """The :class:`BridgeState` of ``app`` (default: ``current_app``)."""
        app = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return t.cast(BridgeState, app.extensions["wamp_bridge"])
        except KeyError:
            raise ConfigError("this app has no WampBridge: call bridge.init_app(app) first") from None

    @property
    def peer(self) -> Peer:
        """The current app's :class:`~flask_wamp_bridge.wamp.peer.Peer` in this process (needs an app context).

        ``bridge.peer.register(uri, fn, **options)`` registers a procedure
        directly (no app context around it); ``bridge.peer.start()`` connects
        now instead of on first use.
        """
        return self.state().peer

    def call(self, procedure: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Call a procedure from anywhere in an app context (like ``g.wampy.call``)."""
        return self.state().peer.call(procedure, *args, **kwargs)

    def publish(self, topic: str, *args: t.Any, **kwargs: t.Any) -> None:
        """Publish from anywhere in an app context (like ``g.wampy.publish``)."""
        self.state().peer.publish(topic, *args, **kwargs)

    def connected(self, app: Flask | None = None, url: str | None = None,
                  timeout: float | None = None) -> t.ContextManager[Peer]:
        """A short-lived session for a process that is not a gunicorn worker (shell, cron, Celery)::

            with bridge.connected(app) as wamp:
                wamp.publish("app.news", "hello")

        Logs in with the app's peer credentials, registers nothing, says
        GOODBYE at the end of the block (:func:`flask_wamp_bridge.ops.client.connected`).

        :raises NotConnected: not joined within ``timeout`` (default ``WAMP_BRIDGE_CONNECT_TIMEOUT``).
        """
        from .ops.client import connected

        return connected(self.state(app), url, timeout)

    def publish_to(self, authid: str | t.Sequence[str], topic: str, *args: t.Any, **kwargs: t.Any) -> None:
        """Publish only to the sessions of ``authid`` (one or several), via ``eligible_authid``.

        With several router URLs (a cluster), on every node: links between
        nodes do not forward restricted publications.
        """
        eligible = [authid] if isinstance(authid, str) else list(authid)
        state = self.state()
        if len(state.peer.urls) > 1:
            state.nodes.publish_to(eligible, topic, args, kwargs)
            return
        state.peer.publish_with(topic, args, kwargs, options={"eligible_authid": eligible})

    def logout(self, authid: str, reason: str = "wamp.close.logout", message: str | None = None) -> list[int]:
        """End every WAMP session of ``authid`` on the router (all workers, all hosts).

        Calls Crossbar's ``wamp.session.kill_by_authid`` (on every router node
        when ``WAMP_BRIDGE_ROUTER_URL`` lists several); returns the killed session ids.
        """
        kwargs: dict[str, t.Any] = {"reason": reason}
        if message is not None:
            kwargs["message"] = message
        state = self.state()
        state.forget_authorizations(authid)
        if len(state.peer.urls) > 1:
            return state.nodes.logout(authid, kwargs)
        killed = state.peer.call("wamp.session.kill_by_authid", authid, **kwargs)
        return list(killed or [])


class _FirstRequestCheck:
    """``before_request``: set ``g.wampy``; until one request passed, check no setting changed since ``init_app``."""

    def __init__(self, state: BridgeState) -> None:
        self._state = weakref.ref(state)
        self._passed = False

    def __call__(self) -> None:
        state = self._state()
        if state is None:
            return
        if not self._passed:
            state.check_settings_unchanged()
            self._passed = True
        g.wampy = state.wampy


#: The library's procedures that the router calls on the way to a browser's login or action run in pools of their
#: own (size and backlog by pool name, from the settings): a storm of them never queues the app's procedures, nor
#: the reverse.
_OWN_POOLS: dict[str, t.Callable[[t.Mapping[str, t.Any]], tuple[int, int]]] = {
    "authenticator": lambda s: (s["WAMP_BRIDGE_AUTH_CONCURRENCY"], s["WAMP_BRIDGE_AUTH_BACKLOG"]),
    # The app's function runs at most WAMP_BRIDGE_AUTHORIZER_CONCURRENCY at once, beyond denied at once (the
    # authorizer's own gate); as many slots again answer what the static rules or the cache decide, so that a burst
    # (a page subscribing to 40 topics) waits only behind answers given at once, never behind the app's function.
    "authorizer": lambda s: (2 * s["WAMP_BRIDGE_AUTHORIZER_CONCURRENCY"], s["WAMP_BRIDGE_AUTH_BACKLOG"]),
    # the pages' history and presence calls: as many as the app's procedures, apart from them
    "meta": lambda s: (s["WAMP_BRIDGE_PEER_CONCURRENCY"], s["WAMP_BRIDGE_PEER_BACKLOG"]),
    # a job's runner proving its election before each run (one call per job at a time, each answered at once)
    "election": lambda s: (4, 100),
}


def _wire_authorizer_and_meta(state: BridgeState) -> None:
    """Record the authorizer and the history/presence procedures and subscriptions (made when the peer joins)."""
    ref = weakref.ref(state)

    def live() -> BridgeState:
        found = ref()
        if found is None:
            raise RuntimeError("the Flask app of this WampBridge state is gone")
        return found

    uri = state.settings["WAMP_BRIDGE_AUTHORIZER"]
    if uri is not None:
        def authorize(session: t.Any, uri: t.Any, action: t.Any, options: t.Any = None) -> dict[str, bool]:
            return live().authorizer(session, uri, action, options)

        state.register_internal(uri, authorize, pool="authorizer")  # the router's questions never wait on the app's
    if not meta_enabled(state.settings):
        return
    from .wamp.meta_api import BROWSER_META_CALLS
    from .wamp.meta_api import COUNT_SUBSCRIBERS
    from .wamp.meta_api import GET_EVENTS
    from .wamp.meta_api import LIST_SUBSCRIBERS

    def get_events(subscription: t.Any, limit: t.Any = 10) -> t.Any:
        return live().meta.get_events(subscription, limit)

    def count_subscribers(subscription: t.Any) -> int:
        return live().meta.count_subscribers_of(subscription)

    def list_subscribers(subscription: t.Any) -> list[str]:
        return live().meta.list_subscribers_of(subscription)

    # get_events: the worker that joined first (the longest history) answers
    state.register_internal(BROWSER_META_CALLS[GET_EVENTS], get_events, invoke="first", pool="meta")
    state.register_internal(BROWSER_META_CALLS[COUNT_SUBSCRIBERS], count_subscribers, pool="meta")
    state.register_internal(BROWSER_META_CALLS[LIST_SUBSCRIBERS], list_subscribers, pool="meta")
    def recorder(key: tuple[str, str]) -> t.Callable[..., None]:
        def record(*args: t.Any, **kwargs: t.Any) -> None:
            live().meta.record(key, args, kwargs)

        return record

    for topic in state.settings["WAMP_BRIDGE_EVENT_HISTORY"] or {}:
        match = "prefix" if topic.endswith(".") else "exact"
        options = {"match": match} if match == "prefix" else {}
        state.subscribe_internal(topic, recorder((topic, match)), **options)


def _normalize_prefix(prefix: str) -> str:
    if prefix and not prefix.endswith("."):
        return prefix + "."
    return prefix


if t.TYPE_CHECKING:  # the per-app state is what `flask wamp run` and the operators' tools need (checked by mypy)
    from .component.run import ComponentHost
    from .ops.host import OperationsHost

    def _runs_as_component(state: BridgeState) -> ComponentHost:
        return state

    def _serves_operations(state: BridgeState) -> OperationsHost:
        return state
