/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_int.h - what the files of daemon/redis/ share: the server (gr_redis),
 * a client connection (rconn), the command table and the value encoding
 * (store.c). Not for use outside daemon/redis/.
 *
 * Threads: a gr_redis is shared by every scheduler (its mutable parts are
 * atomics or under `mu`); an rconn belongs to its connection process and is
 * touched only on that process's scheduler thread, except the fields CLIENT
 * LIST reads, which are written under gr_redis.mu.
 */
#ifndef GR_REDIS_INT_H
#define GR_REDIS_INT_H

#include "redis/redis.h"
#include "pubsub/pubsub.h"
#include "redis/resp.h"
#include "util/shash.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define GR_REDIS_DBS 16                  /* SELECT 0..15 */
#define GR_REDIS_MAX_CLIENTS 10000       /* as Redis's maxclients */
#define GR_REDIS_OUT_SOFT (1u << 20)     /* stop reading a client above this much pending output */
#define GR_REDIS_OUT_HARD (32u << 20)    /* close a client above this much pending output */
#define GR_REDIS_READ_CHUNK (64u << 10)  /* bytes read per read() */
#define GR_REDIS_CURSORS 4096            /* SCAN cursors remembered node-wide */
#define GR_REDIS_NAME_MAX 128            /* CLIENT SETNAME */
#define GR_REDIS_VERSION "7.2.0"         /* the Redis version reported (HELLO, INFO) */
#define GR_REDIS_BLOCK_POLL_MS 50        /* BLPOP/BRPOP re-check their keys this often */
#define GR_REDIS_BLOCK_IN_MAX (1u << 20) /* input buffered behind a BLPOP before reading stops */
#define GR_REDIS_KLOCKS 256              /* key lock stripes (list writes, SPOP) */

typedef struct rconn rconn;

/* One Redis subscription of a connection. */
typedef struct rsub {
    bool pattern;                    /* PSUBSCRIBE (a Redis glob) or SUBSCRIBE */
    uint8_t len;                     /* bytes of name */
    char name[GR_TOPIC_MAX_LEN + 1]; /* channel or pattern */
} rsub;

/* One remembered SCAN cursor: the table's opaque cursor behind an integer. */
typedef struct rcursor {
    uint64_t id; /* the integer the client sees (0: free slot) */
    uint8_t *p;  /* the table cursor */
    size_t len;
} rcursor;

struct gr_redis {
    girder_behaviour listener_b; /* "redis_listener": accepts */
    girder_behaviour conn_b;     /* "redis_conn": one client */
    char *host;
    uint16_t port;
    int lfd;        /* listening socket (the listener process owns it once started) */
    char *password; /* NULL: none */
    size_t password_len;
    char *table; /* db 0's table name */
    bool disk;   /* create tables on disk */
    girder_rt *rt;
    gr_tables *tables;
    gr_pubsub *pubsub;               /* the node's topics (PUBLISH, SUBSCRIBE), or NULL */
    uint8_t skey[GR_SHASH_KEYBYTES]; /* the connections' subscription index hash key (random) */
    uint64_t started_ms;             /* monotonic ms of the node's start */
    pthread_mutex_t mu;              /* dbs, clients list, cursors, client fields below */
    gr_table *dbs[GR_REDIS_DBS];     /* opened (created) on first use */
    gr_table *ldbs[GR_REDIS_DBS];    /* each db's list elements table (TABLE[.N].list) */
    /* a command that rewrites several entries of one key (a list push or pop,
     * SPOP) holds its key's stripe: one such command per key at a time here */
    pthread_mutex_t klocks[GR_REDIS_KLOCKS];
    /* every command runs holding it shared, EXEC holds it exclusive: no other
     * client's command runs on this node between two of EXEC's commands */
    pthread_rwlock_t xlock;
    rconn *clients;                /* every open connection */
    rconn *blockedq;               /* connections blocked in BLPOP/BRPOP (bnext) */
    atomic_uint_fast64_t nblocked; /* how many: a push looks only when > 0 */
    /* durable writes' completions not yet run (under durmu, its own mutex:
     * a completion may run inside a table call): gr_redis_free waits for
     * them, since they send through rt with this struct */
    pthread_mutex_t durmu;
    pthread_cond_t durcv; /* durwaits reached 0 */
    uint64_t durwaits;
    atomic_uint_fast64_t durfails; /* connections closed after a failed durable write */
    rcursor cursors[GR_REDIS_CURSORS];
    uint64_t next_cursor;
    atomic_uint_fast64_t next_id;      /* client ids */
    atomic_uint_fast64_t nclients;     /* connected clients */
    atomic_uint_fast64_t conns_total;  /* total_connections_received */
    atomic_uint_fast64_t cmds_total;   /* total_commands_processed */
    atomic_uint_fast64_t rejected;     /* rejected_connections (maxclients) */
    atomic_uint_fast64_t out_limit;    /* closed at GR_REDIS_OUT_HARD */
    atomic_uint_fast64_t proto_errors; /* closed after a protocol error */
    atomic_uint_fast64_t hits, misses; /* keyspace_hits / keyspace_misses */
    atomic_uint_fast64_t net_in, net_out;
};

struct rconn {
    gr_redis *srv;
    girder_pid self;
    int fd;
    struct event *ev_read, *ev_write;
    bool read_on, write_on; /* events armed */
    bool paused;            /* output above GR_REDIS_OUT_SOFT: not parsing */
    bool closing;           /* flush what is pending, then close */
    bool dead;              /* socket closed; the process is stopping */
    uint8_t *in;            /* input: [in_off, in_len) unparsed */
    size_t in_off, in_len, in_cap;
    gr_resp_parser parser;
    gr_resp_out out;
    bool authed;
    int db;
    gr_table *t;                     /* the selected db's table (borrowed from srv->dbs) */
    gr_table *lt;                    /* its list table once used (borrowed from srv->ldbs) */
    gr_tbuf v, v2, k;                /* scratch: a value, a second value, an encoded key */
    gr_tbuf k2;                      /* scratch: a list element's key */
    gr_tbuf kb;                      /* scratch: many list element keys (LRANGE) */
    const struct rcommand *last_cmd; /* the last command looked up (its name's cache) */
    bool in_multi;                   /* between MULTI and EXEC/DISCARD */
    bool multi_err;                  /* a command was refused while queueing: EXEC aborts */
    gr_tbuf mq;                      /* queued commands: u32 argc, then (u32 len, bytes) each */
    uint32_t mq_n;                   /* commands queued */
    gr_tbuf watch;                   /* WATCHed keys: (u32 db, u64 version, u32 len, key bytes) */
    bool in_exec;                    /* running EXEC's queue: BLPOP/BRPOP do not block */
    /* durable writes (docs/redis.md "Durable writes"): the tickets of this
     * turn's writes; while durwait, the replies are held and input not read */
    gr_tdefer dur;
    bool durwait;
    /* BLPOP / BRPOP waiting (docs/redis.md "Blocking pops"): input is not
     * parsed until it ends; blk_ev re-checks the keys every GR_REDIS_BLOCK_POLL_MS */
    bool blocked;
    bool blk_left;            /* BLPOP (head) or BRPOP (tail) */
    uint64_t blk_deadline_ms; /* gr_clock_ms() deadline; 0: none (timeout 0) */
    gr_tbuf blk_keys;         /* the keys: (u32 len, bytes) each */
    struct event *blk_ev;     /* the re-check timer */
    rconn *bnext, *bprev;     /* srv->blockedq (under srv->mu) */
    bool in_blockedq;
    /* pub/sub (written under srv->mu: PUBSUB reads them) */
    rsub *subs;            /* SUBSCRIBE channels and PSUBSCRIBE patterns */
    size_t nsubs, capsubs; /* used, allocated */
    size_t npats;          /* patterns among subs */
    /* the index of subs (pubsub.c; the connection's thread only): open
     * addressing, 0 empty, SIDX_TOMB deleted, else a subs index + 1 */
    uint32_t *sidx;
    size_t sidx_cap, sidx_tombs;
    char gpat[GR_TOPIC_MAX_LEN + 1]; /* the one Girder pattern subscribed ("": none) */
    /* CLIENT LIST (written under srv->mu) */
    uint64_t id;
    char name[GR_REDIS_NAME_MAX + 1];
    char addr[64], laddr[64];
    uint64_t created_ms;
    rconn *next, *prev; /* srv->clients */
};

/* Command arguments: argv[i] / argl[i], argv[0] the name. */
typedef struct rargs {
    int argc;
    const char **argv;
    const size_t *argl;
} rargs;

typedef void (*rcmd_fn)(rconn *c, const rargs *a);

typedef struct rcommand {
    const char *name;  /* lower case */
    int arity;         /* Redis: >0 exact, <0 at least -arity */
    const char *flags; /* Redis's flags, space-separated (COMMAND) */
    int first, last, step;
    rcmd_fn fn;
} rcommand;

/* The command table (cmds.c), sorted by name. */
extern const rcommand gr_redis_cmds[];
extern const size_t gr_redis_ncmds;

/* ---- server.c helpers for commands ------------------------------------------------------ */

/* The selected db's table (created on first use); NULL after an error reply. */
gr_table *gr_redis_db(rconn *c);
/* Open (create) db n's table. NULL on error (logged). Any thread. */
gr_table *gr_redis_db_open(gr_redis *srv, int n);
/* The selected db's list table (created on first use); NULL after an error
 * reply. */
gr_table *gr_redis_ldb(rconn *c);
/* Open (create) db n's list table. NULL on error (logged). Any thread. */
gr_table *gr_redis_ldb_open(gr_redis *srv, int n);
/* The stripe lock of key (bytes) of db. Taken after srv->xlock, never with
 * another stripe or srv->mu held. */
pthread_mutex_t *gr_redis_klock(gr_redis *srv, int db, const void *key, size_t n);
/* Remember a table scan cursor; returns the integer for the client. */
uint64_t gr_redis_cursor_put(gr_redis *srv, const uint8_t *p, size_t len);
/* Look up a cursor integer: 1 and copies it into *out, 0 if unknown. */
int gr_redis_cursor_get(gr_redis *srv, uint64_t id, gr_tbuf *out);
/* Server commands (server.c). */
void gr_redis_cmd_ping(rconn *c, const rargs *a);
void gr_redis_cmd_echo(rconn *c, const rargs *a);
void gr_redis_cmd_hello(rconn *c, const rargs *a);
void gr_redis_cmd_auth(rconn *c, const rargs *a);
void gr_redis_cmd_select(rconn *c, const rargs *a);
void gr_redis_cmd_quit(rconn *c, const rargs *a);
void gr_redis_cmd_client(rconn *c, const rargs *a);
void gr_redis_cmd_info(rconn *c, const rargs *a);
void gr_redis_cmd_config(rconn *c, const rargs *a);
void gr_redis_cmd_command(rconn *c, const rargs *a);
void gr_redis_cmd_dbsize(rconn *c, const rargs *a);
void gr_redis_cmd_flushdb(rconn *c, const rargs *a);
void gr_redis_cmd_multi(rconn *c, const rargs *a);
void gr_redis_cmd_exec(rconn *c, const rargs *a);
void gr_redis_cmd_discard(rconn *c, const rargs *a);
void gr_redis_cmd_watch(rconn *c, const rargs *a);
void gr_redis_cmd_unwatch(rconn *c, const rargs *a);
void gr_redis_cmd_subscribe(rconn *c, const rargs *a);
void gr_redis_cmd_unsubscribe(rconn *c, const rargs *a);
void gr_redis_cmd_psubscribe(rconn *c, const rargs *a);
void gr_redis_cmd_punsubscribe(rconn *c, const rargs *a);
void gr_redis_cmd_publish(rconn *c, const rargs *a);
void gr_redis_cmd_pubsub(rconn *c, const rargs *a);
/* Block connection c in BLPOP/BRPOP on keys[0..n) until deadline_ms
 * (gr_clock_ms; 0: forever): its input waits, a timer calls gr_redis_bpop
 * until it replies. 0 or -ENOMEM. Owning thread of c. */
int gr_redis_block(rconn *c, bool left, uint64_t deadline_ms, int n, const char *const *keys,
                   const size_t *lens);
/* A push happened on this node: wake every blocked connection (a message
 * to its process, which re-checks its keys on its own scheduler). Any
 * thread; costs one atomic load when nobody is blocked. */
void gr_redis_wake_blocked(gr_redis *srv);
/* A ["$pub", Topic, Payload] message for connection c. */
void gr_redis_deliver(rconn *c, const girder_msg *m);

/* ---- store.c: the value encoding ---------------------------------------------------------- */

typedef enum rtype { RT_NONE, RT_STRING, RT_HASH, RT_SET, RT_LIST, RT_ZSET, RT_OTHER } rtype;

#define GR_REDIS_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"

/* A key's table form (a msgpack str of its bytes) into *out. 0 or -ENOMEM. */
int gr_redis_key(gr_tbuf *out, const void *k, size_t n);
/* The Redis key of a table key, or false (not a str/bin key). */
bool gr_redis_key_bytes(const uint8_t *tk, size_t n, const uint8_t **ret_p, size_t *ret_n);
/* The type of a stored value. */
rtype gr_redis_type(const uint8_t *v, size_t n);
/* A string value's bytes (an integer or a float, as a Girder process may
 * write, is formatted into ibuf[32]: a float as its shortest round trip,
 * gr_resp_fmt_score). false if not a string. */
bool gr_redis_str(const uint8_t *v, size_t n, char ibuf[32], const uint8_t **ret_p, size_t *ret_n);
/* Encode a string: a canonical int64 as a msgpack integer (what the table's
 * counters add to), anything else as a bin. 0 or -ENOMEM. */
int gr_redis_enc_str(gr_tbuf *out, const void *p, size_t n);
/* A list's head/tail record, the value under the list's key: [3, head, tail];
 * its elements are the positions [head, tail) (docs/redis.md "Storage").
 * 0 or -ENOMEM. */
int gr_redis_enc_list(gr_tbuf *out, int64_t head, int64_t tail);
/* Decode a list record. 0 or -EINVAL (not one). */
int gr_redis_dec_list(const uint8_t *v, size_t n, int64_t *ret_head, int64_t *ret_tail);
/* The key of a list element in the db's list table: [bin key, int pos]. */
int gr_redis_list_key(gr_tbuf *out, const void *k, size_t n, int64_t pos);
/* A msgpack bin of p (a list element's value). 0 or -ENOMEM. */
int gr_redis_enc_bin(gr_tbuf *out, const void *p, size_t n);

/* Byte strings collected for a reply (the engine's callbacks run outside its
 * locks; a reply is written once its count is known): (u32 length, bytes)
 * each in *b, the caller's buffer (often c->v2, reused). */
#define RP_NAMES 1  /* gr_redis_collect_fn: collect field names / members */
#define RP_VALUES 2 /* ... and / or field values, as string bytes */
#define RP_RAW 4    /* ... values as stored (one msgpack term each), not as strings */
typedef struct rpieces {
    gr_tbuf *b;
    size_t n; /* entries (gr_redis_collect_fn: fields or members) */
    int what; /* RP_NAMES | RP_VALUES for gr_redis_collect_fn */
    bool oom; /* a put failed */
} rpieces;
/* Append one piece. 0 or -ENOMEM (ps->oom set). */
int gr_redis_piece_put(rpieces *ps, const void *p, size_t n);
/* The piece at offset off of ps->b; returns the next piece's offset. */
size_t gr_redis_piece_at(const rpieces *ps, size_t off, const uint8_t **ret_p, size_t *ret_n);
/* The strings of a msgpack array (a gr_table_mget answer: bin, str or
 * number each, nil for an absent key, skipped) into ps. 0, -EINVAL, -ENOMEM. */
int gr_redis_pieces_of_array(rpieces *ps, const uint8_t *v, size_t n);
/* Write each string of a msgpack array (a gr_table_mget answer, as for
 * gr_redis_pieces_of_array) to o as a bulk string, nil items skipped, and
 * add their number to *ret_n. 0 or -EINVAL (what was written stays). */
int gr_redis_reply_strs(gr_resp_out *o, const uint8_t *v, size_t n, size_t *ret_n);
/* A gr_tfield_fn (ud: an rpieces): the name and / or the value as a string
 * (a value that is not one: empty) of each field or member; stops (1) when
 * out of memory. */
int gr_redis_collect_fn(void *ud, const uint8_t *name, size_t nlen, const uint8_t *val,
                        size_t vlen);

/* One member of a sorted set: its bytes (borrowed) and score. */
typedef struct rzel {
    const uint8_t *p;
    size_t len;
    double score;
} rzel;

/* Encode a sorted set: [4, [member, score, ...]] (bin, float64), members in
 * the order given (the caller keeps them sorted by score, then bytes). */
int gr_redis_enc_zset(gr_tbuf *out, size_t n, const rzel *els);
/* Decode a sorted set into an array of members borrowed from v (the caller
 * frees *ret). 0, -EINVAL (not a sorted set), -ENOMEM. */
int gr_redis_dec_zset(const uint8_t *v, size_t n, size_t *ret_n, rzel **ret);

/* ---- cmds.c: data commands --------------------------------------------------------------- */

/* Pop one element from the first non-empty list of keys[0..n) (the head if
 * left) and reply [key, element]: 1 replied (that or an error), 0 all empty
 * (nothing replied). Owning thread of c. */
int gr_redis_bpop(rconn *c, bool left, int n, const char *const *keys, const size_t *lens);
/* Delete key (bytes) of c's db, a list's elements too. 1 deleted, 0 absent,
 * or an error. Uses c->k, c->k2, c->v. */
int gr_redis_del_key(rconn *c, gr_table *t, const char *key, size_t klen);
/* Reply for a table error (WRONGTYPE, OOM, ...). */
void gr_redis_reply_err(rconn *c, int r);

/* ---- coll.c: hashes and sets on the engine's maps and add-wins sets ---------------------- */

void gr_redis_cmd_hset(rconn *c, const rargs *a);
void gr_redis_cmd_hmset(rconn *c, const rargs *a);
void gr_redis_cmd_hsetnx(rconn *c, const rargs *a);
void gr_redis_cmd_hget(rconn *c, const rargs *a);
void gr_redis_cmd_hmget(rconn *c, const rargs *a);
void gr_redis_cmd_hgetall(rconn *c, const rargs *a);
void gr_redis_cmd_hkeys(rconn *c, const rargs *a);
void gr_redis_cmd_hvals(rconn *c, const rargs *a);
void gr_redis_cmd_hdel(rconn *c, const rargs *a);
void gr_redis_cmd_hexists(rconn *c, const rargs *a);
void gr_redis_cmd_hincrby(rconn *c, const rargs *a);
void gr_redis_cmd_hlen(rconn *c, const rargs *a);
void gr_redis_cmd_sadd(rconn *c, const rargs *a);
void gr_redis_cmd_srem(rconn *c, const rargs *a);
void gr_redis_cmd_smembers(rconn *c, const rargs *a);
void gr_redis_cmd_sismember(rconn *c, const rargs *a);
void gr_redis_cmd_scard(rconn *c, const rargs *a);
void gr_redis_cmd_spop(rconn *c, const rargs *a);
/* Write every piece of ps as a bulk string (no array header). */
void gr_redis_reply_pieces(rconn *c, const rpieces *ps);
/* Copy the live fields (kind GR_TVAL_MAP) or members (GR_TVAL_SET) of key
 * c->k to table key `to` (added to what is there). 0 or an engine error.
 * Uses c->v2. */
int gr_redis_coll_copy(rconn *c, gr_table *t, gr_tval_kind kind, const void *to, size_t tlen);

#endif
