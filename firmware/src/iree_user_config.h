// IREE configuration for this firmware (IREE_USER_CONFIG_H), included first
// by iree/base/config.h. Platform defines (IREE_PLATFORM_GENERIC etc.) come
// from CMakeLists.txt.

#ifndef WAND_IREE_USER_CONFIG_H_
#define WAND_IREE_USER_CONFIG_H_

#include <stdint.h>

// Monotonic time from the CLINT mtime, in nanoseconds (board.c).
int64_t wand_board_time_ns(void);
#define IREE_TIME_NOW_FN { return wand_board_time_ns(); }

// Busy-waits until the deadline (board.c); there is nothing to sleep on.
#include <stdbool.h>
bool wand_board_wait_until_ns(int64_t deadline_ns);
#define IREE_WAIT_UNTIL_FN wand_board_wait_until_ns

// Size and per-invoke levers (measured in firmware/README.md, "Runtime
// configuration"). Kept on: IREE_STATUS_MODE (the error log's texts),
// IREE_STATISTICS_ENABLE (the allocator fields of STATS) and bytecode
// verification (the .vmfb arrives over the UART: a malformed one must be
// rejected at load, not executed).
//
// Command buffers are recorded by the compiled module itself, which the
// bytecode verifier and the HAL module's own argument checks already bound;
// the validation layer re-checks every command on every invoke.
#define IREE_HAL_COMMAND_BUFFER_VALIDATION_ENABLE 0
// The model never formats or parses buffer views as text; without it HAL
// error texts print memory types and usages as hex instead of names.
#define IREE_HAL_MODULE_STRING_UTIL_ENABLE 0
// The model computes in f32: the bytecode verifier rejects a module that
// uses f64 VM ops at load.
#define IREE_VM_EXT_F64_ENABLE 0
// Modules are built with their source map stripped: nothing to backtrace.
#define IREE_VM_BACKTRACE_ENABLE 0

#endif  // WAND_IREE_USER_CONFIG_H_
