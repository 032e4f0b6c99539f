/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeper.c - the pubsub keeper process: monitors every process that holds a
 * subscription, a group join or a group monitor, cleans up after it dies, and
 * answers requests (the rpc module `pubsub` forwards to it).
 *
 * Design notes
 *   Registered as GR_PUBSUB_NAME; its pid is in ps->keeper. A new owner record
 *   (subs.c) sends it ["$ps_watch", Pid]; it monitors Pid once (the owner's
 *   `watched` mark and `mref`, set under ps->lock) and on ["DOWN", ...] calls
 *   gr_ps_owner_gone. A pid already dead gives DOWN "noproc", so every order
 *   of subscribe and death ends clean. An owner released while its process
 *   lives (it unsubscribed, left and demonitored everything) sends
 *   ["$ps_unwatch", Ref]: the keeper demonitors, so monitors never pile up on
 *   a process that subscribes and unsubscribes in a loop.
 *   If the keeper dies (killed by hand), terminate spawns a new one, whose init
 *   takes ps->keeper and monitors every owner left: watches sent to the dead
 *   keeper are covered by that walk. During gr_rt_stop the spawn fails
 *   (GR_ESTOPPED) and nothing is left to clean.
 *   The behaviour is not registered by name, so rpc cannot spawn one: its spawn
 *   argument carries the gr_pubsub's address.
 *
 * Requests, with girder_call: [Fn, Args...] -> Result or ["error", ReasonId]
 *   ["publish", Topic, Payload]         {"matched","delivered","dropped","killed","busy"}
 *   ["subscribe", Pid, Pattern, Opts?]  "ok"  (Opts: {"max_msgs","max_bytes",
 *                                              "high_pct","policy": "drop"|"kill"})
 *   ["unsubscribe", Pid, Pattern]       "ok"
 *   ["subscriptions", Topic?]           [{"pid","pattern","backlog","backlog_bytes",
 *                                         "peak","delivered","dropped","busy",
 *                                         "max_msgs","max_bytes","high_pct","policy"}]
 *   ["topics"]                          [{"pattern", "subscribers"}] (sorted)
 *   ["owned", Pid]                      {"topics": [Pattern...], "groups": [[Scope,
 *                                        Group]...]}: what a local pid holds
 *   ["counters"]                        {"published", ...} (gr_pubsub_counters)
 *   ["join" | "leave", Scope, Group, Pid]  "ok"
 *   ["members", Scope, Group]           [Pid, ...] (one per join)
 *   ["groups", Scope?]                  [{"name", "members"}] sorted by name; no
 *                                       scope: the scopes
 *   ["sync"]                            "ok" (after everything sent to it before)
 */
#include "pubsub/pubsub_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const girder_behaviour keeper_beh;

typedef struct keeper {
    gr_pubsub *ps;
} keeper;

static girder_msg *ptr_arg(gr_pubsub *ps)
{
    uintptr_t v = (uintptr_t)ps;

    return girder_msg_new(&v, sizeof(v)); /* raw bytes: never sent anywhere */
}

static int keeper_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    keeper *k = calloc(1, sizeof(*k));
    girder_pid self = girder_self(ctx);
    uintptr_t v;
    gr_pubsub *ps;

    if (k == NULL || arg == NULL || girder_msg_size(arg) != sizeof(v)) {
        free(k);
        return -ENOMEM;
    }
    memcpy(&v, girder_msg_data(arg), sizeof(v));
    ps = k->ps = (gr_pubsub *)v;
    (void)girder_register(ctx, GR_PUBSUB_NAME, self); /* taken: serve without the name */
    /* Monitor every owner (a predecessor's monitors died with it). Under the
     * lock, so an owner released meanwhile cannot miss its $ps_unwatch: the
     * monitor only emits a signal. */
    pthread_mutex_lock(&ps->lock);
    ps->keeper = self;
    for (size_t i = 0; i <= ps->omask; i++) {
        for (gr_ps_owner *o = ps->owners[i]; o; o = o->hnext) {
            o->watched = girder_monitor(ctx, o->pid, &o->mref) == 0;
        }
    }
    pthread_mutex_unlock(&ps->lock);
    gr_ps_wide_keeper_init(ctx, ps);
    *ret_state = k;
    return 0;
}

static void keeper_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    keeper *k = state;
    girder_msg *arg = ptr_arg(k->ps);
    girder_pid pid;

    (void)reason;
    pthread_mutex_lock(&k->ps->lock);
    k->ps->keeper = (girder_pid){0, 0, 0};
    pthread_mutex_unlock(&k->ps->lock);
    /* Respawn (same scheduler: its init runs after this exit has dropped the
     * name). GR_ESTOPPED while the runtime stops. */
    if (arg != NULL) {
        (void)girder_spawn(ctx, &keeper_beh, arg, 0, &pid, NULL);
    }
    girder_msg_unref(arg);
    free(k);
}

static void on_watch(girder_ctx *ctx, keeper *k, const msgpack_object *pido)
{
    girder_pid pid;
    gr_ps_owner *o;

    if (girder_get_pid(ctx, pido, &pid) < 0) {
        return;
    }
    /* Under the lock, with the ref stored at once: a release of this owner
     * then always finds the ref to send back. */
    pthread_mutex_lock(&k->ps->lock);
    if ((o = gr_ps_owner_get_locked(k->ps, pid, false)) != NULL && !o->watched) {
        o->watched = girder_monitor(ctx, pid, &o->mref) == 0;
    }
    pthread_mutex_unlock(&k->ps->lock);
}

/* ["$ps_unwatch", Ref]: an owner was released while its process lives. */
static void on_unwatch(girder_ctx *ctx, const msgpack_object *refo)
{
    girder_ref ref;

    if (girder_get_ref(ctx, refo, &ref) == 0) {
        (void)girder_demonitor(ctx, ref);
    }
}

/* ---- requests ----------------------------------------------------------------- */

static void kv_u(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

static void kv_s(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static bool is_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0;
}

/* A NUL-terminated copy of a name argument (1..GR_PG_NAME_MAX bytes, no NUL). */
static int get_name(const msgpack_object *o, char *buf)
{
    if (!is_str(o) || o->via.str.size > GR_PG_NAME_MAX ||
        memchr(o->via.str.ptr, 0, o->via.str.size) != NULL) {
        return GR_EBADARG;
    }
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = 0;
    return 0;
}

static int get_opts(const msgpack_object *o, gr_sub_opts *opts)
{
    *opts = (gr_sub_opts){0};
    if (o->type == MSGPACK_OBJECT_NIL) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADARG;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *key = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;

        if (gr_term_is_str(key, "policy")) {
            if (gr_term_is_str(v, "kill")) {
                opts->policy = GR_SUB_KILL;
            } else if (!gr_term_is_str(v, "drop")) {
                return GR_EBADARG;
            }
            continue;
        }
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            return GR_EBADARG;
        }
        if (gr_term_is_str(key, "max_msgs") && v->via.u64 <= UINT32_MAX) {
            opts->max_msgs = (uint32_t)v->via.u64;
        } else if (gr_term_is_str(key, "max_bytes")) {
            opts->max_bytes = v->via.u64;
        } else if (gr_term_is_str(key, "high_pct") && v->via.u64 <= 100) {
            opts->high_pct = (uint32_t)v->via.u64;
        } else {
            return GR_EBADARG;
        }
    }
    return 0;
}

static int cmp_group(const void *a, const void *b)
{
    return strcmp(((const gr_pg_group_info *)a)->name, ((const gr_pg_group_info *)b)->name);
}

static int cmp_pattern(const void *a, const void *b)
{
    return strcmp(((const gr_sub_info *)a)->pattern, ((const gr_sub_info *)b)->pattern);
}

static int req_subscriptions(gr_pubsub *ps, msgpack_packer *pk, const msgpack_object *topic,
                             bool topics_only)
{
    gr_sub_info *v = NULL;
    size_t n = 0, distinct = 0;
    int r;

    if (topic != NULL && !is_str(topic)) {
        return GR_EBADARG;
    }
    if ((r = gr_pubsub_subscriptions(ps, topic ? topic->via.str.ptr : NULL,
                                     topic ? topic->via.str.size : 0, &v, &n)) < 0) {
        return r;
    }
    qsort(v, n, sizeof(*v), cmp_pattern);
    if (topics_only) {
        for (size_t i = 0; i < n; i++) {
            distinct += i == 0 || strcmp(v[i].pattern, v[i - 1].pattern) != 0;
        }
        msgpack_pack_array(pk, (uint32_t)distinct);
        for (size_t i = 0, j; i < n; i = j) {
            for (j = i; j < n && strcmp(v[j].pattern, v[i].pattern) == 0; j++) {
            }
            msgpack_pack_map(pk, 2);
            kv_s(pk, "pattern", v[i].pattern);
            kv_u(pk, "subscribers", j - i);
        }
        free(v);
        return 0;
    }
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 12);
        msgpack_pack_str_with_body(pk, "pid", 3);
        gr_ps_pack_pid(ps, pk, v[i].pid);
        kv_s(pk, "pattern", v[i].pattern);
        kv_u(pk, "backlog", v[i].backlog_msgs);
        kv_u(pk, "backlog_bytes", v[i].backlog_bytes);
        kv_u(pk, "peak", v[i].peak_msgs);
        kv_u(pk, "delivered", v[i].delivered);
        kv_u(pk, "dropped", v[i].dropped);
        kv_u(pk, "busy", v[i].busy);
        kv_u(pk, "max_msgs", v[i].opts.max_msgs);
        kv_u(pk, "max_bytes", v[i].opts.max_bytes);
        kv_u(pk, "high_pct", v[i].opts.high_pct);
        kv_s(pk, "policy", v[i].opts.policy == GR_SUB_KILL ? "kill" : "drop");
    }
    free(v);
    return 0;
}

static void pack_counters(gr_pubsub *ps, msgpack_packer *pk)
{
    gr_pubsub_counters c;

    gr_pubsub_counters_get(ps, &c);
    msgpack_pack_map(pk, 9);
    kv_u(pk, "published", c.published);
    kv_u(pk, "delivered", c.delivered);
    kv_u(pk, "dropped", c.dropped);
    kv_u(pk, "killed", c.killed);
    kv_u(pk, "busy", c.busy);
    kv_u(pk, "subscriptions", c.subscriptions);
    kv_u(pk, "owners", c.owners);
    kv_u(pk, "joins", c.joins);
    kv_u(pk, "cleanups", c.cleanups);
}

/* The cluster-wide names and the cluster layer's sizes; 1 if a[0] is none
 * of those. */
static int serve_global(girder_ctx *ctx, gr_pubsub *ps, const msgpack_object *a, uint32_t n,
                        msgpack_packer *pk)
{
    char name[GR_PG_NAME_MAX + 1];
    girder_pid pid;
    int r;

    if (gr_term_is_str(&a[0], "register") && n == 3) {
        if (get_name(&a[1], name) < 0 || girder_get_pid(ctx, &a[2], &pid) < 0) {
            return GR_EBADARG;
        }
        if ((r = gr_global_register(ps, name, pid)) < 0) {
            return r;
        }
    } else if (gr_term_is_str(&a[0], "unregister") && n == 2) {
        if (get_name(&a[1], name) < 0) {
            return GR_EBADARG;
        }
        if ((r = gr_global_unregister(ps, name)) < 0) {
            return r == -ENOENT ? GR_ENONAME : r;
        }
    } else if (gr_term_is_str(&a[0], "whereis") && n == 2) {
        if (get_name(&a[1], name) < 0) {
            return GR_EBADARG;
        }
        if ((r = gr_global_whereis(ps, name, &pid)) < 0) {
            return r == -ENOENT ? GR_ENONAME : r;
        }
        return gr_ps_pack_pid(ps, pk, pid) < 0 ? -ENOMEM : 0;
    } else if (gr_term_is_str(&a[0], "global_send") && n == 3) {
        girder_msg *m;

        if (get_name(&a[1], name) < 0) {
            return GR_EBADARG;
        }
        if ((m = girder_msg_from_object(&a[2])) == NULL) {
            return -ENOMEM;
        }
        if ((r = gr_global_send(ps, ctx, name, m)) < 0) {
            girder_msg_unref(m);
            return r;
        }
    } else if (gr_term_is_str(&a[0], "names") && n == 1) {
        gr_global_info *v = NULL;
        size_t nn = 0;

        if ((r = gr_global_names(ps, &v, &nn)) < 0) {
            return r;
        }
        msgpack_pack_array(pk, (uint32_t)nn);
        for (size_t i = 0; i < nn; i++) {
            msgpack_pack_map(pk, 3);
            kv_s(pk, "name", v[i].name);
            msgpack_pack_str_with_body(pk, "pid", 3);
            gr_ps_pack_pid(ps, pk, v[i].pid);
            kv_u(pk, "time_ms", v[i].time_ms);
        }
        free(v);
        return 0;
    } else if (gr_term_is_str(&a[0], "tap") && (n == 2 || n == 3)) {
        uint64_t max = GR_TAP_DEFAULT;

        if (n == 3) {
            if (a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[2].via.u64 > GR_TAP_MAX) {
                return GR_EBADARG;
            }
            max = a[2].via.u64;
        }
        if ((r = gr_ps_tap_open(ps, ctx, &a[1], (uint32_t)max, &pid)) < 0) {
            return r;
        }
        return gr_ps_pack_pid(ps, pk, pid) < 0 ? -ENOMEM : 0;
    } else if (gr_term_is_str(&a[0], "tap_poll") && n == 2) {
        if (girder_get_pid(ctx, &a[1], &pid) < 0) {
            return GR_EBADARG;
        }
        return gr_ps_tap_poll(ps, pid, pk);
    } else if (gr_term_is_str(&a[0], "tap_close") && n == 2) {
        if (girder_get_pid(ctx, &a[1], &pid) < 0 || pid.node != 0) {
            return GR_EBADARG;
        }
        msgpack_sbuffer probe;
        msgpack_packer ppk;

        msgpack_sbuffer_init(&probe);
        msgpack_packer_init(&ppk, &probe, msgpack_sbuffer_write);
        r = gr_ps_tap_poll(ps, pid, &ppk); /* only a tap may be closed this way */
        msgpack_sbuffer_destroy(&probe);
        if (r < 0) {
            return r;
        }
        {
            girder_msg *why = girder_msg_atom("shutdown");

            if (why != NULL) {
                (void)girder_exit(ctx, pid, why);
                girder_msg_unref(why);
            }
        }
    } else if (gr_term_is_str(&a[0], "cluster") && n == 1) {
        size_t nodes, interest, rmembers, names;

        gr_ps_wide_counters(ps, &nodes, &interest, &rmembers, &names);
        msgpack_pack_map(pk, 4);
        kv_u(pk, "nodes", nodes);
        kv_u(pk, "interest", interest);
        kv_u(pk, "remote_members", rmembers);
        kv_u(pk, "names", names);
        return 0;
    } else {
        return 1;
    }
    msgpack_pack_str_with_body(pk, "ok", 2);
    return 0;
}

/* Serve one request (array a of n >= 1, a[0] the function) into pk. */
static int serve(girder_ctx *ctx, gr_pubsub *ps, const msgpack_object *a, uint32_t n,
                 msgpack_packer *pk)
{
    char scope[GR_PG_NAME_MAX + 1], group[GR_PG_NAME_MAX + 1];
    girder_pid pid;
    int r;

    if (gr_term_is_str(&a[0], "publish") && n == 3 && is_str(&a[1])) {
        girder_msg *m = girder_msg_from_object(&a[2]);
        gr_pub_result res = {0};

        if (m == NULL) {
            return -ENOMEM;
        }
        r = gr_pubsub_publish(ps, ctx, a[1].via.str.ptr, a[1].via.str.size, m, &res);
        girder_msg_unref(m);
        if (r < 0) {
            return r;
        }
        msgpack_pack_map(pk, 6);
        kv_u(pk, "nodes", res.nodes);
        kv_u(pk, "matched", res.matched);
        kv_u(pk, "delivered", res.delivered);
        kv_u(pk, "dropped", res.dropped);
        kv_u(pk, "killed", res.killed);
        kv_u(pk, "busy", res.busy);
        return 0;
    }
    if (gr_term_is_str(&a[0], "subscribe") && (n == 3 || n == 4) && is_str(&a[2])) {
        gr_sub_opts opts = {0};

        if (girder_get_pid(ctx, &a[1], &pid) < 0 || (n == 4 && get_opts(&a[3], &opts) < 0)) {
            return GR_EBADARG;
        }
        if ((r = gr_pubsub_subscribe(ps, pid, a[2].via.str.ptr, a[2].via.str.size, &opts)) < 0) {
            return r;
        }
        msgpack_pack_str_with_body(pk, "ok", 2);
        return 0;
    }
    if (gr_term_is_str(&a[0], "unsubscribe") && n == 3 && is_str(&a[2])) {
        if (girder_get_pid(ctx, &a[1], &pid) < 0) {
            return GR_EBADARG;
        }
        if ((r = gr_pubsub_unsubscribe(ps, pid, a[2].via.str.ptr, a[2].via.str.size)) < 0) {
            return r;
        }
        msgpack_pack_str_with_body(pk, "ok", 2);
        return 0;
    }
    if (gr_term_is_str(&a[0], "subscriptions") && n <= 2) {
        return req_subscriptions(ps, pk, n == 2 ? &a[1] : NULL, false);
    }
    if (gr_term_is_str(&a[0], "owned") && n == 2) {
        if (girder_get_pid(ctx, &a[1], &pid) < 0 || pid.node != 0) {
            return GR_EBADARG; /* a pid of this node */
        }
        gr_ps_pack_owned(ps, pid, pk);
        return 0;
    }
    if (gr_term_is_str(&a[0], "topics") && n == 1) {
        return req_subscriptions(ps, pk, NULL, true);
    }
    if (gr_term_is_str(&a[0], "counters") && n == 1) {
        pack_counters(ps, pk);
        return 0;
    }
    if ((gr_term_is_str(&a[0], "join") || gr_term_is_str(&a[0], "leave")) && n == 4) {
        if (get_name(&a[1], scope) < 0 || get_name(&a[2], group) < 0 ||
            girder_get_pid(ctx, &a[3], &pid) < 0) {
            return GR_EBADARG;
        }
        r = gr_term_is_str(&a[0], "join") ? gr_pg_join(ps, scope, group, pid)
                                          : gr_pg_leave(ps, scope, group, pid);
        if (r < 0) {
            return r;
        }
        msgpack_pack_str_with_body(pk, "ok", 2);
        return 0;
    }
    if ((gr_term_is_str(&a[0], "members") || gr_term_is_str(&a[0], "members_all")) && n == 3) {
        girder_pid *v = NULL;
        size_t nm = 0;

        if (get_name(&a[1], scope) < 0 || get_name(&a[2], group) < 0) {
            return GR_EBADARG;
        }
        if ((r = gr_term_is_str(&a[0], "members")
                     ? gr_pg_members(ps, scope, group, &v, &nm)
                     : gr_pg_members_all(ps, scope, group, &v, &nm)) < 0) {
            return r;
        }
        msgpack_pack_array(pk, (uint32_t)nm);
        for (size_t i = 0; i < nm; i++) {
            gr_ps_pack_pid(ps, pk, v[i]);
        }
        free(v);
        return 0;
    }
    if (gr_term_is_str(&a[0], "groups") && n <= 2) {
        gr_pg_group_info *v = NULL;
        size_t ng = 0;

        if (n == 2 && get_name(&a[1], scope) < 0) {
            return GR_EBADARG;
        }
        if ((r = gr_pg_groups(ps, n == 2 ? scope : NULL, &v, &ng)) < 0) {
            return r;
        }
        qsort(v, ng, sizeof(*v), cmp_group);
        msgpack_pack_array(pk, (uint32_t)ng);
        for (size_t i = 0; i < ng; i++) {
            msgpack_pack_map(pk, 2);
            kv_s(pk, "name", v[i].name);
            kv_u(pk, "members", v[i].members);
        }
        free(v);
        return 0;
    }
    if ((r = serve_global(ctx, ps, a, n, pk)) != 1) {
        return r;
    }
    if (gr_term_is_str(&a[0], "sync") && n == 1) {
        msgpack_pack_str_with_body(pk, "ok", 2);
        return 0;
    }
    return GR_EBADARG;
}

/* ["$call", From, Ref, [Fn, Args...]] (the message msg) */
static void on_call(girder_ctx *ctx, keeper *k, const msgpack_object *a, const girder_msg *msg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_pid from;
    girder_ref ref;
    girder_msg *resp;
    int r = GR_EBADARG;

    if (girder_get_pid(ctx, &a[1], &from) < 0 || girder_get_ref(ctx, &a[2], &ref) < 0) {
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (a[3].type == MSGPACK_OBJECT_ARRAY && a[3].via.array.size == 3 &&
        gr_term_is_str(&a[3].via.array.ptr[0], "tap_wait")) {
        /* the tap answers it (when it has a message): tap.c */
        girder_pid tap;

        r = girder_get_pid(ctx, &a[3].via.array.ptr[1], &tap) < 0 ||
                    a[3].via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER
                ? GR_EBADARG
                : gr_ps_tap_forward(k->ps, ctx, tap, msg);
        if (r == 0) {
            msgpack_sbuffer_destroy(&sb);
            return;
        }
    } else if (a[3].type == MSGPACK_OBJECT_ARRAY && a[3].via.array.size >= 1) {
        r = serve(ctx, k->ps, a[3].via.array.ptr, a[3].via.array.size, &pk);
    }
    if (r < 0) {
        const char *id = gr_errid(r);

        msgpack_sbuffer_clear(&sb);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_str_with_body(&pk, id, strlen(id));
    }
    resp = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (resp != NULL) {
        (void)girder_reply(ctx, from, ref, resp);
        girder_msg_unref(resp);
    }
}

static int keeper_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    keeper *k = state;
    msgpack_unpacked u;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY &&
        u.data.via.array.size >= 2) {
        const msgpack_object *a = u.data.via.array.ptr;
        uint32_t n = u.data.via.array.size;
        girder_pid pid;
        girder_ref mref;

        if (gr_term_is_str(&a[0], "$ps_watch") && n == 2) {
            on_watch(ctx, k, &a[1]);
        } else if (gr_term_is_str(&a[0], "$ps_unwatch") && n == 2) {
            on_unwatch(ctx, &a[1]);
        } else if (gr_term_is_str(&a[0], "DOWN") && n == 5 &&
                   girder_get_ref(ctx, &a[1], &mref) == 0 &&
                   girder_get_pid(ctx, &a[3], &pid) == 0) {
            /* acted on only when Ref is one of the keeper's monitors */
            gr_ps_owner_down(k->ps, pid, mref);
            gr_ps_wide_pid_monitor_down(ctx, k->ps, pid, mref);
        } else if (gr_term_is_str(&a[0], "$call") && n == 4) {
            on_call(ctx, k, a, msg);
        } else {
            (void)gr_ps_wide_handle(ctx, k->ps, a, n);
        }
    }
    msgpack_unpacked_destroy(&u);
    return GIRDER_CONTINUE;
}

static const girder_behaviour keeper_beh = {
    .name = "pubsub_keeper",
    .init = keeper_init,
    .handle = keeper_handle,
    .terminate = keeper_terminate,
};

static int register_self(girder_ctx *ctx, void *arg)
{
    (void)arg;
    return girder_register(ctx, GR_PUBSUB_NAME, girder_self(ctx));
}

int gr_ps_keeper_start(gr_pubsub *ps)
{
    girder_msg *arg = ptr_arg(ps);
    girder_pid pid;
    int r;

    if (gr_rt_whereis(ps->rt, GR_PUBSUB_NAME, &pid) == 0) {
        girder_msg_unref(arg);
        return GR_ENAMETAKEN;
    }
    if (arg == NULL) {
        return -ENOMEM;
    }
    r = gr_rt_spawn(ps->rt, &keeper_beh, arg, &pid);
    girder_msg_unref(arg);
    /* Registered before this returns, so the name answers at once (its init
     * then finds the name already its own). */
    if (r == 0) {
        (void)gr_rt_run_in(ps->rt, pid, register_self, NULL);
        /* Watches sent before its init go to this pid and wait in its mailbox. */
        pthread_mutex_lock(&ps->lock);
        ps->keeper = pid;
        pthread_mutex_unlock(&ps->lock);
    }
    return r;
}
