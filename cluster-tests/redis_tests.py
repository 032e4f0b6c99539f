# SPDX-License-Identifier: Apache-2.0
"""redis_tests - the Redis listener (docs/redis.md) driven by clients nobody
here wrote: Debian's python3-redis (redis-py), redis-cli and redis-benchmark,
plus raw sockets for what no client sends (garbage, RESP3 bytes, huge
headers). Not named redis.py: that would hide redis-py itself.

Tests (rows rd_* in tests.py):
  rd_commands   every supported command and its errors through redis-py
                (RESP2), transactions (MULTI/EXEC/DISCARD/WATCH), the RESP3
                forms over a raw socket (HELLO 3 map, null, map, set),
                redis-cli -3, pipelines of 100,000
  rd_auth       password file (refused when group-readable), protected mode,
                NOAUTH / WRONGPASS / AUTH / HELLO AUTH
  rd_cluster    3 nodes: a write on a read on b, TTL expiry seen on every
                node, INCR on two nodes at once sums on all three
  rd_abuse      garbage, a 512 MiB bulk header, a 1,000,000-argument header,
                a client that never reads, a reply above the output limit:
                each gets an error or a close while another client is served
                and the node's memory stays bounded
  rd_benchmark  redis-benchmark -q -n 2000 with its default test list
  rd_pubsub     SUBSCRIBE/PSUBSCRIBE on b get what a Redis client publishes
                on a and what `girder pub` publishes on c, in order (RESP2
                and RESP3 pushes), PUBSUB CHANNELS/NUMSUB/NUMPAT
  rd_lists      LPUSH RPUSH LPOP RPOP LLEN LRANGE LINDEX LREM, errors
  rd_zsets      ZADD (NX XX GT LT CH INCR) ZREM ZSCORE ZINCRBY ZCARD ZRANGE
                (BYSCORE REV LIMIT WITHSCORES) ZRANGEBYSCORE ZRANK ZPOPMIN
                ZPOPMAX, score formatting in RESP2 and RESP3, errors
  rd_scans      HSCAN SSCAN ZSCAN, SRANDMEMBER, SPOP at random
  rd_durable    db 0's tables on disk with fsync always: clients (plain and
                pipelined) SET, INCR, RPUSH, HSET while the node is killed
                with SIGKILL; after the restart every acknowledged write is
                there; the WAL batched records over several connections
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import cut
from harness import check, free_port, now, wait_until

try:
    import redis  # python3-redis (Debian)
except ImportError:  # a python3 that is not Debian's: use Debian's package
    sys.path.append("/usr/lib/python3/dist-packages")
    import redis  # noqa: E402


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def redis_node(c, short, seeds=(), extra=(), password_file=None):
    """A node with --redis on its own address; returns (node, redis port)."""
    addr = f"127.0.0.{c.next_host}"
    port = free_port(addr)
    ex = ["--redis", f"{addr}:{port}"] + list(extra)
    if password_file:
        ex += ["--redis-password-file", password_file]
    n = c.node(short, seeds=seeds, extra=ex)
    check(n.addr == addr, "address allocation changed")
    n.wait_log(r"listening for redis clients", 10)
    return n, port


def client(n, port, **kw):
    return redis.Redis(host=n.addr, port=port, socket_timeout=30, decode_responses=True, **kw)


def raises(fn, text):
    """fn() must raise a redis error reply whose message is exactly text
    (or starts with it when text ends with '*'). redis-py strips the code of
    some (NOAUTH, WRONGPASS) and raises them as AuthenticationError."""
    try:
        fn()
    except (redis.exceptions.ResponseError, redis.exceptions.AuthenticationError) as e:
        msg = str(e)
        ok = msg.startswith(text[:-1]) if text.endswith("*") else msg == text
        check(ok, f"error {msg!r}, expected {text!r}")
        return
    raise AssertionError(f"no error, expected {text!r}")


def raw(n, port, data, timeout=10):
    """Send data on a fresh socket, return (everything read until the node
    closed or `timeout`, closed_by_node)."""
    s = socket.create_connection((n.addr, port), timeout=timeout)
    s.sendall(data)
    out = b""
    closed = False
    end = now() + timeout
    while now() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        out += b
    s.close()
    return out, closed


def resp3_exchange(n, port, cmds):
    """Send cmds (byte strings, each a whole command) on one socket after
    HELLO 3, return the raw reply bytes after the HELLO reply."""
    s = socket.create_connection((n.addr, port), timeout=10)
    s.sendall(b"HELLO 3\r\n")
    buf = b""
    while b"modules" not in buf or not buf.endswith(b"*0\r\n"):
        buf += s.recv(65536)
    hello = buf
    s.sendall(b"".join(cmds))
    out = b""
    s.settimeout(1.0)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    return hello, out


def test_commands(c):
    """Every supported command through redis-py (RESP2) with its errors in
    Redis's words, RESP3 replies byte for byte over a raw socket, redis-cli,
    and pipelines of 100,000 commands."""
    a, port = redis_node(c, "a")
    r = client(a, port)
    check(r.ping() is True, "PING")
    check(r.echo("hi") == "hi", "ECHO")
    # strings
    check(r.set("s", "v") is True and r.get("s") == "v", "SET/GET")
    check(r.get("missing") is None, "GET missing")
    check(r.set("s", "w", nx=True) is None, "SET NX on an existing key")
    check(r.set("new", "1", xx=True) is None and r.get("new") is None, "SET XX on a missing key")
    check(r.set("s", "x", xx=True) is True and r.get("s") == "x", "SET XX")
    check(r.set("s", "y", get=True) == "x" and r.get("s") == "y", "SET GET")
    check(r.set("t", "1", ex=100) and 95 <= r.ttl("t") <= 100, "SET EX / TTL")
    check(r.set("t", "2", keepttl=True) and 95 <= r.ttl("t") <= 100, "SET KEEPTTL")
    check(r.set("t", "3") and r.ttl("t") == -1, "SET clears the TTL")
    check(r.set("p", "1", px=100000) and 95000 <= r.pttl("p") <= 100000, "SET PX / PTTL")
    check(r.ttl("missing") == -2 and r.pttl("missing") == -2, "TTL of a missing key")
    raises(lambda: r.set("s", "v", ex=0), "invalid expire time in 'set' command")
    raises(lambda: r.execute_command("SET", "s", "v", "NX", "XX"), "syntax error")
    check(r.setnx("nx", "a") is True and r.setnx("nx", "b") is False, "SETNX")
    check(r.setex("se", 50, "v") and 45 <= r.ttl("se") <= 50, "SETEX")
    check(r.getdel("se") == "v" and r.get("se") is None, "GETDEL")
    check(r.getdel("se") is None, "GETDEL of a missing key")
    check(r.mset({"m1": "a", "m2": "b"}) and r.mget("m1", "m2", "m3") == ["a", "b", None],
          "MSET/MGET")
    check(r.append("ap", "ab") == 2 and r.append("ap", "cd") == 4 and r.get("ap") == "abcd",
          "APPEND")
    check(r.strlen("ap") == 4 and r.strlen("missing") == 0, "STRLEN")
    check(r.incr("n") == 1 and r.incrby("n", 10) == 11 and r.decr("n") == 10 and
          r.decrby("n", 5) == 5 and r.get("n") == "5", "INCR family")
    r.set("n2", "41")
    check(r.incr("n2") == 42 and r.get("n2") == "42", "INCR of a SET integer")
    raises(lambda: r.incr("s"), "value is not an integer or out of range")
    raises(lambda: r.incrby("n", "x"), "value is not an integer or out of range")
    r.set("big", str(2**63 - 1))
    raises(lambda: r.incr("big"), "increment or decrement would overflow")
    check(r.incrbyfloat("f", 10.5) == 10.5 and r.incrbyfloat("f", 0.1) == 10.6, "INCRBYFLOAT")
    check(r.get("f") == "10.6", f"INCRBYFLOAT text {r.get('f')!r}")
    raises(lambda: r.incrbyfloat("s", 1), "value is not a valid float")
    # an absolute expiry far before the epoch deletes the key (v - now overflowed)
    r.set("q", "v")
    check(r.execute_command("EXPIREAT", "q", "-9223372036854775") == 1 and r.exists("q") == 0,
          "EXPIREAT far in the past")
    r.set("q", "v")
    check(r.execute_command("PEXPIREAT", "q", "-9223372036854775807") == 1 and
          r.exists("q") == 0 and r.ttl("q") == -2, "PEXPIREAT INT64_MIN + 1")
    # past 127 digits (a reply buffer once cut them), a leading tab, 1e308 + 1e308
    r.incrbyfloat("fb", "1e200")  # Redis 7.0.15 answers these 201 digits (long double)
    check(r.get("fb") == "100000000000000000002458586534161025661508068040050002887327500487325"
          "785432383926208372890736129198739813658147359652238566592960617854587787845326097835"
          "852628442219969983473365844529789269081145212928", f"INCRBYFLOAT 1e200 {r.get('fb')}")
    raises(lambda: r.execute_command("INCRBYFLOAT", "fb", "\t1"), "value is not a valid float")
    r.set("fg", "1e308")
    big = r.incrbyfloat("fg", "1e308")
    check(r.get("fg").startswith("199999999999999999993371759311691291321120199694831134415594")
          and len(r.get("fg")) == 309, f"INCRBYFLOAT 1e308 + 1e308 {big}")
    # keys
    check(r.exists("s", "s", "missing") == 2, "EXISTS counts repeats")
    check(r.delete("s", "missing") == 1 and r.unlink("m1", "m2") == 2, "DEL/UNLINK")
    r.set("e", "v")
    check(r.expire("e", 100) is True and 95 <= r.ttl("e") <= 100, "EXPIRE")
    check(r.pexpire("e", 50000) is True and 45000 <= r.pttl("e") <= 50000, "PEXPIRE")
    check(r.expireat("e", int(time.time()) + 200) and 190 <= r.ttl("e") <= 200, "EXPIREAT")
    check(r.persist("e") is True and r.ttl("e") == -1 and r.persist("e") is False, "PERSIST")
    check(r.expire("missing", 10) is False, "EXPIRE of a missing key")
    check(r.expire("e", -1) is True and r.exists("e") == 0, "EXPIRE in the past deletes")
    r.set("rn", "v", ex=100)
    check(r.rename("rn", "rn2") and r.get("rn2") == "v" and r.get("rn") is None and
          r.ttl("rn2") > 90, "RENAME keeps value and TTL")
    raises(lambda: r.rename("missing", "x"), "no such key")
    check(r.type("rn2") == "string" and r.type("missing") == "none", "TYPE")
    # hashes
    check(r.hset("h", mapping={"a": "1", "b": "2"}) == 2 and r.hset("h", "a", "3") == 0, "HSET")
    check(r.hget("h", "a") == "3" and r.hget("h", "z") is None, "HGET")
    check(r.hmget("h", "a", "z", "b") == ["3", None, "2"], "HMGET")
    check(r.hgetall("h") == {"a": "3", "b": "2"}, "HGETALL")
    check(r.hlen("h") == 2 and sorted(r.hkeys("h")) == ["a", "b"] and
          sorted(r.hvals("h")) == ["2", "3"], "HLEN/HKEYS/HVALS")
    check(r.hexists("h", "a") is True and r.hexists("h", "z") is False, "HEXISTS")
    check(r.hincrby("h", "a", 5) == 8 and r.hincrby("h", "new", -2) == -2, "HINCRBY")
    raises(lambda: r.hincrby("h", "x", "y"), "value is not an integer or out of range")
    check(r.hdel("h", "a", "z") == 1 and r.hlen("h") == 2, "HDEL")
    check(r.type("h") == "hash", "TYPE hash")
    r.hdel("h", "b", "new")
    check(r.exists("h") == 0, "an emptied hash is deleted")
    # sets
    check(r.sadd("st", "a", "b", "a") == 2 and r.sadd("st", "c") == 1, "SADD")
    check(r.smembers("st") == {"a", "b", "c"} and r.scard("st") == 3, "SMEMBERS/SCARD")
    check(r.sismember("st", "a") is True and r.sismember("st", "z") is False, "SISMEMBER")
    check(r.srem("st", "a", "z") == 1 and r.scard("st") == 2, "SREM")
    popped = r.spop("st")
    check(popped in ("b", "c") and r.scard("st") == 1, "SPOP")
    check(r.type("st") == "set", "TYPE set")
    # WRONGTYPE, exactly
    wt = "WRONGTYPE Operation against a key holding the wrong kind of value"
    for fn in (lambda: r.get("st"), lambda: r.hget("st", "a"), lambda: r.sadd("h2", "x") and
               r.hset("h2", "a", "b"), lambda: r.append("st", "x"), lambda: r.incr("st"),
               lambda: r.smembers("rn2")):
        raises(fn, wt)
    # errors of the protocol layer
    raises(lambda: r.execute_command("NOSUCH", "a", "b"),
           "unknown command 'NOSUCH', with args beginning with: 'a' 'b' ")
    raises(lambda: r.execute_command("GET"), "wrong number of arguments for 'get' command")
    # keyspace: KEYS, SCAN (each key exactly once), DBSIZE, SELECT, FLUSHDB
    r.flushdb()
    check(r.dbsize() == 0, "FLUSHDB empties the db")
    with r.pipeline(transaction=False) as p:
        for i in range(500):
            p.set(f"key:{i}", i)
        p.execute()
    check(sorted(r.keys("key:1?")) == [f"key:{i}" for i in range(10, 20)], "KEYS pattern")
    seen = list(r.scan_iter(match="key:*", count=37))
    check(len(seen) == 500 and set(seen) == {f"key:{i}" for i in range(500)},
          f"SCAN returned {len(seen)} keys, {len(set(seen))} distinct")
    check(r.dbsize() == 500, "DBSIZE")
    r1 = client(a, port, db=1)
    check(r1.get("key:1") is None and r1.set("key:1", "db1") and r.get("key:1") == "1",
          "SELECT: databases are separate")
    raises(lambda: r.execute_command("SELECT", "16"), "DB index is out of range")
    # server commands
    check(isinstance(r.client_id(), int), "CLIENT ID")
    check(r.client_setname("tester") and r.client_getname() == "tester", "CLIENT SETNAME")
    names = [cl["name"] for cl in r.client_list()]
    check("tester" in names, f"CLIENT LIST names {names}")
    info = r.info()
    for k in ("redis_version", "connected_clients", "used_memory", "total_commands_processed",
              "db0"):
        check(k in info, f"INFO lacks {k}")
    check(info["db0"]["keys"] == 500, f"INFO keyspace {info['db0']}")
    check(r.config_get("save") == {"save": ""} and r.config_get("appendonly") ==
          {"appendonly": "no"}, "CONFIG GET")
    check(r.command_count() > 50, "COMMAND COUNT")
    docs = r.execute_command("COMMAND DOCS", "get")
    check(docs and "get" in (docs if isinstance(docs, dict) else docs[0::2]), "COMMAND DOCS")
    # redis-cli, RESP2 and RESP3
    cli = ["redis-cli", "-h", a.addr, "-p", str(port)]
    out = subprocess.run(cli + ["-3", "hgetall", "nohash"], capture_output=True, text=True)
    check(out.returncode == 0, f"redis-cli -3: {out.stderr}")
    out = subprocess.run(cli + ["set", "cli", "ok"], capture_output=True, text=True).stdout
    check(out.strip() == "OK", f"redis-cli set: {out!r}")
    # RESP3 over a raw socket
    r.hset("h3", "f", "v")
    r.sadd("s3", "m")
    hello, out = resp3_exchange(a, port, [b"GET nothere\r\n", b"HGETALL h3\r\n",
                                          b"SMEMBERS s3\r\n", b"INCRBYFLOAT fl 1.5\r\n"])
    check(hello.startswith(b"%7\r\n") and b"$5\r\nproto\r\n:3\r\n" in hello,
          f"HELLO 3 map {hello[:80]!r}")
    check(out == b"_\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n~1\r\n$1\r\nm\r\n$3\r\n1.5\r\n",
          f"RESP3 replies {out!r}")
    bad, _ = raw(a, port, b"HELLO 4\r\nPING\r\n", timeout=1)
    check(bad == b"-NOPROTO unsupported protocol version\r\n+PONG\r\n", f"HELLO 4: {bad!r}")
    # transactions: MULTI/EXEC (redis-py's transaction pipeline), EXECABORT, WATCH
    with r.pipeline() as p:
        res = p.set("tx", "1").incr("tx").get("tx").execute()
    check(res == [True, 2, "2"], f"MULTI/EXEC {res}")
    out, _ = raw(a, port, b"MULTI\r\nNOPE\r\nSET x 1\r\nEXEC\r\nEXEC\r\nDISCARD\r\n",
                 timeout=1)
    check(out == b"+OK\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n"
          b"+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"
          b"-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n", f"EXECABORT {out!r}")
    check(r.get("x") is None, "an aborted transaction wrote nothing")
    def watched_change_aborts(keys, value, incr, what):
        """WATCH keys, change tx meanwhile, then MULTI INCR incr EXEC: must abort."""
        with r.pipeline() as p:
            p.watch(*keys)
            r.set("tx", value)
            p.multi()
            p.incr(incr)
            try:
                p.execute()
                check(False, f"EXEC after {what} must fail")
            except redis.exceptions.WatchError:
                pass

    watched_change_aborts(["tx"], "changed", "tx", "a WATCHed key changed")
    check(r.get("tx") == "changed", "the aborted transaction did not run")
    # a key WATCHed three times is kept once; a change still aborts
    with r.pipeline() as p:
        p.watch("tx", "tx", "tx")
        p.multi()
        p.incr("tx2")
        check(p.execute() == [1], "EXEC after WATCH of one key three times")
    watched_change_aborts(["tx", "tx"], "again", "tx2", "a key WATCHed twice changed")
    # pipelines of 100,000: replies in order
    t0 = now()
    with r.pipeline(transaction=False) as p:
        for i in range(100000):
            p.incr("pipe")
        res = p.execute()
    check(res == list(range(1, 100001)), "100,000 pipelined INCRs answered in order")
    with r.pipeline(transaction=False) as p:
        for i in range(100000):
            p.set(f"p{i % 1000}", i)
            p.get(f"p{i % 1000}")
        res = p.execute()
    check(all(res[2 * i] is True and res[2 * i + 1] == str(i) for i in range(100000)),
          "100,000 pipelined SET+GET pairs in order")
    print(f"    pipelines: 300,000 commands in {now() - t0:.1f} s")


def test_auth(c):
    """The password file: refused when group-readable (exit 2), protected
    mode refuses a non-loopback address without a password (exit 2); NOAUTH
    before AUTH, WRONGPASS, AUTH and HELLO 3 AUTH default PASS work."""
    bad = c.make_cookie("pw-open", "s3cret", mode=0o640)
    addr = f"127.0.0.{c.next_host}"
    n = c.node("x", extra=["--redis", f"{addr}:{free_port(addr)}", "--redis-password-file",
                           bad], wait=False)
    check(n.wait_exit(15) == 2, "a group-readable password file must stop the start (exit 2)")
    check("readable by group or others" in n.log_text(), "the log names the unsafe file")
    n.expected_exit = 2
    addr = f"127.0.0.{c.next_host}"
    n = c.node("y", extra=["--redis", f"0.0.0.0:{free_port(addr)}"], wait=False)
    check(n.wait_exit(15) == 2, "protected mode: 0.0.0.0 without a password must exit 2")
    check("protected mode" in n.log_text(), "the log says protected mode")
    n.expected_exit = 2

    pw = c.make_cookie("pw", "s3cret")
    a, port = redis_node(c, "a", password_file=pw)
    r = client(a, port)
    raises(lambda: r.get("k"), "Authentication required.")
    raises(lambda: r.execute_command("AUTH", "nope"),
           "WRONGPASS invalid username-password pair or user is disabled.")
    check(r.execute_command("AUTH", "s3cret") in ("OK", True) and r.set("k", "v"), "AUTH")
    r2 = client(a, port, password="s3cret")
    check(r2.get("k") == "v", "redis-py with password=")
    out, _ = raw(a, port, b"HELLO 3 AUTH default s3cret\r\nGET k\r\n", timeout=1)
    check(out.startswith(b"%7\r\n") and out.endswith(b"$1\r\nv\r\n"), f"HELLO AUTH {out!r}")
    out, closed = raw(a, port, b"*20\r\n", timeout=2)
    check(out == b"-ERR Protocol error: unauthenticated multibulk length\r\n" and closed,
          f"an unauthenticated 20-argument header: {out!r}")


def test_cluster(c):
    """Three nodes with --redis: a write on a is read on b and c, a TTL
    expires on every node, INCRs on a and b at once all count everywhere."""
    a, pa = redis_node(c, "a")
    b, pb = redis_node(c, "b", seeds=[a])
    d, pd = redis_node(c, "c", seeds=[a])
    c.wait_mesh([a, b, d])
    ra, rb, rd = client(a, pa), client(b, pb), client(d, pd)
    ra.set("k", "from-a")
    t0 = now()
    wait_until("b and c read a's write", lambda: rb.get("k") == "from-a" and
               rd.get("k") == "from-a", 15)
    print(f"    a write on a read on b and c after {(now() - t0) * 1000:.0f} ms")
    rb.hset("hb", "f", "v")
    wait_until("a reads b's hash", lambda: ra.hgetall("hb") == {"f": "v"}, 15)

    ra.set("ttl", "v", px=3000)
    wait_until("every node holds the TTL key",
               lambda: all(x.get("ttl") == "v" for x in (ra, rb, rd)), 10)
    check(all(0 < x.pttl("ttl") <= 3000 for x in (ra, rb, rd)), "every node has the TTL")
    wait_until("the key expired on every node",
               lambda: all(x.get("ttl") is None for x in (ra, rb, rd)), 15)
    check(now() - t0 >= 2.5, "expired no earlier than its TTL")

    n_each = 5000

    def incrs(rc):
        for _ in range(n_each // 500):
            with rc.pipeline(transaction=False) as p:
                for _ in range(500):
                    p.incr("counter")
                p.execute()

    ths = [threading.Thread(target=incrs, args=(x,)) for x in (client(a, pa), client(b, pb))]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    want = str(2 * n_each)
    wait_until(f"counter = {want} on every node",
               lambda: all(x.get("counter") == want for x in (ra, rb, rd)), 20)


def test_abuse(c):
    """Garbage, a 512 MiB bulk header, a 1,000,000-argument header: an error
    in Redis's words and a closed connection; a client that never reads its
    replies holds bounded memory; a reply above the output limit closes its
    client (counted in INFO); another client is served throughout."""
    a, port = redis_node(c, "a")
    r = client(a, port)
    for data, want in (
        (b"*1\r\n$536870912\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*2\r\n$3\r\nGET\r\n:12\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"SET k \"unbalanced\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"*1\r\n" + os.urandom(70000).replace(b"\r", b"x"),
         b"-ERR Protocol error: too big bulk count string\r\n"),
    ):
        out, closed = raw(a, port, data)
        check(out == want and closed, f"{data[:30]!r}: got {out[:100]!r}, closed {closed}")
        check(r.ping(), "another client is served")
    # random garbage: an error or a close, never a hang or a crash
    for seed in range(20):
        rnd = os.urandom(4096)
        out, closed = raw(a, port, rnd, timeout=3)
        check(closed or out.startswith(b"-ERR") or out == b"", f"garbage {seed}: {out[:80]!r}")
    check(r.ping(), "served after the garbage")

    # a client that never reads: up to 2,000,000 GETs of a 10 KB value (20 GB of
    # replies; 68 MB of requests, above what the kernel buffers on loopback:
    # tcp_rmem's 32 MiB + tcp_wmem's 4 MiB here, so the sender must block)
    r.set("v10k", "x" * 10000)
    base = _rss_kb(a.pid)
    s = socket.create_connection((a.addr, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.setblocking(False)
    cmd = b"*2\r\n$3\r\nGET\r\n$4\r\nv10k\r\n" * 1000  # 22 KB of commands
    sent = 0
    t0 = now()
    # 2,000 batches are 44 MB of commands: more than the kernel's buffers can
    # hold on both ends (net.ipv4.tcp_rmem's max is 32 MiB here), so the send
    # stops short only if the node stopped reading
    while now() - t0 < 10 and sent < 2000:
        try:
            s.send(cmd)
            sent += 1
        except BlockingIOError:
            time.sleep(0.05)
    peak = _rss_kb(a.pid) - base
    lat = now()
    check(r.ping(), "PING while a client does not read")
    lat = now() - lat
    print(f"    a client that never reads: {sent * 1000} GETs sent before its socket filled, "
          f"node RSS +{peak} KiB, another client's PING {lat * 1000:.1f} ms")
    check(sent < 2000, "the node stopped reading the client that never reads")
    check(peak < 48 * 1024, f"node grew by {peak} KiB")
    s.close()

    def read_to_close(cmd):
        """Bytes read on a new connection that sends cmd, until the node closes it."""
        s = socket.create_connection((a.addr, port), timeout=20)
        s.sendall(cmd)
        got = 0
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
        s.close()
        return got

    # one reply above the 32 MiB output limit: the client is closed, counted
    r.set("big", "y" * (16 * 1024 * 1024 - 64))
    before = r.info("stats")["client_output_buffer_limit_disconnections"]
    got = read_to_close(b"MGET big big big big big\r\n")
    after = r.info("stats")["client_output_buffer_limit_disconnections"]
    check(got == 0 and after == before + 1, f"an 80 MiB reply: {got} bytes read, counter "
          f"{before} -> {after}")
    check(r.ping(), "served after the output limit")
    # one reply that would be 280 MB (SRANDMEMBER of 40,000,000 with repeats):
    # it stops at the limit instead of being built whole, and the client is closed
    r.sadd("rs", "a")
    base = _rss_kb(a.pid)
    got = read_to_close(b"SRANDMEMBER rs -40000000\r\n")
    grew = _rss_kb(a.pid) - base
    check(got == 0 and grew < 96 * 1024, f"SRANDMEMBER -40000000: {got} bytes read, "
          f"node RSS +{grew} KiB")
    check(r.ping(), "served after the huge SRANDMEMBER")

def test_pipe_memory(c):
    """200,000 SETs of 16-byte keys with 10-byte values pipelined through
    `redis-cli --pipe` (10 MB of commands) into a fresh node: every key is
    there, and the node's RSS grew by what the keys take (about 87 bytes
    each, docs/tables.md "Limits and memory"), not by a copy of the input:
    the connection's input buffer stays one read (docs/redis.md
    "Pipelining"; it used to grow by doubling to 16 MiB here)."""
    a, port = redis_node(c, "a")
    r = client(a, port)
    cli = shutil.which("redis-cli")
    check(cli is not None, "redis-cli missing (scripts/setup-deps)")
    n = 200000
    proto = b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$10\r\nvvvvvvvvvv\r\n" % i
                     for i in range(n))
    r.set("warm", "x")
    base, um0 = _rss_kb(a.pid), r.info("memory")["used_memory"]
    out = subprocess.run([cli, "-h", a.addr, "-p", str(port), "--pipe"], input=proto,
                         capture_output=True, timeout=300)
    check(out.returncode == 0, f"redis-cli --pipe: {out.stdout[-200:]!r} {out.stderr[-200:]!r}")
    check(r.dbsize() == n + 1, f"dbsize {r.dbsize()}, want {n + 1}")
    grew, um = _rss_kb(a.pid) - base, r.info("memory")["used_memory"] - um0
    print(f"    {n} pipelined SETs: node RSS +{grew} KiB ({grew * 1024 / n:.0f} B/key), "
          f"used_memory +{um // 1024} KiB ({um / n:.0f} B/key)")
    check(grew < 24 * 1024, f"node RSS grew by {grew} KiB for {n} keys (about 17 MiB expected)")


def test_benchmark(c):
    """redis-benchmark -q -n 2000 with its default test list (PING, SET,
    GET, INCR, the list commands, SADD, HSET, SPOP, ZADD, ZPOPMIN, LRANGE_100
    to _600, MSET) exits 0 with no error reply (it stops at the first one)."""
    a, port = redis_node(c, "a")
    bench = shutil.which("redis-benchmark")
    check(bench is not None, "redis-benchmark missing (scripts/setup-deps)")
    out = subprocess.run([bench, "-h", a.addr, "-p", str(port), "-q", "-n", "2000"],
                         capture_output=True, text=True, timeout=600)
    lines = [ln.split("\r")[-1].strip() for ln in out.stdout.splitlines() if ln.strip()]
    for ln in lines:
        print(f"    {ln}")
    check(out.returncode == 0, f"redis-benchmark exit {out.returncode}: {out.stderr[-500:]}")
    check("rror" not in out.stdout + out.stderr, "redis-benchmark saw an error reply")
    names = [ln.split(":")[0] for ln in lines]
    for want in ("PING_INLINE", "LPUSH", "RPOP", "ZADD", "ZPOPMIN", "LRANGE_600 (first 600 "
                 "elements)", "MSET (10 keys)"):
        check(want in names, f"{want} missing from {names}")


def test_pubsub(c):
    """Redis subscribers on b (redis-py, RESP2; a raw RESP3 socket) receive
    what a Redis client publishes on a and what `girder pub` publishes on c,
    in publish order; glob patterns; PUBSUB on b; the subscribed-state
    restriction of RESP2."""
    a, pa = redis_node(c, "a")
    b, pb = redis_node(c, "b", seeds=[a])
    d, pd = redis_node(c, "c", seeds=[a])
    c.wait_mesh([a, b, d])
    ra, rb = client(a, pa), client(b, pb)
    sub = rb.pubsub()
    sub.subscribe("news.eu")
    sub.psubscribe("news.*")
    got = []
    for _ in range(2):
        m = sub.get_message(timeout=5)
        check(m and m["type"] in ("subscribe", "psubscribe"), f"confirmation {m}")
    # a RESP3 subscriber on b too: pushes
    s3 = socket.create_connection((b.addr, pb), timeout=10)
    s3.sendall(b"HELLO 3\r\nSUBSCRIBE news.eu\r\n")
    buf = b""
    while b">3\r\n$9\r\nsubscribe\r\n$7\r\nnews.eu\r\n:1\r\n" not in buf:
        buf += s3.recv(65536)
    buf = b""
    # wait until a knows b's interest (a publish before that reaches nobody)
    wait_until("a's publishes reach b", lambda: ra.publish("news.warmup", "w") >= 0 and
               _drain_until(sub, "news.warmup"), 15)
    for i in range(20):
        ra.publish("news.eu", f"m{i}")
    c.expect(d.cli("pub", "news.eu", '"from-girder"'), 0)
    end = now() + 10
    while now() < end and len(got) < 42:
        m = sub.get_message(timeout=1)
        if m and m["type"] in ("message", "pmessage"):
            got.append(m)
    msgs = [x["data"] for x in got if x["type"] == "message"]
    pmsgs = [x["data"] for x in got if x["type"] == "pmessage"]
    want = [f"m{i}" for i in range(20)] + ["from-girder"]
    check(msgs == want, f"messages on b: {msgs}")
    check(pmsgs == want, f"pattern messages on b: {pmsgs}")
    end = now() + 10
    while now() < end and buf.count(b">3\r\n$7\r\nmessage\r\n") < 21:
        buf += s3.recv(65536)
    check(buf.startswith(b">3\r\n$7\r\nmessage\r\n$7\r\nnews.eu\r\n$2\r\nm0\r\n") and
          buf.count(b">3\r\n$7\r\nmessage\r\n") == 21, f"RESP3 pushes {buf[:120]!r}")
    s3.close()
    check(rb.pubsub_channels() == ["news.eu"], f"PUBSUB CHANNELS {rb.pubsub_channels()}")
    sub2 = rb.pubsub()  # a second client: its news.eu is listed once
    sub2.subscribe("z.y", "news.eu", "a.b")
    for _ in range(3):
        check(sub2.get_message(timeout=5), "sub2 confirmation")
    chans = rb.pubsub_channels()
    check(sorted(chans) == ["a.b", "news.eu", "z.y"] and len(chans) == 3,
          f"PUBSUB CHANNELS of two clients {chans}")
    check(rb.pubsub_channels("news.*") == ["news.eu"], "PUBSUB CHANNELS pattern")
    sub2.close()
    check(rb.pubsub_numsub("news.eu") == [("news.eu", 1)], "PUBSUB NUMSUB")
    check(rb.pubsub_numpat() == 1, "PUBSUB NUMPAT")
    # one connection with 20,000 channels and a pattern (its index: every
    # add, remove and delivery finds a channel by hash), half of them removed
    many = socket.create_connection((b.addr, pb), timeout=20)

    def mbulk(*args):
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in args)

    def read_until(tail):
        buf = b""
        while not buf.endswith(tail):
            buf += many.recv(1 << 20)
        return buf

    chans = [b"c.%d" % i for i in range(20000)]
    many.sendall(mbulk(b"SUBSCRIBE", *chans))
    read_until(b"$7\r\nc.19999\r\n:20000\r\n")
    many.sendall(mbulk(b"UNSUBSCRIBE", *chans[0::2]))
    read_until(b"$7\r\nc.19998\r\n:10000\r\n")
    many.sendall(mbulk(b"PSUBSCRIBE", b"c.1999?"))
    read_until(b"$7\r\nc.1999?\r\n:10001\r\n")
    check(rb.pubsub_numsub("c.1", "c.2", "c.19999") == [("c.1", 1), ("c.2", 0), ("c.19999", 1)],
          "NUMSUB after removing half")
    for ch in (b"c.2", b"c.1", b"c.19998", b"c.19999"):
        rb.publish(ch.decode(), "x")
    got = read_until(b"$7\r\nc.19999\r\n$1\r\nx\r\n")
    want = (b"*3\r\n$7\r\nmessage\r\n$3\r\nc.1\r\n$1\r\nx\r\n"
            b"*4\r\n$8\r\npmessage\r\n$7\r\nc.1999?\r\n$7\r\nc.19998\r\n$1\r\nx\r\n"
            b"*3\r\n$7\r\nmessage\r\n$7\r\nc.19999\r\n$1\r\nx\r\n"
            b"*4\r\n$8\r\npmessage\r\n$7\r\nc.1999?\r\n$7\r\nc.19999\r\n$1\r\nx\r\n")
    check(got == want, f"deliveries to the connection of 10,000 channels: {got[:300]!r}")
    many.close()
    out, _ = raw(b, pb, b"SUBSCRIBE x\r\nGET k\r\nPING\r\n", timeout=1)
    check(b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
          b"RESET are allowed in this context\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n" in out,
          f"RESP2 subscribed state {out!r}")
    raises(lambda: ra.publish("bad topic", "x"), "'bad topic' is not a Girder topic*")
    sub.close()


def _drain_until(sub, channel):
    """Read sub's messages for up to 0.5 s; True once one on channel came."""
    end = now() + 0.5
    while now() < end:
        m = sub.get_message(timeout=0.1)
        if m and m.get("channel") == channel and m["type"] == "pmessage":
            return True
    return False


def test_partition(c):
    """A real partition (the daemons in two cgroup v2 groups, nftables
    dropping what one side sends to the other side's cluster ports, as
    t3_crdt does; the Redis clients stay connected to both sides): INCRBY,
    SADD / SREM and HSET of different fields on both sides of the cut, then
    the rules go and every node answers the sum, the union (a member re-added
    on one side survives its removal on the other) and both fields. Needs
    root, nft and a cgroup2 mount; otherwise it says it skipped."""
    if cut.available():
        print(f"    SKIPPED: needs {cut.NEEDS}")
        return
    part = cut.Partition("grrdp", ("a", "bc"))

    def rnode(short, side, seeds=()):
        addr = f"127.0.0.{c.next_host}"
        port = free_port(addr)
        n = part.node(c, short, side, seeds=list(seeds), detection_ms=1500,
                   extra=["--redis", f"{addr}:{port}"])
        check(n.addr == addr, "address allocation changed")
        n.wait_log(r"listening for redis clients", 10)
        return n, port

    try:
        a, pa = rnode("a", "a")
        b, pb = rnode("b", "bc", seeds=[a])
        d, pd = rnode("c", "bc", seeds=[a])
        nodes = [a, b, d]
        c.wait_mesh(nodes)
        ra, rb, rd = client(a, pa), client(b, pb), client(d, pd)
        ra.sadd("s", "x", "y")
        ra.incrby("cnt", 10)
        ra.hset("h", "base", "0")
        wait_until("the start state on every node",
                   lambda: all(r.smembers("s") == {"x", "y"} and r.get("cnt") == "10" and
                               r.hgetall("h") == {"base": "0"} for r in (ra, rb, rd)), 15)

        part.cut()
        wait_until("a cut off from b and c",
                   lambda: cut.down(a, b) and cut.down(a, d) and cut.down(b, a)
                   and cut.down(d, a), 20, interval=0.2)
        ra.incrby("cnt", 3)
        rb.incrby("cnt", 4)
        rd.incrby("cnt", 5)
        ra.sadd("s", "x", "only-a")  # a re-adds x ...
        check(rb.srem("s", "x") == 1, "b removes the x it saw")  # ... b removes it
        rd.sadd("s", "only-c")
        ra.hset("h", "fa", "A")
        rb.hset("h", "fb", "B")
        ra.hincrby("h", "n", 2)
        rb.hincrby("h", "n", 7)
        check(ra.get("cnt") == "13" and rb.smembers("s") == {"y", "only-c"},
              "each side sees only its own writes during the cut")

        part.heal()
        t_heal = now()
        c.wait_mesh(nodes, timeout=30)
        want_h = {"base": "0", "fa": "A", "fb": "B", "n": "9"}
        wait_until("sum, union and fields on every node after the heal",
                   lambda: all(r.get("cnt") == "22" and
                               r.smembers("s") == {"x", "y", "only-a", "only-c"} and
                               r.hgetall("h") == want_h for r in (ra, rb, rd)), 30)
        print(f"    converged {now() - t_heal:.2f} s after the rules went: INCRBY summed, "
              f"x re-added on a survived b's SREM, both HSET fields and HINCRBYs kept")
    finally:
        part.close()


WT = "WRONGTYPE Operation against a key holding the wrong kind of value"


def test_lists(c):
    """Lists through redis-py: LPUSH RPUSH LPOP RPOP (with count) LLEN
    LRANGE LINDEX LREM, their errors in Redis's words, WRONGTYPE both ways,
    and the RESP3 null of a missing key."""
    a, port = redis_node(c, "a")
    r = client(a, port)
    check(r.rpush("l", "a", "b", "c") == 3, "RPUSH")
    check(r.lpush("l", "x", "y") == 5, "LPUSH")
    check(r.lrange("l", 0, -1) == ["y", "x", "a", "b", "c"], f"LRANGE {r.lrange('l', 0, -1)}")
    check(r.lrange("l", -2, 100) == ["b", "c"] and r.lrange("l", 3, 1) == [] and
          r.lrange("l", 9, 10) == [], "LRANGE bounds")
    check(r.type("l") == "list" and r.llen("l") == 5 and r.llen("nol") == 0, "TYPE LLEN")
    check(r.lindex("l", 0) == "y" and r.lindex("l", -1) == "c" and r.lindex("l", 5) is None,
          "LINDEX")
    check(r.lpop("l") == "y" and r.rpop("l") == "c", "LPOP RPOP")
    check(r.lpop("l", 2) == ["x", "a"] and r.lrange("l", 0, -1) == ["b"], "LPOP count")
    check(r.rpop("l", 5) == ["b"] and r.exists("l") == 0, "RPOP count empties the key")
    check(r.lpop("l") is None and r.lpop("l", 2) is None and r.rpop("l") is None,
          "pop of a missing list")
    r.rpush("l", "a")
    check(r.lpop("l", 0) == [] and r.llen("l") == 1, "LPOP 0 of a list: []")
    r.delete("l")
    r.rpush("r", "a", "b", "a", "c", "a", "b")
    check(r.lrem("r", 1, "a") == 1 and r.lrange("r", 0, -1) == ["b", "a", "c", "a", "b"],
          "LREM 1")
    check(r.lrem("r", -1, "b") == 1 and r.lrange("r", 0, -1) == ["b", "a", "c", "a"],
          "LREM -1 from the tail")
    check(r.lrem("r", 0, "a") == 2 and r.lrange("r", 0, -1) == ["b", "c"], "LREM 0: all")
    check(r.lrem("r", 0, "zz") == 0 and r.lrem("none", 0, "a") == 0, "LREM nothing")
    # a long key: the element keys ([Key, Seq]) pass the 120-byte inline buffer
    lk = "k" * 300
    check(r.rpush(lk, "a", "b") == 2 and r.lpush(lk, "z") == 3, "push to a 300-byte key")
    check(r.lrange(lk, 0, -1) == ["z", "a", "b"] and r.lpop(lk) == "z", "a 300-byte key's list")
    r.delete(lk)
    # TTL survives a push
    r.rpush("t", "1")
    r.expire("t", 100)
    r.rpush("t", "2")
    check(90 < r.ttl("t") <= 100, "a push keeps the TTL")
    # errors
    r.set("s", "v")
    r.sadd("set", "m")
    for fn in (lambda: r.lpush("s", "x"), lambda: r.rpush("set", "x"), lambda: r.lpop("s"),
               lambda: r.rpop("s", 2), lambda: r.llen("s"), lambda: r.lrange("s", 0, 1),
               lambda: r.lindex("s", 0), lambda: r.lrem("s", 0, "x"), lambda: r.get("r"),
               lambda: r.sadd("r", "x"), lambda: r.hget("r", "f")):
        raises(fn, WT)
    raises(lambda: r.execute_command("LPUSH", "l"),
           "wrong number of arguments for 'lpush' command")
    raises(lambda: r.execute_command("LPOP", "r", "1", "2"),
           "wrong number of arguments for 'lpop' command")
    raises(lambda: r.execute_command("LRANGE", "r", "0"),
           "wrong number of arguments for 'lrange' command")
    raises(lambda: r.lpop("r", -1), "value is out of range, must be positive")
    raises(lambda: r.execute_command("RPOP", "r", "x"), "value is out of range, must be positive")
    raises(lambda: r.execute_command("LRANGE", "r", "a", "1"),
           "value is not an integer or out of range")
    raises(lambda: r.execute_command("LINDEX", "r", "1.5"),
           "value is not an integer or out of range")
    raises(lambda: r.execute_command("LREM", "r", "x", "a"),
           "value is not an integer or out of range")
    check(r.scan(0, _type="list", count=1000)[1] != [], "SCAN TYPE list")
    _, out = resp3_exchange(a, port, [b"LPOP nol\r\n", b"LPOP nol 3\r\n", b"LRANGE r 0 -1\r\n"])
    check(out == b"_\r\n_\r\n*2\r\n$1\r\nb\r\n$1\r\nc\r\n", f"RESP3 {out!r}")


def test_zsets(c):
    """Sorted sets through redis-py: ZADD and its flags, ZREM ZSCORE ZINCRBY
    ZCARD ZRANGE (BYSCORE REV LIMIT WITHSCORES) ZRANGEBYSCORE ZRANK
    ZPOPMIN ZPOPMAX, scores formatted as Redis 7.2 (RESP2 strings, RESP3
    doubles), errors in Redis's words."""
    a, port = redis_node(c, "a")
    r = client(a, port)
    check(r.zadd("z", {"a": 1, "b": 2.5, "c": 0.1}) == 3, "ZADD")
    check(r.zadd("z", {"a": 1, "d": -1}) == 1, "ZADD counts new members only")
    check(r.type("z") == "zset" and r.zcard("z") == 4 and r.zcard("noz") == 0, "TYPE ZCARD")
    check(r.zrange("z", 0, -1) == ["d", "c", "a", "b"], f"ZRANGE {r.zrange('z', 0, -1)}")
    check(r.zrange("z", 0, -1, withscores=True) ==
          [("d", -1.0), ("c", 0.1), ("a", 1.0), ("b", 2.5)], "WITHSCORES")
    raw_scores = r.execute_command("ZRANGE", "z", "0", "-1", "WITHSCORES")
    check(raw_scores == ["d", "-1", "c", "0.1", "a", "1", "b", "2.5"], f"scores {raw_scores}")
    check(r.zrange("z", 0, 1, desc=True) == ["b", "a"], "ZRANGE REV")
    check(r.zrange("z", "(0.1", "+inf", byscore=True) == ["a", "b"], "BYSCORE exclusive")
    check(r.zrange("z", "+inf", "-inf", byscore=True, desc=True, offset=1, num=2) == ["a", "c"],
          "BYSCORE REV LIMIT")
    check(r.zrangebyscore("z", 0, 1) == ["c", "a"] and
          r.zrangebyscore("z", "-inf", "inf", start=1, num=1, withscores=True) ==
          [("c", 0.1)], "ZRANGEBYSCORE")
    check(r.zrevrangebyscore("z", 2, 0) == ["a", "c"], "ZREVRANGEBYSCORE")
    check(r.zrevrange("z", 0, 0) == ["b"], "ZREVRANGE")
    check(r.zscore("z", "b") == 2.5 and r.zscore("z", "zz") is None, "ZSCORE")
    out, _ = raw(a, port, b"ZSCORE z c\r\nZSCORE z b\r\n", timeout=1)
    check(out == b"$3\r\n0.1\r\n$3\r\n2.5\r\n", f"ZSCORE text {out!r}")
    check(r.zrank("z", "d") == 0 and r.zrank("z", "b") == 3 and r.zrank("z", "q") is None and
          r.zrevrank("z", "b") == 0, "ZRANK ZREVRANK")
    out, _ = raw(a, port, b"ZRANK z a WITHSCORE\r\nZRANK z q WITHSCORE\r\n", timeout=1)
    check(out == b"*2\r\n:2\r\n$1\r\n1\r\n*-1\r\n", f"ZRANK WITHSCORE {out!r}")
    check(r.zincrby("z", 2, "a") == 3.0 and r.zrange("z", -1, -1) == ["a"], "ZINCRBY reorders")
    check(r.zincrby("z", 1.5, "new") == 1.5, "ZINCRBY adds")
    # flags
    check(r.zadd("z", {"a": 10, "x": 1}, nx=True) == 1 and r.zscore("z", "a") == 3, "NX")
    check(r.zadd("z", {"a": 10, "y": 1}, xx=True) == 0 and r.zscore("z", "a") == 10 and
          r.zscore("z", "y") is None, "XX")
    check(r.zadd("z", {"a": 5, "b": 7}, ch=True, gt=True) == 1 and r.zscore("z", "a") == 10 and
          r.zscore("z", "b") == 7, "GT CH")
    check(r.zadd("z", {"a": 5}, lt=True, ch=True) == 1 and r.zscore("z", "a") == 5, "LT CH")
    check(r.zadd("z", {"a": 1}, incr=True) == 6.0, "INCR")
    check(r.zadd("z", {"a": 1}, incr=True, nx=True) is None, "INCR NX on an existing member")
    check(r.zadd("z", {"inf": "+inf", "minf": "-inf"}) == 2 and
          r.zscore("z", "minf") == float("-inf") and
          raw(a, port, b"ZSCORE z minf\r\n", timeout=1)[0] == b"$4\r\n-inf\r\n" and
          r.zrange("z", 0, 0) == ["minf"] and r.zrange("z", -1, -1) == ["inf"], "infinities")
    check(r.zrem("z", "inf", "minf", "nope") == 2, "ZREM")
    # pops
    r.delete("p")
    r.zadd("p", {"a": 1, "b": 2, "c": 3, "d": 4})
    check(r.zpopmin("p") == [("a", 1.0)] and r.zpopmax("p") == [("d", 4.0)], "ZPOPMIN ZPOPMAX")
    check(r.zpopmin("p", 5) == [("b", 2.0), ("c", 3.0)] and r.exists("p") == 0,
          "ZPOPMIN count empties the key")
    check(r.zpopmin("p") == [] and r.zpopmax("p", 3) == [], "pop of a missing zset")
    # errors
    r.set("s", "v")
    for fn in (lambda: r.zadd("s", {"a": 1}), lambda: r.zscore("s", "a"),
               lambda: r.zrange("s", 0, 1), lambda: r.zcard("s"), lambda: r.zpopmin("s"),
               lambda: r.zrem("s", "a"), lambda: r.zrank("s", "a"), lambda: r.lpush("z", "x"),
               lambda: r.smembers("z"), lambda: r.get("z")):
        raises(fn, WT)
    raises(lambda: r.execute_command("ZADD", "z", "1"),
           "wrong number of arguments for 'zadd' command")
    raises(lambda: r.execute_command("ZADD", "z", "NX", "1"), "syntax error")
    raises(lambda: r.execute_command("ZADD", "z", "1", "a", "2"), "syntax error")
    raises(lambda: r.execute_command("ZADD", "z", "x", "a"), "value is not a valid float")
    raises(lambda: r.execute_command("ZADD", "z", "nan", "a"), "value is not a valid float")
    raises(lambda: r.execute_command("ZADD", "z", "NX", "XX", "1", "a"),
           "XX and NX options at the same time are not compatible")
    raises(lambda: r.execute_command("ZADD", "z", "GT", "LT", "1", "a"),
           "GT, LT, and/or NX options at the same time are not compatible")
    raises(lambda: r.execute_command("ZADD", "z", "INCR", "1", "a", "2", "b"),
           "INCR option supports a single increment-element pair")
    r.zadd("zi", {"i": "inf"})
    raises(lambda: r.zincrby("zi", "-inf", "i"), "resulting score is not a number (NaN)")
    raises(lambda: r.zincrby("z", "x", "a"), "value is not a valid float")
    raises(lambda: r.execute_command("ZRANGE", "z", "a", "1"),
           "value is not an integer or out of range")
    raises(lambda: r.execute_command("ZRANGE", "z", "0", "1", "LIMIT", "0", "1"),
           "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
    raises(lambda: r.execute_command("ZRANGEBYSCORE", "z", "x", "1"),
           "min or max is not a float")
    raises(lambda: r.execute_command("ZRANGE", "z", "0", "1", "BOGUS"), "syntax error")
    raises(lambda: r.execute_command("ZPOPMIN", "z", "-1"),
           "value is out of range, must be positive")
    raises(lambda: r.execute_command("ZCARD"), "wrong number of arguments for 'zcard' command")
    # RESP3: doubles, pairs
    r.delete("q")
    r.zadd("q", {"a": 1.5, "b": 2})
    _, out = resp3_exchange(a, port, [b"ZSCORE q a\r\n", b"ZRANGE q 0 -1 WITHSCORES\r\n",
                                      b"ZPOPMIN q\r\n", b"ZSCORE q zz\r\n",
                                      b"ZPOPMAX q 1\r\n"])
    check(out == b",1.5\r\n*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n"
          b"*2\r\n$1\r\na\r\n,1.5\r\n_\r\n*1\r\n*2\r\n$1\r\nb\r\n,2\r\n", f"RESP3 {out!r}")


def test_scans(c):
    """HSCAN SSCAN ZSCAN (one page, MATCH, COUNT, NOVALUES), SRANDMEMBER with
    positive and negative counts, SPOP picking at random."""
    a, port = redis_node(c, "a")
    r = client(a, port)
    r.hset("h", mapping={f"f{i}": str(i) for i in range(50)})
    cur, got = r.hscan("h", 0, count=10)
    check(cur == 0 and got == {f"f{i}": str(i) for i in range(50)}, "HSCAN one page")
    check(r.hscan("h", 0, match="f1*")[1] == {f"f{i}": str(i) for i in [1] + list(range(10, 20))},
          "HSCAN MATCH")
    out, _ = raw(a, port, b"HSCAN h 0 MATCH f4? NOVALUES\r\n", timeout=1)
    check(out == b"*2\r\n$1\r\n0\r\n*10\r\n" +
          b"".join(b"$3\r\nf4%d\r\n" % i for i in range(10)), f"HSCAN NOVALUES {out!r}")
    check(r.hscan("h", 17, match="f2") == (0, {"f2": "2"}),
          "any cursor: the one page again, as Redis for a small hash")
    r.sadd("s", *[f"m{i}" for i in range(40)])
    cur, got = r.sscan("s", 0, match="m3*")
    check(cur == 0 and sorted(got) == sorted(["m3"] + [f"m3{i}" for i in range(10)]), "SSCAN")
    r.zadd("z", {"a": 1, "b": 2.5})
    check(r.zscan("z", 0) == (0, [("a", 1.0), ("b", 2.5)]), "ZSCAN")
    check(list(r.hscan_iter("h")) and len(list(r.sscan_iter("s"))) == 40, "scan iterators")
    r.set("str", "x")
    for fn in (lambda: r.hscan("str", 0), lambda: r.sscan("str", 0), lambda: r.zscan("str", 0),
               lambda: r.srandmember("str"), lambda: r.sscan("h", 0)):
        raises(fn, WT)
    raises(lambda: r.execute_command("SSCAN", "s", "x"), "invalid cursor")
    raises(lambda: r.execute_command("SSCAN", "s", "0", "COUNT", "0"), "syntax error")
    raises(lambda: r.execute_command("SSCAN", "s", "0", "COUNT", "x"),
           "value is not an integer or out of range")
    raises(lambda: r.execute_command("SSCAN", "s", "0", "BOGUS"), "syntax error")
    # SRANDMEMBER
    members = {f"m{i}" for i in range(40)}
    check(r.srandmember("s") in members and r.srandmember("nos") is None, "SRANDMEMBER")
    got = r.srandmember("s", 10)
    check(len(got) == 10 and len(set(got)) == 10 and set(got) <= members, "count: distinct")
    check(sorted(r.srandmember("s", 100)) == sorted(members), "count above the size: all")
    got = r.srandmember("s", -100)
    check(len(got) == 100 and set(got) <= members and len(set(got)) < 100, "negative: repeats")
    check(r.srandmember("nos", 5) == [] and r.scard("s") == 40, "SRANDMEMBER removes nothing")
    raises(lambda: r.srandmember("s", "x"), "value is not an integer or out of range")
    # random: 30 draws of one member of 40 are not all the same member
    firsts = {r.srandmember("s", 1)[0] for _ in range(30)}
    check(len(firsts) > 1, f"SRANDMEMBER is random: {firsts}")
    popped = set()
    for i in range(5):
        r.delete("sp")
        r.sadd("sp", *[f"m{i}" for i in range(40)])
        popped.add(r.spop("sp"))
    check(len(popped) > 1 and r.scard("sp") == 39, f"SPOP is random: {popped}")
    got = r.spop("sp", 10)
    check(len(set(got)) == 10 and r.scard("sp") == 29 and
          not set(got) & set(r.smembers("sp")), "SPOP count")
    # a cursor past 64 bits is refused (it used to wrap to 0 and restart)
    raises(lambda: r.execute_command("SCAN", "18446744073709551616"), "invalid cursor")
    raises(lambda: r.execute_command("SCAN", "99999999999999999999"), "invalid cursor")


def test_blocking(c):
    """BLPOP/BRPOP: an element already there, a push on the same node waking a
    blocked client (and the commands it pipelined behind waiting for it), a
    push on another node seen once replicated, the timeout, timeout 0, a
    client that disconnects while blocked, inside MULTI, errors."""
    a, pa = redis_node(c, "a")
    b, pb = redis_node(c, "b", seeds=[a])
    c.wait_mesh([a, b])
    ra, rb = client(a, pa), client(b, pb)
    ra.rpush("q1", "x", "y")
    check(ra.blpop(["q0", "q1"], 1) == ("q1", "x") and ra.brpop(["q1"], 0) == ("q1", "y"),
          "BLPOP/BRPOP of an element already there (first non-empty key)")
    check(ra.exists("q1") == 0, "the last pop deletes the key")
    # a blocked client: its pipelined PING waits too
    s = socket.create_connection((a.addr, pa), timeout=10)
    s.sendall(b"BLPOP w1 w2 0\r\nPING\r\n")
    s.settimeout(0.5)
    try:
        early = s.recv(100)
    except socket.timeout:
        early = b""
    check(early == b"", f"a reply before any push: {early!r}")
    check(ra.ping(), "the node serves others meanwhile")
    ra.rpush("w2", "v")
    s.settimeout(10)
    want = b"*2\r\n$2\r\nw2\r\n$1\r\nv\r\n+PONG\r\n"
    got = b""
    while len(got) < len(want):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    check(got == want, f"woken by the push: {got!r}")
    s.close()
    # several clients blocked on one key: each push goes to exactly one
    got3 = []
    ths = [threading.Thread(target=lambda: got3.append(client(a, pa).blpop(["many"], 0)))
           for _ in range(3)]
    for th in ths:
        th.start()
    wait_until("three clients connected", lambda: len(ra.client_list()) >= 4, 10)
    ra.rpush("many", "e1", "e2")
    ra.rpush("many", "e3")
    for th in ths:
        th.join(30)
    check(sorted(got3) == [("many", "e1"), ("many", "e2"), ("many", "e3")],
          f"three blocked clients, three pushes: {got3}")
    check(ra.exists("many") == 0, "every element handed out once")
    # a push on another node
    res = {}
    t = threading.Thread(target=lambda: res.update(v=rb.brpop(["rep"], 0)))
    t.start()
    ra.rpush("rep", "1", "2")
    t.join(30)
    check(res.get("v") == ("rep", "2"), f"BRPOP on b woken by a push on a: {res}")
    # the timeout
    t0 = now()
    check(ra.blpop(["nothing"], 0.3) is None, "a timeout answers null")
    check(now() - t0 >= 0.29, "not before the timeout")
    # a client that goes away while blocked takes nothing
    before = len(ra.client_list())
    s = socket.create_connection((a.addr, pa), timeout=10)
    s.sendall(b"BLPOP gone 0\r\n")
    wait_until("the blocked client is listed", lambda: len(ra.client_list()) == before + 1, 10)
    s.close()
    wait_until("the blocked client is gone", lambda: len(ra.client_list()) == before, 10)
    ra.rpush("gone", "kept")
    check(ra.lrange("gone", 0, -1) == ["kept"], "nothing popped by a closed client")
    # MULTI: does not block
    p = ra.pipeline(transaction=True)
    p.blpop(["empty"], 0)
    p.rpush("m", "1")
    check(p.execute() == [None, 1], "BLPOP in MULTI answers null at once")
    ra.set("str", "x")
    raises(lambda: ra.blpop(["str"], 1), WT)
    raises(lambda: ra.execute_command("BLPOP", "k", "x"),
           "timeout is not a float or out of range")
    raises(lambda: ra.execute_command("BLPOP", "k", "-1"), "timeout is negative")
    raises(lambda: ra.execute_command("BRPOP", "k"), "wrong number of arguments for 'brpop' command")


def test_durable(c):
    """Durable Redis writes (docs/redis.md "Durable writes"): db 0's tables
    made on disk with fsync `always` before any command (as bench/redis
    --durable does); 6 clients write (3 one command at a time, 3 pipelines of
    16), each keeping what was acknowledged; the node is killed with SIGKILL
    in the middle and restarted on its data directory: every acknowledged
    SET, INCR, RPUSH and HSET is there. Replies come after the fsync, so the
    WAL shares fsyncs between connections (more records than fsyncs)."""
    data = os.path.join(c.dir, "a-data")
    a, port = redis_node(c, "a", extra=["--data-dir", data])
    for t in ("redis", "redis.list"):
        c.expect(a.cli("table", "create", t, "--durability", "disk", "--fsync", "always",
                       "--mode", "local"), 0, what=f"create {t}")
    acked = [[] for _ in range(6)]
    stop = threading.Event()

    def writer(i):
        r = client(a, port)
        n = 0
        try:
            while not stop.is_set() and n < 20000:
                if i < 3:
                    r.set(f"s{i}:{n}", f"v{n}")
                    r.incr(f"cnt{i}")
                    r.rpush(f"l{i}", n)
                    r.hset(f"h{i}", f"f{n}", n)
                    acked[i].append(n)
                    n += 1
                else:
                    p = r.pipeline(transaction=False)
                    for k in range(n, n + 16):
                        p.set(f"s{i}:{k}", f"v{k}")
                    p.execute()
                    acked[i].extend(range(n, n + 16))
                    n += 16
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            return  # the node is gone: nothing after this was acknowledged

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    wait_until("acknowledged durable writes",
               lambda: sum(len(x) for x in acked[:3]) >= 150 and
               sum(len(x) for x in acked[3:]) >= 1500, 60)
    r = c.expect(a.cli("table", "info", "redis"), 0, what="info before the kill")
    recs, fsyncs = r.data.get("wal_records", 0), r.data.get("fsyncs", 0)
    a.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    total = sum(len(x) for x in acked)
    print(f"    kill -9 after {total} acknowledged writes; table redis had {recs} records, "
          f"{fsyncs} fsyncs before it")
    check(fsyncs > 0 and recs > fsyncs,
          f"durable writes of 6 clients share no fsync: {recs} records, {fsyncs} fsyncs")

    mark = a.log_mark()
    a.start()
    a.wait_log(r"listening for redis clients", 10, mark=mark)
    r = client(a, port)
    lost = []
    for i in range(6):
        ks = [f"s{i}:{n}" for n in acked[i]]
        for j in range(0, len(ks), 500):
            got = r.mget(ks[j:j + 500])
            lost += [k for k, v in zip(ks[j:j + 500], got) if v != "v" + k.split(":")[1]]
    for i in range(3):
        n = len(acked[i])
        if not n:
            continue
        cnt = int(r.get(f"cnt{i}") or 0)
        if cnt < n:
            lost.append(f"cnt{i}={cnt}<{n}")
        ln = r.llen(f"l{i}")
        if ln < n or r.lrange(f"l{i}", 0, n - 1) != [str(k) for k in range(n)]:
            lost.append(f"l{i} len {ln} < {n} or out of order")
        h = r.hgetall(f"h{i}")
        lost += [f"h{i}.f{k}" for k in range(n) if h.get(f"f{k}") != str(k)]
    check(not lost, f"{len(lost)} acknowledged durable writes lost after kill -9: {lost[:5]}")
    info = c.expect(a.cli("table", "info", "redis"), 0, what="info after restart").data
    check(info.get("durability") == "disk" and info.get("fsync") == "always",
          f"table redis after restart: {info!r}")
    # clients that close while their replies are held: the completion finds
    # them gone (sanitizer builds check the memory), the node serves on
    cmd = b"".join(b"*3\r\n$3\r\nSET\r\n$4\r\ngone\r\n$%d\r\n%d\r\n" % (len(str(k)), k)
                   for k in range(200))
    for _ in range(30):
        s = socket.create_connection((a.addr, port), timeout=10)
        s.sendall(cmd)
        s.close()
    check(r.ping() and r.get("s0:0") in (None, "v0"), "node serves after closed waiters")
    wait_until("the closed clients' writes", lambda: r.get("gone") == "199", 10)
