/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame_int.h - batch internals shared with record.c (internal).
 *
 * A batch buffer is laid out so that sealing happens in place, without a copy:
 *
 *   OFFSET         SIZE  DESCRIPTION
 *   0              4     room for the record length (written by the seal)
 *   4              len   frames, each GR_FRAME_HDR + N bytes (frame.h)
 *   4+len          16    room for the Poly1305 tag (written by the seal)
 *
 * After gr_record_seal the same bytes are the whole record, sealed bytes long.
 *
 * A referenced tail (gr_batch_add_packed_ref) has its room in that layout but
 * is not written there; it is listed in `refs`, in plaintext order. A batch
 * with refs is sealed into `obuf` instead (same layout), the cipher reading
 * the plaintext from buf and from each tail in turn.
 */
#ifndef GR_FRAME_INT_H
#define GR_FRAME_INT_H

#include "proto/frame.h"

/* Room a batch keeps around its plaintext for the record that seals it in
 * place: the length prefix in front (= GR_RECORD_HDR) and the tag behind
 * (= GR_RECORD_TAG; record.c asserts both). */
#define GR_BATCH_HEADROOM 4
#define GR_BATCH_TAILROOM 16

/* A referenced tail: plaintext bytes [off, off + len) live at p. */
typedef struct gr_batch_ref {
    size_t off;       /* offset in the plaintext (from buf + GR_BATCH_HEADROOM) */
    size_t len;       /* bytes */
    const uint8_t *p; /* the bytes, kept alive by owner */
    void *owner;      /* released with the batch's release function */
} gr_batch_ref;

struct gr_batch {
    uint8_t *buf;                /* the layout above; NULL until the first frame */
    size_t cap;                  /* bytes allocated at buf */
    size_t len;                  /* plaintext bytes at buf + 4 */
    size_t count;                /* frames in the plaintext */
    size_t sealed;               /* record length at buf once sealed; 0 while open */
    gr_limits lim;               /* limits of the receiving side, resolved */
    gr_batch_ref *refs;          /* referenced tails, in offset order */
    size_t nrefs, refs_cap;      /* used / allocated entries */
    gr_batch_release_fn release; /* of every owner in refs (one function per batch) */
    uint8_t *obuf;               /* the sealed record of a batch with refs */
    size_t ocap;                 /* bytes allocated at obuf */
};

/* Walk a record plaintext buf[0..len): at *io_off, yield the next frame.
 * Returns 1 (frame at *ret_frame, *ret_len bytes; *io_off advanced), 0 at the
 * end, GR_EFRAMETOOBIG if the prefix exceeds max_frame, GR_EBADFRAME if the
 * prefix is truncated or runs past len. Outputs untouched unless 1. */
int gr_frame_next(const uint8_t *buf, size_t len, size_t *io_off, uint32_t max_frame,
                  const uint8_t **ret_frame, size_t *ret_len);

#endif
