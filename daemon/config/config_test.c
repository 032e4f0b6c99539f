/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config_test.c - unit tests for daemon/config: defaults, the INI file, flag
 * precedence, and one test per kind of bad configuration, checking that the
 * error names the file, line and key.
 */
#include "config/config.h"

#include "proto/err.h"

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------- */

static char tmpdir[PATH_MAX];

static void setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/girder-config-test.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Write text to a fresh file in tmpdir; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[PATH_MAX + 64];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Run gr_config_load on a NULL-terminated argument list. */
#define LOAD(err, cfg, ...)                                                                        \
    ({                                                                                             \
        char *argv_[] = {"girderd", __VA_ARGS__, NULL};                                            \
        gr_config_load((int)(sizeof(argv_) / sizeof(argv_[0])) - 1, argv_, (err), (cfg));          \
    })

/* Parse INI text into a fresh default config; returns the result code. */
static int parse_text(const char *text, gr_config_error *err, gr_config *cfg)
{
    ck_assert_int_eq(gr_config_init(cfg), 0);
    return gr_config_parse_ini(cfg, "test.ini", text, strlen(text), err);
}

/* The printed form of an error. Static buffer. */
static const char *printed(const gr_config_error *err)
{
    static char buf[512];
    FILE *f = fmemopen(buf, sizeof(buf), "w");

    ck_assert_ptr_nonnull(f);
    gr_config_error_print(f, "girderd", err);
    fclose(f);
    return buf;
}

/* Expect `text` to fail at `line` with `reason`, naming `key` (or "" for none). */
static void expect_ini_error(const char *text, gr_config_reason reason, unsigned line,
                             const char *key)
{
    gr_config cfg;
    gr_config_error err;
    int r = parse_text(text, &err, &cfg);

    ck_assert_msg(r == GR_ECONFIG, "parse of <%s> returned %d", text, r);
    ck_assert_msg(err.reason == reason, "<%s>: reason %d (%s), expected %d (%s)", text, err.reason,
                  gr_config_reason_str(err.reason), reason, gr_config_reason_str(reason));
    ck_assert_uint_eq(err.line, line);
    ck_assert_str_eq(err.key, key);
    ck_assert_str_eq(err.file, "test.ini");
    gr_config_clear(&cfg);
}

/* ---- defaults and good input ------------------------------------------------------- */

START_TEST(defaults)
{
    gr_config cfg;
    gr_config_error err;
    char *argv[] = {"girderd", NULL};

    ck_assert_int_eq(gr_config_load(1, argv, &err, &cfg), 0);
    ck_assert_int_eq(cfg.action, GR_CONFIG_RUN);
    ck_assert_str_eq(cfg.name, "girder@127.0.0.1");
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 4370);
    ck_assert_ptr_null(cfg.cookie_file);
    ck_assert(!cfg.cookie_file_flag);
    ck_assert_uint_eq(cfg.nseeds, 0);
    ck_assert_uint_eq(cfg.schedulers, 0);
    ck_assert_int_eq(cfg.log_level, GR_LOG_INFO);
    ck_assert_ptr_null(cfg.file);
    gr_config_clear(&cfg);
    gr_config_clear(&cfg); /* idempotent */
    gr_config_clear(NULL);
}
END_TEST

START_TEST(full_file)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("full.ini", "; example\n"
                                              "# another comment\n"
                                              "[node]\n"
                                              "name = a@host-1.example\n"
                                              "  listen = 0.0.0.0:4444   ; indented, comment\n"
                                              "cookie_file = /etc/girder/cookie\n"
                                              "seeds = b@h2:4370, c@10.0.0.3:4371\n"
                                              "seeds = d@h4:1\r\n"
                                              "schedulers = 4\n"
                                              "log_level = DEBUG\n");

    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path), 0);
    ck_assert_str_eq(cfg.file, path);
    ck_assert_str_eq(cfg.name, "a@host-1.example");
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    ck_assert_uint_eq(cfg.listen_port, 4444);
    ck_assert_str_eq(cfg.cookie_file, "/etc/girder/cookie");
    ck_assert(!cfg.cookie_file_flag);
    ck_assert_uint_eq(cfg.nseeds, 3);
    ck_assert_str_eq(cfg.seeds[0].node, "b@h2");
    ck_assert_str_eq(cfg.seeds[0].host, "h2");
    ck_assert_uint_eq(cfg.seeds[0].port, 4370);
    ck_assert_str_eq(cfg.seeds[1].node, "c@10.0.0.3");
    ck_assert_str_eq(cfg.seeds[1].host, "10.0.0.3");
    ck_assert_uint_eq(cfg.seeds[1].port, 4371);
    ck_assert_str_eq(cfg.seeds[2].node, "d@h4");
    ck_assert_uint_eq(cfg.seeds[2].port, 1);
    ck_assert_uint_eq(cfg.schedulers, 4);
    ck_assert_int_eq(cfg.log_level, GR_LOG_DEBUG);
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(flags_override_file)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("base.ini", "[node]\n"
                                              "name = a@h\n"
                                              "listen = 127.0.0.1:1000\n"
                                              "seeds = x@h:1, y@h:2\n"
                                              "schedulers = 2\n"
                                              "link_high_water = 8M\n"
                                              "cookie_file = /etc/girder/cookie\n");

    ck_assert_int_eq(LOAD(&err, &cfg, "--listen", "127.0.0.2:2000", "--config", (char *)path,
                          "--seed", "s1@h:10", "--seed=s2@h:11", "--schedulers", "auto",
                          "--log-level", "warn", "--cookie-file", "/c", "--name", "b@h",
                          "--link-high-water", "2M"),
                     0);
    ck_assert_str_eq(cfg.name, "b@h");
    ck_assert_str_eq(cfg.listen_host, "127.0.0.2");
    ck_assert_uint_eq(cfg.listen_port, 2000);
    ck_assert_uint_eq(cfg.nseeds, 2); /* flags replace the file's seeds */
    ck_assert_str_eq(cfg.seeds[0].node, "s1@h");
    ck_assert_str_eq(cfg.seeds[1].node, "s2@h");
    ck_assert_uint_eq(cfg.schedulers, 0);
    ck_assert_int_eq(cfg.log_level, GR_LOG_WARN);
    ck_assert_str_eq(cfg.cookie_file, "/c");
    ck_assert(cfg.cookie_file_flag);
    ck_assert_uint_eq(cfg.link_high_water, 2u << 20);
    gr_config_clear(&cfg);

    /* without --seed the file's seeds stay; the file's cookie_file is the file's */
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path, "--listen", "127.0.0.1:0"), 0);
    ck_assert_uint_eq(cfg.nseeds, 2);
    ck_assert_uint_eq(cfg.listen_port, 0);
    ck_assert_str_eq(cfg.cookie_file, "/etc/girder/cookie");
    ck_assert(!cfg.cookie_file_flag);
    ck_assert_uint_eq(cfg.link_high_water, 8u << 20);
    gr_config_clear(&cfg);
}
END_TEST

/* [plugins] load = PATH lines and --plugin flags accumulate, file first. */
START_TEST(plugins_file_and_flags)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("plug.ini", "[node]\n"
                                              "name = a@h\n"
                                              "[plugins]\n"
                                              "load = /opt/a.so\n"
                                              "load = /opt/b.so\n");

    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path, "--plugin", "/opt/c.so"), 0);
    ck_assert_uint_eq(cfg.nplugins, 3);
    ck_assert_str_eq(cfg.plugins[0], "/opt/a.so");
    ck_assert_str_eq(cfg.plugins[1], "/opt/b.so");
    ck_assert_str_eq(cfg.plugins[2], "/opt/c.so");
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "--plugin=/x.so"), 0);
    ck_assert_uint_eq(cfg.nplugins, 1);
    gr_config_clear(&cfg);
    /* Only `load` in [plugins]; `plugin` is not a [node] key. */
    expect_ini_error("[plugins]\npath = /a.so\n", GR_CONFIG_EKEY, 2, "path");
    expect_ini_error("[node]\nplugin = /a.so\n", GR_CONFIG_EKEY, 2, "plugin");
    expect_ini_error("[plugins]\nload =\n", GR_CONFIG_EEMPTY, 2, "load");
}
END_TEST

/* accept_cookie_file: repeated in the file, flags add to the file's list, at
 * most GR_CONFIG_ACCEPT_MAX, never empty. */
START_TEST(accept_cookie_files)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("acc.ini", "[node]\n"
                                             "accept_cookie_file = /etc/girder/next\n"
                                             "accept_cookie_file = /etc/girder/prev\n");

    ck_assert_int_eq(LOAD(&err, &cfg, "--name", "a@h"), 0);
    ck_assert_uint_eq(cfg.naccept, 0);
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path, "--accept-cookie-file", "/x"), 0);
    ck_assert_uint_eq(cfg.naccept, 3);
    ck_assert_str_eq(cfg.accept_cookie_files[0], "/etc/girder/next");
    ck_assert_str_eq(cfg.accept_cookie_files[1], "/etc/girder/prev");
    ck_assert_str_eq(cfg.accept_cookie_files[2], "/x");
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "--accept-cookie-file=/a", "--accept-cookie-file=/b",
                          "--accept-cookie-file=/c", "--accept-cookie-file=/d"),
                     0);
    ck_assert_uint_eq(cfg.naccept, GR_CONFIG_ACCEPT_MAX);
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "--accept-cookie-file=/a", "--accept-cookie-file=/b",
                          "--accept-cookie-file=/c", "--accept-cookie-file=/d",
                          "--accept-cookie-file=/e"),
                     GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ETOOMANYACCEPT);
    expect_ini_error("[node]\naccept_cookie_file =\n", GR_CONFIG_EEMPTY, 2, "accept_cookie_file");
}
END_TEST

START_TEST(help_and_version)
{
    gr_config cfg;
    gr_config_error err;
    char buf[4096];
    FILE *f;

    ck_assert_int_eq(LOAD(&err, &cfg, "--help"), 0);
    ck_assert_int_eq(cfg.action, GR_CONFIG_HELP);
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "-V"), 0);
    ck_assert_int_eq(cfg.action, GR_CONFIG_VERSION);
    gr_config_clear(&cfg);
    /* help does not read the file, so a missing one is no error */
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", "/nonexistent/x.ini", "-h"), 0);
    ck_assert_int_eq(cfg.action, GR_CONFIG_HELP);
    gr_config_clear(&cfg);

    f = fmemopen(buf, sizeof(buf), "w");
    ck_assert_ptr_nonnull(f);
    gr_config_usage(f, "girderd");
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "[--seed NAME@HOST:PORT]..."));
    ck_assert_ptr_nonnull(strstr(buf, "--log-level LEVEL"));
    ck_assert_ptr_nonnull(strstr(buf, "key: cookie_file"));
}
END_TEST

START_TEST(set_one_key)
{
    gr_config cfg;
    gr_config_error err;

    ck_assert_int_eq(gr_config_init(&cfg), 0);
    ck_assert_int_eq(gr_config_set(&cfg, "schedulers", "255", &err), 0);
    ck_assert_uint_eq(cfg.schedulers, 255);
    ck_assert_int_eq(gr_config_set(&cfg, "schedulers", "1", &err), 0);
    ck_assert_uint_eq(cfg.schedulers, 1);
    ck_assert_int_eq(gr_config_set(&cfg, "bogus", "1", &err), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EKEY);
    ck_assert_str_eq(err.key, "bogus");
    ck_assert_int_eq(gr_config_set(&cfg, "name", "nope", &err), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ENODE);
    ck_assert_str_eq(cfg.name, "girder@127.0.0.1"); /* unchanged on failure */
    ck_assert_uint_eq(cfg.detection_ms, 3000);
    ck_assert_int_eq(gr_config_set(&cfg, "detection_ms", "300", &err), 0);
    ck_assert_uint_eq(cfg.detection_ms, 300);
    ck_assert_int_eq(gr_config_set(&cfg, "detection_ms", "600000", &err), 0);
    ck_assert_uint_eq(cfg.detection_ms, 600000);
    const char *bad[] = {"299", "600001", "1s", "", "-1", "9999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(gr_config_set(&cfg, "detection_ms", bad[i], &err), GR_ECONFIG);
        ck_assert_int_eq(err.reason, bad[i][0] ? GR_CONFIG_EDETECTION : GR_CONFIG_EEMPTY);
        ck_assert_uint_eq(cfg.detection_ms, 600000); /* unchanged on failure */
    }
    ck_assert_uint_eq(cfg.link_high_water, 64u << 20);
    ck_assert_int_eq(gr_config_set(&cfg, "link_high_water", "4M", &err), 0);
    ck_assert_uint_eq(cfg.link_high_water, 4u << 20);
    ck_assert_int_eq(gr_config_set(&cfg, "link_high_water", "262144", &err), 0);
    ck_assert_uint_eq(cfg.link_high_water, 256u << 10);
    ck_assert_int_eq(gr_config_set(&cfg, "link_high_water", "1g", &err), 0);
    ck_assert_uint_eq(cfg.link_high_water, 1u << 30);
    ck_assert_int_eq(gr_config_set(&cfg, "link_high_water", "512k", &err), 0);
    ck_assert_uint_eq(cfg.link_high_water, 512u << 10);
    const char *bad_hw[] = {"262143", "255K", "2G",  "1073741825",           "4MB",
                            "M",      "-4M",  "4 M", "99999999999999999999", "0x400000"};
    for (size_t i = 0; i < sizeof(bad_hw) / sizeof(bad_hw[0]); i++) {
        ck_assert_int_eq(gr_config_set(&cfg, "link_high_water", bad_hw[i], &err), GR_ECONFIG);
        ck_assert_int_eq(err.reason, GR_CONFIG_EHIGHWATER);
        ck_assert_str_eq(err.key, "link_high_water");
        ck_assert_uint_eq(cfg.link_high_water, 512u << 10); /* unchanged on failure */
    }
    ck_assert(cfg.cipher_fast); /* default: auto */
    ck_assert_int_eq(gr_config_set(&cfg, "cipher", "chacha20-poly1305", &err), 0);
    ck_assert(!cfg.cipher_fast);
    ck_assert_int_eq(gr_config_set(&cfg, "cipher", "auto", &err), 0);
    ck_assert(cfg.cipher_fast);
    const char *bad_cipher[] = {"aes", "AUTO", "chacha20", "aes-128-ocb "};
    for (size_t i = 0; i < sizeof(bad_cipher) / sizeof(bad_cipher[0]); i++) {
        ck_assert_int_eq(gr_config_set(&cfg, "cipher", bad_cipher[i], &err), GR_ECONFIG);
        ck_assert_int_eq(err.reason, GR_CONFIG_ECIPHER);
        ck_assert_str_eq(err.key, "cipher");
        ck_assert(cfg.cipher_fast); /* unchanged on failure */
    }
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(validators)
{
    char *host = NULL;
    uint16_t port = 0;

    ck_assert_int_eq(gr_config_check_node("a@b"), 0);
    ck_assert_int_eq(gr_config_check_node("node_1-x@host.example.com"), 0);
    ck_assert_int_eq(gr_config_check_node("a@10.0.0.1"), 0);
    ck_assert_int_eq(gr_config_check_node("noat"), GR_EBADNODE);
    ck_assert_int_eq(gr_config_check_node("@host"), GR_EBADNODE);
    ck_assert_int_eq(gr_config_check_node("a@"), GR_EBADNODE);
    ck_assert_int_eq(gr_config_check_node("a@b@c"), GR_EBADNODE);
    ck_assert_int_eq(gr_config_check_node("a b@c"), GR_EBADNODE);
    ck_assert_int_eq(gr_config_check_node("a@-host"), GR_EBADNODE);
    ck_assert_int_eq(gr_config_check_node("a@host:1"), GR_EBADNODE);

    ck_assert_int_eq(gr_config_split_hostport("h:1", false, &host, &port), 0);
    ck_assert_str_eq(host, "h");
    ck_assert_uint_eq(port, 1);
    free(host);
    ck_assert_int_eq(gr_config_split_hostport("[fe80::1]:65535", false, &host, &port), 0);
    ck_assert_str_eq(host, "fe80::1");
    ck_assert_uint_eq(port, 65535);
    free(host);
    host = NULL;
    ck_assert_int_eq(gr_config_split_hostport("h:0", false, &host, &port), -ERANGE);
    ck_assert_int_eq(gr_config_split_hostport("h:0", true, &host, &port), 0);
    free(host);
    host = NULL;
    port = 7;
    ck_assert_int_eq(gr_config_split_hostport("h:65536", true, &host, &port), -ERANGE);
    ck_assert_int_eq(gr_config_split_hostport("h:", true, &host, &port), -ERANGE);
    ck_assert_int_eq(gr_config_split_hostport("h:+1", true, &host, &port), -ERANGE);
    ck_assert_int_eq(gr_config_split_hostport("h", true, &host, &port), -EINVAL);
    ck_assert_int_eq(gr_config_split_hostport(":1", true, &host, &port), -EINVAL);
    ck_assert_int_eq(gr_config_split_hostport("::1:80", true, &host, &port), -EINVAL);
    ck_assert_int_eq(gr_config_split_hostport("[::1]80", true, &host, &port), -EINVAL);
    ck_assert_int_eq(gr_config_split_hostport("[xyz]:80", true, &host, &port), -EINVAL);
    ck_assert_ptr_null(host); /* untouched on failure */
    ck_assert_uint_eq(port, 7);
}
END_TEST

/* ---- every kind of bad file --------------------------------------------------------- */

START_TEST(err_unknown_section)
{
    expect_ini_error("[node]\nname = a@b\n\n[nodes]\nlisten = 127.0.0.1:1\n", GR_CONFIG_ESECTION, 4,
                     "");
    /* an empty unknown section is still reported */
    expect_ini_error("[node]\n[extra]\n", GR_CONFIG_ESECTION, 2, "");
}
END_TEST

START_TEST(err_key_outside_section)
{
    expect_ini_error("name = a@b\n[node]\n", GR_CONFIG_ENOSECTION, 1, "name");
}
END_TEST

START_TEST(err_unknown_key)
{
    gr_config cfg;
    gr_config_error err;

    expect_ini_error("[node]\nname = a@b\nlisten_addr = 127.0.0.1:1\n", GR_CONFIG_EKEY, 3,
                     "listen_addr");
    ck_assert_int_eq(parse_text("[node]\nName = a@b\n", &err, &cfg), GR_ECONFIG);
    ck_assert_str_eq(printed(&err), "girderd: test.ini:2: [node] Name = 'a@b': unknown key\n");
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(err_duplicate_key)
{
    expect_ini_error("[node]\nname = a@b\nname = c@d\n", GR_CONFIG_EDUP, 3, "name");
}
END_TEST

START_TEST(err_bad_value)
{
    expect_ini_error("[node]\nlog_level = loud\n", GR_CONFIG_ELEVEL, 2, "log_level");
    expect_ini_error("[node]\nlisten = localhost\n", GR_CONFIG_EADDR, 2, "listen");
    expect_ini_error("[node]\nlisten = 127.0.0.1\n", GR_CONFIG_EADDR, 2, "listen");
    expect_ini_error("[node]\nlisten = ::1:4370\n", GR_CONFIG_EADDR, 2, "listen");
    expect_ini_error("[node]\ncookie_file =\n", GR_CONFIG_EEMPTY, 2, "cookie_file");
    expect_ini_error("[node]\nseeds = a@b:1,,c@d:2\n", GR_CONFIG_ESEED, 2, "seeds");
    expect_ini_error("[node]\nseeds = a@b\n", GR_CONFIG_ESEED, 2, "seeds");
}
END_TEST

START_TEST(err_bad_port)
{
    gr_config cfg;
    gr_config_error err;

    expect_ini_error("[node]\nlisten = 127.0.0.1:70000\n", GR_CONFIG_EPORT, 2, "listen");
    expect_ini_error("[node]\nlisten = 127.0.0.1:http\n", GR_CONFIG_EPORT, 2, "listen");
    expect_ini_error("[node]\nlisten = 127.0.0.1:-1\n", GR_CONFIG_EPORT, 2, "listen");
    expect_ini_error("[node]\nseeds = a@b:0\n", GR_CONFIG_EPORT, 2, "seeds");
    ck_assert_int_eq(parse_text("[node]\nlisten = 127.0.0.1:70000\n", &err, &cfg), GR_ECONFIG);
    ck_assert_str_eq(printed(&err), "girderd: test.ini:2: [node] listen = '127.0.0.1:70000': "
                                    "bad port: expected a number 1..65535\n");
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(err_bad_node_name)
{
    expect_ini_error("[node]\nname = girder\n", GR_CONFIG_ENODE, 2, "name");
    expect_ini_error("[node]\nname = gir der@h\n", GR_CONFIG_ENODE, 2, "name");
    expect_ini_error("[node]\nname = g@h_h\n", GR_CONFIG_ENODE, 2, "name");
    expect_ini_error("[node]\nseeds = a@b:1, bad@:2\n", GR_CONFIG_ENODE, 2, "seeds");
}
END_TEST

START_TEST(err_schedulers_range)
{
    expect_ini_error("[node]\nschedulers = 0\n", GR_CONFIG_ERANGE, 2, "schedulers");
    expect_ini_error("[node]\nschedulers = 256\n", GR_CONFIG_ERANGE, 2, "schedulers");
    expect_ini_error("[node]\nschedulers = 1000\n", GR_CONFIG_ERANGE, 2, "schedulers");
    expect_ini_error("[node]\nschedulers = four\n", GR_CONFIG_ERANGE, 2, "schedulers");
    expect_ini_error("[node]\nschedulers = -1\n", GR_CONFIG_ERANGE, 2, "schedulers");
}
END_TEST

START_TEST(err_syntax)
{
    expect_ini_error("[node]\nname a@b\n", GR_CONFIG_ESYNTAX, 2, "");
    expect_ini_error("[node\nname = a@b\n", GR_CONFIG_ESYNTAX, 1, "");
    /* a syntax error before a semantic one is the one reported */
    expect_ini_error("[node]\njunk\nbogus = 1\n", GR_CONFIG_ESYNTAX, 2, "");
    expect_ini_error("[node]\nbogus = 1\njunk\n", GR_CONFIG_EKEY, 2, "bogus");
}
END_TEST

START_TEST(err_long_line_and_nul)
{
    char text[1024];
    gr_config cfg;
    gr_config_error err;
    static const char nul_text[] = "[node]\nname = a\0@b\n";
    char *exact;

    snprintf(text, sizeof(text), "[node]\ncookie_file = /%0600d\nname = a@b\n", 0);
    expect_ini_error(text, GR_CONFIG_ELINE, 2, "");
    /* found by fuzz_config: blanks and no newline at the very end of the input */
    exact = malloc(10); /* exactly sized, so ASan sees any read past the end */
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, "[node]\n   ", 10);
    ck_assert_int_eq(gr_config_init(&cfg), 0);
    ck_assert_int_eq(gr_config_parse_ini(&cfg, "test.ini", exact, 10, &err), 0);
    gr_config_clear(&cfg);
    free(exact);
    /* the documented limit: 197 bytes, even with CRLF, even indented */
    snprintf(text, sizeof(text), "[node]\r\n    cookie_file = /%0182d\r\n", 0);
    ck_assert_int_eq(parse_text(text, &err, &cfg), 0);
    ck_assert_uint_eq(strlen(cfg.cookie_file) + strlen("cookie_file = "), 197);
    gr_config_clear(&cfg);
    snprintf(text, sizeof(text), "[node]\r\ncookie_file = /%0183d\r\n", 0);
    expect_ini_error(text, GR_CONFIG_ELINE, 2, "");

    ck_assert_int_eq(gr_config_init(&cfg), 0);
    ck_assert_int_eq(gr_config_parse_ini(&cfg, "test.ini", nul_text, sizeof(nul_text) - 1, &err),
                     GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ENUL);
    ck_assert_uint_eq(err.line, 2);
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(err_too_many_seeds)
{
    char text[8192] = "[node]\n";
    gr_config cfg;
    gr_config_error err;

    for (int i = 0; i <= GR_CONFIG_SEEDS_MAX; i++) {
        char line[64];
        snprintf(line, sizeof(line), "seeds = n%d@h:%d\n", i, i + 1);
        strcat(text, line);
    }
    ck_assert_int_eq(parse_text(text, &err, &cfg), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ETOOMANYSEEDS);
    ck_assert_uint_eq(err.line, GR_CONFIG_SEEDS_MAX + 2);
    ck_assert_uint_eq(cfg.nseeds, GR_CONFIG_SEEDS_MAX);
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(err_unreadable_file)
{
    gr_config cfg = {0};
    gr_config_error err;
    char missing[PATH_MAX + 32];

    snprintf(missing, sizeof(missing), "%s/missing.ini", tmpdir);
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", missing), GR_ECONFIG);
    ck_assert_ptr_null(cfg.name); /* untouched on failure */
    ck_assert_int_eq(err.reason, GR_CONFIG_EUNREADABLE);
    ck_assert_int_eq(err.sys_err, -ENOENT);
    ck_assert_str_eq(err.file, missing);
    ck_assert_ptr_nonnull(strstr(printed(&err), "missing.ini: cannot read the configuration file: "
                                                "No such file or directory"));

    ck_assert_int_eq(LOAD(&err, &cfg, "-c", tmpdir), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EUNREADABLE);
    ck_assert_int_eq(err.sys_err, -EISDIR);

    if (geteuid() != 0) { /* root reads anything */
        const char *path = write_file("secret.ini", "[node]\n");
        ck_assert_int_eq(chmod(path, 0), 0);
        ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path), GR_ECONFIG);
        ck_assert_int_eq(err.sys_err, -EACCES);
    }
}
END_TEST

START_TEST(err_file_via_load_names_line)
{
    gr_config cfg = {0};
    gr_config_error err;
    const char *path = write_file("bad.ini", "[node]\nname = a@b\nschedulers = 300\n");
    char expect[PATH_MAX + 128];

    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path), GR_ECONFIG);
    ck_assert_str_eq(err.file, path);
    ck_assert_uint_eq(err.line, 3);
    ck_assert_str_eq(err.key, "schedulers");
    ck_assert_str_eq(err.value, "300");
    snprintf(expect, sizeof(expect),
             "girderd: %s:3: [node] schedulers = '300': out of range: expected 1..255 or auto\n",
             path);
    ck_assert_str_eq(printed(&err), expect);
}
END_TEST

START_TEST(err_flags)
{
    gr_config cfg = {0};
    gr_config_error err;

    ck_assert_int_eq(LOAD(&err, &cfg, "--bogus"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EOPTION);
    ck_assert_str_eq(err.key, "--bogus");
    ck_assert_str_eq(printed(&err), "girderd: --bogus: unknown option (try --help)\n");

    ck_assert_int_eq(LOAD(&err, &cfg, "-x"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EOPTION);
    ck_assert_str_eq(err.key, "-x");

    ck_assert_int_eq(LOAD(&err, &cfg, "--listen"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ENOARG);
    ck_assert_str_eq(err.key, "--listen");

    ck_assert_int_eq(LOAD(&err, &cfg, "-c"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ENOARG);
    ck_assert_str_eq(err.key, "-c");

    ck_assert_int_eq(LOAD(&err, &cfg, "stray"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EOPERAND);
    ck_assert_str_eq(err.value, "stray");

    ck_assert_int_eq(LOAD(&err, &cfg, "--listen", "localhost:99999"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EPORT);
    ck_assert_ptr_null(err.file);
    ck_assert_str_eq(err.key, "--listen");
    ck_assert_str_eq(printed(&err), "girderd: --listen 'localhost:99999': "
                                    "bad port: expected a number 1..65535\n");

    ck_assert_int_eq(LOAD(&err, &cfg, "--name", "x"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ENODE);
    ck_assert_int_eq(LOAD(&err, &cfg, "--schedulers", "0"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ERANGE);
    ck_assert_int_eq(LOAD(&err, &cfg, "--seed", "a@b"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ESEED);
    ck_assert_int_eq(LOAD(&err, &cfg, "--log-level", ""), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EEMPTY);
    ck_assert_ptr_null(cfg.name);
}
END_TEST

START_TEST(error_value_is_sanitised)
{
    gr_config cfg;
    gr_config_error err;
    char text[512];

    snprintf(text, sizeof(text), "[node]\nname = %0150d\x01\n", 0);
    ck_assert_int_eq(parse_text(text, &err, &cfg), GR_ECONFIG);
    ck_assert_uint_eq(strlen(err.value), sizeof(err.value) - 1);
    ck_assert_str_eq(err.value + sizeof(err.value) - 4, "...");
    gr_config_clear(&cfg);
}
END_TEST

/* The cookie's precedence: --cookie-file > environment > the file's cookie_file
 * > defaults (NULL: gr_cookie_resolve decides from the environment/defaults). */
START_TEST(cookie_precedence)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("cookie.ini", "[node]\ncookie_file = /etc/girder/cookie\n");

    /* the file's cookie_file: used unless the environment gives a cookie */
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path), 0);
    ck_assert_str_eq(gr_config_cookie_path(&cfg, NULL, NULL), "/etc/girder/cookie");
    ck_assert_str_eq(gr_config_cookie_path(&cfg, NULL, ""), "/etc/girder/cookie");
    ck_assert_ptr_null(gr_config_cookie_path(&cfg, "secret", NULL));
    ck_assert_ptr_null(gr_config_cookie_path(&cfg, "", NULL)); /* set, empty: refused later */
    ck_assert_ptr_null(gr_config_cookie_path(&cfg, NULL, "/run/secrets/cookie"));
    gr_config_clear(&cfg);

    /* --cookie-file wins over the environment, before or after -c */
    ck_assert_int_eq(LOAD(&err, &cfg, "--cookie-file", "/flag", "-c", (char *)path), 0);
    ck_assert_str_eq(gr_config_cookie_path(&cfg, "secret", "/run/secrets/cookie"), "/flag");
    ck_assert_str_eq(gr_config_cookie_path(&cfg, NULL, NULL), "/flag");
    gr_config_clear(&cfg);

    /* nothing configured: the environment and the defaults decide */
    ck_assert_int_eq(LOAD(&err, &cfg, "--listen", "127.0.0.1:0"), 0);
    ck_assert_ptr_null(gr_config_cookie_path(&cfg, NULL, NULL));
    ck_assert_ptr_null(gr_config_cookie_path(&cfg, "secret", NULL));
    gr_config_clear(&cfg);

    /* gr_config_set sets it as the file would */
    ck_assert_int_eq(gr_config_init(&cfg), 0);
    ck_assert_int_eq(gr_config_set(&cfg, "cookie_file", "/set", &err), 0);
    ck_assert_ptr_null(gr_config_cookie_path(&cfg, "secret", NULL));
    ck_assert_str_eq(gr_config_cookie_path(&cfg, NULL, NULL), "/set");
    gr_config_clear(&cfg);
}
END_TEST

/* --http and its companions: HOST:PORT (port 0 allowed), flag over file; off
 * by default; booleans in their spellings; bad values refused by name; the
 * usage offers them. */
START_TEST(http_options)
{
    gr_config cfg;
    gr_config_error err;
    char buf[8192];
    FILE *f;

    ck_assert_int_eq(gr_config_init(&cfg), 0);
    ck_assert_ptr_null(cfg.http_host);
    ck_assert(!cfg.http_require_token && !cfg.http_protect_metrics);
    gr_config_clear(&cfg);

    ck_assert_int_eq(LOAD(&err, &cfg, "--http", "0.0.0.0:4380", "--http-token-file", "/t",
                          "--http-require-token", "yes", "--http-protect-metrics", "ON"),
                     0);
    ck_assert_str_eq(cfg.http_host, "0.0.0.0");
    ck_assert_uint_eq(cfg.http_port, 4380);
    ck_assert_str_eq(cfg.http_token_file, "/t");
    ck_assert(cfg.http_require_token && cfg.http_protect_metrics);
    gr_config_clear(&cfg);

    ck_assert_int_eq(parse_text("[node]\nhttp = [::1]:0\nhttp_require_token = false\n"
                                "http_protect_metrics = 0\nhttp_token_file = /x\n",
                                &err, &cfg),
                     0);
    ck_assert_str_eq(cfg.http_host, "::1");
    ck_assert_uint_eq(cfg.http_port, 0);
    ck_assert(!cfg.http_require_token && !cfg.http_protect_metrics);
    ck_assert_str_eq(cfg.http_token_file, "/x");
    gr_config_clear(&cfg);

    /* flag over file */
    ck_assert_int_eq(LOAD(&err, &cfg, "-c",
                          (char *)write_file("http.ini", "[node]\nhttp = 127.0.0.1:1\n"), "--http",
                          "127.0.0.2:2"),
                     0);
    ck_assert_str_eq(cfg.http_host, "127.0.0.2");
    ck_assert_uint_eq(cfg.http_port, 2);
    gr_config_clear(&cfg);

    ck_assert_int_eq(LOAD(&err, &cfg, "--http", "nohostport"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EADDR);
    ck_assert_str_eq(err.key, "--http");
    ck_assert_int_eq(LOAD(&err, &cfg, "--http", "127.0.0.1:70000"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EPORT);
    expect_ini_error("[node]\nhttp_require_token = maybe\n", GR_CONFIG_EBOOL, 2,
                     "http_require_token");
    ck_assert_int_eq(LOAD(&err, &cfg, "--http-protect-metrics", "2"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EBOOL);

    f = fmemopen(buf, sizeof(buf), "w");
    ck_assert_ptr_nonnull(f);
    gr_config_usage(f, "girderd");
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "--http HOST:PORT"));
    ck_assert_ptr_nonnull(strstr(buf, "--http-token-file"));
}
END_TEST

/* --data-dir and data_dir: a path kept as given (flag over file); empty and
 * overlong values are refused by name. */
START_TEST(data_dir)
{
    gr_config cfg;
    gr_config_error err;
    char text[128], long_dir[GR_CONFIG_DATA_DIR_MAX + 2];

    ck_assert_int_eq(LOAD(&err, &cfg, "--log-level", "info"), 0);
    ck_assert_ptr_null(cfg.data_dir);
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "--data-dir", "/var/lib/girder"), 0);
    ck_assert_str_eq(cfg.data_dir, "/var/lib/girder");
    gr_config_clear(&cfg);
    snprintf(text, sizeof(text), "[node]\ndata_dir = rel/dir\n");
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)write_file("dd.ini", text)), 0);
    ck_assert_str_eq(cfg.data_dir, "rel/dir");
    gr_config_clear(&cfg);
    ck_assert_int_eq(
        LOAD(&err, &cfg, "-c", (char *)write_file("dd.ini", text), "--data-dir", "/flag"), 0);
    ck_assert_str_eq(cfg.data_dir, "/flag");
    gr_config_clear(&cfg);
    ck_assert_int_eq(LOAD(&err, &cfg, "--data-dir", ""), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EEMPTY);
    ck_assert_str_eq(err.key, "--data-dir");
    memset(long_dir, 'd', sizeof(long_dir) - 1);
    long_dir[sizeof(long_dir) - 1] = '\0';
    ck_assert_int_eq(LOAD(&err, &cfg, "--data-dir", long_dir), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_ELONG);
}
END_TEST

/* observer_key_file, log_format, ready_wait_seeds_ms: defaults, file, flags,
 * bad values. */
START_TEST(roles_logs_readiness)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("roles.ini", "[node]\n"
                                               "observer_key_file = /etc/girder/observer\n"
                                               "log_format = json\n"
                                               "ready_wait_seeds_ms = 0\n");

    ck_assert_int_eq(gr_config_init(&cfg), 0);
    ck_assert_ptr_null(cfg.observer_key_file);
    ck_assert(!cfg.log_json);
    ck_assert_uint_eq(cfg.ready_wait_seeds_ms, GR_CONFIG_READY_WAIT_DEFAULT_MS);
    gr_config_clear(&cfg);

    ck_assert_int_eq(LOAD(&err, &cfg, "--config", (char *)path), 0);
    ck_assert_str_eq(cfg.observer_key_file, "/etc/girder/observer");
    ck_assert(cfg.log_json);
    ck_assert_uint_eq(cfg.ready_wait_seeds_ms, 0);
    gr_config_clear(&cfg);

    ck_assert_int_eq(LOAD(&err, &cfg, "--config", (char *)path, "--log-format", "text",
                          "--observer-key-file", "/o", "--ready-wait-seeds-ms", "600000"),
                     0);
    ck_assert_str_eq(cfg.observer_key_file, "/o");
    ck_assert(!cfg.log_json);
    ck_assert_uint_eq(cfg.ready_wait_seeds_ms, 600000);

    const char *bad_fmt[] = {"JSON", "xml", "text "};
    for (size_t i = 0; i < sizeof(bad_fmt) / sizeof(bad_fmt[0]); i++) {
        ck_assert_int_eq(gr_config_set(&cfg, "log_format", bad_fmt[i], &err), GR_ECONFIG);
        ck_assert_int_eq(err.reason, GR_CONFIG_EFORMAT);
    }
    const char *bad_wait[] = {"600001", "-1", "5s", "1234567"};
    for (size_t i = 0; i < sizeof(bad_wait) / sizeof(bad_wait[0]); i++) {
        ck_assert_int_eq(gr_config_set(&cfg, "ready_wait_seeds_ms", bad_wait[i], &err), GR_ECONFIG);
        ck_assert_int_eq(err.reason, GR_CONFIG_EREADYWAIT);
        ck_assert_uint_eq(cfg.ready_wait_seeds_ms, 600000); /* unchanged on failure */
    }
    gr_config_clear(&cfg);
}
END_TEST

START_TEST(discover_dns)
{
    gr_config cfg;
    gr_config_error err;
    const char *path = write_file("disc.ini", "[node]\n"
                                              "discover_dns = girder, girder.svc.local:4371\n"
                                              "discover_dns = k8s-headless\n"
                                              "discover_interval_ms = 1500\n");
    char text[64 * 20] = "[node]\n";

    /* defaults: none, every 5 s */
    ck_assert_int_eq(LOAD(&err, &cfg, "--log-level", "info"), 0);
    ck_assert_uint_eq(cfg.ndiscover, 0);
    ck_assert_uint_eq(cfg.discover_ms, GR_CONFIG_DISCOVER_DEFAULT_MS);
    gr_config_clear(&cfg);

    /* the file: comma lists and repeated lines accumulate; no port = 0 (ours) */
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path), 0);
    ck_assert_uint_eq(cfg.ndiscover, 3);
    ck_assert_str_eq(cfg.discover[0].name, "girder");
    ck_assert_uint_eq(cfg.discover[0].port, 0);
    ck_assert_str_eq(cfg.discover[1].name, "girder.svc.local");
    ck_assert_uint_eq(cfg.discover[1].port, 4371);
    ck_assert_str_eq(cfg.discover[2].name, "k8s-headless");
    ck_assert_uint_eq(cfg.discover_ms, 1500);
    gr_config_clear(&cfg);

    /* flags replace the file's list (the first --discover-dns), and repeat */
    ck_assert_int_eq(LOAD(&err, &cfg, "-c", (char *)path, "--discover-dns", "a:1",
                          "--discover-dns=b", "--discover-interval-ms", "100"),
                     0);
    ck_assert_uint_eq(cfg.ndiscover, 2);
    ck_assert_str_eq(cfg.discover[0].name, "a");
    ck_assert_uint_eq(cfg.discover[0].port, 1);
    ck_assert_str_eq(cfg.discover[1].name, "b");
    ck_assert_uint_eq(cfg.discover_ms, 100);
    gr_config_clear(&cfg);

    /* bad values: the name, the port, the interval, an empty list entry */
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-dns", "-bad"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EDISCOVER);
    ck_assert_str_eq(err.key, "--discover-dns");
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-dns", "name@host"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EDISCOVER);
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-dns", "h:0"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EPORT);
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-dns", "h:"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EPORT);
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-dns", "h:65536"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EPORT);
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-interval-ms", "99"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EDISCOVERMS);
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-interval-ms", "3600001"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EDISCOVERMS);
    ck_assert_int_eq(LOAD(&err, &cfg, "--discover-interval-ms", "5s"), GR_ECONFIG);
    ck_assert_int_eq(err.reason, GR_CONFIG_EDISCOVERMS);
    expect_ini_error("[node]\ndiscover_dns = a,,b\n", GR_CONFIG_EDISCOVER, 2, "discover_dns");
    expect_ini_error("[node]\ndiscover_interval_ms = 1000\ndiscover_interval_ms = 2000\n",
                     GR_CONFIG_EDUP, 3, "discover_interval_ms");

    /* at most GR_CONFIG_DISCOVER_MAX names, then an error naming the key */
    for (int i = 0; i <= GR_CONFIG_DISCOVER_MAX; i++) {
        char line[64];

        snprintf(line, sizeof(line), "discover_dns = n%d\n", i);
        strcat(text, line);
    }
    expect_ini_error(text, GR_CONFIG_ETOOMANYDISCOVER, GR_CONFIG_DISCOVER_MAX + 2, "discover_dns");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *good = gr_test_tcase(s, "good", setup, teardown, 0);
    TCase *bad = gr_test_tcase(s, "bad", setup, teardown, 0);

    gr_test_add(good, defaults, full_file, flags_override_file, help_and_version, set_one_key,
                validators, cookie_precedence, plugins_file_and_flags, data_dir,
                roles_logs_readiness, discover_dns, accept_cookie_files);

    gr_test_add(bad, err_unknown_section, err_key_outside_section, err_unknown_key,
                err_duplicate_key, err_bad_value, err_bad_port, err_bad_node_name,
                err_schedulers_range, err_syntax, err_long_line_and_nul, err_too_many_seeds,
                err_unreadable_file, err_file_via_load_names_line, err_flags,
                error_value_is_sanitised, http_options);
    return s;
}

int main(void)
{
    return gr_test_run(config_suite);
}
