/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn_test.c - the CLI's connection (cli/conn.h) and commands (cli/cmd.h)
 * against a fake node: a thread of this test that listens on 127.0.0.1 port 0,
 * runs the real handshake as responder (proto/) and answers the RpcRequest
 * with a canned RpcReply. Covers success (the first request sent with M3, two
 * calls on one connection), remote errors, a wrong cookie, a
 * different node, refused connections, a silent node (timeout), closes in
 * every phase, replies mixed with other frames, and what each maps to
 * (cli/fail.h exit codes and messages).
 */
#include "cli/cmd.h"
#include "cli/conn.h"
#include "cli/fail.h"
#include "cli/json.h"
#include "proto/err.h"
#include "proto/handshake.h"

#include <arpa/inet.h>
#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NODE "fake@127.0.0.1"

typedef enum fake_mode {
    FAKE_REPLY,         /* answer the request with the canned reply */
    FAKE_EXTRA_FRAMES,  /* heartbeat + a reply with another ref first, same record as M4 */
    FAKE_SILENT,        /* complete the handshake, never answer */
    FAKE_CLOSE_HELLO,   /* read M1, close */
    FAKE_BUSY,          /* refuse at once: a Reject "busy", close (as a flooded girderd) */
    FAKE_CLOSE_PROOF,   /* wrong cookie, close without a Reject */
    FAKE_REJECT_SMALL,  /* wrong cookie, tiny receive buffer: Reject, close mid-request */
    FAKE_CLOSE_REQUEST, /* handshake, read the request, close */
    FAKE_MULTI,         /* answer several connections (cmd tests), one request each */
} fake_mode;

/* The fake node and what it saw. Owned by the test; the thread writes the
 * "seen" fields before it exits and the test reads them after joining it. */
typedef struct fake {
    fake_mode mode;   /* behaviour */
    const char *name; /* node name it proves */
    gr_cookie cookie; /* its cookie */
    int lfd;          /* listening socket */
    uint16_t port;    /* its port */
    pthread_t th;     /* server thread */
    int conns;        /* FAKE_MULTI: connections to serve */
    int calls;        /* requests to answer on one connection (0: 1) */
    /* canned reply */
    int status;          /* RpcReply.status */
    const char *reason;  /* RpcReply.reason */
    uint8_t result[512]; /* RpcReply.result */
    size_t result_len;
    /* seen */
    char peer[GR_NODENAME_MAX + 1]; /* the client's name */
    int hidden;                     /* the client said hidden */
    char module[64], function[64];  /* of the last request */
    uint8_t args[1024];             /* of the last request */
    size_t args_len;
    uint32_t deadline_ms;
    int requests; /* requests seen */
    int early;    /* the first request came in the same read as M3 */
} fake;

static gr_cookie cookie_of(const char *s)
{
    gr_cookie c;

    memset(&c, 0, sizeof(c));
    c.len = strlen(s);
    memcpy(c.bytes, s, c.len);
    return c;
}

static int send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* recv with a 10 s safety net so a broken test cannot hang. */
static ssize_t recv_wait(int fd, uint8_t *buf, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    if (poll(&p, 1, 10000) <= 0) {
        return -1;
    }
    return recv(fd, buf, cap, 0);
}

static void send_hs(gr_handshake *hs, int fd, int send_it)
{
    const uint8_t *out;
    size_t n = gr_handshake_output(hs, &out);

    if (n > 0 && send_it) {
        (void)send_all(fd, out, n);
    }
}

/* Seal frames[0..n) into one record and send it, optionally after `pre` bytes. */
static void send_frames(int fd, gr_record_tx *tx, const gr_limits *lim, Girder__Frame **frames,
                        int n, const uint8_t *pre, size_t pre_len)
{
    gr_batch *b = NULL;
    const uint8_t *rec;
    size_t rlen;

    ck_assert_int_eq(gr_batch_new(lim, &b), 0);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(gr_batch_add(b, frames[i]), 0);
    }
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
    if (pre_len > 0) {
        uint8_t *all = malloc(pre_len + rlen);

        memcpy(all, pre, pre_len);
        memcpy(all + pre_len, rec, rlen);
        (void)send_all(fd, all, pre_len + rlen);
        free(all);
    } else {
        (void)send_all(fd, rec, rlen);
    }
    gr_batch_free(b);
}

/* Serve one accepted connection. */
static void serve(fake *fk, int fd)
{
    gr_handshake_config cfg = {.name = fk->name, .cookie = &fk->cookie, .creation = 77};
    gr_cookie wrong = cookie_of("not-the-cookie");
    gr_handshake *hs = NULL;
    gr_handshake_peer peer;
    gr_record_tx *tx = NULL;
    gr_record_rx *rx = NULL;
    uint8_t buf[8192];
    const uint8_t *m4 = NULL;
    size_t m4_len = 0, off = 0;
    ssize_t n = 0;
    int r = 0, got = 0;

    if (fk->mode == FAKE_CLOSE_HELLO) {
        (void)recv_wait(fd, buf, sizeof(buf));
        return;
    }
    if (fk->mode == FAKE_BUSY) {
        int len = gr_handshake_reject_record(GR_EBUSY, buf, sizeof(buf));

        ck_assert_int_gt(len, 0);
        (void)send_all(fd, buf, (size_t)len);
        return; /* closed by the caller, M1 perhaps unread (a reset) */
    }
    if (fk->mode == FAKE_CLOSE_PROOF || fk->mode == FAKE_REJECT_SMALL) {
        cfg.cookie = &wrong;
    }
    ck_assert_int_eq(gr_handshake_new(&cfg, GR_HANDSHAKE_RESPONDER, &hs), 0);
    while (r == 0) {
        if ((n = recv_wait(fd, buf, sizeof(buf))) <= 0) {
            goto out;
        }
        for (off = 0; off < (size_t)n;) {
            size_t used = 0;

            r = gr_handshake_feed(hs, buf + off, (size_t)n - off, &used);
            off += used;
            if (r < 0) {
                send_hs(hs, fd, fk->mode != FAKE_CLOSE_PROOF); /* the Reject */
                goto out;
            }
            if (r == 1) {
                break;
            }
            send_hs(hs, fd, 1);
            if (used == 0) {
                break;
            }
        }
    }
    m4_len = gr_handshake_output(hs, &m4);
    ck_assert_int_eq(gr_handshake_finish(hs, &peer, &tx, &rx), 0);
    snprintf(fk->peer, sizeof(fk->peer), "%s", peer.name);
    fk->hidden = peer.hidden;
    if (fk->mode == FAKE_EXTRA_FRAMES) {
        /* M4 and a record in one write: a heartbeat and someone else's reply */
        Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
        Girder__RpcReply other = GIRDER__RPC_REPLY__INIT;
        Girder__Frame f1 = GIRDER__FRAME__INIT, f2 = GIRDER__FRAME__INIT, *fs[2] = {&f1, &f2};

        hb.seq = 9;
        f1.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
        f1.heartbeat = &hb;
        other.ref = 999;
        other.status = GR_EBADARG;
        other.reason = "badarg";
        f2.msg_case = GIRDER__FRAME__MSG_RPC_REPLY;
        f2.rpc_reply = &other;
        send_frames(fd, tx, &peer.limits, fs, 2, m4, m4_len);
    } else {
        (void)send_all(fd, m4, m4_len);
    }
    /* wait for each request */
    n = (ssize_t)off < n ? n : 0; /* bytes after M3 are records */
    fk->early = (size_t)n > off;
    for (int call = 0; call < (fk->calls > 0 ? fk->calls : 1); call++) {
        uint64_t ref = 0;

        got = 0;
        while (!got) {
            while (off < (size_t)n && !got) {
                const uint8_t *fr;
                size_t used = 0, flen;

                if (gr_record_feed(rx, buf + off, (size_t)n - off, &used) < 0) {
                    goto out;
                }
                off += used;
                while (gr_record_next(rx, &fr, &flen) == 1) {
                    Girder__Frame *f = NULL;

                    ck_assert_int_eq(gr_frame_unpack(fr, flen, &f), 0);
                    if (f->msg_case == GIRDER__FRAME__MSG_RPC_REQUEST) {
                        Girder__RpcRequest *q = f->rpc_request;

                        snprintf(fk->module, sizeof(fk->module), "%s", q->module);
                        snprintf(fk->function, sizeof(fk->function), "%s", q->function);
                        ck_assert_uint_le(q->args.len, sizeof(fk->args));
                        memcpy(fk->args, q->args.data, q->args.len);
                        fk->args_len = q->args.len;
                        fk->deadline_ms = q->deadline_ms;
                        fk->requests++;
                        ref = q->ref;
                        got = 1;
                    }
                    gr_frame_free(f);
                }
            }
            if (!got) {
                off = 0;
                if ((n = recv_wait(fd, buf, sizeof(buf))) <= 0) {
                    goto out;
                }
            }
        }
        if (fk->mode == FAKE_CLOSE_REQUEST) {
            goto out;
        }
        if (fk->mode == FAKE_SILENT) {
            (void)recv_wait(fd, buf, sizeof(buf)); /* until the client gives up */
            goto out;
        }
        {
            Girder__RpcReply rep = GIRDER__RPC_REPLY__INIT;
            Girder__Frame f = GIRDER__FRAME__INIT, *fs[1] = {&f};

            rep.ref = ref;
            rep.status = fk->status;
            rep.reason = (char *)(fk->reason != NULL ? fk->reason : "");
            rep.result.data = fk->result;
            rep.result.len = fk->status == 0 ? fk->result_len : 0;
            f.msg_case = GIRDER__FRAME__MSG_RPC_REPLY;
            f.rpc_reply = &rep;
            send_frames(fd, tx, &peer.limits, fs, 1, NULL, 0);
        }
    }
out:
    gr_record_tx_free(tx);
    gr_record_rx_free(rx);
    gr_handshake_free(hs);
}

static void *fake_main(void *arg)
{
    fake *fk = arg;
    int conns = fk->mode == FAKE_MULTI ? fk->conns : 1;

    for (int i = 0; i < conns; i++) {
        struct pollfd p = {.fd = fk->lfd, .events = POLLIN};
        int fd;

        if (poll(&p, 1, 10000) <= 0 || (fd = accept(fk->lfd, NULL, NULL)) < 0) {
            break;
        }
        serve(fk, fd);
        close(fd);
    }
    return NULL;
}

/* A listening socket on 127.0.0.1, port 0; returns the fd and its port. */
static int listen_any(uint16_t *ret_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *ret_port = ntohs(a.sin_port);
    return fd;
}

/* Start a fake node answering "pong". */
static void fake_start(fake *fk, fake_mode mode)
{
    memset(fk, 0, sizeof(*fk));
    fk->mode = mode;
    fk->name = NODE;
    fk->cookie = cookie_of("s3cret");
    fk->result[0] = 0xa4;
    memcpy(fk->result + 1, "pong", 4);
    fk->result_len = 5;
    fk->lfd = listen_any(&fk->port);
}

static void fake_run(fake *fk)
{
    ck_assert_int_eq(pthread_create(&fk->th, NULL, fake_main, fk), 0);
}

static void fake_stop(fake *fk)
{
    pthread_join(fk->th, NULL);
    close(fk->lfd);
    gr_cookie_wipe(&fk->cookie);
}

static gr_cli_target target_of(const char *name, uint16_t port)
{
    char s[300];
    gr_cli_target t;

    snprintf(s, sizeof(s), "%s:%u", name, (unsigned)port);
    ck_assert_int_eq(gr_cli_target_parse(s, &t), 0);
    return t;
}

/* Connect with `cookie` and call node.ping(); returns the first failing code. */
static int client(const fake *fk, const char *name, const char *cookie, long timeout_ms,
                  gr_cli_reply *ret_r, gr_cli_fail *ret_f)
{
    gr_cli_target t = target_of(name, fk->port);
    gr_cookie c = cookie_of(cookie);
    int64_t deadline = gr_cli_now_ms() + timeout_ms;
    gr_cli_conn *conn = NULL;
    int r;

    memset(ret_f, 0, sizeof(*ret_f));
    r = gr_cli_connect(&t, &c, deadline, &conn, ret_f);
    gr_cookie_wipe(&c);
    if (r < 0) {
        return r;
    }
    ck_assert_str_eq(gr_cli_conn_peer(conn), fk->name);
    r = gr_cli_call(conn, "node", "ping", "\x90", 1, deadline, ret_r, ret_f);
    gr_cli_conn_close(conn);
    return r;
}

static void setup(void)
{
    ck_assert_int_ge(sodium_init(), 0);
}

START_TEST(target_parsing)
{
    gr_cli_target t;

    ck_assert_int_eq(gr_cli_target_parse("a@127.0.0.2", &t), 0);
    ck_assert_str_eq(t.node, "a@127.0.0.2");
    ck_assert_str_eq(t.host, "127.0.0.2");
    ck_assert_uint_eq(t.port, 4370);
    ck_assert_int_eq(t.has_port, 0);
    ck_assert_int_eq(gr_cli_target_parse("a@h.example:4400", &t), 0);
    ck_assert_str_eq(t.node, "a@h.example");
    ck_assert_str_eq(t.host, "h.example");
    ck_assert_uint_eq(t.port, 4400);
    ck_assert_int_eq(gr_cli_target_parse("a@[::1]:5", &t), 0);
    ck_assert_str_eq(t.node, "a@[::1]");
    ck_assert_str_eq(t.host, "::1");
    ck_assert_uint_eq(t.port, 5);
    ck_assert_int_eq(gr_cli_target_parse("a@::1", &t), 0);
    ck_assert_str_eq(t.host, "::1");
    ck_assert_uint_eq(t.port, 4370);
    ck_assert_int_eq(gr_cli_target_parse("nohost", &t), GR_EBADNODE);
    ck_assert_int_eq(gr_cli_target_parse("@h", &t), GR_EBADNODE);
    ck_assert_int_eq(gr_cli_target_parse("a@", &t), GR_EBADNODE);
    ck_assert_int_eq(gr_cli_target_parse("a@:4370", &t), GR_EBADNODE);
    ck_assert_int_eq(gr_cli_target_parse("a@b@c", &t), GR_EBADNODE);
    ck_assert_int_eq(gr_cli_target_parse("a b@c", &t), GR_EBADNODE);
    ck_assert_int_eq(gr_cli_target_parse("a@h:0", &t), -EINVAL);
    ck_assert_int_eq(gr_cli_target_parse("a@h:65536", &t), -EINVAL);
    ck_assert_int_eq(gr_cli_target_parse("a@h:", &t), -EINVAL);
    ck_assert_int_eq(gr_cli_target_parse("a@h:x1", &t), -EINVAL);
    ck_assert_int_eq(gr_cli_target_parse("a@h:-1", &t), -EINVAL);
}
END_TEST

START_TEST(call_success)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;

    fake_start(&fk, FAKE_REPLY);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), 0);
    fake_stop(&fk);
    ck_assert_int_eq(rep.status, 0);
    ck_assert_uint_eq(rep.len, 5);
    ck_assert(memcmp(rep.result, "\xa4pong", 5) == 0);
    ck_assert(rep.rtt_ms >= 0.0);
    ck_assert_str_eq(fk.module, "node");
    ck_assert_str_eq(fk.function, "ping");
    ck_assert_uint_eq(fk.args_len, 1);
    ck_assert_int_eq(fk.hidden, 1);
    ck_assert(strncmp(fk.peer, "girder-cli-", 11) == 0);
    ck_assert_uint_gt(fk.deadline_ms, 0);
    ck_assert_uint_le(fk.deadline_ms, 5000);
    ck_assert_int_eq(fk.early, 1); /* the request rode with M3: two round trips */
    ck_assert_int_eq(fk.requests, 1);
    gr_cli_reply_clear(&rep);
}
END_TEST

START_TEST(two_calls_one_connection)
{
    gr_cli_target t;
    gr_cookie c = cookie_of("s3cret");
    int64_t deadline = gr_cli_now_ms() + 5000;
    gr_cli_conn *conn = NULL;
    gr_cli_reply rep = {0};
    gr_cli_fail f = {0};
    fake fk;

    fake_start(&fk, FAKE_REPLY);
    fk.calls = 2;
    fake_run(&fk);
    t = target_of(NODE, fk.port);
    ck_assert_int_eq(gr_cli_connect(&t, &c, deadline, &conn, &f), 0);
    gr_cookie_wipe(&c);
    ck_assert_str_eq(gr_cli_conn_peer(conn), NODE);
    /* the first call carries M3 and verifies M4 */
    ck_assert_int_eq(gr_cli_call(conn, "node", "ping", "\x90", 1, deadline, &rep, &f), 0);
    ck_assert_int_eq(rep.status, 0);
    ck_assert(memcmp(rep.result, "\xa4pong", 5) == 0);
    gr_cli_reply_clear(&rep);
    /* the second goes over the same, now authenticated, connection */
    ck_assert_int_eq(gr_cli_call(conn, "node", "list", "\x91\x01", 2, deadline, &rep, &f), 0);
    ck_assert_int_eq(rep.status, 0);
    ck_assert(memcmp(rep.result, "\xa4pong", 5) == 0);
    gr_cli_reply_clear(&rep);
    ck_assert_str_eq(gr_cli_conn_peer(conn), NODE);
    gr_cli_conn_close(conn);
    fake_stop(&fk);
    ck_assert_int_eq(fk.requests, 2);
    ck_assert_int_eq(fk.early, 1);
    ck_assert_str_eq(fk.function, "list");
    ck_assert_uint_eq(fk.args_len, 2);
}
END_TEST

/* Connected (M2 in, M3 held back) but never called: close frees the handshake. */
START_TEST(close_before_first_call)
{
    gr_cli_target t;
    gr_cookie c = cookie_of("s3cret");
    gr_cli_conn *conn = NULL;
    gr_cli_fail f = {0};
    fake fk;

    fake_start(&fk, FAKE_REPLY);
    fake_run(&fk);
    t = target_of(NODE, fk.port);
    ck_assert_int_eq(gr_cli_connect(&t, &c, gr_cli_now_ms() + 5000, &conn, &f), 0);
    gr_cookie_wipe(&c);
    gr_cli_conn_close(conn); /* the fake sees EOF where it waited for M3 */
    fake_stop(&fk);
    ck_assert_int_eq(fk.requests, 0);
}
END_TEST

START_TEST(call_skips_other_frames)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;

    fake_start(&fk, FAKE_EXTRA_FRAMES);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), 0);
    fake_stop(&fk);
    ck_assert_int_eq(rep.status, 0); /* not the badarg reply with ref 999 */
    ck_assert(memcmp(rep.result, "\xa4pong", 5) == 0);
    gr_cli_reply_clear(&rep);
}
END_TEST

START_TEST(call_remote_error)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;

    fake_start(&fk, FAKE_REPLY);
    fk.status = GR_EBADMODULE;
    fk.reason = "undef_module";
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), 0);
    fake_stop(&fk);
    ck_assert_int_eq(rep.status, GR_EBADMODULE);
    ck_assert_str_eq(rep.reason, "undef_module");
    ck_assert_ptr_null(rep.result);
    ck_assert_str_eq(gr_cli_remote_message(rep.status, rep.reason), "unknown module");
    ck_assert_str_eq(gr_cli_remote_message(-5999, "brand_new"), "remote error");
    ck_assert_int_eq(gr_cli_remote_exit(rep.status, rep.reason), GR_CLI_EXIT_REMOTE);
    /* an observer refused: its own exit code, by code or by reason id */
    ck_assert_int_eq(gr_cli_remote_exit(GR_ENOTALLOWED, "not_allowed"), GR_CLI_EXIT_NOTALLOWED);
    ck_assert_int_eq(gr_cli_remote_exit(-5999, "not_allowed"), GR_CLI_EXIT_NOTALLOWED);
    ck_assert_int_eq(GR_CLI_EXIT_NOTALLOWED, 6);
    gr_cli_reply_clear(&rep);
}
END_TEST

/* Failures with the observer key: exit 4, messages naming the observer key. */
START_TEST(observer_failures)
{
    const gr_cli_target t = target_of(NODE, 1);
    gr_cli_fail f = {.stage = GR_CLI_STAGE_HANDSHAKE, .code = GR_EBADCOOKIE, .observer = 1};
    char *msg;

    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert_str_eq(msg, "authentication failed: the observer key does not match the node's");
    free(msg);
    f.code = GR_EROLE;
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "bad_role");
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert_ptr_nonnull(strstr(msg, "takes no observers"));
    free(msg);
    f = (gr_cli_fail){.stage = GR_CLI_STAGE_COOKIE, .code = GR_ECOOKIEPERM, .observer = 1};
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
    msg = gr_cli_fail_message(&f, &t, 5000, "/k");
    ck_assert_str_eq(msg, "cannot use the observer key file /k: it is readable or writable by "
                          "group or others (chmod 600 /k)");
    free(msg);
}
END_TEST

START_TEST(wrong_cookie)
{
    const gr_cli_target t = target_of(NODE, 1);
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;
    char *msg;

    fake_start(&fk, FAKE_REPLY);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "guess", 5000, &rep, &f), GR_EBADCOOKIE);
    fake_stop(&fk);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    ck_assert_int_eq(f.proof_sent, 1);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "bad_cookie");
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert_str_eq(msg, "authentication failed: the cookie does not match the node's");
    free(msg);
    ck_assert_int_eq(fk.requests, 0);
}
END_TEST

/* A large first request with a wrong cookie: the node reads M3 and the start
 * of the request, rejects, and closes with the rest unread, while our write is
 * still going on. The verdict is still "wrong cookie", as when the request
 * waited for the node's proof. */
START_TEST(wrong_cookie_large_request)
{
    const gr_cli_target t = target_of(NODE, 1);
    size_t big = 7u << 20;
    uint8_t *args = calloc(1, big);
    gr_cli_target tt;
    gr_cookie c = cookie_of("guess");
    gr_cli_conn *conn = NULL;
    gr_cli_reply rep = {0};
    gr_cli_fail f = {0};
    int small = 4096;
    fake fk;
    char *msg;

    ck_assert_ptr_nonnull(args);
    args[0] = 0x91; /* [bin32 of big - 6 bytes] */
    args[1] = 0xc6;
    args[2] = (uint8_t)((big - 6) >> 24);
    args[3] = (uint8_t)((big - 6) >> 16);
    args[4] = (uint8_t)((big - 6) >> 8);
    args[5] = (uint8_t)(big - 6);
    fake_start(&fk, FAKE_REJECT_SMALL);
    ck_assert_int_eq(setsockopt(fk.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    fake_run(&fk);
    tt = target_of(NODE, fk.port);
    ck_assert_int_eq(gr_cli_connect(&tt, &c, gr_cli_now_ms() + 5000, &conn, &f), 0);
    gr_cookie_wipe(&c);
    ck_assert_int_eq(gr_cli_call(conn, "node", "ping", args, big, gr_cli_now_ms() + 5000, &rep, &f),
                     GR_EBADCOOKIE);
    gr_cli_conn_close(conn);
    fake_stop(&fk);
    free(args);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    ck_assert_int_eq(f.proof_sent, 1);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "bad_cookie");
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert_str_eq(msg, "authentication failed: the cookie does not match the node's");
    free(msg);
    ck_assert_int_eq(fk.requests, 0);
}
END_TEST

START_TEST(close_after_proof)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;

    fake_start(&fk, FAKE_CLOSE_PROOF);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), -ECONNRESET);
    fake_stop(&fk);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    ck_assert_int_eq(f.peer_closed, 1);
    ck_assert_int_eq(f.proof_sent, 1);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
}
END_TEST

START_TEST(close_mid_handshake)
{
    const gr_cli_target t = target_of(NODE, 1);
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;
    char *msg;

    fake_start(&fk, FAKE_CLOSE_HELLO);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), -ECONNRESET);
    fake_stop(&fk);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    ck_assert_int_eq(f.proof_sent, 0);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_AUTH);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "handshake_closed");
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert(strstr(msg, "closed the connection during the handshake") != NULL);
    free(msg);
}
END_TEST

START_TEST(busy_node)
{
    const gr_cli_target t = target_of(NODE, 1);
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;
    char *msg;

    fake_start(&fk, FAKE_BUSY);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), GR_EBUSY);
    fake_stop(&fk);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    /* not the cookie: unreachable for now, exit 3 */
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_UNREACHABLE);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "busy");
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert_ptr_nonnull(strstr(msg, "node busy"));
    ck_assert_ptr_null(strstr(msg, "cookie"));
    free(msg);
}
END_TEST

START_TEST(different_node)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;

    fake_start(&fk, FAKE_REPLY);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, "other@127.0.0.1", "s3cret", 5000, &rep, &f), GR_EBADNODE);
    fake_stop(&fk);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_UNREACHABLE);
}
END_TEST

START_TEST(refused)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;
    char *msg;
    gr_cli_target t;

    fake_start(&fk, FAKE_REPLY);
    close(fk.lfd); /* nobody listens on that port any more */
    t = target_of("a@127.0.0.1", fk.port);
    ck_assert_int_eq(client(&fk, "a@127.0.0.1", "s3cret", 2000, &rep, &f), -ECONNREFUSED);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_CONNECT);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_UNREACHABLE);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "ECONNREFUSED");
    msg = gr_cli_fail_message(&f, &t, 2000, NULL);
    ck_assert(strstr(msg, "cannot connect to a@127.0.0.1:") != NULL);
    ck_assert(strstr(msg, ": connection refused (is girderd running?)") != NULL);
    free(msg);
    gr_cookie_wipe(&fk.cookie);
}
END_TEST

START_TEST(resolve_fails)
{
    gr_cli_target t = target_of("a@host.invalid", 4370);
    gr_cookie c = cookie_of("x");
    gr_cli_conn *conn = NULL;
    gr_cli_fail f = {0};
    char *msg;

    ck_assert_int_lt(gr_cli_connect(&t, &c, gr_cli_now_ms() + 5000, &conn, &f), 0);
    ck_assert_ptr_null(conn);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_RESOLVE);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_UNREACHABLE);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "resolve_failed");
    msg = gr_cli_fail_message(&f, &t, 5000, NULL);
    ck_assert(strncmp(msg, "cannot resolve host host.invalid: ", 34) == 0);
    free(msg);
}
END_TEST

START_TEST(silent_node_times_out)
{
    /* Connect with a wide deadline, then call with a short one: the timeout
     * is the reply's, whatever the load did to the handshake. */
    gr_cli_target t;
    gr_cookie c = cookie_of("s3cret");
    gr_cli_conn *conn = NULL;
    gr_cli_reply rep = {0};
    gr_cli_fail f = {0};
    int64_t t0, dt;
    fake fk;

    fake_start(&fk, FAKE_SILENT);
    fake_run(&fk);
    t = target_of(NODE, fk.port);
    ck_assert_int_eq(gr_cli_connect(&t, &c, gr_cli_now_ms() + gr_test_ms(5000), &conn, &f), 0);
    gr_cookie_wipe(&c);
    t0 = gr_cli_now_ms();
    ck_assert_int_eq(gr_cli_call(conn, "node", "ping", "\x90", 1, t0 + 300, &rep, &f), GR_ETIMEOUT);
    dt = gr_cli_now_ms() - t0;
    gr_cli_conn_close(conn);
    fake_stop(&fk);                         /* the fake sees our close and ends */
    ck_assert_int_ge(dt, 290);              /* not before the deadline */
    ck_assert_int_lt(dt, gr_test_ms(3000)); /* and not much after, however busy */
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_REPLY);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_TIMEOUT);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "timeout");
    ck_assert_int_eq(fk.requests, 1);
}
END_TEST

START_TEST(accepting_but_mute_times_out)
{
    gr_cli_target t;
    gr_cookie c = cookie_of("x");
    gr_cli_conn *conn = NULL;
    gr_cli_fail f = {0};
    int64_t t0 = gr_cli_now_ms();
    uint16_t port;
    int lfd = listen_any(&port);

    /* listening, never accepting: the kernel completes the connect, M2 never comes */
    t = target_of(NODE, port);
    ck_assert_int_eq(gr_cli_connect(&t, &c, t0 + 200, &conn, &f), GR_ETIMEOUT);
    ck_assert_int_lt(gr_cli_now_ms() - t0, gr_test_ms(3000)); /* the deadline ended the wait */
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_HANDSHAKE);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_TIMEOUT);
    close(lfd);
}
END_TEST

START_TEST(close_before_reply)
{
    gr_cli_reply rep = {0};
    gr_cli_fail f;
    fake fk;

    fake_start(&fk, FAKE_CLOSE_REQUEST);
    fake_run(&fk);
    ck_assert_int_eq(client(&fk, NODE, "s3cret", 5000, &rep, &f), -ECONNRESET);
    fake_stop(&fk);
    ck_assert_int_eq(f.stage, GR_CLI_STAGE_REPLY);
    ck_assert_int_eq(gr_cli_fail_exit(&f), GR_CLI_EXIT_UNREACHABLE);
    ck_assert_str_eq(gr_cli_fail_reason(&f), "closed");
}
END_TEST

/* ------------------------------------------------------------ through cmd.c */

typedef struct captured {
    char *out, *err; /* what the command printed */
    size_t out_len, err_len;
    int exit; /* its exit code */
} captured;

/* Run `girder [--json] ARGV...` in-process against fk (cookie "s3cret"). */
static captured run_cmd(fake *fk, int json, int argc, char **argv)
{
    const gr_cli_cmd *cmd = gr_cli_cmd_find(argv[0]);
    gr_cli_ctx ctx = {.json = json, .timeout_ms = 5000};
    captured c = {0};

    ck_assert_ptr_nonnull(cmd);
    ck_assert_int_eq(setenv("GIRDER_COOKIE", "s3cret", 1), 0);
    ctx.target = target_of(NODE, fk->port);
    ctx.out = open_memstream(&c.out, &c.out_len);
    ctx.err = open_memstream(&c.err, &c.err_len);
    c.exit = gr_cli_cmd_run(cmd, &ctx, argc - 1, argv + 1);
    fclose(ctx.out);
    fclose(ctx.err);
    return c;
}

static void captured_free(captured *c)
{
    free(c->out);
    free(c->err);
}

/* Canned result: the term of JSON `text`. */
static void fake_result(fake *fk, const char *text)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    gr_cli_json_err e;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_cli_json_to_term(text, &pk, &e), 0);
    ck_assert_uint_le(sb.size, sizeof(fk->result));
    memcpy(fk->result, sb.data, sb.size);
    fk->result_len = sb.size;
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(cmd_ping_and_json)
{
    char *a[] = {"ping"};
    captured c;
    fake fk;

    fake_start(&fk, FAKE_MULTI);
    fk.conns = 2;
    fake_run(&fk);
    c = run_cmd(&fk, 0, 1, a);
    ck_assert_int_eq(c.exit, 0);
    ck_assert(strncmp(c.out, "pong from " NODE " (", 26) == 0);
    ck_assert(strstr(c.out, " ms)\n") != NULL);
    captured_free(&c);
    c = run_cmd(&fk, 1, 1, a);
    ck_assert_int_eq(c.exit, 0);
    ck_assert(strncmp(c.out, "{\"node\":\"" NODE "\",\"ms\":", 30) == 0);
    ck_assert_uint_eq(c.err_len, 0);
    captured_free(&c);
    fake_stop(&fk);
}
END_TEST

START_TEST(cmd_nodes_table)
{
    char *a[] = {"nodes"};
    captured c;
    fake fk;

    fake_start(&fk, FAKE_MULTI);
    fk.conns = 1;
    fk.calls = 2; /* node.list, then the node.about fan-out (answered the same: ignored) */
    fake_result(&fk, "[{\"name\":\"a@10.0.0.1\",\"host\":\"10.0.0.1\",\"port\":4370,"
                     "\"creation\":3,\"state\":\"self\",\"since_ms\":75000,"
                     "\"queued_bytes\":0,\"busy\":false},"
                     "{\"name\":\"bb@host-b\",\"host\":\"host-b\",\"port\":4371,"
                     "\"creation\":12345,\"state\":\"up\",\"since_ms\":900,"
                     "\"queued_bytes\":73400320,\"busy\":true}]");
    fake_run(&fk);
    c = run_cmd(&fk, 0, 1, a);
    fake_stop(&fk);
    ck_assert_int_eq(c.exit, 0);
    ck_assert_str_eq(c.out, "NAME        ADDRESS        STATE  UPTIME  VERSION  PROCS  CIPHER\n"
                            "a@10.0.0.1  10.0.0.1:4370  self        -  -            -  -\n"
                            "bb@host-b   host-b:4371    up          -  -            -  -\n"
                            "\n"
                            "LINK       BYTES-IN  BYTES-OUT  MSGS-IN  MSGS-OUT  RTT  HEARD\n"
                            "bb@host-b         -          -        -         -    -      -\n");
    ck_assert_str_eq(fk.module, "rpc"); /* the last call: the fan-out */
    ck_assert_str_eq(fk.function, "multicall");
    captured_free(&c);
}
END_TEST

START_TEST(cmd_rpc_direct_and_routed)
{
    char *direct[] = {"rpc", NODE, "kv", "get", "\"k\"", "-1", "{\"$bin\":\"AQ==\"}"};
    char *routed[] = {"rpc", "b@10.0.0.2", "kv", "get", "[1]"};
    captured c;
    fake fk;
    char *s = NULL;

    fake_start(&fk, FAKE_MULTI);
    fk.conns = 2;
    fake_result(&fk, "{\"v\":[1,\"<a@h.1.2.3>\"]}");
    fake_run(&fk);
    c = run_cmd(&fk, 1, 7, direct);
    ck_assert_int_eq(c.exit, 0);
    ck_assert_str_eq(c.out, "{\"v\":[1,\"<a@h.1.2.3>\"]}\n");
    captured_free(&c);
    c = run_cmd(&fk, 0, 5, routed);
    ck_assert_int_eq(c.exit, 0);
    ck_assert_str_eq(c.out, "{\n  \"v\": [\n    1,\n    \"<a@h.1.2.3>\"\n  ]\n}\n");
    captured_free(&c);
    fake_stop(&fk);
    /* the last request: rpc.call(NODE, MODULE, FUNCTION, [ARGS], TIMEOUT) */
    ck_assert_str_eq(fk.module, "rpc");
    ck_assert_str_eq(fk.function, "call");
    ck_assert_int_eq(gr_cli_term_buf_to_json(fk.args, fk.args_len, 0, &s), 0);
    ck_assert_str_eq(s, "[\"b@10.0.0.2\",\"kv\",\"get\",[[1]],4500]");
    free(s);
}
END_TEST

START_TEST(cmd_remote_error_and_usage)
{
    char *a[] = {"rpc", NODE, "nosuch", "f"};
    char *bad[] = {"rpc", NODE, "m", "f", "notjson"};
    char *badnode[] = {"rpc", "nonode", "m", "f"};
    captured c;
    fake fk;

    fake_start(&fk, FAKE_MULTI);
    fk.conns = 2;
    fk.status = GR_EBADMODULE;
    fk.reason = "undef_module";
    fake_run(&fk);
    c = run_cmd(&fk, 0, 4, a);
    ck_assert_int_eq(c.exit, GR_CLI_EXIT_REMOTE);
    ck_assert_str_eq(c.err, "girder: " NODE ": unknown module (undef_module)\n");
    ck_assert_uint_eq(c.out_len, 0);
    captured_free(&c);
    c = run_cmd(&fk, 1, 4, a);
    ck_assert_int_eq(c.exit, GR_CLI_EXIT_REMOTE);
    ck_assert_str_eq(c.out, "{\"error\":\"undef_module\",\"message\":\"" NODE
                            ": unknown module (undef_module)\"}\n");
    captured_free(&c);
    fake_stop(&fk);
    /* usage errors never connect */
    c = run_cmd(&fk, 0, 5, bad);
    ck_assert_int_eq(c.exit, GR_CLI_EXIT_USAGE);
    ck_assert(strstr(c.err, "JSON argument 1 'notjson' is not valid JSON") != NULL);
    captured_free(&c);
    c = run_cmd(&fk, 0, 4, badnode);
    ck_assert_int_eq(c.exit, GR_CLI_EXIT_USAGE);
    ck_assert(strstr(c.err, "'nonode' is not a node name") != NULL);
    captured_free(&c);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("cli_conn");
    TCase *tc = gr_test_tcase(s, "conn", setup, NULL, 20);
    TCase *tm = gr_test_tcase(s, "cmd", setup, NULL, 20);

    gr_test_add(tc, target_parsing, call_success, two_calls_one_connection, close_before_first_call,
                call_skips_other_frames, call_remote_error, observer_failures, wrong_cookie,
                wrong_cookie_large_request, close_after_proof, close_mid_handshake, different_node,
                refused, resolve_fails, silent_node_times_out, accepting_but_mute_times_out,
                close_before_reply, busy_node);
    gr_test_add(tm, cmd_ping_and_json, cmd_nodes_table, cmd_rpc_direct_and_routed,
                cmd_remote_error_and_usage);
    return s;
}

int main(void)
{
    return gr_test_run(conn_suite);
}
