/* SPDX-License-Identifier: Apache-2.0 */
/*
 * repl_test.c - replicated tables: the merge rule (last writer wins by HLC
 * with the origin as tie-break, tombstones against older writes, counters
 * merged per node, expiry that a replica cannot undo), the digest, tombstones
 * across a restart of a disk table, and the anti-entropy exchange of
 * tables/repl.c between engines in one process (frames packed, unpacked and
 * answered as the dist protocol would).
 */
#include "tables/repl.h"
#include "tables/tables.h"
#include "tables/test_util.h"
#include "testing/gr_test_tables.h"

#include "proto/err.h"
#include "proto/frame.h"
#include "proto/girder.pb-c.h"

#include <check.h>
#include <unistd.h>

#define N 3
static gr_tables *E[N]; /* three replicas: node ids 1, 2, 3 */
static gr_table *T[N];  /* table "r" on each */

static const char *const NAMES[N] = {"n1@h", "n2@h", "n3@h"};
static gr_test_wire W; /* carries repl.c's frames between E[] */

static void setup(void)
{
    atomic_store(&test_clock, 1800000000000ull);
    gr_test_replicas_open(E, T, N, test_now);
    gr_test_wire_init(&W, E, NAMES);
}

static void teardown(void)
{
    gr_test_replicas_close(E, T, N);
}

static int64_t get_i(gr_table *t, const char *k)
{
    term tk = T_str(k);
    gr_tbuf b = {0};
    int r = gr_table_get(t, tk.b, tk.n, &b, NULL);
    int64_t v = r == 0 ? T_get_int(b.p, b.len) : r;

    gr_tbuf_free(&b);
    return v;
}

static void put_i(gr_table *t, const char *k, int64_t v)
{
    term tk = T_str(k), tv = T_int(v);

    ck_assert_int_eq(gr_table_put(t, tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
}

static void digests_equal(void)
{
    uint64_t d0[GR_TDIGEST_BUCKETS], d[GR_TDIGEST_BUCKETS];

    gr_table_digest(T[0], d0);
    for (int i = 1; i < N; i++) {
        gr_table_digest(T[i], d);
        ck_assert_mem_eq(d0, d, sizeof(d));
    }
}

static void digests_equal_2(void)
{
    uint64_t a[GR_TDIGEST_BUCKETS], b[GR_TDIGEST_BUCKETS];

    gr_table_digest(T[0], a);
    gr_table_digest(T[1], b);
    ck_assert_mem_eq(a, b, sizeof(a));
}

START_TEST(test_lww)
{
    /* same wall ms on every node: equal HLCs, the origin decides (3 wins) */
    for (int i = 0; i < N; i++) {
        put_i(T[i], "k", 10 + i);
    }
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "k"), 12);
    }
    /* a later write wins whatever the origin, in any merge order */
    atomic_fetch_add(&test_clock, 5);
    put_i(T[0], "k", 100);
    gr_test_replicas_sync_into(T[2], T[0]);
    gr_test_replicas_sync_into(T[1], T[2]);
    gr_test_replicas_sync_into(T[0], T[1]); /* the older state coming back changes nothing */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "k"), 100);
    }
    digests_equal();
}
END_TEST

START_TEST(test_tombstone)
{
    term k = T_str("k");

    put_i(T[0], "k", 1);
    gr_test_replicas_sync_all(T, N);
    atomic_fetch_add(&test_clock, 1);
    ck_assert_int_eq(gr_table_del(T[1], k.b, k.n, 0), 0);
    ck_assert_uint_eq(gr_table_count(T[1]), 0); /* the tombstone is not an entry */
    {
        gr_table_info in;

        gr_table_info_get(T[1], &in);
        ck_assert_uint_eq(in.tombstones, 1);
        ck_assert_uint_eq(in.entries, 0);
    }
    gr_test_replicas_sync_into(T[1], T[0]); /* the older put does not come back */
    ck_assert_int_eq(get_i(T[1], "k"), GR_ENOKEY);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "k"), GR_ENOKEY);
    }
    /* a write after the delete wins over the tombstone */
    atomic_fetch_add(&test_clock, 1);
    put_i(T[2], "k", 7);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "k"), 7);
    }
    digests_equal();
    /* tombstones are purged after the horizon (tomb_ms) by the sweep */
    ck_assert_int_eq(gr_table_del(T[0], k.b, k.n, 0), 0);
    atomic_fetch_add(&test_clock, 60001);
    gr_tables_maintain(E[0]);
    {
        gr_table_info in;

        gr_table_info_get(T[0], &in);
        ck_assert_uint_eq(in.tombstones, 0);
    }
}
END_TEST

START_TEST(test_counter_merge)
{
    term k = T_str("c");
    int64_t v;

    /* concurrent increments on three nodes all count, whatever the order */
    ck_assert_int_eq(gr_table_incr(T[0], k.b, k.n, 5, &v), 0);
    ck_assert_int_eq(gr_table_incr(T[1], k.b, k.n, 3, &v), 0);
    ck_assert_int_eq(gr_table_incr(T[2], k.b, k.n, -1, &v), 0);
    gr_test_replicas_sync_into(T[1], T[0]);
    ck_assert_int_eq(get_i(T[1], "c"), 8);
    ck_assert_int_eq(gr_table_incr(T[1], k.b, k.n, 10, &v), 0);
    ck_assert_int_eq(v, 18);
    gr_test_replicas_sync_all(T, N);
    gr_test_replicas_sync_all(T, N); /* idempotent */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "c"), 17);
    }
    digests_equal();
    /* a put replaces the counter; increments after it (having seen it) add */
    atomic_fetch_add(&test_clock, 1);
    put_i(T[0], "c", 100);
    gr_test_replicas_sync_all(T, N);
    ck_assert_int_eq(gr_table_incr(T[1], k.b, k.n, 1, &v), 0);
    ck_assert_int_eq(gr_table_incr(T[2], k.b, k.n, 2, &v), 0);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "c"), 103);
    }
    /* after a delete, a counter started on the tombstone wins over it */
    atomic_fetch_add(&test_clock, 1);
    ck_assert_int_eq(gr_table_del(T[0], k.b, k.n, 0), 0);
    gr_test_replicas_sync_all(T, N);
    ck_assert_int_eq(gr_table_incr(T[2], k.b, k.n, 4, &v), 0);
    ck_assert_int_eq(v, 4);
    ck_assert_int_eq(gr_table_incr(T[1], k.b, k.n, 1, &v), 0);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(get_i(T[i], "c"), 5);
    }
    digests_equal();
}
END_TEST

START_TEST(test_expiry)
{
    term k = T_str("k"), v = T_int(1);
    gr_tput ttl = {.flags = GR_TPUT_TTL, .ttl_ms = 500};

    put_i(T[0], "k", 0);
    gr_test_replicas_sync_all(T, N); /* every replica holds the old value without a TTL */
    atomic_fetch_add(&test_clock, 1);
    ck_assert_int_eq(gr_table_put(T[0], k.b, k.n, v.b, v.n, &ttl, NULL), 0);
    gr_test_replicas_sync_into(T[1], T[0]); /* node 3 misses the write */
    atomic_fetch_add(&test_clock, 500);
    ck_assert_int_eq(get_i(T[0], "k"), GR_ENOKEY);
    ck_assert_int_eq(get_i(T[1], "k"), GR_ENOKEY); /* the same absolute expiry */
    ck_assert_int_eq(get_i(T[2], "k"), 0);
    gr_tables_maintain(E[0]);               /* the expired entry becomes a tombstone */
    gr_test_replicas_sync_into(T[0], T[2]); /* the missed replica's older value cannot undo it */
    gr_test_replicas_sync_into(T[1], T[2]);
    ck_assert_int_eq(get_i(T[0], "k"), GR_ENOKEY);
    ck_assert_int_eq(get_i(T[1], "k"), GR_ENOKEY);
    gr_test_replicas_sync_into(T[2], T[1]); /* and the lagging one learns the expiry */
    ck_assert_int_eq(get_i(T[2], "k"), GR_ENOKEY);
    for (int i = 0; i < N; i++) {
        gr_tables_maintain(E[i]);
    }
    gr_test_replicas_sync_all(T, N);
    digests_equal();
}
END_TEST

static int count_fn(void *ud, const gr_trent *e)
{
    (void)e;
    (*(int *)ud)++;
    return 0;
}

START_TEST(test_digest)
{
    uint64_t a[GR_TDIGEST_BUCKETS], b[GR_TDIGEST_BUCKETS];
    uint8_t mask[32] = {0};
    term k = T_str("one-more");
    int diff = 0, at = -1, n = 0;

    for (int i = 0; i < 1000; i++) {
        term tk = T_fmt("k", i), tv = T_int(i);

        ck_assert_int_eq(gr_table_put(T[i % N], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    gr_table_digest(T[0], a);
    gr_table_digest(T[1], b);
    ck_assert_mem_ne(a, b, sizeof(a));
    gr_test_replicas_sync_all(T, N);
    digests_equal();
    put_i(T[0], "one-more", 1);
    gr_table_digest(T[0], a);
    gr_table_digest(T[1], b);
    for (int i = 0; i < GR_TDIGEST_BUCKETS; i++) {
        if (a[i] != b[i]) {
            diff++;
            at = i;
        }
    }
    ck_assert_int_eq(diff, 1); /* one write: one bucket differs, the key's */
    ck_assert_int_eq(at, (int)gr_tkey_bucket(k.b, k.n));
    mask[at >> 3] = (uint8_t)(1u << (at & 7));
    ck_assert_int_eq(gr_table_walk(T[0], mask, count_fn, &n), 0);
    ck_assert_int_ge(n, 1);
    ck_assert_int_lt(n, 30); /* about 1000 / 256 keys per bucket */
    gr_test_replicas_sync_all(T, N);
    digests_equal();
}
END_TEST

/* ---- disk: tombstones and counters survive a restart --------------------------------------- */

START_TEST(test_disk_replay)
{
    char dir[] = "/tmp/repl_test.XXXXXX";
    gr_tables_config cfg = {.node_id = 9, .now_ms = test_now, .maint_ms = -1};
    gr_table_opts o = {.replicated = true, .durability = GR_TABLE_DISK, .fsync = GR_FSYNC_NEVER};
    uint64_t before[GR_TDIGEST_BUCKETS], after[GR_TDIGEST_BUCKETS];
    gr_tables *e;
    gr_table *t;
    gr_table_info in;
    term k = T_str("gone"), c = T_str("c");
    int64_t v;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    cfg.data_dir = dir;
    ck_assert_int_eq(gr_tables_new(&cfg, &e), 0);
    ck_assert_int_eq(gr_tables_create(e, "d", &o), 0);
    ck_assert_int_eq(gr_tables_open(e, "d", &t), 0);
    put_i(t, "a", 1);
    put_i(t, "gone", 2);
    ck_assert_int_eq(gr_table_del(t, k.b, k.n, 0), 0);
    ck_assert_int_eq(gr_table_incr(t, c.b, c.n, 3, &v), 0);
    ck_assert_int_eq(gr_table_sync(t), 0);
    gr_table_digest(t, before);
    gr_table_close(t);
    gr_tables_free(e);
    ck_assert_int_eq(gr_tables_new(&cfg, &e), 0); /* replay */
    ck_assert_int_eq(gr_tables_open(e, "d", &t), 0);
    gr_table_info_get(t, &in);
    ck_assert(in.opts.replicated);
    ck_assert_uint_ne(in.opts.created, 0);
    ck_assert_uint_eq(in.tombstones, 1);
    ck_assert_uint_eq(in.entries, 2);
    gr_table_digest(t, after);
    ck_assert_mem_eq(before, after, sizeof(before));
    ck_assert_int_eq(gr_table_snapshot(t), 0); /* and through a snapshot */
    gr_table_close(t);
    gr_tables_free(e);
    ck_assert_int_eq(gr_tables_new(&cfg, &e), 0);
    ck_assert_int_eq(gr_tables_open(e, "d", &t), 0);
    gr_table_digest(t, after);
    ck_assert_mem_eq(before, after, sizeof(before));
    ck_assert_int_eq(gr_tables_drop(e, "d"), 0);
    gr_table_close(t);
    gr_tables_free(e);
    rmdir(dir);
}
END_TEST

/* ---- the anti-entropy exchange of repl.c, frames and all ------------------------------------ */

START_TEST(test_anti_entropy)
{
    gr_trepl_peer p[4];
    gr_table *t;

    for (int i = 0; i < 2000; i++) {
        term tk = T_fmt("k", i), tv = T_int(i);

        ck_assert_int_eq(gr_table_put(T[0], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    /* a new replica: everything differs; one round each way levels them */
    gr_test_wire_offer(&W, 0, 1);
    ck_assert_uint_eq(gr_table_count(T[1]), 2000);
    {
        uint64_t a[GR_TDIGEST_BUCKETS], b[GR_TDIGEST_BUCKETS];

        gr_table_digest(T[0], a);
        gr_table_digest(T[1], b);
        ck_assert_mem_eq(a, b, sizeof(a));
    }
    /* little differs: only the differing buckets' keys travel */
    put_i(T[1], "k00000007", -7);
    memset(W.sent, 0, sizeof(W.sent));
    gr_test_wire_offer(&W, 1, 0);
    ck_assert_int_eq(get_i(T[0], "k00000007"), -7);
    ck_assert_uint_eq(W.sent[1], 1); /* the digest */
    ck_assert_uint_eq(W.sent[2], 1); /* one key list, of one bucket */
    ck_assert_uint_eq(W.sent[0], 1); /* one batch of writes */
    /* the digest's sender records the answer: n1 held something else */
    ck_assert_uint_eq(gr_trepl_peers(gr_tables_repl(E[1]), "r", p, 4), 1);
    ck_assert_str_eq(p[0].node, "n1@h");
    ck_assert(!p[0].equal);
    memset(W.sent, 0, sizeof(W.sent));
    gr_test_wire_offer(&W, 1, 0); /* the next round finds them equal: one empty answer */
    ck_assert_uint_eq(W.sent[2], 1);
    ck_assert_uint_eq(W.sent[0], 0);
    gr_trepl_peers(gr_tables_repl(E[1]), "r", p, 4);
    ck_assert(p[0].equal);
    /* a tombstone goes once every member known has answered with an equal
     * table more than 5 s (the clock allowance) after its write, long
     * before the horizon; the other member, told the cut-off, purges too */
    {
        term k = T_str("k00000009");
        gr_table_info in;

        ck_assert_int_eq(gr_table_del(T[0], k.b, k.n, 0), 0);
        gr_test_wire_offer(&W, 0, 1); /* n2 gets the tombstone */
        ck_assert_int_eq(get_i(T[1], "k00000009"), GR_ENOKEY);
        atomic_fetch_add(&test_clock, 2000);
        gr_test_wire_offer(&W, 0, 1); /* equal, but too soon after the delete */
        gr_tables_maintain(E[0]);
        gr_table_info_get(T[0], &in);
        ck_assert_uint_eq(in.tombstones, 1);
        atomic_fetch_add(&test_clock, 4000);
        gr_test_wire_offer(&W, 0, 1); /* equal 6 s after the delete */
        gr_tables_maintain(E[0]);
        gr_table_info_get(T[0], &in);
        ck_assert_uint_eq(in.tombstones, 0);
        gr_table_info_get(T[1], &in);
        ck_assert_uint_eq(in.tombstones, 1);
        gr_test_wire_offer(&W, 0, 1); /* the cut-off travels in the digest */
        gr_tables_maintain(E[1]);
        gr_table_info_get(T[1], &in);
        ck_assert_uint_eq(in.tombstones, 0);
        memset(W.sent, 0, sizeof(W.sent));
        gr_test_wire_offer(&W, 1, 0); /* and they are equal again, nothing shipped */
        ck_assert_uint_eq(W.sent[0], 0);
        gr_trepl_peers(gr_tables_repl(E[1]), "r", p, 4);
        ck_assert(p[0].equal);
    }
    /* tables: a create reaches a replica through the digest; a drop leaves a
     * table tombstone that a replica that missed it obeys later */
    ck_assert_int_eq(gr_tables_create(E[0], "fresh", &(gr_table_opts){.replicated = true}), 0);
    gr_test_wire_offer(&W, 0, 2);
    ck_assert_int_eq(gr_tables_open(E[2], "fresh", &t), 0);
    gr_table_close(t);
    ck_assert_int_eq(gr_tables_drop(E[0], "fresh"), 0);
    gr_test_wire_offer(&W, 0, 2);
    ck_assert_int_eq(gr_tables_open(E[2], "fresh", &t), GR_ENOTABLE);
    gr_test_wire_offer(&W, 2, 0); /* and it does not come back from the other side */
    ck_assert_int_eq(gr_tables_open(E[0], "fresh", &t), GR_ENOTABLE);
}
END_TEST

/* A new member that lacks a whole table gets it from one member, not from
 * every member at once: the first bulk answer to a hello makes that member
 * the repair's source; bulk answers to the others' hellos are left out (and
 * the new member's periodic digests leave the table out for a while); the
 * others' periodic rounds are answered, so what only they hold arrives. */
START_TEST(test_bulk_repair_once)
{
    gr_trepl *r2 = gr_tables_repl(E[2]);

    for (int i = 0; i < 2000; i++) {
        term tk = T_fmt("k", i), tv = T_int(i);

        ck_assert_int_eq(gr_table_put(T[0], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    gr_test_replicas_sync_into(T[1], T[0]);
    for (int i = 0; i < 300; i++) { /* only n2 holds these */
        term tk = T_fmt("x", i), tv = T_int(i);

        ck_assert_int_eq(gr_table_put(T[1], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    gr_trepl_peer_up(r2, NAMES[0]);
    gr_trepl_peer_up(r2, NAMES[1]);
    /* both offer their digest to n3 at once (member up) */
    memset(W.sent, 0, sizeof(W.sent));
    W.from = 0;
    W.to = 2;
    gr_trepl_sync(gr_tables_repl(E[0]), NAMES[2], true, gr_test_wire_emit, &W);
    W.from = 1;
    gr_trepl_sync(gr_tables_repl(E[1]), NAMES[2], true, gr_test_wire_emit, &W);
    gr_test_wire_pump(&W);
    ck_assert_uint_eq(W.sent[2], 1); /* one key list: to n1 only */
    ck_assert_uint_eq(gr_table_count(T[2]), 2000);
    /* during the repair, n3's periodic digest leaves the table out */
    memset(W.sent, 0, sizeof(W.sent));
    W.from = 2;
    W.to = 1;
    gr_trepl_sync(r2, NAMES[1], false, gr_test_wire_emit, &W);
    gr_test_wire_pump(&W);
    ck_assert_uint_eq(W.sent[2], 0);
    /* n2's periodic round is answered as always: its extra keys arrive */
    W.from = 1;
    W.to = 2;
    gr_trepl_sync(gr_tables_repl(E[1]), NAMES[2], false, gr_test_wire_emit, &W);
    gr_test_wire_pump(&W);
    ck_assert_uint_eq(gr_table_count(T[2]), 2300);
    {
        uint64_t a[GR_TDIGEST_BUCKETS], b[GR_TDIGEST_BUCKETS];

        gr_table_digest(T[1], a);
        gr_table_digest(T[2], b);
        ck_assert_mem_eq(a, b, sizeof(a));
    }
}
END_TEST

/* An engine with no replicated table: its member-up digest (hello) still
 * goes, its periodic ones do not (the peer would do nothing with them, and
 * an idle node with 99 members would send 50 a second); a replicated table
 * makes the periodic round go again. */
START_TEST(test_idle_sync_sends_nothing)
{
    gr_tables_config cfg = {.node_id = 9, .now_ms = test_now, .maint_ms = -1, .tomb_ms = 60000};
    gr_tables *e = NULL;

    ck_assert_int_eq(gr_tables_new(&cfg, &e), 0);
    W.from = 0;
    W.to = 1;
    gr_trepl_sync(gr_tables_repl(e), NAMES[1], false, gr_test_wire_emit, &W);
    ck_assert_ptr_null(W.q);
    gr_trepl_sync(gr_tables_repl(e), NAMES[1], true, gr_test_wire_emit, &W);
    ck_assert_ptr_nonnull(W.q);
    memset(W.sent, 0, sizeof(W.sent));
    gr_test_wire_pump(&W);
    ck_assert_uint_eq(W.sent[1], 1);
    ck_assert_int_eq(gr_tables_create(e, "t", &(gr_table_opts){.replicated = true}), 0);
    gr_trepl_sync(gr_tables_repl(e), NAMES[1], false, gr_test_wire_emit, &W);
    ck_assert_ptr_nonnull(W.q);
    gr_test_wire_pump(&W);
    ck_assert_uint_eq(W.sent[1], 2);
    gr_tables_free(e);
}
END_TEST

/* The write queue: nothing queued while no peer is up; queued writes drain
 * into ReplWrites frames that a replica merges. */
START_TEST(test_write_queue)
{
    gr_trepl *r = gr_tables_repl(E[0]);

    put_i(T[0], "before", 1);
    ck_assert_uint_eq(gr_trepl_pending(r), 0);
    gr_trepl_peer_up(r, NAMES[1]);
    for (int i = 0; i < 5000; i++) {
        term tk = T_fmt("w", i), tv = T_int(i);

        ck_assert_int_eq(gr_table_put(T[0], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    ck_assert_uint_eq(gr_trepl_pending(r), 5000);
    W.from = 0;
    W.to = 1;
    memset(W.sent, 0, sizeof(W.sent));
    gr_trepl_drain(r, gr_test_wire_emit, &W);
    ck_assert_uint_eq(gr_trepl_pending(r), 0);
    gr_test_wire_pump(&W);
    ck_assert_uint_eq(gr_table_count(T[1]), 5000);
    ck_assert_int_eq(get_i(T[1], "before"), GR_ENOKEY); /* anti-entropy's job */
    gr_trepl_peer_down(r, NAMES[1]);
    put_i(T[0], "after", 1);
    ck_assert_uint_eq(gr_trepl_pending(r), 0);
}
END_TEST

/* The write queue is bounded: writes over the bound are not queued but
 * counted, and the next drain sends a digest, so anti-entropy brings the
 * peer level anyway. */
START_TEST(test_queue_bound)
{
    gr_trepl *r = gr_tables_repl(E[0]);

    gr_trepl_set_queue_max(r, 16 << 10);
    gr_trepl_peer_up(r, NAMES[1]);
    for (int i = 0; i < 2000; i++) {
        term tk = T_fmt("q", i), tv = T_int(i);

        ck_assert_int_eq(gr_table_put(T[0], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    ck_assert_uint_lt(gr_trepl_pending(r), 2000);
    ck_assert_uint_gt(gr_trepl_pending(r), 0);
    ck_assert_uint_eq(gr_trepl_overflows(r), 2000 - gr_trepl_pending(r));
    W.from = 0;
    W.to = 1;
    memset(W.sent, 0, sizeof(W.sent));
    gr_trepl_drain(r, gr_test_wire_emit, &W);
    gr_test_wire_pump(&W);
    ck_assert_uint_ge(W.sent[1], 1); /* the digest went with the drain */
    ck_assert_uint_eq(gr_table_count(T[1]), 2000);
    digests_equal_2();
}
END_TEST

static Suite *repl_suite(void)
{
    Suite *s = suite_create("tables_repl");
    TCase *tc = gr_test_tcase(s, "repl", setup, teardown, 60);

    gr_test_add(tc, test_lww, test_tombstone, test_counter_merge, test_expiry, test_digest,
                test_disk_replay, test_anti_entropy, test_bulk_repair_once,
                test_idle_sync_sends_nothing, test_write_queue, test_queue_bound);
    return s;
}

int main(void)
{
    return gr_test_run(repl_suite);
}
