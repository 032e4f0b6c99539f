/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c - the JSON <-> term conversion of json.h: jansson parses the
 * operator's input, which is packed straight into a msgpack packer; output is
 * printed by hand from msgpack objects so that uint64, key order, duplicate
 * keys and invalid UTF-8 come out exactly as the term has them.
 */
#include "cli/json.h"

#include "proto/err.h"
#include "proto/nodename.h"
#include "proto/term.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ JSON -> term */

static int set_err(gr_cli_json_err *e, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int set_err(gr_cli_json_err *e, const char *format, ...)
{
    va_list ap;

    e->line = 0;
    e->column = 0;
    va_start(ap, format);
    vsnprintf(e->text, sizeof(e->text), format, ap);
    va_end(ap);
    return GR_EBADARG;
}

/* Parse an unsigned decimal s[0..len) no larger than max. 0 or -1. */
static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret_v)
{
    uint64_t v = 0;

    if (len == 0 || len > 20) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *ret_v = v;
    return 0;
}

/* Split body[0..len) "NODE.N1.N2[.N3]" from the right into `nums` numbers.
 * Returns the node length, or -1. */
static long split_id(const char *body, size_t len, int nums, const uint64_t *max, uint64_t *out)
{
    size_t end = len;

    for (int k = nums - 1; k >= 0; k--) {
        size_t dot = end;

        while (dot > 0 && body[dot - 1] != '.') {
            dot--;
        }
        if (dot == 0 || parse_u64(body + dot, end - dot, max[k], &out[k]) < 0) {
            return -1;
        }
        end = dot - 1;
    }
    if (end == 0 || end > GR_TERM_NODE_MAX || gr_nodename_check(body, end) < 0) {
        return -1;
    }
    return (long)end;
}

int gr_cli_pid_parse(const char *s, size_t len, gr_term_id *ret_id)
{
    static const uint64_t pid_max[3] = {UINT32_MAX, UINT64_MAX >> 8, 255};
    uint64_t v[3];
    long nl;

    if (len <= 2 || s[0] != '<' || s[len - 1] != '>' ||
        (nl = split_id(s + 1, len - 2, 3, pid_max, v)) < 0) {
        return GR_EBADARG;
    }
    *ret_id = (gr_term_id){.node = s + 1,
                           .node_len = (size_t)nl,
                           .creation = (uint32_t)v[0],
                           .id = (v[1] << 8) | v[2]};
    return 0;
}

/* If s is "<NODE.C.SERIAL.SCHED>" or "#Ref<NODE.C.ID>", pack the ext and return 1;
 * 0 if it is not one; <0 on a packing error. */
static int pack_id_string(msgpack_packer *pk, const char *s, size_t len)
{
    static const uint64_t pid_max[3] = {UINT32_MAX, UINT64_MAX >> 8, 255};
    static const uint64_t ref_max[2] = {UINT32_MAX, UINT64_MAX};
    uint64_t v[3];
    long nl;

    if (len > 2 && s[0] == '<' && s[len - 1] == '>') {
        if ((nl = split_id(s + 1, len - 2, 3, pid_max, v)) < 0) {
            return 0;
        }
        return gr_term_pack_id(pk, GR_TERM_EXT_PID, s + 1, (size_t)nl, (uint32_t)v[0],
                               (v[1] << 8) | v[2]) < 0
                   ? -ENOMEM
                   : 1;
    }
    if (len > 6 && memcmp(s, "#Ref<", 5) == 0 && s[len - 1] == '>') {
        if ((nl = split_id(s + 5, len - 6, 2, ref_max, v)) < 0) {
            return 0;
        }
        return gr_term_pack_id(pk, GR_TERM_EXT_REF, s + 5, (size_t)nl, (uint32_t)v[0], v[1]) < 0
                   ? -ENOMEM
                   : 1;
    }
    return 0;
}

static int pack_value(msgpack_packer *pk, json_t *v, int depth, gr_cli_json_err *e);

/* {"$bin": "..."} -> bin. Returns 1 if packed, 0 if v is another object, or an error. */
static int pack_bin(msgpack_packer *pk, json_t *v, gr_cli_json_err *e)
{
    json_t *b64;
    const char *s;
    size_t slen, blen = 0;
    unsigned char *bin;
    int r;

    if (json_object_size(v) != 1 || (b64 = json_object_get(v, "$bin")) == NULL ||
        !json_is_string(b64)) {
        return 0;
    }
    s = json_string_value(b64);
    slen = json_string_length(b64);
    if ((bin = malloc(slen / 4 * 3 + 3)) == NULL) {
        return -ENOMEM;
    }
    if (sodium_base642bin(bin, slen / 4 * 3 + 3, s, slen, NULL, &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(bin);
        return set_err(e, "\"$bin\" is not valid base64 (standard alphabet, padded)");
    }
    r = msgpack_pack_bin_with_body(pk, bin, blen) < 0 ? -ENOMEM : 1;
    free(bin);
    return r;
}

static int pack_value(msgpack_packer *pk, json_t *v, int depth, gr_cli_json_err *e)
{
    int r;

    switch (json_typeof(v)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk) < 0 ? -ENOMEM : 0;
    case JSON_TRUE:
        return msgpack_pack_true(pk) < 0 ? -ENOMEM : 0;
    case JSON_FALSE:
        return msgpack_pack_false(pk) < 0 ? -ENOMEM : 0;
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, (int64_t)json_integer_value(v)) < 0 ? -ENOMEM : 0;
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v)) < 0 ? -ENOMEM : 0;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);

        if ((r = pack_id_string(pk, s, len)) != 0) {
            return r < 0 ? r : 0;
        }
        return msgpack_pack_str_with_body(pk, s, len) < 0 ? -ENOMEM : 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;

        if (depth >= GR_CLI_JSON_DEPTH_MAX) {
            return set_err(e, "nested deeper than %d levels", GR_CLI_JSON_DEPTH_MAX);
        }
        if (msgpack_pack_array(pk, json_array_size(v)) < 0) {
            return -ENOMEM;
        }
        json_array_foreach(v, i, x)
        {
            if ((r = pack_value(pk, x, depth + 1, e)) < 0) {
                return r;
            }
        }
        return 0;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *x;

        if (depth >= GR_CLI_JSON_DEPTH_MAX) {
            return set_err(e, "nested deeper than %d levels", GR_CLI_JSON_DEPTH_MAX);
        }
        if ((r = pack_bin(pk, v, e)) != 0) {
            return r < 0 ? r : 0;
        }
        if (msgpack_pack_map(pk, json_object_size(v)) < 0) {
            return -ENOMEM;
        }
        json_object_foreach(v, k, x)
        {
            if (gr_term_pack_cstr(pk, k) < 0) {
                return -ENOMEM;
            }
            if ((r = pack_value(pk, x, depth + 1, e)) < 0) {
                return r;
            }
        }
        return 0;
    }
    default:
        return set_err(e, "unsupported JSON value");
    }
}

int gr_cli_json_to_term(const char *text, msgpack_packer *pk, gr_cli_json_err *ret_err)
{
    json_error_t je;
    json_t *v;
    int r;

    v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (v == NULL) {
        set_err(ret_err, "%s", je.text);
        ret_err->line = je.line;
        ret_err->column = je.column;
        return GR_EBADARG;
    }
    r = pack_value(pk, v, 0, ret_err);
    json_decref(v);
    return r;
}

/* ------------------------------------------------------------ term -> JSON */

typedef struct out {
    msgpack_sbuffer sb; /* the text so far */
    int pretty;         /* indent nested values */
    int failed;         /* a write failed: -ENOMEM at the end */
} out;

static void put(out *o, const char *s, size_t len)
{
    if (!o->failed && msgpack_sbuffer_write(&o->sb, s, len) != 0) {
        o->failed = 1;
    }
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(out *o, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void putf(out *o, const char *format, ...)
{
    char buf[64];
    va_list ap;
    int n;

    va_start(ap, format);
    n = vsnprintf(buf, sizeof(buf), format, ap);
    va_end(ap);
    put(o, buf, n < 0 ? 0 : (size_t)n >= sizeof(buf) ? sizeof(buf) - 1 : (size_t)n);
}

static void newline(out *o, int depth)
{
    if (o->pretty) {
        put(o, "\n", 1);
        for (int i = 0; i < depth; i++) {
            put(o, "  ", 2);
        }
    }
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t n;

    if (s[0] < 0x80) {
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0; /* overlong, out of range, surrogate */
    }
    return n;
}

static void put_str(out *o, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;

    put(o, "\"", 1);
    while (i < len) {
        size_t n = utf8_len(s + i, len - i);
        const char *esc = NULL;
        char u[8];

        if (n == 1) {
            switch (s[i]) {
            case '"':
                esc = "\\\"";
                break;
            case '\\':
                esc = "\\\\";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            default:
                if (s[i] < 0x20 || s[i] == 0x7f) {
                    snprintf(u, sizeof(u), "\\u%04x", s[i]);
                    esc = u;
                }
                break;
            }
        } else if (n == 0) {
            esc = "\\ufffd";
            n = 1;
        }
        if (esc != NULL) {
            put(o, str + i - run, run);
            run = 0;
            puts_(o, esc);
        } else {
            run += n;
        }
        i += n;
    }
    put(o, str + i - run, run);
    put(o, "\"", 1);
}

int gr_cli_json_put_str(msgpack_sbuffer *sb, const char *s, size_t len)
{
    out o = {.sb = *sb};

    put_str(&o, s, len);
    *sb = o.sb;
    return o.failed ? -ENOMEM : 0;
}

static void put_b64(out *o, const char *data, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(cap);

    if (b == NULL) {
        o->failed = 1;
        return;
    }
    sodium_bin2base64(b, cap, (const unsigned char *)data, len, sodium_base64_VARIANT_ORIGINAL);
    put_str(o, b, strlen(b));
    free(b);
}

/* Shortest text that reads back as the same double (or float, for float32). */
static void put_float(out *o, double d, int is32)
{
    char buf[40];

    if (!isfinite(d)) {
        puts_(o, "null");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (is32 ? (float)strtod(buf, NULL) == (float)d : strtod(buf, NULL) == d) {
            break;
        }
    }
    puts_(o, buf);
    if (strpbrk(buf, ".eE") == NULL) {
        puts_(o, ".0"); /* stays a float when read back */
    }
}

static void put_ext(out *o, const msgpack_object *v)
{
    char buf[GR_TERM_NODE_MAX + 80];
    gr_term_id id;
    int n = -1;

    /* Node names may hold '"' or '\\': print into buf, then escape as a string. */
    if (v->via.ext.type == GR_TERM_EXT_PID && gr_term_parse_id(v, GR_TERM_EXT_PID, &id) == 0) {
        n = snprintf(buf, sizeof(buf), "<%.*s.%" PRIu32 ".%" PRIu64 ".%" PRIu64 ">",
                     (int)id.node_len, id.node, id.creation, id.id >> 8, id.id & 0xff);
    } else if (v->via.ext.type == GR_TERM_EXT_REF &&
               gr_term_parse_id(v, GR_TERM_EXT_REF, &id) == 0) {
        n = snprintf(buf, sizeof(buf), "#Ref<%.*s.%" PRIu32 ".%" PRIu64 ">", (int)id.node_len,
                     id.node, id.creation, id.id);
    }
    if (n > 0 && (size_t)n < sizeof(buf)) {
        put_str(o, buf, (size_t)n);
        return;
    }
    putf(o, "{\"$ext\":%s{\"type\":%s%d,%s\"data\":%s", o->pretty ? " " : "", o->pretty ? " " : "",
         (int)v->via.ext.type, o->pretty ? " " : "", o->pretty ? " " : "");
    put_b64(o, v->via.ext.ptr, v->via.ext.size);
    puts_(o, "}}");
}

static void put_value(out *o, const msgpack_object *v, int depth);

/* A map key: strings as themselves, anything else as its compact JSON text. */
static void put_key(out *o, const msgpack_object *k)
{
    out sub = {.pretty = 0};

    if (k->type == MSGPACK_OBJECT_STR) {
        put_str(o, k->via.str.ptr, k->via.str.size);
        return;
    }
    msgpack_sbuffer_init(&sub.sb);
    put_value(&sub, k, 0);
    if (sub.failed) {
        o->failed = 1;
    } else if (sub.sb.size > 0 && sub.sb.data[0] == '"') {
        put(o, sub.sb.data, sub.sb.size); /* a pid or ref: already a JSON string */
    } else {
        put_str(o, sub.sb.data, sub.sb.size);
    }
    msgpack_sbuffer_destroy(&sub.sb);
}

static void put_value(out *o, const msgpack_object *v, int depth)
{
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        puts_(o, "null");
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        puts_(o, v->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        putf(o, "%" PRIu64, v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        putf(o, "%" PRId64, v->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
        put_float(o, v->via.f64, 1);
        break;
    case MSGPACK_OBJECT_FLOAT64:
        put_float(o, v->via.f64, 0);
        break;
    case MSGPACK_OBJECT_STR:
        put_str(o, v->via.str.ptr, v->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        putf(o, "{\"$bin\":%s", o->pretty ? " " : "");
        put_b64(o, v->via.bin.ptr, v->via.bin.size);
        puts_(o, "}");
        break;
    case MSGPACK_OBJECT_EXT:
        put_ext(o, v);
        break;
    case MSGPACK_OBJECT_ARRAY:
        put(o, "[", 1);
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i > 0) {
                put(o, ",", 1);
            }
            newline(o, depth + 1);
            put_value(o, &v->via.array.ptr[i], depth + 1);
        }
        if (v->via.array.size > 0) {
            newline(o, depth);
        }
        put(o, "]", 1);
        break;
    case MSGPACK_OBJECT_MAP:
        put(o, "{", 1);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            if (i > 0) {
                put(o, ",", 1);
            }
            newline(o, depth + 1);
            put_key(o, &v->via.map.ptr[i].key);
            put(o, o->pretty ? ": " : ":", o->pretty ? 2 : 1);
            put_value(o, &v->via.map.ptr[i].val, depth + 1);
        }
        if (v->via.map.size > 0) {
            newline(o, depth);
        }
        put(o, "}", 1);
        break;
    default:
        puts_(o, "null");
        break;
    }
}

int gr_cli_term_to_json(const msgpack_object *v, int pretty, char **ret_s)
{
    out o = {.pretty = pretty};

    msgpack_sbuffer_init(&o.sb);
    put_value(&o, v, 0);
    put(&o, "", 1); /* NUL */
    if (o.failed) {
        msgpack_sbuffer_destroy(&o.sb);
        return -ENOMEM;
    }
    *ret_s = msgpack_sbuffer_release(&o.sb);
    return 0;
}

int gr_cli_term_buf_to_json(const void *buf, size_t len, int pretty, char **ret_s)
{
    msgpack_unpacked u;
    size_t off = 0;
    int r;

    if (gr_term_validate(buf, len) < 0) {
        return GR_EBADTERM;
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        return GR_EBADTERM;
    }
    r = gr_cli_term_to_json(&u.data, pretty, ret_s);
    msgpack_unpacked_destroy(&u);
    return r;
}
