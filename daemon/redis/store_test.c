/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_test.c - the value encoding of store.c that lists and replies rely
 * on: a list's head/tail record round-trips (negative and large positions)
 * and reads as RT_LIST, bad records are refused; element keys are distinct
 * per position; the pieces collector keeps names and values (as strings or
 * raw) in order.
 */
#include "redis/redis_int.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

START_TEST(list_record)
{
    static const int64_t pos[][2] = {{0, 1}, {-1, 0}, {-40, 7}, {-5000000000LL, 9000000000LL}};
    gr_tbuf b = {0};
    int64_t h, t;

    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        ck_assert_int_eq(gr_redis_enc_list(&b, pos[i][0], pos[i][1]), 0);
        ck_assert_int_eq(gr_redis_type(b.p, b.len), RT_LIST);
        ck_assert_int_eq(gr_redis_dec_list(b.p, b.len, &h, &t), 0);
        ck_assert(h == pos[i][0] && t == pos[i][1]);
        /* truncated or with trailing bytes: not a record */
        ck_assert_int_eq(gr_redis_dec_list(b.p, b.len - 1, &h, &t), -EINVAL);
        ck_assert_int_eq(gr_tbuf_put(&b, "", 1), 0);
        ck_assert_int_eq(gr_redis_dec_list(b.p, b.len, &h, &t), -EINVAL);
    }
    ck_assert_int_eq(gr_redis_enc_list(&b, 5, 2), 0); /* head after tail */
    ck_assert_int_eq(gr_redis_dec_list(b.p, b.len, &h, &t), -EINVAL);
    ck_assert_int_eq(gr_redis_enc_str(&b, "12", 2), 0); /* a string is no list */
    ck_assert_int_eq(gr_redis_dec_list(b.p, b.len, &h, &t), -EINVAL);
    ck_assert_int_eq(gr_redis_type(b.p, b.len), RT_STRING);
    gr_tbuf_free(&b);
}
END_TEST

START_TEST(element_keys)
{
    gr_tbuf a = {0}, b = {0};

    ck_assert_int_eq(gr_redis_list_key(&a, "k", 1, -1), 0);
    ck_assert_int_eq(gr_redis_list_key(&b, "k", 1, 1), 0);
    ck_assert(a.len != b.len || memcmp(a.p, b.p, a.len) != 0);
    ck_assert_int_eq(gr_redis_list_key(&b, "k", 1, -1), 0);
    ck_assert(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    ck_assert_int_eq(gr_redis_list_key(&b, "kk", 2, -1), 0);
    ck_assert(a.len != b.len || memcmp(a.p, b.p, a.len) != 0);
    ck_assert_uint_eq(a.p[0], 0x92); /* [bin, int]: never a Redis key (a str) */
    gr_tbuf_free(&a);
    gr_tbuf_free(&b);
}
END_TEST

START_TEST(pieces)
{
    gr_tbuf b = {0}, v = {0};
    rpieces ps = {.b = &b, .what = RP_NAMES | RP_VALUES};
    const uint8_t *p;
    size_t n, off = 0;

    ck_assert_int_eq(gr_redis_enc_str(&v, "42", 2), 0); /* stored as an integer */
    ck_assert_int_eq(gr_redis_collect_fn(&ps, (const uint8_t *)"f", 1, v.p, v.len), 0);
    ck_assert_int_eq(gr_redis_collect_fn(&ps, (const uint8_t *)"", 0, NULL, 0), 0);
    ck_assert_uint_eq(ps.n, 2);
    off = gr_redis_piece_at(&ps, off, &p, &n);
    ck_assert(n == 1 && p[0] == 'f');
    off = gr_redis_piece_at(&ps, off, &p, &n);
    ck_assert(n == 2 && memcmp(p, "42", 2) == 0); /* as the string a client wrote */
    off = gr_redis_piece_at(&ps, off, &p, &n);
    ck_assert_uint_eq(n, 0);
    off = gr_redis_piece_at(&ps, off, &p, &n);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(off, b.len);
    b.len = 0;
    ps = (rpieces){.b = &b, .what = RP_VALUES | RP_RAW};
    ck_assert_int_eq(gr_redis_collect_fn(&ps, (const uint8_t *)"f", 1, v.p, v.len), 0);
    gr_redis_piece_at(&ps, 0, &p, &n);
    ck_assert(n == v.len && memcmp(p, v.p, n) == 0); /* raw: the stored term */
    gr_tbuf_free(&b);
    gr_tbuf_free(&v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_store");
    TCase *tc = tcase_create("store");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, list_record);
    tcase_add_test(tc, element_keys);
    tcase_add_test(tc, pieces);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
