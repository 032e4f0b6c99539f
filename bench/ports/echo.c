/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echo.c - the echo program of bench/run's ports section (issue 16), one
 * program for both sides so that the same code runs behind a Girder port and
 * an Erlang port: `echo erlang` answers every {packet, 4} frame with itself;
 * `echo girder` answers each [2, "message", [[Pid, Payload]]] frame (a
 * message sent to the port, docs/ports.md) with [2, "send", [Pid, Payload]]
 * (send Payload back to Pid) and ignores other frames ("init"). Both modes
 * rewrite bytes only (no msgpack library), read stdin in large chunks,
 * answer every complete frame of a chunk and write the answers with one
 * write(2). Exits 0 at stdin EOF, 1 on a broken frame or a write error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FRAME_MAX (16u << 20)
#define CHUNK (256u << 10)

static const uint8_t msg_head[] = {0x93, 0x02, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0x91, 0x92};
static const uint8_t send_head[] = {0x93, 0x02, 0xa4, 's', 'e', 'n', 'd', 0x92};

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static int reserve(buf *b, size_t more)
{
    uint8_t *n;
    size_t cap = b->cap ? b->cap : CHUNK;

    while (cap < b->len + more) {
        cap *= 2;
    }
    if (cap != b->cap) {
        if (!(n = realloc(b->p, cap))) {
            return -ENOMEM;
        }
        b->p = n;
        b->cap = cap;
    }
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Answer one frame (payload f, n bytes) into out. */
static int answer(bool girder, const uint8_t *f, uint32_t n, buf *out)
{
    if (!girder) {
        if (reserve(out, 4 + (size_t)n) < 0) {
            return -ENOMEM;
        }
        put32(out->p + out->len, n);
        memcpy(out->p + out->len + 4, f, n);
        out->len += 4 + (size_t)n;
        return 0;
    }
    if (n <= sizeof(msg_head) || memcmp(f, msg_head, sizeof(msg_head)) != 0) {
        return 0; /* not a message: init, or anything else */
    }
    n -= sizeof(msg_head);
    if (reserve(out, 4 + sizeof(send_head) + (size_t)n) < 0) {
        return -ENOMEM;
    }
    put32(out->p + out->len, (uint32_t)(sizeof(send_head) + n));
    memcpy(out->p + out->len + 4, send_head, sizeof(send_head));
    memcpy(out->p + out->len + 4 + sizeof(send_head), f + sizeof(msg_head), n);
    out->len += 4 + sizeof(send_head) + (size_t)n;
    return 0;
}

static int write_all(const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(1, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answer frames until stdin ends: 0 at EOF, 1 on a broken frame or an I/O
 * or allocation error. */
static int run(bool girder, buf *in, buf *out)
{
    for (;;) {
        size_t off = 0;
        ssize_t r;

        if (reserve(in, CHUNK) < 0) {
            return 1;
        }
        r = read(0, in->p + in->len, in->cap - in->len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r == 0 ? 0 : 1;
        }
        in->len += (size_t)r;
        while (in->len - off >= 4) {
            const uint8_t *h = in->p + off;
            uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];

            if (n == 0 || n > FRAME_MAX) {
                return 1;
            }
            if (in->len - off - 4 < n) {
                if (reserve(in, n + 4) < 0) {
                    return 1;
                }
                break;
            }
            if (answer(girder, in->p + off + 4, n, out) < 0) {
                return 1;
            }
            off += 4 + (size_t)n;
        }
        memmove(in->p, in->p + off, in->len - off);
        in->len -= off;
        if (out->len && write_all(out->p, out->len) < 0) {
            return 1;
        }
        out->len = 0;
    }
}

int main(int argc, char *argv[])
{
    buf in = {0}, out = {0};
    int status = run(argc > 1 && strcmp(argv[1], "girder") == 0, &in, &out);

    free(in.p);
    free(out.p);
    return status;
}
