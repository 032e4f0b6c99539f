/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd.h - the CLI's commands: one {name, fn, help} table that drives dispatch,
 * `girder --help` and `girder COMMAND --help`.
 *
 * A command checks its arguments locally first (a usage error never needs a
 * cookie or a node), then makes exactly one rpc through cli/conn.h, prints the
 * result and returns the process exit code (cli/fail.h).
 */
#ifndef GR_CLI_CMD_H
#define GR_CLI_CMD_H

#include "cli/conn.h"

#include <msgpack.h>

#include <stdio.h>

#define GR_CLI_TIMEOUT_DEFAULT 5000                        /* --timeout default, ms */
#define GR_CLI_TIMEOUT_MAX 3600000                         /* --timeout ceiling, ms (one hour) */
#define GR_CLI_MULTICALL_NODES_MAX 1024                    /* most names in multicall --nodes */
#define GR_CLI_OBSERVER_KEY_ENV "GIRDER_OBSERVER_KEY_FILE" /* observer key file */

/* Everything global options decided; read-only for commands. */
typedef struct gr_cli_ctx {
    gr_cli_target target;          /* the node to contact (-n) */
    const char *cookie_file;       /* --cookie-file, or NULL: gr_cookie_resolve's order */
    const char *observer_key_file; /* --observer-key-file or $GIRDER_OBSERVER_KEY_FILE:
                                    * connect as an observer (read only); NULL: cookie */
    int json;                      /* --json: one JSON document on stdout */
    long timeout_ms;               /* --timeout */
    FILE *out;                     /* results (stdout) */
    FILE *err;                     /* human errors (stderr) */
} gr_cli_ctx;

/* One command. */
typedef struct gr_cli_cmd {
    const char *name;    /* as typed */
    const char *args;    /* argument synopsis, "" if none */
    int min_args;        /* fewest arguments */
    int max_args;        /* most arguments, -1: any */
    const char *summary; /* one line for `girder --help` */
    const char *help;    /* paragraph for `girder COMMAND --help` */
    int (*fn)(const gr_cli_ctx *ctx, int argc, char **argv); /* returns the exit code */
} gr_cli_cmd;

/* The command called `name`, or NULL. */
const gr_cli_cmd *gr_cli_cmd_find(const char *name);

/* Run cmd with its arguments argv[0..argc) (the command name excluded): checks
 * the argument count, then cmd->fn. Returns the exit code. */
int gr_cli_cmd_run(const gr_cli_cmd *cmd, const gr_cli_ctx *ctx, int argc, char **argv);

/* Report a usage error: "girder: MESSAGE" and a hint on ctx->err, or the JSON
 * error document on ctx->out with --json. Returns GR_CLI_EXIT_USAGE. */
int gr_cli_usage_error(const gr_cli_ctx *ctx, const char *cmd, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Report an error whose message is ready: "girder: MSG" on ctx->err, or the
 * JSON error document {"error": reason, "message": msg} with --json. */
void gr_cli_report(const gr_cli_ctx *ctx, const char *reason, const char *msg);

/* Report the failed call or connection f (gr_cli_fail_message, as for the
 * one rpc of `girder rpc`); returns its exit code (gr_cli_fail_exit). */
int gr_cli_report_fail(const gr_cli_ctx *ctx, const gr_cli_fail *f);

/* Report the remote error in rep (status < 0) as coming from node: "NODE:
 * MESSAGE (REASON)", or the observer key's "not allowed". Returns its exit code
 * (gr_cli_remote_exit). */
int gr_cli_report_remote(const gr_cli_ctx *ctx, const char *node, const gr_cli_reply *rep);

/* Read the cookie and connect to ctx->target before deadline_ms. Returns
 * GR_CLI_EXIT_OK and *ret_c (close with gr_cli_conn_close), or reports the
 * failure and returns its exit code. */
int gr_cli_open(const gr_cli_ctx *ctx, int64_t deadline_ms, gr_cli_conn **ret_c);

/* One rpc on c (several may follow on the same connection). Returns
 * GR_CLI_EXIT_OK and the reply (status 0) in *ret_r (caller clears), or
 * reports the failure (remote errors as coming from err_node, or the peer if
 * NULL) and returns its exit code. */
int gr_cli_rpc(const gr_cli_ctx *ctx, gr_cli_conn *c, const char *err_node, const char *module,
               const char *function, const msgpack_sbuffer *args, int64_t deadline_ms,
               gr_cli_reply *ret_r);

/* `girder --help`: synopsis, options, commands, exit codes. */
void gr_cli_usage(FILE *f);

/* `girder COMMAND --help`. */
void gr_cli_cmd_help(const gr_cli_cmd *cmd, FILE *f);

#endif
