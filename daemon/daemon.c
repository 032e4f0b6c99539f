/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.c - the node daemon (daemon.h): reads the configuration, starts the
 * runtime, registers the behaviours and rpc modules (the built-in ones and an
 * extension's), runs the node's services under the root supervisor, and stops
 * it all cleanly on SIGINT / SIGTERM. girderd and girderd-testkit are each a
 * main that calls gr_daemon_run.
 *
 * Exit status: 0 after a clean stop, 1 when the node could not start or its
 * root supervisor died on its own, 2 for a bad configuration (the message
 * names the file, line and key) or an unusable cookie. docs/operations.md is the operator's view.
 *
 * Design notes
 * - Signals: SIGINT, SIGTERM, SIGHUP and SIGUSR1 are blocked before any thread
 *   starts, so every thread inherits the mask and only the main thread, in
 *   sigwait, ever sees them. No async-signal-safety puzzles.
 * - The main thread talks to processes through a probe (runtime/rt.h). The
 *   probe spawns the root supervisor with a monitor, so the root's exit arrives
 *   as exactly one DOWN message in the probe's queue.
 * - The main thread cannot block in sigwait and in gr_probe_recv at once, so a
 *   small watcher thread waits for that DOWN. If the root dies on its own, the
 *   watcher raises SIGUSR1 and main shuts the node down with status 1. On a
 *   normal stop main sends the root an exit signal and joins the watcher with a
 *   deadline; a "$wake" message releases the watcher if the deadline passes.
 */
#include "daemon.h"

#include "config/config.h"
#include "dist/dist.h"
#include "gr_version.h"
#include "http/http.h"
#include "proto/cookie.h"
#include "proto/handshake.h"
#include "proto/err.h"
#include "plugin/plugin.h"
#include "port/port.h"
#include "proto/term.h"
#include "pubsub/pubsub.h"
#include "redis/redis.h"
#include "rpc/rpc.h"
#include "runtime/rt.h"
#include "services/services.h"
#include "services/sys.h"
#include "tables/repl.h"
#include "util/log.h"
#include "util/sd.h"

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READY_POLL_MS 50 /* readiness: how often main looks for a connected seed */

#define EXIT_CONFIG 2         /* bad configuration */
#define START_TIMEOUT_MS 5000 /* root supervisor must answer within this */
#define STOP_TIMEOUT_MS 5000  /* root supervisor must be DOWN within this */
#define WAKE_ATOM "$wake"     /* main -> watcher: stop waiting */
#define LEAVE_TIMEOUT_MS 3000 /* SIGTERM: Leave + flush to peers within this */

/* State shared by the main thread and the watcher thread. */
typedef struct node {
    girder_rt *rt;         /* the runtime */
    gr_probe *probe;       /* main's mailbox; monitors the root */
    girder_pid root;       /* root supervisor */
    pthread_t watcher;     /* waits for the root's DOWN */
    bool watcher_started;  /* watcher must be joined */
    atomic_bool stopping;  /* main began a requested shutdown */
    bool root_down;        /* written by watcher, read after join */
    char root_reason[128]; /* root's exit reason as text (after join) */
    gr_rpc *rpc;           /* serves rpc requests (workers on the schedulers) */
    gr_pubsub *pubsub;     /* topics and groups; its keeper serves rpc `pubsub` */
    gr_dist *dist;         /* links to the cluster (its own thread) */
    gr_plugins *plugins;   /* the plugin loader; serves rpc `plugin` */
    gr_ports *ports;       /* behaviour "port", its spawner thread; rpc `port` */
    gr_redis *redis;       /* the Redis listener (--redis), or NULL */
    gr_http *http;         /* the --http listener (its own thread), or NULL */
} node;

/* What a message from the probe's queue is, for main and the watcher. */
typedef enum probe_msg_kind { MSG_OTHER, MSG_REPLY, MSG_DOWN, MSG_WAKE } probe_msg_kind;

/* Classify m; for a DOWN, write its reason as text into reason[len]. The probe
 * monitors only the root and makes one call at start, so the kind alone is
 * enough to know whose DOWN or reply it is. */
static probe_msg_kind classify(const girder_msg *m, char *reason, size_t len)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    probe_msg_kind kind = MSG_OTHER;

    if (girder_msg_is_atom(m, WAKE_ATOM)) {
        return MSG_WAKE;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(m, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size >= 1) {
        o = up.data.via.array.ptr;
        if (up.data.via.array.size == 3 && gr_term_is_str(&o[0], "$reply")) {
            kind = MSG_REPLY;
        } else if (up.data.via.array.size == 5 && gr_term_is_str(&o[0], "DOWN")) {
            kind = MSG_DOWN;
            if (reason && len) {
                if (o[4].type == MSGPACK_OBJECT_STR) {
                    snprintf(reason, len, "%.*s", (int)o[4].via.str.size, o[4].via.str.ptr);
                } else if (msgpack_object_print_buffer(reason, len, o[4]) <= 0) {
                    snprintf(reason, len, "(unprintable term)");
                }
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    return kind;
}

/* ---- starting the root supervisor --------------------------------------------------- */

typedef struct root_start {
    const girder_msg *arg; /* supervisor spawn argument (borrowed) */
    girder_pid pid;        /* out: root pid */
} root_start;

/* Runs inside the probe: spawn the root with a monitor and register its name. */
static int start_root(girder_ctx *ctx, void *arg)
{
    root_start *rs = arg;
    girder_ref mref;
    int r;

    if ((r = girder_spawn(ctx, &girder_supervisor, rs->arg, GIRDER_SPAWN_MONITOR, &rs->pid,
                          &mref)) < 0) {
        return r;
    }
    return girder_register(ctx, GR_SERVICES_ROOT_NAME, rs->pid);
}

typedef struct root_call {
    girder_pid root; /* whom to ask */
} root_call;

/* Runs inside the probe: ask the root ["count_children"]; the reply lands in the
 * probe's queue. */
static int call_root(girder_ctx *ctx, void *arg)
{
    root_call *rc = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *req;
    girder_ref ref;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "count_children", 14);
    req = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!req) {
        return -ENOMEM;
    }
    r = girder_call(ctx, rc->root, req, false, &ref);
    girder_msg_unref(req);
    return r;
}

static uint64_t mono_ms(void)
{
    return gr_sys_now_ms();
}

/* Spawn the root supervisor and wait until it answers a call, which proves its
 * init ran and its children started. 0, or a negative error (logged). */
static int start_services(node *n, const gr_config *cfg, uint64_t started_ms)
{
    gr_services_env env = {.cfg = cfg, .started_ms = started_ms};
    root_start rs = {0};
    root_call rc;
    girder_msg *arg = NULL, *m;
    uint64_t deadline;
    int r;

    if ((r = gr_services_root_arg(&env, &arg)) < 0) {
        gr_error("node", "cannot build the root supervisor's child specs: %s", gr_strerror(r));
        return r;
    }
    rs.arg = arg;
    r = gr_probe_run(n->probe, start_root, &rs);
    girder_msg_unref(arg);
    if (r < 0) {
        gr_error("node", "cannot start the root supervisor: %s", gr_strerror(r));
        return r;
    }
    n->root = rs.pid;
    rc.root = rs.pid;
    if ((r = gr_probe_run(n->probe, call_root, &rc)) < 0) {
        gr_error("node", "cannot call the root supervisor: %s", gr_strerror(r));
        return r;
    }
    deadline = mono_ms() + START_TIMEOUT_MS;
    for (;;) {
        uint64_t now = mono_ms();
        probe_msg_kind kind;

        if (now >= deadline || gr_probe_recv(n->probe, (int)(deadline - now), &m) == -ETIMEDOUT) {
            gr_error("node", "root supervisor did not answer within %d ms", START_TIMEOUT_MS);
            return GR_ETIMEOUT;
        }
        kind = classify(m, n->root_reason, sizeof(n->root_reason));
        girder_msg_unref(m);
        if (kind == MSG_REPLY) {
            return 0;
        }
        if (kind == MSG_DOWN) {
            n->root_down = true;
            gr_error("node", "root supervisor failed to start: %s", n->root_reason);
            return GR_EINIT;
        }
    }
}

/* ---- watching the root ---------------------------------------------------------------- */

static void *watch_root(void *arg)
{
    node *n = arg;
    girder_msg *m;

    for (;;) {
        probe_msg_kind kind;

        if (gr_probe_recv(n->probe, -1, &m) < 0) {
            continue;
        }
        kind = classify(m, n->root_reason, sizeof(n->root_reason));
        girder_msg_unref(m);
        if (kind == MSG_DOWN) {
            n->root_down = true;
            if (!atomic_load(&n->stopping)) {
                kill(getpid(), SIGUSR1); /* blocked everywhere: main's sigwait takes it */
            }
            return NULL;
        }
        if (kind == MSG_WAKE) {
            return NULL;
        }
    }
}

/* Stop the root supervisor (its children stop first, in reverse order) and wait
 * for its DOWN up to STOP_TIMEOUT_MS. */
static void stop_services(node *n)
{
    girder_msg *reason = girder_msg_atom("shutdown");
    struct timespec dl;

    atomic_store(&n->stopping, true);
    if (!reason || gr_rt_exit(n->rt, n->root, reason) < 0) {
        gr_warn("node", "cannot signal the root supervisor; stopping the runtime directly");
    }
    girder_msg_unref(reason);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += STOP_TIMEOUT_MS / 1000;
    if (pthread_timedjoin_np(n->watcher, NULL, &dl) != 0) {
        girder_msg *wake = girder_msg_atom(WAKE_ATOM);

        gr_warn("node", "root supervisor still running after %d ms; stopping the runtime",
                STOP_TIMEOUT_MS);
        if (!wake || gr_rt_send(n->rt, gr_probe_pid(n->probe), wake) < 0) {
            girder_msg_unref(wake);
        }
        pthread_join(n->watcher, NULL);
    } else {
        gr_info("node", "root supervisor stopped: %s", n->root_reason);
    }
    n->watcher_started = false;
}

/* ---- the cluster ---------------------------------------------------------------------------- */

/* The cookie, first source that exists: --cookie-file, GIRDER_COOKIE,
 * GIRDER_COOKIE_FILE, the INI file's cookie_file, the default file
 * (gr_config_cookie_path, proto/cookie.h). With none of them, the default file
 * is created with a fresh random cookie (as Erlang creates ~/.erlang.cookie), so
 * a node runs with no configuration at all. 0 or a negative error (logged). */
static int load_cookie(const gr_config *cfg, gr_cookie *ret)
{
    char path[GR_COOKIE_PATH_MAX];
    const char *env_file = getenv(GR_COOKIE_FILE_ENV);
    const char *file = gr_config_cookie_path(cfg, getenv(GR_COOKIE_ENV), env_file);
    int r;

    if (cfg->cookie_file && !file) {
        gr_notice("node", "the cookie comes from $%s, not from cookie_file = %s of %s",
                  getenv(GR_COOKIE_ENV) ? GR_COOKIE_ENV : GR_COOKIE_FILE_ENV, cfg->cookie_file,
                  cfg->file ? cfg->file : "the configuration");
    }
    r = gr_cookie_resolve(file, ret);
    if (r == -ENOENT && !file && !getenv(GR_COOKIE_ENV) && !(env_file && env_file[0]) &&
        gr_cookie_default_path(path, sizeof(path)) == 0) {
        if ((r = gr_cookie_generate(path, ret)) == 0) {
            gr_notice("node", "no cookie found: created %s with a new random cookie", path);
            return 0;
        }
        if (r == -EEXIST) { /* another node created it meanwhile */
            r = gr_cookie_load_file(path, ret);
        }
        if (r < 0) {
            gr_error("node", "no cookie found and cannot create %s: %s", path, gr_strerror(r));
        }
        return r;
    }
    if (r < 0) {
        const char *src = file                      ? file
                          : getenv(GR_COOKIE_ENV)   ? "$" GR_COOKIE_ENV
                          : env_file && env_file[0] ? env_file
                                                    : "the default cookie file";

        gr_error("node", "cannot use the cookie from %s: %s", src, gr_strerror(r));
    }
    return r;
}

/* observer_key_file, if set: read like the cookie file (a regular file with no
 * permission bits for group or others). *ret_key len 0 when unset. 0 or a
 * negative error (logged). */
static int load_observer_key(const gr_config *cfg, gr_cookie *ret_key)
{
    int r;

    memset(ret_key, 0, sizeof(*ret_key));
    if (cfg->observer_key_file == NULL) {
        return 0;
    }
    if ((r = gr_cookie_load_file(cfg->observer_key_file, ret_key)) < 0) {
        gr_error("node", "cannot use the observer key from %s: %s%s", cfg->observer_key_file,
                 gr_strerror(r), r == GR_ECOOKIEPERM ? " (chmod 600 it)" : "");
        gr_cookie_wipe(ret_key);
        return r;
    }
    gr_info("node", "observer key from %s: observer CLIs may read", cfg->observer_key_file);
    return 0;
}

_Static_assert(GR_CONFIG_ACCEPT_MAX == GR_HANDSHAKE_ACCEPT_MAX, "accepted cookies");

/* The cookies a node accepts besides its own (cookie rotation). */
typedef struct accepted {
    gr_cookie c[GR_CONFIG_ACCEPT_MAX]; /* n of them; wiped by accepted_wipe */
    size_t n;                          /* 0..GR_CONFIG_ACCEPT_MAX */
} accepted;

static void accepted_wipe(accepted *a)
{
    for (size_t i = 0; i < GR_CONFIG_ACCEPT_MAX; i++) {
        gr_cookie_wipe(&a->c[i]);
    }
    a->n = 0;
}

/* Every accept_cookie_file, read like the cookie file (a regular file with no
 * permission bits for group or others). A file that does not exist accepts
 * nothing (the rotation procedure creates and removes it); any other failure
 * is an error (logged), *ret wiped. Main thread. */
static int load_accepted(const gr_config *cfg, accepted *ret)
{
    int r;

    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < cfg->naccept; i++) {
        const char *f = cfg->accept_cookie_files[i];

        if ((r = gr_cookie_load_file(f, &ret->c[ret->n])) == -ENOENT) {
            gr_info("node", "accept_cookie_file %s does not exist: nothing accepted from it", f);
            continue;
        }
        if (r < 0) {
            gr_error("node", "cannot use the accepted cookie from %s: %s%s", f, gr_strerror(r),
                     r == GR_ECOOKIEPERM ? " (chmod 600 it)" : "");
            accepted_wipe(ret);
            return r;
        }
        ret->n++;
    }
    return 0;
}

/* SIGHUP: read the cookie and the accepted cookies again and hand them to the
 * dist layer for every later handshake; links up stay up. On any failure the
 * node keeps the ones it had (logged). Main thread. */
static void reload_cookies(node *n, const gr_config *cfg)
{
    gr_cookie cookie;
    accepted acc;
    int r;

    if (load_cookie(cfg, &cookie) < 0) {
        gr_error("node", "SIGHUP: cookies not reloaded; the previous ones stay in use");
        return;
    }
    if (load_accepted(cfg, &acc) < 0) {
        gr_cookie_wipe(&cookie);
        gr_error("node", "SIGHUP: cookies not reloaded; the previous ones stay in use");
        return;
    }
    if ((r = gr_dist_set_cookies(n->dist, &cookie, acc.c, acc.n)) < 0) {
        gr_error("node", "SIGHUP: cookies not reloaded: %s", gr_strerror(r));
    } else {
        gr_notice("node", "SIGHUP: cookies reloaded (%zu accepted besides the cookie)", acc.n);
    }
    gr_cookie_wipe(&cookie);
    accepted_wipe(&acc);
}

/* node.leave: answered "ok"; now stop as on SIGTERM (Leave to every peer). */
static void leave_node(void *ud)
{
    kill(getpid(), SIGTERM); /* blocked everywhere: main's sigwait takes it */
}

/* rpc + dist, made before the schedulers start so that the runtime's hook for
 * signals to other nodes is in place from the first process on. Nothing
 * listens yet. 0 or a negative error (logged). */
/* The runtime's node-monitor hook (girder_monitor_nodes): ud is the gr_dist.
 * Scheduler threads. */
static int node_monitor_hook(void *ud, girder_pid pid, bool on)
{
    return gr_dist_monitor_nodes(ud, pid, on);
}

/* The replicated tables' plug into dist (dist.h gr_dist_repl_ops; ud is the
 * engine's gr_trepl). Dist thread. */
static int repl_wake_fd(void *ud)
{
    return gr_trepl_wake_fd(ud);
}
static void repl_peer_up(void *ud, const char *peer)
{
    gr_trepl_peer_up(ud, peer);
}
static void repl_peer_down(void *ud, const char *peer)
{
    gr_trepl_peer_down(ud, peer);
}
static void repl_drain(void *ud, gr_dist_repl_emit emit, void *ctx)
{
    gr_trepl_drain(ud, emit, ctx);
}
static void repl_sync(void *ud, const char *peer, bool hello, gr_dist_repl_emit emit, void *ctx)
{
    gr_trepl_sync(ud, peer, hello, emit, ctx);
}
static int repl_recv(void *ud, const char *peer, const void *frame, gr_dist_repl_emit emit,
                     void *ctx)
{
    return gr_trepl_recv(ud, peer, frame, emit, ctx);
}
static const gr_dist_repl_ops REPL_OPS = {
    .wake_fd = repl_wake_fd,
    .peer_up = repl_peer_up,
    .peer_down = repl_peer_down,
    .drain = repl_drain,
    .sync = repl_sync,
    .recv = repl_recv,
};

/* Where the rpc's answers go: those to the HTTP API's own requests
 * (GR_HTTP_CONN_FLAG) to the listener, the rest to dist. n->dist and n->http
 * are set before the first request that could need them. Worker threads, and
 * the dist or HTTP thread for inline answers. */
static int route_reply(void *ud, uint64_t conn, uint64_t ref, int status, const void *result,
                       size_t len)
{
    node *n = ud;

    if (conn & GR_HTTP_CONN_FLAG) {
        return n->http ? gr_http_rpc_reply(n->http, conn, ref, status, result, len) : GR_ENOCONN;
    }
    return n->dist ? gr_dist_reply(n->dist, conn, ref, status, result, len) : GR_ENOCONN;
}

static int prepare_cluster(node *n, const gr_config *cfg, const gr_cookie *cookie,
                           const accepted *acc, const gr_cookie *observer, uint64_t started_ms,
                           const gr_daemon_ext *ext)
{
    gr_rpc_config rc = {.rt = n->rt,
                        .started_ms = started_ms,
                        .reply_fn = route_reply,
                        .reply_ud = n,
                        .leave_fn = leave_node,
                        .leave_ud = n,
                        .modules = ext ? ext->modules : NULL,
                        .nmodules = ext ? ext->nmodules : 0,
                        .data_dir = cfg->data_dir};
    gr_dist_seed *seeds = NULL;
    gr_dist_dns *disc = NULL;
    int r;

    if ((r = gr_rpc_new(&rc, &n->rpc)) < 0) {
        if (cfg->data_dir) {
            gr_error("node", "cannot create the rpc service or open the tables in %s: %s",
                     cfg->data_dir, gr_strerror(r));
        } else {
            gr_error("node", "cannot create the rpc service: %s", gr_strerror(r));
        }
        return r;
    }
    if (cfg->nseeds && !(seeds = calloc(cfg->nseeds, sizeof(*seeds)))) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->nseeds; i++) {
        seeds[i] = (gr_dist_seed){cfg->seeds[i].node, cfg->seeds[i].host, cfg->seeds[i].port};
    }
    if (cfg->ndiscover && !(disc = calloc(cfg->ndiscover, sizeof(*disc)))) {
        free(seeds);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->ndiscover; i++) {
        disc[i] = (gr_dist_dns){cfg->discover[i].name, cfg->discover[i].port};
    }
    gr_dist_config dc = {
        .rt = n->rt,
        .name = gr_rt_node_name(n->rt),
        .creation = gr_rt_creation(n->rt),
        .cookie = cookie,
        .accept = acc->c,
        .n_accept = acc->n,
        .observer_key = observer->len ? observer : NULL,
        .listen_host = cfg->listen_host,
        .listen_port = cfg->listen_port,
        .seeds = seeds,
        .nseeds = cfg->nseeds,
        .discover = disc,
        .ndiscover = cfg->ndiscover,
        .discover_ms = cfg->discover_ms,
        .detection_ms = cfg->detection_ms,
        .out_high_bytes = (size_t)cfg->link_high_water,
        .chacha_only = !cfg->cipher_fast,
        .rpc_fn = gr_rpc_dispatch,
        .rpc_ud = n->rpc,
    };
    r = gr_dist_new(&dc, &n->dist);
    free(seeds);
    free(disc);
    if (r < 0) {
        gr_error("node", "cannot set up distribution: %s", gr_strerror(r));
        return r;
    }
    if (gr_rpc_tables(n->rpc) &&
        (r = gr_dist_set_repl(n->dist, &REPL_OPS, gr_tables_repl(gr_rpc_tables(n->rpc)))) < 0) {
        gr_error("node", "cannot set up table replication: %s", gr_strerror(r));
        return r;
    }
    gr_rpc_set_dist(n->rpc, n->dist);
    gr_rt_set_remote(n->rt, gr_dist_remote_hook, n->dist);
    gr_rt_set_node_monitor(n->rt, node_monitor_hook, n->dist);
    return 0;
}

/* Listen and dial the seeds. 0 or a negative error (logged). */
static int start_cluster(node *n, const gr_config *cfg)
{
    int r = gr_dist_start(n->dist);

    if (r < 0) {
        gr_error("node", "cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
                 gr_strerror(r));
    }
    return r;
}

/* The --http listener: check its token and bind now (so a bad token file or
 * a taken port stops the start), serve once the node is up (serve_http). 0 or
 * a negative error (logged). */
static int prepare_http(node *n, const gr_config *cfg)
{
    const char **seeds = NULL;
    int r;

    if (cfg->nseeds && !(seeds = calloc(cfg->nseeds, sizeof(*seeds)))) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->nseeds; i++) {
        seeds[i] = cfg->seeds[i].node;
    }
    gr_http_config hc = {
        .host = cfg->http_host,
        .port = cfg->http_port,
        .token_file = cfg->http_token_file,
        .require_token = cfg->http_require_token,
        .protect_metrics = cfg->http_protect_metrics,
        .rpc = n->rpc,
        .seeds = seeds,
        .nseeds = cfg->nseeds,
    };
    r = gr_http_new(&hc, &n->http);
    free(seeds);
    if (r == GR_EHTTPTOKEN) {
        gr_error("node", "cannot serve HTTP on %s:%u: %s (%s)", cfg->http_host, cfg->http_port,
                 gr_strerror(r),
                 cfg->http_token_file ? cfg->http_token_file
                                      : "a non-loopback address needs http_token_file");
    } else if (r < 0) {
        gr_error("node", "cannot serve HTTP on %s:%u: %s", cfg->http_host, cfg->http_port,
                 gr_strerror(r));
    }
    return r;
}

/* Start the listener's thread (after the services and dist are up). */
static int serve_http(node *n, const gr_config *cfg)
{
    int r;

    gr_http_set_pubsub(n->http, n->pubsub);
    if ((r = gr_http_start(n->http)) < 0) {
        gr_error("node", "cannot start the HTTP thread: %s", gr_strerror(r));
        return r;
    }
    gr_info("node", "http listening on %s:%u", cfg->http_host, gr_http_port(n->http));
    return 0;
}

/* ---- what the node runs ------------------------------------------------------------------ */

/* Register every behaviour: the built-in ones (services/services.c), then the
 * extension's. The rpc modules are registered with the gr_rpc
 * (prepare_cluster: rpc.c's built-in table, then ext->modules). 0 or a
 * negative error (logged). */
static int register_behaviours(girder_rt *rt, const gr_daemon_ext *ext)
{
    int r;

    if ((r = gr_services_register(rt)) < 0) {
        gr_error("node", "cannot register the services' behaviours: %s", gr_strerror(r));
        return r;
    }
    for (size_t i = 0; ext && i < ext->nbehaviours; i++) {
        if ((r = girder_behaviour_register(rt, ext->behaviours[i])) < 0) {
            gr_error("node", "cannot register the behaviour %s: %s", ext->behaviours[i]->name,
                     gr_strerror(r));
            return r;
        }
    }
    return 0;
}

/* The loader and the plugins of --plugin / [plugins], in order, before the
 * root supervisor starts (so its children may run plugin behaviours). A
 * plugin that cannot load stops the start. 0 or a negative error (logged). */
static int load_plugins(node *n, const gr_config *cfg)
{
    int r;

    if ((r = gr_plugins_new(n->rt, n->rpc, &n->plugins)) < 0) {
        gr_error("node", "cannot create the plugin loader: %s", gr_strerror(r));
        return r;
    }
    for (size_t i = 0; i < cfg->nplugins; i++) {
        if ((r = gr_plugins_load(n->plugins, cfg->plugins[i], NULL)) < 0) {
            gr_error("node", "cannot load plugin %s: %s", cfg->plugins[i], gr_strerror(r));
            return r;
        }
    }
    return 0;
}

/* ---- systemd: readiness and the watchdog ------------------------------------------------- */

/* Is a link to one of the seeds up? Main thread (a snapshot from dist). */
static bool seed_connected(const node *n, const gr_config *cfg)
{
    gr_dist_member *ms = NULL;
    size_t nm = 0;
    bool up = false;

    if (gr_dist_members(n->dist, &ms, &nm) < 0) {
        return false;
    }
    for (size_t i = 0; i < nm && !up; i++) {
        for (size_t s = 0; s < cfg->nseeds && !up; s++) {
            up = ms[i].state == GR_DIST_UP && strcmp(ms[i].name, cfg->seeds[s].node) == 0;
        }
    }
    free(ms);
    return up;
}

/* READY=1 once listening and, with seeds, once one is connected or
 * ready_wait_seeds_ms passed (docs/operations.md, "systemd"). Returns true
 * once sent (or not needed). Main thread. */
static bool check_ready(const node *n, const gr_config *cfg, uint64_t listening_ms)
{
    bool seed = cfg->nseeds > 0 && seed_connected(n, cfg);
    uint64_t waited = mono_ms() - listening_ms;

    if (cfg->nseeds > 0 && !seed && waited < cfg->ready_wait_seeds_ms) {
        return false;
    }
    gr_log_fields(GR_LOG_INFO, "node",
                  (gr_log_field[]){{"event", "ready"},
                                   {"seeds", cfg->nseeds == 0 ? "none"
                                             : seed           ? "connected"
                                                              : "gave_up"}},
                  2, "ready%s",
                  cfg->nseeds == 0 ? ""
                  : seed           ? ": a seed is connected"
                                   : ": no seed connected, serving alone");
    (void)gr_sd_notify("READY=1");
    return true;
}

/* The watchdog's proof of life: one page of the process list, which every
 * scheduler must answer (gr_rt_process_list), so a hung scheduler - or a
 * main thread stuck anywhere - means no WATCHDOG=1 and systemd restarts the
 * node. Main thread. */
static void watchdog_ping(const node *n)
{
    girder_pid *pids = NULL;
    uint64_t total = 0;
    size_t got = 0;

    if (gr_rt_process_list(n->rt, 0, 1, &pids, &got, &total, NULL) == 0) {
        (void)gr_sd_notify("WATCHDOG=1");
    }
    free(pids);
}

/* Wait for one of `sigs` for at most timeout_ms (-1: forever). The signal, 0
 * on timeout, or -errno. Main thread. */
static int wait_signal(const sigset_t *sigs, int64_t timeout_ms)
{
    struct timespec ts;
    int sig, r;

    if (timeout_ms < 0) {
        return (r = sigwait(sigs, &sig)) != 0 ? -r : sig;
    }
    ts.tv_sec = (time_t)(timeout_ms / 1000);
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    if ((sig = sigtimedwait(sigs, NULL, &ts)) < 0) {
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    }
    return sig;
}

/* ---- the node ----------------------------------------------------------------------------- */

static void log_config(const gr_config *cfg)
{
    gr_info("node", "config: %s; listen %s:%u, %zu seed(s)",
            cfg->file ? cfg->file : "no file (defaults and flags)", cfg->listen_host,
            cfg->listen_port, cfg->nseeds);
    for (size_t i = 0; i < cfg->nseeds; i++) {
        gr_debug("node", "seed %s at %s:%u", cfg->seeds[i].node, cfg->seeds[i].host,
                 cfg->seeds[i].port);
    }
}

/* libevent's own messages (evdns's "Nameserver ... has failed", a failed
 * epoll_ctl) as the node's log lines, module "libevent", instead of libevent's
 * bare "[msg] ..." on stderr. Installed once before any thread starts; called
 * on whichever thread libevent logs from (gr_log is thread-safe). */
static void on_libevent_log(int severity, const char *msg)
{
    enum gr_log_level level = severity == EVENT_LOG_DEBUG  ? GR_LOG_DEBUG
                              : severity == EVENT_LOG_MSG  ? GR_LOG_INFO
                              : severity == EVENT_LOG_WARN ? GR_LOG_WARN
                                                           : GR_LOG_ERROR;

    gr_log(level, "libevent", "%s", msg);
}

static int run(const gr_config *cfg, const char *prog, const gr_daemon_ext *ext)
{
    uint64_t started_ms = mono_ms();
    gr_rt_config rcfg = {.node_name = cfg->name, .creation = 0, .schedulers = cfg->schedulers};
    node n = {0};
    gr_cookie cookie, observer;
    accepted acc;
    sigset_t sigs;
    uint64_t wd_half_ms, next_wd_ms, listening_ms;
    bool ready, journal;
    int rc = EXIT_FAILURE, sig, r;

    gr_log_setup(prog, cfg->log_level);
    gr_log_set_format(cfg->log_json, cfg->name);
    journal =
        gr_sd_open() && gr_sd_journal_setup(cfg->name); /* under systemd: lines go to journald */
    event_set_log_callback(on_libevent_log);
    /* Messages are allocated on one thread and freed on another (a scheduler
     * and the dist thread); glibc then keeps returning the top of the heap to
     * the kernel and faulting it back in. Keep 64 MiB of slack instead: the
     * node-to-node stream benchmark goes from ~0.45 M to ~0.65 M msgs/s.
     * After a busy link drains, the dist layer lowers them to give memory
     * back, and raises them again at the next busy link (conn.c). */
    mallopt(M_TRIM_THRESHOLD, GR_DIST_MALLOC_TRIM_ROOMY);
    mallopt(M_TOP_PAD, GR_DIST_MALLOC_PAD_ROOMY);

    /* Before any thread exists, so all of them inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    if ((r = pthread_sigmask(SIG_BLOCK, &sigs, NULL)) != 0) {
        gr_error("node", "cannot block signals: %s", strerror(r));
        return EXIT_FAILURE;
    }
    signal(SIGPIPE, SIG_IGN); /* peers that vanish are handled via EPIPE */

    log_config(cfg);
    if (journal) {
        gr_debug("node", "logging to the journal");
    }
    /* The cookie is configuration: a missing or unsafe one is exit 2, before
     * anything starts. So is the observer key. */
    if (load_cookie(cfg, &cookie) < 0) {
        return EXIT_CONFIG;
    }
    if (load_observer_key(cfg, &observer) < 0) {
        gr_cookie_wipe(&cookie);
        return EXIT_CONFIG;
    }
    if (load_accepted(cfg, &acc) < 0) {
        gr_cookie_wipe(&cookie);
        gr_cookie_wipe(&observer);
        return EXIT_CONFIG;
    }
    if (acc.n > 0) {
        gr_info("node", "accepting %zu cookie(s) besides the cookie (accept_cookie_file)", acc.n);
    }
    /* The Redis listener's settings are configuration too (protected mode, the
     * password file): checked, and its port taken, before anything starts. */
    if (cfg->redis_host) {
        gr_redis_config rcf = {.host = cfg->redis_host,
                               .port = cfg->redis_port,
                               .password_file = cfg->redis_password_file,
                               .table = cfg->redis_table,
                               .data_dir = cfg->data_dir};

        if ((r = gr_redis_new(&rcf, &n.redis)) < 0) {
            gr_cookie_wipe(&cookie);
            gr_cookie_wipe(&observer);
            accepted_wipe(&acc);
            return r == GR_ECONFIG ? EXIT_CONFIG : EXIT_FAILURE;
        }
    }
    if ((r = gr_rt_new(&rcfg, &n.rt)) < 0) {
        gr_error("node", "cannot create the runtime for %s: %s", cfg->name, gr_strerror(r));
        gr_cookie_wipe(&cookie);
        gr_cookie_wipe(&observer);
        accepted_wipe(&acc);
        gr_redis_free(n.redis);
        return EXIT_FAILURE;
    }
    if (register_behaviours(n.rt, ext) < 0) {
        goto out;
    }
    if (prepare_cluster(&n, cfg, &cookie, &acc, &observer, started_ms, ext) < 0) {
        goto out;
    }
    if (cfg->http_host && (r = prepare_http(&n, cfg)) < 0) {
        rc = r == GR_EHTTPTOKEN ? EXIT_CONFIG : EXIT_FAILURE;
        goto out;
    }
    if ((r = gr_ports_new(n.rt, n.rpc, &n.ports)) < 0) {
        gr_error("node", "cannot set up ports: %s", gr_strerror(r));
        goto out;
    }
    if (load_plugins(&n, cfg) < 0) {
        goto out;
    }
    if ((r = gr_rt_start(n.rt)) < 0) {
        gr_error("node", "cannot start the schedulers: %s", gr_strerror(r));
        goto out;
    }
    if ((r = gr_probe_new(n.rt, &n.probe)) < 0) {
        gr_error("node", "cannot create the main thread's probe: %s", gr_strerror(r));
        goto out;
    }
    if ((r = gr_pubsub_new(n.rt, &n.pubsub)) < 0) {
        gr_error("node", "cannot start pubsub: %s", gr_strerror(r));
        goto out;
    }
    if (start_services(&n, cfg, started_ms) < 0) {
        goto out;
    }
    if ((r = pthread_create(&n.watcher, NULL, watch_root, &n)) != 0) {
        gr_error("node", "cannot start the watcher thread: %s", strerror(r));
        goto out;
    }
    (void)pthread_setname_np(n.watcher, "gr-watch");
    n.watcher_started = true;
    if (start_cluster(&n, cfg) < 0) {
        goto out;
    }
    if (n.redis && gr_redis_start(n.redis, n.rt, gr_rpc_tables(n.rpc), n.pubsub, started_ms) < 0) {
        goto out;
    }
    if (n.http && serve_http(&n, cfg) < 0) {
        goto out;
    }

    if (ext && ext->what) {
        gr_notice("node", "%s: %s", prog, ext->what);
    }
    /* "girderd NAME up" whatever prog is: scripts and harnesses wait for it. */
    gr_info("node", "girderd %s up: %u schedulers, listening on %s:%u, detection %u ms, pid %d",
            gr_rt_node_name(n.rt), gr_rt_schedulers(n.rt), cfg->listen_host, gr_dist_port(n.dist),
            cfg->detection_ms, (int)getpid());

    /* systemd (util/sd.h): READY=1 when ready, WATCHDOG=1 every half
     * WatchdogSec from a proof that the schedulers turn; both are no-ops
     * outside a service manager. Readiness is looked at every READY_POLL_MS
     * only while a seed is awaited. */
    listening_ms = mono_ms();
    wd_half_ms = gr_sd_watchdog_usec() / 2000;
    next_wd_ms = listening_ms;
    ready = check_ready(&n, cfg, listening_ms);
    for (;;) {
        int64_t wait_ms = ready ? -1 : READY_POLL_MS;
        uint64_t now = mono_ms();

        if (wd_half_ms > 0) {
            if (now >= next_wd_ms) {
                watchdog_ping(&n);
                next_wd_ms = mono_ms() + wd_half_ms;
                now = mono_ms();
            }
            if (wait_ms < 0 || (uint64_t)wait_ms > next_wd_ms - now) {
                wait_ms = (int64_t)(next_wd_ms - now);
            }
        }
        if ((sig = wait_signal(&sigs, wait_ms)) < 0) {
            gr_error("node", "sigwait: %s", strerror(-sig));
            break;
        }
        if (sig == 0) {
            ready = ready || check_ready(&n, cfg, listening_ms);
            continue;
        }
        if (sig == SIGHUP) {
            reload_cookies(&n, cfg); /* the rest of the configuration is not re-read */
            continue;
        }
        if (sig == SIGUSR1) { /* from the watcher: the root died on its own */
            pthread_join(n.watcher, NULL);
            n.watcher_started = false;
            gr_error("node", "root supervisor exited: %s; stopping", n.root_reason);
            break;
        }
        gr_notice("node", "received SIG%s, shutting down", sigabbrev_np(sig));
        (void)gr_sd_notify("STOPPING=1");
        /* Stop taking work and tell the peers first; a dead peer costs at most
         * LEAVE_TIMEOUT_MS. Then the services, then the runtime. */
        gr_http_stop(n.http);
        gr_dist_stop(n.dist, LEAVE_TIMEOUT_MS);
        stop_services(&n);
        rc = EXIT_SUCCESS;
        break;
    }

out:
    if (n.watcher_started) { /* error paths only: wake and join the watcher */
        girder_msg *wake = girder_msg_atom(WAKE_ATOM);

        atomic_store(&n.stopping, true);
        if (!wake || gr_rt_send(n.rt, gr_probe_pid(n.probe), wake) < 0) {
            girder_msg_unref(wake);
        }
        pthread_join(n.watcher, NULL);
    }
    gr_http_stop(n.http); /* idempotent; answers still due are dropped */
    if (n.dist) {
        gr_dist_stop(n.dist, LEAVE_TIMEOUT_MS); /* idempotent */
    }
    n.probe = gr_probe_free(n.probe);
    gr_rt_stop(n.rt);
    n.ports = gr_ports_free(n.ports);       /* kills and reaps what is left */
    n.plugins = gr_plugins_free(n.plugins); /* no process runs plugin code now */
    n.rpc = gr_rpc_free(n.rpc);             /* after the workers are gone */
    n.http = gr_http_free(n.http);          /* after the rpc's last answer */
    n.pubsub = gr_pubsub_free(n.pubsub);
    n.redis = gr_redis_free(n.redis); /* its processes are gone */
    n.dist = gr_dist_free(n.dist);
    n.rt = gr_rt_free(n.rt);
    gr_cookie_wipe(&cookie);
    gr_cookie_wipe(&observer);
    accepted_wipe(&acc);
    gr_log(rc == EXIT_SUCCESS ? GR_LOG_INFO : GR_LOG_ERROR, "node", "girderd %s stopped (exit %d)",
           cfg->name, rc);
    return rc;
}

int gr_daemon_run(int argc, char *argv[], const gr_daemon_ext *ext)
{
    const char *prog = ext && ext->prog ? ext->prog : "girderd";
    gr_config cfg;
    gr_config_error err;
    int r, rc;

    if ((r = gr_config_load(argc, argv, &err, &cfg)) == GR_ECONFIG) {
        gr_config_error_print(stderr, prog, &err);
        return EXIT_CONFIG;
    }
    if (r < 0) {
        fprintf(stderr, "%s: cannot load the configuration: %s\n", prog, gr_strerror(r));
        return EXIT_FAILURE;
    }
    switch (cfg.action) {
    case GR_CONFIG_HELP:
        gr_config_usage(stdout, prog);
        rc = EXIT_SUCCESS;
        break;
    case GR_CONFIG_VERSION:
        printf("%s %s (API %d)\n", prog, GIRDER_VERSION, GIRDER_API_VERSION);
        rc = EXIT_SUCCESS;
        break;
    default:
        rc = run(&cfg, prog, ext);
        break;
    }
    gr_config_clear(&cfg);
    return rc;
}
