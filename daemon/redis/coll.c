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

/* ---- replying collected pieces ---------------------------------------------------- */

void gr_redis_reply_pieces(rconn *c, const rpieces *ps)
{
    for (size_t off = 0; off < ps->b->len;) {
        const uint8_t *p;
        size_t n;

        off = gr_redis_piece_at(ps, off, &p, &n);
        gr_resp_bulk(&c->out, p, n);
    }
}

/* ---- hashes --------------------------------------------------------------------------------- */

#define HSET_STACK 16 /* fields of an HSET served from the stack (no allocation) */

/* HSET / HMSET (hmset true): fields and values from argv[2..]. Values are
 * encoded one after another into c->v (c->v2 for each one first); up to
 * HSET_STACK fields need no allocation. */
static void hset_common(rconn *c, const rargs *a, bool hmset)
{
    gr_table *t = gr_redis_db(c);
    size_t n = (size_t)(a->argc - 2) / 2;
    const void *names_s[HSET_STACK], *vals_s[HSET_STACK];
    size_t nlens_s[HSET_STACK], vlens_s[HSET_STACK], offs_s[HSET_STACK];
    const void **names = names_s, **vals = vals_s;
    size_t *nlens = nlens_s, *vlens = vlens_s, *offs = offs_s;
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
    if (n > HSET_STACK) {
        names = calloc(n, sizeof(*names));
        vals = calloc(n, sizeof(*vals));
        nlens = calloc(n, sizeof(*nlens));
        vlens = calloc(n, sizeof(*vlens));
        offs = calloc(n, sizeof(*offs));
    }
    if (names && vals && nlens && vlens && offs) {
        r = 0;
        c->v.len = 0;
        /* encode every value into one buffer first (it may move while growing) */
        for (size_t i = 0; i < n && r == 0; i++) {
            offs[i] = c->v.len;
            if ((r = gr_redis_enc_str(&c->v2, a->argv[3 + 2 * i], a->argl[3 + 2 * i])) == 0) {
                r = gr_tbuf_put(&c->v, c->v2.p, c->v2.len);
                vlens[i] = c->v2.len;
            }
        }
        for (size_t i = 0; i < n && r == 0; i++) {
            names[i] = a->argv[2 + 2 * i];
            nlens[i] = a->argl[2 + 2 * i];
            vals[i] = c->v.p + offs[i];
        }
        if (r == 0) {
            r = gr_table_map_set_d(&c->dur, t, c->k.p, c->k.len, n, names, nlens, vals, vlens,
                                   &added);
        }
    }
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else if (hmset) {
        gr_resp_simple(&c->out, "OK");
    } else {
        gr_resp_int(&c->out, (int64_t)added);
    }
    if (names != names_s) {
        free(names);
        free(vals);
        free(nlens);
        free(vlens);
        free(offs);
    }
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
    if ((r = gr_table_map_set_d(&c->dur, t, c->k.p, c->k.len, 1, &name, &nlen, &val, &vlen,
                                &added)) < 0) {
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

/* HGETALL (what RP_NAMES | RP_VALUES), HKEYS (RP_NAMES), HVALS (RP_VALUES). */
static void hlist(rconn *c, const rargs *a, int what)
{
    gr_table *t = gr_redis_db(c);
    rpieces k = {.b = &c->v2, .what = what};
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    c->v2.len = 0;
    r = gr_table_map_getall(t, c->k.p, c->k.len, gr_redis_collect_fn, &k);
    if (k.oom) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    if (r < 0) {
        gr_redis_reply_err(c, r);
        return;
    }
    if (what == (RP_NAMES | RP_VALUES)) {
        gr_resp_map(&c->out, k.n);
    } else {
        gr_resp_array(&c->out, k.n);
    }
    gr_redis_reply_pieces(c, &k);
}

void gr_redis_cmd_hgetall(rconn *c, const rargs *a)
{
    hlist(c, a, RP_NAMES | RP_VALUES);
}

void gr_redis_cmd_hkeys(rconn *c, const rargs *a)
{
    hlist(c, a, RP_NAMES);
}

void gr_redis_cmd_hvals(rconn *c, const rargs *a)
{
    hlist(c, a, RP_VALUES);
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
    r = set ? gr_table_set_rem_d(&c->dur, t, c->k.p, c->k.len, n,
                                 (const void *const *)(a->argv + 2), a->argl + 2, &removed)
            : gr_table_map_del_d(&c->dur, t, c->k.p, c->k.len, n,
                                 (const void *const *)(a->argv + 2), a->argl + 2, &removed);
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
    r = gr_table_map_incr_d(&c->dur, t, c->k.p, c->k.len, a->argv[2], a->argl[2], delta, &total);
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
    r = gr_table_set_add_d(&c->dur, t, c->k.p, c->k.len, (size_t)a->argc - 2,
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
    rpieces k = {.b = &c->v2, .what = RP_NAMES};
    int r;

    if (!t || !key_arg(c, a, 1)) {
        return;
    }
    c->v2.len = 0;
    r = gr_table_set_members(t, c->k.p, c->k.len, gr_redis_collect_fn, &k);
    if (k.oom) {
        gr_resp_error(&c->out, E_OOM);
    } else if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_set(&c->out, k.n);
        gr_redis_reply_pieces(c, &k);
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

/* SPOP key [count]: members chosen at random (arc4random) among the set
 * read whole (O(size)), each removed with SREM's add-wins remove; under the
 * key's stripe, so two SPOPs on this node never hand out the same member. */
void gr_redis_cmd_spop(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int64_t count = 1;
    rpieces all = {.b = &c->v2, .what = RP_NAMES}, out = {.b = &c->v};
    const uint8_t **items = NULL;
    size_t *lens = NULL;
    pthread_mutex_t *mu;
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
    mu = gr_redis_klock(c->srv, c->db, a->argv[1], a->argl[1]);
    pthread_mutex_lock(mu);
    c->v2.len = 0;
    c->v.len = 0;
    r = count > 0 ? gr_table_set_members(t, c->k.p, c->k.len, gr_redis_collect_fn, &all) : 0;
    if (all.oom) {
        r = -ENOMEM;
    }
    if (r == 0 && all.n > 0 &&
        (!(items = calloc(all.n, sizeof(*items))) || !(lens = calloc(all.n, sizeof(*lens))))) {
        r = -ENOMEM;
    }
    for (size_t i = 0, off = 0; r == 0 && i < all.n; i++) {
        off = gr_redis_piece_at(&all, off, &items[i], &lens[i]);
    }
    /* a partial Fisher-Yates shuffle picks the first `count` */
    for (size_t i = 0; r == 0 && i < all.n && (uint64_t)i < (uint64_t)count; i++) {
        size_t j = i + arc4random_uniform((uint32_t)(all.n - i));
        const uint8_t *p = items[j];
        size_t l = lens[j];
        uint64_t removed = 0;

        items[j] = items[i];
        lens[j] = lens[i];
        items[i] = p;
        lens[i] = l;
        if ((r = gr_table_set_rem_d(&c->dur, t, c->k.p, c->k.len, 1, (const void *const *)&p, &l,
                                    &removed)) == 0 &&
            removed == 1 && gr_redis_piece_put(&out, p, l) == 0) {
            out.n++;
        }
        r = out.oom ? -ENOMEM : r;
    }
    pthread_mutex_unlock(mu);
    free(items);
    free(lens);
    if (r < 0) {
        gr_redis_reply_err(c, r); /* members popped before the error are gone */
        return;
    }
    if (a->argc == 3) {
        gr_resp_set(&c->out, out.n);
        gr_redis_reply_pieces(c, &out);
    } else if (out.n == 0) {
        gr_resp_null(&c->out);
    } else {
        gr_redis_reply_pieces(c, &out);
    }
}

/* ---- keys of any kind ------------------------------------------------------------------------ */

int gr_redis_coll_copy(rconn *c, gr_table *t, gr_tval_kind kind, const void *to, size_t tlen)
{
    rpieces k = {.b = &c->v2,
                 .what = kind == GR_TVAL_MAP ? RP_NAMES | RP_VALUES | RP_RAW : RP_NAMES};
    const void **names = NULL, **vals = NULL;
    size_t *nlens = NULL, *vlens = NULL, i = 0;
    int r;

    c->v2.len = 0;
    r = kind == GR_TVAL_MAP ? gr_table_map_getall(t, c->k.p, c->k.len, gr_redis_collect_fn, &k)
                            : gr_table_set_members(t, c->k.p, c->k.len, gr_redis_collect_fn, &k);
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
        const uint8_t *p;

        off = gr_redis_piece_at(&k, off, &p, &nlens[i]);
        names[i] = p;
        if (kind == GR_TVAL_MAP) {
            off = gr_redis_piece_at(&k, off, &p, &vlens[i]);
            vals[i] = p;
        }
    }
    r = kind == GR_TVAL_MAP
            ? gr_table_map_set_d(&c->dur, t, to, tlen, k.n, names, nlens, vals, vlens, NULL)
            : gr_table_set_add_d(&c->dur, t, to, tlen, k.n, names, nlens, NULL);
out:
    free(names);
    free(nlens);
    free(vals);
    free(vlens);
    return r;
}
