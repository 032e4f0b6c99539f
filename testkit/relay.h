/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay.h - the `relay` behaviour: a spawnable test process that makes a
 * gen_server-style call from itself to another process, on any node, by pid
 * or by {Name, Node}, and answers with the outcome. The CLI's `call` reaches a
 * process through an rpc to the process's own node (a local call there); the
 * relay is how the cluster tests make a process-to-process call cross a link
 * (docs/testing.md, m_call). Part of the test kit: registered only
 * by girderd-testkit (testkit/testkit.h), never started by a supervisor.
 *
 * Spawn argument: ignored (any term, or none).
 *
 * Requests, sent with girder_call (["$call", From, Ref, Request]):
 *   ["call", Dest, Request]             Dest is a pid or [Name, Node];
 *   ["call", Dest, Request, TimeoutMs]  TimeoutMs 1..GR_RELAY_TIMEOUT_MAX_MS
 *                                       (default GR_RELAY_TIMEOUT_MS).
 *       -> {"reply": Response}   Dest answered
 *          {"error": Reason}     a pid Dest died or was dead ("noproc", or its
 *                                exit reason; "noconnection" for a lost node),
 *                                or "timeout" (no answer in time; what a call
 *                                to {Name, Node} gets when nobody holds the
 *                                name there or the node is not connected,
 *                                since such a send is dropped silently, as in
 *                                Erlang), "busy" (a call is already pending),
 *                                "badarg", or an error id of the send
 *                                ("noname": [Name, this node] with nobody
 *                                registered under Name).
 *   anything else -> {"error": "badarg"}
 * A pid Dest is called with girder_call and a monitor (so a dead or
 * unreachable process answers at once); a {Name, Node} Dest gets
 * ["$call", Self, Ref, Request] through girder_send_name_node and only the
 * timeout guards it.
 *
 * Owning thread: the process's scheduler, like every behaviour.
 */
#ifndef GR_RELAY_H
#define GR_RELAY_H

#include "girder/girder.h"

#define GR_RELAY_NAME "relay"            /* behaviour name */
#define GR_RELAY_TIMEOUT_MS 5000u        /* default call timeout */
#define GR_RELAY_TIMEOUT_MAX_MS 3600000u /* longest call timeout */

/* The behaviour "relay". Register it with girder_behaviour_register. */
extern const girder_behaviour gr_relay_behaviour;

#endif
