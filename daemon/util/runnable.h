/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runnable.h - how busy the whole machine is, in threads wanting a CPU: the
 * larger of the runnable threads right now (the fourth field of
 * /proc/loadavg, "R/T": running or waiting for a CPU) and the one-minute load
 * average rounded up (the first field). The dist loop reads it when it has
 * been preempted, to tell foreign load from its own hand-offs: with two nodes
 * on two CPUs the threads of a round trip preempt each other (a spinner, the
 * thread it woke, the other node's spinner: three runnable, a load average
 * below three), beside a parallel build twenty are. The instant count alone
 * swings from one read to the next under load (a read between two compiler
 * jobs sees few), the average alone lags a minute behind; the larger of the
 * two is low only when both are. A count of involuntary context switches
 * alone cannot tell the two apart (docs/benchmarks.md, "Latency tails": it
 * keeps the spin off on a quiet machine too). Each reader keeps its own
 * descriptor; any thread.
 */
#ifndef GR_RUNNABLE_H
#define GR_RUNNABLE_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A descriptor for /proc/loadavg, or -errno (no procfs). Close it with
 * close(2). */
static inline int gr_runnable_open(void)
{
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);

    return fd < 0 ? -errno : fd;
}

/* Parse "<avg1> <avg5> <avg15> <runnable>/<threads> <last pid>" into
 * *ret_n, the larger of <runnable> and <avg1> rounded up; 0, or -EIO for
 * anything else (then *ret_n is untouched). Pure. */
static inline int gr_runnable_parse(const char *text, unsigned *ret_n)
{
    const char *p = text;
    char *end;
    unsigned long n, avg;

    errno = 0;
    avg = strtoul(text, &end, 10); /* integer part; any fraction rounds up */
    if (end == text || errno != 0 || avg >= UINT32_MAX) {
        return -EIO;
    }
    if (*end == '.' && strspn(end + 1, "0") < strspn(end + 1, "0123456789")) {
        avg++;
    }
    for (int field = 0; field < 3; field++) {
        if ((p = strchr(p, ' ')) == NULL) {
            return -EIO;
        }
        p++;
    }
    errno = 0;
    n = strtoul(p, &end, 10);
    if (end == p || *end != '/' || errno != 0 || n > UINT32_MAX) {
        return -EIO;
    }
    *ret_n = (unsigned)(n > avg ? n : avg);
    return 0;
}

/* How busy the machine is (above; the caller among the runnable) into
 * *ret_n; 0 or -errno (then *ret_n is untouched). One pread(2) of fd. */
static inline int gr_runnable_read(int fd, unsigned *ret_n)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0) {
        return n < 0 ? -errno : -EIO;
    }
    buf[n] = '\0';
    return gr_runnable_parse(buf, ret_n);
}

#endif
