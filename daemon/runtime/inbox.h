/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.h - a scheduler's lock-free multi-producer, single-consumer signal inbox.
 *
 * Producers (any thread) push with one compare-and-swap; the owning scheduler
 * takes everything at once with one exchange and gets it back in push order.
 * Push order is a total order (the CAS linearises pushes), so two signals from
 * one sender thread are always taken in the order they were pushed: this is
 * what keeps per-pair message ordering across schedulers.
 */
#ifndef GR_INBOX_H
#define GR_INBOX_H

#include <stdatomic.h>
#include <stdbool.h>

struct gr_sig;

typedef struct gr_inbox {
    _Atomic(struct gr_sig *) top; /* most recently pushed signal, or NULL */
} gr_inbox;

void gr_inbox_init(gr_inbox *q);

/* Push s (any thread). Returns true if the inbox was empty before. */
bool gr_inbox_push(gr_inbox *q, struct gr_sig *s);

/* Take all pending signals, oldest first, as a NULL-terminated list linked through
 * sig->next (owner thread only). NULL if empty. */
struct gr_sig *gr_inbox_take(gr_inbox *q);

/* Cheap emptiness check (any thread; a hint, exact only for the owner). */
bool gr_inbox_empty(gr_inbox *q);

#endif
