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
 * - The handshake is driven exactly as proto/handshake.h prescribes: send the
 *   pending output after every feed, and bytes after the last handshake
 *   message are the first record bytes.
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
    gr_handshake_peer peer; /* who answered */
    gr_record_tx *tx;       /* our direction */
    gr_record_rx *rx;       /* the node's direction */
    gr_batch *batch;        /* reused for the request */
    uint64_t next_ref;      /* RpcRequest.ref of the next call */
    uint8_t *pending;       /* record bytes received but not yet fed */
    size_t pending_len;     /* bytes in pending */
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

/* Run the handshake on c->fd; on success c holds the peer and both record halves,
 * and c->pending the record bytes that arrived with the last handshake message. */
static int handshake(gr_cli_conn *c, const gr_cli_target *t, const gr_cookie *ck,
                     int64_t deadline_ms, gr_cli_fail *f)
{
    char name[GR_NODENAME_MAX + 1];
    gr_handshake_config cfg = {
        .name = name,
        .cookie = ck,
        .creation = 1 + randombytes_uniform(UINT32_MAX - 1),
        .hidden = 1,
        .expect_peer = t->node,
        .limits = {.max_frame = GR_CLI_REPLY_MAX,
                   .max_record = GR_CLI_REPLY_MAX + GR_FRAME_HDR + GR_RECORD_OVERHEAD_MIN},
    };
    gr_handshake *hs = NULL;
    uint8_t *buf = NULL;
    size_t off = 0;
    ssize_t n = 0;
    int r, sent = 0, done = 0;

    client_name(name, sizeof(name));
    if ((r = gr_handshake_new(&cfg, GR_HANDSHAKE_INITIATOR, &hs)) < 0) {
        goto out;
    }
    if ((buf = malloc(RECV_CHUNK)) == NULL) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = hs_flush(hs, c->fd, deadline_ms, &sent)) < 0) {
        goto out;
    }
    while (!done) {
        if ((n = recv_some(c->fd, buf, RECV_CHUNK, deadline_ms)) < 0) {
            r = (int)n;
            goto out;
        }
        off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            int unused = 0, fr;

            r = gr_handshake_feed(hs, buf + off, (size_t)n - off, &used);
            off += used;
            if (r < 0) {
                (void)hs_flush(hs, c->fd, deadline_ms, &unused); /* our Reject, best effort */
                goto out;
            }
            if ((fr = hs_flush(hs, c->fd, deadline_ms, &sent)) < 0) {
                r = fr;
                goto out;
            }
            if (sent >= 2) {
                f->proof_sent = 1; /* M1, then M3 carrying our proof */
            }
            if (r == 1) {
                done = 1;
                break;
            }
            if (used == 0) {
                break; /* a partial message: read more */
            }
        }
    }
    if ((r = gr_handshake_finish(hs, &c->peer, &c->tx, &c->rx)) < 0) {
        goto out;
    }
    if (off < (size_t)n) {
        if ((c->pending = malloc((size_t)n - off)) == NULL) {
            r = -ENOMEM;
            goto out;
        }
        memcpy(c->pending, buf + off, (size_t)n - off);
        c->pending_len = (size_t)n - off;
    }
    r = 0;
out:
    if (r < 0) {
        f->peer_closed = is_closed(r);
        fail_set(f, GR_CLI_STAGE_HANDSHAKE, r);
    }
    free(buf);
    gr_handshake_free(hs);
    return r;
}

int gr_cli_connect(const gr_cli_target *t, const gr_cookie *ck, int64_t deadline_ms,
                   gr_cli_conn **ret_c, gr_cli_fail *ret_fail)
{
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
    if ((r = handshake(c, t, ck, deadline_ms, &f)) < 0) {
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

/* Feed received record bytes and handle every complete frame. 1 (reply found), 0, or error. */
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

            if (h != 0) {
                return h; /* our reply, or an error; the rest is of no interest */
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

int gr_cli_call(gr_cli_conn *c, const char *module, const char *function, const void *args,
                size_t len, int64_t deadline_ms, gr_cli_reply *ret_r, gr_cli_fail *ret_fail)
{
    Girder__RpcRequest req = GIRDER__RPC_REQUEST__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;
    const uint8_t *rec;
    size_t rlen;
    uint8_t *buf = NULL;
    int64_t left = deadline_ms - gr_cli_now_ms();
    double sent_at;
    int r;

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
    sent_at = now_precise_ms();
    if ((r = send_all(c->fd, rec, rlen, deadline_ms)) < 0) {
        ret_fail->peer_closed = is_closed(r);
        fail_set(ret_fail, GR_CLI_STAGE_REQUEST, r);
        return r;
    }
    if (c->pending_len > 0) {
        r = on_bytes(c, c->pending, c->pending_len, req.ref, sent_at, ret_r);
        free(c->pending);
        c->pending = NULL;
        c->pending_len = 0;
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
        r = on_bytes(c, buf, (size_t)n, req.ref, sent_at, ret_r);
    } while (r == 0);
done:
    free(buf);
    if (r < 0) {
        ret_fail->peer_closed = is_closed(r);
        fail_set(ret_fail, GR_CLI_STAGE_REPLY, r);
        return r;
    }
    return 0;
}

void gr_cli_conn_close(gr_cli_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
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
