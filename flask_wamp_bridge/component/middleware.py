"""Hooks around procedures and event handlers, the Flask way; the wrapper each handler runs in.

Per invocation, in an app context with ``g.wamp_details`` and ``g.wampy``:

1. ``before_call`` hooks, in the order declared; one that returns a value
   other than ``None`` answers the call with it (the rest, and the procedure,
   are skipped); one that raises (e.g. an
   :class:`~flask_wamp_bridge.errors.ApplicationError`) refuses it;
2. the arguments are checked against the type hints (:mod:`.validation`);
3. the procedure runs;
4. an exception from 1 to 3 goes to the ``call_errorhandler`` registered for
   the nearest class in its MRO, whose return value becomes the result (or it
   raises: the caller gets that error);
5. ``after_call`` hooks, in reverse order, each getting the result and
   returning the result to send;
6. dataclasses and pydantic models in the result become plain data.

Events run ``before_event`` hooks (one that raises drops the event), the
argument check (a failure is logged and drops the event) and the handler,
then ``after_event`` hooks in reverse order.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import typing as t

from flask import Flask
from flask import g

from ..errors import ApplicationError
from .validation import Validator
from .validation import to_plain

__all__ = ["Hooks", "procedure_runner", "event_runner"]

log = logging.getLogger("flask_wamp_bridge.middleware")

Hook = t.Callable[[], t.Any]
AfterHook = t.Callable[[t.Any], t.Any]
ErrorHandler = t.Callable[[t.Any], t.Any]


@dataclasses.dataclass
class Hooks:
    """The hooks a :class:`~flask_wamp_bridge.WampBridge` declares (lists, in declaration order)."""

    before_call: list[Hook] = dataclasses.field(default_factory=list)
    after_call: list[AfterHook] = dataclasses.field(default_factory=list)
    call_errorhandlers: dict[type[BaseException], ErrorHandler] = dataclasses.field(default_factory=dict)
    before_event: list[Hook] = dataclasses.field(default_factory=list)
    after_event: list[Hook] = dataclasses.field(default_factory=list)

    def errorhandler_for(self, exc: BaseException) -> ErrorHandler | None:
        handlers = self.call_errorhandlers
        if not handlers:
            return None
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return handler
        return None


def procedure_runner(fn: t.Callable[..., t.Any], app_ref: t.Callable[[], Flask | None], wampy: t.Any,
                     hooks: Hooks, validator: Validator | None,
                     details: t.Callable[[], t.Any]) -> t.Callable[..., t.Any]:
    """``fn`` as the peer calls it: app context, hooks, argument check, plain result."""

    @functools.wraps(fn)
    def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
        app = app_ref()
        if app is None:
            raise RuntimeError("the Flask app is gone")
        with app.app_context():
            g.wamp_details = details()
            g.wampy = wampy
            try:
                result = None
                for hook in hooks.before_call:
                    result = hook()
                    if result is not None:
                        break
                else:
                    if validator is not None:
                        args, kwargs = validator(args, kwargs)  # type: ignore[assignment]
                    result = fn(*args, **kwargs)
            except Exception as exc:
                handler = hooks.errorhandler_for(exc)
                if handler is None:
                    raise
                result = handler(exc)
            for after in reversed(hooks.after_call):
                result = after(result)
            return to_plain(result)

    return run


def event_runner(fn: t.Callable[..., t.Any], app_ref: t.Callable[[], Flask | None], wampy: t.Any,
                 hooks: Hooks, validator: Validator | None,
                 details: t.Callable[[], t.Any]) -> t.Callable[..., t.Any]:
    """``fn`` as the peer delivers events to it: app context, hooks, argument check (a failure drops the event)."""

    @functools.wraps(fn)
    def run(*args: t.Any, **kwargs: t.Any) -> None:
        app = app_ref()
        if app is None:
            raise RuntimeError("the Flask app is gone")
        with app.app_context():
            event = g.wamp_details = details()
            g.wampy = wampy
            try:
                for hook in hooks.before_event:
                    hook()
            except ApplicationError as exc:
                log.info("event on %r dropped by a before_event hook: %s", getattr(event, "topic", None), exc)
                return
            if validator is not None:
                try:
                    args, kwargs = validator(args, kwargs)  # type: ignore[assignment]
                except ApplicationError as exc:
                    log.warning("event on %r dropped: %s", getattr(event, "topic", None), exc.args[0])
                    return
            fn(*args, **kwargs)
            for after in reversed(hooks.after_event):
                after()

    return run
