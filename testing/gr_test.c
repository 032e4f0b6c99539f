/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test.c - the generic half of the tests' support library
 * (girder_testsupport): deadlines scaled by the build and the machine's load,
 * polling until a deadline, suites and test cases, msgpack terms from JSON
 * text, argument arrays, map lookups, and the capture of rpc answers. Needs
 * only Check, msgpack and pthreads, so proto/ and cli/ tests link it too.
 *
 * Design notes: the scale is read again on every call, so a deadline set while
 * the machine is busy is longer than one set while it is idle; nothing here is
 * global but the answers a test chooses to keep in a static gr_test_answers.
 */
#include "testing/gr_test.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- deadlines -------------------------------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define BUILD_SCALE 4
#elif defined(__SANITIZE_ADDRESS__)
#define BUILD_SCALE 3
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BUILD_SCALE 4
#elif __has_feature(address_sanitizer)
#define BUILD_SCALE 3
#endif
#endif
#ifndef BUILD_SCALE
#define BUILD_SCALE 1
#endif

/* The 1-minute load average per online CPU, rounded up, within 1..4 (more
 * only makes a failing test slower: a timer scaled by it must still elapse). */
static unsigned load_scale(void)
{
    double load = 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    FILE *f = fopen("/proc/loadavg", "re");
    unsigned s;

    if (f) {
        if (fscanf(f, "%lf", &load) != 1) {
            load = 0;
        }
        fclose(f);
    }
    if (cpus < 1) {
        cpus = 1;
    }
    s = (unsigned)(load / (double)cpus + 0.999);
    return s < 1 ? 1 : s > 4 ? 4 : s;
}

unsigned gr_test_scale(void)
{
    const char *env = getenv("GR_TEST_SCALE");

    if (env && *env) {
        long v = strtol(env, NULL, 10);

        if (v >= 1 && v <= 100) {
            return (unsigned)v;
        }
    }
    return BUILD_SCALE * load_scale();
}

int gr_test_ms(int base_ms)
{
    return base_ms * (int)gr_test_scale();
}

int64_t gr_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

gr_test_deadline gr_test_deadline_in(int base_ms)
{
    return (gr_test_deadline){.end_ms = gr_test_now_ms() + gr_test_ms(base_ms), .pause_us = 100};
}

bool gr_test_deadline_wait(gr_test_deadline *dl)
{
    struct timespec ts = {0, (long)dl->pause_us * 1000};

    if (gr_test_now_ms() > dl->end_ms) {
        return false;
    }
    nanosleep(&ts, NULL);
    if (dl->pause_us < 10000) {
        dl->pause_us *= 2;
    }
    return true;
}

/* ---- suites ---------------------------------------------------------------------------- */

TCase *gr_test_tcase(Suite *s, const char *name, void (*setup)(void), void (*teardown)(void),
                     double timeout_s)
{
    TCase *tc = tcase_create(name);

    if (setup || teardown) {
        tcase_add_checked_fixture(tc, setup, teardown);
    }
    if (timeout_s > 0) {
        tcase_set_timeout(tc, timeout_s);
    }
    suite_add_tcase(s, tc);
    return tc;
}

void gr_test_add_list(TCase *tc, const TTest *const *tests)
{
    for (size_t i = 0; tests[i]; i++) {
        tcase_add_test(tc, tests[i]);
    }
}

int gr_test_run(Suite *(*make)(void))
{
    char mult[16];
    SRunner *sr;
    int failed;

    if (!getenv("CK_TIMEOUT_MULTIPLIER")) {
        snprintf(mult, sizeof(mult), "%u", gr_test_scale());
        setenv("CK_TIMEOUT_MULTIPLIER", mult, 0);
    }
    sr = srunner_create(make());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- terms from JSON ------------------------------------------------------------------- */

/* A recursive-descent reader that packs as it reads. */
typedef struct json {
    const char *p;     /* next character */
    msgpack_packer pk; /* into the caller's sbuffer */
    int depth;         /* nesting, bounded */
} json;

static void skip_ws(json *j)
{
    while (isspace((unsigned char)*j->p)) {
        j->p++;
    }
}

/* A string without escapes other than \" and \\ (tests need no more). */
static int read_str(json *j, char *buf, size_t cap, size_t *ret_len)
{
    size_t n = 0;

    j->p++; /* opening quote */
    while (*j->p && *j->p != '"') {
        if (*j->p == '\\' && (j->p[1] == '"' || j->p[1] == '\\')) {
            j->p++;
        }
        if (n + 1 >= cap) {
            return -E2BIG;
        }
        buf[n++] = *j->p++;
    }
    if (*j->p != '"') {
        return -EINVAL;
    }
    j->p++;
    *ret_len = n;
    return 0;
}

static int pack_value(json *j);

/* Elements of an array or map after its opening bracket, then the close. */
static int pack_items(json *j, char close, bool map)
{
    const char *save = j->p;
    uint32_t n = 0;
    int depth = 0;
    bool in_str = false;
    int r;

    /* count the top-level items first: msgpack wants the size up front */
    skip_ws(j);
    if (*j->p != close) {
        n = 1;
        for (const char *q = j->p; *q; q++) {
            if (in_str) {
                if (*q == '\\' && q[1]) {
                    q++;
                } else if (*q == '"') {
                    in_str = false;
                }
            } else if (*q == '"') {
                in_str = true;
            } else if (*q == '[' || *q == '{') {
                depth++;
            } else if (*q == ']' || *q == '}') {
                if (depth-- == 0) {
                    break;
                }
            } else if (*q == ',' && depth == 0) {
                n++;
            }
        }
    }
    j->p = save;
    if (map) {
        msgpack_pack_map(&j->pk, n);
    } else {
        msgpack_pack_array(&j->pk, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        skip_ws(j);
        if (map) {
            if (*j->p != '"' || pack_value(j) < 0) {
                return -EINVAL;
            }
            skip_ws(j);
            if (*j->p++ != ':') {
                return -EINVAL;
            }
        }
        if ((r = pack_value(j)) < 0) {
            return r;
        }
        skip_ws(j);
        if (i + 1 < n && *j->p++ != ',') {
            return -EINVAL;
        }
    }
    skip_ws(j);
    if (*j->p++ != close) {
        return -EINVAL;
    }
    return 0;
}

static int pack_value(json *j)
{
    char buf[4096];
    size_t len;
    char *end;
    int r;

    skip_ws(j);
    if (++j->depth > 32) {
        return -E2BIG;
    }
    if (*j->p == '"') {
        if ((r = read_str(j, buf, sizeof(buf), &len)) < 0) {
            return r;
        }
        msgpack_pack_str_with_body(&j->pk, buf, len);
    } else if (*j->p == '[' || *j->p == '{') {
        bool map = *j->p == '{';

        j->p++;
        if ((r = pack_items(j, map ? '}' : ']', map)) < 0) {
            return r;
        }
    } else if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "false", 5) == 0) {
        bool t = *j->p == 't';

        j->p += t ? 4 : 5;
        if (t) {
            msgpack_pack_true(&j->pk);
        } else {
            msgpack_pack_false(&j->pk);
        }
    } else if (strncmp(j->p, "null", 4) == 0) {
        j->p += 4;
        msgpack_pack_nil(&j->pk);
    } else if (*j->p == '-') {
        long long v = strtoll(j->p, &end, 10);

        if (end == j->p) {
            return -EINVAL;
        }
        j->p = end;
        msgpack_pack_int64(&j->pk, v);
    } else if (isdigit((unsigned char)*j->p)) {
        unsigned long long v = strtoull(j->p, &end, 10);

        j->p = end;
        msgpack_pack_uint64(&j->pk, v);
    } else {
        return -EINVAL;
    }
    j->depth--;
    return 0;
}

void gr_test_sbuf_json(msgpack_sbuffer *sb, const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    json j = {.p = text};
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < sizeof(text), "JSON text too long");
    msgpack_packer_init(&j.pk, sb, msgpack_sbuffer_write);
    ck_assert_msg(pack_value(&j) == 0, "bad JSON: %s", text);
    skip_ws(&j);
    ck_assert_msg(*j.p == '\0', "bad JSON (trailing text): %s", text);
}

/* ---- argument arrays, maps, errors ------------------------------------------------------ */

gr_test_args *gr_test_args_new(uint32_t n)
{
    gr_test_args *a = calloc(1, sizeof(*a));

    ck_assert_ptr_nonnull(a);
    msgpack_sbuffer_init(&a->sb);
    msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&a->pk, n);
    return a;
}

void gr_test_args_str(gr_test_args *a, const char *s)
{
    msgpack_pack_str_with_body(&a->pk, s, strlen(s));
}

void gr_test_args_raw(gr_test_args *a, const msgpack_object *o)
{
    msgpack_pack_object(&a->pk, *o);
}

gr_test_args *gr_test_args_free(gr_test_args *a)
{
    if (a) {
        msgpack_sbuffer_destroy(&a->sb);
        free(a);
    }
    return NULL;
}

static bool is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *gr_test_map_get(const msgpack_object *o, const char *k)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (is_str(&o->via.map.ptr[i].key, k)) {
            return &o->via.map.ptr[i].val;
        }
    }
    return NULL;
}

void gr_test_expect_error(const msgpack_object *o, const char *id)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o->via.array.size, 2);
    ck_assert(is_str(&o->via.array.ptr[0], "error"));
    ck_assert_msg(is_str(&o->via.array.ptr[1], id), "expected error %s", id);
}

/* ---- rpc answers ----------------------------------------------------------------------- */

int gr_test_answers_capture(void *ud, uint64_t conn, uint64_t ref, int status, const void *term,
                            size_t len)
{
    gr_test_answers *as = ud;
    gr_test_answer *a;

    pthread_mutex_lock(&as->lock);
    ck_assert_uint_lt(as->n, GR_TEST_MAX_ANSWERS);
    a = &as->a[as->n];
    *a = (gr_test_answer){.conn = conn, .ref = ref, .status = status, .len = len};
    if (status == 0) {
        a->term = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(a->term);
        memcpy(a->term, term, len);
    }
    as->n++;
    pthread_cond_broadcast(&as->cond);
    pthread_mutex_unlock(&as->lock);
    return 0;
}

void gr_test_answers_clear(gr_test_answers *as)
{
    pthread_mutex_lock(&as->lock);
    for (size_t i = 0; i < as->n; i++) {
        free(as->a[i].term);
        as->a[i].term = NULL;
    }
    as->n = 0;
    pthread_mutex_unlock(&as->lock);
}

size_t gr_test_answers_wait(gr_test_answers *as, uint64_t ref, int base_ms)
{
    struct timespec dl;
    int ms = gr_test_ms(base_ms);

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&as->lock);
    for (;;) {
        for (size_t i = 0; i < as->n; i++) {
            if (as->a[i].ref == ref) {
                pthread_mutex_unlock(&as->lock);
                return i;
            }
        }
        if (pthread_cond_timedwait(&as->cond, &as->lock, &dl) != 0) {
            pthread_mutex_unlock(&as->lock);
            ck_abort_msg("no answer to ref %llu within %d ms", (unsigned long long)ref, ms);
        }
    }
}

size_t gr_test_answers_n(gr_test_answers *as)
{
    size_t n;

    pthread_mutex_lock(&as->lock);
    n = as->n;
    pthread_mutex_unlock(&as->lock);
    return n;
}

size_t gr_test_answers_count(gr_test_answers *as, uint64_t ref)
{
    size_t n = 0;

    pthread_mutex_lock(&as->lock);
    for (size_t i = 0; i < as->n; i++) {
        n += as->a[i].ref == ref;
    }
    pthread_mutex_unlock(&as->lock);
    return n;
}

const msgpack_object *gr_test_answers_term(gr_test_answers *as, size_t i, msgpack_unpacked *up)
{
    size_t off = 0;

    ck_assert_uint_lt(i, gr_test_answers_n(as)); /* a late answer may be appended meanwhile */
    ck_assert_int_eq(as->a[i].status, 0);
    msgpack_unpacked_init(up);
    ck_assert_int_eq(msgpack_unpack_next(up, (const char *)as->a[i].term, as->a[i].len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    return &up->data;
}
