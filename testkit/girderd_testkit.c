/* SPDX-License-Identifier: Apache-2.0 */
/*
 * girderd_testkit.c - girderd-testkit: girderd plus the test kit
 * (testkit.h). The cluster tests, bench/run and the test kit's users start
 * this daemon; it is built with the tree and never installed.
 */
#include "daemon/daemon.h"
#include "testkit/testkit.h"

int main(int argc, char *argv[])
{
    return gr_daemon_run(argc, argv, &gr_testkit_ext);
}
