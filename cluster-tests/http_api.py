# SPDX-License-Identifier: Apache-2.0
"""http_api - the --http listener of girderd, from the outside (docs/http.md).

(Not http.py: that name would shadow the standard library's http package,
which urllib imports.)

    ht_probes     /healthz; /readyz 503 naming an unreachable seed, 200 once
                  meshed; /metrics accepted by `promtool check metrics` with the
                  documented families; the JSON API fleet-wide; malformed
                  requests, a disallowed method and a huge header get 4xx and
                  the node keeps serving; with b SIGSTOPped /api/stats still
                  answers within its timeout and marks b
    ht_emfile     out of descriptors (prlimit): the listeners pause after a
                  failed accept (no hot loop, a few log lines), then serve
    ht_token      a token file: refused at start off loopback without one or
                  with one readable by others (exit 2); /api and / need it,
                  /metrics does not unless http_protect_metrics; the
                  dashboard's cookie
    ht_dashboard  the dashboard in headless Chromium shows the nodes, and a
                  process spawned with the CLI after the page loaded appears
                  without a reload (also read from /api/events in Python);
                  with 300 more processes on b, a busy process spawned last
                  is listed with its work/s (the busiest are ranked over all
                  processes, not the lowest pids); a screenshot is kept (the
                  test's dir and ht_dashboard.png next to it)
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

from harness import EXIT_OK, TestFailure, check, free_port, testkit, wait_until


def _get(url, headers=None, timeout=10):
    """(status, headers, body text) of a GET; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def _http_node(c, short, seeds=(), extra=(), start=True):
    """A node with --http on its own address and a free port; .http is its base URL."""
    n = c.node(short, seeds=seeds, start=False)
    hport = free_port(n.addr)
    n.extra += ["--http", f"{n.addr}:{hport}"] + list(extra)
    n.http = f"http://{n.addr}:{hport}"
    n.http_port = hport
    if start:
        n.start()
    return n


def _raw(addr, port, data, timeout=5):
    """Send raw bytes, return the status line the node answers (or '' if it closed)."""
    s = socket.create_connection((addr, port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        s.close()


def _metrics(n, headers=None):
    st, _, body = _get(n.http + "/metrics", headers)
    check(st == 200, f"/metrics of {n.name}: {st} {body[:200]}")
    return body


def _sample(text, series):
    """The value of one exact series line of a /metrics page, or None."""
    for ln in text.splitlines():
        if ln.startswith(series + " "):
            return float(ln.split()[-1])
    return None


def _all_stopped(pid):
    """Are all threads of pid stopped (SIGSTOP reaches them asynchronously)?"""
    tasks = os.listdir(f"/proc/{pid}/task")
    for t in tasks:
        with open(f"/proc/{pid}/task/{t}/stat") as f:
            if f.read().rsplit(") ", 1)[1][0] not in "Tt":
                return False
    return bool(tasks)


def test_http_probes(c):
    """/healthz, /readyz before and after the mesh, /metrics through promtool,
    the JSON API fleet-wide, and bad requests."""
    b = c.node("b", start=False)  # a's seed, not running yet: unreachable
    a = _http_node(c, "a", seeds=[b])
    st, _, body = _get(a.http + "/healthz")
    check(st == 200 and json.loads(body) == {"status": "alive"}, f"/healthz: {st} {body}")
    st, _, body = _get(a.http + "/readyz")
    check(st == 503 and b.name in json.loads(body).get("reason", ""),
          f"/readyz before the mesh: {st} {body}")
    b.start()
    c.wait_mesh([a, b])
    wait_until("a's /readyz to say ready", lambda: _get(a.http + "/readyz")[0] == 200, 20)

    # the rpc histogram counts served requests: one more CLI call shows
    before = _sample(_metrics(a), "girder_rpc_calls_total") or 0
    c.expect(a.cli("ping"), EXIT_OK)
    text = _metrics(a)
    check((_sample(text, "girder_rpc_calls_total") or 0) > before,
          "girder_rpc_calls_total did not grow after a CLI call")
    for fam in ("girder_processes", "girder_messages_received_total", "girder_rpc_calls_total",
                "girder_rpc_duration_seconds", "girder_link_bytes_total",
                "girder_link_backlog_bytes", "girder_members", "girder_pubsub_published_total"):
        check(f"# TYPE {fam} " in text, f"/metrics has no family {fam}")
    check(_sample(text, 'girder_members{state="up"}') == 1, "girder_members{state=up} is not 1")
    check((_sample(text, f'girder_link_bytes_total{{peer="{b.name}",direction="out"}}') or 0) > 0,
          f"no bytes counted to {b.name}")
    check(_sample(text, 'girder_rpc_duration_seconds_bucket{le="+Inf"}') ==
          _sample(text, "girder_rpc_duration_seconds_count"), "histogram +Inf != _count")
    promtool = shutil.which("promtool")
    check(promtool, "promtool not installed (scripts/setup-deps installs Debian's prometheus)")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0, f"promtool check metrics: {p.stdout} {p.stderr}")

    # the JSON API, fleet-wide
    st, _, body = _get(a.http + "/api/nodes")
    nodes = {e["name"]: e["state"] for e in json.loads(body)}
    check(st == 200 and nodes == {a.name: "self", b.name: "up"}, f"/api/nodes: {st} {body[:300]}")
    st, _, body = _get(a.http + "/api/stats")
    stats = json.loads(body)
    check(st == 200 and set(stats) == {a.name, b.name} and
          all("processes" in v.get("ok", {}) for v in stats.values()),
          f"/api/stats: {st} {body[:300]}")
    st, _, body = _get(a.http + "/api/ps?limit=5")
    ps = json.loads(body)
    check(st == 200 and set(ps) == {a.name, b.name} and
          all(0 < len(v.get("ok", [])) <= 5 for v in ps.values()), f"/api/ps: {st} {body[:300]}")
    check({"pid", "name", "behaviour", "status", "mailbox", "memory", "handled"} <=
          set(ps[b.name]["ok"][0]), f"/api/ps fields: {ps[b.name]['ok'][0]}")

    # bad requests: 4xx, and the node keeps serving
    st, _, _ = _get(a.http + "/no/such")
    check(st == 404, f"unknown path: {st}")
    req = urllib.request.Request(a.http + "/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        check(False, "POST /metrics was accepted")
    except urllib.error.HTTPError as e:
        check(e.code == 405, f"POST /metrics: {e.code}")
    for what, data in (("garbage", b"GARBAGE\r\n\r\n"),
                       ("huge header", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                        b"a" * 100000 + b"\r\n\r\n"),
                       ("huge body", b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
                        b"10000000\r\n\r\n" + b"a" * 4096),
                       ("bad version", b"GET / HTTP/9.9\r\n\r\n")):
        line = _raw(a.addr, a.http_port, data)
        check(line == "" or line.split()[1].startswith("4"), f"{what}: answered {line!r}")
    st, _, _ = _get(a.http + "/healthz")
    check(st == 200 and a.running(), "the node stopped serving after bad requests")

    # a member that does not answer: the fleet-wide answer comes within the
    # multicall's 3 s and marks it ("timeout", or "noconnection" when the
    # failure detector, also 3 s, declares it down first); a client that leaves while its answer is
    # being gathered costs nothing (and leaks nothing, under ASan)
    b.sigstop()
    wait_until("every thread of b to be stopped", lambda: _all_stopped(b.pid), 10)
    try:
        s = socket.create_connection((a.addr, a.http_port), timeout=5)
        s.sendall(b"GET /api/ps HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        t0 = time.monotonic()
        st, _, body = _get(a.http + "/api/stats", timeout=15)
        secs = time.monotonic() - t0
        stats = json.loads(body)
        check(st == 200 and stats.get(b.name, {}).get("error") in ("timeout", "noconnection") and
              "ok" in stats.get(a.name, {}),
              f"/api/stats with b stopped: {st} b: {stats.get(b.name)} a: {list(stats.get(a.name, {}))} after {secs:.1f} s")
        check(secs < 10, f"/api/stats with b stopped took {secs:.1f} s")
    finally:
        b.sigcont()
    check(_get(a.http + "/healthz")[0] == 200, "the node stopped serving")


def _cpu_s(pid):
    """User + system CPU seconds of process pid."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(") ", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def test_http_emfile(c):
    """Out of descriptors (the node's limit lowered to 64 with prlimit, then
    300 connections to its HTTP and cluster ports): each listener pauses
    100 ms after a failed accept instead of failing it in a loop, so the node
    stays cool and logs a few lines a second; once the connections close it
    serves HTTP and the CLI again."""
    a = _http_node(c, "a")
    prlimit = shutil.which("prlimit")
    check(prlimit is not None, "prlimit missing (util-linux)")
    subprocess.run([prlimit, f"--pid={a.pid}", "--nofile=64:64"], check=True)
    socks = []
    for port in (a.http_port, a.port):
        for _ in range(150):
            try:  # past the accept backlog a connect waits: a short timeout
                socks.append(socket.create_connection((a.addr, port), timeout=0.2))
            except OSError:
                pass
    with open(a.log_path) as f:
        lines0 = sum(1 for _ in f)
    cpu0 = _cpu_s(a.pid)
    time.sleep(3)
    cpu = _cpu_s(a.pid) - cpu0
    with open(a.log_path) as f:
        text = f.read().splitlines()[lines0:]
    fails = [ln for ln in text if "accept failed" in ln]
    print(f"    {len(socks)} connections held 3 s: node CPU {cpu:.2f} s, "
          f"{len(fails)} 'accept failed' lines")
    check(any("pausing accepts" in ln for ln in fails), "no 'accept failed ... pausing' line")
    # before: both threads at 100 % and 130,000 lines a second
    check(cpu < 1.5 and len(fails) < 200, f"CPU {cpu:.2f} s, {len(fails)} lines in 3 s")
    for s in socks:
        s.close()
    wait_until("/healthz after the descriptors are back",
               lambda: _get(a.http + "/healthz")[0] == 200, 20)
    c.expect(a.cli("ping"), EXIT_OK)


def test_http_token(c):
    """Tokens: refused at start when missing or unsafe off loopback; /api and /
    need it, /metrics only with http_protect_metrics; the dashboard cookie."""
    girderd = c.girderd
    bad = c.make_cookie("open.token", "t0ken", mode=0o644)
    for extra, what in ((["--http", "0.0.0.0:0"], "no token file off loopback"),
                        (["--http", "0.0.0.0:0", "--http-token-file", bad],
                         "token file readable by others"),
                        (["--http", "127.0.0.1:0", "--http-require-token", "true"],
                         "http_require_token without a file")):
        p = subprocess.run([girderd, "--name", "t@127.0.0.1", "--listen", "127.0.0.1:0",
                            "--cookie-file", c.cookie_file] + extra,
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 2 and "HTTP" in p.stderr, f"{what}: exit {p.returncode} {p.stderr}")

    token = os.urandom(16).hex()
    tf = c.make_cookie("http.token", token)
    a = _http_node(c, "a", extra=["--http-token-file", tf])  # a token given is asked for
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/api/nodes", "/api/stats", "/"):
        st, hdrs, _ = _get(a.http + path)
        check(st == 401 and "Bearer" in (hdrs.get("WWW-Authenticate") or ""),
              f"{path} without a token: {st}")
        st, _, _ = _get(a.http + path, {"Authorization": "Bearer " + token[:-1] + "x"})
        check(st == 401, f"{path} with a wrong token: {st}")
        st, _, _ = _get(a.http + path, auth)
        check(st == 200, f"{path} with the token: {st}")
    check(_get(a.http + "/metrics")[0] == 200, "/metrics is open without http_protect_metrics")
    check(_get(a.http + "/healthz")[0] == 200, "/healthz is open without http_protect_metrics")
    # the dashboard's cookie: /?token= sets it, and it opens the API
    st, hdrs, _ = _get(a.http + "/?token=" + token)
    cookie = (hdrs.get("Set-Cookie") or "").split(";")[0]
    check(st == 200 and cookie == f"girder_token={token}", f"/?token=: {st} {cookie!r}")
    check(_get(a.http + "/api/nodes", {"Cookie": cookie})[0] == 200, "the cookie opens /api")
    check(_get(a.http + "/api/nodes", {"Cookie": "girder_token=x"})[0] == 401,
          "a wrong cookie opens /api")
    a.stop()

    b = _http_node(c, "b", extra=["--http-token-file", tf, "--http-protect-metrics", "true"])
    check(_get(b.http + "/metrics")[0] == 401, "/metrics open with http_protect_metrics")
    check(_get(b.http + "/healthz")[0] == 401, "/healthz open with http_protect_metrics")
    check(_get(b.http + "/metrics", auth)[0] == 200, "/metrics with the token")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    raise TestFailure("chromium not installed (scripts/setup-deps installs Debian's chromium)")


class Browser:
    """Headless Chromium driven through the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands in on fd 3, answers out on fd 4, each a
    NUL-terminated JSON text), so the test can read one page's live DOM many
    times without reloading it. --dump-dom would dump once, when the page has
    loaded, which for a page fed by server-sent events is too early."""

    def __init__(self, c):
        cmd_r, self._w = os.pipe()
        self._r, out_w = os.pipe()

        def fds():
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        self.proc = subprocess.Popen(
            [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-pipe",
             f"--user-data-dir={os.path.join(c.dir, 'chromium-profile')}",
             "--window-size=1280,900", "about:blank"],
            pass_fds=(3, 4, cmd_r, out_w), preexec_fn=fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(c.dir, "chromium.log"), "w"),
            start_new_session=True)
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.sid = None

    def send(self, method, params=None, session=True, timeout=30):
        self._id += 1
        m = {"id": self._id, "method": method, "params": params or {}}
        if session and self.sid:
            m["sessionId"] = self.sid
        os.write(self._w, json.dumps(m).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buf:
                if time.monotonic() > deadline:
                    raise TestFailure(f"chromium did not answer {method}")
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise TestFailure(f"chromium exited during {method} (chromium.log)")
                self._buf += chunk
            msg, self._buf = self._buf.split(b"\0", 1)
            d = json.loads(msg)
            if d.get("id") == self._id:
                if "error" in d:
                    raise TestFailure(f"chromium: {method}: {d['error']}")
                return d.get("result", {})

    def open(self, url):
        t = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.sid = self.send("Target.attachToTarget", {"targetId": t, "flatten": True},
                             session=False)["sessionId"]

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", session=False, timeout=10)
                self.proc.wait(timeout=10)
        except (TestFailure, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self._w)
            os.close(self._r)


def _sse_events(url, until, timeout):
    """Read /api/events; return the first snapshot (parsed) for which until(snap)."""
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(url, timeout=timeout) as r:
        check(r.headers.get("Content-Type", "").startswith("text/event-stream"),
              f"/api/events type {r.headers.get('Content-Type')}")
        event, data = None, []
        while time.monotonic() < deadline:
            line = r.readline().decode("utf-8", "replace")
            if not line:
                break
            line = line.rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                if event == "snapshot":
                    snap = json.loads("\n".join(data))
                    if until(snap):
                        return snap
                event, data = None, []
    raise TestFailure("no matching snapshot on /api/events")


DASH_IDLE = 300  # idle processes on b: more than the 200 each ranking sends


@testkit
def test_http_dashboard(c):
    """The dashboard in headless Chromium: both nodes listed; a process spawned
    after the page loaded shows without a reload; the same through /api/events;
    a screenshot kept."""
    b = c.node("b")
    a = _http_node(c, "a", seeds=[b])
    c.wait_mesh([a, b])
    br = Browser(c)
    try:
        br.open(a.http + "/")
        nodes_js = ("Array.from(document.querySelectorAll('#nodes tr[data-node]'))"
                    ".map(r => r.dataset.node).sort().join(' ')")
        want = " ".join(sorted([a.name, b.name]))
        wait_until("the dashboard to list both nodes", lambda: br.eval(nodes_js) == want, 20)
        loads = br.eval("performance.getEntriesByType('navigation').length")
        r = c.expect(a.cli("spawn", "--on", b.name, "echo"), EXIT_OK, what="spawn on b")
        pid = r.data if isinstance(r.data, str) else (r.data or {}).get("pid")
        check(isinstance(pid, str) and pid.startswith("<"), f"spawn answered {r!r}")
        pids_js = ("Array.from(document.querySelectorAll('#procs tr[data-pid]'))"
                   ".map(r => r.dataset.pid).join(' ')")
        wait_until(f"the dashboard to show {pid}", lambda: pid in (br.eval(pids_js) or ""), 20)
        check(br.eval("performance.getEntriesByType('navigation').length") == loads and
              br.eval("location.href") == a.http + "/", "the page was reloaded")

        # More processes on b than a node sends per ranking (200), the last of
        # them busy: its pid id is above the first 200, and it is shown.
        spec = {"strategy": "one_for_one",
                "children": [{"id": i, "behaviour": "echo"} for i in range(DASH_IDLE)] +
                            [{"id": DASH_IDLE, "behaviour": "seq"}]}
        sup = c.expect(a.cli("spawn", "--on", b.name, "supervisor",
                             json.dumps(spec, separators=(",", ":"))), EXIT_OK,
                       what="spawn a supervisor on b").data

        def started():
            w = a.cli("call", sup, '["which_children"]', timeout_ms=20000)
            ok = w.rc == EXIT_OK and isinstance(w.data, list)
            pids = {e[0]: e[1] for e in w.data if isinstance(e, list) and e[1]} if ok else {}
            return pids if len(pids) == DASH_IDLE + 1 else None
        busy = wait_until(f"{DASH_IDLE + 1} children on b", started, 60, 0.2)[DASH_IDLE]
        send = c.expect(a.cli("spawn", "seq"), EXIT_OK, what="spawn seq on a").data
        c.expect(a.cli("call", send, json.dumps(["burst", busy, 20000]), timeout_ms=30000),
                 EXIT_OK, what="burst to the busy seq")
        row_js = ("(r => r ? Array.from(r.cells).map(c => c.textContent) : null)"
                  f"(document.querySelector('#procs tr[data-pid=\"{busy}\"]'))")
        row = wait_until(f"the dashboard to show the busy {busy}", lambda: br.eval(row_js), 20)
        check(int(row[8]) >= 20000, f"the busy process's work: {row}")
        total_js = "document.getElementById('pscount').textContent"
        shown = br.eval(total_js) or ""
        check(any(int(w) > DASH_IDLE for w in shown.strip("()").split() if w.isdigit()),
              f"the count names every process: {shown!r}")
        # the work/s column moves while the sender keeps it busy
        c.expect(a.cli("call", send, json.dumps(["burst", busy, 200000]), timeout_ms=60000),
                 EXIT_OK, what="a longer burst")
        wait_until("a work/s rate on the busy row",
                   lambda: (lambda r: r and int(r[5]) > 0)(br.eval(row_js)), 20)
        shot = os.path.join(c.dir, "dashboard.png")
        br.screenshot(shot)
        with open(os.path.join(c.dir, "dashboard-dom.html"), "w") as f:
            f.write(br.eval("document.documentElement.outerHTML") or "")
    finally:
        br.close()
    check(os.path.getsize(shot) > 1000, "empty screenshot")
    shutil.copy(shot, os.path.join(os.path.dirname(c.dir), "ht_dashboard.png"))

    # the same from Python, on the event stream itself: the busy process
    pid = busy

    def has_pid(snap):
        procs = ((snap.get("by_work") or {}).get(b.name, {}).get("ok") or {}).get("processes")
        return any(p.get("pid") == pid for p in procs or [])

    snap = _sse_events(a.http + "/api/events", has_pid, 20)
    for rank in ("by_work", "by_mailbox"):
        r = ((snap.get(rank) or {}).get(b.name) or {}).get("ok") or {}
        check(len(r.get("processes") or []) == 200 and r.get("total", 0) > DASH_IDLE,
              f"{rank} of b: 200 of all {r.get('total')} processes")
    check({e["name"] for e in snap["nodes"]} == {a.name, b.name}, f"snapshot nodes: {snap}")
    check(_get(a.http + "/healthz")[0] == 200, "the node stopped serving")
