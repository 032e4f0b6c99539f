#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/pubsub/ab.py - broadcast A/B: two builds side by side in one run.

usage: bench/pubsub/ab.py DIR_A DIR_B ROUNDS [--erlang] [--msgs N]

  DIR_A and DIR_B hold testkit/girderd-testkit and cli/girder (a build dir,
  or copies of those two files). Starts a 3-node cluster of each, then per
  round calls `bench_ps bcast [B, C] 1000 MSGS 16` (as bench/pubsub/pubsub.py)
  on A's and B's cluster alternately (the order flips every round), and with
  --erlang girder_pubsub.erl's bcast after them. Prints every round and the
  medians with the ratios B/A (and B/Erlang, A/Erlang): on a shared machine
  only ratios within one run mean anything.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import net  # noqa: E402
import pubsub  # noqa: E402  (erl_run)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("rounds", type=int)
    ap.add_argument("--erlang", action="store_true")
    ap.add_argument("--msgs", type=int, default=5000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="girder-bench-ab.")
    res = {"A": [], "B": [], "E": []}
    e = None
    try:
        cl = {}
        for tag, bd in (("A", args.a), ("B", args.b)):
            t = os.path.join(tmp, tag)
            os.makedirs(t)
            g = net.Girder(os.path.abspath(bd), t)
            a = g.start(tag.lower() + "a")
            b = g.start(tag.lower() + "b", seed=a)
            c = g.start(tag.lower() + "c", seed=a)
            g.wait_mesh([a, b, c])
            cl[tag] = (g, a, b, c)
        if args.erlang:
            e = net.Erlang(tmp)
            subprocess.run([e.erlc, "-o", tmp, os.path.join(HERE, "girder_pubsub.erl")],
                           check=True)
            e.prepare()
            eb, _ = e.start_b()
            ec, _ = e.start_b()
        for i in range(args.rounds):
            line = f"round {i}:"
            for tag in (("A", "B") if i % 2 == 0 else ("B", "A")):
                g, a, b, c = cl[tag]
                d = benchlib.bench_ps(g, a, "bcast", json.dumps([b["name"], c["name"]]), 1000,
                                      args.msgs, 16)
                res[tag].append(d["deliveries_per_s"])
                line += f" {tag} {res[tag][-1] / 1e6:.3f}"
            if e is not None:
                d = pubsub.erl_run(e, ["bcast", f"{eb},{ec}", "1000", str(args.msgs), "16"])
                res["E"].append(d["erl_bc_deliveries_per_s"])
                line += f" E {res['E'][-1] / 1e6:.3f}"
            print(f"{line} M/s, load {os.getloadavg()[0]:.1f}", flush=True)
        md = {k: statistics.median(v) for k, v in res.items() if v}
        out = f"medians M/s: A {md['A'] / 1e6:.3f} B {md['B'] / 1e6:.3f}; B/A {md['B'] / md['A']:.2f}"
        if "E" in md:
            out += (f"; Erlang {md['E'] / 1e6:.3f}, B/E {md['B'] / md['E']:.2f}, "
                    f"A/E {md['A'] / md['E']:.2f}")
        print(out)
    finally:
        net.kill_all()
        if e is not None:
            e.finish()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
