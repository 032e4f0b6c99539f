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

#include "testing/gr_test.h"
#include <check.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define NODE "test@127.0.0.1"
#define TIMEOUT_MS 5000

static girder_rt *rt;
static gr_probe *probe;
static girder_pid sys_pid;

/* Pack the request [fn], or [] for NULL. */
static girder_msg *request(const char *fn)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (fn) {
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, fn, strlen(fn));
    } else {
        msgpack_pack_array(&pk, 0);
    }
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_ptr_nonnull(m);
    return m;
}

static girder_msg *spawn_arg(uint64_t started_ms)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "started_ms", 10);
    msgpack_pack_uint64(&pk, started_ms);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_ptr_nonnull(m);
    return m;
}

typedef struct call_args {
    girder_pid to;         /* server */
    const girder_msg *req; /* request */
} call_args;

static int do_call(girder_ctx *ctx, void *arg)
{
    call_args *ca = arg;
    girder_ref ref;

    return girder_call(ctx, ca->to, ca->req, true, &ref);
}

/* A reply and the unpacked view into it (which borrows the message's bytes). */
typedef struct reply {
    girder_msg *m;       /* ["$reply", Ref, Response]; owned */
    msgpack_unpacked up; /* unpacked m */
    msgpack_object o;    /* Response, inside up */
} reply;

/* Call the sys service with req (taken) and wait for the reply. */
static void call(girder_msg *req, reply *rp)
{
    call_args ca = {sys_pid, req};

    ck_assert_int_eq(gr_probe_run(probe, do_call, &ca), 0);
    girder_msg_unref(req);
    ck_assert_int_eq(gr_probe_recv(probe, TIMEOUT_MS, &rp->m), 0);
    msgpack_unpacked_init(&rp->up);
    ck_assert_int_eq(girder_msg_unpack(rp->m, &rp->up), 0);
    ck_assert_int_eq(rp->up.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(rp->up.data.via.array.size, 3);
    ck_assert(gr_term_is_str(&rp->up.data.via.array.ptr[0], "$reply"));
    rp->o = rp->up.data.via.array.ptr[2];
}

static void reply_done(reply *rp)
{
    msgpack_unpacked_destroy(&rp->up);
    rp->m = girder_msg_unref(rp->m);
}

/* The value of key k in map o, or NULL. */
static const msgpack_object *map_get(const msgpack_object *o, const char *k)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (gr_term_is_str(&o->via.map.ptr[i].key, k)) {
            return &o->via.map.ptr[i].val;
        }
    }
    return NULL;
}

static void expect_error(const msgpack_object *o, const char *id)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o->via.array.size, 2);
    ck_assert(gr_term_is_str(&o->via.array.ptr[0], "error"));
    ck_assert_msg(gr_term_is_str(&o->via.array.ptr[1], id), "expected error %s", id);
}

static void setup(void)
{
    gr_rt_config cfg = {.node_name = NODE, .schedulers = 2};
    girder_msg *arg;

    ck_assert_int_eq(gr_rt_new(&cfg, &rt), 0);
    ck_assert_int_eq(gr_services_register(rt), 0);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_SYS_NAME), &gr_sys_service);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
    arg = spawn_arg(gr_sys_now_ms() - 1000);
    ck_assert_int_eq(gr_rt_spawn(rt, &gr_sys_service, arg, &sys_pid), 0);
    girder_msg_unref(arg);
}

static void teardown(void)
{
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    rt = gr_rt_free(rt);
}

START_TEST(version)
{
    reply rp;

    call(request("version"), &rp);
    ck_assert(gr_term_is_str(&rp.o, GIRDER_VERSION));
    reply_done(&rp);
}
END_TEST

START_TEST(uptime_counts_from_arg)
{
    reply rp;

    call(request("uptime"), &rp);
    ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_ge(rp.o.via.u64, 1000);
    ck_assert_uint_lt(rp.o.via.u64, 1000 + 60000);
    reply_done(&rp);
}
END_TEST

START_TEST(schedulers_and_processes)
{
    reply rp;

    call(request("schedulers"), &rp);
    ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(rp.o.via.u64, 2);
    reply_done(&rp);

    call(request("processes"), &rp);
    ck_assert_int_eq(rp.o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_ge(rp.o.via.u64, 2); /* sys and the probe */
    reply_done(&rp);
}
END_TEST

START_TEST(memory)
{
    reply rp;
    const msgpack_object *rss;

    call(request("memory"), &rp);
    rss = map_get(&rp.o, "rss");
    ck_assert_ptr_nonnull(rss);
    ck_assert_int_eq(rss->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_gt(rss->via.u64, 0);
    ck_assert_ptr_nonnull(map_get(&rp.o, "heap"));
    reply_done(&rp);
}
END_TEST

START_TEST(info)
{
    reply rp;
    const char *keys[] = {"version",    "api",       "creation", "uptime_ms",
                          "schedulers", "processes", "memory"};

    call(request("info"), &rp);
    ck_assert_uint_eq(rp.o.via.map.size, 8);
    ck_assert(gr_term_is_str(map_get(&rp.o, "node"), NODE));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ck_assert_msg(map_get(&rp.o, keys[i]) != NULL, "info lacks %s", keys[i]);
    }
    reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    reply rp;

    call(request("bogus"), &rp);
    expect_error(&rp.o, "undef_function");
    reply_done(&rp);

    call(request(NULL), &rp); /* [] */
    expect_error(&rp.o, "badarg");
    reply_done(&rp);

    call(girder_msg_atom("version"), &rp); /* not an array */
    expect_error(&rp.o, "badarg");
    reply_done(&rp);
}
END_TEST

START_TEST(ignores_non_requests)
{
    reply rp;
    girder_msg *junk = girder_msg_atom("hello");

    ck_assert_int_eq(gr_rt_send(rt, sys_pid, junk), 0);
    call(request("version"), &rp); /* still alive and answering */
    ck_assert(gr_term_is_str(&rp.o, GIRDER_VERSION));
    reply_done(&rp);
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
    reply_done(&rp);
    ck_assert_int_eq(gr_rt_whereis(rt, GR_SYS_NAME, &found), 0);
    ck_assert(girder_pid_eq(found, sys_pid));

    /* a second sys cannot take the name: init fails, the monitor reports it */
    ck_assert_int_eq(gr_probe_run(probe, spawn_second, &sa), 0);
    ck_assert_int_eq(gr_probe_recv(probe, TIMEOUT_MS, &m), 0);
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

    tcase_add_test(tc, version);
    tcase_add_test(tc, uptime_counts_from_arg);
    tcase_add_test(tc, schedulers_and_processes);
    tcase_add_test(tc, memory);
    tcase_add_test(tc, info);
    tcase_add_test(tc, bad_requests);
    tcase_add_test(tc, ignores_non_requests);
    tcase_add_test(tc, registered_name_is_unique);
    tcase_add_test(tc, root_arg_is_a_valid_term);
    return s;
}

int main(void)
{
    return gr_test_run(sys_suite);
}
