/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_test.c - unit tests for the plugin loader: the API table's versions
 * and layout, every refusal (missing or unsafe file, not a plugin, wrong ABI,
 * too new an API, failing init with everything undone, a name loaded twice),
 * a plugin's rpc module answering (at once, deferred from its thread, with an
 * error), unload refused while a process of it lives or its on_unload vetoes,
 * and unload + reload. The test plugins (test_plugin.c) are copied to a
 * scratch directory with a known mode before loading.
 */
#include "plugin/plugin.h"

#include "proto/err.h"
#include "rpc/rpc_int.h"
#include "runtime/rt.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NODE "plugtest@127.0.0.1"
#define WAIT_MS 10000
#define MAX_ANSWERS 4096

typedef struct answer {
    uint64_t ref;
    int status;
    uint8_t *term;
    size_t len;
} answer;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static answer answers[MAX_ANSWERS];
static size_t nanswers;
static uint64_t next_ref;

static girder_rt *rt;
static gr_rpc *rpc;
static gr_plugins *ps;
static char dir[64];

static int capture(void *ud, uint64_t conn, uint64_t ref, int status, const void *term, size_t len)
{
    pthread_mutex_lock(&lock);
    ck_assert_uint_lt(nanswers, MAX_ANSWERS);
    answers[nanswers] = (answer){.ref = ref, .status = status, .len = len};
    if (status == 0) {
        answers[nanswers].term = malloc(len);
        memcpy(answers[nanswers].term, term, len);
    }
    nanswers++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return 0;
}

/* Copy the test plugin named by $TPLUG_<NAME> into dir with mode; its path. */
static const char *stage(const char *var, mode_t mode)
{
    static char path[128];
    const char *src = getenv(var);
    char buf[65536];
    ssize_t n;
    int in, out;

    ck_assert_msg(src != NULL, "%s not set", var);
    snprintf(path, sizeof(path), "%s/%s.so", dir, var);
    unlink(path);
    ck_assert_int_ge(in = open(src, O_RDONLY | O_CLOEXEC), 0);
    ck_assert_int_ge(out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), 0);
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    }
    close(in);
    close(out);
    ck_assert_int_eq(chmod(path, mode), 0);
    return path;
}

static void setup(void)
{
    gr_rt_config rc = {.node_name = NODE, .schedulers = 2};
    gr_rpc_config cfg = {.reply_fn = capture};

    snprintf(dir, sizeof(dir), "/tmp/gr_plugin_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    cfg.rt = rt;
    ck_assert_int_eq(gr_rpc_new(&cfg, &rpc), 0);
    ck_assert_int_eq(gr_plugins_new(rt, rpc, &ps), 0);
    nanswers = 0;
}

static void teardown(void)
{
    char cmd[128];

    gr_rt_stop(rt);
    ps = gr_plugins_free(ps);
    rpc = gr_rpc_free(rpc);
    rt = gr_rt_free(rt);
    for (size_t i = 0; i < nanswers; i++) {
        free(answers[i].term);
    }
    nanswers = 0;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Call module.function with args (msgpack array bytes or NULL = []); wait. */
static answer *call(const char *module, const char *function, const void *args, size_t len)
{
    static const uint8_t empty[] = {0x90};
    uint64_t ref = ++next_ref;
    gr_dist_request req = {
        .conn = 7,
        .ref = ref,
        .peer = "cli@127.0.0.1",
        .hidden = true,
        .module = module,
        .function = function,
        .args = args ? args : empty,
        .args_len = args ? len : sizeof(empty),
        .deadline_ms = WAIT_MS,
    };
    struct timespec dl;

    gr_rpc_dispatch(rpc, &req);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&lock);
    for (;;) {
        for (size_t i = 0; i < nanswers; i++) {
            if (answers[i].ref == ref) {
                pthread_mutex_unlock(&lock);
                return &answers[i];
            }
        }
        ck_assert_msg(pthread_cond_timedwait(&cond, &lock, &dl) == 0, "no answer to %s.%s", module,
                      function);
    }
}

static answer *call_str(const char *module, const char *function, const char *arg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    answer *a;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, arg, strlen(arg));
    a = call(module, function, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return a;
}

/* Is the answer's term equal to the msgpack bytes exp? */
static bool term_is(const answer *a, const void *exp, size_t len)
{
    return a->status == 0 && a->len == len && memcmp(a->term, exp, len) == 0;
}

START_TEST(api_table_versions)
{
    const girder_plugin_api *api = gr_plugins_api();
    girder_plugin_api small;
    const void *const *fp;

    ck_assert_uint_eq(api->size, sizeof(girder_plugin_api));
    ck_assert_uint_eq(api->abi_major, GIRDER_PLUGIN_ABI_MAJOR);
    ck_assert_uint_eq(api->api_version, GIRDER_PLUGIN_API_VERSION);
    /* Every function of the table is there. */
    for (fp = (const void *const *)&api->behaviour_register;
         (const char *)fp < (const char *)api + sizeof(*api); fp++) {
        ck_assert_msg(*fp != NULL, "table slot %zu is NULL",
                      (size_t)((const char *)fp - (const char *)api));
    }
    /* Append-only: the header fields and the first functions never move. */
    ck_assert_uint_eq(offsetof(girder_plugin_api, size), 0);
    ck_assert_uint_eq(offsetof(girder_plugin_api, abi_major), 4);
    ck_assert_uint_eq(offsetof(girder_plugin_api, api_version), 8);
    ck_assert_uint_eq(offsetof(girder_plugin_api, behaviour_register), 16);
    ck_assert_uint_eq(offsetof(struct girder_plugin_info, name), 16);
    /* An older daemon's table (shorter) hides the newer functions. */
    memcpy(&small, api, sizeof(small));
    ck_assert(GIRDER_API_HAS(&small, reply));
    small.size = (uint32_t)offsetof(girder_plugin_api, reply);
    ck_assert(!GIRDER_API_HAS(&small, reply));
    ck_assert(GIRDER_API_HAS(&small, call));
}
END_TEST

START_TEST(refusals)
{
    char path[128];
    int fd;

    ck_assert_int_eq(gr_plugins_load(ps, "/nonexistent/x.so", NULL), -ENOENT);
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_GOOD", 0664), NULL), GR_EPLUGINPERM);
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_GOOD", 0646), NULL), GR_EPLUGINPERM);
    ck_assert_int_eq(gr_plugins_load(ps, dir, NULL), GR_EPLUGINPERM); /* a directory */
    snprintf(path, sizeof(path), "%s/text.so", dir);
    ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), 0);
    ck_assert_int_eq(write(fd, "hello\n", 6), 6);
    close(fd);
    ck_assert_int_eq(gr_plugins_load(ps, path, NULL), GR_EPLUGINOPEN);
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_NOINIT", 0755), NULL), GR_EPLUGINENTRY);
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_BADABI", 0755), NULL), GR_EPLUGINABI);
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_NEWAPI", 0755), NULL), GR_EPLUGINABI);
    /* init fails after registering: nothing stays. */
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_INITFAIL", 0755), NULL), GR_EPLUGININIT);
    ck_assert_ptr_null(girder_behaviour_find(rt, "tplug_fail"));
    ck_assert_int_eq(call("tplugfail", "hello", NULL, 0)->status, GR_EBADMODULE);
    ck_assert_int_eq(gr_plugins_unload(ps, "tplug_initfail"), GR_ENOPLUGIN);
    /* The same name twice. */
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_GOOD", 0755), NULL), 0);
    snprintf(path, sizeof(path), "%s/copy.so", dir);
    ck_assert_int_eq(rename(stage("TPLUG_GOOD", 0755), path), 0);
    ck_assert_int_eq(gr_plugins_load(ps, path, NULL), GR_EPLUGINLOADED);
}
END_TEST

static int kill_proc(girder_pid pid)
{
    girder_msg *reason = girder_msg_atom("kill");
    int r = gr_rt_exit(rt, pid, reason);

    girder_msg_unref(reason);
    return r;
}

START_TEST(rpc_behaviour_unload)
{
    static const uint8_t hello[] = {0xa5, 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t later[] = {0x92, 0xa5, 'l', 'a', 't', 'e', 'r', 0xa2, 'h', 'i'};
    char name[GR_PLUGIN_NAME_MAX + 1];
    const girder_behaviour *b;
    girder_pid pid;
    answer *a;
    int r;

    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_GOOD", 0755), name), 0);
    ck_assert_str_eq(name, "tplug");
    ck_assert(term_is(call("tplug", "hello", NULL, 0), hello, sizeof(hello)));
    ck_assert(term_is(call_str("tplug", "defer", "hi"), later, sizeof(later)));
    ck_assert_int_eq(call("tplug", "fail", NULL, 0)->status, GR_EBADARG);
    ck_assert_int_eq(call("tplug", "nope", NULL, 0)->status, GR_EBADFUNC);
    /* Version 2 of the table: tables through api->table_incr. */
    {
        static const uint8_t one[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 1};
        static const uint8_t two[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 2};
        gr_table_opts o = {.kind = GR_TABLE_SET};

        ck_assert_int_eq(call("tplug", "count", NULL, 0)->status, GR_ENOTABLE);
        ck_assert_int_eq(gr_tables_create(gr_rpc_tables(rpc), "tplug", &o), 0);
        ck_assert(term_is(call("tplug", "count", NULL, 0), one, sizeof(one)));
        ck_assert(term_is(call("tplug", "count", NULL, 0), two, sizeof(two)));
    }
    /* plugin.list names it, with its behaviour and module. */
    a = call("plugin", "list", NULL, 0);
    ck_assert_int_eq(a->status, 0);
    ck_assert_ptr_nonnull(memmem(a->term, a->len, "tplug_echo", 10));
    ck_assert_ptr_nonnull(memmem(a->term, a->len, "1.2.3", 5));

    /* A live process of the plugin blocks the unload. */
    ck_assert_ptr_nonnull(b = girder_behaviour_find(rt, "tplug_echo"));
    ck_assert_int_eq(gr_rt_spawn(rt, b, NULL, &pid), 0);
    /* Counted once its init ran (a process whose init has not run yet is not
     * counted: after an unload its init refuses, see below). */
    for (int i = 0; i < 2000; i++) {
        a = call("plugin", "list", NULL, 0);
        if (memmem(a->term, a->len, "\xa9processes\x01", 11)) {
            break;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_ptr_nonnull(memmem(a->term, a->len, "\xa9processes\x01", 11));
    ck_assert_int_eq(r = gr_plugins_unload(ps, "tplug"), GR_EPLUGININUSE);
    ck_assert_int_eq(call("plugin", "unload", "\x91\xa5tplug", 7)->status, GR_EPLUGININUSE);
    ck_assert_int_eq(kill_proc(pid), 0);
    /* The process's exit is asynchronous: retry until it is gone. */
    for (int i = 0; i < 2000 && (r = gr_plugins_unload(ps, "tplug")) == GR_EPLUGININUSE; i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_ptr_null(girder_behaviour_find(rt, "tplug_echo"));
    ck_assert_int_eq(call("tplug", "hello", NULL, 0)->status, GR_EBADMODULE);
    ck_assert_int_eq(gr_plugins_unload(ps, "tplug"), GR_ENOPLUGIN);
    /* The shim of the unloaded plugin refuses to start a process. */
    ck_assert_int_eq(gr_rt_spawn(rt, b, NULL, &pid), 0);

    /* Loaded again (through rpc this time): works as before. */
    {
        const char *path = stage("TPLUG_GOOD", 0755);
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, path, strlen(path));
        a = call("plugin", "load", sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        ck_assert(term_is(a, "\xa5tplug", 6));
    }
    ck_assert(term_is(call("tplug", "hello", NULL, 0), hello, sizeof(hello)));
    /* The answer arrives before the worker that sent it ends and drops its
     * count: plugin_in_use until then. */
    for (int i = 0;
         i < 2000 && (r = call("plugin", "unload", "\x91\xa5tplug", 7)->status) == GR_EPLUGININUSE;
         i++) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    ck_assert_int_eq(r, 0);
}
END_TEST

START_TEST(unload_veto)
{
    ck_assert_int_eq(gr_plugins_load(ps, stage("TPLUG_BUSY", 0755), NULL), 0);
    ck_assert_int_eq(gr_plugins_unload(ps, "tplug_busy"), GR_EPLUGININUSE);
    ck_assert_int_eq(call("tplugbusy", "fail", NULL, 0)->status, GR_EBADARG);
    /* gr_plugins_free (teardown) unloads it anyway. */
}
END_TEST

static Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("loader");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, api_table_versions);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, rpc_behaviour_unload);
    tcase_add_test(tc, unload_veto);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(plugin_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
