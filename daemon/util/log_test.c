/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log_test.c - unit tests of the JSON log line writer (gr_log_json_line):
 * every line parses as one JSON object (checked with jansson) with the
 * fields in place; quotes, backslashes, control bytes and bytes that are not
 * UTF-8 are escaped; a message too long for the line is cut, never the
 * structure; and the sink gets every line with its fields.
 */
#include "util/log.h"

#include <check.h>
#include <jansson.h>
#include <string.h>

#define T0 1700000000123ull /* 2023-11-14T22:13:20.123Z */

/* Parse one line (newline-terminated) as a JSON object; the caller decrefs. */
static json_t *parse(const char *buf, size_t n)
{
    json_error_t e;
    json_t *j;

    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_ptr_null(memchr(buf, '\n', n - 1)); /* one line */
    j = json_loadb(buf, n, 0, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %.*s", e.text, (int)n, buf);
    ck_assert(json_is_object(j));
    return j;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    ck_assert_msg(json_is_string(v), "no string %s", k);
    return json_string_value(v);
}

START_TEST(fields_in_place)
{
    gr_log_field f[] = {{"event", "conn_up"}, {"peer", "b@127.0.0.2"}};
    char buf[GR_LOG_LINE_MAX];
    size_t n = gr_log_json_line(buf, sizeof(buf), T0, GR_LOG_NOTICE, "a@127.0.0.1", 42, "dist", f,
                                2, "link up");
    json_t *j = parse(buf, n);

    ck_assert_str_eq(str(j, "ts"), "2023-11-14T22:13:20.123Z");
    ck_assert_str_eq(str(j, "level"), "notice");
    ck_assert_str_eq(str(j, "node"), "a@127.0.0.1");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "pid")), 42);
    ck_assert_str_eq(str(j, "module"), "dist");
    ck_assert_str_eq(str(j, "event"), "conn_up");
    ck_assert_str_eq(str(j, "peer"), "b@127.0.0.2");
    ck_assert_str_eq(str(j, "msg"), "link up");
    json_decref(j);

    /* no node, no pid: the keys are left out */
    n = gr_log_json_line(buf, sizeof(buf), T0, GR_LOG_ERROR, NULL, 0, "x", NULL, 0, "");
    j = parse(buf, n);
    ck_assert_ptr_null(json_object_get(j, "node"));
    ck_assert_ptr_null(json_object_get(j, "pid"));
    ck_assert_str_eq(str(j, "msg"), "");
    json_decref(j);
}
END_TEST

START_TEST(escaping)
{
    static const struct {
        const char *in, *want; /* want: the string as JSON decodes it */
    } cases[] = {
        {"say \"hi\"", "say \"hi\""},
        {"back\\slash", "back\\slash"},
        {"two\nlines\r\tand tab", "two\nlines\r\tand tab"},
        {"bell\x01\x1f del\x7f", "bell\x01\x1f del\x7f"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"bad \xff byte", "bad \xef\xbf\xbd byte"},                 /* U+FFFD */
        {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"},           /* truncated sequence */
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"}, /* '/' in 2 bytes */
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"</script>", "</script>"},
    };
    char buf[GR_LOG_LINE_MAX];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gr_log_field f = {"reason", cases[i].in};
        size_t n = gr_log_json_line(buf, sizeof(buf), T0, GR_LOG_INFO, cases[i].in, 1, "m", &f, 1,
                                    cases[i].in);
        json_t *j = parse(buf, n);

        ck_assert_str_eq(str(j, "msg"), cases[i].want);
        ck_assert_str_eq(str(j, "reason"), cases[i].want);
        ck_assert_str_eq(str(j, "node"), cases[i].want);
        json_decref(j);
    }
}
END_TEST

START_TEST(long_message_is_cut_not_the_structure)
{
    static char msg[3 * GR_LOG_LINE_MAX];
    gr_log_field f = {"event", "crash"};
    char buf[256];
    json_t *j;
    size_t n;

    memset(msg, '"', sizeof(msg) - 1); /* every byte doubles when escaped */
    n = gr_log_json_line(buf, sizeof(buf), T0, GR_LOG_WARN, "a@h", 7, "sup", &f, 1, msg);
    ck_assert_uint_le(n, sizeof(buf));
    j = parse(buf, n);
    ck_assert_str_eq(str(j, "event"), "crash");
    ck_assert_uint_gt(strlen(str(j, "msg")), 50);
    ck_assert_ptr_null(strchr(str(j, "msg"), 'x'));
    json_decref(j);

    /* multi-byte characters are cut whole */
    for (size_t i = 0; i + 2 < sizeof(msg); i += 2) {
        msg[i] = (char)0xc3, msg[i + 1] = (char)0xa9;
    }
    msg[sizeof(msg) - 2] = '\0';
    n = gr_log_json_line(buf, sizeof(buf), T0, GR_LOG_WARN, "a@h", 7, "sup", &f, 1, msg);
    json_decref(parse(buf, n));

    /* too small for the fields themselves: nothing, not a broken line */
    ck_assert_uint_eq(gr_log_json_line(buf, 20, T0, GR_LOG_WARN, "a@h", 7, "sup", &f, 1, "m"), 0);
}
END_TEST

static int sunk;
static char sunk_peer[64];

static void sink(enum gr_log_level level, const char *module, const gr_log_field *f, size_t n,
                 const char *msg)
{
    sunk++;
    ck_assert_int_eq(level, GR_LOG_INFO);
    ck_assert_str_eq(module, "dist");
    ck_assert_str_eq(msg, "nodeup b@h (3)");
    ck_assert_uint_eq(n, 1);
    snprintf(sunk_peer, sizeof(sunk_peer), "%s=%s", f[0].key, f[0].val);
}

START_TEST(sink_takes_the_lines)
{
    gr_log_setup("log_test", GR_LOG_INFO);
    gr_log_set_sink(sink);
    gr_log_fields(GR_LOG_INFO, "dist", (gr_log_field[]){{"peer", "b@h"}}, 1, "nodeup %s (%d)",
                  "b@h", 3);
    gr_log(GR_LOG_DEBUG, "dist", "below the level: dropped");
    gr_log_set_sink(NULL);
    ck_assert_int_eq(sunk, 1);
    ck_assert_str_eq(sunk_peer, "peer=b@h");
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("json");

    tcase_add_test(tc, fields_in_place);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, long_message_is_cut_not_the_structure);
    tcase_add_test(tc, sink_takes_the_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
