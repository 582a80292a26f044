"""The rules every browser message meets after WELCOME, one table row per message type.

Pure: no sockets, no clock of its own (``now`` is handed in). A
:class:`SessionChecks` holds what one relayed session needs to judge the next
message (requests in flight, the router's INVOCATIONs, subscriptions and
registrations, a token bucket) and answers each browser message with a
:class:`Verdict`; the relay carries it out.

A browser message is decoded with payload :class:`~flask_wamp_bridge.wamp.bounds.Bounds`
and checked against its row of :data:`RULES`:

- only the types a client sends after WELCOME have a row; any other type, a bad
  shape, an id already in flight, or a YIELD/ERROR that answers no INVOCATION of
  this session is a protocol violation (the relay ABORTs the browser, says
  GOODBYE upstream and closes 1002);
- URIs must be loose WAMP URIs (strict with ``Limits.strict_uris``); a pattern
  (empty components) only with ``match`` ``prefix``/``wildcard``;
- options are allow-listed per type with a check of each value. A null or
  ``undefined`` value is dropped (wampy.js sends unset options as ``undefined``
  over msgpack and CBOR), as is an unknown key. A key in :data:`REFUSED_OPTIONS` (``forward_for``, whose
  first entry Crossbar takes as the caller's or publisher's identity, the
  router's own identity keys, ``force_reregister``) gets ERROR
  ``wamp.error.not_authorized`` on a request and is dropped from a YIELD, ERROR
  or CANCEL. Where something was dropped the message is re-encoded; otherwise the
  browser's bytes go upstream unchanged;
- a message past its bounds, a wrong option value or an invalid URI is refused:
  a request (CALL, PUBLISH with ``acknowledge``, SUBSCRIBE, REGISTER) gets an
  ERROR, a PUBLISH without ``acknowledge`` is dropped (a client expects no
  answer, and autobahn-js takes an unasked-for ERROR as a protocol violation),
  a YIELD or ERROR is replaced upstream by ERROR ``wamp.error.invalid_argument``
  for its invocation;
- limits (token bucket over requests, calls in flight, subscriptions,
  registrations) refuse with ERROR ``wamp.error.canceled``. Every refusal is a
  strike; more than ``Limits.max_strikes`` strikes (they heal at one a second)
  close the session with 1008.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing as t

from ..errors import PayloadOutOfBounds
from ..errors import RemoteProtocolError
from ..wamp.bounds import Bounds
from ..wamp.heads import Head
from ..wamp.heads import peek_head
from ..wamp.messages import MessageType
from ..wamp.messages import Serializer

__all__ = [
    "Limits",
    "Verdict",
    "Rule",
    "RULES",
    "REFUSED_OPTIONS",
    "SessionChecks",
    "LIMIT_ERROR",
]

Data = t.Union[str, bytes]

#: The ERROR URI of a request refused by a limit (it never reached the router).
LIMIT_ERROR = "wamp.error.canceled"
_NOT_AUTHORIZED = "wamp.error.not_authorized"
_INVALID_ARGUMENT = "wamp.error.invalid_argument"
_INVALID_URI = "wamp.error.invalid_uri"

_ERROR, _CALL, _CANCEL, _PUBLISH = int(MessageType.ERROR), int(MessageType.CALL), int(MessageType.CANCEL), 16
_SUBSCRIBE, _UNSUBSCRIBE = int(MessageType.SUBSCRIBE), int(MessageType.UNSUBSCRIBE)
_REGISTER, _UNREGISTER = int(MessageType.REGISTER), int(MessageType.UNREGISTER)
_YIELD, _INVOCATION, _GOODBYE = int(MessageType.YIELD), int(MessageType.INVOCATION), int(MessageType.GOODBYE)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What one browser session may do; ``None`` turns a limit off."""

    #: Payload bounds while decoding (depth, elements, bytes).
    bounds: Bounds = Bounds()
    #: Strict URIs (``[0-9a-z_]`` components) instead of loose ones.
    strict_uris: bool = False
    #: CALLs waiting for their result at once.
    max_calls_in_flight: int | None = 100
    #: Subscriptions (granted and pending) at once.
    max_subscriptions: int | None = 1000
    #: Registrations (granted and pending) at once.
    max_registrations: int | None = 100
    #: INVOCATIONs the browser has not answered yet; past it the router gets ERROR at once.
    max_invocations: int = 1000
    #: Requests (CALL, PUBLISH, SUBSCRIBE, REGISTER) per second, sustained.
    message_rate: float | None = 1000.0
    #: Requests in a burst above the rate.
    message_burst: int = 2000
    #: Refusals tolerated (healing one per second) before the session is closed with 1008.
    max_strikes: int = 100


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one browser message. At most one of the fields is set; none: drop it quietly."""

    #: Send upstream (the browser's own bytes, or re-encoded without dropped options).
    forward: Data | None = None
    #: Answer the browser with this message (not forwarded).
    reply: list[t.Any] | None = None
    #: Send this message upstream instead (ERROR for an invocation).
    upstream: list[t.Any] | None = None
    #: A protocol violation: ABORT, GOODBYE upstream, close 1002.
    violation: str | None = None
    #: Sustained abuse: close 1008.
    abuse: str | None = None
    #: Why something was refused or dropped (for the log), if it was.
    refused: str | None = None
    #: The forwarded message is a GOODBYE: the session starts closing.
    closing: bool = False


class Refusal(enum.Enum):
    """How a message of a type is refused."""

    REPLY = "error to the browser"
    REPLY_IF_ACKNOWLEDGED = "error to the browser if it asked for one, else drop"
    FOR_INVOCATION = "error for the invocation, to the router"
    VIOLATION = "protocol violation"


Check = t.Callable[[t.Any], bool]


def _bool(value: t.Any) -> bool:
    return type(value) is bool


def _text(value: t.Any) -> bool:
    return type(value) is str


def _count(value: t.Any) -> bool:
    return type(value) is int and value >= 0


def _ids(value: t.Any) -> bool:
    return type(value) is list and all(type(item) is int for item in value)


def _names(value: t.Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _one_of(*choices: str) -> Check:
    allowed = frozenset(choices)
    return lambda value: type(value) is str and value in allowed


def _unrepairable(value: t.Any) -> None:
    return None


def _as_session_ids(value: t.Any) -> list[int] | None:
    """Session ids sent as whole floats (msgpackr and cbor-x encode numbers past 2**32 as float64) as ints."""
    if type(value) is not list or not all(type(item) in (int, float) for item in value):
        return None
    if not all(float(item).is_integer() and 0 <= item <= 2**53 for item in value):
        return None
    return [int(item) for item in value]


#: Options whose value may be repaired instead of refused (Crossbar would close the session over floats).
_SESSION_ID_LISTS: dict[str, t.Callable[[t.Any], t.Optional[list[int]]]] = {
    "exclude": _as_session_ids, "eligible": _as_session_ids,
}

_PPT: dict[str, Check] = {"ppt_scheme": _text, "ppt_serializer": _text, "ppt_cipher": _text, "ppt_keyid": _text}
_MATCH = _one_of("exact", "prefix", "wildcard")


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One message type a browser may send after WELCOME (indices count the type code as 0)."""

    #: Where the request id is (None: none).
    request_at: int | None
    #: Where the options/details dict is (None: none).
    options_at: int | None
    #: Allowed option keys and the check of their value.
    options: t.Mapping[str, Check]
    #: Where the URI is (None: none).
    uri_at: int | None
    refusal: Refusal
    #: Costs a token of the session's message rate.
    rated: bool = False


#: The one table: what a browser may send after WELCOME. WAMP spec client features; every option wampy.js 8
#: and autobahn-js 22 send.
RULES: dict[int, Rule] = {
    _CALL: Rule(1, 2, {"receive_progress": _bool, "progress": _bool, "timeout": _count, "disclose_me": _bool,
                       **_PPT}, 3, Refusal.REPLY, rated=True),
    _CANCEL: Rule(1, 2, {"mode": _one_of("skip", "kill", "killnowait")}, None, Refusal.VIOLATION),
    _PUBLISH: Rule(1, 2, {"acknowledge": _bool, "exclude_me": _bool, "exclude": _ids, "exclude_authid": _names,
                          "exclude_authrole": _names, "eligible": _ids, "eligible_authid": _names,
                          "eligible_authrole": _names, "retain": _bool, "disclose_me": _bool, **_PPT},
                   3, Refusal.REPLY_IF_ACKNOWLEDGED, rated=True),
    _SUBSCRIBE: Rule(1, 2, {"match": _MATCH, "get_retained": _bool}, 3, Refusal.REPLY, rated=True),
    _UNSUBSCRIBE: Rule(1, None, {}, None, Refusal.VIOLATION),
    _REGISTER: Rule(1, 2, {"match": _MATCH, "invoke": _one_of("single", "roundrobin", "random", "first", "last"),
                           "concurrency": _count, "disclose_caller": _bool}, 3, Refusal.REPLY, rated=True),
    _UNREGISTER: Rule(1, None, {}, None, Refusal.VIOLATION),
    _YIELD: Rule(1, 2, {"progress": _bool, **_PPT}, None, Refusal.FOR_INVOCATION),
    _ERROR: Rule(2, 3, dict(_PPT), 4, Refusal.FOR_INVOCATION),
    _GOODBYE: Rule(None, 1, {"message": _text}, 2, Refusal.VIOLATION),
}

#: Options that would make the router or a callee see another identity, or act for others: never forwarded.
#: Crossbar takes the caller (publisher) from ``forward_for[0]``; ``force_reregister`` kicks other sessions'
#: registrations.
REFUSED_OPTIONS = frozenset({
    "forward_for", "force_reregister", "caller", "caller_authid", "caller_authrole", "callee", "callee_authid",
    "callee_authrole", "publisher", "publisher_authid", "publisher_authrole", "authid", "authrole", "authextra",
    "authmethod", "authprovider", "session", "trustlevel", "transport",
})

_LOOSE = re.compile(r"([^\s.#]+\.)*[^\s.#]+\Z")
_LOOSE_PATTERN = re.compile(r"([^\s.#]*\.)*[^\s.#]*\Z")
_STRICT = re.compile(r"([0-9a-z_]+\.)*[0-9a-z_]+\Z")
_STRICT_PATTERN = re.compile(r"([0-9a-z_]*\.)*[0-9a-z_]*\Z")

# A router message's kind -> the browser request kind it answers (the request id is its first field).
_ANSWERS = {int(MessageType.PUBLISHED): _PUBLISH, int(MessageType.SUBSCRIBED): _SUBSCRIBE,
            int(MessageType.UNSUBSCRIBED): _UNSUBSCRIBE, int(MessageType.REGISTERED): _REGISTER,
            int(MessageType.UNREGISTERED): _UNREGISTER}
_RESULT = int(MessageType.RESULT)


def _undefined(codec: str) -> t.Any:
    """How a codec decodes JavaScript's ``undefined`` (None: as null, or not at all).

    wampy.js sends unset options as ``undefined``: msgpackr encodes it as ext type 0, cbor-x as CBOR's
    ``undefined``. Crossbar cannot take either (it closes the session with 1002), so they count as null.
    """
    if codec == "msgpack":
        import msgpack

        return msgpack.ExtType(0, b"\x00")
    if codec == "cbor":
        import cbor2

        return cbor2.undefined
    return None


class SessionChecks:
    """The per-message rules of one browser session (see the module docs)."""

    def __init__(self, serializer: Serializer, limits: Limits, now: float) -> None:
        self.serializer = serializer
        self.limits = limits
        self._bounds = limits.bounds
        self._uri = _STRICT if limits.strict_uris else _LOOSE
        self._uri_pattern = _STRICT_PATTERN if limits.strict_uris else _LOOSE_PATTERN
        #: Request ids in flight, per request type.
        self.pending: dict[int, set[int]] = {kind: set() for kind in (_CALL, _PUBLISH, _SUBSCRIBE, _UNSUBSCRIBE,
                                                                     _REGISTER, _UNREGISTER)}
        self.calls = self.pending[_CALL]
        self._call_inputs: set[int] = set()  # progressive call invocations still taking input
        #: The CALL the last check let start, and its ``timeout`` option: ``(request id, timeout)`` (the relay
        #: takes it for the call's deadline and sets it back to None).
        self.started_call: tuple[int, t.Any] | None = None
        self.invocations: set[int] = set()
        self.subscriptions: set[int] = set()
        self.registrations: set[int] = set()
        self._tokens = float(limits.message_burst)
        self._strikes = 0.0
        self._stamp = now
        self._ack = b"acknowledge" if serializer.binary else "acknowledge"
        self._undefined = _undefined(serializer.name)

    # --- browser -> router ----------------------------------------------------

    def check(self, data: Data, now: float) -> Verdict:
        """Judge one browser message (a frame of the right kind for the serializer)."""
        if now != self._stamp:
            self._refill(now)
        try:
            message = self.serializer.loads(data, self._bounds)
        except PayloadOutOfBounds as exc:
            return self._out_of_bounds(data, exc)
        except RemoteProtocolError as exc:
            return Verdict(violation=str(exc))
        kind = message[0]
        rule = RULES.get(kind)
        if rule is None:
            return Verdict(violation=f"{MessageType(kind).name} may not be sent by a browser after WELCOME")
        if rule.rated and self.limits.message_rate is not None:
            if self._tokens < 1.0:
                return self._refuse(rule, message, LIMIT_ERROR, "too many requests on this session; slow down",
                                    limit=True)
            self._tokens -= 1.0
        if rule.uri_at is not None:
            uri = message[rule.uri_at]
            pattern = (rule.options_at is not None and kind in (_SUBSCRIBE, _REGISTER)
                       and message[rule.options_at].get("match") in ("prefix", "wildcard"))
            if (self._uri_pattern if pattern else self._uri).match(uri) is None:
                return self._refuse(rule, message, _INVALID_URI, f"invalid URI {uri!r}")
        changed = False
        if rule.options_at is not None and message[rule.options_at]:
            options = self._options(rule, message, message[rule.options_at])
            if type(options) is Verdict:
                return options
            if options is not None:
                message[rule.options_at] = options
                changed = True
        verdict = _TRACK[kind](self, rule, message)
        if verdict is not None:
            return verdict
        if kind == _GOODBYE:
            return Verdict(forward=self.serializer.dumps(message) if changed else data, closing=True)
        if not changed:
            return Verdict(forward=data)
        return Verdict(forward=self.serializer.dumps(message), refused="options dropped")

    def _options(self, rule: Rule, message: list[t.Any], options: dict[t.Any, t.Any]) -> t.Any:
        """None if ``options`` pass as they are; the options to forward; or a refusing Verdict."""
        allowed = rule.options
        undefined = self._undefined
        drop = None
        fixed: dict[str, t.Any] | None = None
        for key, value in options.items():
            if value is None or (undefined is not None and value == undefined):
                drop = [*(drop or ()), key]
                continue
            check = allowed.get(key)
            if check is not None:
                if not check(value):
                    repaired = _SESSION_ID_LISTS.get(key, _unrepairable)(value)
                    if repaired is not None:
                        fixed = {**(fixed or {}), key: repaired}
                        continue
                    if rule.refusal is Refusal.FOR_INVOCATION or rule.refusal is Refusal.VIOLATION:
                        drop = [*(drop or ()), key]
                        continue
                    return self._refuse(rule, message, _INVALID_ARGUMENT, f"invalid value for option {key!r}")
                continue
            if key in REFUSED_OPTIONS and rule.refusal in (Refusal.REPLY, Refusal.REPLY_IF_ACKNOWLEDGED):
                return self._refuse(rule, message, _NOT_AUTHORIZED, f"option {key!r} is not allowed")
            drop = [*(drop or ()), key]
        if drop is None and fixed is None:
            return None
        return {key: (fixed or {}).get(key, value) for key, value in options.items() if key not in (drop or ())}

    # --- per-type state (after the generic checks) -----------------------------

    def _track_call(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        request_id = message[1]
        progress = message[2].get("progress") is True
        calls = self.calls
        if request_id in calls:
            if request_id not in self._call_inputs:
                return Verdict(violation=f"CALL request id {request_id} is already in flight")
            if not progress:
                self._call_inputs.discard(request_id)
            return None
        limit = self.limits.max_calls_in_flight
        if limit is not None and len(calls) >= limit:
            return self._refuse(rule, message, LIMIT_ERROR,
                                f"too many calls in flight on this session (limit {limit}); "
                                "wait for results before calling again", limit=True, kwargs={"limit": limit})
        calls.add(request_id)
        self.started_call = (request_id, message[2].get("timeout"))
        if progress:
            self._call_inputs.add(request_id)
        return None

    def _track_cancel(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        if message[1] not in self.calls:
            return Verdict(refused="CANCEL of no call in flight")  # its result may be on the way: drop
        return None

    def _track_publish(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        if message[2].get("acknowledge") is True:
            return self._new_request(rule, message, _PUBLISH)
        return None

    def _track_subscribe(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        return self._new_request(rule, message, _SUBSCRIBE, self.subscriptions, self.limits.max_subscriptions)

    def _track_register(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        return self._new_request(rule, message, _REGISTER, self.registrations, self.limits.max_registrations)

    def _track_unsubscribe(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        self.subscriptions.discard(message[2])
        return self._new_request(rule, message, _UNSUBSCRIBE)

    def _track_unregister(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        self.registrations.discard(message[2])
        return self._new_request(rule, message, _UNREGISTER)

    def _track_yield(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        request_id = message[1]
        if request_id not in self.invocations:
            return Verdict(violation=f"YIELD for request {request_id}, which is no INVOCATION of this session")
        if message[2].get("progress") is not True:
            self.invocations.discard(request_id)
        return None

    def _track_error(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        if message[1] != _INVOCATION:
            return Verdict(violation="a browser sends ERROR only to answer an INVOCATION")
        if message[2] not in self.invocations:
            return Verdict(violation=f"ERROR for request {message[2]}, which is no INVOCATION of this session")
        self.invocations.discard(message[2])
        return None

    def _track_goodbye(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        return None

    def _new_request(self, rule: Rule, message: list[t.Any], kind: int, held: set[int] | None = None,
                     limit: int | None = None) -> Verdict | None:
        request_id = message[1]
        pending = self.pending[kind]
        if request_id in pending:
            return Verdict(violation=f"{MessageType(kind).name} request id {request_id} is already in flight")
        if held is not None and limit is not None and len(held) + len(pending) >= limit:
            what = "subscriptions" if kind == _SUBSCRIBE else "registrations"
            return self._refuse(rule, message, LIMIT_ERROR, f"too many {what} on this session (limit {limit})",
                                limit=True, kwargs={"limit": limit})
        pending.add(request_id)
        return None

    # --- refusals ---------------------------------------------------------------

    def _refuse(self, rule: Rule, message: list[t.Any], uri: str, text: str, *, limit: bool = False,
                kwargs: dict[str, t.Any] | None = None) -> Verdict:
        self._strikes += 1.0
        if self._strikes > self.limits.max_strikes:
            return Verdict(abuse=f"too many refused messages ({text})")
        kind = message[0]
        request_id = message[rule.request_at] if rule.request_at is not None else None
        return self._answer(rule, kind, request_id, uri, text, kwargs,
                            acknowledged=kind == _PUBLISH and message[2].get("acknowledge") is True)

    def _answer(self, rule: Rule, kind: int, request_id: int | None, uri: str, text: str,
                kwargs: dict[str, t.Any] | None, *, acknowledged: bool) -> Verdict:
        refusal = rule.refusal
        if refusal is Refusal.REPLY or (refusal is Refusal.REPLY_IF_ACKNOWLEDGED and acknowledged):
            return Verdict(reply=[_ERROR, kind, request_id, {}, uri, [text], kwargs or {}], refused=text)
        if refusal is Refusal.REPLY_IF_ACKNOWLEDGED:
            return Verdict(refused=text)
        if refusal is Refusal.FOR_INVOCATION and request_id in self.invocations:
            self.invocations.discard(request_id)
            return Verdict(upstream=[_ERROR, _INVOCATION, request_id, {}, uri, [text]], refused=text)
        return Verdict(violation=text)

    def _out_of_bounds(self, data: Data, exc: PayloadOutOfBounds) -> Verdict:
        head: Head | None = peek_head(self.serializer.name, data)
        if head is None:
            return Verdict(violation=str(exc))
        kind, first, second = head
        rule = RULES.get(kind)
        request_id = second if kind == _ERROR else first
        if rule is None or request_id is None or (kind == _ERROR and first != _INVOCATION):
            return Verdict(violation=str(exc))
        self._strikes += 1.0
        if self._strikes > self.limits.max_strikes:
            return Verdict(abuse=f"too many refused messages ({exc})")
        return self._answer(rule, kind, request_id, _INVALID_ARGUMENT, f"the message is past its bounds: {exc}",
                            None, acknowledged=kind == _PUBLISH and self._ack in data)  # type: ignore[operator]

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        rate = self.limits.message_rate
        if rate is not None:
            self._tokens = min(float(self.limits.message_burst), self._tokens + elapsed * rate)
        self._strikes = max(0.0, self._strikes - elapsed)

    # --- router -> browser --------------------------------------------------------

    def from_router(self, head: Head, data: Data) -> Verdict | None:
        """Track a router message that answers the browser or asks it; None: forward it as is."""
        kind, first, second = head
        if kind == _RESULT:
            if first in self.calls and not self._is_progress(data):
                self.calls.discard(first)
                self._call_inputs.discard(first)
        elif kind == _INVOCATION:
            if first is not None:
                if len(self.invocations) >= self.limits.max_invocations:
                    return Verdict(upstream=[_ERROR, _INVOCATION, first, {}, LIMIT_ERROR,
                                             ["too many invocations waiting for this browser"]])
                self.invocations.add(first)
        elif kind == _ERROR:
            pending = self.pending.get(t.cast(int, first))
            if pending:
                if second is None:
                    second = self._field(data, 2)
                pending.discard(t.cast(int, second))
                if first == _CALL:
                    self._call_inputs.discard(t.cast(int, second))
        else:
            request_kind = _ANSWERS.get(kind)
            if request_kind is not None:
                self.pending[request_kind].discard(t.cast(int, first))
                if kind == MessageType.SUBSCRIBED:
                    self.subscriptions.add(t.cast(int, second if second is not None else self._field(data, 2)))
                elif kind == MessageType.REGISTERED:
                    self.registrations.add(t.cast(int, second if second is not None else self._field(data, 2)))
                elif first == 0:  # the router ended a subscription or registration itself
                    self._revoked(kind, data)
        return None

    def _is_progress(self, data: Data) -> bool:
        if (b"progress" if self.serializer.binary else "progress") not in data:  # type: ignore[operator]
            return False
        try:
            return bool(self.serializer.loads(data)[2].get("progress"))
        except RemoteProtocolError:
            return False

    def _field(self, data: Data, index: int) -> t.Any:
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError:
            return None
        return message[index] if len(message) > index else None

    def _revoked(self, kind: int, data: Data) -> None:
        details = self._field(data, 2)
        if isinstance(details, dict):
            if kind == MessageType.UNSUBSCRIBED:
                self.subscriptions.discard(details.get("subscription"))
            else:
                self.registrations.discard(details.get("registration"))


_TRACK: dict[int, t.Callable[[SessionChecks, Rule, list[t.Any]], t.Optional[Verdict]]] = {
    _CALL: SessionChecks._track_call,
    _CANCEL: SessionChecks._track_cancel,
    _PUBLISH: SessionChecks._track_publish,
    _SUBSCRIBE: SessionChecks._track_subscribe,
    _UNSUBSCRIBE: SessionChecks._track_unsubscribe,
    _REGISTER: SessionChecks._track_register,
    _UNREGISTER: SessionChecks._track_unregister,
    _YIELD: SessionChecks._track_yield,
    _ERROR: SessionChecks._track_error,
    _GOODBYE: SessionChecks._track_goodbye,
}
