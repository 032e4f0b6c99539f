# SPDX-License-Identifier: Apache-2.0
"""pubsub2 - `girder sub` streaming and the slow subscriber (issue 14).

ps2_stream    `girder sub` on node a (wildcards) prints what `girder pub` on
              node b publishes, in order, as it arrives; --count exits by itself
              and the tap goes (a's interest vanishes on b).
ps2_stop      --timeout S exits by itself with nothing to print; SIGTERM ends a
              streaming sub, which unsubscribes (interest gone on the other
              node); bad patterns are usage errors with the reason.
ps2_slow_sub  a subscriber ~1000x slower than its publisher for 30 s: the
              node's RSS stays within baseline + 2x the backlog limit, the
              publisher meets busy before the first drop, drops are counted.
"""

import json
import signal
import subprocess
import time

from harness import EXIT_OK, EXIT_USAGE, check, testkit, wait_until


def _interest(c, node):
    return c.expect(node.cli("rpc", node.name, "pubsub", "cluster"), EXIT_OK).data["interest"]


def _sub(c, node, *args):
    argv = [c.girder, "-n", node.spec, "--cookie-file", c.cookie_file, "sub", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ps2_stream(c):
    """sub on a with two wildcard patterns, --json; pub on b. The first message
    is read back before the second is published (it streams), a topic that
    matches no pattern is never printed, the rest arrive in publish order, and
    --count 12 ends the CLI by itself."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    p = _sub(c, a, "orders.*", "audit.>", "--json", "--count", "12")
    wait_until("b to learn a's two patterns", lambda: _interest(c, b) == 2, 15)

    c.expect(b.cli("pub", "orders.n0", '{"i": 0}'), EXIT_OK)
    first = json.loads(p.stdout.readline())
    check(first == {"topic": "orders.n0", "payload": {"i": 0}}, f"first message: {first!r}")
    want = []
    for i in range(1, 12):
        topic = f"orders.n{i}" if i % 2 else f"audit.x{i}.y"
        c.expect(b.cli("pub", "other.n", '{"no": 1}'), EXIT_OK)  # matches nothing
        c.expect(b.cli("pub", topic, json.dumps({"i": i})), EXIT_OK)
        want.append({"topic": topic, "payload": {"i": i}})
    out, err = p.communicate(timeout=30)
    check(p.returncode == EXIT_OK, f"sub exit {p.returncode}: {err!r}")
    got = [json.loads(ln) for ln in out.splitlines()]
    check(got == want, f"11 more in publish order, nothing else: {got!r}")
    wait_until("the tap unsubscribed (b forgets a's interest)", lambda: _interest(c, b) == 0, 10)


def test_ps2_stop(c):
    """--timeout ends a sub with no messages (exit 0, no output); SIGTERM ends a
    streaming one, which closes its tap; bad patterns exit 2 naming why."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])

    p = _sub(c, a, "quiet.>", "--timeout", "1.5")
    out, err = p.communicate(timeout=30)
    check(p.returncode == EXIT_OK and out == "", f"--timeout: exit {p.returncode} {out!r} {err!r}")
    topics = c.expect(a.cli("rpc", a.name, "pubsub", "topics"), EXIT_OK).data
    check(topics == [], f"the timed-out tap unsubscribed: {topics!r}")

    p = _sub(c, a, "live.*")
    wait_until("b to learn a's pattern", lambda: _interest(c, b) == 1, 15)
    c.expect(b.cli("pub", "live.one", '"hello"'), EXIT_OK)
    line = p.stdout.readline()
    check(line == 'live.one "hello"\n', f"text line: {line!r}")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == EXIT_OK, f"SIGTERM: exit {p.returncode} {err!r}")
    wait_until("the tap closed on SIGTERM", lambda: _interest(c, b) == 0, 10)
    topics = c.expect(a.cli("rpc", a.name, "pubsub", "topics"), EXIT_OK).data
    check(topics == [], f"no subscription left on a: {topics!r}")

    for bad, why in (("a*", "whole token"), ("a.>.b", "last token"), ("a..b", "empty token"),
                     ("", "empty topic")):
        r = c.cli("sub", bad, node=a, use_json=False)
        check(r.rc == EXIT_USAGE and why in r.err and "bad TOPIC pattern" in r.err,
              f"sub {bad!r}: {r!r}")


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@testkit
def test_ps2_slow_sub(c):
    """bench_ps.flood: one local subscriber of slow.x (backlog limits 65,536
    messages / 8 MiB, policy drop) sleeps 5 ms on every message while the
    worker publishes 1 KiB messages for 30 s, waiting 1 ms after any burst
    that met busy. The node's RSS, read from /proc every 100 ms, stays under
    its baseline + 2 x 8 MiB; the publisher met busy before the first drop;
    drops are counted (result and the node's counters) and the
    subscription's backlog never passed its limit. Memory, not timing, is
    asserted: a loaded machine only changes how many messages flow."""
    a = c.node("a")
    a.wait_up()
    limit = 8 << 20
    pid = a.pid
    base = _rss(pid)
    argv = [c.girder, "-n", a.spec, "--cookie-file", c.cookie_file, "--json", "--timeout",
            "180000", "rpc", a.name, "bench_ps", "flood", '"slow.x"', "30", "1024", "5",
            "65536", str(limit)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, samples, subs = base, 0, None
    t0 = time.monotonic()
    while p.poll() is None:
        peak = max(peak, _rss(pid))
        samples += 1
        if subs is None and time.monotonic() - t0 > 10:
            subs = c.expect(a.cli("rpc", a.name, "pubsub", "subscriptions", '"slow.x"',
                                  timeout_ms=30000), EXIT_OK).data
        time.sleep(0.1)
    out, err = p.communicate(timeout=60)
    check(p.returncode == EXIT_OK, f"flood: exit {p.returncode} {err!r}")
    r = json.loads(out)
    print(f"    flood {r}; rss base {base >> 20} MiB, peak {peak >> 20} MiB"
          f" ({samples} samples)")
    check(peak - base < 2 * limit,
          f"RSS grew {(peak - base) >> 20} MiB, over 2 x the 8 MiB backlog limit")
    check(r["first_busy"] > 0 and r["first_drop"] > r["first_busy"],
          f"busy (publisher slowed) came before the first drop: {r!r}")
    check(r["dropped"] > 0 and r["deferred"] > 0, f"drops counted, publisher deferred: {r!r}")
    check(subs is not None and len(subs) == 1, f"the slow subscription listed: {subs!r}")
    s = subs[0]
    check(s["backlog_bytes"] <= s["max_bytes"] == limit and s["peak"] <= s["max_msgs"] and
          s["dropped"] > 0 and s["busy"] > 0, f"the backlog held its limit mid-flood: {s!r}")
    k = c.expect(a.cli("rpc", a.name, "pubsub", "counters"), EXIT_OK).data
    check(k["dropped"] >= r["dropped"] and k["busy"] > 0, f"node counters: {k!r}")
