#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""example_worker - a Girder port in Python.

    girder port start --name worker -- python3 ports/python/example_worker.py
    girder call worker '"hi"'              -> ["echo", "hi", 1]
    girder call worker '["add", 2, 3]'     -> 5
    girder send worker '["ping", PID]'     -> PID gets "pong"
    girder call worker '"crash"'           -> the program exits with status 3
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from girder_port import Port  # noqa: E402

port = Port()
calls = 0


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
    return ["echo", req, calls]


@port.on_message
def on_message(msg):
    if isinstance(msg, list) and len(msg) == 2 and msg[0] == "ping":
        port.send(msg[1], "pong")


print(f"example worker {os.getpid()} ready", file=sys.stderr, flush=True)
port.run()
