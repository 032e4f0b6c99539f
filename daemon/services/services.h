/* SPDX-License-Identifier: Apache-2.0 */
/*
 * services.h - the node's own services and the root supervisor that runs them.
 *
 * The daemon (daemon.c) registers every service behaviour, then spawns the
 * built-in "supervisor" behaviour (registered as "root") with the argument
 * built here:
 * strategy one_for_one and one child spec per service, started in table order
 * and stopped in reverse. A new service is one row in services.c's table plus
 * its behaviour file.
 *
 *   id     behaviour  restart    registered name  what
 *   -----  ---------  ---------  ---------------  ------------------------------
 *   sys    sys        permanent  sys              node facts: version, uptime...
 *
 * Main thread only (before and right after gr_rt_start).
 */
#ifndef GR_SERVICES_H
#define GR_SERVICES_H

#include "config/config.h"
#include "girder/girder.h"

#include <stdint.h>

#define GR_SERVICES_ROOT_NAME "root" /* registered name of the root supervisor */
#define GR_SERVICES_INTENSITY 3      /* root: at most this many restarts ... */
#define GR_SERVICES_PERIOD_MS 5000   /* ... within this period, else it gives up */
#define GR_SERVICES_SHUTDOWN_MS 5000 /* per-child shutdown budget */

/* What the services may read from the node when their arguments are built. */
typedef struct gr_services_env {
    const gr_config *cfg; /* parsed configuration; outlives the runtime */
    uint64_t started_ms;  /* CLOCK_MONOTONIC ms when girderd started */
} gr_services_env;

/* Register every service behaviour on rt, and the spawnable example behaviour
 * that is not started (echo, services/echo.h). 0, -EEXIST or -ENOMEM. Any
 * thread. */
int gr_services_register(girder_rt *rt);

/* Build the root supervisor's spawn argument (see girder.h, supervisors). 0 and
 * *ret_arg (caller unrefs), or -ENOMEM. */
int gr_services_root_arg(const gr_services_env *env, girder_msg **ret_arg);

#endif
