/* SPDX-License-Identifier: Apache-2.0 */
/*
 * record.c - sealing batches into records and opening the received record
 * stream (layout in record.h).
 *
 * Design notes
 * - Encryption runs in place over the batch buffer (frame_int.h) and decryption
 *   in place over the receive buffer; libsodium's ChaCha20-Poly1305 accepts
 *   c == m, and decryption verifies the tag before it writes any plaintext.
 * - The receiver reads the 4-byte length into a fixed array, compares it with
 *   max_record, and only then sizes its buffer: a peer announcing 4 GiB costs
 *   nothing but the error. The buffer is reused across records; one larger than
 *   RX_KEEP is given back at the first feed after its frames were drained (not
 *   earlier: frame pointers stay valid until the next feed).
 * - Errors are sticky on the receiving side: after a failure the stream position
 *   is unknown, so every later call repeats the first error.
 * - Keys are wiped with sodium_memzero when a half is freed; received plaintext
 *   is wiped before the buffer is given back.
 */
#include "proto/record.h"

#include "proto/err.h"
#include "proto/frame_int.h"
#include "proto/record_int.h"
#include "proto/wire_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define RX_KEEP (256u << 10) /* receive buffers above this are freed once drained */

_Static_assert(GR_KEY_BYTES == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(GR_RECORD_TAG == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce size");
_Static_assert(GR_RECORD_OVERHEAD_MIN == GR_FRAME_HDR + GR_RECORD_TAG, "frame.h overhead");

struct gr_record_tx {
    uint8_t key[GR_KEY_BYTES]; /* direction key */
    uint64_t counter;          /* nonce of the next record */
};

struct gr_record_rx {
    uint8_t key[GR_KEY_BYTES];  /* direction key */
    uint64_t counter;           /* nonce of the next record */
    gr_limits lim;              /* our receive limits, resolved */
    uint8_t hdr[GR_RECORD_HDR]; /* length prefix being read */
    size_t hdr_have;            /* bytes of hdr read so far */
    uint8_t *buf;               /* ciphertext, then plaintext, of the current record */
    size_t cap;                 /* bytes allocated at buf */
    size_t need;                /* ciphertext length of the current record (0: none) */
    size_t have;                /* ciphertext bytes read so far */
    size_t plain;               /* plaintext length once decrypted */
    size_t pos;                 /* next frame offset in the plaintext */
    int ready;                  /* plaintext frames pending */
    int err;                    /* sticky error, 0 while healthy */
};

static void make_nonce(uint8_t nonce[12], uint64_t counter)
{
    memset(nonce, 0, 4);
    gr_wire_put_le64(nonce + 4, counter);
}

int gr_record_tx_new(const uint8_t key[GR_KEY_BYTES], gr_record_tx **ret_tx)
{
    gr_record_tx *tx = calloc(1, sizeof(*tx));

    if (tx == NULL) {
        return -ENOMEM;
    }
    memcpy(tx->key, key, GR_KEY_BYTES);
    *ret_tx = tx;
    return 0;
}

void gr_record_tx_free(gr_record_tx *tx)
{
    if (tx == NULL) {
        return;
    }
    sodium_memzero(tx, sizeof(*tx));
    free(tx);
}

int gr_record_seal(gr_record_tx *tx, gr_batch *b, const uint8_t **ret_rec, size_t *ret_len)
{
    uint8_t nonce[12];
    unsigned long long clen;
    uint8_t *buf;

    if (b->sealed) {
        return -EINVAL;
    }
    if (tx->counter == UINT64_MAX) {
        return GR_ECRYPTO;
    }
    if (b->buf == NULL) {
        /* nothing was ever added: seal an empty record into a private buffer */
        if ((b->buf = malloc(GR_RECORD_HDR + GR_RECORD_TAG)) == NULL) {
            return -ENOMEM;
        }
        b->cap = GR_RECORD_HDR + GR_RECORD_TAG;
    }
    buf = b->buf;
    make_nonce(nonce, tx->counter);
    gr_wire_put_be32(buf, (uint32_t)(b->len + GR_RECORD_TAG));
    crypto_aead_chacha20poly1305_ietf_encrypt(buf + GR_RECORD_HDR, &clen, buf + GR_RECORD_HDR,
                                              b->len, buf, GR_RECORD_HDR, NULL, nonce, tx->key);
    tx->counter++;
    b->sealed = GR_RECORD_HDR + (size_t)clen;
    *ret_rec = buf;
    *ret_len = b->sealed;
    return 0;
}

int gr_record_rx_new(const uint8_t key[GR_KEY_BYTES], const gr_limits *lim, gr_record_rx **ret_rx)
{
    gr_limits l;
    gr_record_rx *rx;
    int r;

    if ((r = gr_frame_limits_resolve(lim, &l)) < 0) {
        return r;
    }
    if ((rx = calloc(1, sizeof(*rx))) == NULL) {
        return -ENOMEM;
    }
    memcpy(rx->key, key, GR_KEY_BYTES);
    rx->lim = l;
    *ret_rx = rx;
    return 0;
}

/* Wipe and drop the receive buffer. */
static void drop_buf(gr_record_rx *rx)
{
    if (rx->buf != NULL) {
        sodium_memzero(rx->buf, rx->cap);
        free(rx->buf);
    }
    rx->buf = NULL;
    rx->cap = 0;
}

void gr_record_rx_free(gr_record_rx *rx)
{
    if (rx == NULL) {
        return;
    }
    drop_buf(rx);
    sodium_memzero(rx, sizeof(*rx));
    free(rx);
}

static int fail(gr_record_rx *rx, int err)
{
    rx->err = err;
    rx->ready = 0;
    return err;
}

/* The 4 length bytes are in: check them, then size the buffer. */
static int start_record(gr_record_rx *rx)
{
    uint32_t n = gr_wire_get_be32(rx->hdr);
    uint8_t *p;

    if (n > rx->lim.max_record) {
        return GR_EFRAMETOOBIG;
    }
    if (n < GR_RECORD_TAG) {
        return GR_EBADFRAME;
    }
    if (n > rx->cap) {
        drop_buf(rx);
        if ((p = malloc(n)) == NULL) {
            return -ENOMEM;
        }
        rx->buf = p;
        rx->cap = n;
    }
    rx->need = n;
    rx->have = 0;
    return 0;
}

/* The whole ciphertext is in: authenticate and decrypt in place. */
static int open_record(gr_record_rx *rx)
{
    uint8_t nonce[12];
    unsigned long long mlen;

    if (rx->counter == UINT64_MAX) {
        return GR_ECRYPTO;
    }
    make_nonce(nonce, rx->counter);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(rx->buf, &mlen, NULL, rx->buf, rx->need, rx->hdr,
                                                  GR_RECORD_HDR, nonce, rx->key) != 0) {
        return GR_ECRYPTO;
    }
    rx->counter++;
    rx->plain = (size_t)mlen;
    rx->pos = 0;
    rx->ready = 1;
    rx->need = 0;
    rx->hdr_have = 0;
    return 0;
}

int gr_record_feed(gr_record_rx *rx, const void *data, size_t len, size_t *ret_used)
{
    const uint8_t *p = data;
    size_t used = 0, n;
    int r;

    if (rx->err) {
        return rx->err;
    }
    if (!rx->ready && rx->need == 0 && rx->cap > RX_KEEP) {
        drop_buf(rx); /* the large record's frames are drained and now released */
    }
    while (used < len && !rx->ready) {
        if (rx->hdr_have < GR_RECORD_HDR) {
            rx->hdr[rx->hdr_have++] = p[used++];
            if (rx->hdr_have == GR_RECORD_HDR && (r = start_record(rx)) < 0) {
                return fail(rx, r);
            }
            continue;
        }
        n = rx->need - rx->have;
        if (n > len - used) {
            n = len - used;
        }
        memcpy(rx->buf + rx->have, p + used, n);
        rx->have += n;
        used += n;
        if (rx->have == rx->need && (r = open_record(rx)) < 0) {
            return fail(rx, r);
        }
    }
    *ret_used = used;
    return 0;
}

int gr_record_next(gr_record_rx *rx, const uint8_t **ret_frame, size_t *ret_len)
{
    int r;

    if (rx->err) {
        return rx->err;
    }
    if (!rx->ready) {
        return 0;
    }
    r = gr_frame_next(rx->buf, rx->plain, &rx->pos, rx->lim.max_frame, ret_frame, ret_len);
    if (r < 0) {
        return fail(rx, r);
    }
    if (r == 0) {
        rx->ready = 0;
    }
    return r;
}

size_t gr_record_rx_capacity(const gr_record_rx *rx)
{
    return rx->cap;
}
