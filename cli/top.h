/* SPDX-License-Identifier: Apache-2.0 */
/*
 * top.h - `girder top`: a live terminal view of the fleet (nodes, their
 * message rates and scheduler utilisation, the busiest processes) redrawn
 * every -i seconds with ncurses, or one text frame with --once.
 *
 * The pure pieces (a sample's parsing, the rates between two samples, the
 * sort orders and the frame's text) are declared here for the unit tests
 * (top_test.c); the terminal loop lives in top.c only.
 */
#ifndef GR_CLI_TOP_H
#define GR_CLI_TOP_H

#include "cli/cmd.h"
#include "cli/fleet.h"
#include "proto/nodename.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GR_CLI_TOP_INTERVAL_MS 2000 /* -i default */

/* What the process rows are sorted by (largest first). */
typedef enum gr_cli_top_key {
    GR_CLI_TOP_WORK,    /* work (reductions-like) per second: the default */
    GR_CLI_TOP_RATE,    /* messages handled per second */
    GR_CLI_TOP_MAILBOX, /* mailbox length */
    GR_CLI_TOP_MEMORY,  /* bytes */
} gr_cli_top_key;

/* The proc.snapshot arguments of one refresh into buf: each node's
 * GR_CLI_PS_FIRST_PAGE processes ranked on the node by the cumulative counter
 * behind k ("work", "handled", "mailbox", "memory"). Its length. Pure. */
size_t gr_cli_top_ps_args(gr_cli_top_key k, char buf[16]);

/* One node of a sample. */
typedef struct gr_cli_top_node {
    char name[GR_NODENAME_MAX + 1]; /* as the fan-out named it */
    char state[24];                 /* "ok", "timeout", "down", another reason id */
    bool ok;                        /* its counters answered */
    bool has_sched;                 /* it reports sched_busy_us / sched_wall_us */
    uint64_t frames_in;             /* dist frames received, cumulative */
    uint64_t frames_out;            /* dist frames sent, cumulative */
    uint64_t handled;               /* messages handled by its processes, cumulative */
    uint64_t processes;             /* live processes */
    uint64_t memory;                /* resident bytes (sys.memory rss), 0: unknown */
    uint64_t busy_us;               /* scheduler busy time, summed over schedulers */
    uint64_t wall_us;               /* scheduler wall time, summed over schedulers */
    double in_s, out_s, handled_s;  /* per second since the previous sample; < 0: unknown */
    double util;                    /* scheduler busy fraction since then (0..1); < 0: unknown */
} gr_cli_top_node;

/* One process of a sample. */
typedef struct gr_cli_top_proc {
    gr_cli_ps_row row;    /* row.node: index in the sample's nodes */
    double msg_s, work_s; /* per second since the previous sample; < 0: new */
} gr_cli_top_proc;

/* What one refresh saw. Owned by its caller; clear with gr_cli_top_sample_clear. */
typedef struct gr_cli_top_sample {
    int64_t t_ms;           /* CLOCK_MONOTONIC ms when the counters arrived */
    gr_cli_top_node *nodes; /* malloc'd */
    size_t nnodes;
    gr_cli_top_proc *procs; /* malloc'd, rows own their strings */
    size_t nprocs;
} gr_cli_top_sample;

/* Fill s's nodes from a sys.counters fan-out map ({Node: {"ok": Map} |
 * {"error": Id}}) and, when memory is not NULL, a sys.memory fan-out map.
 * Replaces any nodes s had. 0, GR_EBADTERM (counters not such a map),
 * -ENOMEM. Pure. */
int gr_cli_top_take_nodes(gr_cli_top_sample *s, const msgpack_object *counters,
                          const msgpack_object *memory);

/* Add the processes of a proc.snapshot fan-out map to s (its nodes must be
 * taken first; entries of nodes not in s, and malformed entries, are
 * skipped). 0 or -ENOMEM. Pure. */
int gr_cli_top_take_procs(gr_cli_top_sample *s, const msgpack_object *snapshots);

/* Free what s holds and zero it. NULL-safe. */
void gr_cli_top_sample_clear(gr_cli_top_sample *s);

/* The busy fraction between two readings of a scheduler's cumulative busy
 * and wall time: (busy1 - busy0) / (wall1 - wall0) clamped to 0..1, or -1
 * when the wall time did not advance or went back (a restarted node). Pure. */
double gr_cli_top_util(uint64_t busy0, uint64_t wall0, uint64_t busy1, uint64_t wall1);

/* Compute cur's rates from prev (NULL: all unknown): nodes matched by name,
 * processes by node name and pid. Sorts prev's processes (by node, pid). */
void gr_cli_top_rates(gr_cli_top_sample *prev, gr_cli_top_sample *cur);

/* Sort s's processes by key (ties: node, then pid). Pure. */
void gr_cli_top_sort(gr_cli_top_sample *s, gr_cli_top_key key);

/* The key named by a key press or a --sort value ('w' / "work", 'r' /
 * "rate", 'm' / "mailbox", 'M' / "memory"). 0 or -EINVAL. Pure. */
int gr_cli_top_key_parse(const char *s, gr_cli_top_key *ret_k);

/* How to lay out a frame. */
typedef struct gr_cli_top_view {
    const char *contacted; /* the node asked (title) */
    long interval_ms;      /* -i (title) */
    gr_cli_top_key key;    /* sort order (title) */
    size_t max_nodes;      /* node rows at most */
    size_t max_procs;      /* process rows at most */
} gr_cli_top_view;

/* Write one frame of s (processes sorted already) as text lines, each at
 * most GR_CLI_WIDTH columns: the title, the node table, a blank line and
 * the process table. *ret_hdr (may be NULL) gets the line numbers of the
 * two table headers. Returns the number of lines written. */
size_t gr_cli_top_render(FILE *f, const gr_cli_top_sample *s, const gr_cli_top_view *v,
                         size_t ret_hdr[2]);

/* `girder top` (cmd.c's table). */
int gr_cli_cmd_top(const gr_cli_ctx *ctx, int argc, char **argv);

#endif
