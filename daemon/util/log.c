/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - the leveled stderr logger declared in log.h.
 */
#include "util/log.h"

#include <errno.h>
#include <execinfo.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Process-wide logger settings: written once by gr_log_setup before any thread
 * starts, read-only afterwards (log.h). */
static struct {
    const char *prog;
    enum gr_log_level level;
} log_cfg = {"girder", GR_LOG_INFO};

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error"};

int gr_log_parse_level(const char *s, enum gr_log_level *ret_level)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *ret_level = (enum gr_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void gr_log_setup(const char *prog, enum gr_log_level level)
{
    log_cfg.prog = prog;
    log_cfg.level = level;
}

int gr_log_enabled(enum gr_log_level level)
{
    return level >= log_cfg.level;
}

void gr_log(enum gr_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    int n, m;
    va_list ap;

    if (!gr_log_enabled(level)) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s %s: ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 log_cfg.prog, (int)getpid(), level_names[level], module);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    n += m;
    if ((size_t)n > sizeof(line) - 2) {
        n = (int)sizeof(line) - 2; /* truncated: keep the newline */
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing sensible to do when stderr is gone */
    }
}

void gr_panic_at(const char *file, int line, const char *what)
{
    void *frames[64];
    int n;

    gr_log(GR_LOG_ERROR, "panic", "%s at %s:%d", what, file, line);
    n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    abort();
}
