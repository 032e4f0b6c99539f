# SPDX-License-Identifier: Apache-2.0
"""flood - a connection flood without the cookie, and what it must not break.

Run as a program it is the flooder: from one source address it opens N TCP
connections to a node and never sends a byte (half-open handshakes); every
connection the node closes is reopened 20 ms later; after SECONDS it prints
one JSON line of totals and exits.

    python3 cluster-tests/flood.py HOST PORT --source 127.0.0.50 --conns 5000
                                   --seconds 20 [--reconnect-ms 20]

As a module it offers `run_flood(c, ...)`, used by the cluster test r_flood
(tests.py) and by the figures command bench/flood: a cluster of two nodes, the
flood against the first, `girder ping` from the operator's address meanwhile,
and a member killed (-9) and restarted in the middle, with the share of pings
that succeeded, the member's rejoin time and how many log lines the flood
cost. docs/cluster.md ("Admission") explains what the node does about it.
"""

import argparse
import errno
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def flooder(host, port, source, conns, seconds, reconnect_ms):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, conns + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    conns = min(conns, want - 64)
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "closed_by_node": 0, "connect_errors": 0, "rejects_busy": 0,
             "held_max": 0, "conns": conns}
    due = []  # reopen times (monotonic)
    held = 0
    end = time.monotonic() + seconds

    def open_one():
        nonlocal held
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((source, 0))
            r = s.connect_ex((host, port))
        except OSError:
            r = -1
        if r not in (0, errno.EINPROGRESS):
            stats["connect_errors"] += 1
            s.close()
            due.append(time.monotonic() + reconnect_ms / 1000)
            return
        sel.register(s, selectors.EVENT_READ, bytearray())
        stats["opened"] += 1
        held += 1
        stats["held_max"] = max(stats["held_max"], held)

    def closed(key):
        nonlocal held
        sel.unregister(key.fileobj)
        if b"busy" in key.data:
            stats["rejects_busy"] += 1
        key.fileobj.close()
        held -= 1
        stats["closed_by_node"] += 1
        due.append(time.monotonic() + reconnect_ms / 1000)

    # the first wave as fast as it goes, handling closes meanwhile
    for i in range(conns):
        open_one()
        if i % 64 == 63:
            for key, _ in sel.select(0):
                drain(key, closed)
    while time.monotonic() < end:
        for key, _ in sel.select(0.005):
            drain(key, closed)
        now = time.monotonic()
        if due and due[0] <= now:
            ready = [t for t in due if t <= now]
            due[:] = [t for t in due if t > now]
            for _ in ready:
                open_one()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(json.dumps(stats), flush=True)


def drain(key, closed):
    try:
        b = key.fileobj.recv(4096)
    except BlockingIOError:
        return
    except OSError:
        closed(key)
        return
    if not b:
        closed(key)
    elif len(key.data) < 64:
        key.data.extend(b)


# ---- as a module: the scenario ---------------------------------------------------------------
def start_flooder(node, source, conns, seconds, reconnect_ms=20):
    from harness import _child_setup
    argv = [sys.executable, os.path.abspath(__file__), node.addr, str(node.port),
            "--source", source, "--conns", str(conns), "--seconds", str(seconds),
            "--reconnect-ms", str(reconnect_ms)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_child_setup)


def run_flood(c, conns=5000, seconds=20, pings=100, source="127.0.0.50", log=print):
    """Nodes a and b (b seeds a); the flood against a for `seconds`; meanwhile
    `pings` sequential `girder ping` to a and, halfway, b killed and restarted.
    Returns a dict of figures."""
    from harness import TestFailure, check, now, wait_until
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    creation = a.nodes()[b.name]["creation"]
    mark = a.log_mark()
    fl = start_flooder(a, source, conns, seconds)
    t0 = now()
    # let the first wave land before measuring
    wait_until("the flood to reach the node",
               lambda: int((c.cli("stats", "--only", node=a).data or {}).get("conns_accepted", 0))
               > conns // 2,
               timeout=seconds / 2)
    ok = fail = 0
    errors = {}
    lat = []
    rejoin_s = None
    window = seconds - (now() - t0) - 2
    per = window / (pings + 10)
    for i in range(pings):
        t = now()
        r = c.cli("ping", node=a, timeout_ms=5000)
        lat.append(now() - t)
        if r.rc == 0:
            ok += 1
        else:
            fail += 1
            errors[r.error_id or str(r.rc)] = errors.get(r.error_id or str(r.rc), 0) + 1
        if i == pings // 2:
            b.kill9()
            wait_until("a to see b down", lambda: a.state_of(b) == "down", 15)
            tb = now()
            b.start(wait=False)

            def back():
                v = (a.nodes(timeout_ms=5000) or {}).get(b.name, {})
                return v.get("state") == "up" and v.get("creation") != creation

            wait_until("a to see b back with a new creation", back, 30, interval=0.02)
            rejoin_s = now() - tb
        rest = per - (now() - t)
        if rest > 0:
            time.sleep(rest)
    flood_s = now() - t0
    out, err = fl.communicate(timeout=seconds + 30)
    if fl.returncode != 0:
        raise TestFailure(f"flooder failed ({fl.returncode}): {err[-2000:]}")
    fstats = json.loads(out.strip().splitlines()[-1])
    ctr = c.cli("stats", "--only", node=a).data or {}
    lines = a.log_since(mark).splitlines()
    noisy = [x for x in lines if re.search(r"refusing|evicted|handshake with|closing connection"
                                          r"|more refused or failed", x)]
    check(a.running() and b.running(), "a node died under the flood")
    lat.sort()
    return {
        "pings": ok + fail, "ping_ok": ok, "ping_ok_pct": 100.0 * ok / max(1, ok + fail),
        "ping_errors": errors, "ping_p50_ms": 1000 * lat[len(lat) // 2],
        "ping_max_ms": 1000 * lat[-1], "rejoin_ms": 1000 * rejoin_s, "flood_s": flood_s,
        "flooder": fstats, "refused": int(ctr.get("handshakes_refused", 0)),
        "evicted": int(ctr.get("handshakes_evicted", 0)),
        "accepted": int(ctr.get("conns_accepted", 0)), "log_lines": len(noisy),
    }


def test_flood(c):
    """5,000 half-open connections from 127.0.0.50 plus reconnects for 20 s:
    `girder ping` from the operator's address keeps answering (>= 95 %), a
    member killed and restarted meanwhile rejoins within 5 s, the refusals are
    counted and the log stays bounded."""
    from harness import check
    f = run_flood(c, conns=5000, seconds=20, pings=60)
    print(f"    flood: {f['ping_ok']}/{f['pings']} pings ok ({f['ping_ok_pct']:.1f} %, p50 "
          f"{f['ping_p50_ms']:.0f} ms, max {f['ping_max_ms']:.0f} ms), rejoin "
          f"{f['rejoin_ms']:.0f} ms, {f['accepted']} accepted, {f['refused']} refused, "
          f"{f['evicted']} evicted, {f['log_lines']} log lines in {f['flood_s']:.0f} s; "
          f"flooder {f['flooder']}", flush=True)
    check(f["flooder"]["opened"] >= 5000, f"the flood opened only {f['flooder']['opened']}")
    check(f["refused"] > 0 and f["flooder"]["rejects_busy"] > 0,
          f"no refusal counted / seen as Reject busy: {f}")
    check(f["ping_ok_pct"] >= 95.0, f"only {f['ping_ok_pct']:.1f} % of pings succeeded: {f}")
    check(f["rejoin_ms"] <= 5000, f"the restarted member took {f['rejoin_ms']:.0f} ms to rejoin")
    # 5 lines a second plus one summary a second, with wide slack
    bound = 10 * (f["flood_s"] + 5)
    check(f["log_lines"] <= bound,
          f"{f['log_lines']} log lines about refused or failed handshakes in "
          f"{f['flood_s']:.0f} s (bound {bound:.0f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--source", default="127.0.0.50")
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reconnect-ms", type=float, default=20)
    a = ap.parse_args()
    flooder(a.host, a.port, a.source, a.conns, a.seconds, a.reconnect_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
