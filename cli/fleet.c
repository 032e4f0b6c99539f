/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fleet.c - `girder nodes`, `ps`, `stats` across the whole cluster, and
 * `girder forget`: the fan-out (rpc.multicall on the contacted node), the
 * cursor loop that lists every process of every node, the rows' filters,
 * sort orders and top-N, and the 80-column layouts.
 *
 * Design notes
 * - One connection per command; every call on it has its own deadline.
 *   The fan-out gives each node fanout_ms() (half of --timeout, at most
 *   2 s) inside the call's --timeout, so a SIGSTOPped member is reported as
 *   `timeout` and the others are still shown. A member whose link is down
 *   answers `noconnection` at once: shown as `down`, not an error.
 * - ps: the fan-out asks every node for its first GR_CLI_PS_FIRST_PAGE
 *   processes (proc.snapshot); a node with more answers a cursor ("next"),
 *   and its further pages (GR_CLI_PS_PAGE each) are asked one by one,
 *   through rpc.call when the node is not the contacted one. Each page gets
 *   --timeout, so a listing of any size completes (docs/rpc.md has what
 *   pages guarantee). Without --sort/--top rows are printed as they arrive
 *   (constant memory); with --top N at most 2N rows are held.
 * - A node that could not be listed (timeout, an error) is named on stderr
 *   after the listing and the exit status is 1; the rows of the others are
 *   printed all the same.
 */
#include "cli/fleet.h"

#include "cli/dest.h"
#include "cli/fail.h"
#include "cli/json.h"
#include "cli/print.h"
#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FANOUT_MAX_MS 2000 /* most a node may take to answer a fan-out */
#define PS_NODES_MAX 1024  /* --node names */

/* ------------------------------------------------------------ pure pieces */

int gr_cli_ps_field_parse(const char *s, gr_cli_ps_field *ret_f)
{
    static const struct {
        const char *name;
        gr_cli_ps_field f;
    } names[] = {
        {"pid", GR_CLI_PS_PID},
        {"node", GR_CLI_PS_NODE},
        {"name", GR_CLI_PS_NAME},
        {"behaviour", GR_CLI_PS_BEHAVIOUR},
        {"behavior", GR_CLI_PS_BEHAVIOUR},
        {"status", GR_CLI_PS_STATUS},
        {"mailbox", GR_CLI_PS_MAILBOX},
        {"mbox", GR_CLI_PS_MAILBOX},
        {"handled", GR_CLI_PS_HANDLED},
        {"msgs", GR_CLI_PS_HANDLED},
        {"memory", GR_CLI_PS_MEMORY},
        {"mem", GR_CLI_PS_MEMORY},
        {"work", GR_CLI_PS_WORK},
    };

    if (s == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *ret_f = names[i].f;
            return 0;
        }
    }
    return -EINVAL;
}

static uint64_t map_u64(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = gr_term_map_get(m, k);

    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

/* A str value of map m as a malloc'd string; NULL if absent or not a str
 * (*ret_nomem set when the copy failed). */
static char *map_str(const msgpack_object *m, const char *k, bool *ret_nomem)
{
    const msgpack_object *v = gr_term_map_get(m, k);
    char *s;

    if (!v || v->type != MSGPACK_OBJECT_STR) {
        return NULL;
    }
    if ((s = strndup(v->via.str.ptr, v->via.str.size)) == NULL) {
        *ret_nomem = true;
    }
    return s;
}

int gr_cli_ps_row_from(const msgpack_object *entry, uint32_t node, gr_cli_ps_row *ret_r)
{
    gr_cli_ps_row r = {.node = node};
    const msgpack_object *pid;
    gr_term_id id;
    bool nomem = false;
    char *json = NULL, *st;
    size_t len;

    if (entry->type != MSGPACK_OBJECT_MAP || !(pid = gr_term_map_get(entry, "pid")) ||
        pid->type != MSGPACK_OBJECT_EXT) {
        return GR_EBADTERM;
    }
    if (gr_cli_term_to_json(pid, 0, &json) < 0) {
        return -ENOMEM;
    }
    len = strlen(json);
    if (len < 3 || gr_cli_pid_parse(json + 1, len - 2, &id) < 0) {
        free(json);
        return GR_EBADTERM;
    }
    r.id = id.id;
    r.pid = strndup(json + 1, len - 2);
    free(json);
    r.name = map_str(entry, "name", &nomem);
    r.behaviour = map_str(entry, "behaviour", &nomem);
    if (!nomem && r.behaviour == NULL) {
        r.behaviour = strdup("");
    }
    if ((st = map_str(entry, "status", &nomem)) != NULL) {
        snprintf(r.status, sizeof(r.status), "%s", st);
        free(st);
    }
    r.mailbox = map_u64(entry, "mailbox");
    r.handled = map_u64(entry, "handled");
    r.memory = map_u64(entry, "memory");
    r.work = map_u64(entry, "work");
    if (nomem || r.pid == NULL || r.behaviour == NULL) {
        gr_cli_ps_row_clear(&r);
        return -ENOMEM;
    }
    *ret_r = r;
    return 0;
}

void gr_cli_ps_row_clear(gr_cli_ps_row *r)
{
    if (r == NULL) {
        return;
    }
    free(r->pid);
    free(r->name);
    free(r->behaviour);
    memset(r, 0, sizeof(*r));
}

bool gr_cli_ps_match(const gr_cli_ps_row *r, const char *name_glob, const char *beh_glob)
{
    if (name_glob && (r->name == NULL || fnmatch(name_glob, r->name, 0) != 0)) {
        return false;
    }
    if (beh_glob && fnmatch(beh_glob, r->behaviour ? r->behaviour : "", 0) != 0) {
        return false;
    }
    return true;
}

static int cmp_u64_desc(uint64_t x, uint64_t y)
{
    return x > y ? -1 : x < y;
}

static int cmp_str_last_null(const char *x, const char *y)
{
    if (x == NULL || y == NULL) {
        return (x == NULL) - (y == NULL);
    }
    return strcmp(x, y);
}

static int cmp_row(const void *a, const void *b, void *arg)
{
    const gr_cli_ps_row *x = a, *y = b;
    gr_cli_ps_field f = *(const gr_cli_ps_field *)arg;
    int c = 0;

    switch (f) {
    case GR_CLI_PS_NAME:
        c = cmp_str_last_null(x->name, y->name);
        break;
    case GR_CLI_PS_BEHAVIOUR:
        c = cmp_str_last_null(x->behaviour, y->behaviour);
        break;
    case GR_CLI_PS_STATUS:
        c = strcmp(x->status, y->status);
        break;
    case GR_CLI_PS_MAILBOX:
        c = cmp_u64_desc(x->mailbox, y->mailbox);
        break;
    case GR_CLI_PS_HANDLED:
        c = cmp_u64_desc(x->handled, y->handled);
        break;
    case GR_CLI_PS_MEMORY:
        c = cmp_u64_desc(x->memory, y->memory);
        break;
    case GR_CLI_PS_WORK:
        c = cmp_u64_desc(x->work, y->work);
        break;
    case GR_CLI_PS_PID:
    case GR_CLI_PS_NODE:
        break;
    }
    if (c == 0) {
        c = x->node < y->node ? -1 : x->node > y->node;
    }
    if (c == 0) {
        c = x->id < y->id ? -1 : x->id > y->id;
    }
    return c;
}

void gr_cli_ps_sort(gr_cli_ps_row *rows, size_t n, gr_cli_ps_field f)
{
    if (n > 1) {
        qsort_r(rows, n, sizeof(*rows), cmp_row, &f);
    }
}

size_t gr_cli_ps_trim(gr_cli_ps_row *rows, size_t n, gr_cli_ps_field f, size_t top)
{
    gr_cli_ps_sort(rows, n, f);
    for (size_t i = top; i < n; i++) {
        gr_cli_ps_row_clear(&rows[i]);
    }
    return n < top ? n : top;
}

char *gr_cli_compact(uint64_t v, bool binary, char *buf, size_t cap)
{
    static const char units[] = "KMGTPE";
    double base = binary ? 1024.0 : 1000.0, x = (double)v;
    int u = -1;

    if (v < (binary ? 1024u : 1000u)) {
        snprintf(buf, cap, "%" PRIu64, v);
        return buf;
    }
    while (x >= base && u < 5) {
        x /= base;
        u++;
    }
    if (x < 9.95) {
        snprintf(buf, cap, "%.1f%c", x, units[u]);
    } else {
        snprintf(buf, cap, "%.0f%c", x, units[u]);
    }
    return buf;
}

/* s cut to at most w bytes, the last one '~' when cut. */
static const char *cut(const char *s, int w, char *buf, size_t cap)
{
    if (s == NULL) {
        return "-";
    }
    if ((int)strlen(s) <= w) {
        return s;
    }
    snprintf(buf, cap, "%.*s~", w - 1, s);
    return buf;
}

/* PID 8, NAME 10, BEHAVIOUR 9, STATUS 8, MBOX 5, MSGS 5, MEM 5, WORK 5, one
 * space between: 63 columns, NODE gets the last 17 (cut beyond). */
#define PS_FMT "%-8s %-10s %-9s %-8s %5s %5s %5s %5s %s\n"
#define PS_NODE_W 17

void gr_cli_ps_print_header(FILE *f)
{
    fprintf(f, PS_FMT, "PID", "NAME", "BEHAVIOUR", "STATUS", "MBOX", "MSGS", "MEM", "WORK", "NODE");
}

void gr_cli_ps_print_row(FILE *f, const gr_cli_ps_row *r, const char *node)
{
    char pid[32], c1[16], c2[16], c3[16], c4[16], c5[16], c6[16], c7[16], c8[32];

    /* the pid without its node: SERIAL.SCHED (--json has the whole pid) */
    snprintf(pid, sizeof(pid), "%" PRIu64 ".%u", r->id >> 8, (unsigned)(r->id & 0xff));
    fprintf(f, PS_FMT, cut(pid, 8, c1, sizeof(c1)), cut(r->name, 10, c2, sizeof(c2)),
            cut(r->behaviour, 9, c3, sizeof(c3)), r->status,
            gr_cli_compact(r->mailbox, false, c4, sizeof(c4)),
            gr_cli_compact(r->handled, false, c5, sizeof(c5)),
            gr_cli_compact(r->memory, true, c6, sizeof(c6)),
            gr_cli_compact(r->work, false, c7, sizeof(c7)), cut(node, PS_NODE_W, c8, sizeof(c8)));
}

/* Append key:"string" (JSON) to sb. 0 or -ENOMEM. */
static int json_kv_str(msgpack_sbuffer *sb, const char *k, const char *v, bool first)
{
    if ((!first && msgpack_sbuffer_write(sb, ",", 1) < 0) ||
        gr_cli_json_put_str(sb, k, strlen(k)) < 0 || msgpack_sbuffer_write(sb, ":", 1) < 0) {
        return -ENOMEM;
    }
    if (v == NULL) {
        return msgpack_sbuffer_write(sb, "null", 4) < 0 ? -ENOMEM : 0;
    }
    return gr_cli_json_put_str(sb, v, strlen(v));
}

int gr_cli_ps_print_json(FILE *f, const gr_cli_ps_row *r, const char *node)
{
    msgpack_sbuffer sb;
    char num[96];
    int rc = -ENOMEM;

    msgpack_sbuffer_init(&sb);
    if (msgpack_sbuffer_write(&sb, "{", 1) == 0 && json_kv_str(&sb, "pid", r->pid, true) == 0 &&
        json_kv_str(&sb, "node", node, false) == 0 &&
        json_kv_str(&sb, "name", r->name, false) == 0 &&
        json_kv_str(&sb, "behaviour", r->behaviour, false) == 0 &&
        json_kv_str(&sb, "status", r->status, false) == 0) {
        int n = snprintf(num, sizeof(num),
                         ",\"mailbox\":%" PRIu64 ",\"handled\":%" PRIu64 ",\"memory\":%" PRIu64
                         ",\"work\":%" PRIu64 "}",
                         r->mailbox, r->handled, r->memory, r->work);

        if (msgpack_sbuffer_write(&sb, num, (size_t)n) == 0) {
            fwrite(sb.data, 1, sb.size, f);
            rc = 0;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ------------------------------------------------------------ stats layout */

/* The entries of a multicall result: node i's name and its {"ok": R} value
 * (NULL and *ret_err the reason id if it failed). false if m is not such a map. */
static bool mc_entry(const msgpack_object *m, uint32_t i, char *node, size_t cap,
                     const msgpack_object **ret_ok, const char **ret_err)
{
    const msgpack_object *k, *v, *st;

    if (m->type != MSGPACK_OBJECT_MAP || i >= m->via.map.size) {
        return false;
    }
    k = &m->via.map.ptr[i].key;
    v = &m->via.map.ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_MAP || v->via.map.size != 1 ||
        v->via.map.ptr[0].key.type != MSGPACK_OBJECT_STR) {
        return false;
    }
    snprintf(node, cap, "%.*s", (int)k->via.str.size, k->via.str.ptr);
    st = &v->via.map.ptr[0].key;
    *ret_ok = NULL;
    *ret_err = "error";
    if (st->via.str.size == 2 && memcmp(st->via.str.ptr, "ok", 2) == 0) {
        *ret_ok = &v->via.map.ptr[0].val;
    } else if (v->via.map.ptr[0].val.type == MSGPACK_OBJECT_STR) {
        static __thread char id[64];

        snprintf(id, sizeof(id), "%.*s", (int)v->via.map.ptr[0].val.via.str.size,
                 v->via.map.ptr[0].val.via.str.ptr);
        *ret_err = strcmp(id, "noconnection") == 0 ? "down" : id;
    }
    return true;
}

/* A grid of strings: rows x cols, cells malloc'd (NULL: "-"). */
typedef struct grid {
    size_t rows, cols, cap;
    char **keys;  /* row labels */
    char **cells; /* rows * cols */
} grid;

static void grid_free(grid *g)
{
    for (size_t i = 0; i < g->rows; i++) {
        free(g->keys[i]);
        for (size_t j = 0; j < g->cols; j++) {
            free(g->cells[i * g->cols + j]);
        }
    }
    free(g->keys);
    free(g->cells);
}

/* The row labelled key (added if new). SIZE_MAX on ENOMEM. */
static size_t grid_row(grid *g, const char *key, size_t klen)
{
    for (size_t i = 0; i < g->rows; i++) {
        if (strlen(g->keys[i]) == klen && memcmp(g->keys[i], key, klen) == 0) {
            return i;
        }
    }
    if (g->rows == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        char **k = realloc(g->keys, cap * sizeof(*k)), **c;

        if (k == NULL) {
            return SIZE_MAX;
        }
        g->keys = k;
        if ((c = realloc(g->cells, cap * g->cols * sizeof(*c))) == NULL) {
            return SIZE_MAX;
        }
        g->cells = c;
        g->cap = cap;
    }
    if ((g->keys[g->rows] = strndup(key, klen)) == NULL) {
        return SIZE_MAX;
    }
    memset(&g->cells[g->rows * g->cols], 0, g->cols * sizeof(char *));
    return g->rows++;
}

static int grid_set(grid *g, const char *key, size_t col, const char *v)
{
    size_t r = grid_row(g, key, strlen(key));
    char **c;

    if (r == SIZE_MAX) {
        return -ENOMEM;
    }
    c = &g->cells[r * g->cols + col];
    free(*c);
    return (*c = strdup(v)) ? 0 : -ENOMEM;
}

/* Value of a counter/limit for a cell: numbers as digits, [U, M] as "U/M". */
static void cell_text(const msgpack_object *v, char *buf, size_t cap)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(buf, cap, "%" PRIu64, v->via.u64);
    } else if (v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 2 &&
               v->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               v->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        char a[16], b[16];

        snprintf(buf, cap, "%s/%s", gr_cli_compact(v->via.array.ptr[0].via.u64, false, a, 16),
                 gr_cli_compact(v->via.array.ptr[1].via.u64, false, b, 16));
    } else if (v->type == MSGPACK_OBJECT_STR) {
        snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    } else {
        snprintf(buf, cap, "?");
    }
}

/* Fill column col of g from one node's counters and about maps. */
static int grid_fill(grid *g, size_t col, const char *status, const msgpack_object *ctr,
                     const msgpack_object *about)
{
    const msgpack_object *lim = about ? gr_term_map_get(about, "limits") : NULL;
    char buf[64], key[80];
    int r = grid_set(g, "status", col, status);

    if (r == 0 && about) {
        const msgpack_object *up = gr_term_map_get(about, "uptime_ms"),
                             *ver = gr_term_map_get(about, "version");

        if (up && up->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            r = grid_set(g, "uptime", col, gr_cli_duration(up->via.u64, buf, sizeof(buf)));
        }
        if (r == 0 && ver && ver->type == MSGPACK_OBJECT_STR) {
            cell_text(ver, buf, sizeof(buf));
            r = grid_set(g, "version", col, buf);
        }
    }
    for (uint32_t i = 0; r == 0 && ctr && ctr->type == MSGPACK_OBJECT_MAP && i < ctr->via.map.size;
         i++) {
        const msgpack_object *k = &ctr->via.map.ptr[i].key;

        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(key)) {
            continue;
        }
        snprintf(key, sizeof(key), "%.*s", (int)k->via.str.size, k->via.str.ptr);
        cell_text(&ctr->via.map.ptr[i].val, buf, sizeof(buf));
        r = grid_set(g, key, col, buf);
    }
    for (uint32_t i = 0; r == 0 && lim && lim->type == MSGPACK_OBJECT_MAP && i < lim->via.map.size;
         i++) {
        const msgpack_object *k = &lim->via.map.ptr[i].key;

        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size + 7 >= sizeof(key)) {
            continue;
        }
        snprintf(key, sizeof(key), "limit: %.*s", (int)k->via.str.size, k->via.str.ptr);
        cell_text(&lim->via.map.ptr[i].val, buf, sizeof(buf));
        r = grid_set(g, key, col, buf);
    }
    return r;
}

/* The {"ok": R} value of node `node` in multicall result m, or NULL. */
static const msgpack_object *mc_find(const msgpack_object *m, const char *node)
{
    char name[GR_NODENAME_MAX + 1];
    const msgpack_object *ok;
    const char *err;

    for (uint32_t i = 0; m && m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
        if (mc_entry(m, i, name, sizeof(name), &ok, &err) && strcmp(name, node) == 0) {
            return ok;
        }
    }
    return NULL;
}

int gr_cli_stats_print(FILE *f, const msgpack_object *counters, const msgpack_object *about,
                       int width)
{
    char name[GR_NODENAME_MAX + 1];
    const msgpack_object *ok;
    const char *err;
    size_t n, kw = 0, *w;
    grid g = {0};
    int r = 0;

    if (counters->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADTERM;
    }
    n = counters->via.map.size;
    for (uint32_t i = 0; i < n; i++) {
        if (!mc_entry(counters, i, name, sizeof(name), &ok, &err)) {
            return GR_EBADTERM;
        }
    }
    g.cols = n;
    if ((w = calloc(n ? n : 1, sizeof(*w))) == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n && r == 0; i++) {
        mc_entry(counters, i, name, sizeof(name), &ok, &err);
        r = grid_fill(&g, i, ok ? "ok" : err, ok, ok ? mc_find(about, name) : NULL);
        w[i] = strlen(name);
    }
    for (size_t i = 0; r == 0 && i < g.rows; i++) {
        kw = strlen(g.keys[i]) > kw ? strlen(g.keys[i]) : kw;
        for (size_t j = 0; j < n; j++) {
            const char *c = g.cells[i * n + j];
            size_t l = c ? strlen(c) : 1;

            w[j] = l > w[j] ? l : w[j];
        }
    }
    /* blocks of as many node columns as fit in width */
    for (size_t first = 0; r == 0 && first < n;) {
        size_t last = first, used = kw + 2 + w[first];

        while (last + 1 < n && used + 2 + w[last + 1] <= (size_t)width) {
            used += 2 + w[++last];
        }
        if (first > 0) {
            fputc('\n', f);
        }
        fprintf(f, "%-*s", (int)kw, "");
        for (size_t j = first; j <= last; j++) {
            mc_entry(counters, (uint32_t)j, name, sizeof(name), &ok, &err);
            fprintf(f, "  %*s", (int)w[j], name);
        }
        fputc('\n', f);
        for (size_t i = 0; i < g.rows; i++) {
            fprintf(f, "%-*s", (int)kw, g.keys[i]);
            for (size_t j = first; j <= last; j++) {
                const char *c = g.cells[i * n + j];

                fprintf(f, "  %*s", (int)w[j], c ? c : "-");
            }
            fputc('\n', f);
        }
        first = last + 1;
    }
    free(w);
    grid_free(&g);
    return r;
}

/* ------------------------------------------------------------ common */

/* What each node gets to answer a fan-out: half of the time left before the
 * command's deadline, at most FANOUT_MAX_MS (the rest is for the contacted
 * node's answer and the calls after it). */
static long fanout_ms(int64_t deadline)
{
    int64_t t = (deadline - gr_cli_now_ms()) / 2;

    return t > FANOUT_MAX_MS ? FANOUT_MAX_MS : t > 0 ? (long)t : 1;
}

/* The deadline to hand one level in: ours minus 10%, at most 1 s less. */
static long inner_ms(long ms)
{
    long t = ms - (ms / 10 < 1000 ? ms / 10 : 1000);

    return t > 0 ? t : 1;
}

static int nomem(const gr_cli_ctx *ctx)
{
    gr_cli_report(ctx, "ENOMEM", "out of memory");
    return GR_CLI_EXIT_UNREACHABLE;
}

/* The nodes a fan-out asks: "all", the contacted node only, or a list. */
typedef struct fleet_sel {
    bool only;                      /* --only: the contacted node */
    const char *list[PS_NODES_MAX]; /* --node names (ps) */
    size_t nlist;
} fleet_sel;

/* rpc.multicall(Nodes, module, fn, args, fanout) on c. args: one packed
 * msgpack array. Exit code; on success *ret_u holds the result map. quiet:
 * a remote error or an answer of another shape is not reported and returns
 * -1 (the caller does without: an older node). */
static int fan_out(const gr_cli_ctx *ctx, gr_cli_conn *c, int64_t deadline, const fleet_sel *sel,
                   bool quiet, const char *module, const char *fn, const char *args, size_t alen,
                   gr_cli_reply *ret_rep, msgpack_unpacked *ret_u)
{
    const char *peer = gr_cli_conn_peer(c);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t off = 0;
    int ex, ok;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ok = msgpack_pack_array(&pk, 5) == 0;
    if (ok && sel->only) {
        ok = msgpack_pack_array(&pk, 1) == 0 && gr_term_pack_cstr(&pk, peer) == 0;
    } else if (ok && sel->nlist > 0) {
        ok = msgpack_pack_array(&pk, (uint32_t)sel->nlist) == 0;
        for (size_t i = 0; ok && i < sel->nlist; i++) {
            ok = gr_term_pack_cstr(&pk, sel->list[i]) == 0;
        }
    } else if (ok) {
        ok = msgpack_pack_str_with_body(&pk, "all", 3) == 0;
    }
    ok = ok && gr_term_pack_cstr(&pk, module) == 0 && gr_term_pack_cstr(&pk, fn) == 0 &&
         msgpack_sbuffer_write(&sb, args, alen) == 0 &&
         msgpack_pack_int64(&pk, fanout_ms(deadline)) == 0;
    if (!ok) {
        msgpack_sbuffer_destroy(&sb);
        return nomem(ctx);
    }
    if (quiet) {
        gr_cli_fail f = {0};

        if (gr_cli_call(c, "rpc", "multicall", sb.data, sb.size, deadline, ret_rep, &f) < 0) {
            ex = gr_cli_report_fail(ctx, &f);
        } else if (ret_rep->status < 0) {
            gr_cli_reply_clear(ret_rep);
            ex = -1;
        } else {
            ex = GR_CLI_EXIT_OK;
        }
    } else {
        ex = gr_cli_rpc(ctx, c, NULL, "rpc", "multicall", &sb, deadline, ret_rep);
    }
    msgpack_sbuffer_destroy(&sb);
    if (ex != GR_CLI_EXIT_OK) {
        return ex;
    }
    msgpack_unpacked_init(ret_u);
    if (msgpack_unpack_next(ret_u, (const char *)ret_rep->result, ret_rep->len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        ret_u->data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(ret_u);
        gr_cli_reply_clear(ret_rep);
        if (quiet) {
            return -1;
        }
        gr_cli_report(ctx, "badterm", "the fan-out answered something else than a node map");
        return GR_CLI_EXIT_REMOTE;
    }
    return GR_CLI_EXIT_OK;
}

int gr_cli_fleet_fan_out(const gr_cli_ctx *ctx, gr_cli_conn *c, int64_t deadline, bool only,
                         bool quiet, const char *module, const char *fn, const char *args,
                         size_t alen, gr_cli_reply *ret_rep, msgpack_unpacked *ret_u)
{
    fleet_sel sel = {.only = only};

    return fan_out(ctx, c, deadline, &sel, quiet, module, fn, args, alen, ret_rep, ret_u);
}

bool gr_cli_fleet_entry(const msgpack_object *m, uint32_t i, char *node, size_t cap,
                        const msgpack_object **ret_ok, const char **ret_err)
{
    return mc_entry(m, i, node, cap, ret_ok, ret_err);
}

/* A flag option: "--only". An option with a value: "--sort F" / "--sort=F".
 * Returns 1 and *ret_val (and advances *i) if argv[*i] is `name`, 0 if not,
 * or a usage error's exit code (negated) when the value is missing. */
static int opt_val(const gr_cli_ctx *ctx, const char *cmd, int argc, char **argv, int *i,
                   const char *name, const char **ret_val)
{
    size_t n = strlen(name);

    *ret_val = NULL;
    if (strncmp(argv[*i], name, n) != 0) {
        return 0;
    }
    if (argv[*i][n] == '=') {
        *ret_val = argv[*i] + n + 1;
        (*i)++;
        return 1;
    }
    if (argv[*i][n] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc || argv[*i + 1] == NULL) {
        return -gr_cli_usage_error(ctx, cmd, "%s needs a value", name);
    }
    *ret_val = argv[*i + 1];
    *i += 2;
    return 1;
}

static int print_json_obj(const gr_cli_ctx *ctx, const msgpack_sbuffer *sb)
{
    msgpack_unpacked u;
    size_t off = 0;
    char *s = NULL;
    int r = -ENOMEM;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, sb->data, sb->size, &off) == MSGPACK_UNPACK_SUCCESS &&
        gr_cli_term_to_json(&u.data, !ctx->json, &s) == 0) {
        fprintf(ctx->out, "%s\n", s);
        r = 0;
    }
    free(s);
    msgpack_unpacked_destroy(&u);
    return r == 0 ? GR_CLI_EXIT_OK : nomem(ctx);
}

/* Print the document packed in sb: JSON with --json, else with pretty (a
 * table). Exit code. */
static int print_doc(const gr_cli_ctx *ctx, const msgpack_sbuffer *sb,
                     int (*pretty)(FILE *f, const msgpack_object *o))
{
    msgpack_unpacked m;
    size_t o = 0;
    int ex = GR_CLI_EXIT_OK;

    if (ctx->json) {
        return print_json_obj(ctx, sb);
    }
    msgpack_unpacked_init(&m);
    if (msgpack_unpack_next(&m, sb->data, sb->size, &o) != MSGPACK_UNPACK_SUCCESS ||
        pretty(ctx->out, &m.data) < 0) {
        ex = nomem(ctx);
    }
    msgpack_unpacked_destroy(&m);
    return ex;
}

/* The map m's entries under a map header of m's size + extra (the caller
 * packs the extra pairs). 0 or -ENOMEM. */
static int pack_map_plus(msgpack_packer *pk, const msgpack_object *m, uint32_t extra)
{
    if (msgpack_pack_map(pk, m->via.map.size + extra) < 0) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        if (msgpack_pack_object(pk, m->via.map.ptr[i].key) < 0 ||
            msgpack_pack_object(pk, m->via.map.ptr[i].val) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* nodes/stats [--only]: sel->only, or a usage error's exit code. */
static int only_opt(const gr_cli_ctx *ctx, const char *cmd, int argc, char **argv, fleet_sel *sel)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--only") != 0) {
            return gr_cli_usage_error(ctx, cmd, "unknown argument '%s'", argv[i]);
        }
        sel->only = true;
    }
    return 0;
}

/* ------------------------------------------------------------ nodes */

static const char *str_of(const msgpack_object *m, const char *k, char *buf, size_t cap)
{
    const msgpack_object *v = m ? gr_term_map_get(m, k) : NULL;

    if (!v || v->type != MSGPACK_OBJECT_STR) {
        return NULL;
    }
    snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    return buf;
}

/* The status of member `name` in the about fan-out: "ok", "timeout", "down",
 * another reason id, or NULL if it was not asked. */
static const char *about_status(const msgpack_object *about, const char *name,
                                const msgpack_object **ret_ok)
{
    char node[GR_NODENAME_MAX + 1];
    const char *err;

    *ret_ok = NULL;
    for (uint32_t i = 0; about && about->type == MSGPACK_OBJECT_MAP && i < about->via.map.size;
         i++) {
        if (mc_entry(about, i, node, sizeof(node), ret_ok, &err) && strcmp(node, name) == 0) {
            return *ret_ok ? "ok" : err;
        }
    }
    *ret_ok = NULL;
    return NULL;
}

/* node.list's members merged with the about fan-out: each entry's keys, plus
 * "status", "uptime_ms", "version", "processes". */
static int nodes_merge(const msgpack_object *list, const msgpack_object *about, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, list->via.array.size) < 0) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = &list->via.array.ptr[i], *ok;
        char name[GR_NODENAME_MAX + 1] = "", st[16];
        const char *status;
        static const char *const extra[] = {"uptime_ms", "version", "processes"};

        if (e->type != MSGPACK_OBJECT_MAP) {
            return GR_EBADTERM;
        }
        str_of(e, "name", name, sizeof(name));
        status = about_status(about, name, &ok);
        if (status == NULL && str_of(e, "state", st, sizeof(st)) &&
            (strcmp(st, "down") == 0 || strcmp(st, "left") == 0)) {
            status = strcmp(st, "down") == 0 ? "down" : "left";
        }
        if (pack_map_plus(&pk, e, 4) < 0) {
            return -ENOMEM;
        }
        gr_term_pack_cstr(&pk, "status");
        if (status) {
            gr_term_pack_cstr(&pk, status);
        } else {
            msgpack_pack_nil(&pk);
        }
        for (size_t x = 0; x < 3; x++) {
            const msgpack_object *v = ok ? gr_term_map_get(ok, extra[x]) : NULL;

            gr_term_pack_cstr(&pk, extra[x]);
            if (v) {
                msgpack_pack_object(&pk, *v);
            } else {
                msgpack_pack_nil(&pk);
            }
        }
    }
    return gr_term_validate(sb->data, sb->size) < 0 ? -ENOMEM : 0;
}

static const char *u64_cell(const msgpack_object *m, const char *k, int kind, char *buf, size_t cap)
{
    const msgpack_object *v = gr_term_map_get(m, k);

    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return "-";
    }
    switch (kind) {
    case 'b':
        return gr_cli_compact(v->via.u64, true, buf, cap);
    case 'n':
        return gr_cli_compact(v->via.u64, false, buf, cap);
    case 'd':
        return gr_cli_duration(v->via.u64, buf, cap);
    case 'u': /* us -> ms */
        if (v->via.u64 == 0) {
            return "-";
        }
        snprintf(buf, cap, "%.1fms", (double)v->via.u64 / 1000.0);
        return buf;
    default:
        snprintf(buf, cap, "%" PRIu64, v->via.u64);
        return buf;
    }
}

/* Two tables: the members (NAME ADDRESS STATE UPTIME VERSION PROCS CIPHER)
 * and the links that are up (NAME IN OUT MSGS-IN MSGS-OUT RTT HEARD). */
static int nodes_print(FILE *f, const msgpack_object *o)
{
    static const char *const h1[] = {"NAME",    "ADDRESS", "STATE", "UPTIME",
                                     "VERSION", "PROCS",   "CIPHER"};
    static const char *const h2[] = {"LINK",     "BYTES-IN", "BYTES-OUT", "MSGS-IN",
                                     "MSGS-OUT", "RTT",      "HEARD"};
    gr_cli_table *t1 = NULL, *t2 = NULL;
    size_t links = 0;
    int r;

    if ((r = gr_cli_table_new(7, h1, "lllrlrl", &t1)) < 0 ||
        (r = gr_cli_table_new(7, h2, "lrrrrrr", &t2)) < 0) {
        gr_cli_table_free(t1);
        return r;
    }
    for (uint32_t i = 0; r == 0 && i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i], *port = gr_term_map_get(e, "port");
        char name[GR_NODENAME_MAX + 1], host[300], addr[320], state[64], status[64], b[7][48];
        const char *c1[7], *c2[7];

        str_of(e, "name", name, sizeof(name));
        if (!str_of(e, "host", host, sizeof(host))) {
            snprintf(host, sizeof(host), "-");
        }
        snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%" PRIu64 : "%s:%" PRIu64, host,
                 port && port->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? port->via.u64 : 0);
        if (!str_of(e, "state", state, sizeof(state))) {
            snprintf(state, sizeof(state), "-");
        }
        if (str_of(e, "status", status, sizeof(status)) && strcmp(status, "ok") != 0 &&
            strcmp(state, "self") != 0) {
            snprintf(state, sizeof(state), "%s", status); /* timeout, down, ... */
        }
        c1[0] = name;
        c1[1] = addr;
        c1[2] = state;
        c1[3] = u64_cell(e, "uptime_ms", 'd', b[0], sizeof(b[0]));
        c1[4] = str_of(e, "version", b[1], sizeof(b[1]));
        c1[5] = u64_cell(e, "processes", 'n', b[2], sizeof(b[2]));
        c1[6] = str_of(e, "cipher", b[3], sizeof(b[3]));
        r = gr_cli_table_row(t1, c1);
        if (r == 0 && str_of(e, "state", b[4], sizeof(b[4])) && strcmp(b[4], "up") == 0) {
            char d[7][24];

            c2[0] = name;
            c2[1] = u64_cell(e, "bytes_in", 'b', d[0], sizeof(d[0]));
            c2[2] = u64_cell(e, "bytes_out", 'b', d[1], sizeof(d[1]));
            c2[3] = u64_cell(e, "msgs_in", 'n', d[2], sizeof(d[2]));
            c2[4] = u64_cell(e, "msgs_out", 'n', d[3], sizeof(d[3]));
            /* the smoothed round trip; a node without it: the last sample */
            c2[5] = u64_cell(e, gr_term_map_get(e, "srtt_us") ? "srtt_us" : "rtt_us", 'u', d[4],
                             sizeof(d[4]));
            c2[6] = u64_cell(e, "heard_ms", 'd', d[5], sizeof(d[5]));
            r = gr_cli_table_row(t2, c2);
            links++;
        }
    }
    if (r == 0) {
        gr_cli_table_print(t1, f);
        if (links > 0) {
            fputc('\n', f);
            gr_cli_table_print(t2, f);
        }
    }
    gr_cli_table_free(t1);
    gr_cli_table_free(t2);
    return r;
}

int gr_cli_cmd_nodes(const gr_cli_ctx *ctx, int argc, char **argv)
{
    static const char noargs[] = {(char)0x90};
    int64_t deadline = gr_cli_now_ms() + ctx->timeout_ms; /* the whole command */
    fleet_sel sel = {.only = false};
    gr_cli_reply lrep = {0}, arep = {0};
    msgpack_unpacked lu, au;
    msgpack_sbuffer sb;
    gr_cli_conn *c = NULL;
    size_t off = 0;
    int ex, r;

    if ((ex = only_opt(ctx, "nodes", argc, argv, &sel)) != 0) {
        return ex;
    }
    if ((ex = gr_cli_open(ctx, deadline, &c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, noargs, 1);
    ex = gr_cli_rpc(ctx, c, NULL, "node", "list", &sb, deadline, &lrep);
    msgpack_sbuffer_destroy(&sb);
    if (ex != GR_CLI_EXIT_OK) {
        gr_cli_conn_close(c);
        return ex;
    }
    msgpack_unpacked_init(&lu);
    if (msgpack_unpack_next(&lu, (const char *)lrep.result, lrep.len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        lu.data.type != MSGPACK_OBJECT_ARRAY) {
        gr_cli_report(ctx, "badterm", "node.list answered something else than a list");
        ex = GR_CLI_EXIT_REMOTE;
        goto out;
    }
    if ((ex = fan_out(ctx, c, deadline, &sel, true, "node", "about", noargs, 1, &arep, &au)) < 0) {
        msgpack_unpacked_init(&au); /* no fan-out (an older node): node.list alone */
        au.data.type = MSGPACK_OBJECT_NIL;
    } else if (ex != GR_CLI_EXIT_OK) {
        goto out;
    }
    msgpack_sbuffer_init(&sb);
    if ((r = nodes_merge(&lu.data, &au.data, &sb)) < 0) {
        ex = r == -ENOMEM ? nomem(ctx) : GR_CLI_EXIT_REMOTE;
        if (r != -ENOMEM) {
            gr_cli_report(ctx, "badterm", "node.list: a member is not a map");
        }
    } else {
        ex = print_doc(ctx, &sb, nodes_print);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&au);
    gr_cli_reply_clear(&arep);
out:
    msgpack_unpacked_destroy(&lu);
    gr_cli_reply_clear(&lrep);
    gr_cli_conn_close(c);
    return ex;
}

/* ------------------------------------------------------------ ps */

typedef struct ps_run {
    const gr_cli_ctx *ctx;
    gr_cli_conn *c;
    const char *name_glob, *beh_glob;
    bool sorted; /* --sort or --top: rows are held, printed at the end */
    gr_cli_ps_field field;
    size_t top;          /* 0: all */
    gr_cli_ps_row *rows; /* held rows */
    size_t n, cap;
    char **nodes; /* node names, by index */
    size_t nnodes;
    uint64_t printed;           /* rows printed (streaming) */
    int64_t deadline;           /* of the page asked for (ps_page_ask) */
    bool progress;              /* stderr is a terminal: show how far a long listing is */
    int64_t start_ms, shown_ms; /* when the listing began; when progress was last shown */
    uint64_t seen;              /* entries received so far (all nodes) */
} ps_run;

#define PS_PROGRESS_AFTER_MS 500 /* a listing shorter than this shows no progress */
#define PS_PROGRESS_EVERY_MS 100 /* and a longer one redraws at most this often */

/* On a terminal (stderr), a listing that takes longer than
 * PS_PROGRESS_AFTER_MS shows one line, redrawn in place, of how many
 * processes have arrived and from which node; `done` erases it. Nothing when
 * stderr is piped or redirected, so scripts see only the listing, nor while
 * the rows themselves stream to the terminal (unsorted, stdout a tty). */
static void ps_progress(ps_run *p, uint32_t ni, bool done)
{
    int64_t now;

    if (!p->progress) {
        return;
    }
    if (done) {
        if (p->shown_ms != 0) {
            fputs("\r\033[K", p->ctx->err);
            fflush(p->ctx->err);
        }
        return;
    }
    now = gr_cli_now_ms();
    if (now - p->start_ms < PS_PROGRESS_AFTER_MS || now - p->shown_ms < PS_PROGRESS_EVERY_MS) {
        return;
    }
    p->shown_ms = now;
    fprintf(p->ctx->err, "\r\033[Kgirder ps: %" PRIu64 " processes so far (%s)...", p->seen,
            p->nodes[ni]);
    fflush(p->ctx->err);
}

/* Print (streaming) or hold one row; takes r. 0 or -ENOMEM. */
static int ps_take_row(ps_run *p, gr_cli_ps_row *r)
{
    if (!gr_cli_ps_match(r, p->name_glob, p->beh_glob)) {
        gr_cli_ps_row_clear(r);
        return 0;
    }
    if (!p->sorted) {
        if (p->ctx->json) {
            if (p->printed > 0) {
                fputc(',', p->ctx->out);
            }
            gr_cli_ps_print_json(p->ctx->out, r, p->nodes[r->node]);
        } else {
            if (p->printed == 0) {
                gr_cli_ps_print_header(p->ctx->out);
            }
            gr_cli_ps_print_row(p->ctx->out, r, p->nodes[r->node]);
        }
        p->printed++;
        gr_cli_ps_row_clear(r);
        return 0;
    }
    if (p->top > 0 && p->n == 2 * p->top) {
        p->n = gr_cli_ps_trim(p->rows, p->n, p->field, p->top);
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        gr_cli_ps_row *v = realloc(p->rows, cap * sizeof(*v));

        if (v == NULL) {
            gr_cli_ps_row_clear(r);
            return -ENOMEM;
        }
        p->rows = v;
        p->cap = cap;
    }
    p->rows[p->n++] = *r;
    return 0;
}

/* The processes of one page (an array of entries) of node index ni. */
static int ps_take_page(ps_run *p, uint32_t ni, const msgpack_object *procs)
{
    p->seen += procs->via.array.size;
    ps_progress(p, ni, false);
    for (uint32_t i = 0; i < procs->via.array.size; i++) {
        gr_cli_ps_row r;
        int rc = gr_cli_ps_row_from(&procs->via.array.ptr[i], ni, &r);

        if (rc == GR_EBADTERM) {
            continue;
        }
        if (rc < 0 || (rc = ps_take_row(p, &r)) < 0) {
            return rc;
        }
    }
    return 0;
}

/* Ask node ni for its page after cursor: proc.snapshot(PAGE, Cursor) there
 * (through rpc.call for another node than the one connected to); the answer
 * is waited for by ps_page_take. 0, or a failure's exit code negated
 * (reported: the command stops). */
static int ps_page_ask(ps_run *p, uint32_t ni, uint64_t cursor)
{
    const gr_cli_ctx *ctx = p->ctx;
    const char *node = p->nodes[ni];
    bool direct = strcmp(node, gr_cli_conn_peer(p->c)) == 0;
    gr_cli_fail f = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r, ok;

    p->deadline = gr_cli_now_ms() + ctx->timeout_ms;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ok = direct || (msgpack_pack_array(&pk, 5) == 0 && gr_term_pack_cstr(&pk, node) == 0 &&
                    gr_term_pack_cstr(&pk, "proc") == 0 && gr_term_pack_cstr(&pk, "snapshot") == 0);
    ok = ok && msgpack_pack_array(&pk, 2) == 0 && msgpack_pack_uint32(&pk, GR_CLI_PS_PAGE) == 0 &&
         msgpack_pack_uint64(&pk, cursor) == 0 &&
         (direct || msgpack_pack_int64(&pk, inner_ms(ctx->timeout_ms)) == 0);
    if (!ok) {
        msgpack_sbuffer_destroy(&sb);
        return -nomem(ctx);
    }
    r = gr_cli_call_send(p->c, direct ? "proc" : "rpc", direct ? "snapshot" : "call", sb.data,
                         sb.size, p->deadline, &f);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        return -gr_cli_report_fail(ctx, &f);
    }
    return 0;
}

/* Wait for node ni's page after cursor (asked by ps_page_ask), ask for the
 * next one at once (the node builds it while this one is decoded and
 * printed), then take this page's rows. Returns 0 with *ret_next (0: the last
 * page; else its request is out), 1 for a remote error (the node's reason in
 * why; nothing is out: that node's listing stops), or a failure's exit code
 * negated (reported: the command stops). */
static int ps_page_take(ps_run *p, uint32_t ni, uint64_t cursor, uint64_t *ret_next, char *why,
                        size_t wcap)
{
    const gr_cli_ctx *ctx = p->ctx;
    const msgpack_object *procs, *next;
    gr_cli_fail f = {0};
    gr_cli_reply rep = {0};
    msgpack_unpacked u;
    uint64_t nx;
    size_t off = 0;
    int r;

    if (gr_cli_call_wait(p->c, p->deadline, &rep, &f) < 0) {
        return -gr_cli_report_fail(ctx, &f);
    }
    if (rep.status < 0) {
        snprintf(why, wcap, "%s", rep.reason);
        gr_cli_reply_clear(&rep);
        return 1;
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)rep.result, rep.len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        !(procs = gr_term_map_get(&u.data, "processes")) || procs->type != MSGPACK_OBJECT_ARRAY) {
        snprintf(why, wcap, "badterm");
        r = 1;
    } else {
        next = gr_term_map_get(&u.data, "next");
        nx = next && next->type == MSGPACK_OBJECT_POSITIVE_INTEGER && next->via.u64 > cursor
                 ? next->via.u64
                 : 0;
        if (nx != 0 && (r = ps_page_ask(p, ni, nx)) < 0) {
            /* reported; r is the exit code negated */
        } else if (ps_take_page(p, ni, procs) < 0) {
            r = -nomem(ctx);
        } else {
            *ret_next = nx;
            r = 0;
        }
    }
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    return r;
}

/* Parse ps's options into p and sel. 0, or a usage error's exit code. */
static int ps_opts(const gr_cli_ctx *ctx, int argc, char **argv, ps_run *p, fleet_sel *sel)
{
    static const char *const names[] = {"--sort", "--top", "--name", "--behaviour", "--node"};

    for (int i = 0; i < argc;) {
        const char *v = NULL;
        int r = 0, k;

        if (strcmp(argv[i], "--only") == 0) {
            sel->only = true;
            i++;
            continue;
        }
        for (k = 0; k < 5; k++) {
            if ((r = opt_val(ctx, "ps", argc, argv, &i, names[k], &v)) != 0) {
                break;
            }
        }
        if (r < 0) {
            return -r;
        }
        if (k == 5) {
            if (argv[i][0] == '-') {
                return gr_cli_usage_error(ctx, "ps", "unknown option '%s'", argv[i]);
            }
            k = 4; /* ps NODE: as --node NODE */
            v = argv[i++];
        }
        if (v == NULL) {
            return gr_cli_usage_error(ctx, "ps", "an option needs a value");
        }
        switch (k) {
        case 0:
            if (gr_cli_ps_field_parse(v, &p->field) < 0) {
                return gr_cli_usage_error(ctx, "ps",
                                          "--sort: '%s' is not one of pid, node, name, "
                                          "behaviour, status, mailbox, handled, memory, work",
                                          v);
            }
            p->sorted = true;
            break;
        case 1: {
            char *end = NULL;
            unsigned long long top;

            errno = 0;
            top = strtoull(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || top < 1 ||
                top > 1000000) {
                return gr_cli_usage_error(ctx, "ps", "--top: '%s' is not a count (1..1000000)", v);
            }
            p->top = (size_t)top;
            break;
        }
        case 2:
            p->name_glob = v;
            break;
        case 3:
            p->beh_glob = v;
            break;
        default:
            if (gr_nodename_check(v, strlen(v)) < 0) {
                return gr_cli_usage_error(ctx, "ps", "'%s' is not a node name (NAME@HOST)", v);
            }
            if (sel->nlist == PS_NODES_MAX) {
                return gr_cli_usage_error(ctx, "ps", "at most %d nodes", PS_NODES_MAX);
            }
            sel->list[sel->nlist++] = v;
            break;
        }
    }
    if (p->top > 0 && !p->sorted) {
        p->field = GR_CLI_PS_WORK; /* --top alone: the busiest */
    }
    p->sorted = p->sorted || p->top > 0;
    if (sel->only && sel->nlist > 0) {
        return gr_cli_usage_error(ctx, "ps", "--only and --node exclude each other");
    }
    return 0;
}

int gr_cli_cmd_ps(const gr_cli_ctx *ctx, int argc, char **argv)
{
    static fleet_sel sel; /* large (PS_NODES_MAX pointers); one command per process */
    ps_run p = {.ctx = ctx, .field = GR_CLI_PS_PID};
    gr_cli_reply rep = {0};
    msgpack_unpacked u;
    /* [GR_CLI_PS_FIRST_PAGE]: fixarray(1), uint16 */
    const char args[4] = {(char)0x91, (char)0xcd, (char)(GR_CLI_PS_FIRST_PAGE >> 8),
                          (char)(GR_CLI_PS_FIRST_PAGE & 0xff)};
    size_t failed = 0;
    int ex, fatal = 0;

    memset(&sel, 0, sizeof(sel));
    p.start_ms = gr_cli_now_ms();
    if ((ex = ps_opts(ctx, argc, argv, &p, &sel)) != 0) {
        return ex;
    }
    /* progress on a terminal, unless the rows themselves stream to it */
    p.progress = fileno(ctx->err) >= 0 && isatty(fileno(ctx->err)) &&
                 (p.sorted || fileno(ctx->out) < 0 || !isatty(fileno(ctx->out)));
    if ((ex = gr_cli_open(ctx, gr_cli_now_ms() + ctx->timeout_ms, &p.c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    if ((ex = fan_out(ctx, p.c, gr_cli_now_ms() + ctx->timeout_ms, &sel, false, "proc", "snapshot",
                      args, 4, &rep, &u)) != GR_CLI_EXIT_OK) {
        gr_cli_conn_close(p.c);
        return ex;
    }
    p.nnodes = u.data.via.map.size;
    if ((p.nodes = calloc(p.nnodes ? p.nnodes : 1, sizeof(*p.nodes))) == NULL) {
        fatal = nomem(ctx);
    }
    for (uint32_t i = 0; fatal == 0 && i < p.nnodes; i++) {
        char name[GR_NODENAME_MAX + 1];
        const msgpack_object *ok;
        const char *err;

        if (!mc_entry(&u.data, i, name, sizeof(name), &ok, &err)) {
            gr_cli_report(ctx, "badterm", "ps: the fan-out's answer is not a node map");
            fatal = GR_CLI_EXIT_REMOTE;
        } else if ((p.nodes[i] = strdup(name)) == NULL) {
            fatal = nomem(ctx);
        }
    }
    if (fatal == 0 && ctx->json) {
        fputc('[', ctx->out);
    }
    for (uint32_t i = 0; fatal == 0 && i < p.nnodes; i++) {
        char name[GR_NODENAME_MAX + 1], why[64] = "";
        const msgpack_object *ok, *procs, *next;
        const char *err;
        uint64_t cursor;

        mc_entry(&u.data, i, name, sizeof(name), &ok, &err);
        if (!ok) {
            /* a member known down is named, not counted as a failure */
            fprintf(ctx->err, "girder: ps: %s: %s (not listed)\n", name, err);
            failed += strcmp(err, "down") != 0;
            continue;
        }
        if (!(procs = gr_term_map_get(ok, "processes")) || procs->type != MSGPACK_OBJECT_ARRAY) {
            fprintf(ctx->err, "girder: ps: %s: not a process list (not listed)\n", name);
            failed++;
            continue;
        }
        if (ps_take_page(&p, i, procs) < 0) {
            fatal = nomem(ctx);
            break;
        }
        next = gr_term_map_get(ok, "next");
        cursor = next && next->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? next->via.u64 : 0;
        if (cursor != 0 && (fatal = -ps_page_ask(&p, i, cursor)) != 0) {
            break;
        }
        while (cursor != 0) {
            uint64_t nx = 0;
            int r = ps_page_take(&p, i, cursor, &nx, why, sizeof(why));

            if (r < 0) {
                fatal = -r;
                break;
            }
            if (r > 0) {
                fprintf(ctx->err, "girder: ps: %s: %s (listing incomplete)\n", name, why);
                failed++;
                break;
            }
            cursor = nx;
        }
    }
    ps_progress(&p, 0, true);
    if (fatal == 0 && p.sorted) {
        size_t n = p.top > 0 ? gr_cli_ps_trim(p.rows, p.n, p.field, p.top) : p.n;

        if (p.top == 0) {
            gr_cli_ps_sort(p.rows, p.n, p.field);
        }
        p.n = n;
        for (size_t i = 0; i < p.n; i++) {
            if (ctx->json) {
                if (i > 0) {
                    fputc(',', ctx->out);
                }
                gr_cli_ps_print_json(ctx->out, &p.rows[i], p.nodes[p.rows[i].node]);
            } else {
                if (i == 0) {
                    gr_cli_ps_print_header(ctx->out);
                }
                gr_cli_ps_print_row(ctx->out, &p.rows[i], p.nodes[p.rows[i].node]);
            }
        }
        p.printed = p.n;
    }
    if (fatal == 0) {
        if (ctx->json) {
            fputs("]\n", ctx->out);
        } else if (p.printed == 0) {
            gr_cli_ps_print_header(ctx->out);
        }
    }
    for (size_t i = 0; i < p.n; i++) {
        gr_cli_ps_row_clear(&p.rows[i]);
    }
    free(p.rows);
    for (size_t i = 0; p.nodes && i < p.nnodes; i++) {
        free(p.nodes[i]);
    }
    free(p.nodes);
    msgpack_unpacked_destroy(&u);
    gr_cli_reply_clear(&rep);
    gr_cli_conn_close(p.c);
    return fatal != 0 ? fatal : failed > 0 ? GR_CLI_EXIT_REMOTE : GR_CLI_EXIT_OK;
}

/* ------------------------------------------------------------ stats */

/* {NODE: {"status": "ok" | Id, "counters": Map | nil, "about": Map | nil}} */
static int stats_json(const gr_cli_ctx *ctx, const msgpack_object *ctr, const msgpack_object *about)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int ex;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, ctr->via.map.size);
    for (uint32_t i = 0; i < ctr->via.map.size; i++) {
        char name[GR_NODENAME_MAX + 1];
        const msgpack_object *ok = NULL, *ab;
        const char *err = "error";

        mc_entry(ctr, i, name, sizeof(name), &ok, &err);
        ab = ok ? mc_find(about, name) : NULL;
        gr_term_pack_cstr(&pk, name);
        msgpack_pack_map(&pk, 3);
        gr_term_pack_cstr(&pk, "status");
        gr_term_pack_cstr(&pk, ok ? "ok" : err);
        gr_term_pack_cstr(&pk, "counters");
        if (ok) {
            msgpack_pack_object(&pk, *ok);
        } else {
            msgpack_pack_nil(&pk);
        }
        gr_term_pack_cstr(&pk, "about");
        if (ab) {
            msgpack_pack_object(&pk, *ab);
        } else {
            msgpack_pack_nil(&pk);
        }
    }
    ex = gr_term_validate(sb.data, sb.size) < 0 ? nomem(ctx) : print_json_obj(ctx, &sb);
    msgpack_sbuffer_destroy(&sb);
    return ex;
}

int gr_cli_cmd_stats(const gr_cli_ctx *ctx, int argc, char **argv)
{
    static const char noargs[] = {(char)0x90};
    static fleet_sel asel;                                /* large; one command per process */
    static char *names[PS_NODES_MAX];                     /* asel's names */
    int64_t deadline = gr_cli_now_ms() + ctx->timeout_ms; /* the whole command */
    fleet_sel sel = {.only = false};
    gr_cli_reply crep = {0}, arep = {0};
    msgpack_unpacked cu, au;
    gr_cli_conn *c = NULL;
    size_t failed = 0;
    int ex;

    if ((ex = only_opt(ctx, "stats", argc, argv, &sel)) != 0) {
        return ex;
    }
    if ((ex = gr_cli_open(ctx, deadline, &c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    if (sel.only && ctx->json) {
        /* --only --json: the contacted node's counters map, as sys.counters */
        msgpack_sbuffer sb;
        gr_cli_reply rep = {0};

        msgpack_sbuffer_init(&sb);
        msgpack_sbuffer_write(&sb, noargs, 1);
        ex = gr_cli_rpc(ctx, c, NULL, "sys", "counters", &sb, gr_cli_now_ms() + ctx->timeout_ms,
                        &rep);
        msgpack_sbuffer_destroy(&sb);
        if (ex == GR_CLI_EXIT_OK) {
            char *s = NULL;

            if (gr_cli_term_buf_to_json(rep.result, rep.len, 0, &s) == 0) {
                fprintf(ctx->out, "%s\n", s);
            } else {
                ex = nomem(ctx);
            }
            free(s);
        }
        gr_cli_reply_clear(&rep);
        gr_cli_conn_close(c);
        return ex;
    }
    if ((ex = fan_out(ctx, c, deadline, &sel, false, "sys", "counters", noargs, 1, &crep, &cu)) !=
        GR_CLI_EXIT_OK) {
        gr_cli_conn_close(c);
        return ex;
    }
    /* node.about only from the nodes that answered: a hung one costs one wait */
    memset(&asel, 0, sizeof(asel));
    for (uint32_t i = 0; i < cu.data.via.map.size && asel.nlist < PS_NODES_MAX; i++) {
        char name[GR_NODENAME_MAX + 1];
        const msgpack_object *ok = NULL;
        const char *err = "error";

        if (!mc_entry(&cu.data, i, name, sizeof(name), &ok, &err)) {
            continue;
        }
        if (ok && (names[asel.nlist] = strdup(name)) != NULL) {
            asel.list[asel.nlist] = names[asel.nlist];
            asel.nlist++;
        } else if (ok) {
            ex = GR_CLI_EXIT_UNREACHABLE; /* out of memory: reported below */
        } else if (strcmp(err, "down") != 0) {
            failed++;
        }
    }
    if (ex != GR_CLI_EXIT_OK) {
        (void)nomem(ctx);
        msgpack_unpacked_init(&au);
    } else if (asel.nlist > 0) {
        ex = fan_out(ctx, c, deadline, &asel, true, "node", "about", noargs, 1, &arep, &au);
        if (ex < 0) { /* no node.about (older nodes): the counters alone */
            ex = GR_CLI_EXIT_OK;
            msgpack_unpacked_init(&au);
            au.data.type = MSGPACK_OBJECT_NIL;
        }
    } else {
        msgpack_unpacked_init(&au);
        au.data.type = MSGPACK_OBJECT_NIL;
    }
    for (size_t i = 0; i < asel.nlist; i++) {
        free(names[i]);
    }
    if (ex != GR_CLI_EXIT_OK) {
        msgpack_unpacked_destroy(&cu);
        gr_cli_reply_clear(&crep);
        gr_cli_conn_close(c);
        return ex;
    }
    if (ctx->json) {
        ex = stats_json(ctx, &cu.data, &au.data);
    } else if (gr_cli_stats_print(ctx->out, &cu.data, &au.data, GR_CLI_WIDTH) < 0) {
        ex = nomem(ctx);
    }
    msgpack_unpacked_destroy(&au);
    gr_cli_reply_clear(&arep);
    msgpack_unpacked_destroy(&cu);
    gr_cli_reply_clear(&crep);
    gr_cli_conn_close(c);
    return ex != GR_CLI_EXIT_OK ? ex : failed > 0 ? GR_CLI_EXIT_REMOTE : GR_CLI_EXIT_OK;
}

/* ------------------------------------------------------------ forget */

int gr_cli_cmd_forget(const gr_cli_ctx *ctx, int argc, char **argv)
{
    const char *node = argv[0];
    gr_cli_reply rep = {0};
    gr_cli_conn *c = NULL;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int64_t deadline = gr_cli_now_ms() + ctx->timeout_ms;
    int ex;

    (void)argc;
    if (gr_nodename_check(node, strlen(node)) < 0) {
        return gr_cli_usage_error(ctx, "forget", "'%s' is not a node name (NAME@HOST)", node);
    }
    if ((ex = gr_cli_open(ctx, deadline, &c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 1) < 0 || gr_term_pack_cstr(&pk, node) < 0) {
        msgpack_sbuffer_destroy(&sb);
        gr_cli_conn_close(c);
        return nomem(ctx);
    }
    ex = gr_cli_rpc(ctx, c, NULL, "node", "forget", &sb, deadline, &rep);
    msgpack_sbuffer_destroy(&sb);
    if (ex == GR_CLI_EXIT_OK) {
        if (ctx->json) {
            fprintf(ctx->out, "\"ok\"\n");
        } else {
            fprintf(ctx->out, "ok: %s forgot %s and told the members up to forget it\n",
                    gr_cli_conn_peer(c), node);
        }
    }
    gr_cli_reply_clear(&rep);
    gr_cli_conn_close(c);
    return ex;
}

/* ------------------------------------------------------------ info */

#define INFO_LINKS_MAX 8 /* linked processes asked whether they supervise */

/* module.fn(Args) for a process on `node` ("" or the contacted node:
 * directly; else through rpc.call there). args: one packed msgpack array.
 * gr_cli_call's result: 0 (*ret_rep may hold a remote error) or < 0 with
 * *ret_f filled. */
static int routed_call(const gr_cli_ctx *ctx, gr_cli_conn *c, const char *node, const char *module,
                       const char *fn, const char *args, size_t alen, int64_t deadline,
                       gr_cli_reply *ret_rep, gr_cli_fail *ret_f)
{
    bool direct = node[0] == '\0' || strcmp(node, gr_cli_conn_peer(c)) == 0;
    long left = (long)(deadline - gr_cli_now_ms());
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (direct) {
        return gr_cli_call(c, module, fn, args, alen, deadline, ret_rep, ret_f);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 5) < 0 || gr_term_pack_cstr(&pk, node) < 0 ||
        gr_term_pack_cstr(&pk, module) < 0 || gr_term_pack_cstr(&pk, fn) < 0 ||
        msgpack_sbuffer_write(&sb, args, alen) < 0 ||
        msgpack_pack_int64(&pk, inner_ms(left > 0 ? left : 1)) < 0) {
        msgpack_sbuffer_destroy(&sb);
        ret_f->stage = GR_CLI_STAGE_REQUEST;
        ret_f->code = -ENOMEM;
        return -ENOMEM;
    }
    r = gr_cli_call(c, "rpc", "call", sb.data, sb.size, deadline, ret_rep, ret_f);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* [Term] packed into sb (reset first). 0 or -ENOMEM. */
static int pack_one(msgpack_sbuffer *sb, const msgpack_object *o)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return msgpack_pack_array(&pk, 1) == 0 && msgpack_pack_object(&pk, *o) == 0 ? 0 : -ENOMEM;
}

/* The node of a pid term ("" if it is not a pid). */
static void pid_node(const msgpack_object *pid, char *node, size_t cap)
{
    gr_term_id id;

    node[0] = '\0';
    if (gr_term_parse_id(pid, GR_TERM_EXT_PID, &id) == 0 && id.node_len < cap) {
        memcpy(node, id.node, id.node_len);
        node[id.node_len] = '\0';
    }
}

/* The supervisor of the process whose info is `info`: among its first
 * INFO_LINKS_MAX links, the process running the supervisor behaviour that
 * started last but not after it (its children, linked too, start after it).
 * Copies that pid into *ret (packed, in sb_out); false if none. Failures of
 * these calls are ignored (a link on a node that is gone, say). */
static bool find_supervisor(const gr_cli_ctx *ctx, gr_cli_conn *c, const msgpack_object *info,
                            int64_t deadline, msgpack_sbuffer *sb_out)
{
    const msgpack_object *links = gr_term_map_get(info, "links");
    uint64_t own = map_u64(info, "started_ms"), best = 0;
    msgpack_sbuffer sb;
    bool found = false;

    if (!links || links->type != MSGPACK_OBJECT_ARRAY) {
        return false;
    }
    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; i < links->via.array.size && i < INFO_LINKS_MAX; i++) {
        const msgpack_object *l = &links->via.array.ptr[i];
        char node[GR_NODENAME_MAX + 1];
        gr_cli_reply rep = {0};
        gr_cli_fail f = {0};
        msgpack_unpacked u;
        size_t off = 0;

        pid_node(l, node, sizeof(node));
        if (node[0] == '\0' || pack_one(&sb, l) < 0 ||
            routed_call(ctx, c, node, "proc", "info", sb.data, sb.size, deadline, &rep, &f) < 0) {
            if (f.stage != GR_CLI_STAGE_NONE && f.stage != GR_CLI_STAGE_REQUEST) {
                break; /* the connection is gone: no more calls */
            }
            continue;
        }
        msgpack_unpacked_init(&u);
        if (rep.status == 0 &&
            msgpack_unpack_next(&u, (const char *)rep.result, rep.len, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP &&
            gr_term_is_str(gr_term_map_get(&u.data, "behaviour"), "supervisor")) {
            uint64_t st = map_u64(&u.data, "started_ms");

            if (st <= own && (!found || st >= best)) {
                msgpack_packer pk;

                msgpack_sbuffer_clear(sb_out);
                msgpack_packer_init(&pk, sb_out, msgpack_sbuffer_write);
                found = msgpack_pack_object(&pk, *l) == 0;
                best = st;
            }
        }
        msgpack_unpacked_destroy(&u);
        gr_cli_reply_clear(&rep);
    }
    msgpack_sbuffer_destroy(&sb);
    return found;
}

/* The info map plus "supervisor" (pid or nil) and, when the node has
 * pubsub.owned, "groups" and "topics", packed into out. */
static int info_merge(const msgpack_object *info, const msgpack_sbuffer *sup,
                      const msgpack_object *owned, msgpack_sbuffer *out)
{
    const msgpack_object *topics = owned ? gr_term_map_get(owned, "topics") : NULL,
                         *groups = owned ? gr_term_map_get(owned, "groups") : NULL;
    msgpack_packer pk;
    uint32_t extra = 1 + (topics != NULL) + (groups != NULL);

    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (pack_map_plus(&pk, info, extra) < 0) {
        return -ENOMEM;
    }
    gr_term_pack_cstr(&pk, "supervisor");
    if (sup->size > 0) {
        msgpack_sbuffer_write(out, sup->data, sup->size);
    } else {
        msgpack_pack_nil(&pk);
    }
    if (groups) {
        gr_term_pack_cstr(&pk, "groups");
        msgpack_pack_object(&pk, *groups);
    }
    if (topics) {
        gr_term_pack_cstr(&pk, "topics");
        msgpack_pack_object(&pk, *topics);
    }
    return gr_term_validate(out->data, out->size) < 0 ? -ENOMEM : 0;
}

int gr_cli_cmd_info(const gr_cli_ctx *ctx, int argc, char **argv)
{
    int64_t deadline = gr_cli_now_ms() + ctx->timeout_ms;
    gr_cli_reply rep = {0}, orep = {0};
    msgpack_sbuffer sb, sup, out;
    msgpack_unpacked u, ou;
    const msgpack_object *pid, *owned = NULL;
    gr_cli_fail f = {0};
    gr_cli_conn *c = NULL;
    msgpack_packer pk;
    gr_cli_dest d;
    size_t off = 0;
    int ex;

    (void)argc;
    if (gr_cli_dest_parse(argv[0], &d) < 0) {
        return gr_cli_usage_error(ctx, "info",
                                  "'%s' is not a DEST: a pid <NODE.CREATION.SERIAL.SCHED>, a "
                                  "registered NAME, or NAME@NODE",
                                  argv[0]);
    }
    if ((ex = gr_cli_open(ctx, deadline, &c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sup);
    msgpack_sbuffer_init(&out);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&u);
    msgpack_unpacked_init(&ou);
    if (msgpack_pack_array(&pk, 1) < 0 || gr_cli_dest_pack(&d, &pk) < 0) {
        ex = nomem(ctx);
        goto out;
    }
    if (routed_call(ctx, c, d.node, "proc", "info", sb.data, sb.size, deadline, &rep, &f) < 0) {
        ex = gr_cli_report_fail(ctx, &f);
        goto out;
    }
    if (rep.status < 0) {
        ex = gr_cli_report_remote(ctx, d.node[0] ? d.node : gr_cli_conn_peer(c), &rep);
        goto out;
    }
    if (msgpack_unpack_next(&u, (const char *)rep.result, rep.len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP || !(pid = gr_term_map_get(&u.data, "pid"))) {
        gr_cli_report(ctx, "badterm", "proc.info answered something else than a map");
        ex = GR_CLI_EXIT_REMOTE;
        goto out;
    }
    /* what it holds in pubsub (a node without pubsub.owned: left out) */
    if (pack_one(&sb, pid) == 0 &&
        routed_call(ctx, c, d.node, "pubsub", "owned", sb.data, sb.size, deadline, &orep, &f) ==
            0 &&
        orep.status == 0) {
        off = 0;
        if (msgpack_unpack_next(&ou, (const char *)orep.result, orep.len, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            ou.data.type == MSGPACK_OBJECT_MAP) {
            owned = &ou.data;
        }
    }
    (void)find_supervisor(ctx, c, &u.data, deadline, &sup);
    if (info_merge(&u.data, &sup, owned, &out) < 0) {
        ex = nomem(ctx);
    } else {
        ex = print_doc(ctx, &out, gr_cli_print_info);
    }
out:
    msgpack_unpacked_destroy(&ou);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&out);
    msgpack_sbuffer_destroy(&sup);
    msgpack_sbuffer_destroy(&sb);
    gr_cli_reply_clear(&orep);
    gr_cli_reply_clear(&rep);
    gr_cli_conn_close(c);
    return ex;
}

/* ------------------------------------------------------------ trace */

#define TRACE_POLL_MS 100 /* between two polls of the tracer */

static volatile sig_atomic_t trace_stop;

static void on_trace_sigint(int sig)
{
    (void)sig;
    trace_stop = 1;
}

/* A positive number option of trace: 0 or a usage error's exit code. */
static int trace_num(const gr_cli_ctx *ctx, const char *opt, const char *v, uint64_t max,
                     uint64_t *ret)
{
    char *end = NULL;
    unsigned long long x;

    if (v == NULL) {
        return gr_cli_usage_error(ctx, "trace", "%s needs a value", opt);
    }
    errno = 0;
    x = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || x < 1 || x > max) {
        return gr_cli_usage_error(ctx, "trace", "%s: '%s' is not a number in 1..%llu", opt, v,
                                  (unsigned long long)max);
    }
    *ret = x;
    return 0;
}

/* One event [Kind, Peer, Term, TimeMs]: "HH:MM:SS.mmm KIND PEER TERM" cut to
 * GR_CLI_WIDTH, or a JSON line. */
static void trace_print(const gr_cli_ctx *ctx, const msgpack_object *e)
{
    char *peer = NULL, *term = NULL, kind[8] = "?", clock[16] = "--:--:--.---";
    const msgpack_object *a;
    uint64_t ms;

    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 4) {
        return;
    }
    a = e->via.array.ptr;
    if (a[0].type == MSGPACK_OBJECT_STR) {
        snprintf(kind, sizeof(kind), "%.*s", (int)a[0].via.str.size, a[0].via.str.ptr);
    }
    ms = a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? a[3].via.u64 : 0;
    if (gr_cli_term_to_json(&a[1], 0, &peer) < 0 || gr_cli_term_to_json(&a[2], 0, &term) < 0) {
        free(peer);
        return;
    }
    if (ctx->json) {
        fprintf(ctx->out, "{\"time_ms\":%" PRIu64 ",\"kind\":\"%s\",\"peer\":%s,\"term\":%s}\n", ms,
                kind, peer, term);
    } else {
        time_t sec = (time_t)(ms / 1000);
        struct tm tm;
        char line[GR_CLI_WIDTH + 1];
        size_t pl = strlen(peer);

        if (localtime_r(&sec, &tm) != NULL) {
            snprintf(clock, sizeof(clock), "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(ms % 1000));
        }
        /* the peer without its JSON quotes */
        if (pl >= 2 && peer[0] == '"') {
            memmove(peer, peer + 1, pl - 2);
            peer[pl - 2] = '\0';
        }
        if (snprintf(line, sizeof(line), "%s %-4s %s %s", clock, kind, peer, term) >=
            (int)sizeof(line)) {
            line[GR_CLI_WIDTH - 1] = '~';
        }
        fprintf(ctx->out, "%s\n", line);
    }
    fflush(ctx->out);
    free(peer);
    free(term);
}

int gr_cli_cmd_trace(const gr_cli_ctx *ctx, int argc, char **argv)
{
    uint64_t max = 100, ms = 10000, rate = 100, events = 0, dropped = 0, lost = 0, token = 0;
    const char *dest = NULL, *reason = "tracer gone";
    char reason_buf[32] = "";
    gr_cli_reply rep = {0};
    msgpack_unpacked u;
    msgpack_sbuffer sb, tracer;
    msgpack_packer pk;
    gr_cli_conn *c = NULL;
    gr_cli_fail f = {0};
    struct sigaction sa = {0}, old;
    bool stop_sent = false;
    gr_cli_dest d;
    size_t off = 0;
    int ex = GR_CLI_EXIT_OK;

    for (int i = 0; i < argc;) {
        const char *v = NULL;
        int r;

        if ((r = opt_val(ctx, "trace", argc, argv, &i, "--count", &v)) != 0) {
            if (r < 0 || (r = trace_num(ctx, "--count", v, 100000, &max)) != 0) {
                return r < 0 ? -r : r;
            }
        } else if ((r = opt_val(ctx, "trace", argc, argv, &i, "--time", &v)) != 0) {
            if (r < 0 || (r = trace_num(ctx, "--time", v, 3600000, &ms)) != 0) {
                return r < 0 ? -r : r;
            }
        } else if ((r = opt_val(ctx, "trace", argc, argv, &i, "--rate", &v)) != 0) {
            if (r < 0 || (r = trace_num(ctx, "--rate", v, 100000, &rate)) != 0) {
                return r < 0 ? -r : r;
            }
        } else if (argv[i][0] == '-' || dest != NULL) {
            return gr_cli_usage_error(ctx, "trace", "unexpected argument '%s'", argv[i]);
        } else {
            dest = argv[i++];
        }
    }
    if (dest == NULL) {
        return gr_cli_usage_error(ctx, "trace", "missing argument: expected DEST");
    }
    if (gr_cli_dest_parse(dest, &d) < 0) {
        return gr_cli_usage_error(ctx, "trace",
                                  "'%s' is not a DEST: a pid <NODE.CREATION.SERIAL.SCHED>, a "
                                  "registered NAME, or NAME@NODE",
                                  dest);
    }
    if ((ex = gr_cli_open(ctx, gr_cli_now_ms() + ctx->timeout_ms, &c)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&tracer);
    msgpack_unpacked_init(&u);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    gr_cli_dest_pack(&d, &pk);
    msgpack_pack_map(&pk, ctx->observer_key_file ? 4 : 3);
    gr_term_pack_kv_uint(&pk, "max", max);
    gr_term_pack_kv_uint(&pk, "ms", ms);
    gr_term_pack_kv_uint(&pk, "rate", rate);
    if (ctx->observer_key_file) {
        /* an observer may only trace without ending anybody else's trace */
        gr_term_pack_cstr(&pk, "keep");
        msgpack_pack_true(&pk);
    }
    if (routed_call(ctx, c, d.node, "proc", "trace", sb.data, sb.size,
                    gr_cli_now_ms() + ctx->timeout_ms, &rep, &f) < 0) {
        goto transport;
    }
    if (rep.status < 0) {
        ex = gr_cli_report_remote(ctx, d.node[0] ? d.node : gr_cli_conn_peer(c), &rep);
        goto out;
    }
    {
        const msgpack_object *tp, *gp;
        msgpack_packer tk;

        if (msgpack_unpack_next(&u, (const char *)rep.result, rep.len, &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            !(tp = gr_term_map_get(&u.data, "tracer")) || tp->type != MSGPACK_OBJECT_EXT) {
            gr_cli_report(ctx, "badterm", "proc.trace answered something else");
            ex = GR_CLI_EXIT_REMOTE;
            goto out;
        }
        msgpack_packer_init(&tk, &tracer, msgpack_sbuffer_write);
        msgpack_pack_object(&tk, *tp);
        if ((gp = gr_term_map_get(&u.data, "token")) != NULL &&
            gp->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            token = gp->via.u64; /* read with proc.trace_read (also as an observer) */
        }
        if (!ctx->json && (gp = gr_term_map_get(&u.data, "target")) != NULL) {
            char *t = NULL;

            if (gr_cli_term_to_json(gp, 0, &t) == 0) {
                fprintf(ctx->out,
                        "tracing %s: %" PRIu64 " events, %" PRIu64 " ms, %" PRIu64 "/s at most\n",
                        t, max, ms, rate);
                fflush(ctx->out);
            }
            free(t);
        }
    }
    msgpack_unpacked_destroy(&u);
    msgpack_unpacked_init(&u);
    gr_cli_reply_clear(&rep);
    trace_stop = 0;
    sa.sa_handler = on_trace_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    for (;;) {
        struct timespec ts = {0, TRACE_POLL_MS * 1000000L};
        const msgpack_object *evs, *dn, *v;
        bool stop_now = trace_stop && !stop_sent;

        if (!trace_stop) {
            nanosleep(&ts, NULL);
        }
        stop_now = trace_stop && !stop_sent;
        msgpack_sbuffer_clear(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        msgpack_sbuffer_write(&sb, tracer.data, tracer.size);
        gr_term_pack_cstr(&pk, stop_now ? "stop" : "poll");
        if (token != 0) {
            msgpack_pack_uint64(&pk, token); /* proc.trace_read(Tracer, Op, Token) */
        } else {
            msgpack_pack_int64(&pk, inner_ms(inner_ms(ctx->timeout_ms))); /* an older node */
        }
        if (routed_call(ctx, c, d.node, "proc", token != 0 ? "trace_read" : "call", sb.data,
                        sb.size, gr_cli_now_ms() + ctx->timeout_ms, &rep, &f) < 0) {
            sigaction(SIGINT, &old, NULL);
            goto transport;
        }
        stop_sent = stop_sent || stop_now;
        if (rep.status < 0) {
            gr_cli_reply_clear(&rep);
            break; /* the tracer is gone (noproc): nothing more to read */
        }
        off = 0;
        msgpack_unpacked_destroy(&u);
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, (const char *)rep.result, rep.len, &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            u.data.type != MSGPACK_OBJECT_MAP) {
            gr_cli_reply_clear(&rep);
            break;
        }
        if ((evs = gr_term_map_get(&u.data, "events")) && evs->type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < evs->via.array.size; i++) {
                trace_print(ctx, &evs->via.array.ptr[i]);
            }
            events += evs->via.array.size;
        }
        dropped = map_u64(&u.data, "dropped");
        lost = map_u64(&u.data, "lost");
        dn = gr_term_map_get(&u.data, "done");
        if (dn && dn->type == MSGPACK_OBJECT_BOOLEAN && dn->via.boolean) {
            if ((v = gr_term_map_get(&u.data, "reason")) && v->type == MSGPACK_OBJECT_STR) {
                snprintf(reason_buf, sizeof(reason_buf), "%.*s", (int)v->via.str.size,
                         v->via.str.ptr);
                reason = reason_buf;
            }
            gr_cli_reply_clear(&rep);
            break;
        }
        gr_cli_reply_clear(&rep);
    }
    sigaction(SIGINT, &old, NULL);
    if (ctx->json) {
        fprintf(ctx->out,
                "{\"done\":\"%s\",\"events\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"lost\":%" PRIu64
                "}\n",
                reason, events, dropped, lost);
    } else {
        fprintf(ctx->out,
                "-- %" PRIu64 " events, %" PRIu64 " dropped over the rate, %" PRIu64
                " lost; ended: %s\n",
                events, dropped, lost, reason);
    }
    goto out;
transport:
    ex = gr_cli_report_fail(ctx, &f);
out:
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&tracer);
    msgpack_sbuffer_destroy(&sb);
    gr_cli_reply_clear(&rep);
    gr_cli_conn_close(c);
    return ex;
}
