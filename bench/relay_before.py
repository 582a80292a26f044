"""The relay as it was before the per-message checks, for ``bench_relay.py`` and ``bench_checks.py``.

Not part of the package. It is the library's own :class:`~flask_wamp_bridge.bridge.relay.Relay` with one
difference: after WELCOME a browser message is forwarded as is, after the cheap look at its head that the relay
always took (CALL ids counted in flight, GOODBYE starts the close), instead of being decoded within bounds and
judged by the per-type table. Login, faults and the router side are the library's code, so the difference a
bench shows is what the checks cost. (The router side's bookkeeping of invocations and subscriptions stays in
both; it is a set update per message.)
"""

from __future__ import annotations

import typing as t

from flask_wamp_bridge.bridge import relay
from flask_wamp_bridge.bridge.checks import SessionChecks
from flask_wamp_bridge.bridge.checks import Verdict
from flask_wamp_bridge.wamp.heads import PEEKERS
from flask_wamp_bridge.wamp.messages import MessageType

_CALL = int(MessageType.CALL)
_GOODBYE = int(MessageType.GOODBYE)


class PassThroughChecks(SessionChecks):
    """Forwards every browser message unread, as the relay did before the checks."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._peek = PEEKERS[self.serializer.name]

    def check(self, data: t.Any, now: float) -> Verdict:
        head = self._peek(data)
        if head is not None:
            if head[0] == _CALL and head[1] is not None:
                self.calls.add(head[1])
            elif head[0] == _GOODBYE:
                return Verdict(forward=data, closing=True)
        return Verdict(forward=data)

    def scrub(self, kind: int, data: t.Any) -> None:
        return None  # RESULT and EVENT details went to the browser as the router sent them


class Relay(relay.Relay):
    """The relay without the per-message checks."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._checks = PassThroughChecks(self.serializer, self._checks.limits, self._now)
