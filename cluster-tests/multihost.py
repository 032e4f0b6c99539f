# SPDX-License-Identifier: Apache-2.0
"""multihost - the mh_* cluster tests: deploy/docker-compose.yml's services as
separate hosts (cluster-tests/netns.py: a network namespace each, a bridge, a
dnsmasq serving the service names). Each test takes the runner's Cluster only
for its directory; without root, iproute2 or dnsmasq it prints a SKIPPED line
(docs/testing.md, "Multi-host tests")."""

import json
import re
import time

from harness import EXIT_OK, EXIT_REMOTE, check, wait_until
from netns import run_on


def _expect(r, rc, what):
    check(r.rc == rc, f"{what}: expected exit {rc}: {r!r}")
    return r


def _up_mesh(nc):
    hs = nc.compose_up()
    t0 = time.monotonic()
    nc.wait_mesh(hs, timeout=60)
    return hs, time.monotonic() - t0


def test_mh_discovery(c):
    """The compose services as three hosts that know no seed: each looks up
    the network alias `girder` (three A records in the dnsmasq) and the full
    mesh forms; each node found itself among the addresses and did not dial
    it; the image's HEALTHCHECK passes on every host (in its own UTS
    namespace, hostname = the service's)."""
    def body(nc):
        hs = nc.compose_up()
        for h in hs:
            check("--seed" not in " ".join(h.argv) and "--discover-dns" in h.argv,
                  f"{h.hostname}: the compose command must use discovery only: {h.argv}")
        addrs = nc.resolve(hs[0], "girder")
        check(addrs == sorted(h.ip for h in hs), f"girder has one A record per node: {addrs}")
        t0 = time.monotonic()
        nc.wait_mesh(hs, timeout=60)
        print(f"    full mesh through DNS in {time.monotonic() - t0:.2f} s after every node "
              f"was up", flush=True)
        t0 = time.monotonic()
        for h in hs:
            # its own lookup answered: three addresses, one of them its own
            wait_until(f"{h.hostname}'s lookup of girder", lambda h=h: "discover girder: 3 "
                       "address(es)" in h.log_text(), 30, interval=0.1)
            text = h.log_text()
            check(f"discover girder: {h.ip}:4370 is this node" in text,
                  f"{h.hostname} must recognise its own address:\n{text[-2000:]}")
            check("handshake with" not in text and "name clash" not in text,
                  f"{h.hostname}: a failed handshake (self-dial?):\n{text[-2000:]}")
        print(f"    every node's lookup answered {time.monotonic() - t0:.2f} s after the mesh",
              flush=True)
        check(any(f"discover girder: {o.ip}:4370 is {o.name}" in h.log_text()
                  for h in hs for o in hs if o is not h),
              "no node was learnt through a probe of a discovered address")
        hc = nc.image["healthcheck"]
        check(hc and "girder" in " ".join(hc), f"the image has a HEALTHCHECK using the CLI: {hc}")
        for h in hs:
            p, secs = h.run(hc, uts=True, timeout=40)
            check(p.returncode == 0, f"HEALTHCHECK on {h.hostname}: exit {p.returncode} "
                  f"{p.stdout}{p.stderr}")
        print("    HEALTHCHECK passes on every host", flush=True)
    run_on(c, body)


def test_mh_messaging(c):
    """Across hosts: rpc node.self to every other host, an echo spawned on c
    from a, called from a and sent to from b (counted), and publishes from a
    reaching subscribers on b and c (one message per interested node)."""
    def body(nc):
        (a, b, x), _ = _up_mesh(nc)
        for via in (a, b, x):
            for to in (a, b, x):
                r = _expect(via.cli("rpc", to.name, "node", "self"), EXIT_OK,
                            f"rpc {via.hostname} -> {to.hostname}")
                check(r.data == to.name, f"node.self: {r!r}")
        pid = _expect(a.cli("spawn", "--on", x.name, "echo"), EXIT_OK, "spawn on c").data
        check(isinstance(pid, str) and pid.startswith(f"<{x.name}."), f"a pid of c: {pid!r}")
        r = _expect(a.cli("call", pid, '{"hello": [1, 2]}'), EXIT_OK, "call from a")
        check(r.data == {"hello": [1, 2]}, f"echo answers: {r!r}")
        for i in range(3):
            _expect(b.cli("send", pid, f'{{"n": {i}}}'), EXIT_OK, "send from b")
        wait_until("the echo on c to count 3 sends",
                   lambda: a.cli("call", pid, '"count"').data == 3, 15)

        subs = {}
        for h in (b, x):
            subs[h.hostname] = _expect(h.cli("spawn", "echo"), EXIT_OK, "spawn").data
            _expect(h.cli("rpc", h.name, "pubsub", "subscribe", f'"{subs[h.hostname]}"',
                          '"orders.*"'), EXIT_OK, "subscribe")
        wait_until("a to learn the interest of b and c",
                   lambda: (a.cli("rpc", a.name, "pubsub", "cluster").data or {})
                   .get("interest") == 2, 20)
        r = _expect(a.cli("pub", "orders.eu", '{"id": 7}'), EXIT_OK, "pub from a")
        check(r.data.get("nodes") == 2, f"one message per interested node: {r!r}")
        for h in (b, x):
            wait_until(f"the subscriber on {h.hostname} to count 1",
                       lambda h=h: h.cli("call", subs[h.hostname], '"count"').data == 1, 15)
    run_on(c, body)


def _table(h, *args):
    return h.cli("table", *args, timeout_ms=10000)


def _dump(h, table):
    r = _expect(_table(h, "scan", table), EXIT_OK, f"scan on {h.hostname}")
    return sorted([json.dumps(k, sort_keys=True), json.dumps(v, sort_keys=True)]
                  for k, v in r.data)


def test_mh_partition(c):
    """Host c's cable is pulled (`ip link set` down on its veth in the
    bridge): a and b see c down and c sees them down; both sides write the
    replicated table p (and c keeps serving its copy); the cable back, the
    mesh forms again with no operator step and every copy of p is the same,
    holding both sides' writes."""
    def body(nc):
        (a, b, x), _ = _up_mesh(nc)
        _expect(_table(a, "create", "p", "--mode", "replicated"), EXIT_OK, "create p")
        for h in (a, b, x):
            wait_until(f"p on {h.hostname}", lambda h=h: _table(h, "info", "p").rc == EXIT_OK,
                       15)
        _expect(_table(a, "put", "p", '"before"', "1"), EXIT_OK, "put before")
        wait_until("p replicated", lambda: all(len(_dump(h, "p")) == 1 for h in (a, b, x)), 15)

        x.link(False)
        t_cut = time.monotonic()

        def state(obs, of):
            return (obs.nodes() or {}).get(of.name, {}).get("state")
        wait_until("both sides to see the partition",
                   lambda: all(state(o, x) not in (None, "up") for o in (a, b))
                   and all(state(x, o) not in (None, "up") for o in (a, b)), 30, interval=0.2)
        print(f"    partition seen by both sides after {time.monotonic() - t_cut:.2f} s",
              flush=True)
        _expect(_table(a, "put", "p", '"from-a"', '"a"'), EXIT_OK, "put on a")
        _expect(_table(b, "incr", "p", '"ctr"'), EXIT_OK, "incr on b")
        _expect(_table(x, "put", "p", '"from-c"', '"c"'), EXIT_OK, "put on c (cut off)")
        _expect(_table(x, "incr", "p", '"ctr"'), EXIT_OK, "incr on c")
        r = _expect(_table(x, "get", "p", '"from-c"'), EXIT_OK, "read on c")
        check(r.data["value"] == "c", f"c reads its own write: {r!r}")
        _expect(_table(a, "get", "p", '"from-c"'), EXIT_REMOTE, "a cannot see c's write yet")

        x.link(True)
        t_heal = time.monotonic()
        nc.wait_mesh([a, b, x], timeout=60)
        t_mesh = time.monotonic() - t_heal
        want = None

        def converged():
            nonlocal want
            dumps = [_dump(h, "p") for h in (a, b, x)]
            want = dumps[0]
            return all(d == dumps[0] for d in dumps) and len(dumps[0]) == 4
        wait_until("p to converge after the heal", converged, 60, interval=0.3)
        got = {json.loads(k): json.loads(v) for k, v in want}
        check(got == {"before": 1, "from-a": "a", "from-c": "c", "ctr": 2},
              f"both sides' writes, increments summed: {got}")
        print(f"    healed: mesh again in {t_mesh:.2f} s, p converged in "
              f"{time.monotonic() - t_heal:.2f} s", flush=True)
    run_on(c, body)


def test_mh_restart(c):
    """Host b's girderd is killed (SIGKILL) and started again with the same
    command and data volume: the others see it down, then up with a new
    creation; its disk table, written before the kill, is there."""
    def body(nc):
        (a, b, x), _ = _up_mesh(nc)
        _expect(_table(b, "create", "d", "--durability", "disk", "--fsync", "always"), EXIT_OK,
                "create disk table on b")
        _expect(_table(b, "put", "d", '"k"', '{"v": 1}'), EXIT_OK, "put")
        before = (a.nodes() or {}).get(b.name, {}).get("creation")
        b.kill9()
        wait_until("a and c to see b down",
                   lambda: all((o.nodes() or {}).get(b.name, {}).get("state") != "up"
                               for o in (a, x)), 20, interval=0.2)
        b.start()
        nc.wait_mesh([a, b, x], timeout=60)
        after = (a.nodes() or {}).get(b.name, {}).get("creation")
        check(before and after and before != after, f"a new creation: {before} -> {after}")
        r = _expect(_table(b, "get", "d", '"k"'), EXIT_OK, "get after the restart")
        check(r.data["value"] == {"v": 1}, f"the disk table kept its key: {r!r}")
    run_on(c, body)


def test_mh_scale(c):
    """compose's --scale: one more host runs the `node` service (profile
    scale, same settings, named after its address); once in the DNS it finds
    the others, every node lists it up, and its HEALTHCHECK passes. Taken out
    of the DNS answer (still running), it stays a member everywhere after
    every node's next lookup."""
    def body(nc):
        hs, _ = _up_mesh(nc)
        n = nc.add("node", hostname="node-1")
        check(n.name == f"girder@{n.ip}", f"a replica is named after its address: {n.name}")
        check(len(nc.resolve(hs[0], "girder")) == 4, "girder has four A records now")
        t0 = time.monotonic()
        nc.wait_mesh(hs + [n], timeout=60)
        print(f"    every node lists {n.name} after {time.monotonic() - t0:.2f} s", flush=True)
        p, _ = n.run(nc.image["healthcheck"], uts=True, timeout=40)
        check(p.returncode == 0, f"HEALTHCHECK on the replica: {p.returncode} {p.stdout}"
              f"{p.stderr}")
        # gone from the DNS but running: once every node's lookup has seen it
        # (4 addresses), and then the answer without it, it is still up everywhere
        for h in hs:
            wait_until(f"{h.hostname}'s lookup with the replica", lambda h=h: re.search(
                r"discover girder: 4 address\(es\), 1 new", h.log_text()), 30, interval=0.2)
        marks = {h.hostname: len(h.log_text()) for h in hs}
        n.drop_aliases()
        for h in hs:
            wait_until(f"{h.hostname}'s lookup without the replica", lambda h=h: re.search(
                r"discover girder: 3 address\(es\), 0 new, 1 gone",
                h.log_text()[marks[h.hostname]:]), 30, interval=0.2)
        check(nc.mesh_ok(hs + [n]), "a member that left the DNS answer is not dropped")
    run_on(c, body)



def test_mh_seed_moved(c):
    """Seeds named by host name are looked up again at every reconnect: a and
    b run with one seed, girder@c:4370, and no discovery; c runs with neither.
    c is killed, its host moves to another address (its DNS record too) and
    c starts again: a and b find it at the new address, with no restart."""
    def body(nc):
        hs = [nc.add(s, start=False) for s in ("a", "b", "c")]
        a, b, x = hs
        for h in (a, b):
            h.command = ["--name", f"girder@{h.hostname}", "--listen", "0.0.0.0:4370",
                         "--seed", "girder@c:4370"]
        x.command = ["--name", "girder@c", "--listen", "0.0.0.0:4370"]
        for h in hs:
            h.start()
        nc.wait_mesh(hs, timeout=60)
        old = x.ip
        x.kill9()  # its host is gone (a stop would make c "left": never redialled)
        x.move(len(nc.hosts) + 5)
        x.start()
        t0 = time.monotonic()
        nc.wait_mesh(hs, timeout=60)
        print(f"    c moved {old} -> {x.ip}: the mesh again after {time.monotonic() - t0:.2f} s",
              flush=True)
        for h in (a, b):
            e = (h.nodes() or {}).get(x.name, {})
            check(e.get("state") == "up" and e.get("host") == "c",
                  f"{h.hostname} reaches c by its name: {e}")
    run_on(c, body)
