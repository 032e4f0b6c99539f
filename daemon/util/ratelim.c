/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ratelim.c - the log rate limiter of ratelim.h: fixed windows, a burst of
 * lines per window, a count of the rest.
 *
 * Design notes
 * - Fixed windows, not a token bucket: the count a suppressed line is reported
 *   with then means something exact ("in the last second"), and the state is
 *   three numbers.
 * - The held-back count of a window is reported once, by whoever closes the
 *   window first: the next allowed line, or the owner's timer (flush).
 *
 * Threading: none of its own; the owner of the struct serialises calls.
 */
#include "util/ratelim.h"

static uint64_t window_of(const gr_ratelim *rl)
{
    return rl->window_ms ? rl->window_ms : 1000u;
}

static unsigned burst_of(const gr_ratelim *rl)
{
    return rl->burst ? rl->burst : 5u;
}

uint64_t gr_ratelim_window_end(const gr_ratelim *rl)
{
    return rl->start_ms + window_of(rl);
}

uint64_t gr_ratelim_flush(gr_ratelim *rl, uint64_t now_ms)
{
    uint64_t missed;

    if (!rl->started || now_ms < gr_ratelim_window_end(rl)) {
        return 0;
    }
    missed = rl->missed;
    rl->started = false;
    rl->used = 0;
    rl->missed = 0;
    return missed;
}

bool gr_ratelim_allow(gr_ratelim *rl, uint64_t now_ms, uint64_t *io_missed)
{
    uint64_t m = gr_ratelim_flush(rl, now_ms);

    if (io_missed) {
        *io_missed += m;
    }
    if (!rl->started) {
        rl->started = true;
        rl->start_ms = now_ms;
    }
    if (rl->used < burst_of(rl)) {
        rl->used++;
        return true;
    }
    rl->missed++;
    return false;
}
