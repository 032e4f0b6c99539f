/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - girderd's configuration (config.h): defaults, the INI file read
 * through libinih, the command-line flags, validation of every value, and the
 * usage text.
 *
 * Design notes
 * - One table (`keys`) describes every setting: its INI key, its flag, the
 *   setter that validates and stores it, and its help line. The INI handler, the
 *   flag parser and gr_config_usage all walk that table, so a new setting is one
 *   row and one setter.
 * - libinih calls its handler without a line number, so we feed it through
 *   ini_parse_stream with our own line reader that counts lines. The reader also
 *   strips leading blanks (so an indented key is never taken as a multi-line
 *   continuation of the previous value), rejects over-long lines and NUL bytes
 *   instead of letting libinih split or truncate them, and checks each
 *   [section] header, since libinih only reports sections through their keys.
 * - Only the first error is reported, with the file, line, section, key and
 *   value that caused it; gr_config_error_print formats it at the boundary.
 */
#include "config/config.h"

#include "gr_version.h"
#include "proto/err.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_NAME "girder@127.0.0.1"
#define DEFAULT_LISTEN_HOST "127.0.0.1"
#define NODE_NAME_MAX 255 /* = GR_TERM_NODE_MAX: a pid carries the node name */
#define HOST_MAX 253      /* longest DNS name */

/* A setter validates `v` and stores it in cfg. 0, GR_ECONFIG with *why set, or
 * -ENOMEM. cfg is unchanged on failure. */
typedef int (*setter_fn)(gr_config *cfg, const char *v, gr_config_reason *why);

typedef struct key_def {
    const char *key;     /* INI key in [node] */
    const char *flag;    /* long flag, without "--" */
    const char *metavar; /* flag argument in usage */
    const char *help;    /* usage text */
    const char *dflt;    /* default, as shown in usage */
    setter_fn set;       /* validate and store */
    bool repeatable;     /* accumulates (seeds) instead of "set twice" */
} key_def;

static int set_name(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_listen(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_cookie_file(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_seeds(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_http(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_http_token_file(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_http_require_token(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_http_protect_metrics(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_data_dir(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_schedulers(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_log_level(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_detection_ms(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_cipher(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_plugin(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_link_high_water(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_redis(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_redis_password_file(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_redis_table(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_observer_key_file(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_log_format(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_ready_wait_seeds_ms(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_discover_dns(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_discover_interval(gr_config *cfg, const char *v, gr_config_reason *why);
static int set_accept_cookie_file(gr_config *cfg, const char *v, gr_config_reason *why);

static const key_def keys[] = {
    {"name", "name", "NAME@HOST", "node name", DEFAULT_NAME, set_name, false},
    {"listen", "listen", "HOST:PORT", "cluster address to listen on (port 0: any free port)",
     "127.0.0.1:4370", set_listen, false},
    {"cookie_file", "cookie-file", "FILE", "file holding the cluster cookie", "$GIRDER_COOKIE",
     set_cookie_file, false},
    {"accept_cookie_file", "accept-cookie-file", "FILE",
     "file holding a further cookie peers may prove (cookie rotation; a missing file accepts "
     "nothing; re-read on SIGHUP); repeatable, up to 4",
     "none", set_accept_cookie_file, true},
    {"seeds", "seed", "NAME@HOST:PORT", "node to contact at start; repeatable", "none", set_seeds,
     true},
    {"discover_dns", "discover-dns", "NAME[:PORT]",
     "DNS name whose addresses are all candidate members, looked up periodically (port: "
     "this node's listen port); repeatable",
     "none", set_discover_dns, true},
    {"discover_interval_ms", "discover-interval-ms", "MS",
     "how often discover_dns names are looked up (100..3600000)", "5000", set_discover_interval,
     false},
    {"data_dir", "data-dir", "DIR",
     "directory of the disk tables (created with mode 0700 if missing)",
     "none: disk tables refused", set_data_dir, false},
    {"http", "http", "HOST:PORT",
     "HTTP listener: /metrics, /healthz, /readyz, /api, the dashboard (docs/http.md)", "off",
     set_http, false},
    {"http_token_file", "http-token-file", "FILE",
     "bearer token for the HTTP API and dashboard (owner-only file); needed off loopback", "none",
     set_http_token_file, false},
    {"http_require_token", "http-require-token", "BOOL",
     "ask for the HTTP token on a loopback address too", "false", set_http_require_token, false},
    {"http_protect_metrics", "http-protect-metrics", "BOOL",
     "/metrics, /healthz and /readyz need the HTTP token too", "false", set_http_protect_metrics,
     false},
    {"schedulers", "schedulers", "N", "scheduler threads, 1..255 or auto", "auto: one per core",
     set_schedulers, false},
    {"log_level", "log-level", "LEVEL", "debug, info, notice, warn or error", "info", set_log_level,
     false},
    {"detection_ms", "detection-ms", "MS",
     "a silent link or hung peer is declared down after MS (300..600000)", "3000", set_detection_ms,
     false},
    {"link_high_water", "link-high-water", "BYTES",
     "bytes queued for a peer before its senders are suspended (256K..1G; the link is closed at "
     "8 times that)",
     "64M", set_link_high_water, false},
    {"cipher", "cipher", "NAME",
     "link cipher: auto (AES-128-OCB where both ends have AES instructions, else "
     "ChaCha20-Poly1305) or chacha20-poly1305",
     "auto", set_cipher, false},
    /* In the file: `load = PATH` lines of [plugins] (ini_handle). Flags add to
     * the file's list. */
    {"plugin", "plugin", "PATH", "plugin (.so) to load at start; repeatable", "none", set_plugin,
     true},
    /* The Redis listener (docs/redis.md). */
    {"redis", "redis", "HOST:PORT",
     "serve the Redis protocol here (a non-loopback HOST needs a password)", "off", set_redis,
     false},
    {"redis_password_file", "redis-password-file", "FILE",
     "password of Redis clients (AUTH), first line; must not be readable by group or others",
     "none", set_redis_password_file, false},
    {"redis_table", "redis-table", "NAME", "table of Redis db 0 (db N: NAME.N)", "redis",
     set_redis_table, false},
    {"observer_key_file", "observer-key-file", "FILE",
     "file holding the observer key: a CLI proving it may only read", "none: observers refused",
     set_observer_key_file, false},
    {"log_format", "log-format", "FORMAT", "text or json (one JSON object a line)", "text",
     set_log_format, false},
    {"ready_wait_seeds_ms", "ready-wait-seeds-ms", "MS",
     "with seeds, systemd readiness waits this long for one to connect (0..600000)", "5000",
     set_ready_wait_seeds_ms, false},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
#define OPT_KEY 0x100 /* getopt_long value of keys[i] is OPT_KEY + i */

static const char *const reason_msgs[] = {
#define GR_CONFIG_REASON_STR(name, msg) msg,
    GR_CONFIG_REASON_MAP(GR_CONFIG_REASON_STR)
#undef GR_CONFIG_REASON_STR
};

const char *gr_config_reason_str(gr_config_reason reason)
{
    if ((unsigned)reason >= sizeof(reason_msgs) / sizeof(reason_msgs[0])) {
        return "unknown configuration error";
    }
    return reason_msgs[reason];
}

/* ---- errors ------------------------------------------------------------------- */

/* Copy src into dst[size], truncating with "..." and replacing control bytes, so
 * that user input printed in an error stays on one readable line. */
static void copy_field(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
    if (len > size - 1 && size > 4) {
        memcpy(dst + size - 4, "...", 4);
    }
}

static void err_reset(gr_config_error *err)
{
    memset(err, 0, sizeof(*err));
}

/* Record an error in *err (first one wins) and return GR_ECONFIG. Any of file,
 * section, key, value may be NULL. */
static int fail(gr_config_error *err, gr_config_reason reason, const char *file, unsigned line,
                const char *section, const char *key, const char *value)
{
    if (err->reason != GR_CONFIG_OK) {
        return GR_ECONFIG;
    }
    err->reason = reason;
    err->file = file;
    err->line = line;
    if (section) {
        copy_field(err->section, sizeof(err->section), section, strlen(section));
    }
    if (key) {
        copy_field(err->key, sizeof(err->key), key, strlen(key));
    }
    if (value) {
        copy_field(err->value, sizeof(err->value), value, strlen(value));
    }
    return GR_ECONFIG;
}

void gr_config_error_print(FILE *f, const char *prog, const gr_config_error *err)
{
    bool cmdline = err->file == NULL;

    fprintf(f, "%s: ", prog);
    if (err->file) {
        fprintf(f, "%s:", err->file);
        if (err->line) {
            fprintf(f, "%u:", err->line);
        }
        fputc(' ', f);
    }
    if (err->key[0] && !cmdline) {
        if (err->section[0]) {
            fprintf(f, "[%s] ", err->section);
        }
        fprintf(f, "%s = '%s': ", err->key, err->value);
    } else if (err->key[0]) {
        fprintf(f, "%s", err->key);
        if (err->value[0]) {
            fprintf(f, " '%s'", err->value);
        }
        fputs(": ", f);
    } else if (err->section[0]) {
        fprintf(f, "[%s]: ", err->section);
    } else if (err->value[0]) {
        fprintf(f, "'%s': ", err->value);
    }
    fputs(gr_config_reason_str(err->reason), f);
    if (err->sys_err) {
        fprintf(f, ": %s", strerror(-err->sys_err));
    }
    if (cmdline && (err->reason == GR_CONFIG_EOPTION || err->reason == GR_CONFIG_ENOARG ||
                    err->reason == GR_CONFIG_EOPERAND)) {
        fputs(" (try --help)", f);
    }
    fputc('\n', f);
}

/* ---- validation ------------------------------------------------------------------ */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A DNS name or IPv4 literal: [A-Za-z0-9.-], starting and ending alphanumeric. */
static bool host_ok(const char *h, size_t n)
{
    if (n == 0 || n > HOST_MAX || !is_alnum(h[0]) || !is_alnum(h[n - 1])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(h[i]) && h[i] != '-' && h[i] != '.') {
            return false;
        }
    }
    return true;
}

/* An IPv6 literal (without brackets): hex digits, ':' and '.', at least one ':'. */
static bool ipv6_ok(const char *h, size_t n)
{
    bool colon = false;

    if (n < 2 || n > 45) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (h[i] == ':') {
            colon = true;
        } else if (!is_hex(h[i]) && h[i] != '.') {
            return false;
        }
    }
    return colon;
}

int gr_config_check_node(const char *s)
{
    const char *at = strchr(s, '@');
    size_t len = strlen(s);

    if (!at || at == s || len > NODE_NAME_MAX) {
        return GR_EBADNODE;
    }
    for (const char *p = s; p < at; p++) {
        if (!is_alnum(*p) && *p != '_' && *p != '-') {
            return GR_EBADNODE;
        }
    }
    if (!host_ok(at + 1, len - (size_t)(at + 1 - s))) {
        return GR_EBADNODE;
    }
    return 0;
}

/* Parse a decimal port: 1..5 digits, no sign or blanks, <= 65535, and > 0 unless
 * allow_zero. 0 and *ret_port, or -ERANGE. */
static int parse_port(const char *p, bool allow_zero, uint16_t *ret_port)
{
    unsigned long v = 0;
    size_t n = strlen(p);

    if (n == 0 || n > 5) {
        return -ERANGE;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            return -ERANGE;
        }
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535 || (v == 0 && !allow_zero)) {
        return -ERANGE;
    }
    *ret_port = (uint16_t)v;
    return 0;
}

int gr_config_split_hostport(const char *s, bool allow_zero, char **ret_host, uint16_t *ret_port)
{
    const char *host, *port;
    size_t hlen;
    uint16_t pnum;
    char *copy;
    int r;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            return -EINVAL;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        if (!ipv6_ok(host, hlen)) {
            return -EINVAL;
        }
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            return -EINVAL;
        }
        host = s;
        hlen = (size_t)(colon - s);
        if (!host_ok(host, hlen)) {
            return -EINVAL; /* also rejects an unbracketed IPv6 address */
        }
        port = colon + 1;
    }
    if ((r = parse_port(port, allow_zero, &pnum)) < 0) {
        return r;
    }
    if (!(copy = strndup(host, hlen))) {
        return -ENOMEM;
    }
    *ret_host = copy;
    *ret_port = pnum;
    return 0;
}

/* ---- setters ------------------------------------------------------------------------ */

/* Replace *slot by a copy of v. 0 or -ENOMEM (slot unchanged). */
static int replace_str(char **slot, const char *v)
{
    char *copy = strdup(v);

    if (!copy) {
        return -ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static int set_name(gr_config *cfg, const char *v, gr_config_reason *why)
{
    if (gr_config_check_node(v) < 0) {
        *why = GR_CONFIG_ENODE;
        return GR_ECONFIG;
    }
    return replace_str(&cfg->name, v);
}

/* Validate HOST:PORT (port 0 allowed) and store it in the two slots. */
static int set_addr(char **host_slot, uint16_t *port_slot, const char *v, gr_config_reason *why)
{
    char *host;
    uint16_t port;
    int r;

    if ((r = gr_config_split_hostport(v, true, &host, &port)) < 0) {
        if (r == -ENOMEM) {
            return r;
        }
        *why = r == -ERANGE ? GR_CONFIG_EPORT : GR_CONFIG_EADDR;
        return GR_ECONFIG;
    }
    free(*host_slot);
    *host_slot = host;
    *port_slot = port;
    return 0;
}

static int set_listen(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return set_addr(&cfg->listen_host, &cfg->listen_port, v, why);
}

static int set_redis(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return set_addr(&cfg->redis_host, &cfg->redis_port, v, why);
}

static int set_redis_password_file(gr_config *cfg, const char *v, gr_config_reason *why)
{
    if (v[0] == '\0') {
        *why = GR_CONFIG_EEMPTY;
        return GR_ECONFIG;
    }
    return replace_str(&cfg->redis_password_file, v);
}

static int set_redis_table(gr_config *cfg, const char *v, gr_config_reason *why)
{
    if (v[0] == '\0') {
        *why = GR_CONFIG_EEMPTY;
        return GR_ECONFIG;
    }
    return replace_str(&cfg->redis_table, v);
}

static int set_cookie_file(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return replace_str(&cfg->cookie_file, v);
}

/* Read at start (daemon.c), where its mode is checked like the cookie's. */
static int set_observer_key_file(gr_config *cfg, const char *v, gr_config_reason *why)
{
    if (v[0] == '\0') {
        *why = GR_CONFIG_EEMPTY;
        return GR_ECONFIG;
    }
    return replace_str(&cfg->observer_key_file, v);
}

static int set_log_format(gr_config *cfg, const char *v, gr_config_reason *why)
{
    if (strcmp(v, "text") == 0) {
        cfg->log_json = false;
    } else if (strcmp(v, "json") == 0) {
        cfg->log_json = true;
    } else {
        *why = GR_CONFIG_EFORMAT;
        return GR_ECONFIG;
    }
    return 0;
}

static int set_ready_wait_seeds_ms(gr_config *cfg, const char *v, gr_config_reason *why)
{
    unsigned long n = 0;
    size_t len = strlen(v);

    for (size_t i = 0; i < len && len <= 6; i++) {
        if (!is_digit(v[i])) {
            len = 0;
            break;
        }
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    if (len == 0 || len > 6 || n > GR_CONFIG_READY_WAIT_MAX_MS) {
        *why = GR_CONFIG_EREADYWAIT;
        return GR_ECONFIG;
    }
    cfg->ready_wait_seeds_ms = (unsigned)n;
    return 0;
}

/* --http HOST:PORT (port 0: any free port). */
static int set_http(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return set_addr(&cfg->http_host, &cfg->http_port, v, why);
}

static int set_http_token_file(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return replace_str(&cfg->http_token_file, v);
}

/* true/yes/on/1 or false/no/off/0, any case. */
static int set_bool(bool *slot, const char *v, gr_config_reason *why)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *slot = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    *why = GR_CONFIG_EBOOL;
    return GR_ECONFIG;
}

static int set_http_require_token(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return set_bool(&cfg->http_require_token, v, why);
}

static int set_http_protect_metrics(gr_config *cfg, const char *v, gr_config_reason *why)
{
    return set_bool(&cfg->http_protect_metrics, v, why);
}

/* A path, not checked here: the node creates it (or refuses to start) when the
 * tables open it. Empty and overlong values are refused now. */
static int set_data_dir(gr_config *cfg, const char *v, gr_config_reason *why)
{
    size_t len = strlen(v);

    if (len == 0 || len > GR_CONFIG_DATA_DIR_MAX) {
        *why = len == 0 ? GR_CONFIG_EEMPTY : GR_CONFIG_ELONG;
        return GR_ECONFIG;
    }
    return replace_str(&cfg->data_dir, v);
}

static int set_schedulers(gr_config *cfg, const char *v, gr_config_reason *why)
{
    unsigned long n = 0;
    size_t len = strlen(v);

    if (strcmp(v, "auto") == 0) {
        cfg->schedulers = 0;
        return 0;
    }
    if (len == 0 || len > 3) {
        *why = GR_CONFIG_ERANGE;
        return GR_ECONFIG;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(v[i])) {
            *why = GR_CONFIG_ERANGE;
            return GR_ECONFIG;
        }
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    if (n < 1 || n > GR_CONFIG_SCHED_MAX) {
        *why = GR_CONFIG_ERANGE;
        return GR_ECONFIG;
    }
    cfg->schedulers = (unsigned)n;
    return 0;
}

static int set_detection_ms(gr_config *cfg, const char *v, gr_config_reason *why)
{
    unsigned long n = 0;
    size_t len = strlen(v);

    if (len == 0 || len > 6) {
        *why = GR_CONFIG_EDETECTION;
        return GR_ECONFIG;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(v[i])) {
            *why = GR_CONFIG_EDETECTION;
            return GR_ECONFIG;
        }
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    if (n < GR_CONFIG_DETECTION_MIN_MS || n > GR_CONFIG_DETECTION_MAX_MS) {
        *why = GR_CONFIG_EDETECTION;
        return GR_ECONFIG;
    }
    cfg->detection_ms = (unsigned)n;
    return 0;
}

/* Digits with an optional binary suffix K, M or G (upper or lower case). */
static int set_link_high_water(gr_config *cfg, const char *v, gr_config_reason *why)
{
    uint64_t n = 0;
    size_t len = strlen(v), i;
    unsigned shift = 0;

    for (i = 0; i < len && i < 11 && is_digit(v[i]); i++) {
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (i + 1 == len) {
        switch (v[i]) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
        i += shift != 0;
    }
    /* 11 digits at most: no overflow, even shifted by 30 */
    if (i == 0 || i != len || (n << shift) < GR_CONFIG_HIGH_WATER_MIN ||
        (n << shift) > GR_CONFIG_HIGH_WATER_MAX) {
        *why = GR_CONFIG_EHIGHWATER;
        return GR_ECONFIG;
    }
    cfg->link_high_water = n << shift;
    return 0;
}

static int set_cipher(gr_config *cfg, const char *v, gr_config_reason *why)
{
    if (strcmp(v, "auto") == 0) {
        cfg->cipher_fast = true;
    } else if (strcmp(v, "chacha20-poly1305") == 0) {
        cfg->cipher_fast = false;
    } else {
        *why = GR_CONFIG_ECIPHER;
        return GR_ECONFIG;
    }
    return 0;
}

static int set_log_level(gr_config *cfg, const char *v, gr_config_reason *why)
{
    enum gr_log_level level;

    if (gr_log_parse_level(v, &level) < 0) {
        *why = GR_CONFIG_ELEVEL;
        return GR_ECONFIG;
    }
    cfg->log_level = level;
    return 0;
}

static void seed_clear(gr_config_seed *s)
{
    free(s->node);
    free(s->host);
    memset(s, 0, sizeof(*s));
}

/* Parse one "NAME@HOST:PORT" (len bytes at s) into *ret_seed. */
static int parse_seed(const char *s, size_t len, gr_config_reason *why, gr_config_seed *ret_seed)
{
    char *text = strndup(s, len);
    char *at, *colon;
    gr_config_seed seed = {0};
    uint16_t port;
    int r = GR_ECONFIG;

    if (!text) {
        return -ENOMEM;
    }
    at = strchr(text, '@');
    colon = strrchr(text, ':');
    if (!at || !colon || colon < at) {
        *why = GR_CONFIG_ESEED;
        goto out;
    }
    *colon = '\0';
    if (gr_config_check_node(text) < 0) {
        *why = GR_CONFIG_ENODE;
        goto out;
    }
    if (parse_port(colon + 1, false, &port) < 0) {
        *why = GR_CONFIG_EPORT;
        goto out;
    }
    seed.port = port;
    if (!(seed.node = strdup(text)) || !(seed.host = strdup(at + 1))) {
        seed_clear(&seed);
        r = -ENOMEM;
        goto out;
    }
    *ret_seed = seed;
    r = 0;
out:
    free(text);
    return r;
}

/* Append every comma-separated seed in v. All or nothing: on failure the list is
 * as before. */
static int set_seeds(gr_config *cfg, const char *v, gr_config_reason *why)
{
    size_t old = cfg->nseeds;
    const char *p = v;
    int r = 0;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        gr_config_seed *grown;

        while (len && (*p == ' ' || *p == '\t')) {
            p++, len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (cfg->nseeds >= GR_CONFIG_SEEDS_MAX) {
            *why = GR_CONFIG_ETOOMANYSEEDS;
            r = GR_ECONFIG;
            break;
        }
        grown = realloc(cfg->seeds, (cfg->nseeds + 1) * sizeof(*grown));
        if (!grown) {
            r = -ENOMEM;
            break;
        }
        cfg->seeds = grown;
        if ((r = parse_seed(p, len, why, &cfg->seeds[cfg->nseeds])) < 0) {
            break;
        }
        cfg->nseeds++;
        if (!end) {
            break;
        }
        p = end + 1;
    }
    if (r < 0) {
        while (cfg->nseeds > old) {
            seed_clear(&cfg->seeds[--cfg->nseeds]);
        }
    }
    return r;
}

static void discover_clear(gr_config *cfg)
{
    for (size_t i = 0; i < cfg->ndiscover; i++) {
        free(cfg->discover[i].name);
    }
    free(cfg->discover);
    cfg->discover = NULL;
    cfg->ndiscover = 0;
}

/* Parse one "NAME" or "NAME:PORT" (len bytes at s) into *ret. */
static int parse_dns(const char *s, size_t len, gr_config_reason *why, gr_config_dns *ret)
{
    const char *colon = memchr(s, ':', len);
    size_t hlen = colon ? (size_t)(colon - s) : len;
    uint16_t port = 0;
    char portbuf[8];

    if (!host_ok(s, hlen)) {
        *why = GR_CONFIG_EDISCOVER;
        return GR_ECONFIG;
    }
    if (colon) {
        size_t plen = len - hlen - 1;

        if (plen == 0 || plen >= sizeof(portbuf)) {
            *why = GR_CONFIG_EPORT;
            return GR_ECONFIG;
        }
        memcpy(portbuf, colon + 1, plen);
        portbuf[plen] = '\0';
        if (parse_port(portbuf, false, &port) < 0) {
            *why = GR_CONFIG_EPORT;
            return GR_ECONFIG;
        }
    }
    if (!(ret->name = strndup(s, hlen))) {
        return -ENOMEM;
    }
    ret->port = port;
    return 0;
}

/* Append every comma-separated NAME[:PORT] in v. All or nothing. */
static int set_discover_dns(gr_config *cfg, const char *v, gr_config_reason *why)
{
    size_t old = cfg->ndiscover;
    const char *p = v;
    int r = 0;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        gr_config_dns *grown;

        while (len && (*p == ' ' || *p == '\t')) {
            p++, len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (cfg->ndiscover >= GR_CONFIG_DISCOVER_MAX) {
            *why = GR_CONFIG_ETOOMANYDISCOVER;
            r = GR_ECONFIG;
            break;
        }
        if (!(grown = realloc(cfg->discover, (cfg->ndiscover + 1) * sizeof(*grown)))) {
            r = -ENOMEM;
            break;
        }
        cfg->discover = grown;
        if ((r = parse_dns(p, len, why, &cfg->discover[cfg->ndiscover])) < 0) {
            break;
        }
        cfg->ndiscover++;
        if (!end) {
            break;
        }
        p = end + 1;
    }
    if (r < 0) {
        while (cfg->ndiscover > old) {
            free(cfg->discover[--cfg->ndiscover].name);
        }
    }
    return r;
}

static int set_discover_interval(gr_config *cfg, const char *v, gr_config_reason *why)
{
    unsigned long n = 0;
    size_t len = strlen(v);

    for (size_t i = 0; i < len; i++) {
        if (!is_digit(v[i]) || len > 7) {
            *why = GR_CONFIG_EDISCOVERMS;
            return GR_ECONFIG;
        }
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    if (n < GR_CONFIG_DISCOVER_MIN_MS || n > GR_CONFIG_DISCOVER_MAX_MS) {
        *why = GR_CONFIG_EDISCOVERMS;
        return GR_ECONFIG;
    }
    cfg->discover_ms = (unsigned)n;
    return 0;
}

static int set_plugin(gr_config *cfg, const char *v, gr_config_reason *why)
{
    char **grown, *copy;

    if (cfg->nplugins >= GR_CONFIG_PLUGINS_MAX) {
        *why = GR_CONFIG_ETOOMANYPLUGINS;
        return GR_ECONFIG;
    }
    if (!(copy = strdup(v))) {
        return -ENOMEM;
    }
    if (!(grown = realloc(cfg->plugins, (cfg->nplugins + 1) * sizeof(*grown)))) {
        free(copy);
        return -ENOMEM;
    }
    cfg->plugins = grown;
    cfg->plugins[cfg->nplugins++] = copy;
    return 0;
}

/* Flags add to the file's list, as for plugins. Read at start and on SIGHUP
 * (daemon.c), where the mode is checked like the cookie's. */
static int set_accept_cookie_file(gr_config *cfg, const char *v, gr_config_reason *why)
{
    char **grown, *copy;

    if (v[0] == '\0') {
        *why = GR_CONFIG_EEMPTY;
        return GR_ECONFIG;
    }
    if (cfg->naccept >= GR_CONFIG_ACCEPT_MAX) {
        *why = GR_CONFIG_ETOOMANYACCEPT;
        return GR_ECONFIG;
    }
    if (!(copy = strdup(v))) {
        return -ENOMEM;
    }
    if (!(grown = realloc(cfg->accept_cookie_files, (cfg->naccept + 1) * sizeof(*grown)))) {
        free(copy);
        return -ENOMEM;
    }
    cfg->accept_cookie_files = grown;
    cfg->accept_cookie_files[cfg->naccept++] = copy;
    return 0;
}

static void plugins_clear(gr_config *cfg)
{
    for (size_t i = 0; i < cfg->nplugins; i++) {
        free(cfg->plugins[i]);
    }
    free(cfg->plugins);
    cfg->plugins = NULL;
    cfg->nplugins = 0;
}

static void seeds_clear(gr_config *cfg)
{
    for (size_t i = 0; i < cfg->nseeds; i++) {
        seed_clear(&cfg->seeds[i]);
    }
    free(cfg->seeds);
    cfg->seeds = NULL;
    cfg->nseeds = 0;
}

/* Checks common to every key, then the key's setter. */
static int apply(gr_config *cfg, const key_def *kd, const char *v, gr_config_reason *why)
{
    size_t len = strlen(v);

    if (len == 0) {
        *why = GR_CONFIG_EEMPTY;
        return GR_ECONFIG;
    }
    if (len > GR_CONFIG_VALUE_MAX) {
        *why = GR_CONFIG_ELONG;
        return GR_ECONFIG;
    }
    return kd->set(cfg, v, why);
}

static const key_def *find_key(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].key, key) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* ---- the config object ---------------------------------------------------------------- */

int gr_config_init(gr_config *ret_cfg)
{
    gr_config cfg = {
        .action = GR_CONFIG_RUN,
        .listen_port = GR_CONFIG_PORT_DEFAULT,
        .schedulers = 0,
        .log_level = GR_LOG_INFO,
        .cipher_fast = true,
        .detection_ms = GR_CONFIG_DETECTION_DEFAULT_MS,
        .link_high_water = GR_CONFIG_HIGH_WATER_DEFAULT,
        .ready_wait_seeds_ms = GR_CONFIG_READY_WAIT_DEFAULT_MS,
        .discover_ms = GR_CONFIG_DISCOVER_DEFAULT_MS,
    };

    if (!(cfg.name = strdup(DEFAULT_NAME)) || !(cfg.listen_host = strdup(DEFAULT_LISTEN_HOST))) {
        gr_config_clear(&cfg);
        return -ENOMEM;
    }
    *ret_cfg = cfg;
    return 0;
}

void gr_config_clear(gr_config *cfg)
{
    if (!cfg) {
        return;
    }
    free(cfg->file);
    free(cfg->name);
    free(cfg->listen_host);
    free(cfg->cookie_file);
    free(cfg->observer_key_file);
    free(cfg->data_dir);
    free(cfg->redis_host);
    free(cfg->redis_password_file);
    free(cfg->redis_table);
    free(cfg->http_host);
    free(cfg->http_token_file);
    seeds_clear(cfg);
    discover_clear(cfg);
    plugins_clear(cfg);
    for (size_t i = 0; i < cfg->naccept; i++) {
        free(cfg->accept_cookie_files[i]);
    }
    free(cfg->accept_cookie_files);
    memset(cfg, 0, sizeof(*cfg));
}

int gr_config_set(gr_config *cfg, const char *key, const char *value, gr_config_error *err)
{
    const key_def *kd = find_key(key);
    gr_config_reason why = GR_CONFIG_OK;
    int r;

    err_reset(err);
    if (!kd) {
        return fail(err, GR_CONFIG_EKEY, NULL, 0, NULL, key, value);
    }
    if ((r = apply(cfg, kd, value, &why)) == GR_ECONFIG) {
        return fail(err, why, NULL, 0, NULL, key, value);
    }
    if (r == 0 && kd->set == set_cookie_file) {
        cfg->cookie_file_flag = false;
    }
    return r;
}

const char *gr_config_cookie_path(const gr_config *cfg, const char *env_cookie,
                                  const char *env_cookie_file)
{
    if (cfg->cookie_file_flag) {
        return cfg->cookie_file;
    }
    if (env_cookie || (env_cookie_file && env_cookie_file[0])) {
        return NULL;
    }
    return cfg->cookie_file;
}

/* ---- the INI file -------------------------------------------------------------------- */

/* State of one gr_config_parse_ini run, shared by the line reader and the
 * handler libinih calls. */
typedef struct ini_state {
    gr_config *cfg;       /* being filled */
    gr_config_error *err; /* first error */
    const char *file;     /* name for errors */
    const char *text;     /* input */
    size_t len;           /* bytes in text */
    size_t pos;           /* next unread byte */
    unsigned line;        /* lines handed to libinih so far = current line */
    unsigned seen[NKEYS]; /* line each key was first set on, 0 = not yet */
    int rc;               /* -ENOMEM once allocation failed */
} ini_state;

/* libinih's fgets-like reader: hand over the next line, left-trimmed. */
static char *ini_read_line(char *str, int num, void *stream)
{
    ini_state *st = stream;
    const char *start, *nl;
    size_t n;

    if (st->pos >= st->len || num < 4) {
        return NULL;
    }
    start = st->text + st->pos;
    nl = memchr(start, '\n', st->len - st->pos);
    n = nl ? (size_t)(nl - start) + 1 : st->len - st->pos;
    st->pos += n;
    st->line++;
    while (n && (*start == ' ' || *start == '\t')) {
        start++, n--;
    }
    if (memchr(start, '\0', n)) {
        fail(st->err, GR_CONFIG_ENUL, st->file, st->line, NULL, NULL, NULL);
        memcpy(str, ";\n", 3); /* a comment: libinih skips it */
        return str;
    }
    if (n + 1 > (size_t)num) {
        fail(st->err, GR_CONFIG_ELINE, st->file, st->line, NULL, NULL, NULL);
        memcpy(str, ";\n", 3);
        return str;
    }
    memcpy(str, start, n);
    str[n] = '\0';
    if (n > 0 && start[0] == '[') { /* n == 0: trailing blanks at the end of input */
        const char *close = memchr(start, ']', n);
        /* without ']' libinih reports the syntax error itself */
        if (close && !((size_t)(close - start) == 5 && memcmp(start + 1, "node", 4) == 0) &&
            !((size_t)(close - start) == 8 && memcmp(start + 1, "plugins", 7) == 0)) {
            char name[32];
            copy_field(name, sizeof(name), start + 1, (size_t)(close - start - 1));
            fail(st->err, GR_CONFIG_ESECTION, st->file, st->line, name, NULL, NULL);
        }
    }
    return str;
}

/* libinih's handler: one key = value. Returns 1 to go on, 0 on error. */
static int ini_handle(void *user, const char *section, const char *name, const char *value)
{
    ini_state *st = user;
    const key_def *kd;
    gr_config_reason why = GR_CONFIG_OK;
    size_t i;
    int r;

    if (st->rc < 0) {
        return 0;
    }
    if (section[0] == '\0') {
        fail(st->err, GR_CONFIG_ENOSECTION, st->file, st->line, NULL, name, value);
        return 0;
    }
    if (strcmp(section, "plugins") == 0) { /* load = PATH, repeatable */
        if (strcmp(name, "load") != 0) {
            fail(st->err, GR_CONFIG_EKEY, st->file, st->line, section, name, value);
            return 0;
        }
        kd = find_key("plugin");
    } else if (strcmp(section, "node") != 0) {
        fail(st->err, GR_CONFIG_ESECTION, st->file, st->line, section, NULL, NULL);
        return 0;
    } else if (!(kd = find_key(name)) || kd->set == set_plugin) {
        fail(st->err, GR_CONFIG_EKEY, st->file, st->line, section, name, value);
        return 0;
    }
    i = (size_t)(kd - keys);
    if (st->seen[i] && !kd->repeatable) {
        fail(st->err, GR_CONFIG_EDUP, st->file, st->line, section, name, value);
        return 0;
    }
    st->seen[i] = st->line;
    if ((r = apply(st->cfg, kd, value, &why)) == GR_ECONFIG) {
        fail(st->err, why, st->file, st->line, section, name, value);
        return 0;
    }
    if (r < 0) {
        st->rc = r;
        return 0;
    }
    if (kd->set == set_cookie_file) {
        st->cfg->cookie_file_flag = false;
    }
    return 1;
}

int gr_config_parse_ini(gr_config *cfg, const char *file, const void *text, size_t len,
                        gr_config_error *err)
{
    ini_state st = {.cfg = cfg, .err = err, .file = file, .text = text, .len = len};
    int r;

    err_reset(err);
    r = ini_parse_stream(ini_read_line, &st, ini_handle, &st);
    if (st.rc < 0 || r < 0) {
        return -ENOMEM; /* r < 0: libinih could not allocate its line buffer */
    }
    /* libinih returns the first line it failed on; if that comes before the first
     * error we recorded, it is a line libinih could not parse at all. */
    if (r > 0 && (err->reason == GR_CONFIG_OK || (unsigned)r < err->line)) {
        err_reset(err);
        fail(err, GR_CONFIG_ESYNTAX, file, (unsigned)r, NULL, NULL, NULL);
    }
    return err->reason == GR_CONFIG_OK ? 0 : GR_ECONFIG;
}

/* Read a whole regular file of at most GR_CONFIG_FILE_MAX bytes. 0 and
 * *ret_buf / *ret_len (caller frees), or -errno. */
static int slurp(const char *path, char **ret_buf, size_t *ret_len)
{
    struct stat sb;
    char *buf = NULL;
    size_t len = 0;
    int fd, r = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        return -errno;
    }
    if (fstat(fd, &sb) < 0) {
        r = -errno;
        goto out;
    }
    if (S_ISDIR(sb.st_mode)) {
        r = -EISDIR;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        r = -EINVAL;
        goto out;
    }
    if (sb.st_size > GR_CONFIG_FILE_MAX) {
        r = -EFBIG;
        goto out;
    }
    /* +1: a file that grew since fstat is noticed rather than silently cut */
    if (!(buf = malloc((size_t)sb.st_size + 1))) {
        r = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, (size_t)sb.st_size + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r = -errno;
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > (size_t)sb.st_size) {
            r = -EFBIG;
            goto out;
        }
    }
    *ret_buf = buf;
    *ret_len = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return r;
}

int gr_config_read_file(gr_config *cfg, const char *path, gr_config_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r;

    err_reset(err);
    if ((r = slurp(path, &buf, &len)) < 0) {
        if (r == -ENOMEM) {
            return r;
        }
        fail(err, GR_CONFIG_EUNREADABLE, path, 0, NULL, NULL, NULL);
        err->sys_err = r;
        return GR_ECONFIG;
    }
    if ((r = replace_str(&cfg->file, path)) == 0) {
        r = gr_config_parse_ini(cfg, path, buf, len, err);
    }
    free(buf);
    return r;
}

/* ---- the command line -------------------------------------------------------------------- */

/* One key flag seen on the command line, applied after the file. */
typedef struct flag_arg {
    const key_def *kd; /* which setting */
    const char *arg;   /* its value (points into argv) */
} flag_arg;

int gr_config_load(int argc, char *argv[], gr_config_error *err, gr_config *ret_cfg)
{
    struct option longopts[NKEYS + 4];
    flag_arg *flags = NULL;
    size_t nflags = 0;
    const char *file = NULL;
    gr_config_action action = GR_CONFIG_RUN;
    gr_config cfg = {0};
    bool seeds_from_flags = false, discover_from_flags = false;
    int c, r;

    err_reset(err);
    longopts[0] = (struct option){"config", required_argument, NULL, 'c'};
    longopts[1] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[2] = (struct option){"version", no_argument, NULL, 'V'};
    for (size_t i = 0; i < NKEYS; i++) {
        longopts[3 + i] = (struct option){keys[i].flag, required_argument, NULL, OPT_KEY + (int)i};
    }
    longopts[NKEYS + 3] = (struct option){0};

    /* every option consumes at least one argv element */
    if (!(flags = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*flags)))) {
        return -ENOMEM;
    }
    optind = 0; /* glibc: full re-initialisation, so this can run more than once */
    opterr = 0; /* we report errors ourselves */
    while ((c = getopt_long(argc, argv, "+:c:hV", longopts, NULL)) != -1) {
        const char *opt = argv[optind - 1];
        char shortopt[3] = {'-', (char)optopt, '\0'};

        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'h':
            action = GR_CONFIG_HELP;
            break;
        case 'V':
            if (action != GR_CONFIG_HELP) {
                action = GR_CONFIG_VERSION;
            }
            break;
        case ':':
            r = fail(err, GR_CONFIG_ENOARG, NULL, 0, NULL,
                     strncmp(opt, "--", 2) == 0 ? opt : shortopt, NULL);
            goto out;
        case '?':
            r = fail(err, GR_CONFIG_EOPTION, NULL, 0, NULL,
                     strncmp(opt, "--", 2) == 0 || optopt == 0 ? opt : shortopt, NULL);
            goto out;
        default:
            flags[nflags++] = (flag_arg){&keys[c - OPT_KEY], optarg};
            break;
        }
    }
    if (optind < argc) {
        r = fail(err, GR_CONFIG_EOPERAND, NULL, 0, NULL, NULL, argv[optind]);
        goto out;
    }

    if ((r = gr_config_init(&cfg)) < 0) {
        goto out;
    }
    cfg.action = action;
    if (action == GR_CONFIG_RUN) {
        if (file && (r = gr_config_read_file(&cfg, file, err)) < 0) {
            goto out;
        }
        for (size_t i = 0; i < nflags; i++) {
            gr_config_reason why = GR_CONFIG_OK;
            char flag[32];

            /* flags override the file: the first --seed replaces the file's list */
            if (flags[i].kd->set == set_seeds && !seeds_from_flags) {
                seeds_clear(&cfg);
                seeds_from_flags = true;
            }
            if (flags[i].kd->set == set_discover_dns && !discover_from_flags) {
                discover_clear(&cfg); /* likewise --discover-dns */
                discover_from_flags = true;
            }
            if ((r = apply(&cfg, flags[i].kd, flags[i].arg, &why)) == GR_ECONFIG) {
                snprintf(flag, sizeof(flag), "--%s", flags[i].kd->flag);
                fail(err, why, NULL, 0, NULL, flag, flags[i].arg);
            }
            if (r < 0) {
                goto out;
            }
            if (flags[i].kd->set == set_cookie_file) {
                cfg.cookie_file_flag = true; /* wins over the environment */
            }
        }
    }
    *ret_cfg = cfg;
    cfg = (gr_config){0};
    r = 0;
out:
    gr_config_clear(&cfg);
    free(flags);
    return r;
}

/* Print one synopsis item, wrapping before column 80 under the first item. */
static void usage_item(FILE *f, int *col, int indent, const char *item)
{
    int len = (int)strlen(item);

    if (*col + 1 + len > 79) {
        fprintf(f, "\n%*s", indent, "");
        *col = indent;
    } else {
        fputc(' ', f);
        (*col)++;
    }
    fputs(item, f);
    *col += len;
}

void gr_config_usage(FILE *f, const char *prog)
{
    int indent = (int)strlen("usage: ") + (int)strlen(prog), col = indent;
    char item[96];

    fprintf(f, "usage: %s", prog);
    usage_item(f, &col, indent + 1, "[-c FILE]");
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(item, sizeof(item), "[--%s %s]%s", keys[i].flag, keys[i].metavar,
                 keys[i].repeatable ? "..." : "");
        usage_item(f, &col, indent + 1, item);
    }
    usage_item(f, &col, indent + 1, "[--help]");
    usage_item(f, &col, indent + 1, "[--version]");
    fputs("\n\n", f);
    fputs("Girder node daemon " GIRDER_VERSION ". Settings come from the [node] section of\n"
          "the INI file given with -c; a flag overrides the file, which overrides the\n"
          "default.\n\n",
          f);
    fprintf(f, "  %-32s %s\n", "-c, --config FILE", "INI file to read");
    for (size_t i = 0; i < NKEYS; i++) {
        char lhs[64];

        snprintf(lhs, sizeof(lhs), "    --%s %s", keys[i].flag, keys[i].metavar);
        fprintf(f, "  %-32s %s\n  %-32s (key: %s; default: %s)\n", lhs, keys[i].help, "",
                keys[i].key, keys[i].dflt);
    }
    fprintf(f, "  %-32s %s\n", "-h, --help", "show this help and exit");
    fprintf(f, "  %-32s %s\n", "-V, --version", "show the version and exit");
    fputs("\nEnvironment: GIRDER_COOKIE (the cookie) or GIRDER_COOKIE_FILE (a file)\n"
          "overrides the file's cookie_file; --cookie-file overrides both.\n"
          "Exit status: 0 clean stop, 1 runtime failure, 2 bad configuration.\n",
          f);
}
