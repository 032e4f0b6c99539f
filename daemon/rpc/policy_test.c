/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy_test.c - unit tests of what an observer may call (policy.c): the
 * table (reads pass, everything that changes something is not_allowed, an
 * unknown module is refused), rpc.call / rpc.multicall judged by their inner
 * call, and the gate in gr_rpc_dispatch: an observer's proc.kill is answered
 * not_allowed and its target lives on, while its reads are served.
 */
#include "rpc/rpc.h"
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/handshake.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "services/sys.h"
#include "testing/gr_test_rpc.h"

#include <check.h>
#include <msgpack.h>
#include <string.h>

#define NODE "policytest@127.0.0.1"
#define WAIT_MS 10000

static gr_test_answers ans = GR_TEST_ANSWERS_INIT;
static girder_rt *rt;
static gr_rpc *rpc;

static int observer(const char *m, const char *f)
{
    static const uint8_t empty[] = {0x90};

    return gr_rpc_policy_check(GR_ROLE_OBSERVER, m, f, empty, sizeof(empty));
}

/* rpc.M(Node, Module, Function, []) as an observer. */
static int observer_rpc(const char *fn, const char *module, const char *function)
{
    gr_test_args *a = gr_test_args_new(4);
    int r;

    gr_test_args_str(a, "other@127.0.0.2");
    gr_test_args_str(a, module);
    gr_test_args_str(a, function);
    msgpack_pack_array(&a->pk, 0);
    r = gr_rpc_policy_check(GR_ROLE_OBSERVER, "rpc", fn, (const uint8_t *)a->sb.data, a->sb.size);
    gr_test_args_free(a);
    return r;
}

START_TEST(table)
{
    static const char *const reads[][2] = {
        {"node", "ping"},         {"node", "list"},       {"node", "self"},
        {"sys", "counters"},      {"sys", "info"},        {"proc", "list"},
        {"proc", "snapshot"},     {"proc", "info"},       {"table", "scan"},
        {"table", "get"},         {"table", "list"},      {"pubsub", "topics"},
        {"plugin", "list"},       {"port", "list"},       {"rpc", "latency"},
        {"proc", "whereis"},      {"node", "about"},      {"table", "map_getall"},
        {"table", "set_members"}, {"proc", "trace_read"},
    };
    static const char *const writes[][2] = {
        {"proc", "kill"},        {"proc", "send"},      {"proc", "call"},
        {"proc", "spawn"},       {"proc", "register"},  {"proc", "send_after"},
        {"node", "join"},        {"node", "leave"},     {"table", "put"},
        {"table", "del"},        {"table", "incr"},     {"table", "map_set"},
        {"table", "map_del"},    {"table", "map_incr"}, {"table", "set_add"},
        {"table", "set_rem"},    {"table", "set_pop"},  {"node", "forget"},
        {"table", "create"},     {"table", "drop"},     {"pubsub", "publish"},
        {"pubsub", "subscribe"}, {"pubsub", "tap"},     {"pubsub", "global_send"},
        {"plugin", "load"},      {"plugin", "unload"},  {"rpc", "cast"},
        {"bench", "anything"},   {"nosuch", "list"},    {"", ""},
        {"nodex", "ping"},
    };

    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        ck_assert_msg(observer(reads[i][0], reads[i][1]) == 0, "%s.%s refused", reads[i][0],
                      reads[i][1]);
        ck_assert_int_eq(gr_rpc_policy_check(GR_ROLE_MEMBER, reads[i][0], reads[i][1], NULL, 0), 0);
    }
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        ck_assert_msg(observer(writes[i][0], writes[i][1]) == GR_ENOTALLOWED, "%s.%s allowed",
                      writes[i][0], writes[i][1]);
        ck_assert_int_eq(gr_rpc_policy_check(GR_ROLE_MEMBER, writes[i][0], writes[i][1], NULL, 0),
                         0);
    }
    /* a role nobody knows is no member */
    ck_assert_int_eq(gr_rpc_policy_check(7, "node", "ping", NULL, 0), GR_ENOTALLOWED);
}
END_TEST

START_TEST(rpc_judged_by_inner_call)
{
    ck_assert_int_eq(observer_rpc("call", "proc", "snapshot"), 0);
    ck_assert_int_eq(observer_rpc("multicall", "node", "list"), 0);
    ck_assert_int_eq(observer_rpc("call", "proc", "kill"), GR_ENOTALLOWED);
    ck_assert_int_eq(observer_rpc("multicall", "node", "leave"), GR_ENOTALLOWED);
    ck_assert_int_eq(observer_rpc("call", "rpc", "latency"), GR_ENOTALLOWED); /* no nesting */
    ck_assert_int_eq(observer_rpc("cast", "node", "ping"), GR_ENOTALLOWED);
    /* malformed: not judged allowed */
    ck_assert_int_eq(observer("rpc", "call"), GR_ENOTALLOWED);
    ck_assert_int_eq(gr_rpc_policy_check(GR_ROLE_OBSERVER, "rpc", "call", NULL, 0), GR_ENOTALLOWED);
    ck_assert_int_eq(gr_rpc_policy_check(GR_ROLE_OBSERVER, "rpc", "call",
                                         (const uint8_t *)"\x93\xa1x\x01\x02", 5),
                     GR_ENOTALLOWED);
}
END_TEST

/* proc.trace as an observer: only with {"keep": true} (a trace that never
 * replaces another's), directly and through rpc.call / rpc.multicall. */
START_TEST(observer_trace_keeps)
{
    static const struct {
        int keep; /* -1: no opts map; 0: keep false; 1: keep true; 2: no "keep" key */
        int want;
    } cases[] = {{-1, GR_ENOTALLOWED}, {0, GR_ENOTALLOWED}, {2, GR_ENOTALLOWED}, {1, 0}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int via = 0; via < 3; via++) { /* direct, rpc.call, rpc.multicall */
            gr_test_args *a = gr_test_args_new(via ? 4 : (cases[i].keep < 0 ? 1 : 2));
            int r;

            if (via) {
                gr_test_args_str(a, "other@127.0.0.2");
                gr_test_args_str(a, "proc");
                gr_test_args_str(a, "trace");
                msgpack_pack_array(&a->pk, cases[i].keep < 0 ? 1 : 2);
            }
            gr_test_args_str(a, "worker");
            if (cases[i].keep >= 0) {
                msgpack_pack_map(&a->pk, cases[i].keep == 2 ? 1 : 2);
                gr_test_args_str(a, "max");
                msgpack_pack_int(&a->pk, 5);
                if (cases[i].keep != 2) {
                    gr_test_args_str(a, "keep");
                    if (cases[i].keep) {
                        msgpack_pack_true(&a->pk);
                    } else {
                        msgpack_pack_false(&a->pk);
                    }
                }
            }
            r = gr_rpc_policy_check(GR_ROLE_OBSERVER, via ? "rpc" : "proc",
                                    via == 0   ? "trace"
                                    : via == 1 ? "call"
                                               : "multicall",
                                    (const uint8_t *)a->sb.data, a->sb.size);
            ck_assert_msg(r == cases[i].want, "keep %d via %d: %d", cases[i].keep, via, r);
            gr_test_args_free(a);
        }
    }
    ck_assert_int_eq(observer("proc", "trace"), GR_ENOTALLOWED); /* [] */
    ck_assert_int_eq(gr_rpc_policy_check(GR_ROLE_OBSERVER, "proc", "trace", NULL, 0),
                     GR_ENOTALLOWED);
}
END_TEST

static void setup(void)
{
    gr_rt_config rc = {.node_name = NODE, .schedulers = 2};
    gr_rpc_config cfg = {.reply_fn = gr_test_answers_capture, .reply_ud = &ans};

    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(girder_behaviour_register(rt, &gr_sys_service), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    cfg.rt = rt;
    ck_assert_int_eq(gr_rpc_new(&cfg, &rpc), 0);
}

static void teardown(void)
{
    gr_rt_stop(rt);
    rpc = gr_rpc_free(rpc); /* before the runtime: it unhooks girder_table_* */
    rt = gr_rt_free(rt);
    gr_test_answers_clear(&ans);
}

/* The gate in dispatch: an observer's kill is refused before it runs, the
 * target lives on; its reads are served; a member's kill still works. */
START_TEST(dispatch_refuses_observer_kill)
{
    gr_test_args *a = gr_test_args_new(1);
    girder_pid before, after;
    size_t i;

    ck_assert_int_eq(gr_rt_spawn(rt, &gr_sys_service, NULL, &before), 0);
    gr_test_wait_until(gr_rt_whereis(rt, GR_SYS_NAME, &before) == 0, 5000, "sys never registered");
    gr_test_args_str(a, GR_SYS_NAME);
    gr_test_rpc_dispatch_as(rpc, 1, GR_ROLE_OBSERVER, "proc", "kill", &a->sb, 1000);
    i = gr_test_answers_wait(&ans, 1, WAIT_MS);
    ck_assert_int_eq(ans.a[i].status, GR_ENOTALLOWED);
    gr_test_rpc_dispatch_as(rpc, 2, GR_ROLE_OBSERVER, "node", "ping", NULL, 1000);
    i = gr_test_answers_wait(&ans, 2, WAIT_MS);
    ck_assert_int_eq(ans.a[i].status, 0);
    gr_test_rpc_dispatch_as(rpc, 3, GR_ROLE_OBSERVER, "proc", "whereis", &a->sb, 1000);
    i = gr_test_answers_wait(&ans, 3, WAIT_MS);
    ck_assert_int_eq(ans.a[i].status, 0);
    /* whereis answered after the refused kill: had it run, the name would be gone */
    ck_assert_int_eq(gr_rt_whereis(rt, GR_SYS_NAME, &after), 0);
    ck_assert(memcmp(&before, &after, sizeof(before)) == 0);
    /* the cookie's role may */
    gr_test_rpc_dispatch(rpc, 4, "proc", "kill", &a->sb, 1000);
    i = gr_test_answers_wait(&ans, 4, WAIT_MS);
    ck_assert_int_eq(ans.a[i].status, 0);
    gr_test_wait_until(gr_rt_whereis(rt, GR_SYS_NAME, &after) != 0, 5000, "sys survived a kill");
    gr_test_args_free(a);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("rpc_policy");
    TCase *pure = gr_test_tcase(s, "table", NULL, NULL, 0);
    TCase *tc = gr_test_tcase(s, "dispatch", setup, teardown, 0);

    gr_test_add(pure, table, rpc_judged_by_inner_call, observer_trace_keeps);
    gr_test_add(tc, dispatch_refuses_observer_kill);
    return s;
}

int main(void)
{
    return gr_test_run(policy_suite);
}
