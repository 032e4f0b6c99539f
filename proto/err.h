/* SPDX-License-Identifier: Apache-2.0 */
/*
 * err.h - Girder's error codes, shared by every module and both programs.
 *
 * Errors are a negative int: 0 on success, -errno for system failures, and the
 * Girder-only codes below for conditions errno cannot name. Girder codes sit far
 * outside errno's range (errno tops out near 133 on Linux) so a caller can tell
 * them apart and map them to CLI exit codes and /metrics labels.
 *
 * One X-macro generates the enum, the stable reason ID (used in logs) and the
 * human message, so they never drift apart.
 */
#ifndef GR_ERR_H
#define GR_ERR_H

#include <stddef.h>

/* X(NAME, value, "stable-reason-id", "human message") */
#define GR_ERR_MAP(X)                                                                              \
    X(GR_ENOPROC, -5001, "noproc", "no such process")                                              \
    X(GR_ENONAME, -5002, "noname", "name is not registered")                                       \
    X(GR_ENAMETAKEN, -5003, "name_taken", "name is already registered")                            \
    X(GR_EALREADY, -5004, "already_registered", "process already has a registered name")           \
    X(GR_EBADTERM, -5005, "bad_term", "malformed term")                                            \
    X(GR_EBADBEHAVIOUR, -5006, "bad_behaviour", "unknown behaviour")                               \
    X(GR_EINIT, -5007, "init_failed", "process init failed")                                       \
    X(GR_ENOTSCHED, -5008, "not_scheduler", "call made outside a scheduler thread")                \
    X(GR_ESTOPPED, -5009, "stopped", "runtime is stopping")                                        \
    X(GR_EFRAMETOOBIG, -5010, "frame_too_big", "frame exceeds the size limit")                     \
    X(GR_EBADFRAME, -5011, "bad_frame", "malformed frame")                                         \
    X(GR_EBADCOOKIE, -5012, "bad_cookie", "authentication failed (wrong cookie)")                  \
    X(GR_EVERSION, -5013, "version_mismatch", "protocol version mismatch")                         \
    X(GR_ENAMECLASH, -5014, "name_clash", "node name clash")                                       \
    X(GR_EREPLAY, -5015, "replay", "replayed or out-of-order handshake message")                   \
    X(GR_ECRYPTO, -5016, "decrypt_failed", "decryption or authentication of a frame failed")       \
    X(GR_ECOOKIEPERM, -5017, "cookie_perm", "cookie file is readable by group or others")          \
    X(GR_ENOCONN, -5018, "noconnection", "node is not connected")                                  \
    X(GR_EBADMODULE, -5019, "undef_module", "unknown module")                                      \
    X(GR_EBADFUNC, -5020, "undef_function", "unknown function")                                    \
    X(GR_EBADARG, -5021, "badarg", "bad argument")                                                 \
    X(GR_ECONFIG, -5022, "bad_config", "invalid configuration")                                    \
    X(GR_ETIMEOUT, -5023, "timeout", "timed out")                                                  \
    X(GR_EBADNODE, -5024, "bad_node_name", "malformed node name")                                  \
    X(GR_EOVERLOAD, -5025, "overload", "peer link is overloaded")                                  \
    X(GR_ENOCOOKIE, -5026, "no_cookie", "cookie is missing or empty")                              \
    X(GR_EREJECTED, -5027, "rejected", "peer rejected the handshake")                              \
    X(GR_EBUSY, -5028, "busy", "node busy: too many connections in handshake")                     \
    X(GR_ENOTABLE, -5029, "no_table", "no such table")                                             \
    X(GR_ETABLEEXISTS, -5030, "table_exists", "table already exists")                              \
    X(GR_EFULL, -5031, "table_full", "table is full (max_entries or max_bytes)")                   \
    X(GR_EWRONGTYPE, -5032, "wrong_type", "operation does not fit the key's value type")           \
    X(GR_ECASMISMATCH, -5033, "cas_mismatch", "key's version differs from the expected one")       \
    X(GR_EBADTABLENAME, -5034, "bad_table_name", "bad table name")                                 \
    X(GR_ETOOBIG, -5035, "too_large", "key or value exceeds the size limit")                       \
    X(GR_ENOKEY, -5036, "not_found", "no such key")                                                \
    X(GR_EKEYEXISTS, -5037, "key_exists", "key already exists")                                    \
    X(GR_ECORRUPT, -5038, "corrupt", "stored data is corrupt")                                     \
    X(GR_ETOOMANYTABLES, -5039, "too_many_tables", "too many tables on this node")                 \
    X(GR_EPLUGINABI, -5101, "plugin_abi", "plugin built for another plugin ABI")                   \
    X(GR_EPLUGINENTRY, -5102, "plugin_no_entry",                                                   \
      "not a Girder plugin: girder_plugin_info or girder_plugin_init missing")                     \
    X(GR_EPLUGININIT, -5103, "plugin_init_failed", "plugin init failed")                           \
    X(GR_EPLUGINPERM, -5104, "plugin_unsafe_file",                                                 \
      "plugin file is writable by group or others, or not a regular file")                         \
    X(GR_EPLUGININUSE, -5105, "plugin_in_use",                                                     \
      "plugin still owns processes, rpc calls or deferred replies")                                \
    X(GR_ENOPLUGIN, -5106, "no_plugin", "no such plugin loaded")                                   \
    X(GR_EPLUGINLOADED, -5107, "plugin_loaded", "a plugin of that name is already loaded")         \
    X(GR_EPLUGINOPEN, -5108, "plugin_open_failed", "cannot open the plugin (dlopen failed)")       \
    X(GR_ENOTALLOWED, -5250, "not_allowed", "not allowed: the observer role may only read")        \
    X(GR_EROLE, -5251, "bad_role",                                                                 \
      "role refused: an unknown role, an observer that is not a hidden client, or no observer "    \
      "key")                                                                                       \
    X(GR_EMEMBERUP, -5240, "member_up",                                                            \
      "the member is connected: only a member that is down or left can be forgotten")              \
    X(GR_ENOMEMBER, -5241, "no_member", "no such member")                                          \
    X(GR_EFORGETSELF, -5242, "is_self", "a node cannot forget itself")                             \
    X(GR_EHTTPTOKEN, -5230, "http_token_unusable",                                                 \
      "HTTP token file missing, empty, too long, or readable by group or others")                  \
    X(GR_EHTTPBUSY, -5231, "http_busy", "HTTP listener: too many requests waiting for answers")    \
    X(GR_EPORTBUSYMARKS, -5260, "bad_busy_marks",                                                  \
      "bad port busy marks: busy_high must be 4096..4194304 bytes and busy_low below it")          \
    X(GR_EPROCBUSY, -5280, "busy_process",                                                         \
      "the process is busy (a port above its high-water mark): retry later")

enum {
#define GR_ERR_ENUM(name, value, id, msg) name = (value),
    GR_ERR_MAP(GR_ERR_ENUM)
#undef GR_ERR_ENUM
};

/* Human message for any error code (Girder or -errno). Never NULL; static storage. */
const char *gr_strerror(int err);

/* Stable short identifier ("noproc", "ECONNREFUSED", ...) for logs and metrics. */
const char *gr_errid(int err);

/* Inverse of gr_errid for Girder codes: the code whose stable reason ID is the
 * len bytes at id (not NUL-terminated), or 0 if none is. errno names are not
 * mapped. Used to turn a peer's reason string back into a code. */
int gr_err_from_id(const char *id, size_t len);

#endif
