/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd.c - the commands of `girder` (ping, nodes, join, leave, rpc, cast,
 * multicall, stats, the process commands send (also --after), call, spawn,
 * ps, info, kill, the table commands tables, table, and pub/sub's pub and
 * groups): the table that also generates the help, argument checks, the one
 * rpc each makes (`session`), and how each prints its result.
 *
 * Design notes:
 * - Arguments are checked and packed before the cookie is read or a socket
 *   opened, so a usage error is exit 2 whatever the environment.
 * - The cookie (or, with --observer-key-file, the observer key: load_key)
 *   lives on session()'s stack only between reading it and the end of the
 *   handshake, and is wiped on every path.
 * - Process commands act where the process lives: a DEST's node (cli/dest.h),
 *   or spawn's --on / ps's NODE. When that is the contacted node they call
 *   proc.FN directly; otherwise rpc.call(NODE, "proc", FN, [ARGS], T) on the
 *   contacted node, exactly like `girder rpc`. Nested deadlines shrink inwards
 *   (inner_timeout) so the innermost timeout is the one reported.
 */
#include "cli/cmd.h"

#include "cli/dest.h"
#include "cli/fail.h"
#include "cli/fleet.h"
#include "cli/json.h"
#include "cli/print.h"
#include "cli/top.h"
#include "gr_version.h"
#include "proto/err.h"
#include "proto/handshake.h"
#include "proto/term.h"
#include "proto/topic.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ reporting */

int gr_cli_usage_error(const gr_cli_ctx *ctx, const char *cmd, const char *format, ...)
{
    va_list ap;
    char *msg = NULL;
    int n;

    va_start(ap, format);
    n = vasprintf(&msg, format, ap);
    va_end(ap);
    if (n < 0) {
        msg = NULL;
    }
    if (ctx->json) {
        (void)gr_cli_print_json_error(ctx->out, "usage", msg != NULL ? msg : "usage error");
    } else {
        fprintf(ctx->err, "girder: %s%s%s\n", cmd != NULL ? cmd : "", cmd != NULL ? ": " : "",
                msg != NULL ? msg : "usage error");
        fprintf(ctx->err, "Try 'girder %s%s--help'.\n", cmd != NULL ? cmd : "",
                cmd != NULL ? " " : "");
    }
    free(msg);
    return GR_CLI_EXIT_USAGE;
}

/* Print an error whose message is ready: stderr line, or JSON document on stdout. */
static void report(const gr_cli_ctx *ctx, const char *reason, const char *msg)
{
    if (ctx->json) {
        (void)gr_cli_print_json_error(ctx->out, reason, msg);
    } else {
        fprintf(ctx->err, "girder: %s\n", msg);
    }
}

static void report_fail(const gr_cli_ctx *ctx, const gr_cli_fail *f, const char *cookie_src)
{
    char *msg = gr_cli_fail_message(f, &ctx->target, ctx->timeout_ms, cookie_src);

    report(ctx, gr_cli_fail_reason(f), msg != NULL ? msg : gr_strerror(f->code));
    free(msg);
}

/* Report a remote error; returns its exit code (gr_cli_remote_exit). */
int gr_cli_report_remote(const gr_cli_ctx *ctx, const char *node, const gr_cli_reply *rep)
{
    int ex = gr_cli_remote_exit(rep->status, rep->reason);
    char *msg = NULL;

    if (ex == GR_CLI_EXIT_NOTALLOWED
            ? asprintf(&msg,
                       "%s: not allowed: this CLI connected with the observer key, which "
                       "may only read (%s)",
                       node, rep->reason) < 0
            : asprintf(&msg, "%s: %s (%s)", node, gr_cli_remote_message(rep->status, rep->reason),
                       rep->reason) < 0) {
        msg = NULL;
    }
    report(ctx, rep->reason, msg != NULL ? msg : rep->reason);
    free(msg);
    return ex;
}

/* The secret to prove: the observer key when ctx->observer_key_file is set
 * (role observer), else the cookie (gr_cookie_resolve's order). 0, or the
 * error with f filled (stage COOKIE). */
static int load_key(const gr_cli_ctx *ctx, gr_cookie *ret_key, gr_cli_fail *f)
{
    int r;

    memset(ret_key, 0, sizeof(*ret_key));
    f->observer = ctx->observer_key_file != NULL;
    r = f->observer ? gr_cookie_load_file(ctx->observer_key_file, ret_key)
                    : gr_cookie_resolve(ctx->cookie_file, ret_key);
    if (r < 0) {
        gr_cookie_wipe(ret_key);
        f->stage = GR_CLI_STAGE_COOKIE;
        f->code = r;
    }
    return r;
}

/* gr_cli_connect with load_key's secret, as its role. */
static int connect_key(const gr_cli_ctx *ctx, const gr_cookie *key, int64_t deadline_ms,
                       gr_cli_conn **ret_c, gr_cli_fail *f)
{
    int r = gr_cli_connect_as(&ctx->target, key,
                              ctx->observer_key_file ? GR_ROLE_OBSERVER : GR_ROLE_MEMBER,
                              deadline_ms, ret_c, f);

    f->observer = ctx->observer_key_file != NULL;
    return r;
}

/* What the cookie will be read from, in gr_cookie_resolve's order (for messages). */
static const char *cookie_source(const gr_cli_ctx *ctx, char *buf, size_t cap)
{
    const char *e;

    if (ctx->observer_key_file != NULL) {
        return ctx->observer_key_file;
    }
    if (ctx->cookie_file != NULL) {
        return ctx->cookie_file;
    }
    if (getenv(GR_COOKIE_ENV) != NULL) {
        return GR_COOKIE_ENV;
    }
    if ((e = getenv(GR_COOKIE_FILE_ENV)) != NULL) {
        return e;
    }
    if (gr_cookie_default_path(buf, cap) < 0) {
        return "the default cookie file";
    }
    return buf;
}

/* ------------------------------------------------------------ the one rpc */

void gr_cli_report(const gr_cli_ctx *ctx, const char *reason, const char *msg)
{
    report(ctx, reason, msg);
}

int gr_cli_report_fail(const gr_cli_ctx *ctx, const gr_cli_fail *f)
{
    report_fail(ctx, f, NULL);
    return gr_cli_fail_exit(f);
}

int gr_cli_open(const gr_cli_ctx *ctx, int64_t deadline_ms, gr_cli_conn **ret_c)
{
    char srcbuf[GR_COOKIE_PATH_MAX];
    gr_cli_fail f = {0};
    gr_cookie ck;
    int r;

    if ((r = load_key(ctx, &ck, &f)) == 0) {
        r = connect_key(ctx, &ck, deadline_ms, ret_c, &f);
        gr_cookie_wipe(&ck);
    }
    if (r < 0) {
        report_fail(ctx, &f, cookie_source(ctx, srcbuf, sizeof(srcbuf)));
        return gr_cli_fail_exit(&f);
    }
    return GR_CLI_EXIT_OK;
}

int gr_cli_rpc(const gr_cli_ctx *ctx, gr_cli_conn *c, const char *err_node, const char *module,
               const char *function, const msgpack_sbuffer *args, int64_t deadline_ms,
               gr_cli_reply *ret_r)
{
    char srcbuf[GR_COOKIE_PATH_MAX];
    gr_cli_fail f = {0};
    gr_cli_reply rep = {0};

    if (gr_cli_call(c, module, function, args->data, args->size, deadline_ms, &rep, &f) < 0) {
        report_fail(ctx, &f, cookie_source(ctx, srcbuf, sizeof(srcbuf)));
        return gr_cli_fail_exit(&f);
    }
    if (rep.status < 0) {
        int ex = gr_cli_report_remote(ctx, err_node != NULL ? err_node : gr_cli_conn_peer(c), &rep);

        gr_cli_reply_clear(&rep);
        return ex;
    }
    *ret_r = rep;
    return GR_CLI_EXIT_OK;
}

/* Connect, call module.function(args), hang up. On success returns 0 with the
 * reply (status 0) in *ret_r and the node's proven name in peer. Otherwise
 * reports the failure (remote errors as coming from err_node, or the peer if
 * NULL) and returns its exit code. */
static int session(const gr_cli_ctx *ctx, const char *err_node, const char *module,
                   const char *function, const msgpack_sbuffer *args, gr_cli_reply *ret_r,
                   char peer[GR_NODENAME_MAX + 1])
{
    int64_t deadline = gr_cli_now_ms() + ctx->timeout_ms;
    gr_cli_conn *c = NULL;
    int ex;

    if ((ex = gr_cli_open(ctx, deadline, &c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    snprintf(peer, GR_NODENAME_MAX + 1, "%s", gr_cli_conn_peer(c));
    ex = gr_cli_rpc(ctx, c, err_node, module, function, args, deadline, ret_r);
    gr_cli_conn_close(c);
    return ex;
}

/* Print a reply's result as JSON: compact with --json, pretty otherwise. */
static int print_result_json(const gr_cli_ctx *ctx, const gr_cli_reply *rep)
{
    char *s = NULL;
    int r;

    if ((r = gr_cli_term_buf_to_json(rep->result, rep->len, !ctx->json, &s)) < 0) {
        report(ctx, gr_errid(r), "cannot print the result");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    fprintf(ctx->out, "%s\n", s);
    free(s);
    return GR_CLI_EXIT_OK;
}

/* Run a call with no arguments. */
static int call_noargs(const gr_cli_ctx *ctx, const char *module, const char *function,
                       gr_cli_reply *ret_r, char peer[GR_NODENAME_MAX + 1])
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int ex;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 0) < 0) {
        msgpack_sbuffer_destroy(&sb);
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    ex = session(ctx, NULL, module, function, &sb, ret_r, peer);
    msgpack_sbuffer_destroy(&sb);
    return ex;
}

/* Unpack a validated result for printing. */
static int unpack_result(const gr_cli_reply *rep, msgpack_unpacked *u)
{
    size_t off = 0;

    msgpack_unpacked_init(u);
    return msgpack_unpack_next(u, (const char *)rep->result, rep->len, &off) ==
                   MSGPACK_UNPACK_SUCCESS
               ? 0
               : GR_EBADTERM;
}

/* ------------------------------------------------------------ commands */

static int cmd_ping(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1], *name = NULL;
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    int ex;

    if ((ex = call_noargs(ctx, "node", "ping", &rep, peer)) != 0) {
        return ex;
    }
    if (ctx->json) {
        msgpack_sbuffer_init(&sb);
        if (gr_cli_json_put_str(&sb, peer, strlen(peer)) == 0 &&
            (name = strndup(sb.data, sb.size)) != NULL) {
            fprintf(ctx->out, "{\"node\":%s,\"ms\":%.3f}\n", name, rep.rtt_ms);
        }
        free(name);
        msgpack_sbuffer_destroy(&sb);
    } else {
        fprintf(ctx->out, "pong from %s (%.1f ms)\n", peer, rep.rtt_ms);
    }
    gr_cli_reply_clear(&rep);
    return GR_CLI_EXIT_OK;
}

/* Print a table-shaped result with `table`, or as JSON (--json, or an unexpected shape). */
static int print_shaped(const gr_cli_ctx *ctx, const gr_cli_reply *rep,
                        int (*table)(FILE *f, const msgpack_object *o))
{
    msgpack_unpacked u;
    int r;

    if (ctx->json) {
        return print_result_json(ctx, rep);
    }
    if ((r = unpack_result(rep, &u)) == 0) {
        r = table(ctx->out, &u.data);
    }
    msgpack_unpacked_destroy(&u);
    return r == 0 ? GR_CLI_EXIT_OK : print_result_json(ctx, rep);
}

static int cmd_leave(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    int ex;

    if ((ex = call_noargs(ctx, "node", "leave", &rep, peer)) != 0) {
        return ex;
    }
    if (ctx->json) {
        ex = print_result_json(ctx, &rep);
    } else {
        fprintf(ctx->out, "ok: %s is leaving the cluster and shutting down\n", peer);
    }
    gr_cli_reply_clear(&rep);
    return ex;
}

static int cmd_join(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1], seed[GR_NODENAME_MAX + 16];
    gr_cli_reply rep = {0};
    gr_cli_target t;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *at;
    int r, ex;

    if ((r = gr_cli_target_parse(argv[0], &t)) < 0) {
        return gr_cli_usage_error(ctx, "join",
                                  r == -EINVAL ? "bad port in '%s' (expected 1..65535)"
                                               : "'%s' is not NAME@HOST:PORT",
                                  argv[0]);
    }
    at = strchr(t.node, '@');
    snprintf(seed, sizeof(seed), strchr(t.host, ':') != NULL ? "%.*s@[%s]:%u" : "%.*s@%s:%u",
             (int)(at - t.node), t.node, t.host, (unsigned)t.port);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 1) < 0 || msgpack_pack_str_with_body(&pk, seed, strlen(seed)) < 0) {
        msgpack_sbuffer_destroy(&sb);
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    ex = session(ctx, NULL, "node", "join", &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    if (ctx->json) {
        ex = print_result_json(ctx, &rep);
    } else {
        fprintf(ctx->out, "ok: %s joins the cluster of %s\n", peer, seed);
    }
    gr_cli_reply_clear(&rep);
    return ex;
}

/* Checks an rpc module or function name: non-empty printable ASCII, no spaces. */
static int bad_ident(const char *s)
{
    if (*s == '\0' || strlen(s) > 255) {
        return 1;
    }
    for (; *s != '\0'; s++) {
        if (*s <= 0x20 || *s >= 0x7f) {
            return 1;
        }
    }
    return 0;
}

static int cmd_rpc(const gr_cli_ctx *ctx, int argc, char **argv)
{
    const char *node = argv[0], *mod = argv[1], *fun = argv[2];
    int direct = strcmp(node, ctx->target.node) == 0, nargs = argc - 3, ex;
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    long inner;

    if (gr_nodename_check(node, strlen(node)) < 0) {
        return gr_cli_usage_error(ctx, "rpc", "'%s' is not a node name (NAME@HOST)", node);
    }
    if (bad_ident(mod)) {
        return gr_cli_usage_error(ctx, "rpc", "'%s' is not a module name", mod);
    }
    if (bad_ident(fun)) {
        return gr_cli_usage_error(ctx, "rpc", "'%s' is not a function name", fun);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* direct: [args...]; else [node, mod, fun, [args...], timeout_ms] */
    inner = ctx->timeout_ms - (ctx->timeout_ms / 10 < 1000 ? ctx->timeout_ms / 10 : 1000);
    if ((!direct && (msgpack_pack_array(&pk, 5) < 0 ||
                     msgpack_pack_str_with_body(&pk, node, strlen(node)) < 0 ||
                     msgpack_pack_str_with_body(&pk, mod, strlen(mod)) < 0 ||
                     msgpack_pack_str_with_body(&pk, fun, strlen(fun)) < 0)) ||
        msgpack_pack_array(&pk, (size_t)nargs) < 0) {
        goto nomem;
    }
    for (int i = 0; i < nargs; i++) {
        gr_cli_json_err je = {0};
        int r = gr_cli_json_to_term(argv[3 + i], &pk, &je);

        if (r == -ENOMEM) {
            goto nomem;
        }
        if (r < 0) {
            msgpack_sbuffer_destroy(&sb);
            if (je.line > 0) {
                return gr_cli_usage_error(ctx, "rpc",
                                          "JSON argument %d '%s' is not valid JSON: %s (at "
                                          "column %d)%s",
                                          i + 1, argv[3 + i], je.text, je.column,
                                          argv[3 + i][0] != '"' && argv[3 + i][0] != '[' &&
                                                  argv[3 + i][0] != '{'
                                              ? "; a string needs JSON quotes, e.g. '\"text\"'"
                                              : "");
            }
            return gr_cli_usage_error(ctx, "rpc", "JSON argument %d '%s': %s", i + 1, argv[3 + i],
                                      je.text);
        }
    }
    if (!direct && msgpack_pack_int64(&pk, inner > 0 ? inner : 1) < 0) {
        goto nomem;
    }
    ex = direct ? session(ctx, node, mod, fun, &sb, &rep, peer)
                : session(ctx, node, "rpc", "call", &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    ex = print_result_json(ctx, &rep);
    gr_cli_reply_clear(&rep);
    return ex;
nomem:
    msgpack_sbuffer_destroy(&sb);
    report(ctx, "ENOMEM", "out of memory");
    return GR_CLI_EXIT_UNREACHABLE;
}

/* ------------------------------------------------------------ processes */

/* The deadline to hand one level further in: ours minus 10%, at most 1 s less. */
static long inner_timeout(long ms)
{
    long t = ms - (ms / 10 < 1000 ? ms / 10 : 1000);

    return t > 0 ? t : 1;
}

/* One proc.FN request being built: for a process on `node` (NULL or "": the
 * contacted node). */
typedef struct proc_req {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *node; /* where the process lives; NULL: the contacted node */
    const char *fn;   /* proc function */
    int routed;       /* through rpc.call on the contacted node */
} proc_req;

/* Start the request: routed, [node, "proc", fn, [ then the caller packs nargs
 * arguments; proc_run closes it. 0 or -ENOMEM. */
static int proc_begin(const gr_cli_ctx *ctx, proc_req *q, const char *node, const char *fn,
                      uint32_t nargs)
{
    msgpack_sbuffer_init(&q->sb);
    msgpack_packer_init(&q->pk, &q->sb, msgpack_sbuffer_write);
    q->node = node != NULL && node[0] != '\0' ? node : NULL;
    q->fn = fn;
    q->routed = q->node != NULL && strcmp(q->node, ctx->target.node) != 0;
    if (q->routed && (msgpack_pack_array(&q->pk, 5) < 0 ||
                      msgpack_pack_str_with_body(&q->pk, q->node, strlen(q->node)) < 0 ||
                      msgpack_pack_str_with_body(&q->pk, "proc", 4) < 0 ||
                      msgpack_pack_str_with_body(&q->pk, fn, strlen(fn)) < 0)) {
        return -ENOMEM;
    }
    return msgpack_pack_array(&q->pk, nargs) < 0 ? -ENOMEM : 0;
}

/* The TimeoutMs to give proc.call: below every deadline around it. */
static long proc_call_timeout(const gr_cli_ctx *ctx, const proc_req *q)
{
    long t = inner_timeout(ctx->timeout_ms);

    return q->routed ? inner_timeout(t) : t;
}

/* Finish and send the request; frees q's buffer. As session(). */
static int proc_run(const gr_cli_ctx *ctx, proc_req *q, gr_cli_reply *ret_r,
                    char peer[GR_NODENAME_MAX + 1])
{
    int ex;

    if (q->routed && msgpack_pack_int64(&q->pk, inner_timeout(ctx->timeout_ms)) < 0) {
        msgpack_sbuffer_destroy(&q->sb);
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    ex = q->routed ? session(ctx, q->node, "rpc", "call", &q->sb, ret_r, peer)
                   : session(ctx, q->node, "proc", q->fn, &q->sb, ret_r, peer);
    msgpack_sbuffer_destroy(&q->sb);
    return ex;
}

static int proc_nomem(const gr_cli_ctx *ctx, proc_req *q)
{
    msgpack_sbuffer_destroy(&q->sb);
    report(ctx, "ENOMEM", "out of memory");
    return GR_CLI_EXIT_UNREACHABLE;
}

/* Parse a DEST argument, or report the usage error (returns its exit code). */
static int parse_dest(const gr_cli_ctx *ctx, const char *cmd, const char *s, gr_cli_dest *ret_d)
{
    if (gr_cli_dest_parse(s, ret_d) < 0) {
        return gr_cli_usage_error(ctx, cmd,
                                  "'%s' is not a DEST: a pid <NODE.CREATION.SERIAL.SCHED>, a "
                                  "registered NAME, or NAME@NODE",
                                  s);
    }
    return 0;
}

/* Append one JSON argument (argument number `n` for messages), or report the
 * usage error: returns 0, GR_CLI_EXIT_USAGE, or -ENOMEM. */
static int pack_json_arg(const gr_cli_ctx *ctx, const char *cmd, int n, const char *text,
                         msgpack_packer *pk)
{
    gr_cli_json_err je = {0};
    int r = gr_cli_json_to_term(text, pk, &je);

    if (r == 0 || r == -ENOMEM) {
        return r;
    }
    if (je.line > 0) {
        return gr_cli_usage_error(ctx, cmd,
                                  "JSON argument %d '%s' is not valid JSON: %s (at column %d)%s", n,
                                  text, je.text, je.column,
                                  text[0] != '"' && text[0] != '[' && text[0] != '{'
                                      ? "; a string needs JSON quotes, e.g. '\"text\"'"
                                      : "");
    }
    return gr_cli_usage_error(ctx, cmd, "JSON argument %d '%s': %s", n, text, je.text);
}

/* pack_json_arg into q's request; on failure q is freed and the exit code
 * returned (0 on success). */
static int proc_json_arg(const gr_cli_ctx *ctx, proc_req *q, const char *cmd, int n,
                         const char *text)
{
    int r = pack_json_arg(ctx, cmd, n, text, &q->pk);

    if (r == -ENOMEM) {
        return proc_nomem(ctx, q);
    }
    if (r != 0) {
        msgpack_sbuffer_destroy(&q->sb);
    }
    return r;
}

/* Print an "ok" result: "ok" (human), "ok" as JSON (--json). */
static int print_ok(const gr_cli_ctx *ctx, const gr_cli_reply *rep)
{
    if (ctx->json) {
        return print_result_json(ctx, rep);
    }
    fprintf(ctx->out, "ok\n");
    return GR_CLI_EXIT_OK;
}

/* send DEST JSON / call DEST JSON / info DEST / kill DEST [JSON] */
static int dest_cmd(const gr_cli_ctx *ctx, const char *cmd, const char *fn, int argc, char **argv,
                    gr_cli_reply *ret_r)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_dest d;
    proc_req q;
    int ex;
    uint32_t nargs = (uint32_t)argc + (strcmp(fn, "call") == 0);

    if ((ex = parse_dest(ctx, cmd, argv[0], &d)) != 0) {
        return ex;
    }
    if (proc_begin(ctx, &q, d.node, fn, nargs) < 0 || gr_cli_dest_pack(&d, &q.pk) < 0) {
        return proc_nomem(ctx, &q);
    }
    for (int i = 1; i < argc; i++) {
        if ((ex = proc_json_arg(ctx, &q, cmd, i, argv[i])) != 0) {
            return ex;
        }
    }
    if (strcmp(fn, "call") == 0 && msgpack_pack_int64(&q.pk, proc_call_timeout(ctx, &q)) < 0) {
        return proc_nomem(ctx, &q);
    }
    return proc_run(ctx, &q, ret_r, peer);
}

/* dest_cmd for proc.CMD, then print the result with print. Exit code. */
static int dest_print(const gr_cli_ctx *ctx, const char *cmd, int argc, char **argv,
                      int (*print)(const gr_cli_ctx *ctx, const gr_cli_reply *rep))
{
    gr_cli_reply rep = {0};
    int ex;

    if ((ex = dest_cmd(ctx, cmd, cmd, argc, argv, &rep)) != 0) {
        return ex;
    }
    ex = print(ctx, &rep);
    gr_cli_reply_clear(&rep);
    return ex;
}

#define SEND_AFTER_MAX_MS 2592000000ull /* 30 days, as proc.send_after */
#define PG_NAME_MAX 255                 /* scope and group names, as pubsub */

/* Print a result's pid without JSON quotes (PID=$(girder ...) just works), or
 * the result as JSON (--json, or not a pid). */
static int print_pid_result(const gr_cli_ctx *ctx, const gr_cli_reply *rep,
                            const msgpack_object *pid)
{
    char *s = NULL;
    int ex;

    if (ctx->json || pid == NULL || pid->type != MSGPACK_OBJECT_EXT) {
        return print_result_json(ctx, rep);
    }
    if (gr_cli_term_to_json(pid, 0, &s) == 0 && strlen(s) >= 2) {
        fprintf(ctx->out, "%.*s\n", (int)strlen(s) - 2, s + 1);
        ex = GR_CLI_EXIT_OK;
    } else {
        ex = print_result_json(ctx, rep);
    }
    free(s);
    return ex;
}

/* send --after MS DEST JSON: proc.send_after(DEST, MS, TERM) on DEST's node;
 * prints the timer's pid. */
static int send_after(const gr_cli_ctx *ctx, const char *ms_text, char **argv)
{
    char peer[GR_NODENAME_MAX + 1], *end = NULL;
    unsigned long long ms;
    gr_cli_reply rep = {0};
    msgpack_unpacked u;
    gr_cli_dest d;
    proc_req q;
    int ex;

    errno = 0;
    ms = strtoull(ms_text, &end, 10);
    if (ms_text[0] < '0' || ms_text[0] > '9' || *end != '\0' || errno != 0 ||
        ms > SEND_AFTER_MAX_MS) {
        return gr_cli_usage_error(ctx, "send", "--after '%s' is not a delay in ms (0..%llu)",
                                  ms_text, SEND_AFTER_MAX_MS);
    }
    if ((ex = parse_dest(ctx, "send", argv[0], &d)) != 0) {
        return ex;
    }
    if (proc_begin(ctx, &q, d.node, "send_after", 3) < 0 || gr_cli_dest_pack(&d, &q.pk) < 0 ||
        msgpack_pack_uint64(&q.pk, ms) < 0) {
        return proc_nomem(ctx, &q);
    }
    if ((ex = proc_json_arg(ctx, &q, "send", 1, argv[1])) != 0) {
        return ex;
    }
    if ((ex = proc_run(ctx, &q, &rep, peer)) != 0) {
        return ex;
    }
    if (unpack_result(&rep, &u) == 0 && u.data.type == MSGPACK_OBJECT_MAP) {
        ex = print_pid_result(ctx, &rep, gr_term_map_get(&u.data, "timer"));
    } else {
        ex = print_result_json(ctx, &rep);
    }
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    return ex;
}

static int send_global(const gr_cli_ctx *ctx, const char *name, const char *json);

static int cmd_send(const gr_cli_ctx *ctx, int argc, char **argv)
{
    if (strcmp(argv[0], "--after") == 0 || strncmp(argv[0], "--after=", 8) == 0) {
        int skip = argv[0][7] == '=' ? 1 : 2;
        const char *ms = skip == 1 ? argv[0] + 8 : argc > 1 ? argv[1] : NULL;

        if (ms == NULL || argc - skip < 2) {
            return gr_cli_usage_error(ctx, "send", "missing argument: expected %s",
                                      ms == NULL ? "MS DEST JSON" : "DEST JSON");
        }
        if (argc - skip > 2) {
            return gr_cli_usage_error(ctx, "send", "unexpected argument '%s'", argv[skip + 2]);
        }
        return send_after(ctx, ms, argv + skip);
    }
    if (argc > 2) {
        return gr_cli_usage_error(ctx, "send", "unexpected argument '%s'", argv[2]);
    }
    if (strncmp(argv[0], "global:", 7) == 0) {
        return send_global(ctx, argv[0] + 7, argv[1]);
    }
    return dest_print(ctx, "send", argc, argv, print_ok);
}

static int cmd_call(const gr_cli_ctx *ctx, int argc, char **argv)
{
    return dest_print(ctx, "call", argc, argv, print_result_json);
}

static int cmd_kill(const gr_cli_ctx *ctx, int argc, char **argv)
{
    return dest_print(ctx, "kill", argc, argv, print_ok);
}

/* A node argument of spawn --on / ps: NAME@HOST, or report the usage error. */
static int check_node_arg(const gr_cli_ctx *ctx, const char *cmd, const char *node)
{
    if (gr_nodename_check(node, strlen(node)) < 0) {
        return gr_cli_usage_error(ctx, cmd, "'%s' is not a node name (NAME@HOST)", node);
    }
    return 0;
}

static int cmd_spawn(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    const char *node = NULL, *beh, *arg;
    gr_cli_reply rep = {0};
    msgpack_unpacked u;
    proc_req q;
    int ex, i = 0;

    if (strcmp(argv[0], "--on") == 0) {
        if (argc < 3) {
            return gr_cli_usage_error(ctx, "spawn", "missing argument: expected %s",
                                      argc < 2 ? "NODE BEHAVIOUR" : "BEHAVIOUR");
        }
        node = argv[1];
        i = 2;
    } else if (strncmp(argv[0], "--on=", 5) == 0) {
        node = argv[0] + 5;
        i = 1;
    }
    if (node != NULL && (ex = check_node_arg(ctx, "spawn", node)) != 0) {
        return ex;
    }
    if (i >= argc) {
        return gr_cli_usage_error(ctx, "spawn", "missing argument: expected BEHAVIOUR");
    }
    if (argc - i > 2) {
        return gr_cli_usage_error(ctx, "spawn", "unexpected argument '%s'", argv[i + 2]);
    }
    beh = argv[i];
    arg = argc - i == 2 ? argv[i + 1] : NULL;
    if (bad_ident(beh)) {
        return gr_cli_usage_error(ctx, "spawn", "'%s' is not a behaviour name", beh);
    }
    if (proc_begin(ctx, &q, node, "spawn", arg != NULL ? 2 : 1) < 0 ||
        msgpack_pack_str_with_body(&q.pk, beh, strlen(beh)) < 0) {
        return proc_nomem(ctx, &q);
    }
    if (arg != NULL && (ex = proc_json_arg(ctx, &q, "spawn", 1, arg)) != 0) {
        return ex;
    }
    if ((ex = proc_run(ctx, &q, &rep, peer)) != 0) {
        return ex;
    }
    if (ctx->json || unpack_result(&rep, &u) != 0 || u.data.type != MSGPACK_OBJECT_EXT) {
        if (!ctx->json) {
            msgpack_unpacked_destroy(&u);
        }
        ex = print_result_json(ctx, &rep);
    } else {
        char *s = NULL;

        /* The pid without JSON quotes: PID=$(girder spawn echo) just works. */
        if (gr_cli_term_to_json(&u.data, 0, &s) == 0 && strlen(s) >= 2) {
            fprintf(ctx->out, "%.*s\n", (int)strlen(s) - 2, s + 1);
            ex = GR_CLI_EXIT_OK;
        } else {
            ex = print_result_json(ctx, &rep);
        }
        free(s);
        msgpack_unpacked_destroy(&u);
    }
    gr_cli_reply_clear(&rep);
    return ex;
}

/* ------------------------------------------------------------ cast and multicall */

/* Pack MODULE FUNCTION [JSON-ARG...] (argv[0..argc)) as Module, Function,
 * [Args]: 0, a usage error's exit code, or -ENOMEM. */
static int pack_mfa(const gr_cli_ctx *ctx, const char *cmd, int argc, char **argv,
                    msgpack_packer *pk)
{
    int r;

    if (bad_ident(argv[0])) {
        return gr_cli_usage_error(ctx, cmd, "'%s' is not a module name", argv[0]);
    }
    if (bad_ident(argv[1])) {
        return gr_cli_usage_error(ctx, cmd, "'%s' is not a function name", argv[1]);
    }
    if (msgpack_pack_str_with_body(pk, argv[0], strlen(argv[0])) < 0 ||
        msgpack_pack_str_with_body(pk, argv[1], strlen(argv[1])) < 0 ||
        msgpack_pack_array(pk, (size_t)(argc - 2)) < 0) {
        return -ENOMEM;
    }
    for (int i = 2; i < argc; i++) {
        if ((r = pack_json_arg(ctx, cmd, i - 1, argv[i], pk)) != 0) {
            return r;
        }
    }
    return 0;
}

/* Send the rpc request packed in sb, or, if packing it failed (pack_r: a usage
 * error's exit code or -ENOMEM), report that instead. sb is destroyed. */
static int session_packed(const gr_cli_ctx *ctx, const char *function, msgpack_sbuffer *sb,
                          int pack_r, gr_cli_reply *ret_r, char peer[GR_NODENAME_MAX + 1])
{
    int ex;

    if (pack_r != 0) {
        msgpack_sbuffer_destroy(sb);
        if (pack_r == -ENOMEM) {
            report(ctx, "ENOMEM", "out of memory");
            return GR_CLI_EXIT_UNREACHABLE;
        }
        return pack_r;
    }
    ex = session(ctx, NULL, "rpc", function, sb, ret_r, peer);
    msgpack_sbuffer_destroy(sb);
    return ex;
}

static int cmd_cast(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int ex, r;

    if ((ex = check_node_arg(ctx, "cast", argv[0])) != 0) {
        return ex;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 4) < 0 ||
        msgpack_pack_str_with_body(&pk, argv[0], strlen(argv[0])) < 0) {
        r = -ENOMEM;
    } else {
        r = pack_mfa(ctx, "cast", argc - 1, argv + 1, &pk);
    }
    if ((ex = session_packed(ctx, "cast", &sb, r, &rep, peer)) != 0) {
        return ex;
    }
    ex = print_ok(ctx, &rep);
    gr_cli_reply_clear(&rep);
    return ex;
}

/* Pack --nodes a@h,b@h as an array of names, or report the usage error. */
static int pack_node_list(const gr_cli_ctx *ctx, const char *list, msgpack_packer *pk)
{
    char *copy = strdup(list), *save = NULL, *tok;
    const char *names[GR_CLI_MULTICALL_NODES_MAX];
    size_t n = 0;
    int r = 0;

    if (copy == NULL) {
        return -ENOMEM;
    }
    for (tok = strtok_r(copy, ",", &save); tok != NULL && r == 0;
         tok = strtok_r(NULL, ",", &save)) {
        if (gr_nodename_check(tok, strlen(tok)) < 0) {
            r = gr_cli_usage_error(ctx, "multicall", "'%s' in --nodes is not a node name", tok);
        } else if (n == GR_CLI_MULTICALL_NODES_MAX) {
            r = gr_cli_usage_error(ctx, "multicall", "--nodes: at most %d nodes",
                                   GR_CLI_MULTICALL_NODES_MAX);
        } else {
            names[n++] = tok;
        }
    }
    if (r == 0 && n == 0) {
        r = gr_cli_usage_error(ctx, "multicall", "--nodes: expected NAME@HOST[,NAME@HOST...]");
    }
    if (r == 0 && msgpack_pack_array(pk, n) < 0) {
        r = -ENOMEM;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        if (msgpack_pack_str_with_body(pk, names[i], strlen(names[i])) < 0) {
            r = -ENOMEM;
        }
    }
    free(copy);
    return r;
}

/* The multicall table (NODE STATUS RESULT) of {Node: {"ok": R} | {"error": Id}}.
 * 0 and *ret_failed (nodes in error), GR_EBADTERM (another shape: nothing
 * printed), or -ENOMEM. */
static int print_multicall(const gr_cli_ctx *ctx, const msgpack_object *o, size_t *ret_failed)
{
    static const char *const hdr[] = {"NODE", "STATUS", "RESULT"};
    gr_cli_table *t = NULL;
    size_t failed = 0;
    int r;

    if (o->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADTERM;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;

        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_MAP ||
            v->via.map.size != 1 || v->via.map.ptr[0].key.type != MSGPACK_OBJECT_STR) {
            return GR_EBADTERM;
        }
    }
    if ((r = gr_cli_table_new(3, hdr, "lll", &t)) < 0) {
        return r;
    }
    for (uint32_t i = 0; i < o->via.map.size && r == 0; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        const msgpack_object *st = &v->via.map.ptr[0].key, *res = &v->via.map.ptr[0].val;
        char node[GR_NODENAME_MAX + 1], status[16], *json = NULL;
        const char *cells[3];
        bool ok = st->via.str.size == 2 && memcmp(st->via.str.ptr, "ok", 2) == 0;

        snprintf(node, sizeof(node), "%.*s", (int)k->via.str.size, k->via.str.ptr);
        snprintf(status, sizeof(status), "%s", ok ? "ok" : "error");
        failed += !ok;
        if (!ok && res->type == MSGPACK_OBJECT_STR) {
            json = strndup(res->via.str.ptr, res->via.str.size); /* the reason id, bare */
            r = json ? 0 : -ENOMEM;
        } else {
            r = gr_cli_term_to_json(res, 0, &json);
        }
        cells[0] = node;
        cells[1] = status;
        cells[2] = json;
        if (r == 0) {
            r = gr_cli_table_row(t, cells);
        }
        free(json);
    }
    if (r == 0) {
        gr_cli_table_print(t, ctx->out);
        *ret_failed = failed;
    }
    gr_cli_table_free(t);
    return r;
}

/* Nodes in error in a multicall result (any shape: 0). */
static size_t multicall_failed(const msgpack_object *o)
{
    size_t failed = 0;

    for (uint32_t i = 0; o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size; i++) {
        const msgpack_object *v = &o->via.map.ptr[i].val;

        failed += v->type != MSGPACK_OBJECT_MAP || v->via.map.size != 1 ||
                  !(v->via.map.ptr[0].key.type == MSGPACK_OBJECT_STR &&
                    v->via.map.ptr[0].key.via.str.size == 2 &&
                    memcmp(v->via.map.ptr[0].key.via.str.ptr, "ok", 2) == 0);
    }
    return failed;
}

static int cmd_multicall(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    const char *nodes = NULL;
    gr_cli_reply rep = {0};
    gr_cli_ctx sctx = *ctx;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    long timeout = -1;
    size_t failed = 0;
    int ex, r, i = 0;

    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        const char *opt = argv[i], *val = NULL;

        if (strcmp(opt, "--timeout") == 0 || strcmp(opt, "--nodes") == 0) {
            if (i + 1 >= argc) {
                return gr_cli_usage_error(ctx, "multicall", "%s needs a value", opt);
            }
            val = argv[i + 1];
            i += 2;
        } else if (strncmp(opt, "--timeout=", 10) == 0 || strncmp(opt, "--nodes=", 8) == 0) {
            val = strchr(opt, '=') + 1;
            i += 1;
        } else {
            return gr_cli_usage_error(ctx, "multicall", "unknown option '%s'", opt);
        }
        if (strncmp(opt, "--timeout", 9) == 0) {
            char *end = NULL;

            timeout = strtol(val, &end, 10);
            if (end == val || *end != '\0' || timeout < 1 || timeout > GR_CLI_TIMEOUT_MAX) {
                return gr_cli_usage_error(ctx, "multicall",
                                          "--timeout: '%s' is not a number of ms in 1..%d", val,
                                          GR_CLI_TIMEOUT_MAX);
            }
        } else {
            nodes = val;
        }
    }
    if (argc - i < 2) {
        return gr_cli_usage_error(ctx, "multicall", "missing argument%s: expected %s",
                                  argc - i == 0 ? "s" : "", "MODULE FUNCTION [JSON-ARG...]");
    }
    /* Per-node timeout: --timeout, else a little less than the global one.
     * The session waits for it plus a margin. */
    if (timeout < 0) {
        timeout = inner_timeout(ctx->timeout_ms);
    } else if (timeout + 1000 > ctx->timeout_ms) {
        sctx.timeout_ms = timeout + 1000 < GR_CLI_TIMEOUT_MAX ? timeout + 1000 : GR_CLI_TIMEOUT_MAX;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = msgpack_pack_array(&pk, 5) < 0 ? -ENOMEM : 0;
    if (r == 0) {
        r = nodes ? pack_node_list(ctx, nodes, &pk)
                  : (msgpack_pack_str_with_body(&pk, "all", 3) < 0 ? -ENOMEM : 0);
    }
    if (r == 0) {
        r = pack_mfa(ctx, "multicall", argc - i, argv + i, &pk);
    }
    if (r == 0 && msgpack_pack_int64(&pk, timeout) < 0) {
        r = -ENOMEM;
    }
    if ((ex = session_packed(&sctx, "multicall", &sb, r, &rep, peer)) != 0) {
        return ex;
    }
    if (unpack_result(&rep, &u) == 0) {
        if (ctx->json) {
            failed = multicall_failed(&u.data);
            ex = print_result_json(ctx, &rep);
        } else if (print_multicall(ctx, &u.data, &failed) < 0) {
            ex = print_result_json(ctx, &rep);
        }
    } else {
        ex = print_result_json(ctx, &rep);
    }
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    return ex != GR_CLI_EXIT_OK ? ex : failed > 0 ? GR_CLI_EXIT_REMOTE : GR_CLI_EXIT_OK;
}

/* ------------------------------------------------------------ tables */

#define GR_TABLE_CLI_CELL 160 /* widest cell of `girder tables` */

/* A replicated table's state in one cell: "pending N, equal E/P" (P peers
 * whose last digest was compared, E of them equal to ours); "-" for local. */
static void repl_cell(const msgpack_object *info, char *buf, size_t len)
{
    const msgpack_object *r = gr_term_map_get(info, "replication"), *pend, *peers;
    unsigned eq = 0, seen = 0;

    if (!r || r->type != MSGPACK_OBJECT_MAP) {
        snprintf(buf, len, "-");
        return;
    }
    pend = gr_term_map_get(r, "pending");
    peers = gr_term_map_get(r, "peers");
    for (uint32_t i = 0; peers && peers->type == MSGPACK_OBJECT_ARRAY && i < peers->via.array.size;
         i++) {
        const msgpack_object *e = gr_term_map_get(&peers->via.array.ptr[i], "digest_equal");

        if (e && e->type == MSGPACK_OBJECT_BOOLEAN) {
            seen++;
            eq += e->via.boolean;
        }
    }
    snprintf(buf, len, "pending %llu, equal %u/%u",
             pend && pend->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                 ? (unsigned long long)pend->via.u64
                 : 0ull,
             eq, seen);
}

/* `girder tables`: table.infos() as NAME KIND MODE DURABILITY ENTRIES BYTES
 * B/ENTRY REPLICATION ERROR, or the array with --json. */
static int print_tables(FILE *f, const msgpack_object *o)
{
    static const char *const hdr[] = {"NAME",  "KIND",    "MODE",        "DURABILITY", "ENTRIES",
                                      "BYTES", "B/ENTRY", "REPLICATION", "ERROR"};
    static const char *const keys[] = {
        "name",        "kind", "mode", "durability", "entries", "bytes", "bytes_per_entry",
        "replication", "error"};
    gr_cli_table *t = NULL;
    int r;

    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADTERM;
    }
    if ((r = gr_cli_table_new(9, hdr, "llllrrrll", &t)) < 0) {
        return r;
    }
    for (uint32_t i = 0; i < o->via.array.size && r == 0; i++) {
        const msgpack_object *m = &o->via.array.ptr[i];
        char bufs[9][GR_TABLE_CLI_CELL];
        const char *cells[9];

        if (m->type != MSGPACK_OBJECT_MAP) {
            r = GR_EBADTERM;
            break;
        }
        for (int c = 0; c < 9; c++) {
            if (c == 7) {
                repl_cell(m, bufs[c], sizeof(bufs[c]));
                cells[c] = bufs[c];
                continue;
            }
            const msgpack_object *v = NULL;

            for (uint32_t k = 0; k < m->via.map.size; k++) {
                if (gr_term_is_str(&m->via.map.ptr[k].key, keys[c])) {
                    v = &m->via.map.ptr[k].val;
                }
            }
            cells[c] = NULL;
            if (v && v->type == MSGPACK_OBJECT_STR) {
                snprintf(bufs[c], sizeof(bufs[c]), "%.*s", (int)v->via.str.size, v->via.str.ptr);
                cells[c] = bufs[c];
            } else if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(bufs[c], sizeof(bufs[c]), "%llu", (unsigned long long)v->via.u64);
                cells[c] = bufs[c];
            }
        }
        r = gr_cli_table_row(t, cells);
    }
    if (r == 0) {
        gr_cli_table_print(t, f);
    }
    gr_cli_table_free(t);
    return r;
}

static int cmd_tables(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    int ex;

    if ((ex = call_noargs(ctx, "table", "infos", &rep, peer)) != 0) {
        return ex;
    }
    ex = print_shaped(ctx, &rep, print_tables);
    gr_cli_reply_clear(&rep);
    return ex;
}

/* One JSON command-line argument as a term; a usage error names it. */
static int table_json(const gr_cli_ctx *ctx, const char *what, const char *text, msgpack_packer *pk)
{
    gr_cli_json_err je = {0};
    int r = gr_cli_json_to_term(text, pk, &je);

    if (r == -ENOMEM) {
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    if (r < 0) {
        return gr_cli_usage_error(ctx, "table", "%s '%s' is not valid JSON: %s%s", what, text,
                                  je.text,
                                  text[0] != '"' && text[0] != '[' && text[0] != '{' &&
                                          (text[0] < '0' || text[0] > '9') && text[0] != '-'
                                      ? "; a string needs JSON quotes, e.g. '\"text\"'"
                                      : "");
    }
    return 0;
}

/* A non-negative decimal option value. */
static int table_num(const gr_cli_ctx *ctx, const char *opt, const char *text, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(text, &end, 10);
    if (!isdigit((unsigned char)text[0]) || *end || errno) {
        return gr_cli_usage_error(ctx, "table", "%s: '%s' is not a number", opt, text);
    }
    *ret = v;
    return 0;
}

/* The options a subcommand accepts, parsed from argv[from..argc). Values stay
 * pointers into argv. */
typedef struct table_opts {
    const char *kind, *durability, *fsync; /* create */
    const char *mode;                      /* create: local | replicated */
    const char *prefix, *start, *end;      /* scan: JSON */
    uint64_t ttl, interval, max_entries, max_bytes, version, limit;
    int has_ttl, has_interval, has_max_entries, has_max_bytes, has_version, has_limit;
    int cache, if_absent;
    int npos;           /* positional arguments after NAME */
    const char *pos[3]; /* them */
} table_opts;

/* The table subcommands' options: what each one fills in table_opts. A
 * subcommand accepts those its `allowed` string names ("--kind --ttl ..."). */
typedef enum { TOPT_STR, TOPT_NUM, TOPT_FLAG } table_opt_type;

static const struct table_opt {
    const char *name;
    table_opt_type type;
    size_t val; /* offset of the const char * (STR), uint64_t (NUM) or int (FLAG) */
    size_t has; /* NUM: offset of the int that says it was given */
} TABLE_OPTS[] = {
    {"--kind", TOPT_STR, offsetof(table_opts, kind), 0},
    {"--durability", TOPT_STR, offsetof(table_opts, durability), 0},
    {"--mode", TOPT_STR, offsetof(table_opts, mode), 0},
    {"--fsync", TOPT_STR, offsetof(table_opts, fsync), 0},
    {"--prefix", TOPT_STR, offsetof(table_opts, prefix), 0},
    {"--start", TOPT_STR, offsetof(table_opts, start), 0},
    {"--end", TOPT_STR, offsetof(table_opts, end), 0},
    {"--ttl", TOPT_NUM, offsetof(table_opts, ttl), offsetof(table_opts, has_ttl)},
    {"--interval", TOPT_NUM, offsetof(table_opts, interval), offsetof(table_opts, has_interval)},
    {"--max-entries", TOPT_NUM, offsetof(table_opts, max_entries),
     offsetof(table_opts, has_max_entries)},
    {"--max-bytes", TOPT_NUM, offsetof(table_opts, max_bytes), offsetof(table_opts, has_max_bytes)},
    {"--version", TOPT_NUM, offsetof(table_opts, version), offsetof(table_opts, has_version)},
    {"--limit", TOPT_NUM, offsetof(table_opts, limit), offsetof(table_opts, has_limit)},
    {"--cache", TOPT_FLAG, offsetof(table_opts, cache), 0},
    {"--if-absent", TOPT_FLAG, offsetof(table_opts, if_absent), 0},
};

/* The option named a, if the subcommand allows it; NULL otherwise. */
static const struct table_opt *table_opt_find(const char *a, const char *allowed)
{
    size_t n = strlen(a);

    for (size_t k = 0; k < sizeof(TABLE_OPTS) / sizeof(TABLE_OPTS[0]); k++) {
        const char *at = strstr(allowed, a);

        if (strcmp(a, TABLE_OPTS[k].name) != 0) {
            continue;
        }
        /* the whole word: "--end" must not match inside "--end-x " */
        while (at && at[n] != ' ') {
            at = strstr(at + 1, a);
        }
        return at ? &TABLE_OPTS[k] : NULL;
    }
    return NULL;
}

static int table_parse(const gr_cli_ctx *ctx, const char *sub, const char *allowed, int argc,
                       char **argv, int from, table_opts *o)
{
    char *base = (char *)o;

    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        const struct table_opt *t = table_opt_find(a, allowed);
        int ex;

        if (t == NULL) {
            if (a[0] == '-' && a[1] == '-') {
                return gr_cli_usage_error(ctx, "table", "%s: unknown option '%s'", sub, a);
            }
            if (o->npos >= 3) {
                return gr_cli_usage_error(ctx, "table", "%s: unexpected argument '%s'", sub, a);
            }
            o->pos[o->npos++] = a;
            continue;
        }
        if (t->type == TOPT_FLAG) {
            *(int *)(base + t->val) = 1;
            continue;
        }
        if (i + 1 >= argc) {
            return gr_cli_usage_error(ctx, "table", "%s: option '%s' needs a value", sub, a);
        }
        i++;
        if (t->type == TOPT_STR) {
            *(const char **)(base + t->val) = argv[i];
        } else if ((ex = table_num(ctx, a, argv[i], (uint64_t *)(base + t->val))) != 0) {
            return ex;
        } else {
            *(int *)(base + t->has) = 1;
        }
    }
    return 0;
}

static void pk_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Print a table.* result: --json as JSON; otherwise "ok", a number, or JSON. */
static int table_print(const gr_cli_ctx *ctx, const char *sub, gr_cli_reply *rep)
{
    msgpack_unpacked u;
    int ex = GR_CLI_EXIT_OK;

    if (ctx->json || unpack_result(rep, &u) < 0) {
        return print_result_json(ctx, rep);
    }
    if (!strcmp(sub, "info")) {
        if (gr_cli_print_info(ctx->out, &u.data) < 0) {
            ex = print_result_json(ctx, rep);
        }
    } else if (!strcmp(sub, "get") && u.data.type == MSGPACK_OBJECT_MAP &&
               u.data.via.map.size > 0) {
        char *s = NULL;

        if (gr_cli_term_to_json(&u.data.via.map.ptr[0].val, 1, &s) == 0) {
            fprintf(ctx->out, "%s\n", s);
        }
        free(s);
    } else if (!strcmp(sub, "put") && u.data.type == MSGPACK_OBJECT_MAP &&
               u.data.via.map.size == 1 &&
               u.data.via.map.ptr[0].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fprintf(ctx->out, "ok (version %llu)\n",
                (unsigned long long)u.data.via.map.ptr[0].val.via.u64);
    } else if (u.data.type == MSGPACK_OBJECT_STR) {
        fprintf(ctx->out, "%.*s\n", (int)u.data.via.str.size, u.data.via.str.ptr);
    } else {
        ex = print_result_json(ctx, rep);
    }
    msgpack_unpacked_destroy(&u);
    return ex;
}

/* `girder table scan`: pages of at most 1,000 until the cursor ends or
 * --limit entries were printed. One connection per page. */
/* `girder table load NAME`: put every line "KEY<TAB>VALUE" (JSON terms) of
 * stdin, one connection for all of them (a call at a time); prints
 * {"puts": N, "ms": elapsed}. The first failed put stops the load. */
static int table_load(const gr_cli_ctx *ctx, const char *name)
{
    int64_t t0 = gr_cli_now_ms(), deadline;
    char srcbuf[GR_COOKIE_PATH_MAX];
    const char *src = cookie_source(ctx, srcbuf, sizeof(srcbuf));
    gr_cli_fail f = {0};
    gr_cli_conn *c = NULL;
    gr_cookie ck;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t puts = 0;
    int ex = GR_CLI_EXIT_OK, r;

    if (load_key(ctx, &ck, &f) < 0) {
        report_fail(ctx, &f, src);
        return gr_cli_fail_exit(&f);
    }
    r = connect_key(ctx, &ck, gr_cli_now_ms() + ctx->timeout_ms, &c, &f);
    gr_cookie_wipe(&ck);
    if (r < 0) {
        report_fail(ctx, &f, src);
        return gr_cli_fail_exit(&f);
    }
    while (ex == GR_CLI_EXIT_OK && (n = getline(&line, &cap, stdin)) > 0) {
        char *tab = strchr(line, '\t');
        gr_cli_reply rep = {0};
        msgpack_sbuffer sb;
        msgpack_packer pk;

        if (line[n - 1] == '\n') {
            line[n - 1] = 0;
        }
        if (!line[0]) {
            continue;
        }
        if (!tab) {
            ex = gr_cli_usage_error(ctx, "table", "load: line %llu has no tab: '%s'",
                                    (unsigned long long)puts + 1, line);
            break;
        }
        *tab = 0;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        pk_cstr(&pk, name);
        if ((ex = table_json(ctx, "KEY", line, &pk)) != 0 ||
            (ex = table_json(ctx, "VALUE", tab + 1, &pk)) != 0) {
            msgpack_sbuffer_destroy(&sb);
            break;
        }
        deadline = gr_cli_now_ms() + ctx->timeout_ms;
        r = gr_cli_call(c, "table", "put", sb.data, sb.size, deadline, &rep, &f);
        msgpack_sbuffer_destroy(&sb);
        if (r < 0) {
            report_fail(ctx, &f, src);
            ex = gr_cli_fail_exit(&f);
        } else if (rep.status < 0) {
            ex = gr_cli_report_remote(ctx, gr_cli_conn_peer(c), &rep);
        } else {
            puts++;
        }
        gr_cli_reply_clear(&rep);
    }
    free(line);
    gr_cli_conn_close(c);
    if (ex == GR_CLI_EXIT_OK) {
        fprintf(ctx->out, "{\"puts\": %llu, \"ms\": %lld}\n", (unsigned long long)puts,
                (long long)(gr_cli_now_ms() - t0));
    }
    return ex;
}

static int table_scan(const gr_cli_ctx *ctx, const char *name, const table_opts *o)
{
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    uint64_t shown = 0, want = o->has_limit ? o->limit : UINT64_MAX;
    int ex = GR_CLI_EXIT_OK, first = 1;

    if (ctx->json) {
        fputc('[', ctx->out);
    }
    while (shown < want) {
        char peer[GR_NODENAME_MAX + 1];
        gr_cli_reply rep = {0};
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked u;
        const msgpack_object *ents = NULL, *cur = NULL;
        uint64_t page = want - shown < 1000 ? want - shown : 1000;
        int nopt =
            1 + (o->prefix != NULL) + (o->start != NULL) + (o->end != NULL) + (cursor != NULL);

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        pk_cstr(&pk, name);
        msgpack_pack_map(&pk, (size_t)nopt);
        pk_cstr(&pk, "limit");
        msgpack_pack_uint64(&pk, page);
        if (cursor) {
            pk_cstr(&pk, "cursor");
            msgpack_pack_bin_with_body(&pk, cursor, cursor_len);
        }
        if ((o->prefix &&
             (pk_cstr(&pk, "prefix"), (ex = table_json(ctx, "--prefix", o->prefix, &pk)) != 0)) ||
            (o->start &&
             (pk_cstr(&pk, "start"), (ex = table_json(ctx, "--start", o->start, &pk)) != 0)) ||
            (o->end && (pk_cstr(&pk, "end"), (ex = table_json(ctx, "--end", o->end, &pk)) != 0))) {
            msgpack_sbuffer_destroy(&sb);
            break;
        }
        ex = session(ctx, NULL, "table", "scan", &sb, &rep, peer);
        msgpack_sbuffer_destroy(&sb);
        if (ex != 0) {
            break;
        }
        if (unpack_result(&rep, &u) == 0 && u.data.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t k = 0; k < u.data.via.map.size; k++) {
                if (gr_term_is_str(&u.data.via.map.ptr[k].key, "entries")) {
                    ents = &u.data.via.map.ptr[k].val;
                } else if (gr_term_is_str(&u.data.via.map.ptr[k].key, "cursor")) {
                    cur = &u.data.via.map.ptr[k].val;
                }
            }
        }
        free(cursor);
        cursor = NULL;
        if (!ents || ents->type != MSGPACK_OBJECT_ARRAY || !cur) {
            report(ctx, "bad_term", "unexpected answer to table.scan");
            ex = GR_CLI_EXIT_REMOTE;
        } else {
            for (uint32_t k = 0; k < ents->via.array.size; k++) {
                const msgpack_object *kv = &ents->via.array.ptr[k];
                char *ks = NULL, *vs = NULL;

                if (kv->type != MSGPACK_OBJECT_ARRAY || kv->via.array.size != 2) {
                    continue;
                }
                if (ctx->json) {
                    if (gr_cli_term_to_json(kv, 0, &ks) == 0) {
                        fprintf(ctx->out, "%s%s", first ? "" : ",", ks);
                    }
                } else if (gr_cli_term_to_json(&kv->via.array.ptr[0], 0, &ks) == 0 &&
                           gr_cli_term_to_json(&kv->via.array.ptr[1], 0, &vs) == 0) {
                    fprintf(ctx->out, "%s\t%s\n", ks, vs);
                }
                first = 0;
                free(ks);
                free(vs);
                shown++;
            }
            if (cur->type == MSGPACK_OBJECT_BIN && cur->via.bin.size > 0 &&
                (cursor = malloc(cur->via.bin.size)) != NULL) {
                memcpy(cursor, cur->via.bin.ptr, cur->via.bin.size);
                cursor_len = cur->via.bin.size;
            }
        }
        msgpack_unpacked_destroy(&u);
        gr_cli_reply_clear(&rep);
        if (ex != 0 || !cursor) {
            break;
        }
    }
    free(cursor);
    if (ctx->json && ex == 0) {
        fputs("]\n", ctx->out);
    }
    return ex;
}

/* `girder table hset|hget|hdel|hgetall|sadd|srem|smembers NAME KEY ...`: the
 * table.map_* and table.set_* calls. KEY and VALUE are JSON terms, FIELD and
 * MEMBER plain strings. Prints counts, the value as JSON, FIELD<TAB>VALUE
 * lines, or one member per line (--json: the result as JSON). */
static int table_crdt(const gr_cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    static const struct {
        const char *sub, *fn;
        int min, max; /* arguments after NAME KEY */
    } ops[] = {
        {"hset", "map_set", 2, 1000},      {"hget", "map_get", 1, 1},
        {"hdel", "map_del", 1, 1000},      {"hgetall", "map_getall", 0, 0},
        {"sadd", "set_add", 1, 1000},      {"srem", "set_rem", 1, 1000},
        {"smembers", "set_members", 0, 0},
    };
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    size_t s;
    int n = argc - 3, ex = 0;

    for (s = 0; strcmp(ops[s].sub, sub) != 0; s++) {
    }
    if (argc < 3 || n < ops[s].min || n > ops[s].max || (!strcmp(sub, "hset") && n % 2)) {
        return gr_cli_usage_error(ctx, "table",
                                  "%s: wrong number of arguments (see girder table --help)", sub);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, ops[s].max ? 3 : 2);
    pk_cstr(&pk, argv[1]);
    if ((ex = table_json(ctx, "KEY", argv[2], &pk)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return ex;
    }
    if (!strcmp(sub, "hset")) {
        msgpack_pack_map(&pk, (size_t)n / 2);
        for (int i = 3; i < argc && ex == 0; i += 2) {
            pk_cstr(&pk, argv[i]);
            ex = table_json(ctx, "VALUE", argv[i + 1], &pk);
        }
    } else if (!strcmp(sub, "hget")) {
        pk_cstr(&pk, argv[3]);
    } else if (ops[s].max) {
        msgpack_pack_array(&pk, (size_t)n);
        for (int i = 3; i < argc; i++) {
            pk_cstr(&pk, argv[i]);
        }
    }
    if (ex == 0) {
        ex = session(ctx, NULL, "table", ops[s].fn, &sb, &rep, peer);
    }
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    if (ctx->json || unpack_result(&rep, &u) < 0) {
        ex = print_result_json(ctx, &rep);
        gr_cli_reply_clear(&rep);
        return ex;
    }
    if (u.data.type == MSGPACK_OBJECT_MAP && !strcmp(sub, "hgetall")) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object *k = &u.data.via.map.ptr[i].key;
            char *js = NULL;

            if (k->type == MSGPACK_OBJECT_STR &&
                gr_cli_term_to_json(&u.data.via.map.ptr[i].val, 0, &js) == 0) {
                fprintf(ctx->out, "%.*s\t%s\n", (int)k->via.str.size, k->via.str.ptr, js);
            }
            free(js);
        }
    } else if (u.data.type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < u.data.via.array.size; i++) {
            const msgpack_object *m = &u.data.via.array.ptr[i];

            if (m->type == MSGPACK_OBJECT_STR) {
                fprintf(ctx->out, "%.*s\n", (int)m->via.str.size, m->via.str.ptr);
            }
        }
    } else {
        ex = print_result_json(ctx, &rep);
    }
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    return ex;
}

static int cmd_table(const gr_cli_ctx *ctx, int argc, char **argv)
{
    static const struct {
        const char *name;
        const char *opts; /* accepted options, each followed by a space */
        int npos;         /* positional arguments after NAME: exactly, or -n up to n */
    } subs[] = {
        {"create",
         "--kind --durability --fsync --interval --ttl --max-entries --max-bytes --cache --mode ",
         0},
        {"drop", "", 0},
        {"info", "", 0},
        {"count", "", 0},
        {"get", "", 1},
        {"put", "--ttl --if-absent --version ", 2},
        {"del", "--version ", 1},
        {"incr", "", -2},
        {"scan", "--prefix --start --end --limit ", 0},
        {"load", "", 0},
    };
    const char *sub = argv[0], *name = argv[1];
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    table_opts o = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t s;
    int ex;

    for (s = 0; s < sizeof(subs) / sizeof(subs[0]); s++) {
        if (!strcmp(subs[s].name, sub)) {
            break;
        }
    }
    if (s == sizeof(subs) / sizeof(subs[0]) && strlen(sub) < 12) {
        char pat[16];

        snprintf(pat, sizeof(pat), " %s ", sub);
        if (strstr(" hset hget hdel hgetall sadd srem smembers ", pat)) {
            return table_crdt(ctx, sub, argc, argv);
        }
    }
    if (s == sizeof(subs) / sizeof(subs[0])) {
        return gr_cli_usage_error(ctx, "table",
                                  "unknown subcommand '%s' (create, drop, info, count, get, put, "
                                  "del, incr, scan, load, hset, hget, hdel, hgetall, sadd, srem, "
                                  "smembers)",
                                  sub);
    }
    if ((ex = table_parse(ctx, sub, subs[s].opts, argc, argv, 2, &o)) != 0) {
        return ex;
    }
    if ((subs[s].npos >= 0 && o.npos != subs[s].npos) ||
        (subs[s].npos < 0 && (o.npos < 1 || o.npos > -subs[s].npos))) {
        return gr_cli_usage_error(ctx, "table",
                                  "%s: wrong number of arguments (see girder table --help)", sub);
    }
    if (!strcmp(sub, "scan")) {
        return table_scan(ctx, name, &o);
    }
    if (!strcmp(sub, "load")) {
        return table_load(ctx, name);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (!strcmp(sub, "create")) {
        int n = !!o.kind + !!o.durability + !!o.fsync + o.has_interval + o.has_ttl +
                o.has_max_entries + o.has_max_bytes + o.cache + !!o.mode;

        msgpack_pack_array(&pk, 2);
        pk_cstr(&pk, name);
        msgpack_pack_map(&pk, (size_t)n);
#define STR_OPT(k, v)                                                                              \
    if (v) {                                                                                       \
        pk_cstr(&pk, k);                                                                           \
        pk_cstr(&pk, v);                                                                           \
    }
#define NUM_OPT(k, has, v)                                                                         \
    if (has) {                                                                                     \
        pk_cstr(&pk, k);                                                                           \
        msgpack_pack_uint64(&pk, v);                                                               \
    }
        STR_OPT("kind", o.kind);
        STR_OPT("durability", o.durability);
        STR_OPT("fsync", o.fsync);
        STR_OPT("mode", o.mode);
        NUM_OPT("interval_ms", o.has_interval, o.interval);
        NUM_OPT("ttl_ms", o.has_ttl, o.ttl);
        NUM_OPT("max_entries", o.has_max_entries, o.max_entries);
        NUM_OPT("max_bytes", o.has_max_bytes, o.max_bytes);
        if (o.cache) {
            pk_cstr(&pk, "cache");
            msgpack_pack_true(&pk);
        }
    } else if (!strcmp(sub, "put")) {
        int n = o.has_ttl + o.has_version + o.if_absent;

        msgpack_pack_array(&pk, n ? 4 : 3);
        pk_cstr(&pk, name);
        if ((ex = table_json(ctx, "KEY", o.pos[0], &pk)) != 0 ||
            (ex = table_json(ctx, "VALUE", o.pos[1], &pk)) != 0) {
            msgpack_sbuffer_destroy(&sb);
            return ex;
        }
        if (n) {
            msgpack_pack_map(&pk, (size_t)n);
            NUM_OPT("ttl_ms", o.has_ttl, o.ttl);
            NUM_OPT("version", o.has_version, o.version);
            if (o.if_absent) {
                pk_cstr(&pk, "if_absent");
                msgpack_pack_true(&pk);
            }
        }
#undef STR_OPT
#undef NUM_OPT
    } else if (!strcmp(sub, "get") || !strcmp(sub, "del") || !strcmp(sub, "incr")) {
        int extra = (!strcmp(sub, "del") && o.has_version) || o.npos == 2;

        msgpack_pack_array(&pk, 2 + (size_t)extra);
        pk_cstr(&pk, name);
        if ((ex = table_json(ctx, "KEY", o.pos[0], &pk)) != 0) {
            msgpack_sbuffer_destroy(&sb);
            return ex;
        }
        if (!strcmp(sub, "del") && o.has_version) {
            msgpack_pack_uint64(&pk, o.version);
        } else if (o.npos == 2) {
            char *end;
            long long n;

            errno = 0;
            n = strtoll(o.pos[1], &end, 10);
            if (!o.pos[1][0] || *end || errno) {
                msgpack_sbuffer_destroy(&sb);
                return gr_cli_usage_error(ctx, "table", "incr: '%s' is not an integer", o.pos[1]);
            }
            msgpack_pack_int64(&pk, n);
        }
    } else { /* drop, info, count */
        msgpack_pack_array(&pk, 1);
        pk_cstr(&pk, name);
    }
    ex = session(ctx, NULL, "table", sub, &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    ex = table_print(ctx, sub, &rep);
    gr_cli_reply_clear(&rep);
    return ex;
}

/* ------------------------------------------------------------ pub/sub */

/* pub TOPIC JSON: pubsub.publish(TOPIC, TERM) on the contacted node. */
static int cmd_pub(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    int ex, r;

    (void)argc;
    msgpack_unpacked_init(&u);
    if (argv[0][0] == '\0') {
        return gr_cli_usage_error(ctx, "pub", "TOPIC is empty");
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 2) < 0 ||
        msgpack_pack_str_with_body(&pk, argv[0], strlen(argv[0])) < 0) {
        msgpack_sbuffer_destroy(&sb);
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    if ((r = pack_json_arg(ctx, "pub", 1, argv[1], &pk)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        if (r == -ENOMEM) {
            report(ctx, "ENOMEM", "out of memory");
            return GR_CLI_EXIT_UNREACHABLE;
        }
        return r;
    }
    ex = session(ctx, NULL, "pubsub", "publish", &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    if (ctx->json || unpack_result(&rep, &u) != 0) {
        ex = print_result_json(ctx, &rep);
    } else {
        static const char *const keys[] = {"matched", "delivered", "dropped", "killed", "busy"};
        const msgpack_object *v[5];
        bool ok = u.data.type == MSGPACK_OBJECT_MAP;

        for (int i = 0; ok && i < 5; i++) {
            v[i] = gr_term_map_get(&u.data, keys[i]);
            ok = v[i] != NULL && v[i]->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        }
        if (ok) {
            /* matched and delivered always; the rest when not zero */
            fprintf(ctx->out, "matched %" PRIu64 ", delivered %" PRIu64, v[0]->via.u64,
                    v[1]->via.u64);
            for (int i = 2; i < 5; i++) {
                if (v[i]->via.u64 > 0) {
                    fprintf(ctx->out, ", %s %" PRIu64, keys[i], v[i]->via.u64);
                }
            }
            /* other nodes with subscribers, sent one copy each */
            const msgpack_object *nodes = gr_term_map_get(&u.data, "nodes");

            if (nodes != NULL && nodes->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                nodes->via.u64 > 0) {
                fprintf(ctx->out, ", nodes %" PRIu64, nodes->via.u64);
            }
            fprintf(ctx->out, "\n");
            ex = GR_CLI_EXIT_OK;
        } else {
            ex = print_result_json(ctx, &rep);
        }
    }
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    return ex;
}

/* whereis NAME: pubsub.whereis(NAME), the cluster-wide name's pid. */
static int cmd_whereis(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    int ex;

    (void)argc;
    if (argv[0][0] == '\0' || strlen(argv[0]) > PG_NAME_MAX) {
        return gr_cli_usage_error(ctx, "whereis", "NAME must be 1..%d bytes", PG_NAME_MAX);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, argv[0], strlen(argv[0]));
    ex = session(ctx, NULL, "pubsub", "whereis", &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    msgpack_unpacked_init(&u);
    ex = print_pid_result(ctx, &rep, unpack_result(&rep, &u) == 0 ? &u.data : NULL);
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    return ex;
}

/* send global:NAME JSON: pubsub.global_send(NAME, TERM) on the contacted node. */
static int send_global(const gr_cli_ctx *ctx, const char *name, const char *json)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int ex, r;

    if (name[0] == '\0' || strlen(name) > PG_NAME_MAX) {
        return gr_cli_usage_error(ctx, "send", "global NAME must be 1..%d bytes", PG_NAME_MAX);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, name, strlen(name));
    if ((r = pack_json_arg(ctx, "send", 1, json, &pk)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        if (r == -ENOMEM) {
            report(ctx, "ENOMEM", "out of memory");
            return GR_CLI_EXIT_UNREACHABLE;
        }
        return r;
    }
    ex = session(ctx, NULL, "pubsub", "global_send", &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    ex = print_ok(ctx, &rep);
    gr_cli_reply_clear(&rep);
    return ex;
}

#define SUB_WAIT_MS 500 /* longest tap_wait: bounds how late Ctrl-C is seen */

/* Set by SIGINT/SIGTERM during `sub` (a signal handler can set nothing else). */
static volatile sig_atomic_t sub_stop;

static void on_sigint(int sig)
{
    (void)sig;
    sub_stop = 1;
}

/* Print one [Topic, Payload]: "TOPIC JSON", or with --json
 * {"topic": TOPIC, "payload": PAYLOAD}. */
static int sub_print(const gr_cli_ctx *ctx, const msgpack_object *m)
{
    char *topic = NULL, *payload = NULL;

    if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size != 2 ||
        gr_cli_term_to_json(&m->via.array.ptr[0], 0, &topic) < 0 ||
        gr_cli_term_to_json(&m->via.array.ptr[1], 0, &payload) < 0) {
        free(topic);
        return -1;
    }
    if (ctx->json) {
        fprintf(ctx->out, "{\"topic\": %s, \"payload\": %s}\n", topic, payload);
    } else {
        fprintf(ctx->out, "%.*s %s\n", (int)strlen(topic) - 2, topic + 1, payload);
    }
    fflush(ctx->out);
    free(topic);
    free(payload);
    return 0;
}

/* sub's options: patterns, --count N, --timeout S, --json. 0 or an exit code
 * (usage, reported). */
static int sub_parse(gr_cli_ctx *c2, int argc, char **argv, char **pats, int *ret_npat,
                     uint64_t *ret_count, int64_t *ret_timeout_ms)
{
    int npat = 0;

    for (int i = 0; i < argc; i++) {
        char *end = NULL;

        if (strcmp(argv[i], "--json") == 0) {
            c2->json = 1;
        } else if (strcmp(argv[i], "--count") == 0) {
            if (i + 1 >= argc || (*ret_count = strtoull(argv[i + 1], &end, 10)) == 0 || *end ||
                argv[i + 1][0] == '-') {
                return gr_cli_usage_error(c2, "sub", "--count needs a positive number");
            }
            i++;
        } else if (strcmp(argv[i], "--timeout") == 0) {
            double sec = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;

            if (i + 1 >= argc || end == argv[i + 1] || *end || !(sec > 0) || sec > 86400.0 * 365) {
                return gr_cli_usage_error(c2, "sub",
                                          "--timeout needs a positive number of seconds");
            }
            *ret_timeout_ms = (int64_t)(sec * 1000.0 + 0.5) > 0 ? (int64_t)(sec * 1000.0 + 0.5) : 1;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return gr_cli_usage_error(c2, "sub", "unknown option '%s'", argv[i]);
        } else if (npat == 64) {
            return gr_cli_usage_error(c2, "sub", "at most 64 TOPIC patterns");
        } else {
            gr_topic_err e = gr_topic_check(argv[i], strlen(argv[i]), true);

            if (e != GR_TOPIC_OK) {
                return gr_cli_usage_error(c2, "sub",
                                          "bad TOPIC pattern '%s': %s (tokens joined by '.', "
                                          "wildcards '*' and a last '>' as whole tokens)",
                                          argv[i], gr_topic_strerror(e));
            }
            pats[npat++] = argv[i];
        }
    }
    if (npat == 0) {
        return gr_cli_usage_error(c2, "sub", "missing TOPIC");
    }
    *ret_npat = npat;
    return 0;
}

/* One tap_wait on conn: print what it brings (at most count - *got), report
 * new drops. 0 (go on) or an exit code. */
static int sub_wait(const gr_cli_ctx *ctx, gr_cli_conn *conn, const char *src,
                    const msgpack_object *tap, uint64_t wait_ms, uint64_t count, uint64_t *got,
                    uint64_t *dropped)
{
    gr_cli_fail f = {0};
    gr_cli_reply pr = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked pu;
    const msgpack_object *msgs, *dr;
    int r, ex = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_object(&pk, *tap);
    msgpack_pack_uint64(&pk, wait_ms);
    r = gr_cli_call(conn, "pubsub", "tap_wait", sb.data, sb.size,
                    gr_cli_now_ms() + (int64_t)wait_ms + ctx->timeout_ms, &pr, &f);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        report_fail(ctx, &f, src);
        return gr_cli_fail_exit(&f);
    }
    if (pr.status < 0) {
        ex = gr_cli_report_remote(ctx, gr_cli_conn_peer(conn), &pr);
        gr_cli_reply_clear(&pr);
        return ex;
    }
    msgpack_unpacked_init(&pu);
    msgs = unpack_result(&pr, &pu) == 0 && pu.data.type == MSGPACK_OBJECT_MAP
               ? gr_term_map_get(&pu.data, "msgs")
               : NULL;
    dr = msgs ? gr_term_map_get(&pu.data, "dropped") : NULL;
    if (msgs == NULL || msgs->type != MSGPACK_OBJECT_ARRAY) {
        report(ctx, "bad_reply", "pubsub.tap_wait did not answer {dropped, msgs}");
        ex = GR_CLI_EXIT_REMOTE;
    } else {
        if (dr != NULL && dr->type == MSGPACK_OBJECT_POSITIVE_INTEGER && dr->via.u64 > *dropped) {
            fprintf(ctx->err, "girder: sub: %" PRIu64 " messages dropped (read too slowly)\n",
                    dr->via.u64 - *dropped);
            *dropped = dr->via.u64;
        }
        for (uint32_t i = 0; i < msgs->via.array.size && (count == 0 || *got < count); i++) {
            if (sub_print(ctx, &msgs->via.array.ptr[i]) == 0) {
                (*got)++;
            }
        }
    }
    msgpack_unpacked_destroy(&pu);
    gr_cli_reply_clear(&pr);
    return ex;
}

/* sub TOPIC... [--count N] [--timeout S] [--json]: open a tap (pubsub.tap) on
 * the contacted node and stream it over one connection: one pubsub.tap_wait
 * outstanding at a time, answered by the tap as soon as it holds a message.
 * Until N messages, S seconds or SIGINT/SIGTERM; then pubsub.tap_close. */
static int cmd_sub(const gr_cli_ctx *ctx, int argc, char **argv)
{
    gr_cli_ctx c2 = *ctx;
    char srcbuf[GR_COOKIE_PATH_MAX];
    const char *src = cookie_source(ctx, srcbuf, sizeof(srcbuf));
    gr_cli_fail f = {0};
    gr_cli_conn *conn = NULL;
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    gr_cookie ck;
    uint64_t count = 0, got = 0, dropped = 0;
    int64_t timeout_ms = 0, end_ms = 0;
    int npat = 0, ex = GR_CLI_EXIT_OK, r;
    char *pats[64];
    struct sigaction sa, old_int, old_term;

    if ((ex = sub_parse(&c2, argc, argv, pats, &npat, &count, &timeout_ms)) != 0) {
        return ex;
    }
    ctx = &c2;
    if (load_key(ctx, &ck, &f) < 0) {
        report_fail(ctx, &f, src);
        return gr_cli_fail_exit(&f);
    }
    r = connect_key(ctx, &ck, gr_cli_now_ms() + ctx->timeout_ms, &conn, &f);
    gr_cookie_wipe(&ck);
    if (r < 0) {
        report_fail(ctx, &f, src);
        return gr_cli_fail_exit(&f);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, (uint32_t)npat);
    for (int i = 0; i < npat; i++) {
        msgpack_pack_str_with_body(&pk, pats[i], strlen(pats[i]));
    }
    r = gr_cli_call(conn, "pubsub", "tap", sb.data, sb.size, gr_cli_now_ms() + ctx->timeout_ms,
                    &rep, &f);
    msgpack_sbuffer_clear(&sb);
    msgpack_unpacked_init(&u);
    if (r < 0) {
        report_fail(ctx, &f, src);
        ex = gr_cli_fail_exit(&f);
        goto out;
    }
    if (rep.status < 0) {
        ex = gr_cli_report_remote(ctx, gr_cli_conn_peer(conn), &rep);
        goto out;
    }
    if (unpack_result(&rep, &u) != 0 || u.data.type != MSGPACK_OBJECT_EXT) {
        report(ctx, "bad_reply", "pubsub.tap did not answer a pid");
        ex = GR_CLI_EXIT_REMOTE;
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    end_ms = timeout_ms > 0 ? gr_cli_now_ms() + timeout_ms : 0;
    while (!sub_stop && (count == 0 || got < count)) {
        int64_t wait = SUB_WAIT_MS;

        if (end_ms != 0 && (wait = end_ms - gr_cli_now_ms()) <= 0) {
            break;
        }
        if (wait > SUB_WAIT_MS) {
            wait = SUB_WAIT_MS;
        }
        if ((ex = sub_wait(ctx, conn, src, &u.data, (uint64_t)wait, count, &got, &dropped)) != 0) {
            break;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    {
        gr_cli_reply cr = {0};

        /* unsubscribes: the tap stops and its subscriptions go with it */
        msgpack_pack_array(&pk, 1);
        msgpack_pack_object(&pk, u.data);
        (void)gr_cli_call(conn, "pubsub", "tap_close", sb.data, sb.size,
                          gr_cli_now_ms() + ctx->timeout_ms, &cr, &f);
        gr_cli_reply_clear(&cr);
    }
out:
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    gr_cli_reply_clear(&rep);
    gr_cli_conn_close(conn);
    return ex;
}

static int print_scopes(FILE *f, const msgpack_object *o)
{
    return gr_cli_print_groups(f, o, false);
}

static int print_groups(FILE *f, const msgpack_object *o)
{
    return gr_cli_print_groups(f, o, true);
}

/* groups [SCOPE]: pubsub.groups([SCOPE]) on the contacted node. */
static int cmd_groups(const gr_cli_ctx *ctx, int argc, char **argv)
{
    char peer[GR_NODENAME_MAX + 1];
    gr_cli_reply rep = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int ex;

    if (argc == 1 && (argv[0][0] == '\0' || strlen(argv[0]) > PG_NAME_MAX)) {
        return gr_cli_usage_error(ctx, "groups", "SCOPE must be 1..%d bytes", PG_NAME_MAX);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, (uint32_t)argc) < 0 ||
        (argc == 1 && msgpack_pack_str_with_body(&pk, argv[0], strlen(argv[0])) < 0)) {
        msgpack_sbuffer_destroy(&sb);
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    ex = session(ctx, NULL, "pubsub", "groups", &sb, &rep, peer);
    msgpack_sbuffer_destroy(&sb);
    if (ex != 0) {
        return ex;
    }
    ex = print_shaped(ctx, &rep, argc == 1 ? print_groups : print_scopes);
    gr_cli_reply_clear(&rep);
    return ex;
}

/* ------------------------------------------------------------ plugin, port */

/* Append s as a JSON string (quoted, escaped) to *buf (len *n, malloc'ed).
 * 0 or -ENOMEM. */
static int json_append_str(char **buf, size_t *n, const char *s)
{
    size_t need = *n + strlen(s) * 6 + 3;
    char *g = realloc(*buf, need);

    if (!g) {
        return -ENOMEM;
    }
    *buf = g;
    g[(*n)++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x20) {
            *n += (size_t)snprintf(g + *n, 7, "\\u%04x", ch);
            continue;
        }
        if (ch == '"' || ch == '\\') {
            g[(*n)++] = '\\';
        }
        g[(*n)++] = (char)ch;
    }
    g[(*n)++] = '"';
    g[*n] = '\0';
    return 0;
}

/* Append the literal text t to *buf. 0 or -ENOMEM. */
static int json_append_raw(char **buf, size_t *n, const char *t)
{
    size_t len = strlen(t);
    char *g = realloc(*buf, *n + len + 1);

    if (!g) {
        return -ENOMEM;
    }
    *buf = g;
    memcpy(g + *n, t, len + 1);
    *n += len;
    return 0;
}

/* girder plugin load PATH [NODE] | unload NAME [NODE] | list [NODE]: the rpc
 * module `plugin` of NODE (default: the contacted node), through cmd_rpc. */
static int cmd_plugin(const gr_cli_ctx *ctx, int argc, char **argv)
{
    const char *sub = argv[0], *node;
    char *rargv[4], *json = NULL;
    int nargs = argc - 1, want, ex;
    size_t n = 0;

    if (strcmp(sub, "list") == 0) {
        want = 0;
    } else if (strcmp(sub, "load") == 0 || strcmp(sub, "unload") == 0) {
        want = 1;
    } else {
        return gr_cli_usage_error(ctx, "plugin", "unknown subcommand '%s' (load, unload, list)",
                                  sub);
    }
    if (nargs < want || nargs > want + 1) {
        return gr_cli_usage_error(ctx, "plugin", "expected: plugin %s%s [NODE]", sub,
                                  want ? (strcmp(sub, "load") == 0 ? " PATH" : " NAME") : "");
    }
    node = nargs > want ? argv[1 + want] : ctx->target.node;
    if (want && json_append_str(&json, &n, argv[1]) < 0) {
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    rargv[0] = (char *)node;
    rargv[1] = "plugin";
    rargv[2] = (char *)sub;
    rargv[3] = json;
    ex = cmd_rpc(ctx, 3 + want, rargv);
    free(json);
    return ex;
}

/* A port's busy marks, checked here so that a bad pair is a usage error
 * rather than a port that dies with "bad_busy_marks" (daemon/port/port.h:
 * GR_PORT_BUSY_HIGH_MIN..GR_PORT_BUSY_HIGH_MAX, default low 256 KiB). */
#define PORT_BUSY_HIGH_MIN 4096ull
#define PORT_BUSY_HIGH_MAX (4ull << 20)
#define PORT_BUSY_LOW_DEFAULT (256ull << 10)

/* BYTES: decimal digits only, at most 10. 0 or -1. */
static int parse_bytes(const char *s, unsigned long long *ret)
{
    size_t n = strlen(s);

    if (n == 0 || n > 10 || strspn(s, "0123456789") != n) {
        return -1;
    }
    *ret = strtoull(s, NULL, 10);
    return 0;
}

/* girder port start [--on NODE] [--name NAME] [--kill-timeout MS]
 * [--busy-high BYTES] [--busy-low BYTES] -- CMD ARGS...:
 * proc.spawn("port", {"cmd", "args", "name", "kill_timeout_ms", "busy_high",
 * "busy_low"}) through cmd_spawn. girder port list [NODE]: port.list()
 * through cmd_rpc. */
static int cmd_port(const gr_cli_ctx *ctx, int argc, char **argv)
{
    const char *node = NULL, *name = NULL, *kt = NULL, *bh = NULL, *bl = NULL;
    unsigned long long high = 0, low = 0;
    char *sargv[4], *json = NULL;
    size_t n = 0;
    int i = 1, sargc = 0, ex, r = 0;

    if (strcmp(argv[0], "list") == 0) {
        char *rargv[3];

        if (argc > 2) {
            return gr_cli_usage_error(ctx, "port", "expected: port list [NODE]");
        }
        rargv[0] = argc == 2 ? argv[1] : (char *)ctx->target.node;
        rargv[1] = "port";
        rargv[2] = "list";
        return cmd_rpc(ctx, 3, rargv);
    }
    if (strcmp(argv[0], "start") != 0) {
        return gr_cli_usage_error(ctx, "port", "unknown subcommand '%s' (start, list)", argv[0]);
    }
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) {
            return gr_cli_usage_error(ctx, "port", "option %s needs a value", argv[i]);
        }
        if (strcmp(argv[i], "--on") == 0) {
            node = argv[i + 1];
        } else if (strcmp(argv[i], "--name") == 0) {
            name = argv[i + 1];
        } else if (strcmp(argv[i], "--kill-timeout") == 0) {
            kt = argv[i + 1];
            if (strspn(kt, "0123456789") != strlen(kt) || strlen(kt) == 0 || strlen(kt) > 6) {
                return gr_cli_usage_error(ctx, "port", "--kill-timeout takes milliseconds");
            }
        } else if (strcmp(argv[i], "--busy-high") == 0) {
            bh = argv[i + 1];
            if (parse_bytes(bh, &high) < 0 || high < PORT_BUSY_HIGH_MIN ||
                high > PORT_BUSY_HIGH_MAX) {
                return gr_cli_usage_error(ctx, "port", "--busy-high takes bytes, %llu..%llu",
                                          PORT_BUSY_HIGH_MIN, PORT_BUSY_HIGH_MAX);
            }
        } else if (strcmp(argv[i], "--busy-low") == 0) {
            bl = argv[i + 1];
            if (parse_bytes(bl, &low) < 0) {
                return gr_cli_usage_error(ctx, "port", "--busy-low takes bytes");
            }
        } else {
            return gr_cli_usage_error(ctx, "port", "unknown option '%s' (expected -- CMD ARGS...)",
                                      argv[i]);
        }
    }
    if (bl && low >= (bh ? high : 1048576ull)) {
        return gr_cli_usage_error(ctx, "port", "--busy-low (%llu) must be below --busy-high (%llu)",
                                  low, bh ? high : 1048576ull);
    }
    if (i >= argc || i + 1 >= argc) {
        return gr_cli_usage_error(ctx, "port", "expected: port start [OPTIONS] -- CMD [ARGS...]");
    }
    r |= json_append_raw(&json, &n, "{\"cmd\": ");
    r |= json_append_str(&json, &n, argv[i + 1]);
    r |= json_append_raw(&json, &n, ", \"args\": [");
    for (int k = i + 2; k < argc; k++) {
        r |= json_append_raw(&json, &n, k > i + 2 ? ", " : "");
        r |= json_append_str(&json, &n, argv[k]);
    }
    r |= json_append_raw(&json, &n, "]");
    if (name) {
        r |= json_append_raw(&json, &n, ", \"name\": ");
        r |= json_append_str(&json, &n, name);
    }
    if (kt) {
        r |= json_append_raw(&json, &n, ", \"kill_timeout_ms\": ");
        r |= json_append_raw(&json, &n, kt);
    }
    if (bh) {
        r |= json_append_raw(&json, &n, ", \"busy_high\": ");
        r |= json_append_raw(&json, &n, bh);
    }
    if (bl) {
        r |= json_append_raw(&json, &n, ", \"busy_low\": ");
        r |= json_append_raw(&json, &n, bl);
    }
    r |= json_append_raw(&json, &n, "}");
    if (r < 0) {
        free(json);
        report(ctx, "ENOMEM", "out of memory");
        return GR_CLI_EXIT_UNREACHABLE;
    }
    if (node) {
        sargv[sargc++] = "--on";
        sargv[sargc++] = (char *)node;
    }
    sargv[sargc++] = "port";
    sargv[sargc++] = json;
    ex = cmd_spawn(ctx, sargc, sargv);
    free(json);
    return ex;
}

/* ------------------------------------------------------------ the table */

static const gr_cli_cmd CMDS[] = {
    {"ping", "", 0, 0, "check that a node is up and answers (round trip)",
     "Authenticates to the node and calls node.ping(); prints \"pong from NODE (N.N ms)\",\n"
     "the round trip of the call itself. --json: {\"node\": NODE, \"ms\": MS}.",
     cmd_ping},
    {"nodes", "[--only]", 0, 1, "list the cluster members, their links and versions",
     "Calls node.list() on the contacted node and node.about() on every member at\n"
     "once (rpc.multicall; each member has half of --timeout, at most 2 s). Prints\n"
     "NAME ADDRESS STATE UPTIME VERSION PROCS CIPHER for every member (STATE: self,\n"
     "up, down, left, or timeout for a member up that did not answer), then for\n"
     "each link up: BYTES-IN BYTES-OUT MSGS-IN MSGS-OUT (since it came up), RTT\n"
     "(last heartbeat round trip) and HEARD (time since the last bytes arrived).\n"
     "--only: no fan-out (only the contacted node's own facts). --json: node.list's\n"
     "entries plus \"status\" (ok, timeout, down, left...), \"uptime_ms\",\n"
     "\"version\" and \"processes\".",
     gr_cli_cmd_nodes},
    {"join", "NAME@HOST:PORT", 1, 1, "make the node join the cluster of another node",
     "Calls node.join(\"NAME@HOST:PORT\"): the contacted node joins the cluster the given\n"
     "node belongs to. PORT defaults to 4370. Both nodes must share the cookie.",
     cmd_join},
    {"leave", "", 0, 0, "make the node leave the cluster and shut down",
     "Calls node.leave(): the node tells the cluster it is leaving, then stops.", cmd_leave},
    {"rpc", "NODE MODULE FUNCTION [JSON-ARG...]", 3, -1, "call MODULE.FUNCTION(ARGS) on NODE",
     "Each JSON-ARG is one JSON value: 42, 1.5, true, null, '\"text\"', '[1,2]',\n"
     "'{\"k\":\"v\"}'. Strings \"<NODE.CREATION.SERIAL.SCHED>\" are pids,\n"
     "\"#Ref<NODE.CREATION.ID>\" refs, {\"$bin\": \"BASE64\"} binaries. If NODE is the\n"
     "contacted node the function is called there directly, otherwise through\n"
     "rpc.call(NODE, MODULE, FUNCTION, [ARGS], TIMEOUT). The result is printed as JSON\n"
     "(indented; one line with --json). Example:\n"
     "  girder rpc girder@127.0.0.1 node ping",
     cmd_rpc},
    {"cast", "NODE MODULE FUNCTION [JSON-ARG...]", 3, -1,
     "run MODULE.FUNCTION(ARGS) on NODE without waiting for its result",
     "Calls rpc.cast(NODE, MODULE, FUNCTION, [ARGS]) on the contacted node, which\n"
     "starts the call on NODE and answers at once; the result is dropped. Prints\n"
     "\"ok\". Errors known at once are remote errors (exit 1): noconnection (NODE\n"
     "is not a connected member), and for the contacted node itself undef_module,\n"
     "undef_function. Errors on another NODE are not reported. Example:\n"
     "  girder cast b@10.0.0.2 proc spawn '\"echo\"'",
     cmd_cast},
    {"multicall", "[--timeout MS] [--nodes LIST] MODULE FUNCTION [JSON-ARG...]", 2, -1,
     "call MODULE.FUNCTION(ARGS) on every node at once",
     "Calls rpc.multicall(NODES, MODULE, FUNCTION, [ARGS], MS) on the contacted node,\n"
     "which calls every node in parallel: NODES is every member that has not left\n"
     "(the contacted node first), or the comma-separated --nodes list. Each node\n"
     "has MS to answer (default: the global --timeout minus 10%, at most 1 s less;\n"
     "the connection then waits MS + 1 s). Prints NODE STATUS RESULT: ok and the\n"
     "result as JSON, or error and the reason id (noconnection, timeout,\n"
     "undef_module, badarg, ...). --json: {NODE: {\"ok\": RESULT} | {\"error\": ID}}.\n"
     "Exit 0 if every node answered ok, 1 if any node failed. Example:\n"
     "  girder multicall --nodes a@10.0.0.1,b@10.0.0.2 sys uptime",
     cmd_multicall},
    {"stats", "[--only]", 0, 1, "show every node's counters and limits",
     "Calls sys.counters() and node.about() on every member at once (rpc.multicall)\n"
     "and prints one column per node (as many per block as fit in 80 columns):\n"
     "status (ok, timeout, down), uptime, version, every counter, and the limits as\n"
     "USED/LIMIT (members, link_queue_bytes: the fullest link's output against the\n"
     "overload mark). Exit 1 if a member up did not answer. --only: the contacted\n"
     "node alone. --json: {NODE: {\"status\", \"counters\", \"about\"}}; with --only,\n"
     "the contacted node's counters map.",
     gr_cli_cmd_stats},
    {"send", "[--after MS] DEST JSON", 2, 4, "send a message (one JSON term) to a process",
     "DEST is a pid \"<NODE.CREATION.SERIAL.SCHED>\", a NAME registered on the\n"
     "contacted node, or NAME@NODE (split at the first '@'). Calls proc.send(DEST,\n"
     "TERM) on the process's node (through rpc.call when that is not the contacted\n"
     "node). Prints \"ok\"; a dead pid is \"ok\" too (as in Erlang), an unregistered\n"
     "name is the remote error noname.\n"
     "--after MS (0..2592000000, 30 days): calls proc.send_after(DEST, MS, TERM)\n"
     "instead, which arms a timer on DEST's node and answers at once; prints the\n"
     "timer's pid (a process \"$timer\" that sends TERM after MS ms and ends;\n"
     "`girder kill` on it cancels the timer). A NAME is resolved when the timer is\n"
     "armed. --json: {\"timer\": PID, \"ms\": MS}. Examples:\n"
     "  girder send worker@b@10.0.0.2 '{\"job\": 42}'\n"
     "  girder send --after 5000 worker '\"tick\"'\n"
     "DEST global:NAME sends to the cluster-wide name NAME (pubsub.global_send on\n"
     "the contacted node; unknown name: remote error noname).",
     cmd_send},
    {"call", "DEST JSON", 2, 2, "call a process (request/reply) and print its answer",
     "Sends the JSON request as a girder_call ([\"$call\", From, Ref, Request]) to DEST\n"
     "(see send) and prints the response as JSON. The process's own timeout is\n"
     "derived from --timeout (a little less, so it is reported first): remote\n"
     "error timeout (exit 1). A dead or unknown process: remote error noproc.\n"
     "Example:\n"
     "  girder call '<b@10.0.0.2.1712.9.1>' '\"count\"'",
     cmd_call},
    {"spawn", "[--on NODE] BEHAVIOUR [JSON]", 1, 4, "start a process running a behaviour",
     "Calls proc.spawn(BEHAVIOUR[, ARG]) on NODE (default: the contacted node) and\n"
     "prints the new pid, unquoted (--json: the pid as a JSON string). The process\n"
     "is not linked to anything. Every node has the demo behaviour \"echo\".\n"
     "Unknown behaviour: remote error bad_behaviour. Example:\n"
     "  girder -n a@10.0.0.1 spawn --on b@10.0.0.2 echo",
     cmd_spawn},
    {"ps", "[--only|--node NODE] [--name G] [--behaviour G] [--sort F] [--top N]", 0, -1,
     "list the processes of every node",
     "Asks every member at once for its processes (rpc.multicall of proc.snapshot:\n"
     "1024 per node), then follows each node's cursor page by page (32768 a page,\n"
     "each within --timeout) until its last, so any number of processes is listed.\n"
     "Prints PID (SERIAL.SCHED) NAME BEHAVIOUR STATUS MBOX (mailbox) MSGS (messages\n"
     "handled) MEM (bytes) WORK (reductions-like: turns + messages handled + signals\n"
     "sent) NODE; --json has whole pids. Rows come node by node in pid order, as\n"
     "they arrive. --node NODE (repeatable; a bare NODE works too): those nodes only;\n"
     "--only: the contacted node only. --name / --behaviour: fnmatch patterns\n"
     "('work*'). --sort FIELD: pid, node, name, behaviour, status, mailbox, handled,\n"
     "memory, work (numbers largest first). --top N: the first N in that order\n"
     "(default order: work). A node that did not answer is named on stderr and the\n"
     "exit status is 1; a member known down is skipped. --json: one array. A listing\n"
     "over 0.5 s shows its progress on stderr when that is a terminal (not while\n"
     "unsorted rows stream to the same terminal).",
     gr_cli_cmd_ps},
    {"trace", "[--count N] [--time MS] [--rate R] DEST", 1, 7,
     "print the messages a process receives and sends, live",
     "Calls proc.trace(DEST, {max, ms, rate}) on the process's node (see send for\n"
     "DEST), which starts a tracer process there, then polls it every 100 ms\n"
     "(proc.trace_read(Tracer, \"poll\", Token)) and prints TIME KIND PEER TERM per\n"
     "event: in (PEER sent it), out (sent to PEER), call (a girder_call it\n"
     "received). The trace ends by itself after N events (--count, default 100),\n"
     "MS ms (--time, default 10000) or when the process exits; events beyond R a\n"
     "second (--rate, default 100) are dropped and counted, so a busy process\n"
     "cannot flood anything. Ctrl-C stops it. Last line: events, dropped, lost\n"
     "(the tracer's buffer was full) and why it ended. --json: one object per\n"
     "event, then {\"done\", \"events\", \"dropped\", \"lost\"}. Example:\n"
     "  girder trace --count 20 worker@b@10.0.0.2",
     gr_cli_cmd_trace},
    {"top", "[-i SECONDS] [--sort KEY] [--only] [--once [--rows N]]", 0, 8,
     "a live view of the fleet: nodes, rates, busiest processes",
     "Redraws every -i SECONDS (default 2, at least 0.1) the nodes (STATE, UTIL: the\n"
     "schedulers' busy share, IN/s OUT/s: dist frames, MSG/s: messages handled,\n"
     "PROCS, MEM: resident memory) and the busiest processes of the fleet (MBOX,\n"
     "MSG/s, WORK/s: reductions-like work, MEM), rates taken between two samples.\n"
     "Processes ranked: each node's 1024 with the most work, messages handled,\n"
     "mailbox or memory (the sort key), out of all its processes. Keys:\n"
     "w work/s (default), r msgs/s, m mailbox, M memory, q or Ctrl-C quits and gives\n"
     "the terminal back. Needs a terminal (any TERM ncurses knows; 80x24 is enough).\n"
     "--once: two samples -i apart, then one frame as text on stdout (--rows N\n"
     "processes, default 20), for scripts and pipes; --json implies --once and\n"
     "prints {\"nodes\", \"processes\"}. --only: the contacted node only. Example:\n"
     "  girder top -i 1",
     gr_cli_cmd_top},
    {"forget", "NODE", 1, 1, "remove a member that is gone for good",
     "Calls node.forget(NODE) on the contacted node: NODE (down or left) is removed\n"
     "from its member list and no longer dialled, and every member up is told to do\n"
     "the same. Refused while NODE is connected (remote error member_up); unknown\n"
     "NODE: no_member. A forgotten node that comes back and dials in is a member\n"
     "again. Example:\n"
     "  girder forget b@10.0.0.2",
     gr_cli_cmd_forget},
    {"pub", "TOPIC JSON", 2, 2, "publish a message (one JSON term) on a topic",
     "Calls pubsub.publish(TOPIC, TERM) on the contacted node: every local\n"
     "subscription whose pattern matches TOPIC gets [\"$pub\", TOPIC, TERM]\n"
     "(docs/pubsub.md). TOPIC is dot-separated tokens without wildcards\n"
     "(orders.eu.new); an invalid one is the remote error badarg. Prints\n"
     "\"matched N, delivered N\" (and dropped, killed, busy, nodes when not 0;\n"
     "nodes: other nodes with subscribers, each sent one copy).\n"
     "--json: {\"matched\", \"delivered\", \"dropped\", \"killed\", \"busy\"}. Example:\n"
     "  girder pub orders.eu '{\"id\": 7}'",
     cmd_pub},
    {"groups", "[SCOPE]", 0, 1, "list the process groups of a node",
     "Calls pubsub.groups([SCOPE]) on the contacted node. Without SCOPE prints\n"
     "SCOPE JOINS (every scope with members, and its joins); with SCOPE prints\n"
     "GROUP MEMBERS (its groups with members; a process joined twice counts\n"
     "twice). Sorted by name. --json: [{\"name\", \"members\"}].",
     cmd_groups},
    {"sub", "TOPIC... [--count N] [--timeout S] [--json]", 1, 70,
     "print messages published on topics, as they arrive",
     "Opens a tap on the contacted node (pubsub.tap: a server-side subscriber to\n"
     "every TOPIC pattern, wildcards '*' and a last '>' allowed, that buffers up to\n"
     "1000 messages) and streams it over one connection (pubsub.tap_wait, answered\n"
     "as soon as a message arrives), printing \"TOPIC JSON\" per message, from any\n"
     "node, until N messages (--count), S seconds (--timeout) or Ctrl-C/SIGTERM;\n"
     "then closes the tap (unsubscribing). Messages beyond the buffer (a reader\n"
     "too slow) are dropped and reported on stderr. --json: {\"topic\", \"payload\"}\n"
     "per line. A bad pattern is a usage error (exit 2). Example:\n"
     "  girder sub 'orders.>' --count 3",
     cmd_sub},
    {"whereis", "NAME", 1, 1, "show the pid of a cluster-wide name",
     "Calls pubsub.whereis(NAME) on the contacted node and prints the pid holding\n"
     "the cluster-wide (global) name, on any node; unknown: remote error noname.\n"
     "--json: the pid as a JSON string.",
     cmd_whereis},
    {"info", "DEST", 1, 1, "show everything the runtime knows about a process",
     "Calls proc.info(DEST) on the process's node (see send for DEST) and prints\n"
     "KEY VALUE: pid, status, scheduler, mailbox, handled, work, memory, links,\n"
     "monitors, monitored_by, name, behaviour, started_ms, trap_exit; then\n"
     "supervisor (the linked process running the supervisor behaviour that started\n"
     "it, among its first 8 links; nil if none), groups ([[SCOPE, GROUP]...]) and\n"
     "topics (its subscription patterns), from pubsub.owned on that node. A dead\n"
     "process: remote error noproc. --json: the map.",
     gr_cli_cmd_info},
    {"kill", "DEST [JSON-REASON]", 1, 2, "send an exit signal to a process",
     "Calls proc.kill(DEST[, REASON]) on the process's node (see send for DEST).\n"
     "REASON defaults to \"kill\" (untrappable: the process dies with reason\n"
     "\"killed\"). Prints \"ok\" once the process is down, or after 1 s if it\n"
     "survives (it traps exits); a dead pid is \"ok\" too. Unregistered name: noname.",
     cmd_kill},
    {"tables", "", 0, 0, "list the contacted node's tables",
     "Calls table.infos() and prints NAME KIND DURABILITY ENTRIES BYTES B/ENTRY ERROR\n"
     "for every table of the contacted node (ERROR: why a disk table did not load).\n"
     "--json: the array of info maps (girder table info NAME has every field).",
     cmd_tables},
    {"table", "SUBCOMMAND NAME [ARGS...]", 2, -1, "create, read and write a table",
     "Subcommands (KEY, VALUE and the bounds are JSON terms, e.g. '\"user:1\"', 42):\n"
     "  create NAME [--kind set|ordered_set] [--durability memory|disk]\n"
     "         [--mode local|replicated]\n"
     "         [--fsync always|interval|never] [--interval MS] [--ttl MS]\n"
     "         [--max-entries N] [--max-bytes N] [--cache]\n"
     "  drop NAME | info NAME | count NAME\n"
     "  get NAME KEY                 prints the value (--json: value, version, expire_ms)\n"
     "  put NAME KEY VALUE [--ttl MS] [--if-absent] [--version V]   (V: compare-and-set)\n"
     "  del NAME KEY [--version V]\n"
     "  incr NAME KEY [N]            prints the new total\n"
     "  scan NAME [--prefix JSON] [--start JSON] [--end JSON] [--limit N]\n"
     "                               prints KEY<TAB>VALUE lines (--json: [[K, V], ...]),\n"
     "                               following the cursor (one connection per 1,000)\n"
     "  load NAME                    puts each stdin line KEY<TAB>VALUE (JSON) over one\n"
     "                               connection; prints {\"puts\": N, \"ms\": T}\n"
     "  Maps and add-wins sets (FIELD, MEMBER: plain strings; docs/tables.md):\n"
     "  hset NAME KEY FIELD VALUE [FIELD VALUE...]   prints the fields added\n"
     "  hget NAME KEY FIELD | hdel NAME KEY FIELD... | hgetall NAME KEY (FIELD<TAB>VALUE)\n"
     "  sadd NAME KEY MEMBER... | srem NAME KEY MEMBER... | smembers NAME KEY\n"
     "Errors are remote errors (exit 1): no_table, not_found, key_exists, cas_mismatch,\n"
     "table_full, wrong_type, too_large, bad_table_name, table_exists. Example:\n"
     "  girder table create users --kind ordered_set\n"
     "  girder table put users '\"u:1\"' '{\"name\": \"ada\"}'",
     cmd_table},
    {"plugin", "load PATH | unload NAME | list  [NODE]", 1, 3,
     "load, unload or list the plugins (.so) of a node",
     "Calls plugin.load(PATH), plugin.unload(NAME) or plugin.list() on NODE (default:\n"
     "the contacted node) and prints the result as JSON: load prints the plugin's\n"
     "name. PATH is a path on the node's machine; the file must not be writable by\n"
     "group or others. Refusals are remote errors with a reason: plugin_abi,\n"
     "plugin_no_entry, plugin_init_failed, plugin_unsafe_file, plugin_in_use (a\n"
     "process or call of it is alive), plugin_loaded, no_plugin. docs/plugins.md.",
     cmd_plugin},
    {"port",
     "start [--on NODE] [--name NAME] [--kill-timeout MS] [--busy-high BYTES] [--busy-low BYTES] "
     "-- CMD [ARGS...] | list [NODE]",
     1, -1, "start an external program as a process (a port), or list the ports",
     "port start: proc.spawn(\"port\", {\"cmd\": CMD, \"args\": [ARGS...], \"name\": NAME,\n"
     "\"kill_timeout_ms\": MS, \"busy_high\": BYTES, \"busy_low\": BYTES}) on NODE (default:\n"
     "the contacted node); prints the pid. Busy marks: senders are suspended while more\n"
     "than busy_high (4096..4194304, default 1048576) bytes wait for the program's\n"
     "stdin, until less than busy_low (default 262144, or busy_high / 4) wait.\n"
     "The program speaks 4-byte big-endian length + msgpack frames on stdin/stdout\n"
     "(docs/ports.md); its stderr goes to the node's log. NAME registers the port.\n"
     "port list: port.list() on NODE: pid, name, cmd, os_pid of every port.",
     cmd_port},
};

const gr_cli_cmd *gr_cli_cmd_find(const char *name)
{
    for (size_t i = 0; i < sizeof(CMDS) / sizeof(CMDS[0]); i++) {
        if (strcmp(CMDS[i].name, name) == 0) {
            return &CMDS[i];
        }
    }
    return NULL;
}

int gr_cli_cmd_run(const gr_cli_cmd *cmd, const gr_cli_ctx *ctx, int argc, char **argv)
{
    if (argc < cmd->min_args) {
        return gr_cli_usage_error(ctx, cmd->name, "missing argument%s: expected %s",
                                  cmd->min_args - argc > 1 ? "s" : "", cmd->args);
    }
    if (cmd->max_args >= 0 && argc > cmd->max_args) {
        return gr_cli_usage_error(
            ctx, cmd->name, "unexpected argument '%s'%s", argv[cmd->max_args],
            argv[cmd->max_args][0] == '-' ? " (global options go before the command)" : "");
    }
    return cmd->fn(ctx, argc, argv);
}

static const char EXIT_CODES[] =
    "Exit codes:\n"
    "  0  ok\n"
    "  1  remote error: the node answered with an error (e.g. undef_module, badarg)\n"
    "  2  usage error: bad arguments or bad JSON\n"
    "  3  node unreachable: unknown host, connection refused or closed, wrong node\n"
    "  4  authentication failed: the cookie does not match, or no usable cookie\n"
    "  5  timeout: no answer within --timeout\n"
    "  6  not allowed: the observer key may only read (nodes, ps, info, stats ...)\n";

void gr_cli_usage(FILE *f)
{
    fprintf(f,
            "Usage: girder [OPTIONS] COMMAND [ARGS...]\n"
            "Drive a Girder node as a hidden client.\n"
            "\n"
            "Options (before the command):\n"
            "  -n, --node NAME@HOST[:PORT]  node to contact; HOST is dialled, PORT is %d\n"
            "                               by default (default: $%s, else\n"
            "                               %s)\n"
            "      --cookie-file FILE       cookie file (default: $%s holds the\n"
            "                               cookie, else $%s, else\n"
            "                               ~/%s)\n"
            "      --observer-key-file FILE connect as an observer, read only (default:\n"
            "                               $%s; else the cookie, full rights)\n"
            "      --json                   print one JSON document (errors too)\n"
            "      --timeout MS             total time for connect + reply (default %d)\n"
            "  -h, --help                   this help; COMMAND --help for a command\n"
            "      --version                print the version\n"
            "\n"
            "Commands:\n",
            GR_CLI_PORT_DEFAULT, GR_CLI_NODE_ENV, GR_CLI_NODE_DEFAULT, GR_COOKIE_ENV,
            GR_COOKIE_FILE_ENV, GR_COOKIE_DEFAULT_NAME, GR_CLI_OBSERVER_KEY_ENV,
            GR_CLI_TIMEOUT_DEFAULT);
    for (size_t i = 0; i < sizeof(CMDS) / sizeof(CMDS[0]); i++) {
        char syn[96];

        snprintf(syn, sizeof(syn), "%s %s", CMDS[i].name, CMDS[i].args);
        if (strlen(syn) > 20) {
            fprintf(f, "  %s\n  %-20s  %s\n", syn, "", CMDS[i].summary);
        } else {
            fprintf(f, "  %-20s  %s\n", syn, CMDS[i].summary);
        }
    }
    fprintf(f, "\n%s", EXIT_CODES);
}

void gr_cli_cmd_help(const gr_cli_cmd *cmd, FILE *f)
{
    fprintf(f, "Usage: girder [OPTIONS] %s%s%s\n%c%s.\n\n%s\n\n%s", cmd->name,
            cmd->args[0] ? " " : "", cmd->args, toupper((unsigned char)cmd->summary[0]),
            cmd->summary + 1, cmd->help, EXIT_CODES);
}
