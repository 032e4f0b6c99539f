/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - girderd's configuration: built-in defaults, the INI file and the
 * command-line flags, in increasing order of precedence (a flag overrides the
 * file, the file overrides the default). The cookie alone has the environment
 * between them: --cookie-file > GIRDER_COOKIE / GIRDER_COOKIE_FILE > the
 * file's cookie_file > the default file (gr_config_cookie_path), so that a
 * container's environment can give the cookie whatever its image's file says.
 *
 * The INI file has one section, [node]:
 *
 *   key          flag            value                      default
 *   -----------  --------------  -------------------------  --------------------------
 *   name         --name          NAME@HOST                  girder@127.0.0.1
 *   listen       --listen        HOST:PORT (port 0 = any)   127.0.0.1:4370
 *   cookie_file  --cookie-file   path                       none (GIRDER_COOKIE)
 *   accept_cookie_file --accept-cookie-file
 *                                path, repeatable (up to    none
 *                                GR_CONFIG_ACCEPT_MAX)
 *   seeds        --seed          NAME@HOST:PORT, comma-     none
 *                                separated or repeated
 *   discover_dns --discover-dns  NAME[:PORT], comma-        none
 *                                separated or repeated
 *   discover_interval_ms --discover-interval-ms
 *                                100..3600000               5000
 *   schedulers   --schedulers    1..255 or "auto"           auto (one per core)
 *   log_level    --log-level     debug|info|notice|warn|    info
 *                                error
 *   detection_ms --detection-ms  300..600000                3000
 *   link_high_water --link-high-water
 *                                BYTES, 256K..1G (K, M, G:  64M
 *                                binary suffixes)
 *   cipher       --cipher        auto|chacha20-poly1305     auto
 *   data_dir     --data-dir      DIR (1..GR_CONFIG_DATA_DIR_MAX bytes)  none
 *   redis        --redis         HOST:PORT (docs/redis.md)  off
 *   redis_password_file --redis-password-file FILE          none
 *   redis_table  --redis-table   NAME                       redis
 *   observer_key_file --observer-key-file
 *                                path (mode 0400/0600)      none: observers refused
 *   log_format   --log-format    text|json                  text
 *   ready_wait_seeds_ms --ready-wait-seeds-ms
 *                                0..600000                  5000
 *
 * data_dir: where disk tables live (DIR/tables/NAME/); created with mode 0700
 * at start if missing. Without it, disk tables are refused (bad_config) and
 * memory tables work as usual.
 *
 *   http         --http          HOST:PORT (port 0 = any)   off
 *   http_token_file --http-token-file  path                 none
 *   http_require_token --http-require-token  bool           false
 *   http_protect_metrics --http-protect-metrics  bool       false
 *
 * http: the HTTP listener (daemon/http/http.h, docs/http.md). A bool is
 * true/yes/on/1 or false/no/off/0. Whether a token is needed (a non-loopback
 * http address, http_require_token, http_protect_metrics) and whether its
 * file is usable is checked when the listener starts, not here.
 *
 * cipher: the AEAD of cluster links. auto offers and accepts AES-128-OCB
 * besides ChaCha20-Poly1305 when this CPU has AES instructions (a link takes
 * it when both ends do); chacha20-poly1305 never uses anything else
 * (docs/protocol.md, "Ciphers").
 *
 * Errors are reported as a gr_config_error naming the file, line, key and value
 * that were wrong plus a reason code; gr_config_error_print turns it into the
 * one line girderd prints before exiting with status 2. Nothing here logs.
 *
 * Thread-safety: none needed. Configuration is parsed once by main before any
 * thread starts and is read-only afterwards (the one global the style allows).
 * gr_config_load uses getopt_long and so must not run concurrently with itself.
 */
#ifndef GR_CONFIG_H
#define GR_CONFIG_H

#include "util/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GR_CONFIG_PORT_DEFAULT 4370 /* listen port when none is configured */
#define GR_CONFIG_SEEDS_MAX 64      /* seeds accepted from file + flags */
#define GR_CONFIG_ACCEPT_MAX 4      /* accept_cookie_file entries (= GR_HANDSHAKE_ACCEPT_MAX) */
#define GR_CONFIG_DISCOVER_MAX 16   /* discover_dns names (= GR_DIST_DISC_NAMES_MAX) */
#define GR_CONFIG_DISCOVER_DEFAULT_MS 5000  /* discover_interval_ms */
#define GR_CONFIG_DISCOVER_MIN_MS 100       /* discover_interval_ms, at least */
#define GR_CONFIG_DISCOVER_MAX_MS 3600000   /* and at most */
#define GR_CONFIG_PLUGINS_MAX 64            /* plugins loaded at start (file + flags) */
#define GR_CONFIG_FILE_MAX (1024 * 1024)    /* largest INI file read, bytes */
#define GR_CONFIG_DATA_DIR_MAX 3072         /* bytes of a data_dir (room for tables/NAME/...) */
#define GR_CONFIG_VALUE_MAX 4095            /* longest value (a path), bytes */
#define GR_CONFIG_SCHED_MAX 255             /* = GR_RT_SCHED_MAX */
#define GR_CONFIG_DETECTION_DEFAULT_MS 3000 /* failure detection time */
#define GR_CONFIG_DETECTION_MIN_MS 300
#define GR_CONFIG_DETECTION_MAX_MS 600000
#define GR_CONFIG_HIGH_WATER_DEFAULT ((uint64_t)64 << 20) /* = GR_DIST_OUT_HIGH_DEFAULT */
#define GR_CONFIG_HIGH_WATER_MIN ((uint64_t)256 << 10)
#define GR_CONFIG_HIGH_WATER_MAX ((uint64_t)1 << 30)
#define GR_CONFIG_READY_WAIT_DEFAULT_MS 5000 /* ready_wait_seeds_ms */
#define GR_CONFIG_READY_WAIT_MAX_MS 600000

/* X(NAME, "message") - why a configuration was rejected. */
#define GR_CONFIG_REASON_MAP(X)                                                                    \
    X(GR_CONFIG_OK, "no error")                                                                    \
    X(GR_CONFIG_EUNREADABLE, "cannot read the configuration file")                                 \
    X(GR_CONFIG_ESYNTAX, "syntax error: expected [section] or key = value")                        \
    X(GR_CONFIG_ELINE, "line too long")                                                            \
    X(GR_CONFIG_ENUL, "line contains a NUL byte")                                                  \
    X(GR_CONFIG_ESECTION, "unknown section (known: [node], [plugins])")                            \
    X(GR_CONFIG_ENOSECTION, "key outside any section (put it under [node])")                       \
    X(GR_CONFIG_EKEY, "unknown key")                                                               \
    X(GR_CONFIG_EDUP, "key set twice")                                                             \
    X(GR_CONFIG_EEMPTY, "empty value")                                                             \
    X(GR_CONFIG_ELONG, "value too long")                                                           \
    X(GR_CONFIG_ENODE, "bad node name: expected NAME@HOST (NAME: letters, digits, _ -; "           \
                       "HOST: a DNS name or IPv4 address)")                                        \
    X(GR_CONFIG_EADDR, "bad address: expected HOST:PORT (IPv6 as [ADDR]:PORT)")                    \
    X(GR_CONFIG_EPORT, "bad port: expected a number 1..65535")                                     \
    X(GR_CONFIG_ESEED, "bad seed: expected NAME@HOST:PORT")                                        \
    X(GR_CONFIG_ETOOMANYSEEDS, "too many seeds")                                                   \
    X(GR_CONFIG_EDISCOVER, "bad discovery name: expected NAME or NAME:PORT (NAME: a DNS name)")    \
    X(GR_CONFIG_ETOOMANYDISCOVER, "too many discovery names")                                      \
    X(GR_CONFIG_EDISCOVERMS, "bad discovery interval: expected milliseconds 100..3600000")         \
    X(GR_CONFIG_ERANGE, "out of range: expected 1..255 or auto")                                   \
    X(GR_CONFIG_EDETECTION, "bad detection time: expected milliseconds 300..600000")               \
    X(GR_CONFIG_EHIGHWATER, "bad link high-water mark: expected bytes 262144..1073741824, or "     \
                            "256K..1G with a binary K, M or G suffix")                             \
    X(GR_CONFIG_ELEVEL, "bad log level: expected debug, info, notice, warn or error")              \
    X(GR_CONFIG_ECIPHER, "bad cipher: expected auto or chacha20-poly1305")                         \
    X(GR_CONFIG_ETOOMANYPLUGINS, "too many plugins")                                               \
    X(GR_CONFIG_EBOOL, "bad boolean: expected true, false, yes, no, on, off, 1 or 0")              \
    X(GR_CONFIG_EOPTION, "unknown option")                                                         \
    X(GR_CONFIG_ENOARG, "option needs a value")                                                    \
    X(GR_CONFIG_EOPERAND, "unexpected argument (girderd takes options only)")                      \
    X(GR_CONFIG_EFORMAT, "bad log format: expected text or json")                                  \
    X(GR_CONFIG_EREADYWAIT, "bad readiness wait: expected milliseconds 0..600000")                 \
    X(GR_CONFIG_ETOOMANYACCEPT, "too many accepted cookie files (at most 4)")

typedef enum gr_config_reason {
#define GR_CONFIG_REASON_ENUM(name, msg) name,
    GR_CONFIG_REASON_MAP(GR_CONFIG_REASON_ENUM)
#undef GR_CONFIG_REASON_ENUM
} gr_config_reason;

/* What main should do after a successful gr_config_load. */
typedef enum gr_config_action {
    GR_CONFIG_RUN,     /* start the node */
    GR_CONFIG_HELP,    /* print gr_config_usage and exit 0 */
    GR_CONFIG_VERSION, /* print the version and exit 0 */
} gr_config_action;

/* One static seed: a node to contact at start-up. */
typedef struct gr_config_seed {
    char *node;    /* "NAME@HOST", the node name it must answer to */
    char *host;    /* HOST to connect to */
    uint16_t port; /* 1..65535 */
} gr_config_seed;

/* One DNS discovery name: its addresses are candidate members. */
typedef struct gr_config_dns {
    char *name;    /* DNS name */
    uint16_t port; /* 1..65535; 0: this node's listen port */
} gr_config_dns;

/* Parsed configuration. Every string is owned by the struct (gr_config_clear
 * frees them). */
typedef struct gr_config {
    gr_config_action action;      /* set by gr_config_load */
    char *file;                   /* INI file read (-c), or NULL */
    char *name;                   /* node name "NAME@HOST" */
    char *listen_host;            /* listen address host part (no brackets) */
    uint16_t listen_port;         /* 0 = pick a free port */
    char *cookie_file;            /* cookie file path, or NULL (use GIRDER_COOKIE) */
    bool cookie_file_flag;        /* cookie_file came from --cookie-file, not the file */
    char *data_dir;               /* data directory (disk tables), or NULL: none */
    gr_config_seed *seeds;        /* nseeds static seeds */
    size_t nseeds;                /* 0..GR_CONFIG_SEEDS_MAX */
    unsigned schedulers;          /* 1..255, or 0 = one per online core */
    enum gr_log_level log_level;  /* minimum log level */
    unsigned detection_ms;        /* silent link -> peer down after this */
    uint64_t link_high_water;     /* bytes queued for a link before its senders are suspended */
    bool cipher_fast;             /* auto: AES-128-OCB where both ends can (cipher) */
    char **plugins;               /* nplugins plugin paths to load at start, in order */
    size_t nplugins;              /* 0..GR_CONFIG_PLUGINS_MAX */
    char *observer_key_file;      /* observer key file, or NULL: observer CLIs refused */
    char **accept_cookie_files;   /* naccept further cookies accepted (rotation); read
                                   * at start and on SIGHUP (daemon.c) */
    size_t naccept;               /* 0..GR_CONFIG_ACCEPT_MAX */
    bool log_json;                /* log_format = json: one JSON object a line */
    unsigned ready_wait_seeds_ms; /* sd_notify READY=1 waits this long for a seed */
    char *redis_host;             /* Redis listener host (redis), or NULL: off */
    uint16_t redis_port;          /* its port (0: any free port) */
    char *redis_password_file;    /* redis_password_file, or NULL */
    char *redis_table;            /* redis_table, or NULL: "redis" */
    char *http_host;              /* HTTP listener host, or NULL: no listener */
    uint16_t http_port;           /* 0 = pick a free port */
    char *http_token_file;        /* bearer token file, or NULL */
    bool http_require_token;      /* token even on loopback */
    bool http_protect_metrics;    /* /metrics and the probes need the token too */
    gr_config_dns *discover;      /* ndiscover DNS discovery names */
    size_t ndiscover;             /* 0..GR_CONFIG_DISCOVER_MAX */
    unsigned discover_ms;         /* discover_interval_ms: lookup period */
} gr_config;

/* Why a configuration was rejected. Filled by the functions below when they
 * return GR_ECONFIG; zeroed (reason GR_CONFIG_OK) when they start. */
typedef struct gr_config_error {
    gr_config_reason reason; /* what was wrong */
    const char *file;        /* INI file (borrowed from the caller), NULL = command line */
    unsigned line;           /* 1-based line in file, 0 = none */
    char section[32];        /* INI section of the offending line, "" = none */
    char key[32];            /* INI key ("listen") or flag ("--listen"), "" = none */
    char value[96];          /* offending value, truncated with "...", "" = none */
    int sys_err;             /* -errno behind GR_CONFIG_EUNREADABLE, else 0 */
} gr_config_error;

/* Fill *ret_cfg with the built-in defaults. 0 or -ENOMEM (*ret_cfg untouched). */
int gr_config_init(gr_config *ret_cfg);

/* Free every member and zero the struct. NULL-safe; safe on a zeroed struct and
 * on a half-built one. */
void gr_config_clear(gr_config *cfg);

/* Apply INI text (len bytes, need not be NUL-terminated, may hold anything) on
 * top of cfg. `file` names the source in errors (borrowed; must outlive *err).
 * A key set twice is an error, except `seeds`, which accumulates. On error cfg
 * may hold some of the file's values: clear it. 0, GR_ECONFIG (*err filled) or
 * -ENOMEM. */
int gr_config_parse_ini(gr_config *cfg, const char *file, const void *text, size_t len,
                        gr_config_error *err);

/* Read the INI file at `path` (borrowed; must outlive *err) and apply it as
 * gr_config_parse_ini does. Also records the path in cfg->file. An unreadable,
 * non-regular or over-GR_CONFIG_FILE_MAX file is GR_CONFIG_EUNREADABLE. */
int gr_config_read_file(gr_config *cfg, const char *path, gr_config_error *err);

/* Set one key as the INI file would (`key` as in the table above), with no
 * duplicate check: a later call overrides; `seeds` appends. 0, GR_ECONFIG or
 * -ENOMEM. */
int gr_config_set(gr_config *cfg, const char *key, const char *value, gr_config_error *err);

/* The cookie file girderd must read, by the cookie's precedence: --cookie-file,
 * then the environment (env_cookie = getenv("GIRDER_COOKIE"), env_cookie_file =
 * getenv("GIRDER_COOKIE_FILE"); either set and, for the file, non-empty), then
 * the INI file's cookie_file. Returns the path (borrowed from cfg), or NULL when
 * the environment or the defaults decide (gr_cookie_resolve(NULL, ...)). Pure:
 * reads no environment itself. */
const char *gr_config_cookie_path(const gr_config *cfg, const char *env_cookie,
                                  const char *env_cookie_file);

/* The whole pipeline for girderd's command line: defaults, then the file given
 * with -c FILE / --config FILE, then every other flag in order. --help / --version set
 * ret_cfg->action and skip the file. argv may be permuted (getopt_long). 0 and *ret_cfg (caller
 * clears it), GR_ECONFIG with *err filled, or -ENOMEM; *ret_cfg untouched on failure. */
int gr_config_load(int argc, char *argv[], gr_config_error *err, gr_config *ret_cfg);

/* Print the usage text, generated from the same table that parses flags. */
void gr_config_usage(FILE *f, const char *prog);

/* Print err as one line: "PROG: FILE:LINE: [node] KEY = 'VALUE': REASON". */
void gr_config_error_print(FILE *f, const char *prog, const gr_config_error *err);

/* The message of a reason code. Never NULL; static storage. */
const char *gr_config_reason_str(gr_config_reason reason);

/* Is s a valid node name "NAME@HOST" (at most 255 bytes)? 0 or GR_EBADNODE. */
int gr_config_check_node(const char *s);

/* Split "HOST:PORT" ("[v6addr]:PORT" for IPv6); HOST is a DNS name, an IPv4
 * address or a bracketed IPv6 address. allow_zero permits port 0. 0 and
 * *ret_host (malloc'd, brackets removed) and *ret_port; -EINVAL for a malformed
 * address, -ERANGE for a bad port, -ENOMEM. Outputs untouched on failure. */
int gr_config_split_hostport(const char *s, bool allow_zero, char **ret_host, uint16_t *ret_port);

#endif
