# SPDX-License-Identifier: Apache-2.0
"""operator3.py - the operator's view, third part (issue 17): the link round
trip measured from heartbeat acks (`girder nodes`, /api/nodes, /metrics),
with a netem delay on one host's link, `girder top` ranking over all of a
node's processes, and tracing with the observer key. Cluster tests ob3_*
(tests.py); docs/cli.md, docs/http.md and docs/cluster.md describe them.
"""

import json
import shutil
import subprocess
import threading
import time

from harness import EXIT_OK, check, wait_until
from http_api import _get, _http_node, _metrics, _sample
from netns import _sh, run_on

WIDE = 60  # seconds: every wait below is for an event, bounded this wide
RTT_MAX_US = 2_000_000  # "plausible" on one host: well under two seconds


def _links(n, only=True):
    """{member: its node.list entry} of the members up, as n sees them."""
    args = ["nodes", "--only"] if only else ["nodes"]
    r = n.cli(*args)
    if r.rc != EXIT_OK or not isinstance(r.data, list):
        return {}
    return {e["name"]: e for e in r.data if isinstance(e, dict) and e.get("state") == "up"}


def _measured(n, names):
    """n's entries for every one of names once each has a measured round trip."""
    ls = _links(n)
    if all(ls.get(m, {}).get("rtt_us", 0) > 0 and ls[m].get("srtt_us", 0) > 0 for m in names):
        return ls
    return None


def test_ob3_rtt(c):
    """Three nodes: every link's round trip is measured from the heartbeat
    acks within a few heartbeat periods, last and smoothed both > 0 and under
    2 s, in `girder nodes --json` (rtt_us, srtt_us), in its text table (RTT
    in ms), in /api/nodes and as girder_link_rtt_seconds on /metrics (last
    and smoothed per peer), which promtool accepts."""
    a = _http_node(c, "a")
    b = c.node("b", seeds=[a])
    x = c.node("c", seeds=[a])
    c.wait_mesh([a, b, x])
    for n in (a, b, x):
        others = [o.name for o in (a, b, x) if o is not n]
        ls = wait_until(f"{n.name} to measure its links' round trips",
                        lambda n=n, others=others: _measured(n, others), WIDE, 0.2)
        for m in others:
            e = ls[m]
            check(0 < e["rtt_us"] < RTT_MAX_US and 0 < e["srtt_us"] < RTT_MAX_US,
                  f"{n.name} -> {m}: plausible round trip: {e}")
        print(f"    {n.name}: " + ", ".join(f"{m} rtt {ls[m]['rtt_us']} us srtt "
                                            f"{ls[m]['srtt_us']} us" for m in others), flush=True)
    r = c.expect(a.cli("nodes", "--only", use_json=False), EXIT_OK)
    lines = r.out.splitlines()
    hdr = [i for i, ln in enumerate(lines) if ln.startswith("LINK")]
    check(len(hdr) == 1, f"one LINK table: {r.out}")
    link = [ln.split() for ln in lines[hdr[0] + 1:] if ln.strip()]
    check(len(link) == 2 and all(ln[5].endswith("ms") for ln in link),
          f"the LINK table's RTT column in ms: {r.out}")
    check(all(len(ln) <= 80 for ln in r.out.splitlines()), f"80 columns: {r.out}")
    st, _, body = _get(a.http + "/api/nodes")
    api = {e["name"]: e for e in json.loads(body)}
    check(st == 200 and all(api[m]["rtt_us"] > 0 and api[m]["srtt_us"] > 0
                            for m in (b.name, x.name)), f"/api/nodes round trips: {body[:600]}")
    text = _metrics(a)
    check("# TYPE girder_link_rtt_seconds gauge" in text, "/metrics: no girder_link_rtt_seconds")
    for m in (b.name, x.name):
        for kind in ("last", "smoothed"):
            v = _sample(text, f'girder_link_rtt_seconds{{peer="{m}",kind="{kind}"}}')
            check(v is not None and 0 < v < RTT_MAX_US / 1e6, f"{m} {kind} round trip: {v}")
    promtool = shutil.which("promtool")
    check(promtool, "promtool not installed (scripts/setup-deps installs Debian's prometheus)")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0, f"promtool check metrics: {p.stdout} {p.stderr}")


def _netem_unavailable(nc):
    """Why `tc qdisc ... netem` cannot be used here, or None (tried on a veth
    pair in the run's bridge namespace)."""
    if shutil.which("tc") is None:
        return "tc (iproute2) is not installed"
    _sh("ip", "-n", nc.netns, "link", "add", "ob3p0", "type", "veth", "peer", "name", "ob3p1")
    try:
        p = _sh("ip", "netns", "exec", nc.netns, "tc", "qdisc", "add", "dev", "ob3p0", "root",
                "netem", "delay", "1ms", check_rc=False)
        if p.returncode != 0:
            return f"the kernel has no netem qdisc ({(p.stderr or p.stdout).strip()})"
        return None
    finally:
        _sh("ip", "-n", nc.netns, "link", "del", "ob3p0", check_rc=False)


def test_ob3_rtt_netem(c):
    """The compose services as three hosts; `tc netem delay 50ms` on host c's
    interface (its outgoing packets): a's smoothed round trip to c rises by
    about the delay (+35..+500 ms over what it was) while a's to b stays as it
    was (under +30 ms); the delay removed, it falls back. Skipped (a SKIPPED
    line) where the kernel has no netem."""
    def body(nc):
        hs = nc.compose_up()
        nc.wait_mesh(hs, timeout=60)
        a, b, x = hs
        why = _netem_unavailable(nc)
        if why:
            print(f"    SKIPPED: {why}", flush=True)
            return
        ls = wait_until("a to measure its links", lambda: _measured(a, [b.name, x.name]), WIDE,
                        0.2)
        base_b, base_x = ls[b.name]["srtt_us"], ls[x.name]["srtt_us"]
        _sh("ip", "netns", "exec", x.ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
            "delay", "50ms")

        def risen():
            e = _links(a).get(x.name, {})
            return e if e.get("srtt_us", 0) >= base_x + 35_000 else None
        e = wait_until("a's smoothed round trip to c to rise by the delay", risen, WIDE, 0.5)
        check(e["srtt_us"] < base_x + 500_000, f"about the delay, not more: {base_x} -> {e}")
        lb = _links(a).get(b.name, {})
        check(0 < lb.get("srtt_us", 0) < base_b + 30_000, f"a -> b unchanged: {base_b} -> {lb}")
        print(f"    a -> c srtt {base_x} us -> {e['srtt_us']} us with netem 50ms; "
              f"a -> b {base_b} us -> {lb['srtt_us']} us", flush=True)
        _sh("ip", "netns", "exec", x.ns, "tc", "qdisc", "del", "dev", "eth0", "root")
        wait_until("a's round trip to c to fall back",
                   lambda: 0 < _links(a).get(x.name, {}).get("srtt_us", 0) < base_x + 20_000,
                   WIDE, 0.5)
    run_on(c, body)


TOP_SUPS = 3  # supervisors of 1,000 idle echo children each
TOP_CHILDREN = 1000


def test_ob3_top_all(c):
    """A member with 3,000 idle processes and one busy echo spawned after
    them (its pid above the first 1,024): `girder top` ranks on each node over
    ALL its processes, so the busy echo is listed, with the largest work of
    b's echo processes, and with messages arriving while top samples it is
    the busiest echo by work/s and msgs/s."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    for k in range(TOP_SUPS):
        spec = {"strategy": "one_for_one",
                "children": [{"id": i, "behaviour": "echo", "spread": True}
                             for i in range(TOP_CHILDREN)]}
        sup = c.expect(b.cli("spawn", "supervisor", json.dumps(spec, separators=(",", ":"))),
                       EXIT_OK).data

        def started(sup=sup):
            w = b.cli("call", sup, '["which_children"]', timeout_ms=20000)
            return isinstance(w.data, list) and len(w.data) == TOP_CHILDREN

        wait_until(f"supervisor #{k + 1}'s children", started, WIDE, 0.2)
    busy = c.expect(b.cli("spawn", "echo"), EXIT_OK).data
    for i in range(20):
        c.expect(a.cli("send", busy, str(i)), EXIT_OK)
    r = c.expect(a.cli("ps", "--node", b.name, timeout_ms=20000), EXIT_OK)
    pids = [e["pid"] for e in r.data]
    check(len(pids) > TOP_SUPS * TOP_CHILDREN and busy in pids[1024:],
          f"the busy echo is past b's first 1,024 pids: {len(pids)} listed")

    stop = threading.Event()

    def feed():
        n = 0
        while not stop.is_set():
            b.cli("send", busy, str(n))
            n += 1

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        def ranked():
            r = a.cli("top", "-i", "1", "--rows", "100000", timeout_ms=20000)
            if r.rc != EXIT_OK:
                return None
            mine = [p for p in r.data["processes"] if p["node"] == b.name
                    and p.get("behaviour") == "echo"]
            top = [p for p in mine if p["pid"] == busy]
            if not top or not top[0].get("work_per_s"):
                return None
            return mine, top[0]
        mine, me = wait_until("top to list the busy echo with a rate", ranked, WIDE, 0.2)
    finally:
        stop.set()
        t.join(30)
    check(me["work"] == max(p["work"] for p in mine), f"largest work of b's echoes: {me}")
    check(mine[0]["pid"] == busy, f"the busiest echo by work/s: {mine[:3]}")
    check(me["work_per_s"] > 0 and me["msgs_per_s"] > 0, f"rates while fed: {me}")
    print(f"    busy echo {busy}: work {me['work']}, {me['work_per_s']:.1f} work/s among "
          f"{len(mine)} echoes of b", flush=True)


def _trace(c, node, key, *args):
    """girder trace ARGS... in the background, as an observer (key) or with
    the cookie (key None)."""
    argv = [c.girder, "-n", node.spec]
    argv += ["--observer-key-file", key] if key else ["--cookie-file", c.cookie_file]
    argv += ["trace"] + list(args)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _head(p):
    import select
    r, _, _ = select.select([p.stdout], [], [], 30)
    check(r, "girder trace printed nothing")
    return p.stdout.readline()


def _events(out):
    import re
    return [ln.split(None, 3) for ln in out.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", ln)]


def _observer(c, node, key, *args, **kw):
    return c.cli("--observer-key-file", key, *args, node=node, cookie_file="", **kw)


EXIT_NOTALLOWED = 6


def test_ob3_observer_trace(c):
    """Tracing with the observer key alone: `girder trace` of a process on
    another node shows its messages and ends by count. Nothing an observer
    does through tracing changes anything: its trace of a process that the
    cookie holder traces ends at once ("busy") and the other trace goes on
    undisturbed; proc.trace without "keep" is not_allowed; proc.trace_read
    with another trace's token is not_allowed and reads nothing (the owner
    still gets the event); on a process that is not a tracer it is badarg and
    the process receives nothing; proc.call to the tracer is not_allowed."""
    key = c.make_cookie("observer.key")
    a = c.node("a", extra=["--observer-key-file", key])
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    pid = c.expect(a.cli("spawn", "--on", b.name, "echo"), EXIT_OK).data
    c.expect(a.cli("rpc", b.name, "proc", "register", '"tw"', json.dumps(pid)), EXIT_OK)
    dest = f"tw@{b.name}"

    # an observer traces
    p = _trace(c, a, key, "--count", "2", "--time", "60000", dest)
    try:
        head = _head(p)
        check(head.startswith("tracing ") and pid in head, f"observer trace header: {head!r}")
        c.expect(a.cli("send", dest, '"one"'), EXIT_OK)
        c.expect(a.cli("send", dest, '"two"'), EXIT_OK)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    ev = _events(out)
    check(p.returncode == 0 and [e[1] for e in ev] == ["in", "in"] and ev[0][3] == '"one"',
          f"observer trace events: {out!r} {err!r}")
    check(out.splitlines()[-1].endswith("ended: count"), f"observer summary: {out!r}")

    # the cookie holder traces; an observer's trace of the same process is busy
    owner = _trace(c, a, None, "--count", "1000", "--time", "60000", dest)
    try:
        _head(owner)
        p = _trace(c, a, key, "--count", "5", "--time", "60000", dest)
        _head(p)
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out.splitlines()[-1].startswith("-- 0 events")
              and out.splitlines()[-1].endswith("ended: busy"),
              f"the observer's trace of a traced process: {out!r} {err!r}")
        c.expect(_observer(c, a, key, "rpc", b.name, "proc", "trace", '"tw"'), EXIT_NOTALLOWED,
                 error="not_allowed", what="proc.trace without keep")
        c.expect(_observer(c, a, key, "rpc", b.name, "proc", "trace", '"tw"',
                           '{"keep": false}'), EXIT_NOTALLOWED, error="not_allowed",
                 what="proc.trace with keep false")
        c.expect(a.cli("send", dest, '"three"'), EXIT_OK)
        wait_until("the echo to count three sends",
                   lambda: a.cli("call", dest, '"count"').data == 3, WIDE, 0.1)
        owner.send_signal(2)  # SIGINT: stop, drain, summary
        out, err = owner.communicate(timeout=30)
    finally:
        if owner.poll() is None:
            owner.kill()
    ev = _events(out)
    check(owner.returncode == 0 and any(e[1] == "in" and e[3] == '"three"' for e in ev),
          f"the owner's trace went on undisturbed: {out!r} {err!r}")
    check(out.splitlines()[-1].endswith("ended: stopped"), f"owner summary: {out!r}")

    # tokens: another trace's tracer cannot be read or stopped by an observer
    t = c.expect(a.cli("rpc", b.name, "proc", "trace", '"tw"', '{"max": 100, "ms": 60000}'),
                 EXIT_OK).data
    check(isinstance(t.get("token"), int) and t["token"] > 0, f"a token: {t}")
    tracer = t["tracer"]
    for op in ('"poll"', '"stop"'):
        c.expect(_observer(c, a, key, "rpc", b.name, "proc", "trace_read", json.dumps(tracer),
                           op, str(t["token"] ^ 1)), EXIT_NOTALLOWED, error="not_allowed",
                 what=f"trace_read {op} with a wrong token")
    c.expect(_observer(c, a, key, "rpc", b.name, "proc", "call", json.dumps(tracer), '"poll"'),
             EXIT_NOTALLOWED, error="not_allowed", what="proc.call to a tracer")
    c.expect(a.cli("send", dest, '"four"'), EXIT_OK)
    r = wait_until("the owner to read its event", lambda: (lambda r: r if r.rc == EXIT_OK and
                   r.data.get("events") else None)(a.cli(
                       "rpc", b.name, "proc", "trace_read", json.dumps(tracer), '"poll"',
                       str(t["token"]))), WIDE, 0.1)
    check(not r.data["done"] and r.data["events"][0][2] == "four",
          f"still tracing, the event not taken by the observer: {r.data}")
    # a process that is not a tracer receives nothing
    before = a.cli("call", dest, '"count"').data
    r = _observer(c, a, key, "rpc", b.name, "proc", "trace_read", json.dumps(pid), '"poll"', "1")
    check(r.rc != EXIT_OK and r.data.get("error") == "badarg", f"not a tracer: {r!r}")
    check(a.cli("call", dest, '"count"').data == before, "the echo received something")
    c.expect(a.cli("rpc", b.name, "proc", "trace_read", json.dumps(tracer), '"stop"',
                   str(t["token"])), EXIT_OK)
