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
 * decode again to a frame that passes the checks (round trip).
 */
#include "proto/err.h"
#include "proto/frame.h"
#include "proto/fuzz/fuzz_common.h"
#include "proto/record.h"

#include <sodium.h>
#include <stdlib.h>

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

static void drain(gr_record_rx *rx)
{
    const uint8_t *fr;
    size_t flen;
    Girder__Frame *f;

    while (gr_record_next(rx, &fr, &flen) == 1) {
        if (gr_frame_unpack(fr, flen, &f) == 0) {
            roundtrip(f);
            gr_frame_free(f);
        }
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
    if (gr_record_rx_new(FUZZ_KEY, &FUZZ_LIMITS, &rx) < 0) {
        return 0;
    }
    if (FUZZ_MODE_PATH(mode) == 0) {
        feed(rx, data + 1, size - 1, FUZZ_MODE_CHUNK(mode));
    } else {
        feed_sealed(rx, data + 1, size - 1, FUZZ_MODE_CHUNK(mode));
    }
    gr_record_rx_free(rx);
    return 0;
}
