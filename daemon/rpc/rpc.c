/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc.c - the module table, dispatch of incoming requests, and the worker
 * process that serves one request (rpc.h, rpc_int.h).
 *
 * Design notes
 * - Dispatch (dist thread) validates module and function against the static
 *   table, so an unknown name costs no process. A known one becomes a
 *   gr_rpc_call parked in the call table under a fresh id, and a worker process
 *   is spawned with that id as its argument; the worker's init takes the call out
 *   of the table. The table exists so that a call whose worker never ran (the
 *   runtime stopped first) is still freed, by gr_rpc_free.
 * - The worker runs the function's start on its first message ("$rpc_start",
 *   sent to itself) rather than in init, because init cannot end a process
 *   normally. A "$rpc_deadline" timer bounds every worker's life.
 * - Exactly-once answers: gr_rpc_answer / gr_rpc_fail set `answered`; the worker
 *   stops after the first answer; terminate answers GR_ESTOPPED if nothing was
 *   answered (the worker was killed).
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define START_ATOM "$rpc_start"
#define DEADLINE_ATOM "$rpc_deadline"
#define RPC_ZONE_CHUNK 2048 /* a worker's zone for its messages: kept between them */

/* The built-in modules, served by every girderd. A new built-in module is one
 * row here plus its mod_*.c. Modules that only some daemons serve (the test
 * kit's `bench`) come in through gr_rpc_config.modules instead. */
static const gr_rpc_module *const builtin[] = {
    &gr_rpc_mod_node, &gr_rpc_mod_sys,    &gr_rpc_mod_rpc,
    &gr_rpc_mod_proc, &gr_rpc_mod_pubsub, &gr_rpc_mod_table,
};

#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

/* Calls waiting for their worker's init: a singly linked list (short: a call
 * stays here only between spawn and the worker's first turn). */
typedef struct parked {
    struct parked *next;
    gr_rpc_call *call;
} parked;

/* A module added at run time (a plugin's): a list, newest first. */
typedef struct dynmod {
    struct dynmod *next;
    const gr_rpc_module *m; /* borrowed: valid until the runtime stopped */
} dynmod;

struct gr_rpc {
    girder_rt *rt;
    uint64_t started_ms;
    gr_rpc_reply_fn reply_fn;
    void *reply_ud;
    void (*leave_fn)(void *ud);
    void *leave_ud;
    const gr_rpc_module *const *ext; /* gr_rpc_config.modules (borrowed) */
    size_t next;                     /* entries in ext */
    gr_dist *dist;                   /* set before dist starts; read-only afterwards */
    gr_tables *tables;               /* module `table`'s engine */
    bool own_tables;                 /* made here (memory only): freed here */
    gr_rt_table_ops tops;            /* girder_table_* hook on tables (installed in rt) */
    pthread_mutex_t lock;            /* guards parked */
    parked *parked;
    pthread_rwlock_t modlock; /* guards dyn */
    dynmod *dyn;              /* modules added at run time (gr_rpc_module_add) */
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t next_tag;
    atomic_uint_fast64_t inflight;
    /* served-request statistics (gr_rpc_stats): relaxed, any thread adds */
    atomic_uint_fast64_t st_calls, st_errors, st_sum_us;
    atomic_uint_fast64_t st_buckets[GR_RPC_LAT_BUCKETS + 1];
};

static const girder_behaviour worker_behaviour;

uint64_t gr_rpc_now_ns(void)
{
    return gr_clock_ns();
}

/* ---- the table -------------------------------------------------------------------- */

/* The module called `name` (mlen bytes): a built-in one, else one of the
 * next extension modules in ext. NULL if none. */
static const gr_rpc_module *find_module(const gr_rpc_module *const *ext, size_t next,
                                        const char *name, size_t mlen)
{
    for (size_t i = 0; i < NBUILTIN + next; i++) {
        const gr_rpc_module *m = i < NBUILTIN ? builtin[i] : ext[i - NBUILTIN];

        if (strlen(m->name) == mlen && memcmp(m->name, name, mlen) == 0) {
            return m;
        }
    }
    return NULL;
}

static const gr_rpc_fn_def *lookup(const gr_rpc *rpc, const char *module, size_t mlen,
                                   const char *function, size_t flen, int *ret_err)
{
    const gr_rpc_module *m = find_module(rpc->ext, rpc->next, module, mlen);

    if (!m) {
        pthread_rwlock_rdlock((pthread_rwlock_t *)&rpc->modlock);
        for (const dynmod *d = rpc->dyn; d && !m; d = d->next) {
            if (strlen(d->m->name) == mlen && memcmp(d->m->name, module, mlen) == 0) {
                m = d->m;
            }
        }
        pthread_rwlock_unlock((pthread_rwlock_t *)&rpc->modlock);
    }
    if (!m) {
        *ret_err = GR_EBADMODULE;
        return NULL;
    }
    for (size_t j = 0; j < m->nfns; j++) {
        if (strlen(m->fns[j].name) == flen && memcmp(m->fns[j].name, function, flen) == 0) {
            return &m->fns[j];
        }
    }
    *ret_err = GR_EBADFUNC;
    return NULL;
}

int gr_rpc_module_add(gr_rpc *rpc, const gr_rpc_module *m)
{
    dynmod *d;
    int r = 0;

    if (!m || !m->name || !m->name[0] || (m->nfns && !m->fns)) {
        return GR_EBADARG;
    }
    pthread_rwlock_wrlock(&rpc->modlock);
    if (find_module(rpc->ext, rpc->next, m->name, strlen(m->name))) {
        r = -EEXIST;
        goto out;
    }
    for (d = rpc->dyn; d; d = d->next) {
        if (strcmp(d->m->name, m->name) == 0) {
            r = -EEXIST;
            goto out;
        }
    }
    if (!(d = malloc(sizeof(*d)))) {
        r = -ENOMEM;
        goto out;
    }
    d->m = m;
    d->next = rpc->dyn;
    rpc->dyn = d;
out:
    pthread_rwlock_unlock(&rpc->modlock);
    return r;
}

int gr_rpc_module_remove(gr_rpc *rpc, const gr_rpc_module *m)
{
    int r = -ENOENT;

    pthread_rwlock_wrlock(&rpc->modlock);
    for (dynmod **pd = &rpc->dyn; *pd; pd = &(*pd)->next) {
        if ((*pd)->m == m) {
            dynmod *d = *pd;

            *pd = d->next;
            free(d);
            r = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&rpc->modlock);
    return r;
}

/* ---- answering ---------------------------------------------------------------------- */

/* A local call's answer: ["$rpc", Tag, Status, Result | ReasonId] to `to`
 * (id 0: nobody), the same answer dist/ builds for a remote call
 * (gr_term_pack_rpc_answer). 0 or -ENOMEM. Any thread (gr_rt_send). */
static int local_answer(girder_rt *rt, girder_pid to, uint64_t tag, int status, const void *term,
                        size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m = NULL;
    int r;

    if (to.id == 0) {
        return 0;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (gr_term_pack_rpc_answer(&pk, tag, status, term, len) == 0 &&
        gr_term_validate(sb.data, sb.size) == 0) {
        m = girder_msg_new(sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    if (!m) {
        return -ENOMEM;
    }
    if ((r = gr_rt_send(rt, to, m)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* Count one answered request dispatched at t0_ns (gr_rpc_stats). Any thread. */
static void observe(gr_rpc *rpc, uint64_t t0_ns, int status)
{
    static const uint64_t bounds[GR_RPC_LAT_BUCKETS] = GR_RPC_LAT_BOUNDS_US;
    uint64_t now = gr_rpc_now_ns(), us = now > t0_ns ? (now - t0_ns) / 1000u : 0;
    size_t b = 0;

    while (b < GR_RPC_LAT_BUCKETS && us > bounds[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&rpc->st_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rpc->st_sum_us, us, memory_order_relaxed);
    if (status < 0) {
        atomic_fetch_add_explicit(&rpc->st_errors, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&rpc->st_calls, 1, memory_order_relaxed);
}

void gr_rpc_stats_get(gr_rpc *rpc, gr_rpc_stats *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->calls = atomic_load_explicit(&rpc->st_calls, memory_order_relaxed);
    ret->errors = atomic_load_explicit(&rpc->st_errors, memory_order_relaxed);
    ret->sum_us = atomic_load_explicit(&rpc->st_sum_us, memory_order_relaxed);
    for (size_t i = 0; i <= GR_RPC_LAT_BUCKETS; i++) {
        ret->buckets[i] = atomic_load_explicit(&rpc->st_buckets[i], memory_order_relaxed);
    }
}

static int send_answer(gr_rpc_call *c, int status, const void *term, size_t len)
{
    gr_rpc *rpc = c->rpc;

    if (c->answered) {
        return -EALREADY;
    }
    c->answered = true;
    if (c->local) {
        return local_answer(rpc->rt, c->answer_to, c->answer_tag, status, term, len);
    }
    observe(rpc, c->t0_ns, status);
    if (rpc->reply_fn) {
        return rpc->reply_fn(rpc->reply_ud, c->conn, c->ref, status, term, len);
    }
    if (!rpc->dist) {
        return GR_ENOCONN;
    }
    return gr_dist_reply(rpc->dist, c->conn, c->ref, status, term, len);
}

int gr_rpc_answer(gr_rpc_call *c, const void *term, size_t len)
{
    int r = send_answer(c, 0, term, len);

    if (r < 0 && r != GR_ENOCONN && r != -EALREADY) {
        gr_warn("rpc", "cannot answer %s from %s: %s", c->fn->name, c->peer, gr_strerror(r));
    }
    return GR_RPC_DONE;
}

int gr_rpc_answer_sb(gr_rpc_call *c, msgpack_sbuffer *sb)
{
    int r =
        gr_term_validate(sb->data, sb->size) < 0 ? -ENOMEM : gr_rpc_answer(c, sb->data, sb->size);

    msgpack_sbuffer_destroy(sb);
    return r;
}

int gr_rpc_fail(gr_rpc_call *c, int status)
{
    (void)send_answer(c, status < 0 ? status : GR_EBADARG, NULL, 0);
    return GR_RPC_DONE;
}

int gr_rpc_answer_object(gr_rpc_call *c, const msgpack_object *o)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *o) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

int gr_rpc_answer_str(gr_rpc_call *c, const char *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    gr_term_pack_cstr(&pk, s);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

int gr_rpc_answer_uint(gr_rpc_call *c, uint64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, v);
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

girder_rt *gr_rpc_rt(const gr_rpc *rpc)
{
    return rpc->rt;
}

gr_dist *gr_rpc_dist(const gr_rpc *rpc)
{
    return rpc->dist;
}

uint64_t gr_rpc_started_ms(const gr_rpc *rpc)
{
    return rpc->started_ms;
}

gr_dist *gr_rpc_call_dist(const gr_rpc_call *c)
{
    return c->rpc->dist;
}

uint64_t gr_rpc_call_started_ms(const gr_rpc_call *c)
{
    return c->rpc->started_ms;
}

bool gr_rpc_call_can_leave(const gr_rpc_call *c)
{
    return c->rpc->leave_fn != NULL;
}

void gr_rpc_call_leave(const gr_rpc_call *c)
{
    if (c->rpc->leave_fn) {
        c->rpc->leave_fn(c->rpc->leave_ud);
    }
}

uint64_t gr_rpc_next_tag(gr_rpc_call *c)
{
    c->tag = atomic_fetch_add(&c->rpc->next_tag, 1) + 1;
    return c->tag;
}

int gr_rpc_call_redirect(gr_rpc_call *c, girder_ctx *ctx, const char *module, size_t module_len,
                         const char *function, size_t function_len, const msgpack_object *args)
{
    int err = 0;
    const gr_rpc_fn_def *fn = lookup(c->rpc, module, module_len, function, function_len, &err);

    if (!fn) {
        return err;
    }
    if (args->type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADARG;
    }
    if (fn->inline_fn) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if ((r = fn->inline_fn(c->rpc, args, &pk)) == 0) {
            r = gr_rpc_answer(c, sb.data, sb.size);
        }
        msgpack_sbuffer_destroy(&sb);
        return r;
    }
    c->fn = fn;
    return fn->start(c, ctx, args);
}

/* ---- forwarding to a service process ------------------------------------------------ */

/* A forwarded call's ref to the service, kept in priv. */
typedef struct fwd_wait {
    girder_ref ref;
} fwd_wait;

int gr_rpc_forward(gr_rpc_call *c, girder_ctx *ctx, const char *name, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *req;
    girder_pid to;
    fwd_wait *w;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADARG;
    }
    if (girder_whereis(ctx, name, &to) < 0) {
        return GR_ENOPROC;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        return -ENOMEM;
    }
    c->priv = w;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1 + args->via.array.size);
    gr_term_pack_cstr(&pk, c->fn->name);
    for (uint32_t i = 0; i < args->via.array.size; i++) {
        msgpack_pack_object(&pk, args->via.array.ptr[i]);
    }
    /* girder_call nests the request one level deeper (["$call", From, Ref,
     * Req]): arguments that fit GR_TERM_DEPTH_MAX only without that level
     * would be an unreadable call the receiver drops, and this call would
     * never be answered (a publish nested 31 deep waited out its deadline) */
    if (gr_term_validate_nested(sb.data, sb.size, 1) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return GR_EBADTERM;
    }
    req = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!req) {
        return -ENOMEM;
    }
    r = girder_call(ctx, to, req, true, &w->ref);
    girder_msg_unref(req);
    return r < 0 ? r : GR_RPC_WAIT;
}

int gr_rpc_forward_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    fwd_wait *w = c->priv;
    const msgpack_object *a, *resp;
    girder_ref ref;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size < 3) {
        return GR_RPC_WAIT;
    }
    a = msg->via.array.ptr;
    if (girder_get_ref(ctx, &a[1], &ref) < 0 || !girder_ref_eq(ref, w->ref)) {
        return GR_RPC_WAIT;
    }
    if (gr_term_is_str(&a[0], "DOWN")) {
        return GR_ENOPROC;
    }
    if (!gr_term_is_str(&a[0], "$reply") || msg->via.array.size != 3) {
        return GR_RPC_WAIT;
    }
    girder_demonitor(ctx, w->ref);
    resp = &a[2];
    /* Services answer errors as ["error", ReasonId]. */
    if (resp->type == MSGPACK_OBJECT_ARRAY && resp->via.array.size == 2 &&
        gr_term_is_str(&resp->via.array.ptr[0], "error") &&
        resp->via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
        int code =
            gr_err_from_id(resp->via.array.ptr[1].via.str.ptr, resp->via.array.ptr[1].via.str.size);

        return code < 0 ? code : GR_EBADARG;
    }
    return gr_rpc_answer_object(c, resp);
}

/* ---- the worker process --------------------------------------------------------------- */

static gr_rpc_call *unpark(gr_rpc *rpc, uint64_t id)
{
    gr_rpc_call *c = NULL;

    pthread_mutex_lock(&rpc->lock);
    for (parked **pp = &rpc->parked; *pp; pp = &(*pp)->next) {
        if ((*pp)->call->id == id) {
            parked *p = *pp;

            *pp = p->next;
            c = p->call;
            free(p);
            break;
        }
    }
    pthread_mutex_unlock(&rpc->lock);
    return c;
}

/* Park call c (in p, taken) for the worker about to be spawned and count it in
 * flight; returns the worker's argument, [rpc, id], which the worker unparks
 * by. NULL if out of memory: nothing parked, p and c still the caller's. */
static girder_msg *park_for_worker(gr_rpc *rpc, gr_rpc_call *c, parked *p)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, (uint64_t)(uintptr_t)rpc);
    msgpack_pack_uint64(&pk, c->id);
    arg = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!arg) {
        return NULL;
    }
    p->call = c;
    pthread_mutex_lock(&rpc->lock);
    p->next = rpc->parked;
    rpc->parked = p;
    pthread_mutex_unlock(&rpc->lock);
    atomic_fetch_add(&rpc->inflight, 1);
    return arg;
}

static void call_free(gr_rpc_call *c)
{
    if (c->zone) {
        msgpack_zone_free(c->zone);
    }
    free(c->args);
    if (c->priv_free) {
        c->priv_free(c->priv);
    } else {
        free(c->priv);
    }
    free(c);
}

/* The spawn argument: [RpcPointerAsUint, Id]. The gr_rpc outlives every worker. */
static int worker_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_unpacked up;
    gr_rpc *rpc = NULL;
    gr_rpc_call *c = NULL;
    girder_msg *m;
    girder_ref tref;
    int r;

    msgpack_unpacked_init(&up);
    if (arg && girder_msg_unpack(arg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 2 &&
        up.data.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        up.data.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        rpc = (gr_rpc *)(uintptr_t)up.data.via.array.ptr[0].via.u64;
        c = unpark(rpc, up.data.via.array.ptr[1].via.u64);
    }
    msgpack_unpacked_destroy(&up);
    if (!c) {
        return GR_EBADARG;
    }
    /* From here the worker owns c: terminate frees it, and answers it if needed. */
    *ret_state = c;
    if (!(m = girder_msg_atom(DEADLINE_ATOM))) {
        gr_rpc_fail(c, -ENOMEM);
        return 0; /* the start message below finds it answered and stops */
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), c->deadline_ms, m, &tref)) < 0) {
        girder_msg_unref(m);
        gr_rpc_fail(c, r);
    }
    if (!(m = girder_msg_atom(START_ATOM))) {
        gr_rpc_fail(c, -ENOMEM);
        return 0;
    }
    if ((r = girder_send(ctx, girder_self(ctx), m)) < 0) {
        girder_msg_unref(m);
        gr_rpc_fail(c, r);
    }
    return 0;
}

/* What a start or message callback returned -> keep going or stop. */
static int settle(gr_rpc_call *c, int r)
{
    if (r == GR_RPC_WAIT && !c->answered) {
        return GIRDER_CONTINUE;
    }
    if (r < 0) {
        gr_rpc_fail(c, r);
    } else if (!c->answered) {
        gr_warn("rpc", "%s returned without answering", c->fn->name);
        gr_rpc_fail(c, -EPROTO);
    }
    return GIRDER_STOP;
}

/* A message for a waiting function: unpacked into the call's own zone,
 * cleared after each message (its first chunk kept), rather than into a
 * fresh one: a function that streams (bench_ps, a port echo at a million
 * messages a second) would otherwise pay a zone's two allocations, 8 KiB
 * and its header, per message. */
static int on_msg(gr_rpc_call *c, girder_ctx *ctx, const girder_msg *msg)
{
    msgpack_object o;
    size_t off = 0;
    int r = GR_RPC_WAIT; /* not one term: a stray message, not ours */

    if (!c->zone && !(c->zone = msgpack_zone_new(RPC_ZONE_CHUNK))) {
        return -ENOMEM;
    }
    switch (msgpack_unpack((const char *)girder_msg_data(msg), girder_msg_size(msg), &off, c->zone,
                           &o)) {
    case MSGPACK_UNPACK_SUCCESS:
    case MSGPACK_UNPACK_EXTRA_BYTES: /* as girder_msg_unpack: the first term counts */
        r = c->fn->on_msg(c, ctx, &o);
        break;
    default:
        break;
    }
    msgpack_zone_clear(c->zone);
    return r;
}

static int worker_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    gr_rpc_call *c = state;
    msgpack_unpacked up;
    int r;

    if (c->answered) {
        return GIRDER_STOP;
    }
    if (girder_msg_is_atom(msg, DEADLINE_ATOM)) {
        gr_rpc_fail(c, GR_ETIMEOUT);
        return GIRDER_STOP;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_is_atom(msg, START_ATOM)) {
        size_t off = 0;

        if (msgpack_unpack_next(&up, (const char *)c->args, c->args_len, &off) !=
            MSGPACK_UNPACK_SUCCESS) {
            r = GR_EBADARG;
        } else {
            r = c->fn->start(c, ctx, &up.data);
        }
    } else if (c->fn->on_msg) {
        r = on_msg(c, ctx, msg);
    } else {
        r = GR_RPC_WAIT; /* a stray message: not ours */
    }
    msgpack_unpacked_destroy(&up);
    return settle(c, r);
}

static void worker_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    gr_rpc_call *c = state;
    gr_rpc *rpc = c->rpc;

    if (!c->answered) {
        gr_rpc_fail(c, GR_ESTOPPED);
    }
    call_free(c);
    atomic_fetch_sub(&rpc->inflight, 1);
}

static size_t worker_state_size(const void *state)
{
    const gr_rpc_call *c = state;

    return sizeof(*c) + c->args_len;
}

static const girder_behaviour worker_behaviour = {
    .name = GR_RPC_WORKER_NAME,
    .init = worker_init,
    .handle = worker_handle,
    .terminate = worker_terminate,
    .state_size = worker_state_size,
};

/* ---- dispatch ------------------------------------------------------------------------------ */

/* Answer a request dispatched at t0_ns without a worker. */
static void reply_now(gr_rpc *rpc, const gr_dist_request *req, uint64_t t0_ns, int status,
                      const void *term, size_t len)
{
    int r;

    observe(rpc, t0_ns, status);
    if (rpc->reply_fn) {
        r = rpc->reply_fn(rpc->reply_ud, req->conn, req->ref, status, term, len);
    } else {
        r = rpc->dist ? gr_dist_reply(rpc->dist, req->conn, req->ref, status, term, len)
                      : GR_ENOCONN;
    }
    if (r < 0 && r != GR_ENOCONN) {
        gr_warn("rpc", "cannot answer %s.%s from %s: %s", req->module, req->function, req->peer,
                gr_strerror(r));
    }
}

/* An inline function, on the dist thread: no worker, no thread hop. */
static void run_inline(gr_rpc *rpc, const gr_rpc_fn_def *fn, const gr_dist_request *req,
                       uint64_t t0_ns)
{
    msgpack_unpacked up;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t off = 0;
    int r;

    msgpack_unpacked_init(&up);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_unpack_next(&up, (const char *)req->args, req->args_len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_ARRAY) {
        r = GR_EBADARG;
    } else {
        r = fn->inline_fn(rpc, &up.data, &pk);
    }
    if (r < 0) {
        reply_now(rpc, req, t0_ns, r, NULL, 0);
    } else {
        reply_now(rpc, req, t0_ns, 0, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
}

void gr_rpc_dispatch(void *ud, const gr_dist_request *req)
{
    gr_rpc *rpc = ud;
    const gr_rpc_fn_def *fn;
    gr_rpc_call *c = NULL;
    parked *p = NULL;
    girder_msg *arg = NULL;
    girder_pid pid;
    uint64_t t0_ns = gr_rpc_now_ns();
    int err = 0, r;

    if ((r = gr_rpc_policy_check(req->role, req->module, req->function, req->args, req->args_len)) <
        0) {
        gr_info("rpc", "%s.%s from observer %s refused: %s", req->module, req->function, req->peer,
                gr_errid(r));
        reply_now(rpc, req, t0_ns, r, NULL, 0);
        return;
    }
    fn = lookup(rpc, req->module, strlen(req->module), req->function, strlen(req->function), &err);
    if (!fn) {
        reply_now(rpc, req, t0_ns, err, NULL, 0);
        return;
    }
    if (fn->inline_fn) {
        run_inline(rpc, fn, req, t0_ns);
        return;
    }
    if (!(c = calloc(1, sizeof(*c))) || !(p = calloc(1, sizeof(*p))) ||
        !(c->args = malloc(req->args_len ? req->args_len : 1))) {
        r = -ENOMEM;
        goto fail;
    }
    c->rpc = rpc;
    c->id = atomic_fetch_add(&rpc->next_id, 1) + 1;
    c->conn = req->conn;
    c->ref = req->ref;
    c->t0_ns = t0_ns;
    snprintf(c->peer, sizeof(c->peer), "%s", req->peer);
    c->hidden = req->hidden;
    c->fn = fn;
    memcpy(c->args, req->args, req->args_len);
    c->args_len = req->args_len;
    c->deadline_ms = req->deadline_ms ? req->deadline_ms : GR_RPC_DEFAULT_DEADLINE_MS;

    if (!(arg = park_for_worker(rpc, c, p))) {
        r = -ENOMEM;
        goto fail;
    }
    r = gr_rt_spawn(rpc->rt, &worker_behaviour, arg, &pid);
    girder_msg_unref(arg);
    if (r < 0) {
        /* No worker: take the call back (nobody else can have it). */
        atomic_fetch_sub(&rpc->inflight, 1);
        c = unpark(rpc, c->id);
        p = NULL;
        goto fail;
    }
    return;

fail:
    if (c) {
        call_free(c);
    }
    free(p);
    reply_now(rpc, req, t0_ns, r, NULL, 0);
}

/* ---- local calls (rpc.multicall, rpc.cast to this node) ----------------------------------- */

int gr_rpc_call_local(gr_rpc_call *c, girder_ctx *ctx, const char *module, const char *function,
                      const msgpack_object *args, uint32_t deadline_ms, girder_pid reply_to,
                      uint64_t tag)
{
    return gr_rpc_local(c->rpc, ctx, module, function, args, deadline_ms, reply_to, tag);
}

int gr_rpc_local(gr_rpc *rpc, girder_ctx *ctx, const char *module, const char *function,
                 const msgpack_object *args, uint32_t deadline_ms, girder_pid reply_to,
                 uint64_t tag)
{
    const gr_rpc_fn_def *fn;
    gr_rpc_call *k = NULL;
    parked *p = NULL;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg = NULL;
    girder_pid pid;
    int err = 0, r;

    if (!(fn = lookup(rpc, module, strlen(module), function, strlen(function), &err))) {
        return err;
    }
    if (args->type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (fn->inline_fn) {
        r = fn->inline_fn(rpc, args, &pk);
        r = r < 0 ? local_answer(rpc->rt, reply_to, tag, r, NULL, 0)
                  : local_answer(rpc->rt, reply_to, tag, 0, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return r;
    }
    if (msgpack_pack_object(&pk, *args) < 0 || !(k = calloc(1, sizeof(*k))) ||
        !(p = calloc(1, sizeof(*p)))) {
        r = -ENOMEM;
        goto fail;
    }
    k->rpc = rpc;
    k->id = atomic_fetch_add(&rpc->next_id, 1) + 1;
    snprintf(k->peer, sizeof(k->peer), "%s", gr_rt_node_name(rpc->rt));
    k->fn = fn;
    k->args_len = sb.size;
    k->args = (uint8_t *)msgpack_sbuffer_release(&sb);
    k->deadline_ms = deadline_ms ? deadline_ms : GR_RPC_DEFAULT_DEADLINE_MS;
    k->local = true;
    k->answer_to = reply_to;
    k->answer_tag = tag;

    if (!(arg = park_for_worker(rpc, k, p))) {
        r = -ENOMEM;
        goto fail;
    }
    r = girder_spawn(ctx, &worker_behaviour, arg, GIRDER_SPAWN_SPREAD, &pid, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        atomic_fetch_sub(&rpc->inflight, 1);
        if ((k = unpark(rpc, k->id)) != NULL) { /* no worker: nobody else has it */
            call_free(k);
        }
        return r;
    }
    return 0;

fail:
    msgpack_sbuffer_destroy(&sb);
    if (k) {
        call_free(k);
    }
    free(p);
    return r;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int gr_rpc_new(const gr_rpc_config *cfg, gr_rpc **ret_rpc)
{
    gr_rpc *rpc;
    int r;

    if (!cfg || !cfg->rt || !ret_rpc || (cfg->nmodules && !cfg->modules)) {
        return -EINVAL;
    }
    /* Each extension module's name is new: not a built-in one's, nor an
     * earlier extension module's. */
    for (size_t i = 0; i < cfg->nmodules; i++) {
        const char *name = cfg->modules[i]->name;

        if (find_module(cfg->modules, i, name, strlen(name))) {
            return -EEXIST;
        }
    }
    if (!(rpc = calloc(1, sizeof(*rpc)))) {
        return -ENOMEM;
    }
    rpc->ext = cfg->modules;
    rpc->next = cfg->nmodules;
    rpc->rt = cfg->rt;
    rpc->started_ms = cfg->started_ms;
    rpc->reply_fn = cfg->reply_fn;
    rpc->reply_ud = cfg->reply_ud;
    rpc->leave_fn = cfg->leave_fn;
    rpc->leave_ud = cfg->leave_ud;
    if ((r = pthread_mutex_init(&rpc->lock, NULL)) != 0) {
        free(rpc);
        return -r;
    }
    if ((r = pthread_rwlock_init(&rpc->modlock, NULL)) != 0) {
        pthread_mutex_destroy(&rpc->lock);
        free(rpc);
        return -r;
    }
    r = girder_behaviour_register(cfg->rt, &worker_behaviour);
    if (r < 0 && r != -EEXIST) {
        pthread_rwlock_destroy(&rpc->modlock);
        pthread_mutex_destroy(&rpc->lock);
        free(rpc);
        return r;
    }
    rpc->tables = cfg->tables;
    if (!rpc->tables) {
        /* Origin id of this node's writes: a hash of its name (FNV-1a). */
        const char *name = gr_rt_node_name(cfg->rt);
        gr_tables_config tc = {.node_id = 0xcbf29ce484222325ull};

        for (const char *p = name; p && *p; p++) {
            tc.node_id = (tc.node_id ^ (uint8_t)*p) * 0x100000001b3ull;
        }
        tc.node_id |= 1;
        tc.data_dir = cfg->data_dir;
        if ((r = gr_tables_new(&tc, &rpc->tables)) == 0) {
            rpc->own_tables = true;
        } else if (cfg->data_dir) {
            /* disk tables asked for and unusable: the node must not start
             * pretending they are there */
            pthread_mutex_destroy(&rpc->lock);
            free(rpc);
            return r;
        } else {
            rpc->tables = NULL; /* module `table` then answers no_table */
        }
    }
    if (rpc->tables) {
        gr_rpc_table_ops(rpc->tables, &rpc->tops);
        gr_rt_set_tables(rpc->rt, &rpc->tops);
    }
    *ret_rpc = rpc;
    return 0;
}

void gr_rpc_set_dist(gr_rpc *rpc, gr_dist *dist)
{
    rpc->dist = dist;
}

uint64_t gr_rpc_inflight(gr_rpc *rpc)
{
    return atomic_load(&rpc->inflight);
}

gr_rpc *gr_rpc_free(gr_rpc *rpc)
{
    if (!rpc) {
        return NULL;
    }
    /* Workers that never ran (the runtime stopped first): answer, once. */
    while (rpc->parked) {
        parked *p = rpc->parked;

        rpc->parked = p->next;
        gr_rpc_fail(p->call, GR_ESTOPPED);
        call_free(p->call);
        free(p);
    }
    while (rpc->dyn) {
        dynmod *d = rpc->dyn;

        rpc->dyn = d->next;
        free(d);
    }
    pthread_rwlock_destroy(&rpc->modlock);
    if (rpc->tables) {
        gr_rt_set_tables(rpc->rt, NULL);
    }
    if (rpc->own_tables) {
        gr_tables_free(rpc->tables);
    }
    pthread_mutex_destroy(&rpc->lock);
    free(rpc);
    return NULL;
}

gr_tables *gr_rpc_tables(const gr_rpc *rpc)
{
    return rpc->tables;
}
