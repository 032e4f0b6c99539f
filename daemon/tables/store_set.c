/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_set.c - the `set` store of one shard: an open-addressing table of
 * (hash, entry) slots kept in (hash, key) order.
 *
 * Design notes: a shard owns the hash range selected by the hash's top
 * shard_bits; within it, an entry's home slot is the next `bits` bits, so
 * home order is hash order. Collisions use linear probing, and every run of
 * occupied slots is kept sorted by (hash, key) (an insert shifts the rest of
 * its run up by one slot, a delete shifts it back: "ordered linear probing",
 * the invariant Robin Hood hashing keeps). Hence
 * - the whole slot array is sorted by (hash, key): walking it in index order
 *   walks the shard in (hash, key) order, and that order does not depend on
 *   the table size, so a scan cursor (hash, key) stays meaningful across
 *   resizes, which is what makes set scans exactly-once (as the chained
 *   buckets did before);
 * - a lookup reads the home slot's cache line (16-byte slots: 4 per line) and
 *   compares full 64-bit hashes there; it touches an entry only when the hash
 *   is equal (the key check), and stops at the first larger hash or empty
 *   slot, so a miss usually costs one cache line and a hit two;
 * - the array does not wrap: it has a tail of spare slots after the last
 *   home, grown when a run would run off the end.
 * The table doubles when more than 3/4 of the 2^bits homes are used; the
 * rebuild is one ordered pass. The caller holds the shard's lock (read for
 * lookups/walks, write for changes).
 */
#include "tables/key.h"
#include "tables/tables_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BITS 4

static size_t home(uint64_t hash, uint32_t shard_bits, uint32_t bits)
{
    return (size_t)((hash << shard_bits) >> (64 - bits));
}

/* Spare slots after the last home for a table of 2^bits homes. */
static size_t tail_of(uint32_t bits)
{
    return ((size_t)1 << bits) / 16 + 16;
}

/* (hash, key) order of a new entry against a slot. */
static int cmp_slot(uint64_t ha, const uint8_t *ka, size_t la, const gr_tslot *b)
{
    if (ha != b->hash) {
        return ha < b->hash ? -1 : 1;
    }
    return gr_tkey_cmp(ka, la, gr_tent_key(b->e), b->e->klen);
}

int gr_sset_init(gr_tshard *s, uint32_t shard_bits)
{
    (void)shard_bits;
    s->bits = MIN_BITS;
    s->cap = ((size_t)1 << s->bits) + tail_of(s->bits);
    if (!(s->slots = calloc(s->cap, sizeof(*s->slots)))) {
        return -ENOMEM;
    }
    return 0;
}

void gr_sset_free(gr_tshard *s)
{
    if (!s->slots) {
        return;
    }
    for (size_t i = 0; i < s->cap; i++) {
        free(s->slots[i].e);
    }
    free(s->slots);
    s->slots = NULL;
}

/* Where a probe for `hash` may start: its home, or just after the last
 * insert's slot when that slot is at or after the home and holds a smaller
 * hash. Keys inserted in hash order (a repair's or a snapshot's walk) fill a
 * small hash range densely, and probing from the home would cross the
 * whole run each time (quadratic); every slot from the home to that slot is
 * occupied by smaller keys (an empty one in between would have stopped that
 * entry's own probe, which started at or after our home), so none is ours.
 * Random keys rarely fall in the window: two compares on the shard. */
static size_t probe_start(const gr_tshard *s, uint32_t shard_bits, uint64_t hash)
{
    size_t p = home(hash, shard_bits, s->bits);

    if (s->hint >= p && s->hint < s->cap && hash > s->hint_hash && s->slots[s->hint].e &&
        s->slots[s->hint].hash == s->hint_hash) {
        p = s->hint + 1;
    }
    return p;
}

gr_tent *gr_sset_find(gr_tshard *s, uint32_t shard_bits, uint64_t hash, const uint8_t *k,
                      size_t klen)
{
    const gr_tslot *sl = &s->slots[probe_start(s, shard_bits, hash)], *end = s->slots + s->cap;

    for (; sl < end && sl->e && sl->hash <= hash; sl++) {
        if (sl->hash == hash && sl->e->klen == klen && memcmp(gr_tent_key(sl->e), k, klen) == 0) {
            return sl->e;
        }
    }
    return NULL;
}

/* The slot index of e (in the store). */
static size_t index_of(gr_tshard *s, uint32_t shard_bits, const gr_tent *e)
{
    size_t i = home(e->hash, shard_bits, s->bits);

    while (s->slots[i].e != e) {
        i++;
    }
    return i;
}

/* Rebuild into 2^nbits homes: one ordered pass (the order does not change).
 * 0 or -ENOMEM (the store is unchanged). */
static int rebuild(gr_tshard *s, uint32_t shard_bits, uint32_t nbits)
{
    size_t cap = ((size_t)1 << nbits) + tail_of(nbits), last = 0, pos;
    gr_tslot *ns;
    bool any = false;

    /* where the last entry lands decides the tail */
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].e) {
            pos = home(s->slots[i].hash, shard_bits, nbits);
            last = any && pos <= last ? last + 1 : pos;
            any = true;
        }
    }
    if (last + 16 > cap) {
        cap = last + 16;
    }
    if (!(ns = calloc(cap, sizeof(*ns)))) {
        return -ENOMEM;
    }
    any = false;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].e) {
            pos = home(s->slots[i].hash, shard_bits, nbits);
            last = any && pos <= last ? last + 1 : pos;
            any = true;
            ns[last] = s->slots[i];
        }
    }
    free(s->slots);
    s->slots = ns;
    s->cap = cap;
    s->bits = nbits;
    return 0;
}

/* More spare slots after the last home. 0 or -ENOMEM. */
static int grow_tail(gr_tshard *s)
{
    size_t cap = s->cap + s->cap / 4 + 16;
    gr_tslot *ns = realloc(s->slots, cap * sizeof(*ns));

    if (!ns) {
        return -ENOMEM;
    }
    memset(ns + s->cap, 0, (cap - s->cap) * sizeof(*ns));
    s->slots = ns;
    s->cap = cap;
    return 0;
}

int gr_sset_reserve(gr_tshard *s, uint32_t shard_bits)
{
    if (s->count + 1 > ((uint64_t)3 << s->bits) / 4 && shard_bits + s->bits < 40) {
        (void)rebuild(s, shard_bits, s->bits + 1); /* no memory: stay, longer runs */
    }
    /* an empty last slot: the run an insert extends ends inside the array */
    return s->slots[s->cap - 1].e ? grow_tail(s) : 0;
}

void gr_sset_put(gr_tshard *s, uint32_t shard_bits, gr_tent *e, gr_tent *old)
{
    size_t p, q;

    if (old) {
        s->slots[index_of(s, shard_bits, old)].e = e;
        return;
    }
    p = probe_start(s, shard_bits, e->hash);
    while (s->slots[p].e && cmp_slot(e->hash, gr_tent_key(e), e->klen, &s->slots[p]) > 0) {
        p++;
    }
    for (q = p; s->slots[q].e; q++) {
    }
    memmove(&s->slots[p + 1], &s->slots[p], (q - p) * sizeof(*s->slots));
    s->slots[p] = (gr_tslot){e->hash, e};
    s->hint = p;
    s->hint_hash = e->hash;
    s->count++;
}

void gr_sset_remove(gr_tshard *s, uint32_t shard_bits, gr_tent *old)
{
    size_t i = index_of(s, shard_bits, old), j = i + 1;

    while (j < s->cap && s->slots[j].e && home(s->slots[j].hash, shard_bits, s->bits) < j) {
        j++;
    }
    memmove(&s->slots[i], &s->slots[i + 1], (j - i - 1) * sizeof(*s->slots));
    s->slots[j - 1] = (gr_tslot){0, NULL};
    s->count--;
}

static gr_tent *first_from(gr_tshard *s, size_t i)
{
    for (; i < s->cap; i++) {
        if (s->slots[i].e) {
            return s->slots[i].e;
        }
    }
    return NULL;
}

gr_tent *gr_sset_after(gr_tshard *s, uint32_t shard_bits, int has_cur, uint64_t hash,
                       const uint8_t *k, size_t klen)
{
    size_t i;

    if (!has_cur) {
        return first_from(s, 0);
    }
    /* every slot before the cursor's home holds a smaller hash */
    for (i = home(hash, shard_bits, s->bits); i < s->cap && s->slots[i].e; i++) {
        if (cmp_slot(hash, k, klen, &s->slots[i]) < 0) {
            return s->slots[i].e;
        }
    }
    return first_from(s, i);
}

gr_tent *gr_sset_next(gr_tshard *s, uint32_t shard_bits, gr_tent *e)
{
    return first_from(s, index_of(s, shard_bits, e) + 1);
}

gr_tent *gr_sset_sample(gr_tshard *s, uint64_t rnd)
{
    size_t b = (size_t)(rnd % s->cap);

    if (!s->count) {
        return NULL;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[(b + i) % s->cap].e) {
            return s->slots[(b + i) % s->cap].e;
        }
    }
    return NULL;
}
