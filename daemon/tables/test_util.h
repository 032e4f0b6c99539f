/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_util.h - helpers shared by the tables tests: msgpack terms as small
 * value buffers, an injectable clock, a scratch data directory.
 */
#ifndef GR_TABLES_TEST_UTIL_H
#define GR_TABLES_TEST_UTIL_H

#include <msgpack.h>
#include <stdatomic.h>
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

#endif
