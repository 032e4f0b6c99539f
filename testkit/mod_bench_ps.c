/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_bench_ps.c - rpc module `bench_ps` of the test kit (testkit.h, served by
 * girderd-testkit only): pub/sub, global names and ports measured inside the
 * daemon, from the call's worker process (bench/pubsub/pubsub.py and
 * bench/ports/ports.py, cluster tests bp_*).
 *
 *   bench_ps.bcast(Nodes, Subs, Msgs, Size)
 *       -> {"subs", "local_subs", "msgs", "size", "deliveries", "seconds",
 *           "deliveries_per_s", "busy", "nodes"}:
 *          Subs subscribers to one fresh topic, spread evenly over this node
 *          and the nodes of the list Nodes (spawned with GIRDER_SPAWN_SPREAD);
 *          the worker publishes Msgs messages (a msgpack bin of Size bytes)
 *          with gr_pubsub_publish, STREAM_BURST per turn. The clock runs from
 *          the first publish until every subscriber has told the worker it
 *          counted all Msgs. Before it starts, the worker publishes the atom
 *          "warm" every WARM_TICK_MS until every subscriber has answered
 *          "ready" (remote interest travels on its own: docs/pubsub.md).
 *   bench_ps.lat(Node, Count)
 *       -> {"count", "median_us", "p99_us", "mean_us", "min_us", "max_us"}:
 *          one subscriber on Node that answers each publish with the atom
 *          "pong" sent straight to the worker; after the same warm-up and
 *          LAT_WARMUP untimed round trips, Count publishes, one in flight,
 *          each timed from the publish to the pong.
 *   bench_ps.global(Count, Nodes)
 *       -> {"count", "reg_s", "reg_per_s", "whereis_s", "whereis_per_s",
 *           "visible_ms"}: the worker registers Count distinct global names
 *          for itself (girder_global_register), timed; then looks each one
 *          up (girder_global_whereis), timed; then asks every node of Nodes
 *          (`pubsub.whereis` over rpc, again until found) for the last name:
 *          visible_ms runs from the first registration until all of them know
 *          it. The names go when the worker ends.
 *   bench_ps.subs(Mode, Owner, Topic, Count, Msgs) -> Count
 *          (used by bcast and lat, on the other nodes) spawn Count
 *          subscribers ("count" or "echo") of Topic for Owner.
 *   bench_ps.pp(Behaviour, Count) -> {"count", "seconds", "rt_per_s"}:
 *          local ping-pong with a ponger spawned by behaviour name (this
 *          kit's "bench_ponger", or a plugin's): Count round trips of the atom
 *          "ping", one in flight, after LAT_WARMUP untimed.
 *   bench_ps.port(Cmd, Count, Window, Size)
 *       -> {"count", "window", "size", "seconds", "msgs_per_s", "median_us",
 *           "p99_us"}: spawns a port (behaviour "port") running Cmd with the
 *          argument "girder" (bench/ports/echo.c), sends it [Self, Bin]
 *          messages and counts the Bin it sends back. Window 1: one in
 *          flight, each round trip timed (median, p99); more: that many in
 *          flight, messages per second from the first send to the last echo.
 *          LAT_WARMUP untimed round trips first (the program starts then).
 *
 *   bench_ps.flood(Topic, Seconds, Size, SlowMs, MaxMsgs, MaxBytes)
 *       -> {"published", "busy", "dropped", "first_busy", "first_drop",
 *           "deferred", "seconds"}: the slow-subscriber check (cluster test
 *          ps2_slow_sub). One local subscriber of Topic with the limits
 *          MaxMsgs / MaxBytes (policy drop) that spends SlowMs asleep on each
 *          message while the flood lasts (a consumer far slower than the
 *          publisher; it drains at once afterwards); a thread of the worker
 *          (not a process: the sleeper blocks its scheduler) publishes a bin
 *          of Size bytes for Seconds, STREAM_BURST at a time, and after a
 *          burst that met GR_PUBSUB_BUSY sleeps 1 ms before the next (it is
 *          slowed, as docs/pubsub.md advises; "deferred" counts those waits).
 *          first_busy / first_drop: the 1-based publish that first met busy /
 *          a drop (0: never).
 *
 * Design notes
 * - Subscribers monitor the worker and stop at its DOWN (so a failed or
 *   finished run leaves nothing behind; the keeper drops their
 *   subscriptions). A "count" subscriber also stops once it has sent "done".
 * - Their backlog limits are raised (SUB_MAX_MSGS, SUB_MAX_BYTES) so that no
 *   delivery is dropped: the run measures delivery, not the drop policy;
 *   "busy" counts the publishes that found someone above the high watermark.
 * - Subscribers are matched by bytes, not unpacked (as an Erlang receive
 *   pattern does): ["$pub", Topic, Payload] ends with the payload.
 *
 * Owning thread: each call runs in its worker process; each subscriber and
 * ponger in its own process. One scheduler each.
 */
#include "testkit/testkit.h"

#include "testkit/benchkit.h"

#include "proto/err.h"
#include "proto/term.h"
#include "pubsub/pubsub.h"
#include "rpc/rpc_int.h"
#include "runtime/rt.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBS_MAX 1000000u
#define MSGS_MAX 100000000u
#define SIZE_MAX_BYTES (1u << 20)
#define NODES_MAX 16u
#define LAT_COUNT_MAX 1000000u
#define LAT_WARMUP 1000u /* untimed round trips */
#define GLOBAL_MAX 1000000u
#define PORT_WINDOW_MAX 100000u
#define STREAM_BURST 64u /* publishes / sends per turn, at most */
#define WARM_TICK_MS 2u
#define SUB_MAX_MSGS 4000000000u
#define SUB_MAX_BYTES (1ull << 40)
#define CALL_TIMEOUT_MS 10000

static const uint8_t warm_tail[] = {0xa4, 'w', 'a', 'r', 'm'};

/* ---- helpers -------------------------------------------------------------------------------- */

static int send_atom(girder_ctx *ctx, girder_pid to, const char *s)
{
    girder_msg *m = girder_msg_atom(s);
    int r;

    if (!m) {
        return -ENOMEM;
    }
    if ((r = girder_send(ctx, to, m)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* A msgpack bin of size zero bytes, as a message; NULL on -ENOMEM. */
static girder_msg *bin_msg(uint64_t size)
{
    uint8_t *buf = calloc(1, size + 5);
    girder_msg *m;

    if (!buf) {
        return NULL;
    }
    buf[0] = 0xc6;
    for (int i = 0; i < 4; i++) {
        buf[1 + i] = (uint8_t)(size >> (8 * (3 - i)));
    }
    m = girder_msg_new(buf, size + 5);
    free(buf);
    return m;
}

/* ---- subscribers ------------------------------------------------------------------------------
 */

typedef struct psub {
    gr_testkit_owned o; /* reply: "pong" (echo) or "done" (count) */
    bool echo;          /* echo mode: a pong per message; else count */
    bool ready;         /* "ready" sent */
    uint64_t msgs, n;   /* count mode: expected, counted */
} psub;

/* arg: [Mode, Owner, Topic, Msgs] */
static int psub_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_pubsub *ps = gr_pubsub_of(girder_runtime(ctx));
    gr_sub_opts opts = {.max_msgs = SUB_MAX_MSGS, .max_bytes = SUB_MAX_BYTES};
    msgpack_unpacked up;
    const msgpack_object *a;
    psub *p;
    int r = GR_EBADARG;

    if (!arg || !ps || !(p = calloc(1, sizeof(*p)))) {
        return arg && ps ? -ENOMEM : GR_EBADARG;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(arg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 4) {
        a = up.data.via.array.ptr;
        p->echo = gr_term_is_str(&a[0], "echo");
        if ((p->echo || gr_term_is_str(&a[0], "count")) &&
            girder_get_pid(ctx, &a[1], &p->o.owner) == 0 && a[2].type == MSGPACK_OBJECT_STR &&
            a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            p->msgs = a[3].via.u64;
            r = gr_pubsub_subscribe(ps, girder_self(ctx), a[2].via.str.ptr, a[2].via.str.size,
                                    &opts);
        }
    }
    msgpack_unpacked_destroy(&up);
    if (r == 0 && !(p->o.reply = girder_msg_atom(p->echo ? "pong" : "done"))) {
        r = -ENOMEM;
    }
    return gr_testkit_owned_start(ctx, r, true, p, ret_state);
}

static int psub_reply(girder_ctx *ctx, psub *p)
{
    return gr_testkit_owned_reply(ctx, &p->o) < 0 ? GIRDER_STOP : GIRDER_CONTINUE;
}

static int psub_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    static const uint8_t pub_head[] = {0x93, 0xa4, '$', 'p', 'u', 'b'};
    psub *p = state;
    const uint8_t *b = girder_msg_data(msg);
    size_t n = girder_msg_size(msg);

    if (n > sizeof(pub_head) + sizeof(warm_tail) && memcmp(b, pub_head, sizeof(pub_head)) == 0) {
        if (memcmp(b + n - sizeof(warm_tail), warm_tail, sizeof(warm_tail)) == 0) {
            if (!p->ready) {
                p->ready = true;
                return send_atom(ctx, p->o.owner, "ready") < 0 ? GIRDER_STOP : GIRDER_CONTINUE;
            }
            return GIRDER_CONTINUE;
        }
        if (p->echo) {
            return psub_reply(ctx, p);
        }
        if (++p->n == p->msgs) {
            psub_reply(ctx, p);
            return GIRDER_STOP;
        }
        return GIRDER_CONTINUE;
    }
    return gr_testkit_is_down(msg) ? GIRDER_STOP : GIRDER_CONTINUE; /* the owner ended */
}

static const girder_behaviour psub_behaviour = {
    .name = "bench_ps_sub",
    .init = psub_init,
    .handle = psub_handle,
    .terminate = gr_testkit_owned_terminate,
};

/* Spawn count subscribers with arg [mode, owner, topic, msgs]. */
static int spawn_subs(girder_ctx *ctx, const char *mode, girder_pid owner, const char *topic,
                      uint64_t count, uint64_t msgs)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    girder_pid pid;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    gr_term_pack_cstr(&pk, mode);
    r = girder_pack_pid(ctx, &pk, owner);
    gr_term_pack_cstr(&pk, topic);
    msgpack_pack_uint64(&pk, msgs);
    arg = r == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (r < 0 || !arg) {
        return r < 0 ? r : -ENOMEM;
    }
    for (uint64_t i = 0; i < count && r == 0; i++) {
        r = girder_spawn(ctx, &psub_behaviour, arg, GIRDER_SPAWN_SPREAD, &pid, NULL);
    }
    girder_msg_unref(arg);
    return r;
}

/* bench_ps.subs(Mode, Owner, Topic, Count, Msgs) -> Count */
static int ps_subs(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    char mode[8], topic[GR_TOPIC_MAX_LEN + 1];
    girder_pid owner;
    uint64_t count, msgs;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 5 ||
        gr_term_get_str(&a[0], mode, sizeof(mode)) < 0 || girder_get_pid(ctx, &a[1], &owner) < 0 ||
        gr_term_get_str(&a[2], topic, sizeof(topic)) < 0 ||
        gr_testkit_count_arg(&a[3], SUBS_MAX, &count) < 0 ||
        gr_testkit_count_arg(&a[4], MSGS_MAX, &msgs) < 0) {
        return GR_EBADARG;
    }
    if ((r = spawn_subs(ctx, mode, owner, topic, count, msgs)) < 0) {
        return r;
    }
    gr_rpc_answer_uint(c, count);
    return GR_RPC_DONE;
}

/* ---- bcast and lat: the worker -----------------------------------------------------------------
 */

enum ps_phase {
    PS_SUBS_WAIT, /* the other nodes spawn their subscribers */
    PS_WARM,      /* publishing "warm" until every subscriber is ready */
    PS_RUN,       /* timed */
};

typedef struct psb {
    bool lat; /* lat, else bcast */
    enum ps_phase phase;
    gr_pubsub *ps;
    char topic[64];
    char nodes[NODES_MAX][GR_NODENAME_MAX + 1];
    uint64_t tags[NODES_MAX]; /* open subs calls (0: answered) */
    size_t nnodes, pending;
    uint64_t subs, local_subs, msgs, size;
    uint64_t ready, done, sent, busy;
    uint32_t pub_nodes;
    bool more;           /* a "more" to itself is on its way */
    girder_msg *warm;    /* the atom "warm" */
    girder_msg *payload; /* the bin */
    uint64_t t0_ns;
    uint64_t rts;      /* lat: round trips, warm-up included */
    uint64_t *samples; /* lat: ns each */
} psb;

static void psb_free(void *priv)
{
    psb *b = priv;

    girder_msg_unref(b->warm);
    girder_msg_unref(b->payload);
    free(b->samples);
    free(b);
}

static int publish(girder_ctx *ctx, psb *b, const girder_msg *m)
{
    gr_pub_result res;
    int r = gr_pubsub_publish(b->ps, ctx, b->topic, strlen(b->topic), m, &res);

    if (r == GR_PUBSUB_BUSY) {
        b->busy++;
        r = 0;
    }
    if (res.nodes > b->pub_nodes) {
        b->pub_nodes = res.nodes;
    }
    return r;
}

static int warm_tick(girder_ctx *ctx, psb *b)
{
    girder_msg *m = girder_msg_atom("tick");
    int r;

    if ((r = publish(ctx, b, b->warm)) < 0) {
        girder_msg_unref(m);
        return r;
    }
    if (!m) {
        return -ENOMEM;
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), WARM_TICK_MS, m, NULL)) < 0) {
        girder_msg_unref(m);
        return r;
    }
    return GR_RPC_WAIT;
}

/* bcast: publish until all are sent, at most STREAM_BURST this turn. */
static int bcast_fill(girder_ctx *ctx, psb *b)
{
    unsigned n = 0;
    int r;

    while (b->sent < b->msgs) {
        if (n++ == STREAM_BURST) {
            return (r = gr_testkit_more(ctx, &b->more)) < 0 ? r : GR_RPC_WAIT;
        }
        if ((r = publish(ctx, b, b->payload)) < 0) {
            return r;
        }
        b->sent++;
    }
    return GR_RPC_WAIT;
}

static int bcast_result(gr_rpc_call *c, psb *b)
{
    uint64_t ns = gr_rpc_now_ns() - b->t0_ns;
    double s = (double)ns / 1e9, deliveries = (double)b->subs * (double)b->msgs;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    gr_term_pack_cstr(&pk, "subs");
    msgpack_pack_uint64(&pk, b->subs);
    gr_term_pack_cstr(&pk, "local_subs");
    msgpack_pack_uint64(&pk, b->local_subs);
    gr_term_pack_cstr(&pk, "msgs");
    msgpack_pack_uint64(&pk, b->msgs);
    gr_term_pack_cstr(&pk, "size");
    msgpack_pack_uint64(&pk, b->size);
    gr_term_pack_cstr(&pk, "deliveries");
    msgpack_pack_uint64(&pk, b->subs * b->msgs);
    gr_term_pack_cstr(&pk, "seconds");
    msgpack_pack_double(&pk, s);
    gr_term_pack_cstr(&pk, "deliveries_per_s");
    msgpack_pack_double(&pk, deliveries / s);
    gr_term_pack_cstr(&pk, "busy");
    msgpack_pack_uint64(&pk, b->busy);
    gr_term_pack_cstr(&pk, "nodes");
    msgpack_pack_uint64(&pk, b->pub_nodes);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

static int lat_ping(girder_ctx *ctx, psb *b)
{
    b->t0_ns = gr_rpc_now_ns();
    return publish(ctx, b, b->payload) < 0 ? -ENOMEM : GR_RPC_WAIT;
}

/* Every subscriber is ready: start the clock. */
static int psb_start(girder_ctx *ctx, psb *b)
{
    b->phase = PS_RUN;
    if (b->lat) {
        return lat_ping(ctx, b);
    }
    b->t0_ns = gr_rpc_now_ns();
    return bcast_fill(ctx, b);
}

/* Ask each node for its share: bench_ps.subs(Mode, Self, Topic, Count, Msgs). */
static int ask_subs(gr_rpc_call *c, girder_ctx *ctx, psb *b, uint64_t per_node)
{
    for (size_t i = 0; i < b->nnodes; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        uint64_t count = per_node;
        int r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 5);
        gr_term_pack_cstr(&pk, b->lat ? "echo" : "count");
        r = girder_pack_pid(ctx, &pk, girder_self(ctx));
        gr_term_pack_cstr(&pk, b->topic);
        msgpack_pack_uint64(&pk, count);
        msgpack_pack_uint64(&pk, b->msgs);
        b->tags[i] = gr_rpc_next_tag(c);
        if (r == 0) {
            r = gr_dist_call(gr_rpc_call_dist(c), b->nodes[i], "bench_ps", "subs", sb.data, sb.size,
                             CALL_TIMEOUT_MS, girder_self(ctx), b->tags[i]);
        }
        msgpack_sbuffer_destroy(&sb);
        if (r < 0) {
            return r;
        }
        b->pending++;
    }
    return GR_RPC_WAIT;
}

/* Common setup: the pubsub, a fresh topic, the payload. */
static int psb_new(gr_rpc_call *c, girder_ctx *ctx, bool lat, psb **ret)
{
    static const char *const kind[] = {"bc", "lat"};
    psb *b = calloc(1, sizeof(*b));

    if (!b) {
        return -ENOMEM;
    }
    c->priv = b;
    c->priv_free = psb_free;
    b->lat = lat;
    if (!(b->ps = gr_pubsub_of(girder_runtime(ctx)))) {
        return GR_EBADARG;
    }
    if (!gr_rpc_call_dist(c)) {
        return GR_ENOCONN;
    }
    snprintf(b->topic, sizeof(b->topic), "bench.%s.%llu.%llu", kind[lat],
             (unsigned long long)girder_self(ctx).id, (unsigned long long)gr_rpc_now_ns());
    if (!(b->warm = girder_msg_atom("warm"))) {
        return -ENOMEM;
    }
    *ret = b;
    return 0;
}

/* A node name (not this node's) into buf. */
static int get_node(girder_ctx *ctx, const msgpack_object *o, char *buf)
{
    if (gr_term_get_str(o, buf, GR_NODENAME_MAX + 1) < 0 ||
        gr_nodename_check(buf, strlen(buf)) < 0 ||
        strcmp(buf, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        return GR_EBADARG;
    }
    return 0;
}

/* bench_ps.bcast(Nodes, Subs, Msgs, Size) */
static int ps_bcast(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    uint64_t per_node;
    psb *b;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 4 ||
        a[0].type != MSGPACK_OBJECT_ARRAY || a[0].via.array.size > NODES_MAX) {
        return GR_EBADARG;
    }
    if ((r = psb_new(c, ctx, false, &b)) < 0) {
        return r;
    }
    b->nnodes = a[0].via.array.size;
    for (size_t i = 0; i < b->nnodes; i++) {
        if (get_node(ctx, &a[0].via.array.ptr[i], b->nodes[i]) < 0) {
            return GR_EBADARG;
        }
    }
    if (gr_testkit_count_arg(&a[1], SUBS_MAX, &b->subs) < 0 ||
        gr_testkit_count_arg(&a[2], MSGS_MAX, &b->msgs) < 0 ||
        gr_testkit_count_arg(&a[3], SIZE_MAX_BYTES, &b->size) < 0 || b->subs < b->nnodes + 1) {
        return GR_EBADARG;
    }
    if (!(b->payload = bin_msg(b->size))) {
        return -ENOMEM;
    }
    per_node = b->subs / (b->nnodes + 1);
    b->local_subs = b->subs - per_node * b->nnodes; /* per_node on each other node, the rest here */
    if ((r = spawn_subs(ctx, "count", girder_self(ctx), b->topic, b->local_subs, b->msgs)) < 0) {
        return r;
    }
    b->phase = PS_SUBS_WAIT;
    if (b->nnodes == 0) {
        b->phase = PS_WARM;
        return warm_tick(ctx, b);
    }
    return ask_subs(c, ctx, b, per_node);
}

/* bench_ps.lat(Node, Count) */
static int ps_lat(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    psb *b;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2) {
        return GR_EBADARG;
    }
    if ((r = psb_new(c, ctx, true, &b)) < 0) {
        return r;
    }
    b->nnodes = 1;
    if (get_node(ctx, &a[0], b->nodes[0]) < 0 ||
        gr_testkit_count_arg(&a[1], LAT_COUNT_MAX, &b->msgs) < 0) {
        return GR_EBADARG;
    }
    b->subs = 1;
    if (!(b->samples = calloc(b->msgs, sizeof(uint64_t))) || !(b->payload = bin_msg(16))) {
        return -ENOMEM;
    }
    b->phase = PS_SUBS_WAIT;
    return ask_subs(c, ctx, b, 1);
}

static int psb_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    psb *b = c->priv;
    uint64_t now = gr_rpc_now_ns(), tag;
    const msgpack_object *x;
    int status;

    if (b->phase == PS_RUN && b->lat && gr_term_is_str(msg, "pong")) {
        if (b->rts >= LAT_WARMUP) {
            b->samples[b->rts - LAT_WARMUP] = now - b->t0_ns;
        }
        if (++b->rts < LAT_WARMUP + b->msgs) {
            return lat_ping(ctx, b);
        }
        return gr_testkit_answer_stats(c, b->samples, b->msgs);
    }
    if (b->phase == PS_RUN && gr_term_is_str(msg, "done")) {
        return ++b->done == b->subs ? bcast_result(c, b) : GR_RPC_WAIT;
    }
    if (b->phase == PS_RUN && gr_term_is_str(msg, "more")) {
        b->more = false;
        return bcast_fill(ctx, b);
    }
    if (b->phase == PS_WARM && gr_term_is_str(msg, "ready")) {
        return ++b->ready == b->subs ? psb_start(ctx, b) : GR_RPC_WAIT;
    }
    if (b->phase == PS_WARM && gr_term_is_str(msg, "tick")) {
        return warm_tick(ctx, b);
    }
    if (b->phase == PS_SUBS_WAIT && gr_term_parse_rpc_answer(msg, &tag, &status, &x) == 0) {
        for (size_t i = 0; i < b->nnodes; i++) {
            if (b->tags[i] == tag && tag != 0) {
                if (status < 0) {
                    return status;
                }
                b->tags[i] = 0;
                if (--b->pending == 0) {
                    b->phase = PS_WARM;
                    return warm_tick(ctx, b);
                }
            }
        }
    }
    return GR_RPC_WAIT;
}

/* ---- global names ------------------------------------------------------------------------------
 */

typedef struct pglob {
    char nodes[NODES_MAX][GR_NODENAME_MAX + 1];
    size_t nnodes, next; /* the node being asked */
    uint64_t count;
    uint64_t t0_ns, reg_ns, where_ns;
    char last[64];
} pglob;

static void name_of(char *buf, size_t cap, girder_ctx *ctx, uint64_t nonce, uint64_t i)
{
    snprintf(buf, cap, "bg.%llu.%llu.%llu", (unsigned long long)girder_self(ctx).id,
             (unsigned long long)nonce, (unsigned long long)i);
}

static int glob_ask(gr_rpc_call *c, girder_ctx *ctx, pglob *g)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    gr_term_pack_cstr(&pk, g->last);
    r = gr_dist_call(gr_rpc_call_dist(c), g->nodes[g->next], "pubsub", "whereis", sb.data, sb.size,
                     CALL_TIMEOUT_MS, girder_self(ctx), gr_rpc_next_tag(c));
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : GR_RPC_WAIT;
}

static int glob_result(gr_rpc_call *c, pglob *g, uint64_t visible_ns)
{
    double rs = (double)g->reg_ns / 1e9, ws = (double)g->where_ns / 1e9;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    gr_term_pack_cstr(&pk, "count");
    msgpack_pack_uint64(&pk, g->count);
    gr_term_pack_cstr(&pk, "reg_s");
    msgpack_pack_double(&pk, rs);
    gr_term_pack_cstr(&pk, "reg_per_s");
    msgpack_pack_double(&pk, (double)g->count / rs);
    gr_term_pack_cstr(&pk, "whereis_s");
    msgpack_pack_double(&pk, ws);
    gr_term_pack_cstr(&pk, "whereis_per_s");
    msgpack_pack_double(&pk, (double)g->count / ws);
    gr_term_pack_cstr(&pk, "visible_ms");
    msgpack_pack_double(&pk, (double)visible_ns / 1e6);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

/* bench_ps.global(Count, Nodes) */
static int ps_global(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    char name[64];
    uint64_t nonce = gr_rpc_now_ns(), t1;
    girder_pid self = girder_self(ctx), pid;
    pglob *g;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2 ||
        a[1].type != MSGPACK_OBJECT_ARRAY || a[1].via.array.size > NODES_MAX) {
        return GR_EBADARG;
    }
    if (!(g = calloc(1, sizeof(*g)))) {
        return -ENOMEM;
    }
    c->priv = g;
    if (gr_testkit_count_arg(&a[0], GLOBAL_MAX, &g->count) < 0) {
        return GR_EBADARG;
    }
    g->nnodes = a[1].via.array.size;
    for (size_t i = 0; i < g->nnodes; i++) {
        if (get_node(ctx, &a[1].via.array.ptr[i], g->nodes[i]) < 0) {
            return GR_EBADARG;
        }
    }
    if (g->nnodes && !gr_rpc_call_dist(c)) {
        return GR_ENOCONN;
    }
    g->t0_ns = gr_rpc_now_ns();
    for (uint64_t i = 0; i < g->count; i++) {
        name_of(name, sizeof(name), ctx, nonce, i);
        if ((r = girder_global_register(ctx, name, self)) < 0) {
            return r;
        }
    }
    t1 = gr_rpc_now_ns();
    g->reg_ns = t1 - g->t0_ns;
    for (uint64_t i = 0; i < g->count; i++) {
        name_of(name, sizeof(name), ctx, nonce, i);
        if ((r = girder_global_whereis(ctx, name, &pid)) < 0) {
            return r;
        }
        if (!girder_pid_eq(pid, self)) {
            return GR_EBADTERM;
        }
    }
    g->where_ns = gr_rpc_now_ns() - t1;
    name_of(g->last, sizeof(g->last), ctx, nonce, g->count - 1);
    if (g->nnodes == 0) {
        return glob_result(c, g, 0);
    }
    return glob_ask(c, ctx, g);
}

static int glob_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    pglob *g = c->priv;
    const msgpack_object *x;
    uint64_t tag;
    int status;

    if (gr_term_parse_rpc_answer(msg, &tag, &status, &x) < 0 || tag != c->tag) {
        return GR_RPC_WAIT;
    }
    if (status == 0 && ++g->next == g->nnodes) {
        return glob_result(c, g, gr_rpc_now_ns() - g->t0_ns);
    }
    if (status < 0 && status != GR_ENONAME && status != -ENOENT) {
        return status;
    }
    return glob_ask(c, ctx, g); /* the same node again (not there yet) or the next */
}

/* ---- local ping-pong against a behaviour named by the caller -----------------------------------
 */

/* The ponger: arg is the owner's pid; "ping" -> "pong" to the owner. The
 * plugin bench/ports/bench_plugin.c has the same one behind the API table. */
typedef struct ponger {
    gr_testkit_owned o; /* reply: the shared "pong" */
} ponger;

static int ponger_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_unpacked up;
    ponger *p;
    int r = GR_EBADARG;

    if (!arg || !(p = calloc(1, sizeof(*p)))) {
        return arg ? -ENOMEM : GR_EBADARG;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(arg, &up) == 0 && girder_get_pid(ctx, &up.data, &p->o.owner) == 0) {
        r = (p->o.reply = girder_msg_atom("pong")) ? 0 : -ENOMEM;
    }
    msgpack_unpacked_destroy(&up);
    return gr_testkit_owned_start(ctx, r, false, p, ret_state);
}

static int ponger_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    ponger *p = state;

    if (girder_msg_is_atom(msg, "ping")) {
        return gr_testkit_owned_reply(ctx, &p->o) < 0 ? GIRDER_STOP : GIRDER_CONTINUE;
    }
    return girder_msg_is_atom(msg, "stop") ? GIRDER_STOP : GIRDER_CONTINUE;
}

const girder_behaviour gr_testkit_ponger_behaviour = {
    .name = "bench_ponger",
    .init = ponger_init,
    .handle = ponger_handle,
    .terminate = gr_testkit_owned_terminate,
};

typedef struct ppb {
    girder_pid peer;
    girder_ref mref;
    girder_msg *ping;
    uint64_t count, done;
    uint64_t t0_ns;
    uint64_t start_ns; /* port: the first timed send */
    bool port;         /* port, else pp */
    uint64_t window;   /* port: in flight at most */
    uint64_t sent;     /* port: messages sent, warm-up included */
    uint64_t *samples;
} ppb;

static void ppb_free(void *priv)
{
    ppb *b = priv;

    girder_msg_unref(b->ping);
    free(b->samples);
    free(b);
}

static int ppb_send(girder_ctx *ctx, ppb *b)
{
    int r;

    girder_msg_ref(b->ping);
    if ((r = girder_send(ctx, b->peer, b->ping)) < 0) {
        girder_msg_unref(b->ping);
    }
    return r;
}

/* bench_ps.pp(Behaviour, Count) */
static int ps_pp(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    char beh[64];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    ppb *b;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2 ||
        gr_term_get_str(&a[0], beh, sizeof(beh)) < 0) {
        return GR_EBADARG;
    }
    if (!(b = calloc(1, sizeof(*b)))) {
        return -ENOMEM;
    }
    c->priv = b;
    c->priv_free = ppb_free;
    if (gr_testkit_count_arg(&a[1], MSGS_MAX, &b->count) < 0) {
        return GR_EBADARG;
    }
    if (!(b->ping = girder_msg_atom("ping"))) {
        return -ENOMEM;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = girder_pack_pid(ctx, &pk, girder_self(ctx));
    arg = r == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (!arg) {
        return r < 0 ? r : -ENOMEM;
    }
    /* on this scheduler, as the local ping-pong of bench/run */
    r = girder_spawn_named(ctx, beh, arg, GIRDER_SPAWN_LINK, &b->peer, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    return ppb_send(ctx, b) < 0 ? GR_ENOPROC : GR_RPC_WAIT;
}

static int pp_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    ppb *b = c->priv;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    double s;

    if (!gr_term_is_str(msg, "pong")) {
        return GR_RPC_WAIT;
    }
    if (++b->done == LAT_WARMUP) {
        b->t0_ns = gr_rpc_now_ns();
    }
    if (b->done < LAT_WARMUP + b->count) {
        return ppb_send(ctx, b) < 0 ? GR_ENOPROC : GR_RPC_WAIT;
    }
    s = (double)(gr_rpc_now_ns() - b->t0_ns) / 1e9;
    send_atom(ctx, b->peer, "stop");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    gr_term_pack_cstr(&pk, "count");
    msgpack_pack_uint64(&pk, b->count);
    gr_term_pack_cstr(&pk, "seconds");
    msgpack_pack_double(&pk, s);
    gr_term_pack_cstr(&pk, "rt_per_s");
    msgpack_pack_double(&pk, (double)b->count / s);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

/* ---- a port echo --------------------------------------------------------------------------------
 */

/* bench_ps.port(Cmd, Count, Window, Size) */
static int ps_port(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    uint64_t size;
    uint8_t *body;
    ppb *b;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 4 ||
        a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size == 0 || a[0].via.str.size > 4096) {
        return GR_EBADARG;
    }
    if (!(b = calloc(1, sizeof(*b)))) {
        return -ENOMEM;
    }
    c->priv = b;
    c->priv_free = ppb_free;
    b->port = true;
    if (gr_testkit_count_arg(&a[1], MSGS_MAX, &b->count) < 0 ||
        gr_testkit_count_arg(&a[2], PORT_WINDOW_MAX, &b->window) < 0 ||
        gr_testkit_count_arg(&a[3], SIZE_MAX_BYTES, &size) < 0) {
        return GR_EBADARG;
    }
    if (b->window == 1 && !(b->samples = calloc(b->count, sizeof(uint64_t)))) {
        return -ENOMEM;
    }
    /* the spawn argument {"cmd": Cmd, "args": ["girder"]} */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    gr_term_pack_cstr(&pk, "cmd");
    msgpack_pack_object(&pk, a[0]);
    gr_term_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 1);
    gr_term_pack_cstr(&pk, "girder");
    arg = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_clear(&sb);
    /* the message [Self, Bin], built once and shared */
    msgpack_pack_array(&pk, 2);
    r = girder_pack_pid(ctx, &pk, girder_self(ctx));
    body = calloc(1, size);
    if (r == 0 && body && msgpack_pack_bin(&pk, size) == 0 &&
        msgpack_pack_bin_body(&pk, body, size) == 0) {
        b->ping = girder_msg_new(sb.data, sb.size);
    }
    free(body);
    msgpack_sbuffer_destroy(&sb);
    if (!arg || !b->ping) {
        girder_msg_unref(arg);
        return r < 0 ? r : -ENOMEM;
    }
    /* linked: the port ends (and its program with it) when this call does */
    r = girder_spawn_named(ctx, "port", arg, GIRDER_SPAWN_LINK, &b->peer, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    if ((r = girder_monitor(ctx, b->peer, &b->mref)) < 0) {
        return r;
    }
    b->sent = 1;
    return ppb_send(ctx, b) < 0 ? GR_ENOPROC : GR_RPC_WAIT;
}

static int port_result(gr_rpc_call *c, girder_ctx *ctx, ppb *b)
{
    uint64_t ns = gr_rpc_now_ns() - b->start_ns;
    double s = (double)ns / 1e9;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *why = girder_msg_atom("shutdown");

    /* a normal exit of the linked worker would not end the port: stop it */
    if (why) {
        girder_exit(ctx, b->peer, why);
        girder_msg_unref(why);
    }

    if (b->samples) {
        qsort(b->samples, b->count, sizeof(uint64_t), gr_testkit_cmp_u64);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, b->samples ? 6 : 4);
    gr_term_pack_cstr(&pk, "count");
    msgpack_pack_uint64(&pk, b->count);
    gr_term_pack_cstr(&pk, "window");
    msgpack_pack_uint64(&pk, b->window);
    gr_term_pack_cstr(&pk, "seconds");
    msgpack_pack_double(&pk, s);
    gr_term_pack_cstr(&pk, "msgs_per_s");
    msgpack_pack_double(&pk, (double)b->count / s);
    if (b->samples) {
        gr_testkit_pack_us(&pk, "median_us", b->samples[b->count / 2]);
        gr_testkit_pack_us(&pk, "p99_us", b->samples[b->count * 99 / 100]);
    }
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

static int port_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    ppb *b = c->priv;
    const msgpack_object *a = msg->via.array.ptr;
    uint64_t now = 0, total = LAT_WARMUP + b->count;
    girder_ref ref;

    if (msg->type == MSGPACK_OBJECT_BIN) {
        b->done++;
        if (b->done < LAT_WARMUP) {
            b->sent++;
            return ppb_send(ctx, b) < 0 ? GR_ENOPROC : GR_RPC_WAIT;
        }
        /* The clock is read where a figure needs it (the start, each timed
         * round trip; port_result reads the end), not per windowed echo:
         * the Erlang side reads it at the start and the end only. */
        if (b->done == LAT_WARMUP || b->samples) {
            now = gr_rpc_now_ns();
        }
        if (b->done == LAT_WARMUP) {
            b->t0_ns = b->start_ns = now; /* warm: the clock starts with the first timed send */
        } else if (b->samples) {
            b->samples[b->done - LAT_WARMUP - 1] = now - b->t0_ns;
        }
        if (b->done == total) {
            return port_result(c, ctx, b);
        }
        if (b->samples) {
            b->t0_ns = now;
            b->sent++;
            return ppb_send(ctx, b) < 0 ? GR_ENOPROC : GR_RPC_WAIT;
        }
        /* windowed: keep window in flight */
        while (b->sent < total && b->sent - b->done < b->window) {
            if (ppb_send(ctx, b) < 0) {
                return GR_ENOPROC;
            }
            b->sent++;
        }
        return GR_RPC_WAIT;
    }
    if (gr_testkit_is_tagged(msg, "DOWN") && msg->via.array.size == 5 &&
        girder_get_ref(ctx, &a[1], &ref) == 0 && girder_ref_eq(ref, b->mref)) {
        return GR_ENOPROC;
    }
    return GR_RPC_WAIT;
}

/* ---- flood: one slow subscriber ------------------------------------------------------------- */

typedef struct pslow {
    girder_pid owner; /* the flood's worker: its DOWN stops us */
    uint64_t slow_ns; /* asleep per message ... */
    uint64_t end_ns;  /* ... until then (gr_rpc_now_ns) */
} pslow;

/* arg: [Owner, Topic, SlowMs, MaxMsgs, MaxBytes, EndNs] */
static int pslow_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_pubsub *ps = gr_pubsub_of(girder_runtime(ctx));
    gr_sub_opts opts = {.policy = GR_SUB_DROP};
    msgpack_unpacked up;
    const msgpack_object *a;
    girder_ref mref;
    pslow *p;
    int r = GR_EBADARG;

    if (!arg || !ps || !(p = calloc(1, sizeof(*p)))) {
        return arg && ps ? -ENOMEM : GR_EBADARG;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(arg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 6) {
        a = up.data.via.array.ptr;
        if (girder_get_pid(ctx, &a[0], &p->owner) == 0 && a[1].type == MSGPACK_OBJECT_STR &&
            a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[3].via.u64 <= UINT32_MAX &&
            a[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            a[5].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            p->slow_ns = a[2].via.u64 * 1000000u;
            opts.max_msgs = (uint32_t)a[3].via.u64;
            opts.max_bytes = a[4].via.u64;
            p->end_ns = a[5].via.u64;
            r = gr_pubsub_subscribe(ps, girder_self(ctx), a[1].via.str.ptr, a[1].via.str.size,
                                    &opts);
        }
    }
    msgpack_unpacked_destroy(&up);
    if (r == 0) {
        r = girder_monitor(ctx, p->owner, &mref);
    }
    if (r < 0) {
        free(p);
        return r;
    }
    *ret_state = p;
    return 0;
}

static int pslow_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    static const uint8_t pub_head[] = {0x93, 0xa4, '$', 'p', 'u', 'b'};
    pslow *p = state;
    msgpack_unpacked up;
    bool stop;

    if (girder_msg_size(msg) > sizeof(pub_head) &&
        memcmp(girder_msg_data(msg), pub_head, sizeof(pub_head)) == 0) {
        if (gr_rpc_now_ns() < p->end_ns) {
            /* a consumer that cannot keep up (blocks its scheduler meanwhile:
             * a test kit behaviour, never a model to follow) */
            struct timespec ts = {(time_t)(p->slow_ns / 1000000000u),
                                  (long)(p->slow_ns % 1000000000u)};

            nanosleep(&ts, NULL);
        }
        return GIRDER_CONTINUE;
    }
    msgpack_unpacked_init(&up);
    stop = girder_msg_unpack(msg, &up) == 0 &&
           gr_testkit_is_tagged(&up.data, "DOWN"); /* the owner ended */
    msgpack_unpacked_destroy(&up);
    return stop ? GIRDER_STOP : GIRDER_CONTINUE;
}

static void pslow_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    (void)ctx;
    (void)reason;
    free(state);
}

static const girder_behaviour pslow_behaviour = {
    .name = "bench_ps_slow",
    .init = pslow_init,
    .handle = pslow_handle,
    .terminate = pslow_terminate,
};

/* ---- flood: the publisher thread and the worker --------------------------------------------- */

/* The publisher is a thread of its own (gr_pubsub_publish from any thread),
 * so the sleeping subscriber, which blocks its scheduler, never shares one
 * with it. The worker only starts it, waits for ["$flood_done"] and answers. */
typedef struct pfl {
    girder_rt *rt;
    gr_pubsub *ps;
    girder_pid worker; /* gets ["$flood_done"] */
    char topic[GR_TOPIC_MAX_LEN + 1];
    girder_msg *payload; /* the bin */
    pthread_t thread;
    bool started;
    atomic_bool stop; /* pfl_free asks the thread to end */
    int err;          /* the thread's first publish error */
    uint64_t t0_ns, end_ns, done_ns;
    uint64_t published, busy, dropped, first_busy, first_drop, deferred;
} pfl;

static void *flood_thread(void *arg)
{
    pfl *f = arg;
    girder_msg *done;

    while (!atomic_load(&f->stop) && gr_rpc_now_ns() < f->end_ns) {
        bool busy = false;

        for (unsigned i = 0; i < STREAM_BURST; i++) {
            gr_pub_result res = {0};
            int r = gr_pubsub_publish(f->ps, NULL, f->topic, strlen(f->topic), f->payload, &res);

            if (r < 0) {
                f->err = r;
                goto out;
            }
            f->published++;
            if (res.dropped > 0) {
                f->dropped += res.dropped;
                f->first_drop = f->first_drop ? f->first_drop : f->published;
            }
            if (r == GR_PUBSUB_BUSY) {
                f->busy++;
                f->first_busy = f->first_busy ? f->first_busy : f->published;
                busy = true;
            }
        }
        if (busy) { /* slowed by the backpressure signal */
            struct timespec ts = {0, 1000000};

            f->deferred++;
            nanosleep(&ts, NULL);
        }
    }
out:
    f->done_ns = gr_rpc_now_ns();
    if ((done = girder_msg_atom("$flood_done")) != NULL && gr_rt_send(f->rt, f->worker, done) < 0) {
        girder_msg_unref(done);
    }
    return NULL;
}

static void pfl_free(void *priv)
{
    pfl *f = priv;

    if (f->started) {
        atomic_store(&f->stop, true);
        pthread_join(f->thread, NULL);
    }
    girder_msg_unref(f->payload);
    free(f);
}

static int flood_result(gr_rpc_call *c, pfl *f)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    pthread_join(f->thread, NULL);
    f->started = false;
    if (f->err < 0) {
        return f->err;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    gr_term_pack_cstr(&pk, "published");
    msgpack_pack_uint64(&pk, f->published);
    gr_term_pack_cstr(&pk, "busy");
    msgpack_pack_uint64(&pk, f->busy);
    gr_term_pack_cstr(&pk, "dropped");
    msgpack_pack_uint64(&pk, f->dropped);
    gr_term_pack_cstr(&pk, "first_busy");
    msgpack_pack_uint64(&pk, f->first_busy);
    gr_term_pack_cstr(&pk, "first_drop");
    msgpack_pack_uint64(&pk, f->first_drop);
    gr_term_pack_cstr(&pk, "deferred");
    msgpack_pack_uint64(&pk, f->deferred);
    gr_term_pack_cstr(&pk, "seconds");
    msgpack_pack_double(&pk, (double)(f->done_ns - f->t0_ns) / 1e9);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

/* bench_ps.flood(Topic, Seconds, Size, SlowMs, MaxMsgs, MaxBytes) */
static int ps_flood(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    uint64_t secs, size, slow_ms, max_msgs, max_bytes;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    girder_pid pid;
    pfl *f;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 6 ||
        gr_testkit_count_arg(&a[1], 3600, &secs) < 0 ||
        gr_testkit_count_arg(&a[2], SIZE_MAX_BYTES, &size) < 0 ||
        gr_testkit_count_arg(&a[3], 10000, &slow_ms) < 0 ||
        gr_testkit_count_arg(&a[4], UINT32_MAX, &max_msgs) < 0 ||
        gr_testkit_count_arg(&a[5], 1ull << 32, &max_bytes) < 0) {
        return GR_EBADARG;
    }
    if (!(f = calloc(1, sizeof(*f)))) {
        return -ENOMEM;
    }
    c->priv = f;
    c->priv_free = pfl_free;
    atomic_init(&f->stop, false);
    f->rt = girder_runtime(ctx);
    f->worker = girder_self(ctx);
    if (gr_term_get_str(&a[0], f->topic, sizeof(f->topic)) < 0 ||
        gr_topic_check(f->topic, strlen(f->topic), false) != GR_TOPIC_OK ||
        !(f->ps = gr_pubsub_of(f->rt))) {
        return GR_EBADARG;
    }
    if (!(f->payload = bin_msg(size))) {
        return -ENOMEM;
    }
    f->t0_ns = gr_rpc_now_ns();
    f->end_ns = f->t0_ns + secs * 1000000000u;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    r = girder_pack_pid(ctx, &pk, girder_self(ctx));
    msgpack_pack_object(&pk, a[0]);
    msgpack_pack_uint64(&pk, slow_ms);
    msgpack_pack_uint64(&pk, max_msgs);
    msgpack_pack_uint64(&pk, max_bytes);
    msgpack_pack_uint64(&pk, f->end_ns);
    arg = r == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (r < 0 || !arg) {
        return r < 0 ? r : -ENOMEM;
    }
    /* subscribed by its init, before spawn returns */
    r = girder_spawn(ctx, &pslow_behaviour, arg, 0, &pid, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    if ((r = pthread_create(&f->thread, NULL, flood_thread, f)) != 0) {
        return -r;
    }
    f->started = true;
    return GR_RPC_WAIT;
}

static int flood_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    (void)ctx;
    if (gr_term_is_str(msg, "$flood_done")) {
        return flood_result(c, c->priv);
    }
    return GR_RPC_WAIT;
}

static const gr_rpc_fn_def bench_ps_fns[] = {
    {"bcast", ps_bcast, psb_msg, NULL},    {"lat", ps_lat, psb_msg, NULL},
    {"global", ps_global, glob_msg, NULL}, {"subs", ps_subs, NULL, NULL},
    {"pp", ps_pp, pp_msg, NULL},           {"port", ps_port, port_msg, NULL},
    {"flood", ps_flood, flood_msg, NULL},
};

const gr_rpc_module gr_testkit_mod_bench_ps = {"bench_ps", bench_ps_fns,
                                               sizeof(bench_ps_fns) / sizeof(bench_ps_fns[0])};
