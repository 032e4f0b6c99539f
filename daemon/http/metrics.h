/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h - writing the Prometheus text exposition format (version 0.0.4)
 * into a libevent evbuffer: a family's # HELP and # TYPE lines, samples with
 * labels, and histograms.
 *
 * The format, as the writers produce it:
 *   # HELP NAME TEXT          TEXT with \ and newline escaped as \\ and \n
 *   # TYPE NAME TYPE          counter, gauge or histogram
 *   NAME{L="V",...} VALUE     V with \, " and newline escaped as \\, \" and \n
 * A histogram NAME writes NAME_bucket{...,le="B"} for every bound B, then
 * le="+Inf", each cumulative (the count of observations <= B), then NAME_sum
 * and NAME_count (= the +Inf bucket).
 *
 * Names and label names are the caller's constants and are not checked;
 * label values and help texts may be anything (node names come from the
 * network). Pure functions of their arguments; any thread, on its own buffer.
 * Each returns 0 or -ENOMEM (the buffer then holds a partial line).
 */
#ifndef GR_HTTP_METRICS_H
#define GR_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* One label of a sample. */
typedef struct gr_http_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, a constant */
    const char *value; /* any text, escaped on output */
} gr_http_label;

/* The # HELP and # TYPE lines of family `name`. */
int gr_http_metric_head(struct evbuffer *b, const char *name, const char *type, const char *help);

/* One sample: name{labels} v. nlabels 0: no braces. */
int gr_http_metric_u64(struct evbuffer *b, const char *name, const gr_http_label *labels,
                       size_t nlabels, uint64_t v);
int gr_http_metric_f64(struct evbuffer *b, const char *name, const gr_http_label *labels,
                       size_t nlabels, double v);

/* A histogram's samples (after its head): bounds[nbounds] ascending upper
 * bounds (in the metric's unit), counts[nbounds + 1] per-bucket observation
 * counts, not cumulative (counts[nbounds]: above the last bound); sum: the
 * total of the observations. */
int gr_http_metric_histogram(struct evbuffer *b, const char *name, const gr_http_label *labels,
                             size_t nlabels, const double *bounds, const uint64_t *counts,
                             size_t nbounds, double sum);

/* Append s as a label value: \ " and newline escaped. */
int gr_http_metric_escape(struct evbuffer *b, const char *s);

#endif
