/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic.c - the topic and pattern grammar: validation, its error texts,
 * tokenising and the reference matcher (proto/topic.h). Pure code, no
 * allocation, any thread; girderd and girder both link it.
 */
#include "proto/topic.h"

#include <stdint.h>
#include <string.h>

/* ---- validation -------------------------------------------------------------- */

static bool bad_byte(unsigned char c)
{
    return c <= 0x20 || c == 0x7f; /* NUL, controls, space */
}

gr_topic_err gr_topic_check(const char *s, size_t len, bool pattern)
{
    size_t start = 0, ntok = 0;

    if (s == NULL || len == 0) {
        return GR_TOPIC_EEMPTY;
    }
    if (len > GR_TOPIC_MAX_LEN) {
        return GR_TOPIC_ETOOLONG;
    }
    for (size_t i = 0; i <= len; i++) {
        size_t tl;
        const char *t;

        if (i < len && s[i] != '.') {
            if (bad_byte((unsigned char)s[i])) {
                return GR_TOPIC_EBADCHAR;
            }
            continue;
        }
        t = s + start;
        tl = i - start;
        if (tl == 0) {
            return GR_TOPIC_EEMPTYTOKEN;
        }
        if (++ntok > GR_TOPIC_MAX_TOKENS) {
            return GR_TOPIC_ETOOMANY;
        }
        if (tl == 1 && (t[0] == '*' || t[0] == '>')) {
            if (!pattern) {
                return GR_TOPIC_EWILDCARD;
            }
            if (t[0] == '>' && i != len) {
                return GR_TOPIC_EGTNOTLAST;
            }
        } else if (memchr(t, '*', tl) || memchr(t, '>', tl)) {
            return GR_TOPIC_EPARTIAL;
        }
        start = i + 1;
    }
    return GR_TOPIC_OK;
}

const char *gr_topic_strerror(gr_topic_err e)
{
    switch (e) {
    case GR_TOPIC_OK:
        return "valid";
    case GR_TOPIC_EEMPTY:
        return "empty topic";
    case GR_TOPIC_ETOOLONG:
        return "topic longer than 255 bytes";
    case GR_TOPIC_ETOOMANY:
        return "more than 32 tokens";
    case GR_TOPIC_EEMPTYTOKEN:
        return "empty token (leading, trailing or double '.')";
    case GR_TOPIC_EBADCHAR:
        return "whitespace or control byte in a token";
    case GR_TOPIC_EPARTIAL:
        return "'*' or '>' must be a whole token";
    case GR_TOPIC_EWILDCARD:
        return "wildcard in a publish topic";
    case GR_TOPIC_EGTNOTLAST:
        return "'>' must be the last token";
    }
    return "invalid topic";
}

/* Next token of s[pos..len): sets tok and tl, moves pos past the dot.
 * false at the end. */
bool gr_topic_next_token(const char *s, size_t len, size_t *pos, const char **tok, size_t *tl)
{
    const char *dot;

    if (*pos > len) {
        return false;
    }
    *tok = s + *pos;
    dot = memchr(*tok, '.', len - *pos);
    *tl = dot ? (size_t)(dot - *tok) : len - *pos;
    *pos += *tl + 1;
    return true;
}

bool gr_topic_match(const char *pattern, size_t plen, const char *topic, size_t tlen)
{
    size_t pp = 0, tp = 0, pl, tl;
    const char *pt, *tt;

    for (;;) {
        bool hp = gr_topic_next_token(pattern, plen, &pp, &pt, &pl);
        bool ht = gr_topic_next_token(topic, tlen, &tp, &tt, &tl);

        if (!hp || !ht) {
            return !hp && !ht;
        }
        if (pl == 1 && pt[0] == '>') {
            return true; /* ht: at least one token left */
        }
        if (!(pl == 1 && pt[0] == '*') && (pl != tl || memcmp(pt, tt, tl) != 0)) {
            return false;
        }
    }
}
