/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - girderd, the production node daemon: the daemon (daemon.h) with no
 * extension. Every behaviour and rpc module it has is built in; test and
 * benchmark code lives in testkit/ and only girderd-testkit carries it.
 */
#include "daemon.h"

int main(int argc, char *argv[])
{
    return gr_daemon_run(argc, argv, NULL);
}
