/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply.h - answering a girder_call from a test kit behaviour (seq, watcher,
 * relay) with a term packed into an sbuffer, or with ["error", Id]: what each
 * of them would otherwise write for itself.
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

#endif
