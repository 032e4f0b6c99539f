/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.c - the Redis listener (redis.h): the listening socket, the listener
 * process that accepts, one connection process per client with its socket
 * on its scheduler's event loop, the read-parse-execute-write pump with its
 * output bounds, command dispatch, and the server commands (PING ECHO HELLO
 * AUTH SELECT QUIT CLIENT INFO CONFIG COMMAND DBSIZE FLUSHDB).
 *
 * Design notes
 * - Spreading: the listener accepts on its own scheduler and spawns each
 *   client's process round-robin over the schedulers (gr_rt_spawn); the
 *   process's init puts the socket on its scheduler's libevent base. A client
 *   is then served entirely on that thread: reads, parsing, table calls
 *   (which lock only a shard) and writes; no thread that every client queues
 *   behind.
 * - The pump: every read parses and executes all complete commands, then
 *   writes the replies with one write. While a client's pending output is
 *   above GR_REDIS_OUT_SOFT, its input is neither parsed nor read; it resumes
 *   when the output drained below half of that. So a pipeline of any length
 *   holds at most one read of input and about OUT_SOFT of output. A single
 *   reply that takes the pending output above GR_REDIS_OUT_HARD closes the
 *   client (counted: INFO client_output_buffer_limit_disconnections).
 * - Durable writes (docs/redis.md "Durable writes"): a write to a table with
 *   fsync `always` does not wait for its fsync; its log ticket goes into
 *   c->dur (gr_table_*_d). When the pump is about to write replies and c->dur
 *   holds tickets, the replies are held instead: the connection stops parsing
 *   and reading, and gr_tdefer_notify's completion (on a log's flusher thread)
 *   sends the process DUR_ATOM, which writes the held replies and resumes on
 *   the connection's own thread. The completion only knows the pid, so a
 *   connection closed meanwhile is simply not found. The fsync is shared by
 *   every connection's writes appended meanwhile (group commit).
 * - Closing from an event callback: the socket and events are released at
 *   once and the process is told to stop with a message, so its state is freed
 *   by terminate, never inside a callback of its own.
 */
#include "redis/redis_int.h"

#include "gr_version.h"
#include "proto/err.h"
#include "runtime/rt.h"
#include "util/clock.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <msgpack.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define LOG "redis"
#define CLOSE_ATOM "$redis_close"
#define WAKE_ATOM "$redis_wake"       /* a push on this node: blocked pops re-check */
#define DUR_ATOM "$redis_dur"         /* the connection's held writes are on disk */
#define DURFAIL_ATOM "$redis_durfail" /* ... or one of them failed */
#define ACCEPT_BATCH 64

/* ---- configuration and the socket ------------------------------------------------------ */

static bool is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    bool lo = true;

    if (strcmp(host, "localhost") == 0) {
        return true;
    }
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        return false;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *s = (const void *)ai->ai_addr;
            lo = lo && (ntohl(s->sin_addr.s_addr) >> 24) == 127;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const void *)ai->ai_addr;
            lo = lo && IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
        } else {
            lo = false;
        }
    }
    freeaddrinfo(res);
    return lo;
}

/* Read the password: the file's first line. Refused when group or others may
 * read it (like the cookie). 0, GR_ECONFIG (logged). */
static int read_password(gr_redis *r, const char *path)
{
    char buf[1024];
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0) {
        gr_error(LOG, "cannot read the redis password file %s: %s", path, strerror(errno));
        return GR_ECONFIG;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        gr_error(LOG, "the redis password file %s is not a regular file", path);
        close(fd);
        return GR_ECONFIG;
    }
    if (st.st_mode & 077) {
        gr_error(LOG,
                 "the redis password file %s is readable by group or others (mode %03o): "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        close(fd);
        return GR_ECONFIG;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
        gr_error(LOG, "cannot read the redis password file %s: %s", path, strerror(errno));
        return GR_ECONFIG;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        gr_error(LOG, "the redis password file %s is empty", path);
        return GR_ECONFIG;
    }
    r->password_len = strlen(buf);
    r->password = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return r->password ? 0 : -ENOMEM;
}

static int listen_on(gr_redis *r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    char port[8];
    int one = 1, fd, e;

    snprintf(port, sizeof(port), "%u", r->port);
    if ((e = getaddrinfo(r->host, port, &hints, &res)) != 0) {
        gr_error(LOG, "cannot resolve the redis address %s: %s", r->host, gai_strerror(e));
        return -EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 511) < 0) {
        e = -errno;
        gr_error(LOG, "cannot listen for redis clients on %s:%u: %s", r->host, r->port,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        return e;
    }
    freeaddrinfo(res);
    if (r->port == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        memset(&ss, 0, sizeof(ss));
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            r->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    r->lfd = fd;
    return 0;
}

int gr_redis_new(const gr_redis_config *cfg, gr_redis **ret_r)
{
    gr_redis *r = calloc(1, sizeof(*r));
    const char *table = cfg->table ? cfg->table : GR_REDIS_TABLE_DEFAULT;
    int e;

    if (!r) {
        return -ENOMEM;
    }
    r->lfd = -1;
    if (gr_shash_key_init(r->skey) < 0) {
        free(r);
        return -ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->durmu, NULL);
    pthread_cond_init(&r->durcv, NULL);
    for (int i = 0; i < GR_REDIS_KLOCKS; i++) {
        pthread_mutex_init(&r->klocks[i], NULL);
    }
    {
        pthread_rwlockattr_t ra;

        pthread_rwlockattr_init(&ra);
        /* EXEC must not starve behind a steady stream of commands */
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&r->xlock, &ra);
        pthread_rwlockattr_destroy(&ra);
    }
    r->port = cfg->port;
    r->disk = cfg->data_dir != NULL;
    r->next_cursor = 1;
    atomic_init(&r->next_id, 1);
    if (!(r->host = strdup(cfg->host)) || !(r->table = strdup(table))) {
        gr_redis_free(r);
        return -ENOMEM;
    }
    if (strlen(table) > GR_TABLE_NAME_MAX - 8 ||
        strspn(table, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789_.-") != strlen(table) ||
        table[0] == '.' || table[0] == '\0') {
        gr_error(LOG,
                 "bad redis table name '%s': 1..%d bytes of [A-Za-z0-9_.-], not starting "
                 "with '.'",
                 table, GR_TABLE_NAME_MAX - 8);
        gr_redis_free(r);
        return GR_ECONFIG;
    }
    if (cfg->password_file && (e = read_password(r, cfg->password_file)) < 0) {
        gr_redis_free(r);
        return e;
    }
    if (!r->password && !is_loopback(r->host)) {
        gr_error(LOG,
                 "protected mode: refusing to listen for redis clients on %s, a non-loopback "
                 "address, without a password; set redis_password_file (--redis-password-file) "
                 "or listen on 127.0.0.1",
                 r->host);
        gr_redis_free(r);
        return GR_ECONFIG;
    }
    if ((e = listen_on(r)) < 0) {
        gr_redis_free(r);
        return e;
    }
    *ret_r = r;
    return 0;
}

uint16_t gr_redis_port(const gr_redis *r)
{
    return r->port;
}

gr_redis *gr_redis_free(gr_redis *r)
{
    if (!r) {
        return NULL;
    }
    if (r->lfd >= 0) {
        close(r->lfd);
    }
    for (int i = 0; i < GR_REDIS_DBS; i++) {
        gr_table_close(r->dbs[i]);
        gr_table_close(r->ldbs[i]);
    }
    pthread_mutex_lock(&r->durmu); /* completions of durable writes still running */
    while (r->durwaits > 0) {
        pthread_cond_wait(&r->durcv, &r->durmu);
    }
    pthread_mutex_unlock(&r->durmu);
    for (int i = 0; i < GR_REDIS_CURSORS; i++) {
        free(r->cursors[i].p);
    }
    if (r->password) {
        explicit_bzero(r->password, r->password_len);
        free(r->password);
    }
    free(r->host);
    free(r->table);
    pthread_cond_destroy(&r->durcv);
    pthread_mutex_destroy(&r->durmu);
    pthread_mutex_destroy(&r->mu);
    for (int i = 0; i < GR_REDIS_KLOCKS; i++) {
        pthread_mutex_destroy(&r->klocks[i]);
    }
    pthread_rwlock_destroy(&r->xlock);
    free(r);
    return NULL;
}

/* ---- tables and cursors ------------------------------------------------------------------ */

/* Open (create) db n's table (list: its list table) into *slot. Caller holds
 * srv->mu. */
static gr_table *db_open_locked(gr_redis *srv, int n, bool list, gr_table **slot)
{
    char name[GR_TABLE_NAME_MAX + 1];
    gr_table *t;
    int r;

    if ((t = *slot)) {
        return t;
    }
    if (n == 0) {
        snprintf(name, sizeof(name), "%s%s", srv->table, list ? ".list" : "");
    } else {
        snprintf(name, sizeof(name), "%s.%d%s", srv->table, n, list ? ".list" : "");
    }
    r = gr_tables_open(srv->tables, name, &t);
    if (r == GR_ENOTABLE) {
        gr_table_opts o = {
            .kind = GR_TABLE_SET, .replicated = true, .max_value = GR_RESP_MAX_BULK_DEFAULT + 4096};

        if (srv->disk) {
            o.durability = GR_TABLE_DISK;
            o.fsync = GR_FSYNC_INTERVAL;
        }
        r = gr_tables_create(srv->tables, name, &o);
        if (r == 0) {
            gr_info(LOG, "created table %s (replicated%s) for redis db %d%s", name,
                    srv->disk ? ", disk, fsync interval" : ", memory", n,
                    list ? "'s list elements" : "");
        }
        if (r == 0 || r == GR_ETABLEEXISTS) {
            r = gr_tables_open(srv->tables, name, &t);
        }
    }
    if (r < 0) {
        gr_warn(LOG, "cannot open table %s for redis db %d: %s", name, n, gr_strerror(r));
        t = NULL;
    }
    *slot = t;
    return t;
}

gr_table *gr_redis_db_open(gr_redis *srv, int n)
{
    gr_table *t;

    pthread_mutex_lock(&srv->mu);
    t = db_open_locked(srv, n, false, &srv->dbs[n]);
    pthread_mutex_unlock(&srv->mu);
    return t;
}

gr_table *gr_redis_ldb_open(gr_redis *srv, int n)
{
    gr_table *t;

    pthread_mutex_lock(&srv->mu);
    t = db_open_locked(srv, n, true, &srv->ldbs[n]);
    pthread_mutex_unlock(&srv->mu);
    return t;
}

gr_table *gr_redis_ldb(rconn *c)
{
    gr_table *t = c->lt ? c->lt : (c->lt = gr_redis_ldb_open(c->srv, c->db));

    if (!t) {
        gr_resp_error(&c->out, "ERR cannot open the list table of this database (see the "
                               "node's log)");
    }
    return t;
}

pthread_mutex_t *gr_redis_klock(gr_redis *srv, int db, const void *key, size_t n)
{
    const uint8_t *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)db ^ ((uint64_t)n << 32), w;
    size_t i = 0;

    /* eight bytes a step (every SET takes its key's stripe) */
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    if (i < n) {
        memcpy(&w, p + i, n - i);
    }
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return &srv->klocks[h % GR_REDIS_KLOCKS];
}

gr_table *gr_redis_db(rconn *c)
{
    if (!c->t && !(c->t = gr_redis_db_open(c->srv, c->db))) {
        gr_resp_error(&c->out, "ERR cannot open the table of this database (see the node's log)");
    }
    return c->t;
}

uint64_t gr_redis_cursor_put(gr_redis *srv, const uint8_t *p, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    uint64_t id;
    rcursor *slot;

    if (!copy) {
        return 0;
    }
    memcpy(copy, p, len);
    pthread_mutex_lock(&srv->mu);
    id = srv->next_cursor++;
    slot = &srv->cursors[id % GR_REDIS_CURSORS];
    free(slot->p);
    *slot = (rcursor){id, copy, len};
    pthread_mutex_unlock(&srv->mu);
    return id;
}

int gr_redis_cursor_get(gr_redis *srv, uint64_t id, gr_tbuf *out)
{
    rcursor *slot;
    int found = 0;

    pthread_mutex_lock(&srv->mu);
    slot = &srv->cursors[id % GR_REDIS_CURSORS];
    if (slot->id == id && slot->p) {
        if (out->cap < slot->len) {
            uint8_t *np = realloc(out->p, slot->len);

            if (np) {
                out->p = np;
                out->cap = slot->len;
            }
        }
        if (out->cap >= slot->len) {
            memcpy(out->p, slot->p, slot->len);
            out->len = slot->len;
            found = 1;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return found;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void pump(rconn *c);
static void flush_out(rconn *c);
/* ---- blocking pops ---------------------------------------------------------------------- */

static void arm_block_timer(rconn *c)
{
    uint64_t ms = GR_REDIS_BLOCK_POLL_MS, now = gr_clock_ms();
    struct timeval tv;

    if (c->blk_deadline_ms && c->blk_deadline_ms > now && c->blk_deadline_ms - now < ms) {
        ms = c->blk_deadline_ms - now;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
    event_add(c->blk_ev, &tv);
}

static void blockedq_remove(rconn *c)
{
    if (!c->in_blockedq) {
        return;
    }
    pthread_mutex_lock(&c->srv->mu);
    if (c->bprev) {
        c->bprev->bnext = c->bnext;
    } else {
        c->srv->blockedq = c->bnext;
    }
    if (c->bnext) {
        c->bnext->bprev = c->bprev;
    }
    c->bnext = c->bprev = NULL;
    c->in_blockedq = false;
    atomic_fetch_sub(&c->srv->nblocked, 1);
    pthread_mutex_unlock(&c->srv->mu);
}

void gr_redis_wake_blocked(gr_redis *srv)
{
    girder_pid pids_s[64];
    girder_pid *pids = pids_s;
    size_t n = 0, cap = 64;

    if (atomic_load(&srv->nblocked) == 0) {
        return;
    }
    pthread_mutex_lock(&srv->mu);
    for (rconn *b = srv->blockedq; b; b = b->bnext) {
        if (n == cap) {
            girder_pid *np = malloc(2 * cap * sizeof(*np));

            if (!np) {
                break; /* the others see it at their next re-check */
            }
            memcpy(np, pids, n * sizeof(*np));
            if (pids != pids_s) {
                free(pids);
            }
            pids = np;
            cap *= 2;
        }
        pids[n++] = b->self;
    }
    pthread_mutex_unlock(&srv->mu);
    for (size_t i = 0; i < n; i++) {
        girder_msg *m = girder_msg_atom(WAKE_ATOM);

        if (m && gr_rt_send(srv->rt, pids[i], m) < 0) {
            girder_msg_unref(m);
        }
    }
    if (pids != pids_s) {
        free(pids);
    }
}

int gr_redis_block(rconn *c, bool left, uint64_t deadline_ms, int n, const char *const *keys,
                   const size_t *lens)
{
    c->blk_keys.len = 0;
    for (int i = 0; i < n; i++) {
        uint32_t l = (uint32_t)lens[i];

        if (gr_tbuf_put(&c->blk_keys, &l, 4) < 0 ||
            gr_tbuf_put(&c->blk_keys, keys[i], lens[i]) < 0) {
            return -ENOMEM;
        }
    }
    c->blocked = true;
    c->blk_left = left;
    c->blk_deadline_ms = deadline_ms;
    pthread_mutex_lock(&c->srv->mu);
    c->bnext = c->srv->blockedq;
    if (c->bnext) {
        c->bnext->bprev = c;
    }
    c->bprev = NULL;
    c->srv->blockedq = c;
    c->in_blockedq = true;
    atomic_fetch_add(&c->srv->nblocked, 1);
    pthread_mutex_unlock(&c->srv->mu);
    arm_block_timer(c);
    return 0;
}

/* The re-check timer: pop if a key has an element now (pushed on this node
 * or replicated from another), or answer null at the deadline; then go on
 * with the input that waited. */
static void on_block_timer(evutil_socket_t fd, short what, void *arg)
{
    rconn *c = arg;
    size_t cap = c->blk_keys.len / 4 + 1;
    const char **keys;
    size_t *lens;
    int n = 0, r;

    (void)fd;
    (void)what;
    if (c->dead || !c->blocked) {
        return;
    }
    keys = malloc(cap * sizeof(*keys));
    lens = malloc(cap * sizeof(*lens));
    if (!keys || !lens) {
        free(keys);
        free(lens);
        arm_block_timer(c); /* try again later */
        return;
    }
    for (size_t off = 0; off < c->blk_keys.len; n++) {
        uint32_t l;

        memcpy(&l, c->blk_keys.p + off, 4);
        keys[n] = (const char *)c->blk_keys.p + off + 4;
        lens[n] = l;
        off += 4 + l;
    }
    pthread_rwlock_rdlock(&c->srv->xlock);
    r = gr_redis_bpop(c, c->blk_left, n, keys, lens);
    pthread_rwlock_unlock(&c->srv->xlock);
    free(keys);
    free(lens);
    if (r == 0 && c->blk_deadline_ms && gr_clock_ms() >= c->blk_deadline_ms) {
        gr_resp_null_array(&c->out);
        r = 1;
    }
    if (r == 0) {
        arm_block_timer(c);
        return;
    }
    c->blocked = false;
    c->blk_keys.len = 0;
    blockedq_remove(c);
    event_del(c->blk_ev);
    pump(c);
}

static void set_read(rconn *c, bool on)
{
    if (on != c->read_on && !c->dead) {
        if (on) {
            event_add(c->ev_read, NULL);
        } else {
            event_del(c->ev_read);
        }
        c->read_on = on;
    }
}

static void set_write(rconn *c, bool on)
{
    if (on != c->write_on && !c->dead) {
        if (on) {
            event_add(c->ev_write, NULL);
        } else {
            event_del(c->ev_write);
        }
        c->write_on = on;
    }
}

/* Release the socket now; notify: tell the process to stop (from callbacks). */
static void close_conn(rconn *c, bool notify)
{
    girder_msg *m;

    if (c->dead) {
        return;
    }
    set_read(c, false);
    set_write(c, false);
    c->dead = true;
    pthread_mutex_lock(&c->srv->mu);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        c->srv->clients = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->next = c->prev = NULL;
    close(c->fd); /* under mu: CLIENT LIST reads fd */
    c->fd = -1;
    pthread_mutex_unlock(&c->srv->mu);
    atomic_fetch_sub(&c->srv->nclients, 1);
    if (notify && (m = girder_msg_atom(CLOSE_ATOM)) && gr_rt_send(c->srv->rt, c->self, m) < 0) {
        girder_msg_unref(m);
    }
}

static int cmd_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const rcommand *)elem)->name);
}

static const rcommand *find_cmd(const char *name, size_t len)
{
    char lower[32];

    if (len == 0 || len >= sizeof(lower)) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        lower[i] = (char)tolower((unsigned char)name[i]);
    }
    lower[len] = '\0';
    return bsearch(lower, gr_redis_cmds, gr_redis_ncmds, sizeof(rcommand), cmd_cmp);
}

/* "ERR unknown command 'x', with args beginning with: 'a' 'b' " as Redis 7. */
static void unknown_cmd(rconn *c, const rargs *a)
{
    char msg[1024];
    size_t at;

    at =
        (size_t)snprintf(msg, sizeof(msg), "ERR unknown command '%.*s', with args beginning with: ",
                         (int)(a->argl[0] > 128 ? 128 : a->argl[0]), a->argv[0]);
    for (int i = 1; i < a->argc && at < sizeof(msg) - 1; i++) {
        at += (size_t)snprintf(msg + at, sizeof(msg) - at, "'%.*s' ",
                               (int)(a->argl[i] > 128 ? 128 : a->argl[i]), a->argv[i]);
    }
    gr_resp_error(&c->out, msg);
}

static bool multi_ctl(rcmd_fn fn)
{
    return fn == gr_redis_cmd_exec || fn == gr_redis_cmd_discard || fn == gr_redis_cmd_multi ||
           fn == gr_redis_cmd_watch || fn == gr_redis_cmd_quit;
}

/* Queue a command for EXEC. */
static void queue_cmd(rconn *c, const rargs *a)
{
    uint32_t n = (uint32_t)a->argc;
    size_t at = c->mq.len;
    int r = gr_tbuf_put(&c->mq, &n, 4);

    for (int i = 0; r == 0 && i < a->argc; i++) {
        uint32_t l = (uint32_t)a->argl[i];

        if ((r = gr_tbuf_put(&c->mq, &l, 4)) == 0) {
            r = gr_tbuf_put(&c->mq, a->argv[i], a->argl[i]);
        }
    }
    if (r < 0 || c->mq.len > GR_REDIS_OUT_HARD) {
        c->mq.len = at;
        c->multi_err = true;
        gr_resp_error(&c->out, "ERR the transaction is too large");
        return;
    }
    c->mq_n++;
    gr_resp_simple(&c->out, "QUEUED");
}

/* find_cmd, remembering the connection's last command: a client mostly
 * repeats one (the bsearch's strcmps were 3% of a GET). */
static const rcommand *find_cmd_cached(rconn *c, const char *name, size_t len)
{
    const rcommand *k = c->last_cmd;

    if (k && strlen(k->name) == len && strncasecmp(name, k->name, len) == 0) {
        return k;
    }
    if ((k = find_cmd(name, len))) {
        c->last_cmd = k;
    }
    return k;
}

/* Look up and run (or queue) one command. */
static void run_cmd(rconn *c, const rargs *a)
{
    const rcommand *cmd = find_cmd_cached(c, a->argv[0], a->argl[0]);

    atomic_fetch_add_explicit(&c->srv->cmds_total, 1, memory_order_relaxed);
    if (!cmd) {
        unknown_cmd(c, a);
        c->multi_err |= c->in_multi;
    } else if (c->srv->password && !c->authed && cmd->fn != gr_redis_cmd_auth &&
               cmd->fn != gr_redis_cmd_hello && cmd->fn != gr_redis_cmd_quit) {
        gr_resp_error(&c->out, "NOAUTH Authentication required.");
    } else if ((cmd->arity > 0 && a->argc != cmd->arity) ||
               (cmd->arity < 0 && a->argc < -cmd->arity)) {
        gr_resp_errorf(&c->out, "ERR wrong number of arguments for '%s' command", cmd->name);
        c->multi_err |= c->in_multi;
    } else if (c->nsubs && c->out.proto < 3 && cmd->fn != gr_redis_cmd_subscribe &&
               cmd->fn != gr_redis_cmd_unsubscribe && cmd->fn != gr_redis_cmd_psubscribe &&
               cmd->fn != gr_redis_cmd_punsubscribe && cmd->fn != gr_redis_cmd_ping &&
               cmd->fn != gr_redis_cmd_quit) {
        gr_resp_errorf(&c->out,
                       "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                       "QUIT / RESET are allowed in this context",
                       cmd->name);
    } else if (c->in_multi && !multi_ctl(cmd->fn)) {
        queue_cmd(c, a);
    } else if (c->in_exec || cmd->fn == gr_redis_cmd_exec) {
        cmd->fn(c, a); /* EXEC holds xlock exclusive itself */
    } else {
        pthread_rwlock_rdlock(&c->srv->xlock);
        cmd->fn(c, a);
        pthread_rwlock_unlock(&c->srv->xlock);
    }
}

static void exec_cmd(rconn *c, uint8_t *base)
{
    const char *argv_s[64];
    size_t argl_s[64];
    const char **argv = argv_s;
    size_t *argl = argl_s;
    uint32_t n = c->parser.nargs;
    rargs a;

    if (n > 64) {
        argv = malloc(n * sizeof(*argv));
        argl = malloc(n * sizeof(*argl));
        if (!argv || !argl) {
            free(argv);
            free(argl);
            gr_resp_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        argv[i] = (const char *)base + c->parser.args[i].off;
        argl[i] = c->parser.args[i].len;
    }
    a = (rargs){(int)n, argv, argl};
    run_cmd(c, &a);
    if (argv != argv_s) {
        free(argv);
        free(argl);
    }
}

/* Forget the WATCHed keys, giving a big list's memory back. */
static void watch_reset(rconn *c)
{
    c->watch.len = 0;
    if (c->watch.cap > (64u << 10)) {
        gr_tbuf_free(&c->watch);
    }
}

/* Whether (db, key) is WATCHed already (a linear search, as Redis's). */
/* The WATCH record at off of c->watch, (u32 db, u64 version, u32 len, key
 * bytes): its fields, and the offset of the next record. */
static size_t watch_rec(const rconn *c, size_t off, uint32_t *ret_db, uint64_t *ret_ver,
                        uint32_t *ret_len, const uint8_t **ret_key)
{
    memcpy(ret_db, c->watch.p + off, 4);
    memcpy(ret_ver, c->watch.p + off + 4, 8);
    memcpy(ret_len, c->watch.p + off + 12, 4);
    *ret_key = c->watch.p + off + 16;
    return off + 16 + *ret_len;
}

static bool watched(const rconn *c, uint32_t db, const char *key, uint32_t l)
{
    for (size_t off = 0; off < c->watch.len;) {
        uint32_t wdb, wl;
        uint64_t ver;
        const uint8_t *wkey;

        off = watch_rec(c, off, &wdb, &ver, &wl, &wkey);
        if (wdb == db && wl == l && memcmp(wkey, key, l) == 0) {
            return true;
        }
    }
    return false;
}

static void multi_reset(rconn *c)
{
    c->in_multi = false;
    c->multi_err = false;
    c->mq.len = 0;
    c->mq_n = 0;
    watch_reset(c);
}

void gr_redis_cmd_multi(rconn *c, const rargs *a)
{
    if (c->in_multi) {
        gr_resp_error(&c->out, "ERR MULTI calls can not be nested");
        return;
    }
    c->in_multi = true;
    gr_resp_simple(&c->out, "OK");
}

void gr_redis_cmd_discard(rconn *c, const rargs *a)
{
    if (!c->in_multi) {
        gr_resp_error(&c->out, "ERR DISCARD without MULTI");
        return;
    }
    multi_reset(c);
    gr_resp_simple(&c->out, "OK");
}

void gr_redis_cmd_watch(rconn *c, const rargs *a)
{
    if (c->in_multi) {
        gr_resp_error(&c->out, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    for (int i = 1; i < a->argc; i++) {
        gr_table *t = gr_redis_db(c);
        gr_tmeta meta = {0};
        uint32_t db = (uint32_t)c->db, l = (uint32_t)a->argl[i];
        int r;

        if (!t) {
            return;
        }
        if (watched(c, db, a->argv[i], l)) {
            continue; /* the first WATCH's version stands, as Redis keeps its first */
        }
        if (gr_redis_key(&c->k, a->argv[i], a->argl[i]) < 0) {
            gr_resp_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        if ((r = gr_table_get(t, c->k.p, c->k.len, &c->v, &meta)) < 0 && r != GR_EWRONGTYPE) {
            meta.version = 0; /* absent (a hash or set answers WRONGTYPE with its version) */
        }
        if (gr_tbuf_put(&c->watch, &db, 4) < 0 || gr_tbuf_put(&c->watch, &meta.version, 8) < 0 ||
            gr_tbuf_put(&c->watch, &l, 4) < 0 ||
            gr_tbuf_put(&c->watch, a->argv[i], a->argl[i]) < 0) {
            gr_resp_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
    }
    gr_resp_simple(&c->out, "OK");
}

void gr_redis_cmd_unwatch(rconn *c, const rargs *a)
{
    watch_reset(c);
    gr_resp_simple(&c->out, "OK");
}

/* Has a WATCHed key changed (its version) since WATCH? */
static bool watch_dirty(rconn *c)
{
    for (size_t off = 0; off < c->watch.len;) {
        uint32_t db, l;
        uint64_t ver;
        const uint8_t *key;
        gr_tmeta meta = {0};
        gr_table *t;
        int r;

        off = watch_rec(c, off, &db, &ver, &l, &key);
        t = gr_redis_db_open(c->srv, (int)db);
        if (!t || gr_redis_key(&c->k, key, l) < 0) {
            return true;
        }
        if ((r = gr_table_get(t, c->k.p, c->k.len, &c->v, &meta)) < 0 && r != GR_EWRONGTYPE) {
            meta.version = 0;
        }
        if (meta.version != ver) {
            return true;
        }
    }
    return false;
}

void gr_redis_cmd_exec(rconn *c, const rargs *a)
{
    gr_tbuf q;
    uint32_t n;

    if (!c->in_multi) {
        gr_resp_error(&c->out, "ERR EXEC without MULTI");
        return;
    }
    if (c->multi_err) {
        multi_reset(c);
        gr_resp_error(&c->out, "EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    /* from the WATCH check to the last command, no other client's command
     * runs on this node (docs/redis.md "Transactions") */
    pthread_rwlock_wrlock(&c->srv->xlock);
    if (watch_dirty(c)) {
        pthread_rwlock_unlock(&c->srv->xlock);
        multi_reset(c);
        gr_resp_null_array(&c->out);
        return;
    }
    /* take the queue: the commands may not see it */
    q = c->mq;
    n = c->mq_n;
    c->mq = (gr_tbuf){0};
    multi_reset(c);
    gr_resp_array(&c->out, n);
    c->in_exec = true;
    for (size_t off = 0; off < q.len;) {
        uint32_t argc, l;
        const char **argv;
        size_t *argl;

        memcpy(&argc, q.p + off, 4);
        off += 4;
        argv = malloc(argc * sizeof(*argv));
        argl = malloc(argc * sizeof(*argl));
        if (!argv || !argl) {
            free(argv);
            free(argl);
            gr_resp_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
            break;
        }
        for (uint32_t i = 0; i < argc; i++) {
            memcpy(&l, q.p + off, 4);
            argv[i] = (const char *)q.p + off + 4;
            argl[i] = l;
            off += 4 + l;
        }
        run_cmd(c, &(rargs){(int)argc, argv, argl});
        free(argv);
        free(argl);
    }
    c->in_exec = false;
    pthread_rwlock_unlock(&c->srv->xlock);
    gr_tbuf_free(&q);
}

/* Parse and execute what is buffered, until the input is used up, the output
 * is above the soft bound, or the client is closing. */
static void process(rconn *c)
{
    while (!c->paused && !c->closing && !c->dead && !c->blocked && !c->durwait &&
           c->in_off < c->in_len) {
        uint8_t *base = c->in + c->in_off;
        const char *err = NULL;
        size_t used = 0;
        int r = gr_resp_parse(&c->parser, base, c->in_len - c->in_off, &used, &err);

        if (r < 0) {
            gr_resp_errorf(&c->out, "ERR %s", err);
            atomic_fetch_add(&c->srv->proto_errors, 1);
            gr_debug(LOG, "client %llu (%s): %s; closing", (unsigned long long)c->id, c->addr, err);
            c->closing = true;
            break;
        }
        c->in_off += used;
        if (r == 0) {
            if (used == 0) {
                break;
            }
            continue;
        }
        exec_cmd(c, base);
        c->parser.unauth = c->srv->password && !c->authed;
        if (c->out.oom || gr_resp_out_pending(&c->out) > GR_REDIS_OUT_HARD) {
            atomic_fetch_add(&c->srv->out_limit, 1);
            gr_warn(LOG,
                    "client %llu (%s): output buffer above %u bytes (client-output-buffer-limit); "
                    "closing it",
                    (unsigned long long)c->id, c->addr, GR_REDIS_OUT_HARD);
            close_conn(c, true);
            return;
        }
        if (gr_resp_out_pending(&c->out) > GR_REDIS_OUT_SOFT) {
            c->paused = true;
        }
    }
    if (c->in_off == c->in_len && !c->parser.in_multibulk) {
        c->in_off = c->in_len = 0;
    }
}

/* A connection's wait for its durable writes: what the completion needs,
 * allocated up front so that it cannot fail on the flusher's thread. Owned by
 * the completion, which frees it. */
typedef struct rdur {
    gr_redis *srv;
    girder_pid pid;
    uint64_t id;         /* the client, for the log */
    girder_msg *ok, *no; /* DUR_ATOM, DURFAIL_ATOM: one is sent */
} rdur;

/* gr_tdefer_fn: any thread (a log's flusher, or the connection's own). */
static void on_durable(void *arg, int err)
{
    rdur *d = arg;
    gr_redis *srv = d->srv;
    girder_msg *m = err < 0 ? d->no : d->ok;

    if (err < 0) {
        gr_error(LOG, "client %llu: a durable write failed: %s; closing the client",
                 (unsigned long long)d->id, gr_strerror(err));
    }
    girder_msg_unref(err < 0 ? d->ok : d->no);
    if (gr_rt_send(srv->rt, d->pid, m) < 0) {
        girder_msg_unref(m); /* the connection is gone */
    }
    free(d);
    pthread_mutex_lock(&srv->durmu);
    if (--srv->durwaits == 0) {
        pthread_cond_broadcast(&srv->durcv);
    }
    pthread_mutex_unlock(&srv->durmu);
}

/* Hold the replies until c->dur's records are on disk: stop parsing and
 * reading, register the completion. Out of memory: close (the held replies
 * are never sent, so nothing unwritten is acknowledged). */
static void dur_wait(rconn *c)
{
    rdur *d = calloc(1, sizeof(*d));

    if (!d || !(d->ok = girder_msg_atom(DUR_ATOM)) || !(d->no = girder_msg_atom(DURFAIL_ATOM))) {
        if (d) {
            girder_msg_unref(d->ok);
            free(d);
        }
        gr_error(LOG, "client %llu (%s): out of memory waiting for a durable write; closing it",
                 (unsigned long long)c->id, c->addr);
        gr_tdefer_free(&c->dur);
        close_conn(c, true);
        return;
    }
    d->srv = c->srv;
    d->pid = c->self;
    d->id = c->id;
    c->durwait = true;
    set_read(c, false);
    set_write(c, false);
    pthread_mutex_lock(&c->srv->durmu);
    c->srv->durwaits++;
    pthread_mutex_unlock(&c->srv->durmu);
    gr_tdefer_notify(&c->dur, on_durable, d); /* may run on_durable now: a message */
}

/* The held writes are on disk (ok) or not: send the replies and resume, or
 * replace them with an error and close (docs/redis.md "Durable writes"). */
static void dur_done(rconn *c, bool ok)
{
    c->durwait = false;
    if (!ok) {
        atomic_fetch_add(&c->srv->durfails, 1);
        if (c->out.off > 0) { /* a reply is half sent: nothing can follow it */
            close_conn(c, true);
            return;
        }
        c->out.len = 0;
        gr_resp_error(&c->out, "ERR durable write failed (the node's disk); closing the "
                               "connection");
        c->closing = true;
    }
    pump(c);
}

/* Write what is pending, unless it waits for durable writes: replies are held
 * while any of this pass's writes is not yet on disk. */
static void flush_out(rconn *c)
{
    gr_resp_out *o = &c->out;

    if (c->dead || c->durwait) {
        return;
    }
    if (gr_tdefer_pending(&c->dur)) {
        dur_wait(c);
        return;
    }
    while (!c->dead && gr_resp_out_pending(o)) {
        ssize_t n = write(c->fd, o->p + o->off, gr_resp_out_pending(o));

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            close_conn(c, true);
            return;
        }
        o->off += (size_t)n;
        atomic_fetch_add_explicit(&c->srv->net_out, (uint64_t)n, memory_order_relaxed);
    }
    if (c->dead) {
        return;
    }
    if (!gr_resp_out_pending(o)) {
        o->off = o->len = 0;
        if (o->cap > GR_REDIS_OUT_SOFT) { /* give a big reply's memory back */
            gr_resp_out_free(o);
        }
    } else if (o->off > (64u << 10) && o->off > o->len / 2) {
        gr_resp_out_compact(o);
    }
    set_write(c, gr_resp_out_pending(o) > 0);
}

static void pump(rconn *c)
{
    for (;;) {
        process(c);
        flush_out(c);
        if (c->dead) {
            return;
        }
        if (c->paused && gr_resp_out_pending(&c->out) <= GR_REDIS_OUT_SOFT / 2) {
            c->paused = false;
            continue;
        }
        break;
    }
    if (c->closing && !c->durwait && !gr_resp_out_pending(&c->out)) {
        close_conn(c, true);
        return;
    }
    /* a blocked client is still read (to see it close), up to a bound; one
     * waiting for its durable writes is not (its replies are held) */
    set_read(c, !c->paused && !c->closing && !c->durwait &&
                    !(c->blocked && c->in_len - c->in_off > GR_REDIS_BLOCK_IN_MAX));
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    rconn *c = arg;
    ssize_t n;

    if (c->dead) {
        return;
    }
    /* Drop what was executed. A partial command at in_off moves too (the
     * parser's offsets are relative to its first byte, resp.h): keeping it in
     * place made a pipelining client's buffer grow by doubling for as long as
     * each read ended inside a command (most do), 16 MiB for 10 MB of SETs. */
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_cap - c->in_len < GR_REDIS_READ_CHUNK) {
        size_t nc = c->in_cap ? c->in_cap * 2 : GR_REDIS_READ_CHUNK * 2;
        uint8_t *np;

        while (nc - c->in_len < GR_REDIS_READ_CHUNK) {
            nc *= 2;
        }
        if (!(np = realloc(c->in, nc))) {
            close_conn(c, true);
            return;
        }
        c->in = np;
        c->in_cap = nc;
    }
    n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        close_conn(c, true);
        return;
    }
    c->in_len += (size_t)n;
    atomic_fetch_add_explicit(&c->srv->net_in, (uint64_t)n, memory_order_relaxed);
    pump(c);
    /* a huge idle input buffer (after a big bulk) goes back */
    if (!c->dead && c->in_len == 0 && c->in_cap > 4 * GR_REDIS_READ_CHUNK) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    rconn *c = arg;

    if (!c->dead) {
        pump(c);
    }
}

static gr_redis *srv_of(girder_ctx *ctx, size_t off)
{
    return (gr_redis *)((char *)gr_rt_ctx_behaviour(ctx) - off);
}

static void fmt_addr(int fd, bool local, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if ((local ? getsockname(fd, (struct sockaddr *)&ss, &sl)
               : getpeername(fd, (struct sockaddr *)&ss, &sl)) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
            port = ntohs(s->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
            port = ntohs(s->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%u", host, port);
}

/* Connection process: arg [fd]. Owns the socket from here (closes it on a
 * failed init too). */
static int conn_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_redis *srv = srv_of(ctx, offsetof(gr_redis, conn_b));
    msgpack_unpacked up;
    struct event_base *base;
    rconn *c;
    int fd = -1, one = 1;

    msgpack_unpacked_init(&up);
    if (arg && girder_msg_unpack(arg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
        up.data.via.array.size == 1 &&
        up.data.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fd = (int)up.data.via.array.ptr[0].via.u64;
    }
    msgpack_unpacked_destroy(&up);
    if (fd < 0) {
        return GR_EBADARG;
    }
    base = gr_rt_sched_base(srv->rt, (unsigned)(girder_self(ctx).id & 0xff));
    if (!(c = calloc(1, sizeof(*c)))) {
        close(fd);
        atomic_fetch_sub(&srv->nclients, 1);
        return -ENOMEM;
    }
    c->srv = srv;
    c->self = girder_self(ctx);
    c->fd = fd;
    c->out.proto = 2;
    c->out.limit = GR_REDIS_OUT_HARD; /* one reply cannot grow past it (a huge SRANDMEMBER) */
    c->id = atomic_fetch_add(&srv->next_id, 1);
    c->created_ms = gr_clock_ms();
    c->parser.unauth = srv->password != NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fmt_addr(fd, false, c->addr, sizeof(c->addr));
    fmt_addr(fd, true, c->laddr, sizeof(c->laddr));
    if (!(c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c)) ||
        !(c->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c)) ||
        !(c->blk_ev = event_new(base, -1, 0, on_block_timer, c))) {
        if (c->ev_read) {
            event_free(c->ev_read);
        }
        if (c->ev_write) {
            event_free(c->ev_write);
        }
        close(fd);
        free(c);
        atomic_fetch_sub(&srv->nclients, 1);
        return -ENOMEM;
    }
    pthread_mutex_lock(&srv->mu);
    c->next = srv->clients;
    if (c->next) {
        c->next->prev = c;
    }
    srv->clients = c;
    pthread_mutex_unlock(&srv->mu);
    set_read(c, true);
    *ret_state = c;
    return 0;
}

static int conn_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    rconn *c = state;

    if (c->dead && girder_msg_is_atom(msg, CLOSE_ATOM)) {
        return GIRDER_STOP;
    }
    if (girder_msg_is_atom(msg, DUR_ATOM) || girder_msg_is_atom(msg, DURFAIL_ATOM)) {
        if (!c->dead && c->durwait) {
            dur_done(c, girder_msg_is_atom(msg, DUR_ATOM));
        }
        return GIRDER_CONTINUE;
    }
    if (girder_msg_is_atom(msg, WAKE_ATOM)) {
        if (!c->dead && c->blocked) {
            on_block_timer(-1, 0, c);
        }
        return GIRDER_CONTINUE;
    }
    if (!c->dead && c->nsubs) {
        gr_redis_deliver(c, msg);
        if (c->out.oom || gr_resp_out_pending(&c->out) > GR_REDIS_OUT_HARD) {
            atomic_fetch_add(&c->srv->out_limit, 1);
            gr_warn(LOG, "subscriber %llu (%s): output buffer above %u bytes; closing it",
                    (unsigned long long)c->id, c->addr, GR_REDIS_OUT_HARD);
            close_conn(c, false);
            return GIRDER_STOP;
        }
        flush_out(c);
    }
    return GIRDER_CONTINUE;
}

static void conn_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    rconn *c = state;

    close_conn(c, false);
    blockedq_remove(c);
    gr_tdefer_free(&c->dur); /* tickets of a pass cut short; a wait already
                              * registered owns none and finds the pid gone */
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->blk_ev);
    gr_tbuf_free(&c->blk_keys);
    gr_resp_parser_free(&c->parser);
    gr_resp_out_free(&c->out);
    gr_tbuf_free(&c->v);
    gr_tbuf_free(&c->v2);
    gr_tbuf_free(&c->k2);
    gr_tbuf_free(&c->kb);
    gr_tbuf_free(&c->k);
    gr_tbuf_free(&c->mq);
    gr_tbuf_free(&c->watch);
    free(c->subs);
    free(c->sidx);
    free(c->in);
    free(c);
}

static size_t conn_size(const void *state)
{
    const rconn *c = state;

    return sizeof(*c) + c->in_cap + c->out.cap + c->v.cap + c->v2.cap + c->k.cap;
}

/* ---- the listener ----------------------------------------------------------------------- */

typedef struct listener {
    gr_redis *srv;
    struct event *ev;
} listener;

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    listener *l = arg;
    gr_redis *srv = l->srv;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        uint8_t buf[16];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        girder_msg *m;
        girder_pid pid;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                gr_warn(LOG, "accept: %s", strerror(errno));
            }
            return;
        }
        atomic_fetch_add(&srv->conns_total, 1);
        if (atomic_fetch_add(&srv->nclients, 1) >= GR_REDIS_MAX_CLIENTS) {
            static const char msg[] = "-ERR max number of clients reached\r\n";

            atomic_fetch_sub(&srv->nclients, 1);
            atomic_fetch_add(&srv->rejected, 1);
            (void)!write(fd, msg, sizeof(msg) - 1);
            close(fd);
            continue;
        }
        (void)buf;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, (uint64_t)fd);
        m = girder_msg_new(sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        if (!m || gr_rt_spawn(srv->rt, &srv->conn_b, m, &pid) < 0) {
            atomic_fetch_sub(&srv->nclients, 1);
            close(fd);
        }
        girder_msg_unref(m);
    }
}

static int listener_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_redis *srv = srv_of(ctx, offsetof(gr_redis, listener_b));
    struct event_base *base = gr_rt_sched_base(srv->rt, (unsigned)(girder_self(ctx).id & 0xff));
    listener *l = calloc(1, sizeof(*l));

    if (!l) {
        return -ENOMEM;
    }
    l->srv = srv;
    if (!(l->ev = event_new(base, srv->lfd, EV_READ | EV_PERSIST, on_accept, l)) ||
        event_add(l->ev, NULL) < 0) {
        if (l->ev) {
            event_free(l->ev);
        }
        free(l);
        return -ENOMEM;
    }
    *ret_state = l;
    return 0;
}

static int listener_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

static void listener_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    listener *l = state;

    event_free(l->ev);
    free(l);
}

int gr_redis_start(gr_redis *r, girder_rt *rt, gr_tables *tables, struct gr_pubsub *pubsub,
                   uint64_t started_ms)
{
    girder_pid pid;
    int e;

    r->rt = rt;
    r->tables = tables;
    r->pubsub = pubsub;
    r->started_ms = started_ms;
    r->listener_b = (girder_behaviour){.name = "redis_listener",
                                       .init = listener_init,
                                       .handle = listener_handle,
                                       .terminate = listener_terminate};
    r->conn_b = (girder_behaviour){.name = "redis_conn",
                                   .init = conn_init,
                                   .handle = conn_handle,
                                   .terminate = conn_terminate,
                                   .state_size = conn_size};
    for (size_t i = 1; i < gr_redis_ncmds; i++) { /* find_cmd's bsearch needs it */
        assert(strcmp(gr_redis_cmds[i - 1].name, gr_redis_cmds[i].name) < 0);
    }
    if (!tables) {
        gr_error(LOG, "no table engine: the redis listener cannot start");
        return GR_ENOTABLE;
    }
    if ((e = girder_behaviour_register(rt, &r->listener_b)) < 0 ||
        (e = girder_behaviour_register(rt, &r->conn_b)) < 0 ||
        (e = gr_rt_spawn(rt, &r->listener_b, NULL, &pid)) < 0) {
        gr_error(LOG, "cannot start the redis listener: %s", gr_strerror(e));
        return e;
    }
    gr_info(LOG, "listening for redis clients on %s:%u (%s, db 0 = table %s)", r->host, r->port,
            r->password ? "password required" : "no password", r->table);
    return 0;
}

/* ---- server commands --------------------------------------------------------------------- */

static bool arg_is(const rargs *a, int i, const char *s)
{
    return i < a->argc && a->argl[i] == strlen(s) && strncasecmp(a->argv[i], s, a->argl[i]) == 0;
}

void gr_redis_cmd_ping(rconn *c, const rargs *a)
{
    if (c->nsubs && c->out.proto < 3 && a->argc <= 2) { /* subscribed: ["pong", arg] */
        gr_resp_array(&c->out, 2);
        gr_resp_bulkstr(&c->out, "pong");
        gr_resp_bulk(&c->out, a->argc == 2 ? a->argv[1] : "", a->argc == 2 ? a->argl[1] : 0);
        return;
    }
    if (a->argc > 2) {
        gr_resp_error(&c->out, "ERR wrong number of arguments for 'ping' command");
    } else if (a->argc == 2) {
        gr_resp_bulk(&c->out, a->argv[1], a->argl[1]);
    } else {
        gr_resp_simple(&c->out, "PONG");
    }
}

void gr_redis_cmd_echo(rconn *c, const rargs *a)
{
    gr_resp_bulk(&c->out, a->argv[1], a->argl[1]);
}

static bool check_password(rconn *c, const char *user, size_t ul, const char *pass, size_t pl)
{
    gr_redis *srv = c->srv;

    if (user && !(ul == 7 && memcmp(user, "default", 7) == 0)) {
        return false;
    }
    if (!srv->password) {
        return true;
    }
    if (pl != srv->password_len) {
        return false;
    }
    /* constant time over the password's length */
    unsigned char d = 0;
    for (size_t i = 0; i < pl; i++) {
        d |= (unsigned char)(pass[i] ^ srv->password[i]);
    }
    return d == 0;
}

void gr_redis_cmd_auth(rconn *c, const rargs *a)
{
    if (a->argc > 3) {
        gr_resp_error(&c->out, "ERR syntax error");
        return;
    }
    if (!c->srv->password && a->argc == 2) {
        gr_resp_error(&c->out, "ERR AUTH <password> called without any password configured for "
                               "the default user. Are you sure your configuration is correct?");
        return;
    }
    if (a->argc == 3 ? check_password(c, a->argv[1], a->argl[1], a->argv[2], a->argl[2])
                     : check_password(c, NULL, 0, a->argv[1], a->argl[1])) {
        c->authed = true;
        gr_resp_simple(&c->out, "OK");
    } else {
        gr_resp_error(&c->out, "WRONGPASS invalid username-password pair or user is disabled.");
    }
}

static bool valid_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '!' || s[i] > '~') {
            return false;
        }
    }
    return true;
}

static void set_name(rconn *c, const char *s, size_t n)
{
    if (n > GR_REDIS_NAME_MAX) {
        n = GR_REDIS_NAME_MAX;
    }
    pthread_mutex_lock(&c->srv->mu);
    memcpy(c->name, s, n);
    c->name[n] = '\0';
    pthread_mutex_unlock(&c->srv->mu);
}

void gr_redis_cmd_hello(rconn *c, const rargs *a)
{
    int64_t ver = c->out.proto;
    const char *name = NULL;
    size_t namel = 0;
    int i = 1;

    if (a->argc >= 2) {
        if (!gr_resp_str2ll(a->argv[1], a->argl[1], &ver)) {
            gr_resp_error(&c->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            gr_resp_error(&c->out, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    for (; i < a->argc; i++) {
        if (arg_is(a, i, "AUTH") && i + 2 < a->argc) {
            if (!check_password(c, a->argv[i + 1], a->argl[i + 1], a->argv[i + 2],
                                a->argl[i + 2])) {
                gr_resp_error(&c->out,
                              "WRONGPASS invalid username-password pair or user is disabled.");
                return;
            }
            c->authed = true;
            i += 2;
        } else if (arg_is(a, i, "SETNAME") && i + 1 < a->argc) {
            if (!valid_name(a->argv[i + 1], a->argl[i + 1])) {
                gr_resp_error(&c->out, "ERR Client names cannot contain spaces, newlines or "
                                       "special characters.");
                return;
            }
            name = a->argv[i + 1];
            namel = a->argl[i + 1];
            i++;
        } else {
            gr_resp_errorf(&c->out, "ERR Syntax error in HELLO option '%.*s'", (int)a->argl[i],
                           a->argv[i]);
            return;
        }
    }
    if (c->srv->password && !c->authed) {
        gr_resp_error(&c->out, "NOAUTH HELLO must be called with the client already "
                               "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
                               "option can be used to authenticate the client and select the "
                               "RESP protocol version at the same time");
        return;
    }
    if (name) {
        set_name(c, name, namel);
    }
    pthread_mutex_lock(&c->srv->mu); /* CLIENT LIST reads it */
    c->out.proto = (int)ver;
    pthread_mutex_unlock(&c->srv->mu);
    gr_resp_map(&c->out, 7);
    gr_resp_bulkstr(&c->out, "server");
    gr_resp_bulkstr(&c->out, "redis");
    gr_resp_bulkstr(&c->out, "version");
    gr_resp_bulkstr(&c->out, GR_REDIS_VERSION);
    gr_resp_bulkstr(&c->out, "proto");
    gr_resp_int(&c->out, ver);
    gr_resp_bulkstr(&c->out, "id");
    gr_resp_int(&c->out, (int64_t)c->id);
    gr_resp_bulkstr(&c->out, "mode");
    gr_resp_bulkstr(&c->out, "standalone");
    gr_resp_bulkstr(&c->out, "role");
    gr_resp_bulkstr(&c->out, "master");
    gr_resp_bulkstr(&c->out, "modules");
    gr_resp_array(&c->out, 0);
}

void gr_redis_cmd_select(rconn *c, const rargs *a)
{
    int64_t n;

    if (!gr_resp_str2ll(a->argv[1], a->argl[1], &n)) {
        gr_resp_error(&c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (n < 0 || n >= GR_REDIS_DBS) {
        gr_resp_error(&c->out, "ERR DB index is out of range");
        return;
    }
    pthread_mutex_lock(&c->srv->mu);
    c->db = (int)n;
    pthread_mutex_unlock(&c->srv->mu);
    c->t = NULL;
    c->lt = NULL;
    gr_resp_simple(&c->out, "OK");
}

void gr_redis_cmd_quit(rconn *c, const rargs *a)
{
    gr_resp_simple(&c->out, "OK");
    c->closing = true;
}

/* One CLIENT LIST line; caller holds srv->mu. */
static int client_line(const rconn *x, uint64_t now, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=0 flags=N db=%d sub=0 "
                    "psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 "
                    "omem=0 tot-mem=0 events=r cmd=NULL user=default redir=-1 resp=%d\n",
                    (unsigned long long)x->id, x->addr, x->laddr, x->fd, x->name,
                    (unsigned long long)((now - x->created_ms) / 1000), x->db, x->out.proto);
}

void gr_redis_cmd_client(rconn *c, const rargs *a)
{
    gr_redis *srv = c->srv;

    if (arg_is(a, 1, "ID") && a->argc == 2) {
        gr_resp_int(&c->out, (int64_t)c->id);
    } else if (arg_is(a, 1, "SETNAME") && a->argc == 3) {
        if (!valid_name(a->argv[2], a->argl[2])) {
            gr_resp_error(
                &c->out, "ERR Client names cannot contain spaces, newlines or special characters.");
            return;
        }
        set_name(c, a->argv[2], a->argl[2]);
        gr_resp_simple(&c->out, "OK");
    } else if (arg_is(a, 1, "GETNAME") && a->argc == 2) {
        if (c->name[0]) {
            gr_resp_bulkstr(&c->out, c->name);
        } else {
            gr_resp_null(&c->out);
        }
    } else if ((arg_is(a, 1, "LIST") || arg_is(a, 1, "INFO")) && a->argc == 2) {
        uint64_t now = gr_clock_ms();
        size_t cap = 4096, len = 0;
        char *text = malloc(cap);
        char line[1024];

        if (!text) {
            gr_resp_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        pthread_mutex_lock(&srv->mu);
        for (rconn *x = arg_is(a, 1, "INFO") ? c : srv->clients; x;
             x = arg_is(a, 1, "INFO") ? NULL : x->next) {
            int n = client_line(x, now, line, sizeof(line));
            char *np;

            if (n < 0) {
                continue;
            }
            if ((size_t)n >= sizeof(line)) {
                n = sizeof(line) - 1;
            }
            if (len + (size_t)n > cap) {
                cap = (cap + (size_t)n) * 2;
                if (!(np = realloc(text, cap))) {
                    break;
                }
                text = np;
            }
            memcpy(text + len, line, (size_t)n);
            len += (size_t)n;
        }
        pthread_mutex_unlock(&srv->mu);
        gr_resp_verbatim(&c->out, "txt", text, len);
        free(text);
    } else if (arg_is(a, 1, "SETINFO") && a->argc == 4) {
        gr_resp_simple(&c->out, "OK");
    } else if ((arg_is(a, 1, "NO-EVICT") || arg_is(a, 1, "NO-TOUCH")) && a->argc == 3) {
        gr_resp_simple(&c->out, "OK");
    } else {
        gr_resp_errorf(&c->out,
                       "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
                       "Try CLIENT HELP.",
                       a->argc > 1 ? (int)a->argl[1] : 0, a->argc > 1 ? a->argv[1] : "");
    }
}

/* ---- INFO ----------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if (s->p && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        size_t nc = (s->cap + (size_t)n + 1) * 2;
        char *np = realloc(s->p, nc);

        if (!np) {
            return;
        }
        s->p = np;
        s->cap = nc;
    }
}

static uint64_t rss_bytes(void)
{
    unsigned long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "re");

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) {
            res = 0;
        }
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static bool want_section(const rargs *a, const char *name, bool in_default)
{
    if (a->argc < 2) {
        return in_default;
    }
    for (int i = 1; i < a->argc; i++) {
        if (arg_is(a, i, name) || arg_is(a, i, "all") || arg_is(a, i, "everything") ||
            (in_default && arg_is(a, i, "default"))) {
            return true;
        }
    }
    return false;
}

void gr_redis_cmd_info(rconn *c, const rargs *a)
{
    gr_redis *srv = c->srv;
    uint64_t now = gr_clock_ms(), up = (now - srv->started_ms) / 1000;
    sbuf s = {0};

    if (want_section(a, "server", true)) {
        struct utsname un;

        uname(&un);
        sb_printf(&s,
                  "# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\nos:%s %s %s\r\n"
                  "arch_bits:%d\r\nprocess_id:%d\r\ntcp_port:%u\r\nuptime_in_seconds:%llu\r\n"
                  "uptime_in_days:%llu\r\nserver_name:girder\r\ngirder_version:%s\r\n"
                  "girder_node:%s\r\n\r\n",
                  GR_REDIS_VERSION, un.sysname, un.release, un.machine, (int)sizeof(void *) * 8,
                  (int)getpid(), srv->port, (unsigned long long)up,
                  (unsigned long long)(up / 86400), GIRDER_VERSION, gr_rt_node_name(srv->rt));
    }
    if (want_section(a, "clients", true)) {
        sb_printf(&s,
                  "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%u\r\nblocked_clients:0\r\n"
                  "\r\n",
                  (unsigned long long)atomic_load(&srv->nclients), GR_REDIS_MAX_CLIENTS);
    }
    if (want_section(a, "memory", true)) {
        struct mallinfo2 mi = mallinfo2();
        /* malloc's bytes and the table engine's slot arrays (own pages) */
        size_t used = mi.uordblks + mi.hblkhd + (size_t)gr_tables_mapped(srv->tables);

        sb_printf(&s,
                  "# Memory\r\nused_memory:%zu\r\nused_memory_human:%.2fM\r\n"
                  "used_memory_rss:%llu\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n"
                  "mem_allocator:libc\r\n\r\n",
                  used, (double)used / (1024.0 * 1024.0), (unsigned long long)rss_bytes());
    }
    if (want_section(a, "persistence", true)) {
        sb_printf(&s, "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\n"
                      "aof_enabled:0\r\n\r\n");
    }
    if (want_section(a, "stats", true)) {
        uint64_t expired = 0, evicted = 0;

        pthread_mutex_lock(&srv->mu);
        for (int i = 0; i < GR_REDIS_DBS; i++) {
            if (srv->dbs[i]) {
                gr_table_info ti;

                gr_table_info_get(srv->dbs[i], &ti);
                expired += ti.expired;
                evicted += ti.evictions;
            }
        }
        pthread_mutex_unlock(&srv->mu);
        sb_printf(&s,
                  "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                  "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                  "rejected_connections:%llu\r\nexpired_keys:%llu\r\nevicted_keys:%llu\r\n"
                  "keyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
                  "client_output_buffer_limit_disconnections:%llu\r\n"
                  "protocol_error_disconnections:%llu\r\n"
                  "durable_write_error_disconnections:%llu\r\n\r\n",
                  (unsigned long long)atomic_load(&srv->conns_total),
                  (unsigned long long)atomic_load(&srv->cmds_total),
                  (unsigned long long)atomic_load(&srv->net_in),
                  (unsigned long long)atomic_load(&srv->net_out),
                  (unsigned long long)atomic_load(&srv->rejected), (unsigned long long)expired,
                  (unsigned long long)evicted, (unsigned long long)atomic_load(&srv->hits),
                  (unsigned long long)atomic_load(&srv->misses),
                  (unsigned long long)atomic_load(&srv->out_limit),
                  (unsigned long long)atomic_load(&srv->proto_errors),
                  (unsigned long long)atomic_load(&srv->durfails));
    }
    if (want_section(a, "replication", true)) {
        sb_printf(&s, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if (want_section(a, "keyspace", true)) {
        sb_printf(&s, "# Keyspace\r\n");
        pthread_mutex_lock(&srv->mu);
        for (int i = 0; i < GR_REDIS_DBS; i++) {
            gr_table_info ti;

            if (srv->dbs[i]) {
                gr_table_info_get(srv->dbs[i], &ti);
                if (ti.entries) {
                    sb_printf(&s, "db%d:keys=%llu,expires=0,avg_ttl=0\r\n", i,
                              (unsigned long long)ti.entries);
                }
            }
        }
        pthread_mutex_unlock(&srv->mu);
        sb_printf(&s, "\r\n");
    }
    if (s.len >= 2) {
        s.len -= 2; /* no blank line at the end */
    }
    gr_resp_verbatim(&c->out, "txt", s.p ? s.p : "", s.len);
    free(s.p);
}

/* ---- CONFIG, COMMAND, DBSIZE, FLUSHDB -------------------------------------------------------- */

void gr_redis_cmd_config(rconn *c, const rargs *a)
{
    char port[8], bulk[24], outlim[96];
    const char *params[][2] = {
        {"appendfsync", "everysec"},
        {"appendonly", "no"},
        {"bind", c->srv->host},
        {"client-output-buffer-limit", outlim},
        {"databases", "16"},
        {"maxclients", "10000"},
        {"maxmemory", "0"},
        {"maxmemory-policy", "noeviction"},
        {"port", port},
        {"protected-mode", c->srv->password ? "no" : "yes"},
        {"proto-max-bulk-len", bulk},
        {"save", ""},
        {"timeout", "0"},
    };
    size_t np = sizeof(params) / sizeof(params[0]), n = 0;
    bool match[sizeof(params) / sizeof(params[0])] = {0};

    snprintf(port, sizeof(port), "%u", c->srv->port);
    snprintf(bulk, sizeof(bulk), "%u", GR_RESP_MAX_BULK_DEFAULT);
    snprintf(outlim, sizeof(outlim), "normal %u %u 0 replica 0 0 0 pubsub %u %u 0",
             GR_REDIS_OUT_HARD, GR_REDIS_OUT_SOFT, GR_REDIS_OUT_HARD, GR_REDIS_OUT_SOFT);
    if (arg_is(a, 1, "GET") && a->argc >= 3) {
        for (size_t i = 0; i < np; i++) {
            for (int j = 2; j < a->argc && !match[i]; j++) {
                if (gr_resp_glob(a->argv[j], a->argl[j], params[i][0], strlen(params[i][0]),
                                 true)) {
                    match[i] = true;
                    n++;
                }
            }
        }
        gr_resp_map(&c->out, n);
        for (size_t i = 0; i < np; i++) {
            if (match[i]) {
                gr_resp_bulkstr(&c->out, params[i][0]);
                gr_resp_bulkstr(&c->out, params[i][1]);
            }
        }
    } else if (arg_is(a, 1, "RESETSTAT") && a->argc == 2) {
        gr_resp_simple(&c->out, "OK");
    } else if (arg_is(a, 1, "SET")) {
        gr_resp_error(&c->out, "ERR CONFIG SET is not supported by Girder: set options in "
                               "girderd's configuration");
    } else {
        gr_resp_errorf(&c->out,
                       "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
                       "Try CONFIG HELP.",
                       a->argc > 1 ? (int)a->argl[1] : 0, a->argc > 1 ? a->argv[1] : "");
    }
}

/* COMMAND's reply for one command. */
static void command_info(rconn *c, const rcommand *cmd)
{
    const char *f = cmd->flags;
    size_t nflags = 0;

    for (const char *p = f; *p;) {
        size_t l = strcspn(p, " ");

        if (l) {
            nflags++;
        }
        p += l;
        p += *p == ' ';
    }
    gr_resp_array(&c->out, 10);
    gr_resp_bulkstr(&c->out, cmd->name);
    gr_resp_int(&c->out, cmd->arity);
    gr_resp_set(&c->out, nflags);
    for (const char *p = f; *p;) {
        size_t l = strcspn(p, " ");

        if (l) {
            gr_resp_raw(&c->out, "+", 1);
            gr_resp_raw(&c->out, p, l);
            gr_resp_raw(&c->out, "\r\n", 2);
        }
        p += l;
        p += *p == ' ';
    }
    gr_resp_int(&c->out, cmd->first);
    gr_resp_int(&c->out, cmd->last);
    gr_resp_int(&c->out, cmd->step);
    gr_resp_set(&c->out, 0);
    gr_resp_set(&c->out, 0);
    gr_resp_array(&c->out, 0);
    gr_resp_array(&c->out, 0);
}

void gr_redis_cmd_command(rconn *c, const rargs *a)
{
    if (a->argc == 1) {
        gr_resp_array(&c->out, gr_redis_ncmds);
        for (size_t i = 0; i < gr_redis_ncmds; i++) {
            command_info(c, &gr_redis_cmds[i]);
        }
    } else if (arg_is(a, 1, "COUNT") && a->argc == 2) {
        gr_resp_int(&c->out, (int64_t)gr_redis_ncmds);
    } else if (arg_is(a, 1, "INFO")) {
        gr_resp_array(&c->out, (size_t)a->argc - 2);
        for (int i = 2; i < a->argc; i++) {
            const rcommand *cmd = find_cmd(a->argv[i], a->argl[i]);

            if (cmd) {
                command_info(c, cmd);
            } else {
                gr_resp_null_array(&c->out);
            }
        }
    } else if (arg_is(a, 1, "DOCS")) {
        /* name -> {summary, since, group}: what redis-cli's hints read */
        size_t n = 0;

        for (size_t i = 0; i < gr_redis_ncmds; i++) {
            bool want = a->argc == 2;

            for (int j = 2; j < a->argc && !want; j++) {
                want = strlen(gr_redis_cmds[i].name) == a->argl[j] &&
                       strncasecmp(gr_redis_cmds[i].name, a->argv[j], a->argl[j]) == 0;
            }
            n += want;
        }
        gr_resp_map(&c->out, n);
        for (size_t i = 0; i < gr_redis_ncmds; i++) {
            bool want = a->argc == 2;

            for (int j = 2; j < a->argc && !want; j++) {
                want = strlen(gr_redis_cmds[i].name) == a->argl[j] &&
                       strncasecmp(gr_redis_cmds[i].name, a->argv[j], a->argl[j]) == 0;
            }
            if (want) {
                gr_resp_bulkstr(&c->out, gr_redis_cmds[i].name);
                gr_resp_map(&c->out, 3);
                gr_resp_bulkstr(&c->out, "summary");
                gr_resp_bulkstr(&c->out, "served by Girder (docs/redis.md)");
                gr_resp_bulkstr(&c->out, "since");
                gr_resp_bulkstr(&c->out, "1.0.0");
                gr_resp_bulkstr(&c->out, "group");
                gr_resp_bulkstr(&c->out, "generic");
            }
        }
    } else if (arg_is(a, 1, "GETKEYS") || arg_is(a, 1, "LIST")) {
        gr_resp_array(&c->out, gr_redis_ncmds);
        for (size_t i = 0; i < gr_redis_ncmds; i++) {
            gr_resp_bulkstr(&c->out, gr_redis_cmds[i].name);
        }
    } else {
        gr_resp_errorf(&c->out, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)a->argl[1],
                       a->argv[1]);
    }
}

void gr_redis_cmd_dbsize(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c);

    if (t) {
        gr_resp_int(&c->out, (int64_t)gr_table_count(t));
    }
}

/* gr_table_scan callback: each table key into an rpieces. */
static int collect_key(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       const gr_tmeta *meta)
{
    rpieces *ps = ud;

    if (gr_redis_piece_put(ps, key, klen) < 0) {
        return 1;
    }
    ps->n++;
    return 0;
}

/* Delete every key of t (replicated as deletes): pages of 1,000. */
static void flush_table(rconn *c, gr_table *t)
{
    gr_tbuf cur = {0}, next = {0}, keys = {0};
    rpieces kl = {.b = &keys};

    for (;;) {
        gr_tscan req = {.cursor = cur.len ? cur.p : NULL, .cursor_len = cur.len, .limit = 1000};

        keys.len = 0;
        kl.n = 0;
        if (gr_table_scan(t, &req, collect_key, &kl, &next) < 0 || kl.oom) {
            break;
        }
        for (size_t off = 0; off < keys.len;) {
            const uint8_t *p;
            size_t l;

            off = gr_redis_piece_at(&kl, off, &p, &l);
            gr_table_del_d(&c->dur, t, p, l, 0);
        }
        if (next.len == 0) {
            break;
        }
        gr_tbuf tmp = cur;
        cur = next;
        next = tmp;
    }
    gr_tbuf_free(&cur);
    gr_tbuf_free(&next);
    gr_tbuf_free(&keys);
}

void gr_redis_cmd_flushdb(rconn *c, const rargs *a)
{
    gr_table *t = gr_redis_db(c), *lt;

    if (!t) {
        return;
    }
    if (a->argc > 2 || (a->argc == 2 && !arg_is(a, 1, "ASYNC") && !arg_is(a, 1, "SYNC"))) {
        gr_resp_error(&c->out, "ERR syntax error");
        return;
    }
    flush_table(c, t);
    if (!(lt = gr_redis_ldb(c))) {
        return;
    }
    flush_table(c, lt);
    gr_resp_simple(&c->out, "OK");
}
