/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys.c - the `sys` service (sys.h): answers girder_call requests about the
 * node (version, uptime, schedulers, processes, memory, info).
 *
 * Design notes
 * - Every answer is computed on demand; the process keeps only its start time,
 *   so it costs nothing between requests.
 * - "memory" reads /proc/self/statm on the scheduler thread. That is a procfs
 *   read served from kernel memory, never a disk wait, so it does not break the
 *   "nothing blocks a scheduler" rule.
 */
#include "services/sys.h"

#include "gr_version.h"
#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct sys_state {
    uint64_t started_ms; /* CLOCK_MONOTONIC ms the uptime counts from */
} sys_state;

uint64_t gr_sys_now_ms(void)
{
    return gr_clock_ms();
}

/* Resident set size in bytes, from /proc/self/statm; 0 if unavailable. */
static uint64_t rss_bytes(void)
{
    char buf[128];
    unsigned long long size, resident;
    ssize_t n;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        return 0;
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void pack_memory(msgpack_packer *pk)
{
    struct mallinfo2 mi = mallinfo2();

    msgpack_pack_map(pk, 2);
    gr_term_pack_cstr(pk, "rss");
    msgpack_pack_uint64(pk, rss_bytes());
    gr_term_pack_cstr(pk, "heap");
    msgpack_pack_uint64(pk, (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd);
}

static void pack_error(msgpack_packer *pk, int err)
{
    msgpack_pack_array(pk, 2);
    gr_term_pack_cstr(pk, "error");
    gr_term_pack_cstr(pk, gr_errid(err));
}

/* Pack the answer to one request into pk. */
static void answer(girder_ctx *ctx, sys_state *st, const msgpack_object *req, msgpack_packer *pk)
{
    girder_rt *rt = girder_runtime(ctx);
    const msgpack_object *fn;
    uint64_t uptime = gr_sys_now_ms() - st->started_ms;

    if (req->type != MSGPACK_OBJECT_ARRAY || req->via.array.size == 0 ||
        req->via.array.ptr[0].type != MSGPACK_OBJECT_STR) {
        pack_error(pk, GR_EBADARG);
        return;
    }
    fn = &req->via.array.ptr[0];
    if (gr_term_is_str(fn, "version")) {
        gr_term_pack_cstr(pk, GIRDER_VERSION);
    } else if (gr_term_is_str(fn, "uptime")) {
        msgpack_pack_uint64(pk, uptime);
    } else if (gr_term_is_str(fn, "schedulers")) {
        msgpack_pack_unsigned_int(pk, gr_rt_schedulers(rt));
    } else if (gr_term_is_str(fn, "processes")) {
        msgpack_pack_uint64(pk, gr_rt_process_count(rt));
    } else if (gr_term_is_str(fn, "memory")) {
        pack_memory(pk);
    } else if (gr_term_is_str(fn, "info")) {
        msgpack_pack_map(pk, 8);
        gr_term_pack_cstr(pk, "node");
        gr_term_pack_cstr(pk, gr_rt_node_name(rt));
        gr_term_pack_cstr(pk, "version");
        gr_term_pack_cstr(pk, GIRDER_VERSION);
        gr_term_pack_cstr(pk, "api");
        msgpack_pack_unsigned_int(pk, GIRDER_API_VERSION);
        gr_term_pack_cstr(pk, "creation");
        msgpack_pack_uint32(pk, gr_rt_creation(rt));
        gr_term_pack_cstr(pk, "uptime_ms");
        msgpack_pack_uint64(pk, uptime);
        gr_term_pack_cstr(pk, "schedulers");
        msgpack_pack_unsigned_int(pk, gr_rt_schedulers(rt));
        gr_term_pack_cstr(pk, "processes");
        msgpack_pack_uint64(pk, gr_rt_process_count(rt));
        gr_term_pack_cstr(pk, "memory");
        pack_memory(pk);
    } else {
        pack_error(pk, GR_EBADFUNC);
    }
}

static int sys_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    sys_state *st = calloc(1, sizeof(*st));
    msgpack_unpacked up;
    int r;

    if (!st) {
        return -ENOMEM;
    }
    st->started_ms = gr_sys_now_ms();
    if (arg) {
        msgpack_unpacked_init(&up);
        if (girder_msg_unpack(arg, &up) == 0 && up.data.type == MSGPACK_OBJECT_MAP) {
            const msgpack_object_map *m = &up.data.via.map;

            for (uint32_t i = 0; i < m->size; i++) {
                if (gr_term_is_str(&m->ptr[i].key, "started_ms") &&
                    m->ptr[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    st->started_ms = m->ptr[i].val.via.u64;
                }
            }
        }
        msgpack_unpacked_destroy(&up);
    }
    if ((r = girder_register(ctx, GR_SYS_NAME, girder_self(ctx))) < 0) {
        gr_warn("sys", "cannot register as \"%s\": %s", GR_SYS_NAME, gr_strerror(r));
        free(st);
        return r;
    }
    *ret_state = st;
    return 0;
}

static int sys_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    msgpack_unpacked up;
    const msgpack_object *o;
    girder_pid from;
    girder_ref ref;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *resp;
    int r;

    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(msg, &up) < 0 || up.data.type != MSGPACK_OBJECT_ARRAY ||
        up.data.via.array.size != 4) {
        goto out; /* not a request: ignored */
    }
    o = up.data.via.array.ptr;
    if (!gr_term_is_str(&o[0], "$call") || girder_get_pid(ctx, &o[1], &from) < 0 ||
        girder_get_ref(ctx, &o[2], &ref) < 0) {
        goto out;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    answer(ctx, state, &o[3], &pk);
    resp = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!resp) {
        gr_warn("sys", "out of memory answering a request");
        goto out;
    }
    if ((r = girder_reply(ctx, from, ref, resp)) < 0) {
        gr_warn("sys", "cannot reply: %s", gr_strerror(r));
    }
    girder_msg_unref(resp);
out:
    msgpack_unpacked_destroy(&up);
    return GIRDER_CONTINUE;
}

static void sys_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    free(state);
}

static size_t sys_state_size(const void *state)
{
    return sizeof(sys_state);
}

const girder_behaviour gr_sys_service = {
    .name = GR_SYS_NAME,
    .init = sys_init,
    .handle = sys_handle,
    .terminate = sys_terminate,
    .state_size = sys_state_size,
};
