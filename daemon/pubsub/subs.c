/* SPDX-License-Identifier: Apache-2.0 */
/*
 * subs.c - the node's subscriptions: the owners table, subscribe/unsubscribe,
 * publish with per-subscription backlogs, listing and counters; gr_pubsub's
 * life (new/free).
 *
 * Design notes
 *   Backlog. Every delivery is a message of its own, ["$pub", Topic, Payload],
 *   made for that subscription (one allocation and copy, as Erlang copies a
 *   message into each receiver's heap), tallied (gr_rt_msg_alloc_tallied):
 *   when its last reference goes - the subscriber's handle() has returned
 *   and it kept no reference, or the subscriber died - it reports to the
 *   subscription's tally, on the subscriber's thread. The backlog is what
 *   was sent minus what was released, and the publisher holds no reference
 *   to the deliveries: no ring, no per-delivery reference count read.
 *   The publisher does not even read the tally on most deliveries: est_msgs /
 *   est_bytes are upper bounds of the backlog (exact at the last look, plus
 *   everything sent since), and the tally is read only when the bound would
 *   cross the high watermark (then it is exact again) or for a listing. A
 *   subscriber that keeps up costs the publisher one look per high_msgs
 *   deliveries; one that does not is looked at on each delivery above its
 *   high watermark, which is where busy, drop and kill are decided - on the
 *   exact figure, as before.
 *   Bound: a subscription never has more than max_msgs messages or max_bytes
 *   bytes alive, whatever its process does.
 *   Wake-ups: deliveries from a process hold the wake-up of a sleeping
 *   scheduler until the whole fan-out is queued (gr_rt_send_once_held), so a
 *   publish wakes each scheduler once, not each time its subscribers have
 *   caught up and it went back to sleep.
 *   Publish holds tlock shared for the match and each subscription's mutex
 *   for its own delivery, so publishers on different schedulers run in
 *   parallel and only contend on a subscription they both reach.
 *   Kill policy: the publisher marks the subscription closed and sends the
 *   exit itself; then it removes every closed subscription (write lock).
 */
#include "pubsub/pubsub_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct gr_ps_sub {
    gr_tidx_item it;                   /* in ps->idx; first member (cast from the item) */
    gr_ps_sub *onext;                  /* owner's list */
    gr_ps_owner *owner;                /* the subscriber's record */
    girder_pid pid;                    /* the subscriber */
    gr_sub_opts opts;                  /* limits, defaults filled in */
    uint32_t high_msgs;                /* high watermark, messages */
    uint64_t high_bytes;               /* high watermark, bytes */
    gr_rt_tally *tally;                /* our deliveries report their release here */
    pthread_mutex_t lock;              /* guards everything below */
    uint64_t credits;                  /* references of tally held for the next deliveries */
    uint64_t sent_bytes;               /* envelope bytes of every delivery so far */
    uint64_t est_msgs, est_bytes;      /* backlog upper bounds (exact at the last look) */
    uint64_t peak;                     /* highest backlog (messages) seen at a look */
    uint64_t delivered, dropped, busy; /* counters */
    bool closed;                       /* killed at its limit: skip, remove soon */
    size_t plen;                       /* pattern length */
    char pattern[];                    /* NUL-terminated */
};

/* ---- owners ------------------------------------------------------------------- */

static uint64_t hash_pid(girder_pid p)
{
    uint64_t h = p.id * 0x9e3779b97f4a7c15ull;

    return h ^ (h >> 29);
}

static int owners_grow_locked(gr_pubsub *ps)
{
    size_t cap = ps->owners ? (ps->omask + 1) * 2 : 64;
    gr_ps_owner **nb = calloc(cap, sizeof(*nb));

    if (nb == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; ps->owners && i <= ps->omask; i++) {
        gr_ps_owner *o = ps->owners[i];

        while (o) {
            gr_ps_owner *next = o->hnext;

            o->hnext = nb[hash_pid(o->pid) & (cap - 1)];
            nb[hash_pid(o->pid) & (cap - 1)] = o;
            o = next;
        }
    }
    free(ps->owners);
    ps->owners = nb;
    ps->omask = cap - 1;
    return 0;
}

gr_ps_owner *gr_ps_owner_get_locked(gr_pubsub *ps, girder_pid pid, bool create)
{
    gr_ps_owner *o;
    girder_msg *w;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    for (o = ps->owners[hash_pid(pid) & ps->omask]; o; o = o->hnext) {
        if (girder_pid_eq(o->pid, pid)) {
            return o;
        }
    }
    if (!create) {
        return NULL;
    }
    if (ps->nowners >= ps->omask + 1) {
        (void)owners_grow_locked(ps); /* on failure: longer chains */
    }
    if ((o = calloc(1, sizeof(*o))) == NULL) {
        return NULL;
    }
    o->pid = pid;
    o->hnext = ps->owners[hash_pid(pid) & ps->omask];
    ps->owners[hash_pid(pid) & ps->omask] = o;
    ps->nowners++;
    /* Tell the keeper to monitor pid: ["$ps_watch", Pid]. If it is lost (no
     * memory, keeper dead), the next keeper's start-up walk monitors pid. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "$ps_watch", 9);
    if (gr_ps_pack_pid(ps, &pk, pid) == 0 && ps->keeper.id != 0 &&
        (w = girder_msg_new(sb.data, sb.size)) != NULL && gr_rt_send(ps->rt, ps->keeper, w) < 0) {
        girder_msg_unref(w);
    }
    msgpack_sbuffer_destroy(&sb);
    return o;
}

int gr_ps_pack_pid(gr_pubsub *ps, msgpack_packer *pk, girder_pid pid)
{
    size_t nl;
    const char *node = gr_rt_node_at(ps->rt, pid.node, &nl);

    return node ? gr_term_pack_id(pk, GR_TERM_EXT_PID, node, nl, pid.creation, pid.id) : -EINVAL;
}

int gr_ps_pack_ref(gr_pubsub *ps, msgpack_packer *pk, girder_ref ref)
{
    size_t nl;
    const char *node = gr_rt_node_at(ps->rt, ref.node, &nl);

    return node ? gr_term_pack_id(pk, GR_TERM_EXT_REF, node, nl, ref.creation, ref.id) : -EINVAL;
}

/* girder_global_* (the runtime's hook) */
static int global_reg(void *ud, const char *name, girder_pid pid)
{
    return gr_global_register(ud, name, pid);
}

static int global_unreg(void *ud, const char *name)
{
    return gr_global_unregister(ud, name);
}

static int global_whereis(void *ud, const char *name, girder_pid *ret_pid)
{
    return gr_global_whereis(ud, name, ret_pid);
}

gr_pubsub *gr_pubsub_of(girder_rt *rt)
{
    const gr_rt_global_ops *g = gr_rt_global(rt);

    return g && g->reg == global_reg ? g->ud : NULL;
}

/* ---- life ---------------------------------------------------------------------- */

int gr_pubsub_new(girder_rt *rt, gr_pubsub **ret_ps)
{
    gr_pubsub *ps = calloc(1, sizeof(*ps));
    int r = -ENOMEM;

    if (ps == NULL) {
        return -ENOMEM;
    }
    ps->rt = rt;
    pthread_mutex_init(&ps->lock, NULL);
    pthread_rwlock_init(&ps->tlock, NULL);
    if (gr_tidx_new(&ps->idx) < 0 || owners_grow_locked(ps) < 0 || gr_ps_wide_new(ps) < 0 ||
        (ps->r_slow = girder_msg_atom("slow_subscriber")) == NULL) {
        goto fail;
    }
    if ((r = gr_ps_keeper_start(ps)) < 0) {
        goto fail;
    }
    ps->gops = (gr_rt_global_ops){
        .reg = global_reg, .unreg = global_unreg, .whereis = global_whereis, .ud = ps};
    gr_rt_set_global(rt, &ps->gops);
    *ret_ps = ps;
    return 0;
fail:
    gr_pubsub_free(ps);
    return r;
}

/* The tally goes with its last delivery still alive (maybe after s). */
static gr_ps_sub *sub_free(gr_ps_sub *s)
{
    gr_rt_tally_release(s->tally, s->credits + 1);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

gr_pubsub *gr_pubsub_free(gr_pubsub *ps)
{
    if (ps == NULL) {
        return NULL;
    }
    if (ps->gops.ud == ps) {
        gr_rt_set_global(ps->rt, NULL);
    }
    for (size_t i = 0; ps->owners && i <= ps->omask; i++) {
        gr_ps_owner *o = ps->owners[i];

        while (o) {
            gr_ps_owner *next = o->hnext;

            while (o->subs) {
                gr_ps_sub *s = o->subs;

                o->subs = s->onext;
                gr_tidx_del(ps->idx, &s->it);
                sub_free(s);
            }
            free(o->joins);
            free(o->watches);
            free(o);
            o = next;
        }
    }
    gr_pg_free_all(ps);
    gr_ps_wide_free(ps);
    free(ps->owners);
    gr_tidx_free(ps->idx);
    girder_msg_unref(ps->r_slow);
    pthread_rwlock_destroy(&ps->tlock);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    return NULL;
}

/* ---- subscribe ------------------------------------------------------------------ */

static int fill_opts(const gr_sub_opts *in, gr_sub_opts *out)
{
    gr_sub_opts o = in ? *in : (gr_sub_opts){0};

    if (o.high_pct > 100 || (o.policy != GR_SUB_DROP && o.policy != GR_SUB_KILL)) {
        return GR_EBADARG;
    }
    o.max_msgs = o.max_msgs ? o.max_msgs : GR_SUB_DEFAULT_MAX_MSGS;
    o.max_bytes = o.max_bytes ? o.max_bytes : GR_SUB_DEFAULT_MAX_BYTES;
    o.high_pct = o.high_pct ? o.high_pct : GR_SUB_DEFAULT_HIGH_PCT;
    *out = o;
    return 0;
}

int gr_pubsub_subscribe(gr_pubsub *ps, girder_pid pid, const char *pattern, size_t len,
                        const gr_sub_opts *opts)
{
    gr_ps_owner *o;
    gr_ps_sub *s;
    int r;

    if (pid.node != 0 || pid.id == 0 || gr_topic_check(pattern, len, true) != GR_TOPIC_OK) {
        return GR_EBADARG;
    }
    if ((s = calloc(1, sizeof(*s) + len + 1)) == NULL) {
        return -ENOMEM;
    }
    if ((r = fill_opts(opts, &s->opts)) < 0) {
        free(s);
        return r;
    }
    if ((s->tally = gr_rt_tally_new()) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->high_msgs = (uint32_t)((uint64_t)s->opts.max_msgs * s->opts.high_pct / 100);
    s->high_bytes = s->opts.max_bytes / 100 * s->opts.high_pct;
    s->pid = pid;
    s->plen = len;
    memcpy(s->pattern, pattern, len);
    pthread_mutex_init(&s->lock, NULL);

    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, pid, true)) == NULL) {
        r = -ENOMEM;
        goto out;
    }
    for (gr_ps_sub *x = o->subs; x; x = x->onext) {
        if (x->plen == len && memcmp(x->pattern, pattern, len) == 0) {
            r = -EEXIST;
            goto out;
        }
    }
    pthread_rwlock_wrlock(&ps->tlock);
    r = gr_tidx_add(ps->idx, pattern, len, &s->it);
    if (r == 0) {
        s->owner = o;
        s->onext = o->subs;
        o->subs = s;
        atomic_fetch_add_explicit(&ps->subscriptions, 1, memory_order_relaxed);
        gr_ps_wide_interest_locked(ps, pattern, len, +1);
    }
    pthread_rwlock_unlock(&ps->tlock);
out:
    if (r < 0) {
        sub_free(s);
        if (o != NULL) {
            gr_ps_owner_release_locked(ps, o); /* new for this call: nothing to hold */
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return r;
}

/* Unlink s from its owner and the index, free it. Caller holds ps->lock and
 * tlock (write). */
static void sub_remove_locked(gr_pubsub *ps, gr_ps_sub *s)
{
    gr_ps_sub **pp = &s->owner->subs;

    while (*pp != s) {
        pp = &(*pp)->onext;
    }
    *pp = s->onext;
    gr_tidx_del(ps->idx, &s->it);
    atomic_fetch_sub_explicit(&ps->subscriptions, 1, memory_order_relaxed);
    gr_ps_wide_interest_locked(ps, s->pattern, s->plen, -1);
    sub_free(s);
}

void gr_ps_pack_owned(gr_pubsub *ps, girder_pid pid, msgpack_packer *pk)
{
    gr_ps_owner *o;
    uint32_t n = 0;

    pthread_mutex_lock(&ps->lock);
    o = gr_ps_owner_get_locked(ps, pid, false);
    for (const gr_ps_sub *s = o ? o->subs : NULL; s; s = s->onext) {
        n++;
    }
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "topics", 6);
    msgpack_pack_array(pk, n);
    for (const gr_ps_sub *s = o ? o->subs : NULL; s; s = s->onext) {
        msgpack_pack_str_with_body(pk, s->pattern, s->plen);
    }
    msgpack_pack_str_with_body(pk, "groups", 6);
    gr_pg_pack_owner_locked(o, pk);
    pthread_mutex_unlock(&ps->lock);
}

int gr_pubsub_unsubscribe(gr_pubsub *ps, girder_pid pid, const char *pattern, size_t len)
{
    gr_ps_owner *o;
    int r = -ENOENT;

    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, pid, false)) != NULL) {
        for (gr_ps_sub *s = o->subs; s; s = s->onext) {
            if (s->plen == len && memcmp(s->pattern, pattern, len) == 0) {
                pthread_rwlock_wrlock(&ps->tlock);
                sub_remove_locked(ps, s);
                pthread_rwlock_unlock(&ps->tlock);
                gr_ps_owner_release_locked(ps, o);
                r = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return r;
}

void gr_ps_subs_owner_gone_locked(gr_pubsub *ps, gr_ps_owner *o)
{
    if (o->subs == NULL) {
        return;
    }
    pthread_rwlock_wrlock(&ps->tlock);
    for (gr_ps_sub *s = o->subs, *next; s; s = next) {
        next = s->onext; /* s is freed below */
        sub_remove_locked(ps, s);
    }
    pthread_rwlock_unlock(&ps->tlock);
}

/* Remove every closed subscription (after a kill). */
static void sweep_closed(gr_pubsub *ps)
{
    pthread_mutex_lock(&ps->lock);
    pthread_rwlock_wrlock(&ps->tlock);
    for (size_t i = 0; i <= ps->omask; i++) {
        for (gr_ps_owner *o = ps->owners[i]; o; o = o->hnext) {
            for (gr_ps_sub *s = o->subs, *sn; s; s = sn) {
                sn = s->onext;
                if (s->closed) { /* set under s->lock; we hold tlock exclusively */
                    sub_remove_locked(ps, s);
                }
            }
        }
    }
    pthread_rwlock_unlock(&ps->tlock);
    /* Owners left empty go (no other owner is ever empty under the lock). */
    for (size_t i = 0; i <= ps->omask; i++) {
        for (gr_ps_owner *o = ps->owners[i], *next; o; o = next) {
            next = o->hnext;
            gr_ps_owner_release_locked(ps, o);
        }
    }
    pthread_mutex_unlock(&ps->lock);
}

/* ---- backlog ------------------------------------------------------------------ */

#define CREDITS 256 /* tally references taken at once (one atomic per CREDITS deliveries) */

/* Look at the tally: the exact backlog now. Caller holds s->lock. */
static void look(gr_ps_sub *s)
{
    uint64_t refs = gr_rt_tally_refs(s->tally); /* first: the bytes of what it counts are in */
    uint64_t done = gr_rt_tally_done_bytes(s->tally);

    s->est_msgs = refs - 1 - s->credits;
    s->est_bytes = s->sent_bytes - done;
    if (s->est_msgs > s->peak) {
        s->peak = s->est_msgs;
    }
}

/* ---- publish ------------------------------------------------------------------- */

typedef struct pub_ctx {
    gr_pubsub *ps;
    girder_ctx *ctx;     /* publisher process, or NULL */
    const uint8_t *head; /* envelope prefix: ["$pub", Topic, */
    size_t head_len;
    const girder_msg *payload;
    gr_pub_result res;
    int err;          /* first delivery error */
    gr_rt_wakes held; /* schedulers to wake once the fan-out is done */
} pub_ctx;

static bool deliver(gr_tidx_item *it, void *ud)
{
    pub_ctx *pc = ud;
    gr_ps_sub *s = (gr_ps_sub *)it;
    size_t plen = girder_msg_size(pc->payload), len = pc->head_len + plen;
    girder_msg *env;
    uint8_t *data;
    bool looked = false;
    int r;

    pc->res.matched++;
    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        goto out;
    }
    if (s->est_msgs + 1 > s->high_msgs || s->est_bytes + len > s->high_bytes) {
        look(s); /* near the watermark: decide on the exact figure */
        looked = true;
    }
    if (s->est_msgs + 1 > s->opts.max_msgs || s->est_bytes + len > s->opts.max_bytes) {
        if (s->opts.policy == GR_SUB_KILL) {
            s->closed = true;
            pc->res.killed++;
            (void)(pc->ctx ? girder_exit(pc->ctx, s->pid, pc->ps->r_slow)
                           : gr_rt_exit(pc->ps->rt, s->pid, pc->ps->r_slow));
        } else {
            /* at the limit is above the high watermark too: the publisher
             * keeps hearing busy while this subscriber's messages drop */
            s->dropped++;
            s->busy++;
            pc->res.dropped++;
            pc->res.busy++;
        }
        goto out;
    }
    if (s->credits == 0) {
        gr_rt_tally_hold(s->tally, CREDITS);
        s->credits = CREDITS;
    }
    /* From a process the envelope carries its own signal: one malloc per
     * delivery, not two (gr_rt_send_once). It takes one of our credits and
     * gives it back to the tally when it goes. */
    if ((env = gr_rt_msg_alloc_tallied(len, s->tally, &data)) == NULL) {
        pc->err = -ENOMEM;
        goto out;
    }
    s->credits--;
    s->est_msgs++;
    s->est_bytes += len;
    s->sent_bytes += len;
    memcpy(data, pc->head, pc->head_len);
    memcpy(data + pc->head_len, girder_msg_data(pc->payload), plen);
    /* A busy subscriber (a port) does not suspend the publisher: its backlog bounds it. */
    r = pc->ctx ? gr_rt_send_once_held(pc->ctx, s->pid, env, &pc->held)
                : gr_rt_send(pc->ps->rt, s->pid, env);
    if (r < 0) {
        girder_msg_unref(env); /* released at once: the tally counts it handled */
        pc->err = r;
        goto out;
    }
    s->delivered++;
    pc->res.delivered++;
    if (looked && s->est_msgs > s->peak) {
        s->peak = s->est_msgs;
    }
    if (s->est_msgs > s->high_msgs || s->est_bytes > s->high_bytes) {
        s->busy++;
        pc->res.busy++;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return true;
}

int gr_ps_publish_local(gr_pubsub *ps, girder_ctx *ctx, const char *topic, size_t len,
                        const girder_msg *payload, gr_pub_result *ret)
{
    uint8_t head[8 + GR_TOPIC_MAX_LEN];
    pub_ctx pc = {.ps = ps, .ctx = ctx, .head = head, .payload = payload};
    size_t h = 0;
    int r;

    if (payload == NULL || gr_topic_check(topic, len, false) != GR_TOPIC_OK) {
        return GR_EBADARG;
    }
    head[h++] = 0x93; /* fixarray 3 */
    head[h++] = 0xa4; /* fixstr 4 */
    memcpy(head + h, "$pub", 4);
    h += 4;
    if (len < 32) {
        head[h++] = (uint8_t)(0xa0 | len);
    } else {
        head[h++] = 0xd9; /* str8 */
        head[h++] = (uint8_t)len;
    }
    memcpy(head + h, topic, len);
    pc.head_len = h + len;

    pthread_rwlock_rdlock(&ps->tlock);
    r = gr_tidx_match(ps->idx, topic, len, deliver, &pc);
    pthread_rwlock_unlock(&ps->tlock);
    /* One wake-up per sleeping scheduler for the whole fan-out: its
     * subscribers find every delivery of this publish queued when it runs. */
    gr_rt_wakes_flush(ps->rt, &pc.held);
    if (r < 0) {
        return r;
    }
    if (pc.res.killed > 0) {
        sweep_closed(ps);
    }
    atomic_fetch_add_explicit(&ps->published, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->delivered, pc.res.delivered, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->dropped, pc.res.dropped, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->killed, pc.res.killed, memory_order_relaxed);
    if (pc.res.busy > 0) {
        atomic_fetch_add_explicit(&ps->busy, 1, memory_order_relaxed);
    }
    if (ret) {
        *ret = pc.res;
    }
    if (pc.err < 0 && pc.res.delivered == 0) {
        return pc.err;
    }
    return pc.res.busy > 0 ? GR_PUBSUB_BUSY : 0;
}

/* The local fan-out, then one message to each other node with an
 * interested subscriber (wide.c): a publish crosses each link once. */
int gr_pubsub_publish(gr_pubsub *ps, girder_ctx *ctx, const char *topic, size_t len,
                      const girder_msg *payload, gr_pub_result *ret)
{
    gr_pub_result res = {0};
    uint32_t nodes = 0;
    int r, rw;

    if ((r = gr_ps_publish_local(ps, ctx, topic, len, payload, &res)) < 0) {
        return r;
    }
    if ((rw = gr_ps_wide_publish(ps, ctx, topic, len, payload, &nodes)) < 0 && res.delivered == 0) {
        return rw;
    }
    res.nodes = nodes;
    if (ret) {
        *ret = res;
    }
    return r;
}

/* ---- listing ------------------------------------------------------------------ */

typedef struct list_ctx {
    gr_sub_info *v;
    size_t n, cap;
    int err;
} list_ctx;

static bool list_one(gr_tidx_item *it, void *ud)
{
    list_ctx *lc = ud;
    gr_ps_sub *s = (gr_ps_sub *)it;
    gr_sub_info *i;

    if (lc->n == lc->cap) {
        size_t cap = lc->cap ? lc->cap * 2 : 16;
        gr_sub_info *nv = realloc(lc->v, cap * sizeof(*nv));

        if (nv == NULL) {
            lc->err = -ENOMEM;
            return false;
        }
        lc->v = nv;
        lc->cap = cap;
    }
    i = &lc->v[lc->n++];
    memset(i, 0, sizeof(*i));
    i->pid = s->pid;
    memcpy(i->pattern, s->pattern, s->plen + 1);
    i->opts = s->opts;
    pthread_mutex_lock(&s->lock);
    look(s);
    i->backlog_msgs = (uint32_t)s->est_msgs;
    i->backlog_bytes = s->est_bytes;
    i->peak_msgs = (uint32_t)s->peak;
    i->delivered = s->delivered;
    i->dropped = s->dropped;
    i->busy = s->busy;
    pthread_mutex_unlock(&s->lock);
    return true;
}

int gr_pubsub_subscriptions(gr_pubsub *ps, const char *topic, size_t len, gr_sub_info **ret_subs,
                            size_t *ret_n)
{
    list_ctx lc = {0};
    int r = 0;

    if (topic != NULL && gr_topic_check(topic, len, false) != GR_TOPIC_OK) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    pthread_rwlock_rdlock(&ps->tlock);
    if (topic != NULL) {
        r = gr_tidx_match(ps->idx, topic, len, list_one, &lc);
    } else {
        for (size_t i = 0; i <= ps->omask && lc.err == 0; i++) {
            for (gr_ps_owner *o = ps->owners[i]; o && lc.err == 0; o = o->hnext) {
                for (gr_ps_sub *s = o->subs; s && lc.err == 0; s = s->onext) {
                    list_one(&s->it, &lc);
                }
            }
        }
    }
    pthread_rwlock_unlock(&ps->tlock);
    pthread_mutex_unlock(&ps->lock);
    if (r < 0 || lc.err < 0) {
        free(lc.v);
        return r < 0 ? r : lc.err;
    }
    *ret_subs = lc.v;
    *ret_n = lc.n;
    return 0;
}

void gr_pubsub_counters_get(gr_pubsub *ps, gr_pubsub_counters *ret)
{
    gr_pubsub_counters c = {
        .published = atomic_load_explicit(&ps->published, memory_order_relaxed),
        .delivered = atomic_load_explicit(&ps->delivered, memory_order_relaxed),
        .dropped = atomic_load_explicit(&ps->dropped, memory_order_relaxed),
        .killed = atomic_load_explicit(&ps->killed, memory_order_relaxed),
        .busy = atomic_load_explicit(&ps->busy, memory_order_relaxed),
        .subscriptions = atomic_load_explicit(&ps->subscriptions, memory_order_relaxed),
        .joins = atomic_load_explicit(&ps->joins, memory_order_relaxed),
        .cleanups = atomic_load_explicit(&ps->cleanups, memory_order_relaxed),
    };

    pthread_mutex_lock(&ps->lock);
    c.owners = ps->nowners;
    pthread_mutex_unlock(&ps->lock);
    *ret = c;
}

void gr_ps_owner_free_locked(gr_pubsub *ps, gr_ps_owner *o)
{
    gr_ps_owner **pp = &ps->owners[hash_pid(o->pid) & ps->omask];

    while (*pp != o) {
        pp = &(*pp)->hnext;
    }
    *pp = o->hnext;
    ps->nowners--;
    free(o->joins);
    free(o->watches);
    free(o);
}

void gr_ps_owner_release_locked(gr_pubsub *ps, gr_ps_owner *o)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    if (o->subs != NULL || o->njoins > 0 || o->nwatches > 0) {
        return;
    }
    /* A keeper that died meanwhile took its monitors along: its successor
     * gets an unknown ref, which girder_demonitor ignores. */
    if (o->watched && ps->keeper.id != 0) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "$ps_unwatch", 11);
        if (gr_ps_pack_ref(ps, &pk, o->mref) == 0 &&
            (m = girder_msg_new(sb.data, sb.size)) != NULL &&
            gr_rt_send(ps->rt, ps->keeper, m) < 0) {
            girder_msg_unref(m);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    gr_ps_owner_free_locked(ps, o);
}

void gr_ps_owner_down(gr_pubsub *ps, girder_pid pid, girder_ref mref)
{
    gr_ps_owner *o;
    bool ours;

    pthread_mutex_lock(&ps->lock);
    o = gr_ps_owner_get_locked(ps, pid, false);
    ours = o != NULL && o->watched && girder_ref_eq(o->mref, mref);
    pthread_mutex_unlock(&ps->lock);
    if (ours) { /* only the keeper frees owners: o is still pid's */
        gr_ps_owner_gone(ps, pid);
    }
}

void gr_ps_owner_gone(gr_pubsub *ps, girder_pid pid)
{
    gr_ps_owner *o;

    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, pid, false)) != NULL) {
        gr_ps_subs_owner_gone_locked(ps, o);
        gr_pg_owner_gone_locked(ps, o);
        gr_ps_owner_free_locked(ps, o);
        atomic_fetch_add_explicit(&ps->cleanups, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ps->lock);
}
