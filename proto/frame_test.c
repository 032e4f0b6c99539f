/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame_test.c - unit tests of batches, frames and the encrypted record stream
 * (frame.h, record.h): batching, lanes, any chunking of the input, tampering,
 * replays, size limits checked before allocation, malformed plaintext and
 * frame-level rules.
 */
#include "proto/err.h"
#include "proto/frame.h"
#include "proto/frame_int.h"
#include "proto/record.h"
#include "proto/record_int.h"
#include "proto/sigframe.h"
#include "proto/term.h"
#include "proto/wire_int.h"

#include <check.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t KEY_A[GR_KEY_BYTES] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                            12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                            23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define MAXF 64 /* frames a test collects */

/* The cipher the "records" tests run with: each TCase's unchecked fixture sets
 * it in the parent process, before the tests fork. */
static int cipher = GR_CIPHER_CHACHA20_POLY1305;

/* What the receiving side saw. */
typedef struct sink {
    Girder__Frame *f[MAXF]; /* decoded frames, in order */
    int n;                  /* how many */
    int err;                /* first error from feed/next/unpack, 0 if none */
} sink;

static void sink_clear(sink *s)
{
    for (int i = 0; i < s->n; i++) {
        gr_frame_free(s->f[i]);
    }
    memset(s, 0, sizeof(*s));
}

/* Drain every pending frame of rx into s. */
static void drain(gr_record_rx *rx, sink *s)
{
    const uint8_t *fr;
    size_t flen;
    int r;

    while ((r = gr_record_next(rx, &fr, &flen)) == 1) {
        ck_assert_int_lt(s->n, MAXF);
        if ((r = gr_frame_unpack(fr, flen, &s->f[s->n])) < 0) {
            s->err = r;
            return;
        }
        s->n++;
    }
    if (r < 0) {
        s->err = r;
    }
}

/* Deliver data[0..len) to rx in chunks of `chunk` bytes, collecting frames. */
static void deliver(gr_record_rx *rx, const uint8_t *data, size_t len, size_t chunk, sink *s)
{
    size_t off = 0;

    while (off < len && s->err == 0) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t done = 0;

        while (done < n && s->err == 0) {
            size_t used = 0;
            int r = gr_record_feed(rx, data + off + done, n - done, &used);

            if (r < 0) {
                s->err = r;
                return;
            }
            done += used;
            drain(rx, s);
        }
        off += n;
    }
}

/* A heartbeat frame with seq. */
static int add_heartbeat(gr_batch *b, uint64_t seq)
{
    Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;

    hb.seq = seq;
    hb.time_ms = 1700000000000ull + seq;
    f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    return gr_batch_add(b, &f);
}

/* Append the record sealed from b to a growing byte stream. */
static void seal_into(gr_record_tx *tx, gr_batch *b, uint8_t **stream, size_t *len)
{
    const uint8_t *rec;
    size_t rlen;

    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
    *stream = realloc(*stream, *len + rlen);
    ck_assert_ptr_nonnull(*stream);
    memcpy(*stream + *len, rec, rlen);
    *len += rlen;
    gr_batch_reset(b);
}

/* Three records: 10 heartbeats, 1 heartbeat, 0 frames. */
static void three_records(uint8_t **stream, size_t *len)
{
    gr_record_tx *tx;
    gr_batch *b;

    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(NULL, &b), 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(add_heartbeat(b, (uint64_t)i), 0);
    }
    ck_assert_uint_eq(gr_batch_count(b), 10);
    seal_into(tx, b, stream, len);
    ck_assert_int_eq(add_heartbeat(b, 10), 0);
    seal_into(tx, b, stream, len);
    seal_into(tx, b, stream, len);
    gr_batch_free(b);
    gr_record_tx_free(tx);
}

static void check_heartbeats(const sink *s, int n)
{
    ck_assert_int_eq(s->err, 0);
    ck_assert_int_eq(s->n, n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(s->f[i]->msg_case, GIRDER__FRAME__MSG_HEARTBEAT);
        ck_assert(s->f[i]->heartbeat->seq == (uint64_t)i);
    }
}

START_TEST(limits)
{
    gr_limits l, in;

    ck_assert_int_eq(gr_frame_limits_resolve(NULL, &l), 0);
    ck_assert_uint_eq(l.max_frame, GR_FRAME_MAX_DEFAULT);
    ck_assert_uint_eq(l.max_record, GR_RECORD_MAX_DEFAULT);
    in = (gr_limits){GR_FRAME_MAX_MIN - 1, 0};
    ck_assert_int_eq(gr_frame_limits_resolve(&in, &l), -EINVAL);
    in = (gr_limits){8192, 8192 + 19};
    ck_assert_int_eq(gr_frame_limits_resolve(&in, &l), -EINVAL);
    in = (gr_limits){8192, 8192 + 20};
    ck_assert_int_eq(gr_frame_limits_resolve(&in, &l), 0);
    in = (gr_limits){0, GR_RECORD_MAX_LIMIT + 1};
    ck_assert_int_eq(gr_frame_limits_resolve(&in, &l), -EINVAL);
    in = (gr_limits){GR_RECORD_MAX_DEFAULT, 0}; /* a large frame raises the record default */
    ck_assert_int_eq(gr_frame_limits_resolve(&in, &l), 0);
    ck_assert_uint_ge(l.max_record, l.max_frame + 20);
}
END_TEST

START_TEST(batch_one_record)
{
    uint8_t *stream = NULL;
    size_t len = 0;
    gr_record_rx *rx;
    sink s = {0};

    three_records(&stream, &len);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, stream, len, len, &s);
    check_heartbeats(&s, 11);
    sink_clear(&s);
    gr_record_rx_free(rx);
    free(stream);
}
END_TEST

START_TEST(byte_by_byte)
{
    uint8_t *stream = NULL;
    size_t len = 0;
    gr_record_rx *rx;
    sink s = {0};

    three_records(&stream, &len);
    for (size_t chunk = 1; chunk <= 7; chunk++) {
        ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
        deliver(rx, stream, len, chunk, &s);
        check_heartbeats(&s, 11);
        sink_clear(&s);
        gr_record_rx_free(rx);
    }
    free(stream);
}
END_TEST

START_TEST(feed_stops_while_frames_pending)
{
    uint8_t *stream = NULL;
    size_t len = 0, used = 99;
    gr_record_rx *rx;
    const uint8_t *fr;
    size_t flen;

    three_records(&stream, &len);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    ck_assert_int_eq(gr_record_feed(rx, stream, len, &used), 0);
    ck_assert_uint_lt(used, len); /* stopped after the first record */
    ck_assert_int_eq(gr_record_feed(rx, stream + used, len - used, &used), 0);
    ck_assert_uint_eq(used, 0); /* frames pending: nothing consumed */
    ck_assert_int_eq(gr_record_next(rx, &fr, &flen), 1);
    gr_record_rx_free(rx);
    free(stream);
}
END_TEST

START_TEST(two_lanes_in_order)
{
    Girder__Signal sig = GIRDER__SIGNAL__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;
    uint8_t *stream = NULL, payload[3000];
    size_t len = 0;
    gr_record_tx *tx;
    gr_record_rx *rx;
    gr_batch *ctl, *bulk;
    sink s = {0};

    memset(payload, 0xa5, sizeof(payload));
    payload[0] = 0xc5; /* bin16 of 2997 bytes */
    payload[1] = (uint8_t)(2997 >> 8);
    payload[2] = (uint8_t)(2997 & 0xff);
    ck_assert_int_eq(gr_term_validate(payload, sizeof(payload)), 0);
    sig.kind = GIRDER__SIGNAL_KIND__MESSAGE;
    sig.to_name = "worker";
    sig.payload.data = payload;
    sig.payload.len = sizeof(payload);
    f.msg_case = GIRDER__FRAME__MSG_SIGNAL;
    f.signal = &sig;
    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(NULL, &ctl), 0);
    ck_assert_int_eq(gr_batch_new(NULL, &bulk), 0);
    /* bulk filled first, control sealed first: the receiver sees control first */
    ck_assert_int_eq(gr_batch_add(bulk, &f), 0);
    ck_assert_int_eq(gr_batch_add(bulk, &f), 0);
    ck_assert_int_eq(add_heartbeat(ctl, 0), 0);
    seal_into(tx, ctl, &stream, &len);
    seal_into(tx, bulk, &stream, &len);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, stream, len, 100, &s);
    ck_assert_int_eq(s.err, 0);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.f[0]->msg_case, GIRDER__FRAME__MSG_HEARTBEAT);
    ck_assert_int_eq(s.f[1]->msg_case, GIRDER__FRAME__MSG_SIGNAL);
    ck_assert_str_eq(s.f[2]->signal->to_name, "worker");
    ck_assert(memcmp(s.f[2]->signal->payload.data, payload, sizeof(payload)) == 0);
    sink_clear(&s);
    gr_record_rx_free(rx);
    gr_batch_free(ctl);
    gr_batch_free(bulk);
    gr_record_tx_free(tx);
    free(stream);
}
END_TEST

START_TEST(tampered_ciphertext)
{
    uint8_t *stream = NULL;
    size_t len = 0, first;
    gr_record_rx *rx;
    sink s = {0};

    three_records(&stream, &len);
    first = 4 + ((size_t)stream[2] << 8 | stream[3]); /* first record, < 64 KiB */
    /* flip one bit anywhere in the first record after its length: body or tag */
    for (size_t i = 4; i < first; i += 7) {
        stream[i] ^= 0x10;
        ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
        deliver(rx, stream, len, len, &s);
        ck_assert_int_eq(s.err, GR_ECRYPTO);
        ck_assert_int_eq(s.n, 0);
        /* sticky */
        ck_assert_int_eq(gr_record_feed(rx, stream, 1, &(size_t){0}), GR_ECRYPTO);
        sink_clear(&s);
        gr_record_rx_free(rx);
        stream[i] ^= 0x10;
    }
    /* a different key */
    {
        uint8_t other[GR_KEY_BYTES] = {0};

        ck_assert_int_eq(gr_record_rx_new(cipher, other, NULL, &rx), 0);
        deliver(rx, stream, len, len, &s);
        ck_assert_int_eq(s.err, GR_ECRYPTO);
        sink_clear(&s);
        gr_record_rx_free(rx);
    }
    free(stream);
}
END_TEST

START_TEST(replayed_or_reordered_record)
{
    uint8_t *stream = NULL, *twice;
    size_t len = 0, first;
    gr_record_rx *rx;
    sink s = {0};

    three_records(&stream, &len);
    first = 4 + ((size_t)stream[2] << 8 | stream[3]);
    twice = malloc(2 * first);
    memcpy(twice, stream, first);
    memcpy(twice + first, stream, first);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, twice, 2 * first, 2 * first, &s);
    ck_assert_int_eq(s.n, 10);           /* the first copy */
    ck_assert_int_eq(s.err, GR_ECRYPTO); /* the replayed copy: wrong nonce */
    sink_clear(&s);
    gr_record_rx_free(rx);
    /* the second record alone, as if the first was dropped */
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, stream + first, len - first, len, &s);
    ck_assert_int_eq(s.err, GR_ECRYPTO);
    sink_clear(&s);
    gr_record_rx_free(rx);
    free(twice);
    free(stream);
}
END_TEST

START_TEST(oversized_length_refused_before_allocation)
{
    gr_limits lim = {8192, 65536};
    uint8_t hdr[4] = {0x00, 0x01, 0x00, 0x01}; /* 65537 */
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    gr_record_rx *rx;
    size_t used = 0;

    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, &lim, &rx), 0);
    ck_assert_int_eq(gr_record_feed(rx, hdr, 4, &used), GR_EFRAMETOOBIG);
    ck_assert_uint_eq(gr_record_rx_capacity(rx), 0);
    gr_record_rx_free(rx);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    ck_assert_int_eq(gr_record_feed(rx, huge, 4, &used), GR_EFRAMETOOBIG);
    ck_assert_uint_eq(gr_record_rx_capacity(rx), 0);
    ck_assert_int_eq(gr_record_feed(rx, huge, 4, &used), GR_EFRAMETOOBIG); /* sticky */
    gr_record_rx_free(rx);
}
END_TEST

START_TEST(short_record_and_garbage)
{
    uint8_t tiny[4 + 15] = {0, 0, 0, 15};
    uint8_t junk[4096];
    gr_record_rx *rx;
    sink s = {0};

    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, tiny, sizeof(tiny), 1, &s);
    ck_assert_int_eq(s.err, GR_EBADFRAME);
    gr_record_rx_free(rx);
    memset(&s, 0, sizeof(s));
    /* pseudo-random garbage with a plausible length: authentication fails */
    srand(7);
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)rand();
    }
    junk[0] = 0;
    junk[1] = 0;
    junk[2] = 0x0f;
    junk[3] = 0xfc;
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, junk, sizeof(junk), 333, &s);
    ck_assert_int_eq(s.err, GR_ECRYPTO);
    ck_assert_int_eq(s.n, 0);
    gr_record_rx_free(rx);
}
END_TEST

START_TEST(batch_limits)
{
    gr_limits lim = {GR_FRAME_MAX_MIN, GR_FRAME_MAX_MIN + 2000};
    static uint8_t big[GR_FRAME_MAX_MIN + 1];
    gr_batch *b;

    ck_assert_int_eq(gr_batch_new(&lim, &b), 0);
    ck_assert_int_eq(gr_batch_add_packed(b, big, sizeof(big)), GR_EFRAMETOOBIG);
    ck_assert_uint_eq(gr_batch_count(b), 0);
    /* a max-size frame always fits an empty batch */
    ck_assert_int_eq(gr_batch_add_packed(b, big, GR_FRAME_MAX_MIN), 0);
    /* ... and then the batch is full */
    ck_assert_int_eq(gr_batch_add_packed(b, big, 2000), -ENOBUFS);
    ck_assert_uint_eq(gr_batch_count(b), 1);
    ck_assert_uint_eq(gr_batch_size(b), 4 + GR_FRAME_MAX_MIN);
    gr_batch_reset(b);
    ck_assert_int_eq(gr_batch_add_packed(b, big, 2000), 0);
    gr_batch_free(b);
    ck_assert_int_eq(gr_batch_new(&(gr_limits){100, 0}, &b), -EINVAL);
}
END_TEST

START_TEST(seal_twice_and_empty_batch)
{
    gr_record_tx *tx;
    gr_record_rx *rx;
    gr_batch *b;
    const uint8_t *rec;
    size_t rlen;
    sink s = {0};

    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(NULL, &b), 0);
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0); /* never-used batch */
    ck_assert_uint_eq(rlen, 20);
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), -EINVAL);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, NULL, &rx), 0);
    deliver(rx, rec, rlen, rlen, &s);
    ck_assert_int_eq(s.err, 0);
    ck_assert_int_eq(s.n, 0);
    /* adding to a sealed batch starts a new one */
    ck_assert_int_eq(add_heartbeat(b, 0), 0);
    ck_assert_uint_eq(gr_batch_count(b), 1);
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
    deliver(rx, rec, rlen, rlen, &s);
    check_heartbeats(&s, 1);
    sink_clear(&s);
    gr_record_rx_free(rx);
    gr_batch_free(b);
    gr_record_tx_free(tx);
}
END_TEST

START_TEST(receiver_frame_limit)
{
    gr_limits small = {GR_FRAME_MAX_MIN, 65536};
    static uint8_t big[GR_FRAME_MAX_MIN + 1];
    gr_record_tx *tx;
    gr_record_rx *rx;
    gr_batch *b;
    const uint8_t *rec;
    size_t rlen;
    sink s = {0};

    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(NULL, &b), 0); /* sender ignores the peer's limits */
    ck_assert_int_eq(gr_batch_add_packed(b, big, sizeof(big)), 0);
    ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, &small, &rx), 0);
    deliver(rx, rec, rlen, rlen, &s);
    ck_assert_int_eq(s.err, GR_EFRAMETOOBIG);
    gr_record_rx_free(rx);
    gr_batch_free(b);
    gr_record_tx_free(tx);
}
END_TEST

START_TEST(malformed_plaintext)
{
    /* frame prefixes that lie, walked directly */
    const uint8_t trunc_hdr[] = {0, 0, 1};
    const uint8_t past_end[] = {0, 0, 0, 9, 1, 2, 3};
    const uint8_t *fr;
    size_t off = 0, flen;

    ck_assert_int_eq(gr_frame_next(trunc_hdr, sizeof(trunc_hdr), &off, 100, &fr, &flen),
                     GR_EBADFRAME);
    ck_assert_int_eq(gr_frame_next(past_end, sizeof(past_end), &off, 100, &fr, &flen),
                     GR_EBADFRAME);
    ck_assert_int_eq(gr_frame_next(past_end, sizeof(past_end), &off, 8, &fr, &flen),
                     GR_EFRAMETOOBIG);
    ck_assert_int_eq(gr_frame_next(past_end, 0, &off, 8, &fr, &flen), 0);
    ck_assert_uint_eq(off, 0);
}
END_TEST

START_TEST(undecodable_frame)
{
    Girder__Frame *f = NULL;
    const uint8_t bad_wire[] = {0x0a, 0x7f, 0x01}; /* field 1, length 127, 1 byte */
    const uint8_t unknown[] = {0xf8, 0x07, 0x01};  /* field 127 varint: a future frame */

    ck_assert_int_eq(gr_frame_unpack(bad_wire, sizeof(bad_wire), &f), GR_EBADFRAME);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(gr_frame_unpack(unknown, sizeof(unknown), &f), 0);
    ck_assert_int_eq(f->msg_case, GIRDER__FRAME__MSG__NOT_SET);
    gr_frame_free(f);
    ck_assert_int_eq(gr_frame_unpack("", 0, &f), 0); /* empty frame: unknown, skip */
    gr_frame_free(f);
}
END_TEST

/* Pack f and run it through gr_frame_unpack; returns its result. */
static int roundtrip(const Girder__Frame *f)
{
    uint8_t buf[4096];
    size_t n = girder__frame__get_packed_size(f);
    Girder__Frame *out = NULL;
    int r;

    ck_assert_uint_le(n, sizeof(buf));
    girder__frame__pack(f, buf);
    r = gr_frame_unpack(buf, n, &out);
    gr_frame_free(out);
    return r;
}

START_TEST(frame_rules)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Signal sig = GIRDER__SIGNAL__INIT;
    Girder__Member m = GIRDER__MEMBER__INIT, *mp = &m;
    Girder__MemberList ml = GIRDER__MEMBER_LIST__INIT;
    Girder__Fragment fr = GIRDER__FRAGMENT__INIT;
    Girder__RpcRequest rq = GIRDER__RPC_REQUEST__INIT;
    msgpack_sbuffer pid;
    msgpack_packer pk;

    msgpack_sbuffer_init(&pid);
    msgpack_packer_init(&pk, &pid, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, "a@h", 3, 1, 256), 0);

    f.msg_case = GIRDER__FRAME__MSG_SIGNAL;
    f.signal = &sig;
    sig.kind = GIRDER__SIGNAL_KIND__LINK;
    sig.from.data = (uint8_t *)pid.data;
    sig.from.len = pid.size;
    sig.to = sig.from;
    ck_assert_int_eq(roundtrip(&f), 0);
    sig.to.len--; /* truncated pid */
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);
    sig.to = sig.from;
    sig.ref = sig.from; /* a pid where a ref belongs */
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);
    sig.ref.len = 0;
    sig.to_name = "x"; /* two targets */
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);
    sig.to.len = 0;
    sig.payload.data = (uint8_t *)"\x92\x01"; /* array of 2 with 1 element */
    sig.payload.len = 2;
    ck_assert_int_eq(roundtrip(&f), GR_EBADTERM);

    f.msg_case = GIRDER__FRAME__MSG_MEMBERS;
    f.members = &ml;
    ml.n_members = 1;
    ml.members = &mp;
    m.name = "b@10.0.0.2";
    m.host = "10.0.0.2";
    m.port = 4370;
    ck_assert_int_eq(roundtrip(&f), 0);
    m.name = "no-at-sign";
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);
    m.name = "b@10.0.0.2";
    m.port = 70000;
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);

    f.msg_case = GIRDER__FRAME__MSG_FRAGMENT;
    f.fragment = &fr;
    fr.id = 1;
    fr.total = 10;
    fr.offset = 8;
    fr.chunk.data = (uint8_t *)"ab";
    fr.chunk.len = 2;
    ck_assert_int_eq(roundtrip(&f), 0);
    fr.offset = 9;
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);

    f.msg_case = GIRDER__FRAME__MSG_RPC_REQUEST;
    f.rpc_request = &rq;
    rq.module = "system";
    rq.function = "ping";
    rq.args.data = (uint8_t *)"\x90";
    rq.args.len = 1;
    ck_assert_int_eq(roundtrip(&f), 0);
    rq.function = "";
    ck_assert_int_eq(roundtrip(&f), GR_EBADFRAME);
    msgpack_sbuffer_destroy(&pid);
}
END_TEST

START_TEST(large_record_buffer_released)
{
    gr_limits lim = {2u << 20, 4u << 20};
    Girder__Fragment fr = GIRDER__FRAGMENT__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;
    uint8_t *stream = NULL;
    size_t len = 0, big_len;
    gr_record_tx *tx;
    gr_record_rx *rx;
    gr_batch *b;
    sink s = {0};

    fr.id = 7;
    fr.total = 1u << 20;
    fr.chunk.len = 1u << 20;
    fr.chunk.data = calloc(1, fr.chunk.len);
    f.msg_case = GIRDER__FRAME__MSG_FRAGMENT;
    f.fragment = &fr;
    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(&lim, &b), 0);
    ck_assert_int_eq(gr_batch_add(b, &f), 0);
    seal_into(tx, b, &stream, &len);
    big_len = len;
    ck_assert_int_eq(add_heartbeat(b, 0), 0);
    seal_into(tx, b, &stream, &len);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, &lim, &rx), 0);
    deliver(rx, stream, big_len, 65536, &s);
    ck_assert_int_eq(s.err, 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_uint_eq(s.f[0]->fragment->chunk.len, 1u << 20);
    ck_assert_uint_gt(gr_record_rx_capacity(rx), 256u << 10);
    deliver(rx, stream + big_len, len - big_len, len, &s);
    ck_assert_int_eq(s.err, 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_uint_lt(gr_record_rx_capacity(rx), 256u << 10);
    sink_clear(&s);
    gr_record_rx_free(rx);
    gr_batch_free(b);
    gr_record_tx_free(tx);
    free(fr.chunk.data);
    free(stream);
}
END_TEST

/* The record AEAD is RFC 8439 ChaCha20-Poly1305 whoever computes it: a record
 * sealed here (libcrypto) equals libsodium's encryption of the same batch under
 * the same key, nonce (counter 0 and 1) and associated data (the length bytes). */
START_TEST(record_cipher_is_rfc8439)
{
    gr_limits lim = {0};
    gr_record_tx *tx;
    gr_batch *b;
    const uint8_t *rec;
    size_t rlen;
    uint8_t nonce[12] = {0}, *want;
    unsigned long long wlen;

    ck_assert_int_ge(sodium_init(), 0);
    ck_assert_int_eq(gr_record_tx_new(GR_CIPHER_CHACHA20_POLY1305, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(&lim, &b), 0);
    for (uint64_t counter = 0; counter < 2; counter++) {
        uint8_t plain[256];
        size_t plen;

        ck_assert_int_eq(add_heartbeat(b, 7 + counter), 0);
        plen = b->len;
        ck_assert_uint_le(plen, sizeof(plain));
        memcpy(plain, b->buf + GR_RECORD_HDR, plen);
        ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
        ck_assert_uint_eq(rlen, GR_RECORD_HDR + plen + GR_RECORD_TAG);
        want = malloc(plen + GR_RECORD_TAG);
        ck_assert_ptr_nonnull(want);
        nonce[4] = (uint8_t)counter; /* 4 zero bytes, then the counter little-endian */
        crypto_aead_chacha20poly1305_ietf_encrypt(want, &wlen, plain, plen, rec, GR_RECORD_HDR,
                                                  NULL, nonce, KEY_A);
        ck_assert_uint_eq(wlen, plen + GR_RECORD_TAG);
        ck_assert_mem_eq(rec + GR_RECORD_HDR, want, wlen);
        free(want);
        gr_batch_reset(b);
    }
    gr_batch_free(b);
    gr_record_tx_free(tx);
}
END_TEST

/* AES-128-OCB of plain[0..len) as RFC 7253 defines it, computed by one-shot
 * libcrypto calls apart from record.c: ciphertext || 16-byte tag into out. */
static void ocb_reference(const uint8_t key[16], const uint8_t nonce[12], const uint8_t *aad,
                          size_t alen, const uint8_t *plain, size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, m = 0;

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_EncryptInit_ex(ctx, EVP_aes_128_ocb(), NULL, NULL, NULL), 1);
    ck_assert_int_eq(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL), 1);
    ck_assert_int_eq(EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce), 1);
    if (alen > 0) {
        ck_assert_int_eq(EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)alen), 1);
    }
    if (len > 0) {
        ck_assert_int_eq(EVP_EncryptUpdate(ctx, out, &m, plain, (int)len), 1);
    }
    ck_assert_int_eq(EVP_EncryptFinal_ex(ctx, out + m, &n), 1);
    ck_assert_uint_eq((size_t)(m + n), len);
    ck_assert_int_eq(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + len), 1);
    EVP_CIPHER_CTX_free(ctx);
}

/* With AES instructions, a record under GR_CIPHER_AES128_OCB is RFC 7253's
 * AES-128-OCB (first vector of its appendix A checks the library) under the
 * key's first 16 bytes, nonce 4 zero bytes || counter, and the length prefix as
 * associated data - for an empty batch, a short one and one that ends in a
 * partial block. */
START_TEST(record_cipher_is_rfc7253)
{
    static const uint8_t rfc_key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t rfc_nonce[12] = {0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66,
                                          0x55, 0x44, 0x33, 0x22, 0x11, 0x00};
    static const uint8_t rfc_tag[16] = {0x78, 0x54, 0x07, 0xbf, 0xff, 0xc8, 0xad, 0x9e,
                                        0xdc, 0xc5, 0x52, 0x0a, 0xc9, 0x11, 0x1e, 0xe6};
    static const size_t payloads[] = {0, 16, 1001};
    gr_limits lim = {0};
    gr_record_tx *tx;
    gr_record_rx *rx;
    gr_batch *b;
    uint8_t out[16], nonce[12] = {0};

    if (!gr_record_cipher_fast(GR_CIPHER_AES128_OCB)) {
        ck_assert_int_eq(gr_record_tx_new(GR_CIPHER_AES128_OCB, KEY_A, &tx), -ENOTSUP);
        ck_assert_int_eq(gr_record_rx_new(GR_CIPHER_AES128_OCB, KEY_A, NULL, &rx), -ENOTSUP);
        fprintf(stderr, "record_cipher_is_rfc7253: no AES instructions, OCB not run\n");
        return;
    }
    ocb_reference(rfc_key, rfc_nonce, NULL, 0, NULL, 0, out);
    ck_assert_mem_eq(out, rfc_tag, 16);

    ck_assert_int_eq(gr_record_tx_new(GR_CIPHER_AES128_OCB, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_batch_new(&lim, &b), 0);
    for (uint64_t counter = 0; counter < 3; counter++) {
        Girder__Signal sig = GIRDER__SIGNAL__INIT;
        Girder__Frame f = GIRDER__FRAME__INIT;
        uint8_t body[1001];
        const uint8_t *rec;
        uint8_t *plain, *want;
        size_t rlen, plen;

        if (payloads[counter] > 0) {
            for (size_t k = 0; k < sizeof(body); k++) {
                body[k] = (uint8_t)(k * 7 + counter);
            }
            sig.payload.data = body;
            sig.payload.len = payloads[counter];
            f.msg_case = GIRDER__FRAME__MSG_SIGNAL;
            f.signal = &sig;
            ck_assert_int_eq(gr_batch_add(b, &f), 0);
        }
        plen = b->len;
        plain = malloc(plen + 1);
        want = malloc(plen + GR_RECORD_TAG);
        ck_assert(plain != NULL && want != NULL);
        memcpy(plain, b->buf + GR_RECORD_HDR, plen);
        ck_assert_int_eq(gr_record_seal(tx, b, &rec, &rlen), 0);
        ck_assert_uint_eq(rlen, GR_RECORD_HDR + plen + GR_RECORD_TAG);
        nonce[4] = (uint8_t)counter;
        ocb_reference(KEY_A, nonce, rec, GR_RECORD_HDR, plain, plen, want);
        ck_assert_mem_eq(rec + GR_RECORD_HDR, want, plen + GR_RECORD_TAG);
        free(plain);
        free(want);
        gr_batch_reset(b);
    }
    gr_batch_free(b);
    gr_record_tx_free(tx);
}
END_TEST

static int released; /* release_count's calls */

static void release_count(void *owner)
{
    ck_assert_ptr_nonnull(owner);
    released++;
}

static void release_other(void *owner)
{
    (void)owner;
}

/* Open the one record rec[0..len) with rx; its frames must be n_hb heartbeats
 * and, in order, head/body frames of the sizes in tails[0..n). */
static void open_mixed(gr_record_rx *rx, const uint8_t *rec, size_t len, const size_t *tails,
                       size_t n, const uint8_t *body)
{
    const uint8_t *fr;
    size_t flen, used = 0, k = 0;
    int r;

    ck_assert_int_eq(gr_record_feed(rx, rec, len, &used), 0);
    ck_assert_uint_eq(used, len);
    while ((r = gr_record_next(rx, &fr, &flen)) == 1) {
        if (flen >= 1 && fr[0] >= 0x30 && fr[0] < 0x30 + n && k < n) {
            size_t hl = flen - tails[k];

            ck_assert_int_eq(fr[0], 0x30 + (int)k);
            ck_assert_mem_eq(fr + hl, body, tails[k]);
            k++;
        }
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(k, n);
}

/* Tails referenced by the batch seal to the same record as copied ones, for
 * tails that start and end at any offset of a cipher block, between copied
 * frames and back to back; each reference is released once, at reset or free,
 * and none on a failed add. */
START_TEST(referenced_tails_seal_like_copies)
{
    static const size_t tails[] = {4096, 1, 65536 + 7, 15, 17, 100000};
    uint8_t *body = malloc(100000), head[40];
    gr_record_tx *t1, *t2;
    gr_record_rx *rx;
    gr_batch *copy, *ref;
    gr_limits lim = {GR_FRAME_MAX_DEFAULT, 0};
    const uint8_t *r1, *r2;
    size_t l1, l2;
    int expect_refs = 0;

    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < 100000; i++) {
        body[i] = (uint8_t)(i * 13 + 5);
    }
    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &t1), 0);
    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &t2), 0);
    ck_assert_int_eq(gr_batch_new(&lim, &copy), 0);
    ck_assert_int_eq(gr_batch_new(&lim, &ref), 0);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, &lim, &rx), 0);
    released = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
            size_t hl = 3 + (i * 5 + (size_t)round) % sizeof(head);

            memset(head, (int)(0x30 + i), hl);
            if (i % 2 == 0) { /* a copied frame between the referenced ones */
                ck_assert_int_eq(add_heartbeat(copy, i), 0);
                ck_assert_int_eq(add_heartbeat(ref, i), 0);
            }
            ck_assert_int_eq(gr_batch_add_packed_copy(copy, head, hl, body, tails[i]), 0);
            ck_assert_int_eq(
                gr_batch_add_packed_ref(ref, head, hl, body, tails[i], release_count, body), 0);
            expect_refs++;
        }
        ck_assert_uint_eq(gr_batch_size(copy), gr_batch_size(ref));
        ck_assert_int_eq(gr_record_seal(t1, copy, &r1, &l1), 0);
        ck_assert_int_eq(gr_record_seal(t2, ref, &r2, &l2), 0);
        ck_assert_uint_eq(l1, l2);
        ck_assert_mem_eq(r1, r2, l1);
        ck_assert_int_eq(released, round == 0 ? 0 : expect_refs - 6); /* held until reset */
        open_mixed(rx, r2, l2, tails, sizeof(tails) / sizeof(tails[0]), body);
        gr_batch_reset(copy);
        gr_batch_reset(ref);
        ck_assert_int_eq(released, expect_refs);
    }
    /* a failed add keeps nothing; a mismatched release function is refused */
    ck_assert_int_eq(
        gr_batch_add_packed_ref(ref, head, 4, body, GR_FRAME_MAX_DEFAULT, release_count, body),
        GR_EFRAMETOOBIG);
    ck_assert_int_eq(gr_batch_add_packed_ref(ref, head, 4, body, 10, NULL, body), -EINVAL);
    ck_assert_int_eq(gr_batch_add_packed_ref(ref, head, 4, body, 10, release_count, body), 0);
    ck_assert_int_eq(gr_batch_add_packed_ref(ref, head, 4, body, 10, release_other, body), -EINVAL);
    ck_assert_int_eq(released, expect_refs);
    gr_batch_free(ref); /* unsealed: released at free */
    ck_assert_int_eq(released, expect_refs + 1);
    gr_batch_free(copy);
    gr_record_tx_free(t1);
    gr_record_tx_free(t2);
    gr_record_rx_free(rx);
    free(body);
}
END_TEST

/* A pid or ref ext's bytes; returns the length. */
static size_t pack_id_bytes(int type, const char *node, uint32_t creation, uint64_t id,
                            uint8_t *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_id(&pk, type, node, strlen(node), creation, id), 0);
    n = sb.size;
    ck_assert_uint_le(n, 64);
    memcpy(out, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* A test sink: malloc'd buffers, counted. */
typedef struct test_sink {
    int allocs, drops, refuse;
} test_sink;

/* The sink's payload_at: process signals (sigframe.h). */
static int sig_payload_at(void *ud, const uint8_t *frame, size_t have, size_t total,
                          size_t *ret_head)
{
    (void)ud;
    return gr_sigframe_head_len(frame, have, total, ret_head);
}

static void *ts_alloc(void *ud, size_t len, uint8_t **ret_dst)
{
    test_sink *t = ud;
    uint8_t *p;

    if (t->refuse) {
        return NULL;
    }
    p = malloc(len);
    ck_assert_ptr_nonnull(p);
    t->allocs++;
    *ret_dst = p;
    return p;
}

static void ts_drop(void *ud, void *handle)
{
    test_sink *t = ud;

    t->drops++;
    free(handle);
}

/* A canonical Signal frame to "sink" carrying a bin 32 term of n bytes in all
 * (pattern from seed), appended to b. */
static void add_sig(gr_batch *b, size_t n, unsigned seed, uint8_t *payload)
{
    uint8_t from[64], *out = malloc(n + 512);
    gr_sigframe w = {0};
    size_t fl;

    ck_assert_ptr_nonnull(out);
    payload[0] = 0xc6;
    gr_wire_put_be32(payload + 1, (uint32_t)(n - 5));
    for (size_t i = 5; i < n; i++) {
        payload[i] = (uint8_t)(i * 31 + seed);
    }
    w.from_len = pack_id_bytes(GR_TERM_EXT_PID, "a@h", 7, 1000 + seed, from);
    w.from = from;
    w.to_name = "sink";
    w.to_name_len = 4;
    w.payload = payload;
    w.payload_len = n;
    fl = gr_sigframe_pack(&w, out);
    ck_assert_int_eq(gr_batch_add_packed(b, out, fl), 0);
    free(out);
}

/* With a sink, each Signal payload of at least sink.min bytes comes out in a
 * sink buffer, byte for byte, with the frame's head; smaller ones and other
 * frames come out in place, in order. A record that fails authentication hands
 * out nothing and gives every buffer back; a sink that refuses leaves the
 * payloads in place. */
START_TEST(sink_takes_big_payloads)
{
    static const size_t sizes[] = {4095, 4096, 4097, 65536 + 3, 100, 20013, 4096 + 15};
    enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
    uint8_t *pay[NS];
    test_sink t = {0};
    gr_record_sink sk = {
        .min = 4096, .payload_at = sig_payload_at, .alloc = ts_alloc, .drop = ts_drop, .ud = &t};
    gr_limits lim = {GR_FRAME_MAX_DEFAULT, 0};
    gr_record_tx *tx;
    gr_record_rx *rx;
    gr_batch *b;
    uint8_t *stream = NULL;
    size_t len = 0;

    for (int i = 0; i < NS; i++) {
        pay[i] = malloc(sizes[i]);
        ck_assert_ptr_nonnull(pay[i]);
    }
    ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx), 0);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, &lim, &rx), 0);
    ck_assert_int_eq(gr_record_rx_set_sink(rx, NULL), -EINVAL);
    sk.min = 0;
    ck_assert_int_eq(gr_record_rx_set_sink(rx, &sk), -EINVAL);
    sk.min = 4096;
    sk.payload_at = NULL; /* the record layer knows no frame kind: it must be told */
    ck_assert_int_eq(gr_record_rx_set_sink(rx, &sk), -EINVAL);
    sk.payload_at = sig_payload_at;
    ck_assert_int_eq(gr_record_rx_set_sink(rx, &sk), 0);
    ck_assert_int_eq(gr_batch_new(&lim, &b), 0);
    /* record 1: all of them, heartbeats between; record 2: the same, sealed
     * after a refusal is set up; record 3: tampered */
    for (int rec = 0; rec < 3; rec++) {
        for (int i = 0; i < NS; i++) {
            ck_assert_int_eq(add_heartbeat(b, (uint64_t)i), 0);
            add_sig(b, sizes[i], (unsigned)(i + rec), pay[i]);
        }
        ck_assert_int_eq(add_heartbeat(b, 99), 0);
        seal_into(tx, b, &stream, &len);
    }
    for (int rec = 0; rec < 3; rec++) {
        size_t rlen = 4 + gr_wire_get_be32(stream), used = 0, k = 0;
        const uint8_t *fr;
        size_t flen;
        gr_record_payload pl;
        int r, redirected = 0;

        t.refuse = rec == 1;
        if (rec == 2) {
            stream[rlen / 2] ^= 0x40; /* somewhere in the payloads */
            ck_assert_int_eq(gr_record_feed(rx, stream, rlen, &used), GR_ECRYPTO);
            ck_assert_int_eq(t.allocs, t.drops); /* all given back */
            ck_assert_int_eq(gr_record_next_split(rx, &fr, &flen, &pl), GR_ECRYPTO);
            break;
        }
        ck_assert_int_eq(gr_record_feed(rx, stream, rlen, &used), 0);
        ck_assert_uint_eq(used, rlen);
        while ((r = gr_record_next_split(rx, &fr, &flen, &pl)) == 1) {
            gr_sigframe v;
            int i = (int)(k / 2);

            if (k % 2 == 0 || k == 2 * NS) { /* the heartbeats */
                ck_assert_ptr_null(pl.handle);
                k++;
                continue;
            }
            if (pl.handle != NULL) {
                ck_assert_int_eq(gr_sigframe_view_split(fr, flen, pl.data, pl.len, &v), 1);
                redirected++;
                ck_assert_uint_ge(sizes[i], 4096);
            } else {
                ck_assert_int_eq(gr_sigframe_view(fr, flen, &v), 1);
                ck_assert(sizes[i] < 4096 || t.refuse);
            }
            ck_assert_uint_eq(v.payload_len, sizes[i]);
            for (size_t j = 5; j < sizes[i]; j++) {
                if (v.payload[j] != (uint8_t)(j * 31 + (unsigned)(i + rec))) {
                    ck_abort_msg("payload %d byte %zu differs", i, j);
                }
            }
            if (pl.handle != NULL) {
                ts_drop(&t, pl.handle); /* the consumer's now */
            }
            k++;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(k, 2 * NS + 1);
        ck_assert_int_eq(redirected, rec == 0 ? 5 : 0);
        ck_assert_int_eq(t.allocs, t.drops);
        memmove(stream, stream + rlen, len - rlen);
        len -= rlen;
    }
    /* frames of a sink's record need gr_record_next_split */
    gr_batch_reset(b);
    add_sig(b, 5000, 1, pay[3]);
    gr_record_rx_free(rx);
    ck_assert_int_eq(gr_record_rx_new(cipher, KEY_A, &lim, &rx), 0);
    ck_assert_int_eq(gr_record_rx_set_sink(rx, &sk), 0);
    t.refuse = 0;
    {
        gr_record_tx *tx2;
        const uint8_t *rec, *fr;
        size_t rl, used, flen;
        int allocs = t.allocs;

        ck_assert_int_eq(gr_record_tx_new(cipher, KEY_A, &tx2), 0);
        ck_assert_int_eq(gr_record_seal(tx2, b, &rec, &rl), 0);
        ck_assert_int_eq(gr_record_feed(rx, rec, rl, &used), 0);
        ck_assert_int_eq(t.allocs, allocs + 1);
        ck_assert_int_eq(gr_record_next(rx, &fr, &flen), -EINVAL);
        ck_assert_int_eq(t.allocs, t.drops); /* the failure gave it back */
        gr_record_tx_free(tx2);
    }
    gr_batch_free(b);
    gr_record_rx_free(rx);
    gr_record_tx_free(tx);
    for (int i = 0; i < NS; i++) {
        free(pay[i]);
    }
    free(stream);
}
END_TEST

/* A signal with every field set, through protobuf-c. */
static size_t pb_signal(Girder__Signal *sg, uint8_t **ret)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    size_t n;

    f.msg_case = GIRDER__FRAME__MSG_SIGNAL;
    f.signal = sg;
    n = girder__frame__get_packed_size(&f);
    *ret = malloc(n);
    ck_assert_ptr_nonnull(*ret);
    ck_assert_uint_eq(girder__frame__pack(&f, *ret), n);
    return n;
}

/* The Signal fast path writes protobuf-c's bytes and reads them back in place;
 * it declines what it does not know and refuses what gr_frame_check refuses. */
START_TEST(sigframe_matches_protobuf)
{
    uint8_t from[64], to[64], ref[64], *pb, big[300];
    size_t from_len, to_len, ref_len, n;
    uint8_t payload[] = {0x92, 0xa4, 'p', 'i', 'n', 'g', 0x2a}; /* ["ping", 42] */
    Girder__Signal sg = GIRDER__SIGNAL__INIT;
    gr_sigframe v, w = {0};
    uint8_t out[512];

    from_len = pack_id_bytes(GR_TERM_EXT_PID, "a@h", 7, 1234567, from);
    to_len = pack_id_bytes(GR_TERM_EXT_PID, "b@h", 9, 42, to);
    ref_len = pack_id_bytes(GR_TERM_EXT_REF, "a@h", 7, 99, ref);
    for (int kind = 0; kind <= 9; kind += 3) {
        sg.kind = (Girder__SignalKind)kind;
        sg.flags = kind == 6 ? 3 : 0; /* SPAWN_REQUEST-like: flags, behaviour */
        sg.behaviour = (char *)(kind == 6 ? "echo" : "");
        sg.from = (ProtobufCBinaryData){from_len, from};
        sg.to = (ProtobufCBinaryData){to_len, to};
        sg.to_name = (char *)"";
        sg.ref = (ProtobufCBinaryData){kind == 6 ? ref_len : 0, ref};
        sg.payload = (ProtobufCBinaryData){sizeof(payload), payload};
        n = pb_signal(&sg, &pb);
        ck_assert_int_eq(gr_sigframe_view(pb, n, &v), 1);
        ck_assert_uint_eq(v.kind, (uint32_t)kind);
        ck_assert_uint_eq(v.from_len, from_len);
        ck_assert_mem_eq(v.from, from, from_len);
        ck_assert_uint_eq(v.to_len, to_len);
        ck_assert_uint_eq(v.ref_len, kind == 6 ? ref_len : 0);
        ck_assert_uint_eq(v.payload_len, sizeof(payload));
        ck_assert_mem_eq(v.payload, payload, sizeof(payload));
        ck_assert_uint_eq(v.flags, kind == 6 ? 3u : 0u);
        ck_assert_uint_eq(v.behaviour_len, kind == 6 ? 4u : 0u);
        ck_assert_uint_eq(gr_sigframe_size(&v), n);
        ck_assert_uint_eq(gr_sigframe_pack(&v, out), n);
        ck_assert_mem_eq(out, pb, n);
        free(pb);
    }
    /* by name, and a payload long enough for a two-byte length */
    memset(big, 0xc0, sizeof(big)); /* 300 nils: not one term */
    big[0] = 0xc5;                  /* bin 16 */
    big[1] = 0x01;
    big[2] = 0x29; /* 297 bytes follow */
    w.kind = 0;
    w.from = from;
    w.from_len = from_len;
    w.to_name = "sink";
    w.to_name_len = 4;
    w.payload = big;
    w.payload_len = sizeof(big);
    n = gr_sigframe_pack(&w, out);
    ck_assert_uint_eq(n, gr_sigframe_size(&w));
    {
        Girder__Frame *f = NULL;

        ck_assert_int_eq(gr_frame_unpack(out, n, &f), 0);
        ck_assert_int_eq(f->msg_case, GIRDER__FRAME__MSG_SIGNAL);
        ck_assert_str_eq(f->signal->to_name, "sink");
        ck_assert_uint_eq(f->signal->payload.len, sizeof(big));
        gr_frame_free(f);
    }
    ck_assert_int_eq(gr_sigframe_view(out, n, &v), 1);
    ck_assert_uint_eq(v.to_name_len, 4);
    ck_assert_mem_eq(v.to_name, "sink", 4);
    /* declined: another frame kind; a field it does not know; truncated */
    {
        Girder__Frame f = GIRDER__FRAME__INIT;
        Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
        uint8_t hbuf[64];

        f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
        f.heartbeat = &hb;
        hb.seq = 3;
        ck_assert_int_eq(gr_sigframe_view(hbuf, girder__frame__pack(&f, hbuf), &v), 0);
    }
    {
        uint8_t grown[sizeof(out) + 2];

        ck_assert_uint_lt(n, 0x80 + 0x80 * 0x7f); /* the signal's length is 2 bytes: 0x80|lo, hi */
        memcpy(grown, out, n);
        grown[1] += 2; /* the signal grows by an unknown field 9 (varint 1) */
        grown[n] = 0x48;
        grown[n + 1] = 0x01;
        ck_assert_int_eq(gr_sigframe_view(grown, n + 2, &v), 0);
    }
    ck_assert_int_eq(gr_sigframe_view(out, n - 1, &v), 0);
    /* refused: both to and to_name; a malformed pid; a payload of two terms */
    w.to = to;
    w.to_len = to_len;
    n = gr_sigframe_pack(&w, out);
    ck_assert_int_eq(gr_sigframe_view(out, n, &v), GR_EBADFRAME);
    w.to_name_len = 0;
    w.from_len = 3;
    n = gr_sigframe_pack(&w, out);
    ck_assert_int_eq(gr_sigframe_view(out, n, &v), GR_EBADFRAME);
    w.from_len = from_len;
    w.payload = (const uint8_t *)"\xc0\xc0";
    w.payload_len = 2;
    n = gr_sigframe_pack(&w, out);
    ck_assert_int_eq(gr_sigframe_view(out, n, &v), GR_EBADFRAME);
}
END_TEST

static void use_chacha(void)
{
    cipher = GR_CIPHER_CHACHA20_POLY1305;
}

/* Without AES instructions the OCB case repeats the ChaCha20 one. */
static void use_ocb(void)
{
    cipher = gr_record_cipher_fast(GR_CIPHER_AES128_OCB) ? GR_CIPHER_AES128_OCB
                                                         : GR_CIPHER_CHACHA20_POLY1305;
}

/* The record tests that hold for any cipher, in a TCase of their own. */
static TCase *record_case(const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, batch_one_record);
    tcase_add_test(tc, byte_by_byte);
    tcase_add_test(tc, feed_stops_while_frames_pending);
    tcase_add_test(tc, two_lanes_in_order);
    tcase_add_test(tc, tampered_ciphertext);
    tcase_add_test(tc, replayed_or_reordered_record);
    tcase_add_test(tc, oversized_length_refused_before_allocation);
    tcase_add_test(tc, short_record_and_garbage);
    tcase_add_test(tc, seal_twice_and_empty_batch);
    tcase_add_test(tc, receiver_frame_limit);
    tcase_add_test(tc, malformed_plaintext);
    tcase_add_test(tc, undecodable_frame);
    tcase_add_test(tc, large_record_buffer_released);
    tcase_add_test(tc, referenced_tails_seal_like_copies);
    tcase_add_test(tc, sink_takes_big_payloads);
    return tc;
}

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frames");

    tcase_add_test(tc, limits);
    tcase_add_test(tc, batch_limits);
    tcase_add_test(tc, frame_rules);
    tcase_add_test(tc, record_cipher_is_rfc8439);
    tcase_add_test(tc, record_cipher_is_rfc7253);
    tcase_add_test(tc, sigframe_matches_protobuf);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, record_case("records-chacha20-poly1305", use_chacha));
    suite_add_tcase(s, record_case("records-aes128-ocb", use_ocb));
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
