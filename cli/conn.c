/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.c - the CLI's connection to a node: target parsing, dialling with a
 * deadline, the hidden-client handshake and one request/reply exchange.
 *
 * Design notes:
 * - The socket is non-blocking and every wait is a poll() bounded by the one
 *   deadline, so `--timeout` covers connect, handshake and reply together.
 * - We advertise max_frame = GR_CLI_REPLY_MAX so a node never needs to fragment
 *   a reply to us; a Fragment frame is therefore refused, not reassembled.
 * - Two round trips per call, not three: gr_cli_connect runs the handshake
 *   until M2 is absorbed and M3 is queued, keeps M3 (copied into the conn) and
 *   takes the sending record half early (gr_handshake_early_tx,
 *   docs/protocol.md "Early records"). The first gr_cli_call sends M3 and its
 *   request record in one write, then feeds what arrives to the handshake
 *   until M4 is verified, and only then to the record layer: nothing the node
 *   sends is believed before its proof. A failure before M4 is a handshake
 *   failure, reported as such (stage, proof_sent, peer_closed), exactly as
 *   when the request waited for M4. A node that refuses M3 may close while a
 *   large first write is still going out (a reset): the write then fails, and
 *   the Reject already received is read first (hs_drain) so the operator
 *   still hears "wrong cookie".
 * - Calls on one connection go one at a time: once our reply is found, the
 *   rest of its record is skipped (the receiver must be drained before it
 *   takes more bytes) and any later bytes are kept for the next call.
 * - Otherwise the handshake is driven as proto/handshake.h prescribes: send the
 *   pending output after every feed (our Reject, if we fail), and bytes after
 *   the last handshake message are the first record bytes.
 */
#include "cli/conn.h"

#include "proto/err.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "proto/record.h"
#include "proto/term.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_CHUNK 65536 /* bytes read per recv() */

struct gr_cli_conn {
    int fd;                 /* connected socket, non-blocking */
    gr_handshake_peer peer; /* who answered (as said in M2 until M4 is verified) */
    gr_handshake *hs;       /* until M4 is verified: the handshake, owned */
    size_t m3_len;          /* bytes of M3 in m3, not sent yet; 0 once sent */
    int proof_sent;         /* M3 has gone out */
    gr_record_tx *tx;       /* our direction (taken early, before M4) */
    gr_record_rx *rx;       /* the node's direction, once M4 is verified */
    gr_batch *batch;        /* reused for the request */
    uint64_t next_ref;      /* RpcRequest.ref of the next call */
    uint64_t out_ref;       /* the request sent and not answered yet (0: none) */
    double out_sent_at;     /* when it was sent (now_precise_ms) */
    uint8_t *pending;       /* bytes received but not yet fed (handshake or records) */
    size_t pending_len;     /* bytes in pending */
    uint8_t m3[GR_RECORD_HDR + GR_HANDSHAKE_MSG_MAX]; /* our proof, for the first call */
};

int64_t gr_cli_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_precise_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int gr_cli_target_parse(const char *s, gr_cli_target *ret_t)
{
    gr_cli_target t = {.port = GR_CLI_PORT_DEFAULT};
    const char *at, *host, *colon = NULL, *hend;
    size_t hlen;

    if (s == NULL || (at = strchr(s, '@')) == NULL || at == s || at[1] == '\0') {
        return GR_EBADNODE;
    }
    host = at + 1;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');

        if (rb == NULL || rb == host + 1) {
            return GR_EBADNODE;
        }
        hend = rb + 1;
        if (*hend == ':') {
            colon = hend;
        } else if (*hend != '\0') {
            return GR_EBADNODE;
        }
    } else {
        colon = strchr(host, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            colon = NULL; /* a bare IPv6 address: no port */
        }
        hend = colon != NULL ? colon : host + strlen(host);
    }
    if (colon != NULL) {
        char *end;
        unsigned long p;

        errno = 0;
        p = strtoul(colon + 1, &end, 10);
        if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || p == 0 || p > 65535) {
            return -EINVAL;
        }
        t.port = (uint16_t)p;
        t.has_port = 1;
    }
    if (hend == host || (size_t)(hend - s) > GR_NODENAME_MAX) {
        return GR_EBADNODE;
    }
    memcpy(t.node, s, (size_t)(hend - s));
    t.node[hend - s] = '\0';
    if (gr_nodename_check(t.node, strlen(t.node)) < 0) {
        return GR_EBADNODE;
    }
    hlen = (size_t)(hend - host);
    if (host[0] == '[') {
        memcpy(t.host, host + 1, hlen - 2);
        t.host[hlen - 2] = '\0';
    } else {
        memcpy(t.host, host, hlen);
        t.host[hlen] = '\0';
    }
    *ret_t = t;
    return 0;
}

static void fail_set(gr_cli_fail *f, gr_cli_stage stage, int code)
{
    f->stage = stage;
    f->code = code;
}

/* Wait until fd is ready for `events` or the deadline passes. 0, GR_ETIMEOUT, -errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = deadline_ms - gr_cli_now_ms();
        int r;

        if (left <= 0) {
            return GR_ETIMEOUT;
        }
        r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0) {
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

/* Send all of buf[0..len). 0, GR_ETIMEOUT or -errno (-EPIPE, -ECONNRESET: closed). */
static int send_all(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
    const uint8_t *p = buf;
    int r;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return -errno;
        }
        if ((r = wait_fd(fd, POLLOUT, deadline_ms)) < 0) {
            return r;
        }
    }
    return 0;
}

/* Receive some bytes: returns the count (> 0), -ECONNRESET on EOF, GR_ETIMEOUT, -errno. */
static ssize_t recv_some(int fd, uint8_t *buf, size_t cap, int64_t deadline_ms)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        int r;

        if (n > 0) {
            return n;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -errno;
        }
        if ((r = wait_fd(fd, POLLIN, deadline_ms)) < 0) {
            return r;
        }
    }
}

static int is_closed(int code)
{
    return code == -ECONNRESET || code == -EPIPE || code == -ECONNABORTED;
}

/* Try one address. Returns the connected fd, or a negative code. */
static int dial_one(const struct addrinfo *ai, int64_t deadline_ms)
{
    int fd, r, one = 1;
    socklen_t sl = sizeof(r);

    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
        return -errno;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            r = -errno;
            goto fail;
        }
        if ((r = wait_fd(fd, POLLOUT, deadline_ms)) < 0) {
            goto fail;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &r, &sl) < 0) {
            r = -errno;
            goto fail;
        }
        if (r != 0) {
            r = -r;
            goto fail;
        }
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:
    close(fd);
    return r;
}

/* Resolve and connect to every address in turn. Returns the fd or a code (fail filled). */
static int dial(const gr_cli_target *t, int64_t deadline_ms, gr_cli_fail *f)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char port[8];
    int r, last = -ECONNREFUSED;

    snprintf(port, sizeof(port), "%u", (unsigned)t->port);
    /* An address literal (the common case on loopback and in scripts) needs no
     * resolver: AI_NUMERICHOST skips the netlink query AI_ADDRCONFIG makes and
     * the NSS lookup, a measurable share of a CLI call. */
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(t->host, port, &hints, &res) != 0) {
        res = NULL;
        hints.ai_flags = AI_ADDRCONFIG;
    }
    if (!res && (r = getaddrinfo(t->host, port, &hints, &res)) != 0) {
        f->gai = r;
        fail_set(f, GR_CLI_STAGE_RESOLVE, r == EAI_SYSTEM ? -errno : -ENOENT);
        return f->code;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = dial_one(ai, deadline_ms);

        if (fd >= 0) {
            freeaddrinfo(res);
            return fd;
        }
        last = fd;
        if (fd == GR_ETIMEOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    fail_set(f, GR_CLI_STAGE_CONNECT, last);
    return last;
}

/* Our name: "girder-cli-<pid>@<hostname>", or "@localhost" if the host name is unusable. */
static void client_name(char *buf, size_t cap)
{
    char host[256] = "";

    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0') {
        strcpy(host, "localhost");
    }
    snprintf(buf, cap, "girder-cli-%ld@%s", (long)getpid(), host);
    if (gr_nodename_check(buf, strlen(buf)) < 0) {
        snprintf(buf, cap, "girder-cli-%ld@localhost", (long)getpid());
    }
}

/* Send whatever the handshake has queued; counts the messages sent. */
static int hs_flush(gr_handshake *hs, int fd, int64_t deadline_ms, int *sent)
{
    const uint8_t *out;
    size_t n = gr_handshake_output(hs, &out);

    if (n == 0) {
        return 0;
    }
    (*sent)++;
    return send_all(fd, out, n, deadline_ms);
}

/* Keep buf[off..n) in c->pending (empty) for the next feed: the bytes after M2
 * (for the handshake), or those after a reply (for the next call). */
static int keep_pending(gr_cli_conn *c, const uint8_t *buf, size_t off, size_t n)
{
    if (off >= n) {
        return 0;
    }
    if ((c->pending = malloc(n - off)) == NULL) {
        return -ENOMEM;
    }
    memcpy(c->pending, buf + off, n - off);
    c->pending_len = n - off;
    return 0;
}

static int hs_drain(gr_cli_conn *c);

/* Start the handshake on c->fd and run it until M2 is absorbed and M3 queued.
 * On success c holds the handshake (c->hs), M3 unsent (c->m3), the peer as M2
 * described it and our record half (early tx); c->pending holds any bytes that
 * came after M2. Sending M3 and verifying M4 is left to the first call. */
static int handshake(gr_cli_conn *c, const gr_cli_target *t, const gr_cookie *ck, int role,
                     int64_t deadline_ms, gr_cli_fail *f)
{
    char name[GR_NODENAME_MAX + 1];
    gr_handshake_config cfg = {
        .name = name,
        .cookie = role == GR_ROLE_OBSERVER ? NULL : ck,
        .observer_key = role == GR_ROLE_OBSERVER ? ck : NULL,
        .role = role,
        .creation = 1 + randombytes_uniform(UINT32_MAX - 1),
        .hidden = 1,
        .expect_peer = t->node,
        .limits = {.max_frame = GR_CLI_REPLY_MAX,
                   .max_record = GR_CLI_REPLY_MAX + GR_FRAME_HDR + GR_RECORD_OVERHEAD_MIN},
    };
    uint8_t *buf = NULL;
    size_t off = 0;
    ssize_t n = 0;
    int r, sent = 0;

    client_name(name, sizeof(name));
    if ((r = gr_handshake_new(&cfg, GR_HANDSHAKE_INITIATOR, &c->hs)) < 0) {
        goto out;
    }
    if ((buf = malloc(RECV_CHUNK)) == NULL) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = hs_flush(c->hs, c->fd, deadline_ms, &sent)) < 0) {
        /* a node that refused us at once (a Reject "busy", then its close)
         * may have reset the connection before M1 went out: its verdict is
         * already on the socket */
        int why = is_closed(r) ? hs_drain(c) : 0;

        r = why < 0 ? why : r;
        goto out;
    }
    while (c->m3_len == 0) {
        if ((n = recv_some(c->fd, buf, RECV_CHUNK, deadline_ms)) < 0) {
            r = (int)n;
            goto out;
        }
        off = 0;
        while (off < (size_t)n && c->m3_len == 0) {
            const uint8_t *out;
            size_t used = 0, m;
            int unused = 0;

            r = gr_handshake_feed(c->hs, buf + off, (size_t)n - off, &used);
            off += used;
            if (r < 0) {
                (void)hs_flush(c->hs, c->fd, deadline_ms, &unused); /* our Reject, best effort */
                goto out;
            }
            if (r == 1) {
                r = GR_EREPLAY; /* cannot happen: M4 before M3 is refused by the handshake */
                goto out;
            }
            /* the feed that absorbed M2 queued M3: keep it for the first call */
            if ((m = gr_handshake_output(c->hs, &out)) > 0) {
                if (m > sizeof(c->m3)) {
                    r = -ENOBUFS;
                    goto out;
                }
                memcpy(c->m3, out, m);
                c->m3_len = m;
            }
            if (used == 0) {
                break; /* a partial message: read more */
            }
        }
    }
    if ((r = gr_handshake_early_tx(c->hs, &c->peer, &c->tx)) < 0 ||
        (r = keep_pending(c, buf, off, (size_t)n)) < 0) {
        goto out;
    }
    r = 0;
out:
    if (r < 0) {
        f->peer_closed = is_closed(r);
        fail_set(f, GR_CLI_STAGE_HANDSHAKE, r);
    }
    free(buf);
    return r;
}

int gr_cli_connect(const gr_cli_target *t, const gr_cookie *ck, int64_t deadline_ms,
                   gr_cli_conn **ret_c, gr_cli_fail *ret_fail)
{
    return gr_cli_connect_as(t, ck, GR_ROLE_MEMBER, deadline_ms, ret_c, ret_fail);
}

int gr_cli_connect_as(const gr_cli_target *t, const gr_cookie *key, int role, int64_t deadline_ms,
                      gr_cli_conn **ret_c, gr_cli_fail *ret_fail)
{
    const gr_cookie *ck = key;
    gr_cli_fail f = {0};
    gr_cli_conn *c;
    int r;

    if ((c = calloc(1, sizeof(*c))) == NULL) {
        fail_set(ret_fail, GR_CLI_STAGE_CONNECT, -ENOMEM);
        return -ENOMEM;
    }
    c->fd = -1;
    c->next_ref = 1;
    if ((r = dial(t, deadline_ms, &f)) < 0) {
        goto fail;
    }
    c->fd = r;
    if ((r = handshake(c, t, ck, role, deadline_ms, &f)) < 0) {
        goto fail;
    }
    if ((r = gr_batch_new(&c->peer.limits, &c->batch)) < 0) {
        fail_set(&f, GR_CLI_STAGE_HANDSHAKE, r);
        goto fail;
    }
    *ret_c = c;
    return 0;
fail:
    *ret_fail = f;
    gr_cli_conn_close(c);
    return r;
}

const char *gr_cli_conn_peer(const gr_cli_conn *c)
{
    return c->peer.name;
}

/* Copy the reply out of its frame into *ret_r. 0 or -ENOMEM. */
static int take_reply(const Girder__RpcReply *rep, double rtt_ms, gr_cli_reply *ret_r)
{
    gr_cli_reply r = {.status = rep->status, .rtt_ms = rtt_ms};

    if (r.status > 0) {
        r.status = GR_EBADFRAME; /* gr_frame_check refuses it; belt and braces */
    }
    if (r.status < 0) {
        const char *why =
            rep->reason != NULL && rep->reason[0] != '\0' ? rep->reason : gr_errid(r.status);

        if ((r.reason = strdup(why)) == NULL) {
            return -ENOMEM;
        }
    } else {
        if ((r.result = malloc(rep->result.len > 0 ? rep->result.len : 1)) == NULL) {
            return -ENOMEM;
        }
        if (rep->result.len > 0) {
            memcpy(r.result, rep->result.data, rep->result.len);
        }
        r.len = rep->result.len;
        if (r.len == 0 || gr_term_validate(r.result, r.len) < 0) {
            free(r.result);
            return GR_EBADTERM;
        }
    }
    *ret_r = r;
    return 0;
}

/* Look at one received frame: 1 and *ret_r if it is our reply, 0 to skip it, or an error. */
static int on_frame(const uint8_t *fr, size_t len, uint64_t ref, double sent_at,
                    gr_cli_reply *ret_r)
{
    Girder__Frame *f = NULL;
    int r;

    if ((r = gr_frame_unpack(fr, len, &f)) < 0) {
        return r;
    }
    switch (f->msg_case) {
    case GIRDER__FRAME__MSG_RPC_REPLY:
        r = 0;
        if (f->rpc_reply->ref == ref) {
            r = take_reply(f->rpc_reply, now_precise_ms() - sent_at, ret_r);
            r = r < 0 ? r : 1;
        }
        break;
    case GIRDER__FRAME__MSG_FRAGMENT:
        r = GR_EFRAMETOOBIG; /* we advertised GR_CLI_REPLY_MAX: nothing should be cut */
        break;
    default:
        r = 0; /* heartbeats, frames of later versions: not ours */
        break;
    }
    gr_frame_free(f);
    return r;
}

/* Our reply was found in the current record: skip the rest of its frames (none
 * can be ours: one call at a time) and keep the bytes after it, buf[0..n), for
 * the next call on this connection. 1, or -ENOMEM (*ret_r cleared). */
static int after_reply(gr_cli_conn *c, const uint8_t *buf, size_t n, gr_cli_reply *ret_r)
{
    const uint8_t *fr;
    size_t flen;

    while (gr_record_next(c->rx, &fr, &flen) == 1) {
        /* an error is sticky in rx: the next call reports it */
    }
    if (keep_pending(c, buf, 0, n) < 0) {
        gr_cli_reply_clear(ret_r);
        return -ENOMEM;
    }
    return 1;
}

/* Feed received record bytes and handle every complete frame. 1 (reply found),
 * 0, or error. Not on c->pending itself: after_reply may set it. */
static int on_bytes(gr_cli_conn *c, const uint8_t *buf, size_t n, uint64_t ref, double sent_at,
                    gr_cli_reply *ret_r)
{
    size_t off = 0;
    int r;

    while (off < n) {
        const uint8_t *fr;
        size_t used = 0, flen;

        if ((r = gr_record_feed(c->rx, buf + off, n - off, &used)) < 0) {
            return r;
        }
        off += used;
        while ((r = gr_record_next(c->rx, &fr, &flen)) == 1) {
            int h = on_frame(fr, flen, ref, sent_at, ret_r);

            if (h < 0) {
                return h;
            }
            if (h == 1) {
                return after_reply(c, buf + off, n - off, ret_r);
            }
        }
        if (r < 0) {
            return r;
        }
        if (used == 0) {
            break; /* cannot happen once frames are drained; never spin */
        }
    }
    return 0;
}

/* Feed the handshake until it has verified M4, then finish it: c gets the rx,
 * the handshake is freed. Sets *ret_used to the bytes it took (the rest are
 * records). 0 (M4 verified, or more bytes needed while c->hs stays) or the
 * handshake's error, after our Reject was sent (best effort). */
static int on_hs_bytes(gr_cli_conn *c, const uint8_t *buf, size_t n, int64_t deadline_ms,
                       size_t *ret_used)
{
    gr_record_tx *tx = NULL;
    size_t off = 0;
    int r = 0, unused = 0;

    while (off < n) {
        size_t used = 0;

        r = gr_handshake_feed(c->hs, buf + off, n - off, &used);
        off += used;
        if (r != 0 || used == 0) {
            break;
        }
    }
    *ret_used = off;
    if (r < 0) {
        (void)hs_flush(c->hs, c->fd, deadline_ms, &unused); /* our Reject, best effort */
        return r;
    }
    if (r == 0) {
        return 0; /* M4 is not complete yet */
    }
    if ((r = gr_handshake_finish(c->hs, &c->peer, &tx, &c->rx)) < 0) {
        return r;
    }
    gr_record_tx_free(tx); /* NULL: our half was taken early */
    gr_handshake_free(c->hs);
    c->hs = NULL;
    return 0;
}

/* Received bytes: to the handshake while M4 is outstanding, then to the records.
 * 1 (reply found), 0 (more needed) or an error; *ret_hs_failed says whether the
 * error came from the handshake (or c->hs is still held). */
static int on_input(gr_cli_conn *c, const uint8_t *buf, size_t n, uint64_t ref, double sent_at,
                    int64_t deadline_ms, gr_cli_reply *ret_r, int *ret_hs_failed)
{
    size_t used = 0;
    int r;

    if (c->hs != NULL) {
        if ((r = on_hs_bytes(c, buf, n, deadline_ms, &used)) < 0) {
            *ret_hs_failed = 1;
            return r;
        }
        if (c->hs != NULL) {
            return 0;
        }
    }
    return on_bytes(c, buf + used, n - used, ref, sent_at, ret_r);
}

/* Send the sealed request rec[0..rlen), after M3 if that is still to go: one
 * write either way. 0 or a code (GR_ETIMEOUT, -errno, -ENOMEM). */
static int send_request(gr_cli_conn *c, const uint8_t *rec, size_t rlen, int64_t deadline_ms)
{
    uint8_t *all;
    int r;

    if (c->m3_len == 0) {
        return send_all(c->fd, rec, rlen, deadline_ms);
    }
    if ((all = malloc(c->m3_len + rlen)) == NULL) {
        return -ENOMEM;
    }
    memcpy(all, c->m3, c->m3_len);
    memcpy(all + c->m3_len, rec, rlen);
    r = send_all(c->fd, all, c->m3_len + rlen, deadline_ms);
    free(all);
    if (r == 0) {
        c->proof_sent = 1;
        sodium_memzero(c->m3, c->m3_len);
        c->m3_len = 0;
    }
    return r;
}

/* The first write (M3 and the request) failed because the node closed: it may
 * have answered our proof (a Reject) before, while the rest of a large request
 * was still going out. (Or M1 failed: the node refused the connection with a
 * Reject "busy" before our hello.) Feed what is already queued on the socket to the
 * handshake, without waiting. Returns the handshake's error (the node's
 * verdict on our proof), or 0 if there is none. */
static int hs_drain(gr_cli_conn *c)
{
    uint8_t buf[2 * (GR_RECORD_HDR + GR_HANDSHAKE_MSG_MAX)];
    ssize_t n;

    while ((n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        size_t off = 0;

        while (off < (size_t)n) {
            size_t used = 0;
            int r = gr_handshake_feed(c->hs, buf + off, (size_t)n - off, &used);

            if (r != 0) {
                return r < 0 ? r : 0;
            }
            if (used == 0) {
                break;
            }
            off += used;
        }
    }
    return 0;
}

int gr_cli_call_send(gr_cli_conn *c, const char *module, const char *function, const void *args,
                     size_t len, int64_t deadline_ms, gr_cli_fail *ret_fail)
{
    Girder__RpcRequest req = GIRDER__RPC_REQUEST__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;
    const uint8_t *rec;
    size_t rlen;
    int64_t left = deadline_ms - gr_cli_now_ms();
    int r, with_m3 = c->m3_len > 0;

    if (c->out_ref != 0) {
        fail_set(ret_fail, GR_CLI_STAGE_REQUEST, -EBUSY); /* one at a time */
        return ret_fail->code;
    }
    req.ref = c->next_ref++;
    req.module = (char *)module;
    req.function = (char *)function;
    req.args.data = (uint8_t *)args;
    req.args.len = len;
    req.deadline_ms = left <= 0 ? 1 : left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    f.msg_case = GIRDER__FRAME__MSG_RPC_REQUEST;
    f.rpc_request = &req;
    gr_batch_reset(c->batch);
    if ((r = gr_batch_add(c->batch, &f)) < 0 ||
        (r = gr_record_seal(c->tx, c->batch, &rec, &rlen)) < 0) {
        fail_set(ret_fail, GR_CLI_STAGE_REQUEST, r == -ENOBUFS ? GR_EFRAMETOOBIG : r);
        return ret_fail->code;
    }
    c->out_sent_at = now_precise_ms();
    if ((r = send_request(c, rec, rlen, deadline_ms)) < 0) {
        int h = with_m3 && is_closed(r) ? hs_drain(c) : 0;

        if (h < 0) {
            /* the node refused our proof, then closed: as if we had waited */
            ret_fail->proof_sent = 1;
            ret_fail->peer_closed = is_closed(h);
            fail_set(ret_fail, GR_CLI_STAGE_HANDSHAKE, h);
            return h;
        }
        /* with M3: as when sending our proof failed (proof_sent stays 0) */
        ret_fail->peer_closed = is_closed(r);
        fail_set(ret_fail, with_m3 ? GR_CLI_STAGE_HANDSHAKE : GR_CLI_STAGE_REQUEST, r);
        return r;
    }
    c->out_ref = req.ref;
    return 0;
}

int gr_cli_call_wait(gr_cli_conn *c, int64_t deadline_ms, gr_cli_reply *ret_r,
                     gr_cli_fail *ret_fail)
{
    uint64_t ref = c->out_ref;
    uint8_t *buf = NULL;
    int r = 0, hs_failed = 0;

    if (ref == 0) {
        fail_set(ret_fail, GR_CLI_STAGE_REQUEST, -EINVAL); /* nothing sent */
        return ret_fail->code;
    }
    c->out_ref = 0;
    if (c->pending_len > 0) {
        uint8_t *p = c->pending; /* detached: on_input may keep new leftovers */
        size_t plen = c->pending_len;

        c->pending = NULL;
        c->pending_len = 0;
        r = on_input(c, p, plen, ref, c->out_sent_at, deadline_ms, ret_r, &hs_failed);
        free(p);
        if (r != 0) {
            goto done;
        }
    }
    if ((buf = malloc(RECV_CHUNK)) == NULL) {
        r = -ENOMEM;
        goto done;
    }
    do {
        ssize_t n = recv_some(c->fd, buf, RECV_CHUNK, deadline_ms);

        if (n < 0) {
            r = (int)n;
            break;
        }
        r = on_input(c, buf, (size_t)n, ref, c->out_sent_at, deadline_ms, ret_r, &hs_failed);
    } while (r == 0);
done:
    free(buf);
    if (r < 0) {
        ret_fail->peer_closed = is_closed(r);
        if (hs_failed || c->hs != NULL) {
            /* before M4 was verified: a handshake failure, told as one */
            ret_fail->proof_sent = c->proof_sent;
            fail_set(ret_fail, GR_CLI_STAGE_HANDSHAKE, r);
        } else {
            fail_set(ret_fail, GR_CLI_STAGE_REPLY, r);
        }
        return r;
    }
    return 0;
}

int gr_cli_call(gr_cli_conn *c, const char *module, const char *function, const void *args,
                size_t len, int64_t deadline_ms, gr_cli_reply *ret_r, gr_cli_fail *ret_fail)
{
    int r = gr_cli_call_send(c, module, function, args, len, deadline_ms, ret_fail);

    return r < 0 ? r : gr_cli_call_wait(c, deadline_ms, ret_r, ret_fail);
}

void gr_cli_conn_close(gr_cli_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    gr_handshake_free(c->hs); /* M4 never verified: wipes its secrets */
    gr_batch_free(c->batch);
    gr_record_tx_free(c->tx);
    gr_record_rx_free(c->rx);
    free(c->pending);
    sodium_memzero(c, sizeof(*c));
    free(c);
}

void gr_cli_reply_clear(gr_cli_reply *r)
{
    if (r == NULL) {
        return;
    }
    free(r->reason);
    free(r->result);
    memset(r, 0, sizeof(*r));
}
