/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_set.c - the `set` store of one shard: an open-addressing table of
 * (hash, entry) slots kept in (hash, key) order.
 *
 * Design notes: a shard owns the hash range selected by the hash's top
 * shard_bits; within it, an entry's home slot is the next 32 bits scaled to
 * the home count (h32 * homes >> 32: any count, not only powers of two), so
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
 * The table grows by a quarter when more than 4/5 of its homes are used, so
 * its load stays within 0.64..0.8 (a doubling past 3/4 left it anywhere in
 * 3/8..3/4: at 1,000,000 keys in 16 shards, 0.48, 35 bytes of slots per
 * entry; now 20.6-26, 23 on average: GR_SSET_SLOT_SHARE); the rebuild is one
 * ordered pass, five slot copies per entry over the table's growth.
 * Arrays of 64 KiB and more are mapped pages of their own (mmap), not heap:
 * a rebuild then gives the old array back to the kernel at once instead of
 * leaving a hole of that size in the writer's malloc arena, which the RSS
 * kept. The caller holds the shard's lock (read for lookups/walks, write for
 * changes).
 */
#include "tables/key.h"
#include "tables/tables_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIN_HOMES 16
#define MAX_HOMES ((size_t)1 << 32) /* home() scales 32 hash bits */
#define MAP_MIN ((size_t)64 << 10)  /* arrays from this size are mmapped */

static size_t home(uint64_t hash, uint32_t shard_bits, size_t homes)
{
    uint64_t h32 = (hash << shard_bits) >> 32; /* shard_bits <= 8 */

    return (size_t)((h32 * (uint64_t)homes) >> 32);
}

/* Spare slots after the last home for a table of `homes` homes. */
static size_t tail_of(size_t homes)
{
    return homes / 32 + 16;
}

/* A zeroed array of n slots (own pages from MAP_MIN bytes on, counted in
 * *s->mapped), or NULL. */
static gr_tslot *slots_alloc(gr_tshard *s, size_t n)
{
    void *p;

    if (n * sizeof(gr_tslot) < MAP_MIN) {
        return calloc(n, sizeof(gr_tslot));
    }
    p = mmap(NULL, n * sizeof(gr_tslot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
             0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    if (s->mapped) {
        atomic_fetch_add(s->mapped, n * sizeof(gr_tslot));
    }
    return p;
}

/* Free an array of slots_alloc(s, n) (NULL-safe). */
static void slots_free(gr_tshard *s, gr_tslot *p, size_t n)
{
    if (!p) {
        return;
    }
    if (n * sizeof(gr_tslot) < MAP_MIN) {
        free(p);
        return;
    }
    (void)munmap(p, n * sizeof(gr_tslot)); /* only fails on a bad range */
    if (s->mapped) {
        atomic_fetch_sub(s->mapped, n * sizeof(gr_tslot));
    }
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
    s->homes = MIN_HOMES;
    s->cap = s->homes + tail_of(s->homes);
    if (!(s->slots = slots_alloc(s, s->cap))) {
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
    slots_free(s, s->slots, s->cap);
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
    size_t p = home(hash, shard_bits, s->homes);

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

/* The slot index of e (in the store; hash: its key's). */
static size_t index_of(gr_tshard *s, uint32_t shard_bits, uint64_t hash, const gr_tent *e)
{
    size_t i = home(hash, shard_bits, s->homes);

    while (s->slots[i].e != e) {
        i++;
    }
    return i;
}

/* Rebuild into nhomes homes: one ordered pass (the order does not change).
 * 0 or -ENOMEM (the store is unchanged). */
static int rebuild(gr_tshard *s, uint32_t shard_bits, size_t nhomes)
{
    size_t cap = nhomes + tail_of(nhomes), last = 0, pos;
    gr_tslot *ns;
    bool any = false;

    /* where the last entry lands decides the tail */
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].e) {
            pos = home(s->slots[i].hash, shard_bits, nhomes);
            last = any && pos <= last ? last + 1 : pos;
            any = true;
        }
    }
    if (last + 16 > cap) {
        cap = last + 16;
    }
    if (!(ns = slots_alloc(s, cap))) {
        return -ENOMEM;
    }
    any = false;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].e) {
            pos = home(s->slots[i].hash, shard_bits, nhomes);
            last = any && pos <= last ? last + 1 : pos;
            any = true;
            ns[last] = s->slots[i];
        }
    }
    slots_free(s, s->slots, s->cap);
    s->slots = ns;
    s->cap = cap;
    s->homes = nhomes;
    return 0;
}

/* More spare slots after the last home. 0 or -ENOMEM. */
static int grow_tail(gr_tshard *s)
{
    size_t cap = s->cap + s->cap / 4 + 16;
    gr_tslot *ns = slots_alloc(s, cap);

    if (!ns) {
        return -ENOMEM;
    }
    memcpy(ns, s->slots, s->cap * sizeof(*ns));
    slots_free(s, s->slots, s->cap);
    s->slots = ns;
    s->cap = cap;
    return 0;
}

int gr_sset_reserve(gr_tshard *s, uint32_t shard_bits)
{
    if (s->count + 1 > (uint64_t)s->homes * 4 / 5 && s->homes < MAX_HOMES) {
        size_t n = s->homes + (s->homes / 4 > MIN_HOMES ? s->homes / 4 : MIN_HOMES);

        (void)rebuild(s, shard_bits, n < MAX_HOMES ? n : MAX_HOMES); /* no memory: stay */
    }
    /* an empty last slot: the run an insert extends ends inside the array */
    return s->slots[s->cap - 1].e ? grow_tail(s) : 0;
}

void gr_sset_put(gr_tshard *s, uint32_t shard_bits, uint64_t hash, gr_tent *e, gr_tent *old)
{
    size_t p, q;

    if (old) {
        s->slots[index_of(s, shard_bits, hash, old)].e = e;
        return;
    }
    p = probe_start(s, shard_bits, hash);
    while (s->slots[p].e && cmp_slot(hash, gr_tent_key(e), e->klen, &s->slots[p]) > 0) {
        p++;
    }
    for (q = p; s->slots[q].e; q++) {
    }
    memmove(&s->slots[p + 1], &s->slots[p], (q - p) * sizeof(*s->slots));
    s->slots[p] = (gr_tslot){hash, e};
    s->hint = p;
    s->hint_hash = hash;
    s->count++;
}

void gr_sset_remove(gr_tshard *s, uint32_t shard_bits, uint64_t hash, gr_tent *old)
{
    size_t i = index_of(s, shard_bits, hash, old), j = i + 1;

    while (j < s->cap && s->slots[j].e && home(s->slots[j].hash, shard_bits, s->homes) < j) {
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
    for (i = home(hash, shard_bits, s->homes); i < s->cap && s->slots[i].e; i++) {
        if (cmp_slot(hash, k, klen, &s->slots[i]) < 0) {
            return s->slots[i].e;
        }
    }
    return first_from(s, i);
}

gr_tent *gr_sset_next(gr_tshard *s, uint32_t shard_bits, uint64_t hash, gr_tent *e)
{
    return first_from(s, index_of(s, shard_bits, hash, e) + 1);
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

size_t gr_sset_longest_shift(const gr_tshard *s, uint32_t shard_bits)
{
    size_t most = 0;

    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].e) {
            size_t h = home(s->slots[i].hash, shard_bits, s->homes);

            most = i - h > most ? i - h : most; /* i >= h: runs never wrap */
        }
    }
    return most;
}
