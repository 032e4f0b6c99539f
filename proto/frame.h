/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.h - frames and batches: what one encrypted record carries.
 *
 * A frame is one packed girder.Frame protobuf message (proto/girder.proto). The
 * sender appends frames to a batch, the plaintext of one record, and seals the
 * whole batch at once (proto/record.h), so encryption and the write syscall are
 * paid per batch, not per frame. Inside a batch every frame is length-prefixed:
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     frame length N, unsigned big-endian, N <= max_frame
 *   4       N     girder.Frame, protobuf encoding
 *   4+N     ...   next frame, until the end of the record plaintext
 *
 * Priority lanes are the caller's: keep two batches (say control and bulk) and
 * seal them in the order they must arrive; records are delivered in order.
 * Messages larger than max_frame are cut by the caller into Fragment frames.
 *
 * Threading: a gr_batch belongs to one thread (the connection's owner); the
 * free functions here are pure and may run anywhere.
 */
#ifndef GR_FRAME_H
#define GR_FRAME_H

#include "proto/girder.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define GR_FRAME_HDR 4                    /* frame length prefix inside a batch */
#define GR_FRAME_MAX_DEFAULT (8u << 20)   /* 8 MiB: largest frame by default */
#define GR_FRAME_MAX_MIN 4096u            /* smallest max_frame a peer may ask for */
#define GR_RECORD_MAX_DEFAULT (16u << 20) /* 16 MiB: largest record by default */
#define GR_RECORD_MAX_LIMIT (1u << 30)    /* hard ceiling for any configured max_record */
#define GR_RECORD_OVERHEAD_MIN (4u + 16u) /* a record's room around one frame: prefix + tag */

/* Size limits of one receiving side; each side advertises its own in the hello. */
typedef struct gr_limits {
    uint32_t max_frame;  /* largest frame (protobuf bytes, prefix excluded); 0: default */
    uint32_t max_record; /* largest record ciphertext (tag included); 0: default */
} gr_limits;

/* A batch of frames waiting to be sealed into one record. Opaque. */
typedef struct gr_batch gr_batch;

/* Fill *ret_lim from `in` (NULL: all defaults), replacing zero fields by the
 * defaults. Returns 0, or -EINVAL (*ret_lim untouched) unless
 * GR_FRAME_MAX_MIN <= max_frame, max_record <= GR_RECORD_MAX_LIMIT and
 * max_record >= max_frame + GR_FRAME_HDR + 16 (one full frame fits a record). */
int gr_frame_limits_resolve(const gr_limits *in, gr_limits *ret_lim);

/* New empty batch that will respect `lim` (NULL: defaults); pass the limits the
 * peer advertised (gr_handshake_peer.limits). Allocates only the struct; the
 * buffer grows as frames are added. Returns 0, -EINVAL (bad limits) or -ENOMEM. */
int gr_batch_new(const gr_limits *lim, gr_batch **ret_b);

/* Free the batch and its buffer. NULL-safe. */
void gr_batch_free(gr_batch *b);

/* Pack frame `f` at the end of the batch. If the batch was sealed, it is emptied
 * first (the sealed record becomes invalid). Returns 0; GR_EFRAMETOOBIG if the
 * packed frame exceeds max_frame (fragment it); -ENOBUFS if the batch is not
 * empty and the frame would push the record past max_record (seal, then add
 * again); -ENOMEM. On error the batch is unchanged. The frame stays the caller's. */
int gr_batch_add(gr_batch *b, const Girder__Frame *f);

/* Same as gr_batch_add for an already packed frame frame[0..len) (e.g. one being
 * forwarded). The bytes are copied; they are not checked. */
int gr_batch_add_packed(gr_batch *b, const void *frame, size_t len);
/* The same for a frame held in two pieces, head then tail: both are copied. */
int gr_batch_add_packed_copy(gr_batch *b, const void *head, size_t head_len, const void *tail,
                             size_t tail_len);

/* Releases a reference held by a batch (gr_batch_add_packed_ref). */
typedef void (*gr_batch_release_fn)(void *owner);

/* gr_batch_add_packed_copy, but the tail is referenced, not copied: sealing
 * encrypts it from where it is, which saves a pass over it (a message payload
 * is then read once, by the cipher). tail must stay valid and unchanged until
 * the batch releases it: on success the batch takes over the caller's
 * reference `owner` and calls release(owner) once, at the next gr_batch_reset
 * or gr_batch_free (sealed or not). On error the caller keeps it. Errors as
 * gr_batch_add, or -EINVAL (release NULL). */
int gr_batch_add_packed_ref(gr_batch *b, const void *head, size_t head_len, const void *tail,
                            size_t tail_len, gr_batch_release_fn release, void *owner);

/* Number of frames in the open (unsealed) batch; 0 after a seal or reset. */
size_t gr_batch_count(const gr_batch *b);

/* Plaintext bytes in the open batch (prefixes included); 0 after a seal or reset. */
size_t gr_batch_size(const gr_batch *b);

/* Drop the batch's frames (or sealed record), release its referenced tails
 * and give a large buffer back. */
void gr_batch_reset(gr_batch *b);

/* Decode one frame from buf[0..len) (as yielded by gr_record_next) and check it
 * with gr_frame_check. Returns 0 and sets *ret_f (free with gr_frame_free), or
 * GR_EBADFRAME / GR_EBADTERM (*ret_f untouched). A frame of a kind this version
 * does not know decodes with msg_case == GIRDER__FRAME__MSG__NOT_SET: skip it.
 * Allocates with malloc; amplification over len is bounded by protobuf-c. */
int gr_frame_unpack(const void *buf, size_t len, Girder__Frame **ret_f);

/* Free a frame from gr_frame_unpack. NULL-safe. */
void gr_frame_free(Girder__Frame *f);

/* Check the rules protobuf cannot express (docs/protocol.md, "Frames"): node
 * names well-formed, pids/refs well-formed ext bytes, every msgpack payload one
 * well-formed term (gr_term_validate), fragment ranges inside their total.
 * Returns 0, GR_EBADFRAME or GR_EBADTERM. Pure. */
int gr_frame_check(const Girder__Frame *f);

#endif
