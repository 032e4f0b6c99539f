/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tables_api.c - girder_table_* (girder.h) on the node's table engine: the
 * hook (gr_rt_table_ops) that gr_rpc installs in the runtime when it holds a
 * table engine, so a behaviour reaches the same tables as the rpc module
 * `table`, with the same rules (replication, TTL, limits, durability).
 *
 * Design notes: each call opens the table by name (one registry lookup under
 * the engine's registry mutex), does its operation and closes the handle, so
 * a table dropped meanwhile is never held open by a behaviour. The engine's
 * own locks make the calls safe from every scheduler at once. girder_buf and
 * gr_tbuf have the same layout; the value is copied through a gr_tbuf view of
 * the caller's buffer, so the caller's allocation is reused.
 *
 * Owning thread: the calling process's scheduler; no state of its own.
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "tables/tables.h"

#include <errno.h>

static int tops_get(void *ud, const char *table, const void *key, size_t klen, girder_buf *val,
                    uint64_t *ret_version)
{
    gr_tbuf b = {val->p, val->len, val->cap};
    gr_tmeta m;
    gr_table *t;
    int r;

    if ((r = gr_tables_open(ud, table, &t)) < 0) {
        return r;
    }
    r = gr_table_get(t, key, klen, &b, &m);
    *val = (girder_buf){b.p, b.len, b.cap};
    if (r == 0 && ret_version) {
        *ret_version = m.version;
    }
    gr_table_close(t);
    return r;
}

static int tops_put(void *ud, const char *table, const void *key, size_t klen, const void *val,
                    size_t vlen, const girder_put_opts *how, uint64_t *ret_version)
{
    gr_tput p = {0};
    gr_tmeta m;
    gr_table *t;
    int r;

    if (how) {
        if (how->flags & ~(GIRDER_PUT_IF_ABSENT | GIRDER_PUT_CAS | GIRDER_PUT_TTL)) {
            return GR_EBADARG;
        }
        p.flags = ((how->flags & GIRDER_PUT_IF_ABSENT) ? GR_TPUT_IF_ABSENT : 0u) |
                  ((how->flags & GIRDER_PUT_CAS) ? GR_TPUT_CAS : 0u) |
                  ((how->flags & GIRDER_PUT_TTL) ? GR_TPUT_TTL : 0u);
        p.version = how->version;
        p.ttl_ms = how->ttl_ms;
    }
    if ((r = gr_tables_open(ud, table, &t)) < 0) {
        return r;
    }
    r = gr_table_put(t, key, klen, val, vlen, how ? &p : NULL, &m);
    if (r == 0 && ret_version) {
        *ret_version = m.version;
    }
    gr_table_close(t);
    return r;
}

static int tops_del(void *ud, const char *table, const void *key, size_t klen, uint64_t version)
{
    gr_table *t;
    int r;

    if ((r = gr_tables_open(ud, table, &t)) < 0) {
        return r;
    }
    r = gr_table_del(t, key, klen, version);
    gr_table_close(t);
    return r;
}

static int tops_incr(void *ud, const char *table, const void *key, size_t klen, int64_t delta,
                     int64_t *ret_value)
{
    gr_table *t;
    int r;

    if ((r = gr_tables_open(ud, table, &t)) < 0) {
        return r;
    }
    r = gr_table_incr(t, key, klen, delta, ret_value);
    gr_table_close(t);
    return r;
}

void gr_rpc_table_ops(gr_tables *ts, gr_rt_table_ops *ret_ops)
{
    *ret_ops = (gr_rt_table_ops){tops_get, tops_put, tops_del, tops_incr, ts};
}
