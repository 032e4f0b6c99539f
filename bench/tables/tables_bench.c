/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tables_bench.c - girder-bench-tables: ops/s of the table engine, the numbers
 * behind docs/tables.md "Concurrency" and "Durability".
 *
 *   girder-bench-tables [--keys N] [--ops N] [--dir DIR] [--writers N] [--only LAYOUT]
 *
 * For each layout (set with 16 shards, set with 1 shard = one table-wide
 * rwlock, ordered_set = one skiplist under a rwlock): preload N keys
 * ("key:%08d" strings, small int values), then time random gets and puts of
 * existing keys from 1 and from 2 threads (each thread --ops operations):
 * ops/s of wall time, ops per CPU second of the threads doing them
 * (`_per_cpu_s`) and of the whole process (`_per_proc_cpu_s`: the figure
 * bench/tables/tables.py sets beside the BEAM's CPU seconds).
 * Then memory per entry, and, with --dir, durable puts with fsync `always`
 * from --writers threads: puts/s and puts per fsync (group commit), and
 * the load of a disk table of --keys keys from its snapshot (an engine
 * started on the directory: the snapshot's entries arrive in hash order).
 * --only set16|set1|ordered runs that layout alone (bench/tables/tables.py
 * runs set16, the default layout, in each of its rounds).
 * Output: key=value lines on stdout.
 */
#include "tables/tables.h"

#include "proto/err.h"

#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct kbuf {
    uint8_t b[17]; /* "key:%08d" as a fixstr (+ NUL) */
    size_t n;
} kbuf;

typedef struct job {
    gr_table *t;      /* table */
    const kbuf *keys; /* encoded keys */
    uint32_t nkeys;   /* how many */
    uint64_t ops;     /* operations to do */
    int put;          /* puts instead of gets */
    uint64_t seed;    /* random state */
    uint64_t misses;  /* gets that found nothing (must stay 0) */
    uint64_t off;     /* key offset (durable writers: disjoint keys) */
    double cpu;       /* thread CPU seconds spent */
} job;

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double clock_s(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void *worker(void *arg)
{
    job *j = arg;
    double c0 = cpu_s();
    gr_tbuf b = {0};
    uint8_t val[1] = {0x2a};
    uint64_t x = j->seed;

    for (uint64_t i = 0; i < j->ops; i++) {
        const kbuf *k;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = &j->keys[(x + j->off) % j->nkeys];
        if (j->put) {
            if (gr_table_put(j->t, k->b, k->n, val, 1, NULL, NULL) < 0) {
                j->misses++;
            }
        } else if (gr_table_get(j->t, k->b, k->n, &b, NULL) < 0) {
            j->misses++;
        }
    }
    gr_tbuf_free(&b);
    j->cpu = cpu_s() - c0;
    return NULL;
}

/* Runs the job; returns ops/s of wall time, *ret_cpu ops per CPU second of
 * the worker threads (the rate a thread gets when it has a core to itself:
 * on a loaded machine the wall figure mostly measures the other load) and
 * *ret_pcpu ops per CPU second of the whole process (user + system of every
 * thread, CLOCK_PROCESS_CPUTIME_ID: what bench/tables/girder_tables.erl
 * reads for the BEAM from /proc/self/stat, so the two compare). */
static double run(gr_table *t, const kbuf *keys, uint32_t nkeys, uint64_t ops, int put, int threads,
                  double *ret_cpu, double *ret_pcpu)
{
    double cpu = 0, p0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    pthread_t th[64];
    job j[64];
    double t0, dt;
    uint64_t misses = 0;

    for (int i = 0; i < threads; i++) {
        j[i] = (job){t, keys, nkeys, ops, put, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1), 0, 0, 0};
    }
    t0 = now_s();
    for (int i = 0; i < threads; i++) {
        pthread_create(&th[i], NULL, worker, &j[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        misses += j[i].misses;
        cpu += j[i].cpu;
    }
    dt = now_s() - t0;
    if (ret_cpu) {
        *ret_cpu = (double)ops * threads / cpu;
    }
    if (ret_pcpu) {
        *ret_pcpu = (double)ops * threads / (clock_s(CLOCK_PROCESS_CPUTIME_ID) - p0);
    }
    if (misses) {
        fprintf(stderr, "tables_bench: %llu failed operations\n", (unsigned long long)misses);
        exit(1);
    }
    return (double)ops * threads / dt;
}

int main(int argc, char **argv)
{
    uint32_t nkeys = 100000;
    uint64_t ops = 2000000;
    const char *dir = NULL;
    int writers = 50;
    const char *only = NULL;
    gr_tables_config cfg = {.node_id = 1};
    gr_tables *ts;
    kbuf *keys;
    struct {
        const char *name;
        gr_table_opts o;
    } layouts[] = {
        {"set16", {.kind = GR_TABLE_SET, .shards = 16}},
        {"set1", {.kind = GR_TABLE_SET, .shards = 1}},
        {"ordered", {.kind = GR_TABLE_ORDERED_SET}},
    };

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            nkeys = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
            ops = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--writers") && i + 1 < argc) {
            writers = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: %s [--keys N] [--ops N] [--dir DIR] [--writers N] [--only LAYOUT]\n",
                    argv[0]);
            return 2;
        }
    }
    if (writers < 1 || writers > 64 || nkeys == 0) {
        return 2;
    }
    keys = calloc(nkeys, sizeof(*keys));
    for (uint32_t i = 0; i < nkeys; i++) {
        keys[i].b[0] = 0xa0 | 12;
        snprintf((char *)keys[i].b + 1, 15, "key:%08u", i % 100000000u);
        keys[i].n = 13;
    }
    cfg.data_dir = dir;
    if (gr_tables_new(&cfg, &ts) < 0) {
        return 1;
    }
    for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
        gr_table *t;
        gr_table_info info;

        if (only && strcmp(only, layouts[l].name) != 0) {
            continue;
        }
        if (gr_tables_create(ts, layouts[l].name, &layouts[l].o) < 0 ||
            gr_tables_open(ts, layouts[l].name, &t) < 0) {
            return 1;
        }
        for (uint32_t i = 0; i < nkeys; i++) {
            gr_table_put(t, keys[i].b, keys[i].n, "\x01", 1, NULL, NULL);
        }
        gr_table_info_get(t, &info);
        printf("%s_bytes_per_entry=%.1f\n", layouts[l].name,
               (double)info.bytes / (double)info.entries);
        for (int th = 1; th <= 2; th++) {
            for (int put = 0; put <= 1; put++) {
                const char *op = put ? "put" : "get";
                double w, c, pc;

                w = run(t, keys, nkeys, ops, put, th, &c, &pc);
                printf("%s_%s_%dt=%.0f\n%s_%s_%dt_per_cpu_s=%.0f\n%s_%s_%dt_per_proc_cpu_s=%.0f\n",
                       layouts[l].name, op, th, w, layouts[l].name, op, th, c, layouts[l].name, op,
                       th, pc);
            }
            fflush(stdout);
        }
        gr_table_close(t);
        gr_tables_drop(ts, layouts[l].name);
    }
    if (dir) {
        gr_table_opts o = {.durability = GR_TABLE_DISK, .fsync = GR_FSYNC_ALWAYS};
        gr_table_info info;
        gr_table *t;
        uint64_t dops = 200;
        double rate;

        gr_tables_drop(ts, "durable");
        if (gr_tables_create(ts, "durable", &o) < 0 || gr_tables_open(ts, "durable", &t) < 0) {
            return 1;
        }
        rate = run(t, keys, nkeys, dops, 1, writers, NULL, NULL);
        gr_table_info_get(t, &info);
        printf("durable_always_%dw_puts=%.0f\n", writers, rate);
        printf("durable_always_%dw_puts_per_fsync=%.1f\n", writers,
               (double)info.wal_records / (double)(info.fsyncs ? info.fsyncs : 1));
        gr_table_close(t);
        gr_tables_drop(ts, "durable");

        o.fsync = GR_FSYNC_NEVER;
        gr_tables_drop(ts, "loadt");
        if (gr_tables_create(ts, "loadt", &o) < 0 || gr_tables_open(ts, "loadt", &t) < 0) {
            return 1;
        }
        for (uint32_t i = 0; i < nkeys; i++) {
            gr_table_put(t, keys[i].b, keys[i].n, "\x01", 1, NULL, NULL);
        }
        if (gr_table_snapshot(t) < 0) {
            return 1;
        }
        gr_table_close(t);
        gr_tables_free(ts);
        rate = now_s();
        if (gr_tables_new(&cfg, &ts) < 0 || gr_tables_open(ts, "loadt", &t) < 0) {
            return 1;
        }
        rate = now_s() - rate;
        gr_table_info_get(t, &info);
        printf("disk_load_%u_keys_s=%.3f\ndisk_load_entries=%llu\n", nkeys, rate,
               (unsigned long long)info.entries);
        gr_table_close(t);
        gr_tables_drop(ts, "loadt");
    }
    gr_tables_free(ts);
    free(keys);
    return 0;
}
