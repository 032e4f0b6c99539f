/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmds.c - the command table and the data commands on strings and keys, on
 * the selected database's table (store.c has the encoding; coll.c the hash
 * and set commands).
 *
 * Design notes
 * - Read-modify-write commands (SET with XX/GET/KEEPTTL, APPEND,
 *   INCRBYFLOAT, EXPIRE, PERSIST, RENAME) read the
 *   entry and its version, build the new value, and put it with the table's
 *   compare-and-swap on that version; a write that raced them on this node
 *   makes the CAS fail and the command starts again (up to RMW_TRIES). On one
 *   node that makes each of them atomic; across nodes the table's
 *   last-writer-wins decides (docs/redis.md, "Replicated semantics").
 * - INCR, INCRBY, DECR, DECRBY are the table's counter increment, which keeps
 *   one component per node: increments made concurrently on several nodes
 *   all count.
 * - A TTL is the entry's absolute expiry. A rewrite keeps it by passing the
 *   time left; Redis's commands that clear it (SET, GETSET) pass none.
 */
#include "redis/redis_int.h"

#include "proto/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RMW_TRIES 100

static const char E_INT[] = "ERR value is not an integer or out of range";
static const char E_SYNTAX[] = "ERR syntax error";
static const char E_OOM[] = "OOM command not allowed when used memory > 'maxmemory'.";

void gr_redis_reply_err(rconn *c, int r)
{
    switch (r) {
    case GR_EWRONGTYPE:
        gr_resp_error(&c->out, GR_REDIS_WRONGTYPE);
        break;
    case GR_EFULL:
    case -ENOMEM:
        gr_resp_error(&c->out, E_OOM);
        break;
    case GR_ETOOBIG:
        gr_resp_error(&c->out, "ERR string exceeds maximum allowed size");
        break;
    case GR_ECASMISMATCH:
        gr_resp_error(&c->out, "ERR the key kept changing under this command; try again");
        break;
    default:
        gr_resp_errorf(&c->out, "ERR %s", gr_strerror(r));
        break;
    }
}

static bool arg_is(const rargs *a, int i, const char *s)
{
    return i < a->argc && a->argl[i] == strlen(s) && strncasecmp(a->argv[i], s, a->argl[i]) == 0;
}

static bool arg_int(const rargs *a, int i, int64_t *ret)
{
    return gr_resp_str2ll(a->argv[i], a->argl[i], ret);
}

/* ---- read-modify-write --------------------------------------------------------------------- */

typedef struct rmw {
    gr_tmeta meta;
    bool found;
} rmw;

/* Read key argv[i] into c->v (c->k: its table key). 0 (m->found says if it
 * exists) or an error (replied). */
static int load(rconn *c, gr_table *t, const rargs *a, int i, rmw *m)
{
    int r;

    if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return -ENOMEM;
    }
    r = gr_table_get(t, c->k.p, c->k.len, &c->v, &m->meta);
    m->found = r == 0;
    if (r == GR_ENOKEY) {
        c->v.len = 0;
        return 0;
    }
    if (r < 0) {
        gr_redis_reply_err(c, r);
    }
    return r;
}

/* The kind of key argv[i] when it is a hash or a set (coll.c), else
 * GR_TVAL_NONE (absent, a string or another term: load() handles those).
 * Leaves the key in c->k. */
static gr_tval_kind coll_kind(rconn *c, gr_table *t, const rargs *a, int i)
{
    gr_tval_kind k = GR_TVAL_NONE;

    if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) < 0 ||
        gr_table_type(t, c->k.p, c->k.len, &k) < 0) {
        return GR_TVAL_NONE;
    }
    return k == GR_TVAL_MAP || k == GR_TVAL_SET ? k : GR_TVAL_NONE;
}

/* Time left of the loaded entry, for a rewrite that keeps it (0: none). */
static uint64_t ttl_left(rconn *c, const rmw *m)
{
    uint64_t now = gr_tables_now_ms(c->srv->tables);

    if (!m->found || m->meta.expire_ms == 0) {
        return 0;
    }
    return m->meta.expire_ms > now ? m->meta.expire_ms - now : 1;
}

/* Put val over the loaded entry (CAS on its version). ttl_ms 0: no expiry. */
static int store(rconn *c, gr_table *t, const rmw *m, const gr_tbuf *val, uint64_t ttl_ms)
{
    gr_tput how = {.flags = GR_TPUT_CAS | GR_TPUT_TTL,
                   .version = m->found ? m->meta.version : 0,
                   .ttl_ms = ttl_ms};

    return gr_table_put(t, c->k.p, c->k.len, val->p, val->len, &how, NULL);
}

static int del_loaded(rconn *c, gr_table *t, const rmw *m)
{
    int r = gr_table_del(t, c->k.p, c->k.len, m->meta.version);

    return r == GR_ENOKEY ? 0 : r;
}

/* The loaded value as a string; false (WRONGTYPE replied) if it is not one. */
static bool loaded_str(rconn *c, char ibuf[32], const uint8_t **p, size_t *n)
{
    if (!gr_redis_str(c->v.p, c->v.len, ibuf, p, n)) {
        gr_resp_error(&c->out, GR_REDIS_WRONGTYPE);
        return false;
    }
    return true;
}

/* ---- strings ---------------------------------------------------------------------------- */

static void cmd_get(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    const uint8_t *p;
    size_t n;
    char ib[32];
    rmw m;

    if (!t || load(c, t, a, 1, &m) < 0) {
        return;
    }
    if (!m.found) {
        atomic_fetch_add_explicit(&c->srv->misses, 1, memory_order_relaxed);
        gr_resp_null(&c->out);
        return;
    }
    atomic_fetch_add_explicit(&c->srv->hits, 1, memory_order_relaxed);
    if (loaded_str(c, ib, &p, &n)) {
        gr_resp_bulk(&c->out, p, n);
    }
}

/* SET's options. */
typedef struct setopts {
    bool nx, xx, get, keepttl;
    uint64_t ttl_ms; /* 0: none */
} setopts;

/* An expiry argument in seconds (ms false) or ms, relative or absolute (at),
 * as a TTL in ms from now; false after an error reply. */
static bool expire_arg(rconn *c, const rargs *a, int i, bool ms, bool at, const char *cmd,
                       int64_t *ret_ttl)
{
    int64_t v, now = (int64_t)gr_tables_now_ms(c->srv->tables);

    if (!arg_int(a, i, &v)) {
        gr_resp_error(&c->out, E_INT);
        return false;
    }
    if ((!ms && (v > INT64_MAX / 1000 || v < INT64_MIN / 1000)) ||
        (!at && v > 0 && (ms ? v : v * 1000) > INT64_MAX - now)) {
        gr_resp_errorf(&c->out, "ERR invalid expire time in '%s' command", cmd);
        return false;
    }
    v = ms ? v : v * 1000;
    *ret_ttl = at ? v - now : v;
    return true;
}

static void do_set(rconn *c, const rargs *a, int kidx, const char *val, size_t vlen,
                   const setopts *o)
{
    gr_table *t = gr_redis_db(c);
    int r;

    if (!t) {
        return;
    }
    if (gr_redis_enc_str(&c->v2, val, vlen) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    if (!o->xx && !o->get && !o->keepttl) { /* one put */
        gr_tput how = {.flags = GR_TPUT_TTL | (o->nx ? GR_TPUT_IF_ABSENT : 0), .ttl_ms = o->ttl_ms};

        if (gr_redis_key(&c->k, a->argv[kidx], a->argl[kidx]) < 0) {
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        r = gr_table_put(t, c->k.p, c->k.len, c->v2.p, c->v2.len, &how, NULL);
        if (r == GR_EKEYEXISTS) {
            gr_resp_null(&c->out);
        } else if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_simple(&c->out, "OK");
        }
        return;
    }
    for (int tries = 0; tries < RMW_TRIES; tries++) {
        const uint8_t *op = NULL;
        size_t on = 0;
        char ib[32];
        rmw m;

        if (load(c, t, a, kidx, &m) < 0) {
            return;
        }
        if (m.found && o->get && !loaded_str(c, ib, &op, &on)) {
            return;
        }
        if ((o->xx && !m.found) || (o->nx && m.found)) {
            if (o->get && m.found) {
                gr_resp_bulk(&c->out, op, on);
            } else {
                gr_resp_null(&c->out);
            }
            return;
        }
        r = store(c, t, &m, &c->v2, o->keepttl ? ttl_left(c, &m) : o->ttl_ms);
        if (r == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else if (o->get) {
            if (m.found) {
                gr_resp_bulk(&c->out, op, on);
            } else {
                gr_resp_null(&c->out);
            }
        } else {
            gr_resp_simple(&c->out, "OK");
        }
        return;
    }
    gr_redis_reply_err(c, GR_ECASMISMATCH);
}

static void cmd_set(rconn *c, const rargs *a)
{
    setopts o = {0};
    bool has_exp = false;

    for (int i = 3; i < a->argc; i++) {
        bool ex = arg_is(a, i, "EX"), px = arg_is(a, i, "PX"), exat = arg_is(a, i, "EXAT"),
             pxat = arg_is(a, i, "PXAT");
        int64_t ttl;

        if (arg_is(a, i, "NX") && !o.xx) {
            o.nx = true;
        } else if (arg_is(a, i, "XX") && !o.nx) {
            o.xx = true;
        } else if (arg_is(a, i, "GET")) {
            o.get = true;
        } else if (arg_is(a, i, "KEEPTTL") && !has_exp) {
            o.keepttl = true;
        } else if ((ex || px || exat || pxat) && !has_exp && !o.keepttl && i + 1 < a->argc) {
            if (!expire_arg(c, a, i + 1, px || pxat, exat || pxat, "set", &ttl)) {
                return;
            }
            {
                int64_t raw;

                arg_int(a, i + 1, &raw);
                if (raw <= 0) {
                    gr_resp_error(&c->out, "ERR invalid expire time in 'set' command");
                    return;
                }
            }
            o.ttl_ms = ttl > 0 ? (uint64_t)ttl : 1;
            has_exp = true;
            i++;
        } else {
            gr_resp_error(&c->out, E_SYNTAX);
            return;
        }
    }
    do_set(c, a, 1, a->argv[2], a->argl[2], &o);
}

static void cmd_setnx(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    gr_tput how = {.flags = GR_TPUT_IF_ABSENT | GR_TPUT_TTL};
    int r;

    if (!t) {
        return;
    }
    if (gr_redis_key(&c->k, a->argv[1], a->argl[1]) < 0 ||
        gr_redis_enc_str(&c->v2, a->argv[2], a->argl[2]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    r = gr_table_put(t, c->k.p, c->k.len, c->v2.p, c->v2.len, &how, NULL);
    if (r == GR_EKEYEXISTS) {
        gr_resp_int(&c->out, 0);
    } else if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, 1);
    }
}

static void setex_common(rconn *c, const rargs *a, bool ms)
{
    setopts o = {0};
    int64_t raw, ttl;

    if (!arg_int(a, 2, &raw)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    if (raw <= 0) {
        gr_resp_errorf(&c->out, "ERR invalid expire time in '%s' command", ms ? "psetex" : "setex");
        return;
    }
    if (!expire_arg(c, a, 2, ms, false, ms ? "psetex" : "setex", &ttl)) {
        return;
    }
    o.ttl_ms = (uint64_t)ttl;
    do_set(c, a, 1, a->argv[3], a->argl[3], &o);
}

static void cmd_setex(rconn *c, const rargs *a)
{
    setex_common(c, a, false);
}

static void cmd_psetex(rconn *c, const rargs *a)
{
    setex_common(c, a, true);
}

static void cmd_getset(rconn *c, const rargs *a)
{
    setopts o = {.get = true};

    do_set(c, a, 1, a->argv[2], a->argl[2], &o);
}

static void cmd_getdel(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    for (int tries = 0; t && tries < RMW_TRIES; tries++) {
        const uint8_t *p;
        size_t n;
        char ib[32];
        rmw m;
        int r;

        if (load(c, t, a, 1, &m) < 0) {
            return;
        }
        if (!m.found) {
            gr_resp_null(&c->out);
            return;
        }
        if (!loaded_str(c, ib, &p, &n)) {
            return;
        }
        if ((r = gr_table_del(t, c->k.p, c->k.len, m.meta.version)) == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0 && r != GR_ENOKEY) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_bulk(&c->out, p, n);
        }
        return;
    }
    if (t) {
        gr_redis_reply_err(c, GR_ECASMISMATCH);
    }
}

static void cmd_mget(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    if (!t) {
        return;
    }
    gr_resp_array(&c->out, (size_t)a->argc - 1);
    for (int i = 1; i < a->argc; i++) {
        const uint8_t *p;
        size_t n;
        char ib[32];
        rmw m;

        if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) < 0 ||
            gr_table_get(t, c->k.p, c->k.len, &c->v, &m.meta) < 0 ||
            !gr_redis_str(c->v.p, c->v.len, ib, &p, &n)) {
            gr_resp_null(&c->out);
        } else {
            gr_resp_bulk(&c->out, p, n);
        }
    }
}

static void cmd_mset(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    gr_tput how = {.flags = GR_TPUT_TTL};

    if (!t) {
        return;
    }
    if (a->argc % 2 == 0) {
        gr_resp_error(&c->out, "ERR wrong number of arguments for 'mset' command");
        return;
    }
    for (int i = 1; i < a->argc; i += 2) {
        int r;

        if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) < 0 ||
            gr_redis_enc_str(&c->v2, a->argv[i + 1], a->argl[i + 1]) < 0) {
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        if ((r = gr_table_put(t, c->k.p, c->k.len, c->v2.p, c->v2.len, &how, NULL)) < 0) {
            gr_redis_reply_err(c, r);
            return;
        }
    }
    gr_resp_simple(&c->out, "OK");
}

static void cmd_append(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    for (int tries = 0; t && tries < RMW_TRIES; tries++) {
        const uint8_t *p = NULL;
        size_t n = 0;
        char ib[32];
        uint8_t *cat;
        rmw m;
        int r;

        if (load(c, t, a, 1, &m) < 0 || (m.found && !loaded_str(c, ib, &p, &n))) {
            return;
        }
        if (n + a->argl[2] > GR_RESP_MAX_BULK_DEFAULT) {
            gr_resp_error(&c->out, "ERR string exceeds maximum allowed size");
            return;
        }
        if (!(cat = malloc(n + a->argl[2] + 1))) {
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        if (n) {
            memcpy(cat, p, n);
        }
        memcpy(cat + n, a->argv[2], a->argl[2]);
        r = gr_redis_enc_str(&c->v2, cat, n + a->argl[2]);
        free(cat);
        if (r < 0) {
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        if ((r = store(c, t, &m, &c->v2, ttl_left(c, &m))) == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_int(&c->out, (int64_t)(n + a->argl[2]));
        }
        return;
    }
    if (t) {
        gr_redis_reply_err(c, GR_ECASMISMATCH);
    }
}

static void cmd_strlen(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    const uint8_t *p;
    size_t n;
    char ib[32];
    rmw m;

    if (!t || load(c, t, a, 1, &m) < 0) {
        return;
    }
    if (!m.found) {
        gr_resp_int(&c->out, 0);
    } else if (loaded_str(c, ib, &p, &n)) {
        gr_resp_int(&c->out, (int64_t)n);
    }
}

static void incr_by(rconn *c, const rargs *a, int64_t delta)
{
    gr_table *t = gr_redis_db(c);
    int64_t total;
    int r;

    if (!t) {
        return;
    }
    if (gr_redis_key(&c->k, a->argv[1], a->argl[1]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    r = gr_table_incr(t, c->k.p, c->k.len, delta, &total);
    if (r == 0) {
        gr_resp_int(&c->out, total);
    } else if (r == GR_EBADARG) {
        gr_resp_error(&c->out, "ERR increment or decrement would overflow");
    } else if (r == GR_EWRONGTYPE) {
        /* a string that is not an integer, or another type */
        gr_tmeta meta;
        int g = gr_table_get(t, c->k.p, c->k.len, &c->v, &meta);

        if (g == GR_EWRONGTYPE || (g == 0 && gr_redis_type(c->v.p, c->v.len) != RT_STRING)) {
            gr_resp_error(&c->out, GR_REDIS_WRONGTYPE);
        } else {
            gr_resp_error(&c->out, E_INT);
        }
    } else {
        gr_redis_reply_err(c, r);
    }
}

static void cmd_incr(rconn *c, const rargs *a)
{
    incr_by(c, a, 1);
}

static void cmd_decr(rconn *c, const rargs *a)
{
    incr_by(c, a, -1);
}

static void cmd_incrby(rconn *c, const rargs *a)
{
    int64_t d;

    if (!arg_int(a, 2, &d)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    incr_by(c, a, d);
}

static void cmd_decrby(rconn *c, const rargs *a)
{
    int64_t d;

    if (!arg_int(a, 2, &d)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    if (d == INT64_MIN) {
        gr_resp_error(&c->out, "ERR decrement would overflow");
        return;
    }
    incr_by(c, a, -d);
}

/* A Redis float argument: strtold over the whole string, not NaN. */
static bool parse_ld(const char *s, size_t n, long double *ret)
{
    char buf[128];
    char *end;

    if (n == 0 || n >= sizeof(buf) || (n && (s[0] == ' ' || s[n - 1] == ' '))) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *ret = strtold(buf, &end);
    return *end == '\0' && errno != ERANGE && !isnan(*ret);
}

static void cmd_incrbyfloat(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    long double incr;

    if (!parse_ld(a->argv[2], a->argl[2], &incr)) {
        gr_resp_error(&c->out, "ERR value is not a valid float");
        return;
    }
    for (int tries = 0; t && tries < RMW_TRIES; tries++) {
        long double v = 0;
        const uint8_t *p;
        size_t n;
        char ib[32], out[128];
        rmw m;
        int r;

        if (load(c, t, a, 1, &m) < 0) {
            return;
        }
        if (m.found) {
            if (!loaded_str(c, ib, &p, &n)) {
                return;
            }
            if (!parse_ld((const char *)p, n, &v)) {
                gr_resp_error(&c->out, "ERR value is not a valid float");
                return;
            }
        }
        v += incr;
        if (isnan(v) || isinf(v)) {
            gr_resp_error(&c->out, "ERR increment would produce NaN or Infinity");
            return;
        }
        n = gr_resp_fmt_double(out, sizeof(out), v);
        if (gr_redis_enc_str(&c->v2, out, n) < 0) {
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        if ((r = store(c, t, &m, &c->v2, ttl_left(c, &m))) == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_bulk(&c->out, out, n);
        }
        return;
    }
    if (t) {
        gr_redis_reply_err(c, GR_ECASMISMATCH);
    }
}

/* ---- keys ------------------------------------------------------------------------------- */

static void cmd_del(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int64_t n = 0;

    if (!t) {
        return;
    }
    for (int i = 1; i < a->argc; i++) {
        if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) == 0 &&
            gr_table_del(t, c->k.p, c->k.len, 0) == 0) {
            n++;
        }
    }
    gr_resp_int(&c->out, n);
}

static void cmd_exists(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    int64_t n = 0;

    if (!t) {
        return;
    }
    for (int i = 1; i < a->argc; i++) {
        gr_tmeta meta;

        if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) == 0 &&
            (gr_table_get(t, c->k.p, c->k.len, &c->v, &meta) == 0 ||
             coll_kind(c, t, a, i) != GR_TVAL_NONE)) {
            n++;
        }
    }
    gr_resp_int(&c->out, n);
}

static void expire_common(rconn *c, const rargs *a, bool ms, bool at, const char *name)
{
    gr_table *t = gr_redis_db(c);
    bool nx = false, xx = false, gt = false, lt = false;
    int64_t ttl;

    if (!t) {
        return;
    }
    for (int i = 3; i < a->argc; i++) {
        if (arg_is(a, i, "NX")) {
            nx = true;
        } else if (arg_is(a, i, "XX")) {
            xx = true;
        } else if (arg_is(a, i, "GT")) {
            gt = true;
        } else if (arg_is(a, i, "LT")) {
            lt = true;
        } else {
            gr_resp_errorf(&c->out, "ERR Unsupported option %.*s", (int)a->argl[i], a->argv[i]);
            return;
        }
    }
    if (nx && (xx || gt || lt)) {
        gr_resp_error(&c->out, "ERR NX and XX, GT or LT options at the same time are not "
                               "compatible");
        return;
    }
    if (gt && lt) {
        gr_resp_error(&c->out, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    if (!expire_arg(c, a, 2, ms, at, name, &ttl)) {
        return;
    }
    if (coll_kind(c, t, a, 1) != GR_TVAL_NONE) {
        gr_resp_errorf(&c->out,
                       "ERR '%s' on a hash or a set is not supported by Girder yet "
                       "(docs/redis.md)",
                       name);
        return;
    }
    for (int tries = 0; tries < RMW_TRIES; tries++) {
        uint64_t now = gr_tables_now_ms(c->srv->tables), cur;
        rmw m;
        int r;

        if (load(c, t, a, 1, &m) < 0) {
            return;
        }
        if (!m.found) {
            gr_resp_int(&c->out, 0);
            return;
        }
        cur = m.meta.expire_ms; /* 0: none (an infinite TTL for GT/LT) */
        if ((nx && cur) || (xx && !cur) ||
            (gt && (!cur || now + (uint64_t)(ttl > 0 ? ttl : 0) <= cur)) ||
            (lt && cur && now + (uint64_t)(ttl > 0 ? ttl : 0) >= cur)) {
            gr_resp_int(&c->out, 0);
            return;
        }
        if (ttl <= 0) {
            r = del_loaded(c, t, &m);
        } else {
            r = store(c, t, &m, &c->v, (uint64_t)ttl);
        }
        if (r == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_int(&c->out, 1);
        }
        return;
    }
    gr_redis_reply_err(c, GR_ECASMISMATCH);
}

static void cmd_expire(rconn *c, const rargs *a)
{
    expire_common(c, a, false, false, "expire");
}

static void cmd_pexpire(rconn *c, const rargs *a)
{
    expire_common(c, a, true, false, "pexpire");
}

static void cmd_expireat(rconn *c, const rargs *a)
{
    expire_common(c, a, false, true, "expireat");
}

static void cmd_pexpireat(rconn *c, const rargs *a)
{
    expire_common(c, a, true, true, "pexpireat");
}

static void ttl_common(rconn *c, const rargs *a, bool ms)
{
    gr_table *t = gr_redis_db(c);
    uint64_t now;
    rmw m;

    if (!t) {
        return;
    }
    if (coll_kind(c, t, a, 1) != GR_TVAL_NONE) {
        gr_resp_int(&c->out, -1); /* hashes and sets do not expire */
        return;
    }
    if (load(c, t, a, 1, &m) < 0) {
        return;
    }
    now = gr_tables_now_ms(c->srv->tables);
    if (!m.found) {
        gr_resp_int(&c->out, -2);
    } else if (m.meta.expire_ms == 0) {
        gr_resp_int(&c->out, -1);
    } else {
        uint64_t left = m.meta.expire_ms > now ? m.meta.expire_ms - now : 0;

        gr_resp_int(&c->out, (int64_t)(ms ? left : (left + 500) / 1000));
    }
}

static void cmd_ttl(rconn *c, const rargs *a)
{
    ttl_common(c, a, false);
}

static void cmd_pttl(rconn *c, const rargs *a)
{
    ttl_common(c, a, true);
}

static void cmd_persist(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    if (t && coll_kind(c, t, a, 1) != GR_TVAL_NONE) {
        gr_resp_int(&c->out, 0); /* hashes and sets have no TTL to remove */
        return;
    }
    for (int tries = 0; t && tries < RMW_TRIES; tries++) {
        rmw m;
        int r;

        if (load(c, t, a, 1, &m) < 0) {
            return;
        }
        if (!m.found || m.meta.expire_ms == 0) {
            gr_resp_int(&c->out, 0);
            return;
        }
        if ((r = store(c, t, &m, &c->v, 0)) == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_int(&c->out, 1);
        }
        return;
    }
    if (t) {
        gr_redis_reply_err(c, GR_ECASMISMATCH);
    }
}

static const char *type_name(rtype ty)
{
    switch (ty) {
    case RT_STRING:
        return "string";
    case RT_HASH:
        return "hash";
    case RT_SET:
        return "set";
    case RT_NONE:
        return "none";
    default:
        return "girder-term";
    }
}

static void cmd_type(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    rmw m;

    gr_tval_kind k;

    if (!t) {
        return;
    }
    if ((k = coll_kind(c, t, a, 1)) != GR_TVAL_NONE) {
        gr_resp_simple(&c->out, k == GR_TVAL_MAP ? "hash" : "set");
        return;
    }
    if (load(c, t, a, 1, &m) < 0) {
        return;
    }
    gr_resp_simple(&c->out, m.found ? type_name(gr_redis_type(c->v.p, c->v.len)) : "none");
}

/* RENAME of a hash or set: copy its live fields / members to the new key
 * (replacing what was there), then delete the old key. Not atomic: a write to
 * the old key between the copy and the delete is lost (docs/redis.md). */
static void rename_coll(rconn *c, gr_table *t, const rargs *a, gr_tval_kind kind)
{
    gr_tbuf to = {0};
    int r;

    if (a->argl[1] == a->argl[2] && memcmp(a->argv[1], a->argv[2], a->argl[1]) == 0) {
        gr_resp_simple(&c->out, "OK");
        return;
    }
    if (gr_redis_key(&to, a->argv[2], a->argl[2]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    r = gr_table_del(t, to.p, to.len, 0);
    if (r == 0 || r == GR_ENOKEY) {
        r = gr_redis_coll_copy(c, t, kind, to.p, to.len);
    }
    if (r == 0) {
        r = gr_table_del(t, c->k.p, c->k.len, 0);
        r = r == GR_ENOKEY ? 0 : r;
    }
    gr_tbuf_free(&to);
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_simple(&c->out, "OK");
    }
}

static void cmd_rename(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    gr_tval_kind kind;

    if (t && (kind = coll_kind(c, t, a, 1)) != GR_TVAL_NONE) {
        rename_coll(c, t, a, kind);
        return;
    }
    for (int tries = 0; t && tries < RMW_TRIES; tries++) {
        gr_tput how = {.flags = GR_TPUT_TTL};
        rmw m;
        int r;

        if (load(c, t, a, 1, &m) < 0) {
            return;
        }
        if (!m.found) {
            gr_resp_error(&c->out, "ERR no such key");
            return;
        }
        if (a->argl[1] == a->argl[2] && memcmp(a->argv[1], a->argv[2], a->argl[1]) == 0) {
            gr_resp_simple(&c->out, "OK");
            return;
        }
        how.ttl_ms = ttl_left(c, &m);
        if ((r = gr_table_del(t, c->k.p, c->k.len, m.meta.version)) == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0 && r != GR_ENOKEY) {
            gr_redis_reply_err(c, r);
            return;
        }
        if (gr_redis_key(&c->k, a->argv[2], a->argl[2]) < 0) {
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        if ((r = gr_table_put(t, c->k.p, c->k.len, c->v.p, c->v.len, &how, NULL)) < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_simple(&c->out, "OK");
        }
        return;
    }
    if (t) {
        gr_redis_reply_err(c, GR_ECASMISMATCH);
    }
}

/* KEYS and SCAN: matching keys of a page, collected as (len, bytes). */
typedef struct kscan {
    const char *pat;
    size_t patl;
    int type; /* -1: any */
    gr_tbuf keys;
    size_t n;
    bool oom;
} kscan;

static int scan_fn(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   const gr_tmeta *meta)
{
    kscan *ks = ud;
    const uint8_t *p;
    size_t n;
    uint32_t l;

    if (!gr_redis_key_bytes(key, klen, &p, &n) ||
        (ks->pat && !gr_resp_glob(ks->pat, ks->patl, (const char *)p, n, false)) ||
        (ks->type >= 0 &&
         (int)(meta->kind == GR_TVAL_MAP   ? RT_HASH
               : meta->kind == GR_TVAL_SET ? RT_SET
                                           : gr_redis_type(val, vlen)) != ks->type)) {
        return 0;
    }
    if (ks->keys.cap - ks->keys.len < n + 4) {
        size_t nc = (ks->keys.cap + n + 4) * 2;
        uint8_t *np = realloc(ks->keys.p, nc);

        if (!np) {
            ks->oom = true;
            return 1;
        }
        ks->keys.p = np;
        ks->keys.cap = nc;
    }
    l = (uint32_t)n;
    memcpy(ks->keys.p + ks->keys.len, &l, 4);
    memcpy(ks->keys.p + ks->keys.len + 4, p, n);
    ks->keys.len += n + 4;
    ks->n++;
    return 0;
}

static void reply_keys(rconn *c, const kscan *ks)
{
    gr_resp_array(&c->out, ks->n);
    for (size_t off = 0; off < ks->keys.len;) {
        uint32_t l;

        memcpy(&l, ks->keys.p + off, 4);
        gr_resp_bulk(&c->out, ks->keys.p + off + 4, l);
        off += 4 + l;
    }
}

static void cmd_keys(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    kscan ks = {.pat = a->argv[1], .patl = a->argl[1], .type = -1};
    gr_tbuf cur = {0}, next = {0};
    bool all = a->argl[1] == 1 && a->argv[1][0] == '*';
    int r = 0;

    if (!t) {
        return;
    }
    if (all) {
        ks.pat = NULL;
    }
    for (;;) {
        gr_tscan req = {.cursor = cur.len ? cur.p : NULL, .cursor_len = cur.len, .limit = 10000};
        gr_tbuf tmp;

        if ((r = gr_table_scan(t, &req, scan_fn, &ks, &next)) < 0 || ks.oom || next.len == 0) {
            break;
        }
        tmp = cur;
        cur = next;
        next = tmp;
    }
    if (r < 0 || ks.oom) {
        gr_redis_reply_err(c, r < 0 ? r : -ENOMEM);
    } else {
        reply_keys(c, &ks);
    }
    gr_tbuf_free(&cur);
    gr_tbuf_free(&next);
    gr_tbuf_free(&ks.keys);
}

static void cmd_scan(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    kscan ks = {.type = -1};
    gr_tbuf cur = {0}, next = {0};
    uint64_t id = 0;
    int64_t count = 10;
    char idb[24];
    int r;

    if (!t) {
        return;
    }
    for (size_t i = 0; i < a->argl[1]; i++) {
        if (a->argv[1][i] < '0' || a->argv[1][i] > '9' || a->argl[1] > 20) {
            gr_resp_error(&c->out, "ERR invalid cursor");
            return;
        }
        id = id * 10 + (uint64_t)(a->argv[1][i] - '0');
    }
    for (int i = 2; i < a->argc; i += 2) {
        if (i + 1 >= a->argc) {
            gr_resp_error(&c->out, E_SYNTAX);
            return;
        }
        if (arg_is(a, i, "MATCH")) {
            ks.pat = a->argv[i + 1];
            ks.patl = a->argl[i + 1];
        } else if (arg_is(a, i, "COUNT")) {
            if (!arg_int(a, i + 1, &count)) {
                gr_resp_error(&c->out, E_INT);
                return;
            }
            if (count < 1) {
                gr_resp_error(&c->out, E_SYNTAX);
                return;
            }
        } else if (arg_is(a, i, "TYPE")) {
            ks.type = arg_is(a, i + 1, "string") ? RT_STRING
                      : arg_is(a, i + 1, "hash") ? RT_HASH
                      : arg_is(a, i + 1, "set")  ? RT_SET
                                                 : RT_NONE;
        } else {
            gr_resp_error(&c->out, E_SYNTAX);
            return;
        }
    }
    if (id != 0 && !gr_redis_cursor_get(c->srv, id, &cur)) {
        gr_resp_error(&c->out, "ERR invalid cursor");
        return;
    }
    {
        gr_tscan req = {.cursor = cur.len ? cur.p : NULL,
                        .cursor_len = cur.len,
                        .limit = (uint32_t)(count > 10000 ? 10000 : count)};

        r = gr_table_scan(t, &req, scan_fn, &ks, &next);
    }
    if (r < 0 || ks.oom) {
        gr_redis_reply_err(c, r < 0 ? r : -ENOMEM);
    } else {
        id = next.len ? gr_redis_cursor_put(c->srv, next.p, next.len) : 0;
        snprintf(idb, sizeof(idb), "%llu", (unsigned long long)id);
        gr_resp_array(&c->out, 2);
        gr_resp_bulkstr(&c->out, idb);
        reply_keys(c, &ks);
    }
    gr_tbuf_free(&cur);
    gr_tbuf_free(&next);
    gr_tbuf_free(&ks.keys);
}

/* ---- the table ------------------------------------------------------------------------------ */

/* Sorted by name (bsearch in server.c). */
const rcommand gr_redis_cmds[] = {
    {"append", 3, "write denyoom fast", 1, 1, 1, cmd_append},
    {"auth", -2, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, gr_redis_cmd_auth},
    {"client", -2, "", 0, 0, 0, gr_redis_cmd_client},
    {"command", -1, "loading stale", 0, 0, 0, gr_redis_cmd_command},
    {"config", -2, "", 0, 0, 0, gr_redis_cmd_config},
    {"dbsize", 1, "readonly fast", 0, 0, 0, gr_redis_cmd_dbsize},
    {"decr", 2, "write denyoom fast", 1, 1, 1, cmd_decr},
    {"decrby", 3, "write denyoom fast", 1, 1, 1, cmd_decrby},
    {"del", -2, "write", 1, -1, 1, cmd_del},
    {"discard", 1, "noscript loading stale fast allow_busy", 0, 0, 0, gr_redis_cmd_discard},
    {"echo", 2, "fast", 0, 0, 0, gr_redis_cmd_echo},
    {"exec", 1, "noscript loading stale skip_slowlog", 0, 0, 0, gr_redis_cmd_exec},
    {"exists", -2, "readonly fast", 1, -1, 1, cmd_exists},
    {"expire", -3, "write fast", 1, 1, 1, cmd_expire},
    {"expireat", -3, "write fast", 1, 1, 1, cmd_expireat},
    {"flushdb", -1, "write", 0, 0, 0, gr_redis_cmd_flushdb},
    {"get", 2, "readonly fast", 1, 1, 1, cmd_get},
    {"getdel", 2, "write fast", 1, 1, 1, cmd_getdel},
    {"getset", 3, "write denyoom fast", 1, 1, 1, cmd_getset},
    {"hdel", -3, "write fast", 1, 1, 1, gr_redis_cmd_hdel},
    {"hello", -1, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, gr_redis_cmd_hello},
    {"hexists", 3, "readonly fast", 1, 1, 1, gr_redis_cmd_hexists},
    {"hget", 3, "readonly fast", 1, 1, 1, gr_redis_cmd_hget},
    {"hgetall", 2, "readonly", 1, 1, 1, gr_redis_cmd_hgetall},
    {"hincrby", 4, "write denyoom fast", 1, 1, 1, gr_redis_cmd_hincrby},
    {"hkeys", 2, "readonly", 1, 1, 1, gr_redis_cmd_hkeys},
    {"hlen", 2, "readonly fast", 1, 1, 1, gr_redis_cmd_hlen},
    {"hmget", -3, "readonly fast", 1, 1, 1, gr_redis_cmd_hmget},
    {"hmset", -4, "write denyoom fast", 1, 1, 1, gr_redis_cmd_hmset},
    {"hset", -4, "write denyoom fast", 1, 1, 1, gr_redis_cmd_hset},
    {"hsetnx", 4, "write denyoom fast", 1, 1, 1, gr_redis_cmd_hsetnx},
    {"hvals", 2, "readonly", 1, 1, 1, gr_redis_cmd_hvals},
    {"incr", 2, "write denyoom fast", 1, 1, 1, cmd_incr},
    {"incrby", 3, "write denyoom fast", 1, 1, 1, cmd_incrby},
    {"incrbyfloat", 3, "write denyoom fast", 1, 1, 1, cmd_incrbyfloat},
    {"info", -1, "loading stale", 0, 0, 0, gr_redis_cmd_info},
    {"keys", 2, "readonly", 0, 0, 0, cmd_keys},
    {"mget", -2, "readonly fast", 1, -1, 1, cmd_mget},
    {"mset", -3, "write denyoom", 1, -1, 2, cmd_mset},
    {"multi", 1, "noscript loading stale fast allow_busy", 0, 0, 0, gr_redis_cmd_multi},
    {"persist", 2, "write fast", 1, 1, 1, cmd_persist},
    {"pexpire", -3, "write fast", 1, 1, 1, cmd_pexpire},
    {"pexpireat", -3, "write fast", 1, 1, 1, cmd_pexpireat},
    {"ping", -1, "fast", 0, 0, 0, gr_redis_cmd_ping},
    {"psetex", 4, "write denyoom", 1, 1, 1, cmd_psetex},
    {"psubscribe", -2, "pubsub noscript loading stale", 0, 0, 0, gr_redis_cmd_psubscribe},
    {"pttl", 2, "readonly fast", 1, 1, 1, cmd_pttl},
    {"publish", 3, "pubsub loading stale fast", 0, 0, 0, gr_redis_cmd_publish},
    {"pubsub", -2, "pubsub loading stale", 0, 0, 0, gr_redis_cmd_pubsub},
    {"punsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, gr_redis_cmd_punsubscribe},
    {"quit", -1, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, gr_redis_cmd_quit},
    {"rename", 3, "write", 1, 2, 1, cmd_rename},
    {"sadd", -3, "write denyoom fast", 1, 1, 1, gr_redis_cmd_sadd},
    {"scan", -2, "readonly", 0, 0, 0, cmd_scan},
    {"scard", 2, "readonly fast", 1, 1, 1, gr_redis_cmd_scard},
    {"select", 2, "loading stale fast", 0, 0, 0, gr_redis_cmd_select},
    {"set", -3, "write denyoom", 1, 1, 1, cmd_set},
    {"setex", 4, "write denyoom", 1, 1, 1, cmd_setex},
    {"setnx", 3, "write denyoom fast", 1, 1, 1, cmd_setnx},
    {"sismember", 3, "readonly fast", 1, 1, 1, gr_redis_cmd_sismember},
    {"smembers", 2, "readonly", 1, 1, 1, gr_redis_cmd_smembers},
    {"spop", -2, "write fast", 1, 1, 1, gr_redis_cmd_spop},
    {"srem", -3, "write fast", 1, 1, 1, gr_redis_cmd_srem},
    {"strlen", 2, "readonly fast", 1, 1, 1, cmd_strlen},
    {"subscribe", -2, "pubsub noscript loading stale", 0, 0, 0, gr_redis_cmd_subscribe},
    {"ttl", 2, "readonly fast", 1, 1, 1, cmd_ttl},
    {"type", 2, "readonly fast", 1, 1, 1, cmd_type},
    {"unlink", -2, "write fast", 1, -1, 1, cmd_del},
    {"unsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, gr_redis_cmd_unsubscribe},
    {"unwatch", 1, "noscript loading stale fast allow_busy", 0, 0, 0, gr_redis_cmd_unwatch},
    {"watch", -2, "noscript loading stale fast allow_busy", 1, -1, 1, gr_redis_cmd_watch},
};
const size_t gr_redis_ncmds = sizeof(gr_redis_cmds) / sizeof(gr_redis_cmds[0]);
