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
 *
 * Map and set states (flags GR_TENT_MAP / GR_TENT_ASET; crdt.c) are the
 * entry's value: a msgpack bin32 (0xc6, u32 big-endian length) whose payload
 * is, little-endian:
 *
 *   OFFSET  SIZE     DESCRIPTION
 *   0       1        type: 'M' map, 'S' set
 *   1       1        layout version, 1
 *   2       2        reserved, 0
 *   4       8        epoch hlc   (the write the state started from; 0: nothing)
 *   12      8        epoch origin
 *   20      4        n: fields / members, sorted by bytes (memcmp, then length)
 *   24      ..       n records
 *
 * Map field record:
 *   0       4        name length l
 *   4       4        value length v (0 for a tombstone)
 *   8       8        hlc of the field's write
 *   16      8        origin of the field's write
 *   24      1        flags: GR_CF_TOMB (removed at hlc), GR_CF_COUNTER
 *   25      1        counter components c (node 0: the counter's epoch)
 *   26      2        reserved, 0
 *   28      24*c     components: node u64, incs u64, decs u64, sorted by node
 *   ..      l        name bytes
 *   ..      v        value: one msgpack term (a counter: its total)
 *
 * Set member record:
 *   0       4        member length l
 *   4       4        records r (>= 1), sorted by node
 *   8       32*r     node u64, add u64 (HLC of that node's last add), rem u64
 *                    (the largest add of that node a remove observed), rem_at
 *                    u64 (HLC of that remove); live when some add > rem
 *   ..      l        member bytes
 */
#ifndef GR_TABLES_INT_H
#define GR_TABLES_INT_H

#include "tables/key.h"
#include "tables/tables.h"

#include <assert.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GR_TREC_HDR 40
#define GR_TREC_ENTRY 1
#define GR_TREC_DELETE 2

/* Little-endian fixed-width fields of the log, snapshot, queue and CRDT state
 * formats. */
static inline uint64_t gr_le_rd64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static inline uint32_t gr_le_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void gr_le_wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void gr_le_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

#define GR_TENT_COUNTER 0x1 /* value is the sum of the counter components */
#define GR_TENT_TOMB 0x2    /* replicated: a tombstone (no value); invisible to reads */
#define GR_TENT_MAP 0x4     /* value is a map state (crdt.c) */
#define GR_TENT_ASET 0x8    /* value is an add-wins set state (crdt.c) */

/* gr_tent.crdt bits, derived from a map/set state when the entry is built */
#define GR_TC_GARBAGE 0x1 /* holds removed fields/records the sweep may purge */
#define GR_TC_EMPTY 0x2   /* no live field/member: reads see no key */

#define GR_SKIP_MAX 24 /* skiplist levels */

/* One entry: changed only under its shard's write lock (a write replaces
 * the whole entry, except that a plain value replaced by one of the same size
 * and the same expiry presence is rewritten in place: table.c overwrite) and
 * the access time (atomic, under the read lock); readers hold the read lock
 * and copy what they keep. One allocation: the 24-byte header, then data[]:
 *
 *   expire_ms   u64, if opt & GR_TE_EXP (absolute wall ms; absent: never)
 *   ext         gr_text, if opt & GR_TE_EXT (cache and ordered_set tables):
 *               access time and skiplist level
 *   fwd         level pointers (ordered_set)
 *   counters    ncnt gr_tcnt
 *   key         klen bytes (canonical; GR_TKEY_MAX fits 16 bits)
 *   value       vlen bytes
 *
 * The key's hash is not stored: the set store's slot holds it beside the
 * pointer, and other paths recompute it from the key (table.c, tent_hash). The
 * memory charged to the table is derived, not stored (table.c ent_bytes). */
typedef struct gr_tent {
    uint64_t hlc;         /* version: hybrid logical clock of the write */
    uint64_t origin;      /* node id of the write */
    uint32_t vlen;        /* value bytes */
    uint16_t klen;        /* key bytes */
    unsigned flags : 4;   /* GR_TENT_* */
    unsigned crdt : 2;    /* map/set: GR_TC_* bits */
    unsigned opt : 2;     /* GR_TE_*: which optional words data[] starts with */
    uint8_t ncnt;         /* counter components */
    unsigned char data[]; /* see above */
} gr_tent;

static_assert(sizeof(gr_tent) == 24 && offsetof(gr_tent, data) == 24, "gr_tent header is 24 bytes");

#define GR_TE_EXP 0x1 /* data[] starts with the expiry */
#define GR_TE_EXT 0x2 /* then the ext word (gr_text) */

/* The ext word of cache and ordered_set tables' entries. */
typedef struct gr_text {
    _Atomic uint32_t atime; /* last access, coarse (wall s): approximate LRU of cache tables */
    uint8_t level;          /* ordered_set: skiplist levels (0 for set) */
    uint8_t pad[3];         /* 0 */
} gr_text;

static inline size_t gr_tent_optlen(unsigned opt)
{
    return ((opt & GR_TE_EXP) ? sizeof(uint64_t) : 0) + ((opt & GR_TE_EXT) ? sizeof(gr_text) : 0);
}
static inline uint64_t gr_tent_exp(const gr_tent *e)
{
    uint64_t v = 0;

    if (e->opt & GR_TE_EXP) {
        memcpy(&v, e->data, sizeof(v));
    }
    return v;
}
/* Only on an entry built with GR_TE_EXP (the in-place overwrite keeps it). */
static inline void gr_tent_set_exp(gr_tent *e, uint64_t v)
{
    memcpy(e->data, &v, sizeof(v));
}
/* The ext word, or NULL (a set table that is no cache). */
static inline gr_text *gr_tent_ext(gr_tent *e)
{
    return (e->opt & GR_TE_EXT)
               ? (gr_text *)(void *)(e->data + ((e->opt & GR_TE_EXP) ? sizeof(uint64_t) : 0))
               : NULL;
}
static inline uint8_t gr_tent_level(const gr_tent *e)
{
    return (e->opt & GR_TE_EXT) ? gr_tent_ext((gr_tent *)(uintptr_t)e)->level : 0;
}
static inline gr_tent **gr_tent_fwd(gr_tent *e)
{
    return (gr_tent **)(void *)(e->data + gr_tent_optlen(e->opt));
}
static inline gr_tcnt *gr_tent_cnt(gr_tent *e)
{
    return (gr_tcnt *)(void *)(e->data + gr_tent_optlen(e->opt) +
                               gr_tent_level(e) * sizeof(gr_tent *));
}
static inline uint8_t *gr_tent_key(gr_tent *e)
{
    size_t off = e->ncnt * sizeof(gr_tcnt);

    if (e->opt) { /* none in a set table's entries without an expiry: the lookup's case */
        off += gr_tent_optlen(e->opt) + gr_tent_level(e) * sizeof(gr_tent *);
    }
    return e->data + off;
}
static inline uint8_t *gr_tent_val(gr_tent *e)
{
    return gr_tent_key(e) + e->klen;
}
/* Bytes of an entry's allocation. */
#define GR_TENT_SIZE(opt, level, ncnt, klen, vlen)                                                 \
    (sizeof(gr_tent) + gr_tent_optlen(opt) + (size_t)(level) * sizeof(gr_tent *) +                 \
     (size_t)(ncnt) * sizeof(gr_tcnt) + (size_t)(klen) + (size_t)(vlen))
static inline size_t gr_tent_size(const gr_tent *e)
{
    return GR_TENT_SIZE(e->opt, gr_tent_level(e), e->ncnt, e->klen, e->vlen);
}
/* The heap chunk glibc's malloc takes for n bytes: n and its 8-byte chunk
 * header rounded up to 16, at least 32. What info.bytes charges. */
#define GR_TENT_CHUNK(n) ((n) + 8 <= 32 ? (size_t)32 : ((size_t)(n) + 8 + 15) & ~(size_t)15)

/* A set store slot: the entry's key hash beside it, so probing reads no entry. */
typedef struct gr_tslot {
    uint64_t hash; /* e's key's store hash (table.c, key_hash) */
    gr_tent *e;    /* NULL: empty */
} gr_tslot;

#define GR_TRD_BITS 3                    /* log2 of the reader counters per shard */
#define GR_TRD_SLOTS (1u << GR_TRD_BITS) /* gets' reader counters per shard */

/* A shard: a lock and a store. set tables have many, ordered_set one. */
typedef struct gr_tshard {
    pthread_rwlock_t lock;    /* readers: lookups and scans; writer: changes */
    gr_tslot *slots;          /* set: cap slots in (hash, key) order (store_set.c) */
    size_t cap;               /* set: homes + a tail of spare slots */
    size_t homes;             /* set: home slots (any count: store_set.c home()) */
    _Atomic uint64_t *mapped; /* set: the engine's mmapped slot bytes (may be NULL) */
    size_t hint;              /* set: slot of the last insert (store_set.c) */
    uint64_t hint_hash;       /* set: its hash */
    uint64_t count;           /* entries in this shard */
    gr_tent *head;            /* ordered_set: skiplist head (level GR_SKIP_MAX, no key) */
    uint32_t level;           /* ordered_set: levels in use */
    uint64_t rng;             /* ordered_set: level / sampling random state (write lock) */
    atomic_uint wflag;        /* a writer holds or takes the lock: gets back off (table.c) */
    struct {
        atomic_uint n;  /* gets inside the shard on this counter */
        char pad[60];   /* one counter per cache line */
    } rd[GR_TRD_SLOTS]; /* lock-free gets, by thread hash (table.c, wr_lock) */
    char pad[64];       /* keep shards' locks on separate cache lines */
} gr_tshard;

/* ---- set store (store_set.c); caller holds the shard's lock ----------------------------- */
int gr_sset_init(gr_tshard *s, uint32_t shard_bits);
void gr_sset_free(gr_tshard *s);
gr_tent *gr_sset_find(gr_tshard *s, uint32_t shard_bits, uint64_t hash, const uint8_t *k,
                      size_t klen);
/* Make sure the next gr_sset_put of a new key cannot fail (may resize).
 * 0 or -ENOMEM. */
int gr_sset_reserve(gr_tshard *s, uint32_t shard_bits);
/* Insert e (key absent; gr_sset_reserve succeeded since the last insert) or
 * replace old by e (old unlinked, not freed). */
void gr_sset_put(gr_tshard *s, uint32_t shard_bits, uint64_t hash, gr_tent *e, gr_tent *old);
void gr_sset_remove(gr_tshard *s, uint32_t shard_bits, uint64_t hash, gr_tent *old);
/* First entry with (hash, key) > (hash, key) of the cursor (has_cur) or >= hash
 * 0 (!has_cur), within this shard. Then gr_sset_next. */
gr_tent *gr_sset_after(gr_tshard *s, uint32_t shard_bits, int has_cur, uint64_t hash,
                       const uint8_t *k, size_t klen);
/* hash: e's key's. */
gr_tent *gr_sset_next(gr_tshard *s, uint32_t shard_bits, uint64_t hash, gr_tent *e);
/* A pseudo-random entry (eviction sampling), or NULL if empty. */
gr_tent *gr_sset_sample(gr_tshard *s, uint64_t rnd);
/* The longest distance from an entry's home slot to its slot: the cost of
 * the longest probe (a scan of the whole array; diagnostics and tests). */
size_t gr_sset_longest_shift(const gr_tshard *s, uint32_t shard_bits);
/* The longest of a set table's shards' (0 for an ordered_set): read-locks
 * each shard in turn (table.c). */
size_t gr_table_longest_shift(gr_table *t);
/* Bytes of index charged per entry of a set table (info.bytes): a slot at the
 * store's average load, tail included (store_set.c). */
#define GR_SSET_SLOT_SHARE 23

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

/* ---- map and set states (crdt.c): pure functions, any thread ---------------------------- */
#define GR_CRDT_MAP 'M'
#define GR_CRDT_SET 'S'
#define GR_CRDT_HDR 24  /* payload header */
#define GR_CRDT_FHDR 28 /* map field record header */
#define GR_CF_TOMB 0x1
#define GR_CF_COUNTER 0x2

/* A reader over an encoded state (borrowed bytes). */
typedef struct gr_crdt_rd {
    const uint8_t *p, *end; /* next record, end of the value */
    int type;               /* GR_CRDT_MAP or GR_CRDT_SET */
    uint64_t eh, eo;        /* epoch (hlc, origin) */
    uint32_t n, i;          /* records, records read */
} gr_crdt_rd;

/* One map field as read (pointers into the state) or to write. */
typedef struct gr_cfield {
    const uint8_t *name;
    uint32_t nlen;
    const uint8_t *val; /* one msgpack term; none for a tombstone */
    uint32_t vlen;
    uint64_t hlc, origin;
    uint8_t flags;      /* GR_CF_* */
    uint8_t ncnt;       /* counter components */
    const uint8_t *cnt; /* components as stored (24 bytes each); see gr_cfield_cnt */
} gr_cfield;

/* One set member as read. */
typedef struct gr_cmem {
    const uint8_t *m; /* member bytes */
    uint32_t mlen;
    uint32_t nrec;      /* records */
    const uint8_t *rec; /* records as stored (32 bytes each); see gr_cmem_rec */
} gr_cmem;

/* One set record: a node's last add of the member and what removes saw of it. */
typedef struct gr_crec {
    uint64_t node, add, rem, rem_at;
} gr_crec;

/* A writer appending a state to a buffer (gr_crdt_begin .. gr_crdt_end). */
typedef struct gr_crdt_wr {
    gr_tbuf *b;
    size_t start; /* offset of the bin header */
    uint32_t n;   /* records written */
} gr_crdt_wr;

/* Open a state: 0 or GR_ECORRUPT (not a state). */
int gr_crdt_open(gr_crdt_rd *r, const uint8_t *val, size_t vlen);
/* Next record: 1, 0 at the end, GR_ECORRUPT. Bounds are checked. */
int gr_crdt_next_field(gr_crdt_rd *r, gr_cfield *f);
int gr_crdt_next_mem(gr_crdt_rd *r, gr_cmem *m);
gr_tcnt gr_cfield_cnt(const gr_cfield *f, int i);
gr_crec gr_cmem_rec(const gr_cmem *m, uint32_t i);
bool gr_cmem_live(const gr_cmem *m);
/* A replica's state: well-formed, sorted, values valid terms. 0 or GR_EBADTERM. */
int gr_crdt_validate(const uint8_t *val, size_t vlen, int type);
/* Writing: begin, put records in order, end (patches lengths). -ENOMEM. */
int gr_crdt_begin(gr_crdt_wr *w, gr_tbuf *b, int type, uint64_t eh, uint64_t eo);
/* cnt: the components to write (NULL: f's stored ones). */
int gr_crdt_put_field(gr_crdt_wr *w, const gr_cfield *f, const gr_tcnt *cnt);
int gr_crdt_put_mem(gr_crdt_wr *w, const uint8_t *m, uint32_t mlen, const gr_crec *rec,
                    uint32_t nrec);
void gr_crdt_end(gr_crdt_wr *w);
/* *out = the merge of two states of one type (a's epoch kept: the caller
 * merges only states of one epoch). 0, GR_ECORRUPT, GR_EFULL, -ENOMEM. */
int gr_crdt_merge(gr_tbuf *out, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* *out = v without removed fields / dead set records (all: every one; else
 * those removed before cut_ms, wall ms). 1 changed, 0 not, or an error. */
int gr_crdt_purge(gr_tbuf *out, const uint8_t *v, size_t vlen, bool all, uint64_t cut_ms);
/* Live fields/members, and whether removed ones are held. */
void gr_crdt_summary(const uint8_t *v, size_t vlen, uint32_t *ret_live, bool *ret_garbage);
int64_t gr_crdt_cnt_total(const gr_tcnt *c, int n);
size_t gr_crdt_pack_int(uint8_t *b, int64_t v);

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
