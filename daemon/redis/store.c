/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - how Redis values are stored in a table entry (docs/redis.md,
 * "Storage"): the one place that knows the encoding, so more types can follow.
 *
 *   key      a msgpack str of the key's bytes (so `girder table get redis KEY`
 *            reads it)
 *   string   a msgpack bin of its bytes; a string that is a canonical int64
 *            (as Redis's string2ll reads it) is a msgpack integer instead,
 *            which is what the table's counters add to (INCR never loses a
 *            concurrent increment made on another node); a str or a float
 *            written by another client reads as a string too
 *   hash     the engine's map (coll.c); [1, ...] read as a hash by TYPE
 *   set      the engine's add-wins set (coll.c); [2, ...] read as a set by TYPE
 *   list     [3, head, tail]: the list's record; element i (head <= i <
 *            tail) is a bin under key [key(bin), i] of the db's list table
 *   zset     [4, [member(bin), score(float64), ...]] by score, then member bytes
 *   other    any other term (written by a non-Redis client): WRONGTYPE
 *
 * Also the pieces collector replies are gathered in (rpieces).
 *
 * Pure functions; a small msgpack reader of its own so that decoded items are
 * borrowed pointers into the value, with every length checked against the
 * value's end.
 */
#include "redis/redis_int.h"

#include "redis/resp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_HASH 1
#define TAG_SET 2
#define TAG_LIST 3
#define TAG_ZSET 4

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

/* A header: small (fix) form base|n below fixmax, else the 8/16/32-bit forms. */
static int hdr(gr_tbuf *b, size_t n, uint8_t fixbase, size_t fixmax, uint8_t c8, uint8_t c16,
               uint8_t c32)
{
    if (gr_tbuf_reserve(b, 5) < 0) {
        return -ENOMEM;
    }
    if (fixbase && n <= fixmax) {
        b->p[b->len++] = (uint8_t)(fixbase | n);
    } else if (c8 && n <= 0xff) {
        b->p[b->len++] = c8;
        b->p[b->len++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        b->p[b->len++] = c16;
        put_be(b->p + b->len, n, 2);
        b->len += 2;
    } else {
        b->p[b->len++] = c32;
        put_be(b->p + b->len, n, 4);
        b->len += 4;
    }
    return 0;
}

static int put_bytes(gr_tbuf *b, const void *p, size_t n)
{
    if (gr_tbuf_reserve(b, n) < 0) {
        return -ENOMEM;
    }
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
    return 0;
}

int gr_redis_key(gr_tbuf *out, const void *k, size_t n)
{
    out->len = 0;
    if (hdr(out, n, 0xa0, 31, 0xd9, 0xda, 0xdb) < 0) {
        return -ENOMEM;
    }
    return put_bytes(out, k, n);
}

static int put_bin(gr_tbuf *b, const void *p, size_t n)
{
    if (hdr(b, n, 0, 0, 0xc4, 0xc5, 0xc6) < 0) {
        return -ENOMEM;
    }
    return put_bytes(b, p, n);
}

int gr_redis_enc_str(gr_tbuf *out, const void *p, size_t n)
{
    int64_t v;

    out->len = 0;
    if (gr_resp_str2ll(p, n, &v)) {
        if (gr_tbuf_reserve(out, 9) < 0) {
            return -ENOMEM;
        }
        if (v >= 0 && v <= 127) {
            out->p[out->len++] = (uint8_t)v;
        } else if (v < 0 && v >= -32) {
            out->p[out->len++] = (uint8_t)(int8_t)v;
        } else {
            out->p[out->len++] = 0xd3;
            put_be(out->p + out->len, (uint64_t)v, 8);
            out->len += 8;
        }
        return 0;
    }
    return put_bin(out, p, n);
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef enum mkind {
    MK_BAD,
    MK_INT,
    MK_UINT,
    MK_FLOAT,
    MK_STR,
    MK_BIN,
    MK_ARRAY,
    MK_MAP,
    MK_OTHER
} mkind;

typedef struct mitem {
    mkind kind;
    uint64_t n;       /* length (str/bin/array/map) or the integer's bits */
    double d;         /* float */
    const uint8_t *p; /* str/bin body */
    size_t next;      /* offset after the header (and the body for str/bin/scalars) */
} mitem;

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Read the item at v[off]: scalars and str/bin whole, array/map headers only. */
static mitem rd(const uint8_t *v, size_t len, size_t off)
{
    mitem m = {.kind = MK_BAD};
    uint8_t c;
    int lb = 0;

    if (off >= len) {
        return m;
    }
    c = v[off++];
    if (c <= 0x7f) {
        return (mitem){MK_UINT, c, 0, NULL, off};
    }
    if (c >= 0xe0) {
        return (mitem){MK_INT, (uint64_t)(int64_t)(int8_t)c, 0, NULL, off};
    }
    if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 ||
        c == 0xc6) {
        uint64_t n;

        m.kind = (c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb ? MK_STR : MK_BIN;
        if ((c & 0xe0) == 0xa0) {
            n = c & 0x1f;
        } else {
            lb = (c == 0xd9 || c == 0xc4) ? 1 : (c == 0xda || c == 0xc5) ? 2 : 4;
            if (len - off < (size_t)lb) {
                return (mitem){.kind = MK_BAD};
            }
            n = get_be(v + off, lb);
            off += (size_t)lb;
        }
        if (len - off < n) {
            return (mitem){.kind = MK_BAD};
        }
        m.n = n;
        m.p = v + off;
        m.next = off + n;
        return m;
    }
    if ((c & 0xf0) == 0x90 || (c & 0xf0) == 0x80) {
        return (mitem){(c & 0xf0) == 0x90 ? MK_ARRAY : MK_MAP, c & 0x0f, 0, NULL, off};
    }
    switch (c) {
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
        lb = (c == 0xdc || c == 0xde) ? 2 : 4;
        if (len - off < (size_t)lb) {
            return m;
        }
        return (mitem){c <= 0xdd ? MK_ARRAY : MK_MAP, get_be(v + off, lb), 0, NULL,
                       off + (size_t)lb};
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        lb = 1 << (c - 0xcc);
        if (len - off < (size_t)lb) {
            return m;
        }
        return (mitem){MK_UINT, get_be(v + off, lb), 0, NULL, off + (size_t)lb};
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        uint64_t x;

        lb = 1 << (c - 0xd0);
        if (len - off < (size_t)lb) {
            return m;
        }
        x = get_be(v + off, lb);
        if (lb < 8 && (x >> (8 * lb - 1)) & 1) { /* sign-extend */
            x |= ~(uint64_t)0 << (8 * lb);
        }
        return (mitem){MK_INT, x, 0, NULL, off + (size_t)lb};
    }
    case 0xca:
    case 0xcb: {
        mitem f = {MK_FLOAT, 0, 0, NULL, 0};

        lb = c == 0xca ? 4 : 8;
        if (len - off < (size_t)lb) {
            return m;
        }
        if (lb == 4) {
            uint32_t b = (uint32_t)get_be(v + off, 4);
            float x;

            memcpy(&x, &b, 4);
            f.d = x;
        } else {
            uint64_t b = get_be(v + off, 8);

            memcpy(&f.d, &b, 8);
        }
        f.next = off + (size_t)lb;
        return f;
    }
    default:
        return (mitem){MK_OTHER, 0, 0, NULL, len};
    }
}

bool gr_redis_key_bytes(const uint8_t *tk, size_t n, const uint8_t **ret_p, size_t *ret_n)
{
    mitem m = rd(tk, n, 0);

    if (m.kind != MK_STR && m.kind != MK_BIN) {
        return false;
    }
    *ret_p = m.p;
    *ret_n = m.n;
    return true;
}

rtype gr_redis_type(const uint8_t *v, size_t n)
{
    mitem m = rd(v, n, 0);

    switch (m.kind) {
    case MK_INT:
    case MK_UINT:
    case MK_FLOAT:
    case MK_STR:
    case MK_BIN:
        return RT_STRING;
    case MK_ARRAY: {
        mitem tag;

        if (m.n == 3) { /* a list's head/tail record */
            tag = rd(v, n, m.next);
            return tag.kind == MK_UINT && tag.n == TAG_LIST ? RT_LIST : RT_OTHER;
        }
        if (m.n != 2) {
            return RT_OTHER;
        }
        tag = rd(v, n, m.next);
        if (tag.kind == MK_UINT && tag.n == TAG_HASH) {
            return RT_HASH;
        }
        if (tag.kind == MK_UINT && tag.n == TAG_SET) {
            return RT_SET;
        }
        if (tag.kind == MK_UINT && tag.n == TAG_ZSET) {
            return RT_ZSET;
        }
        return RT_OTHER;
    }
    default:
        return RT_OTHER;
    }
}

/* The decimal text of an integer (neg: bits is a negative int64) into b
 * (32 bytes); its length. By hand: snprintf costs more than a GET's lookup. */
static int fmt_int(char *b, uint64_t bits, bool neg)
{
    uint64_t u = neg ? -bits : bits;
    char d[20];
    int nd = 0, l = 0;

    do {
        d[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) {
        b[l++] = '-';
    }
    while (nd) {
        b[l++] = d[--nd];
    }
    return l;
}

bool gr_redis_str(const uint8_t *v, size_t n, char ibuf[32], const uint8_t **ret_p, size_t *ret_n)
{
    mitem m = rd(v, n, 0);
    int l;

    switch (m.kind) {
    case MK_STR:
    case MK_BIN:
        *ret_p = m.p;
        *ret_n = m.n;
        return true;
    case MK_INT:
    case MK_UINT:
        l = fmt_int(ibuf, m.n, m.kind == MK_INT && (int64_t)m.n < 0);
        break;
    case MK_FLOAT:
        l = (int)gr_resp_fmt_score(ibuf, 32, m.d); /* shortest round trip: at most 24 bytes */
        break;
    default:
        return false;
    }
    *ret_p = (const uint8_t *)ibuf;
    *ret_n = (size_t)l;
    return true;
}

int gr_redis_enc_zset(gr_tbuf *out, size_t n, const rzel *els)
{
    out->len = 0;
    if (gr_tbuf_reserve(out, 2) < 0) {
        return -ENOMEM;
    }
    out->p[out->len++] = 0x92;
    out->p[out->len++] = TAG_ZSET;
    if (hdr(out, 2 * n, 0x90, 15, 0, 0xdc, 0xdd) < 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t b;

        if (put_bin(out, els[i].p, els[i].len) < 0 || gr_tbuf_reserve(out, 9) < 0) {
            return -ENOMEM;
        }
        memcpy(&b, &els[i].score, 8);
        out->p[out->len++] = 0xcb;
        put_be(out->p + out->len, b, 8);
        out->len += 8;
    }
    return 0;
}

int gr_redis_dec_zset(const uint8_t *v, size_t n, size_t *ret_n, rzel **ret)
{
    mitem m, body;
    size_t cnt, off;
    rzel *els;

    if (gr_redis_type(v, n) != RT_ZSET) {
        return -EINVAL;
    }
    m = rd(v, n, 0);
    body = rd(v, n, rd(v, n, m.next).next);
    if (body.kind != MK_ARRAY || body.n % 2 != 0 || body.n > n) {
        return -EINVAL;
    }
    cnt = body.n / 2;
    if (!(els = malloc((cnt ? cnt : 1) * sizeof(*els)))) {
        return -ENOMEM;
    }
    off = body.next;
    for (size_t i = 0; i < cnt; i++) {
        mitem it = rd(v, n, off), sc;

        if (it.kind != MK_BIN && it.kind != MK_STR) {
            free(els);
            return -EINVAL;
        }
        sc = rd(v, n, it.next);
        if (sc.kind == MK_FLOAT) {
            els[i].score = sc.d;
        } else if (sc.kind == MK_INT) {
            els[i].score = (double)(int64_t)sc.n;
        } else if (sc.kind == MK_UINT) {
            els[i].score = (double)sc.n;
        } else {
            free(els);
            return -EINVAL;
        }
        els[i].p = it.p;
        els[i].len = it.n;
        off = sc.next;
    }
    *ret_n = cnt;
    *ret = els;
    return 0;
}

/* ---- lists ------------------------------------------------------------------------------ */

static size_t put_int(uint8_t *b, int64_t v)
{
    if (v >= 0 && v <= 127) {
        b[0] = (uint8_t)v;
        return 1;
    }
    if (v < 0 && v >= -32) {
        b[0] = (uint8_t)(int8_t)v;
        return 1;
    }
    b[0] = 0xd3;
    put_be(b + 1, (uint64_t)v, 8);
    return 9;
}

static bool get_int(const uint8_t *v, size_t n, size_t off, int64_t *ret, size_t *ret_next)
{
    mitem m = rd(v, n, off);

    if (m.kind != MK_INT && (m.kind != MK_UINT || m.n > INT64_MAX)) {
        return false;
    }
    *ret = (int64_t)m.n;
    *ret_next = m.next;
    return true;
}

int gr_redis_enc_list(gr_tbuf *out, int64_t head, int64_t tail)
{
    out->len = 0;
    if (gr_tbuf_reserve(out, 20) < 0) {
        return -ENOMEM;
    }
    out->p[out->len++] = 0x93;
    out->p[out->len++] = TAG_LIST;
    out->len += put_int(out->p + out->len, head);
    out->len += put_int(out->p + out->len, tail);
    return 0;
}

int gr_redis_dec_list(const uint8_t *v, size_t n, int64_t *ret_head, int64_t *ret_tail)
{
    mitem m = rd(v, n, 0), tag;
    int64_t h, t;
    size_t off;

    if (m.kind != MK_ARRAY || m.n != 3) {
        return -EINVAL;
    }
    tag = rd(v, n, m.next);
    if (tag.kind != MK_UINT || tag.n != TAG_LIST || !get_int(v, n, tag.next, &h, &off) ||
        !get_int(v, n, off, &t, &off) || off != n || h > t) {
        return -EINVAL;
    }
    *ret_head = h;
    *ret_tail = t;
    return 0;
}

int gr_redis_list_key(gr_tbuf *out, const void *k, size_t n, int64_t pos)
{
    out->len = 0;
    if (gr_tbuf_reserve(out, 1) < 0) {
        return -ENOMEM;
    }
    out->p[out->len++] = 0x92;
    if (put_bin(out, k, n) < 0 || gr_tbuf_reserve(out, 9) < 0) {
        return -ENOMEM;
    }
    out->len += put_int(out->p + out->len, pos);
    return 0;
}

int gr_redis_enc_bin(gr_tbuf *out, const void *p, size_t n)
{
    out->len = 0;
    return put_bin(out, p, n);
}

/* ---- pieces ------------------------------------------------------------------------------- */

int gr_redis_piece_put(rpieces *ps, const void *p, size_t n)
{
    uint32_t l = (uint32_t)n;

    if (gr_tbuf_put(ps->b, &l, 4) < 0 || gr_tbuf_put(ps->b, p, n) < 0) {
        ps->oom = true;
        return -ENOMEM;
    }
    return 0;
}

size_t gr_redis_piece_at(const rpieces *ps, size_t off, const uint8_t **ret_p, size_t *ret_n)
{
    uint32_t l;

    memcpy(&l, ps->b->p + off, 4);
    *ret_p = ps->b->p + off + 4;
    *ret_n = l;
    return off + 4 + l;
}

int gr_redis_collect_fn(void *ud, const uint8_t *name, size_t nlen, const uint8_t *val, size_t vlen)
{
    rpieces *ps = ud;

    if ((ps->what & RP_NAMES) && gr_redis_piece_put(ps, name, nlen) < 0) {
        return 1;
    }
    if (ps->what & RP_VALUES) {
        const uint8_t *p = (const uint8_t *)"";
        size_t n = 0;
        char ib[32];

        if (val && (ps->what & RP_RAW)) {
            p = val;
            n = vlen;
        } else if (val && !gr_redis_str(val, vlen, ib, &p, &n)) {
            p = (const uint8_t *)""; /* not a string (not written by a Redis client) */
            n = 0;
        }
        if (gr_redis_piece_put(ps, p, n) < 0) {
            return 1;
        }
    }
    ps->n++;
    return 0;
}

/* A walk over a msgpack array of strings and nils (both callers below). */
typedef struct str_walk {
    const uint8_t *v;
    size_t n, off;
    uint64_t left; /* items not yet walked */
    char ib[32];   /* an integer item, written as a string */
} str_walk;

/* Start at the array v[0, n). 0, or -EINVAL if it is not one. */
static int str_walk_init(str_walk *w, const uint8_t *v, size_t n)
{
    mitem arr = rd(v, n, 0);

    if (arr.kind != MK_ARRAY || arr.n > n) {
        return -EINVAL;
    }
    *w = (str_walk){.v = v, .n = n, .off = arr.next, .left = arr.n};
    return 0;
}

/* The next string item; nil items are skipped. 1 with *ret_p and *ret_len
 * (a string, or an integer written into w->ib), 0 at the end, -EINVAL for
 * another kind of item. */
static int str_walk_next(str_walk *w, const uint8_t **ret_p, size_t *ret_len)
{
    for (; w->left > 0; w->left--) {
        mitem m;

        if (w->off < w->n && w->v[w->off] == 0xc0) { /* nil: absent */
            w->off++;
            continue;
        }
        m = rd(w->v, w->n, w->off);
        if (m.kind == MK_BAD || m.kind == MK_OTHER || m.kind == MK_ARRAY || m.kind == MK_MAP ||
            !gr_redis_str(w->v + w->off, m.next - w->off, w->ib, ret_p, ret_len)) {
            return -EINVAL;
        }
        w->off = m.next;
        w->left--;
        return 1;
    }
    return 0;
}

int gr_redis_reply_strs(gr_resp_out *o, const uint8_t *v, size_t n, size_t *ret_n)
{
    str_walk w;
    const uint8_t *p;
    size_t len;
    int r;

    if ((r = str_walk_init(&w, v, n)) < 0) {
        return r;
    }
    while ((r = str_walk_next(&w, &p, &len)) > 0) {
        gr_resp_bulk(o, p, len);
        (*ret_n)++;
    }
    return r;
}

int gr_redis_pieces_of_array(rpieces *ps, const uint8_t *v, size_t n)
{
    str_walk w;
    const uint8_t *p;
    size_t len;
    int r;

    if ((r = str_walk_init(&w, v, n)) < 0) {
        return r;
    }
    while ((r = str_walk_next(&w, &p, &len)) > 0) {
        if (gr_redis_piece_put(ps, p, len) < 0) {
            return -ENOMEM;
        }
        ps->n++;
    }
    return r;
}
