/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_bench.c - rpc module `bench` of the test kit (testkit.h, served by
 * girderd-testkit only): process messaging between two nodes, measured inside
 * the daemon (bench/run's network section, cluster tests l_bigmsg, o_cipher).
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
 *   bench.mixed(Node, BigBytes, Pings[, BigNode])
 *       -> {"big_bytes", "big_ms", "pings", "pings_during_big", "same_scheduler",
 *           "small_median_us", "small_p99_us", "small_max_us", "small_max_at_ms",
 *           "baseline_median_us", "baseline_p99_us", "baseline_max_us"}:
 *          small messages while a big one crosses the same link. An echo is
 *          spawned on Node, a sink on BigNode (default Node; another node
 *          gives the control case "big message on another link"). First the
 *          worker times Pings round trips with the echo (after MIXED_WARMUP
 *          untimed): the baseline. Then a forwarder process on this node
 *          sends one message of BigBytes (a msgpack bin) to the sink while
 *          the worker keeps bouncing pings off the echo; it stops at the
 *          first pong after both the sink acknowledged the big message
 *          (big_ms: from handing it to the forwarder to the ack) and at least
 *          Pings round trips were timed. small_* cover every round trip of
 *          that second phase; small_max_at_ms is when the slowest one started
 *          (after the big send); pings_during_big counts those that ended
 *          before the ack.
 *   bench.tfill(Table, Start, Count) -> {"puts", "us"}: puts the keys
 *          "key:<i>" for i in Start..Start+Count-1 (value: a 24-byte string)
 *          into the node's table Table from this worker, timed: replicated
 *          put throughput without a client round trip per put (cluster test
 *          v_repl_bench).
 *   bench.peer(Kind, Owner, Count, AckEvery) -> Pid
 *          (used by the three above, on the other node) spawn the "echo" or
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
 * - bench.mixed sends the big message from a second process (the
 *   forwarder, linked to the worker): order is kept per pair of processes, so
 *   a ping from the worker itself would rightly queue behind its own big
 *   message (docs/cluster.md, "Large messages"). The forwarder is spawned
 *   with GIRDER_SPAWN_SPREAD, so usually on another scheduler than the worker:
 *   packing the 64 MiB signal frame then does not hold the pinger's thread.
 *   The result says "same_scheduler" when it did not work out.
 * - Pacing: the stream sender keeps at most Window messages unacknowledged;
 *   the sink acks every Window/4 messages and at the last. The default window
 *   holds about WINDOW_BYTES of payload. A huge Window makes it unpaced: it
 *   then relies on the link's backpressure (a sender to a busy link is
 *   suspended after its turn, docs/cluster.md "Backpressure"), which is why
 *   it sends at most STREAM_BURST messages per turn.
 *
 * Owning thread: the calls run in their worker processes; the peer in its own
 * process. One scheduler each.
 */
#include "testkit/testkit.h"

#include "testkit/benchkit.h"

#include "proto/err.h"
#include "rpc/rpc_int.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_MAX 100000000u
#define PINGPONG_COUNT_MAX 1000000u
#define WARMUP 1000u              /* untimed round trips before pingpong */
#define SIZE_MAX_BYTES (4u << 20) /* a frame is at most 8 MiB */
#define WINDOW_BYTES (8u << 20)   /* default unacknowledged payload */
#define WINDOW_MSGS_MAX 65536u    /* default window, in messages, at most */
#define STREAM_BURST 128u         /* stream: messages sent per turn, at most */
#define PEER_TIMEOUT_MS 5000
#define MIXED_BIG_MAX (256u << 20)   /* bench.mixed: largest big message */
#define MIXED_PINGS_MAX 100000u      /* bench.mixed: Pings at most */
#define MIXED_WARMUP 200u            /* untimed round trips before the baseline */
#define MIXED_SAMPLES_MAX (1u << 20) /* loaded samples kept (the max counts all) */

/* ---- helpers -------------------------------------------------------------------------------- */

/* ---- the peer: echo or sink on the other node ------------------------------------------------ */

typedef struct peer {
    gr_testkit_owned o; /* echo: reply is the shared "pong" */
    bool sink;
    uint64_t count, ack_every, n;
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
            girder_get_pid(ctx, &a[1], &p->o.owner) == 0 &&
            a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && (!p->sink || a[2].via.u64 > 0) &&
            a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            p->count = a[2].via.u64;
            p->ack_every = a[3].via.u64 ? a[3].via.u64 : 1;
            r = 0;
        }
    }
    msgpack_unpacked_destroy(&up);
    if (r == 0 && !p->sink && !(p->o.reply = girder_msg_atom("pong"))) {
        r = -ENOMEM;
    }
    return gr_testkit_owned_start(ctx, r, true, p, ret_state);
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
    if ((r = girder_send(ctx, p->o.owner, m)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static int peer_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    peer *p = state;
    const uint8_t *b = girder_msg_data(msg);

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
        return gr_testkit_owned_reply(ctx, &p->o) < 0 ? GIRDER_STOP : GIRDER_CONTINUE;
    }
    return gr_testkit_is_down(msg) ? GIRDER_STOP : GIRDER_CONTINUE; /* the owner ended */
}

static const girder_behaviour peer_behaviour = {
    .name = "bench_peer",
    .init = peer_init,
    .handle = peer_handle,
    .terminate = gr_testkit_owned_terminate,
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
    bool running; /* the peer is up */
    char node[GR_NODENAME_MAX + 1];
    girder_pid peer;
    girder_ref mref;     /* monitor on the peer */
    girder_msg *payload; /* "ping", or the stream's bin */
    uint64_t count, size, window, ack_every;
    uint64_t sent, acked; /* stream */
    bool more;            /* stream: a "more" to itself is on its way */
    uint64_t done;        /* pingpong: round trips, warm-up included */
    uint64_t warmup;
    uint64_t t0_ns;
    uint64_t samples[]; /* pingpong: ns per timed round trip */
} bench;

static void bench_free(void *priv)
{
    bench *b = priv;

    girder_msg_unref(b->payload);
    free(b);
}

/* Ask node for a peer owned by this worker: bench.peer(Kind, Self, Count,
 * AckEvery). GR_RPC_WAIT (the pid comes as ["$rpc", Tag, 0, Pid]) or a
 * negative code. */
static int ask_peer_kind(gr_rpc_call *c, girder_ctx *ctx, const char *node, const char *kind,
                         uint64_t count, uint64_t ack_every)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    gr_term_pack_cstr(&pk, kind);
    r = girder_pack_pid(ctx, &pk, girder_self(ctx));
    msgpack_pack_uint64(&pk, count);
    msgpack_pack_uint64(&pk, ack_every);
    if (r == 0) {
        r = gr_dist_call(gr_rpc_call_dist(c), node, "bench", "peer", sb.data, sb.size,
                         PEER_TIMEOUT_MS, girder_self(ctx), gr_rpc_next_tag(c));
    }
    msgpack_sbuffer_destroy(&sb);
    return r < 0 ? r : GR_RPC_WAIT;
}

/* Ask Node for the peer of pingpong or stream. */
static int ask_peer(gr_rpc_call *c, girder_ctx *ctx, bench *b)
{
    return ask_peer_kind(c, ctx, b->node, b->stream ? "sink" : "echo", b->stream ? b->count : 0,
                         b->ack_every);
}

/* Arguments common to both: [Node, Count, ...]. Allocates c->priv. */
static int bench_setup(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args, bool stream,
                       bench **ret)
{
    const msgpack_object *a = args->via.array.ptr;
    uint64_t count;
    bench *b;

    if (gr_testkit_count_arg(&a[1], stream ? COUNT_MAX : PINGPONG_COUNT_MAX, &count) < 0) {
        return GR_EBADARG;
    }
    if (!(b = calloc(1, sizeof(*b) + (stream ? 0 : count * sizeof(uint64_t))))) {
        return -ENOMEM;
    }
    c->priv = b;
    c->priv_free = bench_free;
    b->stream = stream;
    b->count = count;
    if (gr_term_get_str(&a[0], b->node, sizeof(b->node)) < 0 ||
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
    if (gr_testkit_count_arg(&a[2], SIZE_MAX_BYTES, &size) < 0 ||
        (args->via.array.size == 4 && gr_testkit_count_arg(&a[3], COUNT_MAX, &window) < 0)) {
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

/* Stream: send until Window messages are unacknowledged or all are sent, at
 * most STREAM_BURST per callback: a turn is a bounded batch, then a "more" to
 * itself continues in the next turn. A sender suspended on a busy link
 * (docs/runtime.md, "Busy links") thus adds at most one burst to its backlog
 * before it stops. */
static int stream_fill(girder_ctx *ctx, bench *b)
{
    unsigned n = 0;
    int r;

    while (b->sent < b->count && b->sent - b->acked < b->window) {
        if (n++ == STREAM_BURST) {
            return (r = gr_testkit_more(ctx, &b->more)) < 0 ? r : GR_RPC_WAIT;
        }
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

static int pingpong_result(gr_rpc_call *c, bench *b)
{
    return gr_testkit_answer_stats(c, b->samples, b->count);
}

static int stream_result(gr_rpc_call *c, bench *b, uint64_t ns)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    double s = (double)ns / 1e9, bytes = (double)b->count * (double)b->size;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    gr_term_pack_cstr(&pk, "count");
    msgpack_pack_uint64(&pk, b->count);
    gr_term_pack_cstr(&pk, "bytes");
    msgpack_pack_uint64(&pk, b->count * b->size);
    gr_term_pack_cstr(&pk, "seconds");
    msgpack_pack_double(&pk, s);
    gr_term_pack_cstr(&pk, "msgs_per_s");
    msgpack_pack_double(&pk, (double)b->count / s);
    gr_term_pack_cstr(&pk, "mb_per_s");
    msgpack_pack_double(&pk, bytes / 1e6 / s);
    gr_term_pack_cstr(&pk, "window");
    msgpack_pack_uint64(&pk, b->window);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

/* ["$rpc", Tag, Status, Pid]: a peer is up. 0 and *ret_pid, GR_RPC_WAIT (not
 * our tag), or a negative code. */
static int peer_pid(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg, girder_pid *ret_pid)
{
    const msgpack_object *x;
    uint64_t tag;
    int status;

    if (gr_term_parse_rpc_answer(msg, &tag, &status, &x) < 0 || tag != c->tag) {
        return GR_RPC_WAIT;
    }
    if (status < 0) {
        return status;
    }
    return girder_get_pid(ctx, x, ret_pid) < 0 ? GR_EBADTERM : 0;
}

/* The peer's pid arrived (["$rpc", Tag, Status, Pid]): monitor it and start. */
static int peer_up(gr_rpc_call *c, girder_ctx *ctx, bench *b, const msgpack_object *msg)
{
    int r;

    if ((r = peer_pid(c, ctx, msg, &b->peer)) != 0) {
        return r;
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
    if (b->running && b->stream && gr_term_is_str(msg, "more")) {
        b->more = false;
        return stream_fill(ctx, b);
    }
    if (b->running && b->stream && gr_testkit_is_tagged(msg, "ack") && msg->via.array.size == 2 &&
        a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (a[1].via.u64 > b->acked && a[1].via.u64 <= b->sent) {
            b->acked = a[1].via.u64;
        }
        if (b->acked == b->count) {
            return stream_result(c, b, now - b->t0_ns);
        }
        return stream_fill(ctx, b);
    }
    if (!b->running && gr_testkit_is_tagged(msg, "$rpc") && msg->via.array.size == 4) {
        return peer_up(c, ctx, b, msg);
    }
    if (b->running && gr_testkit_is_tagged(msg, "DOWN") && msg->via.array.size == 5 &&
        girder_get_ref(ctx, &a[1], &ref) == 0 && girder_ref_eq(ref, b->mref)) {
        return gr_term_is_str(&a[4], "noconnection") ? GR_ENOCONN : GR_ENOPROC;
    }
    return GR_RPC_WAIT;
}

/* ---- mixed: small messages while a big one crosses ------------------------------------------- */

/* The forwarder: sends the first bin message it gets to its target, then
 * stops. Spawned linked to the worker, so it dies with it. */
typedef struct fwd {
    girder_pid to; /* the sink on the other node */
} fwd;

static int fwd_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_unpacked up;
    girder_pid to;
    fwd *f;
    int r = GR_EBADARG;

    msgpack_unpacked_init(&up);
    if (arg && girder_msg_unpack(arg, &up) == 0 && girder_get_pid(ctx, &up.data, &to) == 0) {
        r = 0;
    }
    msgpack_unpacked_destroy(&up);
    if (r < 0) {
        return r;
    }
    if (!(f = calloc(1, sizeof(*f)))) {
        return -ENOMEM;
    }
    f->to = to;
    *ret_state = f;
    return 0;
}

static int fwd_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    fwd *f = state;
    const uint8_t *b = girder_msg_data(msg);
    girder_msg *m, *reason;

    if (girder_msg_size(msg) == 0 || (b[0] != 0xc4 && b[0] != 0xc5 && b[0] != 0xc6)) {
        return GIRDER_CONTINUE; /* not the payload */
    }
    m = girder_msg_ref((girder_msg *)msg); /* borrowed: our own reference to send */
    if (girder_send(ctx, f->to, m) < 0) {
        girder_msg_unref(m);
        /* a non-normal exit reaches the linked worker, which fails the call */
        if ((reason = girder_msg_atom("send_failed"))) {
            girder_stop(ctx, reason);
            girder_msg_unref(reason);
        }
    }
    return GIRDER_STOP;
}

static void fwd_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    (void)ctx;
    (void)reason;
    free(state);
}

static const girder_behaviour fwd_behaviour = {
    .name = "bench_fwd",
    .init = fwd_init,
    .handle = fwd_handle,
    .terminate = fwd_terminate,
};

enum mixed_phase {
    MIXED_ECHO_WAIT, /* asked Node for the echo */
    MIXED_BASELINE,  /* pinging alone */
    MIXED_SINK_WAIT, /* asked Node for the sink */
    MIXED_LOADED,    /* pinging while the big message crosses */
};

typedef struct mixed {
    enum mixed_phase phase;
    char node[GR_NODENAME_MAX + 1];     /* the echo's node */
    char big_node[GR_NODENAME_MAX + 1]; /* the sink's node (default: node) */
    uint64_t big_bytes, pings;
    girder_pid echo, sink;
    girder_ref echo_mref, sink_mref; /* monitors on the peers */
    girder_msg *ping;                /* "ping", shared */
    girder_msg *big;                 /* the big bin; dropped once handed over */
    bool same_sched;                 /* the forwarder shares the worker's scheduler */
    uint64_t done;                   /* round trips of this phase, warm-up included */
    uint64_t t0_ns;                  /* the ping in flight */
    uint64_t big_t0_ns, big_ns;      /* big handed over / its ack after that */
    bool big_done;                   /* the sink acknowledged it */
    uint64_t during;                 /* loaded round trips that ended before the ack */
    uint64_t *base;                  /* baseline samples, ns (pings of them) */
    uint64_t *loaded;                /* loaded samples, ns */
    size_t nloaded, cap;             /* ... held, and room for */
    uint64_t loaded_max;             /* max over every loaded round trip, kept or not */
    uint64_t loaded_all;             /* loaded round trips, kept or not */
    uint64_t max_at_ns;              /* when the slowest one started, after big_t0_ns */
} mixed;

static void mixed_free(void *priv)
{
    mixed *m = priv;

    girder_msg_unref(m->ping);
    girder_msg_unref(m->big);
    free(m->base);
    free(m->loaded);
    free(m);
}

/* bench.mixed(Node, BigBytes, Pings) */
static int bench_mixed(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a;
    uint8_t *buf;
    mixed *m;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 3 ||
        args->via.array.size > 4) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (!(m = calloc(1, sizeof(*m)))) {
        return -ENOMEM;
    }
    c->priv = m;
    c->priv_free = mixed_free;
    if (gr_term_get_str(&a[0], m->node, sizeof(m->node)) < 0 ||
        gr_nodename_check(m->node, strlen(m->node)) < 0 ||
        strcmp(m->node, gr_rt_node_name(girder_runtime(ctx))) == 0 ||
        gr_testkit_count_arg(&a[1], MIXED_BIG_MAX, &m->big_bytes) < 0 ||
        gr_testkit_count_arg(&a[2], MIXED_PINGS_MAX, &m->pings) < 0) {
        return GR_EBADARG;
    }
    memcpy(m->big_node, m->node, sizeof(m->big_node));
    if (args->via.array.size == 4 &&
        (gr_term_get_str(&a[3], m->big_node, sizeof(m->big_node)) < 0 ||
         gr_nodename_check(m->big_node, strlen(m->big_node)) < 0 ||
         strcmp(m->big_node, gr_rt_node_name(girder_runtime(ctx))) == 0)) {
        return GR_EBADARG;
    }
    if (!gr_rpc_call_dist(c)) {
        return GR_ENOCONN;
    }
    m->cap = m->pings;
    if (!(m->base = calloc(m->pings, sizeof(uint64_t))) ||
        !(m->loaded = calloc(m->cap, sizeof(uint64_t))) || !(m->ping = girder_msg_atom("ping"))) {
        return -ENOMEM;
    }
    /* the bin, built before any clock runs: 0xc6, 32-bit big-endian length, zeros */
    if (!(buf = calloc(1, 5 + m->big_bytes))) {
        return -ENOMEM;
    }
    buf[0] = 0xc6;
    for (int i = 0; i < 4; i++) {
        buf[1 + i] = (uint8_t)(m->big_bytes >> (8 * (3 - i)));
    }
    m->big = girder_msg_new(buf, 5 + m->big_bytes);
    free(buf);
    if (!m->big) {
        return -ENOMEM;
    }
    m->phase = MIXED_ECHO_WAIT;
    return ask_peer_kind(c, ctx, m->node, "echo", 0, 1);
}

static int mixed_ping(girder_ctx *ctx, mixed *m)
{
    int r;

    girder_msg_ref(m->ping);
    m->t0_ns = gr_rpc_now_ns();
    if ((r = girder_send(ctx, m->echo, m->ping)) < 0) {
        girder_msg_unref(m->ping);
        return r;
    }
    return GR_RPC_WAIT;
}

/* Median, p99 and max of n samples (sorted in place); max is raised to the
 * largest sample (it may count samples that were not kept). */
static void pack_stats(msgpack_packer *pk, const char *prefix, uint64_t *v, size_t n, uint64_t max)
{
    char k[64];

    qsort(v, n, sizeof(uint64_t), gr_testkit_cmp_u64);
    if (n && v[n - 1] > max) {
        max = v[n - 1];
    }
    snprintf(k, sizeof(k), "%s_median_us", prefix);
    gr_testkit_pack_us(pk, k, n ? v[n / 2] : 0);
    snprintf(k, sizeof(k), "%s_p99_us", prefix);
    gr_testkit_pack_us(pk, k, n ? v[n * 99 / 100] : 0);
    snprintf(k, sizeof(k), "%s_max_us", prefix);
    gr_testkit_pack_us(pk, k, max);
}

static int mixed_result(gr_rpc_call *c, mixed *m)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 12);
    gr_term_pack_cstr(&pk, "big_bytes");
    msgpack_pack_uint64(&pk, m->big_bytes);
    gr_term_pack_cstr(&pk, "big_ms");
    msgpack_pack_double(&pk, (double)m->big_ns / 1e6);
    gr_term_pack_cstr(&pk, "pings");
    msgpack_pack_uint64(&pk, m->loaded_all);
    gr_term_pack_cstr(&pk, "pings_during_big");
    msgpack_pack_uint64(&pk, m->during);
    gr_term_pack_cstr(&pk, "same_scheduler");
    if (m->same_sched) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    pack_stats(&pk, "small", m->loaded, m->nloaded, m->loaded_max);
    gr_term_pack_cstr(&pk, "small_max_at_ms");
    msgpack_pack_double(&pk, (double)m->max_at_ns / 1e6);
    pack_stats(&pk, "baseline", m->base, m->pings, 0);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

/* Baseline done and the sink is up: spawn the forwarder, hand it the big
 * message, and start pinging again. */
static int mixed_load(girder_ctx *ctx, mixed *m)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg = NULL;
    girder_pid fpid = {0};
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if ((r = girder_pack_pid(ctx, &pk, m->sink)) == 0 &&
        !(arg = girder_msg_new(sb.data, sb.size))) {
        r = -ENOMEM;
    }
    msgpack_sbuffer_destroy(&sb);
    if (r == 0) {
        r = girder_spawn(ctx, &fwd_behaviour, arg, GIRDER_SPAWN_LINK | GIRDER_SPAWN_SPREAD, &fpid,
                         NULL);
    }
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    m->same_sched = (fpid.id & 0xff) == (girder_self(ctx).id & 0xff);
    m->phase = MIXED_LOADED;
    m->done = 0;
    m->big_t0_ns = gr_rpc_now_ns();
    if ((r = girder_send(ctx, fpid, m->big)) < 0) {
        return r; /* m->big stays ours; mixed_free drops it */
    }
    m->big = NULL; /* taken by the send */
    return mixed_ping(ctx, m);
}

/* A loaded round trip ended after ns. */
static int mixed_loaded_pong(gr_rpc_call *c, girder_ctx *ctx, mixed *m, uint64_t ns)
{
    uint64_t *v;

    if (m->nloaded == m->cap && m->cap < MIXED_SAMPLES_MAX &&
        (v = realloc(m->loaded, 2 * m->cap * sizeof(uint64_t)))) {
        m->loaded = v;
        m->cap *= 2;
    }
    if (m->nloaded < m->cap) {
        m->loaded[m->nloaded++] = ns;
    }
    m->loaded_all++;
    if (ns > m->loaded_max) {
        m->loaded_max = ns;
        m->max_at_ns = m->t0_ns - m->big_t0_ns;
    }
    if (!m->big_done) {
        m->during++;
    }
    if (m->big_done && m->loaded_all >= m->pings) {
        return mixed_result(c, m);
    }
    return mixed_ping(ctx, m);
}

static int mixed_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    mixed *m = c->priv;
    const msgpack_object *a = msg->via.array.ptr;
    uint64_t now = gr_rpc_now_ns();
    girder_ref ref;
    int r;

    if (gr_term_is_str(msg, "pong") && m->phase == MIXED_BASELINE) {
        if (m->done >= MIXED_WARMUP) {
            m->base[m->done - MIXED_WARMUP] = now - m->t0_ns;
        }
        if (++m->done < MIXED_WARMUP + m->pings) {
            return mixed_ping(ctx, m);
        }
        m->phase = MIXED_SINK_WAIT;
        return ask_peer_kind(c, ctx, m->big_node, "sink", 1, 1);
    }
    if (gr_term_is_str(msg, "pong") && m->phase == MIXED_LOADED) {
        return mixed_loaded_pong(c, ctx, m, now - m->t0_ns);
    }
    if (gr_testkit_is_tagged(msg, "ack") && m->phase == MIXED_LOADED && !m->big_done) {
        m->big_done = true;
        m->big_ns = now - m->big_t0_ns;
        return GR_RPC_WAIT; /* the pong in flight ends the run if enough were timed */
    }
    if (gr_testkit_is_tagged(msg, "$rpc") && m->phase == MIXED_ECHO_WAIT) {
        if ((r = peer_pid(c, ctx, msg, &m->echo)) != 0) {
            return r;
        }
        if ((r = girder_monitor(ctx, m->echo, &m->echo_mref)) < 0) {
            return r;
        }
        m->phase = MIXED_BASELINE;
        return mixed_ping(ctx, m);
    }
    if (gr_testkit_is_tagged(msg, "$rpc") && m->phase == MIXED_SINK_WAIT) {
        if ((r = peer_pid(c, ctx, msg, &m->sink)) != 0) {
            return r;
        }
        if ((r = girder_monitor(ctx, m->sink, &m->sink_mref)) < 0) {
            return r;
        }
        return mixed_load(ctx, m);
    }
    if (gr_testkit_is_tagged(msg, "DOWN") && msg->via.array.size == 5 &&
        girder_get_ref(ctx, &a[1], &ref) == 0 &&
        (girder_ref_eq(ref, m->echo_mref) || (girder_ref_eq(ref, m->sink_mref) && !m->big_done))) {
        return gr_term_is_str(&a[4], "noconnection") ? GR_ENOCONN : GR_ENOPROC;
    }
    return GR_RPC_WAIT;
}

static int bench_tfill(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a = args->via.array.ptr;
    char name[GR_TABLE_NAME_MAX + 1], key[40];
    uint8_t kb[48], vb[32];
    gr_tables *ts = gr_rpc_tables(c->rpc);
    gr_table *t;
    uint64_t start, count, t0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r = 0;

    (void)ctx;
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 3 ||
        a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size > GR_TABLE_NAME_MAX ||
        a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return GR_EBADARG;
    }
    memcpy(name, a[0].via.str.ptr, a[0].via.str.size);
    name[a[0].via.str.size] = 0;
    start = a[1].via.u64;
    count = a[2].via.u64;
    if (!ts || (r = gr_tables_open(ts, name, &t)) < 0) {
        return ts ? r : GR_ENOTABLE;
    }
    vb[0] = 0xb8; /* fixstr of 24 bytes */
    memset(vb + 1, 'v', 24);
    t0 = gr_rpc_now_ns();
    for (uint64_t i = start; i < start + count && r == 0; i++) {
        int n = snprintf(key, sizeof(key), "key:%llu", (unsigned long long)i);

        kb[0] = (uint8_t)(0xa0 | n); /* fixstr: under 32 bytes */
        memcpy(kb + 1, key, (size_t)n);
        r = gr_table_put(t, kb, (size_t)n + 1, vb, 25, NULL, NULL);
    }
    t0 = gr_rpc_now_ns() - t0;
    gr_table_close(t);
    if (r < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "puts", 4);
    msgpack_pack_uint64(&pk, count);
    msgpack_pack_str_with_body(&pk, "us", 2);
    msgpack_pack_uint64(&pk, t0 / 1000);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static const gr_rpc_fn_def bench_fns[] = {
    {"pingpong", bench_pingpong, bench_msg, NULL},
    {"stream", bench_stream, bench_msg, NULL},
    {"mixed", bench_mixed, mixed_msg, NULL},
    {"peer", bench_peer, NULL, NULL},
    {"tfill", bench_tfill, NULL, NULL},
};

const gr_rpc_module gr_testkit_mod_bench = {"bench", bench_fns,
                                            sizeof(bench_fns) / sizeof(bench_fns[0])};
