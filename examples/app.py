"""Live board: the flask_wamp_bridge example app.

Run it with one command from the repository root (it sets up Crossbar too)::

    scripts/example            # then open http://127.0.0.1:8000

or by hand, with the development defaults below, in two terminals (from the same
directory: both read the random secrets the first one generates)::

    flask --app examples.app wamp router        # Crossbar on 127.0.0.1:8080
    gunicorn -k flask_wamp_bridge.worker -w 2 examples.app:app

What it shows:

- login over HTTP (``POST /login``, a username is enough), then the page
  opens a WAMP session with wampy.js on ``/wamp`` and *is* that user at the
  router (the bridge takes the identity from the Flask session);
- procedures served by the app's peer in every worker: ``app.board.post``
  stamps the author from the caller identity the router discloses and
  broadcasts on ``app.public.board.messages``; ``app.public.board.history``;
- a per-user notification (``app.notify``, via ``bridge.publish_to``): a
  "poke", or an ``@name`` mention in a post;
- presence kept by every worker from the router's session meta events (one
  load per worker, then one dict update per join or leave; no per-join scans);
- a view that publishes (``POST /api/messages``) and a logout view that
  ends the user's live WAMP sessions (``bridge.logout``);
- guests (role ``anonymous``) may use only ``app.public.``: they watch the
  board and who is online, but cannot post or poke;
- team channels guarded by the app's authorizer (``@bridge.authorizer``): a
  user joins a team (``POST /api/team``, stored in the database) and may then
  subscribe and publish to ``app.team.<team>.chat``, nobody else; the channel
  shows who is on it (presence: ``wamp.subscription.list_subscribers``, answered
  with usernames);
- the board's last posts are kept for ``wamp.subscription.get_events``: a page
  whose socket was cut shows the posts it missed when it reconnects.

``/echo`` is a plain WebSocket echo (text and binary as received); an
independent WebSocket conformance suite (Autobahn) runs against it, so its
limit fits that suite's 16 MiB messages.

Configuration comes from environment variables: ``SECRET_KEY``, every
``WAMP_BRIDGE_*`` key and ``EXAMPLE_*`` (``EXAMPLE_DATABASE``: the SQLite
file of the board). Without them the development defaults below apply. There
are no default secrets: without ``SECRET_KEY`` and ``WAMP_BRIDGE_PEER_SECRET``
the app generates random ones at start, keeps them in ``EXAMPLE_SECRETS_FILE``
(mode 0600) so that every worker and the router agree, and logs a warning.
"""

from __future__ import annotations

import collections.abc as c
import contextlib
import json
import os
import re
import secrets
import sqlite3
import time
import typing as t
from pathlib import Path

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from flask import render_template
from flask import request
from flask import send_from_directory
from flask import session

from flask_wamp_bridge import ApplicationError
from flask_wamp_bridge import BridgeError
from flask_wamp_bridge import Sockets
from flask_wamp_bridge import WampBridge
from flask_wamp_bridge import WebSocket
from flask_wamp_bridge import signals

__all__ = ["app", "bridge", "create_app", "DEV_DEFAULTS"]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Development defaults. There are no default secrets: see :func:`_secrets`.
DEV_DEFAULTS: dict[str, t.Any] = {
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WAMP_BRIDGE_ROUTER_URL": "ws://127.0.0.1:8080/ws",
    "WAMP_BRIDGE_REALM": "example",
    "WAMP_BRIDGE_PEER_AUTHID": "example-app",
    #: Where random secrets are kept when the environment gives none (shared by the
    #: workers and ``flask wamp router``; mode 0600).
    "EXAMPLE_SECRETS_FILE": str(REPO_ROOT / ".crossbar-run" / "example-secrets.json"),
    #: The board's SQLite file, shared by the workers.
    "EXAMPLE_DATABASE": str(REPO_ROOT / ".crossbar-run" / "board.sqlite3"),
    #: Where ``scripts/setup`` (npm) puts wampy.js's browser builds.
    "EXAMPLE_WAMPY_DIR": str(REPO_ROOT / "node_modules" / "wampy" / "dist" / "browser"),
    #: Messages the board keeps and shows.
    "EXAMPLE_HISTORY": 50,
    #: Team channels: the authorizer decides there (a rule that allows nothing hands it the prefix).
    "WAMP_BRIDGE_AUTHORIZER": "wamp_bridge.authorize",
    "WAMP_BRIDGE_PERMISSIONS": {"user": [{"uri": "app.", "allow": ["call", "subscribe"]},
                                         {"uri": "app.team.", "allow": []}]},
    #: The board's posts a page may fetch after a reconnect (wamp.subscription.get_events).
    "WAMP_BRIDGE_EVENT_HISTORY": {"app.public.board.messages": 50},
    #: Channels whose subscribers a subscribed page may list.
    "WAMP_BRIDGE_PRESENCE_TOPICS": ["app.team."],
}

# Environment values are JSON when they parse as JSON (numbers, lists), except
# for keys that are always strings: a secret that happens to be all digits stays a string.
_STRING_SUFFIXES = ("SECRET_KEY", "_SECRET", "_URL", "_REALM", "_AUTHID", "_PATH", "_DATABASE", "_DIR", "_FILE")
#: The secrets the example needs; never a value known from the source.
_SECRET_KEYS = ("SECRET_KEY", "WAMP_BRIDGE_PEER_SECRET")

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,19}$")
MENTION_RE = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_-]{1,19})\b")
MAX_TEXT = 500
TEAMS = ("red", "blue", "green")

# URIs: browsers of role "user" may call and subscribe under "app.", guests
# (role "anonymous") only under "app.public." (the generated Crossbar config).
BOARD_POST = "app.board.post"
BOARD_HISTORY = "app.public.board.history"
BOARD_MESSAGES = "app.public.board.messages"
PRESENCE_LIST = "app.public.presence.list"
PRESENCE_TOPIC = "app.public.presence"
POKE = "app.poke"
NOTIFY = "app.notify"
TEAM_PREFIX = "app.team."  # app.team.<team>.chat: members only (the authorizer)

bridge = WampBridge()


# -- the board's store: one SQLite file shared by every worker ------------------------


@contextlib.contextmanager
def _db() -> t.Iterator[sqlite3.Connection]:
    """A connection to the board's database, committed and closed on exit."""
    path = current_app.config["EXAMPLE_DATABASE"]
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        with db:  # one transaction
            db.execute(
                "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, "
                "text TEXT NOT NULL, at REAL NOT NULL, via TEXT NOT NULL, worker INTEGER NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS members (user TEXT PRIMARY KEY, team TEXT NOT NULL)")
            yield db


def _as_message(row: sqlite3.Row) -> dict[str, t.Any]:
    return {key: row[key] for key in ("id", "author", "text", "at", "via", "worker")}


def history() -> list[dict[str, t.Any]]:
    """The newest ``EXAMPLE_HISTORY`` messages, oldest first."""
    with _db() as db:
        rows = db.execute("SELECT * FROM messages ORDER BY id DESC LIMIT ?",
                          (current_app.config["EXAMPLE_HISTORY"],)).fetchall()
    return [_as_message(row) for row in reversed(rows)]


def post_message(author: str, text: t.Any, via: str) -> dict[str, t.Any]:
    """Store a message, broadcast it, and notify the users it mentions.

    :raises ApplicationError: ``app.error.invalid_argument`` for an empty or too long text.
    """
    if not isinstance(text, str) or not text.strip():
        raise ApplicationError("app.error.invalid_argument", "write something first")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ApplicationError("app.error.invalid_argument", f"a message has at most {MAX_TEXT} characters")
    with _db() as db:
        cursor = db.execute("INSERT INTO messages (author, text, at, via, worker) VALUES (?, ?, ?, ?, ?)",
                            (author, text, time.time(), via, os.getpid()))
        row = db.execute("SELECT * FROM messages WHERE id = ?", (cursor.lastrowid,)).fetchone()
        db.execute("DELETE FROM messages WHERE id <= ?", (row["id"] - 10 * current_app.config["EXAMPLE_HISTORY"],))
    message = _as_message(row)
    g.wampy.publish(BOARD_MESSAGES, message)  # g.wampy: in views and in procedures alike
    for name in sorted(set(MENTION_RE.findall(text)) - {author}):
        bridge.publish_to(name, NOTIFY, {"kind": "mention", "from": author, "text": text, "at": message["at"]})
    return message


# -- procedures (served by the app's peer in every worker; each call goes to one) ------


def _caller() -> str:
    """The calling browser's authid, as the router discloses it (never taken from the arguments)."""
    authid = g.wamp_details.caller_authid
    if not authid:
        raise ApplicationError("wamp.error.not_authorized", "the router did not disclose who is calling")
    return t.cast(str, authid)


@bridge.register(BOARD_POST)
def board_post(text: str) -> dict[str, t.Any]:
    return post_message(_caller(), text, "wamp")


@bridge.register(BOARD_HISTORY)
def board_history() -> list[dict[str, t.Any]]:
    return history()


@bridge.register(POKE)
def poke(authid: str) -> dict[str, t.Any]:
    sender = _caller()
    if not isinstance(authid, str) or not USERNAME_RE.match(authid):
        raise ApplicationError("app.error.invalid_argument", "poke whom? give a username")
    # Delivered only to the sessions of that user: the router filters by eligible_authid.
    bridge.publish_to(authid, NOTIFY, {"kind": "poke", "from": sender, "at": time.time()})
    return {"poked": authid}


class Presence:
    """Who is online, kept by every worker from the router's session meta events.

    Each join and leave is one dict update: no worker asks the router for its
    session list per event (that is O(N) calls per login, O(N^2) in a login
    storm). Each worker's peer loads the list once when it joins the realm (so
    a worker started late knows who came before), then follows the events.
    One elected worker publishes the list when it changed, at most once a
    second (``@bridge.every``).
    """

    def __init__(self) -> None:
        self.sessions: dict[int, tuple[str, str]] = {}  # session id -> (authid, authrole)
        self.changes = 0
        self._published = -1
        self._loading: set[int] | None = None  # sessions that left while the initial load ran

    def joined(self, details: t.Any) -> None:
        if isinstance(details, dict) and type(details.get("session")) is int:
            self.add(details["session"], details.get("authid"), details.get("authrole"))

    def add(self, session_id: int, authid: t.Any, authrole: t.Any) -> None:
        roles = (current_app.config["WAMP_BRIDGE_USER_ROLE"], current_app.config["WAMP_BRIDGE_ANONYMOUS_ROLE"])
        if isinstance(authid, str) and authrole in roles and session_id not in self.sessions:
            self.sessions[session_id] = (authid, authrole)
            self.changes += 1

    def left(self, session_id: t.Any) -> None:
        if self._loading is not None:
            self._loading.add(session_id)
        if self.sessions.pop(session_id, None) is not None:
            self.changes += 1

    def load(self) -> None:
        """Ask the router once for the sessions already there (a ``null`` id in the list is a ghost: skipped)."""
        config = current_app.config
        roles = [role for role in (config["WAMP_BRIDGE_USER_ROLE"], config["WAMP_BRIDGE_ANONYMOUS_ROLE"]) if role]
        self._loading = set()
        try:
            for session_id in bridge.call("wamp.session.list", roles) or []:
                if type(session_id) is not int or session_id in self.sessions:
                    continue
                try:
                    details = bridge.call("wamp.session.get", session_id)
                except ApplicationError:  # it left in the meantime (wamp.error.no_such_session)
                    continue
                if session_id not in self._loading and isinstance(details, dict):
                    self.add(session_id, details.get("authid"), details.get("authrole"))
        finally:
            self._loading = None

    def snapshot(self) -> dict[str, t.Any]:
        """``{"users": [authid, ...], "guests": n}``."""
        user_role = current_app.config["WAMP_BRIDGE_USER_ROLE"]
        users = {authid for authid, role in self.sessions.values() if role == user_role}
        guests = sum(1 for _, role in self.sessions.values() if role != user_role)
        return {"users": sorted(users), "guests": guests}

    def publish_if_changed(self) -> None:
        if self.changes != self._published:
            self._published = self.changes
            bridge.publish(PRESENCE_TOPIC, self.snapshot())


presence = Presence()


@bridge.register(PRESENCE_LIST)
def presence_list() -> dict[str, t.Any]:
    return presence.snapshot()


@bridge.subscribe("wamp.session.on_join")
def session_joined(details: t.Any = None, *args: t.Any, **kwargs: t.Any) -> None:
    presence.joined(details)


@bridge.subscribe("wamp.session.on_leave")
def session_left(session_id: t.Any = None, *args: t.Any, **kwargs: t.Any) -> None:
    presence.left(session_id)


@bridge.every(1.0)
def publish_presence() -> None:
    # The meta events reach the peer of every worker; one worker (elected through the router) publishes.
    presence.publish_if_changed()


def _load_presence(app: Flask) -> t.Callable[..., None]:
    def on_joined(sender: t.Any, **kwargs: t.Any) -> None:
        with app.app_context():
            bridge.spawn(_load_quietly)

    return on_joined


def _load_quietly() -> None:
    try:
        presence.load()
    except BridgeError as exc:  # e.g. the session ended meanwhile: the next join loads again
        current_app.logger.info("presence not loaded: %s", exc)


# -- team channels: the app's data decides who may use them ----------------------------


def team_of(user: str) -> str | None:
    with _db() as db:
        row = db.execute("SELECT team FROM members WHERE user = ?", (user,)).fetchone()
    return None if row is None else str(row["team"])


@bridge.authorizer
def authorize(caller: t.Any, uri: str, action: str) -> t.Any:
    """Members of a team may subscribe and publish to its channel; the router asks for each new subscription."""
    parts = uri.split(".")
    if len(parts) == 4 and uri.startswith(TEAM_PREFIX) and parts[3] == "chat" and action in ("subscribe", "publish"):
        # not cached: a user who changes teams loses the old channel at the next subscribe
        return caller.authrole == "user" and team_of(caller.authid) == parts[2]
    return False


# -- the Flask app ------------------------------------------------------------------


def _from_env(environ: c.Mapping[str, str]) -> dict[str, t.Any]:
    config: dict[str, t.Any] = {}
    for key, value in environ.items():
        if key != "SECRET_KEY" and not key.startswith(("WAMP_BRIDGE_", "EXAMPLE_")):
            continue
        if not key.endswith(_STRING_SUFFIXES):
            try:
                config[key] = json.loads(value)
                continue
            except ValueError:
                pass
        config[key] = value
    return config


def _secrets(app: Flask) -> None:
    """Fill in missing secrets with random ones, kept in ``EXAMPLE_SECRETS_FILE``, and say so.

    Every worker and ``flask wamp router`` must agree on them, so the first
    process to start writes the file (atomically, mode 0600) and the others read it.
    """
    missing = [key for key in _SECRET_KEYS if not app.config.get(key)]
    if not missing:
        return
    path = Path(app.config["EXAMPLE_SECRETS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = {key: secrets.token_urlsafe(32) for key in _SECRET_KEYS}
    scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(fresh, f)
    try:
        os.link(scratch, path)  # fails if another process was first: then use its secrets
        created = True
    except FileExistsError:
        created = False
    finally:
        scratch.unlink()
    stored = json.loads(path.read_text(encoding="utf-8"))
    for key in missing:
        app.config[key] = stored[key]
    verb = "generated random" if created else "using the random"
    app.logger.warning("%s %s from %s (no %s in the environment); set them to choose your own",
                       verb, " and ".join(missing), path, " or ".join(missing))


def _current_user() -> str | None:
    return session.get("_user_id")


def _json_body() -> dict[str, t.Any]:
    # Requiring a JSON body is this demo's CSRF guard: a cross-site HTML form
    # cannot send application/json, and fetch() from another origin must pass CORS first.
    if not request.is_json:
        raise _HttpError(415, "send a JSON object with Content-Type: application/json")
    try:
        body = request.get_json(silent=True)  # None: not JSON
    except RecursionError:  # nested past what the JSON parser holds
        body = None
    if not isinstance(body, dict):
        raise _HttpError(400, "the body must be a JSON object")
    return body


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(config: c.Mapping[str, t.Any] | None = None) -> Flask:
    """The example app: dev defaults, then the environment, then ``config``."""
    app = Flask(__name__)
    app.config.update(DEV_DEFAULTS)
    app.config.update(_from_env(os.environ))
    app.config.update(config or {})
    _secrets(app)
    bridge.init_app(app)  # also mounts the browsers' WAMP endpoint at WAMP_BRIDGE_PATH ("/wamp")
    signals.peer_joined.connect(_load_presence(app), sender=app, weak=False)
    sockets = Sockets(app)

    @app.errorhandler(_HttpError)
    def http_error(error: _HttpError) -> tuple[Response, int]:
        return jsonify(error=str(error)), error.status

    @app.get("/")
    def index() -> str:
        return render_template("index.html", realm=app.config["WAMP_BRIDGE_REALM"],
                               wamp_path=app.config["WAMP_BRIDGE_PATH"], user=_current_user())

    @app.get("/api/me")
    def me() -> Response:
        return jsonify(user=_current_user(), worker=os.getpid())

    @app.post("/login")
    def login() -> Response:
        username = _json_body().get("username")
        username = username.strip().lower() if isinstance(username, str) else ""
        if not USERNAME_RE.match(username):
            raise _HttpError(400, "a username is 2 to 20 letters, digits, '-' or '_'")
        if username == app.config["WAMP_BRIDGE_PEER_AUTHID"] or username.startswith("anonymous"):
            raise _HttpError(400, f"{username!r} is reserved; pick another name")
        session.clear()
        session["_user_id"] = username  # Flask-Login's key: the bridge's default identity loader reads it
        return jsonify(user=username)

    @app.post("/logout")
    def logout() -> Response:
        _json_body()
        user = _current_user()
        session.clear()
        closed = None
        if user is not None:
            try:
                # ends this user's WAMP sessions in every worker (the page sees GOODBYE)
                closed = len(bridge.logout(user))
            except BridgeError as exc:
                app.logger.warning("logout of %r: could not end its WAMP sessions: %s", user, exc)
        return jsonify(user=None, closed_sessions=closed)

    @app.get("/api/team")
    def get_team() -> Response:
        user = _current_user()
        return jsonify(team=team_of(user) if user else None, teams=TEAMS)

    @app.post("/api/team")
    def join_team() -> Response:
        team = _json_body().get("team")
        user = _current_user()
        if user is None:
            raise _HttpError(401, "log in first")
        if team not in TEAMS:
            raise _HttpError(400, f"pick one of {', '.join(TEAMS)}")
        with _db() as db:
            db.execute("INSERT INTO members (user, team) VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET team = ?",
                       (user, team, team))
        return jsonify(team=team)

    @app.get("/api/team/<any(red, blue, green):team>/online")
    def team_online(team: str) -> Response:
        """Who is on a team's channel now, as the page's presence call answers it."""
        return jsonify(users=bridge.subscribers(f"{TEAM_PREFIX}{team}.chat"))

    @app.get("/api/messages")
    def get_messages() -> Response:
        return jsonify(messages=history(), worker=os.getpid())

    @app.post("/api/messages")
    def create_message() -> tuple[Response, int]:
        """Post over plain HTTP: the view publishes through ``g.wampy`` like the procedure does."""
        text = _json_body().get("text")
        user = _current_user()
        if user is None:
            raise _HttpError(401, "log in first")
        try:
            message = post_message(user, text, "http")
        except ApplicationError as exc:
            raise _HttpError(400, str(exc.args[0]) if exc.args else exc.error) from None
        return jsonify(message=message, worker=os.getpid()), 201

    @app.get("/vendor/<any('wampy.min.js', 'wampy-all.min.js'):name>")
    def wampy_js(name: str) -> Response:
        folder = Path(app.config["EXAMPLE_WAMPY_DIR"])
        if not (folder / name).is_file():
            message = (f"wampy.js is not installed ({folder / name} is missing): run scripts/setup "
                       "in the repository root (it runs npm ci)")
            return Response(f"console.error({json.dumps(message)});\n", status=500,
                            mimetype="text/javascript")
        return send_from_directory(folder, name, mimetype="text/javascript", max_age=3600)

    @sockets.route("/echo", max_message_size=16 * 1024 * 1024 + 1024)
    def echo(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message)

    return app


app = create_app()
