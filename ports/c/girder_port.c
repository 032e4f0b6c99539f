/* SPDX-License-Identifier: Apache-2.0 */
/*
 * girder_port.c - the C helper for port programs (girder_port.h): the
 * {packet, 4} framing on blocking descriptors, the msgpack-RPC shapes of
 * docs/ports.md, requests that wait for their answer while keeping what
 * arrives meanwhile.
 *
 * Design notes
 * - One read buffer: frames are handled where they lie. The frame returned
 *   last stays in place (its msgpack_objects point into it: msgpack-c keeps
 *   str/bin/ext bodies in the input) until the next read consumes it. The
 *   buffer grows to at most max_frame + header + one read; a length above
 *   max_frame is refused from the header alone.
 * - A request writes its frame, then reads until its response. Frames read
 *   meanwhile are copied to a FIFO (at most GIRDER_PORT_QUEUE_MAX frames and
 *   4 * max_frame bytes) that girder_port_next empties first.
 * - Writes are whole frames with writev, retried on short writes and EINTR.
 */
#include "girder_port.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define HDR 4
#define READ_CHUNK 65536
#define REQUEST 0
#define RESPONSE 1
#define NOTIFY 2
#define TEXT_MAX 256
#define GIRDER_PORT_DEPTH_MAX                                                                      \
    32 /* nesting accepted in a frame (as the node's gr_term_validate)                             \
        */

/* A frame kept while a request waited. */
typedef struct qframe {
    struct qframe *next;
    size_t len;     /* payload bytes */
    uint8_t data[]; /* the payload */
} qframe;

struct girder_port {
    int in_fd, out_fd;
    uint32_t max_frame;
    uint8_t *rbuf;           /* bytes read from in_fd */
    size_t rcap, rlen, roff; /* capacity, bytes held, start of unhandled bytes */
    size_t consumed;         /* the frame returned last: skipped at the next read */
    qframe *qhead, *qtail;   /* frames kept while a request waited */
    size_t qn, qbytes;       /* their count and payload bytes */
    qframe *cur;             /* the kept frame returned last (freed at the next read) */
    msgpack_unpacked up;     /* the frame returned last, unpacked */
    uint64_t next_id;        /* of our requests */
    girder_port_pid self;    /* from "init" */
    char node[TEXT_MAX];     /* from "init" */
    char name[TEXT_MAX];     /* from "init" */
    char err[TEXT_MAX];      /* the node's reason for the last GIRDER_PORT_EREMOTE */
};

/* ---- framing ------------------------------------------------------------------------------ */

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int girder_port_frame_check(const uint8_t *buf, size_t len, uint32_t max_frame, size_t *ret_used)
{
    uint32_t n;

    if (len < HDR) {
        return 0;
    }
    n = get32(buf);
    if (n == 0 || n > max_frame) {
        return GIRDER_PORT_ETOOBIG;
    }
    if (len - HDR < n) {
        return 0;
    }
    *ret_used = HDR + (size_t)n;
    return 1;
}

/* Read the next frame from in_fd into rbuf: *ret_payload / *ret_len point
 * into rbuf, valid until the next call. 0 or a negative error. */
static int read_frame(girder_port *gp, const uint8_t **ret_payload, size_t *ret_len)
{
    gp->roff += gp->consumed;
    gp->consumed = 0;
    for (;;) {
        size_t used = 0;
        int r = 0;
        ssize_t n;

        if (gp->rlen > gp->roff) { /* rbuf is NULL until the first read */
            r = girder_port_frame_check(gp->rbuf + gp->roff, gp->rlen - gp->roff, gp->max_frame,
                                        &used);
        }
        if (r < 0) {
            return r;
        }
        if (r == 1) {
            *ret_payload = gp->rbuf + gp->roff + HDR;
            *ret_len = used - HDR;
            gp->consumed = used;
            return 0;
        }
        if (gp->roff > 0) { /* make room at the end */
            memmove(gp->rbuf, gp->rbuf + gp->roff, gp->rlen - gp->roff);
            gp->rlen -= gp->roff;
            gp->roff = 0;
        }
        if (gp->rcap - gp->rlen < READ_CHUNK) {
            size_t limit = (size_t)gp->max_frame + HDR + READ_CHUNK;
            size_t nc = gp->rcap ? gp->rcap * 2 : 2 * READ_CHUNK;
            uint8_t *g;

            if (nc > limit) {
                nc = limit;
            }
            if (nc > gp->rcap) {
                if (!(g = realloc(gp->rbuf, nc))) {
                    return GIRDER_PORT_ENOMEM;
                }
                gp->rbuf = g;
                gp->rcap = nc;
            }
        }
        n = read(gp->in_fd, gp->rbuf + gp->rlen, gp->rcap - gp->rlen);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return GIRDER_PORT_EIO;
        }
        if (n == 0) {
            return gp->rlen == 0 ? GIRDER_PORT_ECLOSED : GIRDER_PORT_ETRUNC;
        }
        gp->rlen += (size_t)n;
    }
}

/* Write one frame: header + a[0..alen) + b[0..blen). 0 or GIRDER_PORT_EIO. */
static int write_frame(girder_port *gp, const void *a, size_t alen, const void *b, size_t blen)
{
    uint8_t hdr[HDR];
    struct iovec iov[3];
    int cnt = 3, i = 0;

    if (alen + blen == 0 || alen + blen > UINT32_MAX) {
        return GIRDER_PORT_EBADARG;
    }
    put32(hdr, (uint32_t)(alen + blen));
    iov[0] = (struct iovec){hdr, HDR};
    iov[1] = (struct iovec){(void *)(uintptr_t)a, alen};
    iov[2] = (struct iovec){(void *)(uintptr_t)b, blen};
    while (i < cnt) {
        ssize_t n = writev(gp->out_fd, iov + i, cnt - i);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return GIRDER_PORT_EIO;
        }
        while (i < cnt && (size_t)n >= iov[i].iov_len) {
            n -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < cnt) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + n;
            iov[i].iov_len -= (size_t)n;
        }
    }
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- life cycle --------------------------------------------------------------------------- */

int girder_port_open(int in_fd, int out_fd, uint32_t max_frame, girder_port **ret_gp)
{
    girder_port *gp;

    if (in_fd < 0 || out_fd < 0 || !ret_gp) {
        return GIRDER_PORT_EBADARG;
    }
    if (!(gp = calloc(1, sizeof(*gp)))) {
        return GIRDER_PORT_ENOMEM;
    }
    gp->in_fd = in_fd;
    gp->out_fd = out_fd;
    gp->max_frame = max_frame ? max_frame : GIRDER_PORT_FRAME_MAX_DEFAULT;
    gp->next_id = 1;
    msgpack_unpacked_init(&gp->up);
    *ret_gp = gp;
    return 0;
}

void girder_port_close(girder_port *gp)
{
    if (!gp) {
        return;
    }
    while (gp->qhead) {
        qframe *q = gp->qhead;

        gp->qhead = q->next;
        free(q);
    }
    free(gp->cur);
    msgpack_unpacked_destroy(&gp->up);
    free(gp->rbuf);
    free(gp);
}

/* ---- incoming ----------------------------------------------------------------------------- */

static bool is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static void copy_str(const msgpack_object *o, char *dst, size_t cap)
{
    size_t n = 0;

    if (o->type == MSGPACK_OBJECT_STR) {
        n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(dst, o->via.str.ptr, n);
    }
    dst[n] = '\0';
}

/* Skip one msgpack value at p[*off..len), containers at most `depth` deep.
 * Checks every declared length and element count against the bytes left
 * before anything is allocated for it (msgpack-c's unpacker allocates a
 * container's declared size first: a 10-byte frame could ask for GiBs).
 * 0, or GIRDER_PORT_EBADFRAME. */
static int skip_value(const uint8_t *p, size_t len, size_t *off, int depth)
{
    static const uint8_t fixed[] = {
        /* extra bytes after the type byte for 0xc0..0xdf; 0xff: special */
        0, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 4,    8,    1,    2,    4,    8,
        1, 2,    4, 8, 2,    3,    5,    9,    17,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    size_t i = *off, n = 0, elems = 0, hdr = 0;
    uint8_t b;

    if (i >= len) {
        return GIRDER_PORT_EBADFRAME;
    }
    b = p[i];
    if (b <= 0x7f || b >= 0xe0) {
        *off = i + 1;
        return 0;
    }
    if (b <= 0x8f) {
        elems = 2 * (size_t)(b & 0x0f);
    } else if (b <= 0x9f) {
        elems = b & 0x0f;
    } else if (b <= 0xbf) {
        n = b & 0x1f;
    } else if (fixed[b - 0xc0] != 0xff) {
        n = fixed[b - 0xc0];
    } else {
        switch (b) {
        case 0xc4:
        case 0xd9:
            hdr = 1;
            break; /* bin8, str8 */
        case 0xc5:
        case 0xda:
            hdr = 2;
            break; /* bin16, str16 */
        case 0xc6:
        case 0xdb:
            hdr = 4;
            break; /* bin32, str32 */
        case 0xc7:
            hdr = 1;
            n = 1;
            break; /* ext8 (+ type) */
        case 0xc8:
            hdr = 2;
            n = 1;
            break; /* ext16 */
        case 0xc9:
            hdr = 4;
            n = 1;
            break; /* ext32 */
        case 0xdc:
        case 0xde:
            hdr = 2;
            break; /* array16, map16 */
        case 0xdd:
        case 0xdf:
            hdr = 4;
            break; /* array32, map32 */
        default:
            return GIRDER_PORT_EBADFRAME; /* 0xc1: never used */
        }
        if (len - i - 1 < hdr) {
            return GIRDER_PORT_EBADFRAME;
        }
        {
            size_t v = 0;

            for (size_t k = 0; k < hdr; k++) {
                v = v << 8 | p[i + 1 + k];
            }
            if (b >= 0xdc) {
                elems = b >= 0xde ? 2 * v : v;
            } else {
                n += v;
            }
        }
    }
    i += 1 + hdr;
    if (n > len - i || elems > len - i) { /* each element takes a byte at least */
        return GIRDER_PORT_EBADFRAME;
    }
    i += n;
    if (elems && depth <= 0) {
        return GIRDER_PORT_EBADFRAME;
    }
    for (size_t k = 0; k < elems; k++) {
        if (skip_value(p, len, &i, depth - 1) < 0) {
            return GIRDER_PORT_EBADFRAME;
        }
    }
    *off = i;
    return 0;
}

/* Is t[0..len) exactly one well-formed msgpack value (an array if `array`)? */
static bool one_value(const void *t, size_t len, bool array)
{
    const uint8_t *p = t;
    size_t off = 0;

    if (!t || len == 0 || skip_value(p, len, &off, GIRDER_PORT_DEPTH_MAX) < 0 || off != len) {
        return false;
    }
    return !array || (p[0] >= 0x90 && p[0] <= 0x9f) || p[0] == 0xdc || p[0] == 0xdd;
}

/* Unpack payload into gp->up and check the msgpack-RPC envelope. */
static int unpack(girder_port *gp, const uint8_t *payload, size_t len, const msgpack_object **ret_a,
                  uint32_t *ret_n)
{
    size_t off = 0;
    const msgpack_object *a;
    uint32_t n;

    if (skip_value(payload, len, &off, GIRDER_PORT_DEPTH_MAX) < 0 || off != len) {
        return GIRDER_PORT_EBADFRAME;
    }
    off = 0;
    if (msgpack_unpack_next(&gp->up, (const char *)payload, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || gp->up.data.type != MSGPACK_OBJECT_ARRAY) {
        return GIRDER_PORT_EBADFRAME;
    }
    a = gp->up.data.via.array.ptr;
    n = gp->up.data.via.array.size;
    if (n < 3 || a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 > NOTIFY ||
        (a[0].via.u64 != NOTIFY && (n != 4 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)) ||
        (a[0].via.u64 == NOTIFY && n != 3)) {
        return GIRDER_PORT_EBADFRAME;
    }
    *ret_a = a;
    *ret_n = n;
    return 0;
}

/* The next frame, kept ones first. */
static int next_frame(girder_port *gp, const uint8_t **ret_payload, size_t *ret_len)
{
    free(gp->cur);
    gp->cur = NULL;
    if (gp->qhead) {
        qframe *q = gp->qhead;

        gp->qhead = q->next;
        if (!gp->qhead) {
            gp->qtail = NULL;
        }
        gp->qn--;
        gp->qbytes -= q->len;
        gp->cur = q;
        *ret_payload = q->data;
        *ret_len = q->len;
        return 0;
    }
    return read_frame(gp, ret_payload, ret_len);
}

/* [2, "init", [Pid, Node, Name]] */
static void on_init(girder_port *gp, const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;

    if (params->via.array.size != 3) {
        return;
    }
    (void)girder_port_pid_get(&p[0], &gp->self);
    copy_str(&p[1], gp->node, sizeof(gp->node));
    copy_str(&p[2], gp->name, sizeof(gp->name));
}

int girder_port_next(girder_port *gp, girder_port_event *ret_ev)
{
    for (;;) {
        const uint8_t *payload;
        const msgpack_object *a, *params;
        size_t len;
        uint32_t n;
        int r;

        if ((r = next_frame(gp, &payload, &len)) < 0 ||
            (r = unpack(gp, payload, len, &a, &n)) < 0) {
            return r;
        }
        *ret_ev = (girder_port_event){.kind = GIRDER_PORT_OTHER, .term = &gp->up.data};
        if (a[0].via.u64 == RESPONSE) {
            continue; /* an answer nobody waits for any more */
        }
        params = &a[n - 1];
        if (a[0].via.u64 == NOTIFY && params->type == MSGPACK_OBJECT_ARRAY) {
            if (is_str(&a[1], "init")) {
                on_init(gp, params);
                continue;
            }
            if (is_str(&a[1], "message") && params->via.array.size == 1) {
                ret_ev->kind = GIRDER_PORT_MESSAGE;
                ret_ev->term = &params->via.array.ptr[0];
            } else if (is_str(&a[1], "publish") && params->via.array.size == 2) {
                ret_ev->kind = GIRDER_PORT_PUBLISH;
                ret_ev->topic = &params->via.array.ptr[0];
                ret_ev->term = &params->via.array.ptr[1];
            }
        } else if (a[0].via.u64 == REQUEST && is_str(&a[2], "call") &&
                   params->type == MSGPACK_OBJECT_ARRAY && params->via.array.size == 1) {
            ret_ev->kind = GIRDER_PORT_CALL;
            ret_ev->id = a[1].via.u64;
            ret_ev->term = &params->via.array.ptr[0];
        }
        return 0;
    }
}

/* ---- outgoing ----------------------------------------------------------------------------- */

int girder_port_reply(girder_port *gp, uint64_t id, const void *term, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!one_value(term, len, false)) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, RESPONSE);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_nil(&pk);
    r = sb.data ? write_frame(gp, sb.data, sb.size, term, len) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int girder_port_reply_error(girder_port *gp, uint64_t id, const char *reason)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!reason || !*reason) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, RESPONSE);
    msgpack_pack_uint64(&pk, id);
    pack_str(&pk, reason);
    msgpack_pack_nil(&pk);
    r = sb.data ? write_frame(gp, sb.data, sb.size, NULL, 0) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* [2, "send", [Dest, Term]]: dest is packed bytes. */
static int send_packed(girder_port *gp, const void *dest, size_t dlen, const void *term, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!one_value(term, len, false)) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, NOTIFY);
    pack_str(&pk, "send");
    msgpack_pack_array(&pk, 2);
    msgpack_sbuffer_write(&sb, dest, dlen);
    r = sb.data ? write_frame(gp, sb.data, sb.size, term, len) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int girder_port_send(girder_port *gp, const girder_port_pid *to, const void *term, size_t len)
{
    if (!to || to->len == 0 || to->len > sizeof(to->data)) {
        return GIRDER_PORT_EBADARG;
    }
    return send_packed(gp, to->data, to->len, term, len);
}

int girder_port_send_name(girder_port *gp, const char *name, const void *term, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!name || !*name) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_str(&pk, name);
    r = sb.data ? send_packed(gp, sb.data, sb.size, term, len) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int girder_port_publish(girder_port *gp, const char *topic, const void *term, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!topic || !*topic || !one_value(term, len, false)) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, NOTIFY);
    pack_str(&pk, "publish");
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, topic);
    r = sb.data ? write_frame(gp, sb.data, sb.size, term, len) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* Keep a frame read while a request waited. */
static int keep(girder_port *gp, const uint8_t *payload, size_t len)
{
    qframe *q;

    if (gp->qn >= GIRDER_PORT_QUEUE_MAX || gp->qbytes + len > (size_t)gp->max_frame * 4) {
        return GIRDER_PORT_EFULL;
    }
    if (!(q = malloc(sizeof(*q) + len))) {
        return GIRDER_PORT_ENOMEM;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->data, payload, len);
    if (gp->qtail) {
        gp->qtail->next = q;
    } else {
        gp->qhead = q;
    }
    gp->qtail = q;
    gp->qn++;
    gp->qbytes += len;
    return 0;
}

int girder_port_request(girder_port *gp, const char *method, const void *params, size_t plen,
                        const msgpack_object **ret_result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t id = gp->next_id++;
    int r;

    if (!method || !*method || !one_value(params, plen, true)) {
        return GIRDER_PORT_EBADARG;
    }
    gp->err[0] = '\0';
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, REQUEST);
    msgpack_pack_uint64(&pk, id);
    pack_str(&pk, method);
    r = sb.data ? write_frame(gp, sb.data, sb.size, params, plen) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        return r;
    }
    /* Kept frames are older than the answer: read on from the descriptor. */
    for (;;) {
        const uint8_t *payload;
        const msgpack_object *a;
        size_t len;
        uint32_t n;

        free(gp->cur);
        gp->cur = NULL;
        if ((r = read_frame(gp, &payload, &len)) < 0 ||
            (r = unpack(gp, payload, len, &a, &n)) < 0) {
            return r;
        }
        if (a[0].via.u64 == RESPONSE && a[1].via.u64 == id) {
            if (a[2].type != MSGPACK_OBJECT_NIL) {
                if (a[2].type == MSGPACK_OBJECT_STR) {
                    copy_str(&a[2], gp->err, sizeof(gp->err));
                } else {
                    snprintf(gp->err, sizeof(gp->err), "error");
                }
                return GIRDER_PORT_EREMOTE;
            }
            if (ret_result) {
                *ret_result = &a[3];
            }
            return 0;
        }
        if (a[0].via.u64 == NOTIFY && is_str(&a[1], "init") && a[2].type == MSGPACK_OBJECT_ARRAY) {
            on_init(gp, &a[2]);
            continue;
        }
        if (a[0].via.u64 != RESPONSE && (r = keep(gp, payload, len)) < 0) {
            return r;
        }
    }
}

const char *girder_port_errmsg(const girder_port *gp)
{
    return gp->err;
}

/* A request whose params are strings. */
static int request_strs(girder_port *gp, const char *method, const char *const *s, int n,
                        const msgpack_object **ret_result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    for (int i = 0; i < n; i++) {
        if (!s[i] || !*s[i]) {
            return GIRDER_PORT_EBADARG;
        }
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        pack_str(&pk, s[i]);
    }
    r = sb.data ? girder_port_request(gp, method, sb.data, sb.size, ret_result)
                : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int girder_port_register(girder_port *gp, const char *name)
{
    int r = request_strs(gp, "register", &name, 1, NULL);

    if (r == 0) {
        snprintf(gp->name, sizeof(gp->name), "%s", name);
    }
    return r;
}

int girder_port_join(girder_port *gp, const char *scope, const char *group)
{
    const char *s[2] = {scope, group};

    return request_strs(gp, "join", s, 2, NULL);
}

int girder_port_leave(girder_port *gp, const char *scope, const char *group)
{
    const char *s[2] = {scope, group};

    return request_strs(gp, "leave", s, 2, NULL);
}

int girder_port_subscribe(girder_port *gp, const char *pattern)
{
    return request_strs(gp, "subscribe", &pattern, 1, NULL);
}

int girder_port_unsubscribe(girder_port *gp, const char *pattern)
{
    return request_strs(gp, "unsubscribe", &pattern, 1, NULL);
}

int girder_port_members(girder_port *gp, const char *scope, const char *group,
                        const msgpack_object **ret_pids)
{
    const char *s[2] = {scope, group};

    return request_strs(gp, "members", s, 2, ret_pids);
}

int girder_port_call_name(girder_port *gp, const char *name, const void *req, size_t len,
                          uint32_t timeout_ms, const msgpack_object **ret_result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!name || !*name || !one_value(req, len, false)) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, name);
    msgpack_sbuffer_write(&sb, req, len);
    msgpack_pack_uint32(&pk, timeout_ms ? timeout_ms : 5000);
    r = sb.data ? girder_port_request(gp, "call", sb.data, sb.size, ret_result)
                : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int girder_port_rpc(girder_port *gp, const char *node, const char *module, const char *function,
                    const void *args, size_t len, uint32_t timeout_ms,
                    const msgpack_object **ret_result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (!node || !*node || !module || !*module || !function || !*function ||
        (args && !one_value(args, len, true))) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    pack_str(&pk, node);
    pack_str(&pk, module);
    pack_str(&pk, function);
    if (args) {
        msgpack_sbuffer_write(&sb, args, len);
    } else {
        msgpack_pack_array(&pk, 0);
    }
    msgpack_pack_uint32(&pk, timeout_ms ? timeout_ms : 5000);
    r = sb.data ? girder_port_request(gp, "rpc", sb.data, sb.size, ret_result) : GIRDER_PORT_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* ---- pids and names ----------------------------------------------------------------------- */

int girder_port_pid_get(const msgpack_object *o, girder_port_pid *ret_pid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r = GIRDER_PORT_EBADARG;

    if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != 1) {
        return GIRDER_PORT_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
    if (sb.data && sb.size <= sizeof(ret_pid->data)) {
        memcpy(ret_pid->data, sb.data, sb.size);
        ret_pid->len = sb.size;
        r = 0;
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}

const girder_port_pid *girder_port_self(const girder_port *gp)
{
    return gp->self.len ? &gp->self : NULL;
}

const char *girder_port_node(const girder_port *gp)
{
    return gp->node;
}

const char *girder_port_name(const girder_port *gp)
{
    return gp->name;
}

const char *girder_port_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case GIRDER_PORT_EIO:
        return "read or write failed";
    case GIRDER_PORT_ECLOSED:
        return "stdin closed: the node wants the port gone";
    case GIRDER_PORT_ETRUNC:
        return "stdin ended inside a frame";
    case GIRDER_PORT_ETOOBIG:
        return "frame length 0 or above max_frame";
    case GIRDER_PORT_EBADFRAME:
        return "not a well-formed msgpack-RPC frame";
    case GIRDER_PORT_EREMOTE:
        return "the node answered with an error";
    case GIRDER_PORT_ENOMEM:
        return "out of memory";
    case GIRDER_PORT_EBADARG:
        return "bad argument";
    case GIRDER_PORT_EFULL:
        return "too many frames arrived while a request waited";
    default:
        return "unknown error";
    }
}
