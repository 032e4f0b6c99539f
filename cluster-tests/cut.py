# SPDX-License-Identifier: Apache-2.0
"""cut.py - a real network partition between daemons on one host, for the
cluster tests (r2_repl_partition, t3_crdt, rd_partition, ps3_partition) and
bench/tables/partition.py.

It owns the whole recipe, so that it is written once: find the cgroup2
mount, make one cgroup v2 group per side below it, start each daemon inside
its side's group from its first instruction (`sh -c 'echo $$ >
GROUP/cgroup.procs && exec girderd ...'`), then cut with one nftables `inet`
table whose output-hook rules (`socket cgroupv2 level 1 "GROUP" tcp dport
{ PORTS } drop`) drop whatever a side's sockets send to the listening ports
of the other sides, both ways; heal by deleting the table. Packets are lost,
as on a real network: nothing in the daemons is told. The CLI runs in no
group, so it still reaches every node on both sides.

Why cgroups: a rule on the ports alone would cut the CLI off too; the
socket's cgroup says which side sent a packet, whatever address it leaves
from. nft resolves a group's path below /sys/fs/cgroup (not below the mount,
which may be elsewhere, as /sys/fs/cgroup/unified on a hybrid host);
`level 1` is the group's depth in the cgroup2 tree.

    why = cut.available()            # None, or the reason it cannot be done
    p = cut.Partition("grrepl", ("ab", "c"))
    try:
        a = p.node(c, "a", "ab", detection_ms=1500)   # harness Node in group ab
        ...
        p.cut()      # ab <-/-> c
        p.heal()
    finally:
        p.close()    # heals, kills its nodes, removes the groups

Needs root, nft and a cgroup2 mount (NEEDS says so for a SKIPPED line).
Names carry the caller's pid, so parallel runs do not collide.
"""

import os
import shutil
import subprocess
import time

NEEDS = "root, nft (scripts/setup-deps) and a cgroup2 mount"


def cgroup_mount():
    """Where cgroup2 is mounted, or None."""
    with open("/proc/mounts") as f:
        for ln in f:
            x = ln.split()
            if len(x) > 2 and x[2] == "cgroup2":
                return x[1]
    return None


def available():
    """None when a partition can be made here, else the reason ("needs
    root", "needs nft" or "needs a cgroup2 mount")."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("nft"):
        return "needs nft"
    if not cgroup_mount():
        return "needs a cgroup2 mount"
    return None


def down(obs, who):
    """obs (a harness Node) no longer sees who as up."""
    st = (obs.nodes() or {}).get(who.name, {}).get("state")
    return st not in (None, "up")


def _nft(*args):
    subprocess.run(["nft"] + list(args), check=True, capture_output=True, text=True)


class Partition:
    """One cgroup v2 group per side, `<name><pid><side>` below the cgroup2
    mount, made at once; the nftables table `<name><pid>` while cut. Call
    close() in a finally: it runs whether or not the test got far."""

    def __init__(self, name, sides):
        mount = cgroup_mount()
        self.tag = f"{name}{os.getpid()}"
        rel = os.path.relpath(mount, "/sys/fs/cgroup")  # nft resolves paths below /sys/fs/cgroup
        self._nft_path = {s: ("" if rel == "." else rel + "/") + self.tag + s for s in sides}
        self.groups = {s: os.path.join(mount, self.tag + s) for s in sides}
        self.ports = {s: [] for s in sides}  # listening ports of each side, to cut
        self.nodes = []                      # harness Nodes started by node()
        self.is_cut = False
        try:
            for g in self.groups.values():
                os.makedirs(g, exist_ok=True)
        except BaseException:
            self.close()
            raise

    def enter(self, side):
        """Shell text that moves the shell into side's group and execs what
        follows it (the program and its arguments)."""
        return f"echo $$ > {self.groups[side]}/cgroup.procs && exec"

    def member(self, side, port):
        """A daemon of side listens on port: cut() drops what the other
        sides send to it."""
        self.ports[side].append(int(port))

    def node(self, c, short, side, **kw):
        """c.node(short, **kw) (a harness Cluster), started with its daemon
        in side's group from its first instruction."""
        n = c.node(short, start=False, **kw)
        orig = n.argv
        n.argv = lambda: ["sh", "-c", f'{self.enter(side)} "$@"', "sh"] + orig()
        self.member(side, n.port)
        self.nodes.append(n)
        n.start()
        return n

    def wrapper(self, side, program, path):
        """Write an executable script at path that runs program (with the
        script's arguments) in side's group; returns path. For callers that
        take a daemon's path rather than its argv (bench/net/net.py)."""
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\n{self.enter(side)} {program} "$@"\n')
        os.chmod(path, 0o755)
        return path

    def cut(self):
        """Drop, both ways, every packet a side's sockets send to a listening
        port of another side (the ports given by node() and member())."""
        _nft("add", "table", "inet", self.tag)
        self.is_cut = True
        _nft("add", "chain", "inet", self.tag, "out",
             "{ type filter hook output priority 0; }")
        for s in self.groups:
            theirs = [p for o, ps in self.ports.items() if o != s for p in ps]
            _nft("add", "rule", "inet", self.tag, "out", "socket", "cgroupv2", "level", "1",
                 f'"{self._nft_path[s]}"', "tcp", "dport",
                 str(theirs[0]) if len(theirs) == 1 else "{ " + ", ".join(map(str, theirs)) + " }",
                 "drop")

    def heal(self):
        """Delete the rules: the sides can reach each other again."""
        _nft("delete", "table", "inet", self.tag)
        self.is_cut = False

    def close(self):
        """Heal if cut, SIGKILL the nodes of node() still running, remove the
        groups (retried 5 s: a killed daemon leaves its group a moment
        later). Never raises for a group already gone."""
        if self.is_cut:
            subprocess.run(["nft", "delete", "table", "inet", self.tag], capture_output=True)
            self.is_cut = False
        for n in self.nodes:
            if n.running():
                n.kill9()
        for g in self.groups.values():
            for _ in range(50):
                try:
                    os.rmdir(g)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
