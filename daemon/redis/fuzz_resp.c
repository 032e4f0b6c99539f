/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_resp.c - libFuzzer harness for the RESP request parser (resp.h): the
 * input is a connection's byte stream, fed in two pieces (split at a point the
 * first byte picks) as a socket would deliver it, parsed command by command
 * with small limits; every argument must lie inside the command's bytes, and
 * each command's arguments are echoed through the reply writer in RESP2 and
 * RESP3. Built only with -Dfuzz=true (clang); ASan catches memory errors and
 * leaks, the asserts catch broken contracts.
 */
#include "redis/resp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gr_resp_parser p = {.lim = {.max_bulk = 4096, .max_args = 64, .max_request = 8192}};
    gr_resp_out o2 = {.proto = 2}, o3 = {.proto = 3};
    uint8_t *buf;
    size_t split, have, at = 0;

    if (size == 0) {
        return 0;
    }
    p.unauth = data[0] & 1;
    split = size > 1 ? data[0] % size : size;
    if (!(buf = malloc(size))) {
        return 0;
    }
    memcpy(buf, data, size);
    have = split ? split : size;
    for (;;) {
        const char *err = NULL;
        size_t used = 0;
        int r = gr_resp_parse(&p, buf + at, have - at, &used, &err);

        assert(used <= have - at);
        if (r < 0) {
            assert(err && strncmp(err, "Protocol error: ", 16) == 0);
            gr_resp_error(&o2, err);
            break;
        }
        if (r == 1) {
            assert(p.nargs >= 1);
            gr_resp_array(&o2, p.nargs);
            gr_resp_push(&o3, p.nargs);
            for (uint32_t i = 0; i < p.nargs; i++) {
                assert(p.args[i].off + p.args[i].len <= used);
                gr_resp_bulk(&o2, buf + at + p.args[i].off, p.args[i].len);
                gr_resp_verbatim(&o3, "txt", buf + at + p.args[i].off, p.args[i].len);
            }
            o2.len = o3.len = 0; /* keep memory flat */
        }
        at += used;
        if (r == 0 && used == 0) {
            if (have == size) {
                break;
            }
            have = size; /* the second read arrives */
        }
    }
    gr_resp_parser_free(&p);
    gr_resp_out_free(&o2);
    gr_resp_out_free(&o3);
    free(buf);
    return 0;
}
