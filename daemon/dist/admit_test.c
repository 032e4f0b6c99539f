/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admit_test.c - the admission of unauthenticated peers (admit.c).
 *
 * Two halves. The policy alone: gr_dist_admit_decide on a gr_dist that never
 * starts, with connection records made by hand (per-source share, who is
 * evicted, trusted addresses never evicted for strangers, counts kept right).
 * And a real node on 127.0.0.1 with raw sockets bound to other loopback
 * addresses (127.0.0.5x play the strangers): the Reject "busy" a refused
 * client reads, an eviction seen from the evicted socket, a client from a
 * member's address getting in past a full table, the first-message deadline,
 * and the name a failing peer claimed. Every wait has a generous deadline.
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "proto/handshake.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000 /* generous: the machine may be busy */

static gr_cookie COOKIE;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void setup(void)
{
    COOKIE.len = strlen("test-cookie");
    memcpy(COOKIE.bytes, "test-cookie", COOKIE.len);
}

/* ---- the policy alone ----------------------------------------------------------- */

static dist_src src4(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    dist_src s;

    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    gr_dist_admit_src((struct sockaddr *)&sin, &s);
    return s;
}

/* A fake accepted connection from ip holding a slot in d. */
static dist_conn *fake_conn(gr_dist *d, const char *ip, bool trusted, uint64_t last_in)
{
    dist_conn *c = calloc(1, sizeof(*c));

    c->d = d;
    c->id = d->next_conn_id++;
    c->state = CONN_HANDSHAKE;
    c->slot.src = src4(ip);
    c->slot.trusted = trusted;
    c->last_in_ms = last_in;
    c->next = d->conns;
    d->conns = c;
    gr_dist_admit_enter(c);
    return c;
}

static gr_dist *fake_node(unsigned max, unsigned per_src)
{
    gr_dist *d = calloc(1, sizeof(*d));
    gr_dist_config cfg = {.unauth_max = max, .unauth_per_source = per_src};

    gr_dist_admit_init(d, &cfg);
    d->next_conn_id = 1;
    return d;
}

static void fake_free(gr_dist *d)
{
    dist_conn *c, *next;

    for (c = d->conns; c; c = next) {
        next = c->next;
        gr_dist_admit_leave(c);
        free(c);
    }
    ck_assert_uint_eq(d->n_unauth, 0);
    ck_assert_uint_eq(d->admit.nsrcs, 0);
    free(d);
}

static int decide(gr_dist *d, const char *ip, bool trusted, dist_conn **ret_victim)
{
    dist_src s = src4(ip);

    *ret_victim = NULL;
    return gr_dist_admit_decide(d, &s, trusted, ret_victim);
}

START_TEST(policy_per_source_share)
{
    gr_dist *d = fake_node(8, 2);
    dist_conn *v;

    fake_conn(d, "10.0.0.1", false, 1);
    ck_assert_int_eq(decide(d, "10.0.0.1", false, &v), 0);
    fake_conn(d, "10.0.0.1", false, 2);
    /* the address has its share: refused, though slots are free */
    ck_assert_int_eq(decide(d, "10.0.0.1", false, &v), GR_EBUSY);
    ck_assert_ptr_null(v);
    /* other addresses are not affected; a trusted one has no share limit */
    ck_assert_int_eq(decide(d, "10.0.0.2", false, &v), 0);
    ck_assert_int_eq(decide(d, "10.0.0.1", true, &v), 0);
    ck_assert_uint_eq(d->n_unauth, 2);
    fake_free(d);
}
END_TEST

START_TEST(policy_evicts_idlest_of_most_represented)
{
    gr_dist *d = fake_node(6, 3);
    dist_conn *a1, *a2, *a3, *v;

    a1 = fake_conn(d, "10.0.0.1", false, 30);
    a2 = fake_conn(d, "10.0.0.1", false, 10); /* the idlest of 10.0.0.1 */
    a3 = fake_conn(d, "10.0.0.1", false, 20);
    fake_conn(d, "10.0.0.2", false, 5); /* idler, but its address holds fewer */
    fake_conn(d, "10.0.0.2", false, 6);
    fake_conn(d, "10.0.0.3", false, 1);
    ck_assert_uint_eq(d->n_unauth, 6);
    ck_assert_int_eq(decide(d, "10.0.0.9", false, &v), 1);
    ck_assert_ptr_eq(v, a2);
    /* one that already sent its hello goes after one that did not */
    a2->slot.hello = true;
    ck_assert_int_eq(decide(d, "10.0.0.9", false, &v), 1);
    ck_assert_ptr_eq(v, a3);
    a3->slot.hello = true;
    a1->slot.hello = true;
    ck_assert_int_eq(decide(d, "10.0.0.9", false, &v), 1);
    ck_assert_ptr_eq(v, a2);
    /* the most represented address itself is refused (at its share here) */
    ck_assert_int_eq(decide(d, "10.0.0.1", false, &v), GR_EBUSY);
    /* 10.0.0.2 would hold 3 after taking one of 10.0.0.1's 3: no gain, refused */
    ck_assert_int_eq(decide(d, "10.0.0.2", false, &v), GR_EBUSY);
    /* 10.0.0.3 would hold 2 against 2 left: allowed */
    ck_assert_int_eq(decide(d, "10.0.0.3", false, &v), 1);
    fake_free(d);
}
END_TEST

START_TEST(policy_trusted_never_evicted_for_strangers)
{
    gr_dist *d = fake_node(4, 4);
    dist_conn *s1, *v;

    fake_conn(d, "127.0.0.1", true, 1);
    fake_conn(d, "127.0.0.1", true, 2);
    fake_conn(d, "127.0.0.1", true, 3);
    s1 = fake_conn(d, "10.0.0.1", false, 100);
    /* a stranger may only take the stranger's slot, never a trusted one */
    ck_assert_int_eq(decide(d, "10.0.0.2", false, &v), GR_EBUSY); /* 1 vs 0+1: no gain */
    /* a trusted newcomer takes the stranger's slot, however fresh it is */
    ck_assert_int_eq(decide(d, "192.168.0.1", true, &v), 1);
    ck_assert_ptr_eq(v, s1);
    ck_assert_int_eq(decide(d, "127.0.0.1", true, &v), 1);
    ck_assert_ptr_eq(v, s1);
    /* the stranger gone and the table full of trusted slots: strangers are
     * refused; another trusted address gets a slot of the crowded one */
    gr_dist_admit_leave(s1);
    d->conns = s1->next;
    free(s1);
    fake_conn(d, "127.0.0.1", true, 4);
    ck_assert_int_eq(decide(d, "10.0.0.3", false, &v), GR_EBUSY);
    ck_assert_int_eq(decide(d, "192.168.0.1", true, &v), 1);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(decide(d, "127.0.0.1", true, &v), GR_EBUSY);
    fake_free(d);
}
END_TEST

START_TEST(policy_counts_follow_trust)
{
    gr_dist *d = fake_node(4, 4);
    dist_conn *a, *b, *v;

    a = fake_conn(d, "10.0.0.1", false, 1);
    b = fake_conn(d, "10.0.0.1", false, 2);
    fake_conn(d, "10.0.0.2", false, 3);
    fake_conn(d, "10.0.0.2", false, 4);
    ck_assert_uint_eq(d->admit.srcs[0].nu + d->admit.srcs[1].nu, 4);
    /* a completes its handshake: 10.0.0.1 is trusted, b becomes so too */
    gr_dist_admit_authenticated(a);
    gr_dist_admit_leave(a);
    ck_assert(b->slot.trusted);
    ck_assert(gr_dist_admit_trusted(d, &a->slot.src));
    for (dist_conn **p = &d->conns; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            break;
        }
    }
    free(a);
    fake_conn(d, "10.0.0.3", false, 5);
    /* full: the stranger 10.0.0.9 cannot take b's slot (trusted now), and
     * 10.0.0.2's two untrusted slots are one more than it would hold */
    ck_assert_int_eq(decide(d, "10.0.0.9", false, &v), 1);
    ck_assert(!v->slot.trusted);
    ck_assert_int_eq(memcmp(v->slot.src.addr, src4("10.0.0.2").addr, 4), 0);
    fake_free(d);
}
END_TEST

/* stderr into buf while fn(d) runs */
static void capture(char *buf, size_t cap, void (*fn)(gr_dist *), gr_dist *d)
{
    int p[2], saved = dup(2);
    ssize_t n;

    ck_assert_int_eq(pipe(p), 0);
    dup2(p[1], 2);
    fn(d);
    dup2(saved, 2);
    close(saved);
    close(p[1]);
    n = read(p[0], buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(p[0]);
}

static void log_flood(gr_dist *d)
{
    for (int i = 0; i < 5; i++) {
        gr_dist_admit_log(d, "busy", "line %d", i);
    }
    gr_dist_admit_log(d, "busy", "held-a");
    gr_dist_admit_log(d, "timeout", "held-b");
    gr_dist_admit_log(d, "busy", "held-c");
    d->admit.log.start_ms -= 2000; /* the second is over */
    gr_dist_admit_log(d, "bad_cookie", "after");
}

START_TEST(log_is_bounded_and_counts_by_reason)
{
    gr_dist *d = fake_node(8, 2);
    char out[4096];

    gr_log_setup("admit_test", GR_LOG_INFO);
    capture(out, sizeof(out), log_flood, d);
    ck_assert_ptr_nonnull(strstr(out, "line 4\n"));
    ck_assert_ptr_null(strstr(out, "held-"));
    ck_assert_ptr_nonnull(
        strstr(out, "after (and 3 more in the last second: busy 2, timeout 1)\n"));
    fake_free(d);
}
END_TEST

/* ---- a real node ---------------------------------------------------------------- */

typedef struct node {
    girder_rt *rt;
    gr_dist *d;
} node;

static void node_start(node *n, const gr_dist_config *extra)
{
    gr_rt_config rc = {.node_name = "a@127.0.0.1", .schedulers = 1};
    gr_dist_config dc = *extra;

    ck_assert_int_eq(gr_rt_new(&rc, &n->rt), 0);
    dc.rt = n->rt;
    dc.name = "a@127.0.0.1";
    dc.creation = gr_rt_creation(n->rt);
    dc.cookie = &COOKIE;
    dc.listen_host = "127.0.0.1";
    ck_assert_int_eq(gr_dist_new(&dc, &n->d), 0);
    gr_rt_set_remote(n->rt, gr_dist_remote_hook, n->d);
    ck_assert_int_eq(gr_rt_start(n->rt), 0);
    ck_assert_int_eq(gr_dist_start(n->d), 0);
}

static void node_stop(node *n)
{
    gr_dist_stop(n->d, 3000);
    gr_rt_stop(n->rt);
    n->d = gr_dist_free(n->d);
    n->rt = gr_rt_free(n->rt);
}

static gr_dist_counters counters(node *n)
{
    gr_dist_counters c;

    gr_dist_counters_get(n->d, &c);
    return c;
}

/* Wait until n has completed `want` handshakes (the client may verify M4
 * before the node has counted its side). */
static bool wait_ok(node *n, uint64_t want)
{
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; poll(NULL, 0, 10)) {
        if (counters(n).handshakes_ok >= want) {
            return true;
        }
    }
    return false;
}

/* A TCP connection to n from loopback address `from`. */
static int connect_from(node *n, const char *from)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(gr_dist_port(n->d))};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(inet_pton(AF_INET, from, &src.sin_addr), 1);
    ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr), 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    return fd;
}

/* Read fd until the node closes it (within ms): the bytes into buf (at most
 * cap), their count, or -1 if it stayed open. */
static ssize_t read_to_close(int fd, uint8_t *buf, size_t cap, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    size_t have = 0;

    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        n = recv(fd, buf + have, cap - have, 0);
        if (n <= 0) {
            return (ssize_t)have;
        }
        have += (size_t)n;
        if (have == cap) {
            return (ssize_t)have;
        }
    }
    return -1;
}

/* Is fd still open after a quick look (no EOF and nothing to read)? */
static bool still_open(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 0;
}

/* What a client's handshake makes of bytes bs[0..n) from the node: the error. */
static int handshake_verdict(const uint8_t *bs, size_t n)
{
    gr_handshake_config hc = {.name = "cli@127.0.0.1", .cookie = &COOKIE, .hidden = 1};
    gr_handshake *hs = NULL;
    size_t used = 0;
    int r;

    ck_assert_int_eq(gr_handshake_new(&hc, GR_HANDSHAKE_INITIATOR, &hs), 0);
    r = gr_handshake_feed(hs, bs, n, &used);
    ck_assert(gr_handshake_peer_rejected(hs) || r >= 0);
    gr_handshake_free(hs);
    return r;
}

/* Run a full hidden-client handshake with n from `from`: 1 on success, or the
 * handshake's error. */
static int client_handshake(node *n, const char *from)
{
    gr_handshake_config hc = {
        .name = "cli@127.0.0.1", .cookie = &COOKIE, .hidden = 1, .expect_peer = "a@127.0.0.1"};
    gr_handshake *hs = NULL;
    const uint8_t *out;
    uint8_t buf[4096];
    size_t len, used, off;
    int fd = connect_from(n, from), r = 0;
    uint64_t end = now_ms() + WAIT_MS;

    ck_assert_int_eq(gr_handshake_new(&hc, GR_HANDSHAKE_INITIATOR, &hs), 0);
    while (r == 0 && now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t got;

        while ((len = gr_handshake_output(hs, &out)) > 0) {
            (void)send(fd, out, len, MSG_NOSIGNAL);
        }
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        if ((got = recv(fd, buf, sizeof(buf), 0)) <= 0) {
            r = -ECONNRESET;
            break;
        }
        for (off = 0; off < (size_t)got && r == 0; off += used) {
            r = gr_handshake_feed(hs, buf + off, (size_t)got - off, &used);
            while ((len = gr_handshake_output(hs, &out)) > 0) {
                (void)send(fd, out, len, MSG_NOSIGNAL);
            }
        }
    }
    gr_handshake_free(hs);
    close(fd);
    return r;
}

START_TEST(refused_client_reads_reject_busy)
{
    gr_dist_config cfg = {.unauth_per_source = 2, .hello_timeout_ms = GR_DIST_HANDSHAKE_TIMEOUT_MS};
    uint8_t buf[256];
    int held[2], fd;
    ssize_t n;
    node a;

    node_start(&a, &cfg);
    held[0] = connect_from(&a, "127.0.0.50");
    held[1] = connect_from(&a, "127.0.0.50");
    fd = connect_from(&a, "127.0.0.50");
    n = read_to_close(fd, buf, sizeof(buf), WAIT_MS);
    ck_assert_int_gt(n, 0);
    /* a standalone Reject "busy": what the CLI reports as "node busy" */
    ck_assert_int_eq(handshake_verdict(buf, (size_t)n), GR_EBUSY);
    close(fd);
    ck_assert_uint_eq(counters(&a).handshakes_refused, 1);
    ck_assert_uint_ge(counters(&a).handshakes_failed, 1);
    /* the held ones keep their slots; another address still gets in */
    ck_assert(still_open(held[0]) && still_open(held[1]));
    ck_assert_int_eq(client_handshake(&a, "127.0.0.51"), 1);
    ck_assert(wait_ok(&a, 1));
    close(held[0]);
    close(held[1]);
    node_stop(&a);
}
END_TEST

START_TEST(full_table_evicts_the_crowd)
{
    gr_dist_config cfg = {
        .unauth_max = 4, .unauth_per_source = 4, .hello_timeout_ms = GR_DIST_HANDSHAKE_TIMEOUT_MS};
    int crowd[4];
    uint8_t buf[256];
    ssize_t n;
    node a;

    node_start(&a, &cfg);
    for (int i = 0; i < 4; i++) {
        crowd[i] = connect_from(&a, "127.0.0.52");
    }
    /* wait until all four hold a slot: then a newcomer must evict */
    for (uint64_t end = now_ms() + WAIT_MS; counters(&a).conns_accepted < 4 && now_ms() < end;) {
        poll(NULL, 0, 10);
    }
    ck_assert(still_open(crowd[0]));
    /* another stranger takes the slot of the crowd's idlest (its first) */
    {
        int lone = connect_from(&a, "127.0.0.53");

        n = read_to_close(crowd[0], buf, sizeof(buf), WAIT_MS);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(handshake_verdict(buf, (size_t)n), GR_EBUSY);
        ck_assert_uint_eq(counters(&a).handshakes_evicted, 1);
        ck_assert(still_open(crowd[1]) && still_open(crowd[2]) && still_open(crowd[3]));
        /* a client from the node's own address (a member's) gets in too */
        ck_assert_int_eq(client_handshake(&a, "127.0.0.1"), 1);
        ck_assert_uint_eq(counters(&a).handshakes_evicted, 2);
        close(lone);
    }
    for (int i = 0; i < 4; i++) {
        close(crowd[i]);
    }
    node_stop(&a);
}
END_TEST

START_TEST(member_address_slots_are_kept)
{
    gr_dist_config cfg = {
        .unauth_max = 2, .unauth_per_source = 2, .hello_timeout_ms = GR_DIST_HANDSHAKE_TIMEOUT_MS};
    uint8_t buf[256];
    int mine[2], fd;
    ssize_t n;
    node a;

    node_start(&a, &cfg);
    /* 127.0.0.1 is a member's address (the node's own) */
    mine[0] = connect_from(&a, "127.0.0.1");
    mine[1] = connect_from(&a, "127.0.0.1");
    for (uint64_t end = now_ms() + WAIT_MS; counters(&a).conns_accepted < 2 && now_ms() < end;) {
        poll(NULL, 0, 10);
    }
    fd = connect_from(&a, "127.0.0.54");
    n = read_to_close(fd, buf, sizeof(buf), WAIT_MS);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(handshake_verdict(buf, (size_t)n), GR_EBUSY);
    ck_assert_uint_eq(counters(&a).handshakes_evicted, 0);
    ck_assert_uint_eq(counters(&a).handshakes_refused, 1);
    ck_assert(still_open(mine[0]) && still_open(mine[1]));
    close(fd);
    close(mine[0]);
    close(mine[1]);
    node_stop(&a);
}
END_TEST

START_TEST(first_message_deadline)
{
    gr_dist_config cfg = {.hello_timeout_ms = 300};
    gr_handshake_config hc = {.name = "cli@127.0.0.1", .cookie = &COOKIE, .hidden = 1};
    gr_handshake *hs = NULL;
    const uint8_t *out;
    uint8_t buf[4096];
    uint64_t t0, silent_ms, slow_ms;
    int silent, slow;
    size_t len;
    node a;

    node_start(&a, &cfg);
    t0 = now_ms();
    silent = connect_from(&a, "127.0.0.55");
    slow = connect_from(&a, "127.0.0.56");
    /* the slow one says hello, reads M2 and stops there */
    ck_assert_int_eq(gr_handshake_new(&hc, GR_HANDSHAKE_INITIATOR, &hs), 0);
    len = gr_handshake_output(hs, &out);
    ck_assert_int_eq(send(slow, out, len, MSG_NOSIGNAL), (ssize_t)len);
    gr_handshake_free(hs);
    ck_assert_int_ge(read_to_close(silent, buf, sizeof(buf), WAIT_MS), 0);
    silent_ms = now_ms() - t0;
    ck_assert_int_ge(read_to_close(slow, buf, sizeof(buf), WAIT_MS), 0);
    slow_ms = now_ms() - t0;
    /* silent: the first-message deadline; hello sent: the full one */
    ck_assert_uint_ge(silent_ms, 300 - 50);
    ck_assert_uint_lt(silent_ms, GR_DIST_HANDSHAKE_TIMEOUT_MS - 1000);
    ck_assert_uint_ge(slow_ms, GR_DIST_HANDSHAKE_TIMEOUT_MS - 100);
    close(silent);
    close(slow);
    node_stop(&a);
}
END_TEST

START_TEST(claimed_name_and_reject_record)
{
    gr_handshake_config ic = {.name = "b@127.0.0.2", .cookie = &COOKIE};
    gr_handshake_config rc = {.name = "a@127.0.0.1", .cookie = &COOKIE};
    gr_handshake *i = NULL, *r = NULL;
    const uint8_t *out;
    uint8_t rec[64];
    size_t len, used;
    int n;

    ck_assert_int_eq(gr_handshake_new(&ic, GR_HANDSHAKE_INITIATOR, &i), 0);
    ck_assert_int_eq(gr_handshake_new(&rc, GR_HANDSHAKE_RESPONDER, &r), 0);
    ck_assert_ptr_null(gr_handshake_claimed_name(r));
    len = gr_handshake_output(i, &out);
    ck_assert_int_eq(gr_handshake_feed(r, out, len, &used), 0);
    ck_assert_str_eq(gr_handshake_claimed_name(r), "b@127.0.0.2");
    gr_handshake_free(i);
    gr_handshake_free(r);
    /* only reasons a Reject may carry */
    ck_assert_int_eq(gr_handshake_reject_record(GR_ENOPROC, rec, sizeof(rec)), -EINVAL);
    ck_assert_int_eq(gr_handshake_reject_record(GR_EBUSY, rec, 4), -ENOBUFS);
    n = gr_handshake_reject_record(GR_EBUSY, rec, sizeof(rec));
    ck_assert_int_gt(n, 4);
    ck_assert_int_eq(handshake_verdict(rec, (size_t)n), GR_EBUSY);
}
END_TEST

static Suite *admit_suite(void)
{
    Suite *s = suite_create("admit");
    TCase *tp = tcase_create("policy");
    TCase *tn = tcase_create("node");

    tcase_add_checked_fixture(tp, setup, NULL);
    tcase_add_test(tp, policy_per_source_share);
    tcase_add_test(tp, policy_evicts_idlest_of_most_represented);
    tcase_add_test(tp, policy_trusted_never_evicted_for_strangers);
    tcase_add_test(tp, policy_counts_follow_trust);
    tcase_add_test(tp, claimed_name_and_reject_record);
    tcase_add_test(tp, log_is_bounded_and_counts_by_reason);
    suite_add_tcase(s, tp);
    tcase_add_checked_fixture(tn, setup, NULL);
    tcase_set_timeout(tn, 60);
    tcase_add_test(tn, refused_client_reads_reject_busy);
    tcase_add_test(tn, full_table_evicts_the_crowd);
    tcase_add_test(tn, member_address_slots_are_kept);
    tcase_add_test(tn, first_message_deadline);
    suite_add_tcase(s, tn);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admit_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
