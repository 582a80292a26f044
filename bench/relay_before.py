"""The relay as it was before the per-message checks, kept for bench_relay.py's before/after run.

A copy of ``flask_wamp_bridge/bridge/relay.py`` from before the checks (it only
peeked at each frame's head). Its actions are the package's own classes, so
the IO layer carries them out unchanged. Not part of the package.
"""

from __future__ import annotations

import re
import typing as t

from flask_wamp_bridge.bridge.identity import Identity
from flask_wamp_bridge.bridge.identity import thaw
from flask_wamp_bridge.bridge.relay import Action
from flask_wamp_bridge.bridge.relay import Close
from flask_wamp_bridge.bridge.relay import ConnectRouter
from flask_wamp_bridge.bridge.relay import RouterRefusal
from flask_wamp_bridge.bridge.relay import SendToClient
from flask_wamp_bridge.bridge.relay import SendToRouter
from flask_wamp_bridge.bridge.relay import State
from flask_wamp_bridge.errors import BridgeError
from flask_wamp_bridge.errors import ConnectionClosed
from flask_wamp_bridge.errors import LocalProtocolError
from flask_wamp_bridge.errors import ProtocolError
from flask_wamp_bridge.errors import RemoteProtocolError
from flask_wamp_bridge.errors import TransportError
from flask_wamp_bridge.wamp.messages import MessageType
from flask_wamp_bridge.wamp.messages import Serializer

__all__ = [
    "State",
    "Action",
    "ConnectRouter",
    "SendToRouter",
    "SendToClient",
    "Close",
    "Relay",
    "rewrite_hello",
    "RouterRefusal",
    "CALLS_IN_FLIGHT_ERROR",
]

Data = t.Union[str, bytes]

#: The ERROR URI a CALL over the in-flight limit gets (the call never reached the router).
CALLS_IN_FLIGHT_ERROR = "wamp.error.canceled"

_HELLO = int(MessageType.HELLO)
_WELCOME = int(MessageType.WELCOME)
_ABORT = int(MessageType.ABORT)
_CHALLENGE = int(MessageType.CHALLENGE)
_AUTHENTICATE = int(MessageType.AUTHENTICATE)
_GOODBYE = int(MessageType.GOODBYE)
_ERROR = int(MessageType.ERROR)
_CALL = int(MessageType.CALL)
_RESULT = int(MessageType.RESULT)
#: Prefix of the WELCOME authextra keys Crossbar adds about itself (x_cb_node, x_cb_pid,
#: x_cb_peer, x_cb_worker): not for browsers.
_ROUTER_INTERNAL = "x_cb_"
#: Types that end or restart a session: handled specially after WELCOME.
_SESSION_TYPES = frozenset({_HELLO, _WELCOME, _ABORT, _CHALLENGE, _AUTHENTICATE, _GOODBYE})

#: HELLO.Details keys that carry the client's claimed identity: replaced by the server's.
_AUTH_KEYS = ("authid", "authrole", "authmethods", "authextra")


def rewrite_hello(hello: list[t.Any], identity: Identity) -> list[t.Any]:
    """Return ``hello`` with the client's claimed identity replaced by ``identity``.

    ``authid``, ``authrole``, ``authmethods`` and ``authextra`` in the details
    are replaced (``authmethods`` becomes ``["ticket"]``); every other key, known
    or not, is kept as it was.
    """
    details = {key: value for key, value in hello[2].items() if key not in _AUTH_KEYS}
    details["authmethods"] = ["ticket"]
    details["authid"] = identity.authid
    if identity.authextra:
        details["authextra"] = thaw(identity.authextra)
    return [hello[0], hello[1], details, *hello[3:]]


# --- the cheap look at a frame's head ------------------------------------------
# Each returns (type, first, second): the message's leading unsigned integers,
# None where the element is not one; or None when the head cannot be read.

Head = t.Tuple[int, t.Optional[int], t.Optional[int]]

# JSON's own whitespace and ASCII digits only: Unicode ones (U+00A0, U+0664) would
# read as a head here while the frame is not JSON at all.
_JSON_HEAD = re.compile(
    r"[ \t\n\r]*\[[ \t\n\r]*(\d{1,16})(?![\d.eE])"
    r"(?:[ \t\n\r]*,[ \t\n\r]*(\d{1,16})(?![\d.eE])(?:[ \t\n\r]*,[ \t\n\r]*(\d{1,16})(?![\d.eE]))?)?",
    re.ASCII,
)


def _peek_json(data: t.Any) -> Head | None:
    match = _JSON_HEAD.match(data)
    if match is None:
        return None
    first, second, third = match.groups()
    return int(first), (int(second) if second else None), (int(third) if third else None)


def _peek_binary(data: t.Any, arrays: dict[int, int], uints: dict[int, int], fix_array: range,
                 fix_uint: range) -> Head | None:
    # msgpack and CBOR both start an array with a header byte (and maybe a
    # big-endian length) and encode small unsigned ints the same way: a "fix"
    # range, or a marker byte followed by 1/2/4/8 big-endian bytes.
    found: list[int | None] = []
    try:
        lead = data[0]
        if lead in fix_array:
            pos = 1
        elif lead in arrays:
            pos = 1 + arrays[lead]
        else:
            return None
        while len(found) < 3:
            byte = data[pos]
            if byte in fix_uint:
                found.append(byte - fix_uint.start)
                pos += 1
            elif byte in uints:
                size = uints[byte]
                if pos + 1 + size > len(data):
                    return None
                found.append(int.from_bytes(data[pos + 1:pos + 1 + size], "big"))
                pos += 1 + size
            else:
                break
    except IndexError:
        if not found:
            return None
    if not found:
        return None
    found.extend([None] * (3 - len(found)))
    return t.cast(Head, tuple(found))


_MSGPACK_ARRAYS = {0xDC: 2, 0xDD: 4}
_MSGPACK_UINTS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_CBOR_ARRAYS = {0x98: 1, 0x99: 2, 0x9A: 4, 0x9B: 8, 0x9F: 0}
_CBOR_UINTS = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}


def _peek_msgpack(data: t.Any) -> Head | None:
    return _peek_binary(data, _MSGPACK_ARRAYS, _MSGPACK_UINTS, range(0x90, 0xA0), range(0x00, 0x80))


def _peek_cbor(data: t.Any) -> Head | None:
    return _peek_binary(data, _CBOR_ARRAYS, _CBOR_UINTS, range(0x80, 0x98), range(0x00, 0x18))


_PEEKERS: dict[str, t.Callable[[t.Any], t.Optional[Head]]] = {
    "json": _peek_json,
    "msgpack": _peek_msgpack,
    "cbor": _peek_cbor,
}


class Relay:
    """The WAMP state machine of one relayed browser session (see the module docs).

    :param identity: who the browser is (frozen in the upgrade request), or
        ``None`` to refuse its HELLO with ``wamp.error.not_authorized``.
    :param realm: the only realm a HELLO may name.
    :param serializer: the serializer of the negotiated subprotocol (both legs).
    :param ticket_signer: ``signer(identity) -> ticket``, called when the router
        challenges (it reads the wall clock itself: the ticket is checked on another host).
    :param now: the current monotonic time (seconds; ``tick`` gets the same clock): the login deadline starts here.
    :param login_timeout: seconds from ``now`` until WELCOME must have happened.
    :param max_calls_in_flight: CALLs that may wait for a result at once;
        ``None`` for no limit.
    :param goodbye_timeout: seconds to wait for the GOODBYE reply.
    """

    def __init__(
        self,
        identity: Identity | None,
        realm: str,
        serializer: Serializer,
        ticket_signer: t.Callable[[Identity], str],
        now: float,
        *,
        login_timeout: float = 10.0,
        max_calls_in_flight: int | None = 100,
        goodbye_timeout: float = 5.0,
        limits: t.Any = None,
        debug: bool = False,
    ) -> None:
        if limits is not None:  # what the checked relay gets from the endpoint
            max_calls_in_flight = limits.max_calls_in_flight
        if max_calls_in_flight is not None and max_calls_in_flight < 1:
            raise ValueError("max_calls_in_flight must be at least 1, or None for no limit")
        self.identity = identity
        self.realm = realm
        self.serializer = serializer
        self._ticket_signer = ticket_signer
        self._now = now
        self._login_deadline = now + login_timeout
        self._login_timeout = login_timeout
        self._goodbye_timeout = goodbye_timeout
        self._goodbye_deadline = 0.0
        self._max_calls = max_calls_in_flight
        self._calls: set[int] = set()
        self._challenged = False
        self._goodbye_from_client = False
        self._binary = serializer.binary
        self._peek = _PEEKERS[serializer.name]
        self._progress = b"progress" if serializer.binary else "progress"
        self._state = State.AWAIT_HELLO
        #: Why the session failed (a protocol error of either side, a lost router), or None.
        self.error: BridgeError | None = None
        #: The :class:`Close` that ended the session, once it has ended.
        self.closed_with: Close | None = None
        #: The WELCOME's session id, once established.
        self.session_id: int | None = None
        #: Why the router refused the login (its ABORT), or None.
        self.router_refusal: RouterRefusal | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def calls_in_flight(self) -> int:
        """How many of the browser's CALLs are waiting for their result."""
        return len(self._calls)

    # --- inputs -------------------------------------------------------------

    def from_client(self, data: Data) -> list[Action]:
        """Handle one message from the browser."""
        state = self._state
        if state is State.ESTABLISHED:
            if isinstance(data, str) is self._binary:
                return self._fail_client(self._frame_error(data, "browser"))
            head = self._peek(data)
            if head is None or (head[0] == _CALL and head[1] is None):
                head = self._decode_head(data)
                if head is None:
                    return self._fail_client(t.cast(ProtocolError, self.error))
            kind = head[0]
            if kind == _CALL:
                return self._on_call(data, t.cast(int, head[1]))
            if kind in _SESSION_TYPES:
                return self._client_session_message(kind, data)
            return [SendToRouter(data)]
        if state is State.AWAIT_HELLO:
            return self._on_hello(data)
        if state is State.AUTHENTICATING:
            return self._client_during_login(data)
        if state is State.CLOSING:
            return self._client_while_closing(data)
        raise self._closed_error()

    def from_router(self, data: Data) -> list[Action]:
        """Handle one message from the router."""
        state = self._state
        if state is State.ESTABLISHED:
            if isinstance(data, str) is self._binary:
                return self._fail_router(self._frame_error(data, "router"))
            head = self._peek(data)
            if head is None:
                head = self._decode_head(data)
                if head is None:
                    return self._fail_router(t.cast(ProtocolError, self.error))
            kind = head[0]
            if kind == _RESULT:
                if head[1] in self._calls and not self._is_progress(data):
                    self._calls.discard(head[1])
            elif kind == _ERROR:
                if head[1] == _CALL and self._calls:
                    if head[2] is None:
                        decoded = self._decode_head(data)
                        head = decoded if decoded is not None else head
                    self._calls.discard(head[2])
            elif kind in _SESSION_TYPES:
                return self._router_session_message(kind, data)
            return [SendToClient(data)]
        if state is State.AUTHENTICATING:
            return self._router_during_login(data)
        if state is State.CLOSING:
            return self._router_while_closing(data)
        if state is State.AWAIT_HELLO:
            self.error = RemoteProtocolError("the router spoke before the browser's HELLO", 1011)
            return self._close(1011, "router protocol error")
        raise self._closed_error()

    def client_closed(self) -> list[Action]:
        """The browser's socket ended (however it ended, the session ends with 1000)."""
        if self._state is State.CLOSED:
            return []
        return self._close(1000, "browser went away")

    def router_closed(self, code: int | None = None, reason: str = "") -> list[Action]:
        """The upstream ended, or could not be opened (``code`` None, ``reason`` why)."""
        if self._state is State.CLOSED:
            return []
        if self._state is State.CLOSING:
            return self._close(1000, "session closed")
        detail = f" ({code} {reason})" if code is not None else (f" ({reason})" if reason else "")
        self.error = ConnectionClosed(f"router connection lost{detail}", code, reason)
        return self._close(1011, "router connection lost")

    def tick(self, now: float) -> list[Action]:
        """Let time pass: enforces the login and GOODBYE deadlines."""
        self._now = now
        state = self._state
        if state is State.AWAIT_HELLO and now >= self._login_deadline:
            return self._fail_client(RemoteProtocolError(
                f"no HELLO within {self._login_timeout:g} s of connecting"))
        if state is State.AUTHENTICATING and now >= self._login_deadline:
            self.error = TransportError(f"the router did not complete the login within "
                                        f"{self._login_timeout:g} s")
            return [self._send_client([_ABORT, {"message": str(self.error)}, "wamp.error.timeout"]),
                    *self._close(1011, "login timed out")]
        if state is State.CLOSING and now >= self._goodbye_deadline:
            return self._close(1000, "session closed")
        return []

    def shutdown(self, code: int = 1001) -> list[Action]:
        """The server is stopping: say so to both sides and close with ``code``.

        On a restart (1012, a gunicorn reload) the browser gets no GOODBYE,
        only the close code: wampy.js takes a GOODBYE as final and would not
        reconnect to the new worker.
        """
        state = self._state
        if state is State.CLOSED:
            return []
        message = "the server is shutting down; reconnect later"
        actions: list[Action] = []
        if state is State.ESTABLISHED:
            if code != 1012:
                actions.append(self._send_client([_GOODBYE, {"message": message}, "wamp.close.system_shutdown"]))
            actions.append(self._send_router([_GOODBYE, {"message": message}, "wamp.close.system_shutdown"]))
        elif state is State.AUTHENTICATING:
            actions.append(self._send_client([_ABORT, {"message": message}, "wamp.close.system_shutdown"]))
        return actions + self._close(code, "server shutting down")

    # --- handshake ----------------------------------------------------------

    def _on_hello(self, data: Data) -> list[Action]:
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError as exc:
            return self._fail_client(exc)
        if message[0] != _HELLO:
            name = MessageType(message[0]).name
            return self._fail_client(RemoteProtocolError(f"expected HELLO first, got {name}"))
        details = message[2]
        if not isinstance(details.get("roles"), dict) or not details["roles"]:
            return self._fail_client(RemoteProtocolError("HELLO.Details.roles must be a non-empty dict"))
        if message[1] != self.realm:
            return self._abort_client(
                "wamp.error.no_such_realm",
                f"no realm {message[1]!r} here; connect to realm {self.realm!r}", 1008)
        if self.identity is None:
            return self._abort_client(
                "wamp.error.not_authorized",
                "log in first: this WAMP endpoint does not allow anonymous sessions", 1008)
        try:
            hello = self._send_router(rewrite_hello(message, self.identity))
        except LocalProtocolError as exc:  # decodable, yet not encodable (NaN, nesting at the limit)
            return self._fail_client(RemoteProtocolError(f"the HELLO cannot be passed on: {exc}"))
        self._state = State.AUTHENTICATING
        return [ConnectRouter(), hello]

    def _client_during_login(self, data: Data) -> list[Action]:
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError as exc:
            return self._fail_client(exc)
        if message[0] == _ABORT:
            return [SendToRouter(data), *self._close(1000, "browser aborted the login")]
        name = MessageType(message[0]).name
        return self._fail_client(RemoteProtocolError(f"{name} sent before WELCOME"))

    def _router_during_login(self, data: Data) -> list[Action]:
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError as exc:
            return self._fail_router(exc)
        kind = message[0]
        if kind == _CHALLENGE:
            if message[1] != "ticket":
                return self._fail_router(RemoteProtocolError(
                    f"the router challenged with {message[1]!r}; configure ticket authentication "
                    "(a dynamic authenticator) on the transport the bridge connects to", 1011))
            if self._challenged:
                return self._fail_router(RemoteProtocolError("the router challenged twice", 1011))
            self._challenged = True
            assert self.identity is not None
            ticket = self._ticket_signer(self.identity)
            return [self._send_router([_AUTHENTICATE, ticket, {}])]
        if kind == _WELCOME:
            authid = message[2].get("authid")
            assert self.identity is not None
            if not self._challenged:
                return self._fail_router(RemoteProtocolError(
                    "the router welcomed the session without a ticket challenge; configure ticket "
                    "authentication on the transport the bridge connects to", 1011))
            if authid != self.identity.authid:
                return self._fail_router(RemoteProtocolError(
                    f"the router welcomed authid {authid!r} instead of {self.identity.authid!r}; "
                    "the authenticator must return the ticket's authid", 1011))
            self._state = State.ESTABLISHED
            self.session_id = message[1]
            details = message[2]
            extra = details.get("authextra")
            if isinstance(extra, dict) and any(key.startswith(_ROUTER_INTERNAL) for key in extra):
                # Crossbar puts its node, PID and the bridge's own address in here.
                extra = {key: value for key, value in extra.items() if not key.startswith(_ROUTER_INTERNAL)}
                return [self._send_client([_WELCOME, message[1], {**details, "authextra": extra}])]
            return [SendToClient(data)]
        if kind == _ABORT:
            text = message[1].get("message") if isinstance(message[1], dict) else None
            self.router_refusal = RouterRefusal(str(message[2]), text if isinstance(text, str) else None)
            return [SendToClient(data), *self._close(1008, str(message[2]))]
        name = MessageType(kind).name
        return self._fail_router(RemoteProtocolError(f"the router sent {name} during the login", 1011))

    # --- established --------------------------------------------------------

    def _on_call(self, data: Data, request_id: int) -> list[Action]:
        calls = self._calls
        if self._max_calls is not None:
            if len(calls) >= self._max_calls and request_id not in calls:
                error = [_ERROR, _CALL, request_id, {}, CALLS_IN_FLIGHT_ERROR,
                         [f"too many calls in flight on this session (limit {self._max_calls}); "
                          "wait for results before calling again"],
                         {"limit": self._max_calls}]
                return [self._send_client(error)]
            calls.add(request_id)
        return [SendToRouter(data)]

    def _client_session_message(self, kind: int, data: Data) -> list[Action]:
        if kind == _GOODBYE:
            self._start_closing(from_client=True)
            return [SendToRouter(data)]
        if kind == _ABORT:
            return [SendToRouter(data), *self._close(1000, "browser aborted the session")]
        name = MessageType(kind).name
        return self._fail_client(RemoteProtocolError(f"{name} sent after WELCOME"))

    def _router_session_message(self, kind: int, data: Data) -> list[Action]:
        if kind == _GOODBYE:
            self._start_closing(from_client=False)
            return [SendToClient(data)]
        if kind == _ABORT:
            self.error = RemoteProtocolError("the router sent ABORT after WELCOME", 1011)
            return [SendToClient(data), *self._close(1011, "router aborted the session")]
        name = MessageType(kind).name
        return self._fail_router(RemoteProtocolError(f"the router sent {name} after WELCOME", 1011))

    def _is_progress(self, data: Data) -> bool:
        if self._progress not in data:  # type: ignore[operator]
            return False
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError:
            return False
        return bool(message[2].get("progress"))

    # --- closing ------------------------------------------------------------

    def _start_closing(self, *, from_client: bool) -> None:
        self._state = State.CLOSING
        self._goodbye_from_client = from_client
        self._goodbye_deadline = self._now + self._goodbye_timeout

    def _client_while_closing(self, data: Data) -> list[Action]:
        head = self._peek(data) if isinstance(data, str) is not self._binary else None
        if head is not None and not self._goodbye_from_client and head[0] in (_GOODBYE, _ABORT):
            return [SendToRouter(data), *self._close(1000, "session closed")]
        return []

    def _router_while_closing(self, data: Data) -> list[Action]:
        head = self._peek(data) if isinstance(data, str) is not self._binary else None
        if head is not None and self._goodbye_from_client and head[0] in (_GOODBYE, _ABORT):
            return [SendToClient(data), *self._close(1000, "session closed")]
        return []

    # --- helpers ------------------------------------------------------------

    def _decode_head(self, data: Data) -> Head | None:
        """Slow path: decode the whole frame; record the error and return None if it is bad."""
        try:
            message = self.serializer.loads(data)
        except RemoteProtocolError as exc:
            self.error = exc
            return None
        rest = [value if type(value) is int else None for value in message[1:3]]
        rest.extend([None] * (2 - len(rest)))
        return message[0], rest[0], rest[1]

    def _frame_error(self, data: Data, who: str) -> RemoteProtocolError:
        kind = "text" if isinstance(data, str) else "binary"
        return RemoteProtocolError(f"the {who} sent a {kind} frame on {self.serializer.subprotocol}", 1003)

    def _send_client(self, message: list[t.Any]) -> SendToClient:
        return SendToClient(self.serializer.dumps(message))

    def _send_router(self, message: list[t.Any]) -> SendToRouter:
        return SendToRouter(self.serializer.dumps(message))

    def _abort_client(self, uri: str, message: str, code: int) -> list[Action]:
        return [self._send_client([_ABORT, {"message": message}, uri]), *self._close(code, message)]

    def _fail_client(self, exc: ProtocolError) -> list[Action]:
        """The browser broke the protocol: ABORT it (unless it sent the wrong frame type) and close.

        The spec's rule for a protocol violation is ABORT, in any state.
        """
        self.error = exc
        code = exc.close_code
        if code == 1003:
            return self._close(1003, str(exc))
        return self._abort_client("wamp.error.protocol_violation", str(exc), code)

    def _fail_router(self, exc: ProtocolError) -> list[Action]:
        """The router broke the protocol (or is misconfigured): close the browser with 1011."""
        exc.close_code = 1011
        self.error = exc
        actions: list[Action] = []
        if self._state is State.AUTHENTICATING:
            actions.append(self._send_router([_ABORT, {"message": str(exc)}, "wamp.error.protocol_violation"]))
        return actions + self._close(1011, "router protocol error")

    def _close(self, code: int, reason: str) -> list[Action]:
        self._state = State.CLOSED
        self._calls.clear()
        close = Close(code, reason)
        self.closed_with = close
        return [close]

    def _closed_error(self) -> LocalProtocolError:
        why = f" ({self.closed_with.code} {self.closed_with.reason})" if self.closed_with else ""
        return LocalProtocolError(f"the relay is closed{why}; feed it no more data")
