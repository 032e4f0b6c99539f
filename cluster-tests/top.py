# SPDX-License-Identifier: Apache-2.0
"""top.py - `girder top`, the live view of the fleet, driven in tmux at 80x24
(send-keys, capture-pane), and the scheduler utilisation it shows. Cluster
tests top_screen, top_once and top_util (tests.py); docs/cli.md has the
command.
"""

import json
import os
import re
import shutil
import signal
import subprocess

from harness import EXIT_OK, EXIT_USAGE, check, testkit, wait_until
from http_api import _http_node, _metrics, _sample

WIDE = 60  # seconds: every wait below is for an event, bounded this wide


class Tmux:
    """One tmux server of its own (socket in the test's dir, no user config)
    with one 80x24 window running a plain shell."""

    def __init__(self, c):
        self.tmux = shutil.which("tmux")
        check(self.tmux is not None, "tmux is not installed (scripts/setup-deps)")
        self.sock = os.path.join(c.dir, "tmux.sock")
        env = dict(os.environ, TERM="xterm-256color", PS1="$ ", HOME=c.dir)
        for k in ("GIRDER_NODE", "GIRDER_COOKIE", "GIRDER_COOKIE_FILE", "TMUX"):
            env.pop(k, None)
        self.env = env
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
                 "env PS1='$ ' bash --norc --noprofile")
        self.run("set-option", "-g", "default-terminal", "screen")
        wait_until("the shell's prompt", lambda: "$" in self.capture(), WIDE, 0.1)

    def run(self, *args):
        return subprocess.run([self.tmux, "-S", self.sock] + list(args), env=self.env,
                              capture_output=True, text=True, timeout=30, check=True).stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def line(self, text):
        self.keys("-l", text)
        self.keys("Enter")

    def capture(self):
        return self.run("capture-pane", "-p", "-t", "top")

    def size(self):
        return self.run("display-message", "-p", "-t", "top", "#{pane_width}x#{pane_height}")

    def close(self):
        subprocess.run([self.tmux, "-S", self.sock, "kill-server"], capture_output=True,
                       timeout=30)


def _top_cmd(c, node, *args):
    return " ".join([c.girder, "-n", node.spec, "--cookie-file", c.cookie_file, "top"]
                    + [str(a) for a in args])


def _quit_and_check(t, key, what):
    """Send key to the running top (or SIGTERM when key is None); it must exit
    0 and leave the terminal as it was (the same stty settings, the shell's
    prompt on the main screen)."""
    if key is None:
        shell = int(t.run("display-message", "-p", "-t", "top", "#{pane_pid}").strip())
        kids = subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout
        check(len(kids.split()) == 1, f"one child of the pane's shell (top): {kids!r}")
        os.kill(int(kids.split()[0]), signal.SIGTERM)
    else:
        t.keys(key)
    wait_until(f"top to exit after {what}", lambda: "RC=" in t.capture(), WIDE, 0.1)
    screen = t.capture()
    check("RC=0 SANE=yes" in screen, f"{what}: exit 0 and the terminal restored:\n{screen}")
    check("NODE" not in screen, f"{what}: the frame is gone (normal screen back):\n{screen}")


def test_top_screen(c):
    """Three nodes; `girder top` in an 80x24 tmux pane draws the three nodes
    and process rows (a registered process spawned for it among them), the
    sort key changes with `m`, `q` quits with exit 0 and the terminal as it
    was, and so do Ctrl-C and SIGTERM."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    x = c.node("c", seeds=[a])
    c.wait_mesh([a, b, x])
    pid = c.expect(a.cli("spawn", "--on", b.name, "echo"), EXIT_OK).data
    c.expect(a.cli("rpc", b.name, "proc", "register", '"topmark"', json.dumps(pid)), EXIT_OK)
    t = Tmux(c)
    try:
        check(t.size().strip() == "80x24", f"the pane is 80x24: {t.size()}")
        # the shell's settings before; after top: the same, and the exit status
        t.line("S0=$(stty -g)")
        for key, what in (("q", "q"), ("C-c", "Ctrl-C"), (None, "SIGTERM")):
            t.line("clear; " + _top_cmd(c, a, "-i", "0.3") + "; R=$?; "
                   "[ \"$(stty -g)\" = \"$S0\" ] && S=yes || S=no; echo RC=$R SANE=$S")

            def drawn():
                s = t.capture()
                return s if all(n.name[:24] in s for n in (a, b, x)) and "topmark" in s else None

            screen = wait_until("top to draw the three nodes and topmark", drawn, WIDE, 0.1)
            lines = screen.splitlines()
            check(lines[0].startswith("girder top: 3 nodes"), f"title: {lines[0]!r}")
            check(any(re.match(r"NODE\s+STATE\s+UTIL", ln) for ln in lines), "node header")
            check(any(re.match(r"PID\s+NAME\s+BEHAVIOUR\s+MBOX", ln) for ln in lines),
                  "process header")
            check(len(lines) <= 24 and all(len(ln) <= 80 for ln in lines), "fits 80x24")
            # rates need two samples: a second frame has numbers in MSG/s
            wait_until("a rate on a's row", lambda: re.search(
                re.escape(a.name) + r"\s+ok\s+\d+%", t.capture()), WIDE, 0.1)
            if key == "q":
                t.keys("m")
                wait_until("the sort key to become mailbox",
                           lambda: "by mailbox" in t.capture(), WIDE, 0.1)
            _quit_and_check(t, key, what)
            t.line("clear")
    finally:
        t.close()


def test_top_once(c):
    """`girder top --once` prints one frame as text (two samples -i apart):
    the nodes with rates, at most --rows processes, 80 columns; --json the
    same as one object, also for a CLI holding only the observer key; without
    a terminal and without --once it refuses with a usage error (exit 2)."""
    key = c.make_cookie("observer.key")
    a = c.node("a", extra=["--observer-key-file", key])
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    r = c.expect(a.cli("top", "--once", "-i", "0.2", "--rows", "3", use_json=False), EXIT_OK)
    lines = r.out.splitlines()
    check(lines[0].startswith("girder top: 2 nodes"), f"title: {r.out}")
    check(all(len(ln) <= 80 for ln in lines), f"80 columns: {r.out}")
    check(any(ln.startswith(a.name) for ln in lines) and any(ln.startswith(b.name)
                                                              for ln in lines), r.out)
    hdr = [i for i, ln in enumerate(lines) if ln.startswith("PID")]
    check(len(hdr) == 1 and len(lines) - hdr[0] - 1 == 3, f"3 process rows: {r.out}")
    r = c.expect(a.cli("top", "-i", "0.2", "--rows", "2"), EXIT_OK)
    doc = r.data
    check({n["name"] for n in doc["nodes"]} == {a.name, b.name}, f"--json nodes: {doc}")
    check(all(n["status"] == "ok" and n["util"] is not None and n["processes"] > 0
              for n in doc["nodes"]), f"--json node figures: {doc}")
    check(len(doc["processes"]) == 2, f"--json rows: {doc}")
    # top only reads: the observer key is enough
    r = c.expect(c.cli("--observer-key-file", key, "top", "-i", "0.2", node=a, cookie_file=""),
                 EXIT_OK, what="observer top")
    check({n["name"] for n in r.data["nodes"]} == {a.name, b.name}, f"observer top: {r.data}")
    r = c.expect(a.cli("top", use_json=False), EXIT_USAGE)
    check("terminal" in r.err, f"refusal names the terminal: {r!r}")
    c.expect(a.cli("top", "-i", "0.01", use_json=False), EXIT_USAGE)
    c.expect(a.cli("top", "--sort", "bogus", use_json=False), EXIT_USAGE)


@testkit
def test_top_util(c):
    """Scheduler utilisation: while a streams messages to b as fast as it can
    (bench.stream), `girder top --once --json` (through c) shows a's or b's
    utilisation above idle c's; `girder stats` and /metrics carry the
    counters."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    x = _http_node(c, "c", seeds=[a])
    c.wait_mesh([a, b, x])
    args = ["-n", a.spec, "--cookie-file", c.cookie_file, "--timeout", "120000", "rpc", a.name,
            "bench", "stream", json.dumps(b.name), "20000000", "64"]
    load = subprocess.Popen([c.girder] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        def busier():
            # asked through idle c: a's stream holds one of a's schedulers, so
            # what needs every scheduler of a (proc.snapshot) may time out
            r = x.cli("top", "-i", "0.5", "--rows", "1", timeout_ms=10000)
            if r.rc != EXIT_OK:
                return None
            u = {n["name"]: n["util"] for n in r.data["nodes"]}
            ok = all(u.get(n.name) is not None for n in (a, b, x))
            return u if ok and max(u[a.name], u[b.name]) > u[x.name] + 0.05 else None

        def busier_or_done():
            if load.poll() is not None:
                check(False, f"bench.stream ended early: {load.communicate()}")
            return busier()

        u = wait_until("the loaded nodes to show more utilisation than the idle one",
                       busier_or_done, WIDE, 0.2)
        print(f"    utilisation while streaming: {u}")
    finally:
        load.kill()
        load.wait()
    r = c.expect(x.cli("stats", "--only"), EXIT_OK)
    ctr = r.data
    check(0 < ctr["sched_busy_us"] <= ctr["sched_wall_us"] and 0 <= ctr["sched_util_pct"] <= 100,
          f"stats has the scheduler counters: {ctr}")
    r = c.expect(x.cli("stats", use_json=False), EXIT_OK)
    check("sched_util_pct" in r.out, f"human stats shows sched_util_pct: {r.out}")
    text = _metrics(x)
    nsched = int(_sample(text, "girder_schedulers") or 0)
    check(nsched > 0, "/metrics: girder_schedulers")
    for i in range(nsched):
        busy = _sample(text, f'girder_scheduler_busy_seconds_total{{scheduler="{i}"}}')
        wall = _sample(text, f'girder_scheduler_wall_seconds_total{{scheduler="{i}"}}')
        check(busy is not None and wall is not None and 0 <= busy <= wall and wall > 0,
              f"/metrics: scheduler {i} busy {busy} wall {wall}")
