/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dest.c - parsing and packing a DEST argument (dest.h).
 */
#include "cli/dest.h"

#include "cli/json.h"
#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <string.h>

/* A registered name as the CLI accepts it: 1..255 bytes, no control
 * characters, spaces or '@'. */
static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > GR_TERM_NODE_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch == 0x7f || ch == '@') {
            return 0;
        }
    }
    return 1;
}

int gr_cli_dest_parse(const char *s, gr_cli_dest *ret_d)
{
    size_t len = strlen(s);
    const char *at;
    gr_term_id id;
    gr_cli_dest d;

    memset(&d, 0, sizeof(d));
    if (len > 0 && s[0] == '<' && s[len - 1] == '>') {
        if (gr_cli_pid_parse(s, len, &id) < 0) {
            return GR_EBADARG;
        }
        d.kind = GR_CLI_DEST_PID;
        memcpy(d.node, id.node, id.node_len);
        d.creation = id.creation;
        d.id = id.id;
        *ret_d = d;
        return 0;
    }
    d.kind = GR_CLI_DEST_NAME;
    if ((at = strchr(s, '@')) != NULL) {
        size_t nlen = (size_t)(at - s), rest = len - nlen - 1;

        if (!name_ok(s, nlen) || rest > GR_NODENAME_MAX || gr_nodename_check(at + 1, rest) < 0) {
            return GR_EBADARG;
        }
        memcpy(d.name, s, nlen);
        memcpy(d.node, at + 1, rest);
    } else {
        if (!name_ok(s, len)) {
            return GR_EBADARG;
        }
        memcpy(d.name, s, len);
    }
    *ret_d = d;
    return 0;
}

int gr_cli_dest_pack(const gr_cli_dest *d, msgpack_packer *pk)
{
    if (d->kind == GR_CLI_DEST_PID) {
        return gr_term_pack_id(pk, GR_TERM_EXT_PID, d->node, strlen(d->node), d->creation, d->id) <
                       0
                   ? -ENOMEM
                   : 0;
    }
    return gr_term_pack_cstr(pk, d->name) < 0 ? -ENOMEM : 0;
}
