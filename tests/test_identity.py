from __future__ import annotations

import dataclasses

import flask
import pytest

from flask_wamp_bridge.bridge.identity import FrozenDict
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.identity import coerce_identity
from flask_wamp_bridge.bridge.identity import default_identity_loader
from flask_wamp_bridge.errors import ConfigError


def test_identity_is_immutable_including_authextra():
    extra = {"groups": ["a", "b"], "profile": {"name": "Ann"}}
    identity = Identity("ann", "user", extra)
    extra["groups"].append("c")  # the caller's dict is copied, not shared
    assert identity.authextra == {"groups": ("a", "b"), "profile": {"name": "Ann"}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.authid = "bob"  # type: ignore[misc]
    with pytest.raises(TypeError):
        identity.authextra["x"] = 1  # type: ignore[index]
    assert isinstance(identity.authextra["profile"], FrozenDict)
    assert hash(identity) == hash(Identity("ann", "user", {"groups": ["a", "b"], "profile": {"name": "Ann"}}))


def test_identity_to_dict_is_plain_json():
    identity = Identity("ann", "user", {"groups": ["a"], "n": 1.5, "ok": True, "none": None})
    assert identity.to_dict() == {
        "authid": "ann", "authrole": "user",
        "authextra": {"groups": ["a"], "n": 1.5, "ok": True, "none": None},
    }
    assert type(identity.to_dict()["authextra"]["groups"]) is list


@pytest.mark.parametrize("extra, fragment", [
    ({"when": object()}, "JSON-like"),
    ({1: "x"}, "keys must be strings"),
    ({"n": float("nan")}, "finite"),
])
def test_identity_rejects_non_json_authextra(extra, fragment):
    with pytest.raises(TypeError, match=fragment):
        Identity("ann", "user", extra)


@pytest.mark.parametrize("authid, authrole", [("", "user"), ("ann", ""), (None, "user"), ("ann", 3)])
def test_identity_requires_nonempty_strings(authid, authrole):
    with pytest.raises(TypeError):
        Identity(authid, authrole)


def test_coerce_identity_accepts_every_form():
    expected = Identity("ann", "user")
    assert coerce_identity(expected, None) is expected
    assert coerce_identity("ann", "user") == expected
    assert coerce_identity(7, "user") == Identity("7", "user")
    assert coerce_identity({"authid": "ann"}, "user") == expected
    assert coerce_identity({"authid": "ann", "authrole": "admin", "authextra": {"a": 1}}, None) \
        == Identity("ann", "admin", {"a": 1})
    assert coerce_identity(("ann", "admin"), None) == Identity("ann", "admin")
    assert coerce_identity(("ann", "admin", {"a": [1]}), None) == Identity("ann", "admin", {"a": [1]})
    assert coerce_identity(None, "user") is None
    assert coerce_identity("", "user") is None


def test_coerce_identity_without_role_is_a_config_error():
    with pytest.raises(ConfigError, match="WAMP_BRIDGE_USER_ROLE"):
        coerce_identity("ann", None)


@pytest.mark.parametrize("value, fragment", [
    ({"authid": "ann", "role": "x"}, "unknown keys"),
    ({"authrole": "x"}, "no 'authid'"),
    (["ann", "user"], "list"),
    (True, "True"),
    (3.5, "float"),
])
def test_coerce_identity_rejects_other_values(value, fragment):
    with pytest.raises(TypeError, match=fragment):
        coerce_identity(value, "user")


def _app(**config):
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY="k", **config)
    return app


def test_default_identity_loader_reads_the_session_key():
    app = _app()
    with app.test_request_context():
        assert default_identity_loader() is None
        flask.session["_user_id"] = 42
        assert default_identity_loader() == "42"
    app = _app(WAMP_BRIDGE_IDENTITY_KEY="uid")
    with app.test_request_context():
        flask.session["_user_id"] = "ignored"
        assert default_identity_loader() is None
        flask.session["uid"] = "ann"
        assert default_identity_loader() == "ann"


def test_default_identity_loader_never_writes_the_session():
    app = _app()
    with app.test_request_context():
        flask.session["_user_id"] = "ann"
        flask.session.modified = False
        flask.session.accessed = False
        default_identity_loader()
        assert not flask.session.modified


def test_default_identity_loader_uses_flask_login():
    flask_login = pytest.importorskip("flask_login")

    class User(flask_login.UserMixin):
        def __init__(self, uid):
            self.id = uid

    app = _app()
    manager = flask_login.LoginManager(app)
    users = {"ann": User("ann")}
    manager.user_loader(users.get)

    @app.post("/login")
    def login():
        flask_login.login_user(users["ann"])
        return "ok"

    @app.get("/who")
    def who():
        return repr(default_identity_loader())

    client = app.test_client()
    assert client.get("/who").text == "None"
    client.post("/login")
    assert client.get("/who").text == "'ann'"
    # the session key is what Flask-Login wrote; an unknown user loads as anonymous
    users.clear()
    assert client.get("/who").text == "None"
