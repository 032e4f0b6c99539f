/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proc.c - a process's life: creation, turns, signals, exit.
 *
 * Everything here runs on the process's own scheduler thread, outside any
 * callback of that process (the loop calls in between turns), except
 * gr_proc_dead_signal[_why] which answers for pids that no longer exist (or
 * nodes that are not connected) and may run on any thread.
 *
 * Design notes
 * - Erlang's exit-signal rules, in gr_proc_signal: "kill" by exit/2 is
 *   untrappable and becomes "killed"; "normal" is ignored by a non-trapping
 *   process unless it sent it to itself; any other reason kills a non-trapping
 *   process; a trapping process gets ["EXIT", From, Reason]. A link exit is only
 *   honoured if the link still exists, so an unlink wins against an exit in
 *   flight.
 * - Monitors fire exactly once: the DOWN signal travels to the watcher's mailbox
 *   as a lazy entry and becomes a ["DOWN", ...] message only when handled and
 *   only if the watcher still holds that ref; demonitor just drops the ref. A
 *   monitor on a dead pid is answered "noproc" by gr_proc_dead_signal.
 * - A process that dies is removed from the pid table at once (later signals
 *   get the dead-pid treatment) and freed at the end of the scheduler turn, or
 *   when the run queue drops it: never inside its own callback.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

gr_proc *gr_proc_new(gr_sched *s, const girder_behaviour *b, const girder_msg *arg, uint64_t id)
{
    gr_proc *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    p->pid = (girder_pid){0, s->rt->creation, id};
    p->beh = b;
    p->sched = s;
    p->arg_or_reason = arg ? girder_msg_ref((girder_msg *)arg) : NULL;
    p->start_ms = gr_now_ms();
    p->status = GR_PROC_WAITING;
    return p;
}

gr_proc_ext *gr_proc_ext_get(gr_proc *p)
{
    if (p->ext == NULL) {
        p->ext = calloc(1, sizeof(*p->ext));
    }
    return p->ext;
}

void gr_proc_insert(gr_sched *s, gr_proc *p)
{
    if (gr_ptab_put(&s->ptab, p->pid.id, p) < 0) {
        /* Out of memory for the table: the process cannot be reached, so it
         * dies at once with its links and monitors answered. */
        gr_error("proc", "pid table full (ENOMEM); process dies at birth");
        p->inited = false;
        gr_proc_exit(p, s->rt->r_noproc);
        return;
    }
    atomic_fetch_add_explicit(&s->nprocs, 1, memory_order_relaxed);
    gr_sched_ready(s, p);
}

/* Route a new signal of `type` from `from` to `to`, carrying a reference to msg. */
static void send_sig(girder_rt *rt, gr_sched *cur, gr_sig_type type, girder_pid from, girder_pid to,
                     girder_ref ref, girder_msg *msg)
{
    gr_sig *s = gr_sig_new(type, from, to);

    if (s == NULL) {
        gr_error("proc", "signal lost: out of memory");
        return;
    }
    s->ref = ref;
    s->msg = msg ? girder_msg_ref(msg) : NULL;
    gr_route(rt, cur, s);
}

void gr_proc_send_sig(girder_rt *rt, gr_sched *cur, gr_sig_type type, girder_pid from,
                      girder_pid to, girder_ref ref, girder_msg *msg)
{
    send_sig(rt, cur, type, from, to, ref, msg);
}

/* Build ["EXIT", From, Reason] for p. */
static girder_msg *exit_msg(gr_proc *p, girder_pid from, const girder_msg *reason)
{
    gr_pack pk;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 3);
    msgpack_pack_str_with_body(&pk.pk, "EXIT", 4);
    gr_pack_pid(p->sched->rt, &pk.pk, from);
    gr_pack_raw(&pk, reason);
    return gr_pack_finish(&pk);
}

/* Build ["DOWN", Ref, "process", Pid, Reason] for p. */
static girder_msg *down_msg(gr_proc *p, girder_ref ref, girder_pid from, const girder_msg *reason)
{
    gr_pack pk;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 5);
    msgpack_pack_str_with_body(&pk.pk, "DOWN", 4);
    gr_pack_ref(p->sched->rt, &pk.pk, ref);
    msgpack_pack_str_with_body(&pk.pk, "process", 7);
    gr_pack_pid(p->sched->rt, &pk.pk, from);
    gr_pack_raw(&pk, reason);
    return gr_pack_finish(&pk);
}

void gr_proc_post(gr_proc *p, girder_pid from, girder_msg *msg)
{
    gr_sig *s;

    if (msg == NULL) {
        gr_error("proc", "message lost: out of memory");
        return;
    }
    s = gr_sig_new(GR_SIG_MSG, from, p->pid);
    if (s == NULL) {
        girder_msg_unref(msg);
        gr_error("proc", "message lost: out of memory");
        return;
    }
    s->msg = msg;
    gr_proc_mbox_append(p->sched, p, s);
}

static bool is_reason(const girder_msg *m, const girder_msg *common, const char *atom)
{
    return m == common || (m != NULL && girder_msg_is_atom(m, atom));
}

/* Called when p's turn is over and it must die with `reason`. */
void gr_proc_exit(gr_proc *p, girder_msg *reason)
{
    gr_sched *s = p->sched;
    girder_rt *rt = s->rt;
    gr_sig *sig;

    if (p->status == GR_PROC_DEAD) {
        return;
    }
    girder_msg_ref(reason);
    girder_msg_unref(p->arg_or_reason); /* a spawn arg never used, or a stop reason */
    p->arg_or_reason = reason;
    p->stopping = true;

    if (p->inited && p->beh->terminate) {
        gr_proc *prev = s->current;
        uint8_t st = p->status;

        s->current = p;
        p->status = GR_PROC_RUNNING;
        p->beh->terminate(gr_ctx_of(p), p->state, reason);
        p->status = st;
        s->current = prev;
    }
    p->state = NULL;
    p->status = GR_PROC_DEAD;
    if (atomic_load_explicit(&rt->nbusy_ids, memory_order_relaxed) != 0 &&
        gr_rt_proc_is_busy(rt, p->pid)) {
        (void)gr_rt_proc_busy(rt, p->pid, false); /* its senders must not sleep forever */
    }
    if (p->node_monitor && rt->node_mon_fn) {
        (void)rt->node_mon_fn(rt->node_mon_ud, p->pid, false); /* cannot fail */
        p->node_monitor = false;
    }
    gr_ptab_del(&s->ptab, p->pid.id);
    if (atomic_fetch_sub_explicit(&s->nprocs, 1, memory_order_relaxed) == 1 && s->stopping) {
        gr_rt_sched_emptied(rt);
    }

    if (p->ext) {
        gr_proc_ext *x = p->ext;

        if (x->name) {
            gr_registry_del_if(rt->names, x->name, p->pid);
        }
        gr_timer_free_all(p);
        GR_IDMAP_EACH(&x->links, sl)
        {
            send_sig(rt, s, GR_SIG_LINKEXIT, p->pid, sl->key, (girder_ref){0, 0, 0}, reason);
        }
        GR_IDMAP_EACH(&x->monby, sl)
        {
            send_sig(rt, s, GR_SIG_DOWN, p->pid, sl->val, gr_pid_as_ref(sl->key), reason);
        }
        GR_IDMAP_EACH(&x->mons, sl)
        {
            send_sig(rt, s, GR_SIG_DEMONITOR, p->pid, sl->val, gr_pid_as_ref(sl->key), NULL);
        }
    }
    while ((sig = p->mbox_head) != NULL) {
        p->mbox_head = sig->next;
        gr_sig_free(sig);
    }
    p->mbox_tail = NULL;
    p->mbox_len = 0;
    if (!p->queued) {
        p->run_next = s->reap;
        s->reap = p;
    }
}

void gr_proc_free(gr_proc *p)
{
    if (p == NULL) {
        return;
    }
    while (p->mbox_head) {
        gr_sig *sig = p->mbox_head;

        p->mbox_head = sig->next;
        gr_sig_free(sig);
    }
    if (p->ext) {
        gr_timer_free_all(p);
        gr_idmap_clear(&p->ext->links);
        gr_idmap_clear(&p->ext->mons);
        gr_idmap_clear(&p->ext->monby);
        gr_idmap_clear(&p->ext->spawns);
        free(p->ext->name);
        gr_trace_free(p->ext);
        free(p->ext);
    }
    girder_msg_unref(p->arg_or_reason);
    free(p);
}

/* Take the stop reason set by girder_stop, or `dflt`. Returns a new reference. */
static girder_msg *stop_reason(gr_proc *p, girder_msg *dflt)
{
    girder_msg *r = p->arg_or_reason;

    p->arg_or_reason = NULL;
    return r ? r : girder_msg_ref(dflt);
}

static void run_init(gr_proc *p)
{
    girder_msg *arg = p->arg_or_reason;
    void *st = NULL;
    int r = 0;

    p->arg_or_reason = NULL;
    if (p->beh->init) {
        r = p->beh->init(gr_ctx_of(p), arg, &st);
    }
    girder_msg_unref(arg);
    if (r < 0) {
        girder_msg *dflt = girder_msg_atom("init_failed");
        girder_msg *reason = stop_reason(p, dflt ? dflt : p->sched->rt->r_shutdown);

        girder_msg_unref(dflt);
        p->status = GR_PROC_WAITING;
        gr_proc_exit(p, reason);
        girder_msg_unref(reason);
        return;
    }
    p->state = st;
    p->inited = true;
}

void gr_proc_run(gr_proc *p)
{
    gr_sched *s = p->sched;
    unsigned n = 0, budget = s->rt->batch;
    bool stop = false;

    /* A backlog earns a bigger turn (a quarter of it, at most 16 batches), so a
     * receiver keeps pace with a sender that sends many messages per turn and
     * its mailbox stays short and cache-hot; every turn is still bounded. */
    if (p->mbox_len / 4 > budget) {
        budget = p->mbox_len / 4 < 16 * budget ? p->mbox_len / 4 : 16 * budget;
    }
    s->current = p;
    p->status = GR_PROC_RUNNING;
    if (!p->inited) {
        run_init(p);
        if (p->status == GR_PROC_DEAD) {
            s->current = NULL;
            return;
        }
    }
    while (p->mbox_head && n < budget && !stop) {
        gr_sig *sig = p->mbox_head;
        girder_pid from = sig->from;
        girder_msg *m;

        p->mbox_head = sig->next;
        if (p->mbox_head == NULL) {
            p->mbox_tail = NULL;
        }
        p->mbox_len--;
        if (sig->type == GR_SIG_DOWN) {
            /* Lazy DOWN: deliver only if the monitor is still held. */
            if (p->ext == NULL || !gr_idmap_del(&p->ext->mons, gr_ref_as_pid(sig->ref), NULL)) {
                gr_sig_free(sig);
                continue;
            }
            m = down_msg(p, sig->ref, sig->from, sig->msg);
            gr_sig_free(sig);
            if (m == NULL) {
                gr_error("proc", "DOWN message lost: out of memory");
                continue;
            }
        } else {
            m = sig->msg;
            sig->msg = NULL;
            gr_sig_free(sig);
        }
        if (p->traced) {
            gr_trace_event(p, GR_TRACE_IN, from, m);
        }
        stop = p->beh->handle(gr_ctx_of(p), p->state, m) == GIRDER_STOP;
        girder_msg_unref(m);
        p->handled++;
        n++;
    }
    p->work += (uint64_t)n + 1; /* this turn and its messages */
    s->current = NULL;
    /* one writer (this scheduler): a plain add, readable from any thread */
    atomic_store_explicit(&s->handled, atomic_load_explicit(&s->handled, memory_order_relaxed) + n,
                          memory_order_relaxed);
    if (stop) {
        girder_msg *reason = stop_reason(p, s->rt->r_normal);

        p->status = GR_PROC_WAITING;
        gr_proc_exit(p, reason);
        girder_msg_unref(reason);
        return;
    }
    p->status = GR_PROC_WAITING;
    if (gr_proc_parks(p) && gr_remote_park(p)) {
        return; /* sent to a busy link: its next turn waits (remote.c, "Busy links") */
    }
    if (p->mbox_head) {
        gr_sched_ready(s, p);
    }
}

static void handle_exit(gr_proc *p, gr_sig *sig, bool via_link)
{
    girder_rt *rt = p->sched->rt;
    girder_msg *reason = sig->msg ? sig->msg : rt->r_normal;

    if (via_link) {
        if (p->ext == NULL || !gr_idmap_del(&p->ext->links, sig->from, NULL)) {
            return; /* unlinked meanwhile: this exit no longer concerns p */
        }
    } else if (is_reason(reason, rt->r_kill, "kill")) {
        gr_proc_exit(p, rt->r_killed);
        return;
    }
    if (p->trap_exit) {
        gr_proc_post(p, sig->from, exit_msg(p, sig->from, reason));
        return;
    }
    if (is_reason(reason, rt->r_normal, "normal")) {
        if (!via_link && girder_pid_eq(sig->from, p->pid)) {
            gr_proc_exit(p, reason);
        }
        return;
    }
    gr_proc_exit(p, reason);
}

static void run_closure(gr_proc *p, gr_run *run)
{
    gr_sched *s = p->sched;
    uint8_t st = p->status;
    uint16_t busy = p->busy_node;
    girder_pid busy_pid = p->ext ? p->ext->busy_pid : (girder_pid){0, 0, 0};
    int r;

    s->current = p;
    p->status = GR_PROC_RUNNING;
    r = run->fn(gr_ctx_of(p), run->arg);
    p->status = st;
    /* not a turn: a closure sending to a busy link does not park the process
     * (its caller is a thread blocked in gr_probe_run, not a scheduled sender) */
    p->busy_node = busy;
    if (p->ext) { /* the closure may have made it */
        p->ext->busy_pid = busy_pid;
    }
    s->current = NULL;
    pthread_mutex_lock(&run->lock);
    run->result = r;
    run->done = true;
    pthread_cond_signal(&run->cond);
    pthread_mutex_unlock(&run->lock);
}

static void handle_regcheck(gr_proc *p, gr_sig *sig)
{
    girder_rt *rt = p->sched->rt;
    gr_proc_ext *x = gr_proc_ext_get(p);
    msgpack_unpacked u;
    char name[256];
    girder_pid owner;
    bool mapped;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(sig->msg, &u) < 0 || u.data.type != MSGPACK_OBJECT_STR ||
        u.data.via.str.size == 0 || u.data.via.str.size >= sizeof(name)) {
        msgpack_unpacked_destroy(&u);
        return;
    }
    memcpy(name, u.data.via.str.ptr, u.data.via.str.size);
    name[u.data.via.str.size] = '\0';
    msgpack_unpacked_destroy(&u);

    mapped = gr_registry_get(rt->names, name, &owner) == 0 && girder_pid_eq(owner, p->pid);
    if (x == NULL) {
        if (mapped) {
            gr_registry_del_if(rt->names, name, p->pid);
        }
        return;
    }
    if (mapped && x->name == NULL) {
        x->name = strdup(name);
        if (x->name == NULL) {
            gr_registry_del_if(rt->names, name, p->pid);
        }
    } else if (mapped && strcmp(x->name, name) != 0) {
        gr_registry_del_if(rt->names, name, p->pid); /* p already had a name */
    } else if (!mapped && x->name && strcmp(x->name, name) == 0) {
        free(x->name); /* unregistered from another scheduler */
        x->name = NULL;
    }
}

void gr_proc_signal(gr_proc *p, gr_sig *sig)
{
    gr_sched *s = p->sched;
    girder_rt *rt = s->rt;
    gr_proc_ext *x;

    switch ((gr_sig_type)sig->type) {
    case GR_SIG_EXIT:
        handle_exit(p, sig, false);
        break;
    case GR_SIG_LINKEXIT:
        handle_exit(p, sig, true);
        break;
    case GR_SIG_LINK:
        if ((x = gr_proc_ext_get(p)) == NULL || gr_idmap_put(&x->links, sig->from, sig->from) < 0) {
            gr_error("proc", "link lost: out of memory");
        }
        break;
    case GR_SIG_UNLINK:
        if (p->ext) {
            gr_idmap_del(&p->ext->links, sig->from, NULL);
        }
        break;
    case GR_SIG_MONITOR:
        if ((x = gr_proc_ext_get(p)) == NULL ||
            gr_idmap_put(&x->monby, gr_ref_as_pid(sig->ref), sig->from) < 0) {
            /* Cannot record it: fire at once so the watcher is not left waiting. */
            send_sig(rt, s, GR_SIG_DOWN, p->pid, sig->from, sig->ref, rt->r_noproc);
        }
        break;
    case GR_SIG_DEMONITOR:
        if (p->ext) {
            gr_idmap_del(&p->ext->monby, gr_ref_as_pid(sig->ref), NULL);
        }
        break;
    case GR_SIG_DOWN:
        gr_proc_mbox_append(p->sched, p, sig); /* lazy: converted when handled */
        return;
    case GR_SIG_INFO: {
        girder_msg *m = gr_proc_info_msg(rt, p, sig->ref);

        if (m) {
            send_sig(rt, s, GR_SIG_MSG, p->pid, sig->from, (girder_ref){0, 0, 0}, m);
            girder_msg_unref(m);
        }
        break;
    }
    case GR_SIG_RUN:
        run_closure(p, sig->ptr);
        break;
    case GR_SIG_REGCHECK:
        handle_regcheck(p, sig);
        break;
    case GR_SIG_SPAWNREPLY:
        gr_spawn_reply(p, sig);
        return;
    case GR_SIG_RESUME:
        p->suspended = false;
        if (p->mbox_head) {
            gr_sched_ready(s, p);
        }
        break;
    case GR_SIG_TRACE:
        gr_trace_set(p, sig);
        break;
    case GR_SIG_RPARK:
        gr_remote_rpark(p, sig);
        break;
    case GR_SIG_MSG: /* these are handled by gr_sched_deliver */
    case GR_SIG_SPAWNREQ:
    case GR_SIG_SPAWN:
    case GR_SIG_STOP:
    case GR_SIG_NODEDOWN:
    case GR_SIG_DEAD:
    case GR_SIG_PLIST:
        gr_panic_unreachable();
    }
    gr_sig_free(sig);
}

void gr_proc_dead_signal(girder_rt *rt, gr_sched *cur, gr_sig *sig)
{
    gr_proc_dead_signal_why(rt, cur, sig, sig->to.node != 0 ? rt->r_noconnection : rt->r_noproc);
}

void gr_proc_dead_signal_why(girder_rt *rt, gr_sched *cur, gr_sig *sig, girder_msg *reason)
{
    switch ((gr_sig_type)sig->type) {
    case GR_SIG_LINK:
        send_sig(rt, cur, GR_SIG_LINKEXIT, sig->to, sig->from, (girder_ref){0, 0, 0}, reason);
        break;
    case GR_SIG_MONITOR:
        send_sig(rt, cur, GR_SIG_DOWN, sig->to, sig->from, sig->ref, reason);
        break;
    case GR_SIG_INFO: {
        girder_msg *m = gr_proc_info_msg(rt, NULL, sig->ref);

        if (m) {
            send_sig(rt, cur, GR_SIG_MSG, sig->to, sig->from, (girder_ref){0, 0, 0}, m);
            girder_msg_unref(m);
        }
        break;
    }
    case GR_SIG_RUN: {
        gr_run *run = sig->ptr;

        pthread_mutex_lock(&run->lock);
        run->result = GR_ENOPROC;
        run->done = true;
        pthread_cond_signal(&run->cond);
        pthread_mutex_unlock(&run->lock);
        break;
    }
    case GR_SIG_REGCHECK: {
        msgpack_unpacked u;
        char name[256];

        msgpack_unpacked_init(&u);
        if (girder_msg_unpack(sig->msg, &u) == 0 && u.data.type == MSGPACK_OBJECT_STR &&
            u.data.via.str.size > 0 && u.data.via.str.size < sizeof(name)) {
            memcpy(name, u.data.via.str.ptr, u.data.via.str.size);
            name[u.data.via.str.size] = '\0';
            gr_registry_del_if(rt->names, name, sig->to);
        }
        msgpack_unpacked_destroy(&u);
        break;
    }
    case GR_SIG_SPAWNREQ:
    case GR_SIG_SPAWNREPLY:
        gr_spawn_dead(rt, cur, sig, reason);
        return;
    default:
        break; /* messages, exits, unlinks, demonitors, DOWNs to the dead vanish */
    }
    gr_sig_free(sig);
}

size_t gr_proc_memory(const gr_proc *p)
{
    size_t n = sizeof(*p);

    for (const gr_sig *s = p->mbox_head; s; s = s->next) {
        n += sizeof(*s) + (s->msg ? sizeof(girder_msg) + s->msg->len : 0);
    }
    if (p->ext) {
        n += sizeof(*p->ext) + gr_idmap_bytes(&p->ext->links) + gr_idmap_bytes(&p->ext->mons) +
             gr_idmap_bytes(&p->ext->monby) + gr_idmap_bytes(&p->ext->spawns) +
             (p->ext->name ? strlen(p->ext->name) + 1 : 0);
        for (const gr_timer *t = p->ext->timers; t; t = t->next) {
            n += sizeof(*t) + (t->msg ? t->msg->len : 0);
        }
    }
    if (p->inited && p->beh->state_size && p->state) {
        n += p->beh->state_size(p->state);
    }
    return n;
}

static const char *status_name(const gr_proc *p)
{
    if (p->sched->current == p) {
        return "running";
    }
    if (p->queued) {
        return "runnable";
    }
    return "waiting";
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    gr_term_pack_cstr(pk, k);
    gr_term_pack_cstr(pk, v);
}

girder_msg *gr_proc_info_msg(girder_rt *rt, gr_proc *p, girder_ref ref)
{
    gr_pack pk;
    gr_proc_ext *x;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 3);
    msgpack_pack_str_with_body(&pk.pk, "$info", 5);
    if (gr_pack_ref(rt, &pk.pk, ref) < 0) {
        msgpack_pack_nil(&pk.pk);
    }
    if (p == NULL) {
        msgpack_pack_nil(&pk.pk);
        return gr_pack_finish(&pk);
    }
    x = p->ext;
    msgpack_pack_map(&pk.pk, 14);
    gr_term_pack_cstr(&pk.pk, "pid");
    gr_pack_pid(p->sched->rt, &pk.pk, p->pid);
    pack_kv_str(&pk.pk, "status", status_name(p));
    gr_term_pack_cstr(&pk.pk, "scheduler");
    msgpack_pack_unsigned_int(&pk.pk, p->sched->idx);
    gr_term_pack_cstr(&pk.pk, "mailbox");
    msgpack_pack_uint32(&pk.pk, p->mbox_len);
    gr_term_pack_cstr(&pk.pk, "handled");
    msgpack_pack_uint64(&pk.pk, p->handled);
    gr_term_pack_cstr(&pk.pk, "work");
    msgpack_pack_uint64(&pk.pk, p->work);
    gr_term_pack_cstr(&pk.pk, "memory");
    msgpack_pack_uint64(&pk.pk, gr_proc_memory(p));
    gr_term_pack_cstr(&pk.pk, "links");
    msgpack_pack_array(&pk.pk, x ? x->links.count : 0);
    if (x) {
        GR_IDMAP_EACH(&x->links, sl)
        {
            gr_pack_pid(p->sched->rt, &pk.pk, sl->key);
        }
    }
    gr_term_pack_cstr(&pk.pk, "monitors");
    msgpack_pack_array(&pk.pk, x ? x->mons.count : 0);
    if (x) {
        GR_IDMAP_EACH(&x->mons, sl)
        {
            gr_pack_pid(p->sched->rt, &pk.pk, sl->val);
        }
    }
    gr_term_pack_cstr(&pk.pk, "monitored_by");
    msgpack_pack_array(&pk.pk, x ? x->monby.count : 0);
    if (x) {
        GR_IDMAP_EACH(&x->monby, sl)
        {
            gr_pack_pid(p->sched->rt, &pk.pk, sl->val);
        }
    }
    gr_term_pack_cstr(&pk.pk, "name");
    if (x && x->name) {
        gr_term_pack_cstr(&pk.pk, x->name);
    } else {
        msgpack_pack_nil(&pk.pk);
    }
    pack_kv_str(&pk.pk, "behaviour", p->beh->name ? p->beh->name : "");
    gr_term_pack_cstr(&pk.pk, "started_ms");
    msgpack_pack_uint64(&pk.pk, p->start_ms);
    gr_term_pack_cstr(&pk.pk, "trap_exit");
    if (p->trap_exit) {
        msgpack_pack_true(&pk.pk);
    } else {
        msgpack_pack_false(&pk.pk);
    }
    return gr_pack_finish(&pk);
}
