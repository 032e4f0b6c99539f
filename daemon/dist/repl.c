/* SPDX-License-Identifier: Apache-2.0 */
/*
 * repl.c - the replicated-tables protocol on the links (kinds ReplWrites,
 * ReplDigest, ReplKeys): it moves the frames of the replication owner
 * (daemon/tables/repl.c, plugged in with gr_dist_set_repl) and tells it which
 * members are up. What the frames mean is the owner's business
 * (docs/tables.md "Replication").
 *
 * Design notes
 * - Writers on scheduler threads never reach this file: they queue in the
 *   owner and poke its eventfd; the dist thread reads it here (wake_ev) and
 *   asks the owner to drain the whole queue at once, handing every frame to
 *   every member up on the bulk lane: one batch per wakeup, sealed with this
 *   loop iteration's flush.
 * - Anti-entropy rounds: with a member when its link comes up (member_up
 *   hook), then with every member up each period (tick_ev).
 * - The events are made on the first member up (the base runs only then on
 *   the dist thread) and freed by gr_dist_free.
 *
 * Threading: gr_dist_set_repl before gr_dist_start; the rest the dist thread.
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct dist_repl {
    const gr_dist_repl_ops *ops;
    void *ud;
    struct event *wake_ev; /* the owner's eventfd: writes queued */
    struct event *tick_ev; /* the anti-entropy period */
    int fd;                /* our dup of the owner's eventfd (the owner may go first) */
};

int gr_dist_set_repl(gr_dist *d, const gr_dist_repl_ops *ops, void *ud)
{
    struct dist_repl *r = calloc(1, sizeof(*r));

    if (!r) {
        return -ENOMEM;
    }
    r->ops = ops;
    r->ud = ud;
    if ((r->fd = fcntl(ops->wake_fd(ud), F_DUPFD_CLOEXEC, 0)) < 0) {
        int e = -errno;

        free(r);
        return e;
    }
    d->repl = r;
    return 0;
}

void gr_dist_repl_free(gr_dist *d)
{
    struct dist_repl *r = d->repl;

    if (!r) {
        return;
    }
    if (r->wake_ev) {
        event_free(r->wake_ev);
    }
    if (r->tick_ev) {
        event_free(r->tick_ev);
    }
    close(r->fd);
    free(r);
    d->repl = NULL;
}

/* Is m up with a usable link? */
static dist_conn *up_link(const dist_member *m)
{
    return m->state == GR_DIST_UP && m->conn && m->conn->state == CONN_UP ? m->conn : NULL;
}

/* emit to one link. */
static int emit_one(void *ctx, const uint8_t *frame, size_t len)
{
    dist_conn *c = ctx;
    int r = gr_dist_conn_send(c, DIST_LANE_BULK, &(dist_piece){.p = frame, .len = len}, 1);

    if (r < 0 && r != GR_ENOCONN) {
        gr_warn(DIST_LOG, "replication frame of %zu bytes to %s not sent: %s", len, c->peer.name,
                gr_strerror(r));
    }
    return r;
}

/* emit to every member up. A member whose link is busy (its queued output
 * above the high water mark: it does not keep up) is skipped and the skip
 * counted: what it misses comes back through anti-entropy once it drains,
 * so a slow replica costs this node a bounded queue, not one that grows
 * until the link's hard limit closes it. One drain can carry megabytes (a
 * writer faster than this thread), so the link's accounting runs after each
 * frame, not only at the next flush: the queue stops one frame past the
 * mark. */
static int emit_all(void *ctx, const uint8_t *frame, size_t len)
{
    gr_dist *d = ctx;

    for (dist_member *m = d->members ? d->members->next : NULL; m; m = m->next) {
        dist_conn *c = up_link(m);

        if (c && c->busy) {
            DIST_CTR_ADD(d, repl_skipped_busy, 1);
        } else if (c) {
            (void)emit_one(c, frame, len);
            (void)gr_dist_conn_account(c);
        }
    }
    return 0;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;
    struct dist_repl *r = d->repl;

    (void)fd;
    (void)what;
    r->ops->drain(r->ud, emit_all, d);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;
    struct dist_repl *r = d->repl;

    (void)fd;
    (void)what;
    for (dist_member *m = d->members ? d->members->next : NULL; m; m = m->next) {
        dist_conn *c = up_link(m);

        if (c && !c->busy) { /* a busy link is repaired once it drained */
            r->ops->sync(r->ud, m->name, false, emit_one, c);
        }
    }
}

/* The events, once (dist thread). */
static void start_events(gr_dist *d, struct dist_repl *r)
{
    unsigned p = r->ops->period_ms ? r->ops->period_ms : 2000;
    struct timeval tv = {p / 1000, (p % 1000) * 1000};

    if (!r->wake_ev) {
        r->wake_ev = event_new(d->base, r->fd, EV_READ | EV_PERSIST, on_wake, d);
        if (!r->wake_ev || event_add(r->wake_ev, NULL) < 0) {
            gr_error(DIST_LOG, "replication: cannot watch the write queue");
        }
    }
    if (!r->tick_ev) {
        r->tick_ev = event_new(d->base, -1, EV_PERSIST, on_tick, d);
        if (!r->tick_ev || event_add(r->tick_ev, &tv) < 0) {
            gr_error(DIST_LOG, "replication: cannot start the anti-entropy timer");
        }
    }
}

static void on_member_up(dist_conn *c)
{
    struct dist_repl *r = c->d->repl;

    if (!r || !c->member || c->member->conn != c) {
        return;
    }
    start_events(c->d, r);
    r->ops->peer_up(r->ud, c->member->name);
    r->ops->sync(r->ud, c->member->name, true, emit_one, c);
}

static void on_closed(dist_conn *c, int err, const char *why)
{
    struct dist_repl *r = c->d->repl;
    dist_member *m = c->member;

    (void)err;
    (void)why;
    if (!r || !m || up_link(m)) {
        return; /* not a member link, or the member is still up on another */
    }
    r->ops->peer_down(r->ud, m->name);
}

static int on_frame(dist_conn *c, const Girder__Frame *f)
{
    struct dist_repl *r = c->d->repl;

    if (!r) {
        return 0; /* no tables here: ignored */
    }
    return r->ops->recv(r->ud, c->peer.name, f, emit_one, c);
}

static const dist_kind repl_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_REPL_WRITES, .members_only = true, .on_frame = on_frame},
    /* the anti-entropy round every period_ms with every member: background,
     * no spin after it (an idle node with 99 members hears 50 a second) */
    {.kind = GIRDER__FRAME__MSG_REPL_DIGEST,
     .members_only = true,
     .quiet = true,
     .on_frame = on_frame},
    {.kind = GIRDER__FRAME__MSG_REPL_KEYS, .members_only = true, .on_frame = on_frame},
};

const dist_proto gr_dist_repl_proto = {
    .name = "repl",
    .kinds = repl_kinds,
    .nkinds = sizeof(repl_kinds) / sizeof(repl_kinds[0]),
    .member_up = on_member_up,
    .closed = on_closed,
};
