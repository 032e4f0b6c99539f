/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic.h - what a pub/sub topic and a subscription pattern are on the wire.
 *
 * A topic is 1..GR_TOPIC_MAX_LEN bytes of dot-separated tokens ("orders.eu.new").
 * Tokens are non-empty and hold no '.', whitespace, control bytes, '*' or '>'.
 * A pattern (what a subscription names) may use two wildcards, each a whole
 * token: `*` matches exactly one token, `>` matches one or more trailing tokens
 * and must be the last token. A publish names a topic, never a pattern.
 *
 * The grammar lives here, beside node names, because both girderd (which
 * refuses bad topics) and girder (which names the fault before it dials) check
 * it. The subscription index is the daemon's (daemon/pubsub/topic.h).
 * Everything works on (pointer, length) strings, never NUL-terminated ones
 * (msgpack strings are not). Pure code: any thread.
 */
#ifndef GR_PROTO_TOPIC_H
#define GR_PROTO_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define GR_TOPIC_MAX_LEN 255   /* bytes in a topic or pattern (fits a msgpack str8) */
#define GR_TOPIC_MAX_TOKENS 32 /* tokens in a topic or pattern (bounds the trie depth) */

/* Why a topic or pattern was refused; 0 is valid. */
typedef enum gr_topic_err {
    GR_TOPIC_OK = 0,
    GR_TOPIC_EEMPTY,      /* zero bytes */
    GR_TOPIC_ETOOLONG,    /* more than GR_TOPIC_MAX_LEN bytes */
    GR_TOPIC_ETOOMANY,    /* more than GR_TOPIC_MAX_TOKENS tokens */
    GR_TOPIC_EEMPTYTOKEN, /* leading/trailing '.' or ".." */
    GR_TOPIC_EBADCHAR,    /* whitespace, control byte or NUL in a token */
    GR_TOPIC_EPARTIAL,    /* '*' or '>' inside a longer token ("a*", ">b") */
    GR_TOPIC_EWILDCARD,   /* a wildcard in a publish topic */
    GR_TOPIC_EGTNOTLAST,  /* '>' before the last token */
} gr_topic_err;

/* Check s[0..len) as a publish topic (pattern = false) or a subscription
 * pattern (pattern = true). Pure; any thread. */
gr_topic_err gr_topic_check(const char *s, size_t len, bool pattern);

/* Human text for a gr_topic_err ("empty token", ...). Static storage. */
const char *gr_topic_strerror(gr_topic_err e);

/* Does the (valid) pattern match the (valid) topic? The reference matcher,
 * linear in the lengths; the index gives the same answers. Any thread. */
bool gr_topic_match(const char *pattern, size_t plen, const char *topic, size_t tlen);

/* Next token of s[0..len) from *pos: sets *tok and *tl and moves *pos past
 * the dot; false at the end. Start with *pos = 0. */
bool gr_topic_next_token(const char *s, size_t len, size_t *pos, const char **tok, size_t *tl);

#endif /* GR_PROTO_TOPIC_H */
