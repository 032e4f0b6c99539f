/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_bench.c - rpc module `bench`: process messaging between two nodes,
 * measured inside the daemon (bench/run's network section).
 *
 *   bench.pingpong(Node, Count)
 *       -> {"count", "median_us", "p99_us", "mean_us", "min_us", "max_us"}:
 *          an echo process is spawned on Node; this call's worker bounces the
 *          atom "ping" off it ("pong" back) Count times after WARMUP untimed
 *          rounds, one message in flight, each round trip timed.
 *   bench.stream(Node, Count, Size[, Window])
 *       -> {"count", "bytes", "seconds", "msgs_per_s", "mb_per_s", "window"}:
 *          a sink process is spawned on Node; this call's worker sends it Count
 *          messages, each a msgpack bin of Size bytes (one shared buffer). The
 *          clock runs from the first send until the worker holds the sink's
 *          final ack (sent once the sink has counted all Count). mb_per_s is
 *          10^6 payload bytes per second.
 *   bench.peer(Kind, Owner, Count, AckEvery) -> Pid
 *          (used by the two above, on the other node) spawn the "echo" or
 *          "sink" peer for Owner, a pid on the calling node.
 *
 * Design notes
 * - No behaviour registration is needed: bench.peer spawns the peer with
 *   girder_spawn and the behaviour's address. The calling worker gets the pid
 *   in the answer of its gr_dist_call and monitors it (a dead peer or node
 *   ends the benchmark with noproc / noconnection instead of a timeout).
 * - The peer monitors its owner: when the owner (the worker on the first
 *   node) ends, for any reason, or its node goes away, the peer gets the DOWN
 *   and stops. (Monitors, not a link: a link would also kill the worker before
 *   it could answer when the peer's node dies.)
 * - Pacing: a remote link with more than 64 MiB unsent output is closed as
 *   overloaded (docs/cluster.md), so the stream sender keeps at most Window
 *   messages unacknowledged; the sink acks every Window/4 messages and at the
 *   last. The default window holds about WINDOW_BYTES of payload.
 *
 * Owning thread: the calls run in their worker processes; the peer in its own
 * process. One scheduler each.
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_MAX 100000000u
#define PINGPONG_COUNT_MAX 1000000u
#define WARMUP 1000u                   /* untimed round trips before pingpong */
#define SIZE_MAX_BYTES (4u << 20)      /* a frame is at most 8 MiB */
#define WINDOW_BYTES (8u << 20)        /* default unacknowledged payload */
#define WINDOW_MSGS_MAX 65536u         /* default window, in messages, at most */
#define PEER_TIMEOUT_MS 5000

/* ---- helpers -------------------------------------------------------------------------------- */

/* A positive integer in 1..max, or GR_EBADARG. */
static int get_count(const msgpack_object *o, uint64_t max, uint64_t *ret)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 == 0 || o->via.u64 > max) {
        return GR_EBADARG;
    }
    *ret = o->via.u64;
    return 0;
}

/* Is msg the array [s, ...]? */
static bool is_tagged(const msgpack_object *msg, const char *s)
{
    return msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size >= 1 &&
           gr_term_is_str(&msg->via.array.ptr[0], s);
}

/* ---- the peer: echo or sink on the other node ------------------------------------------------ */

typedef struct peer {
    girder_pid owner;
    bool sink;
    uint64_t count, ack_every, n;
    girder_msg *pong; /* echo: the shared reply */
} peer;

static int peer_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_unpacked up;
    const msgpack_object *a;
    peer *p;
    int r = GR_EBADARG;

    if (!arg || !(p = calloc(1, sizeof(*p)))) {
        return arg ? -ENOMEM : GR_EBADARG;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(arg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 4) {
        a = up.data.via.array.ptr;
        p->sink = gr_term_is_str(&a[0], "sink");
        if ((p->sink || gr_term_is_str(&a[0], "echo")) &&
            girder_get_pid(ctx, &a[1], &p->owner) == 0 &&
            a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && (!p->sink || a[2].via.u64 > 0) &&
            a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            p->count = a[2].via.u64;
            p->ack_every = a[3].via.u64 ? a[3].via.u64 : 1;
            r = 0;
        }
    }
    msgpack_unpacked_destroy(&up);
    if (r == 0 && !p->sink && !(p->pong = girder_msg_atom("pong"))) {
        r = -ENOMEM;
    }
    if (r == 0) {
        girder_ref mref;

        r = girder_monitor(ctx, p->owner, &mref);
    }
    if (r < 0) {
        girder_msg_unref(p->pong);
        free(p);
        return r;
    }
    *ret_state = p;
    return 0;
}

/* Send ["ack", n] to the owner. */
static int peer_ack(girder_ctx *ctx, peer *p)
{
    uint8_t buf[16];
    girder_msg *m;
    size_t len = 0;
    int r;

    buf[len++] = 0x92; /* array of 2 */
    buf[len++] = 0xa3; /* str of 3 */
    memcpy(buf + len, "ack", 3);
    len += 3;
    buf[len++] = 0xcf; /* uint 64, big endian */
    for (int i = 7; i >= 0; i--) {
        buf[len++] = (uint8_t)(p->n >> (8 * i));
    }
    if (!(m = girder_msg_new(buf, len))) {
        return -ENOMEM;
    }
    if ((r = girder_send(ctx, p->owner, m)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static int peer_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    peer *p = state;
    const uint8_t *b = girder_msg_data(msg);
    msgpack_unpacked up;
    bool stop = false;

    if (p->sink && girder_msg_size(msg) > 0 && (b[0] == 0xc4 || b[0] == 0xc5 || b[0] == 0xc6)) {
        p->n++;
        if (p->n % p->ack_every == 0 || p->n == p->count) {
            if (peer_ack(ctx, p) < 0) {
                return GIRDER_STOP;
            }
        }
        return p->n >= p->count ? GIRDER_STOP : GIRDER_CONTINUE;
    }
    if (!p->sink && girder_msg_is_atom(msg, "ping")) {
        girder_msg_ref(p->pong);
        if (girder_send(ctx, p->owner, p->pong) < 0) {
            girder_msg_unref(p->pong);
            return GIRDER_STOP;
        }
        return GIRDER_CONTINUE;
    }
    msgpack_unpacked_init(&up);
    stop = girder_msg_unpack(msg, &up) == 0 && is_tagged(&up.data, "DOWN"); /* the owner ended */
    msgpack_unpacked_destroy(&up);
    return stop ? GIRDER_STOP : GIRDER_CONTINUE;
}

static void peer_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    peer *p = state;

    (void)ctx;
    (void)reason;
    girder_msg_unref(p->pong);
    free(p);
}

static const girder_behaviour peer_behaviour = {
    .name = "bench_peer",
    .init = peer_init,
    .handle = peer_handle,
    .terminate = peer_terminate,
};

/* bench.peer(Kind, Owner, Count, AckEvery) -> Pid */
static int bench_peer(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    girder_msg *arg;
    girder_pid pid;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 4) {
        return GR_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *args);
    arg = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!arg) {
        return -ENOMEM;
    }
    /* The peer's init checks the argument; a bad one makes it exit at once. */
    r = girder_spawn(ctx, &peer_behaviour, arg, 0, &pid, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = girder_pack_pid(ctx, &pk, pid);
    if (r == 0) {
        gr_rpc_answer(c, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : GR_RPC_DONE;
}

/* ---- the driver: this call's worker ---------------------------------------------------------- */

typedef struct bench {
    bool stream;
    bool running;          /* the peer is up */
    char node[GR_NODENAME_MAX + 1];
    girder_pid peer;
    girder_ref mref;       /* monitor on the peer */
    girder_msg *payload;   /* "ping", or the stream's bin */
    uint64_t count, size, window, ack_every;
    uint64_t sent, acked;  /* stream */
    uint64_t done;         /* pingpong: round trips, warm-up included */
    uint64_t warmup;
    uint64_t t0_ns;
    uint64_t samples[];    /* pingpong: ns per timed round trip */
} bench;

static void bench_free(void *priv)
{
    bench *b = priv;

    girder_msg_unref(b->payload);
    free(b);
}

/* Ask Node for the peer: bench.peer(Kind, Self, Count, AckEvery). */
static int ask_peer(gr_rpc_call *c, girder_ctx *ctx, bench *b)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *kind = b->stream ? "sink" : "echo";
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, kind, strlen(kind));
    r = girder_pack_pid(ctx, &pk, girder_self(ctx));
    msgpack_pack_uint64(&pk, b->stream ? b->count : 0);
    msgpack_pack_uint64(&pk, b->ack_every);
    if (r == 0) {
        r = gr_dist_call(gr_rpc_call_dist(c), b->node, "bench", "peer", sb.data, sb.size,
                         PEER_TIMEOUT_MS, girder_self(ctx), gr_rpc_next_tag(c));
    }
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : GR_RPC_WAIT;
}

/* Arguments common to both: [Node, Count, ...]. Allocates c->priv. */
static int bench_setup(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args, bool stream,
                       bench **ret)
{
    const msgpack_object *a = args->via.array.ptr;
    uint64_t count;
    bench *b;

    if (get_count(&a[1], stream ? COUNT_MAX : PINGPONG_COUNT_MAX, &count) < 0) {
        return GR_EBADARG;
    }
    if (!(b = calloc(1, sizeof(*b) + (stream ? 0 : count * sizeof(uint64_t))))) {
        return -ENOMEM;
    }
    c->priv = b;
    c->priv_free = bench_free;
    b->stream = stream;
    b->count = count;
    if (gr_rpc_get_str(&a[0], b->node, sizeof(b->node)) < 0 ||
        gr_nodename_check(b->node, strlen(b->node)) < 0 ||
        strcmp(b->node, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        return GR_EBADARG; /* a remote node: this measures the network path */
    }
    if (!gr_rpc_call_dist(c)) {
        return GR_ENOCONN;
    }
    *ret = b;
    return 0;
}

static int bench_pingpong(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    bench *b;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2) {
        return GR_EBADARG;
    }
    if ((r = bench_setup(c, ctx, args, false, &b)) < 0) {
        return r;
    }
    b->warmup = WARMUP;
    if (!(b->payload = girder_msg_atom("ping"))) {
        return -ENOMEM;
    }
    return ask_peer(c, ctx, b);
}

static int bench_stream(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const msgpack_object *a;
    uint64_t size, window = 0;
    uint8_t *body;
    bench *b;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 3 ||
        args->via.array.size > 4) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if ((r = bench_setup(c, ctx, args, true, &b)) < 0) {
        return r;
    }
    if (get_count(&a[2], SIZE_MAX_BYTES, &size) < 0 ||
        (args->via.array.size == 4 && get_count(&a[3], COUNT_MAX, &window) < 0)) {
        return GR_EBADARG;
    }
    if (!window) {
        window = WINDOW_BYTES / (size + 64);
        window = window > WINDOW_MSGS_MAX ? WINDOW_MSGS_MAX : window < 4 ? 4 : window;
    }
    b->size = size;
    b->window = window;
    b->ack_every = window / 4 ? window / 4 : 1;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    body = calloc(1, size);
    r = body ? msgpack_pack_bin(&pk, size) : -1;
    if (r == 0) {
        r = msgpack_pack_bin_body(&pk, body, size);
    }
    free(body);
    b->payload = r == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (!b->payload) {
        return -ENOMEM;
    }
    return ask_peer(c, ctx, b);
}

/* Stream: send until Window messages are unacknowledged or all are sent. */
static int stream_fill(girder_ctx *ctx, bench *b)
{
    int r;

    while (b->sent < b->count && b->sent - b->acked < b->window) {
        girder_msg_ref(b->payload);
        if ((r = girder_send(ctx, b->peer, b->payload)) < 0) {
            girder_msg_unref(b->payload);
            return r;
        }
        b->sent++;
    }
    return GR_RPC_WAIT;
}

static int ping(girder_ctx *ctx, bench *b)
{
    int r;

    girder_msg_ref(b->payload);
    b->t0_ns = gr_rpc_now_ns();
    if ((r = girder_send(ctx, b->peer, b->payload)) < 0) {
        girder_msg_unref(b->payload);
        return r;
    }
    return GR_RPC_WAIT;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;

    return p < q ? -1 : p > q;
}

static void pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void pack_us(msgpack_packer *pk, const char *k, uint64_t ns)
{
    pack_key(pk, k);
    msgpack_pack_double(pk, (double)ns / 1000.0);
}

static int pingpong_result(gr_rpc_call *c, bench *b)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t sum = 0;

    qsort(b->samples, b->count, sizeof(uint64_t), cmp_u64);
    for (uint64_t i = 0; i < b->count; i++) {
        sum += b->samples[i];
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pack_key(&pk, "count");
    msgpack_pack_uint64(&pk, b->count);
    pack_us(&pk, "median_us", b->samples[b->count / 2]);
    pack_us(&pk, "p99_us", b->samples[b->count * 99 / 100]);
    pack_us(&pk, "mean_us", sum / b->count);
    pack_us(&pk, "min_us", b->samples[0]);
    pack_us(&pk, "max_us", b->samples[b->count - 1]);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

static int stream_result(gr_rpc_call *c, bench *b, uint64_t ns)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    double s = (double)ns / 1e9, bytes = (double)b->count * (double)b->size;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pack_key(&pk, "count");
    msgpack_pack_uint64(&pk, b->count);
    pack_key(&pk, "bytes");
    msgpack_pack_uint64(&pk, b->count * b->size);
    pack_key(&pk, "seconds");
    msgpack_pack_double(&pk, s);
    pack_key(&pk, "msgs_per_s");
    msgpack_pack_double(&pk, (double)b->count / s);
    pack_key(&pk, "mb_per_s");
    msgpack_pack_double(&pk, bytes / 1e6 / s);
    pack_key(&pk, "window");
    msgpack_pack_uint64(&pk, b->window);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

/* The peer's pid arrived (["$rpc", Tag, Status, Pid]): monitor it and start. */
static int peer_up(gr_rpc_call *c, girder_ctx *ctx, bench *b, const msgpack_object *a)
{
    int r;

    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 != c->tag) {
        return GR_RPC_WAIT;
    }
    if (a[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        return (int)a[2].via.i64;
    }
    if (girder_get_pid(ctx, &a[3], &b->peer) < 0) {
        return GR_EBADTERM;
    }
    if ((r = girder_monitor(ctx, b->peer, &b->mref)) < 0) {
        return r;
    }
    b->running = true;
    if (!b->stream) {
        return ping(ctx, b);
    }
    b->t0_ns = gr_rpc_now_ns();
    return stream_fill(ctx, b);
}

static int bench_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    bench *b = c->priv;
    const msgpack_object *a = msg->via.array.ptr;
    uint64_t now = gr_rpc_now_ns();
    girder_ref ref;

    if (b->running && !b->stream && gr_term_is_str(msg, "pong")) {
        if (b->done >= b->warmup) {
            b->samples[b->done - b->warmup] = now - b->t0_ns;
        }
        if (++b->done < b->warmup + b->count) {
            return ping(ctx, b);
        }
        return pingpong_result(c, b);
    }
    if (b->running && b->stream && is_tagged(msg, "ack") && msg->via.array.size == 2 &&
        a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (a[1].via.u64 > b->acked && a[1].via.u64 <= b->sent) {
            b->acked = a[1].via.u64;
        }
        if (b->acked == b->count) {
            return stream_result(c, b, now - b->t0_ns);
        }
        return stream_fill(ctx, b);
    }
    if (!b->running && is_tagged(msg, "$rpc") && msg->via.array.size == 4) {
        return peer_up(c, ctx, b, a);
    }
    if (b->running && is_tagged(msg, "DOWN") && msg->via.array.size == 5 &&
        girder_get_ref(ctx, &a[1], &ref) == 0 && girder_ref_eq(ref, b->mref)) {
        return gr_term_is_str(&a[4], "noconnection") ? GR_ENOCONN : GR_ENOPROC;
    }
    return GR_RPC_WAIT;
}

static const gr_rpc_fn_def bench_fns[] = {
    {"pingpong", bench_pingpong, bench_msg, NULL},
    {"stream", bench_stream, bench_msg, NULL},
    {"peer", bench_peer, NULL, NULL},
};

const gr_rpc_module gr_rpc_mod_bench = {"bench", bench_fns,
                                        sizeof(bench_fns) / sizeof(bench_fns[0])};
