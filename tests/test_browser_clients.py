"""wampy.js 8 and autobahn-js 22 in headless Chromium through the checked relay: every feature they use still works.

A logged-in page calls, gets progressive results, cancels, subscribes with each
match policy (a second session of the same user), publishes with acknowledge,
exclusions and eligibility, registers and answers an invocation. wampy.js and
autobahn-js run over JSON, msgpack and CBOR (wampy's msgpack and CBOR encoders
send unset options as ``undefined``, which the relay drops); the relay's
upstream is RawSocket in msgpack (CBOR for CBOR pages), the default.
"""

from __future__ import annotations

import typing as t

import pytest
from helpers import GunicornProcess
from test_browser import CHROMIUM_ARGS
from test_browser import _chromium
from test_browser import _require
from test_endpoint import login
from test_relay_security import router  # noqa: F401 (a fixture)
from test_relay_security import server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.crossbar, pytest.mark.timeout(240)]

if t.TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Page

WAMPY = """
async ([name, url]) => {
  const serializer = {json: () => new JsonSerializer(), msgpack: () => new MsgpackSerializer(),
                      cbor: () => new CborSerializer()}[name]();
  const waitFor = async (check) => {
    for (let i = 0; i < 300 && !check(); i++) await new Promise(r => setTimeout(r, 50));
    return check();
  };
  const out = {};
  const ws = new Wampy(url, {realm: 'realm1', serializer, autoReconnect: false});
  await ws.connect();
  out.whoami = (await ws.call('app.whoami')).argsList[0];
  const progress = [];
  const final = await ws.call('app.count', [3], {progress_callback: (r) => progress.push(r.argsList[0])});
  out.progress = progress;
  out.final = final.argsList[0];
  const slow = ws.call('app.sleep', [10]);
  const requestId = ws.getOpStatus().reqId;
  ws.cancel(requestId, {mode: 'kill'});
  try { await slow; out.canceled = 'no'; } catch (e) { out.canceled = e.error || e.errorUri || String(e); }
  const got = {exact: [], prefix: [], wildcard: []};
  const other = new Wampy(url, {realm: 'realm1', serializer, autoReconnect: false});  // the same user, elsewhere
  await other.connect();
  await other.subscribe('app.topic.x', (e) => got.exact.push(e.argsList[0]));
  await other.subscribe('app.topic', (e) => got.prefix.push(e.argsList[0]), {match: 'prefix'});
  await other.subscribe('app..x', (e) => got.wildcard.push(e.argsList[0]), {match: 'wildcard'});
  await ws.publish('app.topic.x', ['excluded'], {exclude: [other.getSessionId()]});
  await ws.publish('app.topic.x', ['not eligible'], {eligible_authid: ['nobody']});
  await ws.publish('app.topic.x', ['one'], {exclude_me: true, exclude_authid: ['nobody'],
                                            eligible_authrole: ['user']});
  await waitFor(() => got.exact.length && got.prefix.length && got.wildcard.length);
  await other.disconnect();
  out.events = got;
  const echo = 'app.user.wampy_' + name + '.echo';
  await ws.register(echo, ({argsList}) => ({argsList: ['echo:' + argsList[0]]}));
  out.echo = (await ws.call(echo, ['hi'])).argsList[0];
  await ws.disconnect();
  return out;
}
"""

AUTOBAHN = """
async ([name, url]) => {
  const serializers = [{json: () => new autobahn.serializer.JSONSerializer(),
                        msgpack: () => new autobahn.serializer.MsgpackSerializer(),
                        cbor: () => new autobahn.serializer.CBORSerializer()}[name]()];
  const waitFor = async (check) => {
    for (let i = 0; i < 300 && !check(); i++) await new Promise(r => setTimeout(r, 50));
    return check();
  };
  const out = {};
  const connection = new autobahn.Connection({url, realm: 'realm1', max_retries: 0, serializers});
  const session = await new Promise((resolve, reject) => {
    connection.onopen = resolve;
    connection.onclose = (reason, details) => { reject(new Error(reason + ' ' + JSON.stringify(details))); };
    connection.open();
  });
  out.whoami = await session.call('app.whoami');
  const progress = [];
  out.final = await new Promise((resolve, reject) => {
    session.call('app.count', [3], {}, {receive_progress: true}).then(resolve, reject, (p) => progress.push(p));
  });
  out.progress = progress;
  const slow = session.call('app.sleep', [10]);
  slow.cancel({mode: 'kill'});
  try { await slow; out.canceled = 'no'; } catch (e) { out.canceled = e.error || String(e); }
  const got = {exact: [], prefix: [], wildcard: []};
  const otherConnection = new autobahn.Connection({url, realm: 'realm1', max_retries: 0, serializers});
  const other = await new Promise((resolve) => { otherConnection.onopen = resolve; otherConnection.open(); });
  await other.subscribe('app.topic.x', (args) => got.exact.push(args[0]));
  await other.subscribe('app.topic', (args) => got.prefix.push(args[0]), {match: 'prefix'});
  await other.subscribe('app..x', (args) => got.wildcard.push(args[0]), {match: 'wildcard'});
  await session.publish('app.topic.x', ['excluded'], {}, {acknowledge: true, exclude: [other.id]});
  await session.publish('app.topic.x', ['not eligible'], {}, {acknowledge: true, eligible_authid: ['nobody']});
  await session.publish('app.topic.x', ['one'], {}, {acknowledge: true, exclude_me: true,
                                                     exclude_authid: ['nobody'], eligible_authrole: ['user']});
  await waitFor(() => got.exact.length && got.prefix.length && got.wildcard.length);
  otherConnection.close();
  out.events = got;
  const echo = 'app.user.autobahn_' + name + '.echo';
  await session.register(echo, (args) => 'echo:' + args[0]);
  out.echo = await session.call(echo, ['hi']);
  connection.close();
  return out;
}
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium()
    _require(path, "Debian's chromium is not installed: run scripts/setup --browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "the Python package playwright is not installed: run scripts/setup")
    return t.cast(str, path)


@pytest.fixture
def page(chromium: str, server: GunicornProcess) -> t.Iterator[Page]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:  # never downloads a browser: we name the executable
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            name, value = login(server, "alice").split("=", 1)
            context.add_cookies([{"name": name, "value": value, "url": server.url}])
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}/clients")
            yield page
            assert not errors, errors
        finally:
            browser.close()


EXPECTED = {
    "whoami": {"authid": "alice", "authrole": "user"},
    "progress": [0, 1, 2],
    "final": "done",
    "canceled": "wamp.error.canceled",
    "events": {"exact": ["one"], "prefix": ["one"], "wildcard": ["one"]},
    "echo": "echo:hi",
}


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
def test_wampy_features_work_through_the_checked_relay(page: Page, server: GunicornProcess,  # noqa: F811
                                                       serializer: str) -> None:
    assert page.evaluate(WAMPY, [serializer, server.ws_url("/wamp")]) == EXPECTED
    assert "protocol_violation" not in server.log()


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
def test_autobahn_features_work_through_the_checked_relay(page: Page, server: GunicornProcess,  # noqa: F811
                                                          serializer: str) -> None:
    assert page.evaluate(AUTOBAHN, [serializer, server.ws_url("/wamp")]) == EXPECTED
    assert "protocol_violation" not in server.log()
