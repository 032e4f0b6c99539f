/* SPDX-License-Identifier: Apache-2.0 */
/*
 * groups.c - process groups (Erlang's pg), node-local: scopes, groups,
 * counted joins, group monitors with join/leave events.
 *
 * Design notes
 *   Everything here is under ps->lock. A scope holds its groups in a hash
 *   table by name (chained, doubled when it holds as many groups as buckets,
 *   so a lookup costs O(1) whatever the number of groups) and a catch-all
 *   watcher set (`all`: monitors of the whole scope). Scopes are a list: an
 *   application has a handful. A group holds
 *   one member entry per distinct process, with a join count (pg lists a pid
 *   once per join), and its watchers. The owner record of a process holds one
 *   join entry per group with the slot of its member entry, kept current when
 *   a removal moves the last member into the hole, so a leave or a death
 *   costs O(groups of that process), not O(members).
 *   Events are sent under the lock, so every watcher sees them in the order
 *   the changes happened, and a monitor's initial member list plus its events
 *   is exact. A group is freed when it has neither members nor watchers, a
 *   scope when it has neither groups nor scope watchers.
 *   Demonitor fence: gr_pg_demonitor sends the watcher a last event, "end",
 *   under the lock and by the same route as every event (gr_rt_send: the
 *   watcher's inbox, pushed in lock order), so every earlier event of that
 *   monitor is ahead of it in the mailbox and none follows it.
 *   An owner record lives while its process holds a join or a monitor (or a
 *   subscription): leave, demonitor and failed calls release it.
 */
#include "pubsub/pubsub_int.h"

#include "proto/err.h"
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    gr_ps_owner *o; /* the process's record */
    uint32_t count; /* joins */
} member;

typedef struct watcher {
    gr_ps_owner *o; /* the watching process's record */
    girder_ref ref; /* its monitor ref */
} watcher;

struct gr_pg_group {
    gr_pg_group *hnext; /* chain in the scope's hash */
    gr_pg_scope *scope; /* owning scope */
    member *m;          /* members */
    size_t n, cap;      /* used / allocated */
    size_t joins;       /* sum of counts */
    watcher *w;         /* monitors */
    size_t nw, capw;    /* used / allocated */
    char name[];        /* NUL-terminated; "" for a scope's catch-all */
};

struct gr_pg_scope {
    gr_pg_scope *next;     /* ps->scopes */
    gr_pg_group **gb;      /* groups with members or watchers: hash buckets */
    size_t gmask, ngroups; /* buckets - 1, groups */
    gr_pg_group *all;      /* scope-wide watchers (name "") */
    char name[];           /* NUL-terminated */
};

#define GROUP_BUCKETS_MIN 8

/* FNV-1a of a NUL-terminated name. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h;
}

/* Double sc's buckets (on failure the chains just grow longer). */
static void groups_grow(gr_pg_scope *sc)
{
    size_t cap = (sc->gmask + 1) * 2;
    gr_pg_group **nb = calloc(cap, sizeof(*nb));

    if (nb == NULL) {
        return;
    }
    for (size_t i = 0; i <= sc->gmask; i++) {
        for (gr_pg_group *g = sc->gb[i], *next; g; g = next) {
            size_t b = hash_name(g->name) & (cap - 1);

            next = g->hnext;
            g->hnext = nb[b];
            nb[b] = g;
        }
    }
    free(sc->gb);
    sc->gb = nb;
    sc->gmask = cap - 1;
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    return n > 0 && n <= GR_PG_NAME_MAX;
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    void *nv;
    size_t nc;

    if (need <= *cap) {
        return 0;
    }
    nc = *cap ? *cap * 2 : 4;
    if ((nv = realloc(*v, nc * elem)) == NULL) {
        return -ENOMEM;
    }
    *v = nv;
    *cap = nc;
    return 0;
}

static gr_pg_group *group_new(gr_pg_scope *sc, const char *name)
{
    size_t n = strlen(name);
    gr_pg_group *g = calloc(1, sizeof(*g) + n + 1);

    if (g != NULL) {
        g->scope = sc;
        memcpy(g->name, name, n + 1);
    }
    return g;
}

static gr_pg_scope *scope_find(gr_pubsub *ps, const char *name, bool create)
{
    gr_pg_scope *sc;
    size_t n = strlen(name);

    for (sc = ps->scopes; sc; sc = sc->next) {
        if (strcmp(sc->name, name) == 0) {
            return sc;
        }
    }
    if (!create || (sc = calloc(1, sizeof(*sc) + n + 1)) == NULL) {
        return NULL;
    }
    memcpy(sc->name, name, n + 1);
    sc->gmask = GROUP_BUCKETS_MIN - 1;
    if ((sc->gb = calloc(GROUP_BUCKETS_MIN, sizeof(*sc->gb))) == NULL ||
        (sc->all = group_new(sc, "")) == NULL) {
        free(sc->gb);
        free(sc);
        return NULL;
    }
    sc->next = ps->scopes;
    ps->scopes = sc;
    return sc;
}

static gr_pg_group *group_find(gr_pg_scope *sc, const char *name, bool create)
{
    uint64_t h = hash_name(name);
    gr_pg_group *g;

    for (g = sc->gb[h & sc->gmask]; g; g = g->hnext) {
        if (strcmp(g->name, name) == 0) {
            return g;
        }
    }
    if (!create || (g = group_new(sc, name)) == NULL) {
        return NULL;
    }
    if (sc->ngroups >= sc->gmask + 1) {
        groups_grow(sc);
    }
    g->hnext = sc->gb[h & sc->gmask];
    sc->gb[h & sc->gmask] = g;
    sc->ngroups++;
    return g;
}

static void group_free(gr_pg_group *g)
{
    free(g->m);
    free(g->w);
    free(g);
}

/* Free g if unused, then its scope if unused. */
static void maybe_free(gr_pubsub *ps, gr_pg_scope *sc, gr_pg_group *g)
{
    if (g != NULL && g != sc->all && g->n == 0 && g->nw == 0) {
        gr_pg_group **pp = &sc->gb[hash_name(g->name) & sc->gmask];

        while (*pp != g) {
            pp = &(*pp)->hnext;
        }
        *pp = g->hnext;
        sc->ngroups--;
        group_free(g);
    }
    if (sc->ngroups == 0 && sc->all->nw == 0) {
        gr_pg_scope **pp = &ps->scopes;

        while (*pp != sc) {
            pp = &(*pp)->next;
        }
        *pp = sc->next;
        group_free(sc->all);
        free(sc->gb);
        free(sc);
    }
}

void gr_pg_free_all(gr_pubsub *ps)
{
    while (ps->scopes) {
        gr_pg_scope *sc = ps->scopes;

        ps->scopes = sc->next;
        for (size_t i = 0; i <= sc->gmask; i++) {
            for (gr_pg_group *g = sc->gb[i], *next; g; g = next) {
                next = g->hnext;
                group_free(g);
            }
        }
        group_free(sc->all);
        free(sc->gb);
        free(sc);
    }
}

/* ["$pg", Ref, Kind, Scope, Group, [Pid x count]] to one watcher (Group nil
 * for the end of a scope-wide monitor). */
static void send_event(gr_pubsub *ps, const watcher *w, const char *kind, const gr_pg_group *g,
                       girder_pid pid, uint32_t count)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    const char *scope = g->scope->name;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_str_with_body(&pk, "$pg", 3);
    gr_ps_pack_ref(ps, &pk, w->ref);
    msgpack_pack_str_with_body(&pk, kind, strlen(kind));
    msgpack_pack_str_with_body(&pk, scope, strlen(scope));
    if (g->name[0] != '\0') {
        msgpack_pack_str_with_body(&pk, g->name, strlen(g->name));
    } else {
        msgpack_pack_nil(&pk); /* the scope's catch-all: only its "end" */
    }
    msgpack_pack_array(&pk, count);
    for (uint32_t i = 0; i < count; i++) {
        gr_ps_pack_pid(ps, &pk, pid);
    }
    if ((m = girder_msg_new(sb.data, sb.size)) != NULL && gr_rt_send(ps->rt, w->o->pid, m) < 0) {
        girder_msg_unref(m);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void notify(gr_pubsub *ps, const gr_pg_group *g, const char *kind, girder_pid pid,
                   uint32_t count)
{
    gr_ps_wide_pg_changed_locked(ps, g->scope->name, g->name, pid); /* other nodes */
    for (size_t i = 0; i < g->nw; i++) {
        send_event(ps, &g->w[i], kind, g, pid, count);
    }
    for (size_t i = 0; i < g->scope->all->nw; i++) {
        send_event(ps, &g->scope->all->w[i], kind, g, pid, count);
    }
}

static gr_ps_join *find_join(gr_ps_owner *o, const gr_pg_group *g)
{
    for (size_t i = 0; i < o->njoins; i++) {
        if (o->joins[i].g == g) {
            return &o->joins[i];
        }
    }
    return NULL;
}

int gr_pg_join(gr_pubsub *ps, const char *scope, const char *group, girder_pid pid)
{
    gr_pg_scope *sc;
    gr_pg_group *g;
    gr_ps_owner *o;
    gr_ps_join *j;
    int r = -ENOMEM;

    if (!valid_name(scope) || !valid_name(group) || pid.node != 0 || pid.id == 0) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, pid, true)) == NULL) {
        goto out;
    }
    if ((sc = scope_find(ps, scope, true)) == NULL) {
        gr_ps_owner_release_locked(ps, o);
        goto out;
    }
    if ((g = group_find(sc, group, true)) == NULL) {
        maybe_free(ps, sc, NULL);
        gr_ps_owner_release_locked(ps, o);
        goto out;
    }
    if ((j = find_join(o, g)) != NULL) {
        g->m[j->slot].count++;
    } else {
        if (grow((void **)&g->m, &g->cap, g->n + 1, sizeof(*g->m)) < 0 ||
            grow((void **)&o->joins, &o->capjoins, o->njoins + 1, sizeof(*o->joins)) < 0) {
            maybe_free(ps, sc, g);
            gr_ps_owner_release_locked(ps, o);
            goto out;
        }
        g->m[g->n] = (member){o, 1};
        o->joins[o->njoins++] = (gr_ps_join){g, (uint32_t)g->n};
        g->n++;
    }
    g->joins++;
    atomic_fetch_add_explicit(&ps->joins, 1, memory_order_relaxed);
    notify(ps, g, "join", pid, 1);
    r = 0;
out:
    pthread_mutex_unlock(&ps->lock);
    return r;
}

/* Remove o's member entry from g entirely (all its joins). */
static void member_remove(gr_ps_owner *o, gr_ps_join *j)
{
    gr_pg_group *g = j->g;
    uint32_t slot = j->slot;

    g->joins -= g->m[slot].count;
    if (slot != g->n - 1) {
        gr_ps_join *mj;

        g->m[slot] = g->m[g->n - 1];
        mj = find_join(g->m[slot].o, g);
        mj->slot = slot;
    }
    g->n--;
    *j = o->joins[--o->njoins]; /* j is dead from here */
}

int gr_pg_leave(gr_pubsub *ps, const char *scope, const char *group, girder_pid pid)
{
    gr_pg_scope *sc;
    gr_pg_group *g;
    gr_ps_owner *o;
    gr_ps_join *j;
    int r = -ENOENT;

    if (!valid_name(scope) || !valid_name(group)) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, pid, false)) == NULL ||
        (sc = scope_find(ps, scope, false)) == NULL || (g = group_find(sc, group, false)) == NULL ||
        (j = find_join(o, g)) == NULL) {
        goto out;
    }
    if (g->m[j->slot].count > 1) {
        g->m[j->slot].count--;
        g->joins--;
    } else {
        member_remove(o, j);
    }
    atomic_fetch_sub_explicit(&ps->joins, 1, memory_order_relaxed);
    notify(ps, g, "leave", pid, 1);
    maybe_free(ps, sc, g);
    gr_ps_owner_release_locked(ps, o);
    r = 0;
out:
    pthread_mutex_unlock(&ps->lock);
    return r;
}

/* Members of g, one per join, appended to *v (cap/n). */
static int collect(const gr_pg_group *g, girder_pid **v, size_t *n, size_t *cap)
{
    for (size_t i = 0; i < g->n; i++) {
        for (uint32_t c = 0; c < g->m[i].count; c++) {
            if (grow((void **)v, cap, *n + 1, sizeof(**v)) < 0) {
                return -ENOMEM;
            }
            (*v)[(*n)++] = g->m[i].o->pid;
        }
    }
    return 0;
}

int gr_pg_members(gr_pubsub *ps, const char *scope, const char *group, girder_pid **ret_pids,
                  size_t *ret_n)
{
    gr_pg_scope *sc;
    gr_pg_group *g;
    girder_pid *v = NULL;
    size_t n = 0, cap = 0;
    int r = 0;

    if (!valid_name(scope) || !valid_name(group)) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    if ((sc = scope_find(ps, scope, false)) != NULL && (g = group_find(sc, group, false)) != NULL) {
        r = collect(g, &v, &n, &cap);
    }
    pthread_mutex_unlock(&ps->lock);
    if (r < 0) {
        free(v);
        return r;
    }
    *ret_pids = v;
    *ret_n = n;
    return 0;
}

uint32_t gr_pg_joins(gr_pubsub *ps, const char *scope, const char *group, girder_pid pid)
{
    gr_pg_scope *sc;
    gr_pg_group *g;
    uint32_t n = 0;

    pthread_mutex_lock(&ps->lock);
    if ((sc = scope_find(ps, scope, false)) != NULL && (g = group_find(sc, group, false)) != NULL) {
        for (size_t i = 0; i < g->n; i++) {
            if (girder_pid_eq(g->m[i].o->pid, pid)) {
                n += g->m[i].count;
            }
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return n;
}

void gr_pg_pack_local_locked(gr_pubsub *ps, msgpack_packer *pk)
{
    uint32_t n = 0;

    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            msgpack_pack_array(pk, n);
        }
        for (gr_pg_scope *sc = ps->scopes; sc; sc = sc->next) {
            for (size_t b = 0; b <= sc->gmask; b++) {
                for (gr_pg_group *g = sc->gb[b]; g; g = g->hnext) {
                    for (size_t i = 0; i < g->n; i++) {
                        if (pass == 0) {
                            n++;
                            continue;
                        }
                        msgpack_pack_array(pk, 4);
                        msgpack_pack_str_with_body(pk, sc->name, strlen(sc->name));
                        msgpack_pack_str_with_body(pk, g->name, strlen(g->name));
                        gr_ps_pack_pid(ps, pk, g->m[i].o->pid);
                        msgpack_pack_uint32(pk, g->m[i].count);
                    }
                }
            }
        }
    }
}

void gr_pg_pack_owner_locked(const gr_ps_owner *o, msgpack_packer *pk)
{
    msgpack_pack_array(pk, o ? (uint32_t)o->njoins : 0);
    for (size_t i = 0; o && i < o->njoins; i++) {
        const gr_pg_group *g = o->joins[i].g;

        msgpack_pack_array(pk, 2);
        msgpack_pack_str_with_body(pk, g->scope->name, strlen(g->scope->name));
        msgpack_pack_str_with_body(pk, g->name, strlen(g->name));
    }
}

int gr_pg_groups(gr_pubsub *ps, const char *scope, gr_pg_group_info **ret, size_t *ret_n)
{
    gr_pg_group_info *v = NULL;
    size_t n = 0, cap = 0;
    int r = 0;

    if (scope != NULL && !valid_name(scope)) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    for (gr_pg_scope *sc = ps->scopes; sc && r == 0; sc = sc->next) {
        size_t total = 0;

        if (scope != NULL && strcmp(sc->name, scope) != 0) {
            continue;
        }
        for (size_t b = 0; b <= sc->gmask && r == 0; b++) {
            for (gr_pg_group *g = sc->gb[b]; g && r == 0; g = g->hnext) {
                total += g->joins;
                if (scope == NULL || g->joins == 0) {
                    continue; /* a group with watchers only is not listed */
                }
                if ((r = grow((void **)&v, &cap, n + 1, sizeof(*v))) == 0) {
                    memcpy(v[n].name, g->name, strlen(g->name) + 1);
                    v[n++].members = g->joins;
                }
            }
        }
        if (scope == NULL && r == 0 && (r = grow((void **)&v, &cap, n + 1, sizeof(*v))) == 0) {
            memcpy(v[n].name, sc->name, strlen(sc->name) + 1);
            v[n++].members = total;
        }
    }
    pthread_mutex_unlock(&ps->lock);
    if (r < 0) {
        free(v);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

int gr_pg_monitor(gr_pubsub *ps, girder_ctx *ctx, const char *scope, const char *group,
                  girder_ref *ret_ref, girder_pid **ret_members, size_t *ret_n)
{
    girder_pid self = girder_self(ctx), *v = NULL;
    girder_ref ref = girder_make_ref(ctx);
    size_t n = 0, cap = 0;
    gr_pg_scope *sc;
    gr_pg_group *g;
    gr_ps_owner *o;
    int r = -ENOMEM;

    if (!valid_name(scope) || (group != NULL && !valid_name(group)) || ret_ref == NULL) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, self, true)) == NULL) {
        goto out;
    }
    if ((sc = scope_find(ps, scope, true)) == NULL) {
        gr_ps_owner_release_locked(ps, o);
        goto out;
    }
    g = group ? group_find(sc, group, true) : sc->all;
    if (g == NULL || grow((void **)&g->w, &g->capw, g->nw + 1, sizeof(*g->w)) < 0 ||
        grow((void **)&o->watches, &o->capwatches, o->nwatches + 1, sizeof(*o->watches)) < 0 ||
        (ret_members != NULL && group != NULL && collect(g, &v, &n, &cap) < 0)) {
        maybe_free(ps, sc, g);
        gr_ps_owner_release_locked(ps, o);
        goto out;
    }
    g->w[g->nw++] = (watcher){o, ref};
    o->watches[o->nwatches++] = (gr_ps_watch){g, ref};
    r = 0;
out:
    pthread_mutex_unlock(&ps->lock);
    if (r < 0) {
        free(v);
        return r;
    }
    *ret_ref = ref;
    if (ret_members != NULL) {
        *ret_members = v;
        *ret_n = n;
    } else {
        free(v);
    }
    return 0;
}

/* Remove watch i of o from its group. */
static void watch_remove(gr_pubsub *ps, gr_ps_owner *o, size_t i)
{
    gr_pg_group *g = o->watches[i].g;
    gr_pg_scope *sc = g->scope;

    for (size_t k = 0; k < g->nw; k++) {
        if (g->w[k].o == o && girder_ref_eq(g->w[k].ref, o->watches[i].ref)) {
            g->w[k] = g->w[--g->nw];
            break;
        }
    }
    o->watches[i] = o->watches[--o->nwatches];
    maybe_free(ps, sc, g);
}

int gr_pg_demonitor(gr_pubsub *ps, girder_ctx *ctx, girder_ref ref)
{
    gr_ps_owner *o;
    int r = -ENOENT;

    pthread_mutex_lock(&ps->lock);
    if ((o = gr_ps_owner_get_locked(ps, girder_self(ctx), false)) != NULL) {
        for (size_t i = 0; i < o->nwatches; i++) {
            if (girder_ref_eq(o->watches[i].ref, ref)) {
                /* the fence: the last event of this monitor (design notes) */
                send_event(ps, &(watcher){o, ref}, "end", o->watches[i].g, o->pid, 0);
                watch_remove(ps, o, i);
                gr_ps_owner_release_locked(ps, o);
                r = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return r;
}

void gr_pg_owner_gone_locked(gr_pubsub *ps, gr_ps_owner *o)
{
    while (o->nwatches > 0) {
        watch_remove(ps, o, o->nwatches - 1);
    }
    while (o->njoins > 0) {
        gr_ps_join *j = &o->joins[o->njoins - 1];
        gr_pg_group *g = j->g;
        uint32_t count = g->m[j->slot].count;

        member_remove(o, j);
        atomic_fetch_sub_explicit(&ps->joins, count, memory_order_relaxed);
        notify(ps, g, "leave", o->pid, count);
        maybe_free(ps, g->scope, g);
    }
}
