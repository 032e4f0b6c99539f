/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_port_frame.c - libFuzzer harness for the port framing decoder: any
 * bytes, decoded frame after frame as port.c does with a program's stdout.
 * A frame must lie inside the input; errors end the run.
 */
#include "port/frame.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    for (;;) {
        const uint8_t *pl;
        size_t plen, used;
        int r = gr_port_frame_decode(data + off, size - off, 4096, &pl, &plen, &used);

        if (r <= 0) {
            return 0;
        }
        if (used > size - off || pl != data + off + 4 || plen + 4 != used) {
            abort();
        }
        off += used;
    }
}
