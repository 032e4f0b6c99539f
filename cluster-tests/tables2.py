# SPDX-License-Identifier: Apache-2.0
"""cluster-tests/tables2.py - replicated tables, catch-up (tb2_*): a node
joining a cluster that holds several replicated tables gets each from one
member (docs/tables.md "Replication", "A bulk repair comes from one member")
and ends equal to the others."""

import json
import os
import threading
import time

from harness import EXIT_OK, check, testkit, wait_until


def _info(node, table):
    r = node.cli("table", "info", table)
    return r.data if r.rc == EXIT_OK else None


@testkit
def test_join_tables(c):
    """Three nodes, TB2_TABLES (3) replicated tables of TB2_KEYS (20,000)
    keys each, filled by `bench.tfill` from a different node per table; a
    fourth node joins: every table reaches all keys there and its digest
    equals the first node's, and the nodes that shipped stay equal too (the
    repair skipped members' answers resume: digests all equal). Prints the
    catch-up time."""
    n_tab = int(os.environ.get("TB2_TABLES", "3"))
    n_keys = int(os.environ.get("TB2_KEYS", "20000"))
    a = c.node("a")
    b = c.node("b", seeds=[a])
    d = c.node("c", seeds=[a])
    nodes = [a, b, d]
    c.wait_mesh(nodes)
    tables = [f"j{i}" for i in range(n_tab)]
    for t in tables:
        c.expect(a.cli("table", "create", t, "--mode", "replicated"), EXIT_OK, what="create")
    for t in tables:
        for n in nodes:
            wait_until(f"{t} on {n.name}", lambda n=n, t=t: _info(n, t), 10)
    res = [None] * n_tab

    def fill(i):
        n = nodes[i % 3]
        res[i] = n.cli("rpc", n.name, "bench", "tfill", json.dumps(tables[i]), "0", str(n_keys),
                       timeout_ms=120000, proc_timeout=150)

    threads = [threading.Thread(target=fill, args=(i,)) for i in range(n_tab)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in res:
        check(r.rc == EXIT_OK, f"bench.tfill: {r!r}")
    for t in tables:
        wait_until(f"{t} everywhere", lambda t=t: all((_info(n, t) or {}).get("entries") == n_keys
                                                      for n in nodes), 120, interval=0.05)
    t0 = time.monotonic()
    n = c.node("n", seeds=[a])
    wait_until("the new node holds every key of every table",
               lambda: all((_info(n, t) or {}).get("entries") == n_keys for t in tables),
               120, interval=0.05)
    t_join = time.monotonic() - t0
    for t in tables:
        wait_until(f"{t}: every digest equal",
                   lambda t=t: len({(_info(x, t) or {}).get("replication", {}).get("digest")
                                    for x in nodes + [n]}) == 1, 30, interval=0.2)
    print(f"    new node caught up with {n_tab} tables of {n_keys} keys {t_join:.2f} s "
          f"after its start")
