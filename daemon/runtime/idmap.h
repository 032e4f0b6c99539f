/* SPDX-License-Identifier: Apache-2.0 */
/*
 * idmap.h - a small hash map keyed by a pid or ref, holding a pid.
 *
 * Used for a process's links (key = linked pid), the monitors it holds
 * (key = ref, value = target) and the monitors on it (key = ref, value =
 * watcher). Most processes have none or one, so the map starts at 4 slots and
 * allocates nothing until first use; a supervisor with 100,000 linked children
 * still finds the exiting child in O(1). Owner thread only.
 */
#ifndef GR_IDMAP_H
#define GR_IDMAP_H

#include "girder/girder.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct gr_idmap_slot {
    girder_pid key; /* id 0 = empty */
    girder_pid val; /* associated pid */
} gr_idmap_slot;

typedef struct gr_idmap {
    gr_idmap_slot *slots; /* 2^k slots or NULL */
    uint32_t mask;        /* slots - 1 */
    uint32_t count;       /* used */
} gr_idmap;

/* Insert or replace. Returns 1 if inserted, 0 if replaced, -ENOMEM. */
int gr_idmap_put(gr_idmap *m, girder_pid key, girder_pid val);
/* Lookup: true and *ret_val (may be NULL) if present. */
bool gr_idmap_get(const gr_idmap *m, girder_pid key, girder_pid *ret_val);
/* Remove: true and *ret_val (may be NULL) if it was present. */
bool gr_idmap_del(gr_idmap *m, girder_pid key, girder_pid *ret_val);
/* Free storage. */
void gr_idmap_clear(gr_idmap *m);
/* Bytes allocated. */
size_t gr_idmap_bytes(const gr_idmap *m);

/* Keys/refs as pids: girder_ref has the same layout. */
static inline girder_pid gr_ref_as_pid(girder_ref r)
{
    return (girder_pid){r.node, r.creation, r.id};
}

static inline girder_ref gr_pid_as_ref(girder_pid p)
{
    return (girder_ref){p.node, p.creation, p.id};
}

#define GR_IDMAP_EACH(m, slotvar)                                                                  \
    for (gr_idmap_slot *slotvar = (m)->slots; (m)->slots && slotvar <= (m)->slots + (m)->mask;     \
         slotvar++)                                                                                \
        if (slotvar->key.id != 0)

#endif
