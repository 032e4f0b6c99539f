#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/net/net.py - the network section of bench/run: Girder nodes beside
Erlang distributed nodes on this machine, in the same run.

usage: bench/net/net.py --build DIR [--quick] [--no-erlang] [--results FILE]
       bench/net/net.py --build DIR --latency [--rounds N] [--count N] [--streams]
                        [--compare DIR]...

  --latency: only rows 1 and 1b's ping-pong, in rounds (default 5), each round
  Girder then Erlang (then every --compare build, as its own pair of nodes),
  with every round's median and p99 printed and the same-run ratios: the
  harness for the latency tails (docs/benchmarks.md, "Latency tails").
  --streams adds row 1b's two one-way streams to every round (1,000,000 x
  16 B and 20,000 x 64 KiB; --quick a tenth): with --compare, a build
  before and after a change measured in one sitting, rounds alternating.

  The Girder nodes run girderd-testkit (DIR/testkit/): girderd plus the test
  kit, whose rpc module `bench` (testkit/mod_bench.c) times the messaging. A
  --compare build from before the test kit left girderd (no DIR/testkit/)
  runs its DIR/daemon/girderd, which then held the `bench` module.

  1. node-to-node rpc latency: two girderd on 127.0.0.1, `girder rpc A rpc
     latency '"B"' N` (A times N node.ping round trips to B inside the daemon);
     Erlang: two `erl -name` nodes, A times N rpc:call(B, erlang, node, [])
     with erlang:monotonic_time. Median, p99, mean.
  1b. process messaging between the nodes, timed inside the nodes:
     `girder rpc A bench pingpong '"B"' N` (a process on A bounces "ping" off
     an echo process on B), `bench stream '"B"' N 16` (one-way small messages
     to a sink on B, which acks after the last) and `bench stream '"B"' N
     65536`; Erlang: girder_net pingpong / stream, the same workloads.
  2. time to notice a hung node: Girder with its default detection (3000 ms)
     and with --detection-ms 1000: SIGSTOP B, poll `girder -n A --json nodes`
     every 50 ms until B is "down". Erlang with net_ticktime 1: A monitors
     nodes, kill -STOP B, time until {nodedown, B}. (Erlang's default
     net_ticktime of 60 s would take about 60-75 s; it is not run.)
  3. wall time of one CLI rpc, from process start to printed result, median of
     M runs interleaved: `girder -n A rpc A node ping`, `erl_call -n B -c
     COOKIE -a 'erlang node []'`, `/bin/true`; ratio (girder - true) /
     (erl_call - true).

Prints a table; with --results, appends key=value lines (girder.net_* and
erlang.net_*) to FILE. docs/benchmarks.md explains how to read it.
"""

import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402  (notes, headings, the main guard)

HOST = "127.0.0.1"
procs = []  # everything started, killed at exit


def child_setup():
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # die with us
    except OSError:
        pass


def spawn(argv, log):
    f = open(log, "a")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                         preexec_fn=child_setup, start_new_session=True)
    f.close()
    procs.append(p)
    return p


def kill_all():
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def wait_until(what, fn, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


note = benchlib.noter("net")


class Girder:
    def __init__(self, build, tmp):
        # girderd plus the test kit: the rpc module `bench` (row 1b) is in it only
        self.girderd = os.path.join(build, "testkit", "girderd-testkit")
        if not os.path.exists(self.girderd):  # a build from before the test kit left girderd
            self.girderd = os.path.join(build, "daemon", "girderd")
        self.girder = os.path.join(build, "cli", "girder")
        self.tmp = tmp
        self.cookie = os.path.join(tmp, "girder.cookie")
        fd = os.open(self.cookie, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, os.urandom(24).hex().encode() + b"\n")
        os.close(fd)
        self.seq = 0

    def available(self):
        return os.access(self.girderd, os.X_OK) and os.access(self.girder, os.X_OK)

    def supports_detection_flag(self):
        out = subprocess.run([self.girderd, "--help"], capture_output=True, text=True).stdout
        return "--detection-ms" in out

    def start(self, short, seed=None, extra=()):
        self.seq += 1
        name = f"{short}{os.getpid()}x{self.seq}@{HOST}"
        port = free_port()
        log = os.path.join(self.tmp, f"{short}{self.seq}.log")
        argv = [self.girderd, "--name", name, "--listen", f"{HOST}:{port}",
                "--cookie-file", self.cookie]
        if seed:
            argv += ["--seed", seed["spec"]]
        p = spawn(argv + list(extra), log)
        node = {"name": name, "spec": f"{name}:{port}", "proc": p, "log": log}
        pat = re.compile(rf"girderd {re.escape(name)} up\b")

        def up():
            if p.poll() is not None:
                raise RuntimeError(f"girderd {name} exited {p.returncode}: see {log}")
            with open(log, errors="replace") as f:
                return pat.search(f.read())

        wait_until(f"girderd {name} up", up, 20)
        return node

    def cli(self, node, *args, timeout_ms=10000):
        argv = [self.girder, "-n", node["spec"], "--cookie-file", self.cookie, "--json",
                "--timeout", str(timeout_ms)] + [str(a) for a in args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_ms / 1000 + 30)
        try:
            data = json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError:
            data = None
        return r.returncode, data, r

    def state(self, observer, other):
        rc, data, _ = self.cli(observer, "nodes", "--only", timeout_ms=2000)
        if rc == 2:  # a CLI from before `nodes` was fleet-wide: no --only
            rc, data, _ = self.cli(observer, "nodes", timeout_ms=2000)
        if rc != 0 or not isinstance(data, list):
            return None
        for e in data:
            if e.get("name") == other["name"]:
                return e.get("state")
        return "absent"

    def wait_up(self, a, b):
        wait_until(f"{a['name']} to see {b['name']} up", lambda: self.state(a, b) == "up", 30,
                   0.1)

    def wait_mesh(self, nodes):
        """Wait until every node of `nodes` sees every other one up."""
        for x in nodes:
            for y in nodes:
                if x is not y:
                    self.wait_up(x, y)

    def start_mesh(self, shorts):
        """One node per short name, the first the others' seed; returns them
        once every one sees every other up."""
        nodes = [self.start(shorts[0])]
        nodes += [self.start(s, seed=nodes[0]) for s in shorts[1:]]
        self.wait_mesh(nodes)
        return nodes

    @staticmethod
    def stop(node):
        p = node["proc"]
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def detect(self, a, b):
        """SIGSTOP b, poll a's view every 50 ms: seconds until b is down."""
        b["proc"].send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            if self.state(a, b) == "down":
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError("girder: hung node never reported down in 60 s")


class Erlang:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cookie = "gbench" + os.urandom(8).hex()
        self.erl = shutil.which("erl")
        self.erlc = shutil.which("erlc")
        self.erl_call = shutil.which("erl_call") or next(
            iter(sorted(glob.glob("/usr/lib/erlang/lib/erl_interface-*/bin/erl_call"))), None)
        self.epmd_was_running = False
        self.seq = 0

    def available(self):
        return bool(self.erl and self.erlc)

    def prepare(self):
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([self.erlc, "-o", self.tmp, os.path.join(here, "girder_net.erl")],
                       check=True)
        epmd = shutil.which("epmd")
        self.epmd_was_running = bool(epmd) and subprocess.run(
            [epmd, "-names"], capture_output=True).returncode == 0

    def name(self, short):
        self.seq += 1
        return f"gb{short}{os.getpid()}x{self.seq}@{HOST}"

    def start_b(self, ticktime=None):
        name = self.name("b")
        argv = [self.erl, "-noshell", "-name", name, "-setcookie", self.cookie, "-pa",
                self.tmp]  # girder_net's echo and sink run here
        if ticktime:
            argv += ["-kernel", "net_ticktime", str(ticktime)]
        p = spawn(argv, os.path.join(self.tmp, f"{name}.log"))
        return name, p

    def run_a(self, args, ticktime=None, timeout=300):
        argv = [self.erl, "-noshell", "-name", self.name("a"), "-setcookie", self.cookie,
                "-pa", self.tmp]
        if ticktime:
            argv += ["-kernel", "net_ticktime", str(ticktime)]
        argv += ["-eval", "girder_net:main([" + ",".join(f'"{a}"' for a in args) + "])"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           preexec_fn=child_setup)
        if r.returncode != 0:
            raise RuntimeError(f"erl {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)

    def call_argv(self, b):
        return [self.erl_call, "-c", self.cookie, "-n", b, "-a", "erlang node []"]

    def finish(self):
        if not self.epmd_was_running and shutil.which("epmd"):
            subprocess.run(["epmd", "-kill"], capture_output=True)


STREAMS = (("small", 16), ("big", 65536))  # key, message size in bytes


def girder_messaging(g, a, b, n_pp, n_small, n_big):
    """One round of process messaging A -> B, timed inside A: bench.pingpong,
    bench.stream (16 B, 64 KiB). Returns {key: value}."""
    out = {}
    note(f"girder: bench.pingpong {n_pp}")
    rc, data, r = g.cli(a, "rpc", a["name"], "bench", "pingpong", json.dumps(b["name"]), n_pp,
                        timeout_ms=300000)
    if rc != 0 or not isinstance(data, dict):
        raise RuntimeError(f"girder bench.pingpong failed (exit {rc}): {r.stdout}{r.stderr}")
    for k in ("count", "median_us", "p99_us", "mean_us"):
        out[f"net_pp_{k}"] = data.get(k)
    for key, size in STREAMS:
        n = n_small if key == "small" else n_big
        note(f"girder: bench.stream {n} x {size} B")
        rc, data, r = g.cli(a, "rpc", a["name"], "bench", "stream", json.dumps(b["name"]), n,
                            size, timeout_ms=600000)
        if rc != 0 or not isinstance(data, dict):
            raise RuntimeError(f"girder bench.stream {size} failed (exit {rc}): "
                               f"{r.stdout}{r.stderr}")
        out[f"net_{key}_count"] = n
        out[f"net_{key}_msgs_s"] = data.get("msgs_per_s")
        out[f"net_{key}_mb_s"] = data.get("mb_per_s")
        out[f"net_{key}_window"] = data.get("window")
    return out


def erlang_messaging(e, eb, n_pp, n_small, n_big):
    """The same workloads between two Erlang nodes (girder_net pingpong / stream),
    one round, each from a fresh node A. Returns {key: value}."""
    out = {}
    note(f"erlang: pingpong {n_pp}")
    d = e.run_a(["pingpong", eb, str(n_pp)])
    for k in ("count", "median_us", "p99_us", "mean_us"):
        out[f"net_pp_{k}"] = d.get(f"erl_pp_{k}")
    for key, size in STREAMS:
        n = n_small if key == "small" else n_big
        note(f"erlang: stream {n} x {size} B")
        d = e.run_a(["stream", eb, str(n), str(size)], timeout=900)
        out[f"net_{key}_count"] = n
        out[f"net_{key}_msgs_s"] = d.get("erl_stream_msgs_s")
        out[f"net_{key}_mb_s"] = d.get("erl_stream_mb_s")
    return out


def latency_main(args):
    """--latency: rpc round trips and remote ping-pong only, in interleaved
    rounds: per round and side the median and p99 of each, then the medians
    of the rounds and the ratios to Erlang's in the same run."""
    n = args.count or (2000 if args.quick else 20000)
    rounds = args.rounds if args.rounds else (1 if args.quick else 5)
    tenth = 10 if args.quick else 1
    streams = [(key, size, (1000000 if key == "small" else 20000) // tenth)
               for key, size in STREAMS] if args.streams else []
    tmp = tempfile.mkdtemp(prefix="girder-bench-net.")
    builds = [("girder", os.path.abspath(args.build))]
    builds += [(f"girder{i + 2}", os.path.abspath(b)) for i, b in enumerate(args.compare or [])]
    e = Erlang(tmp)
    have_e = e.available() and not args.no_erlang
    res = {}  # side -> key -> [per round]
    try:
        sides = []
        for i, (label, build) in enumerate(builds):
            os.makedirs(os.path.join(tmp, label))
            g = Girder(build, os.path.join(tmp, label))
            if not g.available():
                raise RuntimeError(f"girderd-testkit or girder missing in {build}")
            a = g.start(f"g{i}a")  # names unique over the pairs
            b = g.start(f"g{i}b", seed=a)
            g.wait_up(a, b)
            g.wait_up(b, a)
            sides.append((label, g, a, b))
        eb = None
        if have_e:
            e.prepare()
            eb, _ = e.start_b()
        for i in range(rounds):
            note(f"latency round {i + 1} of {rounds}")
            for label, g, a, b in sides:
                d = res.setdefault(label, {})
                for key, mod, fn in (("rpc", "rpc", "latency"), ("pp", "bench", "pingpong")):
                    rc, data, r = g.cli(a, "rpc", a["name"], mod, fn, json.dumps(b["name"]), n,
                                        timeout_ms=300000)
                    if rc != 0 or not isinstance(data, dict):
                        raise RuntimeError(f"{label} {mod}.{fn} failed (exit {rc}): "
                                           f"{r.stdout}{r.stderr}")
                    for k in ("median_us", "p99_us"):
                        d.setdefault(f"{key}_{k}", []).append(float(data[k]))
                for key, size, cnt in streams:
                    rc, data, r = g.cli(a, "rpc", a["name"], "bench", "stream",
                                        json.dumps(b["name"]), cnt, size, timeout_ms=600000)
                    if rc != 0 or not isinstance(data, dict):
                        raise RuntimeError(f"{label} bench.stream {size} failed (exit {rc}): "
                                           f"{r.stdout}{r.stderr}")
                    d.setdefault(f"{key}_msgs_s", []).append(float(data["msgs_per_s"]))
                    d.setdefault(f"{key}_mb_s", []).append(float(data["mb_per_s"]))
            if have_e:
                d = res.setdefault("erlang", {})
                for key, what in (("rpc", "latency"), ("pp", "pingpong")):
                    out = e.run_a([what, eb, str(n)])
                    for k in ("median_us", "p99_us"):
                        d.setdefault(f"{key}_{k}", []).append(float(out[f"erl_{key}_{k}"]))
                for key, size, cnt in streams:
                    out = e.run_a(["stream", eb, str(cnt), str(size)], timeout=900)
                    d.setdefault(f"{key}_msgs_s", []).append(float(out["erl_stream_msgs_s"]))
                    d.setdefault(f"{key}_mb_s", []).append(float(out["erl_stream_mb_s"]))
    finally:
        kill_all()
        if have_e:
            e.finish()
        shutil.rmtree(tmp, ignore_errors=True)
    benchlib.heading(f"Latency rows, {n} round trips per round, {rounds} rounds", args.idle,
                     warn=False)
    fmt_row = "{:<28s} {:>10s} {:>10s}   {}"
    for key, label in (("rpc", "node-to-node rpc"), ("pp", "remote ping-pong")):
        for k in ("median_us", "p99_us"):
            print(fmt_row.format(f"{label} {k[:-3]}", "median", "G/E", "per round, us"))
            ev = res.get("erlang", {}).get(f"{key}_{k}")
            for side in [s[0] for s in sides] + (["erlang"] if ev else []):
                v = res[side][f"{key}_{k}"]
                m = statistics.median(v)
                ratio = f"{m / statistics.median(ev):.2f}" if ev and side != "erlang" else "-"
                # ratio per round: the same round's Girder over Erlang
                per = " ".join(f"{x:.0f}" for x in v)
                if ev and side != "erlang":
                    per += "   (G/E per round: " + " ".join(
                        f"{x / y:.2f}" for x, y in zip(v, ev)) + ")"
                print(fmt_row.format(f"  {side}", f"{m:.1f}", ratio, per))
    for key, size, cnt in streams:
        for unit, k in (("msgs/s", f"{key}_msgs_s"), ("MB/s", f"{key}_mb_s")):
            print(fmt_row.format(f"one-way {size} B, {unit}", "median", "G/E", "per round"))
            ev = res.get("erlang", {}).get(k)
            for side in [s[0] for s in sides] + (["erlang"] if ev else []):
                v = res[side][k]
                m = statistics.median(v)
                ratio = f"{m / statistics.median(ev):.2f}" if ev and side != "erlang" else "-"
                print(fmt_row.format(f"  {side}", f"{m:,.0f}" if unit == "msgs/s" else f"{m:.1f}",
                                     ratio, " ".join(f"{x:.4g}" for x in v)))
        print(f"  ({cnt:,} messages of {size} B a round, one sink on B)")
    if args.results:
        with open(args.results, "a") as f:
            for side, d in res.items():
                for k, v in d.items():
                    f.write(f"{side}.lat_{k}_rounds={','.join(f'{x:g}' for x in v)}\n")
    return 0


# Keys whose rounds are summarised by their median (the rest: the last round's).
ROUND_KEYS = ("net_pp_median_us", "net_pp_p99_us", "net_pp_mean_us", "net_small_msgs_s",
              "net_small_mb_s", "net_big_msgs_s", "net_big_mb_s")


def merge_rounds(rounds, into):
    """Median of each ROUND_KEYS value over the rounds into `into`, with every
    round's value under KEY_rounds (comma-separated, in order)."""
    for k in rounds[0]:
        vals = [num(r.get(k)) for r in rounds]
        if k in ROUND_KEYS and all(v is not None for v in vals):
            into[k] = statistics.median(vals)
            into[f"{k}_rounds"] = ",".join(f"{v:g}" for v in vals)
        else:
            into[k] = rounds[-1].get(k)


def wall_ms(argvs, runs):
    """Run each argv `runs` times, interleaved; {key: median ms}."""
    times = {k: [] for k in argvs}
    for _ in range(runs):
        for k, argv in argvs.items():
            t0 = time.perf_counter()
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            t = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: "
                                   f"{r.stdout.decode(errors='replace')}"
                                   f"{r.stderr.decode(errors='replace')}")
            times[k].append(t * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = benchlib.arg_parser()  # --rounds: messaging rounds (default 5; --quick 1)
    ap.add_argument("--latency", action="store_true",
                    help="only the rpc and ping-pong latency rows, in rounds (tails)")
    ap.add_argument("--count", type=int, default=None,
                    help="--latency: round trips per row and round (default 20000)")
    ap.add_argument("--compare", action="append",
                    help="--latency: another build dir, measured in the same rounds")
    ap.add_argument("--streams", action="store_true",
                    help="--latency: also the one-way 16 B and 64 KiB streams, each round")
    args = ap.parse_args()
    if args.latency:
        return latency_main(args)
    n_rpc = 2000 if args.quick else 20000
    n_small = 100000 if args.quick else 1000000
    n_big = 2000 if args.quick else 20000
    n_cli = 10 if args.quick else 50
    rounds = args.rounds if args.rounds else (1 if args.quick else 5)

    tmp = tempfile.mkdtemp(prefix="girder-bench-net.")
    G, E = {}, {}
    g = Girder(os.path.abspath(args.build), tmp)
    e = Erlang(tmp)
    have_g = g.available()
    have_e = e.available() and not args.no_erlang
    if not have_g:
        note(f"testkit/girderd-testkit or cli/girder missing in {args.build}: "
             "Girder side not measured")
    try:
        if have_e:
            e.prepare()
        eb = None
        if have_e:
            eb, _ = e.start_b()
        if have_g:
            a = g.start("ga")
            b = g.start("gb", seed=a)
            g.wait_up(a, b)
            g.wait_up(b, a)
            note(f"girder: rpc.latency {n_rpc}")
            rc, data, r = g.cli(a, "rpc", a["name"], "rpc", "latency", json.dumps(b["name"]),
                                n_rpc, timeout_ms=300000)
            if rc != 0 or not isinstance(data, dict):
                raise RuntimeError(f"girder rpc.latency failed (exit {rc}): {r.stdout}{r.stderr}")
            for k in ("count", "median_us", "p99_us", "mean_us"):
                G[f"net_rpc_{k}"] = data.get(k)
        if have_e:
            note(f"erlang: rpc:call x {n_rpc}")
            d = e.run_a(["latency", eb, str(n_rpc)])
            for k in ("count", "median_us", "p99_us", "mean_us"):
                E[f"net_rpc_{k}"] = d.get(f"erl_rpc_{k}")
        # Messaging: rounds, Girder and Erlang alternating, so that the machine's
        # slow and fast spells fall on both; each row is the median of its rounds.
        g_rounds, e_rounds = [], []
        for i in range(rounds):
            note(f"messaging round {i + 1} of {rounds}")
            if have_g:
                g_rounds.append(girder_messaging(g, a, b, n_rpc, n_small, n_big))
            if have_e:
                e_rounds.append(erlang_messaging(e, eb, n_rpc, n_small, n_big))
        if g_rounds:
            merge_rounds(g_rounds, G)
        if e_rounds:
            merge_rounds(e_rounds, E)

        # 3. CLI wall time, interleaved so that noise hits all three alike.
        argvs = {"true": ["/bin/true"]}
        if have_g:
            argvs["girder"] = [g.girder, "-n", a["spec"], "--cookie-file", g.cookie, "rpc",
                               a["name"], "node", "ping"]
        if have_e and e.erl_call:
            wait_until("erl_call to reach B", lambda: subprocess.run(
                e.call_argv(eb), capture_output=True).returncode == 0, 20, 0.2)
            argvs["erl_call"] = e.call_argv(eb)
        note(f"cli wall time x {n_cli}: {', '.join(argvs)}")
        w = wall_ms(argvs, n_cli)
        G["net_true_ms"] = w["true"]
        if "girder" in w:
            G["net_cli_ms"] = w["girder"]
        if "erl_call" in w:
            E["net_cli_ms"] = w["erl_call"]
            E["net_true_ms"] = w["true"]
        kill_all_erl = [p for p in procs if p.args[0] == e.erl]
        for p in kill_all_erl:
            p.kill()
            p.wait()

        # 2. hung node.
        if have_g:
            note("girder: SIGSTOP, default detection")
            G["net_detect_s"] = g.detect(a, b)
            G["net_detection_ms"] = 3000
            g.stop(b)
            g.stop(a)
            if g.supports_detection_flag():
                note("girder: SIGSTOP, --detection-ms 1000")
                a = g.start("ga", extra=["--detection-ms", "1000"])
                b = g.start("gb", seed=a, extra=["--detection-ms", "1000"])
                g.wait_up(a, b)
                G["net_detect_1000_s"] = g.detect(a, b)
                g.stop(b)
                g.stop(a)
            else:
                note("girderd has no --detection-ms: the 1000 ms row is not measured")
        if have_e:
            note("erlang: kill -STOP, net_ticktime 1")
            eb1, _ = e.start_b(ticktime=1)
            d = e.run_a(["detect", eb1], ticktime=1, timeout=120)
            E["net_detect_1000_s"] = d.get("erl_detect_s")
            E["net_ticktime_s"] = d.get("erl_ticktime_s")
    finally:
        kill_all()
        if have_e:
            e.finish()
        shutil.rmtree(tmp, ignore_errors=True)

    if args.results:
        with open(args.results, "a") as f:
            for k, v in G.items():
                f.write(f"girder.{k}={v}\n")
            for k, v in E.items():
                f.write(f"erlang.{k}={v}\n")
    table(G, E, have_e, n_rpc, n_cli, e.erl_call is not None, args.idle, n_small, rounds)
    return 0


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def table(G, E, have_e, n_rpc, n_cli, have_erl_call, idle, n_small, rounds):
    fmt_row = "{:<50s} {:>14s} {:>16s} {:>8s}"
    benchlib.heading("Network benchmarks", idle, "two nodes on 127.0.0.1")
    print(fmt_row.format("benchmark", "Girder", "Erlang", "G/E"))
    print(fmt_row.format("---------", "------", "------", "---"))

    def row(label, k, unit, scale=1.0, ek=None, ratio=True, etxt=None):
        gv, ev = num(G.get(k)), num(E.get(ek or k))
        gs = f"{gv * scale:.2f} {unit}" if gv is not None else "-"
        if etxt is not None:
            es = etxt
        else:
            es = f"{ev * scale:.2f} {unit}" if ev is not None else ("-" if have_e else "n/a")
        r = f"{gv / ev:.2f}" if ratio and gv and ev else "-"
        print(fmt_row.format(label, gs, es, r))

    row(f"node-to-node rpc round trip, median ({n_rpc})", "net_rpc_median_us", "us")
    row("  p99", "net_rpc_p99_us", "us")
    row("  mean", "net_rpc_mean_us", "us")
    row(f"remote ping-pong round trip, median ({n_rpc}) (***)", "net_pp_median_us", "us")
    row("  p99", "net_pp_p99_us", "us")
    row(f"one-way small messages ({n_small:,} x 16 B) (***)", "net_small_msgs_s", "k/s", 1e-3)
    row("64 KiB messages (MB/s) (***)", "net_big_mb_s", "MB/s")
    row("hung node noticed, default settings", "net_detect_s", "s", ratio=False,
        etxt="~60-75 s (*)")
    row("hung node noticed, 1 s (detection/ticktime)", "net_detect_1000_s", "s")
    gt, gc, ec = num(G.get("net_true_ms")), num(G.get("net_cli_ms")), num(E.get("net_cli_ms"))
    gs = f"{gc:.2f} ms" if gc is not None else "-"
    es = f"{ec:.2f} ms" if ec is not None else ("n/a" if not (have_e and have_erl_call) else "-")
    r = f"{(gc - gt) / (ec - gt):.2f}" if gc is not None and ec is not None and ec > gt else "-"
    print(fmt_row.format(f"one CLI rpc, wall, median of {n_cli} (**)", gs, es, r))
    if gt is not None:
        print(fmt_row.format("  /bin/true, same harness (baseline)", f"{gt:.2f} ms",
                             f"{gt:.2f} ms", "-"))
    print()
    print("(*) Erlang's default net_ticktime (60 s) notices a hung node after 60-75 s; not run.")
    print("    Girder's default detection is 3000 ms. The 1 s row: Girder --detection-ms 1000,")
    print("    Erlang -kernel net_ticktime 1. Girder is timed by polling `girder nodes` every")
    print("    50 ms (adds up to ~50 ms + one CLI call); Erlang by its nodedown message.")
    print("Ping-pong: a process on A and an echo process on B, one message in flight;")
    print("    streams: a sender on A, a sink on B that acks after the last message (the clock")
    print("    stops when the ack is back); Girder paces its sender with a window of acked")
    print("    messages, Erlang relies on its busy dist port. MB = 10^6 bytes. G/E: lower is")
    print("    better for times, higher for rates. Girder encrypts the link, Erlang does not.")
    print("(**) girder -n A rpc A node ping vs erl_call -n B -a 'erlang node []'; G/E is")
    print("    (girder - true) / (erl_call - true): the cost above starting any process.")
    plural = "s" if rounds != 1 else ""
    print(f"(***) median of {rounds} round{plural}, Girder and Erlang alternating; "
          "each round's figures:")
    for label, k, scale in (("ping-pong median us", "net_pp_median_us", 1.0),
                            ("small k/s", "net_small_msgs_s", 1e-3),
                            ("64 KiB MB/s", "net_big_mb_s", 1.0)):
        for side, d in (("Girder", G), ("Erlang", E)):
            runs = d.get(f"{k}_rounds")
            if runs:
                vals = " ".join(f"{float(v) * scale:.0f}" for v in runs.split(","))
                print(f"    {label:<20s} {side}: {vals}")
    if not have_e:
        print("Erlang not measured: install erlang-base (scripts/setup-deps --bench).")


if __name__ == "__main__":
    benchlib.run_main(main, "net", kill_all)
