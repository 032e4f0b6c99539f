/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resp.c - the RESP2/RESP3 request parser and reply writer (resp.h): pure
 * functions over caller-owned buffers, bounded by gr_resp_limits. The error
 * texts are Redis's own (src/networking.c), so clients and tests that match
 * them keep working.
 *
 * Design notes
 * - Incremental: the parser keeps how far into the command it got (header
 *   read, arguments complete, the bulk being waited for), so a 16 MiB bulk
 *   arriving in 16 KiB reads is scanned once, not once per read.
 * - Every length is checked against its limit before anything is allocated;
 *   the argument array grows by doubling up to the count actually received,
 *   so a header announcing 65,536 arguments costs nothing until they come.
 * - Like Redis, the two bytes after a bulk's body are skipped, not checked.
 */
#include "redis/resp.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ---------------------------------------------------------------------------- */

bool gr_resp_str2ll(const char *s, size_t n, int64_t *ret)
{
    uint64_t v = 0;
    bool neg = false;
    size_t i = 0;

    if (n == 0 || n > 20) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *ret = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1) {
            return false;
        }
    }
    if (s[i] < '1' || s[i] > '9') {
        return false;
    }
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *ret = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        *ret = (int64_t)v;
    }
    return true;
}

static int add_arg(gr_resp_parser *p, size_t off, size_t len)
{
    if (p->nargs == p->cap) {
        uint32_t nc = p->cap ? p->cap * 2 : 8;
        gr_resp_arg *a = realloc(p->args, (size_t)nc * sizeof(*a));

        if (!a) {
            return -ENOMEM;
        }
        p->args = a;
        p->cap = nc;
    }
    p->args[p->nargs++] = (gr_resp_arg){off, len};
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* sdssplitargs over buf[0, n), unescaping in place. 0, -1 (unbalanced quotes),
 * -ENOMEM. */
static int split_inline(gr_resp_parser *p, uint8_t *buf, size_t n)
{
    size_t i = 0, w;

    for (;;) {
        bool inq = false, insq = false, done = false;
        size_t start;

        while (i < n && isspace(buf[i])) {
            i++;
        }
        if (i == n) {
            return 0;
        }
        start = w = i;
        while (!done) {
            if (inq) {
                if (i == n) {
                    return -1;
                }
                if (buf[i] == '\\' && i + 3 < n && buf[i + 1] == 'x' && hexval(buf[i + 2]) >= 0 &&
                    hexval(buf[i + 3]) >= 0) {
                    buf[w++] = (uint8_t)(hexval(buf[i + 2]) * 16 + hexval(buf[i + 3]));
                    i += 4;
                } else if (buf[i] == '\\' && i + 1 < n) {
                    uint8_t c;

                    i++;
                    switch (buf[i]) {
                    case 'n':
                        c = '\n';
                        break;
                    case 'r':
                        c = '\r';
                        break;
                    case 't':
                        c = '\t';
                        break;
                    case 'b':
                        c = '\b';
                        break;
                    case 'a':
                        c = '\a';
                        break;
                    default:
                        c = buf[i];
                        break;
                    }
                    buf[w++] = c;
                    i++;
                } else if (buf[i] == '"') {
                    if (i + 1 < n && !isspace(buf[i + 1])) {
                        return -1; /* closing quote must be followed by a space */
                    }
                    i++;
                    done = true;
                } else {
                    buf[w++] = buf[i++];
                }
            } else if (insq) {
                if (i == n) {
                    return -1;
                }
                if (buf[i] == '\\' && i + 1 < n && buf[i + 1] == '\'') {
                    buf[w++] = '\'';
                    i += 2;
                } else if (buf[i] == '\'') {
                    if (i + 1 < n && !isspace(buf[i + 1])) {
                        return -1;
                    }
                    i++;
                    done = true;
                } else {
                    buf[w++] = buf[i++];
                }
            } else if (i == n || isspace(buf[i])) {
                done = true;
            } else if (buf[i] == '"') {
                inq = true;
                i++;
            } else if (buf[i] == '\'') {
                insq = true;
                i++;
            } else {
                buf[w++] = buf[i++];
            }
        }
        if (add_arg(p, start, w - start) < 0) {
            return -ENOMEM;
        }
    }
}

static int fail(gr_resp_parser *p, const char **ret_err, const char *msg)
{
    *ret_err = msg;
    p->in_multibulk = false;
    p->nargs = 0;
    p->pos = 0;
    return -EPROTO;
}

/* An inline command: one line. */
static int parse_inline(gr_resp_parser *p, uint8_t *buf, size_t len, size_t *ret_used,
                        const char **ret_err)
{
    uint8_t *nl = memchr(buf, '\n', len);
    size_t end;
    int r;

    if (!nl) {
        if (len > GR_RESP_MAX_INLINE) {
            return fail(p, ret_err, "Protocol error: too big inline request");
        }
        return 0;
    }
    end = (size_t)(nl - buf);
    if (end > GR_RESP_MAX_INLINE) {
        return fail(p, ret_err, "Protocol error: too big inline request");
    }
    if (end > 0 && buf[end - 1] == '\r') {
        end--;
    }
    p->nargs = 0;
    if ((r = split_inline(p, buf, end)) < 0) {
        p->nargs = 0;
        return r == -ENOMEM
                   ? fail(p, ret_err, "OOM command not allowed when used memory > 'maxmemory'.")
                   : fail(p, ret_err, "Protocol error: unbalanced quotes in request");
    }
    *ret_used = (size_t)(nl - buf) + 1;
    p->inline_cmd = true;
    return p->nargs ? 1 : 0;
}

/* A header line "<c><number>\r\n" at buf[pos]: 1 and *ret_v, *ret_next (after
 * the line), 0 incomplete, -1 not a number. */
static int header(const uint8_t *buf, size_t len, size_t pos, int64_t *ret_v, size_t *ret_next)
{
    const uint8_t *cr = memchr(buf + pos, '\r', len - pos);

    if (!cr) {
        return 0;
    }
    if ((size_t)(cr - buf) + 1 >= len) {
        return 0; /* the \n after it */
    }
    if (!gr_resp_str2ll((const char *)buf + pos + 1, (size_t)(cr - buf) - pos - 1, ret_v)) {
        return -1;
    }
    *ret_next = (size_t)(cr - buf) + 2;
    return 1;
}

int gr_resp_parse(gr_resp_parser *p, uint8_t *buf, size_t len, size_t *ret_used,
                  const char **ret_err)
{
    uint64_t max_bulk = p->lim.max_bulk ? p->lim.max_bulk : GR_RESP_MAX_BULK_DEFAULT;
    uint64_t max_req = p->lim.max_request ? p->lim.max_request : GR_RESP_MAX_REQUEST_DEFAULT;
    uint32_t max_args = p->lim.max_args ? p->lim.max_args : GR_RESP_MAX_ARGS_DEFAULT;
    size_t skipped = 0;
    int64_t v;
    size_t next;
    int r;

    *ret_used = 0;
    if (!p->in_multibulk) {
        p->nargs = 0;
        p->inline_cmd = false;
        /* empty lines between commands are skipped, as Redis does */
        while (skipped < len && (buf[skipped] == '\n' || buf[skipped] == '\r')) {
            skipped++;
        }
        if (skipped == len) {
            *ret_used = skipped;
            return 0;
        }
        if (skipped) {
            *ret_used = skipped;
            return 0; /* the caller drops them and calls again at the command */
        }
        if (buf[0] != '*') {
            return parse_inline(p, buf, len, ret_used, ret_err);
        }
        if ((r = header(buf, len, 0, &v, &next)) == 0) {
            if (len > GR_RESP_MAX_INLINE) {
                return fail(p, ret_err, "Protocol error: too big mbulk count string");
            }
            return 0;
        }
        if (r < 0 || v > (int64_t)INT32_MAX) {
            return fail(p, ret_err, "Protocol error: invalid multibulk length");
        }
        if (p->unauth && v > (int64_t)GR_RESP_UNAUTH_MAX_ARGS) {
            return fail(p, ret_err, "Protocol error: unauthenticated multibulk length");
        }
        if (v > (int64_t)max_args) {
            return fail(p, ret_err, "Protocol error: invalid multibulk length");
        }
        if (v <= 0) { /* "*0" / "*-1": an empty command, skipped */
            *ret_used = next;
            return 0;
        }
        p->in_multibulk = true;
        p->want = (uint32_t)v;
        p->pos = next;
        p->bulk = -1;
    }
    while (p->nargs < p->want) {
        if (p->bulk < 0) {
            if (p->pos >= len) {
                return 0;
            }
            if ((r = header(buf, len, p->pos, &v, &next)) == 0) {
                /* As Redis: the '$' is checked once the line is complete,
                 * so a line without '\r' is refused by its length, whatever
                 * part of it the first read brought. */
                if (len - p->pos > GR_RESP_MAX_INLINE) {
                    return fail(p, ret_err, "Protocol error: too big bulk count string");
                }
                return 0;
            }
            if (buf[p->pos] != '$') {
                snprintf(p->err, sizeof(p->err), "Protocol error: expected '$', got '%c'",
                         isprint(buf[p->pos]) ? buf[p->pos] : '?');
                return fail(p, ret_err, p->err);
            }
            if (r < 0 || v < 0 || (uint64_t)v > max_bulk) {
                return fail(p, ret_err, "Protocol error: invalid bulk length");
            }
            if (p->unauth && v > (int64_t)GR_RESP_UNAUTH_MAX_BULK) {
                return fail(p, ret_err, "Protocol error: unauthenticated bulk length");
            }
            if ((uint64_t)next + (uint64_t)v + 2 > max_req) {
                return fail(p, ret_err, "Protocol error: too big request");
            }
            p->bulk = v;
            p->pos = next;
        }
        if (len - p->pos < (size_t)p->bulk + 2) {
            return 0;
        }
        if (add_arg(p, p->pos, (size_t)p->bulk) < 0) {
            return fail(p, ret_err, "OOM command not allowed when used memory > 'maxmemory'.");
        }
        p->pos += (size_t)p->bulk + 2;
        p->bulk = -1;
    }
    *ret_used = p->pos;
    p->in_multibulk = false;
    p->pos = 0;
    return 1;
}

void gr_resp_parser_free(gr_resp_parser *p)
{
    if (p) {
        free(p->args);
        p->args = NULL;
        p->cap = p->nargs = 0;
    }
}

/* ---- replies ---------------------------------------------------------------------------- */

void gr_resp_out_free(gr_resp_out *o)
{
    if (o) {
        free(o->p);
        o->p = NULL;
        o->off = o->len = o->cap = 0;
    }
}

void gr_resp_out_compact(gr_resp_out *o)
{
    if (o->off == 0) {
        return;
    }
    memmove(o->p, o->p + o->off, o->len - o->off);
    o->len -= o->off;
    o->off = 0;
}

static bool reserve(gr_resp_out *o, size_t n)
{
    if (o->oom) {
        return false;
    }
    if (o->limit && n > o->limit - (o->len - o->off < o->limit ? o->len - o->off : o->limit)) {
        o->oom = true; /* over the limit: the connection is closed after this command */
        return false;
    }
    if (o->cap - o->len < n) {
        size_t nc = o->cap ? o->cap : 4096;
        uint8_t *np;

        while (nc - o->len < n) {
            nc *= 2;
        }
        if (!(np = realloc(o->p, nc))) {
            o->oom = true;
            return false;
        }
        o->p = np;
        o->cap = nc;
    }
    return true;
}

void gr_resp_raw(gr_resp_out *o, const void *b, size_t n)
{
    if (n && reserve(o, n)) {
        memcpy(o->p + o->len, b, n);
        o->len += n;
    }
}

/* "<c><n>\r\n" into b (at least 24 bytes); returns its length. Written by
 * hand: snprintf was a fifth of an LRANGE reply's cost (one per element). */
static size_t fmt_hdr(char *b, char c, int64_t n)
{
    char d[20];
    uint64_t u = n < 0 ? -(uint64_t)n : (uint64_t)n;
    size_t nd = 0, l = 0;

    do {
        d[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    b[l++] = c;
    if (n < 0) {
        b[l++] = '-';
    }
    while (nd) {
        b[l++] = d[--nd];
    }
    b[l++] = '\r';
    b[l++] = '\n';
    return l;
}

static void hdr(gr_resp_out *o, char c, int64_t n)
{
    char b[32];

    gr_resp_raw(o, b, fmt_hdr(b, c, n));
}

void gr_resp_simple(gr_resp_out *o, const char *s)
{
    gr_resp_raw(o, "+", 1);
    gr_resp_raw(o, s, strlen(s));
    gr_resp_raw(o, "\r\n", 2);
}

void gr_resp_error(gr_resp_out *o, const char *msg)
{
    size_t n = strlen(msg), at;

    gr_resp_raw(o, "-", 1);
    at = o->len;
    gr_resp_raw(o, msg, n);
    if (!o->oom) {
        for (size_t i = at; i < o->len; i++) {
            if (o->p[i] == '\r' || o->p[i] == '\n') {
                o->p[i] = ' ';
            }
        }
    }
    gr_resp_raw(o, "\r\n", 2);
}

void gr_resp_errorf(gr_resp_out *o, const char *fmt, ...)
{
    char b[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    gr_resp_error(o, b);
}

void gr_resp_int(gr_resp_out *o, int64_t v)
{
    hdr(o, ':', v);
}

void gr_resp_bulk(gr_resp_out *o, const void *b, size_t n)
{
    if (!reserve(o, n + 32)) { /* header and body in one reservation */
        return;
    }
    o->len += fmt_hdr((char *)o->p + o->len, '$', (int64_t)n);
    if (n) {
        memcpy(o->p + o->len, b, n);
    }
    o->len += n;
    o->p[o->len++] = '\r';
    o->p[o->len++] = '\n';
}

void gr_resp_bulkstr(gr_resp_out *o, const char *s)
{
    gr_resp_bulk(o, s, strlen(s));
}

void gr_resp_null(gr_resp_out *o)
{
    if (o->proto >= 3) {
        gr_resp_raw(o, "_\r\n", 3);
    } else {
        gr_resp_raw(o, "$-1\r\n", 5);
    }
}

void gr_resp_null_array(gr_resp_out *o)
{
    if (o->proto >= 3) {
        gr_resp_raw(o, "_\r\n", 3);
    } else {
        gr_resp_raw(o, "*-1\r\n", 5);
    }
}

void gr_resp_array(gr_resp_out *o, size_t n)
{
    hdr(o, '*', (int64_t)n);
}

void gr_resp_array_fix(gr_resp_out *o, size_t at, size_t body, size_t n)
{
    char b[32];
    size_t l = fmt_hdr(b, '*', (int64_t)n);

    if (o->oom || at > body || body > o->len || l > body - at) {
        return;
    }
    if (l != body - at) {
        memmove(o->p + at + l, o->p + body, o->len - body);
        o->len -= body - at - l;
    }
    memcpy(o->p + at, b, l);
}

void gr_resp_map(gr_resp_out *o, size_t pairs)
{
    if (o->proto >= 3) {
        hdr(o, '%', (int64_t)pairs);
    } else {
        hdr(o, '*', (int64_t)pairs * 2);
    }
}

void gr_resp_set(gr_resp_out *o, size_t n)
{
    hdr(o, o->proto >= 3 ? '~' : '*', (int64_t)n);
}

void gr_resp_push(gr_resp_out *o, size_t n)
{
    hdr(o, o->proto >= 3 ? '>' : '*', (int64_t)n);
}

size_t gr_resp_fmt_double(char *buf, size_t cap, long double d)
{
    int l;

    if (isinf(d)) {
        l = snprintf(buf, cap, "%s", d > 0 ? "inf" : "-inf");
    } else {
        l = snprintf(buf, cap, "%.17Lf", d);
        if (l > 0 && (size_t)l < cap && strchr(buf, '.')) {
            while (l > 0 && buf[l - 1] == '0') {
                l--;
            }
            if (l > 0 && buf[l - 1] == '.') {
                l--;
            }
            buf[l] = '\0';
        }
    }
    return l < 0 ? 0 : (size_t)l < cap ? (size_t)l : cap - 1;
}

size_t gr_resp_fmt_score(char *buf, size_t cap, double d)
{
    int l = 0;

    if (isinf(d)) {
        l = snprintf(buf, cap, "%s", d > 0 ? "inf" : "-inf");
    } else if (isnan(d)) {
        l = snprintf(buf, cap, "nan");
    } else {
        /* the shortest of %.15g..%.17g that reads back as d (Redis 7.2's
         * fpconv_dtoa gives the shortest round trip too) */
        for (int prec = 15; prec <= 17; prec++) {
            l = snprintf(buf, cap, "%.*g", prec, d);
            if (l < 0 || (size_t)l >= cap || strtod(buf, NULL) == d) {
                break;
            }
        }
    }
    return l < 0 ? 0 : (size_t)l < cap ? (size_t)l : cap - 1;
}

void gr_resp_double(gr_resp_out *o, double d)
{
    char b[64];
    size_t l = gr_resp_fmt_score(b, sizeof(b), d);

    if (o->proto >= 3) {
        gr_resp_raw(o, ",", 1);
        gr_resp_raw(o, b, l);
        gr_resp_raw(o, "\r\n", 2);
    } else {
        gr_resp_bulk(o, b, l);
    }
}

void gr_resp_bool(gr_resp_out *o, bool b)
{
    if (o->proto >= 3) {
        gr_resp_raw(o, b ? "#t\r\n" : "#f\r\n", 4);
    } else {
        gr_resp_raw(o, b ? ":1\r\n" : ":0\r\n", 4);
    }
}

void gr_resp_verbatim(gr_resp_out *o, const char *fmt, const void *b, size_t n)
{
    if (o->proto >= 3) {
        hdr(o, '=', (int64_t)n + 4);
        gr_resp_raw(o, fmt, 3);
        gr_resp_raw(o, ":", 1);
        gr_resp_raw(o, b, n);
        gr_resp_raw(o, "\r\n", 2);
    } else {
        gr_resp_bulk(o, b, n);
    }
}

/* ---- glob ------------------------------------------------------------------------------- */

static int fold(int c, bool nocase)
{
    return nocase ? tolower(c) : c;
}

/* Redis's stringmatchlen, with a nesting bound against pathological patterns
 * and its cut against exponential time (Redis 7.0.10, CVE-2022-36021): when
 * the rest of the pattern after a `*` matches no suffix of the string, *give_up
 * is set, and every `*` before it stops trying longer prefixes (those would
 * only leave it shorter suffixes, all of them just tried). Without the cut,
 * `KEYS *a*a*a*a*a*a*a*a*a*a*a*b` over a key of 32 `a`s took 3.9 s and held
 * its scheduler meanwhile. */
static bool glob(const char *pat, size_t plen, const char *s, size_t slen, bool nocase, int depth,
                 bool *give_up)
{
    if (depth > 1000) {
        return false;
    }
    while (plen && slen) {
        switch (pat[0]) {
        case '*':
            while (plen > 1 && pat[1] == '*') {
                pat++;
                plen--;
            }
            if (plen == 1) {
                return true;
            }
            while (slen) {
                if (glob(pat + 1, plen - 1, s, slen, nocase, depth + 1, give_up)) {
                    return true;
                }
                if (*give_up) {
                    return false;
                }
                s++;
                slen--;
            }
            *give_up = true;
            return false;
        case '?':
            s++;
            slen--;
            break;
        case '[': {
            bool neg, match = false;

            pat++;
            plen--;
            neg = plen && pat[0] == '^';
            if (neg) {
                pat++;
                plen--;
            }
            for (;;) {
                if (plen == 0) {
                    pat--;
                    plen++;
                    break;
                }
                if (pat[0] == '\\' && plen >= 2) {
                    pat++;
                    plen--;
                    if (pat[0] == s[0]) {
                        match = true;
                    }
                } else if (pat[0] == ']') {
                    break;
                } else if (plen >= 3 && pat[1] == '-') {
                    int a = fold((unsigned char)pat[0], nocase),
                        b = fold((unsigned char)pat[2], nocase);
                    int c = fold((unsigned char)s[0], nocase);

                    if (a > b) {
                        int t = a;
                        a = b;
                        b = t;
                    }
                    if (c >= a && c <= b) {
                        match = true;
                    }
                    pat += 2;
                    plen -= 2;
                } else if (fold((unsigned char)pat[0], nocase) ==
                           fold((unsigned char)s[0], nocase)) {
                    match = true;
                }
                pat++;
                plen--;
            }
            if (neg) {
                match = !match;
            }
            if (!match) {
                return false;
            }
            s++;
            slen--;
            break;
        }
        case '\\':
            if (plen >= 2) {
                pat++;
                plen--;
            }
            /* fallthrough */
        default:
            if (fold((unsigned char)pat[0], nocase) != fold((unsigned char)s[0], nocase)) {
                return false;
            }
            s++;
            slen--;
            break;
        }
        pat++;
        plen--;
        if (slen == 0) {
            while (plen && pat[0] == '*') {
                pat++;
                plen--;
            }
            break;
        }
    }
    return plen == 0 && slen == 0;
}

bool gr_resp_glob(const char *pat, size_t plen, const char *s, size_t slen, bool nocase)
{
    bool give_up = false;

    return glob(pat, plen, s, slen, nocase, 0, &give_up);
}
