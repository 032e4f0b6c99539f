/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime_test.c - Check tests for the local runtime: spawn, send, ordering,
 * links, exits, monitors, names, timers, info, fairness, incarnations, shutdown.
 *
 * Tests drive real runtimes with real scheduler threads. The test thread talks
 * to processes through a probe (a process with a thread-safe mailbox) and makes
 * any process call the API with gr_rt_run_in. Every wait has a timeout, so a
 * broken guarantee fails the test instead of hanging it.
 */
#include "girder/girder.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "runtime/rt_int.h" /* a scheduler's sleeping flag (held wake-ups) */
#include "util/clock.h"

#include "testing/gr_test_rt.h"
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 5000

/* ---- fixture ---------------------------------------------------------------------- */

static girder_rt *rt;
static gr_probe *probe;

static void start_rt(unsigned scheds)
{
    gr_rt_config cfg = {.node_name = "test@127.0.0.1", .creation = 7, .schedulers = scheds};

    gr_test_rt_start(&cfg, NULL, &rt, &probe);
}

static void setup2(void)
{
    start_rt(2);
}

static void setup1(void)
{
    start_rt(1);
}

static void teardown(void)
{
    gr_test_rt_stop(&rt, &probe);
}

/* ---- term helpers ------------------------------------------------------------------ */

/* Receive one message and unpack it; the caller destroys `u`. */
static void recv_obj(msgpack_unpacked *u, girder_msg **ret)
{
    gr_test_recv(probe, WAIT_MS, u, ret);
}

/* The probe receives the integers 0..n-1, in that order. */
static void recv_numbered(int n)
{
    for (int i = 0; i < n; i++) {
        msgpack_unpacked u;
        girder_msg *m;

        recv_obj(&u, &m);
        ck_assert_uint_eq(u.data.via.u64, (uint64_t)i);
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(m);
    }
}

static void expect_none(int ms)
{
    gr_test_expect_none(probe, ms);
}

/* Expect ["DOWN", _, "process", pid, reason_atom]; reason2 may also match. */
static void expect_down2(girder_pid pid, const char *reason, const char *reason2)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a;

    recv_obj(&u, &m);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 5);
    a = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&a[0], "DOWN"));
    ck_assert(gr_term_is_str(&a[2], "process"));
    ck_assert(gr_test_is_pid(&a[3], pid));
    ck_assert_msg(gr_term_is_str(&a[4], reason) || (reason2 && gr_term_is_str(&a[4], reason2)),
                  "DOWN reason is not %s", reason);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

static void expect_down(girder_pid pid, const char *reason)
{
    expect_down2(pid, reason, NULL);
}

/* Expect ["EXIT", pid, reason_atom]. */
static void expect_exit(girder_pid pid, const char *reason)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a;

    recv_obj(&u, &m);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 3);
    a = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&a[0], "EXIT"));
    ck_assert(gr_test_is_pid(&a[1], pid));
    ck_assert_msg(gr_term_is_str(&a[2], reason), "EXIT reason is not %s", reason);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

static void expect_atom(const char *atom)
{
    girder_msg *m = NULL;

    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
    ck_assert_msg(girder_msg_is_atom(m, atom), "expected atom %s", atom);
    girder_msg_unref(m);
}

/* ---- test behaviour: the forwarder gr_test_fwd (gr_test_rt.h) ---------------------------- */

/* Spawn a forwarder reporting to the probe, from the test thread. */
static girder_pid spawn_fwd(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    girder_pid pid = gr_probe_pid(probe);
    girder_pid child;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, gr_rt_node_name(rt),
                                     strlen(gr_rt_node_name(rt)), pid.creation, pid.id),
                     0);
    arg = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(gr_rt_spawn(rt, &gr_test_fwd, arg, &child), 0);
    girder_msg_unref(arg);
    return child;
}

static void kill_pid(girder_pid pid)
{
    girder_msg *k = girder_msg_atom("kill");

    ck_assert_int_eq(gr_rt_exit(rt, pid, k), 0);
    girder_msg_unref(k);
}

static void send_atom(girder_pid to, const char *atom)
{
    ck_assert_int_eq(gr_rt_send(rt, to, girder_msg_atom(atom)), 0);
}

/* ---- closures run inside processes --------------------------------------------------------- */

typedef gr_test_op op;

static int do_trap(girder_ctx *ctx, void *a)
{
    girder_trap_exit(ctx, ((op *)a)->flag);
    return 0;
}

static int do_unregister(girder_ctx *ctx, void *a)
{
    return girder_unregister(ctx, ((op *)a)->name);
}

static int do_send_name(girder_ctx *ctx, void *a)
{
    op *o = a;
    girder_msg *m = girder_msg_atom(o->atom);
    int r = girder_send_name(ctx, o->name, m);

    if (r < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static int do_spawn(girder_ctx *ctx, void *a)
{
    op *o = a;

    return girder_spawn(ctx, &gr_test_fwd, o->arg, o->flags, &o->pid, &o->ref);
}

static int do_send_after(girder_ctx *ctx, void *a)
{
    op *o = a;

    return girder_send_after(ctx, o->pid, (uint64_t)o->n, girder_msg_atom(o->atom), &o->ref);
}

static int do_cancel(girder_ctx *ctx, void *a)
{
    return girder_cancel_timer(ctx, ((op *)a)->ref);
}

static int do_call(girder_ctx *ctx, void *a)
{
    op *o = a;
    girder_msg *req = girder_msg_atom(o->atom);
    int r = girder_call(ctx, o->pid, req, o->flag, &o->ref);

    girder_msg_unref(req);
    return r;
}

static int run_op(girder_pid in, int (*fn)(girder_ctx *, void *), op *o)
{
    return gr_rt_run_in(rt, in, fn, o);
}

static int probe_op(int (*fn)(girder_ctx *, void *), op *o)
{
    return gr_probe_run(probe, fn, o);
}

/* Wait until pid is dead, by monitoring it from the probe. The monitor may
 * arrive after the death: then the reason is "noproc". */
static void await_death(girder_pid pid, const char *reason)
{
    op o = {.pid = pid};

    ck_assert_int_eq(probe_op(gr_test_op_monitor, &o), 0);
    expect_down2(pid, reason, "noproc");
}

/* ---- tests: messages ------------------------------------------------------------------------ */

START_TEST(test_spawn_send_receive)
{
    girder_pid p = spawn_fwd();

    send_atom(p, "hello");
    expect_atom("hello");
    ck_assert_uint_ge(gr_rt_process_count(rt), 2);
}
END_TEST

START_TEST(test_ordering_per_pair)
{
    /* 20,000 messages from the probe (scheduler 0) to forwarders on both
     * schedulers, interleaved, come back in order per pair. */
    girder_pid a = spawn_fwd(), b = spawn_fwd();
    op oa = {.pid = a, .n = 20000}, ob = {.pid = b, .n = 20000};
    int next_a = 0, next_b = 0;

    ck_assert_uint_ne(a.id & 0xff, b.id & 0xff); /* placed on both schedulers */
    ck_assert_int_eq(probe_op(gr_test_op_send_seq, &oa), 0);
    ck_assert_int_eq(probe_op(gr_test_op_send_seq, &ob), 0);
    /* Both forwarders report to the probe; each stream must be ordered. We
     * cannot tell them apart by content, so check the merged stream is an
     * interleaving of two in-order sequences. */
    for (int i = 0; i < 40000; i++) {
        msgpack_unpacked u;
        girder_msg *m;
        int64_t v;

        recv_obj(&u, &m);
        ck_assert(u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER);
        v = (int64_t)u.data.via.u64;
        if (v == next_a && next_a >= next_b) {
            next_a++;
        } else if (v == next_b) {
            next_b++;
        } else if (v == next_a) {
            next_a++;
        } else {
            ck_abort_msg("out of order: got %lld, expected %d or %d", (long long)v, next_a, next_b);
        }
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(m);
    }
    ck_assert_int_eq(next_a + next_b, 40000);
}
END_TEST

START_TEST(test_ordering_cross_scheduler)
{
    /* A process on scheduler 1 sends 50,000 numbered messages to the probe's
     * scheduler: strictly in order. */
    girder_pid p = spawn_fwd();
    op o = {.pid = gr_probe_pid(probe), .n = 50000};

    if ((p.id & 0xff) == 0) {
        p = spawn_fwd();
    }
    ck_assert_uint_eq(p.id & 0xff, 1);
    ck_assert_int_eq(run_op(p, gr_test_op_send_seq, &o), 0);
    recv_numbered(50000);
}
END_TEST

/* o->n messages from gr_rt_msg_alloc_once, each a str of i % 31 + 1 bytes
 * 'a' + i % 26, sent to o->pid with gr_rt_send_once (their signal in their
 * own allocation). */
static int do_send_once(girder_ctx *ctx, void *a)
{
    op *o = a;

    for (int i = 0; i < o->n; i++) {
        size_t k = (size_t)(i % 31) + 1;
        uint8_t *d;
        girder_msg *m = gr_rt_msg_alloc_once(k + 1, &d);

        if (m == NULL) {
            return -ENOMEM;
        }
        d[0] = (uint8_t)(0xa0 | k); /* fixstr */
        memset(d + 1, 'a' + i % 26, k);
        if (gr_rt_send_once(ctx, o->pid, m) < 0) {
            girder_msg_unref(m);
            return -EIO;
        }
    }
    return 0;
}

static void expect_once_msgs(int n)
{
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)(i % 31) + 1;
        girder_msg *m = NULL;
        const uint8_t *d;

        ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
        ck_assert_uint_eq(girder_msg_size(m), k + 1);
        d = girder_msg_data(m);
        ck_assert_uint_eq(d[0], 0xa0 | k);
        for (size_t j = 1; j <= k; j++) {
            ck_assert_uint_eq(d[j], 'a' + i % 26);
        }
        girder_msg_unref(m);
    }
}

/* gr_rt_send_once: the signal inside the message's allocation is delivered
 * like any other (to itself on one scheduler, to a forwarder that sends the
 * same message on with an ordinary send, in order), and one sent to a dead
 * pid is dropped with its message (ASan: nothing leaks, nothing is used after
 * its free). */
START_TEST(test_send_once)
{
    op self = {.pid = gr_probe_pid(probe), .n = 200};
    girder_pid f = spawn_fwd();
    op fwd = {.pid = f, .n = 200};
    girder_pid dead = spawn_fwd();
    op gone = {.pid = dead, .n = 50};

    ck_assert_int_eq(probe_op(do_send_once, &self), 0);
    expect_once_msgs(self.n);
    ck_assert_int_eq(probe_op(do_send_once, &fwd), 0);
    expect_once_msgs(fwd.n);
    send_atom(dead, "stop");
    await_death(dead, "normal");
    ck_assert_int_eq(probe_op(do_send_once, &gone), 0);
    expect_none(100);
    send_atom(f, "stop");
    await_death(f, "normal");
}
END_TEST

/* do_send_held: n messages (positive fixints 0..n-1) from gr_rt_msg_alloc_once
 * sent to `to` with gr_rt_send_once_held, then the flush; the wake-up count
 * read around each step. */
typedef struct held_op {
    girder_pid to;                        /* receiver, on another scheduler */
    int n;                                /* messages, at most 128 */
    uint64_t w_before, w_sent, w_flushed; /* gr_rt_wakeups at each step */
} held_op;

static int do_send_held(girder_ctx *ctx, void *a)
{
    held_op *h = a;
    girder_rt *r = girder_runtime(ctx);
    gr_rt_wakes held = {0};

    h->w_before = gr_rt_wakeups(r);
    for (int i = 0; i < h->n; i++) {
        uint8_t *d;
        girder_msg *m = gr_rt_msg_alloc_once(1, &d);

        if (m == NULL) {
            return -ENOMEM;
        }
        d[0] = (uint8_t)i; /* positive fixint */
        if (gr_rt_send_once_held(ctx, h->to, m, &held) < 0) {
            girder_msg_unref(m);
            return -EIO;
        }
    }
    h->w_sent = gr_rt_wakeups(r);
    gr_rt_wakes_flush(r, &held);
    h->w_flushed = gr_rt_wakeups(r);
    return 0;
}

/* gr_rt_send_once_held: sends to a sleeping scheduler write no wake-up; the
 * flush wakes it once, and the messages arrive in order. */
START_TEST(test_send_once_held)
{
    girder_pid f = spawn_fwd();
    held_op h = {.to = gr_probe_pid(probe), .n = 100};
    gr_sched *ps;

    if ((f.id & 0xff) == (h.to.id & 0xff)) {
        send_atom(f, "stop");
        await_death(f, "normal");
        f = spawn_fwd();
    }
    ck_assert_uint_ne(f.id & 0xff, h.to.id & 0xff);
    ps = &rt->scheds[h.to.id & 0xff];
    gr_test_wait_until(atomic_load(&ps->sleeping), WAIT_MS, "the probe's scheduler never slept");
    ck_assert_int_eq(gr_rt_run_in(rt, f, do_send_held, &h), 0);
    ck_assert_uint_eq(h.w_sent, h.w_before); /* nothing written while held */
    ck_assert_uint_eq(h.w_flushed, h.w_sent + 1);
    recv_numbered(h.n);
    send_atom(f, "stop");
    await_death(f, "normal");
}
END_TEST

START_TEST(test_send_dead_pid_dropped)
{
    girder_pid p = spawn_fwd();
    op o = {.pid = p, .n = 3};

    send_atom(p, "stop");
    await_death(p, "normal");
    ck_assert_int_eq(probe_op(gr_test_op_send_seq, &o), 0); /* silently dropped */
    ck_assert_int_eq(gr_rt_send(rt, p, girder_msg_atom("x")), 0);
    expect_none(100);
}
END_TEST

/* A tallied message reports its release: through a forwarder (sent on, kept
 * by the probe: alive until the test drops it), and one sent to a dead pid
 * (released at once). The tally outlives its owner's release while a
 * message is alive (ASan: nothing leaks, nothing is used after its free). */
START_TEST(test_msg_tallied)
{
    gr_rt_tally *t = gr_rt_tally_new();
    girder_pid f = spawn_fwd(), dead = spawn_fwd();
    girder_msg *m, *r;
    uint8_t *d;

    ck_assert_ptr_nonnull(t);
    gr_rt_tally_hold(t, 2); /* the owner's credits for two messages */
    ck_assert_uint_eq(gr_rt_tally_refs(t), 3);
    /* one to a forwarder: it reaches the probe, which keeps it */
    ck_assert_ptr_nonnull(m = gr_rt_msg_alloc_tallied(2, t, &d));
    d[0] = 0xa1; /* fixstr "x" */
    d[1] = 'x';
    ck_assert_uint_eq(gr_rt_msg_refs(m), 1);
    ck_assert_int_eq(gr_rt_send(rt, f, m), 0);
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &r), 0);
    ck_assert_ptr_eq(r, m);
    ck_assert_uint_eq(gr_rt_tally_refs(t), 3); /* alive: the test holds it */
    ck_assert_uint_eq(gr_rt_tally_done_bytes(t), 0);
    girder_msg_unref(r);
    /* the forwarder's own reference may outlive the probe's receipt: its
     * scheduler drops it after the handler returns */
    gr_test_wait_until(gr_rt_tally_refs(t) == 2, WAIT_MS, "the forwarded message was not released");
    ck_assert_uint_eq(gr_rt_tally_done_bytes(t), 2);
    /* one to a dead pid: dropped, released at once */
    send_atom(dead, "stop");
    await_death(dead, "normal");
    ck_assert_ptr_nonnull(m = gr_rt_msg_alloc_tallied(3, t, &d));
    d[0] = 0xa2;
    d[1] = d[2] = 'y';
    ck_assert_int_eq(gr_rt_send(rt, dead, m), 0);
    gr_test_wait_until(gr_rt_tally_refs(t) == 1, WAIT_MS, "the dropped message was not released");
    ck_assert_uint_eq(gr_rt_tally_done_bytes(t), 5);
    /* the owner lets go while a message is alive: the message frees the tally */
    gr_rt_tally_hold(t, 1);
    ck_assert_ptr_nonnull(m = gr_rt_msg_alloc_tallied(2, t, &d));
    d[0] = 0xa1;
    d[1] = 'z';
    ck_assert_int_eq(gr_rt_send(rt, f, m), 0);
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &r), 0);
    gr_rt_tally_release(t, 1);
    girder_msg_unref(r);
    send_atom(f, "stop");
    await_death(f, "normal");
}
END_TEST

START_TEST(test_message_shared_refcount)
{
    /* One buffer sent to two processes is shared, not copied. */
    girder_msg *m = girder_msg_atom("shared");
    girder_pid a = spawn_fwd(), b = spawn_fwd();
    girder_msg *r1, *r2;

    ck_assert_int_eq(gr_rt_send(rt, a, girder_msg_ref(m)), 0);
    ck_assert_int_eq(gr_rt_send(rt, b, girder_msg_ref(m)), 0);
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &r1), 0);
    ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &r2), 0);
    ck_assert_ptr_eq(r1, m);
    ck_assert_ptr_eq(r2, m);
    girder_msg_unref(r1);
    girder_msg_unref(r2);
    girder_msg_unref(m);
}
END_TEST

/* ---- tests: links and exits ---------------------------------------------------------------- */

START_TEST(test_link_normal_exit_does_not_kill)
{
    girder_pid a = spawn_fwd(), b = spawn_fwd();
    op o = {.pid = b};

    ck_assert_int_eq(run_op(a, gr_test_op_link, &o), 0);
    send_atom(b, "stop");
    await_death(b, "normal");
    send_atom(a, "still-alive");
    expect_atom("still-alive");
}
END_TEST

START_TEST(test_link_abnormal_exit_kills)
{
    girder_pid a = spawn_fwd(), b = spawn_fwd();
    op o = {.pid = b}, ma = {.pid = a};

    ck_assert_int_eq(run_op(a, gr_test_op_link, &o), 0);
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ma), 0);
    send_atom(b, "crash");
    expect_down(a, "boom");
}
END_TEST

START_TEST(test_link_trapping_gets_exit_message)
{
    girder_pid b = spawn_fwd();
    op o = {.pid = b};

    /* The probe traps exits: it receives ["EXIT", B, "boom"]. */
    ck_assert_int_eq(probe_op(gr_test_op_link, &o), 0);
    send_atom(b, "crash");
    expect_exit(b, "boom");
    /* A normal exit is delivered to a trapping process too. */
    b = spawn_fwd();
    o.pid = b;
    ck_assert_int_eq(probe_op(gr_test_op_link, &o), 0);
    send_atom(b, "stop");
    expect_exit(b, "normal");
}
END_TEST

START_TEST(test_unlink_prevents_exit)
{
    girder_pid a = spawn_fwd(), b = spawn_fwd();
    op o = {.pid = b};

    ck_assert_int_eq(run_op(a, gr_test_op_link, &o), 0);
    ck_assert_int_eq(run_op(a, gr_test_op_unlink, &o), 0);
    send_atom(b, "crash");
    await_death(b, "boom");
    send_atom(a, "alive");
    expect_atom("alive");
}
END_TEST

START_TEST(test_link_to_dead_gives_noproc)
{
    girder_pid b = spawn_fwd();
    op o = {.pid = b};

    send_atom(b, "stop");
    await_death(b, "normal");
    ck_assert_int_eq(probe_op(gr_test_op_link, &o), 0);
    expect_exit(b, "noproc");
}
END_TEST

START_TEST(test_kill_is_untrappable)
{
    girder_pid a = spawn_fwd();
    op trap = {.flag = true}, k = {.pid = a, .atom = "kill"}, ma = {.pid = a};

    ck_assert_int_eq(run_op(a, do_trap, &trap), 0);
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ma), 0);
    ck_assert_int_eq(probe_op(gr_test_op_exit, &k), 0);
    expect_down(a, "killed");
}
END_TEST

START_TEST(test_exit_signal_rules)
{
    girder_pid a = spawn_fwd();
    op trap = {.flag = true}, ma = {.pid = a};
    op normal = {.pid = a, .atom = "normal"}, custom = {.pid = a, .atom = "custom"};

    /* exit(a, normal) is ignored by a non-trapping process. */
    ck_assert_int_eq(probe_op(gr_test_op_exit, &normal), 0);
    send_atom(a, "ping");
    expect_atom("ping");
    /* A trapping process gets ["EXIT", From, Reason] (forwarded to us). */
    ck_assert_int_eq(run_op(a, do_trap, &trap), 0);
    ck_assert_int_eq(probe_op(gr_test_op_exit, &custom), 0);
    expect_exit(gr_probe_pid(probe), "custom");
    /* A non-trapping process dies with the reason. */
    trap.flag = false;
    ck_assert_int_eq(run_op(a, do_trap, &trap), 0);
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ma), 0);
    ck_assert_int_eq(probe_op(gr_test_op_exit, &custom), 0);
    expect_down(a, "custom");
}
END_TEST

START_TEST(test_exit_self_normal_kills)
{
    girder_pid a = spawn_fwd();
    op self = {.pid = a, .atom = "normal"}, ma = {.pid = a};

    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ma), 0);
    ck_assert_int_eq(run_op(a, gr_test_op_exit, &self), 0);
    expect_down(a, "normal");
}
END_TEST

START_TEST(test_long_link_chain)
{
    /* 100,000 processes linked in a chain: killing the head kills them all,
     * without recursion (the C stack would not survive it). */
    enum { N = 100000 };
    girder_pid prev = spawn_fwd(), head = prev, last;
    op ml;

    for (int i = 1; i < N; i++) {
        op o = {.arg = NULL, .flags = GIRDER_SPAWN_LINK};

        ck_assert_int_eq(run_op(prev, do_spawn, &o), 0);
        prev = o.pid;
    }
    last = prev;
    ml.pid = last;
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ml), 0);
    send_atom(head, "crash");
    expect_down(last, "boom");
}
END_TEST

START_TEST(test_spawn_link_init_failure)
{
    /* Atomic spawn_link: a child whose init fails still reaches the parent. */
    girder_msg *fail = girder_msg_atom("fail");
    op o = {.arg = fail, .flags = GIRDER_SPAWN_LINK};

    ck_assert_int_eq(probe_op(do_spawn, &o), 0);
    expect_exit(o.pid, "init_failed");
    girder_msg_unref(fail);
}
END_TEST

/* ---- tests: monitors ---------------------------------------------------------------------- */

START_TEST(test_monitor_reasons)
{
    girder_pid a = spawn_fwd(), b = spawn_fwd();
    op ma = {.pid = a}, mb = {.pid = b}, kb = {.pid = b, .atom = "kill"};

    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ma), 0);
    send_atom(a, "stop");
    expect_down(a, "normal");
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &mb), 0);
    ck_assert_int_eq(probe_op(gr_test_op_exit, &kb), 0);
    expect_down(b, "killed");
    /* Monitoring a dead pid: noproc. */
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &ma), 0);
    expect_down(a, "noproc");
}
END_TEST

/* A pid handed out by another thread (gr_probe_new, gr_rt_spawn) while its
 * scheduler is busy, learned through memory (a lock, a table) by a process on
 * that same scheduler and signalled at once: the process exists for it. The
 * monitor holds (DOWN "killed" when it dies, not a false "noproc") and the
 * message arrives. Deterministic: the closure runs inside the scheduler's
 * inbox drain and waits until the new pid's spawn signal has been pushed, so
 * its signals are delivered while that spawn is still in the inbox. */
typedef struct fresh_arg {
    atomic_int stage; /* 1: closure running; 2: pid published */
    girder_pid pid;   /* the fresh pid; written before stage 2 */
    girder_ref ref;   /* the monitor */
    int r;            /* the closure's result */
} fresh_arg;

static int signal_fresh_pid(girder_ctx *ctx, void *arg)
{
    fresh_arg *a = arg;
    girder_msg *m = gr_test_msg_int(42);
    int r;

    atomic_store(&a->stage, 1);
    while (atomic_load(&a->stage) != 2) {
        sched_yield();
    }
    if ((r = girder_monitor(ctx, a->pid, &a->ref)) == 0 && (r = girder_send(ctx, a->pid, m)) == 0) {
        m = NULL;
    }
    girder_msg_unref(m);
    return r;
}

static void *run_signal_fresh(void *arg)
{
    ((fresh_arg *)arg)->r = gr_probe_run(probe, signal_fresh_pid, arg);
    return NULL;
}

START_TEST(test_signal_to_pid_spawned_meanwhile)
{
    fresh_arg a = {0};
    pthread_t t;
    gr_probe *x;
    girder_msg *m = NULL;

    ck_assert_int_eq(pthread_create(&t, NULL, run_signal_fresh, &a), 0);
    while (atomic_load(&a.stage) != 1) {
        sched_yield();
    }
    ck_assert_int_eq(gr_probe_new(rt, &x), 0); /* scheduler 0, like the probe */
    a.pid = gr_probe_pid(x);
    atomic_store(&a.stage, 2);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(a.r, 0);
    ck_assert_int_eq(gr_probe_recv(x, WAIT_MS, &m), 0); /* the message arrived */
    girder_msg_unref(m);
    x = gr_probe_free(x);
    expect_down(a.pid, "killed"); /* the monitor held until the real death */
}
END_TEST

START_TEST(test_monitor_exactly_once)
{
    girder_pid a = spawn_fwd();
    op m1 = {.pid = a}, m2 = {.pid = a};

    ck_assert_int_eq(probe_op(gr_test_op_monitor, &m1), 0);
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &m2), 0);
    ck_assert(!girder_ref_eq(m1.ref, m2.ref));
    send_atom(a, "crash");
    expect_down(a, "boom"); /* one per monitor, */
    expect_down(a, "boom");
    expect_none(200); /* and no more */
}
END_TEST

START_TEST(test_demonitor_suppresses_down)
{
    girder_pid a = spawn_fwd();
    op m = {.pid = a};

    ck_assert_int_eq(probe_op(gr_test_op_monitor, &m), 0);
    ck_assert_int_eq(probe_op(gr_test_op_demonitor, &m), 0);
    send_atom(a, "crash");
    await_death(a, "boom"); /* a fresh monitor sees it die... */
    expect_none(200);       /* ...the cancelled one never fires */
}
END_TEST

START_TEST(test_spawn_monitor)
{
    op o = {.arg = NULL, .flags = GIRDER_SPAWN_MONITOR};
    op k;

    ck_assert_int_eq(probe_op(do_spawn, &o), 0);
    ck_assert_uint_ne(o.ref.id, 0);
    k.pid = o.pid;
    k.atom = "bye";
    ck_assert_int_eq(probe_op(gr_test_op_exit, &k), 0);
    expect_down(o.pid, "bye");
}
END_TEST

/* ---- tests: names ------------------------------------------------------------------------- */

START_TEST(test_register_whereis_send)
{
    girder_pid a = spawn_fwd(), b = spawn_fwd(), w;
    op reg = {.name = "worker", .pid = a}, reg2 = {.name = "worker", .pid = b};
    op send = {.name = "worker", .atom = "by-name"};
    op unknown = {.name = "nobody", .atom = "x"};

    ck_assert_int_eq(probe_op(gr_test_op_register, &reg), 0);
    ck_assert_int_eq(gr_rt_whereis(rt, "worker", &w), 0);
    ck_assert(girder_pid_eq(w, a));
    ck_assert_int_eq(probe_op(gr_test_op_register, &reg2), GR_ENAMETAKEN);
    ck_assert_int_eq(probe_op(do_send_name, &send), 0);
    expect_atom("by-name");
    ck_assert_int_eq(probe_op(do_send_name, &unknown), GR_ENONAME);
    /* The name vanishes when its process exits. */
    send_atom(a, "stop");
    await_death(a, "normal");
    ck_assert_int_eq(gr_rt_whereis(rt, "worker", &w), GR_ENONAME);
    /* ...and can be taken again. */
    ck_assert_int_eq(probe_op(gr_test_op_register, &reg2), 0);
    ck_assert_int_eq(probe_op(do_unregister, &reg2), 0);
    ck_assert_int_eq(gr_rt_whereis(rt, "worker", &w), GR_ENONAME);
}
END_TEST

START_TEST(test_register_errors)
{
    girder_pid a = spawn_fwd(), dead = spawn_fwd();
    op bad = {.name = "", .pid = a};
    op stale = {.name = "stale", .pid = {0, 99, a.id}};
    op r1 = {.name = "one", .pid = gr_probe_pid(probe)};
    op r2 = {.name = "two", .pid = gr_probe_pid(probe)};
    op rd = {.name = "dead", .pid = dead};
    girder_pid w;

    ck_assert_int_eq(probe_op(gr_test_op_register, &bad), GR_EBADARG);
    ck_assert_int_eq(probe_op(gr_test_op_register, &stale), GR_ENOPROC);
    ck_assert_int_eq(probe_op(gr_test_op_register, &r1), 0);
    ck_assert_int_eq(probe_op(gr_test_op_register, &r2), GR_EALREADY);
    send_atom(dead, "stop");
    await_death(dead, "normal");
    if ((dead.id & 0xff) == 0) {
        ck_assert_int_eq(probe_op(gr_test_op_register, &rd), GR_ENOPROC);
    } else {
        /* Cross-scheduler: accepted, then dropped by the owner's check. */
        probe_op(gr_test_op_register, &rd);
        gr_test_wait_until(gr_rt_whereis(rt, "dead", &w) != 0, WAIT_MS,
                           "dead pid stays registered");
        ck_assert_int_eq(gr_rt_whereis(rt, "dead", &w), GR_ENONAME);
    }
}
END_TEST

/* ---- tests: timers ------------------------------------------------------------------------ */

/* Start a timer and cancel it in the same turn: no load can make it fire
 * first. */
static int do_send_after_cancel(girder_ctx *ctx, void *a)
{
    int r = do_send_after(ctx, a);

    return r < 0 ? r : do_cancel(ctx, a);
}

START_TEST(test_send_after_and_cancel)
{
    op t1 = {.pid = gr_probe_pid(probe), .n = 30, .atom = "tick"};
    op t2 = {.pid = gr_probe_pid(probe), .n = 200, .atom = "never"};

    ck_assert_int_eq(probe_op(do_send_after, &t1), 0);
    ck_assert_int_eq(probe_op(do_send_after_cancel, &t2), 0);
    expect_atom("tick");
    ck_assert_int_eq(probe_op(do_cancel, &t1), -ENOENT); /* already fired */
    expect_none(400);
}
END_TEST

/* Arms "noise" timers of 1 and 2 ms and the timer late_op.o (3 ms), noting
 * when, on the daemon's clock. */
typedef struct late_op {
    op o;
    uint64_t armed_ns; /* gr_clock_ns() just before the timers were armed */
} late_op;

static int do_timed_send_after(girder_ctx *ctx, void *a)
{
    late_op *l = a; /* a points to l->o, its first member */
    int r;

    l->armed_ns = gr_clock_ns();
    for (uint64_t ms = 1; ms <= 2; ms++) {
        if ((r = girder_send_after(ctx, l->o.pid, ms, girder_msg_atom("noise"), NULL)) < 0) {
            return r;
        }
    }
    return do_send_after(ctx, &l->o);
}

START_TEST(test_send_after_never_early)
{
    /* libevent counts timeouts on CLOCK_MONOTONIC_COARSE, which lags the
     * real time by up to a tick (1-10 ms): a loop woken by the earlier timers
     * just after a tick sees the 3 ms one due up to a tick early. */
    for (int i = 0; i < 40; i++) {
        late_op t = {.o = {.pid = gr_probe_pid(probe), .n = 3, .atom = "tick"}};
        bool ticked = false;

        ck_assert_int_eq(probe_op(do_timed_send_after, &t.o), 0);
        for (int k = 0; k < 3; k++) {
            girder_msg *m = NULL;

            ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
            if (girder_msg_is_atom(m, "tick")) {
                ck_assert_msg(gr_clock_ns() - t.armed_ns >= 3000000u,
                              "a 3 ms timer fired after %.3f ms",
                              (double)(gr_clock_ns() - t.armed_ns) / 1e6);
                ticked = true;
            }
            girder_msg_unref(m);
        }
        ck_assert(ticked);
    }
}
END_TEST

START_TEST(test_timer_dies_with_owner)
{
    /* The owner must die before its timer is due: 500 ms on an idle machine,
     * longer under sanitizers and load; then nothing arrives until well past
     * the due time. */
    girder_pid a = spawn_fwd();
    op t = {.pid = gr_probe_pid(probe), .n = gr_test_ms(500), .atom = "orphan"};

    ck_assert_int_eq(run_op(a, do_send_after, &t), 0);
    send_atom(a, "stop");
    await_death(a, "normal");
    expect_none(t.n + 300);
}
END_TEST

/* ---- tests: call and info ---------------------------------------------------------------- */

static int echo_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    msgpack_unpacked u;
    girder_pid from;
    girder_ref ref;

    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY &&
        u.data.via.array.size == 4 && gr_term_is_str(&u.data.via.array.ptr[0], "$call") &&
        girder_get_pid(ctx, &u.data.via.array.ptr[1], &from) == 0 &&
        girder_get_ref(ctx, &u.data.via.array.ptr[2], &ref) == 0) {
        girder_msg *resp = girder_msg_atom("pong");

        girder_reply(ctx, from, ref, resp);
        girder_msg_unref(resp);
    }
    msgpack_unpacked_destroy(&u);
    return GIRDER_CONTINUE;
}

static const girder_behaviour echo_beh = {.name = "echo", .handle = echo_handle};

START_TEST(test_call_reply)
{
    girder_pid e;
    op c;
    msgpack_unpacked u;
    girder_msg *m;
    gr_term_id rid;

    ck_assert_int_eq(gr_rt_spawn(rt, &echo_beh, NULL, &e), 0);
    c.pid = e;
    c.atom = "ping";
    c.flag = true;
    ck_assert_int_eq(probe_op(do_call, &c), 0);
    recv_obj(&u, &m);
    ck_assert_uint_eq(u.data.via.array.size, 3);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "$reply"));
    ck_assert_int_eq(gr_term_parse_id(&u.data.via.array.ptr[1], GR_TERM_EXT_REF, &rid), 0);
    ck_assert_uint_eq(rid.id, c.ref.id);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[2], "pong"));
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    /* A call to a dead server with monitor=true yields DOWN noproc, not silence. */
    kill_pid(e);
}
END_TEST

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        if (gr_term_is_str(&map->via.map.ptr[i].key, key)) {
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}

START_TEST(test_process_info)
{
    girder_pid a = spawn_fwd();
    op reg = {.name = "infoed", .pid = a}, ln = {.pid = a}, info = {.pid = a};
    msgpack_unpacked u;
    girder_msg *m;
    const msgpack_object *map, *v;

    ck_assert_int_eq(probe_op(gr_test_op_register, &reg), 0);
    ck_assert_int_eq(probe_op(gr_test_op_link, &ln), 0);
    send_atom(a, "x");
    expect_atom("x");
    ck_assert_int_eq(probe_op(gr_test_op_info, &info), 0);
    recv_obj(&u, &m);
    ck_assert(gr_term_is_str(&u.data.via.array.ptr[0], "$info"));
    map = &u.data.via.array.ptr[2];
    ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
    ck_assert(gr_test_is_pid(map_get(map, "pid"), a));
    ck_assert(gr_term_is_str(map_get(map, "status"), "waiting"));
    ck_assert(gr_term_is_str(map_get(map, "name"), "infoed"));
    ck_assert(gr_term_is_str(map_get(map, "behaviour"), "fwd"));
    ck_assert_uint_eq(map_get(map, "handled")->via.u64, 1);
    /* work: at least the turn that handled it and the message itself */
    ck_assert_uint_ge(map_get(map, "work")->via.u64, 2);
    ck_assert_uint_eq(map_get(map, "mailbox")->via.u64, 0);
    ck_assert_uint_eq(map_get(map, "scheduler")->via.u64, a.id & 0xff);
    ck_assert_uint_gt(map_get(map, "memory")->via.u64, 64);
    ck_assert_uint_gt(map_get(map, "started_ms")->via.u64, 1700000000000ull);
    v = map_get(map, "links");
    ck_assert_uint_eq(v->via.array.size, 1);
    ck_assert(gr_test_is_pid(&v->via.array.ptr[0], gr_probe_pid(probe)));
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    /* Info on a dead pid: nil. */
    send_atom(a, "stop");
    expect_exit(a, "normal"); /* the probe is linked and traps */
    ck_assert_int_eq(probe_op(gr_test_op_info, &info), 0);
    recv_obj(&u, &m);
    ck_assert_int_eq(u.data.via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}
END_TEST

/* ---- tests: fairness, incarnations, shutdown ---------------------------------------------- */

/* A process that sends itself a message for every message it handles: its
 * mailbox never drains (it holds as many messages as the test sent it), so it
 * is never idle, and it does not grow (a growing mailbox only slows the
 * sanitizers down). */
static int spin_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    girder_send(ctx, girder_self(ctx), girder_msg_ref((girder_msg *)msg));
    return GIRDER_CONTINUE;
}

static const girder_behaviour spin_beh = {.name = "spin", .handle = spin_handle};

START_TEST(test_fairness)
{
    /* One scheduler. A spinning process always has messages waiting; a
     * forwarder on the same scheduler must still answer, and a timer must
     * still fire, before the spinner is killed: each is an event the test
     * waits for (scaled deadlines), so only a scheduler that never leaves
     * the spinner fails it. */
    girder_pid spin, f;
    op t = {.pid = gr_probe_pid(probe), .n = 20, .atom = "timer"};

    ck_assert_int_eq(gr_rt_spawn(rt, &spin_beh, NULL, &spin), 0);
    for (int i = 0; i < 64; i++) {
        send_atom(spin, "go");
    }
    f = spawn_fwd();
    for (int i = 0; i < 20; i++) {
        send_atom(f, "hi");
        expect_atom("hi");
    }
    ck_assert_int_eq(probe_op(do_send_after, &t), 0);
    expect_atom("timer");
    kill_pid(spin);
}
END_TEST

START_TEST(test_sched_time)
{
    /* The computation: awake since the start, asleep now, a clock gone back. */
    uint64_t busy, wall, b0, w0, b1, w1;
    girder_pid spin;

    gr_rt_sched_time_of(1000, 0, 0, 5000, &busy, &wall);
    ck_assert_uint_eq(wall, 4000);
    ck_assert_uint_eq(busy, 4000);
    gr_rt_sched_time_of(1000, 1000, 4000, 5000, &busy, &wall); /* asleep since 4000 */
    ck_assert_uint_eq(wall, 4000);
    ck_assert_uint_eq(busy, 2000);
    gr_rt_sched_time_of(1000, 500, 0, 900, &busy, &wall);
    ck_assert_uint_eq(wall, 0);
    ck_assert_uint_eq(busy, 0);
    gr_rt_sched_time_of(0, 0, 0, 5000, &busy, &wall); /* not begun */
    ck_assert_uint_eq(wall, 0);
    gr_rt_sched_time(rt, 1, &busy, &wall); /* one scheduler only */
    ck_assert_uint_eq(wall, 0);

    /* The live figures: a spinning process keeps the only scheduler busy
     * (a preempted thread counts as busy too, so a loaded machine does not
     * matter); once it is killed the scheduler waits, idle. */
    ck_assert_int_eq(gr_rt_spawn(rt, &spin_beh, NULL, &spin), 0);
    for (int i = 0; i < 16; i++) {
        send_atom(spin, "go");
    }
    gr_rt_sched_time(rt, 0, &b0, &w0);
    expect_none(100);
    gr_rt_sched_time(rt, 0, &b1, &w1);
    ck_assert_uint_gt(w1, w0);
    ck_assert_uint_ge(w1 - w0, 50000000u); /* wide: the wait may end a tick early */
    ck_assert_uint_ge(b1 - b0, (w1 - w0) * 8 / 10);
    kill_pid(spin);
    await_death(spin, "killed");
    gr_rt_sched_time(rt, 0, &b0, &w0);
    expect_none(200);
    gr_rt_sched_time(rt, 0, &b1, &w1);
    ck_assert_uint_ge(w1 - w0, 100000000u);
    ck_assert_uint_le(b1 - b0, (w1 - w0) / 2);
    ck_assert_uint_le(b1, w1);
}
END_TEST

/* Names met in terms (a pid of a made-up node) have a quota of their own:
 * they cannot use up the slots the members need; a member's interning
 * claims a stranger's entry and frees its quota slot. */
START_TEST(test_node_table_strangers)
{
    char name[32];
    uint32_t idx, first = 0, m;

    for (int i = 0; i < GR_NODES_STRANGERS; i++) {
        snprintf(name, sizeof(name), "s%d@h", i);
        ck_assert_int_eq(gr_rt_node_intern(rt, name, strlen(name), &idx), 0);
        first = i == 0 ? idx : first;
    }
    ck_assert_int_eq(gr_rt_node_intern(rt, "one-more@h", 10, &idx), -ENOSPC);
    ck_assert_int_eq(gr_rt_node_intern(rt, "s7@h", 4, &idx), 0); /* known: still found */
    ck_assert_int_eq(gr_rt_node_intern_member(rt, "member@h", 8, &m), 0);
    ck_assert_int_eq(gr_rt_node_intern(rt, "member@h", 8, &idx), 0);
    ck_assert_uint_eq(idx, m);
    ck_assert_int_eq(gr_rt_node_intern_member(rt, "s0@h", 4, &idx), 0); /* claimed */
    ck_assert_uint_eq(idx, first);
    ck_assert_int_eq(gr_rt_node_intern(rt, "one-more@h", 10, &idx), 0); /* its slot */
    ck_assert_int_eq(gr_rt_node_intern(rt, "two-more@h", 10, &idx), -ENOSPC);
}
END_TEST

START_TEST(test_stale_incarnation)
{
    girder_pid a = spawn_fwd();
    girder_pid old = {0, gr_rt_creation(rt) - 1, a.id}; /* same number, older node */
    op m = {.pid = old};

    ck_assert_int_eq(gr_rt_send(rt, old, girder_msg_atom("ghost")), 0);
    expect_none(100); /* never delivered to the live process with that number */
    ck_assert_int_eq(probe_op(gr_test_op_monitor, &m), 0);
    expect_down(old, "noproc");
}
END_TEST

static int term_count_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

/* What the termcount processes report, through the address in their argument. */
typedef struct term_counts {
    atomic_int inits; /* init ran */
    atomic_int terms; /* terminate ran with reason shutdown */
} term_counts;

static void term_count_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    term_counts *c = *(term_counts **)state;

    if (c && girder_msg_is_atom(reason, "shutdown")) {
        atomic_fetch_add(&c->terms, 1);
    }
    free(state);
}

static int term_count_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    term_counts *c = NULL; /* the test passes the counters' address */
    term_counts **st = malloc(sizeof(*st));
    msgpack_unpacked u;

    msgpack_unpacked_init(&u);
    if (arg && girder_msg_unpack(arg, &u) == 0 && u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        c = (term_counts *)(uintptr_t)u.data.via.u64;
    }
    msgpack_unpacked_destroy(&u);
    if (c) {
        atomic_fetch_add(&c->inits, 1);
    }
    *st = c;
    *ret_state = st;
    return 0;
}

static const girder_behaviour term_beh = {.name = "termcount",
                                          .init = term_count_init,
                                          .handle = term_count_handle,
                                          .terminate = term_count_terminate};

START_TEST(test_shutdown_terminates_everything)
{
    static term_counts n;
    girder_msg *arg = gr_test_msg_int((int64_t)(uintptr_t)&n);
    girder_pid p;

    atomic_store(&n.inits, 0);
    atomic_store(&n.terms, 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(gr_rt_spawn(rt, &term_beh, arg, &p), 0);
    }
    girder_msg_unref(arg);
    /* Let every init run before stopping: wait for the 1,000 inits (a
     * process whose init has not run yet has nothing to terminate). */
    send_atom(spawn_fwd(), "sync");
    expect_atom("sync");
    gr_test_wait_until(atomic_load(&n.inits) == 1000 && gr_rt_process_count(rt) >= 1002, WAIT_MS,
                       "%d of 1000 inits ran", atomic_load(&n.inits));
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    ck_assert_int_eq(atomic_load(&n.terms), 1000);
    ck_assert_uint_eq(gr_rt_process_count(rt), 0);
    ck_assert_int_eq(gr_rt_spawn(rt, &gr_test_fwd, NULL, &p), GR_ESTOPPED);
}
END_TEST

START_TEST(test_behaviour_registry_and_config_errors)
{
    gr_rt_config bad = {.node_name = "no-at-sign", .schedulers = 1};
    gr_rt_config many = {.node_name = "a@b", .schedulers = 1000};
    girder_rt *r2 = NULL;

    ck_assert_int_eq(gr_rt_new(&bad, &r2), -EINVAL);
    ck_assert_int_eq(gr_rt_new(&many, &r2), -EINVAL);
    ck_assert_ptr_null(r2);
    ck_assert_int_eq(girder_behaviour_register(rt, &gr_test_fwd), 0);
    ck_assert_int_eq(girder_behaviour_register(rt, &gr_test_fwd), -EEXIST);
    ck_assert_ptr_eq(girder_behaviour_find(rt, "fwd"), &gr_test_fwd);
    ck_assert_ptr_nonnull(girder_behaviour_find(rt, "supervisor"));
    ck_assert_ptr_null(girder_behaviour_find(rt, "nope"));
}
END_TEST

START_TEST(test_many_processes_cross_scheduler)
{
    /* Stress for the sanitizers: 2,000 processes on both schedulers, each
     * receiving messages from the test thread and the probe concurrently. */
    girder_pid pids[2000];
    int got = 0;

    for (int i = 0; i < 2000; i++) {
        pids[i] = spawn_fwd();
    }
    for (int i = 0; i < 2000; i++) {
        op o = {.pid = pids[i], .n = 2};

        send_atom(pids[i], "a");
        ck_assert_int_eq(probe_op(gr_test_op_send_seq, &o), 0);
    }
    for (; got < 6000; got++) {
        girder_msg *m;

        ck_assert_int_eq(gr_probe_recv(probe, gr_test_ms(WAIT_MS), &m), 0);
        girder_msg_unref(m);
    }
    expect_none(50);
}
END_TEST

/* ---- tests: enumerating processes ------------------------------------------------------------ */

/* Is pid among the n sorted pids? */
static bool has_pid(const girder_pid *pids, size_t n, girder_pid pid)
{
    for (size_t i = 0; i < n; i++) {
        if (girder_pid_eq(pids[i], pid)) {
            return true;
        }
    }
    return false;
}

static int do_list_request(girder_ctx *ctx, void *a)
{
    op *o = a;

    return gr_rt_process_list_request(ctx, 0, (size_t)o->n, &o->ref);
}

START_TEST(test_process_list)
{
    /* Every live process is listed whoever spawned it, linked or not, named or
     * not; dead ones are not; the list is sorted and bounded. */
    girder_pid direct[20], child_spread, child_local, *pids = NULL;
    op sp = {.flags = GIRDER_SPAWN_SPREAD}, sl = {.flags = 0}, reg = {.name = "listed"};
    size_t n = 0;
    uint64_t total = 0;

    for (int i = 0; i < 20; i++) {
        direct[i] = spawn_fwd();
    }
    /* Spawned by a behaviour, unlinked, unregistered, on either scheduler. */
    ck_assert_int_eq(run_op(direct[0], do_spawn, &sp), 0);
    ck_assert_int_eq(run_op(direct[1], do_spawn, &sl), 0);
    child_spread = sp.pid;
    child_local = sl.pid;
    reg.pid = direct[2];
    ck_assert_int_eq(probe_op(gr_test_op_register, &reg), 0);
    kill_pid(direct[3]);
    await_death(direct[3], "killed");

    ck_assert_int_eq(gr_rt_process_list(rt, 0, 1000, &pids, &n, &total, NULL), 0);
    ck_assert_uint_eq(total, n);
    ck_assert_uint_eq(n, 20 - 1 + 2 + 1); /* fwd alive, two children, the probe */
    ck_assert_uint_eq(total, gr_rt_process_count(rt));
    for (int i = 0; i < 20; i++) {
        ck_assert(has_pid(pids, n, direct[i]) == (i != 3));
    }
    ck_assert(has_pid(pids, n, child_spread));
    ck_assert(has_pid(pids, n, child_local));
    ck_assert(has_pid(pids, n, gr_probe_pid(probe)));
    for (size_t i = 1; i < n; i++) {
        ck_assert_uint_lt(pids[i - 1].id, pids[i].id);
    }
    free(pids);

    /* Truncated: the 3 lowest pids, the true total. */
    {
        girder_pid *few = NULL;
        size_t nf = 0;
        uint64_t tf = 0;
        girder_pid *all = NULL;
        size_t na = 0;
        uint64_t ta = 0;

        ck_assert_int_eq(gr_rt_process_list(rt, 0, 1000, &all, &na, &ta, NULL), 0);
        ck_assert_int_eq(gr_rt_process_list(rt, 0, 3, &few, &nf, &tf, NULL), 0);
        ck_assert_uint_eq(nf, 3);
        ck_assert_uint_eq(tf, ta);
        for (size_t i = 0; i < 3; i++) {
            ck_assert(girder_pid_eq(few[i], all[i]));
        }
        free(few);
        free(all);
    }
    ck_assert_int_eq(gr_rt_process_list(rt, 0, 0, &pids, &n, &total, NULL), GR_EBADARG);

    /* More schedulers than the collector holds answers for (2 * max pids):
     * still the max lowest, and the true total. */
    {
        gr_rt_config cfg = {.node_name = "four@127.0.0.1", .creation = 9, .schedulers = 4};
        girder_rt *r4;
        girder_pid *all = NULL, *few = NULL, child;
        size_t na = 0, nf = 0;
        uint64_t ta = 0, tf = 0;

        ck_assert_int_eq(gr_rt_new(&cfg, &r4), 0);
        ck_assert_int_eq(gr_rt_start(r4), 0);
        for (int i = 0; i < 40; i++) {
            ck_assert_int_eq(gr_rt_spawn(r4, &gr_test_fwd, NULL, &child), 0);
        }
        ck_assert_int_eq(gr_rt_process_list(r4, 0, 1000, &all, &na, &ta, NULL), 0);
        ck_assert_uint_eq(na, 40);
        ck_assert_uint_eq(ta, 40);
        ck_assert_int_eq(gr_rt_process_list(r4, 0, 3, &few, &nf, &tf, NULL), 0);
        ck_assert_uint_eq(nf, 3);
        ck_assert_uint_eq(tf, 40);
        for (size_t i = 0; i < 3; i++) {
            ck_assert(girder_pid_eq(few[i], all[i]));
        }
        free(all);
        free(few);
        gr_rt_stop(r4);
        r4 = gr_rt_free(r4);
    }
    ck_assert_int_eq(gr_rt_process_list(rt, 0, GR_RT_PLIST_MAX + 1, &pids, &n, &total, NULL),
                     GR_EBADARG);
}
END_TEST

START_TEST(test_process_list_pages)
{
    /* Pages of 7 through 100 processes on two schedulers: together exactly
     * the full list, in order, each pid once; the last page says no more. */
    girder_pid *all = NULL, *page = NULL, got[200];
    size_t na = 0, np = 0, ng = 0;
    uint64_t ta = 0, tp = 0, after = 0;
    bool more = true;
    int pages = 0;

    for (int i = 0; i < 100; i++) {
        spawn_fwd();
    }
    ck_assert_int_eq(gr_rt_process_list(rt, 0, 1000, &all, &na, &ta, &more), 0);
    ck_assert(!more);
    more = true;
    ck_assert_uint_eq(na, 101); /* and the probe */
    while (more) {
        ck_assert_int_eq(gr_rt_process_list(rt, after, 7, &page, &np, &tp, &more), 0);
        ck_assert_uint_eq(tp, ta);
        ck_assert(np == 7 || !more);
        for (size_t i = 0; i < np; i++) {
            ck_assert_uint_lt(ng, 200);
            ck_assert_uint_gt(page[i].id, after);
            got[ng++] = page[i];
        }
        if (np > 0) {
            after = page[np - 1].id;
        }
        free(page);
        page = NULL;
        ck_assert_int_lt(++pages, 100);
    }
    ck_assert_int_eq(pages, (101 + 6) / 7);
    ck_assert_uint_eq(ng, na);
    for (size_t i = 0; i < na; i++) {
        ck_assert(girder_pid_eq(got[i], all[i]));
    }
    free(all);
    /* Past the end: an empty page, no more. */
    ck_assert_int_eq(gr_rt_process_list(rt, after, 7, &page, &np, &tp, &more), 0);
    ck_assert_uint_eq(np, 0);
    ck_assert(!more);
    free(page);
}
END_TEST

START_TEST(test_process_list_request)
{
    /* From a process: one ["$procs", Ref, Total, Above, [Entry...]] per scheduler; a
     * child spawned just before asking is in it, with its entry's fields. */
    op sp = {.flags = GIRDER_SPAWN_SPREAD}, q = {.n = 100};
    bool seen_child = false, seen_self = false;
    uint64_t total = 0;

    ck_assert_int_eq(probe_op(do_spawn, &sp), 0);
    ck_assert_int_eq(probe_op(do_list_request, &q), 0);
    for (unsigned s = 0; s < gr_rt_schedulers(rt); s++) {
        msgpack_unpacked u;
        girder_msg *m;
        msgpack_object *a;
        gr_term_id rid;

        recv_obj(&u, &m);
        ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(u.data.via.array.size, 5);
        a = u.data.via.array.ptr;
        ck_assert(gr_term_is_str(&a[0], "$procs"));
        ck_assert_int_eq(gr_term_parse_id(&a[1], GR_TERM_EXT_REF, &rid), 0);
        ck_assert_uint_eq(rid.id, q.ref.id);
        ck_assert_int_eq(a[2].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        total += a[2].via.u64;
        ck_assert_int_eq(a[3].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(a[3].via.u64, a[2].via.u64); /* after 0: all are above */
        ck_assert_int_eq(a[4].type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(a[4].via.array.size, a[2].via.u64);
        for (uint32_t i = 0; i < a[4].via.array.size; i++) {
            msgpack_object *e = &a[4].via.array.ptr[i];

            ck_assert_int_eq(e->type, MSGPACK_OBJECT_MAP);
            ck_assert_uint_eq(e->via.map.size, 9);
            ck_assert(gr_term_is_str(&e->via.map.ptr[0].key, "pid"));
            ck_assert(gr_term_is_str(&e->via.map.ptr[2].key, "behaviour"));
            if (gr_test_is_pid(&e->via.map.ptr[0].val, sp.pid)) {
                seen_child = true;
                ck_assert(gr_term_is_str(&e->via.map.ptr[2].val, "fwd"));
            }
            if (gr_test_is_pid(&e->via.map.ptr[0].val, gr_probe_pid(probe))) {
                seen_self = true;
                ck_assert(gr_term_is_str(&e->via.map.ptr[3].val, "running") ||
                          gr_term_is_str(&e->via.map.ptr[3].val, "runnable") ||
                          gr_term_is_str(&e->via.map.ptr[3].val, "waiting"));
            }
        }
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(m);
    }
    ck_assert(seen_child && seen_self);
    ck_assert_uint_eq(total, 2);
    expect_none(50);
    q.n = 0;
    ck_assert_int_eq(probe_op(do_list_request, &q), GR_EBADARG);
}
END_TEST

/* For the thread sanitizer: lists taken while processes are spawned and die on
 * both schedulers. */
static atomic_bool churn_done;

static void *lister(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_done)) {
        girder_pid *pids = NULL;
        size_t n;
        uint64_t total;

        uint64_t after = 0;
        bool more = true;

        /* Page through everything, 16 at a time: pages never repeat a pid. */
        while (more && gr_rt_process_list(rt, after, 16, &pids, &n, &total, &more) == 0) {
            for (size_t i = 0; i < n; i++) {
                ck_assert_uint_gt(pids[i].id, after);
            }
            if (n > 0) {
                after = pids[n - 1].id;
            }
            free(pids);
        }
    }
    return NULL;
}

START_TEST(test_process_list_concurrent)
{
    pthread_t t;

    atomic_store(&churn_done, false);
    ck_assert_int_eq(pthread_create(&t, NULL, lister, NULL), 0);
    for (int round = 0; round < 20; round++) {
        girder_pid pids[50];

        for (int i = 0; i < 50; i++) {
            pids[i] = spawn_fwd();
        }
        for (int i = 0; i < 50; i++) {
            send_atom(pids[i], "stop");
        }
    }
    atomic_store(&churn_done, true);
    pthread_join(t, NULL);
}
END_TEST

/* ---- tests: node monitoring hook ------------------------------------------------------------ */

/* A fake node-monitor hook: records every call; fails with -ENOMEM while
 * nm_fail is set. */
typedef struct nm_call {
    girder_pid pid; /* who */
    bool on;        /* subscribe or not */
} nm_call;

static pthread_mutex_t nm_lock = PTHREAD_MUTEX_INITIALIZER;
static nm_call nm_calls[64];
static size_t nm_n;
static atomic_bool nm_fail;

static int fake_node_monitor(void *ud, girder_pid pid, bool on)
{
    ck_assert_ptr_eq(ud, &nm_calls);
    if (atomic_load(&nm_fail)) {
        return -ENOMEM;
    }
    pthread_mutex_lock(&nm_lock);
    ck_assert_uint_lt(nm_n, 64);
    nm_calls[nm_n++] = (nm_call){pid, on};
    pthread_mutex_unlock(&nm_lock);
    return 0;
}

/* Calls recorded for pid with `on`. */
static size_t nm_count(girder_pid pid, bool on)
{
    size_t k = 0;

    pthread_mutex_lock(&nm_lock);
    for (size_t i = 0; i < nm_n; i++) {
        k += girder_pid_eq(nm_calls[i].pid, pid) && nm_calls[i].on == on;
    }
    pthread_mutex_unlock(&nm_lock);
    return k;
}

static void setup_nm(void)
{
    gr_rt_config cfg = {.node_name = "test@127.0.0.1", .creation = 7, .schedulers = 2};

    nm_n = 0;
    atomic_store(&nm_fail, false);
    ck_assert_int_eq(gr_rt_new(&cfg, &rt), 0);
    gr_rt_set_node_monitor(rt, fake_node_monitor, &nm_calls);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
}

static int do_monitor_nodes(girder_ctx *ctx, void *a)
{
    return girder_monitor_nodes(ctx, ((op *)a)->flag);
}

START_TEST(test_monitor_nodes_without_distribution)
{
    op o = {.flag = true};

    ck_assert_int_eq(probe_op(do_monitor_nodes, &o), GR_ENOCONN);
    o.flag = false;
    ck_assert_int_eq(probe_op(do_monitor_nodes, &o), GR_ENOCONN);
}
END_TEST

START_TEST(test_monitor_nodes_hook)
{
    /* Subscribing reaches the hook with the caller's pid; a subscriber that
     * exits is unsubscribed once by the runtime; one that unsubscribed first,
     * or whose subscription failed, is not unsubscribed again. */
    girder_pid a = spawn_fwd(), b = spawn_fwd(), c = spawn_fwd();
    op on = {.flag = true}, off = {.flag = false};

    ck_assert_int_eq(run_op(a, do_monitor_nodes, &on), 0);
    ck_assert_int_eq(run_op(a, do_monitor_nodes, &on), 0); /* idempotent for the hook */
    ck_assert_int_eq(run_op(b, do_monitor_nodes, &on), 0);
    ck_assert_int_eq(run_op(b, do_monitor_nodes, &off), 0);
    atomic_store(&nm_fail, true);
    ck_assert_int_eq(run_op(c, do_monitor_nodes, &on), -ENOMEM);
    atomic_store(&nm_fail, false);
    ck_assert_uint_eq(nm_count(a, true), 2);
    ck_assert_uint_eq(nm_count(b, true), 1);
    ck_assert_uint_eq(nm_count(b, false), 1);
    ck_assert_uint_eq(nm_count(c, true), 0);

    kill_pid(a);
    await_death(a, "killed");
    send_atom(b, "stop");
    await_death(b, "normal");
    send_atom(c, "crash");
    await_death(c, "boom");
    ck_assert_uint_eq(nm_count(a, false), 1); /* dropped on exit */
    ck_assert_uint_eq(nm_count(b, false), 1); /* not twice */
    ck_assert_uint_eq(nm_count(c, false), 0); /* never subscribed */
}
END_TEST

START_TEST(test_monitor_nodes_dropped_at_stop)
{
    girder_pid a = spawn_fwd();
    op on = {.flag = true};

    ck_assert_int_eq(run_op(a, do_monitor_nodes, &on), 0);
    probe = gr_probe_free(probe);
    gr_rt_stop(rt); /* a exits with "shutdown": the hook hears of it */
    ck_assert_uint_eq(nm_count(a, false), 1);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = gr_test_tcase(s, "two-schedulers", setup2, teardown, 60);
    TCase *one = gr_test_tcase(s, "one-scheduler", setup1, teardown, 60);
    TCase *nm = gr_test_tcase(s, "node-monitor-hook", setup_nm, teardown, 60);

    gr_test_add(tc, test_spawn_send_receive, test_ordering_per_pair, test_ordering_cross_scheduler,
                test_send_dead_pid_dropped, test_send_once, test_send_once_held,
                test_message_shared_refcount, test_msg_tallied, test_link_normal_exit_does_not_kill,
                test_link_abnormal_exit_kills, test_link_trapping_gets_exit_message,
                test_unlink_prevents_exit, test_link_to_dead_gives_noproc, test_kill_is_untrappable,
                test_exit_signal_rules, test_exit_self_normal_kills, test_long_link_chain,
                test_spawn_link_init_failure, test_monitor_reasons, test_monitor_exactly_once,
                test_demonitor_suppresses_down, test_spawn_monitor, test_register_whereis_send,
                test_register_errors, test_send_after_and_cancel, test_send_after_never_early,
                test_timer_dies_with_owner, test_call_reply, test_process_info,
                test_stale_incarnation, test_node_table_strangers,
                test_shutdown_terminates_everything, test_behaviour_registry_and_config_errors,
                test_many_processes_cross_scheduler, test_process_list, test_process_list_pages,
                test_process_list_request, test_process_list_concurrent,
                test_monitor_nodes_without_distribution, test_signal_to_pid_spawned_meanwhile);

    gr_test_add(one, test_fairness, test_sched_time);

    gr_test_add(nm, test_monitor_nodes_hook, test_monitor_nodes_dropped_at_stop);
    return s;
}

int main(void)
{
    return gr_test_run(runtime_suite);
}
