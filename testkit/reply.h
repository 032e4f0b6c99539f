/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply.h - opening a girder_call in a test kit behaviour (seq, watcher,
 * relay) and answering it with a term packed into an sbuffer, or with
 * ["error", Id]: what each of them would otherwise write for itself.
 *
 * A dead caller is not the answering process's problem: girder_reply's result
 * is ignored, as in Erlang's gen_server:reply. A buffer that does not hold one
 * well-formed term answers nothing (a bug of the caller, never sent).
 *
 * Owning thread: the answering process's scheduler.
 */
#ifndef GR_TESTKIT_REPLY_H
#define GR_TESTKIT_REPLY_H

#include "girder/girder.h"

#include <msgpack.h>

/* Answer from/ref with the term in sb, then clear sb for reuse. */
void gr_testkit_reply_sb(girder_ctx *ctx, girder_pid from, girder_ref ref, msgpack_sbuffer *sb);

/* Answer ["error", id]. */
void gr_testkit_reply_error(girder_ctx *ctx, girder_pid from, girder_ref ref, const char *id);

/* Open a call: `a` holds the 4 elements of ["$call", From, Ref, Request].
 * Returns 0 and sets *ret_from, *ret_ref and *ret_req (borrowed from a) when
 * Request is a non-empty array, [Verb, Args...]. Otherwise returns GR_EBADARG:
 * a Request of another shape is answered ["error", "badarg"]; a malformed
 * From or Ref leaves nobody to answer. Outputs untouched on failure. */
int gr_testkit_call_open(girder_ctx *ctx, const msgpack_object *a, girder_pid *ret_from,
                         girder_ref *ret_ref, const msgpack_object **ret_req);

#endif
