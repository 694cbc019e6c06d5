// SPDX-License-Identifier: GPL-2.0
/*
 * Instantiates the rangefault trace events (rangefault_trace.h) and, for
 * trace.rs, the rust_do_trace_*() entry points that emit them without a
 * second check of the static key.
 */

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include "rangefault_trace.h"
