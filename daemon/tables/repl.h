/* SPDX-License-Identifier: Apache-2.0 */
/*
 * repl.h - replication of `replicated` tables (docs/tables.md "Replication"):
 * the queue of local writes waiting to be sent to the other members, table
 * creates and drops (with table tombstones), the anti-entropy exchange
 * (digests, key lists, shipping what differs) and the status `table info`
 * shows. It builds and reads the frames (girder.proto ReplWrites, ReplDigest,
 * ReplKeys); the dist protocol daemon/dist/repl.c moves them over the links.
 *
 * Threads: gr_trepl_on_write / gr_trepl_on_table run on any thread (writers,
 * under a shard lock: they only copy into the queue and poke an eventfd);
 * gr_trepl_status on any thread; the rest (the dist side) on one thread, the
 * dist thread.
 */
#ifndef GR_TABLES_REPL_H
#define GR_TABLES_REPL_H

#include "tables/tables.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The engine's (gr_tables_new / gr_tables_free). NULL on -ENOMEM. */
gr_trepl *gr_trepl_new(gr_tables *ts);
void gr_trepl_free(gr_trepl *r);

/* A local write to replicated table `table` (queued when a peer is up). */
void gr_trepl_on_write(gr_trepl *r, const char *table, const gr_trent *e);
/* A replicated table was created (dropped false, hlc = created) or dropped. */
void gr_trepl_on_table(gr_trepl *r, const char *name, const gr_table_opts *o, bool dropped,
                       uint64_t hlc);

/* ---- the dist side (one thread) -------------------------------------------------------- */

/* Sends one packed Girder.Frame (0, or an error: the rest is dropped). */
typedef int (*gr_trepl_emit_fn)(void *ctx, const uint8_t *frame, size_t len);

/* An eventfd readable when writes are queued (read it, then drain). */
int gr_trepl_wake_fd(gr_trepl *r);
/* Member `peer` is up / down (writes are queued only while one is up). */
void gr_trepl_peer_up(gr_trepl *r, const char *peer);
void gr_trepl_peer_down(gr_trepl *r, const char *peer);
/* The queued writes as ReplWrites frames, for every member up. */
void gr_trepl_drain(gr_trepl *r, gr_trepl_emit_fn emit, void *ctx);
/* A ReplDigest for peer: hello on member up (always answered), else a
 * periodic round (which a peer busy receiving our writes may skip). */
void gr_trepl_sync(gr_trepl *r, const char *peer, bool hello, gr_trepl_emit_fn emit, void *ctx);
/* A replication frame (a Girder__Frame, decoded) from peer; answers go to
 * emit (to that peer). 0 or an error (the link is closed). */
int gr_trepl_recv(gr_trepl *r, const char *peer, const void *frame, gr_trepl_emit_fn emit,
                  void *ctx);

/* ---- status (any thread) ---------------------------------------------------------------- */

typedef struct gr_trepl_peer {
    char node[256];        /* member name */
    bool up;               /* link up now */
    uint64_t last_sync_ms; /* wall ms of its last answer to our digest (0: never) */
    bool equal;            /* that answer showed the same table */
} gr_trepl_peer;

/* Writes queued, not yet sent (all tables). */
uint64_t gr_trepl_pending(gr_trepl *r);
/* Up to max peers' state for table `table`. Returns the number of peers known. */
size_t gr_trepl_peers(gr_trepl *r, const char *table, gr_trepl_peer *out, size_t max);
/* Wall ms (the engine's clock) of the oldest of the last equal answers of
 * every member known to our digest of `table` (0: none known, or one never
 * equal). */
uint64_t gr_trepl_seen_ms(gr_trepl *r, const char *table);
/* The tombstone cut-off of `table`, wall ms of HLC time: every member held
 * every tombstone older than it (the largest of our own - every member known
 * answered a digest with an equal table after seen_ms, minus a 5 s clock
 * allowance - and the ones members advertised). The sweep purges them. */
uint64_t gr_trepl_gc_ms(gr_trepl *r, const char *table);
/* Writes not queued because the queue held its bound (64 MiB by default):
 * they reach the members by anti-entropy (a digest goes with the next drain). */
uint64_t gr_trepl_overflows(gr_trepl *r);
/* Change the queue's bound, bytes (tests). */
void gr_trepl_set_queue_max(gr_trepl *r, size_t bytes);
/* Counters: entries sent, entries received, entries changed by a merge. */
void gr_trepl_counters(gr_trepl *r, uint64_t *sent, uint64_t *received, uint64_t *merged);

#endif
