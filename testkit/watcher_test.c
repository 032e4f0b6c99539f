/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watcher_test.c - unit tests for the `watcher` behaviour: a monitor's DOWN
 * and a link's EXIT (trapped: the watcher survives) are logged once each with
 * the monitor ref, the pid, the reason and a receive time inside the window
 * of the test's own monotonic clock; a dead pid gives noproc for both; bad
 * requests. Every test starts its own two-scheduler runtime and drives the
 * processes through a probe.
 */
#include "services/echo.h"
#include "services/services.h"
#include "testkit/testkit.h"
#include "testkit/watcher.h"

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

/* ---- helpers ----------------------------------------------------------------------------------
 */

typedef struct req {
    girder_pid server;  /* whom to call */
    const char *kind;   /* first element of the request array */
    bool with_pid;      /* [kind, pid] ... */
    girder_pid pid;     /* ... this one */
    const char *atom;   /* or, if set, the request is this string (echo's requests) */
    const char *reason; /* ["stop", reason] for echo when set */
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
    } else if (q->atom) {
        msgpack_pack_str_with_body(&pk, q->atom, strlen(q->atom));
    } else {
        msgpack_pack_array(&pk, q->with_pid ? 2 : 1);
        msgpack_pack_str_with_body(&pk, q->kind, strlen(q->kind));
        if (q->with_pid) {
            r = girder_pack_pid(ctx, &pk, q->pid);
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

/* Call and wait for the "$reply" (the probe traps exits: an EXIT or DOWN of
 * its own is skipped). */
static void call(req *q, reply *rp)
{
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

static girder_pid spawn(const girder_behaviour *b)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, b, NULL, &pid), 0);
    return pid;
}

/* ["monitor", pid] -> the new monitor's ref id */
static uint64_t monitor(girder_pid w, girder_pid pid)
{
    req q = {.server = w, .kind = "monitor", .with_pid = true, .pid = pid};
    gr_term_id id;
    reply rp;

    call(&q, &rp);
    ck_assert_int_eq(gr_term_parse_id(&rp.o, GR_TERM_EXT_REF, &id), 0);
    reply_done(&rp);
    return id.id;
}

static void link_to(girder_pid w, girder_pid pid)
{
    req q = {.server = w, .kind = "link", .with_pid = true, .pid = pid};
    reply rp;

    call(&q, &rp);
    ck_assert(gr_term_is_str(&rp.o, "ok"));
    reply_done(&rp);
}

/* Ask for the events until there are n (or TIMEOUT_MS passed); rp keeps the
 * answer; returns the events array. */
static const msgpack_object *events_until(girder_pid w, uint32_t n, reply *rp)
{
    req q = {.server = w, .kind = "events"};
    uint64_t deadline = gr_clock_ms() + TIMEOUT_MS;
    const msgpack_object *ev;

    for (;;) {
        call(&q, rp);
        ev = map_get(&rp->o, "events");
        ck_assert_ptr_nonnull(ev);
        ck_assert_int_eq(ev->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(map_get(&rp->o, "dropped")->via.u64, 0);
        if (ev->via.array.size >= n) {
            ck_assert_uint_eq(ev->via.array.size, n);
            return ev;
        }
        reply_done(rp);
        ck_assert_msg(gr_clock_ms() < deadline, "never %u events", n);
    }
}

/* Is o the pid `pid`? */
static bool is_pid(const msgpack_object *o, girder_pid pid)
{
    gr_term_id id;

    return gr_term_parse_id(o, GR_TERM_EXT_PID, &id) == 0 && id.id == pid.id &&
           id.creation == pid.creation;
}

/* One event: kind, pid, reason, the monitor ref (DOWN: ref id; EXIT: 0), and
 * at_ms within [t0, t1] ms. */
static void expect_event(const msgpack_object *e, const char *kind, girder_pid pid,
                         const char *reason, uint64_t ref, uint64_t t0, uint64_t t1)
{
    const msgpack_object *at = map_get(e, "at_ms");
    gr_term_id id;

    ck_assert(gr_term_is_str(map_get(e, "kind"), kind));
    ck_assert(is_pid(map_get(e, "pid"), pid));
    ck_assert_msg(gr_term_is_str(map_get(e, "reason"), reason), "expected reason %s", reason);
    ck_assert_int_eq(at->type, MSGPACK_OBJECT_FLOAT64);
    ck_assert(at->via.f64 >= (double)t0 && at->via.f64 <= (double)t1 + 1.0);
    if (ref) {
        ck_assert_int_eq(gr_term_parse_id(map_get(e, "ref"), GR_TERM_EXT_REF, &id), 0);
        ck_assert_uint_eq(id.id, ref);
    } else {
        ck_assert_ptr_null(map_get(e, "ref"));
    }
}

static void setup(void)
{
    gr_rt_config cfg = {.node_name = NODE, .schedulers = 2};

    ck_assert_int_eq(gr_rt_new(&cfg, &rt), 0);
    ck_assert_int_eq(gr_services_register(rt), 0);
    ck_assert_int_eq(gr_testkit_register(rt), 0);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_WATCHER_NAME), &gr_watcher_behaviour);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
}

static void teardown(void)
{
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    rt = gr_rt_free(rt);
}

/* ---- tests ------------------------------------------------------------------------------------
 */

typedef struct exit_args {
    girder_pid to;
    const char *reason;
} exit_args;

static int do_exit(girder_ctx *ctx, void *arg)
{
    exit_args *x = arg;
    girder_msg *m = girder_msg_atom(x->reason);
    int r;

    if (!m) {
        return -ENOMEM;
    }
    r = girder_exit(ctx, x->to, m);
    girder_msg_unref(m);
    return r;
}

START_TEST(down_and_exit_logged_once_with_time)
{
    girder_pid w = spawn(&gr_watcher_behaviour);
    girder_pid e1 = spawn(&gr_echo_behaviour), e2 = spawn(&gr_echo_behaviour);
    req stop = {.server = e1, .reason = "bye"};
    exit_args boom = {e2, "boom"};
    const msgpack_object *ev;
    uint64_t t0, t1, mref;
    reply rp;

    mref = monitor(w, e1);
    link_to(w, e2);
    ev = events_until(w, 0, &rp);
    reply_done(&rp);

    t0 = gr_clock_ms();
    call(&stop, &rp); /* echo answers "ok", then stops with "bye" */
    ck_assert(gr_term_is_str(&rp.o, "ok"));
    reply_done(&rp);
    ck_assert_int_eq(gr_probe_run(probe, do_exit, &boom), 0); /* kills e2: it does not trap */
    ev = events_until(w, 2, &rp);
    t1 = gr_clock_ms();
    /* the two come from different processes: either order */
    if (gr_term_is_str(map_get(&ev->via.array.ptr[0], "kind"), "DOWN")) {
        expect_event(&ev->via.array.ptr[0], "DOWN", e1, "bye", mref, t0, t1);
        expect_event(&ev->via.array.ptr[1], "EXIT", e2, "boom", 0, t0, t1);
    } else {
        expect_event(&ev->via.array.ptr[0], "EXIT", e2, "boom", 0, t0, t1);
        expect_event(&ev->via.array.ptr[1], "DOWN", e1, "bye", mref, t0, t1);
    }
    reply_done(&rp);

    /* the watcher trapped the exit: it is alive and the log did not grow */
    ev = events_until(w, 2, &rp);
    reply_done(&rp);
}
END_TEST

static int probe_monitor(girder_ctx *ctx, void *arg)
{
    girder_ref ref;

    return girder_monitor(ctx, *(girder_pid *)arg, &ref);
}

/* Wait until the probe gets a DOWN for pid (it is dead then). */
static void wait_dead(girder_pid pid)
{
    girder_msg *m;
    msgpack_unpacked up;
    bool down;

    ck_assert_int_eq(gr_probe_run(probe, probe_monitor, &pid), 0);
    do {
        ck_assert_int_eq(gr_probe_recv(probe, TIMEOUT_MS, &m), 0);
        msgpack_unpacked_init(&up);
        ck_assert_int_eq(girder_msg_unpack(m, &up), 0);
        down = up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 5 &&
               gr_term_is_str(&up.data.via.array.ptr[0], "DOWN") &&
               is_pid(&up.data.via.array.ptr[3], pid);
        msgpack_unpacked_destroy(&up);
        girder_msg_unref(m);
    } while (!down);
}

START_TEST(dead_pid_is_noproc)
{
    girder_pid w = spawn(&gr_watcher_behaviour), e = spawn(&gr_echo_behaviour);
    req stop = {.server = e, .reason = "normal"};
    const msgpack_object *ev;
    uint64_t t0, t1, mref;
    reply rp;

    call(&stop, &rp);
    reply_done(&rp);
    wait_dead(e);
    t0 = gr_clock_ms();
    mref = monitor(w, e);
    link_to(w, e);
    ev = events_until(w, 2, &rp);
    t1 = gr_clock_ms();
    expect_event(&ev->via.array.ptr[0], "DOWN", e, "noproc", mref, t0, t1);
    expect_event(&ev->via.array.ptr[1], "EXIT", e, "noproc", 0, t0, t1);
    reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    girder_pid w = spawn(&gr_watcher_behaviour);
    req q = {.server = w, .kind = "monitor"}; /* no pid */
    reply rp;

    call(&q, &rp);
    expect_error(&rp.o, "badarg");
    reply_done(&rp);
    q = (req){.server = w, .kind = "bogus"};
    call(&q, &rp);
    expect_error(&rp.o, "badarg");
    reply_done(&rp);
    q = (req){.server = w, .atom = "events"}; /* not an array */
    call(&q, &rp);
    expect_error(&rp.o, "badarg");
    reply_done(&rp);
}
END_TEST

static Suite *watcher_suite(void)
{
    Suite *s = suite_create("watcher");
    TCase *tc = gr_test_tcase(s, "requests", setup, teardown, 30);

    tcase_add_test(tc, down_and_exit_logged_once_with_time);
    tcase_add_test(tc, dead_pid_is_noproc);
    tcase_add_test(tc, bad_requests);
    return s;
}

int main(void)
{
    return gr_test_run(watcher_suite);
}
