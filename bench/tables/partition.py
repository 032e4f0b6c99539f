#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/tables/partition.py - convergence of a replicated table after a real
partition: the issue's "10,000 changed keys converged in under 1 s once the
nodes are connected again".

usage: bench/tables/partition.py BUILD_DIR [KEYS [REPS]]

Three girderd-testkit nodes of BUILD_DIR (detection 1,500 ms, as the cluster
test r2_repl_partition), a and b in one cgroup v2 group, c in another. A
replicated table gets KEYS (default 10,000) keys "key:<i>", i < KEYS, through
`bench.tfill` on a. Then nftables drops, in the output hook, what each side's
sockets send to the other side's listening ports (a real partition: packets
are lost, not a simulated flag; cluster-tests/cut.py makes the groups and the
rules, as for the cluster tests). Once both sides see the other down, a
rewrites the KEYS keys (new versions) and c writes KEYS new keys (i from KEYS
to 2 x KEYS): KEYS changed keys on each side. The rules go, and the clock runs
from that moment:
  mesh_s   every node sees the other two up again (`girder nodes`),
  conv_s   every node's `table info` shows 2 x KEYS entries and one digest.
conv_s - mesh_s is the convergence once connected (goal < 1 s), mesh_s the
reconnection (goal < 1 s). The CLI polls (tens of ms each on a busy machine)
are inside both figures, so they are upper bounds. REPS times (default 1),
each on a new table. Needs root, nft and a cgroup2 mount; else it prints
"partition skipped=REASON". Output, one line per rep:
    partition keys=K mesh_s=S conv_s=S after_mesh_s=S load=L
bench/tables/tables.py imports run() for its convergence row.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "cluster-tests"))
import cut  # noqa: E402  (cgroup v2 groups and nftables, as the cluster tests)
import net  # noqa: E402

unavailable = cut.available  # None when the partition can be made here, else the reason


def run(build, keys=10000, reps=1, note=print):
    """Returns a list of (mesh_s, conv_s) per rep. Raises on failure."""
    tmp = tempfile.mkdtemp(prefix="girder-partition.")
    part = cut.Partition("grpart", ("ab", "c"))
    g = net.Girder(build, tmp)
    real = g.girderd
    out = []
    nodes = []

    def start(short, side, seed=None):
        # the daemon joins its cgroup before its first instruction (exec)
        g.girderd = part.wrapper(side, real, os.path.join(tmp, f"in-{side}.sh"))
        try:
            n = g.start(short, seed=seed, extra=["--detection-ms", "1500"])
        finally:
            g.girderd = real
        part.member(side, n["spec"].rsplit(":", 1)[1])
        return n

    def info(n, t):
        rc, data, _ = g.cli(n, "table", "info", t, timeout_ms=5000)
        return data if rc == 0 and isinstance(data, dict) else None

    def converged(nodes, t, want):
        ds = set()
        for n in nodes:
            d = info(n, t)
            if not d or d.get("entries") != want:
                return False
            ds.add(json.dumps((d.get("replication") or {}).get("digest")))
        return len(ds) == 1

    def tfill(n, t, start_i, count):
        r = subprocess.run([g.girder, "-n", n["spec"], "--cookie-file", g.cookie, "--json",
                            "--timeout", "300000", "rpc", n["name"], "bench", "tfill",
                            json.dumps(t), str(start_i), str(count)],
                           capture_output=True, text=True, timeout=400)
        if r.returncode != 0:
            raise RuntimeError(f"bench.tfill failed: {r.stdout}{r.stderr}")

    def seen(obs, who, up):
        return (g.state(obs, who) == "up") == up

    def mesh_up(nodes):
        """One `girder nodes` per node (the polls are most of the granularity)."""
        for x in nodes:
            rc, data, _ = g.cli(x, "nodes", "--only", timeout_ms=2000)
            if rc != 0 or not isinstance(data, list):
                return False
            st = {e.get("name"): e.get("state") for e in data}
            if any(st.get(y["name"]) != "up" for y in nodes if y is not x):
                return False
        return True

    try:
        a = start("pa", "ab")
        nodes.append(a)
        b = start("pb", "ab", seed=a)
        nodes.append(b)
        c = start("pc", "c", seed=a)
        nodes.append(c)
        g.wait_mesh(nodes)
        for r in range(reps):
            t = f"pt{r}"
            g.cli(a, "table", "create", t, "--mode", "replicated")
            for n in nodes:
                net.wait_until(f"{t} on {n['name']}", lambda n=n: info(n, t) is not None, 20)
            tfill(a, t, 0, keys)
            net.wait_until("the keys everywhere", lambda: converged(nodes, t, keys), 120, 0.05)
            part.cut()
            net.wait_until("the partition seen by both sides",
                           lambda: all(seen(x, y, False) for x, y in
                                       ((a, c), (b, c), (c, a), (c, b))), 60, 0.1)
            note(f"partitioned; {keys} keys changed on each side")
            tfill(a, t, 0, keys)      # rewrites: new versions of every key
            tfill(c, t, keys, keys)   # new keys on the other side
            part.heal()
            t0 = time.monotonic()
            mesh = None
            while time.monotonic() - t0 < 120:
                if mesh is None and mesh_up(nodes):
                    mesh = time.monotonic() - t0
                if mesh is not None and converged(nodes, t, 2 * keys):
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError("not converged within 120 s of the partition's end")
            conv = time.monotonic() - t0
            out.append((mesh, conv))
            print(f"partition keys={keys} mesh_s={mesh:.2f} conv_s={conv:.2f} "
                  f"after_mesh_s={conv - mesh:.2f} load={os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for n in nodes:  # only ours: the caller's nodes stay
            if n["proc"].poll() is None:
                n["proc"].kill()
                n["proc"].wait()
        part.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    why = unavailable()
    if why:
        print(f"partition skipped={why.replace(' ', '_')}")
        return
    run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000,
        int(sys.argv[3]) if len(sys.argv) > 3 else 1)


if __name__ == "__main__":
    main()
