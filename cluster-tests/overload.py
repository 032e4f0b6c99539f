# SPDX-License-Identifier: Apache-2.0
"""overload.py - an unpaced stream of 64 KiB messages from a to b (bench.stream
with a window of 100,000,000: it relies on the link's backpressure alone),
while `girder ping` to a runs one after the other and a bystander c, with a
short detection time, watches both. Used by the cluster test s_overload and by
bench/overload. Figures: worst ping latency, a's peak and final RSS (from
/proc), whether c declared anyone down, a's suspension counters, the worst
gap between two reads on any link (max_rx_gap_ms of every member as every node
sees it)."""

import json
import threading
import time

from harness import check, testkit

MIB = 1 << 20


def rss(node):
    """Resident size of node's girderd, bytes (0 when gone)."""
    try:
        with open(f"/proc/{node.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def link_gaps(nodes):
    """The worst gap between two reads on each link, as each node saw it
    (max_rx_gap_ms: since the link came up, so idle heartbeats count too)."""
    gaps = {}
    for n in nodes:
        for name, e in (n.nodes() or {}).items():
            if e.get("state") == "up":
                gaps[f"{n.name} <- {name}"] = e.get("max_rx_gap_ms", 0)
    return gaps


def run_overload(c, seconds=25, size=65536, high=None, log=print):
    """high: a's --link-high-water (None: the default, 64 MiB)."""
    a = c.node("a", extra=["--link-high-water", str(high)] if high else ())
    b = c.node("b", seeds=[a])
    w = c.node("c", seeds=[a])
    c.wait_mesh([a, b, w])
    time.sleep(3)  # a few heartbeats: the idle gaps, for comparison
    gaps_idle = link_gaps((a, b, w))
    base = rss(a)
    mark_c = w.log_mark()
    count = 100000000  # never reached: the stream ends when its call times out
    stream = {}

    def run():
        stream["r"] = a.cli("rpc", a.name, "bench", "stream", json.dumps(b.name), count, size,
                            100000000, timeout_ms=int(seconds * 1000), proc_timeout=seconds + 30)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t0 = time.monotonic()
    lat, fails, peak, busy_seen = [], 0, base, False
    while time.monotonic() - t0 < seconds - 1:
        p0 = time.monotonic()
        r = c.cli("ping", node=a, timeout_ms=5000)
        lat.append(time.monotonic() - p0)
        if r.rc != 0:
            fails += 1
        peak = max(peak, rss(a))
        view = a.nodes()
        if view and view.get(b.name, {}).get("busy"):
            busy_seen = True
        peak = max(peak, rss(a))
        time.sleep(0.2)
    t.join(seconds + 60)
    counters = a.cli("rpc", a.name, "sys", "counters").data or {}
    # the stream's rpc timed out: its worker ends, the backlog drains
    final = rss(a)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and final > base + 4 * MIB:
        time.sleep(0.5)
        final = rss(a)
    gaps = link_gaps((a, b, w))
    counters_end = a.cli("rpc", a.name, "sys", "counters").data or {}
    downs = [ln for ln in w.log_since(mark_c).splitlines()
             if "nodedown" in ln or "silent" in ln]
    lat.sort()
    f = {"seconds": seconds, "pings": len(lat), "ping_fail": fails,
         "ping_max_ms": 1000 * lat[-1] if lat else 0,
         "ping_p50_ms": 1000 * lat[len(lat) // 2] if lat else 0,
         "rss_base": base, "rss_peak": peak, "rss_final": final, "busy_seen": busy_seen,
         "bystander_downs": downs, "counters": counters, "gaps": gaps, "gaps_idle": gaps_idle,
         "gap_idle_max_ms": max(gaps_idle.values()) if gaps_idle else None,
         "counters_end": counters_end,
         "gap_max_ms": max(gaps.values()) if gaps else None,
         "detection_ms": w.detection_ms or 3000,
         "stream": stream.get("r")}
    return f


@testkit
def test_overload(c):
    """An unpaced stream of 64 KiB messages from a to b for 25 s (bench.stream
    with a window of 100,000,000): the sender is suspended on the busy link,
    a's RSS stays under the link limit (64 MiB) plus a margin, the bystander c
    never declares anyone down, `girder ping` to a keeps
    answering, the link shows busy in `nodes --json`, suspensions are counted,
    no link is closed for overload; afterwards RSS returns near baseline."""
    high = 8 * MIB
    f = run_overload(c, seconds=25, high=high)
    k = f["counters"]
    print(f"    overload: pings {f['pings']} ({f['ping_fail']} failed), ping p50 "
          f"{f['ping_p50_ms']:.0f} ms max {f['ping_max_ms']:.0f} ms; RSS base "
          f"{f['rss_base'] / MIB:.0f} MiB peak {f['rss_peak'] / MIB:.0f} MiB final "
          f"{f['rss_final'] / MIB:.0f} MiB; suspends {k.get('suspends')} "
          f"({k.get('suspended_ms')} ms), overloads {k.get('overloads')}, closes "
          f"{k.get('overload_closes')}, sigq_peak {k.get('sigq_peak')}, trims "
          f"{k.get('trims')}; worst rx gap {f['gap_max_ms']} ms")
    check(not f["bystander_downs"], f"bystander c declared a node down: {f['bystander_downs']}")
    check(f["ping_fail"] == 0, f"{f['ping_fail']} of {f['pings']} pings to a failed: {f}")
    check(f["rss_peak"] < f["rss_base"] + high + 64 * MIB,
          f"a's RSS peaked at {f['rss_peak'] / MIB:.0f} MiB (base {f['rss_base'] / MIB:.0f})")
    check(k.get("suspends", 0) > 0 and k.get("overload_closes", 1) == 0,
          f"no suspension, or a link closed for overload: {k}")
    check(f["gap_max_ms"] is not None and f["gap_max_ms"] <= f["detection_ms"] * 2 // 3,
          f"a link went silent for {f['gap_max_ms']} ms (detection {f['detection_ms']} ms): "
          f"{f['gaps']}")
    check(f["busy_seen"], "the link a -> b never showed busy in nodes --json")
    check(f["rss_final"] < f["rss_base"] + high // 2,
          f"a's RSS stayed at {f['rss_final'] / MIB:.0f} MiB after the stream "
          f"(base {f['rss_base'] / MIB:.0f})")
