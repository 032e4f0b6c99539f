/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_table.c - rpc module `table`: the node's tables (daemon/tables/) for
 * `girder rpc`, multicall and other nodes. Arguments and results are terms;
 * keys and values are any term. docs/rpc.md and docs/tables.md list them:
 *
 *   table.create(Name [, Opts])       -> "ok"
 *       Opts: {"kind": "set"|"ordered_set", "durability": "memory"|"disk",
 *              "fsync": "always"|"interval"|"never", "interval_ms": N,
 *              "max_entries": N, "max_bytes": N, "cache": Bool, "ttl_ms": N,
 *              "max_value": N, "shards": N, "mode": "local"|"replicated"}
 *   table.drop(Name)                  -> "ok"
 *   table.list()                      -> [Name, ...]
 *   table.infos()                     -> [Info, ...] (every table, by name)
 *   table.info(Name)                  -> {"name", "kind", "durability", "fsync", "entries",
 *                                         "bytes", "bytes_per_entry", "max_entries",
 *                                         "max_bytes", "cache", "ttl_ms", "evictions",
 *                                         "expired", "wal_bytes", "wal_records", "fsyncs",
 *                                         "snapshots", "error", "mode", "tombstones",
 *                                         "replication": nil | {"pending",
 *                                         "queue_overflows", "digest", "peers": [{"node",
 *                                         "up", "last_sync_ms", "digest_equal"}]}}
 *   table.get(Name, Key)              -> {"value": V, "version": N, "expire_ms": N}
 *   table.mget(Name, [Key, ...])      -> [V | nil, ...]
 *   table.put(Name, Key, Value [, Opts]) -> {"version": N}
 *       Opts: {"ttl_ms": N, "if_absent": Bool, "version": N (compare-and-set)}
 *   table.del(Name, Key [, Version])  -> "ok"
 *   table.incr(Name, Key [, N])       -> the new total
 *   table.count(Name)                 -> N
 *   table.scan(Name [, Opts])         -> {"entries": [[K, V], ...], "cursor": Bin | nil}
 *       Opts: {"prefix": Str|Bin, "start": K, "end": K, "limit": N, "cursor": Bin}
 *   table.type(Name, Key)             -> "none" | "value" | "counter" | "map" | "set"
 *   Maps (per-field last writer wins when replicated) and add-wins sets; fields and
 *   members are a Str or a Bin, answered as Str (docs/tables.md "Maps and sets"):
 *   table.map_set(Name, Key, {Field: V, ...})    -> fields added
 *   table.map_del(Name, Key, [Field, ...])       -> fields removed
 *   table.map_get(Name, Key, Field)              -> V (not_found: no key or field)
 *   table.map_getall(Name, Key)                  -> {Field: V, ...}
 *   table.map_incr(Name, Key, Field [, N])       -> the field's new total
 *   table.map_len(Name, Key)                     -> N
 *   table.set_add(Name, Key, [Member, ...])      -> members added
 *   table.set_rem(Name, Key, [Member, ...])      -> members removed
 *   table.set_members(Name, Key)                 -> [Member, ...]
 *   table.set_ismember(Name, Key, Member)        -> Bool
 *   table.set_card(Name, Key)                    -> N
 *   table.set_pop(Name, Key)                     -> a member, removed (not_found: empty)
 *
 * Every function answers at once from its worker. A write to a disk table
 * with fsync `always` waits for its fsync in the worker, holding that
 * scheduler for the fsync (docs/tables.md "Durability").
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "tables/repl.h"
#include "tables/tables.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Encoded copy of one term. */
typedef struct enc {
    msgpack_sbuffer sb;
} enc;

static int enc_obj(enc *e, const msgpack_object *o)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&pk, &e->sb, msgpack_sbuffer_write);
    return msgpack_pack_object(&pk, *o) == 0 && e->sb.size ? 0 : -ENOMEM;
}

static void enc_done(enc *e)
{
    msgpack_sbuffer_destroy(&e->sb);
}

static const msgpack_object *arg(const msgpack_object *args, uint32_t i)
{
    return args->via.array.ptr + i;
}

/* Check args is an array of min..max items. */
static int nargs(const msgpack_object *args, uint32_t min, uint32_t max)
{
    return args->type == MSGPACK_OBJECT_ARRAY && args->via.array.size >= min &&
                   args->via.array.size <= max
               ? 0
               : GR_EBADARG;
}

/* The table name of argument 0 into name[GR_TABLE_NAME_MAX + 1]: 0,
 * GR_EBADTABLENAME (a string too long) or GR_EBADARG (not a string). */
static int table_name_arg(const msgpack_object *args, char *name)
{
    if (gr_term_get_str(arg(args, 0), name, GR_TABLE_NAME_MAX + 1) < 0) {
        return arg(args, 0)->type == MSGPACK_OBJECT_STR ? GR_EBADTABLENAME : GR_EBADARG;
    }
    return 0;
}

static int open_arg(gr_rpc_call *c, const msgpack_object *args, gr_table **ret_t)
{
    char name[GR_TABLE_NAME_MAX + 1];
    gr_tables *ts = gr_rpc_tables(c->rpc);
    int r;

    if (!ts) {
        return GR_ENOTABLE;
    }
    if ((r = table_name_arg(args, name)) < 0) {
        return r;
    }
    return gr_tables_open(ts, name, ret_t);
}

/* A call's table (argument 0) and its key (argument 1) encoded: the pair the
 * key functions below work on. key_open fills both or neither; key_close
 * releases both. */
typedef struct tkey {
    gr_table *t;
    enc k;
} tkey;

static int key_open(gr_rpc_call *c, const msgpack_object *args, tkey *tk)
{
    int r;

    if ((r = open_arg(c, args, &tk->t)) < 0) {
        return r;
    }
    if ((r = enc_obj(&tk->k, arg(args, 1))) < 0) {
        enc_done(&tk->k);
        gr_table_close(tk->t);
    }
    return r;
}

static void key_close(tkey *tk)
{
    enc_done(&tk->k);
    gr_table_close(tk->t);
}

/* Option s of the map o when it has type t: 1 and *ret; 0 when absent;
 * GR_EBADARG when of another type. */
static int opt_get(const msgpack_object *o, const char *s, msgpack_object_type t,
                   const msgpack_object **ret)
{
    *ret = gr_term_map_get(o, s);
    if (!*ret) {
        return 0;
    }
    return (*ret)->type == t ? 1 : GR_EBADARG;
}

static int opt_u64(const msgpack_object *o, const char *s, uint64_t *v)
{
    const msgpack_object *x;
    int r = opt_get(o, s, MSGPACK_OBJECT_POSITIVE_INTEGER, &x);

    if (r == 1) {
        *v = x->via.u64;
    }
    return r;
}

static int opt_bool(const msgpack_object *o, const char *s, bool *v)
{
    const msgpack_object *x;
    int r = opt_get(o, s, MSGPACK_OBJECT_BOOLEAN, &x);

    if (r == 1) {
        *v = x->via.boolean;
    }
    return r;
}

/* Match an enum option; *v untouched if absent. */
static int opt_enum(const msgpack_object *o, const char *s, const char *const *names, int n, int *v)
{
    const msgpack_object *x = gr_term_map_get(o, s);

    if (!x) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (gr_term_is_str(x, names[i])) {
            *v = i;
            return 1;
        }
    }
    return GR_EBADARG;
}

static const char *const kinds[] = {"set", "ordered_set"};
static const char *const durs[] = {"memory", "disk"};
static const char *const syncs[] = {"always", "interval", "never"};

/* Answer the packed sbuffer and free it. */
static int answer_sb(gr_rpc_call *c, msgpack_sbuffer *sb)
{
    int r = gr_rpc_answer(c, sb->data, sb->size);

    msgpack_sbuffer_destroy(sb);
    return r;
}

/* An increment argument: an int64 (positive or negative). 0 or GR_EBADARG. */
static int delta_arg(const msgpack_object *d, int64_t *ret)
{
    if (d->type == MSGPACK_OBJECT_POSITIVE_INTEGER && d->via.u64 <= INT64_MAX) {
        *ret = (int64_t)d->via.u64;
    } else if (d->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *ret = d->via.i64;
    } else {
        return GR_EBADARG;
    }
    return 0;
}

/* ---- functions ---------------------------------------------------------------------- */

static int t_create(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_table_opts o = {0};
    const msgpack_object *m;
    char name[GR_TABLE_NAME_MAX + 1];
    gr_tables *ts = gr_rpc_tables(c->rpc);
    int kind = 0, dur = 0, fs = 0, mode = 0, r;
    uint64_t v;
    static const char *const modes[] = {"local", "replicated"};

    if ((r = nargs(args, 1, 2)) < 0) {
        return r;
    }
    if (!ts) {
        return GR_ECONFIG;
    }
    if (gr_term_get_str(arg(args, 0), name, sizeof(name)) < 0) {
        return GR_EBADTABLENAME;
    }
    m = args->via.array.size > 1 ? arg(args, 1) : NULL;
    if (m && m->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADARG;
    }
    if (opt_enum(m, "kind", kinds, 2, &kind) < 0 || opt_enum(m, "durability", durs, 2, &dur) < 0 ||
        opt_enum(m, "fsync", syncs, 3, &fs) < 0 || opt_bool(m, "cache", &o.cache) < 0 ||
        opt_enum(m, "mode", modes, 2, &mode) < 0) {
        return GR_EBADARG;
    }
    o.replicated = mode == 1;
    o.kind = (gr_table_kind)kind;
    o.durability = (gr_table_durability)dur;
    o.fsync = (gr_table_fsync)fs;
    if ((r = opt_u64(m, "interval_ms", &v)) < 0 || (r > 0 && (v == 0 || v > UINT32_MAX))) {
        return GR_EBADARG;
    }
    o.interval_ms = r > 0 ? (uint32_t)v : 0;
    if ((r = opt_u64(m, "max_value", &v)) < 0 || (r > 0 && v > UINT32_MAX)) {
        return GR_EBADARG;
    }
    o.max_value = r > 0 ? (uint32_t)v : 0;
    if ((r = opt_u64(m, "shards", &v)) < 0 || (r > 0 && v > 256)) {
        return GR_EBADARG;
    }
    o.shards = r > 0 ? (uint32_t)v : 0;
    if (opt_u64(m, "max_entries", &o.max_entries) < 0 ||
        opt_u64(m, "max_bytes", &o.max_bytes) < 0 || opt_u64(m, "ttl_ms", &o.default_ttl_ms) < 0) {
        return GR_EBADARG;
    }
    if ((r = gr_tables_create(ts, name, &o)) < 0) {
        return r;
    }
    return gr_rpc_answer_str(c, "ok");
}

static int t_drop(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char name[GR_TABLE_NAME_MAX + 1];
    gr_tables *ts = gr_rpc_tables(c->rpc);
    int r;

    if ((r = nargs(args, 1, 1)) < 0) {
        return r;
    }
    if (!ts) {
        return GR_ENOTABLE;
    }
    if ((r = table_name_arg(args, name)) < 0) {
        return r; /* `table info 5` answered no_table */
    }
    if ((r = gr_tables_drop(ts, name)) < 0) {
        return r;
    }
    return gr_rpc_answer_str(c, "ok");
}

static void list_one(void *ud, const char *name)
{
    gr_term_pack_cstr(ud, name);
}

static int t_list(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_tables *ts = gr_rpc_tables(c->rpc);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;
    int r;

    if ((r = nargs(args, 0, 0)) < 0) {
        return r;
    }
    if (!ts) {
        return gr_rpc_answer(c, "\x90", 1);
    }
    /* Count first, then pack: the list holds the registry lock while packing. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    n = gr_tables_list(ts, NULL, NULL);
    msgpack_pack_array(&pk, (uint32_t)n);
    if (gr_tables_list(ts, list_one, &pk) != n) { /* changed in between: try once more */
        msgpack_sbuffer_clear(&sb);
        n = gr_tables_list(ts, NULL, NULL);
        msgpack_pack_array(&pk, (uint32_t)n);
        if (gr_tables_list(ts, list_one, &pk) != n) {
            msgpack_sbuffer_destroy(&sb);
            return GR_EOVERLOAD;
        }
    }
    return answer_sb(c, &sb);
}

/* The replication part of an info: nil for a local table. */
static void pack_repl(msgpack_packer *pk, gr_tables *ts, const gr_table_info *i)
{
    gr_trepl *rp = gr_tables_repl(ts);
    gr_trepl_peer peers[64];
    uint64_t dig[GR_TDIGEST_BUCKETS], h = 0xcbf29ce484222325ull;
    gr_table *t;
    char hex[17];
    size_t n;

    if (!i->opts.replicated || !rp) {
        msgpack_pack_nil(pk);
        return;
    }
    if (gr_tables_open(ts, i->name, &t) == 0) {
        gr_table_digest(t, dig);
        gr_table_close(t);
        for (int b = 0; b < GR_TDIGEST_BUCKETS; b++) { /* one number for the whole digest */
            h = (h ^ dig[b]) * 0x100000001b3ull;
            h ^= h >> 29;
        }
    }
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    n = gr_trepl_peers(rp, i->name, peers, 64);
    n = n > 64 ? 64 : n;
    msgpack_pack_map(pk, 4);
    gr_term_pack_kv_uint(pk, "pending", gr_trepl_pending(rp));
    gr_term_pack_kv_uint(pk, "queue_overflows", gr_trepl_overflows(rp));
    gr_term_pack_cstr(pk, "digest");
    gr_term_pack_cstr(pk, hex);
    gr_term_pack_cstr(pk, "peers");
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
        msgpack_pack_map(pk, 4);
        gr_term_pack_cstr(pk, "node");
        gr_term_pack_cstr(pk, peers[k].node);
        gr_term_pack_cstr(pk, "up");
        peers[k].up ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        gr_term_pack_kv_uint(pk, "last_sync_ms", peers[k].last_sync_ms);
        gr_term_pack_cstr(pk, "digest_equal");
        if (!peers[k].last_sync_ms) {
            msgpack_pack_nil(pk);
        } else if (peers[k].equal) {
            msgpack_pack_true(pk);
        } else {
            msgpack_pack_false(pk);
        }
    }
}

static void pack_info(msgpack_packer *pk, gr_tables *ts, const gr_table_info *i)
{
    msgpack_pack_map(pk, 21);
    gr_term_pack_cstr(pk, "name");
    gr_term_pack_cstr(pk, i->name);
    gr_term_pack_cstr(pk, "kind");
    gr_term_pack_cstr(pk, kinds[i->opts.kind]);
    gr_term_pack_cstr(pk, "durability");
    gr_term_pack_cstr(pk, durs[i->opts.durability]);
    gr_term_pack_cstr(pk, "fsync");
    if (i->opts.durability == GR_TABLE_DISK) {
        gr_term_pack_cstr(pk, syncs[i->opts.fsync]);
    } else {
        msgpack_pack_nil(pk);
    }
    gr_term_pack_kv_uint(pk, "entries", i->entries);
    gr_term_pack_kv_uint(pk, "bytes", i->bytes);
    gr_term_pack_kv_uint(pk, "bytes_per_entry", i->entries ? i->bytes / i->entries : 0);
    gr_term_pack_kv_uint(pk, "max_entries", i->opts.max_entries);
    gr_term_pack_kv_uint(pk, "max_bytes", i->opts.max_bytes);
    gr_term_pack_cstr(pk, "cache");
    if (i->opts.cache) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
    gr_term_pack_kv_uint(pk, "ttl_ms", i->opts.default_ttl_ms);
    gr_term_pack_kv_uint(pk, "evictions", i->evictions);
    gr_term_pack_kv_uint(pk, "expired", i->expired);
    gr_term_pack_kv_uint(pk, "wal_bytes", i->wal_bytes);
    gr_term_pack_kv_uint(pk, "wal_records", i->wal_records);
    gr_term_pack_kv_uint(pk, "fsyncs", i->fsyncs);
    gr_term_pack_kv_uint(pk, "snapshots", i->snapshots);
    gr_term_pack_cstr(pk, "error");
    if (i->load_error) {
        gr_term_pack_cstr(pk, gr_errid(i->load_error));
    } else {
        msgpack_pack_nil(pk);
    }
    gr_term_pack_cstr(pk, "mode");
    gr_term_pack_cstr(pk, i->opts.replicated ? "replicated" : "local");
    gr_term_pack_kv_uint(pk, "tombstones", i->tombstones);
    gr_term_pack_cstr(pk, "replication");
    pack_repl(pk, ts, i);
}

static int t_info(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char name[GR_TABLE_NAME_MAX + 1];
    gr_tables *ts = gr_rpc_tables(c->rpc);
    gr_table_info i;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if ((r = nargs(args, 1, 1)) < 0) {
        return r;
    }
    if (!ts) {
        return GR_ENOTABLE;
    }
    if ((r = table_name_arg(args, name)) < 0) {
        return r; /* `table info 5` answered no_table */
    }
    if ((r = gr_tables_info(ts, name, &i)) < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_info(&pk, ts, &i);
    return answer_sb(c, &sb);
}

/* Names collected from gr_tables_list. */
typedef struct names {
    char (*v)[GR_TABLE_NAME_MAX + 1]; /* names */
    size_t n;                         /* used */
    size_t cap;                       /* allocated */
} names;

static void name_one(void *ud, const char *name)
{
    names *ns = ud;

    if (ns->n < ns->cap) {
        snprintf(ns->v[ns->n++], sizeof(ns->v[0]), "%s", name);
    }
}

static int t_infos(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_tables *ts = gr_rpc_tables(c->rpc);
    gr_table_info *infos;
    names ns = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n = 0;
    int r;

    if ((r = nargs(args, 0, 0)) < 0) {
        return r;
    }
    if (!ts) {
        return gr_rpc_answer(c, "\x90", 1);
    }
    ns.cap = gr_tables_list(ts, NULL, NULL) + 16; /* room for tables created meanwhile */
    if (!(ns.v = calloc(ns.cap, sizeof(ns.v[0])))) {
        return -ENOMEM;
    }
    if (!(infos = calloc(ns.cap, sizeof(*infos)))) {
        free(ns.v);
        return -ENOMEM;
    }
    gr_tables_list(ts, name_one, &ns);
    for (size_t k = 0; k < ns.n; k++) { /* a table dropped meanwhile is left out */
        n += gr_tables_info(ts, ns.v[k], &infos[n]) == 0;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
        pack_info(&pk, ts, &infos[k]);
    }
    free(infos);
    free(ns.v);
    return answer_sb(c, &sb);
}

static int t_get(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_tbuf v = {0};
    gr_tmeta m;
    tkey tk;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if ((r = nargs(args, 2, 2)) < 0 || (r = key_open(c, args, &tk)) < 0) {
        return r;
    }
    r = gr_table_get(tk.t, tk.k.sb.data, tk.k.sb.size, &v, &m);
    key_close(&tk);
    if (r < 0) {
        gr_tbuf_free(&v);
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    gr_term_pack_cstr(&pk, "value");
    msgpack_sbuffer_write(&sb, (const char *)v.p, v.len);
    gr_term_pack_kv_uint(&pk, "version", m.version);
    gr_term_pack_kv_uint(&pk, "expire_ms", m.expire_ms);
    gr_tbuf_free(&v);
    return answer_sb(c, &sb);
}

static int t_mget(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *ks;
    gr_table *t = NULL;
    gr_tbuf out = {0};
    enc *e = NULL;
    const void **kp = NULL;
    size_t *kl = NULL;
    uint32_t n, i = 0;
    int r;

    if ((r = nargs(args, 2, 2)) < 0) {
        return r;
    }
    ks = arg(args, 1);
    if (ks->type != MSGPACK_OBJECT_ARRAY || ks->via.array.size > 10000) {
        return GR_EBADARG;
    }
    if ((r = open_arg(c, args, &t)) < 0) {
        return r;
    }
    n = ks->via.array.size;
    e = calloc(n ? n : 1, sizeof(*e));
    kp = calloc(n ? n : 1, sizeof(*kp));
    kl = calloc(n ? n : 1, sizeof(*kl));
    if (!e || !kp || !kl) {
        r = -ENOMEM;
        goto out;
    }
    for (; i < n; i++) {
        if ((r = enc_obj(&e[i], &ks->via.array.ptr[i])) < 0) {
            enc_done(&e[i]);
            goto out;
        }
        kp[i] = e[i].sb.data;
        kl[i] = e[i].sb.size;
    }
    if ((r = gr_table_mget(t, n, kp, kl, &out)) == 0) {
        r = gr_rpc_answer(c, out.p, out.len);
    }
out:
    while (e && i > 0) {
        enc_done(&e[--i]);
    }
    free(e);
    free(kp);
    free(kl);
    gr_tbuf_free(&out);
    gr_table_close(t);
    return r;
}

static int t_put(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *o;
    gr_tput how = {0};
    gr_tmeta m;
    tkey tk;
    enc v;
    bool ia = false;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r, has;

    if ((r = nargs(args, 3, 4)) < 0) {
        return r;
    }
    o = args->via.array.size > 3 ? arg(args, 3) : NULL;
    if (o && o->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADARG;
    }
    if ((has = opt_u64(o, "ttl_ms", &how.ttl_ms)) < 0) {
        return has;
    }
    how.flags |= has ? GR_TPUT_TTL : 0;
    if ((has = opt_u64(o, "version", &how.version)) < 0) {
        return has;
    }
    how.flags |= has ? GR_TPUT_CAS : 0;
    if (opt_bool(o, "if_absent", &ia) < 0) {
        return GR_EBADARG;
    }
    how.flags |= ia ? GR_TPUT_IF_ABSENT : 0;
    if ((r = key_open(c, args, &tk)) < 0) {
        return r;
    }
    if ((r = enc_obj(&v, arg(args, 2))) == 0) {
        r = gr_table_put(tk.t, tk.k.sb.data, tk.k.sb.size, v.sb.data, v.sb.size, &how, &m);
    }
    enc_done(&v);
    key_close(&tk);
    if (r < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    gr_term_pack_kv_uint(&pk, "version", m.version);
    return answer_sb(c, &sb);
}

static int t_del(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    uint64_t version = 0;
    tkey tk;
    int r;

    if ((r = nargs(args, 2, 3)) < 0) {
        return r;
    }
    if (args->via.array.size == 3) {
        if (arg(args, 2)->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            return GR_EBADARG;
        }
        version = arg(args, 2)->via.u64;
    }
    if ((r = key_open(c, args, &tk)) < 0) {
        return r;
    }
    r = gr_table_del(tk.t, tk.k.sb.data, tk.k.sb.size, version);
    key_close(&tk);
    return r < 0 ? r : gr_rpc_answer_str(c, "ok");
}

static int t_incr(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    int64_t delta = 1, total = 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    tkey tk;
    int r;

    if ((r = nargs(args, 2, 3)) < 0) {
        return r;
    }
    if (args->via.array.size == 3 && (r = delta_arg(arg(args, 2), &delta)) < 0) {
        return r;
    }
    if ((r = key_open(c, args, &tk)) < 0) {
        return r;
    }
    r = gr_table_incr(tk.t, tk.k.sb.data, tk.k.sb.size, delta, &total);
    key_close(&tk);
    if (r < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, total);
    return answer_sb(c, &sb);
}

static int t_count(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_table *t = NULL;
    uint64_t n;
    int r;

    if ((r = nargs(args, 1, 1)) < 0 || (r = open_arg(c, args, &t)) < 0) {
        return r;
    }
    n = gr_table_count(t);
    gr_table_close(t);
    return gr_rpc_answer_uint(c, n);
}

typedef struct scan_out {
    msgpack_sbuffer sb; /* the [K, V] pairs */
    msgpack_packer pk;
    uint32_t n; /* pairs */
} scan_out;

static int scan_one(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    const gr_tmeta *m)
{
    scan_out *s = ud;

    msgpack_pack_array(&s->pk, 2);
    msgpack_sbuffer_write(&s->sb, (const char *)key, klen);
    msgpack_sbuffer_write(&s->sb, (const char *)val, vlen);
    s->n++;
    return 0;
}

static int t_scan(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *o, *x;
    gr_tscan req = {0};
    gr_table *t = NULL;
    gr_tbuf next = {0};
    enc e[3];
    int ne = 0, r;
    uint64_t limit = 0;
    scan_out so;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *bounds[3] = {"start", "end", "prefix"};

    if ((r = nargs(args, 1, 2)) < 0) {
        return r;
    }
    o = args->via.array.size > 1 ? arg(args, 1) : NULL;
    if (o && o->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADARG;
    }
    if ((r = opt_u64(o, "limit", &limit)) < 0 || (r == 1 && (limit == 0 || limit > 10000))) {
        return GR_EBADARG; /* 1..10000 (a limit of 0 gave the default page) */
    }
    req.limit = (uint32_t)limit;
    if ((x = gr_term_map_get(o, "cursor")) && x->type != MSGPACK_OBJECT_NIL) {
        if (x->type != MSGPACK_OBJECT_BIN) {
            return GR_EBADARG;
        }
        req.cursor = x->via.bin.ptr;
        req.cursor_len = x->via.bin.size;
    }
    if ((r = open_arg(c, args, &t)) < 0) {
        return r;
    }
    for (int i = 0; i < 3; i++) {
        if (!(x = gr_term_map_get(o, bounds[i]))) {
            continue;
        }
        if ((r = enc_obj(&e[ne], x)) < 0) {
            enc_done(&e[ne]);
            goto out;
        }
        if (i == 0) {
            req.start = e[ne].sb.data, req.start_len = e[ne].sb.size;
        } else if (i == 1) {
            req.end = e[ne].sb.data, req.end_len = e[ne].sb.size;
        } else {
            req.prefix = e[ne].sb.data, req.prefix_len = e[ne].sb.size;
        }
        ne++;
    }
    msgpack_sbuffer_init(&so.sb);
    msgpack_packer_init(&so.pk, &so.sb, msgpack_sbuffer_write);
    so.n = 0;
    if ((r = gr_table_scan(t, &req, scan_one, &so, &next)) == 0) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        gr_term_pack_cstr(&pk, "entries");
        msgpack_pack_array(&pk, so.n);
        msgpack_sbuffer_write(&sb, so.sb.data, so.sb.size);
        gr_term_pack_cstr(&pk, "cursor");
        if (next.len) {
            msgpack_pack_bin_with_body(&pk, next.p, next.len);
        } else {
            msgpack_pack_nil(&pk);
        }
        r = answer_sb(c, &sb);
    }
    msgpack_sbuffer_destroy(&so.sb);
out:
    while (ne > 0) {
        enc_done(&e[--ne]);
    }
    gr_tbuf_free(&next);
    gr_table_close(t);
    return r;
}

/* ---- maps and sets ------------------------------------------------------------------ */

/* A field name or set member: a str or a bin, as bytes. */
static int name_arg(const msgpack_object *o, const void **ret_p, size_t *ret_n)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *ret_p = o->via.str.ptr;
        *ret_n = o->via.str.size;
    } else if (o->type == MSGPACK_OBJECT_BIN) {
        *ret_p = o->via.bin.ptr;
        *ret_n = o->via.bin.size;
    } else {
        return GR_EBADARG;
    }
    return 0;
}

/* Names (and, for a map argument, encoded values) of a call, for the engine. */
typedef struct nlist {
    const void **p;  /* names */
    size_t *n;       /* their lengths */
    enc *v;          /* map: encoded values */
    const void **vp; /* map: value bytes */
    size_t *vn;      /* map: value lengths */
    uint32_t count;  /* names */
    uint32_t nv;     /* values encoded (to free) */
} nlist;

static void nlist_free(nlist *l)
{
    while (l->v && l->nv > 0) {
        enc_done(&l->v[--l->nv]);
    }
    free(l->p);
    free(l->n);
    free(l->v);
    free(l->vp);
    free(l->vn);
}

/* o: an array of names, or (with_vals) a map name -> value; 1..10,000. */
static int nlist_of(const msgpack_object *o, bool with_vals, nlist *l)
{
    uint32_t n = with_vals ? (o->type == MSGPACK_OBJECT_MAP ? o->via.map.size : 0)
                           : (o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.size : 0);
    int r;

    memset(l, 0, sizeof(*l));
    if (n == 0 || n > 10000) {
        return GR_EBADARG;
    }
    l->p = calloc(n, sizeof(*l->p));
    l->n = calloc(n, sizeof(*l->n));
    if (with_vals) {
        l->v = calloc(n, sizeof(*l->v));
        l->vp = calloc(n, sizeof(*l->vp));
        l->vn = calloc(n, sizeof(*l->vn));
    }
    if (!l->p || !l->n || (with_vals && (!l->v || !l->vp || !l->vn))) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *name = with_vals ? &o->via.map.ptr[i].key : &o->via.array.ptr[i];

        if ((r = name_arg(name, &l->p[i], &l->n[i])) < 0) {
            return r;
        }
        if (with_vals) {
            r = enc_obj(&l->v[i], &o->via.map.ptr[i].val);
            l->nv++;
            if (r < 0) {
                return r;
            }
            l->vp[i] = l->v[i].sb.data;
            l->vn[i] = l->v[i].sb.size;
        }
        l->count++;
    }
    return 0;
}

/* The index of the called function's name in the NULL-terminated family: one
 * start function serves a family of table.* functions (the rows below). */
static int fn_index(const gr_rpc_call *c, const char *const *family)
{
    int i = 0;

    while (family[i] != NULL && strcmp(family[i], c->fn->name) != 0) {
        i++;
    }
    return i;
}

/* table.map_set(Name, Key, {Field: V}) | map_del(Name, Key, [Field]) |
 * set_add(Name, Key, [Member]) | set_rem(Name, Key, [Member]) -> count */
static int crdt_multi(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const char *const fns[] = {"map_set", "map_del", "set_add", "set_rem", NULL};
    int which = fn_index(c, fns);
    nlist l;
    uint64_t n = 0;
    tkey tk;
    int r;

    if ((r = nargs(args, 3, 3)) < 0) {
        return r;
    }
    if ((r = nlist_of(arg(args, 2), which == 0, &l)) < 0 || (r = key_open(c, args, &tk)) < 0) {
        nlist_free(&l);
        return r;
    }
    switch (which) {
    case 0:
        r = gr_table_map_set(tk.t, tk.k.sb.data, tk.k.sb.size, l.count, l.p, l.n, l.vp, l.vn, &n);
        break;
    case 1:
        r = gr_table_map_del(tk.t, tk.k.sb.data, tk.k.sb.size, l.count, l.p, l.n, &n);
        break;
    case 2:
        r = gr_table_set_add(tk.t, tk.k.sb.data, tk.k.sb.size, l.count, l.p, l.n, &n);
        break;
    default:
        r = gr_table_set_rem(tk.t, tk.k.sb.data, tk.k.sb.size, l.count, l.p, l.n, &n);
        break;
    }
    key_close(&tk);
    nlist_free(&l);
    return r < 0 ? r : gr_rpc_answer_uint(c, n);
}

/* table.map_get(Name, Key, Field) -> V | map_incr(Name, Key, Field [, N]) -> total |
 * set_ismember(Name, Key, Member) -> Bool */
static int crdt_one(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const char *const fns[] = {"map_get", "map_incr", "set_ismember", NULL};
    int which = fn_index(c, fns);
    gr_tbuf v = {0};
    const void *np;
    size_t nl;
    int64_t delta = 1, total = 0;
    bool is = false;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    tkey tk;
    int r;

    if ((r = nargs(args, 3, which == 1 ? 4 : 3)) < 0 ||
        (r = name_arg(arg(args, 2), &np, &nl)) < 0) {
        return r;
    }
    if (args->via.array.size == 4 && (r = delta_arg(arg(args, 3), &delta)) < 0) {
        return r;
    }
    if ((r = key_open(c, args, &tk)) < 0) {
        return r;
    }
    r = which == 0   ? gr_table_map_get(tk.t, tk.k.sb.data, tk.k.sb.size, np, nl, &v)
        : which == 1 ? gr_table_map_incr(tk.t, tk.k.sb.data, tk.k.sb.size, np, nl, delta, &total)
                     : gr_table_set_ismember(tk.t, tk.k.sb.data, tk.k.sb.size, np, nl, &is);
    key_close(&tk);
    if (r < 0) {
        gr_tbuf_free(&v);
        return r;
    }
    if (which == 0) {
        r = gr_rpc_answer(c, v.p, v.len);
        gr_tbuf_free(&v);
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (which == 1) {
        msgpack_pack_int64(&pk, total);
    } else if (is) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    return answer_sb(c, &sb);
}

typedef struct each_out {
    msgpack_sbuffer sb; /* names (and values) */
    msgpack_packer pk;
    uint32_t n; /* names */
} each_out;

static int each_one(void *ud, const uint8_t *name, size_t nlen, const uint8_t *val, size_t vlen)
{
    each_out *o = ud;

    msgpack_pack_str_with_body(&o->pk, name, nlen);
    if (val) {
        msgpack_sbuffer_write(&o->sb, (const char *)val, vlen);
    }
    o->n++;
    return 0;
}

/* table.map_getall(Name, Key) -> {Field: V} | map_len -> N | set_members -> [Member] |
 * set_card -> N | set_pop -> Member | type -> Str */
static int crdt_key(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const char *const fns[] = {"map_getall", "map_len", "set_members", "set_card",
                                      "set_pop",    "type",    NULL};
    int which = fn_index(c, fns);
    static const char *const kinds_s[] = {"none", "value", "counter", "map", "set"};
    each_out o;
    gr_tbuf v = {0};
    gr_tval_kind kd = GR_TVAL_NONE;
    uint64_t n = 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    tkey tk;
    int r;

    if ((r = nargs(args, 2, 2)) < 0 || (r = key_open(c, args, &tk)) < 0) {
        return r;
    }
    msgpack_sbuffer_init(&o.sb);
    msgpack_packer_init(&o.pk, &o.sb, msgpack_sbuffer_write);
    o.n = 0;
    switch (which) {
    case 0:
        r = gr_table_map_getall(tk.t, tk.k.sb.data, tk.k.sb.size, each_one, &o);
        break;
    case 1:
        r = gr_table_map_len(tk.t, tk.k.sb.data, tk.k.sb.size, &n);
        break;
    case 2:
        r = gr_table_set_members(tk.t, tk.k.sb.data, tk.k.sb.size, each_one, &o);
        break;
    case 3:
        r = gr_table_set_card(tk.t, tk.k.sb.data, tk.k.sb.size, &n);
        break;
    case 4:
        r = gr_table_set_pop(tk.t, tk.k.sb.data, tk.k.sb.size, &v);
        break;
    default:
        r = gr_table_type(tk.t, tk.k.sb.data, tk.k.sb.size, &kd);
        break;
    }
    key_close(&tk);
    if (r == 0) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (which == 0 || which == 2) {
            if (which == 0) {
                msgpack_pack_map(&pk, o.n);
            } else {
                msgpack_pack_array(&pk, o.n);
            }
            msgpack_sbuffer_write(&sb, o.sb.data, o.sb.size);
        } else if (which == 1 || which == 3) {
            msgpack_pack_uint64(&pk, n);
        } else if (which == 4) {
            msgpack_pack_str_with_body(&pk, v.p, v.len);
        } else {
            gr_term_pack_cstr(&pk, kinds_s[kd <= GR_TVAL_SET ? kd : 0]);
        }
        r = answer_sb(c, &sb);
    }
    msgpack_sbuffer_destroy(&o.sb);
    gr_tbuf_free(&v);
    return r;
}

static const gr_rpc_fn_def table_fns[] = {
    {"create", t_create, NULL, NULL},
    {"drop", t_drop, NULL, NULL},
    {"list", t_list, NULL, NULL},
    {"info", t_info, NULL, NULL},
    {"get", t_get, NULL, NULL},
    {"mget", t_mget, NULL, NULL},
    {"put", t_put, NULL, NULL},
    {"del", t_del, NULL, NULL},
    {"incr", t_incr, NULL, NULL},
    {"count", t_count, NULL, NULL},
    {"scan", t_scan, NULL, NULL},
    {"infos", t_infos, NULL, NULL},
    {"map_set", crdt_multi, NULL, NULL},
    {"map_del", crdt_multi, NULL, NULL},
    {"map_get", crdt_one, NULL, NULL},
    {"map_getall", crdt_key, NULL, NULL},
    {"map_incr", crdt_one, NULL, NULL},
    {"map_len", crdt_key, NULL, NULL},
    {"set_add", crdt_multi, NULL, NULL},
    {"set_rem", crdt_multi, NULL, NULL},
    {"set_members", crdt_key, NULL, NULL},
    {"set_ismember", crdt_one, NULL, NULL},
    {"set_card", crdt_key, NULL, NULL},
    {"set_pop", crdt_key, NULL, NULL},
    {"type", crdt_key, NULL, NULL},
};

const gr_rpc_module gr_rpc_mod_table = {"table", table_fns,
                                        sizeof(table_fns) / sizeof(table_fns[0])};
