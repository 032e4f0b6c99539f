#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/pubsub/pubsub.py - the pub/sub section of bench/run (issue 14): three
Girder nodes beside three Erlang distributed nodes on this machine, in the
same run, rounds interleaved (Girder, then Erlang).

usage: bench/pubsub/pubsub.py --build DIR [--quick] [--rounds N] [--no-erlang]
                              [--results FILE] [--idle PCT]

  The Girder nodes run girderd-testkit (DIR/testkit/), whose rpc module
  `bench_ps` (testkit/mod_bench_ps.c) times everything inside the daemon,
  from the call's worker process; Erlang runs bench/pubsub/girder_pubsub.erl
  in a fresh node A against two long-lived nodes B and C.

  1. broadcast: 1 publisher on A, SUBS subscribers spread evenly over A, B
     and C, MSGS messages of 16 bytes. Girder: `bench_ps bcast [B,C] SUBS
     MSGS 16` (gr_pubsub_publish: one frame per interested node, local
     fan-out there by its keeper); Erlang: pg, one send per remote node to a
     forwarder there that sends to pg:get_local_members, plus the local
     fan-out (as Phoenix.PubSub does). Deliveries / s, from the first publish
     until every subscriber has told the publisher it counted all MSGS.
  2. publish-to-receive latency: one subscriber on B answers each publish
     from A with a message straight back; median and p99 of the round trip.
     Reference row (information): plain remote ping-pong between A and B
     (bench.pingpong / girder_net pingpong, as in the network section), the
     same round trip without pub/sub in the path.
  3. global names: register N distinct names for one process on A (3-node
     cluster), then look each one up; names / s. Girder's "visible" is the
     time until B and C know the last name (Erlang's register_name returns
     once every node has it).

Goals (issue 14, same run): broadcast deliveries >= 3x Erlang; latency <=
Erlang's; global registration >= 10x Erlang's. Prints a table with every
round's figures; with --results appends girder.ps_* / erlang.ps_* lines.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
import benchlib  # noqa: E402  (rounds, ratio table, notes)
import net  # noqa: E402  (Girder, Erlang, kill_all)

note = benchlib.noter("pubsub")
girder_call = benchlib.bench_ps


def erl_run(e, args, timeout=900):
    argv = [e.erl, "-noshell", "-name", e.name("a"), "-setcookie", e.cookie, "-pa", e.tmp,
            "-eval", "girder_pubsub:main([" + ",".join(f'"{x}"' for x in args) + "])"]
    return benchlib.run_kv(argv, f"erl girder_pubsub {' '.join(args)}", timeout,
                           net.child_setup)


# key, label, unit, scale, lower is better, goal ratio (G/E), goal text
ROWS = (
    ("bc", "broadcast deliveries", "M/s", 1e-6, False, 3.0, ">= 3"),
    ("lat_median", "publish-to-receive round trip, median", "us", 1.0, True, 1.0, "<= 1"),
    ("lat_p99", "  p99", "us", 1.0, True, 1.0, "<= 1"),
    ("pp_median", "  reference: remote ping-pong, median", "us", 1.0, True, None, "(info)"),
    ("gl_reg", "global name registrations", "k/s", 1e-3, False, 10.0, ">= 10"),
    ("gl_where", "global name lookups", "M/s", 1e-6, False, None, "(info)"),
    ("gl_visible", "  registrations known on every node", "ms", 1.0, True, None, "(info)"),
)


def main():
    ap = benchlib.arg_parser()
    ap.add_argument("--subs", type=int, default=1000)
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    subs = args.subs
    msgs = 1000 if args.quick else 10000
    n_lat = 2000 if args.quick else 20000
    n_gl = 1000 if args.quick else 2000

    tmp = tempfile.mkdtemp(prefix="girder-bench-pubsub.")
    g = net.Girder(os.path.abspath(args.build), tmp)
    e = net.Erlang(tmp)
    have_e = e.available() and not args.no_erlang
    if not g.available():
        raise RuntimeError(f"testkit/girderd-testkit or cli/girder missing in {args.build}")
    res = benchlib.Rounds()
    put = res.put

    try:
        a = g.start("pa")
        b = g.start("pb", seed=a)
        c = g.start("pc", seed=a)
        g.wait_mesh([a, b, c])
        if have_e:
            subprocess.run([e.erlc, "-o", tmp, os.path.join(HERE, "girder_pubsub.erl")],
                           check=True)
            e.prepare()
            eb, _ = e.start_b()
            ec, _ = e.start_b()
            enodes = f"{eb},{ec}"
        for i in range(rounds):
            note(f"round {i + 1} of {rounds}: broadcast {subs} subscribers x {msgs} messages")
            d = girder_call(g, a, "bcast", json.dumps([b["name"], c["name"]]), subs, msgs, 16)
            put("girder", "bc", d["deliveries_per_s"])
            put("girder", "bc_busy", d["busy"])
            if have_e:
                d = erl_run(e, ["bcast", enodes, str(subs), str(msgs), "16"])
                put("erlang", "bc", d["erl_bc_deliveries_per_s"])
            note(f"round {i + 1}: latency x {n_lat}")
            d = girder_call(g, a, "lat", json.dumps(b["name"]), n_lat)
            put("girder", "lat_median", d["median_us"])
            put("girder", "lat_p99", d["p99_us"])
            if have_e:
                d = erl_run(e, ["lat", eb, str(n_lat)])
                put("erlang", "lat_median", d["erl_lat_median_us"])
                put("erlang", "lat_p99", d["erl_lat_p99_us"])
            # reference: plain remote ping-pong between the same nodes (no
            # pub/sub in the path), to tell the pub/sub hop from the link's cost
            rc, d, r = g.cli(a, "rpc", a["name"], "bench", "pingpong", json.dumps(b["name"]),
                             n_lat, timeout_ms=600000)
            if rc != 0 or not isinstance(d, dict):
                raise RuntimeError(f"girder bench.pingpong failed: {r.stdout}{r.stderr}")
            put("girder", "pp_median", d["median_us"])
            if have_e:
                d = e.run_a(["pingpong", eb, str(n_lat)])
                put("erlang", "pp_median", d["erl_pp_median_us"])
            note(f"round {i + 1}: global names x {n_gl}")
            d = girder_call(g, a, "global", n_gl, json.dumps([b["name"], c["name"]]))
            put("girder", "gl_reg", d["reg_per_s"])
            put("girder", "gl_where", d["whereis_per_s"])
            put("girder", "gl_visible", d["visible_ms"])
            if have_e:
                d = erl_run(e, ["global", enodes, str(n_gl)])
                put("erlang", "gl_reg", d["erl_gl_reg_per_s"])
                put("erlang", "gl_where", d["erl_gl_whereis_per_s"])
                put("erlang", "gl_visible", d["erl_gl_visible_ms"])
    finally:
        net.kill_all()
        if have_e:
            e.finish()
        shutil.rmtree(tmp, ignore_errors=True)

    res.write(args.results, "ps_")
    table(res, rounds, subs, msgs, n_lat, n_gl, args.idle, have_e)
    return 0


def table(res, rounds, subs, msgs, n_lat, n_gl, idle, have_e):
    G, E = res.G, res.E
    benchlib.heading("Pub/sub and global names", idle, "three nodes on 127.0.0.1 each side")
    benchlib.ratio_table(G, E, ROWS, have_e)
    print()
    print(f"broadcast: {subs} subscribers over 3 nodes, {msgs:,} messages of 16 B "
          f"({subs * msgs:,} deliveries); latency: {n_lat:,} round trips; "
          f"global: {n_gl:,} names.")
    print(f"Girder publishes that found a subscriber above its high watermark: "
          f"{', '.join(f'{x:.0f}' for x in G.get('bc_busy', []))} (per round).")
    benchlib.every_round(G, E, ROWS, rounds)
    if not have_e:
        print("Erlang not measured: install erlang-base.")


if __name__ == "__main__":
    benchlib.run_main(main, "pubsub", net.kill_all)
