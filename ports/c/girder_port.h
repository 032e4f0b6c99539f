/* SPDX-License-Identifier: Apache-2.0 */
/*
 * girder_port.h - write a Girder port in C (docs/ports.md): a program that
 * girderd starts as a process of the cluster and that talks to its node over
 * stdin/stdout, one frame at a time:
 *
 * OFFSET  SIZE  DESCRIPTION
 * 0       4     N, unsigned, big-endian; 1..max_frame
 * 4       N     exactly one msgpack value, shaped like msgpack-RPC:
 *               [0, Id, Method, Params]  request       (either way)
 *               [1, Id, Error, Result]   response      (either way; Error nil on success)
 *               [2, Method, Params]      notification  (either way)
 *
 * A minimal worker (ports/c/example_worker.c is a complete one):
 *
 *   girder_port *gp;
 *   girder_port_event ev;
 *   int r;
 *
 *   if (girder_port_open(0, 1, 0, &gp) < 0) return 1;
 *   while ((r = girder_port_next(gp, &ev)) == 0) {
 *       if (ev.kind == GIRDER_PORT_CALL)
 *           girder_port_reply(gp, ev.id, packed_answer, len);
 *   }
 *   girder_port_close(gp);
 *   return r == GIRDER_PORT_ECLOSED ? 0 : 1;   // stdin EOF: exit now
 *
 * Terms going out are packed msgpack bytes (exactly one value each: pack them
 * with a msgpack_packer into a msgpack_sbuffer); terms coming in are
 * msgpack_objects borrowed until the next call that reads (girder_port_next or
 * a request). Pids are msgpack ext type 1: keep one with girder_port_pid_get
 * and pass it back, never look inside.
 *
 * Bounds: a frame from the node is refused (GIRDER_PORT_ETOOBIG) from its
 * 4-byte header when its length is 0 or above max_frame, before anything is
 * buffered for it; the read buffer never exceeds max_frame plus one read; at
 * most GIRDER_PORT_QUEUE_MAX frames (and max_frame * 4 bytes) are kept while a
 * request waits for its answer. Every error is a negative GIRDER_PORT_E* code
 * (girder_port_strerror); after an I/O or framing error the port is broken and
 * the program should exit (the node logs its exit status).
 *
 * Threading: a girder_port is used by one thread at a time. No global state.
 */
#ifndef GIRDER_PORT_H
#define GIRDER_PORT_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define GIRDER_PORT_FRAME_MAX_DEFAULT (16u << 20) /* largest frame accepted by default */
#define GIRDER_PORT_QUEUE_MAX 1024                /* frames kept while a request waits */
#define GIRDER_PORT_PID_MAX 64                    /* bytes of a packed pid */

/* Errors: negative ints. */
#define GIRDER_PORT_EIO (-1)       /* read or write failed (errno tells why) */
#define GIRDER_PORT_ECLOSED (-2)   /* stdin reached end of file between frames: exit now */
#define GIRDER_PORT_ETRUNC (-3)    /* stdin ended inside a frame */
#define GIRDER_PORT_ETOOBIG (-4)   /* a frame length of 0 or above max_frame */
#define GIRDER_PORT_EBADFRAME (-5) /* not one msgpack value, or not a msgpack-RPC shape */
#define GIRDER_PORT_EREMOTE (-6)   /* the node answered with an error: girder_port_errmsg */
#define GIRDER_PORT_ENOMEM (-7)    /* out of memory */
#define GIRDER_PORT_EBADARG (-8)   /* a bad argument (e.g. a term that is not one value) */
#define GIRDER_PORT_EFULL (-9)     /* too many frames arrived while a request waited */

typedef struct girder_port girder_port;

/* What girder_port_next returns. */
typedef enum girder_port_kind {
    GIRDER_PORT_MESSAGE = 1, /* a message sent to the port: term */
    GIRDER_PORT_CALL = 2,    /* a call: term is the request; answer with girder_port_reply(id) */
    GIRDER_PORT_PUBLISH = 3, /* a publish on a subscribed topic: topic (a string), term */
    GIRDER_PORT_OTHER = 4,   /* any other frame from the node: term is the whole frame */
} girder_port_kind;

typedef struct girder_port_event {
    girder_port_kind kind;
    uint64_t id;                 /* GIRDER_PORT_CALL: the call's id */
    const msgpack_object *term;  /* borrowed until the next read */
    const msgpack_object *topic; /* GIRDER_PORT_PUBLISH: the topic; else NULL */
} girder_port_event;

/* A pid kept beyond the frame it came in: the packed msgpack ext. */
typedef struct girder_port_pid {
    size_t len;                        /* bytes used in data */
    uint8_t data[GIRDER_PORT_PID_MAX]; /* the packed ext (type 1) */
} girder_port_pid;

/* Start a port on in_fd (the node's frames, usually 0) and out_fd (ours,
 * usually 1); blocking descriptors. max_frame: the largest frame accepted
 * (0: GIRDER_PORT_FRAME_MAX_DEFAULT). The "init" frame is read by the first
 * girder_port_next or request (then girder_port_self/node/name answer). 0 and
 * *ret_gp, or GIRDER_PORT_ENOMEM / GIRDER_PORT_EBADARG. */
int girder_port_open(int in_fd, int out_fd, uint32_t max_frame, girder_port **ret_gp);

/* Free gp (does not close the descriptors). NULL-safe. */
void girder_port_close(girder_port *gp);

/* Wait for the next message, call or publish. 0 and *ret_ev (borrowed until
 * the next read), GIRDER_PORT_ECLOSED at stdin EOF (exit now), or another
 * negative error (the port is broken: exit). The node's "init" frame and
 * responses to nobody are handled here, never returned. */
int girder_port_next(girder_port *gp, girder_port_event *ret_ev);

/* Answer call id with the packed term[0..len) (exactly one msgpack value). */
int girder_port_reply(girder_port *gp, uint64_t id, const void *term, size_t len);
/* Answer call id with an error: the caller gets ["error", reason]. */
int girder_port_reply_error(girder_port *gp, uint64_t id, const char *reason);

/* Send term to a pid, to a name on the port's node ("worker"), or to a name on
 * another node ("worker@node@host"). Dropped silently by the node if nobody is
 * there, as in Erlang. */
int girder_port_send(girder_port *gp, const girder_port_pid *to, const void *term, size_t len);
int girder_port_send_name(girder_port *gp, const char *name, const void *term, size_t len);

/* Make a request of the node (docs/ports.md, "What the port may send"):
 * params[0..plen) is one packed msgpack array. Waits for its response; frames
 * that arrive meanwhile are kept for girder_port_next (bounded). 0 and
 * *ret_result (borrowed until the next read; may be NULL), GIRDER_PORT_EREMOTE
 * (girder_port_errmsg says the node's reason), or another error. */
int girder_port_request(girder_port *gp, const char *method, const void *params, size_t plen,
                        const msgpack_object **ret_result);

/* The node's reason for the last GIRDER_PORT_EREMOTE ("" if none). */
const char *girder_port_errmsg(const girder_port *gp);

/* Requests, each a girder_port_request with its params packed for you. */
int girder_port_register(girder_port *gp, const char *name);
int girder_port_join(girder_port *gp, const char *scope, const char *group);
int girder_port_leave(girder_port *gp, const char *scope, const char *group);
int girder_port_subscribe(girder_port *gp, const char *pattern);
int girder_port_unsubscribe(girder_port *gp, const char *pattern);
/* The members of a process group on every node: *ret_pids, an array of pids,
 * borrowed until the next read. */
int girder_port_members(girder_port *gp, const char *scope, const char *group,
                        const msgpack_object **ret_pids);
/* gen_server-style call of a process by local name; timeout_ms 0: 5000. */
int girder_port_call_name(girder_port *gp, const char *name, const void *req, size_t len,
                          uint32_t timeout_ms, const msgpack_object **ret_result);

/* Call module.function(args) on node ("name@host"; the port's own node
 * works too), as `girder rpc` does: args[0..len) is one packed msgpack array
 * (NULL / 0: no arguments); timeout_ms 0: 5000. 0 and *ret_result (borrowed
 * until the next read), or GIRDER_PORT_EREMOTE with girder_port_errmsg
 * "undef_module", "undef_function", "badarg", "noconnection", "timeout" or
 * the function's own error. */
int girder_port_rpc(girder_port *gp, const char *node, const char *module, const char *function,
                    const void *args, size_t len, uint32_t timeout_ms,
                    const msgpack_object **ret_result);

/* Publish the packed term[0..len) on topic (no wildcards) to every
 * subscriber in the cluster: a notification, no answer (a bad topic is
 * dropped by the node). */
int girder_port_publish(girder_port *gp, const char *topic, const void *term, size_t len);

/* Keep the pid in o (a msgpack ext type 1). 0 or GIRDER_PORT_EBADARG. */
int girder_port_pid_get(const msgpack_object *o, girder_port_pid *ret_pid);

/* Who we are, from the "init" frame (NULL / empty before it arrived). */
const girder_port_pid *girder_port_self(const girder_port *gp);
const char *girder_port_node(const girder_port *gp);
const char *girder_port_name(const girder_port *gp);

/* The framing alone (for tests and other transports): is buf[0..len) a whole
 * frame? 1 and *ret_used (header + payload), 0 (need more bytes), or
 * GIRDER_PORT_ETOOBIG (decided from the header). */
int girder_port_frame_check(const uint8_t *buf, size_t len, uint32_t max_frame, size_t *ret_used);

/* A short text for a GIRDER_PORT_E* code. */
const char *girder_port_strerror(int err);

#endif
