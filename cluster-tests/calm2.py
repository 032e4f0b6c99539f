# SPDX-License-Identifier: Apache-2.0
"""calm2 - cookie rotation without downtime (mh2_* rows in tests.py).

mh2_cookie_rotation: three nodes a, b, c, each with its own cookie file and an
--accept-cookie-file that does not exist yet, go through the procedure of
docs/operations.md ("Cookie rotation"), one node at a time, SIGHUP after each
change:
  1. the new cookie goes into every node's accept file;
  2. every node's cookie file gets the new cookie, its accept file the old one;
  3. the accept files are removed.
After every single reload: `girder nodes` on every node lists them all up
(through a CLI holding a cookie that node takes at that moment), a CLI with the
new cookie is taken wherever the new one is accepted, and no node logged a
nodedown or refused a handshake. Links up are never re-authenticated, so new
node-to-node handshakes are made on purpose: in the middle of step 2 (a
switched, b and c not yet) node d starts with the new cookie and the old one
accepted, and is meshed with all three (it proves the new cookie to b and c,
they prove the old one to it); after step 3 node e starts with the new cookie
alone and is meshed too. Last: a CLI with the old cookie is refused with
bad_cookie by every node, and a SIGHUP whose accept file is readable by others
keeps the previous cookies (logged) without touching the links.
"""

import os
import re
import signal

from harness import EXIT_AUTH, EXIT_OK, check

AUTH_FAIL = r"bad_cookie|wrong cookie|authenticat\w* fail"


def _write(path, value, mode=0o600):
    if os.path.exists(path):
        os.chmod(path, 0o600)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, mode)


def _reload(n):
    mark = n.log_mark()
    n.signal(signal.SIGHUP)
    return n.wait_log(r"SIGHUP: cookies (reloaded \(\d+ accepted|not reloaded)", 15, mark,
                      f"{n.short} to reload its cookies")


def _no_trouble(nodes, what):
    for n in nodes:
        bad = [ln for ln in n.log_text().splitlines()
               if re.search(r"nodedown|bad_cookie|bad_frame|handshake .* failed", ln)]
        check(not bad, f"{what}: {n.short} logged {bad[:3]}")


def test_mh2_cookie_rotation(c):
    old = open(c.cookie_file).read().strip()
    new = os.urandom(24).hex()
    new_file = c.make_cookie("cookie-new", value=new)
    old_file = c.cookie_file
    files = {}

    def node(short, seeds, current, accepted):
        cur = os.path.join(c.dir, f"cookie-{short}")
        acc = os.path.join(c.dir, f"accept-{short}")
        _write(cur, current)
        if accepted is not None:
            _write(acc, accepted)
        files[short] = (cur, acc)
        return c.node(short, seeds=seeds, cookie_file=cur,
                      extra=["--accept-cookie-file", acc])

    a = node("a", [], old, None)
    b = node("b", [a], old, None)
    y = node("c", [a], old, None)
    nodes = [a, b, y]
    c.wait_mesh(nodes)
    accepts = {n.short: {old} for n in nodes}  # what each node takes now

    def check_all(what):
        for o in nodes:
            cookie = old_file if old in accepts[o.short] else new_file
            view = o.cli("nodes", "--only", cookie_file=cookie)
            c.expect(view, EXIT_OK, what=f"{what}: girder nodes on {o.short}")
            states = {e["name"]: e.get("state") for e in view.data}
            for m in nodes:
                want = "self" if m is o else "up"
                check(states.get(m.name) == want,
                      f"{what}: {o.short} sees {m.short} {states.get(m.name)!r}, not {want}")
            if new in accepts[o.short]:
                c.expect(o.cli("ping", cookie_file=new_file), EXIT_OK,
                         what=f"{what}: a CLI with the new cookie on {o.short}")
        _no_trouble(nodes, what)

    # 1. accept the new cookie everywhere, one node at a time
    for n in nodes:
        _write(files[n.short][1], new)
        m = _reload(n)
        check("(1 accepted" in m.group(0), f"{n.short} did not take the new cookie: {m.group(0)}")
        accepts[n.short].add(new)
        check_all(f"step 1, {n.short} accepts the new cookie")

    # 2. switch the cookie everywhere; the old one stays accepted
    for i, n in enumerate(nodes):
        cur, acc = files[n.short]
        _write(cur, new)
        _write(acc, old)
        _reload(n)
        check_all(f"step 2, {n.short} proves the new cookie")
        if i == 0:
            # mixed: a proves the new cookie, b and c the old one
            d = node("d", [a, b], new, old)
            nodes.append(d)
            accepts["d"] = {old, new}
            c.wait_mesh(nodes)
            check_all("step 2, d started with the new cookie, the old accepted")

    # 3. drop the old cookie everywhere
    for n in nodes:
        os.unlink(files[n.short][1])
        m = _reload(n)
        check("(0 accepted" in m.group(0), f"{n.short} still accepts a cookie: {m.group(0)}")
        accepts[n.short] = {new}
        check_all(f"step 3, {n.short} dropped the old cookie")
    e = node("e", [b], new, None)
    nodes.append(e)
    accepts["e"] = {new}
    c.wait_mesh(nodes)
    check_all("after the rotation, e started with the new cookie alone")

    # the old cookie is refused now, with the right reason
    for n in nodes:
        mark = n.log_mark()
        c.expect(n.cli("ping", cookie_file=old_file), EXIT_AUTH,
                 what=f"a CLI with the old cookie on {n.short}")
        n.wait_log(AUTH_FAIL, 10, mark, f"{n.short} to log the old cookie's refusal")

    # an unsafe accept file: the reload is refused, the node keeps what it had
    cur, acc = files["a"]
    _write(acc, old, mode=0o644)
    m = _reload(a)
    check("not reloaded" in m.group(0), f"a took an accept file readable by others: {m.group(0)}")
    c.expect(a.cli("ping", cookie_file=old_file), EXIT_AUTH,
             what="the old cookie after a refused reload")
    c.expect(a.cli("ping", cookie_file=new_file), EXIT_OK,
             what="the new cookie after a refused reload")
    c.wait_mesh(nodes, timeout=5)
    for n in nodes:
        check(not re.search(r"nodedown", n.log_text()), f"{n.short} logged a nodedown")
