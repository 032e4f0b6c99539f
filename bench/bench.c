/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench.c - girder-bench, the Girder half of `bench/run`: five runtime
 * micro-benchmarks whose workloads mirror bench/erlang/girder_bench.erl line for
 * line, so that the two programs' figures can be put side by side.
 *
 *   spawn     µs per spawn of N idle processes, spawned by one process; the clock
 *             stops when every child has run init. Also the RSS delta per idle
 *             process, and what process info reports as one child's "memory".
 *   pingpong  round trips/s between two processes on one scheduler.
 *   oneway    msgs/s of a stream from one process to another; the clock stops
 *             when the receiver has counted them all.
 *   ring      hops/s of one token travelling round a ring of processes.
 *   oneway_paced  (Girder only, information) the stream with a paced sender.
 *
 * Every benchmark run gets a fresh runtime (default schedulers: one per core).
 * Its driver is a process spawned from inside a probe (gr_probe_run), so that it
 * and every process it spawns sit on the probe's scheduler (local placement, as
 * in Erlang); the driver keeps the clock and reports through the probe.
 *
 * Output: `key=value` lines on stdout (or one JSON object with --json) that
 * bench/run turns into the comparison table; progress goes to stderr.
 *
 * Design notes
 *  - A bench_job is owned by the main thread. The processes of one run write its
 *    result fields and then send "done" to the probe; the main thread reads them
 *    only after gr_probe_recv returned that message, so the runtime's message
 *    hand-off orders the writes before the reads.
 *  - Messages are shared by reference (girder_msg_ref) wherever a process sends
 *    the same term again: a Girder message is an immutable refcounted buffer by
 *    design, where Erlang copies the term on every send. docs/benchmarks.md says so.
 *  - Senders never hold their scheduler for a whole run: the spawner and the
 *    stream sender do --chunk (default 1000) operations per turn, then post
 *    themselves "continue".
 */
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_DEFAULT 1000 /* spawns or sends per driver turn */

enum bench_kind { B_SPAWN, B_PINGPONG, B_ONEWAY, B_RING, B_ONEWAY_PACED, B_NKINDS };

static const char *const kind_names[] = {"spawn", "pingpong", "oneway", "ring", "oneway_paced"};

/* oneway_paced: the stream again, but the sender sends only as many messages
 * per turn as the receiver handles per turn (the runtime's default batch), so
 * the mailbox stays short. Girder-only, for information: it separates the cost
 * of messaging from the cost of a mailbox that grows without bound. */
#define PACED_CHUNK 64

/* One run of one benchmark. Owned by the main thread; see Design notes. */
typedef struct bench_job {
    enum bench_kind kind;     /* which benchmark */
    uint64_t n;               /* spawns, round trips, messages, or hops */
    uint64_t ring_size;       /* ring: processes in the ring, driver included */
    uint64_t chunk;           /* spawn/oneway: operations per driver turn */
    girder_pid probe;         /* where "done" goes */
    girder_msg *done;         /* the "done" atom, shared */
    girder_msg *payload;      /* the message that pingpong/oneway/ring carry */
    girder_msg *cont;         /* the "continue" atom the driver posts itself */
    girder_msg *self_arg;     /* spawn: the children's argument (this job's address) */
    _Atomic uint64_t started; /* spawn: children that have run init */
    uint64_t progress;        /* driver: spawns / sends / round trips / rounds so far */
    girder_pid peer;          /* driver: ponger, receiver, or first ring node */
    girder_pid sample;        /* spawn: one child, for process info */
    uint64_t t0_ns;           /* clock start (driver) */
    uint64_t t1_ns;           /* clock stop (last child, or driver) */
    int err;                  /* first error a process of this run hit, or 0 */
} bench_job;

/* Command-line settings; the only "global" is this parsed configuration. */
typedef struct bench_opts {
    uint64_t n_spawn;     /* idle processes */
    uint64_t n_pingpong;  /* round trips */
    uint64_t n_oneway;    /* messages */
    uint64_t ring_size;   /* processes in the ring */
    uint64_t ring_hops;   /* hops in total */
    uint64_t chunk;       /* spawns or sends per driver turn */
    unsigned schedulers;  /* 0 = one per core */
    unsigned reps;        /* runs per benchmark; the median is reported */
    int timeout_ms;       /* per run */
    bool json;            /* one JSON object instead of key=value lines */
    bool verbose;         /* print each run's clock window (for perf --time) */
    bool kinds[B_NKINDS]; /* benchmarks selected with --only */
} bench_opts;

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Resident set size of this process in bytes, from /proc/self/statm; 0 if unknown. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, resident = 0;

    if (!f) {
        return 0;
    }
    if (fscanf(f, "%llu %llu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A message carrying a pointer as a msgpack bin8 (10 bytes). The pointer is only
 * meaningful inside this address space: a benchmark's way to hand its job to the
 * processes it spawns, like the Erlang side's closures capture an atomics ref. */
static girder_msg *ptr_msg(void *p)
{
    unsigned char b[2 + sizeof p] = {0xc4, sizeof p};

    memcpy(b + 2, &p, sizeof p);
    return girder_msg_new(b, sizeof b);
}

static void *msg_ptr(const girder_msg *m)
{
    const unsigned char *b = m ? girder_msg_data(m) : NULL;
    void *p;

    if (!b || girder_msg_size(m) != 2 + sizeof p || b[0] != 0xc4 || b[1] != sizeof p) {
        return NULL;
    }
    memcpy(&p, b + 2, sizeof p);
    return p;
}

/* A message holding [pid, n] (n omitted when 0): how drivers tell the processes
 * they spawn whom to answer, through the real pid encoding. */
static girder_msg *pid_msg(girder_ctx *ctx, girder_pid pid, uint64_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m = NULL;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, n ? 2 : 1) == 0 && girder_pack_pid(ctx, &pk, pid) == 0 &&
        (!n || msgpack_pack_uint64(&pk, n) == 0)) {
        m = girder_msg_new(sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return m;
}

/* Read a pid_msg. 0, or GR_EBADTERM. */
static int msg_pid(girder_ctx *ctx, const girder_msg *m, girder_pid *ret_pid, uint64_t *ret_n)
{
    msgpack_unpacked u;
    const msgpack_object *a;
    int r = GR_EBADTERM;

    msgpack_unpacked_init(&u);
    if (!m || girder_msg_unpack(m, &u) < 0 || u.data.type != MSGPACK_OBJECT_ARRAY ||
        u.data.via.array.size < 1) {
        goto out;
    }
    a = u.data.via.array.ptr;
    if ((r = girder_get_pid(ctx, &a[0], ret_pid)) < 0) {
        goto out;
    }
    if (ret_n) {
        *ret_n = (u.data.via.array.size > 1 && a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                     ? a[1].via.u64
                     : 0;
    }
out:
    msgpack_unpacked_destroy(&u);
    return r;
}

/* Send a shared message again: the receiver gets another reference to it. */
static int send_ref(girder_ctx *ctx, girder_pid to, const girder_msg *m)
{
    girder_msg *r = girder_msg_ref((girder_msg *)m);
    int err = girder_send(ctx, to, r);

    if (err < 0) {
        girder_msg_unref(r);
    }
    return err;
}

/* Record the first error of a run and tell the main thread at once. */
static int fail(girder_ctx *ctx, bench_job *job, int err)
{
    if (!job->err) {
        job->err = err;
        job->t1_ns = now_ns();
        send_ref(ctx, job->probe, job->done);
    }
    return GIRDER_STOP;
}

static int finish(girder_ctx *ctx, bench_job *job)
{
    job->t1_ns = now_ns();
    return send_ref(ctx, job->probe, job->done);
}

/* ---- spawn: idle children -------------------------------------------------------- */

/* The idle child: count itself as started; the last one stops the clock. Then
 * it waits, idle, until the runtime stops. */
static int idle_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    bench_job *job = msg_ptr(arg);

    if (!job) {
        return GR_EBADARG;
    }
    if (atomic_fetch_add_explicit(&job->started, 1, memory_order_relaxed) + 1 == job->n) {
        finish(ctx, job);
    }
    *ret_state = NULL;
    return 0;
}

static int idle_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

static const girder_behaviour idle_b = {
    .name = "bench_idle", .init = idle_init, .handle = idle_handle};

/* ---- pingpong: the ponger ---------------------------------------------------------- */

typedef struct ponger {
    girder_pid driver; /* where "pong" goes */
    girder_msg *pong;  /* the "pong" atom, shared */
} ponger;

static int ponger_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    ponger *p = calloc(1, sizeof *p);
    int r;

    if (!p) {
        return -ENOMEM;
    }
    if ((r = msg_pid(ctx, arg, &p->driver, NULL)) < 0 || !(p->pong = girder_msg_atom("pong"))) {
        free(p);
        return r < 0 ? r : -ENOMEM;
    }
    *ret_state = p;
    return 0;
}

static int ponger_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    ponger *p = state;

    if (girder_msg_is_atom(msg, "ping") && send_ref(ctx, p->driver, p->pong) < 0) {
        return GIRDER_STOP;
    }
    return GIRDER_CONTINUE;
}

static void ponger_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    ponger *p = state;

    girder_msg_unref(p->pong);
    free(p);
}

static const girder_behaviour ponger_b = {.name = "bench_ponger",
                                          .init = ponger_init,
                                          .handle = ponger_handle,
                                          .terminate = ponger_terminate};

/* ---- oneway: the receiver ---------------------------------------------------------- */

/* The stream's payload, ["msg", 42]: the Erlang side sends {msg, 42}. */
static const unsigned char payload_bytes[] = {0x92, 0xa3, 'm', 's', 'g', 0x2a};

typedef struct receiver {
    girder_pid driver; /* where "done" goes */
    uint64_t n;        /* messages expected */
    uint64_t count;    /* messages counted */
    girder_msg *done;  /* the "done" atom */
} receiver;

static int receiver_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    receiver *rc = calloc(1, sizeof *rc);
    int r;

    if (!rc) {
        return -ENOMEM;
    }
    if ((r = msg_pid(ctx, arg, &rc->driver, &rc->n)) < 0 || !(rc->done = girder_msg_atom("done"))) {
        free(rc);
        return r < 0 ? r : -ENOMEM;
    }
    *ret_state = rc;
    return 0;
}

/* Like the Erlang receiver's `receive {msg, _} -> ...`: match, then count. */
static int receiver_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    receiver *rc = state;

    if (girder_msg_size(msg) == sizeof payload_bytes &&
        memcmp(girder_msg_data(msg), payload_bytes, sizeof payload_bytes) == 0 &&
        ++rc->count == rc->n && send_ref(ctx, rc->driver, rc->done) < 0) {
        return GIRDER_STOP;
    }
    return GIRDER_CONTINUE;
}

static void receiver_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    receiver *rc = state;

    girder_msg_unref(rc->done);
    free(rc);
}

static const girder_behaviour receiver_b = {.name = "bench_receiver",
                                            .init = receiver_init,
                                            .handle = receiver_handle,
                                            .terminate = receiver_terminate};

/* ---- ring: a node forwards the token to the next ------------------------------------ */

static int ring_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    girder_pid *next = malloc(sizeof *next);
    int r;

    if (!next) {
        return -ENOMEM;
    }
    if ((r = msg_pid(ctx, arg, next, NULL)) < 0) {
        free(next);
        return r;
    }
    *ret_state = next;
    return 0;
}

static int ring_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    girder_pid *next = state;

    if (girder_msg_is_atom(msg, "token") && send_ref(ctx, *next, msg) < 0) {
        return GIRDER_STOP;
    }
    return GIRDER_CONTINUE;
}

static void ring_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    free(state);
}

static const girder_behaviour ring_b = {
    .name = "bench_ring", .init = ring_init, .handle = ring_handle, .terminate = ring_terminate};

/* ---- the driver -------------------------------------------------------------------- */

/* Spawn the benchmark's peers, then post "continue" to itself: the clock starts
 * when that first "continue" is handled. */
static int driver_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    bench_job *job = msg_ptr(arg);
    girder_msg *a = NULL;
    girder_pid next;
    int r = 0;

    if (!job) {
        return GR_EBADARG;
    }
    switch (job->kind) {
    case B_SPAWN:
    case B_NKINDS:
        break;
    case B_PINGPONG:
        if (!(a = pid_msg(ctx, girder_self(ctx), 0))) {
            return -ENOMEM;
        }
        r = girder_spawn(ctx, &ponger_b, a, 0, &job->peer, NULL);
        break;
    case B_ONEWAY:
    case B_ONEWAY_PACED:
        if (!(a = pid_msg(ctx, girder_self(ctx), job->n))) {
            return -ENOMEM;
        }
        r = girder_spawn(ctx, &receiver_b, a, 0, &job->peer, NULL);
        break;
    case B_RING:
        /* As the Erlang ring: node k forwards to node k+1, the last to the driver. */
        next = girder_self(ctx);
        for (uint64_t k = 1; k < job->ring_size && r == 0; k++) {
            if (!(a = pid_msg(ctx, next, 0))) {
                return -ENOMEM;
            }
            r = girder_spawn(ctx, &ring_b, a, 0, &next, NULL);
            a = girder_msg_unref(a);
        }
        job->peer = next;
        break;
    }
    girder_msg_unref(a);
    if (r < 0) {
        return r;
    }
    if ((r = send_ref(ctx, girder_self(ctx), job->cont)) < 0) {
        return r;
    }
    *ret_state = job;
    return 0;
}

static int driver_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    bench_job *job = state;
    girder_pid pid;
    uint64_t end;
    int r;

    if (job->err) {
        return GIRDER_CONTINUE;
    }
    if (girder_msg_is_atom(msg, "continue")) {
        if (!job->t0_ns) {
            job->t0_ns = now_ns();
            if (job->kind == B_PINGPONG || job->kind == B_RING) {
                /* One message in flight: the ping, or the token. */
                if ((r = send_ref(ctx, job->peer, job->payload)) < 0) {
                    return fail(ctx, job, r);
                }
                return GIRDER_CONTINUE;
            }
        }
        end = job->progress + job->chunk < job->n ? job->progress + job->chunk : job->n;
        for (; job->progress < end; job->progress++) {
            if (job->kind == B_SPAWN) {
                r = girder_spawn(ctx, &idle_b, job->self_arg, 0, &pid, NULL);
                if (job->progress == 0) {
                    job->sample = pid;
                }
            } else {
                r = send_ref(ctx, job->peer, job->payload);
            }
            if (r < 0) {
                return fail(ctx, job, r);
            }
        }
        if (job->progress < job->n && (r = send_ref(ctx, girder_self(ctx), job->cont)) < 0) {
            return fail(ctx, job, r);
        }
    } else if (job->kind == B_PINGPONG && girder_msg_is_atom(msg, "pong")) {
        if (++job->progress == job->n) {
            finish(ctx, job);
        } else if ((r = send_ref(ctx, job->peer, job->payload)) < 0) {
            return fail(ctx, job, r);
        }
    } else if (job->kind == B_RING && girder_msg_is_atom(msg, "token")) {
        /* A round is over when the token is back: ring_size hops. */
        if (++job->progress == job->n / job->ring_size) {
            finish(ctx, job);
        } else if ((r = send_ref(ctx, job->peer, msg)) < 0) {
            return fail(ctx, job, r);
        }
    } else if ((job->kind == B_ONEWAY || job->kind == B_ONEWAY_PACED) &&
               girder_msg_is_atom(msg, "done")) {
        finish(ctx, job);
    }
    return GIRDER_CONTINUE;
}

static const girder_behaviour driver_b = {
    .name = "bench_driver", .init = driver_init, .handle = driver_handle};

/* Runs inside the probe's process: spawning from there places the driver on the
 * probe's scheduler, and the driver's own spawns follow it there. */
static int start_driver(girder_ctx *ctx, void *arg)
{
    bench_job *job = arg;
    girder_msg *a = ptr_msg(job);
    girder_pid pid;
    int r;

    if (!a) {
        return -ENOMEM;
    }
    r = girder_spawn(ctx, &driver_b, a, 0, &pid, NULL);
    girder_msg_unref(a);
    return r;
}

/* ---- process info of one idle child (spawn benchmark) ------------------------------- */

typedef struct info_req {
    girder_pid pid; /* whom to ask */
    girder_ref ref; /* the request's ref */
} info_req;

static int request_info(girder_ctx *ctx, void *arg)
{
    info_req *q = arg;

    return girder_info_request(ctx, q->pid, &q->ref);
}

/* The "memory" that process info reports for pid, or -1 if unknown. */
static int64_t info_memory(gr_probe *probe, girder_pid pid, int timeout_ms)
{
    info_req q = {.pid = pid};
    girder_msg *m = NULL;
    msgpack_unpacked u;
    int64_t mem = -1;
    bool answered = false;

    if (gr_probe_run(probe, request_info, &q) < 0) {
        return -1;
    }
    while (!answered && gr_probe_recv(probe, timeout_ms, &m) == 0) {
        msgpack_unpacked_init(&u);
        if (girder_msg_unpack(m, &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY &&
            u.data.via.array.size == 3 && gr_term_is_str(&u.data.via.array.ptr[0], "$info")) {
            const msgpack_object *map = &u.data.via.array.ptr[2];

            answered = true;
            for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
                const msgpack_object *k = &map->via.map.ptr[i].key;
                const msgpack_object *v = &map->via.map.ptr[i].val;

                if (gr_term_is_str(k, "memory") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    mem = (int64_t)v->via.u64;
                }
            }
        }
        msgpack_unpacked_destroy(&u);
        m = girder_msg_unref(m);
    }
    return mem;
}

/* ---- one run --------------------------------------------------------------------- */

typedef struct run_result {
    double value;       /* µs per spawn, or operations per second */
    uint64_t rss_delta; /* spawn: growth of the resident set, bytes */
    int64_t info_mem;   /* spawn: process info "memory" of one child, or -1 */
    double teardown_s;  /* seconds gr_rt_stop took */
} run_result;

static girder_msg *payload_for(enum bench_kind kind)
{
    switch (kind) {
    case B_PINGPONG:
        return girder_msg_atom("ping");
    case B_ONEWAY:
    case B_ONEWAY_PACED:
        return girder_msg_new(payload_bytes, sizeof payload_bytes);
    case B_RING:
        return girder_msg_atom("token");
    case B_SPAWN:
    case B_NKINDS:
        break;
    }
    return girder_msg_atom("unused");
}

/* Wait for the "done" of this run, dropping anything else the probe gets. */
static int wait_done(gr_probe *probe, int timeout_ms)
{
    girder_msg *m = NULL;
    bool done = false;
    int r;

    while (!done) {
        if ((r = gr_probe_recv(probe, timeout_ms, &m)) < 0) {
            return r;
        }
        done = girder_msg_is_atom(m, "done");
        m = girder_msg_unref(m);
    }
    return 0;
}

/* One run of one benchmark in a fresh runtime. 0 and *ret, or a negative error. */
static int run_once(const bench_opts *o, enum bench_kind kind, run_result *ret)
{
    gr_rt_config cfg = {.node_name = "bench@localhost", .schedulers = o->schedulers};
    bench_job job = {.kind = kind,
                     .ring_size = o->ring_size,
                     .chunk = kind == B_ONEWAY_PACED ? PACED_CHUNK : o->chunk};
    run_result res = {.info_mem = -1};
    girder_rt *rt = NULL;
    gr_probe *probe = NULL;
    uint64_t rss0 = 0, t;
    int r;

    atomic_init(&job.started, 0);
    job.n = kind == B_SPAWN      ? o->n_spawn
            : kind == B_PINGPONG ? o->n_pingpong
            : kind == B_RING     ? o->ring_hops / o->ring_size * o->ring_size
                                 : o->n_oneway;
    job.done = girder_msg_atom("done");
    job.cont = girder_msg_atom("continue");
    job.payload = payload_for(kind);
    job.self_arg = ptr_msg(&job);
    if (!job.done || !job.cont || !job.payload || !job.self_arg) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = gr_rt_new(&cfg, &rt)) < 0 || (r = gr_rt_start(rt)) < 0 ||
        (r = gr_probe_new(rt, &probe)) < 0) {
        goto out;
    }
    job.probe = gr_probe_pid(probe);
    rss0 = rss_bytes();
    if ((r = gr_probe_run(probe, start_driver, &job)) < 0 ||
        (r = wait_done(probe, o->timeout_ms)) < 0) {
        goto out;
    }
    if ((r = job.err) < 0) {
        goto out;
    }
    t = job.t1_ns - job.t0_ns;
    if (o->verbose) {
        /* CLOCK_MONOTONIC seconds: `perf record -k CLOCK_MONOTONIC` then
         * `perf report --time T0,T1` profiles just the timed window. */
        fprintf(stderr, " [window %.6f,%.6f]", (double)job.t0_ns / 1e9, (double)job.t1_ns / 1e9);
    }
    if (kind == B_SPAWN) {
        res.value = (double)t / 1e3 / (double)job.n;
        res.rss_delta = rss_bytes() - rss0;
        res.info_mem = info_memory(probe, job.sample, o->timeout_ms);
    } else {
        res.value = (double)job.n / ((double)t / 1e9);
    }
out:
    probe = gr_probe_free(probe);
    if (rt) {
        t = now_ns();
        gr_rt_stop(rt);
        res.teardown_s = (double)(now_ns() - t) / 1e9;
    }
    rt = gr_rt_free(rt);
    girder_msg_unref(job.done);
    girder_msg_unref(job.cont);
    girder_msg_unref(job.payload);
    girder_msg_unref(job.self_arg);
    if (r == 0) {
        *ret = res;
    }
    return r;
}

/* ---- output ---------------------------------------------------------------------- */

#define OUT_MAX 64

typedef struct out {
    const char *key[OUT_MAX]; /* static strings */
    char val[OUT_MAX][160];   /* formatted values */
    bool num[OUT_MAX];        /* value is a number (JSON: unquoted) */
    unsigned n;               /* entries used */
} out;

__attribute__((format(printf, 4, 5))) static void put(out *w, const char *key, bool num,
                                                      const char *fmt, ...)
{
    va_list ap;

    if (w->n == OUT_MAX) {
        return;
    }
    w->key[w->n] = key;
    w->num[w->n] = num;
    va_start(ap, fmt);
    vsnprintf(w->val[w->n], sizeof w->val[w->n], fmt, ap);
    va_end(ap);
    w->n++;
}

static void print_out(const out *w, bool json)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (json) {
            printf("%s\"%s\": %s%s%s", i ? ",\n  " : "{\n  ", w->key[i], w->num[i] ? "" : "\"",
                   w->val[i], w->num[i] ? "" : "\"");
        } else {
            printf("%s=%s\n", w->key[i], w->val[i]);
        }
    }
    if (json) {
        printf("\n}\n");
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: girder-bench [--quick] [--json] [--verbose] [--reps N] [--schedulers N]\n"
               "                    [--only spawn,pingpong,oneway,ring,oneway_paced]\n"
               "                    [--timeout SECONDS]\n"
               "                    [--spawn N] [--pingpong N] [--oneway N] [--ring-size N]\n"
               "                    [--ring-hops N] [--chunk N]\n"
               "Runs Girder's runtime benchmarks; prints key=value lines (or JSON).\n"
               "bench/run puts them beside Erlang/OTP's figures.\n");
}

static bool parse_u64(const char *s, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0) {
        return false;
    }
    *ret = v;
    return true;
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    uint64_t v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = NULL;

        if (strcmp(a, "--quick") == 0) {
            o->n_spawn = 100000;
            o->n_pingpong = 100000;
            o->n_oneway = 1000000;
            o->ring_hops = 100000;
            o->reps = 1;
            continue;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = true;
            continue;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--only") == 0 && val) {
            char buf[128], *save = NULL;

            snprintf(buf, sizeof buf, "%s", val);
            memset(o->kinds, 0, sizeof o->kinds);
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                unsigned k = 0;
                while (k < B_NKINDS && strcmp(t, kind_names[k]) != 0) {
                    k++;
                }
                if (k == B_NKINDS) {
                    fprintf(stderr, "girder-bench: unknown benchmark '%s'\n", t);
                    return -1;
                }
                o->kinds[k] = true;
            }
            i++;
            continue;
        }
        if (!val || !parse_u64(val, &v)) {
            usage(stderr);
            return -1;
        }
        if (strcmp(a, "--reps") == 0) {
            o->reps = (unsigned)v;
        } else if (strcmp(a, "--schedulers") == 0) {
            o->schedulers = (unsigned)v;
        } else if (strcmp(a, "--timeout") == 0) {
            o->timeout_ms = (int)(v * 1000);
        } else if (strcmp(a, "--spawn") == 0) {
            dst = &o->n_spawn;
        } else if (strcmp(a, "--pingpong") == 0) {
            dst = &o->n_pingpong;
        } else if (strcmp(a, "--oneway") == 0) {
            dst = &o->n_oneway;
        } else if (strcmp(a, "--chunk") == 0) {
            dst = &o->chunk;
        } else if (strcmp(a, "--ring-size") == 0) {
            dst = &o->ring_size;
        } else if (strcmp(a, "--ring-hops") == 0) {
            dst = &o->ring_hops;
        } else {
            usage(stderr);
            return -1;
        }
        if (dst) {
            *dst = v;
        }
        i++;
    }
    if (o->ring_size < 2 || o->ring_hops < o->ring_size) {
        fprintf(stderr, "girder-bench: need --ring-size >= 2 and --ring-hops >= ring size\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o = {.n_spawn = 1000000,
                    .n_pingpong = 1000000,
                    .n_oneway = 10000000,
                    .ring_size = 1000,
                    .ring_hops = 1000000,
                    .chunk = CHUNK_DEFAULT,
                    .reps = 3,
                    .timeout_ms = 300000,
                    .kinds = {true, true, true, true, true}};
    static const char *const value_key[] = {"spawn_us", "pingpong_rt_s", "oneway_msgs_s",
                                            "ring_hops_s", "oneway_paced_msgs_s"};
    static const char *const runs_key[] = {"spawn_us_runs", "pingpong_rt_s_runs",
                                           "oneway_msgs_s_runs", "ring_hops_s_runs",
                                           "oneway_paced_msgs_s_runs"};
    static const char *const n_key[] = {"spawn_n", "pingpong_n", "oneway_n", "ring_hops",
                                        "oneway_paced_n"};
    out w = {.n = 0};
    int status = 0;

    if (parse_args(argc, argv, &o) < 0) {
        return 2;
    }
    put(&w, "impl", false, "girder");
    put(&w, "schedulers", true, "%ld",
        o.schedulers ? (long)o.schedulers : sysconf(_SC_NPROCESSORS_ONLN));
    put(&w, "reps", true, "%u", o.reps);
    put(&w, "chunk", true, "%" PRIu64, o.chunk);
    for (unsigned k = 0; k < B_NKINDS; k++) {
        const uint64_t ns[] = {o.n_spawn, o.n_pingpong, o.n_oneway,
                               o.ring_hops / o.ring_size * o.ring_size, o.n_oneway};
        double vals[64];
        char runs[160] = "";
        size_t len = 0;
        unsigned reps = o.reps < 64 ? o.reps : 64, done = 0;
        run_result first = {.info_mem = -1}, res = {.info_mem = -1};
        double teardown = 0;
        int r = 0;

        if (!o.kinds[k]) {
            continue;
        }
        put(&w, n_key[k], true, "%" PRIu64, ns[k]);
        if (k == B_RING) {
            put(&w, "ring_size", true, "%" PRIu64, o.ring_size);
        }
        for (unsigned i = 0; i < reps; i++) {
            fprintf(stderr, "girder-bench: %s run %u/%u ...", kind_names[k], i + 1, reps);
            fflush(stderr);
            if ((r = run_once(&o, (enum bench_kind)k, &res)) < 0) {
                fprintf(stderr, " failed: %s\n", gr_strerror(r));
                break;
            }
            fprintf(stderr, " %.4g %s\n", res.value, k == B_SPAWN ? "us/spawn" : "/s");
            if (i == 0) {
                first = res;
            }
            teardown = teardown > res.teardown_s ? teardown : res.teardown_s;
            vals[done++] = res.value;
            if (len < sizeof runs) {
                len += (size_t)snprintf(runs + len, sizeof runs - len, "%s%.6g", i ? "," : "",
                                        res.value);
            }
        }
        if (r < 0) {
            put(&w, value_key[k], false, "error: %s", gr_errid(r));
            status = 1;
            continue;
        }
        qsort(vals, done, sizeof vals[0], cmp_double);
        put(&w, value_key[k], true, "%.6g", vals[done / 2]);
        put(&w, runs_key[k], false, "%s", runs);
        if (k == B_SPAWN) {
            /* Memory from the first run only: later runs reuse pages that the
             * allocator kept after the previous runtime was freed. */
            put(&w, "mem_bytes", true, "%.1f", (double)first.rss_delta / (double)o.n_spawn);
            put(&w, "mem_info_bytes", true, "%" PRId64, first.info_mem);
            put(&w, "spawn_teardown_s", true, "%.3f", teardown);
        }
    }
    print_out(&w, o.json);
    return status;
}
