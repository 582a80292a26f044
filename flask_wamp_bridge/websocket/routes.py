"""Flask-Sockets-style WebSocket routes, served by the bridge worker.

::

    sockets = Sockets(app)

    @sockets.route("/echo")
    def echo(ws):
        for message in ws:
            ws.send(message)

    @sockets.route("/rooms/<room>", subprotocols=["chat.v1"])
    def chat(ws, room):           # URL variables come after ws
        user = session["user"]    # request, cookies and session are readable
        ...

The handler runs inside the upgrade request's Flask request context. Before
it runs, the route checks the ``Origin`` (403 when foreign), negotiates the
subprotocol (400 when none of the client's offers is supported) and only then
sends the 101 with the route's options. Returning from the handler closes the
socket with 1000.

Origin policy: same origin (the Origin's scheme, host and port equal the
request's, as Werkzeug sees them, so ``ProxyFix`` is honoured) plus the
origins in ``origins=`` or, when the route gives none,
``WAMP_BRIDGE_ALLOWED_ORIGINS`` (a list or a comma-separated string; ``"*"``
allows any). A request *without* an Origin header is allowed: browsers always
send Origin on WebSocket handshakes, so its absence means a non-browser client,
which cross-site WebSocket hijacking cannot involve; authenticate such clients
as usual. ``Origin: null`` is refused unless ``"null"`` is allowed explicitly.

Session: ``session`` can be read, but writes are NOT persisted: after the 101
no ``Set-Cookie`` can reach the browser. Change the session over HTTP.

Config: the ``"websocket"`` group of :data:`flask_wamp_bridge.settings.SETTINGS`
(``WAMP_BRIDGE_WS_*`` and ``WAMP_BRIDGE_ALLOWED_ORIGINS``); a value of ``0`` or
None disables that limit or timer; a route's own arguments override them,
where None means "use the config". With a ``WampBridge`` on the app the values
are the ones its ``init_app`` read (:func:`flask_wamp_bridge.settings.of`);
with ``Sockets`` alone, the app's config at each upgrade. permessage-deflate
is agreed when the browser offers it (every browser does) unless
``WAMP_BRIDGE_WS_DEFLATE`` or the route's ``deflate=False`` turns it off.

WebSocket routes need ``gunicorn -k flask_wamp_bridge.worker``; under any
other server a WebSocket request to them fails with a
:class:`~flask_wamp_bridge.errors.ConfigError` saying so.
"""

from __future__ import annotations

import functools
import typing as t
import weakref

from flask import Blueprint
from flask import current_app
from flask import request
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import Forbidden
from werkzeug.routing.exceptions import WebsocketMismatch

from .. import settings
from ..errors import ConfigError
from ..errors import ConnectionClosed
from ..settings import check_origins
from ..settings import normalize_origin
from .deflate import DeflateOptions

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Flask
    from flask.sansio.app import App
    from werkzeug.wrappers import Response

    from .connection import WebSocket

__all__ = [
    "Sockets",
    "WebSocketBlueprint",
    "accept_websocket",
    "check_origin",
    "negotiate_subprotocol",
    "handle_websocket_mismatch",
]

#: The options a setting feeds (``max_message_size``, ``ping_interval``, ...): see ``feeds`` in the settings table.
_OPTION_NAMES = tuple(settings.arguments_for("accept_websocket", {}))
_ROUTE_OPTION_NAMES = ("subprotocols", "origins", *_OPTION_NAMES)

_NOT_UNDER_WORKER = (
    "WebSocket routes need the flask_wamp_bridge gunicorn worker, which puts the socket in "
    "environ['wsgi.websocket']: run the app with `gunicorn -k flask_wamp_bridge.worker module:app` "
    "(not `flask run`, the Flask test client or another worker)"
)


def _is_upgrade(environ: t.Mapping[str, t.Any]) -> bool:
    return str(environ.get("HTTP_UPGRADE", "")).strip().lower() == "websocket"


# --- origin ------------------------------------------------------------------------


def _allowed_origins(origins: t.Iterable[str] | str | None) -> list[str]:
    if origins is None:
        origins = settings.get(settings.of(current_app), "WAMP_BRIDGE_ALLOWED_ORIGINS") or ()
    if isinstance(origins, str):
        origins = origins.split(",")
    return [o.strip() for o in origins if o and o.strip()]


def check_origin(origins: t.Iterable[str] | str | None = None) -> None:
    """Refuse (403) a WebSocket upgrade from a foreign ``Origin``, in the current request.

    :param origins: extra allowed origins (``"https://app.example.com"``, ``"*"``);
        None reads ``WAMP_BRIDGE_ALLOWED_ORIGINS``. The request's own origin is always allowed.
    :raises werkzeug.exceptions.Forbidden: the origin is not allowed.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        # Not a browser: browsers always send Origin on WebSocket handshakes, so no
        # cross-site page comes without one. WAMP_BRIDGE_ALLOW_MISSING_ORIGIN = False
        # admits browsers only.
        if settings.get(settings.of(current_app), "WAMP_BRIDGE_ALLOW_MISSING_ORIGIN"):
            return
        raise Forbidden(description="WebSocket connection without an Origin header refused: this server "
                                    "admits browsers only (WAMP_BRIDGE_ALLOW_MISSING_ORIGIN is False)")
    allowed = _allowed_origins(origins)
    if "*" in allowed:
        return
    if origin.strip().lower() == "null":
        if "null" in allowed:
            return
    else:
        mine = normalize_origin(origin)
        if mine is not None:
            scheme = "https" if request.scheme in ("https", "wss") else "http"
            if mine == normalize_origin(f"{scheme}://{request.host}"):
                return
            if any(mine == normalize_origin(a) for a in allowed if a != "null"):
                return
    raise Forbidden(
        description=(
            f"WebSocket connection from origin {origin!r} refused: only same-origin connections are "
            "allowed. To allow this origin, add it to WAMP_BRIDGE_ALLOWED_ORIGINS or to the route's origins=."
        )
    )


# --- subprotocol ---------------------------------------------------------------------


def negotiate_subprotocol(
    offered: t.Sequence[str], supported: t.Sequence[str], *, required: bool = False
) -> str | None:
    """The first of the client's ``offered`` subprotocols that is ``supported``.

    None when the client offered none (and ``required`` is false).

    :raises werkzeug.exceptions.BadRequest: the client offered subprotocols and
        none is supported, or offered none while one is ``required``.
    """
    if not offered:
        if required and supported:
            raise BadRequest(
                description=f"This endpoint needs a WebSocket subprotocol; offer one of: {', '.join(supported)}."
            )
        return None
    for name in offered:
        if name in supported:
            return name
    raise BadRequest(
        description=(
            f"None of the offered WebSocket subprotocols ({', '.join(offered)}) is supported here; "
            f"supported: {', '.join(supported) or 'none (offer no subprotocol)'}."
        )
    )


# --- accept ----------------------------------------------------------------------------


def _resolve(name: str, value: t.Any) -> t.Any:
    if value is None:
        value = settings.arguments_for("accept_websocket", settings.of(current_app))[name]
    return value or None  # 0 disables


def _deflate_options() -> DeflateOptions:
    return DeflateOptions(**settings.arguments_for("DeflateOptions", settings.of(current_app)))


def accept_websocket(
    subprotocols: t.Sequence[str] = (),
    *,
    origins: t.Iterable[str] | str | None = None,
    require_subprotocol: bool = False,
    origin_checked: bool = False,
    max_message_size: int | None = None,
    ping_interval: float | None = None,
    idle_timeout: float | None = None,
    send_timeout: float | None = None,
    deflate: bool | None = None,
) -> WebSocket:
    """Check the Origin, negotiate the subprotocol and accept the current request's WebSocket.

    For use in a view bound to a ``websocket=True`` rule. Options left as None
    take the ``WAMP_BRIDGE_WS_*`` config values; ``0`` (``False``) disables. A caller that
    ran :func:`check_origin` itself (before other work) passes ``origin_checked=True``.

    :raises werkzeug.exceptions.Forbidden: foreign Origin (nothing was sent yet).
    :raises werkzeug.exceptions.BadRequest: no acceptable subprotocol, or not a WebSocket request.
    :raises ConfigError: the app is not running under the bridge worker.
    """
    ws = request.environ.get("wsgi.websocket")
    if ws is None or not hasattr(ws, "accept"):
        if not _is_upgrade(request.environ):
            raise BadRequest(description="This URL only accepts WebSocket connections.")
        raise ConfigError(_NOT_UNDER_WORKER)
    if not origin_checked:
        check_origin(origins)
    subprotocol = negotiate_subprotocol(ws.offered_subprotocols, subprotocols, required=require_subprotocol)
    ws.accept(
        subprotocol,
        max_message_size=_resolve("max_message_size", max_message_size),
        ping_interval=_resolve("ping_interval", ping_interval),
        idle_timeout=_resolve("idle_timeout", idle_timeout),
        send_timeout=_resolve("send_timeout", send_timeout),
        deflate=_deflate_options() if _resolve("deflate", deflate) else None,
    )
    return t.cast("WebSocket", ws)


def handle_websocket_mismatch(error: WebsocketMismatch) -> Response:
    """Error handler: a clear 400 for HTTP requests to WebSocket routes (and the reverse)."""
    if _is_upgrade(request.environ):
        message = "This URL does not accept WebSocket connections."
    else:
        message = (
            "This URL only accepts WebSocket connections; connect to it with a WebSocket client "
            "(ws:// or wss://)."
        )
    return BadRequest(description=message).get_response()


# --- routes ---------------------------------------------------------------------------------


def _pop_route_options(options: dict[str, t.Any]) -> dict[str, t.Any]:
    route_options = {name: options.pop(name) for name in _ROUTE_OPTION_NAMES if name in options}
    subprotocols = route_options.get("subprotocols") or ()
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a list of names, not a string")
    route_options["subprotocols"] = tuple(subprotocols)
    check_origins("origins=", route_options.get("origins"))
    return route_options


def _websocket_view(handler: t.Callable[..., t.Any], route_options: dict[str, t.Any]) -> t.Callable[..., t.Any]:
    route_options = dict(route_options)
    subprotocols = route_options.pop("subprotocols", ())
    origins = route_options.pop("origins", None)

    @functools.wraps(handler)
    def view(**kwargs: t.Any) -> t.Any:
        ws = accept_websocket(subprotocols, origins=origins, **route_options)
        try:
            handler(ws, **kwargs)
        except ConnectionClosed:
            pass  # the peer went away: how Flask-Sockets-style loops usually end
        except Exception:
            ws.close(1011, "internal server error")
            raise  # Flask logs it; its 500 response is discarded
        # The worker closes the socket (1000 if still open) and discards this response.
        return current_app.response_class(status=204)

    view.websocket_handler = handler  # type: ignore[attr-defined]
    return view


class _WebSocketSetupState(BlueprintSetupState):
    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: t.Callable[..., t.Any] | None = None,
        **options: t.Any,
    ) -> None:
        route_options = _pop_route_options(options)
        if view_func is not None:
            view_func = _websocket_view(view_func, route_options)
        options["websocket"] = True
        options.pop("methods", None)
        options["provide_automatic_options"] = False
        super().add_url_rule(rule, endpoint, view_func, **options)


class WebSocketBlueprint(Blueprint):
    """A blueprint whose every route is a WebSocket route: ``handler(ws, **url_vars)``.

    ``@bp.route(rule, subprotocols=..., origins=..., max_message_size=..., ...)``
    takes the same settings as :meth:`Sockets.route`. Register it with
    ``app.register_blueprint(bp, url_prefix=...)`` or :meth:`Sockets.register_blueprint`.
    """

    def make_setup_state(
        self, app: App, options: dict[str, t.Any], first_registration: bool = False
    ) -> BlueprintSetupState:
        return _WebSocketSetupState(self, app, options, first_registration)

    @classmethod
    def from_blueprint(cls, blueprint: Blueprint) -> WebSocketBlueprint:
        """A WebSocketBlueprint with ``blueprint``'s name, prefix, routes and request hooks."""
        new = cls(
            blueprint.name,
            blueprint.import_name,
            url_prefix=blueprint.url_prefix,
            subdomain=blueprint.subdomain,
            url_defaults=blueprint.url_values_defaults,
        )
        new.deferred_functions.extend(blueprint.deferred_functions)
        for attr in (
            "before_request_funcs",
            "after_request_funcs",
            "teardown_request_funcs",
            "url_value_preprocessors",
            "url_default_functions",
        ):
            for key, funcs in getattr(blueprint, attr).items():
                getattr(new, attr).setdefault(key, []).extend(funcs)
        return new


class Sockets:
    """Flask-Sockets-compatible WebSocket routes (``Sockets(app)`` or ``init_app``).

    State lives in ``app.extensions["wamp_bridge.sockets"]``; one instance can
    serve several apps (factory pattern).
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._routes: list[tuple[str, t.Callable[..., t.Any], dict[str, t.Any]]] = []
        self._blueprints: list[tuple[Blueprint, dict[str, t.Any]]] = []
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the routes declared so far on ``app`` (and later ones too)."""
        settings.install(app.config, ["websocket"])
        app.extensions["wamp_bridge.sockets"] = self
        app.register_error_handler(WebsocketMismatch, handle_websocket_mismatch)
        for rule, handler, options in self._routes:
            self._add(app, rule, handler, dict(options))
        for blueprint, options in self._blueprints:
            app.register_blueprint(blueprint, **options)
        self._apps.add(app)

    def route(
        self,
        rule: str,
        *,
        subprotocols: t.Sequence[str] = (),
        origins: t.Iterable[str] | str | None = None,
        max_message_size: int | None = None,
        ping_interval: float | None = None,
        idle_timeout: float | None = None,
        send_timeout: float | None = None,
        deflate: bool | None = None,
        **options: t.Any,
    ) -> t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]:
        """Decorator: ``handler(ws, **url_vars)`` serves WebSocket connections to ``rule``.

        :param subprotocols: the subprotocols this route speaks, in the server's
            terms; the first one the client offers is chosen.
        :param origins: origins allowed besides the request's own (default:
            ``WAMP_BRIDGE_ALLOWED_ORIGINS``).
        :param max_message_size: overrides ``WAMP_BRIDGE_WS_MAX_MESSAGE_SIZE`` (0: no limit).
        :param deflate: overrides ``WAMP_BRIDGE_WS_DEFLATE`` (permessage-deflate when offered).
        :param options: Werkzeug rule options (``endpoint``, ``defaults``, ...).
        """

        def decorator(handler: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
            self.add_url_rule(
                rule,
                handler,
                subprotocols=subprotocols,
                origins=origins,
                max_message_size=max_message_size,
                ping_interval=ping_interval,
                idle_timeout=idle_timeout,
                send_timeout=send_timeout,
                deflate=deflate,
                **options,
            )
            return handler

        return decorator

    def add_url_rule(self, rule: str, handler: t.Callable[..., t.Any], **options: t.Any) -> None:
        """Non-decorator form of :meth:`route`."""
        self._routes.append((rule, handler, options))
        for app in list(self._apps):
            self._add(app, rule, handler, dict(options))

    def register_blueprint(self, blueprint: Blueprint, **options: t.Any) -> None:
        """Register a blueprint of WebSocket routes (Flask-Sockets style).

        A plain :class:`flask.Blueprint` is converted with
        :meth:`WebSocketBlueprint.from_blueprint`: every route on it becomes a
        WebSocket route.
        """
        if not isinstance(blueprint, WebSocketBlueprint):
            blueprint = WebSocketBlueprint.from_blueprint(blueprint)
        self._blueprints.append((blueprint, options))
        for app in list(self._apps):
            app.register_blueprint(blueprint, **options)

    @staticmethod
    def _add(app: Flask, rule: str, handler: t.Callable[..., t.Any], options: dict[str, t.Any]) -> None:
        route_options = _pop_route_options(options)
        endpoint = options.pop("endpoint", None)
        options.pop("methods", None)
        app.add_url_rule(
            rule,
            endpoint,
            _websocket_view(handler, route_options),
            websocket=True,
            provide_automatic_options=False,
            **options,
        )
