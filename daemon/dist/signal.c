/* SPDX-License-Identifier: Apache-2.0 */
/*
 * signal.c - process signals between nodes: the runtime's outgoing hook, the
 * Signal frame both ways, and the per-node "is it up, which creation" table
 * the hook reads.
 *
 * Design notes
 * - The hook runs on scheduler threads. It packs the whole Signal frame there
 *   (pids and refs as term.h ext bytes naming their nodes, the payload's msgpack
 *   bytes as they are), so the dist thread only appends packed bytes to the
 *   link's bulk lane: the encoding cost is spread over the schedulers.
 * - Whether a node is up, and its creation, is one atomic word per node index
 *   (node_state), written by the dist thread at nodeup/nodedown and read by the
 *   hook without a lock. A signal for a pid of another creation of an up node is
 *   GR_ENOPROC at once (a pid of a previous incarnation is dead). A signal taken
 *   while the link is up but lost with it is covered by gr_rt_node_down, which
 *   the dist thread calls right after the nodedown.
 * - Ordering: signals of one scheduler thread go through the one command FIFO to
 *   the one link of that node, in order (docs/cluster.md, "Signals").
 * - Incoming frames are checked against the link they came on: `from` must be a
 *   pid of the peer node (its current creation), `to` a pid or name of ours.
 *
 * Threads: gr_dist_remote_hook any scheduler thread; the rest the dist thread.
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "proto/frame.h"
#include "proto/sigframe.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STATE_UP (1ull << 63)

/* ---- packing pids and refs ---------------------------------------------------------- */

/* A msgpack writer into a fixed buffer. */
typedef struct fixbuf {
    uint8_t *p;
    size_t len, cap;
} fixbuf;

static int fixbuf_write(void *data, const char *buf, size_t len)
{
    fixbuf *f = data;

    if (f->len + len > f->cap) {
        return -1;
    }
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

#define ID_BYTES_MAX (3 + 1 + GR_TERM_NODE_MAX + 4 + 8)

/* Pack id (node index `node` of d->rt) as an ext of `type` into buf. */
static int pack_id(gr_dist *d, int type, uint32_t node, uint32_t creation, uint64_t id,
                   uint8_t *buf, size_t *ret_len)
{
    fixbuf f = {.p = buf, .cap = ID_BYTES_MAX};
    msgpack_packer pk;
    size_t nlen = 0;
    const char *name = gr_rt_node_at(d->rt, node, &nlen);

    if (name == NULL) {
        return GR_EBADTERM;
    }
    msgpack_packer_init(&pk, &f, fixbuf_write);
    if (gr_term_pack_id(&pk, type, name, nlen, creation, id) < 0) {
        return GR_EBADTERM;
    }
    *ret_len = f.len;
    return 0;
}

static Girder__SignalKind wire_kind(gr_rsig_kind k)
{
    switch (k) {
    case GR_RSIG_MSG:
        return GIRDER__SIGNAL_KIND__MESSAGE;
    case GR_RSIG_LINK:
        return GIRDER__SIGNAL_KIND__LINK;
    case GR_RSIG_UNLINK:
        return GIRDER__SIGNAL_KIND__UNLINK;
    case GR_RSIG_EXIT:
        return GIRDER__SIGNAL_KIND__EXIT;
    case GR_RSIG_LINKEXIT:
        return GIRDER__SIGNAL_KIND__LINK_EXIT;
    case GR_RSIG_MONITOR:
        return GIRDER__SIGNAL_KIND__MONITOR;
    case GR_RSIG_DEMONITOR:
        return GIRDER__SIGNAL_KIND__DEMONITOR;
    case GR_RSIG_SPAWN_REQUEST:
        return GIRDER__SIGNAL_KIND__SPAWN_REQUEST;
    case GR_RSIG_SPAWN_REPLY:
        return GIRDER__SIGNAL_KIND__SPAWN_REPLY;
    case GR_RSIG_DOWN:
    default:
        return GIRDER__SIGNAL_KIND__DOWN;
    }
}

static int local_kind(Girder__SignalKind k, gr_rsig_kind *ret)
{
    switch (k) {
    case GIRDER__SIGNAL_KIND__MESSAGE:
        *ret = GR_RSIG_MSG;
        return 0;
    case GIRDER__SIGNAL_KIND__LINK:
        *ret = GR_RSIG_LINK;
        return 0;
    case GIRDER__SIGNAL_KIND__UNLINK:
        *ret = GR_RSIG_UNLINK;
        return 0;
    case GIRDER__SIGNAL_KIND__EXIT:
        *ret = GR_RSIG_EXIT;
        return 0;
    case GIRDER__SIGNAL_KIND__LINK_EXIT:
        *ret = GR_RSIG_LINKEXIT;
        return 0;
    case GIRDER__SIGNAL_KIND__MONITOR:
        *ret = GR_RSIG_MONITOR;
        return 0;
    case GIRDER__SIGNAL_KIND__DEMONITOR:
        *ret = GR_RSIG_DEMONITOR;
        return 0;
    case GIRDER__SIGNAL_KIND__DOWN:
        *ret = GR_RSIG_DOWN;
        return 0;
    case GIRDER__SIGNAL_KIND__SPAWN_REQUEST:
        *ret = GR_RSIG_SPAWN_REQUEST;
        return 0;
    case GIRDER__SIGNAL_KIND__SPAWN_REPLY:
        *ret = GR_RSIG_SPAWN_REPLY;
        return 0;
    default:
        return GR_EBADFRAME;
    }
}

static bool uses_ref(gr_rsig_kind k)
{
    return k == GR_RSIG_MONITOR || k == GR_RSIG_DEMONITOR || k == GR_RSIG_DOWN ||
           k == GR_RSIG_SPAWN_REQUEST || k == GR_RSIG_SPAWN_REPLY;
}

static bool is_spawn(gr_rsig_kind k)
{
    return k == GR_RSIG_SPAWN_REQUEST || k == GR_RSIG_SPAWN_REPLY;
}

/* ---- outgoing: scheduler threads ------------------------------------------------------ */

/* Does a signal for node idx find its link busy: marked so (until it drains
 * below the low mark), or with more than the high-water mark queued, counting
 * what waits in sigq for it? (Not counting the signal itself: the mark allows
 * one message beyond it, so a single message over the mark does not suspend
 * its sender.) Then the node is marked busy in the
 * runtime *before* the signal is queued: the link's accounting, which runs
 * after the dist thread took the signal, then sees the mark and clears it
 * once drained (conn.c, "Overload"), or, when the link is gone by then,
 * gr_dist_signal_cmd finds no link for it and clears it: a mark is never left
 * behind. Any thread. */
static bool link_busy(gr_dist *d, uint32_t idx)
{
    uint64_t q = atomic_load_explicit(&d->link_out[idx], memory_order_relaxed);
    uint64_t pend = atomic_load_explicit(&d->node_pending[idx], memory_order_relaxed);

    if (gr_rt_node_is_busy(d->rt, idx)) {
        return true;
    }
    if (q + pend <= d->out_high) {
        return false;
    }
    gr_rt_node_busy(d->rt, idx, true);
    return true;
}

int gr_dist_remote_hook(void *ud, gr_rt_remote_sig *sig)
{
    gr_dist *d = ud;
    uint32_t idx = sig->to.node;
    uint64_t st;
    uint8_t from[ID_BYTES_MAX], to[ID_BYTES_MAX], ref[ID_BYTES_MAX];
    size_t from_len = 0, to_len = 0, ref_len = 0;
    gr_sigframe s = {0};
    bool busy;
    int r;

    if (idx == 0 || idx >= GR_DIST_NODES_MAX || !atomic_load(&d->started) ||
        atomic_load(&d->stopped)) {
        return GR_ENOCONN;
    }
    st = atomic_load_explicit(&d->node_state[idx], memory_order_acquire);
    if (!(st & STATE_UP)) {
        return GR_ENOCONN;
    }
    if (sig->to.id != 0 && sig->to.creation != (uint32_t)st) {
        return GR_ENOPROC; /* a pid of an earlier incarnation of that node */
    }
    if (pack_id(d, GR_TERM_EXT_PID, sig->from.node, sig->from.creation, sig->from.id, from,
                &from_len) < 0) {
        return GR_EBADTERM;
    }
    s.kind = (uint32_t)wire_kind(sig->kind);
    s.from = from;
    s.from_len = from_len;
    if (sig->to_name) {
        s.to_name = sig->to_name;
        s.to_name_len = strlen(sig->to_name);
    } else {
        if (pack_id(d, GR_TERM_EXT_PID, sig->to.node, sig->to.creation, sig->to.id, to, &to_len) <
            0) {
            return GR_EBADTERM;
        }
        s.to = to;
        s.to_len = to_len;
    }
    if (uses_ref(sig->kind)) {
        if (pack_id(d, GR_TERM_EXT_REF, sig->ref.node, sig->ref.creation, sig->ref.id, ref,
                    &ref_len) < 0) {
            return GR_EBADTERM;
        }
        s.ref = ref;
        s.ref_len = ref_len;
    }
    if (sig->msg) {
        s.payload = girder_msg_data(sig->msg);
        s.payload_len = girder_msg_size(sig->msg);
    }
    if (is_spawn(sig->kind)) {
        s.flags = sig->flags;
        if (sig->behaviour) {
            s.behaviour = sig->behaviour; /* SPAWN_REQUEST; to names the node */
            s.behaviour_len = strlen(sig->behaviour);
        }
    }
    busy = link_busy(d, idx);
    if ((r = gr_dist_sigq_push(d, idx, sig->from, &s, sig->msg)) < 0) {
        return r == -ENOMEM ? r : GR_ENOCONN; /* stopping */
    }
    sig->msg = girder_msg_unref(sig->msg); /* taken: the bytes are in the queue */
    return busy ? GR_RT_TAKEN_BUSY : 0;
}

/* ---- the node table: dist thread ------------------------------------------------------- */

/* The runtime's index for member name `node`, interning it. 0 on failure. */
static uint32_t node_index(gr_dist *d, const char *node)
{
    uint32_t idx = 0;

    if (gr_rt_node_intern_member(d->rt, node, strlen(node), &idx) < 0 || idx >= GR_DIST_NODES_MAX) {
        return 0;
    }
    return idx;
}

/* A new link: its figures start from nothing (girder nodes). */
static void link_stats_reset(dist_link_stats *ls)
{
    atomic_store_explicit(&ls->bytes_in, 0, memory_order_relaxed);
    atomic_store_explicit(&ls->bytes_out, 0, memory_order_relaxed);
    atomic_store_explicit(&ls->frames_in, 0, memory_order_relaxed);
    atomic_store_explicit(&ls->frames_out, 0, memory_order_relaxed);
    atomic_store_explicit(&ls->rtt_us, 0, memory_order_relaxed);
    atomic_store_explicit(&ls->srtt_us, 0, memory_order_relaxed);
    atomic_store_explicit(&ls->last_in_ms, gr_dist_now_ms(), memory_order_relaxed);
}

void gr_dist_signal_node_up(gr_dist *d, dist_member *m)
{
    uint32_t idx = node_index(d, m->name);

    if (idx == 0) {
        gr_warn(DIST_LOG, "no node index for %s: its processes are unreachable", m->name);
        return;
    }
    d->member_at[idx] = m;
    m->idx = idx;
    link_stats_reset(&d->link_stats[idx]);
    atomic_store_explicit(&d->node_state[idx], STATE_UP | m->creation, memory_order_release);
}

void gr_dist_signal_node_down(gr_dist *d, dist_member *m)
{
    uint32_t idx = node_index(d, m->name);

    if (idx == 0) {
        return;
    }
    atomic_store_explicit(&d->node_state[idx], 0, memory_order_release);
    atomic_store_explicit(&d->link_queued[idx], 0, memory_order_relaxed);
    atomic_store_explicit(&d->link_out[idx], 0, memory_order_relaxed);
    atomic_store_explicit(&d->rx_gap_max[idx], 0, memory_order_relaxed);
    d->member_at[idx] = NULL;
    m->idx = 0;
    gr_rt_node_busy(d->rt, idx, false); /* its suspended senders run again */
    gr_rt_node_down(d->rt, idx);
}

void gr_dist_signal_forget(gr_dist *d, dist_member *m)
{
    for (uint32_t i = 0; i < GR_DIST_NODES_MAX; i++) {
        if (d->member_at[i] == m) {
            d->member_at[i] = NULL;
            atomic_store_explicit(&d->node_state[i], 0, memory_order_release);
            atomic_store_explicit(&d->link_queued[i], 0, memory_order_relaxed);
            atomic_store_explicit(&d->link_out[i], 0, memory_order_relaxed);
            atomic_store_explicit(&d->rx_gap_max[i], 0, memory_order_relaxed);
            gr_rt_node_busy(d->rt, i, false);
        }
    }
}

/* CMD_SIGNAL: append the packed frame to the member's bulk lane, or queue it
 * on the large lane (then cmd is kept: returns true). */
bool gr_dist_signal_cmd(gr_dist *d, dist_cmd *cmd)
{
    dist_member *m = cmd->node_idx < GR_DIST_NODES_MAX ? d->member_at[cmd->node_idx] : NULL;
    dist_conn *c = m ? m->conn : NULL;
    int r;

    if (c == NULL || c->state != CONN_UP) {
        /* The node went down after the hook took it: gr_rt_node_down has been
         * (or is being) called, which fires the links and monitors. The hook
         * may also have marked the node busy after the nodedown cleared the
         * mark (link_busy: set before the push, so this runs after it): no
         * link is left to clear it, and its sender would stay suspended. */
        DIST_CTR_ADD(d, signals_lost, 1);
        if (cmd->node_idx < GR_DIST_NODES_MAX && gr_rt_node_is_busy(d->rt, cmd->node_idx)) {
            gr_rt_node_busy(d->rt, cmd->node_idx, false);
        }
        return false;
    }
    if (cmd->len >= DIST_LARGE_MIN || cmd->len > c->peer.limits.max_frame ||
        gr_dist_large_holds(c, cmd->from)) {
        /* big, or behind its sender's big one: the large lane (large.c) */
        if (cmd->len > DIST_LARGE_MAX) {
            gr_warn(DIST_LOG, "signal of %zu bytes to %s exceeds %u bytes: dropped", cmd->len,
                    m->name, DIST_LARGE_MAX);
            DIST_CTR_ADD(d, signals_lost, 1);
            return false;
        }
        if ((r = gr_dist_large_push(c, cmd)) == 0) {
            DIST_CTR_ADD(d, signals_out, 1);
            return true;
        }
    } else {
        dist_piece pc[DIST_PIECES_MAX];

        r = gr_dist_conn_send(c, DIST_LANE_BULK, pc, gr_dist_cmd_pieces(cmd, pc));
    }
    if (r < 0) {
        DIST_CTR_ADD(d, signals_lost, 1);
        return false;
    }
    DIST_CTR_ADD(d, signals_out, 1);
    return false;
}

const uint8_t *gr_dist_cmd_span(const dist_cmd *cmd, size_t off, size_t *io_n)
{
    size_t avail;

    if (off < cmd->head_len) {
        avail = cmd->head_len - off;
        *io_n = *io_n < avail ? *io_n : avail;
        return cmd->data + off;
    }
    avail = cmd->len - off;
    *io_n = *io_n < avail ? *io_n : avail;
    return (const uint8_t *)girder_msg_data(cmd->payload) + (off - cmd->head_len);
}

size_t gr_dist_cmd_pieces(const dist_cmd *cmd, dist_piece ret_pieces[DIST_PIECES_MAX])
{
    ret_pieces[0] = (dist_piece){.p = cmd->data, .len = cmd->head_len};
    if (cmd->payload == NULL) {
        return 1; /* the whole frame is in data */
    }
    ret_pieces[1] = (dist_piece){
        .p = girder_msg_data(cmd->payload), .len = cmd->len - cmd->head_len, .msg = cmd->payload};
    return 2;
}

void gr_dist_signal_packed(gr_dist *d, uint32_t node_idx, girder_pid from, const uint8_t *frame,
                           size_t len)
{
    dist_member *m = node_idx < GR_DIST_NODES_MAX ? d->member_at[node_idx] : NULL;
    dist_conn *c = m ? m->conn : NULL;
    dist_cmd *cmd;

    if (c != NULL && c->state == CONN_UP && c->lg_head == NULL && len <= c->peer.limits.max_frame) {
        /* the common case: straight onto the bulk lane */
        if (gr_dist_conn_send(c, DIST_LANE_BULK, &(dist_piece){.p = frame, .len = len}, 1) < 0) {
            DIST_CTR_ADD(d, signals_lost, 1);
            return;
        }
        DIST_CTR_ADD(d, signals_out, 1);
        return;
    }
    /* no link (counted lost there), or behind a large signal: the general path */
    if ((cmd = gr_dist_cmd_new(CMD_SIGNAL, len)) == NULL) {
        gr_warn(DIST_LOG, "no memory for a signal to node %u: closing its link", node_idx);
        if (c != NULL) {
            gr_dist_conn_close(c, -ENOMEM, NULL); /* lost only with the link */
        }
        DIST_CTR_ADD(d, signals_lost, 1);
        return;
    }
    memcpy(cmd->data, frame, len);
    cmd->head_len = len;
    cmd->node_idx = node_idx;
    cmd->from = from;
    if (!gr_dist_signal_cmd(d, cmd)) {
        gr_dist_cmd_free(cmd);
    }
}

/* ---- incoming: dist thread ---------------------------------------------------------------- */

/* Decode an id ext and intern its node. */
static int take_id(gr_dist *d, const uint8_t *b, size_t len, int type, gr_term_id *ret_tid,
                   uint32_t *ret_node)
{
    if (gr_term_decode_id(b, len, type, ret_tid) < 0) {
        return GR_EBADFRAME;
    }
    if (gr_rt_node_intern(d->rt, ret_tid->node, ret_tid->node_len, ret_node) < 0) {
        return GR_EBADFRAME;
    }
    return 0;
}

static int deliver(gr_dist *d, dist_conn *c, const gr_sigframe *s, girder_msg **io_payload);

int gr_dist_signal_on_view(gr_dist *d, dist_conn *c, const gr_sigframe *s)
{
    return gr_dist_signal_deliver(d, c, s, NULL);
}

int gr_dist_signal_deliver(gr_dist *d, dist_conn *c, const gr_sigframe *s, girder_msg *payload)
{
    int r = deliver(d, c, s, &payload);

    girder_msg_unref(payload); /* NULL once taken */
    return r;
}

static int deliver(gr_dist *d, dist_conn *c, const gr_sigframe *s, girder_msg **io_payload)
{
    gr_rt_remote_sig sig = {0};
    char name[GR_SIGFRAME_NAME_MAX + 1], behaviour[GR_SIGFRAME_NAME_MAX + 1];
    gr_term_id tid;
    uint32_t node;
    int r;

    /* a retired link (a tie-break loser, conn.c) has no member any more but
     * is still the peer's, authenticated as a member: the peer may have sent
     * on it before it saw the tie-break too, and those signals count */
    if (c->hidden || (c->member == NULL && !c->retired)) {
        return GR_EBADFRAME;
    }
    if ((r = local_kind((Girder__SignalKind)s->kind, &sig.kind)) < 0) {
        return r;
    }
    /* from: a pid of the peer, of the incarnation this link authenticated */
    if ((r = take_id(d, s->from, s->from_len, GR_TERM_EXT_PID, &tid, &node)) < 0) {
        return r;
    }
    if (tid.node_len != strlen(c->peer.name) || memcmp(tid.node, c->peer.name, tid.node_len) ||
        node == 0 || (tid.id != 0 && tid.creation != c->peer.creation)) {
        return GR_EBADFRAME; /* id 0: sent by a thread of the peer, not a process */
    }
    sig.from = (girder_pid){node, tid.creation, tid.id};
    if (s->to_name_len > 0) {
        if (sig.kind != GR_RSIG_MSG || s->to_name_len > GR_SIGFRAME_NAME_MAX) {
            return GR_EBADFRAME;
        }
        memcpy(name, s->to_name, s->to_name_len);
        name[s->to_name_len] = '\0';
        sig.to_name = name;
    } else {
        if ((r = take_id(d, s->to, s->to_len, GR_TERM_EXT_PID, &tid, &node)) < 0) {
            return r;
        }
        if (node != 0) {
            return GR_EBADFRAME; /* not one of ours */
        }
        sig.to = (girder_pid){0, tid.creation, tid.id};
    }
    if (uses_ref(sig.kind)) {
        if ((r = take_id(d, s->ref, s->ref_len, GR_TERM_EXT_REF, &tid, &node)) < 0) {
            return r;
        }
        sig.ref = (girder_ref){node, tid.creation, tid.id};
    }
    if (sig.kind == GR_RSIG_SPAWN_REQUEST) {
        if (s->behaviour_len == 0 || s->behaviour_len > GR_TERM_NODE_MAX ||
            s->behaviour_len > GR_SIGFRAME_NAME_MAX) {
            return GR_EBADFRAME; /* a name a behaviour can have, or no request */
        }
        memcpy(behaviour, s->behaviour, s->behaviour_len);
        behaviour[s->behaviour_len] = '\0';
        sig.behaviour = behaviour;
    }
    if (is_spawn(sig.kind)) {
        sig.flags = s->flags; /* checked by gr_rt_remote_deliver */
    }
    if (*io_payload) {
        sig.msg = *io_payload; /* the bytes are already a message: no copy */
        *io_payload = NULL;
    } else if (s->payload_len) {
        if ((sig.msg = girder_msg_new(s->payload, s->payload_len)) == NULL) {
            return -ENOMEM;
        }
    }
    r = gr_rt_remote_deliver_held(d->rt, &sig, d->holding ? &d->wakes : NULL);
    girder_msg_unref(sig.msg); /* NULL when taken */
    if (r == GR_EBADARG) {
        return GR_EBADFRAME; /* e.g. a MSG without payload */
    }
    if (r == 0) {
        DIST_CTR_ADD(d, signals_in, 1);
    }
    return r;
}

int gr_dist_signal_on_frame(dist_conn *c, const Girder__Frame *f)
{
    const Girder__Signal *s = f->signal;
    gr_sigframe v = {0};

    if (s == NULL) {
        return GR_EBADFRAME;
    }
    v.kind = (uint32_t)s->kind;
    v.from = s->from.data;
    v.from_len = s->from.len;
    v.to = s->to.data;
    v.to_len = s->to.len;
    v.to_name = s->to_name;
    v.to_name_len = s->to_name ? strlen(s->to_name) : 0;
    v.ref = s->ref.data;
    v.ref_len = s->ref.len;
    v.payload = s->payload.data;
    v.payload_len = s->payload.len;
    v.flags = s->flags;
    v.behaviour = s->behaviour;
    v.behaviour_len = s->behaviour ? strlen(s->behaviour) : 0;
    return gr_dist_signal_on_view(c->d, c, &v);
}

/* The common case: a canonical Signal frame, read in place (sigframe.h). 1
 * handled, 0 not canonical (protobuf-c decodes it: on_frame), or an error. */
static int on_packed(dist_conn *c, const uint8_t *frame, size_t len)
{
    gr_sigframe sf;
    int r;

    if ((r = gr_sigframe_view(frame, len, &sf)) != 1) {
        return r;
    }
    return (r = gr_dist_signal_on_view(c->d, c, &sf)) < 0 ? r : 1;
}

/* A Signal frame whose payload the record layer put in message m: head is the
 * frame up to the payload. Takes m. */
static int on_split(dist_conn *c, const uint8_t *head, size_t head_len, girder_msg *m)
{
    gr_sigframe sf;
    int r;

    r = gr_sigframe_view_split(head, head_len, girder_msg_data(m), girder_msg_size(m), &sf);
    if (r != 1) {
        girder_msg_unref(m);
        return r < 0 ? r : GR_EBADFRAME; /* its layout said canonical Signal */
    }
    return gr_dist_signal_deliver(c->d, c, &sf, m);
}

/* Signals: only between members; big payloads are received into their
 * messages (payload_at, on_split). */
static const dist_kind signal_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_SIGNAL,
     .members_only = true,
     .on_packed = on_packed,
     .on_frame = gr_dist_signal_on_frame,
     .payload_at = gr_sigframe_head_len,
     .on_split = on_split},
};

const dist_proto gr_dist_signal_proto = {
    .name = "signal",
    .kinds = signal_kinds,
    .nkinds = sizeof(signal_kinds) / sizeof(signal_kinds[0]),
};
