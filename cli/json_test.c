/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_test.c - unit tests of cli/json.h: every JSON type to a term and back,
 * pids, refs and binaries both ways, exact uint64 and float output, escaping
 * and invalid UTF-8, non-string keys, pretty layout, and refused input (bad
 * JSON, bad base64, too deep, integers out of range); DEST arguments (dest.h).
 */
#include "cli/dest.h"
#include "cli/json.h"
#include "proto/err.h"

#include "testing/gr_test.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* JSON text -> term -> JSON text. Returns the conversion status; *ret_s on success. */
static int roundtrip(const char *in, int pretty, char **ret_s, gr_cli_json_err *e)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = gr_cli_json_to_term(in, &pk, e);
    if (r == 0) {
        r = gr_cli_term_buf_to_json(sb.data, sb.size, pretty, ret_s);
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static void same(const char *in, const char *want)
{
    gr_cli_json_err e = {0};
    char *s = NULL;

    ck_assert_int_eq(roundtrip(in, 0, &s, &e), 0);
    ck_assert_str_eq(s, want);
    free(s);
}

static int refused(const char *in, gr_cli_json_err *e)
{
    char *s = NULL;
    int r = roundtrip(in, 0, &s, e);

    ck_assert_ptr_null(s);
    return r;
}

/* Print the term in buf as compact JSON. */
static char *print_buf(const msgpack_sbuffer *sb, int pretty)
{
    char *s = NULL;

    ck_assert_int_eq(gr_cli_term_buf_to_json(sb->data, sb->size, pretty, &s), 0);
    return s;
}

START_TEST(scalars_and_containers)
{
    same("null", "null");
    same("true", "true");
    same("false", "false");
    same("0", "0");
    same("42", "42");
    same("-7", "-7");
    same("-9223372036854775808", "-9223372036854775808");
    same("1.5", "1.5");
    same("1.0", "1.0");
    same("0.1", "0.1");
    same("-2.5e-300", "-2.5e-300");
    same("\"hello\"", "\"hello\"");
    same("\"\"", "\"\"");
    same("[]", "[]");
    same("{}", "{}");
    same(" [1, [2, [3]], {\"a\": null}] ", "[1,[2,[3]],{\"a\":null}]");
    same("{\"b\":1,\"a\":2}", "{\"b\":1,\"a\":2}"); /* order kept */
    same("\"tab\\tquote\\\"back\\\\nl\\n\\u0001\"", "\"tab\\tquote\\\"back\\\\nl\\n\\u0001\"");
    same("\"caf\\u00e9 \xe2\x82\xac\"", "\"caf\xc3\xa9 \xe2\x82\xac\"");
}
END_TEST

START_TEST(pids_refs_bins)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    gr_cli_json_err e = {0};
    gr_term_id id;
    size_t off = 0;

    same("\"<a@10.0.0.1.7.42.3>\"", "\"<a@10.0.0.1.7.42.3>\"");
    same("\"#Ref<b@h.1.18446744073709551615>\"", "\"#Ref<b@h.1.18446744073709551615>\"");
    same("{\"$bin\":\"AAEC/w==\"}", "{\"$bin\":\"AAEC/w==\"}");
    same("{\"$bin\":\"\"}", "{\"$bin\":\"\"}");
    /* the pid really is an ext with id = serial << 8 | sched */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_cli_json_to_term("\"<a@h.7.42.3>\"", &pk, &e), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(gr_term_parse_id(&u.data, GR_TERM_EXT_PID, &id), 0);
    ck_assert_uint_eq(id.node_len, 3);
    ck_assert(memcmp(id.node, "a@h", 3) == 0);
    ck_assert_uint_eq(id.creation, 7);
    ck_assert(id.id == ((42u << 8) | 3u));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    /* look-alikes that are not pids stay strings */
    same("\"<hello>\"", "\"<hello>\"");
    same("\"<a@h.1.2.256>\"", "\"<a@h.1.2.256>\"");               /* sched > 255 */
    same("\"<a@h.4294967296.2.3>\"", "\"<a@h.4294967296.2.3>\""); /* creation > u32 */
    same("\"<nohost.1.2.3>\"", "\"<nohost.1.2.3>\"");             /* no '@' */
    same("\"<a@h.1.x.3>\"", "\"<a@h.1.x.3>\"");
    same("\"#Ref<a@h.1>\"", "\"#Ref<a@h.1>\"");
    /* an object with $bin and more keys is a map */
    same("{\"$bin\":\"AA==\",\"x\":1}", "{\"$bin\":\"AA==\",\"x\":1}");
}
END_TEST

START_TEST(output_only_forms)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *s;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_float(&pk, 0.1f);
    msgpack_pack_double(&pk, NAN);
    msgpack_pack_double(&pk, 3.0);
    msgpack_pack_str_with_body(&pk,
                               "a\xff"
                               "b\xc0\xaf",
                               5); /* invalid, overlong */
    msgpack_pack_ext_with_body(&pk, "\x01\x02", 2, 9);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "one", 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_true(&pk);
    msgpack_pack_nil(&pk);
    gr_term_pack_id(&pk, GR_TERM_EXT_PID, "a@h", 3, 1, (5 << 8) | 2);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_str_with_body(&pk, "q\"\x7f", 3);
    msgpack_pack_bin_with_body(&pk, "", 0);
    s = print_buf(&sb, 0);
    ck_assert_str_eq(s, "[18446744073709551615,0.1,null,3.0,\"a\\ufffdb\\ufffd\\ufffd\","
                        "{\"$ext\":{\"type\":9,\"data\":\"AQI=\"}},"
                        "{\"1\":\"one\",\"[true]\":null,\"<a@h.1.5.2>\":0},"
                        "\"q\\\"\\u007f\",{\"$bin\":\"\"}]");
    free(s);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(pretty_layout)
{
    gr_cli_json_err e = {0};
    char *s = NULL;

    ck_assert_int_eq(roundtrip("{\"a\":[1,{}],\"b\":{\"c\":[]}}", 1, &s, &e), 0);
    ck_assert_str_eq(s, "{\n"
                        "  \"a\": [\n"
                        "    1,\n"
                        "    {}\n"
                        "  ],\n"
                        "  \"b\": {\n"
                        "    \"c\": []\n"
                        "  }\n"
                        "}");
    free(s);
    ck_assert_int_eq(roundtrip("\"x\"", 1, &s, &e), 0);
    ck_assert_str_eq(s, "\"x\"");
    free(s);
}
END_TEST

START_TEST(bad_input)
{
    gr_cli_json_err e = {0};
    char deep[2 * GR_CLI_JSON_DEPTH_MAX + 8];
    char *s = NULL;
    int n;

    ck_assert_int_eq(refused("hello", &e), GR_EBADARG);
    ck_assert_int_eq(e.line, 1);
    ck_assert(strlen(e.text) > 0);
    ck_assert_int_eq(refused("[1,", &e), GR_EBADARG);
    ck_assert_int_eq(refused("", &e), GR_EBADARG);
    ck_assert_int_eq(refused("1 2", &e), GR_EBADARG);
    ck_assert_int_eq(refused("{\"a\":1,\"a\":2}", &e), GR_EBADARG); /* duplicate key */
    ck_assert_int_eq(refused("18446744073709551616", &e), GR_EBADARG);
    ck_assert_int_eq(refused("{\"$bin\":\"not base64!\"}", &e), GR_EBADARG);
    ck_assert(strstr(e.text, "base64") != NULL);
    ck_assert_int_eq(e.line, 0);
    /* GR_CLI_JSON_DEPTH_MAX nested arrays are fine, one more is not */
    n = GR_CLI_JSON_DEPTH_MAX;
    memset(deep, '[', (size_t)n);
    memset(deep + n, ']', (size_t)n);
    deep[2 * n] = '\0';
    ck_assert_int_eq(roundtrip(deep, 0, &s, &e), 0);
    ck_assert_str_eq(s, deep);
    free(s);
    memset(deep, '[', (size_t)n + 1);
    memset(deep + n + 1, ']', (size_t)n + 1);
    deep[2 * n + 2] = '\0';
    ck_assert_int_eq(refused(deep, &e), GR_EBADARG);
    ck_assert(strstr(e.text, "deeper") != NULL);
    /* a term that is not one well-formed term */
    ck_assert_int_eq(gr_cli_term_buf_to_json("\x92\x01", 2, 0, &s), GR_EBADTERM);
    ck_assert_int_eq(gr_cli_term_buf_to_json("", 0, 0, &s), GR_EBADTERM);
}
END_TEST

START_TEST(dest_args)
{
    gr_cli_dest d;
    gr_term_id id;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    size_t off = 0;
    static const char *const bad[] = {
        "",           "<>",      "<a@h.1.2>",     "<a@h.1.2.256>", "<not a pid>", "<nohost.1.2.3>",
        "@b@h",       "worker@", "worker@nohost", "a b",           "tab\tname",   "x@y@",
        "<a@h.1.2.3",
    };

    /* a pid: its node, creation and id */
    ck_assert_int_eq(gr_cli_dest_parse("<b@10.0.0.2.1712.9.1>", &d), 0);
    ck_assert_int_eq(d.kind, GR_CLI_DEST_PID);
    ck_assert_str_eq(d.node, "b@10.0.0.2");
    ck_assert_uint_eq(d.creation, 1712);
    ck_assert_uint_eq(d.id, (9u << 8) | 1);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_cli_dest_pack(&d, &pk), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(gr_term_parse_id(&u.data, GR_TERM_EXT_PID, &id), 0);
    ck_assert_uint_eq(id.node_len, strlen("b@10.0.0.2"));
    ck_assert(memcmp(id.node, "b@10.0.0.2", id.node_len) == 0);
    ck_assert_uint_eq(id.id, (9u << 8) | 1);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    /* NAME@NODE splits at the first '@' */
    ck_assert_int_eq(gr_cli_dest_parse("worker@b@10.0.0.2", &d), 0);
    ck_assert_int_eq(d.kind, GR_CLI_DEST_NAME);
    ck_assert_str_eq(d.name, "worker");
    ck_assert_str_eq(d.node, "b@10.0.0.2");
    /* NAME: the contacted node */
    ck_assert_int_eq(gr_cli_dest_parse("sys", &d), 0);
    ck_assert_int_eq(d.kind, GR_CLI_DEST_NAME);
    ck_assert_str_eq(d.name, "sys");
    ck_assert_str_eq(d.node, "");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_cli_dest_pack(&d, &pk), 0);
    ck_assert_uint_eq(sb.size, 4); /* fixstr "sys" */
    msgpack_sbuffer_destroy(&sb);
    /* refused, output untouched */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d.kind = GR_CLI_DEST_NAME;
        strcpy(d.name, "keep");
        ck_assert_msg(gr_cli_dest_parse(bad[i], &d) == GR_EBADARG, "accepted '%s'", bad[i]);
        ck_assert_str_eq(d.name, "keep");
    }
    /* the pid parser alone */
    ck_assert_int_eq(gr_cli_pid_parse("<a@h.1.2.3>", 11, &id), 0);
    ck_assert_uint_eq(id.creation, 1);
    ck_assert_int_eq(gr_cli_pid_parse("a@h.1.2.3", 9, &id), GR_EBADARG);
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("cli_json");
    TCase *tc = gr_test_tcase(s, "json", NULL, NULL, 0);

    gr_test_add(tc, scalars_and_containers, pids_refs_bins, output_only_forms, pretty_layout,
                bad_input, dest_args);
    return s;
}

int main(void)
{
    return gr_test_run(json_suite);
}
