"""Quickstart: the page's WAMP session on /wamp is the user who logged in over HTTP."""

from pathlib import Path

from flask import Flask
from flask import abort
from flask import g
from flask import request
from flask import send_file
from flask import session

from flask_wamp_bridge import WampBridge

bridge = WampBridge()
WAMPY_JS = Path("node_modules/wampy/dist/browser/wampy.min.js")  # from `npm install wampy@8`


@bridge.register("app.add")
def add(a, b):
    return a + b


@bridge.register("app.whoami")
def whoami():
    caller = g.wamp_details  # the caller identity the router discloses
    return {"authid": caller.caller_authid, "authrole": caller.caller_authrole}


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="change-me", WAMP_BRIDGE_PEER_SECRET="change-me-too")
    app.config.from_prefixed_env()  # e.g. FLASK_SECRET_KEY, FLASK_WAMP_BRIDGE_ROUTER_URL
    app.config.update(config or {})
    bridge.init_app(app)  # last: it reads the WAMP_BRIDGE_* settings

    @app.get("/")
    def index():
        return send_file("index.html")

    @app.get("/wampy.min.js")
    def wampy_js():
        # node_modules next to this file or in a parent folder, as Node looks it up
        for folder in [Path(app.root_path), *Path(app.root_path).parents]:
            if (folder / WAMPY_JS).is_file():
                return send_file(folder / WAMPY_JS)
        abort(404, "wampy.js is missing: run `npm install wampy@8` next to app.py")

    @app.post("/login")
    def login():
        session["_user_id"] = request.form["name"]  # the default identity loader reads this key
        return {"ok": True}

    @app.post("/logout")
    def logout():
        user = session.pop("_user_id", None)
        if user:
            bridge.logout(user)  # ends the user's live WAMP sessions
        return {"ok": True}

    @app.post("/shout")
    def shout():
        g.wampy.publish("app.shouts", request.form["text"], author=session.get("_user_id"))
        return {"ok": True}

    return app
