/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - leveled logging to stderr, one line per event:
 *   2026-11-23T09:16:33.123Z girderd[1234] info sched: started 2 schedulers
 * The level is the one piece of process-wide state besides parsed configuration:
 * set once at start-up (gr_log_set_level) before threads start, read-only after.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef GR_LOG_H
#define GR_LOG_H

enum gr_log_level { GR_LOG_DEBUG, GR_LOG_INFO, GR_LOG_NOTICE, GR_LOG_WARN, GR_LOG_ERROR };

/* Parse "debug|info|notice|warn|error". 0 and *ret_level, or -EINVAL. */
int gr_log_parse_level(const char *s, enum gr_log_level *ret_level);
/* Set the minimum level and the program name shown in each line. Call before
 * threads start. */
void gr_log_setup(const char *prog, enum gr_log_level level);
/* Is a message at this level emitted? */
int gr_log_enabled(enum gr_log_level level);

void gr_log(enum gr_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
