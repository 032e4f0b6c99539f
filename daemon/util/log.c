/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - the leveled logger declared in log.h: text or JSON lines on
 * stderr, or every line to a sink (journald, util/sd.c), and the pure JSON
 * line writer its tests pin.
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

/* Process-wide logger settings: written once at start-up (gr_log_setup,
 * gr_log_set_format, gr_log_set_sink) before any thread starts, read-only
 * afterwards (log.h). */
static struct {
    const char *prog;
    enum gr_log_level level;
    int json;
    char node[256];
    gr_log_sink_fn sink;
} log_cfg = {"girder", GR_LOG_INFO, 0, "", NULL};

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

const char *gr_log_level_name(enum gr_log_level level)
{
    return (unsigned)level < sizeof(level_names) / sizeof(level_names[0]) ? level_names[level]
                                                                          : "?";
}

void gr_log_setup(const char *prog, enum gr_log_level level)
{
    log_cfg.prog = prog;
    log_cfg.level = level;
}

void gr_log_set_format(int json, const char *node)
{
    log_cfg.json = json != 0;
    snprintf(log_cfg.node, sizeof(log_cfg.node), "%s", node ? node : "");
}

void gr_log_set_sink(gr_log_sink_fn fn)
{
    log_cfg.sink = fn;
}

int gr_log_enabled(enum gr_log_level level)
{
    return level >= log_cfg.level;
}

/* ---- JSON --------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p[0..len) (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t len)
{
    size_t n;
    uint32_t cp;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2, cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3, cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4, cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0; /* overlong, surrogate or out of range */
    }
    return n;
}

/* Append s as a JSON string body (no quotes) to buf at *at, never past
 * `limit`; stops before a character that would not fit whole. */
static void json_escape(char *buf, size_t *at, size_t limit, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);

    for (size_t i = 0; i < len;) {
        char tmp[8];
        const char *out = tmp;
        size_t olen, step = 1;
        unsigned char c = p[i];

        if (c == '"' || c == '\\') {
            tmp[0] = '\\', tmp[1] = (char)c, olen = 2;
        } else if (c == '\n') {
            out = "\\n", olen = 2;
        } else if (c == '\t') {
            out = "\\t", olen = 2;
        } else if (c == '\r') {
            out = "\\r", olen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            olen = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else if (c < 0x80) {
            tmp[0] = (char)c, olen = 1;
        } else if ((step = utf8_len(p + i, len - i)) == 0) {
            out = "\\ufffd", olen = 6, step = 1;
        } else {
            out = (const char *)p + i, olen = step;
        }
        if (*at + olen > limit) {
            return;
        }
        memcpy(buf + *at, out, olen);
        *at += olen;
        i += step;
    }
}

/* Append raw text if it fits whole; 0 or -1. */
static int put(char *buf, size_t *at, size_t limit, const char *s)
{
    size_t n = strlen(s);

    if (*at + n > limit) {
        return -1;
    }
    memcpy(buf + *at, s, n);
    *at += n;
    return 0;
}

/* Append "key":"escaped value" with a leading comma; -1 if it does not fit
 * whole (then *at is left as it was). */
static int put_pair(char *buf, size_t *at, size_t limit, const char *key, const char *val)
{
    size_t start = *at;

    if (put(buf, at, limit, ",\"") < 0 || put(buf, at, limit, key) < 0 ||
        put(buf, at, limit, "\":\"") < 0) {
        *at = start;
        return -1;
    }
    json_escape(buf, at, limit, val); /* a field too long is cut, like msg */
    if (put(buf, at, limit, "\"") < 0) {
        *at = start;
        return -1;
    }
    return 0;
}

static void format_ts(char *out, size_t cap, uint64_t wall_ms)
{
    time_t sec = (time_t)(wall_ms / 1000);
    struct tm tm;

    gmtime_r(&sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000));
}

size_t gr_log_json_line(char *buf, size_t cap, uint64_t wall_ms, enum gr_log_level level,
                        const char *node, int pid, const char *module, const gr_log_field *f,
                        size_t n, const char *msg)
{
    char ts[96], num[16];
    size_t at = 0, limit;

    if (cap < 4) {
        return 0;
    }
    limit = cap - 3; /* room for the closing "}\n (msg's quote, brace, newline) */
    format_ts(ts, sizeof(ts), wall_ms);
    if (put(buf, &at, limit, "{\"ts\":\"") < 0 || put(buf, &at, limit, ts) < 0 ||
        put(buf, &at, limit, "\"") < 0 ||
        put_pair(buf, &at, limit, "level", gr_log_level_name(level)) < 0) {
        return 0;
    }
    if (node != NULL && node[0] != '\0' && put_pair(buf, &at, limit, "node", node) < 0) {
        return 0;
    }
    if (pid != 0) {
        snprintf(num, sizeof(num), "%d", pid);
        if (put(buf, &at, limit, ",\"pid\":") < 0 || put(buf, &at, limit, num) < 0) {
            return 0;
        }
    }
    if (put_pair(buf, &at, limit, "module", module ? module : "") < 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (f[i].key != NULL && put_pair(buf, &at, limit, f[i].key, f[i].val ? f[i].val : "") < 0) {
            return 0;
        }
    }
    if (put(buf, &at, limit, ",\"msg\":\"") < 0) {
        return 0;
    }
    json_escape(buf, &at, limit, msg ? msg : "");
    memcpy(buf + at, "\"}\n", 3);
    return at + 3;
}

/* ---- writing -------------------------------------------------------------------------- */

static void emit(enum gr_log_level level, const char *module, const gr_log_field *f, size_t nf,
                 const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void emit(enum gr_log_level level, const char *module, const gr_log_field *f, size_t nf,
                 const char *fmt, va_list ap)
{
    char msg[GR_LOG_LINE_MAX], line[GR_LOG_LINE_MAX];
    struct timespec ts;
    size_t n;
    int m;

    if (!gr_log_enabled(level)) {
        return;
    }
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0) {
        return;
    }
    if (log_cfg.sink != NULL) {
        log_cfg.sink(level, module, f, nf, msg);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    if (log_cfg.json) {
        n = gr_log_json_line(line, sizeof(line),
                             (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u, level,
                             log_cfg.node, (int)getpid(), module, f, nf, msg);
    } else {
        char stamp[96];
        int k;

        format_ts(stamp, sizeof(stamp),
                  (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
        k = snprintf(line, sizeof(line) - 1, "%s %s[%d] %s %s: %s", stamp, log_cfg.prog,
                     (int)getpid(), level_names[level], module, msg);
        n = k < 0 ? 0 : (size_t)k < sizeof(line) - 1 ? (size_t)k : sizeof(line) - 2;
        for (size_t i = 0; i < nf && n < sizeof(line) - 2; i++) {
            k = snprintf(line + n, sizeof(line) - 1 - n, " %s=%s", f[i].key, f[i].val);
            n = k < 0 ? n : n + (size_t)k < sizeof(line) - 1 ? n + (size_t)k : sizeof(line) - 2;
        }
        if (n > 0) {
            line[n++] = '\n';
        }
    }
    if (n > 0 && write(STDERR_FILENO, line, n) < 0) {
        /* nothing sensible to do when stderr is gone */
    }
}

void gr_log(enum gr_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(level, module, NULL, 0, fmt, ap);
    va_end(ap);
}

void gr_log_fields(enum gr_log_level level, const char *module, const gr_log_field *f, size_t n,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(level, module, f, n, fmt, ap);
    va_end(ap);
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
