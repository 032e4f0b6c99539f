/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seq_test.c - unit tests for the `seq` behaviour: the order checker on its
 * own (gaps, duplicates, a wrong start), bursts to a pid and to a registered
 * name checked by a second seq process, a burst straight into the probe
 * (every number, in order, before the answer), and bad requests. Every test
 * starts its own two-scheduler runtime and drives the processes through a
 * probe.
 */
#include "testkit/seq.h"
#include "services/services.h"
#include "testkit/testkit.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/clock.h"

#include "testing/gr_test_rt.h"
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define NODE "test@127.0.0.1"
#define TIMEOUT_MS 5000

static girder_rt *rt;
static gr_probe *probe;

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* What a request is; packed inside the probe (pids need its ctx). */
typedef struct req {
    const char *kind;  /* "burst", "check", "reset", or anything else as [kind] */
    girder_pid dest;   /* burst: the destination pid ... */
    const char *name;  /* ... or, if set, [name, NODE] */
    uint64_t n;        /* burst size */
    girder_pid server; /* whom to call */
} req;

/* Packs q inside the probe (pids need its ctx). */
static int pack_req(girder_ctx *ctx, msgpack_packer *pk, void *arg)
{
    req *q = arg;
    int r = 0;

    if (strcmp(q->kind, "burst") == 0) {
        msgpack_pack_array(pk, 3);
        msgpack_pack_str_with_body(pk, "burst", 5);
        r = gr_test_pack_dest(ctx, pk, q->name, NODE, q->dest);
        msgpack_pack_uint64(pk, q->n);
    } else {
        msgpack_pack_array(pk, 1);
        msgpack_pack_str_with_body(pk, q->kind, strlen(q->kind));
    }
    return r;
}

typedef gr_test_reply reply;

/* A message before the reply that the test did not expect. */
static void unexpected(const msgpack_object *o, void *arg)
{
    ck_abort_msg("unexpected message before the reply");
}

static void call(req *q, reply *rp)
{
    gr_test_call_send(probe, q->server, pack_req, q);
    gr_test_recv_reply(probe, unexpected, NULL, rp);
}

static uint64_t map_u64(const msgpack_object *o, const char *k)
{
    const msgpack_object *v = gr_test_map_get(o, k);

    ck_assert_int_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return v->via.u64;
}

static girder_pid spawn_seq(void)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, &gr_seq_behaviour, NULL, &pid), 0);
    return pid;
}

/* Ask `pid` for its check until it counted n (or TIMEOUT_MS, scaled, passed); the
 * answer stays in rp. (Locally the burst's messages are in the receiver's
 * mailbox before the burst is answered, so the first check normally has them
 * all; each further try is one more round trip, no sleep.) */
static void check_until(girder_pid pid, uint64_t n, reply *rp)
{
    req q = {.kind = "check", .server = pid};
    gr_test_deadline dl = gr_test_deadline_in(TIMEOUT_MS);

    for (;;) {
        call(&q, rp);
        if (map_u64(&rp->o, "received") >= n) {
            return;
        }
        gr_test_reply_done(rp);
        ck_assert_msg(gr_test_deadline_wait(&dl), "the receiver never counted %llu",
                      (unsigned long long)n);
    }
}

static void expect_in_order(const msgpack_object *o, uint64_t n)
{
    ck_assert_uint_eq(map_u64(o, "received"), n);
    ck_assert_uint_eq(map_u64(o, "last"), n);
    ck_assert_int_eq(gr_test_map_get(o, "in_order")->type, MSGPACK_OBJECT_BOOLEAN);
    ck_assert(gr_test_map_get(o, "in_order")->via.boolean);
    ck_assert_int_eq(gr_test_map_get(o, "first_gap")->type, MSGPACK_OBJECT_NIL);
}

static void setup(void)
{
    gr_test_rt_start(&(gr_rt_config){.node_name = NODE, .schedulers = 2},
                     (gr_test_prepare_fn[]){gr_services_register, gr_testkit_register, NULL}, &rt,
                     &probe);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_SEQ_NAME), &gr_seq_behaviour);
}

static void teardown(void)
{
    gr_test_rt_stop(&rt, &probe);
}

/* ---- the checker --------------------------------------------------------------------------------
 */

START_TEST(checker_in_order_and_gaps)
{
    gr_seq_check c;

    gr_seq_check_init(&c);
    ck_assert(c.in_order);
    for (uint64_t i = 1; i <= 3; i++) {
        gr_seq_check_note(&c, i);
    }
    ck_assert(c.in_order);
    ck_assert_uint_eq(c.received, 3);
    ck_assert_uint_eq(c.last, 3);
    gr_seq_check_note(&c, 5); /* 4 missing */
    ck_assert(!c.in_order);
    ck_assert_uint_eq(c.gap_expected, 4);
    ck_assert_uint_eq(c.gap_got, 5);
    gr_seq_check_note(&c, 4); /* late: the first gap stays the one reported */
    gr_seq_check_note(&c, 9);
    ck_assert_uint_eq(c.gap_expected, 4);
    ck_assert_uint_eq(c.gap_got, 5);
    ck_assert_uint_eq(c.received, 6);
    ck_assert_uint_eq(c.last, 9);

    gr_seq_check_init(&c); /* a duplicate */
    gr_seq_check_note(&c, 1);
    gr_seq_check_note(&c, 1);
    ck_assert(!c.in_order);
    ck_assert_uint_eq(c.gap_expected, 2);
    ck_assert_uint_eq(c.gap_got, 1);

    gr_seq_check_init(&c); /* a wrong start */
    gr_seq_check_note(&c, 2);
    ck_assert(!c.in_order);
    ck_assert_uint_eq(c.gap_expected, 1);
    ck_assert_uint_eq(c.gap_got, 2);
}
END_TEST

/* ---- the behaviour ------------------------------------------------------------------------------
 */

START_TEST(burst_to_pid_in_order)
{
    girder_pid rx = spawn_seq(), tx = spawn_seq();
    req q = {.kind = "burst", .dest = rx, .n = 5 * GR_SEQ_BATCH + 7, .server = tx};
    reply rp;

    call(&q, &rp);
    ck_assert_uint_eq(map_u64(&rp.o, "sent"), q.n);
    ck_assert_int_eq(gr_test_map_get(&rp.o, "ms")->type, MSGPACK_OBJECT_FLOAT64);
    gr_test_reply_done(&rp);
    check_until(rx, q.n, &rp);
    expect_in_order(&rp.o, q.n);
    gr_test_reply_done(&rp);

    q = (req){.kind = "reset", .server = rx};
    call(&q, &rp);
    ck_assert(gr_term_is_str(&rp.o, "ok"));
    gr_test_reply_done(&rp);
    q = (req){.kind = "check", .server = rx};
    call(&q, &rp);
    ck_assert_uint_eq(map_u64(&rp.o, "received"), 0);
    gr_test_reply_done(&rp);
}
END_TEST

static int register_sink(girder_ctx *ctx, void *arg)
{
    return girder_register(ctx, "sink", *(girder_pid *)arg);
}

START_TEST(burst_to_name)
{
    girder_pid rx = spawn_seq(), tx = spawn_seq();
    req q = {.kind = "burst", .name = "sink", .n = 3000, .server = tx};
    reply rp;

    ck_assert_int_eq(gr_probe_run(probe, register_sink, &rx), 0);
    call(&q, &rp);
    ck_assert_uint_eq(map_u64(&rp.o, "sent"), 3000);
    gr_test_reply_done(&rp);
    check_until(rx, 3000, &rp);
    expect_in_order(&rp.o, 3000);
    gr_test_reply_done(&rp);

    q.name = "nobody"; /* a local name nobody holds */
    call(&q, &rp);
    gr_test_expect_error(&rp.o, "noname");
    gr_test_reply_done(&rp);
}
END_TEST

/* Counts ["seq", I] messages reaching the probe, checking each. */
static void probe_seq(const msgpack_object *o, void *arg)
{
    uint64_t *next = arg;

    ck_assert_uint_eq(o->via.array.size, 2);
    ck_assert(gr_term_is_str(&o->via.array.ptr[0], "seq"));
    ck_assert_int_eq(o->via.array.ptr[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(o->via.array.ptr[1].via.u64, *next);
    (*next)++;
}

START_TEST(burst_into_probe)
{
    girder_pid tx = spawn_seq();
    req q = {.kind = "burst", .dest = gr_probe_pid(probe), .n = 2 * GR_SEQ_BATCH + 1, .server = tx};
    uint64_t next = 1;
    reply rp;

    gr_test_call_send(probe, q.server, pack_req, &q);
    gr_test_recv_reply(probe, probe_seq, &next, &rp); /* every number first, then the answer */
    ck_assert_uint_eq(next, q.n + 1);
    ck_assert_uint_eq(map_u64(&rp.o, "sent"), q.n);
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    girder_pid tx = spawn_seq();
    req q = {.kind = "burst", .dest = tx, .n = 0, .server = tx};
    reply rp;

    call(&q, &rp);
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
    q.n = GR_SEQ_BURST_MAX + 1;
    call(&q, &rp);
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
    q = (req){.kind = "bogus", .server = tx};
    call(&q, &rp);
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
}
END_TEST

static Suite *seq_suite(void)
{
    Suite *s = suite_create("seq");
    TCase *tc = gr_test_tcase(s, "checker", NULL, NULL, 0);

    gr_test_add(tc, checker_in_order_and_gaps);
    tc = gr_test_tcase(s, "behaviour", setup, teardown, 30);
    gr_test_add(tc, burst_to_pid_in_order, burst_to_name, burst_into_probe, bad_requests);
    return s;
}

int main(void)
{
    return gr_test_run(seq_suite);
}
