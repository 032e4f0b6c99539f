/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_test.c - Check tests for the set store (store_set.c) against a model:
 * random inserts, replaces and removes with chosen hashes (colliding runs,
 * equal hashes, runs off the end of the slot array), then lookups, the
 * (hash, key) walk order and cursor seeks.
 */
#include "tables/key.h"
#include "tables/tables_int.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define NK 3000

typedef struct model {
    gr_tent *e[NK]; /* key i's entry, or NULL */
    uint64_t h[NK]; /* key i's hash */
} model;

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Key i: a fixstr "k%05d" (canonical). */
static size_t key_of(int i, uint8_t *b)
{
    b[0] = 0xa6;
    b[1] = 'k';
    for (int d = 0; d < 5; d++) {
        b[6 - d] = (uint8_t)('0' + (i / (d == 0   ? 1
                                         : d == 1 ? 10
                                         : d == 2 ? 100
                                         : d == 3 ? 1000
                                                  : 10000)) %
                                       10);
    }
    return 7;
}

/* The test's chosen hash of an entry: its value (entries store no hash). */
static uint64_t th(const gr_tent *e)
{
    uint64_t h;

    memcpy(&h, gr_tent_val((gr_tent *)e), sizeof(h));
    return h;
}

static gr_tent *mk(int i, uint64_t hash)
{
    gr_tent *e = calloc(1, sizeof(gr_tent) + 7 + sizeof(hash));

    ck_assert_ptr_nonnull(e);
    e->klen = (uint16_t)key_of(i, gr_tent_key(e));
    e->vlen = sizeof(hash);
    memcpy(gr_tent_val(e), &hash, sizeof(hash));
    return e;
}

static int cmp_hk(const gr_tent *a, const gr_tent *b)
{
    if (th(a) != th(b)) {
        return th(a) < th(b) ? -1 : 1;
    }
    return gr_tkey_cmp(gr_tent_key((gr_tent *)a), a->klen, gr_tent_key((gr_tent *)b), b->klen);
}

static int qcmp(const void *a, const void *b)
{
    return cmp_hk(*(gr_tent *const *)a, *(gr_tent *const *)b);
}

static void check(gr_tshard *s, uint32_t sb, model *m)
{
    gr_tent *v[NK], *e;
    size_t n = 0, w = 0;

    for (int i = 0; i < NK; i++) {
        uint8_t k[8];
        size_t kl = key_of(i, k);

        ck_assert_ptr_eq(gr_sset_find(s, sb, m->h[i], k, kl), m->e[i]);
        if (m->e[i]) {
            v[n++] = m->e[i];
        }
    }
    ck_assert_uint_eq(s->count, n);
    qsort(v, n, sizeof(v[0]), qcmp);
    for (e = gr_sset_after(s, sb, 0, 0, NULL, 0); e; e = gr_sset_next(s, sb, th(e), e)) {
        ck_assert_uint_lt(w, n);
        ck_assert_ptr_eq(e, v[w]);
        w++;
    }
    ck_assert_uint_eq(w, n);
    /* a cursor at each entry finds its successor */
    for (size_t i = 0; i < n; i += 7) {
        e = gr_sset_after(s, sb, 1, th(v[i]), gr_tent_key(v[i]), v[i]->klen);
        ck_assert_ptr_eq(e, i + 1 < n ? v[i + 1] : NULL);
    }
}

static void run(uint32_t sb, uint64_t (*hash_of)(int i, uint64_t *x), uint64_t seed)
{
    static model m;
    static gr_tent *order[NK / 2];
    gr_tshard s = {0};
    uint64_t x = seed;

    memset(&m, 0, sizeof(m));
    ck_assert_int_eq(gr_sset_init(&s, sb), 0);
    for (int i = 0; i < NK; i++) {
        m.h[i] = hash_of(i, &x);
    }
    /* first half of the keys inserted in (hash, key) order, as a walk
     * delivers them (the insert hint's case), then random operations */
    for (int i = 0; i < NK / 2; i++) {
        order[i] = mk(i, m.h[i]);
    }
    qsort(order, NK / 2, sizeof(order[0]), qcmp);
    for (int i = 0; i < NK / 2; i++) {
        int k = 0;
        uint8_t kb[8];

        while (key_of(k, kb) != order[i]->klen || memcmp(kb, gr_tent_key(order[i]), 7) != 0) {
            k++; /* the key's index */
        }
        ck_assert_int_eq(gr_sset_reserve(&s, sb), 0);
        gr_sset_put(&s, sb, th(order[i]), order[i], NULL);
        m.e[k] = order[i];
    }
    check(&s, sb, &m);
    for (int round = 0; round < 6; round++) {
        for (int op = 0; op < 4 * NK; op++) {
            int i = (int)(rng(&x) % NK), kind = (int)(rng(&x) % (round & 1 ? 2 : 4));

            if (kind == 0 && m.e[i]) { /* remove */
                gr_sset_remove(&s, sb, m.h[i], m.e[i]);
                free(m.e[i]);
                m.e[i] = NULL;
            } else if (!m.e[i]) { /* insert */
                ck_assert_int_eq(gr_sset_reserve(&s, sb), 0);
                m.e[i] = mk(i, m.h[i]);
                gr_sset_put(&s, sb, m.h[i], m.e[i], NULL);
            } else { /* replace */
                gr_tent *e = mk(i, m.h[i]);

                gr_sset_put(&s, sb, m.h[i], e, m.e[i]);
                free(m.e[i]);
                m.e[i] = e;
            }
        }
        check(&s, sb, &m);
        ck_assert_ptr_nonnull(gr_sset_sample(&s, rng(&x)) ? (void *)1 : s.count ? NULL : (void *)1);
    }
    gr_sset_free(&s);
}

static uint64_t h_real(int i, uint64_t *x)
{
    uint8_t k[8];
    size_t kl = key_of(i, k);

    (void)x;
    return (gr_tkey_hash(k, kl) >> 4) | (3ull << 60); /* in shard 3 of 16 */
}

/* Hashes of shard 5 of 16, bunched in 40 values: long runs and equal hashes. */
static uint64_t h_bunched(int i, uint64_t *x)
{
    (void)i;
    return (5ull << 60) | ((rng(x) % 40) << 50) | 0x123;
}

/* Every hash at the very top of the range: runs off the end of the array. */
static uint64_t h_top(int i, uint64_t *x)
{
    (void)i;
    return ~0ull - (rng(x) % 64);
}

START_TEST(test_set_store_real_hashes)
{
    run(4, h_real, 0x9e3779b97f4a7c15ull);
    run(0, h_real, 12345);
}
END_TEST

START_TEST(test_set_store_bunched_hashes)
{
    run(4, h_bunched, 777);
}
END_TEST

START_TEST(test_set_store_top_hashes)
{
    run(0, h_top, 4242);
    run(4, h_top, 99);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("tables_store");
    TCase *tc = tcase_create("set");
    SRunner *sr;
    int nf;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_set_store_real_hashes);
    tcase_add_test(tc, test_set_store_bunched_hashes);
    tcase_add_test(tc, test_set_store_top_hashes);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
