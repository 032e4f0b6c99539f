/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cookie_test.c - unit tests of cookie loading and generation (cookie.h):
 * permissions, line endings, empty and oversized files, the environment, the
 * resolution order and the default path. Each test works in its own scratch
 * directory and environment (Check forks per test).
 */
#include "proto/cookie.h"
#include "proto/err.h"

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/gr-cookie-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    unsetenv(GR_COOKIE_ENV);
    unsetenv(GR_COOKIE_FILE_ENV);
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Write a file `name` in the scratch dir with content and mode; returns its path. */
static const char *put(const char *name, const void *data, size_t len, mode_t mode)
{
    static char path[4][128];
    static int k;
    char *p = path[k++ % 4];
    int fd;

    snprintf(p, 128, "%s/%s", dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
    return p;
}

static int is(const gr_cookie *c, const char *s)
{
    return c->len == strlen(s) && memcmp(c->bytes, s, c->len) == 0;
}

START_TEST(load_strips_line_endings)
{
    gr_cookie c;

    ck_assert_int_eq(gr_cookie_load_file(put("a", "secret\n", 7, 0600), &c), 0);
    ck_assert(is(&c, "secret"));
    ck_assert_int_eq(gr_cookie_load_file(put("b", "secret\r\n", 8, 0400), &c), 0);
    ck_assert(is(&c, "secret"));
    ck_assert_int_eq(gr_cookie_load_file(put("c", "sec ret", 7, 0400), &c), 0);
    ck_assert(is(&c, "sec ret"));
    gr_cookie_wipe(&c);
    ck_assert_uint_eq(c.len, 0);
}
END_TEST

START_TEST(refuses_open_permissions)
{
    gr_cookie c = {.len = 99};

    ck_assert_int_eq(gr_cookie_load_file(put("g", "s\n", 2, 0640), &c), GR_ECOOKIEPERM);
    ck_assert_int_eq(gr_cookie_load_file(put("o", "s\n", 2, 0604), &c), GR_ECOOKIEPERM);
    ck_assert_int_eq(gr_cookie_load_file(put("w", "s\n", 2, 0620), &c), GR_ECOOKIEPERM);
    ck_assert_uint_eq(c.len, 99); /* untouched */
}
END_TEST

START_TEST(refuses_empty_missing_odd)
{
    gr_cookie c;
    char big[GR_COOKIE_MAX + 3];
    char path[128];

    ck_assert_int_eq(gr_cookie_load_file(put("e", "", 0, 0600), &c), GR_ENOCOOKIE);
    ck_assert_int_eq(gr_cookie_load_file(put("n", "\n\r\n", 3, 0600), &c), GR_ENOCOOKIE);
    snprintf(path, sizeof(path), "%s/missing", dir);
    ck_assert_int_eq(gr_cookie_load_file(path, &c), -ENOENT);
    ck_assert_int_eq(gr_cookie_load_file(dir, &c), -EINVAL); /* directory (0700) */
    ck_assert_int_eq(gr_cookie_load_file("", &c), -EINVAL);
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(gr_cookie_load_file(put("big", big, sizeof(big), 0600), &c), -EFBIG);
    /* exactly the maximum, with a line ending, is fine */
    big[GR_COOKIE_MAX] = '\r';
    big[GR_COOKIE_MAX + 1] = '\n';
    ck_assert_int_eq(gr_cookie_load_file(put("max", big, GR_COOKIE_MAX + 2, 0600), &c), 0);
    ck_assert_uint_eq(c.len, GR_COOKIE_MAX);
}
END_TEST

START_TEST(from_env)
{
    gr_cookie c;

    ck_assert_int_eq(gr_cookie_from_env(&c), -ENOENT);
    setenv(GR_COOKIE_ENV, "", 1);
    ck_assert_int_eq(gr_cookie_from_env(&c), GR_ENOCOOKIE);
    setenv(GR_COOKIE_ENV, "env-secret\n", 1);
    ck_assert_int_eq(gr_cookie_from_env(&c), 0);
    ck_assert(is(&c, "env-secret"));
}
END_TEST

START_TEST(resolve_order)
{
    gr_cookie c;
    const char *explicit = put("explicit", "one\n", 4, 0600);
    const char *viaenv = put("viaenv", "three\n", 6, 0600);
    char home[128];

    snprintf(home, sizeof(home), "%s", dir);
    setenv("HOME", home, 1);
    put(GR_COOKIE_DEFAULT_NAME, "four\n", 5, 0400);
    setenv(GR_COOKIE_ENV, "two", 1);
    setenv(GR_COOKIE_FILE_ENV, viaenv, 1);
    ck_assert_int_eq(gr_cookie_resolve(explicit, &c), 0);
    ck_assert(is(&c, "one"));
    ck_assert_int_eq(gr_cookie_resolve(NULL, &c), 0);
    ck_assert(is(&c, "two"));
    unsetenv(GR_COOKIE_ENV);
    ck_assert_int_eq(gr_cookie_resolve(NULL, &c), 0);
    ck_assert(is(&c, "three"));
    unsetenv(GR_COOKIE_FILE_ENV);
    ck_assert_int_eq(gr_cookie_resolve(NULL, &c), 0);
    ck_assert(is(&c, "four"));
    /* an explicit file that fails does not fall through to the others */
    ck_assert_int_eq(gr_cookie_resolve(put("bad", "x", 1, 0644), &c), GR_ECOOKIEPERM);
}
END_TEST

START_TEST(default_path)
{
    char p[GR_COOKIE_PATH_MAX];
    char small[8];

    setenv("HOME", "/home/op", 1);
    ck_assert_int_eq(gr_cookie_default_path(p, sizeof(p)), 0);
    ck_assert_str_eq(p, "/home/op/.girder.cookie");
    ck_assert_int_eq(gr_cookie_default_path(small, sizeof(small)), -ENAMETOOLONG);
    unsetenv("HOME");
    ck_assert_int_eq(gr_cookie_default_path(p, sizeof(p)), 0);
    ck_assert_str_eq(p, "/var/lib/girder/cookie");
    setenv("HOME", "", 1);
    ck_assert_int_eq(gr_cookie_default_path(p, sizeof(p)), 0);
    ck_assert_str_eq(p, GR_COOKIE_SERVICE_PATH);
}
END_TEST

START_TEST(generate)
{
    gr_cookie made, loaded;
    char path[128], link[128];
    struct stat st;

    snprintf(path, sizeof(path), "%s/new.cookie", dir);
    ck_assert_int_eq(gr_cookie_generate(path, &made), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0400);
    ck_assert_int_eq(st.st_size, 44); /* 43 base64url characters and a newline */
    ck_assert_uint_eq(made.len, 43);
    ck_assert_int_eq(gr_cookie_load_file(path, &loaded), 0);
    ck_assert(loaded.len == made.len && memcmp(loaded.bytes, made.bytes, made.len) == 0);
    /* never over an existing file */
    ck_assert_int_eq(gr_cookie_generate(path, NULL), -EEXIST);
    /* never through a symlink */
    snprintf(link, sizeof(link), "%s/link", dir);
    ck_assert_int_eq(symlink("/tmp/gr-cookie-target-never", link), 0);
    ck_assert_int_lt(gr_cookie_generate(link, NULL), 0);
    ck_assert_int_ne(access("/tmp/gr-cookie-target-never", F_OK), 0);
    /* two cookies differ */
    snprintf(path, sizeof(path), "%s/second.cookie", dir);
    ck_assert_int_eq(gr_cookie_generate(path, &loaded), 0);
    ck_assert(memcmp(loaded.bytes, made.bytes, made.len) != 0);
    gr_cookie_wipe(&made);
    gr_cookie_wipe(&loaded);
}
END_TEST

static Suite *cookie_suite(void)
{
    Suite *s = suite_create("cookie");
    TCase *tc = gr_test_tcase(s, "cookie", setup, teardown, 0);

    gr_test_add(tc, load_strips_line_endings, refuses_open_permissions, refuses_empty_missing_odd,
                from_env, resolve_order, default_path, generate);
    return s;
}

int main(void)
{
    return gr_test_run(cookie_suite);
}
