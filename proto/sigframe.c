/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sigframe.c - the Signal frame's fast encoder and in-place decoder
 * (sigframe.h says what they accept and why they exist).
 *
 * Wire facts used here (protobuf encoding, girder.proto):
 *   Frame.signal      field 7, length-delimited: key 0x3a
 *   Signal.kind       field 1, varint:           key 0x08
 *   Signal.from       field 2, bytes:            key 0x12
 *   Signal.to         field 3, bytes:            key 0x1a
 *   Signal.to_name    field 4, string:           key 0x22
 *   Signal.ref        field 5, bytes:            key 0x2a
 *   Signal.payload    field 6, bytes:            key 0x32
 *   Signal.flags      field 7, varint:           key 0x38
 *   Signal.behaviour  field 8, string:           key 0x42
 * All keys are one byte. frame_test.c checks both directions against
 * protobuf-c on the same values, so a schema change that moves a field fails
 * there first.
 */
#include "proto/sigframe.h"

#include "proto/err.h"
#include "proto/term.h"

#include <stdbool.h>
#include <string.h>

#define KEY_FRAME_SIGNAL 0x3a

/* ---- varints ------------------------------------------------------------------------ */

static size_t varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Read a varint of at most 10 bytes at *io_p (< end). 0, or -1 if truncated or
 * overlong. */
static int varint_get(const uint8_t **io_p, const uint8_t *end, uint64_t *ret)
{
    const uint8_t *p = *io_p;
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *io_p = p;
            *ret = v;
            return 0;
        }
    }
    return -1;
}

/* ---- encoder ----------------------------------------------------------------------------- */

static size_t field_size(size_t len)
{
    return len ? 1 + varint_size(len) + len : 0;
}

static size_t body_size(const gr_sigframe *s)
{
    return (s->kind ? 1 + varint_size(s->kind) : 0) + field_size(s->from_len) +
           field_size(s->to_len) + field_size(s->to_name_len) + field_size(s->ref_len) +
           field_size(s->payload_len) + (s->flags ? 1 + varint_size(s->flags) : 0) +
           field_size(s->behaviour_len);
}

size_t gr_sigframe_size(const gr_sigframe *s)
{
    size_t body = body_size(s);

    return 1 + varint_size(body) + body;
}

static uint8_t *field_put(uint8_t *p, uint8_t key, const void *data, size_t len)
{
    if (len == 0) {
        return p;
    }
    *p++ = key;
    p = varint_put(p, len);
    memcpy(p, data, len);
    return p + len;
}

/* Write s; with_payload false: stop right after the payload's length (the
 * caller sends the payload's bytes from where they are). */
static size_t pack(const gr_sigframe *s, uint8_t *out, bool with_payload)
{
    uint8_t *p = out;

    *p++ = KEY_FRAME_SIGNAL;
    p = varint_put(p, body_size(s));
    if (s->kind) {
        *p++ = 0x08;
        p = varint_put(p, s->kind);
    }
    p = field_put(p, 0x12, s->from, s->from_len);
    p = field_put(p, 0x1a, s->to, s->to_len);
    p = field_put(p, 0x22, s->to_name, s->to_name_len);
    p = field_put(p, 0x2a, s->ref, s->ref_len);
    if (!with_payload) {
        *p++ = 0x32;
        p = varint_put(p, s->payload_len);
        return (size_t)(p - out);
    }
    p = field_put(p, 0x32, s->payload, s->payload_len);
    if (s->flags) {
        *p++ = 0x38;
        p = varint_put(p, s->flags);
    }
    p = field_put(p, 0x42, s->behaviour, s->behaviour_len);
    return (size_t)(p - out);
}

size_t gr_sigframe_pack(const gr_sigframe *s, uint8_t *out)
{
    return pack(s, out, true);
}

size_t gr_sigframe_head_size(const gr_sigframe *s)
{
    if (s->payload_len == 0 || s->flags != 0 || s->behaviour_len != 0) {
        return 0; /* the payload is not the frame's last field */
    }
    return gr_sigframe_size(s) - s->payload_len;
}

size_t gr_sigframe_pack_head(const gr_sigframe *s, uint8_t *out)
{
    return gr_sigframe_head_size(s) ? pack(s, out, false) : 0;
}

/* ---- decoder ----------------------------------------------------------------------------- */

static int check_id(const uint8_t *p, size_t len, int ext_type)
{
    gr_term_id id;

    if (len == 0) {
        return 0;
    }
    return gr_term_decode_id(p, len, ext_type, &id) < 0 ? GR_EBADFRAME : 0;
}

/* The frame is buf[0..len) followed by tail[0..tail_len) (tail_len 0: buf is
 * all of it). With a tail, buf must end exactly where the payload's bytes begin
 * and the payload must be the whole tail. */
static int view(const uint8_t *buf, size_t len, const uint8_t *tail, size_t tail_len,
                gr_sigframe *ret)
{
    const uint8_t *p = buf, *end = buf + len;
    gr_sigframe s = {0};
    unsigned last = 0; /* field numbers must rise: canonical, none repeated */
    uint64_t n;

    if (len < 2 || *p++ != KEY_FRAME_SIGNAL || varint_get(&p, end, &n) < 0 ||
        n != (uint64_t)(end - p) + tail_len) {
        return 0; /* another frame kind, or more than the signal member */
    }
    while (p < end) {
        uint8_t key = *p++;
        unsigned field = key >> 3;

        if ((key & 0x80) || field <= last || field > 8) {
            return 0; /* a long key, out of order, repeated or unknown field */
        }
        last = field;
        if (field == 1 || field == 7) {
            if ((key & 7) != 0 || varint_get(&p, end, &n) < 0 || n > UINT32_MAX) {
                return 0;
            }
            if (field == 1) {
                s.kind = (uint32_t)n;
            } else {
                s.flags = (uint32_t)n;
            }
            continue;
        }
        if ((key & 7) != 2 || varint_get(&p, end, &n) < 0) {
            return 0;
        }
        if (field == 6 && tail_len > 0) {
            if (p != end || n != tail_len) {
                return 0; /* the tail is not exactly the payload */
            }
            s.payload = tail;
            s.payload_len = tail_len;
            break;
        }
        if (n > (uint64_t)(end - p)) {
            return 0;
        }
        switch (field) {
        case 2:
            s.from = p;
            s.from_len = (size_t)n;
            break;
        case 3:
            s.to = p;
            s.to_len = (size_t)n;
            break;
        case 4:
            if (n > GR_SIGFRAME_NAME_MAX || memchr(p, 0, (size_t)n) != NULL) {
                return 0;
            }
            s.to_name = (const char *)p;
            s.to_name_len = (size_t)n;
            break;
        case 5:
            s.ref = p;
            s.ref_len = (size_t)n;
            break;
        case 6:
            s.payload = p;
            s.payload_len = (size_t)n;
            break;
        default:
            if (n > GR_SIGFRAME_NAME_MAX || memchr(p, 0, (size_t)n) != NULL) {
                return 0;
            }
            s.behaviour = (const char *)p;
            s.behaviour_len = (size_t)n;
            break;
        }
        p += n;
    }
    if (tail_len > 0 && s.payload != tail) {
        return 0;
    }
    if ((s.to_len > 0 && s.to_name_len > 0) || check_id(s.from, s.from_len, GR_TERM_EXT_PID) < 0 ||
        check_id(s.to, s.to_len, GR_TERM_EXT_PID) < 0 ||
        check_id(s.ref, s.ref_len, GR_TERM_EXT_REF) < 0 ||
        (s.payload_len > 0 && gr_term_validate(s.payload, s.payload_len) < 0)) {
        return GR_EBADFRAME;
    }
    *ret = s;
    return 1;
}

int gr_sigframe_view(const uint8_t *buf, size_t len, gr_sigframe *ret)
{
    return view(buf, len, NULL, 0, ret);
}

int gr_sigframe_view_split(const uint8_t *head, size_t head_len, const uint8_t *payload,
                           size_t payload_len, gr_sigframe *ret)
{
    if (payload_len == 0) {
        return 0;
    }
    return view(head, head_len, payload, payload_len, ret);
}

int gr_sigframe_head_len(const uint8_t *buf, size_t len, size_t total, size_t *ret_head)
{
    const uint8_t *p = buf, *end = buf + len;
    unsigned last = 0;
    uint64_t n;

    if (len < 2 || *p++ != KEY_FRAME_SIGNAL || varint_get(&p, end, &n) < 0 ||
        n != total - (size_t)(p - buf)) {
        return 0;
    }
    while (p < end) {
        uint8_t key = *p++;
        unsigned field = key >> 3;

        if ((key & 0x80) || field <= last || field > 6) {
            return 0;
        }
        last = field;
        if ((key & 7) == 0 && field == 1) {
            if (varint_get(&p, end, &n) < 0) {
                return 0;
            }
            continue;
        }
        if ((key & 7) != 2 || varint_get(&p, end, &n) < 0) {
            return 0;
        }
        if (field == 6) {
            /* the payload runs from here to the end of the frame */
            if (n == 0 || n != total - (size_t)(p - buf)) {
                return 0;
            }
            *ret_head = (size_t)(p - buf);
            return 1;
        }
        if (n > (uint64_t)(end - p)) {
            return 0;
        }
        p += n;
    }
    return 0;
}
