/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sd.c - girderd and systemd (sd.h): the journal sink of the logger, and the
 * sd_notify / sd_watchdog_enabled calls, through libsystemd when the build
 * found it (GR_HAVE_SYSTEMD), else inert stand-ins with the same contracts.
 *
 * Design notes
 * - libsystemd is loaded when girderd starts (dlopen of libsystemd.so.0, the
 *   library of Debian's libsystemd0; its headers come from libsystemd-dev at
 *   build time and type every symbol), not linked: a node that runs outside
 *   systemd - a container, a test - needs nothing more, and the image keeps
 *   exactly the libraries it loads (deploy/image-test). Not found at run
 *   time: as a build without it.
 * - The journal is chosen only when stderr really is the journal's stream
 *   (JOURNAL_STREAM = "DEV:INODE" of stderr, systemd.exec(5)): run by hand
 *   from a shell inside a unit, or with stderr redirected, girderd keeps
 *   writing its lines to stderr.
 * - sd_journal_send keeps the fields apart (PRIORITY, GIRDER_MODULE, ...), so
 *   `journalctl -p warning` and `journalctl GIRDER_EVENT=nodedown` work; the
 *   text or JSON line format is then not used.
 */
#include "util/sd.h"

#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef GR_HAVE_SYSTEMD
#include <dlfcn.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/* libsystemd's entry points: written once by gr_sd_open before threads
 * start, read-only afterwards. */
static struct {
    void *lib;                           /* dlopen handle, NULL: not loaded */
    __typeof__(sd_notify) *notify;       /* sd_notify */
    __typeof__(sd_journal_sendv) *sendv; /* sd_journal_sendv */
    __typeof__(sd_watchdog_enabled) *wd; /* sd_watchdog_enabled */
} sd;
#endif

#define FIELDS_MAX 8 /* structured fields passed to the journal per line */

bool gr_sd_open(void)
{
#ifdef GR_HAVE_SYSTEMD
    if (sd.lib != NULL) {
        return true;
    }
    if ((sd.lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL)) == NULL) {
        return false;
    }
    sd.notify = (__typeof__(sd.notify))dlsym(sd.lib, "sd_notify");
    sd.sendv = (__typeof__(sd.sendv))dlsym(sd.lib, "sd_journal_sendv");
    sd.wd = (__typeof__(sd.wd))dlsym(sd.lib, "sd_watchdog_enabled");
    if (sd.notify == NULL || sd.sendv == NULL || sd.wd == NULL) {
        dlclose(sd.lib);
        memset(&sd, 0, sizeof(sd));
        return false;
    }
    return true;
#else
    return false;
#endif
}

#ifdef GR_HAVE_SYSTEMD
/* Written once by gr_sd_journal_setup before threads start; read-only after. */
static char journal_node[256];

static int priority(enum gr_log_level level)
{
    switch (level) {
    case GR_LOG_DEBUG:
        return LOG_DEBUG;
    case GR_LOG_INFO:
        return LOG_INFO;
    case GR_LOG_NOTICE:
        return LOG_NOTICE;
    case GR_LOG_WARN:
        return LOG_WARNING;
    case GR_LOG_ERROR:
    default:
        return LOG_ERR;
    }
}

/* The log sink: one sd_journal_sendv per line. Any thread. */
static void journal_sink(enum gr_log_level level, const char *module, const gr_log_field *f,
                         size_t n, const char *msg)
{
    char prio[16], mod[64], node[300], fields[FIELDS_MAX][320], *text = NULL;
    struct iovec iov[4 + FIELDS_MAX];
    size_t k = 0;

    if (asprintf(&text, "MESSAGE=%s: %s", module, msg) < 0) {
        return;
    }
    snprintf(prio, sizeof(prio), "PRIORITY=%d", priority(level));
    snprintf(mod, sizeof(mod), "GIRDER_MODULE=%s", module);
    snprintf(node, sizeof(node), "GIRDER_NODE=%s", journal_node);
    iov[k++] = (struct iovec){text, strlen(text)};
    iov[k++] = (struct iovec){prio, strlen(prio)};
    iov[k++] = (struct iovec){mod, strlen(mod)};
    iov[k++] = (struct iovec){node, strlen(node)};
    for (size_t i = 0; i < n && i < FIELDS_MAX; i++) {
        char key[32];
        size_t j;

        for (j = 0; f[i].key[j] && j < sizeof(key) - 1; j++) {
            key[j] = (char)toupper((unsigned char)f[i].key[j]);
        }
        key[j] = '\0';
        snprintf(fields[i], sizeof(fields[i]), "GIRDER_%s=%s", key, f[i].val);
        iov[k++] = (struct iovec){fields[i], strlen(fields[i])};
    }
    (void)sd.sendv(iov, (int)k);
    free(text);
}
#endif

bool gr_sd_journal_setup(const char *node)
{
#ifdef GR_HAVE_SYSTEMD
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (sd.lib == NULL || js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(STDERR_FILENO, &st) < 0 || (unsigned long long)st.st_dev != dev ||
        (unsigned long long)st.st_ino != ino) {
        return false;
    }
    snprintf(journal_node, sizeof(journal_node), "%s", node ? node : "");
    gr_log_set_sink(journal_sink);
    return true;
#else
    (void)node;
    return false;
#endif
}

int gr_sd_notify(const char *state)
{
#ifdef GR_HAVE_SYSTEMD
    return sd.notify != NULL ? sd.notify(0, state) : 0;
#else
    (void)state;
    return 0;
#endif
}

uint64_t gr_sd_watchdog_usec(void)
{
#ifdef GR_HAVE_SYSTEMD
    uint64_t usec = 0;

    return sd.wd != NULL && sd.wd(0, &usec) > 0 ? usec : 0;
#else
    return 0;
#endif
}
