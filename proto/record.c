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
#include "proto/sigframe.h"
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

/* A Signal frame of the open record whose payload went to the sink: its
 * plaintext [p, q) is in dst, of which [m0, m1) was decrypted there directly
 * and the rest in place (copied over once the tag is checked). */
typedef struct rx_redirect {
    size_t frame;  /* plaintext offset of the frame's length prefix */
    size_t head;   /* frame bytes before the payload (valid in buf) */
    size_t p, q;   /* the payload's plaintext range */
    size_t m0, m1; /* the part decrypted straight into dst */
    uint8_t *dst;  /* the sink's buffer of q - p bytes */
    void *handle;  /* the sink's, owning dst; NULL once handed out */
} rx_redirect;

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
    gr_record_sink sink;        /* payload destinations (alloc NULL: none) */
    rx_redirect *redir;         /* this record's redirected frames, in order */
    size_t nredir, redir_cap;   /* used / allocated */
    size_t next_redir;          /* first not yet handed out by gr_record_next2 */
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

/* No streaming AEAD: payloads are never redirected (gr_record_rx_set_sink). */
static bool can_redirect(void)
{
    return false;
}

static int open_redirect(gr_record_rx *rx, size_t mlen)
{
    (void)rx;
    (void)mlen;
    return GR_ECRYPTO;
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

/* ---- opening with payloads redirected to a sink -------------------------------- */

#define SIG_HEAD_PROBE 2048u /* plaintext read to find a Signal frame's payload */

/* The walk through one record: decrypted through d (a multiple of 16, or
 * mlen); in-place output written through w (w == d but for what a cipher
 * holds back of the last, partial block). */
typedef struct opener {
    EVP_CIPHER_CTX *ctx;
    uint8_t *buf;
    size_t mlen, d, w;
} opener;

static int open_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len,
                       size_t *ret_n)
{
    int n = 0;

    *ret_n = 0;
    if (len == 0) {
        return 0;
    }
    if (len > INT_MAX || EVP_DecryptUpdate(ctx, out, &n, in, (int)len) != 1) {
        return GR_ECRYPTO;
    }
    *ret_n = (size_t)n;
    return 0;
}

/* Decrypt in place through x, rounded up to a block (at most mlen). Every
 * update but the record's last is whole blocks, so no cipher holds anything
 * back and output stays in step with input. */
static int open_to(opener *o, size_t x)
{
    size_t end = x >= o->mlen ? o->mlen : (x + 15) & ~(size_t)15, n;
    int r;

    if (end > o->mlen) {
        end = o->mlen;
    }
    if (end <= o->d) {
        return 0;
    }
    if ((r = open_update(o->ctx, o->buf + o->w, o->buf + o->d, end - o->d, &n)) < 0) {
        return r;
    }
    o->w += n;
    o->d = end;
    return 0;
}

/* The Signal frame at `frame`, payload at plaintext [p, q): have the sink's
 * buffer take it, the whole blocks decrypted straight into it. 0 (also when
 * the sink or memory says no: the payload then stays in place) or an error. */
static int redirect(gr_record_rx *rx, opener *o, size_t frame, size_t head, size_t p, size_t q)
{
    rx_redirect *rd;
    uint8_t *dst = NULL;
    size_t f = q & ~(size_t)15, n;
    void *h;

    if (rx->nredir == rx->redir_cap) {
        size_t cap = rx->redir_cap ? 2 * rx->redir_cap : 8;
        rx_redirect *a = realloc(rx->redir, cap * sizeof(*a));

        if (a == NULL) {
            return 0;
        }
        rx->redir = a;
        rx->redir_cap = cap;
    }
    if ((h = rx->sink.alloc(rx->sink.ud, q - p, &dst)) == NULL) {
        return 0;
    }
    rd = &rx->redir[rx->nredir++];
    *rd = (rx_redirect){frame, head, p, q, q, q, dst, h};
    if (f > o->d && o->d >= p) {
        rd->m0 = o->d;
        if (open_update(o->ctx, dst + (o->d - p), o->buf + o->d, f - o->d, &n) < 0 ||
            n != f - o->d) {
            return GR_ECRYPTO;
        }
        rd->m1 = f;
        o->d = o->w = f;
    }
    return 0;
}

/* open_record with a sink: walk the frames while decrypting, and send the
 * payload of each big canonical Signal frame to the sink's buffer instead of
 * the receive buffer, which saves the copy the consumer would make. The walk
 * trusts no length: a frame that does not fit ends it, and gr_frame_next
 * reports the fault after authentication. Nothing is handed out before the
 * tag is checked. */
static int open_redirect(gr_record_rx *rx, size_t mlen)
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)rx->ctx;
    opener o = {ctx, rx->buf, mlen, 0, 0};
    uint8_t nonce[NONCE_BYTES];
    size_t pos = 0;
    int n = 0, r;

    rx->nredir = rx->next_redir = 0;
    make_nonce(nonce, rx->counter);
    if (mlen > INT_MAX || EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, rx->hdr, GR_RECORD_HDR) != 1) {
        return GR_ECRYPTO;
    }
    while (mlen - pos >= GR_FRAME_HDR) {
        size_t fstart = pos + GR_FRAME_HDR, flen, head, probe;

        if ((r = open_to(&o, fstart)) < 0) {
            return r;
        }
        flen = gr_wire_get_be32(rx->buf + pos);
        if (flen > mlen - fstart) {
            break;
        }
        if (flen >= rx->sink.min) {
            probe = flen < SIG_HEAD_PROBE ? flen : SIG_HEAD_PROBE;
            if ((r = open_to(&o, fstart + probe)) < 0) {
                return r;
            }
            if (gr_sigframe_head_len(rx->buf + fstart, probe, flen, &head) == 1 &&
                flen - head >= rx->sink.min &&
                (r = redirect(rx, &o, pos, head, fstart + head, fstart + flen)) < 0) {
                return r;
            }
        }
        pos = fstart + flen;
    }
    if ((r = open_to(&o, mlen)) < 0) {
        return r;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, GR_RECORD_TAG, rx->buf + mlen) != 1 ||
        EVP_DecryptFinal_ex(ctx, rx->buf + o.w, &n) != 1 || o.w + (size_t)n != mlen) {
        return GR_ECRYPTO;
    }
    for (size_t i = 0; i < rx->nredir; i++) {
        rx_redirect *rd = &rx->redir[i];

        memcpy(rd->dst, rx->buf + rd->p, rd->m0 - rd->p);
        memcpy(rd->dst + (rd->m1 - rd->p), rx->buf + rd->m1, rd->q - rd->m1);
    }
    return 0;
}

static bool can_redirect(void)
{
    return true;
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

/* Give back the payloads not handed out (a failed record, or a freed half). */
static void drop_redirects(gr_record_rx *rx)
{
    for (size_t i = rx->next_redir; i < rx->nredir; i++) {
        if (rx->redir[i].handle != NULL) {
            rx->sink.drop(rx->sink.ud, rx->redir[i].handle);
        }
    }
    rx->nredir = rx->next_redir = 0;
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
    drop_redirects(rx);
    free(rx->redir);
    drop_buf(rx);
    aead_free(rx->ctx);
    sodium_memzero(rx, sizeof(*rx));
    free(rx);
}

static int fail(gr_record_rx *rx, int err)
{
    rx->err = err;
    rx->ready = 0;
    drop_redirects(rx);
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
    if (rx->sink.alloc != NULL
            ? open_redirect(rx, mlen) < 0
            : aead_run(rx->ctx, 0, rx->counter, rx->hdr, rx->buf, mlen, rx->buf + mlen) < 0) {
        sodium_memzero(rx->buf, rx->need); /* no unauthenticated plaintext stays */
        return GR_ECRYPTO;                 /* (fail() drops the redirected payloads) */
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

int gr_record_rx_set_sink(gr_record_rx *rx, const gr_record_sink *sink)
{
    if (sink == NULL || sink->alloc == NULL || sink->drop == NULL || sink->min == 0) {
        return -EINVAL;
    }
    if (!can_redirect()) {
        return -ENOTSUP;
    }
    rx->sink = *sink;
    return 0;
}

int gr_record_next2(gr_record_rx *rx, const uint8_t **ret_frame, size_t *ret_len,
                    gr_record_payload *ret_payload)
{
    size_t at = rx->pos;
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
        return 0;
    }
    if (ret_payload != NULL) {
        *ret_payload = (gr_record_payload){0};
    }
    if (rx->next_redir < rx->nredir && rx->redir[rx->next_redir].frame == at) {
        rx_redirect *rd = &rx->redir[rx->next_redir];

        if (ret_payload == NULL) {
            return fail(rx, -EINVAL); /* a sink's frames need gr_record_next2 */
        }
        rx->next_redir++;
        *ret_len = rd->head;
        ret_payload->handle = rd->handle;
        ret_payload->data = rd->dst;
        ret_payload->len = rd->q - rd->p;
        rd->handle = NULL;
    }
    return 1;
}

int gr_record_next(gr_record_rx *rx, const uint8_t **ret_frame, size_t *ret_len)
{
    return gr_record_next2(rx, ret_frame, ret_len, NULL);
}

size_t gr_record_rx_capacity(const gr_record_rx *rx)
{
    return rx->cap;
}
