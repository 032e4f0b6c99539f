/* SPDX-License-Identifier: Apache-2.0 */
/*
 * benchkit.c - the pieces the bench modules of the test kit share
 * (benchkit.h): argument checks, tagged and DOWN messages, latency
 * statistics, the "more" turn,
 * and the helper process that answers its owner with one shared message.
 */
#include "testkit/benchkit.h"

#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <stdlib.h>

int gr_testkit_count_arg(const msgpack_object *o, uint64_t max, uint64_t *ret)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 == 0 || o->via.u64 > max) {
        return GR_EBADARG;
    }
    *ret = o->via.u64;
    return 0;
}

bool gr_testkit_is_tagged(const msgpack_object *msg, const char *s)
{
    return msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size >= 1 &&
           gr_term_is_str(&msg->via.array.ptr[0], s);
}

bool gr_testkit_is_down(const girder_msg *msg)
{
    msgpack_unpacked up;
    bool down;

    msgpack_unpacked_init(&up);
    down = girder_msg_unpack(msg, &up) == 0 && gr_testkit_is_tagged(&up.data, "DOWN");
    msgpack_unpacked_destroy(&up);
    return down;
}

int gr_testkit_cmp_u64(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;

    return p < q ? -1 : p > q;
}

void gr_testkit_pack_us(msgpack_packer *pk, const char *k, uint64_t ns)
{
    gr_term_pack_cstr(pk, k);
    msgpack_pack_double(pk, (double)ns / 1000.0);
}

int gr_testkit_answer_stats(gr_rpc_call *c, uint64_t *v, uint64_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t sum = 0;

    qsort(v, n, sizeof(uint64_t), gr_testkit_cmp_u64);
    for (uint64_t i = 0; i < n; i++) {
        sum += v[i];
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    gr_term_pack_cstr(&pk, "count");
    msgpack_pack_uint64(&pk, n);
    gr_testkit_pack_us(&pk, "median_us", v[n / 2]);
    gr_testkit_pack_us(&pk, "p99_us", v[n * 99 / 100]);
    gr_testkit_pack_us(&pk, "mean_us", sum / n);
    gr_testkit_pack_us(&pk, "min_us", v[0]);
    gr_testkit_pack_us(&pk, "max_us", v[n - 1]);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

int gr_testkit_more(girder_ctx *ctx, bool *more)
{
    girder_msg *m;
    int r;

    if (*more) {
        return 0;
    }
    if (!(m = girder_msg_atom("more"))) {
        return -ENOMEM;
    }
    if ((r = girder_send(ctx, girder_self(ctx), m)) < 0) {
        girder_msg_unref(m);
        return r;
    }
    *more = true;
    return 0;
}

int gr_testkit_owned_start(girder_ctx *ctx, int r, bool monitor, void *state, void **ret_state)
{
    gr_testkit_owned *o = state;

    if (r == 0 && monitor) {
        girder_ref mref;

        r = girder_monitor(ctx, o->owner, &mref);
    }
    if (r < 0) {
        girder_msg_unref(o->reply);
        free(state);
        return r;
    }
    *ret_state = state;
    return 0;
}

int gr_testkit_owned_reply(girder_ctx *ctx, gr_testkit_owned *o)
{
    int r;

    girder_msg_ref(o->reply);
    if ((r = girder_send(ctx, o->owner, o->reply)) < 0) {
        girder_msg_unref(o->reply);
    }
    return r;
}

void gr_testkit_owned_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    gr_testkit_owned *o = state;

    (void)ctx;
    (void)reason;
    girder_msg_unref(o->reply);
    free(state);
}
