# SPDX-License-Identifier: Apache-2.0
"""redis2 - the Redis front end's lists, cursors, random pops and
transactions (docs/redis.md), driven by redis-py and redis-cli.

Tests (rows rd2_* in tests.py):
  rd2_lists     a list of 20,000 elements: pushes and pops at both ends,
                LRANGE windows, LINDEX, LREM; each element is an entry of
                the db's list table (`girder table info redis.list`), DBSIZE
                and SCAN see only keys; DEL, RENAME, EXPIRE and FLUSHDB take
                the elements along
  rd2_lists_cluster  two nodes: pushes on a read on b, pops on b seen on a
  rd2_scan      10,000 keys through redis-cli --scan and scan_iter; HSCAN,
                SSCAN, ZSCAN of 10,000 items page by COUNT with a real
                cursor and end at 0, every item present throughout returned
                while others come and go; SPOP and SRANDMEMBER at random
  rd2_multi     EXEC is isolated on the node: another client polling the
                key never sees a transaction's intermediate state; WATCH
                aborts on another client's change (of a list too)
"""

import subprocess
import sys
import threading

from harness import check, wait_until
from redis_tests import client, redis_node

try:
    import redis  # python3-redis (Debian)
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import redis  # noqa: E402


def _entries(node, table):
    r = node.cli("table", "info", table)
    return r.data.get("entries") if r.rc == 0 and isinstance(r.data, dict) else None


def test_lists(c):
    a, port = redis_node(c, "a")
    r = client(a, port)
    n = 20000
    p = r.pipeline(transaction=False)
    for i in range(n):
        if i % 2:
            p.rpush("big", f"r{i}")
        else:
            p.lpush("big", f"l{i}")
    res = p.execute()
    check(res[-1] == n, f"LLEN after {n} pushes: {res[-1]}")
    want = [f"l{i}" for i in range(n - 2, -1, -2)] + [f"r{i}" for i in range(1, n, 2)]
    check(r.llen("big") == n and r.lrange("big", 0, -1) == want, "LRANGE of the whole list")
    check(r.lrange("big", 100, 199) == want[100:200] and r.lrange("big", -5, -1) == want[-5:],
          "LRANGE windows")
    check(r.lindex("big", n // 2) == want[n // 2] and r.lindex("big", -1) == want[-1], "LINDEX")
    check(_entries(a, "redis.list") == n, f"one list-table entry per element: "
          f"{_entries(a, 'redis.list')}")
    r.set("str", "x")
    check(r.dbsize() == 2 and sorted(r.scan_iter()) == ["big", "str"] and r.keys("*") != [],
          "DBSIZE and SCAN count keys, not elements")
    check(r.lpop("big", 3) == want[:3] and r.rpop("big", 2) == want[-1:-3:-1], "pops")
    del want[:3]
    del want[-2:]
    check(r.lrange("big", 0, 4) == want[:5] and r.llen("big") == len(want), "after pops")
    check(_entries(a, "redis.list") == len(want), "popped elements are deleted")
    # LREM rewrites: remove every r1x element from the tail side
    r.rpush("q", "a", "b", "a", "c", "a")
    check(r.lrem("q", -2, "a") == 2 and r.lrange("q", 0, -1) == ["a", "b", "c"], "LREM -2")
    check(r.rename("q", "q2") and r.lrange("q2", 0, -1) == ["a", "b", "c"] and
          r.exists("q") == 0, "RENAME moves the elements")
    r.rpush("dst", "old1", "old2", "old3")
    r.rename("q2", "dst")
    check(r.lrange("dst", 0, -1) == ["a", "b", "c"], "RENAME over a list replaces it whole")
    check(r.delete("big") == 1 and _entries(a, "redis.list") == 3, "DEL deletes the elements")
    r.rpush("t", "1", "2")
    check(r.expire("t", 1) and 0 < r.pttl("t") <= 1000, "EXPIRE on a list")
    r.rpush("t", "3")
    wait_until("the list and its elements expire",
               lambda: r.exists("t") == 0 and _entries(a, "redis.list") == 3, 15)
    r.rpush("p", "1")
    r.expire("p", 100)
    check(r.persist("p") == 1 and r.ttl("p") == -1, "PERSIST on a list")
    r.flushdb()
    check(r.dbsize() == 0 and _entries(a, "redis.list") == 0, "FLUSHDB empties the list table")
    check(r.lpush("s", "x") == 1 and r.lpop("s") == "x" and r.exists("s") == 0, "empty: gone")


def test_lists_cluster(c):
    a, pa = redis_node(c, "a")
    b, pb = redis_node(c, "b", seeds=[a])
    c.wait_mesh([a, b])
    ra, rb = client(a, pa), client(b, pb)
    ra.rpush("q", *[str(i) for i in range(100)])
    wait_until("b reads a's list", lambda: rb.lrange("q", 0, -1) == [str(i) for i in range(100)],
               15)
    check(rb.lpop("q", 10) == [str(i) for i in range(10)], "LPOP on b")
    rb.rpush("q", "from-b")
    want = [str(i) for i in range(10, 100)] + ["from-b"]
    wait_until("a sees b's pops and push", lambda: ra.lrange("q", 0, -1) == want, 15)


def test_scan(c):
    a, port = redis_node(c, "a")
    r = client(a, port)
    p = r.pipeline(transaction=False)
    for i in range(10000):
        p.set(f"k{i}", i)
    for i in range(0, 10000, 500):
        p.hset("h", mapping={f"f{j}": j for j in range(i, i + 500)})
        p.sadd("s", *[f"m{j}" for j in range(i, i + 500)])
        p.zadd("z", {f"z{j}": j for j in range(i, i + 500)})
    p.execute()
    want = {f"k{i}" for i in range(10000)} | {"h", "s", "z"}
    keys = list(r.scan_iter(count=100))
    check(len(keys) == len(want) and set(keys) == want, f"scan_iter: {len(keys)} keys")
    out = subprocess.run(["redis-cli", "-h", a.addr, "-p", str(port), "--scan"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    check(len(out) == len(want) and set(out) == want, f"redis-cli --scan: {len(out)} keys")
    cur, page = r.scan(0, count=100)
    check(cur != 0 and 50 <= len(page) <= 200, f"SCAN COUNT 100: {len(page)} keys")
    for cmd, key in (("hscan", "h"), ("sscan", "s"), ("zscan", "z")):
        cur, page = getattr(r, cmd)(key, 0, count=100)
        check(cur != 0 and 50 <= len(page) <= 200, f"{cmd} COUNT 100 pages: {len(page)}")
        cur, page = getattr(r, cmd)(key, cur, count=1000)
        check(cur != 0 and 500 <= len(page) <= 2000, f"{cmd} COUNT 1000: {len(page)}")
    h = dict(r.hscan_iter("h", count=100))
    check(h == {f"f{j}": str(j) for j in range(10000)}, "hscan_iter: every field once")
    s = list(r.sscan_iter("s", count=100))
    check(len(s) == 10000 and set(s) == {f"m{j}" for j in range(10000)}, "sscan_iter")
    z = list(r.zscan_iter("z", count=100))
    check(len(z) == 10000 and dict(z) == {f"z{j}": float(j) for j in range(10000)}, "zscan_iter")
    # members come and go during an iteration: the stable ones come once each
    cur, seen, first, gone = 0, [], True, set()
    while first or cur != 0:
        first = False
        cur, page = r.sscan("s", cur, count=300)
        seen += page
        k = len(seen)
        r.srem("s", f"m{k}")
        gone.add(f"m{k}")
        r.sadd("s", f"new{k}")
    stable = {f"m{j}" for j in range(10000)} - gone
    check(stable <= set(seen), "every member present throughout is returned")
    check(len([m for m in seen if m in stable]) == len(stable), "... exactly once")
    try:
        r.sscan("s", 987654321)
        check(False, "an unknown cursor of a big set is refused")
    except redis.exceptions.ResponseError as e:
        check("invalid cursor" in str(e), str(e))
    # random pops: 30 SPOPs of 1 from a fresh 200-member set, 3 times, differ
    runs = []
    for _ in range(3):
        r.delete("rs")
        r.sadd("rs", *[f"e{i:03d}" for i in range(200)])
        runs.append([r.spop("rs") for _ in range(30)])
    check(runs[0] != runs[1] or runs[1] != runs[2], "SPOP order differs between runs")
    check(runs[0] != sorted(runs[0]), "SPOP is not the set's byte order")
    got = r.spop("rs", 500)
    check(len(got) == 170 and r.scard("rs") == 0 and r.exists("rs") == 0, "SPOP count empties")
    r.sadd("rs", *[f"e{i:03d}" for i in range(200)])
    picks = {r.srandmember("rs") for _ in range(50)}
    check(len(picks) > 10, f"SRANDMEMBER spreads: {len(picks)} distinct of 50")


def test_multi(c):
    a, port = redis_node(c, "a")
    r1, r2 = client(a, port), client(a, port)
    stop = threading.Event()
    seen = set()

    def poll():
        r = client(a, port)
        while not stop.is_set():
            v = r.get("x")
            seen.add(v)
            seen.add(("llen", r.llen("l")))

    r1.set("x", "before")
    th = threading.Thread(target=poll)
    th.start()
    try:
        for round_ in range(20):
            p = r1.pipeline(transaction=True)
            p.set("x", "mid")
            for _ in range(300):
                p.incr("n")
                p.rpush("l", "e")
            p.set("x", f"after{round_}")
            p.delete("l")
            res = p.execute()
            check(res[0] is True and res[-1] == 1, f"EXEC ran the queue: {res[:3]} {res[-2:]}")
    finally:
        stop.set()
        th.join(30)
    check("mid" not in seen, "another client never saw the transaction's middle")
    check(all(v == ("llen", 0) for v in seen if isinstance(v, tuple)),
          f"nor its list: {sorted(v for v in seen if isinstance(v, tuple))[:5]}")
    check(int(r2.get("n")) == 20 * 300, "every INCR ran")
    # WATCH: another client's change aborts EXEC, of a string and of a list
    for key, change in (("w", lambda: r2.set("w", "other")),
                        ("wl", lambda: r2.rpush("wl", "other"))):
        with r1.pipeline(transaction=True) as p:
            p.watch(key)
            change()
            p.multi()
            p.set("done", key)
            try:
                p.execute()
                check(False, f"EXEC after a change of WATCHed {key} must abort")
            except redis.exceptions.WatchError:
                pass
        check(r1.get("done") is None, "the aborted transaction wrote nothing")
    with r1.pipeline(transaction=True) as p:
        p.watch("w")
        p.multi()
        p.set("done", "yes")
        check(p.execute() == [True], "EXEC without a change runs")
