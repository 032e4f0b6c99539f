/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ptab.c - the per-scheduler pid table (see ptab.h).
 *
 * Design notes
 * - Growth doubles the table and reinserts everything in one go: O(n) once per
 *   doubling, amortised O(1) per insert. At 1M processes a grow moves 16 MiB and
 *   takes a few milliseconds of that scheduler's time; acceptable for a table
 *   that only grows when processes are spawned on this scheduler.
 * - Backward-shift deletion keeps probe sequences short without tombstones.
 */
#include "runtime/ptab.h"

#include <errno.h>
#include <stdlib.h>

#define PTAB_MIN 64

static size_t slot_of(uint64_t id, size_t mask)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

void gr_ptab_init(gr_ptab *t)
{
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
}

void gr_ptab_destroy(gr_ptab *t)
{
    free(t->slots);
    gr_ptab_init(t);
}

static int grow(gr_ptab *t)
{
    size_t n = t->slots ? (t->mask + 1) * 2 : PTAB_MIN;
    gr_ptab_slot *ns = calloc(n, sizeof(*ns));

    if (ns == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        if (t->slots[i].id != 0) {
            size_t j = slot_of(t->slots[i].id, n - 1);

            while (ns[j].id != 0) {
                j = (j + 1) & (n - 1);
            }
            ns[j] = t->slots[i];
        }
    }
    free(t->slots);
    t->slots = ns;
    t->mask = n - 1;
    return 0;
}

int gr_ptab_put(gr_ptab *t, uint64_t id, void *p)
{
    size_t i;

    if (t->slots == NULL || (t->count + 1) * 2 > t->mask + 1) {
        int r = grow(t);

        if (r < 0) {
            return r;
        }
    }
    i = slot_of(id, t->mask);
    while (t->slots[i].id != 0) {
        i = (i + 1) & t->mask;
    }
    t->slots[i].id = id;
    t->slots[i].p = p;
    t->count++;
    return 0;
}

void *gr_ptab_get(const gr_ptab *t, uint64_t id)
{
    size_t i;

    if (t->slots == NULL || id == 0) {
        return NULL;
    }
    i = slot_of(id, t->mask);
    while (t->slots[i].id != 0) {
        if (t->slots[i].id == id) {
            return t->slots[i].p;
        }
        i = (i + 1) & t->mask;
    }
    return NULL;
}

void *gr_ptab_del(gr_ptab *t, uint64_t id)
{
    size_t i, j;
    void *p;

    if (t->slots == NULL || id == 0) {
        return NULL;
    }
    i = slot_of(id, t->mask);
    while (t->slots[i].id != id) {
        if (t->slots[i].id == 0) {
            return NULL;
        }
        i = (i + 1) & t->mask;
    }
    p = t->slots[i].p;
    t->count--;
    /* Backward shift: move later entries of the cluster into the hole when their
     * home slot does not lie cyclically in (hole, j]. */
    j = i;
    for (;;) {
        size_t home;

        j = (j + 1) & t->mask;
        if (t->slots[j].id == 0) {
            break;
        }
        home = slot_of(t->slots[j].id, t->mask);
        if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id = 0;
    t->slots[i].p = NULL;
    return p;
}

void gr_ptab_each(const gr_ptab *t, void (*fn)(void *p, void *arg), void *arg)
{
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        if (t->slots[i].id != 0) {
            fn(t->slots[i].p, arg);
        }
    }
}

void gr_ptab_each_id(const gr_ptab *t, void (*fn)(uint64_t id, void *p, void *arg), void *arg)
{
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        if (t->slots[i].id != 0) {
            fn(t->slots[i].id, t->slots[i].p, arg);
        }
    }
}
