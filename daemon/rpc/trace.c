/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace.c - proc.trace(Dest[, Opts]): `girder trace`. It spawns a tracer
 * process ("$tracer") for the process Dest of this node, which asks the
 * runtime to trace it (runtime/trace.c: events within a count, a time and a
 * rate, counted when dropped) and buffers the events until a client polls
 * them with proc.call(Tracer, "poll").
 *
 *   proc.trace(Dest[, {"max": N, "ms": T, "rate": R}])
 *       -> {"tracer": Pid, "target": Pid}; the trace is armed when this
 *          answers. Defaults: max 100 (1..100000), ms 10000 (1..3600000),
 *          rate 100 events a second (1..100000). "noproc", "noname".
 *   proc.call(Tracer, "poll")  -> {"events": [[Kind, Peer, Term, TimeMs], ...],
 *          "dropped": N (over the rate, so far), "lost": N (the tracer's
 *          buffer of TRACER_BUF was full), "done": Bool, "reason": nil |
 *          "count" | "time" | "stopped" | "exited"}; the buffer is emptied.
 *          Once done and drained the tracer ends.
 *   proc.call(Tracer, "stop")  -> the same; the trace is stopped (done
 *          follows at a later poll, with the final dropped count).
 *   proc.trace_read(Tracer, "poll" | "stop", Token) -> the same, for whoever
 *          started the trace (Token: proc.trace's answer) and only for a
 *          tracer: what an observer uses instead of proc.call, which could
 *          reach any process. "not_allowed" for another token, "badarg"
 *          for a process that is not a tracer, "noproc" for one gone.
 *
 * Opts "keep": true asks not to replace a trace of Dest by another tracer:
 * the tracer is then done at once with reason "busy" (gr_rt_trace_keep).
 * Observers may call proc.trace only with it (policy.c), so nothing an
 * observer does through tracing ends or reads anybody else's trace; the
 * tracer it starts ends by itself like any other.
 *
 * Design notes
 * - The tracer is not linked to anything: it monitors the target, keeps its
 *   own deadline (Ms + TRACER_SLACK_MS, for a target idle past its limit), and
 *   ends by itself when nobody polled for TRACER_IDLE_MS (a CLI that died).
 * - proc.trace answers only once the tracer has sent the trace request
 *   (["$tracer_ready", Tag]): anything the caller sends the target after
 *   the answer is behind that request in the target scheduler's queue.
 *
 * Owning thread: the worker functions run in the request's worker, the
 * tracer in its own process.
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/clock.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define TRACER_BUF 1000      /* events a tracer holds between polls */
#define TRACER_SLACK_MS 2000 /* past the trace's time: done anyway */
#define TRACER_IDLE_MS 15000 /* no poll for this long: the tracer ends */
#define TRACER_TICK_MS 500   /* how often it checks both */
#define TRACE_MAX_DEFAULT 100
#define TRACE_MS_DEFAULT 10000
#define TRACE_RATE_DEFAULT 100
#define TRACE_MAX_MAX 100000
#define TRACE_MS_MAX 3600000
#define TRACE_RATE_MAX 100000
#define READY_ATOM "$tracer_ready"
#define TICK_ATOM "$tracer_tick"

typedef struct tracer {
    girder_pid target;  /* traced process */
    girder_pid worker;  /* told when the trace is armed */
    uint64_t tag;       /* the worker's tag */
    uint64_t until_ms;  /* gr_clock_ms(): done by then */
    uint64_t polled_ms; /* last poll */
    girder_msg **buf;   /* "$trace" events, TRACER_BUF at most */
    size_t n;           /* events held */
    uint64_t lost;      /* events beyond the buffer */
    uint64_t dropped;   /* over the rate (the target's count) */
    uint64_t token;     /* proc.trace_read's proof of who started it */
    const char *reason; /* why it is done; NULL: running */
    bool stopping;      /* "stop" asked: waiting for the target's end */
} tracer;

static int arm_tick(girder_ctx *ctx)
{
    girder_msg *m = girder_msg_atom(TICK_ATOM);
    girder_ref tref;
    int r;

    if (m == NULL) {
        return -ENOMEM;
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), TRACER_TICK_MS, m, &tref)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* arg: [Target, Max, Ms, Rate, Worker, Tag, Keep, Token] */
static int tracer_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    tracer *t = calloc(1, sizeof(*t));
    msgpack_unpacked u;
    const msgpack_object *a;
    girder_ref mref;
    int r = GR_EBADARG;

    msgpack_unpacked_init(&u);
    if (t == NULL || (t->buf = calloc(TRACER_BUF, sizeof(*t->buf))) == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    if (arg == NULL || girder_msg_unpack(arg, &u) < 0 || u.data.type != MSGPACK_OBJECT_ARRAY ||
        u.data.via.array.size != 8) {
        goto fail;
    }
    a = u.data.via.array.ptr;
    if (girder_get_pid(ctx, &a[0], &t->target) < 0 || girder_get_pid(ctx, &a[4], &t->worker) < 0 ||
        a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[6].type != MSGPACK_OBJECT_BOOLEAN ||
        a[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        goto fail;
    }
    t->tag = a[5].via.u64;
    t->token = a[7].via.u64;
    t->until_ms = gr_clock_ms() + a[2].via.u64 + TRACER_SLACK_MS;
    t->polled_ms = gr_clock_ms();
    if ((r = girder_monitor(ctx, t->target, &mref)) < 0 ||
        (r = (a[6].via.boolean ? gr_rt_trace_keep : gr_rt_trace)(
             ctx, t->target, a[1].via.u64, a[2].via.u64, (uint32_t)a[3].via.u64)) < 0 ||
        (r = arm_tick(ctx)) < 0) {
        goto fail;
    }
    msgpack_unpacked_destroy(&u);
    *ret_state = t;
    /* tell the worker: the trace request is ahead of anything it causes */
    {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        girder_msg *m;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        gr_term_pack_cstr(&pk, READY_ATOM);
        msgpack_pack_uint64(&pk, t->tag);
        m = girder_msg_new(sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        if (m == NULL || girder_send(ctx, t->worker, m) < 0) {
            girder_msg_unref(m);
        }
    }
    return 0;
fail:
    msgpack_unpacked_destroy(&u);
    if (t != NULL) {
        free(t->buf);
        free(t);
    }
    return r;
}

static void tracer_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    tracer *t = state;

    (void)reason;
    if (t->reason == NULL) {
        (void)gr_rt_trace(ctx, t->target, 0, 0, 0); /* ended early: stop it */
    }
    for (size_t i = 0; i < t->n; i++) {
        girder_msg_unref(t->buf[i]);
    }
    free(t->buf);
    free(t);
}

/* The poll answer, emptying the buffer. NULL on ENOMEM. */
static girder_msg *poll_answer(tracer *t)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    gr_term_pack_cstr(&pk, "events");
    msgpack_pack_array(&pk, (uint32_t)t->n);
    for (size_t i = 0; i < t->n; i++) {
        msgpack_unpacked u;

        msgpack_unpacked_init(&u);
        if (girder_msg_unpack(t->buf[i], &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY &&
            u.data.via.array.size == 5) {
            msgpack_pack_array(&pk, 4);
            for (int k = 1; k < 5; k++) {
                msgpack_pack_object(&pk, u.data.via.array.ptr[k]);
            }
        } else {
            msgpack_pack_nil(&pk);
        }
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(t->buf[i]);
        t->buf[i] = NULL;
    }
    t->n = 0;
    gr_term_pack_kv_uint(&pk, "dropped", t->dropped);
    gr_term_pack_kv_uint(&pk, "lost", t->lost);
    gr_term_pack_cstr(&pk, "done");
    if (t->reason != NULL) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    gr_term_pack_cstr(&pk, "reason");
    if (t->reason != NULL) {
        gr_term_pack_cstr(&pk, t->reason);
    } else {
        msgpack_pack_nil(&pk);
    }
    m = gr_term_validate(sb.data, sb.size) == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static int tracer_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    tracer *t = state;
    msgpack_unpacked u;
    const msgpack_object *a;
    int ret = GIRDER_CONTINUE;
    uint32_t n;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) < 0) {
        goto out;
    }
    if (gr_term_is_str(&u.data, TICK_ATOM)) {
        uint64_t now = gr_clock_ms();

        if (t->reason == NULL && now >= t->until_ms) {
            t->reason = "time"; /* the target stayed idle past its limit */
            (void)gr_rt_trace(ctx, t->target, 0, 0, 0);
        }
        if (now - t->polled_ms >= TRACER_IDLE_MS) {
            ret = GIRDER_STOP; /* nobody polls any more */
        } else if (arm_tick(ctx) < 0) {
            ret = GIRDER_STOP;
        }
        goto out;
    }
    if (u.data.type != MSGPACK_OBJECT_ARRAY || (n = u.data.via.array.size) == 0) {
        goto out;
    }
    a = u.data.via.array.ptr;
    if (gr_term_is_str(&a[0], "$trace") && n == 5) {
        if (t->n < TRACER_BUF) {
            t->buf[t->n++] = girder_msg_ref((girder_msg *)msg);
        } else {
            t->lost++;
        }
    } else if (gr_term_is_str(&a[0], "$trace_end") && n == 3) {
        if (a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            t->dropped = a[2].via.u64;
        }
        if (t->reason == NULL || t->stopping) {
            t->reason = gr_term_is_str(&a[1], "count")  ? "count"
                        : gr_term_is_str(&a[1], "time") ? "time"
                        : gr_term_is_str(&a[1], "busy") ? "busy"
                                                        : "stopped";
        }
    } else if (gr_term_is_str(&a[0], "DOWN") && n == 5) {
        if (t->reason == NULL) {
            t->reason = "exited";
        }
    } else if (gr_term_is_str(&a[0], "$call") && n == 4) {
        girder_pid from;
        girder_ref ref;
        girder_msg *ans;
        const msgpack_object *op = &a[3];
        bool stop;

        if (girder_get_pid(ctx, &a[1], &from) < 0 || girder_get_ref(ctx, &a[2], &ref) < 0) {
            goto out;
        }
        if (op->type == MSGPACK_OBJECT_ARRAY) { /* [Op, Token]: proc.trace_read */
            if (op->via.array.size != 2 ||
                op->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                op->via.array.ptr[1].via.u64 != t->token) {
                if ((ans = girder_msg_atom("not_allowed")) != NULL) {
                    (void)girder_reply(ctx, from, ref, ans);
                    girder_msg_unref(ans);
                }
                goto out; /* nothing read, nothing stopped */
            }
            op = &op->via.array.ptr[0];
        }
        stop = gr_term_is_str(op, "stop");
        t->polled_ms = gr_clock_ms();
        if (stop && t->reason == NULL && !t->stopping) {
            t->stopping = true;
            (void)gr_rt_trace(ctx, t->target, 0, 0, 0); /* its end brings the count */
        }
        if ((ans = poll_answer(t)) != NULL) {
            (void)girder_reply(ctx, from, ref, ans);
            girder_msg_unref(ans);
        }
        if (t->reason != NULL) {
            ret = GIRDER_STOP; /* done and drained */
        }
    }
out:
    msgpack_unpacked_destroy(&u);
    return ret;
}

static const girder_behaviour tracer_behaviour = {
    .name = "$tracer",
    .init = tracer_init,
    .handle = tracer_handle,
    .terminate = tracer_terminate,
};

/* A limit of the options map: its value, the default, or GR_EBADARG. */
static int opt(const msgpack_object *opts, const char *k, uint64_t dflt, uint64_t max,
               uint64_t *ret)
{
    const msgpack_object *v = opts ? gr_term_map_get(opts, k) : NULL;

    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
        *ret = dflt;
        return 0;
    }
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0 || v->via.u64 > max) {
        return GR_EBADARG;
    }
    *ret = v->via.u64;
    return 0;
}

typedef struct trace_call {
    girder_pid tracer, target;
    uint64_t token; /* the tracer's, for proc.trace_read */
} trace_call;

int gr_rpc_proc_trace(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a, *opts = NULL;
    uint64_t max, ms, rate;
    const msgpack_object *keep;
    char name[GR_TERM_NODE_MAX + 1];
    trace_call *tc;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 1 ||
        args->via.array.size > 2) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (args->via.array.size == 2) {
        if (a[1].type != MSGPACK_OBJECT_MAP) {
            return GR_EBADARG;
        }
        opts = &a[1];
    }
    if (opt(opts, "max", TRACE_MAX_DEFAULT, TRACE_MAX_MAX, &max) < 0 ||
        opt(opts, "ms", TRACE_MS_DEFAULT, TRACE_MS_MAX, &ms) < 0 ||
        opt(opts, "rate", TRACE_RATE_DEFAULT, TRACE_RATE_MAX, &rate) < 0) {
        return GR_EBADARG;
    }
    keep = opts ? gr_term_map_get(opts, "keep") : NULL;
    if (keep && keep->type != MSGPACK_OBJECT_BOOLEAN && keep->type != MSGPACK_OBJECT_NIL) {
        return GR_EBADARG;
    }
    if (a[0].type == MSGPACK_OBJECT_STR) {
        if (gr_term_get_str(&a[0], name, sizeof(name)) < 0) {
            return GR_EBADARG;
        }
        if (girder_whereis(ctx, name, &pid) < 0) {
            return GR_ENONAME;
        }
    } else if (a[0].type != MSGPACK_OBJECT_EXT || girder_get_pid(ctx, &a[0], &pid) < 0) {
        return GR_EBADARG;
    } else if (pid.node != 0) {
        return GR_ENOCONN;
    }
    if (girder_pid_eq(pid, girder_self(ctx))) {
        return GR_EBADARG;
    }
    if (!(tc = calloc(1, sizeof(*tc)))) {
        return -ENOMEM;
    }
    c->priv = tc;
    tc->target = pid;
    do { /* 63 bits: a JSON integer for every client (jansson's are signed) */
        randombytes_buf(&tc->token, sizeof(tc->token));
        tc->token &= INT64_MAX;
    } while (tc->token == 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 8);
    girder_pack_pid(ctx, &pk, pid);
    msgpack_pack_uint64(&pk, max);
    msgpack_pack_uint64(&pk, ms);
    msgpack_pack_uint64(&pk, rate);
    girder_pack_pid(ctx, &pk, girder_self(ctx));
    msgpack_pack_uint64(&pk, gr_rpc_next_tag(c));
    if (keep && keep->type == MSGPACK_OBJECT_BOOLEAN && keep->via.boolean) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    msgpack_pack_uint64(&pk, tc->token);
    arg = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (arg == NULL) {
        return -ENOMEM;
    }
    r = girder_spawn(ctx, &tracer_behaviour, arg, 0, &tc->tracer, NULL);
    girder_msg_unref(arg);
    return r < 0 ? r : GR_RPC_WAIT;
}

/* ["$tracer_ready", Tag] from the tracer: answer. A tracer whose init failed
 * (a dead target: its monitor fires at once, but the trace request too)
 * still sends it; a target already gone shows at the first poll. */
int gr_rpc_proc_trace_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    trace_call *tc = c->priv;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 2 ||
        !gr_term_is_str(&msg->via.array.ptr[0], READY_ATOM) ||
        msg->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        msg->via.array.ptr[1].via.u64 != c->tag) {
        return GR_RPC_WAIT;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    gr_term_pack_cstr(&pk, "tracer");
    girder_pack_pid(ctx, &pk, tc->tracer);
    gr_term_pack_cstr(&pk, "target");
    girder_pack_pid(ctx, &pk, tc->target);
    gr_term_pack_kv_uint(&pk, "token", tc->token);
    r = gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : GR_RPC_DONE;
}

/* ---- proc.trace_read --------------------------------------------------------------------- */

typedef struct trace_read {
    girder_pid tracer; /* the process asked about */
    girder_ref ref;    /* the info request, then the call */
    bool calling;      /* the info said "a tracer": the call is out */
    bool stop;         /* "stop" rather than "poll" */
    uint64_t token;    /* proc.trace's token */
} trace_read;

/* Is msg [Tag, Ref, ...] with our ref? */
static bool tagged(girder_ctx *ctx, const msgpack_object *msg, const char *tag, girder_ref ref)
{
    girder_ref got;

    return msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size >= 3 &&
           gr_term_is_str(&msg->via.array.ptr[0], tag) &&
           girder_get_ref(ctx, &msg->via.array.ptr[1], &got) == 0 && girder_ref_eq(got, ref);
}

int gr_rpc_proc_trace_read(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a;
    trace_read *tr;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 3) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if ((!gr_term_is_str(&a[1], "poll") && !gr_term_is_str(&a[1], "stop")) ||
        a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return GR_EBADARG;
    }
    if (!(tr = calloc(1, sizeof(*tr)))) {
        return -ENOMEM;
    }
    c->priv = tr;
    if (a[0].type != MSGPACK_OBJECT_EXT || girder_get_pid(ctx, &a[0], &tr->tracer) < 0) {
        return GR_EBADARG;
    }
    if (tr->tracer.node != 0) {
        return GR_ENOCONN; /* a tracer of this node only: route to its node */
    }
    tr->stop = gr_term_is_str(&a[1], "stop");
    tr->token = a[2].via.u64;
    /* first make sure it is a tracer: a request reaches nothing else */
    if ((r = girder_info_request(ctx, tr->tracer, &tr->ref)) < 0) {
        return r;
    }
    return GR_RPC_WAIT;
}

/* ["$info", Ref, Map | nil], then ["$reply", Ref, Answer] or its "DOWN". */
int gr_rpc_proc_trace_read_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    trace_read *tr = c->priv;

    if (!tr->calling && tagged(ctx, msg, "$info", tr->ref) && msg->via.array.size == 3) {
        const msgpack_object *info = &msg->via.array.ptr[2], *beh;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        girder_msg *req;
        int r;

        if (info->type != MSGPACK_OBJECT_MAP) {
            return GR_ENOPROC;
        }
        if (!(beh = gr_term_map_get(info, "behaviour")) || !gr_term_is_str(beh, "$tracer")) {
            return GR_EBADARG; /* not a tracer: nothing is sent to it */
        }
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        gr_term_pack_cstr(&pk, tr->stop ? "stop" : "poll");
        msgpack_pack_uint64(&pk, tr->token);
        req = girder_msg_new(sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        if (req == NULL) {
            return -ENOMEM;
        }
        r = girder_call(ctx, tr->tracer, req, true, &tr->ref);
        girder_msg_unref(req);
        if (r < 0) {
            return r;
        }
        tr->calling = true;
        return GR_RPC_WAIT;
    }
    if (tr->calling && tagged(ctx, msg, "$reply", tr->ref) && msg->via.array.size == 3) {
        girder_demonitor(ctx, tr->ref);
        if (gr_term_is_str(&msg->via.array.ptr[2], "not_allowed")) {
            return GR_ENOTALLOWED;
        }
        return gr_rpc_answer_object(c, &msg->via.array.ptr[2]);
    }
    if (tr->calling && tagged(ctx, msg, "DOWN", tr->ref)) {
        return GR_ENOPROC;
    }
    return GR_RPC_WAIT;
}
