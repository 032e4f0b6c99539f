/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testkit.c - the test kit's tables (testkit.h): its behaviours and rpc
 * modules, as a daemon extension and for unit tests. A new part of the kit is
 * one row here plus its file.
 */
#include "testkit/testkit.h"

#include "rpc/rpc_int.h"
#include "testkit/relay.h"
#include "testkit/seq.h"
#include "testkit/watcher.h"

static const girder_behaviour *const behaviours[] = {
    &gr_seq_behaviour,
    &gr_relay_behaviour,
    &gr_watcher_behaviour,
    &gr_testkit_ponger_behaviour,
};

static const gr_rpc_module *const modules[] = {
    &gr_testkit_mod_bench,
    &gr_testkit_mod_bench_ps,
};

#define NBEHAVIOURS (sizeof(behaviours) / sizeof(behaviours[0]))
#define NMODULES (sizeof(modules) / sizeof(modules[0]))

const gr_daemon_ext gr_testkit_ext = {
    .prog = "girderd-testkit",
    .what = "test kit loaded (behaviours seq, relay, watcher, bench_ponger; rpc modules bench, "
            "bench_ps): not for "
            "production",
    .behaviours = behaviours,
    .nbehaviours = NBEHAVIOURS,
    .modules = modules,
    .nmodules = NMODULES,
};

int gr_testkit_register(girder_rt *rt)
{
    int r;

    for (size_t i = 0; i < NBEHAVIOURS; i++) {
        if ((r = girder_behaviour_register(rt, behaviours[i])) < 0) {
            return r;
        }
    }
    return 0;
}
