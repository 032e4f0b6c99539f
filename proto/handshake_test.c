/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handshake_test.c - unit tests of the handshake (handshake.h): success both
 * ways with agreeing keys, early records sent with M3 (gr_handshake_early_tx),
 * each failure with its own code on both sides (wrong cookie, replays, name clash, version
 * mismatch, oversized, truncated, out-of-order and degenerate messages), roles (the observer
 * key proves the observer role; a flipped role, a wrong key, crossed secrets and an observer
 * claiming to be a member are refused), and known-answer vectors
 * that pin the message encoding, the transcript and the key derivation.
 */
#include "proto/err.h"
#include "proto/frame_int.h"
#include "proto/handshake.h"
#include "proto/handshake_int.h"

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP 8 /* messages a transcript capture holds */

/* Bytes one side sent, message by message. */
typedef struct capture {
    uint8_t msg[CAP][4 + GR_HANDSHAKE_MSG_MAX]; /* each output chunk */
    size_t len[CAP];                            /* its length */
    int n;                                      /* chunks captured */
} capture;

static gr_cookie cookie_of(const char *s)
{
    gr_cookie c = {.len = strlen(s)};

    memcpy(c.bytes, s, c.len);
    return c;
}

static gr_cookie COOKIE_A, COOKIE_B;
static gr_cookie OBS_K, OBS_K2; /* observer keys (roles tests) */

static void setup(void)
{
    ck_assert_int_ge(sodium_init(), 0);
    COOKIE_A = cookie_of("cookie-a");
    COOKIE_B = cookie_of("cookie-b");
    OBS_K = cookie_of("observer-key");
    OBS_K2 = cookie_of("observer-key-2");
}

static gr_handshake_config config(const char *name, const gr_cookie *c)
{
    gr_handshake_config cfg = {.name = name, .cookie = c, .creation = 3};

    return cfg;
}

static gr_handshake *start(const gr_handshake_config *cfg, int role)
{
    gr_handshake *hs = NULL;

    ck_assert_int_eq(gr_handshake_new(cfg, role, &hs), 0);
    return hs;
}

/* Feed buf[0..n) to `to` in chunks of `chunk`; returns its last status. */
static int feed_all(gr_handshake *to, const uint8_t *buf, size_t n, size_t chunk)
{
    size_t off = 0, used;
    int r;

    if (n == 0) {
        return gr_handshake_feed(to, "", 0, &used);
    }
    while (off < n) {
        size_t c = n - off < chunk ? n - off : chunk;

        used = 0;
        if ((r = gr_handshake_feed(to, buf + off, c, &used)) != 0) {
            return r;
        }
        ck_assert_uint_eq(used, c);
        off += c;
    }
    return 0;
}

/* Move from's pending output into `to`; optionally record it. Returns to's status. */
static int xfer(gr_handshake *from, gr_handshake *to, capture *cap, size_t chunk)
{
    const uint8_t *out = NULL;
    size_t n = gr_handshake_output(from, &out);

    if (n > 0 && cap != NULL) {
        ck_assert_int_lt(cap->n, CAP);
        ck_assert_uint_le(n, sizeof(cap->msg[0]));
        memcpy(cap->msg[cap->n], out, n);
        cap->len[cap->n++] = n;
    }
    return feed_all(to, out, n, chunk);
}

/* Run the exchange to its end; *ri / *rr are each side's final status. */
static void run(gr_handshake *i, gr_handshake *r, int *ri, int *rr, capture *ci, capture *cr,
                size_t chunk)
{
    for (int k = 0; k < 4; k++) {
        *rr = xfer(i, r, ci, chunk);
        *ri = xfer(r, i, cr, chunk);
    }
}

/* Seal one heartbeat with tx, open it with rx; both halves must agree. */
static void check_link(gr_record_tx *tx, gr_record_rx *rx, uint64_t seq)
{
    Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT, *got = NULL;
    const uint8_t *rec, *fr;
    size_t rlen, used, flen;
    gr_batch *b;

    hb.seq = seq;
    f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    ck_assert_int_eq(gr_batch_new(NULL, &b), 0);
    ck_assert_int_eq(gr_batch_add(b, &f), 0);
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
    ck_assert_int_eq(gr_record_feed(rx, rec, rlen, &used), 0);
    ck_assert_uint_eq(used, rlen);
    ck_assert_int_eq(gr_record_next(rx, &fr, &flen), 1);
    ck_assert_int_eq(gr_frame_unpack(fr, flen, &got), 0);
    ck_assert(got->heartbeat->seq == seq);
    ck_assert_int_eq(gr_record_next(rx, &fr, &flen), 0);
    gr_frame_free(got);
    gr_batch_free(b);
}

/* Free both ends of a finished handshake: its halves and its states. */
static void free_both(gr_record_tx *ti, gr_record_tx *tr, gr_record_rx *xi, gr_record_rx *xr,
                      gr_handshake *i, gr_handshake *r)
{
    gr_record_tx_free(ti);
    gr_record_tx_free(tr);
    gr_record_rx_free(xi);
    gr_record_rx_free(xr);
    gr_handshake_free(i);
    gr_handshake_free(r);
}

START_TEST(success_both_ways)
{
    gr_handshake_config ci = config("cli-1@laptop", &COOKIE_A);
    gr_handshake_config cr = config("a@10.0.0.1", &COOKIE_A);
    gr_handshake *i, *r;
    gr_handshake_peer pi, pr;
    gr_record_tx *ti, *tr;
    gr_record_rx *xi, *xr;
    uint8_t hi[64], hr[64];
    int si, sr;

    ci.hidden = 1;
    ci.creation = 11;
    ci.expect_peer = "a@10.0.0.1";
    cr.creation = 22;
    cr.limits.max_frame = 65536;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 1 << 20);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(sr, 1);
    gr_handshake_transcript(i, hi);
    gr_handshake_transcript(r, hr);
    ck_assert(memcmp(hi, hr, sizeof(hi)) == 0);
    ck_assert_int_eq(gr_handshake_finish(i, &pi, &ti, &xi), 0);
    ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
    ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), -EINVAL); /* once */
    ck_assert_str_eq(pi.name, "a@10.0.0.1");
    ck_assert_str_eq(pr.name, "cli-1@laptop");
    ck_assert_int_eq(pr.hidden, 1);
    ck_assert_int_eq(pi.hidden, 0);
    ck_assert_uint_eq(pi.creation, 22);
    ck_assert_uint_eq(pr.creation, 11);
    ck_assert_uint_eq(pi.version, GR_PROTO_VERSION);
    ck_assert_uint_eq(pr.version, GR_PROTO_VERSION);
    ck_assert_uint_eq(pi.limits.max_frame, 65536);
    ck_assert_uint_eq(pr.limits.max_frame, GR_FRAME_MAX_DEFAULT);
    ck_assert(pi.peer_time_ms > 1600000000000ull && pi.local_time_ms >= pi.peer_time_ms - 1000);
    /* keys agree, both directions, several records */
    for (uint64_t k = 0; k < 3; k++) {
        check_link(ti, xr, k);
        check_link(tr, xi, 100 + k);
    }
    free_both(ti, tr, xi, xr, i, r);
}
END_TEST

START_TEST(success_byte_by_byte)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    int si, sr;

    run(i, r, &si, &sr, NULL, NULL, 1);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(sr, 1);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

START_TEST(leftover_bytes_belong_to_records)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    const uint8_t *out;
    uint8_t wire[4096];
    size_t n, m4, used;
    gr_handshake_peer p;
    gr_record_tx *ti, *tr;
    gr_record_rx *xi, *xr;
    const uint8_t *rec;
    size_t rlen;
    gr_batch *b;

    ck_assert_int_eq(xfer(i, r, NULL, 4096), 0); /* M1 */
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 0); /* M2 */
    ck_assert_int_eq(xfer(i, r, NULL, 4096), 1); /* M3: responder done */
    ck_assert_int_eq(gr_handshake_finish(r, &p, &tr, &xr), 0);
    /* the responder writes M4 and its first record in one go */
    m4 = gr_handshake_output(r, &out);
    memcpy(wire, out, m4);
    ck_assert_int_eq(gr_batch_new(NULL, &b), 0);
    ck_assert_int_eq(gr_batch_add_packed(b, "", 0), 0);
    ck_assert_int_eq(gr_record_seal(tr, b, &rec, &rlen), 0);
    memcpy(wire + m4, rec, rlen);
    n = m4 + rlen;
    ck_assert_int_eq(gr_handshake_feed(i, wire, n, &used), 1);
    ck_assert_uint_eq(used, m4);
    ck_assert_int_eq(gr_handshake_finish(i, &p, &ti, &xi), 0);
    ck_assert_int_eq(gr_record_feed(xi, wire + used, n - used, &used), 0);
    ck_assert_uint_eq(used, rlen);
    ck_assert_int_eq(gr_record_next(xi, &rec, &rlen), 1);
    ck_assert_uint_eq(rlen, 0);
    gr_batch_free(b);
    free_both(ti, tr, xi, xr, i, r);
}
END_TEST

/* Early records: the initiator's first record travels in the same write as M3,
 * keyed by gr_handshake_early_tx, before M4 has come back. */
START_TEST(early_records)
{
    gr_handshake_config ci = config("cli-1@laptop", &COOKIE_A);
    gr_handshake_config cr = config("a@10.0.0.1", &COOKIE_A);
    gr_handshake *i, *r;
    gr_handshake_peer pe, pi, pr;
    gr_record_tx *te = NULL, *ti = (gr_record_tx *)&te, *tr; /* ti: finish must clear it */
    gr_record_rx *xi, *xr;
    Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT, *got = NULL;
    const uint8_t *out, *rec, *fr;
    uint8_t wire[4096];
    size_t m3, rlen, used, flen;
    gr_batch *b;

    ci.expect_peer = "a@10.0.0.1";
    ci.hidden = 1;
    cr.creation = 22;
    cr.limits.max_frame = 65536;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(xfer(i, r, NULL, 4096), 0); /* M1 */
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 0); /* M2: M3 queued */
    ck_assert_int_eq(gr_handshake_early_tx(i, &pe, &te), 0);
    ck_assert_ptr_nonnull(te);
    ck_assert_str_eq(pe.name, "a@10.0.0.1");
    ck_assert_uint_eq(pe.creation, 22);
    ck_assert_uint_eq(pe.version, GR_PROTO_VERSION);
    ck_assert_uint_eq(pe.limits.max_frame, 65536);
    /* M3 and the first record in one write */
    m3 = gr_handshake_output(i, &out);
    ck_assert_uint_gt(m3, 0);
    memcpy(wire, out, m3);
    hb.seq = 1;
    f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    ck_assert_int_eq(gr_batch_new(&pe.limits, &b), 0);
    ck_assert_int_eq(gr_batch_add(b, &f), 0);
    ck_assert_int_eq(gr_record_seal(te, b, &rec, &rlen), 0);
    ck_assert_uint_le(m3 + rlen, sizeof(wire));
    memcpy(wire + m3, rec, rlen);
    /* the responder verifies M3 first, then opens the record with its rx */
    ck_assert_int_eq(gr_handshake_feed(r, wire, m3 + rlen, &used), 1);
    ck_assert_uint_eq(used, m3);
    ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
    ck_assert_str_eq(pr.name, "cli-1@laptop");
    ck_assert_int_eq(gr_record_feed(xr, wire + m3, rlen, &used), 0);
    ck_assert_uint_eq(used, rlen);
    ck_assert_int_eq(gr_record_next(xr, &fr, &flen), 1);
    ck_assert_int_eq(gr_frame_unpack(fr, flen, &got), 0);
    ck_assert(got->heartbeat->seq == 1);
    gr_frame_free(got);
    ck_assert_int_eq(gr_record_next(xr, &fr, &flen), 0);
    /* a second early record before M4: the counter runs on */
    check_link(te, xr, 2);
    /* M4 in; finish makes no second tx (it would reuse nonces) */
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 1);
    ck_assert_int_eq(gr_handshake_finish(i, &pi, &ti, &xi), 0);
    ck_assert_ptr_null(ti);
    ck_assert_str_eq(pi.name, pe.name);
    ck_assert_uint_eq(pi.creation, pe.creation);
    /* after finish: the early tx goes on, the rx from finish works */
    check_link(te, xr, 3);
    check_link(te, xr, 4);
    check_link(tr, xi, 100);
    check_link(tr, xi, 101);
    ck_assert_int_eq(gr_handshake_early_tx(i, &pe, &ti), -EINVAL); /* finished */
    gr_batch_free(b);
    gr_record_tx_free(te);
    gr_record_tx_free(tr);
    gr_record_rx_free(xi);
    gr_record_rx_free(xr);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

START_TEST(early_tx_misuse)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    gr_handshake_peer p;
    gr_record_tx *t1 = NULL, *t2 = NULL;
    gr_record_rx *x = NULL;
    int si, sr;

    ck_assert_int_eq(gr_handshake_early_tx(i, &p, &t1), -EINVAL); /* before M2 */
    ck_assert_int_eq(gr_handshake_early_tx(r, &p, &t1), -EINVAL); /* a responder */
    ck_assert_int_eq(xfer(i, r, NULL, 4096), 0);                  /* M1 */
    ck_assert_int_eq(gr_handshake_early_tx(r, &p, &t1), -EINVAL); /* still a responder */
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 0);                  /* M2 */
    ck_assert_int_eq(gr_handshake_early_tx(i, &p, &t1), 0);
    ck_assert_int_eq(gr_handshake_early_tx(i, &p, &t2), -EINVAL); /* twice */
    ck_assert_ptr_null(t2);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(sr, 1);
    ck_assert_int_eq(gr_handshake_early_tx(r, &p, &t2), -EINVAL); /* responder, done */
    gr_record_tx_free(t1);
    gr_handshake_free(i);
    gr_handshake_free(r);
    /* taken late (after M4, before finish) is allowed too; a failed one is not */
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(gr_handshake_early_tx(i, &p, &t2), 0);
    ck_assert_int_eq(gr_handshake_finish(i, &p, &t1, &x), 0);
    ck_assert_ptr_null(t1);
    ck_assert_ptr_nonnull(x);
    gr_record_rx_free(x);
    gr_record_tx_free(t2);
    gr_handshake_free(i);
    gr_handshake_free(r);
    cr.cookie = &COOKIE_B;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_EBADCOOKIE);
    ck_assert_int_lt(si, 0);
    ck_assert_int_eq(gr_handshake_early_tx(i, &p, &t2), -EINVAL); /* failed */
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

START_TEST(wrong_cookie_both_sides)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_B);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    gr_handshake_peer p;
    gr_record_tx *t;
    gr_record_rx *x;
    int si, sr;

    run(i, r, &si, &sr, NULL, NULL, 64);
    ck_assert_int_eq(sr, GR_EBADCOOKIE); /* the responder checks M3 */
    ck_assert_int_eq(si, GR_EBADCOOKIE); /* the initiator learns it from the Reject */
    ck_assert_int_eq(gr_handshake_peer_rejected(r), 0);
    ck_assert_int_eq(gr_handshake_peer_rejected(i), 1);
    ck_assert_int_eq(gr_handshake_finish(r, &p, &t, &x), -EINVAL);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

/* Cookie rotation: a responder holding cookie B and accepting A admits an
 * initiator proving either, keyed from the one proven (records both ways);
 * one proving neither is refused bad_cookie; the initiator proves its cookie
 * only, whatever it accepts. */
START_TEST(rotation_two_cookies)
{
    static const char *const who[] = {"cookie-a", "cookie-b", "cookie-c"};
    gr_cookie accept[2] = {COOKIE_A, cookie_of("cookie-z")};

    for (int k = 0; k < 3; k++) {
        gr_cookie mine = cookie_of(who[k]);
        gr_handshake_config ci = config("b@h", &mine);
        gr_handshake_config cr = config("a@h", &COOKIE_B);
        gr_handshake *i, *r;
        gr_handshake_peer pi, pr;
        gr_record_tx *ti, *tr;
        gr_record_rx *xi, *xr;
        int si, sr;

        cr.accept = accept;
        cr.n_accept = 2;
        ci.accept = &COOKIE_B; /* ignored: an initiator proves its cookie */
        ci.n_accept = 1;
        i = start(&ci, GR_HANDSHAKE_INITIATOR);
        r = start(&cr, GR_HANDSHAKE_RESPONDER);
        run(i, r, &si, &sr, NULL, NULL, 1 << 20);
        if (k == 2) {
            ck_assert_int_eq(sr, GR_EBADCOOKIE);
            ck_assert_int_eq(si, GR_EBADCOOKIE);
            ck_assert_int_eq(gr_handshake_peer_rejected(i), 1);
            gr_handshake_free(i);
            gr_handshake_free(r);
            continue;
        }
        ck_assert_int_eq(si, 1);
        ck_assert_int_eq(sr, 1);
        ck_assert_int_eq(gr_handshake_finish(i, &pi, &ti, &xi), 0);
        ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
        for (uint64_t n = 0; n < 3; n++) {
            check_link(ti, xr, n);
            check_link(tr, xi, 50 + n);
        }
        free_both(ti, tr, xi, xr, i, r);
    }
}
END_TEST

/* An initiator holding only the new cookie against a responder that accepts
 * only the old one (rotation steps out of order) is refused; an observer claim
 * cannot be proven with an accepted cookie; the config is checked. */
START_TEST(rotation_limits)
{
    gr_cookie accept[GR_HANDSHAKE_ACCEPT_MAX + 1];
    gr_cookie empty = {.len = 0};
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_B);
    gr_handshake *i, *r, *hs = NULL;
    int si, sr;

    for (size_t k = 0; k <= GR_HANDSHAKE_ACCEPT_MAX; k++) {
        accept[k] = COOKIE_B;
    }
    /* the initiator's accepted cookies never make it prove them */
    ci.accept = accept;
    ci.n_accept = 1;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 1 << 20);
    ck_assert_int_eq(sr, GR_EBADCOOKIE);
    gr_handshake_free(i);
    gr_handshake_free(r);
    /* observer with the cluster's accepted cookie as its key: refused */
    ci = config("cli@h", NULL);
    ci.role = GR_ROLE_OBSERVER;
    ci.hidden = 1;
    ci.observer_key = &COOKIE_A;
    cr = config("a@h", &COOKIE_B);
    cr.observer_key = &OBS_K;
    cr.accept = &COOKIE_A;
    cr.n_accept = 1;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 1 << 20);
    ck_assert_int_eq(sr, GR_EBADCOOKIE);
    gr_handshake_free(i);
    gr_handshake_free(r);
    /* config checks */
    cr = config("a@h", &COOKIE_B);
    cr.n_accept = 1; /* accept NULL */
    ck_assert_int_eq(gr_handshake_new(&cr, GR_HANDSHAKE_RESPONDER, &hs), -EINVAL);
    cr.accept = accept;
    cr.n_accept = GR_HANDSHAKE_ACCEPT_MAX + 1;
    ck_assert_int_eq(gr_handshake_new(&cr, GR_HANDSHAKE_RESPONDER, &hs), -EINVAL);
    cr.accept = &empty;
    cr.n_accept = 1;
    ck_assert_int_eq(gr_handshake_new(&cr, GR_HANDSHAKE_RESPONDER, &hs), -EINVAL);
    ck_assert_ptr_null(hs);
    cr.accept = accept;
    cr.n_accept = GR_HANDSHAKE_ACCEPT_MAX;
    ck_assert_int_eq(gr_handshake_new(&cr, GR_HANDSHAKE_RESPONDER, &hs), 0);
    gr_handshake_free(hs);
}
END_TEST

/* The initiator checks the responder's proof itself: a forged M4 MAC. */
START_TEST(bad_responder_proof)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    const uint8_t *out;
    uint8_t m4[256];
    size_t n;

    ck_assert_int_eq(xfer(i, r, NULL, 4096), 0);
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 0);
    ck_assert_int_eq(xfer(i, r, NULL, 4096), 1);
    n = gr_handshake_output(r, &out);
    ck_assert_uint_le(n, sizeof(m4));
    memcpy(m4, out, n);
    m4[n - 1] ^= 1; /* last byte of the MAC */
    ck_assert_int_eq(feed_all(i, m4, n, n), GR_EBADCOOKIE);
    ck_assert_int_eq(gr_handshake_peer_rejected(i), 0);
    /* the initiator queued a Reject naming the reason */
    n = gr_handshake_output(i, &out);
    ck_assert_uint_gt(n, 4);
    ck_assert(memmem(out, n, "bad_cookie", 10) != NULL);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

START_TEST(replay_into_new_handshake)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    capture *ca = calloc(1, sizeof(*ca)), *cb = calloc(1, sizeof(*cb));
    gr_handshake *i, *r;
    int si, sr;

    /* a good session, recorded by an eavesdropper */
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, ca, cb, 4096);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(sr, 1);
    ck_assert_int_eq(ca->n, 2); /* M1, M3 */
    ck_assert_int_eq(cb->n, 2); /* M2, M4 */
    gr_handshake_free(i);
    gr_handshake_free(r);

    /* M1 then M3 replayed to a fresh responder: M3 echoes an old key */
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(feed_all(r, ca->msg[0], ca->len[0], 4096), 0);
    ck_assert_int_eq(feed_all(r, ca->msg[1], ca->len[1], 4096), GR_EREPLAY);
    gr_handshake_free(r);

    /* M2 replayed to a fresh initiator: it echoes someone else's key */
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    ck_assert_int_eq(feed_all(i, cb->msg[0], cb->len[0], 4096), GR_EREPLAY);
    gr_handshake_free(i);

    /* M4 replayed into a new session at the right moment */
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(xfer(i, r, NULL, 4096), 0);
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 0);
    ck_assert_int_eq(feed_all(i, cb->msg[1], cb->len[1], 4096), GR_EREPLAY);
    gr_handshake_free(i);
    gr_handshake_free(r);

    /* a recorded M1 twice into one responder: out of order */
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(feed_all(r, ca->msg[0], ca->len[0], 4096), 0);
    ck_assert_int_eq(feed_all(r, ca->msg[0], ca->len[0], 4096), GR_EREPLAY);
    gr_handshake_free(r);
    free(ca);
    free(cb);
}
END_TEST

START_TEST(name_clash)
{
    gr_handshake_config ci = config("a@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    int si, sr;

    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_ENAMECLASH);
    ck_assert_int_eq(si, GR_ENAMECLASH);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

/* A HelloReply built by hand, answering the initiator's M1 in m1[0..n). */
static size_t forge_reply(const uint8_t *m1, size_t n, const char *name, uint32_t version,
                          uint32_t cipher, uint8_t *out)
{
    Girder__Handshake *in = girder__handshake__unpack(NULL, n - 4, m1 + 4);
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;
    Girder__HelloReply h = GIRDER__HELLO_REPLY__INIT;
    uint8_t pk[32], sk[32];
    size_t len;

    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(in->msg_case, GIRDER__HANDSHAKE__MSG_HELLO);
    crypto_box_keypair(pk, sk);
    h.version = version;
    h.name.data = (uint8_t *)name;
    h.name.len = strlen(name);
    h.ephemeral.data = pk;
    h.ephemeral.len = 32;
    h.echo = in->hello->ephemeral;
    h.cipher = (Girder__Cipher)cipher;
    m.msg_case = GIRDER__HANDSHAKE__MSG_HELLO_REPLY;
    m.hello_reply = &h;
    len = girder__handshake__pack(&m, out + 4);
    out[0] = out[1] = 0;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    girder__handshake__free_unpacked(in, NULL);
    return len + 4;
}

/* Start an initiator and answer its M1 with a forged reply; returns its status. */
static int initiator_vs_forged(const gr_handshake_config *ci, const char *name, uint32_t version,
                               uint32_t cipher)
{
    gr_handshake *i = start(ci, GR_HANDSHAKE_INITIATOR);
    const uint8_t *m1;
    uint8_t reply[1100];
    size_t n = gr_handshake_output(i, &m1);
    int r;

    n = forge_reply(m1, n, name, version, cipher, reply);
    r = feed_all(i, reply, n, n);
    gr_handshake_free(i);
    return r;
}

START_TEST(initiator_checks_reply)
{
    gr_handshake_config ci = config("a@h", &COOKIE_A);

    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, 0), 0); /* control */
    ck_assert_int_eq(initiator_vs_forged(&ci, "a@h", GR_PROTO_VERSION, 0), GR_ENAMECLASH);
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION + 1, 0), GR_EVERSION);
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", 0, 0), GR_EVERSION);
    ck_assert_int_eq(initiator_vs_forged(&ci, "nope", GR_PROTO_VERSION, 0), GR_EBADNODE);
    ci.expect_peer = "c@h";
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, 0), GR_EBADNODE);
}
END_TEST

/* The initiator takes ChaCha20-Poly1305 or a cipher it offered, nothing else. */
START_TEST(initiator_checks_cipher)
{
    gr_handshake_config ci = config("a@h", &COOKIE_A);
    int ocb = GR_CIPHER_AES128_OCB;

    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, ocb), GR_EBADFRAME);
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, 7), GR_EBADFRAME);
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, 1000), GR_EBADFRAME);
    ci.ciphers = 1u << GR_CIPHER_AES128_OCB;
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, 0), 0);
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, ocb),
                     gr_record_cipher_fast(ocb) ? 0 : GR_EBADFRAME);
    ck_assert_int_eq(initiator_vs_forged(&ci, "b@h", GR_PROTO_VERSION, 7), GR_EBADFRAME);
}
END_TEST

/* Each pairing of offers agrees on one cipher, the same on both sides, and
 * the records then work both ways with it. */
START_TEST(cipher_negotiation)
{
    int fast = gr_record_cipher_fast(GR_CIPHER_AES128_OCB);

    for (int k = 0; k < 4; k++) {
        gr_handshake_config ci = config("b@h", &COOKIE_A);
        gr_handshake_config cr = config("a@h", &COOKIE_A);
        gr_handshake *i, *r;
        gr_handshake_peer pi, pr;
        gr_record_tx *ti, *tr;
        gr_record_rx *xi, *xr;
        uint32_t want;
        int si, sr;

        ci.ciphers = (k & 1) ? 1u << GR_CIPHER_AES128_OCB : 0;
        cr.ciphers = (k & 2) ? 1u << GR_CIPHER_AES128_OCB : 0;
        want = k == 3 && fast ? GR_CIPHER_AES128_OCB : GR_CIPHER_CHACHA20_POLY1305;
        i = start(&ci, GR_HANDSHAKE_INITIATOR);
        r = start(&cr, GR_HANDSHAKE_RESPONDER);
        run(i, r, &si, &sr, NULL, NULL, 4096);
        ck_assert_int_eq(si, 1);
        ck_assert_int_eq(sr, 1);
        ck_assert_int_eq(gr_handshake_finish(i, &pi, &ti, &xi), 0);
        ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
        ck_assert_uint_eq(pi.cipher, want);
        ck_assert_uint_eq(pr.cipher, want);
        check_link(ti, xr, 1);
        check_link(tr, xi, 2);
        free_both(ti, tr, xi, xr, i, r);
    }
}
END_TEST

/* Someone on the path who strips the offer from M1 gets ChaCha20 chosen, and
 * the responder then rejects M3: the offer is in the transcript both MAC. */
START_TEST(cipher_downgrade_detected)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i, *r;
    Girder__Handshake *m;
    const uint8_t *out;
    uint8_t m1[1100];
    size_t n, len;

    if (!gr_record_cipher_fast(GR_CIPHER_AES128_OCB)) {
        return; /* nothing is offered without AES instructions */
    }
    ci.ciphers = cr.ciphers = 1u << GR_CIPHER_AES128_OCB;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    n = gr_handshake_output(i, &out);
    m = girder__handshake__unpack(NULL, n - 4, out + 4);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->hello->n_ciphers, 1);
    m->hello->n_ciphers = 0;
    len = girder__handshake__pack(m, m1 + 4);
    girder__handshake__free_unpacked(m, NULL);
    m1[0] = m1[1] = 0;
    m1[2] = (uint8_t)(len >> 8);
    m1[3] = (uint8_t)len;
    ck_assert_int_eq(feed_all(r, m1, len + 4, len + 4), 0);
    ck_assert_int_eq(xfer(r, i, NULL, 4096), 0); /* M2 names ChaCha20: acceptable */
    ck_assert_int_eq(xfer(i, r, NULL, 4096), GR_EBADCOOKIE);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

START_TEST(version_mismatch_and_negotiation)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake *i, *r;
    gr_handshake_peer p;
    gr_record_tx *t;
    gr_record_rx *x;
    int si, sr;

    cr.version_min = 2;
    cr.version_max = 3;
    i = start(&ci, GR_HANDSHAKE_INITIATOR); /* speaks 1 only */
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_EVERSION);
    ck_assert_int_eq(si, GR_EVERSION);
    gr_handshake_free(i);
    gr_handshake_free(r);

    ci.version_min = 1;
    ci.version_max = 5;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(sr, 1);
    ck_assert_int_eq(gr_handshake_finish(i, &p, &t, &x), 0);
    ck_assert_uint_eq(p.version, 3); /* the highest common one */
    gr_record_tx_free(t);
    gr_record_rx_free(x);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

START_TEST(oversized_and_truncated)
{
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    const uint8_t big[4] = {0, 0, 0x04, 0x01}; /* 1025 */
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t zero[4] = {0, 0, 0, 0};
    /* length 6, then a Hello (field 1) claiming 100 bytes with 4 present */
    const uint8_t trunc[10] = {0, 0, 0, 6, 0x0a, 100, 0x08, 0x01, 0x10, 0x01};
    const uint8_t *out;
    gr_handshake *r;
    size_t used;

    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(gr_handshake_feed(r, big, 4, &used), GR_EFRAMETOOBIG);
    ck_assert_uint_gt(gr_handshake_output(r, &out), 0);                      /* a Reject */
    ck_assert_int_eq(gr_handshake_feed(r, zero, 4, &used), GR_EFRAMETOOBIG); /* sticky */
    gr_handshake_free(r);

    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(gr_handshake_feed(r, huge, 4, &used), GR_EFRAMETOOBIG);
    gr_handshake_free(r);

    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(gr_handshake_feed(r, zero, 4, &used), GR_EBADFRAME);
    gr_handshake_free(r);

    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(feed_all(r, trunc, sizeof(trunc), 1), GR_EBADFRAME);
    gr_handshake_free(r);

    /* a message cut short on the wire just waits for more */
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(gr_handshake_feed(r, trunc, 7, &used), 0);
    ck_assert_uint_eq(used, 7);
    ck_assert_uint_eq(gr_handshake_output(r, &out), 0);
    gr_handshake_free(r);
}
END_TEST

/* A Hello with the given ephemeral key bytes, as a record in out. */
static size_t make_hello(const uint8_t *eph, size_t eph_len, uint8_t *out)
{
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;
    Girder__Hello h = GIRDER__HELLO__INIT;
    size_t len;

    h.version_min = h.version_max = GR_PROTO_VERSION;
    h.name.data = (uint8_t *)"z@h";
    h.name.len = 3;
    h.ephemeral.data = (uint8_t *)eph;
    h.ephemeral.len = eph_len;
    m.msg_case = GIRDER__HANDSHAKE__MSG_HELLO;
    m.hello = &h;
    len = girder__handshake__pack(&m, out + 4);
    out[0] = out[1] = out[2] = 0;
    out[3] = (uint8_t)len;
    return len + 4;
}

START_TEST(malformed_hello)
{
    gr_handshake_config cr = config("a@h", &COOKIE_A);
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    uint8_t key[33] = {0}, msg[128];
    gr_handshake *r;
    size_t n;

    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    n = make_hello(key, 31, msg);
    ck_assert_int_eq(feed_all(r, msg, n, n), GR_EBADFRAME);
    gr_handshake_free(r);

    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    n = make_hello(key, 32, msg); /* all-zero point: no shared secret */
    ck_assert_int_eq(feed_all(r, msg, n, n), GR_ECRYPTO);
    gr_handshake_free(r);

    /* a Hello sent to an initiator is out of order */
    r = start(&ci, GR_HANDSHAKE_INITIATOR);
    randombytes_buf(key, 32);
    n = make_hello(key, 32, msg);
    ck_assert_int_eq(feed_all(r, msg, n, n), GR_EREPLAY);
    gr_handshake_free(r);

    /* a message with no known member */
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(feed_all(r, (const uint8_t *)"\0\0\0\2\xf8\x07", 6, 6), GR_EBADFRAME);
    gr_handshake_free(r);
}
END_TEST

START_TEST(unknown_reject_reason)
{
    gr_handshake_config ci = config("b@h", &COOKIE_A);
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;
    Girder__Reject rj = GIRDER__REJECT__INIT;
    uint8_t msg[64];
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    size_t len;

    rj.reason = "too_many_clients";
    m.msg_case = GIRDER__HANDSHAKE__MSG_REJECT;
    m.reject = &rj;
    len = girder__handshake__pack(&m, msg + 4);
    msg[0] = msg[1] = msg[2] = 0;
    msg[3] = (uint8_t)len;
    ck_assert_int_eq(feed_all(i, msg, len + 4, 64), GR_EREJECTED);
    ck_assert_int_eq(gr_handshake_peer_rejected(i), 1);
    gr_handshake_free(i);
}
END_TEST

START_TEST(config_checks)
{
    gr_handshake_config c = config("a@h", &COOKIE_A);
    gr_cookie empty = {.len = 0};
    gr_handshake *hs = NULL;

    ck_assert_int_eq(gr_handshake_new(&c, 0, &hs), -EINVAL);
    c.name = "noat";
    ck_assert_int_eq(gr_handshake_new(&c, GR_HANDSHAKE_RESPONDER, &hs), GR_EBADNODE);
    c.name = "a@h";
    c.expect_peer = "@h";
    ck_assert_int_eq(gr_handshake_new(&c, GR_HANDSHAKE_INITIATOR, &hs), GR_EBADNODE);
    c.expect_peer = NULL;
    c.cookie = &empty;
    ck_assert_int_eq(gr_handshake_new(&c, GR_HANDSHAKE_INITIATOR, &hs), -EINVAL);
    c.cookie = &COOKIE_A;
    c.version_min = 3;
    c.version_max = 2;
    ck_assert_int_eq(gr_handshake_new(&c, GR_HANDSHAKE_INITIATOR, &hs), -EINVAL);
    c.version_min = c.version_max = 0;
    c.limits.max_frame = 10;
    ck_assert_int_eq(gr_handshake_new(&c, GR_HANDSHAKE_INITIATOR, &hs), -EINVAL);
    c.limits.max_frame = 0;
    c.ciphers = 1u << 5; /* no such cipher */
    ck_assert_int_eq(gr_handshake_new(&c, GR_HANDSHAKE_RESPONDER, &hs), -EINVAL);
    ck_assert_ptr_null(hs);
    gr_handshake_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------- known answers */

static const uint8_t KAT_SK_I[32] = {
    0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
    0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a};
static const uint8_t KAT_SK_R[32] = {
    0x5d, 0xab, 0x08, 0x7e, 0x62, 0x4a, 0x8a, 0x4b, 0x79, 0xe1, 0x7f, 0x8b, 0x83, 0x80, 0x0e, 0xe6,
    0x6f, 0x3b, 0xb1, 0x29, 0x26, 0x18, 0xb6, 0xfd, 0x1c, 0x2f, 0x8b, 0x27, 0xff, 0x88, 0xe0, 0xeb};
#define KAT_COOKIE "kat-cookie"
#define KAT_TIME_I 1700000000000ull
#define KAT_TIME_R 1700000000250ull

/* Pinned outputs: change only together with GR_PROTO_VERSION and docs/protocol.md. */
static const char KAT_TRANSCRIPT[] =
    "5d4f44189a16e972df26159c1d96ce56c02e5c508ed5333a034a84d1ba17f6e8"
    "fa9f686fb9808a66a842b466c943be14bdd304a7a4eb508b18e2ebade66f6799";
static const char KAT_RECORD_I2R[] = "0000001ac94834cb767502b11b6c8124045a03f6b660e212ae891fbf40df";
static const char KAT_RECORD_R2I[] = "0000001ab56f3452331b80e6c5c9afd6ffa723685a0846c0f0d4b462ff85";

static void hex(const uint8_t *p, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, p, n);
}

static void dump(const char *what, const uint8_t *p, size_t n)
{
    char h[2 * (4 + GR_HANDSHAKE_MSG_MAX) + 1];

    hex(p, n, h);
    fprintf(stderr, "%s %s\n", what, h);
}

/* Seal one heartbeat (seq 1, time 2) as the first record of tx, in hex. */
static void first_record_hex(gr_record_tx *tx, char *out)
{
    Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;
    const uint8_t *rec;
    size_t rlen;
    gr_batch *b;

    hb.seq = 1;
    hb.time_ms = 2;
    f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    ck_assert_int_eq(gr_batch_new(NULL, &b), 0);
    ck_assert_int_eq(gr_batch_add(b, &f), 0);
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
    ck_assert_uint_lt(rlen, 64);
    hex(rec, rlen, out);
    gr_batch_free(b);
}

/* Everything the KAT derives independently, with libsodium only, from the spec. */
static void kat_reference(const capture *ci, const capture *cr, uint8_t k[5][32])
{
    gr_cookie c = cookie_of(KAT_COOKIE);
    uint8_t ck[32], pk_r[32], dh[32], h2[64], master[32];
    crypto_generichash_state t;
    static const char ctx[] = "girderv1";

    crypto_generichash(ck, 32, c.bytes, c.len, (const uint8_t *)"girder-cookie-key-v1", 20);
    crypto_generichash_init(&t, NULL, 0, 64);
    crypto_generichash_update(&t, (const uint8_t *)"girder-handshake-v1", 19);
    crypto_generichash_update(&t, ci->msg[0], ci->len[0]);
    crypto_generichash_update(&t, cr->msg[0], cr->len[0]);
    crypto_generichash_final(&t, h2, 64);
    crypto_scalarmult_base(pk_r, KAT_SK_R);
    ck_assert_int_eq(crypto_scalarmult(dh, KAT_SK_I, pk_r), 0);
    crypto_generichash_init(&t, ck, 32, 32);
    crypto_generichash_update(&t, dh, 32);
    crypto_generichash_update(&t, h2, 64);
    crypto_generichash_final(&t, master, 32);
    for (int id = 1; id <= 4; id++) {
        crypto_kdf_derive_from_key(k[id], 32, (uint64_t)id, ctx, master);
    }
    /* k[0] = the MAC M3 must carry */
    crypto_generichash(k[0], 32, h2, 64, k[1], 32);
}

START_TEST(known_answer)
{
    gr_handshake_config ci = config("i@host", NULL);
    gr_handshake_config cr = config("r@host", NULL);
    gr_cookie c = cookie_of(KAT_COOKIE);
    capture *capi = calloc(1, sizeof(*capi)), *capr = calloc(1, sizeof(*capr));
    gr_handshake *i, *r;
    gr_handshake_peer pi, pr;
    gr_record_tx *ti, *tr, *ref;
    gr_record_rx *xi, *xr;
    uint8_t th[64], k[5][32];
    Girder__Handshake *m3;
    char got[256], want[256];
    int si, sr;

    ci.cookie = cr.cookie = &c;
    ci.creation = 1;
    cr.creation = 2;
    ck_assert_int_eq(gr_handshake_new_fixed(&ci, GR_HANDSHAKE_INITIATOR, KAT_SK_I, KAT_TIME_I, &i),
                     0);
    ck_assert_int_eq(gr_handshake_new_fixed(&cr, GR_HANDSHAKE_RESPONDER, KAT_SK_R, KAT_TIME_R, &r),
                     0);
    run(i, r, &si, &sr, capi, capr, 4096);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(sr, 1);

    /* 1. independent derivation agrees with what went over the wire */
    kat_reference(capi, capr, k);
    m3 = girder__handshake__unpack(NULL, capi->len[1] - 4, capi->msg[1] + 4);
    ck_assert_ptr_nonnull(m3);
    ck_assert_uint_eq(m3->proof->mac.len, 32);
    ck_assert(memcmp(m3->proof->mac.data, k[0], 32) == 0);
    girder__handshake__free_unpacked(m3, NULL);
    ck_assert_int_eq(gr_handshake_finish(i, &pi, &ti, &xi), 0);
    ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
    ck_assert(pr.peer_time_ms == KAT_TIME_I && pr.local_time_ms == KAT_TIME_R);
    ck_assert(pi.peer_time_ms == KAT_TIME_R && pi.local_time_ms == KAT_TIME_I);
    ck_assert_int_eq(gr_record_tx_new(GR_CIPHER_CHACHA20_POLY1305, k[3], &ref), 0);
    first_record_hex(ref, want);
    gr_record_tx_free(ref);
    first_record_hex(ti, got);
    ck_assert_str_eq(got, want);

    if (getenv("GR_KAT_DUMP") != NULL) { /* print the vectors for docs/protocol.md */
        dump("M1", capi->msg[0], capi->len[0]);
        dump("M2", capr->msg[0], capr->len[0]);
        dump("M3", capi->msg[1], capi->len[1]);
        dump("M4", capr->msg[1], capr->len[1]);
        for (int id = 1; id <= 4; id++) {
            dump("k", k[id], 32);
        }
    }

    /* 2. pinned values */
    gr_handshake_transcript(i, th);
    hex(th, sizeof(th), got);
    ck_assert_str_eq(got, KAT_TRANSCRIPT);
    ck_assert_int_eq(gr_record_tx_new(GR_CIPHER_CHACHA20_POLY1305, k[3], &ref), 0);
    first_record_hex(ref, got);
    ck_assert_str_eq(got, KAT_RECORD_I2R);
    gr_record_tx_free(ref);
    first_record_hex(tr, got);
    ck_assert_str_eq(got, KAT_RECORD_R2I);

    free_both(ti, tr, xi, xr, i, r);
    free(capi);
    free(capr);
}
END_TEST

/* ---------------------------------------------------------------- roles */

/* An observer CLI: hidden, the observer key, no cookie. */
static gr_handshake_config observer_config(const char *name, const gr_cookie *key)
{
    gr_handshake_config cfg = {.name = name, .observer_key = key, .creation = 3, .hidden = 1};

    cfg.role = GR_ROLE_OBSERVER;
    return cfg;
}

/* A node holding the cookie and, unless NULL, an observer key. */
static gr_handshake_config node_config(const char *name, const gr_cookie *obs)
{
    gr_handshake_config cfg = config(name, &COOKIE_A);

    cfg.observer_key = obs;
    return cfg;
}

/* M1 of `cfg` rewritten by a man in the middle: role and hidden replaced,
 * re-encoded with a new length prefix, into out. Returns its length. */
static size_t forge_m1(const gr_handshake_config *cfg, int role, int hidden, uint8_t *out,
                       size_t cap)
{
    gr_handshake *i = start(cfg, GR_HANDSHAKE_INITIATOR);
    const uint8_t *m1;
    size_t n = gr_handshake_output(i, &m1), len;
    Girder__Handshake *m = girder__handshake__unpack(NULL, n - 4, m1 + 4);

    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->msg_case, GIRDER__HANDSHAKE__MSG_HELLO);
    m->hello->role = (Girder__Role)role;
    m->hello->hidden = hidden;
    len = girder__handshake__get_packed_size(m);
    ck_assert_uint_le(len + 4, cap);
    girder__handshake__pack(m, out + 4);
    out[0] = out[1] = 0;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    girder__handshake__free_unpacked(m, NULL);
    gr_handshake_free(i);
    return len + 4;
}

/* The observer key proves the observer role: both sides finish, the node sees
 * a hidden observer, and the record keys agree. */
START_TEST(observer_accepted)
{
    gr_handshake_config ci = observer_config("cli@h", &OBS_K);
    gr_handshake_config cr = node_config("a@h", &OBS_K);
    gr_handshake *i = start(&ci, GR_HANDSHAKE_INITIATOR);
    gr_handshake *r = start(&cr, GR_HANDSHAKE_RESPONDER);
    gr_handshake_peer pi, pr;
    gr_record_tx *ti, *tr;
    gr_record_rx *xi, *xr;
    int si, sr;

    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, 1);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(gr_handshake_finish(i, &pi, &ti, &xi), 0);
    ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
    ck_assert_int_eq(pr.role, GR_ROLE_OBSERVER);
    ck_assert_int_eq(pr.hidden, 1);
    ck_assert_int_eq(pi.role, GR_ROLE_OBSERVER);
    check_link(ti, xr, 1);
    check_link(tr, xi, 2);
    free_both(ti, tr, xi, xr, i, r);

    /* the same node still takes a member (the cookie) and says so */
    ci = config("cli@h", &COOKIE_A);
    ci.hidden = 1;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, 1);
    ck_assert_int_eq(si, 1);
    ck_assert_int_eq(gr_handshake_finish(r, &pr, &tr, &xr), 0);
    ck_assert_int_eq(pr.role, GR_ROLE_MEMBER);
    gr_record_tx_free(tr);
    gr_record_rx_free(xr);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

/* A wrong observer key, and each role's claim made with the other role's
 * secret: the proofs fail (bad_cookie), both ways. */
START_TEST(observer_wrong_key_and_crossed_secrets)
{
    gr_handshake_config cr = node_config("a@h", &OBS_K);
    gr_handshake_config ci;
    gr_handshake *i, *r;
    int si, sr;

    ci = observer_config("cli@h", &OBS_K2); /* not the node's observer key */
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_EBADCOOKIE);
    ck_assert_int_eq(si, GR_EBADCOOKIE);
    gr_handshake_free(i);
    gr_handshake_free(r);

    ci = observer_config("cli@h", &COOKIE_A); /* claims observer, proves the cookie */
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_EBADCOOKIE);
    gr_handshake_free(i);
    gr_handshake_free(r);

    ci = config("cli@h", &OBS_K); /* claims member, proves the observer key */
    ci.hidden = 1;
    i = start(&ci, GR_HANDSHAKE_INITIATOR);
    r = start(&cr, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_EBADCOOKIE);
    gr_handshake_free(i);
    gr_handshake_free(r);
}
END_TEST

/* A man in the middle flips the role in M1, either way: the responder derives
 * from the other secret and M3 fails; the role cannot be altered. */
START_TEST(role_flipped_on_the_way)
{
    gr_handshake_config cr = node_config("a@h", &OBS_K);
    gr_handshake_config co = observer_config("cli@h", &OBS_K);
    gr_handshake_config cm = config("cli@h", &COOKIE_A);
    uint8_t m1[GR_HANDSHAKE_MSG_MAX + 4];
    gr_handshake *i, *r;
    const uint8_t *m2;
    size_t n;
    int si;

    cm.hidden = 1;
    /* k 0: an observer's M1 made to claim member; k 1: a member's M1 made to
     * claim observer. The rest of the exchange is relayed untouched. */
    for (int k = 0; k < 2; k++) {
        const gr_handshake_config *c = k == 0 ? &co : &cm;
        int to = k == 0 ? GR_ROLE_MEMBER : GR_ROLE_OBSERVER;
        const uint8_t *m1o;
        size_t m1n;
        Girder__Handshake *m;

        i = start(c, GR_HANDSHAKE_INITIATOR);
        r = start(&cr, GR_HANDSHAKE_RESPONDER);
        m1n = gr_handshake_output(i, &m1o);
        m = girder__handshake__unpack(NULL, m1n - 4, m1o + 4);
        ck_assert_ptr_nonnull(m);
        m->hello->role = (Girder__Role)to;
        n = girder__handshake__get_packed_size(m);
        girder__handshake__pack(m, m1 + 4);
        girder__handshake__free_unpacked(m, NULL);
        m1[0] = m1[1] = 0;
        m1[2] = (uint8_t)(n >> 8);
        m1[3] = (uint8_t)n;
        ck_assert_int_eq(feed_all(r, m1, n + 4, 4096), 0); /* M2 queued */
        n = gr_handshake_output(r, &m2);
        ck_assert_int_eq(feed_all(i, m2, n, 4096), 0); /* M3 queued */
        ck_assert_int_eq(xfer(i, r, NULL, 4096), GR_EBADCOOKIE);
        si = xfer(r, i, NULL, 4096);
        ck_assert_int_eq(si, GR_EBADCOOKIE); /* the Reject */
        gr_handshake_free(i);
        gr_handshake_free(r);
    }
}
END_TEST

/* An observer is never a member: a Hello claiming observer without hidden, an
 * observer at a node without an observer key, an unknown role: bad_role. */
START_TEST(observer_cannot_pass_as_node)
{
    gr_handshake_config co = observer_config("cli@h", &OBS_K);
    gr_handshake_config with = node_config("a@h", &OBS_K);
    gr_handshake_config without = node_config("a@h", NULL);
    uint8_t m1[GR_HANDSHAKE_MSG_MAX + 4];
    const uint8_t *out;
    gr_handshake *r, *i;
    size_t n;
    int si, sr;

    n = forge_m1(&co, GR_ROLE_OBSERVER, 0, m1, sizeof(m1)); /* observer, not hidden */
    r = start(&with, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(feed_all(r, m1, n, 4096), GR_EROLE);
    n = gr_handshake_output(r, &out); /* a Reject naming the reason, no M2 */
    ck_assert(memmem(out, n, "bad_role", 8) != NULL);
    gr_handshake_free(r);

    n = forge_m1(&co, 7, 1, m1, sizeof(m1)); /* a role nobody knows */
    r = start(&with, GR_HANDSHAKE_RESPONDER);
    ck_assert_int_eq(feed_all(r, m1, n, 4096), GR_EROLE);
    gr_handshake_free(r);

    i = start(&co, GR_HANDSHAKE_INITIATOR); /* a node that takes no observers */
    r = start(&without, GR_HANDSHAKE_RESPONDER);
    run(i, r, &si, &sr, NULL, NULL, 4096);
    ck_assert_int_eq(sr, GR_EROLE);
    ck_assert_int_eq(si, GR_EROLE);
    ck_assert_int_eq(gr_handshake_peer_rejected(i), 1);
    gr_handshake_free(i);
    gr_handshake_free(r);

    /* and the library refuses to start one: observer needs hidden and a key */
    co.hidden = 0;
    ck_assert_int_eq(gr_handshake_new(&co, GR_HANDSHAKE_INITIATOR, &i), -EINVAL);
    co.hidden = 1;
    co.observer_key = NULL;
    ck_assert_int_eq(gr_handshake_new(&co, GR_HANDSHAKE_INITIATOR, &i), -EINVAL);
    co = observer_config("cli@h", &OBS_K);
    co.role = 7;
    ck_assert_int_eq(gr_handshake_new(&co, GR_HANDSHAKE_INITIATOR, &i), -EINVAL);
}
END_TEST

static Suite *handshake_suite(void)
{
    Suite *s = suite_create("handshake");
    TCase *tc = gr_test_tcase(s, "handshake", setup, NULL, 0);

    gr_test_add(tc, success_both_ways, success_byte_by_byte, leftover_bytes_belong_to_records,
                early_records, early_tx_misuse, wrong_cookie_both_sides, bad_responder_proof,
                replay_into_new_handshake, name_clash, initiator_checks_reply,
                initiator_checks_cipher, cipher_negotiation, cipher_downgrade_detected,
                version_mismatch_and_negotiation, oversized_and_truncated, malformed_hello,
                unknown_reject_reason, config_checks, known_answer, observer_accepted,
                observer_wrong_key_and_crossed_secrets, role_flipped_on_the_way,
                observer_cannot_pass_as_node, rotation_two_cookies, rotation_limits);
    return s;
}

int main(void)
{
    return gr_test_run(handshake_suite);
}
