/* SPDX-License-Identifier: Apache-2.0 */
/*
 * timer.c - process timers: girder_send_after and girder_cancel_timer
 * (include/girder/girder.h), and gr_timer_free_all for proc.c when a process
 * exits.
 *
 * A timer is a libevent timer on the owning process's scheduler base, kept in
 * the owner's timer list (gr_proc_ext.timers, doubly linked) so that cancel
 * and exit find it. When it fires, the message is routed like any other signal
 * from the owner (gr_route), so ordering and remote destinations need nothing
 * special here.
 *
 * A timer never fires early (as Erlang's): libevent may read a coarse
 * monotonic clock (CLOCK_MONOTONIC_COARSE, one tick of 1-10 ms, when the
 * base is not "precise"), which lags the real time by up to a tick, so a
 * timeout counted from it can end that much before `ms` have passed. Each
 * timer keeps its due time on the daemon's clock (util/clock.h) and, woken
 * before it, waits the rest instead of sending. (A precise base would cost a
 * timerfd_settime per scheduler sleep.)
 *
 * Owning thread: every function runs on the owner's scheduler thread (the
 * public ones inside one of its callbacks; on_timer from that scheduler's event
 * loop; gr_timer_free_all while the owner exits).
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>

static void timer_unlink(gr_timer *t)
{
    gr_proc_ext *x = t->owner->ext;

    if (t->prev) {
        t->prev->next = t->next;
    } else {
        x->timers = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    }
}

static void timer_destroy(gr_timer *t)
{
    event_free(t->ev);
    girder_msg_unref(t->msg);
    free(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    gr_timer *t = arg;
    gr_proc *owner = t->owner;
    uint64_t now = gr_clock_ns();
    gr_sig *s;

    (void)fd;
    (void)what;
    if (now < t->due_ns) { /* woken early by libevent's coarse clock: wait the rest */
        uint64_t us = (t->due_ns - now + 999u) / 1000u;
        struct timeval tv = {(time_t)(us / 1000000u), (suseconds_t)(us % 1000000u)};

        if (evtimer_add(t->ev, &tv) == 0) {
            return;
        }
        /* cannot re-arm: send now, a few ms early, rather than never */
    }
    timer_unlink(t);
    s = gr_sig_new(GR_SIG_MSG, owner->pid, t->to);
    if (s == NULL) {
        gr_error("timer", "timer message lost: out of memory");
    } else {
        s->msg = t->msg;
        t->msg = NULL;
        gr_route(owner->sched->rt, owner->sched, s);
    }
    timer_destroy(t);
}

int girder_send_after(girder_ctx *ctx, girder_pid to, uint64_t ms, girder_msg *msg,
                      girder_ref *ret_tref)
{
    gr_proc *p = gr_proc_of(ctx);
    gr_proc_ext *x = gr_proc_ext_get(p);
    gr_timer *t;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

    if (msg == NULL) {
        return GR_EBADARG;
    }
    if (x == NULL || (t = calloc(1, sizeof(*t))) == NULL) {
        return -ENOMEM;
    }
    t->due_ns = gr_clock_ns() + ms * 1000000u;
    t->ev = evtimer_new(p->sched->base, on_timer, t);
    if (t->ev == NULL || evtimer_add(t->ev, &tv) < 0) {
        if (t->ev) {
            event_free(t->ev);
        }
        free(t);
        return -ENOMEM;
    }
    t->owner = p;
    t->to = to;
    t->ref = gr_sched_make_ref(p->sched);
    t->msg = msg;
    t->next = x->timers;
    if (x->timers) {
        x->timers->prev = t;
    }
    x->timers = t;
    if (ret_tref) {
        *ret_tref = t->ref;
    }
    return 0;
}

int girder_cancel_timer(girder_ctx *ctx, girder_ref tref)
{
    gr_proc *p = gr_proc_of(ctx);

    for (gr_timer *t = p->ext ? p->ext->timers : NULL; t; t = t->next) {
        if (girder_ref_eq(t->ref, tref)) {
            timer_unlink(t);
            timer_destroy(t);
            return 0;
        }
    }
    return -ENOENT;
}

void gr_timer_free_all(gr_proc *p)
{
    gr_timer *t = p->ext ? p->ext->timers : NULL;

    if (p->ext) {
        p->ext->timers = NULL; /* the whole list goes: no unlinking one by one */
    }
    while (t) {
        gr_timer *next = t->next;

        timer_destroy(t);
        t = next;
    }
}
