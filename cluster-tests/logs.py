# SPDX-License-Identifier: Apache-2.0
"""logs - what girderd writes to its log that does not come from its own code.

lg_libevent: libevent's messages (evdns telling that a nameserver failed) are
the node's log lines (timestamp, level, module "libevent"), not libevent's
bare "[msg] ..." on stderr. The node runs in a private mount namespace in
which /etc/resolv.conf names a nameserver that does not answer (127.0.0.9),
and discovers a DNS name through it.

lg_redial: a seed that refuses (a closed port) and one whose name does not
resolve are redialled with backoff for as long as the node runs, but logged
only until the backoff is at its ceiling (5 s): a handful of lines, then
none above debug, instead of one or two lines per redial for ever.
"""
import os
import re
import subprocess
import time

from harness import TestFailure, check, free_port, wait_until


def _stop(p):
    """SIGTERM the girderd p; it must stop within 10 s."""
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise TestFailure("girderd did not stop on SIGTERM") from None


def test_libevent_log(c):
    """evdns's "Nameserver ... has failed" as a girderd log line, module libevent."""
    resolv = os.path.join(c.dir, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.9\noptions timeout:1 attempts:1\n")
    log_path = os.path.join(c.dir, "dns.log")
    inner = (f"mount --bind {resolv} /etc/resolv.conf && exec {c.girderd}"
             f" --name dns@127.0.0.1 --listen 127.0.0.1:0 --cookie-file {c.cookie_file}"
             " --discover-dns girder-test.invalid --discover-interval-ms 1000")
    with open(log_path, "w") as log:
        p = subprocess.Popen(["unshare", "-m", "sh", "-c", inner], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        def text():
            with open(log_path, errors="replace") as f:
                return f.read()

        line = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z girderd\[\d+\] \w+ libevent: Nameserver "
                          r"127\.0\.0\.9:53 has failed", re.M)
        wait_until("the nameserver's failure as a girderd log line",
                   lambda: line.search(text()), 30)
        check(p.poll() is None, f"girderd exited ({p.returncode}): {text()[-500:]}")
        bare = [ln for ln in text().splitlines() if ln.startswith("[")]
        check(not bare, f"libevent lines not formatted: {bare[:3]}")
    finally:
        _stop(p)


def test_redial_log(c):
    """A down seed and an unresolvable one: bounded log lines, then quiet."""
    log_path = os.path.join(c.dir, "redial.log")
    port = free_port("127.0.0.1")  # nothing listens there: every dial is refused
    cmd = [c.girderd, "--name", "rd@127.0.0.1", "--listen", "127.0.0.1:0", "--cookie-file",
           c.cookie_file, "--seed", f"down@127.0.0.1:{port}", "--seed",
           "nowhere@girder-test-no-such-host.invalid:4370"]
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        def loud():
            with open(log_path, errors="replace") as f:
                return [ln for ln in f.read().splitlines()
                        if re.search(r" (info|warn|warning|error) ", ln) and
                        (f":{port}" in ln or "girder-test-no-such-host" in ln)]

        wait_until("the refused seed logged", lambda: any(f":{port}" in ln for ln in loud()), 30)
        wait_until("the unresolvable seed logged",
                   lambda: any("girder-test-no-such-host" in ln for ln in loud()), 30)
        # backoff 0.1, 0.2, ... 3.2, 5 s: at the ceiling within ~7 s (jitter +20%)
        time.sleep(12)
        settled = len(loud())
        time.sleep(12)  # two or more redials of each at the ceiling
        end = loud()
        check(p.poll() is None, "girderd exited")
        check(len(end) == settled, f"still logging at the backoff ceiling: {end[settled:][:4]}")
        check(settled <= 30, f"{settled} lines for two dead seeds in 24 s: {end[:6]}")
        print(f"    {settled} log lines above debug for two dead seeds, none in the last 12 s")
    finally:
        _stop(p)
