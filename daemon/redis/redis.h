/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis.h - girderd's Redis listener (docs/redis.md): the RESP protocol over
 * the node's tables, so that Redis clients, redis-cli and redis-benchmark talk
 * to a Girder node. Off unless configured (--redis HOST:PORT).
 *
 * Life cycle, all on the main thread:
 *   gr_redis_new    reads the password file, applies protected mode, binds
 *                   and listens (so a bad setting or a port in use stops the
 *                   start, before any thread runs);
 *   gr_redis_start  after gr_rt_start: registers the behaviours "redis_listener"
 *                   and "redis_conn" and spawns the listener process, which
 *                   accepts on its scheduler's event loop and spawns one
 *                   connection process per client, spread over the schedulers;
 *   gr_redis_free   after gr_rt_stop (every connection process has run its
 *                   terminate and closed its socket).
 */
#ifndef GR_REDIS_H
#define GR_REDIS_H

#include "girder/girder.h"
#include "tables/tables.h"

#include <stdint.h>

typedef struct gr_redis gr_redis;
struct gr_pubsub;

#define GR_REDIS_TABLE_DEFAULT "redis" /* db 0's table; db N is "redis.N" */

typedef struct gr_redis_config {
    const char *host;          /* listen address (no brackets) */
    uint16_t port;             /* 0: any free port (tests) */
    const char *password_file; /* NULL: no password (loopback only) */
    const char *table;         /* db 0's table; NULL: GR_REDIS_TABLE_DEFAULT */
    const char *data_dir;      /* non-NULL: the tables are created on disk (fsync interval) */
} gr_redis_config;

/* Check the configuration and listen. Borrowed strings are copied. 0,
 * GR_ECONFIG (logged: protected mode, unsafe or unreadable password file,
 * bad table name), or -errno of bind/listen (logged). */
int gr_redis_new(const gr_redis_config *cfg, gr_redis **ret_r);
/* Start serving on rt with the node's tables and topics (borrowed, alive
 * until gr_redis_free; pubsub may be NULL: no pub/sub commands). 0 or a
 * negative error (logged). */
int gr_redis_start(gr_redis *r, girder_rt *rt, gr_tables *tables, struct gr_pubsub *pubsub,
                   uint64_t started_ms);
/* The port listened on (after gr_redis_new). */
uint16_t gr_redis_port(const gr_redis *r);
/* Free after gr_rt_stop. NULL-safe; returns NULL. */
gr_redis *gr_redis_free(gr_redis *r);

#endif
