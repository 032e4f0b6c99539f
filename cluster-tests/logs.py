# SPDX-License-Identifier: Apache-2.0
"""logs - what girderd writes to its log that does not come from its own code.

lg_libevent: libevent's messages (evdns telling that a nameserver failed) are
the node's log lines (timestamp, level, module "libevent"), not libevent's
bare "[msg] ..." on stderr. The node runs in a private mount namespace in
which /etc/resolv.conf names a nameserver that does not answer (127.0.0.9),
and discovers a DNS name through it.
"""
import os
import re
import subprocess

from harness import TestFailure, check, wait_until


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
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise TestFailure("girderd did not stop on SIGTERM") from None
