/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshot.c - a disk table's snapshot file: DIR/snap.
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       8     magic "GRSNAP1\n"
 *   8       8     next_seg, little-endian: the first log segment to replay
 *   16      ...   records framed as in the log (wal.h); the last is an end
 *                 record: payload "END" + u64 count of entry records
 *
 * Written to DIR/snap.tmp, fsynced, renamed over DIR/snap, then DIR fsynced:
 * a crash leaves the old snapshot or the new one, never a mix. A snapshot
 * without its end record, or with any bad checksum, is corrupt (GR_ECORRUPT,
 * logged with the file and offset): snapshots are never torn by a crash.
 */
#include "tables/tables_int.h"
#include "tables/wal.h"

#include "proto/err.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "GRSNAP1\n"

typedef struct wctx {
    int fd;       /* snap.tmp */
    uint8_t *buf; /* write buffer */
    size_t len;   /* bytes buffered */
    size_t cap;   /* buffer size */
    uint64_t n;   /* entry records */
    int err;      /* first write error */
} wctx;

static int wflush(wctx *w)
{
    size_t off = 0;

    while (!w->err && off < w->len) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            w->err = n < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)n;
    }
    w->len = 0;
    return w->err;
}

static int wput(wctx *w, const void *p, size_t n)
{
    if (w->err) {
        return w->err;
    }
    if (w->cap - w->len < n && wflush(w) < 0) {
        return w->err;
    }
    if (n > w->cap) {
        ssize_t k = write(w->fd, p, n); /* huge record: straight through */

        if (k != (ssize_t)n) {
            w->err = k < 0 ? -errno : -EIO;
        }
        return w->err;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

static int emit_rec(void *ectx, const void *payload, size_t len)
{
    wctx *w = ectx;
    uint8_t hdr[GR_WAL_HDR];
    uint32_t n = (uint32_t)len, crc = gr_crc32c(0, payload, len);

    for (int i = 0; i < 4; i++) {
        hdr[i] = (uint8_t)(n >> (8 * i));
        hdr[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    if (wput(w, hdr, sizeof(hdr)) < 0) {
        return w->err;
    }
    return wput(w, payload, len);
}

static int emit_entry(void *ectx, const void *payload, size_t len)
{
    ((wctx *)ectx)->n++;
    return emit_rec(ectx, payload, len);
}

int gr_snap_write(const char *dir, uint64_t next_seg,
                  int (*each)(void *ud, gr_snap_emit_fn emit, void *ectx), void *ud)
{
    char *tmp = NULL, *fin = NULL;
    wctx w = {.fd = -1, .cap = 1 << 16};
    uint8_t head[16], end[11];
    int r, dfd;

    if (asprintf(&tmp, "%s/snap.tmp", dir) < 0 || asprintf(&fin, "%s/snap", dir) < 0) {
        free(tmp);
        return -ENOMEM;
    }
    if (!(w.buf = malloc(w.cap))) {
        r = -ENOMEM;
        goto out;
    }
    if ((w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        r = -errno;
        goto out;
    }
    memcpy(head, MAGIC, 8);
    for (int i = 0; i < 8; i++) {
        head[8 + i] = (uint8_t)(next_seg >> (8 * i));
    }
    wput(&w, head, sizeof(head));
    if ((r = each(ud, emit_entry, &w)) < 0) {
        goto out;
    }
    memcpy(end, "END", 3);
    for (int i = 0; i < 8; i++) {
        end[3 + i] = (uint8_t)(w.n >> (8 * i));
    }
    emit_rec(&w, end, sizeof(end));
    if ((r = wflush(&w)) < 0) {
        goto out;
    }
    if (fsync(w.fd) < 0 || close(w.fd) < 0) {
        r = -errno;
        w.fd = -1;
        goto out;
    }
    w.fd = -1;
    if (rename(tmp, fin) < 0) {
        r = -errno;
        goto out;
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        if (fsync(dfd) < 0) {
            r = -errno;
        }
        close(dfd);
    }
out:
    if (w.fd >= 0) {
        close(w.fd);
    }
    if (r < 0) {
        unlink(tmp);
        gr_error("tables", "snapshot %s failed: %s (previous snapshot and log kept)", fin,
                 gr_strerror(r));
    }
    free(w.buf);
    free(tmp);
    free(fin);
    return r;
}

int gr_snap_read(const char *dir, uint64_t *ret_next_seg,
                 int (*fn)(void *ud, const uint8_t *p, size_t n), void *ud)
{
    char *path = NULL;
    uint8_t *buf = NULL;
    size_t size, off = 16;
    uint64_t seg = 0, n = 0;
    struct stat st;
    int fd, r = 0;

    if (asprintf(&path, "%s/snap", dir) < 0) {
        return -ENOMEM;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        r = -errno;
        free(path);
        return r;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    size = (size_t)st.st_size;
    if (!(buf = malloc(size ? size : 1))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t got = 0; got < size;) {
        ssize_t k = pread(fd, buf + got, size - got, (off_t)got);

        if (k <= 0) {
            r = k < 0 ? -errno : -EIO;
            goto out;
        }
        got += (size_t)k;
    }
    if (size < 16 || memcmp(buf, MAGIC, 8) != 0) {
        off = 0;
        goto corrupt;
    }
    for (int i = 0; i < 8; i++) {
        seg |= (uint64_t)buf[8 + i] << (8 * i);
    }
    while (off + GR_WAL_HDR <= size) {
        uint32_t len = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                       (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        uint32_t crc = (uint32_t)buf[off + 4] | (uint32_t)buf[off + 5] << 8 |
                       (uint32_t)buf[off + 6] << 16 | (uint32_t)buf[off + 7] << 24;
        const uint8_t *p = buf + off + GR_WAL_HDR;

        if (len == 0 || len > size - off - GR_WAL_HDR || gr_crc32c(0, p, len) != crc) {
            goto corrupt;
        }
        if (len == 11 && memcmp(p, "END", 3) == 0) {
            uint64_t want = 0;

            for (int i = 0; i < 8; i++) {
                want |= (uint64_t)p[3 + i] << (8 * i);
            }
            if (want != n || off + GR_WAL_HDR + len != size) {
                goto corrupt;
            }
            *ret_next_seg = seg;
            goto out;
        }
        if ((r = fn(ud, p, len)) < 0) {
            goto out;
        }
        n++;
        off += GR_WAL_HDR + len;
    }
corrupt:
    gr_error("tables", "%s: corrupt snapshot at offset %zu; table not loaded", path, off);
    r = GR_ECORRUPT;
out:
    close(fd);
    free(buf);
    free(path);
    return r;
}
