/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key_test.c - Check tests for canonical keys and msgpack order (key.c).
 */
#include "tables/key.h"
#include "tables/test_util.h"
#include "util/shash.h"

#include "proto/err.h"

#include <check.h>

static int cmp_terms(const term *a, const term *b)
{
    gr_tkey ka, kb;
    int c;

    ck_assert_int_eq(gr_tkey_make(&ka, a->b, a->n), 0);
    ck_assert_int_eq(gr_tkey_make(&kb, b->b, b->n), 0);
    c = gr_tkey_cmp(ka.p, ka.len, kb.p, kb.len);
    gr_tkey_done(&ka);
    gr_tkey_done(&kb);
    return c;
}

static term raw(const char *bytes, size_t n)
{
    term t = {.n = n};

    memcpy(t.b, bytes, n);
    return t;
}

START_TEST(test_canonical_ints)
{
    term a = raw("\x01", 1), b = raw("\xcd\x00\x01", 3),
         c = raw("\xd3\x00\x00\x00\x00\x00\x00\x00\x01", 9);
    gr_tkey ka, kb, kc;

    ck_assert_int_eq(gr_tkey_make(&ka, a.b, a.n), 0);
    ck_assert_int_eq(gr_tkey_make(&kb, b.b, b.n), 0);
    ck_assert_int_eq(gr_tkey_make(&kc, c.b, c.n), 0);
    ck_assert_uint_eq(kb.len, 1);
    ck_assert_mem_eq(ka.p, kb.p, 1);
    ck_assert_mem_eq(ka.p, kc.p, 1);
    ck_assert_uint_eq(gr_tkey_hash(ka.p, ka.len), gr_tkey_hash(kc.p, kc.len));
    gr_tkey_done(&ka);
    gr_tkey_done(&kb);
    gr_tkey_done(&kc);
}
END_TEST

START_TEST(test_canonical_strings)
{
    term fix = raw("\xa1z", 2), s8 = raw("\xd9\x01z", 3), s16 = raw("\xda\x00\x01z", 4);
    gr_tkey a, b, c;

    ck_assert_int_eq(gr_tkey_make(&a, fix.b, fix.n), 0); /* fast path: already canonical */
    ck_assert_int_eq(gr_tkey_make(&b, s8.b, s8.n), 0);   /* str8 of 1 byte: not canonical */
    ck_assert_int_eq(gr_tkey_make(&c, s16.b, s16.n), 0);
    ck_assert_uint_eq(b.len, 2);
    ck_assert_mem_eq(a.p, b.p, 2);
    ck_assert_mem_eq(a.p, c.p, 2);
    ck_assert_uint_eq(gr_tkey_hash(a.p, a.len), gr_tkey_hash(c.p, c.len));
    ck_assert_int_eq(gr_tkey_make(&a, "\xa2z", 2), GR_EBADTERM); /* truncated */
    gr_tkey_done(&a);
    gr_tkey_done(&b);
    gr_tkey_done(&c);
}
END_TEST

START_TEST(test_order_classes)
{
    /* nil < false < true < -5 < 1 < 1.0 < 1.5 < 2 < "" < "a" < "ab" < "b" < bin < [] < [1] < {} */
    term v[] = {raw("\xc0", 1),
                raw("\xc2", 1),
                raw("\xc3", 1),
                T_int(-5),
                T_int(1),
                raw("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9),
                raw("\xca\x3f\xc0\x00\x00", 5),
                T_int(2),
                T_str(""),
                T_str("a"),
                T_str("ab"),
                T_str("b"),
                raw("\xc4\x01\x00", 3),
                raw("\x90", 1),
                raw("\x91\x01", 2),
                raw("\x80", 1)};
    size_t n = sizeof(v) / sizeof(v[0]);

    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = cmp_terms(&v[i], &v[j]);

            ck_assert_msg((i < j && c < 0) || (i == j && c == 0) || (i > j && c > 0),
                          "order %zu vs %zu gave %d", i, j, c);
        }
    }
}
END_TEST

START_TEST(test_big_numbers)
{
    term big = raw("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);                       /* 2^64-1 */
    term neg = T_int(INT64_MIN), f = raw("\xcb\x43\xf0\x00\x00\x00\x00\x00\x00", 9); /* 2^64 */

    ck_assert_int_lt(cmp_terms(&neg, &big), 0);
    ck_assert_int_lt(cmp_terms(&big, &f), 0);
}
END_TEST

START_TEST(test_bad_and_too_big)
{
    term two = raw("\x01\x02", 2), trunc = raw("\xa3\x61", 2), deep = {.n = 0};
    gr_tkey k;
    uint8_t *huge;

    ck_assert_int_eq(gr_tkey_make(&k, two.b, two.n), GR_EBADTERM);
    ck_assert_int_eq(gr_tkey_make(&k, trunc.b, trunc.n), GR_EBADTERM);
    for (int i = 0; i < 40; i++) {
        deep.b[deep.n++] = 0x91;
    }
    deep.b[deep.n++] = 0x01;
    ck_assert_int_eq(gr_tkey_make(&k, deep.b, deep.n), GR_EBADTERM);
    huge = calloc(1, 70000 + 5);
    huge[0] = 0xc6; /* bin32 of 70000 bytes */
    huge[1] = 0;
    huge[2] = 0x01;
    huge[3] = 0x11;
    huge[4] = 0x70;
    ck_assert_int_eq(gr_tkey_make(&k, huge, 70005), GR_ETOOBIG);
    gr_tkey_done(&k);
    free(huge);
}
END_TEST

/* An array or map key longer than the inline buffer (a Redis list element's
 * key with a long name): canonical in the second pass; a trailing byte after
 * it is still refused, and so is a bad element after the overflow. */
START_TEST(test_long_array_key)
{
    uint8_t in[200], want[200];
    size_t n = 0, w = 0;
    gr_tkey k;

    in[n++] = 0x92; /* [Str, 7] with Str of 130 bytes; 7 sent as int64 */
    in[n++] = 0xd9;
    in[n++] = 130;
    memset(in + n, 'k', 130);
    n += 130;
    memcpy(want, in, n);
    w = n;
    want[w++] = 0x07; /* canonical: a positive fixint */
    memcpy(in + n, "\xd3\0\0\0\0\0\0\0\x07", 9);
    n += 9;
    ck_assert_int_eq(gr_tkey_make(&k, in, n), 0);
    ck_assert_uint_eq(k.len, w);
    ck_assert_mem_eq(k.p, want, w);
    gr_tkey_done(&k);
    in[n] = 0x01; /* a second term after the array */
    ck_assert_int_eq(gr_tkey_make(&k, in, n + 1), GR_EBADTERM);
    gr_tkey_done(&k);
    in[n - 9] = 0xc1; /* a reserved byte where the second element is */
    ck_assert_int_eq(gr_tkey_make(&k, in, n), GR_EBADTERM);
    gr_tkey_done(&k);
}
END_TEST

START_TEST(test_prefix)
{
    term k = T_str("user:42"), p = T_str("user:"), q = T_str("usr"), n = T_int(3);
    gr_tkey a, b, c, d;

    gr_tkey_make(&a, k.b, k.n);
    gr_tkey_make(&b, p.b, p.n);
    gr_tkey_make(&c, q.b, q.n);
    gr_tkey_make(&d, n.b, n.n);
    ck_assert(gr_tkey_has_prefix(a.p, a.len, b.p, b.len));
    ck_assert(!gr_tkey_has_prefix(a.p, a.len, c.p, c.len));
    ck_assert(!gr_tkey_has_prefix(d.p, d.len, b.p, b.len));
}
END_TEST

/* ---- hash flooding: keys that collide under the public hash (T_flood_key) -------- */

START_TEST(test_store_hash_resists_chosen_keys)
{
    enum { N = 256 };
    uint8_t k[N][16], skey[GR_SHASH_KEYBYTES], skey2[GR_SHASH_KEYBYTES];
    uint64_t h[N], top = 0;
    int dup = 0;

    ck_assert_uint_eq(T_unmix(T_mix(0x1234567)), 0x1234567);
    for (int i = 0; i < N; i++) {
        T_flood_key(k[i], (uint64_t)i + 1);
        /* the attack works on the public hash: every key collides */
        ck_assert_uint_eq(gr_tkey_hash(k[i], 16), gr_tkey_hash(k[0], 16));
    }
    for (unsigned i = 0; i < GR_SHASH_KEYBYTES; i++) {
        skey[i] = (uint8_t)(i * 37 + 11);
        skey2[i] = (uint8_t)(i * 53 + 7);
    }
    for (int i = 0; i < N; i++) {
        h[i] = gr_shash(skey, k[i], 16);
        top |= (uint64_t)1 << (h[i] >> 60); /* which of 16 ranges of the hash space */
        for (int j = 0; j < i; j++) {
            dup += h[j] == h[i];
        }
    }
    /* under the store hash they spread: no two equal, and over all 16 ranges
     * (256 random values leave one empty with probability 1e-6) */
    ck_assert_int_eq(dup, 0);
    ck_assert_uint_eq(top, 0xffff);
    /* and the store hash depends on its key */
    ck_assert_uint_ne(gr_shash(skey, k[0], 16), gr_shash(skey2, k[0], 16));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tables_key");
    TCase *tc = tcase_create("key");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_canonical_ints);
    tcase_add_test(tc, test_canonical_strings);
    tcase_add_test(tc, test_order_classes);
    tcase_add_test(tc, test_big_numbers);
    tcase_add_test(tc, test_bad_and_too_big);
    tcase_add_test(tc, test_long_array_key);
    tcase_add_test(tc, test_prefix);
    tcase_add_test(tc, test_store_hash_resists_chosen_keys);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
