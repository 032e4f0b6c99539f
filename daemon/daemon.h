/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h - the node daemon as a library function: girderd's main is one call
 * to gr_daemon_run, and so is any other daemon built from the same parts.
 *
 * A daemon is girderd plus an optional extension: more behaviours to register
 * (spawnable with `girder spawn`, proc.spawn) and more rpc modules to serve
 * (written against rpc/rpc_int.h). girderd passes none. girderd-testkit passes
 * the test kit (testkit/testkit.h: behaviours seq, relay, watcher and the rpc
 * module bench), which is how the cluster tests and bench/run get what a
 * production node must not carry.
 *
 * What every daemon registers, in one place each:
 *   behaviours   services/services.c (the node's services and the example echo)
 *   rpc modules  rpc/rpc.c's table of built-in modules (node, sys, rpc, proc)
 * An extension's come after them; a name already taken makes the start fail.
 *
 * Main thread only; at most one gr_daemon_run per process (it owns the
 * process's signal mask and its SIGTERM / SIGINT handling).
 */
#ifndef GR_DAEMON_H
#define GR_DAEMON_H

#include "girder/girder.h"

#include <stddef.h>

struct gr_rpc_module; /* rpc/rpc_int.h */

/* What a daemon adds to girderd. Everything is borrowed and must outlive
 * gr_daemon_run (static tables). */
typedef struct gr_daemon_ext {
    const char *prog;                           /* name in --help, --version, logs */
    const char *what;                           /* one line for the start log */
    const girder_behaviour *const *behaviours;  /* registered after the built-in ones */
    size_t nbehaviours;                         /* entries in behaviours */
    const struct gr_rpc_module *const *modules; /* served besides the built-in ones */
    size_t nmodules;                            /* entries in modules */
} gr_daemon_ext;

/* Parse argv (config/config.h), then run the node until SIGTERM / SIGINT or
 * until its root supervisor dies. ext: NULL for plain girderd. Returns the
 * process's exit status: 0 after a clean stop (and for --help, --version), 1
 * when the node could not start or its root supervisor died on its own, 2 for
 * a bad configuration or an unusable cookie. */
int gr_daemon_run(int argc, char *argv[], const gr_daemon_ext *ext);

#endif
