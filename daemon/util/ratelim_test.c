/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ratelim_test.c - the log rate limiter (util/ratelim.h): the burst per
 * window, the count of held-back lines reported once (by the next line or by
 * a flush), windows restarting.
 */
#include "util/ratelim.h"

#include <check.h>
#include <stdlib.h>

START_TEST(burst_then_held_back)
{
    gr_ratelim rl = {.window_ms = 1000, .burst = 3};
    uint64_t missed = 0;

    for (int i = 0; i < 3; i++) {
        ck_assert(gr_ratelim_allow(&rl, 100 + (uint64_t)i, &missed));
    }
    for (int i = 0; i < 752; i++) {
        ck_assert(!gr_ratelim_allow(&rl, 200, &missed));
    }
    ck_assert_uint_eq(missed, 0);
    /* still inside the window: nothing to flush yet */
    ck_assert_uint_eq(gr_ratelim_flush(&rl, 1099), 0);
    ck_assert_uint_eq(gr_ratelim_window_end(&rl), 1100);
    /* the next line after the window carries the count, once */
    ck_assert(gr_ratelim_allow(&rl, 1100, &missed));
    ck_assert_uint_eq(missed, 752);
    missed = 0;
    ck_assert(gr_ratelim_allow(&rl, 1101, &missed));
    ck_assert_uint_eq(missed, 0);
}
END_TEST

START_TEST(flush_reports_once)
{
    gr_ratelim rl = {0}; /* defaults: 5 a second */
    uint64_t missed = 0;

    for (int i = 0; i < 5; i++) {
        ck_assert(gr_ratelim_allow(&rl, 0, NULL));
    }
    ck_assert(!gr_ratelim_allow(&rl, 10, NULL));
    ck_assert(!gr_ratelim_allow(&rl, 999, NULL));
    ck_assert_uint_eq(gr_ratelim_flush(&rl, 1000), 2);
    ck_assert_uint_eq(gr_ratelim_flush(&rl, 5000), 0);
    /* a fresh window: the burst again, and nothing left to report */
    for (int i = 0; i < 5; i++) {
        ck_assert(gr_ratelim_allow(&rl, 6000, &missed));
    }
    ck_assert_uint_eq(missed, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ratelim");
    TCase *tc = tcase_create("ratelim");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, burst_then_held_back);
    tcase_add_test(tc, flush_reports_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
