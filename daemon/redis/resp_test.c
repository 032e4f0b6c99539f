/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resp_test.c - the RESP parser and writer (resp.h): multibulk commands whole,
 * byte by byte and pipelined; inline commands with quotes and escapes; every
 * limit refused from its header with Redis's own error text; the writer's
 * RESP2 and RESP3 forms; glob and strict integer parsing; random bytes never
 * crash the parser nor yield arguments beyond the buffer.
 */
#include "redis/resp.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse one command from s; returns the result, fills used/err. */
static int parse1(gr_resp_parser *p, char *s, size_t *used, const char **err)
{
    return gr_resp_parse(p, (uint8_t *)s, strlen(s), used, err);
}

static bool arg_is(const gr_resp_parser *p, const char *buf, uint32_t i, const char *want)
{
    return i < p->nargs && p->args[i].len == strlen(want) &&
           memcmp(buf + p->args[i].off, want, p->args[i].len) == 0;
}

START_TEST(multibulk_whole_and_split)
{
    char cmd[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
    gr_resp_parser p = {0};
    const char *err = NULL;
    size_t used, n = strlen(cmd);

    ck_assert_int_eq(parse1(&p, cmd, &used, &err), 1);
    ck_assert_uint_eq(used, n);
    ck_assert_uint_eq(p.nargs, 3);
    ck_assert(arg_is(&p, cmd, 0, "SET") && arg_is(&p, cmd, 1, "key") &&
              arg_is(&p, cmd, 2, "va\r\nl"));
    /* byte by byte: incomplete until the last byte */
    for (size_t i = 1; i < n; i++) {
        ck_assert_int_eq(gr_resp_parse(&p, (uint8_t *)cmd, i, &used, &err), 0);
        ck_assert_uint_eq(used, 0);
    }
    ck_assert_int_eq(gr_resp_parse(&p, (uint8_t *)cmd, n, &used, &err), 1);
    ck_assert_uint_eq(used, n);
    ck_assert(arg_is(&p, cmd, 2, "va\r\nl"));
    gr_resp_parser_free(&p);
}
END_TEST

START_TEST(pipelined_and_empty)
{
    char buf[] = "*1\r\n$4\r\nPING\r\n\r\n*0\r\n*-1\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n";
    gr_resp_parser p = {0};
    const char *err;
    size_t used, at = 0, len = strlen(buf);
    int cmds = 0, r;

    while (at < len) {
        r = gr_resp_parse(&p, (uint8_t *)buf + at, len - at, &used, &err);
        ck_assert_int_ge(r, 0);
        if (r == 1) {
            cmds++;
            if (cmds == 2) {
                ck_assert(arg_is(&p, buf + at, 0, "ECHO") && arg_is(&p, buf + at, 1, ""));
            }
        }
        ck_assert_uint_gt(used, 0);
        at += used;
    }
    ck_assert_int_eq(cmds, 2);
    gr_resp_parser_free(&p);
}
END_TEST

START_TEST(inline_commands)
{
    char a[] = "SET  k \"a b\\x41\\n\" 'it\\'s'\r\n";
    char b[] = "PING\n";
    char c[] = "SET k \"abc\r\n";
    char d[] = "SET k \"abc\"x\r\n";
    char e[] = "GET k";
    gr_resp_parser p = {0};
    const char *err;
    size_t used;

    ck_assert_int_eq(parse1(&p, a, &used, &err), 1);
    ck_assert_uint_eq(used, strlen("SET  k \"a b\\x41\\n\" 'it\\'s'\r\n"));
    ck_assert_uint_eq(p.nargs, 4);
    ck_assert(arg_is(&p, a, 0, "SET") && arg_is(&p, a, 1, "k") && arg_is(&p, a, 2, "a bA\n") &&
              arg_is(&p, a, 3, "it's"));
    ck_assert(p.inline_cmd);
    ck_assert_int_eq(parse1(&p, b, &used, &err), 1);
    ck_assert(arg_is(&p, b, 0, "PING"));
    ck_assert_int_lt(parse1(&p, c, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: unbalanced quotes in request");
    ck_assert_int_lt(parse1(&p, d, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: unbalanced quotes in request");
    ck_assert_int_eq(parse1(&p, e, &used, &err), 0); /* no newline yet */
    gr_resp_parser_free(&p);
}
END_TEST

START_TEST(limits)
{
    gr_resp_parser p = {.lim = {.max_bulk = 1000, .max_args = 100}};
    const char *err;
    size_t used;
    char *big;

    char a[] = "*1000000\r\n";
    ck_assert_int_lt(parse1(&p, a, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: invalid multibulk length");
    char b[] = "*1\r\n$536870912\r\n";
    ck_assert_int_lt(parse1(&p, b, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: invalid bulk length");
    char c[] = "*1\r\n$-5\r\n";
    ck_assert_int_lt(parse1(&p, c, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: invalid bulk length");
    char d[] = "*2\r\n$1\r\na\r\n:1\r\n";
    ck_assert_int_lt(parse1(&p, d, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: expected '$', got ':'");
    char e[] = "*x\r\n";
    ck_assert_int_lt(parse1(&p, e, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: invalid multibulk length");
    char f[] = "*1\r\n$01\r\na\r\n"; /* leading zero: not an integer for Redis */
    ck_assert_int_lt(parse1(&p, f, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: invalid bulk length");
    /* a header with no end, longer than 64 KiB */
    big = malloc(GR_RESP_MAX_INLINE + 10);
    memset(big, '1', GR_RESP_MAX_INLINE + 9);
    big[0] = '*';
    big[GR_RESP_MAX_INLINE + 9] = '\0';
    ck_assert_int_lt(parse1(&p, big, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: too big mbulk count string");
    big[0] = 'x';
    ck_assert_int_lt(parse1(&p, big, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: too big inline request");
    free(big);
    /* a bulk header with no '\r': refused by its length, as Redis does,
     * whatever its first byte and however much of it came first */
    {
        gr_resp_parser q = {0};
        size_t n = 4 + GR_RESP_MAX_INLINE + 10;
        uint8_t *hb = malloc(n);

        memcpy(hb, "*1\r\nV", 5);
        memset(hb + 5, '\n', n - 5);
        ck_assert_int_eq(gr_resp_parse(&q, hb, 1000, &used, &err), 0);
        ck_assert_int_lt(gr_resp_parse(&q, hb, n, &used, &err), 0);
        ck_assert_str_eq(err, "Protocol error: too big bulk count string");
        gr_resp_parser_free(&q);
        free(hb);
    }
    /* unauthenticated limits */
    p.unauth = true;
    char g[] = "*11\r\n";
    ck_assert_int_lt(parse1(&p, g, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: unauthenticated multibulk length");
    p.lim.max_bulk = 0; /* default 16 MiB */
    char h[] = "*1\r\n$16385\r\n";
    ck_assert_int_lt(parse1(&p, h, &used, &err), 0);
    ck_assert_str_eq(err, "Protocol error: unauthenticated bulk length");
    /* the argument array grows only with the arguments received */
    p.unauth = false;
    p.lim.max_args = 0;
    char i[] = "*65536\r\n$1\r\na\r\n";
    ck_assert_int_eq(parse1(&p, i, &used, &err), 0);
    ck_assert_uint_le(p.cap, 8);
    gr_resp_parser_free(&p);
}
END_TEST

static const char *out_str(gr_resp_out *o)
{
    gr_resp_raw(o, "", 1);
    o->len--;
    return (const char *)o->p;
}

START_TEST(writer_resp2_resp3)
{
    gr_resp_out o2 = {.proto = 2}, o3 = {.proto = 3};
    gr_resp_out *os[2] = {&o2, &o3};

    for (int i = 0; i < 2; i++) {
        gr_resp_out *o = os[i];

        gr_resp_simple(o, "OK");
        gr_resp_error(o, "ERR bad\r\nthing");
        gr_resp_int(o, -42);
        gr_resp_bulk(o, "hi", 2);
        gr_resp_null(o);
        gr_resp_null_array(o);
        gr_resp_map(o, 1);
        gr_resp_set(o, 2);
        gr_resp_push(o, 3);
        gr_resp_double(o, 1.5);
        gr_resp_bool(o, true);
        gr_resp_verbatim(o, "txt", "abc", 3);
    }
    ck_assert_str_eq(out_str(&o2),
                     "+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n*2\r\n"
                     "*2\r\n*3\r\n$3\r\n1.5\r\n:1\r\n$3\r\nabc\r\n");
    ck_assert_str_eq(out_str(&o3), "+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n_\r\n_\r\n%1\r\n"
                                   "~2\r\n>3\r\n,1.5\r\n#t\r\n=7\r\ntxt:abc\r\n");
    o2.off = 5;
    gr_resp_out_compact(&o2);
    ck_assert_uint_eq(o2.off, 0);
    ck_assert(memcmp(o2.p, "-ERR", 4) == 0);
    gr_resp_out_free(&o2);
    gr_resp_out_free(&o3);
}
END_TEST

/* Headers written by hand: zero, extremes, an empty bulk; an array's count
 * corrected after its items (LRANGE skipping an element not replicated yet). */
START_TEST(writer_numbers_and_array_fix)
{
    gr_resp_out o = {.proto = 2};
    size_t at, body;

    gr_resp_int(&o, 0);
    gr_resp_int(&o, INT64_MIN);
    gr_resp_int(&o, INT64_MAX);
    gr_resp_bulk(&o, "", 0);
    ck_assert_str_eq(out_str(&o), ":0\r\n:-9223372036854775808\r\n:9223372036854775807\r\n"
                                  "$0\r\n\r\n");
    o.len = 0;
    gr_resp_simple(&o, "OK");
    at = o.len;
    gr_resp_array(&o, 12);
    body = o.len;
    gr_resp_bulk(&o, "a", 1);
    gr_resp_bulk(&o, "b", 1);
    gr_resp_array_fix(&o, at, body, 2); /* "*12" becomes "*2": what follows moves */
    ck_assert_str_eq(out_str(&o), "+OK\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    at = o.len;
    gr_resp_array(&o, 3);
    body = o.len;
    gr_resp_bulk(&o, "c", 1);
    gr_resp_array_fix(&o, at, body, 1); /* same width */
    ck_assert_str_eq(out_str(&o), "+OK\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$1\r\nc\r\n");
    gr_resp_out_free(&o);
}
END_TEST

START_TEST(glob_and_ints)
{
    int64_t v;
    char b[64];

    ck_assert(gr_resp_glob("*", 1, "anything", 8, false));
    ck_assert(gr_resp_glob("h?llo", 5, "hello", 5, false));
    ck_assert(gr_resp_glob("h[ae]llo", 8, "hallo", 5, false));
    ck_assert(!gr_resp_glob("h[^e]llo", 8, "hello", 5, false));
    ck_assert(gr_resp_glob("h[a-b]llo", 9, "hbllo", 5, false));
    ck_assert(gr_resp_glob("key:*:x", 7, "key:123:x", 9, false));
    ck_assert(!gr_resp_glob("key:*:x", 7, "key:123:y", 9, false));
    ck_assert(gr_resp_glob("a\\*", 3, "a*", 2, false));
    ck_assert(gr_resp_glob("HELLO", 5, "hello", 5, true));
    {
        /* 20 stars over 60 `a`s and no `b`: without the cut of glob() this
         * tries some 10^15 splits (the test would hang until its timeout);
         * with it, a few thousand. Then the same shape that does match. */
        char pat[64], str[64];
        size_t n = 0;

        for (int i = 0; i < 20; i++) {
            pat[n++] = '*';
            pat[n++] = 'a';
        }
        pat[n++] = '*';
        pat[n++] = 'b';
        memset(str, 'a', 60);
        ck_assert(!gr_resp_glob(pat, n, str, 60, false));
        str[59] = 'b';
        ck_assert(gr_resp_glob(pat, n, str, 60, false));
        ck_assert(!gr_resp_glob("*a*b*c", 6, "aaaaaaaaaaaaaaaaaaaaaaaacb", 26, false));
        ck_assert(gr_resp_glob("*a*b*c", 6, "aaaaaaaaaaaaaaaaaaaaaaaabc", 26, false));
    }
    ck_assert(gr_resp_str2ll("0", 1, &v) && v == 0);
    ck_assert(gr_resp_str2ll("-9223372036854775808", 20, &v) && v == INT64_MIN);
    ck_assert(gr_resp_str2ll("9223372036854775807", 19, &v) && v == INT64_MAX);
    ck_assert(!gr_resp_str2ll("9223372036854775808", 19, &v));
    ck_assert(!gr_resp_str2ll("01", 2, &v));
    ck_assert(!gr_resp_str2ll("-0", 2, &v));
    ck_assert(!gr_resp_str2ll("+1", 2, &v));
    ck_assert(!gr_resp_str2ll(" 1", 2, &v));
    ck_assert(!gr_resp_str2ll("", 0, &v));
    gr_resp_fmt_double(b, sizeof(b), 10.5L);
    ck_assert_str_eq(b, "10.5");
    gr_resp_fmt_double(b, sizeof(b), 3.0L);
    ck_assert_str_eq(b, "3");
    gr_resp_fmt_double(b, sizeof(b), 5.0e3L);
    ck_assert_str_eq(b, "5000");
    /* scores: the shortest round trip, as Redis 7.2 */
    gr_resp_fmt_score(b, sizeof(b), 0.1);
    ck_assert_str_eq(b, "0.1");
    gr_resp_fmt_score(b, sizeof(b), 1.0 / 3);
    ck_assert_str_eq(b, "0.3333333333333333");
    gr_resp_fmt_score(b, sizeof(b), -2.0);
    ck_assert_str_eq(b, "-2");
    gr_resp_fmt_score(b, sizeof(b), 1e20);
    ck_assert_str_eq(b, "1e+20");
    gr_resp_fmt_score(b, sizeof(b), -INFINITY);
    ck_assert_str_eq(b, "-inf");
}
END_TEST

START_TEST(random_bytes)
{
    unsigned seed = 7;
    uint8_t buf[256];
    gr_resp_parser p = {.lim = {.max_bulk = 64, .max_args = 16}};
    const char *err;
    size_t used;

    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        int r;

        for (size_t i = 0; i < len; i++) {
            static const char alpha[] = "*$:\r\n0123456789-ab \"'\\x";
            buf[i] = (rand_r(&seed) & 1) ? (uint8_t)alpha[rand_r(&seed) % (sizeof(alpha) - 1)]
                                         : (uint8_t)rand_r(&seed);
        }
        p.in_multibulk = false;
        r = gr_resp_parse(&p, buf, len, &used, &err);
        ck_assert(r == 0 || r == 1 || r < 0);
        ck_assert_uint_le(used, len);
        if (r == 1) {
            for (uint32_t i = 0; i < p.nargs; i++) {
                ck_assert_uint_le(p.args[i].off + p.args[i].len, used);
            }
        }
        if (r < 0) {
            ck_assert(strncmp(err, "Protocol error: ", 16) == 0);
        }
    }
    gr_resp_parser_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_resp");
    TCase *tc = tcase_create("resp");

    tcase_set_timeout(tc, 120); /* the shared machine can be very loaded */
    SRunner *sr;
    int failed;

    tcase_add_test(tc, multibulk_whole_and_split);
    tcase_add_test(tc, pipelined_and_empty);
    tcase_add_test(tc, inline_commands);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, writer_resp2_resp3);
    tcase_add_test(tc, writer_numbers_and_array_fix);
    tcase_add_test(tc, glob_and_ints);
    tcase_add_test(tc, random_bytes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
