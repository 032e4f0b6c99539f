# SPDX-License-Identifier: Apache-2.0
"""bench/benchlib.py - what the Python sections of bench/run share (net,
pubsub, ports, tables): progress notes, key=value output, the test kit's
bench_ps calls, rounds kept per side, the same-run ratio table (Girder,
Erlang, G/E, goal, met), every round's figures, the results file lines and
the main guard. Each section imports it as `benchlib` (its folder's parent on
sys.path) beside net.py's node helpers.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def arg_parser():
    """The options every section takes; a section adds its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-erlang", action="store_true")
    ap.add_argument("--results", default=None)
    ap.add_argument("--idle", type=int, default=None, help="CPU idle %% measured by bench/run")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds per side, interleaved (--quick: 1)")
    return ap


def med(v):
    """The median of v, or None when there is none."""
    return statistics.median(v) if v else None


def noter(section):
    """A note(msg) that prints "bench/SECTION: msg" on stderr."""
    def note(msg):
        print(f"bench/{section}: {msg}", file=sys.stderr, flush=True)
    return note


def kv(text):
    """The key=value words of a program's output, as strings."""
    return dict(line.split("=", 1) for line in text.split() if "=" in line)


def run_kv(argv, what, timeout=900, preexec_fn=None):
    """Run argv; its key=value words as floats, or RuntimeError naming what."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=preexec_fn)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed: {r.stdout}{r.stderr}")
    return {k: float(v) for k, v in kv(r.stdout).items()}


def bench_ps(g, a, *args, timeout_ms=600000):
    """`girder rpc A bench_ps ARGS...` on node a of net.Girder g: the map."""
    rc, data, r = g.cli(a, "rpc", a["name"], "bench_ps", *args, timeout_ms=timeout_ms)
    if rc != 0 or not isinstance(data, dict):
        raise RuntimeError(f"girder bench_ps {args[0]} failed (exit {rc}): {r.stdout}{r.stderr}")
    return data


class Rounds:
    """Every round's figure, per side ("girder", "erlang") and key."""

    def __init__(self):
        self.sides = {"girder": {}, "erlang": {}}
        self.G, self.E = self.sides["girder"], self.sides["erlang"]

    def put(self, side, key, v):
        self.sides[side].setdefault(key, []).append(float(v))

    def write(self, path, prefix):
        """Append SIDE.PREFIXKEY=median and SIDE.PREFIXKEY_rounds=... to path."""
        if not path:
            return
        with open(path, "a") as f:
            for side, d in self.sides.items():
                for k, v in d.items():
                    f.write(f"{side}.{prefix}{k}={statistics.median(v):g}\n")
                    f.write(f"{side}.{prefix}{k}_rounds={','.join(f'{x:g}' for x in v)}\n")


def heading(title, idle, where=None, warn=True):
    """The section's title, "(WHERE, time, load at the end)", and the
    machine's idle share before the run (flagged below 90% when warn)."""
    print()
    print(f"{title} ({where + ', ' if where else ''}"
          f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.1f} at the end)")
    if idle is not None:
        print(f"machine: {os.cpu_count()} cores, {idle}% idle before the run"
              + ("; WARNING: busy, these figures are unreliable" if warn and idle < 90 else ""))


def ratio_table(G, E, rows, have_e, goal_w=8):
    """One line per row (key, label, unit, scale, lower is better, goal ratio
    or None, goal text, ...): the medians of G[key] and E[key], G/E, and
    whether the goal is met."""
    fmt = "{:<42s} {:>12s} {:>12s} {:>7s}  {:<%ds} {}" % goal_w
    print(fmt.format("benchmark (median of rounds)", "Girder", "Erlang", "G/E", "goal", "met"))
    print(fmt.format("----------------------------", "------", "------", "---", "----", "---"))
    for key, label, unit, scale, lower, goal, goaltxt, *_ in rows:
        gv, ev = med(G.get(key)), med(E.get(key))
        gs = f"{gv * scale:.2f} {unit}" if gv is not None else "-"
        es = f"{ev * scale:.2f} {unit}" if ev is not None else ("-" if have_e else "n/a")
        r = f"{gv / ev:.2f}" if gv and ev else "-"
        met = "-"
        if goal is not None and gv and ev:
            met = "yes" if (gv / ev <= goal if lower else gv / ev >= goal) else "NO"
        print(fmt.format(label, gs, es, r, goaltxt, met))
    return fmt


def every_round(G, E, rows, rounds):
    """Every round's figure of each row, Girder's and Erlang's."""
    print(f"every round ({rounds}), Girder and Erlang alternating:")
    for key, label, unit, scale, *_ in rows:
        for side, d in (("Girder", G), ("Erlang", E)):
            if d.get(key):
                print(f"    {label.strip():<40s} {side}: "
                      + " ".join(f"{x * scale:.2f}" for x in d[key]) + f" {unit}")


def run_main(main, section, cleanup):
    """sys.exit(main()), with cleanup() (kill the nodes) on an error or ^C."""
    try:
        sys.exit(main())
    except RuntimeError as x:
        cleanup()
        print(f"bench/{section}: error: {x}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
