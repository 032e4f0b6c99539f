/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echo.c - the `echo` example behaviour (echo.h): answers girder_call
 * requests with the request, counts plain messages, and stops on
 * ["stop", Reason]. Copy it to start a behaviour of your own.
 *
 * The state is one counter. A request is answered by re-packing the request
 * object into a new message (girder_reply borrows it), so a "$call" costs one
 * allocation; a plain message costs none.
 */
#include "services/echo.h"

#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef struct echo_state {
    uint64_t count; /* plain (non-"$call") messages received */
} echo_state;

static int echo_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    echo_state *s = calloc(1, sizeof(*s));

    if (!s) {
        return -ENOMEM;
    }
    *ret_state = s;
    return 0;
}

static girder_msg *msg_uint(uint64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    m = msgpack_pack_uint64(&pk, v) == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    return m;
}

/* One "$call": answer it. Returns GIRDER_STOP for ["stop", Reason]. */
static int echo_call(girder_ctx *ctx, echo_state *s, const msgpack_object *a)
{
    const msgpack_object *req = &a[3];
    girder_msg *resp = NULL, *reason = NULL;
    girder_pid from;
    girder_ref ref;
    int ret = GIRDER_CONTINUE;

    if (girder_get_pid(ctx, &a[1], &from) < 0 || girder_get_ref(ctx, &a[2], &ref) < 0) {
        return GIRDER_CONTINUE; /* malformed: nobody to answer */
    }
    if (gr_term_is_str(req, "count")) {
        resp = msg_uint(s->count);
    } else if (req->type == MSGPACK_OBJECT_ARRAY && req->via.array.size == 2 &&
               gr_term_is_str(&req->via.array.ptr[0], "stop")) {
        resp = girder_msg_atom("ok");
        reason = girder_msg_from_object(&req->via.array.ptr[1]);
        ret = GIRDER_STOP;
    } else {
        resp = girder_msg_from_object(req);
    }
    if (resp) {
        (void)girder_reply(ctx, from, ref, resp); /* a dead caller is not our problem */
    }
    if (reason) {
        girder_stop(ctx, reason); /* borrowed: the runtime takes its own ref */
    }
    girder_msg_unref(resp);
    girder_msg_unref(reason);
    return ret;
}

static int echo_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    echo_state *s = state;
    msgpack_unpacked up;
    int ret = GIRDER_CONTINUE;

    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 4 && gr_term_is_str(&up.data.via.array.ptr[0], "$call")) {
        ret = echo_call(ctx, s, up.data.via.array.ptr);
    } else {
        s->count++;
    }
    msgpack_unpacked_destroy(&up);
    return ret;
}

static void echo_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    free(state);
}

static size_t echo_state_size(const void *state)
{
    return sizeof(echo_state);
}

const girder_behaviour gr_echo_behaviour = {
    .name = GR_ECHO_NAME,
    .init = echo_init,
    .handle = echo_handle,
    .terminate = echo_terminate,
    .state_size = echo_state_size,
};
