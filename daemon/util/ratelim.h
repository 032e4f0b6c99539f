/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ratelim.h - a log rate limiter: at most `burst` lines per window of
 * `window_ms`, and a count of the lines held back, so that a flood of events
 * (refused connections, failed handshakes) costs a few log lines a second and
 * still says how many there were ("and 752 more in the last second").
 *
 * Pure logic on a caller-owned struct and a caller-supplied clock: no
 * allocation, no locking (the owner serialises its calls), no I/O: the caller
 * logs (daemon/dist/admit.c: per-reason counts in its report line).
 */
#ifndef GR_RATELIM_H
#define GR_RATELIM_H

#include <stdbool.h>
#include <stdint.h>

typedef struct gr_ratelim {
    uint64_t window_ms; /* length of one window; 0: 1000 */
    unsigned burst;     /* lines let through per window; 0: 5 */
    uint64_t start_ms;  /* when the current window began */
    unsigned used;      /* lines let through in it */
    uint64_t missed;    /* lines held back in it */
    bool started;       /* a window is running */
} gr_ratelim;

/* One more event at now_ms (monotonic): may it be logged? A window that has
 * ended is closed first: its held-back count is added to *io_missed (the
 * caller reports it with this line or on its own; io_missed may be NULL to
 * drop it) and a new window starts. Returns true if the line may be logged,
 * false if it was counted as held back instead. */
bool gr_ratelim_allow(gr_ratelim *rl, uint64_t now_ms, uint64_t *io_missed);

/* Close the current window if it has ended by now_ms and return how many lines
 * it held back (0: none, or the window is still running). For a timer that
 * reports held-back lines when no further event comes. */
uint64_t gr_ratelim_flush(gr_ratelim *rl, uint64_t now_ms);

/* When the current window ends (monotonic ms), to arm that timer. */
uint64_t gr_ratelim_window_end(const gr_ratelim *rl);

#endif
