/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test_rpc.c - rpc requests in the tests' support library: one request
 * handed to gr_rpc_dispatch as the dist thread would. Only a test that links
 * the rpc library pulls this object in. Test thread only.
 */
#include "testing/gr_test_rpc.h"

void gr_test_rpc_dispatch(gr_rpc *rpc, uint64_t ref, const char *module, const char *function,
                          const msgpack_sbuffer *args, uint32_t deadline_ms)
{
    gr_test_rpc_dispatch_as(rpc, ref, 0, module, function, args, deadline_ms);
}

void gr_test_rpc_dispatch_as(gr_rpc *rpc, uint64_t ref, int role, const char *module,
                             const char *function, const msgpack_sbuffer *args,
                             uint32_t deadline_ms)
{
    static const uint8_t empty[] = {0x90};
    gr_dist_request req = {
        .conn = 7,
        .ref = ref,
        .peer = "cli@127.0.0.1",
        .hidden = true,
        .role = role,
        .module = module,
        .function = function,
        .args = args ? (const uint8_t *)args->data : empty,
        .args_len = args ? args->size : sizeof(empty),
        .deadline_ms = deadline_ms,
    };

    gr_rpc_dispatch(rpc, &req);
}
