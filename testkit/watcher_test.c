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

typedef struct req {
    girder_pid server;  /* whom to call */
    const char *kind;   /* first element of the request array */
    bool with_pid;      /* [kind, pid] ... */
    girder_pid pid;     /* ... this one */
    const char *atom;   /* or, if set, the request is this string (echo's requests) */
    const char *reason; /* ["stop", reason] for echo when set */
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
    } else if (q->atom) {
        msgpack_pack_str_with_body(pk, q->atom, strlen(q->atom));
    } else {
        msgpack_pack_array(pk, q->with_pid ? 2 : 1);
        msgpack_pack_str_with_body(pk, q->kind, strlen(q->kind));
        if (q->with_pid) {
            r = girder_pack_pid(ctx, pk, q->pid);
        }
    }
    return r;
}

typedef gr_test_reply reply;

/* Call and wait for the "$reply" (the probe traps exits: an EXIT or DOWN of
 * its own is skipped). */
static void call(req *q, reply *rp)
{
    gr_test_call(probe, q->server, pack_req, q, rp);
}

/* ["monitor", pid] -> the new monitor's ref id */
static uint64_t monitor(girder_pid w, girder_pid pid)
{
    req q = {.server = w, .kind = "monitor", .with_pid = true, .pid = pid};
    gr_term_id id;
    reply rp;

    call(&q, &rp);
    ck_assert_int_eq(gr_term_parse_id(&rp.o, GR_TERM_EXT_REF, &id), 0);
    gr_test_reply_done(&rp);
    return id.id;
}

static void link_to(girder_pid w, girder_pid pid)
{
    req q = {.server = w, .kind = "link", .with_pid = true, .pid = pid};
    reply rp;

    call(&q, &rp);
    ck_assert(gr_term_is_str(&rp.o, "ok"));
    gr_test_reply_done(&rp);
}

/* Ask for the events until there are n (or TIMEOUT_MS, scaled, passed); rp keeps the
 * answer; returns the events array. */
static const msgpack_object *events_until(girder_pid w, uint32_t n, reply *rp)
{
    req q = {.server = w, .kind = "events"};
    gr_test_deadline dl = gr_test_deadline_in(TIMEOUT_MS);
    const msgpack_object *ev;

    for (;;) {
        call(&q, rp);
        ev = gr_test_map_get(&rp->o, "events");
        ck_assert_ptr_nonnull(ev);
        ck_assert_int_eq(ev->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(gr_test_map_get(&rp->o, "dropped")->via.u64, 0);
        if (ev->via.array.size >= n) {
            ck_assert_uint_eq(ev->via.array.size, n);
            return ev;
        }
        gr_test_reply_done(rp);
        ck_assert_msg(gr_test_deadline_wait(&dl), "never %u events", n);
    }
}

/* One event: kind, pid, reason, the monitor ref (DOWN: ref id; EXIT: 0), and
 * at_ms within [t0, t1] ms. */
static void expect_event(const msgpack_object *e, const char *kind, girder_pid pid,
                         const char *reason, uint64_t ref, uint64_t t0, uint64_t t1)
{
    const msgpack_object *at = gr_test_map_get(e, "at_ms");
    gr_term_id id;

    ck_assert(gr_term_is_str(gr_test_map_get(e, "kind"), kind));
    ck_assert(gr_test_is_pid(gr_test_map_get(e, "pid"), pid));
    ck_assert_msg(gr_term_is_str(gr_test_map_get(e, "reason"), reason), "expected reason %s",
                  reason);
    ck_assert_int_eq(at->type, MSGPACK_OBJECT_FLOAT64);
    ck_assert(at->via.f64 >= (double)t0 && at->via.f64 <= (double)t1 + 1.0);
    if (ref) {
        ck_assert_int_eq(gr_term_parse_id(gr_test_map_get(e, "ref"), GR_TERM_EXT_REF, &id), 0);
        ck_assert_uint_eq(id.id, ref);
    } else {
        ck_assert_ptr_null(gr_test_map_get(e, "ref"));
    }
}

static void setup(void)
{
    gr_test_rt_start(&(gr_rt_config){.node_name = NODE, .schedulers = 2},
                     (gr_test_prepare_fn[]){gr_services_register, gr_testkit_register, NULL}, &rt,
                     &probe);
    ck_assert_ptr_eq(girder_behaviour_find(rt, GR_WATCHER_NAME), &gr_watcher_behaviour);
}

static void teardown(void)
{
    gr_test_rt_stop(&rt, &probe);
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
    girder_pid w = gr_test_spawn(rt, &gr_watcher_behaviour);
    girder_pid e1 = gr_test_spawn(rt, &gr_echo_behaviour),
               e2 = gr_test_spawn(rt, &gr_echo_behaviour);
    req stop = {.server = e1, .reason = "bye"};
    exit_args boom = {e2, "boom"};
    const msgpack_object *ev;
    uint64_t t0, t1, mref;
    reply rp;

    mref = monitor(w, e1);
    link_to(w, e2);
    ck_assert_ptr_nonnull(events_until(w, 0, &rp));
    gr_test_reply_done(&rp);

    t0 = gr_clock_ms();
    call(&stop, &rp); /* echo answers "ok", then stops with "bye" */
    ck_assert(gr_term_is_str(&rp.o, "ok"));
    gr_test_reply_done(&rp);
    ck_assert_int_eq(gr_probe_run(probe, do_exit, &boom), 0); /* kills e2: it does not trap */
    ev = events_until(w, 2, &rp);
    t1 = gr_clock_ms();
    /* the two come from different processes: either order */
    if (gr_term_is_str(gr_test_map_get(&ev->via.array.ptr[0], "kind"), "DOWN")) {
        expect_event(&ev->via.array.ptr[0], "DOWN", e1, "bye", mref, t0, t1);
        expect_event(&ev->via.array.ptr[1], "EXIT", e2, "boom", 0, t0, t1);
    } else {
        expect_event(&ev->via.array.ptr[0], "EXIT", e2, "boom", 0, t0, t1);
        expect_event(&ev->via.array.ptr[1], "DOWN", e1, "bye", mref, t0, t1);
    }
    gr_test_reply_done(&rp);

    /* the watcher trapped the exit: it is alive and the log did not grow */
    ck_assert_uint_eq(events_until(w, 2, &rp)->via.array.size, 2);
    gr_test_reply_done(&rp);
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
        ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(TIMEOUT_MS), &m), 0);
        msgpack_unpacked_init(&up);
        ck_assert_int_eq(girder_msg_unpack(m, &up), 0);
        down = up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 5 &&
               gr_term_is_str(&up.data.via.array.ptr[0], "DOWN") &&
               gr_test_is_pid(&up.data.via.array.ptr[3], pid);
        msgpack_unpacked_destroy(&up);
        girder_msg_unref(m);
    } while (!down);
}

START_TEST(dead_pid_is_noproc)
{
    girder_pid w = gr_test_spawn(rt, &gr_watcher_behaviour),
               e = gr_test_spawn(rt, &gr_echo_behaviour);
    req stop = {.server = e, .reason = "normal"};
    const msgpack_object *ev;
    uint64_t t0, t1, mref;
    reply rp;

    call(&stop, &rp);
    gr_test_reply_done(&rp);
    wait_dead(e);
    t0 = gr_clock_ms();
    mref = monitor(w, e);
    link_to(w, e);
    ev = events_until(w, 2, &rp);
    t1 = gr_clock_ms();
    expect_event(&ev->via.array.ptr[0], "DOWN", e, "noproc", mref, t0, t1);
    expect_event(&ev->via.array.ptr[1], "EXIT", e, "noproc", 0, t0, t1);
    gr_test_reply_done(&rp);
}
END_TEST

START_TEST(bad_requests)
{
    girder_pid w = gr_test_spawn(rt, &gr_watcher_behaviour);
    req q = {.server = w, .kind = "monitor"}; /* no pid */
    reply rp;

    call(&q, &rp);
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
    q = (req){.server = w, .kind = "bogus"};
    call(&q, &rp);
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
    q = (req){.server = w, .atom = "events"}; /* not an array */
    call(&q, &rp);
    gr_test_expect_error(&rp.o, "badarg");
    gr_test_reply_done(&rp);
}
END_TEST

static Suite *watcher_suite(void)
{
    Suite *s = suite_create("watcher");
    TCase *tc = gr_test_tcase(s, "requests", setup, teardown, 30);

    gr_test_add(tc, down_and_exit_logged_once_with_time, dead_pid_is_noproc, bad_requests);
    return s;
}

int main(void)
{
    return gr_test_run(watcher_suite);
}
