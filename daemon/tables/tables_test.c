/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tables_test.c - Check tests for in-memory tables (table.c, store_*.c): the
 * registry, every operation, ordering and scans (also under concurrent
 * writes), CAS, counters (also concurrent), TTL with an injected clock,
 * limits and cache eviction.
 */
#include "tables/tables.h"
#include "tables/tables_int.h"
#include "tables/test_util.h"

#include "proto/err.h"

#include <check.h>
#include <pthread.h>

static gr_tables *ts;

static void setup(void)
{
    gr_tables_config cfg = {.node_id = 7, .now_ms = test_now, .maint_ms = -1};

    atomic_store(&test_clock, 1800000000000ull);
    ck_assert_int_eq(gr_tables_new(&cfg, &ts), 0);
}

static void teardown(void)
{
    ts = gr_tables_free(ts);
}

static gr_table *mk(const char *name, gr_table_opts o)
{
    gr_table *t;

    ck_assert_int_eq(gr_tables_create(ts, name, &o), 0);
    ck_assert_int_eq(gr_tables_open(ts, name, &t), 0);
    return t;
}

static int put_s(gr_table *t, const char *k, int64_t v)
{
    term tk = T_str(k), tv = T_int(v);

    return gr_table_put(t, tk.b, tk.n, tv.b, tv.n, NULL, NULL);
}

static int64_t get_s(gr_table *t, const char *k)
{
    term tk = T_str(k);
    gr_tbuf b = {0};
    int64_t v;
    int r = gr_table_get(t, tk.b, tk.n, &b, NULL);

    v = r == 0 ? T_get_int(b.p, b.len) : r;
    gr_tbuf_free(&b);
    return v;
}

/* ---- registry ----------------------------------------------------------------------------- */

static void count_names(void *ud, const char *name)
{
    char *acc = ud;

    strcat(acc, name);
    strcat(acc, ",");
}

START_TEST(test_registry)
{
    gr_table_opts o = {0};
    gr_table_info info;
    gr_table *t;
    char names[256] = "";

    ck_assert_int_eq(gr_tables_create(ts, "b", &o), 0);
    ck_assert_int_eq(gr_tables_create(ts, "a", &o), 0);
    ck_assert_int_eq(gr_tables_create(ts, "a", &o), GR_ETABLEEXISTS);
    ck_assert_int_eq(gr_tables_create(ts, "x/y", &o), GR_EBADTABLENAME);
    ck_assert_int_eq(gr_tables_create(ts, "", &o), GR_EBADTABLENAME);
    ck_assert_int_eq(gr_tables_create(ts, "..", &o), GR_EBADTABLENAME);
    o.durability = GR_TABLE_DISK;
    ck_assert_int_eq(gr_tables_create(ts, "d", &o), GR_ECONFIG); /* no data dir */
    o = (gr_table_opts){.shards = 3};
    ck_assert_int_eq(gr_tables_create(ts, "c", &o), GR_EBADARG);
    ck_assert_uint_eq(gr_tables_list(ts, count_names, names), 2);
    ck_assert_str_eq(names, "a,b,");
    ck_assert_int_eq(gr_tables_open(ts, "nope", &t), GR_ENOTABLE);
    ck_assert_int_eq(gr_tables_open(ts, "a", &t), 0);
    ck_assert_int_eq(put_s(t, "k", 1), 0);
    ck_assert_int_eq(gr_tables_info(ts, "a", &info), 0);
    ck_assert_uint_eq(info.entries, 1);
    ck_assert_uint_gt(info.bytes, 0);
    ck_assert_int_eq(gr_tables_drop(ts, "a"), 0);
    ck_assert_int_eq(gr_tables_drop(ts, "a"), GR_ENOTABLE);
    ck_assert_int_eq(gr_tables_info(ts, "a", &info), GR_ENOTABLE);
    /* the open handle still works on the detached table */
    ck_assert_int_eq(get_s(t, "k"), 1);
    gr_table_close(t);
    ck_assert_str_eq(gr_strerror(GR_ENOTABLE), "no such table");
}
END_TEST

/* ---- single-key operations ---------------------------------------------------------------- */

static void ops_on(gr_table_kind kind)
{
    gr_table *t = mk("t", (gr_table_opts){.kind = kind, .max_value = 64});
    term k = T_str("k"), v1 = T_int(1), v2 = T_int(2), big = {.n = 0};
    gr_tput how = {0};
    gr_tmeta m1, m2, m;
    gr_tbuf b = {0};
    const void *keys[3];
    size_t klens[3];
    term ka = T_str("a"), kz = T_str("z");

    ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), GR_ENOKEY);
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v1.b, v1.n, NULL, &m1), 0);
    ck_assert_uint_eq(m1.origin, 7);
    ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, &m), 0);
    ck_assert_uint_eq(m.version, m1.version);
    ck_assert_int_eq(T_get_int(b.p, b.len), 1);
    /* put-if-absent */
    how.flags = GR_TPUT_IF_ABSENT;
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v2.b, v2.n, &how, NULL), GR_EKEYEXISTS);
    /* CAS: wrong version, absent-version, right version */
    how = (gr_tput){.flags = GR_TPUT_CAS, .version = m1.version + 1};
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v2.b, v2.n, &how, NULL), GR_ECASMISMATCH);
    how.version = 0;
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v2.b, v2.n, &how, NULL), GR_ECASMISMATCH);
    how.version = m1.version;
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v2.b, v2.n, &how, &m2), 0);
    ck_assert_uint_gt(m2.version, m1.version);
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v1.b, v1.n, &how, NULL), GR_ECASMISMATCH);
    ck_assert_int_eq(get_s(t, "k"), 2);
    /* bad input leaves the table intact */
    big.b[0] = 0xc4;
    big.b[1] = 100;
    big.n = 102;
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, big.b, big.n, NULL, NULL), GR_ETOOBIG);
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, "\xa3x", 2, NULL, NULL), GR_EBADTERM);
    ck_assert_int_eq(gr_table_put(t, "\xc1", 1, v1.b, v1.n, NULL, NULL), GR_EBADTERM);
    ck_assert_int_eq(get_s(t, "k"), 2);
    ck_assert_uint_eq(gr_table_count(t), 1);
    /* multi-get */
    ck_assert_int_eq(put_s(t, "a", 10), 0);
    keys[0] = ka.b, klens[0] = ka.n;
    keys[1] = kz.b, klens[1] = kz.n;
    keys[2] = k.b, klens[2] = k.n;
    ck_assert_int_eq(gr_table_mget(t, 3, keys, klens, &b), 0);
    ck_assert_mem_eq(b.p, "\xdd\x00\x00\x00\x03\x0a\xc0\x02", 8);
    /* delete with a version, then plain */
    ck_assert_int_eq(gr_table_del(t, k.b, k.n, m1.version), GR_ECASMISMATCH);
    ck_assert_int_eq(gr_table_del(t, k.b, k.n, m2.version), 0);
    ck_assert_int_eq(gr_table_del(t, k.b, k.n, 0), GR_ENOKEY);
    ck_assert_int_eq(gr_table_del(t, ka.b, ka.n, 0), 0);
    ck_assert_uint_eq(gr_table_count(t), 0);
    gr_tbuf_free(&b);
    gr_table_close(t);
}

START_TEST(test_ops_set)
{
    ops_on(GR_TABLE_SET);
}
END_TEST

START_TEST(test_ops_ordered)
{
    ops_on(GR_TABLE_ORDERED_SET);
}
END_TEST

START_TEST(test_same_key_canonical)
{
    gr_table *t = mk("t", (gr_table_opts){0});
    term v = T_int(5);
    gr_tbuf b = {0};

    ck_assert_int_eq(gr_table_put(t, "\xcd\x00\x01", 3, v.b, v.n, NULL, NULL), 0);
    ck_assert_int_eq(gr_table_get(t, "\x01", 1, &b, NULL), 0);
    /* 1.0 is another key */
    ck_assert_int_eq(gr_table_get(t, "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9, &b, NULL),
                     GR_ENOKEY);
    gr_tbuf_free(&b);
    gr_table_close(t);
}
END_TEST

/* ---- scans -------------------------------------------------------------------------------- */

typedef struct seen {
    int64_t vals[4096]; /* values in delivery order */
    int n;
    char last[64];  /* last key (string keys) */
    int stop_after; /* stop the page after this many (0 = never) */
    int order_ok;   /* keys came in increasing order */
} seen;

static int collect(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   const gr_tmeta *m)
{
    seen *s = ud;
    char k[64] = "";

    if (klen > 1 && klen < sizeof(k)) {
        memcpy(k, key + 1, klen - 1); /* fixstr: skip the header */
    }
    if (s->n && strcmp(k, s->last) <= 0) {
        s->order_ok = 0;
    }
    snprintf(s->last, sizeof(s->last), "%s", k);
    s->vals[s->n++] = T_get_int(val, vlen);
    return s->stop_after && s->n % s->stop_after == 0;
}

/* Scan the whole table page by page; returns pages used. */
static int scan_all(gr_table *t, gr_tscan req, seen *s)
{
    gr_tbuf cur = {0}, next = {0};
    int pages = 0;

    do {
        req.cursor = cur.len ? cur.p : NULL;
        req.cursor_len = cur.len;
        ck_assert_int_eq(gr_table_scan(t, &req, collect, s, &next), 0);
        gr_tbuf tmp = cur;
        cur = next;
        next = tmp;
        pages++;
    } while (cur.len);
    gr_tbuf_free(&cur);
    gr_tbuf_free(&next);
    return pages;
}

START_TEST(test_ordered_scan)
{
    gr_table *t = mk("o", (gr_table_opts){.kind = GR_TABLE_ORDERED_SET});
    term lo = T_str("k:00000010"), hi = T_str("k:00000020"), pre = T_str("k:0000009");
    seen s = {.order_ok = 1};

    for (int i = 499; i >= 0; i--) {
        term k = T_fmt("k:", i), v = T_int(i);

        ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL), 0);
    }
    ck_assert_int_eq(put_s(t, "j", -1), 0);
    ck_assert_int_eq(put_s(t, "l", -2), 0);
    ck_assert_int_eq(scan_all(t, (gr_tscan){.limit = 7}, &s), 502 / 7 + 1);
    ck_assert_int_eq(s.n, 502);
    ck_assert(s.order_ok);
    ck_assert_int_eq(s.vals[0], -1);
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(s.vals[i + 1], i);
    }
    /* range [10, 20) */
    s = (seen){.order_ok = 1};
    scan_all(t,
             (gr_tscan){.start = lo.b, .start_len = lo.n, .end = hi.b, .end_len = hi.n, .limit = 3},
             &s);
    ck_assert_int_eq(s.n, 10);
    ck_assert_int_eq(s.vals[0], 10);
    ck_assert_int_eq(s.vals[9], 19);
    /* prefix "k:0000009" -> 90..99 */
    s = (seen){.order_ok = 1};
    scan_all(t, (gr_tscan){.prefix = pre.b, .prefix_len = pre.n, .limit = 4}, &s);
    ck_assert_int_eq(s.n, 10);
    ck_assert_int_eq(s.vals[0], 90);
    /* stop early: the cursor resumes after the last entry delivered */
    s = (seen){.order_ok = 1, .stop_after = 5};
    scan_all(t, (gr_tscan){.limit = 100}, &s);
    ck_assert_int_eq(s.n, 502);
    ck_assert(s.order_ok);
    /* a forged cursor is refused */
    {
        gr_tbuf nx = {0};
        gr_tscan bad = {.cursor = "\xc1", .cursor_len = 1};

        ck_assert_int_eq(gr_table_scan(t, &bad, collect, &s, &nx), GR_EBADARG);
        gr_tbuf_free(&nx);
    }
    gr_table_close(t);
}
END_TEST

START_TEST(test_set_scan_across_resize)
{
    gr_table *t = mk("s", (gr_table_opts){.shards = 4});
    static char mark[20000];
    gr_tbuf cur = {0}, next = {0};
    seen s = {0};
    int grown = 0;

    memset(mark, 0, sizeof(mark));
    for (int i = 0; i < 1000; i++) {
        term k = T_fmt("k", i), v = T_int(i);

        gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL);
    }
    /* page through; after the first page add 10,000 keys (many resizes) */
    do {
        gr_tscan req = {.cursor = cur.len ? cur.p : NULL, .cursor_len = cur.len, .limit = 50};

        s.n = 0;
        ck_assert_int_eq(gr_table_scan(t, &req, collect, &s, &next), 0);
        for (int i = 0; i < s.n; i++) {
            mark[s.vals[i]]++;
        }
        if (!grown++) {
            for (int i = 1000; i < 11000; i++) {
                term k = T_fmt("k", i), v = T_int(i);

                gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL);
            }
        }
        gr_tbuf tmp = cur;
        cur = next;
        next = tmp;
    } while (cur.len);
    for (int i = 0; i < 1000; i++) {
        ck_assert_msg(mark[i] == 1, "key %d seen %d times", i, mark[i]);
    }
    for (int i = 1000; i < 11000; i++) {
        ck_assert_int_le(mark[i], 1);
    }
    gr_tbuf_free(&cur);
    gr_tbuf_free(&next);
    gr_table_close(t);
}
END_TEST

/* Concurrent writer: churns keys "w..." (put and delete) and rewrites the
 * stable keys' values with the same value, while the main thread scans. */
typedef struct churn {
    gr_table *t;
    _Atomic int stop;
    long rounds;
} churn;

static void *churner(void *arg)
{
    churn *c = arg;
    long i = 0;

    while (!atomic_load(&c->stop) || i < 2000) {
        term k = T_fmt("w", i % 3000), v = T_int(100000 + i), s = T_fmt("s", i % 1000),
             sv = T_int(i % 1000);

        gr_table_put(c->t, k.b, k.n, v.b, v.n, NULL, NULL);
        if (i % 3 == 0) {
            term d = T_fmt("w", (i * 7) % 3000);

            gr_table_del(c->t, d.b, d.n, 0);
        }
        gr_table_put(c->t, s.b, s.n, sv.b, sv.n, NULL, NULL);
        i++;
    }
    c->rounds = i;
    return NULL;
}

static void scan_under_writes(gr_table_kind kind)
{
    gr_table *t = mk("c", (gr_table_opts){.kind = kind, .shards = 8});
    static int mark[1000];
    churn c = {.t = t};
    pthread_t th;

    for (int i = 0; i < 1000; i++) {
        term k = T_fmt("s", i), v = T_int(i);

        gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL);
    }
    ck_assert_int_eq(pthread_create(&th, NULL, churner, &c), 0);
    for (int round = 0; round < 5; round++) {
        gr_tbuf cur = {0}, next = {0};
        seen *s = calloc(1, sizeof(*s));

        memset(mark, 0, sizeof(mark));
        do {
            gr_tscan req = {.cursor = cur.len ? cur.p : NULL, .cursor_len = cur.len, .limit = 37};

            s->n = 0;
            ck_assert_int_eq(gr_table_scan(t, &req, collect, s, &next), 0);
            for (int i = 0; i < s->n; i++) {
                if (s->vals[i] < 1000) {
                    mark[s->vals[i]]++;
                }
            }
            gr_tbuf tmp = cur;
            cur = next;
            next = tmp;
        } while (cur.len);
        for (int i = 0; i < 1000; i++) {
            ck_assert_msg(mark[i] == 1, "stable key %d seen %d times", i, mark[i]);
        }
        gr_tbuf_free(&cur);
        gr_tbuf_free(&next);
        free(s);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    gr_table_close(t);
}

START_TEST(test_scan_concurrent_set)
{
    scan_under_writes(GR_TABLE_SET);
}
END_TEST

START_TEST(test_scan_concurrent_ordered)
{
    scan_under_writes(GR_TABLE_ORDERED_SET);
}
END_TEST

/* ---- counters ----------------------------------------------------------------------------- */

START_TEST(test_counters)
{
    gr_table *t = mk("n", (gr_table_opts){0});
    term k = T_str("c"), s = T_str("s"), sv = T_str("text");
    int64_t v = 0;

    ck_assert_int_eq(gr_table_incr(t, k.b, k.n, 5, &v), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(gr_table_incr(t, k.b, k.n, -8, &v), 0);
    ck_assert_int_eq(v, -3);
    ck_assert_int_eq(get_s(t, "c"), -3);
    /* an integer put earlier is the start */
    ck_assert_int_eq(put_s(t, "p", 40), 0);
    ck_assert_int_eq(gr_table_incr(t, T_str("p").b, 2, 2, &v), 0);
    ck_assert_int_eq(v, 42);
    /* a non-integer is the wrong type, the value stays */
    ck_assert_int_eq(gr_table_put(t, s.b, s.n, sv.b, sv.n, NULL, NULL), 0);
    ck_assert_int_eq(gr_table_incr(t, s.b, s.n, 1, &v), GR_EWRONGTYPE);
    ck_assert_int_eq(gr_table_incr(t, k.b, k.n, INT64_MAX, &v), 0);
    ck_assert_int_eq(gr_table_incr(t, k.b, k.n, INT64_MAX, &v), GR_EBADARG);
    ck_assert_int_eq(get_s(t, "c"), INT64_MAX - 3);
    gr_table_close(t);
}
END_TEST

typedef struct incr_arg {
    gr_table *t;
    int n;
} incr_arg;

static void *incr_thread(void *arg)
{
    incr_arg *a = arg;
    term k = T_str("hits");
    int64_t v;

    for (int i = 0; i < a->n; i++) {
        ck_assert_int_eq(gr_table_incr(a->t, k.b, k.n, 1, &v), 0);
    }
    return NULL;
}

START_TEST(test_counters_concurrent)
{
    gr_table *t = mk("n", (gr_table_opts){0});
    incr_arg a = {t, 20000};
    pthread_t th[4];

    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, incr_thread, &a);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    ck_assert_int_eq(get_s(t, "hits"), 80000);
    gr_table_close(t);
}
END_TEST

/* ---- TTL ---------------------------------------------------------------------------------- */

START_TEST(test_ttl)
{
    gr_table *t = mk("t", (gr_table_opts){.default_ttl_ms = 10000});
    term k = T_str("k"), v = T_int(1);
    gr_tput how = {.flags = GR_TPUT_TTL, .ttl_ms = 500};
    gr_tmeta m;
    gr_tbuf b = {0};

    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, &how, &m), 0);
    ck_assert_uint_eq(m.expire_ms, atomic_load(&test_clock) + 500);
    ck_assert_int_eq(put_s(t, "d", 2), 0); /* default TTL: 10 s */
    how.ttl_ms = 0;                        /* explicit: forever */
    ck_assert_int_eq(gr_table_put(t, T_str("f").b, 2, v.b, v.n, &how, NULL), 0);
    atomic_fetch_add(&test_clock, 499);
    ck_assert_int_eq(get_s(t, "k"), 1);
    atomic_fetch_add(&test_clock, 1);
    ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), GR_ENOKEY);
    /* expired counts as absent for put-if-absent and CAS-on-absent */
    how = (gr_tput){.flags = GR_TPUT_IF_ABSENT};
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, &how, NULL), 0);
    ck_assert_int_eq(get_s(t, "k"), 1);
    atomic_fetch_add(&test_clock, 10000);
    ck_assert_int_eq(get_s(t, "d"), GR_ENOKEY);
    ck_assert_int_eq(get_s(t, "k"), GR_ENOKEY);
    ck_assert_int_eq(get_s(t, "f"), 1);
    /* a TTL whose expiry would wrap is refused (it used to vanish at once) */
    how = (gr_tput){.flags = GR_TPUT_TTL, .ttl_ms = UINT64_MAX};
    ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, &how, NULL), GR_EBADARG);
    ck_assert_int_eq(gr_tables_create(ts, "wrap", &(gr_table_opts){.default_ttl_ms = UINT64_MAX}),
                     GR_EBADARG);
    ck_assert_uint_eq(gr_table_count(t), 3);
    ck_assert_uint_eq(gr_table_expire(t, 1), 1); /* bounded by the budget */
    ck_assert_uint_eq(gr_table_count(t), 2);
    gr_tables_maintain(ts); /* what the maintenance thread does */
    ck_assert_uint_eq(gr_table_count(t), 1);
    gr_tbuf_free(&b);
    gr_table_close(t);
}
END_TEST

/* Sweeps walk a shard in steps of bounded lock holds; a table without TTL
 * entries is not walked at all. */
static void sweep_on(gr_table_kind kind)
{
    gr_table *t = mk("w", (gr_table_opts){.kind = kind, .shards = 1});
    gr_tput ttl = {.flags = GR_TPUT_TTL, .ttl_ms = 100};

    for (int i = 0; i < 4000; i++) {
        term k = T_fmt("k", i), v = T_int(i);

        ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, i % 4 ? &ttl : NULL, NULL), 0);
    }
    ck_assert_uint_eq(gr_table_expire(t, 100000), 0); /* nothing expired yet */
    atomic_fetch_add(&test_clock, 100);
    ck_assert_uint_eq(gr_table_expire(t, 1000), 1000); /* the budget holds */
    ck_assert_uint_eq(gr_table_expire(t, 100000), 2000);
    ck_assert_uint_eq(gr_table_count(t), 1000);
    for (int i = 0; i < 4000; i++) { /* the permanent ones (every 4th) stay */
        term k = T_fmt("k", i);
        gr_tbuf b = {0};

        ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), i % 4 ? GR_ENOKEY : 0);
        gr_tbuf_free(&b);
    }
    gr_table_close(t);
}

START_TEST(test_ttl_sweep)
{
    sweep_on(GR_TABLE_SET);
}
END_TEST

START_TEST(test_ttl_sweep_ordered)
{
    sweep_on(GR_TABLE_ORDERED_SET);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------- */

START_TEST(test_limit_refuse)
{
    gr_table *t = mk("l", (gr_table_opts){.max_entries = 10});
    gr_table_info info;

    for (int i = 0; i < 10; i++) {
        term k = T_fmt("k", i), v = T_int(i);

        ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL), 0);
    }
    ck_assert_int_eq(put_s(t, "one-more", 1), GR_EFULL);
    /* overwriting a present key is fine */
    ck_assert_int_eq(gr_table_put(t, T_fmt("k", 3).b, T_fmt("k", 3).n, T_int(9).b, 1, NULL, NULL),
                     0);
    gr_table_info_get(t, &info);
    ck_assert_uint_eq(info.entries, 10);
    /* per-entry memory: small key and value fit well under 128 bytes */
    ck_assert_uint_lt(info.bytes / info.entries, 128);
    ck_assert_uint_ge(info.bytes / info.entries, 48);
    gr_table_close(t);
}
END_TEST

START_TEST(test_limit_bytes_and_cache)
{
    gr_table *t = mk("c", (gr_table_opts){.max_entries = 100, .cache = true, .shards = 1});
    gr_tput ttl = {.flags = GR_TPUT_TTL, .ttl_ms = 10};
    gr_table_info info;

    /* one expiring entry; the rest permanent */
    ck_assert_int_eq(gr_table_put(t, T_str("old").b, 4, T_int(1).b, 1, &ttl, NULL), 0);
    atomic_fetch_add(&test_clock, 1000);
    for (int i = 0; i < 300; i++) {
        term k = T_fmt("k", i), v = T_int(i);

        ck_assert_int_eq(gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL), 0);
        atomic_fetch_add(&test_clock, 1000); /* distinct access seconds */
    }
    gr_table_info_get(t, &info);
    ck_assert_uint_le(info.entries, 100);
    ck_assert_uint_eq(info.evictions + info.expired, 201);
    ck_assert_int_eq(get_s(t, "old"), GR_ENOKEY);
    /* the most recent key is always kept */
    {
        term k = T_fmt("k", 299);
        gr_tbuf b = {0};

        ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), 0);
        gr_tbuf_free(&b);
    }
    gr_table_close(t);
    t = mk("b", (gr_table_opts){.max_bytes = 2000});
    for (int i = 0; i < 1000; i++) {
        term k = T_fmt("k", i), v = T_int(i);
        int r = gr_table_put(t, k.b, k.n, v.b, v.n, NULL, NULL);

        if (r == GR_EFULL) {
            break;
        }
        ck_assert_int_eq(r, 0);
    }
    gr_table_info_get(t, &info);
    ck_assert_uint_le(info.bytes, 2000);
    ck_assert_uint_gt(info.entries, 5);
    gr_table_close(t);
}
END_TEST

/* ---- threads: gets and puts from several threads (TSan) ----------------------------------- */

typedef struct rw_arg {
    gr_table *t;
    int id;
} rw_arg;

static void *rw_thread(void *arg)
{
    rw_arg *a = arg;
    gr_tbuf b = {0};

    for (int i = 0; i < 20000; i++) {
        term k = T_fmt("k", i % 512), v = T_int(i % 512);

        if ((i + a->id) % 4 == 0) {
            ck_assert_int_eq(gr_table_put(a->t, k.b, k.n, v.b, v.n, NULL, NULL), 0);
        } else if (gr_table_get(a->t, k.b, k.n, &b, NULL) == 0) {
            ck_assert_int_eq(T_get_int(b.p, b.len), i % 512); /* never a torn value */
        }
    }
    gr_tbuf_free(&b);
    return NULL;
}

static void rw_on(gr_table_kind kind)
{
    gr_table *t = mk("rw", (gr_table_opts){.kind = kind});
    rw_arg a[4];
    pthread_t th[4];

    for (int i = 0; i < 4; i++) {
        a[i] = (rw_arg){t, i};
        pthread_create(&th[i], NULL, rw_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    ck_assert_uint_eq(gr_table_count(t), 512);
    gr_table_close(t);
}

START_TEST(test_threads_set)
{
    rw_on(GR_TABLE_SET);
}
END_TEST

START_TEST(test_threads_ordered)
{
    rw_on(GR_TABLE_ORDERED_SET);
}
END_TEST

/* ---- gets against writers ------------------------------------------------------------------ */

typedef struct tear_arg {
    gr_table *t;
    int id;
    _Atomic int *stop;
    uint64_t seen; /* reader: values read */
} tear_arg;

/* A bin 16 of n bytes, every byte c (large: a torn copy has a wide window). */
static size_t tear_val(uint8_t *b, size_t n, uint8_t c)
{
    b[0] = 0xc5;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)n;
    memset(b + 3, c, n);
    return n + 3;
}

static void *tear_writer(void *arg)
{
    tear_arg *a = arg;
    uint8_t v[8200];

    for (int i = 0; i < 30000; i++) {
        /* 64 hot keys rewritten in place (same size) or swapped (another size),
         * some deleted, and a growing key range that makes the store resize */
        int key = i % 3 == 0 ? 64 + (i / 3) % 4096 : (i * 7 + a->id) % 64;
        term k = T_fmt("t", key);
        size_t n = tear_val(v, i % 17 == 0 ? 4000 : 8192, (uint8_t)(i + a->id));

        if (i % 29 == 0) {
            (void)gr_table_del(a->t, k.b, k.n, 0);
        } else {
            ck_assert_int_eq(gr_table_put(a->t, k.b, k.n, v, n, NULL, NULL), 0);
        }
    }
    return NULL;
}

static void *tear_reader(void *arg)
{
    tear_arg *a = arg;
    gr_tbuf b = {0};

    for (int i = 0; !atomic_load(a->stop); i++) {
        term k = T_fmt("t", i % 5 == 0 ? 64 + i % 4096 : i % 64);

        if (gr_table_get(a->t, k.b, k.n, &b, NULL) == 0) {
            size_t n = b.len;

            ck_assert_uint_ge(n, 4);
            ck_assert_uint_eq(b.p[0], 0xc5);
            ck_assert_uint_eq(((size_t)b.p[1] << 8 | b.p[2]) + 3u, n);
            for (size_t j = 4; j < n; j++) {
                ck_assert_uint_eq(b.p[j], b.p[3]); /* never a torn value */
            }
            a->seen++;
        }
    }
    gr_tbuf_free(&b);
    return NULL;
}

/* Gets enter a shard without its rwlock (reader counters and a writer flag,
 * table.c): 2 writers overwrite values in place, swap them for values of
 * another size, delete and insert keys (resizing the store), while 2 readers
 * check that every value they get is whole. Under TSan this also checks the
 * ordering of the flag and counters (suite threaded). */
static void tear_on(gr_table_kind kind)
{
    gr_table *t = mk("tear", (gr_table_opts){.kind = kind, .shards = 2});
    _Atomic int stop = 0;
    tear_arg w[2], r[2];
    pthread_t tw[2], tr[2];

    for (int i = 0; i < 2; i++) {
        w[i] = (tear_arg){t, i, &stop, 0};
        r[i] = (tear_arg){t, i, &stop, 0};
        pthread_create(&tr[i], NULL, tear_reader, &r[i]);
        pthread_create(&tw[i], NULL, tear_writer, &w[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(tw[i], NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(tr[i], NULL);
    }
    ck_assert_uint_gt(r[0].seen + r[1].seen, 0);
    gr_table_close(t);
}

START_TEST(test_gets_vs_writers_set)
{
    tear_on(GR_TABLE_SET);
}
END_TEST

START_TEST(test_gets_vs_writers_ordered)
{
    tear_on(GR_TABLE_ORDERED_SET);
}
END_TEST

/* ---- in-place overwrite ------------------------------------------------------------------- */

static int merge_into(void *ud, const gr_trent *e)
{
    int r = gr_table_merge(ud, e);

    return r < 0 ? r : 0; /* > 0: applied */
}

/* A plain put over a plain value of the same size rewrites the entry in place
 * (table.c overwrite); other puts swap a new entry in. Random puts of 1- and
 * 9-byte values (some with a TTL), deletes, increments and gets on both kinds,
 * local and replicated, against a model: every get, version and count agrees,
 * the charged bytes are those of a table written once with the final values,
 * the sweep finds exactly the expired entries, and a replicated table's digest
 * equals that of a fresh replica the entries are merged into (the in-place
 * digest update is the swap's). */
static void overwrite_on(gr_table_kind kind, bool repl)
{
    enum { NK = 64, OPS = 20000 };
    gr_table *t = mk("o", (gr_table_opts){.kind = kind, .replicated = repl});
    gr_table *f, *c;
    int64_t model[NK];    /* value, or INT64_MIN: absent */
    uint64_t expire[NK];  /* 0: never */
    uint64_t version[NK]; /* of the last write */
    bool counter[NK];     /* last written by incr */
    uint64_t rnd = 42;
    uint64_t dt[GR_TDIGEST_BUCKETS], dc[GR_TDIGEST_BUCKETS];
    gr_table_info it, ifr;
    size_t live = 0;

    {
        /* a TTL given by an overwrite is seen by the sweep (which skips tables
         * without TTL entries) */
        term k = T_str("x"), v1 = T_int(1), v2 = T_int(2);
        gr_tput how = {.flags = GR_TPUT_TTL, .ttl_ms = 5};

        ck_assert_int_eq(gr_table_put(t, k.b, k.n, v1.b, v1.n, NULL, NULL), 0);
        ck_assert_int_eq(gr_table_put(t, k.b, k.n, v2.b, v2.n, &how, NULL), 0);
        atomic_fetch_add(&test_clock, 5);
        ck_assert_uint_eq(gr_table_expire(t, 100), 1);
        ck_assert_uint_eq(gr_table_count(t), 0);
    }
    for (int i = 0; i < NK; i++) {
        model[i] = INT64_MIN;
        expire[i] = version[i] = 0;
        counter[i] = false;
    }
    for (int op = 0; op < OPS; op++) {
        int i, what;
        term k;
        gr_tmeta m;

        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        i = (int)((rnd >> 33) % NK);
        what = (int)((rnd >> 20) % 16);
        k = T_fmt("k", i);
        if (what < 10) { /* put: 1 byte (0..127) or 9 bytes (int64) */
            int64_t v = (what & 1) ? (int64_t)(rnd >> 40) + INT32_MAX : (int64_t)(rnd >> 57);
            term tv = T_int(v);
            gr_tput how = {.flags = GR_TPUT_TTL, .ttl_ms = what == 8 ? 50 : 0};

            ck_assert_int_eq(gr_table_put(t, k.b, k.n, tv.b, tv.n, &how, &m), 0);
            ck_assert_uint_gt(m.version, version[i]);
            model[i] = v;
            version[i] = m.version;
            counter[i] = false;
            expire[i] = how.ttl_ms ? atomic_load(&test_clock) + how.ttl_ms : 0;
        } else if (what < 12) {
            int r = gr_table_del(t, k.b, k.n, 0);
            bool there =
                model[i] != INT64_MIN && (!expire[i] || atomic_load(&test_clock) < expire[i]);

            ck_assert_int_eq(r, there ? 0 : GR_ENOKEY);
            model[i] = INT64_MIN;
        } else if (what == 12) {
            int64_t tot;
            bool there =
                model[i] != INT64_MIN && (!expire[i] || atomic_load(&test_clock) < expire[i]);

            ck_assert_int_eq(gr_table_incr(t, k.b, k.n, 1, &tot), 0);
            ck_assert_int_eq(tot, there ? model[i] + 1 : 1);
            model[i] = tot;
            expire[i] = there ? expire[i] : 0; /* a counter keeps the value's expiry */
            counter[i] = true;
            version[i] = 0; /* not returned: checked by the next put's (larger) */
        } else if (what == 13) {
            atomic_fetch_add(&test_clock, 7);
        } else {
            bool there =
                model[i] != INT64_MIN && (!expire[i] || atomic_load(&test_clock) < expire[i]);

            gr_tbuf b = {0};
            int r = gr_table_get(t, k.b, k.n, &b, &m);

            ck_assert_int_eq(r, there ? 0 : GR_ENOKEY);
            if (there) {
                ck_assert_int_eq(T_get_int(b.p, b.len), model[i]);
                ck_assert(!version[i] || m.version == version[i]);
            }
            gr_tbuf_free(&b);
        }
    }
    /* bytes: those of a table written once with the final values (a counter
     * by one increment: one component, as this node's put-then-incr has),
     * with the same expiries (an entry with one holds its expiry word) */
    f = mk("o_fresh", (gr_table_opts){.kind = kind});
    for (int i = 0; i < NK; i++) {
        term k = T_fmt("k", i), tv = T_int(model[i]), zero = T_int(0);
        uint64_t now = atomic_load(&test_clock);
        gr_tput how = {.flags = GR_TPUT_TTL, .ttl_ms = expire[i] > now ? expire[i] - now : 0};

        if (model[i] != INT64_MIN && (!expire[i] || now < expire[i])) {
            int64_t tot;

            if (counter[i] && expire[i]) { /* the counter keeps the put's expiry */
                ck_assert_int_eq(gr_table_put(f, k.b, k.n, zero.b, zero.n, &how, NULL), 0);
            }
            ck_assert_int_eq(counter[i] ? gr_table_incr(f, k.b, k.n, model[i], &tot)
                                        : gr_table_put(f, k.b, k.n, tv.b, tv.n, &how, NULL),
                             0);
            live++;
        }
    }
    /* the sweep removes exactly the expired ones (ttl accounting kept) */
    gr_table_expire(t, 1u << 20);
    if (!repl) {
        gr_table_info_get(t, &it);
        gr_table_info_get(f, &ifr);
        ck_assert_uint_eq(it.entries, live);
        if (kind == GR_TABLE_SET) { /* ordered: skiplist levels are drawn per entry */
            ck_assert_uint_eq(it.bytes, ifr.bytes);
        }
    }
    ck_assert_uint_eq(gr_table_count(t), live);
    if (repl) {
        c = mk("o_copy", (gr_table_opts){.kind = kind, .replicated = true});
        ck_assert_int_eq(gr_table_walk(t, NULL, merge_into, c), 0);
        gr_table_digest(t, dt);
        gr_table_digest(c, dc);
        ck_assert_mem_eq(dt, dc, sizeof(dt));
        ck_assert_uint_eq(gr_table_count(c), live);
        gr_table_close(c);
    }
    gr_table_close(f);
    gr_table_close(t);
}

START_TEST(test_overwrite_set)
{
    overwrite_on(GR_TABLE_SET, false);
}
END_TEST

START_TEST(test_overwrite_ordered)
{
    overwrite_on(GR_TABLE_ORDERED_SET, false);
}
END_TEST

START_TEST(test_overwrite_replicated)
{
    overwrite_on(GR_TABLE_SET, true);
}
END_TEST

/* A node holds at most GR_TABLES_MAX tables: one more is too_many_tables;
 * a drop makes room again. */
START_TEST(test_table_count_limit)
{
    char name[32];

    for (int i = 0; i < GR_TABLES_MAX; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        ck_assert_int_eq(gr_tables_create(ts, name, &(gr_table_opts){.kind = GR_TABLE_ORDERED_SET}),
                         0);
    }
    ck_assert_int_eq(gr_tables_create(ts, "one-more", NULL), GR_ETOOMANYTABLES);
    ck_assert_int_eq(gr_tables_drop(ts, "t7"), 0);
    ck_assert_int_eq(gr_tables_create(ts, "one-more", NULL), 0);
}
END_TEST

/* ---- hash flooding --------------------------------------------------------------------- */

/* 2,000 keys that share one public hash (T_flood_key) spread in a set
 * table's store: its shards and slots are indexed by the keyed store hash.
 * Indexed by the public hash they would make one run of 2,000 slots, and
 * every insert and lookup of them would walk it. */
START_TEST(test_store_resists_chosen_keys)
{
    enum { N = 2000 };
    gr_table *t = mk("flood", (gr_table_opts){.kind = GR_TABLE_SET});
    term v = T_int(1);
    gr_tbuf b = {0};
    uint8_t k[16];

    for (int i = 0; i < N; i++) {
        T_flood_key(k, (uint64_t)i + 1);
        ck_assert_int_eq(gr_table_put(t, k, sizeof(k), v.b, v.n, NULL, NULL), 0);
    }
    ck_assert_uint_eq(gr_table_count(t), N);
    for (int i = 0; i < N; i++) {
        T_flood_key(k, (uint64_t)i + 1);
        ck_assert_int_eq(gr_table_get(t, k, sizeof(k), &b, NULL), 0);
    }
    /* random keys at this load: a few slots; 64 leaves a wide margin */
    ck_assert_uint_lt(gr_table_longest_shift(t), 64);
    gr_tbuf_free(&b);
    gr_table_close(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tables");
    TCase *tc = tcase_create("memory");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registry);
    tcase_add_test(tc, test_ops_set);
    tcase_add_test(tc, test_ops_ordered);
    tcase_add_test(tc, test_same_key_canonical);
    tcase_add_test(tc, test_ordered_scan);
    tcase_add_test(tc, test_set_scan_across_resize);
    tcase_add_test(tc, test_scan_concurrent_set);
    tcase_add_test(tc, test_scan_concurrent_ordered);
    tcase_add_test(tc, test_counters);
    tcase_add_test(tc, test_counters_concurrent);
    tcase_add_test(tc, test_ttl);
    tcase_add_test(tc, test_ttl_sweep);
    tcase_add_test(tc, test_ttl_sweep_ordered);
    tcase_add_test(tc, test_limit_refuse);
    tcase_add_test(tc, test_limit_bytes_and_cache);
    tcase_add_test(tc, test_threads_set);
    tcase_add_test(tc, test_threads_ordered);
    tcase_add_test(tc, test_overwrite_set);
    tcase_add_test(tc, test_overwrite_ordered);
    tcase_add_test(tc, test_overwrite_replicated);
    tcase_add_test(tc, test_gets_vs_writers_set);
    tcase_add_test(tc, test_gets_vs_writers_ordered);
    tcase_add_test(tc, test_store_resists_chosen_keys);
    tcase_add_test(tc, test_table_count_limit);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
