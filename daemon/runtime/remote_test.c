/* SPDX-License-Identifier: Apache-2.0 */
/*
 * remote_test.c - Check tests for remote signals (remote.c): two runtimes in one
 * test process, "a@h" and "b@h", joined by a fake in-memory wire.
 *
 * The wire stands in for the distribution layer: each runtime's outgoing hook
 * appends the signal to a queue; one wire thread per direction takes it off,
 * translates node indices by name (the sender's node table to the receiver's:
 * gr_rt_node_at / gr_rt_node_intern) and hands it to gr_rt_remote_deliver on the
 * other runtime. Cutting the wire makes both hooks answer GR_ENOCONN, throws
 * away what is in flight and calls gr_rt_node_down on both sides, as the real
 * dist layer does when a connection dies. Every wait has a timeout.
 */
#include "girder/girder.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "runtime/rt_int.h" /* a scheduler's sleeping flag (held wake-ups) */

#include "testing/gr_test_rt.h"
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 5000
#define QUIET_MS 200 /* how long "nothing arrives" is watched */

/* ---- the fake wire ------------------------------------------------------------------ */

typedef struct item {
    struct item *next;    /* FIFO link */
    gr_rt_remote_sig sig; /* copy; to_name and behaviour strdup'ed */
} item;

typedef struct wire {
    girder_rt *src, *dst; /* direction src -> dst */
    pthread_t thread;     /* the wire thread */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* queue non-empty, quit, or idle */
    item *head, *tail;    /* in flight */
    bool cut;             /* hook answers GR_ENOCONN */
    bool busy;            /* the thread is delivering one item */
    bool quit;            /* end the thread */
    bool hold;            /* keep what is queued: deliver nothing until released */
    bool check_creation;  /* hook answers GR_ENOPROC for another creation of dst */
    uint64_t carried;     /* signals delivered */
} wire;

static girder_rt *rtA, *rtB;
static gr_probe *pA, *pB;
static wire wAB, wBA;

static void item_free(item *it)
{
    girder_msg_unref(it->sig.msg);
    free((char *)it->sig.to_name);
    free((char *)it->sig.behaviour);
    free(it);
}

/* The outgoing hook: on a scheduler thread (or a test thread using gr_rt_send). */
static int wire_hook(void *ud, gr_rt_remote_sig *sig)
{
    wire *w = ud;
    size_t len;
    const char *to = gr_rt_node_at(w->src, sig->to.node, &len);
    item *it;

    /* The fake wire only reaches dst: any other node is not connected. */
    if (to == NULL || len != strlen(gr_rt_node_name(w->dst)) ||
        memcmp(to, gr_rt_node_name(w->dst), len) != 0) {
        return GR_ENOCONN;
    }
    if ((it = calloc(1, sizeof(*it))) == NULL) {
        return -ENOMEM;
    }
    it->sig = *sig;
    it->sig.to_name = NULL;
    it->sig.behaviour = NULL;
    if ((sig->to_name && (it->sig.to_name = strdup(sig->to_name)) == NULL) ||
        (sig->behaviour && (it->sig.behaviour = strdup(sig->behaviour)) == NULL)) {
        it->sig.msg = NULL; /* stays with the runtime on error */
        item_free(it);
        return -ENOMEM;
    }
    pthread_mutex_lock(&w->lock);
    if (w->cut || (w->check_creation && sig->to_name == NULL && sig->to.id != 0 &&
                   sig->to.creation != gr_rt_creation(w->dst))) {
        int r = w->cut ? GR_ENOCONN : GR_ENOPROC;

        pthread_mutex_unlock(&w->lock);
        it->sig.msg = NULL;
        item_free(it);
        return r;
    }
    if (w->tail) {
        w->tail->next = it;
    } else {
        w->head = it;
    }
    w->tail = it;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0; /* msg now belongs to the item */
}

/* Translate a node index of src's table into dst's. */
static uint32_t xnode(girder_rt *src, girder_rt *dst, uint32_t node)
{
    size_t len;
    const char *name = gr_rt_node_at(src, node, &len);
    uint32_t idx = 0;

    ck_assert_ptr_nonnull(name);
    ck_assert_int_eq(gr_rt_node_intern(dst, name, len, &idx), 0);
    return idx;
}

static girder_pid xpid(girder_rt *src, girder_rt *dst, girder_pid p)
{
    return (girder_pid){xnode(src, dst, p.node), p.creation, p.id};
}

static void *wire_main(void *arg)
{
    wire *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        item *it;

        while ((w->head == NULL || w->hold) && !w->quit) {
            pthread_cond_wait(&w->cond, &w->lock);
        }
        if (w->head == NULL) {
            break;
        }
        it = w->head;
        w->head = it->next;
        if (w->head == NULL) {
            w->tail = NULL;
        }
        w->busy = true;
        pthread_mutex_unlock(&w->lock);

        it->sig.from = xpid(w->src, w->dst, it->sig.from);
        it->sig.to.node = xnode(w->src, w->dst, it->sig.to.node);
        it->sig.ref.node = xnode(w->src, w->dst, it->sig.ref.node);
        ck_assert_uint_eq(it->sig.to.node, 0);
        ck_assert_int_eq(gr_rt_remote_deliver(w->dst, &it->sig), 0);
        ck_assert_ptr_null(it->sig.msg); /* taken */
        item_free(it);

        pthread_mutex_lock(&w->lock);
        w->carried++;
        w->busy = false;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void wire_init(wire *w, girder_rt *src, girder_rt *dst)
{
    memset(w, 0, sizeof(*w));
    w->src = src;
    w->dst = dst;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    gr_rt_set_remote(src, wire_hook, w);
}

/* Stop carrying: later hook calls fail, what is in flight is lost. Returns once
 * the wire thread is not inside gr_rt_remote_deliver. */
static void wire_cut(wire *w)
{
    pthread_mutex_lock(&w->lock);
    w->cut = true;
    while (w->head) {
        item *it = w->head;

        w->head = it->next;
        item_free(it);
    }
    w->tail = NULL;
    while (w->busy) {
        pthread_cond_wait(&w->cond, &w->lock);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Hold (true) or release (false) the signals queued on w, so a test can
 * order events that the wire would otherwise race. */
static void wire_hold(wire *w, bool on)
{
    pthread_mutex_lock(&w->lock);
    w->hold = on;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Wait until w has n signals queued (held). */
static void wire_wait_queued(wire *w, int n)
{
    pthread_mutex_lock(&w->lock);
    for (;;) {
        int k = 0;

        for (item *it = w->head; it; it = it->next) {
            k++;
        }
        if (k >= n) {
            break;
        }
        pthread_cond_wait(&w->cond, &w->lock); /* the hook broadcasts each push */
    }
    pthread_mutex_unlock(&w->lock);
}

static void wire_mend(wire *w)
{
    pthread_mutex_lock(&w->lock);
    w->cut = false;
    pthread_mutex_unlock(&w->lock);
}

static void wire_stop(wire *w)
{
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

/* The connection between a and b dies: both sides learn it, as from a real dist
 * layer (a hung or dead peer). */
static void cut_both(void)
{
    wire_cut(&wAB);
    wire_cut(&wBA);
    ck_assert_int_eq(gr_rt_node_down(rtA, xnode(rtB, rtA, 0)), 0);
    ck_assert_int_eq(gr_rt_node_down(rtB, xnode(rtA, rtB, 0)), 0);
}

/* ---- fixture ------------------------------------------------------------------------- */

static const girder_behaviour tfwd_beh;

static void setup(void)
{
    gr_rt_config ca = {.node_name = "a@h", .creation = 11, .schedulers = 2};
    gr_rt_config cb = {.node_name = "b@h", .creation = 22, .schedulers = 2};

    ck_assert_int_eq(gr_rt_new(&ca, &rtA), 0);
    ck_assert_int_eq(gr_rt_new(&cb, &rtB), 0);
    wire_init(&wAB, rtA, rtB);
    wire_init(&wBA, rtB, rtA);
    ck_assert_int_eq(pthread_create(&wAB.thread, NULL, wire_main, &wAB), 0);
    ck_assert_int_eq(pthread_create(&wBA.thread, NULL, wire_main, &wBA), 0);
    ck_assert_int_eq(girder_behaviour_register(rtA, &gr_test_fwd), 0);
    ck_assert_int_eq(girder_behaviour_register(rtB, &gr_test_fwd), 0);
    ck_assert_int_eq(girder_behaviour_register(rtB, &tfwd_beh), 0);
    ck_assert_int_eq(gr_rt_start(rtA), 0);
    ck_assert_int_eq(gr_rt_start(rtB), 0);
    ck_assert_int_eq(gr_probe_new(rtA, &pA), 0);
    ck_assert_int_eq(gr_probe_new(rtB, &pB), 0);
}

static void teardown(void)
{
    pA = gr_probe_free(pA);
    pB = gr_probe_free(pB);
    /* Stopping one runtime sends exits and DOWNs over the wire to the other;
     * both stop before the wire threads end, and both are freed last. */
    gr_rt_stop(rtA);
    gr_rt_stop(rtB);
    wire_stop(&wAB);
    wire_stop(&wBA);
    rtA = gr_rt_free(rtA);
    rtB = gr_rt_free(rtB);
}

/* ---- terms ----------------------------------------------------------------------------- */

static girder_msg *mk_pid(girder_rt *rt, girder_pid pid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    size_t len;
    const char *node = gr_rt_node_at(rt, pid.node, &len);

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, node, len, pid.creation, pid.id), 0);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

/* Is o the pid (node name, creation, id)? */
static bool is_pid(const msgpack_object *o, const char *node, girder_pid pid)
{
    gr_term_id id;

    return gr_term_parse_id(o, GR_TERM_EXT_PID, &id) == 0 && id.id == pid.id &&
           id.creation == pid.creation && id.node_len == strlen(node) &&
           memcmp(id.node, node, id.node_len) == 0;
}

static void recv_obj(gr_probe *p, msgpack_unpacked *u, girder_msg **ret)
{
    gr_test_recv(p, WAIT_MS, u, ret);
}

static void expect_none(gr_probe *p, int ms)
{
    gr_test_expect_none(p, ms);
}

static void expect_atom(gr_probe *p, const char *atom)
{
    girder_msg *m = NULL;

    ck_assert_int_eq(gr_probe_recv(p, gr_test_ms(WAIT_MS), &m), 0);
    ck_assert_msg(girder_msg_is_atom(m, atom), "expected atom %s", atom);
    girder_msg_unref(m);
}

/* Expect ["DOWN", Ref, "process", Pid, Reason]; Pid named by node and pid.
 * ref may be NULL (not checked). */
static void expect_down(gr_probe *p, const girder_ref *ref, const char *node, girder_pid pid,
                        const char *reason)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a;
    gr_term_id rid;

    recv_obj(p, &u, &m);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 5);
    a = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&a[0], "DOWN"));
    ck_assert_int_eq(gr_term_parse_id(&a[1], GR_TERM_EXT_REF, &rid), 0);
    if (ref) {
        ck_assert_uint_eq(rid.id, ref->id);
    }
    ck_assert(gr_term_is_str(&a[2], "process"));
    ck_assert_msg(is_pid(&a[3], node, pid), "DOWN from another pid");
    ck_assert_msg(gr_term_is_str(&a[4], reason), "DOWN reason is not %s", reason);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

/* Expect ["EXIT", Pid, Reason]. */
static void expect_exit(gr_probe *p, const char *node, girder_pid pid, const char *reason)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a;

    recv_obj(p, &u, &m);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 3);
    a = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&a[0], "EXIT"));
    ck_assert_msg(is_pid(&a[1], node, pid), "EXIT from another pid");
    ck_assert_msg(gr_term_is_str(&a[2], reason), "EXIT reason is not %s", reason);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

/* ---- test behaviours: the forwarder gr_test_fwd (gr_test_rt.h) and a variant ---------- */

/* A forwarder that traps exits (so exits arrive at its report pid as EXIT
 * messages) and announces itself: its first message is its own pid. */
static int tfwd_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    gr_test_fwd_state *f;
    int r;

    if ((r = gr_test_fwd_init(ctx, arg, ret_state)) < 0) {
        return r;
    }
    f = *ret_state;
    girder_trap_exit(ctx, true);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    girder_pack_pid(ctx, &pk, girder_self(ctx));
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (m == NULL || girder_send(ctx, f->report, m) < 0) {
        girder_msg_unref(m);
        free(f);
        return -ENOMEM;
    }
    return 0;
}

static const girder_behaviour tfwd_beh = {.name = "tfwd",
                                          .init = tfwd_init,
                                          .handle = gr_test_fwd_handle,
                                          .terminate = gr_test_fwd_terminate};

/* A forwarder on rt reporting to probe p (of the same runtime). */
static girder_pid spawn_fwd(girder_rt *rt, gr_probe *p)
{
    girder_msg *arg = mk_pid(rt, gr_probe_pid(p));
    girder_pid child;

    ck_assert_int_eq(gr_rt_spawn(rt, &gr_test_fwd, arg, &child), 0);
    girder_msg_unref(arg);
    return child;
}

/* ---- closures run inside processes ------------------------------------------------------ */

typedef gr_test_op op;

static int do_send_atom(girder_ctx *ctx, void *a)
{
    op *o = a;
    girder_msg *m = girder_msg_atom(o->atom);
    int r = girder_send(ctx, o->pid, m);

    if (r < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static int do_send_name_node(girder_ctx *ctx, void *a)
{
    op *o = a;
    girder_msg *m = girder_msg_atom(o->atom);
    int r = girder_send_name_node(ctx, o->name, o->node, m);

    if (r < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static int do_trap(girder_ctx *ctx, void *a)
{
    (void)a;
    girder_trap_exit(ctx, true);
    return 0;
}

static int do_node_name(girder_ctx *ctx, void *a)
{
    op *o = a;
    const char *n = girder_pid_node_name(ctx, o->pid);

    return n != NULL && strcmp(n, o->node) == 0 ? 0 : -1;
}

/* Send the atom from probe p to pid (in p's runtime's view). */
static void probe_send(gr_probe *p, girder_pid to, const char *atom)
{
    op o = {.pid = to, .atom = atom};

    ck_assert_int_eq(gr_probe_run(p, do_send_atom, &o), 0);
}

/* B's pid as A sees it, and the reverse. */
static girder_pid in_a(girder_pid b_pid)
{
    return xpid(rtB, rtA, b_pid);
}

static girder_pid in_b(girder_pid a_pid)
{
    return xpid(rtA, rtB, a_pid);
}

/* Wait until forwarder `fwd_b` (on B, reporting to pB) has handled every signal
 * A's probe sent it so far: the ping travels after them on the same pair. */
static void sync_a_to_b(girder_pid fwd_b)
{
    probe_send(pA, in_a(fwd_b), "ping");
    expect_atom(pB, "ping");
}

/* Kill pid on rt and wait for it through a monitor from probe p. */
static void crash_and_wait(girder_rt *rt, gr_probe *p, girder_pid pid)
{
    op o = {.pid = pid};

    ck_assert_int_eq(gr_probe_run(p, gr_test_op_monitor, &o), 0);
    ck_assert_int_eq(gr_rt_send(rt, pid, girder_msg_atom("crash")), 0);
    expect_down(p, &o.ref, gr_rt_node_name(rt), pid, "boom");
}

/* ---- tests: messages ---------------------------------------------------------------------- */

START_TEST(test_send_by_pid)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op o = {.node = "b@h"};

    probe_send(pA, in_a(y), "hello");
    expect_atom(pB, "hello");
    /* From a non-scheduler thread of A too. */
    ck_assert_int_eq(gr_rt_send(rtA, in_a(y), girder_msg_atom("hi")), 0);
    expect_atom(pB, "hi");
    /* The pid knows its node. */
    o.pid = in_a(y);
    ck_assert_int_eq(gr_probe_run(pA, do_node_name, &o), 0);
    o.pid = gr_probe_pid(pA);
    o.node = "a@h";
    ck_assert_int_eq(gr_probe_run(pA, do_node_name, &o), 0);
}
END_TEST

START_TEST(test_send_by_name)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op reg = {.pid = y, .name = "echo"};
    op o = {.name = "echo", .node = "b@h", .atom = "by-name"};

    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_register, &reg), 0);
    ck_assert_int_eq(gr_probe_run(pA, do_send_name_node, &o), 0);
    expect_atom(pB, "by-name");
    ck_assert_int_eq(gr_rt_send_name_node(rtA, "echo", "b@h", girder_msg_atom("from-thread")), 0);
    expect_atom(pB, "from-thread");

    /* Erlang: an unknown name on another node, or an unconnected node, drops. */
    o.name = "nobody";
    ck_assert_int_eq(gr_probe_run(pA, do_send_name_node, &o), 0);
    o.name = "echo";
    o.node = "c@h";
    ck_assert_int_eq(gr_probe_run(pA, do_send_name_node, &o), 0);
    /* This node's own name is a local send: an unknown name is an error. */
    o.node = "a@h";
    ck_assert_int_eq(gr_probe_run(pA, do_send_name_node, &o), GR_ENONAME);
    o.node = "not a node";
    ck_assert_int_eq(gr_probe_run(pA, do_send_name_node, &o), GR_EBADNODE);
    o.node = "b@h";
    o.name = "";
    ck_assert_int_eq(gr_probe_run(pA, do_send_name_node, &o), GR_EBADARG);
    expect_none(pB, QUIET_MS);
}
END_TEST

START_TEST(test_ordering_100k)
{
    /* 100,000 messages from one process of A to one of B arrive in order. */
    girder_pid y = spawn_fwd(rtB, pB);
    op o = {.pid = in_a(y), .n = 100000};

    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_send_seq, &o), 0);
    for (int i = 0; i < o.n; i++) {
        msgpack_unpacked u;
        girder_msg *m;

        recv_obj(pB, &u, &m);
        ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_int_eq((int)u.data.via.u64, i);
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(m);
    }
    expect_none(pB, 50);
}
END_TEST

/* ---- tests: links and exits ------------------------------------------------------------- */

START_TEST(test_link_remote_crash_kills)
{
    /* x on A (not trapping) links to y on B; y crashes; x dies with y's reason. */
    girder_pid x = spawn_fwd(rtA, pA), y = spawn_fwd(rtB, pB);
    op l = {.pid = in_a(y)}, mx = {.pid = x};

    ck_assert_int_eq(gr_rt_run_in(rtA, x, gr_test_op_link, &l), 0);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &mx), 0);
    /* y has the link before it crashes: x pings y after linking (same pair). */
    {
        op p = {.pid = in_a(y), .atom = "ping2"};

        ck_assert_int_eq(gr_rt_run_in(rtA, x, do_send_atom, &p), 0);
        expect_atom(pB, "ping2");
    }
    crash_and_wait(rtB, pB, y);
    expect_down(pA, &mx.ref, "a@h", x, "boom");
}
END_TEST

START_TEST(test_link_remote_crash_trapped)
{
    /* pA traps exits: it gets ["EXIT", Y, "boom"] naming y on b@h. */
    girder_pid y = spawn_fwd(rtB, pB);
    op l = {.pid = in_a(y)};

    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_link, &l), 0);
    sync_a_to_b(y);
    crash_and_wait(rtB, pB, y);
    expect_exit(pA, "b@h", y, "boom");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_link_both_directions_normal_exit)
{
    /* Link made from B's side; A's process exits normally: a trapping pB gets
     * ["EXIT", X, "normal"]. */
    girder_pid x = spawn_fwd(rtA, pA);
    op l = {.pid = in_b(x)}, mx = {.pid = x};

    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_link, &l), 0);
    probe_send(pB, in_b(x), "ping"); /* same pair: the link is in place at x */
    expect_atom(pA, "ping");
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &mx), 0);
    ck_assert_int_eq(gr_rt_send(rtA, x, girder_msg_atom("stop")), 0);
    expect_down(pA, &mx.ref, "a@h", x, "normal");
    expect_exit(pB, "a@h", x, "normal");
}
END_TEST

START_TEST(test_link_to_dead_remote_gives_noproc)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op l;

    crash_and_wait(rtB, pB, y);
    l = (op){.pid = in_a(y)};
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_link, &l), 0);
    expect_exit(pA, "b@h", y, "noproc");
    /* A pid of another incarnation of b is dead too. */
    l.pid.creation++;
    l.pid.id = gr_probe_pid(pB).id; /* even the id of a live process */
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_link, &l), 0);
    expect_exit(pA, "b@h", (girder_pid){0, l.pid.creation, l.pid.id}, "noproc");
}
END_TEST

START_TEST(test_exit2_across)
{
    girder_pid y1 = spawn_fwd(rtB, pB), y2 = spawn_fwd(rtB, pB), y3 = spawn_fwd(rtB, pB);
    op m1 = {.pid = y1}, m2 = {.pid = y2}, m3 = {.pid = y3};
    op e = {.atom = "normal"};

    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_monitor, &m1), 0);
    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_monitor, &m2), 0);
    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_monitor, &m3), 0);
    ck_assert_int_eq(gr_rt_run_in(rtB, y2, do_trap, NULL), 0);

    /* "normal" to a non-trapping process: ignored. */
    e.pid = in_a(y1);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_exit, &e), 0);
    sync_a_to_b(y1);
    /* Another reason kills it. */
    e.atom = "bye";
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_exit, &e), 0);
    expect_down(pB, &m1.ref, "b@h", y1, "bye");
    /* A trapping process gets ["EXIT", PA, "bye"], naming pA on a@h... */
    e.pid = in_a(y2);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_exit, &e), 0);
    expect_exit(pB, "a@h", gr_probe_pid(pA), "bye");
    /* ...but "kill" is untrappable: "killed". */
    e.atom = "kill";
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_exit, &e), 0);
    expect_down(pB, &m2.ref, "b@h", y2, "killed");
    /* exit/2 from a non-scheduler thread of A. */
    {
        girder_msg *r = girder_msg_atom("from-thread");

        ck_assert_int_eq(gr_rt_exit(rtA, in_a(y3), r), 0);
        girder_msg_unref(r);
    }
    expect_down(pB, &m3.ref, "b@h", y3, "from-thread");
    expect_none(pB, QUIET_MS);
}
END_TEST

START_TEST(test_unlink_across)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op l = {.pid = in_a(y)};

    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_link, &l), 0);
    sync_a_to_b(y);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_unlink, &l), 0);
    sync_a_to_b(y); /* y has dropped its side too */
    crash_and_wait(rtB, pB, y);
    expect_none(pA, QUIET_MS);
}
END_TEST

/* ---- tests: monitors -------------------------------------------------------------------- */

START_TEST(test_monitor_across_fires_once)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op m = {.pid = in_a(y)};

    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &m), 0);
    sync_a_to_b(y);
    crash_and_wait(rtB, pB, y);
    expect_down(pA, &m.ref, "b@h", y, "boom");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_monitor_dead_and_stale_remote)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op m;

    crash_and_wait(rtB, pB, y);
    /* Dead remote pid: DOWN noproc, answered by b. */
    m = (op){.pid = in_a(y)};
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &m), 0);
    expect_down(pA, &m.ref, "b@h", y, "noproc");
    /* A pid of another incarnation of b (as after a restart), even with the id
     * of a live process there: noproc, never delivered to that process. */
    m = (op){.pid = in_a(gr_probe_pid(pB))};
    m.pid.creation++;
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &m), 0);
    expect_down(pA, &m.ref, "b@h", (girder_pid){0, m.pid.creation, m.pid.id}, "noproc");
    /* Same, when the dist layer knows b's creation and refuses it (GR_ENOPROC). */
    pthread_mutex_lock(&wAB.lock);
    wAB.check_creation = true;
    pthread_mutex_unlock(&wAB.lock);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &m), 0);
    expect_down(pA, &m.ref, "b@h", (girder_pid){0, m.pid.creation, m.pid.id}, "noproc");
    expect_none(pA, QUIET_MS);
    expect_none(pB, 0);
}
END_TEST

/* Fetch the info map of pid (on probe p's runtime) and return the array under
 * key; the caller destroys u and unrefs *ret_m. */
static msgpack_object *info_array(gr_probe *p, girder_pid pid, const char *key, msgpack_unpacked *u,
                                  girder_msg **ret_m)
{
    op o = {.pid = pid};
    msgpack_object_map *map;

    ck_assert_int_eq(gr_probe_run(p, gr_test_op_info, &o), 0);
    recv_obj(p, u, ret_m);
    ck_assert_int_eq(u->data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_int_eq(u->data.via.array.ptr[2].type, MSGPACK_OBJECT_MAP);
    map = &u->data.via.array.ptr[2].via.map;
    for (uint32_t i = 0; i < map->size; i++) {
        if (gr_term_is_str(&map->ptr[i].key, key)) {
            ck_assert_int_eq(map->ptr[i].val.type, MSGPACK_OBJECT_ARRAY);
            return &map->ptr[i].val;
        }
    }
    ck_abort_msg("no %s in process info", key);
    return NULL;
}

static void expect_info_pids(gr_probe *p, girder_pid pid, const char *key, const char *node,
                             girder_pid want)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a = info_array(p, pid, key, &u, &m);

    ck_assert_uint_eq(a->via.array.size, 1);
    ck_assert_msg(is_pid(&a->via.array.ptr[0], node, want), "%s does not name the remote pid", key);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

static void expect_info_empty(gr_probe *p, girder_pid pid, const char *key)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a = info_array(p, pid, key, &u, &m);

    ck_assert_uint_eq(a->via.array.size, 0);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

START_TEST(test_demonitor_across)
{
    girder_pid y = spawn_fwd(rtB, pB);
    op m = {.pid = in_a(y)};

    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &m), 0);
    sync_a_to_b(y);
    expect_info_pids(pB, y, "monitored_by", "a@h", gr_probe_pid(pA));
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_demonitor, &m), 0);
    sync_a_to_b(y);
    expect_info_empty(pB, y, "monitored_by"); /* y forgot it too */
    crash_and_wait(rtB, pB, y);
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_info_shows_remote_links_and_monitors)
{
    girder_pid x = spawn_fwd(rtA, pA), y = spawn_fwd(rtB, pB);
    op l = {.pid = in_a(y)}, m = {.pid = in_a(y)};

    ck_assert_int_eq(gr_rt_run_in(rtA, x, gr_test_op_link, &l), 0);
    ck_assert_int_eq(gr_rt_run_in(rtA, x, gr_test_op_monitor, &m), 0);
    {
        op p = {.pid = in_a(y), .atom = "ping"};

        ck_assert_int_eq(gr_rt_run_in(rtA, x, do_send_atom, &p), 0);
        expect_atom(pB, "ping");
    }
    expect_info_pids(pA, x, "links", "b@h", y);
    expect_info_pids(pA, x, "monitors", "b@h", y);
    expect_info_pids(pB, y, "links", "a@h", x);
    expect_info_pids(pB, y, "monitored_by", "a@h", x);
}
END_TEST

/* ---- tests: the connection goes away --------------------------------------------------- */

START_TEST(test_cut_fires_links_and_monitors_once)
{
    girder_pid x = spawn_fwd(rtA, pA);  /* A, not trapping, linked to y1 */
    girder_pid y1 = spawn_fwd(rtB, pB); /* B, linked to x and pA */
    girder_pid y2 = spawn_fwd(rtB, pB); /* B, monitored by pA */
    girder_pid x2 = spawn_fwd(rtA, pA); /* A, monitored by pB (forgotten on cut) */
    op lx = {.pid = in_a(y1)}, la = {.pid = in_a(y1)}, ma = {.pid = in_a(y2)};
    op mb = {.pid = in_b(x2)}, mx = {.pid = x}, my1 = {.pid = y1};

    ck_assert_int_eq(gr_rt_run_in(rtA, x, gr_test_op_link, &lx), 0);
    {
        op p = {.pid = in_a(y1), .atom = "ping"};

        ck_assert_int_eq(gr_rt_run_in(rtA, x, do_send_atom, &p), 0);
        expect_atom(pB, "ping");
    }
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_link, &la), 0);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &ma), 0);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &mx), 0);
    sync_a_to_b(y1);
    sync_a_to_b(y2);
    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_monitor, &mb), 0);
    ck_assert_int_eq(gr_probe_run(pB, gr_test_op_monitor, &my1), 0);
    probe_send(pB, in_b(x2), "ping");
    expect_atom(pA, "ping");
    expect_info_pids(pA, x2, "monitored_by", "b@h", gr_probe_pid(pB));

    cut_both();

    /* A: x dies "noconnection"; pA (trapping) gets EXIT from y1 and DOWN for y2. */
    {
        bool got_exit = false, got_down_y2 = false, got_down_x = false;

        for (int i = 0; i < 3; i++) {
            msgpack_unpacked u;
            girder_msg *m;
            msgpack_object *a;

            recv_obj(pA, &u, &m);
            a = u.data.via.array.ptr;
            if (gr_term_is_str(&a[0], "EXIT")) {
                ck_assert(!got_exit);
                ck_assert(is_pid(&a[1], "b@h", y1));
                ck_assert(gr_term_is_str(&a[2], "noconnection"));
                got_exit = true;
            } else if (is_pid(&a[3], "b@h", y2)) {
                ck_assert(!got_down_y2);
                ck_assert(gr_term_is_str(&a[4], "noconnection"));
                got_down_y2 = true;
            } else {
                ck_assert(!got_down_x);
                ck_assert(is_pid(&a[3], "a@h", x));
                ck_assert(gr_term_is_str(&a[4], "noconnection"));
                got_down_x = true;
            }
            msgpack_unpacked_destroy(&u);
            girder_msg_unref(m);
        }
    }
    /* B: pB's monitor on x2 fires DOWN noconnection; y1, linked to x and pA
     * on a and not trapping, dies "noconnection". */
    {
        bool got_x2 = false, got_y1 = false;

        for (int i = 0; i < 2; i++) {
            msgpack_unpacked u;
            girder_msg *m;
            msgpack_object *a;

            recv_obj(pB, &u, &m);
            a = u.data.via.array.ptr;
            ck_assert(gr_term_is_str(&a[0], "DOWN"));
            ck_assert(gr_term_is_str(&a[4], "noconnection"));
            if (is_pid(&a[3], "a@h", x2)) {
                ck_assert(!got_x2);
                got_x2 = true;
            } else {
                ck_assert(!got_y1);
                ck_assert(is_pid(&a[3], "b@h", y1));
                got_y1 = true;
            }
            msgpack_unpacked_destroy(&u);
            girder_msg_unref(m);
        }
    }
    /* Monitors held from the lost node are forgotten, nothing sent back. */
    expect_info_empty(pA, x2, "monitored_by");
    expect_info_empty(pB, y2, "monitored_by");

    /* While cut: sends vanish, a new link or monitor fails at once. */
    probe_send(pA, in_a(y2), "lost");
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_link, &la), 0);
    expect_exit(pA, "b@h", y1, "noconnection");
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &ma), 0);
    expect_down(pA, &ma.ref, "b@h", y2, "noconnection");

    /* Mended: y2 dying later sends no second DOWN ("lost" never arrives
     * either: crash_and_wait expects the DOWN first). */
    wire_mend(&wAB);
    wire_mend(&wBA);
    crash_and_wait(rtB, pB, y2);
    expect_none(pA, QUIET_MS);
    expect_none(pB, 0);
}
END_TEST

START_TEST(test_node_down_twice_and_reconnect)
{
    /* node_down may be called twice (down, then restarted); a monitor made over
     * the new connection after both scans works normally. */
    girder_pid y = spawn_fwd(rtB, pB);
    op m = {.pid = in_a(y)};

    cut_both();
    ck_assert_int_eq(gr_rt_node_down(rtA, xnode(rtB, rtA, 0)), 0);
    wire_mend(&wAB);
    wire_mend(&wBA);
    /* The scans are asynchronous: retry until the monitor is accepted. */
    for (int tries = 0;; tries++) {
        msgpack_unpacked u;
        girder_msg *msg;
        bool refused;

        ck_assert_int_lt(tries, 100);
        ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &m), 0);
        sync_a_to_b(y);
        if (gr_probe_recv(pA, 0, &msg) != 0) {
            break; /* no DOWN: accepted */
        }
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(girder_msg_unpack(msg, &u), 0);
        refused = gr_term_is_str(&u.data.via.array.ptr[4], "noconnection");
        msgpack_unpacked_destroy(&u);
        girder_msg_unref(msg);
        ck_assert(refused);
    }
    crash_and_wait(rtB, pB, y);
    expect_down(pA, &m.ref, "b@h", y, "boom");
    expect_none(pA, QUIET_MS);
}
END_TEST

/* ---- tests: the API's edges ----------------------------------------------------------------- */

/* A held delivery to a sleeping scheduler leaves it asleep, with the message
 * queued, until the holder flushes; the flush wakes it once. */
START_TEST(test_deliver_held_wakes_at_flush)
{
    uint32_t nb = xnode(rtB, rtA, 0);
    girder_pid to = gr_probe_pid(pA);
    gr_sched *s = &rtA->scheds[to.id & 0xff];
    gr_rt_wakes held = {0}, none = {0};
    girder_msg *m = girder_msg_atom("held");
    gr_rt_remote_sig sig = {.kind = GR_RSIG_MSG, .from = {nb, 22, 0x100}, .to = to, .msg = m};
    uint64_t w0;

    /* the probe's scheduler has nothing to do: it goes to sleep */
    gr_test_wait_until(atomic_load(&s->sleeping), WAIT_MS, "the scheduler never slept");
    w0 = gr_rt_wakeups(rtA);
    ck_assert_int_eq(gr_rt_remote_deliver_held(rtA, &sig, &held), 0);
    ck_assert_ptr_null(sig.msg);
    ck_assert(held.bits[s->idx / 64] & (1ull << (s->idx % 64)));
    ck_assert_uint_eq(gr_rt_wakeups(rtA), w0); /* nothing written yet */
    expect_none(pA, QUIET_MS);                 /* still asleep */
    gr_rt_wakes_flush(rtA, &held);
    ck_assert_mem_eq(&held, &none, sizeof(held));
    ck_assert_uint_eq(gr_rt_wakeups(rtA), w0 + 1);
    expect_atom(pA, "held");
    /* with nothing held, a flush does nothing */
    gr_rt_wakes_flush(rtA, &held);
    ck_assert_uint_eq(gr_rt_wakeups(rtA), w0 + 1);
}
END_TEST

START_TEST(test_deliver_and_node_down_reject_bad_input)
{
    uint32_t nb = xnode(rtB, rtA, 0);
    girder_msg *m = girder_msg_atom("x");
    gr_rt_remote_sig s = {
        .kind = GR_RSIG_MSG, .from = {nb, 22, 0x100}, .to = gr_probe_pid(pA), .msg = m};

    /* from must be another node, already interned. */
    s.from.node = 0;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.from.node = 4000;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.from.node = nb;
    /* The dist layer relays nothing: to must be local. */
    s.to.node = nb;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.to = gr_probe_pid(pA);
    s.kind = (gr_rsig_kind)99;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    /* A link needs a real sender; a name only takes messages. */
    s.kind = GR_RSIG_LINK;
    s.from.id = 0;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.from.id = 0x100;
    s.to_name = "x";
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.to_name = NULL;
    s.kind = GR_RSIG_MSG;
    s.msg = NULL;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    /* Still ours after every error; a good one takes it. */
    s.msg = m;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), 0);
    expect_atom(pA, "x");
    /* To an unknown name: dropped, taken. */
    s.msg = girder_msg_atom("y");
    s.to_name = "nobody";
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), 0);
    expect_none(pA, 50);

    ck_assert_int_eq(gr_rt_node_down(rtA, 0), GR_EBADARG);
    ck_assert_int_eq(gr_rt_node_down(rtA, 4000), GR_EBADARG);
}
END_TEST

START_TEST(test_no_hook_means_not_connected)
{
    /* A runtime without distribution: every other node is not connected. */
    gr_rt_config cc = {.node_name = "c@h", .creation = 5, .schedulers = 1};
    girder_rt *rtC;
    gr_probe *pC;
    uint32_t nb;
    op l, m;

    ck_assert_int_eq(gr_rt_new(&cc, &rtC), 0);
    ck_assert_int_eq(gr_rt_start(rtC), 0);
    ck_assert_int_eq(gr_probe_new(rtC, &pC), 0);
    ck_assert_int_eq(gr_rt_node_intern(rtC, "b@h", 3, &nb), 0);
    l = (op){.pid = {nb, 22, 0x100}};
    m = l;
    ck_assert_int_eq(gr_probe_run(pC, gr_test_op_link, &l), 0);
    expect_exit(pC, "b@h", l.pid, "noconnection");
    ck_assert_int_eq(gr_probe_run(pC, gr_test_op_monitor, &m), 0);
    expect_down(pC, &m.ref, "b@h", m.pid, "noconnection");
    probe_send(pC, l.pid, "dropped");
    expect_none(pC, 50);
    pC = gr_probe_free(pC);
    gr_rt_stop(rtC);
    rtC = gr_rt_free(rtC);
}
END_TEST

/* ---- tests: remote spawn ------------------------------------------------------------------ */

static int do_spawn_remote(girder_ctx *ctx, void *a)
{
    op *o = a;

    return girder_spawn_remote(ctx, o->node, o->name, o->arg, o->flags, &o->ref);
}

/* A pid term (node name and ids) as a pid of rt's node table. */
static girder_pid pid_in(girder_rt *rt, const msgpack_object *o, const char *node)
{
    gr_term_id id;
    uint32_t idx;

    ck_assert_int_eq(gr_term_parse_id(o, GR_TERM_EXT_PID, &id), 0);
    ck_assert_msg(id.node_len == strlen(node) && memcmp(id.node, node, id.node_len) == 0,
                  "pid of another node");
    ck_assert_int_eq(gr_rt_node_intern(rt, id.node, id.node_len, &idx), 0);
    return (girder_pid){idx, id.creation, id.id};
}

/* Expect ["$spawn_reply", Ref, Status, X]: for "ok", X is a pid of `what` (a
 * node name), returned in rt's view; for "error", X is the reason `what`. */
static girder_pid expect_spawn_reply(gr_probe *p, girder_rt *rt, girder_ref ref, const char *status,
                                     const char *what)
{
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *a;
    gr_term_id rid;
    girder_pid child = {0, 0, 0};

    recv_obj(p, &u, &m);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 4);
    a = u.data.via.array.ptr;
    ck_assert(gr_term_is_str(&a[0], "$spawn_reply"));
    ck_assert_int_eq(gr_term_parse_id(&a[1], GR_TERM_EXT_REF, &rid), 0);
    ck_assert_uint_eq(rid.id, ref.id);
    ck_assert_uint_eq(rid.creation, ref.creation);
    ck_assert_msg(gr_term_is_str(&a[2], status), "spawn reply is not %s", status);
    if (strcmp(status, "ok") == 0) {
        child = pid_in(rt, &a[3], what);
    } else {
        ck_assert_msg(gr_term_is_str(&a[3], what), "spawn error is not %s", what);
    }
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    return child;
}

/* Expect a message that is a pid of node `node` (tfwd's announcement). */
static girder_pid expect_pid_msg(gr_probe *p, girder_rt *rt, const char *node)
{
    msgpack_unpacked u;
    girder_msg *m;
    girder_pid pid;

    recv_obj(p, &u, &m);
    pid = pid_in(rt, &u.data, node);
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
    return pid;
}

/* Ask pid's info from probe p and return the sizes of its "links" and
 * "monitored_by" lists. */
static void info_counts(gr_probe *p, girder_pid pid, uint32_t *ret_links, uint32_t *ret_monby)
{
    op o = {.pid = pid};
    msgpack_unpacked u;
    girder_msg *m;
    msgpack_object *map;

    ck_assert_int_eq(gr_probe_run(p, gr_test_op_info, &o), 0);
    recv_obj(p, &u, &m);
    ck_assert_uint_eq(u.data.via.array.size, 3);
    map = &u.data.via.array.ptr[2];
    ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
    *ret_links = *ret_monby = UINT32_MAX;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object_kv *kv = &map->via.map.ptr[i];

        if (gr_term_is_str(&kv->key, "links")) {
            *ret_links = kv->val.via.array.size;
        } else if (gr_term_is_str(&kv->key, "monitored_by")) {
            *ret_monby = kv->val.via.array.size;
        }
    }
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(m);
}

START_TEST(test_spawn_remote_link_trapped)
{
    /* pA (trapping) spawns a linked forwarder on B; the reply names it; its
     * crash reaches pA as ["EXIT", Child, "boom"], after the reply. */
    girder_msg *arg = mk_pid(rtB, gr_probe_pid(pB));
    op o = {.node = "b@h", .name = "fwd", .arg = arg, .flags = GIRDER_SPAWN_LINK};
    girder_pid child;

    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "b@h");
    ck_assert_uint_eq(child.creation, 22);
    probe_send(pA, child, "ping");
    expect_atom(pB, "ping");
    probe_send(pA, child, "crash");
    expect_exit(pA, "b@h", child, "boom");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_spawn_remote_link_kills_parent)
{
    /* x on A (not trapping) spawns a linked child on B; the child's crash
     * kills x. x forwards the reply to pA. */
    girder_pid x = spawn_fwd(rtA, pA), child;
    girder_msg *arg = mk_pid(rtB, gr_probe_pid(pB));
    op o = {.node = "b@h", .name = "fwd", .arg = arg, .flags = GIRDER_SPAWN_LINK}, mx = {.pid = x};

    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_monitor, &mx), 0);
    ck_assert_int_eq(gr_rt_run_in(rtA, x, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "b@h");
    ck_assert_int_eq(gr_rt_send(rtB, in_b(child), girder_msg_atom("crash")), 0);
    expect_down(pA, &mx.ref, "a@h", x, "boom");
}
END_TEST

START_TEST(test_spawn_remote_monitor_down_has_request_ref)
{
    /* With MONITOR the DOWN carries the request ref; no link, so no EXIT. */
    girder_msg *arg = mk_pid(rtB, gr_probe_pid(pB));
    op o = {.node = "b@h", .name = "fwd", .arg = arg, .flags = GIRDER_SPAWN_MONITOR};
    girder_pid child;

    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "b@h");
    probe_send(pA, child, "crash");
    expect_down(pA, &o.ref, "b@h", child, "boom");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_spawn_remote_init_fails_after_ok)
{
    /* fwd's init fails on the atom "fail": the reply is "ok" (it does not
     * wait for init), then the DOWN "init_failed" under the request ref. */
    girder_msg *fail = girder_msg_atom("fail");
    op o = {.node = "b@h", .name = "fwd", .arg = fail, .flags = GIRDER_SPAWN_MONITOR};
    girder_pid child;

    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    girder_msg_unref(fail);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "b@h");
    expect_down(pA, &o.ref, "b@h", child, "init_failed");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_spawn_remote_parent_dies_before_reply)
{
    /* x asks for a linked, monitored child on B and dies while the reply is
     * held on the wire. When the reply reaches dead x, the child's monitor is
     * dropped and it gets the link exit "noproc" (tfwd traps: pB sees it). */
    girder_pid x = spawn_fwd(rtA, pA), child;
    girder_msg *arg = mk_pid(rtB, gr_probe_pid(pB));
    op o = {.node = "b@h",
            .name = "tfwd",
            .arg = arg,
            .flags = GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR};
    uint32_t links, monby;

    wire_hold(&wBA, true);
    ck_assert_int_eq(gr_rt_run_in(rtA, x, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    child = expect_pid_msg(pB, rtB, "b@h"); /* created; its reply is held */
    info_counts(pB, child, &links, &monby);
    ck_assert_uint_eq(links, 1);
    ck_assert_uint_eq(monby, 1);
    crash_and_wait(rtA, pA, x);
    wire_hold(&wBA, false);
    expect_exit(pB, "a@h", x, "noproc");
    info_counts(pB, child, &links, &monby);
    ck_assert_uint_eq(links, 0);
    ck_assert_uint_eq(monby, 0);
    expect_none(pA, QUIET_MS); /* x never forwarded a reply: it was dead */
}
END_TEST

START_TEST(test_spawn_remote_demonitor_while_pending)
{
    /* girder_demonitor(Req) before the reply: the reply installs no monitor,
     * the child's side is dropped, and its death sends pA no DOWN. */
    girder_msg *arg = mk_pid(rtB, gr_probe_pid(pB));
    op o = {.node = "b@h", .name = "fwd", .arg = arg, .flags = GIRDER_SPAWN_MONITOR};
    girder_pid child;
    uint32_t links, monby;

    wire_hold(&wBA, true);
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    wire_wait_queued(&wBA, 1);
    ck_assert_int_eq(gr_probe_run(pA, gr_test_op_demonitor, &o), 0);
    wire_hold(&wBA, false);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "b@h");
    probe_send(pA, child, "ping"); /* after the DEMONITOR on the same pair */
    expect_atom(pB, "ping");
    info_counts(pB, in_b(child), &links, &monby);
    ck_assert_uint_eq(monby, 0);
    probe_send(pA, child, "crash");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_spawn_remote_errors)
{
    /* Unknown behaviour (remote and local), unconnected node: one error reply
     * each, and no EXIT or DOWN. Bad arguments fail at once. */
    op o = {.node = "b@h", .name = "nope", .flags = GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR};

    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    expect_spawn_reply(pA, rtA, o.ref, "error", "bad_behaviour");
    o.node = "a@h";
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    expect_spawn_reply(pA, rtA, o.ref, "error", "bad_behaviour");
    o.node = "c@h";
    o.name = "fwd";
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    expect_spawn_reply(pA, rtA, o.ref, "error", "noconnection");
    expect_none(pA, QUIET_MS);

    o.node = "not a node";
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), GR_EBADNODE);
    o.node = "b@h";
    o.name = "";
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), GR_EBADARG);
    o.name = "fwd";
    o.flags = 0x80;
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), GR_EBADARG);
    expect_none(pA, 50);
}
END_TEST

START_TEST(test_spawn_remote_node_down_before_request_lands)
{
    /* The request is in flight when the connection dies: exactly one error
     * reply "noconnection", no EXIT or DOWN. */
    op o = {.node = "b@h", .name = "fwd", .flags = GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR};

    wire_hold(&wAB, true);
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    wire_wait_queued(&wAB, 1);
    cut_both();
    wire_hold(&wAB, false);
    expect_spawn_reply(pA, rtA, o.ref, "error", "noconnection");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_spawn_remote_node_down_before_reply_lands)
{
    /* The child exists on B but its reply is lost with the connection: the
     * parent gets one error "noconnection" (and never the child's EXIT or
     * DOWN); the child gets the link exit "noconnection" from B's node down. */
    girder_msg *arg = mk_pid(rtB, gr_probe_pid(pB));
    op o = {.node = "b@h",
            .name = "tfwd",
            .arg = arg,
            .flags = GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR};
    girder_pid child;

    wire_hold(&wBA, true);
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    child = expect_pid_msg(pB, rtB, "b@h");
    cut_both();
    wire_hold(&wBA, false);
    expect_spawn_reply(pA, rtA, o.ref, "error", "noconnection");
    expect_exit(pB, "a@h", in_b(gr_probe_pid(pA)), "noconnection");
    probe_send(pB, child, "crash"); /* no one on A may hear of it */
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_spawn_local_same_path)
{
    /* This node's own name: the same reply message, link and monitor. */
    girder_msg *arg = mk_pid(rtA, gr_probe_pid(pA));
    op o = {.node = "a@h",
            .name = "fwd",
            .arg = arg,
            .flags = GIRDER_SPAWN_MONITOR | GIRDER_SPAWN_SPREAD};
    girder_pid child;

    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "a@h");
    ck_assert_uint_eq(child.node, 0);
    probe_send(pA, child, "crash");
    expect_down(pA, &o.ref, "a@h", child, "boom");

    o.flags = GIRDER_SPAWN_LINK;
    ck_assert_int_eq(gr_probe_run(pA, do_spawn_remote, &o), 0);
    girder_msg_unref(arg);
    child = expect_spawn_reply(pA, rtA, o.ref, "ok", "a@h");
    probe_send(pA, child, "crash");
    expect_exit(pA, "a@h", child, "boom");
    expect_none(pA, QUIET_MS);
}
END_TEST

START_TEST(test_deliver_rejects_bad_spawn)
{
    uint32_t nb = xnode(rtB, rtA, 0);
    char longname[300];
    girder_msg *m = girder_msg_atom("x");
    gr_rt_remote_sig s = {.kind = GR_RSIG_SPAWN_REQUEST,
                          .from = {nb, 22, 0x100},
                          .ref = {nb, 22, 0x200},
                          .flags = GIRDER_SPAWN_LINK};

    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG); /* no behaviour */
    memset(longname, 'b', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    s.behaviour = longname;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.behaviour = "fwd";
    s.flags = 0x10;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.flags = GIRDER_SPAWN_LINK;
    s.ref.id = 0;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.ref = (girder_ref){0, 11, 0x200}; /* a ref of ours: not the parent's */
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.ref = (girder_ref){nb, 22, 0x200};
    s.from.id = 0;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);

    /* A reply: success from a process with no reason, error the reverse. */
    s = (gr_rt_remote_sig){.kind = GR_RSIG_SPAWN_REPLY,
                           .from = {nb, 22, 0},
                           .to = gr_probe_pid(pA),
                           .ref = {0, 11, 0x300}};
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    s.from.id = 0x100;
    s.msg = m;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    ck_assert_ptr_eq(s.msg, m); /* still ours */
    s.from.id = 0;
    s.ref.node = nb; /* a reply's ref is ours */
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), GR_EBADARG);
    /* Valid but unexpected (pA asked nothing): dropped, taken. */
    s.ref.node = 0;
    ck_assert_int_eq(gr_rt_remote_deliver(rtA, &s), 0);
    ck_assert_ptr_null(s.msg);
    expect_none(pA, 50);
}
END_TEST

/* ---- busy processes across nodes ---------------------------------------------------------- */

static uint64_t suspended_now(girder_rt *rt)
{
    uint64_t total, now, us;

    gr_rt_suspend_counters(rt, &total, &now, &us);
    return now;
}

/* Wait (bounded) until rt's suspended_now == want. */
static void wait_suspended(girder_rt *rt, uint64_t want)
{
    for (int i = 0; i < WAIT_MS && suspended_now(rt) != want; i++) {
        usleep(1000);
    }
    ck_assert_uint_eq(suspended_now(rt), want);
}

static int do_send_nosuspend(girder_ctx *ctx, void *a)
{
    op *o = a;
    girder_msg *m = girder_msg_atom(o->atom);
    int r = girder_send_nosuspend(ctx, o->pid, m);

    if (r < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* A process on B (a forwarder to busy X on A) is told X is busy when its
 * message arrives, and suspended; B's non-blocking sends to X are refused
 * with GR_EPROCBUSY; X's mark cleared, A's free notice resumes it and its
 * waiting message goes on. Again busy: the link's loss resumes it too. The
 * notices never reach a mailbox. */
START_TEST(test_busy_process_slows_remote_sender)
{
    girder_pid x = spawn_fwd(rtA, pA), s;
    girder_msg *arg = mk_pid(rtB, in_b(x));
    op o = {.pid = in_b(x), .atom = "n"};

    ck_assert_int_eq(gr_rt_spawn(rtB, &gr_test_fwd, arg, &s), 0);
    girder_msg_unref(arg);
    ck_assert_int_eq(gr_probe_run(pB, do_send_nosuspend, &o), 0); /* not busy: sent */
    expect_atom(pA, "n");
    ck_assert_int_eq(gr_rt_proc_busy(rtA, x, true), 0);
    ck_assert_int_eq(gr_rt_send(rtB, s, girder_msg_atom("go")), 0);
    expect_atom(pA, "go"); /* delivered: busy slows, it does not drop */
    wait_suspended(rtB, 1);
    ck_assert_int_eq(gr_probe_run(pB, do_send_nosuspend, &o), GR_EPROCBUSY);
    ck_assert_int_eq(gr_rt_send(rtB, s, girder_msg_atom("go2")), 0);
    expect_none(pA, QUIET_MS); /* s is suspended: its mailbox waits */
    ck_assert_int_eq(gr_rt_proc_busy(rtA, x, false), 0);
    expect_atom(pA, "go2");
    wait_suspended(rtB, 0);
    ck_assert_int_eq(gr_probe_run(pB, do_send_nosuspend, &o), 0);
    expect_atom(pA, "n");

    /* Busy again, and the link dies: node down resumes the sender. */
    ck_assert_int_eq(gr_rt_proc_busy(rtA, x, true), 0);
    ck_assert_int_eq(gr_rt_send(rtB, s, girder_msg_atom("go3")), 0);
    expect_atom(pA, "go3");
    wait_suspended(rtB, 1);
    cut_both();
    wait_suspended(rtB, 0);
    ck_assert_int_eq(gr_rt_proc_busy(rtA, x, false), 0);
}
END_TEST

static Suite *remote_suite(void)
{
    Suite *s = suite_create("remote");
    TCase *tc = gr_test_tcase(s, "two-runtimes", setup, teardown, 120);
    TCase *ts;

    gr_test_add(tc, test_send_by_pid, test_send_by_name, test_ordering_100k,
                test_link_remote_crash_kills, test_link_remote_crash_trapped,
                test_link_both_directions_normal_exit, test_link_to_dead_remote_gives_noproc,
                test_exit2_across, test_unlink_across, test_monitor_across_fires_once,
                test_monitor_dead_and_stale_remote, test_demonitor_across,
                test_info_shows_remote_links_and_monitors, test_cut_fires_links_and_monitors_once,
                test_node_down_twice_and_reconnect, test_deliver_and_node_down_reject_bad_input,
                test_no_hook_means_not_connected, test_busy_process_slows_remote_sender);

    ts = gr_test_tcase(s, "spawn", setup, teardown, 120);
    gr_test_add(ts, test_spawn_remote_link_trapped, test_spawn_remote_link_kills_parent,
                test_spawn_remote_monitor_down_has_request_ref,
                test_spawn_remote_init_fails_after_ok, test_spawn_remote_parent_dies_before_reply,
                test_spawn_remote_demonitor_while_pending, test_spawn_remote_errors,
                test_spawn_remote_node_down_before_request_lands,
                test_spawn_remote_node_down_before_reply_lands, test_spawn_local_same_path,
                test_deliver_rejects_bad_spawn, test_deliver_held_wakes_at_flush);
    return s;
}

int main(void)
{
    return gr_test_run(remote_suite);
}
