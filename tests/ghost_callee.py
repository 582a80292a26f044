"""Leave a ghost callee on Crossbar 26.10.1 (run as a script, then SIGSTOP it; see docs: known limits).

One process holds two WAMP sessions: a callee of ``URI`` and a caller whose call
is in flight on it. Stopped (SIGSTOP) past the router's ping timeout, the router
drops both at once, and its ``Dealer.detach`` of the callee fails half way: it
sends ERROR to the caller, whose transport it has just aborted. The callee stays
registered as a ``null`` callee. Prints ``{"callee": id, "caller": id}`` once the
call is in flight. Usage: ``ghost_callee.py URL REALM AUTHID SECRET URI``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time

import websocket


def join(url: str, realm: str, authid: str, secret: str) -> tuple[websocket.WebSocket, int]:
    ws = websocket.create_connection(url, subprotocols=["wamp.2.json"], timeout=30)
    ws.send(json.dumps([1, realm, {"roles": {"caller": {}, "callee": {"features": {"call_canceling": True}}},
                                   "authmethods": ["wampcra"], "authid": authid}]))
    challenge = json.loads(ws.recv())[2]["challenge"]
    signature = base64.b64encode(hmac.new(secret.encode(), challenge.encode(), hashlib.sha256).digest()).decode()
    ws.send(json.dumps([5, signature, {}]))
    welcome = json.loads(ws.recv())
    assert welcome[0] == 2, welcome
    return ws, welcome[1]


def main(url: str, realm: str, authid: str, secret: str, uri: str) -> None:
    callee, callee_id = join(url, realm, authid, secret)
    callee.send(json.dumps([64, 1, {"invoke": "roundrobin"}, uri]))
    assert json.loads(callee.recv())[0] == 65
    caller, caller_id = join(url, realm, authid, secret)
    for request_id in range(1, 9):  # round-robin over every callee: some land on ours
        caller.send(json.dumps([48, request_id, {}, uri, [60]]))
    while json.loads(callee.recv())[0] != 68:  # an INVOCATION: a call is in flight on our callee
        pass
    print(json.dumps({"callee": callee_id, "caller": caller_id}), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:6])
