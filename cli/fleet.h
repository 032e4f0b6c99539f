/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fleet.h - the fleet-wide views of `girder` (nodes, ps, stats) and forget:
 * the contacted node fans each question out to every member with
 * rpc.multicall and a deadline, so one slow or dead member is shown as
 * `timeout` or `down` and never holds the command past --timeout.
 *
 * The pure pieces (process rows, their filters and sort orders, the compact
 * number formats, the stats layout) are declared here for the unit tests
 * (fleet_test.c); the commands are gr_cli_cmd_* functions for cmd.c's table.
 */
#ifndef GR_CLI_FLEET_H
#define GR_CLI_FLEET_H

#include "cli/cmd.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GR_CLI_PS_FIRST_PAGE 1024 /* processes per node in the fan-out's first page */
#define GR_CLI_PS_PAGE                                                                             \
    32768 /* processes per later page (proc.snapshot cursor): a page of about 3.5 MB, 31 pages     \
             (table passes) for a million */
#define GR_CLI_WIDTH 80 /* human output fits this many columns */

/* A sort key of `girder ps --sort`. */
typedef enum gr_cli_ps_field {
    GR_CLI_PS_PID,       /* node, then pid (the default order) */
    GR_CLI_PS_NODE,      /* same */
    GR_CLI_PS_NAME,      /* registered name, unnamed last */
    GR_CLI_PS_BEHAVIOUR, /* behaviour name */
    GR_CLI_PS_STATUS,    /* running, runnable, waiting */
    GR_CLI_PS_MAILBOX,   /* numbers: largest first */
    GR_CLI_PS_HANDLED,
    GR_CLI_PS_MEMORY,
    GR_CLI_PS_WORK,
} gr_cli_ps_field;

/* One process of a listing. Strings are malloc'd; clear with gr_cli_ps_row_clear. */
typedef struct gr_cli_ps_row {
    uint64_t id;      /* pid id (serial << 8 | scheduler): the pid order within a node */
    uint32_t node;    /* index of its node in the caller's node list */
    char *pid;        /* "<NODE.CREATION.SERIAL.SCHED>" */
    char *name;       /* registered name, or NULL */
    char *behaviour;  /* behaviour name ("" if none) */
    char status[12];  /* running, runnable, waiting */
    uint64_t mailbox; /* messages waiting */
    uint64_t handled; /* messages handled */
    uint64_t memory;  /* bytes */
    uint64_t work;    /* reductions-like count (docs/runtime.md) */
} gr_cli_ps_row;

/* The field called s ("mailbox", "mem" and "memory", ...). 0 or -EINVAL. Pure. */
int gr_cli_ps_field_parse(const char *s, gr_cli_ps_field *ret_f);

/* A row from one proc.snapshot entry (a map with "pid", "name", "behaviour",
 * "status", "mailbox", "handled", "memory", "work"; missing numbers are 0) of
 * node index `node`. 0, GR_EBADTERM (not a map, or no pid), -ENOMEM. */
int gr_cli_ps_row_from(const msgpack_object *entry, uint32_t node, gr_cli_ps_row *ret_r);

/* Free a row's strings and zero it. NULL-safe. */
void gr_cli_ps_row_clear(gr_cli_ps_row *r);

/* Does the row pass the filters? name_glob / beh_glob: fnmatch(3) patterns
 * against the registered name (an unnamed process never matches) and the
 * behaviour; NULL: no filter. Pure. */
bool gr_cli_ps_match(const gr_cli_ps_row *r, const char *name_glob, const char *beh_glob);

/* Sort rows[0..n) by field f (ties: node index, then pid). Pure. */
void gr_cli_ps_sort(gr_cli_ps_row *rows, size_t n, gr_cli_ps_field f);

/* Keep the `top` first rows of rows[0..n) in field f's order: sorts, clears
 * the rest and returns how many are kept (min(n, top)). Pure. */
size_t gr_cli_ps_trim(gr_cli_ps_row *rows, size_t n, gr_cli_ps_field f, size_t top);

/* "999", "1.2K", "34K", "5.6M", "7.8G": a compact count (base 1000), or with
 * binary = true a byte size (base 1024). Returns buf. Pure. */
char *gr_cli_compact(uint64_t v, bool binary, char *buf, size_t cap);

/* The human ps header and one row (fixed columns, at most GR_CLI_WIDTH wide;
 * long names are cut with '~'). node: the row's node name. */
void gr_cli_ps_print_header(FILE *f);
void gr_cli_ps_print_row(FILE *f, const gr_cli_ps_row *r, const char *node);

/* One row as a JSON object (the proc.snapshot keys plus "node"), no newline.
 * 0 or -ENOMEM. */
int gr_cli_ps_print_json(FILE *f, const gr_cli_ps_row *r, const char *node);

/* The fleet stats: `counters` and `about` are rpc.multicall results ({Node:
 * {"ok": Map} | {"error": Id}}) of sys.counters and node.about (about may be
 * NULL). Prints one column per node, as many columns per block as fit in
 * `width`: a "status" row, uptime and version, then every counter, then the
 * limits as USED/LIMIT. 0, GR_EBADTERM (counters not such a map: nothing
 * printed), -ENOMEM. */
int gr_cli_stats_print(FILE *f, const msgpack_object *counters, const msgpack_object *about,
                       int width);

/* The fan-out for other commands (top.c): rpc.multicall of module.fn(args)
 * (one packed msgpack array of alen bytes) on every member, or on the
 * contacted node only; each node gets half of what is left before deadline
 * (at most 2 s). Returns an exit code; on success *ret_rep and *ret_u hold
 * the {Node: {"ok": R} | {"error": Id}} map (caller destroys both). quiet: a
 * remote error or an answer of another shape is not reported and returns -1.
 * Failures to reach c are reported on ctx->err. Caller's thread. */
int gr_cli_fleet_fan_out(const gr_cli_ctx *ctx, gr_cli_conn *c, int64_t deadline, bool only,
                         bool quiet, const char *module, const char *fn, const char *args,
                         size_t alen, gr_cli_reply *ret_rep, msgpack_unpacked *ret_u);

/* Entry i of a fan-out's map: the node's name into node[cap], and *ret_ok its
 * answer, or NULL and *ret_err its reason ("down", "timeout", ...; static or
 * thread-local storage). false if m is not such a map or i is past its end. */
bool gr_cli_fleet_entry(const msgpack_object *m, uint32_t i, char *node, size_t cap,
                        const msgpack_object **ret_ok, const char **ret_err);

/* The commands (cmd.c's table). */
int gr_cli_cmd_nodes(const gr_cli_ctx *ctx, int argc, char **argv);
int gr_cli_cmd_ps(const gr_cli_ctx *ctx, int argc, char **argv);
int gr_cli_cmd_stats(const gr_cli_ctx *ctx, int argc, char **argv);
int gr_cli_cmd_forget(const gr_cli_ctx *ctx, int argc, char **argv);
int gr_cli_cmd_info(const gr_cli_ctx *ctx, int argc, char **argv);
int gr_cli_cmd_trace(const gr_cli_ctx *ctx, int argc, char **argv);

#endif
