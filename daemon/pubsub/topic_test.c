/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic_test.c - Check tests for topic validation, the reference matcher and
 * the trie index: a table of cases (empty tokens, overlong topics, wildcards in
 * the wrong place), index answers compared with the reference matcher over
 * every (pattern, topic) pair, pruning, and a match that must not visit
 * unrelated subscriptions.
 */
#include "pubsub/topic.h"

#include "proto/err.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct check_case {
    const char *s;
    bool pattern;
    gr_topic_err want;
} check_case;

static const check_case checks[] = {
    {"orders", false, GR_TOPIC_OK},
    {"orders.eu.new", false, GR_TOPIC_OK},
    {"a-b_c:d/e", false, GR_TOPIC_OK},
    {"", false, GR_TOPIC_EEMPTY},
    {"", true, GR_TOPIC_EEMPTY},
    {".", false, GR_TOPIC_EEMPTYTOKEN},
    {".a", false, GR_TOPIC_EEMPTYTOKEN},
    {"a.", false, GR_TOPIC_EEMPTYTOKEN},
    {"a..b", false, GR_TOPIC_EEMPTYTOKEN},
    {"a..b", true, GR_TOPIC_EEMPTYTOKEN},
    {"a.*.", true, GR_TOPIC_EEMPTYTOKEN},
    {"a b", false, GR_TOPIC_EBADCHAR},
    {"a\tb", true, GR_TOPIC_EBADCHAR},
    {"a.\x01", false, GR_TOPIC_EBADCHAR},
    {"*", false, GR_TOPIC_EWILDCARD},
    {"a.>", false, GR_TOPIC_EWILDCARD},
    {"a.*.c", false, GR_TOPIC_EWILDCARD},
    {"*", true, GR_TOPIC_OK},
    {">", true, GR_TOPIC_OK},
    {"a.*.c", true, GR_TOPIC_OK},
    {"a.*.>", true, GR_TOPIC_OK},
    {"*.*.*", true, GR_TOPIC_OK},
    {">.a", true, GR_TOPIC_EGTNOTLAST},
    {"a.>.b", true, GR_TOPIC_EGTNOTLAST},
    {"a*", true, GR_TOPIC_EPARTIAL},
    {"a.b*", false, GR_TOPIC_EPARTIAL},
    {"a.>b", true, GR_TOPIC_EPARTIAL},
    {"**", true, GR_TOPIC_EPARTIAL},
};

START_TEST(test_check_table)
{
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        const check_case *c = &checks[i];
        gr_topic_err e = gr_topic_check(c->s, strlen(c->s), c->pattern);

        ck_assert_msg(e == c->want, "case %zu \"%s\" (%s): got %d (%s), want %d", i, c->s,
                      c->pattern ? "pattern" : "topic", (int)e, gr_topic_strerror(e), (int)c->want);
        ck_assert_ptr_nonnull(gr_topic_strerror(e));
    }
    ck_assert_int_eq(gr_topic_check(NULL, 0, false), GR_TOPIC_EEMPTY);
}
END_TEST

/* Overlong topics: 255 bytes is the limit, 256 is refused, as topic and as
 * pattern; 32 tokens is the limit, 33 is refused. */
START_TEST(test_check_limits)
{
    char buf[GR_TOPIC_MAX_LEN + 2];

    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(gr_topic_check(buf, GR_TOPIC_MAX_LEN, false), GR_TOPIC_OK);
    ck_assert_int_eq(gr_topic_check(buf, GR_TOPIC_MAX_LEN + 1, false), GR_TOPIC_ETOOLONG);
    ck_assert_int_eq(gr_topic_check(buf, GR_TOPIC_MAX_LEN + 1, true), GR_TOPIC_ETOOLONG);

    /* "a.a.a...": n tokens take 2n - 1 bytes */
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = i % 2 ? '.' : 'a';
    }
    ck_assert_int_eq(gr_topic_check(buf, 2 * GR_TOPIC_MAX_TOKENS - 1, false), GR_TOPIC_OK);
    ck_assert_int_eq(gr_topic_check(buf, 2 * (GR_TOPIC_MAX_TOKENS + 1) - 1, false),
                     GR_TOPIC_ETOOMANY);
    for (size_t i = 0; i < sizeof(buf); i += 2) {
        buf[i] = '*';
    }
    ck_assert_int_eq(gr_topic_check(buf, 2 * (GR_TOPIC_MAX_TOKENS + 1) - 1, true),
                     GR_TOPIC_ETOOMANY);
}
END_TEST

typedef struct match_case {
    const char *pattern;
    const char *topic;
    bool want;
} match_case;

static const match_case matches[] = {
    {"a", "a", true},           {"a", "b", false},
    {"a", "a.b", false},        {"a.b", "a", false},
    {"a.b", "a.b", true},       {"*", "a", true},
    {"*", "a.b", false},        {"a.*", "a", false},
    {"a.*", "a.b", true},       {"a.*", "a.b.c", false},
    {"*.b", "a.b", true},       {"*.b", "a.c", false},
    {"a.*.c", "a.x.c", true},   {"a.*.c", "a.x.d", false},
    {">", "a", true},           {">", "a.b.c", true},
    {"a.>", "a", false}, /* '>' needs at least one token */
    {"a.>", "a.b", true},       {"a.>", "a.b.c.d", true},
    {"a.>", "b.a", false},      {"*.>", "a", false},
    {"*.>", "a.b", true},       {"a.*.>", "a.b", false},
    {"a.*.>", "a.b.c", true},   {"orders", "orderss", false}, /* whole tokens only */
    {"order", "orders", false}, {"ab.c", "a.bc", false},
};

START_TEST(test_reference_matcher)
{
    for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
        const match_case *c = &matches[i];

        ck_assert_msg(gr_topic_match(c->pattern, strlen(c->pattern), c->topic, strlen(c->topic)) ==
                          c->want,
                      "case %zu: %s ~ %s", i, c->pattern, c->topic);
    }
}
END_TEST

typedef struct sub {
    gr_tidx_item it;
    const char *pattern;
    int hits;
} sub;

static bool count_hit(gr_tidx_item *it, void *ud)
{
    (void)ud;
    ((sub *)it)->hits++;
    return true;
}

/* The index answers exactly what the reference matcher answers, for every
 * pattern of the table (and duplicates) against every topic of the table. */
START_TEST(test_index_agrees_with_reference)
{
    size_t np = sizeof(matches) / sizeof(matches[0]);
    sub *subs = calloc(2 * np, sizeof(*subs));
    gr_tidx *idx;

    ck_assert_int_eq(gr_tidx_new(&idx), 0);
    for (size_t i = 0; i < 2 * np; i++) { /* every pattern twice: two subscribers */
        subs[i].pattern = matches[i % np].pattern;
        ck_assert_int_eq(gr_tidx_add(idx, subs[i].pattern, strlen(subs[i].pattern), &subs[i].it),
                         0);
    }
    for (size_t t = 0; t < np; t++) {
        const char *topic = matches[t].topic;
        int want = 0, got;

        for (size_t i = 0; i < 2 * np; i++) {
            subs[i].hits = 0;
            want += gr_topic_match(subs[i].pattern, strlen(subs[i].pattern), topic, strlen(topic));
        }
        got = gr_tidx_match(idx, topic, strlen(topic), count_hit, NULL);
        ck_assert_int_eq(got, want);
        for (size_t i = 0; i < 2 * np; i++) {
            bool m = gr_topic_match(subs[i].pattern, strlen(subs[i].pattern), topic, strlen(topic));

            ck_assert_msg(subs[i].hits == (m ? 1 : 0), "%s ~ %s: %d hits", subs[i].pattern, topic,
                          subs[i].hits);
        }
    }
    /* Removing every item leaves only the root. */
    for (size_t i = 0; i < 2 * np; i++) {
        gr_tidx_del(idx, &subs[i].it);
    }
    ck_assert_uint_eq(gr_tidx_nodes(idx), 1);
    ck_assert_int_eq(gr_tidx_match(idx, "a.b", 3, count_hit, NULL), 0);
    gr_tidx_free(idx);
    free(subs);
}
END_TEST

START_TEST(test_index_refuses_invalid)
{
    gr_tidx *idx;
    sub s = {0};

    ck_assert_int_eq(gr_tidx_new(&idx), 0);
    ck_assert_int_eq(gr_tidx_add(idx, "a..b", 4, &s.it), GR_EBADARG);
    ck_assert_int_eq(gr_tidx_add(idx, "a.>.b", 5, &s.it), GR_EBADARG);
    ck_assert_ptr_null(s.it.node);
    ck_assert_int_eq(gr_tidx_match(idx, "a.*", 3, count_hit, NULL), GR_EBADARG);
    ck_assert_int_eq(gr_tidx_match(idx, "", 0, count_hit, NULL), GR_EBADARG);
    ck_assert_uint_eq(gr_tidx_nodes(idx), 1);
    gr_tidx_free(idx);
}
END_TEST

typedef struct visit {
    int calls;
    int stop_after;
} visit;

static bool count_calls(gr_tidx_item *it, void *ud)
{
    visit *v = ud;

    (void)it;
    return ++v->calls < v->stop_after;
}

/* 20,000 subscriptions on distinct topics (a hash of 20,000 children on one
 * node): a publish reports only its own subscriber, and each removal prunes
 * the node it leaves empty. A callback returning false stops the match. */
START_TEST(test_index_many_siblings)
{
    enum { N = 20000 };
    sub *subs = calloc(N, sizeof(*subs));
    char buf[64];
    gr_tidx *idx;
    visit v = {0, 1000};

    ck_assert_int_eq(gr_tidx_new(&idx), 0);
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "user.%d.inbox", i);

        ck_assert_int_eq(gr_tidx_add(idx, buf, (size_t)n, &subs[i].it), 0);
    }
    ck_assert_uint_eq(gr_tidx_nodes(idx), 1 + 1 + 2 * N);
    for (int i = 0; i < N; i += 997) {
        int n = snprintf(buf, sizeof(buf), "user.%d.inbox", i);

        ck_assert_int_eq(gr_tidx_match(idx, buf, (size_t)n, count_hit, NULL), 1);
        ck_assert_int_eq(subs[i].hits, 1);
    }
    ck_assert_int_eq(gr_tidx_match(idx, "user.x.inbox", 12, count_hit, NULL), 0);
    for (int i = 0; i < N; i++) {
        gr_tidx_del(idx, &subs[i].it);
    }
    ck_assert_uint_eq(gr_tidx_nodes(idx), 1);

    /* early stop */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(gr_tidx_add(idx, ">", 1, &subs[i].it), 0);
    }
    ck_assert_int_eq(gr_tidx_match(idx, "x", 1, count_calls, &v), 10);
    v = (visit){0, 3};
    ck_assert_int_eq(gr_tidx_match(idx, "x", 1, count_calls, &v), 3);
    for (int i = 0; i < 10; i++) {
        gr_tidx_del(idx, &subs[i].it);
    }
    gr_tidx_free(idx);
    free(subs);
}
END_TEST

static Suite *topic_suite(void)
{
    Suite *s = suite_create("topic");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_check_table);
    tcase_add_test(tc, test_check_limits);
    tcase_add_test(tc, test_reference_matcher);
    tcase_add_test(tc, test_index_agrees_with_reference);
    tcase_add_test(tc, test_index_refuses_invalid);
    tcase_add_test(tc, test_index_many_siblings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(topic_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
