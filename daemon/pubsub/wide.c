/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wide.c - pub/sub, groups and names across the cluster: what every other
 * node is interested in (its interest set: the patterns it has subscribers
 * for), the members other nodes have in each group, the cluster-wide name
 * table (Erlang's global), and the messages the keepers of the nodes trade
 * to keep those in step.
 *
 * Design notes
 * - Keepers talk to keepers. Every node's keeper (registered GR_PUBSUB_NAME)
 *   is told of nodeup/nodedown (girder_monitor_nodes) and sends the other
 *   keepers ordinary process messages ({pubsub, Node} ! Msg), as Erlang's pg
 *   and global do between their scope processes: no frame kind of our own,
 *   the link's per-pair order and its nodedown are all that is needed.
 * - A publish crosses each link once: the publisher matches the topic
 *   against the remote interest index (a gr_tidx whose items are (node,
 *   pattern)), and sends one ["$psx_pub", Topic, Payload] per interested
 *   node to that node's keeper, from its own process when it has one, so one
 *   publisher's messages reach the remote keeper in order; the keeper fans
 *   out locally (gr_ps_publish_local), in order. Hence per publisher and
 *   subscriber order, at most once (a message on a link that goes down is
 *   lost, nothing is resent).
 * - State, not events, on the wire. A local change (a pattern gaining its
 *   first or losing its last subscriber, a pid's join count in a group, a
 *   name registered) only pokes the keeper (["$ps_int", ...] etc., sent under
 *   ps->lock). The keeper re-reads the current local state when it handles
 *   the poke and sends that state (present / absent, a count, a name's
 *   owner). Everything a keeper sends a node is in order and each message is
 *   the state at its sending, so the receiver converges on the truth however
 *   pokes and a full sync interleave: the sync sent at nodeup is the whole
 *   local state (interest, joins, names) and replaces what the receiver had
 *   for that node. The sync is a full exchange of the local state, not a
 *   delta (see docs/pubsub.md).
 * - Global names: registration is optimistic and local (no cluster lock):
 *   the name is taken if this node knows it, otherwise it is this node's and
 *   is announced. Two registrations of one name (concurrent, or made in two
 *   partitions) are resolved on every node by the same rule,
 *   gr_global_wins: the lower (registration time in ms, node name, pid
 *   serial) keeps it. The loser's node sends the loser
 *   ["$global_clash", Name, WinnerPid]. Names go when their process dies
 *   (the keeper monitors it) or their node goes down.
 *
 * Locks: w->lock (rwlock) guards the remote index, remote members, the name
 * table and the up-node list; the exported-interest counts are under
 * ps->lock; `named` is the keeper process's alone (no lock). Never take
 * ps->lock while holding w->lock.
 */
#include "pubsub/pubsub_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/idmap.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WIDE_NODES_MAX 256 /* distinct nodes one publish can reach */

/* One pattern another node has subscribers for. */
typedef struct rint {
    gr_tidx_item it;   /* in w->ridx; first member (cast from the item) */
    struct rint *next; /* w->ints */
    uint32_t node;     /* node index (runtime) */
    size_t plen;       /* pattern length */
    char pattern[];    /* NUL-terminated */
} rint;

/* A pid of another node with joins in a group. */
typedef struct rpg {
    uint32_t node;  /* its node index */
    girder_pid pid; /* the member */
    uint32_t count; /* joins */
    char *scope;    /* owned */
    char *group;    /* owned */
} rpg;

/* A cluster-wide name. */
typedef struct gname {
    girder_pid pid;                /* owner; pid.node is its home node */
    uint64_t time_ms;              /* registration time (wall clock, home node) */
    uint32_t hash;                 /* fnv of name (its slot in w->nidx) */
    bool mark;                     /* apply_sync: named in the sync */
    char name[GR_PG_NAME_MAX + 1]; /* NUL-terminated */
} gname;

/* A local pattern's subscription count (exported interest). */
typedef struct icount {
    struct icount *next; /* chain */
    uint32_t count;      /* local subscriptions with this pattern */
    size_t plen;         /* pattern length */
    char pattern[];      /* NUL-terminated */
} icount;

struct gr_ps_wide {
    pthread_rwlock_t lock; /* below, except `exp` */
    gr_tidx *ridx;         /* remote interest */
    rint *ints;            /* every remote interest item */
    size_t nints;          /* entries of ints */
    rpg *pg;               /* remote members */
    size_t npg, cappg;     /* used / allocated */
    gname *names;          /* cluster-wide names, dense (listing, syncs) */
    size_t nnames, capnames;
    uint32_t *nidx; /* name -> names[slot - 1]; 0 empty (open addressing) */
    size_t nslots;  /* power of two, > 2 * nnames; 0 before the first name */
    uint32_t *up;   /* nodes up, as the keeper heard */
    size_t nup, capup;
    icount *exp[256]; /* exported interest, under ps->lock */
    gr_idmap named;   /* keeper only: local pids it monitors for their names (value:
                         the monitor's ref), one monitor per pid however many names */
};

/* ---- helpers ------------------------------------------------------------------- */

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap ? *cap : 8;
    void *p;

    if (need <= *cap) {
        return 0;
    }
    while (c < need) {
        c *= 2;
    }
    if ((p = realloc(*v, c * elem)) == NULL) {
        return -ENOMEM;
    }
    *v = p;
    *cap = c;
    return 0;
}

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    }
    return h;
}

static bool str_is(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0;
}

/* NUL-terminated copy of a 1..GR_PG_NAME_MAX-byte string without NUL. */
static int get_name(const msgpack_object *o, char *buf)
{
    if (!str_is(o) || o->via.str.size > GR_PG_NAME_MAX ||
        memchr(o->via.str.ptr, 0, o->via.str.size) != NULL) {
        return GR_EBADARG;
    }
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = 0;
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *node_name(gr_pubsub *ps, uint32_t node)
{
    size_t len;

    return gr_rt_node_at(ps->rt, node, &len);
}

/* ---- life ----------------------------------------------------------------------- */

int gr_ps_wide_new(gr_pubsub *ps)
{
    gr_ps_wide *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return -ENOMEM;
    }
    pthread_rwlock_init(&w->lock, NULL);
    if (gr_tidx_new(&w->ridx) < 0) {
        pthread_rwlock_destroy(&w->lock);
        free(w);
        return -ENOMEM;
    }
    ps->w = w;
    return 0;
}

static void rpg_clear(rpg *e)
{
    free(e->scope);
    free(e->group);
    e->scope = e->group = NULL;
}

void gr_ps_wide_free(gr_pubsub *ps)
{
    gr_ps_wide *w = ps->w;

    if (w == NULL) {
        return;
    }
    for (rint *ri = w->ints, *next; ri; ri = next) {
        next = ri->next;
        gr_tidx_del(w->ridx, &ri->it);
        free(ri);
    }
    gr_tidx_free(w->ridx);
    for (size_t i = 0; i < w->npg; i++) {
        rpg_clear(&w->pg[i]);
    }
    free(w->pg);
    free(w->names);
    free(w->nidx);
    free(w->up);
    gr_idmap_clear(&w->named);
    for (size_t b = 0; b < 256; b++) {
        for (icount *c = w->exp[b], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    }
    pthread_rwlock_destroy(&w->lock);
    free(w);
    ps->w = NULL;
}

/* ---- pokes to the keeper (callers hold ps->lock) ----------------------------------- */

/* [tag, strings...] (and a pid if pid.id != 0) to the keeper. Dropped if the
 * keeper is gone: its successor's nodeup syncs cover it. */
static void poke_locked(gr_pubsub *ps, const char *tag, const char *a, size_t alen, const char *b,
                        girder_pid pid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    if (ps->keeper.id == 0) {
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1 + (a != NULL) + (b != NULL) + (pid.id != 0));
    msgpack_pack_str_with_body(&pk, tag, strlen(tag));
    if (a != NULL) {
        msgpack_pack_str_with_body(&pk, a, alen);
    }
    if (b != NULL) {
        msgpack_pack_str_with_body(&pk, b, strlen(b));
    }
    if (pid.id != 0) {
        gr_ps_pack_pid(ps, &pk, pid);
    }
    if ((m = girder_msg_new(sb.data, sb.size)) != NULL && gr_rt_send(ps->rt, ps->keeper, m) < 0) {
        girder_msg_unref(m);
    }
    msgpack_sbuffer_destroy(&sb);
}

static icount **exp_find_locked(gr_ps_wide *w, const char *pattern, size_t len)
{
    icount **pp = &w->exp[fnv(pattern, len) & 255u];

    while (*pp && !((*pp)->plen == len && memcmp((*pp)->pattern, pattern, len) == 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

void gr_ps_wide_interest_locked(gr_pubsub *ps, const char *pattern, size_t len, int delta)
{
    icount **pp = exp_find_locked(ps->w, pattern, len), *c = *pp;

    if (c == NULL) {
        if (delta < 0 || (c = calloc(1, sizeof(*c) + len + 1)) == NULL) {
            return; /* no memory: other nodes miss this pattern until a sync */
        }
        memcpy(c->pattern, pattern, len);
        c->plen = len;
        *pp = c;
    }
    if (delta > 0) {
        c->count++;
    } else if (c->count > 0) {
        c->count--;
    }
    if (c->count == 0) {
        *pp = c->next;
        free(c);
        poke_locked(ps, "$ps_int", pattern, len, NULL, (girder_pid){0});
    } else if (c->count == 1 && delta > 0) {
        poke_locked(ps, "$ps_int", pattern, len, NULL, (girder_pid){0});
    }
}

void gr_ps_wide_pg_changed_locked(gr_pubsub *ps, const char *scope, const char *group,
                                  girder_pid pid)
{
    poke_locked(ps, "$ps_pgc", scope, strlen(scope), group, pid);
}

/* ---- sending to other keepers (keeper process) -------------------------------------- */

static void send_node(girder_ctx *ctx, gr_pubsub *ps, uint32_t node, girder_msg *m)
{
    const char *name = node_name(ps, node);

    girder_msg_ref(m);
    if (name == NULL || girder_send_name_node(ctx, GR_PUBSUB_NAME, name, m) < 0) {
        girder_msg_unref(m);
    }
}

/* sb's bytes to every node up (keeper only). */
static void broadcast(girder_ctx *ctx, gr_pubsub *ps, msgpack_sbuffer *sb)
{
    gr_ps_wide *w = ps->w;
    girder_msg *m = girder_msg_new(sb->data, sb->size);
    uint32_t *up = NULL;
    size_t n;

    if (m == NULL) {
        return;
    }
    pthread_rwlock_rdlock(&w->lock);
    n = w->nup;
    if (n > 0 && (up = malloc(n * sizeof(*up))) != NULL) {
        memcpy(up, w->up, n * sizeof(*up));
    }
    pthread_rwlock_unlock(&w->lock);
    for (size_t i = 0; up != NULL && i < n; i++) {
        send_node(ctx, ps, up[i], m);
    }
    free(up);
    girder_msg_unref(m);
}

static void pack_head(msgpack_packer *pk, gr_pubsub *ps, const char *tag, uint32_t n)
{
    const char *self = gr_rt_node_name(ps->rt);

    msgpack_pack_array(pk, n);
    msgpack_pack_str_with_body(pk, tag, strlen(tag));
    msgpack_pack_str_with_body(pk, self, strlen(self));
}

/* ---- publish ------------------------------------------------------------------------ */

typedef struct nodeset {
    uint32_t v[WIDE_NODES_MAX];
    unsigned n;
} nodeset;

static bool collect_node(gr_tidx_item *it, void *ud)
{
    const rint *ri = (const rint *)it;
    nodeset *s = ud;

    for (unsigned i = 0; i < s->n; i++) {
        if (s->v[i] == ri->node) {
            return true;
        }
    }
    if (s->n < WIDE_NODES_MAX) {
        s->v[s->n++] = ri->node;
    }
    return true;
}

int gr_ps_wide_nodes_for(gr_pubsub *ps, const char *topic, size_t len, uint32_t *ret_nodes,
                         size_t max)
{
    gr_ps_wide *w = ps->w;
    nodeset s;
    int r;

    s.n = 0;
    pthread_rwlock_rdlock(&w->lock);
    r = w->nints ? gr_tidx_match(w->ridx, topic, len, collect_node, &s) : 0;
    pthread_rwlock_unlock(&w->lock);
    if (r < 0) {
        return r;
    }
    if (s.n > max) {
        s.n = (unsigned)max;
    }
    memcpy(ret_nodes, s.v, s.n * sizeof(*ret_nodes));
    return (int)s.n;
}

int gr_ps_wide_publish(gr_pubsub *ps, girder_ctx *ctx, const char *topic, size_t len,
                       const girder_msg *payload, uint32_t *ret_nodes)
{
    nodeset s;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    int n;

    *ret_nodes = 0;
    if ((n = gr_ps_wide_nodes_for(ps, topic, len, s.v, WIDE_NODES_MAX)) <= 0) {
        return n;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "$psx_pub", 8);
    msgpack_pack_str_with_body(&pk, topic, len);
    msgpack_sbuffer_write(&sb, girder_msg_data(payload), girder_msg_size(payload));
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (m == NULL) {
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        const char *name = node_name(ps, s.v[i]);
        int r;

        if (name == NULL) {
            continue;
        }
        girder_msg_ref(m);
        r = ctx ? girder_send_name_node(ctx, GR_PUBSUB_NAME, name, m)
                : gr_rt_send_name_node(ps->rt, GR_PUBSUB_NAME, name, m);
        if (r < 0) {
            girder_msg_unref(m);
        } else {
            (*ret_nodes)++;
        }
    }
    girder_msg_unref(m);
    return 0;
}

/* ---- remote state (keeper; w->lock taken here) --------------------------------------- */

static void rint_set(gr_ps_wide *w, uint32_t node, const char *p, size_t len, bool present)
{
    rint **pp = &w->ints, *ri;

    while (*pp &&
           !((*pp)->node == node && (*pp)->plen == len && memcmp((*pp)->pattern, p, len) == 0)) {
        pp = &(*pp)->next;
    }
    if (*pp != NULL && !present) {
        ri = *pp;
        *pp = ri->next;
        gr_tidx_del(w->ridx, &ri->it);
        free(ri);
        w->nints--;
    } else if (*pp == NULL && present && gr_topic_check(p, len, true) == GR_TOPIC_OK &&
               (ri = calloc(1, sizeof(*ri) + len + 1)) != NULL) {
        memcpy(ri->pattern, p, len);
        ri->plen = len;
        ri->node = node;
        if (gr_tidx_add(w->ridx, ri->pattern, len, &ri->it) < 0) {
            free(ri);
            return;
        }
        ri->next = w->ints;
        w->ints = ri;
        w->nints++;
    }
}

static void rpg_set(gr_ps_wide *w, uint32_t node, const char *scope, const char *group,
                    girder_pid pid, uint32_t count)
{
    size_t i;

    for (i = 0; i < w->npg; i++) {
        rpg *e = &w->pg[i];

        if (girder_pid_eq(e->pid, pid) && strcmp(e->scope, scope) == 0 &&
            strcmp(e->group, group) == 0) {
            break;
        }
    }
    if (i < w->npg) {
        if (count > 0) {
            w->pg[i].count = count;
            return;
        }
        rpg_clear(&w->pg[i]);
        w->pg[i] = w->pg[--w->npg];
        memset(&w->pg[w->npg], 0, sizeof(w->pg[0]));
        return;
    }
    if (count == 0 || grow((void **)&w->pg, &w->cappg, w->npg + 1, sizeof(*w->pg)) < 0) {
        return;
    }
    rpg e = {
        .node = node, .pid = pid, .count = count, .scope = strdup(scope), .group = strdup(group)};

    if (e.scope == NULL || e.group == NULL) {
        rpg_clear(&e);
        return;
    }
    w->pg[w->npg++] = e;
}

/* ---- the name table: a dense array indexed by an open-addressing hash ---------------- */

/* The slot of name in w->nidx: the one holding it, or the empty one where it
 * would go (linear probing). w->nslots > 0. Caller holds w->lock. */
static size_t name_slot(const gr_ps_wide *w, const char *name, uint32_t h)
{
    size_t mask = w->nslots - 1, i = h & mask;

    while (w->nidx[i] != 0) {
        const gname *e = &w->names[w->nidx[i] - 1];

        if (e->hash == h && strcmp(e->name, name) == 0) {
            break;
        }
        i = (i + 1) & mask;
    }
    return i;
}

/* The slot holding names[k]. Caller holds w->lock; k < nnames. */
static size_t name_slot_of(const gr_ps_wide *w, size_t k)
{
    size_t mask = w->nslots - 1, i = w->names[k].hash & mask;

    while (w->nidx[i] != k + 1) {
        i = (i + 1) & mask;
    }
    return i;
}

/* Make room for one more name: the array and, at half load, a table twice
 * the size, rebuilt. 0 or -ENOMEM (nothing changed). Caller holds w->lock
 * for writing. */
static int name_reserve(gr_ps_wide *w)
{
    size_t ns = w->nslots ? w->nslots : 16;
    uint32_t *t;
    int r;

    if ((r = grow((void **)&w->names, &w->capnames, w->nnames + 1, sizeof(*w->names))) < 0) {
        return r;
    }
    while (ns < 2 * (w->nnames + 1)) {
        ns *= 2;
    }
    if (ns == w->nslots) {
        return 0;
    }
    if (w->nnames + 1 > UINT32_MAX - 1 || (t = calloc(ns, sizeof(*t))) == NULL) {
        return -ENOMEM;
    }
    free(w->nidx);
    w->nidx = t;
    w->nslots = ns;
    for (size_t k = 0; k < w->nnames; k++) {
        size_t i = w->names[k].hash & (ns - 1);

        while (t[i] != 0) {
            i = (i + 1) & (ns - 1);
        }
        t[i] = (uint32_t)(k + 1);
    }
    return 0;
}

static gname *name_find(const gr_ps_wide *w, const char *name)
{
    size_t i;

    if (w->nslots == 0) {
        return NULL;
    }
    i = name_slot(w, name, fnv(name, strlen(name)));
    return w->nidx[i] ? &w->names[w->nidx[i] - 1] : NULL;
}

/* Add name (not in the table). 0 or -ENOMEM. Caller holds w->lock for writing. */
static int name_add(gr_ps_wide *w, const char *name, girder_pid pid, uint64_t t)
{
    uint32_t h = fnv(name, strlen(name));
    gname *e;
    int r;

    if ((r = name_reserve(w)) < 0) {
        return r;
    }
    e = &w->names[w->nnames];
    memset(e, 0, offsetof(gname, name));
    memcpy(e->name, name, strlen(name) + 1);
    e->pid = pid;
    e->time_ms = t;
    e->hash = h;
    w->nidx[name_slot(w, name, h)] = (uint32_t)++w->nnames;
    return 0;
}

/* Remove names[k]: its slot is emptied with a backward shift (no
 * tombstones), and the last entry moves into k. Caller holds w->lock for
 * writing. */
static void name_remove_at(gr_ps_wide *w, size_t k)
{
    size_t mask = w->nslots - 1, i = name_slot_of(w, k), j = i;
    size_t last = w->nnames - 1;

    for (;;) {
        size_t home;

        j = (j + 1) & mask;
        if (w->nidx[j] == 0) {
            break;
        }
        home = w->names[w->nidx[j] - 1].hash & mask;
        /* entry j may fill hole i unless its home lies cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            w->nidx[i] = w->nidx[j];
            i = j;
        }
    }
    w->nidx[i] = 0;
    if (k != last) {
        w->nidx[name_slot_of(w, last)] = (uint32_t)(k + 1);
        w->names[k] = w->names[last];
    }
    w->nnames--;
}

/* ---- node state ----------------------------------------------------------------- */

/* Drop everything node held (nodedown, or before its full sync). */
static void drop_node(gr_ps_wide *w, uint32_t node, bool names)
{
    for (rint **pp = &w->ints; *pp;) {
        rint *ri = *pp;

        if (ri->node == node) {
            *pp = ri->next;
            gr_tidx_del(w->ridx, &ri->it);
            free(ri);
            w->nints--;
        } else {
            pp = &ri->next;
        }
    }
    for (size_t i = 0; i < w->npg;) {
        if (w->pg[i].node == node) {
            rpg_clear(&w->pg[i]);
            w->pg[i] = w->pg[--w->npg];
            memset(&w->pg[w->npg], 0, sizeof(w->pg[0])); /* the vacated slot owns nothing */
        } else {
            i++;
        }
    }
    for (size_t i = 0; names && i < w->nnames;) {
        if (w->names[i].pid.node == node) {
            name_remove_at(w, i);
        } else {
            i++;
        }
    }
}

bool gr_global_wins(uint64_t ta, const char *node_a, uint64_t serial_a, uint64_t tb,
                    const char *node_b, uint64_t serial_b)
{
    int c;

    if (ta != tb) {
        return ta < tb;
    }
    if ((c = strcmp(node_a, node_b)) != 0) {
        return c < 0;
    }
    return serial_a <= serial_b;
}

/* Apply a registration heard from another node (or a sync). A local loser is
 * told ["$global_clash", Name, Winner] and its loss announced. */
static void name_heard(girder_ctx *ctx, gr_pubsub *ps, const char *name, girder_pid pid, uint64_t t)
{
    gr_ps_wide *w = ps->w;
    girder_pid loser = {0, 0, 0};
    gname *e;

    pthread_rwlock_wrlock(&w->lock);
    if ((e = name_find(w, name)) == NULL) {
        (void)name_add(w, name, pid, t); /* out of memory: the next sync brings it */
    } else if (girder_pid_eq(e->pid, pid)) {
        e->time_ms = t;
    } else if (gr_global_wins(t, node_name(ps, pid.node), pid.id, e->time_ms,
                              node_name(ps, e->pid.node), e->pid.id)) {
        loser = e->pid;
        e->pid = pid;
        e->time_ms = t;
    }
    pthread_rwlock_unlock(&w->lock);
    if (loser.id != 0 && loser.node == 0) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        girder_msg *m;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, "$global_clash", 13);
        msgpack_pack_str_with_body(&pk, name, strlen(name));
        gr_ps_pack_pid(ps, &pk, pid);
        if ((m = girder_msg_new(sb.data, sb.size)) != NULL && girder_send(ctx, loser, m) < 0) {
            girder_msg_unref(m);
        }
        msgpack_sbuffer_clear(&sb);
        pack_head(&pk, ps, "$psx_gunreg", 4);
        msgpack_pack_str_with_body(&pk, name, strlen(name));
        gr_ps_pack_pid(ps, &pk, loser);
        broadcast(ctx, ps, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void name_drop(gr_ps_wide *w, const char *name, girder_pid pid)
{
    gname *e;

    pthread_rwlock_wrlock(&w->lock);
    if ((e = name_find(w, name)) != NULL && girder_pid_eq(e->pid, pid)) {
        name_remove_at(w, (size_t)(e - w->names));
    }
    pthread_rwlock_unlock(&w->lock);
}

/* ---- global names API ----------------------------------------------------------------- */

int gr_global_register(gr_pubsub *ps, const char *name, girder_pid pid)
{
    gr_ps_wide *w = ps->w;
    size_t n = name ? strlen(name) : 0;
    int r = 0;

    if (n == 0 || n > GR_PG_NAME_MAX || pid.node != 0 || pid.id == 0) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock); /* orders the poke with other pokes */
    pthread_rwlock_wrlock(&w->lock);
    if (name_find(w, name) != NULL) {
        r = GR_ENAMETAKEN;
    } else {
        r = name_add(w, name, pid, now_ms());
    }
    pthread_rwlock_unlock(&w->lock);
    if (r == 0) {
        poke_locked(ps, "$ps_greg", name, n, NULL, pid);
    }
    pthread_mutex_unlock(&ps->lock);
    return r;
}

int gr_global_unregister(gr_pubsub *ps, const char *name)
{
    gr_ps_wide *w = ps->w;
    girder_pid pid = {0, 0, 0};
    gname *e;

    if (name == NULL || name[0] == '\0' || strlen(name) > GR_PG_NAME_MAX) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    pthread_rwlock_wrlock(&w->lock);
    if ((e = name_find(w, name)) != NULL && e->pid.node == 0) {
        pid = e->pid;
        name_remove_at(w, (size_t)(e - w->names));
    }
    pthread_rwlock_unlock(&w->lock);
    if (pid.id != 0) {
        poke_locked(ps, "$ps_gunreg", name, strlen(name), NULL, pid);
    }
    pthread_mutex_unlock(&ps->lock);
    return pid.id != 0 ? 0 : -ENOENT;
}

int gr_global_whereis(gr_pubsub *ps, const char *name, girder_pid *ret_pid)
{
    gr_ps_wide *w = ps->w;
    gname *e;
    int r = -ENOENT;

    if (name == NULL || name[0] == '\0' || strlen(name) > GR_PG_NAME_MAX) {
        return GR_EBADARG;
    }
    pthread_rwlock_rdlock(&w->lock);
    if ((e = name_find(w, name)) != NULL) {
        *ret_pid = e->pid;
        r = 0;
    }
    pthread_rwlock_unlock(&w->lock);
    return r;
}

int gr_global_send(gr_pubsub *ps, girder_ctx *ctx, const char *name, girder_msg *msg)
{
    girder_pid pid;
    int r;

    if ((r = gr_global_whereis(ps, name, &pid)) < 0) {
        return r == -ENOENT ? GR_ENONAME : r;
    }
    return ctx ? girder_send(ctx, pid, msg) : gr_rt_send(ps->rt, pid, msg);
}

int gr_global_names(gr_pubsub *ps, gr_global_info **ret, size_t *ret_n)
{
    gr_ps_wide *w = ps->w;
    gr_global_info *v = NULL;
    size_t n;

    pthread_rwlock_rdlock(&w->lock);
    n = w->nnames;
    if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
        pthread_rwlock_unlock(&w->lock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(v[i].name, w->names[i].name, sizeof(v[i].name));
        v[i].pid = w->names[i].pid;
        v[i].time_ms = w->names[i].time_ms;
    }
    pthread_rwlock_unlock(&w->lock);
    *ret = v;
    *ret_n = n;
    return 0;
}

/* ---- groups across nodes ----------------------------------------------------------- */

int gr_pg_members_all(gr_pubsub *ps, const char *scope, const char *group, girder_pid **ret_pids,
                      size_t *ret_n)
{
    gr_ps_wide *w = ps->w;
    girder_pid *v = NULL;
    size_t n = 0, cap = 0;
    int r;

    if ((r = gr_pg_members(ps, scope, group, &v, &n)) < 0) {
        return r;
    }
    cap = n;
    pthread_rwlock_rdlock(&w->lock);
    for (size_t i = 0; i < w->npg && r == 0; i++) {
        const rpg *e = &w->pg[i];

        if (strcmp(e->scope, scope) != 0 || strcmp(e->group, group) != 0) {
            continue;
        }
        for (uint32_t c = 0; c < e->count && r == 0; c++) {
            if ((r = grow((void **)&v, &cap, n + 1, sizeof(*v))) == 0) {
                v[n++] = e->pid;
            }
        }
    }
    pthread_rwlock_unlock(&w->lock);
    if (r < 0) {
        free(v);
        return r;
    }
    *ret_pids = v;
    *ret_n = n;
    return 0;
}

void gr_ps_wide_counters(gr_pubsub *ps, size_t *ret_nodes, size_t *ret_interest,
                         size_t *ret_rmembers, size_t *ret_names)
{
    gr_ps_wide *w = ps->w;

    pthread_rwlock_rdlock(&w->lock);
    *ret_nodes = w->nup;
    *ret_interest = w->nints;
    *ret_rmembers = w->npg;
    *ret_names = w->nnames;
    pthread_rwlock_unlock(&w->lock);
}

/* ---- the keeper's side ---------------------------------------------------------------- */

void gr_ps_wide_keeper_init(girder_ctx *ctx, gr_pubsub *ps)
{
    gr_idmap_clear(&ps->w->named);         /* a predecessor's monitors died with it */
    (void)girder_monitor_nodes(ctx, true); /* no distribution: nothing to hear */
}

/* The whole local state to node (after its nodeup). */
static void send_sync(girder_ctx *ctx, gr_pubsub *ps, uint32_t node)
{
    gr_ps_wide *w = ps->w;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    size_t nexp = 0, nloc = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_head(&pk, ps, "$psx_sync", 5);
    pthread_mutex_lock(&ps->lock);
    for (size_t b = 0; b < 256; b++) {
        for (icount *c = w->exp[b]; c; c = c->next) {
            nexp++;
        }
    }
    msgpack_pack_array(&pk, (uint32_t)nexp);
    for (size_t b = 0; b < 256; b++) {
        for (icount *c = w->exp[b]; c; c = c->next) {
            msgpack_pack_str_with_body(&pk, c->pattern, c->plen);
        }
    }
    gr_pg_pack_local_locked(ps, &pk);
    pthread_rwlock_rdlock(&w->lock);
    for (size_t i = 0; i < w->nnames; i++) {
        nloc += w->names[i].pid.node == 0;
    }
    msgpack_pack_array(&pk, (uint32_t)nloc);
    for (size_t i = 0; i < w->nnames; i++) {
        if (w->names[i].pid.node == 0) {
            msgpack_pack_array(&pk, 3);
            msgpack_pack_str_with_body(&pk, w->names[i].name, strlen(w->names[i].name));
            gr_ps_pack_pid(ps, &pk, w->names[i].pid);
            msgpack_pack_uint64(&pk, w->names[i].time_ms);
        }
    }
    pthread_rwlock_unlock(&w->lock);
    pthread_mutex_unlock(&ps->lock);
    if ((m = girder_msg_new(sb.data, sb.size)) != NULL) {
        send_node(ctx, ps, node, m);
        girder_msg_unref(m);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void on_nodeup(girder_ctx *ctx, gr_pubsub *ps, uint32_t node)
{
    gr_ps_wide *w = ps->w;
    bool known = false;

    pthread_rwlock_wrlock(&w->lock);
    for (size_t i = 0; i < w->nup; i++) {
        known |= w->up[i] == node;
    }
    if (!known && grow((void **)&w->up, &w->capup, w->nup + 1, sizeof(*w->up)) == 0) {
        w->up[w->nup++] = node;
    }
    pthread_rwlock_unlock(&w->lock);
    send_sync(ctx, ps, node);
}

static void on_nodedown(gr_pubsub *ps, uint32_t node)
{
    gr_ps_wide *w = ps->w;

    pthread_rwlock_wrlock(&w->lock);
    for (size_t i = 0; i < w->nup; i++) {
        if (w->up[i] == node) {
            w->up[i] = w->up[--w->nup];
            break;
        }
    }
    drop_node(w, node, true);
    pthread_rwlock_unlock(&w->lock);
}

void gr_ps_wide_pid_monitor_down(girder_ctx *ctx, gr_pubsub *ps, girder_pid pid, girder_ref mref)
{
    girder_pid held;

    if (gr_idmap_get(&ps->w->named, pid, &held) && girder_ref_eq(gr_pid_as_ref(held), mref)) {
        gr_ps_wide_pid_down(ctx, ps, pid);
    }
}

void gr_ps_wide_pid_down(girder_ctx *ctx, gr_pubsub *ps, girder_pid pid)
{
    gr_ps_wide *w = ps->w;
    char(*gone)[GR_PG_NAME_MAX + 1] = NULL;
    size_t ngone = 0;

    if (pid.node != 0) {
        return;
    }
    gr_idmap_del(&w->named, pid, NULL); /* its monitor fired */
    pthread_rwlock_wrlock(&w->lock);
    for (size_t i = 0; i < w->nnames;) {
        if (girder_pid_eq(w->names[i].pid, pid)) {
            char(*g)[GR_PG_NAME_MAX + 1] = realloc(gone, (ngone + 1) * sizeof(*gone));

            if (g != NULL) {
                gone = g;
                memcpy(gone[ngone++], w->names[i].name, sizeof(*gone));
            }
            name_remove_at(w, i);
        } else {
            i++;
        }
    }
    pthread_rwlock_unlock(&w->lock);
    for (size_t i = 0; i < ngone; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_head(&pk, ps, "$psx_gunreg", 4);
        msgpack_pack_str_with_body(&pk, gone[i], strlen(gone[i]));
        gr_ps_pack_pid(ps, &pk, pid);
        broadcast(ctx, ps, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    free(gone);
}

/* The node index a keeper message names (its a[1]), interned. */
static int from_node(gr_pubsub *ps, const msgpack_object *o, uint32_t *ret)
{
    if (!str_is(o)) {
        return GR_EBADARG;
    }
    return gr_rt_node_intern(ps->rt, o->via.str.ptr, o->via.str.size, ret);
}

static void apply_sync(girder_ctx *ctx, gr_pubsub *ps, uint32_t node, const msgpack_object *a)
{
    gr_ps_wide *w = ps->w;
    char scope[GR_PG_NAME_MAX + 1], group[GR_PG_NAME_MAX + 1];
    girder_pid pid;

    if (a[2].type != MSGPACK_OBJECT_ARRAY || a[3].type != MSGPACK_OBJECT_ARRAY ||
        a[4].type != MSGPACK_OBJECT_ARRAY) {
        return;
    }
    pthread_rwlock_wrlock(&w->lock);
    drop_node(w, node, false);
    for (uint32_t i = 0; i < a[2].via.array.size; i++) {
        const msgpack_object *p = &a[2].via.array.ptr[i];

        if (str_is(p)) {
            rint_set(w, node, p->via.str.ptr, p->via.str.size, true);
        }
    }
    for (uint32_t i = 0; i < a[3].via.array.size; i++) {
        const msgpack_object *e = &a[3].via.array.ptr[i];

        if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 4 &&
            get_name(&e->via.array.ptr[0], scope) == 0 &&
            get_name(&e->via.array.ptr[1], group) == 0 &&
            girder_get_pid(ctx, &e->via.array.ptr[2], &pid) == 0 && pid.node == node &&
            e->via.array.ptr[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            e->via.array.ptr[3].via.u64 <= UINT32_MAX) {
            rpg_set(w, node, scope, group, pid, (uint32_t)e->via.array.ptr[3].via.u64);
        }
    }
    /* names of node that it no longer holds go; the rest are heard again
     * (marked through the index: linear in the names, however many) */
    for (uint32_t j = 0; j < a[4].via.array.size; j++) {
        const msgpack_object *e = &a[4].via.array.ptr[j];
        gname *x;

        if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 3 &&
            get_name(&e->via.array.ptr[0], scope) == 0 && (x = name_find(w, scope)) != NULL &&
            x->pid.node == node) {
            x->mark = true;
        }
    }
    for (size_t i = 0; i < w->nnames;) {
        if (w->names[i].pid.node == node && !w->names[i].mark) {
            name_remove_at(w, i);
        } else {
            w->names[i++].mark = false;
        }
    }
    pthread_rwlock_unlock(&w->lock);
    for (uint32_t i = 0; i < a[4].via.array.size; i++) {
        const msgpack_object *e = &a[4].via.array.ptr[i];

        if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 3 &&
            get_name(&e->via.array.ptr[0], scope) == 0 &&
            girder_get_pid(ctx, &e->via.array.ptr[1], &pid) == 0 && pid.node == node &&
            e->via.array.ptr[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            name_heard(ctx, ps, scope, pid, e->via.array.ptr[2].via.u64);
        }
    }
}

/* Local pokes: send the current state of what changed to every node up. */
static void on_poke(girder_ctx *ctx, gr_pubsub *ps, const msgpack_object *a, uint32_t n)
{
    gr_ps_wide *w = ps->w;
    char s1[GR_PG_NAME_MAX + 1], s2[GR_PG_NAME_MAX + 1];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_pid pid;
    bool send = false;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (gr_term_is_str(&a[0], "$ps_int") && n == 2 && str_is(&a[1])) {
        bool present;

        pthread_mutex_lock(&ps->lock);
        present = *exp_find_locked(w, a[1].via.str.ptr, a[1].via.str.size) != NULL;
        pthread_mutex_unlock(&ps->lock);
        pack_head(&pk, ps, "$psx_int", 4);
        msgpack_pack_object(&pk, a[1]);
        if (present) {
            msgpack_pack_true(&pk);
        } else {
            msgpack_pack_false(&pk);
        }
        send = true;
    } else if (gr_term_is_str(&a[0], "$ps_pgc") && n == 4 && get_name(&a[1], s1) == 0 &&
               get_name(&a[2], s2) == 0 && girder_get_pid(ctx, &a[3], &pid) == 0) {
        uint32_t count = gr_pg_joins(ps, s1, s2, pid);

        pack_head(&pk, ps, "$psx_pg", 6);
        msgpack_pack_object(&pk, a[1]);
        msgpack_pack_object(&pk, a[2]);
        msgpack_pack_object(&pk, a[3]);
        msgpack_pack_uint32(&pk, count);
        send = true;
    } else if (gr_term_is_str(&a[0], "$ps_greg") && n == 3 && get_name(&a[1], s1) == 0 &&
               girder_get_pid(ctx, &a[2], &pid) == 0) {
        gname e = {0};
        bool held = false;
        girder_ref mref;

        pthread_rwlock_rdlock(&w->lock);
        gname *x = name_find(w, s1);

        if (x != NULL && girder_pid_eq(x->pid, pid)) {
            e = *x;
            held = true;
        }
        pthread_rwlock_unlock(&w->lock);
        /* its DOWN drops the name; one monitor per pid, kept until it dies
         * (a pid that registers and unregisters in a loop is monitored once) */
        if (held && !gr_idmap_get(&w->named, pid, NULL) && girder_monitor(ctx, pid, &mref) == 0) {
            (void)gr_idmap_put(&w->named, pid, gr_ref_as_pid(mref)); /* ENOMEM: again next time */
        }
        if (held) {
            pack_head(&pk, ps, "$psx_greg", 5);
            msgpack_pack_object(&pk, a[1]);
            msgpack_pack_object(&pk, a[2]);
            msgpack_pack_uint64(&pk, e.time_ms);
            send = true;
        }
    } else if (gr_term_is_str(&a[0], "$ps_gunreg") && n == 3 && str_is(&a[1])) {
        pack_head(&pk, ps, "$psx_gunreg", 4);
        msgpack_pack_object(&pk, a[1]);
        msgpack_pack_object(&pk, a[2]);
        send = true;
    }
    if (send) {
        broadcast(ctx, ps, &sb);
    }
    msgpack_sbuffer_destroy(&sb);
}

bool gr_ps_wide_handle(girder_ctx *ctx, gr_pubsub *ps, const msgpack_object *a, uint32_t n)
{
    gr_ps_wide *w = ps->w;
    char s1[GR_PG_NAME_MAX + 1], s2[GR_PG_NAME_MAX + 1];
    girder_pid pid;
    uint32_t node;

    if (a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size < 4) {
        return false;
    }
    if (gr_term_is_str(&a[0], "$psx_pub") && n == 3 && str_is(&a[1])) {
        girder_msg *m = girder_msg_from_object(&a[2]);

        if (m != NULL) {
            (void)gr_ps_publish_local(ps, ctx, a[1].via.str.ptr, a[1].via.str.size, m, NULL);
            girder_msg_unref(m);
        }
        return true;
    }
    if (memcmp(a[0].via.str.ptr, "$ps_", 4) == 0) {
        on_poke(ctx, ps, a, n);
        return true;
    }
    if (gr_term_is_str(&a[0], "nodeup") && n == 2 && from_node(ps, &a[1], &node) == 0) {
        if (node != 0) {
            on_nodeup(ctx, ps, node);
        }
        return true;
    }
    if (gr_term_is_str(&a[0], "nodedown") && n >= 2 && from_node(ps, &a[1], &node) == 0) {
        if (node != 0) {
            on_nodedown(ps, node);
        }
        return true;
    }
    if (a[0].via.str.size < 5 || memcmp(a[0].via.str.ptr, "$psx_", 5) != 0 || n < 2 ||
        from_node(ps, &a[1], &node) < 0 || node == 0) {
        return false;
    }
    if (gr_term_is_str(&a[0], "$psx_sync") && n == 5) {
        apply_sync(ctx, ps, node, a);
    } else if (gr_term_is_str(&a[0], "$psx_int") && n == 4 && str_is(&a[2]) &&
               a[3].type == MSGPACK_OBJECT_BOOLEAN) {
        pthread_rwlock_wrlock(&w->lock);
        rint_set(w, node, a[2].via.str.ptr, a[2].via.str.size, a[3].via.boolean);
        pthread_rwlock_unlock(&w->lock);
    } else if (gr_term_is_str(&a[0], "$psx_pg") && n == 6 && get_name(&a[2], s1) == 0 &&
               get_name(&a[3], s2) == 0 && girder_get_pid(ctx, &a[4], &pid) == 0 &&
               pid.node == node && a[5].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               a[5].via.u64 <= UINT32_MAX) {
        pthread_rwlock_wrlock(&w->lock);
        rpg_set(w, node, s1, s2, pid, (uint32_t)a[5].via.u64);
        pthread_rwlock_unlock(&w->lock);
    } else if (gr_term_is_str(&a[0], "$psx_greg") && n == 5 && get_name(&a[2], s1) == 0 &&
               girder_get_pid(ctx, &a[3], &pid) == 0 && pid.node == node &&
               a[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        name_heard(ctx, ps, s1, pid, a[4].via.u64);
    } else if (gr_term_is_str(&a[0], "$psx_gunreg") && n == 4 && get_name(&a[2], s1) == 0 &&
               girder_get_pid(ctx, &a[3], &pid) == 0) {
        name_drop(w, s1, pid);
    }
    return true;
}
