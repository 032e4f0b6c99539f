/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handshake_int.h - test-only entry points of handshake.c (internal).
 *
 * Known-answer tests and fuzz harnesses need determinism: a fixed ephemeral key
 * and a fixed clock. Production code must call gr_handshake_new instead.
 */
#ifndef GR_HANDSHAKE_INT_H
#define GR_HANDSHAKE_INT_H

#include "proto/handshake.h"

/* gr_handshake_new with the ephemeral X25519 secret key `eph_sk` instead of a
 * random one, and `now_ms` instead of the wall clock wherever it is read. */
int gr_handshake_new_fixed(const gr_handshake_config *cfg, int role, const uint8_t eph_sk[32],
                           uint64_t now_ms, gr_handshake **ret_hs);

/* The transcript hash so far (BLAKE2b-512 of the label and every handshake
 * record absorbed), into out. */
void gr_handshake_transcript(const gr_handshake *hs, uint8_t out[64]);

#endif
