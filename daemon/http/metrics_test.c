/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_test.c - the Prometheus text writer (http/metrics.h): label values
 * and help texts escaped, histogram buckets cumulative with +Inf = _count,
 * floats written as Prometheus reads them; and the pure helpers of http.h
 * (loopback addresses, the token file's rules).
 */
#include "http/http.h"
#include "http/metrics.h"
#include "proto/err.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The buffer's text, NUL-terminated (static storage, next call overwrites). */
static const char *text(struct evbuffer *b)
{
    static char out[8192];
    size_t n = evbuffer_get_length(b);

    ck_assert_uint_lt(n, sizeof(out));
    evbuffer_copyout(b, out, n);
    out[n] = '\0';
    return out;
}

START_TEST(head_and_plain_sample)
{
    struct evbuffer *b = evbuffer_new();

    ck_assert_int_eq(gr_http_metric_head(b, "girder_processes", "gauge", "Live processes."), 0);
    ck_assert_int_eq(gr_http_metric_u64(b, "girder_processes", NULL, 0, 42), 0);
    ck_assert_str_eq(text(b), "# HELP girder_processes Live processes.\n"
                              "# TYPE girder_processes gauge\n"
                              "girder_processes 42\n");
    evbuffer_free(b);
}
END_TEST

/* A label value may hold anything a peer names itself: \ " and newline are
 * escaped, everything else is kept as is (UTF-8 included). */
START_TEST(label_values_escaped)
{
    struct evbuffer *b = evbuffer_new();
    gr_http_label l[2] = {{"peer", "a\"b\\c\nd"}, {"direction", "in"}};

    ck_assert_int_eq(gr_http_metric_u64(b, "x_total", l, 2, 18446744073709551615ull), 0);
    ck_assert_str_eq(text(b), "x_total{peer=\"a\\\"b\\\\c\\nd\",direction=\"in\"} "
                              "18446744073709551615\n");
    evbuffer_drain(b, evbuffer_get_length(b));
    l[0].value = "n\xc3\xa9@h"; /* UTF-8 kept */
    ck_assert_int_eq(gr_http_metric_u64(b, "x", l, 1, 0), 0);
    ck_assert_str_eq(text(b), "x{peer=\"n\xc3\xa9@h\"} 0\n");
    evbuffer_drain(b, evbuffer_get_length(b));
    l[0].value = ""; /* empty value */
    ck_assert_int_eq(gr_http_metric_u64(b, "x", l, 1, 1), 0);
    ck_assert_str_eq(text(b), "x{peer=\"\"} 1\n");
    evbuffer_free(b);
}
END_TEST

/* Help text: backslash and newline escaped, quotes kept (the format's rule). */
START_TEST(help_escaped)
{
    struct evbuffer *b = evbuffer_new();

    ck_assert_int_eq(gr_http_metric_head(b, "x", "counter", "a \"q\" \\ b\nc"), 0);
    ck_assert_str_eq(text(b), "# HELP x a \"q\" \\\\ b\\nc\n# TYPE x counter\n");
    evbuffer_free(b);
}
END_TEST

/* Buckets are written cumulative from per-bucket counts; +Inf equals _count;
 * le values read as the bounds. */
START_TEST(histogram_cumulative)
{
    struct evbuffer *b = evbuffer_new();
    const double bounds[3] = {0.001, 0.25, 1};
    const uint64_t counts[4] = {2, 0, 3, 5}; /* 5 above the last bound */

    ck_assert_int_eq(gr_http_metric_histogram(b, "lat_seconds", NULL, 0, bounds, counts, 3, 7.5),
                     0);
    ck_assert_str_eq(text(b), "lat_seconds_bucket{le=\"0.001\"} 2\n"
                              "lat_seconds_bucket{le=\"0.25\"} 2\n"
                              "lat_seconds_bucket{le=\"1\"} 5\n"
                              "lat_seconds_bucket{le=\"+Inf\"} 10\n"
                              "lat_seconds_sum 7.5\n"
                              "lat_seconds_count 10\n");
    evbuffer_free(b);
}
END_TEST

/* With labels, le comes last, after the series' own labels. */
START_TEST(histogram_with_labels)
{
    struct evbuffer *b = evbuffer_new();
    const double bounds[1] = {0.5};
    const uint64_t counts[2] = {1, 1};
    gr_http_label l[1] = {{"fn", "a\"b"}};

    ck_assert_int_eq(gr_http_metric_histogram(b, "h", l, 1, bounds, counts, 1, 0.75), 0);
    ck_assert_str_eq(text(b), "h_bucket{fn=\"a\\\"b\",le=\"0.5\"} 1\n"
                              "h_bucket{fn=\"a\\\"b\",le=\"+Inf\"} 2\n"
                              "h_sum{fn=\"a\\\"b\"} 0.75\n"
                              "h_count{fn=\"a\\\"b\"} 2\n");
    evbuffer_free(b);
}
END_TEST

START_TEST(floats)
{
    struct evbuffer *b = evbuffer_new();

    gr_http_metric_f64(b, "a", NULL, 0, 0.1);
    gr_http_metric_f64(b, "b", NULL, 0, 1e-4);
    gr_http_metric_f64(b, "c", NULL, 0, 1.0 / 0.0);
    gr_http_metric_f64(b, "d", NULL, 0, 12345.678);
    ck_assert_str_eq(text(b), "a 0.1\nb 0.0001\nc +Inf\nd 12345.678\n");
    evbuffer_free(b);
}
END_TEST

START_TEST(loopback)
{
    ck_assert(gr_http_is_loopback("127.0.0.1"));
    ck_assert(gr_http_is_loopback("127.0.0.2"));
    ck_assert(gr_http_is_loopback("::1"));
    ck_assert(gr_http_is_loopback("localhost"));
    ck_assert(!gr_http_is_loopback("0.0.0.0"));
    ck_assert(!gr_http_is_loopback("10.0.0.1"));
    ck_assert(!gr_http_is_loopback("::"));
    ck_assert(!gr_http_is_loopback("example.com"));
}
END_TEST

static const char *write_token(const char *content, mode_t mode)
{
    static char path[64];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/gr_http_token_%d", (int)getpid());
    unlink(path);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs(content, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
    return path;
}

/* A token file: one line (newline cut), owner-only, 1..256 bytes. */
START_TEST(token_file_rules)
{
    char tok[GR_HTTP_TOKEN_MAX];
    char big[GR_HTTP_TOKEN_MAX + 8];
    size_t len = 0;

    ck_assert_int_eq(gr_http_token_load(write_token("s3cret\n", 0600), tok, &len), 0);
    ck_assert_uint_eq(len, 6);
    ck_assert(memcmp(tok, "s3cret", 6) == 0);
    ck_assert_int_eq(gr_http_token_load(write_token("s3cret\n", 0400), tok, &len), 0);
    ck_assert_int_eq(gr_http_token_load(write_token("s3cret\n", 0644), tok, &len), GR_EHTTPTOKEN);
    ck_assert_int_eq(gr_http_token_load(write_token("s3cret\n", 0640), tok, &len), GR_EHTTPTOKEN);
    ck_assert_int_eq(gr_http_token_load(write_token("\n", 0600), tok, &len), GR_EHTTPTOKEN);
    ck_assert_int_eq(gr_http_token_load(write_token("a\nb\n", 0600), tok, &len), GR_EHTTPTOKEN);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(gr_http_token_load(write_token(big, 0600), tok, &len), GR_EHTTPTOKEN);
    unlink(write_token("", 0600));
    ck_assert_int_eq(gr_http_token_load("/tmp/gr_http_token_missing_x", tok, &len), GR_EHTTPTOKEN);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_metrics");
    TCase *tc = tcase_create("http_metrics");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, head_and_plain_sample);
    tcase_add_test(tc, label_values_escaped);
    tcase_add_test(tc, help_escaped);
    tcase_add_test(tc, histogram_cumulative);
    tcase_add_test(tc, histogram_with_labels);
    tcase_add_test(tc, floats);
    tcase_add_test(tc, loopback);
    tcase_add_test(tc, token_file_rules);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
