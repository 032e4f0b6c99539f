/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_int.h - what the files of daemon/dist/ share: the gr_dist struct, the
 * connection, member, call and join records, and the functions one file offers
 * the others (prefix gr_dist_ with a file tag: conn_, mem_, rpc_, ...).
 *
 * Files, in layers (docs/cluster.md, "Layers"):
 *   dist.c      public API, the dist thread, the command queue, notifications,
 *               counters, start and graceful stop
 *   listener.c  the listening socket (evconnlistener)
 *   conn.c      the LINK: dial, accept, handshake, records, the lanes and the
 *               one send call (gr_dist_conn_send), flush, the per-link timer
 *               (handshake timeout, heartbeats, detector), close. It names no
 *               rpc, member or signal code: frames in go to kinds.c, link up
 *               and close are told to the protocols through their table.
 *   kinds.c     the table of protocols and frame kinds, and the dispatch of
 *               every frame received (by kind) to the protocol that owns it
 *   members.c   protocol: member table, gossip, dialling with backoff,
 *               tie-break, join (kinds Members, Join, Leave)
 *   rpc.c       protocol: incoming requests, replies, outgoing calls (kinds
 *               RpcRequest, RpcReply)
 *   signal.c    protocol: process signals (kind Signal); sigq.c feeds it
 *   large.c     protocol: the large lane, big signals as fragments (kinds
 *               Fragment, FragmentAck)
 *   repl.c      protocol: replicated tables' frames (kinds ReplWrites,
 *               ReplDigest, ReplKeys) for the owner plugged in with
 *               gr_dist_set_repl
 *   admit.c     who gets a handshake slot: per-source shares, eviction,
 *               precedence for known addresses, refusals, their logging
 *
 * Threading: everything declared here belongs to the dist thread (d->base runs
 * there) except the fields of gr_dist marked otherwise: the command queue
 * (cmd_lock), the published member snapshot and monitor list (pub_lock) and the
 * counters (atomics).
 */
#ifndef GR_DIST_INT_H
#define GR_DIST_INT_H

#include "dist/dist.h"

#include "proto/frame.h"
#include "proto/handshake.h"
#include "proto/record.h"
#include "proto/sigframe.h"
#include "util/ratelim.h"

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

/* How long the loop keeps polling after its last work before it blocks. */
#ifndef DIST_SPIN_US
#define DIST_SPIN_US 100
#endif
#ifndef DIST_SPIN_OFF_US
#define DIST_SPIN_OFF_US 50000 /* preempted: the loop blocks without spinning this long */
#endif
/* Runnable threads beyond the CPUs that are still a round trip's own
 * (gr_dist_spin_allowed): at its busiest moment a remote round trip between
 * two nodes on one host has three or four (the two dist threads spinning,
 * the scheduler one of them woke, the reader of /proc/loadavg counting
 * itself), a stream four or five (sender, both dist threads, sink). With 1
 * (the first version) the spin was off at every preemption of a benchmark
 * on an idle 2-CPU machine: remote ping-pong 125-141 us median, p99 404-412,
 * against 44-46 and 146-328 with 4 in the same runs (Erlang 145-152, p99
 * 231-252; docs/benchmarks.md, "Latency tails"). A parallel build or any
 * real overload has more (load 10-60 on this machine), and the spin is off
 * there as before. */
#ifndef DIST_SPIN_OWN
#define DIST_SPIN_OWN 4u
#endif
#define DIST_SIGQ_INLINE 4096u      /* signal frames up to this are copied into the queue */
#define DIST_SIGQ_SLICE (1u << 20)  /* signal bytes handed to links per loop pass (sigq.c) */
#define DIST_TRIM_BELOW (64u << 10) /* a drained busy link gives memory back below (conn.c) */
#define DIST_MALLOC_TRIM_LEAN (128u << 10) /* glibc's M_TRIM_THRESHOLD default (conn.c) */
#define DIST_MALLOC_PAD_LEAN (128u << 10)  /* glibc's M_TOP_PAD default (conn.c) */
#define DIST_MALLOC_POKE (96u << 10)       /* a block from the arena top, to trim it (conn.c) */
#define DIST_TAIL_REF 4096u            /* payloads this big are sealed from the message (conn.c) */
#define DIST_RECORD_SOFT (256u << 10)  /* a lane this full is sealed at once (conn.c) */
#define DIST_READ_CHUNK (256u << 10)   /* one recv on an UP link reads at most this */
#define DIST_READ_BUDGET (4u << 20)    /* bytes one link reads per wakeup, at most */
#define DIST_LARGE_MIN (1u << 20)      /* signals this big take the large lane */
#define DIST_LARGE_CHUNK (256u << 10)  /* fragment size: at most this per flush */
#define DIST_LARGE_OUT_HIGH (1u << 20) /* no next chunk while this much is unsent */
#define DIST_LARGE_INFLIGHT (512u << 10) /* no next chunk while this much is unacknowledged */
#define DIST_LARGE_MAX (1024u << 20)     /* largest reassembled frame (1 GiB) */
#define GR_DIST_NODES_MAX 4096           /* = the runtime's node table (GR_NODES_MAX) */
#define DIST_LOG "dist"
#define DIST_BACKOFF_MIN_MS 100u
#define DIST_BACKOFF_MAX_MS 5000u
#define DIST_QUEUED_BUSY (1ull << 63) /* link_queued[]: the busy flag */
#define DIST_OUT_HARD_FACTOR 8        /* queued above high * this: the link is closed */
#define DIST_HS_READ_MAX (4u << 10)   /* input buffered for an unauthenticated peer */
#define DIST_SMALL_REPLY (16u << 10)  /* larger rpc replies go on the bulk lane */
#define DIST_MEMBERS_MAX 4096u        /* members a node keeps (gossip cannot grow it more) */
#define DIST_UNAUTH_MAX 256u          /* accepted connections still in handshake */
#define DIST_UNAUTH_PER_SRC 16u       /* of which one source address may hold (admit.c) */
#define DIST_HELLO_MS 1000u           /* an accepted peer's first message must arrive by then */
#define DIST_LISTEN_BACKLOG 1024      /* accept queue (the kernel caps it at somaxconn) */
#define DIST_ACCEPT_BURST 64u         /* accepts in a row before the loop serves the rest */
#define DIST_ACCEPT_PAUSE_MS 100u     /* no accepts for this long after one failed (EMFILE) */
#define DIST_KNOWN_SRC 64u            /* addresses remembered as having authenticated */
#define DIST_HS_DIAL_GRACE_MS 2500u   /* a dialler waits the handshake timeout + this (conn.c) */
#define DIST_RETIRE_MS 2000u          /* a tie-break loser stays open this long */
#define DIST_WHY_RETIRED "retired"    /* the close reason of a tie-break loser */
#define DIST_FD_K 3u                  /* members asked to probe a silent one (detect.c) */
#define DIST_FD_VOUCH_MAX_X 10u       /* vouches hold a silent link this many detection times */
#define DIST_DIAL_RATE 25u            /* dials a second, sustained (detect.c, pacing) */
#define DIST_DIAL_BURST 8u            /* dials at once after a quiet spell */
#define DIST_DIAL_INFLIGHT 8u         /* our dials in connect or handshake, at most */
#define DIST_DIAL_DEFER_MS 1000u      /* a gossiped member with a smaller name dials us first */
#define DIST_ADDR_MAX (GR_DIST_HOST_MAX + 16) /* "host:port" or "[v6]:port" for logs */

/* Event priorities: 0 commands, 1 I/O and timers (default), 2 flush and reap, so
 * that every frame queued during one loop iteration goes out in one record. */
#define DIST_PRIO_CMD 0
#define DIST_PRIO_IO 1
#define DIST_PRIO_FLUSH 2
#define DIST_NPRIO 3
/* After this many I/O callbacks, or this long in them, the loop looks for due
 * timers and higher priorities again (gr_dist_base_new): the detector's tick
 * is not held back by a pass of 99 handshakes. */
#define DIST_DISPATCH_MAX_CB 16
#define DIST_DISPATCH_MAX_US 4000

typedef struct dist_conn dist_conn;
typedef struct dist_member dist_member;
typedef struct dist_call dist_call;
typedef struct dist_join dist_join;
typedef struct dist_cmd dist_cmd;
typedef struct dist_large dist_large;
typedef struct dist_kind dist_kind;
typedef struct dist_proto dist_proto;
typedef struct dist_disc dist_disc;

#define DIST_KINDS_MAX 32 /* frame kinds are protobuf field numbers below this */
#define DIST_PROTOS_MAX 16

/* ---- what travels on a link: protocols and their frame kinds (kinds.c) ------------- */

/* One frame kind: how a received frame of that kind is handled. The kind is
 * the Frame's oneof field number (= its msg_case), which the dispatcher reads
 * from the frame's first key before anything is decoded. Handlers run on the
 * dist thread; each returns 0 or an error that closes the link (c may be
 * closed already, by the handler itself). Constant once registered. */
struct dist_kind {
    int kind;          /* Girder__Frame msg_case, 1 .. DIST_KINDS_MAX - 1 */
    bool members_only; /* from a hidden client: GR_EBADFRAME (link closed) */
    bool quiet;        /* liveness or background (heartbeats, probes, the
                        * periodic replication digest): not work after which
                        * the loop spins (dist_main) */
    /* Optional fast path: the packed frame in place, before any decoding. 1:
     * handled; 0: declined (the frame is then decoded: on_frame); < 0: error. */
    int (*on_packed)(dist_conn *c, const uint8_t *frame, size_t len);
    /* The frame decoded by gr_frame_unpack. NULL: accepted and ignored. */
    int (*on_frame)(dist_conn *c, const Girder__Frame *f);
    /* Optional, zero-copy receive of big payloads (the record sink,
     * record.h): does this frame end in a payload, starting where? Layout
     * only; the signature of gr_sigframe_head_len. */
    int (*payload_at)(const uint8_t *frame, size_t have, size_t total, size_t *ret_head);
    /* Such a frame: its bytes up to the payload, and the payload already in a
     * message, which the handler takes whatever happens. */
    int (*on_split)(dist_conn *c, const uint8_t *head, size_t head_len, girder_msg *payload);
};

/* One protocol on the links (the way nng's transports hand pipes to protocols
 * through an ops table): its frame kinds, and what it wants to hear about a
 * link's life. Constant. */
struct dist_proto {
    const char *name;       /* for logs */
    const dist_kind *kinds; /* frame kinds it owns */
    size_t nkinds;
    void (*member_up)(dist_conn *c);                        /* a member link is UP */
    void (*closed)(dist_conn *c, int err, const char *why); /* a link closed (see conn_close) */
    /* Optional, a paced sender (the large lane) that holds frames back and
     * adds them to the bulk lane a chunk at a time: */
    int (*flush)(dist_conn *c);         /* at c's flush, between ctrl and bulk: 0 or error */
    size_t (*held)(const dist_conn *c); /* bytes held back (> 0: flush c when its socket drains) */
    bool (*ready)(const dist_conn *c);  /* would flush send now (then c flushes next iteration) */
};

/* ---- the one send call (conn.c) ------------------------------------------------- */

/* Lanes of a link: ctrl is sealed and written before bulk at every flush. */
enum { DIST_LANE_CTRL, DIST_LANE_BULK };

/* A piece of one outgoing frame: a frame to pack (frame set; then the only
 * piece), or packed bytes. A frame is at most DIST_PIECES_MAX pieces: its head
 * and a tail. A tail of DIST_TAIL_REF bytes or more that lives in message msg
 * is sealed from there (a reference to msg is kept until the record is
 * written), anything else is copied into the lane. */
typedef struct dist_piece {
    const Girder__Frame *frame; /* to pack; or NULL: p[0..len) */
    const void *p;              /* packed bytes */
    size_t len;
    girder_msg *msg; /* p points into it (tail only); NULL: copy */
} dist_piece;

#define DIST_PIECES_MAX 2

/* A growable byte buffer of queued signals (sigq.c). */
typedef struct dist_sigbuf {
    uint8_t *p;
    size_t len, cap;
} dist_sigbuf;

/* A peer's address without the port (admit.c). */
typedef struct dist_src {
    uint8_t family;   /* AF_INET, AF_INET6; 0: unknown */
    uint8_t addr[16]; /* IPv4: the first 4 bytes; the rest 0 */
} dist_src;

/* An accepted connection's claim on a handshake slot (admit.c). */
typedef struct dist_slot {
    dist_src src;      /* where it comes from */
    bool trusted;      /* from a known member's or an authenticated peer's address */
    bool hello;        /* its first message is in: the full deadline applies */
    uint64_t since_ms; /* accepted at (monotonic ms) */
} dist_slot;

/* Admission state of a node (admit.c). Dist thread only. */
typedef struct dist_admit {
    unsigned max;      /* accepted connections in handshake, at most */
    unsigned per_src;  /* of which one untrusted source may hold */
    unsigned hello_ms; /* first-message deadline */
    struct {
        dist_src src; /* a source holding slots */
        unsigned n;   /* how many */
        unsigned nu;  /* how many of them untrusted (evictable for anyone) */
    } srcs[DIST_UNAUTH_MAX];
    unsigned nsrcs;                  /* entries in srcs */
    dist_src known[DIST_KNOWN_SRC];  /* sources that authenticated (a ring) */
    unsigned nknown, known_next;     /* entries, next to overwrite */
    dist_src mhost[DIST_UNAUTH_MAX]; /* members' host literals, a cached copy */
    unsigned nmhost;                 /* entries */
    uint64_t mhost_ms;               /* when it was filled (0: never) */
    gr_ratelim log;                  /* refused, evicted and failed handshakes */
    struct {
        const char *why; /* reason id (static storage) */
        uint64_t n;      /* lines held back for it in the current window */
    } held[8];
    unsigned nheld;       /* entries in held (the last one also takes the rest) */
    struct event *log_ev; /* reports what log held back */
    uint8_t reject[64];   /* the Reject "busy" record */
    size_t reject_len;    /* its length (0: none) */
} dist_admit;

/* The failure detector's state for one member link (detect.c): a link
 * silent past the suspicion threshold is probed through other members, and
 * is declared down only when neither it nor any vouch was heard for the
 * detection time (docs/cluster.md, "Failure detection"). Dist thread only,
 * or a test (the functions on it are pure). */
typedef struct gr_fd {
    bool suspect;        /* silent past suspect_ms: probing */
    uint64_t since_ms;   /* when this suspicion began */
    uint64_t seq;        /* the last probe round sent (rounds are never reused) */
    uint64_t seq_lo;     /* the first round of this suspicion: older vouches are stale */
    uint64_t sent_ms[4]; /* when rounds seq - 3 .. seq were sent, by seq % 4 */
    uint64_t alive_ms;   /* the latest round a vouch proved answered: sent at (0: none) */
    unsigned vouches;    /* vouches counted in this suspicion */
    bool late_skipped;   /* the last check was late (own stall) and held back a down */
} gr_fd;

/* The detector's parameters, derived from detection_ms (gr_fd_params_init). */
typedef struct gr_fd_params {
    unsigned detection_ms; /* D: silence, with no vouch, that is a down (within D) */
    unsigned tick_ms;      /* the check period: D / 12 */
    unsigned hb_ms;        /* an idle link's heartbeat period: D / 4 */
    unsigned suspect_ms;   /* silence that starts probing: D / 2 */
    unsigned probe_ms;     /* between two probe rounds: D / 6 */
    unsigned vouch_max_ms; /* direct silence after which vouches no longer hold the link */
} gr_fd_params;

/* What one check decides. */
enum {
    GR_FD_OK,      /* nothing to do */
    GR_FD_PROBE,   /* send probe round s->seq through DIST_FD_K members */
    GR_FD_DOWN,    /* declare the link dead */
    GR_FD_CLEARED, /* a suspicion ended: the link was heard again */
};

/* Dial pacing state (detect.c). Dist thread only. */
typedef struct dist_pace {
    uint64_t at_ms;   /* when tokens was last refilled */
    unsigned tokens;  /* dials that may start now, at most DIST_DIAL_BURST */
    uint64_t delayed; /* dials put off (counter dials_paced) */
} dist_pace;

/* Connection states. */
enum {
    CONN_CONNECTING, /* outgoing: resolving or connecting */
    CONN_HANDSHAKE,  /* bytes flowing, gr_handshake running */
    CONN_UP,         /* authenticated: records and frames */
    CONN_DEAD,       /* closed, waiting on d->dead to be freed */
};

/* One TCP connection. Dist thread only. */
struct dist_conn {
    dist_conn *next, *prev;   /* d->conns (or d->dead once closed) */
    gr_dist *d;               /* owner */
    uint64_t id;              /* never reused within d */
    int state;                /* CONN_* */
    bool outgoing;            /* we dialled it */
    bool hidden;              /* peer is a hidden client */
    bool dirty;               /* frames waiting in ctrl/bulk */
    bool drained_close;       /* stop: half-close once the Leave is written */
    bool flushing;            /* in gr_dist_conn_flush_all: sends add to the record being sealed */
    struct bufferevent *bev;  /* socket; NULL once closed; reads until UP, writes */
    struct event *rd_ev;      /* UP: reads the socket (conn.c, "Reading") */
    struct event *timer;      /* handshake deadline, then heartbeat/detector tick */
    gr_handshake *hs;         /* while CONN_CONNECTING/HANDSHAKE */
    gr_record_tx *tx;         /* CONN_UP: our direction */
    gr_record_rx *rx;         /* CONN_UP: peer's direction */
    gr_batch *ctrl, *bulk;    /* CONN_UP: the two lanes, ctrl sealed first */
    gr_handshake_peer peer;   /* CONN_UP: who the peer proved to be */
    dist_member *member;      /* outgoing: the dial target; UP: the member (NULL: hidden) */
    char addr[DIST_ADDR_MAX]; /* peer address for logs */
    uint64_t last_in_ms;      /* monotonic ms of the last inbound byte */
    uint64_t last_out_ms;     /* monotonic ms of the last frame queued */
    uint64_t hb_seq;          /* heartbeats sent */
    uint64_t hb_sent_us;      /* gr_dist_now_us() when heartbeat hb_seq went out */
    uint64_t hb_acked;        /* last of our heartbeats the peer acknowledged (one sample each) */
    unsigned inflight;        /* incoming rpc requests not yet answered */
    dist_call *calls;         /* outgoing rpc calls waiting on this link */
    int fail;                 /* why the dial or handshake failed (for join answers) */
    bool peer_left;           /* the peer sent Leave: its close is "left" */
    bool retired;             /* lost a tie-break: still served, closed soon */
    bool unauth;              /* counted in d->n_unauth (accepted, not yet UP) */
    dist_slot slot;           /* admit.c: while unauth, the handshake slot it holds */
    bool busy;                /* overloaded: queued output above d->out_high */
    uint64_t busy_since_ms;   /* when it became busy */
    bool trim_due;            /* was busy: give memory back once it has drained (conn.c) */
    size_t queued;            /* output queued at the last accounting */
    /* large lane (large.c) */
    dist_large *lg_head, *lg_tail; /* queued big signals, and what must follow them */
    size_t lg_bytes;               /* bytes not yet handed to the batch */
    size_t lg_inflight;            /* fragment bytes sent, not yet acknowledged */
    uint64_t lg_next_id;           /* Fragment ids, this direction */
    uint64_t rx_id;                /* Fragment id being reassembled (0: none) */
    size_t rx_total, rx_have;      /* its size, bytes received */
    uint8_t *rx_buf;               /* reassembly buffer (rx_msg NULL) */
    girder_msg *rx_msg;            /* or: the payload's message, filled in place */
    uint8_t *rx_msg_data;          /* its bytes */
    uint8_t *rx_head;              /* and the frame's bytes before the payload */
    size_t rx_head_len;
    gr_fd fd; /* UP member link: the failure detector (detect.c) */
};

/* One known node. Dist thread only (snapshot in d->pub_members). */
struct dist_member {
    dist_member *next;               /* d->members, self first */
    gr_dist *d;                      /* owner */
    char name[GR_NODENAME_MAX + 1];  /* "name@host" */
    char host[GR_DIST_HOST_MAX + 1]; /* where to dial it */
    uint16_t port;                   /* where to dial it; 0: unknown yet */
    uint32_t creation;               /* 0 while never connected */
    int state;                       /* GR_DIST_* */
    uint64_t since_ms;               /* monotonic ms of the last state change */
    dist_conn *conn;                 /* the established link (state UP) */
    dist_conn *dial;                 /* our dial in progress */
    unsigned backoff_ms;             /* next redial delay (before jitter) */
    struct event *redial;            /* redial timer */
    bool only_join;                  /* known only from a join that has not succeeded */
    uint32_t idx;                    /* its runtime node index while up (signal.c), else 0 */
    bool gossiped;                   /* learnt by gossip, not a seed or a join (detect.c) */
    bool deferred;                   /* its first dial was put off once (detect.c) */
};

/* One outgoing rpc call waiting for its answer. Dist thread only. */
struct dist_call {
    dist_call *next;     /* conn->calls */
    dist_conn *conn;     /* link it was sent on */
    uint64_t ref;        /* RpcRequest.ref */
    girder_pid reply_to; /* answer goes there */
    uint64_t tag;        /* caller's tag */
    struct event *timer; /* deadline */
};

/* One gr_dist_join waiting for its member to come up. Dist thread only. */
struct dist_join {
    dist_join *next;                /* d->joins */
    gr_dist *d;                     /* owner */
    char node[GR_NODENAME_MAX + 1]; /* member awaited */
    girder_pid reply_to;            /* answer goes there */
    uint64_t tag;                   /* caller's tag */
    struct event *timer;            /* deadline */
};

/* One member link's figures for node.list, per node index. The dist thread
 * is the only writer (plain load + store, no locked add); any thread reads. */
typedef struct dist_link_stats {
    _Atomic uint64_t bytes_in, bytes_out;   /* socket bytes since the link came up */
    _Atomic uint64_t frames_in, frames_out; /* frames (messages) since then */
    _Atomic uint64_t last_in_ms;            /* gr_dist_now_ms() of the last read */
    _Atomic uint64_t rtt_us;                /* last heartbeat round trip (0: none yet) */
    _Atomic uint64_t srtt_us;               /* smoothed round trip (gr_dist_rtt_smooth; 0: none) */
} dist_link_stats;

/* The smoothed round trip after one more sample, us: RFC 6298's SRTT (the
 * first sample as is, then 7/8 of the old value plus 1/8 of the sample). A
 * sample under 1 us counts as 1 us: 0 means "not measured". Pure. */
static inline uint64_t gr_dist_rtt_smooth(uint64_t srtt_us, uint64_t sample_us)
{
    if (sample_us == 0) {
        sample_us = 1;
    }
    if (srtt_us == 0) {
        return sample_us;
    }
    return srtt_us - srtt_us / 8 + sample_us / 8;
}

/* Add n to a link figure. Dist thread only (the single writer). */
static inline void dist_link_add(_Atomic uint64_t *f, uint64_t n)
{
    atomic_store_explicit(f, atomic_load_explicit(f, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The figures of c's link if c is a member's link that is up, else NULL.
 * Dist thread. */
#define DIST_LINK(c)                                                                               \
    ((c)->state == CONN_UP && !(c)->hidden && (c)->member && (c)->member->idx != 0 &&              \
             (c)->member->conn == (c)                                                              \
         ? &(c)->d->link_stats[(c)->member->idx]                                                   \
         : NULL)

/* Commands from other threads. */
enum { CMD_REPLY, CMD_CALL, CMD_JOIN, CMD_STOP, CMD_PAUSE, CMD_SIGNAL, CMD_FORGET };

/* One queued command; owned by the queue, then by the dist thread. */
struct dist_cmd {
    dist_cmd *next;                  /* FIFO */
    int kind;                        /* CMD_* */
    uint64_t conn, ref;              /* REPLY */
    int status;                      /* REPLY */
    char node[GR_NODENAME_MAX + 1];  /* CALL, JOIN, FORGET */
    char host[GR_DIST_HOST_MAX + 1]; /* JOIN */
    uint16_t port;                   /* JOIN */
    char *module, *function;         /* CALL, owned */
    unsigned timeout_ms;             /* CALL, JOIN; STOP: deadline */
    girder_pid reply_to;             /* CALL, JOIN, FORGET */
    uint64_t tag;                    /* CALL, JOIN, FORGET */
    uint32_t node_idx;               /* SIGNAL: destination node (runtime index) */
    girder_pid from;                 /* SIGNAL: sender (ordering on the large lane) */
    girder_msg *payload;             /* SIGNAL: the frame's tail, sent from where it
                                        is (a reference; NULL: all in data) */
    size_t head_len;                 /* SIGNAL: frame bytes in data (the rest: payload) */
    size_t len;                      /* bytes in data; SIGNAL: the whole frame's */
    uint8_t data[];                  /* REPLY: result; CALL: args */
};

/* Whether the dist loop may spin before it blocks (gr_dist_spin_allowed).
 * Dist thread only. */
typedef struct dist_spin {
    uint64_t off_until;    /* gr_dist_now_us(): no spin before this */
    uint64_t nivcsw;       /* the thread's involuntary context switches at the last check */
    bool rebase;           /* nivcsw is stale (start, end of an off window): take it again */
    uint64_t offs;         /* times the spin was turned off */
    unsigned runnable_max; /* runnable threads on the machine that are still not
                              foreign load (0: any preemption turns it off) */
} dist_spin;

struct gr_dist {
    /* fixed after gr_dist_new */
    girder_rt *rt;                          /* the runtime messages go to */
    char name[GR_NODENAME_MAX + 1];         /* our node name */
    uint32_t creation;                      /* our incarnation */
    gr_cookie cookie;                       /* under cookie_lock; wiped in gr_dist_free */
    gr_cookie observer_key;                 /* len 0: observers refused; wiped too */
    char listen_host[GR_DIST_HOST_MAX + 1]; /* bind address */
    char adv_host[GR_DIST_HOST_MAX + 1];    /* host others dial us at */
    uint16_t listen_port;                   /* configured port */
    gr_dist_seed *seeds;                    /* copied */
    size_t nseeds;
    unsigned detection_ms; /* link silent this long: down */
    uint32_t ciphers;      /* record ciphers offered and accepted besides ChaCha20 */
    bool holding;          /* deliveries note wake-ups in `wakes` (on_raw_read) */
    gr_rt_wakes wakes;     /* schedulers to wake when the received chunk is done */
    gr_fd_params fd;       /* the failure detector's parameters (detect.c) */
    size_t out_high;       /* overload high water mark, bytes (conn.c, "Overload") */
    gr_dist_rpc_fn rpc_fn; /* incoming requests */
    void *rpc_ud;
    /* protocols and frame kinds (kinds.c): filled by gr_dist_new (and tests)
     * before the thread starts, read-only after */
    const dist_proto *protos[DIST_PROTOS_MAX]; /* in order: link up and close go in this order */
    unsigned nprotos;
    const dist_kind *kinds[DIST_KINDS_MAX]; /* by kind; NULL: unknown, skipped */

    /* set by gr_dist_start, read-only after */
    _Atomic uint16_t port; /* bound port */
    atomic_bool started;   /* thread running */
    atomic_bool stopped;   /* stop requested: refuse new commands */
    pthread_t thread;

    /* dist thread */
    struct event_base *base;
    struct evdns_base *dns; /* NULL if none could be set up */
    struct evconnlistener *listener;
    struct event *accept_ev;       /* re-enables the listener after a burst (listener.c) */
    unsigned accepts;              /* accepts since the listener was last paused */
    struct event *accept_retry_ev; /* re-enables it DIST_ACCEPT_PAUSE_MS after an error */
    gr_ratelim accept_log;         /* failed accepts' log lines */
    int listen_fd;                 /* until handed to the listener */
    /* the source address of our dials: the listen address when it is a
     * specific one (port 0), else dial_src_len 0 (listener.c; read-only once
     * the thread runs) */
    struct sockaddr_storage dial_src;
    socklen_t dial_src_len;
    struct event *cmd_ev;     /* reads wake_fd */
    uint8_t *rbuf;            /* DIST_READ_CHUNK bytes: what UP links read into */
    struct event *flush_ev;   /* lowest priority: flush dirty links, reap */
    struct event *pump_ev;    /* next iteration: another chunk of the large lanes */
    struct event *stop_timer; /* graceful stop deadline */
    bool flush_pending;       /* flush_ev is active */
    bool stopping;            /* graceful stop under way */
    dist_conn *conns;         /* live connections */
    dist_conn *dead;          /* closed, freed by the flush event */
    uint64_t next_conn_id;
    unsigned n_unauth;    /* accepted connections still in handshake */
    dist_admit admit;     /* who gets a handshake slot (admit.c) */
    uint64_t next_ref;    /* outgoing RpcRequest refs */
    dist_member *members; /* self first */
    unsigned nmembers;    /* length of members */
    dist_join *joins;

    /* the cookies (gr_dist_set_cookies: any thread; read by hs_start) */
    pthread_mutex_t cookie_lock;
    gr_cookie accept[GR_HANDSHAKE_ACCEPT_MAX]; /* under cookie_lock: accepted besides
                                                * cookie; wiped in gr_dist_free */
    size_t n_accept;                           /* under cookie_lock */

    /* command queue: any thread */
    pthread_mutex_t cmd_lock;
    dist_cmd *cmd_head, *cmd_tail; /* under cmd_lock */
    dist_sigbuf sigq;              /* under cmd_lock: outgoing signals (sigq.c) */
    dist_sigbuf sigq_work;         /* dist thread: the buffer being handed out, a slice a pass */
    size_t sigq_off;               /* dist thread: how far into sigq_work */
    int wake_fd;                   /* eventfd: a command is queued */
    atomic_int sleeping;           /* 1 while the loop may block: producers wake it */
    atomic_ulong self;             /* the dist thread's pthread_self(), once running */
    uint64_t activity;             /* bumped by every read and command (dist thread) */
    uint64_t work;                 /* bumped by commands and frames other than liveness:
                                      the loop spins only after those (dist_main) */
    struct event *fd_ev;           /* the node's one detector tick (detect.c) */
    uint64_t fd_tick_ms;           /* when it last ran (0: never) */
    dist_pace pace;                /* dial pacing (detect.c) */
    atomic_bool test_deaf_on;      /* gr_dist_test_deaf: test_deaf is set */
    char test_deaf[GR_NODENAME_MAX + 1]; /* its member (written while the thread is held) */
    dist_spin spin;                      /* may the loop spin before it blocks (dist_main) */
    bool quit;                           /* the loop ends (dist thread) */
    dist_cmd *stop_cmd;                  /* preallocated CMD_STOP; taken by gr_dist_stop */

    /* published to other threads under pub_lock */
    pthread_mutex_t pub_lock;
    pthread_cond_t pub_cond;     /* pause hook */
    bool paused;                 /* pause hook, under pub_lock */
    bool pause_held;             /* the thread is held by the pause hook, under pub_lock */
    gr_dist_member *pub_members; /* snapshot, self first */
    size_t pub_nmembers;
    girder_pid *monitors; /* nodeup/nodedown subscribers */
    size_t nmonitors, capmonitors;

    gr_dist_counters ctr; /* updated with relaxed atomics */

    /* signals (signal.c): node index -> up flag | creation, written by the dist
     * thread, read by the outgoing hook on scheduler threads */
    _Atomic uint64_t node_state[GR_DIST_NODES_MAX];
    dist_member *member_at[GR_DIST_NODES_MAX]; /* dist thread: index -> member */
    struct dist_repl *repl;                    /* replicated tables' plug (repl.c); NULL: none */
    dist_disc *disc;                           /* DNS discovery (discover.c); NULL: none */
    /* per node index: the link's queued output bytes plus what waits for it
     * in sigq, top bit = busy; written by the dist thread (conn.c), read by
     * gr_dist_members */
    _Atomic uint64_t link_queued[GR_DIST_NODES_MAX];
    /* per node index: signal bytes (bodies held by reference included) queued
     * for it in sigq and not yet handed to its link; added by the hook, taken
     * by the dist thread (sigq.c). With link_queued, what the busy check of
     * the hook and of the link's accounting sees (conn.c, "Overload"). */
    _Atomic uint64_t node_pending[GR_DIST_NODES_MAX];
    /* per node index: the link's own queued output (link_queued without
     * node_pending), for the hook's busy check; dist thread writes */
    _Atomic uint64_t link_out[GR_DIST_NODES_MAX];
    /* per node index: the longest gap between two reads on its link since it
     * came up, ms (conn.c, heard); dist thread writes, gr_dist_members reads */
    _Atomic uint64_t rx_gap_max[GR_DIST_NODES_MAX];
    /* per node index: its link's traffic since it came up (girder nodes);
     * dist thread writes (dist_link_add), gr_dist_members reads */
    dist_link_stats link_stats[GR_DIST_NODES_MAX];
};

/* gr_dist_test_deaf: does c's member's link ignore what it reads? Dist thread. */
static inline bool gr_dist_conn_deaf(const dist_conn *c)
{
    return atomic_load_explicit(&c->d->test_deaf_on, memory_order_relaxed) && c->member &&
           strcmp(c->member->name, c->d->test_deaf) == 0;
}

#define DIST_CTR_ADD(d, field, n) __atomic_fetch_add(&(d)->ctr.field, (n), __ATOMIC_RELAXED)
#define DIST_CTR_SUB(d, field, n) __atomic_fetch_sub(&(d)->ctr.field, (n), __ATOMIC_RELAXED)

/* ---- dist.c -------------------------------------------------------------------- */
uint64_t gr_dist_now_ms(void);
/* CLOCK_MONOTONIC in microseconds. */
uint64_t gr_dist_now_us(void);
/* Make the flush event run at the end of this loop iteration. */
void gr_dist_schedule_flush(gr_dist *d);
/* Tell subscribers ["nodeup", node] / ["nodedown", node, reason]. */
void gr_dist_notify_up(gr_dist *d, const char *node);
void gr_dist_notify_down(gr_dist *d, const char *node, const char *reason);
/* ["$join", tag, status] to `to`. */
void gr_dist_answer_join(gr_dist *d, girder_pid to, uint64_t tag, int status);
/* Stop: called when a connection closed, to see whether everything is drained. */
void gr_dist_stop_progress(gr_dist *d);

/* Wake the loop if it may be blocking (after queueing work). Any thread. */
void gr_dist_wake(gr_dist *d);

/* ---- sigq.c -------------------------------------------------------------------- */
/* Pack signal s for node node_idx from `from` and queue it. payload: the
 * message s->payload points into (a reference is taken when a big frame is
 * sent from it without a copy), or NULL. Any thread. 0, -ENOMEM or
 * GR_ESTOPPED. */
int gr_dist_sigq_push(gr_dist *d, uint32_t node_idx, girder_pid from, const gr_sigframe *s,
                      girder_msg *payload);
/* Is a signal queued (or a slice of the taken ones left)? Caller holds
 * cmd_lock, on the dist thread. */
bool gr_dist_sigq_pending_locked(const gr_dist *d);
/* Hand queued signals to their links, in order: at most about
 * DIST_SIGQ_SLICE bytes of them per call, so that one busy link never holds
 * the loop (the rest wait for the next pass: gr_dist_sigq_pending_locked);
 * all of them when `all` (before a stop's Leave). Dist thread. */
void gr_dist_sigq_run(gr_dist *d, bool all);
/* Drop what is queued (counted lost) and the buffers. The dist thread has ended. */
void gr_dist_sigq_free(gr_dist *d);

/* The dist thread's event base: DIST_NPRIO priorities, and at most
 * DIST_DISPATCH_MAX_CB callbacks (or DIST_DISPATCH_MAX_US) of priority
 * DIST_PRIO_IO and below before due timers and higher priorities are looked
 * at again. NULL: out of memory. Any thread (the base is then the caller's). */
struct event_base *gr_dist_base_new(void);

/* ---- listener.c ---------------------------------------------------------------- */
/* Bind and listen on the configured address (caller thread, before the thread
 * starts). 0 or -errno / GR_ECONFIG. Sets d->listen_fd and d->port. */
int gr_dist_listen_bind(gr_dist *d);
/* Attach the listener to d->base. 0 or -ENOMEM. */
int gr_dist_listen_start(gr_dist *d);
void gr_dist_listen_stop(gr_dist *d);
/* The source address a dial to dst binds to: d's listen address (port 0) when
 * it is a specific address of dst's family and both are loopback or neither
 * is. Its length into *ret_len and 1, or 0: let the kernel choose. Pure. */
int gr_dist_dial_src(const gr_dist *d, const struct sockaddr *dst, struct sockaddr_storage *ret_src,
                     socklen_t *ret_len);

/* ---- admit.c ------------------------------------------------------------------ */
/* Limits from the config (0 fields: defaults) and the Reject record. */
void gr_dist_admit_init(gr_dist *d, const gr_dist_config *cfg);
/* Free the log timer (the base is about to go). */
void gr_dist_admit_free(gr_dist *d);
/* A socket was accepted from sa: give it a handshake slot, evicting the
 * idlest connection of the most represented untrusted source when all are
 * taken, and fill *ret_slot; or refuse it: a Reject "busy" is sent, fd is
 * closed, the refusal counted and logged (rate-limited), and GR_EBUSY is
 * returned. Takes fd only on refusal. */
int gr_dist_admit_accept(gr_dist *d, int fd, const struct sockaddr *sa, dist_slot *ret_slot);
/* c (accepted, c->slot filled) takes its slot / gives it back (UP or closed;
 * no-op if it holds none). */
void gr_dist_admit_enter(dist_conn *c);
void gr_dist_admit_leave(dist_conn *c);
/* c authenticated: its source gets precedence from now on. */
void gr_dist_admit_authenticated(dist_conn *c);
/* How long an accepted connection has for its first message, in ms. */
unsigned gr_dist_admit_hello_ms(const gr_dist *d);
/* c's first handshake message is in: returns the ms left of the full handshake
 * deadline (at least 1) to re-arm its timer with, or 0 if that was done. */
unsigned gr_dist_admit_on_hello(dist_conn *c);
/* Log a refused or failed unauthenticated connection at warn level, at most a
 * few lines a second; the rest are counted by `why` (a reason id in static
 * storage: "busy", "timeout", ...) and reported once a second ("and N more in
 * the last second: busy 750, timeout 2"). */
void gr_dist_admit_log(gr_dist *d, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The pure decision, for tests: 0 (a free slot), 1 (*ret_victim must be
 * evicted first) or GR_EBUSY (refuse), for a newcomer from src. */
int gr_dist_admit_decide(gr_dist *d, const dist_src *src, bool trusted, dist_conn **ret_victim);
/* Is src a known member's address or one that authenticated? */
bool gr_dist_admit_trusted(gr_dist *d, const dist_src *src);
/* src of a socket address (family 0 if neither IPv4 nor IPv6). */
void gr_dist_admit_src(const struct sockaddr *sa, dist_src *ret_src);

/* ---- conn.c -------------------------------------------------------------------- */
/* Dial m at m->host:m->port; sets m->dial. 0 or -errno. */
int gr_dist_conn_dial(gr_dist *d, dist_member *m);
/* Take an accepted socket. */
void gr_dist_conn_accept(gr_dist *d, int fd, const struct sockaddr *sa, int salen);
/* Close: log `err` (0: quiet), detach from member (down reason `why`, NULL:
 * "noconnection"), answer its calls, queue the struct for freeing. Idempotent. */
void gr_dist_conn_close(dist_conn *c, int err, const char *why);
/* THE send call: queue one frame, in n pieces (dist_piece), on `lane`
 * (DIST_LANE_*). It goes out with this loop iteration's flush (or at once when
 * the lane holds DIST_RECORD_SOFT bytes). 0; GR_ENOCONN (c not UP);
 * GR_EFRAMETOOBIG (over the peer's max_frame: the link stays up); -EINVAL (bad
 * pieces); or another error, after which the link is closed. The pieces stay
 * the caller's (a referenced tail's message gets its own reference). */
int gr_dist_conn_send(dist_conn *c, int lane, const dist_piece *pieces, size_t n);
/* Half-close c once everything queued on it is written (stop). */
void gr_dist_conn_drain_close(dist_conn *c);
/* Seal and write every dirty link; free closed ones. */
void gr_dist_conn_flush_all(gr_dist *d);
dist_conn *gr_dist_conn_find(gr_dist *d, uint64_t id);
/* Detach c from its member (a tie-break loser, or a link replaced by a newer
 * one) but keep serving it for DIST_RETIRE_MS, so that the peer - which may not
 * have seen the winning link complete yet - never reads our close as the
 * member going down. Frames in flight on it are still handled; its calls are
 * answered when it finally closes. */
void gr_dist_conn_retire(dist_conn *c);
/* Free a closed connection. */
void gr_dist_conn_free(dist_conn *c);
/* Bytes waiting in the socket's output buffer. */
size_t gr_dist_conn_pending(const dist_conn *c);
/* Overload accounting now rather than at the next flush (conn.c, account):
 * marks c busy above the high water mark (or closes it above the hard limit)
 * and returns whether it is busy. For a caller that queues many frames to c
 * in one callback (replication's drain), so that it stops at the mark. */
bool gr_dist_conn_account(dist_conn *c);

/* The link's own protocol: heartbeats. */
extern const dist_proto gr_dist_link_proto;

/* ---- members.c ----------------------------------------------------------------- */
int gr_dist_mem_init(gr_dist *d);
void gr_dist_mem_free_all(gr_dist *d);
dist_member *gr_dist_mem_find(gr_dist *d, const char *name);
/* Learn a member (or update where to dial it). Returns it, NULL on -ENOMEM. */
dist_member *gr_dist_mem_learn(gr_dist *d, const char *name, const char *host, uint16_t port);
/* Dial now if it is down, not left, and not being dialled. */
void gr_dist_mem_dial(gr_dist *d, dist_member *m);
/* A handshake completed on c with a member peer: tie-break, restart detection,
 * state UP, gossip. Returns false if c lost the tie-break and was closed. */
bool gr_dist_mem_link_up(gr_dist *d, dist_conn *c);
/* c, which was m's link or dial, closed with reason err. */
void gr_dist_mem_link_down(gr_dist *d, dist_conn *c, int err, const char *why);
/* The membership protocol (kinds Members, Join, Leave). */
extern const dist_proto gr_dist_mem_proto;
/* Publish the member snapshot for gr_dist_members. */
void gr_dist_mem_publish(gr_dist *d);
/* gr_dist_join on the dist thread. */
void gr_dist_mem_join(gr_dist *d, dist_cmd *cmd);
/* CMD_FORGET: remove member `node` and tell every member up (members.c). 0,
 * GR_EMEMBERUP, GR_ENOMEMBER, GR_EFORGETSELF. */
int gr_dist_mem_forget(gr_dist *d, const char *node);
/* Answer ["$forget", tag, status] to `to`. */
void gr_dist_answer_forget(gr_dist *d, girder_pid to, uint64_t tag, int status);
/* Answer every join waiter with err. */
void gr_dist_mem_fail_joins(gr_dist *d, int err);
/* Queue a Leave on every member link. */
void gr_dist_mem_leave_all(gr_dist *d);
void gr_dist_mem_stop_timers(gr_dist *d);

/* Allocate / queue a command (dist.c). push: 0 or GR_ESTOPPED (c freed). */
dist_cmd *gr_dist_cmd_new(int kind, size_t len);
void gr_dist_cmd_free(dist_cmd *c);
int gr_dist_cmd_push(gr_dist *d, dist_cmd *c);

/* ---- kinds.c ------------------------------------------------------------------- */
/* Register the built-in protocols (gr_dist_new). 0 or an error of proto_add. */
int gr_dist_protos_init(gr_dist *d);
/* Register protocol p and its kinds, after the others (before gr_dist_start:
 * the tables are read unlocked by the dist thread). 0; -EINVAL (a kind out of
 * range); -EEXIST (a kind already owned: nothing registered); -ENOSPC. */
int gr_dist_proto_add(gr_dist *d, const dist_proto *p);
/* A frame frame[0..len) arrived on UP link c: hand it to its kind. A kind
 * nobody registered is skipped (a newer peer's). 0 or an error (close c). */
int gr_dist_frame_in(dist_conn *c, const uint8_t *frame, size_t len);
/* A frame whose payload the record sink put in message payload (taken). */
int gr_dist_frame_split_in(dist_conn *c, const uint8_t *head, size_t head_len, girder_msg *payload);
/* The record sink's payload_at for the links of d (ud): asks the frame's kind. */
int gr_dist_payload_at(void *ud, const uint8_t *frame, size_t have, size_t total, size_t *ret_head);
/* Tell every protocol, in order: member link c is UP (stops early if one
 * closed it) / c closed. */
void gr_dist_protos_member_up(dist_conn *c);
void gr_dist_protos_closed(dist_conn *c, int err, const char *why);
/* The paced senders of c: flush them (0 or the first error), the bytes they
 * hold back, whether one would send now. */
int gr_dist_protos_flush(dist_conn *c);
size_t gr_dist_protos_held(const dist_conn *c);
bool gr_dist_protos_ready(const dist_conn *c);

/* ---- large.c ------------------------------------------------------------------- */
/* Does `from` have a signal waiting in c's large lane? */
bool gr_dist_large_holds(const dist_conn *c, girder_pid from);
/* Queue cmd's packed Signal frame on the large lane (fragmented when big);
 * takes cmd on success. */
int gr_dist_large_push(dist_conn *c, dist_cmd *cmd);
/* Flush (the protocol's flush hook): move at most one chunk into the bulk
 * lane. 0 or an error. */
int gr_dist_large_pump(dist_conn *c);
bool gr_dist_large_pending(const dist_conn *c);
/* The bytes left to send of the biggest signal on c's large lane (0: none):
 * the "one message" a link may hold beyond its high-water mark (conn.c,
 * "Overload"). Dist thread. */
size_t gr_dist_large_biggest(const dist_conn *c);
/* Is a large message being sent or reassembled on any link? (dist_main) */
bool gr_dist_large_any(const gr_dist *d);
/* Would a pump now send something (socket and acknowledgement windows open)?
 * (the ready hook) */
bool gr_dist_large_can_pump(const dist_conn *c);
/* Close: drop what is queued (counted as lost) and any reassembly. */
void gr_dist_large_free(dist_conn *c);
/* The large-message protocol (kinds Fragment, FragmentAck). */
extern const dist_proto gr_dist_large_proto;

/* ---- signal.c ------------------------------------------------------------------ */
/* Member m is up (its link and creation are current) / went down (tell the
 * runtime: links and monitors fire) / is being freed. */
void gr_dist_signal_node_up(gr_dist *d, dist_member *m);
void gr_dist_signal_node_down(gr_dist *d, dist_member *m);
void gr_dist_signal_forget(gr_dist *d, dist_member *m);
/* CMD_SIGNAL. Returns true if it kept cmd (queued on a large lane). */
bool gr_dist_signal_cmd(gr_dist *d, dist_cmd *cmd);
/* A piece of a CMD_SIGNAL's frame: the contiguous bytes from offset off, at
 * most *io_n of them (*io_n is set to how many). */
const uint8_t *gr_dist_cmd_span(const dist_cmd *cmd, size_t off, size_t *io_n);
/* CMD_SIGNAL's whole frame as pieces for gr_dist_conn_send: its head, and its
 * payload sent from the message. Returns how many (1 or 2). */
size_t gr_dist_cmd_pieces(const dist_cmd *cmd, dist_piece ret_pieces[DIST_PIECES_MAX]);
/* A small packed Signal frame from the queue for node index node_idx. */
void gr_dist_signal_packed(gr_dist *d, uint32_t node_idx, girder_pid from, const uint8_t *frame,
                           size_t len);
/* The process-signal protocol (kind Signal). */
extern const dist_proto gr_dist_signal_proto;
/* A Signal frame arrived on member link c (or was reassembled from
 * fragments): decoded by protobuf-c, or viewed in place (proto/sigframe.h).
 * 0 or an error (close c). */
int gr_dist_signal_on_frame(dist_conn *c, const Girder__Frame *f);
int gr_dist_signal_on_view(gr_dist *d, dist_conn *c, const gr_sigframe *s);
/* The same with the payload already in a message (s->payload points into it);
 * payload is taken whatever happens. NULL: copy s->payload. */
int gr_dist_signal_deliver(gr_dist *d, dist_conn *c, const gr_sigframe *s, girder_msg *payload);

/* ---- detect.c ------------------------------------------------------------------ */
/* The detector's parameters for detection time detection_ms. Pure. */
void gr_fd_params_init(gr_fd_params *p, unsigned detection_ms);
/* One check at now of a link last heard at last_in (monotonic ms). late: the
 * checking node itself was stalled (its tick ran more than a tick late): a
 * down is held back once, to read what arrived meanwhile first. Returns
 * GR_FD_*. Pure. */
int gr_fd_check(gr_fd *s, const gr_fd_params *p, uint64_t now, uint64_t last_in, bool late);
/* A vouch for round seq arrived: true if it counts (a round of the current
 * suspicion), and then the member is known alive as of that round's send
 * time. Pure. */
bool gr_fd_vouch(gr_fd *s, uint64_t seq);
/* Reset (link up). Pure. */
void gr_fd_reset(gr_fd *s);
/* An UP link joins the node's detector tick (started on the first one); its
 * own timer is dropped. 0 or -ENOMEM. */
int gr_dist_fd_link_up(dist_conn *c);
/* Free the tick (gr_dist_free, before the base). */
void gr_dist_fd_free(gr_dist *d);
/* How long to put off a dial of m now (0: dial, a token is taken). Pure but
 * for the clock and the jitter: dist thread. */
unsigned gr_dist_dial_delay(gr_dist *d, dist_member *m);
/* The token bucket alone: ms until a dial may start at now with `inflight`
 * dials under way (0: one may: a token is taken). Pure. */
unsigned gr_dist_pace_take(dist_pace *p, uint64_t now, unsigned inflight);
/* The indirect-probe protocol (kind Probe). */
extern const dist_proto gr_dist_probe_proto;

/* ---- repl.c -------------------------------------------------------------------- */
/* The replicated-tables protocol (kinds ReplWrites, ReplDigest, ReplKeys). */
extern const dist_proto gr_dist_repl_proto;
/* Free its events (gr_dist_free, before the base). */
void gr_dist_repl_free(gr_dist *d);

/* ---- rpc.c --------------------------------------------------------------------- */
/* The rpc protocol (kinds RpcRequest, RpcReply). */
extern const dist_proto gr_dist_rpc_proto;
void gr_dist_rpc_reply_cmd(gr_dist *d, dist_cmd *cmd);
void gr_dist_rpc_call_cmd(gr_dist *d, dist_cmd *cmd);
/* Answer ["$rpc", tag, status, reason] to `to`. Any thread: it touches no
 * dist state (gr_dist_stop uses it after the thread ended). */
void gr_dist_rpc_answer_err(gr_dist *d, girder_pid to, uint64_t tag, int status);
/* Answer c's outgoing calls with err (a graceful stop: GR_ESTOPPED; a close:
 * GR_ENOCONN, through the protocol's closed hook). */
void gr_dist_rpc_conn_closed(dist_conn *c, int err);

/* Spin or block (dist_main): false while the thread was preempted since the
 * last check (`nivcsw`, its involuntary context switches, moved) with more
 * than s->runnable_max threads runnable on the machine (`runnable`, read by
 * the caller only when nivcsw moved; 0: unknown, which counts as more): the
 * CPU is contended by others, and a spinner then takes it from the threads
 * it hands work to. Then false for DIST_SPIN_OFF_US; at the end of that
 * window the count is taken afresh and the spin allowed again. A preemption
 * with few threads runnable is a hand-off of this node or its peer's on the
 * same machine and keeps the spin. Pure: dist thread, or a test. */
bool gr_dist_spin_allowed(dist_spin *s, uint64_t now_us, uint64_t nivcsw, unsigned runnable);

/* ---- discover.c: DNS discovery --------------------------------------------------- */

/* An address from a DNS answer, with the port it is dialled at. */
typedef struct gr_dist_disc_addr {
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* IPv4: the first 4 bytes, the rest 0 */
    uint16_t port;    /* host order */
} gr_dist_disc_addr;

/* A candidate member: one address of a name's latest answer, and what was
 * learnt there. */
typedef struct gr_dist_disc_cand {
    gr_dist_disc_addr addr;         /* where */
    uint8_t seen;                   /* 1 once in an answer (0: a new entry, gr_dist_disc_merge) */
    bool self;                      /* this node: never dialled */
    uint64_t probe;                 /* id of our anonymous dial in flight; 0: none */
    unsigned fails;                 /* probes in a row that reached no node */
    char node[GR_NODENAME_MAX + 1]; /* the node that answered there; "": not known yet */
} gr_dist_disc_cand;

/* Replace the candidates *cands (*ncands of them, malloc'd) by the addresses
 * of an answer, addrs[0..n): an address already a candidate keeps its entry
 * (what was learnt there), a new one gets a fresh entry, a candidate not in
 * the answer is dropped; duplicates and other families are skipped, and at
 * most GR_DIST_DISC_CANDS_MAX are kept, in answer order. *ret_added and
 * *ret_removed (each may be NULL) count the new and the dropped. 0, or -ENOMEM
 * with *cands untouched. Pure: any thread, on the caller's arrays. */
int gr_dist_disc_merge(gr_dist_disc_cand **cands, size_t *ncands, const gr_dist_disc_addr *addrs,
                       size_t n, size_t *ret_added, size_t *ret_removed);
/* "1.2.3.4:P" or "[v6]:P", as conn.c formats a dialled address. Pure. */
void gr_dist_disc_addr_format(const gr_dist_disc_addr *a, char *buf, size_t cap);
/* Set up discovery of names[0..n) (copied) on d; n 0: none. gr_dist_new.
 * 0, -EINVAL (too many, an empty or overlong name) or -ENOMEM. */
int gr_dist_disc_new(gr_dist *d, const gr_dist_dns *names, size_t n, unsigned interval_ms);
/* The period timer; the first lookups run at the loop's first turn.
 * gr_dist_start, after d->base and d->dns. 0 or -ENOMEM. */
int gr_dist_disc_start(gr_dist *d);
/* No more lookups or dials (stop). Dist thread; idempotent. */
void gr_dist_disc_stop(gr_dist *d);
/* Free it all (the loop has ended or never ran). NULL-safe on d->disc. */
void gr_dist_disc_free(gr_dist *d);
/* Discovery as a protocol without frame kinds, added by gr_dist_disc_new: its
 * hooks learn who answered a probe. */
extern const dist_proto gr_dist_disc_proto;

/* conn.c: dial sa without expecting a particular node (the handshake's peer is
 * whoever proves the cookie). The link has no member until it is UP; its id
 * is stored in *ret_id. 0 or -ENOMEM (a connect that fails later closes the
 * link as usual: the protocols' closed hooks run). Dist thread. */
int gr_dist_conn_probe(gr_dist *d, const struct sockaddr *sa, socklen_t salen, uint64_t *ret_id);

#endif
