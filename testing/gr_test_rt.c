/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test_rt.c - the runtime half of the tests' support library
 * (girder_testsupport): starting and stopping a runtime with a probe, JSON
 * terms as messages, receiving with scaled deadlines, and calls to a process
 * from the probe with their "$reply". Only a test that links the runtime
 * pulls this object in. Test thread only.
 */
#include "testing/gr_test_rt.h"

#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gr_test_rt_start(const gr_rt_config *cfg, const gr_test_prepare_fn *prepare,
                      girder_rt **ret_rt, gr_probe **ret_probe)
{
    girder_rt *rt = NULL;

    ck_assert_int_eq(gr_rt_new(cfg, &rt), 0);
    for (size_t i = 0; prepare && prepare[i]; i++) {
        ck_assert_int_eq(prepare[i](rt), 0);
    }
    ck_assert_int_eq(gr_rt_start(rt), 0);
    if (ret_probe) {
        ck_assert_int_eq(gr_probe_new(rt, ret_probe), 0);
    }
    *ret_rt = rt;
}

void gr_test_rt_stop(girder_rt **rt, gr_probe **probe)
{
    if (probe) {
        *probe = gr_probe_free(*probe);
    }
    if (*rt) {
        gr_rt_stop(*rt);
        *rt = gr_rt_free(*rt);
    }
}

girder_msg *gr_test_msg_json(const char *fmt, ...)
{
    char text[8192];
    msgpack_sbuffer sb;
    girder_msg *m;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < sizeof(text), "JSON text too long");
    msgpack_sbuffer_init(&sb);
    gr_test_sbuf_json(&sb, "%s", text);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_ptr_nonnull(m);
    return m;
}

girder_msg *gr_test_msg_int(int64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, v);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_ptr_nonnull(m);
    return m;
}

void gr_test_recv(gr_probe *p, int base_ms, msgpack_unpacked *u, girder_msg **ret_msg)
{
    girder_msg *m = NULL;
    int ms = gr_test_ms(base_ms);

    ck_assert_msg(gr_probe_recv(p, ms, &m) == 0, "no message within %d ms", ms);
    msgpack_unpacked_init(u);
    ck_assert_int_eq(girder_msg_unpack(m, u), 0);
    *ret_msg = m;
}

void gr_test_expect_none(gr_probe *p, int ms)
{
    girder_msg *m = NULL;
    int r = gr_probe_recv(p, ms, &m);

    if (r == 0) {
        girder_msg_unref(m);
    }
    ck_assert_int_eq(r, -ETIMEDOUT);
}

bool gr_test_is_pid(const msgpack_object *o, girder_pid pid)
{
    gr_term_id id;

    return gr_term_parse_id(o, GR_TERM_EXT_PID, &id) == 0 && id.id == pid.id &&
           id.creation == pid.creation;
}

typedef struct call_arg {
    girder_pid to;         /* server */
    gr_test_pack_fn pack;  /* builds the request, or NULL: ... */
    void *pack_arg;        /* ... its argument */
    const girder_msg *req; /* ... this request (borrowed) */
} call_arg;

/* Runs in the probe's process: girder_call(to, request) asking for a reply. */
static int do_call(girder_ctx *ctx, void *arg)
{
    call_arg *ca = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    girder_ref ref;
    int r = 0;

    if (!ca->pack) {
        return girder_call(ctx, ca->to, ca->req, true, &ref);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = ca->pack(ctx, &pk, ca->pack_arg);
    m = r == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (!m) {
        return r < 0 ? r : -ENOMEM;
    }
    r = girder_call(ctx, ca->to, m, true, &ref);
    girder_msg_unref(m);
    return r;
}

int gr_test_pack_dest(girder_ctx *ctx, msgpack_packer *pk, const char *name, const char *node,
                      girder_pid pid)
{
    if (!name) {
        return girder_pack_pid(ctx, pk, pid);
    }
    msgpack_pack_array(pk, 2);
    msgpack_pack_str_with_body(pk, name, strlen(name));
    msgpack_pack_str_with_body(pk, node, strlen(node));
    return 0;
}

void gr_test_call_send(gr_probe *p, girder_pid to, gr_test_pack_fn pack, void *arg)
{
    call_arg ca = {.to = to, .pack = pack, .pack_arg = arg};

    ck_assert_int_eq(gr_probe_run(p, do_call, &ca), 0);
}

void gr_test_call(gr_probe *p, girder_pid to, gr_test_pack_fn pack, void *arg, gr_test_reply *rp)
{
    gr_test_call_send(p, to, pack, arg);
    gr_test_recv_reply(p, NULL, NULL, rp);
}

void gr_test_call_msg(gr_probe *p, girder_pid to, const girder_msg *req, gr_test_reply *rp)
{
    call_arg ca = {.to = to, .req = req};

    ck_assert_int_eq(gr_probe_run(p, do_call, &ca), 0);
    gr_test_recv_reply(p, NULL, NULL, rp);
}

void gr_test_recv_reply(gr_probe *p, void (*on_other)(const msgpack_object *o, void *arg),
                        void *on_other_arg, gr_test_reply *rp)
{
    for (;;) {
        gr_test_recv(p, 5000, &rp->up, &rp->m);
        if (rp->up.data.type == MSGPACK_OBJECT_ARRAY && rp->up.data.via.array.size == 3 &&
            gr_term_is_str(&rp->up.data.via.array.ptr[0], "$reply")) {
            rp->o = rp->up.data.via.array.ptr[2];
            return;
        }
        if (on_other) {
            on_other(&rp->up.data, on_other_arg);
        }
        gr_test_reply_done(rp);
    }
}

void gr_test_reply_done(gr_test_reply *rp)
{
    msgpack_unpacked_destroy(&rp->up);
    rp->m = girder_msg_unref(rp->m);
}

girder_pid gr_test_spawn(girder_rt *rt, const girder_behaviour *b)
{
    girder_pid pid;

    ck_assert_int_eq(gr_rt_spawn(rt, b, NULL, &pid), 0);
    return pid;
}

/* ---- a forwarder ------------------------------------------------------------------------ */

int gr_test_fwd_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_test_fwd_state *f;
    msgpack_unpacked u;

    if (arg && girder_msg_is_atom(arg, "fail")) {
        return GR_EBADARG;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        return -ENOMEM;
    }
    if (arg) {
        msgpack_unpacked_init(&u);
        f->has_report =
            girder_msg_unpack(arg, &u) == 0 && girder_get_pid(ctx, &u.data, &f->report) == 0;
        msgpack_unpacked_destroy(&u);
    }
    *ret_state = f;
    return 0;
}

int gr_test_fwd_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    gr_test_fwd_state *f = state;

    if (girder_msg_is_atom(msg, "stop")) {
        return GIRDER_STOP;
    }
    if (girder_msg_is_atom(msg, "crash")) {
        girder_msg *r = girder_msg_atom("boom");

        girder_stop(ctx, r);
        girder_msg_unref(r);
        return GIRDER_STOP;
    }
    if (girder_msg_is_atom(msg, "trap")) {
        girder_trap_exit(ctx, true);
        return GIRDER_CONTINUE;
    }
    if (f->has_report) {
        girder_send(ctx, f->report, girder_msg_ref((girder_msg *)msg));
    }
    return GIRDER_CONTINUE;
}

void gr_test_fwd_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    free(state);
}

const girder_behaviour gr_test_fwd = {.name = "fwd",
                                      .init = gr_test_fwd_init,
                                      .handle = gr_test_fwd_handle,
                                      .terminate = gr_test_fwd_terminate};

/* ---- closures --------------------------------------------------------------------------- */

int gr_test_op_link(girder_ctx *ctx, void *arg)
{
    return girder_link(ctx, ((gr_test_op *)arg)->pid);
}

int gr_test_op_unlink(girder_ctx *ctx, void *arg)
{
    return girder_unlink(ctx, ((gr_test_op *)arg)->pid);
}

int gr_test_op_monitor(girder_ctx *ctx, void *arg)
{
    gr_test_op *o = arg;

    return girder_monitor(ctx, o->pid, &o->ref);
}

int gr_test_op_demonitor(girder_ctx *ctx, void *arg)
{
    return girder_demonitor(ctx, ((gr_test_op *)arg)->ref);
}

int gr_test_op_exit(girder_ctx *ctx, void *arg)
{
    gr_test_op *o = arg;
    girder_msg *reason = girder_msg_atom(o->atom);
    int r = girder_exit(ctx, o->pid, reason);

    girder_msg_unref(reason);
    return r;
}

int gr_test_op_register(girder_ctx *ctx, void *arg)
{
    gr_test_op *o = arg;

    return girder_register(ctx, o->name, o->pid);
}

int gr_test_op_info(girder_ctx *ctx, void *arg)
{
    gr_test_op *o = arg;

    return girder_info_request(ctx, o->pid, &o->ref);
}

int gr_test_op_send_seq(girder_ctx *ctx, void *arg)
{
    gr_test_op *o = arg;

    for (int i = 0; i < o->n; i++) {
        girder_msg *m = gr_test_msg_int(i);
        int r = girder_send(ctx, o->pid, m);

        if (r < 0) {
            girder_msg_unref(m);
            return r;
        }
    }
    return 0;
}
