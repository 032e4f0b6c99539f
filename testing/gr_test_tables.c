/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test_tables.c - the table engine half of the tests' support library
 * (girder_testsupport, gr_test_tables.h): replicas in one process, deep
 * copies of entries, merges between replicas, and the wire that carries
 * repl.c's frames between them. Only a test that links the tables library
 * pulls this object in. Test thread only.
 */
#include "testing/gr_test_tables.h"

#include "proto/frame.h"
#include "proto/girder.pb-c.h"

#include <stdlib.h>
#include <string.h>

void gr_test_replicas_open(gr_tables **e, gr_table **t, int n, uint64_t (*now_ms)(void *ud))
{
    ck_assert_int_le(n, GR_TEST_REPLICAS_MAX);
    for (int i = 0; i < n; i++) {
        gr_tables_config cfg = {
            .node_id = (uint64_t)i + 1, .now_ms = now_ms, .maint_ms = -1, .tomb_ms = 60000};
        gr_table_opts o = {.replicated = true, .created = 1000};

        ck_assert_int_eq(gr_tables_new(&cfg, &e[i]), 0);
        ck_assert_int_eq(gr_tables_create_replica(e[i], "r", &o), 0);
        ck_assert_int_eq(gr_tables_open(e[i], "r", &t[i]), 0);
    }
}

void gr_test_replicas_close(gr_tables **e, gr_table **t, int n)
{
    for (int i = 0; i < n; i++) {
        t[i] = gr_table_close(t[i]);
        e[i] = gr_tables_free(e[i]);
    }
}

void gr_test_tcopies_add(gr_test_tcopies *cs, const gr_trent *e)
{
    gr_test_tcopy *c;

    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 64;
        cs->v = realloc(cs->v, cs->cap * sizeof(*cs->v));
        ck_assert_ptr_nonnull(cs->v);
    }
    c = &cs->v[cs->n++];
    c->e = *e;
    c->kv = malloc(e->klen + e->vlen + 1);
    ck_assert_ptr_nonnull(c->kv);
    memcpy(c->kv, e->key, e->klen);
    memcpy(c->kv + e->klen, e->val, e->vlen);
    ck_assert_uint_le(e->ncnt, sizeof(c->cnt) / sizeof(c->cnt[0]));
    if (e->ncnt > 0) {
        memcpy(c->cnt, e->cnt, e->ncnt * sizeof(gr_tcnt));
    }
    c->e.key = c->kv;
    c->e.val = c->kv + e->klen;
    c->e.cnt = c->cnt;
}

static int copy_fn(void *ud, const gr_trent *e)
{
    gr_test_tcopies_add(ud, e);
    return 0;
}

/* Key bytes, then length: one order for every replica. */
static int by_key(const void *a, const void *b)
{
    const gr_trent *x = &((const gr_test_tcopy *)a)->e, *y = &((const gr_test_tcopy *)b)->e;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

gr_test_tcopies gr_test_tcopies_walk(gr_table *from)
{
    gr_test_tcopies cs = {0};

    ck_assert_int_eq(gr_table_walk(from, NULL, copy_fn, &cs), 0);
    if (cs.n > 1) {
        qsort(cs.v, cs.n, sizeof(*cs.v), by_key);
    }
    return cs;
}

void gr_test_tcopies_free(gr_test_tcopies *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->v[i].kv);
    }
    free(cs->v);
    *cs = (gr_test_tcopies){0};
}

void gr_test_replicas_sync_into(gr_table *to, gr_table *from)
{
    gr_test_tcopies cs = gr_test_tcopies_walk(from);

    for (size_t i = 0; i < cs.n; i++) {
        ck_assert_int_ge(gr_table_merge(to, &cs.v[i].e), 0);
    }
    gr_test_tcopies_free(&cs);
}

void gr_test_replicas_sync_all(gr_table **t, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            if (i != j) {
                gr_test_replicas_sync_into(t[j], t[i]);
            }
        }
    }
}

void gr_test_wire_init(gr_test_wire *w, gr_tables **e, const char *const *names)
{
    *w = (gr_test_wire){.e = e, .names = names};
    w->tail = &w->q;
}

int gr_test_wire_emit(void *ctx, const uint8_t *frame, size_t len)
{
    gr_test_wire *w = ctx;
    gr_test_wire_frame *f = calloc(1, sizeof(*f));

    ck_assert_ptr_nonnull(f);
    f->to = w->to;
    f->from = w->from;
    f->frame = malloc(len);
    ck_assert_ptr_nonnull(f->frame);
    memcpy(f->frame, frame, len);
    f->len = len;
    *w->tail = f;
    w->tail = &f->next;
    return 0;
}

unsigned gr_test_wire_pump(gr_test_wire *w)
{
    unsigned n = 0;

    while (w->q) {
        gr_test_wire_frame *q = w->q;
        Girder__Frame *f = NULL;

        w->q = q->next;
        if (!w->q) {
            w->tail = &w->q;
        }
        ck_assert_int_eq(gr_frame_unpack(q->frame, q->len, &f), 0);
        if (f->msg_case >= GIRDER__FRAME__MSG_REPL_WRITES &&
            f->msg_case < GIRDER__FRAME__MSG_REPL_WRITES + 4) {
            w->sent[f->msg_case - GIRDER__FRAME__MSG_REPL_WRITES]++;
        }
        w->from = q->to; /* answers go back */
        w->to = q->from;
        ck_assert_int_eq(
            gr_trepl_recv(gr_tables_repl(w->e[q->to]), w->names[q->from], f, gr_test_wire_emit, w),
            0);
        gr_frame_free(f);
        free(q->frame);
        free(q);
        n++;
    }
    return n;
}

void gr_test_wire_offer(gr_test_wire *w, int i, int j)
{
    w->from = i;
    w->to = j;
    gr_trepl_sync(gr_tables_repl(w->e[i]), w->names[j], true, gr_test_wire_emit, w);
    gr_test_wire_pump(w);
}
