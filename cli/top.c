/* SPDX-License-Identifier: Apache-2.0 */
/*
 * top.c - `girder top`: the fleet's nodes (state, scheduler utilisation,
 * message rates, processes, memory) and its busiest processes, sampled every
 * -i seconds through fleet.c's fan-out and drawn with ncurses; --once prints
 * one frame as text (or JSON) instead.
 *
 * Design notes
 * - One refresh is three fan-outs on one connection: sys.counters,
 *   sys.memory (optional: an older node lacks it) and a ranked
 *   proc.snapshot: each node's GR_CLI_PS_FIRST_PAGE processes with the
 *   largest cumulative counter behind the sort key (work, handled, mailbox,
 *   memory), chosen on the node over ALL its processes, so the busiest
 *   process of a node with 100,000 is among them. Rates are the differences
 *   of cumulative counters between two samples over the time between them,
 *   computed here, never on the nodes; the node ranks by the cumulative
 *   count, so a process that was busy long ago and is idle now may hold a
 *   place (1,024 places per node).
 * - The terminal: newterm (never initscr, which exits on an unknown TERM),
 *   cbreak, no echo, no cursor. Between refreshes the loop sleeps in poll(2)
 *   on stdin, so a key is served at once and an idle `top` costs nothing.
 *   SIGINT (Ctrl-C), SIGTERM and SIGHUP set a flag that ends the loop, and
 *   endwin() runs on every way out, so the shell gets its terminal back.
 *   ncurses' own SIGWINCH handling turns a resize into KEY_RESIZE.
 * - While the screen is up, failures cannot go to stderr (they would land
 *   on the screen): each refresh gets a memory stream as ctx->err, and its
 *   last line becomes the status line. A lost connection is dialled again
 *   at the next refresh.
 */
#include "cli/top.h"

#include "cli/fail.h"
#include "cli/print.h"
#include "proto/err.h"
#include "proto/term.h"

#include <curses.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INTERVAL_MIN_MS 100     /* -i floor */
#define INTERVAL_MAX_MS 3600000 /* -i ceiling */
#define ONCE_PROCS 20           /* --once: process rows (--rows) */

/* ------------------------------------------------------------ pure pieces */

static uint64_t map_u64(const msgpack_object *m, const char *k, bool *ret_has)
{
    const msgpack_object *v = m ? gr_term_map_get(m, k) : NULL;

    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (ret_has) {
            *ret_has = true;
        }
        return v->via.u64;
    }
    return 0;
}

/* The {"ok": R} value for node name in fan-out map m, or NULL. */
static const msgpack_object *fan_find(const msgpack_object *m, const char *name)
{
    char node[GR_NODENAME_MAX + 1];
    const msgpack_object *ok;
    const char *err;

    for (uint32_t i = 0; m && m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
        if (gr_cli_fleet_entry(m, i, node, sizeof(node), &ok, &err) && strcmp(node, name) == 0) {
            return ok;
        }
    }
    return NULL;
}

int gr_cli_top_take_nodes(gr_cli_top_sample *s, const msgpack_object *counters,
                          const msgpack_object *memory)
{
    gr_cli_top_node *v;
    size_t n;

    if (counters->type != MSGPACK_OBJECT_MAP) {
        return GR_EBADTERM;
    }
    n = counters->via.map.size;
    if ((v = calloc(n ? n : 1, sizeof(*v))) == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        gr_cli_top_node *d = &v[i];
        const msgpack_object *ok, *mem;
        const char *err = "error";
        bool hb = false, hw = false;

        if (!gr_cli_fleet_entry(counters, i, d->name, sizeof(d->name), &ok, &err)) {
            free(v);
            return GR_EBADTERM;
        }
        d->in_s = d->out_s = d->handled_s = d->util = -1;
        d->ok = ok != NULL;
        snprintf(d->state, sizeof(d->state), "%s", ok ? "ok" : err);
        if (!ok) {
            continue;
        }
        d->frames_in = map_u64(ok, "frames_in", NULL);
        d->frames_out = map_u64(ok, "frames_out", NULL);
        d->handled = map_u64(ok, "messages_handled", NULL);
        d->processes = map_u64(ok, "processes", NULL);
        d->busy_us = map_u64(ok, "sched_busy_us", &hb);
        d->wall_us = map_u64(ok, "sched_wall_us", &hw);
        d->has_sched = hb && hw;
        if ((mem = fan_find(memory, d->name)) != NULL) {
            d->memory = map_u64(mem, "rss", NULL);
        }
    }
    free(s->nodes);
    s->nodes = v;
    s->nnodes = n;
    return 0;
}

int gr_cli_top_take_procs(gr_cli_top_sample *s, const msgpack_object *snapshots)
{
    for (size_t ni = 0; ni < s->nnodes; ni++) {
        const msgpack_object *ok = fan_find(snapshots, s->nodes[ni].name), *procs;
        gr_cli_top_proc *v;

        if (!ok || !(procs = gr_term_map_get(ok, "processes")) ||
            procs->type != MSGPACK_OBJECT_ARRAY || procs->via.array.size == 0) {
            continue;
        }
        v = realloc(s->procs, (s->nprocs + procs->via.array.size) * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        s->procs = v;
        for (uint32_t i = 0; i < procs->via.array.size; i++) {
            gr_cli_top_proc *p = &s->procs[s->nprocs];
            int r = gr_cli_ps_row_from(&procs->via.array.ptr[i], (uint32_t)ni, &p->row);

            if (r == GR_EBADTERM) {
                continue;
            }
            if (r < 0) {
                return r;
            }
            p->msg_s = p->work_s = -1;
            s->nprocs++;
        }
    }
    return 0;
}

void gr_cli_top_sample_clear(gr_cli_top_sample *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nprocs; i++) {
        gr_cli_ps_row_clear(&s->procs[i].row);
    }
    free(s->procs);
    free(s->nodes);
    memset(s, 0, sizeof(*s));
}

double gr_cli_top_util(uint64_t busy0, uint64_t wall0, uint64_t busy1, uint64_t wall1)
{
    double u;

    if (wall1 <= wall0 || busy1 < busy0) {
        return -1;
    }
    u = (double)(busy1 - busy0) / (double)(wall1 - wall0);
    return u > 1 ? 1 : u;
}

/* Per second: the increase of a cumulative counter over dt_ms, or -1 when it
 * went back (a restarted node). */
static double per_s(uint64_t before, uint64_t after, int64_t dt_ms)
{
    if (after < before || dt_ms <= 0) {
        return -1;
    }
    return (double)(after - before) * 1000.0 / (double)dt_ms;
}

static int cmp_node_pid(const void *a, const void *b, void *arg)
{
    const gr_cli_top_proc *x = a, *y = b;
    const gr_cli_top_sample *s = arg;
    int c = strcmp(s->nodes[x->row.node].name, s->nodes[y->row.node].name);

    if (c != 0) {
        return c;
    }
    return x->row.id < y->row.id ? -1 : x->row.id > y->row.id;
}

/* The process of prev (sorted by node name, pid) with that node and pid. */
static const gr_cli_top_proc *find_proc(const gr_cli_top_sample *prev, const char *node,
                                        uint64_t id)
{
    size_t lo = 0, hi = prev->nprocs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const gr_cli_top_proc *p = &prev->procs[mid];
        int c = strcmp(prev->nodes[p->row.node].name, node);

        if (c == 0) {
            c = p->row.id < id ? -1 : p->row.id > id;
        }
        if (c == 0) {
            return p;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

void gr_cli_top_rates(gr_cli_top_sample *prev, gr_cli_top_sample *cur)
{
    int64_t dt;

    if (prev == NULL || prev->nnodes == 0) {
        return;
    }
    dt = cur->t_ms - prev->t_ms;
    for (size_t i = 0; i < cur->nnodes; i++) {
        gr_cli_top_node *n = &cur->nodes[i];
        const gr_cli_top_node *o = NULL;

        for (size_t k = 0; k < prev->nnodes && o == NULL; k++) {
            if (strcmp(prev->nodes[k].name, n->name) == 0 && prev->nodes[k].ok) {
                o = &prev->nodes[k];
            }
        }
        if (o == NULL || !n->ok) {
            continue;
        }
        n->in_s = per_s(o->frames_in, n->frames_in, dt);
        n->out_s = per_s(o->frames_out, n->frames_out, dt);
        n->handled_s = per_s(o->handled, n->handled, dt);
        if (n->has_sched && o->has_sched) {
            n->util = gr_cli_top_util(o->busy_us, o->wall_us, n->busy_us, n->wall_us);
        }
    }
    qsort_r(prev->procs, prev->nprocs, sizeof(*prev->procs), cmp_node_pid, prev);
    for (size_t i = 0; i < cur->nprocs; i++) {
        gr_cli_top_proc *p = &cur->procs[i];
        const gr_cli_top_proc *o = find_proc(prev, cur->nodes[p->row.node].name, p->row.id);

        if (o != NULL) {
            p->msg_s = per_s(o->row.handled, p->row.handled, dt);
            p->work_s = per_s(o->row.work, p->row.work, dt);
        }
    }
}

static int cmp_desc_d(double x, double y)
{
    return x > y ? -1 : x < y;
}

static int cmp_proc(const void *a, const void *b, void *arg)
{
    const gr_cli_top_proc *x = a, *y = b;
    const gr_cli_top_key k = *(const gr_cli_top_key *)arg;
    int c = 0;

    switch (k) {
    case GR_CLI_TOP_WORK:
        c = cmp_desc_d(x->work_s, y->work_s);
        break;
    case GR_CLI_TOP_RATE:
        c = cmp_desc_d(x->msg_s, y->msg_s);
        break;
    case GR_CLI_TOP_MAILBOX:
        c = x->row.mailbox > y->row.mailbox ? -1 : x->row.mailbox < y->row.mailbox;
        break;
    case GR_CLI_TOP_MEMORY:
        c = x->row.memory > y->row.memory ? -1 : x->row.memory < y->row.memory;
        break;
    }
    if (c == 0) {
        c = x->row.node < y->row.node ? -1 : x->row.node > y->row.node;
    }
    if (c == 0) {
        c = x->row.id < y->row.id ? -1 : x->row.id > y->row.id;
    }
    return c;
}

void gr_cli_top_sort(gr_cli_top_sample *s, gr_cli_top_key key)
{
    qsort_r(s->procs, s->nprocs, sizeof(*s->procs), cmp_proc, &key);
}

static const struct {
    char press;
    const char *name;
    const char *title;
    gr_cli_top_key key;
} KEYS[] = {
    {'w', "work", "work/s", GR_CLI_TOP_WORK},
    {'r', "rate", "msgs/s", GR_CLI_TOP_RATE},
    {'m', "mailbox", "mailbox", GR_CLI_TOP_MAILBOX},
    {'M', "memory", "memory", GR_CLI_TOP_MEMORY},
};

int gr_cli_top_key_parse(const char *s, gr_cli_top_key *ret_k)
{
    if (s == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++) {
        if ((s[0] == KEYS[i].press && s[1] == '\0') || strcmp(s, KEYS[i].name) == 0) {
            *ret_k = KEYS[i].key;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *key_title(gr_cli_top_key k)
{
    for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++) {
        if (KEYS[i].key == k) {
            return KEYS[i].title;
        }
    }
    return "?";
}

/* A rate cell: compact, "-" when unknown. */
static const char *rate_cell(double v, char *buf, size_t cap)
{
    if (v < 0) {
        return "-";
    }
    return gr_cli_compact((uint64_t)llround(v), false, buf, cap);
}

/* s cut to w bytes, the last '~' when cut. */
static const char *cut(const char *s, int w, char *buf, size_t cap)
{
    if (s == NULL || s[0] == '\0') {
        return "-";
    }
    if ((int)strlen(s) <= w) {
        return s;
    }
    snprintf(buf, cap, "%.*s~", w - 1, s);
    return buf;
}

size_t gr_cli_top_ps_args(gr_cli_top_key k, char buf[16])
{
    static const char *const field[] = {"work", "handled", "mailbox", "memory"};
    const char *f = (unsigned)k < 4 ? field[k] : "work";
    size_t n = strlen(f);

    /* [GR_CLI_PS_FIRST_PAGE, nil, Field]: fixarray(3), uint16, nil, fixstr */
    buf[0] = (char)0x93;
    buf[1] = (char)0xcd;
    buf[2] = (char)(GR_CLI_PS_FIRST_PAGE >> 8);
    buf[3] = (char)(GR_CLI_PS_FIRST_PAGE & 0xff);
    buf[4] = (char)0xc0;
    buf[5] = (char)(0xa0 | n);
    memcpy(buf + 6, f, n);
    return 6 + n;
}

/* NODE 24, STATE 8, UTIL 5, IN/s OUT/s MSG/s PROCS MEM 6 each: 74 columns. */
#define NODE_FMT "%-24s %-8s %5s %6s %6s %6s %6s %6s\n"
/* PID 10, NAME 14, BEHAVIOUR 10, MBOX MSG/s WORK/s MEM 6 each, NODE 15: 80. */
#define PROC_FMT "%-10s %-14s %-10s %6s %6s %6s %6s %s\n"
#define PROC_NODE_W 15

size_t gr_cli_top_render(FILE *f, const gr_cli_top_sample *s, const gr_cli_top_view *v,
                         size_t ret_hdr[2])
{
    char title[GR_CLI_WIDTH + 1];
    size_t lines = 0, nodes = s->nnodes < v->max_nodes ? s->nnodes : v->max_nodes;
    size_t procs = s->nprocs < v->max_procs ? s->nprocs : v->max_procs;

    snprintf(title, sizeof(title), "girder top: %zu node%s, %zu processes, every %.1fs, by %s%s%s",
             s->nnodes, s->nnodes == 1 ? "" : "s", s->nprocs, (double)v->interval_ms / 1000.0,
             key_title(v->key), v->contacted ? ", via " : "", v->contacted ? v->contacted : "");
    fprintf(f, "%s\n", title);
    lines++;
    if (ret_hdr) {
        ret_hdr[0] = lines;
    }
    fprintf(f, NODE_FMT, "NODE", "STATE", "UTIL", "IN/s", "OUT/s", "MSG/s", "PROCS", "MEM");
    lines++;
    for (size_t i = 0; i < nodes; i++) {
        const gr_cli_top_node *n = &s->nodes[i];
        char b[8][32], util[16] = "-";

        if (n->util >= 0) {
            snprintf(util, sizeof(util), "%.0f%%", n->util * 100.0);
        }
        fprintf(f, NODE_FMT, cut(n->name, 24, b[0], sizeof(b[0])), cut(n->state, 8, b[1], 16), util,
                rate_cell(n->in_s, b[2], sizeof(b[2])), rate_cell(n->out_s, b[3], sizeof(b[3])),
                rate_cell(n->handled_s, b[4], sizeof(b[4])),
                n->ok ? gr_cli_compact(n->processes, false, b[5], sizeof(b[5])) : "-",
                n->memory ? gr_cli_compact(n->memory, true, b[6], sizeof(b[6])) : "-");
        lines++;
    }
    if (nodes < s->nnodes) {
        fprintf(f, "(%zu more nodes)\n", s->nnodes - nodes);
        lines++;
    }
    fputc('\n', f);
    lines++;
    if (ret_hdr) {
        ret_hdr[1] = lines;
    }
    fprintf(f, PROC_FMT, "PID", "NAME", "BEHAVIOUR", "MBOX", "MSG/s", "WORK/s", "MEM", "NODE");
    lines++;
    for (size_t i = 0; i < procs; i++) {
        const gr_cli_top_proc *p = &s->procs[i];
        char pid[32], b[8][32];

        snprintf(pid, sizeof(pid), "%" PRIu64 ".%u", p->row.id >> 8, (unsigned)(p->row.id & 0xff));
        fprintf(f, PROC_FMT, cut(pid, 10, b[0], sizeof(b[0])),
                cut(p->row.name, 14, b[1], sizeof(b[1])),
                cut(p->row.behaviour, 10, b[2], sizeof(b[2])),
                gr_cli_compact(p->row.mailbox, false, b[3], sizeof(b[3])),
                rate_cell(p->msg_s, b[4], sizeof(b[4])), rate_cell(p->work_s, b[5], sizeof(b[5])),
                gr_cli_compact(p->row.memory, true, b[6], sizeof(b[6])),
                cut(s->nodes[p->row.node].name, PROC_NODE_W, b[7], sizeof(b[7])));
        lines++;
    }
    return lines;
}

/* ------------------------------------------------------------ sampling */

static volatile sig_atomic_t top_stop; /* set by SIGINT / SIGTERM / SIGHUP */

static void on_top_signal(int sig)
{
    (void)sig;
    top_stop = 1;
}

typedef struct top_run {
    gr_cli_ctx ctx;     /* the caller's, with err redirected while the screen is up */
    gr_cli_conn *c;     /* NULL: dial at the next refresh */
    bool only;          /* --only */
    long interval_ms;   /* -i */
    gr_cli_top_key key; /* current sort order */
    size_t rows;        /* --once: process rows */
    char contacted[GR_NODENAME_MAX + 1];
} top_run;

/* One fan-out into *ret_u (and its reply into *ret_rep). Exit code, or -1
 * (quiet only) when the answer is not usable. */
static int fan(top_run *t, int64_t deadline, bool quiet, const char *module, const char *fn,
               const char *args, size_t alen, gr_cli_reply *ret_rep, msgpack_unpacked *ret_u)
{
    return gr_cli_fleet_fan_out(&t->ctx, t->c, deadline, t->only, quiet, module, fn, args, alen,
                                ret_rep, ret_u);
}

/* One refresh into *ret (cleared first). Exit code: a failure is reported on
 * t->ctx.err and the connection is dropped. Caller's thread. */
static int take_sample(top_run *t, gr_cli_top_sample *ret)
{
    static const char noargs[] = {(char)0x90};
    char ps_args[16];
    size_t ps_len = gr_cli_top_ps_args(t->key, ps_args);
    int64_t deadline = gr_cli_now_ms() + t->ctx.timeout_ms;
    gr_cli_reply crep = {0}, mrep = {0}, prep = {0};
    msgpack_unpacked cu, mu, pu;
    int ex, r;

    gr_cli_top_sample_clear(ret);
    if (t->c == NULL) {
        if ((ex = gr_cli_open(&t->ctx, deadline, &t->c)) != GR_CLI_EXIT_OK) {
            t->c = NULL;
            return ex;
        }
        snprintf(t->contacted, sizeof(t->contacted), "%s", gr_cli_conn_peer(t->c));
    }
    if ((ex = fan(t, deadline, false, "sys", "counters", noargs, 1, &crep, &cu)) !=
        GR_CLI_EXIT_OK) {
        gr_cli_conn_close(t->c);
        t->c = NULL;
        return ex;
    }
    ret->t_ms = gr_cli_now_ms();
    msgpack_unpacked_init(&mu);
    mu.data.type = MSGPACK_OBJECT_NIL;
    if ((ex = fan(t, deadline, true, "sys", "memory", noargs, 1, &mrep, &mu)) < 0) {
        ex = GR_CLI_EXIT_OK; /* no sys.memory: MEM shows "-" */
        msgpack_unpacked_init(&mu);
        mu.data.type = MSGPACK_OBJECT_NIL;
    }
    if (ex == GR_CLI_EXIT_OK) {
        ex = fan(t, deadline, false, "proc", "snapshot", ps_args, ps_len, &prep, &pu);
        if (ex == GR_CLI_EXIT_OK) {
            if ((r = gr_cli_top_take_nodes(ret, &cu.data, &mu.data)) < 0 ||
                (r = gr_cli_top_take_procs(ret, &pu.data)) < 0) {
                gr_cli_report(&t->ctx, r == -ENOMEM ? "ENOMEM" : "badterm",
                              r == -ENOMEM ? "out of memory"
                                           : "the fan-out answered something else than a node map");
                ex = r == -ENOMEM ? GR_CLI_EXIT_UNREACHABLE : GR_CLI_EXIT_REMOTE;
            }
            msgpack_unpacked_destroy(&pu);
            gr_cli_reply_clear(&prep);
        }
    }
    msgpack_unpacked_destroy(&mu);
    gr_cli_reply_clear(&mrep);
    msgpack_unpacked_destroy(&cu);
    gr_cli_reply_clear(&crep);
    if (ex != GR_CLI_EXIT_OK) {
        gr_cli_top_sample_clear(ret);
        gr_cli_conn_close(t->c);
        t->c = NULL;
    }
    return ex;
}

/* Sleep ms, or less if a signal stops top. Never fails. */
static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (!top_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ --once */

static json_t *rate_json(double v)
{
    return v < 0 ? json_null() : json_real(round(v * 10.0) / 10.0);
}

/* The frame as one JSON object {"nodes": [...], "processes": [...]}. */
static int once_json(const top_run *t, const gr_cli_top_sample *s)
{
    json_t *doc = json_object(), *nodes = json_array(), *procs = json_array();
    char *text;
    int ex = GR_CLI_EXIT_OK;

    json_object_set_new(doc, "nodes", nodes);
    json_object_set_new(doc, "processes", procs);
    for (size_t i = 0; i < s->nnodes; i++) {
        const gr_cli_top_node *n = &s->nodes[i];

        json_array_append_new(nodes,
                              json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I}", "name", n->name,
                                        "status", n->state, "util", rate_json(n->util), "in_per_s",
                                        rate_json(n->in_s), "out_per_s", rate_json(n->out_s),
                                        "handled_per_s", rate_json(n->handled_s), "processes",
                                        (json_int_t)n->processes, "memory", (json_int_t)n->memory));
    }
    for (size_t i = 0; i < s->nprocs && i < t->rows; i++) {
        const gr_cli_top_proc *p = &s->procs[i];

        json_array_append_new(
            procs, json_pack("{s:s, s:s, s:s?, s:s, s:I, s:o, s:o, s:I, s:I}", "node",
                             s->nodes[p->row.node].name, "pid", p->row.pid, "name", p->row.name,
                             "behaviour", p->row.behaviour, "mailbox", (json_int_t)p->row.mailbox,
                             "msgs_per_s", rate_json(p->msg_s), "work_per_s", rate_json(p->work_s),
                             "memory", (json_int_t)p->row.memory, "work", (json_int_t)p->row.work));
    }
    if ((text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))) ==
        NULL) {
        gr_cli_report(&t->ctx, "ENOMEM", "out of memory");
        ex = GR_CLI_EXIT_UNREACHABLE;
    } else {
        fprintf(t->ctx.out, "%s\n", text);
        free(text);
    }
    json_decref(doc);
    return ex;
}

/* Two samples -i apart, then one frame on stdout. */
static int run_once(top_run *t)
{
    gr_cli_top_sample prev = {0}, cur = {0};
    int ex;

    if ((ex = take_sample(t, &prev)) == GR_CLI_EXIT_OK) {
        nap(t->interval_ms);
        ex = take_sample(t, &cur);
    }
    if (ex == GR_CLI_EXIT_OK) {
        gr_cli_top_view v = {.contacted = t->contacted,
                             .interval_ms = t->interval_ms,
                             .key = t->key,
                             .max_nodes = SIZE_MAX,
                             .max_procs = t->rows};

        gr_cli_top_rates(&prev, &cur);
        gr_cli_top_sort(&cur, t->key);
        if (t->ctx.json) {
            ex = once_json(t, &cur);
        } else {
            gr_cli_top_render(t->ctx.out, &cur, &v, NULL);
        }
    }
    gr_cli_top_sample_clear(&prev);
    gr_cli_top_sample_clear(&cur);
    return ex;
}

/* ------------------------------------------------------------ the screen */

/* Draw the frame of s and the status line. */
static void draw(const top_run *t, const gr_cli_top_sample *s, const char *status)
{
    size_t h = LINES > 7 ? (size_t)LINES : 7, hdr[2] = {SIZE_MAX, SIZE_MAX}, n, y = 0;
    gr_cli_top_view v = {.contacted = t->contacted, .interval_ms = t->interval_ms, .key = t->key};
    char *buf = NULL, *line;
    size_t len = 0;
    FILE *f;

    /* title, node header, blank, process header, status: 5 lines; the
     * nodes get at most half of the rest */
    v.max_nodes = (h - 5) / 2; /* h >= 7: at least 1 */
    n = s->nnodes < v.max_nodes ? s->nnodes : v.max_nodes;
    v.max_procs = h > n + 5 + (n < s->nnodes) ? h - n - 5 - (n < s->nnodes) : 0;
    erase();
    if ((f = open_memstream(&buf, &len)) != NULL) {
        gr_cli_top_render(f, s, &v, hdr);
        fclose(f);
        for (line = buf; line && *line && y + 1 < h; y++) {
            char *nl = strchr(line, '\n');

            if (y == hdr[0] || y == hdr[1]) {
                attron(A_REVERSE);
            }
            mvaddnstr((int)y, 0, line,
                      nl ? (int)(nl - line) < COLS ? (int)(nl - line) : COLS : COLS);
            attroff(A_REVERSE);
            line = nl ? nl + 1 : NULL;
        }
        free(buf);
    }
    mvaddnstr((int)h - 1, 0,
              status && status[0] ? status
                                  : "q quit  w work/s  r msgs/s  m mailbox  M memory  "
                                    "(each node's top 1024)",
              COLS);
    refresh();
}

/* The last non-empty line of a failure stream's text, without "girder: ". */
static void last_line(const char *text, char *out, size_t cap)
{
    const char *end = text + strlen(text), *start;

    while (end > text && end[-1] == '\n') {
        end--;
    }
    start = end;
    while (start > text && start[-1] != '\n') {
        start--;
    }
    if (strncmp(start, "girder: ", 8) == 0) {
        start += 8;
    }
    snprintf(out, cap, "%.*s", (int)(end - start), start);
}

static int run_screen(top_run *t)
{
    gr_cli_top_sample prev = {0}, cur = {0};
    struct sigaction sa = {.sa_handler = on_top_signal}, old[3];
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    char status[GR_CLI_WIDTH + 1] = "";
    SCREEN *scr;
    int ex;

    /* the first sample before the screen: a node that cannot be reached is
     * reported as by any command, with its exit code */
    if ((ex = take_sample(t, &cur)) != GR_CLI_EXIT_OK) {
        return ex;
    }
    if ((scr = newterm(NULL, stdout, stdin)) == NULL) {
        gr_cli_top_sample_clear(&cur);
        gr_cli_report(&t->ctx, "no_terminal",
                      "top: cannot drive this terminal (is TERM set?); try --once");
        return GR_CLI_EXIT_USAGE;
    }
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) {
        sigaction(sigs[i], &sa, &old[i]);
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    gr_cli_top_sort(&cur, t->key);
    draw(t, &cur, status);
    for (int64_t next = gr_cli_now_ms() + t->interval_ms; !top_stop;) {
        int64_t now = gr_cli_now_ms();
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        bool redraw = false, clear_all = false;
        int ch;

        if (now >= next) {
            char *text = NULL;
            size_t tlen = 0;
            FILE *err = open_memstream(&text, &tlen);

            t->ctx.err = err ? err : fopen("/dev/null", "w");
            gr_cli_top_sample_clear(&prev);
            prev = cur;
            memset(&cur, 0, sizeof(cur));
            if (take_sample(t, &cur) == GR_CLI_EXIT_OK) {
                gr_cli_top_rates(&prev, &cur);
                status[0] = '\0';
            } else {
                /* keep showing the last good frame, with the failure below it */
                gr_cli_top_sample_clear(&cur);
                cur = prev;
                memset(&prev, 0, sizeof(prev));
            }
            if (t->ctx.err) {
                fclose(t->ctx.err);
            }
            if (text && text[0]) {
                last_line(text, status, sizeof(status));
            }
            free(text);
            t->ctx.err = stderr;
            gr_cli_top_sort(&cur, t->key);
            draw(t, &cur, status);
            next = gr_cli_now_ms() + t->interval_ms;
            continue;
        }
        if (poll(&pfd, 1, (int)(next - now)) <= 0) {
            continue; /* timeout, or a signal: the loop looks at top_stop */
        }
        while ((ch = getch()) != ERR) {
            char press[2] = {(char)ch, '\0'};
            gr_cli_top_key k;

            if (ch == 'q' || ch == 'Q' || ch == 3 /* ^C when ISIG is off */) {
                top_stop = 1;
            } else if (ch == KEY_RESIZE || ch == 12 /* ^L */) {
                redraw = true;
                clear_all = ch == 12;
            } else if (ch < 128 && gr_cli_top_key_parse(press, &k) == 0) {
                t->key = k;
                gr_cli_top_sort(&cur, t->key);
                redraw = true;
            }
        }
        if (redraw && !top_stop) {
            if (clear_all) {
                clearok(curscr, TRUE);
            }
            draw(t, &cur, status);
        }
    }
    endwin();
    delscreen(scr);
    for (int i = 0; i < 3; i++) {
        sigaction(sigs[i], &old[i], NULL);
    }
    gr_cli_top_sample_clear(&prev);
    gr_cli_top_sample_clear(&cur);
    return GR_CLI_EXIT_OK;
}

/* ------------------------------------------------------------ the command */

/* -i SECONDS: a decimal number of seconds, INTERVAL_MIN_MS..INTERVAL_MAX_MS. */
static int parse_interval(const char *s, long *ret_ms)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v * 1000.0 >= INTERVAL_MIN_MS) ||
        v * 1000.0 > INTERVAL_MAX_MS) {
        return -EINVAL;
    }
    *ret_ms = lround(v * 1000.0);
    return 0;
}

int gr_cli_cmd_top(const gr_cli_ctx *ctx, int argc, char **argv)
{
    top_run t = {.ctx = *ctx,
                 .interval_ms = GR_CLI_TOP_INTERVAL_MS,
                 .key = GR_CLI_TOP_WORK,
                 .rows = ONCE_PROCS};
    bool once = ctx->json; /* --json: one frame, as JSON */
    int ex;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--once") == 0) {
            once = true;
        } else if (strcmp(a, "--only") == 0) {
            t.only = true;
        } else if (strcmp(a, "-i") == 0 || strcmp(a, "--interval") == 0) {
            if (val == NULL || parse_interval(val, &t.interval_ms) < 0) {
                return gr_cli_usage_error(
                    ctx, "top", "%s: '%s' is not a number of seconds (%g..%d)", a, val ? val : "",
                    INTERVAL_MIN_MS / 1000.0, INTERVAL_MAX_MS / 1000);
            }
            i++;
        } else if (strcmp(a, "--sort") == 0) {
            if (val == NULL || gr_cli_top_key_parse(val, &t.key) < 0) {
                return gr_cli_usage_error(ctx, "top",
                                          "--sort: '%s' is not work, rate, mailbox or memory",
                                          val ? val : "");
            }
            i++;
        } else if (strcmp(a, "--rows") == 0) {
            char *end;
            long n = val ? strtol(val, &end, 10) : -1;

            if (val == NULL || *end != '\0' || n < 1 || n > 100000) {
                return gr_cli_usage_error(ctx, "top", "--rows: '%s' is not a count (1..100000)",
                                          val ? val : "");
            }
            t.rows = (size_t)n;
            i++;
        } else {
            return gr_cli_usage_error(ctx, "top", "unknown argument '%s'", a);
        }
    }
    if (!once && (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))) {
        return gr_cli_usage_error(ctx, "top",
                                  "the live view needs a terminal on stdin and stdout; "
                                  "--once prints one frame as text");
    }
    top_stop = 0;
    ex = once ? run_once(&t) : run_screen(&t);
    gr_cli_conn_close(t.c);
    return ex;
}
