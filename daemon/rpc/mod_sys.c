/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_sys.c - rpc module `sys`: facts about this node.
 *
 *   sys.version() sys.uptime() sys.schedulers() sys.processes() sys.memory()
 *   sys.info()      -> answered by the `sys` service process (services/sys.h):
 *                      the worker forwards the request with girder_call and
 *                      relays the answer (a deferred reply, gr_rpc_forward)
 *   sys.counters()  -> {"processes", "rpc_inflight", "uptime_ms",
 *                      "sched_wakeups" (sleeping schedulers woken), and the dist
 *                      counters: "conns_accepted", "conns_dialled",
 *                      "handshakes_ok", "handshakes_failed",
 *                      "handshakes_refused", "handshakes_evicted", "frames_in",
 *                      "frames_out", "records_in", "records_out", "bytes_in",
 *                      "bytes_out", "rpc_in", "rpc_out", "rpc_timeouts",
 *                      "nodedowns", "members_up", "signals_in",
 *                      "signals_out", "signals_lost", "sigq_bytes", "sigq_peak",
 *                      "out_queued_bytes", "links_busy", "overloads",
 *                      "overload_closes", "spin_offs", "suspends", "suspended_now",
 *                      "suspended_ms", "trims", "repl_skipped_busy", "suspects",
 * "suspects_cleared", "probe_reqs", "vouches", "dials_paced", "messages_handled" (by processes),
 * "rpc_calls", "rpc_errors" (requests served, those answered with an error),
 * "sched_busy_us", "sched_wall_us" (schedulers' busy and wall time summed over
 * the schedulers: utilisation is the ratio of two readings' differences),
 * "sched_util_pct" (the same since the start)}: observe/observe.c
 *                      gathers them, shared with /metrics
 */
#include "rpc/rpc_int.h"

#include "observe/observe.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "services/sys.h"

/* Forward [FunctionName] to the sys service. */
static int sys_forward(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 0) {
        return GR_EBADARG;
    }
    return gr_rpc_forward(c, ctx, GR_SYS_NAME, args);
}

static int sys_counters(gr_rpc *rpc, const msgpack_object *args, msgpack_packer *pk)
{
    gr_observe_counters c;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 0) {
        return GR_EBADARG;
    }
    gr_observe_counters_get(rpc, &c);
    gr_observe_counters_pack(&c, pk);
    return 0;
}

static const gr_rpc_fn_def sys_fns[] = {
    {"version", sys_forward, gr_rpc_forward_msg, NULL},
    {"uptime", sys_forward, gr_rpc_forward_msg, NULL},
    {"schedulers", sys_forward, gr_rpc_forward_msg, NULL},
    {"processes", sys_forward, gr_rpc_forward_msg, NULL},
    {"memory", sys_forward, gr_rpc_forward_msg, NULL},
    {"info", sys_forward, gr_rpc_forward_msg, NULL},
    {"counters", NULL, NULL, sys_counters},
};

const gr_rpc_module gr_rpc_mod_sys = {"sys", sys_fns, sizeof(sys_fns) / sizeof(sys_fns[0])};
