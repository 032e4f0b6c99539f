# SPDX-License-Identifier: Apache-2.0
"""girder_port - write a Girder port in Python (docs/ports.md).

A port is a program that girderd starts as a process of the cluster. It talks
to the node over its stdin/stdout: each frame is a 4-byte big-endian length and
one msgpack value shaped like msgpack-RPC:

    [0, Id, Method, Params]   request      (either way)
    [1, Id, Error, Result]    response     (either way; Error nil on success)
    [2, Method, Params]       notification (either way)

Stdout is for frames only: print diagnostics to stderr (they go to the node's
log). When stdin reaches end of file the node wants the port gone: Port.run()
then returns and the program should exit at once.

    from girder_port import Port

    port = Port()

    @port.on_call
    def handle(request):            # girder call PORT-PID-OR-NAME JSON
        return ["echo", request]

    @port.on_message
    def message(msg):               # girder send ... / any process's send
        port.send(msg[1], "pong")   # to a pid (ExtType) or a name "worker@node@host"

    port.run()

Pids and refs arrive as msgpack ExtType values: keep them and pass them back,
never look inside. Requires python3-msgpack (Debian) / msgpack (PyPI).
"""

import struct
import sys

import msgpack

REQUEST, RESPONSE, NOTIFY = 0, 1, 2


class PortClosed(Exception):
    """stdin reached end of file: the node closed the port."""


class RemoteError(Exception):
    """A request of the port failed on the node; args[0] is the reason id."""


class Port:
    def __init__(self, infile=None, outfile=None, max_frame=16 << 20):
        self.inp = infile or sys.stdin.buffer
        self.out = outfile or sys.stdout.buffer
        self.max_frame = max_frame
        self.pid = None       # this port's pid (ExtType), from the "init" notification
        self.node = None      # the node's name
        self.name = None      # the port's name
        self.next_id = 1
        self.queue = []       # frames that arrived while call() waited for its answer
        self.call_handler = None
        self.message_handler = None
        self.publish_handler = None

    # -- decorators -------------------------------------------------------------------------
    def on_call(self, fn):
        """fn(request) -> result, for every call made to the port. An
        exception is answered as the error str(exception)."""
        self.call_handler = fn
        return fn

    def on_message(self, fn):
        """fn(message) for every plain message sent to the port."""
        self.message_handler = fn
        return fn

    def on_publish(self, fn):
        """fn(topic, payload) for every publish on a topic the port subscribed
        to (Port.subscribe)."""
        self.publish_handler = fn
        return fn

    # -- framing ----------------------------------------------------------------------------
    def _read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.inp.read(n - len(data))
            if not chunk:
                raise PortClosed()
            data += chunk
        return data

    def read_frame(self):
        (n,) = struct.unpack(">I", self._read_exact(4))
        if n == 0 or n > self.max_frame:
            raise ValueError(f"frame length {n} out of range")
        return msgpack.unpackb(self._read_exact(n), raw=False, strict_map_key=False)

    def write_frame(self, value):
        body = msgpack.packb(value, use_bin_type=True)
        self.out.write(struct.pack(">I", len(body)) + body)
        self.out.flush()

    # -- what a port can do -----------------------------------------------------------------
    def send(self, dest, term):
        """Send term to dest: a pid, "name" (the port's node) or
        "name@node@host". Dropped silently if nobody is there (as in Erlang)."""
        self.write_frame([NOTIFY, "send", [dest, term]])

    def request(self, method, params):
        """Make a request of the node and wait for its response; frames that
        arrive meanwhile are kept for run()."""
        rid = self.next_id
        self.next_id += 1
        self.write_frame([REQUEST, rid, method, params])
        while True:
            f = self.read_frame()
            if isinstance(f, list) and len(f) == 4 and f[0] == RESPONSE and f[1] == rid:
                if f[2] is not None:
                    raise RemoteError(f[2])
                return f[3]
            self.queue.append(f)

    def call(self, dest, req, timeout_ms=5000):
        """gen_server-style call of a process (pid or local name)."""
        return self.request("call", [dest, req, timeout_ms])

    def register(self, name):
        self.name = name
        return self.request("register", [name])

    def whereis(self, name):
        return self.request("whereis", [name])

    def rpc(self, node, module, function, args=(), timeout_ms=5000):
        """Call module.function(args) on node (this node's name works too),
        as `girder rpc NODE MODULE FUNCTION ARGS` does; returns its result.
        A failure is RemoteError(reason): "undef_module", "undef_function",
        "badarg", "noconnection", "timeout", or the function's own error."""
        return self.request("rpc", [node, module, function, list(args), timeout_ms])

    # -- groups and topics (docs/pubsub.md) -------------------------------------------------
    def join(self, scope, group):
        """Join process group Group of Scope (pg); left when the port ends."""
        return self.request("join", [scope, group])

    def leave(self, scope, group):
        return self.request("leave", [scope, group])

    def members(self, scope, group):
        """The group's members on every node: a list of pids."""
        return self.request("members", [scope, group])

    def subscribe(self, pattern):
        """Subscribe to a topic pattern ("orders.*", "orders.>"): publishes
        arrive at the on_publish handler."""
        return self.request("subscribe", [pattern])

    def unsubscribe(self, pattern):
        return self.request("unsubscribe", [pattern])

    def publish(self, topic, payload, wait=False):
        """Publish payload on topic to every subscriber in the cluster. wait:
        a request, answered {"matched", "delivered", "nodes"} (a bad topic is
        RemoteError("badarg")); else a notification (no answer)."""
        if wait:
            return self.request("publish", [topic, payload])
        self.write_frame([NOTIFY, "publish", [topic, payload]])
        return None

    # -- the loop ---------------------------------------------------------------------------
    def handle(self, f):
        if not isinstance(f, list) or not f:
            return
        if f[0] == NOTIFY and len(f) == 3:
            method, params = f[1], f[2]
            if method == "init":
                self.pid, self.node, self.name = params[0], params[1], params[2]
            elif method == "message" and self.message_handler:
                self.message_handler(params[0])
            elif method == "publish" and self.publish_handler:
                self.publish_handler(params[0], params[1])
        elif f[0] == REQUEST and len(f) == 4 and f[2] == "call":
            rid, req = f[1], f[3][0]
            try:
                result = self.call_handler(req) if self.call_handler else None
                self.write_frame([RESPONSE, rid, None, result])
            except Exception as e:  # answered as the error, the port lives on
                self.write_frame([RESPONSE, rid, str(e), None])

    def run(self):
        """Handle frames until stdin closes; then return (exit at once)."""
        try:
            while True:
                while self.queue:
                    self.handle(self.queue.pop(0))
                self.handle(self.read_frame())
        except PortClosed:
            return
