/* SPDX-License-Identifier: Apache-2.0 */
/*
 * registry.c - the node's registered names: name -> pid.
 *
 * Shared by all schedulers: registration is rare, lookups (send by name) are
 * frequent but short, so one mutex guards a chained hash table. The owning
 * process also keeps its name (gr_proc_ext.name) so exit can remove it; removal
 * is conditional on the name still mapping to that pid.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next; /* chain */
    uint64_t hash;      /* full hash of name */
    girder_pid pid;     /* registered process */
    char name[];        /* NUL-terminated */
} entry;

struct gr_registry {
    pthread_mutex_t lock; /* guards everything below */
    entry **buckets;      /* 2^k chains */
    size_t mask;          /* buckets - 1 */
    size_t count;         /* entries */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int gr_registry_new(gr_registry **ret)
{
    gr_registry *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return -ENOMEM;
    }
    r->mask = 63;
    r->buckets = calloc(r->mask + 1, sizeof(*r->buckets));
    if (r->buckets == NULL) {
        free(r);
        return -ENOMEM;
    }
    pthread_mutex_init(&r->lock, NULL);
    *ret = r;
    return 0;
}

gr_registry *gr_registry_free(gr_registry *r)
{
    if (r == NULL) {
        return NULL;
    }
    for (size_t i = 0; i <= r->mask; i++) {
        entry *e = r->buckets[i];

        while (e) {
            entry *n = e->next;

            free(e);
            e = n;
        }
    }
    free(r->buckets);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
}

static entry **find_locked(gr_registry *r, const char *name, uint64_t h)
{
    entry **pp = &r->buckets[h & r->mask];

    while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

static void grow_locked(gr_registry *r)
{
    size_t n = (r->mask + 1) * 2;
    entry **nb = calloc(n, sizeof(*nb));

    if (nb == NULL) {
        return; /* keep the old table: longer chains, still correct */
    }
    for (size_t i = 0; i <= r->mask; i++) {
        entry *e = r->buckets[i];

        while (e) {
            entry *next = e->next;

            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(r->buckets);
    r->buckets = nb;
    r->mask = n - 1;
}

int gr_registry_add(gr_registry *r, const char *name, girder_pid pid)
{
    uint64_t h = hash_str(name);
    size_t len = strlen(name);
    entry **pp, *e;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    pp = find_locked(r, name, h);
    if (*pp != NULL) {
        rc = GR_ENAMETAKEN;
        goto out;
    }
    e = malloc(sizeof(*e) + len + 1);
    if (e == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    e->hash = h;
    e->pid = pid;
    memcpy(e->name, name, len + 1);
    e->next = NULL;
    *pp = e;
    if (++r->count > r->mask + 1) {
        grow_locked(r);
    }
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static int del_locked(gr_registry *r, const char *name, const girder_pid *only, girder_pid *ret_pid)
{
    entry **pp = find_locked(r, name, hash_str(name));
    entry *e = *pp;

    if (e == NULL || (only != NULL && !girder_pid_eq(e->pid, *only))) {
        return GR_ENONAME;
    }
    *pp = e->next;
    r->count--;
    if (ret_pid) {
        *ret_pid = e->pid;
    }
    free(e);
    return 0;
}

bool gr_registry_del_if(gr_registry *r, const char *name, girder_pid pid)
{
    int rc;

    pthread_mutex_lock(&r->lock);
    rc = del_locked(r, name, &pid, NULL);
    pthread_mutex_unlock(&r->lock);
    return rc == 0;
}

int gr_registry_del(gr_registry *r, const char *name, girder_pid *ret_pid)
{
    int rc;

    pthread_mutex_lock(&r->lock);
    rc = del_locked(r, name, NULL, ret_pid);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int gr_registry_get(gr_registry *r, const char *name, girder_pid *ret_pid)
{
    entry *e;
    int rc = GR_ENONAME;

    pthread_mutex_lock(&r->lock);
    e = *find_locked(r, name, hash_str(name));
    if (e != NULL) {
        *ret_pid = e->pid;
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

size_t gr_registry_count(gr_registry *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}
