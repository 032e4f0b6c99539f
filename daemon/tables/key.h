/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key.h - table keys: the canonical msgpack encoding of a key, the total order
 * of keys ("msgpack order", docs/tables.md) and the key hash.
 *
 * A key is any one msgpack term. Two keys are the same key when their canonical
 * encodings are byte-equal: integers in their shortest form, floats as float64,
 * strings/binaries/arrays/maps/exts with their shortest headers. So 1 written
 * as a uint16 and as a positive fixint is one key, while 1 and 1.0 are two keys
 * (1 sorts first). Pure functions; any thread.
 */
#ifndef GR_TABLES_KEY_H
#define GR_TABLES_KEY_H

#include <stddef.h>
#include <stdint.h>

#define GR_TKEY_MAX 65535u  /* longest canonical key, bytes */
#define GR_TKEY_INLINE 120u /* keys up to this size need no allocation */

/* A canonical key: points at `inl`, at heap memory owned by the struct, or
 * (input already canonical: short strings, one-byte scalars) into the buffer
 * given to gr_tkey_make, so it is valid while that buffer is. */
typedef struct gr_tkey {
    const uint8_t *p;            /* canonical bytes */
    size_t len;                  /* 1..GR_TKEY_MAX */
    uint64_t hash;               /* the table's store hash of the key: set by the caller */
    uint8_t *heap;               /* owned buffer for long keys, else NULL */
    uint8_t inl[GR_TKEY_INLINE]; /* short keys live here */
} gr_tkey;

/* Canonicalize the one term in buf[0..len) into *k (fills p and len; hash is
 * the caller's: gr_tkey_hash, or the table's keyed gr_shash (table.c)).
 * 0, GR_EBADTERM (not exactly one well-formed term, or nested deeper than
 * GR_TERM_DEPTH_MAX), GR_ETOOBIG (canonical form over GR_TKEY_MAX), -ENOMEM.
 * Release with gr_tkey_done (also after an error: NULL-safe on a zeroed k). */
int gr_tkey_make(gr_tkey *k, const void *buf, size_t len);
void gr_tkey_done(gr_tkey *k);

/* Compare two canonical keys in msgpack order: <0, 0, >0. */
int gr_tkey_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* The public 64-bit hash of canonical key bytes: the same on every node, so
 * replicas agree on it. Replication's digest buckets come from its top bits
 * (repl.c). Unkeyed: anyone can compute keys that collide, so no store
 * indexes by it. */
uint64_t gr_tkey_hash(const uint8_t *p, size_t len);

/* Does the canonical key k start with the string or binary prefix? True when k
 * is a str (prefix given as str) or bin (as bin) whose bytes begin with the
 * prefix's bytes. Both arguments canonical. */
int gr_tkey_has_prefix(const uint8_t *k, size_t klen, const uint8_t *prefix, size_t plen);

#endif
