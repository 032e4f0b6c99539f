/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sched.c - a scheduler thread: its run queue, its signal queues, its event loop.
 *
 * A scheduler owns a libevent base, a pid table, a run queue of processes with
 * work, a local signal queue (signals this thread sends to its own processes) and
 * a lock-free inbox (signals from every other thread). Processes never migrate.
 *
 * Design notes
 * - Delivery is never recursive. A process that sends, links or exits only
 *   appends to the local queue (or another scheduler's inbox); the loop delivers
 *   between process turns. A chain of 1,000,000 linked processes dying therefore
 *   uses a queue, not the C stack, and a process is never re-entered by a signal
 *   while its own callback runs.
 * - Fairness: a process handles at most rt->batch messages per turn, then goes to
 *   the tail of the run queue. After a bounded number of turns the loop polls the
 *   event base without blocking so timers and sockets are never starved.
 * - Utilisation (gr_rt_sched_time): the clock is read just before and after
 *   a blocking event loop call, never per message or per turn; the time in
 *   between is idle, everything else is busy.
 * - Sleep/wake: before blocking in the event loop the thread publishes
 *   sleeping = 1 and re-checks the inbox (both seq_cst); a producer pushes, then
 *   reads `sleeping` and, if it wins the exchange back to 0, writes the eventfd
 *   (watched edge-triggered and never read: on_wake).
 *   So a busy scheduler costs producers no syscall, and a push is never missed.
 * - Spawn before use. gr_rt_spawn, gr_probe_new and a spawn from a process on
 *   another scheduler push GR_SIG_SPAWN to this inbox before they return the
 *   pid, so any signal sent after the pid is known finds the spawn ahead of it:
 *   in the same inbox, or - from a process of this scheduler, whose signals go
 *   to the local queue - still in the inbox when the local queue is delivered.
 *   A local signal whose target is missing therefore takes the inbox first,
 *   and only then is answered as dead (noproc, dropped message). Without it a
 *   process here that read a fresh pid from shared memory (pubsub's keeper
 *   walking its owners) got DOWN "noproc" for a live process. An inbox signal
 *   never needs this: the spawn was pushed before it.
 * - Shutdown is two-phase (see rt.c): GR_SIG_STOP with ptr == NULL kills every
 *   local process with reason "shutdown"; with ptr != NULL the loop ends.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/slice.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TURNS_PER_POLL 128 /* process turns between non-blocking event polls */

void gr_sched_ready(gr_sched *s, gr_proc *p)
{
    if (p->queued || p->status == GR_PROC_DEAD || p->suspended) {
        return; /* a suspended process runs again at its GR_SIG_RESUME */
    }
    p->queued = true;
    if (p->status != GR_PROC_RUNNING) {
        p->status = GR_PROC_RUNNABLE;
    }
    p->run_next = NULL;
    if (s->runq_tail) {
        s->runq_tail->run_next = p;
    } else {
        s->runq_head = p;
    }
    s->runq_tail = p;
}

static gr_proc *runq_pop(gr_sched *s)
{
    gr_proc *p = s->runq_head;

    if (p) {
        s->runq_head = p->run_next;
        if (s->runq_head == NULL) {
            s->runq_tail = NULL;
        }
        p->run_next = NULL;
        p->queued = false;
    }
    return p;
}

void gr_sched_local(gr_sched *s, gr_sig *sig)
{
    sig->next = NULL;
    if (s->localq_tail) {
        s->localq_tail->next = sig;
    } else {
        s->localq_head = sig;
    }
    s->localq_tail = sig;
}

void gr_sched_wake(gr_sched *s)
{
    uint64_t one = 1;

    atomic_fetch_add_explicit(&s->rt->wakeups, 1, memory_order_relaxed);
    if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        gr_error("sched", "wake of scheduler %u failed: %s", s->idx, strerror(errno));
    }
}

void gr_sched_push_held(gr_sched *s, gr_sig *sig, gr_rt_wakes *held)
{
    gr_inbox_push(&s->inbox, sig);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&s->sleeping, memory_order_relaxed) &&
        atomic_exchange(&s->sleeping, 0)) {
        /* we won the exchange: the wake-up is ours to make, now or at the
         * holder's flush (a push by anyone else meanwhile sees sleeping == 0
         * and relies on it) */
        if (held != NULL) {
            held->bits[s->idx / 64] |= 1ull << (s->idx % 64);
        } else {
            gr_sched_wake(s);
        }
    }
}

void gr_sched_push(gr_sched *s, gr_sig *sig)
{
    gr_sched_push_held(s, sig, NULL);
}

girder_ref gr_sched_make_ref(gr_sched *s)
{
    return (girder_ref){0, s->rt->creation, (++s->next_ref << 8) | s->idx};
}

uint64_t gr_sched_alloc_id(gr_sched *s)
{
    uint64_t serial = atomic_fetch_add_explicit(&s->next_serial, 1, memory_order_relaxed);

    return (serial << 8) | s->idx;
}

/* Free p if it is dead and no queue still points at it. */
static void reap(gr_sched *s)
{
    while (s->reap) {
        gr_proc *p = s->reap;

        s->reap = p->run_next;
        gr_proc_free(p);
    }
}

static void kill_one(void *vp, void *arg)
{
    gr_proc **list = arg;
    gr_proc *p = vp;

    /* Collect first: gr_proc_exit removes from the table we iterate. */
    p->run_next = *list;
    *list = p;
}

/* Phase 1 of shutdown: every process exits with reason "shutdown". */
static void stop_all(gr_sched *s)
{
    gr_proc *list = NULL;

    gr_proc *q;

    s->stopping = true;
    /* The run queue links are reused for the collection: empty the run queue
     * first (freeing the dead that were waiting there) so nothing is linked
     * twice. */
    while ((q = runq_pop(s)) != NULL) {
        if (q->status == GR_PROC_DEAD) {
            gr_proc_free(q);
        }
    }
    gr_ptab_each(&s->ptab, kill_one, &list);
    while (list) {
        gr_proc *p = list;

        list = p->run_next;
        p->run_next = NULL;
        gr_proc_exit(p, s->rt->r_shutdown);
    }
    /* The last process may have died just before `stopping` was set (a probe
     * killed right before gr_rt_stop): nobody else would tell gr_rt_stop. */
    if (atomic_load_explicit(&s->nprocs, memory_order_relaxed) == 0) {
        gr_rt_sched_emptied(s->rt);
    }
}

static void take_inbox(gr_sched *s);

void gr_sched_deliver(gr_sched *s, gr_sig *sig)
{
    gr_proc *p;

    switch (sig->type) {
    case GR_SIG_STOP:
        if (sig->ptr == NULL) {
            stop_all(s);
        } else {
            event_base_loopbreak(s->base);
            s->quit = true;
        }
        gr_sig_free(sig);
        return;
    case GR_SIG_NODEDOWN:
        gr_remote_node_down_local(s, sig->to.node);
        gr_sig_free(sig);
        return;
    case GR_SIG_PLIST:
        gr_plist_answer(s, sig);
        return;
    case GR_SIG_DEAD: {
        gr_sig *inner = sig->ptr;

        sig->ptr = NULL;
        gr_sig_free(sig);
        gr_proc_dead_signal(s->rt, s, inner);
        return;
    }
    case GR_SIG_SPAWN:
        p = sig->ptr;
        sig->ptr = NULL;
        gr_sig_free(sig);
        gr_proc_insert(s, p);
        if (s->stopping) {
            gr_proc_exit(p, s->rt->r_shutdown);
        }
        return;
    case GR_SIG_SPAWNREQ:
        gr_spawn_serve(s, sig);
        return;
    default:
        break;
    }
    p = gr_ptab_get(&s->ptab, sig->to.id);
    if (p == NULL && !s->taking && !gr_inbox_empty(&s->inbox)) {
        /* Not here yet, or dead? A pid spawned by another thread is handed
         * out once its GR_SIG_SPAWN is in this inbox; a process here that
         * learned it through memory may signal it before the inbox is taken.
         * Deliver the inbox first (see "Spawn before use"). */
        take_inbox(s);
        p = gr_ptab_get(&s->ptab, sig->to.id);
    }
    if (p == NULL || p->status == GR_PROC_DEAD) {
        gr_proc_dead_signal(s->rt, s, sig);
        return;
    }
    if (sig->type == GR_SIG_MSG) {
        if (sig->from.node != 0 &&
            atomic_load_explicit(&s->rt->nbusy_ids, memory_order_relaxed) != 0 &&
            gr_rt_proc_is_busy(s->rt, p->pid)) {
            gr_remote_tell_busy(s->rt, p->pid, sig->from); /* remote.c, "Busy processes..." */
        }
        gr_proc_mbox_append(s, p, sig);
        return;
    }
    gr_proc_signal(p, sig);
}

static void drain_local(gr_sched *s)
{
    while (s->localq_head) {
        gr_sig *sig = s->localq_head;

        s->localq_head = sig->next;
        if (s->localq_head == NULL) {
            s->localq_tail = NULL;
        }
        gr_sched_deliver(s, sig);
    }
}

/* Deliver what the inbox holds now (not the local queue). Never nested: a
 * signal taken here whose target is missing is answered as dead at once. */
static void take_inbox(gr_sched *s)
{
    gr_sig *sig = gr_inbox_take(&s->inbox);

    s->taking = true;
    while (sig) {
        gr_sig *next = sig->next;

        gr_sched_deliver(s, sig);
        sig = next;
    }
    s->taking = false;
}

static void drain_inbox(gr_sched *s)
{
    take_inbox(s);
    drain_local(s);
}

/* The wake eventfd is watched edge-triggered (gr_sched_start) and never read:
 * every producer write is an edge that ends the sleep, so a wake-up costs one
 * syscall less (remote ping-pong: 2-3 us of ~40 per round trip). The counter
 * cannot fill up: producers write at most once per sleep, and 2^64 - 2 sleeps
 * outlast any uptime. The loop drains the inbox itself after the poll. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void *sched_main(void *arg)
{
    gr_sched *s = arg;
    unsigned turns = 0;
    uint64_t idle = 0, sleep_start; /* utilisation: gr_rt_sched_time */

    (void)gr_thread_slice_set(GR_THREAD_SLICE_NS); /* see util/slice.h */
    atomic_store_explicit(&s->start_ns, gr_clock_ns(), memory_order_release);
    while (!s->quit) {
        drain_inbox(s);
        while (s->runq_head && turns < TURNS_PER_POLL) {
            gr_proc *p = runq_pop(s);

            if (p->status == GR_PROC_DEAD) {
                gr_proc_free(p);
                continue;
            }
            gr_proc_run(p);
            drain_local(s);
            reap(s);
            turns++;
        }
        if (s->quit) {
            break;
        }
        if (s->runq_head == NULL && s->localq_head == NULL) {
            atomic_store(&s->sleeping, 1);
            if (!gr_inbox_empty(&s->inbox)) {
                atomic_store(&s->sleeping, 0);
                continue;
            }
            sleep_start = gr_clock_ns();
            atomic_store_explicit(&s->sleep_ns, sleep_start, memory_order_release);
            event_base_loop(s->base, EVLOOP_ONCE);
            atomic_store(&s->sleeping, 0);
            idle += gr_clock_ns() - sleep_start;
            atomic_store_explicit(&s->idle_ns, idle, memory_order_relaxed);
            atomic_store_explicit(&s->sleep_ns, 0, memory_order_release);
            turns = 0;
        } else if (turns >= TURNS_PER_POLL) {
            event_base_loop(s->base, EVLOOP_NONBLOCK);
            turns = 0;
        }
        drain_local(s);
        reap(s);
    }
    return NULL;
}

int gr_sched_start(gr_sched *s)
{
    char name[16];
    int r;

    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        return -errno;
    }
    s->wake_ev = event_new(s->base, s->wake_fd, EV_READ | EV_PERSIST | EV_ET, on_wake, s);
    if (s->wake_ev == NULL || event_add(s->wake_ev, NULL) < 0) {
        return -ENOMEM;
    }
    r = pthread_create(&s->thread, NULL, sched_main, s);
    if (r != 0) {
        return -r;
    }
    snprintf(name, sizeof(name), "gr-sched%u", s->idx % 1000u);
    (void)pthread_setname_np(s->thread, name); /* ps -L, top -H, perf */
    s->started = true;
    return 0;
}
