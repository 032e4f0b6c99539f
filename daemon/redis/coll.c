/* SPDX-License-Identifier: Apache-2.0 */
/*
 * coll.c - the hash and set commands, on the table engine's mergeable values
 * (docs/tables.md "Maps and sets"): a Redis hash is a map whose fields are
 * last-writer-wins each (HINCRBY keeps a per-node counter in the field, so
 * concurrent increments on several nodes all count); a Redis set is an
 * add-wins set (an SADD concurrent with an SREM of the same member on another
 * node survives). docs/redis.md "Replicated semantics" has the rules.
 *
 * Design notes
 * - Field names and members are the raw bytes of the arguments; a field's
 *   value is stored as store.c encodes a string (gr_redis_enc_str), so HGET
 *   answers exactly what HSET was given and HINCRBY finds integers.
 * - The engine does each write under the key's shard lock: HSET, HDEL, SADD,
 *   SREM and HINCRBY are atomic on a node without a read-modify-write loop.
 *   HSETNX reads then writes (two steps): a concurrent HSET of the same field
 *   on this node between them is overwritten, as documented.
 * - Multi-element replies are collected first (the engine's callbacks run
 *   outside its locks) and written once their count is known.
 *
 * Owning thread: the connection's process (its scheduler); no state here.
 */
#include "redis/redis_int.h"

#include "proto/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char E_OOM[] = "OOM command not allowed when used memory > 'maxmemory'.";

/* Key argv[i] into c->k; false after an error reply. */
static bool key_arg(rconn *c, const rargs *a, int i)
{
    if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return false;
    }
    return true;
}

/* Is key c->k absent or of kind `want`? false after a WRONGTYPE (or other
 * error) reply. */
static bool kind_ok(rconn *c, gr_table *t, gr_tval_kind want)
{
    gr_tval_kind k;
    int r = gr_table_type(t, c->k.p, c->k.len, &k);

    if (r < 0) {
        gr_redis_reply_err(c, r);
        return false;
    }
    if (k != GR_TVAL_NONE && k != want) {
        gr_resp_error(&c->out, GR_REDIS_WRONGTYPE);
        return false;
    }
    return true;
}

/* Reply a field's stored value (a string encoding) as a bulk string. */
static void reply_value(rconn *c, const uint8_t *v, size_t n)
{
    const uint8_t *p;
    size_t len;
    char ib[32];

    if (gr_redis_str(v, n, ib, &p, &len)) {
        gr_resp_bulk(&c->out, p, len);
    } else {
        gr_resp_null(&c->out); /* not written by this front end: not a string */
    }
}

/* ---- collecting fields / members ------------------------------------------------------------ */

/* (name, value) pairs as u32 length + bytes each, in c->v2. */
typedef struct collect {
    rconn *c;
    size_t n; /* entries */
    int what; /* bit 1: names, bit 2: values */
    bool oom;
} collect;

static int put_piece(gr_tbuf *b, const void *p, size_t n)
{
    uint32_t l = (uint32_t)n;

    return gr_tbuf_put(b, &l, 4) < 0 || gr_tbuf_put(b, p, n) < 0 ? -ENOMEM : 0;
}

static int collect_fn(void *ud, const uint8_t *name, size_t nlen, const uint8_t *val, size_t vlen)
{
    collect *k = ud;

    if (((k->what & 1) && put_piece(&k->c->v2, name, nlen) < 0) ||
        ((k->what & 2) &&
         put_piece(&k->c->v2, val ? val : (const uint8_t *)"", val ? vlen : 0) < 0)) {
        k->oom = true;
        return 1;
    }
    k->n++;
    return 0;
}

/* Write the collected pieces: names as bulks, values through reply_value. */
static void reply_collected(rconn *c, const collect *k)
{
    int piece = 0;

    for (size_t off = 0; off < c->v2.len; piece++) {
        uint32_t l;
        bool is_val;

        memcpy(&l, c->v2.p + off, 4);
        is_val = k->what == 2 || (k->what == 3 && (piece & 1));
        if (is_val) {
            reply_value(c, c->v2.p + off + 4, l);
        } else {
            gr_resp_bulk(&c->out, c->v2.p + off + 4, l);
        }
        off += 4 + l;
    }
}

/* ---- hashes --------------------------------------------------------------------------------- */

/* HSET / HMSET (hmset true): fields and values from argv[2..]. */
static void hset_common(rconn *c, const rargs *a, bool hmset)
{
    gr_table *t = gr_redis_db(c);
    size_t n = (size_t)(a->argc - 2) / 2;
    const void **names = NULL, **vals = NULL;
    size_t *nlens = NULL, *vlens = NULL;
    gr_tbuf enc = {0};
    size_t *offs = NULL;
    uint64_t added = 0;
    int r = -ENOMEM;

    if (!t) {
        return;
    }
    if (a->argc % 2 != 0) {
        gr_resp_errorf(&c->out, "ERR wrong number of arguments for '%s' command",
                       hmset ? "hmset" : "hset");
        return;
    }
    if (!key_arg(c, a, 1)) {
        return;
    }
    if ((names = calloc(n, sizeof(*names))) && (vals = calloc(n, sizeof(*vals))) &&
        (nlens = calloc(n, sizeof(*nlens))) && (vlens = calloc(n, sizeof(*vlens))) &&
        (offs = calloc(n, sizeof(*offs)))) {
        r = 0;
        /* encode every value into one buffer first (it may move while growing) */
        for (size_t i = 0; i < n && r == 0; i++) {
            gr_tbuf one = {0};

            offs[i] = enc.len;
            if ((r = gr_redis_enc_str(&one, a->argv[3 + 2 * i], a->argl[3 + 2 * i])) == 0) {
                r = put_piece(&enc, one.p, one.len);
            }
            gr_tbuf_free(&one);
        }
        for (size_t i = 0; i < n && r == 0; i++) {
            uint32_t l;

            memcpy(&l, enc.p + offs[i], 4);
            names[i] = a->argv[2 + 2 * i];
            nlens[i] = a->argl[2 + 2 * i];
            vals[i] = enc.p + offs[i] + 4;
            vlens[i] = l;
        }
        if (r == 0) {
            r = gr_table_map_set(t, c->k.p, c->k.len, n, names, nlens, vals, vlens, &added);
        }
    }
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else if (hmset) {
        gr_resp_simple(&c->out, "OK");
    } else {
        gr_resp_int(&c->out, (int64_t)added);
    }
    free(names);
    free(vals);
    free(nlens);
    free(vlens);
    free(offs);
    gr_tbuf_free(&enc);
}

void gr_redis_cmd_hset(rconn *c, const rargs *a)
{
    hset_common(c, a, false);
}

void gr_redis_cmd_hmset(rconn *c, const rargs *a)
{
    hset_common(c, a, true);
}

void gr_redis_cmd_hsetnx(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    const void *name, *val;
    size_t nlen, vlen;
    uint64_t added = 0;
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    r = gr_table_map_get(t, c->k.p, c->k.len, a->argv[2], a->argl[2], &c->v);
    if (r == 0) {
        gr_resp_int(&c->out, 0);
        return;
    }
    if (r != GR_ENOKEY) {
        gr_redis_reply_err(c, r);
        return;
    }
    if (gr_redis_enc_str(&c->v2, a->argv[3], a->argl[3]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    name = a->argv[2];
    nlen = a->argl[2];
    val = c->v2.p;
    vlen = c->v2.len;
    if ((r = gr_table_map_set(t, c->k.p, c->k.len, 1, &name, &nlen, &val, &vlen, &added)) < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, 1);
    }
}

void gr_redis_cmd_hget(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    r = gr_table_map_get(t, c->k.p, c->k.len, a->argv[2], a->argl[2], &c->v);
    if (r == GR_ENOKEY) {
        gr_resp_null(&c->out);
    } else if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        reply_value(c, c->v.p, c->v.len);
    }
}

void gr_redis_cmd_hmget(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    if (!t || !key_arg(c, a, 1) || !kind_ok(c, t, GR_TVAL_MAP)) {
        return;
    }
    gr_resp_array(&c->out, (size_t)a->argc - 2);
    for (int i = 2; i < a->argc; i++) {
        if (gr_table_map_get(t, c->k.p, c->k.len, a->argv[i], a->argl[i], &c->v) == 0) {
            reply_value(c, c->v.p, c->v.len);
        } else {
            gr_resp_null(&c->out); /* absent, or the key changed kind meanwhile */
        }
    }
}

/* HGETALL (what 3), HKEYS (1), HVALS (2). */
static void hlist(rconn *c, const rargs *a, int what)
{
    gr_table *t = gr_redis_db(c);
    collect k = {.c = c, .what = what};
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    c->v2.len = 0;
    r = gr_table_map_getall(t, c->k.p, c->k.len, collect_fn, &k);
    if (k.oom) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    if (r < 0) {
        gr_redis_reply_err(c, r);
        return;
    }
    if (what == 3) {
        gr_resp_map(&c->out, k.n);
    } else {
        gr_resp_array(&c->out, k.n);
    }
    reply_collected(c, &k);
}

void gr_redis_cmd_hgetall(rconn *c, const rargs *a)
{
    hlist(c, a, 3);
}

void gr_redis_cmd_hkeys(rconn *c, const rargs *a)
{
    hlist(c, a, 1);
}

void gr_redis_cmd_hvals(rconn *c, const rargs *a)
{
    hlist(c, a, 2);
}

/* HDEL key field... and SREM key member...: argv[2..] as a name list. */
static void remove_names(rconn *c, const rargs *a, bool set)
{
    gr_table *t = gr_redis_db(c);
    size_t n = (size_t)a->argc - 2;
    uint64_t removed = 0;
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    r = set ? gr_table_set_rem(t, c->k.p, c->k.len, n, (const void *const *)(a->argv + 2),
                               a->argl + 2, &removed)
            : gr_table_map_del(t, c->k.p, c->k.len, n, (const void *const *)(a->argv + 2),
                               a->argl + 2, &removed);
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, (int64_t)removed);
    }
}

void gr_redis_cmd_hdel(rconn *c, const rargs *a)
{
    remove_names(c, a, false);
}

void gr_redis_cmd_hexists(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    r = gr_table_map_get(t, c->k.p, c->k.len, a->argv[2], a->argl[2], &c->v);
    if (r < 0 && r != GR_ENOKEY) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, r == 0);
    }
}

void gr_redis_cmd_hincrby(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int64_t delta, total;
    int r;

    if (!t) {
        return;
    }
    if (!gr_resp_str2ll(a->argv[3], a->argl[3], &delta)) {
        gr_resp_error(&c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (!key_arg(c, a, 1) || !kind_ok(c, t, GR_TVAL_MAP)) {
        return;
    }
    r = gr_table_map_incr(t, c->k.p, c->k.len, a->argv[2], a->argl[2], delta, &total);
    if (r == GR_EWRONGTYPE) {
        gr_resp_error(&c->out, "ERR hash value is not an integer");
    } else if (r == GR_EBADARG) {
        gr_resp_error(&c->out, "ERR increment or decrement would overflow");
    } else if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, total);
    }
}

void gr_redis_cmd_hlen(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    uint64_t n = 0;
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    if ((r = gr_table_map_len(t, c->k.p, c->k.len, &n)) < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, (int64_t)n);
    }
}

/* ---- sets ----------------------------------------------------------------------------------- */

void gr_redis_cmd_sadd(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    uint64_t added = 0;
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    r = gr_table_set_add(t, c->k.p, c->k.len, (size_t)a->argc - 2,
                         (const void *const *)(a->argv + 2), a->argl + 2, &added);
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, (int64_t)added);
    }
}

void gr_redis_cmd_srem(rconn *c, const rargs *a)
{
    remove_names(c, a, true);
}

void gr_redis_cmd_smembers(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    collect k = {.c = c, .what = 1};
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    c->v2.len = 0;
    r = gr_table_set_members(t, c->k.p, c->k.len, collect_fn, &k);
    if (k.oom) {
        gr_resp_error(&c->out, E_OOM);
    } else if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_set(&c->out, k.n);
        reply_collected(c, &k);
    }
}

void gr_redis_cmd_sismember(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    bool is = false;
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    r = gr_table_set_ismember(t, c->k.p, c->k.len, a->argv[2], a->argl[2], &is);
    if (r < 0 && r != GR_ENOKEY) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, r == 0 && is);
    }
}

void gr_redis_cmd_scard(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    uint64_t n = 0;
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    if ((r = gr_table_set_card(t, c->k.p, c->k.len, &n)) < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, (int64_t)n);
    }
}

/* SPOP key [count]: the engine pops one member at a time (which one is the
 * engine's choice, not random: docs/redis.md). */
void gr_redis_cmd_spop(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int64_t count = 1;
    collect k = {.c = c, .what = 1};
    int r = 0;

    if (!t) {
        return;
    }
    if (a->argc > 3) {
        gr_resp_error(&c->out, "ERR syntax error");
        return;
    }
    if (a->argc == 3 && (!gr_resp_str2ll(a->argv[2], a->argl[2], &count) || count < 0)) {
        gr_resp_error(&c->out, "ERR value is out of range, must be positive");
        return;
    }
    if (!key_arg(c, a, 1) || !kind_ok(c, t, GR_TVAL_SET)) {
        return;
    }
    c->v2.len = 0;
    for (int64_t i = 0; i < count; i++) {
        if ((r = gr_table_set_pop(t, c->k.p, c->k.len, &c->v)) < 0) {
            break;
        }
        if (collect_fn(&k, c->v.p, c->v.len, NULL, 0) != 0) {
            r = -ENOMEM;
            break;
        }
    }
    if (r < 0 && r != GR_ENOKEY) {
        gr_redis_reply_err(c, r); /* members popped before the error are gone */
        return;
    }
    if (a->argc == 3) {
        gr_resp_set(&c->out, k.n);
        reply_collected(c, &k);
    } else if (k.n == 0) {
        gr_resp_null(&c->out);
    } else {
        reply_collected(c, &k);
    }
}

/* ---- keys of any kind ------------------------------------------------------------------------ */

int gr_redis_coll_copy(rconn *c, gr_table *t, gr_tval_kind kind, const void *to, size_t tlen)
{
    collect k = {.c = c, .what = kind == GR_TVAL_MAP ? 3 : 1};
    const void **names = NULL, **vals = NULL;
    size_t *nlens = NULL, *vlens = NULL, i = 0;
    int r;

    c->v2.len = 0;
    r = kind == GR_TVAL_MAP ? gr_table_map_getall(t, c->k.p, c->k.len, collect_fn, &k)
                            : gr_table_set_members(t, c->k.p, c->k.len, collect_fn, &k);
    if (k.oom) {
        return -ENOMEM;
    }
    if (r < 0 || k.n == 0) {
        return r;
    }
    if (!(names = calloc(k.n, sizeof(*names))) || !(nlens = calloc(k.n, sizeof(*nlens))) ||
        !(vals = calloc(k.n, sizeof(*vals))) || !(vlens = calloc(k.n, sizeof(*vlens)))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t off = 0; off < c->v2.len; i++) {
        uint32_t l;

        memcpy(&l, c->v2.p + off, 4);
        names[i] = c->v2.p + off + 4;
        nlens[i] = l;
        off += 4 + l;
        if (kind == GR_TVAL_MAP) {
            memcpy(&l, c->v2.p + off, 4);
            vals[i] = c->v2.p + off + 4;
            vlens[i] = l;
            off += 4 + l;
        }
    }
    r = kind == GR_TVAL_MAP ? gr_table_map_set(t, to, tlen, k.n, names, nlens, vals, vlens, NULL)
                            : gr_table_set_add(t, to, tlen, k.n, names, nlens, NULL);
out:
    free(names);
    free(nlens);
    free(vals);
    free(vlens);
    return r;
}
