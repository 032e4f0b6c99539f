/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc.c - the rpc transport: RpcRequest frames in (handed to the configured
 * gr_dist_rpc_fn, answered later by gr_dist_reply), RpcReply frames out, and
 * outgoing calls (gr_dist_call) with their deadlines.
 *
 * Design notes
 * - An outgoing call lives on the link it was sent on (conn->calls) until
 *   exactly one of three things answers it: the RpcReply, its deadline timer
 *   (GR_ETIMEOUT, counted in rpc_timeouts) or the link closing (GR_ENOCONN;
 *   GR_ESTOPPED during a stop). Whichever comes first unlinks the record, so the
 *   others find nothing: a late reply is dropped.
 * - Refs are a per-gr_dist counter, hence unique per connection and direction.
 * - Arguments and results are checked (gr_term_validate) before they are sent:
 *   a malformed term from a local caller must not make the peer close the link.
 * - Incoming requests are counted per link (inflight) so the silence rule can
 *   spare a hidden client waiting on a long request; its silence counts again
 *   from the answer to its last one.
 *
 * - The answers a caller gets, ["$rpc", Tag, Status, Result-or-reason], are
 *   built here only (answer_ok, gr_dist_rpc_answer_err).
 *
 * Threading: dist thread only, but gr_dist_rpc_answer_err (any thread: it
 * touches no dist state; gr_dist_stop answers queued calls with it).
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t EMPTY_ARRAY[1] = {0x90};

/* Is buf[0..len) one msgpack array (header only; the term was validated)? */
static bool is_array(const uint8_t *buf, size_t len)
{
    return len > 0 && ((buf[0] & 0xf0) == 0x90 || buf[0] == 0xdc || buf[0] == 0xdd);
}

/* ["$rpc", tag, status, X] to `to`: X is the raw term res[0..len) (nil if
 * empty) when status is 0, else the error's id. Dropped if `to` is gone or
 * memory is short (the caller's own deadline then answers, if it set one). */
static void answer(gr_dist *d, girder_pid to, uint64_t tag, int status, const uint8_t *res,
                   size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (gr_term_pack_rpc_answer(&pk, tag, status, res, len) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return; /* out of memory: the caller's deadline answers it */
    }
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (m && gr_rt_send(d->rt, to, m) < 0) {
        girder_msg_unref(m);
    }
}

/* ["$rpc", tag, 0, Result] with Result the raw term (nil if empty). */
static void answer_ok(gr_dist *d, girder_pid to, uint64_t tag, const uint8_t *res, size_t len)
{
    answer(d, to, tag, 0, res, len);
}

void gr_dist_rpc_answer_err(gr_dist *d, girder_pid to, uint64_t tag, int status)
{
    answer(d, to, tag, status, NULL, 0);
}

static void send_reply(dist_conn *c, uint64_t ref, int status, const uint8_t *res, size_t len)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__RpcReply rp = GIRDER__RPC_REPLY__INIT;
    int r;

    if (status == 0 && len && gr_term_validate(res, len) < 0) {
        status = GR_EBADTERM;
    }
    rp.ref = ref;
    rp.status = status;
    if (status == 0) {
        rp.result.data = (uint8_t *)res;
        rp.result.len = len;
    } else {
        rp.reason = (char *)gr_errid(status);
    }
    f.msg_case = GIRDER__FRAME__MSG_RPC_REPLY;
    f.rpc_reply = &rp;
    /* small replies ride the control lane; large ones must not hold it up */
    if ((r = gr_dist_conn_send(c, len < DIST_SMALL_REPLY ? DIST_LANE_CTRL : DIST_LANE_BULK,
                               &(dist_piece){.frame = &f}, 1)) == GR_EFRAMETOOBIG) {
        rp.status = r;
        rp.result.data = NULL;
        rp.result.len = 0;
        rp.reason = (char *)gr_errid(r);
        (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
    }
}

/* ---- incoming requests ----------------------------------------------------------- */

static void on_request(gr_dist *d, dist_conn *c, const Girder__RpcRequest *q)
{
    const uint8_t *args = q->args.len ? q->args.data : EMPTY_ARRAY;
    size_t alen = q->args.len ? q->args.len : sizeof(EMPTY_ARRAY);
    gr_dist_request req;

    DIST_CTR_ADD(d, rpc_in, 1);
    if (!is_array(args, alen)) {
        send_reply(c, q->ref, GR_EBADARG, NULL, 0);
        return;
    }
    if (d->stopping) {
        send_reply(c, q->ref, GR_ESTOPPED, NULL, 0);
        return;
    }
    if (d->rpc_fn == NULL) {
        send_reply(c, q->ref, GR_EBADMODULE, NULL, 0);
        return;
    }
    req.conn = c->id;
    req.ref = q->ref;
    req.peer = c->peer.name;
    req.hidden = c->hidden;
    req.role = c->peer.role;
    req.module = q->module;
    req.function = q->function;
    req.args = args;
    req.args_len = alen;
    req.deadline_ms = q->deadline_ms;
    c->inflight++;
    d->rpc_fn(d->rpc_ud, &req);
}

void gr_dist_rpc_reply_cmd(gr_dist *d, dist_cmd *cmd)
{
    dist_conn *c = gr_dist_conn_find(d, cmd->conn);

    if (c == NULL || c->state != CONN_UP) {
        gr_debug(DIST_LOG, "reply to closed connection %llu dropped",
                 (unsigned long long)cmd->conn);
        return;
    }
    if (c->inflight > 0 && --c->inflight == 0 && c->hidden) {
        /* a client's silence counts from its last request's answer: one that
         * took longer than the detection time (a page of a million-process
         * `girder ps` on a loaded node) must not close the client at once */
        c->last_in_ms = gr_dist_now_ms();
    }
    send_reply(c, cmd->ref, cmd->status, cmd->data, cmd->len);
}

/* ---- outgoing calls ---------------------------------------------------------------- */

static void call_free(dist_call *k)
{
    if (k->timer) {
        event_free(k->timer);
    }
    free(k);
}

/* Unlink k from its connection's list. */
static void call_unlink(dist_call *k)
{
    for (dist_call **p = &k->conn->calls; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            return;
        }
    }
}

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
    dist_call *k = arg;
    gr_dist *d = k->conn->d;

    (void)fd;
    (void)what;
    call_unlink(k);
    DIST_CTR_ADD(d, rpc_timeouts, 1);
    gr_dist_rpc_answer_err(d, k->reply_to, k->tag, GR_ETIMEOUT);
    call_free(k);
}

void gr_dist_rpc_call_cmd(gr_dist *d, dist_cmd *cmd)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__RpcRequest q = GIRDER__RPC_REQUEST__INIT;
    dist_member *m = gr_dist_mem_find(d, cmd->node);
    dist_call *k;
    int r;

    if (cmd->len && (gr_term_validate(cmd->data, cmd->len) < 0 || !is_array(cmd->data, cmd->len))) {
        gr_dist_rpc_answer_err(d, cmd->reply_to, cmd->tag, GR_EBADARG);
        return;
    }
    if (m == NULL || m->conn == NULL || m->conn->state != CONN_UP) {
        gr_dist_rpc_answer_err(d, cmd->reply_to, cmd->tag, GR_ENOCONN);
        return;
    }
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        gr_dist_rpc_answer_err(d, cmd->reply_to, cmd->tag, -ENOMEM);
        return;
    }
    k->conn = m->conn;
    k->ref = d->next_ref++;
    k->reply_to = cmd->reply_to;
    k->tag = cmd->tag;
    if (cmd->timeout_ms) {
        struct timeval tv = {cmd->timeout_ms / 1000, (cmd->timeout_ms % 1000) * 1000};

        if ((k->timer = evtimer_new(d->base, on_call_timeout, k)) == NULL ||
            evtimer_add(k->timer, &tv) < 0) {
            call_free(k);
            gr_dist_rpc_answer_err(d, cmd->reply_to, cmd->tag, -ENOMEM);
            return;
        }
    }
    q.ref = k->ref;
    q.module = cmd->module;
    q.function = cmd->function;
    q.args.data = cmd->len ? cmd->data : (uint8_t *)EMPTY_ARRAY;
    q.args.len = cmd->len ? cmd->len : sizeof(EMPTY_ARRAY);
    q.deadline_ms = cmd->timeout_ms;
    f.msg_case = GIRDER__FRAME__MSG_RPC_REQUEST;
    f.rpc_request = &q;
    if ((r = gr_dist_conn_send(k->conn, DIST_LANE_BULK, &(dist_piece){.frame = &f}, 1)) < 0) {
        call_free(k);
        gr_dist_rpc_answer_err(d, cmd->reply_to, cmd->tag, r == GR_EFRAMETOOBIG ? r : GR_ENOCONN);
        return;
    }
    k->next = k->conn->calls;
    k->conn->calls = k;
    DIST_CTR_ADD(d, rpc_out, 1);
}

static void on_reply(gr_dist *d, dist_conn *c, const Girder__RpcReply *rp)
{
    dist_call *k;

    for (k = c->calls; k; k = k->next) {
        if (k->ref == rp->ref) {
            break;
        }
    }
    if (k == NULL) {
        return; /* answered already (timeout): dropped */
    }
    call_unlink(k);
    if (rp->status == 0) {
        answer_ok(d, k->reply_to, k->tag, rp->result.data, rp->result.len);
    } else {
        gr_dist_rpc_answer_err(d, k->reply_to, k->tag, rp->status);
    }
    call_free(k);
}

static int on_request_frame(dist_conn *c, const Girder__Frame *f)
{
    on_request(c->d, c, f->rpc_request);
    return 0;
}

static int on_reply_frame(dist_conn *c, const Girder__Frame *f)
{
    on_reply(c->d, c, f->rpc_reply);
    return 0;
}

void gr_dist_rpc_conn_closed(dist_conn *c, int err)
{
    while (c->calls) {
        dist_call *k = c->calls;

        c->calls = k->next;
        gr_dist_rpc_answer_err(c->d, k->reply_to, k->tag, err);
        call_free(k);
    }
}

static void on_closed(dist_conn *c, int err, const char *why)
{
    (void)err;
    (void)why;
    gr_dist_rpc_conn_closed(c, GR_ENOCONN);
}

/* rpc: requests from members and hidden clients (the CLI), replies only from
 * members (a client is never called). */
static const dist_kind rpc_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_RPC_REQUEST, .on_frame = on_request_frame},
    {.kind = GIRDER__FRAME__MSG_RPC_REPLY, .members_only = true, .on_frame = on_reply_frame},
};

const dist_proto gr_dist_rpc_proto = {
    .name = "rpc",
    .kinds = rpc_kinds,
    .nkinds = sizeof(rpc_kinds) / sizeof(rpc_kinds[0]),
    .closed = on_closed,
};
