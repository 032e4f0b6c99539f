#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/ports/ports.py - the ports and plugins section of bench/run (issue
16): a Girder port beside an Erlang port, both running the same C echo
program (bench/ports/echo.c, built as DIR/bench/girder-port-echo), and a
behaviour loaded from a plugin beside the same behaviour compiled in.

usage: bench/ports/ports.py --build DIR [--quick] [--rounds N] [--no-erlang]
                            [--results FILE] [--idle PCT] [--plugin-only]

  One girderd-testkit node, started with --plugin DIR/bench/bench_plugin.so.
  1. port round trip: `bench_ps port ECHO N 1 16`: the call's worker spawns a
     port running `ECHO girder`, sends it [Self, Bin16] and waits for Bin16
     back (the program answers [2, "send", [Self, Bin16]]), one in flight,
     each round trip timed; Erlang: girder_ports.erl, open_port with
     {packet, 4} running `ECHO erlang`, port_command / receive {data, _}.
  2. port throughput: the same with WINDOW messages in flight; messages / s.
  3. plugin behaviour: `bench_ps pp BEHAVIOUR N`, local ping-pong (round
     trips / s) against the compiled-in "bench_ponger" and the plugin's
     "plug_ponger" (bench/ports/bench_plugin.c, the same code through the
     plugin API table), run in the order A B B A B A A B in each round; a
     round's figure is the median of its four runs of each. girderd's CPU
     time (utime + stime, /proc/PID/stat) is read around each run: CPU per
     round trip, less sensitive to a loaded host than the wall clock.
     --plugin-only: this row alone (rounds are then quick to repeat).

Goals (issue 16, same run): round trip <= Erlang's; throughput >= 2x
Erlang's; the plugin behaviour within 5% of the compiled-in one. Rounds
alternate Girder and Erlang (default 3); medians with every round's figure.
"""

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
import benchlib  # noqa: E402  (rounds, ratio table, notes)
import net  # noqa: E402  (Girder, kill_all)

WINDOW = 1000
note = benchlib.noter("ports")
girder_call = benchlib.bench_ps


def erl_port(tmp, echo, n, window, size=16):
    argv = [shutil.which("erl"), "-noshell", "-pa", tmp, "-eval",
            f'girder_ports:main(["port", "{echo}", "{n}", "{window}", "{size}"])']
    return benchlib.run_kv(argv, "erl girder_ports", 900, net.child_setup)


# key, label, unit, scale, lower is better, goal, goal text, ratio against
ROWS = (
    ("rt_median", "port round trip, median", "us", 1.0, True, 1.0, "<= 1", "erlang"),
    ("rt_p99", "  p99", "us", 1.0, True, None, "(info)", "erlang"),
    ("tput", f"port throughput, {WINDOW} in flight", "k/s", 1e-3, False, 2.0, ">= 2", "erlang"),
)


def main():
    ap = benchlib.arg_parser()
    ap.add_argument("--plugin-only", action="store_true",
                    help="only the plugin behaviour's ping-pong rows")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    n_rt = 2000 if args.quick else 20000
    n_tput = 20000 if args.quick else 200000
    n_pp = 100000 if args.quick else 2000000
    build = os.path.abspath(args.build)
    echo = os.path.join(build, "bench", "girder-port-echo")
    plugin = os.path.join(build, "bench", "bench_plugin.so")
    for f in (echo, plugin):
        if not os.path.exists(f):
            raise RuntimeError(f"{f} missing: ninja -C {build} bench/girder-port-echo "
                               "bench/bench_plugin.so")

    tmp = tempfile.mkdtemp(prefix="girder-bench-ports.")
    g = net.Girder(build, tmp)
    have_e = bool(shutil.which("erl") and shutil.which("erlc")) and not args.no_erlang
    if not g.available():
        raise RuntimeError(f"testkit/girderd-testkit or cli/girder missing in {build}")
    res = benchlib.Rounds()
    G, put = res.G, res.put
    try:
        a = g.start("pt", extra=["--plugin", plugin])
        if have_e:
            subprocess.run(["erlc", "-o", tmp, os.path.join(HERE, "girder_ports.erl")],
                           check=True)
        for i in range(rounds):
            if args.plugin_only:
                pp_round(g, a, i, n_pp, put)
                continue
            note(f"round {i + 1} of {rounds}: port round trip x {n_rt}")
            d = girder_call(g, a, "port", json.dumps(echo), n_rt, 1, 16)
            put("girder", "rt_median", d["median_us"])
            put("girder", "rt_p99", d["p99_us"])
            if have_e:
                d = erl_port(tmp, echo, n_rt, 1)
                put("erlang", "rt_median", d["erl_port_median_us"])
                put("erlang", "rt_p99", d["erl_port_p99_us"])
            note(f"round {i + 1}: port throughput x {n_tput}, window {WINDOW}")
            d = girder_call(g, a, "port", json.dumps(echo), n_tput, WINDOW, 16)
            put("girder", "tput", d["msgs_per_s"])
            if have_e:
                d = erl_port(tmp, echo, n_tput, WINDOW)
                put("erlang", "tput", d["erl_port_msgs_s"])
            pp_round(g, a, i, n_pp, put)
    finally:
        net.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)

    res.write(args.results, "port_")
    table(res.G, res.E, rounds, n_rt, n_tput, n_pp, args.idle, have_e)
    return 0


def cpu_s(pid):
    """utime + stime of process pid, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pp_round(g, a, i, n_pp, put):
    note(f"round {i + 1}: ping-pong x {n_pp}, compiled-in and plugin")
    # A B B A B A A B within the round, so that slow spells hit both alike
    # (one run swings 0.5-3.0 M/s on a loaded machine whichever behaviour it
    # is); the round's figure of each is the median of its four runs
    order = ("bench_ponger", "plug_ponger") * 2
    order = order[:2] + order[:2][::-1] + order[:2][::-1] + order[:2]
    runs, cpus = {}, {}
    for beh in order:
        c0 = cpu_s(a["proc"].pid)
        d = girder_call(g, a, "pp", json.dumps(beh), n_pp)
        cpus.setdefault(beh, []).append((cpu_s(a["proc"].pid) - c0) / n_pp * 1e9)
        runs.setdefault(beh, []).append(d["rt_per_s"])
    for beh, v in runs.items():
        put("girder", f"pp_{beh}", statistics.median(v))
        put("girder", f"ppcpu_{beh}", statistics.median(cpus[beh]))


def table(G, E, rounds, n_rt, n_tput, n_pp, idle, have_e):
    med = statistics.median
    benchlib.heading("Ports and plugins", idle, "one node on 127.0.0.1")
    fmt = benchlib.ratio_table(G, E, ROWS, have_e, goal_w=9)
    b, p = G.get("pp_bench_ponger"), G.get("pp_plug_ponger")
    if b and p:
        print(fmt.format("local ping-pong, compiled-in behaviour", f"{med(b) * 1e-6:.2f} M/s",
                         "", "", "", ""))
        # paired: each round's plugin / compiled-in (the same minutes of the
        # machine), then the median of those, as the tables section does
        ratio = med([x / y for x, y in zip(p, b)])
        print(fmt.format("local ping-pong, plugin behaviour", f"{med(p) * 1e-6:.2f} M/s", "",
                         f"{ratio:.2f}", ">= 0.95", "yes" if ratio >= 0.95 else "NO"))
        print("  (its G/E column: the median of the rounds' plugin / compiled-in, same node;"
              " per round: " + " ".join(f"{x / y:.2f}" for x, y in zip(p, b)) + ")")
    cb, cp = G.get("ppcpu_bench_ponger"), G.get("ppcpu_plug_ponger")
    if cb and cp:
        print(f"  girderd CPU per round trip: compiled-in {med(cb):.0f} ns, plugin {med(cp):.0f} ns;"
              " compiled-in / plugin per round: "
              + " ".join(f"{x / y:.2f}" for x, y in zip(cb, cp)) + " (clock ticks: use N >= 1e6)")
    print()
    print(f"round trip: {n_rt:,} x 16 B, one in flight; throughput: {n_tput:,} x 16 B; "
          f"ping-pong: {n_pp:,} round trips. Girder's frames carry the msgpack-RPC")
    print("envelope and the reply pid (about 40 B more each way); Erlang's are the raw 16 B.")
    benchlib.every_round(G, E, ROWS, rounds)
    for beh in ("bench_ponger", "plug_ponger"):
        if G.get(f"pp_{beh}"):
            print(f"    ping-pong {beh:<30s} Girder: "
                  + " ".join(f"{x * 1e-6:.3f}" for x in G[f"pp_{beh}"]) + " M/s")
    if not have_e:
        print("Erlang not measured: install erlang-base.")


if __name__ == "__main__":
    benchlib.run_main(main, "ports", net.kill_all)
