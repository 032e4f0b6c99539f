/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin.c - the plugin loader (plugin.h): checks and dlopens a plugin, hands
 * it the API table, publishes what its init registered, counts what of it
 * runs, and refuses to unload it while anything does. Also the rpc module
 * `plugin` (load, unload, list).
 *
 * Design notes
 * - Nothing a plugin registers is visible before its init returned 0: init
 *   only collects behaviours and modules into the plugin's record, and the
 *   loader publishes them afterwards (all or nothing). A failed init thus
 *   never exposes code that is about to be dlclosed.
 * - The runtime and the rpc service enter plugin code through trampolines
 *   that the loader owns: a shim behaviour per plugin behaviour (its `beh` is
 *   what is registered; the process's behaviour pointer leads back to the
 *   shim) and a wrapper per rpc function. The trampolines count live
 *   processes and running calls per plugin. A count is raised before the
 *   plugin's `gone` flag is read, and unload sets `gone` before reading the
 *   counts (both seq_cst), so either the trampoline sees `gone` and refuses,
 *   or unload sees the count and refuses. The one exception is a behaviour's
 *   handle, registered as the plugin's own function: it runs only between a
 *   successful init and the terminate, while the process is counted, so the
 *   plugin cannot be gone (and a message costs no extra call).
 * - Shims, wrappers and records of unloaded plugins stay allocated until
 *   gr_plugins_free (after the runtime stopped): a process spawned just before
 *   an unload may still reach its shim, which then refuses to start.
 * - A wrapper finds its own data from the gr_rpc_fn_def the worker runs: the
 *   def's name points at the first member (a char array) of the wrapper's
 *   struct, so (pfn *)c->fn->name is the wrapper (gr_rpc_fn_def has no user
 *   pointer, and adding one would touch every module's table).
 * - Deferred replies: rpc_defer hands out a handle {runtime, worker pid, tag};
 *   finishing it sends ["$deferred", Tag, Status, Result] to the worker, whose
 *   wrapper answers the call. A worker that already gave up drops the message.
 */
#include "plugin/plugin.h"

#include "proto/err.h"
#include "proto/term.h"
#include "rpc/rpc_int.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFERRED_ATOM "$deferred"
#define MAX_FNS 256 /* functions per plugin module */

typedef struct shim {
    girder_behaviour beh;         /* registered with the runtime: trampolines (first) */
    girder_behaviour inner;       /* the plugin's callbacks (copied) */
    const girder_behaviour *orig; /* the plugin's own pointer (spawn by pointer) */
    struct girder_plugin *pl;     /* owner */
    bool published;               /* registered with the runtime */
    struct shim *next;            /* the plugin's list */
} shim;

typedef struct pfn {
    char name[256];           /* the function's name: its def's name points here (first) */
    girder_rpc_fn src;        /* the plugin's function (copied) */
    struct girder_plugin *pl; /* owner */
} pfn;

typedef struct pmod {
    gr_rpc_module mod;    /* added to gr_rpc; fns = fnarr */
    gr_rpc_fn_def *fnarr; /* mod.nfns trampolines, name = pfns[i].name */
    pfn *pfns;            /* mod.nfns entries */
    char *name;           /* mod.name */
    bool published;       /* added to gr_rpc */
    struct pmod *next;    /* the plugin's list */
} pmod;

struct girder_plugin {
    gr_plugins *ps; /* the loader */
    char name[GR_PLUGIN_NAME_MAX + 1];
    char logname[GR_PLUGIN_NAME_MAX + 8]; /* "plugin/NAME" */
    char version[64];
    char *path;                            /* real path */
    void *handle;                          /* dlopen */
    const struct girder_plugin_info *info; /* in the plugin's image */
    bool in_init;                          /* registration allowed */
    atomic_long procs;                     /* processes running a shim (init ran) */
    atomic_long calls;                     /* rpc calls holding a wrapper */
    atomic_long deferred;                  /* unfinished deferred handles */
    atomic_bool gone;                      /* unloading or unloaded: refuse new work */
    shim *shims;                           /* behaviours */
    pmod *mods;                            /* rpc modules */
    struct girder_plugin *next;            /* loaded or retired list */
};

struct gr_plugins {
    girder_rt *rt;
    gr_rpc *rpc;                   /* NULL: no rpc */
    pthread_mutex_t lock;          /* serialises load / unload; guards the lists */
    struct girder_plugin *loaded;  /* newest first */
    struct girder_plugin *retired; /* unloaded or failed; freed by gr_plugins_free */
    size_t nloaded;
    gr_rpc_fn_def ctl[3]; /* load, unload, list; name = ctlname[i].name */
    struct ctlname {
        char name[8];   /* the function's name (first) */
        gr_plugins *ps; /* this loader */
    } ctlname[3];
    gr_rpc_module ctlm; /* "plugin" */
    bool ctl_added;
};

/* A call of a plugin function: what the plugin sees as girder_rpc_call. */
struct girder_rpc_call {
    gr_rpc_call *c;            /* the worker's call */
    struct girder_plugin *pl;  /* owner (counted in calls) */
    void *priv;                /* the plugin's per-call state */
    void (*priv_free)(void *); /* how to free it; NULL: not freed */
    uint64_t defer_tag;        /* 0: not deferred */
};

struct girder_deferred {
    girder_rt *rt;
    girder_pid worker;
    uint64_t tag;
    struct girder_plugin *pl;
};

static const girder_plugin_api api_table;

/* ---- behaviour shims (scheduler threads) ------------------------------------------------ */

static int shim_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    const shim *sh = (const shim *)gr_rt_ctx_behaviour(ctx);
    struct girder_plugin *pl = sh->pl;
    int r = 0;

    atomic_fetch_add(&pl->procs, 1);
    if (atomic_load(&pl->gone)) {
        atomic_fetch_sub(&pl->procs, 1);
        return GR_EBADBEHAVIOUR;
    }
    if (sh->inner.init) {
        r = sh->inner.init(ctx, arg, ret_state);
    }
    if (r < 0) {
        atomic_fetch_sub(&pl->procs, 1);
    }
    return r;
}

static void shim_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    const shim *sh = (const shim *)gr_rt_ctx_behaviour(ctx);

    if (sh->inner.terminate) {
        sh->inner.terminate(ctx, state, reason);
    }
    atomic_fetch_sub(&sh->pl->procs, 1);
}

/* No ctx here: state_size is only asked of a live process, whose plugin is
 * loaded, but which shim it is cannot be found. Report nothing. */
static size_t shim_state_size(const void *state)
{
    return 0;
}

/* ---- rpc function wrappers (rpc worker threads) ------------------------------------------ */

static void pcall_free(void *p)
{
    struct girder_rpc_call *pc = p;

    if (pc->priv_free) {
        pc->priv_free(pc->priv);
    }
    atomic_fetch_sub(&pc->pl->calls, 1);
    free(pc);
}

static int pfn_start(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    const pfn *f = (const pfn *)(const void *)c->fn->name;
    struct girder_rpc_call *pc = calloc(1, sizeof(*pc));

    if (!pc) {
        return -ENOMEM;
    }
    pc->c = c;
    pc->pl = f->pl;
    atomic_fetch_add(&f->pl->calls, 1);
    if (atomic_load(&f->pl->gone)) {
        atomic_fetch_sub(&f->pl->calls, 1);
        free(pc);
        return GR_EBADMODULE;
    }
    c->priv = pc;
    c->priv_free = pcall_free;
    return f->src.start(pc, ctx, args);
}

static int pfn_on_msg(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *msg)
{
    const pfn *f = (const pfn *)(const void *)c->fn->name;
    struct girder_rpc_call *pc = c->priv;
    const msgpack_object *a;

    if (pc->defer_tag && msg->type == MSGPACK_OBJECT_ARRAY && msg->via.array.size == 4 &&
        gr_term_is_str(&(a = msg->via.array.ptr)[0], DEFERRED_ATOM) &&
        a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 == pc->defer_tag) {
        if (a[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            return (int)a[2].via.i64;
        }
        return gr_rpc_answer_object(c, &a[3]);
    }
    return f->src.on_msg ? f->src.on_msg(pc, ctx, msg) : GIRDER_RPC_WAIT;
}

/* ---- the API table's own functions ------------------------------------------------------- */

static int api_behaviour_register(girder_plugin *pl, const girder_behaviour *b, size_t bsize)
{
    shim *sh;

    if (!pl || !pl->in_init) {
        return -EPERM;
    }
    if (!b || bsize < offsetof(girder_behaviour, handle) + sizeof(b->handle) || !b->name ||
        !b->name[0] || strlen(b->name) > 255 || !b->handle) {
        return GR_EBADARG;
    }
    if (girder_behaviour_find(pl->ps->rt, b->name)) {
        return -EEXIST;
    }
    for (sh = pl->shims; sh; sh = sh->next) {
        if (strcmp(sh->inner.name, b->name) == 0) {
            return -EEXIST;
        }
    }
    if (!(sh = calloc(1, sizeof(*sh)))) {
        return -ENOMEM;
    }
    memcpy(&sh->inner, b, bsize < sizeof(sh->inner) ? bsize : sizeof(sh->inner));
    /* handle is the plugin's own: it only runs for a process whose init
     * succeeded, which holds the plugin loaded (pl->procs) until its
     * terminate, so it needs no trampoline and costs no extra call */
    sh->beh = (girder_behaviour){.name = sh->inner.name,
                                 .init = shim_init,
                                 .handle = sh->inner.handle,
                                 .terminate = shim_terminate,
                                 .state_size = shim_state_size};
    sh->orig = b;
    sh->pl = pl;
    sh->next = pl->shims;
    pl->shims = sh;
    return 0;
}

static void pmod_free(pmod *pm)
{
    if (pm) {
        free(pm->fnarr);
        free(pm->pfns);
        free(pm->name);
        free(pm);
    }
}

static int api_rpc_module_register(girder_plugin *pl, const girder_rpc_module_def *m)
{
    pmod *pm;
    size_t stride;

    if (!pl || !pl->in_init) {
        return -EPERM;
    }
    if (!pl->ps->rpc) {
        return GR_ENOCONN;
    }
    if (!m || m->size < offsetof(girder_rpc_module_def, nfns) + sizeof(m->nfns) || !m->name ||
        !m->name[0] || strlen(m->name) > 255 || !m->fns || m->nfns == 0 || m->nfns > MAX_FNS) {
        return GR_EBADARG;
    }
    stride = m->fns[0].size;
    if (stride < offsetof(girder_rpc_fn, on_msg) + sizeof(m->fns[0].on_msg)) {
        return GR_EBADARG;
    }
    for (pm = pl->mods; pm; pm = pm->next) {
        if (strcmp(pm->name, m->name) == 0) {
            return -EEXIST;
        }
    }
    if (!(pm = calloc(1, sizeof(*pm))) || !(pm->name = strdup(m->name)) ||
        !(pm->pfns = calloc(m->nfns, sizeof(*pm->pfns))) ||
        !(pm->fnarr = calloc(m->nfns, sizeof(*pm->fnarr)))) {
        pmod_free(pm);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->nfns; i++) {
        const girder_rpc_fn *src = (const girder_rpc_fn *)((const char *)m->fns + i * stride);
        pfn *f = &pm->pfns[i];

        if (src->size != stride || !src->name || !src->name[0] || !src->start) {
            pmod_free(pm);
            return GR_EBADARG;
        }
        if (strlen(src->name) >= sizeof(f->name)) {
            pmod_free(pm);
            return GR_EBADARG;
        }
        memcpy(&f->src, src, sizeof(f->src));
        snprintf(f->name, sizeof(f->name), "%s", src->name);
        f->pl = pl;
        pm->fnarr[i] = (gr_rpc_fn_def){f->name, pfn_start, pfn_on_msg, NULL};
    }
    pm->mod = (gr_rpc_module){pm->name, pm->fnarr, m->nfns};
    pm->next = pl->mods;
    pl->mods = pm;
    return 0;
}

__attribute__((format(printf, 3, 4))) static void api_log(girder_plugin *pl, int level,
                                                          const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (level < GR_LOG_DEBUG) {
        level = GR_LOG_DEBUG;
    } else if (level > GR_LOG_ERROR) {
        level = GR_LOG_ERROR;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    gr_log((enum gr_log_level)level, pl ? pl->logname : "plugin", "%s", buf);
}

static int api_rpc_answer(girder_rpc_call *pc, const void *term, size_t len)
{
    return gr_rpc_answer(pc->c, term, len);
}

static int api_rpc_fail(girder_rpc_call *pc, int err)
{
    return gr_rpc_fail(pc->c, err < 0 ? err : GR_EBADARG);
}

static void api_rpc_set_priv(girder_rpc_call *pc, void *priv, void (*free_fn)(void *))
{
    pc->priv = priv;
    pc->priv_free = free_fn;
}

static void *api_rpc_priv(girder_rpc_call *pc)
{
    return pc->priv;
}

static int api_rpc_defer(girder_rpc_call *pc, girder_ctx *ctx, girder_deferred **ret_d)
{
    girder_deferred *d = calloc(1, sizeof(*d));

    if (!d) {
        return -ENOMEM;
    }
    d->rt = girder_runtime(ctx);
    d->worker = girder_self(ctx);
    d->tag = gr_rpc_next_tag(pc->c);
    d->pl = pc->pl;
    pc->defer_tag = d->tag;
    atomic_fetch_add(&pc->pl->deferred, 1);
    *ret_d = d;
    return 0;
}

/* ["$deferred", Tag, Status, Result] to the worker; frees d. Any thread. */
static int deferred_finish(girder_deferred *d, int status, const void *term, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    int r = -ENOMEM;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, DEFERRED_ATOM, strlen(DEFERRED_ATOM));
    msgpack_pack_uint64(&pk, d->tag);
    msgpack_pack_int(&pk, status);
    if (status < 0 || !term || len == 0 || gr_term_validate(term, len) < 0) {
        if (status >= 0) {
            msgpack_sbuffer_clear(&sb);
            msgpack_pack_array(&pk, 4);
            msgpack_pack_str_with_body(&pk, DEFERRED_ATOM, strlen(DEFERRED_ATOM));
            msgpack_pack_uint64(&pk, d->tag);
            msgpack_pack_int(&pk, GR_EBADTERM);
        }
        msgpack_pack_nil(&pk);
    } else {
        msgpack_sbuffer_write(&sb, term, len);
    }
    if ((m = girder_msg_new(sb.data, sb.size)) != NULL) {
        if ((r = gr_rt_send(d->rt, d->worker, m)) < 0) {
            girder_msg_unref(m);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    atomic_fetch_sub(&d->pl->deferred, 1);
    free(d);
    return r;
}

static int api_deferred_answer(girder_deferred *d, const void *term, size_t len)
{
    return deferred_finish(d, 0, term, len);
}

static int api_deferred_fail(girder_deferred *d, int err)
{
    return deferred_finish(d, err < 0 ? err : GR_EBADARG, NULL, 0);
}

/* Spawn by pointer: only a registered behaviour (a plugin's, found through its
 * shim, or a built-in one). */
static int api_spawn(girder_ctx *ctx, const girder_behaviour *b, const girder_msg *arg,
                     unsigned flags, girder_pid *ret_pid, girder_ref *ret_mref)
{
    const girder_behaviour *found;

    if (!b || !b->name) {
        return GR_EBADBEHAVIOUR;
    }
    found = girder_behaviour_find(girder_runtime(ctx), b->name);
    if (!found || (found != b && !(found->init == shim_init && ((const shim *)found)->orig == b))) {
        return GR_EBADBEHAVIOUR;
    }
    return girder_spawn(ctx, found, arg, flags, ret_pid, ret_mref);
}

static const girder_plugin_api api_table = {
    .size = sizeof(girder_plugin_api),
    .abi_major = GIRDER_PLUGIN_ABI_MAJOR,
    .api_version = GIRDER_PLUGIN_API_VERSION,
    .behaviour_register = api_behaviour_register,
    .rpc_module_register = api_rpc_module_register,
    .log = api_log,
    .rpc_answer = api_rpc_answer,
    .rpc_fail = api_rpc_fail,
    .rpc_set_priv = api_rpc_set_priv,
    .rpc_priv = api_rpc_priv,
    .rpc_defer = api_rpc_defer,
    .deferred_answer = api_deferred_answer,
    .deferred_fail = api_deferred_fail,
    .rt_send = gr_rt_send,
    .strerror = gr_strerror,
    .msg_new = girder_msg_new,
    .msg_atom = girder_msg_atom,
    .msg_from_object = girder_msg_from_object,
    .msg_ref = girder_msg_ref,
    .msg_unref = girder_msg_unref,
    .msg_data = girder_msg_data,
    .msg_size = girder_msg_size,
    .msg_unpack = girder_msg_unpack,
    .msg_is_atom = girder_msg_is_atom,
    .pack_pid = girder_pack_pid,
    .pack_ref = girder_pack_ref,
    .get_pid = girder_get_pid,
    .get_ref = girder_get_ref,
    .spawn = api_spawn,
    .spawn_named = girder_spawn_named,
    .self = girder_self,
    .runtime = girder_runtime,
    .send = girder_send,
    .send_name = girder_send_name,
    .send_name_node = girder_send_name_node,
    .reg = girder_register,
    .unreg = girder_unregister,
    .whereis = girder_whereis,
    .link = girder_link,
    .unlink = girder_unlink,
    .monitor = girder_monitor,
    .demonitor = girder_demonitor,
    .exit = girder_exit,
    .stop = girder_stop,
    .trap_exit = girder_trap_exit,
    .send_after = girder_send_after,
    .cancel_timer = girder_cancel_timer,
    .make_ref = girder_make_ref,
    .call = girder_call,
    .reply = girder_reply,
    .global_register = girder_global_register,
    .global_unregister = girder_global_unregister,
    .global_whereis = girder_global_whereis,
    .global_send = girder_global_send,
    .buf_free = girder_buf_free,
    .table_get = girder_table_get,
    .table_put = girder_table_put,
    .table_del = girder_table_del,
    .table_incr = girder_table_incr,
};

const girder_plugin_api *gr_plugins_api(void)
{
    return &api_table;
}

/* ---- loading ------------------------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    size_t n = 0;

    for (; s && s[n]; n++) {
        char ch = s[n];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-')) {
            return false;
        }
    }
    return n > 0 && n <= GR_PLUGIN_NAME_MAX;
}

/* Withdraw what was published (runtime, rpc). */
static void unpublish(struct girder_plugin *pl)
{
    for (shim *sh = pl->shims; sh; sh = sh->next) {
        if (sh->published) {
            (void)gr_rt_behaviour_unregister(pl->ps->rt, &sh->beh);
            sh->published = false;
        }
    }
    for (pmod *pm = pl->mods; pm; pm = pm->next) {
        if (pm->published) {
            (void)gr_rpc_module_remove(pl->ps->rpc, &pm->mod);
            pm->published = false;
        }
    }
}

/* Make the plugin's behaviours and modules visible: all or nothing. */
static int publish(struct girder_plugin *pl)
{
    int r;

    for (shim *sh = pl->shims; sh; sh = sh->next) {
        if ((r = girder_behaviour_register(pl->ps->rt, &sh->beh)) < 0) {
            gr_error(pl->logname, "cannot register behaviour %s: %s", sh->beh.name, gr_strerror(r));
            goto fail;
        }
        sh->published = true;
    }
    for (pmod *pm = pl->mods; pm; pm = pm->next) {
        if ((r = gr_rpc_module_add(pl->ps->rpc, &pm->mod)) < 0) {
            gr_error(pl->logname, "cannot add rpc module %s: %s", pm->name, gr_strerror(r));
            goto fail;
        }
        pm->published = true;
    }
    return 0;
fail:
    unpublish(pl);
    return r;
}

static void plugin_free(struct girder_plugin *pl)
{
    while (pl->shims) {
        shim *sh = pl->shims;

        pl->shims = sh->next;
        free(sh);
    }
    while (pl->mods) {
        pmod *pm = pl->mods;

        pl->mods = pm->next;
        pmod_free(pm);
    }
    free(pl->path);
    free(pl);
}

/* Move pl to the retired list (its memory lives until gr_plugins_free). Caller
 * holds ps->lock. */
static void retire(gr_plugins *ps, struct girder_plugin *pl)
{
    pl->next = ps->retired;
    ps->retired = pl;
}

static int check_file(const char *path, char *real)
{
    struct stat st;

    if (!realpath(path, real)) {
        gr_error("plugin", "cannot load %s: %s", path, strerror(errno));
        return -errno;
    }
    if (stat(real, &st) < 0) {
        gr_error("plugin", "cannot load %s: %s", real, strerror(errno));
        return -errno;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
        gr_error("plugin", "refusing %s: %s (mode %04o)", real,
                 S_ISREG(st.st_mode) ? "writable by group or others" : "not a regular file",
                 (unsigned)(st.st_mode & 07777));
        return GR_EPLUGINPERM;
    }
    return 0;
}

static int load_locked(gr_plugins *ps, const char *path, char *ret_name)
{
    char real[PATH_MAX];
    struct girder_plugin *pl = NULL;
    girder_plugin_init_fn init;
    const struct girder_plugin_info *info;
    void *h;
    int r;

    if (ps->nloaded >= GR_PLUGIN_MAX) {
        gr_error("plugin", "refusing %s: %d plugins loaded already", path, GR_PLUGIN_MAX);
        return -ENOSPC;
    }
    if ((r = check_file(path, real)) < 0) {
        return r;
    }
    if (!(h = dlopen(real, RTLD_NOW | RTLD_LOCAL))) {
        gr_error("plugin", "cannot load %s: %s", real, dlerror());
        return GR_EPLUGINOPEN;
    }
    info = dlsym(h, "girder_plugin_info");
    init = (girder_plugin_init_fn)dlsym(h, "girder_plugin_init");
    if (!info || !init) {
        gr_error("plugin", "refusing %s: not a Girder plugin (%s missing)", real,
                 !info ? "girder_plugin_info" : "girder_plugin_init");
        r = GR_EPLUGINENTRY;
        goto fail;
    }
    if (info->size < offsetof(struct girder_plugin_info, on_unload) + sizeof(info->on_unload) ||
        info->abi_major != GIRDER_PLUGIN_ABI_MAJOR) {
        gr_error("plugin", "refusing %s: built for plugin ABI %u, this girderd has ABI %d", real,
                 info->size >= 8 ? info->abi_major : 0, GIRDER_PLUGIN_ABI_MAJOR);
        r = GR_EPLUGINABI;
        goto fail;
    }
    if (info->api_version > GIRDER_PLUGIN_API_VERSION) {
        gr_error("plugin", "refusing %s: needs API table version %u, this girderd has %d", real,
                 info->api_version, GIRDER_PLUGIN_API_VERSION);
        r = GR_EPLUGINABI;
        goto fail;
    }
    if (!name_ok(info->name)) {
        gr_error("plugin", "refusing %s: bad plugin name (1..%d of A-Z a-z 0-9 _ -)", real,
                 GR_PLUGIN_NAME_MAX);
        r = GR_EPLUGINENTRY;
        goto fail;
    }
    for (struct girder_plugin *o = ps->loaded; o; o = o->next) {
        if (strcmp(o->name, info->name) == 0) {
            gr_error("plugin", "refusing %s: a plugin named %s is loaded (from %s)", real,
                     info->name, o->path);
            r = GR_EPLUGINLOADED;
            goto fail;
        }
    }
    if (!(pl = calloc(1, sizeof(*pl))) || !(pl->path = strdup(real))) {
        r = -ENOMEM;
        goto fail;
    }
    pl->ps = ps;
    pl->handle = h;
    pl->info = info;
    snprintf(pl->name, sizeof(pl->name), "%s", info->name);
    snprintf(pl->logname, sizeof(pl->logname), "plugin/%s", info->name);
    snprintf(pl->version, sizeof(pl->version), "%s", info->version ? info->version : "");
    pl->in_init = true;
    r = init(&api_table, pl);
    pl->in_init = false;
    if (r < 0) {
        gr_error("plugin", "refusing %s: its init failed: %s", real, gr_strerror(r));
        r = GR_EPLUGININIT;
        goto fail;
    }
    if ((r = publish(pl)) < 0) {
        goto fail;
    }
    pl->next = ps->loaded;
    ps->loaded = pl;
    ps->nloaded++;
    gr_notice("plugin", "loaded %s %s from %s", pl->name, pl->version, real);
    if (ret_name) {
        snprintf(ret_name, GR_PLUGIN_NAME_MAX + 1, "%s", pl->name);
    }
    return 0;

fail:
    if (pl) {
        /* Nothing was published (or publish undid itself), so nothing can
         * reach the plugin's code: close it now, keep the record anyway. */
        pl->handle = NULL;
        atomic_store(&pl->gone, true);
        retire(ps, pl);
    }
    dlclose(h);
    return r;
}

int gr_plugins_load(gr_plugins *ps, const char *path, char *ret_name)
{
    int r;

    if (!ps || !path || !path[0]) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    r = load_locked(ps, path, ret_name);
    pthread_mutex_unlock(&ps->lock);
    return r;
}

int gr_plugins_unload(gr_plugins *ps, const char *name)
{
    struct girder_plugin **pp, *pl = NULL;
    long procs, calls, deferred;
    int r = 0;

    if (!ps || !name) {
        return GR_EBADARG;
    }
    pthread_mutex_lock(&ps->lock);
    for (pp = &ps->loaded; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            pl = *pp;
            break;
        }
    }
    if (!pl) {
        r = GR_ENOPLUGIN;
        goto out;
    }
    atomic_store(&pl->gone, true);
    procs = atomic_load(&pl->procs);
    calls = atomic_load(&pl->calls);
    deferred = atomic_load(&pl->deferred);
    if (procs || calls || deferred) {
        atomic_store(&pl->gone, false);
        gr_warn("plugin",
                "not unloading %s: %ld process(es), %ld rpc call(s), %ld deferred "
                "reply(ies) of it are alive",
                pl->name, procs, calls, deferred);
        r = GR_EPLUGININUSE;
        goto out;
    }
    if (pl->info->on_unload && (r = pl->info->on_unload()) < 0) {
        atomic_store(&pl->gone, false);
        gr_warn("plugin", "not unloading %s: its on_unload refused (%s)", pl->name, gr_strerror(r));
        r = GR_EPLUGININUSE;
        goto out;
    }
    unpublish(pl);
    *pp = pl->next;
    ps->nloaded--;
    dlclose(pl->handle);
    pl->handle = NULL;
    retire(ps, pl);
    gr_notice("plugin", "unloaded %s", name);
    r = 0;
out:
    pthread_mutex_unlock(&ps->lock);
    return r;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

int gr_plugins_pack_list(gr_plugins *ps, msgpack_packer *pk)
{
    size_t n = 0;

    pthread_mutex_lock(&ps->lock);
    msgpack_pack_array(pk, ps->nloaded);
    for (struct girder_plugin *pl = ps->loaded; pl; pl = pl->next, n++) {
        size_t nb = 0, nm = 0;

        for (shim *sh = pl->shims; sh; sh = sh->next) {
            nb++;
        }
        for (pmod *pm = pl->mods; pm; pm = pm->next) {
            nm++;
        }
        msgpack_pack_map(pk, 8);
        pack_str(pk, "name");
        pack_str(pk, pl->name);
        pack_str(pk, "version");
        pack_str(pk, pl->version);
        pack_str(pk, "path");
        pack_str(pk, pl->path);
        pack_str(pk, "processes");
        msgpack_pack_int64(pk, atomic_load(&pl->procs));
        pack_str(pk, "calls");
        msgpack_pack_int64(pk, atomic_load(&pl->calls));
        pack_str(pk, "deferred");
        msgpack_pack_int64(pk, atomic_load(&pl->deferred));
        pack_str(pk, "behaviours");
        msgpack_pack_array(pk, nb);
        for (shim *sh = pl->shims; sh; sh = sh->next) {
            pack_str(pk, sh->beh.name);
        }
        pack_str(pk, "modules");
        msgpack_pack_array(pk, nm);
        for (pmod *pm = pl->mods; pm; pm = pm->next) {
            pack_str(pk, pm->name);
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return 0;
}

/* ---- the rpc module `plugin` ---------------------------------------------------------------- */

/* plugin.load(Path) -> Name */
static int ctl_load(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_plugins *ps = ((const struct ctlname *)(const void *)c->fn->name)->ps;
    char path[PATH_MAX], name[GR_PLUGIN_NAME_MAX + 1];
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        gr_term_get_str(&args->via.array.ptr[0], path, sizeof(path)) < 0) {
        return GR_EBADARG;
    }
    if ((r = gr_plugins_load(ps, path, name)) < 0) {
        return r;
    }
    return gr_rpc_answer_str(c, name);
}

/* plugin.unload(Name) -> "ok" */
static int ctl_unload(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_plugins *ps = ((const struct ctlname *)(const void *)c->fn->name)->ps;
    char name[GR_PLUGIN_NAME_MAX + 1];
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1 ||
        gr_term_get_str(&args->via.array.ptr[0], name, sizeof(name)) < 0) {
        return GR_EBADARG;
    }
    if ((r = gr_plugins_unload(ps, name)) < 0) {
        return r;
    }
    return gr_rpc_answer_str(c, "ok");
}

/* plugin.list() -> [{"name", "version", "path", "processes", ...}] */
static int ctl_list(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_plugins *ps = ((const struct ctlname *)(const void *)c->fn->name)->ps;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 0) {
        return GR_EBADARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if ((r = gr_plugins_pack_list(ps, &pk)) == 0) {
        r = gr_rpc_answer(c, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int gr_plugins_new(girder_rt *rt, gr_rpc *rpc, gr_plugins **ret_ps)
{
    static const char *const names[3] = {"load", "unload", "list"};
    static const gr_rpc_start_fn fns[3] = {ctl_load, ctl_unload, ctl_list};
    gr_plugins *ps;
    int r;

    if (!rt || !ret_ps) {
        return -EINVAL;
    }
    if (!(ps = calloc(1, sizeof(*ps)))) {
        return -ENOMEM;
    }
    ps->rt = rt;
    ps->rpc = rpc;
    if ((r = pthread_mutex_init(&ps->lock, NULL)) != 0) {
        free(ps);
        return -r;
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf(ps->ctlname[i].name, sizeof(ps->ctlname[i].name), "%s", names[i]);
        ps->ctlname[i].ps = ps;
        ps->ctl[i] = (gr_rpc_fn_def){ps->ctlname[i].name, fns[i], NULL, NULL};
    }
    ps->ctlm = (gr_rpc_module){"plugin", ps->ctl, 3};
    if (rpc) {
        if ((r = gr_rpc_module_add(rpc, &ps->ctlm)) < 0) {
            pthread_mutex_destroy(&ps->lock);
            free(ps);
            return r;
        }
        ps->ctl_added = true;
    }
    *ret_ps = ps;
    return 0;
}

gr_plugins *gr_plugins_free(gr_plugins *ps)
{
    if (!ps) {
        return NULL;
    }
    if (ps->ctl_added) {
        (void)gr_rpc_module_remove(ps->rpc, &ps->ctlm);
    }
    while (ps->loaded) {
        struct girder_plugin *pl = ps->loaded;

        ps->loaded = pl->next;
        if (pl->info->on_unload) {
            (void)pl->info->on_unload();
        }
        unpublish(pl);
        dlclose(pl->handle);
        plugin_free(pl);
    }
    while (ps->retired) {
        struct girder_plugin *pl = ps->retired;

        ps->retired = pl->next;
        plugin_free(pl);
    }
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    return NULL;
}
