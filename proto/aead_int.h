/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aead_int.h - the record ciphers behind one interface (internal to proto/;
 * record.c is the user, record.h fixes the record layout).
 *
 * A gr_aead is one direction's key, ready for one record at a time: either in
 * one call over a buffer in place (gr_aead_run), or - in girderd's libcrypto
 * build - as a stream of pieces between gr_aead_begin and gr_aead_finish, for
 * records whose plaintext is not in one place (gr_aead_can_stream).
 *
 * Nonce of a record: 4 zero bytes || its counter, 64-bit little-endian;
 * associated data: the record's 4 length bytes (record.h).
 *
 * Threading: a gr_aead belongs to the thread that owns its record half.
 */
#ifndef GR_AEAD_INT_H
#define GR_AEAD_INT_H

#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gr_aead gr_aead;

/* gr_record_cipher_fast: AES-128-OCB with AES instructions, libcrypto build. */
bool gr_aead_fast(int cipher);

/* A context of `cipher` keyed with key for sealing (enc) or opening, or NULL
 * (a cipher this build does not run, or no memory). */
gr_aead *gr_aead_new(int cipher, const uint8_t key[GR_KEY_BYTES], int enc);

/* Wipe the key and free. NULL-safe. */
void gr_aead_free(gr_aead *a);

/* Seal or open buf[0..len) in place under counter's nonce, with the 4 length
 * bytes hdr as associated data. Sealing writes the tag to tag; opening checks
 * it. 0, or GR_ECRYPTO (bad tag, or the library failed). */
int gr_aead_run(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr, uint8_t *buf, size_t len,
                uint8_t tag[GR_RECORD_TAG]);

/* Whether the streaming calls below work (false in the CLI's libsodium
 * build, where they return -ENOTSUP). */
bool gr_aead_can_stream(void);

/* Start a record: nonce from counter, associated data hdr. */
int gr_aead_begin(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr);

/* The next in[0..len) of the record's text, into out; *ret_n bytes written.
 * A cipher may hold back a partial block (AES-OCB does), which comes out at
 * the start of the next piece's output or at gr_aead_finish: pieces that are
 * whole blocks from a block boundary come out whole. out may equal in; it
 * must not otherwise overlap it. */
int gr_aead_update(gr_aead *a, uint8_t *out, const uint8_t *in, size_t len, size_t *ret_n);

/* End the record: what was held back into out (*ret_n bytes); sealing writes
 * the tag to tag, opening checks it (GR_ECRYPTO when it does not match). */
int gr_aead_finish(gr_aead *a, int enc, uint8_t *out, size_t *ret_n, uint8_t tag[GR_RECORD_TAG]);

#endif
