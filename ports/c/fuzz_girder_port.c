/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_girder_port.c - libFuzzer harness for the C port helper's reader
 * (girder_port.h): any bytes as the node's side of the pipe (a memfd), read
 * event after event with girder_port_next as a port program does, calls
 * answered (to /dev/null), until an error or the end. Must never crash, leak
 * or read outside its buffers; the end is ECLOSED or ETRUNC, never "success"
 * past the input.
 */
#include "girder_port.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char nil = (char)0xc0;
    int in = memfd_create("fuzz", MFD_CLOEXEC), out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    girder_port *gp = NULL;
    girder_port_event ev;
    int r = 0;

    if (in < 0 || out < 0 || (size && write(in, data, size) != (ssize_t)size) ||
        lseek(in, 0, SEEK_SET) != 0 || girder_port_open(in, out, 4096, &gp) < 0) {
        abort();
    }
    for (int n = 0; n <= (int)size && (r = girder_port_next(gp, &ev)) == 0; n++) {
        if (ev.kind == GIRDER_PORT_CALL && girder_port_reply(gp, ev.id, &nil, 1) < 0) {
            abort();
        }
        if (!ev.term) {
            abort();
        }
    }
    if (r == 0) {
        abort(); /* more events than input bytes */
    }
    girder_port_close(gp);
    close(in);
    close(out);
    return 0;
}
