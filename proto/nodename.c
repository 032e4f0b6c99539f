/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nodename.c - the node name syntax check used by the handshake and the frames.
 */
#include "proto/nodename.h"

#include "proto/err.h"
#include "proto/term.h"

#include <assert.h>

static_assert(GR_NODENAME_MAX == GR_TERM_NODE_MAX, "a pid must be able to carry any node name");

int gr_nodename_check(const char *s, size_t len)
{
    size_t at = 0;
    int ats = 0;

    if (s == NULL || len < 3 || len > GR_NODENAME_MAX) {
        return GR_EBADNODE;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x21 || c > 0x7e) {
            return GR_EBADNODE;
        }
        if (c == '@') {
            at = i;
            ats++;
        }
    }
    if (ats != 1 || at == 0 || at == len - 1) {
        return GR_EBADNODE;
    }
    return 0;
}
