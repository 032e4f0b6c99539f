/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key.c - canonical keys, msgpack order and the key hashes (key.h).
 *
 * Design notes: one small msgpack reader (head()) serves both the canonicalizer
 * and the comparator, so both agree on what a term is. The canonicalizer writes
 * into a bounded output (GR_TKEY_MAX) and never recurses deeper than
 * GR_TERM_DEPTH_MAX; the comparator only ever sees canonical bytes made here.
 * Order of classes: nil < false < true < numbers < str < bin < array < map < ext.
 */
#include "tables/key.h"

#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum cls { C_NIL, C_BOOL, C_NUM, C_STR, C_BIN, C_ARR, C_MAP, C_EXT };

/* One decoded msgpack head. */
typedef struct hd {
    int cls;            /* enum cls */
    int is_float;       /* C_NUM: a float */
    int is_neg;         /* C_NUM int: negative (value in i) */
    uint64_t u;         /* C_NUM non-negative int; C_BOOL: 0/1 */
    int64_t i;          /* C_NUM negative int */
    double f;           /* C_NUM float */
    int8_t ext;         /* C_EXT: type */
    uint32_t n;         /* str/bin/ext bytes, array elements, map pairs */
    const uint8_t *pay; /* str/bin/ext payload */
} hd;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Decode the head at *pp (bounded by end); advance *pp past the head and any
 * payload bytes. 0 or GR_EBADTERM. */
static int head(const uint8_t **pp, const uint8_t *end, hd *h)
{
    const uint8_t *p = *pp;
    uint8_t b;
    int nb = 0; /* bytes of length/value after the type byte */
    uint64_t len = 0;

    if (p >= end) {
        return GR_EBADTERM;
    }
    b = *p++;
    memset(h, 0, sizeof(*h));
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if ((size_t)(end - p) < (size_t)(k)) {                                                     \
            return GR_EBADTERM;                                                                    \
        }                                                                                          \
    } while (0)
    if (b <= 0x7f) {
        h->cls = C_NUM;
        h->u = b;
    } else if (b >= 0xe0) {
        h->cls = C_NUM;
        h->is_neg = 1;
        h->i = (int8_t)b;
    } else if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
        h->cls = (b & 0xf0) == 0x80 ? C_MAP : C_ARR;
        h->n = b & 0x0f;
    } else if ((b & 0xe0) == 0xa0) {
        h->cls = C_STR;
        len = b & 0x1f;
        goto payload;
    } else {
        switch (b) {
        case 0xc0:
            h->cls = C_NIL;
            break;
        case 0xc2:
        case 0xc3:
            h->cls = C_BOOL;
            h->u = b & 1;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            h->cls = C_BIN;
            nb = 1 << (b - 0xc4);
            NEED(nb);
            len = be(p, nb);
            p += nb;
            goto payload;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            h->cls = C_EXT;
            nb = 1 << (b - 0xc7);
            NEED(nb + 1);
            len = be(p, nb);
            p += nb;
            h->ext = (int8_t)*p++;
            goto payload;
        case 0xca:
            NEED(4);
            {
                uint32_t w = (uint32_t)be(p, 4);
                float f;

                memcpy(&f, &w, 4);
                h->f = f;
            }
            p += 4;
            h->cls = C_NUM;
            h->is_float = 1;
            break;
        case 0xcb:
            NEED(8);
            {
                uint64_t w = be(p, 8);

                memcpy(&h->f, &w, 8);
            }
            p += 8;
            h->cls = C_NUM;
            h->is_float = 1;
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            nb = 1 << (b - 0xcc);
            NEED(nb);
            h->cls = C_NUM;
            h->u = be(p, nb);
            p += nb;
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            uint64_t raw;

            nb = 1 << (b - 0xd0);
            NEED(nb);
            raw = be(p, nb);
            p += nb;
            h->cls = C_NUM;
            if (nb < 8 && (raw >> (nb * 8 - 1)) & 1) {
                raw |= ~(uint64_t)0 << (nb * 8); /* sign-extend */
            }
            h->i = (int64_t)raw;
            if (h->i < 0) {
                h->is_neg = 1;
            } else {
                h->u = (uint64_t)h->i;
            }
            break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            h->cls = C_EXT;
            len = 1u << (b - 0xd4);
            NEED(1);
            h->ext = (int8_t)*p++;
            goto payload;
        case 0xd9:
        case 0xda:
        case 0xdb:
            h->cls = C_STR;
            nb = 1 << (b - 0xd9);
            NEED(nb);
            len = be(p, nb);
            p += nb;
            goto payload;
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf:
            h->cls = b <= 0xdd ? C_ARR : C_MAP;
            nb = (b == 0xdc || b == 0xde) ? 2 : 4;
            NEED(nb);
            h->n = (uint32_t)be(p, nb);
            p += nb;
            break;
        default: /* 0xc1 never used */
            return GR_EBADTERM;
        }
    }
    *pp = p;
    return 0;
payload:
    NEED(len);
    h->n = (uint32_t)len;
    h->pay = p;
    *pp = p + len;
    return 0;
#undef NEED
}

/* ---- canonical output ------------------------------------------------------------------- */

typedef struct out {
    uint8_t *p;   /* buffer */
    size_t len;   /* bytes written */
    size_t cap;   /* GR_TKEY_MAX */
    int overflow; /* canonical form longer than cap */
} out;

static void put(out *o, const void *b, size_t n)
{
    if (o->overflow || o->cap - o->len < n) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, b, n);
    o->len += n;
}

static void put_be(out *o, uint8_t tag, uint64_t v, int nb)
{
    uint8_t b[9];

    b[0] = tag;
    for (int i = 0; i < nb; i++) {
        b[1 + i] = (uint8_t)(v >> (8 * (nb - 1 - i)));
    }
    put(o, b, 1 + (size_t)nb);
}

/* Shortest header for a str/bin/array/map/ext of n. */
static void put_len(out *o, int cls, uint32_t n, int8_t ext)
{
    switch (cls) {
    case C_STR:
        if (n < 32) {
            put_be(o, (uint8_t)(0xa0 | n), 0, 0);
        } else if (n < 256) {
            put_be(o, 0xd9, n, 1);
        } else if (n < 65536) {
            put_be(o, 0xda, n, 2);
        } else {
            put_be(o, 0xdb, n, 4);
        }
        break;
    case C_BIN:
        put_be(o, n < 256 ? 0xc4 : n < 65536 ? 0xc5 : 0xc6, n, n < 256 ? 1 : n < 65536 ? 2 : 4);
        break;
    case C_ARR:
    case C_MAP:
        if (n < 16) {
            put_be(o, (uint8_t)((cls == C_ARR ? 0x90 : 0x80) | n), 0, 0);
        } else if (n < 65536) {
            put_be(o, cls == C_ARR ? 0xdc : 0xde, n, 2);
        } else {
            put_be(o, cls == C_ARR ? 0xdd : 0xdf, n, 4);
        }
        break;
    case C_EXT: {
        uint8_t t = (uint8_t)ext;

        if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16) {
            put_be(o,
                   (uint8_t)(0xd4 + (n == 1   ? 0
                                     : n == 2 ? 1
                                     : n == 4 ? 2
                                     : n == 8 ? 3
                                              : 4)),
                   0, 0);
        } else if (n < 256) {
            put_be(o, 0xc7, n, 1);
        } else if (n < 65536) {
            put_be(o, 0xc8, n, 2);
        } else {
            put_be(o, 0xc9, n, 4);
        }
        put(o, &t, 1);
        break;
    }
    }
}

static int canon(const uint8_t **pp, const uint8_t *end, out *o, int depth)
{
    hd h;
    int r;

    if ((r = head(pp, end, &h)) < 0) {
        return r;
    }
    switch (h.cls) {
    case C_NIL:
        put_be(o, 0xc0, 0, 0);
        return 0;
    case C_BOOL:
        put_be(o, h.u ? 0xc3 : 0xc2, 0, 0);
        return 0;
    case C_NUM:
        if (h.is_float) {
            uint64_t w;

            memcpy(&w, &h.f, 8);
            put_be(o, 0xcb, w, 8);
        } else if (!h.is_neg) {
            if (h.u < 128) {
                put_be(o, (uint8_t)h.u, 0, 0);
            } else {
                int nb = h.u < 256 ? 1 : h.u < 65536 ? 2 : h.u <= UINT32_MAX ? 4 : 8;

                put_be(o, (uint8_t)(0xcc + (nb == 1 ? 0 : nb == 2 ? 1 : nb == 4 ? 2 : 3)), h.u, nb);
            }
        } else if (h.i >= -32) {
            put_be(o, (uint8_t)(int8_t)h.i, 0, 0);
        } else {
            int nb = h.i >= INT8_MIN ? 1 : h.i >= INT16_MIN ? 2 : h.i >= INT32_MIN ? 4 : 8;

            put_be(o,
                   (uint8_t)(0xd0 + (nb == 1   ? 0
                                     : nb == 2 ? 1
                                     : nb == 4 ? 2
                                               : 3)),
                   (uint64_t)h.i & (nb == 8 ? ~(uint64_t)0 : ((uint64_t)1 << (nb * 8)) - 1), nb);
        }
        return 0;
    case C_STR:
    case C_BIN:
    case C_EXT:
        if (h.cls == C_EXT) {
            gr_term_id id;
            msgpack_object obj = {.type = MSGPACK_OBJECT_EXT};

            obj.via.ext.type = h.ext;
            obj.via.ext.size = h.n;
            obj.via.ext.ptr = (const char *)h.pay;
            if ((h.ext == GR_TERM_EXT_PID || h.ext == GR_TERM_EXT_REF) &&
                gr_term_parse_id(&obj, h.ext, &id) < 0) {
                return GR_EBADTERM;
            }
        }
        put_len(o, h.cls, h.n, h.ext);
        put(o, h.pay, h.n);
        return 0;
    case C_ARR:
    case C_MAP: {
        uint64_t items = (uint64_t)h.n * (h.cls == C_MAP ? 2 : 1);

        if (depth >= GR_TERM_DEPTH_MAX) {
            return GR_EBADTERM;
        }
        if (items > (uint64_t)(end - *pp)) { /* each item is at least one byte */
            return GR_EBADTERM;
        }
        put_len(o, h.cls, h.n, 0);
        for (uint64_t i = 0; i < items; i++) {
            if ((r = canon(pp, end, o, depth + 1)) < 0) {
                return r;
            }
            if (o->overflow) {
                return 0;
            }
        }
        return 0;
    }
    }
    return GR_EBADTERM;
}

int gr_tkey_make(gr_tkey *k, const void *buf, size_t len)
{
    const uint8_t *p = buf, *end = p + len;
    out o;
    int r;

    k->heap = NULL;
    k->p = NULL;
    k->len = 0;
    if (!buf || len == 0) {
        return GR_EBADTERM;
    }
    /* Fast path: a short string or a one-byte scalar is canonical as it is
     * (when its bytes are valid UTF-8 or not: strings are bytes here). */
    if ((p[0] <= 0x7f || p[0] >= 0xe0 || p[0] == 0xc0 || p[0] == 0xc2 || p[0] == 0xc3)
            ? len == 1
            : (((p[0] & 0xe0) == 0xa0 && len == 1u + (p[0] & 0x1fu)) ||
               (p[0] == 0xd9 && len >= 2 && p[1] >= 32 && len == 2u + p[1]))) {
        k->p = p;
        k->len = len;
        k->hash = 0;
        return 0;
    }
    o = (out){.p = k->inl, .cap = sizeof(k->inl)};
    if ((r = canon(&p, end, &o, 0)) < 0) {
        return r;
    }
    /* An array or map stops reading at the first overflow, so the rest of
     * the input is checked by the second pass, not here. */
    if (o.overflow) { /* second pass into a heap buffer */
        if (len > 2 * (size_t)GR_TKEY_MAX + 64) {
            return GR_ETOOBIG; /* canonical can shrink an input at most 9:1, but be cheap */
        }
        if (!(k->heap = malloc(GR_TKEY_MAX))) {
            return -ENOMEM;
        }
        o = (out){.p = k->heap, .cap = GR_TKEY_MAX};
        p = buf;
        if ((r = canon(&p, end, &o, 0)) < 0) {
            return r;
        }
        if (o.overflow) {
            return GR_ETOOBIG;
        }
    }
    if (p != end) {
        return GR_EBADTERM;
    }
    k->p = o.p;
    k->len = o.len;
    k->hash = 0;
    return 0;
}

void gr_tkey_done(gr_tkey *k)
{
    if (k) {
        free(k->heap);
        k->heap = NULL;
    }
}

/* ---- order ------------------------------------------------------------------------------ */

static int cmp_u(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

/* int (is_neg ? i : u) against float f, by value; an equal int sorts first. */
static int cmp_int_float(const hd *a, double f)
{
    double t;

    if (isnan(f)) {
        return -1; /* NaN sorts after every number */
    }
    if (f >= 18446744073709551616.0) {
        return -1;
    }
    if (f < -9223372036854775808.0) {
        return 1;
    }
    t = trunc(f);
    if (t < 0) {
        int64_t ti = (int64_t)t;

        if (!a->is_neg) {
            return 1;
        }
        if (a->i != ti) {
            return a->i < ti ? -1 : 1;
        }
    } else {
        uint64_t tu = (uint64_t)t;

        if (a->is_neg) {
            return -1;
        }
        if (a->u != tu) {
            return a->u < tu ? -1 : 1;
        }
    }
    return f > t ? -1 : f < t ? 1 : -1;
}

static int cmp_num(const hd *a, const hd *b)
{
    if (!a->is_float && !b->is_float) {
        if (a->is_neg != b->is_neg) {
            return a->is_neg ? -1 : 1;
        }
        return a->is_neg ? (a->i < b->i ? -1 : a->i > b->i) : cmp_u(a->u, b->u);
    }
    if (a->is_float && b->is_float) {
        uint64_t wa, wb;

        if (isnan(a->f) || isnan(b->f)) {
            if (!isnan(a->f)) {
                return -1;
            }
            if (!isnan(b->f)) {
                return 1;
            }
        } else if (a->f != b->f) {
            return a->f < b->f ? -1 : 1;
        }
        memcpy(&wa, &a->f, 8); /* -0.0 vs 0.0, NaN payloads: by bits */
        memcpy(&wb, &b->f, 8);
        return cmp_u(wa, wb);
    }
    return a->is_float ? -cmp_int_float(b, a->f) : cmp_int_float(a, b->f);
}

static int cmp_bytes(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);

    return c ? (c < 0 ? -1 : 1) : cmp_u(an, bn);
}

/* Compare the terms at *pa and *pb, advancing both past them. */
static int cmp_term(const uint8_t **pa, const uint8_t *ea, const uint8_t **pb, const uint8_t *eb)
{
    hd a, b;
    int c;

    if (head(pa, ea, &a) < 0 || head(pb, eb, &b) < 0) {
        return 0; /* canonical input: unreachable */
    }
    if (a.cls != b.cls) {
        return a.cls < b.cls ? -1 : 1;
    }
    switch (a.cls) {
    case C_NIL:
        return 0;
    case C_BOOL:
        return cmp_u(a.u, b.u);
    case C_NUM:
        return cmp_num(&a, &b);
    case C_STR:
    case C_BIN:
        return cmp_bytes(a.pay, a.n, b.pay, b.n);
    case C_EXT:
        if (a.ext != b.ext) {
            return a.ext < b.ext ? -1 : 1;
        }
        return cmp_bytes(a.pay, a.n, b.pay, b.n);
    default: { /* arrays and maps: element by element, then the shorter first */
        uint64_t na = (uint64_t)a.n * (a.cls == C_MAP ? 2 : 1);
        uint64_t nb = (uint64_t)b.n * (b.cls == C_MAP ? 2 : 1);
        uint64_t i;

        for (i = 0; i < na && i < nb; i++) {
            if ((c = cmp_term(pa, ea, pb, eb)) != 0) {
                return c;
            }
        }
        return cmp_u(na, nb);
    }
    }
}

/* The payload of a canonical fixstr or str8 key (the common string keys). */
static int short_str(const uint8_t *p, size_t len, const uint8_t **ret_pay, uint32_t *ret_n)
{
    if ((p[0] & 0xe0) == 0xa0) {
        *ret_pay = p + 1;
        *ret_n = p[0] & 0x1f;
        return 1;
    }
    if (p[0] == 0xd9 && len >= 2) {
        *ret_pay = p + 2;
        *ret_n = p[1];
        return 1;
    }
    return 0;
}

int gr_tkey_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    const uint8_t *pa = a, *pb = b;
    uint32_t na, nb;

    if (short_str(a, alen, &pa, &na) && short_str(b, blen, &pb, &nb)) {
        return cmp_bytes(pa, na, pb, nb); /* fast path: same order as cmp_term */
    }
    pa = a;
    pb = b;
    if (alen == blen && memcmp(a, b, alen) == 0) {
        return 0;
    }
    return cmp_term(&pa, a + alen, &pb, b + blen);
}

int gr_tkey_has_prefix(const uint8_t *k, size_t klen, const uint8_t *prefix, size_t plen)
{
    const uint8_t *pk = k, *pp = prefix;
    hd a, b;

    if (head(&pk, k + klen, &a) < 0 || head(&pp, prefix + plen, &b) < 0) {
        return 0;
    }
    return (a.cls == C_STR || a.cls == C_BIN) && a.cls == b.cls && a.n >= b.n &&
           memcmp(a.pay, b.pay, b.n) == 0;
}

/* ---- hash ------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t gr_tkey_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull), w;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ mix(w)) * 0x9fb21c651e98df25ull;
    }
    if (i < len) {
        w = 0;
        memcpy(&w, p + i, len - i);
        h = (h ^ mix(w ^ (uint64_t)(len - i) << 56)) * 0x9fb21c651e98df25ull;
    }
    return mix(h);
}
