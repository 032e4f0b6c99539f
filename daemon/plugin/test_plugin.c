/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_plugin.c - plugins for plugin_test, one per TPLUG_* macro, built like a
 * third party's: the public header only, no girderd symbol.
 *   GOOD      behaviour "tplug_echo" (answers a call with its request), module
 *             "tplug": hello() -> "hello", defer(X) -> ["later", X] from the
 *             plugin's worker thread (stopped and joined by on_unload), fail()
 *             -> error badarg, count() -> a table counter.
 *   NOINIT    girder_plugin_info but no girder_plugin_init
 *   BADABI    ABI major 99
 *   NEWAPI    needs table version 999
 *   INITFAIL  registers behaviour "tplug_fail" and module "tplugfail", then fails
 *   BUSY      module "tplugbusy"; its on_unload vetoes
 */
#include "girder/girder_plugin.h"

/* Each variant uses a part of this file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(TPLUG_GOOD)
#define NAME "tplug"
#elif defined(TPLUG_NOINIT)
#define NAME "tplug_noinit"
#elif defined(TPLUG_BADABI)
#define NAME "tplug_badabi"
#elif defined(TPLUG_NEWAPI)
#define NAME "tplug_newapi"
#elif defined(TPLUG_INITFAIL)
#define NAME "tplug_initfail"
#else
#define NAME "tplug_busy"
#endif

static const girder_plugin_api *api;

/* defer()'s calls wait in a queue for the plugin's one worker thread, started
 * by the first defer() and stopped and joined by on_unload: a long-lived
 * plugin thread answering deferred calls in order (examples/hello_plugin.c
 * shows the other way, a thread per call). */
typedef struct job {
    girder_deferred *d;
    size_t len;
    char buf[64];
    struct job *next;
} job;

static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcond = PTHREAD_COND_INITIALIZER;
static pthread_t worker;
static bool worker_up, worker_stop;
static job *jobs, **jobs_tail = &jobs;

static int on_unload(void)
{
#ifdef TPLUG_BUSY
    return -1;
#else
    pthread_mutex_lock(&wlock);
    worker_stop = true;
    pthread_cond_signal(&wcond);
    pthread_mutex_unlock(&wlock);
    if (worker_up) {
        pthread_join(worker, NULL); /* it answers every queued call first */
    }
    worker_up = worker_stop = false;
    return 0;
#endif
}

#if defined(TPLUG_BADABI)
const struct girder_plugin_info girder_plugin_info = {
    sizeof(struct girder_plugin_info), 99, 1, 0, NAME, "0", NULL};
#elif defined(TPLUG_NEWAPI)
const struct girder_plugin_info girder_plugin_info = {
    sizeof(struct girder_plugin_info), GIRDER_PLUGIN_ABI_MAJOR, 999, 0, NAME, "0", NULL};
#else
GIRDER_PLUGIN(NAME, "1.2.3", on_unload);
#endif

/* ---- behaviour: answers ["$call", From, Ref, Req] with Req ---- */

static int echo_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static int echo_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    msgpack_unpacked up;
    girder_pid from;
    girder_ref ref;

    msgpack_unpacked_init(&up);
    if (api->msg_unpack(msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 4 && api->get_pid(ctx, &up.data.via.array.ptr[1], &from) == 0 &&
        api->get_ref(ctx, &up.data.via.array.ptr[2], &ref) == 0) {
        girder_msg *resp = api->msg_from_object(&up.data.via.array.ptr[3]);

        if (resp) {
            api->reply(ctx, from, ref, resp);
            api->msg_unref(resp);
        }
    }
    msgpack_unpacked_destroy(&up);
    if (api->msg_is_atom(msg, "stop")) {
        return GIRDER_STOP;
    }
    return GIRDER_CONTINUE;
}

static const girder_behaviour echo = {
    .name = "tplug_echo", .init = echo_init, .handle = echo_handle};
static const girder_behaviour failbeh = {
    .name = "tplug_fail", .init = echo_init, .handle = echo_handle};

/* ---- rpc ---- */

static int fn_hello(girder_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const char hello[] = {(char)0xa5, 'h', 'e', 'l', 'l', 'o'};

    return api->rpc_answer(c, hello, sizeof(hello));
}

/* tplug.count(): adds 1 to key "n" of table "tplug" through the version 2
 * table calls and answers the new total (a positive fixint / uint64). */
static int fn_count(girder_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const char key[] = {(char)0xa1, 'n'};
    unsigned char out[9];
    int64_t total;
    int r;

    if (!GIRDER_API_HAS(api, table_incr)) {
        return -95; /* -EOPNOTSUPP */
    }
    if ((r = api->table_incr(ctx, "tplug", key, sizeof(key), 1, &total)) < 0) {
        return r;
    }
    out[0] = 0xcf;
    for (int i = 0; i < 8; i++) {
        out[1 + i] = (unsigned char)((uint64_t)total >> (56 - 8 * i));
    }
    return api->rpc_answer(c, out, sizeof(out));
}

static int fn_fail(girder_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    return -5021; /* GR_EBADARG */
}

/* Answer j with ["later", X] and free it. */
static void answer_later(job *j)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "later", 5);
    msgpack_pack_str_with_body(&pk, j->buf, j->len);
    api->deferred_answer(j->d, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    free(j);
}

static void *work(void *unused)
{
    pthread_mutex_lock(&wlock);
    for (;;) {
        job *j = jobs;

        if (j == NULL) {
            if (worker_stop) {
                break;
            }
            pthread_cond_wait(&wcond, &wlock);
            continue;
        }
        if (!(jobs = j->next)) {
            jobs_tail = &jobs;
        }
        pthread_mutex_unlock(&wlock);
        answer_later(j);
        pthread_mutex_lock(&wlock);
    }
    pthread_mutex_unlock(&wlock);
    return NULL;
}

/* tplug.defer(X) -> ["later", X], answered by the worker thread. */
static int fn_defer(girder_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *x = args->type == MSGPACK_OBJECT_ARRAY && args->via.array.size == 1
                                  ? args->via.array.ptr
                                  : NULL;
    job *j;
    int r;

    if (x == NULL || x->type != MSGPACK_OBJECT_STR || x->via.str.size >= sizeof(j->buf)) {
        return -5021; /* GR_EBADARG */
    }
    if (!(j = calloc(1, sizeof(*j)))) {
        return -12;
    }
    j->len = x->via.str.size;
    memcpy(j->buf, x->via.str.ptr, j->len);
    if ((r = api->rpc_defer(c, ctx, &j->d)) < 0) {
        free(j);
        return r;
    }
    pthread_mutex_lock(&wlock);
    if (!worker_up && pthread_create(&worker, NULL, work, NULL) != 0) {
        pthread_mutex_unlock(&wlock);
        api->deferred_fail(j->d, -12);
        free(j);
        return GIRDER_RPC_WAIT;
    }
    worker_up = true;
    *jobs_tail = j;
    jobs_tail = &j->next;
    pthread_cond_signal(&wcond);
    pthread_mutex_unlock(&wlock);
    return GIRDER_RPC_WAIT;
}

static const girder_rpc_fn fns[] = {
    {sizeof(girder_rpc_fn), "hello", fn_hello, NULL},
    {sizeof(girder_rpc_fn), "defer", fn_defer, NULL},
    {sizeof(girder_rpc_fn), "fail", fn_fail, NULL},
    {sizeof(girder_rpc_fn), "count", fn_count, NULL},
};

#if defined(TPLUG_GOOD)
static const girder_rpc_module_def mod = {sizeof(mod), "tplug", fns, 4};
#elif defined(TPLUG_INITFAIL)
static const girder_rpc_module_def mod = {sizeof(mod), "tplugfail", fns, 3};
#else
static const girder_rpc_module_def mod = {sizeof(mod), "tplugbusy", fns, 3};
#endif

#ifndef TPLUG_NOINIT
int girder_plugin_init(const girder_plugin_api *a, girder_plugin *self)
{
    int r;

    api = a;
    if (a->api_version < GIRDER_PLUGIN_API_VERSION) {
        return -1;
    }
#if defined(TPLUG_GOOD)
    if ((r = GIRDER_REGISTER_BEHAVIOUR(a, self, &echo)) < 0) {
        return r;
    }
#elif defined(TPLUG_INITFAIL)
    if ((r = GIRDER_REGISTER_BEHAVIOUR(a, self, &failbeh)) < 0) {
        return r;
    }
#endif
    if ((r = a->rpc_module_register(self, &mod)) < 0) {
        return r;
    }
    a->log(self, 1, "%s initialised", NAME);
#ifdef TPLUG_INITFAIL
    return -22;
#else
    return 0;
#endif
}
#endif
