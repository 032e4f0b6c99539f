# SPDX-License-Identifier: Apache-2.0
"""pubsub3 - groups and global names through a real partition; other
subscribers keep their rate beside a stalled one (issue 14).

ps3_partition  3 nodes with group members and global names on every side;
               nftables drops every packet between c and {a, b} (as
               repl_partition): each side drops the other's members and names
               within the detection time, keeps joining, leaving, publishing
               and registering on its side (two names taken on both sides); once
               healed, groups converge to the union of the live members, the
               clashes resolve by the documented rule (lower registration
               time, then node name) with the loser told $global_clash, and
               every node answers the same whereis.
ps3_slow_rate  `girder sub` readers on two nodes of a steady stream of
               numbered publishes; one stalls (SIGSTOP), another is a tap
               nobody reads: the others keep receiving everything, in order,
               at a rate within a wide bound of the baseline measured in the
               same test; the unread tap drops and counts beyond its buffer;
               the stalled reader, resumed, gets the whole stream in order.
"""

import json
import signal
import subprocess
import threading
import time

import cut  # real partitions: cgroup v2 groups and nftables
from harness import EXIT_OK, check, now, wait_until

DETECTION_MS = 1500


def _rpc(c, n, fn, *args, **kw):
    return c.expect(n.cli("rpc", n.name, "pubsub", fn, *args, **kw), EXIT_OK,
                    what=f"pubsub.{fn} on {n.short}").data


def _members_all(c, n):
    return sorted(_rpc(c, n, "members_all", '"app"', '"workers"'))


def _names(c, n):
    """{name: (pid, time_ms)} of node n's view."""
    return {e["name"]: (e["pid"], e["time_ms"]) for e in _rpc(c, n, "names")}


def _whereis(n, name):
    r = n.cli("whereis", name, use_json=False)
    return r.out.strip() if r.rc == EXIT_OK else r.error_id


def _spawn(c, n):
    return c.expect(n.cli("spawn", "echo"), EXIT_OK, what=f"spawn on {n.short}").data


def _count(c, n, pid):
    return c.expect(n.cli("call", pid, '"count"'), EXIT_OK, what=f"count {pid}").data


def _node_of(pid):
    return pid[1:].rsplit(".", 3)[0]  # "<a@127.0.0.1.CREATION.ID.SERIAL>" -> node name


def _winner(regs):
    """The documented rule: lower time, then lower node name (bytewise)."""
    return min(regs, key=lambda e: (e[1], _node_of(e[0]).encode()))[0]


def test_ps3_partition(c):
    """See the module docstring. Skipped (passes with a note) without root, nft
    or a cgroup2 mount."""
    if cut.available():
        print(f"    SKIPPED: needs {cut.NEEDS}")
        return
    part = cut.Partition("grps3", ("ab", "c"))
    try:
        a = part.node(c, "a", "ab", detection_ms=DETECTION_MS)
        b = part.node(c, "b", "ab", seeds=[a], detection_ms=DETECTION_MS)
        x = part.node(c, "c", "c", seeds=[a], detection_ms=DETECTION_MS)
        nodes = [a, b, x]
        c.wait_mesh(nodes)

        # a member and a global name on every node
        mem, named = {}, {}
        for n in nodes:
            mem[n.short] = [_spawn(c, n), _spawn(c, n)]
            for pid in mem[n.short]:
                _rpc(c, n, "join", '"app"', '"workers"', f'"{pid}"')
            named[n.short] = _spawn(c, n)
            _rpc(c, n, "register", f'"svc.{n.short}"', f'"{named[n.short]}"')
        every = sorted(p for v in mem.values() for p in v)
        for n in nodes:
            wait_until(f"{n.short} to see 6 members", lambda n=n: _members_all(c, n) == every, 15)
            wait_until(f"{n.short} to know 3 names", lambda n=n: len(_names(c, n)) == 3, 15)

        part.cut()
        t_cut = now()

        # each side drops the other's members and names (the order: the cut,
        # then the removal; the bound is wide, the detection time plus 10 s)
        ab_view = sorted(mem["a"] + mem["b"])
        for n, want_m, want_n in ((a, ab_view, {"svc.a", "svc.b"}),
                                  (b, ab_view, {"svc.a", "svc.b"}),
                                  (x, sorted(mem["c"]), {"svc.c"})):
            wait_until(f"{n.short} to drop the other side",
                       lambda n=n, want_m=want_m, want_n=want_n: _members_all(c, n) == want_m
                       and set(_names(c, n)) == want_n, DETECTION_MS / 1000 + 10, interval=0.2)
        took = now() - t_cut
        print(f"    members and names of the other side gone on all 3 after {took:.2f} s")
        check(x.cli("whereis", "svc.a").error_id == "noname", "c no longer resolves svc.a")
        check(a.cli("whereis", "svc.c").error_id == "noname", "a no longer resolves svc.c")

        # each side keeps working: joins, a member dies on c, publishes
        # reach the subscribers of its side, names are registered (two on
        # both sides: dup.first_ab first on b, dup.first_c first on c)
        mem["a"].append(_spawn(c, a))
        _rpc(c, a, "join", '"app"', '"workers"', f'"{mem["a"][-1]}"')
        mem["c"].append(_spawn(c, x))
        _rpc(c, x, "join", '"app"', '"workers"', f'"{mem["c"][-1]}"')
        dead = mem["c"].pop(0)
        c.expect(x.cli("kill", dead), EXIT_OK, what="kill a member of c")
        left = mem["b"].pop(0)
        _rpc(c, b, "leave", '"app"', '"workers"', f'"{left}"')
        for n, want in ((a, sorted(mem["a"] + mem["b"])), (b, sorted(mem["a"] + mem["b"])),
                        (x, sorted(mem["c"]))):
            wait_until(f"{n.short} to see its side's joins",
                       lambda n=n, want=want: _members_all(c, n) == want, 15)
        sub_b, sub_c = _spawn(c, b), _spawn(c, x)
        _rpc(c, b, "subscribe", f'"{sub_b}"', '"ps3.>"')
        _rpc(c, x, "subscribe", f'"{sub_c}"', '"ps3.>"')
        wait_until("a to learn b's interest", lambda: _rpc(c, a, "cluster")["interest"] == 1, 15)
        r = c.expect(a.cli("pub", "ps3.during", '"ab"'), EXIT_OK, what="pub on a")
        check(r.data.get("nodes") == 1, f"a's publish goes to b only: {r!r}")
        r = c.expect(x.cli("pub", "ps3.during", '"c"'), EXIT_OK, what="pub on c")
        check(r.data.get("nodes", 0) == 0 and r.data.get("delivered") == 1,
              f"c's publish stays on c: {r!r}")
        wait_until("b's subscriber to get a's publish", lambda: _count(c, b, sub_b) == 1, 10)
        wait_until("c's subscriber to get c's publish", lambda: _count(c, x, sub_c) == 1, 10)

        side = {"ab.new": (b, _spawn(c, b)), "c.new": (x, _spawn(c, x))}
        dup = {}
        for name, first, second in (("dup.first_ab", b, x), ("dup.first_c", x, a)):
            p1, p2 = _spawn(c, first), _spawn(c, second)
            _rpc(c, first, "register", f'"{name}"', f'"{p1}"')
            _rpc(c, second, "register", f'"{name}"', f'"{p2}"')
            dup[name] = ((first, p1), (second, p2))
        for name, (n, pid) in side.items():
            _rpc(c, n, "register", f'"{name}"', f'"{pid}"')
        regs = {}
        for n in (a, x):
            for name, e in _names(c, n).items():
                if name.startswith("dup."):
                    regs.setdefault(name, []).append(e)
        for name in dup:
            check(len(regs.get(name, [])) == 2, f"{name} taken on both sides: {regs!r}")
        check(a.cli("whereis", "c.new").error_id == "noname", "a cannot see c's new name")

        part.heal()
        t_heal = now()
        c.wait_mesh(nodes, timeout=30)
        t_mesh = now() - t_heal

        # groups: the union of the live members, the dead one nowhere
        every = sorted(p for v in mem.values() for p in v)
        check(dead not in every and left not in every, "the dead and the left are not expected")
        for n in nodes:
            wait_until(f"{n.short} to see the union of the live members",
                       lambda n=n: _members_all(c, n) == every, 20, interval=0.2)
        # names: one answer everywhere, each clash won by the documented rule
        want = {f"svc.{s}": named[s] for s in named}
        want.update({name: pid for name, (_, pid) in side.items()})
        for name, rs in regs.items():
            want[name] = _winner(rs)
        wait_until("every node to hold the same names",
                   lambda: all({k: v[0] for k, v in _names(c, n).items()} == want
                               for n in nodes), 20, interval=0.2)
        t_conv = now() - t_heal
        for name, w in sorted(want.items()):
            seen = {n.short: _whereis(n, name) for n in nodes}
            check(set(seen.values()) == {w}, f"whereis {name}: {seen!r}, want {w}")
        for name, ((n1, p1), (n2, p2)) in dup.items():
            t = sorted(e[1] for e in regs[name])
            check(want[name] == p1 or t[0] == t[1],
                  f"{name}: the earlier registration wins ({want[name]}, {regs[name]!r})")
            loser_node, loser = (n2, p2) if want[name] == p1 else (n1, p1)
            wait_until(f"the loser of {name} to hear $global_clash",
                       lambda: _count(c, loser_node, loser) == 1, 10)
        # publishes cross the healed links again
        wait_until("a to learn c's interest again",
                   lambda: _rpc(c, a, "cluster")["interest"] == 2, 15)
        r = c.expect(a.cli("pub", "ps3.after", '"all"'), EXIT_OK, what="pub after")
        check(r.data.get("nodes") == 2, f"a's publish reaches b and c: {r!r}")
        wait_until("c's subscriber to get a's publish", lambda: _count(c, x, sub_c) == 2, 10)
        print(f"    after the heal: mesh in {t_mesh:.2f} s, groups and names converged in "
              f"{t_conv:.2f} s")
    finally:
        part.close()


class _Reader:
    """A `girder sub --json` whose lines are read by a thread: (arrival, i)."""

    def __init__(self, c, n, pattern):
        # a long call timeout: a reader stopped longer than it would find its
        # outstanding tap_wait timed out when resumed, and exit
        argv = [c.girder, "-n", n.spec, "--cookie-file", c.cookie_file, "--timeout", "300000",
                "sub", pattern, "--json"]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.got = []
        self.other = []  # lines that are not a message (an error object)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        for line in self.p.stdout:
            o = json.loads(line)
            if isinstance(o, dict) and "payload" in o:
                self.got.append((time.monotonic(), o["payload"]["i"]))
            else:
                self.other.append(o)

    def rate(self, lo, hi):
        """Messages a second over the arrivals of i in [lo, hi)."""
        ts = [t for t, i in self.got if lo <= i < hi]
        return (len(ts) - 1) / max(ts[-1] - ts[0], 1e-3)

    def close(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=30)
        self.t.join(timeout=10)
        return err


def test_ps3_slow_rate(c):
    """Publishes numbered {"i": N} from a at a steady pace (`girder pub`, one
    after the other, so the publisher's rate is what the CLI allows on this
    machine). Readers: `girder sub` on a (r1) and on b (r2, r3), and a tap on
    a opened with a 20-message buffer that nobody reads. Phase 1 (60
    messages): everyone reads, the baseline rate of r1 and r2 is measured.
    Phase 2 (200 more, several seconds): r3 is stopped (SIGSTOP); r1 and r2
    still get every message, in order, at a rate of at least a third of their
    baseline and of the publisher's rate in that phase (wide bounds: the
    machine is shared); the unread tap holds its 20 and counts the rest
    dropped (as docs/pubsub.md "Taps" says); r3, resumed, gets the whole
    stream in order (its 1,000-message tap buffer was not reached). The
    nodes' detection time is 60 s: a CLI stopped longer than the detection
    time is disconnected as dead (its tap closes with its connection)."""
    # a long detection time: a node closes a client connection silent for
    # longer (the stopped CLI sends no heartbeats), which would end r3's tap
    a = c.node("a", detection_ms=60000)
    b = c.node("b", seeds=[a], detection_ms=60000)
    c.wait_mesh([a, b])
    r1, r2, r3 = _Reader(c, a, "ps3r.>"), _Reader(c, b, "ps3r.>"), _Reader(c, b, "ps3r.>")
    readers = (r1, r2, r3)
    try:
        tap = _rpc(c, a, "tap", '["ps3r.>"]', "20")
        wait_until("a to learn b's interest", lambda: _rpc(c, a, "cluster")["interest"] == 1, 15)
        for n in (a, b):
            wait_until(f"2 taps on {n.short}", lambda n=n: len(_rpc(c, n, "subscriptions")) == 2,
                       15)
        pace = 0.02

        def publish(lo, hi):
            t0 = time.monotonic()
            for i in range(lo, hi):
                r = c.expect(a.cli("pub", f"ps3r.n{i % 7}", json.dumps({"i": i})), EXIT_OK,
                             what=f"pub {i}")
                check(r.data.get("nodes") == 1 and r.data.get("delivered") == 2,
                      f"pub {i}: b once, 2 local taps: {r!r}")
                time.sleep(max(0.0, t0 + (i - lo + 1) * pace - time.monotonic()))
            return (hi - lo - 1) / (time.monotonic() - t0)

        n1, n2 = 60, 260
        pub1 = publish(0, n1)
        for r in readers:
            wait_until("every reader to get phase 1", lambda r=r: len(r.got) >= n1, 20)
        base = [r.rate(0, n1) for r in (r1, r2)]
        r3.p.send_signal(signal.SIGSTOP)
        stalled_at = len(r3.got)
        pub2 = publish(n1, n2)
        for r in (r1, r2):
            wait_until("the reading readers to get phase 2", lambda r=r: len(r.got) >= n2, 20)
        rate2 = [r.rate(n1, n2) for r in (r1, r2)]
        print(f"    publisher {pub1:.0f}/s then {pub2:.0f}/s; readers' baseline "
              f"{base[0]:.0f}/s, {base[1]:.0f}/s; beside the stalled one {rate2[0]:.0f}/s, "
              f"{rate2[1]:.0f}/s")
        for k, r in enumerate((r1, r2)):
            check([i for _, i in r.got] == list(range(n2)), f"r{k + 1}: everything, in order")
            check(rate2[k] >= base[k] / 3, f"r{k + 1} kept its rate: {rate2[k]:.1f}/s beside "
                  f"a baseline of {base[k]:.1f}/s")
            check(rate2[k] >= pub2 / 3, f"r{k + 1} kept up with the publisher: {rate2[k]:.1f}/s "
                  f"for {pub2:.1f}/s published")
        check(len(r3.got) == stalled_at, "the stopped reader read nothing while stopped")
        polled = _rpc(c, a, "tap_poll", json.dumps(tap))
        got = [m[1]["i"] for m in polled["msgs"]]
        check(got == list(range(20)) and polled["dropped"] == n2 - 20,
              f"the unread tap kept its 20 and counted {n2 - 20} dropped: {polled!r}")
        _rpc(c, a, "tap_close", json.dumps(tap))
        r3.p.send_signal(signal.SIGCONT)
        wait_until("the resumed reader to catch up", lambda: len(r3.got) >= n2 or r3.other, 20)
        check(not r3.other, f"the resumed reader printed no error: {r3.other!r}")
        check([i for _, i in r3.got] == list(range(n2)), "r3: everything, in order")
    finally:
        errs = [r.close() for r in readers]
    check(not any("dropped" in e for e in errs), f"no reader was told of drops: {errs!r}")
    check(not any(r.other for r in readers), f"only messages printed: {[r.other for r in readers]!r}")
