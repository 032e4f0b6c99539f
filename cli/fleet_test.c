/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fleet_test.c - the pure pieces of the fleet views (cli/fleet.h): process
 * rows from proc.snapshot entries, filters, sort orders and top-N, compact
 * numbers, the ps row width and the stats layout within 80 columns.
 */
#include "cli/fleet.h"
#include "proto/err.h"
#include "proto/term.h"

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A proc.snapshot entry for pid <node.7.serial.sched>. */
static void pack_entry(msgpack_packer *pk, const char *node, uint64_t serial, unsigned sched,
                       const char *name, const char *beh, uint64_t mbox, uint64_t work)
{
    msgpack_pack_map(pk, 8);
    gr_term_pack_cstr(pk, "pid");
    gr_term_pack_id(pk, GR_TERM_EXT_PID, node, strlen(node), 7, serial << 8 | sched);
    gr_term_pack_cstr(pk, "name");
    if (name) {
        gr_term_pack_cstr(pk, name);
    } else {
        msgpack_pack_nil(pk);
    }
    gr_term_pack_cstr(pk, "behaviour");
    gr_term_pack_cstr(pk, beh);
    gr_term_pack_cstr(pk, "status");
    gr_term_pack_cstr(pk, "waiting");
    gr_term_pack_kv_uint(pk, "mailbox", mbox);
    gr_term_pack_kv_uint(pk, "handled", 3);
    gr_term_pack_kv_uint(pk, "memory", 2048);
    gr_term_pack_kv_uint(pk, "work", work);
}

static void row_of(gr_cli_ps_row *r, uint32_t node, uint64_t serial, const char *name,
                   const char *beh, uint64_t mbox, uint64_t work)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    size_t off = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_entry(&pk, "a@h", serial, 1, name, beh, mbox, work);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(gr_cli_ps_row_from(&u.data, node, r), 0);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(fields)
{
    gr_cli_ps_field f = GR_CLI_PS_PID;

    ck_assert_int_eq(gr_cli_ps_field_parse("mailbox", &f), 0);
    ck_assert_int_eq(f, GR_CLI_PS_MAILBOX);
    ck_assert_int_eq(gr_cli_ps_field_parse("mem", &f), 0);
    ck_assert_int_eq(f, GR_CLI_PS_MEMORY);
    ck_assert_int_eq(gr_cli_ps_field_parse("work", &f), 0);
    ck_assert_int_eq(f, GR_CLI_PS_WORK);
    ck_assert_int_eq(gr_cli_ps_field_parse("bogus", &f), -EINVAL);
    ck_assert_int_eq(f, GR_CLI_PS_WORK); /* untouched */
}
END_TEST

START_TEST(row_from_entry)
{
    gr_cli_ps_row r;
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};

    row_of(&r, 2, 42, "worker", "echo", 5, 99);
    ck_assert_str_eq(r.pid, "<a@h.7.42.1>");
    ck_assert_uint_eq(r.id, 42u << 8 | 1);
    ck_assert_uint_eq(r.node, 2);
    ck_assert_str_eq(r.name, "worker");
    ck_assert_str_eq(r.behaviour, "echo");
    ck_assert_str_eq(r.status, "waiting");
    ck_assert_uint_eq(r.mailbox, 5);
    ck_assert_uint_eq(r.handled, 3);
    ck_assert_uint_eq(r.memory, 2048);
    ck_assert_uint_eq(r.work, 99);
    gr_cli_ps_row_clear(&r);
    ck_assert_ptr_null(r.pid);
    row_of(&r, 0, 1, NULL, "sys", 0, 0);
    ck_assert_ptr_null(r.name);
    gr_cli_ps_row_clear(&r);
    ck_assert_int_eq(gr_cli_ps_row_from(&nil, 0, &r), GR_EBADTERM);
}
END_TEST

START_TEST(filters)
{
    gr_cli_ps_row r;

    row_of(&r, 0, 1, "worker-7", "echo", 0, 0);
    ck_assert(gr_cli_ps_match(&r, NULL, NULL));
    ck_assert(gr_cli_ps_match(&r, "worker*", NULL));
    ck_assert(!gr_cli_ps_match(&r, "sys", NULL));
    ck_assert(gr_cli_ps_match(&r, "work*", "ec?o"));
    ck_assert(!gr_cli_ps_match(&r, NULL, "port"));
    gr_cli_ps_row_clear(&r);
    row_of(&r, 0, 2, NULL, "echo", 0, 0);
    ck_assert(!gr_cli_ps_match(&r, "*", NULL)); /* unnamed never matches a name filter */
    ck_assert(gr_cli_ps_match(&r, NULL, "echo"));
    gr_cli_ps_row_clear(&r);
}
END_TEST

START_TEST(sort_and_top)
{
    gr_cli_ps_row rows[6];
    size_t n;

    row_of(&rows[0], 1, 5, "e", "echo", 1, 10);
    row_of(&rows[1], 0, 9, "b", "echo", 7, 50);
    row_of(&rows[2], 0, 3, NULL, "sys", 0, 50);
    row_of(&rows[3], 2, 1, "a", "port", 3, 5);
    row_of(&rows[4], 1, 2, "d", "echo", 0, 70);
    row_of(&rows[5], 0, 4, "c", "echo", 9, 0);
    gr_cli_ps_sort(rows, 6, GR_CLI_PS_WORK); /* largest first; ties: node, pid */
    ck_assert_uint_eq(rows[0].work, 70);
    ck_assert_uint_eq(rows[1].id >> 8, 3); /* work 50 on node 0: pid 3 before 9 */
    ck_assert_uint_eq(rows[2].id >> 8, 9);
    ck_assert_uint_eq(rows[5].work, 0);
    gr_cli_ps_sort(rows, 6, GR_CLI_PS_NAME); /* unnamed last */
    ck_assert_str_eq(rows[0].name, "a");
    ck_assert_ptr_null(rows[5].name);
    gr_cli_ps_sort(rows, 6, GR_CLI_PS_PID); /* node, then pid */
    ck_assert_uint_eq(rows[0].node, 0);
    ck_assert_uint_eq(rows[0].id >> 8, 3);
    ck_assert_uint_eq(rows[5].node, 2);
    n = gr_cli_ps_trim(rows, 6, GR_CLI_PS_MAILBOX, 2);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(rows[0].mailbox, 9);
    ck_assert_uint_eq(rows[1].mailbox, 7);
    ck_assert_ptr_null(rows[2].pid); /* cleared */
    ck_assert_uint_eq(gr_cli_ps_trim(rows, 2, GR_CLI_PS_MAILBOX, 10), 2);
    for (size_t i = 0; i < 6; i++) {
        gr_cli_ps_row_clear(&rows[i]);
    }
}
END_TEST

START_TEST(compact_numbers)
{
    char b[16];

    ck_assert_str_eq(gr_cli_compact(0, false, b, sizeof(b)), "0");
    ck_assert_str_eq(gr_cli_compact(999, false, b, sizeof(b)), "999");
    ck_assert_str_eq(gr_cli_compact(1000, false, b, sizeof(b)), "1.0K");
    ck_assert_str_eq(gr_cli_compact(12345, false, b, sizeof(b)), "12K");
    ck_assert_str_eq(gr_cli_compact(5600000, false, b, sizeof(b)), "5.6M");
    ck_assert_str_eq(gr_cli_compact(1023, true, b, sizeof(b)), "1023");
    ck_assert_str_eq(gr_cli_compact(1024, true, b, sizeof(b)), "1.0K");
    ck_assert_str_eq(gr_cli_compact(64u << 20, true, b, sizeof(b)), "64M");
    ck_assert_str_eq(gr_cli_compact(UINT64_MAX, false, b, sizeof(b)), "18E");
}
END_TEST

/* Every line of buf[0..len) fits in width columns. */
static void assert_width(const char *buf, size_t len, size_t width)
{
    const char *p = buf, *end = buf + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);

        ck_assert_msg(l <= width, "line of %zu columns: '%.*s'", l, (int)l, p);
        p += l + 1;
    }
}

START_TEST(ps_row_width)
{
    gr_cli_ps_row r;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    row_of(&r, 0, 123456789, "a-very-long-registered-name", "a-long-behaviour", 123456, 987654321);
    gr_cli_ps_print_header(f);
    gr_cli_ps_print_row(f, &r, "a-node-with-a-long-name@127.0.0.200");
    fclose(f);
    assert_width(buf, len, GR_CLI_WIDTH);
    ck_assert_ptr_nonnull(strstr(buf, "a-very-lo~"));
    ck_assert_ptr_nonnull(strstr(buf, "a-node-with-a-lo~"));
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(gr_cli_ps_print_json(f, &r, "node@h"), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "\"pid\":\"<a@h.7.123456789.1>\""));
    ck_assert_ptr_nonnull(strstr(buf, "\"node\":\"node@h\""));
    ck_assert_ptr_nonnull(strstr(buf, "\"work\":987654321}"));
    free(buf);
    gr_cli_ps_row_clear(&r);
}
END_TEST

/* {Node: {"ok": Map} | {"error": Id}} for 5 nodes, node 3 timed out. */
static void pack_fleet(msgpack_packer *pk, bool about)
{
    msgpack_pack_map(pk, 5);
    for (int i = 0; i < 5; i++) {
        char name[32];

        snprintf(name, sizeof(name), "node%d@127.0.0.%d", i, i + 1);
        gr_term_pack_cstr(pk, name);
        msgpack_pack_map(pk, 1);
        if (i == 3) {
            gr_term_pack_cstr(pk, "error");
            gr_term_pack_cstr(pk, "timeout");
            continue;
        }
        gr_term_pack_cstr(pk, "ok");
        if (!about) {
            msgpack_pack_map(pk, 2);
            gr_term_pack_kv_uint(pk, "processes", 1000u * (unsigned)i);
            gr_term_pack_kv_uint(pk, "rpc_timeouts_with_a_long_name", 7);
        } else {
            msgpack_pack_map(pk, 3);
            gr_term_pack_kv_uint(pk, "uptime_ms", 61000);
            gr_term_pack_cstr(pk, "limits");
            msgpack_pack_map(pk, 1);
            gr_term_pack_cstr(pk, "members");
            msgpack_pack_array(pk, 2);
            msgpack_pack_uint64(pk, 5);
            msgpack_pack_uint64(pk, 4096);
            gr_term_pack_cstr(pk, "version");
            gr_term_pack_cstr(pk, "0.1.0");
        }
    }
}

START_TEST(stats_layout)
{
    msgpack_sbuffer sc, sa;
    msgpack_packer pc, pa;
    msgpack_unpacked uc, ua;
    size_t oc = 0, oa = 0, len = 0;
    char *buf = NULL;
    FILE *f;

    msgpack_sbuffer_init(&sc);
    msgpack_sbuffer_init(&sa);
    msgpack_packer_init(&pc, &sc, msgpack_sbuffer_write);
    msgpack_packer_init(&pa, &sa, msgpack_sbuffer_write);
    pack_fleet(&pc, false);
    pack_fleet(&pa, true);
    msgpack_unpacked_init(&uc);
    msgpack_unpacked_init(&ua);
    ck_assert_int_eq(msgpack_unpack_next(&uc, sc.data, sc.size, &oc), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(msgpack_unpack_next(&ua, sa.data, sa.size, &oa), MSGPACK_UNPACK_SUCCESS);
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(gr_cli_stats_print(f, &uc.data, &ua.data, 80), 0);
    fclose(f);
    assert_width(buf, len, 80);
    for (int i = 0; i < 5; i++) {
        char name[32];

        snprintf(name, sizeof(name), "node%d@127.0.0.%d", i, i + 1);
        ck_assert_msg(strstr(buf, name) != NULL, "%s missing:\n%s", name, buf);
    }
    ck_assert_ptr_nonnull(strstr(buf, "timeout"));
    ck_assert_ptr_nonnull(strstr(buf, "limit: members"));
    ck_assert_ptr_nonnull(strstr(buf, "5/4.1K"));
    ck_assert_ptr_nonnull(strstr(buf, "1m1s"));
    ck_assert_ptr_nonnull(strstr(buf, "\n\n")); /* more than one block */
    free(buf);
    /* not a multicall map: nothing printed */
    buf = NULL;
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(
        gr_cli_stats_print(f, &ua.data.via.map.ptr[0].val.via.map.ptr[0].val, NULL, 80),
        GR_EBADTERM);
    fclose(f);
    ck_assert_uint_eq(len, 0);
    free(buf);
    msgpack_unpacked_destroy(&uc);
    msgpack_unpacked_destroy(&ua);
    msgpack_sbuffer_destroy(&sc);
    msgpack_sbuffer_destroy(&sa);
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("cli_fleet");
    TCase *tc = gr_test_tcase(s, "fleet", NULL, NULL, 0);

    gr_test_add(tc, fields, row_from_entry, filters, sort_and_top, compact_numbers, ps_row_width,
                stats_layout);
    return s;
}

int main(void)
{
    return gr_test_run(fleet_suite);
}
