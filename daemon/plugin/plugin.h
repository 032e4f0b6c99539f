/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin.h - the plugin loader: shared objects written against
 * include/girder/girder_plugin.h, loaded at start (--plugin, [plugins]) and at
 * run time through the rpc module `plugin` (load, unload, list), which
 * gr_plugins_new adds to the node's gr_rpc. docs/plugins.md is the author's
 * view.
 *
 * Threading: load and unload are serialised by the loader's lock and may run
 * on any thread (the main thread at start, an rpc worker at run time). The
 * gr_plugins outlives the runtime's processes: free it after gr_rt_stop.
 */
#ifndef GR_PLUGIN_H
#define GR_PLUGIN_H

#include "girder/girder.h"
#include "girder/girder_plugin.h"
#include "rpc/rpc.h"

#include <stddef.h>

#define GR_PLUGIN_NAME_MAX 63 /* longest plugin name */
#define GR_PLUGIN_MAX 64      /* plugins loaded at once */

typedef struct gr_plugins gr_plugins;

/* Create the loader for rt; rpc (may be NULL: no rpc module `plugin`, plugins
 * cannot register rpc modules) gets the module `plugin`. 0, -ENOMEM, -EEXIST. */
int gr_plugins_new(girder_rt *rt, gr_rpc *rpc, gr_plugins **ret_ps);

/* Load the plugin at path (any thread). On success *ret_name (may be NULL)
 * gets its name (NUL-terminated, GR_PLUGIN_NAME_MAX + 1 bytes). 0, or
 * GR_EPLUGINPERM, GR_EPLUGINOPEN, GR_EPLUGINENTRY, GR_EPLUGINABI,
 * GR_EPLUGININIT, GR_EPLUGINLOADED, -EEXIST (a behaviour or module name it
 * registered is taken), -ENOSPC (GR_PLUGIN_MAX), -ENOENT, -ENOMEM. Every
 * refusal is logged with its detail; on failure nothing of the plugin stays. */
int gr_plugins_load(gr_plugins *ps, const char *path, char *ret_name);

/* Unload the plugin called name (any thread but the plugin's own). 0, or
 * GR_ENOPLUGIN, GR_EPLUGININUSE (a process, rpc call or deferred reply of it
 * is alive, or its on_unload vetoed). */
int gr_plugins_unload(gr_plugins *ps, const char *name);

/* Pack the list of loaded plugins as `plugin.list` answers it. 0 or -ENOMEM. */
int gr_plugins_pack_list(gr_plugins *ps, msgpack_packer *pk);

/* After gr_rt_stop: run each plugin's on_unload (veto ignored), dlclose, free.
 * NULL-safe; returns NULL. */
gr_plugins *gr_plugins_free(gr_plugins *ps);

/* The API table handed to plugins (tests check its versions and layout). */
const girder_plugin_api *gr_plugins_api(void);

#endif
