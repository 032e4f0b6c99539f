/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plist.c - enumerating the processes of the runtime (rt.h:
 * gr_rt_process_list_request, gr_rt_process_list).
 *
 * Each scheduler owns its pid table and nobody else may read it, so a list is
 * a question put to every scheduler: one GR_SIG_PLIST per scheduler, pushed to
 * its inbox (or to the local queue for the caller's own scheduler). Each
 * scheduler answers from its own thread, between process turns, with the
 * processes of its table at that moment, and the asker merges the answers.
 *
 * Design notes
 * - No lock anywhere on the spawn/exit path: the table is read only by its
 *   owner, as always. Thread-safety against concurrent spawn and exit is by
 *   construction (the snapshot of a scheduler is taken on that scheduler,
 *   between turns); the merged list is therefore not one atomic instant
 *   across schedulers, like Erlang's processes/0. It is causally complete for
 *   the asker: a process the asker spawned (or heard of through a message)
 *   before asking is in the list unless it died, because its GR_SIG_SPAWN was
 *   queued on the same FIFO path ahead of the question.
 * - Bounded: a scheduler reports at most `max` processes, the ones with the
 *   lowest pids (the oldest: services come first), chosen with a heap of
 *   `max` entries in one pass over its table, plus the count of all of them.
 *   The asker keeps the `max` lowest of the union.
 * - Ranked (gr_rt_process_top_request, `girder top`): the same pass keeps the
 *   `max` processes with the largest key (work, handled, mailbox length or
 *   memory; ties by the lower pid) over ALL the scheduler's processes, so the
 *   busiest process of a node with 100,000 is reported whatever its pid. The
 *   key travels in the signal's flags; each key is read once per process.
 * - Paged: a request names a cursor `after` (a pid id; 0 = from the start)
 *   and considers only pids with a greater id, and each scheduler also
 *   counts its live processes above it. The next page starts after the
 *   highest id of this one. Pid ids are never reused within a creation, so
 *   the pages cover disjoint id ranges: a process alive for the whole listing
 *   is in exactly one page (its scheduler reported it unless `max` lower ids
 *   above the cursor were also alive there, and then the page ended below
 *   it); one spawned or gone meanwhile is in at most one. More pages follow
 *   while the counts above the cursor sum to more than the page holds.
 * - A request from a process gets messages (the caller is a process and must
 *   not block its scheduler); a request from another thread gets a collector
 *   (mutex + condition variable) that each scheduler fills, and waits on it.
 *
 * Owning thread: plist_answer runs on the answering scheduler; the request
 * functions on the asking thread.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The collector of a synchronous request (gr_rt_process_list). */
typedef struct gr_plist_sync {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* signalled when `remaining` drops to 0 */
    unsigned remaining;   /* schedulers that have not answered */
    uint64_t total;       /* sum of the schedulers' counts */
    uint64_t above;       /* sum of their counts of live pids above `after` */
    girder_pid *pids;     /* pids received, unsorted; at most cap */
    size_t n;             /* pids filled */
    size_t max;           /* pids asked for */
    size_t cap;           /* pids allocated: 2 * max (see plist_sync_fill) */
    int err;              /* first error (-ENOMEM) of a scheduler, else 0 */
} gr_plist_sync;

/* ---- on the answering scheduler ------------------------------------------------------------- */

/* One process kept by a scheduler's answer, with its rank key (0 when
 * ranking by pid). */
typedef struct heap_ent {
    gr_proc *p;  /* the process (live until this answer is sent: same thread) */
    uint64_t k;  /* its key at the time it was offered */
    uint64_t id; /* its pid id (the table's key: compared without reading p) */
} heap_ent;

/* The `cap` best-ranked live processes above `after` seen so far, in a heap
 * whose root is the worst of them, and how many live processes are above
 * `after`. Best: the lowest pid id (GR_RT_PLIST_BY_PID), else the largest key,
 * ties by the lowest pid id. */
typedef struct heap {
    heap_ent *v;    /* heap array */
    size_t n;       /* entries */
    size_t cap;     /* at most */
    uint64_t after; /* only pids with a greater id (0: all) */
    uint64_t above; /* live processes with an id above `after` */
    int key;        /* GR_RT_PLIST_BY_x */
    uint64_t bound; /* by pid: ids above this cannot be among the cap lowest */
} heap;

static uint64_t key_of(int key, const gr_proc *p)
{
    switch (key) {
    case GR_RT_PLIST_BY_WORK:
        return p->work;
    case GR_RT_PLIST_BY_HANDLED:
        return p->handled;
    case GR_RT_PLIST_BY_MAILBOX:
        return p->mbox_len;
    case GR_RT_PLIST_BY_MEMORY:
        return gr_proc_memory(p);
    default:
        return 0;
    }
}

/* a ranks after b. */
static bool worse(const heap_ent *a, const heap_ent *b)
{
    if (a->k != b->k) {
        return a->k < b->k;
    }
    return a->id > b->id;
}

static void sift_down(heap *h, size_t i, size_t n)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < n && worse(&h->v[l], &h->v[m])) {
            m = l;
        }
        if (r < n && worse(&h->v[r], &h->v[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_ent t = h->v[i];

        h->v[i] = h->v[m];
        h->v[m] = t;
        i = m;
    }
}

/* Quickselect: v[0..k) become the k lowest ids of v[0..n) (k < n). */
static void select_lowest(heap_ent *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;

    while (lo < hi) {
        uint64_t pivot = v[lo + (hi - lo) / 2].id;
        size_t i = lo, j = hi;

        while (i <= j) {
            while (v[i].id < pivot) {
                i++;
            }
            while (v[j].id > pivot) {
                j--;
            }
            if (i <= j) {
                heap_ent t = v[i];

                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) {
                    break;
                }
                j--;
            }
        }
        if (k <= j) {
            hi = j;
        } else if (k >= i) {
            lo = i;
        } else {
            return;
        }
    }
}

/* By pid, the buffer (2 * cap) is full: keep its cap lowest ids, and from
 * now on only ids below the highest of them (ids are unique). Amortized
 * O(1) an entry, where a heap costs log(cap) at every replacement. */
static void keep_lowest(heap *h)
{
    uint64_t max = 0;

    select_lowest(h->v, h->n, h->cap);
    h->n = h->cap;
    for (size_t i = 0; i < h->n; i++) {
        max = h->v[i].id > max ? h->v[i].id : max;
    }
    h->bound = max;
}

static int cmp_ent_id(const void *a, const void *b)
{
    const heap_ent *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

/* By pid, an entry at or below the cursor, or one that cannot beat the worst
 * kept, is decided from the table's id alone: a page of a million-process
 * listing reads the table sequentially and touches only the processes it
 * keeps (a dead one, still in the table for a moment, is left out when the
 * page is packed). By key, every live process is read. */
static void heap_offer(uint64_t id, void *vp, void *arg)
{
    heap *h = arg;
    gr_proc *p = vp;
    heap_ent e;

    if (id <= h->after) {
        return;
    }
    if (h->key != GR_RT_PLIST_BY_PID && p->status == GR_PROC_DEAD) {
        return;
    }
    h->above++;
    if (h->cap == 0) {
        return;
    }
    if (h->key == GR_RT_PLIST_BY_PID) {
        if (id < h->bound) {
            if (h->n == 2 * h->cap) {
                keep_lowest(h);
            }
            if (id < h->bound) {
                h->v[h->n++] = (heap_ent){p, 0, id};
            }
        }
        return;
    }
    e = (heap_ent){p, key_of(h->key, p), id};
    if (h->n < h->cap) {
        size_t i = h->n++;

        h->v[i] = e;
        while (i > 0 && worse(&h->v[i], &h->v[(i - 1) / 2])) {
            heap_ent t = h->v[i];

            h->v[i] = h->v[(i - 1) / 2];
            h->v[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (worse(&h->v[0], &e)) {
        h->v[0] = e;
        sift_down(h, 0, h->n);
    }
}

/* Sort the heap in place, best first (heapsort: the worst root goes last). */
static void heap_sort(heap *h)
{
    for (size_t n = h->n; n > 1; n--) {
        heap_ent t = h->v[0];

        h->v[0] = h->v[n - 1];
        h->v[n - 1] = t;
        sift_down(h, 0, n - 1);
    }
}

/* ["$procs", Ref, Total, Above, [Entry...]] for the asking process. NULL on
 * ENOMEM. */
static girder_msg *plist_msg(gr_sched *s, girder_ref ref, heap *h)
{
    girder_rt *rt = s->rt;
    gr_pack pk;

    gr_pack_init(&pk);
    msgpack_pack_array(&pk.pk, 5);
    gr_term_pack_cstr(&pk.pk, "$procs");
    if (gr_pack_ref(rt, &pk.pk, ref) < 0) {
        msgpack_pack_nil(&pk.pk);
    }
    msgpack_pack_uint64(&pk.pk, s->ptab.count);
    msgpack_pack_uint64(&pk.pk, h->above);
    msgpack_pack_array(&pk.pk, (uint32_t)h->n);
    for (size_t i = 0; i < h->n; i++) {
        gr_proc *p = h->v[i].p;

        msgpack_pack_map(&pk.pk, 9);
        gr_term_pack_cstr(&pk.pk, "pid");
        gr_pack_pid(s->rt, &pk.pk, p->pid);
        gr_term_pack_cstr(&pk.pk, "name");
        if (p->ext && p->ext->name) {
            gr_term_pack_cstr(&pk.pk, p->ext->name);
        } else {
            msgpack_pack_nil(&pk.pk);
        }
        gr_term_pack_cstr(&pk.pk, "behaviour");
        gr_term_pack_cstr(&pk.pk, p->beh->name ? p->beh->name : "");
        gr_term_pack_cstr(&pk.pk, "status");
        gr_term_pack_cstr(&pk.pk, s->current == p ? "running" : p->queued ? "runnable" : "waiting");
        gr_term_pack_cstr(&pk.pk, "mailbox");
        msgpack_pack_uint32(&pk.pk, p->mbox_len);
        gr_term_pack_cstr(&pk.pk, "memory");
        msgpack_pack_uint64(&pk.pk, gr_proc_memory(p));
        gr_term_pack_cstr(&pk.pk, "handled");
        msgpack_pack_uint64(&pk.pk, p->handled);
        gr_term_pack_cstr(&pk.pk, "work");
        msgpack_pack_uint64(&pk.pk, p->work);
        gr_term_pack_cstr(&pk.pk, "scheduler");
        msgpack_pack_unsigned_int(&pk.pk, s->idx);
    }
    return gr_pack_finish(&pk);
}

static int cmp_pid(const void *a, const void *b)
{
    const girder_pid *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

/* Fill the collector of a synchronous request; wakes its waiter when last.
 * When this scheduler's pids might not fit, the collector first keeps only
 * its `max` lowest: memory stays at 2 * max pids whatever the number of
 * schedulers (the sort is O(max log max) under the collector's lock, which
 * only the answering schedulers and the waiter take). */
static void plist_sync_fill(gr_sched *s, gr_plist_sync *c, heap *h, int err)
{
    pthread_mutex_lock(&c->lock);
    if (c->n + h->n > c->cap) {
        qsort(c->pids, c->n, sizeof(*c->pids), cmp_pid);
        c->n = c->n < c->max ? c->n : c->max;
    }
    c->total += s->ptab.count;
    c->above += h->above;
    if (err < 0 && c->err == 0) {
        c->err = err;
    }
    for (size_t i = 0; i < h->n && c->n < c->cap; i++) {
        c->pids[c->n++] = h->v[i].p->pid;
    }
    if (--c->remaining == 0) {
        pthread_cond_signal(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
}

void gr_plist_answer(gr_sched *s, gr_sig *sig)
{
    gr_plist_sync *c = sig->ptr;
    heap h = {NULL, 0, sig->to.creation, sig->to.id, 0, sig->flags, UINT64_MAX};
    int err = 0;

    if (h.cap > s->ptab.count) {
        h.cap = s->ptab.count;
    }
    /* by pid: a buffer of twice the page (keep_lowest) */
    if (h.cap > 0 &&
        (h.v = malloc((h.key == GR_RT_PLIST_BY_PID ? 2 : 1) * h.cap * sizeof(*h.v))) == NULL) {
        h.cap = 0;
        err = -ENOMEM;
    }
    gr_ptab_each_id(&s->ptab, heap_offer, &h);
    if (h.key == GR_RT_PLIST_BY_PID) {
        if (h.n > h.cap) {
            keep_lowest(&h);
        }
        if (h.n > 1) {
            qsort(h.v, h.n, sizeof(*h.v), cmp_ent_id);
        }
    } else {
        heap_sort(&h);
    }
    {
        size_t j = 0;

        for (size_t i = 0; i < h.n; i++) { /* by pid, dead ones were kept unread */
            if (h.v[i].p->status != GR_PROC_DEAD) {
                h.v[j++] = h.v[i];
            }
        }
        h.n = j;
    }
    if (c != NULL) {
        plist_sync_fill(s, c, &h, err);
    } else {
        girder_msg *m = plist_msg(s, sig->ref, &h);
        gr_sig *out = m ? gr_sig_new(GR_SIG_MSG, (girder_pid){0, 0, 0}, sig->from) : NULL;

        if (out == NULL) {
            /* The asker counts answers: it will time out, as for a lost reply. */
            gr_error("plist", "process list answer lost: out of memory");
            girder_msg_unref(m);
        } else {
            out->msg = m;
            gr_route(s->rt, s, out);
        }
    }
    free(h.v);
    sig->ptr = NULL;
    gr_sig_free(sig);
}

/* ---- on the asking thread ------------------------------------------------------------------- */

/* One GR_SIG_PLIST per scheduler, from `from` (id 0: a thread) with ref and
 * collector c (NULL: answer by message), for at most max pids above after.
 * cur: the asking scheduler or NULL. All or nothing: 0 or -ENOMEM (nothing
 * sent). */
static int plist_send(girder_rt *rt, gr_sched *cur, girder_pid from, girder_ref ref, uint64_t after,
                      size_t max, int key, gr_plist_sync *c)
{
    gr_sig **sigs = calloc(rt->nsched, sizeof(*sigs));

    if (sigs == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < rt->nsched; i++) {
        if ((sigs[i] = gr_sig_new(GR_SIG_PLIST, from, (girder_pid){0, (uint32_t)max, after})) ==
            NULL) {
            for (unsigned j = 0; j < i; j++) {
                gr_sig_free(sigs[j]);
            }
            free(sigs);
            return -ENOMEM;
        }
        sigs[i]->ref = ref;
        sigs[i]->ptr = c;
        sigs[i]->flags = (uint8_t)key;
    }
    for (unsigned i = 0; i < rt->nsched; i++) {
        gr_sched *t = &rt->scheds[i];

        if (t == cur) {
            gr_sched_local(cur, sigs[i]);
        } else {
            gr_sched_push(t, sigs[i]);
        }
    }
    free(sigs);
    return 0;
}

int gr_rt_process_list_request(girder_ctx *ctx, uint64_t after, size_t max, girder_ref *ret_ref)
{
    return gr_rt_process_top_request(ctx, GR_RT_PLIST_BY_PID, after, max, ret_ref);
}

int gr_rt_process_top_request(girder_ctx *ctx, int key, uint64_t after, size_t max,
                              girder_ref *ret_ref)
{
    gr_proc *p = gr_proc_of(ctx);
    girder_ref ref;
    int r;

    if (max == 0 || max > GR_RT_PLIST_MAX || key < GR_RT_PLIST_BY_PID ||
        key > GR_RT_PLIST_BY_MEMORY) {
        return GR_EBADARG;
    }
    ref = gr_sched_make_ref(p->sched);
    if ((r = plist_send(p->sched->rt, p->sched, p->pid, ref, after, max, key, NULL)) < 0) {
        return r;
    }
    *ret_ref = ref;
    return 0;
}

int gr_rt_process_list(girder_rt *rt, uint64_t after, size_t max, girder_pid **ret_pids,
                       size_t *ret_n, uint64_t *ret_total, bool *ret_more)
{
    gr_plist_sync c = {.remaining = rt->nsched};
    int r;

    if (max == 0 || max > GR_RT_PLIST_MAX) {
        return GR_EBADARG;
    }
    if (atomic_load(&rt->stopping) || !atomic_load(&rt->running)) {
        return GR_ESTOPPED;
    }
    c.max = max;
    c.cap = 2 * max;
    if ((c.pids = malloc(c.cap * sizeof(*c.pids))) == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    if ((r = plist_send(rt, NULL, (girder_pid){0, 0, 0}, (girder_ref){0, 0, 0}, after, max,
                        GR_RT_PLIST_BY_PID, &c)) == 0) {
        pthread_mutex_lock(&c.lock);
        while (c.remaining > 0) {
            pthread_cond_wait(&c.cond, &c.lock);
        }
        pthread_mutex_unlock(&c.lock);
        r = c.err;
    }
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
    if (r < 0) {
        free(c.pids);
        return r;
    }
    if (c.n > 1) {
        qsort(c.pids, c.n, sizeof(*c.pids), cmp_pid);
    }
    *ret_pids = c.pids;
    *ret_n = c.n < max ? c.n : max;
    *ret_total = c.total;
    if (ret_more) {
        *ret_more = c.above > *ret_n;
    }
    return 0;
}
