/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello_plugin.c - an example Girder plugin, built as a third party builds
 * one: against the installed header, with no link to girderd.
 *
 *   cc -shared -fPIC -o hello.so hello_plugin.c $(pkg-config --cflags --libs girder-plugin)
 *   girderd --plugin /path/to/hello.so          (or: girder plugin load /path/to/hello.so)
 *   girder rpc NODE hello greet '"world"'       -> "hello, world"
 *   girder rpc NODE hello slow 200              -> "slept 200 ms" (on a thread of the plugin)
 *   girder spawn counter; girder call PID '"x"' -> 1, 2, 3, ...
 *
 * `slow` shows the rule for blocking work: a callback never blocks a
 * scheduler. It hands the call to a thread (rpc_defer), returns
 * GIRDER_RPC_WAIT, and the thread finishes the call with deferred_answer.
 * on_unload joins the threads, so nothing of the plugin runs after unload.
 */
#include <girder/girder_plugin.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const girder_plugin_api *api;

#define MAX_THREADS 256
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t threads[MAX_THREADS];
static int nthreads;

static int on_unload(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    nthreads = 0;
    pthread_mutex_unlock(&lock);
    return 0;
}

GIRDER_PLUGIN("hello", "1.0.0", on_unload);

/* hello.greet(Name) -> "hello, Name" */
static int greet(girder_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char text[128];
    int n, r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        args->via.array.ptr[0].type != MSGPACK_OBJECT_STR) {
        return api->rpc_fail(c, -22);
    }
    n = snprintf(text, sizeof(text), "hello, %.*s", (int)args->via.array.ptr[0].via.str.size,
                 args->via.array.ptr[0].via.str.ptr);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, text, n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1);
    r = api->rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

typedef struct job {
    girder_deferred *d;
    unsigned ms;
} job;

static void *sleeper(void *p)
{
    job *j = p;
    struct timespec ts = {j->ms / 1000, (long)(j->ms % 1000) * 1000000L};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char text[64];
    int n;

    nanosleep(&ts, NULL); /* the blocking work */
    n = snprintf(text, sizeof(text), "slept %u ms", j->ms);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, text, (size_t)n);
    api->deferred_answer(j->d, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    free(j);
    return NULL;
}

/* hello.slow(Ms) -> "slept Ms ms", answered from a thread */
static int slow(girder_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    job *j;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        args->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        args->via.array.ptr[0].via.u64 > 10000) {
        return -22;
    }
    if (!(j = malloc(sizeof(*j)))) {
        return -12;
    }
    j->ms = (unsigned)args->via.array.ptr[0].via.u64;
    if ((r = api->rpc_defer(c, ctx, &j->d)) < 0) {
        free(j);
        return r;
    }
    pthread_mutex_lock(&lock);
    if (nthreads == MAX_THREADS || pthread_create(&threads[nthreads], NULL, sleeper, j) != 0) {
        pthread_mutex_unlock(&lock);
        api->deferred_fail(j->d, -11);
        free(j);
        return GIRDER_RPC_WAIT;
    }
    nthreads++;
    pthread_mutex_unlock(&lock);
    return GIRDER_RPC_WAIT;
}

/* Behaviour "counter": answers every call with the number of calls so far. */
static int counter_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    *ret_state = calloc(1, sizeof(uint64_t));
    return *ret_state ? 0 : -12;
}

static int counter_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    uint64_t *count = state;
    msgpack_unpacked up;
    girder_pid from;
    girder_ref ref;

    msgpack_unpacked_init(&up);
    if (api->msg_unpack(msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 4 && api->get_pid(ctx, &up.data.via.array.ptr[1], &from) == 0 &&
        api->get_ref(ctx, &up.data.via.array.ptr[2], &ref) == 0) {
        uint8_t buf[9];
        girder_msg *resp;

        ++*count;
        buf[0] = 0xcf; /* msgpack uint64 */
        for (int i = 0; i < 8; i++) {
            buf[1 + i] = (uint8_t)(*count >> (56 - 8 * i));
        }
        if ((resp = api->msg_new(buf, sizeof(buf)))) {
            api->reply(ctx, from, ref, resp);
            api->msg_unref(resp);
        }
    }
    msgpack_unpacked_destroy(&up);
    return GIRDER_CONTINUE;
}

static void counter_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    free(state);
}

static const girder_behaviour counter = {.name = "counter",
                                         .init = counter_init,
                                         .handle = counter_handle,
                                         .terminate = counter_terminate};

static const girder_rpc_fn fns[] = {
    {sizeof(girder_rpc_fn), "greet", greet, NULL},
    {sizeof(girder_rpc_fn), "slow", slow, NULL},
};
static const girder_rpc_module_def hello = {sizeof(hello), "hello", fns, 2};

int girder_plugin_init(const girder_plugin_api *a, girder_plugin *self)
{
    int r;

    api = a;
    if ((r = GIRDER_REGISTER_BEHAVIOUR(a, self, &counter)) < 0 ||
        (r = a->rpc_module_register(self, &hello)) < 0) {
        return r;
    }
    a->log(self, 1, "hello plugin ready");
    return 0;
}
