/* SPDX-License-Identifier: Apache-2.0 */
/*
 * discover.c - DNS discovery: names configured with --discover-dns are looked
 * up every period with evdns (asynchronous, on the dist loop), and every
 * address an answer holds is a candidate member, dialled at the name's port
 * without knowing which node answers there. The node name is learnt from the
 * handshake (the dial expects no particular peer; the cookie proof is the same
 * as for any link), and from then on the member is the member table's like
 * any other: dialled by name with backoff, gossiped, tie-broken (members.c).
 *
 * Design notes
 * - Candidates per name: the addresses of the latest answer
 *   (gr_dist_disc_merge). An address that leaves the answer is forgotten
 *   here; the member behind it is not touched (a member that vanishes from
 *   DNS stays, and stays up while its link does). A failed lookup keeps the
 *   previous candidates.
 * - A candidate is probed (dialled anonymously) at a tick when it is not this
 *   node, no probe of it is in flight, no link of ours is dialled to that
 *   address already, and the node learnt there (if any) is not a member that
 *   members.c is already keeping (UP, being dialled or redialled; a LEFT one is
 *   probed again: it may be back). A probe that fails is tried again at the
 *   next tick, so an address that refuses costs one connect a period.
 * - This node: a candidate at our own port whose address is ours (the one we
 *   listen on, or any local address when we listen on a wildcard) is never
 *   dialled; a probe that ends in a name clash (our own name answered) marks
 *   its candidate as us too.
 * - The hooks: discovery is a protocol without frame kinds (kinds.c); its
 *   member_up hook learns the name a probe reached, its closed hook ends the
 *   probe.
 *
 * Threading: dist thread only, except gr_dist_disc_new / gr_dist_disc_free
 * (before the thread starts, after it ended) and gr_dist_disc_merge (pure).
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One configured name. */
typedef struct disc_name {
    dist_disc *disc;                       /* owner */
    char name[GR_DIST_HOST_MAX + 1];       /* DNS name */
    uint16_t port;                         /* 0: our bound port */
    gr_dist_disc_cand *cands;              /* the latest answer's addresses */
    size_t ncands;                         /* entries in cands */
    struct disc_req *pending;              /* the lookup in flight, or NULL */
    struct evdns_getaddrinfo_request *req; /* its handle, when it did not answer at once */
    int last_err;                          /* last lookup's evutil error (logged on change) */
} disc_name;

/* One lookup's context, the callback's argument. evdns may call back after a
 * cancel or never (a loop that has ended), so it is not part of disc_name:
 * gr_dist_disc_free detaches it (name NULL) and the callback frees it. */
typedef struct disc_req {
    disc_name *name; /* the name looked up; NULL: detached, drop the answer */
} disc_req;

struct dist_disc {
    gr_dist *d;           /* owner */
    disc_name *names;     /* nnames configured names */
    size_t nnames;        /* entries in names */
    unsigned interval_ms; /* lookup period */
    struct event *timer;  /* the period (persistent) */
    bool stopped;         /* gr_dist_disc_stop ran: no more lookups or probes */
};

/* ---- the candidate set (pure) ------------------------------------------------------ */

static bool addr_eq(const gr_dist_disc_addr *x, const gr_dist_disc_addr *y)
{
    return x->family == y->family && x->port == y->port && memcmp(x->addr, y->addr, 16) == 0;
}

int gr_dist_disc_merge(gr_dist_disc_cand **cands, size_t *ncands, const gr_dist_disc_addr *addrs,
                       size_t n, size_t *ret_added, size_t *ret_removed)
{
    gr_dist_disc_cand *out;
    size_t nout = 0, added = 0, removed = 0;

    if ((out = calloc(n ? n : 1, sizeof(*out))) == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        bool dup = false;

        if (addrs[i].family != AF_INET && addrs[i].family != AF_INET6) {
            continue;
        }
        for (size_t j = 0; j < nout && !dup; j++) {
            dup = addr_eq(&out[j].addr, &addrs[i]);
        }
        if (dup || nout >= GR_DIST_DISC_CANDS_MAX) {
            continue;
        }
        out[nout].addr = addrs[i];
        for (size_t j = 0; j < *ncands; j++) {
            if (addr_eq(&(*cands)[j].addr, &addrs[i])) {
                out[nout] = (*cands)[j]; /* keeps what was learnt about it */
                break;
            }
        }
        if (out[nout].seen == 0) {
            out[nout].seen = 1;
            added++;
        }
        nout++;
    }
    for (size_t j = 0; j < *ncands; j++) {
        bool kept = false;

        for (size_t i = 0; i < nout && !kept; i++) {
            kept = addr_eq(&out[i].addr, &(*cands)[j].addr);
        }
        removed += !kept;
    }
    free(*cands);
    *cands = out;
    *ncands = nout;
    if (ret_added) {
        *ret_added = added;
    }
    if (ret_removed) {
        *ret_removed = removed;
    }
    return 0;
}

void gr_dist_disc_addr_format(const gr_dist_disc_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->family == AF_INET || a->family == AF_INET6) {
        inet_ntop(a->family, a->addr, ip, sizeof(ip));
    }
    snprintf(buf, cap, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, (unsigned)a->port);
}

/* a as a socket address. Returns its length. */
static socklen_t to_sockaddr(const gr_dist_disc_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, a->addr, 4);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->addr, 16);
    return sizeof(*in6);
}

/* ---- this node --------------------------------------------------------------------- */

/* Is a (at our port) this node's address: the listen address when it is a
 * literal, else any address of this host (one we can bind). */
static bool is_self(gr_dist *d, const gr_dist_disc_addr *a)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t lit[16] = {0};
    bool any;
    int fd;

    if (a->port != atomic_load(&d->port)) {
        return false;
    }
    any = strcmp(d->listen_host, "0.0.0.0") == 0 || strcmp(d->listen_host, "::") == 0;
    if (!any) {
        if (inet_pton(AF_INET, d->listen_host, lit) == 1) {
            return a->family == AF_INET && memcmp(lit, a->addr, 4) == 0;
        }
        if (inet_pton(AF_INET6, d->listen_host, lit) == 1) {
            return a->family == AF_INET6 && memcmp(lit, a->addr, 16) == 0;
        }
        /* a listen host name: fall through to "is it an address of this host" */
    }
    len = to_sockaddr(a, &ss);
    ((struct sockaddr_in *)&ss)->sin_port = 0; /* same offset in sockaddr_in6 */
    if ((fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        return false;
    }
    any = bind(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return any;
}

/* ---- probes ------------------------------------------------------------------------ */

/* Is some link of ours, or a dial in progress, aimed at a already? */
static bool dialled(gr_dist *d, const gr_dist_disc_addr *a)
{
    char buf[DIST_ADDR_MAX];

    gr_dist_disc_addr_format(a, buf, sizeof(buf));
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->outgoing && !c->retired && c->state != CONN_DEAD && strcmp(c->addr, buf) == 0) {
            return true;
        }
    }
    return false;
}

static void probe(disc_name *n, gr_dist_disc_cand *k)
{
    gr_dist *d = n->disc->d;
    struct sockaddr_storage ss;
    socklen_t len;
    uint64_t id = 0;
    dist_member *m;

    if (k->probe != 0 && gr_dist_conn_find(d, k->probe) == NULL) {
        k->probe = 0; /* ended without our closed hook seeing it */
    }
    if (k->self || k->probe != 0) {
        return;
    }
    if (k->node[0] && (m = gr_dist_mem_find(d, k->node)) != NULL && m->state != GR_DIST_LEFT &&
        (m->state != GR_DIST_DOWN || m->port != 0)) {
        return; /* members.c keeps it: up, dialled or redialled */
    }
    if (is_self(d, &k->addr)) {
        char buf[DIST_ADDR_MAX];

        gr_dist_disc_addr_format(&k->addr, buf, sizeof(buf));
        gr_info(DIST_LOG, "discover %s: %s is this node", n->name, buf);
        k->self = true;
        return;
    }
    if (dialled(d, &k->addr)) {
        return;
    }
    len = to_sockaddr(&k->addr, &ss);
    if (gr_dist_conn_probe(d, (struct sockaddr *)&ss, len, &id) == 0 &&
        gr_dist_conn_find(d, id) != NULL) {
        k->probe = id; /* else it failed at once: the next tick tries again */
    }
}

/* The candidate whose probe is link id, and its name. */
static gr_dist_disc_cand *find_probe(dist_disc *disc, uint64_t id, disc_name **ret_name)
{
    for (size_t i = 0; i < disc->nnames; i++) {
        disc_name *n = &disc->names[i];

        for (size_t j = 0; j < n->ncands; j++) {
            if (n->cands[j].probe == id) {
                *ret_name = n;
                return &n->cands[j];
            }
        }
    }
    return NULL;
}

/* ---- lookups ----------------------------------------------------------------------- */

static void on_answer(int err, struct evutil_addrinfo *ai, void *arg)
{
    disc_req *q = arg;
    disc_name *n = q->name;
    gr_dist_disc_addr addrs[GR_DIST_DISC_CANDS_MAX];
    size_t na = 0, added = 0, removed = 0;

    free(q);
    if (n != NULL) {
        n->pending = NULL;
        n->req = NULL;
    }
    if (n == NULL || err == EVUTIL_EAI_CANCEL || n->disc->stopped) {
        if (ai) {
            evutil_freeaddrinfo(ai);
        }
        return;
    }
    if (err != 0) {
        if (err != n->last_err) {
            gr_warn(DIST_LOG, "discover %s: lookup failed: %s (candidates kept: %zu)", n->name,
                    evutil_gai_strerror(err), n->ncands);
        }
        n->last_err = err;
        goto probe_all;
    }
    n->last_err = 0;
    for (struct evutil_addrinfo *p = ai; p && na < GR_DIST_DISC_CANDS_MAX; p = p->ai_next) {
        gr_dist_disc_addr *a = &addrs[na];

        memset(a, 0, sizeof(*a));
        if (p->ai_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)p->ai_addr;

            a->family = AF_INET;
            a->port = ntohs(in->sin_port);
            memcpy(a->addr, &in->sin_addr, 4);
        } else if (p->ai_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)p->ai_addr;

            a->family = AF_INET6;
            a->port = ntohs(in6->sin6_port);
            memcpy(a->addr, &in6->sin6_addr, 16);
        } else {
            continue;
        }
        na++;
    }
    if (ai) {
        evutil_freeaddrinfo(ai);
    }
    if (gr_dist_disc_merge(&n->cands, &n->ncands, addrs, na, &added, &removed) < 0) {
        return; /* out of memory: the previous candidates stay */
    }
    if (added || removed) {
        gr_info(DIST_LOG, "discover %s: %zu address(es), %zu new, %zu gone", n->name, n->ncands,
                added, removed);
    }
probe_all:
    for (size_t i = 0; i < n->ncands; i++) {
        probe(n, &n->cands[i]);
    }
}

static void lookup(disc_name *n)
{
    gr_dist *d = n->disc->d;
    struct evutil_addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct evdns_getaddrinfo_request *req;
    char port[8];
    disc_req *q;

    if (n->pending || d->dns == NULL || (q = malloc(sizeof(*q))) == NULL) {
        return;
    }
    snprintf(port, sizeof(port), "%u", (unsigned)(n->port ? n->port : atomic_load(&d->port)));
    q->name = n;
    n->pending = q;
    /* may answer at once (the hosts file, a literal): on_answer has run then */
    req = evdns_getaddrinfo(d->dns, n->name, port, &hints, on_answer, q);
    if (n->pending == q) {
        n->req = req;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    dist_disc *disc = arg;

    (void)fd;
    (void)what;
    if (disc->stopped || disc->d->stopping) {
        return;
    }
    for (size_t i = 0; i < disc->nnames; i++) {
        lookup(&disc->names[i]);
    }
}

/* ---- the protocol hooks ------------------------------------------------------------ */

static void on_member_up(dist_conn *c)
{
    gr_dist *d = c->d;
    disc_name *n;
    gr_dist_disc_cand *k;

    if (d->disc == NULL || !c->outgoing || (k = find_probe(d->disc, c->id, &n)) == NULL) {
        return;
    }
    if (strcmp(k->node, c->peer.name) != 0) {
        char buf[DIST_ADDR_MAX];

        gr_dist_disc_addr_format(&k->addr, buf, sizeof(buf));
        gr_info(DIST_LOG, "discover %s: %s is %s", n->name, buf, c->peer.name);
        snprintf(k->node, sizeof(k->node), "%s", c->peer.name);
    }
    k->probe = 0; /* done: the link is the member table's now */
    k->fails = 0;
}

static void on_closed(dist_conn *c, int err, const char *why)
{
    gr_dist *d = c->d;
    disc_name *n;
    gr_dist_disc_cand *k;

    (void)why;
    if (d->disc == NULL || !c->outgoing || (k = find_probe(d->disc, c->id, &n)) == NULL) {
        return;
    }
    k->probe = 0;
    if (c->fail == GR_ENAMECLASH) {
        k->self = true; /* our own name answered there */
        return;
    }
    if (k->fails++ == 0) { /* the first of a run: then quiet until one succeeds */
        char buf[DIST_ADDR_MAX];
        int e = c->fail ? c->fail : err;

        gr_dist_disc_addr_format(&k->addr, buf, sizeof(buf));
        gr_info(DIST_LOG, "discover %s: no node at %s (%s); tried again every %u ms", n->name, buf,
                gr_errid(e ? e : GR_ENOCONN), n->disc->interval_ms);
    }
}

const dist_proto gr_dist_disc_proto = {
    .name = "discover",
    .member_up = on_member_up,
    .closed = on_closed,
};

/* ---- life ---------------------------------------------------------------------------- */

int gr_dist_disc_new(gr_dist *d, const gr_dist_dns *names, size_t n, unsigned interval_ms)
{
    dist_disc *disc;
    int r;

    if (n == 0) {
        return 0;
    }
    if (names == NULL || n > GR_DIST_DISC_NAMES_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (names[i].name == NULL || names[i].name[0] == '\0' ||
            strlen(names[i].name) > GR_DIST_HOST_MAX) {
            return -EINVAL;
        }
    }
    if ((disc = calloc(1, sizeof(*disc))) == NULL ||
        (disc->names = calloc(n, sizeof(*disc->names))) == NULL) {
        free(disc);
        return -ENOMEM;
    }
    disc->d = d;
    disc->nnames = n;
    disc->interval_ms = interval_ms ? interval_ms : GR_DIST_DISCOVER_DEFAULT_MS;
    for (size_t i = 0; i < n; i++) {
        disc->names[i].disc = disc;
        snprintf(disc->names[i].name, sizeof(disc->names[i].name), "%s", names[i].name);
        disc->names[i].port = names[i].port;
    }
    d->disc = disc;
    /* after the built-in protocols: a probe's link is a member's by the
     * time our member_up hook runs */
    if ((r = gr_dist_proto_add(d, &gr_dist_disc_proto)) < 0) {
        gr_dist_disc_free(d);
        return r;
    }
    return 0;
}

int gr_dist_disc_start(gr_dist *d)
{
    dist_disc *disc = d->disc;
    struct timeval tv;

    if (disc == NULL) {
        return 0;
    }
    if ((disc->timer = event_new(d->base, -1, EV_PERSIST, on_tick, disc)) == NULL) {
        return -ENOMEM;
    }
    tv.tv_sec = disc->interval_ms / 1000;
    tv.tv_usec = (disc->interval_ms % 1000) * 1000;
    event_add(disc->timer, &tv);
    event_active(disc->timer, EV_TIMEOUT, 0); /* the first lookups at once */
    for (size_t i = 0; i < disc->nnames; i++) {
        gr_info(DIST_LOG, "discover %s:%u every %u ms", disc->names[i].name,
                (unsigned)(disc->names[i].port ? disc->names[i].port : atomic_load(&d->port)),
                disc->interval_ms);
    }
    return 0;
}

void gr_dist_disc_stop(gr_dist *d)
{
    dist_disc *disc = d->disc;

    if (disc == NULL) {
        return;
    }
    disc->stopped = true;
    if (disc->timer) {
        event_del(disc->timer);
    }
    for (size_t i = 0; i < disc->nnames; i++) {
        disc_name *n = &disc->names[i];

        if (n->req) {
            /* its callback comes later (EVUTIL_EAI_CANCEL), if the loop runs */
            evdns_getaddrinfo_cancel(n->req);
            n->req = NULL;
        }
        if (n->pending) {
            n->pending->name = NULL;
            n->pending = NULL;
        }
    }
}

void gr_dist_disc_free(gr_dist *d)
{
    dist_disc *disc = d->disc;

    if (disc == NULL) {
        return;
    }
    gr_dist_disc_stop(d);
    if (disc->timer) {
        event_free(disc->timer);
    }
    for (size_t i = 0; i < disc->nnames; i++) {
        free(disc->names[i].cands);
    }
    free(disc->names);
    free(disc);
    d->disc = NULL;
}
