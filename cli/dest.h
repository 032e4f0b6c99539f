/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dest.h - a DEST argument (send, call, info, kill): where a process is.
 *
 *   "<NODE.CREATION.SERIAL.SCHED>"  a pid; it lives on NODE
 *   "NAME@NODE"                     NAME registered on NODE: split at the first
 *                                   '@' ("worker@b@10.0.0.2" is worker on
 *                                   b@10.0.0.2)
 *   "NAME"                          NAME registered on the contacted node
 *
 * NAME is 1..255 bytes without control characters, spaces or '@'. A string that
 * starts with '<' and ends with '>' must be a complete pid. The CLI routes by the
 * destination's node (cmd.c): proc.FN directly when it is the contacted node,
 * else rpc.call(NODE, "proc", FN, ...) through it.
 *
 * Pure functions; no state.
 */
#ifndef GR_CLI_DEST_H
#define GR_CLI_DEST_H

#include "proto/nodename.h"
#include "proto/term.h"

#include <msgpack.h>
#include <stdint.h>

typedef enum gr_cli_dest_kind {
    GR_CLI_DEST_PID = 1, /* a pid */
    GR_CLI_DEST_NAME,    /* a registered name */
} gr_cli_dest_kind;

typedef struct gr_cli_dest {
    gr_cli_dest_kind kind;           /* pid or name */
    char node[GR_NODENAME_MAX + 1];  /* the node it lives on; "" = the contacted node */
    char name[GR_TERM_NODE_MAX + 1]; /* kind NAME: the name */
    uint32_t creation;               /* kind PID: the node's incarnation */
    uint64_t id;                     /* kind PID: (serial << 8) | scheduler */
} gr_cli_dest;

/* Parse a DEST. 0 and *ret_d, or GR_EBADARG (*ret_d untouched). */
int gr_cli_dest_parse(const char *s, gr_cli_dest *ret_d);

/* Pack the DEST as the proc module takes it: a pid ext, or the name as a
 * string. 0 or -ENOMEM. */
int gr_cli_dest_pack(const gr_cli_dest *d, msgpack_packer *pk);

#endif
