/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - leveled logging to stderr, one line per event, as text
 *   2026-11-23T09:16:33.123Z girderd[1234] info sched: started 2 schedulers
 * or, with gr_log_set_format(1, node) (log_format = json), as JSON lines
 *   {"ts":"2026-11-23T09:16:33.123Z","level":"info","node":"a@h","pid":1234,
 *    "module":"dist","event":"nodeup","peer":"b@h","msg":"nodeup b@h"}
 * (one line; structured fields from gr_log_fields between "module" and
 * "msg", which comes last so that a line cut at GR_LOG_LINE_MAX loses only
 * the end of its message and stays valid JSON). A sink (gr_log_set_sink)
 * takes every line instead of stderr: girderd's journald writer
 * (util/sd.c). The settings are process-wide state besides parsed
 * configuration: set once at start-up before threads start, read-only after.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef GR_LOG_H
#define GR_LOG_H

#include <stddef.h>
#include <stdint.h>

#define GR_LOG_LINE_MAX 2048 /* longest line written, newline included */

enum gr_log_level { GR_LOG_DEBUG, GR_LOG_INFO, GR_LOG_NOTICE, GR_LOG_WARN, GR_LOG_ERROR };

/* Parse "debug|info|notice|warn|error". 0 and *ret_level, or -EINVAL. */
int gr_log_parse_level(const char *s, enum gr_log_level *ret_level);
/* Set the minimum level and the program name shown in each line. Call before
 * threads start. */
void gr_log_setup(const char *prog, enum gr_log_level level);
/* Is a message at this level emitted? */
int gr_log_enabled(enum gr_log_level level);

/* One structured field of a log line: key (ASCII [a-z0-9_]) and value (any
 * bytes, NUL-terminated; escaped in JSON). */
typedef struct gr_log_field {
    const char *key;
    const char *val;
} gr_log_field;

/* Where lines go instead of stderr (NULL: stderr): fn gets the level, module,
 * the fields and the formatted message, on the logging thread; it must be
 * thread-safe. */
typedef void (*gr_log_sink_fn)(enum gr_log_level level, const char *module,
                               const gr_log_field *fields, size_t nfields, const char *msg);

/* JSON lines (json != 0) naming `node` (copied, may be NULL), or text. Call
 * before threads start. */
void gr_log_set_format(int json, const char *node);
/* Install a sink (see above). Call before threads start. */
void gr_log_set_sink(gr_log_sink_fn fn);
/* The level's name: "debug" ... "error". Static storage. */
const char *gr_log_level_name(enum gr_log_level level);

void gr_log(enum gr_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* gr_log with structured fields f[0..n) (JSON keys; text lines and the
 * journal get them too, as key=value after the message / GIRDER_KEY=value). */
void gr_log_fields(enum gr_log_level level, const char *module, const gr_log_field *f, size_t n,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Write one JSON log line (with its newline) for the given wall-clock time
 * (ms since the epoch) into buf[0..cap): the format above; strings escaped
 * per RFC 8259 (quote, backslash, control bytes as \u00XX, bytes that are
 * not UTF-8 as U+FFFD); msg cut short, never the structure, when the line
 * would not fit. node NULL: no "node" key; pid 0: no "pid" key. Returns the
 * length, 0 if cap cannot hold even the fields. Pure. */
size_t gr_log_json_line(char *buf, size_t cap, uint64_t wall_ms, enum gr_log_level level,
                        const char *node, int pid, const char *module, const gr_log_field *f,
                        size_t n, const char *msg);

/* Log a fatal programmer error with a backtrace, then abort. For proved
 * invariants only (style habit 8): never for network, disk or user input. */
_Noreturn void gr_panic_at(const char *file, int line, const char *what);
#define gr_panic(what) gr_panic_at(__FILE__, __LINE__, what)
#define gr_panic_unreachable() gr_panic("unreachable")

#define gr_debug(mod, ...) gr_log(GR_LOG_DEBUG, mod, __VA_ARGS__)
#define gr_info(mod, ...) gr_log(GR_LOG_INFO, mod, __VA_ARGS__)
#define gr_notice(mod, ...) gr_log(GR_LOG_NOTICE, mod, __VA_ARGS__)
#define gr_warn(mod, ...) gr_log(GR_LOG_WARN, mod, __VA_ARGS__)
#define gr_error(mod, ...) gr_log(GR_LOG_ERROR, mod, __VA_ARGS__)

#endif
