# SPDX-License-Identifier: Apache-2.0
"""roles - the observer key, JSON log lines and systemd notifications, with real
girderd processes and the real girder CLI (docs/operations.md, "Observer key",
"Logs", "systemd"; docs/protocol.md, "Roles").

Tests (rows ro_* at the end of TESTS in tests.py):
- ro_observer: a CLI holding the observer key reads (nodes, ps, stats, info,
  a read through rpc) and gets exit 6 "not allowed" for kill, send, rpc to a
  module that changes something, join and leave, and the target lives on; a
  wrong observer key is exit 4, so is a node without observer_key_file; an
  unsafe key file is refused by the CLI (exit 4) and by girderd (exit 2).
- ro_tampered_role: a man in the middle (a TCP relay here) rewrites the role
  in the CLI's Hello, observer -> member and member -> observer: the node
  refuses the proof (bad_cookie, exit 4); relayed untouched, the same CLI
  works, so it is the rewrite that is refused.
- ro_json_log: a node with --log-format json writes only JSON lines, each
  with ts, level, node and msg, among them a conn_up line for its peer and a
  nodeup line.
- ro_sdnotify: a datagram socket bound in the test dir as NOTIFY_SOCKET gets
  READY=1, WATCHDOG=1 (WATCHDOG_USEC set) and, on SIGTERM, STOPPING=1; a
  node with a live seed is ready once linked to it, one whose seed never
  answers is ready after ready_wait_seeds_ms, alone.
"""

import json
import os
import re
import signal
import socket
import threading

from harness import EXIT_AUTH, EXIT_OK, check, free_port, wait_until

EXIT_NOTALLOWED = 6
EXIT_CONFIG = 2


def _observer_cli(c, node, key_file, *args, **kw):
    """girder -n NODE --observer-key-file KEY_FILE ARGS... (no cookie)."""
    return c.cli("--observer-key-file", key_file, *args, node=node, cookie_file="", **kw)


def _pid_of(c, node, key, name):
    r = c.expect(_observer_cli(c, node, key, "info", name), EXIT_OK, what=f"info {name}")
    check(isinstance(r.data, dict) and "pid" in r.data, f"info {name}: {r!r}")
    return r.data["pid"]


def test_observer(c):
    """An observer reads but cannot kill, send, rpc a write, join or leave."""
    key = c.make_cookie("observer.key")
    a = c.node("a", extra=["--observer-key-file", key])
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])

    # reads
    r = c.expect(_observer_cli(c, a, key, "nodes"), EXIT_OK, what="observer nodes")
    check({e.get("name") for e in r.data} >= {a.name, b.name}, f"nodes: {r.data}")
    r = c.expect(_observer_cli(c, a, key, "ps"), EXIT_OK, what="observer ps")
    check(any(p.get("name") == "sys" for p in r.data), f"ps lists no sys: {r.data}")
    r = c.expect(_observer_cli(c, a, key, "stats"), EXIT_OK, what="observer stats")
    check(all(v.get("status") == "ok" and "processes" in v["counters"] for v in r.data.values()),
          f"stats (fleet-wide, one entry per node): {r.data}")
    before = _pid_of(c, a, key, "sys")
    c.expect(_observer_cli(c, a, key, "rpc", b.name, "node", "ping"), EXIT_OK,
             what="observer rpc node.ping on b (a read through rpc.call)")
    c.expect(_observer_cli(c, a, key, "ps", b.name), EXIT_OK, what="observer ps of b")

    # writes: exit 6, reason not_allowed, nothing happens
    refused = [
        ("kill", "sys"),
        ("send", "sys", '"hello"'),
        ("rpc", a.name, "proc", "kill", '"sys"'),
        ("rpc", b.name, "proc", "kill", '"sys"'),
        ("join", b.spec),
        ("leave",),
    ]
    for args in refused:
        r = _observer_cli(c, a, key, *args)
        c.expect(r, EXIT_NOTALLOWED, error="not_allowed", what=f"observer {' '.join(args)}")
        check("observer key" in r.data.get("message", ""), f"no clear message: {r!r}")
    r = _observer_cli(c, a, key, "kill", "sys", use_json=False)
    check(r.rc == EXIT_NOTALLOWED and "not allowed" in r.err, f"human message: {r!r}")
    check(_pid_of(c, a, key, "sys") == before, "sys was restarted: the kill ran")
    check(a.running() and b.running(), "a node stopped")
    c.wait_mesh([a, b])
    a.wait_log(r"proc\.kill from observer \S+ refused: not_allowed", 10)
    # the cookie still may
    c.expect(a.cli("rpc", a.name, "node", "ping"), EXIT_OK)

    # authentication: a wrong key, a node without observers, unsafe files
    bad = c.make_cookie("wrong.key")
    c.expect(_observer_cli(c, a, bad, "ping"), EXIT_AUTH, error="bad_cookie", what="wrong key")
    c.expect(_observer_cli(c, b, key, "ping"), EXIT_AUTH, error="bad_role",
             what="b has no observer key")
    loose = c.make_cookie("loose.key", mode=0o644)
    c.expect(_observer_cli(c, a, loose, "ping"), EXIT_AUTH, error="cookie_perm",
             what="a world-readable observer key")
    d = c.node("d", extra=["--observer-key-file", loose], wait=False)
    check(d.wait_exit(20) == EXIT_CONFIG, "girderd took a world-readable observer key")
    d.expected_exit = EXIT_CONFIG
    check(re.search(r"observer key .*readable", d.log_text()), "no reason logged")
    # $GIRDER_OBSERVER_KEY_FILE is the default; --cookie-file overrides it
    r = c.cli("kill", "sys", node=a, cookie_file="", env={"GIRDER_OBSERVER_KEY_FILE": key})
    c.expect(r, EXIT_NOTALLOWED, error="not_allowed", what="GIRDER_OBSERVER_KEY_FILE")
    r = c.cli("--help", use_json=False, timeout_ms=None)
    check(re.search(r"^\s*6\s+not allowed", r.out, re.M), f"--help lists no exit 6: {r.out}")


class Relay:
    """A TCP relay from (addr, port) to a node that applies `rewrite` to the
    first handshake message from the client (length-prefixed bytes in, out)."""

    def __init__(self, addr, node, rewrite):
        self.node, self.rewrite = node, rewrite
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, free_port(addr)))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.rewritten = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                cli, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(cli,), daemon=True).start()

    @staticmethod
    def _recv_exact(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return buf

    def _serve(self, cli):
        try:
            up = socket.create_connection((self.node.addr, self.node.port), timeout=10)
            head = self._recv_exact(cli, 4)
            body = self._recv_exact(cli, int.from_bytes(head, "big"))
            m1 = self.rewrite(head + body)
            if m1 != head + body:
                self.rewritten += 1
            up.sendall(m1)
        except OSError:
            cli.close()
            return

        def pipe(src, dst):
            try:
                while True:
                    d = src.recv(65536)
                    if not d:
                        break
                    dst.sendall(d)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pipe, args=(up, cli), daemon=True).start()
        pipe(cli, up)

    def close(self):
        self.sock.close()


def _hello_role(m1, role):
    """M1 with Hello.role (field 11, varint, tag 0x58) set to role. Hello is the
    Handshake's field 1 (0x0a, one-byte length: a Hello is < 128 bytes);
    protobuf-c writes fields in number order, so an explicit role is last."""
    body = m1[4:]
    check(body[0] == 0x0a and body[1] < 0x80 and len(body) == body[1] + 2,
          f"unexpected M1 layout: {m1.hex()}")
    hello = body[2:]
    if hello.endswith(b"\x58\x01"):
        hello = hello[:-2]
    if role:
        hello += bytes([0x58, role])
    body = bytes([0x0a, len(hello)]) + hello
    return len(body).to_bytes(4, "big") + body


def test_tampered_role(c):
    """A relay that rewrites the CLI's role: refused both ways; the same relay
    passing the bytes untouched works."""
    key = c.make_cookie("observer.key")
    a = c.node("a", extra=["--observer-key-file", key])
    relays = []
    try:
        def via(rewrite):
            r = Relay(a.addr, a, rewrite)
            relays.append(r)
            return f"{a.name}:{r.port}"

        plain = via(lambda m1: m1)
        c.expect(_observer_cli(c, plain, key, "ping"), EXIT_OK, what="observer via the relay")
        c.expect(c.cli("ping", node=plain), EXIT_OK, what="member via the relay")

        to_member = via(lambda m1: _hello_role(m1, 0))
        c.expect(_observer_cli(c, to_member, key, "ping"), EXIT_AUTH, error="bad_cookie",
                 what="observer rewritten as member")
        to_observer = via(lambda m1: _hello_role(m1, 1))
        c.expect(c.cli("ping", node=to_observer), EXIT_AUTH, error="bad_cookie",
                 what="member rewritten as observer")
        check(relays[1].rewritten == 1 and relays[2].rewritten == 1,
              "the relays did not rewrite the role")
        a.wait_log(r"handshake with .* failed: bad_cookie", 10)
        check(a.running(), "a stopped")
    finally:
        for r in relays:
            r.close()


def test_json_log(c):
    """--log-format json: every line a JSON object with ts, level, node and msg;
    the link to b logged once as conn_up, with nodeup."""
    a = c.node("a", extra=["--log-format", "json"])
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])

    def lines():
        out = []
        for ln in a.log_text().splitlines():
            if ln.startswith("==== harness"):
                continue
            out.append(ln)
        return out

    def conn_up():
        return [j for j in map(json.loads, lines())
                if j.get("event") == "conn_up" and j.get("peer") == b.name]

    wait_until("a's conn_up line for b", conn_up, 10)
    check(len(conn_up()) == 1, f"conn_up for b logged {len(conn_up())} times")
    for ln in lines():
        try:
            j = json.loads(ln)
        except ValueError:
            raise AssertionError(f"not a JSON line: {ln!r}") from None
        check(isinstance(j, dict), f"not an object: {ln!r}")
        for k in ("ts", "level", "node", "msg"):
            check(k in j, f"no {k}: {ln!r}")
        check(j["node"] == a.name, f"node {j['node']!r}: {ln!r}")
        check(j["level"] in ("debug", "info", "notice", "warn", "error"), f"level: {ln!r}")
    check(any(json.loads(ln).get("event") == "nodeup" for ln in lines()), "no nodeup line")
    # b stops: the link's end is logged once, with its reason
    b.stop()
    wait_until("a's conn_down line for b",
               lambda: [j for j in map(json.loads, lines())
                        if j.get("event") == "conn_down" and j.get("peer") == b.name
                        and j.get("reason")], 15)


class Notify:
    """A fake NOTIFY_SOCKET: a Unix datagram socket bound in the test dir,
    collecting what one girderd sends."""

    def __init__(self, c, name):
        self.path = os.path.join(c.dir, f"{name}.notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.5)
        self.got = []

    def pump(self):
        try:
            self.got.append(self.sock.recv(4096).decode(errors="replace"))
        except socket.timeout:
            pass
        return True

    def count(self, state):
        return sum(m.split("\n").count(state) for m in self.got)

    def wait(self, state, timeout, n=1):
        wait_until(f"{n} x {state}", lambda: self.pump() and self.count(state) >= n, timeout)

    def close(self):
        self.sock.close()


def _start_notified(c, short, notify, watchdog_usec=None, **kw):
    """c.node(...) with NOTIFY_SOCKET (and WATCHDOG_USEC) in its environment."""
    keys = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["NOTIFY_SOCKET"] = notify.path
    os.environ.pop("WATCHDOG_PID", None)
    if watchdog_usec:
        os.environ["WATCHDOG_USEC"] = str(watchdog_usec)
    else:
        os.environ.pop("WATCHDOG_USEC", None)
    try:
        return c.node(short, **kw)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_sdnotify(c):
    """READY=1 once up, WATCHDOG=1 with WATCHDOG_USEC, STOPPING=1 on SIGTERM,
    through a fake NOTIFY_SOCKET (needs girderd built with libsystemd); with
    seeds, READY=1 waits for a seed, or gives up after ready_wait_seeds_ms."""
    na, nb, nz = Notify(c, "a"), Notify(c, "b"), Notify(c, "z")
    try:
        a = _start_notified(c, "a", na, watchdog_usec=400000)  # a ping every 0.2 s
        na.wait("READY=1", 20)
        a.wait_log(r"ready\b", 5)
        na.wait("WATCHDOG=1", 10, n=3)  # it keeps pinging while the node lives

        # a seed that answers: ready once the link is up
        b = _start_notified(c, "b", nb, seeds=[a])
        nb.wait("READY=1", 20)
        b.wait_log(r"ready: a seed is connected", 5)
        check(nb.count("WATCHDOG=1") == 0, "WATCHDOG=1 without WATCHDOG_USEC")
        # a seed that never answers: ready after ready_wait_seeds_ms, alone
        dead = f"nobody@127.0.0.1:{free_port('127.0.0.1')}"
        z = _start_notified(c, "z", nz, seeds=[dead], extra=["--ready-wait-seeds-ms", "300"])
        nz.wait("READY=1", 20)
        z.wait_log(r"ready: no seed connected, serving alone", 5)

        a.signal(signal.SIGTERM)
        na.wait("STOPPING=1", 20)
        check(a.wait_exit(20) == 0, "a did not stop cleanly")
        a.expected_exit = 0
        order = [m for m in na.got if m in ("READY=1", "STOPPING=1")]
        check(order == ["READY=1", "STOPPING=1"],
              f"READY=1 then STOPPING=1, once each: {na.got}")
    finally:
        for n in (na, nb, nz):
            n.close()
