/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc.h - serving rpc requests: the module table and the per-call workers.
 *
 * Every request that reaches this node (from a member or from the girder CLI)
 * arrives on the dist thread (dist/dist.h, gr_dist_rpc_fn). gr_rpc_dispatch
 * looks up module.function in the table of built-in modules; an unknown one is
 * answered at once (undef_module / undef_function). A known one gets a fresh
 * worker process, spread round-robin over the schedulers, that runs the handler
 * and answers when it is ready - at once or later (a deferred reply: a call
 * forwarded to another node, a join waiting for the link). So no single server
 * process exists that every call would queue behind, and a slow call holds only
 * its own worker.
 *
 * Exactly once: a worker answers its request once - the handler's result, its
 * error, GR_ETIMEOUT when the request's deadline passes first, or GR_ESTOPPED if
 * the worker is killed (node shutdown). The caller enforces its own deadline too.
 *
 * Built-in modules (docs/rpc.md lists arguments and results; rpc.c's table):
 *   node  ping, self, list, join, leave
 *   sys   version, uptime, schedulers, processes, memory, info, counters
 *   rpc   call, cast, multicall, latency
 *   proc  spawn, list, snapshot, info, kill, register, whereis, send, call
 *   table create, drop, list, info, get, mget, put, del, incr, count, scan
 * Further modules come from gr_rpc_config.modules (written against rpc_int.h):
 * girderd-testkit adds `bench` (testkit/mod_bench.c).
 *
 * Threading: gr_rpc_dispatch runs on the dist thread; workers on schedulers;
 * the call table between them is mutex-protected. The gr_rpc outlives every
 * worker: free it after gr_rt_stop.
 */
#ifndef GR_RPC_H
#define GR_RPC_H

#include "dist/dist.h"
#include "girder/girder.h"
#include "tables/tables.h"

#include <stddef.h>
#include <stdint.h>

#define GR_RPC_DEFAULT_DEADLINE_MS 60000 /* a request without deadline: worker limit */

typedef struct gr_rpc gr_rpc;

/* Where answers go. The daemon leaves it NULL (answers go to gr_dist_reply);
 * tests capture them. Called from worker (scheduler) threads. */
typedef int (*gr_rpc_reply_fn)(void *ud, uint64_t conn, uint64_t ref, int status,
                               const void *result, size_t len);

typedef struct gr_rpc_config {
    girder_rt *rt;            /* started before the first dispatch */
    uint64_t started_ms;      /* CLOCK_MONOTONIC ms girderd started (uptime) */
    gr_rpc_reply_fn reply_fn; /* NULL: gr_dist_reply on the dist of gr_rpc_set_dist */
    void *reply_ud;
    /* node.leave: called once the "ok" is answered, from a worker thread; girderd
     * raises SIGTERM (a graceful stop). NULL: node.leave answers an error. */
    void (*leave_fn)(void *ud);
    void *leave_ud;
    /* Modules served besides the built-in ones (a daemon extension such as the
     * test kit's `bench`, daemon/daemon.h). Borrowed: the array and the modules
     * outlive the gr_rpc. NULL / 0: the built-in modules only. */
    const struct gr_rpc_module *const *modules;
    size_t nmodules;
    /* The node's tables (module `table`), owned by the caller and alive until
     * gr_rpc_free. NULL: the rpc makes a memory-only engine of its own (no
     * disk tables), named after the node. */
    /* The data directory of the engine the rpc makes when `tables` is NULL
     * (disk tables in DATA_DIR/tables/), or NULL: memory tables only. Borrowed
     * for gr_rpc_new only. */
    const char *data_dir;
    gr_tables *tables;
} gr_rpc_config;

/* Create; registers the worker behaviour on rt. 0, -EINVAL, -ENOMEM, or
 * -EEXIST (an extension module has the name of a built-in or earlier one). */
int gr_rpc_new(const gr_rpc_config *cfg, gr_rpc **ret_rpc);
/* Attach the node's dist (made after the gr_rpc, since dist's config names
 * gr_rpc_dispatch). Before gr_dist_start. NULL: node.list shows only self and
 * remote calls fail with noconnection. */
void gr_rpc_set_dist(gr_rpc *rpc, gr_dist *dist);
/* Free after the runtime stopped (no worker left) and before it is freed (this
 * removes the girder_table_* hook from it). A request whose worker never
 * ran is answered GR_ESTOPPED here (keep the dist alive until then, or the
 * answer is dropped). NULL-safe; returns NULL. */
gr_rpc *gr_rpc_free(gr_rpc *rpc);

/* The gr_dist_rpc_fn: ud is the gr_rpc. Never blocks. A request from an
 * observer (req->role) that gr_rpc_policy_check refuses is answered
 * GR_ENOTALLOWED at once, before anything runs. */
void gr_rpc_dispatch(void *ud, const gr_dist_request *req);

/* May a connection of `role` (GR_ROLE_x, proto/handshake.h) call
 * module.function with args[0..args_len) (one msgpack array; read for
 * rpc.call / rpc.multicall, whose inner call must itself be allowed)? 0, or
 * GR_ENOTALLOWED. A member may call everything; an observer only what
 * policy.c's table lists (reads). The one place this is decided. Pure, any
 * thread. */
int gr_rpc_policy_check(int role, const char *module, const char *function, const uint8_t *args,
                        size_t args_len);

/* Requests being served right now (workers alive). Any thread. */
uint64_t gr_rpc_inflight(gr_rpc *rpc);

/* Served-request statistics: every request that came in through
 * gr_rpc_dispatch (from the CLI, a member, the HTTP API), counted when it is
 * answered, with the time from dispatch to answer in a fixed-bucket histogram
 * (relaxed atomics: two adds per request). Calls a node makes to itself inside
 * rpc.multicall are not requests and are not counted. */
#define GR_RPC_LAT_BUCKETS 16 /* finite upper bounds; one more bucket above them */
/* The finite bucket upper bounds, microseconds, ascending. */
#define GR_RPC_LAT_BOUNDS_US                                                                       \
    {                                                                                              \
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,     \
            2500000, 5000000, 10000000                                                             \
    }

typedef struct gr_rpc_stats {
    uint64_t calls;                           /* requests answered */
    uint64_t errors;                          /* of which answered with an error */
    uint64_t sum_us;                          /* total dispatch-to-answer time, us */
    uint64_t buckets[GR_RPC_LAT_BUCKETS + 1]; /* per bucket (not cumulative); last: above */
} gr_rpc_stats;

/* Snapshot of the statistics (each field read on its own: a request being
 * counted may show in one and not yet in another). Any thread. */
void gr_rpc_stats_get(gr_rpc *rpc, gr_rpc_stats *ret);

/* The node's table engine (module `table`), or NULL. Any thread. */
gr_tables *gr_rpc_tables(const gr_rpc *rpc);

#endif
