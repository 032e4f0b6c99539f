/* SPDX-License-Identifier: Apache-2.0 */
/*
 * example_worker.c - a Girder port in C, on the helper girder_port.h (built
 * as girder-port-example; the cluster tests run it):
 *
 *   girder port start --name cw -- build/ports/c/girder-port-example
 *   girder call cw '"hi"'                        -> ["echo", "hi", 1]
 *   girder call cw '["add", 2, 3]'               -> 5
 *   girder call cw '"count"'                     -> calls so far
 *   girder call cw '"whoami"'                    -> [Pid, Node, Name]
 *   girder call cw '["join", Scope, Group]'      -> "ok" (leave alike)
 *   girder call cw '["members", Scope, Group]'   -> [Pid...] on every node
 *   girder call cw '["subscribe", Pattern]'      -> "ok"
 *   girder call cw '["publish", Topic, Term]'    -> "ok" (Term published)
 *   girder call cw '"last_pub"'                  -> [Topic, Term] last received, or nil
 *   girder call cw '"last_msg"'                  -> the last plain message, or nil
 *   girder call cw '["send", Name, Term]'        -> "ok" (Term sent to Name)
 *   girder send cw '["ping", Pid]'               -> Pid gets "pong"
 *   girder call cw '["rpc", Node, M, F, Args]'   -> M.F(Args) on Node (girder_port_rpc)
 *   girder call cw '"crash"'                     -> exits with status 3
 * Anything else is answered with the error "unknown_request"; a request the
 * node refuses is answered with the node's reason.
 */
#include "girder_port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEXT_MAX 256

typedef struct worker {
    girder_port *gp;
    uint64_t calls;
    msgpack_sbuffer last_pub; /* packed [Topic, Term] of the last publish; empty: none */
    msgpack_sbuffer last_msg; /* packed last plain message; empty: none */
} worker;

static bool is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static bool get_str(const msgpack_object *o, char *dst, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size >= cap ||
        memchr(o->via.str.ptr, 0, o->via.str.size)) {
        return false;
    }
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
    return true;
}

static int reply_sb(worker *w, uint64_t id, msgpack_sbuffer *sb)
{
    return girder_port_reply(w->gp, id, sb->data, sb->size);
}

/* The node's answer to one of our requests, as the call's answer. */
static int reply_result(worker *w, uint64_t id, int r, const msgpack_object *result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int e;

    if (r == GIRDER_PORT_EREMOTE) {
        return girder_port_reply_error(w->gp, id, girder_port_errmsg(w->gp));
    }
    if (r < 0) {
        return r;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (result) {
        msgpack_pack_object(&pk, *result);
    } else {
        msgpack_pack_str_with_body(&pk, "ok", 2);
    }
    e = reply_sb(w, id, &sb);
    msgpack_sbuffer_destroy(&sb);
    return e;
}

/* A request with Params [Op, A, B]: two strings. */
static bool two_strs(const msgpack_object *req, char *a, char *b)
{
    return req->via.array.size == 3 && get_str(&req->via.array.ptr[1], a, TEXT_MAX) &&
           get_str(&req->via.array.ptr[2], b, TEXT_MAX);
}

static int pack_term(const msgpack_object *o, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return msgpack_pack_object(&pk, *o);
}

static int on_call(worker *w, uint64_t id, const msgpack_object *req)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char a[TEXT_MAX], b[TEXT_MAX];
    const msgpack_object *res = NULL;
    const msgpack_object *v = req->type == MSGPACK_OBJECT_ARRAY ? req->via.array.ptr : NULL;
    int r;

    w->calls++;
    if (is_str(req, "crash")) {
        exit(3);
    }
    if (v && req->via.array.size >= 1 && is_str(&v[0], "join") && two_strs(req, a, b)) {
        return reply_result(w, id, girder_port_join(w->gp, a, b), NULL);
    }
    if (v && req->via.array.size >= 1 && is_str(&v[0], "leave") && two_strs(req, a, b)) {
        return reply_result(w, id, girder_port_leave(w->gp, a, b), NULL);
    }
    if (v && req->via.array.size >= 1 && is_str(&v[0], "members") && two_strs(req, a, b)) {
        r = girder_port_members(w->gp, a, b, &res);
        return reply_result(w, id, r, res);
    }
    if (v && req->via.array.size == 2 && is_str(&v[0], "subscribe") &&
        get_str(&v[1], a, sizeof(a))) {
        return reply_result(w, id, girder_port_subscribe(w->gp, a), NULL);
    }
    if (v && req->via.array.size == 3 && (is_str(&v[0], "publish") || is_str(&v[0], "send")) &&
        get_str(&v[1], a, sizeof(a))) {
        bool publish = is_str(&v[0], "publish");

        pack_term(&v[2], &sb);
        r = publish ? girder_port_publish(w->gp, a, sb.data, sb.size)
                    : girder_port_send_name(w->gp, a, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return reply_result(w, id, r, NULL);
    }
    if (v && req->via.array.size == 5 && is_str(&v[0], "rpc") && get_str(&v[1], a, sizeof(a)) &&
        v[4].type == MSGPACK_OBJECT_ARRAY) {
        char fn[TEXT_MAX];

        if (!get_str(&v[2], b, sizeof(b)) || !get_str(&v[3], fn, sizeof(fn))) {
            return girder_port_reply_error(w->gp, id, "unknown_request");
        }
        pack_term(&v[4], &sb);
        r = girder_port_rpc(w->gp, a, b, fn, sb.data, sb.size, 0, &res);
        msgpack_sbuffer_destroy(&sb);
        return reply_result(w, id, r, res);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (v && req->via.array.size == 3 && is_str(&v[0], "add") &&
        v[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        v[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        msgpack_pack_uint64(&pk, v[1].via.u64 + v[2].via.u64);
    } else if (is_str(req, "count")) {
        msgpack_pack_uint64(&pk, w->calls);
    } else if (is_str(req, "whoami")) {
        const girder_port_pid *self = girder_port_self(w->gp);

        msgpack_pack_array(&pk, 3);
        if (self) {
            msgpack_sbuffer_write(&sb, (const char *)self->data, self->len);
        } else {
            msgpack_pack_nil(&pk);
        }
        msgpack_pack_str_with_body(&pk, girder_port_node(w->gp), strlen(girder_port_node(w->gp)));
        msgpack_pack_str_with_body(&pk, girder_port_name(w->gp), strlen(girder_port_name(w->gp)));
    } else if (is_str(req, "last_pub")) {
        if (w->last_pub.size) {
            msgpack_sbuffer_write(&sb, w->last_pub.data, w->last_pub.size);
        } else {
            msgpack_pack_nil(&pk);
        }
    } else if (is_str(req, "last_msg")) {
        if (w->last_msg.size) {
            msgpack_sbuffer_write(&sb, w->last_msg.data, w->last_msg.size);
        } else {
            msgpack_pack_nil(&pk);
        }
    } else if (req->type == MSGPACK_OBJECT_STR || req->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, "echo", 4);
        msgpack_pack_object(&pk, *req);
        msgpack_pack_uint64(&pk, w->calls);
    } else {
        msgpack_sbuffer_destroy(&sb);
        return girder_port_reply_error(w->gp, id, "unknown_request");
    }
    r = reply_sb(w, id, &sb);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static int on_message(worker *w, const msgpack_object *msg)
{
    girder_port_pid to;
    msgpack_packer pk;

    msgpack_sbuffer_clear(&w->last_msg);
    msgpack_packer_init(&pk, &w->last_msg, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *msg);
    if (msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size == 2 &&
        is_str(&msg->via.array.ptr[0], "ping") &&
        girder_port_pid_get(&msg->via.array.ptr[1], &to) == 0) {
        static const char pong[] = {(char)0xa4, 'p', 'o', 'n', 'g'};

        return girder_port_send(w->gp, &to, pong, sizeof(pong));
    }
    return 0;
}

static int on_publish(worker *w, const msgpack_object *topic, const msgpack_object *term)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(&w->last_pub);
    msgpack_packer_init(&pk, &w->last_pub, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_object(&pk, *topic);
    msgpack_pack_object(&pk, *term);
    return 0;
}

int main(void)
{
    worker w = {0};
    girder_port_event ev;
    int r;

    if ((r = girder_port_open(0, 1, 0, &w.gp)) < 0) {
        fprintf(stderr, "girder_port_open: %s\n", girder_port_strerror(r));
        return 1;
    }
    msgpack_sbuffer_init(&w.last_pub);
    msgpack_sbuffer_init(&w.last_msg);
    fprintf(stderr, "example C worker %d ready\n", (int)getpid());
    while ((r = girder_port_next(w.gp, &ev)) == 0) {
        if (ev.kind == GIRDER_PORT_CALL) {
            r = on_call(&w, ev.id, ev.term);
        } else if (ev.kind == GIRDER_PORT_MESSAGE) {
            r = on_message(&w, ev.term);
        } else if (ev.kind == GIRDER_PORT_PUBLISH) {
            r = on_publish(&w, ev.topic, ev.term);
        }
        if (r < 0) {
            break;
        }
    }
    if (r != GIRDER_PORT_ECLOSED) {
        fprintf(stderr, "example C worker: %s\n", girder_port_strerror(r));
    }
    msgpack_sbuffer_destroy(&w.last_pub);
    msgpack_sbuffer_destroy(&w.last_msg);
    girder_port_close(w.gp);
    return r == GIRDER_PORT_ECLOSED ? 0 : 1;
}
