/* SPDX-License-Identifier: Apache-2.0 */
/*
 * opd.c - girderd-bench-op: girderd plus the rpc module `opbench`, the
 * node side of bench/operator (issue 17's benchmarks: a full `girder ps` of
 * 1,000,000 processes, and what `girder trace` costs a traced process).
 *
 *   opbench.fill(N)          -> {"spawned": N, "ms": Float}: spawns N idle
 *                               processes ("op_idle", never a message),
 *                               round-robin over the schedulers
 *                               (GIRDER_SPAWN_SPREAD), from this worker.
 *   opbench.blast(Pid, N)    -> {"count": N, "seconds", "msgs_per_s"}: sends
 *                               Pid (an echo) N plain messages, BLAST_BATCH
 *                               per turn, then calls it ("count"): the clock
 *                               stops at that reply, so every message was
 *                               handled (one sender's order is kept).
 *
 * Not a test and never installed: only bench/operator runs it. Owning thread:
 * each function runs in its rpc worker; op_idle in its own process.
 */
#include "daemon/daemon.h"
#include "proto/err.h"
#include "proto/term.h"
#include "rpc/rpc_int.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define FILL_MAX 10000000u   /* processes one fill spawns at most */
#define BLAST_MAX 100000000u /* messages one blast sends at most */
#define BLAST_BATCH 256u     /* messages sent per worker turn */
#define MORE_ATOM "$op_more" /* the worker's own "next batch" */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int idle_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    (void)ctx;
    (void)arg;
    *ret_state = NULL;
    return 0;
}

static int idle_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return GIRDER_CONTINUE;
}

static const girder_behaviour op_idle = {
    .name = "op_idle", .init = idle_init, .handle = idle_handle};

static int op_fill(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    double t0 = now_s();
    uint64_t n;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        args->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        (n = args->via.array.ptr[0].via.u64) == 0 || n > FILL_MAX) {
        return GR_EBADARG;
    }
    for (uint64_t i = 0; i < n; i++) {
        if ((r = girder_spawn(ctx, &op_idle, NULL, GIRDER_SPAWN_SPREAD, &pid, NULL)) < 0) {
            return r;
        }
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    gr_term_pack_kv_uint(&pk, "spawned", n);
    gr_term_pack_cstr(&pk, "ms");
    msgpack_pack_double(&pk, (now_s() - t0) * 1e3);
    return gr_rpc_answer_sb(c, &sb);
}

typedef struct blast {
    girder_pid to;    /* the echo */
    uint64_t n, sent; /* to send / sent */
    double t0;        /* first send */
    girder_ref ref;   /* the final call */
    bool calling;     /* the final call is out */
} blast;

/* One batch, then either the next one (a message to itself) or the call. */
static int blast_step(gr_rpc_call *c, girder_ctx *ctx, blast *b)
{
    girder_msg *m = girder_msg_atom("x");
    int r = 0;

    if (m == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < BLAST_BATCH && b->sent < b->n; i++, b->sent++) {
        if ((r = girder_send(ctx, b->to, girder_msg_ref(m))) < 0) {
            girder_msg_unref(m);
            break;
        }
    }
    girder_msg_unref(m);
    if (r < 0) {
        return r;
    }
    if (b->sent < b->n) {
        if (!(m = girder_msg_atom(MORE_ATOM))) {
            return -ENOMEM;
        }
        if ((r = girder_send(ctx, girder_self(ctx), m)) < 0) {
            girder_msg_unref(m);
            return r;
        }
        return GR_RPC_WAIT;
    }
    if (!(m = girder_msg_atom("count"))) {
        return -ENOMEM;
    }
    r = girder_call(ctx, b->to, m, true, &b->ref);
    girder_msg_unref(m);
    if (r < 0) {
        return r;
    }
    b->calling = true;
    (void)c;
    return GR_RPC_WAIT;
}

static int op_blast(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a;
    blast *b;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 == 0 ||
        a[1].via.u64 > BLAST_MAX) {
        return GR_EBADARG;
    }
    if (!(b = calloc(1, sizeof(*b)))) {
        return -ENOMEM;
    }
    c->priv = b;
    if (a[0].type != MSGPACK_OBJECT_EXT || girder_get_pid(ctx, &a[0], &b->to) < 0 ||
        b->to.node != 0) {
        return GR_EBADARG;
    }
    b->n = a[1].via.u64;
    b->t0 = now_s();
    return blast_step(c, ctx, b);
}

static int op_blast_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    blast *b = c->priv;
    girder_ref got;

    if (!b->calling && gr_term_is_str(msg, MORE_ATOM)) {
        return blast_step(c, ctx, b);
    }
    if (b->calling && msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size >= 3 &&
        girder_get_ref(ctx, &msg->via.array.ptr[1], &got) == 0 && girder_ref_eq(got, b->ref)) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        double secs = now_s() - b->t0;

        if (!gr_term_is_str(&msg->via.array.ptr[0], "$reply")) {
            return GR_ENOPROC; /* its DOWN */
        }
        girder_demonitor(ctx, b->ref);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        gr_term_pack_kv_uint(&pk, "count", b->n);
        gr_term_pack_cstr(&pk, "seconds");
        msgpack_pack_double(&pk, secs);
        gr_term_pack_cstr(&pk, "msgs_per_s");
        msgpack_pack_double(&pk, (double)b->n / secs);
        return gr_rpc_answer_sb(c, &sb);
    }
    return GR_RPC_WAIT;
}

static const gr_rpc_fn_def op_fns[] = {
    {"fill", op_fill, NULL, NULL},
    {"blast", op_blast, op_blast_msg, NULL},
};

static const gr_rpc_module op_mod = {"opbench", op_fns, sizeof(op_fns) / sizeof(op_fns[0])};
static const gr_rpc_module *const op_mods[] = {&op_mod};
static const girder_behaviour *const op_behs[] = {&op_idle};

int main(int argc, char *argv[])
{
    static const gr_daemon_ext ext = {
        .prog = "girderd-bench-op",
        .what = "girderd plus opbench (bench/operator)",
        .behaviours = op_behs,
        .nbehaviours = 1,
        .modules = op_mods,
        .nmodules = 1,
    };

    return gr_daemon_run(argc, argv, &ext);
}
