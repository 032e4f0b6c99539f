/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace.c - tracing one process (`girder trace`, rt.h gr_rt_trace): the
 * messages it receives and sends, as events sent to a tracer process, within
 * the limits the tracer set: at most Max events, for at most Ms ms, and at
 * most Rate events a second, those over the rate dropped and counted
 * (recon_trace's rules: a trace always ends by itself and cannot flood).
 *
 * Design notes
 * - The cost when nothing is traced is one bit test per message handled and
 *   per signal emitted (gr_proc.traced, a bit beside the other flags). The
 *   trace state lives in the process's ext and is touched only by its owning
 *   scheduler: GR_SIG_TRACE carries the tracer's request to it, and events
 *   are counted and limited where they happen, before anything is copied, so
 *   a traced process pays for the events that go out and nothing more.
 * - Events go to the tracer as ordinary messages with the traced process as
 *   sender, sent with gr_proc_send_sig (not through emit), so they are not
 *   traced themselves:
 *     ["$trace", Kind, Peer, Term, TimeMs]   Kind "in" (Peer: the sender),
 *                                            "out" (Peer: the destination),
 *                                            "call" (a received girder_call)
 *     ["$trace_end", Reason, Dropped]         "count", "time", "stopped",
 *                                            "replaced", or "busy" to a
 *                                            gr_rt_trace_keep asker while
 *                                            another tracer's trace runs
 *   The time limit is checked at each event: a process that stays idle past
 *   it ends its trace at its next event (the tracer has its own timer).
 *
 * Owning thread: everything here runs on the traced process's scheduler.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRACE_WINDOW_MS 1000 /* the rate is per this window */

struct gr_trace {
    girder_pid tracer;  /* where events go */
    uint64_t left;      /* events still allowed */
    uint64_t until_ms;  /* gr_clock_ms() deadline */
    uint32_t rate;      /* events per window at most */
    uint32_t in_window; /* events sent in the current window */
    uint64_t window_ms; /* its start */
    uint64_t dropped;   /* events over the rate */
};

static void send_to(gr_proc *p, girder_pid to, girder_msg *m)
{
    if (m != NULL) {
        gr_proc_send_sig(p->sched->rt, p->sched, GR_SIG_MSG, p->pid, to, (girder_ref){0, 0, 0}, m);
        girder_msg_unref(m);
    }
}

/* ["$trace_end", Reason, Dropped] to the tracer; the trace is over. */
static void trace_end(gr_proc *p, const char *reason)
{
    gr_trace *t = p->ext->trace;
    gr_pack pk;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 3);
    gr_term_pack_cstr(&pk.pk, "$trace_end");
    gr_term_pack_cstr(&pk.pk, reason);
    msgpack_pack_uint64(&pk.pk, t->dropped);
    send_to(p, t->tracer, gr_pack_finish(&pk));
    free(t);
    p->ext->trace = NULL;
    p->traced = false;
}

void gr_trace_free(gr_proc_ext *x)
{
    free(x->trace);
    x->trace = NULL;
}

/* Is m a girder_call request ["$call", From, Ref, Request]? */
static bool is_call(const girder_msg *m)
{
    const uint8_t *d = girder_msg_data(m);
    size_t n = girder_msg_size(m);

    /* fixarray(4), fixstr(5) "$call" */
    return n > 7 && d[0] == 0x94 && d[1] == 0xa5 && memcmp(d + 2, "$call", 5) == 0;
}

void gr_trace_event(gr_proc *p, gr_trace_kind kind, girder_pid peer, const girder_msg *m)
{
    gr_trace *t = p->ext != NULL ? p->ext->trace : NULL;
    uint64_t now = gr_clock_ms();
    struct timespec ts;
    gr_pack pk;

    if (t == NULL) {
        p->traced = false;
        return;
    }
    if (now >= t->until_ms) {
        trace_end(p, "time");
        return;
    }
    if (now - t->window_ms >= TRACE_WINDOW_MS) {
        t->window_ms = now;
        t->in_window = 0;
    }
    if (t->in_window >= t->rate) {
        t->dropped++;
        return;
    }
    t->in_window++;
    t->left--;
    if (kind == GR_TRACE_IN && is_call(m)) {
        kind = GR_TRACE_CALL;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 5);
    gr_term_pack_cstr(&pk.pk, "$trace");
    gr_term_pack_cstr(&pk.pk, kind == GR_TRACE_OUT ? "out" : kind == GR_TRACE_CALL ? "call" : "in");
    if (gr_pack_pid(p->sched->rt, &pk.pk, peer) < 0) {
        msgpack_pack_nil(&pk.pk);
    }
    if (m != NULL) {
        gr_pack_raw(&pk, m);
    } else {
        msgpack_pack_nil(&pk.pk);
    }
    msgpack_pack_uint64(&pk.pk, (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
    send_to(p, t->tracer, gr_pack_finish(&pk));
    if (t->left == 0) {
        trace_end(p, "count");
    }
}

void gr_trace_set(gr_proc *p, gr_sig *sig)
{
    msgpack_unpacked u;
    const msgpack_object *a;
    gr_proc_ext *x;
    gr_trace *t;

    msgpack_unpacked_init(&u);
    if (sig->msg == NULL || girder_msg_unpack(sig->msg, &u) < 0 ||
        u.data.type != MSGPACK_OBJECT_ARRAY ||
        (u.data.via.array.size != 3 && u.data.via.array.size != 4)) {
        goto out;
    }
    a = u.data.via.array.ptr;
    for (uint32_t i = 0; i < u.data.via.array.size; i++) {
        if (a[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            goto out;
        }
    }
    if (p->ext != NULL && p->ext->trace != NULL) {
        if (a[0].via.u64 == 0 && !girder_pid_eq(p->ext->trace->tracer, sig->from)) {
            goto out; /* only its own tracer stops a trace */
        }
        if (u.data.via.array.size == 4 && a[3].via.u64 != 0 && a[0].via.u64 != 0 &&
            !girder_pid_eq(p->ext->trace->tracer, sig->from)) {
            /* Keep: another tracer's trace stays; the asker hears "busy" */
            gr_pack bp;

            gr_pack_init(&bp);
            msgpack_pack_array(&bp.pk, 3);
            gr_term_pack_cstr(&bp.pk, "$trace_end");
            gr_term_pack_cstr(&bp.pk, "busy");
            msgpack_pack_uint64(&bp.pk, 0);
            send_to(p, sig->from, gr_pack_finish(&bp));
            goto out;
        }
        trace_end(p, a[0].via.u64 == 0 ? "stopped" : "replaced");
    }
    if (a[0].via.u64 == 0 || a[2].via.u64 == 0) {
        goto out;
    }
    if ((x = gr_proc_ext_get(p)) == NULL || (t = calloc(1, sizeof(*t))) == NULL) {
        gr_error("trace", "trace of a process lost: out of memory");
        goto out;
    }
    t->tracer = sig->from;
    t->left = a[0].via.u64;
    t->until_ms = gr_clock_ms() + a[1].via.u64;
    t->rate = a[2].via.u64 > UINT32_MAX ? UINT32_MAX : (uint32_t)a[2].via.u64;
    t->window_ms = gr_clock_ms();
    x->trace = t;
    p->traced = true;
out:
    msgpack_unpacked_destroy(&u);
}

static int trace_req(girder_ctx *ctx, girder_pid target, uint64_t max, uint64_t ms, uint32_t rate,
                     bool keep)
{
    gr_proc *p = gr_proc_of(ctx);
    gr_sig *s;
    gr_pack pk;

    if (target.node != 0) {
        return GR_ENOCONN; /* a process of this node only */
    }
    if (girder_pid_eq(target, p->pid)) {
        return GR_EBADARG; /* its own events would trace themselves */
    }
    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, keep ? 4 : 3);
    msgpack_pack_uint64(&pk.pk, max);
    msgpack_pack_uint64(&pk.pk, ms);
    msgpack_pack_uint32(&pk.pk, rate);
    if (keep) {
        msgpack_pack_uint32(&pk.pk, 1);
    }
    if ((s = gr_sig_new(GR_SIG_TRACE, p->pid, target)) == NULL) {
        msgpack_sbuffer_destroy(&pk.sb);
        return -ENOMEM;
    }
    if ((s->msg = gr_pack_finish(&pk)) == NULL) {
        gr_sig_free(s);
        return -ENOMEM;
    }
    gr_route(p->sched->rt, p->sched, s);
    return 0;
}

int gr_rt_trace(girder_ctx *ctx, girder_pid target, uint64_t max, uint64_t ms, uint32_t rate)
{
    return trace_req(ctx, target, max, ms, rate, false);
}

int gr_rt_trace_keep(girder_ctx *ctx, girder_pid target, uint64_t max, uint64_t ms, uint32_t rate)
{
    return trace_req(ctx, target, max, ms, rate, true);
}
