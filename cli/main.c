/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - `girder`, the operator CLI: global options, the choice of node and
 * command, and the process exit code. The commands themselves are in cmd.c,
 * the connection in conn.c, and what each failure means in fail.c.
 *
 * Global options come before the command (getopt stops at the first
 * non-option), so JSON arguments such as -1 reach `rpc` untouched.
 */
#include "cli/cmd.h"
#include "cli/fail.h"
#include "gr_version.h"
#include "proto/err.h"
#include "proto/handshake.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_COOKIE_FILE = 256, OPT_JSON, OPT_TIMEOUT, OPT_VERSION, OPT_OBSERVER_KEY_FILE };

static const struct option LONG_OPTS[] = {
    {"node", required_argument, NULL, 'n'},
    {"cookie-file", required_argument, NULL, OPT_COOKIE_FILE},
    {"observer-key-file", required_argument, NULL, OPT_OBSERVER_KEY_FILE},
    {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Does --json appear among the global options? (Errors in earlier options are
 * then reported as JSON too.) */
static int wants_json(int argc, char **argv)
{
    for (int i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            return 1;
        }
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "--node") == 0 ||
            strcmp(argv[i], "--cookie-file") == 0 || strcmp(argv[i], "--timeout") == 0 ||
            strcmp(argv[i], "--observer-key-file") == 0) {
            i++; /* skip the option's value */
        }
    }
    return 0;
}

static int parse_timeout(const char *s, long *ret_ms)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < 1 || v > GR_CLI_TIMEOUT_MAX) {
        return -EINVAL;
    }
    *ret_ms = v;
    return 0;
}

int main(int argc, char **argv)
{
    gr_cli_ctx ctx = {.timeout_ms = GR_CLI_TIMEOUT_DEFAULT, .out = stdout, .err = stderr};
    const char *node = getenv(GR_CLI_NODE_ENV), *node_from = GR_CLI_NODE_ENV;
    const gr_cli_cmd *cmd;
    int opt, r, ex;

    ctx.json = wants_json(argc, argv);
    if (node == NULL || node[0] == '\0') {
        node = GR_CLI_NODE_DEFAULT;
        node_from = "the default node";
    }
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:n:h", LONG_OPTS, NULL)) != -1) {
        switch (opt) {
        case 'n':
            node = optarg;
            node_from = "-n";
            break;
        case OPT_COOKIE_FILE:
            ctx.cookie_file = optarg;
            break;
        case OPT_OBSERVER_KEY_FILE:
            ctx.observer_key_file = optarg;
            break;
        case OPT_JSON:
            ctx.json = 1;
            break;
        case OPT_TIMEOUT:
            if (parse_timeout(optarg, &ctx.timeout_ms) < 0) {
                return gr_cli_usage_error(&ctx, NULL,
                                          "--timeout: '%s' is not a number of milliseconds "
                                          "(1..%d)",
                                          optarg, GR_CLI_TIMEOUT_MAX);
            }
            break;
        case 'h':
            gr_cli_usage(stdout);
            return GR_CLI_EXIT_OK;
        case OPT_VERSION:
            printf("girder %s (protocol %d)\n", GIRDER_VERSION, GR_PROTO_VERSION);
            return GR_CLI_EXIT_OK;
        case ':':
            return gr_cli_usage_error(&ctx, NULL, "option '%s' needs a value", argv[optind - 1]);
        case '?':
        default:
            if (optopt != 0 && optopt < 256) {
                return gr_cli_usage_error(&ctx, NULL, "unknown option '-%c'", optopt);
            }
            return gr_cli_usage_error(&ctx, NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    /* the observer key: --observer-key-file, else $GIRDER_OBSERVER_KEY_FILE
     * unless --cookie-file asked for the cookie */
    if (ctx.observer_key_file == NULL && ctx.cookie_file == NULL) {
        const char *e = getenv(GR_CLI_OBSERVER_KEY_ENV);

        ctx.observer_key_file = e != NULL && e[0] != '\0' ? e : NULL;
    }
    if (optind >= argc) {
        return gr_cli_usage_error(&ctx, NULL,
                                  "no command given (ping, nodes, join, leave, "
                                  "rpc, stats, send, call, spawn, ps, info, kill)");
    }
    if ((cmd = gr_cli_cmd_find(argv[optind])) == NULL) {
        return gr_cli_usage_error(&ctx, NULL, "unknown command '%s'", argv[optind]);
    }
    if (optind + 1 < argc &&
        (strcmp(argv[optind + 1], "--help") == 0 || strcmp(argv[optind + 1], "-h") == 0)) {
        gr_cli_cmd_help(cmd, stdout);
        return GR_CLI_EXIT_OK;
    }
    if ((r = gr_cli_target_parse(node, &ctx.target)) < 0) {
        return gr_cli_usage_error(&ctx, NULL,
                                  r == -EINVAL ? "%s: bad port in '%s' (expected 1..65535)"
                                               : "%s: '%s' is not a node name "
                                                 "(NAME@HOST[:PORT])",
                                  node_from, node);
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "girder: cannot initialise libsodium\n");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    ex = gr_cli_cmd_run(cmd, &ctx, argc - optind - 1, argv + optind + 1);
    if (fflush(stdout) != 0 && ex == 0) {
        ex = GR_CLI_EXIT_UNREACHABLE; /* e.g. stdout closed: do not claim success */
    }
    return ex;
}
