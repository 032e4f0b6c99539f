/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test_rt.h - the runtime half of the tests' support library
 * (girder_testsupport, gr_test_rt.c): a runtime with N schedulers and a probe,
 * terms from JSON as messages, receiving with scaled deadlines, calls to a
 * process through the probe and their "$reply". A test that includes it links
 * the runtime (runtime_dep) as well. Test thread only.
 */
#ifndef GR_TEST_RT_H
#define GR_TEST_RT_H

#include "testing/gr_test.h"

#include "girder/girder.h"
#include "runtime/rt.h"

/* Registers behaviours on a runtime before its start (gr_services_register,
 * gr_testkit_register, ...); returns 0 or a negative error. */
typedef int (*gr_test_prepare_fn)(girder_rt *rt);

/* Create a runtime from cfg, call each function of the NULL-terminated
 * prepare list (prepare itself may be NULL), start it and open a probe
 * (ret_probe may be NULL: none). For example:
 *   gr_test_rt_start(&(gr_rt_config){.node_name = NODE, .schedulers = 2},
 *                    (gr_test_prepare_fn[]){gr_services_register, NULL}, &rt, &probe); */
void gr_test_rt_start(const gr_rt_config *cfg, const gr_test_prepare_fn *prepare,
                      girder_rt **ret_rt, gr_probe **ret_probe);

/* Free *probe (may be NULL), stop and free *rt; both become NULL. */
void gr_test_rt_stop(girder_rt **rt, gr_probe **probe);

/* A girder_msg of the JSON text (printf format); never NULL. */
girder_msg *gr_test_msg_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The msgpack integer v as a message; never NULL. */
girder_msg *gr_test_msg_int(int64_t v);

/* Receive the next message within gr_test_ms(base_ms) into *ret_msg (owned)
 * and unpack it into u (the caller destroys u; it borrows *ret_msg). */
void gr_test_recv(gr_probe *p, int base_ms, msgpack_unpacked *u, girder_msg **ret_msg);

/* Nothing reaches p for ms milliseconds (a quiet period, not scaled: a
 * longer wait only makes the check stronger). */
void gr_test_expect_none(gr_probe *p, int ms);

/* Is o a pid term with pid's id and creation (any node)? */
bool gr_test_is_pid(const msgpack_object *o, girder_pid pid);

/* A reply and the unpacked view into it (which borrows the message). */
typedef struct gr_test_reply {
    girder_msg *m;       /* ["$reply", Ref, Response]; owned */
    msgpack_unpacked up; /* unpacked m */
    msgpack_object o;    /* Response, inside up */
} gr_test_reply;

/* Packs a request into pk inside the probe's process (so pids can be packed
 * with ctx); returns 0 or a negative error. */
typedef int (*gr_test_pack_fn)(girder_ctx *ctx, msgpack_packer *pk, void *arg);

/* Pack a destination inside a process: [name, node] when name is set, else
 * the pid. Returns 0 or a negative error. */
int gr_test_pack_dest(girder_ctx *ctx, msgpack_packer *pk, const char *name, const char *node,
                      girder_pid pid);

/* Call `to` from the probe (a girder_call asking for a reply) with the request
 * pack(ctx, pk, arg) builds; the reply is left for gr_test_recv_reply. */
void gr_test_call_send(gr_probe *p, girder_pid to, gr_test_pack_fn pack, void *arg);

/* gr_test_call_send, then gr_test_recv_reply skipping anything else. */
void gr_test_call(gr_probe *p, girder_pid to, gr_test_pack_fn pack, void *arg, gr_test_reply *rp);

/* Call `to` from the probe with req (borrowed), then gr_test_recv_reply
 * skipping anything else. */
void gr_test_call_msg(gr_probe *p, girder_pid to, const girder_msg *req, gr_test_reply *rp);

/* Receive until a "$reply" arrives (within gr_test_ms(5000) each) and fill
 * rp. Every other message goes to on_other with on_other_arg, or is skipped
 * when on_other is NULL. */
void gr_test_recv_reply(gr_probe *p, void (*on_other)(const msgpack_object *o, void *arg),
                        void *on_other_arg, gr_test_reply *rp);

/* Release rp's message and unpacked view. */
void gr_test_reply_done(gr_test_reply *rp);

/* Spawn b (no argument) on rt; fails the test if it cannot. */
girder_pid gr_test_spawn(girder_rt *rt, const girder_behaviour *b);

/* ---- a forwarder -------------------------------------------------------------------------- */

/* State of the behaviour gr_test_fwd. */
typedef struct gr_test_fwd_state {
    girder_pid report; /* where messages go */
    bool has_report;   /* report is set */
} gr_test_fwd_state;

/* The behaviour "fwd": its argument is a pid to report to (none: it reports
 * nowhere; the atom "fail": init fails with GR_EBADARG). It forwards every
 * message to that pid except the atoms "stop" (exit normal), "crash" (exit
 * "boom") and "trap" (trap exits from now on). Its parts are exported so a
 * test can build a variant (an init that calls gr_test_fwd_init first). */
extern const girder_behaviour gr_test_fwd;
int gr_test_fwd_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state);
int gr_test_fwd_handle(girder_ctx *ctx, void *state, const girder_msg *msg);
void gr_test_fwd_terminate(girder_ctx *ctx, void *state, const girder_msg *reason);

/* ---- closures run inside a process (gr_probe_run, gr_rt_run_in) ---------------------------- */

/* The arguments of one closure; each reads what it names and leaves the rest. */
typedef struct gr_test_op {
    girder_pid pid;        /* target, in the view of the runtime the closure runs in */
    girder_ref ref;        /* in/out ref (monitor, timer, call, info, spawn) */
    const char *name;      /* registered name */
    const char *node;      /* node name */
    const char *atom;      /* message, request or exit reason (an atom) */
    unsigned flags;        /* spawn flags */
    const girder_msg *arg; /* spawn argument (borrowed) */
    int n;                 /* count, or milliseconds */
    bool flag;             /* boolean argument */
} gr_test_op;

/* girder_link(pid), girder_unlink(pid), girder_monitor(pid, &ref),
 * girder_demonitor(ref), girder_exit(pid, atom), girder_register(name, pid),
 * girder_info_request(pid, &ref), and n integers 0..n-1 sent to pid in order;
 * each returns what the call returned. arg is a gr_test_op. */
int gr_test_op_link(girder_ctx *ctx, void *arg);
int gr_test_op_unlink(girder_ctx *ctx, void *arg);
int gr_test_op_monitor(girder_ctx *ctx, void *arg);
int gr_test_op_demonitor(girder_ctx *ctx, void *arg);
int gr_test_op_exit(girder_ctx *ctx, void *arg);
int gr_test_op_register(girder_ctx *ctx, void *arg);
int gr_test_op_info(girder_ctx *ctx, void *arg);
int gr_test_op_send_seq(girder_ctx *ctx, void *arg);

#endif /* GR_TEST_RT_H */
