/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_bench.c - girder-bench-http: the scrape time of /metrics on a node with
 * many processes (docs/http.md, "Benchmark"; goal: under 50 ms).
 *
 *   build/bench/girder-bench-http [COUNTS [SCRAPES]]
 *     COUNTS   comma-separated process counts, ascending (default 0,100000,1000000)
 *     SCRAPES  scrapes per count (default 50)
 *
 * A node in one process, without dist: a runtime with 2 schedulers, the rpc
 * service and the HTTP listener on 127.0.0.1 (any port), as girderd wires
 * them. For each count it spawns idle processes up to that count, then times
 * SCRAPES scrapes the way Prometheus makes them: a new TCP connection, GET
 * /metrics, read to the end. Prints one table (median, p99, max, page bytes).
 * Not a test: nothing runs it but an operator (bench/meson.build).
 */
#include "http/http.h"
#include "proto/err.h"
#include "rpc/rpc.h"
#include "runtime/rt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRAPES_MAX 100000 /* scrapes per row at most */

static int idle_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static int idle_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

static const girder_behaviour idle = {
    .name = "bench_idle", .init = idle_init, .handle = idle_handle};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One scrape: connect, GET /metrics, read to EOF. Bytes read, or -1. */
static long scrape(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n";
    char buf[65536];
    long total = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        total += n;
    }
    close(fd);
    return n < 0 ? -1 : total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *counts = argc > 1 ? argv[1] : "0,100000,1000000";
    int scrapes = argc > 2 ? atoi(argv[2]) : 50;
    gr_rt_config rc = {.node_name = "bench@127.0.0.1", .schedulers = 2};
    girder_rt *rt = NULL;
    gr_rpc *rpc = NULL;
    gr_http *h = NULL;
    uint64_t have = 0;
    static double t[SCRAPES_MAX];
    char list[1024], *tok, *save = NULL;
    int r;

    if (scrapes < 1 || scrapes > SCRAPES_MAX || strlen(counts) >= sizeof(list)) {
        fprintf(stderr, "usage: girder-bench-http [COUNTS [SCRAPES (1..%d)]]\n", SCRAPES_MAX);
        return 2;
    }
    snprintf(list, sizeof(list), "%s", counts);
    if ((r = gr_rt_new(&rc, &rt)) < 0 || (r = girder_behaviour_register(rt, &idle)) < 0) {
        fprintf(stderr, "runtime: %s\n", gr_strerror(r));
        return 1;
    }
    gr_rpc_config pc = {.rt = rt, .started_ms = (uint64_t)now_ms()};
    if ((r = gr_rpc_new(&pc, &rpc)) < 0 || (r = gr_rt_start(rt)) < 0) {
        fprintf(stderr, "rpc/start: %s\n", gr_strerror(r));
        return 1;
    }
    gr_http_config hc = {.host = "127.0.0.1", .port = 0, .rpc = rpc};
    if ((r = gr_http_new(&hc, &h)) < 0 || (r = gr_http_start(h)) < 0) {
        fprintf(stderr, "http: %s\n", gr_strerror(r));
        return 1;
    }
    printf("/metrics scrape time (new connection per scrape, %d scrapes per row)\n", scrapes);
    printf("%12s %10s %10s %10s %10s %10s\n", "processes", "median ms", "p99 ms", "max ms", "bytes",
           "goal");
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t want = strtoull(tok, NULL, 10);
        long bytes = 0;

        for (; have < want; have++) {
            girder_pid pid;

            if ((r = gr_rt_spawn(rt, &idle, NULL, &pid)) < 0) {
                fprintf(stderr, "spawn #%llu: %s\n", (unsigned long long)have, gr_strerror(r));
                return 1;
            }
        }
        while (gr_rt_process_count(rt) < want) { /* spawns land on their schedulers */
            usleep(10000);
        }
        if (scrape(gr_http_port(h)) < 0) { /* warm-up, not timed */
            fprintf(stderr, "scrape failed: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < scrapes; i++) {
            double t0 = now_ms();

            if ((bytes = scrape(gr_http_port(h))) < 0) {
                fprintf(stderr, "scrape failed: %s\n", strerror(errno));
                return 1;
            }
            t[i] = now_ms() - t0;
        }
        qsort(t, (size_t)scrapes, sizeof(*t), cmp_double);
        printf("%12llu %10.2f %10.2f %10.2f %10ld %10s\n",
               (unsigned long long)gr_rt_process_count(rt), t[scrapes / 2],
               t[(scrapes * 99) / 100 < scrapes ? (scrapes * 99) / 100 : scrapes - 1],
               t[scrapes - 1], bytes,
               t[(scrapes * 99) / 100 < scrapes ? (scrapes * 99) / 100 : scrapes - 1] < 50.0
                   ? "< 50 ok"
                   : "MISSED");
        fflush(stdout);
    }
    gr_http_stop(h);
    gr_rt_stop(rt);
    rpc = gr_rpc_free(rpc);
    h = gr_http_free(h);
    rt = gr_rt_free(rt);
    return 0;
}
