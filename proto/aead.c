/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aead.c - the record ciphers (aead_int.h): ChaCha20-Poly1305 and
 * AES-128-OCB, computed by OpenSSL's libcrypto in girderd, by libsodium
 * (ChaCha20-Poly1305 only) in the static CLI.
 *
 * Design notes
 * - Why libcrypto and not libsodium for the daemon: for ChaCha20-Poly1305 the
 *   same construction and bytes, but libcrypto's AVX2/AVX-512 code runs it
 *   about three times as fast on 64 KiB records, and libsodium has no OCB.
 *   Each direction keeps one EVP context keyed once; a record only sets the
 *   nonce. libcrypto is told not to read openssl.cnf: nothing here needs it.
 * - AES-128-OCB (RFC 7253, 96-bit nonce, 128-bit tag) is offered only with
 *   AES instructions (gr_aead_fast): software AES is slow and leaks timing.
 *   With them it runs at about twice ChaCha20-Poly1305's speed (`openssl
 *   speed -evp`, 64 KiB: 9.4 against 4.0 GB/s on the development VM;
 *   docs/benchmarks.md). It takes the first 16 bytes of the 32-byte direction
 *   key (a uniformly random KDF output, so its prefix is one too).
 * - The CLI's build (GR_RECORD_SODIUM, cli/meson.build): a short-lived
 *   process moving a few small records gains nothing from libcrypto's speed
 *   and would pay its initialisation at every start (~3 ms, measured: bench/run's
 *   CLI row). libsodium has no streaming AEAD, so gr_aead_can_stream is false
 *   there.
 * - Keys are wiped when a context is freed (sodium_memzero; EVP_CIPHER_CTX_free
 *   wipes its key schedule).
 */
#include "proto/aead_int.h"

#include "proto/err.h"
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

_Static_assert(GR_KEY_BYTES == 32, "key size");
_Static_assert(GR_RECORD_TAG == 16, "tag size");
#define NONCE_BYTES 12

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

bool gr_aead_fast(int cipher)
{
    (void)cipher;
    return false; /* ChaCha20-Poly1305 only */
}

gr_aead *gr_aead_new(int cipher, const uint8_t key[GR_KEY_BYTES], int enc)
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

void gr_aead_free(gr_aead *a)
{
    if (a != NULL) {
        sodium_memzero(a, sizeof(*a));
        free(a);
    }
}

int gr_aead_run(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr, uint8_t *buf, size_t len,
                uint8_t tag[GR_RECORD_TAG])
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

bool gr_aead_can_stream(void)
{
    return false;
}

int gr_aead_begin(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr)
{
    (void)a;
    (void)enc;
    (void)counter;
    (void)hdr;
    return -ENOTSUP;
}

int gr_aead_update(gr_aead *a, uint8_t *out, const uint8_t *in, size_t len, size_t *ret_n)
{
    (void)a;
    (void)out;
    (void)in;
    (void)len;
    *ret_n = 0;
    return -ENOTSUP;
}

int gr_aead_finish(gr_aead *a, int enc, uint8_t *out, size_t *ret_n, uint8_t tag[GR_RECORD_TAG])
{
    (void)a;
    (void)enc;
    (void)out;
    (void)tag;
    *ret_n = 0;
    return -ENOTSUP;
}

#else
/* AES-128-OCB: only with AES instructions (design notes). */
bool gr_aead_fast(int cipher)
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
gr_aead *gr_aead_new(int cipher, const uint8_t key[GR_KEY_BYTES], int enc)
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

void gr_aead_free(gr_aead *a)
{
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)a); /* wipes the key schedule */
}

bool gr_aead_can_stream(void)
{
    return true;
}

int gr_aead_begin(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr)
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)a;
    uint8_t nonce[NONCE_BYTES];
    int n;

    make_nonce(nonce, counter);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, hdr, GR_RECORD_HDR) != 1) {
        return GR_ECRYPTO;
    }
    return 0;
}

int gr_aead_update(gr_aead *a, uint8_t *out, const uint8_t *in, size_t len, size_t *ret_n)
{
    int n = 0;

    *ret_n = 0;
    if (len == 0) {
        return 0;
    }
    if (len > INT_MAX || EVP_CipherUpdate((EVP_CIPHER_CTX *)a, out, &n, in, (int)len) != 1) {
        return GR_ECRYPTO;
    }
    *ret_n = (size_t)n;
    return 0;
}

int gr_aead_finish(gr_aead *a, int enc, uint8_t *out, size_t *ret_n, uint8_t tag[GR_RECORD_TAG])
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)a;
    int n = 0;

    *ret_n = 0;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, GR_RECORD_TAG, tag) != 1) {
        return GR_ECRYPTO;
    }
    if (EVP_CipherFinal_ex(ctx, out, &n) != 1) {
        return GR_ECRYPTO; /* opening: the tag did not match */
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, GR_RECORD_TAG, tag) != 1) {
        return GR_ECRYPTO;
    }
    *ret_n = (size_t)n;
    return 0;
}

int gr_aead_run(gr_aead *a, int enc, uint64_t counter, const uint8_t *hdr, uint8_t *buf, size_t len,
                uint8_t tag[GR_RECORD_TAG])
{
    size_t n = 0, m = 0;
    int r;

    if ((r = gr_aead_begin(a, enc, counter, hdr)) < 0 ||
        (r = gr_aead_update(a, buf, buf, len, &n)) < 0 ||
        (r = gr_aead_finish(a, enc, buf + n, &m, tag)) < 0) {
        return r;
    }
    return n + m == len ? 0 : GR_ECRYPTO;
}
#endif
