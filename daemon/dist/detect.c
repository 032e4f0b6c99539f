/* SPDX-License-Identifier: Apache-2.0 */
/*
 * detect.c - the failure detector and the pace of dialling: the node's one
 * detector tick (heartbeats out, silence checks of every link), the
 * suspicion of a silent member link and its indirect probes through other
 * members (the Probe frame kind: SWIM's ping-req), the pure decision behind
 * them (gr_fd_check), and the token bucket that spreads a node's dials out
 * when it learns of many members at once.
 *
 * Design notes
 * - One timer per node, not per link: every tick (D/12, at multiples of it
 *   on the monotonic clock, so the nodes of a host tick together) it walks
 *   the links, queues a Heartbeat on each that queued nothing for D/4 (a
 *   live peer hears a frame at least every D/4: 750 ms by default), and
 *   checks each one's silence. 100 links cost one wakeup a tick instead of
 *   100, and the heartbeats of a tick leave in one flush.
 * - A member link silent for D/2 (two heartbeat periods missed) is a
 *   suspect: DIST_FD_K other members are asked to probe it (REQ); each pings
 *   it on its own link (PING), the member answers (ACK) and the helper tells
 *   the asker (VOUCH). A vouch proves the member answered after the round
 *   was sent, so the member counts as heard at that send time. A round goes
 *   out every D/6 while the silence lasts. The link is declared down when
 *   nothing - no byte, no vouch - proves the member alive within D - tick
 *   (the check runs once a tick: down within D of the last proof, as
 *   before). A hung node answers no one: it is down within D. A node cut
 *   off from us alone is vouched for and stays up, for at most
 *   DIST_FD_VOUCH_MAX_X times D of direct silence; then the link is closed
 *   and redialled (TCP retransmits what was queued if it heals before).
 * - Before a silent link counts as silent, its socket is asked whether bytes
 *   wait unread (FIONREAD): a node whose own loop was starved has not read
 *   them yet, and the peer is not silent. A tick that itself ran more than a
 *   tick late holds a down back once (Lifeguard's local health: the slow
 *   one may be us), so reads run before the next check.
 * - Dialling: at most DIST_DIAL_BURST dials at once and DIST_DIAL_RATE a
 *   second after that, at most DIST_DIAL_INFLIGHT in connect or handshake,
 *   each delay with jitter. A member learnt by gossip whose name is smaller
 *   than ours wins the tie-break when both dial (members.c), so its first
 *   dial is left to it for DIST_DIAL_DEFER_MS (+ jitter): a mesh forming
 *   makes half the handshakes.
 *
 * Threading: dist thread only; the gr_fd_* and gr_dist_pace_take functions
 * are pure (tests call them directly).
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

/* ---- the pure detector --------------------------------------------------------------- */

void gr_fd_params_init(gr_fd_params *p, unsigned detection_ms)
{
    p->detection_ms = detection_ms;
    p->tick_ms = detection_ms / 12;
    p->hb_ms = detection_ms / 4;
    p->suspect_ms = detection_ms / 2;
    p->probe_ms = detection_ms / 6;
    p->vouch_max_ms = detection_ms * DIST_FD_VOUCH_MAX_X;
}

void gr_fd_reset(gr_fd *s)
{
    uint64_t seq = s->seq; /* rounds are never reused on a link */

    memset(s, 0, sizeof(*s));
    s->seq = seq;
}

int gr_fd_check(gr_fd *s, const gr_fd_params *p, uint64_t now, uint64_t last_in, bool late)
{
    uint64_t silence = now > last_in ? now - last_in : 0;
    uint64_t proof = last_in > s->alive_ms ? last_in : s->alive_ms;

    if (silence < p->suspect_ms) {
        if (s->suspect) {
            gr_fd_reset(s);
            return GR_FD_CLEARED;
        }
        s->late_skipped = false;
        return GR_FD_OK;
    }
    if (silence >= p->vouch_max_ms ||
        (now > proof && now - proof >= p->detection_ms - p->tick_ms)) {
        if (late && !s->late_skipped) {
            s->late_skipped = true; /* read first, look again next tick */
            return GR_FD_OK;
        }
        return GR_FD_DOWN;
    }
    s->late_skipped = false;
    if (!s->suspect) {
        s->suspect = true;
        s->since_ms = now;
        s->seq_lo = s->seq + 1;
    } else if (now - s->sent_ms[s->seq % 4] < p->probe_ms - p->tick_ms / 2) {
        return GR_FD_OK; /* the last round is recent */
    }
    s->seq++;
    s->sent_ms[s->seq % 4] = now;
    return GR_FD_PROBE;
}

bool gr_fd_vouch(gr_fd *s, uint64_t seq)
{
    uint64_t at;

    if (!s->suspect || seq < s->seq_lo || seq > s->seq || s->seq - seq >= 4) {
        return false; /* not this suspicion's, or too old to know when it was sent */
    }
    at = s->sent_ms[seq % 4];
    if (at > s->alive_ms) {
        s->alive_ms = at;
    }
    s->vouches++;
    return true;
}

/* ---- the tick ------------------------------------------------------------------------ */

static void send_heartbeat(dist_conn *c)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    hb.seq = ++c->hb_seq;
    c->hb_sent_us = gr_dist_now_us(); /* the peer's ack of this seq is a round trip (conn.c) */
    hb.time_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
}

static int send_probe(dist_conn *c, int op, uint64_t seq, const char *target, const char *asker)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Probe pr = GIRDER__PROBE__INIT;

    pr.op = (Girder__ProbeOp)op;
    pr.seq = seq;
    pr.target = (char *)(target ? target : "");
    pr.asker = (char *)(asker ? asker : "");
    f.msg_case = GIRDER__FRAME__MSG_PROBE;
    f.probe = &pr;
    return gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
}

/* May c help probe others: an UP member link, not itself suspect. */
static bool helper_ok(const dist_conn *c)
{
    return c->state == CONN_UP && !c->hidden && !c->retired && c->member && !c->fd.suspect;
}

/* Round s->seq for silent link t: REQ to DIST_FD_K members chosen at random
 * (reservoir sampling over the links). Returns how many were asked. */
static unsigned probe_round(gr_dist *d, dist_conn *t)
{
    dist_conn *pick[DIST_FD_K];
    unsigned n = 0, seen = 0;

    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c == t || !helper_ok(c) || c->member == t->member) {
            continue;
        }
        if (n < DIST_FD_K) {
            pick[n++] = c;
        } else {
            uint32_t j = randombytes_uniform(seen + 1);

            if (j < DIST_FD_K) {
                pick[j] = c;
            }
        }
        seen++;
    }
    for (unsigned i = 0; i < n; i++) {
        (void)send_probe(pick[i], GIRDER__PROBE_OP__PROBE_REQ, t->fd.seq, t->peer.name, NULL);
    }
    DIST_CTR_ADD(d, probe_reqs, n);
    return n;
}

/* Bytes wait unread on c's socket: our loop is behind, the peer is not silent. */
static bool input_waiting(const dist_conn *c)
{
    int n = 0;

    return c->bev && ioctl(bufferevent_getfd(c->bev), FIONREAD, &n) == 0 && n > 0;
}

static void check_link(gr_dist *d, dist_conn *c, uint64_t now, bool late)
{
    const gr_fd_params *p = &d->fd;
    uint64_t silence = now - c->last_in_ms;
    int r;

    if (silence >= p->suspect_ms && !gr_dist_conn_deaf(c) && input_waiting(c)) {
        c->last_in_ms = now; /* arrived, not read yet */
    }
    if (c->hidden) {
        /* no probes for clients: the plain silence rule, except while one
         * of their requests is unanswered */
        if (now - c->last_in_ms >= p->detection_ms - p->tick_ms && c->inflight == 0) {
            gr_warn(DIST_LOG, "client %s (%s) silent for %llu ms: closing", c->peer.name, c->addr,
                    (unsigned long long)(now - c->last_in_ms));
            gr_dist_conn_close(c, 0, NULL);
        }
        return;
    }
    r = gr_fd_check(&c->fd, p, now, c->last_in_ms, late);
    switch (r) {
    case GR_FD_PROBE:
        if (c->fd.seq == c->fd.seq_lo) {
            DIST_CTR_ADD(d, suspects, 1);
            gr_info(DIST_LOG, "link to %s (%s) silent for %llu ms: suspect, probing", c->peer.name,
                    c->addr, (unsigned long long)(now - c->last_in_ms));
        }
        (void)probe_round(d, c);
        break;
    case GR_FD_CLEARED:
        DIST_CTR_ADD(d, suspects_cleared, 1);
        gr_info(DIST_LOG, "link to %s (%s) heard again: no longer suspect", c->peer.name, c->addr);
        break;
    case GR_FD_DOWN:
        gr_warn(DIST_LOG, "link to %s (%s) silent for %llu ms, %u vouches: closing", c->peer.name,
                c->addr, (unsigned long long)(now - c->last_in_ms), c->fd.vouches);
        gr_dist_conn_close(c, 0, "noconnection");
        break;
    default:
        break;
    }
}

/* Arm the tick for the next multiple of tick_ms of the monotonic clock: the
 * nodes of one host then tick together, and a node reads the heartbeats of
 * a tick in a few wakeups rather than one per link. */
static int tick_arm(gr_dist *d)
{
    uint64_t us = gr_dist_now_us(), per = (uint64_t)d->fd.tick_ms * 1000u;
    uint64_t left = per - us % per;
    struct timeval tv = {(time_t)(left / 1000000u), (suseconds_t)(left % 1000000u)};

    return event_add(d->fd_ev, &tv) == 0 ? 0 : -ENOMEM;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;
    uint64_t now = gr_dist_now_ms();
    bool late = d->fd_tick_ms != 0 && now - d->fd_tick_ms > 2u * d->fd.tick_ms;
    dist_conn *c, *next;

    (void)fd;
    (void)what;
    d->fd_tick_ms = now;
    for (c = d->conns; c; c = next) {
        next = c->next; /* c may close (moved to d->dead) */
        if (c->state != CONN_UP) {
            continue;
        }
        /* heartbeats first: a close below must not delay the others. Half a
         * tick early: a link that queued nothing sends one every hb_ms (D/4)
         * exactly, and a live peer hears from us at least that often. A
         * link that is never idle (or whose acks of the peer's heartbeats
         * keep it from being idle) still sends one every D, for its round
         * trip (conn.c, heartbeat_in) */
        if ((now - c->last_out_ms >= d->fd.hb_ms - d->fd.tick_ms / 2 ||
             gr_dist_now_us() - c->hb_sent_us >= (uint64_t)d->fd.detection_ms * 1000u) &&
            !d->stopping) {
            send_heartbeat(c);
        }
    }
    for (c = d->conns; c; c = next) {
        next = c->next;
        if (c->state == CONN_UP && !c->retired) {
            check_link(d, c, now, late);
        }
    }
    /* The heartbeats go out now, not at the flush event: that runs at the
     * lowest priority, and libevent runs a lower priority only once no
     * higher one is active. A node reading 99 links that keep talking (a
     * mesh forming) found I/O events ready at every pass, and its flush
     * waited seconds: every peer heard silence from it (docs/cluster.md,
     * "Failure detection"). */
    if (d->flush_pending) {
        gr_dist_conn_flush_all(d);
    }
    if (tick_arm(d) < 0) {
        gr_warn(DIST_LOG, "cannot re-arm the detector's tick");
    }
}

int gr_dist_fd_link_up(dist_conn *c)
{
    gr_dist *d = c->d;

    gr_fd_reset(&c->fd);
    if (c->timer) {
        event_del(c->timer); /* the handshake deadline; the tick takes over */
    }
    if (d->fd_ev == NULL) {
        if ((d->fd_ev = event_new(d->base, -1, 0, on_tick, d)) == NULL) {
            return -ENOMEM;
        }
        /* ahead of reads: a link busy with a stream never holds another's
         * heartbeats back for more than the callback it is in */
        (void)event_priority_set(d->fd_ev, DIST_PRIO_CMD);
        if (tick_arm(d) < 0) {
            event_free(d->fd_ev);
            d->fd_ev = NULL;
            return -ENOMEM;
        }
    }
    return 0;
}

void gr_dist_fd_free(gr_dist *d)
{
    if (d->fd_ev) {
        event_free(d->fd_ev);
        d->fd_ev = NULL;
    }
}

/* ---- the Probe kind ------------------------------------------------------------------ */

/* The UP link of member `name`, or NULL. */
static dist_conn *link_of(gr_dist *d, const char *name)
{
    dist_member *m = name && name[0] ? gr_dist_mem_find(d, name) : NULL;

    return m && m->state == GR_DIST_UP && m->conn && m->conn->state == CONN_UP ? m->conn : NULL;
}

static int on_probe(dist_conn *c, const Girder__Frame *f)
{
    gr_dist *d = c->d;
    const Girder__Probe *p = f->probe;
    dist_conn *t;

    if (c->member == NULL || c->retired) {
        return 0;
    }
    switch (p->op) {
    case GIRDER__PROBE_OP__PROBE_REQ: /* we help: ping the target for c's node */
        if ((t = link_of(d, p->target)) != NULL && t != c) {
            (void)send_probe(t, GIRDER__PROBE_OP__PROBE_PING, p->seq, NULL, c->peer.name);
        }
        return 0;
    case GIRDER__PROBE_OP__PROBE_PING: /* we are the target: alive */
        (void)send_probe(c, GIRDER__PROBE_OP__PROBE_ACK, p->seq, NULL, p->asker);
        return 0;
    case GIRDER__PROBE_OP__PROBE_ACK: /* the target answered: tell the asker */
        if ((t = link_of(d, p->asker)) != NULL && t != c) {
            (void)send_probe(t, GIRDER__PROBE_OP__PROBE_VOUCH, p->seq, c->peer.name, NULL);
        }
        return 0;
    case GIRDER__PROBE_OP__PROBE_VOUCH: /* a helper heard our silent member */
        if ((t = link_of(d, p->target)) != NULL && t != c && gr_fd_vouch(&t->fd, p->seq)) {
            DIST_CTR_ADD(d, vouches, 1);
            gr_debug(DIST_LOG, "%s vouches for %s (round %llu)", c->peer.name, t->peer.name,
                     (unsigned long long)p->seq);
        }
        return 0;
    default:
        return 0; /* a newer peer's step */
    }
}

static const dist_kind probe_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_PROBE, .members_only = true, .quiet = true, .on_frame = on_probe},
};

const dist_proto gr_dist_probe_proto = {
    .name = "probe",
    .kinds = probe_kinds,
    .nkinds = sizeof(probe_kinds) / sizeof(probe_kinds[0]),
};

/* ---- dial pacing --------------------------------------------------------------------- */

unsigned gr_dist_pace_take(dist_pace *p, uint64_t now, unsigned inflight)
{
    const unsigned per = 1000u / DIST_DIAL_RATE; /* ms per token */

    if (p->at_ms == 0) {
        p->at_ms = now;
        p->tokens = DIST_DIAL_BURST;
    } else if (now > p->at_ms) {
        uint64_t add = (now - p->at_ms) / per;

        if (add > 0) {
            p->tokens =
                p->tokens + add > DIST_DIAL_BURST ? DIST_DIAL_BURST : p->tokens + (unsigned)add;
            p->at_ms += add * per;
        }
    }
    if (inflight >= DIST_DIAL_INFLIGHT) {
        return per; /* look again when one may have finished */
    }
    if (p->tokens == 0) {
        return (unsigned)(p->at_ms + per > now ? p->at_ms + per - now : 1);
    }
    p->tokens--;
    return 0;
}

unsigned gr_dist_dial_delay(gr_dist *d, dist_member *m)
{
    unsigned inflight = 0, ms;

    if (m->gossiped && !m->deferred && m->creation == 0 && strcmp(m->name, d->name) < 0) {
        m->deferred = true; /* it dials us first (tie-break): give it the chance */
        d->pace.delayed++;
        return DIST_DIAL_DEFER_MS + randombytes_uniform(DIST_DIAL_DEFER_MS / 2);
    }
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->outgoing && (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE)) {
            inflight++;
        }
    }
    if ((ms = gr_dist_pace_take(&d->pace, gr_dist_now_ms(), inflight)) == 0) {
        return 0;
    }
    d->pace.delayed++;
    __atomic_store_n(&d->ctr.dials_paced, d->pace.delayed, __ATOMIC_RELAXED);
    return ms + randombytes_uniform(1000u / DIST_DIAL_RATE + 1);
}
