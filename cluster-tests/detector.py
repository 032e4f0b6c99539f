# SPDX-License-Identifier: Apache-2.0
"""detector - the failure detector's cluster tests (fd_* rows in tests.py).

fd_cut_vouched: one link cut while its two ends still reach everyone else.
nftables drops, in the output hook, both directions of the one TCP
connection between a and x (matched by its addresses and ports); b and c
still reach both. What the design guarantees (docs/cluster.md, "Failure
detection"): a member whose direct link alone is silent is not declared down
by either end while another member it answers vouches for it, for up to 10
detection times of direct silence; the cut here lasts 4. When the rule goes
the link carries on (TCP retransmits what was queued): no nodedown anywhere,
no reconnect. Then x is SIGSTOPped: every other node declares it down within
twice the detection time + 1 s (the c_detection bound), not before half of
it, since no one can vouch for a hung node.

Skipped (passes with a note) without root or nft.
"""

import os
import re
import shutil
import subprocess
import time

from harness import check, now, wait_until

DETECTION_MS = 1500


def _sockets():
    """[(pid, local 'addr:port', peer 'addr:port')] of established TCP sockets."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True,
                         text=True, check=True).stdout
    socks = []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) < 5:
            continue
        for pid in re.findall(r"pid=(\d+)", ln):
            socks.append((int(pid), f[2], f[3]))
    return socks


def _links(a, b):
    """The TCP connections between the daemons a and b, as (a_local, a_peer)."""
    socks = _sockets()
    mine = [(lo, pe) for pid, lo, pe in socks if pid == a.pid]
    theirs = {(lo, pe) for pid, lo, pe in socks if pid == b.pid}
    return [(lo, pe) for lo, pe in mine if (pe, lo) in theirs]


def _downs(node, mark, who):
    return re.findall(rf"nodedown {re.escape(who.name)}\b", node.log_since(mark))


def test_fd_cut_vouched(c):
    """One link cut while both ends still reach everyone else: no false down."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ss"):
        print("    SKIPPED: needs root, nft and ss (scripts/setup-deps)")
        return
    a = c.node("a", detection_ms=DETECTION_MS)
    b = c.node("b", seeds=[a], detection_ms=DETECTION_MS)
    y = c.node("c", seeds=[a], detection_ms=DETECTION_MS)
    x = c.node("x", seeds=[a], detection_ms=DETECTION_MS)
    nodes = [a, b, y, x]
    c.wait_mesh(nodes)
    # one connection between a and x (a tie-break loser lives 2 s more)
    links = wait_until("one link between a and x", lambda: (lambda ls: ls if len(ls) == 1
                                                            else None)(_links(a, x)), 15)
    (lo, pe), = links
    la, lp = lo.rsplit(":", 1)
    ra, rp = pe.rsplit(":", 1)
    marks = {n.short: n.log_mark() for n in nodes}
    tag = f"grfd{os.getpid()}"

    def nft(*args):
        subprocess.run(["nft"] + list(args), check=True, capture_output=True, text=True)

    try:
        nft("add", "table", "inet", tag)
        nft("add", "chain", "inet", tag, "out", "{ type filter hook output priority 0; }")
        nft("add", "rule", "inet", tag, "out", "ip", "saddr", la, "tcp", "sport", lp, "ip",
            "daddr", ra, "tcp", "dport", rp, "drop")
        nft("add", "rule", "inet", tag, "out", "ip", "saddr", ra, "tcp", "sport", rp, "ip",
            "daddr", la, "tcp", "dport", lp, "drop")
        t_cut = now()
        # the cut is real: both ends suspect the other
        a.wait_log(rf"link to {re.escape(x.name)} .*suspect", 10, marks["a"])
        x.wait_log(rf"link to {re.escape(a.name)} .*suspect", 10, marks["x"])
        # and stay up for four detection times
        while now() - t_cut < 4 * DETECTION_MS / 1000:
            time.sleep(0.2)
        check(a.state_of(x) == "up" and x.state_of(a) == "up",
              f"a and x up for each other while the others vouch: a sees x "
              f"{a.state_of(x)}, x sees a {x.state_of(a)}")
        stats = c.expect(a.cli("stats", "--only"), 0, what="stats on a").data
        check(stats.get("vouches", 0) >= 1 and stats.get("probe_reqs", 0) >= 1,
              f"a was vouched for x: {stats}")
        print(f"    link cut for {now() - t_cut:.1f} s: a and x still up for each other "
              f"({stats.get('probe_reqs')} probes asked by a, {stats.get('vouches')} vouches)",
              flush=True)
    finally:
        subprocess.run(["nft", "delete", "table", "inet", tag], capture_output=True)
    # the same link carries on once the packets flow again (TCP retransmits)
    a.wait_log(rf"link to {re.escape(x.name)} .*no longer suspect", 60, marks["a"])
    check(_links(a, x) == links, f"the same connection: {links} -> {_links(a, x)}")
    for n in nodes:
        for o in nodes:
            if o is not n:
                check(not _downs(n, marks[n.short], o),
                      f"{n.short} logged nodedown {o.short} during the cut")
    c.wait_mesh(nodes, timeout=10)

    # a hung node: no one vouches, every other node declares it down
    observers = [a, b, y]
    x.sigstop()
    t0 = now()
    seen = {}
    while len(seen) < len(observers) and now() < t0 + DETECTION_MS / 1000 + 10:
        for o in observers:
            if o.short in seen:
                continue
            t_call = now()
            e = (o.nodes() or {}).get(x.name)
            if e and e.get("state") == "down" and isinstance(e.get("since_ms"), (int, float)):
                seen[o.short] = (t_call - e["since_ms"] / 1000 - t0, now() - e["since_ms"] / 1000
                                 - t0)
        time.sleep(0.05)
    check(len(seen) == len(observers), f"not every node saw the SIGSTOPped x down: {seen}")
    worst = max(hi for _, hi in seen.values())
    bound = 2 * DETECTION_MS / 1000 + 1.0
    print(f"    SIGSTOP x: seen down after "
          + ", ".join(f"{k} {hi:.2f} s" for k, (_, hi) in sorted(seen.items())), flush=True)
    check(worst <= bound, f"detection took {worst:.2f} s > {bound:.1f} s: {seen}")
    check(max(lo for lo, _ in seen.values()) >= 0.5 * DETECTION_MS / 1000 - 0.05,
          f"down too early: {seen}")
    x.sigcont()
    c.wait_mesh(nodes, timeout=20)
