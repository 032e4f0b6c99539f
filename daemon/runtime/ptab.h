/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ptab.h - a scheduler's pid -> process table.
 *
 * Open addressing with linear probing and backward-shift deletion, keyed by the
 * 64-bit pid id (unique per node incarnation, never reused), load factor at most
 * 1/2. Owned by one scheduler thread: no locking.
 */
#ifndef GR_PTAB_H
#define GR_PTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct gr_ptab_slot {
    uint64_t id; /* key; 0 = empty */
    void *p;     /* the process */
} gr_ptab_slot;

typedef struct gr_ptab {
    gr_ptab_slot *slots; /* 2^k slots, or NULL when empty */
    size_t mask;         /* slots - 1 */
    size_t count;        /* used slots */
} gr_ptab;

void gr_ptab_init(gr_ptab *t);
void gr_ptab_destroy(gr_ptab *t);
/* Insert id -> p (id != 0, not present). 0 or -ENOMEM. */
int gr_ptab_put(gr_ptab *t, uint64_t id, void *p);
/* Lookup; NULL if absent. */
void *gr_ptab_get(const gr_ptab *t, uint64_t id);
/* Remove id if present; returns the value or NULL. */
void *gr_ptab_del(gr_ptab *t, uint64_t id);
/* Iterate: call fn(p, arg) for every value. fn must not modify the table. */
void gr_ptab_each(const gr_ptab *t, void (*fn)(void *p, void *arg), void *arg);
/* The same, with each entry's id: a caller that skips entries by id reads
 * only the table, never the values (a sequential scan, no cache miss each). */
void gr_ptab_each_id(const gr_ptab *t, void (*fn)(uint64_t id, void *p, void *arg), void *arg);

#endif
