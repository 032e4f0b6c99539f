# SPDX-License-Identifier: Apache-2.0
"""multihost3 - a mesh forming on one host as on many (mh3_* rows in tests.py).

mh3_forming: 20 nodes, each on its own loopback address, all started at once
with the first as their only seed (the shape of bench/scale). Once every node
lists every other up (wide bound: 120 s), every link a node accepted came from
the dialler's own address (dials leave from the listen address, so admission
tells the nodes apart as it would on real hosts), no node refused a handshake
as busy, and no node logged a nodedown while the mesh formed.
docs/benchmarks.md ("The full mesh at 50 and 100 nodes") has the figures at
100 nodes.
"""

import re

from harness import check

N = 20
ACCEPTED = re.compile(r"link to (\S+)@(\S+) \((\S+):\d+, accepted\) up")


def test_mh3_forming(c):
    seed = c.node("f0", start=False)
    nodes = [seed] + [c.node(f"f{i}", seeds=[seed], start=False) for i in range(1, N)]
    for n in nodes:
        n.start(wait=False)
    for n in nodes:
        n.wait_up(timeout=60)
    c.wait_mesh(nodes, timeout=120)
    accepted = 0
    for n in nodes:
        text = n.log_text()
        for m in ACCEPTED.finditer(text):
            accepted += 1
            check(m.group(3) == m.group(2),
                  f"{n.short} accepted {m.group(1)}@{m.group(2)} from {m.group(3)}, not from "
                  f"its own address")
        bad = [ln for ln in text.splitlines()
               if re.search(r"nodedown|refusing a connection|more refused", ln)]
        check(not bad, f"{n.short} logged while the mesh formed: {bad[:3]}")
    # about half of the N * (N - 1) links are accepted at each end
    check(accepted >= N * (N - 1) // 2,
          f"{accepted} accepted member links in the logs, expected >= {N * (N - 1) // 2}")
    print(f"    {N} nodes meshed: {accepted} accepted links, each from the dialler's own "
          f"address; no nodedown, no busy refusal", flush=True)
