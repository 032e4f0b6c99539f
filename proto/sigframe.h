/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sigframe.h - the Signal frame without protobuf-c: a view decoder and an
 * encoder for the one frame kind that carries every process message between
 * nodes.
 *
 * A Signal frame is the Frame message with only its `signal` member (field 7)
 * set, as girder.proto defines it. The bytes are ordinary protobuf: the encoder
 * writes the canonical form (fields in number order, proto3 defaults left out)
 * that protobuf-c itself writes, so any peer's decoder reads it; the decoder
 * reads that canonical form in place - the view points into the caller's buffer,
 * nothing is allocated or copied - and declines (returns 0) anything else:
 * another frame kind, a field it does not know (a newer peer), a repeated field.
 * The caller then takes the general path (gr_frame_unpack), so the two paths
 * never disagree about what a frame means.
 *
 * Why: protobuf-c's unpack allocates the frame, the signal and every bytes
 * field (five or six mallocs and frees per message) and its pack walks the
 * descriptors twice (size, then bytes); at a million messages a second those
 * were a third of both dist threads (docs/benchmarks.md).
 *
 * The checks are those of gr_frame_check for a Signal: pid/ref fields are one
 * ext object of their type, the payload one well-formed term, and `to` and
 * `to_name` are not both set; to_name and behaviour are at most
 * GR_SIGFRAME_NAME_MAX bytes with no NUL (longer ones go the general path,
 * which the receiver refuses anyway).
 *
 * Threading: pure functions.
 */
#ifndef GR_SIGFRAME_H
#define GR_SIGFRAME_H

#include <stddef.h>
#include <stdint.h>

#define GR_SIGFRAME_NAME_MAX 255

/* One Signal frame's fields. Pointers borrow the frame's bytes (decoder) or the
 * caller's (encoder); a field left out has length 0. */
typedef struct gr_sigframe {
    uint32_t kind;       /* Girder__SignalKind value */
    const uint8_t *from; /* pid ext */
    size_t from_len;
    const uint8_t *to; /* pid ext; or to_name */
    size_t to_len;
    const char *to_name; /* not NUL-terminated in a decoded view */
    size_t to_name_len;
    const uint8_t *ref; /* ref ext */
    size_t ref_len;
    const uint8_t *payload; /* one msgpack term */
    size_t payload_len;
    uint32_t flags;        /* SPAWN_REQUEST / SPAWN_REPLY */
    const char *behaviour; /* SPAWN_REQUEST; not NUL-terminated in a decoded view */
    size_t behaviour_len;
} gr_sigframe;

/* Decode frame bytes buf[0..len) as a canonical Signal frame into *ret (which
 * then points into buf). 1: decoded and checked; 0: not one (use
 * gr_frame_unpack); GR_EBADFRAME: a Signal frame that fails the checks. */
int gr_sigframe_view(const uint8_t *buf, size_t len, gr_sigframe *ret);

/* The same for a frame held in two pieces: head[0..head_len), which ends where
 * the payload's bytes begin, and the payload (the frame's last field, its
 * whole rest). For big frames reassembled straight into a message buffer
 * (dist/large.c). payload_len 0: returns 0. */
int gr_sigframe_view_split(const uint8_t *head, size_t head_len, const uint8_t *payload,
                           size_t payload_len, gr_sigframe *ret);

/* Does buf[0..len), the first len bytes of a frame of `total` bytes, hold a
 * canonical Signal frame's head up to a payload that runs to the frame's end?
 * 1 and *ret_head (the payload's offset, <= len), or 0 (no: not a Signal frame,
 * not canonical, or the payload not within reach). Nothing is checked beyond
 * the layout; gr_sigframe_view_split checks the whole. */
int gr_sigframe_head_len(const uint8_t *buf, size_t len, size_t total, size_t *ret_head);

/* Bytes gr_sigframe_pack writes for s. */
size_t gr_sigframe_size(const gr_sigframe *s);

/* Write s as a Frame into out (gr_sigframe_size(s) bytes); returns that size. */
size_t gr_sigframe_pack(const gr_sigframe *s, uint8_t *out);

/* Bytes of the frame before the payload's bytes, or 0 when the payload is not
 * the frame's last field (no payload, or spawn fields set). */
size_t gr_sigframe_head_size(const gr_sigframe *s);

/* Write the frame's bytes up to where the payload's begin (the frame is these
 * plus the payload's bytes, which stay where they are: big messages are sent
 * without a copy of them). Returns the head's length, or 0 when the payload is
 * not the last field (no payload, or spawn fields set): use gr_sigframe_pack.
 * out needs gr_sigframe_size(s) - s->payload_len bytes. */
size_t gr_sigframe_pack_head(const gr_sigframe *s, uint8_t *out);

#endif
