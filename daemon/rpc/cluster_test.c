/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cluster_test.c - the rpc layer and the runtime's node hooks over real
 * distribution: up to three nodes in one process, each a runtime + gr_dist +
 * gr_rpc wired exactly as girderd wires them (daemon/main.c), on 127.0.0.1
 * with port 0. Node "a" answers its requests through a capture hook so the
 * test sees them; the others answer through their dist, as in production.
 *
 * Covers girder_monitor_nodes through gr_dist_monitor_nodes (nodeup and
 * nodedown reach a subscribed process), rpc.multicall (per-node results,
 * errors and timeouts, "all") and rpc.cast.
 *
 * Every wait has a generous deadline: these tests must pass on a noisy
 * two-core machine.
 */
#include "rpc/rpc.h"

#include "dist/dist.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "services/services.h"

#include "testing/gr_test_rpc.h"
#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000
#define DETECT_MS 600

typedef struct node {
    char name[64];   /* "x@127.0.0.1" */
    girder_rt *rt;   /* its runtime */
    gr_dist *d;      /* its distribution */
    gr_rpc *rpc;     /* its rpc modules */
    gr_probe *probe; /* a mailbox for the test thread */
    bool up;         /* started and not stopped */
} node;

static gr_cookie COOKIE;

/* Answers of node a's rpc (the capture hook), from worker threads. */
static gr_test_answers ans = GR_TEST_ANSWERS_INIT;

/* As girderd's node_monitor_hook. */
static int node_monitor_hook(void *ud, girder_pid pid, bool on)
{
    return gr_dist_monitor_nodes(ud, pid, on);
}

static void node_start(node *n, const char *name, const node *seed, bool capture_answers)
{
    gr_rt_config rc = {.node_name = name, .schedulers = 2};
    gr_rpc_config pc = {0};
    gr_dist_config dc = {0};
    gr_dist_seed s;

    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    ck_assert_int_eq(gr_rt_new(&rc, &n->rt), 0);
    ck_assert_int_eq(gr_services_register(n->rt), 0);
    pc.rt = n->rt;
    pc.reply_fn = capture_answers ? gr_test_answers_capture : NULL;
    pc.reply_ud = &ans;
    ck_assert_int_eq(gr_rpc_new(&pc, &n->rpc), 0);
    dc.rt = n->rt;
    dc.name = name;
    dc.creation = gr_rt_creation(n->rt);
    dc.cookie = &COOKIE;
    dc.listen_host = "127.0.0.1";
    dc.detection_ms = (uint32_t)gr_test_ms(DETECT_MS); /* a busy machine is no dead link */
    dc.rpc_fn = gr_rpc_dispatch;
    dc.rpc_ud = n->rpc;
    if (seed) {
        s.node = seed->name;
        s.host = "127.0.0.1";
        s.port = gr_dist_port(seed->d);
        dc.seeds = &s;
        dc.nseeds = 1;
    }
    ck_assert_int_eq(gr_dist_new(&dc, &n->d), 0);
    gr_rpc_set_dist(n->rpc, n->d);
    gr_rt_set_remote(n->rt, gr_dist_remote_hook, n->d);
    gr_rt_set_node_monitor(n->rt, node_monitor_hook, n->d);
    ck_assert_int_eq(gr_rt_start(n->rt), 0);
    ck_assert_int_eq(gr_probe_new(n->rt, &n->probe), 0);
    ck_assert_int_eq(gr_dist_start(n->d), 0);
    n->up = true;
}

static void node_stop(node *n)
{
    if (!n->up) {
        return;
    }
    gr_dist_stop(n->d, 3000);
    n->probe = gr_probe_free(n->probe);
    gr_rt_stop(n->rt);
    n->rpc = gr_rpc_free(n->rpc);
    n->d = gr_dist_free(n->d);
    n->rt = gr_rt_free(n->rt);
    n->up = false;
}

static bool member_up(node *n, const char *name)
{
    gr_dist_member *m;
    size_t k;
    bool up = false;

    ck_assert_int_eq(gr_dist_members(n->d, &m, &k), 0);
    for (size_t i = 0; i < k; i++) {
        up |= strcmp(m[i].name, name) == 0 && m[i].state == GR_DIST_UP;
    }
    free(m);
    return up;
}

static void wait_up(node *n, const char *name)
{
    gr_test_wait_until(member_up(n, name), WAIT_MS, "%s never saw %s up", n->name, name);
}

static void setup(void)
{
    COOKIE.len = strlen("cluster-test-cookie");
    memcpy(COOKIE.bytes, "cluster-test-cookie", COOKIE.len);
}

static void teardown(void)
{
    gr_test_answers_clear(&ans);
}

/* ---- node events ---------------------------------------------------------------------------- */

static int do_monitor_nodes(girder_ctx *ctx, void *arg)
{
    return girder_monitor_nodes(ctx, *(bool *)arg);
}

/* Wait for [kind, Node(, _)] on n's probe, skipping anything else. */
static bool wait_event(node *n, const char *kind, const char *node_name)
{
    int64_t end = gr_test_now_ms() + gr_test_ms(WAIT_MS);

    while (gr_test_now_ms() < end) {
        girder_msg *m = NULL;
        msgpack_unpacked up;
        bool hit;

        if (gr_probe_recv(n->probe, (int)(end - gr_test_now_ms()) + 1, &m) < 0) {
            return false;
        }
        msgpack_unpacked_init(&up);
        ck_assert_int_eq(girder_msg_unpack(m, &up), 0);
        hit = up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size >= 2 &&
              gr_term_is_str(&up.data.via.array.ptr[0], kind) &&
              gr_term_is_str(&up.data.via.array.ptr[1], node_name);
        msgpack_unpacked_destroy(&up);
        girder_msg_unref(m);
        if (hit) {
            return true;
        }
    }
    return false;
}

START_TEST(monitor_nodes_real_dist)
{
    /* A process (a's probe) subscribed with girder_monitor_nodes hears of b
     * coming up and going down; after unsubscribing it hears nothing. */
    node a, b;
    bool on = true, off = false;
    girder_msg *m = NULL;

    node_start(&a, "a@127.0.0.1", NULL, true);
    ck_assert_int_eq(gr_probe_run(a.probe, do_monitor_nodes, &on), 0);
    node_start(&b, "b@127.0.0.1", &a, false);
    ck_assert(wait_event(&a, "nodeup", "b@127.0.0.1"));
    node_stop(&b);
    ck_assert(wait_event(&a, "nodedown", "b@127.0.0.1"));
    ck_assert_int_eq(gr_probe_run(a.probe, do_monitor_nodes, &off), 0);
    node_start(&b, "b@127.0.0.1", &a, false);
    wait_up(&a, "b@127.0.0.1");
    ck_assert_int_eq(gr_probe_recv(a.probe, 300, &m), -ETIMEDOUT);
    node_stop(&b);
    node_stop(&a);
}
END_TEST

/* ---- rpc.multicall and rpc.cast ------------------------------------------------------------- */

static uint64_t next_ref = 1;

/* Dispatch rpc.FN(args) on node a (its answers are captured); wait for it. */
static size_t run_on_a(node *a, const char *fn, const msgpack_sbuffer *args, uint32_t deadline)
{
    uint64_t ref = next_ref++;

    gr_test_rpc_dispatch(a->rpc, ref, "rpc", fn, args, deadline);
    return gr_test_answers_wait(&ans, ref, WAIT_MS);
}

/* rpc.multicall([nodes...], mod, fn, [arg?], timeout) on a; returns the
 * answer's index (status 0 checked). */
static size_t multicall(node *a, const char *const *nodes, size_t n, const char *mod,
                        const char *fn, const char *arg, uint32_t timeout)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    if (nodes) {
        msgpack_pack_array(&pk, (uint32_t)n);
        for (size_t k = 0; k < n; k++) {
            msgpack_pack_str_with_body(&pk, nodes[k], strlen(nodes[k]));
        }
    } else {
        msgpack_pack_str_with_body(&pk, "all", 3);
    }
    msgpack_pack_str_with_body(&pk, mod, strlen(mod));
    msgpack_pack_str_with_body(&pk, fn, strlen(fn));
    if (arg) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, arg, strlen(arg));
        msgpack_pack_str_with_body(&pk, "hello", 5);
        msgpack_pack_uint32(&pk, 60000);
    } else {
        msgpack_pack_array(&pk, 0);
    }
    msgpack_pack_uint32(&pk, timeout);
    i = run_on_a(a, "multicall", &sb, timeout + 5000);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_msg(ans.a[i].status == 0, "multicall: %s", gr_errid(ans.a[i].status));
    return i;
}

/* Node `name`'s entry in answer i: ok and its value (a string, copied into
 * buf) or the reason id. */
static bool mc_entry(size_t i, const char *name, char *buf, size_t cap)
{
    msgpack_unpacked up;
    size_t off = 0;
    bool found = false, ok = false;

    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, (const char *)ans.a[i].term, ans.a[i].len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(up.data.type, MSGPACK_OBJECT_MAP);
    buf[0] = '\0';
    for (uint32_t k = 0; k < up.data.via.map.size; k++) {
        const msgpack_object *v = &up.data.via.map.ptr[k].val;

        if (gr_term_is_str(&up.data.via.map.ptr[k].key, name)) {
            const msgpack_object *val = &v->via.map.ptr[0].val;

            found = true;
            ok = gr_term_is_str(&v->via.map.ptr[0].key, "ok");
            if (val->type == MSGPACK_OBJECT_STR) {
                snprintf(buf, cap, "%.*s", (int)val->via.str.size, val->via.str.ptr);
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    ck_assert_msg(found, "%s missing from the multicall answer", name);
    return ok;
}

/* "silent": registered as "silent" on its node; never answers a call. */
static int silent_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    (void)arg;
    (void)ret_state;
    return girder_register(ctx, "silent", girder_self(ctx));
}

static int silent_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return GIRDER_CONTINUE;
}

static const girder_behaviour silent = {
    .name = "silent", .init = silent_init, .handle = silent_handle};

static void start_silent(node *n)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(n->rt, &silent, NULL, &pid), 0);
    gr_test_wait_until(gr_rt_whereis(n->rt, "silent", &pid) == 0, WAIT_MS,
                       "silent never registered on %s", n->name);
}

START_TEST(multicall_three_nodes)
{
    static const char *const abc[] = {"a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"};
    node a, b, c;
    char v[128];
    size_t i;

    node_start(&a, abc[0], NULL, true);
    node_start(&b, abc[1], &a, false);
    node_start(&c, abc[2], &a, false);
    wait_up(&a, abc[1]);
    wait_up(&a, abc[2]);

    /* everyone answers its own name, "all" and a list alike */
    i = multicall(&a, NULL, 0, "node", "self", NULL, (uint32_t)gr_test_ms(3000));
    for (int k = 0; k < 3; k++) {
        ck_assert(mc_entry(i, abc[k], v, sizeof(v)) && strcmp(v, abc[k]) == 0);
    }
    i = multicall(&a, abc, 3, "node", "self", NULL, (uint32_t)gr_test_ms(3000));
    for (int k = 0; k < 3; k++) {
        ck_assert(mc_entry(i, abc[k], v, sizeof(v)) && strcmp(v, abc[k]) == 0);
    }
    /* per-node errors: b has no "silent" (noproc), a and c time out */
    start_silent(&a);
    start_silent(&c);
    /* (the timeout is wide enough for b's noproc on a busy machine) */
    i = multicall(&a, abc, 3, "proc", "call", "silent", (uint32_t)gr_test_ms(500));
    ck_assert(!mc_entry(i, abc[0], v, sizeof(v)) && strcmp(v, "timeout") == 0);
    ck_assert(!mc_entry(i, abc[1], v, sizeof(v)) && strcmp(v, "noproc") == 0);
    ck_assert(!mc_entry(i, abc[2], v, sizeof(v)) && strcmp(v, "timeout") == 0);
    /* c gone: noconnection for c only */
    node_stop(&c);
    i = multicall(&a, abc, 3, "node", "ping", NULL, (uint32_t)gr_test_ms(3000));
    ck_assert(mc_entry(i, abc[0], v, sizeof(v)) && strcmp(v, "pong") == 0);
    ck_assert(mc_entry(i, abc[1], v, sizeof(v)) && strcmp(v, "pong") == 0);
    ck_assert(!mc_entry(i, abc[2], v, sizeof(v)) && strcmp(v, "noconnection") == 0);
    node_stop(&b);
    node_stop(&a);
}
END_TEST

static int do_register_inbox(girder_ctx *ctx, void *arg)
{
    (void)arg;
    return girder_register(ctx, "inbox", girder_self(ctx));
}

START_TEST(cast_runs_remotely)
{
    /* cast(b, proc, send, ["inbox", "hello"]) from a: "ok" at once, and b's
     * probe (registered as "inbox") gets "hello". */
    node a, b;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m = NULL;
    size_t i;

    node_start(&a, "a@127.0.0.1", NULL, true);
    node_start(&b, "b@127.0.0.1", &a, false);
    wait_up(&a, "b@127.0.0.1");
    ck_assert_int_eq(gr_probe_run(b.probe, do_register_inbox, NULL), 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, "b@127.0.0.1", 11);
    msgpack_pack_str_with_body(&pk, "proc", 4);
    msgpack_pack_str_with_body(&pk, "send", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "inbox", 5);
    msgpack_pack_str_with_body(&pk, "hello", 5);
    i = run_on_a(&a, "cast", &sb, 5000);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(ans.a[i].status, 0);
    ck_assert_int_eq(gr_probe_recv(b.probe, gr_test_ms(WAIT_MS), &m), 0);
    ck_assert(girder_msg_is_atom(m, "hello"));
    girder_msg_unref(m);
    node_stop(&b);
    node_stop(&a);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("rpc-cluster");
    TCase *tc = gr_test_tcase(s, "cluster", setup, teardown, 120);

    gr_test_add(tc, monitor_nodes_real_dist, multicall_three_nodes, cast_runs_remotely);
    return s;
}

int main(void)
{
    return gr_test_run(cluster_suite);
}
