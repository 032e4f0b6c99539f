# SPDX-License-Identifier: Apache-2.0
"""redis3 - the Redis front end's type rules over a list key: nothing a
command does to a list leaves its elements behind in the db's list table
(docs/redis.md "Storage"), checked through `girder table info redis.list`
after each case.

Tests (rows rd3_* in tests.py):
  rd3_list_overwrite  SET (plain, EX, XX, KEEPTTL, SETEX, PSETEX, MSET) over
                      a list replaces it and deletes its elements; SET NX,
                      SETNX and SET GET leave it whole (WRONGTYPE for GET);
                      every other type's command on a list answers
                      WRONGTYPE and changes nothing; DEL, UNLINK, EXPIRE in
                      the past, EXPIRE's expiry, RENAME onto a list (from a
                      string, a hash, a list) and GETDEL leave no element;
                      (also: HSET of 3, 16, 17 and 40 fields reads back)
  rd3_list_overwrite_cluster  a SET on node b over a list pushed on node a
                      deletes the elements on both nodes
"""

import sys

from harness import check, wait_until
from redis_tests import client, raises, redis_node

try:
    import redis  # python3-redis (Debian)
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import redis  # noqa: E402

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def _entries(node, table="redis.list"):
    r = node.cli("table", "info", table)
    return r.data.get("entries") if r.rc == 0 and isinstance(r.data, dict) else None


def _fresh(r, key, n=5):
    r.delete(key)
    r.rpush(key, *[f"e{i}" for i in range(n)])
    return [f"e{i}" for i in range(n)]


def test_list_overwrite(c):
    a, port = redis_node(c, "a")
    r = client(a, port)
    # a list that stays through every case: its 3 elements must remain
    r.rpush("keep", "k0", "k1", "k2")
    base = 3

    def elements(want, what):
        got = _entries(a)
        check(got == want, f"{what}: list table holds {got} entries, expected {want}")

    elements(base, "one list of 3")
    # ---- writes that replace a list: its elements go ----
    replacing = [
        ("SET", lambda: r.set("l", "v")),
        ("SET EX", lambda: r.set("l", "v", ex=100)),
        ("SET XX", lambda: r.set("l", "v", xx=True)),
        ("SET KEEPTTL", lambda: r.set("l", "v", keepttl=True)),
        ("SETEX", lambda: r.setex("l", 100, "v")),
        ("PSETEX", lambda: r.psetex("l", 100000, "v")),
        ("MSET", lambda: r.mset({"other": "x", "l": "v"})),
    ]
    for name, fn in replacing:
        _fresh(r, "l")
        elements(base + 5, f"before {name}")
        check(fn(), f"{name} over a list answers OK")
        check(r.type("l") == "string" and r.get("l") == "v", f"{name}: the key is the string")
        elements(base, f"{name} over a list")
    # SET KEEPTTL keeps the list's TTL (as Redis keeps the key's)
    _fresh(r, "l")
    r.expire("l", 100)
    check(r.set("l", "v", keepttl=True) and 0 < r.ttl("l") <= 100, "SET KEEPTTL keeps the TTL")
    elements(base, "SET KEEPTTL over a list with a TTL")
    # a bigger list: every element goes, not only the first ones
    r.delete("l")
    p = r.pipeline(transaction=False)
    for i in range(0, 3000, 100):
        p.lpush("l", *[str(j) for j in range(i, i + 100)])
    p.execute()
    elements(base + 3000, "a list of 3000")
    r.set("l", "v")
    elements(base, "SET over a list of 3000")
    # ---- writes that leave a list whole ----
    want = _fresh(r, "l")
    check(r.set("l", "v", nx=True) is None and r.setnx("l", "v") is False,
          "SET NX / SETNX on a list: not set")
    raises(lambda: r.set("l", "v", get=True), WRONGTYPE)
    raises(lambda: r.getset("l", "v"), WRONGTYPE)
    raises(lambda: r.getdel("l"), WRONGTYPE)
    wrong = [
        ("GET", lambda: r.get("l")),
        ("APPEND", lambda: r.append("l", "x")),
        ("STRLEN", lambda: r.strlen("l")),
        ("INCR", lambda: r.incr("l")),
        ("INCRBY", lambda: r.incrby("l", 5)),
        ("DECR", lambda: r.decr("l")),
        ("INCRBYFLOAT", lambda: r.incrbyfloat("l", 1.5)),
        ("HSET", lambda: r.hset("l", "f", "v")),
        ("HSETNX", lambda: r.hsetnx("l", "f", "v")),
        ("HINCRBY", lambda: r.hincrby("l", "f", 1)),
        ("HDEL", lambda: r.hdel("l", "f")),
        ("HGET", lambda: r.hget("l", "f")),
        ("HGETALL", lambda: r.hgetall("l")),
        ("SADD", lambda: r.sadd("l", "m")),
        ("SREM", lambda: r.srem("l", "m")),
        ("SPOP", lambda: r.spop("l")),
        ("SMEMBERS", lambda: r.smembers("l")),
        ("ZADD", lambda: r.zadd("l", {"m": 1})),
        ("ZINCRBY", lambda: r.zincrby("l", 1, "m")),
        ("ZREM", lambda: r.zrem("l", "m")),
        ("ZPOPMIN", lambda: r.zpopmin("l")),
        ("ZRANGE", lambda: r.zrange("l", 0, -1)),
    ]
    for name, fn in wrong:
        raises(fn, WRONGTYPE)
    check(r.type("l") == "list" and r.lrange("l", 0, -1) == want,
          "the list is whole after every refused command")
    elements(base + 5, "refused commands on a list")
    # and the other way: list commands on other types
    r.set("s", "x")
    r.hset("h", "f", "v")
    r.sadd("st", "m")
    r.zadd("z", {"m": 1})
    for k in ("s", "h", "st", "z"):
        raises(lambda: r.lpush(k, "x"), WRONGTYPE)
        raises(lambda: r.rpush(k, "x"), WRONGTYPE)
        raises(lambda: r.lrange(k, 0, -1), WRONGTYPE)
        raises(lambda: r.lpop(k), WRONGTYPE)
    check(r.get("s") == "x" and r.hgetall("h") == {"f": "v"} and r.smembers("st") == {"m"},
          "the other types are whole")
    elements(base + 5, "list commands on other types")
    # ---- deleting a list ----
    deleting = [
        ("DEL", lambda: r.delete("l") == 1),
        ("UNLINK", lambda: r.unlink("l") == 1),
        ("EXPIRE 0", lambda: r.expire("l", 0)),
        ("PEXPIRE -1", lambda: r.pexpire("l", -1)),
        ("EXPIREAT past", lambda: r.expireat("l", 1)),
    ]
    for name, fn in deleting:
        _fresh(r, "l")
        check(fn(), f"{name} of a list")
        check(r.exists("l") == 0, f"{name}: gone")
        elements(base, f"{name} of a list")
    # RENAME onto a list: from a string, a hash, a list
    for src, make in (("s2", lambda: r.set("s2", "str")),
                      ("h2", lambda: r.hset("h2", "f", "v")),
                      ("l2", lambda: r.rpush("l2", "x", "y"))):
        _fresh(r, "l")
        make()
        check(r.rename(src, "l"), f"RENAME {src} onto a list")
        extra = 2 if src == "l2" else 0
        elements(base + extra, f"RENAME {src} onto a list")
        r.delete("l")
        elements(base, f"DEL after RENAME {src}")
    # a list renamed away, then its old name SET: nothing of it left behind
    _fresh(r, "l")
    r.rename("l", "l3")
    r.set("l", "v")
    check(r.lrange("l3", 0, -1) == [f"e{i}" for i in range(5)], "the renamed list is whole")
    elements(base + 5, "RENAME then SET of the old name")
    r.delete("l3", "l")
    elements(base, "DEL of the renamed list")
    # TTL expiry: the elements expire with the record (the sweep removes them)
    _fresh(r, "l", 50)
    r.pexpire("l", 300)
    r.rpush("l", "late")  # a push after EXPIRE takes the list's expiry
    elements(base + 51, "a list with a TTL")
    wait_until("an expired list's elements leave the list table",
               lambda: r.exists("l") == 0 and _entries(a) == base, 20)
    # the list that was there all along is whole
    check(r.lrange("keep", 0, -1) == ["k0", "k1", "k2"], "the other list is whole")
    r.flushdb()
    elements(0, "FLUSHDB")
    # HSET encodes up to 16 fields on the stack, more on the heap: both
    for nf in (3, 16, 17, 40):
        fields = {f"f{i}": (str(i) if i % 2 else f"v{i}") for i in range(nf)}
        check(r.hset(f"h{nf}", mapping=fields) == nf and r.hgetall(f"h{nf}") == fields,
              f"HSET of {nf} fields")


def test_list_overwrite_cluster(c):
    a, pa = redis_node(c, "a")
    b, pb = redis_node(c, "b", seeds=[a])
    c.wait_mesh([a, b])
    ra, rb = client(a, pa), client(b, pb)
    ra.rpush("q", *[str(i) for i in range(200)])
    wait_until("b holds a's list", lambda: rb.llen("q") == 200 and _entries(b) == 200, 15)
    check(rb.set("q", "now a string"), "SET on b over a's list")
    check(_entries(b) == 0, f"b's list table after the SET: {_entries(b)}")
    wait_until("a sees the string and no element",
               lambda: ra.get("q") == "now a string" and _entries(a) == 0, 15)
