// Board support: the QEMU `virt` memory map (the Renode board mirrors it),
// startup, counters, traps, exit, and the choice of log sink.
//
// Memory map, defined once in wand_assets/core/targets.py (Board) and passed
// in by the build (CMakeLists.txt), which renders the Renode board from the
// same definition:
//   WAND_BOARD_TEST_BASE      SiFive test device (exit): 0x5555 pass, (code<<16)|0x3333 fail
//   WAND_BOARD_CLINT_BASE     CLINT; mtime at +0xBFF8, WAND_BOARD_MTIME_HZ
//   WAND_BOARD_UART0_BASE     NS16550A UART 0: the Kenning protocol
//   WAND_BOARD_LOG_UART_BASE  NS16550A log UART: only used when semihosting is absent
//   WAND_BOARD_RAM_BASE       RAM (see wand.ld for the layout)
//   WAND_BOARD_LOG_SIMPRINT   1: log with Springbok's simprint (log UART and
//                             test device bases are then 0: absent)

#ifndef WAND_BOARD_H_
#define WAND_BOARD_H_

#include <stddef.h>
#include <stdint.h>

#if !defined(WAND_BOARD_TEST_BASE) || !defined(WAND_BOARD_CLINT_BASE) || \
    !defined(WAND_BOARD_MTIME_HZ) || !defined(WAND_BOARD_UART0_BASE) ||   \
    !defined(WAND_BOARD_LOG_UART_BASE) || !defined(WAND_BOARD_RAM_BASE)
#error "the board's memory map comes from the build (CMakeLists.txt, from wand_assets/core/targets.py)"
#endif

#define WAND_BOARD_MTIME_OFFSET 0xbff8u
#define WAND_BOARD_UART_CLOCK_HZ 3686400u
#define WAND_BOARD_UART_BAUD 115200u

// Exit codes passed to the SiFive test device (QEMU's exit status).
#define WAND_EXIT_TRAP 3
#define WAND_EXIT_INIT_FAILED 4


typedef struct wand_board_counters_t {
  uint64_t instructions;  // minstret
  uint64_t cycles;        // mcycle
  uint64_t mtime;         // CLINT mtime
} wand_board_counters_t;

// CLINT mtime (WAND_BOARD_MTIME_HZ ticks per second).
uint64_t wand_board_mtime(void);

// Sets hart 0's CLINT mtimecmp. High half first to all ones, so that no early
// match happens while the two halves disagree.
static inline void wand_board_set_mtimecmp(uint64_t when) {
  volatile uint32_t* cmp = (volatile uint32_t*)(WAND_BOARD_CLINT_BASE + 0x4000u);
  cmp[1] = UINT32_MAX;
  cmp[0] = (uint32_t)when;
  cmp[1] = (uint32_t)(when >> 32);
}

// Reads minstret, mcycle and mtime (in that order, back to back).
wand_board_counters_t wand_board_read_counters(void);


// Bytes of stack ever used (stack painted at boot) and of heap handed out by
// sbrk (its high-water mark).
size_t wand_board_stack_peak_bytes(void);
size_t wand_board_heap_peak_bytes(void);

// Stops the machine: QEMU exits with |code| (0 = success). Never returns.
__attribute__((noreturn)) void wand_board_exit(int code);

#endif  // WAND_BOARD_H_
