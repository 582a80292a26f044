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
  (empty components) only with ``match`` ``prefix``/``wildcard``. In JSON a
  string starting with U+0000 is binary (the WAMP spec's ``"\\u0000"`` + base64,
  bytes to the router): never a URI or a string option value (payloads keep it);
- options are allow-listed per type with a check of each value. A null or
  ``undefined`` value is dropped (wampy.js sends unset options as ``undefined``
  over msgpack and CBOR), as is an unknown key; ``undefined`` in a payload
  becomes what ``JSON.stringify`` makes of it (null in an array, no key in an
  object). A key in :data:`REFUSED_OPTIONS` (``forward_for``, whose first entry
  Crossbar takes as the caller's or publisher's identity, the router's own
  identity keys, ``force_reregister``) gets ERROR
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

Cost, not only shape: a URI is bounded in length and components (patterns
too), and a session's subscription and registration URIs share a byte budget
(the router keeps each in its tries). A second token bucket counts bytes, per
session and (:class:`ByteBucket`, shared through :class:`Shared`) per user:
a request is refused while either is in debt, and every message's size is
taken from both. Option values are checked against what the router can pass to
a peer of any serializer (``timeout`` a uint32, session ids within 2**53).
Progressive call inputs are refused unless ``Limits.progressive_calls``. A
REGISTER of one of the app's own procedures (:attr:`Shared.reserved`) gets the
ERROR the router gives for an existing procedure, so a refusal says nothing
more; ``invoke`` policies other than those allowed, PUBLISH options that
target (unless ``Limits.targeted_publish``) and ``retain`` outside
``Limits.retain_topics`` are refused with ``wamp.error.not_authorized``. RESULT and
EVENT details lose the identity of backend sessions (:meth:`SessionChecks.scrub`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing as t

from .. import metrics_sink
from ..errors import PayloadOutOfBounds
from ..errors import RemoteProtocolError
from ..wamp.bounds import Bounds
from ..wamp.heads import Head
from ..wamp.heads import peek_head
from ..wamp.messages import MessageType
from ..wamp.messages import Serializer
from ..wamp.meta_api import TopicSet
from ..wamp.splice import Splicer
from .meta_calls import META_REFUSED
from .meta_calls import MetaRefusal
from .meta_calls import rewrite_meta_call

__all__ = [
    "Limits",
    "Verdict",
    "Rule",
    "RULES",
    "REFUSED_OPTIONS",
    "SessionChecks",
    "LIMIT_ERROR",
    "ByteBucket",
    "Shared",
    "TARGETING_OPTIONS",
]

Data = t.Union[str, bytes]

#: The ERROR URI of a request refused by a limit (it never reached the router).
LIMIT_ERROR = "wamp.error.canceled"
_NOT_AUTHORIZED = "wamp.error.not_authorized"
_INVALID_ARGUMENT = "wamp.error.invalid_argument"
_INVALID_URI = "wamp.error.invalid_uri"
_NOT_SUPPORTED = "wamp.error.feature_not_supported"
#: What the router answers to a REGISTER of a procedure that exists; a reserved one gets the same, word for word.
_EXISTS = "wamp.error.procedure_already_exists"
_EXISTS_TEXT = "the router refused the request"
#: Largest WAMP id (session ids in ``exclude``/``eligible``): what every serializer and JavaScript hold.
_MAX_ID = 2**53
#: Largest ``timeout`` (ms) the router passes on: its own schema holds a uint32.
_MAX_TIMEOUT = 2**32 - 1

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
    #: Characters of one URI (patterns included).
    max_uri_length: int = 512
    #: Components of one URI (patterns included).
    max_uri_components: int = 32
    #: Bytes of the URIs of one session's subscriptions and registrations (granted and pending) together.
    max_uri_bytes: int | None = 32768
    #: Bytes per second the session may send, sustained (a request is refused while the bucket is in debt).
    byte_rate: float | None = float(1 << 20)
    #: Bytes the session may send in a burst above the rate.
    byte_burst: int = 1 << 20
    #: Progressive call inputs (CALL with ``progress``) are passed on.
    progressive_calls: bool = False
    #: ``invoke`` policies a browser may REGISTER with.
    invoke_policies: frozenset[str] = frozenset({"single"})
    #: PUBLISH may pick its receivers (:data:`TARGETING_OPTIONS`).
    targeted_publish: bool = False
    #: Roles of backend sessions (the app's peer, services): their identity is kept from browsers.
    backend_roles: frozenset[str] = frozenset({"backend"})
    #: RESULT and EVENT details keep the identity of backend sessions.
    disclose_backend: bool = False
    #: The app offers event history or presence: the meta calls of :mod:`.meta_calls` are allowed.
    meta_calls: bool = False
    #: Topics a PUBLISH may ask the router to ``retain`` the event of.
    retain_topics: TopicSet = TopicSet()


class ByteBucket:
    """A token bucket of bytes that may go into debt: one is shared by the sessions of a user in a worker.

    A message passes while the bucket is not in debt (:meth:`ready`), then its size is taken
    (:meth:`take`); so a message larger than the burst passes once the bucket is full, and the
    next waits until the debt is paid back at ``rate``.
    """

    __slots__ = ("rate", "burst", "tokens", "_stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._stamp = now

    def ready(self, now: float) -> bool:
        """Refill to ``now``; whether a request may pass."""
        if now > self._stamp:  # sessions sharing it may report a moment late: time only goes forward
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
            self._stamp = now
        return self.tokens >= 0.0

    def take(self, size: int) -> None:
        self.tokens -= size


@dataclasses.dataclass(frozen=True, slots=True)
class Shared:
    """What a session's checks share with the rest of the worker (read-only to them)."""

    #: The user's byte bucket across their sessions in this worker (None: no per-user limit).
    user_bytes: ByteBucket | None = None
    #: The procedures that belong to the app (its peer's registrations, the bridge's own).
    reserved: t.Callable[[], t.AbstractSet[str]] = frozenset


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
    #: ``forward`` as decoded for the check (when forwarded unchanged): a translation need not decode it again.
    decoded: list[t.Any] | None = None


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


def _ids(value: t.Any) -> bool:
    return type(value) is list and all(type(item) is int and 0 <= item <= _MAX_ID for item in value)


def _timeout(value: t.Any) -> bool:
    return type(value) is int and 0 <= value <= _MAX_TIMEOUT


def _concurrency(value: t.Any) -> bool:
    return type(value) is int and 1 <= value <= 65535


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
    _CALL: Rule(1, 2, {"receive_progress": _bool, "progress": _bool, "timeout": _timeout, "disclose_me": _bool,
                       **_PPT}, 3, Refusal.REPLY, rated=True),
    _CANCEL: Rule(1, 2, {"mode": _one_of("skip", "kill", "killnowait")}, None, Refusal.VIOLATION),
    _PUBLISH: Rule(1, 2, {"acknowledge": _bool, "exclude_me": _bool, "exclude": _ids, "exclude_authid": _names,
                          "exclude_authrole": _names, "eligible": _ids, "eligible_authid": _names,
                          "eligible_authrole": _names, "retain": _bool, "disclose_me": _bool, **_PPT},
                   3, Refusal.REPLY_IF_ACKNOWLEDGED, rated=True),
    _SUBSCRIBE: Rule(1, 2, {"match": _MATCH, "get_retained": _bool}, 3, Refusal.REPLY, rated=True),
    _UNSUBSCRIBE: Rule(1, None, {}, None, Refusal.VIOLATION),
    _REGISTER: Rule(1, 2, {"match": _MATCH, "invoke": _one_of("single", "roundrobin", "random", "first", "last"),
                           "concurrency": _concurrency, "disclose_caller": _bool}, 3, Refusal.REPLY, rated=True),
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


def _binary_text(value: t.Any) -> bool:
    """A JSON string the WAMP spec reads as binary (``"\\u0000"`` + base64), or a list holding one."""
    if type(value) is str:
        return value[:1] == "\x00"
    return type(value) is list and any(type(item) is str and item[:1] == "\x00" for item in value)


def _text_only(check: Check) -> Check:
    return lambda value: check(value) and not _binary_text(value)


#: Each type's option checks, and for JSON sessions the same refusing binary strings (bytes to the router).
_OPTION_CHECKS = {kind: rule.options for kind, rule in RULES.items()}
_JSON_OPTION_CHECKS = {kind: {key: _text_only(check) for key, check in rule.options.items()}
                       for kind, rule in RULES.items()}

#: PUBLISH options that pick the receivers: off unless ``Limits.targeted_publish`` (a user could plant
#: targeted notifications in the app's topics). ``retain`` has its own allow-list, ``Limits.retain_topics``.
TARGETING_OPTIONS = frozenset({"eligible", "eligible_authid", "eligible_authrole", "exclude_authid",
                               "exclude_authrole"})

_LOOSE = re.compile(r"([^\s.#]+\.)*[^\s.#]+\Z")
_LOOSE_PATTERN = re.compile(r"([^\s.#]*\.)*[^\s.#]*\Z")
_STRICT = re.compile(r"([0-9a-z_]+\.)*[0-9a-z_]+\Z")
_STRICT_PATTERN = re.compile(r"([0-9a-z_]*\.)*[0-9a-z_]*\Z")
# JSON: a string starting with U+0000 is binary ("\u0000" + base64, the WAMP spec's convention), bytes to the
# router: never a URI (the strict ones hold no U+0000 at all)
_LOOSE_TEXT = re.compile("(?!\x00)" + _LOOSE.pattern)
_LOOSE_TEXT_PATTERN = re.compile("(?!\x00)" + _LOOSE_PATTERN.pattern)

# A router message's kind -> the browser request kind it answers (the request id is its first field).
_ANSWERS = {int(MessageType.PUBLISHED): _PUBLISH, int(MessageType.SUBSCRIBED): _SUBSCRIBE,
            int(MessageType.UNSUBSCRIBED): _UNSUBSCRIBE, int(MessageType.REGISTERED): _REGISTER,
            int(MessageType.UNREGISTERED): _UNREGISTER}
_RESULT, _EVENT = int(MessageType.RESULT), int(MessageType.EVENT)
#: Distinct details a session remembers having scrubbed (the app's peer, its progressive results, a few others).
_SCRUBBED_KEPT = 8
#: Where RESULT and EVENT keep their details, and the keys that name a backend session there.
_IDENTITY_AT = {_RESULT: (2, ("callee", "callee_authid", "callee_authrole"), "callee_authrole"),
                _EVENT: (3, ("publisher", "publisher_authid", "publisher_authrole"), "publisher_authrole")}


class _NoIds(frozenset[int]):
    """The id set of a kind of state a session has not used yet: shared, read-only, ``discard`` does nothing.

    Most browser sessions never register, subscribe or receive an INVOCATION; each of their sets is made on the
    first ``add`` (an empty set is 216 bytes, times thousands of idle sessions).
    """

    __slots__ = ()

    def discard(self, item: t.Any) -> None:
        pass


_NO_IDS = _NoIds()
Ids = t.Union[set[int], _NoIds]
_splicers: dict[str, Splicer] = {}  # one per codec: a Splicer holds no state


def _scrub_table(binary: bool) -> dict[int, tuple[Data, int, tuple[str, ...], str]]:
    return {kind: (keys[0].encode() if binary else keys[0], at, keys, role)
            for kind, (at, keys, role) in _IDENTITY_AT.items()}


#: RESULT, EVENT -> (the key's bytes to look for, where the details are, their identity keys, the role key),
#: by whether the serializer is binary; shared by every session (read-only).
_SCRUB = {False: _scrub_table(False), True: _scrub_table(True)}
_NO_SCRUB: dict[int, tuple[Data, int, tuple[str, ...], str]] = {}


def _undefined(codec: str) -> t.Any:
    """How a codec decodes JavaScript's ``undefined`` (None: as null, or not at all).

    wampy.js sends unset options as ``undefined``: msgpackr encodes it as ext type 0, cbor-x as CBOR's
    ``undefined``. Crossbar cannot take either (it closes the session with 1002), so they count as null.
    Nor in a payload: it hands the msgpack one to a JSON or CBOR peer as ``[0, b"\\x00"]`` and drops a call
    holding the CBOR one for a JSON or msgpack callee (no answer).
    """
    if codec == "msgpack":
        import msgpack

        return msgpack.ExtType(0, b"\x00")
    if codec == "cbor":
        import cbor2

        return cbor2.undefined
    return None


#: The first byte of ``undefined`` (msgpack fixext 1, CBOR simple 23): a frame without it is not walked for one.
#: One byte: found at memory speed (a longer needle costs ~0.5 us per KiB); a stray one costs a walk of the
#: decoded payload, linear in its items as the decoding was.
_UNDEFINED_MARKS = {"msgpack": b"\xd4", "cbor": b"\xf7"}


def _without_undefined(message: list[t.Any], start: int, undefined: t.Any) -> bool:
    """``undefined`` in the payload from ``message[start]`` on made what ``JSON.stringify`` makes of it, in place:
    null in an array, no key in an object. Whether there was any."""
    kind = type(undefined)
    found = False
    stack = [value for value in message[start:] if type(value) is list or type(value) is dict]
    while stack:
        container = stack.pop()
        if type(container) is dict:
            gone = [key for key, value in container.items() if type(value) is kind and value == undefined]
            for key in gone:
                del container[key]
            found = found or bool(gone)
            values: t.Iterable[t.Any] = container.values()
        else:
            values = container
            for index, value in enumerate(container):
                if type(value) is kind and value == undefined:
                    container[index] = None
                    found = True
        stack.extend(value for value in values if type(value) is list or type(value) is dict)
    return found


class SessionChecks:
    """The per-message rules of one browser session (see the module docs).

    What a session has not used yet costs it nothing: the id sets of subscriptions, registrations, invocations,
    progressive inputs and requests in flight other than CALLs are made on first use.
    """

    __slots__ = ("serializer", "limits", "_shared", "_user_bytes", "_bytes", "_pending_uri", "_held_uri",
                 "_uri_total", "_bounds", "_uri", "_uri_pattern", "_option_checks", "pending", "calls",
                 "_call_inputs", "started_call", "invocations", "subscriptions", "registrations", "_tokens",
                 "_strikes", "_stamp", "_ack", "_undefined", "_scrub", "_splicer", "_scrubbed", "__weakref__")

    def __init__(self, serializer: Serializer, limits: Limits, now: float, shared: Shared = Shared()) -> None:
        self.serializer = serializer
        self.limits = limits
        self._shared = shared
        self._user_bytes = shared.user_bytes
        self._bytes = ByteBucket(limits.byte_rate, limits.byte_burst, now) if limits.byte_rate is not None else None
        #: URI bytes of subscriptions and registrations: by (kind, request id) while pending, then by (kind, id).
        self._pending_uri: dict[tuple[int, t.Any], int] = {}
        self._held_uri: dict[tuple[int, t.Any], int] = {}
        self._uri_total = 0
        self._bounds = limits.bounds
        json = serializer.name == "json"
        self._uri = _STRICT if limits.strict_uris else _LOOSE_TEXT if json else _LOOSE
        self._uri_pattern = _STRICT_PATTERN if limits.strict_uris else _LOOSE_TEXT_PATTERN if json else _LOOSE_PATTERN
        self._option_checks = _JSON_OPTION_CHECKS if json else _OPTION_CHECKS
        #: CALL request ids in flight.
        self.calls: set[int] = set()
        #: Request ids in flight of the other request types (PUBLISH with ``acknowledge``, SUBSCRIBE ...): a set
        #: per type, made on its first request.
        self.pending: dict[int, set[int]] = {}
        self._call_inputs: Ids = _NO_IDS  # progressive call invocations still taking input
        #: The CALL the last check let start, and its ``timeout`` option: ``(request id, timeout)`` (the relay
        #: takes it for the call's deadline and sets it back to None).
        self.started_call: tuple[int, t.Any] | None = None
        self.invocations: Ids = _NO_IDS
        self.subscriptions: Ids = _NO_IDS
        self.registrations: Ids = _NO_IDS
        self._tokens = float(limits.message_burst)
        self._strikes = 0.0
        self._stamp = now
        self._ack = b"acknowledge" if serializer.binary else "acknowledge"
        self._undefined = _undefined(serializer.name)
        #: RESULT, EVENT -> (the key's bytes to look for, where the details are, their identity keys, the role key)
        self._scrub = _NO_SCRUB if limits.disclose_backend else _SCRUB[serializer.binary]
        splicer = _splicers.get(serializer.name)
        if splicer is None:
            splicer = _splicers[serializer.name] = Splicer(serializer.name)
        self._splicer = splicer
        #: Details seen in RESULTs and EVENTs (encoded) -> what the browser gets instead (None: the same).
        self._scrubbed: dict[Data, Data | None] = {}

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
        if rule.rated and self._in_flight(kind, message[1], message[2].get("acknowledge") is True):
            # before any refusal: an ERROR for an id in flight would be a second answer to it
            return Verdict(violation=f"{MessageType(kind).name} request id {message[1]} is already in flight")
        if rule.rated and self.limits.message_rate is not None:
            if self._tokens < 1.0:
                return self._refuse(rule, message, LIMIT_ERROR, "too many requests on this session; slow down",
                                    limit=True)
            self._tokens -= 1.0
        size = len(data)
        bucket, user = self._bytes, self._user_bytes
        if rule.rated and ((bucket is not None and not bucket.ready(now))
                           or (user is not None and not user.ready(now))):
            return self._refuse(rule, message, LIMIT_ERROR, "too many bytes per second; slow down", limit=True)
        if bucket is not None:
            bucket.take(size)
        if user is not None:
            user.take(size)
        if rule.uri_at is not None:
            uri = message[rule.uri_at]
            limits = self.limits
            if len(uri) > limits.max_uri_length or uri.count(".") >= limits.max_uri_components:
                return self._refuse(rule, message, _INVALID_URI,
                                    f"URI past its bounds ({limits.max_uri_length} characters, "
                                    f"{limits.max_uri_components} components)")
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
        undefined, payload_at = self._undefined, rule.options_at
        nulled = (undefined is not None and payload_at is not None and _UNDEFINED_MARKS[self.serializer.name] in data
                  and _without_undefined(message, payload_at + 1, undefined))
        verdict = _TRACK[kind](self, rule, message)
        if verdict is not None:
            return verdict
        if kind == _GOODBYE:
            return Verdict(forward=self.serializer.dumps(message) if changed else data, closing=True)
        if changed:
            return Verdict(forward=self.serializer.dumps(message), refused="options dropped")
        if nulled or self.serializer.carries_tags(data):
            return Verdict(forward=self.serializer.dumps(message))
        return Verdict(forward=data, decoded=message)

    def _in_flight(self, kind: int, request_id: t.Any, acknowledged: bool) -> bool:
        """A request (CALL, PUBLISH, SUBSCRIBE, REGISTER) reuses the id of one still waiting for its answer."""
        if kind == _CALL:
            return request_id in self.calls and request_id not in self._call_inputs  # not a progressive input
        if kind == _PUBLISH and not acknowledged:  # no answer comes: unacknowledged publishes may share an id
            return False
        pending = self.pending.get(kind)
        return pending is not None and request_id in pending

    def _options(self, rule: Rule, message: list[t.Any], options: dict[t.Any, t.Any]) -> t.Any:
        """None if ``options`` pass as they are; the options to forward; or a refusing Verdict."""
        allowed = self._option_checks[message[0]]
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
        if request_id in calls:  # a progressive call's next input (an id in flight otherwise: check())
            if not progress:
                self._call_inputs.discard(request_id)
            return None
        limit = self.limits.max_calls_in_flight
        if limit is not None and len(calls) >= limit:
            return self._refuse(rule, message, LIMIT_ERROR,
                                f"too many calls in flight on this session (limit {limit}); "
                                "wait for results before calling again", limit=True, kwargs={"limit": limit})
        if progress and not self.limits.progressive_calls:
            return self._refuse(rule, message, _NOT_SUPPORTED, "progressive call inputs are not enabled")
        calls.add(request_id)
        metrics_sink.sink.call_started(self, request_id)
        self.started_call = (request_id, message[2].get("timeout"))
        if progress:
            inputs = self._call_inputs
            if not isinstance(inputs, set):
                self._call_inputs = inputs = set()
            inputs.add(request_id)
        return None

    def _track_meta_call(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        """A CALL of a meta procedure: refused, or sent to the bridge's own procedure (see :mod:`.meta_calls`)."""
        target = rewrite_meta_call(message[3], message[4] if len(message) > 4 else None, self.subscriptions,
                                   self.limits.meta_calls)
        if type(target) is MetaRefusal:
            return self._refuse(rule, message, META_REFUSED, target.text)
        verdict = self._track_call(rule, message)
        if target is None or verdict is not None:
            return verdict
        message[3] = target
        return Verdict(forward=self.serializer.dumps(message))

    def _track_retain(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        if message[2].get("retain") is True and message[3] not in self.limits.retain_topics:
            return self._refuse(rule, message, META_REFUSED,
                                f"retain is not allowed on {message[3]!r} (WAMP_BRIDGE_RETAIN_TOPICS)")
        return self._track_publish(rule, message)

    def _track_cancel(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        if message[1] not in self.calls:
            return Verdict(refused="CANCEL of no call in flight")  # its result may be on the way: drop
        return None

    def _track_publish(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        options = message[2]
        if options and not self.limits.targeted_publish:
            for key in TARGETING_OPTIONS.intersection(options):
                return self._refuse(rule, message, _NOT_AUTHORIZED, f"option {key!r} is not allowed for browsers")
        if options.get("acknowledge") is True:
            return self._new_request(rule, message, _PUBLISH)
        return None

    def _track_subscribe(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        return self._uri_budget(rule, message) or self._new_request(
            rule, message, _SUBSCRIBE, self.subscriptions, self.limits.max_subscriptions, hold_uri=True)

    def _track_register(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        options, uri = message[2], message[3]
        invoke = options.get("invoke", "single")
        if invoke not in self.limits.invoke_policies:
            return self._refuse(rule, message, _NOT_AUTHORIZED, f"invoke policy {invoke!r} is not allowed for browsers")
        if uri in self._shared.reserved():
            return self._refuse(rule, message, _EXISTS, _EXISTS_TEXT, log=f"REGISTER of the app's procedure {uri!r}")
        return self._uri_budget(rule, message) or self._new_request(
            rule, message, _REGISTER, self.registrations, self.limits.max_registrations, hold_uri=True)

    def _track_unsubscribe(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        self.subscriptions.discard(message[2])
        self._release_uri(_SUBSCRIBE, message[2])
        return self._new_request(rule, message, _UNSUBSCRIBE)

    def _track_unregister(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        self.registrations.discard(message[2])
        self._release_uri(_REGISTER, message[2])
        return self._new_request(rule, message, _UNREGISTER)

    # --- the URI budget: pending by (kind, request id), granted by (kind, subscription/registration id) ---

    def _uri_budget(self, rule: Rule, message: list[t.Any]) -> Verdict | None:
        budget = self.limits.max_uri_bytes
        if budget is not None and self._uri_total + len(message[3]) > budget:
            return self._refuse(rule, message, LIMIT_ERROR,
                                f"the URIs of this session's subscriptions and registrations would pass {budget} "
                                "bytes",
                                limit=True, kwargs={"limit": budget})
        return None

    def _granted_uri(self, kind: int, request_id: t.Any, handle_id: t.Any) -> None:
        size = self._pending_uri.pop((kind, request_id), 0)
        if (kind, handle_id) in self._held_uri:  # the same subscription again: held once
            self._uri_total -= size
        else:
            self._held_uri[(kind, handle_id)] = size

    def _release_uri(self, kind: int, handle_id: t.Any, *, pending: bool = False) -> None:
        self._uri_total -= (self._pending_uri if pending else self._held_uri).pop((kind, handle_id), 0)

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

    def _new_request(self, rule: Rule, message: list[t.Any], kind: int, held: Ids | None = None,
                     limit: int | None = None, *, hold_uri: bool = False) -> Verdict | None:
        request_id = message[1]
        pending = self.pending.get(kind)
        if pending is None:
            pending = self.pending[kind] = set()
        elif request_id in pending:
            return Verdict(violation=f"{MessageType(kind).name} request id {request_id} is already in flight")
        if held is not None and limit is not None and len(held) + len(pending) >= limit:
            what = "subscriptions" if kind == _SUBSCRIBE else "registrations"
            return self._refuse(rule, message, LIMIT_ERROR, f"too many {what} on this session (limit {limit})",
                                limit=True, kwargs={"limit": limit})
        pending.add(request_id)
        if hold_uri:
            size = len(message[3])
            self._pending_uri[(kind, request_id)] = size
            self._uri_total += size
        return None

    # --- refusals ---------------------------------------------------------------

    def _refuse(self, rule: Rule, message: list[t.Any], uri: str, text: str, *, limit: bool = False,
                kwargs: dict[str, t.Any] | None = None, log: str | None = None) -> Verdict:
        self._strikes += 1.0
        metrics_sink.sink.refused(message[0], uri)
        if self._strikes > self.limits.max_strikes:
            return Verdict(abuse=f"too many refused messages ({log or text})")
        kind = message[0]
        request_id = message[rule.request_at] if rule.request_at is not None else None
        verdict = self._answer(rule, kind, request_id, uri, text, kwargs,
                               acknowledged=kind == _PUBLISH and message[2].get("acknowledge") is True)
        return dataclasses.replace(verdict, refused=log) if log is not None and verdict.refused else verdict

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
        acknowledged = kind == _PUBLISH and self._ack in data  # type: ignore[operator]
        if rule.rated and self._in_flight(kind, request_id, acknowledged):
            return Verdict(violation=f"{exc}; and its request id {request_id} is already in flight")
        self._strikes += 1.0
        if self._strikes > self.limits.max_strikes:
            return Verdict(abuse=f"too many refused messages ({exc})")
        return self._answer(rule, kind, request_id, _INVALID_ARGUMENT, f"the message is past its bounds: {exc}",
                            None, acknowledged=acknowledged)

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
                metrics_sink.sink.call_ended(self, first, "result")
        elif kind == _INVOCATION:
            if first is not None:
                invocations = self.invocations
                if len(invocations) >= self.limits.max_invocations:
                    return Verdict(upstream=[_ERROR, _INVOCATION, first, {}, LIMIT_ERROR,
                                             ["too many invocations waiting for this browser"]])
                if not isinstance(invocations, set):
                    self.invocations = invocations = set()
                invocations.add(first)
        elif kind == _ERROR:
            pending = self.calls if first == _CALL else self.pending.get(t.cast(int, first))
            if pending:
                if second is None:
                    second = self._field(data, 2)
                pending.discard(t.cast(int, second))
                if first == _CALL:
                    self._call_inputs.discard(t.cast(int, second))
                    metrics_sink.sink.call_ended(self, t.cast(int, second), "error")
                elif first == _SUBSCRIBE or first == _REGISTER:
                    self._release_uri(first, second, pending=True)
        else:
            request_kind = _ANSWERS.get(kind)
            if request_kind is not None:
                pending = self.pending.get(request_kind)
                if pending is not None:
                    pending.discard(t.cast(int, first))
                if kind == MessageType.SUBSCRIBED or kind == MessageType.REGISTERED:
                    handle = second if second is not None else self._field(data, 2)
                    self._granted(request_kind).add(t.cast(int, handle))
                    self._granted_uri(request_kind, first, handle)
                elif first == 0:  # the router ended a subscription or registration itself
                    self._revoked(kind, data)
        return None

    def _granted(self, kind: int) -> set[int]:
        """The session's subscription (``kind`` SUBSCRIBE) or registration ids, made on the first one."""
        if kind == _SUBSCRIBE:
            subscriptions = self.subscriptions
            if not isinstance(subscriptions, set):
                self.subscriptions = subscriptions = set()
            return subscriptions
        registrations = self.registrations
        if not isinstance(registrations, set):
            self.registrations = registrations = set()
        return registrations

    def scrub(self, kind: int, data: Data) -> Data | None:
        """A RESULT or EVENT for the browser without the identity of a backend session; None: ``data`` as it is.

        Only the details are decoded and encoded again (:mod:`~flask_wamp_bridge.wamp.splice`): the payload is
        copied as it came.
        """
        how = self._scrub.get(kind)
        if how is None or how[0] not in data:  # type: ignore[operator]
            return None
        splicer = self._splicer
        start = splicer.start(data, how[1])
        if start is None:
            return None
        for seen, instead in self._scrubbed.items():  # the same callee, the same details: most RESULTs
            if data.startswith(seen, start):  # type: ignore[arg-type]
                end = start + len(seen)
                return None if instead is None else data[:start] + instead + data[end:]  # type: ignore[operator]
        found = splicer.read(data, start)
        if found is None:
            return None
        details, end = found
        instead = self._scrubbed_details(details, how[2], how[3])
        if len(self._scrubbed) >= _SCRUBBED_KEPT:
            del self._scrubbed[next(iter(self._scrubbed))]
        self._scrubbed[data[start:end]] = instead
        return None if instead is None else data[:start] + instead + data[end:]  # type: ignore[operator]

    def _scrubbed_details(self, details: t.Any, keys: tuple[str, ...], role_key: str) -> Data | None:
        """The encoded details without a backend's identity; None: keep them as they are."""
        if type(details) is not dict or keys[0] not in details:
            return None
        role = details.get(role_key)
        if role is not None and role not in self.limits.backend_roles:
            return None  # another browser's identity: the router discloses it by its own rules
        return self._splicer.encode({key: value for key, value in details.items() if key not in keys})

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
                self._release_uri(_SUBSCRIBE, details.get("subscription"))
            else:
                self.registrations.discard(details.get("registration"))
                self._release_uri(_REGISTER, details.get("registration"))


_TRACK: dict[int, t.Callable[[SessionChecks, Rule, list[t.Any]], t.Optional[Verdict]]] = {
    _CALL: SessionChecks._track_meta_call,
    _CANCEL: SessionChecks._track_cancel,
    _PUBLISH: SessionChecks._track_retain,
    _SUBSCRIBE: SessionChecks._track_subscribe,
    _UNSUBSCRIBE: SessionChecks._track_unsubscribe,
    _REGISTER: SessionChecks._track_register,
    _UNREGISTER: SessionChecks._track_unregister,
    _YIELD: SessionChecks._track_yield,
    _ERROR: SessionChecks._track_error,
    _GOODBYE: SessionChecks._track_goodbye,
}
