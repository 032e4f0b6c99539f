/* SPDX-License-Identifier: Apache-2.0 */
/*
 * girder.h - the public C API for behaviour authors. Versioned: GIRDER_API_VERSION
 * changes whenever a declaration here changes incompatibly.
 *
 * A process is an event-driven actor: a behaviour (init, handle, terminate
 * callbacks), private state and a mailbox. It lives on one scheduler thread for
 * its whole life; every callback of one process runs on that thread, so
 * behaviour code is single-threaded and never blocks (use timers and messages).
 *
 * Every function taking a girder_ctx must be called from inside a callback of
 * that process (init, handle or terminate), on its scheduler thread.
 *
 * Messages are msgpack terms held in immutable, reference-counted buffers
 * (girder_msg). Pids and refs are msgpack ext types (see proto/term.h and
 * docs/protocol.md); pack them with girder_pack_pid/girder_pack_ref and read
 * them with girder_get_pid/girder_get_ref.
 *
 * Runtime messages a process may receive (atoms are msgpack strings):
 *   ["EXIT", Pid, Reason]                    link exit, when trapping exits
 *   ["DOWN", Ref, "process", Pid, Reason]    a monitor fired (exactly once)
 *   ["$call", FromPid, Ref, Request]         a request; answer with girder_reply
 *   ["$reply", Ref, Response]                the answer to girder_call
 *   ["$info", Ref, Map]                      the answer to girder_info_request
 *   ["$spawn_reply", Ref, "ok", Pid]         girder_spawn_remote succeeded
 *   ["$spawn_reply", Ref, "error", Reason]   girder_spawn_remote failed
 *   ["nodeup", Node]                         girder_monitor_nodes subscribers
 *   ["nodedown", Node, Reason]               girder_monitor_nodes subscribers
 * Reasons: "normal", "killed", "noproc", "shutdown", "noconnection", or any term.
 *
 * Errors are negative ints (proto/err.h); 0 is success.
 */
#ifndef GIRDER_H
#define GIRDER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GIRDER_API_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

/* A process identifier. Value type; compare with girder_pid_eq. `node` indexes the
 * runtime's node-name table (0 is the local node); `creation` is that node's
 * incarnation; `id` is (serial << 8) | scheduler. */
typedef struct girder_pid {
    uint32_t node;     /* node-table index, 0 = this node */
    uint32_t creation; /* incarnation of the node that made it */
    uint64_t id;       /* unique within (node, creation); 0 is never a valid pid */
} girder_pid;

/* A unique reference (monitors, calls, timers). Same shape as a pid. */
typedef struct girder_ref {
    uint32_t node;     /* node-table index, 0 = this node */
    uint32_t creation; /* incarnation of the node that made it */
    uint64_t id;       /* unique within (node, creation); 0 = no ref */
} girder_ref;

typedef struct girder_ctx girder_ctx; /* the calling process; opaque */
typedef struct girder_msg girder_msg; /* refcounted encoded term; opaque */
typedef struct girder_rt girder_rt;   /* one node's runtime; opaque */

static inline bool girder_pid_eq(girder_pid a, girder_pid b)
{
    return a.id == b.id && a.node == b.node && a.creation == b.creation;
}

static inline bool girder_ref_eq(girder_ref a, girder_ref b)
{
    return a.id == b.id && a.node == b.node && a.creation == b.creation;
}

/* ---- messages ---------------------------------------------------------------- */

/* New message holding a copy of len bytes (one msgpack term; not validated here:
 * the producer is trusted, network input is validated at the frame decoder).
 * Refcount 1, owned by the caller. NULL on allocation failure or len == 0. */
girder_msg *girder_msg_new(const void *bytes, size_t len);

/* New message holding the msgpack string s (an "atom"). */
girder_msg *girder_msg_atom(const char *s);

/* New message holding the term o (e.g. part of an unpacked message, re-encoded).
 * NULL on allocation failure. */
girder_msg *girder_msg_from_object(const msgpack_object *o);

/* Take another reference; returns m. Safe from any thread. */
girder_msg *girder_msg_ref(girder_msg *m);

/* Drop a reference; frees at zero. Always returns NULL (m = girder_msg_unref(m)).
 * NULL-safe. Safe from any thread. */
girder_msg *girder_msg_unref(girder_msg *m);

const void *girder_msg_data(const girder_msg *m);
size_t girder_msg_size(const girder_msg *m);

/* Unpack m into `out` (caller calls msgpack_unpacked_init before and
 * msgpack_unpacked_destroy after). Returns 0 or GR_EBADTERM. */
int girder_msg_unpack(const girder_msg *m, msgpack_unpacked *out);

/* Is the message the msgpack string s? Cheap; no allocation. */
bool girder_msg_is_atom(const girder_msg *m, const char *s);

/* Pack a pid / ref as its ext type. Needs ctx to name the node. 0 or -ENOMEM. */
int girder_pack_pid(girder_ctx *ctx, msgpack_packer *pk, girder_pid pid);
int girder_pack_ref(girder_ctx *ctx, msgpack_packer *pk, girder_ref ref);

/* Read a pid / ref ext object. 0, or GR_EBADTERM (out untouched). */
int girder_get_pid(girder_ctx *ctx, const msgpack_object *o, girder_pid *ret_pid);
int girder_get_ref(girder_ctx *ctx, const msgpack_object *o, girder_ref *ret_ref);

/* ---- behaviours -------------------------------------------------------------- */

/* handle() return values. */
#define GIRDER_CONTINUE 0 /* keep running */
#define GIRDER_STOP 1     /* stop with the reason set by girder_stop (default "normal") */

typedef struct girder_behaviour {
    const char *name; /* unique per runtime, e.g. "supervisor", "echo" */
    /* Called once, first thing the process runs, on its scheduler. `arg` is the
     * spawn argument (borrowed; take a ref to keep it; may be NULL). Set
     * *ret_state. Return 0, or a negative error: the process then exits with
     * reason "init_failed" (or the reason set by girder_stop) and terminate is
     * not called. */
    int (*init)(girder_ctx *ctx, const girder_msg *arg, void **ret_state);
    /* One message (borrowed: take a ref to keep it). Return GIRDER_CONTINUE or
     * GIRDER_STOP. */
    int (*handle)(girder_ctx *ctx, void *state, const girder_msg *msg);
    /* Optional. Called once when the process exits for any reason except after a
     * failed init; `reason` is borrowed. Must free state. Cannot prevent exit. */
    void (*terminate)(girder_ctx *ctx, void *state, const girder_msg *reason);
    /* Optional. Bytes of state owned by the process, for process info. */
    size_t (*state_size)(const void *state);
} girder_behaviour;

/* Make a behaviour spawnable by name on this runtime. `b` must outlive the
 * runtime. 0, -EEXIST if the name is taken, -ENOMEM. Any thread. */
int girder_behaviour_register(girder_rt *rt, const girder_behaviour *b);

/* Look up a registered behaviour; NULL if unknown. Any thread. */
const girder_behaviour *girder_behaviour_find(girder_rt *rt, const char *name);

/* ---- processes --------------------------------------------------------------- */

#define GIRDER_SPAWN_LINK 0x1u    /* atomically link caller and child */
#define GIRDER_SPAWN_MONITOR 0x2u /* atomically monitor the child; ref in *ret_mref */
#define GIRDER_SPAWN_SPREAD                                                                        \
    0x4u /* place on the next scheduler round-robin instead                                        \
            of the caller's own */

/* Spawn a process running `b` with argument `arg` (borrowed; the runtime takes
 * its own reference). The child is created at once and runs init on its first
 * turn. *ret_pid gets the child's pid; *ret_mref (may be NULL unless MONITOR is
 * set) the monitor ref. 0, -ENOMEM or GR_ESTOPPED. */
int girder_spawn(girder_ctx *ctx, const girder_behaviour *b, const girder_msg *arg, unsigned flags,
                 girder_pid *ret_pid, girder_ref *ret_mref);

/* Same, by registered behaviour name; GR_EBADBEHAVIOUR if unknown. */
int girder_spawn_named(girder_ctx *ctx, const char *behaviour, const girder_msg *arg,
                       unsigned flags, girder_pid *ret_pid, girder_ref *ret_mref);

/* Asynchronous spawn on node `node` ("name@host"; this node's own name works
 * the same way), Erlang's spawn_request: returns at once with *ret_req, the
 * request ref; exactly one ["$spawn_reply", Ref, "ok", Pid] or
 * ["$spawn_reply", Ref, "error", Reason] follows. `behaviour` is a registered
 * behaviour name on that node (1..255 bytes); `arg` is borrowed (may be NULL).
 * Flags: GIRDER_SPAWN_LINK and/or GIRDER_SPAWN_MONITOR are set up atomically
 * with the spawn (the child's side before its init runs); the monitor's ref is
 * the request ref, so a later ["DOWN", Ref, ...] matches it. The reply arrives
 * before any EXIT or DOWN from the child; on an error reply no link or monitor
 * exists. GIRDER_SPAWN_SPREAD applies to this node only. Error reasons:
 * "bad_behaviour" (unknown there), "noconnection" (node not connected, or lost
 * before the reply: the child may or may not have been created; if it was, it
 * gets the link exit "noconnection"), "system_limit" (out of memory),
 * "shutdown" (that node is stopping). The reply does not wait for init: a
 * failing init is the child's exit "init_failed" after an "ok". If the caller
 * dies before the reply, a child it asked to link gets the exit "noproc" and
 * its monitor is dropped. girder_demonitor(Req) works before the reply too.
 * 0, or GR_EBADARG (bad behaviour name, flags or ret_req), GR_EBADNODE,
 * -ENOMEM, -ENOSPC (node table); on error no reply comes. docs/runtime.md,
 * "Remote spawn". */
int girder_spawn_remote(girder_ctx *ctx, const char *node, const char *behaviour,
                        const girder_msg *arg, unsigned flags, girder_ref *ret_req);

girder_pid girder_self(girder_ctx *ctx);
girder_rt *girder_runtime(girder_ctx *ctx);

/* Send msg to pid. Takes the caller's reference to msg on success (take an extra
 * girder_msg_ref first to send the same buffer again). A dead pid drops the
 * message silently and still returns 0, as in Erlang. Order between one sender
 * and one receiver is kept. A message to a node whose link is busy is taken,
 * and the caller is suspended after its current callback returns: its next
 * callback waits until the link drains (docs/runtime.md, "Busy links"). 0, or
 * a negative error (msg stays with the caller). */
int girder_send(girder_ctx *ctx, girder_pid to, girder_msg *msg);

/* girder_send, except that it never suspends the caller: a message for a node
 * whose link is busy (more queued than its high-water mark; girder_send would
 * take it and suspend the caller after this turn, docs/runtime.md, "Busy
 * links") is refused with GR_EOVERLOAD, msg staying with the caller. Retry
 * later (e.g. on a timer), as Erlang's erlang:send(.., [nosuspend]). */
int girder_send_nosuspend(girder_ctx *ctx, girder_pid to, girder_msg *msg);

/* Send to a name registered on this node. GR_ENONAME if no such name (msg stays
 * with the caller); otherwise as girder_send. */
int girder_send_name(girder_ctx *ctx, const char *name, girder_msg *msg);

/* Send to a name registered on another node: {Name, Node} ! Msg. `node` is a
 * node name ("name@host"); when it is this node, exactly girder_send_name.
 * Otherwise, as in Erlang, the message is dropped silently if the node is not
 * connected or nothing is registered under `name` there; it is ordered with the
 * caller's other signals to that node. Takes msg and returns 0, or GR_EBADARG
 * (bad name), GR_EBADNODE (malformed node name), -ENOMEM / -ENOSPC (node
 * table), GR_ENONAME (local node only); on error msg stays with the caller. */
int girder_send_name_node(girder_ctx *ctx, const char *name, const char *node, girder_msg *msg);

/* Name of the node a pid lives on ("name@host"; this node's own name for a local
 * pid), valid for the runtime's life; NULL for a pid not made by this runtime's
 * node table. */
const char *girder_pid_node_name(girder_ctx *ctx, girder_pid pid);

/* Register `pid` (a live local process) under `name` (1..255 bytes). 0,
 * GR_ENAMETAKEN, GR_EALREADY (pid has a name), GR_ENOPROC, GR_EBADARG. A name
 * vanishes when its process exits. */
int girder_register(girder_ctx *ctx, const char *name, girder_pid pid);
/* 0 or GR_ENONAME. */
int girder_unregister(girder_ctx *ctx, const char *name);
/* 0 and *ret_pid, or GR_ENONAME. */
int girder_whereis(girder_ctx *ctx, const char *name, girder_pid *ret_pid);

/* Cluster-wide names (Erlang's global; docs/pubsub.md "Global names"). Register
 * `name` (1..255 bytes) for local process pid on every node: 0,
 * GR_ENAMETAKEN (this node knows the name), GR_EBADARG, -ENOMEM, -ENOTSUP (no
 * pubsub on this node). Registration is optimistic: if another node registered
 * the same name meanwhile (or in another partition), the older registration
 * keeps it everywhere and the loser gets ["$global_clash", Name, WinnerPid].
 * The name goes when its process dies or its node goes down. */
int girder_global_register(girder_ctx *ctx, const char *name, girder_pid pid);
/* Drop a name held by a process of this node: 0 or GR_ENONAME. */
int girder_global_unregister(girder_ctx *ctx, const char *name);
/* The holder of name on any node: 0 and *ret_pid, or GR_ENONAME. */
int girder_global_whereis(girder_ctx *ctx, const char *name, girder_pid *ret_pid);
/* Send msg (taken on success) to the holder of name: 0, GR_ENONAME, or a send
 * error. */
int girder_global_send(girder_ctx *ctx, const char *name, girder_msg *msg);

/* ---- tables (docs/tables.md "C API") ------------------------------------------ */

/* The node's tables, from a process: the same engine, rules and errors as the
 * rpc module `table` (a write to a replicated table is replicated; a table is
 * created with `girder table create` or the rpc module). Keys and values are
 * single msgpack terms (a key is canonicalized, so 1 and 1.0 are one key).
 * The calls run on the caller's scheduler thread and return at once, except a
 * write to a disk table with fsync `always`, which waits for its (shared)
 * fsync: keep such tables off hot behaviour paths or use `interval`.
 * Errors: GR_ENOTABLE, GR_ENOKEY, GR_EKEYEXISTS, GR_ECASMISMATCH, GR_EFULL,
 * GR_ETOOBIG, GR_EBADTERM, GR_EWRONGTYPE, GR_EBADARG, -ENOMEM, a disk table's
 * -errno; -ENOTSUP when the node runs without a table engine. */

/* A growable output buffer owned by the caller: start it zeroed, reuse it
 * across calls, free it with girder_buf_free. */
typedef struct girder_buf {
    uint8_t *p; /* bytes */
    size_t len; /* used */
    size_t cap; /* allocated */
} girder_buf;
void girder_buf_free(girder_buf *b);

#define GIRDER_PUT_IF_ABSENT 0x1u /* fail with GR_EKEYEXISTS if the key is present */
#define GIRDER_PUT_CAS 0x2u       /* fail with GR_ECASMISMATCH unless version matches */
#define GIRDER_PUT_TTL 0x4u       /* ttl_ms applies (0: no expiry) */

/* How a put is made; NULL is a plain put with the table's default TTL. */
typedef struct girder_put_opts {
    unsigned flags;   /* GIRDER_PUT_* */
    uint64_t version; /* GIRDER_PUT_CAS: the expected version; 0 means "absent" */
    uint64_t ttl_ms;  /* GIRDER_PUT_TTL: time to live from now, 0 = forever */
} girder_put_opts;

/* Copy key's value (one msgpack term) into *val, replacing its contents, and
 * its version into *ret_version (may be NULL). 0 or an error above. */
int girder_table_get(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     girder_buf *val, uint64_t *ret_version);
/* Store val under key; *ret_version (may be NULL) gets the new version. */
int girder_table_put(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen, const girder_put_opts *how,
                     uint64_t *ret_version);
/* Delete key; a nonzero version deletes only that version (CAS). */
int girder_table_del(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     uint64_t version);
/* Add delta to key's counter and return the new total in *ret_value; on a
 * replicated table concurrent increments on other nodes are never lost. */
int girder_table_incr(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                      int64_t delta, int64_t *ret_value);

/* Link caller and pid (idempotent). Linking a dead pid delivers an exit with
 * reason "noproc" to the caller (an EXIT message when trapping). 0 or error. */
int girder_link(girder_ctx *ctx, girder_pid pid);
/* Remove the link (idempotent). After it returns no exit from that link arrives. */
int girder_unlink(girder_ctx *ctx, girder_pid pid);

/* Monitor pid: exactly one ["DOWN", Ref, "process", Pid, Reason] arrives unless
 * demonitored first; Reason is "noproc" if pid is already dead. */
int girder_monitor(girder_ctx *ctx, girder_pid pid, girder_ref *ret_ref);
/* Cancel a monitor; after return its DOWN message is never delivered. */
int girder_demonitor(girder_ctx *ctx, girder_ref ref);

/* Subscribe the calling process (on = true) to node events, as Erlang's
 * net_kernel:monitor_nodes/1: ["nodeup", Node] when a member node connects,
 * ["nodedown", Node, Reason] when it is lost (Reason "noconnection"), leaves or
 * restarts; Node is the node's name ("name@host"). on = false unsubscribes;
 * both are idempotent. A subscription ends by itself when the process exits.
 * 0, GR_ENOCONN (this node runs without distribution), or -ENOMEM. */
int girder_monitor_nodes(girder_ctx *ctx, bool on);

/* Send an exit signal with `reason` (borrowed) to pid. "kill" cannot be trapped
 * and kills with reason "killed"; "normal" is ignored by a non-trapping target
 * (unless pid is the caller); other reasons kill a non-trapping target and arrive
 * as ["EXIT", From, Reason] at a trapping one. */
int girder_exit(girder_ctx *ctx, girder_pid pid, const girder_msg *reason);

/* Set the reason the calling process stops with when handle/init returns
 * GIRDER_STOP / an error (borrowed). */
void girder_stop(girder_ctx *ctx, const girder_msg *reason);

/* Turn exit trapping on/off; returns the previous setting. */
bool girder_trap_exit(girder_ctx *ctx, bool on);

/* Deliver msg to `to` after ms milliseconds (timer lives on the caller's
 * scheduler). Takes msg on success. *ret_tref identifies the timer. Timers die
 * with the calling process. 0 or -ENOMEM. */
int girder_send_after(girder_ctx *ctx, girder_pid to, uint64_t ms, girder_msg *msg,
                      girder_ref *ret_tref);
/* Cancel a timer of the calling process: 0 if cancelled before firing (its message
 * is never delivered), -ENOENT if it already fired or is unknown. */
int girder_cancel_timer(girder_ctx *ctx, girder_ref tref);

/* Make a fresh unique ref. */
girder_ref girder_make_ref(girder_ctx *ctx);

/* Request/reply (gen_server's call): sends ["$call", Self, Ref, request] to `to`
 * (request borrowed) and returns the Ref; the answer arrives as
 * ["$reply", Ref, Response]. If `monitor` is true the caller also monitors `to`
 * with the same Ref, so a dead server yields ["DOWN", Ref, ...] instead of
 * silence; the caller demonitors when the reply arrives. */
int girder_call(girder_ctx *ctx, girder_pid to, const girder_msg *request, bool monitor,
                girder_ref *ret_ref);
/* Answer a "$call": sends ["$reply", ref, response] (response borrowed) to from. */
int girder_reply(girder_ctx *ctx, girder_pid from, girder_ref ref, const girder_msg *response);

/* Ask for pid's process info; arrives as ["$info", Ref, Map] or, for a dead pid,
 * ["$info", Ref, nil]. Map keys: "pid", "status", "scheduler", "mailbox",
 * "handled", "memory", "links", "monitors", "monitored_by", "name",
 * "behaviour", "started_ms", "trap_exit". */
int girder_info_request(girder_ctx *ctx, girder_pid pid, girder_ref *ret_ref);

/* ---- supervisors ------------------------------------------------------------- */

/* The supervisor behaviour, registered as "supervisor" in every runtime. Its
 * spawn argument is a msgpack map:
 *   {"strategy": "one_for_one" | "one_for_all" | "rest_for_one",
 *    "intensity": 3, "period_ms": 5000,
 *    "children": [ChildSpec, ...]}
 * ChildSpec:
 *   {"id": "name", "behaviour": "echo", "arg": Term,
 *    "restart": "permanent" | "transient" | "temporary",
 *    "shutdown_ms": 5000 (0 = brutal kill), "type": "worker" | "supervisor"}
 * Requests, sent with girder_call (Request is an array):
 *   ["start_child", ChildSpec]   -> ["ok", Pid] | ["error", Reason]
 *   ["terminate_child", Id]      -> "ok" | ["error", "not_found"]
 *   ["delete_child", Id]         -> "ok" | ["error", Reason]
 *   ["restart_child", Id]        -> ["ok", Pid] | ["error", Reason]
 *   ["which_children"]           -> [[Id, Pid | nil, Type, Behaviour], ...]
 *   ["count_children"]           -> {"specs": N, "active": N, "supervisors": N,
 *                                    "workers": N}
 * Children are started in order, stopped in reverse order. When restarts exceed
 * intensity within period_ms, the supervisor stops all children and exits with
 * reason "shutdown". */
extern const girder_behaviour girder_supervisor;

#ifdef __cplusplus
}
#endif

#endif
