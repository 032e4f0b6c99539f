/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys_test.c - unit tests for the `sys` service: each request and its answer,
 * bad requests, and the registered name. Every test starts its own two-scheduler
 * runtime and talks to the service through a probe.
 */
#include "services/services.h"
#include "services/sys.h"

#include "gr_version.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include "testing/gr_test_rt.h"
#include <check.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define NODE "test@127.0.0.1"
#define TIMEOUT_MS 5000

static girder_rt *rt;
static gr_probe *probe;
static girder_pid sys_pid;

/* The request [fn], or [] for NULL. */
static girder_msg *request(const char *fn)
{
    return fn ? gr_test_msg_json("[\"%s\"]", fn) : gr_test_msg_json("[]");
}

typedef gr_test_reply reply;

/* Call the sys service with req (taken) and wait for the reply. */
static void call(girder_msg *req, reply *rp)
{
    gr_test_call_msg(probe, sys_pid, req, rp);
    girder_msg_unref(req);
}

static void setup(void)
{
    girder_msg *arg;

    gr_test_rt_start(&(gr_rt_config){.node_name = NODE, .schedulers = 2},
                     (gr_test_prepare_fn[]){gr_services_register, NULL}, &rt, &probe);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_SYS_NAME), &gr_sys_service);
    arg = gr_test_msg_json("{\"started_ms\": %llu}", (unsigned long long)gr_sys_now_ms() - 1000);
    ck_assert_int_eq(gr_rt_spawn(rt, &gr_sys_service, arg, &sys_pid), 0);
    girder_msg_unref(arg);
}

static void teardown(void)
{
    gr_test_rt_stop(&rt, &probe);
}

START_TEST(version)
{
    reply rp;

    call(request("version"), &rp);
    ck_assert(gr_term_is_str(&rp.o, GIRDER_VERSION));
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(uptime_counts_from_arg)
{
    reply rp;

    call(request("uptime"), &rp);
    ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_ge(rp.o.via.u64, 1000);
    ck_assert_uint_lt(rp.o.via.u64, 1000 + 60000);
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(schedulers_and_processes)
{
    reply rp;

    call(request("schedulers"), &rp);
    ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(rp.o.via.u64, 2);
    gr_test_reply_done(&rp);

    call(request("processes"), &rp);
    ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_ge(rp.o.via.u64, 2); /* sys and the probe */
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(memory)
{
    reply rp;
    const msgpack_object *rss;

    call(request("memory"), &rp);
    rss = gr_test_map_get(&rp.o, "rss");
    ck_assert_ptr_nonnull(rss);
    ck_assert_int_eq(rss->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_gt(rss->via.u64, 0);
    ck_assert_ptr_nonnull(gr_test_map_get(&rp.o, "heap"));
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(info)
{
    reply rp;
    const char *keys[] = {"version",    "api",       "creation", "uptime_ms",
                          "schedulers", "processes", "memory"};

    call(request("info"), &rp);
    ck_assert_uint_eq(rp.o.via.map.size, 8);
    ck_assert(gr_term_is_str(gr_test_map_get(&rp.o, "node"), NODE));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ck_assert_msg(gr_test_map_get(&rp.o, keys[i]) != NULL, "info lacks %s", keys[i]);
    }
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    reply rp;

    call(request("bogus"), &rp);
    gr_test_expect_error(&rp.o, "undef_function");
    gr_test_reply_done(&rp);

    call(request(NULL), &rp); /* [] */
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);

    call(girder_msg_atom("version"), &rp); /* not an array */
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(ignores_non_requests)
{
    reply rp;
    girder_msg *junk = girder_msg_atom("hello");

    ck_assert_int_eq(gr_rt_send(rt, sys_pid, junk), 0);
    call(request("version"), &rp); /* still alive and answering */
    ck_assert(gr_term_is_str(&rp.o, GIRDER_VERSION));
    gr_test_reply_done(&rp);
}
END_TEST

typedef struct spawn_args {
    girder_pid pid; /* out */
} spawn_args;

static int spawn_second(girder_ctx *ctx, void *arg)
{
    spawn_args *sa = arg;
    girder_ref mref;

    return girder_spawn(ctx, &gr_sys_service, NULL, GIRDER_SPAWN_MONITOR, &sa->pid, &mref);
}

START_TEST(registered_name_is_unique)
{
    reply rp;
    msgpack_unpacked up;
    girder_pid found;
    spawn_args sa;
    girder_msg *m;

    call(request("version"), &rp); /* init has run */
    gr_test_reply_done(&rp);
    ck_assert_int_eq(gr_rt_whereis(rt, GR_SYS_NAME, &found), 0);
    ck_assert(girder_pid_eq(found, sys_pid));

    /* a second sys cannot take the name: init fails, the monitor reports it */
    ck_assert_int_eq(gr_probe_run(probe, spawn_second, &sa), 0);
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(TIMEOUT_MS), &m), 0);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(girder_msg_unpack(m, &up), 0);
    ck_assert_uint_eq(up.data.via.array.size, 5);
    ck_assert(gr_term_is_str(&up.data.via.array.ptr[0], "DOWN"));
    ck_assert(gr_term_is_str(&up.data.via.array.ptr[4], "init_failed"));
    msgpack_unpacked_destroy(&up);
    girder_msg_unref(m);
    ck_assert_int_eq(gr_rt_whereis(rt, GR_SYS_NAME, &found), 0);
    ck_assert(girder_pid_eq(found, sys_pid));
}
END_TEST

START_TEST(root_arg_is_a_valid_term)
{
    gr_services_env env = {.cfg = NULL, .started_ms = 42};
    girder_msg *m = NULL;

    ck_assert_int_eq(gr_services_root_arg(&env, &m), 0);
    ck_assert_int_eq(gr_term_validate(girder_msg_data(m), girder_msg_size(m)), 0);
    girder_msg_unref(m);
}
END_TEST

static Suite *sys_suite(void)
{
    Suite *s = suite_create("sys");
    TCase *tc = gr_test_tcase(s, "requests", setup, teardown, 30);

    gr_test_add(tc, version, uptime_counts_from_arg, schedulers_and_processes, memory, info,
                bad_requests, ignores_non_requests, registered_name_is_unique,
                root_arg_is_a_valid_term);
    return s;
}

int main(void)
{
    return gr_test_run(sys_suite);
}
