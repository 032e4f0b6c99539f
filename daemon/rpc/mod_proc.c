/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_proc.c - rpc module `proc`: the processes of this node, driven from the
 * outside (the CLI's send, call, spawn, ps, info, kill).
 *
 *   proc.spawn(Behaviour[, Arg])        -> Pid (unlinked; "bad_behaviour")
 *   proc.list([Max])                    -> [{"pid", "name", "behaviour", "status",
 *                                           "mailbox", "memory", "handled",
 *                                           "scheduler"}, ...] (lowest Max pids)
 *   proc.snapshot([Max[, Cursor[, Key]]]) -> {"processes": [...], "total": N,
 *                                           "truncated": Bool, "next": Cursor | nil}
 *                                           (Key "work", "handled", "mailbox",
 *                                           "memory": the Max largest, ranked
 *                                           over all processes; "pid": pages)
 *   proc.info(Dest)                     -> the info map ("noproc")
 *   proc.kill(Dest[, Reason])           -> "ok" (exit signal, default "kill")
 *   proc.register(Name, Pid)            -> "ok" (checked with the target first)
 *   proc.whereis(Name)                  -> Pid ("noname")
 *   proc.send(Dest, Term)               -> "ok" (unknown name: "noname")
 *   proc.call(Dest, Request[, TimeoutMs]) -> the response ("noproc", "timeout")
 *   proc.send_after(Dest, Ms, Term)     -> {"timer": Pid, "ms": Ms} (a timer process)
 *   proc.trace(Dest[, Opts])            -> {"tracer": Pid, "target": Pid, "token": N}
 *                                           (rpc/trace.c)
 *   proc.trace_read(Tracer, Op, Token)  -> a tracer's poll answer (rpc/trace.c)
 *
 * Dest is a pid (ext term) or a registered name (string). Every function acts
 * on this node only: a pid of another node is answered "noconnection" (callers
 * route with rpc.call to the pid's node, as the CLI does). docs/rpc.md has the
 * whole contract.
 *
 * Design notes
 * - Everything runs in the request's worker process, as a process: spawn,
 *   send, exit, register are plain girder.h calls; info and call are deferred
 *   answers (GR_RPC_WAIT until the "$info" / "$reply" / "DOWN" arrives).
 * - proc.kill waits until the target is down (a monitor) so that "ok" means
 *   "dead" for a target that does not trap exits: a following proc.info then
 *   reliably says noproc. A target that survives (traps exits, or ignores
 *   "normal") is answered "ok" after KILL_WAIT_MS, since exit signals are
 *   asynchronous in Erlang too.
 * - proc.list / proc.snapshot ask the runtime for a snapshot of every live
 *   process (rt.h, gr_rt_process_list_request): each scheduler answers the
 *   worker with a "$procs" message holding at most Max entries (its lowest
 *   pids) and its count; the worker keeps the Max lowest of the union.
 *   proc.snapshot pages: Cursor (0, or a previous answer's "next") asks for
 *   the pids above it, and "next" is set while more lie above this page
 *   (runtime/plist.c has what pages guarantee under concurrent spawn/exit).
 *   Everything is listed: services, processes spawned by behaviours (linked
 *   or not, named or not), rpc workers including the one serving the list.
 *   A timer bounds the wait (a scheduler out of memory sends nothing).
 * - proc.send_after: a girder_send_after timer dies with the process that
 *   armed it, and a worker ends with its call, so the timer gets a process of
 *   its own ("$timer", unlinked, on the worker's scheduler): its init arms
 *   girder_send_after to itself, and when that fires it sends Term to Dest
 *   and stops (reason normal). Its pid is the timer's handle: killing it
 *   (proc.kill, girder kill) cancels the timer. A name Dest is resolved when
 *   the timer is armed (noname then), like proc.send.
 *
 * Owning thread: every function runs in its worker process (one scheduler).
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_DEFAULT_MS 5000
#define TIMEOUT_MAX_MS 3600000
#define KILL_WAIT_MS 1000
#define SEND_AFTER_MAX_MS 2592000000ull /* 30 days */
#define LIST_DEFAULT 1024               /* processes proc.list reports without Max */
#define LIST_MAX GR_RT_PLIST_MAX        /* largest Max */
#define LIST_TIMEOUT_MS 5000            /* every scheduler answers within this */
#define TIMER_ATOM "$proc_timeout"      /* a call's or kill's own timer */
#define NAME_MAX_LEN GR_TERM_NODE_MAX   /* registered names: 1..255 bytes */

/* ---- helpers --------------------------------------------------------------------------------- */

/* A pid argument: a pid of this node. GR_EBADARG (not a pid) or GR_ENOCONN
 * (another node's pid). */
static int get_local_pid(girder_ctx *ctx, const msgpack_object *o, girder_pid *ret_pid)
{
    girder_pid pid;

    if (o->type != MSGPACK_OBJECT_EXT || girder_get_pid(ctx, o, &pid) < 0) {
        return GR_EBADARG;
    }
    if (pid.node != 0) {
        return GR_ENOCONN;
    }
    *ret_pid = pid;
    return 0;
}

/* A Dest argument: a pid of this node or a name registered here. A name that
 * is not registered returns `noname` (each function decides what that means). */
static int resolve(girder_ctx *ctx, const msgpack_object *o, int noname, girder_pid *ret_pid)
{
    char name[NAME_MAX_LEN + 1];

    if (o->type == MSGPACK_OBJECT_STR) {
        if (gr_term_get_str(o, name, sizeof(name)) < 0) {
            return GR_EBADARG;
        }
        return girder_whereis(ctx, name, ret_pid) < 0 ? noname : 0;
    }
    return get_local_pid(ctx, o, ret_pid);
}

static int answer_pid(gr_rpc_call *c, girder_ctx *ctx, girder_pid pid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if ((r = girder_pack_pid(ctx, &pk, pid)) == 0) {
        r = gr_rpc_answer(c, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* Arm the call's own timer. 0 or a negative code. */
static int arm_timer(girder_ctx *ctx, uint64_t ms)
{
    girder_msg *m = girder_msg_atom(TIMER_ATOM);
    girder_ref tref;
    int r;

    if (!m) {
        return -ENOMEM;
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), ms, m, &tref)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

/* Is msg [Tag, Ref, ...] with Tag == tag and Ref == ref? */
static bool tagged(girder_ctx *ctx, const msgpack_object *msg, const char *tag, girder_ref ref)
{
    girder_ref got;

    return msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size >= 3 &&
           gr_term_is_str(&msg->via.array.ptr[0], tag) &&
           girder_get_ref(ctx, &msg->via.array.ptr[1], &got) == 0 && girder_ref_eq(got, ref);
}

static bool is_timer(const msgpack_object *msg)
{
    return gr_term_is_str(msg, TIMER_ATOM);
}

/* The state of a function that waits for one ref (info, call, kill). */
typedef struct ref_wait {
    girder_ref ref; /* the info request, the call, or the monitor */
    girder_pid pid; /* the target */
} ref_wait;

static ref_wait *ref_wait_new(gr_rpc_call *c)
{
    ref_wait *w = calloc(1, sizeof(*w));

    c->priv = w;
    return w;
}

/* ---- spawn ----------------------------------------------------------------------------------- */

static int proc_spawn(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char beh[NAME_MAX_LEN + 1];
    girder_msg *arg = NULL;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 1 ||
        args->via.array.size > 2 ||
        gr_term_get_str(&args->via.array.ptr[0], beh, sizeof(beh)) < 0) {
        return GR_EBADARG;
    }
    if (strcmp(beh, GR_RPC_WORKER_NAME) == 0) {
        return GR_EBADBEHAVIOUR; /* its argument is a raw pointer: internal only */
    }
    if (args->via.array.size == 2 && !(arg = girder_msg_from_object(&args->via.array.ptr[1]))) {
        return -ENOMEM;
    }
    r = girder_spawn_named(ctx, beh, arg, GIRDER_SPAWN_SPREAD, &pid, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    return answer_pid(c, ctx, pid);
}

/* ---- info ------------------------------------------------------------------------------------ */

static int proc_info(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    ref_wait *w;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1) {
        return GR_EBADARG;
    }
    if ((r = resolve(ctx, &args->via.array.ptr[0], GR_ENOPROC, &pid)) < 0) {
        return r;
    }
    if (!(w = ref_wait_new(c))) {
        return -ENOMEM;
    }
    w->pid = pid;
    if ((r = girder_info_request(ctx, pid, &w->ref)) < 0) {
        return r;
    }
    return GR_RPC_WAIT;
}

/* ["$info", Ref, Map | nil] */
static int proc_info_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    ref_wait *w = c->priv;
    const msgpack_object *info;

    if (!tagged(ctx, msg, "$info", w->ref) || msg->via.array.size != 3) {
        return GR_RPC_WAIT;
    }
    info = &msg->via.array.ptr[2];
    if (info->type != MSGPACK_OBJECT_MAP) {
        return GR_ENOPROC;
    }
    return gr_rpc_answer_object(c, info);
}

/* ---- kill ------------------------------------------------------------------------------------ */

static int proc_kill(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    girder_msg *reason;
    ref_wait *w;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 1 ||
        args->via.array.size > 2) {
        return GR_EBADARG;
    }
    if ((r = resolve(ctx, &args->via.array.ptr[0], GR_ENONAME, &pid)) < 0) {
        return r;
    }
    if (girder_pid_eq(pid, girder_self(ctx))) {
        return GR_EBADARG; /* this worker: it could never answer */
    }
    reason = args->via.array.size == 2 ? girder_msg_from_object(&args->via.array.ptr[1])
                                       : girder_msg_atom("kill");
    if (!reason || !(w = ref_wait_new(c))) {
        girder_msg_unref(reason);
        return -ENOMEM;
    }
    w->pid = pid;
    if ((r = girder_monitor(ctx, pid, &w->ref)) < 0 || (r = girder_exit(ctx, pid, reason)) < 0 ||
        (r = arm_timer(ctx, KILL_WAIT_MS)) < 0) {
        girder_msg_unref(reason);
        return r;
    }
    girder_msg_unref(reason);
    return GR_RPC_WAIT;
}

/* ["DOWN", Ref, "process", Pid, Reason], or our timer (still alive: trapped). */
static int proc_kill_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    ref_wait *w = c->priv;

    if (tagged(ctx, msg, "DOWN", w->ref)) {
        return gr_rpc_answer_str(c, "ok");
    }
    if (is_timer(msg)) {
        girder_demonitor(ctx, w->ref);
        return gr_rpc_answer_str(c, "ok");
    }
    return GR_RPC_WAIT;
}

/* ---- names ----------------------------------------------------------------------------------- */

/* proc.register first asks the target for its info: girder_register can only
 * check liveness and an existing name when the target shares the caller's
 * scheduler (otherwise it registers optimistically and the owner drops the
 * name later), and the operator deserves the real answer. */
typedef struct reg_wait {
    ref_wait w;                  /* the info request */
    char name[NAME_MAX_LEN + 1]; /* the name to register */
} reg_wait;

static int proc_register(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    reg_wait *rw;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2) {
        return GR_EBADARG;
    }
    if (!(rw = calloc(1, sizeof(*rw)))) {
        return -ENOMEM;
    }
    c->priv = rw;
    if (gr_term_get_str(&args->via.array.ptr[0], rw->name, sizeof(rw->name)) < 0) {
        return GR_EBADARG;
    }
    if ((r = get_local_pid(ctx, &args->via.array.ptr[1], &pid)) < 0) {
        return r;
    }
    rw->w.pid = pid;
    if ((r = girder_info_request(ctx, pid, &rw->w.ref)) < 0) {
        return r;
    }
    return GR_RPC_WAIT;
}

/* ["$info", Ref, Map | nil]: alive and unnamed -> register. */
static int proc_register_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    reg_wait *rw = c->priv;
    const msgpack_object *info, *name;
    int r;

    if (!tagged(ctx, msg, "$info", rw->w.ref) || msg->via.array.size != 3) {
        return GR_RPC_WAIT;
    }
    info = &msg->via.array.ptr[2];
    if (info->type != MSGPACK_OBJECT_MAP) {
        return GR_ENOPROC;
    }
    if ((name = gr_term_map_get(info, "name")) && name->type != MSGPACK_OBJECT_NIL) {
        return GR_EALREADY;
    }
    if ((r = girder_register(ctx, rw->name, rw->w.pid)) < 0) {
        return r;
    }
    return gr_rpc_answer_str(c, "ok");
}

static int proc_whereis(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char name[NAME_MAX_LEN + 1];
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        gr_term_get_str(&args->via.array.ptr[0], name, sizeof(name)) < 0) {
        return GR_EBADARG;
    }
    if ((r = girder_whereis(ctx, name, &pid)) < 0) {
        return r;
    }
    return answer_pid(c, ctx, pid);
}

/* ---- send_after ------------------------------------------------------------------------------ */

/* A timer process: delivers one message to one pid after a delay, then stops.
 * Its spawn argument is [Dest, Ms, Term]. */
typedef struct timer_state {
    girder_pid dest; /* where Term goes */
    girder_msg *msg; /* Term; owned */
} timer_state;

static int timer_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    timer_state *t = calloc(1, sizeof(*t));
    girder_msg *fire = girder_msg_atom("$fire");
    msgpack_unpacked u;
    const msgpack_object *a;
    girder_ref tref;
    int r = GR_EBADARG;

    msgpack_unpacked_init(&u);
    if (t == NULL || fire == NULL) {
        r = -ENOMEM;
        goto out;
    }
    if (arg == NULL || girder_msg_unpack(arg, &u) < 0 || u.data.type != MSGPACK_OBJECT_ARRAY ||
        u.data.via.array.size != 3) {
        goto out;
    }
    a = u.data.via.array.ptr;
    if (girder_get_pid(ctx, &a[0], &t->dest) < 0 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        goto out;
    }
    if ((t->msg = girder_msg_from_object(&a[2])) == NULL) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = girder_send_after(ctx, girder_self(ctx), a[1].via.u64, fire, &tref)) == 0) {
        fire = NULL; /* taken */
        *ret_state = t;
        t = NULL;
    }
out:
    msgpack_unpacked_destroy(&u);
    girder_msg_unref(fire);
    if (t != NULL) {
        girder_msg_unref(t->msg);
        free(t);
    }
    return r;
}

static int timer_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    timer_state *t = state;
    msgpack_unpacked u;
    bool fire;

    msgpack_unpacked_init(&u);
    fire = girder_msg_unpack(msg, &u) == 0 && gr_term_is_str(&u.data, "$fire");
    msgpack_unpacked_destroy(&u);
    if (!fire) {
        return GIRDER_CONTINUE; /* nothing else is expected; ignored */
    }
    if (girder_send(ctx, t->dest, t->msg) == 0) {
        t->msg = NULL; /* taken */
    }
    return GIRDER_STOP;
}

static void timer_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    timer_state *t = state;

    (void)ctx;
    (void)reason;
    girder_msg_unref(t->msg);
    free(t);
}

static const girder_behaviour timer_behaviour = {
    .name = "$timer",
    .init = timer_init,
    .handle = timer_handle,
    .terminate = timer_terminate,
};

static int proc_send_after(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *arg;
    girder_pid dest, timer;
    const msgpack_object *a;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 3) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > SEND_AFTER_MAX_MS) {
        return GR_EBADARG;
    }
    if ((r = resolve(ctx, &a[0], GR_ENONAME, &dest)) < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    if ((r = girder_pack_pid(ctx, &pk, dest)) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return r;
    }
    msgpack_pack_uint64(&pk, a[1].via.u64);
    msgpack_pack_object(&pk, a[2]);
    arg = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (arg == NULL) {
        return -ENOMEM;
    }
    r = girder_spawn(ctx, &timer_behaviour, arg, 0, &timer, NULL);
    girder_msg_unref(arg);
    if (r < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "timer", 5);
    if ((r = girder_pack_pid(ctx, &pk, timer)) == 0) {
        msgpack_pack_str_with_body(&pk, "ms", 2);
        msgpack_pack_uint64(&pk, a[1].via.u64);
        r = gr_rpc_answer(c, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* ---- send and call --------------------------------------------------------------------------- */

static int proc_send(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    girder_msg *m;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2) {
        return GR_EBADARG;
    }
    if ((r = resolve(ctx, &args->via.array.ptr[0], GR_ENONAME, &pid)) < 0) {
        return r;
    }
    if (!(m = girder_msg_from_object(&args->via.array.ptr[1]))) {
        return -ENOMEM;
    }
    if ((r = girder_send(ctx, pid, m)) < 0) {
        girder_msg_unref(m);
        return r;
    }
    return gr_rpc_answer_str(c, "ok");
}

static int proc_call(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const msgpack_object *a;
    uint64_t timeout = CALL_TIMEOUT_DEFAULT_MS;
    girder_msg *req;
    ref_wait *w;
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size < 2 ||
        args->via.array.size > 3) {
        return GR_EBADARG;
    }
    a = args->via.array.ptr;
    if (args->via.array.size == 3) {
        if (a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[2].via.u64 == 0 ||
            a[2].via.u64 > TIMEOUT_MAX_MS) {
            return GR_EBADARG;
        }
        timeout = a[2].via.u64;
    }
    if ((r = resolve(ctx, &a[0], GR_ENOPROC, &pid)) < 0) {
        return r;
    }
    if (girder_pid_eq(pid, girder_self(ctx))) {
        return GR_EBADARG; /* this worker would call itself */
    }
    if (!(w = ref_wait_new(c)) || !(req = girder_msg_from_object(&a[1]))) {
        return -ENOMEM;
    }
    w->pid = pid;
    r = girder_call(ctx, pid, req, true, &w->ref);
    girder_msg_unref(req);
    if (r < 0 || (r = arm_timer(ctx, timeout)) < 0) {
        return r;
    }
    return GR_RPC_WAIT;
}

/* ["$reply", Ref, Response], ["DOWN", Ref, "process", Pid, Reason], our timer. */
static int proc_call_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    ref_wait *w = c->priv;

    if (tagged(ctx, msg, "$reply", w->ref) && msg->via.array.size == 3) {
        girder_demonitor(ctx, w->ref);
        return gr_rpc_answer_object(c, &msg->via.array.ptr[2]);
    }
    if (tagged(ctx, msg, "DOWN", w->ref)) {
        return GR_ENOPROC;
    }
    if (is_timer(msg)) {
        girder_demonitor(ctx, w->ref);
        return GR_ETIMEOUT;
    }
    return GR_RPC_WAIT;
}

/* ---- list ------------------------------------------------------------------------------------ */

/* One process of the answer: its pid id (the sort key) and its entry. */
typedef struct list_item {
    uint64_t key; /* rank key (largest first; 0 for every item when by pid) */
    uint64_t id;  /* pid id: serial << 8 | scheduler */
    size_t off;   /* the entry map, packed, at list_state.buf + off */
    size_t len;   /* bytes in entry */
} list_item;

typedef struct list_state {
    girder_ref ref;      /* the runtime's list request */
    uint64_t after;      /* the cursor: only pid ids above it (0: from the start) */
    uint64_t above;      /* live processes above it, summed over the answers */
    bool snapshot;       /* proc.snapshot (a map) rather than proc.list (the array) */
    int key;             /* GR_RT_PLIST_BY_x: the rank (by pid: pages) */
    size_t max;          /* most entries answered */
    unsigned pending;    /* schedulers that have not answered */
    uint64_t total;      /* live processes, summed over the answers */
    size_t n, cap;       /* items held / allocated: 2 * max (see list_trim) */
    list_item *items;    /* the entries received */
    msgpack_sbuffer buf; /* every entry received, packed one after the other:
                          * one buffer, not one allocation per entry (a
                          * million-process listing makes 122 pages of 8192);
                          * at most schedulers * max entries */
} list_state;

static void list_free(void *priv)
{
    list_state *l = priv;

    if (!l) {
        return;
    }
    msgpack_sbuffer_destroy(&l->buf);
    free(l->items);
    free(l);
}

/* Keep one entry of a "$procs" answer (the runtime's own, well-formed: packed
 * as it is). 0, GR_EBADTERM (no pid) or -ENOMEM. */
static int list_keep(list_state *l, girder_ctx *ctx, const msgpack_object *e)
{
    const msgpack_object *po = e->type == MSGPACK_OBJECT_MAP ? gr_term_map_get(e, "pid") : NULL;
    msgpack_packer pk;
    girder_pid pid;
    size_t off = l->buf.size;

    if (!po || girder_get_pid(ctx, po, &pid) < 0) {
        return GR_EBADTERM;
    }
    if (l->n == l->cap) {
        return 0; /* more than the scheduler was asked for: cannot happen */
    }
    msgpack_packer_init(&pk, &l->buf, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *e) < 0) {
        return -ENOMEM;
    }
    l->items[l->n].key = 0;
    if (l->key != GR_RT_PLIST_BY_PID) {
        static const char *const field[] = {NULL, "work", "handled", "mailbox", "memory"};
        const msgpack_object *k = gr_term_map_get(e, field[l->key]);

        if (k && k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            l->items[l->n].key = k->via.u64;
        }
    }
    l->items[l->n].id = pid.id;
    l->items[l->n].off = off;
    l->items[l->n].len = l->buf.size - off;
    l->n++;
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const list_item *x = a, *y = b;

    if (x->key != y->key) {
        return x->key > y->key ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Keep the `max` best ranked (lowest pids, or largest keys), sorted. Called whenever another
 * scheduler's answer (at most max entries) might not fit, so items never exceed 2 * max whatever
 * the number of schedulers. */
static void list_trim(list_state *l)
{
    if (l->n > 1) {
        qsort(l->items, l->n, sizeof(l->items[0]), cmp_item);
    }
    if (l->n > l->max) {
        l->n = l->max; /* their bytes stay in buf until the end */
    }
}

/* The lowest `max` entries, sorted by pid: the array, or for proc.snapshot
 * {"processes": Array, "total": N, "truncated": Bool, "next": Cursor | nil}:
 * truncated and next say that more processes lie above this page, next is the
 * cursor of the next page (the last entry's pid id). */
static int list_answer(gr_rpc_call *c, list_state *l)
{
    size_t n = l->n < l->max ? l->n : l->max;
    bool more = l->above > n && n > 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    list_trim(l);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (l->snapshot) {
        msgpack_pack_map(&pk, 4);
        msgpack_pack_str_with_body(&pk, "processes", 9);
    }
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer_write(&sb, l->buf.data + l->items[i].off, l->items[i].len);
    }
    if (l->snapshot) {
        msgpack_pack_str_with_body(&pk, "total", 5);
        msgpack_pack_uint64(&pk, l->total);
        msgpack_pack_str_with_body(&pk, "truncated", 9);
        if (more) {
            msgpack_pack_true(&pk);
        } else {
            msgpack_pack_false(&pk);
        }
        msgpack_pack_str_with_body(&pk, "next", 4);
        if (more && l->key == GR_RT_PLIST_BY_PID) { /* a ranked list does not page */
            msgpack_pack_uint64(&pk, l->items[n - 1].id);
        } else {
            msgpack_pack_nil(&pk);
        }
    }
    return gr_rpc_answer_sb(c, &sb);
}

static int list_start(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args, bool snapshot)
{
    unsigned nsched = gr_rt_schedulers(girder_runtime(ctx));
    size_t max = LIST_DEFAULT;
    uint64_t after = 0;
    list_state *l;
    int r;

    int key = GR_RT_PLIST_BY_PID;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size > (snapshot ? 3u : 1u)) {
        return GR_EBADARG;
    }
    if (args->via.array.size == 3) { /* proc.snapshot's Key */
        static const char *const keys[] = {"pid", "work", "handled", "mailbox", "memory"};
        const msgpack_object *k = &args->via.array.ptr[2];

        key = -1;
        for (int i = 0; i < 5; i++) {
            if (gr_term_is_str(k, keys[i])) {
                key = i; /* the GR_RT_PLIST_BY_x order */
            }
        }
        if (key < 0) {
            return GR_EBADARG;
        }
    }
    if (args->via.array.size >= 2) { /* proc.snapshot's Cursor: nil or an integer */
        const msgpack_object *cur = &args->via.array.ptr[1];

        if (cur->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            after = cur->via.u64;
        } else if (cur->type != MSGPACK_OBJECT_NIL) {
            return GR_EBADARG;
        }
    }
    if (args->via.array.size >= 1) {
        const msgpack_object *m = &args->via.array.ptr[0];

        if (m->type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->via.u64 == 0 ||
            m->via.u64 > LIST_MAX) {
            return GR_EBADARG;
        }
        max = (size_t)m->via.u64;
    }
    if (!(l = calloc(1, sizeof(*l)))) {
        return -ENOMEM;
    }
    msgpack_sbuffer_init(&l->buf);
    c->priv = l;
    c->priv_free = list_free;
    l->snapshot = snapshot;
    l->key = key;
    l->max = max;
    l->after = after;
    l->pending = nsched;
    l->cap = 2 * max;
    if (!(l->items = calloc(l->cap, sizeof(*l->items)))) {
        return -ENOMEM;
    }
    if ((r = gr_rt_process_top_request(ctx, key, after, max, &l->ref)) < 0 ||
        (r = arm_timer(ctx, LIST_TIMEOUT_MS)) < 0) {
        return r;
    }
    return GR_RPC_WAIT;
}

static int proc_list(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    return list_start(c, ctx, args, false);
}

static int proc_snapshot(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    return list_start(c, ctx, args, true);
}

/* ["$procs", Ref, Total, Above, [Entry...]] from one scheduler, or our timer. */
static int proc_list_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    list_state *l = c->priv;
    const msgpack_object *a;
    int r;

    if (is_timer(msg)) {
        return GR_ETIMEOUT; /* a scheduler could not answer (out of memory) */
    }
    if (!tagged(ctx, msg, "$procs", l->ref) || msg->via.array.size != 5) {
        return GR_RPC_WAIT;
    }
    a = msg->via.array.ptr;
    if (a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[4].type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADTERM;
    }
    l->total += a[2].via.u64;
    l->above += a[3].via.u64;
    if (l->n + a[4].via.array.size > l->cap) {
        list_trim(l);
    }
    for (uint32_t i = 0; i < a[4].via.array.size; i++) {
        if ((r = list_keep(l, ctx, &a[4].via.array.ptr[i])) < 0) {
            return r;
        }
    }
    return --l->pending > 0 ? GR_RPC_WAIT : list_answer(c, l);
}

/* ---- the table ------------------------------------------------------------------------------- */

static const gr_rpc_fn_def proc_fns[] = {
    {"spawn", proc_spawn, NULL, NULL},
    {"list", proc_list, proc_list_msg, NULL},
    {"snapshot", proc_snapshot, proc_list_msg, NULL},
    {"info", proc_info, proc_info_msg, NULL},
    {"kill", proc_kill, proc_kill_msg, NULL},
    {"register", proc_register, proc_register_msg, NULL},
    {"whereis", proc_whereis, NULL, NULL},
    {"send", proc_send, NULL, NULL},
    {"call", proc_call, proc_call_msg, NULL},
    {"send_after", proc_send_after, NULL, NULL},
    {"trace", gr_rpc_proc_trace, gr_rpc_proc_trace_msg, NULL},
    {"trace_read", gr_rpc_proc_trace_read, gr_rpc_proc_trace_read_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_proc = {"proc", proc_fns, sizeof(proc_fns) / sizeof(proc_fns[0])};
