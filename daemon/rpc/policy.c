/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.c - what a connection of each role may call: the one place that
 * decides it (docs/protocol.md "Roles", docs/operations.md "Observer key").
 *
 * A member (the cluster cookie: nodes, and the CLI run by an operator) may call
 * everything. An observer (a hidden client that proved the observer key in the
 * handshake) may call only the functions of the table below, which read and
 * change nothing; anything else, including every function of a module added
 * later (plugins, ports' own modules), is GR_ENOTALLOWED. The table lists what
 * is allowed, never what is refused, so a new function is refused to
 * observers until someone decides it only reads.
 *
 * rpc.call and rpc.multicall run Module.Function on other nodes as this node
 * (a member there): they are allowed only when that inner Module.Function is
 * itself in the table (and is not another rpc.*), so an observer's fleet-wide
 * view works and nothing else passes through. rpc.cast is refused: its answer
 * is dropped, so it is only useful to change something.
 *
 * Pure: no state, any thread.
 */
#include "rpc/rpc_int.h"

#include "proto/err.h"
#include "proto/handshake.h"
#include "proto/term.h"

#include <msgpack.h>
#include <string.h>

/* module, and its functions an observer may call ("*": all of them). */
static const struct {
    const char *module;
    const char *const *fns;
} OBSERVER_MAY[] = {
    {"node", (const char *const[]){"ping", "self", "list", "about", NULL}},
    {"sys", (const char *const[]){"*", NULL}},
    /* trace only with "keep" (args_ok): it never ends another's trace */
    {"proc",
     (const char *const[]){"list", "snapshot", "info", "whereis", "trace", "trace_read", NULL}},
    {"pubsub", (const char *const[]){"subscriptions", "topics", "counters", "members", "groups",
                                     "members_all", "whereis", "names", "cluster", "owned", NULL}},
    {"table", (const char *const[]){"list", "info", "infos", "get", "mget", "count", "scan", "type",
                                    "map_get", "map_getall", "map_len", "set_members",
                                    "set_ismember", "set_card", NULL}},
    {"plugin", (const char *const[]){"list", NULL}},
    {"port", (const char *const[]){"list", NULL}},
    {"rpc", (const char *const[]){"latency", NULL}},
};

/* Is module.function (lengths given, not NUL-terminated) in the table? */
static bool in_table(const char *m, size_t mlen, const char *f, size_t flen)
{
    for (size_t i = 0; i < sizeof(OBSERVER_MAY) / sizeof(OBSERVER_MAY[0]); i++) {
        if (strlen(OBSERVER_MAY[i].module) != mlen || memcmp(OBSERVER_MAY[i].module, m, mlen)) {
            continue;
        }
        for (const char *const *fn = OBSERVER_MAY[i].fns; *fn; fn++) {
            if (strcmp(*fn, "*") == 0 || (strlen(*fn) == flen && memcmp(*fn, f, flen) == 0)) {
                return true;
            }
        }
        return false;
    }
    return false;
}

/* The arguments of a call the table allows: proc.trace only as
 * [Dest, {"keep": true, ...}] (a trace that replaces no other, rpc/trace.c);
 * everything else as it is. */
static bool args_ok(const char *m, size_t mlen, const char *f, size_t flen,
                    const msgpack_object *args)
{
    const msgpack_object *keep;

    if (!(mlen == 4 && memcmp(m, "proc", 4) == 0 && flen == 5 && memcmp(f, "trace", 5) == 0)) {
        return true;
    }
    return args != NULL && args->type == MSGPACK_OBJECT_ARRAY && args->via.array.size == 2 &&
           args->via.array.ptr[1].type == MSGPACK_OBJECT_MAP &&
           (keep = gr_term_map_get(&args->via.array.ptr[1], "keep")) != NULL &&
           keep->type == MSGPACK_OBJECT_BOOLEAN && keep->via.boolean;
}

/* args_ok on packed arguments. */
static bool packed_args_ok(const char *m, const char *f, const uint8_t *args, size_t len)
{
    msgpack_unpacked up;
    size_t off = 0;
    bool ok;

    msgpack_unpacked_init(&up);
    ok = args != NULL &&
         msgpack_unpack_next(&up, (const char *)args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
         args_ok(m, strlen(m), f, strlen(f), &up.data);
    msgpack_unpacked_destroy(&up);
    return ok;
}

/* rpc.call / rpc.multicall args [Node(s), Module, Function, Args, ...]: is the
 * inner call one an observer may make (and not rpc.* again)? */
static bool inner_allowed(const uint8_t *args, size_t len)
{
    msgpack_unpacked up;
    size_t off = 0;
    bool ok = false;

    msgpack_unpacked_init(&up);
    if (args != NULL &&
        msgpack_unpack_next(&up, (const char *)args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size >= 3) {
        const msgpack_object *a = up.data.via.array.ptr;

        if (a[1].type == MSGPACK_OBJECT_STR && a[2].type == MSGPACK_OBJECT_STR &&
            !(a[1].via.str.size == 3 && memcmp(a[1].via.str.ptr, "rpc", 3) == 0)) {
            ok = in_table(a[1].via.str.ptr, a[1].via.str.size, a[2].via.str.ptr,
                          a[2].via.str.size) &&
                 args_ok(a[1].via.str.ptr, a[1].via.str.size, a[2].via.str.ptr, a[2].via.str.size,
                         up.data.via.array.size >= 4 ? &a[3] : NULL);
        }
    }
    msgpack_unpacked_destroy(&up);
    return ok;
}

int gr_rpc_policy_check(int role, const char *module, const char *function, const uint8_t *args,
                        size_t args_len)
{
    if (role == GR_ROLE_MEMBER) {
        return 0;
    }
    if (role != GR_ROLE_OBSERVER || module == NULL || function == NULL) {
        return GR_ENOTALLOWED;
    }
    if (strcmp(module, "rpc") == 0 &&
        (strcmp(function, "call") == 0 || strcmp(function, "multicall") == 0)) {
        return inner_allowed(args, args_len) ? 0 : GR_ENOTALLOWED;
    }
    return in_table(module, strlen(module), function, strlen(function)) &&
                   packed_args_ok(module, function, args, args_len)
               ? 0
               : GR_ENOTALLOWED;
}
