/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay.c - the `relay` behaviour (relay.h): one outgoing call at a time, to a
 * pid or a {Name, Node}, whose outcome answers the request that asked for it.
 *
 * Design notes
 * - The pending call is (caller's From and Ref, our out_ref, our timer). It
 *   ends exactly once, with whichever comes first of: the ["$reply", out_ref,
 *   _], the ["DOWN", out_ref, ...] of girder_call's monitor (pid Dest only),
 *   or the timer message ["$relay_timeout", out_ref]. The other two are then
 *   cancelled (demonitor, cancel timer) or, if already queued, ignored since
 *   nothing is pending under that ref any more.
 * - For {Name, Node} the ref is made with girder_make_ref and the "$call" is
 *   packed here, so the answer has the same shape as girder_call's.
 */
#include "testkit/relay.h"

#include "proto/err.h"
#include "proto/term.h"
#include "testkit/reply.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_TAG "$relay_timeout" /* ["$relay_timeout", OutRef] */

typedef struct relay_state {
    bool pending;       /* a call is out */
    bool monitored;     /* out_ref is also a monitor (pid Dest) */
    girder_pid from;    /* the request's caller ... */
    girder_ref ref;     /* ... and its ref: answered when the call ends */
    girder_ref out_ref; /* our call */
    girder_ref tref;    /* our timer */
} relay_state;

/* Answer {key: o} (o may be NULL: then {key: str}). */
static void answer(girder_ctx *ctx, girder_pid from, girder_ref ref, const char *key,
                   const msgpack_object *o, const char *str)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    gr_term_pack_cstr(&pk, key);
    if (o) {
        msgpack_pack_object(&pk, *o);
    } else {
        gr_term_pack_cstr(&pk, str);
    }
    gr_testkit_reply_sb(ctx, from, ref, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* End the pending call: answer {key: o | str}, drop the monitor and timer. */
static void finish(girder_ctx *ctx, relay_state *s, const char *key, const msgpack_object *o,
                   const char *str)
{
    s->pending = false;
    if (s->monitored) {
        (void)girder_demonitor(ctx, s->out_ref); /* fired already: nothing to undo */
    }
    (void)girder_cancel_timer(ctx, s->tref); /* -ENOENT once fired: the message is stale */
    answer(ctx, s->from, s->ref, key, o, str);
}

/* Send ["$call", Self, ref, req] to {name, node}. 0 or a negative code. */
static int call_name(girder_ctx *ctx, const char *name, const char *node, girder_ref ref,
                     const msgpack_object *req)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m = NULL;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    gr_term_pack_cstr(&pk, "$call");
    if ((r = girder_pack_pid(ctx, &pk, girder_self(ctx))) == 0 &&
        (r = girder_pack_ref(ctx, &pk, ref)) == 0) {
        msgpack_pack_object(&pk, *req);
        if (!(m = girder_msg_new(sb.data, sb.size))) {
            r = -ENOMEM;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    if (r == 0 && (r = girder_send_name_node(ctx, name, node, m)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* Arm the timer: ["$relay_timeout", out_ref] to self. 0 or a negative code. */
static int arm_timer(girder_ctx *ctx, relay_state *s, uint64_t ms)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m = NULL;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    gr_term_pack_cstr(&pk, TIMER_TAG);
    if ((r = girder_pack_ref(ctx, &pk, s->out_ref)) == 0 &&
        !(m = girder_msg_new(sb.data, sb.size))) {
        r = -ENOMEM;
    }
    msgpack_sbuffer_destroy(&sb);
    if (r == 0 && (r = girder_send_after(ctx, girder_self(ctx), ms, m, &s->tref)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* ["call", Dest, Request[, TimeoutMs]] */
static void req_call(girder_ctx *ctx, relay_state *s, girder_pid from, girder_ref ref,
                     const msgpack_object *req)
{
    const msgpack_object *a = req->via.array.ptr;
    char name[GR_TERM_NODE_MAX + 1], node[GR_TERM_NODE_MAX + 1];
    uint64_t ms = GR_RELAY_TIMEOUT_MS;
    girder_msg *m;
    girder_pid to;
    bool by_name = false;
    int r;

    if (s->pending) {
        answer(ctx, from, ref, "error", NULL, "busy");
        return;
    }
    if (req->via.array.size < 3 || req->via.array.size > 4) {
        answer(ctx, from, ref, "error", NULL, "badarg");
        return;
    }
    if (req->via.array.size == 4) {
        if (a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[3].via.u64 == 0 ||
            a[3].via.u64 > GR_RELAY_TIMEOUT_MAX_MS) {
            answer(ctx, from, ref, "error", NULL, "badarg");
            return;
        }
        ms = a[3].via.u64;
    }
    if (a[1].type == MSGPACK_OBJECT_ARRAY && a[1].via.array.size == 2 &&
        gr_term_get_str(&a[1].via.array.ptr[0], name, sizeof(name)) == 0 &&
        gr_term_get_str(&a[1].via.array.ptr[1], node, sizeof(node)) == 0) {
        by_name = true;
    } else if (girder_get_pid(ctx, &a[1], &to) < 0) {
        answer(ctx, from, ref, "error", NULL, "badarg");
        return;
    }
    if (by_name) {
        s->out_ref = girder_make_ref(ctx);
        r = call_name(ctx, name, node, s->out_ref, &a[2]);
    } else if (!(m = girder_msg_from_object(&a[2]))) {
        r = -ENOMEM;
    } else {
        r = girder_call(ctx, to, m, true, &s->out_ref);
        girder_msg_unref(m); /* borrowed by girder_call */
    }
    if (r < 0) {
        answer(ctx, from, ref, "error", NULL, gr_errid(r));
        return;
    }
    s->pending = true;
    s->monitored = !by_name;
    s->from = from;
    s->ref = ref;
    if ((r = arm_timer(ctx, s, ms)) < 0) {
        s->tref = (girder_ref){0};
        finish(ctx, s, "error", NULL, gr_errid(r));
    }
}

/* Is o the pending call's ref? */
static bool is_out_ref(girder_ctx *ctx, relay_state *s, const msgpack_object *o)
{
    girder_ref r;

    return s->pending && girder_get_ref(ctx, o, &r) == 0 && girder_ref_eq(r, s->out_ref);
}

static int relay_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    relay_state *s = calloc(1, sizeof(*s));

    (void)ctx;
    (void)arg;
    if (!s) {
        return -ENOMEM;
    }
    *ret_state = s;
    return 0;
}

static int relay_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    relay_state *s = state;
    msgpack_unpacked up;
    const msgpack_object *a;
    uint32_t n;
    girder_pid from;
    girder_ref ref;

    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(msg, &up) != 0 || up.data.type != MSGPACK_OBJECT_ARRAY ||
        up.data.via.array.size < 2) {
        msgpack_unpacked_destroy(&up);
        return GIRDER_CONTINUE;
    }
    a = up.data.via.array.ptr;
    n = up.data.via.array.size;
    if (n == 4 && gr_term_is_str(&a[0], "$call")) {
        if (girder_get_pid(ctx, &a[1], &from) == 0 && girder_get_ref(ctx, &a[2], &ref) == 0) {
            if (a[3].type == MSGPACK_OBJECT_ARRAY && a[3].via.array.size > 0 &&
                gr_term_is_str(&a[3].via.array.ptr[0], "call")) {
                req_call(ctx, s, from, ref, &a[3]);
            } else {
                answer(ctx, from, ref, "error", NULL, "badarg");
            }
        }
    } else if (n == 3 && gr_term_is_str(&a[0], "$reply") && is_out_ref(ctx, s, &a[1])) {
        finish(ctx, s, "reply", &a[2], NULL);
    } else if (n == 5 && gr_term_is_str(&a[0], "DOWN") && is_out_ref(ctx, s, &a[1])) {
        s->monitored = false; /* fired: nothing to demonitor */
        finish(ctx, s, "error", &a[4], NULL);
    } else if (n == 2 && gr_term_is_str(&a[0], TIMER_TAG) && is_out_ref(ctx, s, &a[1])) {
        finish(ctx, s, "error", NULL, "timeout");
    }
    msgpack_unpacked_destroy(&up);
    return GIRDER_CONTINUE;
}

static void relay_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    (void)ctx;
    (void)reason;
    free(state); /* a pending caller learns of the end through its call monitor */
}

static size_t relay_state_size(const void *state)
{
    (void)state;
    return sizeof(relay_state);
}

const girder_behaviour gr_relay_behaviour = {
    .name = GR_RELAY_NAME,
    .init = relay_init,
    .handle = relay_handle,
    .terminate = relay_terminate,
    .state_size = relay_state_size,
};
