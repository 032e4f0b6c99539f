/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cookie.h - the cluster secret: where it comes from, and making a new one.
 *
 * Nodes and clients holding the same cookie may talk to each other. It is never
 * sent: the handshake proves knowledge of it (handshake.h). Sources, first match
 * wins (gr_cookie_resolve):
 *   1. an explicit file (--cookie-file FILE)
 *   2. GIRDER_COOKIE, the cookie itself
 *   3. GIRDER_COOKIE_FILE, a file name
 *   4. the default file: $HOME/.girder.cookie, or /var/lib/girder/cookie when
 *      HOME is unset or empty (a service account: the systemd unit's state dir)
 * A cookie file must be a regular file not readable or writable by group or
 * others (mode 0400 or 0600, like Erlang's .erlang.cookie). Trailing CR/LF bytes
 * are stripped from any source; an empty cookie is refused. A cookie should be
 * high-entropy: anyone who completes a handshake as the responder can test
 * guesses offline (gr_cookie_generate makes 256 random bits).
 *
 * A gr_cookie holds the secret: wipe it with gr_cookie_wipe on every path.
 *
 * Threading: these functions read the environment (getenv); call them at
 * startup, before other threads may change it.
 */
#ifndef GR_COOKIE_H
#define GR_COOKIE_H

#include <stddef.h>
#include <stdint.h>

#define GR_COOKIE_MAX 1024                              /* longest cookie, in bytes */
#define GR_COOKIE_ENV "GIRDER_COOKIE"                   /* variable holding the cookie */
#define GR_COOKIE_FILE_ENV "GIRDER_COOKIE_FILE"         /* variable naming the cookie file */
#define GR_COOKIE_DEFAULT_NAME ".girder.cookie"         /* under $HOME */
#define GR_COOKIE_SERVICE_PATH "/var/lib/girder/cookie" /* when HOME is unset */
#define GR_COOKIE_PATH_MAX 4096 /* longest path gr_cookie_default_path makes */

/* The cluster secret. */
typedef struct gr_cookie {
    uint8_t bytes[GR_COOKIE_MAX]; /* secret bytes, not NUL-terminated */
    size_t len;                   /* 1..GR_COOKIE_MAX */
} gr_cookie;

/* Read the cookie file at `path`. Returns 0 and fills *ret_cookie, or: -errno
 * from open/read (-ENOENT, -EACCES ...), -EINVAL if not a regular file,
 * GR_ECOOKIEPERM if group or others have any permission on it, -EFBIG if larger
 * than GR_COOKIE_MAX plus a line ending, GR_ENOCOOKIE if empty once CR/LF are
 * stripped. Wipes its own buffers on every path. */
int gr_cookie_load_file(const char *path, gr_cookie *ret_cookie);

/* Take the cookie from the GIRDER_COOKIE variable. Returns 0, -ENOENT if unset,
 * GR_ENOCOOKIE if empty, -EFBIG if too long. */
int gr_cookie_from_env(gr_cookie *ret_cookie);

/* The default cookie file name (see above) into buf[0..cap), NUL-terminated.
 * Returns 0 or -ENAMETOOLONG. */
int gr_cookie_default_path(char *buf, size_t cap);

/* Find the cookie by the order above; `path` is the explicit file or NULL.
 * Returns 0 or the error of the first source that exists (a missing default
 * file is -ENOENT). */
int gr_cookie_resolve(const char *path, gr_cookie *ret_cookie);

/* Create a new random cookie file at `path`: 32 random bytes as 43 characters of
 * URL-safe base64 and a newline, mode 0400, never over an existing file or
 * through a symlink. Returns 0 (and the cookie in *ret_cookie if not NULL),
 * -EEXIST, or another -errno (the partial file is removed). */
int gr_cookie_generate(const char *path, gr_cookie *ret_cookie);

/* Erase the secret. NULL-safe. */
void gr_cookie_wipe(gr_cookie *c);

#endif
