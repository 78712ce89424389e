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

#endif  // WAND_IREE_USER_CONFIG_H_
