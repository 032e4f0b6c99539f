# SPDX-License-Identifier: Apache-2.0
"""pubsub2 - `girder sub` streaming and the slow subscriber (issue 14).

ps2_stream    `girder sub` on node a (wildcards) prints what `girder pub` on
              node b publishes, in order, as it arrives; --count exits by itself
              and the tap goes (a's interest vanishes on b).
ps2_stop      --timeout S exits by itself with nothing to print; SIGTERM ends a
              streaming sub, which unsubscribes (interest gone on the other
              node); bad patterns are usage errors with the reason.
"""

import json
import signal
import subprocess

from harness import EXIT_OK, EXIT_USAGE, check, wait_until


def _interest(c, node):
    return c.expect(node.cli("rpc", node.name, "pubsub", "cluster"), EXIT_OK).data["interest"]


def _sub(c, node, *args):
    argv = [c.girder, "-n", node.spec, "--cookie-file", c.cookie_file, "sub", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ps2_stream(c):
    """sub on a with two wildcard patterns, --json; pub on b. The first message
    is read back before the second is published (it streams), a topic that
    matches no pattern is never printed, the rest arrive in publish order, and
    --count 12 ends the CLI by itself."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])
    p = _sub(c, a, "orders.*", "audit.>", "--json", "--count", "12")
    wait_until("b to learn a's two patterns", lambda: _interest(c, b) == 2, 15)

    c.expect(b.cli("pub", "orders.n0", '{"i": 0}'), EXIT_OK)
    first = json.loads(p.stdout.readline())
    check(first == {"topic": "orders.n0", "payload": {"i": 0}}, f"first message: {first!r}")
    want = []
    for i in range(1, 12):
        topic = f"orders.n{i}" if i % 2 else f"audit.x{i}.y"
        c.expect(b.cli("pub", "other.n", '{"no": 1}'), EXIT_OK)  # matches nothing
        c.expect(b.cli("pub", topic, json.dumps({"i": i})), EXIT_OK)
        want.append({"topic": topic, "payload": {"i": i}})
    out, err = p.communicate(timeout=30)
    check(p.returncode == EXIT_OK, f"sub exit {p.returncode}: {err!r}")
    got = [json.loads(ln) for ln in out.splitlines()]
    check(got == want, f"11 more in publish order, nothing else: {got!r}")
    wait_until("the tap unsubscribed (b forgets a's interest)", lambda: _interest(c, b) == 0, 10)


def test_ps2_stop(c):
    """--timeout ends a sub with no messages (exit 0, no output); SIGTERM ends a
    streaming one, which closes its tap; bad patterns exit 2 naming why."""
    a = c.node("a")
    b = c.node("b", seeds=[a])
    c.wait_mesh([a, b])

    p = _sub(c, a, "quiet.>", "--timeout", "1.5")
    out, err = p.communicate(timeout=30)
    check(p.returncode == EXIT_OK and out == "", f"--timeout: exit {p.returncode} {out!r} {err!r}")
    topics = c.expect(a.cli("rpc", a.name, "pubsub", "topics"), EXIT_OK).data
    check(topics == [], f"the timed-out tap unsubscribed: {topics!r}")

    p = _sub(c, a, "live.*")
    wait_until("b to learn a's pattern", lambda: _interest(c, b) == 1, 15)
    c.expect(b.cli("pub", "live.one", '"hello"'), EXIT_OK)
    line = p.stdout.readline()
    check(line == 'live.one "hello"\n', f"text line: {line!r}")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == EXIT_OK, f"SIGTERM: exit {p.returncode} {err!r}")
    wait_until("the tap closed on SIGTERM", lambda: _interest(c, b) == 0, 10)
    topics = c.expect(a.cli("rpc", a.name, "pubsub", "topics"), EXIT_OK).data
    check(topics == [], f"no subscription left on a: {topics!r}")

    for bad, why in (("a*", "whole token"), ("a.>.b", "last token"), ("a..b", "empty token"),
                     ("", "empty topic")):
        r = c.cli("sub", bad, node=a, use_json=False)
        check(r.rc == EXIT_USAGE and why in r.err and "bad TOPIC pattern" in r.err,
              f"sub {bad!r}: {r!r}")
