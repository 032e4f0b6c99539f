/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tables_api_test.c - girder_table_* (girder.h) from inside a process, on the
 * engine of a gr_rpc (tables_api.c): every call with its errors, run by a
 * behaviour on a scheduler exactly as behaviour code would, and the -ENOTSUP
 * answer of a runtime that has no table engine hooked in.
 */
#include "rpc/rpc.h"

#include "proto/err.h"
#include "runtime/rt.h"
#include "testing/gr_test.h"
#include "testing/gr_test_rpc.h"

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#define NODE "tabapi@127.0.0.1"
#define NRES 24

static girder_rt *rt;
static gr_rpc *rpc;
static gr_test_answers ans = GR_TEST_ANSWERS_INIT;

/* What the behaviour saw, written on its scheduler, read by the test thread
 * after `done` (release/acquire). */
static int res[NRES];
static uint64_t ver[4];
static int64_t tot[2];
static uint8_t got[8];
static size_t got_len;
static atomic_int done;

static const uint8_t key_k[] = {0xa1, 'k'};  /* "k" */
static const uint8_t key_c[] = {0xa1, 'c'};  /* "c" */
static const uint8_t key_k1[] = {0xa1, 'k'}; /* the same key again */
static const uint8_t bad_key[] = {0xc1};     /* never valid msgpack */

static int user_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    girder_buf b = {0};
    girder_put_opts absent = {.flags = GIRDER_PUT_IF_ABSENT};
    girder_put_opts cas = {.flags = GIRDER_PUT_CAS};
    girder_put_opts badflags = {.flags = 0x80};
    int i = 0;

    (void)arg;
    (void)ret_state;
    res[i++] = girder_table_get(ctx, "nosuch", key_k, sizeof(key_k), &b, NULL);
    res[i++] = girder_table_put(ctx, "t", key_k, sizeof(key_k), "\x2a", 1, NULL, &ver[0]);
    res[i++] = girder_table_get(ctx, "t", key_k1, sizeof(key_k1), &b, &ver[1]);
    if (b.len) {
        memcpy(got, b.p, b.len < sizeof(got) ? b.len : sizeof(got));
    }
    got_len = b.len;
    res[i++] = girder_table_put(ctx, "t", key_k, sizeof(key_k), "\x01", 1, &absent, NULL);
    cas.version = ver[0] + 1;
    res[i++] = girder_table_put(ctx, "t", key_k, sizeof(key_k), "\x01", 1, &cas, NULL);
    cas.version = ver[0];
    res[i++] = girder_table_put(ctx, "t", key_k, sizeof(key_k), "\x07", 1, &cas, &ver[2]);
    res[i++] = girder_table_incr(ctx, "t", key_c, sizeof(key_c), 5, &tot[0]);
    res[i++] = girder_table_incr(ctx, "t", key_c, sizeof(key_c), -2, &tot[1]);
    res[i++] = girder_table_del(ctx, "t", key_k, sizeof(key_k), ver[0]); /* stale version */
    res[i++] = girder_table_del(ctx, "t", key_k, sizeof(key_k), 0);
    res[i++] = girder_table_get(ctx, "t", key_k, sizeof(key_k), &b, NULL);
    res[i++] = girder_table_put(ctx, "t", key_k, sizeof(key_k), "\x01", 1, &badflags, NULL);
    res[i++] = girder_table_put(ctx, "t", bad_key, sizeof(bad_key), "\x01", 1, NULL, NULL);
    res[i++] = girder_table_put(ctx, "t", key_k, sizeof(key_k), "\xc1", 1, NULL, NULL);
    res[i++] = girder_table_incr(ctx, "nosuch", key_c, sizeof(key_c), 1, &tot[0]);
    girder_buf_free(&b);
    res[i++] = b.p == NULL && b.len == 0 ? 0 : -1;
    atomic_store_explicit(&done, i, memory_order_release);
    return 0; /* the process idles until the runtime stops */
}

static int user_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    return GIRDER_CONTINUE;
}

static const girder_behaviour user = {.name = "tabuser", .init = user_init, .handle = user_handle};

static void setup(void)
{
    gr_rt_config rc = {.node_name = NODE, .schedulers = 2};
    gr_rpc_config cfg = {.reply_fn = gr_test_answers_capture, .reply_ud = &ans};

    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    cfg.rt = rt;
    ck_assert_int_eq(gr_rpc_new(&cfg, &rpc), 0);
    atomic_store(&done, 0);
}

static void teardown(void)
{
    gr_rt_stop(rt);
    rpc = gr_rpc_free(rpc);
    rt = gr_rt_free(rt);
    gr_test_answers_clear(&ans);
}

START_TEST(calls_and_errors)
{
    gr_table_opts o = {.kind = GR_TABLE_SET};
    girder_pid pid;
    int n, i = 0;

    ck_assert_int_eq(gr_tables_create(gr_rpc_tables(rpc), "t", &o), 0);
    ck_assert_int_eq(gr_rt_spawn(rt, &user, NULL, &pid), 0);
    gr_test_wait_until(atomic_load_explicit(&done, memory_order_acquire) > 0, 5000,
                       "the behaviour never ran");
    n = atomic_load_explicit(&done, memory_order_acquire);
    ck_assert_int_eq(n, 16);
    ck_assert_int_eq(res[i++], GR_ENOTABLE);
    ck_assert_int_eq(res[i++], 0);
    ck_assert_uint_ne(ver[0], 0);
    ck_assert_int_eq(res[i++], 0);
    ck_assert_uint_eq(ver[1], ver[0]);
    ck_assert_uint_eq(got_len, 1);
    ck_assert_uint_eq(got[0], 0x2a);
    ck_assert_int_eq(res[i++], GR_EKEYEXISTS);
    ck_assert_int_eq(res[i++], GR_ECASMISMATCH);
    ck_assert_int_eq(res[i++], 0);
    ck_assert_uint_gt(ver[2], ver[0]);
    ck_assert_int_eq(res[i++], 0);
    ck_assert_int_eq(tot[0], 5);
    ck_assert_int_eq(res[i++], 0);
    ck_assert_int_eq(tot[1], 3);
    ck_assert_int_eq(res[i++], GR_ECASMISMATCH);
    ck_assert_int_eq(res[i++], 0);
    ck_assert_int_eq(res[i++], GR_ENOKEY);
    ck_assert_int_eq(res[i++], GR_EBADARG);
    ck_assert_int_eq(res[i++], GR_EBADTERM);
    ck_assert_int_eq(res[i++], GR_EBADTERM);
    ck_assert_int_eq(res[i++], GR_ENOTABLE);
    ck_assert_int_eq(res[i++], 0); /* girder_buf_free left it zeroed */
}
END_TEST

/* A runtime without a table engine: -ENOTSUP, not a crash. */
START_TEST(no_engine)
{
    gr_rt_stop(rt);
    rpc = gr_rpc_free(rpc); /* unhooks the tables */
    rt = gr_rt_free(rt);
    {
        gr_rt_config rc = {.node_name = NODE, .schedulers = 1};
        girder_pid pid;

        ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
        ck_assert_int_eq(gr_rt_start(rt), 0);
        ck_assert_int_eq(gr_rt_spawn(rt, &user, NULL, &pid), 0);
        gr_test_wait_until(atomic_load_explicit(&done, memory_order_acquire) > 0, 5000,
                           "the behaviour never ran");
        ck_assert_int_eq(res[0], -ENOTSUP);
        ck_assert_int_eq(res[1], -ENOTSUP);
        ck_assert_int_eq(res[6], -ENOTSUP);
        ck_assert_int_eq(res[9], -ENOTSUP);
    }
}
END_TEST

static Suite *tables_api_suite(void)
{
    Suite *s = suite_create("tables_api");
    TCase *tc = gr_test_tcase(s, "core", setup, teardown, 60);

    gr_test_add(tc, calls_and_errors, no_engine);
    return s;
}

int main(void)
{
    return gr_test_run(tables_api_suite);
}
