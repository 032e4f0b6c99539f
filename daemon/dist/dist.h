/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist.h - distribution: this node's links to the other nodes of the cluster and
 * to hidden clients (the girder CLI).
 *
 * The dist layer owns one thread with its own libevent base. On it live the
 * listening socket, every connection (handshake, encrypted records, batching,
 * heartbeats), the member list and its gossip, the failure detector, reconnection
 * with backoff, and the outgoing rpc calls with their deadlines. Nothing else
 * touches a socket or the member list; other threads talk to it through the
 * functions below marked "any thread", which queue a command to the dist thread
 * and return at once (results come back as messages to a pid).
 *
 * Membership in one paragraph (docs/cluster.md has the rest): a node dials its
 * seeds at start; on every new member link both sides send their full member
 * list, later only changes; every member learnt is dialled (a full mesh). When
 * both ends dial at once, the connection dialled by the lexically smaller node
 * name survives. A link that carries no inbound bytes for detection_ms is
 * declared down (heartbeats every detection_ms / 6 keep idle links alive); a
 * down member is redialled with exponential backoff (100 ms .. 5 s, +-20%
 * jitter) until it comes back or leaves. A graceful leave (Leave frame) makes
 * peers drop the member without suspecting it. A member restarted with a new
 * creation replaces the old one: pids of the old creation are dead.
 *
 * RPC: an RpcRequest arriving from a member or a hidden client is handed to the
 * configured handler on the dist thread (gr_dist_rpc_fn); whoever handles it
 * answers later, from any thread, with gr_dist_reply. Outgoing calls
 * (gr_dist_call) carry a deadline that the dist thread enforces: the caller gets
 * exactly one answer - the reply, GR_ETIMEOUT, or GR_ENOCONN when the node is
 * not connected or goes down before answering.
 *
 * Messages this layer sends to pids (msgpack arrays, first element a string):
 *   ["$rpc", Tag, Status, Result]   answer to gr_dist_call: Status 0 and Result the
 *                                   reply term, or Status < 0 (proto/err.h) and
 *                                   Result the reason id string ("timeout", ...)
 *   ["$join", Tag, Status]          answer to gr_dist_join: 0 once the node is an
 *                                   authenticated member, else an error code
 *   ["nodeup", Node]                to pids given to gr_dist_monitor_nodes
 *   ["nodedown", Node, Reason]      Reason: "noconnection" (link lost or silent),
 *                                   "left" (graceful leave), "restarted" (new creation)
 */
#ifndef GR_DIST_H
#define GR_DIST_H

#include "girder/girder.h"
#include "proto/cookie.h"
#include "proto/nodename.h"
#include "runtime/rt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GR_DIST_DETECTION_DEFAULT_MS 3000 /* silent link -> node down */
#define GR_DIST_DETECTION_MIN_MS 300
#define GR_DIST_HANDSHAKE_TIMEOUT_MS 5000 /* unauthenticated peers get this long */
#define GR_DIST_HELLO_TIMEOUT_MS 1000     /* ... and this long for their first message */
#define GR_DIST_HOST_MAX 255
#define GR_DIST_DISCOVER_DEFAULT_MS 5000 /* DNS discovery: a lookup per name this often */
#define GR_DIST_DISC_NAMES_MAX 16        /* names looked up */
#define GR_DIST_DISC_CANDS_MAX 256       /* addresses kept per name (more: ignored) */

typedef struct gr_dist gr_dist;

/* An address to dial for a node. */
typedef struct gr_dist_seed {
    const char *node; /* "name@host" it must answer to */
    const char *host; /* host or IPv4/IPv6 address to dial */
    uint16_t port;
} gr_dist_seed;

/* A DNS name whose addresses are candidate members (DNS discovery,
 * docs/operations.md "Discovery"): looked up every discover_interval_ms, and
 * every address in the answer is dialled at port without knowing which node
 * answers there (the handshake says). */
typedef struct gr_dist_dns {
    const char *name; /* DNS name (A and AAAA records; the hosts file first) */
    uint16_t port;    /* port to dial at each address; 0: our own listening port */
} gr_dist_dns;

/* One incoming rpc request, borrowed for the duration of the gr_dist_rpc_fn call
 * (copy what you keep). `conn` and `ref` identify it for gr_dist_reply. */
typedef struct gr_dist_request {
    uint64_t conn;        /* connection id, never reused within a gr_dist */
    uint64_t ref;         /* RpcRequest.ref */
    const char *peer;     /* peer node name (a client's name for hidden peers) */
    bool hidden;          /* peer is a hidden client (the CLI), not a member */
    int role;             /* what the peer proved, GR_ROLE_x (proto/handshake.h):
                           * an observer may only read (rpc/policy.c) */
    const char *module;   /* NUL-terminated */
    const char *function; /* NUL-terminated */
    const uint8_t *args;  /* one msgpack term (checked: an array), args_len bytes */
    size_t args_len;
    uint32_t deadline_ms; /* caller gives up this long after sending; 0: none */
} gr_dist_request;

/* Called on the dist thread for every RpcRequest. Must not block: hand the work
 * to a process and return. Every request must be answered exactly once with
 * gr_dist_reply (an answer after the connection closed is dropped). */
typedef void (*gr_dist_rpc_fn)(void *ud, const gr_dist_request *req);

typedef struct gr_dist_config {
    girder_rt *rt;                 /* the node's runtime (started before gr_dist_start) */
    const char *name;              /* our node name, "name@host" */
    uint32_t creation;             /* our incarnation (gr_rt_creation) */
    const gr_cookie *cookie;       /* copied */
    const gr_cookie *accept;       /* n_accept further cookies a peer may prove
                                    * (cookie rotation); copied */
    size_t n_accept;               /* 0..GR_HANDSHAKE_ACCEPT_MAX */
    const gr_cookie *observer_key; /* copied; NULL or empty: observer CLIs refused
                                    * (docs/protocol.md, "Roles") */
    const char *listen_host;       /* address to bind, e.g. "127.0.0.1" */
    uint16_t listen_port;          /* 0: any free port (see gr_dist_port) */
    const gr_dist_seed *seeds;
    size_t nseeds;
    /* DNS discovery (discover.c); ndiscover 0: none */
    const gr_dist_dns *discover; /* names (copied) */
    size_t ndiscover;            /* 0..GR_DIST_DISC_NAMES_MAX */
    unsigned discover_ms;        /* lookup period; 0: GR_DIST_DISCOVER_DEFAULT_MS */

    unsigned detection_ms; /* 0: GR_DIST_DETECTION_DEFAULT_MS */
    size_t out_high_bytes; /* 0: GR_DIST_OUT_HIGH_DEFAULT (conn.c, "Overload") */
    bool chacha_only;      /* links use ChaCha20-Poly1305 only; false: AES-128-OCB
                            * where both ends have AES instructions (proto/record.h) */
    /* Admission of unauthenticated peers (docs/cluster.md, "Admission"); 0:
     * the default. */
    unsigned hello_timeout_ms;  /* first handshake message due; GR_DIST_HELLO_TIMEOUT_MS */
    unsigned unauth_max;        /* accepted connections in handshake, at most 256 (default) */
    unsigned unauth_per_source; /* of which one untrusted address may hold (16) */
    gr_dist_rpc_fn rpc_fn;      /* NULL: every request answered GR_EBADMODULE */
    void *rpc_ud;
} gr_dist_config;

/* Output queued on one link above which it is reported overloaded; 8 times it
 * closes the link (docs/cluster.md, "Backpressure"). */
#define GR_DIST_OUT_HIGH_DEFAULT ((size_t)64 << 20)
/* glibc M_TRIM_THRESHOLD / M_TOP_PAD for a loaded node: girderd sets them at
 * start, a busy link sets them again, and a drained one lowers them to give
 * memory back (conn.c, malloc_mode). */
#define GR_DIST_MALLOC_TRIM_ROOMY (256 << 20)
#define GR_DIST_MALLOC_PAD_ROOMY (64 << 20)

/* A member as seen from this node (a snapshot). */
typedef struct gr_dist_member {
    char name[GR_NODENAME_MAX + 1];
    char host[GR_DIST_HOST_MAX + 1];
    uint16_t port;
    uint32_t creation; /* 0 while never connected */
    enum {
        GR_DIST_SELF, /* this node */
        GR_DIST_UP,   /* authenticated link, alive */
        GR_DIST_DOWN, /* known, not connected (being redialled) */
        GR_DIST_LEFT, /* left gracefully; kept for a while for `girder nodes` */
    } state;
    uint64_t since_ms;      /* CLOCK_MONOTONIC ms of the last state change */
    uint64_t queued_bytes;  /* UP: output queued on the link, not yet taken by the socket */
    bool busy;              /* UP: the link is overloaded (queued above the high water mark) */
    int cipher;             /* UP: the link's record cipher (GR_CIPHER_x), else -1 */
    uint64_t max_rx_gap_ms; /* UP: longest time between two reads on the link since it came up */
    uint64_t bytes_in, bytes_out;   /* UP: socket bytes on the link since it came up */
    uint64_t frames_in, frames_out; /* UP: frames (messages) on the link since then */
    uint64_t rtt_us;                /* UP: last heartbeat round trip, us (0: not measured yet) */
    uint64_t srtt_us;      /* UP: smoothed heartbeat round trip, us (0: not measured yet) */
    uint64_t heard_ms_ago; /* UP: ms since the last bytes arrived on the link */
} gr_dist_member;

/* Figures with a limit, for `girder stats` (used/limit). */
typedef struct gr_dist_limits {
    uint64_t members, members_max;       /* member table (self included) */
    uint64_t link_queued_max, link_high; /* most output queued on one link / overload mark */
} gr_dist_limits;

/* Counters for sys.counters (monotonic since start unless noted). */
typedef struct gr_dist_counters {
    uint64_t conns_accepted, conns_dialled;
    uint64_t handshakes_ok, handshakes_failed; /* failed: any reason, timeouts included */
    uint64_t frames_in, frames_out, records_in, records_out, bytes_in, bytes_out;
    uint64_t rpc_in, rpc_out, rpc_timeouts;
    uint64_t nodedowns;
    uint64_t members_up;              /* current */
    uint64_t signals_in, signals_out; /* process signals received / queued to a link */
    uint64_t signals_lost;            /* taken for a node whose link then went down */
    uint64_t large_queued_bytes;      /* current: big signals waiting on large lanes */
    uint64_t sigq_bytes;              /* current: signal bytes queued for the dist thread */
    uint64_t out_queued_bytes;        /* current: output queued on all links */
    uint64_t links_busy;              /* current: links above their high water mark */
    uint64_t overloads;               /* times a link went above it */
    uint64_t overload_closes;         /* links closed at the hard limit (8x high) */
    uint64_t sigq_peak;               /* most bytes the dist thread took in one go */
    uint64_t handshakes_refused;      /* accepted sockets refused for load (Reject busy) */
    uint64_t handshakes_evicted;      /* handshakes closed to give their slot to another */
    uint64_t spin_offs;               /* times the dist loop stopped spinning: preempted */
    uint64_t trims;                   /* memory given back after a busy link drained */
    uint64_t repl_skipped_busy;       /* replication frames not queued to a busy link */
    uint64_t suspects;                /* member links silent past D/2: probed (detect.c) */
    uint64_t suspects_cleared;        /* of which heard again without a down */
    uint64_t probe_reqs;              /* indirect probes asked of other members */
    uint64_t vouches;                 /* probes answered for our silent members */
    uint64_t dials_paced;             /* dials put off by the dial pacing */
    uint64_t links_retired;           /* duplicate links (tie-break losers) closed */
} gr_dist_counters;

/* Check the config and create (no thread, no socket yet). 0, -EINVAL, GR_EBADNODE,
 * -ENOMEM. */
int gr_dist_new(const gr_dist_config *cfg, gr_dist **ret_d);
/* Bind and listen (errors such as -EADDRINUSE are returned here, before any
 * thread starts), start the dist thread, dial the seeds. 0 or -errno. */
int gr_dist_start(gr_dist *d);
/* The port actually bound (useful with listen_port 0). */
uint16_t gr_dist_port(const gr_dist *d);
/* Graceful stop: close the listener, refuse new rpc, send Leave to every member,
 * flush with a deadline of `deadline_ms`, close everything, join the thread.
 * Outstanding outgoing calls are answered GR_ESTOPPED. A dead or hung peer never
 * makes this take longer than the deadline. Idempotent. Not from the dist thread. */
void gr_dist_stop(gr_dist *d, unsigned deadline_ms);
/* Free a stopped (or never started) dist. NULL-safe; returns NULL. */
gr_dist *gr_dist_free(gr_dist *d);

/* Answer request (conn, ref): status 0 with result[0..len) one msgpack term, or a
 * negative code (result ignored; the reason id is gr_errid(status)). Copies.
 * Any thread. 0, GR_ENOCONN (connection gone: dropped), -ENOMEM. */
int gr_dist_reply(gr_dist *d, uint64_t conn, uint64_t ref, int status, const void *result,
                  size_t len);

/* Call module:function(args) on member `node` (args: msgpack array, copied).
 * The answer arrives at reply_to as ["$rpc", tag, Status, Result] exactly once,
 * within timeout_ms (+ scheduling slack). Any thread. 0 (queued), GR_EBADNODE,
 * -ENOMEM, GR_ESTOPPED. */
int gr_dist_call(gr_dist *d, const char *node, const char *module, const char *function,
                 const void *args, size_t len, unsigned timeout_ms, girder_pid reply_to,
                 uint64_t tag);

/* Dial node@host:port and make it a member (the mesh then spreads by gossip).
 * Answer ["$join", tag, Status] to reply_to once it is up or has failed (bad
 * cookie, unreachable, timeout). Any thread. */
int gr_dist_join(gr_dist *d, const char *node, const char *host, uint16_t port, unsigned timeout_ms,
                 girder_pid reply_to, uint64_t tag);

/* Forget member `node`, gone for good: it is removed from the member table
 * and no longer dialled, and every member up is told to do the same (a DEAD
 * gossip entry). Refused while its link is up. Answers ["$forget", tag,
 * Status] to reply_to: 0, GR_EMEMBERUP, GR_ENOMEMBER, GR_EFORGETSELF. Any
 * thread. 0 (queued), GR_EBADNODE, -ENOMEM, GR_ESTOPPED. */
int gr_dist_forget(gr_dist *d, const char *node, girder_pid reply_to, uint64_t tag);

/* Replace the cookie this node proves and the further cookies it accepts
 * (cookie rotation, docs/operations.md "Cookie rotation"): every handshake
 * started from now on uses them; links and handshakes under way are left
 * alone. Copies. Any thread. 0, or -EINVAL (an empty or over-long cookie,
 * n_accept > GR_HANDSHAKE_ACCEPT_MAX) with nothing changed. */
int gr_dist_set_cookies(gr_dist *d, const gr_cookie *cookie, const gr_cookie *accept,
                        size_t n_accept);

/* The figures of gr_dist_limits. Any thread. */
void gr_dist_limits_get(gr_dist *d, gr_dist_limits *ret);

/* Snapshot of every member, self first. *ret_members is malloc'd (free()).
 * Any thread. 0 or -ENOMEM. */
int gr_dist_members(gr_dist *d, gr_dist_member **ret_members, size_t *ret_n);

/* A member state's name: "self", "up", "down" or "left" (node.list, /metrics). */
const char *gr_dist_state_name(int state);

/* Subscribe (on=true) or unsubscribe pid to nodeup/nodedown messages. A
 * subscriber that exits is unsubscribed by the runtime (girder_monitor_nodes
 * marks the process; its exit calls the hook with on=false); one whose send
 * fails is dropped here too. Any thread. */
int gr_dist_monitor_nodes(gr_dist *d, girder_pid pid, bool on);

/* The runtime's outgoing hook for signals to other nodes (runtime/rt.h,
 * gr_rt_remote_fn); ud is the gr_dist. Install it with gr_rt_set_remote before
 * gr_rt_start. Scheduler threads. */
int gr_dist_remote_hook(void *ud, gr_rt_remote_sig *sig);

/* Counter snapshot. Any thread. */
void gr_dist_counters_get(gr_dist *d, gr_dist_counters *ret);

/* Test hook: on=true makes the dist thread block (a hung node: no reads, no
 * heartbeats, no timers) until called again with on=false; with on=true it
 * returns once the thread is held. gr_dist_stop resumes it. Any thread but the
 * dist thread. */
void gr_dist_test_pause(gr_dist *d, bool on);

/* Test hook: the link to member `node` no longer counts what it reads as a
 * sign of life (its frames are still handled): as if that link alone had gone
 * silent while the member is alive (detect.c, indirect probes). NULL: back to
 * normal. Any thread but the dist thread. */
void gr_dist_test_deaf(gr_dist *d, const char *node);

/* Replicated tables (daemon/dist/repl.c; docs/tables.md "Replication"): the
 * owner of the replicated state (daemon/tables/repl.h) plugs in here; dist
 * moves its frames (kinds ReplWrites, ReplDigest, ReplKeys) and knows nothing
 * else of them. Every call runs on the dist thread. An emit sends one packed
 * Girder.Frame: 0 or an error (the frame is dropped; anti-entropy repairs). */
typedef int (*gr_dist_repl_emit)(void *ctx, const uint8_t *frame, size_t len);
typedef struct gr_dist_repl_ops {
    int (*wake_fd)(void *ud); /* readable: call drain */
    void (*peer_up)(void *ud, const char *node);
    void (*peer_down)(void *ud, const char *node);
    /* queued writes (and create/drop digests), sent to every member up */
    void (*drain)(void *ud, gr_dist_repl_emit emit, void *ctx);
    /* an anti-entropy round with node: hello on member up, then every period_ms */
    void (*sync)(void *ud, const char *node, bool hello, gr_dist_repl_emit emit, void *ctx);
    /* a frame (const Girder__Frame *) from node; answers go to emit */
    int (*recv)(void *ud, const char *node, const void *frame, gr_dist_repl_emit emit, void *ctx);
    unsigned period_ms; /* 0: 2000 */
} gr_dist_repl_ops;
/* Plug the replication owner in (before gr_dist_start; ops and ud stay valid
 * until the dist thread has stopped). 0, -ENOMEM or -errno. */
int gr_dist_set_repl(gr_dist *d, const gr_dist_repl_ops *ops, void *ud);

#endif
