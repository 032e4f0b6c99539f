/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sd.h - girderd under systemd: the journal as the log's sink, sd_notify
 * readiness and stopping, and the watchdog's interval, all through libsystemd
 * (built against Debian's libsystemd-dev, loaded at start from libsystemd0).
 * A build without libsystemd (meson found none), or a host without the
 * library, keeps the same functions: the journal is never chosen,
 * notifications are not sent and the watchdog is off (docs/operations.md,
 * "systemd").
 *
 * Threading: gr_sd_open, gr_sd_journal_setup and gr_sd_watchdog_usec at
 * start-up, before threads start (they read the environment);
 * gr_sd_notify from any thread after gr_sd_open.
 */
#ifndef GR_SD_H
#define GR_SD_H

#include <stdbool.h>
#include <stdint.h>

/* Load libsystemd (once). Returns true if it is there: built with its headers
 * and libsystemd.so.0 found. Before threads start. */
bool gr_sd_open(void);

/* If stderr is the journal's stream (JOURNAL_STREAM names stderr's device and
 * inode, as systemd sets it for a service), send every log line to the
 * journal with sd_journal_send from now on: MESSAGE, PRIORITY (the level as a
 * syslog priority), GIRDER_MODULE, GIRDER_NODE (node, copied) and
 * GIRDER_<FIELD> for each structured field. Returns true if it did. */
bool gr_sd_journal_setup(const char *node);

/* sd_notify(0, state), e.g. "READY=1" or "STOPPING=1". 1 if sent, 0 if not
 * under a service manager (no NOTIFY_SOCKET) or no libsystemd, or -errno. */
int gr_sd_notify(const char *state);

/* The watchdog interval systemd asks for (WatchdogSec=, through WATCHDOG_USEC
 * and WATCHDOG_PID), in microseconds, or 0: no watchdog. */
uint64_t gr_sd_watchdog_usec(void);

#endif
