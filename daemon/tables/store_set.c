/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_set.c - the `set` store of one shard: chained hash buckets.
 *
 * Design notes: a shard owns the hash range selected by the hash's top
 * shard_bits; within it, the bucket is the next `bits` bits and chains are kept
 * sorted by (hash, key). So walking buckets in index order walks the shard in
 * (hash, key) order, and doubling the table splits bucket i into 2i and 2i+1
 * without changing that order: a scan cursor (hash, key) stays meaningful
 * across resizes, which is what makes set scans exactly-once. The caller holds
 * the shard's lock (read for lookups/walks, write for changes). A resize
 * rehashes the whole shard at once under the write lock (bounded by the shard
 * size; 16 shards by default keep each pause short).
 */
#include "tables/key.h"
#include "tables/tables_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BITS 4

static size_t idx(uint64_t hash, uint32_t shard_bits, uint32_t bits)
{
    return (size_t)((hash << shard_bits) >> (64 - bits));
}

/* (hash, key) order. */
static int cmp_hk(uint64_t ha, const uint8_t *ka, size_t la, gr_tent *b)
{
    if (ha != b->hash) {
        return ha < b->hash ? -1 : 1;
    }
    return gr_tkey_cmp(ka, la, gr_tent_key(b), b->klen);
}

int gr_sset_init(gr_tshard *s, uint32_t shard_bits)
{
    s->bits = MIN_BITS;
    if (!(s->buckets = calloc((size_t)1 << s->bits, sizeof(*s->buckets)))) {
        return -ENOMEM;
    }
    return 0;
}

void gr_sset_free(gr_tshard *s)
{
    if (!s->buckets) {
        return;
    }
    for (size_t i = 0; i < (size_t)1 << s->bits; i++) {
        for (gr_tent *e = s->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    }
    free(s->buckets);
    s->buckets = NULL;
}

gr_tent *gr_sset_find(gr_tshard *s, uint32_t shard_bits, uint64_t hash, const uint8_t *k,
                      size_t klen)
{
    for (gr_tent *e = s->buckets[idx(hash, shard_bits, s->bits)]; e; e = e->next) {
        if (e->hash == hash && e->klen == klen && memcmp(gr_tent_key(e), k, klen) == 0) {
            return e;
        }
        if (e->hash > hash) {
            break;
        }
    }
    return NULL;
}

static void grow(gr_tshard *s, uint32_t shard_bits)
{
    uint32_t nbits = s->bits + 1;
    gr_tent **nb;

    if (shard_bits + nbits > 40 || !(nb = calloc((size_t)1 << nbits, sizeof(*nb)))) {
        return; /* stay at this size: longer chains, still correct */
    }
    for (size_t i = 0; i < (size_t)1 << s->bits; i++) {
        gr_tent **tail[2] = {&nb[2 * i], &nb[2 * i + 1]};

        for (gr_tent *e = s->buckets[i], *n; e; e = n) {
            size_t j = idx(e->hash, shard_bits, nbits);

            n = e->next;
            e->next = NULL;
            *tail[j & 1] = e;
            tail[j & 1] = &e->next;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->bits = nbits;
}

void gr_sset_put(gr_tshard *s, uint32_t shard_bits, gr_tent *e, gr_tent *old)
{
    gr_tent **pp = &s->buckets[idx(e->hash, shard_bits, s->bits)];

    if (old) {
        while (*pp != old) {
            pp = &(*pp)->next;
        }
        e->next = old->next;
        *pp = e;
        return;
    }
    while (*pp && cmp_hk(e->hash, gr_tent_key(e), e->klen, *pp) > 0) {
        pp = &(*pp)->next;
    }
    e->next = *pp;
    *pp = e;
    if (++s->count > ((uint64_t)1 << s->bits)) {
        grow(s, shard_bits);
    }
}

void gr_sset_remove(gr_tshard *s, uint32_t shard_bits, gr_tent *old)
{
    gr_tent **pp = &s->buckets[idx(old->hash, shard_bits, s->bits)];

    while (*pp != old) {
        pp = &(*pp)->next;
    }
    *pp = old->next;
    s->count--;
}

static gr_tent *first_from(gr_tshard *s, size_t b)
{
    for (; b < (size_t)1 << s->bits; b++) {
        if (s->buckets[b]) {
            return s->buckets[b];
        }
    }
    return NULL;
}

gr_tent *gr_sset_after(gr_tshard *s, uint32_t shard_bits, int has_cur, uint64_t hash,
                       const uint8_t *k, size_t klen)
{
    size_t b;

    if (!has_cur) {
        return first_from(s, 0);
    }
    b = idx(hash, shard_bits, s->bits);
    for (gr_tent *e = s->buckets[b]; e; e = e->next) {
        if (cmp_hk(hash, k, klen, e) < 0) {
            return e;
        }
    }
    return first_from(s, b + 1);
}

gr_tent *gr_sset_next(gr_tshard *s, uint32_t shard_bits, gr_tent *e)
{
    return e->next ? e->next : first_from(s, idx(e->hash, shard_bits, s->bits) + 1);
}

gr_tent *gr_sset_sample(gr_tshard *s, uint64_t rnd)
{
    size_t n = (size_t)1 << s->bits, b = (size_t)(rnd & (n - 1));

    if (!s->count) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s->buckets[(b + i) & (n - 1)]) {
            return s->buckets[(b + i) & (n - 1)];
        }
    }
    return NULL;
}
