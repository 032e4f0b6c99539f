/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_rpc.c - rpc module `rpc`: calls made by this node on others.
 *
 *   rpc.call(Node, Module, Function, Args[, TimeoutMs])
 *       -> what Module.Function(Args...) answered on Node; its error as this
 *          call's error; "timeout" after TimeoutMs (default 5000); "noconnection"
 *          when Node is not a connected member. Node = this node runs it here.
 *   rpc.latency(Node, Count)
 *       -> {"count", "median_us", "p99_us", "mean_us", "min_us", "max_us"}:
 *          Count sequential node.ping round trips to Node measured in this
 *          daemon (send to reply, monotonic clock), for the benchmarks.
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_DEFAULT_MS 5000
#define LATENCY_COUNT_MAX 1000000
#define LATENCY_PING_TIMEOUT_MS 5000

/* Is ["$rpc", Tag, Status, Result] our answer? */
static const msgpack_object *rpc_answer(gr_rpc_call *c, const msgpack_object *msg, int *status)
{
    const msgpack_object *a;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 4) {
        return NULL;
    }
    a = msg->via.array.ptr;
    if (!gr_term_is_str(&a[0], "$rpc") || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].via.u64 != c->tag) {
        return NULL;
    }
    *status = a[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? (int)a[2].via.i64 : 0;
    return &a[3];
}

static int rpc_call(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char node[GR_NODENAME_MAX + 1], mod[256], fn[256];
    const msgpack_object *a;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t timeout = CALL_TIMEOUT_DEFAULT_MS;
    gr_dist *dist = gr_rpc_call_dist(c);
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 4 ||
        args->via.array.size > 5) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (gr_rpc_get_str(&a[0], node, sizeof(node)) < 0 || gr_nodename_check(node, strlen(node)) < 0 ||
        gr_rpc_get_str(&a[1], mod, sizeof(mod)) < 0 || gr_rpc_get_str(&a[2], fn, sizeof(fn)) < 0 ||
        a[3].type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADARG;
    }
    if (args->via.array.size == 5) {
        if (a[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[4].via.u64 == 0 ||
            a[4].via.u64 > 3600000) {
            return GR_EBADARG;
        }
        timeout = a[4].via.u64;
    }
    if (strcmp(node, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        return gr_rpc_call_redirect(c, ctx, mod, strlen(mod), fn, strlen(fn), &a[3]);
    }
    if (!dist) {
        return GR_ENOCONN;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, a[3]);
    r = gr_dist_call(dist, node, mod, fn, sb.data, sb.size, (unsigned)timeout, girder_self(ctx),
                     gr_rpc_next_tag(c));
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : GR_RPC_WAIT;
}

static int rpc_call_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    const msgpack_object *result;
    int status = 0;

    if (!(result = rpc_answer(c, msg, &status))) {
        return GR_RPC_WAIT;
    }
    if (status < 0) {
        return gr_rpc_fail(c, status);
    }
    return gr_rpc_answer_object(c, result);
}

/* rpc.latency state. */
typedef struct latency {
    char node[GR_NODENAME_MAX + 1];
    uint32_t count, done;
    uint64_t sent_ns;
    uint64_t samples[]; /* ns per round trip */
} latency;

static const uint8_t no_args[] = {0x90}; /* msgpack [] */

static int ping_next(gr_rpc_call *c, girder_ctx *ctx, latency *l)
{
    int r;

    l->sent_ns = gr_rpc_now_ns();
    r = gr_dist_call(gr_rpc_call_dist(c), l->node, "node", "ping", no_args, sizeof(no_args),
                     LATENCY_PING_TIMEOUT_MS, girder_self(ctx), gr_rpc_next_tag(c));
    return r < 0 ? r : GR_RPC_WAIT;
}

static int rpc_latency(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a;
    latency *l;
    uint64_t count;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 == 0 ||
        a[1].via.u64 > LATENCY_COUNT_MAX) {
        return GR_EBADARG;
    }
    count = a[1].via.u64;
    if (!(l = calloc(1, sizeof(*l) + count * sizeof(uint64_t)))) {
        return -ENOMEM;
    }
    c->priv = l;
    l->count = (uint32_t)count;
    if (gr_rpc_get_str(&a[0], l->node, sizeof(l->node)) < 0 ||
        gr_nodename_check(l->node, strlen(l->node)) < 0 ||
        strcmp(l->node, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        return GR_EBADARG; /* a remote node: this measures the network path */
    }
    if (!gr_rpc_call_dist(c)) {
        return GR_ENOCONN;
    }
    return ping_next(c, ctx, l);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void pack_us(msgpack_packer *pk, const char *k, uint64_t ns)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_double(pk, (double)ns / 1000.0);
}

static int rpc_latency_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    latency *l = c->priv;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t sum = 0;
    int status = 0;

    if (!rpc_answer(c, msg, &status)) {
        return GR_RPC_WAIT;
    }
    if (status < 0) {
        return status;
    }
    l->samples[l->done++] = gr_rpc_now_ns() - l->sent_ns;
    if (l->done < l->count) {
        return ping_next(c, ctx, l);
    }
    qsort(l->samples, l->count, sizeof(uint64_t), cmp_u64);
    for (uint32_t i = 0; i < l->count; i++) {
        sum += l->samples[i];
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    msgpack_pack_str_with_body(&pk, "count", 5);
    msgpack_pack_uint32(&pk, l->count);
    pack_us(&pk, "median_us", l->samples[l->count / 2]);
    pack_us(&pk, "p99_us", l->samples[(uint64_t)l->count * 99 / 100]);
    pack_us(&pk, "mean_us", sum / l->count);
    pack_us(&pk, "min_us", l->samples[0]);
    pack_us(&pk, "max_us", l->samples[l->count - 1]);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

static const gr_rpc_fn_def rpc_fns[] = {
    {"call", rpc_call, rpc_call_msg, NULL},
    {"latency", rpc_latency, rpc_latency_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_rpc = {"rpc", rpc_fns, sizeof(rpc_fns) / sizeof(rpc_fns[0])};
