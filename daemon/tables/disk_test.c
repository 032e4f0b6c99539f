/* SPDX-License-Identifier: Apache-2.0 */
/*
 * disk_test.c - Check tests for disk tables (wal.c, snapshot.c, table.c's
 * load path): log replay, kill -9 with fsync always, torn tail, corruption in
 * the middle, snapshot + log replay, disk full (RLIMIT_FSIZE), group commit,
 * interval and never policies, asynchronous completion (gr_wal_notify,
 * gr_tdefer). Each test works in its own scratch directory.
 */
#include "tables/tables.h"
#include "tables/test_util.h"
#include "tables/wal.h"

#include "proto/err.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/girder-tables-XXXXXX", tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    atomic_store(&test_clock, 1800000000000ull);
}

static void teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static gr_tables *engine(void)
{
    gr_tables_config cfg = {.data_dir = dir, .node_id = 7, .now_ms = test_now, .maint_ms = -1};
    gr_tables *ts;

    ck_assert_int_eq(gr_tables_new(&cfg, &ts), 0);
    return ts;
}

static gr_table *mkdisk(gr_tables *ts, const char *name, gr_table_opts o)
{
    gr_table *t;

    o.durability = GR_TABLE_DISK;
    ck_assert_int_eq(gr_tables_create(ts, name, &o), 0);
    ck_assert_int_eq(gr_tables_open(ts, name, &t), 0);
    return t;
}

static gr_table *open_t(gr_tables *ts, const char *name)
{
    gr_table *t;

    ck_assert_int_eq(gr_tables_open(ts, name, &t), 0);
    return t;
}

static int put_i(gr_table *t, long i, int64_t v)
{
    term k = T_fmt("k", i), tv = T_int(v);

    return gr_table_put(t, k.b, k.n, tv.b, tv.n, NULL, NULL);
}

static int64_t get_i(gr_table *t, long i)
{
    term k = T_fmt("k", i);
    gr_tbuf b = {0};
    int r = gr_table_get(t, k.b, k.n, &b, NULL);
    int64_t v = r == 0 ? T_get_int(b.p, b.len) : r;

    gr_tbuf_free(&b);
    return v;
}

static char *path_of(const char *table, const char *file)
{
    static char p[512];

    snprintf(p, sizeof(p), "%s/tables/%s/%s", dir, table, file);
    return p;
}

static off_t fsize(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 ? st.st_size : -1;
}

static int count_files(const char *table, const char *prefix)
{
    char p[512];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(p, sizeof(p), "%s/tables/%s", dir, table);
    if (!(d = opendir(p))) {
        return -1;
    }
    while ((de = readdir(d))) {
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    }
    closedir(d);
    return n;
}

#define SEG0 "wal.0000000000000000"

START_TEST(test_replay)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "r", (gr_table_opts){.kind = GR_TABLE_ORDERED_SET});
    gr_tput ttl = {.flags = GR_TPUT_TTL, .ttl_ms = 1000};
    term c = T_str("ctr");
    gr_tmeta m, m2;
    gr_tbuf b = {0};
    int64_t v;

    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(put_i(t, i, i), 0);
    }
    for (int i = 0; i < 100; i += 2) {
        term k = T_fmt("k", i);

        ck_assert_int_eq(gr_table_del(t, k.b, k.n, 0), 0);
    }
    ck_assert_int_eq(put_i(t, 1, 1001), 0); /* overwrite */
    ck_assert_int_eq(gr_table_incr(t, c.b, c.n, 5, &v), 0);
    ck_assert_int_eq(gr_table_incr(t, c.b, c.n, -2, &v), 0);
    ck_assert_int_eq(gr_table_put(t, T_str("eph").b, 4, T_int(1).b, 1, &ttl, NULL), 0);
    ck_assert_int_eq(gr_table_get(t, T_fmt("k", 3).b, T_fmt("k", 3).n, &b, &m), 0);
    gr_table_close(t);
    gr_tables_free(ts);

    atomic_fetch_add(&test_clock, 5000); /* "eph" expires while the node is down */
    ts = engine();
    t = open_t(ts, "r");
    ck_assert_uint_eq(gr_table_count(t), 51);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(get_i(t, i), i % 2 ? (i == 1 ? 1001 : i) : GR_ENOKEY);
    }
    ck_assert_int_eq(gr_table_get(t, T_fmt("k", 3).b, T_fmt("k", 3).n, &b, &m2), 0);
    ck_assert_uint_eq(m2.version, m.version); /* versions survive */
    ck_assert_uint_eq(m2.origin, 7);
    ck_assert_int_eq(gr_table_incr(t, c.b, c.n, 1, &v), 0);
    ck_assert_int_eq(v, 4);
    /* the clock continues after the versions it loaded */
    ck_assert_int_eq(gr_table_put(t, T_fmt("k", 3).b, T_fmt("k", 3).n, T_int(3).b, 1, NULL, &m2),
                     0);
    ck_assert_uint_gt(m2.version, m.version);
    gr_tbuf_free(&b);
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

START_TEST(test_torn_tail)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "t", (gr_table_opts){0});
    off_t good;
    int fd;

    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(put_i(t, i, i), 0);
    }
    gr_table_close(t);
    gr_tables_free(ts);
    good = fsize(path_of("t", SEG0));
    /* a record header promising 100 bytes, then only 10 of them */
    fd = open(path_of("t", SEG0), O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd,
                           "\x64\x00\x00\x00\x12\x34\x56\x78"
                           "0123456789",
                           18),
                     18);
    close(fd);
    ts = engine();
    t = open_t(ts, "t");
    ck_assert_uint_eq(gr_table_count(t), 50);
    ck_assert_int_eq(fsize(path_of("t", SEG0)), good); /* truncated */
    ck_assert_int_eq(put_i(t, 50, 50), 0);
    gr_table_close(t);
    gr_tables_free(ts);

    /* last record complete in length but with a bad checksum: torn too */
    {
        off_t sz = fsize(path_of("t", SEG0));
        uint8_t x;

        fd = open(path_of("t", SEG0), O_RDWR);
        ck_assert_int_eq(pread(fd, &x, 1, sz - 1), 1);
        x ^= 0xff;
        ck_assert_int_eq(pwrite(fd, &x, 1, sz - 1), 1);
        close(fd);
    }
    ts = engine();
    t = open_t(ts, "t");
    ck_assert_uint_eq(gr_table_count(t), 50); /* the damaged last write is dropped */
    ck_assert_int_eq(get_i(t, 50), GR_ENOKEY);
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

START_TEST(test_corrupt_middle)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "bad", (gr_table_opts){0}), *t2 = mkdisk(ts, "ok", (gr_table_opts){0});
    gr_table_info info;
    off_t sz;
    uint8_t x;
    int fd;

    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(put_i(t, i, i), 0);
        ck_assert_int_eq(put_i(t2, i, i), 0);
    }
    gr_table_close(t);
    gr_table_close(t2);
    gr_tables_free(ts);
    sz = fsize(path_of("bad", SEG0));
    fd = open(path_of("bad", SEG0), O_RDWR);
    ck_assert_int_eq(pread(fd, &x, 1, sz / 2), 1);
    x ^= 0x55;
    ck_assert_int_eq(pwrite(fd, &x, 1, sz / 2), 1);
    close(fd);

    ts = engine(); /* the engine starts; only that table is refused */
    ck_assert_int_eq(gr_tables_open(ts, "bad", &t), GR_ECORRUPT);
    ck_assert_int_eq(gr_tables_info(ts, "bad", &info), 0);
    ck_assert_int_eq(info.load_error, GR_ECORRUPT);
    ck_assert_int_eq(fsize(path_of("bad", SEG0)), sz); /* nothing cut away */
    t2 = open_t(ts, "ok");
    ck_assert_uint_eq(gr_table_count(t2), 50);
    gr_table_close(t2);
    ck_assert_int_eq(gr_tables_drop(ts, "bad"), 0);
    ck_assert_int_eq(gr_tables_open(ts, "bad", &t), GR_ENOTABLE);
    gr_tables_free(ts);
}
END_TEST

START_TEST(test_snapshot_and_log)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "s", (gr_table_opts){.shards = 4});
    gr_table_info info;

    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(put_i(t, i, i), 0);
    }
    ck_assert_int_eq(gr_table_snapshot(t), 0);
    ck_assert_int_eq(count_files("s", "wal."), 1); /* the covered segment is gone */
    ck_assert_int_eq(fsize(path_of("s", SEG0)), -1);
    for (int i = 0; i < 50; i++) {
        term k = T_fmt("k", i);

        ck_assert_int_eq(gr_table_del(t, k.b, k.n, 0), 0); /* deletes of snapshot keys */
    }
    for (int i = 150; i < 250; i++) {
        ck_assert_int_eq(put_i(t, i, -i), 0);
    }
    gr_table_info_get(t, &info);
    ck_assert_uint_eq(info.snapshots, 1);
    gr_table_close(t);
    gr_tables_free(ts);

    ts = engine();
    t = open_t(ts, "s");
    ck_assert_uint_eq(gr_table_count(t), 200);
    for (int i = 0; i < 250; i++) {
        ck_assert_int_eq(get_i(t, i), i < 50 ? GR_ENOKEY : i < 150 ? i : -i);
    }
    /* a second snapshot, then reload from the snapshot alone */
    ck_assert_int_eq(gr_table_snapshot(t), 0);
    gr_table_close(t);
    gr_tables_free(ts);
    ts = engine();
    t = open_t(ts, "s");
    ck_assert_uint_eq(gr_table_count(t), 200);
    ck_assert_int_eq(get_i(t, 200), -200);
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

/* A snapshot larger than one step of copying (1,024 entries per lock hold),
 * for both kinds: every entry survives, none twice. */
START_TEST(test_snapshot_steps)
{
    gr_tables *ts = engine();
    gr_table *a = mkdisk(ts, "s1", (gr_table_opts){.shards = 1});
    gr_table *o = mkdisk(ts, "o1", (gr_table_opts){.kind = GR_TABLE_ORDERED_SET});

    for (int i = 0; i < 3000; i++) {
        ck_assert_int_eq(put_i(a, i, i), 0);
        ck_assert_int_eq(put_i(o, i, -i), 0);
    }
    ck_assert_int_eq(gr_table_snapshot(a), 0);
    ck_assert_int_eq(gr_table_snapshot(o), 0);
    gr_table_close(a);
    gr_table_close(o);
    gr_tables_free(ts);
    ck_assert_int_eq(count_files("s1", "wal."), 1);
    ts = engine();
    a = open_t(ts, "s1");
    o = open_t(ts, "o1");
    ck_assert_uint_eq(gr_table_count(a), 3000);
    ck_assert_uint_eq(gr_table_count(o), 3000);
    for (int i = 0; i < 3000; i++) {
        ck_assert_int_eq(get_i(a, i), i);
        ck_assert_int_eq(get_i(o, i), -i);
    }
    gr_table_close(a);
    gr_table_close(o);
    gr_tables_free(ts);
}
END_TEST

START_TEST(test_snapshot_auto)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "a", (gr_table_opts){.snapshot_bytes = 4096});
    gr_table_info info;

    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(put_i(t, i % 100, i), 0);
    }
    gr_table_info_get(t, &info);
    ck_assert_uint_gt(info.snapshots, 5);
    ck_assert_uint_lt(info.wal_bytes, 4096 + 100);
    gr_table_close(t);
    gr_tables_free(ts);
    ts = engine();
    t = open_t(ts, "a");
    ck_assert_uint_eq(gr_table_count(t), 100);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(get_i(t, i), 900 + i);
    }
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

/* Disk full: the log may not grow past 64 KiB (RLIMIT_FSIZE; SIGXFSZ ignored,
 * so write() fails with EFBIG). Check runs each test in a forked child, so the
 * limit stays in this test. */
START_TEST(test_disk_full)
{
    struct rlimit rl, old;
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "f", (gr_table_opts){0});
    static char val[1024 + 3];
    long acked = 0;
    int r = 0;

    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    rl = old;
    rl.rlim_cur = 64 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    val[0] = (char)0xc5; /* bin16 of 1024 bytes */
    val[1] = 0x04;
    val[2] = 0x00;
    for (long i = 0; i < 1000; i++) {
        term k = T_fmt("k", i);

        if ((r = gr_table_put(t, k.b, k.n, val, sizeof(val), NULL, NULL)) < 0) {
            break;
        }
        acked++;
    }
    ck_assert_int_eq(r, -EFBIG);
    ck_assert_int_gt(acked, 30);
    ck_assert_int_le(fsize(path_of("f", SEG0)), 64 * 1024);
    /* a snapshot cannot be written either: it fails, the old state stays */
    ck_assert_int_lt(gr_table_snapshot(t), 0);
    ck_assert_int_eq(fsize(path_of("f", "snap.tmp")), -1);
    gr_table_close(t);
    gr_tables_free(ts);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

    ts = engine();
    t = open_t(ts, "f");
    for (long i = 0; i < acked; i++) {
        term k = T_fmt("k", i);
        gr_tbuf b = {0};

        ck_assert_int_eq(gr_table_get(t, k.b, k.n, &b, NULL), 0);
        ck_assert_uint_eq(b.len, sizeof(val));
        gr_tbuf_free(&b);
    }
    ck_assert_int_eq(get_i(t, acked), GR_ENOKEY); /* the failed write is not there */
    ck_assert_int_eq(put_i(t, 5000, 1), 0);       /* space again: writes work */
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

/* kill -9 while a child writes with fsync always: every write it reported as
 * acknowledged (through a pipe, after gr_table_put returned) is there. */
START_TEST(test_kill9_always)
{
    int pfd[2];
    pid_t pid;
    long last = -1, v;
    gr_tables *ts;
    gr_table *t;

    ts = engine();
    t = mkdisk(ts, "k9", (gr_table_opts){0});
    gr_table_close(t);
    gr_tables_free(ts);
    ck_assert_int_eq(pipe(pfd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        ts = engine();
        t = open_t(ts, "k9");
        for (long i = 0;; i++) {
            if (put_i(t, i, i) != 0 || write(pfd[1], &i, sizeof(i)) != sizeof(i)) {
                _exit(1);
            }
        }
    }
    close(pfd[1]);
    while (read(pfd[0], &v, sizeof(v)) == sizeof(v)) {
        last = v;
        if (v == 300) {
            kill(pid, SIGKILL);
        }
    }
    waitpid(pid, NULL, 0);
    close(pfd[0]);
    ck_assert_int_ge(last, 300);
    ts = engine();
    t = open_t(ts, "k9");
    for (long i = 0; i <= last; i++) {
        ck_assert_int_eq(get_i(t, i), i);
    }
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

typedef struct gc_arg {
    gr_table *t;
    int id;
} gc_arg;

static void *gc_writer(void *arg)
{
    gc_arg *a = arg;

    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(put_i(a->t, a->id * 1000 + i, i), 0);
    }
    return NULL;
}

START_TEST(test_group_commit_threads)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "g", (gr_table_opts){});
    gr_table_info info;
    pthread_t th[8];
    gc_arg a[8];

    for (int i = 0; i < 8; i++) {
        a[i] = (gc_arg){t, i};
        pthread_create(&th[i], NULL, gc_writer, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
    }
    gr_table_info_get(t, &info);
    ck_assert_uint_eq(info.wal_records, 1600);
    ck_assert_uint_le(info.fsyncs, 1600);
    gr_table_close(t);
    gr_tables_free(ts);
    ts = engine();
    t = open_t(ts, "g");
    ck_assert_uint_eq(gr_table_count(t), 1600);
    gr_table_close(t);
    gr_tables_free(ts);
}
END_TEST

START_TEST(test_interval_and_never)
{
    gr_tables *ts = engine();
    gr_table *ti =
        mkdisk(ts, "i", (gr_table_opts){.fsync = GR_FSYNC_INTERVAL, .interval_ms = 60000});
    gr_table *tn = mkdisk(ts, "n", (gr_table_opts){.fsync = GR_FSYNC_NEVER});

    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(put_i(ti, i, i), 0);
        ck_assert_int_eq(put_i(tn, i, i), 0);
    }
    /* buffered: nothing written yet (the interval is a minute) */
    ck_assert_int_eq(fsize(path_of("i", SEG0)), 0);
    ck_assert_int_eq(gr_table_sync(ti), 0);
    ck_assert_int_gt(fsize(path_of("i", SEG0)), 0);
    gr_table_close(ti);
    gr_table_close(tn);
    gr_tables_free(ts); /* close flushes */
    ts = engine();
    ti = open_t(ts, "i");
    tn = open_t(ts, "n");
    ck_assert_uint_eq(gr_table_count(ti), 100);
    ck_assert_uint_eq(gr_table_count(tn), 100);
    gr_table_close(ti);
    gr_table_close(tn);
    gr_tables_free(ts);
}
END_TEST

START_TEST(test_drop_removes_files)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "d", (gr_table_opts){0});
    char p[512];
    struct stat st;

    ck_assert_int_eq(put_i(t, 1, 1), 0);
    gr_table_close(t);
    ck_assert_int_eq(gr_tables_drop(ts, "d"), 0);
    snprintf(p, sizeof(p), "%s/tables/d", dir);
    ck_assert_int_ne(stat(p, &st), 0);
    gr_tables_free(ts);
    ts = engine();
    ck_assert_int_eq(gr_tables_open(ts, "d", &t), GR_ENOTABLE);
    gr_tables_free(ts);
}
END_TEST

/* Wait (bounded, 20 s) until cond holds; polling is fine here: the event is
 * another thread's timer, the bound only catches a hang. */
#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        for (int w_ = 0; w_ < 20000 && !(cond); w_++) {                                            \
            nanosleep(&(struct timespec){0, 1000000}, NULL);                                       \
        }                                                                                          \
        ck_assert(cond);                                                                           \
    } while (0)

/* The background threads: the interval flusher writes and fsyncs on its own,
 * the maintenance thread snapshots a log that crossed its size and sweeps
 * expired entries. */
START_TEST(test_background_threads)
{
    gr_tables_config cfg = {.data_dir = dir, .node_id = 7, .now_ms = test_now, .maint_ms = 5};
    gr_tables *ts;
    gr_table *ti, *ts2;
    gr_table_info info;
    gr_tput ttl = {.flags = GR_TPUT_TTL, .ttl_ms = 10};

    ck_assert_int_eq(gr_tables_new(&cfg, &ts), 0);
    ti = mkdisk(ts, "iv", (gr_table_opts){.fsync = GR_FSYNC_INTERVAL, .interval_ms = 5});
    ts2 = mkdisk(ts, "sn", (gr_table_opts){.snapshot_bytes = 2048});
    ck_assert_int_eq(put_i(ti, 1, 1), 0);
    WAIT_UNTIL((gr_table_info_get(ti, &info), info.fsyncs >= 1)); /* counted after the fsync */
    ck_assert_int_gt(fsize(path_of("iv", SEG0)), 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(put_i(ts2, i, i), 0);
    }
    WAIT_UNTIL((gr_table_info_get(ts2, &info), info.snapshots >= 1));
    ck_assert_int_eq(gr_table_put(ts2, T_str("e").b, 2, T_int(1).b, 1, &ttl, NULL), 0);
    atomic_fetch_add(&test_clock, 1000);
    WAIT_UNTIL(gr_table_count(ts2) == 100);
    gr_table_close(ti);
    gr_table_close(ts2);
    gr_tables_free(ts);
    ts = engine();
    ts2 = open_t(ts, "sn");
    ck_assert_uint_eq(gr_table_count(ts2), 100);
    gr_table_close(ts2);
    gr_tables_free(ts);
}
END_TEST

/* ---- asynchronous completion (gr_wal_notify, gr_tdefer) ----------------------------------- */

#define NREC 64
#define RLEN 100

/* What the callbacks saw: a count per ticket and the durable size at the time. */
typedef struct acount {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls[4 * NREC]; /* per index */
    int err[4 * NREC];
    int total;
    const char *seg; /* the segment file, to check what is on disk */
    off_t size_at[4 * NREC];
} acount;

typedef struct aslot {
    acount *ac;
    int i;
} aslot;

static void acount_init(acount *ac, const char *seg)
{
    memset(ac, 0, sizeof(*ac));
    pthread_mutex_init(&ac->mu, NULL);
    pthread_cond_init(&ac->cv, NULL);
    ac->seg = seg;
}

static void acount_done(acount *ac)
{
    pthread_mutex_destroy(&ac->mu);
    pthread_cond_destroy(&ac->cv);
}

static void on_ticket(void *arg, int err)
{
    aslot *s = arg;
    acount *ac = s->ac;
    off_t sz = ac->seg ? fsize(ac->seg) : 0;

    pthread_mutex_lock(&ac->mu);
    ac->calls[s->i]++;
    ac->err[s->i] = err;
    ac->size_at[s->i] = sz;
    ac->total++;
    pthread_cond_broadcast(&ac->cv);
    pthread_mutex_unlock(&ac->mu);
}

static void acount_wait(acount *ac, int n)
{
    pthread_mutex_lock(&ac->mu);
    while (ac->total < n) {
        pthread_cond_wait(&ac->cv, &ac->mu);
    }
    pthread_mutex_unlock(&ac->mu);
}

static int count_rec(void *ud, const uint8_t *p, size_t n)
{
    (void)p;
    (void)n;
    (*(long *)ud)++;
    return 0;
}

/* Every ticket's callback runs exactly once, from the flusher (nobody blocks
 * in gr_wal_wait), after its record is on disk, and records become durable in
 * append order (a callback for record i finds records 0..i in the file).
 * A ticket of a batch already done calls back at once. */
START_TEST(test_wal_notify)
{
    static char seg[512];
    static aslot sl[NREC + 1];
    acount ac;
    uint8_t rec[RLEN];
    gr_wal *w;
    uint64_t fsyncs, records;
    gr_wal_batch *b;
    long n = 0;

    snprintf(seg, sizeof(seg), "%s/%s", dir, SEG0);
    acount_init(&ac, seg);
    ck_assert_int_eq(gr_wal_open(dir, 0, GR_FSYNC_ALWAYS, 0, &w), 0);
    memset(rec, 'x', sizeof(rec));
    for (int i = 0; i < NREC; i++) {
        sl[i] = (aslot){&ac, i};
        ck_assert_int_eq(gr_wal_append(w, rec, sizeof(rec), &b), 0);
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(gr_wal_notify(w, b, on_ticket, &sl[i]), 0);
        if (i % 7 == 0) {
            struct timespec ts = {0, 200000}; /* let some batches go in between */

            nanosleep(&ts, NULL);
        }
    }
    acount_wait(&ac, NREC);
    for (int i = 0; i < NREC; i++) {
        ck_assert_int_eq(ac.err[i], 0);
        ck_assert_int_ge(ac.size_at[i], (off_t)(i + 1) * (GR_WAL_HDR + RLEN));
    }
    /* already durable: at once, on this thread */
    ck_assert_int_eq(gr_wal_append(w, rec, sizeof(rec), &b), 0);
    ck_assert_int_eq(gr_wal_sync(w), 0);
    sl[NREC] = (aslot){&ac, NREC};
    ck_assert_int_eq(gr_wal_notify(w, b, on_ticket, &sl[NREC]), 0);
    ck_assert_int_eq(ac.calls[NREC], 1);
    /* a dropped ticket: its record is still written */
    ck_assert_int_eq(gr_wal_append(w, rec, sizeof(rec), &b), 0);
    gr_wal_drop(w, b);
    gr_wal_counters(w, &fsyncs, &records);
    ck_assert_uint_eq(records, NREC + 2);
    ck_assert_uint_le(fsyncs, NREC + 1);
    w = gr_wal_close(w);
    for (int i = 0; i <= NREC; i++) {
        ck_assert_int_eq(ac.calls[i], 1); /* exactly once, also after close */
    }
    ck_assert_int_eq(gr_wal_read(seg, false, count_rec, &n, NULL), 0);
    ck_assert_int_eq(n, NREC + 2);
    acount_done(&ac);
}
END_TEST

/* A failed write (RLIMIT_FSIZE: EFBIG) reaches every callback of its batch
 * with the -errno, each exactly once; the records acknowledged with 0 are
 * exactly those in the file (failed batches are cut back). */
START_TEST(test_wal_notify_error)
{
    static char seg[512];
    static aslot sl[4 * NREC];
    static uint8_t rec[1024];
    struct rlimit rl, old;
    acount ac;
    gr_wal *w;
    gr_wal_batch *b;
    long n = 0, ok = 0, failed = 0;

    snprintf(seg, sizeof(seg), "%s/%s", dir, SEG0);
    acount_init(&ac, NULL);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    rl = old;
    rl.rlim_cur = 32 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ck_assert_int_eq(gr_wal_open(dir, 0, GR_FSYNC_ALWAYS, 0, &w), 0);
    memset(rec, 'y', sizeof(rec));
    for (int i = 0; i < 4 * NREC; i++) {
        sl[i] = (aslot){&ac, i};
        ck_assert_int_eq(gr_wal_append(w, rec, sizeof(rec), &b), 0);
        ck_assert_int_eq(gr_wal_notify(w, b, on_ticket, &sl[i]), 0);
        if (i % 8 == 7) {
            acount_wait(&ac, i + 1); /* batches of at most 8 KiB: some fit */
        }
    }
    acount_wait(&ac, 4 * NREC);
    w = gr_wal_close(w);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    for (int i = 0; i < 4 * NREC; i++) {
        ck_assert_int_eq(ac.calls[i], 1);
        if (ac.err[i] == 0) {
            ok++;
        } else {
            ck_assert_int_eq(ac.err[i], -EFBIG);
            failed++;
        }
    }
    ck_assert_int_gt(ok, 0);
    ck_assert_int_gt(failed, 0);
    ck_assert_int_eq(gr_wal_read(seg, false, count_rec, &n, NULL), 0);
    ck_assert_int_eq(n, ok);
    acount_done(&ac);
}
END_TEST

/* Table writes with a gr_tdefer do not wait: one notify answers for all of
 * them, after they are on disk, sharing fsyncs; the records replay. */
START_TEST(test_tdefer)
{
    gr_tables *ts = engine();
    gr_table *t = mkdisk(ts, "d", (gr_table_opts){.fsync = GR_FSYNC_ALWAYS});
    gr_tdefer d = {0};
    gr_table_info info;
    acount ac;
    aslot sl = {&ac, 0};
    term m = T_str("m");

    acount_init(&ac, NULL);
    for (long i = 0; i < 200; i++) {
        term k = T_fmt("k", i), v = T_int(i);

        ck_assert_int_eq(gr_table_put_d(&d, t, k.b, k.n, v.b, v.n, NULL, NULL), 0);
    }
    ck_assert(gr_tdefer_pending(&d));
    {
        const void *mp = m.b;
        size_t ml = m.n;
        term sk = T_str("set");

        ck_assert_int_eq(gr_table_set_add_d(&d, t, sk.b, sk.n, 1, &mp, &ml, NULL), 0);
    }
    gr_tdefer_notify(&d, on_ticket, &sl);
    ck_assert(!gr_tdefer_pending(&d));
    acount_wait(&ac, 1);
    ck_assert_int_eq(ac.calls[0], 1);
    ck_assert_int_eq(ac.err[0], 0);
    gr_table_info_get(t, &info);
    ck_assert_uint_eq(info.wal_records, 201);
    ck_assert_uint_lt(info.fsyncs, 201);
    /* nothing pending: at once */
    gr_tdefer_notify(&d, on_ticket, &sl);
    ck_assert_int_eq(ac.calls[0], 2);
    /* tickets given back unwaited */
    ck_assert_int_eq(put_i(t, 9999, 1), 0);
    {
        term k = T_fmt("k", 10000), v = T_int(2);

        ck_assert_int_eq(gr_table_put_d(&d, t, k.b, k.n, v.b, v.n, NULL, NULL), 0);
    }
    gr_tdefer_free(&d);
    gr_table_close(t);
    gr_tables_free(ts);
    ts = engine();
    t = open_t(ts, "d");
    ck_assert_uint_eq(gr_table_count(t), 203);
    ck_assert_int_eq(get_i(t, 199), 199);
    gr_table_close(t);
    gr_tables_free(ts);
    acount_done(&ac);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tables_disk");
    TCase *tc = tcase_create("disk");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replay);
    tcase_add_test(tc, test_torn_tail);
    tcase_add_test(tc, test_corrupt_middle);
    tcase_add_test(tc, test_snapshot_and_log);
    tcase_add_test(tc, test_snapshot_steps);
    tcase_add_test(tc, test_snapshot_auto);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_kill9_always);
    tcase_add_test(tc, test_group_commit_threads);
    tcase_add_test(tc, test_interval_and_never);
    tcase_add_test(tc, test_drop_removes_files);
    tcase_add_test(tc, test_background_threads);
    tcase_add_test(tc, test_wal_notify);
    tcase_add_test(tc, test_wal_notify_error);
    tcase_add_test(tc, test_tdefer);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
