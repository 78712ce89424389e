// ARM PL011 polling driver (Springbok's UART.PL011 in Renode), behind the
// same uart.h API as the NS16550 driver (uart.c); CMake picks one per board.

#include "board.h"
#include "uart.h"

enum {
  kRegDr = 0x00,    // data; bits 8..11 of a read are the byte's errors
  kRegFr = 0x18,    // flags
  kRegIbrd = 0x24,  // integer baud divisor
  kRegFbrd = 0x28,  // fractional baud divisor (64ths)
  kRegLcrH = 0x2c,  // line control; writing it latches the divisors
  kRegCr = 0x30,    // control
  kRegImsc = 0x38,  // interrupt mask
};

enum {
  kDrErrors = 0xf00,  // overrun, break, parity, framing
  kFrRxEmpty = 1u << 4,
  kFrTxFull = 1u << 5,
  kLcrH8N1Fifo = (3u << 5) | (1u << 4),  // 8 data bits, FIFOs on
  kCrEnable = (1u << 0) | (1u << 8) | (1u << 9),  // UART, TX and RX on
};

static const uint32_t kMieMtie = 1u << 7;
// How often an idle wait looks at the FIFO: every 0.1 ms of mtime.
static const uint64_t kIdleTickTicks = WAND_BOARD_MTIME_HZ / 10000u;

static inline uint32_t reg_read(const wand_uart_t* uart, uintptr_t reg) {
  return *(volatile uint32_t*)(uart->base + reg);
}

static inline void reg_write(const wand_uart_t* uart, uintptr_t reg,
                             uint32_t value) {
  *(volatile uint32_t*)(uart->base + reg) = value;
}

void wand_uart_init(wand_uart_t* uart, uintptr_t base, uint32_t clock_hz,
                    uint32_t baud) {
  uart->base = base;
  uart->line_errors = 0;
  // Divisor in 64ths of the 16x baud clock, rounded to nearest.
  const uint32_t divisor64 = (4u * clock_hz + baud / 2u) / baud;
  reg_write(uart, kRegImsc, 0);
  reg_write(uart, kRegIbrd, divisor64 >> 6);
  reg_write(uart, kRegFbrd, divisor64 & 0x3fu);
  // The PL011 has no receive-FIFO reset bit like the 16550's FCR; that
  // Renode's model keeps bytes sent before this write is not yet tested
  // (the boot-race test covers the NS16550 targets in QEMU only).
  reg_write(uart, kRegLcrH, kLcrH8N1Fifo);
  reg_write(uart, kRegCr, kCrEnable);
}

void wand_uart_write(wand_uart_t* uart, const uint8_t* data, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    while (reg_read(uart, kRegFr) & kFrTxFull) {
    }
    reg_write(uart, kRegDr, data[i]);
  }
}

// Springbok's .repl wires no UART interrupt, only the CLINT's timer and
// software interrupts, so the wait is woken by a timer tick that checks the
// FIFO. With mstatus.MIE off (it never goes on) and mie.MTIE on, wfi returns
// when the timer is pending without trapping: no handler, no context save.
static inline bool readable(const wand_uart_t* uart) {
  return (reg_read(uart, kRegFr) & kFrRxEmpty) == 0;
}

void wand_uart_wake_on_receive(wand_uart_t* uart) {
  (void)uart;  // the wait below wakes on timer ticks, not on this UART
}

bool wand_uart_wait_readable(wand_uart_t* uart, uint64_t timeout_ticks) {
  if (readable(uart)) return true;
  const uint64_t start = wand_board_mtime();
  __asm__ volatile("csrs mie, %0" : : "r"(kMieMtie));
  bool ready = false;
  while (!(ready = readable(uart))) {
    const uint64_t now = wand_board_mtime();
    if (now - start >= timeout_ticks) break;
    wand_board_set_mtimecmp(now + kIdleTickTicks);
    __asm__ volatile("wfi");
  }
  __asm__ volatile("csrc mie, %0" : : "r"(kMieMtie));
  wand_board_set_mtimecmp(UINT64_MAX);  // and with it the pending timer interrupt
  return ready;
}

bool wand_uart_try_read(wand_uart_t* uart, uint8_t* out_byte) {
  if (reg_read(uart, kRegFr) & kFrRxEmpty) return false;
  const uint32_t data = reg_read(uart, kRegDr);
  if (data & kDrErrors) ++uart->line_errors;
  *out_byte = (uint8_t)data;
  return true;
}

size_t wand_uart_read_ready(wand_uart_t* uart, uint8_t* buffer,
                            size_t length) {
  size_t count = 0;
  while (count < length && wand_uart_try_read(uart, &buffer[count])) ++count;
  return count;
}
