"""The relay's per-message rules after WELCOME, one row per rule: message in, action out (sans-IO)."""

from __future__ import annotations

import base64
import dataclasses
import typing as t

import cbor2
import msgpack
import pytest
from relay_pair import RelayPair

from flask_wamp_bridge.bridge.checks import RULES
from flask_wamp_bridge.bridge.checks import Limits
from flask_wamp_bridge.bridge.checks import Shared
from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.relay_events import Notice
from flask_wamp_bridge.bridge.relay_events import SendToRouter
from flask_wamp_bridge.bridge.relay_events import State
from flask_wamp_bridge.wamp.bounds import Bounds
from flask_wamp_bridge.wamp.messages import SUBPROTOCOLS
from flask_wamp_bridge.wamp.messages import MessageType
from flask_wamp_bridge.wamp.meta_api import TopicSet

ALICE = Identity("alice", "user")
BOB = [{"session": 1, "authid": "bob", "authrole": "user"}]


def nested(depth: int) -> t.Any:
    value: t.Any = 1
    for _ in range(depth):
        value = [value]
    return value


# --- what a row expects -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Forward:
    """The browser's bytes go upstream unchanged, nothing to the browser."""


@dataclasses.dataclass(frozen=True)
class Rewritten:
    """Upstream gets ``message`` (options dropped), nothing to the browser."""

    message: list[t.Any]


@dataclasses.dataclass(frozen=True)
class Reply:
    """The browser gets ERROR ``uri`` for its request; nothing upstream."""

    uri: str


@dataclasses.dataclass(frozen=True)
class Upstream:
    """Upstream gets ``message`` instead of the browser's."""

    message: list[t.Any]


@dataclasses.dataclass(frozen=True)
class Dropped:
    """Nothing either way; the session stays."""


@dataclasses.dataclass(frozen=True)
class Violation:
    """ABORT protocol_violation to the browser, GOODBYE upstream, close 1002."""


@dataclasses.dataclass(frozen=True)
class Abuse:
    """GOODBYE upstream, close 1008."""


Expect = t.Union[Forward, Rewritten, Reply, Upstream, Dropped, Violation, Abuse]


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    message: t.Any
    expect: Expect
    before: tuple[tuple[str, list[t.Any]], ...] = ()
    limits: Limits = Limits()
    shared: Shared = Shared()


def client(message: list[t.Any]) -> tuple[str, list[t.Any]]:
    return ("client", message)


def router(message: list[t.Any]) -> tuple[str, list[t.Any]]:
    return ("router", message)


INVOKED = (router([68, 5, 77, {}, ["x"]]),)
CALLED = (client([48, 1, {}, "app.slow"]),)

def uri(length: int) -> str:
    return "app." + "x" * (length - 4)


#: The app's own procedures, as the extension reports them (its peer's registrations, the bridge's internal ones).
APP_OWNS = Shared(reserved=lambda: frozenset({"app.serve", "wamp_bridge.authenticate"}))


# cost, not only shape: what a message costs the router and the app's peer is bounded
COST_ROWS = [
    # URIs: length and components, patterns included
    Row("call to a URI at the length bound", [48, 1, {}, uri(512)], Forward()),
    Row("call to a URI past the length bound", [48, 1, {}, uri(513)], Reply("wamp.error.invalid_uri")),
    Row("URI length bound by config", [48, 1, {}, uri(40)], Reply("wamp.error.invalid_uri"),
        limits=Limits(max_uri_length=32)),
    Row("URI at the component bound", [48, 1, {}, ".".join(["a"] * 32)], Forward()),
    Row("URI past the component bound", [48, 1, {}, ".".join(["a"] * 33)], Reply("wamp.error.invalid_uri")),
    Row("long prefix subscription", [32, 1, {"match": "prefix"}, uri(100_000)], Reply("wamp.error.invalid_uri")),
    Row("wildcard of empty components", [32, 1, {"match": "wildcard"}, "." * 300], Reply("wamp.error.invalid_uri")),
    Row("long pattern registration", [64, 1, {"match": "prefix"}, uri(600)], Reply("wamp.error.invalid_uri")),
    Row("publish to a long topic, no acknowledge", [16, 1, {}, uri(600)], Dropped()),
    Row("error with a long URI", [8, 68, 5, {}, uri(600)], Upstream([8, 68, 5, {}, "wamp.error.invalid_uri"]),
        INVOKED),
    # the session's budget of subscription and registration URI bytes
    Row("subscriptions past the URI budget", [32, 3, {}, uri(60)], Reply("wamp.error.canceled"),
        (client([32, 1, {}, uri(60)]), router([33, 1, 500])), Limits(max_uri_bytes=100)),
    Row("pending registrations count against the URI budget", [64, 3, {}, uri(60)], Reply("wamp.error.canceled"),
        (client([64, 1, {}, uri(60)]),), Limits(max_uri_bytes=100)),
    Row("unsubscribing frees URI budget", [32, 3, {}, uri(60)], Forward(),
        (client([32, 1, {}, uri(60)]), router([33, 1, 500]), client([34, 2, 500])), Limits(max_uri_bytes=100)),
    Row("a refused subscribe frees URI budget", [32, 3, {}, uri(60)], Forward(),
        (client([32, 1, {}, uri(60)]), router([8, 32, 1, {}, "wamp.error.not_authorized"])),
        Limits(max_uri_bytes=100)),
    Row("a revoked registration frees URI budget", [64, 3, {}, uri(60)], Forward(),
        (client([64, 1, {}, uri(60)]), router([65, 1, 600]), router([67, 0, {"registration": 600}])),
        Limits(max_uri_bytes=100)),
    Row("the same subscription twice is held once", [32, 5, {}, uri(30)], Forward(),
        (client([32, 1, {}, uri(60)]), router([33, 1, 500]), client([32, 3, {}, uri(60)]), router([33, 3, 500])),
        Limits(max_uri_bytes=100)),
    # bytes per second: the session's bucket may go into debt once, then refuses requests until paid back
    Row("a message larger than the byte burst passes once", [48, 1, {}, "app.x", ["x" * 3000]], Forward(),
        limits=Limits(byte_rate=1.0, byte_burst=1000)),
    Row("byte rate: a request while in debt", [48, 2, {}, "app.x"], Reply("wamp.error.canceled"),
        (client([48, 1, {}, "app.x", ["x" * 3000]]),), Limits(byte_rate=1.0, byte_burst=1000)),
    Row("byte rate: an answer while in debt passes", [70, 5, {}, ["done"]], Forward(),
        (client([48, 1, {}, "app.x", ["x" * 3000]]), *INVOKED), Limits(byte_rate=1.0, byte_burst=1000)),
    # option values the router cannot pass to a peer of another serializer
    Row("timeout at the uint32 bound", [48, 1, {"timeout": 2**32 - 1}, "app.x"], Forward()),
    Row("timeout past the uint32 bound", [48, 1, {"timeout": 2**32}, "app.x"], Reply("wamp.error.invalid_argument")),
    Row("negative timeout", [48, 1, {"timeout": -1}, "app.x"], Reply("wamp.error.invalid_argument")),
    Row("float timeout", [48, 1, {"timeout": 1.5}, "app.x"], Reply("wamp.error.invalid_argument")),
    Row("bool timeout", [48, 1, {"timeout": True}, "app.x"], Reply("wamp.error.invalid_argument")),
    Row("concurrency 0 (the router closes the session over it)", [64, 1, {"concurrency": 0}, "app.p"],
        Reply("wamp.error.invalid_argument")),
    Row("concurrency past the bound", [64, 1, {"concurrency": 2**40}, "app.p"], Reply("wamp.error.invalid_argument")),
    Row("excluded session id past 2**53", [16, 1, {"acknowledge": True, "exclude": [2**53 + 1]}, "app.t"],
        Reply("wamp.error.invalid_argument")),
    Row("negative excluded session id", [16, 1, {"acknowledge": True, "exclude": [-1]}, "app.t"],
        Reply("wamp.error.invalid_argument")),
    # progressive call inputs: off unless enabled; enabled, one slot in flight for all inputs
    Row("progressive call input refused by default", [48, 1, {"progress": True}, "app.up", [1]],
        Reply("wamp.error.feature_not_supported")),
    Row("progressive call inputs count once", [48, 1, {"progress": True}, "app.up", [3]], Forward(),
        (client([48, 1, {"progress": True}, "app.up", [1]]), client([48, 1, {"progress": True}, "app.up", [2]])),
        Limits(progressive_calls=True, max_calls_in_flight=1)),
    Row("progressive call inputs: another call past the cap", [48, 2, {}, "app.x"], Reply("wamp.error.canceled"),
        (client([48, 1, {"progress": True}, "app.up", [1]]),), Limits(progressive_calls=True, max_calls_in_flight=1)),
    # the app's URIs belong to the app
    Row("register with invoke roundrobin", [64, 1, {"invoke": "roundrobin"}, "app.p"],
        Reply("wamp.error.not_authorized")),
    Row("register with invoke first", [64, 1, {"invoke": "first"}, "app.p"], Reply("wamp.error.not_authorized")),
    Row("register with an allowed invoke policy", [64, 1, {"invoke": "roundrobin"}, "app.p"], Forward(),
        limits=Limits(invoke_policies=frozenset({"single", "roundrobin"}))),
    *[Row(f"register {what}", [64, 1, options, procedure], Reply("wamp.error.procedure_already_exists"),
          shared=APP_OWNS) for what, options, procedure in (
        ("of a procedure the app's peer registers", {}, "app.serve"),
        ("of it as a prefix", {"match": "prefix"}, "app.serve"),
        ("of the bridge's ticket authenticator", {}, "wamp_bridge.authenticate"))],
    Row("register of a procedure the app does not own", [64, 1, {}, "app.mine"], Forward(), shared=APP_OWNS),
    *[Row(f"publish with {key}", [16, 1, {"acknowledge": True, key: value}, "app.t"],
          Reply("wamp.error.not_authorized"))
      for key, value in (("eligible", [1]), ("eligible_authid", ["bob"]), ("eligible_authrole", ["user"]),
                         ("exclude_authid", ["bob"]), ("exclude_authrole", ["user"]), ("retain", True))],
    Row("publish with retain, no acknowledge", [16, 1, {"retain": True}, "app.t"], Dropped()),
    Row("publish with exclude and exclude_me", [16, 1, {"exclude": [7], "exclude_me": False}, "app.t"], Forward()),
]

ROWS = [
    # types: only what a client sends after WELCOME
    Row("call", [48, 1, {}, "app.echo", ["hi"], {"k": None}], Forward()),
    Row("publish", [16, 1, {}, "app.topic", ["hi"]], Forward()),
    Row("subscribe", [32, 1, {}, "app.topic"], Forward()),
    Row("register", [64, 1, {}, "app.proc"], Forward()),
    Row("unsubscribe", [34, 2, 99], Forward()),
    Row("unregister", [66, 2, 99], Forward()),
    Row("yield", [70, 5, {}, ["done"]], Forward(), INVOKED),
    Row("error for an invocation", [8, 68, 5, {}, "app.error.nope", ["no"]], Forward(), INVOKED),
    Row("cancel of a call in flight", [49, 1, {"mode": "kill"}], Forward(), CALLED),
    *[Row(f"{kind.name} from a browser", message, Violation()) for kind, message in (
        (MessageType.WELCOME, [2, 1, {}]), (MessageType.CHALLENGE, [4, "ticket", {}]),
        (MessageType.AUTHENTICATE, [5, "sig", {}]), (MessageType.PUBLISHED, [17, 1, 2]),
        (MessageType.SUBSCRIBED, [33, 1, 2]), (MessageType.UNSUBSCRIBED, [35, 1]),
        (MessageType.EVENT, [36, 1, 2, {}]), (MessageType.RESULT, [50, 1, {}]),
        (MessageType.REGISTERED, [65, 1, 2]), (MessageType.UNREGISTERED, [67, 1]),
        (MessageType.INVOCATION, [68, 1, 2, {}]), (MessageType.INTERRUPT, [69, 1, {}]))],
    Row("unknown type", [99, 1, {}], Violation()),
    Row("not a message", {"a": 1}, Violation()),
    # shapes
    Row("call without a URI", [48, 1, {}], Violation()),
    Row("call with options not a dict", [48, 1, [], "app.x"], Violation()),
    Row("call with a negative id", [48, -1, {}, "app.x"], Violation()),
    Row("call with args not a list", [48, 1, {}, "app.x", {"a": 1}], Violation()),
    # URIs
    Row("call to an invalid URI", [48, 1, {}, "app..x"], Reply("wamp.error.invalid_uri")),
    Row("call to a URI with a space", [48, 1, {}, "app.x y"], Reply("wamp.error.invalid_uri")),
    Row("loose URI by default", [48, 1, {}, "App.Größe-1"], Forward()),
    Row("strict URI by config", [48, 1, {}, "App.Größe-1"], Reply("wamp.error.invalid_uri"),
        limits=Limits(strict_uris=True)),
    Row("prefix subscription", [32, 1, {"match": "prefix"}, "app."], Forward()),
    Row("wildcard subscription", [32, 1, {"match": "wildcard"}, "app..x"], Forward()),
    Row("wildcard registration", [64, 1, {"match": "wildcard", "invoke": "single"}, "app..x"], Forward()),
    Row("pattern without match", [32, 1, {}, "app..x"], Reply("wamp.error.invalid_uri")),
    Row("error with an invalid URI", [8, 68, 5, {}, "bad uri"],
        Upstream([8, 68, 5, {}, "wamp.error.invalid_uri"]), INVOKED),
    # options: the allow-list
    Row("call with every option", [48, 1, {"receive_progress": True, "timeout": 5000, "disclose_me": True,
                                           "ppt_scheme": "x_custom", "ppt_serializer": "cbor"}, "app.x"], Forward()),
    Row("publish with every option", [16, 1, {"acknowledge": True, "exclude_me": False, "exclude": [7],
                                              "exclude_authid": ["a"], "exclude_authrole": ["r"], "eligible": [8],
                                              "eligible_authid": ["b"], "eligible_authrole": ["user"],
                                              "retain": True, "disclose_me": True}, "app.t"], Forward(),
        limits=Limits(targeted_publish=True, retain_topics=TopicSet(["app.t"]))),
    Row("subscribe with every option", [32, 1, {"match": "exact", "get_retained": True}, "app.t"], Forward()),
    Row("register with every option", [64, 1, {"match": "prefix", "invoke": "single", "concurrency": 2,
                                               "disclose_caller": True}, "app."], Forward()),
    Row("yield progress", [70, 5, {"progress": True}, [1]], Forward(), INVOKED),
    Row("null options dropped (wampy.js over msgpack/cbor)", [32, 1, {"match": None, "get_retained": None}, "app.t"],
        Rewritten([32, 1, {}, "app.t"])),
    Row("undefined options dropped (wampy.js: msgpackr ext 0, cbor-x undefined)", "undefined-subscribe",
        Rewritten([32, 1, {"match": "prefix"}, "app."])),
    Row("session ids sent as floats (wampy.js over msgpack/cbor) become ints",
        [16, 1, {"exclude": [3987199069964432.0], "eligible": [1.0, 2]}, "app.t"],
        Rewritten([16, 1, {"exclude": [3987199069964432], "eligible": [1, 2]}, "app.t"]),
        limits=Limits(targeted_publish=True)),
    Row("session ids that are not whole numbers are refused", [16, 1, {"acknowledge": True, "exclude": [1.5]}, "app.t"],
        Reply("wamp.error.invalid_argument")),
    Row("unknown option dropped", [48, 1, {"x_custom": 1, "timeout": 10}, "app.x"],
        Rewritten([48, 1, {"timeout": 10}, "app.x"])),
    Row("wrong option value refused", [48, 1, {"timeout": "soon"}, "app.x"], Reply("wamp.error.invalid_argument")),
    Row("wrong match refused", [32, 1, {"match": "regex"}, "app.t"], Reply("wamp.error.invalid_argument")),
    # options: nothing may change the identity the router or a callee sees
    Row("call with forward_for", [48, 1, {"forward_for": BOB}, "app.board.post", ["hi"]],
        Reply("wamp.error.not_authorized")),
    Row("acknowledged publish with forward_for", [16, 1, {"acknowledge": True, "forward_for": BOB}, "app.t"],
        Reply("wamp.error.not_authorized")),
    Row("publish with forward_for, no acknowledge", [16, 1, {"forward_for": BOB}, "app.t"], Dropped()),
    Row("subscribe with forward_for", [32, 1, {"forward_for": BOB}, "app.t"], Reply("wamp.error.not_authorized")),
    Row("register with force_reregister", [64, 1, {"force_reregister": True}, "app.p"],
        Reply("wamp.error.not_authorized")),
    Row("call with caller_authid", [48, 1, {"caller_authid": "bob"}, "app.x"], Reply("wamp.error.not_authorized")),
    Row("yield with callee identity: dropped", [70, 5, {"callee_authid": "app", "forward_for": BOB}, ["x"]],
        Rewritten([70, 5, {}, ["x"]]), INVOKED),
    Row("cancel with forward_for: dropped", [49, 1, {"forward_for": BOB}], Rewritten([49, 1, {}]), CALLED),
    # request ids
    Row("call id already in flight", [48, 1, {}, "app.slow"], Violation(), CALLED),
    Row("call id free again after its result", [48, 1, {}, "app.slow"], Forward(),
        (*CALLED, router([50, 1, {}, [1]]))),
    Row("call id busy after a progressive result", [48, 1, {}, "app.slow"], Violation(),
        (*CALLED, router([50, 1, {"progress": True}, [1]]))),
    Row("progressive call invocation: more input", [48, 1, {"progress": True}, "app.up", [2]], Forward(),
        (client([48, 1, {"progress": True}, "app.up", [1]]),), Limits(progressive_calls=True)),
    *[Row(f"call id already in flight, {why} (its refusal would be a second answer)", message, Violation(), CALLED,
          limits) for why, message, limits in (
        ("to an invalid URI", [48, 1, {}, "app..x"], Limits()),
        ("with a refused option", [48, 1, {"forward_for": BOB}, "app.x"], Limits()),
        ("past the message rate", [48, 1, {}, "app.x"], Limits(message_rate=1.0, message_burst=1)),
        ("past its bounds", [48, 1, {}, "app.x", [nested(40)]], Limits()))],
    Row("subscribe id already in flight, past the URI budget", [32, 1, {}, uri(60)], Violation(),
        (client([32, 1, {}, "app.u"]),), Limits(max_uri_bytes=30)),
    Row("subscribe id already in flight", [32, 1, {}, "app.t"], Violation(), (client([32, 1, {}, "app.u"]),)),
    Row("acknowledged publish id already in flight", [16, 1, {"acknowledge": True}, "app.t"], Violation(),
        (client([16, 1, {"acknowledge": True}, "app.t"]),)),
    Row("unacknowledged publishes may share an id", [16, 1, {}, "app.t"], Forward(), (client([16, 1, {}, "app.t"]),)),
    Row("cancel of no call in flight", [49, 1, {}], Dropped()),
    Row("yield for no invocation", [70, 5, {}, ["x"]], Violation()),
    Row("yield after the final yield", [70, 5, {}, ["x"]], Violation(), (*INVOKED, client([70, 5, {}, ["x"]]))),
    Row("error for a call", [8, 48, 1, {}, "app.error.x"], Violation()),
    Row("error for no invocation", [8, 68, 5, {}, "app.error.x"], Violation()),
    # payload bounds
    Row("call nested past the bound", [48, 1, {}, "app.public.echo", [nested(40)]],
        Reply("wamp.error.invalid_argument")),
    Row("call nested within the bound", [48, 1, {}, "app.public.echo", [nested(20)]], Forward()),
    Row("call with too many elements", [48, 1, {}, "app.x", list(range(200))], Reply("wamp.error.invalid_argument"),
        limits=Limits(bounds=Bounds(max_elements=100))),
    Row("call too large", [48, 1, {}, "app.x", ["x" * 2000]], Reply("wamp.error.invalid_argument"),
        limits=Limits(bounds=Bounds(max_bytes=1024))),
    Row("acknowledged publish nested past the bound", [16, 1, {"acknowledge": True}, "app.t", [nested(40)]],
        Reply("wamp.error.invalid_argument")),
    Row("publish nested past the bound, no acknowledge", [16, 1, {}, "app.t", [nested(40)]], Dropped()),
    Row("yield nested past the bound", [70, 5, {}, [nested(40)]],
        Upstream([8, 68, 5, {}, "wamp.error.invalid_argument"]), INVOKED),
    Row("subscribe with options nested past the bound", [32, 1, {"match": nested(40)}, "app.t"],
        Reply("wamp.error.invalid_argument")),
    Row("unsubscribe nested past the bound", [34, 1, nested(40)], Violation()),
    # rate and limits
    Row("calls in flight cap", [48, 2, {}, "app.slow"], Reply("wamp.error.canceled"), CALLED,
        Limits(max_calls_in_flight=1)),
    Row("subscription cap", [32, 2, {}, "app.u"], Reply("wamp.error.canceled"),
        (client([32, 1, {}, "app.t"]), router([33, 1, 500])), Limits(max_subscriptions=1)),
    Row("subscription cap counts pending ones", [32, 2, {}, "app.u"], Reply("wamp.error.canceled"),
        (client([32, 1, {}, "app.t"]),), Limits(max_subscriptions=1)),
    Row("unsubscribing frees a subscription", [32, 3, {}, "app.u"], Forward(),
        (client([32, 1, {}, "app.t"]), router([33, 1, 500]), client([34, 2, 500])), Limits(max_subscriptions=1)),
    Row("registration cap", [64, 2, {}, "app.q"], Reply("wamp.error.canceled"),
        (client([64, 1, {}, "app.p"]), router([65, 1, 600])), Limits(max_registrations=1)),
    Row("a refused subscribe frees its slot", [32, 2, {}, "app.u"], Forward(),
        (client([32, 1, {}, "app.t"]), router([8, 32, 1, {}, "wamp.error.not_authorized"])),
        Limits(max_subscriptions=1)),
    Row("message rate", [48, 3, {}, "app.x"], Reply("wamp.error.canceled"),
        (client([48, 1, {}, "app.x"]), client([48, 2, {}, "app.x"])), Limits(message_rate=1.0, message_burst=2)),
    Row("answers are not rated", [70, 5, {}, ["x"]], Forward(),
        (client([48, 1, {}, "app.x"]), *INVOKED), Limits(message_rate=1.0, message_burst=1)),
    Row("sustained abuse", [48, 3, {"forward_for": BOB}, "app.x"], Abuse(),
        (client([48, 1, {"forward_for": BOB}, "app.x"]), client([48, 2, {"forward_for": BOB}, "app.x"])),
        Limits(max_strikes=2)),
    # closing
    Row("goodbye", [6, {}, "wamp.close.close_realm"], Forward()),
    *COST_ROWS,
]


def binary(text: str) -> str:
    """``text`` as a JSON page writes binary (the WAMP spec's ``"\\u0000"`` + base64): bytes to the router."""
    return "\x00" + base64.b64encode(text.encode()).decode()


# JSON: a string starting with U+0000 is binary; the router would see bytes where the checks saw a string
BINARY_TEXT_ROWS = [
    Row("call to a URI written as binary", [48, 1, {}, binary("app.x"), []], Reply("wamp.error.invalid_uri")),
    Row("call of the meta API written as binary", [48, 1, {}, binary("wamp.session.kill_by_authid"), ["bob"]],
        Reply("wamp.error.invalid_uri")),
    Row("register of the app's procedure written as binary", [64, 1, {}, binary("app.serve")],
        Reply("wamp.error.invalid_uri"), shared=APP_OWNS),
    Row("prefix subscription written as binary", [32, 1, {"match": "prefix"}, binary("app.")],
        Reply("wamp.error.invalid_uri")),
    Row("error for an invocation with a URI written as binary", [8, 68, 5, {}, binary("app.error.x")],
        Upstream([8, 68, 5, {}, "wamp.error.invalid_uri"]), INVOKED),
    Row("a string option written as binary", [48, 1, {"ppt_scheme": binary("x_custom")}, "app.x"],
        Reply("wamp.error.invalid_argument")),
    Row("an authid list written as binary", [16, 1, {"acknowledge": True, "exclude_authid": [binary("bob")]}, "app.t"],
        Reply("wamp.error.invalid_argument"), limits=Limits(targeted_publish=True)),
    Row("a yield's string option written as binary is dropped", [70, 5, {"ppt_scheme": binary("x")}, ["x"]],
        Rewritten([70, 5, {}, ["x"]]), INVOKED),
    Row("binary in the payload stays binary", [48, 1, {}, "app.x", [binary("bytes")], {"k": binary("b")}],
        Forward()),
]


@pytest.mark.parametrize("row", BINARY_TEXT_ROWS, ids=[row.name for row in BINARY_TEXT_ROWS])
def test_json_binary_strings_are_no_uris_or_option_values(row: Row) -> None:
    test_rule(row, "wamp.2.json")


# [32, 1, {"match": "prefix", "get_retained": undefined}, "app."] as wampy.js's encoders write it
# (node: msgpackr's pack(), cbor-x's Encoder with wampy's options)
UNDEFINED_SUBSCRIBE: dict[str, str | bytes] = {
    "wamp.2.json": '[32,1,{"match":"prefix"},"app."]',  # JSON.stringify leaves undefined out
    "wamp.2.msgpack": bytes.fromhex("942001de0002a56d61746368a6707265666978ac6765745f72657461696e6564d40000a4617070"
                                    "2e"),
    "wamp.2.cbor": bytes.fromhex("84182001b90002656d61746368667072656669786c6765745f72657461696e6564f76461707"
                                 "02e"),
}


UNDEFINED = {"wamp.2.msgpack": msgpack.ExtType(0, b"\x00"), "wamp.2.cbor": cbor2.undefined}


@pytest.mark.parametrize("subprotocol", sorted(UNDEFINED))
@pytest.mark.parametrize(("message", "expected"), [
    (lambda u: [48, 1, {}, "app.x", [u, 1, [u]], {"k": u, "j": {"n": u}}], [48, 1, {}, "app.x", [None, 1, [None]],
                                                                             {"j": {}}]),
    (lambda u: [16, 1, {"exclude_me": u}, "app.t", [u]], [16, 1, {}, "app.t", [None]]),
    (lambda u: [70, 5, {}, [u], {"k": u}], [70, 5, {}, [None], {}]),
], ids=["call", "publish", "yield"])
def test_undefined_in_a_payload_goes_up_as_json_stringify_makes_it(
        subprotocol: str, message: t.Callable[[t.Any], list[t.Any]], expected: list[t.Any]) -> None:
    """wampy.js over msgpack (msgpackr's ext 0) or CBOR (cbor-x's undefined): as its JSON would be."""
    pair = _run(Row("undefined", [], Forward(), INVOKED), subprotocol)
    at_router, at_client = len(pair.at_router), len(pair.at_client)
    pair.client_sends(pair.serializer._dumps(message(UNDEFINED[subprotocol])))
    assert pair.router_messages()[at_router:] == [expected]
    assert pair.closed is None and len(pair.at_client) == at_client


def _run(row: Row, subprotocol: str) -> RelayPair:
    pair = RelayPair(ALICE, subprotocol=subprotocol, limits=row.limits, shared=row.shared)
    assert pair.login()[0] == 2
    for side, message in row.before:
        if side == "client":
            pair.client_sends(message)
        else:
            pair.router_sends(message)
    assert pair.closed is None, row.before
    return pair


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_rule(row: Row, subprotocol: str) -> None:
    pair = _run(row, subprotocol)
    at_router, at_client = len(pair.at_router), len(pair.at_client)
    if row.message == "undefined-subscribe":
        frame = UNDEFINED_SUBSCRIBE[subprotocol]
    elif isinstance(row.message, list):
        frame = pair.serializer.dumps(row.message)
    else:
        frame = pair.serializer._dumps(row.message)  # not a list: encode it anyway
    actions = pair.client_sends(frame)
    sent_up = pair.router_messages()[at_router:]
    sent_down = pair.client_messages()[at_client:]
    expect = row.expect
    if isinstance(expect, Forward):
        assert [a for a in actions if not isinstance(a, Notice)] == [SendToRouter(frame)]
        assert pair.at_router[-1] is frame
    elif isinstance(expect, Rewritten):
        assert repr(sent_up) == repr([expect.message]) and sent_down == []  # repr: 1 and 1.0 differ
    elif isinstance(expect, Reply):
        assert sent_up == []
        [error] = sent_down
        kind = row.message[0]
        assert error[:5] == [8, kind, row.message[1], {}, expect.uri]
        assert pair.notices and pair.notices[-1].event == "refused"
    elif isinstance(expect, Upstream):
        assert sent_down == []
        [message] = sent_up
        assert message[:len(expect.message)] == expect.message
    elif isinstance(expect, Dropped):
        assert sent_up == [] and sent_down == []
    elif isinstance(expect, Violation):
        assert sent_up == [[6, {}, "wamp.error.protocol_violation"]]
        *answers, abort = sent_down  # an ERROR first for each call in flight
        assert all(a[:2] == [8, 48] and a[4] == "wamp.error.protocol_violation" for a in answers)
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        assert pair.closed is not None and pair.closed.code == 1002
        assert pair.notices[-1].event == "protocol_violation"
        return
    elif isinstance(expect, Abuse):
        assert [m[0] for m in sent_up] == [6] and sent_up[0][2] == "wamp_bridge.close.too_many_refusals"
        assert [m[0] for m in sent_down] == [6]  # GOODBYE (ERRORs first for calls in flight: test_relay_faults)
        assert pair.closed is not None and pair.closed.code == 1008
        return
    assert pair.closed is None
    if row.message[0] != 6:
        assert pair.relay.state is State.ESTABLISHED
    else:
        assert pair.relay.state is State.CLOSING


def test_every_client_type_has_a_row_that_forwards_it() -> None:
    forwarded = {row.message[0] for row in ROWS if isinstance(row.expect, Forward)}
    assert set(RULES) <= forwarded


# --- length bombs: a length prefix claiming more than the frame holds ------------------------


LENGTH_BOMBS = {
    # [48, 1, {}, "a", [<a string claiming 4 GiB>]]
    "wamp.2.msgpack": b"\x95\x30\x01\x80\xa1a\x91\xdb\xff\xff\xff\xffabc",
    "wamp.2.cbor": b"\x85\x18\x30\x01\xa0\x61a\x81\x7b\x00\x00\x00\xff\xff\xff\xff\xffabc",
    # [48, 1, {}, "a", [<an array claiming 2**32 - 1 elements>]]
    "wamp.2.msgpack-array": b"\x95\x30\x01\x80\xa1a\x91\xdd\xff\xff\xff\xff\x01",
    "wamp.2.cbor-array": b"\x85\x18\x30\x01\xa0\x61a\x81\x9b\x00\x00\x00\x00\xff\xff\xff\xff\x01",
    "wamp.2.cbor-map": b"\x85\x18\x30\x01\xa0\x61a\x81\xbb\x00\x00\x00\x00\xff\xff\xff\xff\x01",
}


@pytest.mark.parametrize("name", sorted(LENGTH_BOMBS))
def test_length_bomb_call_gets_invalid_argument(name: str) -> None:
    pair = _run(Row("bomb", [], Forward()), name.split("-")[0])
    at_router = len(pair.at_router)
    pair.client_sends(LENGTH_BOMBS[name])
    assert len(pair.at_router) == at_router
    [error] = pair.client_messages()[-1:]
    assert error[:5] == [8, 48, 1, {}, "wamp.error.invalid_argument"]
    assert pair.closed is None


def test_json_number_bomb_call_gets_invalid_argument() -> None:
    pair = _run(Row("bomb", [], Forward()), "wamp.2.json")
    at_router = len(pair.at_router)
    pair.client_sends('[48,1,{},"a",[' + "9" * 100_000 + "]]")
    assert len(pair.at_router) == at_router
    [error] = pair.client_messages()[-1:]
    assert error[:5] == [8, 48, 1, {}, "wamp.error.invalid_argument"] and "beyond 64 bits" in error[5][0]
    assert pair.closed is None


def test_cbor_binary_tag_reaches_the_router_untagged() -> None:
    """autobahn-js writes a Uint8Array as tag 64; Crossbar could not hand that to a JSON or msgpack callee."""
    pair = _run(Row("tag 64", [], Forward()), "wamp.2.cbor")
    at_router = len(pair.at_router)
    tagged = b"\x85\x18\x30\x01\xa0\x61a\x81\xd8\x40\x43\x00\x01\x02"  # [48, 1, {}, "a", [64(h'000102')]]
    pair.client_sends(tagged)
    [sent] = pair.at_router[at_router:]
    assert b"\xd8\x40" not in sent and sent == cbor2.dumps([48, 1, {}, "a", [b"\x00\x01\x02"]])


# --- router -> browser: sanitised --------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_router_texts_reach_the_browser_only_in_debug(debug: bool) -> None:
    pair = RelayPair(ALICE, debug=debug)
    assert pair.login()[0] == 2
    secret = "postgres://admin:hunter2@db.internal/app"
    pair.client_sends([48, 1, {}, "app.x"])
    pair.router_sends([8, 48, 1, {"x": secret}, "wamp.error.authorization_failed", [f"authorizer failed: {secret}"]])
    pair.router_sends([8, 48, 1, {}, "app.error.custom", ["an app's own message"]])
    pair.router_sends([3, {"message": f"router down: {secret}"}, "wamp.close.system_shutdown"])
    error, custom, abort = pair.client_messages()[-3:]
    assert error[4] == "wamp.error.authorization_failed" and abort[2] == "wamp.close.system_shutdown"
    assert custom[5] == ["an app's own message"]
    assert (secret in repr([error, abort])) is debug
    if not debug:
        assert any(secret in notice.reason for notice in pair.notices if notice.event == "router_text")


def test_router_goodbye_text_is_replaced() -> None:
    pair = RelayPair(ALICE)
    assert pair.login()[0] == 2
    pair.router_sends([6, {"message": "kicked by admin@internal"}, "wamp.close.logout"])
    assert pair.client_messages()[-1] == [6, {"message": "the session was closed"}, "wamp.close.logout"]


def test_welcome_loses_router_internal_keys_at_every_level() -> None:
    pair = RelayPair(ALICE)
    pair.router.welcome_details = {"x_cb_node": "host-1", "x_cb_pid": 7, "x_cb_peer": "tcp4:127.0.0.1:5",
                                   "x_cb_worker": "worker001", "authextra": {"x_cb_node": "host-1", "k": 1}}
    welcome = pair.login()
    assert welcome[0] == 2
    assert not any(key.startswith("x_cb_") for key in welcome[2])
    assert welcome[2]["authextra"] == {"k": 1}


def test_router_invocations_past_the_limit_are_refused_upstream() -> None:
    pair = RelayPair(ALICE, limits=Limits(max_invocations=1))
    assert pair.login()[0] == 2
    pair.router_sends([68, 1, 77, {}, []])
    at_client = len(pair.at_client)
    pair.router_sends([68, 2, 77, {}, []])
    assert len(pair.at_client) == at_client
    assert pair.router_messages()[-1][:5] == [8, 68, 2, {}, "wamp.error.canceled"]
