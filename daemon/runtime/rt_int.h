/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rt_int.h - the runtime's internal types, shared by the files of daemon/runtime/
 * only. Nothing outside this folder includes it.
 *
 * Ownership map
 *   gr_rt      shared by all threads; immutable after gr_rt_start except the
 *              fields marked atomic or "under lock".
 *   gr_sched   owned by its scheduler thread, except `inbox`, `sleeping`,
 *              `next_serial` (atomics written by any thread).
 *   gr_proc    owned by its scheduler thread, always.
 *   gr_sig     owned by whoever holds it: the sender until pushed, then the
 *              destination scheduler.
 */
#ifndef GR_RT_INT_H
#define GR_RT_INT_H

#include "girder/girder.h"
#include "runtime/rt.h"
#include "runtime/inbox.h"
#include "runtime/ptab.h"
#include "runtime/idmap.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- messages ----------------------------------------------------------------- */

/* Flag in girder_msg.refs of a message from gr_rt_msg_alloc_tallied: its
 * last reference reports to its tally (msg.c). The count is the other bits. */
#define GR_MSG_TALLIED 0x80000000u

struct girder_msg {
    atomic_uint refs;     /* references (| GR_MSG_TALLIED); freed at zero */
    uint32_t len;         /* bytes in data */
    unsigned char data[]; /* one encoded msgpack term */
};

/* ---- signals ------------------------------------------------------------------ */

typedef enum gr_sig_type {
    GR_SIG_MSG,       /* ordinary message: msg */
    GR_SIG_EXIT,      /* exit/2 from `from` with reason msg */
    GR_SIG_LINKEXIT,  /* a linked process `from` exited with reason msg */
    GR_SIG_LINK,      /* `from` linked to `to` */
    GR_SIG_UNLINK,    /* `from` unlinked from `to` */
    GR_SIG_MONITOR,   /* `from` monitors `to` with ref */
    GR_SIG_DEMONITOR, /* `from` cancels monitor ref on `to` */
    GR_SIG_DOWN,      /* monitored `from` died with reason msg; ref identifies it */
    GR_SIG_SPAWN,     /* create ptr (a gr_proc) on the destination scheduler */
    GR_SIG_INFO,      /* `from` asks for process info; reply tagged with ref */
    GR_SIG_RUN,       /* run ptr (a gr_run closure) inside `to` */
    GR_SIG_REGCHECK,  /* name msg was registered to `to`: confirm or drop */
    GR_SIG_STOP,      /* scheduler: begin shutdown */
    GR_SIG_NODEDOWN,  /* scheduler: node to.node went down; scan local processes */
    GR_SIG_DEAD,      /* answer ptr (a gr_sig from another node) as sent to a dead pid */
    /* `from` asks for a child under request ref, argument msg, flags; ptr:
     * to.node != 0 the behaviour name (borrowed, only inside gr_remote_out),
     * to.node == 0 the behaviour, or NULL if unknown (spawn.c) */
    GR_SIG_SPAWNREQ,
    /* answer to request ref: `from` the child and msg NULL, or msg the error
     * reason; flags echo the request's */
    GR_SIG_SPAWNREPLY,
    /* scheduler: list at most to.creation processes with a pid id above
     * to.id for `from` (ref), or into ptr (a gr_plist_sync) when not NULL
     * (plist.c) */
    GR_SIG_PLIST,
    /* `to` was suspended for sending to a busy link or a busy process
     * (remote.c, "Busy links"): it may run again */
    GR_SIG_RESUME,
    /* `from` (a tracer) traces `to`: msg [Max, Ms, Rate]; Max 0 stops (trace.c) */
    GR_SIG_TRACE,
    /* `to` sent to `from`, a process on another node that said it is busy
     * (remote.c, "Busy processes across nodes"): park `to` */
    GR_SIG_RPARK,
} gr_sig_type;

typedef struct gr_sig {
    struct gr_sig *next; /* inbox / local queue / mailbox link */
    uint8_t type;        /* gr_sig_type */
    uint8_t flags;       /* SPAWNREQ / SPAWNREPLY: GIRDER_SPAWN_LINK | _MONITOR */
    uint8_t inmsg;       /* 1: its storage is in msg's allocation (gr_rt_send_once) */
    girder_pid from;     /* sender (id 0 = none) */
    girder_pid to;       /* destination process */
    girder_ref ref;      /* monitor / info / timer ref when relevant */
    girder_msg *msg;     /* payload or reason; owned by the signal */
    void *ptr;           /* GR_SIG_SPAWN: gr_proc*, GR_SIG_RUN: gr_run*, GR_SIG_DEAD: gr_sig*,
                            GR_SIG_PLIST: gr_plist_sync* or NULL */
} gr_sig;

/* Closure for GR_SIG_RUN: fn runs in the target process; result posted back. */
typedef struct gr_run {
    int (*fn)(girder_ctx *ctx, void *arg); /* what to run */
    void *arg;                             /* fn's argument */
    int result;                            /* fn's return, or GR_ENOPROC */
    bool done;                             /* set under lock when result is valid */
    pthread_mutex_t lock;                  /* guards done/result */
    pthread_cond_t cond;                   /* signalled when done */
} gr_run;

/* ---- processes ---------------------------------------------------------------- */

typedef enum gr_proc_status {
    GR_PROC_WAITING,  /* idle, mailbox empty */
    GR_PROC_RUNNABLE, /* in the run queue */
    GR_PROC_RUNNING,  /* its callback is executing now */
    GR_PROC_DEAD,     /* exited; awaiting reap */
} gr_proc_status;

typedef struct gr_timer gr_timer;

/* Rarely-used process parts, allocated on first use so an idle process is small. */
typedef struct gr_trace gr_trace;

typedef struct gr_proc_ext {
    gr_idmap links;      /* linked pid -> same pid */
    gr_idmap mons;       /* monitors held: ref -> target */
    gr_idmap monby;      /* monitors on this process: ref -> watcher */
    gr_idmap spawns;     /* pending spawn requests: ref -> {node, flags, 0} */
    char *name;          /* registered name or NULL */
    gr_timer *timers;    /* pending timers (doubly linked) */
    gr_trace *trace;     /* while traced (trace.c); owner only */
    girder_pid busy_pid; /* this turn sent to that busy process, local or remote (id 0: none);
                            owner only (api.c, remote.c): here, not in gr_proc, because it
                            is rare and an idle process is 16 bytes smaller for it */
} gr_proc_ext;

typedef struct gr_sched gr_sched;

typedef struct gr_proc {
    girder_pid pid;              /* own pid */
    const girder_behaviour *beh; /* callbacks */
    void *state;                 /* behaviour state */
    gr_sched *sched;             /* owning scheduler */
    gr_sig *mbox_head;           /* mailbox FIFO (messages and lazy DOWNs) */
    gr_sig *mbox_tail;           /* last mailbox entry */
    struct gr_proc *run_next;    /* run queue / reap list link */
    girder_msg *arg_or_reason;   /* spawn arg until init, exit reason after */
    gr_proc_ext *ext;            /* links, monitors, name, timers; may be NULL */
    uint64_t handled;            /* messages handled */
    uint64_t work;               /* reductions-like: turns + messages handled + signals sent */
    uint64_t start_ms;           /* CLOCK_REALTIME ms at spawn */
    uint32_t mbox_len;           /* entries in the mailbox */
    uint16_t busy_node;          /* this turn sent to that node's busy link (0: none; the
                                    busy process it sent to: ext->busy_pid) */
    uint8_t status;              /* gr_proc_status */
    bool trap_exit : 1;          /* exits arrive as messages */
    bool queued : 1;             /* in the run queue */
    bool inited : 1;             /* init has run successfully */
    bool stopping : 1;           /* exiting: reason is final */
    bool node_monitor : 1;       /* subscribed with girder_monitor_nodes */
    bool suspended : 1;          /* parked on a busy link: not scheduled until resumed */
    bool traced : 1;             /* ext->trace is set: events go to a tracer (trace.c) */
} gr_proc;

/* Whether p sent to a busy link or a busy process this turn (or was told so
 * by a busy notice): it is parked at the end of the turn (gr_remote_park). */
static inline bool gr_proc_parks(const gr_proc *p)
{
    return p->busy_node != 0 || (p->ext != NULL && p->ext->busy_pid.id != 0);
}

/* The context passed to callbacks IS the process. */
static inline gr_proc *gr_proc_of(girder_ctx *ctx)
{
    return (gr_proc *)ctx;
}

static inline girder_ctx *gr_ctx_of(gr_proc *p)
{
    return (girder_ctx *)p;
}

/* ---- timers ------------------------------------------------------------------- */

struct gr_timer {
    struct event *ev;      /* libevent timer on the owner's scheduler base */
    gr_proc *owner;        /* process that armed it; timer dies with it */
    girder_pid to;         /* destination */
    girder_ref ref;        /* identifies the timer for cancel */
    girder_msg *msg;       /* message to deliver; owned */
    uint64_t due_ns;       /* gr_clock_ns() from which it may fire (timer.c) */
    gr_timer *prev, *next; /* owner's timer list */
};

/* ---- schedulers --------------------------------------------------------------- */

struct gr_sched {
    girder_rt *rt;                    /* owning runtime */
    unsigned idx;                     /* index, also the low byte of pids */
    pthread_t thread;                 /* the scheduler thread */
    struct event_base *base;          /* libevent base, this thread only */
    struct event *wake_ev;            /* eventfd readable -> drain inbox */
    struct event *rbusy_ev;           /* timer: resume processes parked on a remote busy
                                         process past its notice's deadline (remote.c) */
    int wake_fd;                      /* eventfd; written by any thread */
    gr_inbox inbox;                   /* lock-free MPSC of signals from other threads */
    atomic_int sleeping;              /* 1 while the thread may block in the event loop */
    atomic_uint_fast64_t next_serial; /* pid serials; any thread (cross-sched spawn) */
    atomic_uint_fast64_t handled;     /* messages handled here; written by owner only */
    uint64_t next_ref;                /* ref counter, owner only */
    gr_ptab ptab;                     /* pid -> process, owner only */
    gr_sig *localq_head;              /* signals from this thread to this thread */
    gr_sig *localq_tail;              /* last of localq */
    gr_proc *runq_head;               /* processes with work */
    gr_proc *runq_tail;               /* last of runq */
    gr_proc *reap;                    /* dead processes to free at end of turn */
    gr_proc *current;                 /* process whose callback is running */
    atomic_uint_fast64_t nprocs;      /* live processes (read by any thread) */
    atomic_uint_fast64_t start_ns;    /* clock when the loop began; 0 before (owner writes) */
    atomic_uint_fast64_t idle_ns;     /* time blocked in the event loop, finished sleeps
                                       * (owner writes, any thread reads: gr_rt_sched_time) */
    atomic_uint_fast64_t sleep_ns;    /* start of the sleep in progress, 0 while awake */
    bool stopping;                    /* shutdown in progress */
    bool started;                     /* thread was created (main thread only) */
    bool quit;                        /* loop exit requested (owner thread) */
    bool taking;                      /* delivering an inbox batch (owner thread) */
};

/* ---- the runtime -------------------------------------------------------------- */

#define GR_NODES_MAX 4096
/* Names interned from terms (a pid of any node) that no member link has
 * claimed: at most this many, so that pids of made-up nodes (an observer
 * can send 4,096 of them in a second) never use up the slots the cluster's
 * members need (rt.c, gr_rt_node_intern). */
#define GR_NODES_STRANGERS (GR_NODES_MAX / 4)
_Static_assert(GR_NODES_MAX <= UINT16_MAX, "gr_proc.busy_node holds a node index");
#define GR_RT_BUSY_PIDS_MAX 1024 /* busy local processes recorded at once (gr_rt_proc_busy) */
#define GR_RT_RBUSY_MAX 1024     /* busy processes of other nodes known at once */
#define GR_RT_RTOLD_MAX 4096     /* (busy local process, remote sender) pairs told at once */
/* A busy notice holds the senders it parks this long at most (the fallback
 * when its "free" notice is lost); a sender still sending after that is told
 * again. */
#define GR_RT_RBUSY_TIMEOUT_MS 5000
#define GR_RT_BUSY_NOTICE "$proc_busy" /* from a busy process to a remote sender */
#define GR_RT_FREE_NOTICE "$proc_free" /* from it once no longer busy */

typedef struct gr_behav_entry {
    const girder_behaviour *b;   /* registered behaviour */
    struct gr_behav_entry *next; /* list link */
} gr_behav_entry;

typedef struct gr_registry gr_registry;

/* A process parked on a busy link or a busy process (remote.c, "Busy links"). */
typedef struct gr_parked {
    girder_pid pid;    /* the process */
    uint32_t node;     /* the node whose link is busy; 0: parked on `on` */
    uint32_t rnode;    /* node 0 and rnode != 0: `on` is a busy process of node rnode */
    uint64_t on;       /* node 0: the pid id of the busy (local or rnode's) process */
    uint64_t since_us; /* when it was parked (CLOCK_MONOTONIC us) */
} gr_parked;

/* A process of another node that said it is busy (remote.c). */
typedef struct gr_rbusy {
    uint32_t node;     /* its node index */
    uint64_t id;       /* its pid id */
    uint64_t until_us; /* the notice holds until then (CLOCK_MONOTONIC us) */
} gr_rbusy;

/* A remote sender told that a local process is busy (remote.c). */
typedef struct gr_rtold {
    uint64_t id;       /* the busy local process's pid id */
    girder_pid sender; /* told (node != 0) */
    uint64_t told_us;  /* when (CLOCK_MONOTONIC us) */
} gr_rtold;

struct girder_rt {
    char *node_name;      /* "name@host" */
    size_t node_name_len; /* strlen(node_name) */
    uint32_t creation;    /* incarnation */
    unsigned nsched;      /* scheduler count */
    unsigned batch;       /* messages per process turn */
    gr_sched *scheds;     /* nsched schedulers */
    /* Two round-robin placement cursors, so that one kind of placement never
     * sees only every other scheduler because the other kind takes the
     * remaining ones (an rpc worker per proc.spawn used to put every spawned
     * process of a 2-scheduler node on scheduler 1). */
    atomic_uint spread;           /* GIRDER_SPAWN_SPREAD: spawns asked for by processes */
    atomic_uint ext_spread;       /* work from other threads: gr_rt_spawn, remote spawn requests */
    atomic_uint_fast64_t wakeups; /* sleeping schedulers woken (gr_rt_wakeups) */
    atomic_uint_fast64_t ext_ref; /* refs made by non-scheduler threads */
    atomic_bool running;          /* between start and stop */
    atomic_bool stopping;         /* stop requested */
    pthread_mutex_t lock;         /* guards behaviours and node table appends */
    gr_behav_entry *behaviours;   /* under lock */
    const char *nodes[GR_NODES_MAX];       /* node-name table; [0] = local; append-only */
    atomic_uint nnodes;                    /* entries published in nodes[] */
    atomic_bool node_member[GR_NODES_MAX]; /* interned for a member (else a stranger) */
    unsigned nstrangers;                   /* entries not (yet) a member's: under lock */
    gr_registry *names;                    /* registered names (own lock) */
    gr_rt_remote_fn remote_fn;             /* outgoing remote signals; NULL = no distribution */
    void *remote_ud;                       /* remote_fn's argument */
    gr_rt_node_monitor_fn node_mon_fn;     /* girder_monitor_nodes; NULL = no distribution */
    void *node_mon_ud;                     /* node_mon_fn's argument */
    _Atomic(const gr_rt_global_ops *) global_ops; /* girder_global_*; NULL = none */
    _Atomic(const gr_rt_table_ops *) table_ops;   /* girder_table_*; NULL = none */
    /* Per node index: schedulers that have not yet run the node-down scan of
     * gr_rt_node_down. While non-zero, new signals to that node are answered as
     * if it were not connected (remote.c). */
    atomic_uint node_down_pending[GR_NODES_MAX];
    /* Per node index: its link is busy (gr_rt_node_busy); senders are
     * suspended after their turn until it clears (remote.c, "Busy links"). */
    atomic_bool node_busy[GR_NODES_MAX];
    pthread_mutex_t park_lock; /* guards parked */
    gr_parked *parked;         /* under park_lock: suspended processes */
    size_t nparked, capparked; /* under park_lock */
    /* Busy local processes (gr_rt_proc_busy; ports above their high-water
     * mark): pid ids, written under park_lock, read without it (a reader may
     * miss a change in progress: parking re-checks under the lock). */
    _Atomic uint64_t busy_ids[GR_RT_BUSY_PIDS_MAX];
    atomic_uint nbusy_ids;             /* entries used in busy_ids */
    gr_rbusy rbusy[GR_RT_RBUSY_MAX];   /* under park_lock: remote busy processes */
    atomic_uint nrbusy;                /* entries used (written under park_lock) */
    gr_rtold *rtold;                   /* under park_lock: remote senders told busy */
    size_t nrtold, caprtold;           /* under park_lock */
    atomic_uint_fast64_t suspends;     /* processes suspended on a busy link, ever */
    atomic_uint_fast64_t suspended_us; /* total time they spent suspended */
    pthread_mutex_t stop_lock;         /* guards stop_cond waits */
    pthread_cond_t stop_cond;          /* a scheduler emptied itself during shutdown */
    /* Common reasons, allocated once (shared, refcounted). */
    girder_msg *r_normal, *r_kill, *r_killed, *r_noproc, *r_shutdown, *r_noconnection;
};

/* The next scheduler of round-robin cursor c (rt->spread or rt->ext_spread).
 * Any thread. */
static inline gr_sched *gr_rt_next_sched(girder_rt *rt, atomic_uint *c)
{
    return &rt->scheds[atomic_fetch_add_explicit(c, 1, memory_order_relaxed) % rt->nsched];
}

/* ---- cross-file internal functions ------------------------------------------------ */

/* msg.c */
girder_msg *gr_msg_alloc(size_t len); /* uninitialised data; refcount 1 */

/* Encode helper: a growable buffer a msgpack_packer writes into, then turned into
 * a girder_msg without another copy when possible. */
typedef struct gr_pack {
    msgpack_sbuffer sb; /* underlying buffer */
    msgpack_packer pk;  /* packer writing to sb */
} gr_pack;
void gr_pack_init(gr_pack *p);
/* Append raw, already-encoded term bytes (e.g. a reason) */
int gr_pack_raw(gr_pack *p, const girder_msg *m);
/* Finish: returns a new message (NULL on ENOMEM) and frees the buffer. */
girder_msg *gr_pack_finish(gr_pack *p);
/* Pack a pid / ref as its ext term (node index -> node name of rt). 0, or
 * -EINVAL for a node index rt does not know, or the packer's error. Any thread.
 * girder_pack_pid / girder_pack_ref are these for a process. */
int gr_pack_pid(girder_rt *rt, msgpack_packer *pk, girder_pid pid);
int gr_pack_ref(girder_rt *rt, msgpack_packer *pk, girder_ref ref);

/* sig: allocate / free. A signal with inmsg set is not freed: its storage
 * goes with its message's last reference (gr_sig_free drops the signal's). */
gr_sig *gr_sig_new(gr_sig_type type, girder_pid from, girder_pid to);
void gr_sig_free(gr_sig *s);
/* The signal storage inside m, a message from gr_rt_msg_alloc_once,
 * initialised as a GR_SIG_MSG from `from` to `to` holding m (the caller's
 * reference). Owner of m; once per message. */
gr_sig *gr_sig_in_msg(girder_msg *m, girder_pid from, girder_pid to);

/* rt.c */
/* Route a signal to its destination. `cur` is the calling scheduler (NULL for a
 * non-scheduler thread). Takes the signal in all cases (dead destinations get
 * the Erlang treatment: messages dropped, link/monitor answered noproc). */
void gr_route(girder_rt *rt, gr_sched *cur, gr_sig *s);
/* gr_route; a sleeping scheduler of this node that s is pushed to is noted
 * in *held instead of woken (NULL: woken now; gr_sched_push_held). The caller
 * must gr_rt_wakes_flush(rt, held) soon. */
void gr_route_held(girder_rt *rt, gr_sched *cur, gr_sig *s, gr_rt_wakes *held);
uint64_t gr_now_ms(void);
/* Called by a stopping scheduler whose last process just exited. */
void gr_rt_sched_emptied(girder_rt *rt);

/* sched.c */
/* Deliver a signal whose destination is on `s` (owner thread, between
 * process turns: a missing target may first make it deliver the inbox). */
void gr_sched_deliver(gr_sched *s, gr_sig *sig);
/* Append to the local queue (owner thread). */
void gr_sched_local(gr_sched *s, gr_sig *sig);
/* Push from any thread; wakes the scheduler if it may sleep. */
void gr_sched_push(gr_sched *s, gr_sig *sig);
/* gr_sched_push; a wake-up it owes is noted in *held instead (NULL: now). */
void gr_sched_push_held(gr_sched *s, gr_sig *sig, gr_rt_wakes *held);
/* Write s's wake-up eventfd (the caller won the exchange of s->sleeping). */
void gr_sched_wake(gr_sched *s);
/* Put p on the run queue if it is not there (owner thread). */
void gr_sched_ready(gr_sched *s, gr_proc *p);

/* Append a message signal to p's mailbox and make p runnable on s, p's
 * scheduler (owner thread). Takes sig. Inline: the delivery hot path. */
static inline void gr_proc_mbox_append(gr_sched *s, gr_proc *p, gr_sig *sig)
{
    sig->next = NULL;
    if (p->mbox_tail) {
        p->mbox_tail->next = sig;
    } else {
        p->mbox_head = sig;
    }
    p->mbox_tail = sig;
    p->mbox_len++;
    gr_sched_ready(s, p);
}
girder_ref gr_sched_make_ref(gr_sched *s);
uint64_t gr_sched_alloc_id(gr_sched *s); /* any thread */
int gr_sched_start(gr_sched *s);

/* proc.c */
/* Allocate a process (not yet inserted); takes a ref on arg. */
gr_proc *gr_proc_new(gr_sched *s, const girder_behaviour *b, const girder_msg *arg, uint64_t id);
/* Insert a new process into its scheduler and queue it for init (owner thread). */
void gr_proc_insert(gr_sched *s, gr_proc *p);
/* Run one turn of p (owner thread). */
void gr_proc_run(gr_proc *p);
/* Handle a non-message signal for live process p (owner thread); takes sig. */
void gr_proc_signal(gr_proc *p, gr_sig *sig);
/* Answer a signal addressed to a dead/unknown pid (any scheduler); takes sig.
 * The reason for link/monitor answers is "noconnection" for a pid of another
 * node, "noproc" otherwise. */
void gr_proc_dead_signal(girder_rt *rt, gr_sched *cur, gr_sig *sig);
/* Same with an explicit reason (borrowed). */
void gr_proc_dead_signal_why(girder_rt *rt, gr_sched *cur, gr_sig *sig, girder_msg *reason);
/* Kill p now with reason (borrowed) (owner thread, p not running). */
void gr_proc_exit(gr_proc *p, girder_msg *reason);
/* Free a dead process (owner thread). */
void gr_proc_free(gr_proc *p);
/* Memory in bytes accounted to p. */
size_t gr_proc_memory(const gr_proc *p);
/* Build the info map message of p (or nil for NULL). */
girder_msg *gr_proc_info_msg(girder_rt *rt, gr_proc *p, girder_ref ref);
/* The ext part of p, allocated on first use; NULL on ENOMEM (owner thread). */
gr_proc_ext *gr_proc_ext_get(gr_proc *p);

/* ---- trace.c ------------------------------------------------------------------ */

typedef enum gr_trace_kind { GR_TRACE_IN, GR_TRACE_OUT, GR_TRACE_CALL } gr_trace_kind;

/* GR_SIG_TRACE for live p: start, replace or stop its trace. Owner thread;
 * sig stays the caller's. */
void gr_trace_set(gr_proc *p, gr_sig *sig);

/* p (traced) received (GR_TRACE_IN, peer the sender) or sent (GR_TRACE_OUT,
 * peer the destination) m: an event for its tracer, within the trace's
 * limits. Owner thread; m borrowed. */
void gr_trace_event(gr_proc *p, gr_trace_kind kind, girder_pid peer, const girder_msg *m);

/* Free the trace of ext x (the process is gone). Owner thread. */
void gr_trace_free(gr_proc_ext *x);

/* timer.c */
/* Cancel and free every pending timer of p, which is exiting (owner thread). */
void gr_timer_free_all(gr_proc *p);

/* remote.c */
/* Route a signal whose destination is on another node (to.node != 0) through
 * the remote hook, or answer it as Erlang does for an unconnected node. Takes
 * sig. Any thread (the thread that emits the signal). */
void gr_remote_out(girder_rt *rt, gr_sched *cur, gr_sig *sig);
/* Send msg to name registered on node index `node` (!= 0) from `from`. Takes
 * msg in all cases (an unconnected node drops it). true if the node's link is
 * busy (the caller, a process, should be parked after its turn). Any thread. */
bool gr_remote_send_name(girder_rt *rt, girder_pid from, uint32_t node, const char *name,
                         girder_msg *msg);
/* GR_SIG_NODEDOWN on scheduler s: fire links and monitors on pids of `node`,
 * forget monitors held by them (owner thread). */
void gr_remote_node_down_local(gr_sched *s, uint32_t node);
/* End of p's turn, in which it sent to the busy link of node p->busy_node or
 * to the busy local process p->busy_pid: park it (p->suspended, not scheduled
 * until GR_SIG_RESUME) if that link or process is still busy; clears both.
 * true if parked (owner thread). */
bool gr_remote_park(gr_proc *p);
/* Is `to` (node != 0) a process of another node that said it is busy? Cheap
 * while none did. Any thread. */
bool gr_remote_is_busy(girder_rt *rt, girder_pid to);
/* A message from `sender` (another node's process) was delivered to local
 * process pid, which is busy: tell sender's node (GR_RT_BUSY_NOTICE), once
 * per GR_RT_RBUSY_TIMEOUT_MS / 2 per sender. Scheduler thread. */
void gr_remote_tell_busy(girder_rt *rt, girder_pid pid, girder_pid sender);
/* GR_SIG_RPARK for live p: park it on the remote busy process sig->from now
 * if it is between turns, else after its turn (owner thread). */
void gr_remote_rpark(gr_proc *p, const gr_sig *sig);
/* The rbusy_ev timer of scheduler s (owner thread). */
void gr_remote_rbusy_sweep(evutil_socket_t fd, short what, void *arg);

/* proc.c, for spawn.c */
/* Route a new signal of `type` carrying a new reference to msg (may be NULL). */
void gr_proc_send_sig(girder_rt *rt, gr_sched *cur, gr_sig_type type, girder_pid from,
                      girder_pid to, girder_ref ref, girder_msg *msg);
/* Append a message (taken; NULL = lost to ENOMEM, logged) to p's mailbox. */
void gr_proc_post(gr_proc *p, girder_pid from, girder_msg *msg);

/* spawn.c */
/* GR_SIG_SPAWNREQ on scheduler s: create the child here with its side of the
 * link/monitor, answer the parent from the child's pid before the child can
 * run (owner thread). Takes sig. */
void gr_spawn_serve(gr_sched *s, gr_sig *sig);
/* GR_SIG_SPAWNREPLY for live parent p (owner thread). Takes sig. */
void gr_spawn_reply(gr_proc *p, gr_sig *sig);
/* girder_demonitor of a ref that is a pending spawn request of p with a
 * monitor: drop the monitor from the request. true if it was one (owner
 * thread). */
bool gr_spawn_demonitor(gr_proc *p, girder_ref ref);
/* A spawn request or reply that cannot reach its destination (node not
 * connected, parent dead): answer the parent with an error reason, or undo
 * the child's side of the link/monitor with reason. Takes sig. Any scheduler. */
void gr_spawn_dead(girder_rt *rt, gr_sched *cur, gr_sig *sig, girder_msg *reason);
/* A SPAWN_REQUEST from another node (validated): queue it on a scheduler. 0 or
 * -ENOMEM (msg stays with rs). Any thread. */
int gr_spawn_remote_in(girder_rt *rt, gr_rt_remote_sig *rs);
/* plist.c */
/* GR_SIG_PLIST on scheduler s: answer with a snapshot of its processes (owner
 * thread). Takes sig. */
void gr_plist_answer(gr_sched *s, gr_sig *sig);

/* registry.c */
int gr_registry_new(gr_registry **ret);
gr_registry *gr_registry_free(gr_registry *r);
int gr_registry_add(gr_registry *r, const char *name, girder_pid pid);
/* Remove name only if it maps to pid. */
bool gr_registry_del_if(gr_registry *r, const char *name, girder_pid pid);
int gr_registry_del(gr_registry *r, const char *name, girder_pid *ret_pid);
int gr_registry_get(gr_registry *r, const char *name, girder_pid *ret_pid);
/* Number of names. */
size_t gr_registry_count(gr_registry *r);

#endif
