/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testkit.h - the test kit: behaviours and an rpc module that the unit tests,
 * the cluster tests and bench/run need and a production girderd must not
 * carry. It is linked into girderd-testkit (girderd_testkit.c: girderd plus
 * this kit, built but never installed) and into its own unit tests; girderd
 * never links it, and the meson test `girderd_no_testkit` proves that.
 *
 *   part     kind           used by
 *   -------  -------------  -------------------------------------------------
 *   seq      behaviour      numbered bursts and their order check (j_order)
 *   relay    behaviour      a process-to-process call across a link (m_call)
 *   watcher  behaviour      remote monitors, links and spawns (k_noconn,
 *                           n_spawn)
 *   bench    rpc module     messaging measured inside the daemon (bench/run's
 *                           network section, l_bigmsg, o_cipher)
 *   bench_ps rpc module     pub/sub, global names, ports and plugin ping-pong
 *                           measured inside the daemon (bench/pubsub,
 *                           bench/ports, bp_*), with the behaviour
 *                           bench_ponger
 *
 * The example behaviour `echo` is not part of the kit: every girderd has it
 * (services/echo.h), and the kit's tests use it as a target.
 */
#ifndef GR_TESTKIT_H
#define GR_TESTKIT_H

#include "daemon/daemon.h"
#include "girder/girder.h"

/* The kit as a daemon extension: pass it to gr_daemon_run. */
extern const gr_daemon_ext gr_testkit_ext;

/* The rpc module `bench` (mod_bench.c). */
extern const struct gr_rpc_module gr_testkit_mod_bench;

/* The rpc module `bench_ps` (mod_bench_ps.c) and its ponger. */
extern const struct gr_rpc_module gr_testkit_mod_bench_ps;
extern const girder_behaviour gr_testkit_ponger_behaviour;

/* Register the kit's behaviours (seq, relay, watcher) on rt, for unit tests
 * that run a runtime without a daemon. 0, -EEXIST or -ENOMEM. Any thread. */
int gr_testkit_register(girder_rt *rt);

#endif
