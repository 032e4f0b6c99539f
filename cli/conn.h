/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.h - the CLI's one connection to one node: parse the target, dial it,
 * authenticate as a hidden client, make one rpc, hang up.
 *
 * The CLI is a hidden client (docs/protocol.md, "Transport"): it runs the
 * handshake as the initiator with hidden=1 and expect_peer set to the node
 * name it was told to contact, so a different node answering on that address
 * is refused. Everything uses one blocking-style socket driven by poll() with a
 * single deadline (CLOCK_MONOTONIC ms) covering connect, handshake and reply.
 * Name resolution (getaddrinfo) is the one step the deadline cannot bound.
 *
 * Two round trips: gr_cli_connect stops once the node's HelloReply is in and
 * holds our proof back; the first gr_cli_call sends it together with its
 * request (an early record, docs/protocol.md) and verifies the node's proof
 * before it reads the reply. So the first call can fail with a handshake
 * failure (stage HANDSHAKE), reported exactly as one from gr_cli_connect.
 *
 * Failures return a negative code (proto/err.h) and, in *ret_fail, the stage it
 * happened in; cli/fail.h turns the pair into an exit code and a message.
 *
 * Threading: a gr_cli_conn belongs to the thread that made it.
 */
#ifndef GR_CLI_CONN_H
#define GR_CLI_CONN_H

#include "proto/cookie.h"
#include "proto/nodename.h"

#include <stddef.h>
#include <stdint.h>

#define GR_CLI_PORT_DEFAULT 4370               /* girderd's default port */
#define GR_CLI_NODE_DEFAULT "girder@127.0.0.1" /* -n when GIRDER_NODE is unset */
#define GR_CLI_NODE_ENV "GIRDER_NODE"          /* variable naming the node */
#define GR_CLI_REPLY_MAX (64u << 20)           /* largest frame/reply we accept */

/* Where the CLI talks to: "NAME@HOST[:PORT]" split up. */
typedef struct gr_cli_target {
    char node[GR_NODENAME_MAX + 1]; /* "NAME@HOST", the node's own name */
    char host[GR_NODENAME_MAX + 1]; /* HOST to dial, IPv6 brackets removed */
    uint16_t port;                  /* port to dial */
    int has_port;                   /* 1 if the string named the port */
} gr_cli_target;

/* Which step failed. */
typedef enum gr_cli_stage {
    GR_CLI_STAGE_NONE = 0,  /* no failure */
    GR_CLI_STAGE_COOKIE,    /* finding or reading the cookie */
    GR_CLI_STAGE_RESOLVE,   /* getaddrinfo on the host */
    GR_CLI_STAGE_CONNECT,   /* TCP connect */
    GR_CLI_STAGE_HANDSHAKE, /* authentication */
    GR_CLI_STAGE_REQUEST,   /* building or sending the request */
    GR_CLI_STAGE_REPLY,     /* waiting for the reply */
} gr_cli_stage;

/* What went wrong, as data: filled by the functions below on failure. */
typedef struct gr_cli_fail {
    gr_cli_stage stage; /* the step that failed */
    int code;           /* negative code of proto/err.h or -errno */
    int gai;            /* getaddrinfo's EAI_* code when stage is RESOLVE */
    int proof_sent;     /* handshake: our cookie proof was sent before it failed */
    int peer_closed;    /* the node closed the connection (EOF or reset) */
    int observer;       /* the key was the observer key, not the cookie (messages) */
} gr_cli_fail;

/* The answer to one rpc. Free with gr_cli_reply_clear. */
typedef struct gr_cli_reply {
    int status;      /* 0, or the negative code the node returned */
    char *reason;    /* status < 0: the stable reason id (malloc'd, never NULL then) */
    uint8_t *result; /* status == 0: one msgpack term (malloc'd), validated */
    size_t len;      /* bytes in result */
    double rtt_ms;   /* request sent -> reply received, milliseconds */
} gr_cli_reply;

/* An authenticated connection. Opaque. */
typedef struct gr_cli_conn gr_cli_conn;

/* Parse "NAME@HOST[:PORT]" into *ret_t. HOST may be "[v6addr]"; an unbracketed
 * HOST with several ':' is taken whole (no port). Without a port,
 * GR_CLI_PORT_DEFAULT. Returns 0, GR_EBADNODE (no '@', empty parts, bad name)
 * or -EINVAL (bad port: not 1..65535). *ret_t untouched on error. Pure. */
int gr_cli_target_parse(const char *s, gr_cli_target *ret_t);

/* Milliseconds of CLOCK_MONOTONIC: the clock of every deadline here. */
int64_t gr_cli_now_ms(void);

/* Resolve, connect and start authenticating to t with cookie c (only derived
 * keys are kept; the caller still wipes c) before deadline_ms: the handshake
 * runs until the node's HelloReply is checked; our proof goes out with the
 * first gr_cli_call. Returns 0 and *ret_c, or a negative code with *ret_fail
 * filled: GR_ETIMEOUT at any stage; RESOLVE -ENOENT (gai set); CONNECT -errno
 * (-ECONNREFUSED ...); HANDSHAKE the handshake's code (GR_EBADNODE for a
 * different node, GR_EVERSION ...) or -ECONNRESET when the node closed. */
int gr_cli_connect(const gr_cli_target *t, const gr_cookie *c, int64_t deadline_ms,
                   gr_cli_conn **ret_c, gr_cli_fail *ret_fail);

/* gr_cli_connect proving `role` (GR_ROLE_x, proto/handshake.h) with `key`:
 * the cookie for GR_ROLE_MEMBER, the observer key for GR_ROLE_OBSERVER (the
 * node then answers what an observer may not do with GR_ENOTALLOWED). Same
 * returns, plus HANDSHAKE GR_EROLE when the node takes no observers. */
int gr_cli_connect_as(const gr_cli_target *t, const gr_cookie *key, int role, int64_t deadline_ms,
                      gr_cli_conn **ret_c, gr_cli_fail *ret_fail);

/* The peer's node name: the one dialled (expect_peer), as the node stated it
 * in its HelloReply; proven once the first gr_cli_call has succeeded. */
const char *gr_cli_conn_peer(const gr_cli_conn *c);

/* Send RpcRequest{module, function, args[0..len) (one msgpack array),
 * deadline_ms = what is left of deadline_ms} and wait for the RpcReply with the
 * same ref. Other frames are skipped. The first call on a connection also sends
 * our proof (in the same write as the request) and verifies the node's before
 * anything else it sends. Returns 0 and fills *ret_r (status may be negative: a
 * remote error), or a negative code with *ret_fail: REQUEST GR_EFRAMETOOBIG
 * (arguments too large) / -ENOMEM / -errno; HANDSHAKE (first call, until the
 * node's proof is verified) GR_EBADCOOKIE (proof_sent set), GR_ETIMEOUT,
 * -ECONNRESET (peer_closed) and the other handshake codes, as gr_cli_connect;
 * REPLY GR_ETIMEOUT, -ECONNRESET (closed before the reply), GR_ECRYPTO,
 * GR_EBADFRAME, GR_EFRAMETOOBIG (reply over GR_CLI_REPLY_MAX). Later calls on
 * the same connection work alike (one at a time). */
int gr_cli_call(gr_cli_conn *c, const char *module, const char *function, const void *args,
                size_t len, int64_t deadline_ms, gr_cli_reply *ret_r, gr_cli_fail *ret_fail);

/* gr_cli_call in two halves, so that a caller can work while the node
 * answers (ps asks for a node's next page before it decodes this one):
 * gr_cli_call_send sends the request (REQUEST and HANDSHAKE failures as
 * gr_cli_call; REQUEST -EBUSY while an earlier request is not waited for),
 * gr_cli_call_wait waits for its reply (REPLY and HANDSHAKE failures;
 * REQUEST -EINVAL with nothing sent). One request at a time. */
int gr_cli_call_send(gr_cli_conn *c, const char *module, const char *function, const void *args,
                     size_t len, int64_t deadline_ms, gr_cli_fail *ret_fail);
int gr_cli_call_wait(gr_cli_conn *c, int64_t deadline_ms, gr_cli_reply *ret_r,
                     gr_cli_fail *ret_fail);

/* Close the socket, wipe the keys (and a handshake still held), free. NULL-safe. */
void gr_cli_conn_close(gr_cli_conn *c);

/* Free what a reply holds and zero it. NULL-safe. */
void gr_cli_reply_clear(gr_cli_reply *r);

#endif
