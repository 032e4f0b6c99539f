/* SPDX-License-Identifier: Apache-2.0 */
/*
 * detect_test.c - the failure detector's decisions and the dial pacing
 * (detect.c), pure: given heartbeat arrival times, check times and vouches,
 * which checks suspect, probe, clear or declare down; given dial times,
 * which dials wait. No thread, no socket, no clock: every time is made up.
 * The threaded halves (probes on real links, a deaf link vouched for, a hung
 * node still detected) are in dist_test.c.
 */
#include "dist/dist_int.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define D 3000u /* detection_ms */

static gr_fd_params P;

static void setup(void)
{
    gr_fd_params_init(&P, D);
}

/* Check every tick from t0 to t1 (exclusive) with the link last heard at
 * last_in; returns the first decision other than GR_FD_OK (or GR_FD_OK), at
 * *ret_at. */
static int run(gr_fd *s, uint64_t t0, uint64_t t1, uint64_t last_in, uint64_t *ret_at)
{
    for (uint64_t t = t0; t < t1; t += P.tick_ms) {
        int r = gr_fd_check(s, &P, t, last_in, false);

        if (r != GR_FD_OK) {
            *ret_at = t;
            return r;
        }
    }
    return GR_FD_OK;
}

START_TEST(params_follow_detection)
{
    ck_assert_uint_eq(P.tick_ms, 250);
    ck_assert_uint_eq(P.hb_ms, 750);
    ck_assert_uint_eq(P.suspect_ms, 1500);
    ck_assert_uint_eq(P.probe_ms, 500);
    ck_assert_uint_eq(P.vouch_max_ms, D * DIST_FD_VOUCH_MAX_X);
    ck_assert_uint_lt(P.suspect_ms, P.detection_ms - P.tick_ms);
}
END_TEST

/* Heartbeats every 750 ms (an idle peer's period, D/4), arriving with up to
 * 600 ms of extra jitter: never suspect. */
START_TEST(jittery_heartbeats_never_suspected)
{
    gr_fd s = {0};
    uint64_t last = 1000;

    for (uint64_t t = 1000; t < 600000; t += P.tick_ms / 2) {
        if (t >= last + 750 + (t / 7) % 600) {
            last = t;
        }
        ck_assert_int_eq(gr_fd_check(&s, &P, t, last, false), GR_FD_OK);
    }
    ck_assert(!s.suspect);
}
END_TEST

/* Silence from t = 10,000: the first check at or past D/2 probes, one round
 * per tick after that, and the link is down at the first check at or past
 * D - tick, never before, so within D of the last byte. */
START_TEST(silence_probes_then_down_within_d)
{
    for (uint64_t phase = 0; phase < P.tick_ms; phase += 37) {
        gr_fd s = {0};
        uint64_t last = 10000, at = 0, first = 0, rounds = 0;
        int r;

        for (uint64_t t = last + phase; t < last + 2 * D; t += P.tick_ms) {
            r = gr_fd_check(&s, &P, t, last, false);
            if (r == GR_FD_PROBE) {
                ck_assert_uint_ge(t - last, P.suspect_ms);
                first = first ? first : t;
                rounds++;
                ck_assert_uint_eq(s.seq, rounds);
            } else if (r == GR_FD_DOWN) {
                at = t;
                break;
            } else {
                ck_assert_int_eq(r, GR_FD_OK);
            }
        }
        ck_assert_uint_ne(first, 0);
        ck_assert_uint_lt(first - last, P.suspect_ms + P.tick_ms);
        ck_assert_uint_ge(at - last, D - P.tick_ms);
        ck_assert_uint_le(at - last, D);
        ck_assert_uint_ge(rounds, 2);
        ck_assert_uint_eq(s.seq_lo, 1);
    }
}
END_TEST

/* Silence with every round vouched for (the member answers the helpers):
 * no down until vouch_max of direct silence, then down. */
START_TEST(vouched_silence_holds_until_the_cap)
{
    gr_fd s = {0};
    uint64_t last = 5000, t;
    int r = GR_FD_OK;

    for (t = last; t < last + 2 * P.vouch_max_ms; t += P.tick_ms) {
        r = gr_fd_check(&s, &P, t, last, false);
        if (r == GR_FD_PROBE) {
            ck_assert(gr_fd_vouch(&s, s.seq)); /* answered */
        }
        if (r == GR_FD_DOWN) {
            break;
        }
        ck_assert(r == GR_FD_OK || r == GR_FD_PROBE);
    }
    ck_assert_int_eq(r, GR_FD_DOWN);
    ck_assert_uint_ge(t - last, P.vouch_max_ms);
    ck_assert_uint_lt(t - last, P.vouch_max_ms + P.tick_ms);
    ck_assert_uint_gt(s.vouches, 10);
}
END_TEST

/* Vouches that stop: down within D of the round the last vouch answered. */
START_TEST(vouches_stop_then_down)
{
    gr_fd s = {0};
    uint64_t last = 5000, t, answered = 0, at = 0;
    int r;

    for (t = last; t < last + 30000; t += P.tick_ms) {
        r = gr_fd_check(&s, &P, t, last, false);
        if (r == GR_FD_PROBE && t < last + 8000) {
            ck_assert(gr_fd_vouch(&s, s.seq));
            answered = t;
        }
        if (r == GR_FD_DOWN) {
            at = t;
            break;
        }
    }
    ck_assert_uint_ne(at, 0);
    ck_assert_uint_ge(at - answered, D - P.tick_ms);
    ck_assert_uint_le(at - answered, D);
}
END_TEST

/* Only vouches for rounds of this suspicion count: a round not sent yet, one
 * of an earlier suspicion, one too old to know when it was sent, or any when
 * not suspect. */
START_TEST(stale_vouches_ignored)
{
    gr_fd s = {0};
    uint64_t last = 1000, at;

    ck_assert(!gr_fd_vouch(&s, 1)); /* not suspect */
    ck_assert_int_eq(run(&s, last, last + D, last, &at), GR_FD_PROBE);
    ck_assert_uint_eq(s.seq, 1);
    ck_assert(!gr_fd_vouch(&s, 2)); /* not sent */
    /* heard again: cleared; a new suspicion starts at round 2 */
    ck_assert_int_eq(gr_fd_check(&s, &P, at + P.tick_ms, at + P.tick_ms, false), GR_FD_CLEARED);
    ck_assert(!s.suspect);
    last = at + P.tick_ms;
    ck_assert_int_eq(run(&s, last, last + D, last, &at), GR_FD_PROBE);
    ck_assert_uint_eq(s.seq, 2);
    ck_assert_uint_eq(s.seq_lo, 2);
    ck_assert(!gr_fd_vouch(&s, 1)); /* the earlier suspicion's */
    ck_assert_uint_eq(s.alive_ms, 0);
    ck_assert(gr_fd_vouch(&s, 2));
    ck_assert_uint_eq(s.alive_ms, at); /* alive as of the round's send time */
    ck_assert_uint_eq(s.vouches, 1);
}
END_TEST

/* Heard again while suspect: cleared, and the state is fresh. */
START_TEST(heard_again_clears)
{
    gr_fd s = {0};
    uint64_t at;

    ck_assert_int_eq(run(&s, 0, D, 0, &at), GR_FD_PROBE);
    ck_assert(s.suspect);
    ck_assert_int_eq(gr_fd_check(&s, &P, at + 10, at + 5, false), GR_FD_CLEARED);
    ck_assert(!s.suspect);
    ck_assert_uint_eq(s.vouches, 0);
    ck_assert_int_eq(gr_fd_check(&s, &P, at + 20, at + 5, false), GR_FD_OK);
}
END_TEST

/* A late check (the node itself was stalled) holds one down back, once. */
START_TEST(late_check_holds_down_once)
{
    gr_fd s = {0};

    ck_assert_int_eq(gr_fd_check(&s, &P, D, 0, true), GR_FD_OK);
    ck_assert_int_eq(gr_fd_check(&s, &P, D + 10, 0, true), GR_FD_DOWN);
    gr_fd_reset(&s);
    ck_assert_int_eq(gr_fd_check(&s, &P, D, 0, true), GR_FD_OK);
    ck_assert_int_eq(gr_fd_check(&s, &P, D + 10, 0, false), GR_FD_DOWN);
}
END_TEST

/* The pacing: a burst, then one dial per 1000 / DIST_DIAL_RATE ms, and none
 * while DIST_DIAL_INFLIGHT are under way. */
START_TEST(dial_pacing)
{
    dist_pace p = {0};
    const unsigned per = 1000u / DIST_DIAL_RATE;
    uint64_t t = 100000;
    unsigned n = 0, wait;

    for (unsigned i = 0; i < DIST_DIAL_BURST; i++) {
        ck_assert_uint_eq(gr_dist_pace_take(&p, t, 0), 0);
    }
    wait = gr_dist_pace_take(&p, t, 0);
    ck_assert_uint_gt(wait, 0);
    ck_assert_uint_le(wait, per);
    /* one second later: DIST_DIAL_RATE more, capped by the burst */
    for (uint64_t u = t; u < t + 1000; u++) {
        if (gr_dist_pace_take(&p, u, 0) == 0) {
            n++;
        }
    }
    ck_assert_uint_ge(n, DIST_DIAL_RATE - 1);
    ck_assert_uint_le(n, DIST_DIAL_RATE + 1);
    /* quiet for a long time: at most a burst */
    t += 60000;
    n = 0;
    for (unsigned i = 0; i < 100; i++) {
        if (gr_dist_pace_take(&p, t, 0) == 0) {
            n++;
        }
    }
    ck_assert_uint_eq(n, DIST_DIAL_BURST);
    /* too many in flight: wait, even with tokens */
    t += 60000;
    ck_assert_uint_gt(gr_dist_pace_take(&p, t, DIST_DIAL_INFLIGHT), 0);
    ck_assert_uint_eq(gr_dist_pace_take(&p, t, DIST_DIAL_INFLIGHT - 1), 0);
}
END_TEST

static Suite *detect_suite(void)
{
    Suite *s = suite_create("detect");
    TCase *tc = tcase_create("pure");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, params_follow_detection);
    tcase_add_test(tc, jittery_heartbeats_never_suspected);
    tcase_add_test(tc, silence_probes_then_down_within_d);
    tcase_add_test(tc, vouched_silence_holds_until_the_cap);
    tcase_add_test(tc, vouches_stop_then_down);
    tcase_add_test(tc, stale_vouches_ignored);
    tcase_add_test(tc, heard_again_clears);
    tcase_add_test(tc, late_check_holds_down_once);
    tcase_add_test(tc, dial_pacing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(detect_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
