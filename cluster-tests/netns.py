# SPDX-License-Identifier: Apache-2.0
"""netns - the docker-compose topology as separate hosts, without Docker.

A NetCluster gives every compose service its own network namespace (its own
network stack, address and hostname), all on one bridge, with a dnsmasq that
serves the names compose's DNS would: each service's hostname, and each
network alias (`girder`) with one A record per node. Every node runs what the
image and the compose file say, read from the files themselves:
- the Dockerfile's runtime stage: ENTRYPOINT (or CMD), the files it COPYs from
  the build context, USER, WORKDIR and HEALTHCHECK;
- deploy/docker-compose.yml: each service's hostname, command or entrypoint,
  environment (${VAR:?msg} interpolated, GIRDER_COOKIE a fresh secret),
  network aliases, volumes and profiles.
What differs from Docker, and only that:
- `girderd` and `girder` on PATH are the built programs; a file the image
  COPYs to /PATH, and a volume mounted at /PATH, are scratch directories that
  the argv names instead (the same substitution inside an entrypoint's shell
  string); the process runs as uid/gid 65534 (nobody), as the image's USER is
  not root.
- A node is a process started with `ip netns exec NS unshare --uts` (its own
  hostname); `ip netns exec` bind-mounts /etc/netns/NS/hosts (localhost and
  the node's own name, as Docker writes it) and resolv.conf (the dnsmasq).

Layout of one run (TAG = grmh<pid>x<random>, unique per run):
  namespace TAG-net: bridge br0 at 10.R.S.1/24, dnsmasq on that address, and
  one veth end per host (h<N>); namespace TAG-<host>: eth0 at 10.R.S.<N+1>.
close() kills every process it started, deletes the namespaces (which removes
the bridge and the veths) and /etc/netns/TAG-*; an atexit hook does the same,
and every child dies with the harness (PR_SET_PDEATHSIG, set again by setpriv
after the change of user, which clears it). Namespaces left by a run that was
SIGKILLed are removed by the next run (their pid is gone), after killing what
still runs in them.

Needs root, iproute2, dnsmasq (scripts/setup-deps) and python3-yaml;
unavailable() says what is missing.
"""

import atexit
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time

from harness import SANITIZER, CliResult, TestFailure, _child_setup, check, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
COMPOSE = os.path.join(ROOT, "deploy", "docker-compose.yml")
PASS_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")
NOBODY = 65534
PREFIX = "grmh"

_LIVE = []  # NetClusters not closed yet (the atexit hook)


def _sh(*argv, check_rc=True, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check_rc and r.returncode != 0:
        raise TestFailure(f"`{' '.join(map(str, argv))}` failed ({r.returncode}): "
                          f"{r.stderr.strip()}")
    return r


def unavailable():
    """None when multi-host tests can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for prog in ("ip", "dnsmasq", "unshare", "setpriv"):
        if not shutil.which(prog):
            return f"{prog} is missing (scripts/setup-deps: iproute2, dnsmasq-base, util-linux)"
    try:
        import yaml  # noqa: F401
    except ImportError:
        return "python3-yaml is missing (scripts/setup-deps)"
    probe = f"{PREFIX}{os.getpid()}probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot make a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def clean_stale():
    """Remove namespaces and /etc/netns entries of runs whose process is gone."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    names = [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]
    if os.path.isdir("/etc/netns"):
        names += os.listdir("/etc/netns")
    for ns in sorted(set(names)):
        m = re.match(rf"{PREFIX}(\d+)x", ns)
        if not m or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        # what still runs there (a daemon whose parent-death signal a change
        # of user cleared, the dnsmasq) goes first
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)


# ---- the image and the compose file -------------------------------------------------------

def _stages(path):
    out, cur = [], ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            if re.match(r"\s*FROM\s", cur, re.I):
                out.append([])
            if out:
                out[-1].append(cur.strip())
        cur = ""
    return out


def _exec_form(arg):
    arg = arg.strip()
    return json.loads(arg) if arg.startswith("[") else ["/bin/sh", "-c", arg]


def load_image(path=DOCKERFILE):
    """The runtime stage (the last FROM): entrypoint, cmd, copies (from the
    context), user, workdir, healthcheck (argv or None)."""
    img = {"entrypoint": [], "cmd": [], "copies": [], "user": None, "workdir": "/",
           "healthcheck": None}
    stages = _stages(path)
    check(stages, f"{path}: no FROM")
    for ins in stages[-1]:
        word, _, arg = ins.partition(" ")
        word = word.upper()
        if word == "ENTRYPOINT":
            img["entrypoint"] = _exec_form(arg)
        elif word == "CMD":
            img["cmd"] = _exec_form(arg)
        elif word == "COPY" and "--from" not in arg:
            parts = shlex.split(arg)
            img["copies"].append((parts[:-1], parts[-1]))
        elif word == "USER":
            img["user"] = arg.strip()
        elif word == "WORKDIR":
            img["workdir"] = arg.strip()
        elif word == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(.*)$", arg)
            if m:
                img["healthcheck"] = _exec_form(m.group(1))
    return img


def _interpolate(value, env):
    def sub(m):
        name, op, rest = m.group(1), m.group(2), m.group(3)
        v = env.get(name)
        if op == ":?" and not v:
            raise TestFailure(f"compose would refuse to start: {name}: {rest}")
        if op == ":-" and not v:
            return rest
        return v or ""
    value = re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", sub, str(value))
    return value.replace("$$", "$")


def load_compose(env, path=COMPOSE):
    """{service: {hostname, command, entrypoint, environment, aliases, volumes,
    profiles}} with compose's interpolation and merge keys applied."""
    import yaml
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    out = {}
    for name, svc in doc["services"].items():
        environ = svc.get("environment") or {}
        if isinstance(environ, list):
            environ = dict(e.split("=", 1) for e in environ)
        cmd = svc.get("command") or []
        if isinstance(cmd, str):
            cmd = shlex.split(cmd)
        ep = svc.get("entrypoint")
        if isinstance(ep, str):
            ep = shlex.split(ep)
        aliases = []
        nets = svc.get("networks") or {}
        if isinstance(nets, dict):
            for v in nets.values():
                aliases += list((v or {}).get("aliases") or [])
        vols = []
        for v in svc.get("volumes") or []:
            src, _, dst = str(v).partition(":")
            vols.append((src, dst.split(":")[0]))
        out[name] = {
            "hostname": svc.get("hostname", name),
            "command": [_interpolate(c, env) for c in cmd],
            "entrypoint": [_interpolate(c, env) for c in ep] if ep is not None else None,
            "environment": {k: _interpolate(v, env) for k, v in environ.items()},
            "aliases": aliases,
            "volumes": vols,
            "profiles": list(svc.get("profiles") or []),
        }
    return out


# ---- hosts ------------------------------------------------------------------------------------

class Host:
    """One compose service instance in its own namespace."""

    def __init__(self, nc, svc, hostname, idx):
        self.nc = nc
        self.svc = svc
        self.spec = nc.services[svc]
        self.hostname = hostname
        self.idx = idx
        self.ns = f"{nc.tag}-{hostname}"
        self.ip = f"{nc.prefix}.{idx + 1}"
        self.veth = f"h{idx}"  # in the bridge's namespace
        self.dir = os.path.join(nc.dir, hostname)
        self.log_path = os.path.join(nc.dir, f"{hostname}.log")
        self.proc = None
        self.starts = 0
        self.expected_exit = None
        self.argv = None
        self.name = None  # the node name, once started
        self.command = None  # a test's replacement of the service's command (None: the file's)
        self.in_aliases = True  # its address is in the DNS under the network aliases

    # -- the process ---------------------------------------------------------------------------
    def image_argv(self):
        """What the container runs: the service's entrypoint (or the image's)
        followed by its command (or the image's CMD), with the image's files
        and the volumes replaced by this host's scratch copies."""
        s, img = self.spec, self.nc.image
        ep = s["entrypoint"] if s["entrypoint"] is not None else img["entrypoint"]
        cmd = s["command"] or (img["cmd"] if s["entrypoint"] is None else [])
        if self.command is not None:
            cmd = self.command
        remap = dict(self.nc.copies)
        for src, dst in s["volumes"]:
            remap[dst] = os.path.join(self.nc.dir, "volumes", src)  # a named volume
        out = []
        for a in list(ep) + list(cmd):
            for path in sorted(remap, key=len, reverse=True):
                a = re.sub(rf"(?<![\w/]){re.escape(path)}(?=/|\b|$)", remap[path], a)
            out.append(a)
        return out, remap

    def start(self, wait=True):
        check(self.proc is None or self.proc.poll() is not None, f"{self.hostname} running")
        argv, remap = self.image_argv()
        for src, dst in self.spec["volumes"]:
            os.makedirs(remap[dst], exist_ok=True)
            os.chown(remap[dst], NOBODY, NOBODY)
        workdir = remap.get(self.nc.image["workdir"], self.dir)
        os.makedirs(workdir, exist_ok=True)
        os.chown(workdir, NOBODY, NOBODY)
        env = dict(self.nc.base_env, HOME=workdir, HOSTNAME=self.hostname,
                   **self.spec["environment"])
        wrap = ["ip", "netns", "exec", self.ns, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec setpriv --reuid=65534 --regid=65534 --clear-groups '
                '--pdeathsig KILL "$@"',
                self.hostname]
        self.argv = argv
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"==== netns: start #{self.starts} on {self.ip}: "
                      f"{' '.join(shlex.quote(a) for a in argv)}\n")
            log.flush()
            self.proc = subprocess.Popen(wrap + argv, cwd=workdir, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_child_setup, start_new_session=True)
        self.expected_exit = None
        if wait:
            self.wait_up()
        return self

    def wait_up(self, timeout=30):
        mark = f"==== netns: start #{self.starts}"
        pat = re.compile(r"girderd (\S+) up\b")

        def up():
            if self.proc.poll() is not None:
                raise TestFailure(f"{self.hostname} exited {self.proc.returncode} before 'up':"
                                  f"\n{self.log_text()[-3000:]}")
            text = self.log_text()
            return pat.search(text, max(0, text.rfind(mark)))

        m = wait_until(f"{self.hostname} to log 'up'", up, timeout)
        self.name = m.group(1)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.expected_exit = -signal.SIGKILL
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.expected_exit = rc
        return rc

    # -- in the namespace ------------------------------------------------------------------------
    def run(self, argv, env=None, timeout=30, uts=False, input=None):
        """argv in this host's namespace (as `docker exec` would), as nobody."""
        pre = ["ip", "netns", "exec", self.ns]
        if uts:
            pre += ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname]
        pre += ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--pdeathsig",
                "KILL"]
        e = dict(self.nc.base_env, HOME=self.dir, **self.spec["environment"])
        e.update(env or {})
        t0 = time.monotonic()
        p = subprocess.run(pre + list(argv), env=e, capture_output=True, text=True,
                           errors="replace", timeout=timeout, preexec_fn=_child_setup,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        return p, time.monotonic() - t0

    def cli(self, *args, node=None, timeout_ms=5000, use_json=True, input=None):
        """girder -n NODE (default: this host's node) ARGS... from inside this
        host, the cookie from the container's environment."""
        argv = ["girder", "-n", node or self.name]
        if use_json:
            argv.append("--json")
        argv += ["--timeout", str(timeout_ms)] + [str(a) for a in args]
        p, secs = self.run(argv, timeout=timeout_ms / 1000 + 30, input=input)
        r = CliResult(argv, p.returncode, p.stdout, p.stderr, secs)
        self.nc.cli_log.write(f"{time.strftime('%H:%M:%S')} [{self.hostname}] {r!r}\n")
        self.nc.cli_log.flush()
        return r

    def nodes(self):
        r = self.cli("nodes")
        if r.rc != 0 or not isinstance(r.data, list):
            return None
        return {e["name"]: e for e in r.data if isinstance(e, dict) and "name" in e}

    def move(self, idx):
        """Give this host another address (10.R.S.idx+1), in its own hosts file
        and in the DNS: a host that moved."""
        old = self.ip
        self.ip = f"{self.nc.prefix}.{idx + 1}"
        _sh("ip", "-n", self.ns, "addr", "del", f"{old}/24", "dev", "eth0")
        _sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
        with open(os.path.join("/etc/netns", self.ns, "hosts"), "w") as f:
            f.write(f"127.0.0.1 localhost\n::1 localhost\n{self.ip} {self.hostname}\n")
        self.nc._write_dns()
        wait_until(f"{self.hostname} -> {self.ip} in the DNS",
                   lambda: self.nc.resolve(self, self.hostname) == [self.ip], 10, interval=0.1)

    def drop_aliases(self):
        """Take this host's address out of the aliases' records (the name
        `girder` no longer lists it), as a scaled-down or unhealthy replica."""
        self.in_aliases = False
        self.nc._write_dns()
        for a in self.spec["aliases"]:
            wait_until(f"{a} without {self.ip}", lambda a=a: self.ip not in self.nc.resolve(
                self.nc.hosts[0], a), 10, interval=0.1)

    def link(self, up):
        """Take this host's cable out of the bridge, or put it back."""
        _sh("ip", "-n", self.nc.netns, "link", "set", self.veth, "up" if up else "down")


# ---- the cluster ------------------------------------------------------------------------------

class NetCluster:
    def __init__(self, build, workdir):
        self.build = build
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.tag = f"{PREFIX}{os.getpid()}x{secrets.token_hex(2)}"
        self.netns = f"{self.tag}-net"
        self.prefix = f"10.{random.randint(64, 250)}.{random.randint(0, 255)}"
        self.gw = f"{self.prefix}.1"
        self.cookie = secrets.token_urlsafe(32)
        self.services = load_compose({"GIRDER_COOKIE": self.cookie})
        self.image = load_image()
        self.hosts = []
        self.namespaces = []
        self.dnsmasq = None
        self.dns_file = os.path.join(self.dir, "dns.hosts")
        self.cli_log = open(os.path.join(self.dir, "cli.log"), "a")
        self.closed = False
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir, exist_ok=True)
        for prog, rel in (("girderd", "daemon/girderd"), ("girder", "cli/girder")):
            os.symlink(os.path.join(build, rel), os.path.join(bindir, prog))
        self.base_env = {"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"}
        self.base_env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
        # the image's files: scratch copies, readable by nobody
        self.copies = {}
        for srcs, dest in self.image["copies"]:
            for src in srcs:
                if src in (".", "./"):
                    continue
                target = (dest.rstrip("/") + "/" + os.path.basename(src)
                          if dest.endswith("/") else dest)
                copy = os.path.join(self.dir, "image", target.lstrip("/"))
                os.makedirs(os.path.dirname(copy), exist_ok=True)
                shutil.copyfile(os.path.join(ROOT, src), copy)
                os.chmod(copy, 0o644)
                self.copies[target] = copy
        _LIVE.append(self)
        clean_stale()
        self._up()

    def _up(self):
        self._netns_add(self.netns)
        n = self.netns
        _sh("ip", "-n", n, "link", "set", "lo", "up")
        # A fixed address: a bridge without one takes the lowest of its ports'
        # so adding a host would change it under the ARP caches of the others
        # (their packets to the dnsmasq then vanish until the entry expires).
        _sh("ip", "-n", n, "link", "add", "br0", "address", "02:67:72:00:00:01", "type", "bridge")
        _sh("ip", "-n", n, "addr", "add", f"{self.gw}/24", "dev", "br0")
        _sh("ip", "-n", n, "link", "set", "br0", "up")
        self._write_dns()
        log = open(os.path.join(self.dir, "dnsmasq.log"), "a")
        self.dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", n, "setpriv", "--pdeathsig", "KILL", "dnsmasq",
             "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", f"--addn-hosts={self.dns_file}", "--local=/#/",
             "--bind-interfaces",
             f"--listen-address={self.gw}", "--user=root", "--no-negcache", "--log-queries",
             f"--pid-file={os.path.join(self.dir, 'dnsmasq.pid')}", "--log-facility=-"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_child_setup,
            start_new_session=True)
        log.close()
        # SIGHUP (a new host) before its handlers are set would end it: wait
        # for its "started" line (logged after the set-up)
        wait_until("dnsmasq to start", lambda: self.dnsmasq.poll() is None and "started" in
                   open(os.path.join(self.dir, "dnsmasq.log")).read(), 10, interval=0.05)

    def _netns_add(self, ns):
        _sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)

    def _write_dns(self):
        lines = []
        for h in self.hosts:
            lines.append(f"{h.ip} {h.hostname}")
            for a in h.spec["aliases"] if h.in_aliases else []:
                lines.append(f"{h.ip} {a}")
        tmp = self.dns_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(ln + "\n" for ln in lines))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.dns_file)
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            self.dnsmasq.send_signal(signal.SIGHUP)  # re-reads --addn-hosts

    def resolve(self, via, name):
        """Addresses `name` has for host `via` (its resolver, i.e. the dnsmasq)."""
        p, _ = via.run(["getent", "ahostsv4", name], timeout=10)
        return sorted({ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()})

    def add(self, svc, hostname=None, start=True, wait=True):
        """A host running service svc (hostname: the service's, or a fresh one
        for a replica), in the DNS before it starts, as compose does."""
        check(svc in self.services, f"no service {svc} in {COMPOSE}")
        hostname = hostname or self.services[svc]["hostname"]
        h = Host(self, svc, hostname, len(self.hosts) + 1)
        self._netns_add(h.ns)
        _sh("ip", "-n", self.netns, "link", "add", h.veth, "type", "veth", "peer", "name", "eth0",
            "netns", h.ns)
        _sh("ip", "-n", self.netns, "link", "set", h.veth, "master", "br0", "up")
        _sh("ip", "-n", h.ns, "addr", "add", f"{h.ip}/24", "dev", "eth0")
        _sh("ip", "-n", h.ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", h.ns, "link", "set", "lo", "up")
        etc = os.path.join("/etc/netns", h.ns)
        os.makedirs(etc, exist_ok=True)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write(f"nameserver {self.gw}\noptions timeout:1 attempts:2\n")
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write(f"127.0.0.1 localhost\n::1 localhost\n{h.ip} {h.hostname}\n")
        os.makedirs(h.dir, exist_ok=True)
        os.chown(h.dir, NOBODY, NOBODY)
        self.hosts.append(h)
        self._write_dns()
        # the new records are served (dnsmasq re-read its file) before the node starts
        for name in [hostname] + h.spec["aliases"]:
            wait_until(f"{name} -> {h.ip} in the DNS",
                       lambda name=name: h.ip in self.resolve(h, name), 10, interval=0.1)
        if start:
            h.start(wait=wait)
        return h

    def compose_up(self):
        """Every service without a profile, as `docker compose up` starts them."""
        hs = [self.add(s, start=False) for s, v in self.services.items() if not v["profiles"]]
        for h in hs:
            h.start(wait=False)
        for h in hs:
            h.wait_up()
        return hs

    def mesh_ok(self, hosts):
        want = {h.name for h in hosts}
        for h in hosts:
            view = h.nodes()
            if view is None:
                return False
            live = {n for n, e in view.items() if e.get("state") in ("self", "up")}
            if live != want or view.get(h.name, {}).get("state") != "self":
                return False
        return True

    def wait_mesh(self, hosts, timeout=60):
        try:
            wait_until(f"the mesh of {', '.join(h.hostname for h in hosts)}",
                       lambda: self.mesh_ok(hosts), timeout, interval=0.2)
        except TestFailure as e:
            views = {h.hostname: {k: v.get("state") for k, v in (h.nodes() or {}).items()}
                     for h in hosts if h.running()}
            raise TestFailure(f"{e}; views: {views}") from None

    def close(self):
        """Stop everything, remove the namespaces, the bridge and /etc/netns
        entries. Returns problems (like Cluster.close)."""
        if self.closed:
            return []
        self.closed = True
        problems = []
        for h in self.hosts:
            if h.proc is None:
                continue
            if h.proc.poll() is not None:
                if h.expected_exit is None:
                    problems.append(f"{h.hostname} died during the test "
                                    f"(status {h.proc.returncode})")
                continue
            h.proc.send_signal(signal.SIGCONT)
            h.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for h in self.hosts:
            if h.proc is None or h.expected_exit is not None:
                continue
            try:
                rc = h.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                if rc != 0:
                    problems.append(f"{h.hostname} exited {rc} on the final SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append(f"{h.hostname} did not stop within 15 s of SIGTERM")
        for p in [h.proc for h in self.hosts] + [self.dnsmasq]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
        self.cli_log.close()
        for h in self.hosts:
            if SANITIZER.search(h.log_text()):
                problems.append(f"sanitizer report in {h.log_path}")
        if self in _LIVE:
            _LIVE.remove(self)
        return problems

    def leftovers(self):
        """Namespaces or /etc/netns entries of this run still present."""
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        left = [ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith(self.tag)]
        if os.path.isdir("/etc/netns"):
            left += [d for d in os.listdir("/etc/netns") if d.startswith(self.tag)]
        return left


def _close_all():
    for nc in list(_LIVE):
        try:
            nc.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_close_all)


def run_on(c, fn):
    """Run fn(nc) on a fresh NetCluster in c's directory, or print why it is
    skipped (a SKIPPED line, never a silent pass). Problems of the close
    (a node that died, sanitizer reports) and leftover namespaces fail."""
    why = unavailable()
    if why:
        print(f"    SKIPPED: {why}", flush=True)
        return
    nc = NetCluster(c.build, os.path.join(c.dir, "netns"))
    err = None
    try:
        fn(nc)
    except BaseException as e:  # noqa: BLE001 - closed below, then raised again
        err = e
    problems = nc.close()
    left = nc.leftovers()
    if left:
        problems.append(f"namespaces left behind: {left}")
    if err is not None:
        if problems and isinstance(err, TestFailure):
            raise TestFailure(f"{err}; {'; '.join(problems)}") from None
        raise err
    if problems:
        raise TestFailure("; ".join(problems))
