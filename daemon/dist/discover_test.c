/* SPDX-License-Identifier: Apache-2.0 */
/*
 * discover_test.c - unit tests of DNS discovery (discover.c): the candidate
 * set kept across answers (gr_dist_disc_merge: new, kept with what was learnt,
 * dropped, duplicates, the cap), the address format, the configuration checks
 * of gr_dist_new, and two gr_dist instances in one process where one finds
 * the other only through a name ("localhost", from the hosts file through
 * evdns), while the other looks itself up and never dials itself.
 *
 * Every wait polls with a generous deadline: these tests must pass on a noisy
 * two-core machine.
 */
#include "dist/dist.h"
#include "dist/dist_int.h"

#include "proto/err.h"
#include "runtime/rt.h"

#include "testing/gr_test.h"
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define WAIT_MS 15000

static gr_dist_disc_addr v4(const char *ip, uint16_t port)
{
    gr_dist_disc_addr a = {.family = AF_INET, .port = port};

    ck_assert_int_eq(inet_pton(AF_INET, ip, a.addr), 1);
    return a;
}

static gr_dist_disc_addr v6(const char *ip, uint16_t port)
{
    gr_dist_disc_addr a = {.family = AF_INET6, .port = port};

    ck_assert_int_eq(inet_pton(AF_INET6, ip, a.addr), 1);
    return a;
}

/* Index of address a among cands, or -1. */
static int find(const gr_dist_disc_cand *cands, size_t n, const gr_dist_disc_addr *a)
{
    for (size_t i = 0; i < n; i++) {
        if (cands[i].addr.family == a->family && cands[i].addr.port == a->port &&
            memcmp(cands[i].addr.addr, a->addr, 16) == 0) {
            return (int)i;
        }
    }
    return -1;
}

START_TEST(merge_new_kept_gone)
{
    gr_dist_disc_cand *c = NULL;
    size_t n = 0, added = 9, removed = 9;
    gr_dist_disc_addr first[] = {v4("10.0.0.2", 4370), v4("10.0.0.3", 4370),
                                 v4("10.0.0.2", 4370) /* twice in one answer */};
    gr_dist_disc_addr second[] = {v4("10.0.0.3", 4370), v4("10.0.0.4", 4370), v6("fd00::5", 4370)};
    int i3;

    ck_assert_int_eq(gr_dist_disc_merge(&c, &n, first, 3, &added, &removed), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(added, 2);
    ck_assert_uint_eq(removed, 0);
    /* what was learnt at .3: kept by the next answer that still holds it */
    i3 = find(c, n, &first[1]);
    ck_assert_int_ge(i3, 0);
    snprintf(c[i3].node, sizeof(c[i3].node), "girder@c");
    c[i3].probe = 7;
    c[find(c, n, &first[0])].self = true;

    ck_assert_int_eq(gr_dist_disc_merge(&c, &n, second, 3, &added, &removed), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(added, 2);   /* .4 and fd00::5 */
    ck_assert_uint_eq(removed, 1); /* .2 vanished */
    ck_assert_int_eq(find(c, n, &first[0]), -1);
    i3 = find(c, n, &second[0]);
    ck_assert_int_ge(i3, 0);
    ck_assert_str_eq(c[i3].node, "girder@c");
    ck_assert_uint_eq(c[i3].probe, 7);
    ck_assert_str_eq(c[find(c, n, &second[1])].node, "");
    ck_assert(!c[find(c, n, &second[2])].self);

    /* the same answer again: nothing new, nothing gone */
    ck_assert_int_eq(gr_dist_disc_merge(&c, &n, second, 3, &added, &removed), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(added, 0);
    ck_assert_uint_eq(removed, 0);

    /* an empty answer drops every candidate */
    ck_assert_int_eq(gr_dist_disc_merge(&c, &n, NULL, 0, &added, &removed), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(removed, 3);
    free(c);
}
END_TEST

START_TEST(merge_ports_families_cap)
{
    gr_dist_disc_cand *c = NULL;
    size_t n = 0, added = 0;
    gr_dist_disc_addr *many = calloc(GR_DIST_DISC_CANDS_MAX + 10, sizeof(*many));
    gr_dist_disc_addr odd[] = {v4("10.0.0.2", 4370), v4("10.0.0.2", 4371), {.family = 99}};

    /* one address at two ports is two candidates; an unknown family none */
    ck_assert_int_eq(gr_dist_disc_merge(&c, &n, odd, 3, &added, NULL), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(added, 2);
    ck_assert_ptr_nonnull(many);
    for (size_t i = 0; i < GR_DIST_DISC_CANDS_MAX + 10; i++) {
        many[i].family = AF_INET;
        many[i].port = 1;
        many[i].addr[0] = 10;
        many[i].addr[2] = (uint8_t)(i >> 8);
        many[i].addr[3] = (uint8_t)i;
    }
    ck_assert_int_eq(gr_dist_disc_merge(&c, &n, many, GR_DIST_DISC_CANDS_MAX + 10, &added, NULL),
                     0);
    ck_assert_uint_eq(n, GR_DIST_DISC_CANDS_MAX); /* the rest of the answer is ignored */
    ck_assert_int_eq(find(c, n, &many[0]), 0);    /* answer order */
    free(many);
    free(c);
}
END_TEST

START_TEST(addr_format)
{
    char buf[DIST_ADDR_MAX];
    gr_dist_disc_addr a = v4("192.0.2.7", 4370), b = v6("fd00::1", 1);

    gr_dist_disc_addr_format(&a, buf, sizeof(buf));
    ck_assert_str_eq(buf, "192.0.2.7:4370");
    gr_dist_disc_addr_format(&b, buf, sizeof(buf));
    ck_assert_str_eq(buf, "[fd00::1]:1");
}
END_TEST

/* ---- two nodes --------------------------------------------------------------------- */

typedef struct node {
    char name[64];
    girder_rt *rt;
    gr_dist *d;
} node;

static gr_cookie COOKIE;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int node_new(node *n, const char *name, const gr_dist_dns *disc, size_t ndisc)
{
    gr_rt_config rc = {.node_name = name, .schedulers = 1};
    gr_dist_config dc = {0};

    memset(n, 0, sizeof(*n));
    COOKIE.len = strlen("test-cookie");
    memcpy(COOKIE.bytes, "test-cookie", COOKIE.len);
    snprintf(n->name, sizeof(n->name), "%s", name);
    ck_assert_int_eq(gr_rt_new(&rc, &n->rt), 0);
    dc.rt = n->rt;
    dc.name = n->name;
    dc.creation = gr_rt_creation(n->rt);
    dc.cookie = &COOKIE;
    dc.listen_host = "127.0.0.1";
    dc.discover = disc;
    dc.ndiscover = ndisc;
    dc.discover_ms = 200;
    return gr_dist_new(&dc, &n->d);
}

static void node_start(node *n)
{
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

static int member_state(node *n, const char *name)
{
    gr_dist_member *m;
    size_t k;
    int st = -1;

    ck_assert_int_eq(gr_dist_members(n->d, &m, &k), 0);
    for (size_t i = 0; i < k; i++) {
        if (strcmp(m[i].name, name) == 0) {
            st = (int)m[i].state;
        }
    }
    free(m);
    return st;
}

static bool wait_state(node *n, const char *name, int state, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    do {
        if (member_state(n, name) == state) {
            return true;
        }
        nap(10);
    } while (now_ms() < end);
    return false;
}

START_TEST(config_checks)
{
    node n;
    gr_dist_dns bad[] = {{.name = ""}};
    gr_dist_dns many[GR_DIST_DISC_NAMES_MAX + 1];

    for (size_t i = 0; i < GR_DIST_DISC_NAMES_MAX + 1; i++) {
        many[i] = (gr_dist_dns){.name = "localhost"};
    }
    ck_assert_int_eq(node_new(&n, "a@127.0.0.1", bad, 1), -EINVAL);
    n.rt = gr_rt_free(n.rt);
    ck_assert_int_eq(node_new(&n, "a@127.0.0.1", NULL, 1), -EINVAL);
    n.rt = gr_rt_free(n.rt);
    ck_assert_int_eq(node_new(&n, "a@127.0.0.1", many, GR_DIST_DISC_NAMES_MAX + 1), -EINVAL);
    n.rt = gr_rt_free(n.rt);
    ck_assert_int_eq(node_new(&n, "a@127.0.0.1", many, GR_DIST_DISC_NAMES_MAX), 0);
    n.d = gr_dist_free(n.d); /* never started: nothing to stop */
    n.rt = gr_rt_free(n.rt);
}
END_TEST

/* b knows no seed and no node name: only "localhost" at a's port. a looks up
 * "localhost" at its own port, which is a itself: never dialled. */
START_TEST(found_through_a_name)
{
    node a, b;
    gr_dist_dns self[] = {{.name = "localhost", .port = 0}};
    gr_dist_dns name[] = {{.name = "localhost"}};
    gr_dist_counters ca;

    ck_assert_int_eq(node_new(&a, "a@127.0.0.1", self, 1), 0);
    node_start(&a);
    name[0].port = gr_dist_port(a.d);
    ck_assert_int_eq(node_new(&b, "b@127.0.0.1", name, 1), 0);
    node_start(&b);
    ck_assert(wait_state(&b, "a@127.0.0.1", GR_DIST_UP, WAIT_MS));
    ck_assert(wait_state(&a, "b@127.0.0.1", GR_DIST_UP, WAIT_MS));
    /* several periods later: still one link each way, a never dialled itself */
    nap(1000);
    ck_assert_int_eq(member_state(&b, "a@127.0.0.1"), GR_DIST_UP);
    gr_dist_counters_get(a.d, &ca);
    ck_assert_uint_eq(ca.handshakes_failed, 0);
    node_stop(&b);
    node_stop(&a);
}
END_TEST

static Suite *discover_suite(void)
{
    Suite *s = suite_create("discover");
    TCase *pure = gr_test_tcase(s, "pure", NULL, NULL, 0);
    TCase *nodes = gr_test_tcase(s, "nodes", NULL, NULL, 60);

    gr_test_add(pure, merge_new_kept_gone, merge_ports_families_cap, addr_format);
    gr_test_add(nodes, config_checks, found_through_a_name);
    return s;
}

int main(void)
{
    return gr_test_run(discover_suite);
}
