/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test_rpc.h - rpc requests in the tests' support library
 * (girder_testsupport, gr_test_rpc.c): the test thread plays the dist thread
 * and hands gr_rpc one request as a hidden CLI peer would; the answers come
 * back through gr_test_answers_capture (gr_test.h). A test that includes it
 * links the rpc library (rpc_dep).
 */
#ifndef GR_TEST_RPC_H
#define GR_TEST_RPC_H

#include "testing/gr_test.h"

#include "rpc/rpc.h"

/* Dispatch module.function(args) on rpc as request ref of connection 7 from
 * the hidden peer "cli@127.0.0.1"; args NULL: []. deadline_ms 0: none. */
void gr_test_rpc_dispatch(gr_rpc *rpc, uint64_t ref, const char *module, const char *function,
                          const msgpack_sbuffer *args, uint32_t deadline_ms);

/* gr_test_rpc_dispatch from a peer that proved `role` (GR_ROLE_x). */
void gr_test_rpc_dispatch_as(gr_rpc *rpc, uint64_t ref, int role, const char *module,
                             const char *function, const msgpack_sbuffer *args,
                             uint32_t deadline_ms);

#endif /* GR_TEST_RPC_H */
