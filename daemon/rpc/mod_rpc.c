/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_rpc.c - rpc module `rpc`: calls made by this node on others.
 *
 *   rpc.call(Node, Module, Function, Args[, TimeoutMs])
 *       -> what Module.Function(Args...) answered on Node; its error as this
 *          call's error; "timeout" after TimeoutMs (default 5000); "noconnection"
 *          when Node is not a connected member. Node = this node runs it here.
 *   rpc.cast(Node, Module, Function, Args)
 *       -> "ok" at once; Module.Function(Args...) runs on Node and its answer is
 *          dropped. Errors known at once are still answered: "noconnection"
 *          (Node is not a connected member), and for this node "undef_module",
 *          "undef_function". Node's own errors are not reported (Erlang's
 *          rpc:cast/4 neither).
 *   rpc.multicall(Nodes, Module, Function, Args[, TimeoutMs])
 *       -> {Node: {"ok": Result} | {"error": ReasonId}, ...} for every node of
 *          Nodes (a list of node names, or "all": this node and every member
 *          that has not left), calls issued in parallel; a node that has not
 *          answered after TimeoutMs (default 5000) is {"error": "timeout"}.
 *   rpc.latency(Node, Count)
 *       -> {"count", "median_us", "p99_us", "mean_us", "min_us", "max_us"}:
 *          Count sequential node.ping round trips to Node measured in this
 *          daemon (send to reply, monotonic clock), for the benchmarks.
 *
 * Design notes
 * - multicall treats every node alike: other nodes through gr_dist_call, this
 *   node through gr_rpc_call_local (a request of its own in a new worker);
 *   both answer with ["$rpc", Tag, Status, Result], one tag per node. The
 *   worker arms its own TimeoutMs timer before issuing anything, so the whole
 *   call is bounded by TimeoutMs even if a node's answer is late; answers
 *   after that die with the worker.
 * - cast checks the member list (gr_dist_members) before sending so that an
 *   unconnected node is an error at once, as documented; a node lost between
 *   the check and the send is silent (the call's answer goes to pid 0, which
 *   the runtime drops).
 *
 * Owning thread: every function runs in its request's worker process.
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
#define TIMEOUT_MAX_MS 3600000
#define CAST_DEADLINE_MS GR_RPC_DEFAULT_DEADLINE_MS /* a cast's call may run this long */
#define MULTICALL_NODES_MAX 1024                    /* most nodes in one multicall */
#define MULTICALL_TIMER_ATOM "$multicall_timeout"   /* the multicall's own deadline */

/* Is ["$rpc", Tag, Status, Result] our answer? Result (or the reason id), and
 * *status, if so. */
static const msgpack_object *rpc_answer(gr_rpc_call *c, const msgpack_object *msg, int *status)
{
    const msgpack_object *x;
    uint64_t tag;

    if (gr_term_parse_rpc_answer(msg, &tag, status, &x) < 0 || tag != c->tag) {
        return NULL;
    }
    return x;
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
    if (gr_term_get_str(&a[0], node, sizeof(node)) < 0 ||
        gr_nodename_check(node, strlen(node)) < 0 || gr_term_get_str(&a[1], mod, sizeof(mod)) < 0 ||
        gr_term_get_str(&a[2], fn, sizeof(fn)) < 0 || a[3].type != MSGPACK_OBJECT_ARRAY) {
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

/* ---- cast --------------------------------------------------------------------------------- */

/* Is `node` an authenticated member right now? */
static bool node_connected(gr_dist *dist, const char *node)
{
    gr_dist_member *m;
    size_t n;
    bool up = false;

    if (!dist || gr_dist_members(dist, &m, &n) < 0) {
        return false;
    }
    for (size_t i = 0; i < n && !up; i++) {
        up = m[i].state == GR_DIST_UP && strcmp(m[i].name, node) == 0;
    }
    free(m);
    return up;
}

/* Node, Module, Function, Args of cast and multicall's last three. */
static int get_mfa(const msgpack_object *a, char *mod, size_t mcap, char *fn, size_t fcap)
{
    if (gr_term_get_str(&a[0], mod, mcap) < 0 || gr_term_get_str(&a[1], fn, fcap) < 0 ||
        a[2].type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADARG;
    }
    return 0;
}

static int rpc_cast(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const girder_pid nobody = {0, 0, 0};
    char node[GR_NODENAME_MAX + 1], mod[256], fn[256];
    const msgpack_object *a;
    gr_dist *dist = gr_rpc_call_dist(c);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 4) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (gr_term_get_str(&a[0], node, sizeof(node)) < 0 ||
        gr_nodename_check(node, strlen(node)) < 0 ||
        get_mfa(&a[1], mod, sizeof(mod), fn, sizeof(fn)) < 0) {
        return GR_EBADARG;
    }
    if (strcmp(node, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        r = gr_rpc_call_local(c, ctx, mod, fn, &a[3], CAST_DEADLINE_MS, nobody, 0);
        return r < 0 ? r : gr_rpc_answer_str(c, "ok");
    }
    if (!node_connected(dist, node)) {
        return GR_ENOCONN;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, a[3]) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    /* The answer goes to no process: the dist layer's send to pid 0 drops it. */
    r = gr_dist_call(dist, node, mod, fn, sb.data, sb.size, CAST_DEADLINE_MS, nobody, 0);
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : gr_rpc_answer_str(c, "ok");
}

/* ---- multicall ---------------------------------------------------------------------------- */

/* One node of a multicall. */
typedef struct mc_node {
    char name[GR_NODENAME_MAX + 1]; /* the node */
    uint64_t tag;                   /* its "$rpc" answer's tag */
    bool done;                      /* answered (or failed at once) */
    int status;                     /* 0, or the error */
    uint8_t *result;                /* status 0: the result term */
    size_t len;                     /* bytes in result */
} mc_node;

typedef struct multicall {
    size_t n;        /* nodes */
    size_t pending;  /* nodes not done */
    mc_node nodes[]; /* in the order given ("all": this node first) */
} multicall;

static void multicall_free(void *priv)
{
    multicall *m = priv;

    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->nodes[i].result);
    }
    free(m);
}

/* Add node name (len bytes, validated) unless already there (at most cap
 * nodes). 0, or GR_EBADARG (not a node name, or more than cap). */
static int mc_add(multicall *m, size_t cap, const char *name, size_t len)
{
    if (len == 0 || len > GR_NODENAME_MAX || gr_nodename_check(name, len) < 0) {
        return GR_EBADARG;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strlen(m->nodes[i].name) == len && memcmp(m->nodes[i].name, name, len) == 0) {
            return 0;
        }
    }
    if (m->n == cap) {
        return GR_EBADARG;
    }
    memcpy(m->nodes[m->n].name, name, len);
    m->nodes[m->n].name[len] = '\0';
    m->n++;
    return 0;
}

/* The nodes of a multicall: "all" or a list of names. 0 and *ret_m, or an error. */
static int mc_nodes(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *o, multicall **ret_m)
{
    const char *self = gr_rt_node_name(girder_runtime(ctx));
    gr_dist *dist = gr_rpc_call_dist(c);
    gr_dist_member *mem = NULL;
    size_t cap, nmem = 0;
    multicall *m;
    int r = 0;

    if (gr_term_is_str(o, "all")) {
        if (dist && (r = gr_dist_members(dist, &mem, &nmem)) < 0) {
            return r;
        }
        cap = nmem + 1;
    } else if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0 &&
               o->via.array.size <= MULTICALL_NODES_MAX) {
        cap = o->via.array.size;
    } else {
        return GR_EBADARG;
    }
    if (!(m = calloc(1, sizeof(*m) + cap * sizeof(m->nodes[0])))) {
        free(mem);
        return -ENOMEM;
    }
    if (gr_term_is_str(o, "all")) {
        r = mc_add(m, cap, self, strlen(self));
        for (size_t i = 0; i < nmem && r == 0; i++) {
            if (mem[i].state != GR_DIST_LEFT) {
                r = mc_add(m, cap, mem[i].name, strlen(mem[i].name));
            }
        }
    } else {
        for (uint32_t i = 0; i < o->via.array.size && r == 0; i++) {
            const msgpack_object *e = &o->via.array.ptr[i];

            r = e->type == MSGPACK_OBJECT_STR ? mc_add(m, cap, e->via.str.ptr, e->via.str.size)
                                              : GR_EBADARG;
        }
    }
    free(mem);
    if (r < 0) {
        free(m);
        return r;
    }
    *ret_m = m;
    return 0;
}

static void mc_done(multicall *m, mc_node *t, int status)
{
    if (!t->done) {
        t->done = true;
        t->status = status;
        m->pending--;
    }
}

/* {Node: {"ok": Result} | {"error": ReasonId}, ...}; nodes not done: timeout. */
static int mc_answer(gr_rpc_call *c, multicall *m)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (uint32_t)m->n);
    for (size_t i = 0; i < m->n; i++) {
        mc_node *t = &m->nodes[i];

        if (!t->done) {
            mc_done(m, t, GR_ETIMEOUT);
        }
        gr_term_pack_cstr(&pk, t->name);
        msgpack_pack_map(&pk, 1);
        if (t->status == 0) {
            msgpack_pack_str_with_body(&pk, "ok", 2);
            msgpack_sbuffer_write(&sb, (const char *)t->result, t->len);
        } else {
            const char *id = gr_errid(t->status);

            msgpack_pack_str_with_body(&pk, "error", 5);
            gr_term_pack_cstr(&pk, id);
        }
    }
    return gr_rpc_answer_sb(c, &sb);
}

static int rpc_multicall(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const char *self = gr_rt_node_name(girder_runtime(ctx));
    char mod[256], fn[256];
    const msgpack_object *a;
    uint64_t timeout = CALL_TIMEOUT_DEFAULT_MS;
    gr_dist *dist = gr_rpc_call_dist(c);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    multicall *m;
    girder_msg *tm;
    girder_ref tref;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 4 ||
        args->via.array.size > 5) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (get_mfa(&a[1], mod, sizeof(mod), fn, sizeof(fn)) < 0) {
        return GR_EBADARG;
    }
    if (args->via.array.size == 5) {
        if (a[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[4].via.u64 == 0 ||
            a[4].via.u64 > TIMEOUT_MAX_MS) {
            return GR_EBADARG;
        }
        timeout = a[4].via.u64;
    }
    if ((r = mc_nodes(c, ctx, &a[0], &m)) < 0) {
        return r;
    }
    c->priv = m;
    c->priv_free = multicall_free;
    m->pending = m->n;
    /* Our deadline first: every answer that arrives later is a timeout. */
    if (!(tm = girder_msg_atom(MULTICALL_TIMER_ATOM))) {
        return -ENOMEM;
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), timeout, tm, &tref)) < 0) {
        girder_msg_unref(tm);
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, a[3]) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->n; i++) {
        mc_node *t = &m->nodes[i];

        t->tag = gr_rpc_next_tag(c);
        if (strcmp(t->name, self) == 0) {
            r = gr_rpc_call_local(c, ctx, mod, fn, &a[3], (uint32_t)timeout, girder_self(ctx),
                                  t->tag);
        } else if (!dist) {
            r = GR_ENOCONN;
        } else {
            r = gr_dist_call(dist, t->name, mod, fn, sb.data, sb.size, (unsigned)timeout,
                             girder_self(ctx), t->tag);
        }
        if (r < 0) {
            mc_done(m, t, r); /* known at once: this node's answer */
        }
    }
    msgpack_sbuffer_destroy(&sb);
    return m->pending > 0 ? GR_RPC_WAIT : mc_answer(c, m);
}

/* ["$rpc", Tag, Status, Result] from one of the nodes, or our timer. */
static int rpc_multicall_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    multicall *m = c->priv;
    const msgpack_object *x;
    mc_node *t = NULL;
    uint64_t tag;
    int status;

    (void)ctx;
    if (gr_term_is_str(msg, MULTICALL_TIMER_ATOM)) {
        return mc_answer(c, m);
    }
    if (gr_term_parse_rpc_answer(msg, &tag, &status, &x) < 0) {
        return GR_RPC_WAIT;
    }
    for (size_t i = 0; i < m->n && !t; i++) {
        if (!m->nodes[i].done && m->nodes[i].tag == tag) {
            t = &m->nodes[i];
        }
    }
    if (!t) {
        return GR_RPC_WAIT; /* not ours, or a node already settled */
    }
    if (status < 0) {
        mc_done(m, t, status);
    } else {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (msgpack_pack_object(&pk, *x) < 0) {
            msgpack_sbuffer_destroy(&sb);
            return -ENOMEM;
        }
        t->len = sb.size;
        t->result = (uint8_t *)msgpack_sbuffer_release(&sb);
        mc_done(m, t, 0);
    }
    return m->pending > 0 ? GR_RPC_WAIT : mc_answer(c, m);
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
    if (gr_term_get_str(&a[0], l->node, sizeof(l->node)) < 0 ||
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
    gr_term_pack_cstr(pk, k);
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
    {"cast", rpc_cast, NULL, NULL},
    {"multicall", rpc_multicall, rpc_multicall_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_rpc = {"rpc", rpc_fns, sizeof(rpc_fns) / sizeof(rpc_fns[0])};
