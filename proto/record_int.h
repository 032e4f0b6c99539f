/* SPDX-License-Identifier: Apache-2.0 */
/*
 * record_int.h - test-only view into a receiving half (internal).
 */
#ifndef GR_RECORD_INT_H
#define GR_RECORD_INT_H

#include "proto/record.h"

/* Bytes currently allocated for rx's record buffer (0: none). Lets tests prove
 * that a refused length was refused before anything was allocated for it. */
size_t gr_record_rx_capacity(const gr_record_rx *rx);

#endif
