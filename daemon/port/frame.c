/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.c - the port wire's framing (frame.h): decode one {packet, 4} frame,
 * rejecting a length outside 1..max from the header alone and a payload that
 * is not exactly one msgpack value.
 */
#include "port/frame.h"

#include "proto/err.h"
#include "proto/term.h"

int gr_port_frame_decode(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **ret_payload,
                         size_t *ret_plen, size_t *ret_used)
{
    uint32_t n;

    if (len < GR_PORT_FRAME_HDR) {
        return 0;
    }
    n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (n == 0 || n > max) {
        return GR_EFRAMETOOBIG;
    }
    if (len - GR_PORT_FRAME_HDR < n) {
        return 0;
    }
    if (gr_term_validate(buf + GR_PORT_FRAME_HDR, n) < 0) {
        return GR_EBADFRAME;
    }
    *ret_payload = buf + GR_PORT_FRAME_HDR;
    *ret_plen = n;
    *ret_used = GR_PORT_FRAME_HDR + (size_t)n;
    return 1;
}

void gr_port_frame_header(uint8_t hdr[GR_PORT_FRAME_HDR], uint32_t plen)
{
    hdr[0] = (uint8_t)(plen >> 24);
    hdr[1] = (uint8_t)(plen >> 16);
    hdr[2] = (uint8_t)(plen >> 8);
    hdr[3] = (uint8_t)plen;
}
