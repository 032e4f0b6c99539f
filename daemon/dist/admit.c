/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admit.c - who gets a handshake slot: the admission of accepted connections
 * that have not authenticated yet.
 *
 * A node serves at most `max` accepted connections in handshake at once
 * (DIST_UNAUTH_MAX). Without a policy, whoever opens that many connections
 * first keeps everyone else out, cookie or not. This file decides, for every
 * accepted socket, whether it gets a slot, whose slot it takes, or whether it
 * is refused, and it logs those decisions at a bounded rate.
 *
 * Design notes
 * - Sources. A source is the peer's IP address (the port is ignored). A
 *   source is *trusted* when a member's host is that address literal (a copy
 *   of those refreshed at most once a second), or when a peer from that
 *   address has completed a handshake (proved the cookie) since this node
 *   started: the last DIST_KNOWN_SRC such addresses are remembered. Nobody can
 *   become trusted without the cookie.
 * - Per-source share. An untrusted source holds at most `per_src` slots
 *   (DIST_UNAUTH_PER_SRC, 16 of 256); its next connection is refused. So one
 *   address cannot take the slots from anyone else.
 * - Eviction. When every slot is taken, the newcomer takes the slot of the
 *   idlest connection (oldest last input, a peer that has not sent its hello
 *   first) of the most represented untrusted source, provided that source
 *   holds more slots than the newcomer's own. A trusted newcomer may evict any
 *   untrusted connection; a trusted connection is only ever evicted for
 *   another trusted one from a less represented address. A newcomer from the
 *   most represented source is refused: flooding from many addresses then
 *   shares the slots out evenly, and an address with few connections (the
 *   operator, a member) always gets in.
 * - First message. An accepted peer has hello_ms (1 s) for its first handshake
 *   message; then the full GR_DIST_HANDSHAKE_TIMEOUT_MS from accept applies.
 *   An honest peer sends its hello right after connect; a silent one gives
 *   its slot back five times sooner.
 * - Refusal costs nothing per peer: no handshake state, no buffer. The socket
 *   gets one prebuilt Reject "busy" record (the CLI reports "node busy", exit
 *   3), its pending input is drained so that the close is a FIN rather than a
 *   reset that could overtake the Reject, and it is closed.
 * - Logs. Refusals, evictions and failed handshakes of accepted connections go
 *   through one rate limiter (util/ratelim.h): at most 5 lines a second, and
 *   one line a second later for the rest ("and 752 more in the last second").
 *
 * Threading: dist thread only (gr_dist_admit_init and _free: before the thread
 * starts / after it ended).
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "proto/handshake.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_BURST 5u /* lines a second about refused or failed handshakes */

void gr_dist_admit_init(gr_dist *d, const gr_dist_config *cfg)
{
    dist_admit *a = &d->admit;
    int n;

    a->max =
        cfg->unauth_max && cfg->unauth_max < DIST_UNAUTH_MAX ? cfg->unauth_max : DIST_UNAUTH_MAX;
    a->per_src = cfg->unauth_per_source ? cfg->unauth_per_source : DIST_UNAUTH_PER_SRC;
    if (a->per_src > a->max) {
        a->per_src = a->max;
    }
    a->hello_ms = cfg->hello_timeout_ms ? cfg->hello_timeout_ms : GR_DIST_HELLO_TIMEOUT_MS;
    if (a->hello_ms > GR_DIST_HANDSHAKE_TIMEOUT_MS) {
        a->hello_ms = GR_DIST_HANDSHAKE_TIMEOUT_MS;
    }
    a->log.window_ms = 1000;
    a->log.burst = LOG_BURST;
    n = gr_handshake_reject_record(GR_EBUSY, a->reject, sizeof(a->reject));
    a->reject_len = n > 0 ? (size_t)n : 0;
}

void gr_dist_admit_free(gr_dist *d)
{
    if (d->admit.log_ev) {
        event_free(d->admit.log_ev);
        d->admit.log_ev = NULL;
    }
}

void gr_dist_admit_src(const struct sockaddr *sa, dist_src *ret_src)
{
    memset(ret_src, 0, sizeof(*ret_src));
    if (sa->sa_family == AF_INET) {
        ret_src->family = AF_INET;
        memcpy(ret_src->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        ret_src->family = AF_INET6;
        memcpy(ret_src->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static bool src_eq(const dist_src *x, const dist_src *y)
{
    return x->family == y->family && memcmp(x->addr, y->addr, sizeof(x->addr)) == 0;
}

/* The address literal host as a source (family 0 if it is a name). */
static void src_of_host(const char *host, dist_src *ret_src)
{
    memset(ret_src, 0, sizeof(*ret_src));
    if (inet_pton(AF_INET, host, ret_src->addr) == 1) {
        ret_src->family = AF_INET;
    } else if (inet_pton(AF_INET6, host, ret_src->addr) == 1) {
        ret_src->family = AF_INET6;
    }
}

/* The members' host literals, refilled at most once a second: a lookup per
 * accepted socket then costs a few hundred compares, not a parse of every
 * member's host (a flood accepts thousands a second). The first
 * DIST_UNAUTH_MAX members with an address literal are kept. */
static void mhost_refresh(gr_dist *d)
{
    dist_admit *a = &d->admit;
    uint64_t now = gr_dist_now_ms();
    dist_src h;

    if (a->mhost_ms != 0 && now - a->mhost_ms < 1000) {
        return;
    }
    a->mhost_ms = now ? now : 1;
    a->nmhost = 0;
    for (const dist_member *m = d->members; m && a->nmhost < DIST_UNAUTH_MAX; m = m->next) {
        src_of_host(m->host, &h);
        if (h.family != 0) {
            a->mhost[a->nmhost++] = h;
        }
    }
}

bool gr_dist_admit_trusted(gr_dist *d, const dist_src *src)
{
    const dist_admit *a = &d->admit;

    if (src->family == 0) {
        return false;
    }
    for (unsigned i = 0; i < a->nknown; i++) {
        if (src_eq(&a->known[i], src)) {
            return true;
        }
    }
    mhost_refresh(d);
    for (unsigned i = 0; i < a->nmhost; i++) {
        if (src_eq(&a->mhost[i], src)) {
            return true;
        }
    }
    return false;
}

/* The count entry of src, or NULL. */
static unsigned *src_count(dist_admit *a, const dist_src *src)
{
    for (unsigned i = 0; i < a->nsrcs; i++) {
        if (src_eq(&a->srcs[i].src, src)) {
            return &a->srcs[i].n;
        }
    }
    return NULL;
}

/* Is x a better victim than y (idler: no hello yet, then older last input,
 * then the older connection)? */
static bool idler(const dist_conn *x, const dist_conn *y)
{
    if (x->slot.hello != y->slot.hello) {
        return !x->slot.hello;
    }
    if (x->last_in_ms != y->last_in_ms) {
        return x->last_in_ms < y->last_in_ms;
    }
    return x->id < y->id;
}

int gr_dist_admit_decide(gr_dist *d, const dist_src *src, bool trusted, dist_conn **ret_victim)
{
    dist_admit *a = &d->admit;
    const unsigned *mine = src_count(a, src);
    unsigned have = mine ? *mine : 0, best_n = 0;
    const dist_src *best = NULL;
    bool best_untrusted = false;
    dist_conn *victim = NULL;

    if (!trusted && have >= a->per_src) {
        return GR_EBUSY; /* this address has its share */
    }
    if (d->n_unauth < a->max) {
        return 0;
    }
    /* Full: the most represented source that may lose a slot to this one.
     * Untrusted connections go first; a trusted newcomer falls back to the
     * trusted ones (fairness among trusted addresses). */
    for (unsigned i = 0; i < a->nsrcs; i++) {
        if (a->srcs[i].nu > best_n) {
            best_n = a->srcs[i].nu;
            best = &a->srcs[i].src;
            best_untrusted = true;
        }
    }
    if (best == NULL && trusted) {
        for (unsigned i = 0; i < a->nsrcs; i++) {
            if (a->srcs[i].n > best_n) {
                best_n = a->srcs[i].n;
                best = &a->srcs[i].src;
            }
        }
    }
    /* Evict only from an address that holds more than the newcomer's would
     * after admission; a trusted newcomer may take any untrusted slot. */
    if (best == NULL || src_eq(best, src) || (best_n <= have + 1 && !(trusted && best_untrusted))) {
        return GR_EBUSY;
    }
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (!c->unauth || !src_eq(&c->slot.src, best) || (c->slot.trusted && best_untrusted)) {
            continue;
        }
        if (victim == NULL || idler(c, victim)) {
            victim = c;
        }
    }
    if (victim == NULL) {
        return GR_EBUSY;
    }
    *ret_victim = victim;
    return 1;
}

/* "busy 750, timeout 2" from the held-back counts into buf; then reset them. */
static void held_take(dist_admit *a, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < a->nheld && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s %llu", i ? ", " : "", a->held[i].why,
                         (unsigned long long)a->held[i].n);

        off += n > 0 ? (size_t)n : 0;
    }
    a->nheld = 0;
}

static void held_count(dist_admit *a, const char *why)
{
    unsigned i;

    for (i = 0; i < a->nheld && strcmp(a->held[i].why, why) != 0; i++) {
    }
    if (i == a->nheld) {
        if (a->nheld == sizeof(a->held) / sizeof(a->held[0])) {
            a->held[i - 1].why = "other"; /* the last entry takes the rest */
            a->held[i - 1].n++;
            return;
        }
        a->held[i].why = why;
        a->held[i].n = 0;
        a->nheld++;
    }
    a->held[i].n++;
}

static void on_log_timer(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;
    dist_admit *a = &d->admit;
    uint64_t now = gr_dist_now_ms(), missed;
    struct timeval tv = {0, 10 * 1000};
    char why[256];

    (void)fd;
    (void)what;
    if ((missed = gr_ratelim_flush(&a->log, now)) > 0) {
        held_take(a, why, sizeof(why));
        gr_warn(DIST_LOG,
                "handshakes: and %llu more refused or failed in the last second: %s (not "
                "logged one by one)",
                (unsigned long long)missed, why);
    } else if (a->log.missed > 0) {
        evtimer_add(a->log_ev, &tv); /* the timer fired early: look again */
    }
}

void gr_dist_admit_log(gr_dist *d, const char *why, const char *fmt, ...)
{
    dist_admit *a = &d->admit;
    uint64_t now = gr_dist_now_ms(), end, missed = 0;
    char line[512], held[256];
    struct timeval tv;
    va_list ap;

    if (gr_ratelim_allow(&a->log, now, &missed)) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (missed > 0) {
            held_take(a, held, sizeof(held));
            gr_warn(DIST_LOG, "%s (and %llu more in the last second: %s)", line,
                    (unsigned long long)missed, held);
        } else {
            gr_warn(DIST_LOG, "%s", line);
        }
        return;
    }
    held_count(a, why);
    if (d->base == NULL) {
        return;
    }
    /* held back: make sure the count is told once the window ends, even if
     * nothing else happens */
    if (a->log_ev == NULL && (a->log_ev = evtimer_new(d->base, on_log_timer, d)) == NULL) {
        return;
    }
    if (!evtimer_pending(a->log_ev, NULL)) {
        end = gr_ratelim_window_end(&a->log);
        end = end > now ? end - now : 0;
        tv.tv_sec = (time_t)(end / 1000);
        tv.tv_usec = (suseconds_t)((end % 1000) * 1000 + 1000);
        evtimer_add(a->log_ev, &tv);
    }
}

static void format_src(const dist_src *s, char *buf, size_t cap)
{
    if (s->family == 0 || inet_ntop(s->family, s->addr, buf, (socklen_t)cap) == NULL) {
        snprintf(buf, cap, "?");
    }
}

/* Refuse fd: the Reject, drain what it sent (a FIN, not a reset, follows the
 * Reject), close. */
static void refuse(gr_dist *d, int fd)
{
    uint8_t junk[2048];
    int i;

    if (d->admit.reject_len > 0 &&
        send(fd, d->admit.reject, d->admit.reject_len, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
        DIST_CTR_ADD(d, bytes_out, d->admit.reject_len);
    }
    shutdown(fd, SHUT_WR);
    for (i = 0; i < 4 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++) {
    }
    close(fd);
}

/* Close victim to give its slot away: a Reject "busy" first when nothing else
 * is waiting in its output. */
static void evict(gr_dist *d, dist_conn *victim)
{
    const char *claimed = victim->hs ? gr_handshake_claimed_name(victim->hs) : NULL;
    char who[INET6_ADDRSTRLEN];

    format_src(&victim->slot.src, who, sizeof(who));
    DIST_CTR_ADD(d, handshakes_evicted, 1);
    DIST_CTR_ADD(d, handshakes_failed, 1);
    victim->fail = GR_EBUSY;
    gr_dist_admit_log(d, "evicted",
                      "handshake with %s%s(%s) evicted after %llu ms: all %u slots taken, %s "
                      "holds most",
                      claimed ? claimed : "", claimed ? " (unverified) " : "", victim->addr,
                      (unsigned long long)(gr_dist_now_ms() - victim->slot.since_ms), d->admit.max,
                      who);
    if (victim->bev && gr_dist_conn_pending(victim) == 0 && d->admit.reject_len > 0) {
        (void)send(bufferevent_getfd(victim->bev), d->admit.reject, d->admit.reject_len,
                   MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    gr_dist_conn_close(victim, 0, NULL);
}

int gr_dist_admit_accept(gr_dist *d, int fd, const struct sockaddr *sa, dist_slot *ret_slot)
{
    dist_slot s = {0};
    dist_conn *victim = NULL;
    char who[INET6_ADDRSTRLEN];
    int r;

    gr_dist_admit_src(sa, &s.src);
    s.trusted = gr_dist_admit_trusted(d, &s.src);
    s.since_ms = gr_dist_now_ms();
    if ((r = gr_dist_admit_decide(d, &s.src, s.trusted, &victim)) < 0) {
        const unsigned *n = src_count(&d->admit, &s.src);

        format_src(&s.src, who, sizeof(who));
        DIST_CTR_ADD(d, handshakes_refused, 1);
        DIST_CTR_ADD(d, handshakes_failed, 1);
        gr_dist_admit_log(d, "busy",
                          "refusing a connection from %s: busy (%u of %u handshake slots taken, "
                          "%u by that address)",
                          who, d->n_unauth, d->admit.max, n ? *n : 0);
        refuse(d, fd);
        return r;
    }
    if (r == 1) {
        evict(d, victim);
    }
    *ret_slot = s;
    return 0;
}

void gr_dist_admit_enter(dist_conn *c)
{
    dist_admit *a = &c->d->admit;
    unsigned i;

    if (c->unauth) {
        return;
    }
    c->unauth = true;
    c->d->n_unauth++;
    for (i = 0; i < a->nsrcs && !src_eq(&a->srcs[i].src, &c->slot.src); i++) {
    }
    if (i == a->nsrcs) {
        /* cannot overflow: at most max <= DIST_UNAUTH_MAX connections hold slots */
        a->srcs[i].src = c->slot.src;
        a->srcs[i].n = a->srcs[i].nu = 0;
        a->nsrcs++;
    }
    a->srcs[i].n++;
    a->srcs[i].nu += c->slot.trusted ? 0 : 1;
}

void gr_dist_admit_leave(dist_conn *c)
{
    dist_admit *a = &c->d->admit;

    if (!c->unauth) {
        return;
    }
    c->unauth = false;
    c->d->n_unauth--;
    for (unsigned i = 0; i < a->nsrcs; i++) {
        if (src_eq(&a->srcs[i].src, &c->slot.src)) {
            a->srcs[i].nu -= c->slot.trusted ? 0 : 1;
            if (--a->srcs[i].n == 0) {
                a->srcs[i] = a->srcs[--a->nsrcs];
            }
            return;
        }
    }
}

void gr_dist_admit_authenticated(dist_conn *c)
{
    dist_admit *a = &c->d->admit;

    if (c->slot.src.family == 0) {
        return;
    }
    for (unsigned i = 0; i < a->nknown; i++) {
        if (src_eq(&a->known[i], &c->slot.src)) {
            return;
        }
    }
    a->known[a->known_next] = c->slot.src;
    a->known_next = (a->known_next + 1) % DIST_KNOWN_SRC;
    if (a->nknown < DIST_KNOWN_SRC) {
        a->nknown++;
    }
    /* the connections from there still in handshake are trusted too */
    for (dist_conn *o = c->d->conns; o; o = o->next) {
        if (o != c && o->unauth && !o->slot.trusted && src_eq(&o->slot.src, &c->slot.src)) {
            o->slot.trusted = true;
            for (unsigned i = 0; i < a->nsrcs; i++) {
                if (src_eq(&a->srcs[i].src, &o->slot.src)) {
                    a->srcs[i].nu--;
                }
            }
        }
    }
}

unsigned gr_dist_admit_hello_ms(const gr_dist *d)
{
    return d->admit.hello_ms;
}

unsigned gr_dist_admit_on_hello(dist_conn *c)
{
    uint64_t spent;

    if (!c->unauth || c->slot.hello) {
        return 0;
    }
    c->slot.hello = true;
    spent = gr_dist_now_ms() - c->slot.since_ms;
    return spent + 1 < GR_DIST_HANDSHAKE_TIMEOUT_MS
               ? (unsigned)(GR_DIST_HANDSHAKE_TIMEOUT_MS - spent)
               : 1;
}
