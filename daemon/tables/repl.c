/* SPDX-License-Identifier: Apache-2.0 */
/*
 * repl.c - replication of `replicated` tables (repl.h; docs/tables.md
 * "Replication"): the outgoing write queue, table creates and drops with table
 * tombstones, anti-entropy (digest -> key list -> what differs), and the
 * per-peer status that `table info` shows. The merge rule itself is the
 * engine's (gr_table_merge, table.c).
 *
 * Design notes
 * - Writers (any scheduler) append a compact copy of the entry to one queue
 *   under a mutex and, when the queue was empty, write the eventfd the dist
 *   thread polls: a write never waits for the network. The dist thread
 *   drains the whole queue at once into ReplWrites frames of at most
 *   FRAME_BYTES and hands each to every member up (one batch per wakeup).
 * - While no member is up nothing is queued: anti-entropy brings a member
 *   that comes up (or back) level.
 * - Anti-entropy: A sends its digest (per table, 256 XORs of entry hashes);
 *   B answers, for each bucket that differs, its (key, hash, tombstone, HLC)
 *   list (tombstones only where A's bucket is empty); A ships the entries B
 *   lacks or holds differently and records whether B held the same table.
 *   Both sides offer their digests, so both directions are covered, and a
 *   bucket that is equal costs 8 bytes.
 * - Tombstone purge: A's cut-off is the oldest of every member's last equal
 *   answer, minus GC_SKEW_MS, or a larger one a member advertised; older
 *   tombstones are on every member, so the sweep purges them, and a side
 *   lacking one counts as having purged it (docs/tables.md, "Tombstones").
 * - Tables: a create or drop is a digest sent at once; a drop leaves a table
 *   tombstone (name, the create's HLC, the drop's HLC) here, offered in every
 *   digest, so a member that was down drops its copy when it comes back.
 *   Table tombstones live in memory (a node restarted from nothing forgets
 *   them; docs/tables.md says what that means).
 *
 * Threads: see repl.h. mu guards the queue, the peers and the table
 * tombstones.
 */
#include "tables/repl.h"

#include "proto/err.h"
#include "proto/girder.pb-c.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define FRAME_BYTES (256u << 10) /* a ReplWrites / ReplKeys frame holds about this much */
#define QUEUE_BYTES (64u << 20)  /* queued writes above this are left to anti-entropy */
#define PEERS_MAX 64
#define PEER_TABLES_MAX 256
#define DROPS_MAX 1024
#define LOG "repl"

typedef struct peer_table {
    char name[GR_TABLE_NAME_MAX + 1];
    uint64_t last_ms;  /* its last answer to our digest of this table, wall ms */
    bool equal;        /* it showed the same table (old tombstones aside) */
    uint64_t equal_ms; /* the last answer that did */
    bool acc_differ;   /* frames of the answer in progress showed a difference */
} peer_table;

typedef struct gc_cut {
    char name[GR_TABLE_NAME_MAX + 1];
    uint64_t ms; /* the largest gc_before a member advertised */
} gc_cut;

typedef struct peer {
    char node[256];
    bool up;
    uint64_t writes_ms; /* wall ms of the last ReplWrites from it */
    unsigned skipped;   /* periodic rounds skipped in a row while it was writing */
    peer_table tabs[PEER_TABLES_MAX];
    unsigned ntabs;
} peer;

/* A bulk repair of one table in progress here: `node` answered our key list
 * for most buckets and ships what we lack (see pull_skip). */
typedef struct pull {
    char name[GR_TABLE_NAME_MAX + 1];
    char node[256];
    uint64_t ms;    /* wall ms of our last bulk answer to it */
    uint64_t since; /* wall ms it began: no repair holds the others off longer than PULL_MAX_MS */
} pull;

typedef struct drop {
    char name[GR_TABLE_NAME_MAX + 1];
    uint64_t created, hlc; /* the dropped table's create, the drop */
} drop;

struct gr_trepl {
    gr_tables *ts;
    pthread_mutex_t mu;
    gr_tbuf q;     /* queued writes (rec format below); mu */
    uint64_t qn;   /* entries in q; mu */
    size_t qmax;   /* bound of q.len, bytes; mu */
    bool sync_now; /* a create or drop: send a digest with the next drain; mu */
    int efd;       /* eventfd */
    _Atomic unsigned nup;
    peer *peers; /* PEERS_MAX; mu */
    unsigned npeers;
    drop *drops; /* DROPS_MAX; mu */
    unsigned ndrops;
    gc_cut gcs[PEER_TABLES_MAX]; /* mu */
    unsigned ngcs;
    pull pulls[PEER_TABLES_MAX]; /* mu */
    unsigned npulls;
    _Atomic uint64_t sent, received, merged;
    _Atomic uint64_t overflows; /* writes not queued because q was full */
};

/* Queue record: the header, then name, counters, key, value. */
typedef struct qrec {
    uint32_t klen, vlen;
    uint64_t hlc, origin, expire_ms;
    uint8_t namelen, tomb, counter, ncnt;
    uint8_t crdt; /* gr_trent.crdt */
} qrec;

/* Append entry e of table `name` to b in the queue format. */
static int rec_put(gr_tbuf *b, const char *name, const gr_trent *e)
{
    size_t nl = strlen(name) + 1; /* with its NUL: read in place */
    qrec h = {.klen = (uint32_t)e->klen,
              .vlen = (uint32_t)(e->tomb ? 0 : e->vlen),
              .hlc = e->hlc,
              .origin = e->origin,
              .expire_ms = e->expire_ms,
              .namelen = (uint8_t)nl,
              .tomb = e->tomb,
              .counter = e->counter,
              .ncnt = e->counter ? e->ncnt : 0,
              .crdt = e->crdt};
    size_t mark = b->len;

    if (gr_tbuf_put(b, &h, sizeof(h)) < 0 || gr_tbuf_put(b, name, nl) < 0 ||
        gr_tbuf_put(b, e->cnt, h.ncnt * sizeof(gr_tcnt)) < 0 ||
        gr_tbuf_put(b, e->key, e->klen) < 0 || gr_tbuf_put(b, e->val, h.vlen) < 0) {
        b->len = mark;
        return -ENOMEM;
    }
    return 0;
}

gr_trepl *gr_trepl_new(gr_tables *ts)
{
    gr_trepl *r = calloc(1, sizeof(*r));

    if (!r) {
        return NULL;
    }
    r->ts = ts;
    r->qmax = QUEUE_BYTES;
    pthread_mutex_init(&r->mu, NULL);
    r->peers = calloc(PEERS_MAX, sizeof(*r->peers));
    r->drops = calloc(DROPS_MAX, sizeof(*r->drops));
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->peers || !r->drops || r->efd < 0) {
        gr_trepl_free(r);
        return NULL;
    }
    return r;
}

void gr_trepl_free(gr_trepl *r)
{
    if (!r) {
        return;
    }
    if (r->efd >= 0) {
        close(r->efd);
    }
    gr_tbuf_free(&r->q);
    free(r->peers);
    free(r->drops);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void poke(gr_trepl *r)
{
    uint64_t one = 1;

    if (write(r->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the reader is awake anyway */
    }
}

void gr_trepl_on_write(gr_trepl *r, const char *table, const gr_trent *e)
{
    bool was_empty;

    if (atomic_load_explicit(&r->nup, memory_order_relaxed) == 0) {
        return; /* nobody to tell now: anti-entropy will */
    }
    pthread_mutex_lock(&r->mu);
    was_empty = r->qn == 0 && !r->sync_now;
    if (r->q.len + sizeof(qrec) + strlen(table) + 1 + e->klen + (e->tomb ? 0 : e->vlen) +
            (e->counter ? e->ncnt * sizeof(gr_tcnt) : 0) >
        r->qmax) {
        /* The dist thread is not keeping up: the write is left to
         * anti-entropy, which the digest sent with the next drain starts
         * (every member answers a hello digest). */
        atomic_fetch_add(&r->overflows, 1);
        r->sync_now = true;
    } else if (rec_put(&r->q, table, e) == 0) {
        r->qn++;
    }
    pthread_mutex_unlock(&r->mu);
    if (was_empty) {
        poke(r);
    }
}

/* Remember a table tombstone (mu held). */
static void drop_note_locked(gr_trepl *r, const char *name, uint64_t created, uint64_t hlc)
{
    drop *d = NULL;

    for (unsigned i = 0; i < r->ndrops; i++) {
        if (strcmp(r->drops[i].name, name) == 0) {
            d = &r->drops[i];
        }
    }
    if (!d) {
        if (r->ndrops == DROPS_MAX) {
            memmove(r->drops, r->drops + 1, (DROPS_MAX - 1) * sizeof(*d)); /* forget the oldest */
            r->ndrops--;
        }
        d = &r->drops[r->ndrops++];
        snprintf(d->name, sizeof(d->name), "%s", name);
    } else if (d->hlc >= hlc) {
        return;
    }
    d->created = created;
    d->hlc = hlc;
}

/* The table tombstone of name, or NULL (mu held). */
static const drop *drop_find_locked(gr_trepl *r, const char *name)
{
    for (unsigned i = 0; i < r->ndrops; i++) {
        if (strcmp(r->drops[i].name, name) == 0) {
            return &r->drops[i];
        }
    }
    return NULL;
}

void gr_trepl_on_table(gr_trepl *r, const char *name, const gr_table_opts *o, bool dropped,
                       uint64_t hlc)
{
    pthread_mutex_lock(&r->mu);
    if (dropped) {
        drop_note_locked(r, name, o->created, hlc);
    } else {
        for (unsigned i = 0; i < r->ndrops; i++) { /* created again: the tombstone is history */
            if (strcmp(r->drops[i].name, name) == 0 && r->drops[i].hlc < hlc) {
                r->drops[i] = r->drops[--r->ndrops];
                break;
            }
        }
    }
    r->sync_now = true;
    pthread_mutex_unlock(&r->mu);
    poke(r);
}

/* ---- the dist side ----------------------------------------------------------------------- */

int gr_trepl_wake_fd(gr_trepl *r)
{
    return r->efd;
}

static peer *peer_get_locked(gr_trepl *r, const char *node)
{
    for (unsigned i = 0; i < r->npeers; i++) {
        if (strcmp(r->peers[i].node, node) == 0) {
            return &r->peers[i];
        }
    }
    if (r->npeers == PEERS_MAX) {
        return NULL;
    }
    peer *p = &r->peers[r->npeers++];
    memset(p, 0, sizeof(*p));
    snprintf(p->node, sizeof(p->node), "%s", node);
    return p;
}

void gr_trepl_peer_up(gr_trepl *r, const char *node)
{
    peer *p;

    pthread_mutex_lock(&r->mu);
    if ((p = peer_get_locked(r, node)) && !p->up) {
        p->up = true;
        atomic_fetch_add(&r->nup, 1);
    }
    pthread_mutex_unlock(&r->mu);
}

void gr_trepl_peer_down(gr_trepl *r, const char *node)
{
    peer *p;

    pthread_mutex_lock(&r->mu);
    if ((p = peer_get_locked(r, node)) && p->up) {
        p->up = false;
        atomic_fetch_sub(&r->nup, 1);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Pack f and emit it. */
static int emit_frame(Girder__Frame *f, gr_trepl_emit_fn emit, void *ctx)
{
    size_t n = girder__frame__get_packed_size(f);
    uint8_t *b = malloc(n ? n : 1);
    int r;

    if (!b) {
        return -ENOMEM;
    }
    girder__frame__pack(f, b);
    r = emit(ctx, b, n);
    free(b);
    return r;
}

/* Emit the queue-format records in b[0..len) as ReplWrites frames of about
 * FRAME_BYTES, in their order or, with `shuffle`, in a pseudo-random one.
 * A repair's records come from a table walk, i.e. in hash order, and a set
 * table fed keys in hash order fills a small hash range densely: one
 * ordered stream is cheap (store_set.c's insert hint), but two interleaved
 * ones (two members repairing one table) would probe across whole runs.
 * Shuffled, they arrive as independent writes do. Only a repair is
 * shuffled (distinct keys; the merge rule makes the order of writes moot
 * anyway); the write queue keeps its order. */
static int ship(gr_trepl *r, const uint8_t *b, size_t len, bool shuffle, gr_trepl_emit_fn emit,
                void *ctx)
{
    size_t total = 0, ncn = 0, off, n = 0, first = 0, bytes = 0;
    Girder__ReplEntry *es = NULL, **ps = NULL;
    uint64_t *cn = NULL;
    uint32_t *sz = NULL; /* each entry's share of a frame, by es index */
    int rc = 0;

    for (off = 0; off < len; total++) {
        qrec h;

        memcpy(&h, b + off, sizeof(h));
        ncn += 3u * h.ncnt;
        off += sizeof(h) + h.namelen + h.ncnt * sizeof(gr_tcnt) + h.klen + h.vlen;
    }
    es = calloc(total ? total : 1, sizeof(*es));
    ps = calloc(total ? total : 1, sizeof(*ps));
    cn = malloc(ncn ? ncn * sizeof(uint64_t) : 1);
    sz = malloc((total ? total : 1) * sizeof(*sz));
    if (!es || !ps || !cn || !sz) {
        rc = -ENOMEM;
        goto out;
    }
    ncn = 0;
    for (off = 0; off < len && rc == 0;) {
        qrec h;
        Girder__ReplEntry *e = &es[n];

        memcpy(&h, b + off, sizeof(h));
        off += sizeof(h);
        girder__repl_entry__init(e);
        e->table = (char *)(b + off);
        off += h.namelen;
        memcpy(cn + ncn, b + off, h.ncnt * sizeof(gr_tcnt));
        e->counters = cn + ncn;
        e->n_counters = 3u * h.ncnt;
        ncn += 3u * h.ncnt;
        off += h.ncnt * sizeof(gr_tcnt);
        e->key.data = (uint8_t *)b + off;
        e->key.len = h.klen;
        off += h.klen;
        e->value.data = (uint8_t *)b + off;
        e->value.len = h.vlen;
        off += h.vlen;
        e->tomb = h.tomb;
        e->counter = h.counter;
        e->kind = h.crdt;
        e->hlc = h.hlc;
        e->origin = h.origin;
        e->expire_ms = h.expire_ms;
        sz[n] = h.klen + h.vlen + 48u + h.namelen + 24u * h.ncnt;
        ps[n++] = e;
    }
    if (shuffle) {
        uint64_t x = 0x9e3779b97f4a7c15ull ^ n;

        for (size_t i = n; i > 1; i--) { /* Fisher-Yates, xorshift */
            size_t j;
            Girder__ReplEntry *tmp;

            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            j = (size_t)(x % i);
            tmp = ps[i - 1];
            ps[i - 1] = ps[j];
            ps[j] = tmp;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        bytes += sz[ps[i] - es];
        if (bytes >= FRAME_BYTES || i + 1 == n) {
            Girder__Frame f = GIRDER__FRAME__INIT;
            Girder__ReplWrites w = GIRDER__REPL_WRITES__INIT;

            w.entries = ps + first;
            w.n_entries = i + 1 - first;
            f.msg_case = GIRDER__FRAME__MSG_REPL_WRITES;
            f.repl_writes = &w;
            rc = emit_frame(&f, emit, ctx);
            atomic_fetch_add(&r->sent, i + 1 - first);
            first = i + 1;
            bytes = 0;
        }
    }
out:
    free(es);
    free(ps);
    free(cn);
    free(sz);
    return rc;
}

typedef struct name_list {
    char (*v)[GR_TABLE_NAME_MAX + 1];
    size_t n, cap;
} name_list;

static void collect_name(void *ud, const char *name)
{
    name_list *l = ud;

    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        void *np = realloc(l->v, cap * sizeof(*l->v));

        if (!np) {
            return;
        }
        l->v = np;
        l->cap = cap;
    }
    snprintf(l->v[l->n++], sizeof(l->v[0]), "%s", name);
}

static bool pulling(gr_trepl *r, const char *table);

/* Our digest: every replicated table (but those under a bulk repair to us,
 * in periodic rounds: pulling) and every table tombstone. */
static int send_digest(gr_trepl *r, bool hello, gr_trepl_emit_fn emit, void *ctx)
{
    name_list l = {0};
    Girder__ReplTable *ts = NULL, **tp = NULL;
    uint8_t(*bk)[GR_TDIGEST_BUCKETS * 8] = NULL;
    Girder__ReplDigest dg = GIRDER__REPL_DIGEST__INIT;
    Girder__Frame f = GIRDER__FRAME__INIT;
    size_t n = 0, max;
    drop *drops = NULL;
    unsigned ndrops;
    int rc = 0;

    gr_tables_list(r->ts, collect_name, &l);
    /* the table tombstones, copied (r->mu is never held while the engine's
     * registry lock is taken: create holds that one and then tells us) */
    pthread_mutex_lock(&r->mu);
    ndrops = r->ndrops;
    if ((drops = malloc((ndrops ? ndrops : 1) * sizeof(*drops)))) {
        memcpy(drops, r->drops, ndrops * sizeof(*drops));
    }
    pthread_mutex_unlock(&r->mu);
    max = l.n + ndrops;
    ts = calloc(max ? max : 1, sizeof(*ts));
    tp = calloc(max ? max : 1, sizeof(*tp));
    bk = calloc(l.n ? l.n : 1, sizeof(*bk));
    if (!ts || !tp || !bk || !drops) {
        rc = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < ndrops; i++) {
        Girder__ReplTable *t = &ts[n];

        girder__repl_table__init(t);
        t->name = drops[i].name;
        t->created = drops[i].created;
        t->dropped = true;
        t->drop_hlc = drops[i].hlc;
        tp[n] = t;
        n++;
    }
    for (size_t i = 0; i < l.n; i++) {
        gr_table *tab;
        gr_table_info info;
        uint64_t dig[GR_TDIGEST_BUCKETS];
        Girder__ReplTable *t = &ts[n];

        if (gr_tables_open(r->ts, l.v[i], &tab) < 0) {
            continue;
        }
        gr_table_info_get(tab, &info);
        if (info.opts.replicated && (hello || !pulling(r, l.v[i]))) {
            gr_table_digest(tab, dig);
            for (int b = 0; b < GR_TDIGEST_BUCKETS; b++) {
                for (int j = 0; j < 8; j++) {
                    bk[i][8 * b + j] = (uint8_t)(dig[b] >> (8 * j));
                }
            }
            girder__repl_table__init(t);
            t->name = l.v[i];
            t->created = info.opts.created;
            t->kind = info.opts.kind;
            t->durability = info.opts.durability;
            t->fsync = info.opts.fsync;
            t->default_ttl_ms = info.opts.default_ttl_ms;
            t->max_entries = info.opts.max_entries;
            t->max_bytes = info.opts.max_bytes;
            t->buckets.data = bk[i];
            t->buckets.len = sizeof(bk[i]);
            t->gc_before = gr_trepl_gc_ms(r, l.v[i]);
            tp[n] = t;
            n++;
        }
        gr_table_close(tab);
    }
    if (n == 0 && !hello) {
        goto out; /* a periodic round with nothing to compare: the peer would
                   * do nothing with it (on_digest), so nothing is sent */
    }
    dg.tables = tp;
    dg.n_tables = n;
    dg.hello = hello;
    f.msg_case = GIRDER__FRAME__MSG_REPL_DIGEST;
    f.repl_digest = &dg;
    rc = emit_frame(&f, emit, ctx);
out:
    free(drops);
    free(ts);
    free(tp);
    free(bk);
    free(l.v);
    return rc;
}

void gr_trepl_drain(gr_trepl *r, gr_trepl_emit_fn emit, void *ctx)
{
    uint64_t v;
    gr_tbuf q;
    bool sync;

    if (read(r->efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing signalled; drain anyway */
    }
    pthread_mutex_lock(&r->mu);
    q = r->q;
    r->q = (gr_tbuf){0};
    r->qn = 0;
    sync = r->sync_now;
    r->sync_now = false;
    pthread_mutex_unlock(&r->mu);
    if (sync) {
        send_digest(r, true, emit, ctx); /* before the writes: the table exists on arrival */
    }
    if (q.len) {
        ship(r, q.p, q.len, false, emit, ctx);
    }
    gr_tbuf_free(&q);
}

void gr_trepl_sync(gr_trepl *r, const char *node, bool hello, gr_trepl_emit_fn emit, void *ctx)
{
    (void)node;
    send_digest(r, hello, emit, ctx);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static int on_writes(gr_trepl *r, const char *node, const Girder__ReplWrites *w)
{
    gr_table *t = NULL;
    gr_tcnt cnt[255];
    peer *p;

    pthread_mutex_lock(&r->mu);
    if ((p = peer_get_locked(r, node))) {
        p->writes_ms = gr_tables_now_ms(r->ts);
    }
    pthread_mutex_unlock(&r->mu);

    for (size_t i = 0; i < w->n_entries; i++) {
        const Girder__ReplEntry *e = w->entries[i];
        gr_trent te;
        int rc;

        if (!e->table || e->n_counters % 3 || e->n_counters / 3 > 255) {
            continue;
        }
        if (!t || strcmp(gr_table_name(t), e->table) != 0) {
            t = gr_table_close(t);
            if (gr_tables_open(r->ts, e->table, &t) < 0) {
                t = NULL;
                continue; /* not here (yet): anti-entropy brings it */
            }
        }
        for (size_t c = 0; c < e->n_counters / 3; c++) {
            cnt[c] = (gr_tcnt){e->counters[3 * c], e->counters[3 * c + 1], e->counters[3 * c + 2]};
        }
        te = (gr_trent){.key = e->key.data,
                        .klen = e->key.len,
                        .val = e->value.data,
                        .vlen = e->value.len,
                        .tomb = e->tomb,
                        .counter = e->counter,
                        .crdt = (uint8_t)(e->kind <= 255 ? e->kind : 255),
                        .cnt = cnt,
                        .ncnt = (uint8_t)(e->n_counters / 3),
                        .hlc = e->hlc,
                        .origin = e->origin,
                        .expire_ms = e->expire_ms};
        atomic_fetch_add(&r->received, 1);
        if (e->tomb && (e->hlc >> 16) < gr_trepl_gc_ms(r, e->table)) {
            continue; /* every member had it: purged here, or about to be */
        }
        if ((rc = gr_table_merge(t, &te)) > 0) {
            atomic_fetch_add(&r->merged, 1);
        } else if (rc < 0 && rc != GR_EBADARG) {
            gr_debug(LOG, "merge into %s: %s", e->table, gr_strerror(rc));
        }
    }
    gr_table_close(t);
    return 0;
}

/* A frame of node's answer to our digest of table: whether it showed a
 * difference; on the last frame, the answer's verdict is recorded. */
static void peer_note(gr_trepl *r, const char *node, const char *table, bool differ, bool last)
{
    peer *p;

    pthread_mutex_lock(&r->mu);
    if ((p = peer_get_locked(r, node))) {
        peer_table *pt = NULL;

        for (unsigned i = 0; i < p->ntabs; i++) {
            if (strcmp(p->tabs[i].name, table) == 0) {
                pt = &p->tabs[i];
            }
        }
        if (!pt && p->ntabs < PEER_TABLES_MAX) {
            pt = &p->tabs[p->ntabs++];
            snprintf(pt->name, sizeof(pt->name), "%s", table);
        }
        if (pt) {
            pt->acc_differ = pt->acc_differ || differ;
            if (last) {
                pt->last_ms = gr_tables_now_ms(r->ts);
                pt->equal = !pt->acc_differ;
                if (pt->equal) {
                    pt->equal_ms = pt->last_ms;
                }
                pt->acc_differ = false;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* Clock difference (and answer delay) tolerated between members, ms. */
#define GC_SKEW_MS 5000

/* Remember the gc_before a member advertised for table (the largest). */
static void gc_adopt(gr_trepl *r, const char *table, uint64_t ms)
{
    gc_cut *g = NULL;

    if (!ms) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->ngcs; i++) {
        if (strcmp(r->gcs[i].name, table) == 0) {
            g = &r->gcs[i];
        }
    }
    if (!g && r->ngcs < PEER_TABLES_MAX) {
        g = &r->gcs[r->ngcs++];
        snprintf(g->name, sizeof(g->name), "%s", table);
        g->ms = 0;
    }
    if (g && ms > g->ms) {
        g->ms = ms;
    }
    pthread_mutex_unlock(&r->mu);
}

uint64_t gr_trepl_gc_ms(gr_trepl *r, const char *table)
{
    uint64_t seen = gr_trepl_seen_ms(r, table), own, adopted = 0;

    own = seen > GC_SKEW_MS ? seen - GC_SKEW_MS : 0;
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->ngcs; i++) {
        if (strcmp(r->gcs[i].name, table) == 0) {
            adopted = r->gcs[i].ms;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return own > adopted ? own : adopted;
}

/* Keys walk: records [bucket u8][hash u64][tomb u8][hlc u64][klen u32][key]. */
#define KW_HDR 22
typedef struct kw {
    gr_tbuf b;
    size_t n;
    const uint8_t *zmask; /* buckets empty at the peer: tombstones only */
    bool more;            /* a live entry in such a bucket */
} kw;

static int kw_add(void *ud, const gr_trent *e)
{
    kw *w = ud;
    uint8_t bucket = (uint8_t)gr_tkey_bucket(e->key, e->klen), tomb = e->tomb;
    uint64_t hash = e->hash, hlc = e->hlc;

    if (w->zmask[bucket >> 3] & (1u << (bucket & 7)) && !tomb) {
        w->more = true;
        return 0;
    }
    if (gr_tbuf_put(&w->b, &bucket, 1) < 0 || gr_tbuf_put(&w->b, &hash, 8) < 0 ||
        gr_tbuf_put(&w->b, &tomb, 1) < 0 || gr_tbuf_put(&w->b, &hlc, 8) < 0 ||
        gr_tbuf_put(&w->b, &(uint32_t){(uint32_t)e->klen}, 4) < 0 ||
        gr_tbuf_put(&w->b, e->key, e->klen) < 0) {
        return -ENOMEM;
    }
    w->n++;
    return 0;
}

static uint32_t kw_klen(const uint8_t *rec)
{
    uint32_t kl;

    memcpy(&kl, rec + 18, 4);
    return kl;
}

/* A digest differing in at least this many of the 256 buckets asks for a
 * bulk repair (a new or long-gone member): one member at a time does it. */
#define PULL_BUCKETS 64
#define PULL_MS 3000      /* answers to others wait this long after our last bulk one, */
#define PULL_MAX_MS 15000 /* but never longer than this from the repair's start */

/* Should our answer to node's `hello` digest of `table`, differing in
 * `ndiff` buckets, be left out? Every member offers its digest when a
 * member comes up, so a member that lacks a whole table would get it
 * shipped by every other member at once (three times the bytes, merges and
 * time with three members). So the first bulk answer to a hello makes that
 * member the repair's source, and bulk answers to the others' hellos wait;
 * their periodic rounds (every 2 s) are answered as always, so they find
 * what is still missing (nothing once the repair is done). Only hellos:
 * holding periodic rounds off too starved a replica whose source could not
 * ship fast enough (a busy link: r2_repl_slow took 34 s instead of 4). */
static bool pull_skip(gr_trepl *r, const char *table, const char *node, unsigned ndiff)
{
    uint64_t now = gr_tables_now_ms(r->ts);
    pull *pl = NULL;
    bool skip = false;

    if (ndiff < PULL_BUCKETS) {
        return false;
    }
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->npulls; i++) {
        if (strcmp(r->pulls[i].name, table) == 0) {
            pl = &r->pulls[i];
        }
    }
    if (pl && strcmp(pl->node, node) != 0 && now < pl->since + PULL_MAX_MS) {
        peer *p = peer_get_locked(r, pl->node);

        /* not "while its writes keep coming": live writes are no repair, and
         * while they come we skip its periodic rounds (skip_round), so
         * nobody would repair us (r2_repl_slow) */
        skip = p && p->up && now < pl->ms + PULL_MS;
    }
    if (!skip) {
        if (!pl && r->npulls < PEER_TABLES_MAX) {
            pl = &r->pulls[r->npulls++];
            snprintf(pl->name, sizeof(pl->name), "%s", table);
            pl->node[0] = 0;
        }
        if (pl) {
            if (strcmp(pl->node, node) != 0 || now >= pl->since + PULL_MAX_MS) {
                pl->since = now; /* a new repair */
            }
            snprintf(pl->node, sizeof(pl->node), "%s", node);
            pl->ms = now;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return skip;
}

/* Is a bulk repair of `table` to us in progress (see pull_skip)? While it
 * is, our periodic digests leave the table out: every member would answer
 * a half-filled table with its whole key list, and we would ship back what
 * arrived meanwhile. The repair's end lets the next round compare. */
static bool pulling(gr_trepl *r, const char *table)
{
    uint64_t now = gr_tables_now_ms(r->ts);
    bool on = false;

    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->npulls; i++) {
        const pull *pl = &r->pulls[i];
        peer *p;

        if (strcmp(pl->name, table) == 0 && now < pl->since + PULL_MAX_MS &&
            (p = peer_get_locked(r, pl->node)) && p->up) {
            on = now < pl->ms + PULL_MS;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return on;
}

/* Answer table t's digest `theirs`: for the buckets that differ, our (key,
 * hash, tombstone, HLC) list - of every entry where they hold something,
 * of tombstones only where their bucket is empty (`more` says a live entry
 * was left out) - in frames of whole buckets, the last one marked `last`
 * (sent even when nothing differs: it tells them we are equal). */
static int answer_digest(gr_trepl *r, const char *node, bool hello, gr_table *t,
                         const uint8_t *theirs, gr_trepl_emit_fn emit, void *ctx)
{
    uint64_t ours[GR_TDIGEST_BUCKETS];
    uint8_t mask[32] = {0}, zmask[32] = {0}, all[32];
    kw w = {.zmask = zmask};
    size_t *idx[GR_TDIGEST_BUCKETS] = {0}, cnt[GR_TDIGEST_BUCKETS] = {0};
    Girder__ReplEntry *es = NULL, **ps = NULL;
    size_t n = 0, bytes = 0;
    uint8_t fm[32] = {0};
    bool any = false;
    unsigned ndiff = 0;
    int rc = 0;

    gr_table_digest(t, ours);
    for (int b = 0; b < GR_TDIGEST_BUCKETS; b++) {
        uint64_t v = 0;

        for (int j = 0; j < 8; j++) {
            v |= (uint64_t)theirs[8 * b + j] << (8 * j);
        }
        if (v != ours[b]) {
            (v != 0 ? mask : zmask)[b >> 3] |= (uint8_t)(1u << (b & 7));
            any = true;
            ndiff++;
        }
    }
    if (hello && pull_skip(r, gr_table_name(t), node, ndiff)) {
        gr_debug(LOG, "%s: bulk answer to %s waits for another member's repair", gr_table_name(t),
                 node);
        return 0;
    }
    for (int j = 0; j < 32; j++) {
        all[j] = mask[j] | zmask[j];
    }
    if (any && (rc = gr_table_walk(t, all, kw_add, &w)) < 0) {
        goto out;
    }
    for (size_t off = 0; off < w.b.len; off += KW_HDR + kw_klen(w.b.p + off)) {
        cnt[w.b.p[off]]++;
    }
    for (int b = 0; b < GR_TDIGEST_BUCKETS; b++) {
        if (cnt[b] && !(idx[b] = malloc(cnt[b] * sizeof(size_t)))) {
            rc = -ENOMEM;
            goto out;
        }
        cnt[b] = 0;
    }
    for (size_t off = 0; off < w.b.len; off += KW_HDR + kw_klen(w.b.p + off)) {
        idx[w.b.p[off]][cnt[w.b.p[off]]++] = off;
    }
    es = calloc(w.n ? w.n : 1, sizeof(*es));
    ps = calloc(w.n ? w.n : 1, sizeof(*ps));
    if (!es || !ps) {
        rc = -ENOMEM;
        goto out;
    }
    for (int b = 0; b <= GR_TDIGEST_BUCKETS && rc == 0; b++) {
        bool last = b == GR_TDIGEST_BUCKETS;

        if (!last && !(all[b >> 3] & (1u << (b & 7)))) {
            continue;
        }
        if (last || (bytes >= FRAME_BYTES && n)) { /* emit the buckets so far */
            Girder__Frame f = GIRDER__FRAME__INIT;
            Girder__ReplKeys k = GIRDER__REPL_KEYS__INIT;

            k.table = (char *)gr_table_name(t);
            k.buckets.data = fm;
            k.buckets.len = sizeof(fm);
            k.entries = ps;
            k.n_entries = n;
            k.more = w.more;
            k.last = last;
            f.msg_case = GIRDER__FRAME__MSG_REPL_KEYS;
            f.repl_keys = &k;
            rc = emit_frame(&f, emit, ctx);
            memset(fm, 0, sizeof(fm));
            n = 0;
            bytes = 0;
            if (last) {
                break;
            }
        }
        fm[b >> 3] |= (uint8_t)(1u << (b & 7));
        for (size_t i = 0; i < cnt[b]; i++) {
            const uint8_t *rec = w.b.p + idx[b][i];
            Girder__ReplEntry *e = &es[n];

            girder__repl_entry__init(e);
            memcpy(&e->hash, rec + 1, 8);
            e->tomb = rec[9] != 0;
            memcpy(&e->hlc, rec + 10, 8);
            e->key.data = (uint8_t *)rec + KW_HDR;
            e->key.len = kw_klen(rec);
            ps[n++] = e;
            bytes += e->key.len + 24;
        }
    }
out:
    free(es);
    free(ps);
    for (int b = 0; b < GR_TDIGEST_BUCKETS; b++) {
        free(idx[b]);
    }
    gr_tbuf_free(&w.b);
    return rc;
}

static void table_opts_of(const Girder__ReplTable *rt, gr_table_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->kind = rt->kind == 1 ? GR_TABLE_ORDERED_SET : GR_TABLE_SET;
    o->durability = rt->durability == 1 ? GR_TABLE_DISK : GR_TABLE_MEMORY;
    o->fsync = rt->fsync <= GR_FSYNC_NEVER ? (gr_table_fsync)rt->fsync : GR_FSYNC_ALWAYS;
    o->default_ttl_ms = rt->default_ttl_ms;
    o->max_entries = rt->max_entries;
    o->max_bytes = rt->max_bytes;
    o->replicated = true;
    o->created = rt->created;
}

/* Skip this periodic round with node? While a peer streams writes to us,
 * every bucket differs by what is in flight: answering would ship key lists
 * of the whole table for nothing. At most SKIP_MAX rounds in a row. */
#define SKIP_MAX 5
static bool skip_round(gr_trepl *r, const char *node, bool hello)
{
    bool skip = false;
    peer *p;

    pthread_mutex_lock(&r->mu);
    if ((p = peer_get_locked(r, node))) {
        skip = !hello && p->skipped < SKIP_MAX && p->writes_ms + 2000 > gr_tables_now_ms(r->ts);
        p->skipped = skip ? p->skipped + 1 : 0;
    }
    pthread_mutex_unlock(&r->mu);
    return skip;
}

static int on_digest(gr_trepl *r, const char *node, const Girder__ReplDigest *dg,
                     gr_trepl_emit_fn emit, void *ctx)
{
    bool skip = skip_round(r, node, dg->hello);
    int rc = 0;

    for (size_t i = 0; i < dg->n_tables && rc == 0; i++) {
        const Girder__ReplTable *rt = dg->tables[i];
        gr_table *t = NULL;
        gr_table_info info;
        const drop *dp;
        bool dropped_here;

        if (!rt->name || !rt->name[0]) {
            continue;
        }
        if (rt->dropped) {
            pthread_mutex_lock(&r->mu);
            drop_note_locked(r, rt->name, rt->created, rt->drop_hlc);
            pthread_mutex_unlock(&r->mu);
            if (gr_tables_info(r->ts, rt->name, &info) == 0 && info.opts.replicated &&
                info.opts.created <= rt->drop_hlc) {
                gr_info(LOG, "table %s dropped by a replica (%s)", rt->name, node);
                gr_tables_drop_replica(r->ts, rt->name);
            }
            continue;
        }
        pthread_mutex_lock(&r->mu);
        dp = drop_find_locked(r, rt->name);
        dropped_here = dp && dp->hlc >= rt->created;
        pthread_mutex_unlock(&r->mu);
        if (dropped_here) {
            continue; /* our digest tells them */
        }
        if (gr_tables_open(r->ts, rt->name, &t) == GR_ENOTABLE) {
            gr_table_opts o;
            int c;

            table_opts_of(rt, &o);
            c = gr_tables_create_replica(r->ts, rt->name, &o);
            if (c == GR_ECONFIG) { /* no data directory here: a memory copy */
                o.durability = GR_TABLE_MEMORY;
                c = gr_tables_create_replica(r->ts, rt->name, &o);
            }
            if (c == 0) {
                gr_info(LOG, "table %s created by a replica (%s)", rt->name, node);
            }
            if (gr_tables_open(r->ts, rt->name, &t) < 0) {
                continue;
            }
        } else if (!t) {
            continue;
        }
        gr_table_info_get(t, &info);
        if (!skip && info.opts.replicated && rt->buckets.len == GR_TDIGEST_BUCKETS * 8) {
            gc_adopt(r, rt->name, rt->gc_before);
            rc = answer_digest(r, node, dg->hello, t, rt->buckets.data, emit, ctx);
        }
        gr_table_close(t);
    }
    return rc;
}

/* A sorted (key, hash) list from a ReplKeys. */
typedef struct kent {
    const uint8_t *k;
    size_t kl;
    uint64_t hash, hlc;
    bool tomb;
    bool seen; /* matched by one of our entries */
} kent;

static int kent_cmp(const void *a, const void *b)
{
    const kent *x = a, *y = b;
    size_t n = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->k, y->k, n);

    return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* An old tombstone: every member held it (gc_before); it may be gone anywhere. */
static bool old_tomb(bool tomb, uint64_t hlc, uint64_t gc_ms)
{
    return tomb && (hlc >> 16) < gc_ms;
}

typedef struct ship_ctx {
    kent *v;
    size_t n;
    gr_tbuf out;
    const char *table;
    uint64_t gc_ms;
    bool differ;
} ship_ctx;

static int ship_diff(void *ud, const gr_trent *e)
{
    ship_ctx *s = ud;
    kent key = {.k = e->key, .kl = e->klen};
    kent *f = bsearch(&key, s->v, s->n, sizeof(kent), kent_cmp);

    if (f) {
        f->seen = true;
        if (f->hash == e->hash) {
            return 0; /* they hold the same */
        }
    } else if (old_tomb(e->tomb, e->hlc, s->gc_ms)) {
        return 0; /* they purged it, as we are about to */
    }
    s->differ = true;
    return rec_put(&s->out, s->table, e);
}

/* node's answer to our digest: ship what it lacks or holds differently, and
 * record whether it showed the same table (old tombstones aside). */
static int on_keys(gr_trepl *r, const char *node, const Girder__ReplKeys *k, gr_trepl_emit_fn emit,
                   void *ctx)
{
    gr_table *t;
    ship_ctx s = {0};
    int rc;

    if (!k->table || k->buckets.len != 32 || gr_tables_open(r->ts, k->table, &t) < 0) {
        return 0;
    }
    if (!(s.v = calloc(k->n_entries ? k->n_entries : 1, sizeof(*s.v)))) {
        gr_table_close(t);
        return -ENOMEM;
    }
    for (size_t i = 0; i < k->n_entries; i++) {
        const Girder__ReplEntry *e = k->entries[i];

        s.v[i] = (kent){e->key.data, e->key.len, e->hash, e->hlc, e->tomb, false};
    }
    qsort(s.v, k->n_entries, sizeof(*s.v), kent_cmp);
    s.n = k->n_entries;
    s.table = gr_table_name(t);
    s.gc_ms = gr_trepl_gc_ms(r, s.table);
    s.differ = k->more;
    rc = gr_table_walk(t, k->buckets.data, ship_diff, &s);
    for (size_t i = 0; i < s.n && !s.differ; i++) { /* what they hold and we do not */
        s.differ = !s.v[i].seen && !old_tomb(s.v[i].tomb, s.v[i].hlc, s.gc_ms);
    }
    peer_note(r, node, s.table, s.differ, k->last);
    if (rc == 0 && s.out.len) {
        rc = ship(r, s.out.p, s.out.len, true, emit, ctx);
    }
    gr_tbuf_free(&s.out);
    free(s.v);
    gr_table_close(t);
    return rc == -ENOMEM ? rc : 0;
}

int gr_trepl_recv(gr_trepl *r, const char *node, const void *frame, gr_trepl_emit_fn emit,
                  void *ctx)
{
    const Girder__Frame *f = frame;

    switch (f->msg_case) {
    case GIRDER__FRAME__MSG_REPL_WRITES:
        return on_writes(r, node, f->repl_writes);
    case GIRDER__FRAME__MSG_REPL_DIGEST:
        return on_digest(r, node, f->repl_digest, emit, ctx);
    case GIRDER__FRAME__MSG_REPL_KEYS:
        return on_keys(r, node, f->repl_keys, emit, ctx);
    default:
        return 0;
    }
}

/* ---- status ------------------------------------------------------------------------------- */

uint64_t gr_trepl_pending(gr_trepl *r)
{
    uint64_t n;

    pthread_mutex_lock(&r->mu);
    n = r->qn;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t gr_trepl_peers(gr_trepl *r, const char *table, gr_trepl_peer *out, size_t max)
{
    size_t n;

    pthread_mutex_lock(&r->mu);
    n = r->npeers;
    for (size_t i = 0; i < n && i < max; i++) {
        const peer *p = &r->peers[i];

        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].node, sizeof(out[i].node), "%s", p->node);
        out[i].up = p->up;
        for (unsigned j = 0; j < p->ntabs; j++) {
            if (strcmp(p->tabs[j].name, table) == 0) {
                out[i].last_sync_ms = p->tabs[j].last_ms;
                out[i].equal = p->tabs[j].equal;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

uint64_t gr_trepl_seen_ms(gr_trepl *r, const char *table)
{
    uint64_t seen = UINT64_MAX;

    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->npeers; i++) {
        const peer *p = &r->peers[i];
        uint64_t e = 0;

        for (unsigned j = 0; j < p->ntabs; j++) {
            if (strcmp(p->tabs[j].name, table) == 0) {
                e = p->tabs[j].equal_ms;
            }
        }
        seen = e < seen ? e : seen;
    }
    pthread_mutex_unlock(&r->mu);
    return seen == UINT64_MAX ? 0 : seen; /* no member known: the horizon only */
}

uint64_t gr_trepl_overflows(gr_trepl *r)
{
    return atomic_load(&r->overflows);
}

void gr_trepl_set_queue_max(gr_trepl *r, size_t bytes)
{
    pthread_mutex_lock(&r->mu);
    r->qmax = bytes;
    pthread_mutex_unlock(&r->mu);
}

void gr_trepl_counters(gr_trepl *r, uint64_t *sent, uint64_t *received, uint64_t *merged)
{
    *sent = atomic_load(&r->sent);
    *received = atomic_load(&r->received);
    *merged = atomic_load(&r->merged);
}
