/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spin_test.c - when the dist loop may spin before it blocks
 * (gr_dist_spin_allowed, dist.c): the decision alone, fed the clock and the
 * thread's involuntary context switches by hand, so the order of events is
 * checked without any timing: a preemption turns the spin off for
 * DIST_SPIN_OFF_US, preemptions inside that window do not extend it, and at
 * its end the count is taken afresh.
 */
#include "dist/dist_int.h"

#include <check.h>
#include <stdlib.h>

START_TEST(spins_while_never_preempted)
{
    dist_spin s = {.rebase = true};

    ck_assert(gr_dist_spin_allowed(&s, 1000, 7)); /* first check: takes the count */
    for (uint64_t t = 1001; t < 1000 + 10 * DIST_SPIN_OFF_US; t += DIST_SPIN_OFF_US / 3) {
        ck_assert(gr_dist_spin_allowed(&s, t, 7));
    }
    ck_assert_uint_eq(s.offs, 0);
}
END_TEST

START_TEST(preemption_turns_it_off_for_a_window)
{
    dist_spin s = {.rebase = true};
    uint64_t t = 5000;

    ck_assert(gr_dist_spin_allowed(&s, t, 3));
    ck_assert(!gr_dist_spin_allowed(&s, t + 10, 4)); /* preempted since the last check */
    ck_assert_uint_eq(s.offs, 1);
    ck_assert_uint_eq(s.off_until, t + 10 + DIST_SPIN_OFF_US);
    /* inside the window: off, whatever the count does, and counted once */
    ck_assert(!gr_dist_spin_allowed(&s, t + 11, 4));
    ck_assert(!gr_dist_spin_allowed(&s, t + 10 + DIST_SPIN_OFF_US - 1, 9));
    ck_assert_uint_eq(s.offs, 1);
    /* its end: the count moved meanwhile, but is taken afresh: on again */
    ck_assert(gr_dist_spin_allowed(&s, t + 10 + DIST_SPIN_OFF_US, 12));
    ck_assert(gr_dist_spin_allowed(&s, t + 20 + DIST_SPIN_OFF_US, 12));
    /* preempted again: off again */
    ck_assert(!gr_dist_spin_allowed(&s, t + 30 + DIST_SPIN_OFF_US, 13));
    ck_assert_uint_eq(s.offs, 2);
    ck_assert_uint_eq(s.off_until, t + 30 + 2 * DIST_SPIN_OFF_US);
}
END_TEST

START_TEST(counter_wrap_is_a_change)
{
    dist_spin s = {.rebase = true};

    ck_assert(gr_dist_spin_allowed(&s, 1, UINT64_MAX));
    ck_assert(!gr_dist_spin_allowed(&s, 2, 0));
    ck_assert_uint_eq(s.offs, 1);
}
END_TEST

static Suite *spin_suite(void)
{
    Suite *s = suite_create("dist_spin");
    TCase *tc = tcase_create("decide");

    tcase_add_test(tc, spins_while_never_preempted);
    tcase_add_test(tc, preemption_turns_it_off_for_a_window);
    tcase_add_test(tc, counter_wrap_is_a_change);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spin_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
