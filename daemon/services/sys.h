/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys.h - the `sys` service: a process registered as "sys" on every node that
 * answers questions about the node itself. Later the rpc module `sys` maps onto
 * it (`girder rpc NODE sys version`).
 *
 * Spawn argument (a msgpack map, every key optional):
 *   {"started_ms": N}   CLOCK_MONOTONIC milliseconds when girderd started; the
 *                       uptime is counted from it (default: the service's start)
 *
 * Requests, sent with girder_call (Request is an array whose first element is
 * the function name):
 *   ["version"]     -> "0.1.0"                    girderd's version
 *   ["uptime"]      -> N                          milliseconds since start
 *   ["schedulers"]  -> N                          scheduler threads
 *   ["processes"]   -> N                          live processes on this node
 *   ["memory"]      -> {"rss": N, "heap": N}      bytes: resident set, malloc'd
 *   ["info"]        -> {"node": Name, "version": V, "api": N, "creation": N,
 *                       "uptime_ms": N, "schedulers": N, "processes": N,
 *                       "memory": {...}}
 * A request that is not a non-empty array with a string head is answered
 * ["error", "badarg"]; an unknown function ["error", "undef_function"] (the
 * stable ids of GR_EBADARG and GR_EBADFUNC). Other messages are ignored.
 *
 * The process registers itself as "sys" in init; a second one fails to start
 * (init_failed) while the first lives.
 */
#ifndef GR_SYS_H
#define GR_SYS_H

#include "girder/girder.h"

#include <stdint.h>

#define GR_SYS_NAME "sys" /* registered name and behaviour name */

/* The behaviour "sys". Register it with girder_behaviour_register. */
extern const girder_behaviour gr_sys_service;

/* CLOCK_MONOTONIC now, in milliseconds (for the "started_ms" argument). */
uint64_t gr_sys_now_ms(void);

#endif
