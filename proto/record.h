/* SPDX-License-Identifier: Apache-2.0 */
/*
 * record.h - the encrypted record stream, one direction of an established link.
 *
 * After the handshake each direction has its own 32-byte key. Every batch of
 * frames (frame.h) travels as one record:
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     L, unsigned big-endian: ciphertext length, tag included;
 *                 16 <= L <= max_record of the receiver
 *   4       L-16  ciphertext of the batch plaintext
 *   L-12    16    tag
 *
 * The AEAD is the link's cipher (GR_CIPHER_*, agreed in the handshake):
 * ChaCha20-Poly1305-IETF (RFC 8439) with the 32-byte key, or AES-128-OCB
 * (RFC 7253, 128-bit tag) with its first 16 bytes.
 *
 * Nonce (12 bytes) = 4 zero bytes || record counter, 64-bit little-endian. The
 * counter starts at 0 in each direction and grows by one per record; it is never
 * sent. Additional data = the 4 length bytes. A lost, reordered, replayed,
 * truncated or altered record therefore fails authentication (GR_ECRYPTO) and the
 * link must be closed: a record stream cannot resynchronise.
 *
 * Sender:   gr_batch_add ... gr_record_seal -> write the record bytes.
 * Receiver: gr_record_feed(bytes as they arrive) -> gr_record_next (or
 *           gr_record_next_split with a payload sink) until 0.
 *
 * Threading: a gr_record_tx / gr_record_rx belongs to the thread that owns the
 * connection. Nothing here touches a socket.
 */
#ifndef GR_RECORD_H
#define GR_RECORD_H

#include "proto/frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GR_KEY_BYTES 32  /* a direction key */
#define GR_RECORD_HDR 4  /* record length prefix */
#define GR_RECORD_TAG 16 /* AEAD tag */

/* Record ciphers: the values of girder.proto's Cipher. */
#define GR_CIPHER_CHACHA20_POLY1305 0 /* every side has it */
#define GR_CIPHER_AES128_OCB 1        /* only where gr_record_cipher_fast */

/* Whether this build and CPU compute `cipher` fast and in constant time, so
 * that a handshake may offer or choose it: AES-128-OCB with AES instructions,
 * not in the CLI's libsodium build. False for ChaCha20-Poly1305, which needs
 * no offer. */
bool gr_record_cipher_fast(int cipher);

/* "chacha20-poly1305", "aes-128-ocb", or NULL for another value. */
const char *gr_record_cipher_name(int cipher);

/* Sending half: key and record counter. Opaque. */
typedef struct gr_record_tx gr_record_tx;

/* Receiving half: key, counter, partial-record reassembly. Opaque. */
typedef struct gr_record_rx gr_record_rx;

/* New sending half for `cipher` with `key` (copied; the caller wipes its copy).
 * Returns 0, -ENOTSUP (a cipher this build or CPU does not run:
 * gr_record_cipher_fast) or -ENOMEM. Normally made by gr_handshake_finish. */
int gr_record_tx_new(int cipher, const uint8_t key[GR_KEY_BYTES], gr_record_tx **ret_tx);

/* Wipe the key and free. NULL-safe. */
void gr_record_tx_free(gr_record_tx *tx);

/* Seal batch `b` into one record and point *ret_rec / *ret_len at it (inside
 * the batch: in place, or in a second buffer when it holds referenced tails;
 * valid until the next gr_batch_add, gr_batch_reset or gr_batch_free on b).
 * An empty batch seals to an empty record (20 bytes), which a receiver
 * accepts. Returns 0, -EINVAL if b is already sealed, -ENOMEM, or GR_ECRYPTO
 * when the 2^64 record counter is spent (outputs untouched on error). */
int gr_record_seal(gr_record_tx *tx, gr_batch *b, const uint8_t **ret_rec, size_t *ret_len);

/* New receiving half for `cipher` with `key` (copied) and our own limits `lim`
 * (NULL: defaults; the ones we advertised in the handshake). Returns 0,
 * -ENOTSUP (as for gr_record_tx_new), -EINVAL (bad limits) or -ENOMEM. */
int gr_record_rx_new(int cipher, const uint8_t key[GR_KEY_BYTES], const gr_limits *lim,
                     gr_record_rx **ret_rx);

/* Wipe the key and any plaintext, free. NULL-safe. */
void gr_record_rx_free(gr_record_rx *rx);

/* Consume received bytes data[0..len), any chunking. Stops right after a record
 * is complete and decrypted so its frames can be drained with gr_record_next;
 * while such frames are pending it consumes nothing. *ret_used tells how many
 * bytes were consumed: pass the rest again once gr_record_next returned 0.
 * The record length is checked against max_record before any allocation.
 * Returns 0; GR_EFRAMETOOBIG (length over max_record), GR_EBADFRAME (length
 * under 16), GR_ECRYPTO (authentication failed), -ENOMEM. Errors are sticky:
 * every later call returns the same code; close the link. */
int gr_record_feed(gr_record_rx *rx, const void *data, size_t len, size_t *ret_used);

/* Next frame of the current record. Returns 1 with *ret_frame / *ret_len set
 * (pointing into rx's buffer, valid until the next gr_record_feed or free), 0
 * when no frame is pending (feed more bytes), GR_EFRAMETOOBIG / GR_EBADFRAME for
 * a malformed plaintext (sticky, as above). */
int gr_record_next(gr_record_rx *rx, const uint8_t **ret_frame, size_t *ret_len);

/* Where the payloads of big frames go. The record layer knows no frame kind:
 * payload_at(ud, frame, have, total, &head) - the first `have` bytes of a frame of
 * `total` bytes (have <= GR_RECORD_SINK_PROBE) - says whether the frame ends
 * in a payload that starts at offset head (1, head <= have) or not (0); it
 * must only read the layout (the frame is checked when it is decoded).
 * alloc(ud, len, &dst) returns a handle owning a buffer dst of len bytes, or
 * NULL (the payload then stays in the receive buffer); drop(ud, handle) gives
 * back one the consumer never took (a record that failed authentication, a
 * freed half). */
typedef struct gr_record_sink {
    size_t min; /* payloads this big, at least */
    int (*payload_at)(void *ud, const uint8_t *frame, size_t have, size_t total,
                      size_t *ret_head);                     /* where it starts */
    void *(*alloc)(void *ud, size_t len, uint8_t **ret_dst); /* a destination */
    void (*drop)(void *ud, void *handle);                    /* an unused one */
    void *ud;                                                /* for the three */
} gr_record_sink;

/* Frame bytes decrypted before payload_at is asked (fewer if the frame is shorter). */
#define GR_RECORD_SINK_PROBE 2048u

/* Decrypt the payload of each frame that payload_at says has at least
 * sink->min payload bytes (a process signal: sigframe.h's
 * gr_sigframe_head_len tells) straight into a buffer of the sink's, instead of into
 * the receive buffer from which the consumer would copy it: one pass over the
 * payload less. Only the payload's whole cipher blocks go there directly; its
 * first and last few bytes are copied. Nothing is handed out before the record
 * is authenticated. Drain frames with gr_record_next_split from then on. 0,
 * -EINVAL (no payload_at, alloc, drop or min), -ENOTSUP (the CLI's libsodium
 * build: no streaming AEAD). */
int gr_record_rx_set_sink(gr_record_rx *rx, const gr_record_sink *sink);

/* A redirected payload, from gr_record_next_split. */
typedef struct gr_record_payload {
    void *handle;        /* the sink's handle, now the caller's; NULL: not redirected */
    const uint8_t *data; /* its bytes */
    size_t len;
} gr_record_payload;

/* gr_record_next, and for a frame whose payload went to the sink: *ret_len
 * covers the frame's head only (the bytes before the payload), and
 * *ret_payload hands over the payload's handle. ret_payload may be NULL only
 * while no sink is set. */
int gr_record_next_split(gr_record_rx *rx, const uint8_t **ret_frame, size_t *ret_len,
                         gr_record_payload *ret_payload);

#endif
