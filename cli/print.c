/* SPDX-License-Identifier: Apache-2.0 */
/*
 * print.c - the CLI's human output (aligned tables, durations) and the JSON
 * error document. Tables are built in memory first because a column's width
 * is only known once every row is in.
 */
#include "cli/print.h"

#include "cli/json.h"
#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct gr_cli_table {
    int ncols;                           /* columns */
    char align[GR_CLI_TABLE_COLS_MAX];   /* 'l' or 'r' per column */
    size_t width[GR_CLI_TABLE_COLS_MAX]; /* widest cell so far, header included */
    char **cells;                        /* (rows + 1) * ncols, row 0 the header */
    size_t rows;                         /* rows, header included */
    size_t cap;                          /* rows the cells array holds */
};

int gr_cli_table_new(int ncols, const char *const *headers, const char *align, gr_cli_table **ret_t)
{
    gr_cli_table *t;

    if (ncols < 1 || ncols > GR_CLI_TABLE_COLS_MAX || strlen(align) != (size_t)ncols) {
        return -EINVAL;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        return -ENOMEM;
    }
    t->ncols = ncols;
    memcpy(t->align, align, (size_t)ncols);
    if (gr_cli_table_row(t, headers) < 0) {
        gr_cli_table_free(t);
        return -ENOMEM;
    }
    *ret_t = t;
    return 0;
}

int gr_cli_table_row(gr_cli_table *t, const char *const *cells)
{
    char *row[GR_CLI_TABLE_COLS_MAX] = {0};

    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * (size_t)t->ncols * sizeof(*c));

        if (c == NULL) {
            return -ENOMEM;
        }
        t->cells = c;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++) {
        if ((row[i] = strdup(cells[i] != NULL ? cells[i] : "-")) == NULL) {
            for (int j = 0; j < i; j++) {
                free(row[j]);
            }
            return -ENOMEM;
        }
    }
    for (int i = 0; i < t->ncols; i++) {
        size_t w = strlen(row[i]);

        t->cells[t->rows * (size_t)t->ncols + (size_t)i] = row[i];
        t->width[i] = w > t->width[i] ? w : t->width[i];
    }
    t->rows++;
    return 0;
}

void gr_cli_table_print(const gr_cli_table *t, FILE *f)
{
    for (size_t r = 0; r < t->rows; r++) {
        for (int i = 0; i < t->ncols; i++) {
            const char *c = t->cells[r * (size_t)t->ncols + (size_t)i];
            int w = (int)t->width[i], last = i == t->ncols - 1;

            if (t->align[i] == 'r') {
                fprintf(f, "%*s", w, c);
            } else {
                fprintf(f, "%-*s", last ? 0 : w, c);
            }
            fputs(last ? "\n" : "  ", f);
        }
    }
}

void gr_cli_table_free(gr_cli_table *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t);
}

char *gr_cli_duration(uint64_t ms, char *buf, size_t cap)
{
    uint64_t s = ms / 1000;

    if (ms < 1000) {
        snprintf(buf, cap, "%" PRIu64 "ms", ms);
    } else if (s < 60) {
        snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", s, (ms % 1000) / 100);
    } else if (s < 3600) {
        snprintf(buf, cap, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(buf, cap, "%" PRIu64 "h%" PRIu64 "m", s / 3600, (s % 3600) / 60);
    } else {
        snprintf(buf, cap, "%" PRIu64 "d%" PRIu64 "h", s / 86400, (s % 86400) / 3600);
    }
    return buf;
}

/* A cell from a str or uint value, into buf; NULL ("-") for anything else. */
static const char *cell(const msgpack_object *v, char *buf, size_t cap)
{
    if (v == NULL) {
        return NULL;
    }
    if (v->type == MSGPACK_OBJECT_STR) {
        snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
        return buf;
    }
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(buf, cap, "%" PRIu64, v->via.u64);
        return buf;
    }
    return NULL;
}

/* A table of an array of maps, one row per map made by row(t, map). Returns 0,
 * GR_EBADTERM if o is not an array of maps (nothing printed), or the first
 * error of row (nothing printed). */
static int print_maps(FILE *f, const msgpack_object *o, int ncols, const char *const *hdr,
                      const char *align, int (*row)(gr_cli_table *t, const msgpack_object *m))
{
    gr_cli_table *t = NULL;
    int r;

    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return GR_EBADTERM;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (o->via.array.ptr[i].type != MSGPACK_OBJECT_MAP) {
            return GR_EBADTERM;
        }
    }
    if ((r = gr_cli_table_new(ncols, hdr, align, &t)) < 0) {
        return r;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        if ((r = row(t, &o->via.array.ptr[i])) < 0) {
            gr_cli_table_free(t);
            return r;
        }
    }
    gr_cli_table_print(t, f);
    gr_cli_table_free(t);
    return 0;
}

/* One row of nodes: the cells of the map m. */
static int nodes_row(gr_cli_table *t, const msgpack_object *m)
{
    const msgpack_object *since = gr_term_map_get(m, "since_ms");
    const msgpack_object *queued = gr_term_map_get(m, "queued_bytes"),
                         *busy = gr_term_map_get(m, "busy");
    char name[300], host[300], port[32], hp[340], state[32], creation[32], sb[32], qb[48];
    const char *h = cell(gr_term_map_get(m, "host"), host, sizeof(host));
    const char *p = cell(gr_term_map_get(m, "port"), port, sizeof(port));
    const char *cells[6];

    snprintf(hp, sizeof(hp), "%s%s%s:%s", h != NULL && strchr(h, ':') ? "[" : "",
             h != NULL ? h : "-", h != NULL && strchr(h, ':') ? "]" : "", p != NULL ? p : "-");
    cells[0] = cell(gr_term_map_get(m, "name"), name, sizeof(name));
    cells[1] = hp;
    cells[2] = cell(gr_term_map_get(m, "state"), state, sizeof(state));
    cells[3] = cell(gr_term_map_get(m, "creation"), creation, sizeof(creation));
    cells[4] = since != NULL && since->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                   ? gr_cli_duration(since->via.u64, sb, sizeof(sb))
                   : NULL;
    cells[5] = NULL; /* unsent output on the link; "busy": overloaded */
    if (queued != NULL && queued->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        bool is_busy = busy != NULL && busy->type == MSGPACK_OBJECT_BOOLEAN && busy->via.boolean;

        snprintf(qb, sizeof(qb), "%.1f MiB%s", (double)queued->via.u64 / (1024.0 * 1024.0),
                 is_busy ? " busy" : "");
        cells[5] = queued->via.u64 == 0 && !is_busy ? "0" : qb;
    }
    return gr_cli_table_row(t, cells);
}

int gr_cli_print_nodes(FILE *f, const msgpack_object *o)
{
    static const char *const hdr[] = {"NAME", "HOST:PORT", "STATE", "CREATION", "SINCE", "QUEUED"};

    return print_maps(f, o, 6, hdr, "lllrrr", nodes_row);
}

/* A pid ext as its text "<NODE.CREATION.SERIAL.SCHED>" into buf; NULL if v is
 * not a pid. */
static const char *pid_cell(const msgpack_object *v, char *buf, size_t cap)
{
    gr_term_id id;

    if (v == NULL || gr_term_parse_id(v, GR_TERM_EXT_PID, &id) < 0) {
        return NULL;
    }
    snprintf(buf, cap, "<%.*s.%" PRIu32 ".%" PRIu64 ".%" PRIu64 ">", (int)id.node_len, id.node,
             id.creation, id.id >> 8, id.id & 0xff);
    return buf;
}

/* A two-column table of a map: strings and pids as their text, anything else
 * as compact JSON. */
static int print_kv(FILE *f, const msgpack_object *o, const char *const *hdr, const char *align)
{
    gr_cli_table *t = NULL;
    int r = 0;

    if (o->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADTERM;
    }
    if ((r = gr_cli_table_new(2, hdr, align, &t)) < 0) {
        return r;
    }
    for (uint32_t i = 0; i < o->via.map.size && r == 0; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        char *ks = NULL, *vs = NULL;
        const char *cells[2];

        if (k->type == MSGPACK_OBJECT_STR) {
            ks = strndup(k->via.str.ptr, k->via.str.size);
            r = ks == NULL ? -ENOMEM : 0;
        } else {
            r = gr_cli_term_to_json(k, 0, &ks);
        }
        if (r == 0) {
            char pb[GR_TERM_NODE_MAX + 64];

            if (v->type == MSGPACK_OBJECT_STR) {
                r = (vs = strndup(v->via.str.ptr, v->via.str.size)) == NULL ? -ENOMEM : 0;
            } else if (pid_cell(v, pb, sizeof(pb)) != NULL) {
                r = (vs = strdup(pb)) == NULL ? -ENOMEM : 0;
            } else {
                r = gr_cli_term_to_json(v, 0, &vs);
            }
        }
        if (r == 0) {
            cells[0] = ks;
            cells[1] = vs;
            r = gr_cli_table_row(t, cells);
        }
        free(ks);
        free(vs);
    }
    if (r == 0) {
        gr_cli_table_print(t, f);
    }
    gr_cli_table_free(t);
    return r;
}

int gr_cli_print_stats(FILE *f, const msgpack_object *o)
{
    static const char *const hdr[] = {"NAME", "VALUE"};

    return print_kv(f, o, hdr, "lr");
}

int gr_cli_print_info(FILE *f, const msgpack_object *o)
{
    static const char *const hdr[] = {"KEY", "VALUE"};

    return print_kv(f, o, hdr, "ll");
}

/* One row of procs: the cells of the map m. */
static int procs_row(gr_cli_table *t, const msgpack_object *m)
{
    char pid[GR_TERM_NODE_MAX + 64], name[300], beh[300], status[64], mbox[32], mem[32];
    const char *cells[6];

    cells[0] = pid_cell(gr_term_map_get(m, "pid"), pid, sizeof(pid));
    cells[1] = cell(gr_term_map_get(m, "name"), name, sizeof(name));
    cells[2] = cell(gr_term_map_get(m, "behaviour"), beh, sizeof(beh));
    cells[3] = cell(gr_term_map_get(m, "status"), status, sizeof(status));
    cells[4] = cell(gr_term_map_get(m, "mailbox"), mbox, sizeof(mbox));
    cells[5] = cell(gr_term_map_get(m, "memory"), mem, sizeof(mem));
    return gr_cli_table_row(t, cells);
}

int gr_cli_print_procs(FILE *f, const msgpack_object *o)
{
    static const char *const hdr[] = {"PID", "NAME", "BEHAVIOUR", "STATUS", "MAILBOX", "MEMORY"};

    return print_maps(f, o, 6, hdr, "llllrr", procs_row);
}

/* One row of groups: the cells of the map m. */
static int groups_row(gr_cli_table *t, const msgpack_object *m)
{
    char name[300], members[32];
    const char *cells[2];

    cells[0] = cell(gr_term_map_get(m, "name"), name, sizeof(name));
    cells[1] = cell(gr_term_map_get(m, "members"), members, sizeof(members));
    return gr_cli_table_row(t, cells);
}

int gr_cli_print_groups(FILE *f, const msgpack_object *o, bool scope_given)
{
    static const char *const hdr_scopes[] = {"SCOPE", "JOINS"};
    static const char *const hdr_groups[] = {"GROUP", "MEMBERS"};

    return print_maps(f, o, 2, scope_given ? hdr_groups : hdr_scopes, "lr", groups_row);
}

int gr_cli_print_json_error(FILE *f, const char *reason, const char *message)
{
    msgpack_sbuffer sb;
    int r;

    msgpack_sbuffer_init(&sb);
    if ((r = msgpack_sbuffer_write(&sb, "{\"error\":", 9) < 0 ? -ENOMEM : 0) == 0 &&
        (r = gr_cli_json_put_str(&sb, reason, strlen(reason))) == 0 &&
        (r = msgpack_sbuffer_write(&sb, ",\"message\":", 11) < 0 ? -ENOMEM : 0) == 0 &&
        (r = gr_cli_json_put_str(&sb, message, strlen(message))) == 0) {
        fprintf(f, "%.*s}\n", (int)sb.size, sb.data);
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}
