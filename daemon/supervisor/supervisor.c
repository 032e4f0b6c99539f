/* SPDX-License-Identifier: Apache-2.0 */
/*
 * supervisor.c - the "supervisor" behaviour declared in girder.h: child specs,
 * the one_for_one / one_for_all / rest_for_one strategies, the permanent /
 * transient / temporary restart types, restart intensity, ordered shutdown, and
 * the dynamic-children calls (start_child, terminate_child, delete_child,
 * restart_child, which_children, count_children). It is an ordinary behaviour
 * written against girder.h only; docs/supervisors.md is the user's guide.
 *
 * Owner: every field of struct sup and struct child belongs to the supervisor
 * process and is touched only from its callbacks, on its scheduler thread.
 *
 * Design notes
 * - Never block. Stopping a child means: send it an exit signal, then wait for
 *   its EXIT as an ordinary message. So the supervisor is a small state machine
 *   with at most one operation ("op") in progress:
 *     OP_RESTART    stop a range of children in reverse start order, then start
 *                   the same range again in start order (the strategies);
 *     OP_TERMINATE  stop one child, then answer the terminate_child call;
 *     OP_EXIT       stop every child in reverse order, then exit with a reason
 *                   (intensity exceeded, or an EXIT from a non-child: the parent).
 *   Stopping one child: monitor it, send "shutdown" (or "kill" when
 *   shutdown_ms is 0), arm a timer for shutdown_ms, wait for its EXIT (we are
 *   linked and trap exits) or its DOWN; on timeout send "kill". Only then move
 *   to the next child.
 * - An op names its range by sequence numbers, not pointers: seq strictly
 *   increases along the start-order list (new children are appended, restarted
 *   children keep their place), so "is this child in the range" is two compares
 *   and an op never holds a pointer to a child that may have been freed. The
 *   cursor (op.cur) only ever points at the next child to visit; children are
 *   removed only after the cursor has passed them.
 * - While an op runs, messages that do not belong to it are deferred to a FIFO
 *   and handled in arrival order afterwards, which is what OTP's supervisor gets
 *   from its selective receive. Handled at once instead: the EXIT of a child
 *   still ahead in the op's stop range (it is just marked dead), the DOWN of the
 *   monitor on the child being stopped, our own timer and continuation messages,
 *   and calls that arrive during OP_EXIT (answered ["error","shutting_down"]).
 * - A deferred EXIT from a child sets child->exit_pending. If an op sweeps that
 *   child before the EXIT is handled, the child is treated as already dead (no
 *   signal is sent) and may be restarted with a new pid; the deferred EXIT then
 *   finds no child with its pid. The queue entry remembers that it came from a
 *   child, so such a stale EXIT is dropped instead of being mistaken for an EXIT
 *   from the parent (which would shut the supervisor down).
 * - Any EXIT from a pid that is not a current child is treated as the parent (or
 *   an operator) telling us to stop: ordered shutdown, then exit with its reason.
 *   This relies on girder.h's link contract: after girder_unlink returns no exit
 *   from that link arrives (used when a child's DOWN beats its EXIT).
 * - Bounded work: one handle() call does at most SUP_BUDGET steps (a spawn, an
 *   exit signal, skipping a dead child, one deferred message). When work is
 *   left, the supervisor sends itself a continuation message carrying a fresh
 *   ref and yields, so a one_for_all restart of 100k children or a long drain
 *   never monopolises the scheduler.
 * - Indexes: children by pid (EXIT lookup) and by encoded id (calls, duplicate
 *   checks), chained hash tables with incremental rehashing (as in redis'
 *   dict.c): every operation moves a few buckets, so no single message pays
 *   for rehashing hundreds of thousands of entries. count_children reads
 *   counters kept up to date; which_children is the only O(n) request (its
 *   reply is O(n) anyway).
 * - Restart intensity: the timestamps (CLOCK_MONOTONIC, ms) of the restarts of
 *   the last period_ms, in a ring that never holds more than `intensity`
 *   entries.
 */
#include "girder/girder.h"

#include "proto/err.h"
#include "proto/term.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUP_BUDGET 64                    /* work steps per handle() call */
#define SUP_ID_MAX 1024                  /* largest encoded child id, bytes */
#define SUP_NAME_MAX 255                 /* longest behaviour name */
#define SUP_INTENSITY_MAX 1000000u       /* bounds the restart-history ring */
#define SUP_PERIOD_MS_MAX 604800000u     /* one week */
#define SUP_SHUTDOWN_MS_MAX 604800000u   /* one week; beyond that say "infinity" */
#define SUP_SHUTDOWN_DEFAULT_MS 5000     /* workers' default shutdown_ms */
#define SUP_SHUTDOWN_INFINITY UINT64_MAX /* wait for the child as long as it takes */
#define SUP_DEFAULT_INTENSITY 1          /* OTP's defaults */
#define SUP_DEFAULT_PERIOD_MS 5000
#define IDX_MIN_BUCKETS 16
#define IDX_STEP_BUCKETS 4 /* buckets moved per index operation while rehashing */
#define LOG_MOD "supervisor"

enum strategy { ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE };
enum restart_type { PERMANENT, TRANSIENT, TEMPORARY };
enum child_type { WORKER, SUPERVISOR };
enum op_kind { OP_NONE, OP_RESTART, OP_TERMINATE, OP_EXIT };
enum op_phase { PH_STOP, PH_START };
enum step {
    STEP_PROGRESS, /* did something; keep going */
    STEP_BLOCKED,  /* waiting for a message (a child's EXIT) */
    STEP_AGAIN,    /* a transient failure: retry on the next turn */
    STEP_STOP,     /* the supervisor exits now (girder_stop was called) */
};

static const char *const strategy_names[] = {"one_for_one", "one_for_all", "rest_for_one"};
static const char *const restart_names[] = {"permanent", "transient", "temporary"};
static const char *const type_names[] = {"worker", "supervisor"};

/* One child spec and, when running, its process. Owned by the sup's list. */
struct child {
    struct child *prev, *next; /* start order (sup->head .. sup->tail) */
    struct child *pid_next;    /* chain in sup->by_pid (while running) */
    struct child *id_next;     /* chain in sup->by_id (named children only) */
    uint64_t seq;              /* strictly increasing along the list */
    uint64_t id_hash;          /* hash of id[0..id_len) */
    girder_pid pid;            /* the running process; .id == 0 when not running */
    girder_ref mref;           /* monitor while being stopped; .id == 0 = none */
    const char *behaviour;     /* registered behaviour name (the behaviour's string) */
    girder_msg *arg;           /* spawn argument, owned; NULL = none */
    uint64_t shutdown_ms;      /* 0 = brutal kill; SUP_SHUTDOWN_INFINITY = wait */
    uint8_t restart;           /* enum restart_type */
    uint8_t type;              /* enum child_type */
    bool spread;               /* spawn with GIRDER_SPAWN_SPREAD */
    bool exit_pending;         /* its EXIT sits in the deferred queue */
    uint32_t id_len;           /* bytes in id; 0 = anonymous (id nil) */
    unsigned char id[];        /* the id term, msgpack-encoded */
};

/* Chained hash of children, keyed by pid or by id; does not own the children. */
struct index {
    struct child **tab[2]; /* tab[1] != NULL while tab[0] is rehashed into it */
    size_t size[2];        /* bucket counts, powers of two */
    size_t rehash;         /* next bucket of tab[0] to move */
    size_t used;           /* entries in both tables */
    bool by_pid;           /* key: pid via pid_next, or id via id_next */
};

/* A message put aside while an op runs. */
struct deferred {
    girder_msg *msg; /* owned reference */
    bool child_exit; /* an EXIT from a then-current child: stale if its pid is gone */
};

/* The operation in progress (see Design notes). */
struct op {
    enum op_kind kind;   /* OP_NONE when idle */
    enum op_phase phase; /* stop the range (backwards), then (OP_RESTART) start it */
    uint64_t first;      /* the range: children with first <= seq <= last */
    uint64_t last;
    struct child *cur;   /* next child to stop (walking back) or to start */
    bool waiting;        /* stop phase: exit sent to cur, its EXIT/DOWN not yet seen */
    bool kill_pending;   /* cur's shutdown timer fired; "kill" still to be sent */
    girder_ref tref;     /* cur's shutdown timer; .id == 0 = none */
    girder_ref ttoken;   /* the token its message carries */
    girder_msg *reason;  /* OP_EXIT: the reason to exit with; owned */
    girder_pid from;     /* OP_TERMINATE: the caller to answer */
    girder_ref from_ref; /* OP_TERMINATE: its call ref */
};

struct sup {
    enum strategy strategy;
    uint32_t intensity; /* restarts allowed within period_ms */
    uint64_t period_ms;
    struct child *head;  /* first started */
    struct child *tail;  /* last started */
    uint64_t next_seq;   /* seq for the next appended child */
    struct index by_pid; /* running children by pid */
    struct index by_id;  /* named children by encoded id */
    size_t nspecs;       /* children in the list */
    size_t nactive;      /* children with a pid */
    size_t nsups;        /* children of type supervisor */
    size_t id_bytes;     /* sum of id_len, for state_size */
    uint64_t *hist;      /* ring of restart times (ms) within the period */
    size_t hist_cap;     /* ring slots */
    size_t hist_first;   /* oldest entry */
    size_t hist_len;     /* entries */
    struct op op;        /* the operation in progress */
    struct deferred *dq; /* ring of deferred messages, power-of-two capacity */
    size_t dq_cap;
    size_t dq_first;
    size_t dq_len;
    girder_ref cont_token;  /* token of the continuation message in flight */
    bool cont_pending;      /* a continuation message is in flight */
    girder_msg *a_shutdown; /* pre-built atoms: "shutdown", "kill", "ok" */
    girder_msg *a_kill;
    girder_msg *a_ok;
};

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return gr_clock_ms();
}

/* Index of the string `o` in names[0..n), or -1. */
static int obj_enum(const msgpack_object *o, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (gr_term_is_str(o, names[i])) {
            return i;
        }
    }
    return -1;
}

/* The tag of a message ["tag", ...] of exactly `n` elements, else NULL. */
static const msgpack_object *msg_args(const msgpack_object *o, const char *tag, uint32_t n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n || n == 0 ||
        !gr_term_is_str(&o->via.array.ptr[0], tag)) {
        return NULL;
    }
    return o->via.array.ptr;
}

/* "normal", "shutdown" and ["shutdown", _] are normal exits (OTP). */
static bool is_normal_exit(const msgpack_object *r)
{
    if (gr_term_is_str(r, "normal") || gr_term_is_str(r, "shutdown")) {
        return true;
    }
    return r->type == MSGPACK_OBJECT_ARRAY && r->via.array.size == 2 &&
           gr_term_is_str(&r->via.array.ptr[0], "shutdown");
}

static bool running(const struct child *c)
{
    return c->pid.id != 0;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t pid_hash(girder_pid p)
{
    return mix64(p.id ^ mix64(((uint64_t)p.node << 32) | p.creation));
}

static uint64_t bytes_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed */

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return mix64(h);
}

/* A packer writing into its own sbuffer. */
struct pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
    int err; /* sticky: -ENOMEM once any write failed */
};

static void pk_init(struct pk *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
    k->err = 0;
}

static void pk_check(struct pk *k, int r)
{
    if (r != 0) {
        k->err = -ENOMEM;
    }
}

static void pk_str(struct pk *k, const char *s)
{
    size_t n = strlen(s);

    pk_check(k, msgpack_pack_str(&k->p, n));
    pk_check(k, msgpack_pack_str_body(&k->p, s, n));
}

/* Already-encoded term bytes. */
static void pk_raw(struct pk *k, const void *b, size_t n)
{
    pk_check(k, msgpack_sbuffer_write(&k->sb, b, n));
}

static void pk_pid(struct pk *k, girder_ctx *ctx, girder_pid pid)
{
    if (pid.id == 0) {
        pk_check(k, msgpack_pack_nil(&k->p));
    } else {
        pk_check(k, girder_pack_pid(ctx, &k->p, pid));
    }
}

static void pk_child_id(struct pk *k, const struct child *c)
{
    if (c->id_len == 0) {
        pk_check(k, msgpack_pack_nil(&k->p));
    } else {
        pk_raw(k, c->id, c->id_len);
    }
}

/* The packed term as a new message (NULL on failure); frees the buffer. */
static girder_msg *pk_finish(struct pk *k)
{
    girder_msg *m = NULL;

    if (k->err == 0 && k->sb.size > 0) {
        m = girder_msg_new(k->sb.data, k->sb.size);
    }
    msgpack_sbuffer_destroy(&k->sb);
    return m;
}

/* A message holding the term `o`, or NULL. */
static girder_msg *obj_msg(const msgpack_object *o)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_object(&k.p, *o));
    return pk_finish(&k);
}

/* For log lines only. */
static const char *obj_text(const msgpack_object *o, char *buf, size_t len)
{
    if (msgpack_object_print_buffer(buf, len, *o) <= 0) {
        snprintf(buf, len, "?");
    }
    return buf;
}

static const char *child_text(const struct child *c, char *buf, size_t len)
{
    msgpack_unpacked u;

    if (c->id_len == 0) {
        snprintf(buf, len, "(anonymous %s)", c->behaviour);
        return buf;
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)c->id, c->id_len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        obj_text(&u.data, buf, len);
    } else {
        snprintf(buf, len, "?");
    }
    msgpack_unpacked_destroy(&u);
    return buf;
}

/* ---- the indexes -------------------------------------------------------------- */

static struct child **idx_link(const struct index *ix, struct child *c)
{
    return ix->by_pid ? &c->pid_next : &c->id_next;
}

static uint64_t idx_hash_of(const struct index *ix, const struct child *c)
{
    return ix->by_pid ? pid_hash(c->pid) : c->id_hash;
}

static struct child **idx_slot(struct index *ix, int t, uint64_t h)
{
    return &ix->tab[t][h & (ix->size[t] - 1)];
}

static int idx_init(struct index *ix, bool by_pid)
{
    memset(ix, 0, sizeof(*ix));
    ix->by_pid = by_pid;
    ix->tab[0] = calloc(IDX_MIN_BUCKETS, sizeof(*ix->tab[0]));
    if (!ix->tab[0]) {
        return -ENOMEM;
    }
    ix->size[0] = IDX_MIN_BUCKETS;
    return 0;
}

/* Frees the tables, not the children. NULL-safe on a zeroed index. */
static void idx_free(struct index *ix)
{
    free(ix->tab[0]);
    free(ix->tab[1]);
    memset(ix, 0, sizeof(*ix));
}

/* Move up to n non-empty buckets (visiting at most 10n empty ones) from tab[0]
 * to tab[1]; finish the rehash when tab[0] is empty. */
static void idx_rehash_step(struct index *ix, size_t n)
{
    size_t empty_visits = n * 10;

    if (!ix->tab[1]) {
        return;
    }
    while (n > 0 && ix->rehash < ix->size[0]) {
        struct child *c = ix->tab[0][ix->rehash];

        if (!c) {
            ix->rehash++;
            if (--empty_visits == 0) {
                break;
            }
            continue;
        }
        while (c) {
            struct child *next = *idx_link(ix, c);
            struct child **slot = idx_slot(ix, 1, idx_hash_of(ix, c));

            *idx_link(ix, c) = *slot;
            *slot = c;
            c = next;
        }
        ix->tab[0][ix->rehash++] = NULL;
        n--;
    }
    if (ix->rehash == ix->size[0]) {
        free(ix->tab[0]);
        ix->tab[0] = ix->tab[1];
        ix->size[0] = ix->size[1];
        ix->tab[1] = NULL;
        ix->size[1] = 0;
        ix->rehash = 0;
    }
}

/* Start growing (load > 1) or shrinking (load < 1/8) unless already rehashing.
 * An allocation failure just keeps the current table: longer chains, still
 * correct. */
static void idx_maybe_resize(struct index *ix)
{
    size_t want;
    struct child **t;

    if (ix->tab[1]) {
        return;
    }
    if (ix->used > ix->size[0]) {
        want = ix->size[0] * 2;
    } else if (ix->size[0] > IDX_MIN_BUCKETS && ix->used < ix->size[0] / 8) {
        want = IDX_MIN_BUCKETS;
        while (want < ix->used * 2) {
            want *= 2;
        }
    } else {
        return;
    }
    t = calloc(want, sizeof(*t));
    if (!t) {
        return;
    }
    ix->tab[1] = t;
    ix->size[1] = want;
    ix->rehash = 0;
}

static void idx_insert(struct index *ix, struct child *c)
{
    struct child **slot;

    idx_rehash_step(ix, IDX_STEP_BUCKETS);
    idx_maybe_resize(ix);
    slot = idx_slot(ix, ix->tab[1] ? 1 : 0, idx_hash_of(ix, c));
    *idx_link(ix, c) = *slot;
    *slot = c;
    ix->used++;
}

/* c must be in the index (its key unchanged since insertion). */
static void idx_remove(struct index *ix, struct child *c)
{
    uint64_t h = idx_hash_of(ix, c);

    idx_rehash_step(ix, IDX_STEP_BUCKETS);
    for (int t = 0; t < 2 && ix->tab[t]; t++) {
        for (struct child **pp = idx_slot(ix, t, h); *pp; pp = idx_link(ix, *pp)) {
            if (*pp == c) {
                *pp = *idx_link(ix, c);
                *idx_link(ix, c) = NULL;
                ix->used--;
                idx_maybe_resize(ix);
                return;
            }
        }
    }
    assert(!"supervisor: child missing from its index");
}

static struct child *idx_find_pid(struct index *ix, girder_pid pid)
{
    uint64_t h = pid_hash(pid);

    idx_rehash_step(ix, IDX_STEP_BUCKETS);
    for (int t = 0; t < 2 && ix->tab[t]; t++) {
        for (struct child *c = *idx_slot(ix, t, h); c; c = c->pid_next) {
            if (girder_pid_eq(c->pid, pid)) {
                return c;
            }
        }
    }
    return NULL;
}

static struct child *idx_find_id(struct index *ix, const void *id, size_t len, uint64_t h)
{
    idx_rehash_step(ix, IDX_STEP_BUCKETS);
    for (int t = 0; t < 2 && ix->tab[t]; t++) {
        for (struct child *c = *idx_slot(ix, t, h); c; c = c->id_next) {
            if (c->id_hash == h && c->id_len == len && memcmp(c->id, id, len) == 0) {
                return c;
            }
        }
    }
    return NULL;
}

/* ---- children ------------------------------------------------------------------- */

static struct child *child_free(struct child *c)
{
    if (c) {
        girder_msg_unref(c->arg);
        free(c);
    }
    return NULL;
}

/* Append c (not running) to the list and the id index. */
static void child_append(struct sup *s, struct child *c)
{
    c->seq = s->next_seq++;
    c->prev = s->tail;
    c->next = NULL;
    if (s->tail) {
        s->tail->next = c;
    } else {
        s->head = c;
    }
    s->tail = c;
    if (c->id_len > 0) {
        idx_insert(&s->by_id, c);
    }
    s->nspecs++;
    s->nsups += c->type == SUPERVISOR;
    s->id_bytes += c->id_len;
}

/* Remove a child that is not running from the list and free it. */
static void child_remove(struct sup *s, struct child *c)
{
    assert(!running(c));
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        s->tail = c->prev;
    }
    if (c->id_len > 0) {
        idx_remove(&s->by_id, c);
    }
    s->nspecs--;
    s->nsups -= c->type == SUPERVISOR;
    s->id_bytes -= c->id_len;
    child_free(c);
}

/* The child's process is gone (or is to be forgotten): drop pid and monitor. */
static void mark_dead(girder_ctx *ctx, struct sup *s, struct child *c)
{
    if (c->mref.id != 0) {
        girder_demonitor(ctx, c->mref);
        c->mref = (girder_ref){0};
    }
    if (running(c)) {
        idx_remove(&s->by_pid, c);
        c->pid = (girder_pid){0};
        s->nactive--;
    }
    c->exit_pending = false;
}

/* Spawn c's process, linked. 0 or a negative error (c unchanged). */
static int child_spawn(girder_ctx *ctx, struct sup *s, struct child *c)
{
    unsigned flags = GIRDER_SPAWN_LINK | (c->spread ? GIRDER_SPAWN_SPREAD : 0u);
    girder_pid pid;
    int r;

    assert(!running(c));
    if ((r = girder_spawn_named(ctx, c->behaviour, c->arg, flags, &pid, NULL)) < 0) {
        return r;
    }
    c->pid = pid;
    idx_insert(&s->by_pid, c);
    s->nactive++;
    return 0;
}

/* ---- child specs ------------------------------------------------------------------ */

/* A parsed, not yet allocated child spec; pointers borrow from the request. */
struct spec {
    const msgpack_object *id;  /* NULL if missing */
    const msgpack_object *arg; /* NULL if missing */
    const girder_behaviour *beh;
    uint64_t shutdown_ms;
    bool has_shutdown;
    int restart; /* enum restart_type */
    int type;    /* enum child_type, -1 = default from the behaviour */
    bool spread;
};

/* Parse a ChildSpec map. NULL on success, else the stable reason ("why") of
 * ["bad_child_spec", Id, Why]; sp->id is set whenever the map has an id. */
static const char *spec_parse(girder_rt *rt, const msgpack_object *o, struct spec *sp)
{
    const msgpack_object *beh = NULL;
    char name[SUP_NAME_MAX + 1];

    memset(sp, 0, sizeof(*sp));
    sp->restart = PERMANENT;
    sp->type = -1;
    if (o->type != MSGPACK_OBJECT_MAP) {
        return "not_a_map";
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (gr_term_is_str(&o->via.map.ptr[i].key, "id")) {
            sp->id = &o->via.map.ptr[i].val;
        }
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *v = &o->via.map.ptr[i].val;

        if (gr_term_is_str(k, "id")) {
            if (v->type == MSGPACK_OBJECT_EXT) {
                return "bad_id"; /* a pid or ref would be ambiguous in calls */
            }
        } else if (gr_term_is_str(k, "behaviour")) {
            beh = v;
        } else if (gr_term_is_str(k, "arg")) {
            sp->arg = v;
        } else if (gr_term_is_str(k, "restart")) {
            if ((sp->restart = obj_enum(v, restart_names, 3)) < 0) {
                return "bad_restart";
            }
        } else if (gr_term_is_str(k, "shutdown_ms")) {
            if (gr_term_is_str(v, "infinity")) {
                sp->shutdown_ms = SUP_SHUTDOWN_INFINITY;
            } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                       v->via.u64 <= SUP_SHUTDOWN_MS_MAX) {
                sp->shutdown_ms = v->via.u64;
            } else {
                return "bad_shutdown";
            }
            sp->has_shutdown = true;
        } else if (gr_term_is_str(k, "type")) {
            if ((sp->type = obj_enum(v, type_names, 2)) < 0) {
                return "bad_type";
            }
        } else if (gr_term_is_str(k, "spread")) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN) {
                return "bad_spread";
            }
            sp->spread = v->via.boolean;
        } else {
            return "unknown_key";
        }
    }
    if (!sp->id) {
        return "missing_id";
    }
    if (!beh) {
        return "missing_behaviour";
    }
    if (beh->type != MSGPACK_OBJECT_STR || beh->via.str.size == 0) {
        return "bad_behaviour";
    }
    if (beh->via.str.size > SUP_NAME_MAX) {
        return "unknown_behaviour";
    }
    memcpy(name, beh->via.str.ptr, beh->via.str.size);
    name[beh->via.str.size] = '\0';
    if (!(sp->beh = girder_behaviour_find(rt, name))) {
        return "unknown_behaviour";
    }
    if (sp->type < 0) {
        sp->type = sp->beh == &girder_supervisor || strcmp(sp->beh->name, "supervisor") == 0
                       ? SUPERVISOR
                       : WORKER;
    }
    if (!sp->has_shutdown) {
        sp->shutdown_ms = sp->type == SUPERVISOR ? SUP_SHUTDOWN_INFINITY : SUP_SHUTDOWN_DEFAULT_MS;
    }
    return NULL;
}

/* Allocate the child for a parsed spec. 0 and *ret_child; -ENOMEM; or GR_EBADARG
 * (id larger than SUP_ID_MAX). */
static int spec_child(const struct spec *sp, struct child **ret_child)
{
    struct pk k;
    struct child *c;
    size_t id_len = 0;

    pk_init(&k);
    if (sp->id->type != MSGPACK_OBJECT_NIL) {
        pk_check(&k, msgpack_pack_object(&k.p, *sp->id));
        id_len = k.sb.size;
    }
    if (k.err < 0 || id_len > SUP_ID_MAX) {
        msgpack_sbuffer_destroy(&k.sb);
        return k.err < 0 ? k.err : GR_EBADARG;
    }
    c = calloc(1, sizeof(*c) + id_len);
    if (!c) {
        msgpack_sbuffer_destroy(&k.sb);
        return -ENOMEM;
    }
    if (id_len > 0) {
        memcpy(c->id, k.sb.data, id_len);
    }
    msgpack_sbuffer_destroy(&k.sb);
    c->id_len = (uint32_t)id_len;
    c->id_hash = bytes_hash(c->id, id_len);
    if (sp->arg && !(c->arg = obj_msg(sp->arg))) {
        free(c);
        return -ENOMEM;
    }
    c->behaviour = sp->beh->name;
    c->shutdown_ms = sp->shutdown_ms;
    c->restart = (uint8_t)sp->restart;
    c->type = (uint8_t)sp->type;
    c->spread = sp->spread;
    *ret_child = c;
    return 0;
}

/* The child named by `key`: a pid (any child) or an id term (named children). */
static struct child *lookup(girder_ctx *ctx, struct sup *s, const msgpack_object *key)
{
    girder_pid pid;
    struct pk k;
    struct child *c = NULL;

    if (key->type == MSGPACK_OBJECT_EXT) {
        return girder_get_pid(ctx, key, &pid) == 0 ? idx_find_pid(&s->by_pid, pid) : NULL;
    }
    if (key->type == MSGPACK_OBJECT_NIL) {
        return NULL;
    }
    pk_init(&k);
    pk_check(&k, msgpack_pack_object(&k.p, *key));
    if (k.err == 0 && k.sb.size <= SUP_ID_MAX) {
        c = idx_find_id(&s->by_id, k.sb.data, k.sb.size,
                        bytes_hash((const unsigned char *)k.sb.data, k.sb.size));
    }
    msgpack_sbuffer_destroy(&k.sb);
    return c;
}

/* ["bad_child_spec", Id | nil, why] */
static girder_msg *bad_spec_reason(const struct spec *sp, const char *why)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 3));
    pk_str(&k, "bad_child_spec");
    if (sp->id) {
        pk_check(&k, msgpack_pack_object(&k.p, *sp->id));
    } else {
        pk_check(&k, msgpack_pack_nil(&k.p));
    }
    pk_str(&k, why);
    return pk_finish(&k);
}

/* ---- restart intensity ------------------------------------------------------------ */

/* Record a restart now. true if it exceeds the intensity (the supervisor must
 * give up). An allocation failure also counts as exceeded: fail safe. */
static bool add_restart(struct sup *s)
{
    uint64_t now = now_ms();

    while (s->hist_len > 0 && now - s->hist[s->hist_first] >= s->period_ms) {
        s->hist_first = (s->hist_first + 1) % s->hist_cap;
        s->hist_len--;
    }
    if (s->hist_len >= s->intensity) {
        return true;
    }
    if (s->hist_len == s->hist_cap) {
        size_t cap = s->hist_cap ? s->hist_cap * 2 : 4;
        uint64_t *h;

        if (cap > s->intensity) {
            cap = s->intensity;
        }
        if (!(h = malloc(cap * sizeof(*h)))) {
            return true;
        }
        for (size_t i = 0; i < s->hist_len; i++) {
            h[i] = s->hist[(s->hist_first + i) % s->hist_cap];
        }
        free(s->hist);
        s->hist = h;
        s->hist_cap = cap;
        s->hist_first = 0;
    }
    s->hist[(s->hist_first + s->hist_len) % s->hist_cap] = now;
    s->hist_len++;
    return false;
}

/* ---- the deferred queue ----------------------------------------------------------- */

/* Keep a reference to m for later. 0 or -ENOMEM. */
static int defer(struct sup *s, const girder_msg *m, bool child_exit)
{
    if (s->dq_len == s->dq_cap) {
        size_t cap = s->dq_cap ? s->dq_cap * 2 : 16;
        struct deferred *q = malloc(cap * sizeof(*q));

        if (!q) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < s->dq_len; i++) {
            q[i] = s->dq[(s->dq_first + i) & (s->dq_cap - 1)];
        }
        free(s->dq);
        s->dq = q;
        s->dq_cap = cap;
        s->dq_first = 0;
    }
    s->dq[(s->dq_first + s->dq_len) & (s->dq_cap - 1)] =
        (struct deferred){girder_msg_ref((girder_msg *)m), child_exit};
    s->dq_len++;
    return 0;
}

static struct deferred dq_pop(struct sup *s)
{
    struct deferred d = s->dq[s->dq_first];

    assert(s->dq_len > 0);
    s->dq_first = (s->dq_first + 1) & (s->dq_cap - 1);
    s->dq_len--;
    return d;
}

/* ---- replies ---------------------------------------------------------------------- */

static void reply(girder_ctx *ctx, girder_pid from, girder_ref ref, girder_msg *m /* owned */)
{
    int r;

    if (!m) {
        gr_warn(LOG_MOD, "cannot build a reply: %s", gr_strerror(-ENOMEM));
        return;
    }
    if ((r = girder_reply(ctx, from, ref, m)) < 0) {
        gr_warn(LOG_MOD, "reply failed: %s", gr_strerror(r));
    }
    girder_msg_unref(m);
}

/* ["error", why] */
static void reply_error(girder_ctx *ctx, girder_pid from, girder_ref ref, const char *why)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 2));
    pk_str(&k, "error");
    pk_str(&k, why);
    reply(ctx, from, ref, pk_finish(&k));
}

/* ["error", reason] with a pre-built reason message (borrowed). */
static void reply_error_msg(girder_ctx *ctx, girder_pid from, girder_ref ref, const girder_msg *r)
{
    struct pk k;

    if (!r) {
        reply_error(ctx, from, ref, "enomem");
        return;
    }
    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 2));
    pk_str(&k, "error");
    pk_raw(&k, girder_msg_data(r), girder_msg_size(r));
    reply(ctx, from, ref, pk_finish(&k));
}

/* ["ok", Pid] */
static void reply_ok_pid(girder_ctx *ctx, girder_pid from, girder_ref ref, girder_pid pid)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 2));
    pk_str(&k, "ok");
    pk_pid(&k, ctx, pid);
    reply(ctx, from, ref, pk_finish(&k));
}

/* ---- operations ------------------------------------------------------------------- */

static void op_begin(struct sup *s, enum op_kind kind, uint64_t first, uint64_t last,
                     struct child *cur)
{
    assert(!s->op.waiting);
    s->op.reason = girder_msg_unref(s->op.reason);
    memset(&s->op, 0, sizeof(s->op));
    s->op.kind = kind;
    s->op.phase = PH_STOP;
    s->op.first = first;
    s->op.last = last;
    s->op.cur = cur;
}

/* Stop every child in reverse order, then exit with `reason` (owned; NULL means
 * "shutdown"). */
static void begin_exit(struct sup *s, girder_msg *reason)
{
    op_begin(s, OP_EXIT, s->head ? s->head->seq : 0, s->tail ? s->tail->seq : 0, s->tail);
    s->op.reason = reason ? reason : girder_msg_ref(s->a_shutdown);
}

/* A restart of crashed child c under the strategy. */
static void begin_restart(struct sup *s, struct child *c)
{
    switch (s->strategy) {
    case ONE_FOR_ONE:
        op_begin(s, OP_RESTART, c->seq, c->seq, c);
        break;
    case REST_FOR_ONE:
        op_begin(s, OP_RESTART, c->seq, s->tail->seq, s->tail);
        break;
    case ONE_FOR_ALL:
        op_begin(s, OP_RESTART, s->head->seq, s->tail->seq, s->tail);
        break;
    }
}

/* Is c still ahead of the cursor in the stop phase of the current op? */
static bool in_stop_range(const struct sup *s, const struct child *c)
{
    const struct op *op = &s->op;

    return op->kind != OP_NONE && op->phase == PH_STOP && op->cur && c->seq >= op->first &&
           c->seq <= op->cur->seq;
}

/* The shutdown timer for op.cur: ["$sup_timeout", Token] to self. */
static int arm_timer(girder_ctx *ctx, struct sup *s, uint64_t ms)
{
    girder_ref token = girder_make_ref(ctx);
    girder_ref tref;
    girder_msg *m;
    struct pk k;
    int r;

    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 2));
    pk_str(&k, "$sup_timeout");
    pk_check(&k, girder_pack_ref(ctx, &k.p, token));
    if (!(m = pk_finish(&k))) {
        return -ENOMEM;
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), ms, m, &tref)) < 0) {
        girder_msg_unref(m);
        return r;
    }
    s->op.ttoken = token;
    s->op.tref = tref;
    return 0;
}

/* The child being stopped is gone (EXIT or DOWN seen). */
static void stop_done(girder_ctx *ctx, struct sup *s, struct child *c, const msgpack_object *why)
{
    char b1[128], b2[128];

    if (s->op.tref.id != 0) {
        girder_cancel_timer(ctx, s->op.tref); /* -ENOENT: fired; its token is now stale */
        s->op.tref = (girder_ref){0};
    }
    if (!gr_term_is_str(why, "shutdown") && !gr_term_is_str(why, "killed") &&
        gr_log_enabled(GR_LOG_INFO)) {
        gr_info(LOG_MOD, "child %s stopped with %s", child_text(c, b1, sizeof(b1)),
                obj_text(why, b2, sizeof(b2)));
    }
    mark_dead(ctx, s, c);
    s->op.waiting = false;
    s->op.kill_pending = false;
}

/* Start stopping c: monitor, signal, arm the timer. */
static enum step begin_stop(girder_ctx *ctx, struct sup *s, struct child *c)
{
    const girder_msg *how = c->shutdown_ms == 0 ? s->a_kill : s->a_shutdown;
    girder_ref mref = {0};

    /* The monitor catches a child that unlinked itself; if it cannot be made
     * the link still reports the exit. */
    if (c->mref.id == 0 && girder_monitor(ctx, c->pid, &mref) == 0) {
        c->mref = mref;
    }
    if (girder_exit(ctx, c->pid, how) < 0) {
        return STEP_AGAIN;
    }
    s->op.waiting = true;
    if (c->shutdown_ms != 0 && c->shutdown_ms != SUP_SHUTDOWN_INFINITY &&
        arm_timer(ctx, s, c->shutdown_ms) < 0) {
        s->op.kill_pending = true; /* no timer, no waiting: kill at once */
    }
    return STEP_PROGRESS;
}

static enum step stop_step(girder_ctx *ctx, struct sup *s, struct child *c)
{
    struct op *op = &s->op;

    if (op->waiting) {
        if (!op->kill_pending) {
            return STEP_BLOCKED;
        }
        if (girder_exit(ctx, c->pid, s->a_kill) < 0) {
            return STEP_AGAIN;
        }
        op->kill_pending = false;
        return STEP_BLOCKED;
    }
    if (c->exit_pending) {
        mark_dead(ctx, s, c); /* its EXIT is deferred: already dead */
    }
    if (running(c)) {
        return begin_stop(ctx, s, c);
    }
    op->cur = c->prev;
    if (c->restart == TEMPORARY || (op->kind == OP_TERMINATE && c->id_len == 0)) {
        child_remove(s, c); /* OTP: stopped temporary children are deleted */
    }
    return STEP_PROGRESS;
}

static void fail_deferred_calls(girder_ctx *ctx, struct sup *s);

static enum step stop_phase_done(girder_ctx *ctx, struct sup *s)
{
    struct op *op = &s->op;

    switch (op->kind) {
    case OP_EXIT:
        fail_deferred_calls(ctx, s);
        girder_stop(ctx, op->reason);
        return STEP_STOP;
    case OP_TERMINATE:
        reply(ctx, op->from, op->from_ref, girder_msg_ref(s->a_ok));
        op->kind = OP_NONE;
        op->cur = NULL;
        return STEP_PROGRESS;
    case OP_RESTART:
        op->phase = PH_START;
        op->cur = op->cur ? op->cur->next : s->head;
        return STEP_PROGRESS;
    case OP_NONE:
        break;
    }
    assert(!"supervisor: no op");
    return STEP_PROGRESS;
}

static enum step start_step(girder_ctx *ctx, struct sup *s, struct child *c)
{
    char b[128];
    int r = 0;

    if (!running(c) && (r = child_spawn(ctx, s, c)) == 0 && gr_log_enabled(GR_LOG_INFO)) {
        child_text(c, b, sizeof(b));
        gr_log_fields(GR_LOG_INFO, LOG_MOD, (gr_log_field[]){{"event", "restart"}, {"child", b}}, 2,
                      "child %s restarted", b);
    } else if (r < 0) {
        gr_warn(LOG_MOD, "restarting child %s failed: %s", child_text(c, b, sizeof(b)),
                gr_strerror(r));
        if (r == GR_ESTOPPED || add_restart(s)) {
            begin_exit(s, NULL);
            return STEP_PROGRESS;
        }
        return STEP_AGAIN;
    }
    s->op.cur = c->next;
    return STEP_PROGRESS;
}

/* One step of the current op. */
static enum step op_step(girder_ctx *ctx, struct sup *s)
{
    struct op *op = &s->op;
    struct child *c = op->cur;

    if (op->phase == PH_STOP) {
        if (c && c->seq >= op->first) {
            return stop_step(ctx, s, c);
        }
        return stop_phase_done(ctx, s);
    }
    if (c && c->seq <= op->last) {
        return start_step(ctx, s, c);
    }
    op->kind = OP_NONE;
    op->cur = NULL;
    return STEP_PROGRESS;
}

/* ---- calls -------------------------------------------------------------------------- */

static void call_which_children(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, (uint32_t)s->nspecs));
    for (struct child *c = s->head; c; c = c->next) {
        pk_check(&k, msgpack_pack_array(&k.p, 4));
        pk_child_id(&k, c);
        pk_pid(&k, ctx, c->pid);
        pk_str(&k, type_names[c->type]);
        pk_str(&k, c->behaviour);
    }
    reply(ctx, from, ref, pk_finish(&k));
}

static void call_count_children(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_map(&k.p, 4));
    pk_str(&k, "specs");
    pk_check(&k, msgpack_pack_uint64(&k.p, s->nspecs));
    pk_str(&k, "active");
    pk_check(&k, msgpack_pack_uint64(&k.p, s->nactive));
    pk_str(&k, "supervisors");
    pk_check(&k, msgpack_pack_uint64(&k.p, s->nsups));
    pk_str(&k, "workers");
    pk_check(&k, msgpack_pack_uint64(&k.p, s->nspecs - s->nsups));
    reply(ctx, from, ref, pk_finish(&k));
}

static void call_start_child(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref,
                             const msgpack_object *o)
{
    struct spec sp;
    struct child *c, *old;
    const char *why;
    girder_msg *reason;
    int r;

    if ((why = spec_parse(girder_runtime(ctx), o, &sp)) != NULL) {
        goto bad_spec;
    }
    if ((r = spec_child(&sp, &c)) < 0) {
        if (r != GR_EBADARG) {
            reply_error(ctx, from, ref, gr_errid(r));
            return;
        }
        why = "bad_id";
        goto bad_spec;
    }
    if (c->id_len > 0 && (old = idx_find_id(&s->by_id, c->id, c->id_len, c->id_hash))) {
        child_free(c);
        if (!running(old)) {
            reply_error(ctx, from, ref, "already_present");
            return;
        }
        struct pk k;

        pk_init(&k);
        pk_check(&k, msgpack_pack_array(&k.p, 2));
        pk_str(&k, "error");
        pk_check(&k, msgpack_pack_array(&k.p, 2));
        pk_str(&k, "already_started");
        pk_pid(&k, ctx, old->pid);
        reply(ctx, from, ref, pk_finish(&k));
        return;
    }
    child_append(s, c);
    if ((r = child_spawn(ctx, s, c)) < 0) {
        child_remove(s, c);
        reply_error(ctx, from, ref, gr_errid(r));
        return;
    }
    reply_ok_pid(ctx, from, ref, c->pid);
    return;

bad_spec:
    reason = bad_spec_reason(&sp, why);
    reply_error_msg(ctx, from, ref, reason);
    girder_msg_unref(reason);
}

static void call_terminate_child(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref,
                                 const msgpack_object *key)
{
    struct child *c = lookup(ctx, s, key);

    if (!c) {
        reply_error(ctx, from, ref, "not_found");
        return;
    }
    if (!running(c)) {
        if (c->restart == TEMPORARY || c->id_len == 0) {
            child_remove(s, c);
        }
        reply(ctx, from, ref, girder_msg_ref(s->a_ok));
        return;
    }
    op_begin(s, OP_TERMINATE, c->seq, c->seq, c);
    s->op.from = from;
    s->op.from_ref = ref;
}

static void call_delete_child(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref,
                              const msgpack_object *key)
{
    struct child *c = lookup(ctx, s, key);

    if (!c) {
        reply_error(ctx, from, ref, "not_found");
    } else if (running(c)) {
        reply_error(ctx, from, ref, "running");
    } else {
        child_remove(s, c);
        reply(ctx, from, ref, girder_msg_ref(s->a_ok));
    }
}

static void call_restart_child(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref,
                               const msgpack_object *key)
{
    struct child *c = lookup(ctx, s, key);
    int r;

    if (!c) {
        reply_error(ctx, from, ref, "not_found");
    } else if (running(c)) {
        reply_error(ctx, from, ref, "running");
    } else if ((r = child_spawn(ctx, s, c)) < 0) {
        reply_error(ctx, from, ref, gr_errid(r));
    } else {
        reply_ok_pid(ctx, from, ref, c->pid);
    }
}

/* A request while idle. May begin an op (terminate_child). */
static void handle_call(girder_ctx *ctx, struct sup *s, girder_pid from, girder_ref ref,
                        const msgpack_object *req)
{
    const msgpack_object *a = req->via.array.ptr;
    uint32_t n = req->type == MSGPACK_OBJECT_ARRAY ? req->via.array.size : 0;

    if (n == 1 && gr_term_is_str(&a[0], "which_children")) {
        call_which_children(ctx, s, from, ref);
    } else if (n == 1 && gr_term_is_str(&a[0], "count_children")) {
        call_count_children(ctx, s, from, ref);
    } else if (n == 2 && gr_term_is_str(&a[0], "start_child")) {
        call_start_child(ctx, s, from, ref, &a[1]);
    } else if (n == 2 && gr_term_is_str(&a[0], "terminate_child")) {
        call_terminate_child(ctx, s, from, ref, &a[1]);
    } else if (n == 2 && gr_term_is_str(&a[0], "delete_child")) {
        call_delete_child(ctx, s, from, ref, &a[1]);
    } else if (n == 2 && gr_term_is_str(&a[0], "restart_child")) {
        call_restart_child(ctx, s, from, ref, &a[1]);
    } else {
        reply_error(ctx, from, ref, "unknown_call");
    }
}

/* ["$call", From, Ref, Request] -> From, Ref. false if malformed. */
static bool call_parse(girder_ctx *ctx, const msgpack_object *a, girder_pid *ret_from,
                       girder_ref *ret_ref)
{
    return girder_get_pid(ctx, &a[1], ret_from) == 0 && girder_get_ref(ctx, &a[2], ret_ref) == 0;
}

/* Answer calls left in the deferred queue when the supervisor exits. */
static void fail_deferred_calls(girder_ctx *ctx, struct sup *s)
{
    while (s->dq_len > 0) {
        struct deferred d = dq_pop(s);
        msgpack_unpacked u;
        const msgpack_object *a;
        girder_pid from;
        girder_ref ref;

        msgpack_unpacked_init(&u);
        if (girder_msg_unpack(d.msg, &u) == 0 && (a = msg_args(&u.data, "$call", 4)) &&
            call_parse(ctx, a, &from, &ref)) {
            reply_error(ctx, from, ref, "shutting_down");
        }
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(d.msg);
    }
}

/* ---- messages ----------------------------------------------------------------------- */

/* A child's exit while idle: apply its restart type and the strategy. */
static void child_exited(girder_ctx *ctx, struct sup *s, struct child *c, const msgpack_object *why)
{
    bool normal = is_normal_exit(why);
    char b1[128], b2[128];

    mark_dead(ctx, s, c);
    if (!normal && gr_log_enabled(GR_LOG_NOTICE)) {
        child_text(c, b1, sizeof(b1));
        obj_text(why, b2, sizeof(b2));
        gr_log_fields(GR_LOG_NOTICE, LOG_MOD,
                      (gr_log_field[]){{"event", "crash"}, {"child", b1}, {"reason", b2}}, 3,
                      "child %s (%s) exited with %s", b1, restart_names[c->restart], b2);
    }
    if (c->restart == TEMPORARY || (c->restart == TRANSIENT && normal)) {
        if (c->restart == TEMPORARY || c->id_len == 0) {
            child_remove(s, c);
        }
        return;
    }
    if (add_restart(s)) {
        gr_warn(LOG_MOD, "restart intensity reached (%" PRIu32 " in %" PRIu64 " ms): shutting down",
                s->intensity, s->period_ms);
        begin_exit(s, NULL);
        return;
    }
    begin_restart(s, c);
}

/* An EXIT or a call, handled while idle (first in line). child_exit: the message
 * was deferred as an EXIT from a child. */
static void dispatch(girder_ctx *ctx, struct sup *s, const msgpack_object *o, bool child_exit)
{
    const msgpack_object *a;
    girder_pid from;
    girder_ref ref;

    if ((a = msg_args(o, "EXIT", 3))) {
        struct child *c = NULL;

        if (girder_get_pid(ctx, &a[1], &from) == 0) {
            c = idx_find_pid(&s->by_pid, from);
        }
        if (c) {
            child_exited(ctx, s, c, &a[2]);
        } else if (!child_exit) {
            begin_exit(s, obj_msg(&a[2])); /* the parent, or someone, says stop */
        } /* else: a stale EXIT of a child already stopped and replaced by an op */
    } else if ((a = msg_args(o, "$call", 4)) && call_parse(ctx, a, &from, &ref)) {
        handle_call(ctx, s, from, ref, &a[3]);
    }
}

/* Put m aside; on failure the supervisor cannot keep its promises: stop. */
static int defer_or_die(girder_ctx *ctx, struct sup *s, const girder_msg *m, bool child_exit)
{
    if (defer(s, m, child_exit) < 0) {
        gr_error(LOG_MOD, "cannot defer a message: %s; exiting", gr_strerror(-ENOMEM));
        girder_stop(ctx, s->a_shutdown);
        return GIRDER_STOP;
    }
    return GIRDER_CONTINUE;
}

static bool busy(const struct sup *s)
{
    return s->op.kind != OP_NONE || s->dq_len > 0;
}

static int on_exit_msg(girder_ctx *ctx, struct sup *s, const girder_msg *m, const msgpack_object *a)
{
    girder_pid from;
    struct child *c = NULL;

    if (girder_get_pid(ctx, &a[1], &from) == 0) {
        c = idx_find_pid(&s->by_pid, from);
    }
    if (c && in_stop_range(s, c)) {
        if (c == s->op.cur && s->op.waiting) {
            stop_done(ctx, s, c, &a[2]);
        } else {
            mark_dead(ctx, s, c); /* died before its turn: nothing to send */
        }
        return GIRDER_CONTINUE;
    }
    if (busy(s)) {
        if (c) {
            c->exit_pending = true;
        }
        return defer_or_die(ctx, s, m, c != NULL);
    }
    return -1; /* dispatch now */
}

static void on_down(girder_ctx *ctx, struct sup *s, const msgpack_object *a)
{
    struct child *c = s->op.cur;
    girder_ref ref;

    if (s->op.kind == OP_NONE || s->op.phase != PH_STOP || !s->op.waiting || !c ||
        c->mref.id == 0 || girder_get_ref(ctx, &a[1], &ref) < 0 || !girder_ref_eq(ref, c->mref)) {
        return; /* stale */
    }
    c->mref = (girder_ref){0};  /* consumed */
    girder_unlink(ctx, c->pid); /* no EXIT from this child may follow (girder.h) */
    stop_done(ctx, s, c, &a[4]);
}

static void on_timeout(girder_ctx *ctx, struct sup *s, const msgpack_object *a)
{
    girder_ref token;

    if (s->op.kind == OP_NONE || s->op.phase != PH_STOP || !s->op.waiting || s->op.tref.id == 0 ||
        girder_get_ref(ctx, &a[1], &token) < 0 || !girder_ref_eq(token, s->op.ttoken)) {
        return; /* stale */
    }
    s->op.tref = (girder_ref){0}; /* fired */
    s->op.kill_pending = true;
}

static int schedule_continue(girder_ctx *ctx, struct sup *s)
{
    struct pk k;
    girder_msg *m;
    girder_ref token;

    if (s->cont_pending) {
        return GIRDER_CONTINUE;
    }
    token = girder_make_ref(ctx);
    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 2));
    pk_str(&k, "$sup_continue");
    pk_check(&k, girder_pack_ref(ctx, &k.p, token));
    if (!(m = pk_finish(&k)) || girder_send(ctx, girder_self(ctx), m) < 0) {
        girder_msg_unref(m);
        gr_error(LOG_MOD, "cannot schedule more work; exiting");
        girder_stop(ctx, s->a_shutdown);
        return GIRDER_STOP;
    }
    s->cont_token = token;
    s->cont_pending = true;
    return GIRDER_CONTINUE;
}

/* Make progress on the op and the deferred queue, within the budget. */
static int drive(girder_ctx *ctx, struct sup *s)
{
    for (unsigned budget = SUP_BUDGET; budget > 0; budget--) {
        if (s->op.kind != OP_NONE) {
            switch (op_step(ctx, s)) {
            case STEP_PROGRESS:
                continue;
            case STEP_BLOCKED:
                return GIRDER_CONTINUE;
            case STEP_AGAIN:
                return schedule_continue(ctx, s);
            case STEP_STOP:
                return GIRDER_STOP;
            }
        }
        if (s->dq_len == 0) {
            return GIRDER_CONTINUE;
        }
        struct deferred d = dq_pop(s);
        msgpack_unpacked u;

        msgpack_unpacked_init(&u);
        if (girder_msg_unpack(d.msg, &u) == 0) {
            dispatch(ctx, s, &u.data, d.child_exit);
        }
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(d.msg);
    }
    return schedule_continue(ctx, s);
}

static int on_message(girder_ctx *ctx, struct sup *s, const girder_msg *m, const msgpack_object *o)
{
    const msgpack_object *a;
    girder_pid from;
    girder_ref ref;
    int r;

    if ((a = msg_args(o, "EXIT", 3))) {
        if ((r = on_exit_msg(ctx, s, m, a)) >= 0) {
            return r;
        }
        dispatch(ctx, s, o, false);
    } else if ((a = msg_args(o, "$call", 4))) {
        if (!call_parse(ctx, a, &from, &ref)) {
            return GIRDER_CONTINUE;
        }
        if (s->op.kind == OP_EXIT) {
            reply_error(ctx, from, ref, "shutting_down");
        } else if (busy(s)) {
            return defer_or_die(ctx, s, m, false);
        } else {
            handle_call(ctx, s, from, ref, &a[3]);
        }
    } else if ((a = msg_args(o, "DOWN", 5))) {
        on_down(ctx, s, a);
    } else if ((a = msg_args(o, "$sup_timeout", 2))) {
        on_timeout(ctx, s, a);
    } else if ((a = msg_args(o, "$sup_continue", 2))) {
        if (girder_get_ref(ctx, &a[1], &ref) == 0 && girder_ref_eq(ref, s->cont_token)) {
            s->cont_pending = false;
        }
    } else if (gr_log_enabled(GR_LOG_DEBUG)) {
        char b[128];

        gr_debug(LOG_MOD, "ignoring unexpected message %s", obj_text(o, b, sizeof(b)));
    }
    return GIRDER_CONTINUE;
}

/* ---- the behaviour -------------------------------------------------------------------- */

static struct sup *sup_free(struct sup *s)
{
    if (!s) {
        return NULL;
    }
    for (struct child *c = s->head, *next; c; c = next) {
        next = c->next;
        child_free(c);
    }
    while (s->dq_len > 0) {
        girder_msg_unref(dq_pop(s).msg);
    }
    free(s->dq);
    free(s->hist);
    idx_free(&s->by_pid);
    idx_free(&s->by_id);
    girder_msg_unref(s->op.reason);
    girder_msg_unref(s->a_shutdown);
    girder_msg_unref(s->a_kill);
    girder_msg_unref(s->a_ok);
    free(s);
    return NULL;
}

/* ["bad_supervisor_spec", why] */
static girder_msg *bad_sup_reason(const char *why)
{
    struct pk k;

    pk_init(&k);
    pk_check(&k, msgpack_pack_array(&k.p, 2));
    pk_str(&k, "bad_supervisor_spec");
    pk_str(&k, why);
    return pk_finish(&k);
}

/* Supervisor flags from the spawn argument; NULL or the reason's why. */
static const char *flags_parse(struct sup *s, const msgpack_object *o,
                               const msgpack_object **ret_children)
{
    int v;

    s->strategy = ONE_FOR_ONE;
    s->intensity = SUP_DEFAULT_INTENSITY;
    s->period_ms = SUP_DEFAULT_PERIOD_MS;
    *ret_children = NULL;
    if (o->type != MSGPACK_OBJECT_MAP) {
        return "not_a_map";
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *val = &o->via.map.ptr[i].val;

        if (gr_term_is_str(k, "strategy")) {
            if ((v = obj_enum(val, strategy_names, 3)) < 0) {
                return "bad_strategy";
            }
            s->strategy = (enum strategy)v;
        } else if (gr_term_is_str(k, "intensity")) {
            if (val->type != MSGPACK_OBJECT_POSITIVE_INTEGER || val->via.u64 > SUP_INTENSITY_MAX) {
                return "bad_intensity";
            }
            s->intensity = (uint32_t)val->via.u64;
        } else if (gr_term_is_str(k, "period_ms")) {
            if (val->type != MSGPACK_OBJECT_POSITIVE_INTEGER || val->via.u64 == 0 ||
                val->via.u64 > SUP_PERIOD_MS_MAX) {
                return "bad_period";
            }
            s->period_ms = val->via.u64;
        } else if (gr_term_is_str(k, "children")) {
            if (val->type != MSGPACK_OBJECT_ARRAY) {
                return "bad_children";
            }
            *ret_children = val;
        } else {
            return "unknown_key";
        }
    }
    return NULL;
}

static int sup_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    struct sup *s;
    msgpack_unpacked u;
    const msgpack_object *children = NULL;
    girder_msg *reason = NULL;
    const char *why;
    char b[128];
    int r = -ENOMEM;

    msgpack_unpacked_init(&u);
    if (!(s = calloc(1, sizeof(*s)))) {
        goto fail;
    }
    s->a_shutdown = girder_msg_atom("shutdown");
    s->a_kill = girder_msg_atom("kill");
    s->a_ok = girder_msg_atom("ok");
    if (!s->a_shutdown || !s->a_kill || !s->a_ok || idx_init(&s->by_pid, true) < 0 ||
        idx_init(&s->by_id, false) < 0) {
        goto fail;
    }
    r = GR_EBADARG;
    if (!arg || girder_msg_unpack(arg, &u) < 0) {
        reason = bad_sup_reason("not_a_map");
        goto fail;
    }
    if ((why = flags_parse(s, &u.data, &children))) {
        reason = bad_sup_reason(why);
        goto fail;
    }
    /* Validate every spec before starting anything: a bad spec starts nothing. */
    for (uint32_t i = 0; children && i < children->via.array.size; i++) {
        struct spec sp;
        struct child *c;

        if ((why = spec_parse(girder_runtime(ctx), &children->via.array.ptr[i], &sp))) {
            reason = bad_spec_reason(&sp, why);
            goto fail;
        }
        if ((r = spec_child(&sp, &c)) < 0) {
            if (r == GR_EBADARG) {
                reason = bad_spec_reason(&sp, "bad_id");
            }
            goto fail;
        }
        if (c->id_len > 0 && idx_find_id(&s->by_id, c->id, c->id_len, c->id_hash)) {
            child_free(c);
            reason = bad_spec_reason(&sp, "duplicate_id");
            r = GR_EBADARG;
            goto fail;
        }
        child_append(s, c);
    }
    girder_trap_exit(ctx, true);
    for (struct child *c = s->head; c; c = c->next) {
        if ((r = child_spawn(ctx, s, c)) < 0) {
            struct pk k;

            gr_warn(LOG_MOD, "starting child %s failed: %s", child_text(c, b, sizeof(b)),
                    gr_strerror(r));
            pk_init(&k);
            pk_check(&k, msgpack_pack_array(&k.p, 3));
            pk_str(&k, "failed_to_start_child");
            pk_child_id(&k, c);
            pk_str(&k, gr_errid(r));
            reason = pk_finish(&k);
            /* Init cannot wait for ordered stops: kill what started (the links
             * would carry our exit to them anyway). */
            for (struct child *d = c->prev; d; d = d->prev) {
                girder_exit(ctx, d->pid, s->a_kill);
            }
            goto fail;
        }
    }
    msgpack_unpacked_destroy(&u);
    *ret_state = s;
    return 0;

fail:
    if (reason) {
        girder_stop(ctx, reason);
        girder_msg_unref(reason);
    }
    msgpack_unpacked_destroy(&u);
    sup_free(s);
    return r < 0 ? r : -ENOMEM;
}

static int sup_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    struct sup *s = state;
    msgpack_unpacked u;
    int r = GIRDER_CONTINUE;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) == 0) {
        r = on_message(ctx, s, msg, &u.data);
    }
    msgpack_unpacked_destroy(&u);
    return r == GIRDER_CONTINUE ? drive(ctx, s) : r;
}

static void sup_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    /* Timers die with us; linked children receive our exit signal. */
    sup_free(state);
}

static size_t sup_state_size(const void *state)
{
    const struct sup *s = state;

    return sizeof(*s) + s->nspecs * sizeof(struct child) + s->id_bytes +
           (s->by_pid.size[0] + s->by_pid.size[1] + s->by_id.size[0] + s->by_id.size[1]) *
               sizeof(struct child *) +
           s->hist_cap * sizeof(uint64_t) + s->dq_cap * sizeof(struct deferred);
}

const girder_behaviour girder_supervisor = {
    .name = "supervisor",
    .init = sup_init,
    .handle = sup_handle,
    .terminate = sup_terminate,
    .state_size = sup_state_size,
};
