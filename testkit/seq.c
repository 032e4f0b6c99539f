/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seq.c - the `seq` behaviour (seq.h): bursts of numbered messages
 * ["seq", I] to a pid or a {Name, Node}, and the order check of the numbered
 * messages it receives.
 *
 * Design notes
 * - A burst is sent GR_SEQ_BATCH messages per turn. After each batch the
 *   process sends itself CONT_ATOM and returns, so a burst of 100,000 messages
 *   does not hold the scheduler for one long turn (bounded work per turn) and
 *   the process still answers "check" meanwhile. The caller of "burst" is
 *   answered once the last message is handed to the runtime (a deferred
 *   reply: its From and Ref are kept until then).
 * - Each message is its own 14-byte buffer (the number differs), packed by
 *   hand: ["seq", uint64 big-endian].
 * - The checker keeps only the last number and the first gap: constant state,
 *   whatever the number of messages.
 */
#include "testkit/seq.h"

#include "proto/err.h"
#include "proto/term.h"
#include "testkit/reply.h"
#include "util/clock.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define CONT_ATOM "$seq_more" /* a burst's own "send the next batch" message */

typedef struct seq_state {
    gr_seq_check check;              /* what was received */
    bool bursting;                   /* a burst is running */
    girder_pid from;                 /* its caller, answered at the end */
    girder_ref ref;                  /* the caller's call ref */
    bool by_name;                    /* Dest is [Name, Node] (else a pid) */
    girder_pid to;                   /* Dest pid */
    char name[GR_TERM_NODE_MAX + 1]; /* Dest name */
    char node[GR_TERM_NODE_MAX + 1]; /* Dest node */
    uint64_t n, sent;                /* burst size, sent so far */
    uint64_t t0_ns;                  /* burst start */
} seq_state;

/* ---- the checker ------------------------------------------------------------------------------
 */

void gr_seq_check_init(gr_seq_check *c)
{
    memset(c, 0, sizeof(*c));
    c->in_order = true;
}

void gr_seq_check_note(gr_seq_check *c, uint64_t i)
{
    if (c->in_order && i != c->last + 1) {
        c->in_order = false;
        c->gap_expected = c->last + 1;
        c->gap_got = i;
    }
    c->received++;
    c->last = i;
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* ["seq", i], packed by hand. NULL on allocation failure. */
static girder_msg *seq_msg(uint64_t i)
{
    uint8_t buf[14];
    size_t len = 0;

    buf[len++] = 0x92; /* array of 2 */
    buf[len++] = 0xa3; /* str of 3 */
    memcpy(buf + len, "seq", 3);
    len += 3;
    buf[len++] = 0xcf; /* uint 64, big endian */
    for (int b = 7; b >= 0; b--) {
        buf[len++] = (uint8_t)(i >> (8 * b));
    }
    return girder_msg_new(buf, len);
}

/* ---- burst ------------------------------------------------------------------------------------
 */

/* Send one message of the burst. 0 or a negative code (nothing sent). */
static int burst_send_one(girder_ctx *ctx, seq_state *s)
{
    girder_msg *m = seq_msg(s->sent + 1);
    int r;

    if (!m) {
        return -ENOMEM;
    }
    r = s->by_name ? girder_send_name_node(ctx, s->name, s->node, m) : girder_send(ctx, s->to, m);
    if (r < 0) {
        girder_msg_unref(m);
        return r;
    }
    s->sent++;
    return 0;
}

/* End the burst: answer its caller with {"sent", "ms"} or the error r. */
static void burst_end(girder_ctx *ctx, seq_state *s, int r)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    s->bursting = false;
    if (r < 0) {
        gr_testkit_reply_error(ctx, s->from, s->ref, gr_errid(r));
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    gr_term_pack_cstr(&pk, "sent");
    msgpack_pack_uint64(&pk, s->sent);
    gr_term_pack_cstr(&pk, "ms");
    msgpack_pack_double(&pk, (double)(gr_clock_ns() - s->t0_ns) / 1e6);
    gr_testkit_reply_sb(ctx, s->from, s->ref, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* Send the next batch; then either end the burst or ask for another turn. */
static void burst_batch(girder_ctx *ctx, seq_state *s)
{
    girder_msg *cont;
    int r = 0;

    for (unsigned k = 0; k < GR_SEQ_BATCH && s->sent < s->n; k++) {
        if ((r = burst_send_one(ctx, s)) < 0) {
            burst_end(ctx, s, r);
            return;
        }
    }
    if (s->sent == s->n) {
        burst_end(ctx, s, 0);
        return;
    }
    if (!(cont = girder_msg_atom(CONT_ATOM))) {
        burst_end(ctx, s, -ENOMEM);
        return;
    }
    if ((r = girder_send(ctx, girder_self(ctx), cont)) < 0) {
        girder_msg_unref(cont);
        burst_end(ctx, s, r);
    }
}

/* ["burst", Dest, N] */
static void req_burst(girder_ctx *ctx, seq_state *s, girder_pid from, girder_ref ref,
                      const msgpack_object *req)
{
    const msgpack_object *a = req->via.array.ptr;
    const msgpack_object *dest = &a[1];

    if (s->bursting) {
        gr_testkit_reply_error(ctx, from, ref, "busy");
        return;
    }
    if (req->via.array.size != 3 || a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[2].via.u64 == 0 || a[2].via.u64 > GR_SEQ_BURST_MAX) {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
        return;
    }
    if (dest->type == MSGPACK_OBJECT_ARRAY && dest->via.array.size == 2 &&
        gr_term_get_str(&dest->via.array.ptr[0], s->name, sizeof(s->name)) == 0 &&
        gr_term_get_str(&dest->via.array.ptr[1], s->node, sizeof(s->node)) == 0) {
        s->by_name = true;
    } else if (girder_get_pid(ctx, dest, &s->to) == 0) {
        s->by_name = false;
    } else {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
        return;
    }
    s->bursting = true;
    s->from = from;
    s->ref = ref;
    s->n = a[2].via.u64;
    s->sent = 0;
    s->t0_ns = gr_clock_ns();
    burst_batch(ctx, s);
}

/* ---- check ------------------------------------------------------------------------------------
 */

static void req_check(girder_ctx *ctx, seq_state *s, girder_pid from, girder_ref ref)
{
    const gr_seq_check *c = &s->check;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    gr_term_pack_cstr(&pk, "received");
    msgpack_pack_uint64(&pk, c->received);
    gr_term_pack_cstr(&pk, "last");
    msgpack_pack_uint64(&pk, c->last);
    gr_term_pack_cstr(&pk, "in_order");
    if (c->in_order) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    gr_term_pack_cstr(&pk, "first_gap");
    if (c->in_order) {
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_map(&pk, 2);
        gr_term_pack_cstr(&pk, "expected");
        msgpack_pack_uint64(&pk, c->gap_expected);
        gr_term_pack_cstr(&pk, "got");
        msgpack_pack_uint64(&pk, c->gap_got);
    }
    gr_testkit_reply_sb(ctx, from, ref, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the behaviour ----------------------------------------------------------------------------
 */

static int seq_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    seq_state *s = calloc(1, sizeof(*s));

    (void)ctx;
    (void)arg;
    if (!s) {
        return -ENOMEM;
    }
    gr_seq_check_init(&s->check);
    *ret_state = s;
    return 0;
}

/* ["$call", From, Ref, Request] */
static void seq_call(girder_ctx *ctx, seq_state *s, const msgpack_object *a)
{
    const msgpack_object *req;
    girder_pid from;
    girder_ref ref;

    if (gr_testkit_call_open(ctx, a, &from, &ref, &req) < 0) {
        return; /* answered "badarg", or nobody to answer */
    }
    if (gr_term_is_str(&req->via.array.ptr[0], "burst")) {
        req_burst(ctx, s, from, ref, req);
    } else if (gr_term_is_str(&req->via.array.ptr[0], "check") && req->via.array.size == 1) {
        req_check(ctx, s, from, ref);
    } else if (gr_term_is_str(&req->via.array.ptr[0], "reset") && req->via.array.size == 1) {
        girder_msg *ok = girder_msg_atom("ok");

        gr_seq_check_init(&s->check);
        if (ok) {
            (void)girder_reply(ctx, from, ref, ok);
        }
        girder_msg_unref(ok);
    } else {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
    }
}

static int seq_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    seq_state *s = state;
    msgpack_unpacked up;
    const msgpack_object *o;

    if (girder_msg_is_atom(msg, CONT_ATOM)) {
        if (s->bursting) {
            burst_batch(ctx, s);
        }
        return GIRDER_CONTINUE;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY) {
        o = up.data.via.array.ptr;
        if (up.data.via.array.size == 2 && gr_term_is_str(&o[0], "seq") &&
            o[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            gr_seq_check_note(&s->check, o[1].via.u64);
        } else if (up.data.via.array.size == 4 && gr_term_is_str(&o[0], "$call")) {
            seq_call(ctx, s, o);
        }
    }
    msgpack_unpacked_destroy(&up);
    return GIRDER_CONTINUE;
}

static void seq_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    (void)ctx;
    (void)reason;
    free(state); /* a burst's caller learns of the end through its call monitor */
}

static size_t seq_state_size(const void *state)
{
    (void)state;
    return sizeof(seq_state);
}

const girder_behaviour gr_seq_behaviour = {
    .name = GR_SEQ_NAME,
    .init = seq_init,
    .handle = seq_handle,
    .terminate = seq_terminate,
    .state_size = seq_state_size,
};
