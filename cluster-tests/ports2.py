# SPDX-License-Identifier: Apache-2.0
"""ports2.py - ports, second part (issue 16): the C helper's example worker as
a port (pt2_c_worker), groups and topics from ports through both helpers
(pt2_pubsub), and backpressure toward senders before a port's queue cap
(pt2_backpressure). docs/ports.md describes what each checks."""

import json
import os
import subprocess
import sys
import time

from harness import EXIT_OK, check, now, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
PY_WORKER = os.path.join(HERE, "..", "ports", "python", "example_worker.py")


def _c_worker(c):
    exe = os.path.join(c.build, "ports", "c", "girder-port-example")
    check(os.access(exe, os.X_OK), f"{exe} is not built")
    return exe


def _python():
    for py in (sys.executable, "/usr/bin/python3"):
        if py and subprocess.run([py, "-c", "import msgpack"], capture_output=True).returncode == 0:
            return py
    return None


def _ports(c, n):
    r = c.expect(n.cli("port", "list"), EXIT_OK, what="port list")
    return {p["name"]: p for p in r.data}


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(ln.startswith("State:") and "Z" in ln.split()[1] for ln in f)
    except FileNotFoundError:
        return False


def _call(c, n, dest, req):
    return c.expect(n.cli("call", dest, json.dumps(req)), EXIT_OK, what=f"call {dest} {req}").data


def test_c_worker(c):
    """The C helper's example worker (ports/c/example_worker.c) started as a
    port with `girder port start --name cw -- PATH` answers `girder call` from
    another node, gets plain messages, sends to a name (another C port), answers
    an unknown request with an error; its exit status becomes the port's exit
    and `girder kill` leaves no program behind."""
    exe = _c_worker(c)
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    pid = c.expect(a.cli("port", "start", "--name", "cw", "--", exe), EXIT_OK).data
    a.wait_log(r"port/cw: example C worker \d+ ready", 10)
    check(_call(c, b, f"cw@{a.name}", "hi") == ["echo", "hi", 1], "echo from b")
    check(_call(c, b, f"cw@{a.name}", ["add", 2, 3]) == 5, "add from b")
    who = _call(c, a, "cw", "whoami")
    check(who == [pid, a.name, "cw"], f"whoami: {who!r} (pid {pid})")
    check(_call(c, b, f"cw@{a.name}", "count") == 4, "four calls counted")
    r = b.cli("call", f"cw@{a.name}", '{"x": 1}')
    check("unknown_request" in (r.out + r.err + json.dumps(r.data)), f"an error answer: {r!r}")

    # Plain messages in, and a send from the port to a name.
    c.expect(b.cli("send", f"cw@{a.name}", '"hello"'), EXIT_OK)
    wait_until("cw got the message", lambda: _call(c, a, "cw", "last_msg") == "hello", 5)
    c.expect(a.cli("port", "start", "--name", "cw2", "--", exe), EXIT_OK)
    a.wait_log(r"port/cw2: example C worker \d+ ready", 10)
    check(_call(c, a, "cw", ["send", "cw2", {"from": "cw"}]) == "ok", "send via cw")
    wait_until("cw2 got cw's message",
               lambda: _call(c, a, "cw2", "last_msg") == {"from": "cw"}, 5)

    # Exit status 3 is the port's exit; kill leaves nothing behind.
    mark = a.log_mark()
    b.cli("call", f"cw2@{a.name}", '"crash"')
    a.wait_log(r"port/cw2: program exited \(status 3\)", 10, mark)
    ospid = _ports(c, a)["cw"]["os_pid"]
    check(_alive(ospid), "cw's program runs")
    c.expect(a.cli("kill", "cw"), EXIT_OK)
    wait_until("cw's program gone", lambda: not _alive(ospid), 10)


def test_pubsub(c):
    """Groups and topics from ports, through both helpers: a C port on a and a
    Python port on b join a process group (members on every node list both),
    subscribe to topic patterns and get what `girder pub` publishes on either
    node; each publishes and the other receives; a bad topic is badarg;
    leaving and a port's death take its membership away."""
    exe = _c_worker(c)
    py = _python()
    check(py is not None, "no python3 with msgpack (python3-msgpack): scripts/setup-deps")
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    cpid = c.expect(a.cli("port", "start", "--name", "cw", "--", exe), EXIT_OK).data
    ppid = c.expect(b.cli("port", "start", "--name", "pw", "--", py, PY_WORKER), EXIT_OK).data
    a.wait_log(r"port/cw: example C worker \d+ ready", 10)
    b.wait_log(r"port/pw: example worker \d+ ready", 10)
    cw, pw = f"cw@{a.name}", f"pw@{b.name}"

    check(_call(c, b, cw, ["join", "app", "workers"]) == "ok", "C port joins")
    check(_call(c, a, pw, ["join", "app", "workers"]) == "ok", "Python port joins")
    wait_until("both members seen from the C port",
               lambda: sorted(_call(c, a, cw, ["members", "app", "workers"])) ==
               sorted([cpid, ppid]), 10)
    wait_until("both members seen from the Python port",
               lambda: sorted(_call(c, b, pw, ["members", "app", "workers"])) ==
               sorted([cpid, ppid]), 10)
    r = c.expect(a.cli("rpc", a.name, "pubsub", "members", '"app"', '"workers"'), EXIT_OK)
    check(r.data == [cpid], f"a's local members: {r!r}")

    check(_call(c, a, cw, ["subscribe", "orders.*"]) == "ok", "C port subscribes")
    check(_call(c, b, pw, ["subscribe", "orders.>"]) == "ok", "Python port subscribes")
    # `girder pub` on b reaches the subscriber on a (and b's own).
    wait_until("a publish from b reaches both ports",
               lambda: c.expect(b.cli("pub", "orders.eu", '{"id": 7}'), EXIT_OK) and
               _call(c, a, cw, "last_pub") == ["orders.eu", {"id": 7}] and
               _call(c, b, pw, "last_pub") == ["orders.eu", {"id": 7}], 10)
    # Each port publishes; the other gets it.
    res = _call(c, b, pw, ["publish", "orders.us", 5])
    check(isinstance(res, dict) and "matched" in res, f"publish answer: {res!r}")
    wait_until("the Python port's publish reaches the C port",
               lambda: _call(c, a, cw, "last_pub") == ["orders.us", 5], 10)
    check(_call(c, a, cw, ["publish", "orders.asia", "z"]) == "ok", "C publish")
    wait_until("the C port's publish reaches the Python port",
               lambda: _call(c, b, pw, "last_pub") == ["orders.asia", "z"], 10)
    # A pattern the C port does not match: nothing new for it.
    check(_call(c, a, cw, ["publish", "orders.eu.new", 1]) == "ok", "deep publish")
    wait_until("orders.> matches orders.eu.new",
               lambda: _call(c, b, pw, "last_pub") == ["orders.eu.new", 1], 10)
    check(_call(c, a, cw, "last_pub") == ["orders.asia", "z"], "orders.* does not match a.b.c")
    r = b.cli("call", pw, json.dumps(["publish", "bad..topic", 1]))
    check("badarg" in (r.out + r.err + json.dumps(r.data)), f"bad topic: {r!r}")

    # Leaving, then dying, takes the membership away.
    check(_call(c, b, cw, ["leave", "app", "workers"]) == "ok", "C port leaves")
    wait_until("only the Python port is a member",
               lambda: _call(c, a, cw, ["members", "app", "workers"]) == [ppid], 10)
    c.expect(b.cli("kill", "pw"), EXIT_OK)
    wait_until("no member left after the Python port died",
               lambda: _call(c, a, cw, ["members", "app", "workers"]) == [], 10)


# The start of a Python port program that writes frames: the {packet, 4}
# framing of docs/ports.md (frame(v)) and its stdout (out).
PY_FRAMING = """
import struct, sys, time
import msgpack
def frame(v):
    b = msgpack.packb(v, use_bin_type=True)
    return struct.pack('>I', len(b)) + b
out = sys.stdout.buffer
"""

_FLOOD = PY_FRAMING + """big = frame([2, 'send', ['slow', b'y' * 65536]])
for i in range(%d):
    out.write(big)
out.write(frame([2, 'send', ['cw', 'done']]))
out.flush()
print('flood done', file=sys.stderr, flush=True)
sys.stdin.buffer.read()
"""


def _gated_port(c, node, gate, *opts):
    """Start port "slow" on node (port start options opts): a `cat` that
    reads nothing until the FIFO c.dir/gate is opened for writing, then reads
    all. Returns the FIFO's path (open it, `open(fifo, "w")`, to let it read)."""
    fifo = os.path.join(c.dir, gate)
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    c.expect(node.cli("port", "start", "--name", "slow", *opts, "--", "sh", "-c",
                      f"cat {fifo} >/dev/null; exec cat >/dev/null"), EXIT_OK)
    wait_until("slow runs", lambda: _ports(c, node).get("slow", {}).get("os_pid"), 10)
    return fifo


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _counters(c, n):
    return c.expect(n.cli("rpc", n.name, "sys", "counters"), EXIT_OK, what="sys counters").data


def test_backpressure(c):
    """A port whose program does not read (it waits on a FIFO first) while
    another port streams 400 x 64 KiB (25 MiB, three times the 8 MiB cap) to
    it: the receiver is marked busy and the sending port is suspended
    (sys.counters suspended_now 1), so the stream stalls: the flood program
    cannot finish, the receiver is never stopped with port_overflow,
    girderd's RSS grows by less than 32 MiB and `girder ping` answers
    throughout. Once the receiver reads, the sender resumes and the whole
    stream passes (its final message reaches the C worker "cw"), the
    suspension ends."""
    exe = _c_worker(c)
    py = _python()
    check(py is not None, "no python3 with msgpack (python3-msgpack): scripts/setup-deps")
    a = c.node("a")
    c.expect(a.cli("port", "start", "--name", "cw", "--", exe), EXIT_OK)
    a.wait_log(r"port/cw: example C worker \d+ ready", 10)
    fifo = _gated_port(c, a, "pt2_gate")
    before = _counters(c, a)
    base = _rss_kb(a.pid)
    mark = a.log_mark()
    c.expect(a.cli("port", "start", "--name", "flood", "--", py, "-c", _FLOOD % 400), EXIT_OK)
    wait_until("the flooding port to be suspended",
               lambda: _counters(c, a).get("suspended_now", 0) >= 1, 20)
    peak, t0 = 0, now()
    while now() - t0 < 3:
        c.expect(c.cli("ping", node=a, timeout_ms=5000), EXIT_OK, what="ping while suspended")
        peak = max(peak, _rss_kb(a.pid) - base)
        time.sleep(0.2)
    cnt = _counters(c, a)
    log = a.log_since(mark)
    print(f"    suspended sender: girderd RSS peak +{peak} KiB; suspends "
          f"{cnt.get('suspends', 0) - before.get('suspends', 0)}, now {cnt.get('suspended_now')}")
    check(cnt.get("suspended_now", 0) >= 1, f"still suspended: {cnt}")
    check("flood done" not in log, "the flood finished although its receiver reads nothing")
    check("port_overflow" not in log and "stdin queue above" not in log,
          "the receiver was stopped at the cap instead of slowing its sender")
    check("slow" in _ports(c, a) and "flood" in _ports(c, a), "both ports still run")
    check(peak < 32 * 1024, f"girderd grew by {peak} KiB")

    # The receiver reads: the sender resumes, all 25 MiB pass, in order.
    with open(fifo, "w"):
        pass
    wait_until("the stream's last message at cw",
               lambda: _call(c, a, "cw", "last_msg") == "done", 60)
    a.wait_log(r"port/flood: flood done", 10, mark)
    wait_until("no one suspended", lambda: _counters(c, a).get("suspended_now") == 0, 10)
    after = _counters(c, a)
    check(after.get("suspends", 0) > before.get("suspends", 0), f"suspends counted: {after}")
    log = a.log_since(mark)
    check("port_overflow" not in log, "the receiver was never stopped")
    check("slow" in _ports(c, a), "the receiver still runs")
