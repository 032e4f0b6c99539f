# SPDX-License-Identifier: Apache-2.0
"""benchsmoke - the test kit's rpc module bench_ps (testkit/mod_bench_ps.c),
which bench/pubsub/pubsub.py and bench/ports/ports.py time, called with tiny
counts: every function answers, with the shape and the counts asked for.
Not a benchmark: no figure is judged, only that it is a positive number.
"""

import json
import os
import shutil

from harness import EXIT_OK, EXIT_REMOTE, check, testkit


def _num(d, k):
    v = d.get(k) if isinstance(d, dict) else None
    check(isinstance(v, (int, float)) and v > 0, f"{k} is not a positive number: {d!r}")
    return v


@testkit
def test_bench_smoke(c):
    """bench_ps.bcast (30 subscribers over 3 nodes, 20 messages: 600
    deliveries), lat, global (names known on the other nodes), pp against the
    compiled-in ponger and the plugin's (bench/ports/bench_plugin.c loaded with
    --plugin), port through the echo program (one in flight and windowed),
    and badarg for a bad argument."""
    plug_src = os.path.join(c.build, "bench", "bench_plugin.so")
    echo = os.path.join(c.build, "bench", "girder-port-echo")
    check(os.path.exists(plug_src) and os.path.exists(echo), "bench/ports not built")
    plug = os.path.join(c.dir, "bench_plugin.so")
    shutil.copyfile(plug_src, plug)
    os.chmod(plug, 0o755)
    a = c.node("a", extra=["--plugin", plug])
    b = c.node("b", seeds=[a])
    d = c.node("c", seeds=[a])
    c.wait_mesh([a, b, d])

    def rpc(*args):
        r = c.expect(c.cli("rpc", a.name, "bench_ps", *args, node=a, timeout_ms=60000),
                     EXIT_OK, what=f"bench_ps {args[0]}")
        return r.data

    r = rpc("bcast", json.dumps([b.name, d.name]), 30, 20, 16)
    check(r.get("subs") == 30 and r.get("local_subs") == 10 and r.get("msgs") == 20
          and r.get("deliveries") == 600 and r.get("nodes") == 2, f"bcast: {r!r}")
    _num(r, "deliveries_per_s")
    _num(r, "seconds")

    r = rpc("lat", json.dumps(b.name), 50)
    check(r.get("count") == 50 and _num(r, "p99_us") >= _num(r, "median_us"), f"lat: {r!r}")

    r = rpc("global", 20, json.dumps([b.name, d.name]))
    check(r.get("count") == 20, f"global: {r!r}")
    for k in ("reg_per_s", "whereis_per_s", "visible_ms"):
        _num(r, k)

    for beh in ("bench_ponger", "plug_ponger"):
        r = rpc("pp", json.dumps(beh), 100)
        check(r.get("count") == 100, f"pp {beh}: {r!r}")
        _num(r, "rt_per_s")

    r = rpc("port", json.dumps(echo), 50, 1, 16)
    check(r.get("count") == 50 and r.get("window") == 1, f"port: {r!r}")
    check(_num(r, "p99_us") >= _num(r, "median_us"), f"port: {r!r}")
    r = rpc("port", json.dumps(echo), 500, 10, 16)
    check(r.get("count") == 500 and r.get("window") == 10, f"port windowed: {r!r}")
    _num(r, "msgs_per_s")

    c.expect(c.cli("rpc", a.name, "bench_ps", "bcast", json.dumps([a.name]), 30, 20, 16, node=a),
             EXIT_REMOTE, "badarg", "bcast to its own node")
    c.expect(c.cli("rpc", a.name, "bench_ps", "pp", '"no_such_behaviour"', 10, node=a),
             EXIT_REMOTE, "bad_behaviour", "pp with an unknown behaviour")
