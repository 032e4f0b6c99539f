/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_sys.c - rpc module `sys`: facts about this node.
 *
 *   sys.version() sys.uptime() sys.schedulers() sys.processes() sys.memory()
 *   sys.info()      -> answered by the `sys` service process (services/sys.h):
 *                      the worker forwards the request with girder_call and
 *                      relays the answer (a deferred reply)
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
 *                      "overload_closes", "suspends", "suspended_now",
 *                      "suspended_ms", "trims"}
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "services/sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The call's ref to the sys service, kept in priv. */
typedef struct sys_wait {
    girder_ref ref;
} sys_wait;

/* Forward [FunctionName] to the sys service. */
static int sys_forward(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *req;
    girder_pid sys;
    sys_wait *w;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 0) {
        return GR_EBADARG;
    }
    if (girder_whereis(ctx, GR_SYS_NAME, &sys) < 0) {
        return GR_ENOPROC;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        return -ENOMEM;
    }
    c->priv = w;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, c->fn->name, strlen(c->fn->name));
    req = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!req) {
        return -ENOMEM;
    }
    r = girder_call(ctx, sys, req, true, &w->ref);
    girder_msg_unref(req);
    return r < 0 ? r : GR_RPC_WAIT;
}

/* ["$reply", Ref, Response] or ["DOWN", Ref, "process", Pid, Reason] */
static int sys_forward_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    sys_wait *w = c->priv;
    const msgpack_object *a, *resp;
    girder_ref ref;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size < 3) {
        return GR_RPC_WAIT;
    }
    a = msg->via.array.ptr;
    if (girder_get_ref(ctx, &a[1], &ref) < 0 || !girder_ref_eq(ref, w->ref)) {
        return GR_RPC_WAIT;
    }
    if (gr_term_is_str(&a[0], "DOWN")) {
        return GR_ENOPROC;
    }
    if (!gr_term_is_str(&a[0], "$reply") || msg->via.array.size != 3) {
        return GR_RPC_WAIT;
    }
    girder_demonitor(ctx, w->ref);
    resp = &a[2];
    /* The service answers errors as ["error", ReasonId]. */
    if (resp->type == MSGPACK_OBJECT_ARRAY && resp->via.array.size == 2 &&
        gr_term_is_str(&resp->via.array.ptr[0], "error") &&
        resp->via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
        int code =
            gr_err_from_id(resp->via.array.ptr[1].via.str.ptr, resp->via.array.ptr[1].via.str.size);

        return code < 0 ? code : GR_EBADARG;
    }
    return gr_rpc_answer_object(c, resp);
}

static void pack_kv(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
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
    msgpack_pack_map(pk, 34);
    pack_kv(pk, "processes", gr_rt_process_count(gr_rpc_rt(rpc)));
    pack_kv(pk, "rpc_inflight", gr_rpc_inflight(rpc));
    pack_kv(pk, "uptime_ms", now_ms > started ? now_ms - started : 0);
    pack_kv(pk, "sched_wakeups", gr_rt_wakeups(gr_rpc_rt(rpc)));
    pack_kv(pk, "conns_accepted", dc.conns_accepted);
    pack_kv(pk, "conns_dialled", dc.conns_dialled);
    pack_kv(pk, "handshakes_ok", dc.handshakes_ok);
    pack_kv(pk, "handshakes_failed", dc.handshakes_failed);
    pack_kv(pk, "handshakes_refused", dc.handshakes_refused);
    pack_kv(pk, "handshakes_evicted", dc.handshakes_evicted);
    pack_kv(pk, "frames_in", dc.frames_in);
    pack_kv(pk, "frames_out", dc.frames_out);
    pack_kv(pk, "records_in", dc.records_in);
    pack_kv(pk, "records_out", dc.records_out);
    pack_kv(pk, "bytes_in", dc.bytes_in);
    pack_kv(pk, "bytes_out", dc.bytes_out);
    pack_kv(pk, "rpc_in", dc.rpc_in);
    pack_kv(pk, "rpc_out", dc.rpc_out);
    pack_kv(pk, "rpc_timeouts", dc.rpc_timeouts);
    pack_kv(pk, "nodedowns", dc.nodedowns);
    pack_kv(pk, "members_up", dc.members_up);
    pack_kv(pk, "signals_in", dc.signals_in);
    pack_kv(pk, "signals_out", dc.signals_out);
    pack_kv(pk, "signals_lost", dc.signals_lost);
    pack_kv(pk, "sigq_bytes", dc.sigq_bytes);
    pack_kv(pk, "sigq_peak", dc.sigq_peak);
    pack_kv(pk, "out_queued_bytes", dc.out_queued_bytes);
    pack_kv(pk, "links_busy", dc.links_busy);
    pack_kv(pk, "overloads", dc.overloads);
    pack_kv(pk, "overload_closes", dc.overload_closes);
    pack_kv(pk, "suspends", susp);
    pack_kv(pk, "suspended_now", susp_now);
    pack_kv(pk, "suspended_ms", susp_us / 1000u);
    pack_kv(pk, "trims", dc.trims);
    return 0;
}

static const gr_rpc_fn_def sys_fns[] = {
    {"version", sys_forward, sys_forward_msg, NULL},
    {"uptime", sys_forward, sys_forward_msg, NULL},
    {"schedulers", sys_forward, sys_forward_msg, NULL},
    {"processes", sys_forward, sys_forward_msg, NULL},
    {"memory", sys_forward, sys_forward_msg, NULL},
    {"info", sys_forward, sys_forward_msg, NULL},
    {"counters", NULL, NULL, sys_counters},
};

const gr_rpc_module gr_rpc_mod_sys = {"sys", sys_fns, sizeof(sys_fns) / sizeof(sys_fns[0])};
