/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_util.h - helpers shared by the tables tests: msgpack terms as small
 * value buffers, an injectable clock, a scratch data directory, keys that
 * collide under the public key hash.
 */
#ifndef GR_TABLES_TEST_UTIL_H
#define GR_TABLES_TEST_UTIL_H

#include <msgpack.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct term {
    uint8_t b[256]; /* encoded term */
    size_t n;       /* bytes */
} term;

static inline int term_write(void *data, const char *buf, size_t len)
{
    term *t = data;

    if (t->n + len > sizeof(t->b)) {
        return -1;
    }
    memcpy(t->b + t->n, buf, len);
    t->n += len;
    return 0;
}

static inline term T_str(const char *s)
{
    term t = {.n = 0};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &t, term_write);
    msgpack_pack_str_with_body(&pk, s, strlen(s));
    return t;
}

static inline term T_int(int64_t v)
{
    term t = {.n = 0};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &t, term_write);
    msgpack_pack_int64(&pk, v);
    return t;
}

/* The string PREFIX followed by v in decimal, zero-padded to 8 digits. */
static inline term T_fmt(const char *prefix, long v)
{
    char s[64];

    snprintf(s, sizeof(s), "%s%08ld", prefix, v);
    return T_str(s);
}

/* Read back an integer term. */
static inline int64_t T_get_int(const uint8_t *p, size_t n)
{
    msgpack_unpacked u;
    int64_t v = INT64_MIN;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p, n, NULL) == MSGPACK_UNPACK_SUCCESS) {
        if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            v = (int64_t)u.data.via.u64;
        } else if (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            v = u.data.via.i64;
        }
    }
    msgpack_unpacked_destroy(&u);
    return v;
}

/* The injected clock: tests move it by hand. */
static _Atomic uint64_t test_clock = 1800000000000ull;
static inline uint64_t test_now(void *ud)
{
    (void)ud;
    return atomic_load(&test_clock);
}

/* Hash flooding: gr_tkey_hash is unkeyed and its steps invert: for a
 * 15-byte str key (16 canonical bytes: two 64-bit words), any first word
 * and a target give the second word that makes the hash that target.
 * T_flood_key makes such keys; no store may index by that hash. */

#define T_M1 0xbf58476d1ce4e5b9ull
#define T_M2 0x94d049bb133111ebull
#define T_MW 0x9fb21c651e98df25ull

static inline uint64_t T_inv(uint64_t a) /* a odd: a^-1 mod 2^64 (Newton) */
{
    uint64_t x = a;

    for (int i = 0; i < 6; i++) {
        x *= 2 - a * x;
    }
    return x;
}

static inline uint64_t T_mix(uint64_t x) /* key.c's */
{
    x ^= x >> 30;
    x *= T_M1;
    x ^= x >> 27;
    x *= T_M2;
    x ^= x >> 31;
    return x;
}

static inline uint64_t T_unshift(uint64_t y, int s) /* inverse of x ^ (x >> s) */
{
    uint64_t x = y;

    for (int i = 0; i < 64 / s + 1; i++) {
        x = y ^ (x >> s);
    }
    return x;
}

static inline uint64_t T_unmix(uint64_t x)
{
    x = T_unshift(x, 31);
    x *= T_inv(T_M2);
    x = T_unshift(x, 27);
    x *= T_inv(T_M1);
    return T_unshift(x, 30);
}

/* Key i: a str of 15 bytes (7 bytes of i, 8 chosen), 16 canonical bytes,
 * whose public hash is the same for every i. */
static inline void T_flood_key(uint8_t k[16], uint64_t i)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (16 * 0xff51afd7ed558ccdull), w1, w2;

    k[0] = 0xa0 | 15;
    for (int b = 0; b < 7; b++) {
        k[1 + b] = (uint8_t)(i >> (8 * b));
    }
    memcpy(&w1, k, 8);
    h = (h ^ T_mix(w1)) * T_MW;
    w2 = T_unmix(h ^ 0x0123456789abcdefull);
    memcpy(k + 8, &w2, 8);
}

#endif
