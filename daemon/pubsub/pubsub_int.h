/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pubsub_int.h - what the files of daemon/pubsub/ share: the gr_pubsub struct,
 * the owners table (one record per process that subscribed, joined or
 * watches), and the hooks between subs.c, groups.c and keeper.c.
 *
 * Ownership and locks
 *   gr_pubsub      shared by every thread; fields below say which lock.
 *   gr_ps_owner    under ps->lock (its subs list also changes only with tlock
 *                  held for writing).
 *   gr_ps_sub      created/destroyed under ps->lock + tlock (write); its index
 *                  item and pattern are immutable meanwhile (readers hold tlock
 *                  shared); its backlog and counters under sub->lock.
 *   groups         under ps->lock.
 *   keeper state   its own process (scheduler thread), never shared.
 * Lock order: ps->lock, then ps->tlock, then one sub->lock. Never take
 * ps->lock while holding tlock.
 */
#ifndef GR_PUBSUB_INT_H
#define GR_PUBSUB_INT_H

#include "pubsub/pubsub.h"
#include "runtime/rt.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct gr_ps_sub gr_ps_sub;
typedef struct gr_pg_group gr_pg_group;

/* A group join of an owner: which group, and where it sits in the group's
 * member array (kept current when members move). */
typedef struct gr_ps_join {
    gr_pg_group *g; /* joined group */
    uint32_t slot;  /* index in g->members */
} gr_ps_join;

/* A group monitor held by an owner. */
typedef struct gr_ps_watch {
    gr_pg_group *g; /* watched group, or the scope's catch-all */
    girder_ref ref; /* the monitor's ref */
} gr_ps_watch;

typedef struct gr_ps_owner {
    struct gr_ps_owner *hnext; /* chain in ps->owners */
    girder_pid pid;            /* the process */
    gr_ps_sub *subs;           /* its subscriptions (sub->onext) */
    gr_ps_join *joins;         /* its group joins, one per distinct group */
    size_t njoins, capjoins;   /* used / allocated */
    gr_ps_watch *watches;      /* its group monitors */
    size_t nwatches, capwatches;
    girder_ref mref; /* the keeper's monitor of pid, while watched */
    bool watched;    /* the keeper monitors pid (with mref) */
} gr_ps_owner;

typedef struct gr_pg_scope gr_pg_scope;
typedef struct gr_ps_wide gr_ps_wide;
typedef struct gr_ps_tap gr_ps_tap;

struct gr_pubsub {
    girder_rt *rt;          /* the runtime; immutable */
    pthread_mutex_t lock;   /* owners, groups, keeper */
    pthread_rwlock_t tlock; /* index, subscriptions set */
    gr_tidx *idx;           /* under tlock */
    gr_ps_owner **owners;   /* pid -> owner, chained hash; under lock */
    size_t omask, nowners;  /* buckets - 1, entries; under lock */
    gr_pg_scope *scopes;    /* list of scopes; under lock */
    girder_pid keeper;      /* the keeper's pid (id 0 while none); under lock */
    uint64_t next_sub_id;   /* under lock */
    girder_msg *r_slow;     /* "slow_subscriber", shared; immutable */
    gr_ps_wide *w;          /* the other nodes' interest, members, names (wide.c); immutable */
    gr_ps_tap *taps;        /* open taps (tap.c); under lock */
    gr_rt_global_ops gops;  /* girder_global_* hook into wide.c; immutable */
    atomic_uint_fast64_t published, delivered, dropped, killed, busy, subscriptions, joins,
        cleanups; /* counters, relaxed */
};

/* subs.c: the owner of pid, created when `create` (then the keeper is told to
 * monitor pid). NULL if absent, or on -ENOMEM. Caller holds ps->lock. */
gr_ps_owner *gr_ps_owner_get_locked(gr_pubsub *ps, girder_pid pid, bool create);

/* subs.c: unlink and free o (its subs, joins and watches already gone).
 * Caller holds ps->lock. The keeper's monitor is left alone: for a dead
 * process (gr_ps_owner_gone). */
void gr_ps_owner_free_locked(gr_pubsub *ps, gr_ps_owner *o);

/* subs.c: o is done with if it holds nothing (no subscription, join or group
 * monitor): free it, and tell the keeper to drop its monitor of the live
 * process (["$ps_unwatch", Ref], sent under the lock, so it reaches the keeper
 * before the ["$ps_watch", Pid] of a later owner of the same pid). So an owner
 * exists exactly while its process holds something, and `owners` counts
 * those. Caller holds ps->lock; o may be freed on return. */
void gr_ps_owner_release_locked(gr_pubsub *ps, gr_ps_owner *o);

/* keeper.c: the keeper of pid died or pid is dead: remove everything pid held
 * (subscriptions, joins with leave events, monitors). Any thread. */
void gr_ps_owner_gone(gr_pubsub *ps, girder_pid pid);
/* gr_ps_owner_gone for a DOWN of monitor mref: only if that is the keeper's
 * monitor of pid (a DOWN is a plain message: anyone may send one, and a
 * forged one for a live pid dropped its 20,001 subscriptions). Keeper. */
void gr_ps_owner_down(gr_pubsub *ps, girder_pid pid, girder_ref mref);

/* groups.c: drop o's joins (leave events) and watches. Caller holds ps->lock. */
void gr_pg_owner_gone_locked(gr_pubsub *ps, gr_ps_owner *o);

/* groups.c: pack o's joins as [[Scope, Group], ...] (one per distinct
 * group; o NULL: []). Caller holds ps->lock. */
void gr_pg_pack_owner_locked(const gr_ps_owner *o, msgpack_packer *pk);

/* subs.c: pack what pid holds on this node, for `girder info`:
 * {"topics": [Pattern, ...], "groups": [[Scope, Group], ...]}. Takes ps->lock. */
void gr_ps_pack_owned(gr_pubsub *ps, girder_pid pid, msgpack_packer *pk);

/* groups.c: free every scope (gr_pubsub_free). */
void gr_pg_free_all(gr_pubsub *ps);

/* subs.c: drop o's subscriptions. Caller holds ps->lock, takes tlock. */
void gr_ps_subs_owner_gone_locked(gr_pubsub *ps, gr_ps_owner *o);

/* keeper.c: spawn the keeper (gr_pubsub_new). 0 or a spawn error. */
int gr_ps_keeper_start(gr_pubsub *ps);

/* Pack a local pid (node 0) or ref with this node's name. */
int gr_ps_pack_pid(gr_pubsub *ps, msgpack_packer *pk, girder_pid pid);
int gr_ps_pack_ref(gr_pubsub *ps, msgpack_packer *pk, girder_ref ref);

/* subs.c: publish to this node's subscribers only (gr_pubsub_publish minus
 * the other nodes; the keeper's fan-out of a publish from another node).
 * Contract as gr_pubsub_publish. */
int gr_ps_publish_local(gr_pubsub *ps, girder_ctx *ctx, const char *topic, size_t len,
                        const girder_msg *payload, gr_pub_result *ret);

/* groups.c: joins of pid in scope/group (0 if none). Takes ps->lock. */
uint32_t gr_pg_joins(gr_pubsub *ps, const char *scope, const char *group, girder_pid pid);

/* groups.c: pack every local join as [[Scope, Group, Pid, Count], ...].
 * Caller holds ps->lock. */
void gr_pg_pack_local_locked(gr_pubsub *ps, msgpack_packer *pk);

/* ---- wide.c: the cluster-wide layer ---------------------------------------------- */

/* Allocate / free ps->w (gr_pubsub_new before the keeper starts / free). */
int gr_ps_wide_new(gr_pubsub *ps);
void gr_ps_wide_free(gr_pubsub *ps);

/* A local subscription to pattern came (+1) or went (-1): the keeper tells
 * the other nodes when the pattern gains its first or loses its last one.
 * Caller holds ps->lock. */
void gr_ps_wide_interest_locked(gr_pubsub *ps, const char *pattern, size_t len, int delta);

/* pid's joins in scope/group changed: the keeper tells the other nodes.
 * Caller holds ps->lock. */
void gr_ps_wide_pg_changed_locked(gr_pubsub *ps, const char *scope, const char *group,
                                  girder_pid pid);

/* The nodes (runtime node indices, at most max) with a subscriber whose
 * pattern matches topic. Count or GR_EBADARG. Any thread. */
int gr_ps_wide_nodes_for(gr_pubsub *ps, const char *topic, size_t len, uint32_t *ret_nodes,
                         size_t max);

/* Send ["$psx_pub", Topic, Payload] once to the keeper of every node
 * interested in topic, from ctx's process (NULL: from this thread).
 * *ret_nodes: how many were sent. 0 or -ENOMEM. Any thread. */
int gr_ps_wide_publish(gr_pubsub *ps, girder_ctx *ctx, const char *topic, size_t len,
                       const girder_msg *payload, uint32_t *ret_nodes);

/* Keeper: subscribe to nodeup/nodedown (its init). */
void gr_ps_wide_keeper_init(girder_ctx *ctx, gr_pubsub *ps);

/* Keeper: a message of the cluster layer (a poke, nodeup/nodedown, another
 * keeper's message)? Handled and true, else false. */
bool gr_ps_wide_handle(girder_ctx *ctx, gr_pubsub *ps, const msgpack_object *a, uint32_t n);

/* Keeper: local pid died: its global names go, everywhere. */
void gr_ps_wide_pid_down(girder_ctx *ctx, gr_pubsub *ps, girder_pid pid);
/* gr_ps_wide_pid_down for a DOWN of monitor mref: only if that is wide.c's
 * monitor of pid (a named pid's). Keeper. */
void gr_ps_wide_pid_monitor_down(girder_ctx *ctx, gr_pubsub *ps, girder_pid pid, girder_ref mref);

/* Sizes of the cluster layer: nodes up, remote patterns, remote members
 * (pid/group pairs), names. Any thread. */
void gr_ps_wide_counters(gr_pubsub *ps, size_t *ret_nodes, size_t *ret_interest,
                         size_t *ret_rmembers, size_t *ret_names);

/* ---- tap.c: buffers for polling clients (girder sub) --------------------------- */

#define GR_TAP_DEFAULT 1000u /* messages a tap buffers by default */
#define GR_TAP_MAX 100000u   /* most a tap may buffer */

/* Spawn a tap (from ctx's process) subscribed to every pattern of the msgpack
 * array patterns, buffering at most max messages. 0 and *ret_pid, GR_EBADARG,
 * -ENOMEM, a spawn or subscribe error. Keeper process. */
int gr_ps_tap_open(gr_pubsub *ps, girder_ctx *ctx, const msgpack_object *patterns, uint32_t max,
                   girder_pid *ret_pid);

/* Drain tap pid's buffer into pk as {"dropped": N, "msgs": [[Topic, Payload], ...]}.
 * 0 or GR_ENOPROC (no such tap: closed or stopped idle). Any thread. */
int gr_ps_tap_poll(gr_pubsub *ps, girder_pid pid, msgpack_packer *pk);

/* Hand the "$call" message call (["$call", From, Ref, ["tap_wait", Tap, Ms]])
 * to tap pid, which answers it itself (at once if it holds messages, else at
 * the first message or after Ms). 0, GR_ENOPROC (no such tap) or -ENOMEM; on
 * an error the caller answers. Keeper process; call is borrowed. */
int gr_ps_tap_forward(gr_pubsub *ps, girder_ctx *ctx, girder_pid pid, const girder_msg *call);

#endif
