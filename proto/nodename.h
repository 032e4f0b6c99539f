/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nodename.h - what a node name is on the wire.
 *
 * A node name is "name@host": 3..GR_NODENAME_MAX bytes of printable ASCII
 * (0x21..0x7e), exactly one '@', with a non-empty part on each side. The host
 * part is what peers dial (a DNS name or an address). Destinations such as
 * "worker@b@10.0.0.2" are split at the first '@' by the CLI before a node name
 * ever reaches this check.
 */
#ifndef GR_NODENAME_H
#define GR_NODENAME_H

#include <stddef.h>

#define GR_NODENAME_MAX 255 /* longest node name; equals GR_TERM_NODE_MAX */

/* Is s[0..len) a well-formed node name? Returns 0 or GR_EBADNODE. s need not be
 * NUL-terminated; a NUL byte inside makes it malformed. Pure; any thread. */
int gr_nodename_check(const char *s, size_t len);

#endif
