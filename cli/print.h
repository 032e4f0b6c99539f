/* SPDX-License-Identifier: Apache-2.0 */
/*
 * print.h - how results look: aligned tables for people, single JSON
 * documents for scripts, and the error line in both forms.
 *
 * Nothing here talks to a node; every function writes to the FILE it is given
 * (stdout/stderr in the program, memory streams in tests).
 */
#ifndef GR_CLI_PRINT_H
#define GR_CLI_PRINT_H

#include <msgpack.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#define GR_CLI_TABLE_COLS_MAX 9 /* widest table (girder tables) */

/* A table being built: cells are copied. Opaque. */
typedef struct gr_cli_table gr_cli_table;

/* New table with ncols (1..GR_CLI_TABLE_COLS_MAX) columns, their headers, and
 * `align`, one char per column: 'l' left, 'r' right. Returns 0, -EINVAL, -ENOMEM. */
int gr_cli_table_new(int ncols, const char *const *headers, const char *align,
                     gr_cli_table **ret_t);

/* Append a row of ncols cells (NULL cell: "-"). 0 or -ENOMEM (table unchanged). */
int gr_cli_table_row(gr_cli_table *t, const char *const *cells);

/* Print the header and rows, columns padded to their widest cell and separated
 * by two spaces; no trailing spaces. */
void gr_cli_table_print(const gr_cli_table *t, FILE *f);

/* Free. NULL-safe. */
void gr_cli_table_free(gr_cli_table *t);

/* "1d2h", "3h4m", "5m6s", "7.8s", "120ms": a compact duration. Returns buf. */
char *gr_cli_duration(uint64_t ms, char *buf, size_t cap);

/* The `girder nodes` table (NAME HOST:PORT STATE CREATION SINCE) from the
 * node.list result. Returns 0, or GR_EBADTERM (nothing printed) if `o` is not
 * an array of maps; unknown or missing fields print as "-". */
int gr_cli_print_nodes(FILE *f, const msgpack_object *o);

/* The `girder stats` two-column table (NAME VALUE) from a map. Returns 0,
 * GR_EBADTERM (nothing printed) if `o` is not a map, or -ENOMEM. */
int gr_cli_print_stats(FILE *f, const msgpack_object *o);

/* The `girder info` two-column table (KEY VALUE) of a process info map:
 * strings and pids as text, other values as compact JSON. 0, GR_EBADTERM
 * (nothing printed) if `o` is not a map, or -ENOMEM. */
int gr_cli_print_info(FILE *f, const msgpack_object *o);

/* The `girder ps` table (PID NAME BEHAVIOUR STATUS MAILBOX MEMORY) from the
 * proc.list result. 0, or GR_EBADTERM (nothing printed) if `o` is not an array
 * of maps; missing fields (and a nil name) print as "-". */
int gr_cli_print_procs(FILE *f, const msgpack_object *o);

/* The `girder groups` table from pubsub.groups' [{"name", "members"}]: SCOPE
 * JOINS (scope_given false: the scopes) or GROUP MEMBERS. 0, or GR_EBADTERM
 * (nothing printed) if `o` is not an array of maps, or -ENOMEM. */
int gr_cli_print_groups(FILE *f, const msgpack_object *o, bool scope_given);

/* Error as one JSON document: {"error": reason, "message": message}\n.
 * Returns 0 or -ENOMEM. */
int gr_cli_print_json_error(FILE *f, const char *reason, const char *message);

#endif
