/* SPDX-License-Identifier: Apache-2.0 */
/*
 * term.h - the term codec: msgpack values plus Girder's extension types.
 *
 * A term is one msgpack value. Girder adds two msgpack ext types whose payload
 * names the node that created them, so a pid or ref stays meaningful on any node:
 *
 *   ext type  name  payload (big-endian)
 *   --------  ----  ---------------------------------------------------------
 *   1         pid   u8 node_len | node_len bytes node name | u32 creation | u64 id
 *   2         ref   u8 node_len | node_len bytes node name | u32 creation | u64 id
 *
 *   OFFSET      SIZE      DESCRIPTION
 *   0           1         node_len, 1..255
 *   1           node_len  node name, "name@host", not NUL-terminated
 *   1+node_len  4         creation (incarnation) of the node
 *   5+node_len  8         id: for pids (serial << 8) | scheduler, for refs a counter
 *
 * Atoms are msgpack strings (documented in docs/protocol.md). This file knows
 * nothing about runtimes: it maps wire bytes to (node name, creation, id) views.
 */
#ifndef GR_TERM_H
#define GR_TERM_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define GR_TERM_EXT_PID 1
#define GR_TERM_EXT_REF 2
#define GR_TERM_NODE_MAX 255 /* longest node name a pid/ref can carry */
#define GR_TERM_DEPTH_MAX 32 /* deepest nesting gr_term_validate accepts (msgpack-c's limit) */

/* A decoded pid or ref as found on the wire. `node` points into the source buffer. */
typedef struct gr_term_id {
    const char *node;  /* node name bytes, not NUL-terminated; borrowed */
    size_t node_len;   /* 1..GR_TERM_NODE_MAX */
    uint32_t creation; /* incarnation of the node when the id was made */
    uint64_t id;       /* pid or ref number */
} gr_term_id;

/* Pack a pid/ref ext (type GR_TERM_EXT_PID or _REF). Returns 0, -EINVAL for a bad
 * node name length, or -ENOMEM if the packer's buffer fails. */
int gr_term_pack_id(msgpack_packer *pk, int ext_type, const char *node, size_t node_len,
                    uint32_t creation, uint64_t id);

/* Decode a pid/ref ext object. Returns 0 and fills *ret_id, or GR_EBADTERM if `o`
 * is not an ext of `ext_type` with a well-formed payload (*ret_id untouched). */
int gr_term_parse_id(const msgpack_object *o, int ext_type, gr_term_id *ret_id);

/* Decode a pid/ref given as the bytes of one msgpack ext object (how frames carry
 * them, e.g. Signal.from): buf[0..len) must be exactly one ext of `ext_type` with
 * a well-formed payload. Returns 0 and fills *ret_id (node points into buf), or
 * GR_EBADTERM (*ret_id untouched). Allocates nothing. */
int gr_term_decode_id(const void *buf, size_t len, int ext_type, gr_term_id *ret_id);

/* Check that buf[0..len) holds exactly one well-formed term: valid msgpack, at
 * most GR_TERM_DEPTH_MAX containers open at any point (an empty array or map
 * counts while it is read), every Girder ext payload well-formed. Whatever it
 * accepts, msgpack_unpack_next() unpacks. Allocates nothing. Returns 0 or
 * GR_EBADTERM. */
int gr_term_validate(const void *buf, size_t len);

/* gr_term_validate for a term that will sit `levels` containers deep in
 * another (a payload wrapped in an envelope): 0 if the whole would still be
 * within GR_TERM_DEPTH_MAX, else GR_EBADTERM. A receiver that cannot unpack
 * the envelope drops all of it, so a wrapper checks this first. */
int gr_term_validate_nested(const void *buf, size_t len, unsigned levels);

/* The same checks on the first term of buf[0..len) only: 0 and *ret_len the
 * bytes it takes (1..len; whatever follows it is not looked at), or
 * GR_EBADTERM (*ret_len untouched). For a caller that finds the parts of a
 * term it validated as a whole (daemon/port/port.c: the Term of a "send"
 * frame, copied as is). Allocates nothing. */
int gr_term_next(const void *buf, size_t len, size_t *ret_len);

/* Convenience: does msgpack object `o` equal the string `s`? */
int gr_term_is_str(const msgpack_object *o, const char *s);

/* ---- small helpers every module that speaks terms needs ---- */

/* Pack the C string `s` as a msgpack str (an atom, a key), or nil if s is NULL.
 * Returns 0 or -ENOMEM if the packer's writer failed. Any thread (the packer is
 * the caller's). */
int gr_term_pack_cstr(msgpack_packer *pk, const char *s);

/* Pack one map entry: the str key `key` and the unsigned integer `v` (the
 * caller packed the map header). Returns 0 or -ENOMEM. */
int gr_term_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v);

/* The value stored under the str key `key` in the map `map`, or NULL if `map`
 * is NULL, not a map, or has no such key (the first match wins). Borrowed: it
 * points into `map`. */
const msgpack_object *gr_term_map_get(const msgpack_object *map, const char *key);

/* Copy the str `o` into buf[0..cap) with a terminating NUL. Returns 0, or
 * GR_EBADARG (buf untouched) if `o` is not a str, is empty, holds a NUL byte or
 * needs more than cap - 1 bytes. For names, node names and other identifiers
 * that arrive in requests. */
int gr_term_get_str(const msgpack_object *o, char *buf, size_t cap);

/* Pack an rpc answer, ["$rpc", Tag, Status, X], the one shape in which a caller
 * receives the result of a call (docs/rpc.md): X is the raw term res[0..len)
 * (nil if len is 0) when status is 0, else the stable reason id of the error
 * `status` (gr_errid). `res` must be one well-formed term; it is copied as is.
 * Returns 0 or -ENOMEM if the packer's writer failed. */
int gr_term_pack_rpc_answer(msgpack_packer *pk, uint64_t tag, int status, const void *res,
                            size_t len);

/* Read an rpc answer: if `msg` is ["$rpc", Tag, Status, X] with an unsigned
 * Tag, returns 0 and sets *ret_tag, *ret_status (a negative Status, else 0) and
 * *ret_x (X, borrowed from msg: the result, or the reason id of an error).
 * Otherwise GR_EBADTERM, outputs untouched. */
int gr_term_parse_rpc_answer(const msgpack_object *msg, uint64_t *ret_tag, int *ret_status,
                             const msgpack_object **ret_x);

#endif
