"""Tests of the quickstart through /wamp, as a browser uses it, against a real Crossbar."""

import pytest
from app import create_app

from flask_wamp_bridge import ApplicationError

pytest_plugins = ["flask_wamp_bridge.testing"]


@pytest.fixture(scope="session")
def wamp_bridge_app_config():
    return create_app().config  # the test router gets the app's own roles and permissions


@pytest.fixture
def app(wamp_bridge_settings):
    return create_app(wamp_bridge_settings)  # points the app at the test router


def test_the_page_calls_as_the_logged_in_user(app, bridge_client):
    client = bridge_client(app)
    client.login(name="ann")
    assert client.call("app.whoami") == {"authid": "ann", "authrole": "user"}
    assert client.call("app.add", 2, 3) == 5


def test_guests_may_not_call(app, bridge_client):
    guest = bridge_client(app)
    with pytest.raises(ApplicationError) as error:
        guest.call("app.add", 2, 3)
    assert error.value.error == "wamp.error.not_authorized"


def test_a_view_publishes_to_subscribed_pages(app, bridge_client):
    ann, bob = bridge_client(app), bridge_client(app)
    ann.login(name="ann")
    bob.login(name="bob")
    shouts = bob.subscribe("app.shouts")
    ann.post("/shout", data={"text": "hello"})
    assert shouts.wait(1) == [(("hello",), {"author": "ann"})]
