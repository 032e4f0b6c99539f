/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watcher.h - the `watcher` behaviour: a spawnable test process that
 * monitors and links other processes on request and records, with the time
 * it received them, the DOWN and EXIT messages that arrive. The cluster tests
 * use it to see remote monitors and links fire (noconnection, noproc) and
 * when (docs/testing.md, k_noconn). Part of the test kit: registered
 * only by girderd-testkit (testkit/testkit.h), never started by a supervisor.
 *
 * It traps exits from init on, so a link delivers ["EXIT", Pid, Reason]
 * instead of killing it (a "kill" exit signal still kills it) - unless spawned
 * with the argument "notrap", when a linked process's death kills it as it
 * would any process.
 *
 * Spawn argument: "notrap", or anything else (ignored).
 *
 * Requests, sent with girder_call (["$call", From, Ref, Request]):
 *   ["monitor", Pid]  -> Ref, the new monitor's ref (girder_monitor)
 *   ["link", Pid]     -> "ok" (girder_link)
 *   ["spawn", Node, Behaviour, How]
 *                     -> {"pid": Pid, "ref": Ref}: girder_spawn_remote of
 *                        Behaviour (no argument) on Node ("name@host", this
 *                        node's own name too) with How = "link", "monitor",
 *                        "link+monitor" or "none"; answered when the
 *                        "$spawn_reply" arrives (Ref is the request ref, which
 *                        is also the monitor's). An error reply answers
 *                        ["error", Reason] ("bad_behaviour", "noconnection",
 *                        ...). At most GR_WATCHER_SPAWNS_MAX pending.
 *   ["events"]        -> {"events": [Event, ...], "dropped": N}: every DOWN
 *                        and EXIT received so far, oldest first, where Event
 *                        is {"kind": "DOWN", "ref": Ref, "pid": Pid,
 *                        "reason": Reason, "at_ms": T} or
 *                        {"kind": "EXIT", "pid": Pid, "reason": Reason,
 *                        "at_ms": T}. T is CLOCK_MONOTONIC in milliseconds
 *                        (a float, microsecond resolution) when the process
 *                        handled the message: comparable with any other
 *                        process's monotonic clock on the same host (Python's
 *                        time.monotonic() * 1000). At most GR_WATCHER_EVENTS_MAX
 *                        are kept; later ones are counted in "dropped".
 *   anything else     -> ["error", "badarg"] (also a Pid that is not a pid, or
 *                        a failing girder_monitor / girder_link: ["error", Id])
 * Other messages are ignored.
 *
 * Owning thread: the process's scheduler, like every behaviour.
 */
#ifndef GR_WATCHER_H
#define GR_WATCHER_H

#include "girder/girder.h"

#define GR_WATCHER_NAME "watcher"  /* behaviour name */
#define GR_WATCHER_SPAWNS_MAX 8    /* spawn requests awaiting their reply */
#define GR_WATCHER_EVENTS_MAX 256u /* events kept (16 bytes each) */

/* The behaviour "watcher". Register it with girder_behaviour_register. */
extern const girder_behaviour gr_watcher_behaviour;

#endif
