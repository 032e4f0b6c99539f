/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echo.h - the `echo` behaviour: the example behaviour every girderd carries,
 * registered on every node (gr_services_register) but not started by the root
 * supervisor. Spawn it with `girder spawn echo` or proc.spawn("echo", Arg)
 * (docs/rpc.md); the demo does. echo.c is also the template for a behaviour of
 * your own: init, handle (answering a girder_call and a plain message),
 * terminate and state_size, in about a hundred lines.
 *
 * Spawn argument: ignored (any term, or none).
 *
 * Requests, sent with girder_call (["$call", From, Ref, Request]):
 *   "count"            -> N      plain messages received so far
 *   ["stop", Reason]   -> "ok"   then the process stops with Reason
 *   anything else      -> the request itself (an echo)
 * Every other message (a plain send, EXIT, DOWN ...) is counted and otherwise
 * ignored.
 *
 * Owning thread: the process's scheduler, like every behaviour.
 */
#ifndef GR_ECHO_H
#define GR_ECHO_H

#include "girder/girder.h"

#define GR_ECHO_NAME "echo" /* behaviour name */

/* The behaviour "echo". Register it with girder_behaviour_register. */
extern const girder_behaviour gr_echo_behaviour;

#endif
