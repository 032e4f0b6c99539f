/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resp.h - the Redis protocol (RESP2 and RESP3) as pure functions: an
 * incremental, bounded request parser (multibulk and inline commands) and a
 * reply writer into a growable buffer. No I/O, no allocation beyond the
 * parser's argument array and the writer's buffer. docs/redis.md, "Limits".
 *
 * Threads: none of its own; a parser and a writer belong to one connection
 * and are used by its owning thread only.
 */
#ifndef GR_REDIS_RESP_H
#define GR_REDIS_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults (docs/redis.md "Limits"). Redis allows 512 MiB bulks and 1 GiB of
 * query buffer; a Girder value lives in a table entry (and is copied to every
 * replica), so a bulk is bounded far lower. */
#define GR_RESP_MAX_BULK_DEFAULT (16u << 20)    /* 16 MiB: largest bulk string */
#define GR_RESP_MAX_ARGS_DEFAULT 65536u         /* arguments of one command */
#define GR_RESP_MAX_INLINE (64u << 10)          /* inline line / header line, as Redis */
#define GR_RESP_MAX_REQUEST_DEFAULT (64u << 20) /* bytes of one whole command */
/* Before AUTH, as Redis: at most 10 arguments and 16 KiB per bulk. */
#define GR_RESP_UNAUTH_MAX_ARGS 10u
#define GR_RESP_UNAUTH_MAX_BULK 16384u

typedef struct gr_resp_limits {
    uint64_t max_bulk;    /* largest bulk length accepted */
    uint32_t max_args;    /* largest multibulk count accepted */
    uint64_t max_request; /* largest command, all bytes (headers included) */
} gr_resp_limits;

/* One argument: bytes [off, off+len) of the command (offsets from the
 * command's first byte, the start of the buffer passed to gr_resp_parse). */
typedef struct gr_resp_arg {
    size_t off;
    size_t len;
} gr_resp_arg;

/* Parser state between calls. Zero it, then set lim (zero fields: defaults). */
typedef struct gr_resp_parser {
    gr_resp_limits lim;
    bool unauth;       /* apply the unauthenticated limits (GR_RESP_UNAUTH_*) */
    bool in_multibulk; /* inside a multibulk command */
    uint32_t want;     /* its argument count */
    size_t pos;        /* bytes of the command parsed so far */
    int64_t bulk;      /* length of the bulk being read, -1: its header next */
    gr_resp_arg *args; /* argument array (owned) */
    uint32_t nargs;    /* arguments complete */
    uint32_t cap;      /* slots in args */
    bool inline_cmd;   /* the last command was inline */
    char err[64];      /* a formatted protocol error (ret_err may point here) */
} gr_resp_parser;

/* Parse one command from buf[0, len): buf starts at the command's first byte
 * (the same start on every call until a command completes; the caller may
 * move the bytes, offsets are relative). Inline commands are unescaped in
 * place (quotes, \xHH, as redis-cli sends), hence a mutable buffer.
 * Returns 1: a command of p->nargs >= 1 arguments (p->args) is complete in
 * *ret_used bytes; the arguments stay valid until the next call. 0: incomplete
 * (*ret_used: empty lines skipped, which the caller drops). Negative: a
 * protocol error; *ret_err is Redis's message without "-ERR " (static), e.g.
 * "Protocol error: invalid bulk length", and the connection should be closed
 * after it is sent. */
int gr_resp_parse(gr_resp_parser *p, uint8_t *buf, size_t len, size_t *ret_used,
                  const char **ret_err);
/* Free the argument array. NULL-safe. */
void gr_resp_parser_free(gr_resp_parser *p);

/* ---- replies ----------------------------------------------------------------------------- */

/* A growable output buffer: bytes [off, len) are pending. The owner sends and
 * advances off. proto: 2 or 3 (what the writers below produce). oom: an
 * allocation failed (later writes are dropped; close the connection). */
typedef struct gr_resp_out {
    uint8_t *p;
    size_t off, len, cap;
    size_t limit; /* 0: none; an append that would take the pending bytes above it
                     is dropped and sets oom, as a failed allocation does */
    int proto;
    bool oom;
} gr_resp_out;

void gr_resp_out_free(gr_resp_out *o);
/* Drop sent bytes (off) by moving the pending ones to the front. */
void gr_resp_out_compact(gr_resp_out *o);
/* Pending bytes. */
static inline size_t gr_resp_out_pending(const gr_resp_out *o)
{
    return o->len - o->off;
}

void gr_resp_raw(gr_resp_out *o, const void *b, size_t n);
/* Rewrite the array header written at o->p[at..body) (gr_resp_array of a
 * larger count) to count n, moving what follows: for a reply whose count is
 * known only once its items are written. n must not be above the old count. */
void gr_resp_array_fix(gr_resp_out *o, size_t at, size_t body, size_t n);
void gr_resp_simple(gr_resp_out *o, const char *s); /* +s */
/* -msg: msg is the whole text ("ERR ...", "WRONGTYPE ..."); CR/LF become
 * spaces. */
void gr_resp_error(gr_resp_out *o, const char *msg);
void gr_resp_errorf(gr_resp_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gr_resp_int(gr_resp_out *o, int64_t v);
void gr_resp_bulk(gr_resp_out *o, const void *b, size_t n);
void gr_resp_bulkstr(gr_resp_out *o, const char *s);
void gr_resp_null(gr_resp_out *o);       /* $-1 / _ */
void gr_resp_null_array(gr_resp_out *o); /* *-1 / _ */
void gr_resp_array(gr_resp_out *o, size_t n);
void gr_resp_map(gr_resp_out *o, size_t pairs); /* RESP2: an array of 2n */
void gr_resp_set(gr_resp_out *o, size_t n);     /* RESP2: an array */
void gr_resp_push(gr_resp_out *o, size_t n);    /* RESP2: an array */
void gr_resp_double(gr_resp_out *o, double d);  /* RESP2: a bulk string (gr_resp_fmt_score) */
void gr_resp_bool(gr_resp_out *o, bool b);      /* RESP2: :1 / :0 */
/* RESP3 =len\r\nfmt:text; RESP2 a bulk string. fmt: 3 chars ("txt"). */
void gr_resp_verbatim(gr_resp_out *o, const char *fmt, const void *b, size_t n);

/* Redis's glob match (stringmatchlen): * ? [a-z] [^x] \x; nocase folds ASCII. */
bool gr_resp_glob(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);
/* Strict int64 parse as Redis's string2ll: optional '-', no leading zeros or
 * '+' or spaces, within int64. */
bool gr_resp_str2ll(const char *s, size_t n, int64_t *ret);
/* Bytes that hold any long double as %.17Lf, and the longest float
 * argument + 1 (Redis's MAX_LONG_DOUBLE_CHARS). */
#define GR_RESP_LD_CHARS (5 * 1024)
/* Format a double as Redis does for INCRBYFLOAT (%.17Lf, trailing zeros
 * trimmed). Returns the length written into buf[cap]; with cap >=
 * GR_RESP_LD_CHARS it is never cut (a smaller cap may cut the digits:
 * callers that store the result use GR_RESP_LD_CHARS). */
size_t gr_resp_fmt_double(char *buf, size_t cap, long double d);
/* Format a score as Redis 7.2 replies a double: the shortest form that reads
 * back as d ("1.5", "0.1", "1e+20"), "inf", "-inf". Length written. */
size_t gr_resp_fmt_score(char *buf, size_t cap, double d);

#endif
