/* SPDX-License-Identifier: Apache-2.0 */
/*
 * observe.c - the node's counters (observe.h): one gathering function used by
 * rpc sys.counters (mod_sys.c) and by the HTTP /metrics page (http/http.c), so
 * the two can never disagree about what a figure is.
 */
#include "observe/observe.h"

#include "proto/term.h"
#include "rpc/rpc_int.h"
#include "runtime/rt.h"

#include <string.h>

void gr_observe_counters_get(gr_rpc *rpc, gr_observe_counters *ret)
{
    girder_rt *rt = gr_rpc_rt(rpc);
    gr_dist *dist = gr_rpc_dist(rpc);
    uint64_t now_ms = gr_rpc_now_ns() / 1000000u, started = gr_rpc_started_ms(rpc);

    memset(ret, 0, sizeof(*ret));
    if (dist) {
        gr_dist_counters_get(dist, &ret->dist);
    }
    gr_rt_suspend_counters(rt, &ret->suspends, &ret->suspended_now, &ret->suspended_us);
    gr_rpc_stats_get(rpc, &ret->rpc);
    ret->processes = gr_rt_process_count(rt);
    ret->rpc_inflight = gr_rpc_inflight(rpc);
    ret->uptime_ms = now_ms > started ? now_ms - started : 0;
    ret->sched_wakeups = gr_rt_wakeups(rt);
    ret->messages_handled = gr_rt_messages_handled(rt);
    for (unsigned i = 0; i < gr_rt_schedulers(rt); i++) {
        uint64_t busy, wall;

        gr_rt_sched_time(rt, i, &busy, &wall);
        ret->sched_busy_us += busy / 1000u;
        ret->sched_wall_us += wall / 1000u;
    }
}

void gr_observe_counters_pack(const gr_observe_counters *c, msgpack_packer *pk)
{
    const gr_dist_counters *dc = &c->dist;

    msgpack_pack_map(pk, 48);
    gr_term_pack_kv_uint(pk, "processes", c->processes);
    gr_term_pack_kv_uint(pk, "rpc_inflight", c->rpc_inflight);
    gr_term_pack_kv_uint(pk, "uptime_ms", c->uptime_ms);
    gr_term_pack_kv_uint(pk, "sched_wakeups", c->sched_wakeups);
    gr_term_pack_kv_uint(pk, "conns_accepted", dc->conns_accepted);
    gr_term_pack_kv_uint(pk, "conns_dialled", dc->conns_dialled);
    gr_term_pack_kv_uint(pk, "handshakes_ok", dc->handshakes_ok);
    gr_term_pack_kv_uint(pk, "handshakes_failed", dc->handshakes_failed);
    gr_term_pack_kv_uint(pk, "handshakes_refused", dc->handshakes_refused);
    gr_term_pack_kv_uint(pk, "handshakes_evicted", dc->handshakes_evicted);
    gr_term_pack_kv_uint(pk, "frames_in", dc->frames_in);
    gr_term_pack_kv_uint(pk, "frames_out", dc->frames_out);
    gr_term_pack_kv_uint(pk, "records_in", dc->records_in);
    gr_term_pack_kv_uint(pk, "records_out", dc->records_out);
    gr_term_pack_kv_uint(pk, "bytes_in", dc->bytes_in);
    gr_term_pack_kv_uint(pk, "bytes_out", dc->bytes_out);
    gr_term_pack_kv_uint(pk, "rpc_in", dc->rpc_in);
    gr_term_pack_kv_uint(pk, "rpc_out", dc->rpc_out);
    gr_term_pack_kv_uint(pk, "rpc_timeouts", dc->rpc_timeouts);
    gr_term_pack_kv_uint(pk, "nodedowns", dc->nodedowns);
    gr_term_pack_kv_uint(pk, "members_up", dc->members_up);
    gr_term_pack_kv_uint(pk, "signals_in", dc->signals_in);
    gr_term_pack_kv_uint(pk, "signals_out", dc->signals_out);
    gr_term_pack_kv_uint(pk, "signals_lost", dc->signals_lost);
    gr_term_pack_kv_uint(pk, "sigq_bytes", dc->sigq_bytes);
    gr_term_pack_kv_uint(pk, "sigq_peak", dc->sigq_peak);
    gr_term_pack_kv_uint(pk, "out_queued_bytes", dc->out_queued_bytes);
    gr_term_pack_kv_uint(pk, "links_busy", dc->links_busy);
    gr_term_pack_kv_uint(pk, "overloads", dc->overloads);
    gr_term_pack_kv_uint(pk, "overload_closes", dc->overload_closes);
    gr_term_pack_kv_uint(pk, "spin_offs", dc->spin_offs);
    gr_term_pack_kv_uint(pk, "suspends", c->suspends);
    gr_term_pack_kv_uint(pk, "suspended_now", c->suspended_now);
    gr_term_pack_kv_uint(pk, "suspended_ms", c->suspended_us / 1000u);
    gr_term_pack_kv_uint(pk, "trims", dc->trims);
    gr_term_pack_kv_uint(pk, "repl_skipped_busy", dc->repl_skipped_busy);
    gr_term_pack_kv_uint(pk, "suspects", dc->suspects);
    gr_term_pack_kv_uint(pk, "suspects_cleared", dc->suspects_cleared);
    gr_term_pack_kv_uint(pk, "probe_reqs", dc->probe_reqs);
    gr_term_pack_kv_uint(pk, "vouches", dc->vouches);
    gr_term_pack_kv_uint(pk, "dials_paced", dc->dials_paced);
    gr_term_pack_kv_uint(pk, "links_retired", dc->links_retired);
    gr_term_pack_kv_uint(pk, "messages_handled", c->messages_handled);
    gr_term_pack_kv_uint(pk, "rpc_calls", c->rpc.calls);
    gr_term_pack_kv_uint(pk, "rpc_errors", c->rpc.errors);
    gr_term_pack_kv_uint(pk, "sched_busy_us", c->sched_busy_us);
    gr_term_pack_kv_uint(pk, "sched_wall_us", c->sched_wall_us);
    /* since the start, in percent; girder top shows it over its interval */
    gr_term_pack_kv_uint(
        pk, "sched_util_pct",
        c->sched_wall_us ? (c->sched_busy_us * 100u + c->sched_wall_us / 2) / c->sched_wall_us : 0);
}
