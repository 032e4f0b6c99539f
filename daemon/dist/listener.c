/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listener.c - the node's listening socket.
 *
 * The socket is bound on the caller's thread in gr_dist_start, so that an
 * address in use or a bad listen host is an error returned to main before any
 * thread exists; it is then handed to an evconnlistener on the dist base, which
 * accepts with SOCK_CLOEXEC and passes every new socket to conn.c.
 *
 * Dials leave from the listen address. When the node listens on a specific
 * address (not the wildcard), its outgoing sockets are bound to that address
 * before connect (IP_BIND_ADDRESS_NO_PORT: the port is still chosen at
 * connect, per destination), as a multi-homed host's would be: a peer sees
 * each node's dials come from that node's own address. On loopback, where
 * every node of a test or benchmark has its own 127.0.0.N, the kernel would
 * otherwise give every dial the source 127.0.0.1, and admission (admit.c)
 * would count a hundred nodes as one untrusted address with one share of
 * the handshake slots. A loopback listen address is not used as the source
 * of a dial to another host, nor the other way round (gr_dist_dial_src).
 *
 * Accepting is bounded like every other unit of work: libevent accepts until
 * the queue is empty, which a connection flood can keep from happening, so
 * after DIST_ACCEPT_BURST accepts the listener pauses until the end of the
 * loop iteration (accept_ev, lowest priority): the links' reads, timers and
 * flushes run in between. Who gets a handshake slot is admit.c's business.
 * A failed accept (EMFILE: out of descriptors) pauses the listener for
 * DIST_ACCEPT_PAUSE_MS: the pending connection stays readable, and listening
 * on ran the loop hot on the same error (1.28 million log lines in 10 s when
 * an HTTP flood had used up the descriptors); its log lines are rate
 * limited with a count of the ones held back.
 *
 * Threading: gr_dist_listen_bind on the starting thread; the rest on the dist
 * thread (or after it was joined).
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int gr_dist_listen_bind(gr_dist *d)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } bound;
    socklen_t sl = sizeof(bound);
    char port[8];
    int fd = -1, one = 1, r;

    memset(&bound, 0, sizeof(bound));
    snprintf(port, sizeof(port), "%u", (unsigned)d->listen_port);
    if ((r = getaddrinfo(d->listen_host, port, &hints, &ai)) != 0) {
        gr_warn(DIST_LOG, "cannot resolve listen address %s: %s", d->listen_host, gai_strerror(r));
        return r == EAI_SYSTEM ? -errno : GR_ECONFIG;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, DIST_LISTEN_BACKLOG) < 0 ||
        getsockname(fd, &bound.sa, &sl) < 0) {
        r = -errno;
        goto fail;
    }
    atomic_store(&d->port, bound.sa.sa_family == AF_INET ? ntohs(bound.in.sin_port)
                                                         : ntohs(bound.in6.sin6_port));
    d->dial_src_len = 0;
    if (bound.sa.sa_family == AF_INET && bound.in.sin_addr.s_addr != htonl(INADDR_ANY)) {
        bound.in.sin_port = 0;
        d->dial_src_len = sizeof(bound.in);
    } else if (bound.sa.sa_family == AF_INET6 && !IN6_IS_ADDR_UNSPECIFIED(&bound.in6.sin6_addr)) {
        bound.in6.sin6_port = 0;
        d->dial_src_len = sizeof(bound.in6);
    }
    memcpy(&d->dial_src, &bound.ss, sizeof(d->dial_src));
    freeaddrinfo(ai);
    d->listen_fd = fd;
    return 0;
fail:
    gr_warn(DIST_LOG, "cannot listen on %s:%s: %s", d->listen_host, port, gr_errid(r));
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(ai);
    return r;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

int gr_dist_dial_src(const gr_dist *d, const struct sockaddr *dst, struct sockaddr_storage *ret_src,
                     socklen_t *ret_len)
{
    const struct sockaddr *src = (const struct sockaddr *)&d->dial_src;

    if (d->dial_src_len == 0 || src->sa_family != dst->sa_family ||
        is_loopback(src) != is_loopback(dst)) {
        return 0;
    }
    memcpy(ret_src, &d->dial_src, sizeof(*ret_src));
    *ret_len = d->dial_src_len;
    return 1;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    gr_dist *d = arg;

    if (d->stopping) {
        close(fd);
        return;
    }
    gr_dist_conn_accept(d, fd, sa, salen);
    if (++d->accepts >= DIST_ACCEPT_BURST && d->accept_ev) {
        /* libevent returns from its accept loop once disabled */
        evconnlistener_disable(l);
        event_active(d->accept_ev, EV_TIMEOUT, 0);
    }
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;

    (void)fd;
    (void)what;
    d->accepts = 0;
    if (d->listener && !d->stopping) {
        evconnlistener_enable(d->listener);
    }
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    gr_dist *d = arg;
    int err = EVUTIL_SOCKET_ERROR();
    uint64_t missed = 0;
    struct timeval tv = {0, DIST_ACCEPT_PAUSE_MS * 1000};

    /* EMFILE and friends: pause, then try again; the peer waits meanwhile */
    evconnlistener_disable(l);
    if (d->accept_retry_ev) {
        evtimer_add(d->accept_retry_ev, &tv);
    }
    if (!gr_ratelim_allow(&d->accept_log, gr_clock_ms(), &missed)) {
        return;
    }
    if (missed) {
        gr_warn(DIST_LOG, "accept failed: %s; pausing accepts for %u ms (and %llu more failures)",
                gr_errid(-err), DIST_ACCEPT_PAUSE_MS, (unsigned long long)missed);
    } else {
        gr_warn(DIST_LOG, "accept failed: %s; pausing accepts for %u ms", gr_errid(-err),
                DIST_ACCEPT_PAUSE_MS);
    }
}

int gr_dist_listen_start(gr_dist *d)
{
    d->listener = evconnlistener_new(
        d->base, on_accept, d, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, d->listen_fd);
    if (d->listener == NULL) {
        return -ENOMEM;
    }
    d->listen_fd = -1; /* the listener owns it now */
    evconnlistener_set_error_cb(d->listener, on_accept_error);
    if ((d->accept_ev = event_new(d->base, -1, 0, on_accept_resume, d)) == NULL ||
        (d->accept_retry_ev = evtimer_new(d->base, on_accept_resume, d)) == NULL) {
        return -ENOMEM;
    }
    event_priority_set(d->accept_ev, DIST_PRIO_FLUSH);
    return 0;
}

void gr_dist_listen_stop(gr_dist *d)
{
    if (d->accept_ev) {
        event_free(d->accept_ev);
        d->accept_ev = NULL;
    }
    if (d->accept_retry_ev) {
        event_free(d->accept_retry_ev);
        d->accept_retry_ev = NULL;
    }
    if (d->listener) {
        evconnlistener_free(d->listener);
        d->listener = NULL;
    }
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        d->listen_fd = -1;
    }
}
