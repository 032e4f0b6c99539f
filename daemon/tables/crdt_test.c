/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crdt_test.c - maps and add-wins sets (crdt.c, table.c "maps and sets"):
 * every operation on local and replicated tables, the kinds answering
 * wrong_type to each other, the replicated semantics (per-field LWW, field
 * counters merged per node, a concurrent add surviving a remove), the merge
 * laws checked on random operations (states merged in order, shuffled with
 * duplicates, and through intermediate replicas give the same digest and the
 * same bytes), the log and the snapshot, the sweep of removed fields, and
 * the anti-entropy exchange of repl.c carrying them.
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
static gr_tables *E[N]; /* replicas: node ids 1, 2, 3 */
static gr_table *T[N];  /* replicated table "r" on each */
static gr_table *L;     /* local table "l" on E[0] */

static const char *const NAMES[N] = {"n1@h", "n2@h", "n3@h"};
static gr_test_wire W; /* carries repl.c's frames between E[] */

static void setup(void)
{
    atomic_store(&test_clock, 1800000000000ull);
    gr_test_replicas_open(E, T, N, test_now);
    ck_assert_int_eq(gr_tables_create(E[0], "l", NULL), 0);
    ck_assert_int_eq(gr_tables_open(E[0], "l", &L), 0);
    gr_test_wire_init(&W, E, NAMES);
}

static void teardown(void)
{
    L = gr_table_close(L);
    gr_test_replicas_close(E, T, N);
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* Same digest and, entry by entry, the same bytes. */
static void same_tables(gr_table *a, gr_table *b)
{
    uint64_t da[GR_TDIGEST_BUCKETS], db[GR_TDIGEST_BUCKETS];
    gr_test_tcopies ca = gr_test_tcopies_walk(a), cb = gr_test_tcopies_walk(b);

    gr_table_digest(a, da);
    gr_table_digest(b, db);
    ck_assert_uint_eq(ca.n, cb.n);
    for (size_t i = 0; i < ca.n; i++) { /* both sorted by key */
        const gr_trent *x = &ca.v[i].e, *y = &cb.v[i].e;

        ck_assert_mem_eq(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
        ck_assert_uint_eq(x->klen, y->klen);
        ck_assert_uint_eq(x->vlen, y->vlen);
        ck_assert_mem_eq(x->val, y->val, x->vlen);
        ck_assert_uint_eq(x->hlc, y->hlc);
        ck_assert_uint_eq(x->origin, y->origin);
        ck_assert_int_eq(x->tomb, y->tomb);
        ck_assert_int_eq(x->crdt, y->crdt);
        ck_assert_uint_eq(x->hash, y->hash);
    }
    ck_assert_mem_eq(da, db, sizeof(da));
    gr_test_tcopies_free(&ca);
    gr_test_tcopies_free(&cb);
}

static void hset(gr_table *t, const char *k, const char *f, const char *v, uint64_t *added)
{
    term tk = T_str(k), tv = T_str(v);
    const void *np = f, *vp = tv.b;
    size_t nl = strlen(f), vl = tv.n;

    ck_assert_int_eq(gr_table_map_set(t, tk.b, tk.n, 1, &np, &nl, &vp, &vl, added), 0);
}

static int hdel(gr_table *t, const char *k, const char *f)
{
    term tk = T_str(k);
    const void *np = f;
    size_t nl = strlen(f);
    uint64_t n = 0;

    ck_assert_int_eq(gr_table_map_del(t, tk.b, tk.n, 1, &np, &nl, &n), 0);
    return (int)n;
}

/* The field's value as a C string ("" if absent: GR_ENOKEY). */
static int hget(gr_table *t, const char *k, const char *f, char *out)
{
    term tk = T_str(k);
    gr_tbuf b = {0};
    int r = gr_table_map_get(t, tk.b, tk.n, f, strlen(f), &b);

    out[0] = 0;
    if (r == 0) {
        msgpack_unpacked u;

        msgpack_unpacked_init(&u);
        ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)b.p, b.len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
        if (u.data.type == MSGPACK_OBJECT_STR) {
            memcpy(out, u.data.via.str.ptr, u.data.via.str.size);
            out[u.data.via.str.size] = 0;
        } else {
            snprintf(out, 32, "%lld", (long long)T_get_int(b.p, b.len));
        }
        msgpack_unpacked_destroy(&u);
    }
    gr_tbuf_free(&b);
    return r;
}

static void sadd(gr_table *t, const char *k, const char *m)
{
    term tk = T_str(k);
    const void *mp = m;
    size_t ml = strlen(m);

    ck_assert_int_eq(gr_table_set_add(t, tk.b, tk.n, 1, &mp, &ml, NULL), 0);
}

static int srem(gr_table *t, const char *k, const char *m)
{
    term tk = T_str(k);
    const void *mp = m;
    size_t ml = strlen(m);
    uint64_t n = 0;

    ck_assert_int_eq(gr_table_set_rem(t, tk.b, tk.n, 1, &mp, &ml, &n), 0);
    return (int)n;
}

static bool sism(gr_table *t, const char *k, const char *m)
{
    term tk = T_str(k);
    bool is = false;

    ck_assert_int_eq(gr_table_set_ismember(t, tk.b, tk.n, m, strlen(m), &is), 0);
    return is;
}

static uint64_t scard(gr_table *t, const char *k)
{
    term tk = T_str(k);
    uint64_t n = 99;

    ck_assert_int_eq(gr_table_set_card(t, tk.b, tk.n, &n), 0);
    return n;
}

static uint64_t hlen(gr_table *t, const char *k)
{
    term tk = T_str(k);
    uint64_t n = 99;

    ck_assert_int_eq(gr_table_map_len(t, tk.b, tk.n, &n), 0);
    return n;
}

static int64_t hincr(gr_table *t, const char *k, const char *f, int64_t d)
{
    term tk = T_str(k);
    int64_t v = 0;

    ck_assert_int_eq(gr_table_map_incr(t, tk.b, tk.n, f, strlen(f), d, &v), 0);
    return v;
}

static gr_tval_kind type_of(gr_table *t, const char *k)
{
    term tk = T_str(k);
    gr_tval_kind kd = 99;

    ck_assert_int_eq(gr_table_type(t, tk.b, tk.n, &kd), 0);
    return kd;
}

/* "f1=v1,f2=v2" of a map, or "m1,m2" of a set, in order. */
typedef struct cat {
    char s[512];
} cat;
static int cat_fn(void *ud, const uint8_t *name, size_t nlen, const uint8_t *val, size_t vlen)
{
    cat *c = ud;
    size_t n = strlen(c->s);

    snprintf(c->s + n, sizeof(c->s) - n, "%s%.*s", n ? "," : "", (int)nlen, (const char *)name);
    if (val) {
        n = strlen(c->s);
        if ((val[0] & 0xe0) == 0xa0) {
            snprintf(c->s + n, sizeof(c->s) - n, "=%.*s", (int)(val[0] & 0x1f),
                     (const char *)val + 1);
        } else {
            snprintf(c->s + n, sizeof(c->s) - n, "=%lld", (long long)T_get_int(val, vlen));
        }
    }
    return 0;
}
static const char *hall(gr_table *t, const char *k, cat *c)
{
    term tk = T_str(k);

    c->s[0] = 0;
    ck_assert_int_eq(gr_table_map_getall(t, tk.b, tk.n, cat_fn, c), 0);
    return c->s;
}
static const char *smem(gr_table *t, const char *k, cat *c)
{
    term tk = T_str(k);

    c->s[0] = 0;
    ck_assert_int_eq(gr_table_set_members(t, tk.b, tk.n, cat_fn, c), 0);
    return c->s;
}

/* ---- operations ---------------------------------------------------------------------------- */

static void ops_on(gr_table *t)
{
    term k = T_str("h"), s = T_str("s"), p = T_str("p");
    const void *names[3] = {"b", "a", "b"};
    size_t nlens[3] = {1, 1, 1};
    term v1 = T_str("one"), v2 = T_int(2), v3 = T_str("three");
    const void *vals[3] = {v1.b, v2.b, v3.b};
    size_t vlens[3] = {v1.n, v2.n, v3.n};
    uint64_t n = 0;
    char out[64];
    cat c;
    gr_tbuf b = {0};
    bool is;
    int64_t iv;

    /* a name given twice takes its last value */
    ck_assert_int_eq(gr_table_map_set(t, k.b, k.n, 3, names, nlens, vals, vlens, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(hall(t, "h", &c), "a=2,b=three");
    ck_assert_uint_eq(hlen(t, "h"), 2);
    ck_assert_int_eq(type_of(t, "h"), GR_TVAL_MAP);
    hset(t, "h", "a", "x", &n);
    ck_assert_uint_eq(n, 0); /* overwritten, not added */
    ck_assert_int_eq(hget(t, "h", "a", out), 0);
    ck_assert_str_eq(out, "x");
    ck_assert_int_eq(hget(t, "h", "zz", out), GR_ENOKEY);
    ck_assert_int_eq(hget(t, "nokey", "a", out), GR_ENOKEY);
    ck_assert_uint_eq(hlen(t, "nokey"), 0);
    ck_assert_str_eq(hall(t, "nokey", &c), "");
    /* counters in fields: from absent, from an integer, from a decimal string */
    ck_assert_int_eq(hincr(t, "h", "n", 5), 5);
    ck_assert_int_eq(hincr(t, "h", "n", -7), -2);
    hset(t, "h", "d", "41", NULL);
    ck_assert_int_eq(hincr(t, "h", "d", 1), 42);
    ck_assert_int_eq(gr_table_map_incr(t, k.b, k.n, "a", 1, 1, &iv), GR_EWRONGTYPE);
    ck_assert_int_eq(hincr(t, "h", "o", INT64_MAX), INT64_MAX);
    ck_assert_int_eq(gr_table_map_incr(t, k.b, k.n, "o", 1, 1, &iv), GR_EBADARG);
    ck_assert_int_eq(hdel(t, "h", "o"), 1);
    ck_assert_int_eq(hget(t, "h", "n", out), 0);
    ck_assert_str_eq(out, "-2");
    /* removal; a removed field is gone, an emptied map is no key */
    ck_assert_int_eq(hdel(t, "h", "zz"), 0);
    ck_assert_int_eq(hdel(t, "h", "a"), 1);
    ck_assert_int_eq(hget(t, "h", "a", out), GR_ENOKEY);
    ck_assert_str_eq(hall(t, "h", &c), "b=three,d=42,n=-2");
    ck_assert_uint_eq(gr_table_count(t), 1);
    {
        const void *all[3] = {"b", "d", "n"};
        size_t al[3] = {1, 1, 1};

        ck_assert_int_eq(gr_table_map_del(t, k.b, k.n, 3, all, al, &n), 0);
        ck_assert_uint_eq(n, 3);
    }
    ck_assert_int_eq(type_of(t, "h"), GR_TVAL_NONE);
    ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), GR_ENOKEY);
    ck_assert_uint_eq(gr_table_count(t), 0);
    ck_assert_int_eq(gr_table_map_del(t, k.b, k.n, 0, names, nlens, &n), GR_EBADARG);

    /* sets */
    {
        const void *ms[4] = {"x", "y", "x", "z"};
        size_t ml[4] = {1, 1, 1, 1};

        ck_assert_int_eq(gr_table_set_add(t, s.b, s.n, 4, ms, ml, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_int_eq(gr_table_set_add(t, s.b, s.n, 2, ms, ml, &n), 0);
        ck_assert_uint_eq(n, 0);
    }
    ck_assert_str_eq(smem(t, "s", &c), "x,y,z");
    ck_assert_uint_eq(scard(t, "s"), 3);
    ck_assert(sism(t, "s", "y"));
    ck_assert(!sism(t, "s", "w"));
    ck_assert(!sism(t, "nokey", "w"));
    ck_assert_uint_eq(scard(t, "nokey"), 0);
    ck_assert_int_eq(srem(t, "s", "y"), 1);
    ck_assert_int_eq(srem(t, "s", "y"), 0);
    ck_assert(!sism(t, "s", "y"));
    sadd(t, "s", "y"); /* back after a removal */
    ck_assert(sism(t, "s", "y"));
    ck_assert_int_eq(type_of(t, "s"), GR_TVAL_SET);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gr_table_set_pop(t, s.b, s.n, &b), 0);
        ck_assert_uint_eq(b.len, 1);
        ck_assert(b.p[0] >= 'x' && b.p[0] <= 'z');
        ck_assert(!sism(t, "s", (char[]){(char)b.p[0], 0}));
    }
    ck_assert_int_eq(gr_table_set_pop(t, s.b, s.n, &b), GR_ENOKEY);
    ck_assert_int_eq(type_of(t, "s"), GR_TVAL_NONE);

    /* kinds: each answers wrong_type to the others */
    sadd(t, "s", "x");
    hset(t, "h", "f", "v", NULL);
    {
        term pv = T_int(1);

        ck_assert_int_eq(gr_table_put(t, p.b, p.n, pv.b, pv.n, NULL, NULL), 0);
    }
    ck_assert_int_eq(type_of(t, "p"), GR_TVAL_PLAIN);
    ck_assert_int_eq(gr_table_map_get(t, s.b, s.n, "x", 1, &b), GR_EWRONGTYPE);
    ck_assert_int_eq(gr_table_map_len(t, p.b, p.n, &n), GR_EWRONGTYPE);
    ck_assert_int_eq(gr_table_set_card(t, k.b, k.n, &n), GR_EWRONGTYPE);
    ck_assert_int_eq(gr_table_set_ismember(t, p.b, p.n, "x", 1, &is), GR_EWRONGTYPE);
    {
        const void *mp = "x";
        size_t ml = 1;

        ck_assert_int_eq(gr_table_set_add(t, k.b, k.n, 1, &mp, &ml, &n), GR_EWRONGTYPE);
        ck_assert_int_eq(gr_table_map_del(t, s.b, s.n, 1, &mp, &ml, &n), GR_EWRONGTYPE);
    }
    ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), GR_EWRONGTYPE);
    ck_assert_int_eq(gr_table_incr(t, s.b, s.n, 1, &iv), GR_EWRONGTYPE);
    {
        const void *keys[3] = {k.b, s.b, p.b};
        size_t kl[3] = {k.n, s.n, p.n};

        ck_assert_int_eq(gr_table_mget(t, 3, keys, kl, &b), 0); /* nil, nil, 1 */
        ck_assert_uint_eq(b.len, 5 + 3);
        ck_assert_uint_eq(b.p[5], 0xc0);
        ck_assert_uint_eq(b.p[6], 0xc0);
        ck_assert_uint_eq(b.p[7], 1);
    }
    /* a put replaces a map wholesale; a delete removes it */
    {
        term pv = T_int(7);

        ck_assert_int_eq(gr_table_put(t, k.b, k.n, pv.b, pv.n, NULL, NULL), 0);
        ck_assert_int_eq(type_of(t, "h"), GR_TVAL_PLAIN);
    }
    ck_assert_int_eq(gr_table_del(t, s.b, s.n, 0), 0);
    ck_assert_int_eq(type_of(t, "s"), GR_TVAL_NONE);
    hset(t, "s", "f", "v", NULL); /* after the delete: any kind */
    ck_assert_int_eq(type_of(t, "s"), GR_TVAL_MAP);
    gr_tbuf_free(&b);
}

START_TEST(test_ops_local)
{
    ops_on(L);
}
END_TEST

START_TEST(test_ops_replicated)
{
    gr_table_info in;

    ops_on(T[0]);
    gr_table_info_get(T[0], &in);
    ck_assert_uint_eq(in.entries, 3);
    /* the same reads on a replica that merged it */
    gr_test_replicas_sync_into(T[1], T[0]);
    same_tables(T[0], T[1]);
}
END_TEST

/* ---- replicated semantics ------------------------------------------------------------------- */

START_TEST(test_map_fields)
{
    char out[64];
    cat c;

    hset(T[0], "k", "base", "0", NULL);
    gr_test_replicas_sync_all(T, N);
    /* the same field: the later (HLC, origin) wins (equal HLCs: node 3 > 1) */
    hset(T[0], "k", "same", "n1", NULL);
    hset(T[2], "k", "same", "n3", NULL);
    /* concurrent writes of different fields: both */
    hset(T[0], "k", "a", "from1", NULL);
    hset(T[1], "k", "b", "from2", NULL);
    /* a removal concurrent with another field's write: both effects */
    ck_assert_int_eq(hdel(T[2], "k", "base"), 1);
    hset(T[1], "k", "c", "from2", NULL);
    /* concurrent increments of one field all count */
    hincr(T[0], "k", "n", 5);
    hincr(T[1], "k", "n", 7);
    hincr(T[2], "k", "n", -2);
    gr_test_replicas_sync_all(T, N);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(hall(T[i], "k", &c), "a=from1,b=from2,c=from2,n=10,same=n3");
        ck_assert_int_eq(hget(T[i], "k", "base", out), GR_ENOKEY);
    }
    same_tables(T[0], T[1]);
    same_tables(T[0], T[2]);
    /* a put replaces the map; a field write that saw only the map loses */
    {
        term tk = T_str("k"), tv = T_int(1);

        ck_assert_int_eq(gr_table_put(T[0], tk.b, tk.n, tv.b, tv.n, NULL, NULL), 0);
    }
    hset(T[1], "k", "late", "x", NULL);
    gr_test_replicas_sync_all(T, N);
    ck_assert_int_eq(type_of(T[1], "k"), GR_TVAL_PLAIN);
    /* after a delete, a new map on one side beats the tombstone everywhere */
    {
        term tk = T_str("k");

        ck_assert_int_eq(gr_table_del(T[2], tk.b, tk.n, 0), 0);
    }
    gr_test_replicas_sync_all(T, N);
    hset(T[0], "k", "again", "y", NULL);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(hall(T[i], "k", &c), "again=y");
    }
}
END_TEST

START_TEST(test_set_add_wins)
{
    cat c;

    sadd(T[0], "s", "x");
    sadd(T[0], "s", "y");
    gr_test_replicas_sync_all(T, N);
    /* x re-added on 1 while 2 removes it: the add 2 did not see survives */
    sadd(T[0], "s", "x");
    ck_assert_int_eq(srem(T[1], "s", "x"), 1);
    ck_assert(!sism(T[1], "s", "x"));
    /* y removed on 2, nobody adds it: gone everywhere */
    ck_assert_int_eq(srem(T[1], "s", "y"), 1);
    /* z added concurrently on two nodes, removed on a third that saw one add */
    sadd(T[0], "s", "z");
    sadd(T[2], "s", "z");
    gr_test_replicas_sync_into(T[1], T[0]);
    ck_assert_int_eq(srem(T[1], "s", "z"), 1);
    gr_test_replicas_sync_all(T, N);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(smem(T[i], "s", &c), "x,z");
    }
    same_tables(T[0], T[1]);
    same_tables(T[0], T[2]);
    /* a remove that saw every add removes it everywhere */
    ck_assert_int_eq(srem(T[2], "s", "z"), 1);
    gr_test_replicas_sync_all(T, N);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(smem(T[i], "s", &c), "x");
    }
}
END_TEST

/* ---- the merge laws on random operations ---------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_op(gr_table *t)
{
    static const char *const keys[] = {"m1", "m2", "s1", "s2", "x"};
    static const char *const names[] = {"a", "b", "c", "d"};
    const char *f = names[rnd() % 4];
    unsigned op = (unsigned)(rnd() % 10), kx = (unsigned)(rnd() % 3);
    /* map operations mostly on m1, m2; set operations on s1, s2; x gets all */
    const char *k = kx == 2 ? "x" : op <= 4 ? keys[kx] : op <= 8 ? keys[2 + kx] : keys[rnd() % 5];
    term tk = T_str(k);
    char v[16];
    int r;

    snprintf(v, sizeof(v), "v%u", (unsigned)(rnd() % 100));
    switch (op) {
    case 0:
    case 1: {
        term tv = T_str(v);
        const void *np = f, *vp = tv.b;
        size_t nl = 1, vl = tv.n;

        r = gr_table_map_set(t, tk.b, tk.n, 1, &np, &nl, &vp, &vl, NULL);
        break;
    }
    case 2: {
        const void *np = f;
        size_t nl = 1;

        r = gr_table_map_del(t, tk.b, tk.n, 1, &np, &nl, NULL);
        break;
    }
    case 3:
    case 4: {
        int64_t x;

        r = gr_table_map_incr(t, tk.b, tk.n, f, 1, (int64_t)(rnd() % 11) - 5, &x);
        break;
    }
    case 5:
    case 6: {
        const void *mp = f;
        size_t ml = 1;

        r = gr_table_set_add(t, tk.b, tk.n, 1, &mp, &ml, NULL);
        break;
    }
    case 7: {
        const void *mp = f;
        size_t ml = 1;

        r = gr_table_set_rem(t, tk.b, tk.n, 1, &mp, &ml, NULL);
        break;
    }
    case 8: {
        gr_tbuf b = {0};

        r = gr_table_set_pop(t, tk.b, tk.n, &b);
        gr_tbuf_free(&b);
        break;
    }
    default:
        if (rnd() % 2) {
            term tv = T_int((int64_t)(rnd() % 9));

            r = gr_table_put(t, tk.b, tk.n, tv.b, tv.n, NULL, NULL);
        } else {
            r = gr_table_del(t, tk.b, tk.n, 0);
        }
        break;
    }
    ck_assert(r == 0 || r == GR_EWRONGTYPE || r == GR_ENOKEY);
}

START_TEST(test_merge_laws)
{
    for (int round = 0; round < 12; round++) {
        gr_test_tcopies hist = {0}; /* every state any replica had, in the order made */
        gr_tables *x[3];
        gr_table *tx[3];

        for (int i = 0; i < 3; i++) {
            gr_tables_config cfg = {.node_id = 100 + (uint64_t)i, .maint_ms = -1};

            ck_assert_int_eq(gr_tables_new(&cfg, &x[i]), 0);
            ck_assert_int_eq(gr_tables_create_replica(
                                 x[i], "m", &(gr_table_opts){.replicated = true, .created = 1}),
                             0);
            ck_assert_int_eq(gr_tables_open(x[i], "m", &tx[i]), 0);
        }
        /* random operations on the 3 replicas, with partial exchanges */
        for (int step = 0; step < 300; step++) {
            int i = (int)(rnd() % N);

            if (rnd() % 8 == 0) {
                int j = (int)(rnd() % N);

                if (j != i) {
                    gr_test_replicas_sync_into(T[i], T[j]);
                }
            } else {
                random_op(T[i]);
            }
            if (step % 10 == 0) {
                atomic_fetch_add(&test_clock, rnd() % 3); /* equal ms too: origin ties */
            }
            {
                gr_test_tcopies now = gr_test_tcopies_walk(T[i]);

                for (size_t c = 0; c < now.n; c++) {
                    gr_test_tcopies_add(&hist, &now.v[c].e);
                }
                gr_test_tcopies_free(&now);
            }
        }
        /* x0: every state in order; x1: shuffled, each 1-3 times */
        for (size_t c = 0; c < hist.n; c++) {
            ck_assert_int_ge(gr_table_merge(tx[0], &hist.v[c].e), 0);
        }
        for (size_t c = hist.n; c > 1; c--) {
            size_t j = rnd() % c;
            gr_test_tcopy t = hist.v[c - 1];

            hist.v[c - 1] = hist.v[j];
            hist.v[j] = t;
        }
        for (size_t c = 0; c < hist.n; c++) {
            for (uint64_t d = rnd() % 3; d < 3; d++) {
                ck_assert_int_ge(gr_table_merge(tx[1], &hist.v[c].e), 0);
            }
        }
        same_tables(tx[0], tx[1]);
        /* x2: the halves merged into two replicas, then those merged (a
         * merge of merges is the merge of all) */
        {
            gr_tables *h[2];
            gr_table *th[2];

            for (int i = 0; i < 2; i++) {
                gr_tables_config cfg = {.node_id = 200 + (uint64_t)i, .maint_ms = -1};

                ck_assert_int_eq(gr_tables_new(&cfg, &h[i]), 0);
                ck_assert_int_eq(gr_tables_create_replica(
                                     h[i], "m", &(gr_table_opts){.replicated = true, .created = 1}),
                                 0);
                ck_assert_int_eq(gr_tables_open(h[i], "m", &th[i]), 0);
            }
            for (size_t c = 0; c < hist.n; c++) {
                ck_assert_int_ge(gr_table_merge(th[c % 2], &hist.v[c].e), 0);
            }
            gr_test_replicas_sync_into(tx[2], th[1]);
            gr_test_replicas_sync_into(tx[2], th[0]);
            same_tables(tx[0], tx[2]);
            for (int i = 0; i < 2; i++) {
                gr_table_close(th[i]);
                gr_tables_free(h[i]);
            }
        }
        /* and the replicas themselves, fully exchanged, hold the same */
        gr_test_replicas_sync_all(T, N);
        same_tables(T[0], T[1]);
        same_tables(T[0], T[2]);
        same_tables(T[0], tx[0]);
        gr_test_tcopies_free(&hist);
        for (int i = 0; i < 3; i++) {
            gr_table_close(tx[i]);
            gr_tables_free(x[i]);
        }
    }
}
END_TEST

/* ---- durability, the sweep, anti-entropy ---------------------------------------------------- */

START_TEST(test_disk)
{
    char dir[] = "/tmp/crdt_test.XXXXXX";
    gr_tables_config cfg = {.node_id = 9, .now_ms = test_now, .maint_ms = -1};
    uint64_t before[2][GR_TDIGEST_BUCKETS], after[GR_TDIGEST_BUCKETS];
    const char *names[2] = {"dr", "dl"};
    gr_tables *e;
    gr_table *t;
    cat c;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    cfg.data_dir = dir;
    ck_assert_int_eq(gr_tables_new(&cfg, &e), 0);
    for (int i = 0; i < 2; i++) {
        gr_table_opts o = {
            .replicated = i == 0, .durability = GR_TABLE_DISK, .fsync = GR_FSYNC_NEVER};

        ck_assert_int_eq(gr_tables_create(e, names[i], &o), 0);
        ck_assert_int_eq(gr_tables_open(e, names[i], &t), 0);
        hset(t, "h", "a", "1", NULL);
        hset(t, "h", "b", "2", NULL);
        hdel(t, "h", "a");
        hincr(t, "h", "n", 4);
        sadd(t, "s", "x");
        sadd(t, "s", "y");
        srem(t, "s", "x");
        sadd(t, "gone", "z");
        srem(t, "gone", "z");
        ck_assert_int_eq(gr_table_sync(t), 0);
        gr_table_digest(t, before[i]);
        gr_table_close(t);
    }
    gr_tables_free(e);
    for (int pass = 0; pass < 2; pass++) { /* the log; then a snapshot and the log */
        ck_assert_int_eq(gr_tables_new(&cfg, &e), 0);
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(gr_tables_open(e, names[i], &t), 0);
            if (i == 0 && pass == 0) { /* replayed: the state it had */
                gr_table_digest(t, after);
                ck_assert_mem_eq(before[i], after, sizeof(after));
            }
            ck_assert_str_eq(hall(t, "h", &c), "b=2,n=4");
            ck_assert_str_eq(smem(t, "s", &c), "y");
            ck_assert_int_eq(type_of(t, "gone"), GR_TVAL_NONE);
            ck_assert_uint_eq(gr_table_count(t), 2);
            ck_assert_int_eq(hincr(t, "h", "n", 1), 5);
            ck_assert_int_eq(hincr(t, "h", "n", -1), 4);
            if (pass == 0) {
                ck_assert_int_eq(gr_table_snapshot(t), 0);
            }
            gr_table_close(t);
        }
        gr_tables_free(e);
    }
    ck_assert_int_eq(gr_tables_new(&cfg, &e), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(gr_tables_drop(e, names[i]), 0);
    }
    gr_tables_free(e);
    rmdir(dir);
}
END_TEST

START_TEST(test_sweep)
{
    gr_table_info in;
    cat c;

    hset(T[0], "h", "a", "1", NULL);
    hset(T[0], "h", "b", "2", NULL);
    sadd(T[0], "s", "x");
    sadd(T[0], "s", "y");
    gr_test_replicas_sync_all(T, N);
    hdel(T[0], "h", "a");
    srem(T[0], "s", "x");
    sadd(T[0], "e", "z");
    srem(T[0], "e", "z"); /* an emptied set */
    gr_test_replicas_sync_all(T, N);
    same_tables(T[0], T[1]);
    for (int i = 0; i < N; i++) {
        gr_tables_maintain(E[i]); /* too early: nothing goes */
    }
    same_tables(T[0], T[1]);
    gr_table_info_get(T[0], &in);
    ck_assert_uint_eq(in.entries, 2);     /* the emptied set is no entry */
    atomic_fetch_add(&test_clock, 61000); /* past the horizon (tomb_ms) */
    for (int i = 0; i < N; i++) {
        gr_tables_maintain(E[i]);
    }
    same_tables(T[0], T[1]);
    same_tables(T[0], T[2]);
    {
        gr_test_tcopies cs = gr_test_tcopies_walk(T[0]);

        ck_assert_uint_eq(cs.n, 2); /* the emptied set went entirely */
        for (size_t i = 0; i < cs.n; i++) {
            ck_assert_uint_lt(cs.v[i].e.vlen, 80); /* no removed field/record left */
        }
        gr_test_tcopies_free(&cs);
    }
    ck_assert_str_eq(hall(T[2], "h", &c), "b=2");
    ck_assert_str_eq(smem(T[2], "s", &c), "y");
}
END_TEST

/* Anti-entropy with real frames: map and set states travel with their kind. */
START_TEST(test_anti_entropy)
{
    gr_trepl *r = gr_tables_repl(E[0]);
    cat c;

    hset(T[0], "h", "a", "1", NULL);
    sadd(T[0], "s", "x");
    gr_test_wire_offer(&W, 0, 1);
    ck_assert_str_eq(hall(T[1], "h", &c), "a=1");
    hset(T[1], "h", "b", "2", NULL);
    srem(T[1], "s", "x");
    sadd(T[0], "s", "x"); /* concurrent with the remove */
    gr_test_wire_offer(&W, 1, 0);
    gr_test_wire_offer(&W, 0, 1);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(hall(T[i], "h", &c), "a=1,b=2");
        ck_assert_str_eq(smem(T[i], "s", &c), "x");
    }
    same_tables(T[0], T[1]);
    /* the write queue carries the kind too */
    gr_trepl_peer_up(r, NAMES[2]);
    hset(T[0], "q", "f", "v", NULL);
    sadd(T[0], "qs", "m");
    W.from = 0;
    W.to = 2;
    gr_trepl_drain(r, gr_test_wire_emit, &W);
    gr_test_wire_pump(&W);
    ck_assert_str_eq(hall(T[2], "q", &c), "f=v");
    ck_assert_str_eq(smem(T[2], "qs", &c), "m");
}
END_TEST

/* A replica's state is validated: a forged one changes nothing. */
START_TEST(test_bad_state)
{
    gr_test_tcopies cs;
    uint8_t bad[64];

    hset(T[0], "h", "a", "1", NULL);
    cs = gr_test_tcopies_walk(T[0]);
    ck_assert_uint_eq(cs.n, 1);
    memcpy(bad, cs.v[0].e.val, cs.v[0].e.vlen);
    for (size_t cut = 0; cut < cs.v[0].e.vlen; cut++) {
        gr_trent e = cs.v[0].e;

        e.val = bad;
        e.vlen = cut;
        ck_assert_int_lt(gr_table_merge(T[1], &e), 0);
    }
    bad[5 + 24] = 0xff; /* the field's name length */
    {
        gr_trent e = cs.v[0].e;

        e.val = bad;
        ck_assert_int_eq(gr_table_merge(T[1], &e), GR_EBADTERM);
        e.val = cs.v[0].e.val;
        e.crdt = GR_TVAL_SET; /* a map's bytes as a set */
        ck_assert_int_eq(gr_table_merge(T[1], &e), GR_EBADTERM);
    }
    ck_assert_uint_eq(gr_table_count(T[1]), 0);
    gr_test_tcopies_free(&cs);
}
END_TEST

static Suite *crdt_suite(void)
{
    Suite *s = suite_create("tables_crdt");
    TCase *tc = gr_test_tcase(s, "crdt", setup, teardown, 240);

    gr_test_add(tc, test_ops_local, test_ops_replicated, test_map_fields, test_set_add_wins,
                test_merge_laws, test_disk, test_sweep, test_anti_entropy, test_bad_state);
    return s;
}

int main(void)
{
    return gr_test_run(crdt_suite);
}
