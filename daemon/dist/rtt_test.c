/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtt_test.c - the link round-trip estimator (gr_dist_rtt_smooth,
 * dist_int.h), pure: the first sample is taken as is, later ones move the
 * smoothed value by an eighth of the difference (RFC 6298's SRTT), a
 * sub-microsecond sample never reads as "not measured", and a step in the
 * path's delay is followed within a few dozen samples. The heartbeat acks
 * that feed it are checked end to end by the ob3_rtt cluster tests.
 */
#include "dist/dist_int.h"

#include <check.h>
#include <stdlib.h>

START_TEST(first_sample_as_is)
{
    ck_assert_uint_eq(gr_dist_rtt_smooth(0, 480), 480);
    ck_assert_uint_eq(gr_dist_rtt_smooth(0, 0), 1); /* 0 means "not measured" */
    ck_assert_uint_eq(gr_dist_rtt_smooth(800, 0), 800 - 100 + 0);
}
END_TEST

START_TEST(eighth_of_the_difference)
{
    /* 7/8 * 800 + 1/8 * 1600 = 900 */
    ck_assert_uint_eq(gr_dist_rtt_smooth(800, 1600), 900);
    /* a steady path stays where it is */
    ck_assert_uint_eq(gr_dist_rtt_smooth(1000, 1000), 1000);
    /* one outlier moves it by an eighth only */
    ck_assert_uint_eq(gr_dist_rtt_smooth(1000, 81000), 11000);
}
END_TEST

/* A path that was 0.5 ms and becomes 50.5 ms (tc netem delay 50ms on one
 * side): the smoothed value passes 90% of the step within 20 samples (about
 * 18 at 1/8 per sample) and never overshoots; back to 0.5 ms it returns. */
START_TEST(follows_a_step)
{
    uint64_t s = 0;
    int n;

    for (n = 0; n < 50; n++) {
        s = gr_dist_rtt_smooth(s, 500);
    }
    ck_assert_uint_eq(s, 500);
    for (n = 1; n <= 200; n++) {
        s = gr_dist_rtt_smooth(s, 50500);
        ck_assert_uint_le(s, 50500);
        if (s >= 500 + 45000) {
            break;
        }
    }
    ck_assert_int_le(n, 20);
    for (n = 0; n < 200; n++) {
        s = gr_dist_rtt_smooth(s, 500);
    }
    ck_assert_uint_ge(s, 500);
    ck_assert_uint_le(s, 510); /* integer eighths stop within 8 us of the value */
}
END_TEST

static Suite *rtt_suite(void)
{
    Suite *s = suite_create("dist_rtt");
    TCase *tc = tcase_create("smooth");

    tcase_add_test(tc, first_sample_as_is);
    tcase_add_test(tc, eighth_of_the_difference);
    tcase_add_test(tc, follows_a_step);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rtt_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
