/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.c - the link: one connection of the dist layer, from the socket to the
 * frames: dialling (address literal, or an evdns lookup off the loop's
 * critical path), accepting, the handshake (proto/handshake.h) under a
 * deadline, the encrypted record stream in both directions, the two outgoing
 * lanes and the one send call every frame leaves through
 * (gr_dist_conn_send), the flush once per loop iteration, and closing
 * (heartbeats and the failure detector are detect.c's). What the frames mean is not this file's:
 * each received frame goes to kinds.c, which hands it to the protocol that
 * registered its kind, and the protocols hear of a link coming up or closing
 * through their dist_proto hooks (docs/cluster.md, "Layers").
 *
 * Design notes
 * - States: CONNECTING (outgoing, before TCP is up) -> HANDSHAKE -> UP -> DEAD.
 *   Until UP the only state kept for a peer is the conn struct, the fixed-size
 *   gr_handshake and an input buffer capped by a read watermark
 *   (DIST_HS_READ_MAX); the handshake timer closes it after
 *   GR_DIST_HANDSHAKE_TIMEOUT_MS whatever the peer does (a dial gets
 *   DIST_HS_DIAL_GRACE_MS more: the peer's deadline starts later, and the
 *   peer is UP before we are). Accepted peers are
 *   admitted by admit.c (a slot, someone else's, or a Reject "busy"), get its
 *   first-message deadline, and their failures are logged through its rate
 *   limiter: the hooks here are gr_dist_admit_*.
 * - Any error from the handshake, a record or a frame closes this connection
 *   only, after one log line naming the peer address and the gr_errid reason.
 * - Outgoing frames go into two batches: ctrl (heartbeats, membership, leave,
 *   rpc replies) and bulk (rpc requests, signals). gr_dist_conn_send only
 *   appends - a frame to pack, or packed bytes in a head and a tail, the tail
 *   referenced when it is a big message payload - and the flush event (lowest
 *   priority, once per loop iteration) seals ctrl then bulk into one record
 *   each, so encryption and the write are paid per iteration.
 * - Records are sealed at the flush, or as soon as a lane holds DIST_RECORD_SOFT
 *   bytes: a stream of 64 KiB messages then moves as 256 KiB records that stay
 *   in the cache between the copy, the cipher and the write, and the peer
 *   decrypts one while the next is sealed. One record per flush of up to
 *   max_record (16 MiB) was half as fast: every pass went to memory and the two
 *   ends took turns.
 * - One timer per connection, until it is UP: the handshake deadline (and the
 *   close of a retired link). Heartbeats and the silence checks of UP links
 *   are the node's one detector tick (detect.c). Hidden clients are exempt
 *   from the silence rule while one of their requests is unanswered (a CLI
 *   blocked on a long rpc need not heartbeat).
 * - Reading: until UP the bufferevent reads (capped by the watermark). Once UP,
 *   its reading is switched off and the link's own read event (rd_ev) reads
 *   straight into d->rbuf, up to DIST_READ_CHUNK per call and DIST_READ_BUDGET
 *   per wakeup: libevent's evbuffer reads at most 4 KiB per readv and asks
 *   FIONREAD first, three syscalls per 4 KiB, which capped a 64 KiB stream at a
 *   few hundred MB/s (docs/benchmarks.md). Writing stays with the bufferevent.
 * - A closed connection is unlinked at once (state DEAD, socket freed, member
 *   and calls told) but the struct is freed by the flush event, never inside
 *   its own callback.
 *
 * Threading: dist thread only.
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_raw_read(evutil_socket_t fd, short what, void *arg);
static void conn_failed(dist_conn *c, short what, int err);

/* Whether a failed dial of c is logged at debug level only: a member that
 * stays away is logged until its backoff is at the ceiling (one line per
 * failure until then, DIST_BACKOFF_MAX_MS apart at most), a discovery probe
 * never here (discover.c logs it). */
static bool dial_quiet(const dist_conn *c)
{
    return c->member ? c->member->backoff_ms >= DIST_BACKOFF_MAX_MS : true;
}
static void on_timer(evutil_socket_t fd, short what, void *arg);

/* The record layer's payload sink (gr_record_rx_set_sink): a message buffer,
 * which the frame's handler then takes whole (feed_up). Which frames have
 * such a payload, and where it starts, their kinds say (gr_dist_payload_at). */
static void *sink_alloc(void *ud, size_t len, uint8_t **ret_dst)
{
    (void)ud;
    return gr_rt_msg_alloc(len, ret_dst);
}

static void sink_drop(void *ud, void *handle)
{
    (void)ud;
    girder_msg_unref(handle);
}

/* The name the peer of an accepted connection gave in its hello, not proven
 * yet (admission logs), or NULL. */
static const char *claimed(const dist_conn *c)
{
    return !c->outgoing && c->hs ? gr_handshake_claimed_name(c->hs) : NULL;
}

static const char *peer_name(const dist_conn *c)
{
    if (c->state == CONN_UP || (c->state == CONN_DEAD && c->peer.name[0])) {
        return c->peer.name;
    }
    if (claimed(c)) {
        return claimed(c);
    }
    return c->member ? c->member->name : "?";
}

static void format_addr(char *buf, size_t cap, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "?");
    }
}

static int timer_arm(dist_conn *c, unsigned ms, bool persist)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (c->timer) {
        event_free(c->timer);
    }
    c->timer = event_new(c->d->base, -1, persist ? EV_PERSIST : 0, on_timer, c);
    if (c->timer == NULL) {
        return -ENOMEM;
    }
    return event_add(c->timer, &tv) == 0 ? 0 : -ENOMEM;
}

static dist_conn *conn_new(gr_dist *d, bool outgoing)
{
    dist_conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->d = d;
    /* A dialler waits longer than the peer does: the peer's deadline runs
     * from its accept, after our connect, and it is UP once it has read our
     * proof - its answer, sent within its deadline, must find us still
     * waiting, or the peer has a link that we closed (a nodeup, then at once a
     * nodedown, when a node busy with many handshakes answers late) */
    if (timer_arm(c, GR_DIST_HANDSHAKE_TIMEOUT_MS + (outgoing ? DIST_HS_DIAL_GRACE_MS : 0), false) <
        0) {
        free(c);
        return NULL;
    }
    c->id = d->next_conn_id++;
    c->outgoing = outgoing;
    c->state = outgoing ? CONN_CONNECTING : CONN_HANDSHAKE;
    c->last_in_ms = c->last_out_ms = gr_dist_now_ms();
    c->next = d->conns;
    if (d->conns) {
        d->conns->prev = c;
    }
    d->conns = c;
    return c;
}

static int hs_start(dist_conn *c, int role)
{
    gr_handshake_config hc = {
        .name = c->d->name,
        .cookie = &c->d->cookie,
        .accept = c->d->accept,
        .observer_key = c->d->observer_key.len ? &c->d->observer_key : NULL,
        .creation = c->d->creation,
        .expect_peer = c->outgoing && c->member ? c->member->name : NULL,
        .ciphers = c->d->ciphers,
    };
    int r;

    /* the handshake keeps derived keys only: the lock covers the copy */
    pthread_mutex_lock(&c->d->cookie_lock);
    hc.n_accept = c->d->n_accept;
    r = gr_handshake_new(&hc, role, &c->hs);
    pthread_mutex_unlock(&c->d->cookie_lock);
    return r;
}

/* Send bytes: straight to the socket when nothing is queued before them (the
 * common case: one syscall, and libevent never has to switch write interest on
 * and off in epoll, two more syscalls per record); whatever the socket does
 * not take now is queued in the bufferevent, which writes it when it can. */
static void out_raw(dist_conn *c, const void *buf, size_t len)
{
    dist_link_stats *ls;
    struct evbuffer *out;
    ssize_t n = 0;

    if (len == 0 || c->bev == NULL) {
        return;
    }
    out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0) {
        n = send(bufferevent_getfd(c->bev), buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            n = 0; /* EAGAIN, or an error the bufferevent reports on its write */
        }
    }
    if ((size_t)n < len &&
        bufferevent_write(c->bev, (const uint8_t *)buf + n, len - (size_t)n) < 0) {
        return;
    }
    DIST_CTR_ADD(c->d, bytes_out, len);
    if ((ls = DIST_LINK(c)) != NULL) {
        dist_link_add(&ls->bytes_out, len);
    }
}

static void hs_output(dist_conn *c)
{
    const uint8_t *buf;
    size_t n;

    while (c->hs && (n = gr_handshake_output(c->hs, &buf)) > 0) {
        out_raw(c, buf, n);
    }
}

static void setup_bev(dist_conn *c)
{
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, DIST_HS_READ_MAX);
    /* on_write (and its accounting) runs for every write that leaves the
     * output at or below the low mark, not only when it empties: a busy link
     * is seen to drain, and its senders resumed, without waiting for the
     * last byte */
    bufferevent_setwatermark(c->bev, EV_WRITE, c->d->out_high / 4, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- dialling --------------------------------------------------------------------- */

/* Context of one name lookup: looked up again by id when the answer comes, so a
 * connection closed meanwhile is never touched. */
typedef struct dial_req {
    gr_dist *d;
    uint64_t conn;
} dial_req;

/* Bind fd to our listen address before connect, when it fits sa (listener.c,
 * gr_dist_dial_src). A failure leaves the choice to the kernel, as before:
 * logged, not fatal. */
static void bind_src(dist_conn *c, int fd, const struct sockaddr *sa)
{
    struct sockaddr_storage src;
    socklen_t len;
    int one = 1;

    if (gr_dist_dial_src(c->d, sa, &src, &len) == 0) {
        return;
    }
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* the port is picked at connect, per destination: no port is held per
     * source address for a socket not yet connected */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#else
    (void)one;
#endif
    if (bind(fd, (struct sockaddr *)&src, len) < 0) {
        gr_debug(DIST_LOG, "dial to %s: cannot bind the source to the listen address: %s", c->addr,
                 gr_errid(-errno));
    }
}

static void dial_addr(dist_conn *c, const struct sockaddr *sa, socklen_t salen)
{
    int fd, one = 1;

    format_addr(c->addr, sizeof(c->addr), sa);
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        gr_dist_conn_close(c, -errno, NULL);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bind_src(c, fd, sa);
    c->bev = bufferevent_socket_new(c->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        gr_dist_conn_close(c, -ENOMEM, NULL);
        return;
    }
    setup_bev(c);
    if (bufferevent_socket_connect(c->bev, sa, (int)salen) < 0) {
        int err = EVUTIL_SOCKET_ERROR();

        conn_failed(c, BEV_EVENT_ERROR, err ? err : ECONNREFUSED); /* logged as a refused dial */
    }
}

static void on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    dial_req *q = arg;
    dist_conn *c = gr_dist_conn_find(q->d, q->conn);

    if (c && c->state == CONN_CONNECTING) {
        if (err != 0 || ai == NULL) {
            /* like a refused dial (conn_failed): a member that stays
             * unresolvable is logged until its backoff is at the ceiling */
            gr_log(dial_quiet(c) ? GR_LOG_DEBUG : GR_LOG_WARN, DIST_LOG, "cannot resolve %s: %s",
                   c->member ? c->member->host : "?", evutil_gai_strerror(err));
            DIST_CTR_ADD(c->d, handshakes_failed, 1);
            c->fail = -EHOSTUNREACH;
            gr_dist_conn_close(c, 0, NULL);
        } else {
            dial_addr(c, ai->ai_addr, ai->ai_addrlen);
        }
    }
    if (ai) {
        evutil_freeaddrinfo(ai);
    }
    free(q);
}

int gr_dist_conn_dial(gr_dist *d, dist_member *m)
{
    struct evutil_addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char hostport[GR_DIST_HOST_MAX + 16];
    char port[8];
    dist_conn *c;
    dial_req *q;

    if ((c = conn_new(d, true)) == NULL) {
        return -ENOMEM;
    }
    c->member = m;
    m->dial = c;
    DIST_CTR_ADD(d, conns_dialled, 1);
    snprintf(c->addr, sizeof(c->addr), "%s:%u", m->host, (unsigned)m->port);
    /* An address literal needs no lookup. */
    snprintf(hostport, sizeof(hostport), strchr(m->host, ':') ? "[%s]:%u" : "%s:%u", m->host,
             (unsigned)m->port);
    memset(&ss, 0, sizeof(ss));
    if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &sl) == 0) {
        dial_addr(c, (struct sockaddr *)&ss, (socklen_t)sl);
        return 0;
    }
    if (d->dns == NULL || (q = malloc(sizeof(*q))) == NULL) {
        gr_dist_conn_close(c, -EHOSTUNREACH, NULL);
        return 0;
    }
    q->d = d;
    q->conn = c->id;
    snprintf(port, sizeof(port), "%u", (unsigned)m->port);
    /* May answer at once (then it returns NULL and q is already freed). */
    (void)evdns_getaddrinfo(d->dns, m->host, port, &hints, on_resolved, q);
    return 0;
}

int gr_dist_conn_probe(gr_dist *d, const struct sockaddr *sa, socklen_t salen, uint64_t *ret_id)
{
    dist_conn *c;

    if ((c = conn_new(d, true)) == NULL) {
        return -ENOMEM;
    }
    DIST_CTR_ADD(d, conns_dialled, 1);
    *ret_id = c->id;
    dial_addr(c, sa, salen); /* may close c at once */
    return 0;
}

/* ---- accepting -------------------------------------------------------------------- */

void gr_dist_conn_accept(gr_dist *d, int fd, const struct sockaddr *sa, int salen)
{
    dist_conn *c;
    dist_slot slot;
    int one = 1, r;

    (void)salen;
    DIST_CTR_ADD(d, conns_accepted, 1);
    /* admission (admit.c): a slot, someone else's, or a Reject "busy" */
    if (gr_dist_admit_accept(d, fd, sa, &slot) < 0) {
        return;
    }
    if ((c = conn_new(d, false)) == NULL) {
        close(fd);
        return;
    }
    c->slot = slot;
    gr_dist_admit_enter(c);
    format_addr(c->addr, sizeof(c->addr), sa);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        gr_dist_conn_close(c, -ENOMEM, NULL);
        return;
    }
    if ((r = hs_start(c, GR_HANDSHAKE_RESPONDER)) < 0 ||
        (r = timer_arm(c, gr_dist_admit_hello_ms(d), false)) < 0) {
        gr_dist_conn_close(c, r, NULL);
        return;
    }
    setup_bev(c);
}

/* ---- handshake -------------------------------------------------------------------- */

static void hs_failed(dist_conn *c, int err)
{
    DIST_CTR_ADD(c->d, handshakes_failed, 1);
    c->fail = err;
    if (c->hs && gr_handshake_peer_rejected(c->hs)) {
        gr_warn(DIST_LOG, "handshake with %s (%s): rejected by peer: %s", peer_name(c), c->addr,
                gr_errid(err));
    } else if (c->unauth) {
        /* an accepted stranger: rate-limited (admit.c) */
        gr_dist_admit_log(c->d, gr_errid(err), "handshake with %s%s (%s) failed: %s", peer_name(c),
                          claimed(c) ? " (unverified)" : "", c->addr, gr_errid(err));
    } else {
        gr_warn(DIST_LOG, "handshake with %s (%s) failed: %s", peer_name(c), c->addr,
                gr_errid(err));
    }
    /* Best effort: the queued Reject goes out before the close. A socket
     * bufferevent's output cannot be drained from outside, so what it still
     * holds (a few handshake bytes at most) is copied out and sent together
     * with the Reject, without blocking. */
    if (c->bev && c->hs) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        uint8_t buf[2 * (GR_RECORD_HDR + GR_HANDSHAKE_MSG_MAX)];
        size_t have = evbuffer_get_length(out);
        const uint8_t *rej;
        size_t n = gr_handshake_output(c->hs, &rej);

        if (have + n <= sizeof(buf)) {
            evbuffer_copyout(out, buf, have);
            if (n > 0) {
                memcpy(buf + have, rej, n); /* no Reject queued: rej may be NULL */
            }
            if (send(bufferevent_getfd(c->bev), buf, have + n, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
                DIST_CTR_ADD(c->d, bytes_out, n);
            }
        }
    }
    gr_dist_conn_close(c, 0, NULL);
}

static void hs_done(dist_conn *c)
{
    gr_dist *d = c->d;
    gr_handshake_peer peer;
    int r;

    hs_output(c); /* the responder's M4 */
    if ((r = gr_handshake_finish(c->hs, &peer, &c->tx, &c->rx)) < 0 ||
        (r = gr_batch_new(&peer.limits, &c->ctrl)) < 0 ||
        (r = gr_batch_new(&peer.limits, &c->bulk)) < 0) {
        hs_failed(c, r);
        return;
    }
    /* big payloads are decrypted straight into the messages (feed_up) */
    (void)gr_record_rx_set_sink(c->rx, &(gr_record_sink){.min = DIST_TAIL_REF,
                                                         .payload_at = gr_dist_payload_at,
                                                         .alloc = sink_alloc,
                                                         .drop = sink_drop,
                                                         .ud = d});
    gr_handshake_free(c->hs);
    c->hs = NULL;
    c->peer = peer;
    c->hidden = peer.hidden != 0;
    c->state = CONN_UP;
    if (c->unauth) {
        gr_dist_admit_authenticated(c);
        gr_dist_admit_leave(c);
    }
    DIST_CTR_ADD(d, handshakes_ok, 1);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    if (gr_dist_fd_link_up(c) < 0) { /* heartbeats and the detector (detect.c) */
        gr_dist_conn_close(c, -ENOMEM, NULL);
        return;
    }
    if (c->hidden) {
        gr_log_fields(
            GR_LOG_DEBUG, DIST_LOG,
            (gr_log_field[]){{"event", "client_up"},
                             {"peer", c->peer.name},
                             {"addr", c->addr},
                             {"role", c->peer.role == GR_ROLE_OBSERVER ? "observer" : "member"}},
            4, "client %s connected from %s as %s", c->peer.name, c->addr,
            c->peer.role == GR_ROLE_OBSERVER ? "observer" : "member");
        return;
    }
    gr_log_fields(GR_LOG_INFO, DIST_LOG,
                  (gr_log_field[]){{"event", "conn_up"},
                                   {"peer", c->peer.name},
                                   {"addr", c->addr},
                                   {"dir", c->outgoing ? "out" : "in"}},
                  4, "link to %s (%s, %s) up", c->peer.name, c->addr,
                  c->outgoing ? "dialled" : "accepted");
    if (d->stopping) {
        gr_dist_conn_close(c, 0, NULL);
        return;
    }
    gr_dist_protos_member_up(c); /* membership: tie-break, nodeup, gossip */
}

/* ---- frames in -------------------------------------------------------------------- */

/* Feed received bytes p[0..len) of an UP link through its record stream and
 * hand every frame to its kind (kinds.c). 0, or < 0 once c is closed (by an
 * error here, or by a frame handler). */
static int feed_up(dist_conn *c, const uint8_t *p, size_t len)
{
    dist_link_stats *ls;
    size_t off = 0;
    int r = 0;

    while (off < len && c->state == CONN_UP) {
        const uint8_t *fr;
        size_t flen, used = 0;
        gr_record_payload pl;
        bool any = false;

        r = gr_record_feed(c->rx, p + off, len - off, &used);
        off += used;
        while (r == 0 && c->state == CONN_UP &&
               (r = gr_record_next_split(c->rx, &fr, &flen, &pl)) == 1) {
            any = true;
            r = pl.handle ? gr_dist_frame_split_in(c, fr, flen, pl.handle)
                          : gr_dist_frame_in(c, fr, flen);
        }
        if (any) {
            DIST_CTR_ADD(c->d, records_in, 1);
        }
        if (r < 0 && c->state == CONN_UP) {
            gr_dist_conn_close(c, r, NULL);
        }
        if (r < 0 || used == 0) {
            break;
        }
    }
    DIST_CTR_ADD(c->d, bytes_in, off);
    if ((ls = DIST_LINK(c)) != NULL) {
        dist_link_add(&ls->bytes_in, off);
    }
    return c->state == CONN_UP ? 0 : -1;
}

/* The link is UP and the bufferevent's input is drained: read with rd_ev from
 * now on (design notes). */
static void raw_read_start(dist_conn *c)
{
    c->rd_ev =
        event_new(c->d->base, bufferevent_getfd(c->bev), EV_READ | EV_PERSIST, on_raw_read, c);
    if (c->rd_ev == NULL || event_add(c->rd_ev, NULL) < 0) {
        gr_dist_conn_close(c, -ENOMEM, NULL);
        return;
    }
    bufferevent_disable(c->bev, EV_READ);
}

/* Bytes arrived on c: the silence detector's clock, and for a member's link
 * the longest gap between two reads since it came up (max_rx_gap_ms in
 * node.list), the figure behind "no heartbeat gap over a third of the
 * detection time" (docs/cluster.md, "Backpressure"). Dist thread. */
static void heard(dist_conn *c)
{
    gr_dist *d = c->d;
    uint64_t now = gr_dist_now_ms(), gap = now - c->last_in_ms;
    dist_link_stats *ls;
    uint32_t idx;

    if (gr_dist_conn_deaf(c)) {
        return; /* gr_dist_test_deaf */
    }
    c->last_in_ms = now;
    if ((ls = DIST_LINK(c)) != NULL) {
        atomic_store_explicit(&ls->last_in_ms, now, memory_order_relaxed);
    }
    if (c->state == CONN_UP && c->member && !c->hidden && (idx = c->member->idx) != 0 &&
        gap > atomic_load_explicit(&d->rx_gap_max[idx], memory_order_relaxed)) {
        atomic_store_explicit(&d->rx_gap_max[idx], gap, memory_order_relaxed);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    dist_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned ms;
    int r = 0;

    c->d->activity++;
    heard(c);
    while (c->state != CONN_DEAD && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
            break;
        }
        if (c->state == CONN_HANDSHAKE) {
            r = gr_handshake_feed(c->hs, v.iov_base, v.iov_len, &used);
            evbuffer_drain(in, used);
            DIST_CTR_ADD(c->d, bytes_in, used);
            if (r < 0) {
                hs_failed(c, r);
                return;
            }
            hs_output(c);
            if (c->unauth && !c->slot.hello && claimed(c) && (ms = gr_dist_admit_on_hello(c)) > 0 &&
                timer_arm(c, ms, false) < 0) {
                /* the first message is in: the full deadline from accept (admit.c) */
                gr_dist_conn_close(c, -ENOMEM, NULL);
                return;
            }
            if (r == 1) {
                hs_done(c);
                continue;
            }
        } else if (c->state == CONN_UP) {
            used = v.iov_len;
            r = feed_up(c, v.iov_base, v.iov_len);
            if (c->state == CONN_UP) {
                evbuffer_drain(in, used);
            }
            if (r < 0) {
                return;
            }
        } else {
            evbuffer_drain(in, evbuffer_get_length(in));
            break;
        }
        if (used == 0) {
            break; /* defensive: nothing consumed, wait for more bytes */
        }
    }
    if (c->state == CONN_UP && c->rd_ev == NULL && evbuffer_get_length(in) == 0) {
        raw_read_start(c);
    }
}

/* rd_ev: the socket of an UP link is readable. */
static void on_raw_read(evutil_socket_t fd, short what, void *arg)
{
    dist_conn *c = arg;
    gr_dist *d = c->d;
    size_t budget = DIST_READ_BUDGET;
    ssize_t n;
    int r;

    (void)what;
    d->activity++;
    heard(c);
    while (c->state == CONN_UP && budget > 0) {
        n = recv(fd, d->rbuf, DIST_READ_CHUNK, 0);
        if (n > 0) {
            /* One wake-up per destination scheduler for the chunk's signals,
             * made once all are queued: the woken thread then finds them all,
             * where waking at the first let it run dry and sleep again
             * before the next (a stream of 64 KiB messages woke the sink's
             * scheduler 0.6 times per message; docs/benchmarks.md). A chunk
             * is at most DIST_READ_CHUNK bytes: that bounds the delay. */
            d->holding = true;
            r = feed_up(c, d->rbuf, (size_t)n);
            d->holding = false;
            gr_rt_wakes_flush(d->rt, &d->wakes);
            if (r < 0) {
                return;
            }
            budget = (size_t)n < budget ? budget - (size_t)n : 0;
            if ((size_t)n < DIST_READ_CHUNK) {
                break; /* the socket is drained */
            }
        } else if (n == 0) {
            conn_failed(c, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            conn_failed(c, BEV_EVENT_ERROR | BEV_EVENT_READING, errno);
            return;
        }
    }
}

/* ---- frames out ------------------------------------------------------------------- */

static int seal_lane(dist_conn *c, gr_batch *b);

static void msg_release(void *m)
{
    girder_msg_unref(m);
}

/* One frame, in pieces (dist_piece), into b. A tail of at least
 * DIST_TAIL_REF bytes that a message holds is referenced, not copied: the
 * batch keeps a reference to the message until the record is written, and
 * the seal encrypts the payload straight from it (proto/record.c). */
static int batch_put(gr_batch *b, const dist_piece *pc, size_t n)
{
    const dist_piece *tail = &pc[1];
    int r;

    if (pc[0].frame) {
        return gr_batch_add(b, pc[0].frame);
    }
    if (n == 1) {
        return gr_batch_add_packed(b, pc[0].p, pc[0].len);
    }
    if (tail->msg == NULL || tail->len < DIST_TAIL_REF) {
        return gr_batch_add_packed_copy(b, pc[0].p, pc[0].len, tail->p, tail->len);
    }
    r = gr_batch_add_packed_ref(b, pc[0].p, pc[0].len, tail->p, tail->len, msg_release,
                                girder_msg_ref(tail->msg));
    if (r < 0) {
        girder_msg_unref(tail->msg);
    }
    return r;
}

/* Add one frame to lane b. A lane whose record is full is sealed and written
 * first, then the frame starts the next record; a lane that reaches
 * DIST_RECORD_SOFT is sealed and written at once. 0 (frames_out counted) or
 * the batch's error. */
static int lane_add(dist_conn *c, gr_batch *b, const dist_piece *pc, size_t n)
{
    dist_link_stats *ls;
    int r = batch_put(b, pc, n);

    if (r == -ENOBUFS && (r = seal_lane(c, b)) == 0) {
        r = batch_put(b, pc, n);
    }
    if (r < 0) {
        return r;
    }
    DIST_CTR_ADD(c->d, frames_out, 1);
    if ((ls = DIST_LINK(c)) != NULL) {
        dist_link_add(&ls->frames_out, 1);
    }
    /* A lane this full goes out now rather than at the flush: the record stays
     * in cache for the cipher and the copy into the socket, and the peer starts
     * opening it while we seal the next one (design notes). */
    return gr_batch_size(b) >= DIST_RECORD_SOFT ? seal_lane(c, b) : 0;
}

int gr_dist_conn_send(dist_conn *c, int lane, const dist_piece *pieces, size_t n)
{
    int r;

    if (n == 0 || n > DIST_PIECES_MAX || (pieces[0].frame != NULL && n != 1) ||
        (lane != DIST_LANE_CTRL && lane != DIST_LANE_BULK)) {
        return -EINVAL;
    }
    if (c->state != CONN_UP || c->bev == NULL) {
        return GR_ENOCONN;
    }
    if ((r = lane_add(c, lane == DIST_LANE_CTRL ? c->ctrl : c->bulk, pieces, n)) ==
        GR_EFRAMETOOBIG) {
        return r; /* over the peer's max_frame: refused, the link stays */
    }
    if (r < 0) {
        gr_dist_conn_close(c, r, NULL);
        return r;
    }
    if (!c->flushing) {
        /* it goes out with this loop iteration's flush (during the flush it
         * joins the lane being sealed) */
        c->last_out_ms = gr_dist_now_ms();
        c->dirty = true;
        gr_dist_schedule_flush(c->d);
    }
    return 0;
}

static int seal_lane(dist_conn *c, gr_batch *b)
{
    const uint8_t *rec;
    size_t len;
    int r;

    if (gr_batch_count(b) == 0) {
        return 0;
    }
    if ((r = gr_record_seal(c->tx, b, &rec, &len)) < 0) {
        return r;
    }
    out_raw(c, rec, len);
    DIST_CTR_ADD(c->d, records_out, 1);
    gr_batch_reset(b);
    return 0;
}

size_t gr_dist_conn_pending(const dist_conn *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

/* Stop: the Leave is written; half-close and wait for the peer's close. */
static void maybe_shutdown(dist_conn *c)
{
    if (c->drained_close && !c->dirty && c->bev && gr_dist_conn_pending(c) == 0) {
        c->drained_close = false;
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    }
}

void gr_dist_conn_drain_close(dist_conn *c)
{
    c->drained_close = true;
    maybe_shutdown(c); /* at once if nothing is queued; else once written */
}

/* The allocator's mode (glibc; process-wide). girderd starts it "roomy"
 * (daemon.c: GR_DIST_MALLOC_TRIM_ROOMY, GR_DIST_MALLOC_PAD_ROOMY), because
 * messages are allocated on one thread and freed on another and glibc would
 * otherwise keep handing the top of each arena back and faulting it in again.
 * But with that slack an arena never gives back what a backlog made it grow
 * (malloc_trim trims the main arena's top only; the others' tops shrink in
 * free(), and only above the trim threshold, down to the pad): a node that
 * once queued 64 MiB kept ~60 MiB resident. So a busy link switches to roomy,
 * and once it has drained, to glibc's defaults ("lean"), which make every
 * arena give its top back at its next free, then trims. */
static void malloc_mode(bool roomy)
{
#ifdef __GLIBC__
    mallopt(M_TRIM_THRESHOLD, roomy ? GR_DIST_MALLOC_TRIM_ROOMY : DIST_MALLOC_TRIM_LEAN);
    mallopt(M_TOP_PAD, roomy ? GR_DIST_MALLOC_PAD_ROOMY : DIST_MALLOC_PAD_LEAN);
#else
    (void)roomy;
#endif
}

/* A busy link has drained: give the memory of its backlog back (above). Once
 * per busy episode, when the link is empty: at the low mark a quarter of the
 * backlog is still queued, and what is freed after it would stay resident.
 * Dist thread. */
static void give_back(gr_dist *d)
{
    DIST_CTR_ADD(d, trims, 1);
    malloc_mode(false);
#ifdef __GLIBC__
    {
        /* this thread's arena: a block from its top, freed, runs the top
         * trim now rather than at some later free (volatile: kept) */
        void *volatile poke = malloc(DIST_MALLOC_POKE);

        free(poke);
    }
    malloc_trim(0);
#endif
    gr_debug(DIST_LOG, "a busy link drained: memory given back (malloc_trim)");
}

/* Overload accounting after a flush or a drained socket (design notes,
 * "Overload"): busy above d->out_high, not busy again at a quarter of it,
 * closed above DIST_OUT_HARD_FACTOR times it. */
static void account(dist_conn *c)
{
    gr_dist *d = c->d;
    size_t q = gr_dist_conn_pending(c) + gr_dist_protos_held(c), all = q, one, over;
    uint64_t now;
    uint32_t idx = 0;

    if (c->state != CONN_UP) {
        return;
    }
    /* the limits allow one message beyond them: its biggest (a single
     * message over the mark, e.g. 64 MiB, must not suspend every other
     * sender to that node while it crosses) */
    one = gr_dist_large_biggest(c);
    if (q >= c->queued) {
        DIST_CTR_ADD(d, out_queued_bytes, q - c->queued);
    } else {
        DIST_CTR_SUB(d, out_queued_bytes, c->queued - q);
    }
    c->queued = q;
    if (c->member && !c->hidden && c->member->idx != 0) {
        idx = c->member->idx;
        /* and what its senders queued that the loop has not handed over yet */
        all += atomic_load_explicit(&d->node_pending[idx], memory_order_relaxed);
    }
    over = all - (one < all ? one : all); /* what the marks are compared with */
    /* busy over the mark, or over the low mark when a sender's hook found it
     * busy first (it counts the signal it is adding; signal.c, link_busy): the
     * link and the runtime then agree on what is busy */
    if (!c->busy && (over > d->out_high ||
                     (over > d->out_high / 4 && idx != 0 && gr_rt_node_is_busy(d->rt, idx)))) {
        c->busy = true;
        c->busy_since_ms = gr_dist_now_ms();
        malloc_mode(true);
        DIST_CTR_ADD(d, overloads, 1);
        DIST_CTR_ADD(d, links_busy, 1);
        gr_warn(DIST_LOG,
                "link to %s (%s) busy: %zu bytes queued (high water %zu); its senders are "
                "suspended until it drains, its signals kept in order, none dropped",
                peer_name(c), c->addr, all, d->out_high);
    } else if (c->busy && over <= d->out_high / 4) {
        now = gr_dist_now_ms();
        c->busy = false;
        DIST_CTR_SUB(d, links_busy, 1);
        gr_info(DIST_LOG, "link to %s (%s) drained: %zu bytes queued after %llu ms busy",
                peer_name(c), c->addr, all, (unsigned long long)(now - c->busy_since_ms));
        c->trim_due = true;
    }
    if (c->trim_due && all <= DIST_TRIM_BELOW) {
        c->trim_due = false;
        give_back(d);
    }
    if (idx != 0) {
        atomic_store_explicit(&d->link_out[idx], q - (one < q ? one : q), memory_order_relaxed);
        atomic_store_explicit(&d->link_queued[idx], all | (c->busy ? DIST_QUEUED_BUSY : 0),
                              memory_order_relaxed);
        if (c->busy) {
            gr_rt_node_busy(d->rt, idx, true);
        } else if (over <= d->out_high / 4 && gr_rt_node_is_busy(d->rt, idx)) {
            gr_rt_node_busy(d->rt, idx, false); /* its suspended senders run again */
        }
    }
    if (over > d->out_high * DIST_OUT_HARD_FACTOR) {
        /* the last resort: senders that do not stop (threads, or more than a
         * turn's worth each) could otherwise grow it without end */
        gr_warn(DIST_LOG, "link to %s (%s): %zu bytes queued, over %zu: closing it", peer_name(c),
                c->addr, all, d->out_high * DIST_OUT_HARD_FACTOR);
        DIST_CTR_ADD(d, overload_closes, 1);
        gr_dist_conn_close(c, GR_EOVERLOAD, NULL);
    }
}

bool gr_dist_conn_account(dist_conn *c)
{
    account(c);
    return c->busy || c->state != CONN_UP;
}

void gr_dist_conn_flush_all(gr_dist *d)
{
    dist_conn *c, *next;
    int r;

    for (c = d->conns; c; c = next) {
        next = c->next;
        if (c->state != CONN_UP || !c->dirty) {
            continue;
        }
        c->dirty = false;
        c->flushing = true;
        r = seal_lane(c, c->ctrl);
        if (r == 0) {
            r = gr_dist_protos_flush(c); /* the large lane's chunk joins the bulk lane */
        }
        c->flushing = false;
        if (r < 0 || (r = seal_lane(c, c->bulk)) < 0) {
            gr_dist_conn_close(c, r, NULL);
            continue;
        }
        /* bytes sent straight to the socket get no on_write: a drained link
         * that must half-close does it here */
        maybe_shutdown(c);
        if (gr_dist_protos_ready(c)) {
            /* the next chunk in the next loop iteration, after whatever else
             * arrived meanwhile (small signals go first) */
            event_active(d->pump_ev, EV_TIMEOUT, 0);
        }
        account(c);
    }
    while ((c = d->dead) != NULL) {
        d->dead = c->next;
        gr_dist_conn_free(c);
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    dist_conn *c = arg;

    (void)bev;
    if (c->state == CONN_UP && gr_dist_protos_held(c) > 0) {
        c->dirty = true; /* the socket drained: the next chunk */
        gr_dist_schedule_flush(c->d);
    }
    account(c);
    maybe_shutdown(c);
}

/* ---- events, timers, close --------------------------------------------------------- */

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    dist_conn *c = arg;
    int err = EVUTIL_SOCKET_ERROR();
    int r;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = CONN_HANDSHAKE;
        if ((r = hs_start(c, GR_HANDSHAKE_INITIATOR)) < 0) {
            gr_dist_conn_close(c, r, NULL);
            return;
        }
        hs_output(c);
        return;
    }
    conn_failed(c, what, err);
}

/* The socket reported EOF or error err (what: BEV_EVENT_* flags): close c. */
static void conn_failed(dist_conn *c, short what, int err)
{
    if (what & BEV_EVENT_EOF) {
        err = ECONNRESET;
    }
    if (err == 0) {
        err = EIO;
    }
    if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE) {
        DIST_CTR_ADD(c->d, handshakes_failed, 1);
        c->fail = -err;
        if (c->outgoing) {
            gr_log(dial_quiet(c) ? GR_LOG_DEBUG : GR_LOG_INFO, DIST_LOG,
                   "cannot connect to %s (%s): %s", peer_name(c), c->addr, gr_errid(-err));
            gr_dist_conn_close(c, 0, NULL);
        } else {
            gr_dist_conn_close(c, -err, NULL);
        }
        return;
    }
    if (c->retired) {
        gr_dist_conn_close(c, 0, DIST_WHY_RETIRED); /* the peer closed its loser first */
        return;
    }
    if (c->d->stopping || (c->hidden && (what & BEV_EVENT_EOF))) {
        gr_dist_conn_close(c, 0, NULL); /* expected: no warning */
        return;
    }
    gr_dist_conn_close(c, -err, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    dist_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->retired) {
        gr_dist_conn_close(c, 0, DIST_WHY_RETIRED);
        return;
    }
    if (c->state != CONN_UP) {
        DIST_CTR_ADD(c->d, handshakes_failed, 1);
        c->fail = GR_ETIMEOUT;
        if (c->unauth) {
            gr_dist_admit_log(c->d, gr_errid(GR_ETIMEOUT),
                              "handshake with %s%s (%s) failed: %s (%s)", peer_name(c),
                              claimed(c) ? " (unverified)" : "", c->addr, gr_errid(GR_ETIMEOUT),
                              c->slot.hello ? "not done in time" : "no hello in time");
        } else {
            gr_warn(DIST_LOG, "handshake with %s (%s) failed: %s", peer_name(c), c->addr,
                    gr_errid(GR_ETIMEOUT));
        }
        gr_dist_conn_close(c, 0, NULL);
        return;
    }
    /* UP: heartbeats and the silence checks are the node's one tick
     * (detect.c); this timer was the handshake deadline */
}

void gr_dist_conn_close(dist_conn *c, int err, const char *why)
{
    gr_dist *d = c->d;

    if (c->state == CONN_DEAD) {
        return;
    }
    if (err && c->state == CONN_UP && c->hidden && c->inflight == 0 &&
        (err == -ECONNRESET || err == -EPIPE)) {
        /* A CLI that has its answer closes at once, often with a heartbeat
         * unread (hence a reset): that is how clients end, not a fault. */
    } else if (c->state == CONN_UP && c->retired && !err) {
        /* a tie-break loser: no member's link any more, its end is routine */
        DIST_CTR_ADD(d, links_retired, 1);
        gr_log_fields(GR_LOG_DEBUG, DIST_LOG,
                      (gr_log_field[]){{"event", "conn_retired"},
                                       {"peer", peer_name(c)},
                                       {"addr", c->addr},
                                       {"reason", why ? why : DIST_WHY_RETIRED}},
                      4, "retired link to %s (%s) closed", peer_name(c), c->addr);
    } else if (c->state == CONN_UP && !c->hidden) {
        /* every member link's end, once, with its reason */
        const char *reason = err ? gr_errid(err) : why ? why : d->stopping ? "stopping" : "closed";

        gr_log_fields(err ? GR_LOG_WARN : GR_LOG_INFO, DIST_LOG,
                      (gr_log_field[]){{"event", "conn_down"},
                                       {"peer", peer_name(c)},
                                       {"addr", c->addr},
                                       {"reason", reason}},
                      4, "link to %s (%s) down: %s", peer_name(c), c->addr, reason);
    } else if (err && c->state == CONN_UP) {
        gr_warn(DIST_LOG, "closing connection %s (%s): %s", peer_name(c), c->addr, gr_errid(err));
    } else if (err && c->unauth) {
        gr_dist_admit_log(d, gr_errid(err), "closing connection %s (%s): %s", peer_name(c), c->addr,
                          gr_errid(err));
    } else if (err) {
        gr_warn(DIST_LOG, "closing connection %s (%s): %s", peer_name(c), c->addr, gr_errid(err));
    }
    if (c->state == CONN_UP && c->hidden) {
        gr_log_fields(GR_LOG_DEBUG, DIST_LOG,
                      (gr_log_field[]){{"event", "client_down"},
                                       {"peer", c->peer.name},
                                       {"addr", c->addr},
                                       {"reason", err ? gr_errid(err) : "closed"}},
                      4, "client %s (%s) disconnected", c->peer.name, c->addr);
    }
    if (c->busy) {
        DIST_CTR_SUB(d, links_busy, 1);
        c->busy = false;
    }
    DIST_CTR_SUB(d, out_queued_bytes, c->queued);
    c->queued = 0;
    c->state = CONN_DEAD;
    gr_dist_admit_leave(c);
    if (c->rd_ev) {
        event_free(c->rd_ev);
        c->rd_ev = NULL;
    }
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->timer) {
        event_free(c->timer);
        c->timer = NULL;
    }
    gr_handshake_free(c->hs);
    c->hs = NULL;
    gr_record_tx_free(c->tx);
    c->tx = NULL;
    gr_record_rx_free(c->rx);
    c->rx = NULL;
    gr_batch_free(c->ctrl);
    gr_batch_free(c->bulk);
    c->ctrl = c->bulk = NULL;
    c->dirty = false;
    /* the large lane drops its queue, rpc answers the calls, the member goes
     * down (kinds.c, in this order) */
    gr_dist_protos_closed(c, err, why);
    c->member = NULL;
    if (c->prev) {
        c->prev->next = c->next;
    } else if (d->conns == c) {
        d->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = NULL;
    c->next = d->dead;
    d->dead = c;
    if (d->flush_ev) {
        gr_dist_schedule_flush(d);
    }
    gr_dist_stop_progress(d);
}

void gr_dist_conn_free(dist_conn *c)
{
    free(c);
}

void gr_dist_conn_retire(dist_conn *c)
{
    gr_info(DIST_LOG, "duplicate link to %s (%s, %s) retired", c->peer.name, c->addr,
            c->outgoing ? "dialled here" : "dialled by peer");
    c->member = NULL;
    c->retired = true;
    c->drained_close = false;
    if (timer_arm(c, DIST_RETIRE_MS, false) < 0) {
        gr_dist_conn_close(c, 0, NULL);
    }
}

dist_conn *gr_dist_conn_find(gr_dist *d, uint64_t id)
{
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

/* A Heartbeat proves the peer alive, which every read already noted
 * (last_in_ms). One of the peer's (ack false) is answered at once with an ack
 * echoing its seq; an ack of our latest heartbeat is a round-trip sample for
 * the link's figures (the last one and the smoothed one, gr_dist_rtt_smooth).
 * An ack of an older heartbeat, a repeated ack and an ack on a link without
 * figures (a hidden client's) are ignored. A peer that predates acks never
 * sends one: its link's round trip stays 0 (not measured). Dist thread. */
static int heartbeat_in(dist_conn *c, const Girder__Frame *f)
{
    const Girder__Heartbeat *hb = f->heartbeat;
    dist_link_stats *ls;

    if (!hb->ack) {
        Girder__Frame af = GIRDER__FRAME__INIT;
        Girder__Heartbeat ack = GIRDER__HEARTBEAT__INIT;

        ack.seq = hb->seq;
        ack.ack = true;
        af.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
        af.heartbeat = &ack;
        (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &af}, 1);
        return 0; /* an error closed c, or the ack is lost: the next heartbeat samples */
    }
    if (hb->seq == c->hb_seq && hb->seq != c->hb_acked && hb->seq != 0 &&
        (ls = DIST_LINK(c)) != NULL) {
        uint64_t rtt = gr_dist_now_us() - c->hb_sent_us;

        c->hb_acked = hb->seq;
        atomic_store_explicit(&ls->rtt_us, rtt == 0 ? 1 : rtt, memory_order_relaxed);
        atomic_store_explicit(
            &ls->srtt_us,
            gr_dist_rtt_smooth(atomic_load_explicit(&ls->srtt_us, memory_order_relaxed), rtt),
            memory_order_relaxed);
    }
    return 0;
}

/* The link's own frame kind: heartbeats (sent by the detector's tick,
 * detect.c). */
static const dist_kind link_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_HEARTBEAT, .quiet = true, .on_frame = heartbeat_in},
};

const dist_proto gr_dist_link_proto = {
    .name = "link",
    .kinds = link_kinds,
    .nkinds = sizeof(link_kinds) / sizeof(link_kinds[0]),
};
