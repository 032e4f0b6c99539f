/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c - the node's HTTP listener (http.h): evhttp on a thread of its own,
 * the routes, bearer-token checks, the rpc jobs behind the JSON API, the
 * server-sent events of the dashboard, and the /metrics page.
 *
 * Design notes
 * - Owning thread: the "gr-http" thread owns everything here except the
 *   answer queue (`lock`, `answers`), which any thread appends to through
 *   gr_http_rpc_reply, and `stopped`. The main thread creates the objects
 *   before the thread starts and frees them after it is joined.
 * - Waking the thread: an eventfd. gr_http_rpc_reply queues and writes it;
 *   gr_http_stop sets `stopping` and writes it. libevent's own cross-thread
 *   locking (evthread) is not turned on: nothing but the eventfd crosses.
 * - A job is one API request (or one dashboard tick) waiting for up to
 *   JOB_PARTS rpc answers. Its requests carry conn = GR_HTTP_CONN_FLAG | id
 *   and ref = part; the rpc answers each exactly once (its result, an error,
 *   or its deadline), so a job always completes and never needs a timer of
 *   its own. A client that goes away leaves its job to finish unanswered.
 * - Connections: evhttp 2.1 has no connection limit, so the first request of
 *   each connection registers it (hconn, with a close callback); past
 *   GR_HTTP_MAX_CONNS a request is answered 503 and its connection closed.
 *   Connections that never send a request are closed by the timeout.
 * - Tokens are compared through their BLAKE2b hashes with sodium_memcmp:
 *   constant time whatever the lengths.
 */
#include "http/http.h"

#include "cli/json.h"
#include "http/metrics.h"
#include "observe/observe.h"
#include "proto/err.h"
#include "rpc/rpc_int.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG "http"
#define JOB_PARTS 4                /* most rpc calls behind one job (the dashboard tick) */
#define TICK_PS 200                /* processes per node and ranking in a dashboard update */
#define COOKIE_NAME "girder_token" /* the dashboard's copy of the bearer token */

extern const char gr_http_dashboard_html[]; /* dashboard.html, compiled in (meson) */
extern const size_t gr_http_dashboard_html_len;

typedef struct hconn hconn;
typedef struct job job;

/* One answer from the rpc, on its way to the HTTP thread. */
typedef struct answer {
    struct answer *next; /* queue link */
    uint64_t conn, ref;  /* which job and part */
    int status;          /* 0 or a negative code */
    size_t len;          /* bytes of data */
    uint8_t data[];      /* the result term */
} answer;

typedef enum job_kind { JOB_NODES, JOB_STATS, JOB_PS, JOB_TICK } job_kind;

/* An API request (or the dashboard tick) waiting for its rpc answers. */
struct job {
    job *next;                  /* h->jobs */
    uint64_t id;                /* conn id = GR_HTTP_CONN_FLAG | id */
    job_kind kind;              /* what to answer */
    hconn *hc;                  /* the waiting connection; NULL: gone (or the tick) */
    struct evhttp_request *req; /* its request; kept (detached) if its connection closes */
    unsigned nparts, ndone;     /* calls made / answered */
    int status[JOB_PARTS];      /* per part: 0 or a negative code */
    uint8_t *data[JOB_PARTS];   /* per part: the result term (malloc'd) */
    size_t len[JOB_PARTS];      /* bytes of data[] */
};

/* A server-sent-events client (/api/events). */
typedef struct sse {
    struct sse *next;           /* h->sses */
    hconn *hc;                  /* its connection */
    struct evhttp_request *req; /* the chunked reply */
} sse;

/* A connection that has sent a request. */
struct hconn {
    hconn *next, *prev;              /* h->conns */
    gr_http *h;                      /* owner */
    struct evhttp_connection *evcon; /* evhttp's */
    job *job;                        /* a job waiting on it, or NULL */
    sse *sse;                        /* its event stream, or NULL */
};

struct gr_http {
    /* set by gr_http_new, read-only afterwards */
    gr_rpc *rpc;       /* the node's rpc (borrowed) */
    gr_pubsub *pubsub; /* may be NULL */
    char **seeds;      /* configured seeds' node names */
    size_t nseeds;
    bool need_token;                              /* "/" and "/api/..." ask for the token */
    bool protect_metrics;                         /* /metrics, /healthz, /readyz too */
    uint8_t token_hash[crypto_generichash_BYTES]; /* BLAKE2b of the token */
    uint16_t port;                                /* bound */
    /* HTTP thread */
    struct event_base *base;
    struct evhttp *http;
    struct event *wake_ev; /* wake_fd readable */
    struct event *tick_ev; /* dashboard period */
    int wake_fd;           /* eventfd */
    hconn *conns;          /* registered connections */
    size_t nconns;
    sse *sses; /* event-stream clients */
    size_t nsse;
    job *jobs;         /* pending jobs */
    size_t njobs;      /* pending, the tick excluded */
    bool tick_pending; /* a tick job is out */
    uint64_t next_job; /* job ids */
    /* shared */
    pthread_t thread;
    bool started;         /* main thread only */
    atomic_bool stopping; /* main -> HTTP thread */
    pthread_mutex_t lock; /* guards answers, stopped */
    answer *answers;      /* queued answers (LIFO; order does not matter) */
    bool stopped;         /* no more answers accepted */
};

/* ---- configuration ----------------------------------------------------------------- */

bool gr_http_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0) {
        return true;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

int gr_http_token_load(const char *path, char *ret, size_t *ret_len)
{
    char buf[GR_HTTP_TOKEN_MAX + 2];
    struct stat st;
    ssize_t n;
    size_t len;
    int fd, r = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        return errno == ENOENT ? GR_EHTTPTOKEN : -errno;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        close(fd);
        return GR_EHTTPTOKEN;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0) {
        return -errno;
    }
    len = (size_t)n;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                   buf[len - 1] == '\t')) {
        len--;
    }
    if (len == 0 || len > GR_HTTP_TOKEN_MAX || memchr(buf, '\n', len) || memchr(buf, '\0', len)) {
        r = GR_EHTTPTOKEN;
    } else {
        memcpy(ret, buf, len);
        *ret_len = len;
    }
    sodium_memzero(buf, sizeof(buf));
    return r;
}

/* ---- answers from the rpc (any thread) ---------------------------------------------------- */

static void wake(gr_http *h)
{
    uint64_t one = 1;

    if (write(h->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        gr_warn(LOG, "cannot wake the HTTP thread: %s", strerror(errno));
    }
}

int gr_http_rpc_reply(gr_http *h, uint64_t conn, uint64_t ref, int status, const void *result,
                      size_t len)
{
    answer *a;

    if (status < 0) {
        len = 0;
    }
    if (!(a = malloc(sizeof(*a) + (len ? len : 1)))) {
        return -ENOMEM;
    }
    a->conn = conn;
    a->ref = ref;
    a->status = status;
    a->len = len;
    if (len) {
        memcpy(a->data, result, len);
    }
    pthread_mutex_lock(&h->lock);
    if (h->stopped) {
        pthread_mutex_unlock(&h->lock);
        free(a);
        return GR_ENOCONN;
    }
    a->next = h->answers;
    h->answers = a;
    pthread_mutex_unlock(&h->lock);
    wake(h);
    return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

static void sse_drop(gr_http *h, sse *s)
{
    for (sse **pp = &h->sses; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            h->nsse--;
            break;
        }
    }
    free(s);
}

/* Release hc, already out of h->conns. closing: its connection is closing
 * under us (the client left, or timed out): evhttp has then detached a
 * request we have not finished (evhttp_connection_incoming_fail) and leaves
 * it to us, so a waiting job keeps it (job_done's reply frees it) and an
 * event stream's is ended here (which frees it). Otherwise (teardown, a slow
 * client dropped) the connection still owns its requests and frees them. */
static void hconn_release(gr_http *h, hconn *hc, bool closing)
{
    if (hc->job) {
        hc->job->hc = NULL;
        if (!closing) {
            hc->job->req = NULL;
        }
    }
    if (hc->sse) {
        if (closing) {
            evhttp_send_reply_end(hc->sse->req);
        }
        sse_drop(h, hc->sse);
    }
    evhttp_connection_set_closecb(hc->evcon, NULL, NULL);
    free(hc);
}

/* Forget hc (see hconn_release for closing). */
static void hconn_detach(hconn *hc, bool closing)
{
    gr_http *h = hc->h;

    for (hconn **pp = &h->conns; *pp; pp = &(*pp)->next) {
        if (*pp == hc) {
            *pp = hc->next;
            h->nconns--;
            break;
        }
    }
    hconn_release(h, hc, closing);
}

/* Forget every connection (teardown). */
static void hconn_drop_all(gr_http *h)
{
    hconn *hc;

    while ((hc = h->conns) != NULL) {
        h->conns = hc->next;
        h->nconns--;
        hconn_release(h, hc, false);
    }
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    hconn_detach(arg, true);
}

/* The hconn of req's connection, registering it on its first request. NULL:
 * over the limit (or out of memory). */
static hconn *hconn_of(gr_http *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    hconn *hc;

    for (hc = h->conns; hc; hc = hc->next) {
        if (hc->evcon == evcon) {
            return hc;
        }
    }
    if (h->nconns >= GR_HTTP_MAX_CONNS || !(hc = calloc(1, sizeof(*hc)))) {
        return NULL;
    }
    hc->h = h;
    hc->evcon = evcon;
    hc->next = h->conns;
    h->conns = hc;
    h->nconns++;
    evhttp_connection_set_closecb(evcon, on_close, hc);
    return hc;
}

/* ---- replies ------------------------------------------------------------------------------ */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *body)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    evhttp_add_header(out, "Content-Type", type);
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, code, reason, body);
}

/* A JSON reply {"key": "text"} (text escaped). */
static void reply_json_msg(struct evhttp_request *req, int code, const char *reason,
                           const char *key, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    msgpack_sbuffer sb;

    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    msgpack_sbuffer_init(&sb);
    if (gr_cli_json_put_str(&sb, text, strlen(text)) == 0) {
        evbuffer_add_printf(b, "{\"%s\":%.*s}\n", key, (int)sb.size, sb.data);
    }
    msgpack_sbuffer_destroy(&sb);
    reply(req, code, reason, "application/json", b);
    evbuffer_free(b);
}

static void reply_busy(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    reply_json_msg(req, 503, "Service Unavailable", "error", gr_errid(GR_EHTTPBUSY));
}

/* ---- auth --------------------------------------------------------------------------------- */

/* Does text[0..len) hash to the token's hash? Constant time. */
static bool token_ok(const gr_http *h, const char *text, size_t len)
{
    uint8_t hash[crypto_generichash_BYTES];

    crypto_generichash(hash, sizeof(hash), (const uint8_t *)text, len, NULL, 0);
    return sodium_memcmp(hash, h->token_hash, sizeof(hash)) == 0;
}

/* The girder_token cookie's value in a Cookie header, or NULL; *ret_len its length. */
static const char *cookie_token(const char *cookies, size_t *ret_len)
{
    const char *p = cookies;

    while (p && *p) {
        while (*p == ' ' || *p == ';') {
            p++;
        }
        if (strncmp(p, COOKIE_NAME "=", sizeof(COOKIE_NAME)) == 0) {
            const char *v = p + sizeof(COOKIE_NAME);

            *ret_len = strcspn(v, ";");
            return v;
        }
        p = strchr(p, ';');
    }
    return NULL;
}

/* Does req carry the token: "Authorization: Bearer TOKEN", or the dashboard's
 * cookie? */
static bool authorized(const gr_http *h, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(in, "Authorization");
    const char *cookies = evhttp_find_header(in, "Cookie"), *v;
    size_t len;

    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        auth += 7;
        while (*auth == ' ') {
            auth++;
        }
        return token_ok(h, auth, strlen(auth));
    }
    if (cookies && (v = cookie_token(cookies, &len)) != NULL) {
        return token_ok(h, v, len);
    }
    return false;
}

static void reply_unauthorized(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"girder\"");
    reply_json_msg(req, 401, "Unauthorized", "error", "a bearer token is required");
}

/* ---- jobs --------------------------------------------------------------------------------- */

/* Free j; a request it still holds was detached from its closed connection
 * (hconn_release) and is ours to free. */
static void job_free(job *j)
{
    if (j->req) {
        evhttp_request_free(j->req);
    }
    for (unsigned i = 0; i < JOB_PARTS; i++) {
        free(j->data[i]);
    }
    free(j);
}

/* Issue part `part` of j: module.function(args) as a request of our own. The
 * answer comes back through gr_http_rpc_reply (maybe before this returns). */
static void job_call(gr_http *h, job *j, const char *module, const char *function,
                     msgpack_sbuffer *args)
{
    gr_dist_request rq = {
        .conn = GR_HTTP_CONN_FLAG | j->id,
        .ref = j->nparts++,
        .peer = "http",
        .hidden = true,
        .module = module,
        .function = function,
        .args = (const uint8_t *)args->data,
        .args_len = args->size,
        .deadline_ms = GR_HTTP_RPC_TIMEOUT_MS + 2000,
    };

    gr_rpc_dispatch(h->rpc, &rq);
}

/* args of rpc.multicall("all", module, function, Inner, timeout). Inner is
 * [] (max 0), [Max], or with a ranking key proc.snapshot's [Max, nil, Key]. */
static void multicall_args(msgpack_sbuffer *sb, const char *module, const char *function,
                           uint64_t max, const char *rank)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    gr_term_pack_cstr(&pk, "all");
    gr_term_pack_cstr(&pk, module);
    gr_term_pack_cstr(&pk, function);
    msgpack_pack_array(&pk, max == 0 ? 0 : rank ? 3 : 1);
    if (max) {
        msgpack_pack_uint64(&pk, max);
    }
    if (max && rank) {
        msgpack_pack_nil(&pk);
        gr_term_pack_cstr(&pk, rank);
    }
    msgpack_pack_uint32(&pk, GR_HTTP_RPC_TIMEOUT_MS);
}

/* Start a job of `kind`; for an API request, hc/req wait for it. NULL when
 * too many are out (or out of memory). */
static job *job_start(gr_http *h, job_kind kind, hconn *hc, struct evhttp_request *req,
                      uint64_t ps_limit)
{
    msgpack_sbuffer sb;
    job *j;

    if ((kind != JOB_TICK && h->njobs >= GR_HTTP_MAX_JOBS) || !(j = calloc(1, sizeof(*j)))) {
        return NULL;
    }
    j->id = ++h->next_job;
    j->kind = kind;
    j->hc = hc;
    j->req = req;
    if (hc) {
        hc->job = j;
    }
    j->next = h->jobs;
    h->jobs = j;
    if (kind == JOB_TICK) {
        h->tick_pending = true;
    } else {
        h->njobs++;
    }
    msgpack_sbuffer_init(&sb);
    if (kind == JOB_NODES || kind == JOB_TICK) {
        msgpack_sbuffer_write(&sb, "\x90", 1); /* [] */
        job_call(h, j, "node", "list", &sb);
        msgpack_sbuffer_clear(&sb);
    }
    if (kind == JOB_STATS || kind == JOB_TICK) {
        multicall_args(&sb, "sys", "counters", 0, NULL);
        job_call(h, j, "rpc", "multicall", &sb);
        msgpack_sbuffer_clear(&sb);
    }
    if (kind == JOB_PS) {
        multicall_args(&sb, "proc", "list", ps_limit, NULL);
        job_call(h, j, "rpc", "multicall", &sb);
    }
    if (kind == JOB_TICK) { /* the busiest: ranked over all processes of each node */
        multicall_args(&sb, "proc", "snapshot", TICK_PS, "work");
        job_call(h, j, "rpc", "multicall", &sb);
        msgpack_sbuffer_clear(&sb);
        multicall_args(&sb, "proc", "snapshot", TICK_PS, "mailbox");
        job_call(h, j, "rpc", "multicall", &sb);
    }
    msgpack_sbuffer_destroy(&sb);
    return j;
}

/* Append part i of j as JSON to b: the term, or {"error": "id"}. */
static void part_json(const job *j, unsigned i, struct evbuffer *b)
{
    char *json = NULL;

    if (j->status[i] == 0 && gr_cli_term_buf_to_json(j->data[i], j->len[i], 0, &json) == 0) {
        evbuffer_add(b, json, strlen(json));
    } else {
        evbuffer_add_printf(b, "{\"error\":\"%s\"}",
                            gr_errid(j->status[i] ? j->status[i] : GR_EBADTERM));
    }
    free(json);
}

/* Send the event to every event-stream client; drop those too far behind. */
static void sse_broadcast(gr_http *h, struct evbuffer *ev)
{
    sse *s = h->sses, *next;

    for (; s; s = next) {
        struct evbuffer *copy = evbuffer_new();
        struct bufferevent *bev = evhttp_connection_get_bufferevent(s->hc->evcon);
        struct evhttp_connection *evcon = s->hc->evcon;

        next = s->next;
        if (!copy) {
            continue;
        }
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > GR_HTTP_SSE_BACKLOG) {
            gr_info(LOG, "event stream client too slow: dropped");
            evbuffer_free(copy);
            hconn_detach(s->hc, false); /* frees s */
            evhttp_connection_free(evcon);
            continue;
        }
        evbuffer_add_buffer_reference(copy, ev);
        evhttp_send_reply_chunk(s->req, copy);
        evbuffer_free(copy);
    }
}

static void job_done(gr_http *h, job *j)
{
    struct evbuffer *b = evbuffer_new();

    for (job **pp = &h->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    if (j->kind == JOB_TICK) {
        h->tick_pending = false;
    } else {
        h->njobs--;
    }
    if (j->hc) {
        j->hc->job = NULL;
    }
    if (!b) {
        if (j->req) {
            evhttp_send_error(j->req, 500, NULL); /* sends, or frees a detached one */
            j->req = NULL;
        }
        job_free(j);
        return;
    }
    if (j->kind == JOB_TICK) {
        evbuffer_add_printf(b, "event: snapshot\ndata: {\"self\":\"%s\",\"nodes\":",
                            gr_rt_node_name(gr_rpc_rt(h->rpc)));
        part_json(j, 0, b);
        evbuffer_add_printf(b, ",\"stats\":");
        part_json(j, 1, b);
        evbuffer_add_printf(b, ",\"by_work\":");
        part_json(j, 2, b);
        evbuffer_add_printf(b, ",\"by_mailbox\":");
        part_json(j, 3, b);
        evbuffer_add_printf(b, "}\n\n");
        sse_broadcast(h, b);
    } else if (j->req) {
        int code = j->status[0] == 0 ? 200 : 502;

        part_json(j, 0, b);
        evbuffer_add(b, "\n", 1);
        /* sent, or (the client left: detached) freed */
        reply(j->req, code, code == 200 ? "OK" : "Bad Gateway", "application/json", b);
        j->req = NULL;
    }
    evbuffer_free(b);
    job_free(j);
}

/* Take one answer: store it in its job, finish the job when complete. */
static void take_answer(gr_http *h, answer *a)
{
    uint64_t id = a->conn & ~GR_HTTP_CONN_FLAG;
    job *j;

    for (j = h->jobs; j && j->id != id; j = j->next) {
    }
    if (!j || a->ref >= j->nparts || j->data[a->ref] || j->status[a->ref]) {
        return; /* not ours (or a duplicate, which the rpc never sends) */
    }
    j->status[a->ref] = a->status;
    if (a->status == 0) {
        if (!(j->data[a->ref] = malloc(a->len ? a->len : 1))) {
            j->status[a->ref] = -ENOMEM;
        } else {
            memcpy(j->data[a->ref], a->data, a->len);
            j->len[a->ref] = a->len;
        }
    }
    if (++j->ndone == j->nparts) {
        job_done(h, j);
    }
}

/* ---- /metrics ---------------------------------------------------------------------------- */

/* One sample per scheduler of its busy (wall = false) or wall seconds under
 * name, labelled by scheduler index. 0 or -ENOMEM. Any thread. */
static int sched_seconds(struct evbuffer *b, girder_rt *rt, const char *name, bool wall)
{
    for (unsigned i = 0; i < gr_rt_schedulers(rt); i++) {
        gr_http_label l[1] = {{"scheduler", NULL}};
        uint64_t busy_ns, wall_ns;
        char idx[16];

        snprintf(idx, sizeof(idx), "%u", i);
        l[0].value = idx;
        gr_rt_sched_time(rt, i, &busy_ns, &wall_ns);
        if (gr_http_metric_f64(b, name, l, 1, (double)(wall ? wall_ns : busy_ns) / 1e9) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

#define HEAD(name, type, help)                                                                     \
    do {                                                                                           \
        if (gr_http_metric_head(b, name, type, help) < 0) {                                        \
            goto oom;                                                                              \
        }                                                                                          \
    } while (0)
#define U64(name, v)                                                                               \
    do {                                                                                           \
        if (gr_http_metric_u64(b, name, NULL, 0, v) < 0) {                                         \
            goto oom;                                                                              \
        }                                                                                          \
    } while (0)
#define SIMPLE(name, type, help, v)                                                                \
    do {                                                                                           \
        HEAD(name, type, help);                                                                    \
        U64(name, v);                                                                              \
    } while (0)
#define LABELLED(name, lname, lvalue, v)                                                           \
    do {                                                                                           \
        gr_http_label l_[1] = {{lname, lvalue}};                                                   \
        if (gr_http_metric_u64(b, name, l_, 1, v) < 0) {                                           \
            goto oom;                                                                              \
        }                                                                                          \
    } while (0)

int gr_http_metrics_write(gr_rpc *rpc, gr_pubsub *pubsub, struct evbuffer *b)
{
    static const uint64_t bounds_us[GR_RPC_LAT_BUCKETS] = GR_RPC_LAT_BOUNDS_US;
    double bounds[GR_RPC_LAT_BUCKETS];
    gr_observe_counters c;
    gr_dist *dist = gr_rpc_dist(rpc);
    gr_dist_member *ms = NULL;
    size_t n = 0;
    uint64_t states[4] = {0};
    const gr_dist_counters *d = &c.dist;

    gr_observe_counters_get(rpc, &c);
    if (dist && gr_dist_members(dist, &ms, &n) < 0) {
        return -ENOMEM;
    }
    SIMPLE("girder_processes", "gauge", "Live processes on this node.", c.processes);
    SIMPLE("girder_schedulers", "gauge", "Scheduler threads of this node.",
           gr_rt_schedulers(gr_rpc_rt(rpc)));
    HEAD("girder_uptime_seconds", "gauge", "Seconds since girderd started.");
    if (gr_http_metric_f64(b, "girder_uptime_seconds", NULL, 0, (double)c.uptime_ms / 1e3) < 0) {
        goto oom;
    }
    SIMPLE("girder_messages_received_total", "counter",
           "Messages processes on this node took from their mailboxes and handled.",
           c.messages_handled);
    SIMPLE("girder_scheduler_wakeups_total", "counter", "Sleeping schedulers woken.",
           c.sched_wakeups);
    HEAD("girder_scheduler_busy_seconds_total", "counter",
         "Time each scheduler spent not waiting for work (running processes, delivering "
         "signals); utilisation = rate of this / rate of girder_scheduler_wall_seconds_total.");
    if (sched_seconds(b, gr_rpc_rt(rpc), "girder_scheduler_busy_seconds_total", false) < 0) {
        goto oom;
    }
    HEAD("girder_scheduler_wall_seconds_total", "counter",
         "Time since each scheduler's loop began.");
    if (sched_seconds(b, gr_rpc_rt(rpc), "girder_scheduler_wall_seconds_total", true) < 0) {
        goto oom;
    }
    SIMPLE("girder_rpc_calls_total", "counter",
           "Rpc requests served by this node (from the CLI, members and the HTTP API).",
           c.rpc.calls);
    SIMPLE("girder_rpc_errors_total", "counter", "Served rpc requests answered with an error.",
           c.rpc.errors);
    SIMPLE("girder_rpc_inflight", "gauge", "Rpc requests being served now.", c.rpc_inflight);
    HEAD("girder_rpc_duration_seconds", "histogram",
         "Time from receiving an rpc request to answering it.");
    for (size_t i = 0; i < GR_RPC_LAT_BUCKETS; i++) {
        bounds[i] = (double)bounds_us[i] / 1e6;
    }
    if (gr_http_metric_histogram(b, "girder_rpc_duration_seconds", NULL, 0, bounds, c.rpc.buckets,
                                 GR_RPC_LAT_BUCKETS, (double)c.rpc.sum_us / 1e6) < 0) {
        goto oom;
    }
    SIMPLE("girder_suspended_processes", "gauge",
           "Processes suspended now because a link they send to is busy.", c.suspended_now);
    SIMPLE("girder_suspensions_total", "counter",
           "Times a process was suspended because a link it sends to was busy.", c.suspends);
    HEAD("girder_suspended_seconds_total", "counter",
         "Total time processes spent suspended on busy links.");
    if (gr_http_metric_f64(b, "girder_suspended_seconds_total", NULL, 0,
                           (double)c.suspended_us / 1e6) < 0) {
        goto oom;
    }

    for (size_t i = 0; i < n; i++) {
        if ((unsigned)ms[i].state < 4) {
            states[ms[i].state]++;
        }
    }
    HEAD("girder_members", "gauge", "Cluster members known to this node, by state.");
    for (int s = 0; s < 4; s++) {
        LABELLED("girder_members", "state", gr_dist_state_name(s), states[s]);
    }
    HEAD("girder_link_bytes_total", "counter",
         "Bytes read from (in) and written to (out) the links to each connected member.");
    for (size_t i = 0; i < n; i++) {
        if (ms[i].state == GR_DIST_UP) {
            gr_http_label in[2] = {{"peer", ms[i].name}, {"direction", "in"}};
            gr_http_label out[2] = {{"peer", ms[i].name}, {"direction", "out"}};

            if (gr_http_metric_u64(b, "girder_link_bytes_total", in, 2, ms[i].bytes_in) < 0 ||
                gr_http_metric_u64(b, "girder_link_bytes_total", out, 2, ms[i].bytes_out) < 0) {
                goto oom;
            }
        }
    }
    HEAD("girder_link_backlog_bytes", "gauge",
         "Bytes queued for each connected member and not yet taken by its socket.");
    for (size_t i = 0; i < n; i++) {
        if (ms[i].state == GR_DIST_UP) {
            LABELLED("girder_link_backlog_bytes", "peer", ms[i].name, ms[i].queued_bytes);
        }
    }
    HEAD("girder_link_busy", "gauge",
         "1 while the link to a member is above its high-water mark (senders suspended).");
    for (size_t i = 0; i < n; i++) {
        if (ms[i].state == GR_DIST_UP) {
            LABELLED("girder_link_busy", "peer", ms[i].name, ms[i].busy ? 1 : 0);
        }
    }
    HEAD("girder_link_rtt_seconds", "gauge",
         "Heartbeat round trip to each connected member: the last sample (kind=\"last\") and "
         "the smoothed one (kind=\"smoothed\", RFC 6298's SRTT); absent until measured.");
    for (size_t i = 0; i < n; i++) {
        if (ms[i].state == GR_DIST_UP && ms[i].rtt_us != 0) {
            gr_http_label last[2] = {{"peer", ms[i].name}, {"kind", "last"}};
            gr_http_label smooth[2] = {{"peer", ms[i].name}, {"kind", "smoothed"}};

            if (gr_http_metric_f64(b, "girder_link_rtt_seconds", last, 2,
                                   (double)ms[i].rtt_us / 1e6) < 0 ||
                gr_http_metric_f64(b, "girder_link_rtt_seconds", smooth, 2,
                                   (double)ms[i].srtt_us / 1e6) < 0) {
                goto oom;
            }
        }
    }
    free(ms);
    ms = NULL;

    HEAD("girder_dist_bytes_total", "counter", "Bytes read and written on all cluster sockets.");
    LABELLED("girder_dist_bytes_total", "direction", "in", d->bytes_in);
    LABELLED("girder_dist_bytes_total", "direction", "out", d->bytes_out);
    HEAD("girder_dist_frames_total", "counter", "Frames received and sent on cluster links.");
    LABELLED("girder_dist_frames_total", "direction", "in", d->frames_in);
    LABELLED("girder_dist_frames_total", "direction", "out", d->frames_out);
    HEAD("girder_dist_signals_total", "counter",
         "Process signals (messages, links, monitors) received from and sent to other nodes.");
    LABELLED("girder_dist_signals_total", "direction", "in", d->signals_in);
    LABELLED("girder_dist_signals_total", "direction", "out", d->signals_out);
    SIMPLE("girder_dist_signals_lost_total", "counter",
           "Signals taken for a node whose link then went down.", d->signals_lost);
    HEAD("girder_dist_connections_total", "counter", "Cluster connections accepted and dialled.");
    LABELLED("girder_dist_connections_total", "kind", "accepted", d->conns_accepted);
    LABELLED("girder_dist_connections_total", "kind", "dialled", d->conns_dialled);
    HEAD("girder_dist_handshakes_total", "counter", "Cluster handshakes by outcome.");
    LABELLED("girder_dist_handshakes_total", "result", "ok", d->handshakes_ok);
    LABELLED("girder_dist_handshakes_total", "result", "failed", d->handshakes_failed);
    LABELLED("girder_dist_handshakes_total", "result", "refused", d->handshakes_refused);
    LABELLED("girder_dist_handshakes_total", "result", "evicted", d->handshakes_evicted);
    HEAD("girder_dist_rpc_total", "counter", "Rpc requests received from and sent to the network.");
    LABELLED("girder_dist_rpc_total", "direction", "in", d->rpc_in);
    LABELLED("girder_dist_rpc_total", "direction", "out", d->rpc_out);
    SIMPLE("girder_dist_rpc_timeouts_total", "counter", "Outgoing rpc calls that timed out.",
           d->rpc_timeouts);
    SIMPLE("girder_dist_nodedowns_total", "counter", "Members declared down.", d->nodedowns);
    SIMPLE("girder_dist_queued_bytes", "gauge", "Output queued on all links.", d->out_queued_bytes);
    SIMPLE("girder_dist_overloads_total", "counter", "Times a link went above its high-water mark.",
           d->overloads);
    SIMPLE("girder_dist_overload_closes_total", "counter",
           "Links closed at the hard limit (8 times the high-water mark).", d->overload_closes);
    if (pubsub) {
        gr_pubsub_counters p;

        gr_pubsub_counters_get(pubsub, &p);
        SIMPLE("girder_pubsub_published_total", "counter", "Successful publishes on this node.",
               p.published);
        SIMPLE("girder_pubsub_delivered_total", "counter", "Messages sent to local subscribers.",
               p.delivered);
        SIMPLE("girder_pubsub_dropped_total", "counter",
               "Messages dropped at a subscription's limit.", p.dropped);
        SIMPLE("girder_pubsub_subscriptions", "gauge", "Live subscriptions.", p.subscriptions);
        SIMPLE("girder_pg_joins", "gauge", "Live process-group joins on this node.", p.joins);
    }
    return 0;
oom:
    free(ms);
    return -ENOMEM;
}

/* ---- routes ------------------------------------------------------------------------------ */

static void serve_metrics(gr_http *h, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    if (!b || gr_http_metrics_write(h->rpc, h->pubsub, b) < 0 ||
        gr_http_metric_head(b, "girder_http_connections", "gauge",
                            "Open HTTP connections that have sent a request.") < 0 ||
        gr_http_metric_u64(b, "girder_http_connections", NULL, 0, h->nconns) < 0 ||
        gr_http_metric_head(b, "girder_http_event_clients", "gauge",
                            "Dashboard event streams (/api/events) open.") < 0 ||
        gr_http_metric_u64(b, "girder_http_event_clients", NULL, 0, h->nsse) < 0) {
        evhttp_send_error(req, 500, NULL);
    } else {
        reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
    }
    if (b) {
        evbuffer_free(b);
    }
}

/* /readyz: listening (we are), and every configured seed other than this node
 * is a connected member. */
static void serve_readyz(gr_http *h, struct evhttp_request *req)
{
    gr_dist *dist = gr_rpc_dist(h->rpc);
    const char *self = gr_rt_node_name(gr_rpc_rt(h->rpc));
    gr_dist_member *ms = NULL;
    char why[512] = "";
    size_t n = 0, off = 0;

    if (!dist || gr_dist_members(dist, &ms, &n) < 0) {
        reply_json_msg(req, 503, "Service Unavailable", "reason", "cluster layer not running");
        return;
    }
    for (size_t i = 0; i < h->nseeds; i++) {
        bool up = strcmp(h->seeds[i], self) == 0;

        for (size_t k = 0; k < n && !up; k++) {
            up = ms[k].state == GR_DIST_UP && strcmp(ms[k].name, h->seeds[i]) == 0;
        }
        if (!up && off < sizeof(why)) {
            int w = snprintf(why + off, sizeof(why) - off, "%s%s",
                             off ? ", " : "seed not connected: ", h->seeds[i]);

            off += w > 0 ? (size_t)w : 0;
        }
    }
    free(ms);
    if (why[0]) {
        reply_json_msg(req, 503, "Service Unavailable", "reason", why);
    } else {
        reply_json_msg(req, 200, "OK", "status", "ready");
    }
}

static void serve_dashboard(gr_http *h, struct evhttp_request *req, bool set_cookie,
                            const char *token)
{
    struct evbuffer *b = evbuffer_new();

    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (set_cookie) {
        char cookie[GR_HTTP_TOKEN_MAX + 96];

        snprintf(cookie, sizeof(cookie), COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict",
                 token);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
        sodium_memzero(cookie, sizeof(cookie));
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy",
                      "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    evbuffer_add_reference(b, gr_http_dashboard_html, gr_http_dashboard_html_len, NULL, NULL);
    reply(req, 200, "OK", "text/html; charset=utf-8", b);
    evbuffer_free(b);
}

static void serve_events(gr_http *h, hconn *hc, struct evhttp_request *req)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *b;
    sse *s;

    if (hc->sse || h->nsse >= GR_HTTP_MAX_SSE || !(s = calloc(1, sizeof(*s)))) {
        reply_busy(req);
        return;
    }
    s->hc = hc;
    s->req = req;
    s->next = h->sses;
    h->sses = s;
    h->nsse++;
    hc->sse = s;
    evhttp_add_header(out, "Content-Type", "text/event-stream");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_send_reply_start(req, 200, "OK");
    if ((b = evbuffer_new()) != NULL) {
        evbuffer_add_printf(b, "retry: 2000\n\n");
        evhttp_send_reply_chunk(req, b);
        evbuffer_free(b);
    }
    if (!h->tick_pending) {
        job_start(h, JOB_TICK, NULL, NULL, 0); /* the first picture at once */
    }
}

/* ?limit=N of /api/ps: 1..GR_HTTP_PS_MAX, else the default. */
static uint64_t ps_limit(struct evhttp_request *req)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *q = u ? evhttp_uri_get_query(u) : NULL;
    struct evkeyvalq kv;
    const char *v;
    uint64_t n = GR_HTTP_PS_DEFAULT;

    if (q && evhttp_parse_query_str(q, &kv) == 0) {
        if ((v = evhttp_find_header(&kv, "limit")) != NULL) {
            char *end;
            unsigned long long x = strtoull(v, &end, 10);

            if (*end == '\0' && x >= 1 && x <= GR_HTTP_PS_MAX) {
                n = x;
            }
        }
        evhttp_clear_headers(&kv);
    }
    return n;
}

/* ?token=T on / : the token, checked, to be stored as the dashboard's cookie. */
static bool query_token(const gr_http *h, struct evhttp_request *req, char *ret, size_t cap)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *q = u ? evhttp_uri_get_query(u) : NULL, *v;
    struct evkeyvalq kv;
    bool ok = false;

    if (q && evhttp_parse_query_str(q, &kv) == 0) {
        if ((v = evhttp_find_header(&kv, "token")) != NULL && strlen(v) < cap &&
            strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") ==
                strlen(v) &&
            token_ok(h, v, strlen(v))) {
            snprintf(ret, cap, "%s", v);
            ok = true;
        }
        evhttp_clear_headers(&kv);
    }
    return ok;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    gr_http *h = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    hconn *hc;
    bool open_probe, ok;
    char token[GR_HTTP_TOKEN_MAX + 1] = "";

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_json_msg(req, 405, "Method Not Allowed", "error", "read-only: GET and HEAD only");
        return;
    }
    if (!path || !(hc = hconn_of(h, req))) {
        if (!path) {
            evhttp_send_error(req, 400, NULL);
        } else {
            reply_busy(req);
        }
        return;
    }
    if (hc->job || hc->sse) {
        evhttp_send_error(req, 400, NULL); /* one request at a time per connection */
        return;
    }
    open_probe = strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
                 strcmp(path, "/readyz") == 0;
    ok = !h->need_token || (open_probe && !h->protect_metrics) || authorized(h, req);
    if (strcmp(path, "/") == 0) {
        bool cookie = !ok && h->need_token && query_token(h, req, token, sizeof(token));

        if (!ok && !cookie) {
            reply_unauthorized(req);
        } else {
            serve_dashboard(h, req, cookie, token);
        }
        if (cookie) {
            sodium_memzero(token, sizeof(token));
        }
        return;
    }
    if (!ok) {
        reply_unauthorized(req);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        serve_metrics(h, req);
    } else if (strcmp(path, "/healthz") == 0) {
        reply_json_msg(req, 200, "OK", "status", "alive");
    } else if (strcmp(path, "/readyz") == 0) {
        serve_readyz(h, req);
    } else if (strcmp(path, "/api/nodes") == 0 || strcmp(path, "/api/stats") == 0 ||
               strcmp(path, "/api/ps") == 0) {
        job_kind k = path[5] == 'n' ? JOB_NODES : path[5] == 's' ? JOB_STATS : JOB_PS;

        if (!job_start(h, k, hc, req, k == JOB_PS ? ps_limit(req) : 0)) {
            reply_busy(req);
        }
    } else if (strcmp(path, "/api/events") == 0) {
        serve_events(h, hc, req);
    } else {
        reply_json_msg(req, 404, "Not Found", "error", "no such endpoint");
    }
}

/* ---- the thread ---------------------------------------------------------------------------- */

/* Close everything (HTTP thread, at stop). */
static void shutdown_all(gr_http *h)
{
    hconn_drop_all(h);
    evhttp_free(h->http); /* closes every connection, frees its requests */
    h->http = NULL;
    while (h->jobs) {
        job *j = h->jobs;

        h->jobs = j->next;
        job_free(j);
    }
    event_base_loopbreak(h->base);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    gr_http *h = arg;
    uint64_t v;
    answer *a, *next;

    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
        gr_warn(LOG, "eventfd read: %s", strerror(errno));
    }
    pthread_mutex_lock(&h->lock);
    a = h->answers;
    h->answers = NULL;
    pthread_mutex_unlock(&h->lock);
    for (; a; a = next) {
        next = a->next;
        if (!atomic_load(&h->stopping)) {
            take_answer(h, a);
        }
        free(a);
    }
    if (atomic_load(&h->stopping) && h->http) {
        shutdown_all(h);
    }
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

/* A failed accept (EMFILE: out of descriptors): pause the listener for
 * GR_HTTP_ACCEPT_PAUSE_MS instead of failing the same accept in a loop
 * (libevent's default: with a flood holding every descriptor, that ran this
 * thread hot and wrote 1.55 million log lines in 10 s). One line per pause:
 * at most 1000 / GR_HTTP_ACCEPT_PAUSE_MS a second. The listener's argument
 * is evhttp's, so the timer is a one-shot event of the base (event_base_once:
 * freed when it fires, or with the base; one at a time, as the listener is
 * disabled until it fires). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, GR_HTTP_ACCEPT_PAUSE_MS * 1000};

    (void)arg;
    evconnlistener_disable(l);
    if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, on_accept_retry, l, &tv) < 0) {
        evconnlistener_enable(l); /* no timer: back to libevent's retrying */
    }
    gr_warn(LOG, "accept failed: %s; pausing accepts for %d ms", gr_errid(-err),
            GR_HTTP_ACCEPT_PAUSE_MS);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    gr_http *h = arg;

    if (h->nsse > 0 && !h->tick_pending) {
        job_start(h, JOB_TICK, NULL, NULL, 0);
    }
}

static void *http_main(void *arg)
{
    gr_http *h = arg;

    event_base_dispatch(h->base);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int gr_http_new(const gr_http_config *cfg, gr_http **ret_h)
{
    struct evhttp_bound_socket *bound;
    struct sockaddr_storage ss = {0};
    socklen_t sl = sizeof(ss);
    struct timeval tick = {GR_HTTP_SSE_PERIOD_MS / 1000, (GR_HTTP_SSE_PERIOD_MS % 1000) * 1000};
    char token[GR_HTTP_TOKEN_MAX];
    size_t tlen = 0;
    gr_http *h;
    int r;

    if (!cfg->host || !cfg->rpc) {
        return -EINVAL;
    }
    if (!(h = calloc(1, sizeof(*h)))) {
        return -ENOMEM;
    }
    h->wake_fd = -1;
    h->rpc = cfg->rpc;
    h->pubsub = cfg->pubsub;
    h->protect_metrics = cfg->protect_metrics;
    h->need_token = cfg->require_token || cfg->protect_metrics || !gr_http_is_loopback(cfg->host);
    if ((r = pthread_mutex_init(&h->lock, NULL)) != 0) {
        free(h);
        return -r;
    }
    if (h->need_token || cfg->token_file) {
        if (!cfg->token_file) {
            r = GR_EHTTPTOKEN;
            goto fail;
        }
        if ((r = gr_http_token_load(cfg->token_file, token, &tlen)) < 0) {
            goto fail;
        }
        crypto_generichash(h->token_hash, sizeof(h->token_hash), (const uint8_t *)token, tlen, NULL,
                           0);
        sodium_memzero(token, sizeof(token));
        h->need_token = true; /* a token given is a token asked for */
    }
    if (cfg->nseeds && !(h->seeds = calloc(cfg->nseeds, sizeof(*h->seeds)))) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->nseeds; i++) {
        if (!(h->seeds[h->nseeds++] = strdup(cfg->seeds[i]))) {
            r = -ENOMEM;
            goto fail;
        }
    }
    r = -ENOMEM;
    if ((h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        r = -errno;
        goto fail;
    }
    if (!(h->base = event_base_new()) || !(h->http = evhttp_new(h->base)) ||
        !(h->wake_ev = event_new(h->base, h->wake_fd, EV_READ | EV_PERSIST, on_wake, h)) ||
        !(h->tick_ev = event_new(h->base, -1, EV_PERSIST, on_tick, h)) ||
        event_add(h->wake_ev, NULL) < 0 || event_add(h->tick_ev, &tick) < 0) {
        goto fail;
    }
    evhttp_set_max_headers_size(h->http, GR_HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->http, GR_HTTP_MAX_BODY);
    evhttp_set_timeout(h->http, GR_HTTP_TIMEOUT_S);
    /* every method reaches on_request, which answers 405 to all but GET and
     * HEAD (evhttp's own refusal would be a 501) */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(h->http, on_request, h);
    errno = 0;
    if (!(bound = evhttp_bind_socket_with_handle(h->http, cfg->host, cfg->port))) {
        r = errno ? -errno : -EADDRNOTAVAIL;
        goto fail;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), on_accept_error);
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl) == 0) {
        in_port_t nport = 0;

        if (ss.ss_family == AF_INET6) {
            memcpy(&nport, &((struct sockaddr_in6 *)&ss)->sin6_port, sizeof(nport));
        } else {
            memcpy(&nport, &((struct sockaddr_in *)&ss)->sin_port, sizeof(nport));
        }
        h->port = ntohs(nport);
    }
    *ret_h = h;
    return 0;
fail:
    sodium_memzero(token, sizeof(token));
    gr_http_free(h);
    return r;
}

void gr_http_set_pubsub(gr_http *h, gr_pubsub *pubsub)
{
    h->pubsub = pubsub;
}

uint16_t gr_http_port(const gr_http *h)
{
    return h->port;
}

int gr_http_start(gr_http *h)
{
    int r;

    if ((r = pthread_create(&h->thread, NULL, http_main, h)) != 0) {
        return -r;
    }
    (void)pthread_setname_np(h->thread, "gr-http");
    h->started = true;
    return 0;
}

void gr_http_stop(gr_http *h)
{
    if (!h) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->stopped = true;
    pthread_mutex_unlock(&h->lock);
    if (h->started) {
        atomic_store(&h->stopping, true);
        wake(h);
        pthread_join(h->thread, NULL);
        h->started = false;
    }
}

gr_http *gr_http_free(gr_http *h)
{
    answer *a, *next;

    if (!h) {
        return NULL;
    }
    gr_http_stop(h);
    hconn_drop_all(h);
    if (h->http) {
        evhttp_free(h->http);
    }
    while (h->jobs) {
        job *j = h->jobs;

        h->jobs = j->next;
        job_free(j);
    }
    for (a = h->answers; a; a = next) {
        next = a->next;
        free(a);
    }
    if (h->wake_ev) {
        event_free(h->wake_ev);
    }
    if (h->tick_ev) {
        event_free(h->tick_ev);
    }
    if (h->base) {
        event_base_free(h->base);
    }
    if (h->wake_fd >= 0) {
        close(h->wake_fd);
    }
    for (size_t i = 0; i < h->nseeds; i++) {
        free(h->seeds[i]);
    }
    free(h->seeds);
    sodium_memzero(h->token_hash, sizeof(h->token_hash));
    pthread_mutex_destroy(&h->lock);
    free(h);
    return NULL;
}
