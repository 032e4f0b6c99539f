/* SPDX-License-Identifier: Apache-2.0 */
/*
 * services.c - the table of the node's services and the root supervisor's
 * argument built from it (services.h).
 */
#include "services/services.h"

#include "proto/term.h"
#include "services/echo.h"
#include "services/sys.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

/* One service under the root supervisor. */
typedef struct service_def {
    const girder_behaviour *beh; /* its behaviour; the child spec names it */
    const char *id;              /* child id in the root supervisor */
    const char *restart;         /* permanent | transient | temporary */
    /* Pack the child's spawn argument (exactly one term). */
    void (*pack_arg)(msgpack_packer *pk, const gr_services_env *env);
} service_def;

static void sys_arg(msgpack_packer *pk, const gr_services_env *env)
{
    msgpack_pack_map(pk, 1);
    gr_term_pack_cstr(pk, "started_ms");
    msgpack_pack_uint64(pk, env->started_ms);
}

static const service_def services[] = {
    {&gr_sys_service, "sys", "permanent", sys_arg},
};

#define NSERVICES (sizeof(services) / sizeof(services[0]))

/* Behaviours registered on every node but not started: spawned on demand
 * (proc.spawn, `girder spawn`). Only the example echo: test behaviours belong
 * to the test kit (testkit/testkit.h), which girderd does not carry. */
static const girder_behaviour *const spawnable[] = {
    &gr_echo_behaviour,
};

#define NSPAWNABLE (sizeof(spawnable) / sizeof(spawnable[0]))

int gr_services_register(girder_rt *rt)
{
    int r;

    for (size_t i = 0; i < NSERVICES; i++) {
        if ((r = girder_behaviour_register(rt, services[i].beh)) < 0) {
            return r;
        }
    }
    for (size_t i = 0; i < NSPAWNABLE; i++) {
        if ((r = girder_behaviour_register(rt, spawnable[i])) < 0) {
            return r;
        }
    }
    return 0;
}

int gr_services_root_arg(const gr_services_env *env, girder_msg **ret_arg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    gr_term_pack_cstr(&pk, "strategy");
    gr_term_pack_cstr(&pk, "one_for_one");
    gr_term_pack_cstr(&pk, "intensity");
    msgpack_pack_unsigned_int(&pk, GR_SERVICES_INTENSITY);
    gr_term_pack_cstr(&pk, "period_ms");
    msgpack_pack_unsigned_int(&pk, GR_SERVICES_PERIOD_MS);
    gr_term_pack_cstr(&pk, "children");
    msgpack_pack_array(&pk, NSERVICES);
    for (size_t i = 0; i < NSERVICES; i++) {
        const service_def *s = &services[i];

        msgpack_pack_map(&pk, 6);
        gr_term_pack_cstr(&pk, "id");
        gr_term_pack_cstr(&pk, s->id);
        gr_term_pack_cstr(&pk, "behaviour");
        gr_term_pack_cstr(&pk, s->beh->name);
        gr_term_pack_cstr(&pk, "arg");
        s->pack_arg(&pk, env);
        gr_term_pack_cstr(&pk, "restart");
        gr_term_pack_cstr(&pk, s->restart);
        gr_term_pack_cstr(&pk, "shutdown_ms");
        msgpack_pack_unsigned_int(&pk, GR_SERVICES_SHUTDOWN_MS);
        gr_term_pack_cstr(&pk, "type");
        gr_term_pack_cstr(&pk, "worker");
    }
    /* A failed buffer write (ENOMEM) leaves a truncated term: catch it here
     * instead of checking every pack call. */
    m = gr_term_validate(sb.data, sb.size) == 0 ? girder_msg_new(sb.data, sb.size) : NULL;
    msgpack_sbuffer_destroy(&sb);
    if (!m) {
        return -ENOMEM;
    }
    *ret_arg = m;
    return 0;
}
