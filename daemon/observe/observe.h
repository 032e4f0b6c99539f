/* SPDX-License-Identifier: Apache-2.0 */
/*
 * observe.h - the node's counters in one place: what sys.counters answers and
 * what /metrics exposes are gathered here, once, from the runtime, the rpc
 * service and dist.
 *
 * Any thread: every source is read with relaxed atomics or under its own lock
 * (gr_dist_counters_get, gr_rt_suspend_counters), so a snapshot is a set of
 * figures each a moment old, not one instant.
 */
#ifndef GR_OBSERVE_H
#define GR_OBSERVE_H

#include "dist/dist.h"
#include "rpc/rpc.h"

#include <msgpack.h>
#include <stdint.h>

/* One snapshot of the node's counters. */
typedef struct gr_observe_counters {
    uint64_t processes;        /* live processes */
    uint64_t rpc_inflight;     /* rpc requests being served */
    uint64_t uptime_ms;        /* since girderd started */
    uint64_t sched_wakeups;    /* sleeping schedulers woken */
    uint64_t messages_handled; /* messages handled by processes */
    uint64_t suspends;         /* processes suspended on a busy link, ever */
    uint64_t suspended_now;    /* suspended right now */
    uint64_t suspended_us;     /* total time spent suspended */
    uint64_t sched_busy_us;    /* schedulers' busy time, summed (gr_rt_sched_time) */
    uint64_t sched_wall_us;    /* schedulers' wall time, summed */
    gr_rpc_stats rpc;          /* served requests and their latency */
    gr_dist_counters dist;     /* links (all zero without dist) */
} gr_observe_counters;

/* Fill *ret from rpc's runtime, its dist (may be unset) and itself. */
void gr_observe_counters_get(gr_rpc *rpc, gr_observe_counters *ret);

/* Pack c as the sys.counters map (docs/rpc.md lists the keys). */
void gr_observe_counters_pack(const gr_observe_counters *c, msgpack_packer *pk);

#endif
