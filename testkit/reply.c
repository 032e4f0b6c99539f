/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply.c - opening a girder_call and answering it with a packed term or an
 * error (reply.h).
 */
#include "testkit/reply.h"

#include "proto/err.h"
#include "proto/term.h"

#include <string.h>

void gr_testkit_reply_sb(girder_ctx *ctx, girder_pid from, girder_ref ref, msgpack_sbuffer *sb)
{
    girder_msg *m =
        gr_term_validate(sb->data, sb->size) == 0 ? girder_msg_new(sb->data, sb->size) : NULL;

    if (m) {
        (void)girder_reply(ctx, from, ref, m);
    }
    girder_msg_unref(m);
    msgpack_sbuffer_clear(sb);
}

void gr_testkit_reply_error(girder_ctx *ctx, girder_pid from, girder_ref ref, const char *id)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "error", 5);
    gr_term_pack_cstr(&pk, id);
    gr_testkit_reply_sb(ctx, from, ref, &sb);
    msgpack_sbuffer_destroy(&sb);
}

int gr_testkit_call_open(girder_ctx *ctx, const msgpack_object *a, girder_pid *ret_from,
                         girder_ref *ret_ref, const msgpack_object **ret_req)
{
    const msgpack_object *req = &a[3];
    girder_pid from;
    girder_ref ref;

    if (girder_get_pid(ctx, &a[1], &from) < 0 || girder_get_ref(ctx, &a[2], &ref) < 0) {
        return GR_EBADARG; /* malformed: nobody to answer */
    }
    if (req->type != MSGPACK_OBJECT_ARRAY || req->via.array.size == 0) {
        gr_testkit_reply_error(ctx, from, ref, "badarg");
        return GR_EBADARG;
    }
    *ret_from = from;
    *ret_ref = ref;
    *ret_req = req;
    return 0;
}
