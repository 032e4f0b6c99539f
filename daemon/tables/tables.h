/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tables.h - the table engine: named key/value tables of msgpack terms, local to
 * this node, in memory or on disk (write-ahead log + snapshots). docs/tables.md
 * has the model, the key order, the concurrency scheme and the file formats.
 *
 * Threads: every function here may be called from any thread (schedulers
 * included) unless its comment says otherwise. Reads take a shard's read lock
 * and copy out; writes take the shard's write lock. A write to a disk table
 * with fsync `always` then waits for its log record to be on disk (group
 * commit, outside every table lock): that wait blocks the calling thread for
 * one fsync. A scheduler thread uses the _d variants instead, which leave the
 * wait to a completion callback (gr_tdefer below; docs/tables.md "Deferred
 * durability").
 *
 * Keys are one msgpack term each (canonicalized, key.h); values are one
 * msgpack term each, validated. Every entry carries a version: its hybrid
 * logical clock (48-bit ms << 16 | 16-bit logical) and the origin node id, the
 * metadata replication orders writes by.
 */
#ifndef GR_TABLES_H
#define GR_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gr_tables gr_tables; /* the engine: registry of tables; opaque */
typedef struct gr_table gr_table;   /* one table, refcounted handle; opaque */
typedef struct gr_trepl gr_trepl;   /* the engine's replication state (repl.h); opaque */

typedef enum gr_table_kind { GR_TABLE_SET, GR_TABLE_ORDERED_SET } gr_table_kind;
typedef enum gr_table_durability { GR_TABLE_MEMORY, GR_TABLE_DISK } gr_table_durability;
typedef enum gr_table_fsync {
    GR_FSYNC_ALWAYS,   /* a write returns after its record is on disk (group commit) */
    GR_FSYNC_INTERVAL, /* records written and fsynced every interval_ms */
    GR_FSYNC_NEVER     /* records written every interval_ms, never fsynced */
} gr_table_fsync;

#define GR_TABLE_NAME_MAX 128                 /* bytes */
#define GR_TABLES_MAX 4096                    /* tables per node (an empty one holds ~22 KB) */
#define GR_TABLE_VALUE_MAX_DEFAULT (1u << 20) /* 1 MiB */
#define GR_TABLE_INTERVAL_DEFAULT_MS 1000
#define GR_TABLE_SNAPSHOT_BYTES_DEFAULT (64ull << 20) /* log bytes that trigger a snapshot */

/* Engine configuration. */
typedef struct gr_tables_config {
    const char *data_dir; /* disk tables live in DATA_DIR/tables/NAME/; NULL: none */
    uint64_t node_id;     /* origin stamped on this node's writes (nonzero) */
    /* Wall clock in ms (TTL expiry and HLC physical part). NULL: CLOCK_REALTIME.
     * Tests inject one. Called from any thread, under table locks. */
    uint64_t (*now_ms)(void *ud);
    void *clock_ud;
    /* Period of the engine's maintenance thread, which sweeps expired entries
     * and writes snapshots of logs over their size (gr_tables_maintain).
     * 0: 1000 ms; negative: no thread (tests; a writer whose log crosses the
     * snapshot size then writes the snapshot itself). */
    int32_t maint_ms;
    /* Replicated tables: a tombstone (a delete, or an entry whose TTL passed)
     * is purged this long after its write, in ms (docs/tables.md
     * "Replication"). 0: 24 hours. */
    uint64_t tomb_ms;
} gr_tables_config;

/* Options of one table; zero-initialised means: set, memory, no limits. */
typedef struct gr_table_opts {
    gr_table_kind kind;
    gr_table_durability durability;
    gr_table_fsync fsync;    /* disk only; default ALWAYS */
    uint32_t interval_ms;    /* FSYNC_INTERVAL/NEVER flush period; 0 = default 1000 */
    uint64_t max_entries;    /* 0 = unlimited */
    uint64_t max_bytes;      /* memory of entries (info.bytes); 0 = unlimited */
    bool cache;              /* full: evict (expired first, then approx. LRU) */
    uint64_t default_ttl_ms; /* applied to puts without their own ttl; 0 = none */
    uint32_t max_value;      /* value bytes; 0 = GR_TABLE_VALUE_MAX_DEFAULT */
    uint64_t snapshot_bytes; /* disk: log bytes before a snapshot; 0 = default */
    uint32_t shards;         /* set only: power of two 1..256; 0 = 16 */
    bool replicated;         /* mode: a copy on every member (repl.h); false: local */
    uint64_t created;        /* replicated: HLC of the create (0 at create: now) */
} gr_table_opts;

typedef struct gr_table_info {
    char name[GR_TABLE_NAME_MAX + 1];
    gr_table_opts opts;
    uint64_t entries;     /* live entries (expired ones not yet swept count) */
    uint64_t bytes;       /* memory held by entries (allocator sizes + index) */
    uint64_t evictions;   /* cache evictions */
    uint64_t expired;     /* entries removed because their TTL passed */
    uint64_t wal_bytes;   /* disk: log bytes since the last snapshot */
    uint64_t fsyncs;      /* disk: fsyncs of the log */
    uint64_t wal_records; /* disk: records written to the log */
    uint64_t snapshots;   /* disk: snapshots written */
    int load_error;       /* a disk table that failed to load: its error, else 0 */
    uint64_t tombstones;  /* replicated: tombstones held (not in entries) */
} gr_table_info;

/* The kind of value a key holds (gr_table_type, gr_tmeta.kind). */
typedef enum gr_tval_kind {
    GR_TVAL_NONE,    /* absent (or expired, deleted, an empty map or set) */
    GR_TVAL_PLAIN,   /* a term put with gr_table_put */
    GR_TVAL_COUNTER, /* an integer grown by gr_table_incr */
    GR_TVAL_MAP,     /* a map of fields (gr_table_map_*) */
    GR_TVAL_SET      /* an add-wins set of members (gr_table_set_*) */
} gr_tval_kind;

/* An entry's metadata, returned by reads and writes. */
typedef struct gr_tmeta {
    uint64_t version;   /* HLC of the write that made this value; CAS compares it */
    uint64_t origin;    /* node id of that write */
    uint64_t expire_ms; /* absolute wall ms, 0 = never */
    uint32_t kind;      /* gr_tval_kind; scans of a map or set return its encoded state */
} gr_tmeta;

/* A growable output buffer owned by the caller; reuse it across calls to avoid
 * allocations. Free with gr_tbuf_free. */
typedef struct gr_tbuf {
    uint8_t *p; /* bytes */
    size_t len; /* used */
    size_t cap; /* allocated */
} gr_tbuf;
void gr_tbuf_free(gr_tbuf *b);
/* Make room for `extra` more bytes (the capacity doubles). 0 or -ENOMEM. */
int gr_tbuf_reserve(gr_tbuf *b, size_t extra);
/* Append n bytes (p may be NULL when n is 0). 0 or -ENOMEM. */
int gr_tbuf_put(gr_tbuf *b, const void *p, size_t n);

/* ---- engine ---------------------------------------------------------------------------- */

/* Create the engine; with a data_dir, load every disk table found there. A
 * table that fails to load is logged (file, offset, reason) and stays in the
 * registry in a failed state (gr_tables_open answers its error, info shows it,
 * drop removes it): the engine still starts. 0, GR_ECONFIG, -ENOMEM, -errno. */
int gr_tables_new(const gr_tables_config *cfg, gr_tables **ret_tables);
/* One maintenance pass over every table: remove expired entries (in steps of
 * 10,000 under one shard lock each) and snapshot disk tables whose log grew
 * past snapshot_bytes. What the maintenance thread does every period. Blocks
 * for the snapshots' I/O: not for schedulers. */
void gr_tables_maintain(gr_tables *ts);
/* Bytes the engine holds outside malloc: the set stores' slot arrays of 64
 * KiB and more, which are pages of their own (mmap). Any thread; NULL-safe.
 * A process's malloc statistics plus this are the engine's heap use. */
uint64_t gr_tables_mapped(gr_tables *ts);
/* Flush and close every table. Any thread, after all users closed their
 * handles. NULL-safe; returns NULL. */
gr_tables *gr_tables_free(gr_tables *ts);

/* Create a table. Names: 1..GR_TABLE_NAME_MAX bytes of [A-Za-z0-9_.-], not
 * starting with '.'. 0, GR_EBADTABLENAME, GR_ETABLEEXISTS, GR_EBADARG (bad
 * options), GR_ECONFIG (disk without data_dir), -errno (creating its files). */
int gr_tables_create(gr_tables *ts, const char *name, const gr_table_opts *opts);
/* Drop a table: it vanishes from the registry at once, open handles keep
 * working on the detached table until closed; its files are removed. 0 or
 * GR_ENOTABLE. */
int gr_tables_drop(gr_tables *ts, const char *name);
/* Open a handle (a reference) to a table. 0, GR_ENOTABLE, or a failed disk
 * table's load error. Close with gr_table_close. */
int gr_tables_open(gr_tables *ts, const char *name, gr_table **ret_table);
/* Drop a handle's reference. NULL-safe; returns NULL. */
gr_table *gr_table_close(gr_table *t);
/* Call fn for each table's name (sorted), under the registry lock: fn must not
 * call back into the engine. Returns the number of tables. */
size_t gr_tables_list(gr_tables *ts, void (*fn)(void *ud, const char *name), void *ud);
/* Info by name (also for a table in the failed state). 0 or GR_ENOTABLE. */
int gr_tables_info(gr_tables *ts, const char *name, gr_table_info *ret_info);
/* Info of an open table. */
void gr_table_info_get(gr_table *t, gr_table_info *ret_info);

/* ---- reads ----------------------------------------------------------------------------- */

/* Copy key's value into *val (replacing its contents) and its metadata into
 * *ret_meta (may be NULL). 0, GR_ENOKEY (absent or expired), GR_EBADTERM (bad
 * key), GR_ETOOBIG, -ENOMEM, GR_EWRONGTYPE for a map or set (*ret_meta is
 * still filled: its version and kind). */
int gr_table_get(gr_table *t, const void *key, size_t klen, gr_tbuf *val, gr_tmeta *ret_meta);
/* Entries, expired ones excluded only once swept (gr_table_expire). */
uint64_t gr_table_count(gr_table *t);
/* Look up n keys (keys[i], klens[i]); write into *out one msgpack array of n
 * values, nil for an absent key. 0 or the first key's error. */
int gr_table_mget(gr_table *t, size_t n, const void *const *keys, const size_t *klens,
                  gr_tbuf *out);

/* ---- writes ---------------------------------------------------------------------------- */

#define GR_TPUT_IF_ABSENT 0x1u /* fail with GR_EKEYEXISTS if the key is present */
#define GR_TPUT_CAS 0x2u       /* fail with GR_ECASMISMATCH unless version matches */
#define GR_TPUT_TTL 0x4u       /* ttl_ms applies (0: no expiry, overrides the default) */

typedef struct gr_tput {
    unsigned flags;   /* GR_TPUT_* */
    uint64_t version; /* CAS: the expected version; 0 means "key absent" */
    uint64_t ttl_ms;  /* GR_TPUT_TTL: time to live from now, 0 = forever */
} gr_tput;

/* Store value under key. `how` may be NULL (plain put). On success
 * *ret_meta (may be NULL) gets the new entry's metadata. 0, GR_EKEYEXISTS,
 * GR_ECASMISMATCH, GR_EFULL (limit reached, not a cache), GR_ETOOBIG,
 * GR_EBADTERM, -ENOMEM, or the log's -errno (-ENOSPC, -EFBIG, -EIO) for a disk
 * table: the write was not made durable (docs/tables.md "Disk errors"). */
int gr_table_put(gr_table *t, const void *key, size_t klen, const void *val, size_t vlen,
                 const gr_tput *how, gr_tmeta *ret_meta);
/* Delete key; if version is nonzero, only when the entry has that version.
 * 0, GR_ENOKEY, GR_ECASMISMATCH, or as gr_table_put. */
int gr_table_del(gr_table *t, const void *key, size_t klen, uint64_t version);
/* Add delta to key's counter (absent: starts at 0) and return the new total in
 * *ret_value. The counter keeps one (increments, decrements) pair per origin
 * node, the total is their sum: the layout a replication layer merges without
 * losing concurrent increments. An integer value put earlier becomes the
 * counter's start. 0, GR_EWRONGTYPE (value not an integer), GR_EBADARG
 * (total would overflow int64), or as gr_table_put. */
int gr_table_incr(gr_table *t, const void *key, size_t klen, int64_t delta, int64_t *ret_value);

/* ---- maps and sets ------------------------------------------------------------------------
 *
 * Two mergeable kinds of value (docs/tables.md "Maps and sets"). A map holds
 * fields (byte strings) with a msgpack term each; on a replicated table every
 * field is last-writer-wins by its own (HLC, origin), a removed field is a
 * per-field tombstone (purged by the sweep under the table's tombstone rule)
 * and gr_table_map_incr keeps a per-node counter in the field, so concurrent
 * increments all count. A set holds members (byte strings) and is add-wins:
 * a remove removes only the adds it saw, so an add concurrent with a remove
 * survives. Local tables store the same kinds without tombstones.
 *
 * A map or set with no live field/member reads as absent (gr_table_type
 * answers GR_TVAL_NONE, gr_table_get GR_ENOKEY). Another kind of value under
 * the key answers GR_EWRONGTYPE (and gr_table_get of a map or set too);
 * gr_table_put and gr_table_del replace / delete a map or set wholesale. Maps
 * and sets do not expire (the table's default TTL does not apply). Writes
 * return like gr_table_put (-errno of the log for disk tables, GR_EFULL,
 * -ENOMEM) and GR_EBADTERM for a bad key or value, GR_EBADARG for an empty
 * name list or a name over GR_TFIELD_MAX bytes. Any thread. */

#define GR_TFIELD_MAX 65535u /* longest field name / set member, bytes */

/* Called for each live field (val: one msgpack term) or member (val NULL),
 * outside every lock, bytes borrowed for the call. Nonzero stops (returned). */
typedef int (*gr_tfield_fn)(void *ud, const uint8_t *name, size_t nlen, const uint8_t *val,
                            size_t vlen);

/* The kind of key's value: GR_TVAL_NONE when absent. 0 or GR_EBADTERM. */
int gr_table_type(gr_table *t, const void *key, size_t klen, gr_tval_kind *ret_kind);
/* Set n fields (names[i], nlens[i]) to values (vals[i], vlens[i], one msgpack
 * term each); a name given twice takes its last value. *ret_added (may be
 * NULL): fields that were not there before. */
int gr_table_map_set(gr_table *t, const void *key, size_t klen, size_t n, const void *const *names,
                     const size_t *nlens, const void *const *vals, const size_t *vlens,
                     uint64_t *ret_added);
/* Remove n fields; *ret_removed (may be NULL): how many were there. Absent
 * key: 0 removed. */
int gr_table_map_del(gr_table *t, const void *key, size_t klen, size_t n, const void *const *names,
                     const size_t *nlens, uint64_t *ret_removed);
/* Copy one field's value into *val. 0, GR_ENOKEY (no key or no field),
 * GR_EWRONGTYPE, GR_EBADTERM. */
int gr_table_map_get(gr_table *t, const void *key, size_t klen, const void *name, size_t nlen,
                     gr_tbuf *val);
/* Call fn for every live field, in name order (absent key: none). 0,
 * GR_EWRONGTYPE, GR_EBADTERM, -ENOMEM, or fn's nonzero. */
int gr_table_map_getall(gr_table *t, const void *key, size_t klen, gr_tfield_fn fn, void *ud);
/* Add delta to an integer field (absent: 0; a msgpack integer, or a str/bin
 * of decimal digits, is the start) and return the new total. The field
 * becomes a counter: per-node (increments, decrements), merged per node.
 * GR_EWRONGTYPE (the field is not an integer), GR_EBADARG (int64 overflow). */
int gr_table_map_incr(gr_table *t, const void *key, size_t klen, const void *name, size_t nlen,
                      int64_t delta, int64_t *ret_value);
/* Live fields (absent key: 0). 0, GR_EWRONGTYPE, GR_EBADTERM. */
int gr_table_map_len(gr_table *t, const void *key, size_t klen, uint64_t *ret_n);

/* Add n members; *ret_added (may be NULL): how many were not members. */
int gr_table_set_add(gr_table *t, const void *key, size_t klen, size_t n, const void *const *mems,
                     const size_t *mlens, uint64_t *ret_added);
/* Remove n members (the adds seen here); *ret_removed: how many were members. */
int gr_table_set_rem(gr_table *t, const void *key, size_t klen, size_t n, const void *const *mems,
                     const size_t *mlens, uint64_t *ret_removed);
/* Call fn for every member (val NULL), in byte order (absent key: none). */
int gr_table_set_members(gr_table *t, const void *key, size_t klen, gr_tfield_fn fn, void *ud);
/* Is m a member? 0 (answer in *ret_is), GR_EWRONGTYPE, GR_EBADTERM. */
int gr_table_set_ismember(gr_table *t, const void *key, size_t klen, const void *m, size_t mlen,
                          bool *ret_is);
/* Members (absent key: 0). */
int gr_table_set_card(gr_table *t, const void *key, size_t klen, uint64_t *ret_n);
/* Remove a pseudo-random member and copy it into *ret_member. 0, GR_ENOKEY
 * (empty or absent), GR_EWRONGTYPE, or as the writes above. */
int gr_table_set_pop(gr_table *t, const void *key, size_t klen, gr_tbuf *ret_member);

/* ---- deferred durability -----------------------------------------------------------------
 *
 * A write to a disk table with fsync `always` waits for its record's fsync on
 * the calling thread. A caller that must not block (a scheduler thread: the
 * Redis front end) passes a gr_tdefer to the _d variants below instead: the
 * write returns once applied and its record buffered in the log, and leaves
 * its ticket in the gr_tdefer; gr_tdefer_notify later says once whether every
 * such record reached the disk (docs/tables.md "Deferred durability"). The
 * return value then carries no log error: that comes through the notify. A
 * NULL gr_tdefer, or a table without an `always` log: as the plain function.
 *
 * Ownership: a gr_tdefer belongs to its caller and is used by one thread at a
 * time; its tickets pin their log batches (and so need their tables open)
 * until gr_tdefer_notify or gr_tdefer_free. Start it zeroed. */
typedef struct gr_tdefer {
    struct gr_tdefer_tk *tk; /* distinct pending tickets */
    size_t n, cap;           /* used, allocated */
} gr_tdefer;

/* Called exactly once: 0 if every deferred record is on disk, or the first
 * -errno of a failed write/fsync (docs/tables.md "Disk errors"). Any thread;
 * no table lock held. */
typedef void (*gr_tdefer_fn)(void *arg, int err);

int gr_table_put_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, const void *val,
                   size_t vlen, const gr_tput *how, gr_tmeta *ret_meta);
int gr_table_del_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, uint64_t version);
int gr_table_incr_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, int64_t delta,
                    int64_t *ret_value);
int gr_table_map_set_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *names, const size_t *nlens, const void *const *vals,
                       const size_t *vlens, uint64_t *ret_added);
int gr_table_map_del_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *names, const size_t *nlens, uint64_t *ret_removed);
int gr_table_map_incr_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, const void *name,
                        size_t nlen, int64_t delta, int64_t *ret_value);
int gr_table_set_add_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *mems, const size_t *mlens, uint64_t *ret_added);
int gr_table_set_rem_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen, size_t n,
                       const void *const *mems, const size_t *mlens, uint64_t *ret_removed);
int gr_table_set_pop_d(gr_tdefer *d, gr_table *t, const void *key, size_t klen,
                       gr_tbuf *ret_member);

/* Does d hold a ticket (a write whose fsync is pending)? */
bool gr_tdefer_pending(const gr_tdefer *d);
/* Hand d's tickets over: fn(arg, result) is called exactly once, when all
 * their batches are done (at once on this thread if they already are or d is
 * empty; else from the thread that completes the last: a log's flusher or a
 * blocking writer). d is empty afterwards and can be reused. Never fails (out
 * of memory, it waits on this thread instead). */
void gr_tdefer_notify(gr_tdefer *d, gr_tdefer_fn fn, void *arg);
/* Give back d's tickets without waiting and free its memory. NULL-safe. */
void gr_tdefer_free(gr_tdefer *d);

/* ---- scans ----------------------------------------------------------------------------- */

/* A scan request. ordered_set scans go in key order; set scans in hash order.
 * Bounds are canonicalized keys given as msgpack terms (NULL = open). */
typedef struct gr_tscan {
    const void *start; /* ordered_set: first key >= start (NULL: from the start) */
    size_t start_len;
    const void *end; /* ordered_set: stop before key >= end (NULL: to the end) */
    size_t end_len;
    const void *prefix; /* a str or bin: only keys of the same type starting with it */
    size_t prefix_len;
    const void *cursor; /* opaque bytes from the previous page's *next (NULL: first) */
    size_t cursor_len;
    uint32_t limit; /* entries per page, 1..10000; 0 = 100 */
} gr_tscan;

/* Called for each entry of a page, outside every lock; key/val borrowed for
 * the call. Return 0 to continue, nonzero to stop the page early (the cursor
 * then resumes after the last entry passed). */
typedef int (*gr_tscan_fn)(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen, const gr_tmeta *meta);

/* One page. *next gets the cursor of the next page (empty, len 0, when the scan
 * is complete). A key present and unchanged during a whole scan is returned
 * exactly once; keys written meanwhile may appear or not, never twice.
 * 0, GR_EBADARG (bad cursor/limit/prefix), GR_EBADTERM, -ENOMEM. */
int gr_table_scan(gr_table *t, const gr_tscan *req, gr_tscan_fn fn, void *ud, gr_tbuf *next);

/* ---- replication (used by repl.c) ------------------------------------------------------ */

/* One counter component: a node's increments and decrements. The component
 * of node 0 is not a count: it is the counter's epoch (incs = the HLC, decs =
 * the origin of the write the counter started from; docs/tables.md). */
typedef struct gr_tcnt {
    uint64_t node; /* origin node id */
    uint64_t incs; /* sum of its increments */
    uint64_t decs; /* sum of its decrements (absolute) */
} gr_tcnt;

/* A whole replicated entry, as shipped between replicas. Borrowed pointers. */
typedef struct gr_trent {
    const uint8_t *key; /* canonical key */
    size_t klen;
    const uint8_t *val; /* value (none for a tombstone) */
    size_t vlen;
    bool tomb;          /* a tombstone: the key was deleted (or expired) at hlc */
    bool counter;       /* val is the sum of the components */
    uint8_t crdt;       /* 0, or GR_TVAL_MAP / GR_TVAL_SET: val is that kind's state */
    const gr_tcnt *cnt; /* counter components, sorted by node */
    uint8_t ncnt;
    uint64_t hlc, origin, expire_ms;
    uint64_t hash; /* walk: the entry's digest hash (ignored by merge) */
} gr_trent;

#define GR_TDIGEST_BUCKETS 256 /* digest buckets: the top 8 bits of a key's hash */

/* Merge a replica's entry into t (a replicated table): last writer wins by
 * (epoch, HLC, origin), counters of one epoch merge component-wise by max,
 * an expired entry is a tombstone at its version. Idempotent, commutative,
 * associative. Logged on disk tables. 1: changed, 0: not, or an error
 * (GR_EBADTERM, -ENOMEM, the log's -errno). Any thread. */
int gr_table_merge(gr_table *t, const gr_trent *e);
/* The table's digest: per bucket, the XOR of its entries' hashes (tombstones
 * included), kept up to date by every write. */
void gr_table_digest(gr_table *t, uint64_t ret_dig[GR_TDIGEST_BUCKETS]);
/* Call fn for every stored entry (tombstones included) whose key's bucket is
 * set in mask (32 bytes, bit b of byte b/8; NULL: all), one shard's read lock
 * at a time; e->hash is set. fn returns nonzero to stop (returned). fn runs
 * under that read lock: it copies what it needs and writes to no table. */
int gr_table_walk(gr_table *t, const uint8_t *mask, int (*fn)(void *ud, const gr_trent *e),
                  void *ud);
/* The bucket of a canonical key. */
unsigned gr_tkey_bucket(const void *key, size_t klen);
/* The engine's replication state (created with it). */
gr_trepl *gr_tables_repl(gr_tables *ts);
/* The engine's current HLC / its node id / its wall clock (ms). */
uint64_t gr_tables_hlc(gr_tables *ts);
uint64_t gr_tables_now_ms(gr_tables *ts);
uint64_t gr_tables_node_id(gr_tables *ts);
/* Create a replicated table as a replica did (opts->created given): 0,
 * GR_ETABLEEXISTS, ... as gr_tables_create, without telling the replicas. */
int gr_tables_create_replica(gr_tables *ts, const char *name, const gr_table_opts *opts);
/* Drop as a replica did: without telling the replicas. */
int gr_tables_drop_replica(gr_tables *ts, const char *name);
/* The name of an open table. */
const char *gr_table_name(const gr_table *t);

/* ---- maintenance ----------------------------------------------------------------------- */

/* Remove up to `budget` expired entries, walking the shards (starting where
 * the last call stopped) while holding a shard's write lock for at most 1,024
 * entries at a time; a table without any expiring entry returns 0 at once.
 * Expired entries are not logged (their expiry is). Returns the number
 * removed. Any thread; the maintenance thread calls it every period. */
uint64_t gr_table_expire(gr_table *t, uint64_t budget);
/* Disk tables: write a snapshot now (temporary file, fsync, rename, fsync dir)
 * and delete the log segments it covers. Blocks for the I/O; not for
 * schedulers. 0, -errno (the old snapshot and log stay valid), or 0 for a
 * memory table. */
int gr_table_snapshot(gr_table *t);
/* Disk tables: write and fsync buffered log records now (interval/never). */
int gr_table_sync(gr_table *t);

#endif
