/* SPDX-License-Identifier: Apache-2.0 */
/*
 * top_test.c - the pure pieces of `girder top` (cli/top.h): a sample from
 * the fan-outs' maps, the rates and the scheduler utilisation between two
 * samples, the sort keys, and a frame that fits 80 columns.
 */
#include "cli/top.h"
#include "proto/err.h"
#include "proto/term.h"

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* {Node: {"ok": {"frames_in": in, "messages_handled": h, "processes": 2,
 *                "sched_busy_us": busy, "sched_wall_us": wall}}} for a@h,
 * and b@h answering {"error": "timeout"}. */
static void pack_counters(msgpack_sbuffer *sb, uint64_t in, uint64_t h, uint64_t busy,
                          uint64_t wall)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    gr_term_pack_cstr(&pk, "a@h");
    msgpack_pack_map(&pk, 1);
    gr_term_pack_cstr(&pk, "ok");
    msgpack_pack_map(&pk, 6);
    gr_term_pack_kv_uint(&pk, "frames_in", in);
    gr_term_pack_kv_uint(&pk, "frames_out", in / 2);
    gr_term_pack_kv_uint(&pk, "messages_handled", h);
    gr_term_pack_kv_uint(&pk, "processes", 2);
    gr_term_pack_kv_uint(&pk, "sched_busy_us", busy);
    gr_term_pack_kv_uint(&pk, "sched_wall_us", wall);
    gr_term_pack_cstr(&pk, "b@h");
    msgpack_pack_map(&pk, 1);
    gr_term_pack_cstr(&pk, "error");
    gr_term_pack_cstr(&pk, "timeout");
}

static void pack_proc(msgpack_packer *pk, uint64_t serial, const char *name, uint64_t mbox,
                      uint64_t handled, uint64_t work)
{
    msgpack_pack_map(pk, 8);
    gr_term_pack_cstr(pk, "pid");
    gr_term_pack_id(pk, GR_TERM_EXT_PID, "a@h", 3, 7, serial << 8 | 1);
    gr_term_pack_cstr(pk, "name");
    if (name) {
        gr_term_pack_cstr(pk, name);
    } else {
        msgpack_pack_nil(pk);
    }
    gr_term_pack_cstr(pk, "behaviour");
    gr_term_pack_cstr(pk, "echo");
    gr_term_pack_cstr(pk, "status");
    gr_term_pack_cstr(pk, "waiting");
    gr_term_pack_kv_uint(pk, "mailbox", mbox);
    gr_term_pack_kv_uint(pk, "handled", handled);
    gr_term_pack_kv_uint(pk, "memory", 4096 * serial);
    gr_term_pack_kv_uint(pk, "work", work);
}

/* a@h's snapshot: two processes, serial 1 ("a_very_long_registered_name")
 * and 2 (unnamed), with the given counters. */
static void pack_snap(msgpack_sbuffer *sb, uint64_t h1, uint64_t w1, uint64_t h2, uint64_t w2)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    gr_term_pack_cstr(&pk, "a@h");
    msgpack_pack_map(&pk, 1);
    gr_term_pack_cstr(&pk, "ok");
    msgpack_pack_map(&pk, 1);
    gr_term_pack_cstr(&pk, "processes");
    msgpack_pack_array(&pk, 2);
    pack_proc(&pk, 1, "a_very_long_registered_name", 9, h1, w1);
    pack_proc(&pk, 2, NULL, 0, h2, w2);
}

/* A sample at t_ms from those maps. */
static void sample_of(gr_cli_top_sample *s, int64_t t_ms, uint64_t in, uint64_t busy, uint64_t wall,
                      uint64_t h1, uint64_t w1, uint64_t h2, uint64_t w2)
{
    msgpack_sbuffer sc, sp;
    msgpack_unpacked uc, up;
    size_t oc = 0, op = 0;

    msgpack_sbuffer_init(&sc);
    msgpack_sbuffer_init(&sp);
    pack_counters(&sc, in, h1 + h2, busy, wall);
    pack_snap(&sp, h1, w1, h2, w2);
    msgpack_unpacked_init(&uc);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&uc, sc.data, sc.size, &oc), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(msgpack_unpack_next(&up, sp.data, sp.size, &op), MSGPACK_UNPACK_SUCCESS);
    memset(s, 0, sizeof(*s));
    s->t_ms = t_ms;
    ck_assert_int_eq(gr_cli_top_take_nodes(s, &uc.data, NULL), 0);
    ck_assert_int_eq(gr_cli_top_take_procs(s, &up.data), 0);
    msgpack_unpacked_destroy(&uc);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sc);
    msgpack_sbuffer_destroy(&sp);
}

START_TEST(util_computation)
{
    /* 250 ms busy of 1 s wall (summed over schedulers) */
    ck_assert(gr_cli_top_util(1000, 10000, 251000, 1010000) == 0.25);
    ck_assert(gr_cli_top_util(0, 0, 0, 1000) == 0.0);
    ck_assert(gr_cli_top_util(0, 0, 5000, 1000) == 1.0); /* clamped */
    /* no wall time passed, or a restarted node: unknown */
    ck_assert(gr_cli_top_util(5, 1000, 5, 1000) < 0);
    ck_assert(gr_cli_top_util(5, 1000, 7, 900) < 0);
    ck_assert(gr_cli_top_util(500, 1000, 400, 2000) < 0);
}
END_TEST

START_TEST(sample_and_rates)
{
    gr_cli_top_sample a, b;

    sample_of(&a, 1000, 100, 0, 0, 10, 100, 20, 50);
    ck_assert_uint_eq(a.nnodes, 2);
    ck_assert_str_eq(a.nodes[0].name, "a@h");
    ck_assert(a.nodes[0].ok && a.nodes[0].has_sched);
    ck_assert_str_eq(a.nodes[1].state, "timeout");
    ck_assert(!a.nodes[1].ok);
    ck_assert_uint_eq(a.nprocs, 2);
    /* no previous sample: every rate unknown */
    gr_cli_top_rates(NULL, &a);
    ck_assert(a.nodes[0].in_s < 0 && a.procs[0].msg_s < 0 && a.nodes[0].util < 0);

    /* 2 s later: 400 frames more, 1.5 s busy of 4 s (2 schedulers) */
    sample_of(&b, 3000, 500, 1500000, 4000000, 30, 100, 20, 2050);
    gr_cli_top_rates(&a, &b);
    ck_assert(b.nodes[0].in_s == 200.0);
    ck_assert(b.nodes[0].out_s == 100.0);
    ck_assert(b.nodes[0].handled_s == 10.0);
    ck_assert(b.nodes[0].util == 0.375);
    ck_assert(b.nodes[1].in_s < 0); /* timed out both times */
    ck_assert_uint_eq(b.procs[0].row.id, 1 << 8 | 1);
    ck_assert(b.procs[0].msg_s == 10.0 && b.procs[0].work_s == 0.0);
    ck_assert(b.procs[1].msg_s == 0.0 && b.procs[1].work_s == 1000.0);

    /* sort keys: work/s puts serial 2 first, mailbox and memory the other ways */
    gr_cli_top_sort(&b, GR_CLI_TOP_WORK);
    ck_assert_uint_eq(b.procs[0].row.id >> 8, 2);
    gr_cli_top_sort(&b, GR_CLI_TOP_RATE);
    ck_assert_uint_eq(b.procs[0].row.id >> 8, 1);
    gr_cli_top_sort(&b, GR_CLI_TOP_MEMORY);
    ck_assert_uint_eq(b.procs[0].row.id >> 8, 2);
    gr_cli_top_sort(&b, GR_CLI_TOP_MAILBOX);
    ck_assert_uint_eq(b.procs[0].row.id >> 8, 1);
    gr_cli_top_sample_clear(&a);
    gr_cli_top_sample_clear(&b);
    gr_cli_top_sample_clear(NULL);
}
END_TEST

START_TEST(key_names)
{
    gr_cli_top_key k = GR_CLI_TOP_WORK;

    ck_assert_int_eq(gr_cli_top_key_parse("m", &k), 0);
    ck_assert_int_eq(k, GR_CLI_TOP_MAILBOX);
    ck_assert_int_eq(gr_cli_top_key_parse("M", &k), 0);
    ck_assert_int_eq(k, GR_CLI_TOP_MEMORY);
    ck_assert_int_eq(gr_cli_top_key_parse("rate", &k), 0);
    ck_assert_int_eq(k, GR_CLI_TOP_RATE);
    ck_assert_int_eq(gr_cli_top_key_parse("w", &k), 0);
    ck_assert_int_eq(k, GR_CLI_TOP_WORK);
    ck_assert_int_eq(gr_cli_top_key_parse("q", &k), -EINVAL);
    ck_assert_int_eq(gr_cli_top_key_parse("", &k), -EINVAL);
    ck_assert_int_eq(gr_cli_top_key_parse(NULL, &k), -EINVAL);
}
END_TEST

/* The ranked snapshot's arguments: [1024, nil, Field], one field per key,
 * valid msgpack. */
START_TEST(ranked_snapshot_args)
{
    static const struct {
        gr_cli_top_key k;
        const char *field;
    } want[] = {{GR_CLI_TOP_WORK, "work"},
                {GR_CLI_TOP_RATE, "handled"},
                {GR_CLI_TOP_MAILBOX, "mailbox"},
                {GR_CLI_TOP_MEMORY, "memory"}};

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char buf[16];
        size_t n = gr_cli_top_ps_args(want[i].k, buf), off = 0;
        msgpack_unpacked u;
        const msgpack_object *a;

        msgpack_unpacked_init(&u);
        ck_assert_int_eq(msgpack_unpack_next(&u, buf, n, &off), MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(off, n);
        ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(u.data.via.array.size, 3);
        a = u.data.via.array.ptr;
        ck_assert_uint_eq(a[0].via.u64, GR_CLI_PS_FIRST_PAGE);
        ck_assert_int_eq(a[1].type, MSGPACK_OBJECT_NIL);
        ck_assert(gr_term_is_str(&a[2], want[i].field));
        msgpack_unpacked_destroy(&u);
    }
}
END_TEST

START_TEST(frame_fits_80)
{
    gr_cli_top_sample a, b;
    gr_cli_top_view v = {.contacted = "a@h", .interval_ms = 2000, .max_nodes = 10, .max_procs = 1};
    size_t hdr[2], n, len = 0, lines = 0;
    char *buf = NULL, *line, *save = NULL;
    FILE *f;

    sample_of(&a, 1000, 100, 0, 0, 10, 100, 20, 50);
    sample_of(&b, 3000, 500, 1500000, 4000000, 30, 100, 20, 2050);
    gr_cli_top_rates(&a, &b);
    gr_cli_top_sort(&b, GR_CLI_TOP_WORK);
    f = open_memstream(&buf, &len);
    n = gr_cli_top_render(f, &b, &v, hdr);
    fclose(f);
    /* title, header, 2 nodes, blank, header, 1 process (max_procs) */
    ck_assert_uint_eq(n, 7);
    ck_assert_uint_eq(hdr[0], 1);
    ck_assert_uint_eq(hdr[1], 5);
    ck_assert_ptr_nonnull(strstr(buf, "a@h"));
    ck_assert_ptr_nonnull(strstr(buf, "timeout"));
    ck_assert_ptr_nonnull(strstr(buf, " 38%"));     /* 0.375 */
    ck_assert_ptr_nonnull(strstr(buf, "2.1"));      /* the unnamed one (work/s first) */
    ck_assert_ptr_null(strstr(buf, "a_very_long")); /* one row only */
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_int_le((int)strlen(line), 80);
        lines++;
    }
    ck_assert_uint_eq(lines, 6); /* the blank line is not a token */
    free(buf);

    /* a long name is cut with '~' */
    gr_cli_top_sort(&b, GR_CLI_TOP_MAILBOX);
    buf = NULL;
    f = open_memstream(&buf, &len);
    gr_cli_top_render(f, &b, &v, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "a_very_long_r~"));
    free(buf);
    gr_cli_top_sample_clear(&a);
    gr_cli_top_sample_clear(&b);
}
END_TEST

static Suite *top_suite(void)
{
    Suite *s = suite_create("cli_top");
    TCase *tc = gr_test_tcase(s, "top", NULL, NULL, 0);

    gr_test_add(tc, util_computation, sample_and_rates, key_names, ranked_snapshot_args,
                frame_fits_80);
    return s;
}

int main(void)
{
    return gr_test_run(top_suite);
}
