/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.c - the lock-free MPSC inbox (see inbox.h).
 *
 * Design notes
 * - A Treiber stack: push is a CAS loop on `top`; the consumer detaches the whole
 *   stack with one atomic exchange and reverses it. There is no ABA problem
 *   because nodes are never popped one at a time: once detached, a node belongs
 *   to the consumer and is not reachable from `top` any more.
 * - Memory order: push publishes the node with release, take acquires, so the
 *   consumer sees every write the producer made to the signal before pushing.
 */
#include "runtime/inbox.h"

#include "runtime/rt_int.h"

void gr_inbox_init(gr_inbox *q)
{
    atomic_init(&q->top, NULL);
}

bool gr_inbox_push(gr_inbox *q, struct gr_sig *s)
{
    struct gr_sig *old = atomic_load_explicit(&q->top, memory_order_relaxed);

    do {
        s->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&q->top, &old, s, memory_order_release,
                                                    memory_order_relaxed));
    return old == NULL;
}

struct gr_sig *gr_inbox_take(gr_inbox *q)
{
    struct gr_sig *s = atomic_exchange_explicit(&q->top, NULL, memory_order_acquire);
    struct gr_sig *rev = NULL;

    while (s != NULL) {
        struct gr_sig *next = s->next;

        s->next = rev;
        rev = s;
        s = next;
    }
    return rev;
}

bool gr_inbox_empty(gr_inbox *q)
{
    return atomic_load_explicit(&q->top, memory_order_acquire) == NULL;
}
