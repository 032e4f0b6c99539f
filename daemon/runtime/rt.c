/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rt.c - one node's runtime: its schedulers, node-name table, behaviours,
 * registered names, and the single routing function every signal goes through.
 *
 * Design notes
 * - gr_route is the one path for all signals: same scheduler (local queue),
 *   another scheduler (its inbox), another node (the distribution hook, see
 *   remote.c; without one every other node is "not connected"). A pid of an
 *   older incarnation of this node (creation differs) is dead by definition and
 *   is never delivered to a process that reuses its number.
 * - The node-name table is append-only: a slot is written once, then published
 *   by a release increment of nnodes, so readers take no lock.
 * - Shutdown (gr_rt_stop) is two-phase: every scheduler kills its processes
 *   (their terminate callbacks, links and monitors run normally, and processes
 *   on other schedulers may still be receiving), and only when every scheduler
 *   has no process left do the loops end. A process created during shutdown is
 *   killed on arrival.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/nodename.h"
#include "proto/term.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#define DEFAULT_BATCH 64

uint64_t gr_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A fresh incarnation number: 32 random bits, never 0. Random rather than the
 * clock so that a node restarted within the same second (kill -9, systemd
 * restart) still gets a new one: a pid of the previous incarnation then never
 * matches (a 1 in 2^32 chance per restart). */
static uint32_t new_creation(void)
{
    uint32_t c = 0;

    while (c == 0) {
        if (getrandom(&c, sizeof(c), 0) != (ssize_t)sizeof(c)) {
            c = (uint32_t)(gr_now_ms() ^ ((uint64_t)getpid() << 16));
        }
    }
    return c;
}

static int make_reasons(girder_rt *rt)
{
    rt->r_normal = girder_msg_atom("normal");
    rt->r_kill = girder_msg_atom("kill");
    rt->r_killed = girder_msg_atom("killed");
    rt->r_noproc = girder_msg_atom("noproc");
    rt->r_shutdown = girder_msg_atom("shutdown");
    rt->r_noconnection = girder_msg_atom("noconnection");
    if (!rt->r_normal || !rt->r_kill || !rt->r_killed || !rt->r_noproc || !rt->r_shutdown ||
        !rt->r_noconnection) {
        return -ENOMEM;
    }
    return 0;
}

static bool node_name_ok(const char *n)
{
    const char *at = n ? strchr(n, '@') : NULL;
    size_t len = n ? strlen(n) : 0;

    return at != NULL && at != n && at[1] != '\0' && len <= GR_TERM_NODE_MAX &&
           strchr(at + 1, '@') == NULL;
}

int gr_rt_new(const gr_rt_config *cfg, girder_rt **ret_rt)
{
    girder_rt *rt;
    unsigned n = cfg->schedulers;
    int r = -ENOMEM;

    if (!node_name_ok(cfg->node_name) || n > GR_RT_SCHED_MAX) {
        return -EINVAL;
    }
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);

        n = c < 1 ? 1 : (c > GR_RT_SCHED_MAX ? GR_RT_SCHED_MAX : (unsigned)c);
    }
    if ((rt = calloc(1, sizeof(*rt))) == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->park_lock, NULL);
    pthread_mutex_init(&rt->stop_lock, NULL);
    pthread_cond_init(&rt->stop_cond, NULL);
    rt->node_name = strdup(cfg->node_name);
    rt->node_name_len = strlen(cfg->node_name);
    rt->nodes[0] = rt->node_name;
    atomic_init(&rt->nnodes, 1);
    rt->creation = cfg->creation ? cfg->creation : new_creation();
    rt->batch = cfg->batch ? cfg->batch : DEFAULT_BATCH;
    rt->nsched = n;
    rt->scheds = calloc(n, sizeof(*rt->scheds));
    if (rt->node_name == NULL || rt->scheds == NULL || make_reasons(rt) < 0 ||
        gr_registry_new(&rt->names) < 0) {
        goto fail;
    }
    for (unsigned i = 0; i < n; i++) {
        gr_sched *s = &rt->scheds[i];

        s->rt = rt;
        s->idx = i;
        s->wake_fd = -1;
        gr_inbox_init(&s->inbox);
        atomic_init(&s->next_serial, 1);
        gr_ptab_init(&s->ptab);
        if ((s->base = event_base_new()) == NULL) {
            goto fail;
        }
    }
    if ((r = girder_behaviour_register(rt, &girder_supervisor)) < 0) {
        goto fail;
    }
    *ret_rt = rt;
    return 0;
fail:
    gr_rt_free(rt);
    return r;
}

int gr_rt_start(girder_rt *rt)
{
    for (unsigned i = 0; i < rt->nsched; i++) {
        int r = gr_sched_start(&rt->scheds[i]);

        if (r < 0) {
            gr_rt_stop(rt);
            return r;
        }
    }
    atomic_store(&rt->running, true);
    return 0;
}

static void push_stop(girder_rt *rt, bool final)
{
    for (unsigned i = 0; i < rt->nsched; i++) {
        gr_sched *s = &rt->scheds[i];
        gr_sig *sig;

        if (!s->started) {
            continue;
        }
        /* A stop signal must not be lost to ENOMEM: retry until it is made. */
        while ((sig = gr_sig_new(GR_SIG_STOP, (girder_pid){0, 0, 0}, (girder_pid){0, 0, 0})) ==
               NULL) {
            sched_yield();
        }
        sig->ptr = final ? (void *)rt : NULL;
        gr_sched_push(s, sig);
    }
}

static uint64_t live_count(girder_rt *rt)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < rt->nsched; i++) {
        n += atomic_load_explicit(&rt->scheds[i].nprocs, memory_order_relaxed);
    }
    return n;
}

void gr_rt_sched_emptied(girder_rt *rt)
{
    pthread_mutex_lock(&rt->stop_lock);
    pthread_cond_broadcast(&rt->stop_cond);
    pthread_mutex_unlock(&rt->stop_lock);
}

void gr_rt_stop(girder_rt *rt)
{
    unsigned rounds = 0;

    if (atomic_exchange(&rt->stopping, true)) {
        return;
    }
    /* Phase 1: kill every process; repeat while processes spawned during the
     * shutdown of others still appear (bounded: 5 rounds of up to 2 s). */
    do {
        struct timespec dl;

        push_stop(rt, false);
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 2;
        pthread_mutex_lock(&rt->stop_lock);
        while (live_count(rt) > 0 &&
               pthread_cond_timedwait(&rt->stop_cond, &rt->stop_lock, &dl) == 0) {
        }
        pthread_mutex_unlock(&rt->stop_lock);
    } while (live_count(rt) > 0 && ++rounds < 5);
    if (live_count(rt) > 0) {
        gr_warn("rt", "%llu processes still alive at shutdown", (unsigned long long)live_count(rt));
    }
    /* Phase 2: end the loops. */
    push_stop(rt, true);
    for (unsigned i = 0; i < rt->nsched; i++) {
        if (rt->scheds[i].started) {
            pthread_join(rt->scheds[i].thread, NULL);
            rt->scheds[i].started = false;
        }
    }
    atomic_store(&rt->running, false);
}

static void free_proc_cb(void *vp, void *arg)
{
    gr_proc *p = vp;

    (void)arg;
    gr_proc_free(p);
}

/* Free a signal still queued when the runtime is freed (no thread runs). */
static void discard_sig(gr_sig *s)
{
    if (s->type == GR_SIG_SPAWN) {
        gr_proc *p = s->ptr;

        if (p->inited && p->beh->terminate) {
            p->beh->terminate(gr_ctx_of(p), p->state, p->sched->rt->r_shutdown);
        }
        gr_proc_free(p);
    } else if (s->type == GR_SIG_RUN) {
        gr_run *run = s->ptr;

        pthread_mutex_lock(&run->lock);
        run->result = GR_ESTOPPED;
        run->done = true;
        pthread_cond_signal(&run->cond);
        pthread_mutex_unlock(&run->lock);
    } else if (s->type == GR_SIG_DEAD) {
        gr_sig_free(s->ptr);
    }
    gr_sig_free(s);
}

girder_rt *gr_rt_free(girder_rt *rt)
{
    if (rt == NULL) {
        return NULL;
    }
    if (atomic_load(&rt->running)) {
        gr_rt_stop(rt);
    }
    for (unsigned i = 0; rt->scheds && i < rt->nsched; i++) {
        gr_sched *s = &rt->scheds[i];
        gr_sig *sig = gr_inbox_take(&s->inbox);

        while (sig) {
            gr_sig *next = sig->next;

            discard_sig(sig);
            sig = next;
        }
        while ((sig = s->localq_head) != NULL) {
            s->localq_head = sig->next;
            discard_sig(sig);
        }
        while (s->reap) {
            gr_proc *p = s->reap;

            s->reap = p->run_next;
            gr_proc_free(p);
        }
        gr_ptab_each(&s->ptab, free_proc_cb, NULL);
        gr_ptab_destroy(&s->ptab);
        if (s->wake_ev) {
            event_free(s->wake_ev);
        }
        if (s->rbusy_ev) {
            event_free(s->rbusy_ev);
        }
        if (s->wake_fd >= 0) {
            close(s->wake_fd);
        }
        if (s->base) {
            event_base_free(s->base);
        }
    }
    free(rt->scheds);
    while (rt->behaviours) {
        gr_behav_entry *e = rt->behaviours;

        rt->behaviours = e->next;
        free(e);
    }
    for (unsigned i = 1; i < atomic_load(&rt->nnodes); i++) {
        free((char *)rt->nodes[i]);
    }
    gr_registry_free(rt->names);
    girder_msg_unref(rt->r_normal);
    girder_msg_unref(rt->r_kill);
    girder_msg_unref(rt->r_killed);
    girder_msg_unref(rt->r_noproc);
    girder_msg_unref(rt->r_shutdown);
    girder_msg_unref(rt->r_noconnection);
    pthread_mutex_destroy(&rt->lock);
    free(rt->parked);
    free(rt->rtold);
    pthread_mutex_destroy(&rt->park_lock);
    pthread_cond_destroy(&rt->stop_cond);
    pthread_mutex_destroy(&rt->stop_lock);
    free(rt->node_name);
    free(rt);
    return NULL;
}

unsigned gr_rt_schedulers(const girder_rt *rt)
{
    return rt->nsched;
}

const char *gr_rt_node_name(const girder_rt *rt)
{
    return rt->node_name;
}

uint32_t gr_rt_creation(const girder_rt *rt)
{
    return rt->creation;
}

struct event_base *gr_rt_sched_base(girder_rt *rt, unsigned i)
{
    return i < rt->nsched ? rt->scheds[i].base : NULL;
}

uint64_t gr_rt_process_count(girder_rt *rt)
{
    return live_count(rt);
}

uint64_t gr_rt_wakeups(girder_rt *rt)
{
    return atomic_load_explicit(&rt->wakeups, memory_order_relaxed);
}

uint64_t gr_rt_messages_handled(girder_rt *rt)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < rt->nsched; i++) {
        n += atomic_load_explicit(&rt->scheds[i].handled, memory_order_relaxed);
    }
    return n;
}

void gr_rt_sched_time_of(uint64_t start_ns, uint64_t idle_ns, uint64_t sleep_ns, uint64_t now_ns,
                         uint64_t *ret_busy_ns, uint64_t *ret_wall_ns)
{
    uint64_t wall = start_ns != 0 && now_ns > start_ns ? now_ns - start_ns : 0, idle = idle_ns;

    if (sleep_ns != 0 && now_ns > sleep_ns) {
        idle += now_ns - sleep_ns; /* the sleep in progress */
    }
    *ret_wall_ns = wall;
    *ret_busy_ns = wall > idle ? wall - idle : 0;
}

void gr_rt_sched_time(girder_rt *rt, unsigned i, uint64_t *ret_busy_ns, uint64_t *ret_wall_ns)
{
    uint64_t start, idle = 0, s1 = 0, s2;

    *ret_busy_ns = *ret_wall_ns = 0;
    if (i >= rt->nsched ||
        (start = atomic_load_explicit(&rt->scheds[i].start_ns, memory_order_acquire)) == 0) {
        return;
    }
    /* a sleep that begins or ends between the two reads of sleep_ns would be
     * missed or counted twice: read again (bounded; a miss is one sleep) */
    for (int tries = 0; tries < 4; tries++) {
        s1 = atomic_load_explicit(&rt->scheds[i].sleep_ns, memory_order_acquire);
        idle = atomic_load_explicit(&rt->scheds[i].idle_ns, memory_order_acquire);
        s2 = atomic_load_explicit(&rt->scheds[i].sleep_ns, memory_order_acquire);
        if (s1 == s2) {
            break;
        }
    }
    gr_rt_sched_time_of(start, idle, s1, gr_clock_ns(), ret_busy_ns, ret_wall_ns);
}

/* ---- node-name table -------------------------------------------------------------------- */

const char *gr_rt_node_at(girder_rt *rt, uint32_t i, size_t *ret_len)
{
    const char *n;

    if (i >= atomic_load_explicit(&rt->nnodes, memory_order_acquire)) {
        return NULL;
    }
    n = rt->nodes[i];
    *ret_len = i == 0 ? rt->node_name_len : strlen(n);
    return n;
}

/* The index of an interned name, or -1 (lock-free: entries are published
 * with nnodes). */
static int node_find(girder_rt *rt, unsigned n, const char *name, size_t len)
{
    for (unsigned i = 1; i < n; i++) {
        if (strncmp(rt->nodes[i], name, len) == 0 && rt->nodes[i][len] == '\0') {
            return (int)i;
        }
    }
    return -1;
}

static int node_intern(girder_rt *rt, const char *name, size_t len, bool member, uint32_t *ret_idx)
{
    unsigned n = atomic_load_explicit(&rt->nnodes, memory_order_acquire);
    char *copy;
    int r = 0, i;

    if (len == rt->node_name_len && memcmp(name, rt->node_name, len) == 0) {
        *ret_idx = 0;
        return 0;
    }
    if ((i = node_find(rt, n, name, len)) >= 0 &&
        (!member || atomic_load_explicit(&rt->node_member[i], memory_order_acquire))) {
        *ret_idx = (uint32_t)i;
        return 0;
    }
    if (len == 0 || len > GR_TERM_NODE_MAX || memchr(name, '\0', len) != NULL) {
        return GR_EBADNODE;
    }
    pthread_mutex_lock(&rt->lock);
    n = atomic_load_explicit(&rt->nnodes, memory_order_relaxed);
    if ((i = node_find(rt, n, name, len)) >= 0) { /* appended meanwhile, or a stranger */
        if (member && !atomic_load_explicit(&rt->node_member[i], memory_order_relaxed)) {
            atomic_store_explicit(&rt->node_member[i], true, memory_order_release);
            rt->nstrangers--; /* a member's now: its stranger slot is free again */
        }
        *ret_idx = (uint32_t)i;
        goto out;
    }
    if (n == GR_NODES_MAX || (!member && rt->nstrangers >= GR_NODES_STRANGERS)) {
        r = -ENOSPC;
        goto out;
    }
    if ((copy = strndup(name, len)) == NULL) {
        r = -ENOMEM;
        goto out;
    }
    rt->nodes[n] = copy;
    atomic_store_explicit(&rt->node_member[n], member, memory_order_relaxed);
    rt->nstrangers += !member;
    atomic_store_explicit(&rt->nnodes, n + 1, memory_order_release);
    *ret_idx = n;
out:
    pthread_mutex_unlock(&rt->lock);
    return r;
}

int gr_rt_node_intern(girder_rt *rt, const char *name, size_t len, uint32_t *ret_idx)
{
    return node_intern(rt, name, len, false, ret_idx);
}

int gr_rt_node_intern_member(girder_rt *rt, const char *name, size_t len, uint32_t *ret_idx)
{
    return node_intern(rt, name, len, true, ret_idx);
}

/* ---- behaviours ------------------------------------------------------------------------- */

int girder_behaviour_register(girder_rt *rt, const girder_behaviour *b)
{
    gr_behav_entry *e;
    int r = 0;

    if (b == NULL || b->name == NULL || b->name[0] == '\0') {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&rt->lock);
    for (e = rt->behaviours; e; e = e->next) {
        if (strcmp(e->b->name, b->name) == 0) {
            r = -EEXIST;
            goto out;
        }
    }
    if ((e = malloc(sizeof(*e))) == NULL) {
        r = -ENOMEM;
        goto out;
    }
    e->b = b;
    e->next = rt->behaviours;
    rt->behaviours = e;
out:
    pthread_mutex_unlock(&rt->lock);
    return r;
}

const girder_behaviour *gr_rt_ctx_behaviour(girder_ctx *ctx)
{
    return gr_proc_of(ctx)->beh;
}

int gr_rt_behaviour_unregister(girder_rt *rt, const girder_behaviour *b)
{
    int r = -ENOENT;

    pthread_mutex_lock(&rt->lock);
    for (gr_behav_entry **pe = &rt->behaviours; *pe; pe = &(*pe)->next) {
        if ((*pe)->b == b) {
            gr_behav_entry *e = *pe;

            *pe = e->next;
            free(e);
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return r;
}

const girder_behaviour *girder_behaviour_find(girder_rt *rt, const char *name)
{
    const girder_behaviour *b = NULL;

    if (name == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&rt->lock);
    for (gr_behav_entry *e = rt->behaviours; e; e = e->next) {
        if (strcmp(e->b->name, name) == 0) {
            b = e->b;
            break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return b;
}

/* ---- routing ----------------------------------------------------------------------------- */

void gr_route(girder_rt *rt, gr_sched *cur, gr_sig *s)
{
    gr_route_held(rt, cur, s, NULL);
}

void gr_route_held(girder_rt *rt, gr_sched *cur, gr_sig *s, gr_rt_wakes *held)
{
    unsigned idx = (unsigned)(s->to.id & 0xff);
    gr_sched *t;

    if (s->to.node != 0 || s->to.creation != rt->creation || idx >= rt->nsched || s->to.id == 0) {
        /* The one branch local signals pay for: another node's pid goes to the
         * distribution hook (remote.c); stale incarnations and malformed pids
         * of this node are dead. */
        if (s->to.node != 0) {
            gr_remote_out(rt, cur, s);
        } else {
            gr_proc_dead_signal(rt, cur, s);
        }
        return;
    }
    t = &rt->scheds[idx];
    if (t == cur) {
        gr_sched_local(cur, s);
    } else {
        gr_sched_push_held(t, s, held);
    }
}

/* ---- non-scheduler threads ---------------------------------------------------------------- */

int gr_rt_spawn(girder_rt *rt, const girder_behaviour *b, const girder_msg *arg,
                girder_pid *ret_pid)
{
    gr_sched *t;
    gr_proc *p;
    gr_sig *sig;

    if (b == NULL || b->handle == NULL) {
        return GR_EBADBEHAVIOUR;
    }
    if (atomic_load(&rt->stopping)) {
        return GR_ESTOPPED;
    }
    t = gr_rt_next_sched(rt, &rt->ext_spread);
    if ((p = gr_proc_new(t, b, arg, gr_sched_alloc_id(t))) == NULL) {
        return -ENOMEM;
    }
    if ((sig = gr_sig_new(GR_SIG_SPAWN, (girder_pid){0, 0, 0}, p->pid)) == NULL) {
        gr_proc_free(p);
        return -ENOMEM;
    }
    sig->ptr = p;
    *ret_pid = p->pid;
    gr_sched_push(t, sig);
    return 0;
}

static int ext_signal(girder_rt *rt, gr_sig_type type, girder_pid to, const girder_msg *msg,
                      bool take)
{
    gr_sig *s = gr_sig_new(type, (girder_pid){0, 0, 0}, to);

    if (s == NULL) {
        return -ENOMEM;
    }
    s->msg = msg == NULL ? NULL : take ? (girder_msg *)msg : girder_msg_ref((girder_msg *)msg);
    gr_route(rt, NULL, s);
    return 0;
}

int gr_rt_send(girder_rt *rt, girder_pid to, girder_msg *msg)
{
    if (msg == NULL) {
        return GR_EBADARG;
    }
    return ext_signal(rt, GR_SIG_MSG, to, msg, true);
}

int gr_rt_exit(girder_rt *rt, girder_pid to, const girder_msg *reason)
{
    return ext_signal(rt, GR_SIG_EXIT, to, reason, false);
}

int gr_rt_send_name_node(girder_rt *rt, const char *name, const char *node, girder_msg *msg)
{
    size_t len = name ? strlen(name) : 0;
    uint32_t idx;
    girder_pid to;
    int r;

    if (msg == NULL || len == 0 || len > 255 || node == NULL) {
        return GR_EBADARG;
    }
    if ((r = gr_nodename_check(node, strlen(node))) < 0 ||
        (r = gr_rt_node_intern(rt, node, strlen(node), &idx)) < 0) {
        return r;
    }
    if (idx == 0) {
        if ((r = gr_registry_get(rt->names, name, &to)) < 0) {
            return r;
        }
        return gr_rt_send(rt, to, msg);
    }
    gr_remote_send_name(rt, (girder_pid){0, 0, 0}, idx, name, msg);
    return 0;
}

int gr_rt_whereis(girder_rt *rt, const char *name, girder_pid *ret_pid)
{
    if (name == NULL || name[0] == '\0') {
        return GR_EBADARG;
    }
    return gr_registry_get(rt->names, name, ret_pid);
}

int gr_rt_run_in(girder_rt *rt, girder_pid pid, int (*fn)(girder_ctx *ctx, void *arg), void *arg)
{
    gr_run run = {.fn = fn, .arg = arg, .result = 0, .done = false};
    gr_sig *s;
    int r;

    if (atomic_load(&rt->stopping) || !atomic_load(&rt->running)) {
        return GR_ESTOPPED;
    }
    if ((s = gr_sig_new(GR_SIG_RUN, (girder_pid){0, 0, 0}, pid)) == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.cond, NULL);
    s->ptr = &run;
    gr_route(rt, NULL, s);
    pthread_mutex_lock(&run.lock);
    while (!run.done) {
        pthread_cond_wait(&run.cond, &run.lock);
    }
    r = run.result;
    pthread_mutex_unlock(&run.lock);
    pthread_cond_destroy(&run.cond);
    pthread_mutex_destroy(&run.lock);
    return r;
}

int gr_pid_format(girder_rt *rt, girder_pid pid, char *buf, size_t len)
{
    size_t nlen;
    const char *node = gr_rt_node_at(rt, pid.node, &nlen);

    if (node == NULL) {
        return snprintf(buf, len, "<?.%u.%llu.%u>", pid.creation, (unsigned long long)(pid.id >> 8),
                        (unsigned)(pid.id & 0xff));
    }
    return snprintf(buf, len, "<%.*s.%u.%llu.%u>", (int)nlen, node, pid.creation,
                    (unsigned long long)(pid.id >> 8), (unsigned)(pid.id & 0xff));
}
