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
 *                      "suspended_ms", "trims", "suspects", "suspects_cleared",
 *                      "probe_reqs", "vouches", "dials_paced"}
 */
#include "rpc/rpc_int.h"

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
    gr_dist *dist = gr_rpc_dist(rpc);
    gr_dist_counters dc = {0};
    uint64_t now_ms = gr_rpc_now_ns() / 1000000u, started = gr_rpc_started_ms(rpc);
    uint64_t susp = 0, susp_now = 0, susp_us = 0;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 0) {
        return GR_EBADARG;
    }
    if (dist) {
        gr_dist_counters_get(dist, &dc);
    }
    gr_rt_suspend_counters(gr_rpc_rt(rpc), &susp, &susp_now, &susp_us);
    msgpack_pack_map(pk, 40);
    gr_term_pack_kv_uint(pk, "processes", gr_rt_process_count(gr_rpc_rt(rpc)));
    gr_term_pack_kv_uint(pk, "rpc_inflight", gr_rpc_inflight(rpc));
    gr_term_pack_kv_uint(pk, "uptime_ms", now_ms > started ? now_ms - started : 0);
    gr_term_pack_kv_uint(pk, "sched_wakeups", gr_rt_wakeups(gr_rpc_rt(rpc)));
    gr_term_pack_kv_uint(pk, "conns_accepted", dc.conns_accepted);
    gr_term_pack_kv_uint(pk, "conns_dialled", dc.conns_dialled);
    gr_term_pack_kv_uint(pk, "handshakes_ok", dc.handshakes_ok);
    gr_term_pack_kv_uint(pk, "handshakes_failed", dc.handshakes_failed);
    gr_term_pack_kv_uint(pk, "handshakes_refused", dc.handshakes_refused);
    gr_term_pack_kv_uint(pk, "handshakes_evicted", dc.handshakes_evicted);
    gr_term_pack_kv_uint(pk, "frames_in", dc.frames_in);
    gr_term_pack_kv_uint(pk, "frames_out", dc.frames_out);
    gr_term_pack_kv_uint(pk, "records_in", dc.records_in);
    gr_term_pack_kv_uint(pk, "records_out", dc.records_out);
    gr_term_pack_kv_uint(pk, "bytes_in", dc.bytes_in);
    gr_term_pack_kv_uint(pk, "bytes_out", dc.bytes_out);
    gr_term_pack_kv_uint(pk, "rpc_in", dc.rpc_in);
    gr_term_pack_kv_uint(pk, "rpc_out", dc.rpc_out);
    gr_term_pack_kv_uint(pk, "rpc_timeouts", dc.rpc_timeouts);
    gr_term_pack_kv_uint(pk, "nodedowns", dc.nodedowns);
    gr_term_pack_kv_uint(pk, "members_up", dc.members_up);
    gr_term_pack_kv_uint(pk, "signals_in", dc.signals_in);
    gr_term_pack_kv_uint(pk, "signals_out", dc.signals_out);
    gr_term_pack_kv_uint(pk, "signals_lost", dc.signals_lost);
    gr_term_pack_kv_uint(pk, "sigq_bytes", dc.sigq_bytes);
    gr_term_pack_kv_uint(pk, "sigq_peak", dc.sigq_peak);
    gr_term_pack_kv_uint(pk, "out_queued_bytes", dc.out_queued_bytes);
    gr_term_pack_kv_uint(pk, "links_busy", dc.links_busy);
    gr_term_pack_kv_uint(pk, "overloads", dc.overloads);
    gr_term_pack_kv_uint(pk, "overload_closes", dc.overload_closes);
    gr_term_pack_kv_uint(pk, "spin_offs", dc.spin_offs);
    gr_term_pack_kv_uint(pk, "suspects", dc.suspects);
    gr_term_pack_kv_uint(pk, "suspects_cleared", dc.suspects_cleared);
    gr_term_pack_kv_uint(pk, "probe_reqs", dc.probe_reqs);
    gr_term_pack_kv_uint(pk, "vouches", dc.vouches);
    gr_term_pack_kv_uint(pk, "dials_paced", dc.dials_paced);
    gr_term_pack_kv_uint(pk, "suspends", susp);
    gr_term_pack_kv_uint(pk, "suspended_now", susp_now);
    gr_term_pack_kv_uint(pk, "suspended_ms", susp_us / 1000u);
    gr_term_pack_kv_uint(pk, "trims", dc.trims);
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
