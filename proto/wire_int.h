/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_int.h - byte-order helpers shared by the proto/ sources (internal).
 *
 * Every length on the wire is an unsigned 32-bit big-endian integer; the record
 * nonce counter is little-endian (as in RFC 8439 and WireGuard). Nothing here
 * checks bounds: callers have.
 */
#ifndef GR_WIRE_INT_H
#define GR_WIRE_INT_H

#include <stdint.h>

/* Store v big-endian at p[0..4). */
static inline void gr_wire_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Load a big-endian u32 from p[0..4). */
static inline uint32_t gr_wire_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Store v little-endian at p[0..8). */
static inline void gr_wire_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

#endif
