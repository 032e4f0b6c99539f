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
#include "testing/gr_test_rpc.h"
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

/* Answers collected from worker threads. */
static gr_test_answers ans = GR_TEST_ANSWERS_INIT;
static atomic_int leaves;

static girder_rt *rt;
static gr_rpc *rpc;

static void on_leave(void *ud)
{
    atomic_fetch_add(&leaves, 1);
}

static void setup(void)
{
    gr_rt_config rc = {.node_name = NODE, .schedulers = 2};
    gr_rpc_config cfg = {
        .reply_fn = gr_test_answers_capture, .reply_ud = &ans, .leave_fn = on_leave};

    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(girder_behaviour_register(rt, &gr_sys_service), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    cfg.rt = rt;
    ck_assert_int_eq(gr_rpc_new(&cfg, &rpc), 0);
    atomic_store(&leaves, 0);
}

static void teardown(void)
{
    gr_rt_stop(rt);
    rpc = gr_rpc_free(rpc); /* before the runtime: it unhooks girder_table_* */
    rt = gr_rt_free(rt);
    gr_test_answers_clear(&ans);
}

static void start_sys(void)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, &gr_sys_service, NULL, &pid), 0);
    gr_test_wait_until(gr_rt_whereis(rt, GR_SYS_NAME, &pid) == 0, 5000, "sys never registered");
    ck_assert_int_eq(gr_rt_whereis(rt, GR_SYS_NAME, &pid), 0);
}

static void expect_str(uint64_t ref, const char *s)
{
    msgpack_unpacked up;
    size_t i = gr_test_answers_wait(&ans, ref, WAIT_MS);

    ck_assert_msg(ans.a[i].status == 0, "ref %llu: error %s", (unsigned long long)ref,
                  gr_errid(ans.a[i].status));
    ck_assert(gr_term_is_str(gr_test_answers_term(&ans, i, &up), s));
    msgpack_unpacked_destroy(&up);
}

static void expect_err(uint64_t ref, int status)
{
    size_t i = gr_test_answers_wait(&ans, ref, WAIT_MS);

    ck_assert_msg(ans.a[i].status == status, "ref %llu: got %s, want %s", (unsigned long long)ref,
                  gr_errid(ans.a[i].status), gr_errid(status));
}

/* ---- tests ------------------------------------------------------------------------- */

START_TEST(unknown_names)
{
    gr_test_rpc_dispatch(rpc, 1, "nosuch", "ping", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 2, "node", "nosuch", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 3, "", "", NULL, 1000);
    expect_err(1, GR_EBADMODULE);
    expect_err(2, GR_EBADFUNC);
    expect_err(3, GR_EBADMODULE);
}
END_TEST

START_TEST(node_ping_self_list)
{
    gr_test_args *a = gr_test_args_new(1);
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;

    gr_test_args_str(a, "extra");
    gr_test_rpc_dispatch(rpc, 1, "node", "ping", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 2, "node", "ping", &a->sb, 1000);
    gr_test_rpc_dispatch(rpc, 3, "node", "self", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 4, "node", "list", NULL, 1000);
    expect_str(1, "pong");
    expect_err(2, GR_EBADARG);
    expect_str(3, NODE);
    i = gr_test_answers_wait(&ans, 4, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o->via.array.size, 1);
    ck_assert_int_eq(o->via.array.ptr[0].type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(o->via.array.ptr[0].via.map.size, 17); /* ... cipher, link figures */
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[0].val, NODE));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[4].val, "self"));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[8].key, "max_rx_gap_ms"));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[9].key, "cipher"));
    ck_assert_int_eq(o->via.array.ptr[0].via.map.ptr[9].val.type, MSGPACK_OBJECT_NIL);
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[14].key, "rtt_us"));
    ck_assert(gr_term_is_str(&o->via.array.ptr[0].via.map.ptr[16].key, "srtt_us"));
    msgpack_unpacked_destroy(&up);
    gr_test_args_free(a);
}
END_TEST

/* node.about: this node's facts; node.forget without a cluster: itself is
 * refused, anything else is no member. */
START_TEST(node_about_forget)
{
    gr_test_args *self = gr_test_args_new(1), *other = gr_test_args_new(1);
    msgpack_unpacked up;
    const msgpack_object *o, *lim;
    size_t i;

    gr_test_args_str(self, NODE);
    gr_test_args_str(other, "ghost@127.0.0.9");
    gr_test_rpc_dispatch(rpc, 1, "node", "about", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 2, "node", "forget", &self->sb, 1000);
    gr_test_rpc_dispatch(rpc, 3, "node", "forget", &other->sb, 1000);
    gr_test_rpc_dispatch(rpc, 4, "node", "forget", NULL, 1000);
    i = gr_test_answers_wait(&ans, 1, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    ck_assert(gr_term_is_str(gr_term_map_get(o, "name"), NODE));
    ck_assert(gr_term_is_str(gr_term_map_get(o, "version"), GIRDER_VERSION));
    ck_assert_int_eq(gr_term_map_get(o, "processes")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    lim = gr_term_map_get(o, "limits");
    ck_assert_int_eq(lim->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(gr_term_map_get(lim, "members")->via.array.size, 2);
    msgpack_unpacked_destroy(&up);
    expect_err(2, GR_EFORGETSELF);
    expect_err(3, GR_ENOMEMBER);
    expect_err(4, GR_EBADARG);
    gr_test_args_free(self);
    gr_test_args_free(other);
}
END_TEST

START_TEST(sys_forwarded)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;

    gr_test_rpc_dispatch(rpc, 1, "sys", "version", NULL, 1000); /* no sys service yet */
    expect_err(1, GR_ENOPROC);
    start_sys();
    gr_test_rpc_dispatch(rpc, 2, "sys", "version", NULL, 2000);
    gr_test_rpc_dispatch(rpc, 3, "sys", "schedulers", NULL, 2000);
    gr_test_rpc_dispatch(rpc, 4, "sys", "counters", NULL, 2000);
    expect_str(2, GIRDER_VERSION);
    i = gr_test_answers_wait(&ans, 3, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(o->via.u64, 2);
    msgpack_unpacked_destroy(&up);
    i = gr_test_answers_wait(&ans, 4, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
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
    gr_test_args *a = gr_test_args_new(5), *b = gr_test_args_new(4), *bad = gr_test_args_new(4);

    /* rpc.call(self, node, ping, [], 1000) runs here */
    gr_test_args_str(a, NODE);
    gr_test_args_str(a, "node");
    gr_test_args_str(a, "ping");
    msgpack_pack_array(&a->pk, 0);
    msgpack_pack_uint32(&a->pk, 1000);
    gr_test_rpc_dispatch(rpc, 1, "rpc", "call", &a->sb, 2000);
    expect_str(1, "pong");
    /* another node, no network: noconnection */
    gr_test_args_str(b, "other@127.0.0.9");
    gr_test_args_str(b, "node");
    gr_test_args_str(b, "ping");
    msgpack_pack_array(&b->pk, 0);
    gr_test_rpc_dispatch(rpc, 2, "rpc", "call", &b->sb, 2000);
    expect_err(2, GR_ENOCONN);
    /* Args not an array: badarg; unknown function through rpc.call on self */
    gr_test_args_str(bad, NODE);
    gr_test_args_str(bad, "node");
    gr_test_args_str(bad, "nosuch");
    msgpack_pack_array(&bad->pk, 0);
    gr_test_rpc_dispatch(rpc, 3, "rpc", "call", &bad->sb, 2000);
    expect_err(3, GR_EBADFUNC);
    gr_test_rpc_dispatch(rpc, 4, "rpc", "call", NULL, 2000);
    expect_err(4, GR_EBADARG);
    gr_test_args_free(a);
    gr_test_args_free(b);
    gr_test_args_free(bad);
}
END_TEST

START_TEST(join_and_leave)
{
    gr_test_args *a = gr_test_args_new(1), *self = gr_test_args_new(1), *j = gr_test_args_new(1);

    gr_test_args_str(a, "not-a-target");
    gr_test_rpc_dispatch(rpc, 1, "node", "join", &a->sb, 1000);
    expect_err(1, GR_EBADARG);
    gr_test_args_str(self, NODE ":4370");
    gr_test_rpc_dispatch(rpc, 2, "node", "join", &self->sb, 1000);
    expect_str(2, "ok");
    gr_test_args_str(j, "b@127.0.0.9:4370");
    gr_test_rpc_dispatch(rpc, 3, "node", "join", &j->sb, 1000);
    expect_err(3, GR_ENOCONN);
    gr_test_rpc_dispatch(rpc, 4, "node", "leave", NULL, 1000);
    expect_str(4, "ok");
    /* the hook runs right after the answer, on the worker's thread */
    gr_test_wait_until(atomic_load(&leaves) > 0, 5000, "node.leave never called");
    ck_assert_int_eq(atomic_load(&leaves), 1);
    gr_test_args_free(a);
    gr_test_args_free(self);
    gr_test_args_free(j);
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
    gr_test_wait_until(gr_rt_whereis(rt, GR_SYS_NAME, &pid) == 0, 5000, "sys never registered");
    gr_test_rpc_dispatch(rpc, 1, "sys", "uptime", NULL, 200);
    expect_err(1, GR_ETIMEOUT);
    /* exactly once: nothing more arrives, and the worker is gone */
    gr_test_wait_until(gr_rpc_inflight(rpc) == 0, 5000, "workers still in flight");
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(gr_test_answers_count(&ans, 1), 1);
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
    gr_rpc_config cfg = {.rt = rt,
                         .reply_fn = gr_test_answers_capture,
                         .reply_ud = &ans,
                         .modules = clash,
                         .nmodules = 1};
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
    gr_test_rpc_dispatch(rpc, 1, "hello", "hi", NULL, 1000);
    expect_err(1, GR_EBADMODULE);

    cfg.modules = ext;
    cfg.nmodules = 1;
    ck_assert_int_eq(gr_rpc_new(&cfg, &other), 0);
    rpc = gr_rpc_free(rpc); /* nothing in flight: the teardown frees `other` */
    rpc = other;
    gr_test_rpc_dispatch(rpc, 2, "hello", "hi", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 3, "hello", "nosuch", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 4, "node", "ping", NULL, 1000);
    expect_str(2, "hi");
    expect_err(3, GR_EBADFUNC);
    expect_str(4, "pong");
}
END_TEST

/* Inline functions (node.ping, node.self, node.list, sys.counters) are answered
 * on the calling thread, before dispatch returns. */
START_TEST(inline_answers_at_once)
{
    gr_test_rpc_dispatch(rpc, 1, "node", "ping", NULL, 1000);
    gr_test_rpc_dispatch(rpc, 2, "sys", "counters", NULL, 1000);
    ck_assert_uint_eq(gr_test_answers_count(&ans, 1), 1);
    ck_assert_uint_eq(gr_test_answers_count(&ans, 2), 1);
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
        gr_test_rpc_dispatch(rpc, r, r % 2 ? "node" : "sys", r % 2 ? "ping" : "uptime", NULL, 5000);
    }
    for (uint64_t r = 1; r <= N; r++) {
        size_t i = gr_test_answers_wait(&ans, r, WAIT_MS);

        ck_assert_int_eq(ans.a[i].status, 0);
    }
    gr_test_wait_until(gr_rpc_inflight(rpc) == 0, 5000, "workers still in flight");
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(gr_test_answers_n(&ans), N);
}
END_TEST

/* Workers still waiting when the runtime stops answer "stopped", once. */
START_TEST(stop_answers_stopped)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, &mute, NULL, &pid), 0);
    gr_test_wait_until(gr_rt_whereis(rt, GR_SYS_NAME, &pid) == 0, 5000, "sys never registered");
    gr_test_rpc_dispatch(rpc, 1, "sys", "uptime", NULL, 60000);
    gr_test_wait_until(gr_rpc_inflight(rpc) > 0, 5000, "no worker in flight");
    gr_rt_stop(rt);
    gr_test_rpc_dispatch(rpc, 2, "sys", "uptime", NULL, 1000); /* after stop: refused at once */
    expect_err(2, GR_ESTOPPED);
    /* A worker that never ran is answered when the gr_rpc goes away. One that
     * ran answers "stopped" when it is killed - or "noproc" if the service it
     * waits on died first in the shutdown: either way an error, once. */
    rpc = gr_rpc_free(rpc);
    {
        size_t i = gr_test_answers_wait(&ans, 1, WAIT_MS);

        ck_assert_msg(ans.a[i].status == GR_ESTOPPED || ans.a[i].status == GR_ENOPROC,
                      "ref 1: got %s", gr_errid(ans.a[i].status));
    }
    ck_assert_uint_eq(gr_test_answers_count(&ans, 1), 1);
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
static void mc_args(gr_test_args *a, const char *mod, const char *fn, uint32_t timeout)
{
    gr_test_args_str(a, mod);
    gr_test_args_str(a, fn);
    msgpack_pack_array(&a->pk, 0);
    if (timeout) {
        msgpack_pack_uint32(&a->pk, timeout);
    }
}

START_TEST(multicall_self_and_unconnected)
{
    gr_test_args *a = gr_test_args_new(5), *all = gr_test_args_new(4), *bad = gr_test_args_new(4);
    msgpack_unpacked up;
    const msgpack_object *o, *v;
    bool ok;
    size_t i;

    /* this node runs it; an unconnected node is noconnection; duplicates once */
    msgpack_pack_array(&a->pk, 3);
    gr_test_args_str(a, NODE);
    gr_test_args_str(a, "other@127.0.0.9");
    gr_test_args_str(a, NODE);
    mc_args(a, "node", "self", 2000);
    gr_test_rpc_dispatch(rpc, 1, "rpc", "multicall", &a->sb, 5000);
    i = gr_test_answers_wait(&ans, 1, WAIT_MS);
    ck_assert_int_eq(ans.a[i].status, 0);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_uint_eq(o->via.map.size, 2);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].key, NODE)); /* in the order given */
    ck_assert((v = mc_entry(o, NODE, &ok)) && ok && gr_term_is_str(v, NODE));
    ck_assert((v = mc_entry(o, "other@127.0.0.9", &ok)) && !ok &&
              gr_term_is_str(v, "noconnection"));
    msgpack_unpacked_destroy(&up);

    /* "all" without distribution: this node alone */
    gr_test_args_str(all, "all");
    mc_args(all, "node", "ping", 0);
    gr_test_rpc_dispatch(rpc, 2, "rpc", "multicall", &all->sb, 5000);
    i = gr_test_answers_wait(&ans, 2, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_uint_eq(o->via.map.size, 1);
    ck_assert((v = mc_entry(o, NODE, &ok)) && ok && gr_term_is_str(v, "pong"));
    msgpack_unpacked_destroy(&up);

    /* an unknown module is each node's error, not the multicall's */
    msgpack_pack_array(&bad->pk, 1);
    gr_test_args_str(bad, NODE);
    mc_args(bad, "nosuch", "f", 0);
    gr_test_rpc_dispatch(rpc, 3, "rpc", "multicall", &bad->sb, 5000);
    i = gr_test_answers_wait(&ans, 3, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert((v = mc_entry(o, NODE, &ok)) && !ok && gr_term_is_str(v, "undef_module"));
    msgpack_unpacked_destroy(&up);
    ck_assert_uint_eq(gr_test_answers_count(&ans, 1) + gr_test_answers_count(&ans, 2) +
                          gr_test_answers_count(&ans, 3),
                      3);
    gr_test_args_free(a);
    gr_test_args_free(all);
    gr_test_args_free(bad);
}
END_TEST

START_TEST(multicall_timeout_per_node)
{
    /* sys never answers here: this node times out after TimeoutMs, the
     * unconnected one is noconnection; one answer, no worker left behind. */
    gr_test_args *a = gr_test_args_new(5);
    msgpack_unpacked up;
    const msgpack_object *o, *v;
    girder_pid pid;
    struct timespec t0, t1;
    bool ok;
    size_t i;
    long ms;

    ck_assert_int_eq(gr_rt_spawn(rt, &mute, NULL, &pid), 0);
    gr_test_wait_until(gr_rt_whereis(rt, GR_SYS_NAME, &pid) == 0, 5000, "sys never registered");
    msgpack_pack_array(&a->pk, 2);
    gr_test_args_str(a, "other@127.0.0.9");
    gr_test_args_str(a, NODE);
    mc_args(a, "sys", "uptime", 300);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* the per-node timeout answers: the request's deadline (10 min) is far
     * past the wait for the answer (WAIT_MS, scaled); and never early */
    gr_test_rpc_dispatch(rpc, 1, "rpc", "multicall", &a->sb, 600000);
    i = gr_test_answers_wait(&ans, 1, WAIT_MS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 250);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert((v = mc_entry(o, NODE, &ok)) && !ok && gr_term_is_str(v, "timeout"));
    ck_assert((v = mc_entry(o, "other@127.0.0.9", &ok)) && !ok &&
              gr_term_is_str(v, "noconnection"));
    msgpack_unpacked_destroy(&up);
    gr_test_wait_until(gr_rpc_inflight(rpc) == 0, 5000, "workers still in flight");
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(gr_test_answers_count(&ans, 1), 1);
    gr_test_args_free(a);
}
END_TEST

START_TEST(multicall_bad_args)
{
    gr_test_args *num = gr_test_args_new(4), *empty = gr_test_args_new(4),
                 *badnode = gr_test_args_new(4), *t0 = gr_test_args_new(5);

    msgpack_pack_int(&num->pk, 42);
    mc_args(num, "node", "ping", 0);
    gr_test_rpc_dispatch(rpc, 1, "rpc", "multicall", &num->sb, 1000);
    expect_err(1, GR_EBADARG);
    msgpack_pack_array(&empty->pk, 0);
    mc_args(empty, "node", "ping", 0);
    gr_test_rpc_dispatch(rpc, 2, "rpc", "multicall", &empty->sb, 1000);
    expect_err(2, GR_EBADARG);
    msgpack_pack_array(&badnode->pk, 1);
    gr_test_args_str(badnode, "not a node");
    mc_args(badnode, "node", "ping", 0);
    gr_test_rpc_dispatch(rpc, 3, "rpc", "multicall", &badnode->sb, 1000);
    expect_err(3, GR_EBADARG);
    gr_test_args_str(t0, "all");
    mc_args(t0, "node", "ping", 0);
    msgpack_pack_uint32(&t0->pk, 0);
    gr_test_rpc_dispatch(rpc, 4, "rpc", "multicall", &t0->sb, 1000);
    expect_err(4, GR_EBADARG);
    gr_test_rpc_dispatch(rpc, 5, "rpc", "multicall", NULL, 1000);
    expect_err(5, GR_EBADARG);
    gr_test_args_free(num);
    gr_test_args_free(empty);
    gr_test_args_free(badnode);
    gr_test_args_free(t0);
}
END_TEST

START_TEST(cast)
{
    gr_test_args *leave = gr_test_args_new(4), *undef = gr_test_args_new(4),
                 *other = gr_test_args_new(4), *bad = gr_test_args_new(3);

    /* cast(self, node, leave, []): "ok" at once, the call runs (the leave hook
     * fires) and its own answer goes nowhere */
    gr_test_args_str(leave, NODE);
    mc_args(leave, "node", "leave", 0);
    gr_test_rpc_dispatch(rpc, 1, "rpc", "cast", &leave->sb, 1000);
    expect_str(1, "ok");
    gr_test_wait_until(atomic_load(&leaves) > 0, 5000, "node.leave never called");
    ck_assert_int_eq(atomic_load(&leaves), 1);
    gr_test_wait_until(gr_rpc_inflight(rpc) == 0, 5000, "workers still in flight");
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    ck_assert_uint_eq(gr_test_answers_n(&ans), 1);
    /* errors known at once */
    gr_test_args_str(undef, NODE);
    mc_args(undef, "nosuch", "f", 0);
    gr_test_rpc_dispatch(rpc, 2, "rpc", "cast", &undef->sb, 1000);
    expect_err(2, GR_EBADMODULE);
    gr_test_args_str(other, "other@127.0.0.9");
    mc_args(other, "node", "ping", 0);
    gr_test_rpc_dispatch(rpc, 3, "rpc", "cast", &other->sb, 1000);
    expect_err(3, GR_ENOCONN);
    gr_test_args_str(bad, NODE);
    gr_test_args_str(bad, "node");
    gr_test_args_str(bad, "ping");
    gr_test_rpc_dispatch(rpc, 4, "rpc", "cast", &bad->sb, 1000);
    expect_err(4, GR_EBADARG);
    gr_test_args_free(leave);
    gr_test_args_free(undef);
    gr_test_args_free(other);
    gr_test_args_free(bad);
}
END_TEST

/* Module `table` on the rpc's own memory engine: create, put, get, incr,
 * scan with a cursor, info, errors by reason id, drop. */
static void args_int(gr_test_args *a, int64_t v)
{
    msgpack_pack_int64(&a->pk, v);
}

START_TEST(table_module)
{
    gr_test_args *create = gr_test_args_new(2), *dup = gr_test_args_new(1),
                 *bad = gr_test_args_new(1), *put = gr_test_args_new(3), *get = gr_test_args_new(2),
                 *miss = gr_test_args_new(2), *incr = gr_test_args_new(3),
                 *scan = gr_test_args_new(2), *info = gr_test_args_new(1),
                 *drop = gr_test_args_new(1), *gone = gr_test_args_new(2),
                 *list = gr_test_args_new(0), *scan2;
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;

    gr_test_args_str(create, "t1");
    msgpack_pack_map(&create->pk, 1);
    gr_test_args_str(create, "kind");
    gr_test_args_str(create, "ordered_set");
    gr_test_rpc_dispatch(rpc, 1, "table", "create", &create->sb, 1000);
    expect_str(1, "ok");
    gr_test_args_str(dup, "t1");
    gr_test_rpc_dispatch(rpc, 2, "table", "create", &dup->sb, 1000);
    expect_err(2, GR_ETABLEEXISTS);
    gr_test_args_str(bad, "a/b");
    gr_test_rpc_dispatch(rpc, 3, "table", "create", &bad->sb, 1000);
    expect_err(3, GR_EBADTABLENAME);
    gr_test_args_str(put, "t1");
    gr_test_args_str(put, "b");
    args_int(put, 2);
    gr_test_rpc_dispatch(rpc, 4, "table", "put", &put->sb, 1000);
    gr_test_answers_wait(&ans, 4, WAIT_MS);
    gr_test_args_str(get, "t1");
    gr_test_args_str(get, "b");
    gr_test_rpc_dispatch(rpc, 5, "table", "get", &get->sb, 1000);
    i = gr_test_answers_wait(&ans, 5, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].key, "value"));
    ck_assert_uint_eq(o->via.map.ptr[0].val.via.u64, 2);
    msgpack_unpacked_destroy(&up);
    gr_test_args_str(miss, "t1");
    gr_test_args_str(miss, "zz");
    gr_test_rpc_dispatch(rpc, 6, "table", "get", &miss->sb, 1000);
    expect_err(6, GR_ENOKEY);
    gr_test_args_str(incr, "t1");
    gr_test_args_str(incr, "a");
    args_int(incr, -4);
    gr_test_rpc_dispatch(rpc, 7, "table", "incr", &incr->sb, 1000);
    i = gr_test_answers_wait(&ans, 7, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->via.i64, -4);
    msgpack_unpacked_destroy(&up);
    /* scan one at a time: "a" then "b", with the cursor */
    gr_test_args_str(scan, "t1");
    msgpack_pack_map(&scan->pk, 1);
    gr_test_args_str(scan, "limit");
    args_int(scan, 1);
    gr_test_rpc_dispatch(rpc, 8, "table", "scan", &scan->sb, 1000);
    i = gr_test_answers_wait(&ans, 8, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_uint_eq(o->via.map.ptr[0].val.via.array.size, 1);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].val.via.array.ptr[0].via.array.ptr[0], "a"));
    ck_assert_int_eq(o->via.map.ptr[1].val.type, MSGPACK_OBJECT_BIN);
    scan2 = gr_test_args_new(2);
    gr_test_args_str(scan2, "t1");
    msgpack_pack_map(&scan2->pk, 2);
    gr_test_args_str(scan2, "limit");
    args_int(scan2, 5);
    gr_test_args_str(scan2, "cursor");
    msgpack_pack_bin_with_body(&scan2->pk, o->via.map.ptr[1].val.via.bin.ptr,
                               o->via.map.ptr[1].val.via.bin.size);
    msgpack_unpacked_destroy(&up);
    gr_test_rpc_dispatch(rpc, 9, "table", "scan", &scan2->sb, 1000);
    i = gr_test_answers_wait(&ans, 9, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_uint_eq(o->via.map.ptr[0].val.via.array.size, 1);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].val.via.array.ptr[0].via.array.ptr[0], "b"));
    ck_assert_int_eq(o->via.map.ptr[1].val.type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&up);
    gr_test_args_str(info, "t1");
    gr_test_rpc_dispatch(rpc, 10, "table", "info", &info->sb, 1000);
    i = gr_test_answers_wait(&ans, 10, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert(gr_term_is_str(&o->via.map.ptr[1].val, "ordered_set"));
    ck_assert(gr_term_is_str(&o->via.map.ptr[4].key, "entries"));
    ck_assert_uint_eq(o->via.map.ptr[4].val.via.u64, 2);
    msgpack_unpacked_destroy(&up);
    gr_test_rpc_dispatch(rpc, 11, "table", "list", &list->sb, 1000);
    i = gr_test_answers_wait(&ans, 11, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_uint_eq(o->via.array.size, 1);
    msgpack_unpacked_destroy(&up);
    gr_test_args_str(drop, "t1");
    gr_test_rpc_dispatch(rpc, 12, "table", "drop", &drop->sb, 1000);
    expect_str(12, "ok");
    gr_test_args_str(gone, "t1");
    gr_test_args_str(gone, "b");
    gr_test_rpc_dispatch(rpc, 13, "table", "get", &gone->sb, 1000);
    expect_err(13, GR_ENOTABLE);
    gr_test_args_free(create);
    gr_test_args_free(dup);
    gr_test_args_free(bad);
    gr_test_args_free(put);
    gr_test_args_free(get);
    gr_test_args_free(miss);
    gr_test_args_free(incr);
    gr_test_args_free(scan);
    gr_test_args_free(scan2);
    gr_test_args_free(info);
    gr_test_args_free(drop);
    gr_test_args_free(gone);
    gr_test_args_free(list);
}
END_TEST

/* Maps and sets through the module: the answer of call `ref` as an integer. */
static int64_t expect_int(uint64_t ref)
{
    msgpack_unpacked up;
    size_t i = gr_test_answers_wait(&ans, ref, WAIT_MS);
    const msgpack_object *o;
    int64_t v;

    ck_assert_msg(ans.a[i].status == 0, "ref %llu: error %s", (unsigned long long)ref,
                  gr_errid(ans.a[i].status));
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
              o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    v = o->via.i64;
    msgpack_unpacked_destroy(&up);
    return v;
}

/* One call table.fn("m", Key, ...) whose remaining arguments `fill` packs. */
static void mcall(uint64_t ref, const char *fn, const char *key, int nargs,
                  void (*fill)(gr_test_args *a))
{
    gr_test_args *a = gr_test_args_new((uint32_t)nargs);

    gr_test_args_str(a, "m");
    gr_test_args_str(a, key);
    if (fill) {
        fill(a);
    }
    gr_test_rpc_dispatch(rpc, ref, "table", fn, &a->sb, 1000);
    gr_test_args_free(a);
}

static void fill_fields(gr_test_args *a)
{
    msgpack_pack_map(&a->pk, 2);
    gr_test_args_str(a, "f1");
    args_int(a, 1);
    gr_test_args_str(a, "f2");
    gr_test_args_str(a, "x");
}
static void fill_f1(gr_test_args *a)
{
    gr_test_args_str(a, "f1");
}
static void fill_f1_5(gr_test_args *a)
{
    gr_test_args_str(a, "f1");
    args_int(a, 5);
}
static void fill_list_f2(gr_test_args *a)
{
    msgpack_pack_array(&a->pk, 1);
    gr_test_args_str(a, "f2");
}
static void fill_members(gr_test_args *a)
{
    msgpack_pack_array(&a->pk, 3);
    gr_test_args_str(a, "x");
    gr_test_args_str(a, "y");
    msgpack_pack_bin_with_body(&a->pk, "x", 1);
}
static void fill_x(gr_test_args *a)
{
    gr_test_args_str(a, "x");
}

START_TEST(table_crdt_module)
{
    gr_test_args *create = gr_test_args_new(2);
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;

    gr_test_args_str(create, "m");
    msgpack_pack_map(&create->pk, 1);
    gr_test_args_str(create, "mode");
    gr_test_args_str(create, "replicated");
    gr_test_rpc_dispatch(rpc, 1, "table", "create", &create->sb, 1000);
    expect_str(1, "ok");
    mcall(2, "map_set", "h", 3, fill_fields);
    ck_assert_int_eq(expect_int(2), 2);
    mcall(3, "map_get", "h", 3, fill_f1);
    ck_assert_int_eq(expect_int(3), 1);
    mcall(4, "map_incr", "h", 4, fill_f1_5);
    ck_assert_int_eq(expect_int(4), 6);
    mcall(5, "map_del", "h", 3, fill_list_f2);
    ck_assert_int_eq(expect_int(5), 1);
    mcall(6, "map_getall", "h", 2, NULL);
    i = gr_test_answers_wait(&ans, 6, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(o->via.map.size, 1);
    ck_assert(gr_term_is_str(&o->via.map.ptr[0].key, "f1"));
    ck_assert_int_eq(o->via.map.ptr[0].val.via.i64, 6);
    msgpack_unpacked_destroy(&up);
    mcall(7, "map_len", "h", 2, NULL);
    ck_assert_int_eq(expect_int(7), 1);
    mcall(8, "set_add", "s", 3, fill_members); /* x as str and as bin: one member */
    ck_assert_int_eq(expect_int(8), 2);
    mcall(9, "set_card", "s", 2, NULL);
    ck_assert_int_eq(expect_int(9), 2);
    mcall(10, "set_ismember", "s", 3, fill_x);
    i = gr_test_answers_wait(&ans, 10, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert(o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean);
    msgpack_unpacked_destroy(&up);
    mcall(11, "set_rem", "s", 3, fill_members);
    ck_assert_int_eq(expect_int(11), 2);
    mcall(12, "set_members", "s", 2, NULL);
    i = gr_test_answers_wait(&ans, 12, WAIT_MS);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0);
    msgpack_unpacked_destroy(&up);
    mcall(13, "type", "h", 2, NULL);
    expect_str(13, "map");
    mcall(14, "type", "s", 2, NULL);
    expect_str(14, "none");
    mcall(15, "get", "h", 2, NULL);
    expect_err(15, GR_EWRONGTYPE);
    mcall(16, "set_add", "h", 3, fill_members);
    expect_err(16, GR_EWRONGTYPE);
    mcall(17, "map_get", "h", 3, fill_list_f2); /* a list is no field name */
    expect_err(17, GR_EBADARG);
    mcall(18, "set_pop", "s", 2, NULL);
    expect_err(18, GR_ENOKEY);
    gr_test_args_free(create);
}
END_TEST

static Suite *rpc_suite(void)
{
    Suite *s = suite_create("rpc");
    TCase *tc = gr_test_tcase(s, "core", setup, teardown, 60);

    gr_test_add(tc, unknown_names, extension_modules, node_ping_self_list, node_about_forget,
                sys_forwarded, rpc_call_self_and_remote, join_and_leave, deadline,
                inline_answers_at_once, many, stop_answers_stopped, multicall_self_and_unconnected,
                multicall_timeout_per_node, multicall_bad_args, cast, table_module,
                table_crdt_module);
    return s;
}

int main(void)
{
    return gr_test_run(rpc_suite);
}
