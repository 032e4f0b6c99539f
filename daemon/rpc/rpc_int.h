/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_int.h - what an rpc module sees: the call being served by one worker
 * process, and how to answer it. The built-in modules (mod_*.c, rpc.c's
 * table) and the extension modules of gr_rpc_config.modules alike.
 *
 * A function is a start callback, run once in the worker with the request's
 * arguments, and optionally a message callback for a deferred answer. Both
 * return GR_RPC_DONE once they answered (gr_rpc_answer), GR_RPC_WAIT to keep
 * waiting for messages (a "$rpc", "$join" or "$reply" they asked for), or a
 * negative code, which is answered as the error. Arguments are checked by the
 * function itself: wrong count or type is GR_EBADARG.
 *
 * Owning thread: a gr_rpc_call belongs to its worker process (one scheduler).
 */
#ifndef GR_RPC_INT_H
#define GR_RPC_INT_H

#include "rpc/rpc.h"
#include "runtime/rt.h"

#include <msgpack.h>
#include <stdbool.h>

#define GR_RPC_WORKER_NAME "rpc_worker" /* the worker behaviour: never spawnable by rpc */

#define GR_RPC_DONE 0 /* answered */
#define GR_RPC_WAIT 1 /* deferred: wait for messages */

typedef struct gr_rpc_call gr_rpc_call;

typedef int (*gr_rpc_start_fn)(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args);
typedef int (*gr_rpc_msg_fn)(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg);
/* An inline function: answered on the dist thread without a worker. Only for
 * functions that read a few counters or a snapshot and never wait: packs the
 * result into pk and returns 0, or returns a negative code (pk then unused). */
typedef int (*gr_rpc_inline_fn)(gr_rpc *rpc, const msgpack_object *args, msgpack_packer *pk);

typedef struct gr_rpc_fn_def {
    const char *name;
    gr_rpc_start_fn start;      /* run in a worker; NULL when inline */
    gr_rpc_msg_fn on_msg;       /* NULL: the function never waits */
    gr_rpc_inline_fn inline_fn; /* set instead of start for inline functions */
} gr_rpc_fn_def;

typedef struct gr_rpc_module {
    const char *name; /* unique among the modules of a gr_rpc */
    const gr_rpc_fn_def *fns;
    size_t nfns;
} gr_rpc_module;

/* Handler scratch space (priv), freed by the worker when it ends: priv_free(priv)
 * if the handler set it, else free(priv). */
struct gr_rpc_call {
    gr_rpc *rpc;
    uint64_t id;                    /* key in the call table */
    uint64_t conn, ref;             /* the request, for the answer */
    char peer[GR_NODENAME_MAX + 1]; /* who asked */
    bool hidden;                    /* asked by a client, not a member */
    const gr_rpc_fn_def *fn;        /* what runs; rpc.call to self swaps it */
    uint8_t *args;                  /* msgpack array, args_len bytes */
    size_t args_len;
    uint32_t deadline_ms;          /* worker gives up after this */
    bool answered;                 /* exactly once */
    uint64_t tag;                  /* the handler's outstanding "$rpc"/"$join" tag */
    void *priv;                    /* handler state; freed at the end */
    void (*priv_free)(void *priv); /* how priv is freed; NULL: free() */
    bool local;                    /* started by gr_rpc_call_local: no conn */
    uint64_t t0_ns;                /* gr_rpc_dispatch time (statistics); 0 for local calls */
    girder_pid answer_to;          /* local: where the "$rpc" answer goes (id 0: dropped) */
    uint64_t answer_tag;           /* local: the answer's tag */
    msgpack_zone *zone;            /* the worker's messages are unpacked here (on_msg); lazy */
};

/* Serve module m from now on (a plugin's, daemon/plugin/): m and its
 * functions are borrowed and must stay valid until the runtime stopped, even
 * after gr_rpc_module_remove (a worker may still hold a function). 0,
 * -EEXIST (the name is taken), GR_EBADARG, -ENOMEM. Any thread. */
int gr_rpc_module_add(gr_rpc *rpc, const gr_rpc_module *m);
/* Stop serving m (the pointer added): new requests get undef_module. 0 or
 * -ENOENT. Any thread. */
int gr_rpc_module_remove(gr_rpc *rpc, const gr_rpc_module *m);

/* Answer with one msgpack term. GR_RPC_DONE, or a negative code when the term
 * could not be sent (the call then counts as answered anyway). */
int gr_rpc_answer(gr_rpc_call *c, const void *term, size_t len);
/* Answer with the one term packed in sb, then destroy sb. GR_RPC_DONE, or
 * -ENOMEM (unanswered) when sb does not hold one whole term (a failed write
 * truncated it). */
int gr_rpc_answer_sb(gr_rpc_call *c, msgpack_sbuffer *sb);
/* Answer with an error code. GR_RPC_DONE. */
int gr_rpc_fail(gr_rpc_call *c, int status);
/* Answer with the term o (re-encoded). GR_RPC_DONE, or -ENOMEM (unanswered). */
int gr_rpc_answer_object(gr_rpc_call *c, const msgpack_object *o);
/* Answer with a string / an unsigned integer term. */
int gr_rpc_answer_str(gr_rpc_call *c, const char *s);
int gr_rpc_answer_uint(gr_rpc_call *c, uint64_t v);

/* Forwarding a call to a service process (sys, the pubsub keeper): a start
 * function calls gr_rpc_forward, its on_msg is gr_rpc_forward_msg.
 *
 * gr_rpc_forward sends [FunctionName, Args...] (args: the call's argument
 * array) with girder_call to the process registered as `name` and keeps the
 * call's ref in c->priv. Returns GR_RPC_WAIT, GR_EBADARG (args not an array),
 * GR_ENOPROC (nobody registered), -ENOMEM or girder_call's error. Worker only.
 *
 * gr_rpc_forward_msg takes the service's ["$reply", Ref, Response] and answers
 * the call with Response, or with the error of a ["error", ReasonId] response
 * (an unknown id: GR_EBADARG); a ["DOWN", Ref, ...] for the service fails the
 * call with GR_ENOPROC. Anything else: GR_RPC_WAIT. Worker only. */
int gr_rpc_forward(gr_rpc_call *c, girder_ctx *ctx, const char *name, const msgpack_object *args);
int gr_rpc_forward_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg);

/* The runtime, the dist (or NULL), and girderd's start time of a gr_rpc. */
girder_rt *gr_rpc_rt(const gr_rpc *rpc);
/* The node's table engine (gr_rpc_config.tables, or the rpc's own memory-only
 * one); NULL only if that could not be made. */
gr_tables *gr_rpc_tables(const gr_rpc *rpc);
/* Fill *ret_ops with the girder_table_* hook on engine ts (tables_api.c). */
void gr_rpc_table_ops(gr_tables *ts, gr_rt_table_ops *ret_ops);
gr_dist *gr_rpc_dist(const gr_rpc *rpc);
uint64_t gr_rpc_started_ms(const gr_rpc *rpc);

/* The node's dist, or NULL (a runtime without networking: tests). */
gr_dist *gr_rpc_call_dist(const gr_rpc_call *c);
uint64_t gr_rpc_call_started_ms(const gr_rpc_call *c);
/* Run module.function in this same worker with new arguments (rpc.call to the
 * node itself). Returns what the function's start returns. */
int gr_rpc_call_redirect(gr_rpc_call *c, girder_ctx *ctx, const char *module, size_t module_len,
                         const char *function, size_t function_len, const msgpack_object *args);
/* Run module.function(args) on this node as a request of its own, in a new
 * worker spawned from the calling process `ctx` (any scheduler, round-robin),
 * with its own deadline_ms. Its answer arrives at reply_to exactly once as
 * gr_dist_call's does, ["$rpc", Tag, Status, Result] (Status 0 and Result the
 * term, or Status < 0 and Result the reason id), so a caller handles this node
 * and the others alike; reply_to with id 0 drops the answer (a cast). An
 * inline function runs at once, in the caller, and its answer is queued
 * before this returns. 0, or GR_EBADMODULE / GR_EBADFUNC / GR_EBADARG (args
 * not an array) / -ENOMEM / GR_ESTOPPED: nothing runs and no answer comes.
 * Calling worker's scheduler thread. */
int gr_rpc_call_local(gr_rpc_call *c, girder_ctx *ctx, const char *module, const char *function,
                      const msgpack_object *args, uint32_t deadline_ms, girder_pid reply_to,
                      uint64_t tag);
/* gr_rpc_call_local for a process that is not an rpc worker (a port's "rpc"
 * request, port.c): the same contract, on rpc's modules. Calling process's
 * scheduler thread. */
int gr_rpc_local(gr_rpc *rpc, girder_ctx *ctx, const char *module, const char *function,
                 const msgpack_object *args, uint32_t deadline_ms, girder_pid reply_to,
                 uint64_t tag);
/* node.leave: is a leave hook configured; run it (gr_rpc_config.leave_fn). */
bool gr_rpc_call_can_leave(const gr_rpc_call *c);
void gr_rpc_call_leave(const gr_rpc_call *c);
/* A fresh tag for "$rpc" / "$join" correlation. */
uint64_t gr_rpc_next_tag(gr_rpc_call *c);

/* CLOCK_MONOTONIC in ns. */
uint64_t gr_rpc_now_ns(void);

extern const gr_rpc_module gr_rpc_mod_node;
extern const gr_rpc_module gr_rpc_mod_sys;
extern const gr_rpc_module gr_rpc_mod_rpc;
extern const gr_rpc_module gr_rpc_mod_proc;
extern const gr_rpc_module gr_rpc_mod_pubsub;

/* proc.trace (rpc/trace.c): start, and the tracer's "ready" message. */
int gr_rpc_proc_trace(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args);
int gr_rpc_proc_trace_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg);
/* proc.trace_read (rpc/trace.c): poll or stop a tracer, with its token. */
int gr_rpc_proc_trace_read(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args);
int gr_rpc_proc_trace_read_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg);
extern const gr_rpc_module gr_rpc_mod_table;

#endif
