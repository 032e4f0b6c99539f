/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tap.c - taps: a server-side subscriber that buffers what it receives for a
 * client that polls (the CLI's `girder sub`), so a hidden client subscribes
 * without being a process or a member.
 *
 * Design notes
 * - A tap is a process (behaviour below) subscribed to the patterns it was
 *   opened with, plus a bounded buffer (gr_ps_tap, shared: the tap process
 *   fills it, the keeper drains it when serving tap_poll). Each ["$pub",
 *   Topic, Payload] it handles is copied into the buffer (a copy, not a ref:
 *   the subscription's backlog then sees it handled at once); at the bound
 *   the message is dropped and counted. So a client that stops polling costs
 *   the node at most `max` messages and GR_TAP_MAX_BYTES (150 messages of
 *   1 MB held 154 MB before the byte bound). A message whose payload nests
 *   too deep for the answer (which wraps it 3 levels deeper: the client
 *   could not unpack the whole answer, and lost the batch) is dropped and
 *   counted too.
 * - Streaming (tap_wait): the client keeps one long request outstanding,
 *   ["tap_wait", Tap, Ms]. The keeper hands that "$call" to the tap process
 *   as it is (gr_ps_tap_forward); the tap answers it at once if it holds
 *   messages, else parks it (its From and Ref, tap-process state only) and
 *   answers it with the first message that arrives, or empty after Ms (a
 *   "$tap_wake" timer tagged with a sequence number, so a stale timer is
 *   ignored). So the tap is a proxy that forwards to the client's connection
 *   as fast as the client reads, one reply in flight; what arrives meanwhile
 *   is buffered (bounded, drops counted) and goes in the next reply. A reply
 *   carries at most GR_TAP_BATCH messages / GR_TAP_BATCH_BYTES.
 * - A tap that is not polled for GR_TAP_IDLE_MS (and has no parked wait)
 *   stops by itself (the client went away without tap_close: the CLI killed,
 *   its connection lost). Its subscriptions go with it (the keeper's
 *   cleanup); a parked wait is answered noproc.
 * - The buffer is freed by the tap's terminate, after it is unlinked from
 *   ps->taps under ps->lock; the keeper only touches a tap found in that list
 *   under ps->lock, so it never sees a freed one.
 */
#include "pubsub/pubsub_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GR_TAP_IDLE_MS 30000u         /* a tap nobody polled for this long stops */
#define GR_TAP_TICK_MS 5000u          /* how often it checks */
#define GR_TAP_BATCH 1000u            /* most messages in one poll/wait answer */
#define GR_TAP_BATCH_BYTES (1u << 20) /* most envelope bytes in one answer */
#define GR_TAP_MAX_BYTES (8u << 20)   /* most bytes a tap holds (a subscription's default) */
#define GR_TAP_WAIT_MAX 60000u        /* longest wait a client may ask (ms) */

struct gr_ps_tap {
    gr_ps_tap *next;      /* ps->taps, under ps->lock */
    gr_pubsub *ps;        /* its node's pub/sub */
    girder_pid pid;       /* the tap process; under ps->lock */
    pthread_mutex_t lock; /* below */
    girder_msg **buf;     /* ["$pub", Topic, Payload] copies, oldest first */
    uint32_t n, max;      /* held / bound */
    size_t bytes;         /* held: their sizes, at most GR_TAP_MAX_BYTES */
    uint64_t dropped;     /* messages lost at a bound, or too deep to answer */
    uint64_t last_poll;   /* monotonic ms of the last poll (or the open) */
    /* the parked tap_wait: tap process only, no lock */
    bool waiting;      /* a "$call" tap_wait is parked */
    girder_pid w_from; /* its caller */
    girder_ref w_ref;  /* its ref */
    uint64_t w_seq;    /* tags the wait's "$tap_wake" timer */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tap_free(gr_ps_tap *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        girder_msg_unref(t->buf[i]);
    }
    free(t->buf);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static int tick(girder_ctx *ctx)
{
    girder_msg *m = girder_msg_atom("$tap_tick");
    girder_ref tref;

    if (m == NULL) {
        return -ENOMEM;
    }
    if (girder_send_after(ctx, girder_self(ctx), GR_TAP_IDLE_MS / 6, m, &tref) < 0) {
        girder_msg_unref(m);
        return -ENOMEM;
    }
    return 0;
}

/* ["$tap_wake", seq]: the timer of a parked wait. NULL when memory is short. */
static girder_msg *wake_msg(uint64_t seq)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "$tap_wake", 9);
    msgpack_pack_uint64(&pk, seq);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

/* Is msg ["$tap_wake", seq] for the parked wait? */
static bool is_wake_for(const gr_ps_tap *t, const girder_msg *msg)
{
    msgpack_unpacked u;
    bool yes = false;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY &&
        u.data.via.array.size == 2 && gr_term_is_str(&u.data.via.array.ptr[0], "$tap_wake") &&
        u.data.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        yes = t->waiting && u.data.via.array.ptr[1].via.u64 == t->w_seq;
    }
    msgpack_unpacked_destroy(&u);
    return yes;
}

/* Pack {"dropped": N, "msgs": [[Topic, Payload], ...]} with the oldest
 * messages, at most GR_TAP_BATCH of them and GR_TAP_BATCH_BYTES (at least one),
 * and drop them from the buffer. Caller holds t->lock. */
static void drain_locked(gr_ps_tap *t, msgpack_packer *pk)
{
    uint32_t k = 0;
    size_t bytes = 0;

    while (k < t->n && k < GR_TAP_BATCH &&
           (k == 0 || bytes + girder_msg_size(t->buf[k]) <= GR_TAP_BATCH_BYTES)) {
        bytes += girder_msg_size(t->buf[k]);
        k++;
    }
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "dropped", 7);
    msgpack_pack_uint64(pk, t->dropped);
    msgpack_pack_str_with_body(pk, "msgs", 4);
    msgpack_pack_array(pk, k);
    for (uint32_t i = 0; i < k; i++) {
        /* [Topic, Payload]: the ["$pub", Topic, Payload] minus its head */
        const uint8_t *p = girder_msg_data(t->buf[i]);

        msgpack_pack_array(pk, 2);
        pk->callback(pk->data, (const char *)p + 6, girder_msg_size(t->buf[i]) - 6);
        girder_msg_unref(t->buf[i]);
    }
    memmove(t->buf, t->buf + k, (t->n - k) * sizeof(*t->buf));
    t->n -= k;
    t->bytes -= bytes;
    t->last_poll = mono_ms();
}

/* Answer the parked wait with what the buffer holds (possibly nothing), or
 * with ["error", Id] when err < 0. Tap process. */
static void answer_wait(girder_ctx *ctx, gr_ps_tap *t, int err)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *resp;

    if (!t->waiting) {
        return;
    }
    t->waiting = false;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (err < 0) {
        const char *id = gr_errid(err);

        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_str_with_body(&pk, id, strlen(id));
    } else {
        pthread_mutex_lock(&t->lock);
        drain_locked(t, &pk);
        pthread_mutex_unlock(&t->lock);
    }
    resp = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (resp != NULL) {
        (void)girder_reply(ctx, t->w_from, t->w_ref, resp);
        girder_msg_unref(resp);
    }
    /* out of memory: the client's deadline answers it, and it asks again */
}

/* ["$call", From, Ref, ["tap_wait", Tap, Ms]], handed over by the keeper:
 * answer at once if messages are buffered, else park it. Tap process. */
static void on_wait(girder_ctx *ctx, gr_ps_tap *t, const girder_msg *msg)
{
    msgpack_unpacked u;
    const msgpack_object *a, *q;
    girder_pid from;
    girder_ref ref, tref;
    girder_msg *wake;
    uint64_t ms;
    bool ready;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) < 0 || u.data.type != MSGPACK_OBJECT_ARRAY ||
        u.data.via.array.size != 4) {
        goto out;
    }
    a = u.data.via.array.ptr;
    q = &a[3];
    if (girder_get_pid(ctx, &a[1], &from) < 0 || girder_get_ref(ctx, &a[2], &ref) < 0 ||
        q->type != MSGPACK_OBJECT_ARRAY || q->via.array.size != 3 ||
        q->via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        goto out;
    }
    ms = q->via.array.ptr[2].via.u64;
    if (ms > GR_TAP_WAIT_MAX) {
        ms = GR_TAP_WAIT_MAX;
    }
    answer_wait(ctx, t, 0); /* a client has one wait: an older one is over */
    t->waiting = true;
    t->w_from = from;
    t->w_ref = ref;
    t->w_seq++;
    pthread_mutex_lock(&t->lock);
    ready = t->n > 0;
    t->last_poll = mono_ms();
    pthread_mutex_unlock(&t->lock);
    if (ready || ms == 0) {
        answer_wait(ctx, t, 0);
        goto out;
    }
    wake = wake_msg(t->w_seq);
    if (wake == NULL || girder_send_after(ctx, girder_self(ctx), ms, wake, &tref) < 0) {
        girder_msg_unref(wake);
        answer_wait(ctx, t, 0); /* no timer: answer empty now */
    }
out:
    msgpack_unpacked_destroy(&u);
}

static int tap_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_ps_tap *t;
    uintptr_t v;

    if (arg == NULL || girder_msg_size(arg) != sizeof(v)) {
        return GR_EBADARG;
    }
    memcpy(&v, girder_msg_data(arg), sizeof(v));
    t = (gr_ps_tap *)v; /* t->pid is set by gr_ps_tap_open, under ps->lock */
    *ret_state = t;
    return tick(ctx);
}

static int tap_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    gr_ps_tap *t = state;
    const uint8_t *p = girder_msg_data(msg);
    size_t len = girder_msg_size(msg);
    girder_msg *copy;
    bool fits;

    if (girder_msg_is_atom(msg, "$tap_tick")) {
        bool idle;

        pthread_mutex_lock(&t->lock);
        idle = !t->waiting && mono_ms() - t->last_poll > GR_TAP_IDLE_MS;
        pthread_mutex_unlock(&t->lock);
        if (idle || tick(ctx) < 0) {
            return GIRDER_STOP;
        }
        return GIRDER_CONTINUE;
    }
    /* ["$pub", ...]: fixarray 3, fixstr 4 "$pub" */
    if (len < 6 || p[0] != 0x93 || p[1] != 0xa4 || memcmp(p + 2, "$pub", 4) != 0) {
        /* ["$call", ...] (fixarray 4, fixstr 5): a tap_wait the keeper handed over */
        if (len > 7 && p[0] == 0x94 && p[1] == 0xa5 && memcmp(p + 2, "$call", 5) == 0) {
            on_wait(ctx, t, msg);
        } else if (is_wake_for(t, msg)) {
            answer_wait(ctx, t, 0);
        }
        return GIRDER_CONTINUE;
    }
    /* the answer holds [Topic, Payload] inside ["$rpc", Tag, Status, {"msgs":
     * [...]}]: 3 levels deeper than this message; the client's unpack would
     * refuse the whole answer */
    fits = gr_term_validate_nested(p, len, 3) == 0;
    pthread_mutex_lock(&t->lock);
    if (fits && t->n < t->max && len <= GR_TAP_MAX_BYTES - t->bytes &&
        (copy = girder_msg_new(p, len)) != NULL) {
        t->buf[t->n++] = copy;
        t->bytes += len;
    } else {
        t->dropped++;
    }
    pthread_mutex_unlock(&t->lock);
    answer_wait(ctx, t, 0); /* forward to a waiting client at once */
    return GIRDER_CONTINUE;
}

static void tap_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    gr_ps_tap *t = state;
    gr_pubsub *ps = t->ps;

    (void)reason;
    answer_wait(ctx, t, GR_ENOPROC);
    pthread_mutex_lock(&ps->lock);
    for (gr_ps_tap **pp = &ps->taps; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&ps->lock);
    tap_free(t);
}

static const girder_behaviour tap_beh = {
    .name = "pubsub_tap",
    .init = tap_init,
    .handle = tap_handle,
    .terminate = tap_terminate,
};

int gr_ps_tap_open(gr_pubsub *ps, girder_ctx *ctx, const msgpack_object *patterns, uint32_t max,
                   girder_pid *ret_pid)
{
    gr_sub_opts opts = {.max_msgs = 0, .policy = GR_SUB_DROP};
    gr_ps_tap *t;
    girder_msg *arg;
    uintptr_t v;
    girder_pid pid;
    int r;

    if (patterns->type != MSGPACK_OBJECT_ARRAY || patterns->via.array.size == 0 ||
        patterns->via.array.size > 64 || max == 0 || max > GR_TAP_MAX) {
        return GR_EBADARG;
    }
    for (uint32_t i = 0; i < patterns->via.array.size; i++) {
        const msgpack_object *p = &patterns->via.array.ptr[i];

        if (p->type != MSGPACK_OBJECT_STR ||
            gr_topic_check(p->via.str.ptr, p->via.str.size, true) != GR_TOPIC_OK) {
            return GR_EBADARG;
        }
    }
    if ((t = calloc(1, sizeof(*t))) == NULL || (t->buf = calloc(max, sizeof(*t->buf))) == NULL) {
        free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->ps = ps;
    t->max = max;
    t->last_poll = mono_ms();
    v = (uintptr_t)t;
    if ((arg = girder_msg_new(&v, sizeof(v))) == NULL) {
        tap_free(t);
        return -ENOMEM;
    }
    /* Linked before it runs: its terminate always finds itself. */
    pthread_mutex_lock(&ps->lock);
    t->next = ps->taps;
    ps->taps = t;
    pthread_mutex_unlock(&ps->lock);
    r = girder_spawn(ctx, &tap_beh, arg, 0, &pid, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        pthread_mutex_lock(&ps->lock);
        for (gr_ps_tap **pp = &ps->taps; *pp; pp = &(*pp)->next) {
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        }
        pthread_mutex_unlock(&ps->lock);
        tap_free(t); /* init never ran, or failed before taking it */
        return r;
    }
    pthread_mutex_lock(&ps->lock);
    t->pid = pid; /* only read under ps->lock (gr_ps_tap_poll) */
    pthread_mutex_unlock(&ps->lock);
    for (uint32_t i = 0; i < patterns->via.array.size; i++) {
        const msgpack_object *p = &patterns->via.array.ptr[i];

        r = gr_pubsub_subscribe(ps, pid, p->via.str.ptr, p->via.str.size, &opts);
        if (r < 0 && r != -EEXIST) {
            {
                girder_msg *why = girder_msg_atom("shutdown");

                if (why != NULL) {
                    (void)girder_exit(ctx, pid, why);
                    girder_msg_unref(why);
                }
            }
            return r;
        }
    }
    *ret_pid = pid;
    return 0;
}

int gr_ps_tap_poll(gr_pubsub *ps, girder_pid pid, msgpack_packer *pk)
{
    gr_ps_tap *t;
    int r = GR_ENOPROC;

    pthread_mutex_lock(&ps->lock);
    for (t = ps->taps; t; t = t->next) {
        if (girder_pid_eq(t->pid, pid)) {
            break;
        }
    }
    if (t != NULL) {
        pthread_mutex_lock(&t->lock);
        drain_locked(t, pk);
        pthread_mutex_unlock(&t->lock);
        r = 0;
    }
    pthread_mutex_unlock(&ps->lock);
    return r;
}

int gr_ps_tap_forward(gr_pubsub *ps, girder_ctx *ctx, girder_pid pid, const girder_msg *call)
{
    gr_ps_tap *t;
    girder_msg *m;
    bool found = false;

    pthread_mutex_lock(&ps->lock);
    for (t = ps->taps; t; t = t->next) {
        if (girder_pid_eq(t->pid, pid)) {
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&ps->lock);
    if (!found) {
        return GR_ENOPROC;
    }
    if ((m = girder_msg_new(girder_msg_data(call), girder_msg_size(call))) == NULL) {
        return -ENOMEM;
    }
    if (girder_send(ctx, pid, m) < 0) {
        girder_msg_unref(m);
        return GR_ENOPROC; /* it stopped since */
    }
    return 0;
}
