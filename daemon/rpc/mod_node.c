/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mod_node.c - rpc module `node`: this node and its cluster.
 *
 *   node.ping()                 -> "pong"
 *   node.self()                 -> "name@host"
 *   node.list()                 -> [{"name", "host", "port", "creation", "state",
 *                                   "since_ms", "queued_bytes", "busy", "max_rx_gap_ms",
 *                                   "cipher"},
 *                                   ...], self
 *                                   first; state is "self", "up", "down" or "left";
 *                                   since_ms is how long ago the member entered that
 *                                   state; queued_bytes / busy: the link's unsent
 *                                   output and overload flag (0 / false unless up);
 *                                   max_rx_gap_ms: the longest time between two
 *                                   reads on the link since it came up (0 unless
 *                                   up);
 *                                   cipher: the link's record cipher
 *                                   ("aes-128-ocb", "chacha20-poly1305"), nil
 *                                   unless up;
 *                                   bytes_in, bytes_out, msgs_in, msgs_out: the
 *                                   link's socket bytes and frames each way
 *                                   since it came up; rtt_us: its last
 *                                   heartbeat round trip (0: not measured);
 *                                   heard_ms: ms since bytes last arrived on
 *                                   it; srtt_us: the smoothed round trip
 *                                   (RFC 6298's SRTT; 0: not measured) (all
 *                                   0 unless up)
 *   node.about()                -> {"name", "version", "uptime_ms", "processes",
 *                                   "schedulers", "limits": {"members":
 *                                   [Used, Max], "link_queue_bytes": [Used,
 *                                   Max]}}: this node's own facts, for the
 *                                   fleet views (girder nodes/stats fan it out
 *                                   with rpc.multicall); link_queue_bytes: the
 *                                   most output queued on one link / the
 *                                   overload mark
 *   node.forget("name@host")    -> "ok" once the member is removed from this
 *                                   node's table and every member up was told
 *                                   to remove it (it is no longer dialled);
 *                                   "member_up" while its link is up,
 *                                   "no_member", "is_self"
 *   node.join("name@host:port") -> "ok" once that node is an authenticated member
 *   node.leave()                -> "ok"; then the node leaves the cluster (peers are
 *                                   told, not left to detect it) and shuts down
 */
#include "rpc/rpc_int.h"

#include "gr_version.h"
#include "proto/err.h"
#include "proto/nodename.h"
#include "proto/record.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool no_args(const msgpack_object *args)
{
    return args->type == MSGPACK_OBJECT_ARRAY && args->via.array.size == 0;
}

static uint64_t mono_ms(void)
{
    return gr_rpc_now_ns() / 1000000u;
}

static int node_ping(gr_rpc *rpc, const msgpack_object *args, msgpack_packer *pk)
{
    if (!no_args(args)) {
        return GR_EBADARG;
    }
    msgpack_pack_str_with_body(pk, "pong", 4);
    return 0;
}

static int node_self(gr_rpc *rpc, const msgpack_object *args, msgpack_packer *pk)
{
    if (!no_args(args)) {
        return GR_EBADARG;
    }
    gr_term_pack_cstr(pk, gr_rt_node_name(gr_rpc_rt(rpc)));
    return 0;
}

static int node_list(gr_rpc *rpc, const msgpack_object *args, msgpack_packer *pk)
{
    gr_dist *dist = gr_rpc_dist(rpc);
    gr_dist_member *ms = NULL, self = {.state = GR_DIST_SELF, .cipher = -1};
    size_t n = 0;
    uint64_t now = mono_ms();
    int r;

    if (!no_args(args)) {
        return GR_EBADARG;
    }
    if (dist) {
        if ((r = gr_dist_members(dist, &ms, &n)) < 0) {
            return r;
        }
    } else {
        girder_rt *rt = gr_rpc_rt(rpc);

        snprintf(self.name, sizeof(self.name), "%s", gr_rt_node_name(rt));
        self.creation = gr_rt_creation(rt);
        self.since_ms = now;
        ms = &self;
        n = 1;
    }
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const char *cipher;

        msgpack_pack_map(pk, 17);
        gr_term_pack_cstr(pk, "name");
        gr_term_pack_cstr(pk, ms[i].name);
        gr_term_pack_cstr(pk, "host");
        gr_term_pack_cstr(pk, ms[i].host);
        gr_term_pack_cstr(pk, "port");
        msgpack_pack_uint16(pk, ms[i].port);
        gr_term_pack_cstr(pk, "creation");
        msgpack_pack_uint32(pk, ms[i].creation);
        gr_term_pack_cstr(pk, "state");
        gr_term_pack_cstr(pk, gr_dist_state_name((int)ms[i].state));
        gr_term_pack_cstr(pk, "since_ms");
        msgpack_pack_uint64(pk, now > ms[i].since_ms ? now - ms[i].since_ms : 0);
        gr_term_pack_cstr(pk, "queued_bytes");
        msgpack_pack_uint64(pk, ms[i].queued_bytes);
        gr_term_pack_cstr(pk, "busy");
        if (ms[i].busy) {
            msgpack_pack_true(pk);
        } else {
            msgpack_pack_false(pk);
        }
        gr_term_pack_cstr(pk, "max_rx_gap_ms");
        msgpack_pack_uint64(pk, ms[i].max_rx_gap_ms);
        gr_term_pack_cstr(pk, "cipher");
        if ((cipher = gr_record_cipher_name(ms[i].cipher)) != NULL) {
            gr_term_pack_cstr(pk, cipher);
        } else {
            msgpack_pack_nil(pk);
        }
        gr_term_pack_kv_uint(pk, "bytes_in", ms[i].bytes_in);
        gr_term_pack_kv_uint(pk, "bytes_out", ms[i].bytes_out);
        gr_term_pack_kv_uint(pk, "msgs_in", ms[i].frames_in);
        gr_term_pack_kv_uint(pk, "msgs_out", ms[i].frames_out);
        gr_term_pack_kv_uint(pk, "rtt_us", ms[i].rtt_us);
        gr_term_pack_kv_uint(pk, "heard_ms", ms[i].heard_ms_ago);
        gr_term_pack_kv_uint(pk, "srtt_us", ms[i].srtt_us);
    }
    if (ms != &self) {
        free(ms);
    }
    return 0;
}

static void pack_used_max(msgpack_packer *pk, const char *k, uint64_t used, uint64_t max)
{
    gr_term_pack_cstr(pk, k);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, used);
    msgpack_pack_uint64(pk, max);
}

static int node_about(gr_rpc *rpc, const msgpack_object *args, msgpack_packer *pk)
{
    girder_rt *rt = gr_rpc_rt(rpc);
    gr_dist *dist = gr_rpc_dist(rpc);
    gr_dist_limits lim = {.members = 1};
    uint64_t now = mono_ms(), started = gr_rpc_started_ms(rpc);

    if (!no_args(args)) {
        return GR_EBADARG;
    }
    if (dist) {
        gr_dist_limits_get(dist, &lim);
    }
    msgpack_pack_map(pk, 6);
    gr_term_pack_cstr(pk, "name");
    gr_term_pack_cstr(pk, gr_rt_node_name(rt));
    gr_term_pack_cstr(pk, "version");
    gr_term_pack_cstr(pk, GIRDER_VERSION);
    gr_term_pack_kv_uint(pk, "uptime_ms", now > started ? now - started : 0);
    gr_term_pack_kv_uint(pk, "processes", gr_rt_process_count(rt));
    gr_term_pack_kv_uint(pk, "schedulers", gr_rt_schedulers(rt));
    gr_term_pack_cstr(pk, "limits");
    msgpack_pack_map(pk, 2);
    pack_used_max(pk, "members", lim.members, lim.members_max);
    pack_used_max(pk, "link_queue_bytes", lim.link_queued_max, lim.link_high);
    return 0;
}

static int node_forget(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char node[GR_NODENAME_MAX + 1];
    gr_dist *dist = gr_rpc_call_dist(c);
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        gr_term_get_str(&args->via.array.ptr[0], node, sizeof(node)) < 0 ||
        gr_nodename_check(node, strlen(node)) < 0) {
        return GR_EBADARG;
    }
    if (strcmp(node, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        return GR_EFORGETSELF;
    }
    if (!dist) {
        return GR_ENOMEMBER; /* no cluster: no member but itself */
    }
    r = gr_dist_forget(dist, node, girder_self(ctx), gr_rpc_next_tag(c));
    return r < 0 ? r : GR_RPC_WAIT;
}

/* ["$forget", Tag, Status] */
static int node_forget_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    const msgpack_object *a;

    (void)ctx;
    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 3) {
        return GR_RPC_WAIT;
    }
    a = msg->via.array.ptr;
    if (!gr_term_is_str(&a[0], "$forget") || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].via.u64 != c->tag) {
        return GR_RPC_WAIT;
    }
    if (a[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        return gr_rpc_fail(c, (int)a[2].via.i64);
    }
    return gr_rpc_answer_str(c, "ok");
}

/* Split "name@host:port" into node "name@host", host and port. 0 or GR_EBADARG. */
static int split_target(const msgpack_object *o, char *node, size_t node_cap, char *host,
                        size_t host_cap, uint16_t *ret_port)
{
    const char *s, *colon, *at;
    size_t len, nlen;
    unsigned long port = 0;

    if (o->type != MSGPACK_OBJECT_STR) {
        return GR_EBADARG;
    }
    s = o->via.str.ptr;
    len = o->via.str.size;
    colon = memrchr(s, ':', len);
    at = memchr(s, '@', len);
    if (!colon || !at || colon < at || colon + 1 == s + len || (size_t)(s + len - colon) > 6) {
        return GR_EBADARG;
    }
    for (const char *p = colon + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9') {
            return GR_EBADARG;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    nlen = (size_t)(colon - s);
    if (port == 0 || port > 65535 || nlen >= node_cap || gr_nodename_check(s, nlen) < 0 ||
        (size_t)(colon - at - 1) >= host_cap) {
        return GR_EBADARG;
    }
    memcpy(node, s, nlen);
    node[nlen] = '\0';
    memcpy(host, at + 1, (size_t)(colon - at - 1));
    host[colon - at - 1] = '\0';
    *ret_port = (uint16_t)port;
    return 0;
}

static int node_join(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    char node[GR_NODENAME_MAX + 1], host[GR_DIST_HOST_MAX + 1];
    uint16_t port;
    gr_dist *dist = gr_rpc_call_dist(c);
    unsigned timeout;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        split_target(&args->via.array.ptr[0], node, sizeof(node), host, sizeof(host), &port) < 0) {
        return GR_EBADARG;
    }
    if (strcmp(node, gr_rt_node_name(girder_runtime(ctx))) == 0) {
        return gr_rpc_answer_str(c, "ok"); /* already a member of its own cluster */
    }
    if (!dist) {
        return GR_ENOCONN;
    }
    /* Leave the caller time to hear the outcome before its own deadline. */
    timeout = c->deadline_ms > 400 ? c->deadline_ms - 200 : c->deadline_ms;
    r = gr_dist_join(dist, node, host, port, timeout, girder_self(ctx), gr_rpc_next_tag(c));
    return r < 0 ? r : GR_RPC_WAIT;
}

/* ["$join", Tag, Status] */
static int node_join_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    const msgpack_object *a;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 3) {
        return GR_RPC_WAIT;
    }
    a = msg->via.array.ptr;
    if (!gr_term_is_str(&a[0], "$join") || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].via.u64 != c->tag) {
        return GR_RPC_WAIT;
    }
    if (a[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        return gr_rpc_fail(c, (int)a[2].via.i64);
    }
    return gr_rpc_answer_str(c, "ok");
}

static int node_leave(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    if (!no_args(args)) {
        return GR_EBADARG;
    }
    if (!gr_rpc_call_can_leave(c)) {
        return -ENOTSUP;
    }
    /* Answer first: the leave stops this node, dist flushes the answer on its way. */
    gr_rpc_answer_str(c, "ok");
    gr_rpc_call_leave(c);
    return GR_RPC_DONE;
}

static const gr_rpc_fn_def node_fns[] = {
    {"ping", NULL, NULL, node_ping},
    {"self", NULL, NULL, node_self},
    {"list", NULL, NULL, node_list},
    {"join", node_join, node_join_msg, NULL},
    {"leave", node_leave, NULL, NULL},
    {"about", NULL, NULL, node_about},
    {"forget", node_forget, node_forget_msg, NULL},
};

const gr_rpc_module gr_rpc_mod_node = {"node", node_fns, sizeof(node_fns) / sizeof(node_fns[0])};
