# SPDX-License-Identifier: Apache-2.0
"""fleet.py - the fleet-wide views (`girder nodes`, `ps`, `stats`, which the
contacted node fans out to every member) and `girder forget`. Cluster tests
fl_views, fl_cursor and fl_forget (tests.py); docs/cli.md has the commands.
"""

import json
import os
import re
import time

from harness import EXIT_OK, EXIT_REMOTE, check, now, wait_until

VIEW_TIMEOUT_MS = 4000  # --timeout of the fleet commands: each member gets 2 s


def _names(rows):
    return {e.get("node") for e in rows if isinstance(e, dict)}


def _wide(text):
    return [ln for ln in text.splitlines() if len(ln) > 80]


def test_fleet_views(c):
    """Three nodes: `girder nodes` shows every member with its version,
    uptime and link figures (bytes and messages each way, a measured round
    trip); `girder ps` lists the processes of all three, filtered by name and
    behaviour, sorted, cut to the top N, restricted to a node; `girder stats`
    has one column per node. Then one member is SIGSTOPped: the three
    commands still return within their --timeout and mark it `timeout`."""
    a = c.node("a", detection_ms=20000)  # the stopped node stays "up" on the link
    b = c.node("b", seeds=[a], detection_ms=20000)
    x = c.node("c", seeds=[a], detection_ms=20000)
    c.wait_mesh([a, b, x])

    def fleet_nodes():
        r = a.cli("nodes", timeout_ms=VIEW_TIMEOUT_MS)
        return {e["name"]: e for e in r.data} if r.rc == EXIT_OK else None

    def measured():
        v = fleet_nodes()
        ok = v and all(v[n.name].get("msgs_in", 0) > 0 for n in (b, x))
        return v if ok else None

    # (the round trip, rtt_us, is planned: docs/cluster.md)
    view = wait_until("traffic counted on a's links", measured, 30, 0.5)
    check(set(view) == {a.name, b.name, x.name}, f"nodes lists the three: {view}")
    for n in (a, b, x):
        e = view[n.name]
        check(e.get("status") == "ok" and isinstance(e.get("version"), str)
              and isinstance(e.get("uptime_ms"), int) and e.get("processes", 0) > 0,
              f"{n.short}: status, version, uptime, processes: {e}")
    for n in (b, x):
        e = view[n.name]
        check(e["state"] == "up" and e["bytes_in"] > 0 and e["bytes_out"] > 0
              and e["msgs_in"] > 0 and e["msgs_out"] > 0 and e.get("cipher"),
              f"a's link to {n.short} has traffic both ways: {e}")
    check(view[a.name]["state"] == "self", f"self entry: {view[a.name]}")
    r = a.cli("nodes", use_json=False, timeout_ms=VIEW_TIMEOUT_MS)
    check(r.rc == EXIT_OK and re.search(r"^NAME\s+ADDRESS\s+STATE\s+UPTIME\s+VERSION", r.out, re.M)
          and re.search(r"^LINK\s+BYTES-IN\s+BYTES-OUT", r.out, re.M) and not _wide(r.out),
          f"nodes tables within 80 columns: {r!r}")

    # processes: two named echoes on b, one on c
    for n, name in ((b, "worker1"), (b, "worker2"), (x, "other")):
        pid = c.expect(a.cli("spawn", "--on", n.name, "echo"), EXIT_OK).data
        c.expect(a.cli("rpc", n.name, "proc", "register", json.dumps(name), json.dumps(pid)),
                 EXIT_OK, what=f"register {name}")
    for i in range(5):
        c.expect(b.cli("send", "worker1", str(i)), EXIT_OK)
    r = c.expect(a.cli("ps", timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK, what="ps (fleet)")
    check(_names(r.data) == {a.name, b.name, x.name}, f"ps lists the 3 nodes: {_names(r.data)}")
    check(all(isinstance(e.get("work"), int) and isinstance(e.get("handled"), int)
              for e in r.data), f"ps rows have work and handled: {r.data[:2]}")
    w1 = [e for e in r.data if e.get("name") == "worker1"]
    check(len(w1) == 1 and w1[0]["node"] == b.name and w1[0]["handled"] >= 5
          and w1[0]["work"] >= w1[0]["handled"], f"worker1 on b handled 5: {w1}")
    r = c.expect(a.cli("ps", "--name", "worker*", timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK)
    check(sorted(e["name"] for e in r.data) == ["worker1", "worker2"], f"--name: {r.data}")
    r = c.expect(a.cli("ps", "--behaviour", "echo", "--sort", "handled", "--top", "1",
                       timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK)
    check(len(r.data) == 1 and r.data[0]["name"] == "worker1", f"--sort handled --top 1: {r.data}")
    r = c.expect(a.cli("ps", "--sort", "work", "--top", "3", timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK)
    works = [e["work"] for e in r.data]
    check(len(works) == 3 and works == sorted(works, reverse=True), f"--top 3 by work: {works}")
    r = c.expect(a.cli("ps", "--node", x.name, timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK)
    check(_names(r.data) == {x.name} and "other" in {e.get("name") for e in r.data},
          f"--node c: {r.data}")
    r = a.cli("ps", use_json=False, timeout_ms=VIEW_TIMEOUT_MS)
    check(r.rc == EXIT_OK and re.match(r"PID\s+NAME\s+BEHAVIOUR", r.out) and not _wide(r.out)
          and "worker1" in r.out, f"ps table within 80 columns: {r!r}")
    c.expect(a.cli("ps", "--sort", "colour"), 2, what="ps --sort with an unknown field")
    r = c.expect(a.cli("stats", timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK, what="stats (fleet)")
    check(set(r.data) == {a.name, b.name, x.name}
          and all(v["status"] == "ok" and v["counters"]["processes"] > 0
                  and v["about"]["limits"]["members"][0] == 3 for v in r.data.values()),
          f"stats per node: {r.data}")
    r = a.cli("stats", use_json=False, timeout_ms=VIEW_TIMEOUT_MS)
    check(r.rc == EXIT_OK and "limit: members" and "3/4.1K" in r.out and not _wide(r.out),
          f"stats table within 80 columns with used/limit: {r!r}")

    # one member hangs
    x.sigstop()
    try:
        for what, args in (("nodes", ()), ("ps", ()), ("stats", ())):
            t0 = now()
            r = a.cli(what, *args, timeout_ms=VIEW_TIMEOUT_MS)
            took = now() - t0
            print(f"    {what} with c stopped: exit {r.rc} in {took:.2f} s", flush=True)
            check(took < VIEW_TIMEOUT_MS / 1000 + 2, f"{what} took {took:.2f} s")
            if what == "nodes":
                check(r.rc == EXIT_OK and {e["name"]: e.get("status") for e in r.data}
                      == {a.name: "ok", b.name: "ok", x.name: "timeout"}, f"nodes: {r!r}")
            elif what == "ps":
                check(r.rc == EXIT_REMOTE and _names(r.data) == {a.name, b.name}
                      and re.search(re.escape(x.name) + r": timeout", r.err),
                      f"ps lists a and b, names c as timeout: {r!r}")
            else:
                check(r.rc == EXIT_REMOTE and r.data[x.name]["status"] == "timeout"
                      and r.data[b.name]["status"] == "ok", f"stats marks c: {r!r}")
        r = a.cli("nodes", use_json=False, timeout_ms=VIEW_TIMEOUT_MS)
        check(re.search(re.escape(x.name) + r"\s+\S+\s+timeout", r.out), f"nodes table: {r!r}")
        # restricted to one node: no fan-out, no wait
        r = c.expect(a.cli("ps", "--only", timeout_ms=VIEW_TIMEOUT_MS), EXIT_OK)
        check(_names(r.data) == {a.name}, f"ps --only: {_names(r.data)}")
    finally:
        x.sigcont()


FL_CHILDREN = 5000
FL_SUPS = 5


def _spawn_children(c, node, sups, per_sup):
    """sups supervisors on node, per_sup echo children each (spread over the
    schedulers): the children's pids, once all have started."""
    children = set()
    for k in range(sups):  # a supervisor's spec is one CLI argument
        spec = {"strategy": "one_for_one",
                "children": [{"id": i, "behaviour": "echo", "spread": True}
                             for i in range(per_sup)]}
        sup = c.expect(node.cli("spawn", "supervisor", json.dumps(spec, separators=(",", ":"))),
                       EXIT_OK).data

        def started(sup=sup):
            w = node.cli("call", sup, '["which_children"]', timeout_ms=20000)
            if w.rc != EXIT_OK or not isinstance(w.data, list):
                return None
            pids = [e[1] for e in w.data if isinstance(e, list) and len(e) == 4 and e[1]]
            return pids if len(pids) == per_sup else None

        children |= set(wait_until(f"supervisor #{k + 1}'s children", started, 60, 0.2))
    check(len(children) == sups * per_sup, f"{len(children)} children")
    return children


def _check_listing(rows, children, what):
    """ps --json rows of one node: every child once, pids ascending."""
    pids = [e["pid"] for e in rows]
    check(len(pids) == len(set(pids)), f"{what}: every process listed once")
    missing = children - set(pids)
    check(not missing, f"{what}: misses {len(missing)} of {len(children)}: {sorted(missing)[:5]}")
    keys = [tuple(int(x) for x in p.strip("<>").rsplit(".", 2)[1:]) for p in pids]
    check(all(k1 < k2 for k1, k2 in zip(keys, keys[1:])), f"{what}: pids ascending")


def test_fleet_cursor(c):
    """A member with 5,000 processes: `girder ps` from another node lists
    every one of them exactly once (the fan-out's first page of 1,024, then
    the cursor through rpc.call), pids ascending per node."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    children = _spawn_children(c, b, FL_SUPS, FL_CHILDREN // FL_SUPS)
    t0 = now()
    r = c.expect(a.cli("ps", "--node", b.name, timeout_ms=20000), EXIT_OK, what="ps b")
    print(f"    ps of {len(r.data)} processes on b from a: {now() - t0:.2f} s", flush=True)
    _check_listing(r.data, children, "ps --node b")
    # the whole fleet too, and the table counts the same
    r = c.expect(a.cli("ps", "--behaviour", "echo", use_json=False, timeout_ms=20000), EXIT_OK)
    rows = [ln for ln in r.out.splitlines()[1:] if ln.strip()]
    check(len(rows) == FL_CHILDREN, f"ps --behaviour echo: {len(rows)} rows")


def test_fleet_pages(c):
    """A member with 70,000 processes: more than two pages of 32,768 after the
    first 1,024, so the CLI asks for each next page before it takes the one
    it has (the node builds it meanwhile). Listed from the node itself and
    from another node (through rpc.call): every process once, in order."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    children = _spawn_children(c, b, 70, 1000)
    for via, args in ((b, ["ps", "--only"]), (a, ["ps", "--node", b.name])):
        t0 = now()
        r = c.expect(via.cli(*args, timeout_ms=60000), EXIT_OK, what=" ".join(args))
        print(f"    {' '.join(args)} from {via.name}: {len(r.data)} processes in "
              f"{now() - t0:.2f} s", flush=True)
        _check_listing(r.data, children, " ".join(args))
        check(r.err == "", f"{' '.join(args)}: stderr piped, yet: {r.err[:200]!r}")
    _progress_on_a_terminal(c, b, len(children))


def _progress_on_a_terminal(c, node, n_children):
    """`girder ps --sort pid` with stderr on a pseudo-terminal and stdout to a
    file, the node SIGSTOPped for 1.2 s just after the listing began (so it
    takes over 1 s on any machine): its progress line shows on the terminal,
    is erased at the end, and stdout holds only the table. (Piped stderr
    shows none: the callers above.)"""
    import signal
    import pty
    import subprocess
    import time

    argv = [c.girder, "-n", node.spec, "--cookie-file", c.cookie_file, "--timeout", "60000",
            "ps", "--only", "--sort", "pid"]
    master, slave = pty.openpty()
    out_f = open(os.path.join(c.dir, "ps-tty.out"), "w+")  # a file: the rows never block it
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_f, stderr=slave)
    os.close(slave)
    time.sleep(0.05)
    node.proc.send_signal(signal.SIGSTOP)
    time.sleep(1.2)
    node.proc.send_signal(signal.SIGCONT)
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the CLI closed the terminal's last descriptor
            break
        if not chunk:
            break
        tty += chunk
    p.wait(60)
    out_f.seek(0)
    out = out_f.read()
    out_f.close()
    took = time.monotonic() - t0
    os.close(master)
    text = tty.decode(errors="replace")
    check(p.returncode == EXIT_OK, f"ps with a terminal: exit {p.returncode}: {text[-300:]!r}")
    rows = [ln for ln in out.splitlines()[1:] if ln.strip()]
    check(len(rows) >= n_children, f"ps --sort pid: {len(rows)} rows on stdout")
    check("processes so far" not in out, "progress went to stdout")
    shown = "processes so far" in text
    check(took > 1.0, f"the listing took {took:.2f} s with the node stopped for 1.2 s")
    check(shown, f"a {took:.1f} s listing showed no progress: {text[:200]!r}")
    check(text.endswith("\r\x1b[K"), f"progress line not erased: {text[-80:]!r}")
    print(f"    ps --sort pid with stderr on a terminal: {took:.2f} s, progress shown: {shown}")


def _conns_dialled(n):
    r = n.cli("stats", "--only")
    return int(r.data.get("conns_dialled", 0)) if r.rc == EXIT_OK else None


def test_fleet_forget(c):
    """forget: refused for a member that is up (member_up), unknown names
    are no_member; a member killed -9 and forgotten on a disappears from
    a's and b's lists (b was told), and neither dials it again."""
    a = c.node("a", detection_ms=1000)
    b = c.node("b", seeds=[a], detection_ms=1000)
    x = c.node("c", seeds=[a], detection_ms=1000)
    c.wait_mesh([a, b, x])
    c.expect(a.cli("forget", b.name), EXIT_REMOTE, "member_up", "forget of an up member")
    c.expect(a.cli("forget", "nobody@127.0.0.1"), EXIT_REMOTE, "no_member", "forget unknown")
    c.expect(a.cli("forget", a.name), EXIT_REMOTE, "is_self", "forget itself")
    r = a.cli("forget", b.name, use_json=False)
    check(r.rc == EXIT_REMOTE and "connected" in r.err, f"a clear refusal: {r!r}")

    x.kill9()
    for o in (a, b):
        wait_until(f"{o.short} to see c down",
                   lambda o=o: o.state_of(x) in ("down", "absent"), 20, 0.1)
    mark_a, mark_b = a.log_mark(), b.log_mark()
    r = c.expect(a.cli("forget", x.name), EXIT_OK, what="forget c")
    check(r.data == "ok", f"forget answers ok: {r!r}")
    for o in (a, b):
        wait_until(f"c gone from {o.short}'s list", lambda o=o: o.state_of(x) == "absent", 10)
    a.wait_log(r"forgot " + re.escape(x.name), 5, mark_a)
    b.wait_log(r"forgot " + re.escape(x.name) + r" \(forgotten by a member\)", 5, mark_b)
    # not redialled: the backoff is at most 5 s +-20%, so 7 s without a dial
    # by either node means the member is no longer dialled
    before = (_conns_dialled(a), _conns_dialled(b))
    time.sleep(7)
    after = (_conns_dialled(a), _conns_dialled(b))
    check(None not in before and before == after, f"conns_dialled {before} -> {after}")
    check(c.mesh_ok([a, b]), "a and b still meshed")
    c.expect(a.cli("forget", x.name), EXIT_REMOTE, "no_member", "forget twice")


def test_fleet_info(c):
    """`girder info` of a supervised process on another node: its links and
    monitors, its supervisor, the groups it joined and the topics it
    subscribed to."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    spec = {"strategy": "one_for_one", "children": [{"id": "w", "behaviour": "echo"}]}
    sup = c.expect(a.cli("spawn", "--on", b.name, "supervisor",
                         json.dumps(spec, separators=(",", ":"))), EXIT_OK).data

    def child():
        w = a.cli("call", sup, '["which_children"]')
        pids = [e[1] for e in (w.data or []) if isinstance(e, list) and len(e) == 4 and e[1]]
        return pids[0] if w.rc == EXIT_OK and pids else None

    pid = wait_until("the supervisor's child", child, 20, 0.1)
    c.expect(a.cli("rpc", b.name, "pubsub", "join", '"app"', '"workers"', json.dumps(pid)),
             EXIT_OK, what="join")
    c.expect(a.cli("rpc", b.name, "pubsub", "subscribe", json.dumps(pid), '"orders.*"'),
             EXIT_OK, what="subscribe")
    r = c.expect(a.cli("info", pid), EXIT_OK, what="info of the child from a")
    d = r.data
    check(d.get("supervisor") == sup and sup in d.get("links", []), f"supervisor: {d}")
    check(d.get("groups") == [["app", "workers"]] and d.get("topics") == ["orders.*"],
          f"groups and topics: {d}")
    check(isinstance(d.get("work"), int) and d.get("behaviour") == "echo", f"info: {d}")
    r = c.expect(a.cli("info", sup), EXIT_OK, what="info of the supervisor")
    check(r.data.get("supervisor") is None and pid in r.data.get("links", [])
          and r.data.get("groups") == [] and r.data.get("topics") == [],
          f"the supervisor's own info: {r.data}")
    r = a.cli("info", pid, use_json=False)
    check(r.rc == EXIT_OK and re.search(r"^supervisor\s+<", r.out, re.M)
          and re.search(r"^topics\s+\[\"orders\.\*\"\]", r.out, re.M), f"info table: {r!r}")
    c.expect(a.cli("info", f"nobody@{b.name}"), EXIT_REMOTE, "noproc", "info of an unknown name")


def _trace_cli(c, node, *args):
    import subprocess
    argv = [c.girder, "-n", node.spec, "--cookie-file", c.cookie_file, "trace"] + list(args)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _first_line(p, timeout):
    import select
    r, _, _ = select.select([p.stdout], [], [], timeout)
    check(r, "girder trace printed nothing")
    return p.stdout.readline()


def test_fleet_trace(c):
    """`girder trace` of a process on another node: the messages it receives
    (and the call it serves) and the reply it sends, live; it ends by itself
    after --count events. With --rate 2, a burst of 20 messages is mostly
    dropped and counted: events + dropped = everything it received and sent;
    Ctrl-C stops it cleanly."""
    import signal
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    pid = c.expect(a.cli("spawn", "--on", b.name, "echo"), EXIT_OK).data
    c.expect(a.cli("rpc", b.name, "proc", "register", '"tw"', json.dumps(pid)), EXIT_OK)
    dest = f"tw@{b.name}"

    p = _trace_cli(c, a, "--count", "4", "--time", "60000", dest)
    try:
        head = _first_line(p, 20)
        check(head.startswith("tracing ") and pid in head, f"trace header: {head!r}")
        c.expect(a.cli("send", dest, '"one"'), EXIT_OK)
        c.expect(a.cli("send", dest, '"two"'), EXIT_OK)
        r = c.expect(a.cli("call", dest, '"count"'), EXIT_OK, what="call the traced process")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    lines = out.splitlines()
    print("    " + "\n    ".join(lines), flush=True)
    check(p.returncode == 0, f"trace exit {p.returncode}: {err!r}")
    ev = [ln.split(None, 3) for ln in lines if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", ln)]
    kinds = [e[1] for e in ev]
    check(kinds == ["in", "in", "call", "out"], f"events in order: {kinds}")
    check(ev[0][3] == '"one"' and ev[1][3] == '"two"' and ev[2][3].startswith('["$call"')
          and ev[3][3].startswith('["$reply"') and r.rc == EXIT_OK, f"terms: {ev}")
    check(all(len(ln) <= 80 for ln in lines), "trace lines within 80 columns")
    check(lines[-1].startswith("-- 4 events, 0 dropped") and lines[-1].endswith("ended: count"),
          f"summary: {lines[-1]!r}")

    # the rate limit: 2 a second, a burst of 20 sends and a call
    p = _trace_cli(c, a, "--count", "1000", "--time", "60000", "--rate", "2", dest)
    try:
        head = _first_line(p, 20)
        check(head.startswith("tracing "), f"trace header: {head!r}")
        t0 = now()
        for i in range(20):
            c.expect(a.cli("send", dest, str(i)), EXIT_OK)
        c.expect(a.cli("call", dest, '"count"'), EXIT_OK)  # all 20 handled before it
        took = now() - t0
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    lines = out.splitlines()
    m = re.match(r"-- (\d+) events, (\d+) dropped over the rate, (\d+) lost; ended: (\w+)",
                 lines[-1] if lines else "")
    check(p.returncode == 0 and m, f"summary after Ctrl-C: {out!r} {err!r}")
    events, dropped, ended = int(m.group(1)), int(m.group(2)), m.group(4)
    print(f"    rate 2/s over {took:.1f} s: {events} events, {dropped} dropped", flush=True)
    check(ended == "stopped", f"ended by Ctrl-C: {lines[-1]!r}")
    check(events + dropped == 22, f"20 sends + a call and its reply: {events} + {dropped}")
    check(2 <= events <= 2 * (int(took) + 2), f"at most 2 a second: {events} in {took:.1f} s")
    check(dropped > 0, "some were dropped")
    # a process that exits ends its trace
    p = _trace_cli(c, a, "--time", "60000", dest)
    try:
        _first_line(p, 20)
        c.expect(a.cli("kill", dest), EXIT_OK)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    check(p.returncode == 0 and out.rstrip().endswith("ended: exited"), f"after kill: {out!r}")
    c.expect(a.cli("trace", f"nobody@{b.name}"), EXIT_REMOTE, "noname", "trace of an unknown name")
