"""The app as a WAMP component: argument checks from type hints, hooks, signals, background
tasks, scheduled jobs and component mode. Pure parts in process; the rest against a real
Crossbar, real gunicorn workers and ``flask wamp run``, with autobahn-python as the caller."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import signal
import subprocess
import sys
import time
import typing as t
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask import g
from helpers import REPO_ROOT
from helpers import GunicornProcess

from flask_wamp_bridge import WampBridge
from flask_wamp_bridge.component.middleware import Hooks
from flask_wamp_bridge.component.middleware import event_runner
from flask_wamp_bridge.component.middleware import procedure_runner
from flask_wamp_bridge.component.validation import InvalidArgument
from flask_wamp_bridge.component.validation import to_plain
from flask_wamp_bridge.component.validation import validator_for
from flask_wamp_bridge.errors import ApplicationError
from flask_wamp_bridge.errors import ConfigError
from flask_wamp_bridge.router.process import CrossbarProcess
from flask_wamp_bridge.testing import TEST_PEER_AUTHID
from flask_wamp_bridge.testing import TEST_PEER_SECRET
from flask_wamp_bridge.testing import WampClient

# --- argument checks (no network) ------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int


def add(a: int, b: float = 1.0, *, label: str | None = None) -> float:
    return a + b


def problems(validator: t.Any, args: list[t.Any], kwargs: dict[str, t.Any]) -> list[tuple[t.Any, str]]:
    with pytest.raises(InvalidArgument) as caught:
        validator(args, kwargs)
    assert caught.value.error == "wamp.error.invalid_argument"
    return [(error["argument"], error["problem"]) for error in caught.value.kwargs["errors"]]


@pytest.mark.parametrize("use_pydantic", [True, False], ids=["pydantic", "plain"])
def test_validation_binds_coerces_and_reports_each_problem(use_pydantic: bool) -> None:
    check = validator_for(add, name="app.add", use_pydantic=use_pydantic)
    assert check is not None
    assert check(["2"], {"label": "x"}) == ([], {"a": 2, "label": "x"})  # lax: "2" is an int
    assert check([2, 3], {}) == ([], {"a": 2, "b": 3.0})
    assert problems(check, [], {}) == [("a", "missing")]
    assert problems(check, [1, 2, 3], {}) == [(2, "unexpected")]
    assert problems(check, [1], {"a": 1, "nope": 0}) == [("a", "duplicate"), ("nope", "unexpected")]
    assert [arg for arg, _ in problems(check, ["x"], {"label": 5})] == ["a", "label"]


@pytest.mark.parametrize("use_pydantic", [True, False], ids=["pydantic", "plain"])
def test_validation_strict_refuses_what_lax_coerces(use_pydantic: bool) -> None:
    check = validator_for(add, name="app.add", strict=True, use_pydantic=use_pydantic)
    assert check is not None
    assert [arg for arg, _ in problems(check, ["2"], {})] == ["a"]
    assert check([2], {}) == ([], {"a": 2})


def test_validation_pydantic_builds_dataclasses_and_names_the_nested_field() -> None:
    def mirror(p: Point) -> Point:
        return p

    check = validator_for(mirror, name="app.mirror")
    assert check is not None
    assert check([{"x": 1, "y": "2"}], {}) == ([], {"p": Point(1, 2)})
    with pytest.raises(InvalidArgument) as caught:
        check([{"x": 1, "y": "z"}], {})
    assert caught.value.kwargs["errors"][0]["argument"] == "p"
    assert caught.value.kwargs["errors"][0]["location"] == ["y"]


def test_validation_plain_checks_simple_containers_and_builds_dataclasses() -> None:
    def fn(items: list[int], table: dict[str, float], p: Point, maybe: int | None = None) -> None: ...

    check = validator_for(fn, name="app.fn", use_pydantic=False)
    assert check is not None
    assert check([["1", 2], {"a": 1}, {"x": 1, "y": "2", "extra": 0}], {}) == (
        [], {"items": [1, 2], "table": {"a": 1.0}, "p": Point(1, 2)})
    assert problems(check, [[1, "x"], {}, {"x": 1}], {"maybe": "y"}) == [("items", "integer_type"),
                                                                          ("p", "missing"), ("maybe", "union_type")]


def test_validation_without_pydantic_is_the_same_or_fails_at_init_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_wamp_bridge.component import validation

    monkeypatch.setitem(sys.modules, "pydantic", None)  # import pydantic fails, as where it is not installed
    monkeypatch.setattr(validation, "_pydantic", functools.cache(validation._pydantic.__wrapped__))
    assert validation._pydantic() is None

    bridge = WampBridge()

    @bridge.register("app.mirror")
    def mirror(p: Point) -> Point:
        return p

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", WAMP_BRIDGE_PEER_SECRET="s")
    bridge.init_app(app)
    state = bridge.state(app)
    check = state.validator(bridge._handlers[0])
    assert check([{"x": 1, "y": "2"}], {}) == ([], {"p": Point(1, 2)})  # as pydantic builds it

    with pytest.raises(ConfigError, match=r"app.when: .*'at'.*Flask-WAMP-Bridge\[validation\]"):
        @bridge.register("app.when")
        def when(at: datetime.datetime) -> None: ...

    other = WampBridge()
    other.register("app.later", validate=False)(lambda at: at)

    @other.register("app.at")
    def at(at: datetime.datetime) -> None: ...

    with pytest.raises(ConfigError, match="needs pydantic"):
        other.init_app(Flask(__name__))


def test_validation_none_for_unannotated_and_follows_wraps() -> None:
    assert validator_for(lambda a, b: a, name="x") is None
    import functools

    @functools.wraps(add)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        return add(*args, **kwargs)

    check = validator_for(wrapper, name="app.add")
    assert check is not None and problems(check, [], {}) == [("a", "missing")]


def test_to_plain_turns_dataclasses_and_models_into_data() -> None:
    import pydantic

    class Model(pydantic.BaseModel):
        name: str
        at: Point

    value = [Point(1, 2), {"m": Model(name="n", at=Point(3, 4))}, (1, "a")]
    assert to_plain(value) == [{"x": 1, "y": 2}, {"m": {"name": "n", "at": {"x": 3, "y": 4}}}, [1, "a"]]


# --- hooks (in process, no network) ----------------------------------------------------


@dataclasses.dataclass
class FakeDetails:
    procedure: str = "app.p"
    topic: str = "app.t"


def test_hooks_run_in_order_refuse_answer_and_handle_errors() -> None:
    app = Flask(__name__)
    hooks = Hooks()
    seen: list[str] = []
    hooks.before_call += [lambda: seen.append("b1"), lambda: seen.append("b2")]
    hooks.after_call += [lambda r: [*r, "a1"], lambda r: [*r, "a2"]]

    def proc(n: int) -> list[t.Any]:
        seen.append(f"proc {n} {g.wamp_details.procedure}")
        return [n]

    run = procedure_runner(proc, lambda: app, None, hooks, validator_for(proc, name="app.p"), FakeDetails)
    assert run("5") == [5, "a2", "a1"]  # after hooks in reverse order, on the checked argument
    assert seen == ["b1", "b2", "proc 5 app.p"]
    with pytest.raises(InvalidArgument):
        run("x")

    def refuse() -> None:
        raise ApplicationError("app.error.no")

    hooks.before_call.insert(0, refuse)
    with pytest.raises(ApplicationError, match="app.error.no"):
        run(1)
    hooks.call_errorhandlers[ApplicationError] = lambda exc: ["handled", exc.error]
    assert run(1) == ["handled", "app.error.no", "a2", "a1"]
    hooks.before_call[0] = lambda: ["cached"]  # a value answers the call: the procedure is skipped
    seen.clear()
    assert run(1) == ["cached", "a2", "a1"] and seen == []


def test_event_hooks_and_a_failed_check_drop_the_event(caplog: pytest.LogCaptureFixture) -> None:
    app = Flask(__name__)
    hooks = Hooks()
    got: list[int] = []

    def on(n: int) -> None:
        got.append(n)

    run = event_runner(on, lambda: app, None, hooks, validator_for(on, name="app.t"), FakeDetails)
    run("x")
    run(3)
    assert got == [3]
    assert "event on 'app.t' dropped" in caplog.text

    def drop() -> None:
        raise ApplicationError("app.error.quiet")

    hooks.before_event.append(drop)
    run(4)
    assert got == [3]


def test_bridge_decorators_record_hooks_and_refuse_bad_validate_option() -> None:
    bridge = WampBridge()
    bridge.before_call(first_hook := (lambda: None))
    assert bridge.hooks.before_call == [first_hook]
    with pytest.raises(Exception, match="validate="):
        bridge.register(validate="maybe")


#: What a router answers our GOODBYE with (Crossbar: ``wamp.close.normal``).
GOODBYE_REPLIES = ("wamp.close.normal", "wamp.close.goodbye_and_out")


def test_tasks_bounded_logged_and_stopped(caplog: pytest.LogCaptureFixture) -> None:
    import gevent

    from flask_wamp_bridge.component.tasks import Tasks
    from flask_wamp_bridge.component.tasks import TooManyTasks

    app = Flask("tasks_app")
    tasks = Tasks(lambda: app, "wampy", limit=2)
    stopped: list[str] = []

    def forever(name: str) -> None:
        assert g.wampy == "wampy"
        try:
            gevent.sleep(3600)
        finally:
            stopped.append(name)

    tasks.spawn(forever, "a")
    failing = tasks.spawn(lambda: 1 / 0)
    failing.join()
    assert "background task" in caplog.text and "ZeroDivisionError" in caplog.text
    tasks.spawn(forever, "b")
    gevent.sleep(0)  # both running (a task killed before it started never runs at all)
    with pytest.raises(TooManyTasks):
        tasks.spawn(forever, "c")
    tasks.stop()
    assert sorted(stopped) == ["a", "b"] and not tasks.running
    with pytest.raises(TooManyTasks):
        tasks.spawn(forever, "late")


# --- real Crossbar and gunicorn -------------------------------------------------------------


def component_env(router: CrossbarProcess, prefix: str, record: Path, **extra: str) -> dict[str, str]:
    return {
        "FLASK_WAMP_BRIDGE_ROUTER_URL": router.url,
        "FLASK_WAMP_BRIDGE_REALM": router.realm,
        "FLASK_WAMP_BRIDGE_PEER_AUTHID": TEST_PEER_AUTHID,
        "FLASK_WAMP_BRIDGE_PEER_SECRET": TEST_PEER_SECRET,
        "FLASK_WAMP_BRIDGE_PREFIX": prefix,
        "FLASK_SECRET_KEY": "component-test-secret",
        "COMPONENT_RECORD": str(record),
        **extra,
    }


def records(path: Path, kind: str | None = None) -> list[dict[str, t.Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if kind is None or line["kind"] == kind]


def wait_until(predicate: t.Callable[[], t.Any], timeout: float = 30.0, what: str = "") -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def call_when_ready(client: WampClient, procedure: str, *args: t.Any) -> t.Any:
    def attempt() -> t.Any:
        try:
            return [client.call(procedure, *args)]
        except ApplicationError as exc:
            if exc.error != "wamp.error.no_such_procedure":
                raise
            return None

    return wait_until(attempt, what=procedure)[0]


def error_of(client: WampClient, procedure: str, *args: t.Any, **kwargs: t.Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        client.call(procedure, *args, **kwargs)
    return caught.value


@pytest.mark.timeout(180)
def test_component_under_gunicorn_validation_hooks_signals_and_tasks(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient], tmp_path: Path,
) -> None:
    prefix = f"app.comp{uuid.uuid4().hex[:8]}"
    record = tmp_path / "record.jsonl"
    env = component_env(crossbar_router, prefix, record)
    with GunicornProcess("tests.apps.component_app:app", env=env) as server:
        client = wamp_client(crossbar_router)
        assert call_when_ready(client, f"{prefix}.add", "2", 3) == 5
        # validation, as autobahn-python sees it
        exc = error_of(client, f"{prefix}.add", "two")
        assert exc.error == "wamp.error.invalid_argument"
        assert [(e["argument"], e["problem"]) for e in exc.kwargs["errors"]] == [("a", "int_parsing"),
                                                                                ("b", "missing")]
        assert client.call(f"{prefix}.mirror", {"x": 1, "y": 2}) == {"x": 2, "y": 1}
        # hooks: order, refusal, error handler, a per-procedure role check composed with them
        assert client.call(f"{prefix}.steps") == ["before first", "before second", "procedure",
                                                   "after last", "after timer"]  # after hooks: reverse
        assert error_of(client, f"{prefix}.closed").error == "app.error.closed"
        assert client.call(f"{prefix}.lookup", "zz") == {"missing": "zz"}
        assert error_of(client, f"{prefix}.admin_only", 1).error == "app.error.forbidden"
        # the arguments are checked before the procedure's own decorators run
        assert error_of(client, f"{prefix}.admin_only", "x").error == "wamp.error.invalid_argument"
        # events: a bad one is dropped, a good one handled
        client.publish(f"{prefix}.number", "not a number")
        client.publish(f"{prefix}.number", 7)
        wait_until(lambda: records(record, "event"), what="the event")
        assert [line["n"] for line in records(record, "event")] == [7]
        assert "dropped" in server.log()
        # a background task, stopped at shutdown
        assert client.call(f"{prefix}.sleeper") == "spawned"
        assert server.stop() == 0
    assert len(records(record, "task_stopped")) == 1
    fired = [line["name"] for line in records(record, "signal")]
    assert fired.count("peer_joined") == 1 and fired.count("peer_left") == 1, fired
    left = [line for line in records(record, "signal") if line["name"] == "peer_left"][0]
    assert left["reason"] in GOODBYE_REPLIES and left["sender"] == "tests.apps.component_app"


@pytest.mark.timeout(240)
def test_component_every_runs_once_across_three_workers_and_survives_kill_9(
    crossbar_router: CrossbarProcess, tmp_path: Path,
) -> None:
    prefix = f"app.tick{uuid.uuid4().hex[:8]}"
    record = tmp_path / "record.jsonl"
    env = component_env(crossbar_router, prefix, record, COMPONENT_TICK="1")
    with GunicornProcess("tests.apps.component_app:app", env=env, workers=3) as server:
        server.wait_for_workers(3)
        wait_until(lambda: len(records(record, "tick")) >= 5, what="5 ticks")
        holder = records(record, "tick")[-1]["pid"]
        before = len(records(record, "tick"))
        os.kill(holder, signal.SIGKILL)
        wait_until(lambda: len([r for r in records(record, "tick")[before:] if r["pid"] != holder]) >= 4,
                   what="another worker taking over")
        server.stop()
    ticks = records(record, "tick")
    ordered = sorted(ticks, key=lambda r: r["start"])
    overlaps = [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b["start"] < a["end"]]
    assert overlaps == []
    runners_before = {r["pid"] for r in ticks[:before]}
    assert runners_before == {holder}  # one runner at a time, no second one while it lived
    span = ordered[-1]["start"] - ordered[0]["start"]
    assert len(ticks) <= span + 2  # one per second in total, not one per worker


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_component_mode_flask_wamp_run_serves_and_leaves_with_goodbye(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient], tmp_path: Path,
    stop_with: int,
) -> None:
    prefix = f"app.run{uuid.uuid4().hex[:8]}"
    record = tmp_path / "record.jsonl"
    env = {**os.environ, **component_env(crossbar_router, prefix, record),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "tests.apps.component_app:app", "wamp", "run"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = wamp_client(crossbar_router)
        assert call_when_ready(client, f"{prefix}.add", 1, 2) == 3
        proc.send_signal(stop_with)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert any(f"session closed: {reply}" in output for reply in GOODBYE_REPLIES), output
    assert [line["name"] for line in records(record, "signal")].count("peer_left") == 1


@pytest.mark.timeout(180)
def test_component_browser_sessions_send_signals_and_see_validation_errors(
    crossbar_router: CrossbarProcess, tmp_path: Path,
) -> None:
    from test_endpoint import login
    from test_relay_security import Raw

    from flask_wamp_bridge.testing import BridgeClient

    prefix = "app.browser"
    record = tmp_path / "record.jsonl"
    env = component_env(crossbar_router, prefix, record)
    with GunicornProcess("tests.apps.component_app:app", env=env) as server:
        browser = BridgeClient(server.url, realm=crossbar_router.realm)
        try:
            browser.login(user="alice")
            exc = wait_until(lambda: _browser_error(browser, f"{prefix}.add", 1, "x"), what="the browser's call")
            assert exc.error == "wamp.error.invalid_argument"
            assert exc.kwargs["errors"] == [{"argument": "b", "problem": "int_parsing",
                                             "message": "Input should be a valid integer, unable to parse string "
                                                        "as an integer"}]
            browser.leave()
            wait_until(lambda: [r for r in records(record, "signal") if r["name"] == "browser_session_closed"],
                       what="browser_session_closed")
        finally:
            browser.close()
        # a message the relay's checks refuse: a CALL claiming to be forwarded for someone else
        raw = Raw(server, "wamp.2.json", login(server, "dave"))
        try:
            refused = raw.call(1, f"{prefix}.add", 1, 2, forward_for=[{"session": 1, "authid": "bob",
                                                                       "authrole": "user"}])
            assert refused[:5] == [8, 48, 1, {}, "wamp.error.not_authorized"]
        finally:
            raw.close()
        wait_until(lambda: [r for r in records(record, "signal") if r["name"] == "message_refused"],
                   what="message_refused")
        server.stop()
    refusals = [r for r in records(record, "signal") if r["name"] == "message_refused"]
    assert [(r["authid"], r["role"]) for r in refusals] == [("dave", "user")] and refusals[0]["reason"]
    seen = [r for r in records(record, "signal") if r["name"].startswith("browser_session") and r["authid"] == "alice"]
    assert [(r["name"], r["authid"], r["role"]) for r in seen] == [
        ("browser_session_opened", "alice", "user"), ("browser_session_closed", "alice", "user")]
    assert seen[0]["session_id"] == seen[1]["session_id"] and seen[1]["reason"]


def _browser_error(browser: t.Any, procedure: str, *args: t.Any) -> ApplicationError | None:
    try:
        browser.call(procedure, *args)
    except ApplicationError as exc:
        if exc.error == "wamp.error.no_such_procedure":
            return None
        return exc
    raise AssertionError("the call succeeded")


@pytest.mark.timeout(120)
def test_component_peer_signals_each_sent_once_per_event(
    crossbar_router: CrossbarProcess, wamp_client: t.Callable[..., WampClient],
) -> None:
    import gevent

    from flask_wamp_bridge import signals
    from flask_wamp_bridge.errors import CallTimeout
    from flask_wamp_bridge.settings import DEFAULTS

    bridge = WampBridge()

    @bridge.register()
    def slow() -> None:
        gevent.sleep(5)

    app = Flask("signals_app")
    app.config.update({k: v for k, v in (crossbar_router.settings or {}).items() if k in DEFAULTS})
    app.config.update(SECRET_KEY="signals-secret", WAMP_BRIDGE_PREFIX=f"app.sig{uuid.uuid4().hex[:8]}",
                      WAMP_BRIDGE_PATH=None)
    bridge.init_app(app)
    other_app = Flask("other")  # a receiver bound to another sender hears nothing
    seen: list[tuple[str, dict[str, t.Any]]] = []
    receivers = []
    for name in ("peer_joined", "peer_left", "peer_reregistered", "registration_failed", "call_timed_out"):
        def receive(sender: t.Any, _name: str = name, **kwargs: t.Any) -> None:
            assert sender is app
            seen.append((_name, kwargs))
        receivers.append(receive)
        getattr(signals, name).connect(receive, sender=app)
        getattr(signals, name).connect(receive, sender=other_app)

    def names() -> list[str]:
        return [name for name, _ in seen]

    def wait_for(predicate: t.Callable[[], bool]) -> None:
        with gevent.Timeout(30):
            while not predicate():
                gevent.sleep(0.05)

    state = bridge.state(app)
    tester = wamp_client(crossbar_router)
    try:
        state.start_peer()
        peer = state.peer
        assert peer.wait_ready(30)
        assert names() == ["peer_joined"] and seen[0][1]["authid"] == TEST_PEER_AUTHID
        with pytest.raises(CallTimeout):
            peer.call_with(state.prefix + "slow", timeout=0.2)
        assert names()[1:] == ["call_timed_out"] and seen[1][1]["procedure"] == state.prefix + "slow"
        taken = state.prefix + "taken"
        gevent.get_hub().threadpool.apply(tester.register, (taken, lambda: None))
        with pytest.raises(ApplicationError):
            peer.register(taken, lambda: None, invoke="single")
        assert names()[2:] == ["registration_failed"] and seen[2][1]["uri"] == taken
        # the router ends the peer's session: it leaves, rejoins and registers everything again
        gevent.get_hub().threadpool.apply(tester.call, ("wamp.session.kill", peer.session_id))
        wait_for(lambda: "peer_reregistered" in names())
        assert names()[3:] == ["peer_left", "peer_joined", "peer_reregistered"]
        assert state.prefix + "slow" in seen[-1][1]["uris"]
    finally:
        state.stop_peer()
    assert names()[6:] == ["peer_left"]


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_component_validation_error_shown_by_wampy_js_in_chromium(
    crossbar_router: CrossbarProcess, tmp_path: Path,
) -> None:
    from test_browser import CHROMIUM_ARGS
    from test_browser import WAIT_MS
    from test_browser import _chromium
    from test_browser import _require

    chromium = _chromium()
    _require(chromium, "Debian's chromium is not installed: run scripts/setup --browser")
    from playwright.sync_api import expect
    from playwright.sync_api import sync_playwright

    prefix = "app.page"
    env = component_env(crossbar_router, prefix, tmp_path / "record.jsonl")
    with GunicornProcess("tests.apps.component_app:app", env=env) as server:
        # the page calls as soon as it loads: wait until the procedure is registered
        checker = WampClient(crossbar_router.url, crossbar_router.realm)
        try:
            call_when_ready(checker, f"{prefix}.add", 1, 1)
        finally:
            checker.close()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{server.url}/page")
                expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=WAIT_MS)
                expect(page.locator("#error")).to_have_text(
                    "wamp.error.invalid_argument: invalid arguments for app.page.add: b: Input should be a valid "
                    "integer, unable to parse string as an integer")
                expect(page.locator("#problems li[data-argument='b']")).to_have_text(
                    "b: Input should be a valid integer, unable to parse string as an integer")
                assert page.locator("#problems li").count() == 1
                assert errors == []
            finally:
                browser.close()
        server.stop()
