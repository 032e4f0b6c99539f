/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_term.c - libFuzzer harness for the term codec.
 *
 * Cross-checks gr_term_validate against msgpack-c: whatever the validator
 * accepts, msgpack_unpack_next must unpack completely (the daemon validates
 * network terms first and unpacks them later, trusting that order); and
 * gr_term_next against gr_term_validate (the first term it finds is valid,
 * and is all of the input exactly when the input is valid). Also
 * decodes the input as a pid and a ref; a decoded id must pack and decode back
 * to the same values.
 */
#include "proto/err.h"
#include "proto/term.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const uint8_t *data, size_t size, int type)
{
    gr_term_id id, again;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (gr_term_decode_id(data, size, type, &id) != 0) {
        return;
    }
    if (gr_term_validate(data, size) != 0) {
        abort(); /* a well-formed id is a well-formed term */
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (gr_term_pack_id(&pk, type, id.node, id.node_len, id.creation, id.id) != 0 ||
        gr_term_decode_id(sb.data, sb.size, type, &again) != 0 || again.node_len != id.node_len ||
        memcmp(again.node, id.node, id.node_len) != 0 || again.creation != id.creation ||
        again.id != id.id) {
        abort();
    }
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpack_return ret;

    if (gr_term_validate(data, size) == 0) {
        msgpack_unpacked_init(&u);
        ret = msgpack_unpack_next(&u, (const char *)data, size, &off);
        if (ret != MSGPACK_UNPACK_SUCCESS || off != size) {
            abort();
        }
        msgpack_unpacked_destroy(&u);
    }
    /* gr_term_next: the first term alone is valid, and the whole is valid
     * exactly when that term is all of it */
    if (gr_term_next(data, size, &off) == 0) {
        if (off == 0 || off > size || gr_term_validate(data, off) != 0 ||
            (gr_term_validate(data, size) == 0) != (off == size)) {
            abort();
        }
    } else if (gr_term_validate(data, size) == 0) {
        abort();
    }
    check_id(data, size, GR_TERM_EXT_PID);
    check_id(data, size, GR_TERM_EXT_REF);
    return 0;
}
