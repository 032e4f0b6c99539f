/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slice_test.c - gr_thread_slice_set (util/slice.h): the calling thread gets
 * the slice (where the kernel shows it in /proc/thread-self/sched) and keeps
 * its nice value; a kernel without the feature is reported, not fatal.
 */
#include "util/slice.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* se.slice of the calling thread, or 0 if the kernel does not show it. */
static uint64_t slice_now(void)
{
    FILE *f = fopen("/proc/thread-self/sched", "r");
    char line[256];
    unsigned long long v = 0;

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "se.slice : %llu", &v) == 1) {
            break;
        }
    }
    fclose(f);
    return v;
}

START_TEST(slice_set_keeps_nice)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int r;

    /* a higher nice value is always allowed: the call must not reset it */
    ck_assert_int_eq(setpriority(PRIO_PROCESS, (id_t)tid, 3), 0);
    r = gr_thread_slice_set(GR_THREAD_SLICE_NS);
    if (r == -ENOSYS || r == -EINVAL) {
        return; /* no custom slices on this kernel: the daemon runs on */
    }
    ck_assert_int_eq(r, 0);
    errno = 0;
    ck_assert_int_eq(getpriority(PRIO_PROCESS, (id_t)tid), 3);
    ck_assert_int_eq(errno, 0);
    if (slice_now() != 0) {
        ck_assert_uint_eq(slice_now(), GR_THREAD_SLICE_NS);
    }
}
END_TEST

static Suite *slice_suite(void)
{
    Suite *s = suite_create("slice");
    TCase *tc = tcase_create("set");

    tcase_add_test(tc, slice_set_keeps_nice);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(slice_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
