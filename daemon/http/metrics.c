/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c - the Prometheus text format writer (metrics.h). Kept apart from
 * the listener so that its escaping and its cumulative buckets are tested on
 * their own (metrics_test.c) and checked by promtool in the cluster tests.
 */
#include "http/metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append s with backslash and newline escaped, and the double quote too when
 * quote (label values; help texts keep their quotes). */
static int escape(struct evbuffer *b, const char *s, bool quote)
{
    const char *run = s;

    for (const char *p = s;; p++) {
        const char *rep = NULL;

        if (*p == '\\') {
            rep = "\\\\";
        } else if (*p == '\n') {
            rep = "\\n";
        } else if (*p == '"' && quote) {
            rep = "\\\"";
        } else if (*p != '\0') {
            continue;
        }
        if (p > run && evbuffer_add(b, run, (size_t)(p - run)) < 0) {
            return -ENOMEM;
        }
        if (!rep) {
            return 0; /* the NUL */
        }
        if (evbuffer_add(b, rep, 2) < 0) {
            return -ENOMEM;
        }
        run = p + 1;
    }
}

int gr_http_metric_escape(struct evbuffer *b, const char *s)
{
    return escape(b, s, true);
}

int gr_http_metric_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    if (evbuffer_add_printf(b, "# HELP %s ", name) < 0 || escape(b, help, false) < 0 ||
        evbuffer_add_printf(b, "\n# TYPE %s %s\n", name, type) < 0) {
        return -ENOMEM;
    }
    return 0;
}

/* name{labels (and one more, extra_name="extra_value", when extra_name)} */
static int series(struct evbuffer *b, const char *name, const gr_http_label *labels, size_t nlabels,
                  const char *extra_name, const char *extra_value)
{
    size_t total = nlabels + (extra_name != NULL);

    if (evbuffer_add(b, name, strlen(name)) < 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < total; i++) {
        const char *ln = i < nlabels ? labels[i].name : extra_name;
        const char *lv = i < nlabels ? labels[i].value : extra_value;

        if (evbuffer_add_printf(b, "%s%s=\"", i == 0 ? "{" : ",", ln) < 0 ||
            escape(b, lv ? lv : "", true) < 0 || evbuffer_add(b, "\"", 1) < 0) {
            return -ENOMEM;
        }
    }
    if (total && evbuffer_add(b, "}", 1) < 0) {
        return -ENOMEM;
    }
    return 0;
}

int gr_http_metric_u64(struct evbuffer *b, const char *name, const gr_http_label *labels,
                       size_t nlabels, uint64_t v)
{
    if (series(b, name, labels, nlabels, NULL, NULL) < 0 ||
        evbuffer_add_printf(b, " %llu\n", (unsigned long long)v) < 0) {
        return -ENOMEM;
    }
    return 0;
}

/* A float as Prometheus reads it: shortest round-trip text, and NaN/+Inf/-Inf
 * spelt its way. */
static void fmt_f64(char *buf, size_t len, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, len, "%.17g", v);
        /* prefer the short form when it reads back exactly (0.1, not 0.10000000000000001) */
        for (int prec = 1; prec < 17; prec++) {
            char shorter[40];

            snprintf(shorter, sizeof(shorter), "%.*g", prec, v);
            if (strtod(shorter, NULL) == v) {
                snprintf(buf, len, "%s", shorter);
                break;
            }
        }
    }
}

int gr_http_metric_f64(struct evbuffer *b, const char *name, const gr_http_label *labels,
                       size_t nlabels, double v)
{
    char num[40];

    fmt_f64(num, sizeof(num), v);
    if (series(b, name, labels, nlabels, NULL, NULL) < 0 ||
        evbuffer_add_printf(b, " %s\n", num) < 0) {
        return -ENOMEM;
    }
    return 0;
}

int gr_http_metric_histogram(struct evbuffer *b, const char *name, const gr_http_label *labels,
                             size_t nlabels, const double *bounds, const uint64_t *counts,
                             size_t nbounds, double sum)
{
    char bname[128], le[40];
    uint64_t cum = 0;

    snprintf(bname, sizeof(bname), "%s_bucket", name);
    for (size_t i = 0; i <= nbounds; i++) {
        cum += counts[i];
        if (i < nbounds) {
            fmt_f64(le, sizeof(le), bounds[i]);
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        if (series(b, bname, labels, nlabels, "le", le) < 0 ||
            evbuffer_add_printf(b, " %llu\n", (unsigned long long)cum) < 0) {
            return -ENOMEM;
        }
    }
    snprintf(bname, sizeof(bname), "%s_sum", name);
    if (gr_http_metric_f64(b, bname, labels, nlabels, sum) < 0) {
        return -ENOMEM;
    }
    snprintf(bname, sizeof(bname), "%s_count", name);
    return gr_http_metric_u64(b, bname, labels, nlabels, cum);
}
