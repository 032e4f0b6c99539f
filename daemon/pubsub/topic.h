/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic.h - the subscription index over topic patterns.
 *
 * The topic and pattern grammar (gr_topic_check, gr_topic_match, the limits)
 * is the wire's, in proto/topic.h, shared with the CLI.
 *
 * The index (gr_tidx) is a token trie: one node per distinct pattern prefix,
 * children by literal token (a hash per node), one `*` child, and two item
 * lists per node (patterns that end there, patterns whose next token is `>`).
 * A match walks only the nodes whose prefix matches the topic: at most two
 * branches per token, never a scan of all subscriptions.
 *
 * Nothing here allocates per match or locks: the owner (subs.c) guards an
 * index with its lock. Everything works on (pointer, length) strings, never
 * NUL-terminated ones (msgpack strings are not).
 */
#ifndef GR_PUBSUB_TOPIC_H
#define GR_PUBSUB_TOPIC_H

#include "proto/topic.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- the index ------------------------------------------------------------------- */

typedef struct gr_tidx gr_tidx;

/* An entry of the index, embedded in the caller's struct (a subscription).
 * Owned by the caller; linked while added. */
typedef struct gr_tidx_item {
    struct gr_tidx_item *prev, *next; /* list of its node */
    void *node;                       /* trie node it hangs on; NULL when not added */
    bool gt;                          /* on the node's `>` list */
} gr_tidx_item;

/* New empty index. 0 or -ENOMEM. */
int gr_tidx_new(gr_tidx **ret_idx);

/* Free the index (items stay with their owners, unlinked in spirit: remove
 * them first). NULL-safe; returns NULL. */
gr_tidx *gr_tidx_free(gr_tidx *idx);

/* Hang item under the (valid) pattern. 0, -ENOMEM (nothing changed) or
 * GR_EBADARG (not a valid pattern). The caller holds the index's lock. */
int gr_tidx_add(gr_tidx *idx, const char *pattern, size_t len, gr_tidx_item *item);

/* Unhang item (added before); empty trie nodes are freed. Caller's lock. */
void gr_tidx_del(gr_tidx *idx, gr_tidx_item *item);

/* Call fn(item, ud) for every item whose pattern matches the (valid) topic,
 * each once; fn returns false to stop early. Returns the number of calls, or
 * GR_EBADARG for an invalid topic. Caller holds the lock (shared is enough). */
int gr_tidx_match(const gr_tidx *idx, const char *topic, size_t len,
                  bool (*fn)(gr_tidx_item *item, void *ud), void *ud);

/* Trie nodes alive (root included): what an index costs, for tests. */
size_t gr_tidx_nodes(const gr_tidx *idx);

#endif
