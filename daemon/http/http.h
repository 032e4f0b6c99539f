/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.h - the node's HTTP listener (--http HOST:PORT, docs/http.md): the
 * Prometheus page /metrics, /healthz, /readyz, the read-only JSON API
 * (/api/nodes, /api/stats, /api/ps, /api/events) and the dashboard at /.
 *
 * Nothing served here changes anything: every endpoint is a GET (HEAD too)
 * and the rpc functions it calls only read (node.list, sys.counters,
 * proc.list through rpc.multicall).
 *
 * Threading: one thread of its own ("gr-http") owns the event base, the
 * evhttp server, every request, every server-sent-events client and every
 * pending rpc job. The API asks the node through gr_rpc_dispatch, as a request
 * from a client would, with connection ids that carry GR_HTTP_CONN_FLAG; the
 * rpc answers them through gr_http_rpc_reply (any thread), which queues the
 * answer and wakes the HTTP thread. So the HTTP thread never blocks on the
 * node, and a fleet-wide answer (rpc.multicall to every member) costs it
 * nothing while it is being gathered.
 *
 * Life cycle (main thread): gr_http_new (reads the token, binds: errors are
 * start errors), gr_http_start (the thread), gr_http_stop (joins it; pending
 * API requests are dropped with their connections; idempotent), and
 * gr_http_free after gr_rpc_free, since the rpc may still answer a job after
 * the stop (gr_http_rpc_reply then drops it).
 */
#ifndef GR_HTTP_H
#define GR_HTTP_H

#include "pubsub/pubsub.h"
#include "rpc/rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Connection ids of the HTTP API's rpc requests have this bit set; dist's ids
 * count up from 1 and never reach it. */
#define GR_HTTP_CONN_FLAG (1ull << 62)

#define GR_HTTP_TOKEN_MAX 256         /* longest bearer token, bytes */
#define GR_HTTP_MAX_CONNS 64          /* connections served at once; more get 503 */
#define GR_HTTP_MAX_SSE 16            /* /api/events clients at once; more get 503 */
#define GR_HTTP_MAX_JOBS 64           /* API requests waiting for rpc answers; more get 503 */
#define GR_HTTP_MAX_HEADERS 8192      /* bytes of a request's headers; more: 4xx */
#define GR_HTTP_MAX_BODY 1024         /* bytes of a request body (GET has none) */
#define GR_HTTP_TIMEOUT_S 10          /* idle or slow connection closed after this */
#define GR_HTTP_ACCEPT_PAUSE_MS 100   /* no accepts for this long after one failed (EMFILE) */
#define GR_HTTP_SSE_PERIOD_MS 1000    /* dashboard update period */
#define GR_HTTP_SSE_BACKLOG (1 << 20) /* unsent bytes before a slow SSE client is dropped */
#define GR_HTTP_RPC_TIMEOUT_MS 3000   /* fleet-wide calls: a member slower than this is "timeout" */
#define GR_HTTP_PS_DEFAULT 1024       /* /api/ps processes per node without ?limit= */
#define GR_HTTP_PS_MAX 65536          /* largest ?limit= */

typedef struct gr_http gr_http;

typedef struct gr_http_config {
    const char *host;         /* address to bind ("127.0.0.1", "0.0.0.0", "::1") */
    uint16_t port;            /* 0: any free port (gr_http_port) */
    const char *token_file;   /* bearer token file, or NULL */
    bool require_token;       /* ask for the token even on a loopback address */
    bool protect_metrics;     /* /metrics and /healthz need the token too */
    gr_rpc *rpc;              /* the node's rpc service (borrowed, outlives the gr_http's thread) */
    gr_pubsub *pubsub;        /* pub/sub figures for /metrics, or NULL */
    const char *const *seeds; /* node names of the configured seeds (/readyz); copied */
    size_t nseeds;
} gr_http_config;

/* Is host a loopback address (127.0.0.0/8, ::1, localhost)? Pure. */
bool gr_http_is_loopback(const char *host);

/* Read a bearer token file: one line, 1..GR_HTTP_TOKEN_MAX bytes after
 * trailing blanks and newlines are cut, a regular file not readable or
 * writable by group or others. 0 and ret[*ret_len], or GR_EHTTPTOKEN / -errno
 * (ret untouched). ret must hold GR_HTTP_TOKEN_MAX bytes. */
int gr_http_token_load(const char *path, char *ret, size_t *ret_len);

/* Create: load the token when one is needed (a non-loopback host, or
 * require_token, or a token_file given), bind and listen. No thread yet. 0,
 * GR_EHTTPTOKEN (a token is needed and the file is missing or unsafe),
 * -EADDRINUSE and other -errno, -ENOMEM. Main thread. */
int gr_http_new(const gr_http_config *cfg, gr_http **ret_h);

/* The port bound. Any thread. */
uint16_t gr_http_port(const gr_http *h);

/* Set the pub/sub whose figures /metrics shows (made after the listener).
 * Before gr_http_start. Main thread. */
void gr_http_set_pubsub(gr_http *h, gr_pubsub *pubsub);

/* Start the HTTP thread. 0 or -errno. Main thread. */
int gr_http_start(gr_http *h);

/* Stop serving: close the listener and every connection, join the thread.
 * Idempotent; NULL-safe. Main thread. */
void gr_http_stop(gr_http *h);

/* Free a stopped (or never started) listener; after gr_rpc_free. NULL-safe;
 * returns NULL. */
gr_http *gr_http_free(gr_http *h);

/* The rpc's answer to one of our requests (conn has GR_HTTP_CONN_FLAG):
 * copied and handed to the HTTP thread. Any thread. 0, GR_ENOCONN (stopped:
 * dropped) or -ENOMEM. */
int gr_http_rpc_reply(gr_http *h, uint64_t conn, uint64_t ref, int status, const void *result,
                      size_t len);

/* The /metrics page into b (a struct evbuffer *): exposed for the benchmark
 * and the tests. Any thread. 0 or -ENOMEM. */
struct evbuffer;
int gr_http_metrics_write(gr_rpc *rpc, gr_pubsub *pubsub, struct evbuffer *b);

#endif
