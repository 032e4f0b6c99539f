/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sigq.c - the outgoing signal queue: process signals for other nodes, handed
 * from the scheduler threads that emit them to the dist thread that writes
 * them to the links.
 *
 * Design notes
 * - One growable byte buffer (d->sigq) under d->cmd_lock, the lock of the
 *   command queue, so that "is there work" stays one check for the loop. A
 *   signal is an entry header (node, sender, length) followed by its packed
 *   Signal frame: appending is one memcpy under the lock and no allocation,
 *   where a command per signal cost a malloc on the scheduler thread and a
 *   cross-thread free on the dist thread (a quarter of both at a million
 *   signals a second, docs/benchmarks.md).
 * - The dist thread swaps the whole buffer for its drained one under the
 *   lock and walks it unlocked, so producers never wait on the links.
 * - A frame larger than DIST_SIGQ_INLINE gets its own dist_cmd, of which only
 *   the pointer is queued: the frame's head packed there, plus a reference to
 *   the message whose bytes are the payload, so a 64 MiB message is not copied
 *   on the producer's thread at all; its bytes go from the message straight
 *   into the records (or fragments). Either way every signal of the node goes
 *   through this one FIFO: the order of a sender's signals to a node is the
 *   order of its pushes (docs/cluster.md, "Signals").
 * - Queued bytes are counted (counter sigq_bytes, the high-water mark in
 *   sigq_peak), and per destination node (d->node_pending), bodies held by
 *   reference included: a stalled dist thread shows there, not as silent
 *   memory growth, and the busy check of the sender's hook sees them
 *   (signal.c, conn.c "Overload").
 * - The taken buffer is handed out a slice at a time (DIST_SIGQ_SLICE bytes
 *   per loop pass, resumed from sigq_off): sealing a backlog for one link
 *   never keeps the loop from the heartbeats, reads and commands of the
 *   others for more than a slice. A stop takes the rest at once, so that
 *   signals queued before it go out before its Leave.
 *
 * Threads: gr_dist_sigq_push any thread; the rest the dist thread, or the
 * owner after the dist thread ended (gr_dist_sigq_free).
 */
#include "dist/dist_int.h"

#include "proto/err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIGQ_KEEP (4u << 20) /* a drained buffer above this is given back */

/* One queued signal; its frame (len bytes, padded to 8) follows when inline. */
typedef struct sigq_entry {
    uint32_t node_idx; /* destination node (runtime index) */
    uint32_t len;      /* inline frame bytes; 0: the frame is in cmd */
    girder_pid from;   /* sender: ordering behind its large signals */
    dist_cmd *cmd;     /* CMD_SIGNAL holding a frame above DIST_SIGQ_INLINE */
} sigq_entry;

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* Room for n more bytes in b (cmd_lock held). 0 or -ENOMEM. */
static int reserve(dist_sigbuf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 64u << 10;
    uint8_t *p;

    if (b->len + n <= b->cap) {
        return 0;
    }
    while (cap < b->len + n) {
        cap *= 2;
    }
    if ((p = realloc(b->p, cap)) == NULL) {
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int gr_dist_sigq_push(gr_dist *d, uint32_t node_idx, girder_pid from, const gr_sigframe *s,
                      girder_msg *payload)
{
    uint8_t frame[DIST_SIGQ_INLINE];
    sigq_entry e = {.node_idx = node_idx, .from = from};
    size_t flen = gr_sigframe_size(s), need = sizeof(e);
    int r;

    if (flen > DIST_SIGQ_INLINE) {
        /* Big: the command holds the frame's head and a reference to the
         * message whose bytes are the payload - no copy of them here - when
         * the payload ends the frame; otherwise the whole frame. */
        size_t head = payload != NULL ? gr_sigframe_head_size(s) : 0;

        if ((e.cmd = gr_dist_cmd_new(CMD_SIGNAL, head ? head : flen)) == NULL) {
            return -ENOMEM;
        }
        if (head) {
            gr_sigframe_pack_head(s, e.cmd->data);
            e.cmd->payload = girder_msg_ref(payload);
        } else {
            gr_sigframe_pack(s, e.cmd->data);
        }
        e.cmd->head_len = head ? head : flen;
        e.cmd->len = flen;
        e.cmd->node_idx = node_idx;
        e.cmd->from = from;
    } else {
        gr_sigframe_pack(s, frame);
        e.len = (uint32_t)flen;
        need += pad8(flen);
    }
    /* counted before it is queued: the dist thread may take it and subtract
     * as soon as the lock is released */
    DIST_CTR_ADD(d, sigq_bytes, flen);
    atomic_fetch_add_explicit(&d->node_pending[node_idx], flen, memory_order_relaxed);
    pthread_mutex_lock(&d->cmd_lock);
    if (atomic_load(&d->stopped)) {
        r = GR_ESTOPPED;
    } else if ((r = reserve(&d->sigq, need)) == 0) {
        memcpy(d->sigq.p + d->sigq.len, &e, sizeof(e));
        if (e.len) {
            memcpy(d->sigq.p + d->sigq.len + sizeof(e), frame, flen);
        }
        d->sigq.len += need;
    }
    pthread_mutex_unlock(&d->cmd_lock);
    if (r < 0) {
        DIST_CTR_SUB(d, sigq_bytes, flen);
        atomic_fetch_sub_explicit(&d->node_pending[node_idx], flen, memory_order_relaxed);
        gr_dist_cmd_free(e.cmd);
        return r;
    }
    gr_dist_wake(d);
    return 0;
}

/* Walk the taken buffer from d->sigq_off: every entry to its link (signal.c),
 * until at least `slice` bytes were handed out or the buffer ends. */
static void run_buf(gr_dist *d, size_t slice)
{
    dist_sigbuf *b = &d->sigq_work;
    size_t off = d->sigq_off, bytes = 0;

    while (off < b->len && bytes < slice) {
        sigq_entry e;
        size_t n;

        memcpy(&e, b->p + off, sizeof(e));
        off += sizeof(e);
        if (e.cmd) {
            n = e.cmd->len;
            if (!gr_dist_signal_cmd(d, e.cmd)) {
                gr_dist_cmd_free(e.cmd);
            }
        } else {
            n = e.len;
            gr_dist_signal_packed(d, e.node_idx, e.from, b->p + off, e.len);
            off += pad8(e.len);
        }
        bytes += n;
        if (e.node_idx < GR_DIST_NODES_MAX) {
            atomic_fetch_sub_explicit(&d->node_pending[e.node_idx], n, memory_order_relaxed);
        }
    }
    DIST_CTR_SUB(d, sigq_bytes, bytes);
    d->sigq_off = off;
}

void gr_dist_sigq_run(gr_dist *d, bool all)
{
    dist_sigbuf *w = &d->sigq_work;
    uint64_t queued;

    do {
        if (d->sigq_off >= w->len) {
            /* the slice before ended the buffer: take what was queued since,
             * giving the producers the drained buffer (or a new one) */
            w->len = 0;
            d->sigq_off = 0;
            if (w->cap > SIGQ_KEEP) {
                free(w->p);
                *w = (dist_sigbuf){0};
            }
            pthread_mutex_lock(&d->cmd_lock);
            if (d->sigq.len > 0) {
                dist_sigbuf t = d->sigq;

                d->sigq = *w;
                *w = t;
            }
            pthread_mutex_unlock(&d->cmd_lock);
            if (w->len == 0) {
                return;
            }
            /* what is really queued, bodies held by reference included */
            queued = __atomic_load_n(&d->ctr.sigq_bytes, __ATOMIC_RELAXED);
            if (queued > d->ctr.sigq_peak) {
                __atomic_store_n(&d->ctr.sigq_peak, queued, __ATOMIC_RELAXED);
            }
        }
        d->activity++;
        run_buf(d, all ? SIZE_MAX : DIST_SIGQ_SLICE);
    } while (all);
}

bool gr_dist_sigq_pending_locked(const gr_dist *d)
{
    return d->sigq.len > 0 || d->sigq_off < d->sigq_work.len;
}

void gr_dist_sigq_free(gr_dist *d)
{
    dist_sigbuf *bufs[] = {&d->sigq_work, &d->sigq};

    for (size_t i = 0; i < 2; i++) {
        dist_sigbuf *b = bufs[i];
        size_t off = i == 0 ? d->sigq_off : 0;

        while (off < b->len) {
            sigq_entry e;

            memcpy(&e, b->p + off, sizeof(e));
            off += sizeof(e) + (e.cmd ? 0 : pad8(e.len));
            gr_dist_cmd_free(e.cmd);
            DIST_CTR_ADD(d, signals_lost, 1);
        }
        free(b->p);
        *b = (dist_sigbuf){0};
    }
}
