/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_test.c - unit tests for the `relay` behaviour: a call relayed to an
 * echo by pid and by [Name, Node] answers {"reply": Response}; a dead pid
 * {"error": "noproc"}; an unregistered local name {"error": "noname"}; a
 * process that never answers {"error": "timeout"} after the given timeout;
 * bad requests. Every test starts its own two-scheduler runtime and drives the
 * processes through a probe.
 */
#include "services/echo.h"
#include "testkit/relay.h"
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

static girder_rt *rt;
static gr_probe *probe;
static girder_pid relay;

typedef struct req {
    girder_pid server;  /* whom to call */
    bool raw;           /* send `atom` as the whole request (not a relay "call") */
    const char *atom;   /* raw request, or the relayed Request (a string) */
    const char *name;   /* Dest [name, NODE] if set ... */
    girder_pid dest;    /* ... else this pid */
    uint64_t timeout;   /* TimeoutMs, 0: none given */
    const char *reason; /* echo only: ["stop", reason] */
} req;

/* Packs q inside the probe (pids need its ctx). */
static int pack_req(girder_ctx *ctx, msgpack_packer *pk, void *arg)
{
    req *q = arg;
    int r = 0;

    if (q->reason) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_str_with_body(pk, "stop", 4);
        msgpack_pack_str_with_body(pk, q->reason, strlen(q->reason));
    } else if (q->raw) {
        msgpack_pack_array(pk, 1);
        msgpack_pack_str_with_body(pk, q->atom, strlen(q->atom));
    } else {
        msgpack_pack_array(pk, q->timeout ? 4 : 3);
        msgpack_pack_str_with_body(pk, "call", 4);
        r = gr_test_pack_dest(ctx, pk, q->name, NODE, q->dest);
        msgpack_pack_str_with_body(pk, q->atom, strlen(q->atom));
        if (q->timeout) {
            msgpack_pack_uint64(pk, q->timeout);
        }
    }
    return r;
}

typedef gr_test_reply reply;

/* Call and wait for the "$reply"; anything else reaching the probe (a relayed
 * "$call" it does not answer, DOWNs) is skipped. */
static void call(req *q, reply *rp)
{
    if (!q->server.id) {
        q->server = relay;
    }
    gr_test_call(probe, q->server, pack_req, q, rp);
}

/* rp.o is the one-entry map {key: str}. */
static void expect(const reply *rp, const char *key, const char *str)
{
    ck_assert_int_eq(rp->o.type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(rp->o.via.map.size, 1);
    ck_assert_msg(gr_term_is_str(&rp->o.via.map.ptr[0].key, key), "expected key %s", key);
    ck_assert_msg(gr_term_is_str(&rp->o.via.map.ptr[0].val, str), "expected %s: %s", key, str);
}

static int register_worker(girder_ctx *ctx, void *arg)
{
    return girder_register(ctx, "worker", *(girder_pid *)arg);
}

static void setup(void)
{
    gr_test_rt_start(&(gr_rt_config){.node_name = NODE, .schedulers = 2},
                     (gr_test_prepare_fn[]){gr_services_register, gr_testkit_register, NULL}, &rt,
                     &probe);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_RELAY_NAME), &gr_relay_behaviour);
    relay = gr_test_spawn(rt, &gr_relay_behaviour);
}

static void teardown(void)
{
    gr_test_rt_stop(&rt, &probe);
}

START_TEST(call_by_pid_and_name)
{
    girder_pid e = gr_test_spawn(rt, &gr_echo_behaviour);
    req q = {.dest = e, .atom = "hello"};
    reply rp;

    call(&q, &rp);
    expect(&rp, "reply", "hello");
    gr_test_reply_done(&rp);

    ck_assert_int_eq(gr_probe_run(probe, register_worker, &e), 0);
    q = (req){.name = "worker", .atom = "again", .timeout = 2000};
    call(&q, &rp);
    expect(&rp, "reply", "again");
    gr_test_reply_done(&rp);

    q = (req){.name = "nobody", .atom = "x"};
    call(&q, &rp);
    expect(&rp, "error", "noname");
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(dead_pid_and_silence)
{
    girder_pid e = gr_test_spawn(rt, &gr_echo_behaviour);
    req q = {.server = e, .reason = "normal"};
    uint64_t t0;
    reply rp;

    call(&q, &rp); /* echo answers "ok", then stops */
    gr_test_reply_done(&rp);
    q = (req){.dest = e, .atom = "x"};
    for (;;) { /* until it is gone: a call racing its exit may see "normal" */
        call(&q, &rp);
        ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_MAP);
        if (gr_term_is_str(&rp.o.via.map.ptr[0].val, "noproc")) {
            break;
        }
        ck_assert(gr_term_is_str(&rp.o.via.map.ptr[0].key, "reply") ||
                  gr_term_is_str(&rp.o.via.map.ptr[0].val, "normal"));
        gr_test_reply_done(&rp);
    }
    expect(&rp, "error", "noproc");
    gr_test_reply_done(&rp);

    /* the probe gets the relayed "$call" and never answers */
    q = (req){.dest = gr_probe_pid(probe), .atom = "x", .timeout = 100};
    t0 = gr_clock_ms();
    call(&q, &rp);
    expect(&rp, "error", "timeout");
    ck_assert_uint_ge(gr_clock_ms() - t0, 100);
    gr_test_reply_done(&rp);

    /* the relay is free again */
    e = gr_test_spawn(rt, &gr_echo_behaviour);
    q = (req){.dest = e, .atom = "after"};
    call(&q, &rp);
    expect(&rp, "reply", "after");
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    req q = {.raw = true, .atom = "bogus"};
    reply rp;

    call(&q, &rp);
    expect(&rp, "error", "badarg");
    gr_test_reply_done(&rp);
    q = (req){.raw = true, .atom = "call"}; /* ["call"]: no Dest */
    call(&q, &rp);
    expect(&rp, "error", "badarg");
    gr_test_reply_done(&rp);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = gr_test_tcase(s, "requests", setup, teardown, 30);

    gr_test_add(tc, call_by_pid_and_name, dead_pid_and_silence, bad_requests);
    return s;
}

int main(void)
{
    return gr_test_run(relay_suite);
}
