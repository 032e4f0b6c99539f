/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cookie.c - loading, checking and generating the cluster cookie (cookie.h).
 *
 * Design notes
 * - The file is opened first and checked with fstat on the open descriptor, so
 *   the permissions checked are those of the file actually read.
 * - Reads go into a fixed buffer one byte larger than any acceptable file, so
 *   an oversized file is detected without trusting st_size and without
 *   allocating. Every buffer that held the secret is wiped before returning.
 * - Generation uses O_CREAT|O_EXCL|O_NOFOLLOW with mode 0400: it never replaces
 *   a cookie and never follows a planted symlink.
 */
#include "proto/cookie.h"

#include "proto/err.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX (GR_COOKIE_MAX + 2) /* the cookie plus "\r\n" */
#define GEN_RAW 32                   /* random bytes in a generated cookie */

/* Strip trailing CR/LF from buf[0..*len) and copy into *ret_cookie. */
static int set_cookie(const uint8_t *buf, size_t len, gr_cookie *ret_cookie)
{
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    if (len == 0) {
        return GR_ENOCOOKIE;
    }
    if (len > GR_COOKIE_MAX) {
        return -EFBIG;
    }
    memcpy(ret_cookie->bytes, buf, len);
    ret_cookie->len = len;
    return 0;
}

/* Read at most cap bytes of fd into buf; *ret_len is what was read. */
static int read_all(int fd, uint8_t *buf, size_t cap, size_t *ret_len)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    *ret_len = got;
    return 0;
}

static int check_fd(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (!S_ISREG(st.st_mode)) {
        return -EINVAL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        return GR_ECOOKIEPERM;
    }
    return 0;
}

int gr_cookie_load_file(const char *path, gr_cookie *ret_cookie)
{
    uint8_t buf[FILE_MAX + 1];
    size_t len = 0;
    int fd, r;

    if (path == NULL || path[0] == '\0') {
        return -EINVAL;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        return -errno;
    }
    if ((r = check_fd(fd)) < 0 || (r = read_all(fd, buf, sizeof(buf), &len)) < 0) {
        goto out;
    }
    if (len > FILE_MAX) {
        r = -EFBIG;
        goto out;
    }
    r = set_cookie(buf, len, ret_cookie);
out:
    sodium_memzero(buf, sizeof(buf));
    close(fd);
    return r;
}

int gr_cookie_from_env(gr_cookie *ret_cookie)
{
    const char *v = getenv(GR_COOKIE_ENV);

    if (v == NULL) {
        return -ENOENT;
    }
    if (strlen(v) > FILE_MAX) {
        return -EFBIG;
    }
    return set_cookie((const uint8_t *)v, strlen(v), ret_cookie);
}

int gr_cookie_default_path(char *buf, size_t cap)
{
    const char *home = getenv("HOME");
    int n;

    if (home != NULL && home[0] != '\0') {
        n = snprintf(buf, cap, "%s/%s", home, GR_COOKIE_DEFAULT_NAME);
    } else {
        n = snprintf(buf, cap, "%s", GR_COOKIE_SERVICE_PATH);
    }
    if (n < 0 || (size_t)n >= cap) {
        return -ENAMETOOLONG;
    }
    return 0;
}

int gr_cookie_resolve(const char *path, gr_cookie *ret_cookie)
{
    char def[GR_COOKIE_PATH_MAX];
    const char *f;
    int r;

    if (path != NULL) {
        return gr_cookie_load_file(path, ret_cookie);
    }
    if (getenv(GR_COOKIE_ENV) != NULL) {
        return gr_cookie_from_env(ret_cookie);
    }
    f = getenv(GR_COOKIE_FILE_ENV);
    if (f != NULL && f[0] != '\0') {
        return gr_cookie_load_file(f, ret_cookie);
    }
    if ((r = gr_cookie_default_path(def, sizeof(def))) < 0) {
        return r;
    }
    return gr_cookie_load_file(def, ret_cookie);
}

/* Write all of buf to fd. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int gr_cookie_generate(const char *path, gr_cookie *ret_cookie)
{
    uint8_t raw[GEN_RAW];
    char text[sodium_base64_ENCODED_LEN(GEN_RAW, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + 1];
    size_t tlen;
    int fd, r = 0;

    if (path == NULL || path[0] == '\0') {
        return -EINVAL;
    }
    if (sodium_init() < 0) {
        return -ENOSYS;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0400);
    if (fd < 0) {
        return -errno;
    }
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(text, sizeof(text), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    tlen = strlen(text);
    text[tlen] = '\n'; /* replaces the NUL; text is written by length */
    if ((r = write_all(fd, text, tlen + 1)) == 0 && fsync(fd) < 0) {
        r = -errno;
    }
    if (close(fd) < 0 && r == 0) {
        r = -errno;
    }
    if (r < 0) {
        unlink(path);
    } else if (ret_cookie != NULL) {
        r = set_cookie((const uint8_t *)text, tlen, ret_cookie);
    }
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(text, sizeof(text));
    return r;
}

void gr_cookie_wipe(gr_cookie *c)
{
    if (c != NULL) {
        sodium_memzero(c, sizeof(*c));
    }
}
