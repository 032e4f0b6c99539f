/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pubsub.h - one node's topics (publish/subscribe with NATS-style patterns) and
 * process groups (Erlang's pg), node-local. docs/pubsub.md has the whole
 * contract; this header states each call's.
 *
 * A gr_pubsub belongs to one runtime and lives from after gr_rt_start until
 * after gr_rt_stop. Every call here may be made from any thread (a process
 * callback on a scheduler, or any other thread), except gr_pubsub_new/free.
 *
 * Locks (pubsub_int.h has the full map): `lock` (a mutex) guards the owners
 * table and the groups; `tlock` (a rwlock) guards the topic index and the set
 * of subscriptions, read-locked by publishers; each subscription's backlog has
 * its own mutex. Order: lock -> tlock -> a subscription's mutex. Messages are
 * sent while locks are held (sending never blocks or re-enters this module).
 *
 * Cleanup: a keeper process (registered as GR_PUBSUB_NAME) monitors every
 * process that subscribes, joins a group or monitors one, and removes all of
 * it when the process dies. If the keeper itself is killed it respawns and
 * monitors everyone again.
 *
 * Delivery: a subscriber receives ["$pub", Topic, Payload] once per matching
 * subscription, at most once, in publish order per publisher. Backlog: what a
 * subscription has been sent and its process has not handled yet, bounded by
 * max_msgs / max_bytes; above the high watermark publish answers
 * GR_PUBSUB_BUSY (a hint to slow down), at the limit the message is dropped
 * for that subscription (counted) or the subscriber is killed with reason
 * "slow_subscriber" (its choice, per subscription).
 */
#ifndef GR_PUBSUB_H
#define GR_PUBSUB_H

#include "girder/girder.h"
#include "pubsub/topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GR_PUBSUB_NAME "pubsub" /* registered name of the keeper process */

/* gr_pubsub_publish: delivered, and at least one subscriber is above its high
 * watermark (positive: not an error). */
#define GR_PUBSUB_BUSY 1

#define GR_SUB_DEFAULT_MAX_MSGS 65536u              /* backlog limit, messages */
#define GR_SUB_DEFAULT_MAX_BYTES (8u * 1024 * 1024) /* backlog limit, envelope bytes */
#define GR_SUB_DEFAULT_HIGH_PCT 75u                 /* high watermark, % of each limit */

#define GR_PG_NAME_MAX 255 /* bytes in a scope or group name */

typedef struct gr_pubsub gr_pubsub;

/* What happens at a subscription's limit. */
typedef enum gr_sub_policy {
    GR_SUB_DROP = 0, /* drop the message for this subscription, count it */
    GR_SUB_KILL = 1, /* exit signal "slow_subscriber" to the subscriber, unsubscribe it */
} gr_sub_policy;

typedef struct gr_sub_opts {
    uint32_t max_msgs;    /* backlog limit in messages; 0 = GR_SUB_DEFAULT_MAX_MSGS */
    uint64_t max_bytes;   /* backlog limit in bytes; 0 = GR_SUB_DEFAULT_MAX_BYTES */
    uint32_t high_pct;    /* high watermark, 1..100 % of both limits; 0 = default */
    gr_sub_policy policy; /* at the limit */
} gr_sub_opts;

/* What one publish did. */
typedef struct gr_pub_result {
    uint32_t matched;   /* subscriptions whose pattern matched */
    uint32_t delivered; /* messages sent */
    uint32_t dropped;   /* subscriptions at their limit (GR_SUB_DROP) */
    uint32_t killed;    /* subscribers killed at their limit (GR_SUB_KILL) */
    uint32_t busy;      /* subscriptions above their high watermark after this one */
    uint32_t nodes;     /* other nodes sent one copy each (their subscribers: not counted here) */
} gr_pub_result;

/* Node-wide counters since gr_pubsub_new. */
typedef struct gr_pubsub_counters {
    uint64_t published;     /* successful publish calls */
    uint64_t delivered;     /* messages sent to subscribers */
    uint64_t dropped;       /* messages dropped at a subscription's limit */
    uint64_t killed;        /* subscribers killed at their limit */
    uint64_t busy;          /* publishes that answered GR_PUBSUB_BUSY */
    uint64_t subscriptions; /* live subscriptions (gauge) */
    uint64_t owners;        /* processes with subscriptions, joins or group monitors (gauge) */
    uint64_t joins;         /* live group joins, duplicates counted (gauge) */
    uint64_t cleanups;      /* dead processes cleaned up by the keeper */
} gr_pubsub_counters;

/* One subscription, as listed. */
typedef struct gr_sub_info {
    girder_pid pid;                     /* subscriber */
    char pattern[GR_TOPIC_MAX_LEN + 1]; /* NUL-terminated */
    gr_sub_opts opts;                   /* limits in force (defaults filled in) */
    uint32_t backlog_msgs;              /* sent, not released yet (docs/pubsub.md) */
    uint64_t backlog_bytes;             /* their envelope bytes */
    uint32_t peak_msgs;                 /* highest backlog_msgs seen at a look */
    uint64_t delivered;                 /* messages sent */
    uint64_t dropped;                   /* messages dropped at the limit */
    uint64_t busy;                      /* publishes that found it above high */
} gr_sub_info;

/* Create the node's pub/sub and spawn its keeper. rt must be started. 0,
 * -ENOMEM, GR_ESTOPPED, GR_ENAMETAKEN (GR_PUBSUB_NAME registered). Any
 * non-scheduler thread. */
int gr_pubsub_new(girder_rt *rt, gr_pubsub **ret_ps);

/* Free after gr_rt_stop returned (no process left). NULL-safe; returns NULL. */
gr_pubsub *gr_pubsub_free(gr_pubsub *ps);

/* The gr_pubsub serving rt (the one whose keeper runs there), or NULL. For
 * code that gets a process context but not the node's parts (the test kit's
 * rpc module bench). Any thread. */
gr_pubsub *gr_pubsub_of(girder_rt *rt);

/* ---- topics (subs.c) ------------------------------------------------------------ */

/* Subscribe local process pid to pattern[0..len) (topic.h syntax). opts may
 * be NULL (defaults). A process may hold many subscriptions; a second one to
 * the same pattern is refused. 0, GR_EBADARG (invalid pattern, remote pid,
 * high_pct > 100), -EEXIST, -ENOMEM. A dead pid is accepted and removed by the
 * keeper moments later. Any thread. */
int gr_pubsub_subscribe(gr_pubsub *ps, girder_pid pid, const char *pattern, size_t len,
                        const gr_sub_opts *opts);

/* Remove pid's subscription to exactly pattern[0..len). Messages already sent
 * still arrive. 0 or -ENOENT. Any thread. */
int gr_pubsub_unsubscribe(gr_pubsub *ps, girder_pid pid, const char *pattern, size_t len);

/* Publish payload (borrowed) on topic[0..len) (no wildcards): each matching
 * subscription's process gets its own ["$pub", Topic, Payload]. From a process
 * pass its ctx (the message comes from it: ordered with its other sends);
 * from another thread pass NULL. *ret (may be NULL) says what happened.
 * 0, GR_PUBSUB_BUSY (delivered; someone is above high: slow down), GR_EBADARG
 * (invalid topic; gr_topic_check tells why), -ENOMEM (envelope: nothing sent). */
int gr_pubsub_publish(gr_pubsub *ps, girder_ctx *ctx, const char *topic, size_t len,
                      const girder_msg *payload, gr_pub_result *ret);

/* Subscriptions matching topic[0..len) (a topic: what a publish would reach),
 * or all of them (topic NULL), in no particular order. *ret_subs: caller
 * frees. 0, GR_EBADARG, -ENOMEM. Any thread. */
int gr_pubsub_subscriptions(gr_pubsub *ps, const char *topic, size_t len, gr_sub_info **ret_subs,
                            size_t *ret_n);

void gr_pubsub_counters_get(gr_pubsub *ps, gr_pubsub_counters *ret);

/* ---- process groups (groups.c) --------------------------------------------------- */

/* Scope and group names: NUL-terminated, 1..GR_PG_NAME_MAX bytes. */

/* Join local process pid to group in scope, once more (pg counts joins: a pid
 * joined twice is listed twice and must leave twice). Watchers of the group
 * get ["$pg", Ref, "join", Scope, Group, [Pid]]. 0, GR_EBADARG, -ENOMEM. */
int gr_pg_join(gr_pubsub *ps, const char *scope, const char *group, girder_pid pid);

/* Undo one join. Watchers get ["$pg", Ref, "leave", Scope, Group, [Pid]].
 * 0, -ENOENT (not joined), GR_EBADARG. */
int gr_pg_leave(gr_pubsub *ps, const char *scope, const char *group, girder_pid pid);

/* Members on this node, one entry per join. *ret_pids: caller frees (NULL when
 * *ret_n is 0). 0, GR_EBADARG, -ENOMEM. */
int gr_pg_members(gr_pubsub *ps, const char *scope, const char *group, girder_pid **ret_pids,
                  size_t *ret_n);

/* One group of a scope, as listed. */
typedef struct gr_pg_group_info {
    char name[GR_PG_NAME_MAX + 1]; /* group name */
    size_t members;                /* joins */
} gr_pg_group_info;

/* Groups with members in scope (or, scope NULL, the scope names as `name`
 * with their join totals). *ret: caller frees. 0, GR_EBADARG, -ENOMEM. */
int gr_pg_groups(gr_pubsub *ps, const char *scope, gr_pg_group_info **ret, size_t *ret_n);

/* The calling process watches group in scope (group NULL: every group of the
 * scope): it gets ["$pg", Ref, "join" | "leave", Scope, Group, [Pid, ...]]
 * after every change, and *ret_members (caller frees; may be NULL to skip)
 * the members at this instant, so that members + events is exact. A leave
 * caused by a death lists the pid once per join it had. Ends with
 * gr_pg_demonitor or the watcher's death. 0 and *ret_ref, GR_EBADARG,
 * -ENOMEM. Calling process's scheduler thread. */
int gr_pg_monitor(gr_pubsub *ps, girder_ctx *ctx, const char *scope, const char *group,
                  girder_ref *ret_ref, girder_pid **ret_members, size_t *ret_n);

/* Stop watching. The watcher gets one last event, ["$pg", Ref, "end", Scope,
 * Group | nil, []] (nil: a scope-wide monitor): every earlier event of the
 * monitor is ahead of it in the mailbox, none follows it, so "end" is the
 * point from which the ref may be forgotten. 0 or -ENOENT (no end event).
 * Calling process's thread. */
int gr_pg_demonitor(gr_pubsub *ps, girder_ctx *ctx, girder_ref ref);

/* Members in every node (this node's, then those the other nodes told of;
 * one entry per join). As gr_pg_members. */
int gr_pg_members_all(gr_pubsub *ps, const char *scope, const char *group, girder_pid **ret_pids,
                      size_t *ret_n);

/* ---- cluster-wide names (wide.c; Erlang's global) ---------------------------------- */

/* One cluster-wide name, as listed. */
typedef struct gr_global_info {
    char name[GR_PG_NAME_MAX + 1]; /* NUL-terminated */
    girder_pid pid;                /* its process (node index of this runtime) */
    uint64_t time_ms;              /* registration time on its node (ms since the epoch) */
} gr_global_info;

/* Register name (1..GR_PG_NAME_MAX bytes) for local process pid across the
 * cluster: taken at once here, announced to every node. Optimistic: two
 * nodes may register one name at the same time (or in two partitions); every
 * node then keeps the winner by gr_global_wins and the loser's process gets
 * ["$global_clash", Name, WinnerPid] and loses the name. The name goes when
 * its process dies or its node goes down. 0, GR_ENAMETAKEN (this node knows
 * the name), GR_EBADARG (bad name, remote or null pid), -ENOMEM. Any thread. */
int gr_global_register(gr_pubsub *ps, const char *name, girder_pid pid);

/* Drop name, if a process of this node holds it. 0, -ENOENT, GR_EBADARG. */
int gr_global_unregister(gr_pubsub *ps, const char *name);

/* The process holding name, on any node. 0, -ENOENT, GR_EBADARG. */
int gr_global_whereis(gr_pubsub *ps, const char *name, girder_pid *ret_pid);

/* Send msg (taken on success) to the holder of name, from ctx's process
 * (NULL: from this thread). 0, GR_ENONAME, or a send error. */
int gr_global_send(gr_pubsub *ps, girder_ctx *ctx, const char *name, girder_msg *msg);

/* Every name known here. *ret: caller frees (NULL when *ret_n is 0). */
int gr_global_names(gr_pubsub *ps, gr_global_info **ret, size_t *ret_n);

/* The clash rule: does registration A (time ta in ms, node name node_a, pid
 * serial serial_a) beat registration B? The lower time wins; then the lower
 * node name (bytewise); then the lower serial. Pure; every node decides the
 * same. */
bool gr_global_wins(uint64_t ta, const char *node_a, uint64_t serial_a, uint64_t tb,
                    const char *node_b, uint64_t serial_b);

#endif
