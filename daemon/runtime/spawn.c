/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spawn.c - spawn requests: girder_spawn_remote (Erlang's spawn_request), on
 * this node or another, with an atomic link and/or monitor, answered by one
 * ["$spawn_reply", Ref, "ok", Pid] or ["$spawn_reply", Ref, "error", Reason].
 *
 * A request is a GR_SIG_SPAWNREQ from the parent; the scheduler that serves it
 * (any scheduler of the target node) answers with a GR_SIG_SPAWNREPLY. Both
 * travel like every other signal (gr_route, or the remote hook for another
 * node), so the local and remote cases are one path.
 *
 * Design notes
 * - Atomicity, child side. The serving scheduler creates the child with its
 *   side of the link (links[parent]) and of the monitor (monby[ref] = parent)
 *   already in place, sends the reply *from the child's pid*, and only then
 *   inserts the child into its pid table and run queue. So the child cannot run
 *   init, die, or be reached before the reply has left, and every exit or DOWN
 *   it ever sends is emitted later by the same thread for the same pair:
 *   per-pair ordering delivers the reply first.
 * - Atomicity, parent side. The parent keeps a pending entry per request
 *   (ext->spawns: ref -> {node, flags, 0}). The reply installs the parent's
 *   side of the link/monitor when it is delivered (between turns), before any
 *   later signal from the child, and posts the "$spawn_reply" message. The
 *   monitor's ref is the request ref, as in Erlang.
 * - Exactly once. A reply (real or synthetic) acts only if it removes the
 *   pending entry. A node down queues a synthetic error reply "noconnection"
 *   for every request pending on that node (remote.c scan); whichever of the
 *   real and the synthetic reply is delivered first wins. A parent that never
 *   learned of a child never gets its EXIT or DOWN: its side was never made.
 * - Orphans. A success reply that finds its parent dead (or no longer waiting)
 *   undoes the child's side: a DEMONITOR for the monitor, then a link exit
 *   "noproc" (the reason Erlang gives for a link to a dead process); a reply
 *   that cannot reach the parent's node undoes it with "noconnection". The
 *   reply echoes the request's flags so the undo needs no state.
 * - girder_demonitor(Req) before the reply clears the monitor bit of the
 *   pending entry; the reply then installs no monitor and sends the child a
 *   DEMONITOR, so no DOWN ever arrives, as after any demonitor.
 * - The request does not wait for init: an init that fails shows as the
 *   child's exit ("init_failed") after the "ok" reply, as a crash right after
 *   spawn does in Erlang.
 *
 * Threads: girder_spawn_remote the caller's scheduler; gr_spawn_serve the
 * serving scheduler; gr_spawn_reply the parent's scheduler; gr_spawn_dead any
 * scheduler; gr_spawn_remote_in any thread (the dist thread).
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/nodename.h"
#include "proto/term.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REQ_FLAGS (GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR)

/* An error reason atom (a new reference); "noproc" if out of memory. */
static girder_msg *reason_atom(girder_rt *rt, const char *atom)
{
    girder_msg *m = girder_msg_atom(atom);

    return m ? m : girder_msg_ref(rt->r_noproc);
}

/* ---- the parent: request ------------------------------------------------------------ */

int girder_spawn_remote(girder_ctx *ctx, const char *node, const char *behaviour,
                        const girder_msg *arg, unsigned flags, girder_ref *ret_req)
{
    gr_proc *p = gr_proc_of(ctx);
    gr_sched *s = p->sched, *t = s;
    girder_rt *rt = s->rt;
    size_t blen = behaviour ? strlen(behaviour) : 0;
    gr_proc_ext *x;
    girder_ref ref;
    gr_sig *sig;
    uint32_t idx;
    int r;

    if (node == NULL || ret_req == NULL || blen == 0 || blen > GR_TERM_NODE_MAX ||
        (flags & ~(REQ_FLAGS | GIRDER_SPAWN_SPREAD)) != 0) {
        return GR_EBADARG;
    }
    if ((r = gr_nodename_check(node, strlen(node))) < 0 ||
        (r = gr_rt_node_intern(rt, node, strlen(node), &idx)) < 0) {
        return r;
    }
    if ((x = gr_proc_ext_get(p)) == NULL) {
        return -ENOMEM;
    }
    ref = gr_sched_make_ref(s);
    if ((sig = gr_sig_new(GR_SIG_SPAWNREQ, p->pid, (girder_pid){idx, 0, 0})) == NULL) {
        return -ENOMEM;
    }
    if ((r = gr_idmap_put(&x->spawns, gr_ref_as_pid(ref),
                          (girder_pid){idx, flags & REQ_FLAGS, 0})) < 0) {
        gr_sig_free(sig);
        return r;
    }
    sig->ref = ref;
    sig->flags = (uint8_t)(flags & REQ_FLAGS);
    sig->msg = arg ? girder_msg_ref((girder_msg *)arg) : NULL;
    *ret_req = ref;
    if (idx != 0) {
        /* The name is borrowed: the hook copies it inside this call, and a
         * refused request is answered (gr_spawn_dead) without reading it. */
        sig->ptr = (void *)behaviour;
        gr_remote_out(rt, s, sig);
        return 0;
    }
    sig->ptr = (void *)girder_behaviour_find(rt, behaviour);
    if ((flags & GIRDER_SPAWN_SPREAD) && rt->nsched > 1) {
        t = gr_rt_next_sched(rt, &rt->spread);
    }
    if (t == s) {
        gr_sched_local(s, sig);
    } else {
        gr_sched_push(t, sig);
    }
    return 0;
}

/* ---- the serving scheduler --------------------------------------------------------------- */

/* The child's side of the link and monitor. false on ENOMEM. */
static bool child_side(gr_proc *child, girder_pid parent, girder_ref ref, unsigned flags)
{
    gr_proc_ext *cx;

    if ((flags & REQ_FLAGS) == 0) {
        return true;
    }
    if ((cx = gr_proc_ext_get(child)) == NULL) {
        return false;
    }
    if ((flags & GIRDER_SPAWN_LINK) && gr_idmap_put(&cx->links, parent, parent) < 0) {
        return false;
    }
    if ((flags & GIRDER_SPAWN_MONITOR) &&
        gr_idmap_put(&cx->monby, gr_ref_as_pid(ref), parent) < 0) {
        return false;
    }
    return true;
}

void gr_spawn_serve(gr_sched *s, gr_sig *sig)
{
    girder_rt *rt = s->rt;
    const girder_behaviour *b = sig->ptr;
    girder_pid parent = sig->from;
    gr_proc *child = NULL;
    const char *why = NULL;

    sig->ptr = NULL;
    if (b == NULL || b->handle == NULL) {
        why = "bad_behaviour";
    } else if (s->stopping) {
        why = "shutdown";
    } else if ((child = gr_proc_new(s, b, sig->msg, gr_sched_alloc_id(s))) == NULL ||
               !child_side(child, parent, sig->ref, sig->flags)) {
        gr_proc_free(child);
        child = NULL;
        why = "system_limit";
    }
    /* The request becomes the reply: no allocation can lose the answer. */
    girder_msg_unref(sig->msg);
    sig->type = GR_SIG_SPAWNREPLY;
    sig->to = parent;
    if (child) {
        sig->from = child->pid;
        sig->msg = NULL;
    } else {
        sig->from = (girder_pid){0, rt->creation, 0};
        sig->msg = reason_atom(rt, why);
    }
    gr_route(rt, s, sig);
    if (child) {
        gr_proc_insert(s, child); /* runnable only now, after the reply left */
    }
}

int gr_spawn_remote_in(girder_rt *rt, gr_rt_remote_sig *rs)
{
    gr_sig *s = gr_sig_new(GR_SIG_SPAWNREQ, rs->from, (girder_pid){0, 0, 0});

    if (s == NULL) {
        return -ENOMEM;
    }
    s->ref = rs->ref;
    s->flags = (uint8_t)rs->flags;
    s->ptr = (void *)girder_behaviour_find(rt, rs->behaviour);
    s->msg = rs->msg;
    rs->msg = NULL;
    gr_sched_push(gr_rt_next_sched(rt, &rt->ext_spread), s);
    return 0;
}

/* ---- the parent: reply ------------------------------------------------------------------- */

/* ["$spawn_reply", Ref, "ok", Child] or ["$spawn_reply", Ref, "error", Reason]. */
static girder_msg *reply_msg(gr_proc *p, girder_ref ref, girder_pid child, const girder_msg *reason)
{
    gr_pack pk;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 4);
    msgpack_pack_str_with_body(&pk.pk, "$spawn_reply", 12);
    gr_pack_ref(p->sched->rt, &pk.pk, ref);
    if (reason == NULL) {
        msgpack_pack_str_with_body(&pk.pk, "ok", 2);
        gr_pack_pid(p->sched->rt, &pk.pk, child);
    } else {
        msgpack_pack_str_with_body(&pk.pk, "error", 5);
        gr_pack_raw(&pk, reason);
    }
    return gr_pack_finish(&pk);
}

void gr_spawn_reply(gr_proc *p, gr_sig *sig)
{
    girder_rt *rt = p->sched->rt;
    gr_proc_ext *x = p->ext;
    girder_pid req;
    unsigned flags;

    if (x == NULL || !gr_idmap_del(&x->spawns, gr_ref_as_pid(sig->ref), &req)) {
        /* Not waiting (already answered "noconnection"): like a dead parent. */
        gr_spawn_dead(rt, p->sched, sig, rt->r_noproc);
        return;
    }
    flags = req.creation;
    if (sig->msg == NULL && (sig->flags & ~flags & GIRDER_SPAWN_MONITOR)) {
        /* demonitored while pending: the child's side goes too */
        gr_proc_send_sig(rt, p->sched, GR_SIG_DEMONITOR, p->pid, sig->from, sig->ref, NULL);
    }
    flags &= sig->flags; /* only what both sides hold (the child's as echoed) */
    if (sig->msg == NULL) {
        if ((flags & GIRDER_SPAWN_LINK) && gr_idmap_put(&x->links, sig->from, sig->from) < 0) {
            goto nomem;
        }
        if ((flags & GIRDER_SPAWN_MONITOR) &&
            gr_idmap_put(&x->mons, gr_ref_as_pid(sig->ref), sig->from) < 0) {
            if (flags & GIRDER_SPAWN_LINK) {
                gr_idmap_del(&x->links, sig->from, NULL);
            }
            goto nomem;
        }
    }
    gr_proc_post(p, sig->from, reply_msg(p, sig->ref, sig->from, sig->msg));
    gr_sig_free(sig);
    return;
nomem:
    /* The parent cannot hold its side: the child must not outlive it unseen. */
    gr_error("spawn", "spawn reply: out of memory; child abandoned");
    {
        girder_msg *why = reason_atom(rt, "system_limit");

        gr_proc_post(p, sig->from, reply_msg(p, sig->ref, sig->from, why));
        girder_msg_unref(why);
    }
    sig->flags = (uint8_t)flags;
    gr_spawn_dead(rt, p->sched, sig, rt->r_noproc);
}

bool gr_spawn_demonitor(gr_proc *p, girder_ref ref)
{
    girder_pid req;

    if (p->ext == NULL || !gr_idmap_get(&p->ext->spawns, gr_ref_as_pid(ref), &req) ||
        !(req.creation & GIRDER_SPAWN_MONITOR)) {
        return false;
    }
    req.creation &= ~(uint32_t)GIRDER_SPAWN_MONITOR;
    gr_idmap_put(&p->ext->spawns, gr_ref_as_pid(ref), req); /* a replace: cannot fail */
    return true;
}

void gr_spawn_dead(girder_rt *rt, gr_sched *cur, gr_sig *sig, girder_msg *reason)
{
    if (sig->type == GR_SIG_SPAWNREQ) {
        /* The request never left: the parent gets the error reply, async. */
        gr_proc_send_sig(rt, cur, GR_SIG_SPAWNREPLY, (girder_pid){sig->to.node, 0, 0}, sig->from,
                         sig->ref, reason);
    } else if (sig->msg == NULL && sig->from.id != 0) {
        /* A child exists that its parent will never know: undo its side. The
         * demonitor goes first so that once the link exit is seen, both are. */
        if (sig->flags & GIRDER_SPAWN_MONITOR) {
            gr_proc_send_sig(rt, cur, GR_SIG_DEMONITOR, sig->to, sig->from, sig->ref, NULL);
        }
        if (sig->flags & GIRDER_SPAWN_LINK) {
            gr_proc_send_sig(rt, cur, GR_SIG_LINKEXIT, sig->to, sig->from, (girder_ref){0, 0, 0},
                             reason);
        }
    }
    gr_sig_free(sig);
}
