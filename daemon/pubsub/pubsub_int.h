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

/* groups.c: drop o's joins (leave events) and watches. Caller holds ps->lock. */
void gr_pg_owner_gone_locked(gr_pubsub *ps, gr_ps_owner *o);

/* groups.c: free every scope (gr_pubsub_free). */
void gr_pg_free_all(gr_pubsub *ps);

/* subs.c: drop o's subscriptions. Caller holds ps->lock, takes tlock. */
void gr_ps_subs_owner_gone_locked(gr_pubsub *ps, gr_ps_owner *o);

/* keeper.c: spawn the keeper (gr_pubsub_new). 0 or a spawn error. */
int gr_ps_keeper_start(gr_pubsub *ps);

/* Pack a local pid (node 0) or ref with this node's name. */
int gr_ps_pack_pid(gr_pubsub *ps, msgpack_packer *pk, girder_pid pid);
int gr_ps_pack_ref(gr_pubsub *ps, msgpack_packer *pk, girder_ref ref);

#endif
