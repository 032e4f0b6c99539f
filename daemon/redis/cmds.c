/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmds.c - the command table and the data commands: strings and keys, lists
 * and sorted sets, on the selected database's table (store.c has the
 * encoding; coll.c the hash and set commands on the engine's maps and
 * add-wins sets; HSCAN, SSCAN and SRANDMEMBER read those here).
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
#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RMW_TRIES 10000 /* 50 clients on one list: each round one of them wins */

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

    return gr_table_put_d(&c->dur, t, c->k.p, c->k.len, val->p, val->len, &how, NULL);
}

static int del_loaded(rconn *c, gr_table *t, const rmw *m)
{
    int r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, m->meta.version);

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
    /* an instant before now is a TTL of -1 (already expired): v - now would
     * overflow for v near INT64_MIN */
    *ret_ttl = !at ? v : v < now ? -1 : v - now;
    return true;
}

static int put_over(rconn *c, gr_table *t, const char *key, size_t klen, const gr_tput *how);

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
        r = put_over(c, t, a->argv[kidx], a->argl[kidx], &how);
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
        if (m.found && gr_redis_type(c->v.p, c->v.len) == RT_LIST) { /* and its elements */
            gr_tput how = {.flags = GR_TPUT_TTL,
                           .ttl_ms = o->keepttl ? ttl_left(c, &m) : o->ttl_ms};

            r = put_over(c, t, a->argv[kidx], a->argl[kidx], &how);
        } else {
            r = store(c, t, &m, &c->v2, o->keepttl ? ttl_left(c, &m) : o->ttl_ms);
        }
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
    r = gr_table_put_d(&c->dur, t, c->k.p, c->k.len, c->v2.p, c->v2.len, &how, NULL);
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
        if ((r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, m.meta.version)) == GR_ECASMISMATCH) {
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
        if ((r = put_over(c, t, a->argv[i], a->argl[i], &how)) < 0) {
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
    r = gr_table_incr_d(&c->dur, t, c->k.p, c->k.len, delta, &total);
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

/* A Redis float argument, as Redis's string2ld reads one: strtold over the
 * whole string, shorter than GR_RESP_LD_CHARS, no leading space of any
 * kind, not NaN, neither overflowing nor underflowing to zero. */
static bool parse_ld(const char *s, size_t n, long double *ret)
{
    char buf[GR_RESP_LD_CHARS];
    char *end;

    if (n == 0 || n >= sizeof(buf) || isspace((unsigned char)s[0])) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *ret = strtold(buf, &end);
    return *end == '\0' && !isnan(*ret) && errno != EINVAL &&
           !(errno == ERANGE && (isinf(*ret) || *ret == 0));
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
        char ib[32], out[GR_RESP_LD_CHARS]; /* %.17Lf of LDBL_MAX fits */
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
        if (gr_redis_del_key(c, t, a->argv[i], a->argl[i]) == 1) {
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

static int list_set_ttl(rconn *c, gr_table *t, const char *key, size_t klen, uint64_t ttl_ms);

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
        if (gr_redis_type(c->v.p, c->v.len) == RT_LIST) { /* its elements too */
            r = ttl <= 0 ? gr_redis_del_key(c, t, a->argv[1], a->argl[1])
                         : list_set_ttl(c, t, a->argv[1], a->argl[1], (uint64_t)ttl);
            r = r < 0 ? r : 0;
        } else if (ttl <= 0) {
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
        if (gr_redis_type(c->v.p, c->v.len) == RT_LIST) {
            r = list_set_ttl(c, t, a->argv[1], a->argl[1], 0);
            r = r < 0 ? r : 0;
        } else if ((r = store(c, t, &m, &c->v, 0)) == GR_ECASMISMATCH) {
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
    case RT_LIST:
        return "list";
    case RT_ZSET:
        return "zset";
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
    r = gr_redis_del_key(c, t, a->argv[2], a->argl[2]);
    if (r >= 0 && (r = gr_redis_key(&c->k, a->argv[1], a->argl[1])) == 0) {
        r = gr_redis_coll_copy(c, t, kind, to.p, to.len);
    }
    if (r == 0) {
        r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, 0);
        r = r == GR_ENOKEY ? 0 : r;
    }
    gr_tbuf_free(&to);
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_simple(&c->out, "OK");
    }
}

static void rename_list(rconn *c, gr_table *t, const rargs *a);

static void cmd_rename(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    gr_tval_kind kind;
    gr_tmeta meta;

    if (t && (kind = coll_kind(c, t, a, 1)) != GR_TVAL_NONE) {
        rename_coll(c, t, a, kind);
        return;
    }
    if (t && gr_redis_key(&c->k, a->argv[1], a->argl[1]) == 0 &&
        gr_table_get(t, c->k.p, c->k.len, &c->v, &meta) == 0 &&
        gr_redis_type(c->v.p, c->v.len) == RT_LIST) {
        rename_list(c, t, a);
        return;
    }
    if (t && !(a->argl[1] == a->argl[2] && memcmp(a->argv[1], a->argv[2], a->argl[1]) == 0)) {
        gr_tbuf k = {0};
        int r;

        /* a list there goes whole (its elements too) */
        if (gr_redis_key(&k, a->argv[2], a->argl[2]) == 0 &&
            gr_table_get(t, k.p, k.len, &c->v, &meta) == 0 &&
            gr_redis_type(c->v.p, c->v.len) == RT_LIST &&
            (r = gr_redis_del_key(c, t, a->argv[2], a->argl[2])) < 0) {
            gr_tbuf_free(&k);
            gr_redis_reply_err(c, r);
            return;
        }
        gr_tbuf_free(&k);
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
        if ((r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, m.meta.version)) == GR_ECASMISMATCH) {
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
        if ((r = gr_table_put_d(&c->dur, t, c->k.p, c->k.len, c->v.p, c->v.len, &how, NULL)) < 0) {
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
    int type;     /* -1: any */
    gr_tbuf keys; /* the pieces' bytes */
    rpieces ps;   /* .b = &keys */
} kscan;

static int scan_fn(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   const gr_tmeta *meta)
{
    kscan *ks = ud;
    const uint8_t *p;
    size_t n;

    if (!gr_redis_key_bytes(key, klen, &p, &n) ||
        (ks->pat && !gr_resp_glob(ks->pat, ks->patl, (const char *)p, n, false)) ||
        (ks->type >= 0 &&
         (int)(meta->kind == GR_TVAL_MAP   ? RT_HASH
               : meta->kind == GR_TVAL_SET ? RT_SET
                                           : gr_redis_type(val, vlen)) != ks->type)) {
        return 0;
    }
    if (gr_redis_piece_put(&ks->ps, p, n) < 0) {
        return 1;
    }
    ks->ps.n++;
    return 0;
}

static void reply_keys(rconn *c, const kscan *ks)
{
    gr_resp_array(&c->out, ks->ps.n);
    gr_redis_reply_pieces(c, &ks->ps);
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
    ks.ps.b = &ks.keys;
    if (all) {
        ks.pat = NULL;
    }
    for (;;) {
        gr_tscan req = {.cursor = cur.len ? cur.p : NULL, .cursor_len = cur.len, .limit = 10000};
        gr_tbuf tmp;

        if ((r = gr_table_scan(t, &req, scan_fn, &ks, &next)) < 0 || ks.ps.oom || next.len == 0) {
            break;
        }
        tmp = cur;
        cur = next;
        next = tmp;
    }
    if (r < 0 || ks.ps.oom) {
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
    ks.ps.b = &ks.keys;
    for (size_t i = 0; i < a->argl[1]; i++) {
        uint64_t d = (uint64_t)(a->argv[1][i] - '0');

        /* digits only, within 64 bits (2^64 must not wrap to cursor 0) */
        if (a->argv[1][i] < '0' || a->argv[1][i] > '9' || id > (UINT64_MAX - d) / 10) {
            gr_resp_error(&c->out, "ERR invalid cursor");
            return;
        }
        id = id * 10 + d;
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
                      : arg_is(a, i + 1, "list") ? RT_LIST
                      : arg_is(a, i + 1, "zset") ? RT_ZSET
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
    if (r < 0 || ks.ps.oom) {
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

/* ---- collections (hashes and sets as read for HSCAN, SSCAN, SRANDMEMBER) ------------------- */

/* A hash or set read whole from the engine: items point into buf. */
typedef struct coll {
    size_t n;              /* fields (hash) or members (set) */
    const uint8_t **items; /* hash: field, value, field, value... */
    size_t *lens;
    gr_tbuf buf; /* the bytes items point into (gr_redis_collect_fn's pieces) */
} coll;

static void coll_free(coll *k)
{
    free(k->items);
    free(k->lens);
    k->items = NULL;
    k->lens = NULL;
    gr_tbuf_free(&k->buf);
}

/* Load key argv[1], a hash (the engine's map) or a set (its add-wins set),
 * into k (absent: k->n 0). 0 or an error (replied: WRONGTYPE, ...). */
static int coll_load(rconn *c, gr_table *t, const rargs *a, rtype ty, coll *k)
{
    size_t per = ty == RT_HASH ? 2 : 1, i = 0;
    rpieces ps;
    int r;

    *k = (coll){0};
    ps = (rpieces){.b = &k->buf, .what = ty == RT_HASH ? RP_NAMES | RP_VALUES : RP_NAMES};
    if (gr_redis_key(&c->k, a->argv[1], a->argl[1]) < 0) {
        gr_resp_error(&c->out, E_OOM);
        return -ENOMEM;
    }
    r = ty == RT_HASH ? gr_table_map_getall(t, c->k.p, c->k.len, gr_redis_collect_fn, &ps)
                      : gr_table_set_members(t, c->k.p, c->k.len, gr_redis_collect_fn, &ps);
    if (ps.oom) {
        r = -ENOMEM;
    }
    k->n = ps.n;
    if (r == 0 && k->n > 0 &&
        (!(k->items = calloc(k->n * per, sizeof(*k->items))) ||
         !(k->lens = calloc(k->n * per, sizeof(*k->lens))))) {
        r = -ENOMEM;
    }
    if (r < 0) {
        coll_free(k);
        gr_redis_reply_err(c, r);
        return r;
    }
    for (size_t off = 0; off < k->buf.len; i++) {
        off = gr_redis_piece_at(&ps, off, &k->items[i], &k->lens[i]);
    }
    return 0;
}

static void shuffle_head(coll *k, size_t take)
{
    for (size_t i = 0; i < take && i + 1 < k->n; i++) {
        size_t j = i + arc4random_uniform((uint32_t)(k->n - i));
        const uint8_t *p = k->items[i];
        size_t l = k->lens[i];

        k->items[i] = k->items[j];
        k->lens[i] = k->lens[j];
        k->items[j] = p;
        k->lens[j] = l;
    }
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* A list's record: its elements are at positions [h, t) of the list table. */
typedef struct rlist {
    bool found; /* a non-empty list */
    int64_t h, t;
    uint64_t expire_ms; /* the list's expiry (its record's and each element's); 0: none */
} rlist;

/* Time left until expire_ms (0: none), for a put that keeps it. */
static uint64_t ttl_until(rconn *c, uint64_t expire_ms)
{
    uint64_t now = gr_tables_now_ms(c->srv->tables);

    if (expire_ms == 0) {
        return 0;
    }
    return expire_ms > now ? expire_ms - now : 1;
}

/* The selected db's list table, opened (created) on first use and kept by
 * the connection; NULL if it cannot be opened (logged). */
static gr_table *ltab(rconn *c)
{
    return c->lt ? c->lt : (c->lt = gr_redis_ldb_open(c->srv, c->db));
}

/* Read list key (bytes) into *l (absent: found false, h = t = 0); c->k holds
 * its table key after. 0, GR_EWRONGTYPE or another error (not replied). */
static int list_rec(rconn *c, gr_table *t, const char *key, size_t klen, rlist *l)
{
    gr_tmeta meta;
    int r;

    *l = (rlist){0};
    if (gr_redis_key(&c->k, key, klen) < 0) {
        return -ENOMEM;
    }
    r = gr_table_get(t, c->k.p, c->k.len, &c->v, &meta);
    if (r == GR_ENOKEY) {
        return 0;
    }
    if (r == 0 && gr_redis_dec_list(c->v.p, c->v.len, &l->h, &l->t) == 0) {
        l->found = l->t > l->h;
        l->expire_ms = meta.expire_ms;
        return 0;
    }
    return r == 0 ? GR_EWRONGTYPE : r;
}

/* list_rec, replying its error. */
static int list_load(rconn *c, gr_table *t, const char *key, size_t klen, rlist *l)
{
    int r = list_rec(c, t, key, klen, l);

    if (r < 0) {
        gr_redis_reply_err(c, r);
    }
    return r;
}

/* Write list record *l under c->k (an empty list deletes it). Uses c->v. */
static int list_save(rconn *c, gr_table *t, const rlist *l)
{
    gr_tput how = {.flags = GR_TPUT_TTL, .ttl_ms = ttl_until(c, l->expire_ms)};
    int r;

    if (l->h == l->t) {
        r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, 0);
        return r == GR_ENOKEY ? 0 : r;
    }
    if (gr_redis_enc_list(&c->v, l->h, l->t) < 0) {
        return -ENOMEM;
    }
    return gr_table_put_d(&c->dur, t, c->k.p, c->k.len, c->v.p, c->v.len, &how, NULL);
}

/* Element pos of list key into ps (as string bytes); its table key stays in
 * c->k2, its version in *ret_version. 1 added, 0 absent (not replicated here
 * yet: skipped, docs/redis.md), or an error. Uses c->v. */
static int elem_get(rconn *c, gr_table *lt, const char *key, size_t klen, int64_t pos, rpieces *ps,
                    uint64_t *ret_version)
{
    const uint8_t *p;
    size_t n;
    gr_tmeta em;
    char ib[32];
    int r;

    if (gr_redis_list_key(&c->k2, key, klen, pos) < 0) {
        return -ENOMEM;
    }
    if ((r = gr_table_get(lt, c->k2.p, c->k2.len, &c->v, &em)) == GR_ENOKEY) {
        return 0;
    }
    if (r < 0) {
        return r;
    }
    if (!gr_redis_str(c->v.p, c->v.len, ib, &p, &n)) {
        p = (const uint8_t *)"";
        n = 0;
    }
    if (gr_redis_piece_put(ps, p, n) < 0) {
        return -ENOMEM;
    }
    ps->n++;
    if (ret_version) {
        *ret_version = em.version;
    }
    return 1;
}

/* Put element bytes at pos of list l (its expiry). Uses c->k2, c->v2. */
static int elem_put(rconn *c, gr_table *lt, const char *key, size_t klen, const rlist *l,
                    int64_t pos, const void *p, size_t n)
{
    gr_tput how = {.flags = GR_TPUT_TTL, .ttl_ms = ttl_until(c, l->expire_ms)};

    if (gr_redis_list_key(&c->k2, key, klen, pos) < 0 || gr_redis_enc_bin(&c->v2, p, n) < 0) {
        return -ENOMEM;
    }
    return gr_table_put_d(&c->dur, lt, c->k2.p, c->k2.len, c->v2.p, c->v2.len, &how, NULL);
}

/* EXPIRE / PERSIST of list key: ttl_ms (0: none) on its record and each
 * element, under its stripe. O(length). 1 done, 0 no list, or an error. */
static int list_set_ttl(rconn *c, gr_table *t, const char *key, size_t klen, uint64_t ttl_ms)
{
    gr_table *lt = ltab(c);
    pthread_mutex_t *mu = gr_redis_klock(c->srv, c->db, key, klen);
    gr_tbuf one = {0};
    rlist l;
    int r = 0;

    if (!lt) {
        return GR_ENOTABLE;
    }
    pthread_mutex_lock(mu);
    if ((r = list_rec(c, t, key, klen, &l)) < 0) {
        pthread_mutex_unlock(mu);
        return r;
    }
    l.expire_ms = ttl_ms ? gr_tables_now_ms(c->srv->tables) + ttl_ms : 0;
    for (int64_t pos = l.h; l.found && pos < l.t && r >= 0; pos++) {
        rpieces ps = {.b = &one};
        const uint8_t *p;
        size_t n;

        one.len = 0;
        if ((r = elem_get(c, lt, key, klen, pos, &ps, NULL)) == 1) {
            gr_redis_piece_at(&ps, 0, &p, &n);
            r = elem_put(c, lt, key, klen, &l, pos, p, n);
        }
    }
    if (r >= 0 && l.found && (r = gr_redis_key(&c->k, key, klen)) == 0) {
        r = list_save(c, t, &l);
    }
    pthread_mutex_unlock(mu);
    gr_tbuf_free(&one);
    return r < 0 ? r : l.found;
}

/* Delete the elements at [from, to) of list key. Uses c->k2. */
static int elems_del(rconn *c, gr_table *lt, const char *key, size_t klen, int64_t from, int64_t to)
{
    for (int64_t pos = from; pos < to; pos++) {
        int r;

        if (gr_redis_list_key(&c->k2, key, klen, pos) < 0) {
            return -ENOMEM;
        }
        if ((r = gr_table_del_d(&c->dur, lt, c->k2.p, c->k2.len, 0)) < 0 && r != GR_ENOKEY) {
            return r;
        }
    }
    return 0;
}

/* If key (bytes; c->k its table key) holds a list, delete its elements
 * (the record stays: the caller deletes or replaces it). Caller holds the
 * key's stripe. 0 or an error. A db whose list table is empty has nothing
 * to delete: one atomic read instead of a lookup. Uses c->v, c->k2. */
static int drop_list_locked(rconn *c, gr_table *t, const char *key, size_t klen)
{
    gr_table *lt = ltab(c);
    int64_t h, tl;
    int r;

    if (lt && gr_table_count(lt) == 0) {
        return 0;
    }
    r = gr_table_get(t, c->k.p, c->k.len, &c->v, NULL);
    if (r == GR_ENOKEY || r == GR_EWRONGTYPE) { /* absent, a hash or a set */
        return 0;
    }
    if (r < 0) {
        return r;
    }
    if (gr_redis_dec_list(c->v.p, c->v.len, &h, &tl) < 0) {
        return 0;
    }
    /* a list table that cannot be opened fails only writes over a list */
    return lt ? elems_del(c, lt, key, klen, h, tl) : GR_ENOTABLE;
}

int gr_redis_del_key(rconn *c, gr_table *t, const char *key, size_t klen)
{
    pthread_mutex_t *mu = gr_redis_klock(c->srv, c->db, key, klen);
    int r;

    if (gr_redis_key(&c->k, key, klen) < 0) {
        return -ENOMEM;
    }
    /* under the stripe: no push of this node turns the key into a list
     * between the read and the delete */
    pthread_mutex_lock(mu);
    if ((r = drop_list_locked(c, t, key, klen)) >= 0) {
        r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, 0);
    }
    pthread_mutex_unlock(mu);
    return r == GR_ENOKEY ? 0 : r == 0 ? 1 : r;
}

/* Put value c->v2 under key (bytes; c->k its table key) as `how` says,
 * replacing whatever the key holds (SET, MSET): a list there loses its
 * elements first, so none is left behind in the list table. Under the key's
 * stripe, so no push of this node interleaves. Uses c->v, c->k2. */
static int put_over(rconn *c, gr_table *t, const char *key, size_t klen, const gr_tput *how)
{
    pthread_mutex_t *mu;
    int r;

    if (how->flags & GR_TPUT_IF_ABSENT) { /* a list there: present, nothing replaced */
        return gr_table_put_d(&c->dur, t, c->k.p, c->k.len, c->v2.p, c->v2.len, how, NULL);
    }
    mu = gr_redis_klock(c->srv, c->db, key, klen);
    pthread_mutex_lock(mu);
    if ((r = drop_list_locked(c, t, key, klen)) >= 0) {
        r = gr_table_put_d(&c->dur, t, c->k.p, c->k.len, c->v2.p, c->v2.len, how, NULL);
    }
    pthread_mutex_unlock(mu);
    return r;
}

static void push_common(rconn *c, const rargs *a, bool left)
{
    gr_table *t = gr_redis_db(c), *lt;
    pthread_mutex_t *mu;
    rlist l;
    int r = 0, s;

    if (!t || !(lt = gr_redis_ldb(c))) {
        return;
    }
    mu = gr_redis_klock(c->srv, c->db, a->argv[1], a->argl[1]);
    pthread_mutex_lock(mu);
    if (list_load(c, t, a->argv[1], a->argl[1], &l) < 0) {
        pthread_mutex_unlock(mu);
        return;
    }
    for (int i = 2; i < a->argc && r == 0; i++) {
        int64_t pos = left ? l.h - 1 : l.t; /* LPUSH a b: b is the head */

        if ((r = elem_put(c, lt, a->argv[1], a->argl[1], &l, pos, a->argv[i], a->argl[i])) == 0) {
            *(left ? &l.h : &l.t) = left ? l.h - 1 : l.t + 1;
        }
    }
    s = list_save(c, t, &l); /* what was pushed before an error stays */
    pthread_mutex_unlock(mu);
    r = r < 0 ? r : s;
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, l.t - l.h);
        gr_redis_wake_blocked(c->srv);
    }
}

/* RENAME of a list: each element moves to the new key's positions, then
 * the record; under the old key's stripe. O(length); a push to the new key
 * meanwhile is overwritten (docs/redis.md). */
static void rename_list(rconn *c, gr_table *t, const rargs *a)
{
    gr_table *lt = gr_redis_ldb(c);
    const char *from = a->argv[1], *to = a->argv[2];
    size_t fl = a->argl[1], tl = a->argl[2];
    gr_tbuf one = {0};
    pthread_mutex_t *mu;
    rlist l;
    int r;

    if (!lt) {
        return;
    }
    if (fl == tl && memcmp(from, to, fl) == 0) {
        gr_resp_simple(&c->out, "OK");
        return;
    }
    if ((r = gr_redis_del_key(c, t, to, tl)) < 0) {
        gr_redis_reply_err(c, r);
        return;
    }
    mu = gr_redis_klock(c->srv, c->db, from, fl);
    pthread_mutex_lock(mu);
    if (list_load(c, t, from, fl, &l) < 0) {
        pthread_mutex_unlock(mu);
        return;
    }
    if (!l.found) {
        pthread_mutex_unlock(mu);
        gr_resp_error(&c->out, "ERR no such key");
        return;
    }
    r = 0;
    for (int64_t pos = l.h; pos < l.t && r >= 0; pos++) {
        rpieces ps = {.b = &one};
        uint64_t ver = 0;
        const uint8_t *p;
        size_t n;

        one.len = 0;
        if ((r = elem_get(c, lt, from, fl, pos, &ps, &ver)) == 1) {
            gr_redis_piece_at(&ps, 0, &p, &n);
            if ((r = gr_table_del_d(&c->dur, lt, c->k2.p, c->k2.len, ver)) == 0 || r == GR_ENOKEY ||
                r == GR_ECASMISMATCH) {
                r = elem_put(c, lt, to, tl, &l, pos, p, n);
            }
        }
    }
    if (r >= 0 && (r = gr_redis_key(&c->k, from, fl)) == 0) {
        r = gr_table_del_d(&c->dur, t, c->k.p, c->k.len, 0);
        r = r == GR_ENOKEY ? 0 : r;
    }
    if (r >= 0 && (r = gr_redis_key(&c->k, to, tl)) == 0) {
        r = list_save(c, t, &l);
    }
    pthread_mutex_unlock(mu);
    gr_tbuf_free(&one);
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_simple(&c->out, "OK");
    }
}

static void cmd_lpush(rconn *c, const rargs *a)
{
    push_common(c, a, true);
}

static void cmd_rpush(rconn *c, const rargs *a)
{
    push_common(c, a, false);
}

/* Pop up to count elements of list key from one end into ps (in pop order),
 * under the key's stripe. 1: popped ps->n > 0, 0: nothing there, negative: an
 * error (replied). Uses c->k, c->k2, c->v; ps->b must be another buffer. */
static int pop_list(rconn *c, gr_table *t, const char *key, size_t klen, bool left, uint64_t count,
                    rpieces *ps)
{
    gr_table *lt = gr_redis_ldb(c);
    pthread_mutex_t *mu = gr_redis_klock(c->srv, c->db, key, klen);
    rlist l;
    int r = 0, s;

    if (!lt) {
        return GR_ENOTABLE;
    }
    pthread_mutex_lock(mu);
    if (list_load(c, t, key, klen, &l) < 0) {
        pthread_mutex_unlock(mu);
        return GR_EWRONGTYPE;
    }
    if (!l.found) {
        pthread_mutex_unlock(mu);
        return 0;
    }
    while (ps->n < count && l.h < l.t) {
        int64_t pos = left ? l.h : l.t - 1;
        uint64_t ver = 0;

        if ((r = elem_get(c, lt, key, klen, pos, ps, &ver)) < 0) {
            break;
        }
        *(left ? &l.h : &l.t) = left ? l.h + 1 : l.t - 1;
        /* only that version: a replica's newer write of the position stays */
        if (r == 1 && (r = gr_table_del_d(&c->dur, lt, c->k2.p, c->k2.len, ver)) < 0 &&
            r != GR_ENOKEY && r != GR_ECASMISMATCH) {
            break;
        }
        r = 0;
    }
    s = list_save(c, t, &l);
    pthread_mutex_unlock(mu);
    r = r < 0 ? r : s;
    if (r < 0) {
        gr_redis_reply_err(c, r);
        return r;
    }
    return ps->n > 0;
}

/* Reply the popped pieces of ps (count given: an array). */
static void reply_pieces(rconn *c, const rpieces *ps, bool array)
{
    if (array) {
        gr_resp_array(&c->out, ps->n);
    }
    gr_redis_reply_pieces(c, ps);
}

static void pop_common(rconn *c, const rargs *a, bool left)
{
    gr_table *t = gr_redis_db(c);
    bool hascount = a->argc == 3;
    int64_t count = 1;
    rpieces ps = {.b = &c->v2};
    rlist l;
    int r;

    if (!t) {
        return;
    }
    if (a->argc > 3) {
        gr_resp_errorf(&c->out, "ERR wrong number of arguments for '%s' command",
                       left ? "lpop" : "rpop");
        return;
    }
    if (hascount && (!arg_int(a, 2, &count) || count < 0)) {
        gr_resp_error(&c->out, "ERR value is out of range, must be positive");
        return;
    }
    if (hascount && count == 0) { /* Redis: a missing key is still null, a list []: */
        if (list_load(c, t, a->argv[1], a->argl[1], &l) < 0) {
            return;
        }
        if (l.found) {
            gr_resp_array(&c->out, 0);
        } else {
            gr_resp_null_array(&c->out);
        }
        return;
    }
    c->v2.len = 0;
    if ((r = pop_list(c, t, a->argv[1], a->argl[1], left, (uint64_t)count, &ps)) < 0) {
        return;
    }
    if (r == 0) {
        if (hascount) {
            gr_resp_null_array(&c->out);
        } else {
            gr_resp_null(&c->out);
        }
        return;
    }
    reply_pieces(c, &ps, hascount);
}

static void cmd_lpop(rconn *c, const rargs *a)
{
    pop_common(c, a, true);
}

static void cmd_rpop(rconn *c, const rargs *a)
{
    pop_common(c, a, false);
}

int gr_redis_bpop(rconn *c, bool left, int n, const char *const *keys, const size_t *lens)
{
    gr_table *t = gr_redis_db(c);

    if (!t) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        rpieces ps = {.b = &c->v2};
        int r;

        c->v2.len = 0;
        if ((r = pop_list(c, t, keys[i], lens[i], left, 1, &ps)) < 0) {
            return 1;
        }
        if (r == 1) {
            gr_resp_array(&c->out, 2);
            gr_resp_bulk(&c->out, keys[i], lens[i]);
            reply_pieces(c, &ps, false);
            return 1;
        }
    }
    return 0;
}

/* BLPOP / BRPOP key [key ...] timeout: pop now, or block the connection (its
 * process serves nothing else, its scheduler serves everyone else) until a
 * push on this node wakes it (gr_redis_wake_blocked), its timer sees a
 * replicated one, or the timeout. */
static void bpop_common(rconn *c, const rargs *a, bool left)
{
    gr_table *t = gr_redis_db(c);
    const char *ts = a->argv[a->argc - 1];
    size_t tl = a->argl[a->argc - 1];
    uint64_t deadline = 0;
    long double to;
    char buf[64], *end;

    if (!t) {
        return;
    }
    if (tl == 0 || tl >= sizeof(buf) || isspace((unsigned char)ts[0])) {
        gr_resp_error(&c->out, "ERR timeout is not a float or out of range");
        return;
    }
    memcpy(buf, ts, tl);
    buf[tl] = '\0';
    to = strtold(buf, &end);
    if (*end || isnan(to) || isinf(to)) {
        gr_resp_error(&c->out, "ERR timeout is not a float or out of range");
        return;
    }
    if (to < 0) {
        gr_resp_error(&c->out, "ERR timeout is negative");
        return;
    }
    if (to * 1000 > 1e15L) {
        gr_resp_error(&c->out, "ERR timeout is out of range");
        return;
    }
    if (gr_redis_bpop(c, left, a->argc - 2, a->argv + 1, a->argl + 1)) {
        return;
    }
    if (c->in_exec) { /* as Redis: inside a transaction it does not block */
        gr_resp_null_array(&c->out);
        return;
    }
    if (to > 0) {
        uint64_t ms = (uint64_t)ceill(to * 1000);

        deadline = gr_clock_ms() + (ms ? ms : 1);
    }
    if (gr_redis_block(c, left, deadline, a->argc - 2, a->argv + 1, a->argl + 1) < 0) {
        gr_resp_error(&c->out, E_OOM);
    }
}

static void cmd_blpop(rconn *c, const rargs *a)
{
    bpop_common(c, a, true);
}

static void cmd_brpop(rconn *c, const rargs *a)
{
    bpop_common(c, a, false);
}

static void cmd_llen(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    rlist l;

    if (!t || list_load(c, t, a->argv[1], a->argl[1], &l) < 0) {
        return;
    }
    gr_resp_int(&c->out, l.t - l.h);
}

static void cmd_lindex(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c), *lt;
    rpieces ps = {.b = &c->v2};
    int64_t i;
    rlist l;
    int r;

    if (!t || !(lt = gr_redis_ldb(c))) {
        return;
    }
    if (!arg_int(a, 2, &i)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    if (list_load(c, t, a->argv[1], a->argl[1], &l) < 0) {
        return;
    }
    if (i < 0) {
        i += l.t - l.h;
    }
    if (i < 0 || i >= l.t - l.h) {
        gr_resp_null(&c->out);
        return;
    }
    c->v2.len = 0;
    if ((r = elem_get(c, lt, a->argv[1], a->argl[1], l.h + i, &ps, NULL)) < 0) {
        gr_redis_reply_err(c, r);
    } else if (r == 0) {
        gr_resp_null(&c->out);
    } else {
        reply_pieces(c, &ps, false);
    }
}

/* Redis's range of a sequence of n: [*from, *to], false if empty. */
static bool norm_range(int64_t start, int64_t end, size_t n, size_t *from, size_t *to)
{
    int64_t len = (int64_t)n;

    if (start < 0) {
        start += len;
    }
    if (end < 0) {
        end += len;
    }
    if (start < 0) {
        start = 0;
    }
    if (start > end || start >= len) {
        return false;
    }
    if (end >= len) {
        end = len - 1;
    }
    *from = (size_t)start;
    *to = (size_t)end;
    return true;
}

#define LIST_MGET 256 /* elements looked up per gr_table_mget */

/* Look up the elements at offsets [at, at + n) (n <= LIST_MGET) of list key
 * at l: one gr_table_mget, its answer (an array, nil for an element not
 * replicated here yet) in c->v. Uses c->k2, c->kb. */
static int list_mget(rconn *c, gr_table *lt, const char *key, size_t klen, const rlist *l,
                     size_t at, size_t n)
{
    const void *keys[LIST_MGET];
    size_t klens[LIST_MGET], offs[LIST_MGET];
    int r = 0;

    c->kb.len = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        offs[i] = c->kb.len;
        if ((r = gr_redis_list_key(&c->k2, key, klen, l->h + (int64_t)(at + i))) == 0) {
            r = gr_tbuf_put(&c->kb, c->k2.p, c->k2.len);
            klens[i] = c->k2.len;
        }
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        keys[i] = c->kb.p + offs[i]; /* kb no longer moves */
    }
    return r < 0 ? r : gr_table_mget(lt, n, keys, klens, &c->v);
}

/* Elements [from, to] (offsets from the head) of list key at l into ps (an
 * element not replicated here yet is skipped), LIST_MGET per lookup. Uses
 * c->v, c->k2, c->kb. */
static int list_read(rconn *c, gr_table *lt, const char *key, size_t klen, const rlist *l,
                     size_t from, size_t to, rpieces *ps)
{
    int r = 0;

    for (size_t at = from; at <= to && r == 0; at += LIST_MGET) {
        size_t n = to - at + 1 < LIST_MGET ? to - at + 1 : LIST_MGET;

        if ((r = list_mget(c, lt, key, klen, l, at, n)) == 0) {
            r = gr_redis_pieces_of_array(ps, c->v.p, c->v.len);
        }
    }
    return r;
}

/* Reply elements [from, to] of list key at l as an array, written straight
 * from the lookups' answers (no copy in between); an element not replicated
 * here yet is skipped and the array's count corrected after. */
static void list_reply(rconn *c, gr_table *lt, const char *key, size_t klen, const rlist *l,
                       size_t from, size_t to)
{
    size_t at0 = c->out.len, body, got = 0;
    int r = 0;

    gr_resp_array(&c->out, to - from + 1);
    body = c->out.len;
    for (size_t at = from; at <= to && r == 0; at += LIST_MGET) {
        size_t n = to - at + 1 < LIST_MGET ? to - at + 1 : LIST_MGET;

        if ((r = list_mget(c, lt, key, klen, l, at, n)) == 0) {
            r = gr_redis_reply_strs(&c->out, c->v.p, c->v.len, &got);
        }
    }
    if (r < 0 && !c->out.oom) {
        c->out.len = at0; /* nothing of it was sent: the reply is only the error */
        gr_redis_reply_err(c, r);
    } else if (got != to - from + 1) {
        gr_resp_array_fix(&c->out, at0, body, got);
    }
}

static void cmd_lrange(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c), *lt;
    int64_t s, e;
    size_t from, to;
    rlist l;

    if (!t || !(lt = gr_redis_ldb(c))) {
        return;
    }
    if (!arg_int(a, 2, &s) || !arg_int(a, 3, &e)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    if (list_load(c, t, a->argv[1], a->argl[1], &l) < 0) {
        return;
    }
    if (!norm_range(s, e, (size_t)(l.t - l.h), &from, &to)) {
        gr_resp_array(&c->out, 0);
        return;
    }
    list_reply(c, lt, a->argv[1], a->argl[1], &l, from, to);
}

/* LREM key count element: count > 0 from the head, < 0 from the tail, 0 all.
 * Reads the list, rewrites the kept elements from the head on and shortens
 * the tail: O(length), under the key's stripe. */
static void cmd_lrem(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c), *lt;
    rpieces ps = {.b = &c->v2};
    pthread_mutex_t *mu;
    const char *key = a->argv[1];
    size_t klen = a->argl[1], n = 0, j = 0;
    uint8_t *drop = NULL;
    const uint8_t **items = NULL;
    size_t *lens = NULL;
    int64_t count, removed = 0;
    uint64_t max;
    rlist l;
    int r;

    if (!t || !(lt = gr_redis_ldb(c))) {
        return;
    }
    if (!arg_int(a, 2, &count)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    max = count == 0 ? UINT64_MAX : count < 0 ? -(uint64_t)count : (uint64_t)count;
    mu = gr_redis_klock(c->srv, c->db, key, klen);
    pthread_mutex_lock(mu);
    if (list_load(c, t, key, klen, &l) < 0) {
        pthread_mutex_unlock(mu);
        return;
    }
    c->v2.len = 0;
    if (l.found) {
        r = list_read(c, lt, key, klen, &l, 0, (size_t)(l.t - l.h - 1), &ps);
    } else {
        r = 0;
    }
    n = ps.n;
    if (r == 0 && n &&
        (!(items = calloc(n, sizeof(*items))) || !(lens = calloc(n, sizeof(*lens))) ||
         !(drop = calloc(n, 1)))) {
        r = -ENOMEM;
    }
    for (size_t i = 0, off = 0; r == 0 && i < n; i++) {
        off = gr_redis_piece_at(&ps, off, &items[i], &lens[i]);
    }
    /* mark the removed ones: from the head, or from the tail */
    for (size_t i = 0; r == 0 && i < n && (uint64_t)removed < max; i++) {
        size_t at = count >= 0 ? i : n - 1 - i;

        if (lens[at] == a->argl[3] && memcmp(items[at], a->argv[3], lens[at]) == 0) {
            drop[at] = 1;
            removed++;
        }
    }
    if (r == 0 && removed > 0) {
        /* rewrite the kept elements at h, h+1, ... (holes close too) */
        for (size_t i = 0; r == 0 && i < n; i++) {
            if (!drop[i]) {
                r = elem_put(c, lt, key, klen, &l, l.h + (int64_t)j++, items[i], lens[i]);
            }
        }
        if (r == 0) {
            r = elems_del(c, lt, key, klen, l.h + (int64_t)j, l.t);
        }
        if (r == 0) {
            l.t = l.h + (int64_t)j;
            r = list_save(c, t, &l);
        }
    }
    pthread_mutex_unlock(mu);
    free(items);
    free(lens);
    free(drop);
    if (r < 0) {
        gr_redis_reply_err(c, r);
    } else {
        gr_resp_int(&c->out, removed);
    }
}

/* ---- sorted sets ---------------------------------------------------------------------------- */

static const char E_FLOAT[] = "ERR value is not a valid float";

/* A sorted set loaded for a command: members borrowed from c->v. */
typedef struct zset {
    rmw m;
    size_t n;
    rzel *els; /* by score, then member bytes */
} zset;

/* Load key argv[kidx] as a sorted set: 0 (z->m.found says if it exists) or an
 * error (replied). */
static int zs_load(rconn *c, gr_table *t, const rargs *a, int kidx, zset *z)
{
    int r;

    *z = (zset){0};
    if ((r = load(c, t, a, kidx, &z->m)) < 0) {
        return r;
    }
    if (!z->m.found) {
        return 0;
    }
    if ((r = gr_redis_dec_zset(c->v.p, c->v.len, &z->n, &z->els)) < 0) {
        gr_resp_error(&c->out, r == -ENOMEM ? E_OOM : GR_REDIS_WRONGTYPE);
        return r;
    }
    return 0;
}

/* Write back n members (sorted); none deletes the key. */
static int zs_store(rconn *c, gr_table *t, const zset *z, size_t n, const rzel *els)
{
    int r;

    if (n == 0) {
        return z->m.found ? del_loaded(c, t, &z->m) : 0;
    }
    if ((r = gr_redis_enc_zset(&c->v2, n, els)) < 0) {
        return r;
    }
    if (c->v2.len > GR_RESP_MAX_BULK_DEFAULT + 4096) {
        return GR_ETOOBIG;
    }
    return store(c, t, &z->m, &c->v2, ttl_left(c, &z->m));
}

static int zel_cmp(const void *x, const void *y)
{
    const rzel *a = x, *b = y;
    int r;

    if (a->score != b->score) {
        return a->score < b->score ? -1 : 1;
    }
    r = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    return r ? r : a->len < b->len ? -1 : a->len > b->len;
}

static ssize_t zs_find(const zset *z, const char *p, size_t n)
{
    for (size_t i = 0; i < z->n; i++) {
        if (z->els[i].len == n && memcmp(z->els[i].p, p, n) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* Redis's string2d: strtod over the whole argument, no leading space, no NaN. */
static bool arg_double(const rargs *a, int i, double *ret)
{
    char buf[128];
    char *end;

    if (a->argl[i] == 0 || a->argl[i] >= sizeof(buf) || isspace((unsigned char)a->argv[i][0])) {
        return false;
    }
    memcpy(buf, a->argv[i], a->argl[i]);
    buf[a->argl[i]] = '\0';
    errno = 0;
    *ret = strtod(buf, &end);
    return *end == '\0' && !isnan(*ret) && !(errno == ERANGE && !isinf(*ret) && *ret != 0);
}

static void reply_score_bulk(rconn *c, double d)
{
    char b[64];

    gr_resp_bulk(&c->out, b, gr_resp_fmt_score(b, sizeof(b), d));
}

enum { ZA_NX = 1, ZA_XX = 2, ZA_GT = 4, ZA_LT = 8, ZA_CH = 16, ZA_INCR = 32 };

/* ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ... (and ZINCRBY: flags
 * ZA_INCR, first pair at argv[2]). */
static void zadd_common(rconn *c, const rargs *a, int flags, int first)
{
    gr_table *t = gr_redis_db(c);
    size_t pairs;
    double *scores;

    if (!t) {
        return;
    }
    for (; first < a->argc; first++) {
        int f = arg_is(a, first, "NX")     ? ZA_NX
                : arg_is(a, first, "XX")   ? ZA_XX
                : arg_is(a, first, "GT")   ? ZA_GT
                : arg_is(a, first, "LT")   ? ZA_LT
                : arg_is(a, first, "CH")   ? ZA_CH
                : arg_is(a, first, "INCR") ? ZA_INCR
                                           : 0;
        if (!f) {
            break;
        }
        flags |= f;
    }
    if (first >= a->argc || (a->argc - first) % 2) {
        gr_resp_error(&c->out, E_SYNTAX);
        return;
    }
    pairs = (size_t)(a->argc - first) / 2;
    if ((flags & ZA_NX) && (flags & ZA_XX)) {
        gr_resp_error(&c->out, "ERR XX and NX options at the same time are not compatible");
        return;
    }
    if (((flags & ZA_NX) && (flags & (ZA_GT | ZA_LT))) || ((flags & ZA_GT) && (flags & ZA_LT))) {
        gr_resp_error(&c->out, "ERR GT, LT, and/or NX options at the same time are not compatible");
        return;
    }
    if ((flags & ZA_INCR) && pairs > 1) {
        gr_resp_error(&c->out, "ERR INCR option supports a single increment-element pair");
        return;
    }
    if (!(scores = malloc(pairs * sizeof(*scores)))) {
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        if (!arg_double(a, first + 2 * (int)i, &scores[i])) {
            free(scores);
            gr_resp_error(&c->out, E_FLOAT);
            return;
        }
    }
    for (int tries = 0; tries < RMW_TRIES; tries++) {
        int64_t added = 0, changed = 0;
        double last = 0;
        bool done = false; /* INCR: the member was written */
        size_t n;
        rzel *els;
        zset z;
        int r;

        if (zs_load(c, t, a, 1, &z) < 0) {
            free(scores);
            return;
        }
        n = z.n;
        if (!(els = realloc(z.els, (n + pairs) * sizeof(*els)))) {
            free(z.els);
            free(scores);
            gr_resp_error(&c->out, E_OOM);
            return;
        }
        z.els = els;
        for (size_t i = 0; i < pairs; i++) {
            const char *mp = a->argv[first + 2 * (int)i + 1];
            size_t ml = a->argl[first + 2 * (int)i + 1];
            ssize_t at = zs_find(&(zset){.n = n, .els = els}, mp, ml);
            double s = scores[i];

            if (at >= 0) {
                double cur = els[at].score;

                if (flags & ZA_NX) {
                    continue;
                }
                if (flags & ZA_INCR) {
                    s = cur + s;
                    if (isnan(s)) {
                        free(z.els);
                        free(scores);
                        gr_resp_error(&c->out, "ERR resulting score is not a number (NaN)");
                        return;
                    }
                }
                if (((flags & ZA_GT) && s <= cur) || ((flags & ZA_LT) && s >= cur)) {
                    continue;
                }
                done = true;
                last = s;
                if (s != cur) {
                    els[at].score = s;
                    changed++;
                }
            } else {
                if (flags & ZA_XX) {
                    continue;
                }
                els[n++] = (rzel){(const uint8_t *)mp, ml, s};
                added++;
                done = true;
                last = s;
            }
        }
        r = 0;
        if (added || changed) {
            qsort(els, n, sizeof(*els), zel_cmp);
            r = zs_store(c, t, &z, n, els);
        }
        free(z.els);
        if (r == GR_ECASMISMATCH) {
            continue;
        }
        free(scores);
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else if (flags & ZA_INCR) {
            if (done) {
                gr_resp_double(&c->out, last);
            } else {
                gr_resp_null(&c->out);
            }
        } else {
            gr_resp_int(&c->out, (flags & ZA_CH) ? added + changed : added);
        }
        return;
    }
    free(scores);
    gr_redis_reply_err(c, GR_ECASMISMATCH);
}

static void cmd_zadd(rconn *c, const rargs *a)
{
    zadd_common(c, a, 0, 2);
}

static void cmd_zincrby(rconn *c, const rargs *a)
{
    double d;

    if (!arg_double(a, 2, &d)) {
        gr_resp_error(&c->out, E_FLOAT);
        return;
    }
    zadd_common(c, a, ZA_INCR, 2);
}

static void cmd_zrem(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    for (int tries = 0; t && tries < RMW_TRIES; tries++) {
        int64_t removed = 0;
        size_t n = 0;
        zset z;
        int r;

        if (zs_load(c, t, a, 1, &z) < 0) {
            return;
        }
        for (size_t i = 0; i < z.n; i++) {
            bool gone = false;

            for (int j = 2; j < a->argc && !gone; j++) {
                gone =
                    z.els[i].len == a->argl[j] && memcmp(z.els[i].p, a->argv[j], a->argl[j]) == 0;
            }
            if (gone) {
                removed++;
            } else {
                z.els[n++] = z.els[i];
            }
        }
        r = removed ? zs_store(c, t, &z, n, z.els) : 0;
        free(z.els);
        if (r == GR_ECASMISMATCH) {
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_int(&c->out, removed);
        }
        return;
    }
    if (t) {
        gr_redis_reply_err(c, GR_ECASMISMATCH);
    }
}

static void cmd_zscore(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    ssize_t at;
    zset z;

    if (!t || zs_load(c, t, a, 1, &z) < 0) {
        return;
    }
    if ((at = zs_find(&z, a->argv[2], a->argl[2])) < 0) {
        gr_resp_null(&c->out);
    } else {
        gr_resp_double(&c->out, z.els[at].score);
    }
    free(z.els);
}

static void cmd_zcard(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    zset z;

    if (!t || zs_load(c, t, a, 1, &z) < 0) {
        return;
    }
    gr_resp_int(&c->out, (int64_t)z.n);
    free(z.els);
}

/* A score bound: "1.5", "(1.5" (exclusive), "-inf", "+inf". */
typedef struct zbound {
    double v;
    bool excl;
} zbound;

static bool arg_bound(const rargs *a, int i, zbound *b)
{
    rargs one = *a;

    b->excl = a->argl[i] > 0 && a->argv[i][0] == '(';
    if (!b->excl) {
        return arg_double(a, i, &b->v);
    }
    /* parse past the '(' */
    one.argv = (const char *[]){a->argv[i] + 1};
    one.argl = (const size_t[]){a->argl[i] - 1};
    return arg_double(&one, 0, &b->v);
}

static bool above_min(double s, const zbound *min)
{
    return min->excl ? s > min->v : s >= min->v;
}

static bool below_max(double s, const zbound *max)
{
    return max->excl ? s < max->v : s <= max->v;
}

/* Reply members [list of indices into z] with or without scores. */
static void reply_zels(rconn *c, const zset *z, const size_t *idx, size_t n, bool withscores)
{
    bool pairs = withscores && c->out.proto >= 3;

    gr_resp_array(&c->out, withscores && !pairs ? 2 * n : n);
    for (size_t i = 0; i < n; i++) {
        const rzel *e = &z->els[idx[i]];

        if (pairs) {
            gr_resp_array(&c->out, 2);
        }
        gr_resp_bulk(&c->out, e->p, e->len);
        if (withscores) {
            if (pairs) {
                gr_resp_double(&c->out, e->score);
            } else {
                reply_score_bulk(c, e->score);
            }
        }
    }
}

enum { ZR_RANK, ZR_SCORE };

/* ZRANGE and its older forms. argv[2], argv[3]: start stop (ZR_RANK) or
 * min max (ZR_SCORE; max min when rev). */
static void zrange_generic(rconn *c, const rargs *a, int by, bool rev, bool withscores, bool limit,
                           int64_t off, int64_t cnt)
{
    gr_table *t = gr_redis_db(c);
    size_t *idx = NULL, n = 0;
    zbound min, max;
    int64_t s = 0, e = 0;
    zset z;

    if (!t) {
        return;
    }
    if (by == ZR_RANK && (!arg_int(a, 2, &s) || !arg_int(a, 3, &e))) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    if (by == ZR_SCORE && (!arg_bound(a, rev ? 3 : 2, &min) || !arg_bound(a, rev ? 2 : 3, &max))) {
        gr_resp_error(&c->out, "ERR min or max is not a float");
        return;
    }
    if (zs_load(c, t, a, 1, &z) < 0) {
        return;
    }
    if (z.n && !(idx = malloc(z.n * sizeof(*idx)))) {
        free(z.els);
        gr_resp_error(&c->out, E_OOM);
        return;
    }
    if (by == ZR_RANK) {
        size_t from, to;

        if (norm_range(s, e, z.n, &from, &to)) {
            for (size_t i = from; i <= to; i++) {
                idx[n++] = rev ? z.n - 1 - i : i;
            }
        }
    } else if (!limit || off >= 0) {
        int64_t skip = limit ? off : 0;

        for (size_t j = 0; j < z.n; j++) {
            size_t i = rev ? z.n - 1 - j : j;

            if (!above_min(z.els[i].score, &min) || !below_max(z.els[i].score, &max)) {
                continue;
            }
            if (skip > 0) {
                skip--;
                continue;
            }
            if (limit && cnt >= 0 && (int64_t)n >= cnt) {
                break;
            }
            idx[n++] = i;
        }
    }
    reply_zels(c, &z, idx, n, withscores);
    free(idx);
    free(z.els);
}

/* ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] [WITHSCORES] */
static void cmd_zrange(rconn *c, const rargs *a)
{
    bool rev = false, withscores = false, limit = false;
    int64_t off = 0, cnt = -1;
    int by = ZR_RANK;

    for (int i = 4; i < a->argc; i++) {
        if (arg_is(a, i, "WITHSCORES")) {
            withscores = true;
        } else if (arg_is(a, i, "REV")) {
            rev = true;
        } else if (arg_is(a, i, "BYSCORE")) {
            by = ZR_SCORE;
        } else if (arg_is(a, i, "LIMIT") && i + 2 < a->argc) {
            if (!arg_int(a, i + 1, &off) || !arg_int(a, i + 2, &cnt)) {
                gr_resp_error(&c->out, E_INT);
                return;
            }
            limit = true;
            i += 2;
        } else {
            gr_resp_error(&c->out, E_SYNTAX);
            return;
        }
    }
    if (limit && by == ZR_RANK) {
        gr_resp_error(&c->out, "ERR syntax error, LIMIT is only supported in combination with "
                               "either BYSCORE or BYLEX");
        return;
    }
    zrange_generic(c, a, by, rev, withscores, limit, off, cnt);
}

/* ZREVRANGE key start stop [WITHSCORES] */
static void cmd_zrevrange(rconn *c, const rargs *a)
{
    if (a->argc > 5 || (a->argc == 5 && !arg_is(a, 4, "WITHSCORES"))) {
        gr_resp_error(&c->out, E_SYNTAX);
        return;
    }
    zrange_generic(c, a, ZR_RANK, true, a->argc == 5, false, 0, -1);
}

/* Z(REV)RANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count] */
static void byscore_common(rconn *c, const rargs *a, bool rev)
{
    bool withscores = false, limit = false;
    int64_t off = 0, cnt = -1;

    for (int i = 4; i < a->argc; i++) {
        if (arg_is(a, i, "WITHSCORES")) {
            withscores = true;
        } else if (arg_is(a, i, "LIMIT") && i + 2 < a->argc) {
            if (!arg_int(a, i + 1, &off) || !arg_int(a, i + 2, &cnt)) {
                gr_resp_error(&c->out, E_INT);
                return;
            }
            limit = true;
            i += 2;
        } else {
            gr_resp_error(&c->out, E_SYNTAX);
            return;
        }
    }
    zrange_generic(c, a, ZR_SCORE, rev, withscores, limit, off, cnt);
}

static void cmd_zrangebyscore(rconn *c, const rargs *a)
{
    byscore_common(c, a, false);
}

static void cmd_zrevrangebyscore(rconn *c, const rargs *a)
{
    byscore_common(c, a, true);
}

/* Z(REV)RANK key member [WITHSCORE] */
static void rank_common(rconn *c, const rargs *a, bool rev)
{
    gr_table *t = gr_redis_db(c);
    bool withscore = a->argc == 4;
    ssize_t at;
    zset z;

    if (!t) {
        return;
    }
    if (a->argc > 4 || (withscore && !arg_is(a, 3, "WITHSCORE"))) {
        gr_resp_error(&c->out, E_SYNTAX);
        return;
    }
    if (zs_load(c, t, a, 1, &z) < 0) {
        return;
    }
    if ((at = zs_find(&z, a->argv[2], a->argl[2])) < 0) {
        if (withscore) {
            gr_resp_null_array(&c->out);
        } else {
            gr_resp_null(&c->out);
        }
    } else {
        int64_t rank = rev ? (int64_t)z.n - 1 - at : at;

        if (withscore) {
            gr_resp_array(&c->out, 2);
            gr_resp_int(&c->out, rank);
            gr_resp_double(&c->out, z.els[at].score);
        } else {
            gr_resp_int(&c->out, rank);
        }
    }
    free(z.els);
}

static void cmd_zrank(rconn *c, const rargs *a)
{
    rank_common(c, a, false);
}

static void cmd_zrevrank(rconn *c, const rargs *a)
{
    rank_common(c, a, true);
}

/* ZPOPMIN / ZPOPMAX key [count] */
static void zpop_common(rconn *c, const rargs *a, bool max)
{
    gr_table *t = gr_redis_db(c);
    bool hascount = a->argc == 3;
    int64_t count = 1;

    if (!t) {
        return;
    }
    if (a->argc > 3) {
        gr_resp_error(&c->out, E_SYNTAX);
        return;
    }
    if (hascount && (!arg_int(a, 2, &count) || count < 0)) {
        gr_resp_error(&c->out, "ERR value is out of range, must be positive");
        return;
    }
    for (int tries = 0; tries < RMW_TRIES; tries++) {
        bool pairs = hascount && c->out.proto >= 3;
        size_t take;
        zset z;
        int r;

        if (zs_load(c, t, a, 1, &z) < 0) {
            return;
        }
        take = (uint64_t)count < z.n ? (size_t)count : z.n;
        r = take ? zs_store(c, t, &z, z.n - take, max ? z.els : z.els + take) : 0;
        if (r == GR_ECASMISMATCH) {
            free(z.els);
            continue;
        }
        if (r < 0) {
            gr_redis_reply_err(c, r);
        } else {
            gr_resp_array(&c->out, pairs ? take : 2 * take);
            for (size_t i = 0; i < take; i++) {
                const rzel *e = &z.els[max ? z.n - 1 - i : i];

                if (pairs) {
                    gr_resp_array(&c->out, 2);
                    gr_resp_bulk(&c->out, e->p, e->len);
                    gr_resp_double(&c->out, e->score);
                } else {
                    gr_resp_bulk(&c->out, e->p, e->len);
                    if (c->out.proto >= 3) {
                        gr_resp_double(&c->out, e->score);
                    } else {
                        reply_score_bulk(c, e->score);
                    }
                }
            }
        }
        free(z.els);
        return;
    }
    gr_redis_reply_err(c, GR_ECASMISMATCH);
}

static void cmd_zpopmin(rconn *c, const rargs *a)
{
    zpop_common(c, a, false);
}

static void cmd_zpopmax(rconn *c, const rargs *a)
{
    zpop_common(c, a, true);
}

/* ---- HSCAN SSCAN ZSCAN ------------------------------------------------------------------- */

/* One item of a collection being scanned: its name (field, member) and where
 * it sits in the loaded collection. */
typedef struct sitem {
    const uint8_t *p;
    size_t len;
    size_t at;
} sitem;

#define SCAN_ONE_PAGE 128 /* HSCAN... of a collection this small: one page, as Redis */

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int r = memcmp(a, b, al < bl ? al : bl);

    return r ? r : (al > bl) - (al < bl);
}

static int sitem_cmp(const void *x, const void *y)
{
    const sitem *a = x, *b = y;

    return bytes_cmp(a->p, a->len, b->p, b->len);
}

/* HSCAN / SSCAN / ZSCAN key cursor [MATCH pattern] [COUNT n] (HSCAN also
 * NOVALUES). The collection is read whole and walked in byte order of its
 * names; a page examines about COUNT items (default 10) after the cursor's
 * name, and the cursor stands for the last name examined (remembered
 * node-wide like SCAN's, docs/redis.md): an item present for the whole
 * iteration is returned exactly once, whatever is added or removed. A
 * collection of at most SCAN_ONE_PAGE items is one page whatever the cursor,
 * as Redis answers for its small encodings. */
static void scan_coll(rconn *c, const rargs *a, rtype ty)
{
    gr_table *t = gr_redis_db(c);
    const char *pat = NULL;
    size_t patl = 0, nitems, first = 0, end, n = 0;
    bool novalues = false;
    unsigned long long cur;
    int64_t count = 10;
    char buf[24], *e;
    gr_tbuf last = {0};
    sitem *its = NULL;
    coll k = {0};
    zset z = {0};
    size_t per = ty == RT_SET ? 1 : 2;

    if (!t) {
        return;
    }
    if (a->argl[2] == 0 || a->argl[2] >= sizeof(buf) || a->argv[2][0] == '-') {
        gr_resp_error(&c->out, "ERR invalid cursor");
        return;
    }
    memcpy(buf, a->argv[2], a->argl[2]);
    buf[a->argl[2]] = '\0';
    errno = 0;
    cur = strtoull(buf, &e, 10);
    if (*e || errno) {
        gr_resp_error(&c->out, "ERR invalid cursor");
        return;
    }
    for (int i = 3; i < a->argc; i++) {
        if (arg_is(a, i, "MATCH") && i + 1 < a->argc) {
            pat = a->argv[i + 1];
            patl = a->argl[i + 1];
            i++;
        } else if (arg_is(a, i, "COUNT") && i + 1 < a->argc) {
            if (!arg_int(a, i + 1, &count)) {
                gr_resp_error(&c->out, E_INT);
                return;
            }
            if (count < 1) {
                gr_resp_error(&c->out, E_SYNTAX);
                return;
            }
            i++;
        } else if (ty == RT_HASH && arg_is(a, i, "NOVALUES")) {
            novalues = true;
        } else {
            gr_resp_error(&c->out, E_SYNTAX);
            return;
        }
    }
    if (ty == RT_ZSET ? zs_load(c, t, a, 1, &z) < 0 : coll_load(c, t, a, ty, &k) < 0) {
        return;
    }
    nitems = ty == RT_ZSET ? z.n : k.n;
    if (nitems <= SCAN_ONE_PAGE) {
        cur = 0; /* as Redis for a small (listpack) collection: all of it, any cursor */
        count = SCAN_ONE_PAGE;
    } else if (cur != 0 && !gr_redis_cursor_get(c->srv, cur, &last)) {
        gr_resp_error(&c->out, "ERR invalid cursor");
        goto out;
    }
    if (nitems && !(its = calloc(nitems, sizeof(*its)))) {
        gr_resp_error(&c->out, E_OOM);
        goto out;
    }
    for (size_t i = 0; i < nitems; i++) {
        its[i] = ty == RT_ZSET ? (sitem){z.els[i].p, z.els[i].len, i}
                               : (sitem){k.items[i * per], k.lens[i * per], i};
    }
    if (nitems) {
        qsort(its, nitems, sizeof(*its), sitem_cmp);
    }
    if (cur != 0) { /* the first name after the cursor's */
        size_t lo = 0, hi = nitems;

        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (bytes_cmp(its[mid].p, its[mid].len, last.p, last.len) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        first = lo;
    }
    end = nitems - first > (uint64_t)count ? first + (size_t)count : nitems;
    for (size_t i = first; i < end; i++) {
        n += !pat || gr_resp_glob(pat, patl, (const char *)its[i].p, its[i].len, false);
    }
    gr_resp_array(&c->out, 2);
    if (end < nitems) {
        uint64_t id = gr_redis_cursor_put(c->srv, its[end - 1].p, its[end - 1].len);

        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
        gr_resp_bulkstr(&c->out, buf);
    } else {
        gr_resp_bulkstr(&c->out, "0");
    }
    gr_resp_array(&c->out, novalues ? n : n * per);
    for (size_t i = first; i < end; i++) {
        size_t at = its[i].at;

        if (pat && !gr_resp_glob(pat, patl, (const char *)its[i].p, its[i].len, false)) {
            continue;
        }
        gr_resp_bulk(&c->out, its[i].p, its[i].len);
        if (ty == RT_ZSET) {
            reply_score_bulk(c, z.els[at].score);
        } else if (ty == RT_HASH && !novalues) {
            gr_resp_bulk(&c->out, k.items[2 * at + 1], k.lens[2 * at + 1]);
        }
    }
out:
    free(its);
    free(z.els);
    coll_free(&k);
    gr_tbuf_free(&last);
}

static void cmd_hscan(rconn *c, const rargs *a)
{
    scan_coll(c, a, RT_HASH);
}

static void cmd_sscan(rconn *c, const rargs *a)
{
    scan_coll(c, a, RT_SET);
}

static void cmd_zscan(rconn *c, const rargs *a)
{
    scan_coll(c, a, RT_ZSET);
}

/* SRANDMEMBER key [count]: count > 0 distinct members, < 0 that many with
 * repeats. */
static void cmd_srandmember(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);
    bool hascount = a->argc == 3;
    int64_t count = 1;
    coll k;

    if (!t) {
        return;
    }
    if (a->argc > 3) {
        gr_resp_error(&c->out, E_SYNTAX);
        return;
    }
    if (hascount && !arg_int(a, 2, &count)) {
        gr_resp_error(&c->out, E_INT);
        return;
    }
    if (hascount && (count < -(INT64_MAX / 2) || count > INT64_MAX / 2)) {
        gr_resp_error(&c->out, "ERR value is out of range");
        return;
    }
    if (coll_load(c, t, a, RT_SET, &k) < 0) {
        return;
    }
    if (!hascount) {
        if (k.n == 0) {
            gr_resp_null(&c->out);
        } else {
            uint32_t i = arc4random_uniform((uint32_t)k.n);

            gr_resp_bulk(&c->out, k.items[i], k.lens[i]);
        }
    } else if (count < 0) {
        uint64_t want = k.n ? (uint64_t)-count : 0;

        gr_resp_array(&c->out, want);
        for (uint64_t j = 0; j < want && !c->out.oom; j++) { /* oom: over the limit */
            uint32_t i = arc4random_uniform((uint32_t)k.n);

            gr_resp_bulk(&c->out, k.items[i], k.lens[i]);
        }
    } else {
        size_t take = (uint64_t)count < k.n ? (size_t)count : k.n;

        shuffle_head(&k, take);
        gr_resp_array(&c->out, take);
        for (size_t i = 0; i < take; i++) {
            gr_resp_bulk(&c->out, k.items[i], k.lens[i]);
        }
    }
    coll_free(&k);
}

/* ---- the table ------------------------------------------------------------------------------ */

/* Sorted by name (bsearch in server.c). */
const rcommand gr_redis_cmds[] = {
    {"append", 3, "write denyoom fast", 1, 1, 1, cmd_append},
    {"auth", -2, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, gr_redis_cmd_auth},
    {"blpop", -3, "write noscript blocking", 1, -2, 1, cmd_blpop},
    {"brpop", -3, "write noscript blocking", 1, -2, 1, cmd_brpop},
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
    {"hscan", -3, "readonly", 1, 1, 1, cmd_hscan},
    {"hset", -4, "write denyoom fast", 1, 1, 1, gr_redis_cmd_hset},
    {"hsetnx", 4, "write denyoom fast", 1, 1, 1, gr_redis_cmd_hsetnx},
    {"hvals", 2, "readonly", 1, 1, 1, gr_redis_cmd_hvals},
    {"incr", 2, "write denyoom fast", 1, 1, 1, cmd_incr},
    {"incrby", 3, "write denyoom fast", 1, 1, 1, cmd_incrby},
    {"incrbyfloat", 3, "write denyoom fast", 1, 1, 1, cmd_incrbyfloat},
    {"info", -1, "loading stale", 0, 0, 0, gr_redis_cmd_info},
    {"keys", 2, "readonly", 0, 0, 0, cmd_keys},
    {"lindex", 3, "readonly", 1, 1, 1, cmd_lindex},
    {"llen", 2, "readonly fast", 1, 1, 1, cmd_llen},
    {"lpop", -2, "write fast", 1, 1, 1, cmd_lpop},
    {"lpush", -3, "write denyoom fast", 1, 1, 1, cmd_lpush},
    {"lrange", 4, "readonly", 1, 1, 1, cmd_lrange},
    {"lrem", 4, "write", 1, 1, 1, cmd_lrem},
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
    {"rpop", -2, "write fast", 1, 1, 1, cmd_rpop},
    {"rpush", -3, "write denyoom fast", 1, 1, 1, cmd_rpush},
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
    {"srandmember", -2, "readonly", 1, 1, 1, cmd_srandmember},
    {"srem", -3, "write fast", 1, 1, 1, gr_redis_cmd_srem},
    {"sscan", -3, "readonly", 1, 1, 1, cmd_sscan},
    {"strlen", 2, "readonly fast", 1, 1, 1, cmd_strlen},
    {"subscribe", -2, "pubsub noscript loading stale", 0, 0, 0, gr_redis_cmd_subscribe},
    {"ttl", 2, "readonly fast", 1, 1, 1, cmd_ttl},
    {"type", 2, "readonly fast", 1, 1, 1, cmd_type},
    {"unlink", -2, "write fast", 1, -1, 1, cmd_del},
    {"unsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, gr_redis_cmd_unsubscribe},
    {"unwatch", 1, "noscript loading stale fast allow_busy", 0, 0, 0, gr_redis_cmd_unwatch},
    {"watch", -2, "noscript loading stale fast allow_busy", 1, -1, 1, gr_redis_cmd_watch},
    {"zadd", -4, "write denyoom fast", 1, 1, 1, cmd_zadd},
    {"zcard", 2, "readonly fast", 1, 1, 1, cmd_zcard},
    {"zincrby", 4, "write denyoom fast", 1, 1, 1, cmd_zincrby},
    {"zpopmax", -2, "write fast", 1, 1, 1, cmd_zpopmax},
    {"zpopmin", -2, "write fast", 1, 1, 1, cmd_zpopmin},
    {"zrange", -4, "readonly", 1, 1, 1, cmd_zrange},
    {"zrangebyscore", -4, "readonly", 1, 1, 1, cmd_zrangebyscore},
    {"zrank", -3, "readonly fast", 1, 1, 1, cmd_zrank},
    {"zrem", -3, "write fast", 1, 1, 1, cmd_zrem},
    {"zrevrange", -4, "readonly", 1, 1, 1, cmd_zrevrange},
    {"zrevrangebyscore", -4, "readonly", 1, 1, 1, cmd_zrevrangebyscore},
    {"zrevrank", -3, "readonly fast", 1, 1, 1, cmd_zrevrank},
    {"zscan", -3, "readonly", 1, 1, 1, cmd_zscan},
    {"zscore", 3, "readonly fast", 1, 1, 1, cmd_zscore},
};
const size_t gr_redis_ncmds = sizeof(gr_redis_cmds) / sizeof(gr_redis_cmds[0]);
