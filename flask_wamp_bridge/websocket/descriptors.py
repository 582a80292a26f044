"""File descriptors: a worker's budget at boot, and what running out (or another resource error) means.

A relayed browser session holds two descriptors (the browser's socket and its
upstream to the router), a plain WebSocket one; the worker itself holds a few
(listeners, the app's peer, logs, gunicorn's heartbeat file). At boot
:func:`check_budget` compares gunicorn's ``worker_connections`` with the
process's ``nofile`` limit: it raises the soft limit up to the hard one when
that is enough, and otherwise warns with the numbers and the fix.

:data:`OS_ERROR_HINTS` is the one table of what a socket error's errno means to
an operator: the accept loop and the relay's upstream connect log its line
instead of a misleading guess ("cannot reach the router" when the worker is
really out of descriptors).
"""

from __future__ import annotations

import errno
import logging
import typing as t

__all__ = [
    "DESCRIPTORS_PER_SESSION",
    "RESERVED_DESCRIPTORS",
    "OS_ERROR_HINTS",
    "OUT_OF_DESCRIPTORS",
    "errno_of",
    "hint_for",
    "nofile_limits",
    "check_budget",
]

log = logging.getLogger(__name__)

#: A relayed browser session: its own socket and its upstream connection to the router.
DESCRIPTORS_PER_SESSION = 2
#: The worker's own: listeners, the app's peer, logs, gunicorn's heartbeat file, the event loop, some slack.
RESERVED_DESCRIPTORS = 32

#: The errnos of "this process or the system has no descriptor left".
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})

_FIX = ("raise the limit (`ulimit -n N` in the shell that starts gunicorn, LimitNOFILE=N in its systemd unit, "
        "nofile in /etc/security/limits.conf or the container's ulimits) or lower --worker-connections")

#: What an errno met on accept or connect means, and what to do: (short name, hint).
OS_ERROR_HINTS: dict[int, tuple[str, str]] = {
    errno.EMFILE: ("out of file descriptors",
                   "the worker reached its nofile limit (2 per relayed browser session): " + _FIX),
    errno.ENFILE: ("out of file descriptors (system-wide)",
                   "the whole system reached fs.file-max: raise it (sysctl fs.file-max) or run fewer sessions"),
    errno.ENOBUFS: ("out of socket buffers", "the kernel has no memory for socket buffers: the host is overloaded"),
    errno.ENOMEM: ("out of memory", "the kernel has no memory for another socket: the host is overloaded"),
    errno.EADDRNOTAVAIL: ("out of local ports",
                          "no free local port toward the router (the ephemeral range, net.ipv4.ip_local_port_range, "
                          "or many sockets in TIME_WAIT): widen the range or spread over more router addresses"),
    errno.ECONNREFUSED: ("connection refused",
                         "nothing listens there: is the router running, and is WAMP_BRIDGE_ROUTER_URL its transport?"),
    errno.EHOSTUNREACH: ("host unreachable",
                         "no route to the router's host: check WAMP_BRIDGE_ROUTER_URL and the network"),
    errno.ENETUNREACH: ("network unreachable", "no route to the router's network: check WAMP_BRIDGE_ROUTER_URL"),
    errno.ETIMEDOUT: ("timed out", "the router's host did not answer: is it up, and does a firewall drop the packets?"),
}


def errno_of(exc: BaseException | None) -> int | None:
    """The errno of ``exc`` or of the OS error it was raised from (``__cause__``/``__context__``), if any."""
    seen = 0
    while exc is not None and seen < 5:
        number = getattr(exc, "errno", None)
        if isinstance(number, int):
            return number
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def hint_for(exc: BaseException | None) -> tuple[str, str] | None:
    """``(short name, hint)`` for the errno behind ``exc`` from :data:`OS_ERROR_HINTS`, or None."""
    number = errno_of(exc)
    return OS_ERROR_HINTS.get(number) if number is not None else None


def nofile_limits() -> tuple[int, int] | None:
    """The process's ``RLIMIT_NOFILE`` (soft, hard), or None where there is none (not POSIX)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return int(soft), int(hard)


def check_budget(worker_connections: int, logger: t.Any = None) -> int:
    """At boot: make sure ``worker_connections`` relayed sessions fit the ``nofile`` limit, or warn.

    Raises the soft limit up to the hard one when that is enough (as Go's runtime does); otherwise logs a
    warning with the numbers and the fix. Returns the (possibly raised) soft limit (-1: unlimited or unknown).
    """
    logger = logger or log
    limits = nofile_limits()
    if limits is None:
        return -1
    soft, hard = limits
    need = worker_connections * DESCRIPTORS_PER_SESSION + RESERVED_DESCRIPTORS
    infinity = _infinity()
    if soft == infinity or soft >= need:
        return -1 if soft == infinity else soft
    if hard == infinity or hard >= need:
        import resource

        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        except (ValueError, OSError):
            pass
        else:
            logger.info("raised the nofile soft limit from %d to %d (hard limit %s) for worker_connections %d "
                        "(%d descriptors per relayed browser session + %d)", soft, need,
                        "unlimited" if hard == infinity else hard, worker_connections, DESCRIPTORS_PER_SESSION,
                        RESERVED_DESCRIPTORS)
            return need
    fits = max(0, (soft - RESERVED_DESCRIPTORS) // DESCRIPTORS_PER_SESSION)
    logger.warning(
        "worker_connections is %d, which needs about %d file descriptors (%d per relayed browser session: its "
        "socket and its upstream to the router, + %d for the worker), but the nofile limit is %d (hard %d): "
        "past about %d sessions the worker cannot accept or connect. Raise the limit to at least %d (`ulimit -n "
        "%d` before gunicorn, LimitNOFILE=%d in a systemd unit, the container's nofile ulimit) or use "
        "--worker-connections %d", worker_connections, need, DESCRIPTORS_PER_SESSION, RESERVED_DESCRIPTORS, soft,
        hard, fits, need, need, need, fits)
    return soft


def _infinity() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover
        return -1
    return int(resource.RLIM_INFINITY)
