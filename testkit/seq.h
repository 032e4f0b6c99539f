/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seq.h - the `seq` behaviour: a spawnable test process that sends numbered
 * messages in bursts and checks that the numbered messages it receives arrive
 * in order. The cluster tests use it to check per-pair ordering across a node
 * link (docs/testing.md, j_order). Part of the test kit: registered
 * only by girderd-testkit (testkit/testkit.h), never started by a supervisor.
 *
 * Spawn argument: ignored (any term, or none).
 *
 * Messages it sends and checks: ["seq", I] with I = 1, 2, 3, ...
 *
 * Requests, sent with girder_call (["$call", From, Ref, Request]):
 *   ["burst", Dest, N]  send ["seq", 1] .. ["seq", N] to Dest, in order, from
 *                       this process; Dest is a pid (any node) or [Name, Node]
 *                       (a name registered on Node, any node). N is
 *                       1..GR_SEQ_BURST_MAX. Answered once every message is
 *                       handed to the runtime: {"sent": N, "ms": Float}; or
 *                       ["error", ReasonId] if a send failed (e.g. "noname"
 *                       for an unregistered local name), or ["error", "busy"]
 *                       while another burst of this process is running, or
 *                       ["error", "badarg"]. The burst sends GR_SEQ_BATCH
 *                       messages per turn and continues in later turns, so the
 *                       process keeps answering other requests meanwhile.
 *   ["check"]           -> {"received": R, "last": L, "in_order": Bool,
 *                           "first_gap": nil | {"expected": E, "got": G}}
 *                       about every ["seq", I] received so far.
 *   ["reset"]           -> "ok": forget what was received.
 *   anything else       -> ["error", "badarg"]
 * Other messages are ignored.
 *
 * A burst much faster than the link: the sender is not paced, so a burst whose
 * frames pile up beyond 64 MiB unsent closes the link as overloaded
 * (docs/cluster.md). GR_SEQ_BURST_MAX keeps a burst of these small messages
 * below that.
 *
 * Owning thread: the process's scheduler, like every behaviour. The checker
 * (gr_seq_check_*) is plain data, owned by its caller.
 */
#ifndef GR_SEQ_H
#define GR_SEQ_H

#include "girder/girder.h"

#include <stdbool.h>
#include <stdint.h>

#define GR_SEQ_NAME "seq"        /* behaviour name */
#define GR_SEQ_BURST_MAX 500000u /* most messages per burst */
#define GR_SEQ_BATCH 1024u       /* messages sent per process turn */

/* The order checker: the ["seq", I] numbers seen so far. In order means each
 * I is the previous one plus 1, starting from 1. */
typedef struct gr_seq_check {
    uint64_t received;     /* numbers noted */
    uint64_t last;         /* the last number noted; 0 before the first */
    bool in_order;         /* no gap yet */
    uint64_t gap_expected; /* first gap: the number expected ... */
    uint64_t gap_got;      /* ... and the one that came; both 0 while in order */
} gr_seq_check;

/* Start over: nothing received, in order. */
void gr_seq_check_init(gr_seq_check *c);

/* Note number i (the next message received). */
void gr_seq_check_note(gr_seq_check *c, uint64_t i);

/* The behaviour "seq". Register it with girder_behaviour_register. */
extern const girder_behaviour gr_seq_behaviour;

#endif
