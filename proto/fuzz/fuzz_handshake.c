/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_handshake.c - libFuzzer harness for the handshake fed arbitrary bytes.
 *
 * Input: one mode byte, then the bytes "received from the peer". Path 0 runs
 * a responder (what an unauthenticated stranger reaches; it also holds an
 * observer key, so both roles of a Hello are reachable); path 1 an initiator
 * that has sent its M1. Both use fixed ephemerals and clock (fuzz_common.h),
 * so seeds recorded by seedgen from a real exchange replay deterministically
 * and reach the proof checks. The bytes are fed in chunks; whatever the
 * handshake does, it must never take more bytes than offered, and once it
 * reports completion it must hand out working keys.
 */
#include "proto/err.h"
#include "proto/fuzz/fuzz_common.h"
#include "proto/handshake.h"
#include "proto/handshake_int.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void finish(gr_handshake *hs)
{
    gr_handshake_peer peer;
    gr_record_tx *tx;
    gr_record_rx *rx;

    if (gr_handshake_finish(hs, &peer, &tx, &rx) != 0) {
        abort(); /* completed but cannot finish */
    }
    gr_record_tx_free(tx);
    gr_record_rx_free(rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gr_cookie cookie = fuzz_cookie(), observer = fuzz_cookie(); /* the labels tell them apart */
    gr_handshake_config cfg = {.cookie = &cookie, .limits = FUZZ_LIMITS};
    gr_handshake *hs;
    const uint8_t *out;
    size_t off = 1, chunk;
    int role, r = 0;

    if (size < 1) {
        return 0;
    }
    role = FUZZ_MODE_PATH(data[0]) ? GR_HANDSHAKE_INITIATOR : GR_HANDSHAKE_RESPONDER;
    chunk = FUZZ_MODE_CHUNK(data[0]);
    cfg.name = role == GR_HANDSHAKE_INITIATOR ? FUZZ_NAME_I : FUZZ_NAME_R;
    cfg.observer_key = role == GR_HANDSHAKE_RESPONDER ? &observer : NULL; /* Hello.role paths */
    if (gr_handshake_new_fixed(&cfg, role, role == GR_HANDSHAKE_INITIATOR ? FUZZ_SK_I : FUZZ_SK_R,
                               FUZZ_TIME, &hs) < 0) {
        return 0;
    }
    (void)gr_handshake_output(hs, &out);
    while (off < size && r == 0) {
        size_t n = size - off < chunk ? size - off : chunk, used = 0;

        r = gr_handshake_feed(hs, data + off, n, &used);
        if (r >= 0 && used > n) {
            abort();
        }
        off += r >= 0 ? used : 0;
        (void)gr_handshake_output(hs, &out);
    }
    if (r == 1) {
        finish(hs);
    }
    gr_handshake_free(hs);
    return 0;
}
