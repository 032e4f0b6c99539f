/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_pubsub.c - rpc module `pubsub`: node-local topics and process groups.
 *
 *   pubsub.publish(Topic, Payload)       {"matched","delivered","dropped","killed","busy"}
 *   pubsub.subscribe(Pid, Pattern[, Opts]) "ok"   (a local pid; Opts as docs/pubsub.md)
 *   pubsub.unsubscribe(Pid, Pattern)     "ok"
 *   pubsub.subscriptions([Topic])        [{"pid","pattern","backlog",...}]
 *   pubsub.topics()                      [{"pattern","subscribers"}]
 *   pubsub.owned(Pid)                    {"topics": [Pattern], "groups": [[Scope, Group]]}
 *   pubsub.counters()                    {"published","delivered","dropped",...}
 *   pubsub.join(Scope, Group, Pid)  pubsub.leave(Scope, Group, Pid)   "ok"
 *   pubsub.members(Scope, Group)         [Pid, ...] (one per join)
 *   pubsub.groups([Scope])               [{"name","members"}] (no scope: the scopes)
 *   pubsub.members_all(Scope, Group)     [Pid, ...] on every node
 *   pubsub.register(Name, Pid)  unregister(Name)  global_send(Name, Msg)   "ok"
 *   pubsub.whereis(Name)                 Pid (cluster-wide name; enoname)
 *   pubsub.names()                       [{"name","pid","time_ms"}]
 *   pubsub.cluster()                     {"nodes","interest","remote_members","names"}
 *   pubsub.tap(Patterns[, Max])  tap_poll(Tap)  tap_wait(Tap, Ms)  tap_close(Tap)
 *                                        (girder sub; tap_wait is answered by the tap)
 *
 * Every function is forwarded to the pubsub keeper (daemon/pubsub/keeper.c,
 * registered as GR_PUBSUB_NAME) as [Function, Args...] with girder_call, and
 * its answer relayed (a deferred reply; gr_rpc_forward in rpc.c), as `sys`
 * does with its service: so this module needs no pointer to the node's
 * gr_pubsub, and rpc publishes are ordered (all come from the keeper).
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "pubsub/pubsub.h"

/* Forward [Function, Args...] to the keeper. */
static int ps_forward(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    return gr_rpc_forward(c, ctx, GR_PUBSUB_NAME, args);
}

static const gr_rpc_fn_def ps_fns[] = {
    {"publish", ps_forward, gr_rpc_forward_msg, NULL},
    {"subscribe", ps_forward, gr_rpc_forward_msg, NULL},
    {"unsubscribe", ps_forward, gr_rpc_forward_msg, NULL},
    {"subscriptions", ps_forward, gr_rpc_forward_msg, NULL},
    {"topics", ps_forward, gr_rpc_forward_msg, NULL},
    {"owned", ps_forward, gr_rpc_forward_msg, NULL},
    {"counters", ps_forward, gr_rpc_forward_msg, NULL},
    {"join", ps_forward, gr_rpc_forward_msg, NULL},
    {"leave", ps_forward, gr_rpc_forward_msg, NULL},
    {"members", ps_forward, gr_rpc_forward_msg, NULL},
    {"groups", ps_forward, gr_rpc_forward_msg, NULL},
    {"members_all", ps_forward, gr_rpc_forward_msg, NULL},
    {"register", ps_forward, gr_rpc_forward_msg, NULL},
    {"unregister", ps_forward, gr_rpc_forward_msg, NULL},
    {"whereis", ps_forward, gr_rpc_forward_msg, NULL},
    {"global_send", ps_forward, gr_rpc_forward_msg, NULL},
    {"names", ps_forward, gr_rpc_forward_msg, NULL},
    {"cluster", ps_forward, gr_rpc_forward_msg, NULL},
    {"tap", ps_forward, gr_rpc_forward_msg, NULL},
    {"tap_poll", ps_forward, gr_rpc_forward_msg, NULL},
    {"tap_wait", ps_forward, gr_rpc_forward_msg, NULL},
    {"tap_close", ps_forward, gr_rpc_forward_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_pubsub = {"pubsub", ps_fns, sizeof(ps_fns) / sizeof(ps_fns[0])};
