/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watcher.c - the `watcher` behaviour (watcher.h): monitors and links on
 * request, and the log of the DOWN and EXIT messages it received, each with
 * its receive time.
 *
 * Design notes
 * - An event keeps a reference to the DOWN / EXIT message itself (no copy)
 *   and the receive time; "events" unpacks them again to answer. The log is
 *   a fixed array of GR_WATCHER_EVENTS_MAX entries, allocated with the state.
 * - The time is read first thing in handle: it is when the process ran the
 *   message, which is after the runtime delivered it by at most the time the
 *   message waited in the mailbox (the watcher does nothing else, so that is
 *   short).
 */
#include "testkit/watcher.h"

#include "proto/err.h"
#include "proto/term.h"
#include "testkit/reply.h"
#include "util/clock.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef struct watcher_event {
    girder_msg *msg; /* the DOWN or EXIT message; one reference owned */
    uint64_t at_ns;  /* CLOCK_MONOTONIC when handled */
} watcher_event;

/* A spawn request waiting for its "$spawn_reply". */
typedef struct watcher_spawn {
    bool used;
    girder_ref req;  /* girder_spawn_remote's ref */
    girder_pid from; /* the caller to answer */
    girder_ref ref;  /* its call's ref */
} watcher_spawn;

typedef struct watcher_state {
    watcher_spawn spawns[GR_WATCHER_SPAWNS_MAX]; /* pending spawn requests */
    size_t n;                                    /* events kept */
    uint64_t dropped;                            /* events beyond the log's size */
    watcher_event events[GR_WATCHER_EVENTS_MAX]; /* oldest first */
} watcher_state;

static int watcher_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    watcher_state *s = calloc(1, sizeof(*s));

    if (!s) {
        return -ENOMEM;
    }
    if (!(arg && girder_msg_is_atom(arg, "notrap"))) {
        (void)girder_trap_exit(ctx, true); /* returns the previous setting */
    }
    *ret_state = s;
    return 0;
}

/* ["monitor", Pid] -> Ref; ["link", Pid] -> "ok" */
static void req_watch(girder_ctx *ctx, girder_pid from, girder_ref ref, const msgpack_object *req,
                      bool monitor)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_pid pid;
    girder_ref mref;
    int r;

    if (req->via.array.size != 2 || girder_get_pid(ctx, &req->via.array.ptr[1], &pid) < 0) {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
        return;
    }
    r = monitor ? girder_monitor(ctx, pid, &mref) : girder_link(ctx, pid);
    if (r < 0) {
        gr_testkit_reply_error(ctx, from, ref, gr_errid(r));
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (monitor) {
        r = girder_pack_ref(ctx, &pk, mref);
    } else {
        gr_term_pack_cstr(&pk, "ok");
    }
    if (r == 0) {
        gr_testkit_reply_sb(ctx, from, ref, &sb);
    } else {
        gr_testkit_reply_error(ctx, from, ref, gr_errid(r));
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ["spawn", Node, Behaviour, How]: the answer waits for the spawn reply. */
static void req_spawn(girder_ctx *ctx, watcher_state *s, girder_pid from, girder_ref ref,
                      const msgpack_object *req)
{
    static const struct {
        const char *how;
        unsigned flags;
    } hows[] = {{"none", 0},
                {"link", GIRDER_SPAWN_LINK},
                {"monitor", GIRDER_SPAWN_MONITOR},
                {"link+monitor", GIRDER_SPAWN_LINK | GIRDER_SPAWN_MONITOR}};
    char node[GR_TERM_NODE_MAX + 1], behaviour[GR_TERM_NODE_MAX + 1];
    const msgpack_object *a = req->via.array.ptr;
    watcher_spawn *slot = NULL;
    unsigned flags = 0;
    size_t i;
    int r;

    if (req->via.array.size != 4 || gr_term_get_str(&a[1], node, sizeof(node)) < 0 ||
        gr_term_get_str(&a[2], behaviour, sizeof(behaviour)) < 0) {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
        return;
    }
    for (i = 0; i < sizeof(hows) / sizeof(hows[0]) && !gr_term_is_str(&a[3], hows[i].how); i++) {
    }
    if (i == sizeof(hows) / sizeof(hows[0])) {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
        return;
    }
    flags = hows[i].flags;
    for (i = 0; i < GR_WATCHER_SPAWNS_MAX && !slot; i++) {
        slot = s->spawns[i].used ? NULL : &s->spawns[i];
    }
    if (slot == NULL) {
        gr_testkit_reply_error(ctx, from, ref, "system_limit");
        return;
    }
    if ((r = girder_spawn_remote(ctx, node, behaviour, NULL, flags, &slot->req)) < 0) {
        gr_testkit_reply_error(ctx, from, ref, gr_errid(r));
        return;
    }
    slot->used = true;
    slot->from = from;
    slot->ref = ref;
}

/* ["$spawn_reply", Ref, "ok", Pid] / ["$spawn_reply", Ref, "error", Reason]:
 * answer the call that asked for it. */
static void on_spawn_reply(girder_ctx *ctx, watcher_state *s, const msgpack_object *a)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_ref req;
    girder_pid pid;
    watcher_spawn *slot = NULL;
    int r = 0;

    if (girder_get_ref(ctx, &a[1], &req) < 0) {
        return;
    }
    for (size_t i = 0; i < GR_WATCHER_SPAWNS_MAX && !slot; i++) {
        if (s->spawns[i].used && girder_ref_eq(s->spawns[i].req, req)) {
            slot = &s->spawns[i];
        }
    }
    if (slot == NULL) {
        return;
    }
    slot->used = false;
    if (!gr_term_is_str(&a[2], "ok") || girder_get_pid(ctx, &a[3], &pid) < 0) {
        char reason[64] = "badarg";

        (void)gr_term_get_str(&a[3], reason, sizeof(reason));
        gr_testkit_reply_error(ctx, slot->from, slot->ref, reason);
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    gr_term_pack_cstr(&pk, "pid");
    r = girder_pack_pid(ctx, &pk, pid);
    gr_term_pack_cstr(&pk, "ref");
    if (r == 0) {
        r = girder_pack_ref(ctx, &pk, req);
    }
    if (r == 0) {
        gr_testkit_reply_sb(ctx, slot->from, slot->ref, &sb);
    } else {
        gr_testkit_reply_error(ctx, slot->from, slot->ref, gr_errid(r));
    }
    msgpack_sbuffer_destroy(&sb);
}

/* Pack one event: a map of 5 (DOWN) or 4 (EXIT) entries. 0 or GR_EBADTERM. */
static int pack_event(msgpack_packer *pk, const watcher_event *e)
{
    msgpack_unpacked up;
    const msgpack_object *a;
    bool down;
    int r = GR_EBADTERM;

    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(e->msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY) {
        a = up.data.via.array.ptr;
        down = up.data.via.array.size == 5; /* ["DOWN", Ref, "process", Pid, Reason] */
        msgpack_pack_map(pk, down ? 5 : 4);
        gr_term_pack_cstr(pk, "kind");
        gr_term_pack_cstr(pk, down ? "DOWN" : "EXIT");
        if (down) {
            gr_term_pack_cstr(pk, "ref");
            msgpack_pack_object(pk, a[1]);
        }
        gr_term_pack_cstr(pk, "pid");
        msgpack_pack_object(pk, down ? a[3] : a[1]);
        gr_term_pack_cstr(pk, "reason");
        msgpack_pack_object(pk, down ? a[4] : a[2]);
        gr_term_pack_cstr(pk, "at_ms");
        msgpack_pack_double(pk, (double)e->at_ns / 1e6);
        r = 0;
    }
    msgpack_unpacked_destroy(&up);
    return r;
}

/* ["events"] */
static void req_events(girder_ctx *ctx, watcher_state *s, girder_pid from, girder_ref ref)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    gr_term_pack_cstr(&pk, "events");
    msgpack_pack_array(&pk, s->n);
    for (size_t i = 0; i < s->n && r == 0; i++) {
        r = pack_event(&pk, &s->events[i]); /* checked when stored: cannot fail */
    }
    gr_term_pack_cstr(&pk, "dropped");
    msgpack_pack_uint64(&pk, s->dropped);
    if (r == 0) {
        gr_testkit_reply_sb(ctx, from, ref, &sb);
    } else {
        gr_testkit_reply_error(ctx, from, ref, gr_errid(r));
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ["$call", From, Ref, Request] */
static void watcher_call(girder_ctx *ctx, watcher_state *s, const msgpack_object *a)
{
    const msgpack_object *req;
    girder_pid from;
    girder_ref ref;

    if (gr_testkit_call_open(ctx, a, &from, &ref, &req) < 0) {
        return; /* answered "badarg", or nobody to answer */
    }
    if (gr_term_is_str(&req->via.array.ptr[0], "monitor")) {
        req_watch(ctx, from, ref, req, true);
    } else if (gr_term_is_str(&req->via.array.ptr[0], "link")) {
        req_watch(ctx, from, ref, req, false);
    } else if (gr_term_is_str(&req->via.array.ptr[0], "spawn")) {
        req_spawn(ctx, s, from, ref, req);
    } else if (gr_term_is_str(&req->via.array.ptr[0], "events") && req->via.array.size == 1) {
        req_events(ctx, s, from, ref);
    } else {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
    }
}

/* Is a an EXIT (["EXIT", Pid, Reason]) or a DOWN (["DOWN", Ref, "process",
 * Pid, Reason]) of the right shape? */
static bool is_event(const msgpack_object *o)
{
    const msgpack_object *a = o->via.array.ptr;

    if (o->via.array.size == 3 && gr_term_is_str(&a[0], "EXIT")) {
        return a[1].type == MSGPACK_OBJECT_EXT;
    }
    return o->via.array.size == 5 && gr_term_is_str(&a[0], "DOWN") &&
           a[1].type == MSGPACK_OBJECT_EXT && a[3].type == MSGPACK_OBJECT_EXT;
}

static int watcher_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    uint64_t at_ns = gr_clock_ns();
    watcher_state *s = state;
    msgpack_unpacked up;

    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size > 0) {
        if (up.data.via.array.size == 4 && gr_term_is_str(&up.data.via.array.ptr[0], "$call")) {
            watcher_call(ctx, s, up.data.via.array.ptr);
        } else if (up.data.via.array.size == 4 &&
                   gr_term_is_str(&up.data.via.array.ptr[0], "$spawn_reply")) {
            on_spawn_reply(ctx, s, up.data.via.array.ptr);
        } else if (is_event(&up.data)) {
            if (s->n < GR_WATCHER_EVENTS_MAX) {
                /* msg is borrowed: keep our own reference (the runtime's
                 * buffers are refcounted; the cast drops only const). */
                s->events[s->n].msg = girder_msg_ref((girder_msg *)msg);
                s->events[s->n].at_ns = at_ns;
                s->n++;
            } else {
                s->dropped++;
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    return GIRDER_CONTINUE;
}

static void watcher_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    watcher_state *s = state;

    (void)ctx;
    (void)reason;
    for (size_t i = 0; i < s->n; i++) {
        girder_msg_unref(s->events[i].msg);
    }
    free(s);
}

static size_t watcher_state_size(const void *state)
{
    (void)state;
    return sizeof(watcher_state);
}

const girder_behaviour gr_watcher_behaviour = {
    .name = GR_WATCHER_NAME,
    .init = watcher_init,
    .handle = watcher_handle,
    .terminate = watcher_terminate,
    .state_size = watcher_state_size,
};
