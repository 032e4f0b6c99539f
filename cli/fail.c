/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fail.c - turns a (stage, code) failure into an exit code, a reason id and a
 * message. The one place that decides how each failure is told to the
 * operator, so the exit-code contract of fail.h lives in one switch.
 */
#include "cli/fail.h"

#include "proto/err.h"
#include "proto/handshake.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_closed(const gr_cli_fail *f)
{
    return f->peer_closed || f->code == -ECONNRESET || f->code == -EPIPE;
}

/* A handshake that failed because of the cookie (or looks like it did). A
 * Reject "busy" (GR_EBUSY) is not one: the node is unreachable for now. */
static int is_auth(const gr_cli_fail *f)
{
    return f->code == GR_EBADCOOKIE || f->code == GR_EREJECTED || f->code == GR_EROLE ||
           is_closed(f);
}

int gr_cli_remote_exit(int status, const char *reason)
{
    if (status == GR_ENOTALLOWED ||
        (reason != NULL && gr_err_from_id(reason, strlen(reason)) == GR_ENOTALLOWED)) {
        return GR_CLI_EXIT_NOTALLOWED;
    }
    return GR_CLI_EXIT_REMOTE;
}

int gr_cli_fail_exit(const gr_cli_fail *f)
{
    if (f->code == GR_ETIMEOUT) {
        return GR_CLI_EXIT_TIMEOUT;
    }
    switch (f->stage) {
    case GR_CLI_STAGE_NONE:
        return GR_CLI_EXIT_OK;
    case GR_CLI_STAGE_COOKIE:
        return GR_CLI_EXIT_AUTH;
    case GR_CLI_STAGE_HANDSHAKE:
        return is_auth(f) ? GR_CLI_EXIT_AUTH : GR_CLI_EXIT_UNREACHABLE;
    case GR_CLI_STAGE_REQUEST:
        return f->code == GR_EFRAMETOOBIG ? GR_CLI_EXIT_USAGE : GR_CLI_EXIT_UNREACHABLE;
    case GR_CLI_STAGE_RESOLVE:
    case GR_CLI_STAGE_CONNECT:
    case GR_CLI_STAGE_REPLY:
    default:
        return GR_CLI_EXIT_UNREACHABLE;
    }
}

const char *gr_cli_fail_reason(const gr_cli_fail *f)
{
    if (f->stage == GR_CLI_STAGE_RESOLVE && f->code != GR_ETIMEOUT) {
        return "resolve_failed";
    }
    if (f->stage == GR_CLI_STAGE_HANDSHAKE && f->code != GR_EBADCOOKIE && is_closed(f)) {
        return "handshake_closed";
    }
    if (f->stage == GR_CLI_STAGE_REPLY && is_closed(f)) {
        return "closed";
    }
    return gr_errid(f->code);
}

static char *fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *format, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, format);
    n = vasprintf(&s, format, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static const char *stage_doing(gr_cli_stage s)
{
    switch (s) {
    case GR_CLI_STAGE_RESOLVE:
    case GR_CLI_STAGE_CONNECT:
        return "connecting to";
    case GR_CLI_STAGE_HANDSHAKE:
        return "authenticating with";
    default:
        return "waiting for the reply of";
    }
}

char *gr_cli_fail_message(const gr_cli_fail *f, const gr_cli_target *t, long timeout_ms,
                          const char *cookie_src)
{
    const char *src = cookie_src != NULL ? cookie_src : "the cookie";
    unsigned port = t != NULL ? t->port : 0;
    const char *node = t != NULL ? t->node : "?";

    if (f->code == GR_ETIMEOUT) {
        return fmt("timed out after %ld ms %s %s:%u", timeout_ms, stage_doing(f->stage), node,
                   port);
    }
    switch (f->stage) {
    case GR_CLI_STAGE_COOKIE:
        if (f->observer) {
            if (f->code == GR_ECOOKIEPERM) {
                return fmt("cannot use the observer key file %s: it is readable or writable by "
                           "group or others (chmod 600 %s)",
                           src, src);
            }
            return fmt("cannot read the observer key from %s: %s", src,
                       f->code == -ENOENT ? "no such file" : gr_strerror(f->code));
        }
        if (f->code == GR_ECOOKIEPERM) {
            return fmt("cannot use the cookie file %s: it is readable or writable by group or "
                       "others (chmod 600 %s)",
                       src, src);
        }
        if (f->code == -ENOENT) {
            return fmt("no cookie: %s does not exist (set GIRDER_COOKIE, GIRDER_COOKIE_FILE or "
                       "--cookie-file)",
                       src);
        }
        if (f->code == -EINVAL) {
            return fmt("cannot read the cookie from %s: not a regular file", src);
        }
        if (f->code == GR_ENOCOOKIE) {
            return fmt("the cookie in %s is empty", src);
        }
        return fmt("cannot read the cookie from %s: %s", src, gr_strerror(f->code));
    case GR_CLI_STAGE_RESOLVE:
        return fmt("cannot resolve host %s: %s", t != NULL ? t->host : "?",
                   f->gai == EAI_SYSTEM ? gr_strerror(f->code) : gai_strerror(f->gai));
    case GR_CLI_STAGE_CONNECT:
        if (f->code == -ECONNREFUSED) {
            return fmt("cannot connect to %s:%u: connection refused (is girderd running?)", node,
                       port);
        }
        return fmt("cannot connect to %s:%u: %s", node, port, gr_strerror(f->code));
    case GR_CLI_STAGE_HANDSHAKE:
        if (f->code == GR_EBUSY) {
            return fmt("node busy: %s:%u refused the connection, too many connections in "
                       "handshake (overloaded or flooded); try again",
                       node, port);
        }
        if (f->code == GR_EROLE) {
            return fmt("authentication failed: %s takes no observers (it has no "
                       "observer_key_file)",
                       node);
        }
        if (f->code == GR_EBADCOOKIE || (is_closed(f) && f->proof_sent)) {
            return fmt("authentication failed: the %s does not match the node's",
                       f->observer ? "observer key" : "cookie");
        }
        if (f->code == GR_EREJECTED) {
            return fmt("authentication failed: %s rejected the handshake", node);
        }
        if (is_closed(f)) {
            return fmt("authentication failed: %s:%u closed the connection during the "
                       "handshake (wrong cookie, or not a girder node?)",
                       node, port);
        }
        if (f->code == GR_EBADNODE) {
            return fmt("%s:%u is not %s: a different node answered (check -n)", t ? t->host : "?",
                       port, node);
        }
        if (f->code == GR_EBADFRAME || f->code == GR_EFRAMETOOBIG) {
            return fmt("%s:%u does not speak the Girder protocol (%s)", t ? t->host : "?", port,
                       gr_errid(f->code));
        }
        if (f->code == GR_EVERSION) {
            return fmt("%s speaks no protocol version this girder knows (version %d)", node,
                       GR_PROTO_VERSION);
        }
        return fmt("handshake with %s:%u failed: %s (%s)", node, port, gr_strerror(f->code),
                   gr_errid(f->code));
    case GR_CLI_STAGE_REQUEST:
        if (f->code == GR_EFRAMETOOBIG) {
            return fmt("the arguments are too large for one request");
        }
        if (is_closed(f)) {
            return fmt("%s closed the connection before the request was sent", node);
        }
        return fmt("cannot send the request to %s: %s", node, gr_strerror(f->code));
    case GR_CLI_STAGE_REPLY:
        if (is_closed(f)) {
            return fmt("%s closed the connection before replying", node);
        }
        if (f->code == GR_EFRAMETOOBIG) {
            return fmt("the reply of %s is larger than %u MiB", node, GR_CLI_REPLY_MAX >> 20);
        }
        return fmt("bad reply from %s: %s (%s)", node, gr_strerror(f->code), gr_errid(f->code));
    case GR_CLI_STAGE_NONE:
    default:
        return fmt("%s", gr_strerror(f->code));
    }
}

const char *gr_cli_remote_message(int status, const char *reason)
{
    int code = reason != NULL ? gr_err_from_id(reason, strlen(reason)) : 0;

    if (code != 0) {
        return gr_strerror(code);
    }
    if (status < 0 && strcmp(gr_strerror(status), "unknown error") != 0) {
        return gr_strerror(status);
    }
    return "remote error";
}
