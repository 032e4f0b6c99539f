/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal.h - a table's write-ahead log: segment files of checksummed records.
 *
 * Record framing (also used by snapshots), little-endian:
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     payload length n, 1..GR_WAL_REC_MAX
 *   4       4     CRC32C of the payload
 *   8       n     payload (an entry record, entry.h)
 *
 * Segments are files DIR/wal.SSSSSSSSSSSSSSSS (16 hex digits, the segment
 * number); a snapshot names the first segment that follows it.
 *
 * Threads: gr_wal_append is called with the caller's table lock held (so the
 * log order of one key's records is the order they were applied); everything
 * else from any thread without table locks. The wal has its own mutex.
 */
#ifndef GR_TABLES_WAL_H
#define GR_TABLES_WAL_H

#include "tables/tables.h"

#include <stddef.h>
#include <stdint.h>

#define GR_WAL_HDR 8
#define GR_WAL_REC_MAX (64u << 20)

typedef struct gr_wal gr_wal;
typedef struct gr_wal_batch gr_wal_batch; /* a group commit ticket; opaque */

/* CRC32C (Castagnoli) of len bytes, continuing from crc (0 to start). */
uint32_t gr_crc32c(uint32_t crc, const void *buf, size_t len);

/* Open segment `seg` in dir for appending (created if absent; kept from its
 * current size otherwise). Starts the log's flusher thread (interval/never:
 * the periodic flush; always: flushes for gr_wal_notify waiters).
 * 0 or -errno. */
int gr_wal_open(const char *dir, uint64_t seg, gr_table_fsync policy, uint32_t interval_ms,
                gr_wal **ret_wal);
/* Flush (and fsync unless NEVER) what is buffered, stop the flusher, close.
 * NULL-safe; returns NULL. */
gr_wal *gr_wal_close(gr_wal *w);

/* Buffer one record (payload of len bytes). ALWAYS: *ret_batch gets a ticket
 * to pass to gr_wal_wait exactly once; other policies: *ret_batch = NULL.
 * 0, GR_ETOOBIG, -ENOMEM, or the sticky error of a failed background flush. */
int gr_wal_append(gr_wal *w, const void *payload, size_t len, gr_wal_batch **ret_batch);
/* Wait until the ticket's batch is on disk (one fsync shared by every writer
 * of the batch: group commit). Consumes the ticket. 0 or the write/fsync
 * -errno: then none of that batch's records is in the file (it is truncated
 * back to the last complete batch). NULL ticket: 0. */
int gr_wal_wait(gr_wal *w, gr_wal_batch *b);
/* Called once with a ticket's result: 0, or the write/fsync -errno (the
 * batch's records are not in the file, as for gr_wal_wait). */
typedef void (*gr_wal_notify_fn)(void *arg, int err);
/* Asynchronous gr_wal_wait: fn(arg, result) is called exactly once, at once
 * on this thread if the batch is already done, else from whichever thread
 * completes the batch's fsync (the log's flusher thread, woken by this call,
 * or a blocking waiter that leads the flush), without the log's mutex held.
 * Batches complete in append order (one flush at a time takes the open
 * batch), but a failed batch does not fail the next: a caller with records in
 * several batches needs the result of each. Consumes the ticket, except on
 * -ENOMEM (fn not called; the caller still owns the ticket). NULL ticket:
 * fn(arg, 0) at once. 0 or -ENOMEM. */
int gr_wal_notify(gr_wal *w, gr_wal_batch *b, gr_wal_notify_fn fn, void *arg);
/* Give a ticket back without waiting for it (its records are still written).
 * NULL-safe. */
void gr_wal_drop(gr_wal *w, gr_wal_batch *b);
/* Write and fsync everything buffered now. 0 or -errno. */
int gr_wal_sync(gr_wal *w);
/* Sync, then continue in a new segment seg+1; *ret_seg gets its number.
 * 0 or -errno (the old segment stays current). */
int gr_wal_rotate(gr_wal *w, uint64_t *ret_seg);
/* Bytes written to the current segment; counters. */
uint64_t gr_wal_bytes(gr_wal *w);
void gr_wal_counters(gr_wal *w, uint64_t *ret_fsyncs, uint64_t *ret_records);

/* Read segment file `path`, calling fn for each valid record payload. A torn
 * tail (an incomplete record, or a bad checksum on the file's last record, or
 * a bad record followed only by zero bytes) is truncated away when `truncate`
 * is set (logged as a warning). Any other bad record is corruption: returns
 * GR_ECORRUPT and sets *ret_bad_off to its offset (logged as an error naming
 * the file and offset). fn's negative return stops the read and is returned.
 * 0 or errors. */
int gr_wal_read(const char *path, bool truncate, int (*fn)(void *ud, const uint8_t *p, size_t n),
                void *ud, uint64_t *ret_bad_off);

#endif
