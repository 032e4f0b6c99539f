/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pubsub_test.c - Check tests for node-local pub/sub and process groups on a
 * real runtime (two schedulers): delivery and wildcards, order per
 * publisher, backlog watermarks (busy, drop, kill), cleanup when a subscriber
 * or member dies (and after the keeper itself was killed), counted joins,
 * group monitors, the keeper's requests, and concurrent publishers against
 * subscription churn (suite 'threaded': TSan runs it).
 *
 * Subscribers are probes: a probe keeps each message until the test thread
 * takes it with gr_probe_recv, so a probe that is not read is a subscriber
 * that does not keep up. Waits are bounded; "the keeper has cleaned up" is
 * awaited by round trips to the keeper (a ["sync"] call), never by sleeping.
 */
#include "pubsub/pubsub.h"
#include "pubsub/pubsub_int.h" /* gr_ps_wide_nodes_for */

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include "testing/gr_test_rt.h"
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 5000

static girder_rt *rt;
static gr_pubsub *ps;
static gr_probe *probe;

static void setup(void)
{
    gr_rt_config cfg = {.node_name = "ps@127.0.0.1", .creation = 3, .schedulers = 2};

    ck_assert_int_eq(gr_rt_new(&cfg, &rt), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_pubsub_new(rt, &ps), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
}

static void teardown(void)
{
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    ps = gr_pubsub_free(ps);
    rt = gr_rt_free(rt);
}

static int pub_int(const char *topic, int64_t v, gr_pub_result *res)
{
    girder_msg *m = gr_test_msg_int(v);
    int r = gr_pubsub_publish(ps, NULL, topic, strlen(topic), m, res);

    girder_msg_unref(m);
    return r;
}

/* Take the next message of p: ["$pub", Topic, Int]; checks the topic, returns Int. */
static int64_t recv_pub(gr_probe *p, const char *topic)
{
    girder_msg *m = NULL;
    msgpack_unpacked u;
    int64_t v;

    ck_assert_int_eq(gr_probe_recv(p, gr_test_ms(WAIT_MS), &m), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 3);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "$pub"));
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[1], topic));
    v = u.data.via.array.ptr[2].via.i64;
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    return v;
}

static void expect_nothing(gr_probe *p)
{
    girder_msg *m = NULL;

    ck_assert_int_eq(gr_probe_recv(p, 100, &m), -ETIMEDOUT);
}

static int sub(gr_probe *p, const char *pattern, const gr_sub_opts *o)
{
    return gr_pubsub_subscribe(ps, gr_probe_pid(p), pattern, strlen(pattern), o);
}

/* ---- a round trip to the keeper ------------------------------------------------------ */

typedef struct call_arg {
    const char *fn;
    girder_ref ref;
} call_arg;

static int send_call(girder_ctx *ctx, void *arg)
{
    call_arg *a = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *req;
    girder_pid k;
    int r;

    if ((r = girder_whereis(ctx, GR_PUBSUB_NAME, &k)) < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, a->fn, strlen(a->fn));
    req = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    r = girder_call(ctx, k, req, false, &a->ref);
    girder_msg_unref(req);
    return r;
}

/* Call the keeper with [fn] from the main probe; returns the reply message. */
static girder_msg *keeper_call(const char *fn)
{
    call_arg a = {fn, {0}};
    girder_msg *m = NULL;

    ck_assert_int_eq(gr_probe_run(probe, send_call, &a), 0);
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
    return m;
}

/* Round trips to the keeper until cond() holds (each one lets it handle what
 * was queued before); fails after WAIT_MS. */
static void until(bool (*cond)(void))
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!cond()) {
        girder_msg_unref(keeper_call("sync"));
        clock_gettime(CLOCK_MONOTONIC, &t);
        ck_assert_msg((t.tv_sec - t0.tv_sec) * 1000 < WAIT_MS, "condition not reached");
    }
}

static uint64_t nsubs(void)
{
    gr_pubsub_counters c;

    gr_pubsub_counters_get(ps, &c);
    return c.subscriptions;
}

static bool no_subs(void)
{
    return nsubs() == 0;
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_publish_wildcards)
{
    gr_probe *b;
    gr_pub_result res;

    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    ck_assert_int_eq(sub(probe, "orders.*", NULL), 0);
    ck_assert_int_eq(sub(b, "orders.>", NULL), 0);
    ck_assert_int_eq(sub(b, "orders.*", NULL), 0); /* a second, different pattern */
    ck_assert_int_eq(sub(b, "orders.*", NULL), -EEXIST);
    ck_assert_int_eq(sub(b, "orders..x", NULL), GR_EBADARG);

    ck_assert_int_eq(pub_int("orders.eu", 1, &res), 0);
    ck_assert_uint_eq(res.matched, 3);
    ck_assert_uint_eq(res.delivered, 3);
    ck_assert_int_eq(pub_int("orders.eu.new", 2, &res), 0);
    ck_assert_uint_eq(res.matched, 1);
    ck_assert_int_eq(pub_int("orders", 3, &res), 0);
    ck_assert_uint_eq(res.matched, 0);
    ck_assert_int_eq(pub_int("orders.*", 4, &res), GR_EBADARG);

    ck_assert_int_eq(recv_pub(probe, "orders.eu"), 1);
    expect_nothing(probe);
    ck_assert_int_eq(recv_pub(b, "orders.eu"), 1); /* once per subscription */
    ck_assert_int_eq(recv_pub(b, "orders.eu"), 1);
    ck_assert_int_eq(recv_pub(b, "orders.eu.new"), 2);
    expect_nothing(b);

    ck_assert_int_eq(gr_pubsub_unsubscribe(ps, gr_probe_pid(b), "orders.>", 8), 0);
    ck_assert_int_eq(gr_pubsub_unsubscribe(ps, gr_probe_pid(b), "orders.>", 8), -ENOENT);
    ck_assert_int_eq(pub_int("orders.eu.new", 5, &res), 0);
    ck_assert_uint_eq(res.matched, 0);
    ck_assert_int_eq(gr_pubsub_subscribe(ps, (girder_pid){1, 1, 256}, "a", 1, NULL), GR_EBADARG);
    b = gr_probe_free(b);
}
END_TEST

typedef struct burst {
    int n;
} burst;

static int publish_burst(girder_ctx *ctx, void *arg)
{
    burst *b = arg;

    for (int i = 0; i < b->n; i++) {
        girder_msg *m = gr_test_msg_int(i);
        int r = gr_pubsub_publish(ps, ctx, "seq", 3, m, NULL);

        girder_msg_unref(m);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* From a process: 2,000 publishes arrive in order (the subscriber is a probe on
 * scheduler 0, the publisher another probe, also a process). */
START_TEST(test_order_from_process)
{
    gr_probe *pub;
    burst b = {2000};

    ck_assert_int_eq(gr_probe_new(rt, &pub), 0);
    ck_assert_int_eq(sub(probe, "seq", NULL), 0);
    ck_assert_int_eq(gr_probe_run(pub, publish_burst, &b), 0);
    for (int i = 0; i < b.n; i++) {
        ck_assert_int_eq(recv_pub(probe, "seq"), i);
    }
    pub = gr_probe_free(pub);
}
END_TEST

static int noop(girder_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

/* A subscriber that does not read: busy above high, drops at the limit while
 * another subscriber gets everything; reading it empties its backlog. */
START_TEST(test_backlog_busy_and_drop)
{
    gr_sub_opts o = {.max_msgs = 10, .high_pct = 50, .policy = GR_SUB_DROP};
    gr_probe *fast;
    gr_pub_result res;
    gr_sub_info *v;
    size_t n;

    ck_assert_int_eq(gr_probe_new(rt, &fast), 0);
    ck_assert_int_eq(sub(probe, "t", &o), 0);
    ck_assert_int_eq(sub(fast, "t", NULL), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(pub_int("t", i, &res), 0);
        ck_assert_int_eq(recv_pub(fast, "t"), i);
    }
    for (int i = 5; i < 10; i++) { /* above 5: busy, still delivered */
        ck_assert_int_eq(pub_int("t", i, &res), GR_PUBSUB_BUSY);
        ck_assert_uint_eq(res.delivered, 2);
        ck_assert_uint_eq(res.busy, 1);
        ck_assert_int_eq(recv_pub(fast, "t"), i);
    }
    for (int i = 10; i < 100; i++) { /* at 10: dropped for the slow one only, still busy */
        ck_assert_int_eq(pub_int("t", i, &res), GR_PUBSUB_BUSY);
        ck_assert_uint_eq(res.busy, 1);
        ck_assert_uint_eq(res.dropped, 1);
        ck_assert_uint_eq(res.delivered, 1);
        ck_assert_int_eq(recv_pub(fast, "t"), i);
    }
    /* gr_probe_recv hands a message over inside the probe's handle(); the
     * delivery counts as handled once handle() has returned. A closure run in
     * the probe runs after that turn: the fence that makes "fast has handled
     * everything" true before the listing. */
    ck_assert_int_eq(gr_probe_run(fast, noop, NULL), 0);
    ck_assert_int_eq(gr_pubsub_subscriptions(ps, "t", 1, &v, &n), 0);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (girder_pid_eq(v[i].pid, gr_probe_pid(probe))) {
            ck_assert_uint_eq(v[i].backlog_msgs, 10);
            ck_assert_uint_eq(v[i].dropped, 90);
            ck_assert_uint_eq(v[i].delivered, 10);
            ck_assert_uint_eq(v[i].busy, 95);
        } else {
            ck_assert_uint_eq(v[i].backlog_msgs, 0);
            ck_assert_uint_eq(v[i].delivered, 100);
        }
    }
    free(v);
    /* The slow one reads its 10 (the first ten, in order): room again. */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(recv_pub(probe, "t"), i);
    }
    ck_assert_int_eq(pub_int("t", 100, &res), 0);
    ck_assert_uint_eq(res.delivered, 2);
    ck_assert_int_eq(recv_pub(probe, "t"), 100);
    ck_assert_int_eq(recv_pub(fast, "t"), 100);
    {
        gr_pubsub_counters c;

        gr_pubsub_counters_get(ps, &c);
        ck_assert_uint_eq(c.dropped, 90);
        ck_assert_uint_eq(c.busy, 95);
        ck_assert_uint_eq(c.published, 101);
    }
    fast = gr_probe_free(fast);
}
END_TEST

/* The backlog of one subscription (pattern "t"). */
static void backlog_of(uint32_t *ret_msgs, uint64_t *ret_bytes)
{
    gr_sub_info *v;
    size_t n;

    ck_assert_int_eq(gr_pubsub_subscriptions(ps, "t", 1, &v, &n), 0);
    ck_assert_uint_eq(n, 1);
    *ret_msgs = v[0].backlog_msgs;
    *ret_bytes = v[0].backlog_bytes;
    free(v);
}

/* A delivery counts from its publish until its last reference goes: kept by
 * the subscriber (the probe holds it for the test) it counts, in any order
 * of release, with no later publish needed to see it go. */
START_TEST(test_backlog_counts_until_released)
{
    girder_msg *m[3];
    gr_pub_result res;
    uint32_t msgs;
    uint64_t bytes;

    ck_assert_int_eq(sub(probe, "t", NULL), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pub_int("t", i, &res), 0);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m[i]), 0);
    }
    backlog_of(&msgs, &bytes);
    ck_assert_uint_eq(msgs, 3);
    ck_assert_uint_eq(bytes, 3 * girder_msg_size(m[0]));
    girder_msg_unref(m[1]); /* the middle one first: no head to wait for */
    backlog_of(&msgs, &bytes);
    ck_assert_uint_eq(msgs, 2);
    ck_assert_uint_eq(bytes, 2 * girder_msg_size(m[0]));
    girder_msg_unref(m[2]);
    girder_msg_unref(m[0]);
    backlog_of(&msgs, &bytes);
    ck_assert_uint_eq(msgs, 0);
    ck_assert_uint_eq(bytes, 0);
}
END_TEST

/* Byte limit: 4 KiB payloads against a 10 KiB limit: two fit, the third drops. */
START_TEST(test_backlog_bytes)
{
    gr_sub_opts o = {.max_bytes = 10 * 1024};
    char big[4096 + 3];
    girder_msg *m;
    gr_pub_result res;

    big[0] = (char)0xc5; /* bin16 of 4096 bytes */
    big[1] = 0x10;
    big[2] = 0x00;
    memset(big + 3, 'x', 4096);
    m = girder_msg_new(big, sizeof(big));
    ck_assert_int_eq(sub(probe, "b", &o), 0);
    ck_assert_int_eq(gr_pubsub_publish(ps, NULL, "b", 1, m, &res), 0);
    ck_assert_int_eq(gr_pubsub_publish(ps, NULL, "b", 1, m, &res), GR_PUBSUB_BUSY);
    ck_assert_int_eq(gr_pubsub_publish(ps, NULL, "b", 1, m, &res), GR_PUBSUB_BUSY);
    ck_assert_uint_eq(res.dropped, 1);
    girder_msg_unref(m);
}
END_TEST

/* Kill policy: at the limit the subscriber gets the exit "slow_subscriber"
 * (a probe traps exits: it arrives as a message) and is unsubscribed. */
START_TEST(test_backlog_kill)
{
    gr_sub_opts o = {.max_msgs = 3, .policy = GR_SUB_KILL};
    gr_pub_result res;
    girder_msg *m = NULL;
    msgpack_unpacked u;

    ck_assert_int_eq(sub(probe, "k", &o), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ge(pub_int("k", i, &res), 0);
    }
    ck_assert_int_eq(pub_int("k", 3, &res), 0);
    ck_assert_uint_eq(res.killed, 1);
    ck_assert_uint_eq(nsubs(), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(recv_pub(probe, "k"), i);
    }
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "EXIT"));
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[2], "slow_subscriber"));
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    ck_assert_int_eq(pub_int("k", 4, &res), 0);
    ck_assert_uint_eq(res.matched, 0);
}
END_TEST

static bool two_subs(void)
{
    return nsubs() == 2;
}

/* A subscriber that dies loses its subscriptions; so does one subscribed
 * after it died; and so after the keeper itself was killed and respawned. */
START_TEST(test_dead_subscriber_cleaned)
{
    gr_probe *b;
    girder_pid dead, k1, k2;
    girder_msg *kill = girder_msg_atom("kill");
    gr_pubsub_counters c;
    struct timespec t0, t;

    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    dead = gr_probe_pid(b);
    ck_assert_int_eq(sub(b, "x.>", NULL), 0);
    ck_assert_int_eq(sub(b, "y", NULL), 0);
    until(two_subs);
    b = gr_probe_free(b); /* the process exits */
    until(no_subs);
    gr_pubsub_counters_get(ps, &c);
    ck_assert_uint_eq(c.cleanups, 1);
    ck_assert_uint_eq(c.owners, 0);

    /* subscribing a pid that is already dead: removed by the keeper */
    ck_assert_int_eq(gr_pubsub_subscribe(ps, dead, "z", 1, NULL), 0);
    until(no_subs);

    /* kill the keeper: a new one takes over and still cleans up */
    ck_assert_int_eq(gr_rt_whereis(rt, GR_PUBSUB_NAME, &k1), 0);
    ck_assert_int_eq(gr_rt_exit(rt, k1, kill), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (gr_rt_whereis(rt, GR_PUBSUB_NAME, &k2) < 0 || girder_pid_eq(k1, k2)) {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
        ck_assert_msg((t.tv_sec - t0.tv_sec) * 1000 < WAIT_MS, "no new keeper");
    }
    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    ck_assert_int_eq(sub(b, "w", NULL), 0);
    b = gr_probe_free(b);
    until(no_subs);
    girder_msg_unref(kill);
}
END_TEST

/* ---- groups ------------------------------------------------------------------------- */

static size_t nmembers(const char *scope, const char *group, girder_pid pid)
{
    girder_pid *v = NULL;
    size_t n = 0, k = 0;

    ck_assert_int_eq(gr_pg_members(ps, scope, group, &v, &n), 0);
    for (size_t i = 0; i < n; i++) {
        k += girder_pid_eq(v[i], pid);
    }
    free(v);
    return pid.id == 0 ? n : k;
}

START_TEST(test_groups_counted_joins)
{
    girder_pid a = gr_probe_pid(probe), none = {0, 0, 0};
    gr_pg_group_info *v;
    size_t n;

    ck_assert_int_eq(gr_pg_join(ps, "s", "g", a), 0);
    ck_assert_int_eq(gr_pg_join(ps, "s", "g", a), 0);
    ck_assert_int_eq(gr_pg_join(ps, "s", "h", a), 0);
    ck_assert_int_eq(gr_pg_join(ps, "other", "g", a), 0);
    ck_assert_uint_eq(nmembers("s", "g", a), 2);
    ck_assert_uint_eq(nmembers("other", "g", a), 1);
    ck_assert_uint_eq(nmembers("s", "nope", none), 0);
    ck_assert_int_eq(gr_pg_groups(ps, "s", &v, &n), 0);
    ck_assert_uint_eq(n, 2);
    free(v);
    ck_assert_int_eq(gr_pg_groups(ps, NULL, &v, &n), 0); /* scopes */
    ck_assert_uint_eq(n, 2);
    free(v);
    ck_assert_int_eq(gr_pg_leave(ps, "s", "g", a), 0);
    ck_assert_uint_eq(nmembers("s", "g", a), 1);
    ck_assert_int_eq(gr_pg_leave(ps, "s", "g", a), 0);
    ck_assert_int_eq(gr_pg_leave(ps, "s", "g", a), -ENOENT);
    ck_assert_uint_eq(nmembers("s", "g", none), 0);
    ck_assert_int_eq(gr_pg_groups(ps, "s", &v, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0].name, "h");
    free(v);
    ck_assert_int_eq(gr_pg_join(ps, "", "g", a), GR_EBADARG);
    ck_assert_int_eq(gr_pg_join(ps, "s", "", a), GR_EBADARG);
}
END_TEST

/* Many members, removed in an order that moves others around: slots stay right. */
START_TEST(test_groups_many_members_die)
{
    enum { N = 16 };
    gr_probe *p[N];
    girder_pid none = {0, 0, 0};

    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(gr_probe_new(rt, &p[i]), 0);
        ck_assert_int_eq(gr_pg_join(ps, "s", "g", gr_probe_pid(p[i])), 0);
        ck_assert_int_eq(gr_pg_join(ps, "s", i % 2 ? "odd" : "even", gr_probe_pid(p[i])), 0);
    }
    ck_assert_uint_eq(nmembers("s", "g", none), N);
    for (int i = 0; i < N; i += 3) { /* leave from the middle */
        ck_assert_int_eq(gr_pg_leave(ps, "s", "g", gr_probe_pid(p[i])), 0);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(nmembers("s", "g", gr_probe_pid(p[i])), i % 3 ? 1 : 0);
    }
    for (int i = 0; i < N; i++) {
        p[i] = gr_probe_free(p[i]);
    }
    {
        gr_pubsub_counters c;
        struct timespec t0, t;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            girder_msg_unref(keeper_call("sync"));
            gr_pubsub_counters_get(ps, &c);
            clock_gettime(CLOCK_MONOTONIC, &t);
            ck_assert_msg((t.tv_sec - t0.tv_sec) * 1000 < WAIT_MS, "joins left");
        } while (c.joins != 0);
    }
    ck_assert_uint_eq(nmembers("s", "g", none), 0);
    ck_assert_uint_eq(nmembers("s", "odd", none), 0);
}
END_TEST

typedef struct mon_arg {
    const char *group;
    girder_ref ref;
    girder_pid *members;
    size_t n;
} mon_arg;

static int do_monitor(girder_ctx *ctx, void *arg)
{
    mon_arg *a = arg;

    return gr_pg_monitor(ps, ctx, "s", a->group, &a->ref, &a->members, &a->n);
}

static int do_demonitor(girder_ctx *ctx, void *arg)
{
    return gr_pg_demonitor(ps, ctx, ((mon_arg *)arg)->ref);
}

/* Next event: ["$pg", Ref, Kind, "s", Group, Pids]; checks all but Pids' values,
 * returns how many pids it lists. */
static uint32_t recv_event(const mon_arg *a, const char *kind, const char *group, girder_pid pid)
{
    girder_msg *m = NULL;
    msgpack_unpacked u;
    const msgpack_object *e;
    gr_term_id id;
    uint32_t n;

    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    ck_assert_uint_eq(u.data.via.array.size, 6);
    e = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&e[0], "$pg"));
    ck_assert_int_eq(gr_term_parse_id(&e[1], GR_TERM_EXT_REF, &id), 0);
    ck_assert_uint_eq(id.id, a->ref.id);
    ck_assert(gr_term_is_str(&e[2], kind));
    ck_assert(gr_term_is_str(&e[3], "s"));
    ck_assert(gr_term_is_str(&e[4], group));
    n = e[5].via.array.size;
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_int_eq(gr_term_parse_id(&e[5].via.array.ptr[i], GR_TERM_EXT_PID, &id), 0);
        ck_assert_uint_eq(id.id, pid.id);
    }
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    return n;
}

START_TEST(test_groups_monitor_events)
{
    gr_probe *b;
    girder_pid bp;
    mon_arg g = {.group = "g"}, all = {.group = NULL};

    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    bp = gr_probe_pid(b);
    ck_assert_int_eq(gr_pg_join(ps, "s", "g", bp), 0);
    ck_assert_int_eq(gr_probe_run(probe, do_monitor, &g), 0);
    ck_assert_uint_eq(g.n, 1); /* the member at monitor time */
    ck_assert(girder_pid_eq(g.members[0], bp));
    free(g.members);
    ck_assert_int_eq(gr_probe_run(probe, do_monitor, &all), 0);
    free(all.members);

    ck_assert_int_eq(gr_pg_join(ps, "s", "g", bp), 0);
    ck_assert_uint_eq(recv_event(&g, "join", "g", bp), 1);
    ck_assert_uint_eq(recv_event(&all, "join", "g", bp), 1);
    ck_assert_int_eq(gr_pg_join(ps, "s", "h", bp), 0); /* only the scope watcher */
    ck_assert_uint_eq(recv_event(&all, "join", "h", bp), 1);
    ck_assert_int_eq(gr_pg_leave(ps, "s", "g", bp), 0);
    ck_assert_uint_eq(recv_event(&g, "leave", "g", bp), 1);
    ck_assert_uint_eq(recv_event(&all, "leave", "g", bp), 1);

    /* death: one leave per group, listing the pid once per join */
    ck_assert_int_eq(gr_pg_join(ps, "s", "g", bp), 0);
    ck_assert_uint_eq(recv_event(&g, "join", "g", bp), 1);
    ck_assert_uint_eq(recv_event(&all, "join", "g", bp), 1);
    b = gr_probe_free(b);
    {
        uint32_t seen_g = 0, seen_all_g = 0, seen_all_h = 0;

        for (int i = 0; i < 3; i++) {
            girder_msg *m = NULL;
            msgpack_unpacked u;
            const msgpack_object *e;

            ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
            msgpack_unpacked_init(&u);
            ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
            e = u.data.via.array.ptr;
            ck_assert(gr_term_is_str(&e[2], "leave"));
            if (gr_term_is_str(&e[4], "h")) {
                seen_all_h += e[5].via.array.size;
            } else {
                gr_term_id id;

                ck_assert_int_eq(gr_term_parse_id(&e[1], GR_TERM_EXT_REF, &id), 0);
                if (id.id == g.ref.id) {
                    seen_g += e[5].via.array.size;
                } else {
                    seen_all_g += e[5].via.array.size;
                }
            }
            msgpack_unpacked_destroy(&u);
            girder_msg_unref(m);
        }
        ck_assert_uint_eq(seen_g, 2);
        ck_assert_uint_eq(seen_all_g, 2);
        ck_assert_uint_eq(seen_all_h, 1);
    }
    /* demonitor: the "end" event, then no more events */
    ck_assert_int_eq(gr_probe_run(probe, do_demonitor, &g), 0);
    ck_assert_uint_eq(recv_event(&g, "end", "g", gr_probe_pid(probe)), 0);
    ck_assert_int_eq(gr_probe_run(probe, do_demonitor, &g), -ENOENT);
    ck_assert_int_eq(gr_pg_join(ps, "s", "g", gr_probe_pid(probe)), 0);
    ck_assert_uint_eq(recv_event(&all, "join", "g", gr_probe_pid(probe)), 1);
    expect_nothing(probe);
}
END_TEST

/* ---- the keeper's requests ------------------------------------------------------------- */

START_TEST(test_keeper_counters_request)
{
    girder_msg *m;
    msgpack_unpacked u;
    const msgpack_object *resp;
    bool found = false;

    ck_assert_int_eq(sub(probe, "c", NULL), 0);
    ck_assert_int_eq(pub_int("c", 1, NULL), 0);
    ck_assert_int_eq(recv_pub(probe, "c"), 1);
    m = keeper_call("counters");
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "$reply"));
    resp = &u.data.via.array.ptr[2];
    ck_assert_int_eq(resp->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < resp->via.map.size; i++) {
        if (gr_term_is_str(&resp->via.map.ptr[i].key, "published")) {
            ck_assert_uint_eq(resp->via.map.ptr[i].val.via.u64, 1);
            found = true;
        }
    }
    ck_assert(found);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    m = keeper_call("nonsense");
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    resp = &u.data.via.array.ptr[2];
    ck_assert(gr_term_is_str(&resp->via.array.ptr[0], "error"));
    ck_assert(gr_term_is_str(&resp->via.array.ptr[1], "badarg"));
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}
END_TEST

/* ---- owners, many groups, the demonitor fence ------------------------------------------ */

static uint64_t nowners(void)
{
    gr_pubsub_counters c;

    gr_pubsub_counters_get(ps, &c);
    return c.owners;
}

typedef struct info_arg {
    girder_pid pid;
    girder_ref ref;
} info_arg;

static int send_info(girder_ctx *ctx, void *arg)
{
    info_arg *a = arg;

    return girder_info_request(ctx, a->pid, &a->ref);
}

/* How many processes monitor pid (its info's "monitored_by"), asked from the
 * main probe. */
static uint32_t monitored_by(girder_pid pid)
{
    info_arg a = {pid, {0}};
    girder_msg *m = NULL;
    msgpack_unpacked u;
    const msgpack_object *map;
    uint32_t n = UINT32_MAX;

    ck_assert_int_eq(gr_probe_run(probe, send_info, &a), 0);
    ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "$info"));
    map = &u.data.via.array.ptr[2];
    ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        if (gr_term_is_str(&map->via.map.ptr[i].key, "monitored_by")) {
            n = map->via.map.ptr[i].val.via.array.size;
        }
    }
    ck_assert_uint_ne(n, UINT32_MAX);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    return n;
}

/* An owner record lives exactly while its process holds something: after
 * unsubscribe, leave and demonitor it is gone (not counted), the keeper's
 * monitor of the live process is dropped (none pile up over 200 cycles), and
 * its later death is no cleanup. */
START_TEST(test_owner_released_when_empty)
{
    gr_probe *b;
    girder_pid bp;
    mon_arg g = {.group = "g"};
    gr_pubsub_counters c;

    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    bp = gr_probe_pid(b);
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(sub(b, "t.>", NULL), 0);
        ck_assert_uint_eq(nowners(), 1);
        ck_assert_int_eq(gr_pubsub_unsubscribe(ps, bp, "t.>", 3), 0);
        ck_assert_uint_eq(nowners(), 0);
        ck_assert_int_eq(gr_pg_join(ps, "s", "g", bp), 0);
        ck_assert_int_eq(gr_pg_join(ps, "s", "g", bp), 0);
        ck_assert_int_eq(gr_pg_leave(ps, "s", "g", bp), 0);
        ck_assert_uint_eq(nowners(), 1); /* one join left */
        ck_assert_int_eq(gr_pg_leave(ps, "s", "g", bp), 0);
        ck_assert_uint_eq(nowners(), 0);
    }
    girder_msg_unref(keeper_call("sync")); /* the keeper has seen every (un)watch */
    ck_assert_uint_eq(monitored_by(bp), 0);
    ck_assert_int_eq(sub(b, "t", NULL), 0);
    girder_msg_unref(keeper_call("sync"));
    ck_assert_uint_eq(monitored_by(bp), 1); /* held: monitored once */

    /* a group monitor holds an owner too */
    ck_assert_int_eq(gr_probe_run(probe, do_monitor, &g), 0);
    free(g.members);
    ck_assert_uint_eq(nowners(), 2);
    ck_assert_int_eq(gr_probe_run(probe, do_demonitor, &g), 0);
    ck_assert_uint_eq(recv_event(&g, "end", "g", gr_probe_pid(probe)), 0);
    ck_assert_uint_eq(nowners(), 1);
    ck_assert_int_eq(gr_pubsub_unsubscribe(ps, bp, "t", 1), 0);
    ck_assert_uint_eq(nowners(), 0);

    b = gr_probe_free(b);
    girder_msg_unref(keeper_call("sync"));
    gr_pubsub_counters_get(ps, &c);
    ck_assert_uint_eq(c.cleanups, 0); /* nothing was left to clean */
    ck_assert_uint_eq(c.owners, 0);
}
END_TEST

/* 5,000 groups in one scope (the hash grows from 8 buckets), each with its own
 * members; leaving every other one keeps the rest intact; the listing is
 * complete. */
START_TEST(test_groups_many_in_scope)
{
    enum { N = 5000 };
    girder_pid a = gr_probe_pid(probe), none = {0, 0, 0};
    gr_pg_group_info *v;
    size_t n, total = 0;
    char name[32];

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "g%d", i);
        for (int k = 0; k <= i % 3; k++) {
            ck_assert_int_eq(gr_pg_join(ps, "big", name, a), 0);
        }
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof(name), "g%d", i);
        for (int k = 0; k <= i % 3; k++) {
            ck_assert_int_eq(gr_pg_leave(ps, "big", name, a), 0);
        }
        ck_assert_int_eq(gr_pg_leave(ps, "big", name, a), -ENOENT);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "g%d", i);
        ck_assert_uint_eq(nmembers("big", name, none), i % 2 ? (size_t)(i % 3 + 1) : 0);
    }
    ck_assert_int_eq(gr_pg_groups(ps, "big", &v, &n), 0);
    ck_assert_uint_eq(n, N / 2);
    for (size_t i = 0; i < n; i++) {
        int k = atoi(v[i].name + 1);

        ck_assert_int_eq(k % 2, 1);
        ck_assert_uint_eq(v[i].members, (size_t)(k % 3 + 1));
        total += v[i].members;
    }
    free(v);
    ck_assert_int_eq(gr_pg_groups(ps, NULL, &v, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0].name, "big");
    ck_assert_uint_eq(v[0].members, total);
    free(v);
}
END_TEST

typedef struct flood {
    girder_pid pid;
    _Atomic bool stop;
    int rounds;
} flood;

static void *join_leave_loop(void *arg)
{
    flood *f = arg;

    while (!f->stop) {
        (void)gr_pg_join(ps, "s", "g", f->pid);
        (void)gr_pg_leave(ps, "s", "g", f->pid);
        f->rounds++;
    }
    return NULL;
}

/* Kind, group (nil: "") and ref id of the next $pg event of the main probe. */
static void next_event(char kind[16], char group[32], uint64_t *ref_id)
{
    girder_msg *m = NULL;
    msgpack_unpacked u;
    const msgpack_object *e;
    gr_term_id id;

    ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    e = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&e[0], "$pg"));
    ck_assert_int_eq(gr_term_parse_id(&e[1], GR_TERM_EXT_REF, &id), 0);
    ck_assert_uint_lt(e[2].via.str.size, 16);
    memcpy(kind, e[2].via.str.ptr, e[2].via.str.size);
    kind[e[2].via.str.size] = 0;
    group[0] = 0;
    if (e[4].type == MSGPACK_OBJECT_STR) {
        ck_assert_uint_lt(e[4].via.str.size, 32);
        memcpy(group, e[4].via.str.ptr, e[4].via.str.size);
        group[e[4].via.str.size] = 0;
    }
    *ref_id = id.id;
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

/* The demonitor fence: while another thread joins and leaves "g" as fast as
 * it can, the watcher demonitors its monitor of "g" (it also watches the whole
 * scope). That monitor's events end with exactly one "end" and none follows
 * it: the scope monitor's join of "last", made after the flood stopped, comes
 * after everything sent before, so reading up to it sees any straggler. */
START_TEST(test_demonitor_fence)
{
    mon_arg g = {.group = "g"}, all = {.group = NULL};
    gr_probe *b;
    flood f = {0};
    pthread_t t;
    char kind[16], group[32];
    uint64_t id;
    int ends = 0, after_end = 0, g_events = 0;

    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    f.pid = gr_probe_pid(b);
    ck_assert_int_eq(gr_probe_run(probe, do_monitor, &g), 0);
    free(g.members);
    ck_assert_int_eq(gr_probe_run(probe, do_monitor, &all), 0);
    free(all.members);
    ck_assert_int_eq(pthread_create(&t, NULL, join_leave_loop, &f), 0);
    while (g_events < 20) { /* the flood is under way */
        next_event(kind, group, &id);
        g_events += id == g.ref.id;
    }
    ck_assert_int_eq(gr_probe_run(probe, do_demonitor, &g), 0);
    f.stop = true;
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(gr_pg_join(ps, "s", "last", f.pid), 0);
    for (;;) {
        next_event(kind, group, &id);
        if (id == g.ref.id) {
            after_end += ends > 0;
            ends += strcmp(kind, "end") == 0;
        } else if (strcmp(group, "last") == 0) {
            break;
        }
    }
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(after_end, 0);
    b = gr_probe_free(b);
}
END_TEST

/* ---- concurrency ----------------------------------------------------------------------- */

typedef struct churn {
    gr_probe *p;
    _Atomic bool stop;
    int subs;
} churn;

static void *publisher(void *arg)
{
    for (int i = 0; i < 5000; i++) {
        girder_msg *m = gr_test_msg_int(i);

        (void)gr_pubsub_publish(ps, NULL, "load.x", 6, m, NULL);
        girder_msg_unref(m);
    }
    (void)arg;
    return NULL;
}

static void *churner(void *arg)
{
    churn *c = arg;
    girder_pid pid = gr_probe_pid(c->p);

    while (!c->stop) {
        if (gr_pubsub_subscribe(ps, pid, "load.*", 6, NULL) == 0) {
            c->subs++;
        }
        (void)gr_pubsub_unsubscribe(ps, pid, "load.*", 6);
        (void)gr_pg_join(ps, "s", "g", pid);
        (void)gr_pg_leave(ps, "s", "g", pid);
    }
    return NULL;
}

/* Two publisher threads and a process publishing, one subscriber reading
 * everything, one thread subscribing and unsubscribing another pid: the
 * steady subscriber gets all 15,000, each publisher's in order. */
START_TEST(test_concurrent_publishers_and_churn)
{
    pthread_t t1, t2, tc;
    churn c = {0};
    gr_probe *pub;
    burst b = {5000};
    int last_seq = -1;
    int got = 0;

    ck_assert_int_eq(gr_probe_new(rt, &c.p), 0);
    ck_assert_int_eq(gr_probe_new(rt, &pub), 0);
    ck_assert_int_eq(sub(probe, "load.>", &(gr_sub_opts){.max_msgs = 100000}), 0);
    ck_assert_int_eq(sub(probe, "seq", &(gr_sub_opts){.max_msgs = 100000}), 0);
    pthread_create(&tc, NULL, churner, &c);
    pthread_create(&t1, NULL, publisher, NULL);
    pthread_create(&t2, NULL, publisher, NULL);
    ck_assert_int_eq(gr_probe_run(pub, publish_burst, &b), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    c.stop = true;
    pthread_join(tc, NULL);
    while (got < 15000) {
        girder_msg *m = NULL;
        msgpack_unpacked u;
        const msgpack_object *e;

        ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
        e = u.data.via.array.ptr;
        if (gr_term_is_str(&e[1], "seq")) {
            ck_assert_int_eq(e[2].via.i64, last_seq + 1);
            last_seq++;
        }
        got++;
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(m);
    }
    ck_assert_int_eq(last_seq, 4999);
    expect_nothing(probe);
    ck_assert_int_gt(c.subs, 0);
    c.p = gr_probe_free(c.p);
    pub = gr_probe_free(pub);
}
END_TEST

/* ---- the cluster layer (wide.c), driven as another node's keeper would -------------- */

/* The clash rule as a table: lower time, then lower node name, then lower
 * serial; never both ways. */
START_TEST(test_global_wins_rule)
{
    static const struct {
        uint64_t ta;
        const char *na;
        uint64_t sa;
        uint64_t tb;
        const char *nb;
        uint64_t sb;
        bool a_wins;
    } cases[] = {
        {1, "b@h", 9, 2, "a@h", 1, true},  /* older wins whatever the names */
        {5, "a@h", 1, 4, "z@h", 9, false}, /* newer loses */
        {7, "a@h", 9, 7, "b@h", 1, true},  /* same ms: lower node name */
        {7, "b@h", 1, 7, "a@h", 9, false}, /* ... either way round */
        {7, "a@h", 3, 7, "a@h", 4, true},  /* same node and ms: lower serial */
        {7, "a@h", 4, 7, "a@h", 3, false}, /* ... */
        {0, "a@h", 1, UINT64_MAX, "a@h", 1, true},
        {7, "a@h", 1, 7, "a@h2", 1, true}, /* a prefix sorts first */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ab = gr_global_wins(cases[i].ta, cases[i].na, cases[i].sa, cases[i].tb, cases[i].nb,
                                 cases[i].sb);
        bool ba = gr_global_wins(cases[i].tb, cases[i].nb, cases[i].sb, cases[i].ta, cases[i].na,
                                 cases[i].sa);

        ck_assert_msg(ab == cases[i].a_wins, "case %zu", i);
        ck_assert_msg(ab != ba, "case %zu: both or neither win", i);
    }
}
END_TEST

/* Pack [tag, node, ...] helpers: a keeper message from another node. */
static void to_keeper(msgpack_sbuffer *sb)
{
    girder_pid k;
    girder_msg *m = girder_msg_new(sb->data, sb->size);

    ck_assert_int_eq(gr_rt_whereis(rt, GR_PUBSUB_NAME, &k), 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(gr_rt_send(rt, k, m), 0);
    msgpack_sbuffer_clear(sb);
}

static void psx_int(const char *node, const char *pattern, bool present)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, "$psx_int", 8);
    msgpack_pack_str_with_body(&pk, node, strlen(node));
    msgpack_pack_str_with_body(&pk, pattern, strlen(pattern));
    present ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    to_keeper(&sb);
    msgpack_sbuffer_destroy(&sb);
}

/* The nodes interested in topic, as a sorted string "x@h,y@h". */
static const char *interested(const char *topic)
{
    static char out[256];
    uint32_t v[8];
    const char *names[8];
    int n = gr_ps_wide_nodes_for(ps, topic, strlen(topic), v, 8);

    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++) {
        size_t len;

        names[i] = gr_rt_node_at(rt, v[i], &len);
    }
    for (int i = 1; i < n; i++) { /* insertion sort */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];

            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        strcat(out, i ? "," : "");
        strcat(out, names[i]);
    }
    return out;
}

static bool interest_synced(void)
{
    return strcmp(interested("a.b"), "z@h") == 0;
}

static bool x_gone(void)
{
    return strcmp(interested("orders.eu"), "y@h") == 0;
}

static bool y_gone(void)
{
    return strcmp(interested("orders.eu.new"), "") == 0;
}

/* Interest sets: which nodes a publish goes to (one entry per node however
 * many of its patterns match), replaced by a full sync, dropped at nodedown. */
START_TEST(test_wide_interest_matching)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    psx_int("x@h", "orders.*", true);
    psx_int("x@h", "orders.eu", true); /* x twice for orders.eu: still one entry */
    psx_int("y@h", "orders.>", true);
    psx_int("y@h", "gone.x", true);
    psx_int("y@h", "gone.x", false);
    psx_int("z@h", "a.b", true);
    until(interest_synced);
    ck_assert_str_eq(interested("orders.eu"), "x@h,y@h");
    ck_assert_str_eq(interested("orders.eu.new"), "y@h");
    ck_assert_str_eq(interested("orders"), "");
    ck_assert_str_eq(interested("a.b"), "z@h");
    ck_assert_str_eq(interested("a.c"), "");
    ck_assert_str_eq(interested("gone.x"), "");
    ck_assert_int_eq(gr_ps_wide_nodes_for(ps, "a..b", 4, (uint32_t[1]){0}, 1), GR_EBADARG);

    /* x's full sync with no patterns: x has none left */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_str_with_body(&pk, "$psx_sync", 9);
    msgpack_pack_str_with_body(&pk, "x@h", 3);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_array(&pk, 0);
    to_keeper(&sb);
    until(x_gone);
    /* y goes down */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "nodedown", 8);
    msgpack_pack_str_with_body(&pk, "y@h", 3);
    msgpack_pack_str_with_body(&pk, "noconnection", 12);
    to_keeper(&sb);
    until(y_gone);
    ck_assert_str_eq(interested("a.b"), "z@h");
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* Another node's publish reaches the local subscribers through the keeper. */
START_TEST(test_wide_publish_in)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    gr_pub_result res;

    ck_assert_int_eq(sub(probe, "t.*", NULL), 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, "$psx_pub", 8);
        msgpack_pack_str_with_body(&pk, "t.x", 3);
        msgpack_pack_int64(&pk, i);
        to_keeper(&sb);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(recv_pub(probe, "t.x"), i); /* in order */
    }
    msgpack_sbuffer_destroy(&sb);
    /* no other node: a local publish goes nowhere else */
    ck_assert_int_eq(pub_int("t.y", 9, &res), 0);
    ck_assert_uint_eq(res.nodes, 0);
    ck_assert_uint_eq(res.delivered, 1);
    ck_assert_int_eq(recv_pub(probe, "t.y"), 9);
}
END_TEST

static void psx_greg(const char *node, const char *name, uint64_t serial, uint64_t t)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_str_with_body(&pk, "$psx_greg", 9);
    msgpack_pack_str_with_body(&pk, node, strlen(node));
    msgpack_pack_str_with_body(&pk, name, strlen(name));
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, node, strlen(node), 1, serial), 0);
    msgpack_pack_uint64(&pk, t);
    to_keeper(&sb);
    msgpack_sbuffer_destroy(&sb);
}

static bool svc_remote(void)
{
    girder_pid p;

    return gr_global_whereis(ps, "svc", &p) == 0 && p.node != 0;
}

static bool late_heard(void)
{
    girder_pid p;

    return gr_global_whereis(ps, "other", &p) == 0;
}

static bool names_of_a_gone(void)
{
    girder_pid p;

    return gr_global_whereis(ps, "svc", &p) == -ENOENT &&
           gr_global_whereis(ps, "other", &p) == -ENOENT;
}

static bool mine_gone(void)
{
    girder_pid p;

    return gr_global_whereis(ps, "mine", &p) == -ENOENT;
}

static int api_whereis(girder_ctx *ctx, void *arg)
{
    return girder_global_whereis(ctx, "mine", arg);
}

/* Global names: register, taken, whereis through the C API and girder.h; an
 * older registration from another node wins (the local loser is told
 * $global_clash), a newer one loses; names of a node that goes down and of a
 * process that dies vanish. */
START_TEST(test_global_names_clash)
{
    girder_pid me = gr_probe_pid(probe), p, q;
    gr_probe *other;
    girder_msg *m = NULL;
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    ck_assert_int_eq(gr_global_register(ps, "svc", me), 0);
    ck_assert_int_eq(gr_global_register(ps, "svc", me), GR_ENAMETAKEN);
    ck_assert_int_eq(gr_global_register(ps, "", me), GR_EBADARG);
    ck_assert_int_eq(gr_global_whereis(ps, "svc", &p), 0);
    ck_assert(girder_pid_eq(p, me));
    ck_assert_int_eq(gr_global_whereis(ps, "nope", &p), -ENOENT);

    /* a@h registered "svc" at time 1 (long before us): it wins here */
    psx_greg("a@h", "svc", 77, 1);
    /* the notice comes first (keeper_call in until() would take it from the
     * mailbox): it is sent after the table changed */
    ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    ck_assert_uint_eq(u.data.via.array.size, 3);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "$global_clash"));
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[1], "svc"));
    ck_assert_uint_eq(u.data.via.array.ptr[2].type, MSGPACK_OBJECT_EXT);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    ck_assert(svc_remote());
    ck_assert_int_eq(gr_global_unregister(ps, "svc"), -ENOENT); /* not ours any more */

    /* a newer registration of a name we hold loses: nothing changes */
    ck_assert_int_eq(gr_global_register(ps, "mine", me), 0);
    psx_greg("a@h", "mine", 78, UINT64_MAX);
    psx_greg("a@h", "other", 79, 5);
    until(late_heard);
    ck_assert_int_eq(gr_global_whereis(ps, "mine", &p), 0);
    ck_assert(girder_pid_eq(p, me));
    ck_assert_int_eq(gr_probe_run(probe, api_whereis, &q), 0); /* girder.h, same answer */
    ck_assert(girder_pid_eq(q, me));
    expect_nothing(probe);

    /* a@h goes down: its names go, ours stay */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "nodedown", 8);
    msgpack_pack_str_with_body(&pk, "a@h", 3);
    msgpack_pack_str_with_body(&pk, "noconnection", 12);
    to_keeper(&sb);
    msgpack_sbuffer_destroy(&sb);
    until(names_of_a_gone);
    ck_assert_int_eq(gr_global_whereis(ps, "mine", &p), 0);

    /* unregister, then a process that dies loses its name */
    ck_assert_int_eq(gr_global_unregister(ps, "mine"), 0);
    ck_assert_int_eq(gr_global_whereis(ps, "mine", &p), -ENOENT);
    ck_assert_int_eq(gr_probe_new(rt, &other), 0);
    ck_assert_int_eq(gr_global_register(ps, "mine", gr_probe_pid(other)), 0);
    gr_probe_free(other);
    until(mine_gone);
}
END_TEST

/* ---- taps: tap_wait answered when a message arrives ------------------------------------ */

typedef struct raw_arg {
    const msgpack_sbuffer *req; /* the request term */
    girder_ref ref;             /* out */
} raw_arg;

static int send_raw(girder_ctx *ctx, void *arg)
{
    raw_arg *a = arg;
    girder_msg *req;
    girder_pid k;
    int r;

    if ((r = girder_whereis(ctx, GR_PUBSUB_NAME, &k)) < 0) {
        return r;
    }
    req = girder_msg_new(a->req->data, a->req->size);
    r = girder_call(ctx, k, req, false, &a->ref);
    girder_msg_unref(req);
    return r;
}

/* Send the keeper the request in sb (then cleared) from the main probe. */
static void raw_call(msgpack_sbuffer *sb)
{
    raw_arg a = {sb, {0}};

    ck_assert_int_eq(gr_probe_run(probe, send_raw, &a), 0);
    msgpack_sbuffer_clear(sb);
}

/* The next reply of the main probe, unpacked into u; returns its Response. */
static const msgpack_object *next_reply(msgpack_unpacked *u, girder_msg **ret_m, int ms)
{
    ck_assert_int_eq(gr_probe_recv(probe, ms, ret_m), 0);
    msgpack_unpacked_init(u);
    ck_assert_int_eq(girder_msg_unpack(*ret_m, u), 0);
    ck_assert(gr_term_is_str(&u->data.via.array.ptr[0], "$reply"));
    return &u->data.via.array.ptr[2];
}

/* ["tap_wait", Tap, ms] */
static void pack_wait(msgpack_packer *pk, const girder_msg *tap, uint64_t ms)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_str_with_body(pk, "tap_wait", 8);
    pk->callback(pk->data, girder_msg_data(tap), girder_msg_size(tap));
    msgpack_pack_uint64(pk, ms);
}

/* Check a tap_wait answer: n messages (topics t.N, payload N from first),
 * dropped d. */
static void check_batch(const msgpack_object *resp, uint32_t n, int64_t first, uint64_t d)
{
    const msgpack_object *msgs = gr_term_map_get(resp, "msgs");
    const msgpack_object *dr = gr_term_map_get(resp, "dropped");

    ck_assert_ptr_nonnull(msgs);
    ck_assert_ptr_nonnull(dr);
    ck_assert_uint_eq(dr->via.u64, d);
    ck_assert_uint_eq(msgs->via.array.size, n);
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_int_eq(msgs->via.array.ptr[i].via.array.ptr[1].via.i64, first + i);
    }
}

START_TEST(test_tap_wait_streams)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    const msgpack_object *resp;
    girder_msg *m, *tap;
    char topic[16];

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* ["tap", ["t.*"], 3]: a tap that holds 3 */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "tap", 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "t.*", 3);
    msgpack_pack_uint64(&pk, 3);
    raw_call(&sb);
    resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
    ck_assert_int_eq(resp->type, MSGPACK_OBJECT_EXT);
    {
        msgpack_sbuffer pb;
        msgpack_packer ppk;

        msgpack_sbuffer_init(&pb);
        msgpack_packer_init(&ppk, &pb, msgpack_sbuffer_write);
        msgpack_pack_object(&ppk, *resp);
        tap = girder_msg_new(pb.data, pb.size);
        msgpack_sbuffer_destroy(&pb);
    }
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);

    /* Ms 0 with nothing held: answered at once, empty */
    pack_wait(&pk, tap, 0);
    raw_call(&sb);
    resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
    check_batch(resp, 0, 0, 0);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);

    /* a long wait is parked, and answered by the first publish */
    pack_wait(&pk, tap, 60000);
    raw_call(&sb);
    expect_nothing(probe);
    ck_assert_int_eq(pub_int("t.0", 0, NULL), 0);
    resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
    check_batch(resp, 1, 0, 0);
    ck_assert(
        gr_term_is_str(&gr_term_map_get(resp, "msgs")->via.array.ptr[0].via.array.ptr[0], "t.0"));
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);

    /* 5 published with no wait: 3 held (in order), 2 dropped and counted;
     * the next wait takes them at once */
    for (int i = 1; i <= 5; i++) {
        snprintf(topic, sizeof(topic), "t.%d", i);
        ck_assert_int_eq(pub_int(topic, i, NULL), 0);
    }
    /* (they are in the tap's mailbox before the keeper hands it the wait) */
    pack_wait(&pk, tap, 60000);
    raw_call(&sb);
    resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
    check_batch(resp, 3, 1, 2);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);

    /* a short wait with nothing: its timer answers it, empty */
    pack_wait(&pk, tap, 30);
    raw_call(&sb);
    resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
    check_batch(resp, 0, 0, 2);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);

    /* a pid that is no tap: noproc */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "tap_wait", 8);
    gr_ps_pack_pid(ps, &pk, gr_probe_pid(probe));
    msgpack_pack_uint64(&pk, 10);
    raw_call(&sb);
    resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
    ck_assert(gr_term_is_str(&resp->via.array.ptr[0], "error"));
    ck_assert(gr_term_is_str(&resp->via.array.ptr[1], "noproc"));
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);

    /* a parked wait, then the tap closed: the wait is answered noproc, the
     * close ok (either first), and the subscription is gone */
    pack_wait(&pk, tap, 60000);
    raw_call(&sb);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "tap_close", 9);
    pk.callback(pk.data, girder_msg_data(tap), girder_msg_size(tap));
    raw_call(&sb);
    {
        int ok = 0, noproc = 0;

        for (int i = 0; i < 2; i++) {
            resp = next_reply(&u, &m, gr_test_ms(WAIT_MS));
            if (resp->type == MSGPACK_OBJECT_STR) {
                ok += gr_term_is_str(resp, "ok");
            } else {
                noproc += gr_term_is_str(&resp->via.array.ptr[1], "noproc");
            }
            msgpack_unpacked_destroy(&u);
            girder_msg_unref(m);
        }
        ck_assert_int_eq(ok, 1);
        ck_assert_int_eq(noproc, 1);
    }
    until(no_subs);
    girder_msg_unref(tap);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* 100k global names (20k under sanitizers): the table is a hash (wide.c), so registering, finding
 * and dropping each costs O(1); a linear table would need ~10^10 compares
 * here and run for minutes. Removal from the middle (backward shift, the last
 * entry moved) must keep every other name findable. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SCALE_NAMES 20000 /* sanitizers: the same paths, fewer of them */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SCALE_NAMES 20000
#endif
#endif
#ifndef SCALE_NAMES
#define SCALE_NAMES 100000
#endif

/* A process that registers and unregisters names in a loop, and holds a few,
 * is monitored by the keeper once (its DOWN comes once, and clears every
 * name it held). */
START_TEST(test_global_names_one_monitor)
{
    gr_probe *b;
    girder_pid bp, got;
    char name[32];

    ck_assert_int_eq(gr_probe_new(rt, &b), 0);
    bp = gr_probe_pid(b);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "loop.%d", i % 7);
        ck_assert_int_eq(gr_global_register(ps, name, bp), 0);
        ck_assert_int_eq(gr_global_unregister(ps, name), 0);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "held.%d", i);
        ck_assert_int_eq(gr_global_register(ps, name, bp), 0);
    }
    girder_msg_unref(keeper_call("sync")); /* the keeper has seen every poke */
    ck_assert_uint_eq(monitored_by(bp), 1);
    b = gr_probe_free(b);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "held.%d", i);
        gr_test_wait_until(gr_global_whereis(ps, name, &got) == -ENOENT, WAIT_MS,
                           "%s gone with its holder", name);
    }
}
END_TEST

START_TEST(test_global_names_scale)
{
    enum { N = SCALE_NAMES };
    girder_pid me = gr_probe_pid(probe), got;
    char name[32];
    struct timespec t0, t1;
    gr_global_info *v = NULL;
    size_t nv = 0;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "svc.%d", i);
        ck_assert_int_eq(gr_global_register(ps, name, me), 0);
    }
    ck_assert_int_eq(gr_global_register(ps, "svc.77", me), GR_ENAMETAKEN);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "svc.%d", i);
        ck_assert_int_eq(gr_global_whereis(ps, name, &got), 0);
        ck_assert(girder_pid_eq(got, me));
    }
    ck_assert_int_eq(gr_global_whereis(ps, "svc.100000", &got), -ENOENT);
    /* every third goes: the survivors stay findable, the gone are gone */
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof(name), "svc.%d", i);
        ck_assert_int_eq(gr_global_unregister(ps, name), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "svc.%d", i);
        ck_assert_int_eq(gr_global_whereis(ps, name, &got), i % 3 == 0 ? -ENOENT : 0);
    }
    ck_assert_int_eq(gr_global_names(ps, &v, &nv), 0);
    ck_assert_uint_eq(nv, N - (N + 2) / 3);
    free(v);
    /* the freed names can be taken again; then all go */
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof(name), "svc.%d", i);
        ck_assert_int_eq(gr_global_register(ps, name, me), 0);
    }
    for (int i = N - 1; i >= 0; i--) {
        snprintf(name, sizeof(name), "svc.%d", i);
        ck_assert_int_eq(gr_global_unregister(ps, name), 0);
    }
    ck_assert_int_eq(gr_global_names(ps, &v, &nv), 0);
    ck_assert_uint_eq(nv, 0);
    free(v);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    /* ~0.5 M operations cost ~3 s of CPU in a plain build (most of it the
     * keeper handling the 133k registration pokes); a table searched linearly
     * would cost >= 10^10 compares (tens of seconds) in this thread, which
     * looks every name up. This thread's CPU time, not wall time (a loaded
     * machine does not move it) nor the process's (the keeper and schedulers
     * spent 11-12 s of it on an idle machine, failing the bound). */
    ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000,
                     gr_test_ms(10000));
}
END_TEST

static Suite *pubsub_suite(void)
{
    Suite *s = suite_create("pubsub");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_publish_wildcards);
    tcase_add_test(tc, test_order_from_process);
    tcase_add_test(tc, test_backlog_busy_and_drop);
    tcase_add_test(tc, test_backlog_bytes);
    tcase_add_test(tc, test_backlog_counts_until_released);
    tcase_add_test(tc, test_backlog_kill);
    tcase_add_test(tc, test_dead_subscriber_cleaned);
    tcase_add_test(tc, test_groups_counted_joins);
    tcase_add_test(tc, test_groups_many_members_die);
    tcase_add_test(tc, test_groups_monitor_events);
    tcase_add_test(tc, test_keeper_counters_request);
    tcase_add_test(tc, test_owner_released_when_empty);
    tcase_add_test(tc, test_groups_many_in_scope);
    tcase_add_test(tc, test_demonitor_fence);
    tcase_add_test(tc, test_concurrent_publishers_and_churn);
    tcase_add_test(tc, test_global_wins_rule);
    tcase_add_test(tc, test_wide_interest_matching);
    tcase_add_test(tc, test_wide_publish_in);
    tcase_add_test(tc, test_global_names_clash);
    tcase_add_test(tc, test_tap_wait_streams);
    tcase_add_test(tc, test_global_names_scale);
    tcase_add_test(tc, test_global_names_one_monitor);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pubsub_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
