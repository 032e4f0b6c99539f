/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_config.c - libFuzzer harness for the INI parser: every input is fed as
 * the bytes of a config file through gr_config_parse_ini (line reader, libinih,
 * every setter and validator), then the error is formatted and the config is
 * finished and freed. Built only with -Dfuzz=true (clang); ASan catches memory
 * errors and leaks, the asserts catch broken contracts.
 */
#include "config/config.h"

#include "proto/err.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gr_config cfg;
    gr_config_error err;
    FILE *devnull;
    int r;

    if (gr_config_init(&cfg) < 0) {
        return 0;
    }
    r = gr_config_parse_ini(&cfg, "fuzz.ini", data, size, &err);
    assert(r == 0 || r == GR_ECONFIG || r == -ENOMEM);
    if (r == GR_ECONFIG) {
        assert(err.reason != GR_CONFIG_OK);
        if ((devnull = fopen("/dev/null", "w"))) {
            gr_config_error_print(devnull, "fuzz", &err);
            fclose(devnull);
        }
    } else if (r == 0) {
        assert(err.reason == GR_CONFIG_OK);
        assert(cfg.name && gr_config_check_node(cfg.name) == 0);
        assert(cfg.schedulers <= GR_CONFIG_SCHED_MAX);
        assert(cfg.nseeds <= GR_CONFIG_SEEDS_MAX);
        assert(!cfg.cookie_file_flag);
    }
    gr_config_clear(&cfg);
    return 0;
}
