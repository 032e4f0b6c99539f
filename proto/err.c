/* SPDX-License-Identifier: Apache-2.0 */
/*
 * err.c - message and reason-ID lookup for the codes in err.h.
 */
#include "proto/err.h"

#include <errno.h>
#include <string.h>

const char *gr_strerror(int err)
{
    switch (err) {
#define GR_ERR_CASE(name, value, id, msg)                                                          \
    case name:                                                                                     \
        return msg;
        GR_ERR_MAP(GR_ERR_CASE)
#undef GR_ERR_CASE
    default:
        break;
    }
    if (err == 0) {
        return "success";
    }
    if (err < 0 && err > -4096) {
        return strerror(-err);
    }
    return "unknown error";
}

const char *gr_errid(int err)
{
    switch (err) {
#define GR_ERR_CASE(name, value, id, msg)                                                          \
    case name:                                                                                     \
        return id;
        GR_ERR_MAP(GR_ERR_CASE)
#undef GR_ERR_CASE
    default:
        break;
    }
    if (err == 0) {
        return "ok";
    }
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        return n ? n : "errno";
    }
    return "unknown";
}

int gr_err_from_id(const char *id, size_t len)
{
#define GR_ERR_MATCH(name, value, sid, msg)                                                        \
    if (len == sizeof(sid) - 1 && memcmp(id, sid, len) == 0) {                                     \
        return name;                                                                               \
    }
    if (id == NULL) {
        return 0;
    }
    GR_ERR_MAP(GR_ERR_MATCH)
#undef GR_ERR_MATCH
    return 0;
}
