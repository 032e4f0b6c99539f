# SPDX-License-Identifier: Apache-2.0
"""harness - real girderd processes on loopback, driven by the real girder CLI.

A Cluster owns one scratch directory (cookie file, per-node logs and data
dirs) and every girderd it started. Nodes listen on distinct loopback
addresses 127.0.0.2, 127.0.0.3, ... (the whole 127/8 is local on Linux), each
on a free port picked at start. Everything is driven through the `girder` CLI
(--json) and signals; nothing links against the daemon. A Cluster runs the
production girderd, or girderd-testkit (girderd plus the test kit) for a test
marked @testkit.

Rules the tests follow (a noisy 2-core machine must not make them flaky):
- never sleep for a fixed time that assumes speed: poll a condition with
  wait_until(), whose deadline is generous, and measure what must be bounded;
- every daemon is killed at the end, whatever happens: Cluster.close() (called
  by the runner in a finally), an atexit hook, and PR_SET_PDEATHSIG in each
  child so that even a SIGKILLed harness leaves nothing behind.
"""

import atexit
import ctypes
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

SANITIZER = re.compile(
    r"ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|"
    r"SUMMARY: (Address|Undefined|Thread|Leak)Sanitizer|runtime error:")

# Exit codes of the girder CLI (the contract).
EXIT_OK, EXIT_REMOTE, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5

_ALL_PROCS = []  # every Popen started, for the atexit hook


def testkit(fn):
    """Mark a test whose nodes need the test kit (testkit/testkit.h: seq,
    relay, watcher, bench): they run girderd-testkit instead of girderd."""
    fn.testkit = True
    return fn


def daemon_path(build, kit):
    """The daemon a Cluster starts: girderd, or girderd-testkit with kit."""
    if kit:
        return os.path.join(build, "testkit", "girderd-testkit")
    return os.path.join(build, "daemon", "girderd")


class TestFailure(Exception):
    """An assertion of a cluster test failed."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def _kill_all():
    for p in _ALL_PROCS:
        if p.poll() is None:
            try:
                p.kill()  # SIGKILL also ends a SIGSTOPped process
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


atexit.register(_kill_all)

_libc = None


def _child_setup():
    # In the child, before exec: die with the harness (PR_SET_PDEATHSIG = 1).
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def now():
    return time.monotonic()


def wait_until(what, fn, timeout, interval=0.05):
    """Call fn() until it returns a true value; return that value. After
    `timeout` seconds raise TestFailure naming `what` and fn's last result."""
    deadline = now() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if now() >= deadline:
            raise TestFailure(f"timed out after {timeout:.1f} s waiting for {what}"
                              f" (last: {_short(last)})")
        time.sleep(interval)


def _short(v, n=300):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


class CliResult:
    def __init__(self, argv, rc, out, err, secs):
        self.argv, self.rc, self.out, self.err, self.secs = argv, rc, out, err, secs
        self.data = None
        try:
            self.data = json.loads(out) if out.strip() else None
        except ValueError:
            pass

    @property
    def error_id(self):
        return self.data.get("error") if isinstance(self.data, dict) else None

    def __repr__(self):
        return (f"`{' '.join(self.argv[1:])}` -> exit {self.rc}, stdout {self.out.strip()[:300]!r}"
                f", stderr {self.err.strip()[:300]!r}")


_GIVEN_PORTS = set()  # (addr, port) handed out by free_port in this run


def free_port(addr):
    """A TCP port nobody listens on at addr, from 20000..29999 (below the
    ephemeral range, so that no outgoing connection holds it by chance), and
    not handed out before in this run: a node's --redis port and its --listen
    port are picked before either is bound, and once came out equal."""
    rnd = random.Random()
    if len(_GIVEN_PORTS) > 5000:
        _GIVEN_PORTS.clear()
    for _ in range(200):
        port = rnd.randrange(20000, 30000)
        if (addr, port) in _GIVEN_PORTS:
            continue
        _GIVEN_PORTS.add((addr, port))
        s = socket.socket()
        try:
            s.bind((addr, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise TestFailure(f"no free port on {addr}")


class Node:
    def __init__(self, cluster, short, addr, port, cookie_file, seeds, detection_ms, extra):
        self.cluster = cluster
        self.short = short
        self.addr = addr
        self.port = port
        self.name = f"{short}@{addr}"
        self.cookie_file = cookie_file
        self.seeds = list(seeds)
        self.detection_ms = detection_ms
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(cluster.dir, f"{short}.log")
        self.starts = 0
        self.expected_exit = None  # set by stop()/kill9() so close() does not complain
        self.stopped_by_signal = False

    @property
    def spec(self):
        """NAME@HOST:PORT, the form --seed, join and -n take."""
        return f"{self.name}:{self.port}"

    def argv(self):
        a = [self.cluster.girderd, "--name", self.name, "--listen", f"{self.addr}:{self.port}",
             "--cookie-file", self.cookie_file,
             "--schedulers", "2", "--log-level", self.cluster.log_level]
        for s in self.seeds:
            a += ["--seed", s.spec if isinstance(s, Node) else s]
        if self.detection_ms is not None:
            a += ["--detection-ms", str(self.detection_ms)]
        return a + self.extra

    def start(self, wait=True):
        check(self.proc is None or self.proc.poll() is not None, f"{self.name} already running")
        check(os.access(self.cluster.girderd, os.X_OK),
              f"girderd not built: {self.cluster.girderd}")
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"==== harness: start #{self.starts}: {' '.join(self.argv())}\n")
        log.flush()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, preexec_fn=_child_setup,
                                     start_new_session=True)
        log.close()
        _ALL_PROCS.append(self.proc)
        self.expected_exit = None
        self.stopped_by_signal = False
        if wait:
            self.wait_up()
        return self

    def wait_up(self, timeout=20):
        pat = re.compile(rf"girderd {re.escape(self.name)} up\b")
        start_mark = f"==== harness: start #{self.starts}:"

        def up():
            if self.proc.poll() is not None:
                raise TestFailure(f"{self.name} exited with status {self.proc.returncode} "
                                  f"before logging 'up'")
            text = self.log_text()
            i = text.rfind(start_mark)
            return pat.search(text, i if i >= 0 else 0)

        wait_until(f"{self.name} to log 'up'", up, timeout)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Position in the log: log_since(mark) is what was logged after it."""
        return len(self.log_text())

    def log_since(self, mark):
        return self.log_text()[mark:]

    def wait_log(self, regex, timeout, mark=0, what=None):
        r = re.compile(regex, re.I)
        return wait_until(what or f"{self.name}'s log to match /{regex}/",
                          lambda: r.search(self.log_since(mark)), timeout)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def sigstop(self):
        self.signal(signal.SIGSTOP)

    def sigcont(self):
        self.signal(signal.SIGCONT)

    def kill9(self):
        self.expected_exit = -signal.SIGKILL
        self.proc.kill()
        self.proc.wait(timeout=10)

    def wait_exit(self, timeout):
        """Wait for the process to end; return its status (TestFailure if it
        does not end within timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{self.name} (pid {self.pid}) still running after {timeout} s")

    def stop(self, timeout=10):
        """SIGTERM; return (status, seconds)."""
        t0 = now()
        self.signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        self.expected_exit = rc
        return rc, now() - t0

    # -- the CLI ----------------------------------------------------------------------------
    def cli(self, *args, **kw):
        """girder -n THIS-NODE ARGS... with this node's cookie (see Cluster.cli)."""
        kw.setdefault("cookie_file", self.cookie_file)
        return self.cluster.cli(*args, node=self, **kw)

    def nodes(self, timeout_ms=3000):
        """{name: entry} from `girder nodes --json` on this node, or None when
        the command failed."""
        r = self.cli("nodes", "--only", timeout_ms=timeout_ms)  # this node's view, no fan-out
        if r.rc != 0 or not isinstance(r.data, list):
            return None
        out = {}
        for e in r.data:
            if isinstance(e, dict) and "name" in e:
                out[e["name"]] = e
        return out

    def state_of(self, other, view=None):
        view = self.nodes() if view is None else view
        if view is None:
            return None
        e = view.get(other.name if isinstance(other, Node) else other)
        return e.get("state") if e else "absent"


class Cluster:
    """Nodes of one test, in one scratch directory."""

    def __init__(self, build, workdir, log_level="info", kit=False):
        self.build = build
        self.girderd = daemon_path(build, kit)  # every node of this cluster runs it
        self.girder = os.path.join(build, "cli", "girder")
        self.dir = workdir
        self.log_level = log_level
        os.makedirs(self.dir, exist_ok=True)
        self.nodes = []
        self.next_host = 2
        self.cookie_file = self.make_cookie("cookie")
        self.cli_log = open(os.path.join(self.dir, "cli.log"), "a")

    # -- files ---------------------------------------------------------------------------------
    def make_cookie(self, fname, value=None, mode=0o600):
        path = os.path.join(self.dir, fname)
        if value is None:
            value = os.urandom(24).hex()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.chmod(path, mode)
        return path

    # -- nodes ---------------------------------------------------------------------------------
    def alloc_addr(self):
        addr = f"127.0.0.{self.next_host}"
        self.next_host += 1
        return addr

    def node(self, short, seeds=(), detection_ms=None, cookie_file=None, extra=(), start=True,
             wait=True):
        """Create (and by default start, waiting for its 'up' line) a node
        SHORT@127.0.0.N on a free port."""
        addr = self.alloc_addr()
        n = Node(self, short, addr, free_port(addr), cookie_file or self.cookie_file, seeds,
                 detection_ms, extra)
        self.nodes.append(n)
        if start:
            n.start(wait=wait)
        return n

    # -- the CLI -------------------------------------------------------------------------------
    def cli(self, *args, node=None, target=None, cookie_file=None, timeout_ms=5000,
            use_json=True, env=None, proc_timeout=30):
        """Run the girder CLI. node: a Node (its NAME@HOST:PORT goes to -n) or a
        string; cookie_file: defaults to the cluster's; use_json adds --json.
        Returns a CliResult (rc, out, err, data = parsed stdout)."""
        if not os.path.exists(self.girder):
            raise TestFailure(f"girder CLI not built: {self.girder}")
        argv = [self.girder]
        if node is not None:
            argv += ["-n", node.spec if isinstance(node, Node) else node]
        cf = cookie_file if cookie_file is not None else self.cookie_file
        if cf:
            argv += ["--cookie-file", cf]
        if use_json:
            argv.append("--json")
        if timeout_ms is not None:
            argv += ["--timeout", str(timeout_ms)]
        argv += [str(a) for a in args]
        e = dict(os.environ)
        for k in ("GIRDER_NODE", "GIRDER_COOKIE", "GIRDER_COOKIE_FILE"):
            e.pop(k, None)
        if env:
            e.update(env)
        t0 = now()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors="replace", env=e, timeout=proc_timeout,
                               preexec_fn=_child_setup)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as x:
            raise TestFailure(f"`{' '.join(argv[1:])}` still running after {proc_timeout} s"
                              f" (its --timeout was {timeout_ms} ms)") from x
        r = CliResult(argv, rc, out, err, now() - t0)
        self.cli_log.write(f"{time.strftime('%H:%M:%S')} +{r.secs * 1000:.0f}ms {r!r}\n")
        self.cli_log.flush()
        return r

    def expect(self, r, rc, error=None, what=""):
        check(r.rc == rc, f"{what + ': ' if what else ''}expected exit {rc}: {r!r}")
        if error is not None:
            check(r.error_id == error,
                  f"{what + ': ' if what else ''}expected --json error {error!r}: {r!r}")
        return r

    # -- views ---------------------------------------------------------------------------------
    def mesh_ok(self, members, observers=None):
        """True when every observer's `girder nodes` lists exactly `members`
        as live: itself as "self", every other member as "up" (entries of
        other nodes in state "down" or "left" are allowed)."""
        observers = members if observers is None else observers
        want = {m.name for m in members}
        for o in observers:
            view = o.nodes()
            if view is None:
                return False
            live = {n for n, e in view.items() if e.get("state") in ("self", "up")}
            if live != want:
                return False
            if view.get(o.name, {}).get("state") != "self":
                return False
        return True

    def wait_mesh(self, members, observers=None, timeout=30):
        members = list(members)

        def ok():
            return self.mesh_ok(members, observers)

        try:
            wait_until(f"the mesh of {', '.join(m.short for m in members)}", ok, timeout,
                       interval=0.1)
        except TestFailure as e:
            views = {o.short: {k: v.get("state") for k, v in (o.nodes() or {}).items()}
                     for o in (observers or members) if o.running()}
            raise TestFailure(f"{e}; views: {views}") from None

    # -- raw sockets ---------------------------------------------------------------------------
    @staticmethod
    def raw_connect(node, timeout=5):
        s = socket.create_connection((node.addr, node.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    @staticmethod
    def wait_closed(sock, timeout):
        """Read from sock until the peer closes it (EOF or reset). Returns the
        seconds it took; TestFailure after timeout."""
        t0 = now()
        deadline = t0 + timeout
        while True:
            left = deadline - now()
            if left <= 0:
                raise TestFailure(f"connection not closed by the node within {timeout} s")
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE):
                    return now() - t0
                raise
            if not data:
                return now() - t0

    # -- teardown ------------------------------------------------------------------------------
    def close(self):
        """Stop every node (SIGCONT, SIGTERM, then SIGKILL after 10 s). Returns
        a list of problems: nodes that died on their own (status other than
        what the test expected), exit statuses != 0 on the final SIGTERM,
        sanitizer reports in any log."""
        problems = []
        termed = []
        for n in self.nodes:
            if n.proc is None:
                continue
            if n.proc.poll() is not None:
                if n.expected_exit is None:
                    problems.append(f"{n.name} died during the test (status {n.proc.returncode})")
                continue
            try:
                n.proc.send_signal(signal.SIGCONT)
                n.proc.send_signal(signal.SIGTERM)
                termed.append(n)
            except OSError:
                pass
        deadline = now() + 10
        for n in termed:
            try:
                rc = n.proc.wait(timeout=max(0.1, deadline - now()))
                if rc != 0:
                    problems.append(f"{n.name} exited {rc} on the final SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append(f"{n.name} did not stop within 10 s of SIGTERM (killed)")
        _kill_list(self.nodes)
        self.cli_log.close()
        for n in self.nodes:
            if SANITIZER.search(n.log_text()):
                problems.append(f"sanitizer report in {n.log_path}")
        return problems

    def kill_all(self):
        _kill_list(self.nodes)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill_list(nodes):
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            try:
                n.proc.kill()
                n.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
