# SPDX-License-Identifier: Apache-2.0
"""crdt.py - maps and add-wins sets of replicated tables across real nodes
(cluster test t3_crdt, rows at the end of TESTS in tests.py).

Three nodes and a replicated table, driven with `girder table hset|hget|hdel|
hgetall|sadd|srem|smembers`: the commands on one node are read on the others;
then a real partition (cut.py: the daemons in two cgroup v2 groups, nftables
dropping what one side's sockets send to the other side's listening ports, as
r2_repl_partition does) cuts node a off from b and c, and both sides write:
different fields of one map, an add of a member the other side removes, adds
of different members, increments of one field. After the rules go every node
holds every field, the removed-and-re-added member, the union of the adds and
the sum of the increments. Without root, nft or a cgroup2 mount, the part
that needs true concurrency is skipped (said on the output) and the rest runs.
docs/tables.md "Maps and sets" has the rules.
"""

import json
import time

import cut
from harness import EXIT_OK, EXIT_REMOTE, check, wait_until


def _hgetall(node, table, key):
    r = node.cli("table", "hgetall", table, json.dumps(key))
    return r.data if r.rc == EXIT_OK else None


def _smembers(node, table, key):
    r = node.cli("table", "smembers", table, json.dumps(key))
    return sorted(r.data) if r.rc == EXIT_OK and isinstance(r.data, list) else None


def _all_equal(nodes, fn, want):
    return all(fn(n) == want for n in nodes)


def test_crdt(c):
    """Maps (per-field last writer wins, field counters) and add-wins sets of
    a replicated table on 3 nodes, through the CLI; concurrent writes on the
    two sides of a real partition merge as docs/tables.md says."""
    part = None if cut.available() else cut.Partition("grcrdt", ("a", "bc"))
    nodes = []

    def node(short, side, **kw):
        return part.node(c, short, side, **kw) if part else c.node(short, **kw)

    try:
        a = node("a", "a", detection_ms=1500)
        b = node("b", "bc", seeds=[a], detection_ms=1500)
        d = node("c", "bc", seeds=[a], detection_ms=1500)
        nodes = [a, b, d]
        c.wait_mesh(nodes)
        c.expect(a.cli("table", "create", "h", "--mode", "replicated"), EXIT_OK, what="create")
        for n in nodes:
            wait_until(f"h on {n.name}",
                       lambda n=n: n.cli("table", "info", "h").rc == EXIT_OK, 10)

        # the commands, read on the other nodes
        r = c.expect(a.cli("table", "hset", "h", '"u"', "name", '"ada"', "age", "36"), EXIT_OK,
                     what="hset")
        check(r.data == 2, f"hset added 2 fields: {r!r}")
        wait_until("u on every node",
                   lambda: _all_equal(nodes, lambda n: _hgetall(n, "h", "u"),
                                      {"name": "ada", "age": 36}), 10, interval=0.1)
        r = c.expect(b.cli("table", "hget", "h", '"u"', "name"), EXIT_OK, what="hget")
        check(r.data == "ada", f"hget on b: {r!r}")
        c.expect(b.cli("table", "hget", "h", '"u"', "nope"), EXIT_REMOTE, "not_found",
                 "hget of a missing field")
        c.expect(d.cli("table", "get", "h", '"u"'), EXIT_REMOTE, "wrong_type", "get of a map")
        r = c.expect(d.cli("table", "hdel", "h", '"u"', "age", "nope"), EXIT_OK, what="hdel")
        check(r.data == 1, f"hdel removed 1 field: {r!r}")
        r = c.expect(a.cli("table", "sadd", "h", '"s"', "x", "y", "z"), EXIT_OK, what="sadd")
        check(r.data == 3, f"sadd added 3: {r!r}")
        c.expect(a.cli("table", "hset", "h", '"s"', "f", "1"), EXIT_REMOTE, "wrong_type",
                 "hset on a set")
        r = c.expect(b.cli("table", "srem", "h", '"s"', "z"), EXIT_OK, what="srem")
        wait_until("s and u everywhere",
                   lambda: _all_equal(nodes, lambda n: _smembers(n, "h", "s"), ["x", "y"]) and
                   _all_equal(nodes, lambda n: _hgetall(n, "h", "u"), {"name": "ada"}),
                   10, interval=0.1)
        r = d.cli("table", "smembers", "h", '"s"', use_json=False)
        check(r.rc == EXIT_OK and r.out.split() == ["x", "y"], f"smembers prints lines: {r!r}")
        r = d.cli("table", "hgetall", "h", '"u"', use_json=False)
        check(r.rc == EXIT_OK and r.out == 'name\t"ada"\n', f"hgetall prints lines: {r!r}")

        # concurrent fields of one map without a partition: both, in any order
        c.expect(a.cli("table", "hset", "h", '"u"', "fa", '"A"'), EXIT_OK, what="hset fa")
        c.expect(b.cli("table", "hset", "h", '"u"', "fb", '"B"'), EXIT_OK, what="hset fb")
        wait_until("fa and fb everywhere",
                   lambda: _all_equal(nodes, lambda n: _hgetall(n, "h", "u"),
                                      {"name": "ada", "fa": "A", "fb": "B"}), 10, interval=0.1)

        if not part:
            print(f"    SKIPPED the partition part: needs {cut.NEEDS}")
            return
        part.cut()
        t_cut = time.monotonic()
        wait_until("a cut off from b and c",
                   lambda: cut.down(a, b) and cut.down(a, d) and cut.down(b, a)
                   and cut.down(d, a), 20, interval=0.2)
        print(f"    partition seen by both sides after {time.monotonic() - t_cut:.2f} s")
        # both sides write, truly concurrently
        c.expect(a.cli("table", "hset", "h", '"u"', "side", '"a"', "pa", "1"), EXIT_OK)
        c.expect(b.cli("table", "hset", "h", '"u"', "pb", "2"), EXIT_OK)
        c.expect(d.cli("table", "hdel", "h", '"u"', "fa"), EXIT_OK)
        c.expect(a.cli("table", "sadd", "h", '"s"', "x", "only-a"), EXIT_OK)  # x: re-added
        r = c.expect(b.cli("table", "srem", "h", '"s"', "x"), EXIT_OK)  # removes the add it saw
        check(r.data == 1, f"srem on b removed x: {r!r}")
        c.expect(d.cli("table", "sadd", "h", '"s"', "only-c"), EXIT_OK)
        c.expect(a.cli("table", "sadd", "h", '"t"', "a1", "a2"), EXIT_OK)
        c.expect(b.cli("table", "sadd", "h", '"t"', "b1"), EXIT_OK)
        for n, k in ((a, 3), (b, 4), (d, 5)):
            c.expect(n.cli("rpc", n.name, "table", "map_incr", '"h"', '"u"', '"n"', k), EXIT_OK)
        check(_smembers(b, "h", "s") == ["only-c", "y"], "b and c do not see a's adds yet")
        check(_smembers(a, "h", "s") == ["only-a", "x", "y"], "a does not see the remove yet")

        part.heal()
        t_heal = time.monotonic()
        c.wait_mesh(nodes, timeout=30)
        want_u = {"name": "ada", "fb": "B", "side": "a", "pa": 1, "pb": 2, "n": 12}
        want_s = ["only-a", "only-c", "x", "y"]
        wait_until("converged after the partition",
                   lambda: _all_equal(nodes, lambda n: _hgetall(n, "h", "u"), want_u) and
                   _all_equal(nodes, lambda n: _smembers(n, "h", "s"), want_s) and
                   _all_equal(nodes, lambda n: _smembers(n, "h", "t"), ["a1", "a2", "b1"]),
                   30, interval=0.1)
        print(f"    after the rules went: maps and sets merged on 3 nodes in "
              f"{time.monotonic() - t_heal:.2f} s (x re-added on a survived b's remove)")
        wait_until("equal digests",
                   lambda: len({n.cli("table", "info", "h").data["replication"]["digest"]
                                for n in nodes}) == 1, 20, interval=0.2)
    finally:
        if part:
            part.close()
        for n in nodes:  # those of c.node(), without a partition
            if n.running():
                n.kill9()
