/* SPDX-License-Identifier: Apache-2.0 */
/*
 * remote.c - the runtime's seam to the distribution layer: signals whose
 * destination is on another node (out), signals arriving from other nodes (in),
 * and what a node going down does to local links and monitors.
 *
 * The runtime knows nothing about sockets. gr_route sends every signal for a pid
 * with node != 0 here; we turn it into a gr_rt_remote_sig and call the hook the
 * distribution layer installed (gr_rt_set_remote). The dist thread hands
 * arriving signals to gr_rt_remote_deliver, which routes them like any signal
 * from a non-scheduler thread. gr_rt_node_down pushes one GR_SIG_NODEDOWN per
 * scheduler; each scheduler scans its own processes (it owns them: no lock).
 *
 * Design notes
 * - One routing path. Remote signals reuse the local signal types, the local
 *   exit/monitor rules (proc.c) and the local dead-pid answers: a LINK or
 *   MONITOR the hook refuses is answered exactly as one sent to a dead local
 *   pid, with reason "noconnection" (or "noproc" when the hook says the pid is
 *   of an older creation). The local hot path pays nothing: gr_route's existing
 *   "not a live local pid" branch is the only test.
 * - Ordering. The hook runs on the thread that emits the signal, inside
 *   gr_route, so signals of one sender reach the hook in emission order; the
 *   dist layer keeps them in order per connection. Incoming signals are pushed
 *   by one dist thread into scheduler inboxes (FIFO), so order per pair holds
 *   end to end.
 * - No re-entry. gr_rt_remote_deliver never calls the hook on the dist thread:
 *   a destination that cannot be routed to a scheduler (older creation, bad
 *   scheduler index) is wrapped in GR_SIG_DEAD and answered on scheduler 0.
 * - Exactly-once on node down. The scan does not fire links and monitors
 *   itself; it queues, per affected link, a LINKEXIT "noconnection" from the
 *   remote pid, and per affected monitor a DOWN "noconnection". These take the
 *   ordinary paths: a LINKEXIT is honoured only if the link still exists and
 *   removes it; a DOWN becomes a message only if the ref is still held and
 *   removes it. So a real exit or DOWN that arrived before (or is already in the
 *   mailbox) and the synthetic one never both fire.
 * - The scan is O(processes with links or monitors) per node down, once per
 *   scheduler, and needs no per-node index, so local link/monitor/exit paths do
 *   not pay for bookkeeping they rarely need.
 * - node_down_pending[node] counts schedulers that have not scanned yet. While
 *   it is non-zero, new LINK and MONITOR signals to that node are answered
 *   "noconnection" at once: a link made over a new connection before the scan
 *   of the old one would otherwise be fired by that scan.
 * - Busy processes (Erlang's busy_port) use the same parking: a port above
 *   its high-water mark is put in rt->busy_ids (gr_rt_proc_busy); a process
 *   whose turn sent it a message (girder_send) is parked with `on` = its pid
 *   id, and resumed when the mark is cleared. Readers scan busy_ids without
 *   the lock; parking re-checks under park_lock, as for links.
 * - Busy links (Erlang's busy_dist_port). A process callback cannot be
 *   suspended mid-turn, so a process whose turn sent to a busy link (the hook
 *   said GR_RT_TAKEN_BUSY) is parked at the end of that turn: not scheduled
 *   again, whatever arrives, until the distribution layer clears the node's
 *   busy flag (gr_rt_node_busy). The link's backlog is thus bounded by its
 *   high-water mark plus what one turn of each sender sends (a turn handles a
 *   bounded batch of messages). Parking re-checks the flag under park_lock and
 *   clearing stores the flag before taking park_lock, so a resume is never
 *   lost. Resuming sends GR_SIG_RESUME to each parked pid, in parking order;
 *   a pid that died meanwhile gets it as any dead pid does (dropped).
 * - Busy processes across nodes. A busy local process (a port) cannot park a
 *   sender on another node directly, and stalling the link would stall every
 *   process that uses it. Instead, when a message from a remote sender is
 *   delivered to a busy local process (gr_sched_deliver), this node sends the
 *   sender, from the busy pid, the message GR_RT_BUSY_NOTICE (once per
 *   sender per GR_RT_RBUSY_TIMEOUT_MS / 2: rt->rtold). The sender's node
 *   intercepts it on arrival (gr_rt_remote_deliver_held; it never reaches a
 *   mailbox), records the busy pid in rt->rbusy with a deadline, and parks
 *   the sender (GR_SIG_RPARK: now if it is between turns, else after its
 *   turn). Any of its processes that sends to that pid afterwards is parked
 *   after its turn as for a local busy process (girder_send_nosuspend gets
 *   GR_EPROCBUSY). When the mark is cleared (gr_rt_proc_busy false, also at
 *   the process's exit), GR_RT_FREE_NOTICE goes to one told sender per node;
 *   that node drops the entry and resumes, in order, every process parked on
 *   it. Fallbacks, so nobody sleeps forever: the notice's deadline
 *   (GR_RT_RBUSY_TIMEOUT_MS; a per-scheduler timer, rbusy_ev, resumes the
 *   parked past it; a sender that then sends to a still busy process is told
 *   again) and node down (entries of that node dropped, parked resumed). The
 *   notices are ordinary messages on the link: nothing else on it waits.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const girder_pid no_pid = {0, 0, 0};

/* Remote kind of a local signal type, or -1 if it cannot leave the node. */
static int kind_of(gr_sig_type t)
{
    switch (t) {
    case GR_SIG_MSG:
        return GR_RSIG_MSG;
    case GR_SIG_LINK:
        return GR_RSIG_LINK;
    case GR_SIG_UNLINK:
        return GR_RSIG_UNLINK;
    case GR_SIG_EXIT:
        return GR_RSIG_EXIT;
    case GR_SIG_LINKEXIT:
        return GR_RSIG_LINKEXIT;
    case GR_SIG_MONITOR:
        return GR_RSIG_MONITOR;
    case GR_SIG_DEMONITOR:
        return GR_RSIG_DEMONITOR;
    case GR_SIG_DOWN:
        return GR_RSIG_DOWN;
    case GR_SIG_SPAWNREQ:
        return GR_RSIG_SPAWN_REQUEST;
    case GR_SIG_SPAWNREPLY:
        return GR_RSIG_SPAWN_REPLY;
    default:
        return -1; /* info, run, regcheck, spawn, scheduler-internal */
    }
}

/* Local signal type of a remote kind, or -1 for an unknown kind. */
static int type_of(int kind)
{
    static const int8_t map[] = {
        [GR_RSIG_MSG] = GR_SIG_MSG,
        [GR_RSIG_LINK] = GR_SIG_LINK,
        [GR_RSIG_UNLINK] = GR_SIG_UNLINK,
        [GR_RSIG_EXIT] = GR_SIG_EXIT,
        [GR_RSIG_LINKEXIT] = GR_SIG_LINKEXIT,
        [GR_RSIG_MONITOR] = GR_SIG_MONITOR,
        [GR_RSIG_DEMONITOR] = GR_SIG_DEMONITOR,
        [GR_RSIG_DOWN] = GR_SIG_DOWN,
        [GR_RSIG_SPAWN_REQUEST] = GR_SIG_SPAWNREQ,
        [GR_RSIG_SPAWN_REPLY] = GR_SIG_SPAWNREPLY,
    };

    return kind >= 0 && (size_t)kind < sizeof(map) / sizeof(map[0]) ? map[kind] : -1;
}

/* ---- outgoing ------------------------------------------------------------------------- */

void gr_rt_set_remote(girder_rt *rt, gr_rt_remote_fn fn, void *ud)
{
    assert(!atomic_load(&rt->running));
    rt->remote_fn = fn;
    rt->remote_ud = ud;
}

/* May a signal of type t to node go to the hook now? */
static bool node_usable(girder_rt *rt, gr_sig_type t, uint32_t node)
{
    if (rt->remote_fn == NULL || node >= atomic_load_explicit(&rt->nnodes, memory_order_acquire)) {
        return false;
    }
    if (t == GR_SIG_LINK || t == GR_SIG_MONITOR || t == GR_SIG_SPAWNREQ) {
        return atomic_load_explicit(&rt->node_down_pending[node], memory_order_acquire) == 0;
    }
    return true;
}

void gr_remote_out(girder_rt *rt, gr_sched *cur, gr_sig *s)
{
    int kind = kind_of((gr_sig_type)s->type);
    int r = GR_ENOCONN;

    if (s->to.id == 0 && s->type != GR_SIG_SPAWNREQ) {
        r = GR_ENOPROC; /* never a valid pid (a spawn request names only a node) */
    } else if (kind >= 0 && node_usable(rt, (gr_sig_type)s->type, s->to.node)) {
        gr_rt_remote_sig rs = {
            .kind = (gr_rsig_kind)kind,
            .from = s->from,
            .to = s->to,
            .ref = s->ref,
            .to_name = NULL,
            .msg = s->msg,
            .behaviour = s->type == GR_SIG_SPAWNREQ ? s->ptr : NULL,
            .flags = s->flags,
        };

        if ((r = rt->remote_fn(rt->remote_ud, &rs)) >= 0) {
            if (r == GR_RT_TAKEN_BUSY && cur != NULL && cur->current != NULL) {
                cur->current->busy_node = (uint16_t)s->to.node; /* parked after this turn */
            }
            s->msg = NULL; /* the hook owns it now */
            gr_sig_free(s);
            return;
        }
    }
    gr_proc_dead_signal_why(rt, cur, s, r == GR_ENOPROC ? rt->r_noproc : rt->r_noconnection);
}

bool gr_remote_send_name(girder_rt *rt, girder_pid from, uint32_t node, const char *name,
                         girder_msg *msg)
{
    int r;

    gr_rt_remote_sig rs = {
        .kind = GR_RSIG_MSG,
        .from = from,
        .to = {node, 0, 0},
        .ref = {0, 0, 0},
        .to_name = name,
        .msg = msg,
    };

    if (node_usable(rt, GR_SIG_MSG, node) && (r = rt->remote_fn(rt->remote_ud, &rs)) >= 0) {
        return r == GR_RT_TAKEN_BUSY;
    }
    girder_msg_unref(msg); /* not connected: dropped, as in Erlang */
    return false;
}

/* ---- incoming -------------------------------------------------------------------------- */

/* The spawn kinds' own rules. 0: a valid SPAWN_REQUEST (served apart, it has
 * no destination pid); 1: not a request, route it (a SPAWN_REPLY is valid);
 * GR_EBADARG. */
static int check_spawn(const gr_rt_remote_sig *rs, int type)
{
    size_t len;

    if (type != GR_SIG_SPAWNREQ && type != GR_SIG_SPAWNREPLY) {
        return 1; /* flags and behaviour mean nothing to other kinds */
    }
    if ((rs->flags & ~(uint32_t)(GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR)) != 0 ||
        rs->ref.id == 0 || rs->to_name != NULL) {
        return GR_EBADARG;
    }
    if (type == GR_SIG_SPAWNREPLY) {
        /* success: from the child, no reason; error: a reason, from no process */
        if (rs->behaviour != NULL || rs->ref.node != 0 || (rs->msg == NULL) != (rs->from.id != 0)) {
            return GR_EBADARG;
        }
        return 1;
    }
    len = rs->behaviour ? strlen(rs->behaviour) : 0;
    if (len == 0 || len > 255 || rs->ref.node != rs->from.node || rs->to.node != 0) {
        return GR_EBADARG;
    }
    return 0;
}

static int rbusy_noticed(girder_rt *rt, girder_pid from, girder_pid to, gr_rt_wakes *held);
static int rbusy_find_locked(girder_rt *rt, uint32_t node, uint64_t id);
static void arm_sweep(gr_sched *s);
static void rbusy_freed(girder_rt *rt, uint32_t node, uint64_t id);
static void rbusy_node_down(girder_rt *rt, uint32_t node);

int gr_rt_remote_deliver(girder_rt *rt, gr_rt_remote_sig *rs)
{
    return gr_rt_remote_deliver_held(rt, rs, NULL);
}

void gr_rt_wakes_flush(girder_rt *rt, gr_rt_wakes *held)
{
    for (unsigned w = 0; w < sizeof(held->bits) / sizeof(held->bits[0]); w++) {
        while (held->bits[w]) {
            unsigned b = (unsigned)__builtin_ctzll(held->bits[w]);

            held->bits[w] &= held->bits[w] - 1;
            gr_sched_wake(&rt->scheds[w * 64 + b]);
        }
    }
}

int gr_rt_remote_deliver_held(girder_rt *rt, gr_rt_remote_sig *rs, gr_rt_wakes *held)
{
    unsigned n = atomic_load_explicit(&rt->nnodes, memory_order_acquire);
    int type = type_of((int)rs->kind);
    girder_pid to = rs->to;
    gr_sig *s, *dead = NULL;
    unsigned idx;
    int r;

    if (type < 0 || rs->from.node == 0 || rs->from.node >= n || rs->ref.node >= n) {
        return GR_EBADARG;
    }
    if ((type == GR_SIG_MSG || type == GR_SIG_DOWN) && rs->msg == NULL) {
        return GR_EBADARG;
    }
    if (type != GR_SIG_MSG && type != GR_SIG_EXIT && type != GR_SIG_SPAWNREPLY &&
        rs->from.id == 0) {
        return GR_EBADARG; /* links, monitors and spawn requests need a real process */
    }
    if ((r = check_spawn(rs, type)) <= 0) {
        return r < 0 ? r : gr_spawn_remote_in(rt, rs);
    }
    if (type == GR_SIG_MSG && rs->to_name == NULL && rs->from.id != 0 && to.node == 0 &&
        girder_msg_size(rs->msg) == sizeof(GR_RT_BUSY_NOTICE)) {
        /* the notices of "Busy processes across nodes": never a mailbox's */
        bool busy = girder_msg_is_atom(rs->msg, GR_RT_BUSY_NOTICE);

        if (busy || girder_msg_is_atom(rs->msg, GR_RT_FREE_NOTICE)) {
            girder_msg_unref(rs->msg);
            rs->msg = NULL;
            if (!busy) {
                rbusy_freed(rt, rs->from.node, rs->from.id);
                return 0;
            }
            return rbusy_noticed(rt, rs->from, to, held);
        }
    }
    if (rs->to_name != NULL) {
        size_t len = strlen(rs->to_name);

        if (type != GR_SIG_MSG || len == 0 || len > 255) {
            return GR_EBADARG;
        }
        if (gr_registry_get(rt->names, rs->to_name, &to) < 0) {
            girder_msg_unref(rs->msg); /* {Name, Node} ! Msg to no one: dropped */
            rs->msg = NULL;
            return 0;
        }
    } else if (to.node != 0) {
        return GR_EBADARG; /* the dist layer relays nothing */
    }
    if ((s = gr_sig_new((gr_sig_type)type, rs->from, to)) == NULL) {
        return -ENOMEM;
    }
    idx = (unsigned)(to.id & 0xff);
    if (to.creation != rt->creation || idx >= rt->nsched || to.id == 0) {
        /* Dead by definition. Answer on a scheduler so that the hook is never
         * called on this thread, inside this call. */
        if ((dead = gr_sig_new(GR_SIG_DEAD, no_pid, no_pid)) == NULL) {
            gr_sig_free(s);
            return -ENOMEM;
        }
        dead->ptr = s;
    }
    s->ref = rs->ref;
    s->flags = type == GR_SIG_SPAWNREPLY ? (uint8_t)rs->flags : 0;
    s->msg = rs->msg;
    rs->msg = NULL;
    if (dead) {
        gr_sched_push_held(&rt->scheds[0], dead, held);
    } else {
        /* what gr_route would do: the checks above leave a live local pid */
        gr_sched_push_held(&rt->scheds[idx], s, held);
    }
    return 0;
}

/* ---- node down ------------------------------------------------------------------------- */

int gr_rt_node_down(girder_rt *rt, uint32_t node)
{
    if (node == 0 || node >= atomic_load_explicit(&rt->nnodes, memory_order_acquire)) {
        return GR_EBADARG;
    }
    rbusy_node_down(rt, node);
    atomic_fetch_add_explicit(&rt->node_down_pending[node], rt->nsched, memory_order_acq_rel);
    for (unsigned i = 0; i < rt->nsched; i++) {
        gr_sig *sig;

        /* Like a stop signal, a node down must not be lost to ENOMEM: the links
         * it fires would never fire otherwise. */
        while ((sig = gr_sig_new(GR_SIG_NODEDOWN, (girder_pid){node, 0, 0},
                                 (girder_pid){node, 0, 0})) == NULL) {
            sched_yield();
        }
        gr_sched_push(&rt->scheds[i], sig);
    }
    return 0;
}

typedef struct scan {
    gr_sched *s;   /* scanning scheduler */
    uint32_t node; /* node that went down */
} scan;

/* Queue a synthetic signal of type t from `from` to p, reason "noconnection". */
static void queue_synthetic(gr_sched *s, gr_sig_type t, girder_pid from, gr_proc *p, girder_ref ref)
{
    gr_sig *sig = gr_sig_new(t, from, p->pid);

    if (sig == NULL) {
        gr_error("remote", "node-down signal lost: out of memory");
        return;
    }
    sig->ref = ref;
    sig->msg = girder_msg_ref(s->rt->r_noconnection);
    gr_sched_local(s, sig);
}

/* Forget monitors that pids of `node` hold on p. Keys are collected first: a
 * deletion shifts entries and would make the iteration skip some. */
static void forget_monby(gr_idmap *m, uint32_t node)
{
    girder_pid *keys;
    uint32_t n = 0;

    GR_IDMAP_EACH(m, sl)
    {
        n += sl->val.node == node;
    }
    if (n == 0) {
        return;
    }
    if ((keys = malloc(n * sizeof(*keys))) != NULL) {
        uint32_t k = 0;

        GR_IDMAP_EACH(m, sl)
        {
            if (sl->val.node == node) {
                keys[k++] = sl->key;
            }
        }
        for (k = 0; k < n; k++) {
            gr_idmap_del(m, keys[k], NULL);
        }
        free(keys);
        return;
    }
    for (bool found = true; found;) { /* out of memory: slower, same result */
        girder_pid key = no_pid;

        found = false;
        GR_IDMAP_EACH(m, sl)
        {
            if (sl->val.node == node) {
                key = sl->key;
                found = true;
                break;
            }
        }
        if (found) {
            gr_idmap_del(m, key, NULL);
        }
    }
}

static void scan_one(void *vp, void *arg)
{
    gr_proc *p = vp;
    scan *sc = arg;
    gr_proc_ext *x = p->ext;

    if (x == NULL || p->status == GR_PROC_DEAD) {
        return;
    }
    GR_IDMAP_EACH(&x->links, sl)
    {
        if (sl->key.node == sc->node) {
            queue_synthetic(sc->s, GR_SIG_LINKEXIT, sl->key, p, (girder_ref){0, 0, 0});
        }
    }
    GR_IDMAP_EACH(&x->mons, sl)
    {
        if (sl->val.node == sc->node) {
            queue_synthetic(sc->s, GR_SIG_DOWN, sl->val, p, gr_pid_as_ref(sl->key));
        }
    }
    /* Requests pending on that node: one error reply "noconnection" each,
     * honoured only if the real reply has not been delivered first. */
    GR_IDMAP_EACH(&x->spawns, sl)
    {
        if (sl->val.node == sc->node) {
            queue_synthetic(sc->s, GR_SIG_SPAWNREPLY, (girder_pid){sc->node, 0, 0}, p,
                            gr_pid_as_ref(sl->key));
        }
    }
    forget_monby(&x->monby, sc->node);
}

void gr_remote_node_down_local(gr_sched *s, uint32_t node)
{
    scan sc = {.s = s, .node = node};

    /* scan_one only appends to the local queue and edits p->ext: the table is
     * not modified while we iterate. The queued signals are delivered before
     * any process of this scheduler runs again. */
    gr_ptab_each(&s->ptab, scan_one, &sc);
    atomic_fetch_sub_explicit(&s->rt->node_down_pending[node], 1, memory_order_acq_rel);
}

/* ---- busy links ------------------------------------------------------------------------- */

static uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool gr_rt_node_is_busy(girder_rt *rt, uint32_t node)
{
    return node != 0 && node < GR_NODES_MAX && atomic_load(&rt->node_busy[node]);
}

/* Index of id in rt->busy_ids, or -1. Caller holds park_lock. */
static int busy_find_locked(girder_rt *rt, uint64_t id)
{
    unsigned n = atomic_load(&rt->nbusy_ids);

    for (unsigned i = 0; i < n; i++) {
        if (atomic_load(&rt->busy_ids[i]) == id) {
            return (int)i;
        }
    }
    return -1;
}

bool gr_rt_proc_is_busy(girder_rt *rt, girder_pid pid)
{
    unsigned n = atomic_load_explicit(&rt->nbusy_ids, memory_order_acquire);

    if (pid.node != 0 || pid.id == 0) {
        return false;
    }
    for (unsigned i = 0; i < n && i < GR_RT_BUSY_PIDS_MAX; i++) {
        if (atomic_load_explicit(&rt->busy_ids[i], memory_order_relaxed) == pid.id) {
            return true;
        }
    }
    return false;
}

bool gr_remote_park(gr_proc *p)
{
    girder_rt *rt = p->sched->rt;
    girder_pid bp = p->ext ? p->ext->busy_pid : (girder_pid){0, 0, 0};
    uint32_t node = p->busy_node, rnode = bp.node;
    uint64_t on = bp.id;
    bool parked = false, busy;
    int i;

    p->busy_node = 0;
    if (p->ext) {
        p->ext->busy_pid = (girder_pid){0, 0, 0};
    }
    if (p->status == GR_PROC_DEAD) {
        return false;
    }
    pthread_mutex_lock(&rt->park_lock);
    if (node != 0 && gr_rt_node_is_busy(rt, node)) {
        busy = true;
        on = 0;
        rnode = 0;
    } else if (rnode != 0) {
        node = 0;
        busy = on != 0 && (i = rbusy_find_locked(rt, rnode, on)) >= 0 &&
               rt->rbusy[i].until_us > mono_us();
    } else {
        node = 0;
        busy = on != 0 && busy_find_locked(rt, on) >= 0;
    }
    if (busy) {
        if (rt->nparked == rt->capparked) {
            size_t cap = rt->capparked ? rt->capparked * 2 : 16;
            gr_parked *n = realloc(rt->parked, cap * sizeof(*n));

            if (n != NULL) {
                rt->parked = n;
                rt->capparked = cap;
            }
        }
        if (rt->nparked < rt->capparked) { /* else ENOMEM: it just keeps running */
            rt->parked[rt->nparked++] = (gr_parked){p->pid, node, rnode, on, mono_us()};
            p->suspended = true;
            parked = true;
        }
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (parked) {
        atomic_fetch_add_explicit(&rt->suspends, 1, memory_order_relaxed);
        if (rnode != 0) {
            arm_sweep(p->sched);
        }
    }
    return parked;
}

/* Index of remote busy process (node, id) in rt->rbusy, or -1. Caller holds
 * park_lock. */
static int rbusy_find_locked(girder_rt *rt, uint32_t node, uint64_t id)
{
    unsigned n = atomic_load_explicit(&rt->nrbusy, memory_order_relaxed);

    for (unsigned i = 0; i < n; i++) {
        if (rt->rbusy[i].node == node && rt->rbusy[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

/* Resume the process of parked entry e (the caller drops the entry): its
 * suspended time is counted and a GR_SIG_RESUME goes to its scheduler. A
 * resume must not be lost to ENOMEM (the process would sleep forever), so
 * the signal's allocation is retried. Caller holds rt->park_lock, so that
 * the parked are resumed in the order they were parked. */
static void resume_parked_locked(girder_rt *rt, const gr_parked *e, uint64_t now)
{
    gr_sig *sig;

    atomic_fetch_add_explicit(&rt->suspended_us, now - e->since_us, memory_order_relaxed);
    while ((sig = gr_sig_new(GR_SIG_RESUME, no_pid, e->pid)) == NULL) {
        sched_yield();
    }
    gr_sched_push(&rt->scheds[(e->pid.id & 0xff) % rt->nsched], sig);
}

static void rbusy_del_locked(girder_rt *rt, unsigned i)
{
    unsigned n = atomic_load_explicit(&rt->nrbusy, memory_order_relaxed);

    rt->rbusy[i] = rt->rbusy[n - 1];
    atomic_store_explicit(&rt->nrbusy, n - 1, memory_order_release);
}

/* Resume (GR_SIG_RESUME, in parking order) every process parked on a remote
 * busy process for which gone(rt, entry, arg) says the notice no longer
 * holds. Caller holds park_lock. Any thread. */
static void resume_remote_locked(girder_rt *rt,
                                 bool (*gone)(girder_rt *, const gr_parked *, void *), void *arg)
{
    uint64_t now = mono_us();
    size_t keep = 0;

    for (size_t i = 0; i < rt->nparked; i++) {
        gr_parked *e = &rt->parked[i];

        if (e->node != 0 || e->rnode == 0 || !gone(rt, e, arg)) {
            rt->parked[keep++] = *e;
            continue;
        }
        resume_parked_locked(rt, e, now);
    }
    rt->nparked = keep;
}

/* gone(): the parked entry's remote busy process has no entry any more. */
static bool rbusy_missing(girder_rt *rt, const gr_parked *e, void *arg)
{
    (void)arg;
    return rbusy_find_locked(rt, e->rnode, e->on) < 0;
}

bool gr_remote_is_busy(girder_rt *rt, girder_pid to)
{
    bool busy = false;
    int i;

    if (to.node == 0 || atomic_load_explicit(&rt->nrbusy, memory_order_acquire) == 0) {
        return false;
    }
    pthread_mutex_lock(&rt->park_lock);
    if ((i = rbusy_find_locked(rt, to.node, to.id)) >= 0) {
        busy = rt->rbusy[i].until_us > mono_us();
    }
    pthread_mutex_unlock(&rt->park_lock);
    return busy;
}

/* Send notice (an atom) from local pid to remote pid `to`. Not on the dist
 * thread inside gr_rt_remote_deliver (the hook is not re-entered). */
static void send_notice(girder_rt *rt, girder_pid from, girder_pid to, const char *notice)
{
    gr_sig *sig = gr_sig_new(GR_SIG_MSG, from, to);

    if (sig == NULL) {
        return; /* the deadline on the other side covers a lost notice */
    }
    if ((sig->msg = girder_msg_atom(notice)) == NULL) {
        gr_sig_free(sig);
        return;
    }
    gr_remote_out(rt, NULL, sig);
}

void gr_remote_tell_busy(girder_rt *rt, girder_pid pid, girder_pid sender)
{
    uint64_t now = mono_us();
    size_t i;

    pthread_mutex_lock(&rt->park_lock);
    if (busy_find_locked(rt, pid.id) < 0) {
        pthread_mutex_unlock(&rt->park_lock);
        return; /* cleared meanwhile: its free notice went out already */
    }
    for (i = 0; i < rt->nrtold; i++) {
        gr_rtold *t = &rt->rtold[i];

        if (t->id == pid.id && girder_pid_eq(t->sender, sender)) {
            break;
        }
    }
    if (i < rt->nrtold) {
        if (now - rt->rtold[i].told_us < GR_RT_RBUSY_TIMEOUT_MS * 1000u / 2) {
            pthread_mutex_unlock(&rt->park_lock);
            return; /* told lately */
        }
        rt->rtold[i].told_us = now;
    } else {
        if (rt->nrtold == rt->caprtold) {
            size_t cap = rt->caprtold ? rt->caprtold * 2 : 16;
            gr_rtold *g = cap <= GR_RT_RTOLD_MAX ? realloc(rt->rtold, cap * sizeof(*g)) : NULL;

            if (g == NULL) {
                pthread_mutex_unlock(&rt->park_lock);
                return; /* not told: that sender is bounded by the receiver's cap only */
            }
            rt->rtold = g;
            rt->caprtold = cap;
        }
        rt->rtold[rt->nrtold++] = (gr_rtold){pid.id, sender, now};
    }
    pthread_mutex_unlock(&rt->park_lock);
    send_notice(rt, pid, sender, GR_RT_BUSY_NOTICE);
}

/* pid (local) is busy no more: forget the senders told, and return one per
 * node in *ret (malloc'd, *ret_n entries) to send the free notice to.
 * Caller holds park_lock. */
static void rtold_take_locked(girder_rt *rt, uint64_t id, girder_pid **ret, size_t *ret_n)
{
    size_t keep = 0, n = 0;
    girder_pid *to = NULL;

    for (size_t i = 0; i < rt->nrtold; i++) {
        gr_rtold *t = &rt->rtold[i];
        bool seen = false;

        if (t->id != id) {
            rt->rtold[keep++] = *t;
            continue;
        }
        for (size_t k = 0; k < n && !seen; k++) {
            seen = to[k].node == t->sender.node;
        }
        if (!seen) {
            girder_pid *g = realloc(to, (n + 1) * sizeof(*g));

            if (g != NULL) { /* else ENOMEM: that node's deadline resumes its senders */
                to = g;
                to[n++] = t->sender;
            }
        }
    }
    rt->nrtold = keep;
    *ret = to;
    *ret_n = n;
}

/* A busy notice from remote process `from` for local sender `to` arrived. */
static int rbusy_noticed(girder_rt *rt, girder_pid from, girder_pid to, gr_rt_wakes *held)
{
    uint64_t until = mono_us() + GR_RT_RBUSY_TIMEOUT_MS * 1000u;
    unsigned idx = (unsigned)(to.id & 0xff), n;
    gr_sig *sig;
    int i;

    pthread_mutex_lock(&rt->park_lock);
    if ((i = rbusy_find_locked(rt, from.node, from.id)) >= 0) {
        rt->rbusy[i].until_us = until;
    } else if ((n = atomic_load_explicit(&rt->nrbusy, memory_order_relaxed)) < GR_RT_RBUSY_MAX) {
        rt->rbusy[n] = (gr_rbusy){from.node, from.id, until};
        atomic_store_explicit(&rt->nrbusy, n + 1, memory_order_release);
    } else {
        pthread_mutex_unlock(&rt->park_lock);
        return 0; /* no room: its senders are not slowed (the receiver's cap holds) */
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (to.node != 0 || to.creation != rt->creation || idx >= rt->nsched || to.id == 0) {
        return 0; /* no such sender here: the entry still parks later senders */
    }
    if ((sig = gr_sig_new(GR_SIG_RPARK, from, to)) == NULL) {
        return -ENOMEM;
    }
    gr_sched_push_held(&rt->scheds[idx], sig, held);
    return 0;
}

/* The free notice from remote process (node, id). */
static void rbusy_freed(girder_rt *rt, uint32_t node, uint64_t id)
{
    int i;

    pthread_mutex_lock(&rt->park_lock);
    if ((i = rbusy_find_locked(rt, node, id)) >= 0) {
        rbusy_del_locked(rt, (unsigned)i);
        resume_remote_locked(rt, rbusy_missing, NULL);
    }
    pthread_mutex_unlock(&rt->park_lock);
}

/* Node `node` is down: its busy notices no longer hold; nobody there waits
 * for a free notice from here. */
static void rbusy_node_down(girder_rt *rt, uint32_t node)
{
    size_t keep = 0;

    pthread_mutex_lock(&rt->park_lock);
    for (unsigned i = atomic_load_explicit(&rt->nrbusy, memory_order_relaxed); i-- > 0;) {
        if (rt->rbusy[i].node == node) {
            rbusy_del_locked(rt, i);
        }
    }
    resume_remote_locked(rt, rbusy_missing, NULL);
    for (size_t i = 0; i < rt->nrtold; i++) {
        if (rt->rtold[i].sender.node != node) {
            rt->rtold[keep++] = rt->rtold[i];
        }
    }
    rt->nrtold = keep;
    pthread_mutex_unlock(&rt->park_lock);
}

void gr_remote_rpark(gr_proc *p, const gr_sig *sig)
{
    gr_proc_ext *x;

    if (p->suspended || p->status == GR_PROC_DEAD) {
        return;
    }
    if ((x = gr_proc_ext_get(p)) == NULL) {
        return; /* out of memory: not parked; the notice's deadline is moot */
    }
    x->busy_pid = sig->from; /* parked after its turn, or now: */
    if (!p->queued && p->status == GR_PROC_WAITING) {
        (void)gr_remote_park(p);
    }
}

void gr_remote_rbusy_sweep(evutil_socket_t fd, short what, void *arg)
{
    gr_sched *s = arg;
    girder_rt *rt = s->rt;
    uint64_t now = mono_us();
    bool again = false;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&rt->park_lock);
    for (unsigned i = atomic_load_explicit(&rt->nrbusy, memory_order_relaxed); i-- > 0;) {
        if (rt->rbusy[i].until_us <= now) {
            rbusy_del_locked(rt, i); /* its free notice was lost: give up waiting */
        }
    }
    resume_remote_locked(rt, rbusy_missing, NULL);
    for (size_t i = 0; i < rt->nparked && !again; i++) {
        again = rt->parked[i].rnode != 0 && (rt->parked[i].pid.id & 0xff) == s->idx;
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (again) {
        struct timeval tv = {0, GR_RT_RBUSY_TIMEOUT_MS * 1000 / 4};

        tv.tv_sec = tv.tv_usec / 1000000;
        tv.tv_usec %= 1000000;
        (void)evtimer_add(s->rbusy_ev, &tv);
    }
}

/* A process of s parked on a remote busy process: make sure the sweep runs
 * (owner thread). */
static void arm_sweep(gr_sched *s)
{
    struct timeval tv = {GR_RT_RBUSY_TIMEOUT_MS / 4000, (GR_RT_RBUSY_TIMEOUT_MS % 4000) * 250};

    if (s->rbusy_ev == NULL &&
        (s->rbusy_ev = evtimer_new(s->base, gr_remote_rbusy_sweep, s)) == NULL) {
        return; /* ENOMEM: the free notice or node down still resumes it */
    }
    if (!evtimer_pending(s->rbusy_ev, NULL)) {
        (void)evtimer_add(s->rbusy_ev, &tv);
    }
}

void gr_rt_node_busy(girder_rt *rt, uint32_t node, bool busy)
{
    size_t keep = 0;
    uint64_t now;

    if (node == 0 || node >= GR_NODES_MAX) {
        return;
    }
    if (busy) {
        atomic_store(&rt->node_busy[node], true);
        return;
    }
    if (!atomic_exchange(&rt->node_busy[node], false)) {
        return; /* nobody can be parked on it: parking re-checks the flag */
    }
    now = mono_us();
    /* The pushes are lock-free (an inbox push, maybe an eventfd write), so
     * they are made under the lock: the parked keep their order. */
    pthread_mutex_lock(&rt->park_lock);
    for (size_t i = 0; i < rt->nparked; i++) {
        gr_parked *e = &rt->parked[i];

        if (e->node != node) {
            rt->parked[keep++] = *e;
            continue;
        }
        resume_parked_locked(rt, e, now);
    }
    rt->nparked = keep;
    pthread_mutex_unlock(&rt->park_lock);
}

int gr_rt_proc_busy(girder_rt *rt, girder_pid pid, bool busy)
{
    girder_pid *told = NULL;
    size_t keep = 0, ntold = 0;
    uint64_t now;
    unsigned n;
    int i, r = 0;

    if (pid.node != 0 || pid.id == 0) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&rt->park_lock);
    i = busy_find_locked(rt, pid.id);
    n = atomic_load(&rt->nbusy_ids);
    if (busy) {
        if (i < 0 && n == GR_RT_BUSY_PIDS_MAX) {
            r = -ENOSPC;
        } else if (i < 0) {
            atomic_store(&rt->busy_ids[n], pid.id);
            atomic_store_explicit(&rt->nbusy_ids, n + 1, memory_order_release);
        }
        pthread_mutex_unlock(&rt->park_lock);
        return r;
    }
    if (i < 0) {
        pthread_mutex_unlock(&rt->park_lock);
        return 0; /* not busy: nobody can be parked on it (parking re-checks) */
    }
    /* Cleared before the resumes, under the lock parking holds: a resume is
     * never lost. A reader scanning meanwhile may miss the moved entry (it
     * then does not suspend this once). */
    atomic_store(&rt->busy_ids[i], atomic_load(&rt->busy_ids[n - 1]));
    atomic_store_explicit(&rt->nbusy_ids, n - 1, memory_order_release);
    now = mono_us();
    for (size_t k = 0; k < rt->nparked; k++) {
        gr_parked *e = &rt->parked[k];

        if (e->node != 0 || e->rnode != 0 || e->on != pid.id) {
            rt->parked[keep++] = *e;
            continue;
        }
        resume_parked_locked(rt, e, now);
    }
    rt->nparked = keep;
    rtold_take_locked(rt, pid.id, &told, &ntold);
    pthread_mutex_unlock(&rt->park_lock);
    for (size_t k = 0; k < ntold; k++) {
        send_notice(rt, pid, told[k], GR_RT_FREE_NOTICE);
    }
    free(told);
    return 0;
}

void gr_rt_suspend_counters(girder_rt *rt, uint64_t *ret_total, uint64_t *ret_now, uint64_t *ret_us)
{
    pthread_mutex_lock(&rt->park_lock);
    *ret_now = rt->nparked;
    pthread_mutex_unlock(&rt->park_lock);
    *ret_total = atomic_load_explicit(&rt->suspends, memory_order_relaxed);
    *ret_us = atomic_load_explicit(&rt->suspended_us, memory_order_relaxed);
}
