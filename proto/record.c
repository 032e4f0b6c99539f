/* SPDX-License-Identifier: Apache-2.0 */
/*
 * record.c - sealing batches into records and opening the received record
 * stream (layout in record.h).
 *
 * Design notes
 * - Two AEADs, chosen per link by the handshake (gr_record_cipher_fast):
 *   ChaCha20-Poly1305 (RFC 8439), which every side supports, and AES-128-OCB
 *   (RFC 7253), taken when both ends have AES instructions. Records are what
 *   bounds bulk throughput, and on such CPUs OCB runs at about twice
 *   ChaCha20-Poly1305's speed (`openssl speed -evp`, 64 KiB: 9.4 against 4.0
 *   GB/s on the development VM; docs/benchmarks.md). Without AES instructions
 *   OCB is never offered: software AES is slow and leaks timing.
 * - Both are computed by OpenSSL's libcrypto (EVP), not libsodium: for
 *   ChaCha20-Poly1305 the same construction and bytes, but libcrypto's
 *   AVX2/AVX-512 code runs it about three times as fast on 64 KiB records, and
 *   libsodium has no OCB. libsodium keeps the handshake, and computes the
 *   records in the static CLI (GR_RECORD_SODIUM, see aead_new there), which
 *   offers ChaCha20-Poly1305 only. Each half keeps one EVP context keyed once;
 *   a record only sets the nonce.
 * - AES-128 takes the first 16 bytes of the 32-byte direction key (a uniformly
 *   random KDF output, so its prefix is one too).
 * - Encryption runs in place over the batch buffer (frame_int.h) and decryption
 *   in place over the receive buffer (EVP allows out == in). Decryption writes
 *   plaintext before the tag is checked; on a bad tag the record is wiped and the
 *   stream fails for good, so no unauthenticated byte is ever handed out.
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
#include <limits.h>
#if !defined(GR_RECORD_SODIUM)
#include <openssl/crypto.h>
#include <openssl/evp.h>
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#endif
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Receive buffers above this are freed once drained. A sender's bulk record
 * (the daemon seals a lane at 256 KiB, so up to that plus one frame) stays
 * below it: a stream of 64 KiB messages then reuses one buffer instead of
 * wiping, freeing and allocating one per record. */
#define RX_KEEP (512u << 10)

_Static_assert(GR_KEY_BYTES == 32, "key size");
_Static_assert(GR_RECORD_TAG == 16, "tag size");
#define NONCE_BYTES 12
_Static_assert(GR_RECORD_OVERHEAD_MIN == GR_FRAME_HDR + GR_RECORD_TAG, "frame.h overhead");

/* The AEAD keyed for one direction: an EVP_CIPHER_CTX, or (GR_RECORD_SODIUM)
 * the key itself. */
typedef struct gr_aead gr_aead;

struct gr_record_tx {
    gr_aead *ctx;     /* keyed with the direction key */
    uint64_t counter; /* nonce of the next record */
};

struct gr_record_rx {
    gr_aead *ctx;               /* keyed with the direction key */
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

static void make_nonce(uint8_t nonce[NONCE_BYTES], uint64_t counter)
{
    memset(nonce, 0, 4);
    gr_wire_put_le64(nonce + 4, counter);
}

#if defined(GR_RECORD_SODIUM)
/* The girder CLI's build (cli/meson.build): libsodium computes the same AEAD.
 * A short-lived process moving a few small records gains nothing from
 * libcrypto's speed and would pay its initialisation at every start (~3 ms,
 * measured: bench/run's CLI row). */
struct gr_aead {
    uint8_t key[GR_KEY_BYTES];
};

static bool aead_fast(int cipher)
{
    (void)cipher;
    return false; /* ChaCha20-Poly1305 only */
}

static gr_aead *aead_new(int cipher, const uint8_t key[GR_KEY_BYTES], int enc)
{
    gr_aead *a;

    (void)enc;
    if (cipher != GR_CIPHER_CHACHA20_POLY1305) {
        return NULL;
    }
    a = malloc(sizeof(*a));
    if (a != NULL) {
        memcpy(a->key, key, GR_KEY_BYTES);
    }
    return a;
}

static void aead_free(gr_aead *a)
{
    if (a != NULL) {
        sodium_memzero(a, sizeof(*a));
        free(a);
    }
}

static int aead_run(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr, uint8_t *buf,
                    size_t len, uint8_t tag[GR_RECORD_TAG])
{
    uint8_t nonce[NONCE_BYTES];

    make_nonce(nonce, counter);
    if (enc) {
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf, tag, NULL, buf, len, hdr,
                                                           GR_RECORD_HDR, NULL, nonce, a->key);
        return 0;
    }
    return crypto_aead_chacha20poly1305_ietf_decrypt_detached(buf, NULL, buf, len, tag, hdr,
                                                              GR_RECORD_HDR, nonce, a->key) == 0
               ? 0
               : GR_ECRYPTO;
}

/* libsodium has no streaming AEAD: the referenced tails are copied into their
 * room and the batch is sealed in place. */
static int seal_refs(gr_aead *a, uint64_t counter, gr_batch *b, uint8_t **ret_buf)
{
    uint8_t *buf = b->buf;

    for (size_t i = 0; i < b->nrefs; i++) {
        memcpy(buf + GR_RECORD_HDR + b->refs[i].off, b->refs[i].p, b->refs[i].len);
    }
    *ret_buf = buf;
    return aead_run(a, 1, counter, buf, buf + GR_RECORD_HDR, b->len, buf + GR_RECORD_HDR + b->len);
}
#else
/* AES-128-OCB: only with AES instructions (design notes). */
static bool aead_fast(int cipher)
{
    if (cipher != GR_CIPHER_AES128_OCB) {
        return false;
    }
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("aes");
#elif defined(__aarch64__)
    return (getauxval(AT_HWCAP) & HWCAP_AES) != 0;
#else
    return false;
#endif
}

/* A context of `cipher` keyed with key for one direction (enc: seal), or NULL
 * (unknown cipher, or no memory). libcrypto is told not to read openssl.cnf:
 * nothing here needs it. */
static gr_aead *aead_new(int cipher, const uint8_t key[GR_KEY_BYTES], int enc)
{
    EVP_CIPHER_CTX *ctx;
    int ok;

    if ((cipher != GR_CIPHER_CHACHA20_POLY1305 && cipher != GR_CIPHER_AES128_OCB) ||
        OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1 ||
        (ctx = EVP_CIPHER_CTX_new()) == NULL) {
        return NULL;
    }
    if (cipher == GR_CIPHER_CHACHA20_POLY1305) {
        ok = EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL, enc) == 1;
    } else {
        /* OCB: nonce and tag sizes are set before the key (EVP_aes_128_ocb(3)) */
        ok = EVP_CipherInit_ex(ctx, EVP_aes_128_ocb(), NULL, NULL, NULL, enc) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, GR_RECORD_TAG, NULL) == 1 &&
             EVP_CipherInit_ex(ctx, NULL, NULL, key, NULL, enc) == 1;
    }
    if (!ok) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return (gr_aead *)ctx;
}

static void aead_free(gr_aead *a)
{
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)a); /* wipes the key schedule */
}

/* Seal or open buf[0..len) in place under the record counter's nonce, with the
 * 4 length bytes hdr as associated data. Sealing writes the tag to tag; opening
 * checks it. 0, or GR_ECRYPTO (bad tag, or libcrypto failed). */
static int aead_run(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr, uint8_t *buf,
                    size_t len, uint8_t tag[GR_RECORD_TAG])
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)a;
    uint8_t nonce[NONCE_BYTES];
    int n, out = 0;

    if (len > INT_MAX) {
        return GR_ECRYPTO;
    }
    make_nonce(nonce, counter);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, hdr, GR_RECORD_HDR) != 1 ||
        (len > 0 && EVP_CipherUpdate(ctx, buf, &out, buf, (int)len) != 1)) {
        return GR_ECRYPTO;
    }
    /* OCB holds back a partial last block until Final, which writes it after
     * what Update wrote; ChaCha20-Poly1305 writes everything in Update */
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, GR_RECORD_TAG, tag) != 1) {
        return GR_ECRYPTO;
    }
    if (EVP_CipherFinal_ex(ctx, buf + out, &n) != 1) {
        return GR_ECRYPTO; /* opening: the tag did not match */
    }
    if ((size_t)out + (size_t)n != len) {
        return GR_ECRYPTO;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, GR_RECORD_TAG, tag) != 1) {
        return GR_ECRYPTO;
    }
    return 0;
}

/* One EVP update of src[0..len) into out at *io_w. */
static int seal_piece(EVP_CIPHER_CTX *ctx, uint8_t *out, size_t *io_w, const uint8_t *src,
                      size_t len)
{
    int n = 0;

    if (len == 0) {
        return 0;
    }
    if (len > INT_MAX || EVP_EncryptUpdate(ctx, out + *io_w, &n, src, (int)len) != 1) {
        return GR_ECRYPTO;
    }
    *io_w += (size_t)n;
    return 0;
}

/* Seal a batch with referenced tails out of place, into b->obuf (the layout of
 * frame_int.h): the plaintext is read from buf and from each tail in turn, so
 * a tail is read once, by the cipher, and never copied. Output is contiguous:
 * what a cipher holds back of a partial block comes out with the next piece. */
static int seal_refs(gr_aead *a, uint64_t counter, gr_batch *b, uint8_t **ret_buf)
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)a;
    size_t need = GR_RECORD_HDR + b->len + GR_RECORD_TAG, pos = 0, w = 0;
    uint8_t nonce[NONCE_BYTES], *out, *plain = b->buf + GR_RECORD_HDR;
    int n = 0, r;

    if (need > b->ocap) {
        uint8_t *p = realloc(b->obuf, need);

        if (p == NULL) {
            return -ENOMEM;
        }
        b->obuf = p;
        b->ocap = need;
    }
    memcpy(b->obuf, b->buf, GR_RECORD_HDR); /* the length, written by the caller */
    out = b->obuf + GR_RECORD_HDR;
    make_nonce(nonce, counter);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, b->obuf, GR_RECORD_HDR) != 1) {
        return GR_ECRYPTO;
    }
    for (size_t i = 0; i < b->nrefs; i++) {
        const gr_batch_ref *ref = &b->refs[i];

        if ((r = seal_piece(ctx, out, &w, plain + pos, ref->off - pos)) < 0 ||
            (r = seal_piece(ctx, out, &w, ref->p, ref->len)) < 0) {
            return r;
        }
        pos = ref->off + ref->len;
    }
    if ((r = seal_piece(ctx, out, &w, plain + pos, b->len - pos)) < 0) {
        return r;
    }
    if (EVP_EncryptFinal_ex(ctx, out + w, &n) != 1 || w + (size_t)n != b->len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, GR_RECORD_TAG, out + b->len) != 1) {
        return GR_ECRYPTO;
    }
    *ret_buf = b->obuf;
    return 0;
}
#endif

bool gr_record_cipher_fast(int cipher)
{
    return aead_fast(cipher);
}

const char *gr_record_cipher_name(int cipher)
{
    switch (cipher) {
    case GR_CIPHER_CHACHA20_POLY1305:
        return "chacha20-poly1305";
    case GR_CIPHER_AES128_OCB:
        return "aes-128-ocb";
    default:
        return NULL;
    }
}

static bool cipher_known(int cipher)
{
    return cipher == GR_CIPHER_CHACHA20_POLY1305 || aead_fast(cipher);
}

int gr_record_tx_new(int cipher, const uint8_t key[GR_KEY_BYTES], gr_record_tx **ret_tx)
{
    gr_record_tx *tx;

    if (!cipher_known(cipher)) {
        return -ENOTSUP;
    }
    if ((tx = calloc(1, sizeof(*tx))) == NULL) {
        return -ENOMEM;
    }
    if ((tx->ctx = aead_new(cipher, key, 1)) == NULL) {
        free(tx);
        return -ENOMEM;
    }
    *ret_tx = tx;
    return 0;
}

void gr_record_tx_free(gr_record_tx *tx)
{
    if (tx == NULL) {
        return;
    }
    aead_free(tx->ctx);
    sodium_memzero(tx, sizeof(*tx));
    free(tx);
}

int gr_record_seal(gr_record_tx *tx, gr_batch *b, const uint8_t **ret_rec, size_t *ret_len)
{
    uint8_t *buf;
    int r;

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
    gr_wire_put_be32(buf, (uint32_t)(b->len + GR_RECORD_TAG));
    if (b->nrefs > 0) {
        r = seal_refs(tx->ctx, tx->counter, b, &buf);
    } else {
        r = aead_run(tx->ctx, 1, tx->counter, buf, buf + GR_RECORD_HDR, b->len,
                     buf + GR_RECORD_HDR + b->len);
    }
    if (r < 0) {
        return r;
    }
    tx->counter++;
    b->sealed = GR_RECORD_HDR + b->len + GR_RECORD_TAG;
    *ret_rec = buf;
    *ret_len = b->sealed;
    return 0;
}

int gr_record_rx_new(int cipher, const uint8_t key[GR_KEY_BYTES], const gr_limits *lim,
                     gr_record_rx **ret_rx)
{
    gr_limits l;
    gr_record_rx *rx;
    int r;

    if (!cipher_known(cipher)) {
        return -ENOTSUP;
    }
    if ((r = gr_frame_limits_resolve(lim, &l)) < 0) {
        return r;
    }
    if ((rx = calloc(1, sizeof(*rx))) == NULL) {
        return -ENOMEM;
    }
    if ((rx->ctx = aead_new(cipher, key, 0)) == NULL) {
        free(rx);
        return -ENOMEM;
    }
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
    aead_free(rx->ctx);
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
    size_t mlen = rx->need - GR_RECORD_TAG;

    if (rx->counter == UINT64_MAX) {
        return GR_ECRYPTO;
    }
    if (aead_run(rx->ctx, 0, rx->counter, rx->hdr, rx->buf, mlen, rx->buf + mlen) < 0) {
        sodium_memzero(rx->buf, rx->need); /* no unauthenticated plaintext stays */
        return GR_ECRYPTO;
    }
    rx->counter++;
    rx->plain = mlen;
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
        if (rx->buf == NULL) {
            return fail(rx, -EINVAL); /* start_record sized it: cannot happen */
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
