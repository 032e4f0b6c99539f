#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/tables/catchup.py - how long a new node takes to catch up.

usage: bench/tables/catchup.py BUILD_DIR [TABLES [KEYS [REPS]]]

Starts three girderd-testkit nodes of BUILD_DIR, creates TABLES (default 3)
replicated tables, fills each with KEYS (default 102,000) keys through
`bench.tfill` (a third from each node at once), waits until every node holds
them, then REPS times (default 1): starts a fourth node and prints the time
from its start until `table info` on it shows every key of every table (the
time of the CLI polls included), then stops it. Prints one line per rep:
    catchup tables=T keys=K up=S total=S load=L
Give two build dirs in turn (e.g. the build before a change and after) to
compare them on the same machine in the same sitting (docs/tables.md,
"Replication").
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "net"))
import net  # noqa: E402


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    build = sys.argv[1]
    ntab = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    nkeys = int(sys.argv[3]) if len(sys.argv) > 3 else 102000
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    tmp = tempfile.mkdtemp(prefix="girder-catchup.")
    g = net.Girder(build, tmp)

    def entries(node, table):
        rc, data, _ = g.cli(node, "table", "info", table, timeout_ms=5000)
        return data.get("entries") if rc == 0 and isinstance(data, dict) else None

    per = nkeys // 3
    want = per * 3
    try:
        nodes = g.start_mesh(("ca", "cb", "cc"))
        for i in range(ntab):
            t = f"ct{i}"
            g.cli(nodes[0], "table", "create", t, "--mode", "replicated")
            for n in nodes:
                net.wait_until(f"{t} on {n['name']}", lambda n=n: entries(n, t) is not None, 20)
            ps = [subprocess.Popen([g.girder, "-n", n["spec"], "--cookie-file", g.cookie, "--json",
                                    "--timeout", "300000", "rpc", n["name"], "bench", "tfill",
                                    json.dumps(t), str(j * per), str(per)],
                                   stdout=subprocess.PIPE)
                  for j, n in enumerate(nodes)]
            for p in ps:
                p.communicate()
            net.wait_until(f"{t} everywhere",
                           lambda: all(entries(n, t) == want for n in nodes), 300, 0.05)
        for r in range(reps):
            t0 = time.monotonic()
            d = g.start(f"cn{r}", seed=nodes[0])
            t1 = time.monotonic()
            net.wait_until("caught up", lambda: all(entries(d, f"ct{i}") == want
                                                    for i in range(ntab)), 120, 0.01)
            t2 = time.monotonic()
            print(f"catchup tables={ntab} keys={want} up={t1 - t0:.2f}s total={t2 - t0:.2f}s "
                  f"load={os.getloadavg()[0]:.1f}", flush=True)
            net.Girder.stop(d)
    finally:
        net.kill_all()


if __name__ == "__main__":
    main()
