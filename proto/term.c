/* SPDX-License-Identifier: Apache-2.0 */
/*
 * term.c - Girder ext types on top of msgpack-c, and a non-allocating validator.
 *
 * Design notes
 * - Packing and unpacking of ordinary values is msgpack-c's job; this file only
 *   adds the pid/ref ext payloads (see term.h for the layout), and the few small
 *   helpers (C strings, map lookup, the "$rpc" answer) that every module
 *   speaking terms would otherwise write again.
 * - gr_term_next (and gr_term_validate: it, plus "nothing follows") walks the
 *   encoded bytes with an explicit stack of "values still expected" per
 *   nesting level. It exists because every term that arrives from the network
 *   is checked before anything is allocated for it, and msgpack-c's unpacker
 *   allocates a zone per object. Bounds: depth GR_TERM_DEPTH_MAX, each
 *   container's element count is checked against the bytes left (every
 *   element needs at least one byte), so a hostile header cannot make the
 *   walk loop longer than the buffer.
 * - The validator must never accept what msgpack_unpack_next() refuses (the
 *   fuzz harness proto/fuzz/fuzz_term.c cross-checks it). msgpack-c refuses a
 *   container header, even an empty one, once MSGPACK_EMBED_STACK_SIZE (32)
 *   containers are open, so the validator counts every container header,
 *   empty or not, against GR_TERM_DEPTH_MAX, which may not exceed 32.
 */
#include "proto/term.h"

#include "proto/err.h"

#include <assert.h>
#include <errno.h>
#include <msgpack/unpack_define.h>
#include <string.h>

static_assert(GR_TERM_DEPTH_MAX <= MSGPACK_EMBED_STACK_SIZE,
              "the validator must not accept deeper nesting than msgpack-c unpacks");

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

int gr_term_pack_id(msgpack_packer *pk, int ext_type, const char *node, size_t node_len,
                    uint32_t creation, uint64_t id)
{
    unsigned char buf[1 + GR_TERM_NODE_MAX + 12];

    if (node_len == 0 || node_len > GR_TERM_NODE_MAX) {
        return -EINVAL;
    }
    buf[0] = (unsigned char)node_len;
    memcpy(buf + 1, node, node_len);
    put_be32(buf + 1 + node_len, creation);
    put_be32(buf + 5 + node_len, (uint32_t)(id >> 32));
    put_be32(buf + 9 + node_len, (uint32_t)id);
    if (msgpack_pack_ext(pk, 13 + node_len, (int8_t)ext_type) != 0) {
        return -ENOMEM;
    }
    if (msgpack_pack_ext_body(pk, buf, 13 + node_len) != 0) {
        return -ENOMEM;
    }
    return 0;
}

static int parse_id_payload(const unsigned char *p, size_t len, gr_term_id *ret_id)
{
    size_t nlen;

    if (len < 14) {
        return GR_EBADTERM;
    }
    nlen = p[0];
    if (nlen == 0 || len != 13 + nlen) {
        return GR_EBADTERM;
    }
    ret_id->node = (const char *)p + 1;
    ret_id->node_len = nlen;
    ret_id->creation = get_be32(p + 1 + nlen);
    ret_id->id = get_be64(p + 5 + nlen);
    return 0;
}

int gr_term_parse_id(const msgpack_object *o, int ext_type, gr_term_id *ret_id)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != ext_type) {
        return GR_EBADTERM;
    }
    return parse_id_payload((const unsigned char *)o->via.ext.ptr, o->via.ext.size, ret_id);
}

int gr_term_is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o != NULL && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

int gr_term_pack_cstr(msgpack_packer *pk, const char *s)
{
    if (s == NULL) {
        return msgpack_pack_nil(pk) < 0 ? -ENOMEM : 0;
    }
    return msgpack_pack_str_with_body(pk, s, strlen(s)) < 0 ? -ENOMEM : 0;
}

int gr_term_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
    if (gr_term_pack_cstr(pk, key) < 0 || msgpack_pack_uint64(pk, v) < 0) {
        return -ENOMEM;
    }
    return 0;
}

const msgpack_object *gr_term_map_get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        if (gr_term_is_str(&map->via.map.ptr[i].key, key)) {
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}

int gr_term_get_str(const msgpack_object *o, char *buf, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size >= cap ||
        memchr(o->via.str.ptr, '\0', o->via.str.size)) {
        return GR_EBADARG;
    }
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return 0;
}

int gr_term_pack_rpc_answer(msgpack_packer *pk, uint64_t tag, int status, const void *res,
                            size_t len)
{
    int r = 0;

    r |= msgpack_pack_array(pk, 4);
    r |= msgpack_pack_str_with_body(pk, "$rpc", 4);
    r |= msgpack_pack_uint64(pk, tag);
    r |= msgpack_pack_int(pk, status);
    if (status != 0) {
        r |= gr_term_pack_cstr(pk, gr_errid(status));
    } else if (len > 0) {
        r |= pk->callback(pk->data, (const char *)res, len);
    } else {
        r |= msgpack_pack_nil(pk);
    }
    return r < 0 ? -ENOMEM : 0;
}

int gr_term_parse_rpc_answer(const msgpack_object *msg, uint64_t *ret_tag, int *ret_status,
                             const msgpack_object **ret_x)
{
    const msgpack_object *a;

    if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 4) {
        return GR_EBADTERM;
    }
    a = msg->via.array.ptr;
    if (!gr_term_is_str(&a[0], "$rpc") || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return GR_EBADTERM;
    }
    *ret_tag = a[1].via.u64;
    *ret_status = a[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? (int)a[2].via.i64 : 0;
    *ret_x = &a[3];
    return 0;
}

/* Reads a big-endian length of `w` bytes at p. Caller checked bounds. */
static uint64_t get_len(const unsigned char *p, int w)
{
    switch (w) {
    case 1:
        return p[0];
    case 2:
        return ((uint64_t)p[0] << 8) | p[1];
    default:
        return get_be32(p);
    }
}

/*
 * Describes one msgpack header at p: how many header bytes, how many payload
 * bytes follow, how many child values follow (containers), and the ext type.
 * Returns 0 or GR_EBADTERM (truncated or the reserved 0xc1 byte).
 */
typedef struct hdr {
    size_t hlen;      /* header bytes, including the type byte */
    uint64_t plen;    /* raw payload bytes after the header */
    uint64_t nchild;  /* child values (array: n, map: 2n) */
    int is_container; /* array or map, even when empty */
    int is_ext;       /* payload is an ext body */
    int8_t ext_type;  /* valid when is_ext */
} hdr;

static int read_hdr(const unsigned char *p, size_t left, hdr *h)
{
    unsigned char b = p[0];
    int w = 0;

    memset(h, 0, sizeof(*h));
    h->hlen = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        return 0;
    }
    if ((b & 0xf0) == 0x80) {
        h->nchild = 2ull * (b & 0x0f);
        h->is_container = 1;
        return 0;
    }
    if ((b & 0xf0) == 0x90) {
        h->nchild = b & 0x0f;
        h->is_container = 1;
        return 0;
    }
    if ((b & 0xe0) == 0xa0) {
        h->plen = b & 0x1f;
        return 0;
    }
    switch (b) {
    case 0xcc:
    case 0xd0:
        h->plen = 1;
        return 0;
    case 0xcd:
    case 0xd1:
        h->plen = 2;
        return 0;
    case 0xce:
    case 0xd2:
    case 0xca:
        h->plen = 4;
        return 0;
    case 0xcf:
    case 0xd3:
    case 0xcb:
        h->plen = 8;
        return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        if (left < 2) {
            return GR_EBADTERM;
        }
        h->hlen = 2;
        h->plen = 1u << (b - 0xd4);
        h->is_ext = 1;
        h->ext_type = (int8_t)p[1];
        return 0;
    case 0xc4:
    case 0xd9:
        w = 1;
        break;
    case 0xc5:
    case 0xda:
        w = 2;
        break;
    case 0xc6:
    case 0xdb:
        w = 4;
        break;
    case 0xc7:
        w = 1;
        h->is_ext = 1;
        break;
    case 0xc8:
        w = 2;
        h->is_ext = 1;
        break;
    case 0xc9:
        w = 4;
        h->is_ext = 1;
        break;
    case 0xdc:
    case 0xde:
        w = 2;
        break;
    case 0xdd:
    case 0xdf:
        w = 4;
        break;
    default:
        return GR_EBADTERM; /* 0xc1 is never used */
    }
    if (left < 1 + (size_t)w + (h->is_ext ? 1 : 0)) {
        return GR_EBADTERM;
    }
    if (b == 0xdc || b == 0xdd) {
        h->nchild = get_len(p + 1, w);
        h->is_container = 1;
    } else if (b == 0xde || b == 0xdf) {
        h->nchild = 2 * get_len(p + 1, w);
        h->is_container = 1;
    } else {
        h->plen = get_len(p + 1, w);
    }
    h->hlen = 1 + (size_t)w;
    if (h->is_ext) {
        h->ext_type = (int8_t)p[1 + w];
        h->hlen++;
    }
    return 0;
}

/* gr_term_next with containers allowed at depths below max_depth only. */
static int term_next(const void *buf, size_t len, int max_depth, size_t *ret_len)
{
    const unsigned char *p = buf;
    size_t off = 0;
    uint64_t pending[GR_TERM_DEPTH_MAX + 1]; /* values still expected per level */
    int depth = 0;

    if (buf == NULL || len == 0) {
        return GR_EBADTERM;
    }
    pending[0] = 1;
    while (depth >= 0) {
        hdr h;

        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        if (off >= len || read_hdr(p + off, len - off, &h) < 0) {
            return GR_EBADTERM;
        }
        pending[depth]--;
        if (h.hlen > len - off || h.plen > len - off - h.hlen) {
            return GR_EBADTERM;
        }
        if (h.is_ext && (h.ext_type == GR_TERM_EXT_PID || h.ext_type == GR_TERM_EXT_REF)) {
            gr_term_id id;

            if (parse_id_payload(p + off + h.hlen, (size_t)h.plen, &id) < 0) {
                return GR_EBADTERM;
            }
        }
        off += h.hlen + (size_t)h.plen;
        if (h.is_container && depth >= max_depth) {
            return GR_EBADTERM; /* msgpack-c refuses even an empty one here */
        }
        if (h.nchild > 0) {
            if (h.nchild > len - off) {
                return GR_EBADTERM; /* every child needs at least one byte */
            }
            pending[++depth] = h.nchild;
        }
    }
    *ret_len = off;
    return 0;
}

int gr_term_next(const void *buf, size_t len, size_t *ret_len)
{
    return term_next(buf, len, GR_TERM_DEPTH_MAX, ret_len);
}

int gr_term_validate(const void *buf, size_t len)
{
    size_t n;

    return gr_term_next(buf, len, &n) == 0 && n == len ? 0 : GR_EBADTERM;
}

int gr_term_validate_nested(const void *buf, size_t len, unsigned levels)
{
    size_t n;

    if (levels > GR_TERM_DEPTH_MAX) {
        return GR_EBADTERM;
    }
    return term_next(buf, len, GR_TERM_DEPTH_MAX - (int)levels, &n) == 0 && n == len ? 0
                                                                                     : GR_EBADTERM;
}

int gr_term_decode_id(const void *buf, size_t len, int ext_type, gr_term_id *ret_id)
{
    const unsigned char *p = buf;
    hdr h;

    if (buf == NULL || len == 0 || read_hdr(p, len, &h) < 0) {
        return GR_EBADTERM;
    }
    if (!h.is_ext || h.ext_type != ext_type || h.hlen > len || h.plen != len - h.hlen) {
        return GR_EBADTERM;
    }
    return parse_id_payload(p + h.hlen, (size_t)h.plen, ret_id);
}
