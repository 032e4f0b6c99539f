/* SPDX-License-Identifier: Apache-2.0 */
/*
 * girder_plugin.h - the C plugin ABI: a shared object that girderd loads at
 * start (--plugin PATH, [plugins] load = PATH) or at run time (`girder plugin
 * load PATH`), and that adds behaviours and rpc modules to the node.
 *
 * A plugin has no link-time dependency on girderd. It exports two symbols:
 *
 *   GIRDER_PLUGIN("name", "1.0", on_unload);       the plugin's identity
 *   int girder_plugin_init(const girder_plugin_api *api, girder_plugin *self);
 *
 * girderd dlopens the file (RTLD_NOW | RTLD_LOCAL), reads girder_plugin_info,
 * checks its ABI, and calls girder_plugin_init once with the API table: every
 * function of girder.h and the plugin calls below are pointers in it. The table
 * is append-only: a field once published never moves or changes meaning, new
 * functions go at the end, api->size says how much of it this daemon has (use
 * GIRDER_API_HAS(api, field) before calling anything newer than the version
 * the plugin requires). So a plugin built against an older header runs on a
 * newer daemon. Structs that cross the boundary carry their size.
 *
 * Refusals (the load fails with a logged reason and nothing stays loaded):
 * the file is writable by group or others or not a regular file; the symbols
 * are missing; the plugin's ABI major differs or it needs a newer table than
 * the daemon has; init returns < 0 (everything it registered is undone); its
 * name is already loaded. Unload is refused while a process runs one of its
 * behaviours, an rpc call runs one of its functions, or a deferred reply is
 * pending; then on_unload runs (it must join every thread the plugin started
 * and may veto by returning < 0), its behaviours and modules go, and the file is
 * dlclosed.
 *
 * Threads: init and on_unload run on the thread that loads (a scheduler or the
 * main thread). Behaviour callbacks and rpc start/on_msg callbacks run on a
 * scheduler and must not block: return within about 1 ms (docs/plugins.md).
 * Longer work goes to a thread of the plugin, which finishes the call with
 * api->deferred_answer / deferred_fail, or sends messages with api->rt_send.
 */
#ifndef GIRDER_PLUGIN_H
#define GIRDER_PLUGIN_H

#include "girder/girder.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped only if the table or the info struct ever change incompatibly (never,
 * by intent): a plugin of another major is refused. */
#define GIRDER_PLUGIN_ABI_MAJOR 1
/* The table's version: incremented whenever functions are appended. A plugin
 * records the version it was built against; girderd refuses a plugin that needs
 * a newer table than it has. */
#define GIRDER_PLUGIN_API_VERSION 2

typedef struct girder_plugin girder_plugin;     /* the loaded plugin; opaque */
typedef struct girder_rpc_call girder_rpc_call; /* one rpc call being served; opaque */
typedef struct girder_deferred girder_deferred; /* a call to finish from any thread */

/* Returned by rpc start / on_msg callbacks. */
#define GIRDER_RPC_DONE 0 /* answered (girder_plugin_api.rpc_answer / rpc_fail) */
#define GIRDER_RPC_WAIT 1 /* not yet: wait for messages (or a deferred answer) */

/* One rpc function: `girder rpc NODE MODULE NAME ARGS...` runs start in a fresh
 * worker process with the call's arguments (a msgpack array, borrowed for the
 * callback). start answers at once (rpc_answer, return GIRDER_RPC_DONE), fails
 * (return a negative error: answered as that error), or returns
 * GIRDER_RPC_WAIT: then on_msg (may be NULL) gets every message the worker
 * receives until one of them answers, the deadline passes, or a deferred answer
 * arrives. */
typedef struct girder_rpc_fn {
    size_t size;      /* sizeof(girder_rpc_fn): the array's stride */
    const char *name; /* function name */
    int (*start)(girder_rpc_call *call, girder_ctx *ctx, const msgpack_object *args);
    int (*on_msg)(girder_rpc_call *call, girder_ctx *ctx, const msgpack_object *msg);
} girder_rpc_fn;

typedef struct girder_rpc_module_def {
    size_t size;              /* sizeof(girder_rpc_module_def) */
    const char *name;         /* module name, unique on the node */
    const girder_rpc_fn *fns; /* nfns entries, each fns[0].size bytes apart */
    size_t nfns;              /* 1..256 */
} girder_rpc_module_def;

/* What the plugin says about itself: GIRDER_PLUGIN defines the variable
 * girder_plugin_info of this type. */
struct girder_plugin_info {
    uint32_t size;        /* sizeof(struct girder_plugin_info) */
    uint32_t abi_major;   /* GIRDER_PLUGIN_ABI_MAJOR it was built with */
    uint32_t api_version; /* the table version it needs (GIRDER_PLUGIN_API_VERSION) */
    uint32_t reserved;    /* 0 */
    const char *name;     /* unique per node; 1..63 of [A-Za-z0-9_-] */
    const char *version;  /* free text for `girder plugin list` */
    /* Called before the plugin is unloaded, when nothing of it runs: join every
     * thread the plugin started. < 0 vetoes the unload. NULL: nothing to do. */
    int (*on_unload)(void);
};

#define GIRDER_PLUGIN(name_, version_, on_unload_)                                                 \
    __attribute__((visibility("default")))                                                         \
    const struct girder_plugin_info girder_plugin_info = {sizeof(struct girder_plugin_info),       \
                                                          GIRDER_PLUGIN_ABI_MAJOR,                 \
                                                          GIRDER_PLUGIN_API_VERSION,               \
                                                          0,                                       \
                                                          (name_),                                 \
                                                          (version_),                              \
                                                          (on_unload_)}

/* The table. Append only. Every function behaves as its girder.h namesake
 * (girder_send -> send, ...) unless stated. */
typedef struct girder_plugin_api {
    uint32_t size;        /* bytes of this table girderd provides */
    uint32_t abi_major;   /* GIRDER_PLUGIN_ABI_MAJOR of girderd */
    uint32_t api_version; /* GIRDER_PLUGIN_API_VERSION of girderd */
    uint32_t reserved;    /* 0 */

    /* ---- version 1: registration (only inside girder_plugin_init) ---- */
    /* Register a behaviour, spawnable by name (`girder spawn NAME`) and by
     * spawn / spawn_named. bsize = sizeof(girder_behaviour) (use
     * GIRDER_REGISTER_BEHAVIOUR). `b` must stay valid until unload.
     * 0, -EEXIST, GR_EBADARG, -ENOMEM, -EPERM outside init. */
    int (*behaviour_register)(girder_plugin *self, const girder_behaviour *b, size_t bsize);
    /* Register an rpc module. `m` and its functions stay valid until unload.
     * 0, -EEXIST, GR_EBADARG, -ENOMEM, -EPERM outside init. */
    int (*rpc_module_register)(girder_plugin *self, const girder_rpc_module_def *m);
    /* Log a line to the node's log under the plugin's name. level: 0 debug,
     * 1 info, 2 notice, 3 warn, 4 error. Any thread. */
    void (*log)(girder_plugin *self, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* ---- version 1: rpc calls (the worker's scheduler thread) ---- */
    /* Answer with one msgpack term (len bytes, copied). GIRDER_RPC_DONE or < 0. */
    int (*rpc_answer)(girder_rpc_call *call, const void *term, size_t len);
    /* Answer with an error code (a girder error or -errno). GIRDER_RPC_DONE. */
    int (*rpc_fail)(girder_rpc_call *call, int err);
    /* Per-call state: freed with free_fn (may be NULL: not freed) when the call
     * ends, whatever the outcome. */
    void (*rpc_set_priv)(girder_rpc_call *call, void *priv, void (*free_fn)(void *));
    void *(*rpc_priv)(girder_rpc_call *call);
    /* Hand the call to another thread: returns a handle that any thread
     * finishes exactly once with deferred_answer or deferred_fail (which free
     * it). The callback then returns GIRDER_RPC_WAIT. If the call's deadline
     * passes first the caller gets "timeout" and the late answer is dropped;
     * the handle must still be finished. 0 or -ENOMEM. */
    int (*rpc_defer)(girder_rpc_call *call, girder_ctx *ctx, girder_deferred **ret_d);
    int (*deferred_answer)(girder_deferred *d, const void *term, size_t len);
    int (*deferred_fail)(girder_deferred *d, int err);

    /* ---- version 1: any thread ---- */
    /* gr_rt_send: send msg to pid from any thread (a plugin thread). Takes msg
     * on success. */
    int (*rt_send)(girder_rt *rt, girder_pid to, girder_msg *msg);
    const char *(*strerror)(int err);

    /* ---- version 1: girder.h ---- */
    girder_msg *(*msg_new)(const void *bytes, size_t len);
    girder_msg *(*msg_atom)(const char *s);
    girder_msg *(*msg_from_object)(const msgpack_object *o);
    girder_msg *(*msg_ref)(girder_msg *m);
    girder_msg *(*msg_unref)(girder_msg *m);
    const void *(*msg_data)(const girder_msg *m);
    size_t (*msg_size)(const girder_msg *m);
    int (*msg_unpack)(const girder_msg *m, msgpack_unpacked *out);
    bool (*msg_is_atom)(const girder_msg *m, const char *s);
    int (*pack_pid)(girder_ctx *ctx, msgpack_packer *pk, girder_pid pid);
    int (*pack_ref)(girder_ctx *ctx, msgpack_packer *pk, girder_ref ref);
    int (*get_pid)(girder_ctx *ctx, const msgpack_object *o, girder_pid *ret_pid);
    int (*get_ref)(girder_ctx *ctx, const msgpack_object *o, girder_ref *ret_ref);
    /* Spawns only behaviours registered by a plugin or built in. */
    int (*spawn)(girder_ctx *ctx, const girder_behaviour *b, const girder_msg *arg, unsigned flags,
                 girder_pid *ret_pid, girder_ref *ret_mref);
    int (*spawn_named)(girder_ctx *ctx, const char *behaviour, const girder_msg *arg,
                       unsigned flags, girder_pid *ret_pid, girder_ref *ret_mref);
    girder_pid (*self)(girder_ctx *ctx);
    girder_rt *(*runtime)(girder_ctx *ctx);
    int (*send)(girder_ctx *ctx, girder_pid to, girder_msg *msg);
    int (*send_name)(girder_ctx *ctx, const char *name, girder_msg *msg);
    int (*send_name_node)(girder_ctx *ctx, const char *name, const char *node, girder_msg *msg);
    int (*reg)(girder_ctx *ctx, const char *name, girder_pid pid);
    int (*unreg)(girder_ctx *ctx, const char *name);
    int (*whereis)(girder_ctx *ctx, const char *name, girder_pid *ret_pid);
    int (*link)(girder_ctx *ctx, girder_pid pid);
    int (*unlink)(girder_ctx *ctx, girder_pid pid);
    int (*monitor)(girder_ctx *ctx, girder_pid pid, girder_ref *ret_ref);
    int (*demonitor)(girder_ctx *ctx, girder_ref ref);
    int (*exit)(girder_ctx *ctx, girder_pid pid, const girder_msg *reason);
    void (*stop)(girder_ctx *ctx, const girder_msg *reason);
    bool (*trap_exit)(girder_ctx *ctx, bool on);
    int (*send_after)(girder_ctx *ctx, girder_pid to, uint64_t ms, girder_msg *msg,
                      girder_ref *ret_tref);
    int (*cancel_timer)(girder_ctx *ctx, girder_ref tref);
    girder_ref (*make_ref)(girder_ctx *ctx);
    int (*call)(girder_ctx *ctx, girder_pid to, const girder_msg *request, bool monitor,
                girder_ref *ret_ref);
    int (*reply)(girder_ctx *ctx, girder_pid from, girder_ref ref, const girder_msg *response);
    /* ---- version 2: girder.h cluster-wide names and tables ---- */
    int (*global_register)(girder_ctx *ctx, const char *name, girder_pid pid);
    int (*global_unregister)(girder_ctx *ctx, const char *name);
    int (*global_whereis)(girder_ctx *ctx, const char *name, girder_pid *ret_pid);
    int (*global_send)(girder_ctx *ctx, const char *name, girder_msg *msg);
    void (*buf_free)(girder_buf *b);
    int (*table_get)(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     girder_buf *val, uint64_t *ret_version);
    int (*table_put)(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen, const girder_put_opts *how,
                     uint64_t *ret_version);
    int (*table_del)(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                     uint64_t version);
    int (*table_incr)(girder_ctx *ctx, const char *table, const void *key, size_t klen,
                      int64_t delta, int64_t *ret_value);
    /* Appended fields go here, after a comment naming their table version. */
} girder_plugin_api;

/* Does this daemon's table have `field`? */
#define GIRDER_API_HAS(api, field)                                                                 \
    ((api)->size >= offsetof(girder_plugin_api, field) + sizeof((api)->field) &&                   \
     (api)->field != NULL)

#define GIRDER_REGISTER_BEHAVIOUR(api, self, b)                                                    \
    ((api)->behaviour_register((self), (b), sizeof(girder_behaviour)))

/* The entry point every plugin defines: 0, or < 0 to refuse loading. */
typedef int (*girder_plugin_init_fn)(const girder_plugin_api *api, girder_plugin *self);
__attribute__((visibility("default"))) int girder_plugin_init(const girder_plugin_api *api,
                                                              girder_plugin *self);

#ifdef __cplusplus
}
#endif

#endif
