/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tables_int.h - internals shared by the files of daemon/tables/: the entry
 * layout, the two stores (set: hash buckets; ordered_set: skiplist) and the
 * entry record format of the log and snapshots.
 *
 * Entry record (log and snapshot payload), little-endian:
 *
 *   OFFSET  SIZE     DESCRIPTION
 *   0       1        type: 1 entry, 2 delete (tombstone: key only)
 *   1       1        flags: GR_TENT_COUNTER
 *   2       1        counter components n (0..255)
 *   3       1        reserved, 0
 *   4       4        key length k
 *   8       4        value length v
 *   12      4        reserved, 0
 *   16      8        hlc (version)
 *   24      8        origin node id
 *   32      8        expire_ms (absolute wall ms, 0 = never)
 *   40      24*n     counter components: node u64, incs u64, decs u64
 *   40+24n  k        canonical key
 *   ..      v        value
 */
#ifndef GR_TABLES_INT_H
#define GR_TABLES_INT_H

#include "tables/tables.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GR_TREC_HDR 40
#define GR_TREC_ENTRY 1
#define GR_TREC_DELETE 2

#define GR_TENT_COUNTER 0x1 /* value is the sum of the counter components */
#define GR_TENT_TOMB 0x2    /* replicated: a tombstone (no value); invisible to reads */

#define GR_SKIP_MAX 24 /* skiplist levels */

/* One entry: immutable once published (a write replaces the whole entry),
 * except atime. Layout of data[]: fwd pointers (level), counter components
 * (ncnt), key (klen), value (vlen). */
typedef struct gr_tent {
    struct gr_tent *next;   /* set: bucket chain, sorted by (hash, key) */
    uint64_t hash;          /* gr_tkey_hash of the key */
    uint64_t hlc;           /* version: hybrid logical clock of the write */
    uint64_t origin;        /* node id of the write */
    uint64_t expire_ms;     /* absolute wall ms; 0 = never */
    uint64_t bytes;         /* memory charged to the table for this entry */
    _Atomic uint32_t atime; /* last access, coarse (wall s): approximate LRU */
    uint32_t klen;          /* key bytes */
    uint32_t vlen;          /* value bytes */
    uint8_t flags;          /* GR_TENT_* */
    uint8_t ncnt;           /* counter components */
    uint8_t level;          /* ordered_set: skiplist levels (0 for set) */
    uint8_t pad;
    unsigned char data[]; /* see above */
} gr_tent;

static inline gr_tent **gr_tent_fwd(gr_tent *e)
{
    return (gr_tent **)(void *)e->data;
}
static inline gr_tcnt *gr_tent_cnt(gr_tent *e)
{
    return (gr_tcnt *)(void *)(e->data + e->level * sizeof(gr_tent *));
}
static inline uint8_t *gr_tent_key(gr_tent *e)
{
    return e->data + e->level * sizeof(gr_tent *) + e->ncnt * sizeof(gr_tcnt);
}
static inline uint8_t *gr_tent_val(gr_tent *e)
{
    return gr_tent_key(e) + e->klen;
}

/* A shard: a lock and a store. set tables have many, ordered_set one. */
typedef struct gr_tshard {
    pthread_rwlock_t lock; /* readers: lookups and scans; writer: changes */
    gr_tent **buckets;     /* set: 2^bits chains, by hash bits after the shard bits */
    uint32_t bits;         /* set: log2 of the bucket count */
    uint64_t count;        /* entries in this shard */
    gr_tent *head;         /* ordered_set: skiplist head (level GR_SKIP_MAX, no key) */
    uint32_t level;        /* ordered_set: levels in use */
    uint64_t rng;          /* ordered_set: level / sampling random state (write lock) */
    char pad[64];          /* keep shards' locks on separate cache lines */
} gr_tshard;

/* ---- set store (store_set.c); caller holds the shard's lock ----------------------------- */
int gr_sset_init(gr_tshard *s, uint32_t shard_bits);
void gr_sset_free(gr_tshard *s);
gr_tent *gr_sset_find(gr_tshard *s, uint32_t shard_bits, uint64_t hash, const uint8_t *k,
                      size_t klen);
/* Insert e (key absent) or replace old by e (old unlinked, not freed). */
void gr_sset_put(gr_tshard *s, uint32_t shard_bits, gr_tent *e, gr_tent *old);
void gr_sset_remove(gr_tshard *s, uint32_t shard_bits, gr_tent *old);
/* First entry with (hash, key) > (hash, key) of the cursor (has_cur) or >= hash
 * 0 (!has_cur), within this shard. Then gr_sset_next. */
gr_tent *gr_sset_after(gr_tshard *s, uint32_t shard_bits, int has_cur, uint64_t hash,
                       const uint8_t *k, size_t klen);
gr_tent *gr_sset_next(gr_tshard *s, uint32_t shard_bits, gr_tent *e);
/* A pseudo-random entry (eviction sampling), or NULL if empty. */
gr_tent *gr_sset_sample(gr_tshard *s, uint64_t rnd);

/* ---- ordered store (store_ordered.c); caller holds the shard's lock --------------------- */
int gr_oset_init(gr_tshard *s);
void gr_oset_free(gr_tshard *s);
/* A random level for a new entry (write lock). */
uint8_t gr_oset_level(gr_tshard *s);
gr_tent *gr_oset_find(gr_tshard *s, const uint8_t *k, size_t klen);
void gr_oset_put(gr_tshard *s, gr_tent *e, gr_tent *old);
void gr_oset_remove(gr_tshard *s, gr_tent *old);
/* First entry with key > k (strict) or >= k; k NULL: the first entry. */
gr_tent *gr_oset_seek(gr_tshard *s, const uint8_t *k, size_t klen, int strict);
gr_tent *gr_oset_sample(gr_tshard *s, uint64_t rnd);

/* ---- snapshots (snapshot.c) ------------------------------------------------------------- */
/* Write DIR/snap atomically: header with `next_seg`, then records produced by
 * `each` (which calls `emit` for each record payload), then an end record.
 * 0 or -errno (DIR/snap unchanged). */
typedef int (*gr_snap_emit_fn)(void *ectx, const void *payload, size_t len);
int gr_snap_write(const char *dir, uint64_t next_seg,
                  int (*each)(void *ud, gr_snap_emit_fn emit, void *ectx), void *ud);
/* Read DIR/snap: *ret_next_seg, and fn per record. -ENOENT if absent,
 * GR_ECORRUPT (logged with file and offset), or fn's error. */
int gr_snap_read(const char *dir, uint64_t *ret_next_seg,
                 int (*fn)(void *ud, const uint8_t *p, size_t n), void *ud);

#endif
