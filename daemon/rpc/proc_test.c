/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proc_test.c - unit tests of the rpc module `proc` (mod_proc.c) and the echo
 * behaviour (services/echo.c) without a network: the test thread plays the
 * dist thread (gr_rpc_dispatch) and a reply hook collects the answers, as in
 * rpc_test.c. Every function is covered with its errors; routing to another
 * node is the CLI's job and is covered by cluster-tests/ (h_proc).
 */
#include "rpc/rpc.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "testing/gr_test_rpc.h"
#include "services/echo.h"
#include "services/services.h"
#include "services/sys.h"

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NODE "proctest@127.0.0.1"
#define WAIT_MS 10000

/* Answers collected from worker threads. */
static gr_test_answers ans = GR_TEST_ANSWERS_INIT;

static girder_rt *rt;
static gr_rpc *rpc;

/* "silent": a process that never answers a call (proc.call's timeout). */
static int silent_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    return 0;
}

static int silent_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

static const girder_behaviour silent = {
    .name = "silent", .init = silent_init, .handle = silent_handle};

static void setup_with(unsigned schedulers)
{
    gr_rt_config rc = {.node_name = NODE, .schedulers = schedulers};
    gr_rpc_config cfg = {.reply_fn = gr_test_answers_capture, .reply_ud = &ans};

    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(gr_services_register(rt), 0); /* sys, echo */
    ck_assert_int_eq(girder_behaviour_register(rt, &silent), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    cfg.rt = rt;
    ck_assert_int_eq(gr_rpc_new(&cfg, &rpc), 0);
}

static void setup(void)
{
    setup_with(3); /* 3: proc.list merges */
}

static void teardown(void)
{
    gr_rt_stop(rt);
    rpc = gr_rpc_free(rpc); /* before the runtime: it unhooks girder_table_* */
    rt = gr_rt_free(rt);
    gr_test_answers_clear(&ans);
}

/* A pid of another node. */
static void args_remote_pid(gr_test_args *a)
{
    static const char other[] = "other@127.0.0.9";

    ck_assert_int_eq(gr_term_pack_id(&a->pk, GR_TERM_EXT_PID, other, sizeof(other) - 1, 1, 0x101),
                     0);
}

/* The answer to ref, kept for use as an argument. */
typedef struct kept {
    msgpack_unpacked up;
    const msgpack_object *o;
} kept;

static void keep(uint64_t ref, kept *k)
{
    size_t i = gr_test_answers_wait(&ans, ref, WAIT_MS);

    ck_assert_msg(ans.a[i].status == 0, "ref %llu: error %s", (unsigned long long)ref,
                  gr_errid(ans.a[i].status));
    k->o = gr_test_answers_term(&ans, i, &k->up);
}

static void unkeep(kept *k)
{
    msgpack_unpacked_destroy(&k->up);
}

static uint64_t next_ref = 1;

/* Run proc.fn(args) and wait: returns the answer's index. */
static size_t run(const char *fn, gr_test_args *a, uint32_t deadline_ms)
{
    uint64_t ref = next_ref++;

    gr_test_rpc_dispatch(rpc, ref, "proc", fn, a ? &a->sb : NULL, deadline_ms);
    if (a) {
        gr_test_args_free(a);
    }
    return gr_test_answers_wait(&ans, ref, WAIT_MS);
}

static void run_err(const char *fn, gr_test_args *a, int status)
{
    size_t i = run(fn, a, 5000);

    ck_assert_msg(ans.a[i].status == status, "proc.%s: got %s, want %s", fn,
                  gr_errid(ans.a[i].status), gr_errid(status));
}

static void run_str(const char *fn, gr_test_args *a, const char *s)
{
    msgpack_unpacked up;
    size_t i = run(fn, a, 5000);

    ck_assert_msg(ans.a[i].status == 0, "proc.%s: error %s", fn, gr_errid(ans.a[i].status));
    ck_assert_msg(gr_term_is_str(gr_test_answers_term(&ans, i, &up), s), "proc.%s: not \"%s\"", fn,
                  s);
    msgpack_unpacked_destroy(&up);
}

static uint64_t run_uint(const char *fn, gr_test_args *a)
{
    msgpack_unpacked up;
    size_t i = run(fn, a, 5000);
    const msgpack_object *o;
    uint64_t v;

    ck_assert_msg(ans.a[i].status == 0, "proc.%s: error %s", fn, gr_errid(ans.a[i].status));
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    v = o->via.u64;
    msgpack_unpacked_destroy(&up);
    return v;
}

/* proc.spawn("echo") -> the pid, kept. */
static void spawn_echo(kept *k)
{
    gr_test_args *a = gr_test_args_new(1);
    uint64_t ref = next_ref++;

    gr_test_args_str(a, "echo");
    gr_test_rpc_dispatch(rpc, ref, "proc", "spawn", &a->sb, 5000);
    gr_test_args_free(a);
    keep(ref, k);
    ck_assert_int_eq(k->o->type, MSGPACK_OBJECT_EXT);
}

/* proc.FN(pid) with one more string argument (or none). */
static gr_test_args *pid_args(const kept *pid, uint32_t n)
{
    gr_test_args *a = gr_test_args_new(n);

    gr_test_args_raw(a, pid->o);
    return a;
}

static uint64_t call_count(const msgpack_object *dest)
{
    gr_test_args *a = gr_test_args_new(2);

    gr_test_args_raw(a, dest);
    gr_test_args_str(a, "count");
    return run_uint("call", a);
}

/* Is pid (a kept term) in proc.list's answer? */
static bool listed(const kept *pid, const char *want_name)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i = run("list", NULL, 5000);
    bool found = false;

    ck_assert_int_eq(ans.a[i].status, 0);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t j = 0; j < o->via.array.size; j++) {
        const msgpack_object *m = &o->via.array.ptr[j];

        ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
        ck_assert(gr_term_is_str(&m->via.map.ptr[0].key, "pid"));
        if (m->via.map.ptr[0].val.type == MSGPACK_OBJECT_EXT &&
            m->via.map.ptr[0].val.via.ext.size == pid->o->via.ext.size &&
            memcmp(m->via.map.ptr[0].val.via.ext.ptr, pid->o->via.ext.ptr, pid->o->via.ext.size) ==
                0) {
            found = true;
            for (uint32_t k = 0; k < m->via.map.size; k++) {
                if (gr_term_is_str(&m->via.map.ptr[k].key, "behaviour")) {
                    ck_assert(gr_term_is_str(&m->via.map.ptr[k].val, "echo"));
                }
                if (want_name && gr_term_is_str(&m->via.map.ptr[k].key, "name")) {
                    ck_assert(gr_term_is_str(&m->via.map.ptr[k].val, want_name));
                }
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    return found;
}

/* ---- tests ------------------------------------------------------------------------- */

START_TEST(spawn)
{
    kept pid;
    gr_test_args *a;

    spawn_echo(&pid);
    unkeep(&pid);
    a = gr_test_args_new(2); /* with an argument */
    gr_test_args_str(a, "echo");
    msgpack_pack_array(&a->pk, 0);
    ck_assert_int_eq(ans.a[run("spawn", a, 5000)].status, 0);
    a = gr_test_args_new(1);
    gr_test_args_str(a, "no_such_behaviour");
    run_err("spawn", a, GR_EBADBEHAVIOUR);
    a = gr_test_args_new(2); /* the rpc worker takes a raw pointer: never spawnable */
    gr_test_args_str(a, "rpc_worker");
    msgpack_pack_array(&a->pk, 2);
    msgpack_pack_uint64(&a->pk, 12345);
    msgpack_pack_uint64(&a->pk, 1);
    run_err("spawn", a, GR_EBADBEHAVIOUR);
    run_err("spawn", NULL, GR_EBADARG);
    a = gr_test_args_new(1);
    msgpack_pack_int(&a->pk, 1);
    run_err("spawn", a, GR_EBADARG);
    a = gr_test_args_new(3);
    gr_test_args_str(a, "echo");
    msgpack_pack_nil(&a->pk);
    msgpack_pack_nil(&a->pk);
    run_err("spawn", a, GR_EBADARG);
}
END_TEST

/* proc.spawn spreads its processes over every scheduler. Each proc.spawn
 * also starts an rpc worker round-robin; when both placements shared one
 * cursor, the spawned processes of a 2-scheduler node all landed on scheduler
 * 1 and those of a 4-scheduler node only on 1 and 3. */
START_TEST(spawn_spreads)
{
    static const unsigned ns[] = {2, 4};

    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
        unsigned per[4] = {0};

        teardown();
        setup_with(ns[k]);
        for (int j = 0; j < 20; j++) {
            gr_test_args *a = gr_test_args_new(1);
            msgpack_unpacked up;
            gr_term_id tid;
            size_t i;

            gr_test_args_str(a, "silent");
            i = run("spawn", a, 5000);
            ck_assert_int_eq(ans.a[i].status, 0);
            ck_assert_int_eq(
                gr_term_parse_id(gr_test_answers_term(&ans, i, &up), GR_TERM_EXT_PID, &tid), 0);
            ck_assert_uint_lt(tid.id & 0xff, ns[k]);
            per[tid.id & 0xff]++;
            msgpack_unpacked_destroy(&up);
        }
        for (unsigned i = 0; i < ns[k]; i++) {
            /* round-robin gives each 20 / n; allow for half of that */
            ck_assert_msg(per[i] >= 20 / ns[k] / 2, "%u schedulers: %u of 20 spawns on %u", ns[k],
                          per[i], i);
        }
    }
}
END_TEST

START_TEST(send_and_call)
{
    kept pid;
    gr_test_args *a;
    msgpack_unpacked up;
    size_t i;

    spawn_echo(&pid);
    ck_assert_uint_eq(call_count(pid.o), 0);
    for (int n = 0; n < 3; n++) {
        a = pid_args(&pid, 2);
        msgpack_pack_int(&a->pk, n);
        run_str("send", a, "ok");
    }
    ck_assert_uint_eq(call_count(pid.o), 3);
    /* echo: the request comes back */
    a = pid_args(&pid, 3);
    msgpack_pack_array(&a->pk, 2);
    gr_test_args_str(a, "x");
    msgpack_pack_int(&a->pk, -7);
    msgpack_pack_uint32(&a->pk, 2000);
    i = run("call", a, 5000);
    ck_assert_int_eq(ans.a[i].status, 0);
    {
        const msgpack_object *o = gr_test_answers_term(&ans, i, &up);

        ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(o->via.array.size, 2);
        ck_assert(gr_term_is_str(&o->via.array.ptr[0], "x"));
        ck_assert_int_eq(o->via.array.ptr[1].via.i64, -7);
        msgpack_unpacked_destroy(&up);
    }
    /* ["stop", "normal"]: "ok", then it is gone */
    a = pid_args(&pid, 2);
    msgpack_pack_array(&a->pk, 2);
    gr_test_args_str(a, "stop");
    gr_test_args_str(a, "normal");
    run_str("call", a, "ok");
    /* dead pid: call -> noproc, send -> ok (as Erlang) */
    a = pid_args(&pid, 2);
    gr_test_args_str(a, "count");
    run_err("call", a, GR_ENOPROC);
    a = pid_args(&pid, 2);
    msgpack_pack_int(&a->pk, 1);
    run_str("send", a, "ok");
    /* unknown name: call -> noproc, send -> noname */
    a = gr_test_args_new(2);
    gr_test_args_str(a, "nobody");
    gr_test_args_str(a, "count");
    run_err("call", a, GR_ENOPROC);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "nobody");
    msgpack_pack_int(&a->pk, 1);
    run_err("send", a, GR_ENONAME);
    /* another node's pid: noconnection */
    a = gr_test_args_new(2);
    args_remote_pid(a);
    msgpack_pack_int(&a->pk, 1);
    run_err("send", a, GR_ENOCONN);
    a = gr_test_args_new(2);
    args_remote_pid(a);
    msgpack_pack_int(&a->pk, 1);
    run_err("call", a, GR_ENOCONN);
    /* bad arguments */
    run_err("send", NULL, GR_EBADARG);
    a = gr_test_args_new(2);
    msgpack_pack_int(&a->pk, 5); /* not a pid or name */
    msgpack_pack_int(&a->pk, 1);
    run_err("send", a, GR_EBADARG);
    a = pid_args(&pid, 3);
    gr_test_args_str(a, "count");
    msgpack_pack_int(&a->pk, 0); /* timeout 0 */
    run_err("call", a, GR_EBADARG);
    a = gr_test_args_new(1);
    gr_test_args_str(a, "x");
    run_err("call", a, GR_EBADARG);
    unkeep(&pid);
}
END_TEST

START_TEST(call_timeout)
{
    girder_pid p;
    gr_test_args *a = gr_test_args_new(3);

    ck_assert_int_eq(gr_rt_spawn(rt, &silent, NULL, &p), 0);
    {
        gr_test_args *r = gr_test_args_new(2);
        gr_test_args_str(r, "quiet");
        /* register through proc.register: needs the pid as a term */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked up;
        size_t off = 0;
        char node[] = NODE;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ck_assert_int_eq(
            gr_term_pack_id(&pk, GR_TERM_EXT_PID, node, strlen(node), gr_rt_creation(rt), p.id), 0);
        msgpack_unpacked_init(&up);
        ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        gr_test_args_raw(r, &up.data);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        run_str("register", r, "ok");
    }
    gr_test_args_str(a, "quiet");
    gr_test_args_str(a, "hello");
    msgpack_pack_uint32(&a->pk, 100);
    {
        /* its own timer answers: the request's deadline (10 min) is far past
         * the wait for the answer (WAIT_MS, scaled) */
        size_t i = run("call", a, 600000);

        ck_assert_int_eq(ans.a[i].status, GR_ETIMEOUT);
    }
    /* a call longer than the request's deadline: the worker's deadline answers */
    a = gr_test_args_new(3);
    gr_test_args_str(a, "quiet");
    gr_test_args_str(a, "hello");
    msgpack_pack_uint32(&a->pk, 60000);
    {
        size_t i = run("call", a, 200);

        ck_assert_int_eq(ans.a[i].status, GR_ETIMEOUT);
    }
}
END_TEST

START_TEST(info)
{
    kept pid;
    gr_test_args *a;
    msgpack_unpacked up;
    const msgpack_object *o;
    size_t i;
    bool beh = false;

    spawn_echo(&pid);
    i = run("info", pid_args(&pid, 1), 5000);
    ck_assert_int_eq(ans.a[i].status, 0);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t k = 0; k < o->via.map.size; k++) {
        if (gr_term_is_str(&o->via.map.ptr[k].key, "behaviour")) {
            beh = gr_term_is_str(&o->via.map.ptr[k].val, "echo");
        }
    }
    ck_assert(beh);
    msgpack_unpacked_destroy(&up);
    /* by name */
    a = gr_test_args_new(2);
    gr_test_args_str(a, "e1");
    gr_test_args_raw(a, pid.o);
    run_str("register", a, "ok");
    a = gr_test_args_new(1);
    gr_test_args_str(a, "e1");
    ck_assert_int_eq(ans.a[run("info", a, 5000)].status, 0);
    /* unknown name, remote pid, bad argument */
    a = gr_test_args_new(1);
    gr_test_args_str(a, "nobody");
    run_err("info", a, GR_ENOPROC);
    a = gr_test_args_new(1);
    args_remote_pid(a);
    run_err("info", a, GR_ENOCONN);
    run_err("info", NULL, GR_EBADARG);
    a = gr_test_args_new(1);
    gr_test_args_str(a, "");
    run_err("info", a, GR_EBADARG);
    unkeep(&pid);
}
END_TEST

static const msgpack_object *map_val(const msgpack_object *m, const char *k);

/* proc.send_after(pid, ms, term) -> {"timer": Pid, "ms": Ms}: answer index. */
static size_t send_after_run(const kept *pid, uint64_t ms, int v)
{
    gr_test_args *a = pid_args(pid, 3);
    size_t i;

    msgpack_pack_uint64(&a->pk, ms);
    msgpack_pack_int(&a->pk, v);
    i = run("send_after", a, 5000);
    ck_assert_msg(ans.a[i].status == 0, "send_after: %s", gr_errid(ans.a[i].status));
    return i;
}

/* proc.send_after: the answer names a timer process; its message arrives once
 * (awaited by round trips to the echo); a pending timer is a "$timer" process,
 * and killing it ends it (a timer dies with its process: it can no longer
 * fire); bad delays, unknown names and a wrong arity are refused. */
START_TEST(send_after)
{
    kept pid;
    gr_test_args *a;
    msgpack_unpacked up, up2;
    const msgpack_object *o, *t;
    struct timespec t0, now;
    size_t i;

    spawn_echo(&pid);
    o = gr_test_answers_term(&ans, send_after_run(&pid, 0, 5), &up);
    t = map_val(o, "timer");
    ck_assert(t != NULL && t->type == MSGPACK_OBJECT_EXT);
    ck_assert(map_val(o, "ms") != NULL && map_val(o, "ms")->via.u64 == 0);
    msgpack_unpacked_destroy(&up);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (call_count(pid.o) != 1) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_msg(now.tv_sec - t0.tv_sec < 5, "the timer's message did not arrive");
    }

    o = gr_test_answers_term(&ans, send_after_run(&pid, 600000, 6), &up);
    t = map_val(o, "timer");
    ck_assert(t != NULL);
    a = gr_test_args_new(1);
    gr_test_args_raw(a, t);
    i = run("info", a, 5000);
    ck_assert_int_eq(ans.a[i].status, 0);
    ck_assert(gr_term_is_str(map_val(gr_test_answers_term(&ans, i, &up2), "behaviour"), "$timer"));
    msgpack_unpacked_destroy(&up2);
    a = gr_test_args_new(1);
    gr_test_args_raw(a, t);
    run_str("kill", a, "ok");
    a = gr_test_args_new(1);
    gr_test_args_raw(a, t);
    run_err("info", a, GR_ENOPROC);
    msgpack_unpacked_destroy(&up);
    ck_assert_uint_eq(call_count(pid.o), 1);

    a = pid_args(&pid, 3);
    msgpack_pack_uint64(&a->pk, 2592000001ull); /* over 30 days */
    msgpack_pack_int(&a->pk, 1);
    run_err("send_after", a, GR_EBADARG);
    a = pid_args(&pid, 3);
    msgpack_pack_int(&a->pk, -1);
    msgpack_pack_int(&a->pk, 1);
    run_err("send_after", a, GR_EBADARG);
    a = pid_args(&pid, 2);
    msgpack_pack_int(&a->pk, 1);
    run_err("send_after", a, GR_EBADARG);
    a = gr_test_args_new(3);
    gr_test_args_str(a, "nobody");
    msgpack_pack_int(&a->pk, 1);
    msgpack_pack_int(&a->pk, 1);
    run_err("send_after", a, GR_ENONAME);
    unkeep(&pid);
}
END_TEST

START_TEST(kill)
{
    kept pid;
    gr_test_args *a;

    spawn_echo(&pid);
    run_str("kill", pid_args(&pid, 1), "ok");
    /* "ok" means down: info says noproc at once */
    run_err("info", pid_args(&pid, 1), GR_ENOPROC);
    /* a dead pid is ok; an unknown name is noname; remote: noconnection */
    run_str("kill", pid_args(&pid, 1), "ok");
    a = gr_test_args_new(1);
    gr_test_args_str(a, "nobody");
    run_err("kill", a, GR_ENONAME);
    a = gr_test_args_new(1);
    args_remote_pid(a);
    run_err("kill", a, GR_ENOCONN);
    unkeep(&pid);
    /* a reason, by name */
    spawn_echo(&pid);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "victim");
    gr_test_args_raw(a, pid.o);
    run_str("register", a, "ok");
    a = gr_test_args_new(2);
    gr_test_args_str(a, "victim");
    gr_test_args_str(a, "shutdown");
    run_str("kill", a, "ok");
    run_err("info", pid_args(&pid, 1), GR_ENOPROC);
    /* "normal" does not kill a process that does not trap: ok after the wait */
    unkeep(&pid);
    spawn_echo(&pid);
    a = pid_args(&pid, 2);
    gr_test_args_str(a, "normal");
    run_str("kill", a, "ok");
    ck_assert_uint_eq(call_count(pid.o), 0);
    run_err("kill", NULL, GR_EBADARG);
    unkeep(&pid);
}
END_TEST

START_TEST(names)
{
    kept pid, other, got;
    gr_test_args *a;
    uint64_t ref;

    spawn_echo(&pid);
    spawn_echo(&other);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "worker");
    gr_test_args_raw(a, pid.o);
    run_str("register", a, "ok");
    a = gr_test_args_new(1);
    gr_test_args_str(a, "worker");
    ref = next_ref++;
    gr_test_rpc_dispatch(rpc, ref, "proc", "whereis", &a->sb, 5000);
    gr_test_args_free(a);
    keep(ref, &got);
    ck_assert_int_eq(got.o->type, MSGPACK_OBJECT_EXT);
    ck_assert_uint_eq(got.o->via.ext.size, pid.o->via.ext.size);
    ck_assert(memcmp(got.o->via.ext.ptr, pid.o->via.ext.ptr, pid.o->via.ext.size) == 0);
    unkeep(&got);
    /* call and send by name */
    {
        msgpack_object name = {.type = MSGPACK_OBJECT_STR, .via.str = {6, "worker"}};

        a = gr_test_args_new(2);
        gr_test_args_str(a, "worker");
        gr_test_args_str(a, "hello");
        run_str("send", a, "ok");
        ck_assert_uint_eq(call_count(&name), 1);
    }
    /* taken, already named, unknown, remote, bad */
    a = gr_test_args_new(2);
    gr_test_args_str(a, "worker");
    gr_test_args_raw(a, other.o);
    run_err("register", a, GR_ENAMETAKEN);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "second");
    gr_test_args_raw(a, pid.o);
    run_err("register", a, GR_EALREADY);
    a = gr_test_args_new(1);
    gr_test_args_str(a, "nobody");
    run_err("whereis", a, GR_ENONAME);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "far");
    args_remote_pid(a);
    run_err("register", a, GR_ENOCONN);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "byname");
    gr_test_args_str(a, "worker"); /* register takes a pid, not a name */
    run_err("register", a, GR_EBADARG);
    run_err("whereis", NULL, GR_EBADARG);
    /* a dead process cannot be registered; its name goes with it */
    run_str("kill", pid_args(&pid, 1), "ok");
    a = gr_test_args_new(1);
    gr_test_args_str(a, "worker");
    run_err("whereis", a, GR_ENONAME);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "late");
    gr_test_args_raw(a, pid.o);
    run_err("register", a, GR_ENOPROC);
    unkeep(&pid);
    unkeep(&other);
}
END_TEST

START_TEST(list)
{
    kept pid, named;
    gr_test_args *a;

    ck_assert_int_eq(ans.a[run("list", NULL, 5000)].status, 0); /* empty is fine */
    spawn_echo(&pid);
    spawn_echo(&named);
    a = gr_test_args_new(2);
    gr_test_args_str(a, "listed");
    gr_test_args_raw(a, named.o);
    run_str("register", a, "ok");
    ck_assert(listed(&pid, NULL));
    ck_assert(listed(&named, "listed"));
    run_str("kill", pid_args(&pid, 1), "ok");
    ck_assert(!listed(&pid, NULL));
    ck_assert(listed(&named, "listed"));
    a = gr_test_args_new(1);
    gr_test_args_str(a, "many");
    run_err("list", a, GR_EBADARG);
    a = gr_test_args_new(1);
    msgpack_pack_int(&a->pk, 0);
    run_err("list", a, GR_EBADARG);
    a = gr_test_args_new(2);
    msgpack_pack_int(&a->pk, 1);
    msgpack_pack_int(&a->pk, 1);
    run_err("list", a, GR_EBADARG); /* only proc.snapshot takes a cursor */
    a = gr_test_args_new(2);
    msgpack_pack_int(&a->pk, 1);
    gr_test_args_str(a, "cursor");
    run_err("snapshot", a, GR_EBADARG);
    a = gr_test_args_new(3);
    msgpack_pack_int(&a->pk, 1);
    msgpack_pack_int(&a->pk, 1);
    msgpack_pack_int(&a->pk, 1);
    run_err("snapshot", a, GR_EBADARG);
    unkeep(&pid);
    unkeep(&named);
}
END_TEST

/* Does proc.FN(args) (list or snapshot's "processes") hold a process with this
 * pid id, or (pid NULL) this behaviour? Returns the entries counted. */
static bool list_has(const msgpack_object *arr, const girder_pid *pid, const char *beh)
{
    for (uint32_t j = 0; j < arr->via.array.size; j++) {
        const msgpack_object *m = &arr->via.array.ptr[j];
        gr_term_id id;

        ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
        for (uint32_t k = 0; k < m->via.map.size; k++) {
            const msgpack_object *key = &m->via.map.ptr[k].key, *val = &m->via.map.ptr[k].val;

            if (pid && gr_term_is_str(key, "pid") &&
                gr_term_parse_id(val, GR_TERM_EXT_PID, &id) == 0 && id.id == pid->id) {
                return true;
            }
            if (!pid && gr_term_is_str(key, "behaviour") && gr_term_is_str(val, beh)) {
                return true;
            }
        }
    }
    return false;
}

/* Is entry e (a list map) of behaviour beh? */
static bool list_has_beh(const msgpack_object *e, const char *beh)
{
    for (uint32_t k = 0; k < e->via.map.size; k++) {
        if (gr_term_is_str(&e->via.map.ptr[k].key, "behaviour")) {
            return gr_term_is_str(&e->via.map.ptr[k].val, beh);
        }
    }
    return false;
}

START_TEST(list_everything)
{
    /* Not only what the proc module spawned: a process spawned by anyone else,
     * unlinked and unnamed, the services, and rpc workers (the list's own). */
    msgpack_unpacked up;
    const msgpack_object *o, *procs = NULL, *total = NULL, *trunc = NULL;
    girder_pid pid;
    gr_test_args *a;
    size_t i;

    ck_assert_int_eq(gr_rt_spawn(rt, &silent, NULL, &pid), 0);
    i = run("list", NULL, 5000);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert(list_has(o, &pid, NULL));
    ck_assert(list_has(o, NULL, "rpc_worker"));
    ck_assert(list_has(o, NULL, "silent"));
    msgpack_unpacked_destroy(&up);

    /* proc.snapshot(1): one entry, the true total, truncated. */
    a = gr_test_args_new(1);
    msgpack_pack_int(&a->pk, 1);
    i = run("snapshot", a, 5000);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t k = 0; k < o->via.map.size; k++) {
        const msgpack_object *key = &o->via.map.ptr[k].key;

        if (gr_term_is_str(key, "processes")) {
            procs = &o->via.map.ptr[k].val;
        } else if (gr_term_is_str(key, "total")) {
            total = &o->via.map.ptr[k].val;
        } else if (gr_term_is_str(key, "truncated")) {
            trunc = &o->via.map.ptr[k].val;
        }
    }
    ck_assert(procs && total && trunc);
    ck_assert_int_eq(procs->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(procs->via.array.size, 1);
    ck_assert_int_eq(total->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_ge(total->via.u64, 2); /* silent + this worker */
    ck_assert(trunc->type == MSGPACK_OBJECT_BOOLEAN && trunc->via.boolean);
    msgpack_unpacked_destroy(&up);

    /* list(2) with three schedulers answering: the two lowest pids. The
     * processes alive at both lists (all but rpc workers) bound them: both
     * are at most the second-lowest such pid of the full list. */
    {
        msgpack_unpacked up2;
        const msgpack_object *all, *two;
        uint64_t ids[2], bound = 0;
        girder_pid more;
        int seen = 0;
        size_t j;

        for (int k = 0; k < 6; k++) {
            ck_assert_int_eq(gr_rt_spawn(rt, &silent, NULL, &more), 0);
        }
        i = run("list", NULL, 5000);
        all = gr_test_answers_term(&ans, i, &up);
        for (uint32_t k = 0; k < all->via.array.size && seen < 2; k++) {
            const msgpack_object *e = &all->via.array.ptr[k];
            gr_term_id id;

            if (!list_has_beh(e, "rpc_worker")) {
                ck_assert_int_eq(gr_term_parse_id(&e->via.map.ptr[0].val, GR_TERM_EXT_PID, &id), 0);
                bound = id.id;
                seen++;
            }
        }
        ck_assert_int_eq(seen, 2);
        a = gr_test_args_new(1);
        msgpack_pack_int(&a->pk, 2);
        j = run("list", a, 5000);
        two = gr_test_answers_term(&ans, j, &up2);
        ck_assert_uint_eq(two->via.array.size, 2);
        for (uint32_t k = 0; k < 2; k++) {
            gr_term_id id;

            ck_assert_int_eq(
                gr_term_parse_id(&two->via.array.ptr[k].via.map.ptr[0].val, GR_TERM_EXT_PID, &id),
                0);
            ids[k] = id.id;
            ck_assert_uint_le(ids[k], bound);
        }
        ck_assert_uint_lt(ids[0], ids[1]);
        msgpack_unpacked_destroy(&up2);
        msgpack_unpacked_destroy(&up);
    }

    /* Not truncated: every process. */
    i = run("snapshot", NULL, 5000);
    o = gr_test_answers_term(&ans, i, &up);
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    ck_assert(gr_term_is_str(&o->via.map.ptr[2].key, "truncated"));
    ck_assert(o->via.map.ptr[2].val.type == MSGPACK_OBJECT_BOOLEAN &&
              !o->via.map.ptr[2].val.via.boolean);
    ck_assert(list_has(&o->via.map.ptr[0].val, &pid, NULL));
    ck_assert_uint_eq(o->via.map.ptr[1].val.via.u64, o->via.map.ptr[0].val.via.array.size);
    msgpack_unpacked_destroy(&up);
}
END_TEST

/* The value of key k in map m, or NULL. */
static const msgpack_object *map_val(const msgpack_object *m, const char *k)
{
    ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        if (gr_term_is_str(&m->via.map.ptr[i].key, k)) {
            return &m->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/* proc.snapshot pages: 300 processes listed 7 at a time, each exactly once, in
 * pid order; "next" is nil only on the last page; no cursor = the first page. */
START_TEST(snapshot_pages)
{
    enum { N = 300 };
    girder_pid pids[N];
    unsigned seen[N] = {0};
    uint64_t cursor = 0, last = 0;
    bool first = true;
    int pages = 0;

    for (int k = 0; k < N; k++) {
        ck_assert_int_eq(gr_rt_spawn(rt, &silent, NULL, &pids[k]), 0);
    }
    for (;;) {
        gr_test_args *a = gr_test_args_new(first ? 1 : 2);
        const msgpack_object *o, *procs, *next, *trunc;
        msgpack_unpacked up;
        size_t i;

        msgpack_pack_int(&a->pk, 7);
        if (!first) {
            msgpack_pack_uint64(&a->pk, cursor);
        }
        i = run("snapshot", a, 5000);
        o = gr_test_answers_term(&ans, i, &up);
        procs = map_val(o, "processes");
        next = map_val(o, "next");
        trunc = map_val(o, "truncated");
        ck_assert(procs && next && trunc && map_val(o, "total"));
        ck_assert_int_eq(procs->type, MSGPACK_OBJECT_ARRAY);
        for (uint32_t j = 0; j < procs->via.array.size; j++) {
            gr_term_id id;

            ck_assert_int_eq(
                gr_term_parse_id(map_val(&procs->via.array.ptr[j], "pid"), GR_TERM_EXT_PID, &id),
                0);
            ck_assert_uint_gt(id.id, last); /* ascending across pages: never twice */
            last = id.id;
            for (int k = 0; k < N; k++) {
                seen[k] += pids[k].id == id.id;
            }
        }
        ck_assert(trunc->type == MSGPACK_OBJECT_BOOLEAN);
        if (next->type == MSGPACK_OBJECT_NIL) {
            ck_assert(!trunc->via.boolean);
            msgpack_unpacked_destroy(&up);
            break;
        }
        ck_assert(trunc->via.boolean);
        ck_assert_int_eq(next->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(procs->via.array.size, 7);
        ck_assert_uint_eq(next->via.u64, last);
        cursor = next->via.u64;
        first = false;
        msgpack_unpacked_destroy(&up);
        ck_assert_int_lt(++pages, 1000);
    }
    ck_assert_int_ge(pages, N / 7);
    for (int k = 0; k < N; k++) {
        ck_assert_msg(seen[k] == 1, "process %d listed %u times", k, seen[k]);
    }
}
END_TEST

/* proc.snapshot ranked: 3,000 idle processes, then an echo spawned last that
 * handles 300 messages. Ranked by work or handled over ALL processes, the
 * echo comes first though its pid is above the first page; the entries are in
 * rank order, "truncated" is set and "next" is nil (a ranked list does not
 * page). The first page by pid does not hold it. An unknown key: bad_arg. */
START_TEST(snapshot_ranked)
{
    enum { IDLE = 3000, MSGS = 300, TOP = 5 };
    static const char *const keys[] = {"work", "handled"};
    girder_pid idle;
    gr_term_id echo_id;
    kept echo;

    for (int k = 0; k < IDLE; k++) {
        ck_assert_int_eq(gr_rt_spawn(rt, &silent, NULL, &idle), 0);
    }
    spawn_echo(&echo);
    ck_assert_int_eq(gr_term_parse_id(echo.o, GR_TERM_EXT_PID, &echo_id), 0);
    for (int n = 0; n < MSGS; n++) {
        gr_test_args *a = pid_args(&echo, 2);

        msgpack_pack_int(&a->pk, n);
        run_str("send", a, "ok");
    }
    ck_assert_uint_eq(call_count(echo.o), MSGS); /* every send handled before the count */
    for (size_t k = 0; k < 2; k++) {
        gr_test_args *a = gr_test_args_new(3);
        const msgpack_object *o, *procs;
        msgpack_unpacked up;
        uint64_t prev = UINT64_MAX;
        gr_term_id id;
        size_t i;

        msgpack_pack_int(&a->pk, TOP);
        msgpack_pack_nil(&a->pk);
        gr_test_args_str(a, keys[k]);
        i = run("snapshot", a, 5000);
        o = gr_test_answers_term(&ans, i, &up);
        procs = map_val(o, "processes");
        ck_assert_uint_eq(procs->via.array.size, TOP);
        ck_assert(map_val(o, "truncated")->via.boolean);
        ck_assert_int_eq(map_val(o, "next")->type, MSGPACK_OBJECT_NIL);
        ck_assert_uint_gt(map_val(o, "total")->via.u64, IDLE);
        ck_assert_int_eq(
            gr_term_parse_id(map_val(&procs->via.array.ptr[0], "pid"), GR_TERM_EXT_PID, &id), 0);
        ck_assert_msg(id.id == echo_id.id, "ranked by %s: the busy echo first", keys[k]);
        for (uint32_t j = 0; j < procs->via.array.size; j++) {
            uint64_t v = map_val(&procs->via.array.ptr[j], keys[k])->via.u64;

            ck_assert_uint_le(v, prev); /* largest first */
            prev = v;
        }
        msgpack_unpacked_destroy(&up);
    }
    {
        gr_test_args *a = gr_test_args_new(1);
        const msgpack_object *o, *procs;
        msgpack_unpacked up;
        size_t i;

        msgpack_pack_int(&a->pk, 1024);
        i = run("snapshot", a, 5000);
        o = gr_test_answers_term(&ans, i, &up);
        procs = map_val(o, "processes");
        for (uint32_t j = 0; j < procs->via.array.size; j++) {
            gr_term_id id;

            ck_assert_int_eq(
                gr_term_parse_id(map_val(&procs->via.array.ptr[j], "pid"), GR_TERM_EXT_PID, &id),
                0);
            ck_assert(id.id != echo_id.id); /* by pid, the first page stops below it */
        }
        msgpack_unpacked_destroy(&up);
    }
    {
        gr_test_args *a = gr_test_args_new(3);

        msgpack_pack_int(&a->pk, 1);
        msgpack_pack_nil(&a->pk);
        gr_test_args_str(a, "colour");
        run_err("snapshot", a, GR_EBADARG);
    }
    unkeep(&echo);
}
END_TEST

/* Everything answered once and no worker left behind, also under load. */
START_TEST(many_calls)
{
    enum { N = 500 };
    kept pid;
    uint64_t first = next_ref;

    spawn_echo(&pid);
    for (int n = 0; n < N; n++) {
        gr_test_args *a = pid_args(&pid, 2);
        uint64_t ref = next_ref++;

        msgpack_pack_int(&a->pk, n);
        gr_test_rpc_dispatch(rpc, ref, "proc", n % 2 ? "send" : "call", &a->sb, 5000);
        gr_test_args_free(a);
    }
    for (uint64_t r = first + 1; r < next_ref; r++) {
        ck_assert_int_eq(ans.a[gr_test_answers_wait(&ans, r, WAIT_MS)].status, 0);
        ck_assert_uint_eq(gr_test_answers_count(&ans, r), 1);
    }
    ck_assert_uint_eq(call_count(pid.o), N / 2);
    gr_test_wait_until(gr_rpc_inflight(rpc) == 0, 5000, "workers still in flight");
    ck_assert_uint_eq(gr_rpc_inflight(rpc), 0);
    unkeep(&pid);
}
END_TEST

static Suite *proc_suite(void)
{
    Suite *s = suite_create("proc");
    TCase *tc = gr_test_tcase(s, "core", setup, teardown, 60);

    gr_test_add(tc, spawn, spawn_spreads, send_and_call, call_timeout, info, kill, names, list,
                list_everything, snapshot_pages, snapshot_ranked, many_calls, send_after);
    return s;
}

int main(void)
{
    return gr_test_run(proc_suite);
}
