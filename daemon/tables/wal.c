/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal.c - a table's write-ahead log (wal.h): buffered appends, group commit,
 * the interval/never flusher thread, segment rotation, and reading a segment
 * back with torn-tail repair and corruption detection.
 *
 * Design notes:
 * - Appends only copy into the open batch; I/O happens outside the caller's
 *   table lock. With `always`, each writer waits for its batch: the first
 *   waiter that finds no flush running becomes the leader, takes the open
 *   batch (its own and every record appended meanwhile), writes it with one
 *   pwrite and one fdatasync, then wakes everyone. Writers arriving during that
 *   fsync fill the next batch, whose leader goes next: N concurrent writers
 *   share about N/2..N records per fsync.
 * - The file only ever holds complete batches: a failed or short write is cut
 *   back with ftruncate to the last complete batch, so a full disk never leaves
 *   a half record behind (a crash during the write still can; reading repairs
 *   that as a torn tail).
 * - Async waiters (gr_wal_notify, ALWAYS): a callback registered on the open
 *   batch wakes the log's flusher thread, which leads the flush like a blocking
 *   waiter would; whichever thread completes a batch runs its callbacks after
 *   releasing mu (their refs are dropped first, so a blocking waiter may free
 *   the batch meanwhile). One flush at a time takes the whole open batch, so
 *   batches complete in append order; a failure only fails its own batch.
 * - interval/never: a thread per log flushes every interval (and fsyncs for
 *   interval). A failed background flush makes appends fail with its error
 *   until the next interval's flush (the writer hears about a full disk; the
 *   records of the failed batch are lost, within the interval's promise).
 */
#include "tables/wal.h"

#include "tables/tables_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- CRC32C ----------------------------------------------------------------------------- */

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;

    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    crc = (uint32_t)c;
    for (; n; n--) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
    }
    return crc;
}
#endif

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
        }
    }
    return crc;
}

uint32_t gr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) {
        return ~crc_hw(crc, buf, len);
    }
#endif
    return ~crc_sw(crc, buf, len);
}

/* ---- the log ---------------------------------------------------------------------------- */

/* An asynchronous waiter of a batch (gr_wal_notify). */
typedef struct waiter {
    gr_wal_notify_fn fn; /* called once, mu not held */
    void *arg;
    struct waiter *next; /* the batch's waiters */
} waiter;

struct gr_wal_batch {
    uint8_t *buf;    /* framed records */
    size_t len;      /* bytes used */
    size_t cap;      /* bytes allocated */
    int refs;        /* tickets not yet consumed (ALWAYS) */
    bool done;       /* written (or failed) */
    int err;         /* result once done */
    waiter *waiters; /* gr_wal_notify callbacks to run when done (each holds a ref) */
};

struct gr_wal {
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv;     /* a batch finished / flusher wake-up */
    char *dir;             /* directory of the segments */
    uint64_t seg;          /* current segment */
    int fd;                /* current segment, O_WRONLY */
    gr_table_fsync policy; /* when to fsync */
    uint32_t interval_ms;  /* flusher period */
    gr_wal_batch *cur;     /* open batch receiving appends, or NULL */
    bool flushing;         /* a leader is writing a batch (mu released) */
    uint64_t size;         /* bytes of complete batches in the segment */
    int sticky;            /* interval/never: last background flush error */
    pthread_t thr;         /* flusher (all policies; ALWAYS: flushes for async waiters) */
    bool thr_on;           /* thr was started */
    bool stop;             /* flusher: quit */
    int nasync;            /* ALWAYS: async waiters on the open batch (flusher: go) */
    uint64_t fsyncs;       /* counters */
    uint64_t records;
};

static char *seg_path(const char *dir, uint64_t seg)
{
    char *p;

    if (asprintf(&p, "%s/wal.%016" PRIx64, dir, seg) < 0) {
        return NULL;
    }
    return p;
}

static gr_wal_batch *batch_free(gr_wal_batch *b)
{
    if (b) {
        free(b->buf);
        free(b);
    }
    return NULL;
}

/* A ticket of b is consumed (wait, notify, drop; mu held): the last one of a
 * batch that is done frees it (one not done yet is freed by its flush). */
static void batch_unref_locked(gr_wal_batch *b)
{
    if (--b->refs == 0 && b->done) {
        batch_free(b);
    }
}

/* fsync a directory, so that a file just created in it survives a crash
 * (fdatasync of the file alone does not persist its name). 0 or -errno. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) < 0) {
        r = -errno;
    }
    close(fd);
    return r;
}

/* Write buf at the end of the segment and (if sync) fdatasync it. On any
 * failure cut the file back to `size`. Caller is the leader (flushing set),
 * mu released. */
static int write_batch(gr_wal *w, uint64_t size, const uint8_t *buf, size_t len, bool sync)
{
    size_t off = 0;
    int r = 0;

    while (off < len) {
        ssize_t n = pwrite(w->fd, buf + off, len - off, (off_t)(size + off));

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            r = -errno;
            break;
        }
        if (n == 0) {
            r = -EIO;
            break;
        }
        off += (size_t)n;
    }
    if (r == 0 && sync && fdatasync(w->fd) < 0) {
        r = -errno;
    }
    if (r < 0) {
        if (ftruncate(w->fd, (off_t)size) < 0) {
            gr_error("tables", "log %s/wal.%016" PRIx64 ": cannot cut back a failed write: %s",
                     w->dir, w->seg, strerror(errno));
        }
        gr_error("tables", "log %s/wal.%016" PRIx64 ": write of %zu bytes failed: %s", w->dir,
                 w->seg, len, gr_strerror(r));
    }
    return r;
}

/* Flush the open batch as leader. Called and returns with mu held; waits for a
 * running flush first. Returns the batch result (0 if nothing to write). */
static int flush_locked(gr_wal *w, bool sync)
{
    gr_wal_batch *b;
    int r;

    while (w->flushing) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    b = w->cur;
    if (!b || b->len == 0) {
        return 0;
    }
    w->cur = NULL;
    w->nasync = 0; /* they wait on b now, which this flush completes */
    w->flushing = true;
    pthread_mutex_unlock(&w->mu);
    r = write_batch(w, w->size, b->buf, b->len, sync);
    pthread_mutex_lock(&w->mu);
    if (r == 0) {
        w->size += b->len;
        if (sync) {
            w->fsyncs++;
        }
    }
    b->done = true;
    b->err = r;
    w->flushing = false;
    pthread_cond_broadcast(&w->cv);
    if (b->waiters) {
        waiter *wl = b->waiters;

        b->waiters = NULL;
        /* every waiter's ref goes now: b may be freed by a blocking waiter
         * once mu is released, so run the callbacks from the list alone */
        for (waiter *x = wl; x; x = x->next) {
            b->refs--;
        }
        if (b->refs == 0) {
            batch_free(b);
        }
        pthread_mutex_unlock(&w->mu);
        while (wl) {
            waiter *x = wl;

            wl = x->next;
            x->fn(x->arg, r);
            free(x);
        }
        pthread_mutex_lock(&w->mu);
        return r;
    }
    if (b->refs == 0) {
        batch_free(b);
    }
    return r;
}

/* ALWAYS: flush whenever the open batch has an async waiter, one batch after
 * the other (appends meanwhile fill the next: group commit). */
static void flusher_always(gr_wal *w)
{
    while (!w->stop) {
        if (w->nasync > 0 && !w->flushing) {
            flush_locked(w, true);
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
    }
}

static void *flusher(void *arg)
{
    gr_wal *w = arg;

    pthread_mutex_lock(&w->mu);
    if (w->policy == GR_FSYNC_ALWAYS) {
        flusher_always(w);
    }
    while (!w->stop) {
        struct timespec ts;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += w->interval_ms / 1000;
        ts.tv_nsec += (long)(w->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (w->stop) {
            break;
        }
        w->sticky = 0; /* one interval of refusals per failure, then try again */
        r = flush_locked(w, w->policy == GR_FSYNC_INTERVAL);
        if (r < 0) {
            w->sticky = r;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int gr_wal_open(const char *dir, uint64_t seg, gr_table_fsync policy, uint32_t interval_ms,
                gr_wal **ret_wal)
{
    gr_wal *w;
    char *path;
    struct stat st;
    int r;

    if (!(w = calloc(1, sizeof(*w))) || !(w->dir = strdup(dir))) {
        free(w);
        return -ENOMEM;
    }
    w->fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    {
        pthread_condattr_t ca; /* timed waits on the monotonic clock: immune to clock steps */

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    w->seg = seg;
    w->policy = policy;
    w->interval_ms = interval_ms ? interval_ms : GR_TABLE_INTERVAL_DEFAULT_MS;
    if (!(path = seg_path(dir, seg))) {
        r = -ENOMEM;
        goto fail;
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    if (w->fd < 0 || fstat(w->fd, &st) < 0) {
        r = -errno;
        goto fail;
    }
    w->size = (uint64_t)st.st_size;
    if ((r = sync_dir(dir)) < 0) { /* the segment's name, if we just made it */
        goto fail;
    }
    if ((r = -pthread_create(&w->thr, NULL, flusher, w)) < 0) {
        goto fail;
    }
    w->thr_on = true;
    *ret_wal = w;
    return 0;
fail:
    gr_wal_close(w);
    return r;
}

gr_wal *gr_wal_close(gr_wal *w)
{
    if (!w) {
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->thr_on) {
        pthread_join(w->thr, NULL);
    }
    if (w->fd >= 0) {
        pthread_mutex_lock(&w->mu);
        flush_locked(w, w->policy != GR_FSYNC_NEVER);
        pthread_mutex_unlock(&w->mu);
        close(w->fd);
    }
    batch_free(w->cur);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    free(w);
    return NULL;
}

int gr_wal_append(gr_wal *w, const void *payload, size_t len, gr_wal_batch **ret_batch)
{
    gr_wal_batch *b;
    uint8_t hdr[GR_WAL_HDR];
    uint32_t n = (uint32_t)len, crc;
    int r = 0;

    if (len == 0 || len > GR_WAL_REC_MAX) {
        return GR_ETOOBIG;
    }
    crc = gr_crc32c(0, payload, len);
    for (int i = 0; i < 4; i++) {
        hdr[i] = (uint8_t)(n >> (8 * i));
        hdr[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    pthread_mutex_lock(&w->mu);
    if (w->sticky) {
        r = w->sticky;
        goto out;
    }
    if (!(b = w->cur)) {
        if (!(b = calloc(1, sizeof(*b)))) {
            r = -ENOMEM;
            goto out;
        }
        w->cur = b;
    }
    if (b->cap - b->len < GR_WAL_HDR + len) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *nb;

        while (cap - b->len < GR_WAL_HDR + len) {
            cap *= 2;
        }
        if (!(nb = realloc(b->buf, cap))) {
            r = -ENOMEM;
            goto out;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, hdr, GR_WAL_HDR);
    memcpy(b->buf + b->len + GR_WAL_HDR, payload, len);
    b->len += GR_WAL_HDR + len;
    w->records++;
    if (w->policy == GR_FSYNC_ALWAYS) {
        b->refs++;
        *ret_batch = b;
    } else {
        *ret_batch = NULL;
    }
out:
    pthread_mutex_unlock(&w->mu);
    return r;
}

int gr_wal_wait(gr_wal *w, gr_wal_batch *b)
{
    int r;

    if (!b) {
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    while (!b->done) {
        if (!w->flushing) {
            flush_locked(w, true); /* b is the open batch: flushes run in order */
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
    }
    r = b->err;
    batch_unref_locked(b);
    pthread_mutex_unlock(&w->mu);
    return r;
}

int gr_wal_notify(gr_wal *w, gr_wal_batch *b, gr_wal_notify_fn fn, void *arg)
{
    waiter *x;
    int r;

    if (!b) {
        fn(arg, 0);
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    if (b->done) {
        r = b->err;
        batch_unref_locked(b);
        pthread_mutex_unlock(&w->mu);
        fn(arg, r);
        return 0;
    }
    if (!(x = malloc(sizeof(*x)))) {
        pthread_mutex_unlock(&w->mu);
        return -ENOMEM;
    }
    x->fn = fn;
    x->arg = arg;
    x->next = b->waiters;
    b->waiters = x;
    if (b == w->cur && w->nasync++ == 0) {
        pthread_cond_broadcast(&w->cv); /* the flusher (and blocked waiters: harmless) */
    }
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void gr_wal_drop(gr_wal *w, gr_wal_batch *b)
{
    if (!b) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    batch_unref_locked(b);
    pthread_mutex_unlock(&w->mu);
}

int gr_wal_sync(gr_wal *w)
{
    int r;

    pthread_mutex_lock(&w->mu);
    r = flush_locked(w, true);
    pthread_mutex_unlock(&w->mu);
    return r;
}

int gr_wal_rotate(gr_wal *w, uint64_t *ret_seg)
{
    char *path;
    int fd, r;

    pthread_mutex_lock(&w->mu);
    if ((r = flush_locked(w, true)) < 0) {
        goto out;
    }
    while (w->flushing) { /* flush_locked may have had nothing to do */
        pthread_cond_wait(&w->cv, &w->mu);
    }
    if (!(path = seg_path(w->dir, w->seg + 1))) {
        r = -ENOMEM;
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    if ((r = sync_dir(w->dir)) < 0) {
        close(fd);
        goto out;
    }
    close(w->fd);
    w->fd = fd;
    w->seg++;
    w->size = 0;
    *ret_seg = w->seg;
out:
    pthread_mutex_unlock(&w->mu);
    return r;
}

uint64_t gr_wal_bytes(gr_wal *w)
{
    uint64_t n;

    pthread_mutex_lock(&w->mu);
    n = w->size + (w->cur ? w->cur->len : 0);
    pthread_mutex_unlock(&w->mu);
    return n;
}

void gr_wal_counters(gr_wal *w, uint64_t *ret_fsyncs, uint64_t *ret_records)
{
    pthread_mutex_lock(&w->mu);
    *ret_fsyncs = w->fsyncs;
    *ret_records = w->records;
    pthread_mutex_unlock(&w->mu);
}

/* ---- reading ---------------------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

int gr_wal_read(const char *path, bool truncate, int (*fn)(void *ud, const uint8_t *p, size_t n),
                void *ud, uint64_t *ret_bad_off)
{
    uint8_t *buf = NULL;
    size_t size, off = 0;
    struct stat st;
    int fd, r = 0;

    if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
        return -errno;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    size = (size_t)st.st_size;
    if (size && !(buf = malloc(size))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t got = 0; got < size;) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);

        if (n <= 0) {
            r = n < 0 ? -errno : -EIO;
            goto out;
        }
        got += (size_t)n;
    }
    while (off < size) {
        size_t rest = size - off;
        uint32_t n = rest >= GR_WAL_HDR ? gr_le_rd32(buf + off) : 0;
        bool torn;

        if (rest >= GR_WAL_HDR && n > 0 && n <= GR_WAL_REC_MAX && n <= rest - GR_WAL_HDR &&
            gr_crc32c(0, buf + off + GR_WAL_HDR, n) == gr_le_rd32(buf + off + 4)) {
            if ((r = fn(ud, buf + off + GR_WAL_HDR, n)) < 0) {
                goto out;
            }
            off += GR_WAL_HDR + n;
            continue;
        }
        /* A bad record: a torn tail if nothing valid can follow it. */
        torn = rest < GR_WAL_HDR || (n > 0 && n <= GR_WAL_REC_MAX && n >= rest - GR_WAL_HDR) ||
               all_zero(buf + off, rest);
        if (!torn) {
            gr_error("tables",
                     "%s: corrupt record at offset %zu (checksum or length); table not "
                     "loaded",
                     path, off);
            if (ret_bad_off) {
                *ret_bad_off = off;
            }
            r = GR_ECORRUPT;
            goto out;
        }
        gr_warn("tables", "%s: torn tail at offset %zu (%zu bytes)%s", path, off, rest,
                truncate ? ", truncated" : "");
        if (truncate && (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0)) {
            r = -errno;
        }
        break;
    }
out:
    free(buf);
    close(fd);
    return r;
}
