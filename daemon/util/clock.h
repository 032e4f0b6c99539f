/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock.h - the daemon's one monotonic clock. Deadlines, uptimes, detector
 * silences and benchmark samples all read CLOCK_MONOTONIC through these, so
 * their values compare across modules. (Wall-clock time, for logs and pids'
 * creation seed, is the runtime's gr_now_ms.) Any thread.
 */
#ifndef GR_CLOCK_H
#define GR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t gr_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t gr_clock_us(void)
{
    return gr_clock_ns() / 1000u;
}

static inline uint64_t gr_clock_ms(void)
{
    return gr_clock_ns() / 1000000u;
}

#endif
