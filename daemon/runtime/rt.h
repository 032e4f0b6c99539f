/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rt.h - one node's process runtime, as seen by the code that owns it (girderd's
 * main, the network layer, tests, benchmarks). Behaviour authors use
 * include/girder/girder.h instead.
 *
 * The runtime owns N scheduler threads, each with its own libevent base, its own
 * pid -> process table and a lock-free inbox. Functions here marked "any thread"
 * may be called from threads that are not schedulers (the main thread, tests);
 * they reach processes only through scheduler inboxes.
 *
 * A probe is a mailbox for a non-scheduler thread: it has a pid (it is a real
 * process that traps exits), so processes can send, link and monitor it, and its
 * thread can block on gr_probe_recv. Tests, the CLI's rpc handlers and the
 * daemon's main thread use probes to talk to processes.
 */
#ifndef GR_RT_H
#define GR_RT_H

#include "girder/girder.h"

#include <event2/event.h>
#include <stdint.h>

typedef struct gr_rt_config {
    const char *node_name; /* "name@host"; copied */
    uint32_t creation;     /* incarnation, new on every start (0 = pick from clock) */
    unsigned schedulers;   /* 0 = one per online core; at most GR_RT_SCHED_MAX */
    unsigned batch;        /* messages per process turn; 0 = default (64) */
} gr_rt_config;

#define GR_RT_SCHED_MAX 255

/* Create a runtime (threads not started). Registers the built-in "supervisor"
 * behaviour. 0 and *ret_rt, or -EINVAL / -ENOMEM / -errno. Any thread. */
int gr_rt_new(const gr_rt_config *cfg, girder_rt **ret_rt);

/* Start the scheduler threads. 0 or -errno. Once. */
int gr_rt_start(girder_rt *rt);

/* Stop: every remaining process exits with reason "shutdown" (terminate runs,
 * links and monitors fire), then the scheduler threads end and are joined.
 * Blocks. Idempotent. Must not be called from a scheduler thread. */
void gr_rt_stop(girder_rt *rt);

/* Free a stopped (or never started) runtime. NULL-safe; returns NULL. */
girder_rt *gr_rt_free(girder_rt *rt);

unsigned gr_rt_schedulers(const girder_rt *rt);
const char *gr_rt_node_name(const girder_rt *rt);
uint32_t gr_rt_creation(const girder_rt *rt);

/* The libevent base of scheduler i (for I/O that a scheduler owns). Use only on
 * that scheduler's thread once started. */
struct event_base *gr_rt_sched_base(girder_rt *rt, unsigned i);

/* Spawn from a non-scheduler thread, round-robin across schedulers. `arg`
 * borrowed. 0 and *ret_pid, or -ENOMEM, GR_ESTOPPED. Any thread. */
int gr_rt_spawn(girder_rt *rt, const girder_behaviour *b, const girder_msg *arg,
                girder_pid *ret_pid);

/* The behaviour the calling process runs (the pointer it was spawned with).
 * Inside a callback of that process. */
const girder_behaviour *gr_rt_ctx_behaviour(girder_ctx *ctx);

/* Withdraw a registered behaviour (the exact pointer registered): later
 * spawns by name fail with GR_EBADBEHAVIOUR; running processes keep it (the
 * caller keeps `b` valid until they are gone). 0 or -ENOENT. Any thread. */
int gr_rt_behaviour_unregister(girder_rt *rt, const girder_behaviour *b);

/* Send from a non-scheduler thread (no sender pid). Takes msg on success. Any
 * thread. */
int gr_rt_send(girder_rt *rt, girder_pid to, girder_msg *msg);

/* Exit signal from a non-scheduler thread (reason borrowed). Any thread. */
int gr_rt_exit(girder_rt *rt, girder_pid to, const girder_msg *reason);

/* Registered-name lookup. 0 or GR_ENONAME. Any thread. */
int gr_rt_whereis(girder_rt *rt, const char *name, girder_pid *ret_pid);

/* Number of live processes across all schedulers (approximate while running). */
uint64_t gr_rt_process_count(girder_rt *rt);

/* How many times a sleeping scheduler has been woken (a wake-up write) since
 * the start. Relaxed: a thread that has just woken one sees its own increment.
 * The dist loop uses it to stop spinning once it has handed work over (dist.c);
 * sys.counters reports it as "sched_wakeups". Any thread. */
uint64_t gr_rt_wakeups(girder_rt *rt);

/* Messages handled by processes since the start, summed over the schedulers
 * (each adds its own after every process turn; relaxed, so a figure a turn
 * old). /metrics reports it as girder_messages_handled_total. Any thread. */
uint64_t gr_rt_messages_handled(girder_rt *rt);

/* Scheduler utilisation. Scheduler i's wall time is the time since its loop
 * began and its busy time the part of it not spent blocked in the event loop
 * waiting for work (delivering signals, running processes, timers and
 * sockets that were ready without a wait), both in ns. The scheduler reads
 * the clock twice per sleep and never while it has work, so a loaded one
 * pays nothing. The busy fraction over an interval is the difference of two
 * readings of busy over that of wall (girder top, rate() on /metrics).
 * 0, 0 for i out of range or a loop not yet begun. Any thread. */
void gr_rt_sched_time(girder_rt *rt, unsigned i, uint64_t *ret_busy_ns, uint64_t *ret_wall_ns);

/* The computation behind gr_rt_sched_time, on one consistent reading: loop
 * start, finished sleeps' total, start of the sleep in progress (0: awake),
 * and now; a clock that went back counts as no time. Pure. */
void gr_rt_sched_time_of(uint64_t start_ns, uint64_t idle_ns, uint64_t sleep_ns, uint64_t now_ns,
                         uint64_t *ret_busy_ns, uint64_t *ret_wall_ns);

/* ---- enumerating processes (plist.c) ---------------------------------------------
 *
 * Every scheduler owns its pid table, so a list is a question to each of them:
 * each answers from its own thread, between process turns, with its live
 * processes at that moment (no lock on the spawn/exit path; the union is not
 * one instant across schedulers, like Erlang's processes/0). Complete for the
 * asker: a live process it spawned, or learnt of by a message, before asking
 * is listed. Each scheduler reports at most `max` processes, those with the
 * lowest pids (the oldest), and the count of all of them. rpc workers, probes
 * and the asker itself are processes like any other and are listed.
 */

#define GR_RT_PLIST_MAX 65536 /* most processes one list may report */

/* From inside a process (its scheduler thread): ask every scheduler for one
 * page of its processes, those with a pid id above `after` (a cursor: 0 for
 * the first page, then the highest pid id of the previous page; plist.c's
 * design notes give what pages guarantee under concurrent spawn and exit).
 * Each of the gr_rt_schedulers(rt) schedulers sends the caller one message
 *   ["$procs", Ref, Total, Above, [Entry, ...]]
 * Total: live processes on that scheduler; Above: those with an id above
 * `after`; Entries: at most `max` of those (lowest pids, ascending), each a
 * map {"pid", "name" (nil if none), "behaviour", "status" ("running" |
 * "runnable" | "waiting"), "mailbox", "memory", "handled", "scheduler"}. The
 * asker keeps the `max` lowest of the union; more pages follow when the
 * Above counts sum to more than it kept. A scheduler out of memory sends
 * nothing (the asker should bound its wait with a timer). 0 and *ret_ref,
 * GR_EBADARG (max 0 or above GR_RT_PLIST_MAX) or -ENOMEM (nothing asked). */
int gr_rt_process_list_request(girder_ctx *ctx, uint64_t after, size_t max, girder_ref *ret_ref);

/* Rank keys of gr_rt_process_top_request. */
enum {
    GR_RT_PLIST_BY_PID = 0, /* the lowest pid ids (gr_rt_process_list_request) */
    GR_RT_PLIST_BY_WORK,    /* the largest reductions-like work count */
    GR_RT_PLIST_BY_HANDLED, /* the most messages handled */
    GR_RT_PLIST_BY_MAILBOX, /* the longest mailbox */
    GR_RT_PLIST_BY_MEMORY,  /* the most memory (gr_proc_memory) */
};

/* As gr_rt_process_list_request, but each scheduler reports the `max`
 * processes above `after` that rank best by `key` (GR_RT_PLIST_BY_x: the
 * largest value, ties by the lowest pid id), chosen over all its processes,
 * best first; BY_PID is gr_rt_process_list_request. The asker merges by the
 * same rank. 0 and *ret_ref, GR_EBADARG (max or key out of range), -ENOMEM. */
int gr_rt_process_top_request(girder_ctx *ctx, int key, uint64_t after, size_t max,
                              girder_ref *ret_ref);

/* Trace process `target` of this node for ctx's process (the tracer): the
 * messages it receives and sends arrive as ["$trace", Kind, Peer, Term,
 * TimeMs] (Kind "in", "out" or "call"), at most `max` of them, for at most
 * `ms` ms, at most `rate` a second (the rest dropped and counted); then
 * ["$trace_end", Reason, Dropped] (Reason "count", "time", "stopped",
 * "replaced"). max 0 stops the caller's trace of target. A trace replaces
 * any other of target. Nothing comes back for a dead target (monitor it).
 * Process context. 0, GR_ENOCONN (a pid of another node), GR_EBADARG
 * (itself), -ENOMEM. runtime/trace.c. */
int gr_rt_trace(girder_ctx *ctx, girder_pid target, uint64_t max, uint64_t ms, uint32_t rate);

/* As gr_rt_trace (max > 0), but a trace of target by another tracer is kept:
 * the caller then gets ["$trace_end", "busy", 0] and nothing else (what an
 * observer may do: it never ends someone else's trace). Same returns. */
int gr_rt_trace_keep(girder_ctx *ctx, girder_pid target, uint64_t max, uint64_t ms, uint32_t rate);

/* From a non-scheduler thread (blocks until every scheduler answered; not
 * during gr_rt_stop): one page of live processes with a pid id above `after`
 * (0: from the start), sorted by pid. *ret_pids (caller frees) holds *ret_n <=
 * max pids, the lowest; *ret_total is the number of live processes;
 * *ret_more (may be NULL) whether more processes lie above the page (the next
 * page: after = the last pid's id). 0, GR_EBADARG, GR_ESTOPPED, -ENOMEM
 * (outputs untouched). */
int gr_rt_process_list(girder_rt *rt, uint64_t after, size_t max, girder_pid **ret_pids,
                       size_t *ret_n, uint64_t *ret_total, bool *ret_more);

/* Send msg to `name` registered on node `node` ("name@host") from a
 * non-scheduler thread: {Name, Node} ! Msg. As girder_send_name_node. Any
 * thread. */
int gr_rt_send_name_node(girder_rt *rt, const char *name, const char *node, girder_msg *msg);

/* A message of len bytes (1..UINT32_MAX) for the caller to fill through
 * *ret_data before it shares it (then it is immutable like any other). For a
 * producer that would otherwise build the bytes elsewhere and copy them in:
 * the dist layer reassembles a big payload straight into one. NULL on -ENOMEM
 * or a bad length. Any thread. */
girder_msg *gr_rt_msg_alloc(size_t len, uint8_t **ret_data);
/* gr_rt_msg_alloc with room, in the same allocation, for the signal of its
 * one send (gr_rt_send_once): one malloc and one free per delivery instead of
 * two, for a producer that makes a message per receiver (pubsub's
 * envelopes). Otherwise an ordinary message (girder_send works too). Any
 * thread. */
girder_msg *gr_rt_msg_alloc_once(size_t len, uint8_t **ret_data);

/* A tally counts the release of messages (gr_rt_msg_alloc_tallied): when a
 * tallied message's last reference goes - its receiver's handle() has
 * returned and nobody kept it, or it was dropped (dead receiver, failed
 * send) - the message is freed and reports to its tally, on whatever thread
 * that happens. The owner counts what it sent; sent minus released is what
 * is still alive, read without touching the messages (pubsub's backlogs,
 * daemon/pubsub/subs.c).
 *
 * The tally is reference-counted: one reference for the owner, one for each
 * tallied message alive, and any number the owner holds in advance
 * (gr_rt_tally_hold) to hand to messages without an atomic each; the last
 * release frees it, so it outlives its owner while messages are in flight.
 * gr_rt_tally_refs - 1 - (references held in advance) = messages alive.
 * Any thread for all of these. */
typedef struct gr_rt_tally gr_rt_tally;

/* A tally with one reference (the caller's), or NULL on -ENOMEM. */
gr_rt_tally *gr_rt_tally_new(void);
/* n more references for the caller (it holds one already). */
void gr_rt_tally_hold(gr_rt_tally *t, uint64_t n);
/* Drop n of the caller's references; frees t at the last. NULL-safe. */
void gr_rt_tally_release(gr_rt_tally *t, uint64_t n);
/* References right now (acquire: the releases it counts happened before). */
uint64_t gr_rt_tally_refs(const gr_rt_tally *t);
/* Bytes (girder_msg_size) of the tallied messages released so far. */
uint64_t gr_rt_tally_done_bytes(const gr_rt_tally *t);
/* gr_rt_msg_alloc_once (room for the signal of one gr_rt_send_once) for a
 * message that reports its release to t. Takes one of the caller's
 * references of t on success (the message gives it back when it goes);
 * NULL on -ENOMEM or a bad length, and then takes nothing. */
girder_msg *gr_rt_msg_alloc_tallied(size_t len, gr_rt_tally *t, uint8_t **ret_data);

/* References m has right now (acquire). A holder that sees 1 knows it holds
 * the last one: every other holder has dropped its reference, and what it did
 * before is visible. Any thread. */
unsigned gr_rt_msg_refs(const girder_msg *m);

/* Name of node index i (0 = this node). NULL if i was never interned; else the
 * name (valid for the runtime's life) and *ret_len its length. Any thread,
 * lock-free. */
const char *gr_rt_node_at(girder_rt *rt, uint32_t i, size_t *ret_len);

/* Intern a node name (len bytes, not NUL-terminated), returning its index in
 * this runtime's node table: 0 for this node's own name, the same index for the
 * same name forever (the table is append-only). 0 and *ret_idx, or
 * GR_EBADNODE, -ENOMEM, -ENOSPC (4,096 names per runtime lifetime, of which
 * at most 1,024 not claimed by gr_rt_node_intern_member: names met in terms,
 * such as a pid of a made-up node, cannot use up the members' slots). Any
 * thread. */
int gr_rt_node_intern(girder_rt *rt, const char *name, size_t len, uint32_t *ret_idx);
/* gr_rt_node_intern for a cluster member (its link is up): outside the
 * quota of names met in terms, and a name interned before from a term
 * becomes a member's (its quota slot is freed). The distribution layer's. */
int gr_rt_node_intern_member(girder_rt *rt, const char *name, size_t len, uint32_t *ret_idx);

/* Text form of a pid: "<node.creation.serial.sched>"... see docs/processes.md.
 * Writes at most len bytes including NUL; returns chars that would be written. */
int gr_pid_format(girder_rt *rt, girder_pid pid, char *buf, size_t len);

/* ---- distribution hooks ----------------------------------------------------------
 *
 * The runtime routes every signal; when its destination is on another node it
 * hands it to the distribution layer through one hook, and the distribution
 * layer hands signals arriving from other nodes back with gr_rt_remote_deliver.
 * Pids and refs inside a gr_rt_remote_sig use the node indices of the runtime
 * that produces or consumes it (gr_rt_node_at / gr_rt_node_intern translate);
 * payload bytes never need translating (pids in terms carry node names).
 * docs/runtime.md, "Remote signals", has the whole contract.
 */

typedef enum gr_rsig_kind {
    GR_RSIG_MSG,       /* message msg (to a pid, or to to_name on to.node) */
    GR_RSIG_LINK,      /* `from` links to `to` */
    GR_RSIG_UNLINK,    /* `from` unlinks from `to` */
    GR_RSIG_EXIT,      /* exit/2: `from` sends exit reason msg (NULL = normal) */
    GR_RSIG_LINKEXIT,  /* linked `from` exited with reason msg */
    GR_RSIG_MONITOR,   /* `from` monitors `to` under ref */
    GR_RSIG_DEMONITOR, /* `from` cancels monitor ref on `to` */
    GR_RSIG_DOWN,      /* monitored `from` died with reason msg; ref names the monitor */
    /* `from` asks node to.node (to.id == 0) to spawn `behaviour` with argument
     * msg (may be NULL); ref is the request ref (made by from's node); flags
     * GIRDER_SPAWN_LINK / GIRDER_SPAWN_MONITOR. */
    GR_RSIG_SPAWN_REQUEST,
    /* The answer to request ref, for `to`: success when msg is NULL (`from` is
     * the child; flags echo the request's), error when msg is the reason
     * (`from` has id 0). */
    GR_RSIG_SPAWN_REPLY,
} gr_rsig_kind;

typedef struct gr_rt_remote_sig {
    gr_rsig_kind kind;     /* what it is */
    girder_pid from;       /* sender; node index in the producing/consuming runtime;
                              id 0 = a non-process thread (exit/2 or send only) */
    girder_pid to;         /* destination; out: to.node != 0; in: to.node == 0 */
    girder_ref ref;        /* monitor ref (MONITOR/DEMONITOR/DOWN), else zero */
    const char *to_name;   /* MSG only: registered name on node to.node (to.id == 0),
                              else NULL; borrowed for the call */
    girder_msg *msg;       /* payload or reason, may be NULL except for MSG and DOWN;
                              owned by the signal (see each function) */
    const char *behaviour; /* SPAWN_REQUEST only: behaviour name (1..255 bytes),
                              borrowed for the call; else NULL */
    uint32_t flags;        /* SPAWN_REQUEST / SPAWN_REPLY: GIRDER_SPAWN_LINK |
                              GIRDER_SPAWN_MONITOR; else 0 */
} gr_rt_remote_sig;

/* Outgoing hook. Called for every signal whose destination is on another node,
 * on the thread that emits it: a scheduler thread (from inside a process
 * callback, or between turns), or a thread calling gr_rt_send / gr_rt_exit /
 * gr_rt_send_name_node with a remote destination. Never called from inside
 * gr_rt_remote_deliver or gr_rt_node_down. Must not block and must not call
 * back into the runtime. `sig` is borrowed for the call.
 *
 * Order: two signals handed over by one thread for one (from, to) pair must
 * reach the other node in that order (a scheduler thread is the only one that
 * emits for its processes, so per-connection FIFO suffices).
 *
 * Returns 0: taken (the hook now owns sig->msg and must deliver the signal or
 * lose it only with the connection, i.e. followed by gr_rt_node_down);
 * GR_RT_TAKEN_BUSY (1): taken as for 0, and the node's link is busy: the hook
 * has called gr_rt_node_busy(.., true), and a sending process is suspended
 * after its turn until the link drains (docs/runtime.md, "Busy links");
 * GR_ENOPROC: the destination is known dead (e.g. an older creation of that
 * node); GR_ENOCONN or any other error: the node is not connected. On error
 * sig->msg stays with the runtime, which answers as Erlang does: MSG, UNLINK,
 * EXIT, LINKEXIT, DEMONITOR, DOWN are dropped; LINK gets the sender an exit
 * signal, MONITOR a DOWN, SPAWN_REQUEST an error reply, with reason "noproc"
 * (GR_ENOPROC) or "noconnection"; a SPAWN_REPLY that cannot leave undoes the
 * child's link and monitor (docs/runtime.md, "Remote spawn"). */
typedef int (*gr_rt_remote_fn)(void *ud, gr_rt_remote_sig *sig);

#define GR_RT_TAKEN_BUSY 1 /* the hook's "taken, and the link is busy" */

/* The link to node index `node` is busy (above its high-water mark) or not.
 * busy: processes that send to it are suspended after their turn
 * (girder_send_nosuspend gets GR_EOVERLOAD instead). Not busy: every process
 * suspended on it is resumed, in the order they were suspended. Any thread; the
 * distribution layer calls it (also with false when the node goes down). */
void gr_rt_node_busy(girder_rt *rt, uint32_t node, bool busy);
/* Is node's link marked busy? Any thread. */
bool gr_rt_node_is_busy(girder_rt *rt, uint32_t node);
/* Local process pid is busy (a port whose queue toward its program is above
 * its high-water mark) or not. Busy: a process that sends it a message with
 * girder_send / girder_send_name is suspended after its turn, as for a busy
 * link (girder_send_nosuspend gets GR_EPROCBUSY instead); a sender on
 * another node is told and suspended by its own node (remote.c, "Busy
 * processes across nodes"); calls, replies, pubsub deliveries
 * (gr_rt_send_nobusy) and sends from threads are never suspended. Not busy:
 * every process suspended on pid is resumed, in the order they were
 * suspended, and the nodes told are sent a free notice; the owner must
 * clear the mark before pid exits. 0, GR_EBADARG (not a local pid), -ENOSPC (already
 * GR_RT_BUSY_PIDS_MAX busy: not recorded, senders are not slowed). Any
 * thread. */
int gr_rt_proc_busy(girder_rt *rt, girder_pid pid, bool busy);
/* Is local process pid marked busy? Any thread (lock-free; may miss a change
 * in progress). */
bool gr_rt_proc_is_busy(girder_rt *rt, girder_pid pid);
/* Will the calling process be suspended at the end of this turn (it sent to a
 * busy link or a busy process)? A process that sends in a loop may stop early
 * and continue after it resumes. Owner thread. */
bool gr_rt_ctx_suspending(girder_ctx *ctx);
/* girder_send, except that a busy local process (gr_rt_proc_busy) never
 * suspends the caller: for deliveries bounded by other means (pubsub's
 * per-subscription backlogs). Busy links still suspend. */
int gr_rt_send_nobusy(girder_ctx *ctx, girder_pid to, girder_msg *msg);
/* Wake-ups held back by one thread: a bit per scheduler that a delivery found
 * asleep and that is still to be woken. Zero-initialise; owned by the thread
 * that fills it. */
typedef struct gr_rt_wakes {
    uint64_t bits[(GR_RT_SCHED_MAX + 64) / 64];
} gr_rt_wakes;

/* gr_rt_send_nobusy for msg from gr_rt_msg_alloc_once, whose signal is the
 * room in msg's allocation: callable once per such message (a second send,
 * by anyone, must be an ordinary one). Takes msg (the caller's reference) on
 * success; no allocation, so it fails only on GR_EBADARG. Owner thread. */
int gr_rt_send_once(girder_ctx *ctx, girder_pid to, girder_msg *msg);
/* gr_rt_send_once, except that a scheduler of this node the send finds
 * asleep is not woken here but noted in *held (NULL: woken now), for a
 * producer that sends many messages in a row (pubsub's fan-out: one wake-up
 * per scheduler per publish, not one each time the receiver has caught up
 * and gone back to sleep). The caller must gr_rt_wakes_flush(rt, held)
 * before its turn ends. Owner thread; held owned by the caller. */
int gr_rt_send_once_held(girder_ctx *ctx, girder_pid to, girder_msg *msg, gr_rt_wakes *held);
/* Suspensions: how many processes were suspended on busy links, how many are
 * now, and the total time spent suspended (us, counted at resume). Any thread. */
void gr_rt_suspend_counters(girder_rt *rt, uint64_t *ret_total, uint64_t *ret_now,
                            uint64_t *ret_us);

/* Install the outgoing hook (NULL: no distribution; every other node is "not
 * connected"). Before gr_rt_start, once. The hook must stay callable until
 * gr_rt_stop returns: stopping makes every process exit, which sends exits and
 * DOWNs to its remote links and watchers. gr_rt_remote_deliver and
 * gr_rt_node_down may be called until gr_rt_free (after gr_rt_stop they only
 * queue, and gr_rt_free discards). */
void gr_rt_set_remote(girder_rt *rt, gr_rt_remote_fn fn, void *ud);

/* Node-monitor hook: girder_monitor_nodes(ctx, on) calls fn(ud, pid, on) on
 * the caller's scheduler thread, and the runtime calls fn(ud, pid, false) when
 * a subscribed process exits (on its scheduler thread; also while gr_rt_stop
 * runs), so the distribution layer never keeps a dead subscriber. fn must not
 * block or call back into the runtime; it returns 0 or a negative error (e.g.
 * -ENOMEM), which girder_monitor_nodes returns. The subscriber then gets
 * ["nodeup", Node] and ["nodedown", Node, Reason] messages (dist/dist.h).
 * NULL (the default): no distribution, girder_monitor_nodes answers
 * GR_ENOCONN. Before gr_rt_start, once; fn must stay callable until gr_rt_stop
 * returns. girderd installs gr_dist_monitor_nodes. */
typedef int (*gr_rt_node_monitor_fn)(void *ud, girder_pid pid, bool on);
void gr_rt_set_node_monitor(girder_rt *rt, gr_rt_node_monitor_fn fn, void *ud);

/* Cluster-wide names hook: what girder_global_register / unregister /
 * whereis call (daemon/pubsub installs it; contracts as gr_global_* in
 * pubsub/pubsub.h, -ENOENT mapped to GR_ENONAME). */
typedef struct gr_rt_global_ops {
    int (*reg)(void *ud, const char *name, girder_pid pid);
    int (*unreg)(void *ud, const char *name);
    int (*whereis)(void *ud, const char *name, girder_pid *ret_pid);
    void *ud; /* their first argument */
} gr_rt_global_ops;

/* Install (or, NULL, remove) the names hook; ops must outlive its use (until
 * it is removed after gr_rt_stop). Without one girder_global_* answer
 * -ENOTSUP. Any thread, at any time (an atomic store). */
void gr_rt_set_global(girder_rt *rt, const gr_rt_global_ops *ops);

/* The names hook installed now, or NULL. Any thread (an atomic load). */
const gr_rt_global_ops *gr_rt_global(girder_rt *rt);

/* Tables hook: what girder_table_* call (the owner of the node's table
 * engine, rpc/tables_api.c, installs it; contracts as in girder.h). The
 * runtime stays below the engine: it only forwards. */
typedef struct gr_rt_table_ops {
    int (*get)(void *ud, const char *table, const void *key, size_t klen, girder_buf *val,
               uint64_t *ret_version);
    int (*put)(void *ud, const char *table, const void *key, size_t klen, const void *val,
               size_t vlen, const girder_put_opts *how, uint64_t *ret_version);
    int (*del)(void *ud, const char *table, const void *key, size_t klen, uint64_t version);
    int (*incr)(void *ud, const char *table, const void *key, size_t klen, int64_t delta,
                int64_t *ret_value);
    void *ud; /* their first argument */
} gr_rt_table_ops;

/* Install (or, NULL, remove) the tables hook; the same rules as
 * gr_rt_set_global. Without one girder_table_* answer -ENOTSUP. */
void gr_rt_set_tables(girder_rt *rt, const gr_rt_table_ops *ops);

/* Incoming: hand over a signal that arrived from node sig->from.node (an index
 * already interned with gr_rt_node_intern, != 0) for a process of this node
 * (sig->to.node == 0), or, for MSG, for the name sig->to_name registered here
 * (an unknown name drops the message, as in Erlang). A destination that is
 * dead, or of an older creation of this node, is answered like a local one
 * ("noproc" back through the outgoing hook, later and on a scheduler thread).
 * Order: signals handed over by one thread are delivered in that order.
 * 0 (takes sig->msg and sets it to NULL), or GR_EBADARG (bad kind, node,
 * pid or missing msg),
 * -ENOMEM (msg stays with the caller; the signal is lost, so treat it as a
 * broken connection). Any thread; never blocks, never calls the hook. */
int gr_rt_remote_deliver(girder_rt *rt, gr_rt_remote_sig *sig);

/* gr_rt_remote_deliver, but a sleeping destination scheduler is not woken
 * here: it is noted in *held, and stays asleep - with anything else pushed to
 * it meanwhile - until gr_rt_wakes_flush(rt, held), which the caller must call
 * soon (the dist thread: after each received chunk, so that a batch of
 * messages costs one wake-up, not one per message). held == NULL: wake at
 * once. */
int gr_rt_remote_deliver_held(girder_rt *rt, gr_rt_remote_sig *sig, gr_rt_wakes *held);

/* Wake every scheduler noted in *held and clear it. Any thread. */
void gr_rt_wakes_flush(girder_rt *rt, gr_rt_wakes *held);

/* Node index `node` went down (connection lost, left, or restarted with a new
 * creation). Asynchronously (one signal per scheduler, each ahead of every
 * signal handed over after this call): every local link to a pid of that node
 * fires with reason "noconnection" (an EXIT message to a trapping process,
 * death otherwise), every monitor held on such a pid fires one DOWN
 * "noconnection" (never a second one), and monitors that pids of that node hold
 * on local processes are forgotten (nothing is sent back). Until every
 * scheduler has done so, new links/monitors to that node are answered
 * "noconnection" at once. After this call the caller must not hand over any
 * signal that arrived on the lost connection (the remote side has forgotten
 * the links and monitors it would refer to); signals from a new connection to
 * that node may follow at once. Call it again for every later loss. 0 or
 * GR_EBADARG (node 0 or never interned). Any thread. */
int gr_rt_node_down(girder_rt *rt, uint32_t node);

/* ---- probes --------------------------------------------------------------------- */

typedef struct gr_probe gr_probe;

/* A new probe (a process that traps exits, placed on scheduler 0). 0 or -errno. */
int gr_probe_new(girder_rt *rt, gr_probe **ret_probe);
/* Stop the probe process and free it. NULL-safe; returns NULL. */
gr_probe *gr_probe_free(gr_probe *p);

girder_pid gr_probe_pid(const gr_probe *p);

/* Wait up to timeout_ms (-1 = forever) for the next message. 0 and *ret_msg
 * (caller owns it), or -ETIMEDOUT. */
int gr_probe_recv(gr_probe *p, int timeout_ms, girder_msg **ret_msg);

/* Run fn(ctx, arg) inside the probe's process on its scheduler, and wait for its
 * return value. Lets a test thread use the whole girder.h API as a process:
 * link, monitor, spawn with link, call, register... */
int gr_probe_run(gr_probe *p, int (*fn)(girder_ctx *ctx, void *arg), void *arg);

/* Run fn(ctx, arg) inside any live process `pid` on its scheduler and wait for
 * the result; GR_ENOPROC if pid is dead. Any non-scheduler thread. */
int gr_rt_run_in(girder_rt *rt, girder_pid pid, int (*fn)(girder_ctx *ctx, void *arg), void *arg);

#endif
