/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic.c - the subscription index (a token trie) over topic patterns; the
 * grammar it relies on is proto/topic.c.
 *
 * Design notes
 *   A trie node stands for one pattern prefix. Its literal children sit in a
 *   chained hash keyed by the token (grown by doubling), its `*` child apart,
 *   so a match follows at most two children per topic token. Items hang on the
 *   node where their pattern ends (`exact`), or, for a pattern ending in `>`,
 *   on the node before the `>` (`gt`): a topic with at least one token left
 *   at that node matches them. Each node is reached by exactly one prefix, so
 *   a match visits a node at most once and reports each item once.
 *   A node with no item and no child is freed at once (gr_tidx_del walks up
 *   through `parent`), so the trie never outgrows the live patterns.
 *   No lock and no allocation on the match path; the owner locks.
 */
#include "pubsub/topic.h"

#include "proto/err.h"
#include "util/shash.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the trie ----------------------------------------------------------------- */

typedef struct node {
    struct node *parent; /* NULL for the root */
    struct node *hnext;  /* chain in the parent's child hash */
    struct node **kids;  /* literal children, chained hash; NULL when none yet */
    size_t kmask;        /* kids buckets - 1 */
    size_t nkids;        /* literal children */
    struct node *star;   /* the `*` child */
    gr_tidx_item *exact; /* items whose pattern ends here */
    gr_tidx_item *gt;    /* items whose pattern is this prefix + ".>" */
    uint64_t hash;       /* hash of tok */
    bool is_star;        /* this is its parent's `*` child */
    size_t toklen;       /* bytes in tok */
    char tok[];          /* the literal token (empty for root and `*`) */
} node;

struct gr_tidx {
    node *root;                      /* the empty prefix */
    size_t nodes;                    /* alive, root included */
    uint8_t skey[GR_SHASH_KEYBYTES]; /* hash_tok's key (random) */
};

/* SipHash-2-4 under the index's secret random key: tokens come from
 * clients (a Redis SUBSCRIBE), and with an unkeyed hash (FNV-1a before)
 * anyone could pick tokens that all share one chain. */
static uint64_t hash_tok(const gr_tidx *idx, const char *s, size_t n)
{
    return gr_shash(idx->skey, s, n);
}

static node *node_new(node *parent, const char *tok, size_t tl, bool star, uint64_t hash)
{
    node *n = calloc(1, sizeof(*n) + tl + 1);

    if (n == NULL) {
        return NULL;
    }
    n->parent = parent;
    n->is_star = star;
    n->toklen = tl;
    memcpy(n->tok, tok, tl);
    n->hash = hash;
    return n;
}

int gr_tidx_new(gr_tidx **ret_idx)
{
    gr_tidx *idx = calloc(1, sizeof(*idx));

    if (idx == NULL || (idx->root = node_new(NULL, "", 0, false, 0)) == NULL) {
        free(idx);
        return -ENOMEM;
    }
    if (gr_shash_key_init(idx->skey) < 0) {
        free(idx->root);
        free(idx);
        return -ENOMEM;
    }
    idx->nodes = 1;
    *ret_idx = idx;
    return 0;
}

static void node_free_tree(node *n)
{
    if (n == NULL) {
        return;
    }
    if (n->kids) {
        for (size_t i = 0; i <= n->kmask; i++) {
            node *k = n->kids[i];

            while (k) {
                node *next = k->hnext;

                node_free_tree(k);
                k = next;
            }
        }
    }
    node_free_tree(n->star);
    free(n->kids);
    free(n);
}

gr_tidx *gr_tidx_free(gr_tidx *idx)
{
    if (idx != NULL) {
        node_free_tree(idx->root);
        free(idx);
    }
    return NULL;
}

static node *kid_find(const node *n, const char *tok, size_t tl, uint64_t h)
{
    node *k;

    if (n->kids == NULL) {
        return NULL;
    }
    for (k = n->kids[h & n->kmask]; k; k = k->hnext) {
        if (k->hash == h && k->toklen == tl && memcmp(k->tok, tok, tl) == 0) {
            return k;
        }
    }
    return NULL;
}

/* Insert k into n's child hash, growing it when the chains average > 1. */
static int kid_insert(node *n, node *k)
{
    if (n->kids == NULL || n->nkids >= n->kmask + 1) {
        size_t cap = n->kids ? (n->kmask + 1) * 2 : 4;
        node **nb = calloc(cap, sizeof(*nb));

        if (nb == NULL) {
            if (n->kids == NULL) {
                return -ENOMEM;
            }
        } else {
            for (size_t i = 0; n->kids && i <= n->kmask; i++) {
                node *c = n->kids[i];

                while (c) {
                    node *next = c->hnext;

                    c->hnext = nb[c->hash & (cap - 1)];
                    nb[c->hash & (cap - 1)] = c;
                    c = next;
                }
            }
            free(n->kids);
            n->kids = nb;
            n->kmask = cap - 1;
        }
    }
    k->hnext = n->kids[k->hash & n->kmask];
    n->kids[k->hash & n->kmask] = k;
    n->nkids++;
    return 0;
}

static void kid_remove(node *n, node *k)
{
    node **pp = &n->kids[k->hash & n->kmask];

    while (*pp != k) {
        pp = &(*pp)->hnext;
    }
    *pp = k->hnext;
    n->nkids--;
}

static bool node_empty(const node *n)
{
    return n->exact == NULL && n->gt == NULL && n->star == NULL && n->nkids == 0;
}

/* Free n and every ancestor left empty by it (never the root). */
static void prune(gr_tidx *idx, node *n)
{
    while (n->parent != NULL && node_empty(n)) {
        node *p = n->parent;

        if (n->is_star) {
            p->star = NULL;
        } else {
            kid_remove(p, n);
        }
        free(n->kids);
        free(n);
        idx->nodes--;
        n = p;
    }
}

static void list_push(gr_tidx_item **head, gr_tidx_item *it)
{
    it->prev = NULL;
    it->next = *head;
    if (*head) {
        (*head)->prev = it;
    }
    *head = it;
}

int gr_tidx_add(gr_tidx *idx, const char *pattern, size_t len, gr_tidx_item *item)
{
    node *n = idx->root;
    size_t pos = 0, tl;
    const char *tok;

    if (gr_topic_check(pattern, len, true) != GR_TOPIC_OK) {
        return GR_EBADARG;
    }
    while (gr_topic_next_token(pattern, len, &pos, &tok, &tl)) {
        node *k;

        if (tl == 1 && tok[0] == '>') {
            item->gt = true;
            item->node = n;
            list_push(&n->gt, item);
            return 0;
        }
        if (tl == 1 && tok[0] == '*') {
            if ((k = n->star) == NULL) {
                if ((k = node_new(n, "", 0, true, 0)) == NULL) {
                    goto nomem;
                }
                n->star = k;
                idx->nodes++;
            }
        } else {
            uint64_t h = hash_tok(idx, tok, tl);

            if ((k = kid_find(n, tok, tl, h)) == NULL) {
                if ((k = node_new(n, tok, tl, false, h)) == NULL) {
                    goto nomem;
                }
                if (kid_insert(n, k) < 0) {
                    free(k);
                    goto nomem;
                }
                idx->nodes++;
            }
        }
        n = k;
    }
    item->gt = false;
    item->node = n;
    list_push(&n->exact, item);
    return 0;
nomem:
    prune(idx, n); /* nodes made on the way, now empty */
    return -ENOMEM;
}

void gr_tidx_del(gr_tidx *idx, gr_tidx_item *item)
{
    node *n = item->node;

    if (n == NULL) {
        return;
    }
    if (item->prev) {
        item->prev->next = item->next;
    } else if (item->gt) {
        n->gt = item->next;
    } else {
        n->exact = item->next;
    }
    if (item->next) {
        item->next->prev = item->prev;
    }
    item->prev = item->next = NULL;
    item->node = NULL;
    prune(idx, n);
}

typedef struct match_ctx {
    const char *toks[GR_TOPIC_MAX_TOKENS]; /* topic tokens */
    size_t lens[GR_TOPIC_MAX_TOKENS];      /* their lengths */
    uint64_t hashes[GR_TOPIC_MAX_TOKENS];  /* their hashes, computed once */
    size_t n;                              /* token count */
    bool (*fn)(gr_tidx_item *, void *);    /* the caller's callback */
    void *ud;                              /* its argument */
    int calls;                             /* items reported */
    bool stop;                             /* fn asked to stop */
} match_ctx;

static void emit(match_ctx *m, gr_tidx_item *it)
{
    for (; it && !m->stop; it = it->next) {
        m->calls++;
        if (!m->fn(it, m->ud)) {
            m->stop = true;
        }
    }
}

/* Depth is at most GR_TOPIC_MAX_TOKENS; each level recurses into at most two
 * children (the literal one and `*`). */
static void walk(match_ctx *m, const node *n, size_t i)
{
    node *k;

    if (m->stop) {
        return;
    }
    if (i == m->n) {
        emit(m, n->exact);
        return;
    }
    emit(m, n->gt);
    if ((k = kid_find(n, m->toks[i], m->lens[i], m->hashes[i])) != NULL) {
        walk(m, k, i + 1);
    }
    if (n->star) {
        walk(m, n->star, i + 1);
    }
}

int gr_tidx_match(const gr_tidx *idx, const char *topic, size_t len,
                  bool (*fn)(gr_tidx_item *item, void *ud), void *ud)
{
    match_ctx m = {.fn = fn, .ud = ud};
    size_t pos = 0;

    if (gr_topic_check(topic, len, false) != GR_TOPIC_OK) {
        return GR_EBADARG;
    }
    while (gr_topic_next_token(topic, len, &pos, &m.toks[m.n], &m.lens[m.n])) {
        m.hashes[m.n] = hash_tok(idx, m.toks[m.n], m.lens[m.n]);
        m.n++;
    }
    walk(&m, idx->root, 0);
    return m.calls;
}

size_t gr_tidx_nodes(const gr_tidx *idx)
{
    return idx->nodes;
}
