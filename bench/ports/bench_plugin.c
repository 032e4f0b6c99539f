/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_plugin.c - the plugin of bench/run's ports section (issue 16): the
 * behaviour "plug_ponger", the same ponger as the test kit's compiled-in
 * "bench_ponger" (testkit/mod_bench_ps.c) but written against the plugin API
 * table (girder/girder_plugin.h), as a third party would. bench_ps.pp times
 * local ping-pong against either by name. Built with the tree, never
 * installed; loaded with girderd-testkit --plugin.
 *
 * Owning thread: each ponger runs in its own process, on one scheduler.
 */
#include <girder/girder_plugin.h>

#include <errno.h>
#include <stdlib.h>

static const girder_plugin_api *api;

typedef struct ponger {
    girder_pid owner; /* who pings */
    girder_msg *pong; /* the shared reply */
} ponger;

/* arg: the owner's pid */
static int ponger_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    msgpack_unpacked up;
    ponger *p;
    int r = -EINVAL;

    if (!arg || !(p = calloc(1, sizeof(*p)))) {
        return arg ? -ENOMEM : -EINVAL;
    }
    msgpack_unpacked_init(&up);
    if (api->msg_unpack(arg, &up) == 0 && api->get_pid(ctx, &up.data, &p->owner) == 0) {
        r = (p->pong = api->msg_atom("pong")) ? 0 : -ENOMEM;
    }
    msgpack_unpacked_destroy(&up);
    if (r < 0) {
        free(p);
        return r;
    }
    *ret_state = p;
    return 0;
}

static int ponger_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    ponger *p = state;

    if (api->msg_is_atom(msg, "ping")) {
        api->msg_ref(p->pong);
        if (api->send(ctx, p->owner, p->pong) < 0) {
            api->msg_unref(p->pong);
            return GIRDER_STOP;
        }
        return GIRDER_CONTINUE;
    }
    return api->msg_is_atom(msg, "stop") ? GIRDER_STOP : GIRDER_CONTINUE;
}

static void ponger_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    ponger *p = state;

    (void)ctx;
    (void)reason;
    api->msg_unref(p->pong);
    free(p);
}

static const girder_behaviour ponger_behaviour = {
    .name = "plug_ponger",
    .init = ponger_init,
    .handle = ponger_handle,
    .terminate = ponger_terminate,
};

GIRDER_PLUGIN("bench_plugin", "1.0.0", NULL);

int girder_plugin_init(const girder_plugin_api *a, girder_plugin *self)
{
    api = a;
    return GIRDER_REGISTER_BEHAVIOUR(a, self, &ponger_behaviour);
}
