/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.c - frame batches (sender side), frame walking and decoding (receiver
 * side), and the frame rules protobuf cannot express.
 *
 * Design notes
 * - The batch buffer keeps GR_BATCH_HEADROOM bytes free in front of the frames
 *   and GR_BATCH_TAILROOM bytes free behind them (frame_int.h), room for the
 *   record's length and tag, so record.c seals it in place: one buffer, one
 *   pass, no copy per flush. This file knows those two sizes only; the record
 *   layer (record.c) builds on batches, never the other way round.
 * - Sizes are checked before the buffer grows: a frame over max_frame or a
 *   record over max_record is refused while nothing has changed yet.
 * - A batch that once grew past BATCH_KEEP gives its buffer back on reset, so a
 *   connection that sent one large message does not hold that memory forever.
 * - gr_frame_check runs after protobuf decoding; protobuf-c already enforced
 *   wire types and UTF-8-free byte strings, this adds Girder's rules.
 */
#include "proto/frame.h"

#include "proto/err.h"
#include "proto/frame_int.h"
#include "proto/nodename.h"
#include "proto/term.h"
#include "proto/wire_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Buffers above this are freed on reset. A bulk lane's record (the daemon
 * seals at 256 KiB, so up to that plus one frame) stays below it: a stream of
 * 64 KiB messages reuses one buffer instead of growing one from 4 KiB per
 * record. */
#define BATCH_KEEP (512u << 10)
#define BATCH_MIN 4096u /* first allocation */

int gr_frame_limits_resolve(const gr_limits *in, gr_limits *ret_lim)
{
    gr_limits l = {GR_FRAME_MAX_DEFAULT, 0};

    if (in != NULL && in->max_frame != 0) {
        l.max_frame = in->max_frame;
    }
    if (in != NULL && in->max_record != 0) {
        l.max_record = in->max_record;
    } else {
        l.max_record = GR_RECORD_MAX_DEFAULT;
        if (l.max_frame > GR_RECORD_MAX_DEFAULT - GR_RECORD_OVERHEAD_MIN) {
            l.max_record = GR_RECORD_MAX_LIMIT;
        }
    }
    if (l.max_frame < GR_FRAME_MAX_MIN || l.max_record > GR_RECORD_MAX_LIMIT ||
        l.max_record < (uint64_t)l.max_frame + GR_FRAME_HDR + GR_BATCH_TAILROOM) {
        return -EINVAL;
    }
    *ret_lim = l;
    return 0;
}

int gr_batch_new(const gr_limits *lim, gr_batch **ret_b)
{
    gr_limits l;
    gr_batch *b;
    int r;

    if ((r = gr_frame_limits_resolve(lim, &l)) < 0) {
        return r;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        return -ENOMEM;
    }
    b->lim = l;
    *ret_b = b;
    return 0;
}

static void release_refs(gr_batch *b)
{
    for (size_t i = 0; i < b->nrefs; i++) {
        b->release(b->refs[i].owner);
    }
    b->nrefs = 0;
}

void gr_batch_free(gr_batch *b)
{
    if (b == NULL) {
        return;
    }
    release_refs(b);
    free(b->refs);
    free(b->obuf);
    free(b->buf);
    free(b);
}

void gr_batch_reset(gr_batch *b)
{
    release_refs(b);
    b->len = 0;
    b->count = 0;
    b->sealed = 0;
    if (b->cap > BATCH_KEEP) {
        free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
    if (b->ocap > BATCH_KEEP) {
        free(b->obuf);
        b->obuf = NULL;
        b->ocap = 0;
    }
}

size_t gr_batch_count(const gr_batch *b)
{
    return b->sealed ? 0 : b->count;
}

size_t gr_batch_size(const gr_batch *b)
{
    return b->sealed ? 0 : b->len;
}

/*
 * Make room for one more frame of n bytes. Returns 0 with the buffer large
 * enough, GR_EFRAMETOOBIG, -ENOBUFS or -ENOMEM with the batch unchanged.
 */
static int reserve(gr_batch *b, size_t n)
{
    size_t need, cap;
    uint8_t *p;

    if (b->sealed) {
        gr_batch_reset(b);
    }
    if (n > b->lim.max_frame) {
        return GR_EFRAMETOOBIG;
    }
    /* plaintext + tag must stay within max_record; cannot fail for an empty batch */
    if (b->len + GR_FRAME_HDR + n + GR_BATCH_TAILROOM > b->lim.max_record) {
        return -ENOBUFS;
    }
    need = GR_BATCH_HEADROOM + b->len + GR_FRAME_HDR + n + GR_BATCH_TAILROOM;
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap > BATCH_MIN ? b->cap : BATCH_MIN;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > (size_t)GR_BATCH_HEADROOM + b->lim.max_record) {
        cap = (size_t)GR_BATCH_HEADROOM + b->lim.max_record;
    }
    if ((p = realloc(b->buf, cap)) == NULL) {
        return -ENOMEM;
    }
    b->buf = p;
    b->cap = cap;
    return 0;
}

int gr_batch_add(gr_batch *b, const Girder__Frame *f)
{
    size_t n = girder__frame__get_packed_size(f);
    uint8_t *at;
    int r;

    if ((r = reserve(b, n)) < 0) {
        return r;
    }
    at = b->buf + GR_BATCH_HEADROOM + b->len;
    gr_wire_put_be32(at, (uint32_t)n);
    girder__frame__pack(f, at + GR_FRAME_HDR);
    b->len += GR_FRAME_HDR + n;
    b->count++;
    return 0;
}

/* Append a frame of head_len + tail_len bytes, room reserved: its length
 * prefix and head are written; returns where its tail goes. */
static uint8_t *put_frame(gr_batch *b, const void *head, size_t head_len, size_t tail_len)
{
    uint8_t *at = b->buf + GR_BATCH_HEADROOM + b->len;

    gr_wire_put_be32(at, (uint32_t)(head_len + tail_len));
    if (head_len > 0) {
        memcpy(at + GR_FRAME_HDR, head, head_len);
    }
    b->len += GR_FRAME_HDR + head_len + tail_len;
    b->count++;
    return at + GR_FRAME_HDR + head_len;
}

int gr_batch_add_packed_copy(gr_batch *b, const void *head, size_t head_len, const void *tail,
                             size_t tail_len)
{
    uint8_t *at;
    int r;

    if ((r = reserve(b, head_len + tail_len)) < 0) {
        return r;
    }
    at = put_frame(b, head, head_len, tail_len);
    if (tail_len > 0) {
        memcpy(at, tail, tail_len);
    }
    return 0;
}

int gr_batch_add_packed_ref(gr_batch *b, const void *head, size_t head_len, const void *tail,
                            size_t tail_len, gr_batch_release_fn release, void *owner)
{
    gr_batch_ref *ref;
    uint8_t *at;
    int r;

    if (release == NULL || (b->nrefs > 0 && release != b->release)) {
        return -EINVAL;
    }
    if ((r = reserve(b, head_len + tail_len)) < 0) {
        return r;
    }
    if (b->nrefs == b->refs_cap) {
        size_t cap = b->refs_cap ? 2 * b->refs_cap : 8;
        gr_batch_ref *p = realloc(b->refs, cap * sizeof(*p));

        if (p == NULL) {
            return -ENOMEM;
        }
        b->refs = p;
        b->refs_cap = cap;
    }
    at = put_frame(b, head, head_len, tail_len); /* the tail's room, left unwritten */
    ref = &b->refs[b->nrefs++];
    ref->off = (size_t)(at - (b->buf + GR_BATCH_HEADROOM));
    ref->len = tail_len;
    ref->p = tail;
    ref->owner = owner;
    b->release = release;
    return 0;
}

int gr_batch_add_packed(gr_batch *b, const void *frame, size_t len)
{
    return gr_batch_add_packed_copy(b, frame, len, NULL, 0);
}

int gr_frame_next(const uint8_t *buf, size_t len, size_t *io_off, uint32_t max_frame,
                  const uint8_t **ret_frame, size_t *ret_len)
{
    size_t off = *io_off;
    uint32_t n;

    if (off >= len) {
        return 0;
    }
    if (len - off < GR_FRAME_HDR) {
        return GR_EBADFRAME;
    }
    n = gr_wire_get_be32(buf + off);
    if (n > max_frame) {
        return GR_EFRAMETOOBIG;
    }
    if (n > len - off - GR_FRAME_HDR) {
        return GR_EBADFRAME;
    }
    *ret_frame = buf + off + GR_FRAME_HDR;
    *ret_len = n;
    *io_off = off + GR_FRAME_HDR + n;
    return 1;
}

int gr_frame_unpack(const void *buf, size_t len, Girder__Frame **ret_f)
{
    Girder__Frame *f;
    int r;

    f = girder__frame__unpack(NULL, len, buf);
    if (f == NULL) {
        return GR_EBADFRAME;
    }
    if ((r = gr_frame_check(f)) < 0) {
        girder__frame__free_unpacked(f, NULL);
        return r;
    }
    *ret_f = f;
    return 0;
}

void gr_frame_free(Girder__Frame *f)
{
    if (f != NULL) {
        girder__frame__free_unpacked(f, NULL);
    }
}

/* An optional msgpack term: empty, or exactly one well-formed term. */
static int check_term(const ProtobufCBinaryData *d)
{
    return d->len == 0 ? 0 : gr_term_validate(d->data, d->len);
}

/* An optional pid/ref: empty, or one ext object of the given type. */
static int check_id(const ProtobufCBinaryData *d, int ext_type)
{
    gr_term_id id;

    if (d->len == 0) {
        return 0;
    }
    return gr_term_decode_id(d->data, d->len, ext_type, &id) < 0 ? GR_EBADFRAME : 0;
}

static int check_name(const char *s)
{
    return gr_nodename_check(s, strlen(s)) < 0 ? GR_EBADFRAME : 0;
}

static int check_member(const Girder__Member *m)
{
    size_t hl;

    if (m == NULL || check_name(m->name) < 0) {
        return GR_EBADFRAME;
    }
    hl = strlen(m->host);
    if (hl == 0 || hl > GR_NODENAME_MAX || m->port == 0 || m->port > 65535) {
        return GR_EBADFRAME;
    }
    return 0;
}

static int check_members(const Girder__MemberList *ml)
{
    for (size_t i = 0; i < ml->n_members; i++) {
        if (check_member(ml->members[i]) < 0) {
            return GR_EBADFRAME;
        }
    }
    return 0;
}

static int check_signal(const Girder__Signal *s)
{
    int r;

    if (s->to.len > 0 && s->to_name[0] != '\0') {
        return GR_EBADFRAME; /* one target, not two */
    }
    if ((r = check_id(&s->from, GR_TERM_EXT_PID)) < 0 ||
        (r = check_id(&s->to, GR_TERM_EXT_PID)) < 0 ||
        (r = check_id(&s->ref, GR_TERM_EXT_REF)) < 0) {
        return r;
    }
    return check_term(&s->payload);
}

static int check_fragment(const Girder__Fragment *fr)
{
    if (fr->chunk.len == 0 || fr->total == 0 || fr->offset >= fr->total ||
        fr->chunk.len > fr->total - fr->offset) {
        return GR_EBADFRAME;
    }
    return 0;
}

/*
 * protobuf-c keeps an unknown field numbered 0 when its tag was written in
 * more than one byte, but refuses the one-byte tag it packs it back as: such a
 * frame would decode here and break the link of the next hop it is forwarded
 * to. Field 0 is invalid protobuf; refuse it at any depth (the schema is not
 * recursive, so the depth is that of the schema).
 */
static int check_unknown(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;

    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        if (m->unknown_fields[i].tag == 0) {
            return GR_EBADFRAME;
        }
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];

        if (fd->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
            ProtobufCMessage *const *v =
                *(ProtobufCMessage *const *const *)(const void *)(base + fd->offset);

            for (size_t j = 0; j < n; j++) {
                if (v[j] != NULL && check_unknown(v[j]) < 0) {
                    return GR_EBADFRAME;
                }
            }
            continue;
        }
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + fd->quantifier_offset) != fd->id) {
            continue;
        }
        {
            const ProtobufCMessage *sub =
                *(ProtobufCMessage *const *)(const void *)(base + fd->offset);

            if (sub != NULL && check_unknown(sub) < 0) {
                return GR_EBADFRAME;
            }
        }
    }
    return 0;
}

static int check_kind(const Girder__Frame *f)
{
    switch (f->msg_case) {
    case GIRDER__FRAME__MSG__NOT_SET:
    case GIRDER__FRAME__MSG_HEARTBEAT:
        return 0;
    case GIRDER__FRAME__MSG_MEMBERS:
        return check_members(f->members);
    case GIRDER__FRAME__MSG_JOIN:
        return check_member(f->join->member);
    case GIRDER__FRAME__MSG_LEAVE:
        return check_name(f->leave->name);
    case GIRDER__FRAME__MSG_RPC_REQUEST:
        if (f->rpc_request->module[0] == '\0' || f->rpc_request->function[0] == '\0') {
            return GR_EBADFRAME;
        }
        return check_term(&f->rpc_request->args);
    case GIRDER__FRAME__MSG_RPC_REPLY:
        if (f->rpc_reply->status > 0) {
            return GR_EBADFRAME;
        }
        return check_term(&f->rpc_reply->result);
    case GIRDER__FRAME__MSG_SIGNAL:
        return check_signal(f->signal);
    case GIRDER__FRAME__MSG_FRAGMENT:
        return check_fragment(f->fragment);
    case GIRDER__FRAME__MSG_FRAGMENT_ACK:
        return f->fragment_ack->id == 0 || f->fragment_ack->bytes == 0 ? GR_EBADFRAME : 0;
    default:
        return 0; /* a oneof member newer than this code: the caller skips it */
    }
}

int gr_frame_check(const Girder__Frame *f)
{
    if (check_unknown(&f->base) < 0) {
        return GR_EBADFRAME;
    }
    return check_kind(f);
}
