/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crdt.c - the states of the two mergeable value kinds of the table engine
 * (docs/tables.md "Maps and sets"): a map with last-writer-wins fields (a
 * field may be a counter, merged per node like an entry counter) and an
 * add-wins set (an observed-remove set). Pure functions on the encoded state
 * (the byte layout is in tables_int.h): read it, validate one from a replica,
 * merge two states of one epoch, purge what every member has seen. table.c
 * owns the entries that hold these states and the locks.
 *
 * Design notes
 * - A state is the whole value of its entry (a msgpack bin holding the layout
 *   below), canonical: fields and members sorted by bytes, one record per
 *   (member, node), so replicas holding the same state hold the same bytes
 *   and the digest can hash them.
 * - Local operations are written as a small state (a "delta": the touched
 *   fields/members at the operation's HLC) merged into the current state with
 *   the same merge as a replica's state: one rule for writes, replication and
 *   replay.
 * - Merges are pointwise maxima (fields: the larger epoch, then the larger
 *   (HLC, origin), counters component-wise; set records: add, rem and rem_at
 *   each by max), so they are idempotent, commutative and associative.
 */
#include "tables/tables_int.h"

#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t gr_crdt_pack_int(uint8_t *b, int64_t v)
{
    if (v >= 0 && v < 128) {
        b[0] = (uint8_t)v;
        return 1;
    }
    if (v < 0 && v >= -32) {
        b[0] = (uint8_t)(int8_t)v;
        return 1;
    }
    b[0] = v >= 0 ? 0xcf : 0xd3;
    for (int i = 0; i < 8; i++) {
        b[1 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    }
    return 9;
}

/* ---- reading ------------------------------------------------------------------------------ */

int gr_crdt_open(gr_crdt_rd *r, const uint8_t *val, size_t vlen)
{
    uint32_t plen;

    if (vlen < 5 + GR_CRDT_HDR || val[0] != 0xc6) {
        return GR_ECORRUPT;
    }
    plen = (uint32_t)val[1] << 24 | (uint32_t)val[2] << 16 | (uint32_t)val[3] << 8 | val[4];
    if (plen != vlen - 5) {
        return GR_ECORRUPT;
    }
    r->p = val + 5;
    r->end = val + vlen;
    r->type = r->p[0];
    if ((r->type != GR_CRDT_MAP && r->type != GR_CRDT_SET) || r->p[1] != 1) {
        return GR_ECORRUPT;
    }
    r->eh = gr_le_rd64(r->p + 4);
    r->eo = gr_le_rd64(r->p + 12);
    r->n = gr_le_rd32(r->p + 20);
    r->i = 0;
    r->p += GR_CRDT_HDR;
    return 0;
}

int gr_crdt_next_field(gr_crdt_rd *r, gr_cfield *f)
{
    size_t left = (size_t)(r->end - r->p), need;

    if (r->i >= r->n) {
        return r->p == r->end ? 0 : GR_ECORRUPT;
    }
    if (r->type != GR_CRDT_MAP || left < GR_CRDT_FHDR) {
        return GR_ECORRUPT;
    }
    f->nlen = gr_le_rd32(r->p);
    f->vlen = gr_le_rd32(r->p + 4);
    f->hlc = gr_le_rd64(r->p + 8);
    f->origin = gr_le_rd64(r->p + 16);
    f->flags = r->p[24];
    f->ncnt = r->p[25];
    need = GR_CRDT_FHDR + (size_t)f->ncnt * 24 + f->nlen + f->vlen;
    if (need > left || (f->flags & ~(GR_CF_TOMB | GR_CF_COUNTER))) {
        return GR_ECORRUPT;
    }
    f->cnt = r->p + GR_CRDT_FHDR;
    f->name = f->cnt + (size_t)f->ncnt * 24;
    f->val = f->name + f->nlen;
    r->p += need;
    r->i++;
    return 1;
}

int gr_crdt_next_mem(gr_crdt_rd *r, gr_cmem *m)
{
    size_t left = (size_t)(r->end - r->p), need;

    if (r->i >= r->n) {
        return r->p == r->end ? 0 : GR_ECORRUPT;
    }
    if (r->type != GR_CRDT_SET || left < 8) {
        return GR_ECORRUPT;
    }
    m->mlen = gr_le_rd32(r->p);
    m->nrec = gr_le_rd32(r->p + 4);
    if (m->nrec > left / 32) {
        return GR_ECORRUPT;
    }
    need = 8 + (size_t)m->nrec * 32 + m->mlen;
    if (need > left) {
        return GR_ECORRUPT;
    }
    m->rec = r->p + 8;
    m->m = m->rec + (size_t)m->nrec * 32;
    r->p += need;
    r->i++;
    return 1;
}

gr_tcnt gr_cfield_cnt(const gr_cfield *f, int i)
{
    const uint8_t *c = f->cnt + 24 * i;

    return (gr_tcnt){gr_le_rd64(c), gr_le_rd64(c + 8), gr_le_rd64(c + 16)};
}

gr_crec gr_cmem_rec(const gr_cmem *m, uint32_t i)
{
    const uint8_t *c = m->rec + 32 * (size_t)i;

    return (gr_crec){gr_le_rd64(c), gr_le_rd64(c + 8), gr_le_rd64(c + 16), gr_le_rd64(c + 24)};
}

bool gr_cmem_live(const gr_cmem *m)
{
    for (uint32_t i = 0; i < m->nrec; i++) {
        gr_crec c = gr_cmem_rec(m, i);

        if (c.add > c.rem) {
            return true;
        }
    }
    return false;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c ? c : (al > bl) - (al < bl);
}

int gr_crdt_validate(const uint8_t *val, size_t vlen, int type)
{
    gr_crdt_rd r;
    const uint8_t *prev = NULL;
    size_t plen = 0;
    int k;

    if (gr_crdt_open(&r, val, vlen) < 0 || r.type != type) {
        return GR_EBADTERM;
    }
    for (;;) {
        const uint8_t *name;
        size_t nlen;

        if (type == GR_CRDT_MAP) {
            gr_cfield f;

            if ((k = gr_crdt_next_field(&r, &f)) <= 0) {
                break;
            }
            if (!(f.flags & GR_CF_TOMB) && (f.vlen == 0 || gr_term_validate(f.val, f.vlen) < 0)) {
                return GR_EBADTERM;
            }
            for (int i = 1; i < f.ncnt; i++) {
                if (gr_cfield_cnt(&f, i - 1).node >= gr_cfield_cnt(&f, i).node) {
                    return GR_EBADTERM;
                }
            }
            name = f.name;
            nlen = f.nlen;
        } else {
            gr_cmem m;

            if ((k = gr_crdt_next_mem(&r, &m)) <= 0) {
                break;
            }
            if (m.nrec == 0) {
                return GR_EBADTERM;
            }
            for (uint32_t i = 1; i < m.nrec; i++) {
                if (gr_cmem_rec(&m, i - 1).node >= gr_cmem_rec(&m, i).node) {
                    return GR_EBADTERM;
                }
            }
            name = m.m;
            nlen = m.mlen;
        }
        if (prev && bytes_cmp(prev, plen, name, nlen) >= 0) {
            return GR_EBADTERM; /* sorted, each once */
        }
        prev = name;
        plen = nlen;
    }
    return k < 0 ? GR_EBADTERM : 0;
}

/* ---- writing ------------------------------------------------------------------------------ */

int gr_crdt_begin(gr_crdt_wr *w, gr_tbuf *b, int type, uint64_t eh, uint64_t eo)
{
    uint8_t h[5 + GR_CRDT_HDR] = {0xc6};

    w->b = b;
    w->start = b->len;
    w->n = 0;
    h[5] = (uint8_t)type;
    h[6] = 1;
    gr_le_wr64(h + 5 + 4, eh);
    gr_le_wr64(h + 5 + 12, eo);
    return gr_tbuf_put(b, h, sizeof(h));
}

int gr_crdt_put_field(gr_crdt_wr *w, const gr_cfield *f, const gr_tcnt *cnt)
{
    uint8_t h[GR_CRDT_FHDR] = {0};

    gr_le_wr32(h, f->nlen);
    gr_le_wr32(h + 4, (f->flags & GR_CF_TOMB) ? 0 : f->vlen);
    gr_le_wr64(h + 8, f->hlc);
    gr_le_wr64(h + 16, f->origin);
    h[24] = f->flags;
    h[25] = f->ncnt;
    if (gr_tbuf_put(w->b, h, sizeof(h)) < 0) {
        return -ENOMEM;
    }
    for (int i = 0; i < f->ncnt; i++) {
        uint8_t c[24];
        gr_tcnt x = cnt ? cnt[i] : gr_cfield_cnt(f, i);

        gr_le_wr64(c, x.node);
        gr_le_wr64(c + 8, x.incs);
        gr_le_wr64(c + 16, x.decs);
        if (gr_tbuf_put(w->b, c, sizeof(c)) < 0) {
            return -ENOMEM;
        }
    }
    if (gr_tbuf_put(w->b, f->name, f->nlen) < 0 ||
        (!(f->flags & GR_CF_TOMB) && gr_tbuf_put(w->b, f->val, f->vlen) < 0)) {
        return -ENOMEM;
    }
    w->n++;
    return 0;
}

int gr_crdt_put_mem(gr_crdt_wr *w, const uint8_t *m, uint32_t mlen, const gr_crec *rec,
                    uint32_t nrec)
{
    uint8_t h[8];

    gr_le_wr32(h, mlen);
    gr_le_wr32(h + 4, nrec);
    if (gr_tbuf_put(w->b, h, sizeof(h)) < 0) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nrec; i++) {
        uint8_t c[32];

        gr_le_wr64(c, rec[i].node);
        gr_le_wr64(c + 8, rec[i].add);
        gr_le_wr64(c + 16, rec[i].rem);
        gr_le_wr64(c + 24, rec[i].rem_at);
        if (gr_tbuf_put(w->b, c, sizeof(c)) < 0) {
            return -ENOMEM;
        }
    }
    if (gr_tbuf_put(w->b, m, mlen) < 0) {
        return -ENOMEM;
    }
    w->n++;
    return 0;
}

void gr_crdt_end(gr_crdt_wr *w)
{
    uint8_t *p = w->b->p + w->start;
    uint32_t plen = (uint32_t)(w->b->len - w->start - 5);

    p[1] = (uint8_t)(plen >> 24);
    p[2] = (uint8_t)(plen >> 16);
    p[3] = (uint8_t)(plen >> 8);
    p[4] = (uint8_t)plen;
    gr_le_wr32(p + 5 + 20, w->n);
}

/* ---- merging ------------------------------------------------------------------------------ */

typedef struct ver {
    uint64_t h, o;
} ver;

static int ver_cmp(ver a, ver b)
{
    if (a.h != b.h) {
        return a.h < b.h ? -1 : 1;
    }
    return a.o < b.o ? -1 : a.o > b.o;
}

/* A field's epoch: a counter's is the write it started from (its node-0
 * component, else (0, 0)); a value's or a tombstone's its own version. */
static ver field_epoch(const gr_cfield *f)
{
    if (f->flags & GR_CF_COUNTER) {
        for (int i = 0; i < f->ncnt; i++) {
            gr_tcnt c = gr_cfield_cnt(f, i);

            if (c.node == 0) {
                return (ver){c.incs, c.decs};
            }
        }
        return (ver){0, 0};
    }
    return (ver){f->hlc, f->origin};
}

int64_t gr_crdt_cnt_total(const gr_tcnt *c, int n)
{
    __int128 t = 0;

    for (int i = 0; i < n; i++) {
        if (c[i].node != 0) {
            t += (__int128)c[i].incs - (__int128)c[i].decs;
        }
    }
    return t > INT64_MAX ? INT64_MAX : t < INT64_MIN ? INT64_MIN : (int64_t)t;
}

/* Merge two fields of one name into w. */
static int field_merge(gr_crdt_wr *w, const gr_cfield *a, const gr_cfield *b)
{
    int c = ver_cmp(field_epoch(a), field_epoch(b));
    bool ca = a->flags & GR_CF_COUNTER, cb = b->flags & GR_CF_COUNTER;

    if (c > 0) {
        return gr_crdt_put_field(w, a, NULL);
    }
    if (c < 0) {
        return gr_crdt_put_field(w, b, NULL);
    }
    if (ca && cb) { /* one epoch: component-wise max, the later version */
        gr_tcnt cnt[255];
        uint8_t vbuf[9];
        gr_cfield f;
        int n = 0, i = 0, j = 0;
        bool later = ver_cmp((ver){a->hlc, a->origin}, (ver){b->hlc, b->origin}) >= 0;

        while (i < a->ncnt || j < b->ncnt) {
            gr_tcnt x, ya = i < a->ncnt ? gr_cfield_cnt(a, i) : (gr_tcnt){0},
                       yb = j < b->ncnt ? gr_cfield_cnt(b, j) : (gr_tcnt){0};

            if (n == 255) {
                return GR_EFULL;
            }
            if (j >= b->ncnt || (i < a->ncnt && ya.node < yb.node)) {
                x = ya;
                i++;
            } else if (i >= a->ncnt || yb.node < ya.node) {
                x = yb;
                j++;
            } else {
                x = ya;
                x.incs = ya.incs > yb.incs ? ya.incs : yb.incs;
                x.decs = ya.decs > yb.decs ? ya.decs : yb.decs;
                i++;
                j++;
            }
            cnt[n++] = x;
        }
        f = later ? *a : *b;
        f.ncnt = (uint8_t)n;
        f.val = vbuf;
        f.vlen = (uint32_t)gr_crdt_pack_int(vbuf, gr_crdt_cnt_total(cnt, n));
        return gr_crdt_put_field(w, &f, cnt);
    }
    if (ca || cb) { /* the counter grown from that write */
        return gr_crdt_put_field(w, ca ? a : b, NULL);
    }
    /* the same write (one version), or both gone: a tombstone wins the tie */
    return gr_crdt_put_field(w, (b->flags & GR_CF_TOMB) ? b : a, NULL);
}

/* Merge the records of one member (each sorted by node) into w. */
static int mem_merge(gr_crdt_wr *w, const gr_cmem *a, const gr_cmem *b)
{
    gr_crec stack[16], *rec = stack;
    uint32_t n = 0, i = 0, j = 0;
    int r;

    if (a->nrec + b->nrec > 16 && !(rec = malloc((a->nrec + b->nrec) * sizeof(*rec)))) {
        return -ENOMEM;
    }
    while (i < a->nrec || j < b->nrec) {
        gr_crec x, ya = i < a->nrec ? gr_cmem_rec(a, i) : (gr_crec){0},
                   yb = j < b->nrec ? gr_cmem_rec(b, j) : (gr_crec){0};

        if (j >= b->nrec || (i < a->nrec && ya.node < yb.node)) {
            x = ya;
            i++;
        } else if (i >= a->nrec || yb.node < ya.node) {
            x = yb;
            j++;
        } else {
            x.node = ya.node;
            x.add = ya.add > yb.add ? ya.add : yb.add;
            x.rem = ya.rem > yb.rem ? ya.rem : yb.rem;
            x.rem_at = ya.rem_at > yb.rem_at ? ya.rem_at : yb.rem_at;
            i++;
            j++;
        }
        rec[n++] = x;
    }
    r = gr_crdt_put_mem(w, a->m, a->mlen, rec, n);
    if (rec != stack) {
        free(rec);
    }
    return r;
}

int gr_crdt_merge(gr_tbuf *out, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    gr_crdt_rd ra, rb;
    gr_crdt_wr w;
    int ka, kb, r;

    out->len = 0;
    if (gr_crdt_open(&ra, a, alen) < 0 || gr_crdt_open(&rb, b, blen) < 0 || ra.type != rb.type) {
        return GR_ECORRUPT;
    }
    if ((r = gr_crdt_begin(&w, out, ra.type, ra.eh, ra.eo)) < 0) {
        return r;
    }
    if (ra.type == GR_CRDT_MAP) {
        gr_cfield fa, fb;

        ka = gr_crdt_next_field(&ra, &fa);
        kb = gr_crdt_next_field(&rb, &fb);
        while (ka > 0 || kb > 0) {
            int c = ka <= 0 ? 1 : kb <= 0 ? -1 : bytes_cmp(fa.name, fa.nlen, fb.name, fb.nlen);

            if (c < 0) {
                r = gr_crdt_put_field(&w, &fa, NULL);
            } else if (c > 0) {
                r = gr_crdt_put_field(&w, &fb, NULL);
            } else {
                r = field_merge(&w, &fa, &fb);
            }
            if (r < 0) {
                return r;
            }
            if (c <= 0) {
                ka = gr_crdt_next_field(&ra, &fa);
            }
            if (c >= 0) {
                kb = gr_crdt_next_field(&rb, &fb);
            }
        }
    } else {
        gr_cmem ma, mb;

        ka = gr_crdt_next_mem(&ra, &ma);
        kb = gr_crdt_next_mem(&rb, &mb);
        while (ka > 0 || kb > 0) {
            int c = ka <= 0 ? 1 : kb <= 0 ? -1 : bytes_cmp(ma.m, ma.mlen, mb.m, mb.mlen);

            if (c < 0) {
                r = mem_merge(&w, &ma, &(gr_cmem){.m = ma.m, .mlen = ma.mlen});
            } else if (c > 0) {
                r = mem_merge(&w, &mb, &(gr_cmem){.m = mb.m, .mlen = mb.mlen});
            } else {
                r = mem_merge(&w, &ma, &mb);
            }
            if (r < 0) {
                return r;
            }
            if (c <= 0) {
                ka = gr_crdt_next_mem(&ra, &ma);
            }
            if (c >= 0) {
                kb = gr_crdt_next_mem(&rb, &mb);
            }
        }
    }
    if (ka < 0 || kb < 0) {
        return GR_ECORRUPT;
    }
    gr_crdt_end(&w);
    return 0;
}

/* ---- purging and summaries ---------------------------------------------------------------- */

int gr_crdt_purge(gr_tbuf *out, const uint8_t *v, size_t vlen, bool all, uint64_t cut_ms)
{
    gr_crdt_rd r;
    gr_crdt_wr w;
    int k, rc, changed = 0;

    out->len = 0;
    if (gr_crdt_open(&r, v, vlen) < 0) {
        return GR_ECORRUPT;
    }
    if ((rc = gr_crdt_begin(&w, out, r.type, r.eh, r.eo)) < 0) {
        return rc;
    }
    for (;;) {
        if (r.type == GR_CRDT_MAP) {
            gr_cfield f;

            if ((k = gr_crdt_next_field(&r, &f)) <= 0) {
                break;
            }
            if ((f.flags & GR_CF_TOMB) && (all || (f.hlc >> 16) < cut_ms)) {
                changed = 1;
                continue;
            }
            rc = gr_crdt_put_field(&w, &f, NULL);
        } else {
            gr_cmem m;
            gr_crec stack[16], *rec = stack;
            uint32_t n = 0;

            if ((k = gr_crdt_next_mem(&r, &m)) <= 0) {
                break;
            }
            if (m.nrec > 16 && !(rec = malloc(m.nrec * sizeof(*rec)))) {
                return -ENOMEM;
            }
            for (uint32_t i = 0; i < m.nrec; i++) {
                gr_crec c = gr_cmem_rec(&m, i);

                if (c.add <= c.rem && (all || (c.rem_at >> 16) < cut_ms)) {
                    changed = 1;
                    continue;
                }
                rec[n++] = c;
            }
            rc = n ? gr_crdt_put_mem(&w, m.m, m.mlen, rec, n) : 0;
            if (rec != stack) {
                free(rec);
            }
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (k < 0) {
        return GR_ECORRUPT;
    }
    gr_crdt_end(&w);
    return changed;
}

void gr_crdt_summary(const uint8_t *v, size_t vlen, uint32_t *ret_live, bool *ret_garbage)
{
    gr_crdt_rd r;
    uint32_t live = 0;
    bool garbage = false;

    if (gr_crdt_open(&r, v, vlen) == 0) {
        if (r.type == GR_CRDT_MAP) {
            gr_cfield f;

            while (gr_crdt_next_field(&r, &f) > 0) {
                if (f.flags & GR_CF_TOMB) {
                    garbage = true;
                } else {
                    live++;
                }
            }
        } else {
            gr_cmem m;

            while (gr_crdt_next_mem(&r, &m) > 0) {
                bool l = false;

                for (uint32_t i = 0; i < m.nrec; i++) {
                    gr_crec c = gr_cmem_rec(&m, i);

                    if (c.add > c.rem) {
                        l = true;
                    } else {
                        garbage = true;
                    }
                }
                live += l;
            }
        }
    }
    *ret_live = live;
    *ret_garbage = garbage;
}
