/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kinds.c - what travels on the links: the table of protocols (rpc,
 * membership, process signals, large messages, the link's own heartbeats) and
 * of the frame kinds each owns, and the dispatch of every received frame to
 * its kind's handler.
 *
 * Design notes
 * - The link (conn.c) hands each frame here and knows no kind; a protocol
 *   hands frames to the link through the one send call (gr_dist_conn_send)
 *   and hears about links through its dist_proto hooks, as nng's transports
 *   hand pipes to protocols through an ops table. A new frame kind is a
 *   girder.proto field, one file with its dist_proto, and one row in
 *   BUILTIN below.
 * - The kind is read from the frame's first key (its oneof field number)
 *   before anything is decoded: a process signal, the common frame, is then
 *   viewed in place by its kind's on_packed, without protobuf-c's
 *   allocations. A frame whose first key says nothing useful, or whose kind
 *   declines the fast path, is decoded by gr_frame_unpack and dispatched by
 *   msg_case: both paths reach the same row, so they never disagree.
 * - A kind nobody registered (a newer peer's) is skipped, as before the
 *   table: links between versions stay up. members_only rows refuse hidden
 *   clients (GR_EBADFRAME: the link is closed) before their handler runs.
 * - The tables live in gr_dist, filled by gr_dist_new before the thread
 *   starts and read-only afterwards, so the dist thread reads them unlocked.
 *
 * Threading: gr_dist_protos_init and gr_dist_proto_add before gr_dist_start;
 * the rest the dist thread.
 */
#include "dist/dist_int.h"

#include "proto/err.h"

#include <errno.h>

/* The protocols of every node, in the order they hear of a link's close: the
 * large lane drops its queue first, rpc answers the link's calls, then the
 * member goes down. One row per protocol. */
static const dist_proto *const BUILTIN[] = {
    &gr_dist_link_proto,   &gr_dist_large_proto, &gr_dist_rpc_proto,   &gr_dist_mem_proto,
    &gr_dist_signal_proto, &gr_dist_repl_proto,  &gr_dist_probe_proto,
};

int gr_dist_proto_add(gr_dist *d, const dist_proto *p)
{
    if (d->nprotos == DIST_PROTOS_MAX) {
        return -ENOSPC;
    }
    for (size_t i = 0; i < p->nkinds; i++) {
        int k = p->kinds[i].kind;

        if (k <= 0 || k >= DIST_KINDS_MAX) {
            return -EINVAL;
        }
        if (d->kinds[k] != NULL) {
            return -EEXIST;
        }
        for (size_t j = 0; j < i; j++) {
            if (p->kinds[j].kind == k) {
                return -EEXIST;
            }
        }
    }
    for (size_t i = 0; i < p->nkinds; i++) {
        d->kinds[p->kinds[i].kind] = &p->kinds[i];
    }
    d->protos[d->nprotos++] = p;
    return 0;
}

int gr_dist_protos_init(gr_dist *d)
{
    int r;

    for (size_t i = 0; i < sizeof(BUILTIN) / sizeof(BUILTIN[0]); i++) {
        if ((r = gr_dist_proto_add(d, BUILTIN[i])) < 0) {
            return r;
        }
    }
    return 0;
}

/* The kind a frame's first key names (a length-delimited field, as every
 * member of Frame's oneof is), or 0. Reads at most len bytes. */
static int peek_kind(const uint8_t *p, size_t len)
{
    uint32_t key;

    if (len >= 1 && p[0] < 0x80) {
        key = p[0];
    } else if (len >= 2 && p[1] < 0x80) {
        key = (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
    } else {
        return 0;
    }
    if ((key & 7u) != 2u || (key >> 3) >= DIST_KINDS_MAX) {
        return 0;
    }
    return (int)(key >> 3);
}

/* The row for kind k as c may use it: NULL for an unknown kind. */
static const dist_kind *row(const dist_conn *c, int k)
{
    return k > 0 && k < DIST_KINDS_MAX ? c->d->kinds[k] : NULL;
}

int gr_dist_frame_in(dist_conn *c, const uint8_t *frame, size_t len)
{
    const dist_kind *k = row(c, peek_kind(frame, len));
    dist_link_stats *ls;
    Girder__Frame *f = NULL;
    int r;

    DIST_CTR_ADD(c->d, frames_in, 1);
    if (k == NULL || !k->quiet) {
        c->d->work++; /* not mere liveness: the loop may spin after it (dist_main) */
    }
    if ((ls = DIST_LINK(c)) != NULL) {
        dist_link_add(&ls->frames_in, 1);
    }
    if (k != NULL && k->on_packed != NULL) {
        if (k->members_only && c->hidden) {
            return GR_EBADFRAME;
        }
        if ((r = k->on_packed(c, frame, len)) != 0) {
            return r < 0 ? r : 0; /* handled in place */
        }
    }
    if ((r = gr_frame_unpack(frame, len, &f)) < 0) {
        return r;
    }
    k = row(c, (int)f->msg_case);
    if (k == NULL) {
        r = 0; /* a kind this version does not know: skipped */
    } else if (k->members_only && c->hidden) {
        r = GR_EBADFRAME;
    } else {
        r = k->on_frame ? k->on_frame(c, f) : 0;
    }
    gr_frame_free(f);
    return r;
}

int gr_dist_frame_split_in(dist_conn *c, const uint8_t *head, size_t head_len, girder_msg *payload)
{
    const dist_kind *k = row(c, peek_kind(head, head_len));
    dist_link_stats *ls;

    DIST_CTR_ADD(c->d, frames_in, 1);
    if ((ls = DIST_LINK(c)) != NULL) {
        dist_link_add(&ls->frames_in, 1);
    }
    if (k == NULL || k->on_split == NULL || (k->members_only && c->hidden)) {
        girder_msg_unref(payload);
        return GR_EBADFRAME; /* its kind's payload_at claimed it: cannot happen */
    }
    return k->on_split(c, head, head_len, payload);
}

int gr_dist_payload_at(void *ud, const uint8_t *frame, size_t have, size_t total, size_t *ret_head)
{
    gr_dist *d = ud;
    int kind = peek_kind(frame, have);
    const dist_kind *k = kind > 0 ? d->kinds[kind] : NULL;

    if (k == NULL || k->payload_at == NULL || k->on_split == NULL) {
        return 0;
    }
    return k->payload_at(frame, have, total, ret_head);
}

void gr_dist_protos_member_up(dist_conn *c)
{
    for (unsigned i = 0; i < c->d->nprotos && c->state == CONN_UP; i++) {
        if (c->d->protos[i]->member_up != NULL) {
            c->d->protos[i]->member_up(c);
        }
    }
}

void gr_dist_protos_closed(dist_conn *c, int err, const char *why)
{
    for (unsigned i = 0; i < c->d->nprotos; i++) {
        if (c->d->protos[i]->closed != NULL) {
            c->d->protos[i]->closed(c, err, why);
        }
    }
}

int gr_dist_protos_flush(dist_conn *c)
{
    int r;

    for (unsigned i = 0; i < c->d->nprotos; i++) {
        if (c->d->protos[i]->flush != NULL && (r = c->d->protos[i]->flush(c)) < 0) {
            return r;
        }
    }
    return 0;
}

size_t gr_dist_protos_held(const dist_conn *c)
{
    size_t n = 0;

    for (unsigned i = 0; i < c->d->nprotos; i++) {
        if (c->d->protos[i]->held != NULL) {
            n += c->d->protos[i]->held(c);
        }
    }
    return n;
}

bool gr_dist_protos_ready(const dist_conn *c)
{
    for (unsigned i = 0; i < c->d->nprotos; i++) {
        if (c->d->protos[i]->ready != NULL && c->d->protos[i]->ready(c)) {
            return true;
        }
    }
    return false;
}
