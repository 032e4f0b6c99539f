/* SPDX-License-Identifier: Apache-2.0 */
/*
 * idmap.c - open-addressing pid/ref map (see idmap.h). Linear probing, load at
 * most 3/4, backward-shift deletion.
 */
#include "runtime/idmap.h"

#include <errno.h>
#include <stdlib.h>

static uint32_t slot_of(girder_pid k, uint32_t mask)
{
    uint64_t h =
        (k.id ^ ((uint64_t)k.node << 40) ^ ((uint64_t)k.creation << 20)) * 0x9E3779B97F4A7C15ull;

    return (uint32_t)(h >> 32) & mask;
}

static bool key_eq(girder_pid a, girder_pid b)
{
    return girder_pid_eq(a, b);
}

static int grow(gr_idmap *m)
{
    uint32_t n = m->slots ? (m->mask + 1) * 2 : 4;
    gr_idmap_slot *ns = calloc(n, sizeof(*ns));

    if (ns == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; m->slots && i <= m->mask; i++) {
        if (m->slots[i].key.id != 0) {
            uint32_t j = slot_of(m->slots[i].key, n - 1);

            while (ns[j].key.id != 0) {
                j = (j + 1) & (n - 1);
            }
            ns[j] = m->slots[i];
        }
    }
    free(m->slots);
    m->slots = ns;
    m->mask = n - 1;
    return 0;
}

static gr_idmap_slot *find(const gr_idmap *m, girder_pid key)
{
    uint32_t i;

    if (m->slots == NULL) {
        return NULL;
    }
    i = slot_of(key, m->mask);
    while (m->slots[i].key.id != 0) {
        if (key_eq(m->slots[i].key, key)) {
            return &m->slots[i];
        }
        i = (i + 1) & m->mask;
    }
    return NULL;
}

int gr_idmap_put(gr_idmap *m, girder_pid key, girder_pid val)
{
    gr_idmap_slot *s = find(m, key);
    uint32_t i;

    if (s != NULL) {
        s->val = val;
        return 0;
    }
    if (m->slots == NULL || (m->count + 1) * 4 > (m->mask + 1) * 3) {
        int r = grow(m);

        if (r < 0) {
            return r;
        }
    }
    i = slot_of(key, m->mask);
    while (m->slots[i].key.id != 0) {
        i = (i + 1) & m->mask;
    }
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->count++;
    return 1;
}

bool gr_idmap_get(const gr_idmap *m, girder_pid key, girder_pid *ret_val)
{
    gr_idmap_slot *s = find(m, key);

    if (s == NULL) {
        return false;
    }
    if (ret_val) {
        *ret_val = s->val;
    }
    return true;
}

bool gr_idmap_del(gr_idmap *m, girder_pid key, girder_pid *ret_val)
{
    gr_idmap_slot *s = find(m, key);
    uint32_t i, j;

    if (s == NULL) {
        return false;
    }
    if (ret_val) {
        *ret_val = s->val;
    }
    i = (uint32_t)(s - m->slots);
    m->count--;
    j = i;
    for (;;) {
        uint32_t home;

        j = (j + 1) & m->mask;
        if (m->slots[j].key.id == 0) {
            break;
        }
        home = slot_of(m->slots[j].key, m->mask);
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key.id = 0;
    if (m->count == 0) {
        gr_idmap_clear(m);
    }
    return true;
}

void gr_idmap_clear(gr_idmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

size_t gr_idmap_bytes(const gr_idmap *m)
{
    return m->slots ? (m->mask + 1) * sizeof(gr_idmap_slot) : 0;
}
