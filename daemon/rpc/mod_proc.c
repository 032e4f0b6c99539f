/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_proc.c - rpc module `proc`: the processes of this node, driven from the
 * outside (the CLI's send, call, spawn, ps, info, kill).
 *
 *   proc.spawn(Behaviour[, Arg])        -> Pid (unlinked; "bad_behaviour")
 *   proc.list()                         -> [{"pid", "name", "behaviour", "status",
 *                                           "mailbox", "memory", "handled"}, ...]
 *   proc.info(Dest)                     -> the info map ("noproc")
 *   proc.kill(Dest[, Reason])           -> "ok" (exit signal, default "kill")
 *   proc.register(Name, Pid)            -> "ok" (checked with the target first)
 *   proc.whereis(Name)                  -> Pid ("noname")
 *   proc.send(Dest, Term)               -> "ok" (unknown name: "noname")
 *   proc.call(Dest, Request[, TimeoutMs]) -> the response ("noproc", "timeout")
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
 * - proc.list: the runtime has no way to enumerate processes (rt.h offers only
 *   gr_rt_process_count, and daemon/runtime/ is not this module's to change).
 *   So the list is a walk: it starts from the well-known names ("root",
 *   "sys") and the roster (rpc_int.h: pids spawned or registered through this
 *   module), asks each for its info, and follows every local link it reports
 *   (a supervisor links its children). Processes reachable in none of these ways
 *   (e.g. spawned by a behaviour, unlinked) are not listed; neither are rpc
 *   workers. Bounded by LIST_MAX entries. A per-scheduler enumeration signal in
 *   the runtime would replace this.
 *
 * Owning thread: every function runs in its worker process (one scheduler).
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "services/services.h"
#include "services/sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_DEFAULT_MS 5000
#define TIMEOUT_MAX_MS 3600000
#define KILL_WAIT_MS 1000
#define LIST_MAX 1024                 /* most processes proc.list reports */
#define TIMER_ATOM "$proc_timeout"    /* a call's or kill's own timer */
#define NAME_MAX_LEN GR_TERM_NODE_MAX /* registered names: 1..255 bytes */

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
        if (gr_rpc_get_str(o, name, sizeof(name)) < 0) {
            return GR_EBADARG;
        }
        return girder_whereis(ctx, name, ret_pid) < 0 ? noname : 0;
    }
    return get_local_pid(ctx, o, ret_pid);
}

/* The value of string key k in map m, or NULL. */
static const msgpack_object *map_get(const msgpack_object *m, const char *k)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        if (gr_term_is_str(&m->via.map.ptr[i].key, k)) {
            return &m->via.map.ptr[i].val;
        }
    }
    return NULL;
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
        args->via.array.size > 2 || gr_rpc_get_str(&args->via.array.ptr[0], beh, sizeof(beh)) < 0) {
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
    (void)gr_rpc_roster_add(c->rpc, pid);
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
        gr_rpc_roster_drop(c->rpc, w->pid);
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
    reason = args->via.array.size == 2 ? girder_msg_from_object(&args->via.array.ptr[1]) : girder_msg_atom("kill");
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
        gr_rpc_roster_drop(c->rpc, w->pid);
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
    if (gr_rpc_get_str(&args->via.array.ptr[0], rw->name, sizeof(rw->name)) < 0) {
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
    if ((name = map_get(info, "name")) && name->type != MSGPACK_OBJECT_NIL) {
        return GR_EALREADY;
    }
    if ((r = girder_register(ctx, rw->name, rw->w.pid)) < 0) {
        return r;
    }
    (void)gr_rpc_roster_add(c->rpc, rw->w.pid);
    return gr_rpc_answer_str(c, "ok");
}

static int proc_whereis(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char name[NAME_MAX_LEN + 1];
    girder_pid pid;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        gr_rpc_get_str(&args->via.array.ptr[0], name, sizeof(name)) < 0) {
        return GR_EBADARG;
    }
    if ((r = girder_whereis(ctx, name, &pid)) < 0) {
        return r;
    }
    return answer_pid(c, ctx, pid);
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

typedef struct list_item {
    girder_pid pid; /* the process */
    girder_ref ref; /* its info request */
    bool done;      /* its "$info" arrived */
    uint8_t *entry; /* the list entry (a packed map), NULL: dead */
    size_t len;     /* bytes in entry */
} list_item;

typedef struct list_state {
    size_t n;                  /* items in use */
    size_t pending;            /* info requests not answered yet */
    list_item items[LIST_MAX]; /* every process asked about */
} list_state;

static void list_free(void *priv)
{
    list_state *l = priv;

    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].entry);
    }
    free(l);
}

/* Ask pid for its info unless it was asked already (or the list is full). */
static int list_ask(list_state *l, girder_ctx *ctx, girder_pid pid)
{
    list_item *it;
    int r;

    if (pid.node != 0 || pid.id == 0 || l->n == LIST_MAX) {
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (girder_pid_eq(l->items[i].pid, pid)) {
            return 0;
        }
    }
    it = &l->items[l->n];
    if ((r = girder_info_request(ctx, pid, &it->ref)) < 0) {
        return r;
    }
    it->pid = pid;
    l->n++;
    l->pending++;
    return 0;
}

static const char *const LIST_KEYS[] = {"pid",     "name",   "behaviour", "status",
                                        "mailbox", "memory", "handled"};
#define NLIST_KEYS (sizeof(LIST_KEYS) / sizeof(LIST_KEYS[0]))

/* Keep the list's keys of an info map as item's entry. 0 or -ENOMEM. */
static int list_keep(list_item *it, const msgpack_object *info)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const msgpack_object *v[NLIST_KEYS];
    uint32_t n = 0;

    for (size_t k = 0; k < NLIST_KEYS; k++) {
        n += (v[k] = map_get(info, LIST_KEYS[k])) != NULL;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t k = 0; k < NLIST_KEYS; k++) {
        if (v[k]) {
            msgpack_pack_str_with_body(&pk, LIST_KEYS[k], strlen(LIST_KEYS[k]));
            msgpack_pack_object(&pk, *v[k]);
        }
    }
    if (gr_term_validate(sb.data, sb.size) < 0) { /* a failed write truncated it */
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    it->len = sb.size;
    it->entry = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const list_item *x = a, *y = b;

    return x->pid.id < y->pid.id ? -1 : x->pid.id > y->pid.id;
}

static int list_answer(gr_rpc_call *c, list_state *l)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t live = 0;

    qsort(l->items, l->n, sizeof(l->items[0]), cmp_item);
    for (size_t i = 0; i < l->n; i++) {
        live += l->items[i].entry != NULL;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, live);
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].entry) {
            msgpack_sbuffer_write(&sb, (const char *)l->items[i].entry, l->items[i].len);
        }
    }
    if (gr_term_validate(sb.data, sb.size) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return GR_RPC_DONE;
}

static int proc_list(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    static const char *const well_known[] = {GR_SERVICES_ROOT_NAME, GR_SYS_NAME};
    girder_pid *roster;
    list_state *l;
    girder_pid pid;
    size_t n;
    int r = 0;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 0) {
        return GR_EBADARG;
    }
    if (!(l = calloc(1, sizeof(*l))) || !(roster = malloc(GR_RPC_ROSTER_MAX * sizeof(*roster)))) {
        free(l);
        return -ENOMEM;
    }
    c->priv = l;
    c->priv_free = list_free;
    for (size_t i = 0; i < sizeof(well_known) / sizeof(well_known[0]) && r == 0; i++) {
        if (girder_whereis(ctx, well_known[i], &pid) == 0) {
            r = list_ask(l, ctx, pid);
        }
    }
    n = gr_rpc_roster_get(c->rpc, roster, GR_RPC_ROSTER_MAX);
    for (size_t i = 0; i < n && r == 0; i++) {
        r = list_ask(l, ctx, roster[i]);
    }
    free(roster);
    if (r < 0) {
        return r;
    }
    return l->pending ? GR_RPC_WAIT : list_answer(c, l);
}

/* ["$info", Ref, Map | nil] for one of the items: keep it, follow its links. */
static int proc_list_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    list_state *l = c->priv;
    const msgpack_object *info, *links;
    list_item *it = NULL;
    girder_ref ref;
    int r;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 3 ||
        !gr_term_is_str(&msg->via.array.ptr[0], "$info") ||
        girder_get_ref(ctx, &msg->via.array.ptr[1], &ref) < 0) {
        return GR_RPC_WAIT;
    }
    for (size_t i = 0; i < l->n && !it; i++) {
        if (!l->items[i].done && girder_ref_eq(l->items[i].ref, ref)) {
            it = &l->items[i];
        }
    }
    if (!it) {
        return GR_RPC_WAIT;
    }
    it->done = true;
    l->pending--;
    info = &msg->via.array.ptr[2];
    if (info->type != MSGPACK_OBJECT_MAP) {
        gr_rpc_roster_drop(c->rpc, it->pid); /* dead: forget it */
    } else {
        if ((r = list_keep(it, info)) < 0) {
            return r;
        }
        /* Follow its links (items never move before the answer is packed). */
        links = map_get(info, "links");
        for (uint32_t i = 0;
             links && links->type == MSGPACK_OBJECT_ARRAY && i < links->via.array.size; i++) {
            girder_pid pid;

            if (girder_get_pid(ctx, &links->via.array.ptr[i], &pid) == 0 &&
                (r = list_ask(l, ctx, pid)) < 0) {
                return r;
            }
        }
    }
    return l->pending ? GR_RPC_WAIT : list_answer(c, l);
}

/* ---- the table ------------------------------------------------------------------------------- */

static const gr_rpc_fn_def proc_fns[] = {
    {"spawn", proc_spawn, NULL, NULL},
    {"list", proc_list, proc_list_msg, NULL},
    {"info", proc_info, proc_info_msg, NULL},
    {"kill", proc_kill, proc_kill_msg, NULL},
    {"register", proc_register, proc_register_msg, NULL},
    {"whereis", proc_whereis, NULL, NULL},
    {"send", proc_send, NULL, NULL},
    {"call", proc_call, proc_call_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_proc = {"proc", proc_fns, sizeof(proc_fns) / sizeof(proc_fns[0])};
