/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test_tables.h - the table engine half of the tests' support library
 * (girder_testsupport, gr_test_tables.c), for the replication tests
 * (daemon/tables/repl_test.c, crdt_test.c): N engines in one process with the
 * replicated table "r" on each, deep copies of a table's entries, merging
 * one replica into another as anti-entropy ends, and a wire that carries the
 * frames of tables/repl.c between the engines as the dist protocol would. A
 * test that includes it links the tables library (tables_dep) as well. Test
 * thread only.
 */
#ifndef GR_TEST_TABLES_H
#define GR_TEST_TABLES_H

#include "testing/gr_test.h"

#include "tables/repl.h"
#include "tables/tables.h"

#define GR_TEST_REPLICAS_MAX 3

/* Engines e[0..n) with node ids 1..n on the clock now_ms (maintenance off,
 * tombstones kept 60 s), each holding the replicated table "r" (created at
 * 1000) open in t[i]. */
void gr_test_replicas_open(gr_tables **e, gr_table **t, int n, uint64_t (*now_ms)(void *ud));

/* Close t[i] and free e[i]; both become NULL. */
void gr_test_replicas_close(gr_tables **e, gr_table **t, int n);

/* A deep copy of a replicated entry: e's pointers point into kv and cnt. */
typedef struct gr_test_tcopy {
    gr_trent e;
    gr_tcnt cnt[255];
    uint8_t *kv;
} gr_test_tcopy;

typedef struct gr_test_tcopies {
    gr_test_tcopy *v;
    size_t n, cap;
} gr_test_tcopies;

/* Append a deep copy of e to cs. */
void gr_test_tcopies_add(gr_test_tcopies *cs, const gr_trent *e);

/* Every entry of from, copied, sorted by key bytes (free with
 * gr_test_tcopies_free). Not in walk order: each `set` table's store hash has
 * its own secret key, so two replicas walk their entries in different orders. */
gr_test_tcopies gr_test_tcopies_walk(gr_table *from);

void gr_test_tcopies_free(gr_test_tcopies *cs);

/* Merge every entry of from into to (what anti-entropy ends with). The walk
 * copies first: its callback holds a shard lock of from, and merging there
 * would take to's locks under it, an order repl.c never uses either. */
void gr_test_replicas_sync_into(gr_table *to, gr_table *from);

/* sync_into for every ordered pair of t[0..n). */
void gr_test_replicas_sync_all(gr_table **t, int n);

/* A frame on its way: from engine `from` to engine `to`. */
typedef struct gr_test_wire_frame {
    int to, from;
    uint8_t *frame; /* packed Girder.Frame */
    size_t len;
    struct gr_test_wire_frame *next;
} gr_test_wire_frame;

/* The wire between engines e[] named names[] ("n1@h", ...). Frames that
 * gr_test_wire_emit queues go from `from` to `to` (set them before a
 * gr_trepl_sync / gr_trepl_drain); pump delivers them and their answers. */
typedef struct gr_test_wire {
    gr_tables **e;
    const char *const *names;
    int from, to;
    uint64_t sent[4]; /* frames delivered by kind: 0 writes, 1 digest, 2 keys */
    gr_test_wire_frame *q, **tail;
} gr_test_wire;

void gr_test_wire_init(gr_test_wire *w, gr_tables **e, const char *const *names);

/* gr_trepl_emit_fn: queue a copy of the frame; ctx is the gr_test_wire. */
int gr_test_wire_emit(void *ctx, const uint8_t *frame, size_t len);

/* Deliver queued frames until none is left; answers go back to the sender.
 * Returns the frames delivered. */
unsigned gr_test_wire_pump(gr_test_wire *w);

/* Engine i offers its digest to j (what member up and the period do), and
 * the exchange runs to its end. */
void gr_test_wire_offer(gr_test_wire *w, int i, int j);

#endif
