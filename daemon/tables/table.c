/* SPDX-License-Identifier: Apache-2.0 */
/*
 * table.c - the table engine (tables.h): the registry of named tables, the
 * operations on one table (reads, writes, counters, TTL, limits and eviction,
 * scans), the hybrid logical clock, and a disk table's life cycle (create its
 * directory, log every change, load snapshot + log at start, snapshot).
 *
 * Design notes:
 * - Concurrency: a table is split into shards, each a rwlock over its store
 *   (set: 16 hash shards by default; ordered_set: one skiplist). A read locks
 *   one shard for reading and copies out; a write locks it for writing, builds
 *   a new entry, appends its log record (disk tables) and swaps it in, all
 *   under that lock, so one key's log order is its apply order. docs/tables.md
 *   "Concurrency" has the measurements behind the choice.
 * - Entries are replaced, never changed in place (except the atime used for
 *   LRU), so a reader holding the read lock sees a whole entry.
 * - Log replay is idempotent: a record is applied only if its HLC is not
 *   older than the entry's, so replaying records the snapshot already holds
 *   changes nothing (snapshot.c, gr_table_snapshot).
 * - Counters: one (incs, decs) pair per origin node, total = sum; the record
 *   carries all pairs (state, not delta), so replay and later replication
 *   merge without double counting.
 * - Limits are checked with the table-wide atomic counters, so concurrent
 *   writers on different shards may overshoot max_entries/max_bytes by at
 *   most one entry each. Cache eviction samples 5 entries of the writer's own
 *   shard and evicts an expired one, else the least recently used of them
 *   (Redis's approximated LRU), so it never takes a second lock.
 */
#include "tables/key.h"
#include "tables/repl.h"
#include "tables/tables.h"
#include "tables/tables_int.h"
#include "tables/wal.h"

#include "proto/err.h"
#include "proto/term.h"
#include "util/log.h"
#include "util/shash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 5
#define EVICT_TRIES 8

struct gr_table {
    struct gr_table *next; /* registry list (ts->mu) */
    _Atomic int refs;      /* registry 1 + open handles */
    gr_tables *ts;         /* engine */
    char name[GR_TABLE_NAME_MAX + 1];
    gr_table_opts opts;                                  /* normalized at create */
    uint32_t shard_bits;                                 /* set: log2 shards */
    uint32_t nshards;                                    /* 1 << shard_bits */
    gr_tshard *shards;                                   /* nshards */
    _Atomic uint64_t entries, bytes, evictions, expired; /* see gr_table_info */
    _Atomic uint64_t snapshots;
    _Atomic uint32_t sweep;       /* next shard gr_table_expire looks at */
    _Atomic uint64_t ttl_entries; /* entries with an expiry: 0 means nothing to sweep */
    char *dir;                    /* disk: DATA/tables/NAME */
    gr_wal *wal;                  /* disk: the log */
    pthread_mutex_t snap_mu;      /* one snapshot at a time */
    int load_error;               /* failed disk table: why; no shards then */
    _Atomic bool dropped;         /* dropped: its directory is gone (or reused), never written */
    _Atomic uint64_t tombs;       /* replicated: tombstones among entries */
    _Atomic uint64_t empties;     /* maps/sets with no live field or member, among entries */
    _Atomic uint64_t dig[GR_TDIGEST_BUCKETS]; /* replicated: XOR of entry hashes per bucket */
    uint8_t skey[GR_SHASH_KEYBYTES]; /* set: the store hash's secret key (random, this run) */
};

struct gr_tables {
    gr_tables_config cfg;    /* copy */
    char *dir;               /* DATA/tables, or NULL */
    pthread_mutex_t mu;      /* guards the list and the maintenance fields */
    gr_table *list;          /* tables */
    _Atomic uint64_t hlc;    /* last HLC handed out */
    pthread_cond_t cv;       /* wakes the maintenance thread (kick, stop) */
    pthread_t maint;         /* maintenance thread, if maint_on */
    bool maint_on;           /* started */
    bool maint_stop;         /* maintenance thread: quit */
    bool maint_kick;         /* maintenance thread: a log is over its snapshot size */
    gr_trepl *repl;          /* replication state (repl.c) */
    _Atomic uint64_t mapped; /* bytes of set stores' slot arrays in own pages (store_set.c) */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t now_ms(gr_tables *ts)
{
    struct timespec t;

    if (ts->cfg.now_ms) {
        return ts->cfg.now_ms(ts->cfg.clock_ud);
    }
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Next HLC: (wall ms << 16 | logical), strictly increasing. */
static uint64_t hlc_next(gr_tables *ts, uint64_t ms)
{
    uint64_t old = atomic_load(&ts->hlc), nw;

    do {
        nw = ms << 16;
        if (nw <= old) {
            nw = old + 1;
        }
    } while (!atomic_compare_exchange_weak(&ts->hlc, &old, nw));
    return nw;
}

static void hlc_seen(gr_tables *ts, uint64_t h)
{
    uint64_t old = atomic_load(&ts->hlc);

    while (old < h && !atomic_compare_exchange_weak(&ts->hlc, &old, h)) {
    }
}

void gr_tbuf_free(gr_tbuf *b)
{
    if (b) {
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
    }
}

int gr_tbuf_reserve(gr_tbuf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 64;
    uint8_t *p;

    if (b->cap - b->len >= extra) {
        return 0;
    }
    while (cap - b->len < extra) {
        cap *= 2;
    }
    if (!(p = realloc(b->p, cap))) {
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int gr_tbuf_put(gr_tbuf *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0; /* nothing to copy (p may be NULL) */
    }
    if (gr_tbuf_reserve(b, n) < 0) {
        return -ENOMEM;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Absent for every read and conditional write: a tombstone, or past its TTL. */
static bool expired(const gr_tent *e, uint64_t now)
{
    uint64_t x = gr_tent_exp(e);

    return (e->flags & GR_TENT_TOMB) || (x && now >= x);
}

/* Last access (wall s) of a cache table's entry; 0 without the ext word. */
static uint32_t atime_of(gr_tent *e)
{
    gr_text *x = gr_tent_ext(e);

    return x ? atomic_load_explicit(&x->atime, memory_order_relaxed) : 0;
}

/* Absent for reads: expired, or a map or set with nothing live in it. */
static bool absent(const gr_tent *e, uint64_t now)
{
    return expired(e, now) || (e->crdt & GR_TC_EMPTY);
}

static gr_tval_kind kind_of(const gr_tent *e)
{
    return (e->flags & GR_TENT_MAP)       ? GR_TVAL_MAP
           : (e->flags & GR_TENT_ASET)    ? GR_TVAL_SET
           : (e->flags & GR_TENT_COUNTER) ? GR_TVAL_COUNTER
                                          : GR_TVAL_PLAIN;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* An entry's digest hash: everything a replica must agree on (the value is
 * determined by key and version, a counter's by its components). hash: the
 * key's public hash (gr_tkey_hash), which every replica computes alike. */
static uint64_t ent_hash(gr_tent *e, uint64_t hash)
{
    const gr_tcnt *c = gr_tent_cnt(e);
    uint64_t h = mix64(hash ^ 0x9e3779b97f4a7c15ull);

    h = mix64(h ^ e->hlc);
    h = mix64(h ^ e->origin);
    h = mix64(h ^ gr_tent_exp(e));
    h = mix64(h ^ (e->flags & (GR_TENT_TOMB | GR_TENT_COUNTER | GR_TENT_MAP | GR_TENT_ASET)));
    if (e->flags & (GR_TENT_MAP | GR_TENT_ASET)) {
        /* a merged state is not determined by its version: hash its bytes */
        h = mix64(h ^ gr_tkey_hash(gr_tent_val(e), e->vlen));
    }
    for (int i = 0; i < e->ncnt; i++) {
        h = mix64(h ^ c[i].node);
        h = mix64(h ^ c[i].incs);
        h = mix64(h ^ c[i].decs);
    }
    return h | 1; /* never 0: a zero bucket means an empty one */
}

unsigned gr_tkey_bucket(const void *key, size_t klen)
{
    return (unsigned)(gr_tkey_hash(key, klen) >> 56);
}

/* ---- the key's two hashes ------------------------------------------------------------------
 *
 * A `set` table's store (shards, slots, scan order and cursors) is indexed by
 * the store hash, keyed with the table's secret random skey (util/shash.h),
 * so a client cannot choose keys that collide in it; replication (digest
 * buckets, entry digests) uses the public hash, which every replica computes
 * alike. An ordered_set is ordered by its keys, not a hash: its store hash is
 * the public one. ent_spec.hash, gr_tkey.hash, slots and every `hash`
 * parameter below are store hashes. */

static uint64_t key_hash(const gr_table *t, const uint8_t *p, size_t n)
{
    return t->opts.kind == GR_TABLE_SET ? gr_shash(t->skey, p, n) : gr_tkey_hash(p, n);
}

/* The public hash of key p[0..n), whose store hash is `hash`. */
static uint64_t pub_hash(const gr_table *t, uint64_t hash, const uint8_t *p, size_t n)
{
    return t->opts.kind == GR_TABLE_SET ? gr_tkey_hash(p, n) : hash;
}

/* The store hash of e's key, recomputed (paths with no slot or key at hand). */
static uint64_t tent_hash(const gr_table *t, gr_tent *e)
{
    return key_hash(t, gr_tent_key(e), e->klen);
}

/* gr_tkey_make, and the key's store hash in k->hash. */
static int tkey_make(const gr_table *t, gr_tkey *k, const void *buf, size_t len)
{
    int r = gr_tkey_make(k, buf, len);

    if (r == 0) {
        k->hash = key_hash(t, k->p, k->len);
    }
    return r;
}

static gr_tshard *shard_of(gr_table *t, uint64_t hash)
{
    return &t->shards[t->shard_bits ? hash >> (64 - t->shard_bits) : 0];
}

static gr_tent *st_find(gr_table *t, gr_tshard *s, const gr_tkey *k)
{
    return t->opts.kind == GR_TABLE_SET ? gr_sset_find(s, t->shard_bits, k->hash, k->p, k->len)
                                        : gr_oset_find(s, k->p, k->len);
}

static void meta_of(const gr_tent *e, gr_tmeta *m)
{
    if (m) {
        m->version = e->hlc;
        m->origin = e->origin;
        m->expire_ms = gr_tent_exp(e);
        m->kind = kind_of(e);
    }
}

/* Pack a signed int as msgpack (shortest). Returns bytes written (<= 9). */
static size_t pack_int(uint8_t *b, int64_t v)
{
    if (v >= 0 && v < 128) {
        b[0] = (uint8_t)v;
        return 1;
    }
    if (v < 0 && v >= -32) {
        b[0] = (uint8_t)(int8_t)v;
        return 1;
    }
    b[0] = v >= 0 ? 0xcf : 0xd3;
    for (int i = 0; i < 8; i++) {
        b[1 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    }
    return 9;
}

/* Read a msgpack integer that is the whole of p[0..n). 0 or GR_EWRONGTYPE. */
static int read_int(const uint8_t *p, size_t n, int64_t *ret)
{
    uint64_t u = 0;
    int nb;

    if (n == 1 && (p[0] <= 0x7f || p[0] >= 0xe0)) {
        *ret = p[0] <= 0x7f ? p[0] : (int8_t)p[0];
        return 0;
    }
    if (n < 2 || !((p[0] >= 0xcc && p[0] <= 0xcf) || (p[0] >= 0xd0 && p[0] <= 0xd3))) {
        return GR_EWRONGTYPE;
    }
    nb = 1 << ((p[0] - (p[0] >= 0xd0 ? 0xd0 : 0xcc)) & 3);
    if (n != (size_t)nb + 1) {
        return GR_EWRONGTYPE;
    }
    for (int i = 0; i < nb; i++) {
        u = u << 8 | p[1 + i];
    }
    if (p[0] >= 0xd0) {
        if (nb < 8 && (u >> (nb * 8 - 1)) & 1) {
            u |= ~(uint64_t)0 << (nb * 8);
        }
        *ret = (int64_t)u;
    } else {
        if (u > INT64_MAX) {
            return GR_EWRONGTYPE;
        }
        *ret = (int64_t)u;
    }
    return 0;
}

/* ---- shard locking: the rwlock plus lock-free-entry readers -----------------------------------
 *
 * A get is the hottest read, and a pthread rwlock makes every reader write
 * the lock word: two threads reading one shard bounce its cache line between
 * their cores. So gets enter a shard by incrementing one of GR_TRD_SLOTS
 * counters (chosen by a hash of the thread, each on its own cache line) and
 * checking the shard's writer flag; writers take the rwlock, raise the flag
 * and wait until every counter is zero (readers stay inside for one lookup
 * and one copy). A get that finds the flag raised leaves its counter and
 * takes the rwlock for reading instead, so it waits for the writer. Other
 * readers (scans, walks, snapshots) take the rwlock as before: they exclude
 * writers and share the shard with gets. The flag and the counters are
 * sequentially consistent (a Dekker pair: a reader increments then reads the
 * flag, a writer raises the flag then reads the counters, so one of them sees
 * the other); the flag's release at unlock and the counters' release at a
 * reader's exit order the store's changes before and after (ETS's
 * read_concurrency does the same with per-scheduler reader counters). */

/* This thread's reader counter: a multiplicative hash of its pthread id
 * (thread control blocks sit at page-aligned distances, so low bits alone
 * would all be equal). Collisions only share a counter. */
static unsigned rd_slot(void)
{
    return (unsigned)(((uint64_t)(uintptr_t)pthread_self() * 0x9e3779b97f4a7c15ull) >>
                      (64 - GR_TRD_BITS));
}

/* Enter s as a get: true, or false when a writer holds or takes the shard
 * (the caller then takes the rwlock for reading). */
static bool rd_enter(gr_tshard *s, unsigned slot)
{
    atomic_fetch_add_explicit(&s->rd[slot].n, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&s->wflag, memory_order_seq_cst)) {
        return true;
    }
    atomic_fetch_sub_explicit(&s->rd[slot].n, 1, memory_order_release);
    return false;
}

static void rd_exit(gr_tshard *s, unsigned slot)
{
    atomic_fetch_sub_explicit(&s->rd[slot].n, 1, memory_order_release);
}

/* Lock s for writing: the rwlock, then no get inside. */
static void wr_lock(gr_tshard *s)
{
    pthread_rwlock_wrlock(&s->lock);
    atomic_store_explicit(&s->wflag, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < GR_TRD_SLOTS; i++) {
        for (unsigned spin = 0; atomic_load_explicit(&s->rd[i].n, memory_order_seq_cst); spin++) {
            if (spin >= 64) {
                sched_yield(); /* a reader descheduled inside its lookup */
            }
        }
    }
}

static void wr_unlock(gr_tshard *s)
{
    atomic_store_explicit(&s->wflag, 0, memory_order_release);
    pthread_rwlock_unlock(&s->lock);
}

/* ---- entries ------------------------------------------------------------------------------ */

typedef struct ent_spec {
    const uint8_t *key; /* canonical */
    size_t klen;
    uint64_t hash;
    const uint8_t *val;
    size_t vlen;
    const gr_tcnt *cnt; /* counter components or NULL */
    uint8_t ncnt;
    uint8_t flags;
    uint64_t hlc, origin, expire_ms;
} ent_spec;

/* New entry, to replace `old` (or NULL); caller holds the shard's write lock
 * (ordered: level draw). A replacement keeps old's skiplist level, so the
 * store splices it in with one search. */
static gr_tent *ent_new(gr_table *t, gr_tshard *s, const ent_spec *sp, const gr_tent *old)
{
    bool ordered = t->opts.kind == GR_TABLE_ORDERED_SET;
    uint8_t level = !ordered ? 0 : old ? gr_tent_level(old) : gr_oset_level(s);
    unsigned opt = (sp->expire_ms ? GR_TE_EXP : 0u) | (ordered || t->opts.cache ? GR_TE_EXT : 0u);
    size_t sz = GR_TENT_SIZE(opt, level, sp->ncnt, sp->klen, sp->vlen);
    gr_tent *e;

    if ((!old && t->opts.kind == GR_TABLE_SET && gr_sset_reserve(s, t->shard_bits) < 0) ||
        !(e = malloc(sz))) {
        return NULL;
    }
    e->hlc = sp->hlc;
    e->origin = sp->origin;
    e->klen = (uint16_t)sp->klen; /* <= GR_TKEY_MAX */
    e->vlen = (uint32_t)sp->vlen;
    e->flags = sp->flags & 0xfu;
    e->crdt = 0;
    e->opt = opt & 0x3u;
    e->ncnt = sp->ncnt;
    if (opt & GR_TE_EXP) {
        gr_tent_set_exp(e, sp->expire_ms);
    }
    if (opt & GR_TE_EXT) {
        gr_text *x = gr_tent_ext(e);

        /* access times are kept for the LRU of cache tables only: no clock call else */
        atomic_init(&x->atime, t->opts.cache ? (uint32_t)(now_ms(t->ts) / 1000) : 0);
        x->level = level;
        memset(x->pad, 0, sizeof(x->pad));
    }
    if (sp->ncnt) {
        memcpy(gr_tent_cnt(e), sp->cnt, sp->ncnt * sizeof(gr_tcnt));
    }
    memcpy(gr_tent_key(e), sp->key, sp->klen);
    memcpy(gr_tent_val(e), sp->val, sp->vlen);
    if (sp->flags & (GR_TENT_MAP | GR_TENT_ASET)) {
        uint32_t live;
        bool garbage;

        gr_crdt_summary(sp->val, sp->vlen, &live, &garbage);
        /* an empty state is garbage too: the sweep removes it once it is old */
        e->crdt = ((garbage || !live ? GR_TC_GARBAGE : 0u) | (!live ? GR_TC_EMPTY : 0u)) & 0x3u;
    }
    return e;
}

/* Memory charged to the table for an entry: the heap chunk its allocation
 * takes (GR_TENT_CHUNK: header, optional words, links, counters, key and
 * value, plus the allocator's header and rounding) and, for `set`, the
 * index's share (a 16-byte slot at the store's average load,
 * GR_SSET_SLOT_SHARE). Derived from the entry's fields, not stored, and the
 * same for equal entries (malloc_usable_size is not: glibc may hand out a
 * larger chunk when the remainder would be too small to split). */
static uint64_t ent_bytes(const gr_table *t, const gr_tent *e)
{
    return GR_TENT_CHUNK(gr_tent_size(e)) + (t->opts.kind == GR_TABLE_SET ? GR_SSET_SLOT_SHARE : 0);
}

/* Serialize an entry record (tables_int.h) into b. */
static int rec_build(gr_tbuf *b, int type, const ent_spec *sp)
{
    uint8_t h[GR_TREC_HDR] = {0};
    uint64_t f[3] = {sp->hlc, sp->origin, sp->expire_ms};

    b->len = 0;
    h[0] = (uint8_t)type;
    h[1] = sp->flags;
    h[2] = sp->ncnt;
    for (int i = 0; i < 4; i++) {
        h[4 + i] = (uint8_t)(sp->klen >> (8 * i));
        h[8 + i] = (uint8_t)((type == GR_TREC_ENTRY ? sp->vlen : 0) >> (8 * i));
    }
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 8; i++) {
            h[16 + 8 * j + i] = (uint8_t)(f[j] >> (8 * i));
        }
    }
    if (gr_tbuf_put(b, h, sizeof(h)) < 0) {
        return -ENOMEM;
    }
    for (int c = 0; c < sp->ncnt; c++) {
        uint64_t w[3] = {sp->cnt[c].node, sp->cnt[c].incs, sp->cnt[c].decs};
        uint8_t x[24];

        for (int j = 0; j < 3; j++) {
            for (int i = 0; i < 8; i++) {
                x[8 * j + i] = (uint8_t)(w[j] >> (8 * i));
            }
        }
        if (gr_tbuf_put(b, x, sizeof(x)) < 0) {
            return -ENOMEM;
        }
    }
    if (gr_tbuf_put(b, sp->key, sp->klen) < 0 ||
        (type == GR_TREC_ENTRY && gr_tbuf_put(b, sp->val, sp->vlen) < 0)) {
        return -ENOMEM;
    }
    return 0;
}

static void spec_of(const gr_table *t, gr_tent *e, ent_spec *sp)
{
    *sp = (ent_spec){.key = gr_tent_key(e),
                     .klen = e->klen,
                     .hash = tent_hash(t, e),
                     .val = gr_tent_val(e),
                     .vlen = e->vlen,
                     .cnt = gr_tent_cnt(e),
                     .ncnt = e->ncnt,
                     .flags = e->flags,
                     .hlc = e->hlc,
                     .origin = e->origin,
                     .expire_ms = gr_tent_exp(e)};
}

/* Log a record (disk tables; shard write lock held). *ret_b: ticket to wait. */
static int log_rec(gr_table *t, int type, const ent_spec *sp, gr_wal_batch **ret_b)
{
    gr_tbuf b = {0};
    gr_wal_batch *tk = NULL;
    int r;

    if (!t->wal) {
        return 0;
    }
    if ((r = rec_build(&b, type, sp)) == 0) {
        r = gr_wal_append(t->wal, b.p, b.len, &tk);
    }
    gr_tbuf_free(&b);
    if (r == 0 && tk) {
        if (*ret_b) {
            /* One operation logs at most two records (an eviction and the write);
             * both land in the same or consecutive batches: wait for the later. */
            gr_wal_wait(t->wal, *ret_b);
        }
        *ret_b = tk;
    }
    return r;
}

/* Bytes a write of e over old (or NULL) adds to the table (0 if it shrinks). */
static uint64_t grow_of(const gr_table *t, const gr_tent *e, const gr_tent *old)
{
    uint64_t eb = ent_bytes(t, e), ob = old ? ent_bytes(t, old) : 0;

    return eb > ob ? eb - ob : 0;
}

/* Swap `e` in for `old` (either may be NULL; both of one key, whose hash is
 * `hash`), account and free old. Write lock held. */
static void apply(gr_table *t, gr_tshard *s, uint64_t hash, gr_tent *e, gr_tent *old)
{
    uint64_t eb = e ? ent_bytes(t, e) : 0, ob = old ? ent_bytes(t, old) : 0;

    if (t->opts.kind == GR_TABLE_SET) {
        if (e) {
            gr_sset_put(s, t->shard_bits, hash, e, old);
        } else if (old) {
            gr_sset_remove(s, t->shard_bits, hash, old);
        }
    } else {
        if (e) {
            gr_oset_put(s, e, old);
        } else if (old) {
            gr_oset_remove(s, old);
        }
    }
    if (e && ((e->opt & GR_TE_EXP) || (e->flags & GR_TENT_TOMB) || (e->crdt & GR_TC_GARBAGE))) {
        atomic_fetch_add(&t->ttl_entries, 1);
    }
    if (old &&
        ((old->opt & GR_TE_EXP) || (old->flags & GR_TENT_TOMB) || (old->crdt & GR_TC_GARBAGE))) {
        atomic_fetch_sub(&t->ttl_entries, 1);
    }
    if (e && (e->crdt & GR_TC_EMPTY)) {
        atomic_fetch_add(&t->empties, 1);
    }
    if (old && (old->crdt & GR_TC_EMPTY)) {
        atomic_fetch_sub(&t->empties, 1);
    }
    if (t->opts.replicated) {
        const gr_tent *k = e ? e : old;
        uint64_t ph = k ? pub_hash(t, hash, gr_tent_key((gr_tent *)k), k->klen) : 0;

        if (e) {
            atomic_fetch_xor(&t->dig[ph >> 56], ent_hash(e, ph));
            if (e->flags & GR_TENT_TOMB) {
                atomic_fetch_add(&t->tombs, 1);
            }
        }
        if (old) {
            atomic_fetch_xor(&t->dig[ph >> 56], ent_hash(old, ph));
            if (old->flags & GR_TENT_TOMB) {
                atomic_fetch_sub(&t->tombs, 1);
            }
        }
    }
    /* one atomic update of the table's totals at most (none when a value is
     * replaced by one of the same size: the common put) */
    if (e && old) {
        if (eb != ob) {
            atomic_fetch_add(&t->bytes, eb - ob); /* modulo 2^64 */
        }
    } else if (e) {
        atomic_fetch_add(&t->bytes, eb);
        atomic_fetch_add(&t->entries, 1);
    } else if (old) {
        atomic_fetch_sub(&t->bytes, ob);
        atomic_fetch_sub(&t->entries, 1);
    }
    free(old);
}

/* Whether a write of sp can rewrite `old` in place (overwrite): both are
 * plain values (no counter, map, set or tombstone) of the same size, both
 * with an expiry or both without (the expiry word is there or not), so the
 * allocation, the store's slot or skiplist links and the charged bytes all
 * stay as they are. */
static bool can_overwrite(const gr_tent *old, const ent_spec *sp)
{
    return old->vlen == sp->vlen && old->klen == sp->klen && !old->flags && !old->ncnt &&
           !old->crdt && !sp->flags && !sp->ncnt && !(old->opt & GR_TE_EXP) == !sp->expire_ms;
}

/* Rewrite `old` in place with sp (can_overwrite holds; the key is the same):
 * version, origin, expiry, access time and value, with the accounting
 * apply() would do for a swap. Caller holds the shard's write lock; every
 * reader of an entry holds at least the read lock and copies what it
 * returns, so none sees the entry half-written. This saves the new entry's
 * malloc, the old one's free and the store's second probe of a swap. */
static void overwrite(gr_table *t, gr_tent *old, const ent_spec *sp)
{
    uint64_t ph = t->opts.replicated ? pub_hash(t, sp->hash, sp->key, sp->klen) : 0;

    if (t->opts.replicated) {
        atomic_fetch_xor(&t->dig[ph >> 56], ent_hash(old, ph));
    }
    old->hlc = sp->hlc;
    old->origin = sp->origin;
    if (old->opt & GR_TE_EXP) {
        gr_tent_set_exp(old, sp->expire_ms);
    }
    if (t->opts.cache) {
        atomic_store_explicit(&gr_tent_ext(old)->atime, (uint32_t)(now_ms(t->ts) / 1000),
                              memory_order_relaxed);
    }
    memcpy(gr_tent_val(old), sp->val, sp->vlen);
    if (t->opts.replicated) {
        atomic_fetch_xor(&t->dig[ph >> 56], ent_hash(old, ph));
    }
}

/* ---- replication: the merge rule ----------------------------------------------------------- */

typedef struct ver {
    uint64_t h, o; /* HLC, origin */
} ver;

static int ver_cmp(ver a, ver b)
{
    if (a.h != b.h) {
        return a.h < b.h ? -1 : 1;
    }
    return a.o < b.o ? -1 : a.o > b.o;
}

/* The epoch of a state: a live counter's is the write it started from (its
 * node-0 component, else (0, 0): it started from nothing); anything else's
 * (a plain value, a tombstone, an expired entry) is its own version. */
static ver epoch_of(uint8_t flags, const gr_tcnt *c, int n, uint64_t hlc, uint64_t origin,
                    bool dead, const uint8_t *val, size_t vlen)
{
    if (!dead && (flags & (GR_TENT_MAP | GR_TENT_ASET))) {
        gr_crdt_rd rd;

        return gr_crdt_open(&rd, val, vlen) == 0 ? (ver){rd.eh, rd.eo} : (ver){0, 0};
    }
    if (!dead && (flags & GR_TENT_COUNTER)) {
        for (int i = 0; i < n; i++) {
            if (c[i].node == 0) {
                return (ver){c[i].incs, c[i].decs};
            }
        }
        return (ver){0, 0};
    }
    return (ver){hlc, origin};
}

/* Of two live states grown from one write (equal epochs), the higher rank
 * wins: the write itself 0, a counter 1, a map 2, a set 3. */
static int rank_of(uint8_t flags, bool dead)
{
    return dead                        ? 0
           : (flags & GR_TENT_ASET)    ? 3
           : (flags & GR_TENT_MAP)     ? 2
           : (flags & GR_TENT_COUNTER) ? 1
                                       : 0;
}

/* The sum of a counter's components (node 0, the epoch, excluded), saturated. */
static int64_t cnt_total(const gr_tcnt *c, int n)
{
    __int128 t = 0;

    for (int i = 0; i < n; i++) {
        if (c[i].node != 0) {
            t += (__int128)c[i].incs - (__int128)c[i].decs;
        }
    }
    return t > INT64_MAX ? INT64_MAX : t < INT64_MIN ? INT64_MIN : (int64_t)t;
}

/* Sort components by node (insertion sort: a handful). */
static void cnt_sort(gr_tcnt *c, int n)
{
    for (int i = 1; i < n; i++) {
        gr_tcnt x = c[i];
        int j = i - 1;

        for (; j >= 0 && c[j].node > x.node; j--) {
            c[j + 1] = c[j];
        }
        c[j + 1] = x;
    }
}

/* Apply a replica's state `in` (in->flags may hold GR_TENT_TOMB) to key k in
 * shard s, whose write lock the caller holds. Logged if `log` (not while
 * loading). 1: changed, 0: not, or an error. */
static int merge_locked(gr_table *t, gr_tshard *s, const ent_spec *in, uint64_t now, bool log,
                        gr_wal_batch **tk)
{
    gr_tkey k = {.p = (uint8_t *)in->key, .len = in->klen, .hash = in->hash};
    gr_tent *old = st_find(t, s, &k), *e;
    bool in_dead = (in->flags & GR_TENT_TOMB) || (in->expire_ms && now >= in->expire_ms);
    bool old_dead = old && expired(old, now);
    int in_rank = rank_of(in->flags, in_dead);
    int old_rank = old ? rank_of(old->flags, old_dead) : 0;
    bool in_cnt = in_rank == 1, old_cnt = old_rank == 1;
    gr_tcnt cnt[255];
    uint8_t vbuf[9];
    gr_tbuf mbuf = {0};
    ent_spec sp = *in;
    int c, r;

    if (old) {
        c = ver_cmp(
            epoch_of(in->flags, in->cnt, in->ncnt, in->hlc, in->origin, in_dead, in->val, in->vlen),
            epoch_of(old->flags, gr_tent_cnt(old), old->ncnt, old->hlc, old->origin, old_dead,
                     gr_tent_val(old), old->vlen));
        if (c < 0) {
            return 0;
        }
        if (c == 0 && in_rank >= 2 && in_rank == old_rank) {
            /* one map or set grown from one write: merged field/member-wise */
            bool later = ver_cmp((ver){in->hlc, in->origin}, (ver){old->hlc, old->origin}) > 0;

            if ((r = gr_crdt_merge(&mbuf, gr_tent_val(old), old->vlen, in->val, in->vlen)) < 0) {
                gr_tbuf_free(&mbuf);
                return r;
            }
            if (!later && mbuf.len == old->vlen &&
                memcmp(mbuf.p, gr_tent_val(old), mbuf.len) == 0) {
                gr_tbuf_free(&mbuf);
                return 0; /* nothing new */
            }
            sp.val = mbuf.p;
            sp.vlen = mbuf.len;
            sp.cnt = NULL;
            sp.ncnt = 0;
            if (!later) {
                sp.hlc = old->hlc;
                sp.origin = old->origin;
                sp.expire_ms = gr_tent_exp(old);
            }
        } else if (c == 0 && in_rank != old_rank) {
            if (old_rank > in_rank) {
                return 0; /* what grew from that write wins */
            }
        } else if (c == 0) {
            if (in_cnt && old_cnt) {
                /* one epoch: component-wise max, the later version */
                const gr_tcnt *oc = gr_tent_cnt(old);
                int n = 0, i = 0, j = 0;
                bool later = ver_cmp((ver){in->hlc, in->origin}, (ver){old->hlc, old->origin}) > 0;

                while (i < old->ncnt || j < in->ncnt) {
                    gr_tcnt x;

                    if (n == 255) {
                        return GR_EFULL;
                    }
                    if (j >= in->ncnt || (i < old->ncnt && oc[i].node < in->cnt[j].node)) {
                        x = oc[i++];
                    } else if (i >= old->ncnt || in->cnt[j].node < oc[i].node) {
                        x = in->cnt[j++];
                    } else {
                        x = oc[i];
                        x.incs = oc[i].incs > in->cnt[j].incs ? oc[i].incs : in->cnt[j].incs;
                        x.decs = oc[i].decs > in->cnt[j].decs ? oc[i].decs : in->cnt[j].decs;
                        i++;
                        j++;
                    }
                    cnt[n++] = x;
                }
                if (!later && n == old->ncnt && memcmp(cnt, oc, n * sizeof(gr_tcnt)) == 0) {
                    return 0; /* nothing new */
                }
                sp.cnt = cnt;
                sp.ncnt = (uint8_t)n;
                sp.flags = GR_TENT_COUNTER;
                if (!later) {
                    sp.hlc = old->hlc;
                    sp.origin = old->origin;
                    sp.expire_ms = gr_tent_exp(old);
                }
                sp.val = vbuf;
                sp.vlen = pack_int(vbuf, cnt_total(cnt, n));
            } else if (in_cnt == old_cnt && !(in_dead && !old_dead)) {
                return 0; /* the same write (or both gone) */
            } else if (old_cnt) {
                return 0; /* the counter grown from that write wins */
            }
        }
    }
    hlc_seen(t->ts, sp.hlc);
    if (in_dead) { /* stored as a tombstone at its version */
        sp.val = (const uint8_t *)"";
        sp.vlen = 0;
        sp.cnt = NULL;
        sp.ncnt = 0;
        sp.expire_ms = 0;
        sp.flags = GR_TENT_TOMB;
    } else if (sp.flags & GR_TENT_COUNTER) {
        if (sp.cnt != cnt) {
            if (sp.ncnt > 0) {
                memcpy(cnt, sp.cnt, sp.ncnt * sizeof(gr_tcnt));
            }
            cnt_sort(cnt, sp.ncnt);
            sp.cnt = cnt;
        }
        sp.val = vbuf;
        sp.vlen = pack_int(vbuf, cnt_total(cnt, sp.ncnt));
    }
    e = ent_new(t, s, &sp, old);
    gr_tbuf_free(&mbuf); /* copied into e */
    if (!e) {
        return -ENOMEM;
    }
    if (log && (r = log_rec(t, in_dead ? GR_TREC_DELETE : GR_TREC_ENTRY, &sp, tk)) < 0) {
        free(e);
        return r;
    }
    apply(t, s, in->hash, e, old);
    return 1;
}

/* e as replication sees it. ph: its key's public hash. */
static void trent_of(const gr_tent *e, uint64_t ph, gr_trent *re)
{
    gr_tent *x = (gr_tent *)e;

    *re = (gr_trent){.key = gr_tent_key(x),
                     .klen = e->klen,
                     .val = gr_tent_val(x),
                     .vlen = e->vlen,
                     .tomb = (e->flags & GR_TENT_TOMB) != 0,
                     .counter = (e->flags & GR_TENT_COUNTER) != 0,
                     .crdt = (e->flags & GR_TENT_MAP)    ? GR_TVAL_MAP
                             : (e->flags & GR_TENT_ASET) ? GR_TVAL_SET
                                                         : 0,
                     .cnt = gr_tent_cnt(x),
                     .ncnt = e->ncnt,
                     .hlc = e->hlc,
                     .origin = e->origin,
                     .expire_ms = gr_tent_exp(e),
                     .hash = ent_hash(x, ph)};
}

/* Tell the replication state about a local write on a replicated table
 * (shard lock held: the queue takes its own mutex). hash: the key's store
 * hash. */
static void repl_notify(gr_table *t, const gr_tent *e, uint64_t hash)
{
    gr_trent re;

    if (t->opts.replicated && t->ts->repl) {
        trent_of(e, pub_hash(t, hash, gr_tent_key((gr_tent *)e), e->klen), &re);
        gr_trepl_on_write(t->ts->repl, t->name, &re);
    }
}

int gr_table_merge(gr_table *t, const gr_trent *in)
{
    gr_tkey k;
    gr_tshard *s;
    gr_wal_batch *tk = NULL;
    ent_spec sp;
    int r;

    if (!t->opts.replicated) {
        return GR_EBADARG;
    }
    if (!in->tomb && (!in->val || in->vlen == 0 || gr_term_validate(in->val, in->vlen) < 0)) {
        return GR_EBADTERM;
    }
    if (in->ncnt && !in->cnt) {
        return GR_EBADARG;
    }
    if (in->crdt && (in->counter || (in->crdt != GR_TVAL_MAP && in->crdt != GR_TVAL_SET) ||
                     (!in->tomb &&
                      gr_crdt_validate(in->val, in->vlen,
                                       in->crdt == GR_TVAL_MAP ? GR_CRDT_MAP : GR_CRDT_SET) < 0))) {
        return GR_EBADTERM;
    }
    if ((r = tkey_make(t, &k, in->key, in->klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    sp = (ent_spec){.key = k.p,
                    .klen = k.len,
                    .hash = k.hash,
                    .val = in->tomb ? (const uint8_t *)"" : in->val,
                    .vlen = in->tomb ? 0 : in->vlen,
                    .cnt = in->counter ? in->cnt : NULL,
                    .ncnt = in->counter ? in->ncnt : 0,
                    .flags = (uint8_t)((in->tomb ? GR_TENT_TOMB : 0) |
                                       (in->counter ? GR_TENT_COUNTER : 0) |
                                       (in->tomb                  ? 0
                                        : in->crdt == GR_TVAL_MAP ? GR_TENT_MAP
                                        : in->crdt == GR_TVAL_SET ? GR_TENT_ASET
                                                                  : 0)),
                    .hlc = in->hlc,
                    .origin = in->origin,
                    .expire_ms = in->expire_ms};
    s = shard_of(t, k.hash);
    wr_lock(s);
    r = merge_locked(t, s, &sp, now_ms(t->ts), true, &tk);
    wr_unlock(s);
    gr_tkey_done(&k);
    if (t->wal) { /* a replica's write is as durable here as a local one */
        int w = gr_wal_wait(t->wal, tk);

        r = r < 0 ? r : w < 0 ? w : r;
    }
    return r;
}

void gr_table_digest(gr_table *t, uint64_t ret_dig[GR_TDIGEST_BUCKETS])
{
    for (int i = 0; i < GR_TDIGEST_BUCKETS; i++) {
        ret_dig[i] = atomic_load(&t->dig[i]);
    }
}

int gr_table_walk(gr_table *t, const uint8_t *mask, int (*fn)(void *ud, const gr_trent *e),
                  void *ud)
{
    int r = 0;

    for (uint32_t i = 0; i < t->nshards && r == 0; i++) {
        gr_tshard *s = &t->shards[i];
        gr_tent *e;

        pthread_rwlock_rdlock(&s->lock);
        if (t->opts.kind == GR_TABLE_SET) {
            /* slot by slot; the digest bucket is the top byte of the
             * public hash, not of the slot's (store) hash */
            for (size_t j = 0; j < s->cap && r == 0; j++) {
                gr_tent *x = s->slots[j].e;
                uint64_t ph = x ? gr_tkey_hash(gr_tent_key(x), x->klen) : 0;
                unsigned b = (unsigned)(ph >> 56);
                gr_trent re;

                if (!x || (mask && !(mask[b >> 3] & (1u << (b & 7))))) {
                    continue;
                }
                trent_of(x, ph, &re);
                r = fn(ud, &re);
            }
            pthread_rwlock_unlock(&s->lock);
            continue;
        }
        e = gr_oset_seek(s, NULL, 0, 0);
        for (; e && r == 0; e = gr_tent_fwd(e)[0]) {
            uint64_t h = gr_tkey_hash(gr_tent_key(e), e->klen); /* ordered_set: public */
            unsigned b = (unsigned)(h >> 56);
            gr_trent re;

            if (mask && !(mask[b >> 3] & (1u << (b & 7)))) {
                continue;
            }
            trent_of(e, h, &re);
            r = fn(ud, &re);
        }
        pthread_rwlock_unlock(&s->lock);
    }
    return r;
}

/* Make room for `need` more bytes (+1 entry if `adds`) in shard s, sparing
 * `keep`. Write lock held. 0 or GR_EFULL. */
static int make_room(gr_table *t, gr_tshard *s, size_t need, bool adds, gr_tent *keep, uint64_t now,
                     gr_wal_batch **tk)
{
    if (!t->opts.max_entries && !t->opts.max_bytes) {
        return 0;
    }
    for (int tries = 0;; tries++) {
        uint64_t n = atomic_load(&t->entries) + (adds ? 1 : 0);
        uint64_t b = atomic_load(&t->bytes) + need;
        gr_tent *victim = NULL;

        if ((!t->opts.max_entries || n <= t->opts.max_entries) &&
            (!t->opts.max_bytes || b <= t->opts.max_bytes)) {
            return 0;
        }
        if (!t->opts.cache || tries >= EVICT_TRIES) {
            return GR_EFULL;
        }
        for (int i = 0; i < SAMPLES; i++) {
            uint64_t rnd = s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
            gr_tent *c = t->opts.kind == GR_TABLE_SET ? gr_sset_sample(s, rnd >> 11)
                                                      : gr_oset_sample(s, rnd >> 11);

            if (!c || c == keep) {
                continue;
            }
            if (expired(c, now)) {
                victim = c;
                break;
            }
            if (!victim || atime_of(c) < atime_of(victim)) {
                victim = c;
            }
        }
        if (!victim) {
            return GR_EFULL; /* nothing evictable in this shard */
        }
        if (t->wal) {
            ent_spec sp;
            int r;

            spec_of(t, victim, &sp);
            sp.hlc = hlc_next(t->ts, now);
            if ((r = log_rec(t, GR_TREC_DELETE, &sp, tk)) < 0) {
                return r;
            }
        }
        if (expired(victim, now)) {
            atomic_fetch_add(&t->expired, 1);
        } else {
            atomic_fetch_add(&t->evictions, 1);
        }
        apply(t, s, tent_hash(t, victim), NULL, victim);
    }
}

/* ---- the table object --------------------------------------------------------------------- */

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > GR_TABLE_NAME_MAX || name[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

static int opts_norm(gr_table_opts *o)
{
    if ((unsigned)o->kind > GR_TABLE_ORDERED_SET || (unsigned)o->durability > GR_TABLE_DISK ||
        (unsigned)o->fsync > GR_FSYNC_NEVER) {
        return GR_EBADARG;
    }
    if (o->shards == 0) {
        o->shards = 16;
    }
    if (o->shards > 256 || (o->shards & (o->shards - 1))) {
        return GR_EBADARG;
    }
    if (o->kind == GR_TABLE_ORDERED_SET) {
        o->shards = 1;
    }
    if (o->interval_ms == 0) {
        o->interval_ms = GR_TABLE_INTERVAL_DEFAULT_MS;
    }
    if (o->max_value == 0) {
        o->max_value = GR_TABLE_VALUE_MAX_DEFAULT;
    }
    if (o->default_ttl_ms > (uint64_t)INT64_MAX / 2) {
        return GR_EBADARG; /* now + ttl must not wrap (every put would vanish) */
    }
    if (o->snapshot_bytes == 0) {
        o->snapshot_bytes = GR_TABLE_SNAPSHOT_BYTES_DEFAULT;
    }
    return 0;
}

static void table_destroy(gr_table *t)
{
    if (!t) {
        return;
    }
    gr_wal_close(t->wal);
    for (uint32_t i = 0; t->shards && i < t->nshards; i++) {
        if (t->opts.kind == GR_TABLE_SET) {
            gr_sset_free(&t->shards[i]);
        } else {
            gr_oset_free(&t->shards[i]);
        }
        pthread_rwlock_destroy(&t->shards[i].lock);
    }
    free(t->shards);
    pthread_mutex_destroy(&t->snap_mu);
    free(t->dir);
    free(t);
}

/* A new table object (not registered, no files). */
static int table_alloc(gr_tables *ts, const char *name, const gr_table_opts *opts, gr_table **ret_t)
{
    gr_table *t = calloc(1, sizeof(*t));

    if (!t) {
        return -ENOMEM;
    }
    atomic_init(&t->refs, 1);
    if (gr_shash_key_init(t->skey) < 0) {
        free(t);
        return -ENOMEM;
    }
    t->ts = ts;
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->opts = *opts;
    pthread_mutex_init(&t->snap_mu, NULL);
    t->nshards = opts->shards;
    while ((1u << t->shard_bits) < t->nshards) {
        t->shard_bits++;
    }
    if (!(t->shards = calloc(t->nshards, sizeof(*t->shards)))) {
        table_destroy(t);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < t->nshards; i++) {
        int r;

        pthread_rwlock_init(&t->shards[i].lock, NULL);
        t->shards[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
        t->shards[i].mapped = ts ? &ts->mapped : NULL;
        r = opts->kind == GR_TABLE_SET ? gr_sset_init(&t->shards[i], t->shard_bits)
                                       : gr_oset_init(&t->shards[i]);
        if (r < 0) {
            t->nshards = i + 1;
            table_destroy(t);
            return r;
        }
    }
    *ret_t = t;
    return 0;
}

static void table_unref(gr_table *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        table_destroy(t);
    }
}

static gr_table *find_locked(gr_tables *ts, const char *name)
{
    for (gr_table *t = ts->list; t; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

/* ---- disk: meta file, load ---------------------------------------------------------------- */

static const char *kind_s[] = {"set", "ordered_set"};
static const char *fsync_s[] = {"always", "interval", "never"};

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) < 0) {
        r = -errno;
    }
    close(fd);
    return r;
}

static int meta_write(const char *dir, const gr_table_opts *o)
{
    char *tmp = NULL, *fin = NULL;
    FILE *f;
    int r = 0;

    if (asprintf(&tmp, "%s/meta.tmp", dir) < 0 || asprintf(&fin, "%s/meta", dir) < 0) {
        free(tmp);
        return -ENOMEM;
    }
    if (!(f = fopen(tmp, "we"))) {
        r = -errno;
        goto out;
    }
    fprintf(f,
            "kind=%s\nfsync=%s\ninterval_ms=%" PRIu32 "\nmax_entries=%" PRIu64
            "\nmax_bytes=%" PRIu64 "\ncache=%d\ndefault_ttl_ms=%" PRIu64 "\nmax_value=%" PRIu32
            "\nsnapshot_bytes=%" PRIu64 "\nshards=%" PRIu32 "\nmode=%s\ncreated=%" PRIu64 "\n",
            kind_s[o->kind], fsync_s[o->fsync], o->interval_ms, o->max_entries, o->max_bytes,
            (int)o->cache, o->default_ttl_ms, o->max_value, o->snapshot_bytes, o->shards,
            o->replicated ? "replicated" : "local", o->created);
    if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
        r = -errno;
    }
    if (fclose(f) != 0 && r == 0) {
        r = -errno;
    }
    if (r == 0 && rename(tmp, fin) < 0) {
        r = -errno;
    }
    if (r == 0) {
        r = fsync_dir(dir);
    }
    if (r < 0) {
        unlink(tmp);
    }
out:
    free(tmp);
    free(fin);
    return r;
}

static int meta_read(const char *dir, gr_table_opts *o)
{
    char *path, line[256], val[64];
    FILE *f;
    int r = 0;

    if (asprintf(&path, "%s/meta", dir) < 0) {
        return -ENOMEM;
    }
    f = fopen(path, "re");
    free(path);
    if (!f) {
        return -errno;
    }
    memset(o, 0, sizeof(*o));
    o->durability = GR_TABLE_DISK;
    while (fgets(line, sizeof(line), f)) {
        char key[32];
        unsigned long long v = 0;

        if (sscanf(line, "%31[^=]=%63s", key, val) != 2) {
            continue;
        }
        v = strtoull(val, NULL, 10);
        if (!strcmp(key, "kind")) {
            o->kind = !strcmp(val, "ordered_set") ? GR_TABLE_ORDERED_SET : GR_TABLE_SET;
        } else if (!strcmp(key, "fsync")) {
            o->fsync = !strcmp(val, "interval") ? GR_FSYNC_INTERVAL
                       : !strcmp(val, "never")  ? GR_FSYNC_NEVER
                                                : GR_FSYNC_ALWAYS;
        } else if (!strcmp(key, "interval_ms")) {
            o->interval_ms = (uint32_t)v;
        } else if (!strcmp(key, "max_entries")) {
            o->max_entries = v;
        } else if (!strcmp(key, "max_bytes")) {
            o->max_bytes = v;
        } else if (!strcmp(key, "cache")) {
            o->cache = v != 0;
        } else if (!strcmp(key, "default_ttl_ms")) {
            o->default_ttl_ms = v;
        } else if (!strcmp(key, "max_value")) {
            o->max_value = (uint32_t)v;
        } else if (!strcmp(key, "snapshot_bytes")) {
            o->snapshot_bytes = v;
        } else if (!strcmp(key, "shards")) {
            o->shards = (uint32_t)v;
        } else if (!strcmp(key, "mode")) {
            o->replicated = !strcmp(val, "replicated");
        } else if (!strcmp(key, "created")) {
            o->created = v;
        }
    }
    fclose(f);
    if (opts_norm(o) < 0) {
        r = GR_ECORRUPT;
    }
    return r;
}

/* Apply one log/snapshot record (loading: single thread, but take the locks
 * anyway so the invariants hold). Record bytes are checksummed, not trusted:
 * lengths are checked. */
static int apply_rec(void *ud, const uint8_t *p, size_t n)
{
    gr_table *t = ud;
    gr_tcnt cnt[255];
    ent_spec sp = {0};
    gr_tkey k;
    gr_tshard *s;
    gr_tent *old, *e = NULL;
    uint64_t now = now_ms(t->ts);
    size_t off;
    int type, r = 0;

    if (n < GR_TREC_HDR) {
        return GR_ECORRUPT;
    }
    type = p[0];
    sp.flags = p[1];
    sp.ncnt = p[2];
    sp.klen = gr_le_rd32(p + 4);
    sp.vlen = gr_le_rd32(p + 8);
    sp.hlc = gr_le_rd64(p + 16);
    sp.origin = gr_le_rd64(p + 24);
    sp.expire_ms = gr_le_rd64(p + 32);
    off = GR_TREC_HDR + (size_t)sp.ncnt * 24;
    if ((type != GR_TREC_ENTRY && type != GR_TREC_DELETE) || off > n || sp.klen > n - off ||
        sp.vlen != n - off - sp.klen) {
        return GR_ECORRUPT;
    }
    for (int c = 0; c < sp.ncnt; c++) {
        cnt[c] = (gr_tcnt){gr_le_rd64(p + GR_TREC_HDR + 24 * c),
                           gr_le_rd64(p + GR_TREC_HDR + 24 * c + 8),
                           gr_le_rd64(p + GR_TREC_HDR + 24 * c + 16)};
    }
    sp.cnt = cnt;
    if (tkey_make(t, &k, p + off, sp.klen) < 0 || k.len != sp.klen) {
        gr_tkey_done(&k);
        return GR_ECORRUPT;
    }
    sp.key = k.p;
    sp.hash = k.hash;
    sp.val = p + off + sp.klen;
    hlc_seen(t->ts, sp.hlc);
    s = shard_of(t, k.hash);
    wr_lock(s);
    if (t->opts.replicated) { /* replay is the merge rule */
        if (type == GR_TREC_DELETE) {
            sp.flags |= GR_TENT_TOMB;
        }
        r = merge_locked(t, s, &sp, now, false, NULL);
        r = r < 0 ? r : 0;
        goto out;
    }
    old = st_find(t, s, &k);
    if (old && old->hlc > sp.hlc) {
        goto out; /* the store already holds a later state */
    }
    if (type == GR_TREC_ENTRY && !(sp.expire_ms && now >= sp.expire_ms)) {
        if (!(e = ent_new(t, s, &sp, old))) {
            r = -ENOMEM;
            goto out;
        }
        apply(t, s, k.hash, e, old);
    } else if (old) {
        apply(t, s, k.hash, NULL, old);
    }
out:
    wr_unlock(s);
    gr_tkey_done(&k);
    return r;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Segments in dir, sorted. *ret_segs malloc'ed. */
static int list_segs(const char *dir, uint64_t **ret_segs, size_t *ret_n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        return -errno;
    }
    while ((de = readdir(d))) {
        char *end;
        uint64_t seg;

        if (strncmp(de->d_name, "wal.", 4) != 0 || strlen(de->d_name) != 20) {
            continue;
        }
        seg = strtoull(de->d_name + 4, &end, 16);
        if (*end) {
            continue;
        }
        if (n == cap) {
            uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

            if (!nv) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }
        v[n++] = seg;
    }
    closedir(d);
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_u64);
    }
    *ret_segs = v;
    *ret_n = n;
    return 0;
}

static char *seg_name(const char *dir, uint64_t seg)
{
    char *p;

    return asprintf(&p, "%s/wal.%016" PRIx64, dir, seg) < 0 ? NULL : p;
}

/* Load snapshot + log of table t (t->dir set, empty store), open its log. */
static int table_load(gr_table *t)
{
    uint64_t next = 0, *segs = NULL, last;
    size_t n = 0;
    int r;

    r = gr_snap_read(t->dir, &next, apply_rec, t);
    if (r < 0 && r != -ENOENT) {
        return r;
    }
    if ((r = list_segs(t->dir, &segs, &n)) < 0) {
        return r;
    }
    last = next;
    for (size_t i = 0; i < n; i++) {
        char *path = seg_name(t->dir, segs[i]);
        uint64_t bad = 0;

        if (!path) {
            r = -ENOMEM;
            break;
        }
        if (segs[i] < next) {
            unlink(path); /* covered by the snapshot: a leftover of a crash */
            free(path);
            continue;
        }
        r = gr_wal_read(path, i == n - 1, apply_rec, t, &bad);
        free(path);
        if (r < 0) {
            break;
        }
        last = segs[i];
    }
    free(segs);
    if (r < 0) {
        return r;
    }
    return gr_wal_open(t->dir, last, t->opts.fsync, t->opts.interval_ms, &t->wal);
}

static int rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d) {
        return -errno;
    }
    while ((de = readdir(d))) {
        char *p;

        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
            continue;
        }
        if (asprintf(&p, "%s/%s", dir, de->d_name) >= 0) {
            unlink(p);
            free(p);
        }
    }
    closedir(d);
    return rmdir(dir) < 0 ? -errno : 0;
}

/* ---- engine ------------------------------------------------------------------------------- */

static void register_locked(gr_tables *ts, gr_table *t)
{
    t->next = ts->list;
    ts->list = t;
}

void gr_tables_maintain(gr_tables *ts)
{
    gr_table **v = NULL;
    size_t n = 0, i = 0;

    pthread_mutex_lock(&ts->mu);
    for (gr_table *t = ts->list; t; t = t->next) {
        n += !t->load_error;
    }
    if (n && (v = malloc(n * sizeof(*v)))) {
        for (gr_table *t = ts->list; t; t = t->next) {
            if (!t->load_error) {
                atomic_fetch_add(&t->refs, 1);
                v[i++] = t;
            }
        }
    }
    pthread_mutex_unlock(&ts->mu);
    n = i; /* the tables taken above */
    for (i = 0; v && i < n; i++) {
        gr_table *t = v[i];

        while (gr_table_expire(t, 10000) == 10000) { /* bounded steps, each under one lock */
        }
        if (t->wal && gr_wal_bytes(t->wal) >= t->opts.snapshot_bytes) {
            gr_table_snapshot(t); /* errors are logged; the log stays valid */
        }
        table_unref(t);
    }
    free(v);
}

static void *maint_main(void *arg)
{
    gr_tables *ts = arg;
    uint32_t period = ts->cfg.maint_ms ? (uint32_t)ts->cfg.maint_ms : 1000;

    pthread_mutex_lock(&ts->mu);
    while (!ts->maint_stop) {
        struct timespec dl;

        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += period / 1000;
        dl.tv_nsec += (long)(period % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        while (!ts->maint_stop && !ts->maint_kick &&
               pthread_cond_timedwait(&ts->cv, &ts->mu, &dl) == 0) {
        }
        if (ts->maint_stop) {
            break;
        }
        ts->maint_kick = false;
        pthread_mutex_unlock(&ts->mu);
        gr_tables_maintain(ts);
        pthread_mutex_lock(&ts->mu);
    }
    pthread_mutex_unlock(&ts->mu);
    return NULL;
}

int gr_tables_new(const gr_tables_config *cfg, gr_tables **ret_tables)
{
    gr_tables *ts;
    DIR *d;
    struct dirent *de;

    if (!cfg || cfg->node_id == 0) {
        return GR_ECONFIG;
    }
    if (!(ts = calloc(1, sizeof(*ts)))) {
        return -ENOMEM;
    }
    ts->cfg = *cfg;
    pthread_mutex_init(&ts->mu, NULL);
    {
        pthread_condattr_t ca; /* timed waits on the monotonic clock: immune to clock steps */

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ts->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (cfg->data_dir) {
        if (asprintf(&ts->dir, "%s/tables", cfg->data_dir) < 0) {
            ts->dir = NULL;
            gr_tables_free(ts);
            return -ENOMEM;
        }
        /* the data directory itself first (one level: its parent must exist) */
        if ((mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) ||
            (mkdir(ts->dir, 0700) < 0 && errno != EEXIST)) {
            int r = -errno;

            gr_error("tables", "cannot create %s: %s", ts->dir, strerror(errno));
            gr_tables_free(ts);
            return r;
        }
        ts->cfg.data_dir = NULL; /* not kept: the caller's string */
        if (!(d = opendir(ts->dir))) {
            int r = -errno;

            gr_tables_free(ts);
            return r;
        }
        while ((de = readdir(d))) {
            gr_table_opts o;
            gr_table *t;
            char *tdir;
            int r;

            if (!name_ok(de->d_name) || asprintf(&tdir, "%s/%s", ts->dir, de->d_name) < 0) {
                continue;
            }
            r = meta_read(tdir, &o);
            if (r == -ENOENT) { /* a create that crashed before its meta: not a table */
                free(tdir);
                continue;
            }
            if (r == 0) {
                r = table_alloc(ts, de->d_name, &o, &t);
            }
            if (r != 0) {
                /* Keep a failed placeholder so the name shows up with its error. */
                gr_table_opts z = {.durability = GR_TABLE_DISK};

                opts_norm(&z);
                z.shards = 1;
                if (table_alloc(ts, de->d_name, &z, &t) < 0) {
                    free(tdir);
                    continue;
                }
                t->load_error = r;
                t->dir = tdir;
                gr_error("tables", "table %s: meta file unreadable: %s", de->d_name,
                         gr_strerror(r));
                register_locked(ts, t);
                continue;
            }
            t->dir = tdir;
            if ((r = table_load(t)) < 0) {
                gr_error("tables", "table %s not loaded: %s (files kept in %s)", t->name,
                         gr_strerror(r), tdir);
                t->load_error = r;
            } else {
                gr_info("tables", "table %s loaded: %" PRIu64 " entries", t->name,
                        atomic_load(&t->entries));
            }
            register_locked(ts, t);
        }
        closedir(d);
    }
    if (!(ts->repl = gr_trepl_new(ts))) {
        gr_tables_free(ts);
        return -ENOMEM;
    }
    if (cfg->maint_ms >= 0) {
        int r = -pthread_create(&ts->maint, NULL, maint_main, ts);

        if (r < 0) {
            gr_tables_free(ts);
            return r;
        }
        ts->maint_on = true;
    }
    *ret_tables = ts;
    return 0;
}

uint64_t gr_tables_mapped(gr_tables *ts)
{
    return ts ? atomic_load_explicit(&ts->mapped, memory_order_relaxed) : 0;
}

gr_tables *gr_tables_free(gr_tables *ts)
{
    if (!ts) {
        return NULL;
    }
    if (ts->maint_on) {
        pthread_mutex_lock(&ts->mu);
        ts->maint_stop = true;
        pthread_cond_broadcast(&ts->cv);
        pthread_mutex_unlock(&ts->mu);
        pthread_join(ts->maint, NULL);
    }
    for (gr_table *t = ts->list, *n; t; t = n) {
        n = t->next;
        table_unref(t);
    }
    gr_trepl_free(ts->repl);
    pthread_cond_destroy(&ts->cv);
    pthread_mutex_destroy(&ts->mu);
    free(ts->dir);
    free(ts);
    return NULL;
}

static int create_impl(gr_tables *ts, const char *name, const gr_table_opts *opts, bool tell)
{
    gr_table_opts o = opts ? *opts : (gr_table_opts){0};
    gr_table *t = NULL;
    int r;

    if (!name_ok(name)) {
        return GR_EBADTABLENAME;
    }
    if ((r = opts_norm(&o)) < 0) {
        return r;
    }
    if (o.durability == GR_TABLE_DISK && !ts->dir) {
        return GR_ECONFIG;
    }
    pthread_mutex_lock(&ts->mu);
    if (find_locked(ts, name)) {
        r = GR_ETABLEEXISTS;
        goto out;
    }
    {
        size_t n = 0;

        for (gr_table *x = ts->list; x; x = x->next) {
            n++;
        }
        if (n >= GR_TABLES_MAX) {
            r = GR_ETOOMANYTABLES; /* 20,000 empty tables held 440 MB */
            goto out;
        }
    }
    if (o.replicated) {
        if (o.created == 0) {
            o.created = hlc_next(ts, now_ms(ts));
        } else {
            hlc_seen(ts, o.created);
        }
    } else {
        o.created = 0;
    }
    if ((r = table_alloc(ts, name, &o, &t)) < 0) {
        goto out;
    }
    if (o.durability == GR_TABLE_DISK) {
        if (asprintf(&t->dir, "%s/%s", ts->dir, name) < 0) {
            t->dir = NULL;
            r = -ENOMEM;
            goto out;
        }
        if (mkdir(t->dir, 0700) < 0) {
            r = errno == EEXIST ? GR_ETABLEEXISTS : -errno;
            free(t->dir);
            t->dir = NULL; /* not ours: never removed here */
            goto out;
        }
        if ((r = gr_wal_open(t->dir, 0, o.fsync, o.interval_ms, &t->wal)) < 0 ||
            (r = meta_write(t->dir, &o)) < 0 || (r = fsync_dir(ts->dir)) < 0) {
            rm_tree(t->dir);
            goto out;
        }
    }
    register_locked(ts, t);
    if (tell && o.replicated && ts->repl) {
        gr_trepl_on_table(ts->repl, name, &o, false, o.created);
    }
    t = NULL;
out:
    pthread_mutex_unlock(&ts->mu);
    table_destroy(t);
    return r;
}

int gr_tables_create(gr_tables *ts, const char *name, const gr_table_opts *opts)
{
    return create_impl(ts, name, opts, true);
}

int gr_tables_create_replica(gr_tables *ts, const char *name, const gr_table_opts *opts)
{
    if (!opts || !opts->replicated || !opts->created) {
        return GR_EBADARG;
    }
    return create_impl(ts, name, opts, false);
}

static int drop_impl(gr_tables *ts, const char *name, bool tell)
{
    gr_table **pp, *t = NULL;

    pthread_mutex_lock(&ts->mu);
    for (pp = &ts->list; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            t = *pp;
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&ts->mu);
    if (!t) {
        return GR_ENOTABLE;
    }
    if (tell && t->opts.replicated && ts->repl) {
        gr_trepl_on_table(ts->repl, name, &t->opts, true, hlc_next(ts, now_ms(ts)));
    }
    atomic_store(&t->dropped, true);
    if (t->dir) {
        /* meta first: a crash mid-way leaves a directory that is not a table */
        char *meta;

        if (asprintf(&meta, "%s/meta", t->dir) >= 0) {
            unlink(meta);
            free(meta);
        }
        rm_tree(t->dir);
    }
    table_unref(t);
    return 0;
}

int gr_tables_drop(gr_tables *ts, const char *name)
{
    return drop_impl(ts, name, true);
}

int gr_tables_drop_replica(gr_tables *ts, const char *name)
{
    return drop_impl(ts, name, false);
}

gr_trepl *gr_tables_repl(gr_tables *ts)
{
    return ts->repl;
}

uint64_t gr_tables_hlc(gr_tables *ts)
{
    return hlc_next(ts, now_ms(ts));
}

uint64_t gr_tables_now_ms(gr_tables *ts)
{
    return now_ms(ts);
}

uint64_t gr_tables_node_id(gr_tables *ts)
{
    return ts->cfg.node_id;
}

const char *gr_table_name(const gr_table *t)
{
    return t->name;
}

int gr_tables_open(gr_tables *ts, const char *name, gr_table **ret_table)
{
    gr_table *t;
    int r = 0;

    pthread_mutex_lock(&ts->mu);
    if (!(t = find_locked(ts, name ? name : ""))) {
        r = GR_ENOTABLE;
    } else if (t->load_error) {
        r = t->load_error;
    } else {
        atomic_fetch_add(&t->refs, 1);
        *ret_table = t;
    }
    pthread_mutex_unlock(&ts->mu);
    return r;
}

gr_table *gr_table_close(gr_table *t)
{
    table_unref(t);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t gr_tables_list(gr_tables *ts, void (*fn)(void *ud, const char *name), void *ud)
{
    const char **names = NULL;
    size_t n = 0, i = 0;

    pthread_mutex_lock(&ts->mu);
    for (gr_table *t = ts->list; t; t = t->next) {
        n++;
    }
    if (n && (names = malloc(n * sizeof(*names)))) {
        for (gr_table *t = ts->list; t; t = t->next) {
            names[i++] = t->name;
        }
        qsort(names, n, sizeof(*names), cmp_str);
        for (i = 0; fn && i < n; i++) {
            fn(ud, names[i]);
        }
    }
    pthread_mutex_unlock(&ts->mu);
    free(names);
    return n;
}

void gr_table_info_get(gr_table *t, gr_table_info *ret_info)
{
    gr_table_info *i = ret_info;

    memset(i, 0, sizeof(*i));
    snprintf(i->name, sizeof(i->name), "%s", t->name);
    i->opts = t->opts;
    i->tombstones = atomic_load(&t->tombs);
    i->entries = atomic_load(&t->entries) - i->tombstones - atomic_load(&t->empties);
    i->bytes = atomic_load(&t->bytes);
    i->evictions = atomic_load(&t->evictions);
    i->expired = atomic_load(&t->expired);
    i->snapshots = atomic_load(&t->snapshots);
    i->load_error = t->load_error;
    if (t->wal) {
        i->wal_bytes = gr_wal_bytes(t->wal);
        gr_wal_counters(t->wal, &i->fsyncs, &i->wal_records);
    }
}

size_t gr_table_longest_shift(gr_table *t)
{
    size_t most = 0;

    for (uint32_t i = 0; t->opts.kind == GR_TABLE_SET && i < t->nshards; i++) {
        size_t n;

        pthread_rwlock_rdlock(&t->shards[i].lock);
        n = gr_sset_longest_shift(&t->shards[i], t->shard_bits);
        pthread_rwlock_unlock(&t->shards[i].lock);
        most = n > most ? n : most;
    }
    return most;
}

int gr_tables_info(gr_tables *ts, const char *name, gr_table_info *ret_info)
{
    gr_table *t;

    pthread_mutex_lock(&ts->mu);
    if ((t = find_locked(ts, name ? name : ""))) {
        gr_table_info_get(t, ret_info);
    }
    pthread_mutex_unlock(&ts->mu);
    return t ? 0 : GR_ENOTABLE;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Record a read of a cache table's entry (it has the ext word). */
static void touch(gr_tent *e, uint64_t now)
{
    uint32_t s = (uint32_t)(now / 1000);
    gr_text *x = gr_tent_ext(e);

    if (x && atomic_load_explicit(&x->atime, memory_order_relaxed) != s) {
        atomic_store_explicit(&x->atime, s, memory_order_relaxed);
    }
}

int gr_table_get(gr_table *t, const void *key, size_t klen, gr_tbuf *val, gr_tmeta *ret_meta)
{
    gr_tkey k;
    gr_tshard *s;
    gr_tent *e;
    uint64_t now;
    unsigned slot;
    bool fast;
    int r;

    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    /* The clock is read only when the entry can expire or the table keeps
     * access times (cache): most gets need no clock call. */
    now = t->opts.cache ? now_ms(t->ts) : 0;
    s = shard_of(t, k.hash);
    slot = rd_slot();
    if (!(fast = rd_enter(s, slot))) {
        pthread_rwlock_rdlock(&s->lock); /* a writer is in: wait for it */
    }
    e = st_find(t, s, &k);
    if (e && (e->opt & GR_TE_EXP) && !now) {
        now = now_ms(t->ts);
    }
    if (!e || absent(e, now)) {
        r = GR_ENOKEY;
    } else if (e->flags & (GR_TENT_MAP | GR_TENT_ASET)) {
        r = GR_EWRONGTYPE;    /* gr_table_map_* / gr_table_set_* read it */
        meta_of(e, ret_meta); /* its version still tells a watcher it changed */
    } else {
        val->len = 0;
        if ((r = gr_tbuf_put(val, gr_tent_val(e), e->vlen)) == 0) {
            meta_of(e, ret_meta);
            if (t->opts.cache) {
                touch(e, now);
            }
        }
    }
    if (fast) {
        rd_exit(s, slot);
    } else {
        pthread_rwlock_unlock(&s->lock);
    }
    gr_tkey_done(&k);
    return r;
}

uint64_t gr_table_count(gr_table *t)
{
    uint64_t tombs = atomic_load(&t->tombs), empties = atomic_load(&t->empties);

    return atomic_load(&t->entries) - tombs - empties;
}

int gr_table_mget(gr_table *t, size_t n, const void *const *keys, const size_t *klens, gr_tbuf *out)
{
    gr_tbuf v = {0};
    uint8_t h[5];
    int r = 0;

    out->len = 0;
    h[0] = 0xdd;
    for (int i = 0; i < 4; i++) {
        h[1 + i] = (uint8_t)((uint32_t)n >> (24 - 8 * i));
    }
    if (n > UINT32_MAX || gr_tbuf_put(out, h, 5) < 0) {
        return n > UINT32_MAX ? GR_EBADARG : -ENOMEM;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        r = gr_table_get(t, keys[i], klens[i], &v, NULL);
        if (r == GR_ENOKEY || r == GR_EWRONGTYPE) { /* a map or set: nil, as Redis's MGET */
            uint8_t nil = 0xc0;

            r = gr_tbuf_put(out, &nil, 1);
        } else if (r == 0) {
            r = gr_tbuf_put(out, v.p, v.len);
        }
    }
    gr_tbuf_free(&v);
    return r;
}

/* ---- writes ------------------------------------------------------------------------------- */

/* After a write: wait for durability, maybe snapshot. No lock held. */
/* After a write: wait for durability; a log over its snapshot size gets a
 * snapshot from the maintenance thread (or, without one, from this writer).
 * No lock held. */
/* One pending ticket of a gr_tdefer. */
struct gr_tdefer_tk {
    gr_wal *wal;
    gr_wal_batch *b;
};

/* Keep ticket b of wal in d (consumed). false (not kept) out of memory. */
static bool defer_put(gr_tdefer *d, gr_wal *wal, gr_wal_batch *b)
{
    /* the same batch again (a pipeline's writes mostly share one; a list
     * write alternates between two tables): one ticket answers for both */
    for (size_t i = d->n, k = 0; i > 0 && k < 8; i--, k++) {
        if (d->tk[i - 1].wal == wal && d->tk[i - 1].b == b) {
            gr_wal_drop(wal, b);
            return true;
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        struct gr_tdefer_tk *nt = realloc(d->tk, cap * sizeof(*nt));

        if (!nt) {
            return false;
        }
        d->tk = nt;
        d->cap = cap;
    }
    d->tk[d->n++] = (struct gr_tdefer_tk){.wal = wal, .b = b};
    return true;
}

bool gr_tdefer_pending(const gr_tdefer *d)
{
    return d->n > 0;
}

/* gr_tdefer_notify's join of several tickets: the last to finish calls fn. */
typedef struct tjoin {
    atomic_int left; /* tickets not done, plus one while registering */
    atomic_int err;  /* first failure */
    gr_tdefer_fn fn;
    void *arg;
} tjoin;

/* Record err and let go of k of j's holds; the last calls fn and frees j. */
static void tjoin_put(tjoin *j, int err, int k)
{
    if (err < 0) {
        int zero = 0;

        atomic_compare_exchange_strong(&j->err, &zero, err);
    }
    if (atomic_fetch_sub(&j->left, k) == k) {
        j->fn(j->arg, atomic_load(&j->err));
        free(j);
    }
}

static void tjoin_done(void *arg, int err)
{
    tjoin_put(arg, err, 1);
}

void gr_tdefer_notify(gr_tdefer *d, gr_tdefer_fn fn, void *arg)
{
    tjoin *j = malloc(sizeof(*j));
    int err = 0, k = 1; /* k: holds to give back here (the registration's own) */

    if (!j) { /* out of memory: wait here (blocks, but stays correct) */
        for (size_t i = 0; i < d->n; i++) {
            int r = gr_wal_wait(d->tk[i].wal, d->tk[i].b);

            err = err ? err : r;
        }
        d->n = 0;
        fn(arg, err);
        return;
    }
    atomic_init(&j->left, (int)d->n + 1);
    atomic_init(&j->err, 0);
    j->fn = fn;
    j->arg = arg;
    for (size_t i = 0; i < d->n; i++) {
        if (gr_wal_notify(d->tk[i].wal, d->tk[i].b, tjoin_done, j) < 0) {
            int r = gr_wal_wait(d->tk[i].wal, d->tk[i].b); /* out of memory: here */

            err = err ? err : r;
            k++;
        }
    }
    d->n = 0;
    tjoin_put(j, err, k); /* j may be gone from here on */
}

void gr_tdefer_free(gr_tdefer *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        gr_wal_drop(d->tk[i].wal, d->tk[i].b);
    }
    free(d->tk);
    *d = (gr_tdefer){0};
}

static int finish_d(gr_table *t, gr_wal_batch *tk, int r, gr_tdefer *d)
{
    gr_tables *ts = t->ts;
    int w = 0;

    if (t->wal && tk && !(d && defer_put(d, t->wal, tk))) {
        w = gr_wal_wait(t->wal, tk);
    }

    if (r == 0 && w < 0) {
        r = w;
    }
    if (r == 0 && t->wal && !atomic_load(&t->dropped) &&
        gr_wal_bytes(t->wal) >= t->opts.snapshot_bytes) {
        if (ts->maint_on) {
            pthread_mutex_lock(&ts->mu);
            ts->maint_kick = true;
            pthread_cond_signal(&ts->cv);
            pthread_mutex_unlock(&ts->mu);
        } else if (pthread_mutex_trylock(&t->snap_mu) == 0) {
            pthread_mutex_unlock(&t->snap_mu);
            gr_table_snapshot(t); /* errors are logged; the log stays valid */
        }
    }
    return r;
}

int gr_table_put(gr_table *t, const void *key, size_t klen, const void *val, size_t vlen,
                 const gr_tput *how, gr_tmeta *ret_meta)
{
    return gr_table_put_d(NULL, t, key, klen, val, vlen, how, ret_meta);
}

int gr_table_put_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, const void *val,
                   size_t vlen, const gr_tput *how, gr_tmeta *ret_meta)
{
    gr_tput dflt = {0};
    gr_tkey k;
    gr_tshard *s;
    gr_tent *old, *e;
    gr_wal_batch *tk = NULL;
    ent_spec sp;
    uint64_t now, ttl;
    int r;

    how = how ? how : &dflt;
    if (!val || vlen == 0 || vlen > t->opts.max_value) {
        return vlen > t->opts.max_value ? GR_ETOOBIG : GR_EBADTERM;
    }
    if (gr_term_validate(val, vlen) < 0) {
        return GR_EBADTERM;
    }
    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    now = now_ms(t->ts);
    ttl = (how->flags & GR_TPUT_TTL) ? how->ttl_ms : t->opts.default_ttl_ms;
    if (ttl > (uint64_t)INT64_MAX - now) {
        gr_tkey_done(&k);
        return GR_EBADARG; /* the expiry would wrap: the entry would vanish at once */
    }
    s = shard_of(t, k.hash);
    wr_lock(s);
    old = st_find(t, s, &k); /* an expired entry counts as absent; it is replaced below */
    if ((how->flags & GR_TPUT_IF_ABSENT) && old && !absent(old, now)) {
        r = GR_EKEYEXISTS;
        goto out;
    }
    if (how->flags & GR_TPUT_CAS) {
        uint64_t have = old && !absent(old, now) ? old->hlc : 0;

        if (have != how->version) {
            r = GR_ECASMISMATCH;
            goto out;
        }
    }
    sp = (ent_spec){.key = k.p,
                    .klen = k.len,
                    .hash = k.hash,
                    .val = val,
                    .vlen = vlen,
                    .hlc = hlc_next(t->ts, now),
                    .origin = t->ts->cfg.node_id,
                    .expire_ms = ttl ? now + ttl : 0};
    if (old && can_overwrite(old, &sp)) {
        /* the common put: a plain value replaced by one of the same size */
        if ((r = make_room(t, s, 0, false, old, now, &tk)) < 0 ||
            (r = log_rec(t, GR_TREC_ENTRY, &sp, &tk)) < 0) {
            goto out;
        }
        overwrite(t, old, &sp);
        meta_of(old, ret_meta);
        repl_notify(t, old, k.hash);
        goto out;
    }
    if (!(e = ent_new(t, s, &sp, old))) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = make_room(t, s, grow_of(t, e, old), !old, old, now, &tk)) < 0 ||
        (r = log_rec(t, GR_TREC_ENTRY, &sp, &tk)) < 0) {
        free(e);
        goto out;
    }
    meta_of(e, ret_meta);
    apply(t, s, k.hash, e, old);
    repl_notify(t, e, k.hash);
out:
    wr_unlock(s);
    gr_tkey_done(&k);
    return finish_d(t, tk, r, d);
}

int gr_table_del(gr_table *t, const void *key, size_t klen, uint64_t version)
{
    return gr_table_del_d(NULL, t, key, klen, version);
}

int gr_table_del_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, uint64_t version)
{
    gr_tkey k;
    gr_tshard *s;
    gr_tent *old;
    gr_wal_batch *tk = NULL;
    uint64_t now;
    int r;

    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    now = now_ms(t->ts);
    s = shard_of(t, k.hash);
    wr_lock(s);
    old = st_find(t, s, &k);
    if (!old || absent(old, now)) {
        r = GR_ENOKEY;
    } else if (version && old->hlc != version) {
        r = GR_ECASMISMATCH;
    } else {
        ent_spec sp;

        spec_of(t, old, &sp);
        sp.hlc = hlc_next(t->ts, now);
        sp.origin = t->ts->cfg.node_id;
        if (t->opts.replicated) { /* a tombstone at the delete's version */
            gr_tent *tomb;

            sp.val = (const uint8_t *)"";
            sp.vlen = 0;
            sp.cnt = NULL;
            sp.ncnt = 0;
            sp.expire_ms = 0;
            sp.flags = GR_TENT_TOMB;
            if (!(tomb = ent_new(t, s, &sp, old))) {
                r = -ENOMEM;
            } else if ((r = log_rec(t, GR_TREC_DELETE, &sp, &tk)) < 0) {
                free(tomb);
            } else {
                apply(t, s, k.hash, tomb, old);
                repl_notify(t, tomb, k.hash);
            }
        } else if ((r = log_rec(t, GR_TREC_DELETE, &sp, &tk)) == 0) {
            apply(t, s, k.hash, NULL, old);
        }
    }
    wr_unlock(s);
    gr_tkey_done(&k);
    return finish_d(t, tk, r, d);
}

int gr_table_incr(gr_table *t, const void *key, size_t klen, int64_t delta, int64_t *ret_value)
{
    return gr_table_incr_d(NULL, t, key, klen, delta, ret_value);
}

int gr_table_incr_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, int64_t delta,
                    int64_t *ret_value)
{
    gr_tcnt cnt[255];
    uint8_t vbuf[9];
    gr_tkey k;
    gr_tshard *s;
    gr_tent *old, *e;
    gr_wal_batch *tk = NULL;
    ent_spec sp;
    uint64_t now, me = t->ts->cfg.node_id;
    __int128 total = 0;
    int ncnt = 0, mine = -1, r;

    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    now = now_ms(t->ts);
    s = shard_of(t, k.hash);
    wr_lock(s);
    old = st_find(t, s, &k);
    if (old && !absent(old, now) && (old->flags & (GR_TENT_MAP | GR_TENT_ASET))) {
        r = GR_EWRONGTYPE;
        goto out;
    }
    if (old && absent(old, now)) {
        /* Gone: the counter restarts like an absent key. No log record needed:
         * the log already holds the entry's expiry (or the delete). On a
         * replicated table the new counter's epoch is that version, so it
         * wins over the tombstone on every replica. */
        if (t->opts.replicated) {
            cnt[ncnt++] = (gr_tcnt){0, old->hlc, old->origin};
        }
        if (expired(old, now) && !(old->flags & GR_TENT_TOMB)) {
            atomic_fetch_add(&t->expired, 1);
        }
        apply(t, s, k.hash, NULL, old);
        old = NULL;
    }
    if (old && (old->flags & GR_TENT_COUNTER)) {
        ncnt = old->ncnt;
        memcpy(cnt, gr_tent_cnt(old), ncnt * sizeof(gr_tcnt));
    } else if (old) {
        int64_t base;

        if ((r = read_int(gr_tent_val(old), old->vlen, &base)) < 0) {
            goto out;
        }
        /* the start is the component of the node that put it: replicas that
         * increment the same put concurrently then agree on it */
        cnt[0] = (gr_tcnt){old->origin ? old->origin : me, base >= 0 ? (uint64_t)base : 0,
                           base < 0 ? (uint64_t)0 - (uint64_t)base : 0};
        ncnt = 1;
        if (t->opts.replicated) { /* the counter's epoch: the put it grows from */
            cnt[ncnt++] = (gr_tcnt){0, old->hlc, old->origin};
        }
    }
    for (int i = 0; i < ncnt; i++) {
        if (cnt[i].node == me) {
            mine = i;
        }
    }
    if (mine < 0) {
        if (ncnt == 255) {
            r = GR_EFULL;
            goto out;
        }
        cnt[ncnt] = (gr_tcnt){me, 0, 0};
        mine = ncnt++;
    }
    if (delta >= 0 ? __builtin_add_overflow(cnt[mine].incs, (uint64_t)delta, &cnt[mine].incs)
                   : __builtin_add_overflow(cnt[mine].decs, (uint64_t)0 - (uint64_t)delta,
                                            &cnt[mine].decs)) {
        r = GR_EBADARG;
        goto out;
    }
    for (int i = 0; i < ncnt; i++) {
        if (cnt[i].node != 0) { /* node 0: the epoch, not a count */
            total += (__int128)cnt[i].incs - (__int128)cnt[i].decs;
        }
    }
    if (total > INT64_MAX || total < INT64_MIN) {
        r = GR_EBADARG;
        goto out;
    }
    cnt_sort(cnt, ncnt);
    sp = (ent_spec){.key = k.p,
                    .klen = k.len,
                    .hash = k.hash,
                    .val = vbuf,
                    .vlen = pack_int(vbuf, (int64_t)total),
                    .cnt = cnt,
                    .ncnt = (uint8_t)ncnt,
                    .flags = GR_TENT_COUNTER,
                    .hlc = hlc_next(t->ts, now),
                    .origin = me,
                    .expire_ms = old                      ? gr_tent_exp(old)
                                 : t->opts.default_ttl_ms ? now + t->opts.default_ttl_ms
                                                          : 0};
    if (!(e = ent_new(t, s, &sp, old))) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = make_room(t, s, grow_of(t, e, old), !old, old, now, &tk)) < 0 ||
        (r = log_rec(t, GR_TREC_ENTRY, &sp, &tk)) < 0) {
        free(e);
        goto out;
    }
    apply(t, s, k.hash, e, old);
    repl_notify(t, e, k.hash);
    *ret_value = (int64_t)total;
out:
    wr_unlock(s);
    gr_tkey_done(&k);
    return finish_d(t, tk, r, d);
}

/* ---- maps and sets ------------------------------------------------------------------------ */

enum { OP_MSET, OP_MDEL, OP_MINCR, OP_SADD, OP_SREM, OP_SPOP };

/* One map/set operation: its input and its result. */
typedef struct cop {
    int op;                   /* OP_* */
    size_t n;                 /* names */
    const void *const *names; /* fields / members */
    const size_t *nlens;      /* their lengths */
    const void *const *vals;  /* OP_MSET: values */
    const size_t *vlens;      /* OP_MSET */
    int64_t delta;            /* OP_MINCR */
    uint64_t count;           /* result: fields/members added or removed */
    int64_t total;            /* OP_MINCR result */
    gr_tbuf *popped;          /* OP_SPOP result */
    gr_tdefer *defer;         /* deferred durability, or NULL */
} cop;

/* One name of an operation, sorted by bytes then by position. */
typedef struct cname {
    const uint8_t *p;
    size_t len;
    size_t idx; /* position in the call: the last of equal names wins */
} cname;

static int cname_cmp(const void *a, const void *b)
{
    const cname *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

    if (c == 0) {
        c = (x->len > y->len) - (x->len < y->len);
    }
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Sorted names, one per distinct name (its last occurrence). *ret_v malloc'ed. */
static int cnames(const cop *op, cname **ret_v, size_t *ret_n)
{
    cname *v;
    size_t n = 0;

    if (op->n == 0 || !op->names || !op->nlens) {
        return GR_EBADARG;
    }
    if (!(v = malloc(op->n * sizeof(*v)))) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < op->n; i++) {
        if (op->nlens[i] > GR_TFIELD_MAX || (!op->names[i] && op->nlens[i])) {
            free(v);
            return GR_EBADARG;
        }
        v[i] = (cname){op->names[i] ? op->names[i] : (const void *)"", op->nlens[i], i};
    }
    if (op->n > 1) {
        qsort(v, op->n, sizeof(*v), cname_cmp);
    }
    for (size_t i = 0; i < op->n; i++) { /* keep the last of each run of equal names */
        if (i + 1 < op->n && v[i].len == v[i + 1].len &&
            memcmp(v[i].p, v[i + 1].p, v[i].len) == 0) {
            continue;
        }
        v[n++] = v[i];
    }
    *ret_v = v;
    *ret_n = n;
    return 0;
}

/* Field `name` of map state st (a tombstone counts as found). */
static bool find_field(const uint8_t *st, size_t len, const uint8_t *name, size_t nlen,
                       gr_cfield *f)
{
    gr_crdt_rd rd;

    if (gr_crdt_open(&rd, st, len) < 0) {
        return false;
    }
    while (gr_crdt_next_field(&rd, f) > 0) {
        if (f->nlen == nlen && memcmp(f->name, name, nlen) == 0) {
            return true;
        }
    }
    return false;
}

static bool find_mem(const uint8_t *st, size_t len, const uint8_t *m, size_t mlen, gr_cmem *ret)
{
    gr_crdt_rd rd;

    if (gr_crdt_open(&rd, st, len) < 0) {
        return false;
    }
    while (gr_crdt_next_mem(&rd, ret) > 0) {
        if (ret->mlen == mlen && memcmp(ret->m, m, mlen) == 0) {
            return true;
        }
    }
    return false;
}

/* A field's value as an integer: a msgpack integer, or a str/bin of decimal
 * digits (what a Redis client writes). 0 or GR_EWRONGTYPE. */
static int field_int(const uint8_t *p, size_t n, int64_t *ret)
{
    const uint8_t *d = NULL;
    size_t dl = 0;
    char buf[24], *end;
    long long v;

    if (read_int(p, n, ret) == 0) {
        return 0;
    }
    if (n >= 1 && (p[0] & 0xe0) == 0xa0) {
        d = p + 1, dl = p[0] & 0x1f;
    } else if (n >= 2 && (p[0] == 0xd9 || p[0] == 0xc4)) {
        d = p + 2, dl = p[1];
    }
    if (!d || dl == 0 || dl > 20 || d + dl != p + n) {
        return GR_EWRONGTYPE;
    }
    memcpy(buf, d, dl);
    buf[dl] = 0;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno || *end || !(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))) {
        return GR_EWRONGTYPE;
    }
    *ret = v;
    return 0;
}

/* The delta of op against state st (type, epoch copied): the touched fields
 * or members at version (hlc, me). Sets op's results. */
static int build_delta(gr_table *t, gr_tshard *s, cop *op, const cname *v, size_t nv,
                       const uint8_t *st, size_t stlen, uint64_t hlc, uint64_t me, gr_tbuf *out)
{
    gr_crdt_rd rd;
    gr_crdt_wr w;
    int r;

    if (gr_crdt_open(&rd, st, stlen) < 0) {
        return GR_ECORRUPT;
    }
    out->len = 0;
    if ((r = gr_crdt_begin(&w, out, rd.type, rd.eh, rd.eo)) < 0) {
        return r;
    }
    for (size_t i = 0; i < nv && r == 0; i++) {
        gr_cfield f, old;
        gr_cmem m = {0}; /* read only for a set (rd.type matches op's kind) */
        bool had = rd.type == GR_CRDT_MAP
                       ? find_field(st, stlen, v[i].p, v[i].len, &old) && !(old.flags & GR_CF_TOMB)
                       : find_mem(st, stlen, v[i].p, v[i].len, &m) && gr_cmem_live(&m);

        switch (op->op) {
        case OP_MSET:
            f = (gr_cfield){.name = v[i].p,
                            .nlen = (uint32_t)v[i].len,
                            .val = op->vals[v[i].idx],
                            .vlen = (uint32_t)op->vlens[v[i].idx],
                            .hlc = hlc,
                            .origin = me};
            op->count += !had;
            r = gr_crdt_put_field(&w, &f, NULL);
            break;
        case OP_MDEL:
            if (had) {
                f = (gr_cfield){.name = v[i].p,
                                .nlen = (uint32_t)v[i].len,
                                .hlc = hlc,
                                .origin = me,
                                .flags = GR_CF_TOMB};
                op->count++;
                r = gr_crdt_put_field(&w, &f, NULL);
            }
            break;
        case OP_MINCR: {
            gr_tcnt cnt[255];
            uint8_t vbuf[9];
            int n = 0, mine = -1;
            __int128 total = 0;

            if (had && (old.flags & GR_CF_COUNTER)) {
                for (n = 0; n < old.ncnt; n++) {
                    cnt[n] = gr_cfield_cnt(&old, n);
                }
            } else if (had) {
                int64_t base;

                if ((r = field_int(old.val, old.vlen, &base)) < 0) {
                    break;
                }
                cnt[n++] = (gr_tcnt){old.origin, base >= 0 ? (uint64_t)base : 0,
                                     base < 0 ? (uint64_t)0 - (uint64_t)base : 0};
                cnt[n++] = (gr_tcnt){0, old.hlc, old.origin}; /* epoch: the write it grows from */
            } else if (t->opts.replicated && find_field(st, stlen, v[i].p, v[i].len, &old)) {
                cnt[n++] = (gr_tcnt){0, old.hlc, old.origin}; /* after a removal */
            }
            for (int j = 0; j < n; j++) {
                mine = cnt[j].node == me ? j : mine;
            }
            if (mine < 0) {
                if (n == 255) {
                    r = GR_EFULL;
                    break;
                }
                cnt[n] = (gr_tcnt){me, 0, 0};
                mine = n++;
            }
            if (op->delta >= 0
                    ? __builtin_add_overflow(cnt[mine].incs, (uint64_t)op->delta, &cnt[mine].incs)
                    : __builtin_add_overflow(cnt[mine].decs, (uint64_t)0 - (uint64_t)op->delta,
                                             &cnt[mine].decs)) {
                r = GR_EBADARG;
                break;
            }
            for (int j = 0; j < n; j++) {
                if (cnt[j].node != 0) {
                    total += (__int128)cnt[j].incs - (__int128)cnt[j].decs;
                }
            }
            if (total > INT64_MAX || total < INT64_MIN) {
                r = GR_EBADARG;
                break;
            }
            cnt_sort(cnt, n);
            op->total = (int64_t)total;
            f = (gr_cfield){.name = v[i].p,
                            .nlen = (uint32_t)v[i].len,
                            .val = vbuf,
                            .vlen = (uint32_t)pack_int(vbuf, (int64_t)total),
                            .hlc = hlc,
                            .origin = me,
                            .flags = GR_CF_COUNTER,
                            .ncnt = (uint8_t)n};
            r = gr_crdt_put_field(&w, &f, cnt);
            break;
        }
        case OP_SADD: {
            gr_crec c = {me, hlc, 0, 0};

            op->count += !had;
            r = gr_crdt_put_mem(&w, v[i].p, (uint32_t)v[i].len, &c, 1);
            break;
        }
        case OP_SREM:
        case OP_SPOP:
            if (had) { /* every add seen here is removed; adds not seen survive */
                gr_crec stack[16], *c = stack;

                if (m.nrec > 16 && !(c = malloc(m.nrec * sizeof(*c)))) {
                    r = -ENOMEM;
                    break;
                }
                for (uint32_t j = 0; j < m.nrec; j++) {
                    c[j] = gr_cmem_rec(&m, j);
                    c[j].rem = c[j].add > c[j].rem ? c[j].add : c[j].rem;
                    c[j].rem_at = hlc;
                }
                op->count++;
                r = gr_crdt_put_mem(&w, v[i].p, (uint32_t)v[i].len, c, m.nrec);
                if (c != stack) {
                    free(c);
                }
            }
            break;
        }
    }
    (void)s;
    gr_crdt_end(&w);
    return r;
}

/* Pick a live member of set state st for a pop (pseudo-random). */
static int pick_member(gr_tshard *s, const uint8_t *st, size_t len, cname *ret)
{
    gr_crdt_rd rd;
    gr_cmem m;
    uint32_t live = 0, want;

    gr_crdt_summary(st, len, &live, &(bool){false});
    if (live == 0 || gr_crdt_open(&rd, st, len) < 0) {
        return GR_ENOKEY;
    }
    s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
    want = (uint32_t)((s->rng >> 33) % live);
    while (gr_crdt_next_mem(&rd, &m) > 0) {
        if (gr_cmem_live(&m) && want-- == 0) {
            *ret = (cname){m.m, m.mlen, 0};
            return 0;
        }
    }
    return GR_ENOKEY;
}

/* Apply op to key: the current state (or a new one) merged with the op's
 * delta, written like a put. */
static int crdt_write(gr_table *t, const void *key, size_t klen, int type, cop *op)
{
    uint8_t tflag = type == GR_CRDT_MAP ? GR_TENT_MAP : GR_TENT_ASET;
    gr_tbuf fresh = {0}, delta = {0}, nw = {0}, purged = {0};
    const uint8_t *st;
    size_t stlen;
    cname *v = NULL, one;
    size_t nv = 0;
    gr_tkey k;
    gr_tshard *s;
    gr_tent *old, *e;
    gr_wal_batch *tk = NULL;
    uint64_t now, hlc, me = t->ts->cfg.node_id;
    ent_spec sp;
    int r;

    if (op->op != OP_SPOP && (r = cnames(op, &v, &nv)) < 0) {
        return r;
    }
    for (size_t i = 0; op->op == OP_MSET && i < op->n; i++) {
        if (!op->vals || !op->vals[i] || op->vlens[i] == 0 || op->vlens[i] > t->opts.max_value ||
            gr_term_validate(op->vals[i], op->vlens[i]) < 0) {
            free(v);
            return op->vals && op->vals[i] && op->vlens[i] > t->opts.max_value ? GR_ETOOBIG
                                                                               : GR_EBADTERM;
        }
    }
    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        free(v);
        return r;
    }
    now = now_ms(t->ts);
    s = shard_of(t, k.hash);
    wr_lock(s);
    old = st_find(t, s, &k);
    if (old && !expired(old, now) && (old->flags & tflag)) {
        st = gr_tent_val(old); /* continue it (even empty: its removals matter) */
        stlen = old->vlen;
    } else if (old && !absent(old, now)) {
        r = GR_EWRONGTYPE;
        goto out;
    } else {
        /* a new state; on a replicated table its epoch is the write it
         * replaces (a tombstone, an expired entry, an empty state) */
        gr_crdt_wr w;
        bool ep = old && t->opts.replicated;

        if ((r = gr_crdt_begin(&w, &fresh, type, ep ? old->hlc : 0, ep ? old->origin : 0)) < 0) {
            goto out;
        }
        gr_crdt_end(&w);
        st = fresh.p;
        stlen = fresh.len;
    }
    if (op->op == OP_SPOP) {
        if ((r = pick_member(s, st, stlen, &one)) < 0) {
            goto out;
        }
        v = NULL;
        nv = 1;
        op->popped->len = 0;
        if ((r = gr_tbuf_put(op->popped, one.p, one.len)) < 0) {
            goto out;
        }
    }
    hlc = hlc_next(t->ts, now);
    if ((r = build_delta(t, s, op, op->op == OP_SPOP ? &one : v, nv, st, stlen, hlc, me, &delta)) <
            0 ||
        (r = gr_crdt_merge(&nw, st, stlen, delta.p, delta.len)) < 0) {
        goto out;
    }
    if (!t->opts.replicated && (r = gr_crdt_purge(&purged, nw.p, nw.len, true, 0)) >= 0) {
        gr_tbuf x = nw; /* a local table keeps no removed fields */

        nw = purged;
        purged = x;
    }
    if (r < 0) {
        goto out;
    }
    r = 0;
    if (old && old->vlen == nw.len && memcmp(gr_tent_val(old), nw.p, nw.len) == 0) {
        goto out; /* nothing changed (a removal of what is not there) */
    }
    sp = (ent_spec){.key = k.p,
                    .klen = k.len,
                    .hash = k.hash,
                    .val = nw.p,
                    .vlen = nw.len,
                    .flags = tflag,
                    .hlc = hlc,
                    .origin = me};
    if (!t->opts.replicated) {
        gr_crdt_rd rd;

        if (gr_crdt_open(&rd, nw.p, nw.len) == 0 && rd.n == 0) { /* emptied: the key goes */
            if (old && (r = log_rec(t, GR_TREC_DELETE, &sp, &tk)) == 0) {
                apply(t, s, k.hash, NULL, old);
            }
            goto out;
        }
    }
    if (!(e = ent_new(t, s, &sp, old))) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = make_room(t, s, grow_of(t, e, old), !old, old, now, &tk)) < 0 ||
        (r = log_rec(t, GR_TREC_ENTRY, &sp, &tk)) < 0) {
        free(e);
        goto out;
    }
    apply(t, s, k.hash, e, old);
    repl_notify(t, e, k.hash);
out:
    wr_unlock(s);
    gr_tkey_done(&k);
    free(v);
    gr_tbuf_free(&fresh);
    gr_tbuf_free(&delta);
    gr_tbuf_free(&nw);
    gr_tbuf_free(&purged);
    return finish_d(t, tk, r, op->defer);
}

int gr_table_map_set(gr_table *t, const void *key, size_t klen, size_t n, const void *const *names,
                     const size_t *nlens, const void *const *vals, const size_t *vlens,
                     uint64_t *ret_added)
{
    return gr_table_map_set_d(NULL, t, key, klen, n, names, nlens, vals, vlens, ret_added);
}

int gr_table_map_set_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *names, const size_t *nlens, const void *const *vals,
                       const size_t *vlens, uint64_t *ret_added)
{
    cop op = {.op = OP_MSET,
              .n = n,
              .names = names,
              .nlens = nlens,
              .vals = vals,
              .vlens = vlens,
              .defer = d};
    int r;

    if (!vals || !vlens) {
        return GR_EBADARG;
    }
    if ((r = crdt_write(t, key, klen, GR_CRDT_MAP, &op)) == 0 && ret_added) {
        *ret_added = op.count;
    }
    return r;
}

int gr_table_map_del(gr_table *t, const void *key, size_t klen, size_t n, const void *const *names,
                     const size_t *nlens, uint64_t *ret_removed)
{
    return gr_table_map_del_d(NULL, t, key, klen, n, names, nlens, ret_removed);
}

int gr_table_map_del_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *names, const size_t *nlens, uint64_t *ret_removed)
{
    cop op = {.op = OP_MDEL, .n = n, .names = names, .nlens = nlens, .defer = d};
    int r = crdt_write(t, key, klen, GR_CRDT_MAP, &op);

    if (r == 0 && ret_removed) {
        *ret_removed = op.count;
    }
    return r;
}

int gr_table_map_incr(gr_table *t, const void *key, size_t klen, const void *name, size_t nlen,
                      int64_t delta, int64_t *ret_value)
{
    return gr_table_map_incr_d(NULL, t, key, klen, name, nlen, delta, ret_value);
}

int gr_table_map_incr_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, const void *name,
                        size_t nlen, int64_t delta, int64_t *ret_value)
{
    cop op = {.op = OP_MINCR, .n = 1, .names = &name, .nlens = &nlen, .delta = delta, .defer = d};
    int r = crdt_write(t, key, klen, GR_CRDT_MAP, &op);

    if (r == 0 && ret_value) {
        *ret_value = op.total;
    }
    return r;
}

int gr_table_set_add(gr_table *t, const void *key, size_t klen, size_t n, const void *const *mems,
                     const size_t *mlens, uint64_t *ret_added)
{
    return gr_table_set_add_d(NULL, t, key, klen, n, mems, mlens, ret_added);
}

int gr_table_set_add_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *mems, const size_t *mlens, uint64_t *ret_added)
{
    cop op = {.op = OP_SADD, .n = n, .names = mems, .nlens = mlens, .defer = d};
    int r = crdt_write(t, key, klen, GR_CRDT_SET, &op);

    if (r == 0 && ret_added) {
        *ret_added = op.count;
    }
    return r;
}

int gr_table_set_rem(gr_table *t, const void *key, size_t klen, size_t n, const void *const *mems,
                     const size_t *mlens, uint64_t *ret_removed)
{
    return gr_table_set_rem_d(NULL, t, key, klen, n, mems, mlens, ret_removed);
}

int gr_table_set_rem_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *mems, const size_t *mlens, uint64_t *ret_removed)
{
    cop op = {.op = OP_SREM, .n = n, .names = mems, .nlens = mlens, .defer = d};
    int r = crdt_write(t, key, klen, GR_CRDT_SET, &op);

    if (r == 0 && ret_removed) {
        *ret_removed = op.count;
    }
    return r;
}

int gr_table_set_pop(gr_table *t, const void *key, size_t klen, gr_tbuf *ret_member)
{
    return gr_table_set_pop_d(NULL, t, key, klen, ret_member);
}

int gr_table_set_pop_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, gr_tbuf *ret_member)
{
    cop op = {.op = OP_SPOP, .popped = ret_member, .defer = d};

    return crdt_write(t, key, klen, GR_CRDT_SET, &op);
}

/* Copy key's state of `type` into *b. 0, GR_ENOKEY (absent: reads see no
 * key), GR_EWRONGTYPE, GR_EBADTERM, -ENOMEM. */
static int crdt_read(gr_table *t, const void *key, size_t klen, int type, gr_tbuf *b)
{
    uint8_t tflag = type == GR_CRDT_MAP ? GR_TENT_MAP : GR_TENT_ASET;
    gr_tkey k;
    gr_tshard *s;
    gr_tent *e;
    uint64_t now;
    int r;

    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    now = now_ms(t->ts);
    s = shard_of(t, k.hash);
    pthread_rwlock_rdlock(&s->lock);
    e = st_find(t, s, &k);
    if (!e || absent(e, now)) {
        r = GR_ENOKEY;
    } else if (!(e->flags & tflag)) {
        r = GR_EWRONGTYPE;
    } else {
        b->len = 0;
        r = gr_tbuf_put(b, gr_tent_val(e), e->vlen);
        if (r == 0 && t->opts.cache) {
            touch(e, now);
        }
    }
    pthread_rwlock_unlock(&s->lock);
    gr_tkey_done(&k);
    return r;
}

int gr_table_type(gr_table *t, const void *key, size_t klen, gr_tval_kind *ret_kind)
{
    gr_tkey k;
    gr_tshard *s;
    gr_tent *e;
    uint64_t now;
    int r;

    if ((r = tkey_make(t, &k, key, klen)) < 0) {
        gr_tkey_done(&k);
        return r;
    }
    now = now_ms(t->ts);
    s = shard_of(t, k.hash);
    pthread_rwlock_rdlock(&s->lock);
    e = st_find(t, s, &k);
    *ret_kind = !e || absent(e, now) ? GR_TVAL_NONE : kind_of(e);
    pthread_rwlock_unlock(&s->lock);
    gr_tkey_done(&k);
    return 0;
}

/* Call fn for each live field (map) or member (set) of the state in b. */
static int crdt_each(const gr_tbuf *b, gr_tfield_fn fn, void *ud, uint64_t *ret_n)
{
    gr_crdt_rd rd;
    uint64_t n = 0;
    int k, r = 0;

    if (gr_crdt_open(&rd, b->p, b->len) < 0) {
        return GR_ECORRUPT;
    }
    for (;;) {
        if (rd.type == GR_CRDT_MAP) {
            gr_cfield f;

            if ((k = gr_crdt_next_field(&rd, &f)) <= 0) {
                break;
            }
            if (!(f.flags & GR_CF_TOMB)) {
                n++;
                r = fn ? fn(ud, f.name, f.nlen, f.val, f.vlen) : 0;
            }
        } else {
            gr_cmem m;

            if ((k = gr_crdt_next_mem(&rd, &m)) <= 0) {
                break;
            }
            if (gr_cmem_live(&m)) {
                n++;
                r = fn ? fn(ud, m.m, m.mlen, NULL, 0) : 0;
            }
        }
        if (r != 0) {
            return r;
        }
    }
    if (ret_n) {
        *ret_n = n;
    }
    return k < 0 ? GR_ECORRUPT : 0;
}

int gr_table_map_get(gr_table *t, const void *key, size_t klen, const void *name, size_t nlen,
                     gr_tbuf *val)
{
    gr_tbuf b = {0};
    gr_cfield f;
    int r = crdt_read(t, key, klen, GR_CRDT_MAP, &b);

    if (r == 0) {
        if (find_field(b.p, b.len, name ? name : "", nlen, &f) && !(f.flags & GR_CF_TOMB)) {
            val->len = 0;
            r = gr_tbuf_put(val, f.val, f.vlen);
        } else {
            r = GR_ENOKEY;
        }
    }
    gr_tbuf_free(&b);
    return r;
}

/* An absent key reads as an empty map / set. */
static int crdt_each_key(gr_table *t, const void *key, size_t klen, int type, gr_tfield_fn fn,
                         void *ud, uint64_t *ret_n)
{
    gr_tbuf b = {0};
    int r = crdt_read(t, key, klen, type, &b);

    if (r == GR_ENOKEY) {
        if (ret_n) {
            *ret_n = 0;
        }
        r = 0;
    } else if (r == 0) {
        r = crdt_each(&b, fn, ud, ret_n);
    }
    gr_tbuf_free(&b);
    return r;
}

int gr_table_map_getall(gr_table *t, const void *key, size_t klen, gr_tfield_fn fn, void *ud)
{
    return crdt_each_key(t, key, klen, GR_CRDT_MAP, fn, ud, NULL);
}

int gr_table_map_len(gr_table *t, const void *key, size_t klen, uint64_t *ret_n)
{
    return crdt_each_key(t, key, klen, GR_CRDT_MAP, NULL, NULL, ret_n);
}

int gr_table_set_members(gr_table *t, const void *key, size_t klen, gr_tfield_fn fn, void *ud)
{
    return crdt_each_key(t, key, klen, GR_CRDT_SET, fn, ud, NULL);
}

int gr_table_set_card(gr_table *t, const void *key, size_t klen, uint64_t *ret_n)
{
    return crdt_each_key(t, key, klen, GR_CRDT_SET, NULL, NULL, ret_n);
}

int gr_table_set_ismember(gr_table *t, const void *key, size_t klen, const void *m, size_t mlen,
                          bool *ret_is)
{
    gr_tbuf b = {0};
    gr_cmem cm;
    int r = crdt_read(t, key, klen, GR_CRDT_SET, &b);

    if (r == GR_ENOKEY) {
        *ret_is = false;
        r = 0;
    } else if (r == 0) {
        *ret_is = find_mem(b.p, b.len, m ? m : "", mlen, &cm) && gr_cmem_live(&cm);
    }
    gr_tbuf_free(&b);
    return r;
}

/* ---- scans -------------------------------------------------------------------------------- */

/* A page collected under the locks: records [klen u32][vlen u32][meta][key][val]. */
typedef struct page {
    gr_tbuf buf; /* records */
    uint32_t n;  /* entries */
    size_t last; /* offset of the last record */
} page;

static int page_add(page *pg, gr_tent *e)
{
    uint32_t l[2] = {e->klen, e->vlen};
    gr_tmeta m;

    meta_of(e, &m);
    pg->last = pg->buf.len;
    if (gr_tbuf_put(&pg->buf, l, sizeof(l)) < 0 || gr_tbuf_put(&pg->buf, &m, sizeof(m)) < 0 ||
        gr_tbuf_put(&pg->buf, gr_tent_key(e), e->klen) < 0 ||
        gr_tbuf_put(&pg->buf, gr_tent_val(e), e->vlen) < 0) {
        return -ENOMEM;
    }
    pg->n++;
    return 0;
}

/* Fill *next with the cursor for the entry at offset off of the page. */
static int cursor_of(gr_table *t, const page *pg, size_t off, gr_tbuf *next)
{
    uint32_t l[2];
    const uint8_t *key;

    memcpy(l, pg->buf.p + off, sizeof(l));
    key = pg->buf.p + off + sizeof(l) + sizeof(gr_tmeta);
    next->len = 0;
    if (t->opts.kind == GR_TABLE_SET) {
        uint64_t h = key_hash(t, key, l[0]);
        uint8_t hb[8];

        for (int i = 0; i < 8; i++) {
            hb[i] = (uint8_t)(h >> (56 - 8 * i));
        }
        if (gr_tbuf_put(next, hb, 8) < 0) {
            return -ENOMEM;
        }
    }
    return gr_tbuf_put(next, key, l[0]);
}

int gr_table_scan(gr_table *t, const gr_tscan *req, gr_tscan_fn fn, void *ud, gr_tbuf *next)
{
    gr_tkey cur = {0}, lo = {0}, hi = {0}, pre = {0};
    bool has_cur = false, has_lo = false, has_hi = false, has_pre = false;
    uint64_t cur_hash = 0, now = now_ms(t->ts);
    uint32_t limit = req->limit ? req->limit : 100;
    page pg = {0};
    size_t off;
    int r = 0;

    next->len = 0;
    if (limit > 10000) {
        return GR_EBADARG;
    }
    if (req->cursor && req->cursor_len) {
        const uint8_t *c = req->cursor;
        size_t cl = req->cursor_len;

        if (t->opts.kind == GR_TABLE_SET) {
            if (cl < 9) {
                return GR_EBADARG;
            }
            for (int i = 0; i < 8; i++) {
                cur_hash = cur_hash << 8 | c[i];
            }
            c += 8;
            cl -= 8;
        }
        if (tkey_make(t, &cur, c, cl) < 0 || cur.len != cl || memcmp(cur.p, c, cl) != 0 ||
            (t->opts.kind == GR_TABLE_SET && cur.hash != cur_hash)) {
            r = GR_EBADARG;
            goto out;
        }
        has_cur = true;
    }
    if (req->prefix) {
        if ((r = tkey_make(t, &pre, req->prefix, req->prefix_len)) < 0) {
            goto out;
        }
        if ((pre.p[0] & 0xe0) != 0xa0 && pre.p[0] != 0xd9 && pre.p[0] != 0xda && pre.p[0] != 0xdb &&
            pre.p[0] != 0xc4 && pre.p[0] != 0xc5 && pre.p[0] != 0xc6) {
            r = GR_EBADARG; /* only a str or bin prefix */
            goto out;
        }
        has_pre = true;
    }
    if (req->start || req->end) {
        if (t->opts.kind == GR_TABLE_SET) {
            r = GR_EBADARG; /* a hash table has no key ranges */
            goto out;
        }
        if (req->start && (r = tkey_make(t, &lo, req->start, req->start_len)) < 0) {
            goto out;
        }
        if (req->end && (r = tkey_make(t, &hi, req->end, req->end_len)) < 0) {
            goto out;
        }
        has_lo = req->start != NULL;
        has_hi = req->end != NULL;
    }
    if (t->opts.kind == GR_TABLE_ORDERED_SET) {
        gr_tshard *s = &t->shards[0];
        gr_tent *e;

        pthread_rwlock_rdlock(&s->lock);
        if (has_cur) {
            e = gr_oset_seek(s, cur.p, cur.len, 1);
        } else {
            const gr_tkey *from = has_lo ? &lo : NULL;

            /* start at the larger of the start bound and the prefix */
            if (has_pre && (!from || gr_tkey_cmp(pre.p, pre.len, lo.p, lo.len) > 0)) {
                from = &pre;
            }
            e = gr_oset_seek(s, from ? from->p : NULL, from ? from->len : 0, 0);
        }
        for (; e && pg.n < limit; e = gr_tent_fwd(e)[0]) {
            if (has_hi && gr_tkey_cmp(gr_tent_key(e), e->klen, hi.p, hi.len) >= 0) {
                break;
            }
            if (has_pre && !gr_tkey_has_prefix(gr_tent_key(e), e->klen, pre.p, pre.len)) {
                if (gr_tkey_cmp(gr_tent_key(e), e->klen, pre.p, pre.len) > 0) {
                    break; /* past the contiguous run of prefixed keys */
                }
                continue;
            }
            if (absent(e, now)) {
                continue;
            }
            if ((r = page_add(&pg, e)) < 0) {
                break;
            }
        }
        pthread_rwlock_unlock(&s->lock);
    } else {
        uint32_t first =
            has_cur ? (uint32_t)(t->shard_bits ? cur_hash >> (64 - t->shard_bits) : 0) : 0;

        for (uint32_t i = first; i < t->nshards && pg.n < limit && r == 0; i++) {
            gr_tshard *s = &t->shards[i];
            gr_tent *e;

            pthread_rwlock_rdlock(&s->lock);
            e = gr_sset_after(s, t->shard_bits, has_cur && i == first, cur_hash, cur.p, cur.len);
            for (; e && pg.n < limit; e = gr_sset_next(s, t->shard_bits, tent_hash(t, e), e)) {
                if (absent(e, now) ||
                    (has_pre && !gr_tkey_has_prefix(gr_tent_key(e), e->klen, pre.p, pre.len))) {
                    continue;
                }
                if ((r = page_add(&pg, e)) < 0) {
                    break;
                }
            }
            pthread_rwlock_unlock(&s->lock);
        }
    }
    if (r < 0) {
        goto out;
    }
    /* Deliver outside the locks. */
    off = 0;
    for (uint32_t i = 0; i < pg.n; i++) {
        uint32_t l[2];
        gr_tmeta m;
        const uint8_t *key;
        size_t here = off;

        memcpy(l, pg.buf.p + off, sizeof(l));
        memcpy(&m, pg.buf.p + off + sizeof(l), sizeof(m));
        key = pg.buf.p + off + sizeof(l) + sizeof(m);
        off += sizeof(l) + sizeof(m) + l[0] + l[1];
        if (fn && fn(ud, key, l[0], key + l[0], l[1], &m) != 0) {
            r = cursor_of(t, &pg, here, next);
            goto out;
        }
    }
    if (pg.n == limit) {
        r = cursor_of(t, &pg, pg.last, next);
    }
out:
    gr_tbuf_free(&pg.buf);
    gr_tkey_done(&cur);
    gr_tkey_done(&lo);
    gr_tkey_done(&hi);
    gr_tkey_done(&pre);
    return r;
}

/* ---- maintenance -------------------------------------------------------------------------- */

/* Purge the removed fields / set records of map or set e older than the
 * tombstone cut-off (the rule of entry tombstones: every member has held
 * them, or the horizon passed); a state left with nothing, itself older than
 * the cut-off, goes. Not logged (replay brings them back; the next sweep
 * purges them again). Shard write lock held. 1: changed, else 0. */
static uint64_t purge_locked(gr_table *t, gr_tshard *s, gr_tent *e, uint64_t hash, uint64_t gc,
                             uint64_t horizon, uint64_t now, gr_tbuf *b)
{
    uint64_t cut = now >= horizon ? now - horizon + 1 : 0;
    gr_crdt_rd rd;
    ent_spec sp;
    gr_tent *ne;
    int r;

    cut = gc > cut ? gc : cut;
    if ((r = gr_crdt_purge(b, gr_tent_val(e), e->vlen, !t->opts.replicated, cut)) < 0) {
        return 0;
    }
    if (gr_crdt_open(&rd, b->p, b->len) == 0 && rd.n == 0) {
        if ((e->hlc >> 16) < cut || !t->opts.replicated) {
            apply(t, s, hash, NULL, e);
            return 1;
        }
        return 0; /* empty but recent: a lagging replica may still merge into it */
    }
    if (r == 0) {
        return 0;
    }
    spec_of(t, e, &sp);
    sp.val = b->p;
    sp.vlen = b->len;
    if (!(ne = ent_new(t, s, &sp, e))) {
        return 0;
    }
    apply(t, s, hash, ne, e);
    return 1;
}

/* Entries a sweep examines per hold of a shard's write lock. */
#define SWEEP_STEP 1024

uint64_t gr_table_expire(gr_table *t, uint64_t budget)
{
    uint64_t now = now_ms(t->ts), done = 0;
    uint64_t horizon = t->ts->cfg.tomb_ms ? t->ts->cfg.tomb_ms : 24ull * 3600 * 1000;
    /* every member known has had a digest equal to ours since then (wall ms) */
    uint64_t gc = t->opts.replicated && t->ts->repl ? gr_trepl_gc_ms(t->ts->repl, t->name) : 0;
    gr_tbuf cur = {0};  /* key of the last entry examined: where the next step resumes */
    gr_tbuf pbuf = {0}; /* a purged map/set state */

    if (atomic_load(&t->ttl_entries) == 0) {
        return 0; /* no entry can expire: no walk */
    }
    for (uint32_t n = 0; n < t->nshards && done < budget; n++) {
        gr_tshard *s = &t->shards[atomic_fetch_add(&t->sweep, 1) % t->nshards];
        uint64_t cur_hash = 0;
        bool has_cur = false, end = false;

        while (!end && done < budget) {
            gr_tent *e, *nx;
            int step = 0;

            wr_lock(s);
            if (t->opts.kind == GR_TABLE_SET) {
                e = gr_sset_after(s, t->shard_bits, has_cur, cur_hash, cur.p, cur.len);
            } else {
                e = gr_oset_seek(s, has_cur ? cur.p : NULL, cur.len, 1);
            }
            for (; e && done < budget && step < SWEEP_STEP; e = nx, step++) {
                uint64_t h = tent_hash(t, e);

                nx = t->opts.kind == GR_TABLE_SET ? gr_sset_next(s, t->shard_bits, h, e)
                                                  : gr_tent_fwd(e)[0];
                cur.len = 0;
                if (gr_tbuf_put(&cur, gr_tent_key(e), e->klen) < 0) {
                    end = true; /* out of memory: stop this shard, nothing lost */
                    break;
                }
                cur_hash = h;
                has_cur = true;
                if (expired(e, now) && t->opts.replicated) {
                    /* An expired entry becomes a tombstone at its version (so an
                     * older write from a replica cannot bring the key back);
                     * a tombstone goes after the horizon. No log record: the
                     * log holds the expiry / the delete. */
                    if (!(e->flags & GR_TENT_TOMB)) {
                        ent_spec sp;
                        gr_tent *tomb;

                        spec_of(t, e, &sp);
                        sp.val = (const uint8_t *)"";
                        sp.vlen = 0;
                        sp.cnt = NULL;
                        sp.ncnt = 0;
                        sp.expire_ms = 0;
                        sp.flags = GR_TENT_TOMB;
                        if ((tomb = ent_new(t, s, &sp, e))) {
                            apply(t, s, cur_hash, tomb, e);
                            atomic_fetch_add(&t->expired, 1);
                            done++;
                        }
                    } else if ((e->hlc >> 16) + horizon <= now || (e->hlc >> 16) < gc) {
                        /* past the horizon, or every member has held it */
                        apply(t, s, cur_hash, NULL, e);
                        done++;
                    }
                } else if (expired(e, now)) {
                    apply(t, s, cur_hash, NULL,
                          e); /* no log record: its expiry is in the log already */
                    atomic_fetch_add(&t->expired, 1);
                    done++;
                } else if (e->crdt & GR_TC_GARBAGE) {
                    done += purge_locked(t, s, e, cur_hash, gc, horizon, now, &pbuf);
                }
            }
            end = end || !e;
            wr_unlock(s);
        }
    }
    gr_tbuf_free(&cur);
    gr_tbuf_free(&pbuf);
    return done;
}

typedef struct snap_it {
    gr_table *t;
    uint64_t now;
} snap_it;

/* Entries a snapshot copies per hold of a shard's read lock; the file is
 * written between holds, never under a lock. */
#define SNAP_STEP 1024

static int snap_each(void *ud, gr_snap_emit_fn emit, void *ectx)
{
    snap_it *it = ud;
    gr_table *t = it->t;
    gr_tbuf b = {0}, chunk = {0}, cur = {0};
    int r = 0;

    for (uint32_t i = 0; i < t->nshards && r == 0; i++) {
        gr_tshard *s = &t->shards[i];
        uint64_t cur_hash = 0;
        bool has_cur = false, end = false;

        while (!end && r == 0) {
            gr_tent *e;
            int step = 0;

            chunk.len = 0;
            pthread_rwlock_rdlock(&s->lock);
            e = t->opts.kind == GR_TABLE_SET
                    ? gr_sset_after(s, t->shard_bits, has_cur, cur_hash, cur.p, cur.len)
                    : gr_oset_seek(s, has_cur ? cur.p : NULL, cur.len, 1);
            for (; e && r == 0 && step < SNAP_STEP;
                 step++, e = t->opts.kind == GR_TABLE_SET
                                 ? gr_sset_next(s, t->shard_bits, cur_hash, e)
                                 : gr_tent_fwd(e)[0]) {
                ent_spec sp;
                uint32_t n;

                cur.len = 0;
                if ((r = gr_tbuf_put(&cur, gr_tent_key(e), e->klen)) < 0) {
                    break;
                }
                cur_hash = tent_hash(t, e);
                has_cur = true;
                if (expired(e, it->now) && !t->opts.replicated) {
                    continue;
                }
                spec_of(t, e, &sp); /* replicated: a tombstone (or expired) is a delete record */
                if ((r = rec_build(&b, expired(e, it->now) ? GR_TREC_DELETE : GR_TREC_ENTRY,
                                   &sp)) == 0) {
                    n = (uint32_t)b.len;
                    if ((r = gr_tbuf_put(&chunk, &n, sizeof(n))) == 0) {
                        r = gr_tbuf_put(&chunk, b.p, b.len);
                    }
                }
            }
            end = !e;
            pthread_rwlock_unlock(&s->lock);
            for (size_t off = 0; r == 0 && off < chunk.len;) { /* the I/O, lock released */
                uint32_t n;

                memcpy(&n, chunk.p + off, sizeof(n));
                r = emit(ectx, chunk.p + off + sizeof(n), n);
                off += sizeof(n) + n;
            }
        }
    }
    gr_tbuf_free(&b);
    gr_tbuf_free(&chunk);
    gr_tbuf_free(&cur);
    return r;
}

int gr_table_snapshot(gr_table *t)
{
    snap_it it = {t, now_ms(t->ts)};
    uint64_t seg, *segs = NULL;
    size_t n = 0;
    int r;

    if (!t->wal) {
        return 0;
    }
    if (atomic_load(&t->dropped)) {
        return GR_ENOTABLE; /* its directory may belong to a new table of that name */
    }
    pthread_mutex_lock(&t->snap_mu);
    /* Every record applied before the rotation is in an older segment; the
     * snapshot below sees at least those (and maybe later ones, which replay
     * idempotently from the new segment). */
    if ((r = gr_wal_rotate(t->wal, &seg)) < 0 ||
        (r = gr_snap_write(t->dir, seg, snap_each, &it)) < 0) {
        goto out;
    }
    atomic_fetch_add(&t->snapshots, 1);
    if (list_segs(t->dir, &segs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            char *p;

            if (segs[i] < seg && (p = seg_name(t->dir, segs[i]))) {
                unlink(p);
                free(p);
            }
        }
        free(segs);
    }
out:
    pthread_mutex_unlock(&t->snap_mu);
    return r;
}

int gr_table_sync(gr_table *t)
{
    return t->wal ? gr_wal_sync(t->wal) : 0;
}
