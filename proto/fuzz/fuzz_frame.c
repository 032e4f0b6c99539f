/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_frame.c - libFuzzer harness for the receiving side of the record stream
 * and the frame decoder.
 *
 * Input: one mode byte, then the body. Path 0 feeds the body as raw received
 * bytes (record lengths, authentication failures, reassembly across chunks).
 * Path 1 treats the body as a record plaintext, seals it with the harness key
 * as the peer would, and feeds the record: this reaches the frame walker,
 * protobuf decoding and gr_frame_check. Every frame that decodes must pack and
 * decode again to a frame that passes the checks (round trip), and the Signal
 * fast path (sigframe.h) must agree with protobuf-c on every frame it claims:
 * the same fields when it decodes one, a refusal where it refuses one.
 */
#include "proto/err.h"
#include "proto/frame.h"
#include "proto/fuzz/fuzz_common.h"
#include "proto/record.h"
#include "proto/sigframe.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const Girder__Frame *f)
{
    size_t n = girder__frame__get_packed_size(f);
    uint8_t *buf = malloc(n ? n : 1);
    Girder__Frame *again = NULL;

    if (buf == NULL) {
        return;
    }
    girder__frame__pack(f, buf);
    if (gr_frame_unpack(buf, n, &again) != 0) {
        abort(); /* what we accepted once we must accept again */
    }
    gr_frame_free(again);
    free(buf);
}

static bool same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Differential check of gr_sigframe_view against gr_frame_unpack. */
static void sigframe_agrees(const uint8_t *fr, size_t flen)
{
    gr_sigframe v;
    Girder__Frame *f = NULL;
    int rv = gr_sigframe_view(fr, flen, &v);
    int rp = gr_frame_unpack(fr, flen, &f);

    if (rv < 0 && rp == 0) {
        abort(); /* refused here, accepted by the general path */
    }
    if (rv == 1) {
        const Girder__Signal *s;

        if (rp != 0 || f->msg_case != GIRDER__FRAME__MSG_SIGNAL) {
            abort();
        }
        s = f->signal;
        if (v.kind != (uint32_t)s->kind || !same(v.from, v.from_len, s->from.data, s->from.len) ||
            !same(v.to, v.to_len, s->to.data, s->to.len) ||
            !same((const uint8_t *)v.to_name, v.to_name_len, (const uint8_t *)s->to_name,
                  strlen(s->to_name)) ||
            !same(v.ref, v.ref_len, s->ref.data, s->ref.len) ||
            !same(v.payload, v.payload_len, s->payload.data, s->payload.len) ||
            v.flags != s->flags ||
            !same((const uint8_t *)v.behaviour, v.behaviour_len, (const uint8_t *)s->behaviour,
                  strlen(s->behaviour))) {
            abort();
        }
    }
    gr_frame_free(f);
}

/* The sink's payload_at: process signals (sigframe.h). */
static int sig_payload_at(void *ud, const uint8_t *frame, size_t have, size_t total,
                          size_t *ret_head)
{
    (void)ud;
    return gr_sigframe_head_len(frame, have, total, ret_head);
}

/* The payload sink (gr_record_rx_set_sink): plain malloc'd buffers. */
static void *sink_alloc(void *ud, size_t len, uint8_t **ret_dst)
{
    (void)ud;
    return *ret_dst = malloc(len ? len : 1);
}

static void sink_drop(void *ud, void *handle)
{
    (void)ud;
    free(handle);
}

static void check_frame(const uint8_t *fr, size_t flen)
{
    Girder__Frame *f;

    sigframe_agrees(fr, flen);
    if (gr_frame_unpack(fr, flen, &f) == 0) {
        roundtrip(f);
        gr_frame_free(f);
    }
}

static void drain(gr_record_rx *rx)
{
    const uint8_t *fr;
    size_t flen;
    gr_record_payload pl;

    while (gr_record_next_split(rx, &fr, &flen, &pl) == 1) {
        uint8_t *whole;
        gr_sigframe v;

        if (pl.handle == NULL) {
            check_frame(fr, flen);
            continue;
        }
        /* a redirected payload: the split view must accept it, and the frame
         * put back together must read the same */
        if (gr_sigframe_view_split(fr, flen, pl.data, pl.len, &v) < 0 ||
            (whole = malloc(flen + pl.len)) == NULL) {
            free(pl.handle);
            continue;
        }
        memcpy(whole, fr, flen);
        memcpy(whole + flen, pl.data, pl.len);
        check_frame(whole, flen + pl.len);
        free(whole);
        free(pl.handle);
    }
}

/* Feed data to rx in chunks, draining frames as they come. */
static void feed(gr_record_rx *rx, const uint8_t *data, size_t size, size_t chunk)
{
    size_t off = 0;

    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk, used = 0;

        if (gr_record_feed(rx, data + off, n, &used) < 0) {
            return;
        }
        off += used;
        drain(rx);
    }
}

/* Seal body as a record plaintext (record.h layout) and feed it. */
static void feed_sealed(gr_record_rx *rx, const uint8_t *body, size_t size, size_t chunk)
{
    uint8_t nonce[12] = {0};
    uint8_t *rec;
    unsigned long long clen;

    if (size > FUZZ_LIMITS.max_record - 16) {
        return;
    }
    if ((rec = malloc(4 + size + 16)) == NULL) {
        return;
    }
    rec[0] = 0;
    rec[1] = (uint8_t)((size + 16) >> 16);
    rec[2] = (uint8_t)((size + 16) >> 8);
    rec[3] = (uint8_t)(size + 16);
    crypto_aead_chacha20poly1305_ietf_encrypt(rec + 4, &clen, body, size, rec, 4, NULL, nonce,
                                              FUZZ_KEY);
    feed(rx, rec, 4 + (size_t)clen, chunk);
    free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gr_record_rx *rx;
    uint8_t mode;

    if (size < 1 || sodium_init() < 0) {
        return 0;
    }
    mode = data[0];
    if (gr_record_rx_new(GR_CIPHER_CHACHA20_POLY1305, FUZZ_KEY, &FUZZ_LIMITS, &rx) < 0) {
        return 0;
    }
    if (size % 2) { /* half the inputs: big payloads go to a sink (min 16 bytes) */
        static const gr_record_sink sink = {
            .min = 16, .payload_at = sig_payload_at, .alloc = sink_alloc, .drop = sink_drop};

        (void)gr_record_rx_set_sink(rx, &sink);
    }
    if (FUZZ_MODE_PATH(mode) == 0) {
        feed(rx, data + 1, size - 1, FUZZ_MODE_CHUNK(mode));
    } else {
        feed_sealed(rx, data + 1, size - 1, FUZZ_MODE_CHUNK(mode));
    }
    gr_record_rx_free(rx);
    return 0;
}
