/* SPDX-License-Identifier: Apache-2.0 */
/*
 * large.c - the large lane of a link: big signals cut into Fragment frames and
 * sent a chunk at a time, so that small signals never wait behind them, and
 * their reassembly on the receiving side.
 *
 * Design notes
 * - A signal whose packed frame is larger than DIST_LARGE_MIN (or than the
 *   peer's max_frame) joins the link's large queue instead of the bulk lane.
 *   Every flush (once per loop iteration) appends at most one chunk
 *   (DIST_LARGE_CHUNK) of the head item to the bulk batch, after the small
 *   frames already there, and only while the socket's unsent output is below
 *   DIST_LARGE_OUT_HIGH and the peer has acknowledged all but
 *   DIST_LARGE_INFLIGHT bytes of fragments (FragmentAck, sent by the receiver
 *   once it has handled each one). The acknowledgement is what bounds the wait:
 *   the socket's own output is not all there is - on loopback the kernel takes
 *   up to ~10 MiB into its send and receive buffers, and a small signal behind
 *   that waited the better part of a second while a slow receiver worked it
 *   off. So a small signal queued while a 64 MiB message is being sent waits
 *   for at most DIST_LARGE_INFLIGHT bytes of fragments ahead of it, wherever
 *   they are, not for the whole message. Measured and documented in
 *   docs/cluster.md ("Large messages").
 * - Order between a pair of processes: once a sender has a signal in the large
 *   queue, its later signals on this link go behind it in the same queue (sent
 *   whole when small), until that sender has nothing left there. Other senders'
 *   small signals overtake freely - they have no order to keep with it.
 * - One fragmented frame at a time per direction: fragments of one id arrive
 *   in order, offset 0 first; the receiver reassembles them (at most
 *   DIST_LARGE_MAX) and then handles the frame as if it had arrived whole. A
 *   canonical Signal frame - what every Girder node sends - is reassembled as
 *   its head plus its payload written straight into the message the process
 *   will receive, so the end of a 64 MiB message costs no 64 MiB copy on the
 *   dist thread (the copy into fresh pages took a few hundred milliseconds on
 *   a VM, during which the link's small messages waited). Anything else goes
 *   into one buffer of the announced total and through the general decoder. Anything else is a
 * protocol error that closes the link.
 *
 * Threads: the dist thread only (every structure belongs to its dist_conn).
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "proto/frame.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One queued item: a packed frame, sent as fragments (frag_id != 0) or whole.
 * The bytes stay in the command that carried them from the hook (its head)
 * and in the message they came from (its payload): no copy. */
struct dist_large {
    dist_large *next;
    girder_pid from;  /* sender, for ordering (runtime indices) */
    uint64_t frag_id; /* 0: a small frame queued behind its sender's large one */
    size_t len, off;  /* frame bytes, bytes already sent */
    dist_cmd *cmd;    /* owns the bytes (gr_dist_cmd_span) */
};

static bool same_pid(girder_pid a, girder_pid b)
{
    return a.node == b.node && a.creation == b.creation && a.id == b.id;
}

bool gr_dist_large_holds(const dist_conn *c, girder_pid from)
{
    for (const dist_large *l = c->lg_head; l; l = l->next) {
        if (same_pid(l->from, from)) {
            return true;
        }
    }
    return false;
}

int gr_dist_large_push(dist_conn *c, dist_cmd *cmd)
{
    dist_large *l = malloc(sizeof(*l));
    size_t len = cmd->len;

    if (l == NULL) {
        return -ENOMEM;
    }
    l->next = NULL;
    l->from = cmd->from;
    l->frag_id = len >= DIST_LARGE_MIN || len > c->peer.limits.max_frame ? ++c->lg_next_id : 0;
    l->len = len;
    l->off = 0;
    l->cmd = cmd;
    if (c->lg_tail) {
        c->lg_tail->next = l;
    } else {
        c->lg_head = l;
    }
    c->lg_tail = l;
    c->lg_bytes += len;
    DIST_CTR_ADD(c->d, large_queued_bytes, len);
    c->dirty = true;
    gr_dist_schedule_flush(c->d);
    return 0;
}

/* Add up to one chunk of the large queue to the bulk batch. */
int gr_dist_large_pump(dist_conn *c)
{
    dist_large *l = c->lg_head;
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Fragment fr = GIRDER__FRAGMENT__INIT;
    size_t n;
    int r;

    if (!gr_dist_large_can_pump(c)) {
        return 0; /* on_write or the next FragmentAck calls us again */
    }
    if (l->frag_id == 0) {
        dist_piece pc[DIST_PIECES_MAX];

        if ((r = gr_dist_conn_send(c, DIST_LANE_BULK, pc, gr_dist_cmd_pieces(l->cmd, pc))) < 0) {
            return r;
        }
        n = l->len;
    } else {
        /* a chunk never straddles the command's head and payload: the first
         * one of a message sent from its buffer is just the head */
        const uint8_t *at;

        n = DIST_LARGE_CHUNK;
        at = gr_dist_cmd_span(l->cmd, l->off, &n);
        fr.id = l->frag_id;
        fr.offset = l->off;
        fr.total = l->len;
        fr.chunk.data = (uint8_t *)(uintptr_t)at; /* read only */
        fr.chunk.len = n;
        f.msg_case = GIRDER__FRAME__MSG_FRAGMENT;
        f.fragment = &fr;
        if ((r = gr_dist_conn_send(c, DIST_LANE_BULK, &(dist_piece){.frame = &f}, 1)) < 0) {
            return r;
        }
        c->lg_inflight += n;
    }
    l->off += n;
    DIST_CTR_SUB(c->d, large_queued_bytes, n);
    c->lg_bytes -= n;
    if (l->off == l->len) {
        c->lg_head = l->next;
        if (c->lg_head == NULL) {
            c->lg_tail = NULL;
        }
        gr_dist_cmd_free(l->cmd);
        free(l);
    }
    return 0;
}

bool gr_dist_large_pending(const dist_conn *c)
{
    return c->lg_head != NULL;
}

size_t gr_dist_large_biggest(const dist_conn *c)
{
    size_t most = 0;

    for (const dist_large *l = c->lg_head; l; l = l->next) {
        if (l->len - l->off > most) {
            most = l->len - l->off;
        }
    }
    return most;
}

bool gr_dist_large_any(const gr_dist *d)
{
    for (const dist_conn *c = d->conns; c; c = c->next) {
        if (c->lg_head != NULL || c->rx_id != 0) {
            return true;
        }
    }
    return false;
}

bool gr_dist_large_can_pump(const dist_conn *c)
{
    const dist_large *l = c->lg_head;

    return l != NULL && gr_dist_conn_pending(c) < DIST_LARGE_OUT_HIGH &&
           (l->frag_id == 0 || c->lg_inflight < DIST_LARGE_INFLIGHT);
}

static void rx_reset(dist_conn *c);

void gr_dist_large_free(dist_conn *c)
{
    while (c->lg_head) {
        dist_large *l = c->lg_head;

        c->lg_head = l->next;
        DIST_CTR_SUB(c->d, large_queued_bytes, l->len - l->off);
        DIST_CTR_ADD(c->d, signals_lost, 1);
        gr_dist_cmd_free(l->cmd);
        free(l);
    }
    c->lg_tail = NULL;
    c->lg_bytes = 0;
    c->lg_inflight = 0;
    rx_reset(c);
}

/* The peer acknowledged a fragment. 0 or an error (close c). */
static int on_ack(dist_conn *c, const Girder__Frame *f)
{
    const Girder__FragmentAck *ack = f->fragment_ack;

    if (c->hidden || (c->member == NULL && !c->retired) || ack->bytes > c->lg_inflight) {
        return GR_EBADFRAME; /* more acknowledged than was sent */
    }
    c->lg_inflight -= (size_t)ack->bytes;
    if (c->lg_head) {
        c->dirty = true; /* the next chunk */
        gr_dist_schedule_flush(c->d);
    }
    return 0;
}

/* ---- receiving ------------------------------------------------------------------------ */

/* Acknowledge a handled fragment on the control lane. */
static int ack(dist_conn *c, uint64_t id, size_t bytes)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__FragmentAck a = GIRDER__FRAGMENT_ACK__INIT;

    a.id = id;
    a.bytes = bytes;
    f.msg_case = GIRDER__FRAME__MSG_FRAGMENT_ACK;
    f.fragment_ack = &a;
    return gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
}

/* Drop the reassembly under way. */
static void rx_reset(dist_conn *c)
{
    free(c->rx_buf);
    c->rx_buf = NULL;
    free(c->rx_head);
    c->rx_head = NULL;
    c->rx_msg = girder_msg_unref(c->rx_msg);
    c->rx_msg_data = NULL;
    c->rx_head_len = 0;
    c->rx_id = 0;
}

/* A new fragmented frame of `total` bytes whose first chunk is first[0..len):
 * reassemble a canonical Signal frame's payload straight into a message (no
 * copy at the end; sigframe.h), anything else into one plain buffer. */
static int rx_start(dist_conn *c, const uint8_t *first, size_t len, size_t total)
{
    size_t head = 0;

    if (gr_sigframe_head_len(first, len, total, &head) == 1 &&
        (c->rx_head = malloc(head)) != NULL &&
        (c->rx_msg = gr_rt_msg_alloc(total - head, &c->rx_msg_data)) != NULL) {
        c->rx_head_len = head;
        return 0;
    }
    free(c->rx_head);
    c->rx_head = NULL;
    return (c->rx_buf = malloc(total)) == NULL ? -ENOMEM : 0;
}

/* Copy bytes [off, off + len) of the frame into place. */
static void rx_put(dist_conn *c, size_t off, const uint8_t *p, size_t len)
{
    size_t n;

    if (c->rx_buf) {
        memcpy(c->rx_buf + off, p, len);
        return;
    }
    if (off < c->rx_head_len) {
        n = c->rx_head_len - off < len ? c->rx_head_len - off : len;
        memcpy(c->rx_head + off, p, n);
        off += n;
        p += n;
        len -= n;
    }
    if (len > 0) {
        memcpy(c->rx_msg_data + (off - c->rx_head_len), p, len);
    }
}

/* The whole frame is in: handle it as if it had arrived whole. */
static int rx_finish(dist_conn *c)
{
    Girder__Frame *f = NULL;
    gr_sigframe sf;
    girder_msg *m;
    int r;

    if (c->rx_msg) {
        r = gr_sigframe_view_split(c->rx_head, c->rx_head_len, c->rx_msg_data,
                                   c->rx_total - c->rx_head_len, &sf);
        if (r == 1) {
            m = c->rx_msg;
            c->rx_msg = NULL;
            return gr_dist_signal_deliver(c->d, c, &sf, m); /* takes m */
        }
        return r < 0 ? r : GR_EBADFRAME; /* its head was canonical, so is the whole */
    }
    /* Only process signals travel in pieces: viewed in place, or through
     * protobuf-c when the view declines. */
    if ((r = gr_sigframe_view(c->rx_buf, c->rx_total, &sf)) == 1) {
        return gr_dist_signal_on_view(c->d, c, &sf);
    }
    if (r == 0 && (r = gr_frame_unpack(c->rx_buf, c->rx_total, &f)) == 0) {
        r = f->msg_case == GIRDER__FRAME__MSG_SIGNAL ? gr_dist_signal_on_frame(c, f) : GR_EBADFRAME;
        gr_frame_free(f);
    }
    return r;
}

/* A Fragment frame arrived. 0 or an error (close c). */
static int on_fragment(dist_conn *c, const Girder__Frame *f)
{
    const Girder__Fragment *fr = f->fragment;
    int r;

    if (c->hidden || (c->member == NULL && !c->retired) || fr->id == 0) {
        return GR_EBADFRAME;
    }
    if (c->rx_id == 0) {
        /* a new frame: offset 0, a sane total */
        if (fr->offset != 0 || fr->total > DIST_LARGE_MAX) {
            return fr->total > DIST_LARGE_MAX ? GR_EFRAMETOOBIG : GR_EBADFRAME;
        }
        if ((r = rx_start(c, fr->chunk.data, fr->chunk.len, fr->total)) < 0) {
            return r;
        }
        c->rx_id = fr->id;
        c->rx_total = fr->total;
        c->rx_have = 0;
    }
    if (fr->id != c->rx_id || fr->total != c->rx_total || fr->offset != c->rx_have ||
        fr->chunk.len > c->rx_total - c->rx_have) {
        return GR_EBADFRAME;
    }
    rx_put(c, c->rx_have, fr->chunk.data, fr->chunk.len);
    c->rx_have += fr->chunk.len;
    if ((r = ack(c, fr->id, fr->chunk.len)) < 0) {
        return r;
    }
    if (c->rx_have < c->rx_total) {
        return 0;
    }
    r = rx_finish(c);
    rx_reset(c);
    return r;
}

static void on_closed(dist_conn *c, int err, const char *why)
{
    (void)err;
    (void)why;
    gr_dist_large_free(c);
}

static const dist_kind large_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_FRAGMENT, .members_only = true, .on_frame = on_fragment},
    {.kind = GIRDER__FRAME__MSG_FRAGMENT_ACK, .members_only = true, .on_frame = on_ack},
};

static size_t held(const dist_conn *c)
{
    return c->lg_bytes;
}

/* Large messages: fragments and their acknowledgements, between members; the
 * lane is a paced sender (flush, held, ready). */
const dist_proto gr_dist_large_proto = {
    .name = "large",
    .kinds = large_kinds,
    .nkinds = sizeof(large_kinds) / sizeof(large_kinds[0]),
    .closed = on_closed,
    .flush = gr_dist_large_pump,
    .held = held,
    .ready = gr_dist_large_can_pump,
};
