/* SPDX-License-Identifier: Apache-2.0 */
/*
 * supervisor_test.c - Check tests for the supervisor behaviour: strategies,
 * restart types, intensity, ordered shutdown and its kill timeout, dynamic
 * children and their calls, bad specs, nested supervisors, calls during a
 * restart, many dynamic children.
 *
 * The tests run real runtimes. Children run the test behaviour "tw" below: it
 * registers a name, tells the probe (registered as "probe") when it starts and
 * when it terminates - with a sequence number taken from one atomic counter in
 * terminate, so the order in which children were stopped can be checked across
 * scheduler threads - and obeys "crash", "normal" and ["stop", Reason].
 * Supervisors are spawned from the probe with a monitor, so their exit reason
 * arrives as a DOWN. Every wait has a deadline; nothing sleeps to "let things
 * settle" (the one sleep waits out a restart period, which is the point).
 *
 * Terms are written as JSON-like text and turned into msgpack by a small
 * parser below (J("...")), so the specs read like the documentation.
 */
#include "girder/girder.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/log.h"

#include "testing/gr_test_rt.h"
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000
#define STASH_MAX 4096

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MANY_CHILDREN 2000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MANY_CHILDREN 2000
#endif
#endif
#ifndef MANY_CHILDREN
#define MANY_CHILDREN 20000
#endif

static girder_rt *rt;
static gr_probe *probe;
static atomic_uint term_seq; /* terminate order across threads */

/* A message from printf-style JSON text (the support library's reader). */
#define J(...) gr_test_msg_json(__VA_ARGS__)

/* Does the term `o` equal the JSON-ish text? */
static bool obj_is(const msgpack_object *o, const char *json)
{
    girder_msg *m = J("%s", json);
    msgpack_unpacked u;
    bool eq;

    msgpack_unpacked_init(&u);
    ck_assert_int_eq(girder_msg_unpack(m, &u), 0);
    eq = msgpack_object_equal(*o, u.data);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    return eq;
}

static bool obj_str(const msgpack_object *o, const char *s)
{
    return gr_term_is_str(o, s) != 0;
}

static girder_pid obj_pid(const msgpack_object *o)
{
    gr_term_id id;

    ck_assert_int_eq(gr_term_parse_id(o, GR_TERM_EXT_PID, &id), 0);
    return (girder_pid){0, id.creation, id.id};
}

static bool obj_ref_eq(const msgpack_object *o, girder_ref ref)
{
    gr_term_id id;

    return gr_term_parse_id(o, GR_TERM_EXT_REF, &id) == 0 && id.id == ref.id &&
           id.creation == ref.creation;
}

static const msgpack_object *arr(const msgpack_object *o, uint32_t n)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o->via.array.size, n);
    return o->via.array.ptr;
}

/* ---- the test worker "tw" ----------------------------------------------------------- */

typedef struct tw {
    char name[64];        /* registered name, "" = none */
    bool ignore_shutdown; /* trapping and deaf to exit signals */
    bool quiet;           /* no started/terminated reports */
} tw;

static void tw_report(girder_ctx *ctx, girder_msg *m)
{
    if (m && girder_send_name(ctx, "probe", m) < 0) {
        girder_msg_unref(m);
    }
}

static girder_msg *pack_report(girder_ctx *ctx, const char *what, const char *name,
                               const girder_msg *reason, unsigned seq)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, what, strlen(what));
    msgpack_pack_str_with_body(&pk, name, strlen(name));
    if (reason) {
        msgpack_sbuffer_write(&sb, girder_msg_data(reason), girder_msg_size(reason));
        msgpack_pack_unsigned_int(&pk, seq);
    } else {
        girder_pack_pid(ctx, &pk, girder_self(ctx));
        msgpack_pack_nil(&pk);
    }
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static int tw_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_unpacked u;
    tw *w = calloc(1, sizeof(*w));
    bool trap = false;
    int r = 0;

    if (!w) {
        return -ENOMEM;
    }
    msgpack_unpacked_init(&u);
    if (arg && girder_msg_unpack(arg, &u) == 0 && u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object *k = &u.data.via.map.ptr[i].key;
            const msgpack_object *v = &u.data.via.map.ptr[i].val;

            if (obj_str(k, "name") && v->type == MSGPACK_OBJECT_STR &&
                v->via.str.size < sizeof(w->name)) {
                memcpy(w->name, v->via.str.ptr, v->via.str.size);
            } else if (obj_str(k, "trap")) {
                trap = v->via.boolean;
            } else if (obj_str(k, "ignore_shutdown")) {
                w->ignore_shutdown = v->via.boolean;
                trap = trap || w->ignore_shutdown;
            } else if (obj_str(k, "quiet")) {
                w->quiet = v->via.boolean;
            } else if (obj_str(k, "fail_init")) {
                r = v->via.boolean ? GR_EINIT : 0;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    if (r == 0 && w->name[0] && girder_register(ctx, w->name, girder_self(ctx)) < 0) {
        r = GR_ENAMETAKEN; /* would be a runtime bug: names vanish at exit */
    }
    if (r < 0) {
        free(w);
        return r;
    }
    girder_trap_exit(ctx, trap);
    if (!w->quiet) {
        tw_report(ctx, pack_report(ctx, "started", w->name, NULL, 0));
    }
    *ret_state = w;
    return 0;
}

static int tw_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    tw *w = state;
    msgpack_unpacked u;
    int r = GIRDER_CONTINUE;

    if (girder_msg_is_atom(msg, "crash")) {
        girder_msg *why = girder_msg_atom("crashed");

        girder_stop(ctx, why);
        girder_msg_unref(why);
        return GIRDER_STOP;
    }
    if (girder_msg_is_atom(msg, "normal")) {
        return GIRDER_STOP;
    }
    msgpack_unpacked_init(&u);
    if (girder_msg_unpack(msg, &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY &&
        u.data.via.array.size > 0) {
        const msgpack_object *a = u.data.via.array.ptr;
        uint32_t n = u.data.via.array.size;
        girder_pid from;
        girder_ref ref;

        if (n == 2 && obj_str(&a[0], "stop")) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            girder_msg *why;

            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_object(&pk, a[1]);
            why = girder_msg_new(sb.data, sb.size);
            msgpack_sbuffer_destroy(&sb);
            girder_stop(ctx, why);
            girder_msg_unref(why);
            r = GIRDER_STOP;
        } else if (n == 3 && obj_str(&a[0], "EXIT") && w->ignore_shutdown) {
            if (!w->quiet) {
                tw_report(ctx, pack_report(ctx, "ignored", w->name, NULL, 0));
            }
        } else if (n == 3 && obj_str(&a[0], "EXIT")) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            girder_msg *why;

            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_object(&pk, a[2]);
            why = girder_msg_new(sb.data, sb.size);
            msgpack_sbuffer_destroy(&sb);
            girder_stop(ctx, why);
            girder_msg_unref(why);
            r = GIRDER_STOP;
        } else if (n == 4 && obj_str(&a[0], "$call") && girder_get_pid(ctx, &a[1], &from) == 0 &&
                   girder_get_ref(ctx, &a[2], &ref) == 0) {
            girder_msg *pong = girder_msg_atom("pong");

            girder_reply(ctx, from, ref, pong);
            girder_msg_unref(pong);
        }
    }
    msgpack_unpacked_destroy(&u);
    return r;
}

static void tw_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    tw *w = state;

    if (!w->quiet) {
        tw_report(ctx,
                  pack_report(ctx, "terminated", w->name, reason, atomic_fetch_add(&term_seq, 1)));
    }
    free(w);
}

static const girder_behaviour tw_behaviour = {
    .name = "tw",
    .init = tw_init,
    .handle = tw_handle,
    .terminate = tw_terminate,
};

/* ---- fixture and probe helpers ------------------------------------------------------ */

static girder_msg *stash[STASH_MAX];
static size_t nstash;

static int do_register_probe(girder_ctx *ctx, void *arg)
{
    return girder_register(ctx, "probe", girder_self(ctx));
}

static void setup(void)
{
    gr_rt_config cfg = {.node_name = "sup@127.0.0.1", .schedulers = 3};

    gr_log_setup("supervisor_test", GR_LOG_WARN);
    atomic_store(&term_seq, 0);
    ck_assert_int_eq(gr_rt_new(&cfg, &rt), 0);
    ck_assert_int_eq(girder_behaviour_register(rt, &tw_behaviour), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
    ck_assert_int_eq(gr_probe_run(probe, do_register_probe, NULL), 0);
}

static void teardown(void)
{
    while (nstash > 0) {
        girder_msg_unref(stash[--nstash]);
    }
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    rt = gr_rt_free(rt);
}

/* A received message, unpacked. */
typedef struct got {
    girder_msg *m;
    msgpack_unpacked u;
    const msgpack_object *a; /* the elements of the top-level array */
    uint32_t n;
} got;

static void got_free(got *g)
{
    if (g->m) {
        msgpack_unpacked_destroy(&g->u);
        g->m = girder_msg_unref(g->m);
    }
}

typedef bool (*match_fn)(const msgpack_object *a, uint32_t n, const void *arg);

static bool try_match(girder_msg *m, match_fn f, const void *arg, got *ret)
{
    msgpack_unpacked_init(&ret->u);
    ck_assert_int_eq(girder_msg_unpack(m, &ret->u), 0);
    if (ret->u.data.type == MSGPACK_OBJECT_ARRAY &&
        f(ret->u.data.via.array.ptr, ret->u.data.via.array.size, arg)) {
        ret->m = m;
        ret->a = ret->u.data.via.array.ptr;
        ret->n = ret->u.data.via.array.size;
        return true;
    }
    msgpack_unpacked_destroy(&ret->u);
    return false;
}

static char waiting_for[128]; /* what recv_match waits for, for failure messages */

/* Print what arrived but was not wanted (on a timeout). */
static void dump_stash(void)
{
    char buf[512];

    for (size_t i = 0; i < nstash; i++) {
        msgpack_unpacked u;

        msgpack_unpacked_init(&u);
        if (girder_msg_unpack(stash[i], &u) == 0) {
            msgpack_object_print_buffer(buf, sizeof(buf), u.data);
            fprintf(stderr, "  unmatched: %s\n", buf);
        }
        msgpack_unpacked_destroy(&u);
    }
}

/* The first message (stashed ones first, in arrival order) matching f; others
 * are stashed. Fails the test after WAIT_MS (scaled). */
static void recv_match(match_fn f, const void *arg, got *ret)
{
    int64_t deadline = gr_test_now_ms() + gr_test_ms(WAIT_MS);
    girder_msg *m;

    for (size_t i = 0; i < nstash; i++) {
        if (try_match(stash[i], f, arg, ret)) {
            memmove(&stash[i], &stash[i + 1], (nstash - i - 1) * sizeof(stash[0]));
            nstash--;
            return;
        }
    }
    for (;;) {
        int64_t left = deadline - gr_test_now_ms();

        if (left <= 0 || gr_probe_recv(probe, (int)left, &m) < 0) {
            dump_stash();
            ck_abort_msg("timed out waiting for %s", waiting_for);
        }
        if (try_match(m, f, arg, ret)) {
            return;
        }
        ck_assert_uint_lt(nstash, STASH_MAX);
        stash[nstash++] = m;
    }
}

static bool m_started(const msgpack_object *a, uint32_t n, const void *name)
{
    return n == 4 && obj_str(&a[0], "started") && obj_str(&a[1], name);
}

static bool m_terminated(const msgpack_object *a, uint32_t n, const void *name)
{
    return n == 4 && obj_str(&a[0], "terminated") && obj_str(&a[1], name);
}

static bool m_ignored(const msgpack_object *a, uint32_t n, const void *name)
{
    return n == 4 && obj_str(&a[0], "ignored") && obj_str(&a[1], name);
}

static bool m_reply(const msgpack_object *a, uint32_t n, const void *ref)
{
    return n == 3 && obj_str(&a[0], "$reply") && obj_ref_eq(&a[1], *(const girder_ref *)ref);
}

static bool m_down(const msgpack_object *a, uint32_t n, const void *ref)
{
    return n == 5 && obj_str(&a[0], "DOWN") && obj_ref_eq(&a[1], *(const girder_ref *)ref);
}

/* Is a message matching f already stashed or waiting? (Used after a sync
 * point to prove something did NOT happen.) */
static bool stashed(match_fn f, const void *arg)
{
    girder_msg *m;
    got g;

    while (gr_probe_recv(probe, 0, &m) == 0) {
        ck_assert_uint_lt(nstash, STASH_MAX);
        stash[nstash++] = m;
    }
    for (size_t i = 0; i < nstash; i++) {
        if (try_match(stash[i], f, arg, &g)) {
            msgpack_unpacked_destroy(&g.u);
            return true;
        }
    }
    return false;
}

static girder_pid wait_started(const char *name)
{
    got g;
    girder_pid pid;

    snprintf(waiting_for, sizeof(waiting_for), "started %s", name);
    recv_match(m_started, name, &g);
    pid = obj_pid(&g.a[2]);
    got_free(&g);
    return pid;
}

/* Wait for `name`'s terminate report; check its reason; return its sequence. */
static unsigned wait_terminated(const char *name, const char *reason_json)
{
    got g;
    unsigned seq;

    snprintf(waiting_for, sizeof(waiting_for), "terminated %s", name);
    recv_match(m_terminated, name, &g);
    ck_assert_msg(obj_is(&g.a[2], reason_json), "%s terminated with an unexpected reason", name);
    seq = (unsigned)g.a[3].via.u64;
    got_free(&g);
    return seq;
}

typedef struct spawn_op {
    const girder_behaviour *b;
    girder_msg *arg;
    girder_pid pid;
    girder_ref mref;
} spawn_op;

static int do_spawn(girder_ctx *ctx, void *arg)
{
    spawn_op *o = arg;

    return girder_spawn(ctx, o->b, o->arg, GIRDER_SPAWN_MONITOR, &o->pid, &o->mref);
}

static int do_spawn_linked(girder_ctx *ctx, void *arg)
{
    spawn_op *o = arg;

    return girder_spawn(ctx, o->b, o->arg, GIRDER_SPAWN_LINK, &o->pid, NULL);
}

typedef struct monitor_op {
    girder_pid pid;
    girder_ref *ret_ref;
} monitor_op;

static int do_monitor(girder_ctx *ctx, void *arg)
{
    monitor_op *o = arg;

    return girder_monitor(ctx, o->pid, o->ret_ref);
}

/* Spawn a supervisor (monitored by the probe) with spec `arg` (taken). */
static girder_pid spawn_sup(girder_msg *arg, girder_ref *ret_mref)
{
    spawn_op o = {.b = &girder_supervisor, .arg = arg};

    ck_assert_int_eq(gr_probe_run(probe, do_spawn, &o), 0);
    girder_msg_unref(arg);
    *ret_mref = o.mref;
    return o.pid;
}

typedef struct call_op {
    girder_pid to;
    girder_msg *req;
    girder_ref ref;
} call_op;

static int do_call(girder_ctx *ctx, void *arg)
{
    call_op *o = arg;

    return girder_call(ctx, o->to, o->req, false, &o->ref);
}

/* Send a call (request taken) without waiting; returns its ref. */
static girder_ref call_async(girder_pid to, girder_msg *req)
{
    call_op o = {.to = to, .req = req};

    ck_assert_int_eq(gr_probe_run(probe, do_call, &o), 0);
    girder_msg_unref(req);
    return o.ref;
}

static void wait_reply(girder_ref ref, got *ret)
{
    snprintf(waiting_for, sizeof(waiting_for), "a reply");
    recv_match(m_reply, &ref, ret);
}

/* Call and check the response against JSON-ish text. */
static void call_expect(girder_pid to, girder_msg *req, const char *resp_json)
{
    got g;
    char buf[512];

    wait_reply(call_async(to, req), &g);
    ck_assert_msg(obj_is(&g.a[2], resp_json), "unexpected reply (wanted %s): %s", resp_json,
                  (msgpack_object_print_buffer(buf, sizeof(buf), g.a[2]), buf));
    got_free(&g);
}

/* ["ok", Pid] from a call. */
static girder_pid call_ok_pid(girder_pid to, girder_msg *req)
{
    got g;
    const msgpack_object *r;
    girder_pid pid;

    wait_reply(call_async(to, req), &g);
    r = arr(&g.a[2], 2);
    ck_assert(obj_str(&r[0], "ok"));
    pid = obj_pid(&r[1]);
    got_free(&g);
    return pid;
}

typedef struct exit_op {
    girder_pid to;
    girder_msg *reason;
} exit_op;

static int do_exit(girder_ctx *ctx, void *arg)
{
    exit_op *o = arg;

    return girder_exit(ctx, o->to, o->reason);
}

/* Exit signal from the probe (a non-child: the supervisor's "parent"). */
static void send_exit(girder_pid to, girder_msg *reason)
{
    exit_op o = {to, reason};

    ck_assert_int_eq(gr_probe_run(probe, do_exit, &o), 0);
    girder_msg_unref(reason);
}

static void send_to(girder_pid to, girder_msg *m)
{
    ck_assert_int_eq(gr_rt_send(rt, to, m), 0);
}

static void send_name(const char *name, girder_msg *m)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_whereis(rt, name, &pid), 0);
    send_to(pid, m);
}

static void wait_down(girder_ref mref, const char *reason_json)
{
    got g;
    char buf[512];

    snprintf(waiting_for, sizeof(waiting_for), "DOWN %s", reason_json);
    recv_match(m_down, &mref, &g);
    ck_assert_msg(obj_is(&g.a[4], reason_json), "supervisor exit reason (wanted %s): %s",
                  reason_json, (msgpack_object_print_buffer(buf, sizeof(buf), g.a[4]), buf));
    got_free(&g);
}

static girder_pid whereis(const char *name)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_whereis(rt, name, &pid), 0);
    return pid;
}

/* ["which_children"] -> the pid of child `id` (a string), or {0}. */
static girder_pid which_pid(const got *g, const char *id)
{
    const msgpack_object *list = &g->a[2];

    ck_assert_int_eq(list->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = arr(&list->via.array.ptr[i], 4);

        if (obj_str(&e[0], id)) {
            return e[1].type == MSGPACK_OBJECT_NIL ? (girder_pid){0} : obj_pid(&e[1]);
        }
    }
    ck_abort_msg("child %s not in which_children", id);
    return (girder_pid){0};
}

static void which(girder_pid sup, got *ret)
{
    wait_reply(call_async(sup, J("[\"which_children\"]")), ret);
}

#define WORKER(id, extra)                                                                          \
    "{\"id\":\"" id "\",\"behaviour\":\"tw\",\"arg\":{\"name\":\"" id "\"}" extra "}"

/* Start a supervisor with three workers a, b, c and wait until all run. */
static girder_pid start_abc(const char *strategy, girder_ref *mref, girder_pid pids[3])
{
    girder_pid sup =
        spawn_sup(J("{\"strategy\":\"%s\",\"intensity\":10,\"period_ms\":60000,"
                    "\"children\":[" WORKER("a", "") "," WORKER("b", "") "," WORKER("c", "") "]}",
                    strategy),
                  mref);

    pids[0] = wait_started("a");
    pids[1] = wait_started("b");
    pids[2] = wait_started("c");
    return sup;
}

/* ---- strategies -------------------------------------------------------------------- */

START_TEST(test_one_for_one)
{
    girder_ref mref;
    girder_pid p[3], b2;
    girder_pid sup = start_abc("one_for_one", &mref, p);
    got g;

    ck_assert(girder_pid_eq(whereis("b"), p[1]));
    send_to(p[1], girder_msg_atom("crash"));
    wait_terminated("b", "\"crashed\"");
    b2 = wait_started("b");
    ck_assert(!girder_pid_eq(b2, p[1]));
    /* The call is handled after the restart: it proves a and c were untouched. */
    which(sup, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "a"), p[0]));
    ck_assert(girder_pid_eq(which_pid(&g, "b"), b2));
    ck_assert(girder_pid_eq(which_pid(&g, "c"), p[2]));
    got_free(&g);
    ck_assert(!stashed(m_terminated, "a"));
    ck_assert(!stashed(m_terminated, "c"));
    ck_assert(girder_pid_eq(whereis("b"), b2));

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_down(mref, "\"shutdown\"");
}
END_TEST

START_TEST(test_one_for_all)
{
    girder_ref mref;
    girder_pid p[3], q[3];
    girder_pid sup = start_abc("one_for_all", &mref, p);
    unsigned sb, sc, sa;
    got g;

    send_to(p[1], girder_msg_atom("crash"));
    sb = wait_terminated("b", "\"crashed\"");
    sc = wait_terminated("c", "\"shutdown\"");
    sa = wait_terminated("a", "\"shutdown\"");
    ck_assert_uint_lt(sb, sc); /* the others stop after, in reverse start order */
    ck_assert_uint_lt(sc, sa);
    q[0] = wait_started("a");
    q[1] = wait_started("b");
    q[2] = wait_started("c");
    for (int i = 0; i < 3; i++) {
        ck_assert(!girder_pid_eq(p[i], q[i]));
    }
    which(sup, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "a"), q[0]));
    ck_assert(girder_pid_eq(which_pid(&g, "b"), q[1]));
    ck_assert(girder_pid_eq(which_pid(&g, "c"), q[2]));
    got_free(&g);

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_down(mref, "\"shutdown\"");
}
END_TEST

START_TEST(test_rest_for_one)
{
    girder_ref mref;
    girder_pid p[3], b2, c2;
    girder_pid sup = start_abc("rest_for_one", &mref, p);
    got g;

    send_to(p[1], girder_msg_atom("crash"));
    wait_terminated("b", "\"crashed\"");
    wait_terminated("c", "\"shutdown\"");
    b2 = wait_started("b");
    c2 = wait_started("c");
    which(sup, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "a"), p[0]));
    ck_assert(girder_pid_eq(which_pid(&g, "b"), b2));
    ck_assert(girder_pid_eq(which_pid(&g, "c"), c2));
    ck_assert(!girder_pid_eq(c2, p[2]));
    got_free(&g);
    ck_assert(!stashed(m_terminated, "a"));

    /* The last child crashing restarts only itself. */
    send_to(c2, girder_msg_atom("crash"));
    wait_terminated("c", "\"crashed\"");
    wait_started("c");
    which(sup, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "a"), p[0]));
    ck_assert(girder_pid_eq(which_pid(&g, "b"), b2));
    got_free(&g);

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- restart types ------------------------------------------------------------------- */

START_TEST(test_restart_types)
{
    girder_ref mref;
    /* one child per line: clearer than the formatter's layout of the macros */
    // clang-format off
    girder_pid sup = spawn_sup(
        J("{\"strategy\":\"one_for_one\",\"intensity\":20,\"period_ms\":60000,\"children\":["
          WORKER("perm", ",\"restart\":\"permanent\"") ","
          WORKER("tn", ",\"restart\":\"transient\"") ","
          WORKER("ta", ",\"restart\":\"transient\"") ","
          WORKER("ts", ",\"restart\":\"transient\"") ","
          WORKER("tmp", ",\"restart\":\"temporary\"") ","
          WORKER("tmp2", ",\"restart\":\"temporary\"") "]}"),
        &mref);
    // clang-format on
    girder_pid perm, ta;
    got g;

    perm = wait_started("perm");
    wait_started("tn");
    ta = wait_started("ta");
    wait_started("ts");
    wait_started("tmp");
    wait_started("tmp2");

    /* permanent: restarted even after a normal exit */
    send_to(perm, girder_msg_atom("normal"));
    wait_terminated("perm", "\"normal\"");
    ck_assert(!girder_pid_eq(wait_started("perm"), perm));

    /* transient: normal and shutdown exits are final, abnormal ones restart */
    send_name("tn", girder_msg_atom("normal"));
    wait_terminated("tn", "\"normal\"");
    send_name("ts", J("[\"stop\", [\"shutdown\", \"done\"]]"));
    wait_terminated("ts", "[\"shutdown\", \"done\"]");
    send_to(ta, girder_msg_atom("crash"));
    wait_terminated("ta", "\"crashed\"");
    ck_assert(!girder_pid_eq(wait_started("ta"), ta));

    /* temporary: never restarted, and forgotten */
    send_name("tmp", girder_msg_atom("crash"));
    wait_terminated("tmp", "\"crashed\"");
    send_name("tmp2", girder_msg_atom("normal"));
    wait_terminated("tmp2", "\"normal\"");

    which(sup, &g);
    ck_assert_uint_eq(g.a[2].via.array.size, 4);
    ck_assert(which_pid(&g, "tn").id == 0); /* kept, not running */
    ck_assert(which_pid(&g, "ts").id == 0);
    ck_assert(which_pid(&g, "perm").id != 0);
    ck_assert(which_pid(&g, "ta").id != 0);
    got_free(&g);
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":4,\"active\":2,\"supervisors\":0,\"workers\":4}");
    ck_assert(!stashed(m_started, "tn"));
    ck_assert(!stashed(m_started, "tmp"));
    ck_assert(!stashed(m_started, "tmp2"));
    ck_assert_int_eq(gr_rt_whereis(rt, "tmp", &perm), GR_ENONAME);

    /* a transient child that stopped can be restarted by hand */
    call_ok_pid(sup, J("[\"restart_child\", \"tn\"]"));
    wait_started("tn");

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- intensity ------------------------------------------------------------------------- */

START_TEST(test_intensity_exceeded)
{
    girder_ref mref;
    girder_pid sup = spawn_sup(J("{\"strategy\":\"one_for_one\",\"intensity\":2,"
                                 "\"period_ms\":60000,\"children\":[" WORKER("a", "") "," WORKER(
                                     "b", "") "," WORKER("c", "") "]}"),
                               &mref);
    girder_pid a = wait_started("a"), dummy;
    unsigned sc, sb;

    wait_started("b");
    wait_started("c");
    for (int i = 0; i < 2; i++) {
        send_to(a, girder_msg_atom("crash"));
        wait_terminated("a", "\"crashed\"");
        a = wait_started("a");
    }
    send_to(a, girder_msg_atom("crash")); /* the third restart within the period */
    wait_terminated("a", "\"crashed\"");
    sc = wait_terminated("c", "\"shutdown\"");
    sb = wait_terminated("b", "\"shutdown\"");
    ck_assert_uint_lt(sc, sb);
    wait_down(mref, "\"shutdown\"");
    ck_assert(!stashed(m_started, "a"));
    /* names vanish before the exit signals that the supervisor waited for */
    ck_assert_int_eq(gr_rt_whereis(rt, "a", &dummy), GR_ENONAME);
    ck_assert_int_eq(gr_rt_whereis(rt, "b", &dummy), GR_ENONAME);
    ck_assert_int_eq(gr_rt_whereis(rt, "c", &dummy), GR_ENONAME);
    (void)sup;
}
END_TEST

START_TEST(test_intensity_period)
{
    girder_ref mref;
    /* The period is wide (scaled with load) so that the third crash surely
     * falls inside it; the pause that lets the first restart leave the window
     * only has to be longer than it, which load cannot spoil. */
    int period = gr_test_ms(300);
    girder_pid sup = spawn_sup(
        J("{\"intensity\":1,\"period_ms\":%d,\"children\":[" WORKER("a", "") "]}", period), &mref);
    girder_pid a = wait_started("a");
    int64_t pause_ms = period + period / 2;
    struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * 1000000};

    send_to(a, girder_msg_atom("crash"));
    a = wait_started("a");
    nanosleep(&pause, NULL); /* the first restart leaves the window */
    send_to(a, girder_msg_atom("crash"));
    a = wait_started("a");
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":1,\"active\":1,\"supervisors\":0,\"workers\":1}");
    send_to(a, girder_msg_atom("crash")); /* the second within the period */
    wait_terminated("a", "\"crashed\"");
    wait_terminated("a", "\"crashed\"");
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- ordered shutdown ------------------------------------------------------------------- */

START_TEST(test_ordered_shutdown)
{
    girder_ref mref;
    // clang-format off
    girder_pid sup = spawn_sup(
        J("{\"children\":["
          WORKER("w1", "") ","
          WORKER("w2", ",\"arg\":{\"name\":\"w2\",\"trap\":true}") ","
          WORKER("w3", "") ","
          WORKER("w4", ",\"restart\":\"temporary\"") "]}"),
        &mref);
    // clang-format on
    unsigned s1, s2, s3, s4;

    wait_started("w1");
    wait_started("w2");
    wait_started("w3");
    wait_started("w4");
    send_exit(sup, J("[\"custom\", 42]"));
    s4 = wait_terminated("w4", "\"shutdown\"");
    s3 = wait_terminated("w3", "\"shutdown\"");
    s2 = wait_terminated("w2", "\"shutdown\""); /* trapping, and obeys */
    s1 = wait_terminated("w1", "\"shutdown\"");
    ck_assert_uint_lt(s4, s3);
    ck_assert_uint_lt(s3, s2);
    ck_assert_uint_lt(s2, s1);
    wait_down(mref, "[\"custom\", 42]"); /* exits with the reason it was given */
}
END_TEST

START_TEST(test_shutdown_timeout_kill)
{
    girder_ref mref;
    girder_pid sup =
        spawn_sup(J("{\"children\":["
                    "{\"id\":\"slow\",\"behaviour\":\"tw\",\"shutdown_ms\":200,"
                    "\"arg\":{\"name\":\"slow\",\"ignore_shutdown\":true}},"
                    "{\"id\":\"brutal\",\"behaviour\":\"tw\",\"shutdown_ms\":0,"
                    "\"arg\":{\"name\":\"brutal\",\"trap\":true}},"
                    "{\"id\":\"polite\",\"behaviour\":\"tw\",\"shutdown_ms\":\"infinity\","
                    "\"arg\":{\"name\":\"polite\",\"trap\":true}}]}"),
                  &mref);
    unsigned s1, s2, s3;
    int64_t t0;

    wait_started("slow");
    wait_started("brutal");
    wait_started("polite");
    t0 = gr_test_now_ms();
    send_exit(sup, girder_msg_atom("shutdown"));
    s3 = wait_terminated("polite", "\"shutdown\"");
    s2 = wait_terminated("brutal", "\"killed\""); /* shutdown_ms 0: straight "kill" */
    s1 = wait_terminated("slow", "\"killed\"");   /* ignored "shutdown", killed at 200 ms */
    ck_assert_int_ge(gr_test_now_ms() - t0, 200);
    ck_assert_uint_lt(s3, s2);
    ck_assert_uint_lt(s2, s1);
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- dynamic children ------------------------------------------------------------------- */

START_TEST(test_dynamic_children)
{
    girder_ref mref;
    girder_pid sup = spawn_sup(J("{\"strategy\":\"one_for_one\",\"intensity\":5,"
                                 "\"period_ms\":1000,\"children\":[]}"),
                               &mref);
    girder_pid d1, d2, d3, anon;
    got g;

    call_expect(sup, J("[\"which_children\"]"), "[]");
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":0,\"active\":0,\"supervisors\":0,\"workers\":0}");
    d1 = call_ok_pid(sup, J("[\"start_child\", " WORKER("d1", "") "]"));
    ck_assert(girder_pid_eq(wait_started("d1"), d1));
    d2 = call_ok_pid(sup, J("[\"start_child\", " WORKER("d2", ",\"restart\":\"transient\"") "]"));
    ck_assert(girder_pid_eq(wait_started("d2"), d2));
    anon = call_ok_pid(sup, J("[\"start_child\", {\"id\":null,\"behaviour\":\"tw\","
                              "\"arg\":{\"name\":\"anon\"}}]"));
    wait_started("anon");

    /* duplicates */
    wait_reply(call_async(sup, J("[\"start_child\", " WORKER("d1", "") "]")), &g);
    {
        const msgpack_object *r = arr(&g.a[2], 2), *e;

        ck_assert(obj_str(&r[0], "error"));
        e = arr(&r[1], 2);
        ck_assert(obj_str(&e[0], "already_started"));
        ck_assert(girder_pid_eq(obj_pid(&e[1]), d1));
    }
    got_free(&g);

    which(sup, &g);
    ck_assert_uint_eq(g.a[2].via.array.size, 3);
    {
        const msgpack_object *e = arr(&g.a[2].via.array.ptr[2], 4);

        ck_assert(e[0].type == MSGPACK_OBJECT_NIL);
        ck_assert(girder_pid_eq(obj_pid(&e[1]), anon));
        ck_assert(obj_str(&e[2], "worker"));
        ck_assert(obj_str(&e[3], "tw"));
    }
    got_free(&g);
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":3,\"active\":3,\"supervisors\":0,\"workers\":3}");

    /* terminate_child keeps a named spec, forgets an anonymous one */
    call_expect(sup, J("[\"terminate_child\", \"d1\"]"), "\"ok\"");
    wait_terminated("d1", "\"shutdown\"");
    call_expect(sup, J("[\"terminate_child\", \"d1\"]"), "\"ok\"");
    call_expect(sup, J("[\"terminate_child\", \"nope\"]"), "[\"error\", \"not_found\"]");
    which(sup, &g);
    ck_assert(which_pid(&g, "d1").id == 0);
    got_free(&g);
    call_expect(sup, J("[\"start_child\", " WORKER("d1", "") "]"),
                "[\"error\", \"already_present\"]");
    call_expect(sup, J("[\"delete_child\", \"d2\"]"), "[\"error\", \"running\"]");
    call_expect(sup, J("[\"restart_child\", \"d2\"]"), "[\"error\", \"running\"]");
    d3 = call_ok_pid(sup, J("[\"restart_child\", \"d1\"]"));
    ck_assert(girder_pid_eq(wait_started("d1"), d3));
    ck_assert(!girder_pid_eq(d3, d1));
    call_expect(sup, J("[\"terminate_child\", \"d1\"]"), "\"ok\"");
    wait_terminated("d1", "\"shutdown\"");
    call_expect(sup, J("[\"delete_child\", \"d1\"]"), "\"ok\"");
    call_expect(sup, J("[\"delete_child\", \"d1\"]"), "[\"error\", \"not_found\"]");
    call_expect(sup, J("[\"restart_child\", \"d1\"]"), "[\"error\", \"not_found\"]");
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":2,\"active\":2,\"supervisors\":0,\"workers\":2}");

    /* bad requests and specs answer errors; the supervisor carries on */
    call_expect(sup,
                J("[\"start_child\", {\"id\":\"x\",\"behaviour\":\"tw\","
                  "\"restart\":\"sometimes\"}]"),
                "[\"error\", [\"bad_child_spec\", \"x\", \"bad_restart\"]]");
    call_expect(sup, J("[\"start_child\", {\"id\":\"x\",\"behaviour\":\"nope\"}]"),
                "[\"error\", [\"bad_child_spec\", \"x\", \"unknown_behaviour\"]]");
    call_expect(sup, J("[\"start_child\", {\"behaviour\":\"tw\"}]"),
                "[\"error\", [\"bad_child_spec\", null, \"missing_id\"]]");
    call_expect(sup, J("[\"start_child\", 7]"),
                "[\"error\", [\"bad_child_spec\", null, \"not_a_map\"]]");
    call_expect(sup, J("[\"frobnicate\"]"), "[\"error\", \"unknown_call\"]");
    call_expect(sup, J("\"which_children\""), "[\"error\", \"unknown_call\"]");
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":2,\"active\":2,\"supervisors\":0,\"workers\":2}");

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_terminated("anon", "\"shutdown\"");
    wait_terminated("d2", "\"shutdown\"");
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ["terminate_child", Pid], from inside the probe (pids are packed with a ctx). */
typedef struct term_pid_op {
    girder_pid sup;
    girder_pid child;
    girder_ref ref;
} term_pid_op;

static int do_terminate_pid(girder_ctx *ctx, void *arg)
{
    term_pid_op *o = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "terminate_child", 15);
    girder_pack_pid(ctx, &pk, o->child);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    r = girder_call(ctx, o->sup, m, false, &o->ref);
    girder_msg_unref(m);
    return r;
}

START_TEST(test_terminate_by_pid)
{
    girder_ref mref;
    girder_pid sup = spawn_sup(J("{\"children\":[]}"), &mref);
    girder_pid anon, named;
    term_pid_op o;
    got g;

    anon = call_ok_pid(sup, J("[\"start_child\", {\"id\":null,\"behaviour\":\"tw\","
                              "\"arg\":{\"name\":\"anon\"}}]"));
    named = call_ok_pid(sup, J("[\"start_child\", " WORKER("named", "") "]"));
    wait_started("anon");
    wait_started("named");

    o = (term_pid_op){.sup = sup, .child = anon};
    ck_assert_int_eq(gr_probe_run(probe, do_terminate_pid, &o), 0);
    wait_reply(o.ref, &g);
    ck_assert(obj_str(&g.a[2], "ok"));
    got_free(&g);
    wait_terminated("anon", "\"shutdown\"");

    o = (term_pid_op){.sup = sup, .child = named};
    ck_assert_int_eq(gr_probe_run(probe, do_terminate_pid, &o), 0);
    wait_reply(o.ref, &g);
    ck_assert(obj_str(&g.a[2], "ok"));
    got_free(&g);
    wait_terminated("named", "\"shutdown\"");

    /* the anonymous spec is gone, the named one is kept */
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":1,\"active\":0,\"supervisors\":0,\"workers\":1}");
    o = (term_pid_op){.sup = sup, .child = anon};
    ck_assert_int_eq(gr_probe_run(probe, do_terminate_pid, &o), 0);
    wait_reply(o.ref, &g);
    ck_assert(obj_is(&g.a[2], "[\"error\", \"not_found\"]"));
    got_free(&g);

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- bad specs -------------------------------------------------------------------------- */

START_TEST(test_bad_specs)
{
    static const struct {
        const char *spec;
        const char *reason;
    } cases[] = {
        {"7", "[\"bad_supervisor_spec\", \"not_a_map\"]"},
        {"{\"strategy\":\"one_for_two\"}", "[\"bad_supervisor_spec\", \"bad_strategy\"]"},
        {"{\"intensity\":\"x\"}", "[\"bad_supervisor_spec\", \"bad_intensity\"]"},
        {"{\"period_ms\":0}", "[\"bad_supervisor_spec\", \"bad_period\"]"},
        {"{\"children\":{}}", "[\"bad_supervisor_spec\", \"bad_children\"]"},
        {"{\"strategie\":\"one_for_one\"}", "[\"bad_supervisor_spec\", \"unknown_key\"]"},
        {"{\"children\":[{\"behaviour\":\"tw\"}]}", "[\"bad_child_spec\", null, \"missing_id\"]"},
        {"{\"children\":[{\"id\":\"a\"}]}", "[\"bad_child_spec\", \"a\", \"missing_behaviour\"]"},
        {"{\"children\":[{\"id\":\"a\",\"behaviour\":7}]}",
         "[\"bad_child_spec\", \"a\", \"bad_behaviour\"]"},
        {"{\"children\":[{\"id\":\"a\",\"behaviour\":\"nope\"}]}",
         "[\"bad_child_spec\", \"a\", \"unknown_behaviour\"]"},
        {"{\"children\":[{\"id\":\"a\",\"behaviour\":\"tw\",\"restart\":1}]}",
         "[\"bad_child_spec\", \"a\", \"bad_restart\"]"},
        {"{\"children\":[{\"id\":\"a\",\"behaviour\":\"tw\",\"shutdown_ms\":-1}]}",
         "[\"bad_child_spec\", \"a\", \"bad_shutdown\"]"},
        {"{\"children\":[{\"id\":\"a\",\"behaviour\":\"tw\",\"type\":\"boss\"}]}",
         "[\"bad_child_spec\", \"a\", \"bad_type\"]"},
        {"{\"children\":[{\"id\":\"a\",\"behaviour\":\"tw\",\"restrat\":\"temporary\"}]}",
         "[\"bad_child_spec\", \"a\", \"unknown_key\"]"},
        {"{\"children\":[[1]]}", "[\"bad_child_spec\", null, \"not_a_map\"]"},
        /* a valid first child is not started when a later spec is bad */
        {"{\"children\":[" WORKER("ok1", "") ",{\"id\":\"ok1\",\"behaviour\":\"tw\"}]}",
         "[\"bad_child_spec\", \"ok1\", \"duplicate_id\"]"},
        {"{\"children\":[" WORKER("ok1", "") ",{\"id\":\"b\",\"behaviour\":\"tw\",\"spread\":1}]}",
         "[\"bad_child_spec\", \"b\", \"bad_spread\"]"},
    };
    girder_pid dummy;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        girder_ref mref;

        spawn_sup(J("%s", cases[i].spec), &mref);
        wait_down(mref, cases[i].reason);
    }
    {
        /* no argument at all */
        spawn_op o = {.b = &girder_supervisor, .arg = NULL};

        ck_assert_int_eq(gr_probe_run(probe, do_spawn, &o), 0);
        wait_down(o.mref, "[\"bad_supervisor_spec\", \"not_a_map\"]");
    }
    ck_assert_int_eq(gr_rt_whereis(rt, "ok1", &dummy), GR_ENONAME);
    ck_assert(!stashed(m_started, "ok1"));
}
END_TEST

/* ---- nesting ------------------------------------------------------------------------------ */

START_TEST(test_nested)
{
    girder_ref mref;
    girder_pid sup = spawn_sup(
        J("{\"strategy\":\"one_for_one\",\"intensity\":5,\"period_ms\":60000,\"children\":[" WORKER(
            "x0", "") ","
                      "{\"id\":\"sub\",\"behaviour\":\"supervisor\",\"arg\":{\"strategy\":\"one_"
                      "for_all\","
                      "\"children\":[" WORKER("x1", "") "," WORKER("x2", "") "]}}," WORKER(
                          "x3", "") "]}"),
        &mref);
    girder_pid x0, x1, x2, x3, sub, x1b, x2b;
    unsigned s0, s1, s2, s3;
    got g;

    x0 = wait_started("x0");
    x1 = wait_started("x1");
    x2 = wait_started("x2");
    x3 = wait_started("x3");
    which(sup, &g);
    sub = which_pid(&g, "sub");
    {
        const msgpack_object *e = arr(&g.a[2].via.array.ptr[1], 4);

        ck_assert(obj_str(&e[2], "supervisor")); /* inferred from the behaviour */
        ck_assert(obj_str(&e[3], "supervisor"));
    }
    got_free(&g);
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":3,\"active\":3,\"supervisors\":1,\"workers\":2}");

    /* a crash inside sub is sub's business (one_for_all there) */
    send_to(x2, girder_msg_atom("crash"));
    wait_terminated("x2", "\"crashed\"");
    wait_terminated("x1", "\"shutdown\"");
    x1b = wait_started("x1");
    x2b = wait_started("x2");
    which(sup, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "sub"), sub));
    ck_assert(girder_pid_eq(which_pid(&g, "x0"), x0));
    got_free(&g);

    /* killing sub: its children die through their links, top restarts sub */
    send_exit(sub, girder_msg_atom("kill"));
    wait_terminated("x1", "\"killed\"");
    wait_terminated("x2", "\"killed\"");
    ck_assert(!girder_pid_eq(wait_started("x1"), x1b));
    ck_assert(!girder_pid_eq(wait_started("x2"), x2b));
    which(sup, &g);
    ck_assert(!girder_pid_eq(which_pid(&g, "sub"), sub));
    ck_assert(girder_pid_eq(which_pid(&g, "x3"), x3));
    got_free(&g);

    /* ordered shutdown goes depth-first: x3, then sub's x2, x1, then x0 */
    send_exit(sup, girder_msg_atom("shutdown"));
    s3 = wait_terminated("x3", "\"shutdown\"");
    s2 = wait_terminated("x2", "\"shutdown\"");
    s1 = wait_terminated("x1", "\"shutdown\"");
    s0 = wait_terminated("x0", "\"shutdown\"");
    ck_assert_uint_lt(s3, s2);
    ck_assert_uint_lt(s2, s1);
    ck_assert_uint_lt(s1, s0);
    wait_down(mref, "\"shutdown\"");
    (void)x1;
}
END_TEST

/* ---- calls during a restart ------------------------------------------------------------ */

START_TEST(test_calls_during_restart)
{
    girder_ref mref, r1, r2, r3;
    girder_pid sup = spawn_sup(
        J("{\"strategy\":\"one_for_all\",\"intensity\":5,\"period_ms\":60000,\"children\":["
          "{\"id\":\"slow\",\"behaviour\":\"tw\",\"shutdown_ms\":300,"
          "\"arg\":{\"name\":\"slow\",\"ignore_shutdown\":true}}," WORKER("a", "") "," WORKER(
              "b", "") "]}"),
        &mref);
    girder_pid slow, a, b, slow2, a2, b2;
    got g;

    slow = wait_started("slow");
    a = wait_started("a");
    b = wait_started("b");
    send_to(b, girder_msg_atom("crash"));
    wait_terminated("b", "\"crashed\"");
    wait_terminated("a", "\"shutdown\"");
    /* The supervisor now waits up to 300 ms for "slow": these calls queue. */
    r1 = call_async(sup, J("[\"which_children\"]"));
    r2 = call_async(sup, J("[\"terminate_child\", \"a\"]"));
    r3 = call_async(sup, J("[\"count_children\"]"));
    wait_terminated("slow", "\"killed\"");
    slow2 = wait_started("slow");
    b2 = wait_started("b");
    ck_assert(!girder_pid_eq(slow, slow2) && !girder_pid_eq(b, b2));

    /* answered in order, after the restart (the new "a" may be stopped by r2
     * before its init ever runs: spawning is asynchronous) */
    wait_reply(r1, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "slow"), slow2));
    a2 = which_pid(&g, "a");
    ck_assert(a2.id != 0 && !girder_pid_eq(a, a2));
    ck_assert(girder_pid_eq(which_pid(&g, "b"), b2));
    got_free(&g);
    wait_reply(r2, &g);
    ck_assert(obj_str(&g.a[2], "ok"));
    got_free(&g);
    wait_reply(r3, &g);
    ck_assert(obj_is(&g.a[2], "{\"specs\":3,\"active\":2,\"supervisors\":0,\"workers\":3}"));
    got_free(&g);

    /* during the final shutdown, calls are refused rather than queued */
    send_exit(sup, girder_msg_atom("shutdown"));
    wait_terminated("b", "\"shutdown\"");
    r1 = call_async(sup, J("[\"count_children\"]"));
    wait_reply(r1, &g);
    ck_assert(obj_is(&g.a[2], "[\"error\", \"shutting_down\"]"));
    got_free(&g);
    wait_terminated("slow", "\"killed\"");
    wait_down(mref, "\"shutdown\"");
}
END_TEST

START_TEST(test_parent_exit)
{
    girder_pid parent, sup;
    girder_ref mref;
    spawn_op o = {.b = &girder_supervisor};
    unsigned s1, s2;

    /* a tw process is the parent: it spawns the supervisor linked */
    girder_msg *parg = J("{\"name\":\"parent\"}");

    ck_assert_int_eq(gr_rt_spawn(rt, &tw_behaviour, parg, &parent), 0);
    girder_msg_unref(parg);
    wait_started("parent");
    o.arg = J("{\"children\":[" WORKER("k1", "") "," WORKER("k2", "") "]}");
    ck_assert_int_eq(gr_rt_run_in(rt, parent, do_spawn_linked, &o), 0);
    girder_msg_unref(o.arg);
    sup = o.pid;
    wait_started("k1");
    wait_started("k2");
    ck_assert_int_eq(gr_probe_run(probe, do_monitor, &(monitor_op){sup, &mref}), 0);

    send_to(parent, girder_msg_atom("crash"));
    wait_terminated("parent", "\"crashed\"");
    s2 = wait_terminated("k2", "\"shutdown\"");
    s1 = wait_terminated("k1", "\"shutdown\"");
    ck_assert_uint_lt(s2, s1);
    wait_down(mref, "\"crashed\""); /* the parent's reason */
}
END_TEST

typedef struct monitor_op2 {
    girder_pid pid;
    girder_ref ref;
} monitor_op2;

static int do_monitor2(girder_ctx *ctx, void *arg)
{
    monitor_op2 *o = arg;

    return girder_monitor(ctx, o->pid, &o->ref);
}

/* An EXIT that was queued while the supervisor was busy, from a child that a
 * later group restart then replaced, must be recognised as stale: not treated
 * as the parent's EXIT (which would stop the supervisor) nor restart twice. */
START_TEST(test_stale_exit_after_group_restart)
{
    girder_ref mref, tref, downx, downc;
    girder_pid sup = spawn_sup(
        J("{\"strategy\":\"rest_for_one\",\"intensity\":10,\"period_ms\":60000,"
          "\"children\":[" WORKER(
              "x", "") ","
                       "{\"id\":\"slow\",\"behaviour\":\"tw\",\"shutdown_ms\":\"infinity\","
                       "\"arg\":{\"name\":\"slow\",\"ignore_shutdown\":true}}," WORKER("c",
                                                                                       "") "]}"),
        &mref);
    girder_pid x = wait_started("x"), slow = wait_started("slow"), c = wait_started("c");
    girder_pid x2, c2;
    monitor_op2 m;
    got g;

    /* the supervisor gets busy stopping "slow", which ignores it */
    tref = call_async(sup, J("[\"terminate_child\", \"slow\"]"));
    snprintf(waiting_for, sizeof(waiting_for), "ignored slow");
    recv_match(m_ignored, "slow", &g);
    got_free(&g);
    /* meanwhile x and c die: both EXITs are deferred */
    m = (monitor_op2){.pid = x};
    ck_assert_int_eq(gr_probe_run(probe, do_monitor2, &m), 0);
    downx = m.ref;
    m = (monitor_op2){.pid = c};
    ck_assert_int_eq(gr_probe_run(probe, do_monitor2, &m), 0);
    downc = m.ref;
    send_to(x, girder_msg_atom("crash"));
    send_to(c, girder_msg_atom("crash"));
    recv_match(m_down, &downx, &g);
    got_free(&g);
    recv_match(m_down, &downc, &g);
    got_free(&g);
    wait_terminated("x", "\"crashed\"");
    wait_terminated("c", "\"crashed\"");
    /* now let the terminate finish: x's EXIT restarts x, slow and c (rest_for_one),
     * and c's deferred EXIT is then stale */
    send_exit(slow, girder_msg_atom("kill"));
    wait_reply(tref, &g);
    ck_assert(obj_str(&g.a[2], "ok"));
    got_free(&g);
    x2 = wait_started("x");
    wait_started("slow");
    c2 = wait_started("c");
    which(sup, &g);
    ck_assert(girder_pid_eq(which_pid(&g, "x"), x2));
    ck_assert(girder_pid_eq(which_pid(&g, "c"), c2)); /* c restarted once, not twice */
    ck_assert(!girder_pid_eq(c2, c));
    got_free(&g);
    call_expect(sup, J("[\"count_children\"]"),
                "{\"specs\":3,\"active\":3,\"supervisors\":0,\"workers\":3}");

    send_exit(sup, girder_msg_atom("shutdown"));
    wait_terminated("c", "\"shutdown\"");
    send_exit(whereis("slow"), girder_msg_atom("kill")); /* infinity: help it along */
    wait_terminated("x", "\"shutdown\"");
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- init failures of children ---------------------------------------------------------- */

START_TEST(test_child_init_failure_storm)
{
    girder_ref mref;

    /* A child whose init always fails is restarted until intensity runs out. */
    spawn_sup(J("{\"intensity\":3,\"period_ms\":60000,\"children\":["
                "{\"id\":\"bad\",\"behaviour\":\"tw\",\"arg\":{\"fail_init\":true}}]}"),
              &mref);
    wait_down(mref, "\"shutdown\"");
}
END_TEST

/* ---- many dynamic children --------------------------------------------------------------- */

typedef struct many_op {
    girder_pid sup;
    girder_msg *req;
    girder_ref *refs;
    size_t n;
} many_op;

static int do_many_calls(girder_ctx *ctx, void *arg)
{
    many_op *o = arg;
    int r;

    for (size_t i = 0; i < o->n; i++) {
        if ((r = girder_call(ctx, o->sup, o->req, false, &o->refs[i])) < 0) {
            return r;
        }
    }
    return 0;
}

static bool m_any_reply(const msgpack_object *a, uint32_t n, const void *arg)
{
    return n == 3 && obj_str(&a[0], "$reply");
}

/* count_children's "active" */
static uint64_t active(girder_pid sup)
{
    got g;
    uint64_t v = UINT64_MAX;

    wait_reply(call_async(sup, J("[\"count_children\"]")), &g);
    for (uint32_t i = 0; i < g.a[2].via.map.size; i++) {
        if (obj_str(&g.a[2].via.map.ptr[i].key, "active")) {
            v = g.a[2].via.map.ptr[i].val.via.u64;
        }
    }
    got_free(&g);
    return v;
}

START_TEST(test_many_dynamic_children)
{
    const size_t n = MANY_CHILDREN;
    girder_ref mref;
    girder_pid sup =
        spawn_sup(J("{\"intensity\":1000,\"period_ms\":60000,\"children\":[]}"), &mref);
    many_op o = {.sup = sup, .n = n};
    girder_pid *pids = calloc(n, sizeof(*pids));
    uint64_t base = gr_rt_process_count(rt);
    int64_t t0;

    ck_assert_ptr_nonnull(pids);
    o.refs = calloc(n, sizeof(*o.refs));
    ck_assert_ptr_nonnull(o.refs);
    o.req = J("[\"start_child\", {\"id\":null,\"behaviour\":\"tw\",\"spread\":true,"
              "\"restart\":\"permanent\",\"arg\":{\"quiet\":true}}]");
    t0 = gr_test_now_ms();
    ck_assert_int_eq(gr_probe_run(probe, do_many_calls, &o), 0);
    /* replies come back in request order: one sender, one receiver */
    for (size_t i = 0; i < n; i++) {
        got g;
        const msgpack_object *r;

        recv_match(m_any_reply, NULL, &g);
        ck_assert(obj_ref_eq(&g.a[1], o.refs[i]));
        r = arr(&g.a[2], 2);
        ck_assert(obj_str(&r[0], "ok"));
        pids[i] = obj_pid(&r[1]);
        got_free(&g);
    }
    fprintf(stderr, "many: %zu start_child calls in %lld ms\n", n,
            (long long)(gr_test_now_ms() - t0));
    girder_msg_unref(o.req);
    ck_assert_uint_eq(active(sup), n);

    /* Kill every 100th child: each is found by pid and restarted. */
    for (size_t i = 0; i < n; i += 100) {
        girder_msg *k = girder_msg_atom("kill");

        ck_assert_int_eq(gr_rt_exit(rt, pids[i], k), 0);
        girder_msg_unref(k);
    }
    /* The supervisor sees the EXITs asynchronously: wait (bounded) until the
     * specs are all running again. */
    gr_test_wait_until(active(sup) == n, WAIT_MS, "the killed children never all restarted");
    /* approximate while spawns fly */
    gr_test_wait_until(gr_rt_process_count(rt) == base + n, WAIT_MS, "process count never settled");

    /* terminate a few by pid, then the whole tree */
    for (size_t i = 1; i < n; i += n / 10) {
        term_pid_op t = {.sup = sup, .child = pids[i]};
        got g;

        ck_assert_int_eq(gr_probe_run(probe, do_terminate_pid, &t), 0);
        wait_reply(t.ref, &g);
        ck_assert(obj_str(&g.a[2], "ok"));
        got_free(&g);
    }
    ck_assert_uint_eq(active(sup), n - 10);
    t0 = gr_test_now_ms();
    send_exit(sup, girder_msg_atom("shutdown"));
    wait_down(mref, "\"shutdown\"");
    fprintf(stderr, "many: ordered shutdown of %zu children in %lld ms\n", n - 10,
            (long long)(gr_test_now_ms() - t0));
    free(pids);
    free(o.refs);
}
END_TEST

static Suite *supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = gr_test_tcase(s, "core", setup, teardown, 120);

    gr_test_add(tc, test_one_for_one, test_one_for_all, test_rest_for_one, test_restart_types,
                test_intensity_exceeded, test_intensity_period, test_ordered_shutdown,
                test_shutdown_timeout_kill, test_dynamic_children, test_terminate_by_pid,
                test_bad_specs, test_nested, test_calls_during_restart, test_parent_exit,
                test_stale_exit_after_group_restart, test_child_init_failure_storm,
                test_many_dynamic_children);
    return s;
}

int main(void)
{
    return gr_test_run(supervisor_suite);
}
