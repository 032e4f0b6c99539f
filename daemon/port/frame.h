/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.h - the port wire (docs/ports.md): each frame is a 4-byte big-endian
 * length N followed by N bytes holding exactly one msgpack value (Erlang's
 * {packet, 4}). Pure functions, no allocation: used by port.c on the bytes a
 * port program writes to its stdout, and by the unit test and fuzzer.
 *
 * OFFSET  SIZE  DESCRIPTION
 * 0       4     N, unsigned, most significant byte first; 1..max
 * 4       N     one msgpack value (gr_term_validate: well-formed, depth <= 32)
 */
#ifndef GR_PORT_FRAME_H
#define GR_PORT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define GR_PORT_FRAME_HDR 4                   /* length prefix, bytes */
#define GR_PORT_FRAME_MAX_DEFAULT (16u << 20) /* largest payload accepted by default */

/* Decode the frame at the start of buf[0..len). Returns 1 with *ret_payload /
 * *ret_plen set to the payload (inside buf) and *ret_used to the bytes the
 * frame takes (header included); 0 if buf holds only part of a frame (nothing
 * set); GR_EFRAMETOOBIG if the announced length is 0 or above max (known
 * from the header alone, before any payload arrives); GR_EBADFRAME if the
 * payload is not exactly one well-formed msgpack value. Any thread. */
int gr_port_frame_decode(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **ret_payload,
                         size_t *ret_plen, size_t *ret_used);

/* Write the 4-byte header for a payload of plen bytes into hdr. */
void gr_port_frame_header(uint8_t hdr[GR_PORT_FRAME_HDR], uint32_t plen);

#endif
