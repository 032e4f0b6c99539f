/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_ordered.c - the `ordered_set` store: a skiplist in msgpack key order.
 *
 * Design notes: one skiplist per table under the shard's rwlock (readers in
 * parallel, one writer). Levels are drawn with p = 1/4 from a per-shard xorshift
 * state advanced under the write lock, so no global random state exists. The
 * head node is an entry with GR_SKIP_MAX forward pointers and no key.
 */
#include "tables/key.h"
#include "tables/tables_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int gr_oset_init(gr_tshard *s)
{
    if (!(s->head =
              calloc(1, sizeof(gr_tent) + sizeof(gr_text) + GR_SKIP_MAX * sizeof(gr_tent *)))) {
        return -ENOMEM;
    }
    s->head->opt = GR_TE_EXT;
    gr_tent_ext(s->head)->level = GR_SKIP_MAX;
    s->level = 1;
    s->rng = 0x853c49e6748fea9bull ^ (uint64_t)(uintptr_t)s;
    return 0;
}

void gr_oset_free(gr_tshard *s)
{
    if (!s->head) {
        return;
    }
    for (gr_tent *e = gr_tent_fwd(s->head)[0], *n; e; e = n) {
        n = gr_tent_fwd(e)[0];
        free(e);
    }
    free(s->head);
    s->head = NULL;
}

uint8_t gr_oset_level(gr_tshard *s)
{
    uint64_t r = xorshift(&s->rng);
    uint8_t l = 1;

    while (l < GR_SKIP_MAX && (r & 3) == 0) {
        l++;
        r >>= 2;
    }
    return l;
}

static int cmp_e(gr_tent *e, const uint8_t *k, size_t klen)
{
    return gr_tkey_cmp(gr_tent_key(e), e->klen, k, klen);
}

/* Fill upd[] with the last node < k at each level; return the first >= k. */
static gr_tent *search(gr_tshard *s, const uint8_t *k, size_t klen, gr_tent **upd)
{
    gr_tent *x = s->head;

    for (int l = (int)s->level - 1; l >= 0; l--) {
        gr_tent *n;

        while ((n = gr_tent_fwd(x)[l]) && cmp_e(n, k, klen) < 0) {
            x = n;
        }
        if (upd) {
            upd[l] = x;
        }
    }
    return gr_tent_fwd(x)[0];
}

gr_tent *gr_oset_find(gr_tshard *s, const uint8_t *k, size_t klen)
{
    gr_tent *e = search(s, k, klen, NULL);

    return e && e->klen == klen && memcmp(gr_tent_key(e), k, klen) == 0 ? e : NULL;
}

static void unlink_e(gr_tshard *s, gr_tent *old, gr_tent **upd)
{
    for (int l = 0; l < gr_tent_level(old); l++) {
        if (gr_tent_fwd(upd[l])[l] == old) {
            gr_tent_fwd(upd[l])[l] = gr_tent_fwd(old)[l];
        }
    }
    while (s->level > 1 && !gr_tent_fwd(s->head)[s->level - 1]) {
        s->level--;
    }
}

void gr_oset_put(gr_tshard *s, gr_tent *e, gr_tent *old)
{
    gr_tent *upd[GR_SKIP_MAX];

    search(s, gr_tent_key(e), e->klen, upd);
    if (old && gr_tent_level(old) == gr_tent_level(e)) { /* same tower: splice e in old's place */
        for (int l = 0; l < gr_tent_level(e); l++) {
            gr_tent_fwd(e)[l] = gr_tent_fwd(old)[l];
            gr_tent_fwd(upd[l])[l] = e;
        }
        return;
    }
    if (old) {
        unlink_e(s, old, upd);
        s->count--;
        search(s, gr_tent_key(e), e->klen, upd);
    }
    if (gr_tent_level(e) > s->level) {
        for (uint32_t l = s->level; l < gr_tent_level(e); l++) {
            upd[l] = s->head;
        }
        s->level = gr_tent_level(e);
    }
    for (int l = 0; l < gr_tent_level(e); l++) {
        gr_tent_fwd(e)[l] = gr_tent_fwd(upd[l])[l];
        gr_tent_fwd(upd[l])[l] = e;
    }
    s->count++;
}

void gr_oset_remove(gr_tshard *s, gr_tent *old)
{
    gr_tent *upd[GR_SKIP_MAX];

    search(s, gr_tent_key(old), old->klen, upd);
    unlink_e(s, old, upd);
    s->count--;
}

gr_tent *gr_oset_seek(gr_tshard *s, const uint8_t *k, size_t klen, int strict)
{
    gr_tent *e;

    if (!k) {
        return gr_tent_fwd(s->head)[0];
    }
    e = search(s, k, klen, NULL);
    if (strict && e && cmp_e(e, k, klen) == 0) {
        e = gr_tent_fwd(e)[0];
    }
    return e;
}

gr_tent *gr_oset_sample(gr_tshard *s, uint64_t rnd)
{
    gr_tent *x = s->head;

    /* Descend, taking a few random steps per level: lands anywhere in the list
     * with a bias that is fine for eviction sampling. */
    for (int l = (int)s->level - 1; l >= 0; l--) {
        for (int i = (int)(rnd & 3); i > 0 && gr_tent_fwd(x)[l]; i--) {
            x = gr_tent_fwd(x)[l];
        }
        rnd >>= 2;
    }
    return x == s->head ? gr_tent_fwd(x)[0] : x;
}
