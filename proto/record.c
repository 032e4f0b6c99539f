/* SPDX-License-Identifier: Apache-2.0 */
/*
 * record.c - sealing batches into records and opening the received record
 * stream (layout in record.h).
 *
 * Design notes
 * - The cipher of a link (ChaCha20-Poly1305 or AES-128-OCB, agreed in the
 *   handshake) is computed in aead.c; this file only frames records.
 * - Encryption runs in place over the batch buffer (frame_int.h) and decryption
 *   in place over the receive buffer, except that where the cipher streams
 *   (gr_aead_can_stream) a payload the batch only references is sealed from
 *   where it is, and a big payload is opened into its consumer's buffer
 *   (gr_record_rx_set_sink; the sink says where a frame's payload starts, so
 *   this file knows no frame kind). Decryption writes
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

#include "proto/aead_int.h"
#include "proto/err.h"
#include "proto/frame_int.h"
#include "proto/record_int.h"
#include "proto/wire_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Receive buffers above this are freed once drained. A sender's bulk record
 * (the daemon seals a lane at 256 KiB, so up to that plus one frame) stays
 * below it: a stream of 64 KiB messages then reuses one buffer instead of
 * wiping, freeing and allocating one per record. */
#define RX_KEEP (512u << 10)

_Static_assert(GR_RECORD_OVERHEAD_MIN == GR_FRAME_HDR + GR_RECORD_TAG, "frame.h overhead");
_Static_assert(GR_BATCH_HEADROOM == GR_RECORD_HDR && GR_BATCH_TAILROOM == GR_RECORD_TAG,
               "a batch keeps room for the record's length and tag (frame_int.h)");

struct gr_record_tx {
    gr_aead *ctx;     /* keyed with the direction key */
    uint64_t counter; /* nonce of the next record */
};

/* A frame of the open record whose payload went to the sink: its
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
    size_t next_redir;          /* first not yet handed out by gr_record_next_split */
};

/* ---- opening with payloads redirected to a sink -------------------------------- */

/* The walk through one record: decrypted through d (a multiple of 16, or
 * mlen); in-place output written through w (w == d but for what a cipher
 * holds back of the last, partial block). */
typedef struct opener {
    gr_aead *aead;
    uint8_t *buf;
    size_t mlen, d, w;
} opener;

/* Decrypt in place through x, rounded up to a block (at most mlen). Every
 * update but the record's last is whole blocks, so no cipher holds anything
 * back and output stays in step with input. */
static int open_to(opener *o, size_t x)
{
    size_t end = (x + 15) & ~(size_t)15, n;
    int r;

    if (x >= o->mlen || end > o->mlen) {
        end = o->mlen;
    }
    if (end <= o->d) {
        return 0;
    }
    if ((r = gr_aead_update(o->aead, o->buf + o->w, o->buf + o->d, end - o->d, &n)) < 0) {
        return r;
    }
    o->w += n;
    o->d = end;
    return 0;
}

/* The frame at `frame`, payload at plaintext [p, q): have the sink's
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
        if (gr_aead_update(o->aead, dst + (o->d - p), o->buf + o->d, f - o->d, &n) < 0 ||
            n != f - o->d) {
            return GR_ECRYPTO;
        }
        rd->m1 = f;
        o->d = o->w = f;
    }
    return 0;
}

/* open_record with a sink: walk the frames while decrypting, and send the
 * payload of each big frame (where the sink's payload_at says it starts) to
 * the sink's buffer instead of the receive buffer, which saves the copy the
 * consumer would make. The frame kinds are the sink's business: this file
 * reads no frame beyond its length prefix. The walk trusts no length: a frame that does not fit
 * ends it, and gr_frame_next reports the fault after authentication. Nothing is handed out before
 * the tag is checked. */
static int open_redirect(gr_record_rx *rx, size_t mlen)
{
    opener o = {rx->ctx, rx->buf, mlen, 0, 0};
    size_t pos = 0, n;
    int r;

    rx->nredir = rx->next_redir = 0;
    if ((r = gr_aead_begin(rx->ctx, 0, rx->counter, rx->hdr)) < 0) {
        return r;
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
            probe = flen < GR_RECORD_SINK_PROBE ? flen : GR_RECORD_SINK_PROBE;
            if ((r = open_to(&o, fstart + probe)) < 0) {
                return r;
            }
            if (rx->sink.payload_at(rx->sink.ud, rx->buf + fstart, probe, flen, &head) == 1 &&
                head <= probe && flen - head >= rx->sink.min &&
                (r = redirect(rx, &o, pos, head, fstart + head, fstart + flen)) < 0) {
                return r;
            }
        }
        pos = fstart + flen;
    }
    if ((r = open_to(&o, mlen)) < 0 ||
        (r = gr_aead_finish(rx->ctx, 0, rx->buf + o.w, &n, rx->buf + mlen)) < 0) {
        return r;
    }
    if (o.w + n != mlen) {
        return GR_ECRYPTO;
    }
    for (size_t i = 0; i < rx->nredir; i++) {
        rx_redirect *rd = &rx->redir[i];

        memcpy(rd->dst, rx->buf + rd->p, rd->m0 - rd->p);
        memcpy(rd->dst + (rd->m1 - rd->p), rx->buf + rd->m1, rd->q - rd->m1);
    }
    return 0;
}

/* ---- sealing a batch with referenced tails ------------------------------------ */

/* One update of src[0..len) into out at *io_w. */
static int seal_piece(gr_aead *a, uint8_t *out, size_t *io_w, const uint8_t *src, size_t len)
{
    size_t n;
    int r;

    if ((r = gr_aead_update(a, out + *io_w, src, len, &n)) < 0) {
        return r;
    }
    *io_w += n;
    return 0;
}

/* Seal a batch with referenced tails. Where the cipher streams: out of place,
 * into b->obuf (the layout of frame_int.h), the plaintext read from buf and
 * from each tail in turn, so a tail is read once, by the cipher, and never
 * copied; output is contiguous (what a cipher holds back of a partial block
 * comes out with the next piece). Otherwise (the CLI's libsodium build) the
 * tails are copied into their room and the batch is sealed in place. The
 * length prefix is in buf already. */
static int seal_refs(gr_aead *a, uint64_t counter, gr_batch *b, uint8_t **ret_buf)
{
    size_t need = GR_RECORD_HDR + b->len + GR_RECORD_TAG, pos = 0, w = 0, n;
    uint8_t *out, *plain = b->buf + GR_RECORD_HDR;
    int r;

    if (!gr_aead_can_stream()) {
        for (size_t i = 0; i < b->nrefs; i++) {
            memcpy(plain + b->refs[i].off, b->refs[i].p, b->refs[i].len);
        }
        *ret_buf = b->buf;
        return gr_aead_run(a, 1, counter, b->buf, plain, b->len, plain + b->len);
    }
    if (need > b->ocap) {
        uint8_t *p = realloc(b->obuf, need);

        if (p == NULL) {
            return -ENOMEM;
        }
        b->obuf = p;
        b->ocap = need;
    }
    memcpy(b->obuf, b->buf, GR_RECORD_HDR);
    out = b->obuf + GR_RECORD_HDR;
    if ((r = gr_aead_begin(a, 1, counter, b->obuf)) < 0) {
        return r;
    }
    for (size_t i = 0; i < b->nrefs; i++) {
        const gr_batch_ref *ref = &b->refs[i];

        if ((r = seal_piece(a, out, &w, plain + pos, ref->off - pos)) < 0 ||
            (r = seal_piece(a, out, &w, ref->p, ref->len)) < 0) {
            return r;
        }
        pos = ref->off + ref->len;
    }
    if ((r = seal_piece(a, out, &w, plain + pos, b->len - pos)) < 0 ||
        (r = gr_aead_finish(a, 1, out + w, &n, out + b->len)) < 0) {
        return r;
    }
    if (w + n != b->len) {
        return GR_ECRYPTO;
    }
    *ret_buf = b->obuf;
    return 0;
}

bool gr_record_cipher_fast(int cipher)
{
    return gr_aead_fast(cipher);
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
    return cipher == GR_CIPHER_CHACHA20_POLY1305 || gr_aead_fast(cipher);
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
    if ((tx->ctx = gr_aead_new(cipher, key, 1)) == NULL) {
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
    gr_aead_free(tx->ctx);
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
        r = gr_aead_run(tx->ctx, 1, tx->counter, buf, buf + GR_RECORD_HDR, b->len,
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
    if ((rx->ctx = gr_aead_new(cipher, key, 0)) == NULL) {
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
    gr_aead_free(rx->ctx);
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
            : gr_aead_run(rx->ctx, 0, rx->counter, rx->hdr, rx->buf, mlen, rx->buf + mlen) < 0) {
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
    if (sink == NULL || sink->payload_at == NULL || sink->alloc == NULL || sink->drop == NULL ||
        sink->min == 0) {
        return -EINVAL;
    }
    if (!gr_aead_can_stream()) {
        return -ENOTSUP;
    }
    rx->sink = *sink;
    return 0;
}

int gr_record_next_split(gr_record_rx *rx, const uint8_t **ret_frame, size_t *ret_len,
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
            return fail(rx, -EINVAL); /* a sink's frames need gr_record_next_split */
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
    return gr_record_next_split(rx, ret_frame, ret_len, NULL);
}

size_t gr_record_rx_capacity(const gr_record_rx *rx)
{
    return rx->cap;
}
