/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spin_test.c - when the dist loop may spin before it blocks
 * (gr_dist_spin_allowed, dist.c): the decision alone, fed the clock and the
 * thread's involuntary context switches and the machine's runnable threads
 * by hand, so the order of events is checked without any timing: a
 * preemption with many threads runnable (or an unknown number) turns the
 * spin off for DIST_SPIN_OFF_US, preemptions inside that window do not
 * extend it, and at its end the count is taken afresh; a preemption with
 * few runnable (the round trip's own threads) keeps it on. And the parser of
 * /proc/loadavg (util/runnable.h).
 */
#include "dist/dist_int.h"
#include "util/runnable.h"

#include <check.h>
#include <stdlib.h>

START_TEST(spins_while_never_preempted)
{
    dist_spin s = {.rebase = true};

    ck_assert(gr_dist_spin_allowed(&s, 1000, 7, 0)); /* first check: takes the count */
    for (uint64_t t = 1001; t < 1000 + 10 * DIST_SPIN_OFF_US; t += DIST_SPIN_OFF_US / 3) {
        ck_assert(gr_dist_spin_allowed(&s, t, 7, 0));
    }
    ck_assert_uint_eq(s.offs, 0);
}
END_TEST

START_TEST(preemption_turns_it_off_for_a_window)
{
    dist_spin s = {.rebase = true};
    uint64_t t = 5000;

    ck_assert(gr_dist_spin_allowed(&s, t, 3, 0));
    ck_assert(!gr_dist_spin_allowed(&s, t + 10, 4, 0)); /* preempted since the last check */
    ck_assert_uint_eq(s.offs, 1);
    ck_assert_uint_eq(s.off_until, t + 10 + DIST_SPIN_OFF_US);
    /* inside the window: off, whatever the count does, and counted once */
    ck_assert(!gr_dist_spin_allowed(&s, t + 11, 4, 0));
    ck_assert(!gr_dist_spin_allowed(&s, t + 10 + DIST_SPIN_OFF_US - 1, 9, 0));
    ck_assert_uint_eq(s.offs, 1);
    /* its end: the count moved meanwhile, but is taken afresh: on again */
    ck_assert(gr_dist_spin_allowed(&s, t + 10 + DIST_SPIN_OFF_US, 12, 0));
    ck_assert(gr_dist_spin_allowed(&s, t + 20 + DIST_SPIN_OFF_US, 12, 0));
    /* preempted again: off again */
    ck_assert(!gr_dist_spin_allowed(&s, t + 30 + DIST_SPIN_OFF_US, 13, 0));
    ck_assert_uint_eq(s.offs, 2);
    ck_assert_uint_eq(s.off_until, t + 30 + 2 * DIST_SPIN_OFF_US);
}
END_TEST

START_TEST(counter_wrap_is_a_change)
{
    dist_spin s = {.rebase = true};

    ck_assert(gr_dist_spin_allowed(&s, 1, UINT64_MAX, 0));
    ck_assert(!gr_dist_spin_allowed(&s, 2, 0, 0));
    ck_assert_uint_eq(s.offs, 1);
}
END_TEST

START_TEST(own_preemptions_keep_it_on)
{
    dist_spin s = {.rebase = true, .runnable_max = 4};
    uint64_t t = 1000, n = 10;

    ck_assert(gr_dist_spin_allowed(&s, t, n, 0));
    /* preempted at every check, by the round trip's own threads: on */
    for (int i = 0; i < 100; i++) {
        ck_assert(gr_dist_spin_allowed(&s, ++t, ++n, 1 + (unsigned)i % 4));
    }
    ck_assert_uint_eq(s.offs, 0);
    ck_assert_uint_eq(s.nivcsw, n); /* taken each time */
    /* not preempted: the runnable count is not looked at */
    ck_assert(gr_dist_spin_allowed(&s, ++t, n, 99));
    /* preempted with foreign load: off for the window */
    ck_assert(!gr_dist_spin_allowed(&s, ++t, ++n, 5));
    ck_assert_uint_eq(s.offs, 1);
    ck_assert_uint_eq(s.off_until, t + DIST_SPIN_OFF_US);
    ck_assert(!gr_dist_spin_allowed(&s, t + DIST_SPIN_OFF_US - 1, n, 1));
    /* preempted, the count unknown: off as well */
    ck_assert(gr_dist_spin_allowed(&s, t + DIST_SPIN_OFF_US, n + 50, 30)); /* rebase */
    ck_assert(!gr_dist_spin_allowed(&s, t + DIST_SPIN_OFF_US + 1, n + 51, 0));
    ck_assert_uint_eq(s.offs, 2);
}
END_TEST

START_TEST(loadavg_parses)
{
    unsigned n = 77;

    ck_assert_int_eq(gr_runnable_parse("0.52 0.58 0.59 3/467 12345\n", &n), 0);
    ck_assert_uint_eq(n, 3); /* the instant count, above the average */
    ck_assert_int_eq(gr_runnable_parse("41.65 41.58 27.64 19/253 26499", &n), 0);
    ck_assert_uint_eq(n, 42); /* the average, rounded up */
    ck_assert_int_eq(gr_runnable_parse("4.00 1.00 1.00 2/253 26499", &n), 0);
    ck_assert_uint_eq(n, 4); /* a whole average stays */
    ck_assert_int_eq(gr_runnable_parse("4.01 1.00 1.00 2/253 26499", &n), 0);
    ck_assert_uint_eq(n, 5);
    n = 77;
    ck_assert_int_lt(gr_runnable_parse("", &n), 0);
    ck_assert_int_lt(gr_runnable_parse("0.52 0.58 0.59", &n), 0);
    ck_assert_int_lt(gr_runnable_parse("0.52 0.58 0.59 x/467 1", &n), 0);
    ck_assert_int_lt(gr_runnable_parse("0.52 0.58 0.59 3 1", &n), 0);
    ck_assert_uint_eq(n, 77); /* untouched on failure */
}
END_TEST

START_TEST(loadavg_reads)
{
    unsigned n = 0;
    int fd = gr_runnable_open();

    if (fd < 0) {
        return; /* no procfs: the gate turns the spin off at any preemption */
    }
    ck_assert_int_eq(gr_runnable_read(fd, &n), 0);
    ck_assert_uint_ge(n, 1);                       /* this thread runs */
    ck_assert_int_eq(gr_runnable_read(fd, &n), 0); /* again, from the start */
    ck_assert_uint_ge(n, 1);
    close(fd);
}
END_TEST

static Suite *spin_suite(void)
{
    Suite *s = suite_create("dist_spin");
    TCase *tc = tcase_create("decide");

    tcase_add_test(tc, spins_while_never_preempted);
    tcase_add_test(tc, preemption_turns_it_off_for_a_window);
    tcase_add_test(tc, counter_wrap_is_a_change);
    tcase_add_test(tc, own_preemptions_keep_it_on);
    tcase_add_test(tc, loadavg_parses);
    tcase_add_test(tc, loadavg_reads);
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
