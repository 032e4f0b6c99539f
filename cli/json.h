/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.h - JSON in, JSON out: converting between the operator's JSON and terms.
 *
 *   JSON                          term (msgpack, proto/term.h)
 *   null / true / false           nil / bool
 *   integer                       int (int64 range)
 *   number with . or e            float64
 *   "string"                      str
 *   "<NODE.CREATION.SERIAL.SCHED>" pid ext (1), id = (SERIAL << 8) | SCHED
 *   "#Ref<NODE.CREATION.ID>"      ref ext (2)
 *   [ ... ]                       array
 *   { "k": v, ... }               map with str keys (order kept)
 *   {"$bin": "<base64>"}          bin (standard base64, with padding)
 *
 * Input strings are turned into pids/refs only if they parse completely as one
 * (a valid node name and numbers in range); anything else stays a string.
 * Output additionally prints uint64 exactly, other ext types as
 * {"$ext": {"type": N, "data": "<base64>"}}, non-finite floats as null,
 * invalid UTF-8 as U+FFFD, and non-string map keys as their compact JSON text.
 */
#ifndef GR_CLI_JSON_H
#define GR_CLI_JSON_H

#include "proto/term.h"

#include <msgpack.h>
#include <stddef.h>

/* Deepest JSON argument accepted: leaves room for the rpc args array and the
 * rpc.call argument list inside GR_TERM_DEPTH_MAX. */
#define GR_CLI_JSON_DEPTH_MAX (GR_TERM_DEPTH_MAX - 2)

/* Why a JSON text was refused (for the usage message). */
typedef struct gr_cli_json_err {
    int line;       /* 1-based line of the problem, 0 if not positional */
    int column;     /* 1-based column, 0 if not positional */
    char text[160]; /* what was wrong, NUL-terminated */
} gr_cli_json_err;

/* Parse `text` as exactly one JSON value (any type, not only arrays/objects)
 * and append it to pk as one term. Returns 0; GR_EBADARG with *ret_err filled
 * (bad JSON, integer out of range, bad base64, too deep); -ENOMEM. On error pk
 * may hold a partial term: discard its buffer. */
int gr_cli_json_to_term(const char *text, msgpack_packer *pk, gr_cli_json_err *ret_err);

/* Parse s[0..len) as a whole pid text "<NODE.CREATION.SERIAL.SCHED>" (the
 * form pids print as). Returns 0 and *ret_id (node points into s), or
 * GR_EBADARG (*ret_id untouched). Pure. */
int gr_cli_pid_parse(const char *s, size_t len, gr_term_id *ret_id);

/* Print term `o` as JSON into a malloc'd NUL-terminated string *ret_s: compact on
 * one line, or indented by two spaces when `pretty`. Returns 0 or -ENOMEM. */
int gr_cli_term_to_json(const msgpack_object *o, int pretty, char **ret_s);

/* Convenience: unpack buf[0..len) (one term) and print it as above. Returns 0,
 * GR_EBADTERM or -ENOMEM. */
int gr_cli_term_buf_to_json(const void *buf, size_t len, int pretty, char **ret_s);

/* Append `s` as a JSON string literal (quoted, escaped) to sb. 0 or -ENOMEM. */
int gr_cli_json_put_str(msgpack_sbuffer *sb, const char *s, size_t len);

#endif
