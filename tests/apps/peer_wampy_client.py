"""A wampy 1.1.0 client for the interop tests, run as its own process.

``import wampy`` monkey-patches the process and configures logging, so it never
runs inside the test process. Usage::

    WAMPYSECRET=... python tests/apps/peer_wampy_client.py URL REALM AUTHID TOPIC

It logs in with WAMP-CRA, registers ``wampy_triple(x)`` (wampy names a
procedure after its method) and subscribes to TOPIC, prints ``{"ready": true}``
and then answers JSON commands read from stdin, one per line, with one JSON
line each on stdout:

- ``{"op": "call", "procedure": p, "args": [...], "kwargs": {...}}`` -> ``{"result": ...}``
  or ``{"error": uri, "args": [...], "kwargs": {...}}``
- ``{"op": "publish", "topic": t, "message": m}`` -> ``{"ok": true}`` (wampy style)
- ``{"op": "quit"}``

Events on TOPIC are written as ``{"event": {"args": [...], "kwargs": {...}}}``.
"""

import json
import sys

import gevent
from gevent.fileobject import FileObject

URL, REALM, AUTHID, TOPIC = sys.argv[1:5]

from wampy.constants import DEFAULT_ROLES  # noqa: E402  (after argv: wampy patches on import)
from wampy.messages import Error  # noqa: E402
from wampy.peers.clients import Client  # noqa: E402
from wampy.roles.callee import callee  # noqa: E402
from wampy.roles.subscriber import subscribe  # noqa: E402


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class InteropClient(Client):
    @callee(invocation_policy="roundrobin")
    def wampy_triple(self, x):
        return x * 3

    @subscribe(topic=TOPIC)
    def on_topic(self, *args, **kwargs):
        kwargs.pop("meta", None)  # wampy adds its own
        emit({"event": {"args": list(args), "kwargs": kwargs}})


def main():
    roles = json.loads(json.dumps(DEFAULT_ROLES))
    roles["authmethods"] = ["wampcra"]
    roles["authid"] = AUTHID
    client = InteropClient(url=URL, realm=REALM, roles=roles, call_timeout=10)
    client.start()
    gevent.sleep(0.5)  # wampy registers and subscribes without waiting for the answers
    emit({"ready": True, "session": client.session.id})
    stdin = FileObject(sys.stdin.fileno(), "r")
    for line in stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            break
        if op == "call":
            response = client.call(command["procedure"], *command.get("args", []), **command.get("kwargs", {}))
            if isinstance(response, Error):
                emit({"error": response.error, "args": response.args_list or [],
                      "kwargs": response.kwargs_dict or {}})
            else:
                emit({"result": response})
        elif op == "publish":
            client.publish(topic=command["topic"], message=command["message"])
            emit({"ok": True})
    client.stop()


if __name__ == "__main__":
    main()
