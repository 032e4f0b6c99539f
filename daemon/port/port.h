/* SPDX-License-Identifier: Apache-2.0 */
/*
 * port.h - ports: external programs (any language) that are Girder processes.
 * A port is a process running the behaviour "port" (GR_PORT_BEHAVIOUR); its
 * spawn argument names the program:
 *
 *   {"cmd": "/usr/bin/python3", "args": ["worker.py"],      required: cmd
 *    "name": "worker", "kill_timeout_ms": 2000, "max_frame": 16777216,
 *    "busy_high": 1048576, "busy_low": 262144}
 *
 * busy_high (GR_PORT_BUSY_HIGH_MIN..GR_PORT_BUSY_HIGH_MAX) and busy_low
 * (0..busy_high-1) are the port's busy marks; a spawn argument that breaks
 * them fails with GR_EPORTBUSYMARKS. Only busy_high given: busy_low is the
 * default if below it, else busy_high / 4.
 *
 * so a port starts like any process: girder_spawn_named(ctx, "port", arg, ...)
 * from C, a supervisor child spec {"behaviour": "port", "arg": {...}}, `girder
 * spawn port JSON`, or `girder port start [--on NODE] [--name NAME] -- CMD
 * ARGS...`. It speaks 4-byte big-endian length + msgpack frames on the
 * program's stdin/stdout (frame.h, docs/ports.md); stderr lines go to the
 * node's log as "port/NAME"; the program's exit is the process's exit:
 * "normal" for status 0, ["exit_status", N] or ["signal", N] otherwise.
 *
 * No orphans: the program runs in its own process group with
 * PR_SET_PDEATHSIG(SIGKILL) tied to the ports' spawner thread (which lives as
 * long as girderd); when the port process ends, the program's stdin is closed,
 * SIGTERM goes to its group after kill_timeout_ms / 2 and SIGKILL after
 * kill_timeout_ms; the spawner thread reaps it. Programs are forked from the
 * spawner thread, never from a scheduler.
 *
 * The process must ignore SIGPIPE (girderd does): a program that closed its
 * stdin is an EPIPE, not a signal.
 *
 * Threading: gr_ports_new / gr_ports_free on the main thread (free after
 * gr_rt_stop); the behaviour on schedulers; the spawner on its own thread.
 */
#ifndef GR_PORT_H
#define GR_PORT_H

#include "girder/girder.h"
#include "rpc/rpc.h"

#define GR_PORT_BEHAVIOUR "port"
#define GR_PORT_KILL_TIMEOUT_MS 2000  /* default kill_timeout_ms */
#define GR_PORT_QUEUE_MAX (8u << 20)  /* bytes queued for a port's stdin before it is stopped */
#define GR_PORT_BUSY_HIGH (1u << 20)  /* above: the port is busy, its senders are suspended */
#define GR_PORT_BUSY_LOW (256u << 10) /* below: busy no more, its senders resume */
#define GR_PORT_BUSY_HIGH_MIN 4096u   /* busy_high's bounds (spawn argument) */
#define GR_PORT_BUSY_HIGH_MAX (GR_PORT_QUEUE_MAX / 2)
#define GR_PORT_CALLS_MAX 1024      /* outstanding calls each way per port (and rpcs) */
#define GR_PORT_RPC_TIMEOUT_MS 5000 /* a port's "rpc" request without TimeoutMs */

typedef struct gr_ports gr_ports;

/* Register the behaviour "port" on rt, start the spawner thread, and add the
 * rpc module `port` (list) to rpc (may be NULL). 0 or a negative error. */
int gr_ports_new(girder_rt *rt, gr_rpc *rpc, gr_ports **ret_ps);

/* After gr_rt_stop: every program still running gets SIGKILL (its group) and
 * is reaped; the spawner thread ends. NULL-safe; returns NULL. */
gr_ports *gr_ports_free(gr_ports *ps);

#endif
