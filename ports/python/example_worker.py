#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""example_worker - a Girder port in Python.

    girder port start --name worker -- python3 ports/python/example_worker.py
    girder call worker '"hi"'              -> ["echo", "hi", 1]
    girder call worker '["add", 2, 3]'     -> 5
    girder send worker '["ping", PID]'     -> PID gets "pong"
    girder call worker '"crash"'           -> the program exits with status 3
    girder call worker '["join", S, G]'    -> "ok"   (also "leave"; "members" -> [Pid...])
    girder call worker '["subscribe", P]'  -> "ok"   (publishes then kept: "last_pub")
    girder call worker '["publish", T, X]' -> {"matched", "delivered", "nodes"}
    girder call worker '"last_pub"'        -> [Topic, Payload] last received, or nil
    girder call worker '["rpc", N, M, F, A]' -> M.F(A) on node N (Port.rpc); its error
                                             (e.g. "undef_module") as the call's error
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from girder_port import Port  # noqa: E402

port = Port()
calls = 0
last_pub = None


@port.on_call
def on_call(req):
    global calls
    calls += 1
    if req == "crash":
        sys.exit(3)
    if isinstance(req, list) and len(req) == 3 and req[0] == "add":
        return req[1] + req[2]
    if req == "whoami":
        return [port.pid, port.node, port.name]
    if isinstance(req, list) and len(req) == 3 and req[0] in ("join", "leave", "members"):
        return getattr(port, req[0])(req[1], req[2])
    if isinstance(req, list) and len(req) == 2 and req[0] == "subscribe":
        return port.subscribe(req[1])
    if isinstance(req, list) and len(req) == 3 and req[0] == "publish":
        return port.publish(req[1], req[2], wait=True)
    if isinstance(req, list) and len(req) == 5 and req[0] == "rpc":
        return port.rpc(req[1], req[2], req[3], req[4])
    if req == "last_pub":
        return last_pub
    return ["echo", req, calls]


@port.on_message
def on_message(msg):
    if isinstance(msg, list) and len(msg) == 2 and msg[0] == "ping":
        port.send(msg[1], "pong")


@port.on_publish
def on_publish(topic, payload):
    global last_pub
    last_pub = [topic, payload]


print(f"example worker {os.getpid()} ready", file=sys.stderr, flush=True)
port.run()
