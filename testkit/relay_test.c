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

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define NODE "test@127.0.0.1"
#define TIMEOUT_MS 5000

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

static int do_call(girder_ctx *ctx, void *arg)
{
    req *q = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    girder_ref ref;
    int r = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (q->reason) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "stop", 4);
        msgpack_pack_str_with_body(&pk, q->reason, strlen(q->reason));
    } else if (q->raw) {
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, q->atom, strlen(q->atom));
    } else {
        msgpack_pack_array(&pk, q->timeout ? 4 : 3);
        msgpack_pack_str_with_body(&pk, "call", 4);
        if (q->name) {
            msgpack_pack_array(&pk, 2);
            msgpack_pack_str_with_body(&pk, q->name, strlen(q->name));
            msgpack_pack_str_with_body(&pk, NODE, strlen(NODE));
        } else {
            r = girder_pack_pid(ctx, &pk, q->dest);
        }
        msgpack_pack_str_with_body(&pk, q->atom, strlen(q->atom));
        if (q->timeout) {
            msgpack_pack_uint64(&pk, q->timeout);
        }
    }
    m = r == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (!m) {
        return -ENOMEM;
    }
    r = girder_call(ctx, q->server, m, true, &ref);
    girder_msg_unref(m);
    return r;
}

typedef struct reply {
    girder_msg *m;       /* ["$reply", Ref, Response]; owned */
    msgpack_unpacked up; /* unpacked m */
    msgpack_object o;    /* Response, inside up */
} reply;

static void reply_done(reply *rp)
{
    msgpack_unpacked_destroy(&rp->up);
    rp->m = girder_msg_unref(rp->m);
}

/* Call and wait for the "$reply"; anything else reaching the probe (a relayed
 * "$call" it does not answer, DOWNs) is skipped. */
static void call(req *q, reply *rp)
{
    if (!q->server.id) {
        q->server = relay;
    }
    ck_assert_int_eq(gr_probe_run(probe, do_call, q), 0);
    for (;;) {
        ck_assert_int_eq(gr_probe_recv(probe, TIMEOUT_MS, &rp->m), 0);
        msgpack_unpacked_init(&rp->up);
        ck_assert_int_eq(girder_msg_unpack(rp->m, &rp->up), 0);
        if (rp->up.data.type == MSGPACK_OBJECT_ARRAY && rp->up.data.via.array.size == 3 &&
            gr_term_is_str(&rp->up.data.via.array.ptr[0], "$reply")) {
            rp->o = rp->up.data.via.array.ptr[2];
            return;
        }
        reply_done(rp);
    }
}

/* rp.o is the one-entry map {key: str}. */
static void expect(const reply *rp, const char *key, const char *str)
{
    ck_assert_int_eq(rp->o.type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(rp->o.via.map.size, 1);
    ck_assert_msg(gr_term_is_str(&rp->o.via.map.ptr[0].key, key), "expected key %s", key);
    ck_assert_msg(gr_term_is_str(&rp->o.via.map.ptr[0].val, str), "expected %s: %s", key, str);
}

static girder_pid spawn(const girder_behaviour *b)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, b, NULL, &pid), 0);
    return pid;
}

static int register_worker(girder_ctx *ctx, void *arg)
{
    return girder_register(ctx, "worker", *(girder_pid *)arg);
}

static void setup(void)
{
    gr_rt_config cfg = {.node_name = NODE, .schedulers = 2};

    ck_assert_int_eq(gr_rt_new(&cfg, &rt), 0);
    ck_assert_int_eq(gr_services_register(rt), 0);
    ck_assert_int_eq(gr_testkit_register(rt), 0);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_RELAY_NAME), &gr_relay_behaviour);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
    relay = spawn(&gr_relay_behaviour);
}

static void teardown(void)
{
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    rt = gr_rt_free(rt);
}

START_TEST(call_by_pid_and_name)
{
    girder_pid e = spawn(&gr_echo_behaviour);
    req q = {.dest = e, .atom = "hello"};
    reply rp;

    call(&q, &rp);
    expect(&rp, "reply", "hello");
    reply_done(&rp);

    ck_assert_int_eq(gr_probe_run(probe, register_worker, &e), 0);
    q = (req){.name = "worker", .atom = "again", .timeout = 2000};
    call(&q, &rp);
    expect(&rp, "reply", "again");
    reply_done(&rp);

    q = (req){.name = "nobody", .atom = "x"};
    call(&q, &rp);
    expect(&rp, "error", "noname");
    reply_done(&rp);
}
END_TEST

START_TEST(dead_pid_and_silence)
{
    girder_pid e = spawn(&gr_echo_behaviour);
    req q = {.server = e, .reason = "normal"};
    uint64_t t0;
    reply rp;

    call(&q, &rp); /* echo answers "ok", then stops */
    reply_done(&rp);
    q = (req){.dest = e, .atom = "x"};
    for (;;) { /* until it is gone: a call racing its exit may see "normal" */
        call(&q, &rp);
        ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_MAP);
        if (gr_term_is_str(&rp.o.via.map.ptr[0].val, "noproc")) {
            break;
        }
        ck_assert(gr_term_is_str(&rp.o.via.map.ptr[0].key, "reply") ||
                  gr_term_is_str(&rp.o.via.map.ptr[0].val, "normal"));
        reply_done(&rp);
    }
    expect(&rp, "error", "noproc");
    reply_done(&rp);

    /* the probe gets the relayed "$call" and never answers */
    q = (req){.dest = gr_probe_pid(probe), .atom = "x", .timeout = 100};
    t0 = gr_clock_ms();
    call(&q, &rp);
    expect(&rp, "error", "timeout");
    ck_assert_uint_ge(gr_clock_ms() - t0, 100);
    reply_done(&rp);

    /* the relay is free again */
    e = spawn(&gr_echo_behaviour);
    q = (req){.dest = e, .atom = "after"};
    call(&q, &rp);
    expect(&rp, "reply", "after");
    reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    req q = {.raw = true, .atom = "bogus"};
    reply rp;

    call(&q, &rp);
    expect(&rp, "error", "badarg");
    reply_done(&rp);
    q = (req){.raw = true, .atom = "call"}; /* ["call"]: no Dest */
    call(&q, &rp);
    expect(&rp, "error", "badarg");
    reply_done(&rp);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = gr_test_tcase(s, "requests", setup, teardown, 30);

    tcase_add_test(tc, call_by_pid_and_name);
    tcase_add_test(tc, dead_pid_and_silence);
    tcase_add_test(tc, bad_requests);
    return s;
}

int main(void)
{
    return gr_test_run(relay_suite);
}
