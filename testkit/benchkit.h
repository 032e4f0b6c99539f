/* SPDX-License-Identifier: Apache-2.0 */
/*
 * benchkit.h - what the test kit's bench modules (mod_bench.c, rpc module
 * `bench`; mod_bench_ps.c, `bench_ps`) share: argument checks, the tagged
 * message test, latency statistics, the "more" turn a streaming worker sends itself, and the
 * helper process that answers its owner with one shared message (bench's
 * peer, bench_ps's subscriber and ponger).
 *
 * Owning thread: every function runs on the calling process's scheduler; a
 * gr_testkit_owned belongs to the one process whose state it heads.
 */
#ifndef GR_TESTKIT_BENCHKIT_H
#define GR_TESTKIT_BENCHKIT_H

#include "girder/girder.h"
#include "rpc/rpc_int.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

/* A positive integer in 1..max into *ret, or GR_EBADARG (*ret untouched). */
int gr_testkit_count_arg(const msgpack_object *o, uint64_t max, uint64_t *ret);

/* Is msg the array [s, ...]? */
bool gr_testkit_is_tagged(const msgpack_object *msg, const char *s);

/* Is msg a monitor's ["DOWN", ...] (the owner ended)? */
bool gr_testkit_is_down(const girder_msg *msg);

/* A worker that streams STREAM_BURST messages a turn sends itself the atom
 * "more" to come back: once, while *more is false (the handler clears it when
 * "more" arrives). 0 or a negative code. */
int gr_testkit_more(girder_ctx *ctx, bool *more);

/* qsort's order for uint64_t samples, ascending. */
int gr_testkit_cmp_u64(const void *x, const void *y);

/* Pack k: ns in microseconds (a double). */
void gr_testkit_pack_us(msgpack_packer *pk, const char *k, uint64_t ns);

/* Answer c with {"count", "median_us", "p99_us", "mean_us", "min_us",
 * "max_us"} over the n (>= 1) samples v (ns), sorting v in place. Returns
 * GR_RPC_DONE. */
int gr_testkit_answer_stats(gr_rpc_call *c, uint64_t *v, uint64_t n);

/* The head of a helper process's state (its first member): the owner it
 * answers and monitors, and the one message it answers with, shared (may be
 * NULL). The state is calloc'ed; the process owns it and reply. */
typedef struct gr_testkit_owned {
    girder_pid owner;
    girder_msg *reply;
} gr_testkit_owned;

/* End an init whose checks returned r: on r == 0 monitor the owner (monitor:
 * true) and hand state to *ret_state; otherwise, or when the monitor fails,
 * drop reply and free state. Returns 0 or the negative code. */
int gr_testkit_owned_start(girder_ctx *ctx, int r, bool monitor, void *state, void **ret_state);

/* Send the shared reply to the owner. 0 or a negative code. */
int gr_testkit_owned_reply(girder_ctx *ctx, gr_testkit_owned *o);

/* The behaviours' terminate: drops reply, frees state. */
void gr_testkit_owned_terminate(girder_ctx *ctx, void *state, const girder_msg *reason);

#endif
