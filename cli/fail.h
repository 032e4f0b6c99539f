/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fail.h - what a failure means to the operator: the exit code scripts test,
 * the stable reason id (--json "error"), and the one-line human message.
 *
 * Exit codes (also in `girder --help` and docs/cli.md):
 *   0  ok
 *   1  remote error: the node answered the rpc with an error
 *   2  usage error: bad arguments or bad JSON
 *   3  node unreachable: no such host, refused, closed before the reply,
 *      a different node or protocol at that address, node busy (it refused
 *      the handshake for load: a Reject "busy")
 *   4  authentication failed: wrong cookie (or observer key), no usable
 *      cookie, or a node that takes no observers
 *   5  timeout (--timeout covers connect, handshake and reply)
 *   6  not allowed: connected with the observer key, which may only read,
 *      and the command would change something (the node's not_allowed)
 */
#ifndef GR_CLI_FAIL_H
#define GR_CLI_FAIL_H

#include "cli/conn.h"

enum {
    GR_CLI_EXIT_OK = 0,
    GR_CLI_EXIT_REMOTE = 1,
    GR_CLI_EXIT_USAGE = 2,
    GR_CLI_EXIT_UNREACHABLE = 3,
    GR_CLI_EXIT_AUTH = 4,
    GR_CLI_EXIT_TIMEOUT = 5,
    GR_CLI_EXIT_NOTALLOWED = 6,
};

/* The exit code for a remote error (the node answered status / reason):
 * GR_CLI_EXIT_NOTALLOWED for not_allowed, else GR_CLI_EXIT_REMOTE. Pure. */
int gr_cli_remote_exit(int status, const char *reason);

/* The exit code for a local failure. Pure. */
int gr_cli_fail_exit(const gr_cli_fail *f);

/* Stable reason id for --json output ("bad_cookie", "ECONNREFUSED", "timeout",
 * "resolve_failed", ...). Static storage. Pure. */
const char *gr_cli_fail_reason(const gr_cli_fail *f);

/* The human message, without the "girder: " prefix, e.g. "cannot connect to
 * a@127.0.0.2:4370: connection refused (is girderd running?)". `t` is the
 * target, `timeout_ms` the --timeout in force, `cookie_src` what the cookie
 * was read from (COOKIE stage; may be NULL). Returns a malloc'd string, or NULL
 * when out of memory. */
char *gr_cli_fail_message(const gr_cli_fail *f, const gr_cli_target *t, long timeout_ms,
                          const char *cookie_src);

/* Human message for a remote error: gr_strerror of the code the reason id
 * names, else of `status`, else "remote error". Static storage. Pure. */
const char *gr_cli_remote_message(int status, const char *reason);

#endif
