/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rt.h - one node's process runtime, as seen by the code that owns it (girderd's
 * main, the network layer, tests, benchmarks). Behaviour authors use
 * include/girder/girder.h instead.
 *
 * The runtime owns N scheduler threads, each with its own libevent base, its own
 * pid -> process table and a lock-free inbox. Functions here marked "any thread"
 * may be called from threads that are not schedulers (the main thread, tests);
 * they reach processes only through scheduler inboxes.
 *
 * A probe is a mailbox for a non-scheduler thread: it has a pid (it is a real
 * process that traps exits), so processes can send, link and monitor it, and its
 * thread can block on gr_probe_recv. Tests, the CLI's rpc handlers and the
 * daemon's main thread use probes to talk to processes.
 */
#ifndef GR_RT_H
#define GR_RT_H

#include "girder/girder.h"

#include <event2/event.h>
#include <stdint.h>

typedef struct gr_rt_config {
    const char *node_name; /* "name@host"; copied */
    uint32_t creation;     /* incarnation, new on every start (0 = pick from clock) */
    unsigned schedulers;   /* 0 = one per online core; at most GR_RT_SCHED_MAX */
    unsigned batch;        /* messages per process turn; 0 = default (64) */
} gr_rt_config;

#define GR_RT_SCHED_MAX 255

/* Create a runtime (threads not started). Registers the built-in "supervisor"
 * behaviour. 0 and *ret_rt, or -EINVAL / -ENOMEM / -errno. Any thread. */
int gr_rt_new(const gr_rt_config *cfg, girder_rt **ret_rt);

/* Start the scheduler threads. 0 or -errno. Once. */
int gr_rt_start(girder_rt *rt);

/* Stop: every remaining process exits with reason "shutdown" (terminate runs,
 * links and monitors fire), then the scheduler threads end and are joined.
 * Blocks. Idempotent. Must not be called from a scheduler thread. */
void gr_rt_stop(girder_rt *rt);

/* Free a stopped (or never started) runtime. NULL-safe; returns NULL. */
girder_rt *gr_rt_free(girder_rt *rt);

unsigned gr_rt_schedulers(const girder_rt *rt);
const char *gr_rt_node_name(const girder_rt *rt);
uint32_t gr_rt_creation(const girder_rt *rt);

/* The libevent base of scheduler i (for I/O that a scheduler owns). Use only on
 * that scheduler's thread once started. */
struct event_base *gr_rt_sched_base(girder_rt *rt, unsigned i);

/* Spawn from a non-scheduler thread, round-robin across schedulers. `arg`
 * borrowed. 0 and *ret_pid, or -ENOMEM, GR_ESTOPPED. Any thread. */
int gr_rt_spawn(girder_rt *rt, const girder_behaviour *b, const girder_msg *arg,
                girder_pid *ret_pid);

/* Send from a non-scheduler thread (no sender pid). Takes msg on success. Any
 * thread. */
int gr_rt_send(girder_rt *rt, girder_pid to, girder_msg *msg);

/* Exit signal from a non-scheduler thread (reason borrowed). Any thread. */
int gr_rt_exit(girder_rt *rt, girder_pid to, const girder_msg *reason);

/* Registered-name lookup. 0 or GR_ENONAME. Any thread. */
int gr_rt_whereis(girder_rt *rt, const char *name, girder_pid *ret_pid);

/* Number of live processes across all schedulers (approximate while running). */
uint64_t gr_rt_process_count(girder_rt *rt);

/* Text form of a pid: "<node.creation.serial.sched>"... see docs/processes.md.
 * Writes at most len bytes including NUL; returns chars that would be written. */
int gr_pid_format(girder_rt *rt, girder_pid pid, char *buf, size_t len);

/* ---- probes --------------------------------------------------------------------- */

typedef struct gr_probe gr_probe;

/* A new probe (a process that traps exits, placed on scheduler 0). 0 or -errno. */
int gr_probe_new(girder_rt *rt, gr_probe **ret_probe);
/* Stop the probe process and free it. NULL-safe; returns NULL. */
gr_probe *gr_probe_free(gr_probe *p);

girder_pid gr_probe_pid(const gr_probe *p);

/* Wait up to timeout_ms (-1 = forever) for the next message. 0 and *ret_msg
 * (caller owns it), or -ETIMEDOUT. */
int gr_probe_recv(gr_probe *p, int timeout_ms, girder_msg **ret_msg);

/* Run fn(ctx, arg) inside the probe's process on its scheduler, and wait for its
 * return value. Lets a test thread use the whole girder.h API as a process:
 * link, monitor, spawn with link, call, register... */
int gr_probe_run(gr_probe *p, int (*fn)(girder_ctx *ctx, void *arg), void *arg);

/* Run fn(ctx, arg) inside any live process `pid` on its scheduler and wait for
 * the result; GR_ENOPROC if pid is dead. Any non-scheduler thread. */
int gr_rt_run_in(girder_rt *rt, girder_pid pid, int (*fn)(girder_ctx *ctx, void *arg), void *arg);

#endif
