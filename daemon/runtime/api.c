/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.c - the behaviour API of include/girder/girder.h.
 *
 * Every function here is called by a process from inside one of its callbacks,
 * on its scheduler thread (ctx is that process). They update the caller's own
 * side at once and send signals for the other side; they never touch another
 * process's memory, even on the same scheduler, so one routing path serves
 * local, cross-scheduler and remote destinations alike.
 *
 * This is the runtime's top layer: no other file of daemon/runtime/ calls into
 * it (docs/runtime.md, "Layers"; checked by scripts/check-runtime-layers).
 * Timers live in timer.c, pids and refs in terms in msg.c, spawn requests in
 * spawn.c.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/nodename.h"
#include "proto/term.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

girder_pid girder_self(girder_ctx *ctx)
{
    return gr_proc_of(ctx)->pid;
}

girder_rt *girder_runtime(girder_ctx *ctx)
{
    return gr_proc_of(ctx)->sched->rt;
}

girder_ref girder_make_ref(girder_ctx *ctx)
{
    return gr_sched_make_ref(gr_proc_of(ctx)->sched);
}

/* ---- spawning -------------------------------------------------------------------------- */

int girder_spawn(girder_ctx *ctx, const girder_behaviour *b, const girder_msg *arg, unsigned flags,
                 girder_pid *ret_pid, girder_ref *ret_mref)
{
    gr_proc *p = gr_proc_of(ctx);
    gr_sched *s = p->sched, *t = s;
    girder_rt *rt = s->rt;
    gr_proc *child;
    girder_pid cpid;
    girder_ref mref = {0, 0, 0};

    if (b == NULL || b->handle == NULL) {
        return GR_EBADBEHAVIOUR;
    }
    if (atomic_load(&rt->stopping)) {
        return GR_ESTOPPED;
    }
    if ((flags & GIRDER_SPAWN_SPREAD) && rt->nsched > 1) {
        t = gr_rt_next_sched(rt, &rt->spread);
    }
    child = gr_proc_new(t, b, arg, gr_sched_alloc_id(t));
    if (child == NULL) {
        return -ENOMEM;
    }
    /* Both sides of the link/monitor exist before the child can run: no window
     * in which it dies unobserved. The child is not visible to anyone yet, so
     * this thread may write it even when it belongs to another scheduler. */
    if (flags & GIRDER_SPAWN_LINK) {
        gr_proc_ext *cx = gr_proc_ext_get(child), *px = gr_proc_ext_get(p);

        if (cx == NULL || px == NULL || gr_idmap_put(&cx->links, p->pid, p->pid) < 0 ||
            gr_idmap_put(&px->links, child->pid, child->pid) < 0) {
            goto nomem;
        }
    }
    if (flags & GIRDER_SPAWN_MONITOR) {
        gr_proc_ext *cx = gr_proc_ext_get(child), *px = gr_proc_ext_get(p);

        mref = gr_sched_make_ref(s);
        if (cx == NULL || px == NULL || gr_idmap_put(&cx->monby, gr_ref_as_pid(mref), p->pid) < 0 ||
            gr_idmap_put(&px->mons, gr_ref_as_pid(mref), child->pid) < 0) {
            goto nomem;
        }
    }
    cpid = child->pid;
    if (t == s) {
        gr_proc_insert(s, child);
    } else {
        gr_sig *sig = gr_sig_new(GR_SIG_SPAWN, p->pid, child->pid);

        if (sig == NULL) {
            goto nomem;
        }
        sig->ptr = child;
        /* From here the child belongs to t: it may run, die and be freed
         * before this thread reads it again, so use cpid only. */
        gr_sched_push(t, sig);
    }
    *ret_pid = cpid;
    if (ret_mref) {
        *ret_mref = mref;
    }
    return 0;
nomem:
    if (p->ext) {
        gr_idmap_del(&p->ext->links, child->pid, NULL);
        gr_idmap_del(&p->ext->mons, gr_ref_as_pid(mref), NULL);
    }
    gr_proc_free(child);
    return -ENOMEM;
}

int girder_spawn_named(girder_ctx *ctx, const char *behaviour, const girder_msg *arg,
                       unsigned flags, girder_pid *ret_pid, girder_ref *ret_mref)
{
    const girder_behaviour *b = girder_behaviour_find(girder_runtime(ctx), behaviour);

    if (b == NULL) {
        return GR_EBADBEHAVIOUR;
    }
    return girder_spawn(ctx, b, arg, flags, ret_pid, ret_mref);
}

/* ---- signals ----------------------------------------------------------------------------- */

/* Send a signal from the calling process; takes msg (a new reference) only on
 * success. */
static void emit_sig(gr_proc *p, gr_sig *s)
{
    p->work++; /* owner thread: emit runs in p's own callbacks */
    if (p->traced && s->type == GR_SIG_MSG) {
        gr_trace_event(p, GR_TRACE_OUT, s->to, s->msg);
    }
    gr_route(p->sched->rt, p->sched, s);
}

static int emit(gr_proc *p, gr_sig_type type, girder_pid to, girder_ref ref, girder_msg *msg)
{
    gr_sig *s = gr_sig_new(type, p->pid, to);

    if (s == NULL) {
        return -ENOMEM;
    }
    s->ref = ref;
    s->msg = msg;
    emit_sig(p, s);
    return 0;
}

int gr_rt_send_once(girder_ctx *ctx, girder_pid to, girder_msg *msg)
{
    return gr_rt_send_once_held(ctx, to, msg, NULL);
}

int gr_rt_send_once_held(girder_ctx *ctx, girder_pid to, girder_msg *msg, gr_rt_wakes *held)
{
    gr_proc *p = gr_proc_of(ctx);
    gr_sig *s;

    if (msg == NULL) {
        return GR_EBADARG;
    }
    s = gr_sig_in_msg(msg, p->pid, to);
    p->work++; /* as emit_sig, with the wake-up held */
    if (p->traced) {
        gr_trace_event(p, GR_TRACE_OUT, s->to, s->msg);
    }
    gr_route_held(p->sched->rt, p->sched, s, held);
    return 0;
}

int gr_rt_send_nobusy(girder_ctx *ctx, girder_pid to, girder_msg *msg)
{
    if (msg == NULL) {
        return GR_EBADARG;
    }
    return emit(gr_proc_of(ctx), GR_SIG_MSG, to, (girder_ref){0, 0, 0}, msg);
}

/* Is `to` a busy local process other than the sender, or a process of
 * another node that said it is busy (remote.c, "Busy links", "Busy processes
 * across nodes")? Cheap while no process is busy. */
static bool to_busy_proc(gr_proc *p, girder_pid to)
{
    girder_rt *rt = p->sched->rt;

    if (to.node != 0) {
        return gr_remote_is_busy(rt, to); /* it said so (remote.c) */
    }
    return to.id != p->pid.id && atomic_load_explicit(&rt->nbusy_ids, memory_order_relaxed) != 0 &&
           gr_rt_proc_is_busy(rt, to);
}

int girder_send(girder_ctx *ctx, girder_pid to, girder_msg *msg)
{
    gr_proc *p = gr_proc_of(ctx);
    int r = gr_rt_send_nobusy(ctx, to, msg);

    if (r == 0 && to_busy_proc(p, to)) {
        gr_proc_ext *x = gr_proc_ext_get(p);

        if (x != NULL) {
            x->busy_pid = to; /* parked after this turn */
        }                     /* else out of memory: not parked; the process's bound still holds */
    }
    return r;
}

bool gr_rt_ctx_suspending(girder_ctx *ctx)
{
    gr_proc *p = gr_proc_of(ctx);

    return gr_proc_parks(p);
}

int girder_send_nosuspend(girder_ctx *ctx, girder_pid to, girder_msg *msg)
{
    gr_proc *p = gr_proc_of(ctx);
    uint16_t busy = p->busy_node;
    int r;

    if (msg == NULL) {
        return GR_EBADARG;
    }
    if (to.node != 0 && gr_rt_node_is_busy(p->sched->rt, to.node)) {
        return GR_EOVERLOAD;
    }
    if (to_busy_proc(p, to)) {
        return GR_EPROCBUSY;
    }
    r = emit(p, GR_SIG_MSG, to, (girder_ref){0, 0, 0}, msg);
    p->busy_node = busy; /* this send never suspends its sender */
    return r;
}

int girder_send_name(girder_ctx *ctx, const char *name, girder_msg *msg)
{
    girder_pid to;
    int r;

    if ((r = girder_whereis(ctx, name, &to)) < 0) {
        return r;
    }
    return girder_send(ctx, to, msg);
}

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    return n > 0 && n <= GR_TERM_NODE_MAX;
}

int girder_send_name_node(girder_ctx *ctx, const char *name, const char *node, girder_msg *msg)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_rt *rt = p->sched->rt;
    uint32_t idx;
    int r;

    if (msg == NULL || !name_ok(name) || node == NULL) {
        return GR_EBADARG;
    }
    if ((r = gr_nodename_check(node, strlen(node))) < 0 ||
        (r = gr_rt_node_intern(rt, node, strlen(node), &idx)) < 0) {
        return r;
    }
    if (idx == 0) {
        return girder_send_name(ctx, name, msg);
    }
    /* Straight to the hook, on this thread, like gr_route would: keeps order
     * with this process's other signals to that node. */
    if (gr_remote_send_name(rt, p->pid, idx, name, msg)) {
        p->busy_node = (uint16_t)idx; /* its link is busy: parked after this turn */
    }
    return 0;
}

const char *girder_pid_node_name(girder_ctx *ctx, girder_pid pid)
{
    size_t len;

    return gr_rt_node_at(girder_runtime(ctx), pid.node, &len);
}

int girder_register(girder_ctx *ctx, const char *name, girder_pid pid)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_rt *rt = p->sched->rt;
    unsigned idx = (unsigned)(pid.id & 0xff);
    int r;

    if (!name_ok(name) || pid.node != 0) {
        return GR_EBADARG;
    }
    if (pid.creation != rt->creation || idx >= rt->nsched || pid.id == 0) {
        return GR_ENOPROC;
    }
    if (&rt->scheds[idx] == p->sched) {
        gr_proc *t = gr_ptab_get(&p->sched->ptab, pid.id);
        gr_proc_ext *x;

        if (t == NULL || t->status == GR_PROC_DEAD) {
            return GR_ENOPROC;
        }
        if (t->ext && t->ext->name) {
            return GR_EALREADY;
        }
        if ((x = gr_proc_ext_get(t)) == NULL) {
            return -ENOMEM;
        }
        if ((r = gr_registry_add(rt->names, name, pid)) < 0) {
            return r;
        }
        if ((x->name = strdup(name)) == NULL) {
            gr_registry_del_if(rt->names, name, pid);
            return -ENOMEM;
        }
        return 0;
    }
    /* Another scheduler owns pid: register now, let the owner confirm (or drop
     * the name if pid is dead or already named). */
    if ((r = gr_registry_add(rt->names, name, pid)) < 0) {
        return r;
    }
    {
        girder_msg *m = girder_msg_atom(name);

        if (m == NULL || emit(p, GR_SIG_REGCHECK, pid, (girder_ref){0, 0, 0}, m) < 0) {
            girder_msg_unref(m);
            gr_registry_del_if(rt->names, name, pid);
            return -ENOMEM;
        }
    }
    return 0;
}

int girder_unregister(girder_ctx *ctx, const char *name)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_rt *rt = p->sched->rt;
    girder_pid pid;
    int r;

    if (!name_ok(name)) {
        return GR_EBADARG;
    }
    if ((r = gr_registry_del(rt->names, name, &pid)) < 0) {
        return r;
    }
    if (&rt->scheds[pid.id & 0xff] == p->sched) {
        gr_proc *t = gr_ptab_get(&p->sched->ptab, pid.id);

        if (t && t->ext && t->ext->name && strcmp(t->ext->name, name) == 0) {
            free(t->ext->name);
            t->ext->name = NULL;
        }
        return 0;
    }
    {
        girder_msg *m = girder_msg_atom(name);

        if (m && emit(p, GR_SIG_REGCHECK, pid, (girder_ref){0, 0, 0}, m) < 0) {
            girder_msg_unref(m);
        }
    }
    return 0;
}

int girder_whereis(girder_ctx *ctx, const char *name, girder_pid *ret_pid)
{
    if (!name_ok(name)) {
        return GR_EBADARG;
    }
    return gr_registry_get(girder_runtime(ctx)->names, name, ret_pid);
}

int girder_link(girder_ctx *ctx, girder_pid pid)
{
    gr_proc *p = gr_proc_of(ctx);
    gr_proc_ext *x;
    int r;

    if (girder_pid_eq(pid, p->pid)) {
        return 0;
    }
    if ((x = gr_proc_ext_get(p)) == NULL) {
        return -ENOMEM;
    }
    if ((r = gr_idmap_put(&x->links, pid, pid)) <= 0) {
        return r; /* already linked (0) or ENOMEM */
    }
    if ((r = emit(p, GR_SIG_LINK, pid, (girder_ref){0, 0, 0}, NULL)) < 0) {
        gr_idmap_del(&x->links, pid, NULL);
    }
    return r;
}

int girder_unlink(girder_ctx *ctx, girder_pid pid)
{
    gr_proc *p = gr_proc_of(ctx);

    if (p->ext == NULL || !gr_idmap_del(&p->ext->links, pid, NULL)) {
        return 0;
    }
    return emit(p, GR_SIG_UNLINK, pid, (girder_ref){0, 0, 0}, NULL);
}

static int monitor_with(gr_proc *p, girder_pid pid, girder_ref ref)
{
    gr_proc_ext *x = gr_proc_ext_get(p);
    int r;

    if (x == NULL) {
        return -ENOMEM;
    }
    if ((r = gr_idmap_put(&x->mons, gr_ref_as_pid(ref), pid)) < 0) {
        return r;
    }
    if ((r = emit(p, GR_SIG_MONITOR, pid, ref, NULL)) < 0) {
        gr_idmap_del(&x->mons, gr_ref_as_pid(ref), NULL);
    }
    return r;
}

int girder_monitor(girder_ctx *ctx, girder_pid pid, girder_ref *ret_ref)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_ref ref = gr_sched_make_ref(p->sched);
    int r = monitor_with(p, pid, ref);

    if (r == 0) {
        *ret_ref = ref;
    }
    return r;
}

int girder_demonitor(girder_ctx *ctx, girder_ref ref)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_pid target;

    if (p->ext == NULL || !gr_idmap_del(&p->ext->mons, gr_ref_as_pid(ref), &target)) {
        gr_spawn_demonitor(p, ref); /* a spawn request still pending, if it is one */
        return 0;
    }
    return emit(p, GR_SIG_DEMONITOR, target, ref, NULL);
}

int girder_exit(girder_ctx *ctx, girder_pid pid, const girder_msg *reason)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_msg *r = reason ? girder_msg_ref((girder_msg *)reason) : NULL;
    int rc = emit(p, GR_SIG_EXIT, pid, (girder_ref){0, 0, 0}, r);

    if (rc < 0) {
        girder_msg_unref(r);
    }
    return rc;
}

void girder_stop(girder_ctx *ctx, const girder_msg *reason)
{
    gr_proc *p = gr_proc_of(ctx);

    if (p->stopping) {
        return; /* already exiting (called from terminate): the reason is final */
    }
    /* The slot holds only a stop reason here: run_init emptied it of the spawn
     * argument before calling init. */
    girder_msg_unref(p->arg_or_reason);
    p->arg_or_reason = reason ? girder_msg_ref((girder_msg *)reason) : NULL;
}

bool girder_trap_exit(girder_ctx *ctx, bool on)
{
    gr_proc *p = gr_proc_of(ctx);
    bool old = p->trap_exit;

    p->trap_exit = on;
    return old;
}

/* ---- request / reply ------------------------------------------------------------------------ */

int girder_call(girder_ctx *ctx, girder_pid to, const girder_msg *request, bool monitor,
                girder_ref *ret_ref)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_ref ref = gr_sched_make_ref(p->sched);
    gr_pack pk;
    girder_msg *m;
    int r;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 4);
    msgpack_pack_str_with_body(&pk.pk, "$call", 5);
    girder_pack_pid(ctx, &pk.pk, p->pid);
    girder_pack_ref(ctx, &pk.pk, ref);
    gr_pack_raw(&pk, request);
    if ((m = gr_pack_finish(&pk)) == NULL) {
        return -ENOMEM;
    }
    if (monitor && (r = monitor_with(p, to, ref)) < 0) {
        girder_msg_unref(m);
        return r;
    }
    if ((r = gr_rt_send_nobusy(ctx, to, m)) < 0) { /* a call never suspends on a busy process */
        girder_msg_unref(m);
        if (monitor) {
            girder_demonitor(ctx, ref);
        }
        return r;
    }
    *ret_ref = ref;
    return 0;
}

int girder_reply(girder_ctx *ctx, girder_pid from, girder_ref ref, const girder_msg *response)
{
    gr_pack pk;
    girder_msg *m;
    int r;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 3);
    msgpack_pack_str_with_body(&pk.pk, "$reply", 6);
    girder_pack_ref(ctx, &pk.pk, ref);
    gr_pack_raw(&pk, response);
    if ((m = gr_pack_finish(&pk)) == NULL) {
        return -ENOMEM;
    }
    if ((r = gr_rt_send_nobusy(ctx, from, m)) < 0) { /* nor does a reply */
        girder_msg_unref(m);
    }
    return r;
}

void gr_rt_set_node_monitor(girder_rt *rt, gr_rt_node_monitor_fn fn, void *ud)
{
    assert(!atomic_load(&rt->running));
    rt->node_mon_fn = fn;
    rt->node_mon_ud = ud;
}

void gr_rt_set_global(girder_rt *rt, const gr_rt_global_ops *ops)
{
    atomic_store_explicit(&rt->global_ops, ops, memory_order_release);
}

const gr_rt_global_ops *gr_rt_global(girder_rt *rt)
{
    return atomic_load_explicit(&rt->global_ops, memory_order_acquire);
}

static const gr_rt_global_ops *global_ops(girder_ctx *ctx)
{
    return atomic_load_explicit(&gr_proc_of(ctx)->sched->rt->global_ops, memory_order_acquire);
}

int girder_global_register(girder_ctx *ctx, const char *name, girder_pid pid)
{
    const gr_rt_global_ops *g = global_ops(ctx);

    return g ? g->reg(g->ud, name, pid) : -ENOTSUP;
}

int girder_global_unregister(girder_ctx *ctx, const char *name)
{
    const gr_rt_global_ops *g = global_ops(ctx);
    int r = g ? g->unreg(g->ud, name) : -ENOTSUP;

    return r == -ENOENT ? GR_ENONAME : r;
}

int girder_global_whereis(girder_ctx *ctx, const char *name, girder_pid *ret_pid)
{
    const gr_rt_global_ops *g = global_ops(ctx);
    int r = g ? g->whereis(g->ud, name, ret_pid) : -ENOTSUP;

    return r == -ENOENT ? GR_ENONAME : r;
}

int girder_global_send(girder_ctx *ctx, const char *name, girder_msg *msg)
{
    girder_pid pid;
    int r;

    if ((r = girder_global_whereis(ctx, name, &pid)) < 0) {
        return r;
    }
    return girder_send(ctx, pid, msg);
}

void gr_rt_set_tables(girder_rt *rt, const gr_rt_table_ops *ops)
{
    atomic_store_explicit(&rt->table_ops, ops, memory_order_release);
}

static const gr_rt_table_ops *table_ops(girder_ctx *ctx)
{
    return atomic_load_explicit(&gr_proc_of(ctx)->sched->rt->table_ops, memory_order_acquire);
}

void girder_buf_free(girder_buf *b)
{
    if (b) {
        free(b->p);
        *b = (girder_buf){0};
    }
}

int girder_table_get(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     girder_buf *val, uint64_t *ret_version)
{
    const gr_rt_table_ops *t = table_ops(ctx);

    return t ? t->get(t->ud, table, key, klen, val, ret_version) : -ENOTSUP;
}

int girder_table_put(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen, const girder_put_opts *how,
                     uint64_t *ret_version)
{
    const gr_rt_table_ops *t = table_ops(ctx);

    return t ? t->put(t->ud, table, key, klen, val, vlen, how, ret_version) : -ENOTSUP;
}

int girder_table_del(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     uint64_t version)
{
    const gr_rt_table_ops *t = table_ops(ctx);

    return t ? t->del(t->ud, table, key, klen, version) : -ENOTSUP;
}

int girder_table_incr(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                      int64_t delta, int64_t *ret_value)
{
    const gr_rt_table_ops *t = table_ops(ctx);

    return t ? t->incr(t->ud, table, key, klen, delta, ret_value) : -ENOTSUP;
}

int girder_monitor_nodes(girder_ctx *ctx, bool on)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_rt *rt = p->sched->rt;
    int r;

    if (rt->node_mon_fn == NULL) {
        return GR_ENOCONN;
    }
    if ((r = rt->node_mon_fn(rt->node_mon_ud, p->pid, on)) < 0) {
        return r;
    }
    p->node_monitor = on;
    return 0;
}

int girder_info_request(girder_ctx *ctx, girder_pid pid, girder_ref *ret_ref)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_ref ref = gr_sched_make_ref(p->sched);
    int r = emit(p, GR_SIG_INFO, pid, ref, NULL);

    if (r == 0) {
        *ret_ref = ref;
    }
    return r;
}
