# SPDX-License-Identifier: Apache-2.0
"""ports3.py - ports, third part (issue 16): a port's "rpc" request through
both helpers (pt3_rpc) and busy marks set per port (pt3_busy_marks).
docs/ports.md describes what each checks."""

import json
import time

from harness import EXIT_OK, EXIT_USAGE, check, now, wait_until
from ports2 import (PY_FRAMING, PY_WORKER, _c_worker, _call, _counters, _gated_port, _ports,
                    _python, _rss_kb)


def _err(r):
    return r.out + r.err + json.dumps(r.data)


def test_rpc(c):
    """A Python port on a and a C port on b call rpc functions on the other
    node and on their own (request "rpc": sys.version, proc.whereis,
    node.ping); an unknown module is answered undef_module, an unknown
    function undef_function, bad arguments badarg and a node that is not a
    member noconnection, each as the port's call error (the worker answers
    ["error", Reason]), and the ports keep running."""
    exe = _c_worker(c)
    py = _python()
    check(py is not None, "no python3 with msgpack (python3-msgpack): scripts/setup-deps")
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    ppid = c.expect(a.cli("port", "start", "--name", "pw", "--", py, PY_WORKER), EXIT_OK).data
    cpid = c.expect(b.cli("port", "start", "--name", "cw", "--", exe), EXIT_OK).data
    a.wait_log(r"port/pw: example worker \d+ ready", 10)
    b.wait_log(r"port/cw: example C worker \d+ ready", 10)
    pw, cw = f"pw@{a.name}", f"cw@{b.name}"
    version = c.expect(a.cli("rpc", a.name, "sys", "version"), EXIT_OK).data

    for dest, here, there, pid_there in ((pw, a, b, cpid), (cw, b, a, ppid)):
        name_there = "cw" if there is b else "pw"
        got = _call(c, here, dest, ["rpc", there.name, "sys", "version", []])
        check(got == version, f"{dest}: sys.version on {there.name}: {got!r}, want {version!r}")
        got = _call(c, here, dest, ["rpc", there.name, "proc", "whereis", [name_there]])
        check(got == pid_there, f"{dest}: proc.whereis({name_there}) on {there.name}: {got!r}")
        got = _call(c, here, dest, ["rpc", here.name, "node", "ping", []])
        check(got is not None, f"{dest}: node.ping on its own node: {got!r}")
        got = _call(c, here, dest, ["rpc", here.name, "sys", "version", []])
        check(got == version, f"{dest}: sys.version on its own node: {got!r}")
        for req, want in ((["rpc", there.name, "nosuchmod", "f", []], "undef_module"),
                          (["rpc", there.name, "sys", "nosuchfn", []], "undef_function"),
                          (["rpc", here.name, "nosuchmod", "f", []], "undef_module"),
                          (["rpc", here.name, "sys", "nosuchfn", []], "undef_function"),
                          (["rpc", "ghost@127.0.0.1", "sys", "version", []], "noconnection")):
            r = c.expect(here.cli("call", dest, json.dumps(req)), EXIT_OK)
            check(r.data == ["error", want], f"{dest} {req}: want {want}: {r!r}")
    # Bad params straight from a port (the helpers check theirs first).
    r = c.expect(a.cli("call", pw, json.dumps(["rpc", b.name, "sys", "version", "notalist"])),
                 EXIT_OK)
    check(r.data == ["error", "badarg"], f"args not a list: {r!r}")
    check("pw" in _ports(c, a) and "cw" in _ports(c, b), "both ports still run")


_FLOOD = PY_FRAMING + """big = frame([2, 'send', ['slow', b'y' * 65536]])
for i in range(%d):
    out.write(big)
    out.flush()
    time.sleep(0.02)  # a stream, not one burst: see the docstring
print('flood done', file=sys.stderr, flush=True)
sys.stdin.buffer.read()
"""


def test_busy_marks(c):
    """Busy marks per port. The CLI refuses --busy-high outside 4096..4194304
    and --busy-low not below --busy-high (usage errors, nothing started); a
    spawn argument with bad marks (`girder spawn port`, as a supervisor child
    spec's arg) ends the port with reason bad_busy_marks, logged. A port that
    does not read, started with --busy-high 65536 --busy-low 8192, suspends a
    port streaming 12 x 64 KiB (768 KiB, below the default 1 MiB mark, so a
    default port would take it all): the stream stalls until the receiver
    reads, then passes. The stream is paced at 64 KiB per 20 ms: messages
    that reach slow's mailbox before slow's turn are not yet queued for its
    stdin, so an unpaced burst can land whole before the mark is set, and
    then nobody sends to a busy port (docs/ports.md, "Bounds")."""
    py = _python()
    check(py is not None, "no python3 with msgpack (python3-msgpack): scripts/setup-deps")
    a = c.node("a")
    for args, want in ((["--busy-high", "100"], "--busy-high takes bytes"),
                       (["--busy-high", "99999999"], "--busy-high takes bytes"),
                       (["--busy-high", "x"], "--busy-high takes bytes"),
                       (["--busy-high", "65536", "--busy-low", "65536"], "must be below"),
                       (["--busy-low", "2000000"], "must be below")):
        r = a.cli("port", "start", *args, "--", "cat")
        check(r.rc == EXIT_USAGE and want in _err(r), f"port start {args}: {r!r}")
    check(_ports(c, a) == {}, "no port was started")
    mark = a.log_mark()
    arg = {"cmd": "cat", "name": "bad", "busy_high": 65536, "busy_low": 70000}
    c.expect(a.cli("spawn", "port", json.dumps(arg)), EXIT_OK)
    a.wait_log(r"not started: bad port busy marks", 10, mark)
    check("bad" not in _ports(c, a), "the bad port is gone")

    fifo = _gated_port(c, a, "pt3_gate", "--busy-high", "65536", "--busy-low", "8192")
    before = _counters(c, a)
    mark = a.log_mark()
    c.expect(a.cli("port", "start", "--name", "flood", "--", py, "-c", _FLOOD % 12), EXIT_OK)
    wait_until("the flooding port to be suspended",
               lambda: _counters(c, a).get("suspended_now", 0) >= 1, 20)
    t0 = now()
    while now() - t0 < 2:
        time.sleep(0.2)
    check("flood done" not in a.log_since(mark),
          "768 KiB passed a 64 KiB busy mark although the receiver reads nothing")
    with open(fifo, "w"):
        pass
    a.wait_log(r"port/flood: flood done", 30, mark)
    wait_until("no one suspended", lambda: _counters(c, a).get("suspended_now") == 0, 10)
    after = _counters(c, a)
    check(after.get("suspends", 0) > before.get("suspends", 0), f"suspends counted: {after}")
    check("port_overflow" not in a.log_since(mark), "the receiver was never stopped")


_REMOTE_FLOOD = PY_FRAMING + """big = frame([2, 'send', ['slow@%s', b'y' * 65536]])
for i in range(%d):
    out.write(big)
    out.flush()
    time.sleep(0.005)  # a stream (12 MiB/s at most), not one burst: see the docstring
out.write(frame([2, 'send', ['cw@%s', 'done']]))
out.flush()
print('flood done', file=sys.stderr, flush=True)
sys.stdin.buffer.read()
"""


def test_remote_busy(c):
    """A sender on another node is slowed by a busy port. On a, a port
    "slow" does not read (it waits on a FIFO); on b, a port streams 400 x 64
    KiB (25 MiB, three times the 8 MiB cap) to slow@a. a tells b the port is
    busy and b suspends the sending port (b's sys.counters suspended_now 1),
    so the stream stalls: the flood program cannot finish, slow is never
    stopped with port_overflow, a's girderd grows by less than 32 MiB, and
    the a-b link keeps carrying other traffic: `girder ping`, calls from b to
    a C port on a and messages from b to it. Once slow reads, the sender
    resumes (a's "free" notice) and the whole stream passes. The stream is
    paced at 64 KiB per 5 ms: a burst that reaches a faster than a notice can
    get back to b is held by a's 8 MiB cap instead (docs/ports.md, "Bounds")."""
    exe = _c_worker(c)
    py = _python()
    check(py is not None, "no python3 with msgpack (python3-msgpack): scripts/setup-deps")
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    c.expect(a.cli("port", "start", "--name", "cw", "--", exe), EXIT_OK)
    a.wait_log(r"port/cw: example C worker \d+ ready", 10)
    fifo = _gated_port(c, a, "pt3_rgate")
    before = _counters(c, b)
    base = _rss_kb(a.pid)
    amark, bmark = a.log_mark(), b.log_mark()
    c.expect(b.cli("port", "start", "--name", "flood", "--", py, "-c",
                   _REMOTE_FLOOD % (a.name, 400, a.name)), EXIT_OK)
    wait_until("the remote sender to be suspended",
               lambda: _counters(c, b).get("suspended_now", 0) >= 1, 20)
    peak, t0, k = 0, now(), 0
    while now() - t0 < 3:
        c.expect(c.cli("ping", node=a, timeout_ms=5000), EXIT_OK, what="ping a while suspended")
        k += 1
        check(_call(c, b, f"cw@{a.name}", ["add", k, 1]) == k + 1, "a call from b to a")
        c.expect(b.cli("send", f"cw@{a.name}", json.dumps(["m", k])), EXIT_OK)
        peak = max(peak, _rss_kb(a.pid) - base)
        time.sleep(0.2)
    wait_until("b's messages reach a while the sender is suspended",
               lambda: _call(c, a, "cw", "last_msg") == ["m", k], 10)
    cnt = _counters(c, b)
    print(f"    remote sender suspended: a's girderd RSS peak +{peak} KiB; b suspends "
          f"{cnt.get('suspends', 0) - before.get('suspends', 0)}, now {cnt.get('suspended_now')}; "
          f"{k} pings, calls and sends passed meanwhile")
    check(cnt.get("suspended_now", 0) >= 1, f"still suspended: {cnt}")
    check("flood done" not in b.log_since(bmark),
          "the flood finished although its receiver on a reads nothing")
    log = a.log_since(amark)
    check("port_overflow" not in log and "stdin queue above" not in log,
          "the receiver was stopped at the cap instead of slowing its remote sender")
    check("slow" in _ports(c, a) and "flood" in _ports(c, b), "both ports still run")
    check(peak < 32 * 1024, f"a's girderd grew by {peak} KiB")

    # slow reads: the sender resumes, all 25 MiB pass, the last message follows.
    t1 = now()
    with open(fifo, "w"):
        pass
    wait_until("the stream's last message at cw",
               lambda: _call(c, a, "cw", "last_msg") == "done", 120)
    print(f"    25 MiB passed {now() - t1:.1f} s after slow began to read")
    b.wait_log(r"port/flood: flood done", 10, bmark)
    wait_until("no one suspended on b", lambda: _counters(c, b).get("suspended_now") == 0, 15)
    after = _counters(c, b)
    check(after.get("suspends", 0) > before.get("suspends", 0), f"suspends counted: {after}")
    check("port_overflow" not in a.log_since(amark), "the receiver was never stopped")
    check("slow" in _ports(c, a), "the receiver still runs")
