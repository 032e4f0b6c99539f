/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_pubsub.c - rpc module `pubsub`: node-local topics and process groups.
 *
 *   pubsub.publish(Topic, Payload)       {"matched","delivered","dropped","killed","busy"}
 *   pubsub.subscribe(Pid, Pattern[, Opts]) "ok"   (a local pid; Opts as docs/pubsub.md)
 *   pubsub.unsubscribe(Pid, Pattern)     "ok"
 *   pubsub.subscriptions([Topic])        [{"pid","pattern","backlog",...}]
 *   pubsub.topics()                      [{"pattern","subscribers"}]
 *   pubsub.counters()                    {"published","delivered","dropped",...}
 *   pubsub.join(Scope, Group, Pid)  pubsub.leave(Scope, Group, Pid)   "ok"
 *   pubsub.members(Scope, Group)         [Pid, ...] (one per join)
 *   pubsub.groups([Scope])               [{"name","members"}] (no scope: the scopes)
 *   pubsub.members_all(Scope, Group)     [Pid, ...] on every node
 *   pubsub.register(Name, Pid)  unregister(Name)  global_send(Name, Msg)   "ok"
 *   pubsub.whereis(Name)                 Pid (cluster-wide name; enoname)
 *   pubsub.names()                       [{"name","pid","time_ms"}]
 *   pubsub.cluster()                     {"nodes","interest","remote_members","names"}
 *   pubsub.tap(Patterns[, Max])  tap_poll(Tap)  tap_close(Tap)   (girder sub)
 *
 * Every function is forwarded to the pubsub keeper (daemon/pubsub/keeper.c,
 * registered as GR_PUBSUB_NAME) as [Function, Args...] with girder_call, and
 * its answer relayed (a deferred reply), as `sys` does with its service: so
 * this module needs no pointer to the node's gr_pubsub, and rpc publishes
 * are ordered (all come from the keeper).
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "pubsub/pubsub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct ps_wait {
    girder_ref ref;
} ps_wait;

static int ps_forward(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *req;
    girder_pid keeper;
    ps_wait *w;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADARG;
    }
    if (girder_whereis(ctx, GR_PUBSUB_NAME, &keeper) < 0) {
        return GR_ENOPROC;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        return -ENOMEM;
    }
    c->priv = w;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1 + args->via.array.size);
    msgpack_pack_str_with_body(&pk, c->fn->name, strlen(c->fn->name));
    for (uint32_t i = 0; i < args->via.array.size; i++) {
        msgpack_pack_object(&pk, args->via.array.ptr[i]);
    }
    req = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!req) {
        return -ENOMEM;
    }
    r = girder_call(ctx, keeper, req, true, &w->ref);
    girder_msg_unref(req);
    return r < 0 ? r : GR_RPC_WAIT;
}

/* ["$reply", Ref, Response] or ["DOWN", Ref, "process", Pid, Reason] */
static int ps_forward_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    ps_wait *w = c->priv;
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
    /* The keeper answers errors as ["error", ReasonId]. */
    if (resp->type == MSGPACK_OBJECT_ARRAY && resp->via.array.size == 2 &&
        gr_term_is_str(&resp->via.array.ptr[0], "error") &&
        resp->via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
        int code =
            gr_err_from_id(resp->via.array.ptr[1].via.str.ptr, resp->via.array.ptr[1].via.str.size);

        return code < 0 ? code : GR_EBADARG;
    }
    return gr_rpc_answer_object(c, resp);
}

static const gr_rpc_fn_def ps_fns[] = {
    {"publish", ps_forward, ps_forward_msg, NULL},
    {"subscribe", ps_forward, ps_forward_msg, NULL},
    {"unsubscribe", ps_forward, ps_forward_msg, NULL},
    {"subscriptions", ps_forward, ps_forward_msg, NULL},
    {"topics", ps_forward, ps_forward_msg, NULL},
    {"counters", ps_forward, ps_forward_msg, NULL},
    {"join", ps_forward, ps_forward_msg, NULL},
    {"leave", ps_forward, ps_forward_msg, NULL},
    {"members", ps_forward, ps_forward_msg, NULL},
    {"groups", ps_forward, ps_forward_msg, NULL},
    {"members_all", ps_forward, ps_forward_msg, NULL},
    {"register", ps_forward, ps_forward_msg, NULL},
    {"unregister", ps_forward, ps_forward_msg, NULL},
    {"whereis", ps_forward, ps_forward_msg, NULL},
    {"global_send", ps_forward, ps_forward_msg, NULL},
    {"names", ps_forward, ps_forward_msg, NULL},
    {"cluster", ps_forward, ps_forward_msg, NULL},
    {"tap", ps_forward, ps_forward_msg, NULL},
    {"tap_poll", ps_forward, ps_forward_msg, NULL},
    {"tap_close", ps_forward, ps_forward_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_pubsub = {"pubsub", ps_fns, sizeof(ps_fns) / sizeof(ps_fns[0])};
