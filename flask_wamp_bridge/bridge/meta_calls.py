"""The few meta-API calls a browser may make, and which topics it may retain events on (pure).

The router's meta API stays closed to browsers: it names other users'
sessions and lets a caller read any topic's history. A page may make only the
calls of :data:`~flask_wamp_bridge.wamp.meta_api.BROWSER_META_CALLS`, each
for a subscription this session holds (the relay tracks them); the relay then
sends the CALL to the bridge's own procedure of the same name (registered by
the app's peer), which answers with authids, never session ids, and checks
again that the caller is subscribed. Every other ``wamp.*`` procedure and any
direct call of the bridge's meta procedures is refused by the relay.

``retain`` on a PUBLISH is allowed only for the topics of
``WAMP_BRIDGE_RETAIN_TOPICS``: a retained event is shown to every later
subscriber, so a page may not plant one anywhere it may publish.
"""

from __future__ import annotations

import dataclasses
import typing as t

from ..wamp.meta_api import BROWSER_META_CALLS
from ..wamp.meta_api import META_PREFIX

__all__ = ["MetaRefusal", "rewrite_meta_call", "META_REFUSED"]

#: Largest WAMP id: what every serializer and JavaScript hold.
_MAX_ID = 2**53
#: The ERROR URI of a refused meta call or retain.
META_REFUSED = "wamp.error.not_authorized"


@dataclasses.dataclass(frozen=True, slots=True)
class MetaRefusal:
    """Why a browser's CALL of a meta procedure is refused (answered with ERROR :data:`META_REFUSED`)."""

    text: str


def rewrite_meta_call(procedure: str, args: t.Any, held: t.Container[int],
                      enabled: bool) -> str | MetaRefusal | None:
    """Judge a browser CALL of ``procedure`` with positional ``args``.

    :param args: a subscription id sent as a whole float (msgpackr and cbor-x encode integers past 2**32 as
        float64) is written back into ``args[0]`` as an int.
    :param held: the subscription ids this session holds.
    :param enabled: whether the app offers history or presence (else every meta call is refused).
    :returns: None for an ordinary procedure (forward it unchanged), the bridge
        procedure to call instead, or a :class:`MetaRefusal`.
    """
    if not procedure.startswith(("wamp.", META_PREFIX)):
        return None
    target = BROWSER_META_CALLS.get(procedure)
    if target is None:
        return MetaRefusal(f"browsers may not call {procedure!r}: the router's meta API is closed to them")
    if not enabled:
        return MetaRefusal(f"{procedure!r} is not offered: the app keeps no event history and shows no presence")
    subscription = args[0] if type(args) is list and args else None
    if type(subscription) is float and subscription.is_integer() and 0 < subscription <= _MAX_ID:
        subscription = args[0] = int(subscription)
    if type(subscription) is not int or subscription not in held:
        return MetaRefusal(f"{procedure!r} needs the id of a subscription this session holds, got {subscription!r}")
    return target
