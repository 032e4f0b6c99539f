/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_test.c - unit tests for rpc dispatch and the built-in modules without a
 * network: the test thread plays the dist thread (gr_rpc_dispatch) and a reply
 * hook collects the answers. Cross-node behaviour (node.join, rpc.call to a
 * member, node.list with members) is covered by dist's tests and cluster-tests/.
 */
#include "rpc/rpc.h"
#include "rpc/rpc_int.h"

#include "gr_version.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "services/sys.h"

#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NODE "rpctest@127.0.0.1"
#define WAIT_MS 10000
#define MAX_ANSWERS 4096

typedef struct answer {
    uint64_t conn, ref;
    int status;
    uint8_t *term;
    size_t len;
} answer;

/* Answers collected from worker threads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static answer answers[MAX_ANSWERS];
static size_t nanswers;
static atomic_int leaves;

static girder_rt *rt;
static gr_rpc *rpc;

static int capture(void *ud, uint64_t conn, uint64_t ref, int status, const void *term, size_t len)
{
    pthread_mutex_lock(&lock);
    ck_assert_uint_lt(nanswers, MAX_ANSWERS);
    answers[nanswers] = (answer){.conn = conn, .ref = ref, .status = status, .len = len};
    if (status == 0) {
        answers[nanswers].term = malloc(len);
        memcpy(answers[nanswers].term, term, len);
    }
    nanswers++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return 0;
}

static void on_leave(void *ud)
{
    atomic_fetch_add(&leaves, 1);
}

static void setup(void)
{
    gr_rt_config rc = {.node_name = NODE, .schedulers = 2};
    gr_rpc_config cfg = {.reply_fn = capture, .leave_fn = on_leave};

    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(girder_behaviour_register(rt, &gr_sys_service), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    cfg.rt = rt;
    ck_assert_int_eq(gr_rpc_new(&cfg, &rpc), 0);
    nanswers = 0;
    atomic_store(&leaves, 0);
}

static void teardown(void)
{
    gr_rt_stop(rt);
    rt = gr_rt_free(rt);
    rpc = gr_rpc_free(rpc);
    for (size_t i = 0; i < nanswers; i++) {
        free(answers[i].term);
    }
    nanswers = 0;
}

static void start_sys(void)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, &gr_sys_service, NULL, &pid), 0);
    for (int i = 0; i < 1000 && gr_rt_whereis(rt, GR_SYS_NAME, &pid) < 0; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_int_eq(gr_rt_whereis(rt, GR_SYS_NAME, &pid), 0);
}

/* Dispatch module.function(args_json-ish packed by the caller). */
static void dispatch(uint64_t ref, const char *module, const char *function,
                     const msgpack_sbuffer *args, uint32_t deadline_ms)
{
    static const uint8_t empty[] = {0x90};
    gr_dist_request req = {
        .conn = 7,
        .ref = ref,
        .peer = "cli@127.0.0.1",
        .hidden = true,
        .module = module,
        .function = function,
        .args = args ? (const uint8_t *)args->data : empty,
        .args_len = args ? args->size : sizeof(empty),
        .deadline_ms = deadline_ms,
    };

    gr_rpc_dispatch(rpc, &req);
}

/* Wait for the answer to ref; returns its index. */
static size_t wait_answer(uint64_t ref)
{
    struct timespec dl;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&lock);
    for (;;) {
        for (size_t i = 0; i < nanswers; i++) {
            if (answers[i].ref == ref) {
                pthread_mutex_unlock(&lock);
                return i;
            }
        }
        ck_assert_msg(pthread_cond_timedwait(&cond, &lock, &dl) == 0, "no answer to ref %llu",
                      (unsigned long long)ref);
    }
}

static size_t count_answers(uint64_t ref)
{
    size_t n = 0;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nanswers; i++) {
        n += answers[i].ref == ref;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

/* Unpack answer i into up (caller destroys). */
static const msgpack_object *term_of(size_t i, msgpack_unpacked *up)
{
    size_t off = 0;

    ck_assert_int_eq(answers[i].status, 0);
    msgpack_unpacked_init(up);
    ck_assert_int_eq(msgpack_unpack_next(up, (const char *)answers[i].term, answers[i].len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    return &up->data;
}

static void expect_str(uint64_t ref, const char *s)
{
    msgpack_unpacked up;
    size_t i = wait_answer(ref);

    ck_assert_msg(answers[i].status == 0, "ref %llu: error %s", (unsigned long long)ref,
                  gr_errid(answers[i].status));
    ck_assert(gr_term_is_str(term_of(i, &up), s));
    msgpack_unpacked_destroy(&up);
}

static void expect_err(uint64_t ref, int status)
{
    size_t i = wait_answer(ref);

    ck_assert_msg(answers[i].status == status, "ref %llu: got %s, want %s", (unsigned long long)ref,
                  gr_errid(answers[i].status), gr_errid(status));
}

/* args builder */
typedef struct args {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} args;

static args *args_new(uint32_t n)
{
    args *a = calloc(1, sizeof(*a));

    msgpack_sbuffer_init(&a->sb);
    msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&a->pk, n);
    return a;
}

static void args_str(args *a, const char *s)
{
    msgpack_pack_str_with_body(&a->pk, s, strlen(s));
}

static void args_free(args *a)
{
    msgpack_sbuffer_destroy(&a->sb);
    free(a);
}

/* ---- tests ------------------------------------------------------------------------- */

START_TEST(unknown_names)
{
    dispatch(1, "nosuch", "ping", NULL, 1000);
    dispatch(2, "node", "nosuch", NULL, 1000);
    dispatch(3, "", "", NULL, 1000);
    expect_err(1, GR_EBADMODULE);
    expect_err(2, GR_EBADFUNC);
    expect_err(3, GR_EBADMODULE);
}
END_TEST

START_TEST(node_ping_self_list)
{
    args *a = args_new(1);
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;

    args_str(a, "extra");
    dispatch(1, "node", "ping", NULL, 1000);
    dispatch(2, "node", "ping", &a->sb, 1000);
    dispatch(3, "node", "self", NULL, 1000);
    dispatch(4, "node", "list", NULL, 1000);
    expect_str(1, "pong");
    expect_err(2, GR_EBADARG);
    expect_str(3, NODE);
    i = wait_answer(4);
    o = term_of(i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o->via.array.size, 1);
    ck_assert_int_eq(o->via.array.ptr[0].type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(o->via.array.ptr[0].via.map.size, 10); /* ... busy, max_rx_gap_ms, cipher */
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[0].val, NODE));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[4].val, "self"));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[8].key, "max_rx_gap_ms"));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[9].key, "cipher"));
    ck_assert_int_eq(o->via.array.ptr[0].via.map.ptr[9].val.type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&up);
    args_free(a);
}
END_TEST

START_TEST(sys_forwarded)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;

    dispatch(1, "sys", "version", NULL, 1000); /* no sys service yet */
    expect_err(1, GR_ENOPROC);
    start_sys();
    dispatch(2, "sys", "version", NULL, 2000);
    dispatch(3, "sys", "schedulers", NULL, 2000);
    dispatch(4, "sys", "counters", NULL, 2000);
    expect_str(2, GIRDER_VERSION);
    i = wait_answer(3);
    o = term_of(i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(o->via.u64, 2);
    msgpack_unpacked_destroy(&up);
    i = wait_answer(4);
    o = term_of(i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].key, "processes"));
    ck_assert_uint_ge(o->via.map.ptr[0].val.via.u64, 1);
    /* the calls above were pushed to sleeping schedulers from this thread */
    ck_assert(gr_term_is_str(&o->via.map.ptr[3].key, "sched_wakeups"));
    ck_assert_uint_ge(o->via.map.ptr[3].val.via.u64, 1);
    msgpack_unpacked_destroy(&up);
}
END_TEST

START_TEST(rpc_call_self_and_remote)
{
    args *a = args_new(5), *b = args_new(4), *bad = args_new(4);

    /* rpc.call(self, node, ping, [], 1000) runs here */
    args_str(a, NODE);
    args_str(a, "node");
    args_str(a, "ping");
    msgpack_pack_array(&a->pk, 0);
    msgpack_pack_uint32(&a->pk, 1000);
    dispatch(1, "rpc", "call", &a->sb, 2000);
    expect_str(1, "pong");
    /* another node, no network: noconnection */
    args_str(b, "other@127.0.0.9");
    args_str(b, "node");
    args_str(b, "ping");
    msgpack_pack_array(&b->pk, 0);
    dispatch(2, "rpc", "call", &b->sb, 2000);
    expect_err(2, GR_ENOCONN);
    /* Args not an array: badarg; unknown function through rpc.call on self */
    args_str(bad, NODE);
    args_str(bad, "node");
    args_str(bad, "nosuch");
    msgpack_pack_array(&bad->pk, 0);
    dispatch(3, "rpc", "call", &bad->sb, 2000);
    expect_err(3, GR_EBADFUNC);
    dispatch(4, "rpc", "call", NULL, 2000);
    expect_err(4, GR_EBADARG);
    args_free(a);
    args_free(b);
    args_free(bad);
}
END_TEST

START_TEST(join_and_leave)
{
    args *a = args_new(1), *self = args_new(1), *j = args_new(1);

    args_str(a, "not-a-target");
    dispatch(1, "node", "join", &a->sb, 1000);
    expect_err(1, GR_EBADARG);
    args_str(self, NODE ":4370");
    dispatch(2, "node", "join", &self->sb, 1000);
    expect_str(2, "ok");
    args_str(j, "b@127.0.0.9:4370");
    dispatch(3, "node", "join", &j->sb, 1000);
    expect_err(3, GR_ENOCONN);
    dispatch(4, "node", "leave", NULL, 1000);
    expect_str(4, "ok");
    /* the hook runs right after the answer, on the worker's thread */
    for (int i = 0; i < 1000 && atomic_load(&leaves) == 0; i++) {
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    ck_assert_int_eq(atomic_load(&leaves), 1);
    args_free(a);
    args_free(self);
    args_free(j);
}
END_TEST

/* A fake "sys" that never answers: the worker's deadline answers timeout. */
static int mute_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    return girder_register(ctx, GR_SYS_NAME, girder_self(ctx));
}

static int mute_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

static const girder_behaviour mute = {.name = "mute", .init = mute_init, .handle = mute_handle};

START_TEST(deadline)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, &mute, NULL, &pid), 0);
    for (int i = 0; i < 1000 && gr_rt_whereis(rt, GR_SYS_NAME, &pid) < 0; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    dispatch(1, "sys", "uptime", NULL, 200);
    expect_err(1, GR_ETIMEOUT);
    /* exactly once: nothing more arrives, and the worker is gone */
    for (int i = 0; i < 1000 && gr_rpc_inflight(rpc) > 0; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(count_answers(1), 1);
}
END_TEST

/* An extension module (gr_rpc_config.modules, as girderd-testkit's bench):
 * served beside the built-in ones; a name already taken is refused. */
static int hello_hi(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *a)
{
    return gr_rpc_answer_str(c, "hi");
}

static const gr_rpc_fn_def hello_fns[] = {{"hi", hello_hi, NULL, NULL}};
static const gr_rpc_module mod_hello = {"hello", hello_fns, 1};
static const gr_rpc_module mod_node_again = {"node", hello_fns, 1};

START_TEST(extension_modules)
{
    const gr_rpc_module *const ext[] = {&mod_hello};
    const gr_rpc_module *const clash[] = {&mod_node_again};
    const gr_rpc_module *const twice[] = {&mod_hello, &mod_hello};
    gr_rpc_config cfg = {.rt = rt, .reply_fn = capture, .modules = clash, .nmodules = 1};
    gr_rpc *other = NULL;

    ck_assert_int_eq(gr_rpc_new(&cfg, &other), -EEXIST);
    cfg.modules = twice;
    cfg.nmodules = 2;
    ck_assert_int_eq(gr_rpc_new(&cfg, &other), -EEXIST);
    cfg.modules = NULL;
    cfg.nmodules = 1;
    ck_assert_int_eq(gr_rpc_new(&cfg, &other), -EINVAL);
    ck_assert_ptr_null(other);

    /* The fixture's gr_rpc has no extension: hello is unknown there. */
    dispatch(1, "hello", "hi", NULL, 1000);
    expect_err(1, GR_EBADMODULE);

    cfg.modules = ext;
    cfg.nmodules = 1;
    ck_assert_int_eq(gr_rpc_new(&cfg, &other), 0);
    rpc = gr_rpc_free(rpc); /* nothing in flight: the teardown frees `other` */
    rpc = other;
    dispatch(2, "hello", "hi", NULL, 1000);
    dispatch(3, "hello", "nosuch", NULL, 1000);
    dispatch(4, "node", "ping", NULL, 1000);
    expect_str(2, "hi");
    expect_err(3, GR_EBADFUNC);
    expect_str(4, "pong");
}
END_TEST

/* Inline functions (node.ping, node.self, node.list, sys.counters) are answered
 * on the calling thread, before dispatch returns. */
START_TEST(inline_answers_at_once)
{
    dispatch(1, "node", "ping", NULL, 1000);
    dispatch(2, "sys", "counters", NULL, 1000);
    ck_assert_uint_eq(count_answers(1), 1);
    ck_assert_uint_eq(count_answers(2), 1);
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    expect_str(1, "pong");
}
END_TEST

/* Many calls at once: each answered exactly once, no worker left behind. */
START_TEST(many)
{
    enum { N = 2000 };

    start_sys();
    for (uint64_t r = 1; r <= N; r++) {
        dispatch(r, r % 2 ? "node" : "sys", r % 2 ? "ping" : "uptime", NULL, 5000);
    }
    for (uint64_t r = 1; r <= N; r++) {
        size_t i = wait_answer(r);

        ck_assert_int_eq(answers[i].status, 0);
    }
    for (int i = 0; i < 1000 && gr_rpc_inflight(rpc) > 0; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(nanswers, N);
}
END_TEST

/* Workers still waiting when the runtime stops answer "stopped", once. */
START_TEST(stop_answers_stopped)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, &mute, NULL, &pid), 0);
    for (int i = 0; i < 1000 && gr_rt_whereis(rt, GR_SYS_NAME, &pid) < 0; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    dispatch(1, "sys", "uptime", NULL, 60000);
    for (int i = 0; i < 1000 && gr_rpc_inflight(rpc) == 0; i++) {
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    gr_rt_stop(rt);
    dispatch(2, "sys", "uptime", NULL, 1000); /* after stop: refused at once */
    expect_err(2, GR_ESTOPPED);
    /* A worker that never ran is answered when the gr_rpc goes away. One that
     * ran answers "stopped" when it is killed - or "noproc" if the service it
     * waits on died first in the shutdown: either way an error, once. */
    rpc = gr_rpc_free(rpc);
    {
        size_t i = wait_answer(1);

        ck_assert_msg(answers[i].status == GR_ESTOPPED || answers[i].status == GR_ENOPROC,
                      "ref 1: got %s", gr_errid(answers[i].status));
    }
    ck_assert_uint_eq(count_answers(1), 1);
}
END_TEST

/* ---- rpc.multicall and rpc.cast (no network: this node and unconnected ones) ---------------- */

/* The {"ok": R} / {"error": Id} of node in a multicall answer; NULL if absent. */
static const msgpack_object *mc_entry(const msgpack_object *o, const char *node, bool *ret_ok)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *v = &o->via.map.ptr[i].val;

        if (gr_term_is_str(&o->via.map.ptr[i].key, node)) {
            ck_assert_int_eq(v->type, MSGPACK_OBJECT_MAP);
            ck_assert_uint_eq(v->via.map.size, 1);
            *ret_ok = gr_term_is_str(&v->via.map.ptr[0].key, "ok");
            ck_assert(*ret_ok || gr_term_is_str(&v->via.map.ptr[0].key, "error"));
            return &v->via.map.ptr[0].val;
        }
    }
    return NULL;
}

/* rpc.multicall(Nodes, mod, fn, [], timeout) with Nodes packed by the caller
 * into a (4 or 5 elements announced by args_new). */
static void mc_args(args *a, const char *mod, const char *fn, uint32_t timeout)
{
    args_str(a, mod);
    args_str(a, fn);
    msgpack_pack_array(&a->pk, 0);
    if (timeout) {
        msgpack_pack_uint32(&a->pk, timeout);
    }
}

START_TEST(multicall_self_and_unconnected)
{
    args *a = args_new(5), *all = args_new(4), *bad = args_new(4);
    msgpack_unpacked up;
    const msgpack_object *o, *v;
    bool ok;
    size_t i;

    /* this node runs it; an unconnected node is noconnection; duplicates once */
    msgpack_pack_array(&a->pk, 3);
    args_str(a, NODE);
    args_str(a, "other@127.0.0.9");
    args_str(a, NODE);
    mc_args(a, "node", "self", 2000);
    dispatch(1, "rpc", "multicall", &a->sb, 5000);
    i = wait_answer(1);
    ck_assert_int_eq(answers[i].status, 0);
    o = term_of(i, &up);
    ck_assert_uint_eq(o->via.map.size, 2);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].key, NODE)); /* in the order given */
    ck_assert((v = mc_entry(o, NODE, &ok)) && ok && gr_term_is_str(v, NODE));
    ck_assert((v = mc_entry(o, "other@127.0.0.9", &ok)) && !ok &&
              gr_term_is_str(v, "noconnection"));
    msgpack_unpacked_destroy(&up);

    /* "all" without distribution: this node alone */
    args_str(all, "all");
    mc_args(all, "node", "ping", 0);
    dispatch(2, "rpc", "multicall", &all->sb, 5000);
    i = wait_answer(2);
    o = term_of(i, &up);
    ck_assert_uint_eq(o->via.map.size, 1);
    ck_assert((v = mc_entry(o, NODE, &ok)) && ok && gr_term_is_str(v, "pong"));
    msgpack_unpacked_destroy(&up);

    /* an unknown module is each node's error, not the multicall's */
    msgpack_pack_array(&bad->pk, 1);
    args_str(bad, NODE);
    mc_args(bad, "nosuch", "f", 0);
    dispatch(3, "rpc", "multicall", &bad->sb, 5000);
    i = wait_answer(3);
    o = term_of(i, &up);
    ck_assert((v = mc_entry(o, NODE, &ok)) && !ok && gr_term_is_str(v, "undef_module"));
    msgpack_unpacked_destroy(&up);
    ck_assert_uint_eq(count_answers(1) + count_answers(2) + count_answers(3), 3);
    args_free(a);
    args_free(all);
    args_free(bad);
}
END_TEST

START_TEST(multicall_timeout_per_node)
{
    /* sys never answers here: this node times out after TimeoutMs, the
     * unconnected one is noconnection; one answer, no worker left behind. */
    args *a = args_new(5);
    msgpack_unpacked up;
    const msgpack_object *o, *v;
    girder_pid pid;
    struct timespec t0, t1;
    bool ok;
    size_t i;
    long ms;

    ck_assert_int_eq(gr_rt_spawn(rt, &mute, NULL, &pid), 0);
    for (int k = 0; k < 1000 && gr_rt_whereis(rt, GR_SYS_NAME, &pid) < 0; k++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    msgpack_pack_array(&a->pk, 2);
    args_str(a, "other@127.0.0.9");
    args_str(a, NODE);
    mc_args(a, "sys", "uptime", 300);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dispatch(1, "rpc", "multicall", &a->sb, 5000);
    i = wait_answer(1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 250);
    ck_assert_int_lt(ms, 3000);
    o = term_of(i, &up);
    ck_assert((v = mc_entry(o, NODE, &ok)) && !ok && gr_term_is_str(v, "timeout"));
    ck_assert((v = mc_entry(o, "other@127.0.0.9", &ok)) && !ok &&
              gr_term_is_str(v, "noconnection"));
    msgpack_unpacked_destroy(&up);
    for (int k = 0; k < 1000 && gr_rpc_inflight(rpc) > 0; k++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(count_answers(1), 1);
    args_free(a);
}
END_TEST

START_TEST(multicall_bad_args)
{
    args *num = args_new(4), *empty = args_new(4), *badnode = args_new(4), *t0 = args_new(5);

    msgpack_pack_int(&num->pk, 42);
    mc_args(num, "node", "ping", 0);
    dispatch(1, "rpc", "multicall", &num->sb, 1000);
    expect_err(1, GR_EBADARG);
    msgpack_pack_array(&empty->pk, 0);
    mc_args(empty, "node", "ping", 0);
    dispatch(2, "rpc", "multicall", &empty->sb, 1000);
    expect_err(2, GR_EBADARG);
    msgpack_pack_array(&badnode->pk, 1);
    args_str(badnode, "not a node");
    mc_args(badnode, "node", "ping", 0);
    dispatch(3, "rpc", "multicall", &badnode->sb, 1000);
    expect_err(3, GR_EBADARG);
    args_str(t0, "all");
    mc_args(t0, "node", "ping", 0);
    msgpack_pack_uint32(&t0->pk, 0);
    dispatch(4, "rpc", "multicall", &t0->sb, 1000);
    expect_err(4, GR_EBADARG);
    dispatch(5, "rpc", "multicall", NULL, 1000);
    expect_err(5, GR_EBADARG);
    args_free(num);
    args_free(empty);
    args_free(badnode);
    args_free(t0);
}
END_TEST

START_TEST(cast)
{
    args *leave = args_new(4), *undef = args_new(4), *other = args_new(4), *bad = args_new(3);

    /* cast(self, node, leave, []): "ok" at once, the call runs (the leave hook
     * fires) and its own answer goes nowhere */
    args_str(leave, NODE);
    mc_args(leave, "node", "leave", 0);
    dispatch(1, "rpc", "cast", &leave->sb, 1000);
    expect_str(1, "ok");
    for (int i = 0; i < 1000 && atomic_load(&leaves) == 0; i++) {
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    ck_assert_int_eq(atomic_load(&leaves), 1);
    for (int i = 0; i < 1000 && gr_rpc_inflight(rpc) > 0; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(nanswers, 1);
    /* errors known at once */
    args_str(undef, NODE);
    mc_args(undef, "nosuch", "f", 0);
    dispatch(2, "rpc", "cast", &undef->sb, 1000);
    expect_err(2, GR_EBADMODULE);
    args_str(other, "other@127.0.0.9");
    mc_args(other, "node", "ping", 0);
    dispatch(3, "rpc", "cast", &other->sb, 1000);
    expect_err(3, GR_ENOCONN);
    args_str(bad, NODE);
    args_str(bad, "node");
    args_str(bad, "ping");
    dispatch(4, "rpc", "cast", &bad->sb, 1000);
    expect_err(4, GR_EBADARG);
    args_free(leave);
    args_free(undef);
    args_free(other);
    args_free(bad);
}
END_TEST

static Suite *rpc_suite(void)
{
    Suite *s = suite_create("rpc");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, unknown_names);
    tcase_add_test(tc, extension_modules);
    tcase_add_test(tc, node_ping_self_list);
    tcase_add_test(tc, sys_forwarded);
    tcase_add_test(tc, rpc_call_self_and_remote);
    tcase_add_test(tc, join_and_leave);
    tcase_add_test(tc, deadline);
    tcase_add_test(tc, inline_answers_at_once);
    tcase_add_test(tc, many);
    tcase_add_test(tc, stop_answers_stopped);
    tcase_add_test(tc, multicall_self_and_unconnected);
    tcase_add_test(tc, multicall_timeout_per_node);
    tcase_add_test(tc, multicall_bad_args);
    tcase_add_test(tc, cast);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rpc_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
