#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/tables/tables.py - the tables section of bench/run: Girder's table
engine beside Erlang's ETS and Mnesia on this machine, in the same run.

usage: bench/tables/tables.py --build DIR [--rounds N] [--local-rounds N] [--quick]
                              [--no-erlang] [--results FILE] [--idle PCT]

Rounds alternate Girder and Erlang (default 3); each row shows the median of
the rounds, every round's figure, and the ratio.

  1. Local operations (girder-bench-tables --only set16 against ETS,
     bench/tables/girder_tables.erl): 100,000 keys "key:%08d", random gets /
     lookups and puts / inserts of existing keys, from one thread / process
     and from two threads / one process per scheduler, 500,000 each.
     --local-rounds rounds (default twice --rounds), in the order G E, E G,
     G E...: each round's ratio is Girder's figure over the ETS figure
     measured next to it, and the row's ratio is the median of those ratios.
     Two figures per side: ops per CPU second of the whole OS process
     (Girder: CLOCK_PROCESS_CPUTIME_ID; the BEAM: utime + stime of
     /proc/self/stat, started with +sbwt none so that idle schedulers do
     not spin), which the verdict uses, and ops/s of wall time, shown for
     information: on a machine shared with other load the wall figure
     measures mostly the other load (ratios swung 2x between sittings).
     ETS's figure is the better of a default table and one with read and
     write concurrency. Memory per entry: Girder's accounted bytes per entry,
     ETS's ets:info(T, memory) words x wordsize / entries.
  2. Replicated puts on 3 nodes: three girderd-testkit nodes, a replicated
     table, `bench.tfill` on each node at once (N/3 distinct keys each,
     24-byte values); the clock stops when every node's `table info` says it
     holds all N. Erlang: three distributed nodes, a ram_copies table on all
     three, N/3 mnesia:dirty_write from a process on each node at once, the
     clock stopped when every node's table holds all N.
  3. Catch-up: the earlier rounds' tables are dropped, then a fourth Girder
     node joins and the time until it holds the N keys of the last round's
     table (no Erlang row: Mnesia's add_table_copy is a different
     operation); 3 times (1 with --quick), each a new node, median shown.
  4. Durable puts: 50 writer threads, fsync `always` (girder-bench-tables
     --dir under /var/tmp): puts/s and puts per fsync (group commit).
  5. Convergence after a partition (bench/tables/partition.py, needs root,
     nft and cgroup2, else skipped): 10,000 keys changed on each side of a
     real partition; seconds from the end of the partition until the mesh
     is back, and until every node holds the same table; twice (once with
     --quick), median shown.

Prints a table; with --results, appends key=value lines (girder.tab_* and
erlang.tab_*) to FILE. docs/benchmarks.md ("Tables") explains it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
import benchlib  # noqa: E402  (notes, key=value, medians, headings)
import net  # noqa: E402  (Girder/Erlang node helpers of the network section)
import partition  # noqa: E402  (the convergence row)

note = benchlib.noter("tables")
kv = benchlib.kv
med = benchlib.med


LOCAL = (("get_1", "get_1t", "get_1p"), ("get_n", "get_2t", "get_Np"),
         ("put_1", "put_1t", "put_1p"), ("put_n", "put_2t", "put_Np"))


def girder_local(build, keys, ops):
    exe = os.path.join(build, "bench", "girder-bench-tables")
    d = benchlib.run_kv([exe, "--keys", str(keys), "--ops", str(ops), "--only", "set16"],
                        "girder-bench-tables", 3600)
    r = {"bytes_per_entry": d["set16_bytes_per_entry"]}
    for k, g, _ in LOCAL:
        r[k] = d[f"set16_{g}"]
        r[k + "_cpu"] = d[f"set16_{g}_per_proc_cpu_s"]
    return r


def erlang_local(tmp, keys, ops):
    hz = os.sysconf("SC_CLK_TCK")
    d = benchlib.run_kv(["erl", "-noshell", "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio",
                         "none", "-pa", tmp, "-eval",
                         f'girder_tables:main(["ets", "{keys}", "{ops}", "{hz}"])'],
                        "erl ets bench", 3600)
    r = {"bytes_per_entry": d["ets_bytes_per_entry"], "procs": int(d["ets_procs"])}
    for k, _, e in LOCAL:
        r[k] = d[f"ets_{e}"]
        r[k + "_cpu"] = d[f"ets_{e}_per_proc_cpu_s"]
    return r


def table_entries(g, node, table):
    rc, data, _ = g.cli(node, "table", "info", table, timeout_ms=5000)
    return data.get("entries") if rc == 0 and isinstance(data, dict) else None


def girder_repl(g, nodes, table, n_keys):
    """bench.tfill on every node at once; seconds until each holds n_keys."""
    a = nodes[0]
    rc, data, r = g.cli(a, "table", "create", table, "--mode", "replicated")
    if rc != 0:
        raise RuntimeError(f"table create failed: {r.stdout}{r.stderr}")
    for n in nodes:
        net.wait_until(f"{table} on {n['name']}",
                       lambda n=n: table_entries(g, n, table) is not None, 20)
    per = n_keys // len(nodes)
    argvs = [[g.girder, "-n", n["spec"], "--cookie-file", g.cookie, "--json", "--timeout",
              "300000", "rpc", n["name"], "bench", "tfill", json.dumps(table), str(i * per),
              str(per)] for i, n in enumerate(nodes)]
    t0 = time.monotonic()
    ps = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in argvs]
    for p in ps:
        out, err = p.communicate(timeout=400)
        if p.returncode != 0:
            raise RuntimeError(f"bench.tfill failed: {out.decode()}{err.decode()}")
    total = per * len(nodes)
    net.wait_until("every node holds every write",
                   lambda: all(table_entries(g, n, table) == total for n in nodes), 300, 0.01)
    return total, time.monotonic() - t0


def erlang_repl(e, tmp, n_keys):
    """Mnesia on three fresh nodes: B and C started, A runs the bench."""
    b, _ = e.start_b()
    c, _ = e.start_b()
    for name in (b, c):
        net.wait_until(f"{name} registered with epmd",
                       lambda name=name: name.split("@")[0] in subprocess.run(
                           ["epmd", "-names"], capture_output=True, text=True).stdout, 30, 0.1)
    argv = ["erl", "-noshell", "-name", e.name("a"), "-setcookie", e.cookie, "-pa", tmp,
            "-eval", f'girder_tables:main(["mnesia", "{n_keys}", "{b}", "{c}"])']
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                       preexec_fn=net.child_setup)
    for p in net.procs[-2:]:
        p.kill()
    if r.returncode != 0:
        raise RuntimeError(f"erl mnesia bench failed: {r.stdout}{r.stderr}")
    d = kv(r.stdout)
    return int(d["mnesia_puts"]), float(d["mnesia_s"])


def girder_durable(build, tmpdir, writers):
    exe = os.path.join(build, "bench", "girder-bench-tables")
    d = benchlib.run_kv([exe, "--only", "none", "--keys", "100000", "--dir", tmpdir,
                         "--writers", str(writers)], "girder-bench-tables --dir", 600)
    return d[f"durable_always_{writers}w_puts"], d[f"durable_always_{writers}w_puts_per_fsync"]


def main():
    ap = benchlib.arg_parser()
    ap.add_argument("--local-rounds", type=int, default=None,
                    help="rounds of the local rows (default: twice --rounds)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    rounds = args.rounds or (1 if args.quick else 3)
    lrounds = args.local_rounds or 2 * rounds
    keys = 100000
    ops = 200000 if args.quick else 500000
    repl_keys = 30000 if args.quick else 102000
    tmp = tempfile.mkdtemp(prefix="girder-bench-tables.")
    e = net.Erlang(tmp)
    have_e = e.available() and not args.no_erlang
    g = net.Girder(build, tmp)
    if not g.available():
        raise SystemExit(f"bench/tables: girderd-testkit or girder missing in {build}")
    gl, el, gr, er = [], [], [], []
    catch = []
    durable = None
    part = None
    try:
        if have_e:
            e.prepare()
            subprocess.run(["erlc", "-o", tmp, os.path.join(HERE, "girder_tables.erl")],
                           check=True)
        for i in range(lrounds):
            # G E, E G, ...: a trend in the machine's load hits both sides alike
            for side in (("g", "e") if i % 2 == 0 else ("e", "g")):
                if side == "g":
                    note(f"local round {i + 1} of {lrounds}: Girder")
                    gl.append(girder_local(build, keys, ops))
                elif have_e:
                    note(f"local round {i + 1} of {lrounds}: ETS")
                    el.append(erlang_local(tmp, keys, ops))
        # the nodes of the replicated rows start after the local rows: three
        # idle daemons (heartbeats, their dist threads' spins) beside a
        # memory-bound get loop were noise the ETS side did not share alike
        nodes = g.start_mesh(("ta", "tb", "tc"))
        for i in range(rounds):
            note(f"round {i + 1} of {rounds}: replicated, Girder ({repl_keys} puts)")
            gr.append(girder_repl(g, nodes, f"bt{i}", repl_keys))
            if have_e:
                note(f"round {i + 1} of {rounds}: replicated, Mnesia ({repl_keys} puts)")
                er.append(erlang_repl(e, tmp, repl_keys))
        # the catch-up times one table of repl_keys keys: the earlier rounds'
        # tables go first (a new node gets only their table tombstones)
        for i in range(rounds - 1):
            g.cli(nodes[0], "table", "drop", f"bt{i}")
        for n in nodes:
            net.wait_until(f"the drops on {n['name']}", lambda n=n: all(
                table_entries(g, n, f"bt{i}") is None for i in range(rounds - 1)), 30)
        want = gr[-1][0]
        for r in range(1 if args.quick else 3):
            note(f"catch-up {r + 1}: a new node joins")
            t0 = time.monotonic()
            d = g.start(f"td{r}", seed=nodes[0])
            net.wait_until("the new node holds every key",
                           lambda: table_entries(g, d, f"bt{rounds - 1}") == want, 120, 0.01)
            catch.append(time.monotonic() - t0)
            net.Girder.stop(d)
        note("durable puts, 50 writers, fsync always")
        ddir = tempfile.mkdtemp(prefix="girder-bench-durable.", dir="/var/tmp")
        try:
            durable = girder_durable(build, ddir, 50)
        finally:
            shutil.rmtree(ddir, ignore_errors=True)
        why = partition.unavailable()
        if why:
            note(f"partition row skipped: {why}")
        else:
            note("convergence after a partition, 10,000 keys changed on each side")
            part = partition.run(build, 10000, 1 if args.quick else 2, note)
    finally:
        net.kill_all()
        if have_e:
            e.finish()
        shutil.rmtree(tmp, ignore_errors=True)

    res = {}
    benchlib.heading(f"Tables: {lrounds} local rounds (G E, E G, ...), {rounds} rounds of the "
                     "rest (Girder then Erlang)", args.idle, warn=False)
    fmt = "{:<46s} {:>11s} {:>11s} {:>7s} {:>7s} {:>4s}"
    print(fmt.format("benchmark", "Girder", "Erlang", "G/E", "goal", "met"))
    procs = el[0]["procs"] if el else 2
    print(f"local rows: {lrounds} rounds (G E, E G, ...); verdict on ops per CPU second of "
          "each OS process, the median of the per-round ratios; wall ops/s for information")
    rows = [("get", "get_1", "get, 1 thread / ETS lookup 1 proc", 2.0),
            ("getn", "get_n", f"get, 2 threads / ETS {procs} procs", 2.0),
            ("put", "put_1", "put, 1 thread / ETS insert 1 proc", 1.0),
            ("putn", "put_n", f"put, 2 threads / ETS {procs} procs", 1.0)]
    for key, k, label, goal in rows:
        for unit, kk in (("per CPU-s", k + "_cpu"), ("wall /s", k)):
            gv = med([x[kk] for x in gl])
            ev = med([x[kk] for x in el])
            ratios = [a[kk] / b[kk] for a, b in zip(gl, el) if b[kk]]
            ratio = med(ratios) if ratios else None
            sfx = "_cpu" if kk.endswith("_cpu") else ""
            res[f"girder.tab_{key}{sfx}_ops_s"] = gv
            if ev:
                res[f"erlang.tab_{key}{sfx}_ops_s"] = ev
                res[f"girder.tab_{key}{sfx}_ratio"] = ratio
            verdict = ("yes" if ratio >= goal else "NO") if ratio and sfx else "-"
            print(fmt.format(f"{label} ({unit})", f"{gv:,.0f}", f"{ev:,.0f}" if ev else "-",
                             f"{ratio:.2f}" if ratio else "-",
                             f">={goal:g}" if sfx else "info", verdict))
            print("    rounds: G " + " ".join(f"{x[kk] / 1e3:,.0f}k" for x in gl)
                  + ("   E " + " ".join(f"{x[kk] / 1e3:,.0f}k" for x in el) if el else "")
                  + ("   G/E " + " ".join(f"{r:.2f}" for r in ratios) if ratios else ""))
    gb = med([x["bytes_per_entry"] for x in gl])
    eb = med([x["bytes_per_entry"] for x in el])
    res["girder.tab_bytes_per_entry"] = gb
    print(fmt.format("memory per entry (bytes)", f"{gb:.1f}", f"{eb:.1f}" if eb else "-",
                     f"{gb / eb:.2f}" if eb else "-", "report", "-"))
    grate = [n / s for n, s in gr]
    erate = [n / s for n, s in er]
    gv, ev = med(grate), med(erate)
    res["girder.tab_repl_puts_s"] = gv
    if ev:
        res["erlang.tab_repl_puts_s"] = ev
    print(fmt.format("replicated puts, 3 nodes (puts/s)", f"{gv:,.0f}",
                     f"{ev:,.0f}" if ev else "-", f"{gv / ev:.2f}" if ev else "-", ">=2",
                     ("yes" if gv / ev >= 2 else "NO") if ev else "-"))
    print(f"    rounds ({gr[0][0]} puts, until every replica holds every write): G "
          + " ".join(f"{x:,.0f}" for x in grate)
          + ("   Mnesia dirty_write " + " ".join(f"{x:,.0f}" for x in erate) if er else ""))
    if catch:
        cv = med(catch)
        res["girder.tab_catchup_s"] = cv
        print(fmt.format(f"new node catches up {gr[-1][0]} keys (s)", f"{cv:.2f}", "-",
                         "-", "<2", "yes" if cv < 2 else "NO"))
        print("    runs: " + " ".join(f"{x:.2f}" for x in catch))
    if durable:
        res["girder.tab_durable_puts_s"], res["girder.tab_durable_per_fsync"] = durable
        print(fmt.format("durable puts, 50 writers (puts/s)", f"{durable[0]:,.0f}", "-", "-",
                         "report", "-"))
        print(fmt.format("  puts per fsync (group commit)", f"{durable[1]:.1f}", "-", "-",
                         ">=10", "yes" if durable[1] >= 10 else "NO"))
    if part:
        mesh, conv = med([m for m, _ in part]), med([c - m for m, c in part])
        res["girder.tab_part_mesh_s"], res["girder.tab_part_conv_s"] = mesh, conv
        print(fmt.format("partition healed: mesh again (s)", f"{mesh:.2f}", "-", "-", "<1",
                         "yes" if mesh < 1 else "NO"))
        print(fmt.format("  then 2x10,000 changed keys converged (s)", f"{conv:.2f}", "-",
                         "-", "<1", "yes" if conv < 1 else "NO"))
        print("    runs (mesh, converged, from the partition's end): "
              + "  ".join(f"{m:.2f} {c:.2f}" for m, c in part))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.results:
        with open(args.results, "a") as f:
            for k, v in res.items():
                f.write(f"{k}={v:g}\n")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main, "tables", net.kill_all)
