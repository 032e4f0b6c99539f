/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_common.h - fixed keys, names and limits shared by the proto/ fuzz
 * harnesses and seedgen.c, so that seeds made by seedgen are valid input for
 * the harnesses (same record key, same handshake ephemerals and clock).
 */
#ifndef GR_FUZZ_COMMON_H
#define GR_FUZZ_COMMON_H

#include "proto/cookie.h"
#include "proto/frame.h"

#include <stdint.h>
#include <string.h>

/* Record key of the frame harness. */
static const uint8_t FUZZ_KEY[32] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

/* Ephemeral secrets of the two handshake sides. */
static const uint8_t FUZZ_SK_I[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t FUZZ_SK_R[32] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                                      2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
#define FUZZ_NAME_I "fuzz-i@host"
#define FUZZ_NAME_R "fuzz-r@host"
#define FUZZ_COOKIE "fuzz-cookie"
#define FUZZ_TIME 1700000000000ull

/* Small limits so that the size checks are reachable with short inputs. */
static const gr_limits FUZZ_LIMITS = {4096, 65536};

/* Harness mode byte: bit 0 selects the path, the rest the input chunk size. */
#define FUZZ_MODE_PATH(m) ((m)&1)
#define FUZZ_MODE_CHUNK(m) ((size_t)((m) >> 1) + 1)

static inline gr_cookie fuzz_cookie(void)
{
    gr_cookie c;

    c.len = strlen(FUZZ_COOKIE);
    memcpy(c.bytes, FUZZ_COOKIE, c.len);
    return c;
}

#endif
